//! bpfsim-verifier: accepts and rejects eBPF programs as the Linux kernel's verifier does, with
//! the kernel's log lines. It follows the kernel's design: structural passes first
//! (`check_subprogs`, `check_cfg`), then `do_check`, a path exploration over abstract register
//! and stack states (types, tnums, signed/unsigned 64- and 32-bit bounds) that prunes a path
//! when an already-verified state covers it.
//!
//! ```
//! use bpfsim_verifier::{verify, Options};
//! use bpfsim_vm::asm::assemble;
//! use bpfsim_vm::spec::ProgType;
//!
//! let ok = verify(&assemble("mov %r0, 2\nexit").unwrap(), &Options::new(ProgType::Xdp));
//! assert!(ok.accepted);
//! let bad = verify(&assemble("exit").unwrap(), &Options::new(ProgType::Xdp));
//! assert_eq!(bad.error.as_deref(), Some("R0 !read_ok"));
//! ```

mod check;
mod domain;
mod explore;
mod log;
mod passes;
mod precise;

use std::time::Duration;

use bpfsim_vm::isa::Insn;
use bpfsim_vm::loader::{AttachTarget, AttachType, ObjProgram, Object, BPF_F_RDONLY_PROG};
use bpfsim_vm::spec::{MapType, ProgType};

pub use domain::reg::{Reg, RegType};
pub use domain::tnum::Tnum;
pub use log::LineInfo;

/// The kernel's limit on processed instructions (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const COMPLEXITY_LIMIT: u64 = 1_000_000;

/// A map the program references (by index, as `lddw rN, map_idx(i)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapInfo {
    pub name: String,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// `BPF_F_RDONLY_PROG`: programs may not write its values (`.rodata`).
    pub rdonly_prog: bool,
    /// Frozen (`.rodata` after load): its contents are constants.
    pub frozen: bool,
    /// The map has BTF for its value (what `bpf_spin_lock` and timers need).
    pub btf: bool,
    /// Offset of the `struct bpf_spin_lock` in the value, from its BTF (`spin_lock_off`).
    pub spin_lock: Option<u32>,
    /// A frozen read-only map's contents: loads from them are constants, as the kernel reads
    /// them (`bpf_map_direct_read`), which prunes branches on `const volatile` configuration.
    pub data: Option<Vec<u8>>,
}

/// What the verifier is told besides the instructions: the `bpf_attr` of `BPF_PROG_LOAD`.
#[derive(Clone, Debug)]
pub struct Options {
    pub prog_type: ProgType,
    pub attach: Option<AttachType>,
    /// The license is GPL-compatible (GPL-only helpers allowed).
    pub gpl: bool,
    /// 0: errors only; 1: the kernel's level 1 (the path to an error, instruction by
    /// instruction with the state each left; the statistics alone on success); 2: every path,
    /// with the full state where each resumes.
    pub log_level: u32,
    pub maps: Vec<MapInfo>,
    /// Processed-instruction limit.
    pub limit: u64,
    /// The load carries BTF `func_info` (libbpf sends it for objects with BTF); without it the
    /// kernel refuses callbacks and treats every subprogram as static.
    pub func_info: bool,
    /// Global (non-static) subprograms, by first slot, with their BTF argument kinds: the
    /// kernel verifies each once on its own, and a call to one only checks its arguments.
    pub global_funcs: Vec<GlobalFunc>,
    /// BTF line info (`; source @ file:line` lines in the log), by slot.
    pub line_info: Vec<LineInfo>,
    /// A tracing or LSM program's attach target in the kernel's BTF: its arguments are the
    /// context.
    pub attach_btf: Option<AttachTarget>,
}

/// What a global function's argument is, from its BTF prototype (`btf_prepare_func_args`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    Scalar,
    /// A pointer to the program's context.
    Ctx,
    /// A pointer to memory of the pointed-to type's size, possibly NULL
    /// (`ARG_PTR_TO_MEM | PTR_MAYBE_NULL`).
    Mem {
        size: u32,
    },
}

/// A global subprogram: where it starts and what its arguments are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalFunc {
    pub slot: usize,
    pub name: String,
    pub args: Vec<ArgKind>,
}

impl Options {
    pub fn new(prog_type: ProgType) -> Options {
        Options {
            prog_type,
            attach: None,
            gpl: true,
            log_level: 1,
            maps: Vec::new(),
            limit: COMPLEXITY_LIMIT,
            func_info: false,
            global_funcs: Vec::new(),
            line_info: Vec::new(),
            attach_btf: None,
        }
    }
}

/// The verifier's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub accepted: bool,
    /// The first error line, as the kernel's log's last meaningful line says it.
    pub error: Option<String>,
    /// The log, line by line.
    pub log: Vec<String>,
    pub processed: u64,
    pub max_states_per_insn: usize,
    pub total_states: usize,
    pub peak_states: usize,
    pub time: Duration,
    /// For each slot of an accepted program: its memory access never goes through the context
    /// pointer on any path (false for slots without an access, unreached ones, and rejected
    /// programs). The JIT compiles such accesses without a call into the context's fields.
    pub no_ctx: Vec<bool>,
    /// For each slot of an accepted program: its load or store goes through a packet pointer
    /// (`PTR_TO_PACKET`) on every path, and so was proven inside the packet's range (false
    /// elsewhere, and for rejected programs). The JIT compiles such accesses without a branch.
    pub packet: Vec<bool>,
    /// For each slot of an accepted program: its load or store goes through the context pointer
    /// (`PTR_TO_CTX`, at offset 0: the kernel refuses any other) on every path, so it reaches
    /// the context's field at the instruction's own offset (false elsewhere, and for rejected
    /// programs). The JIT reads such fields from values it keeps (`convert_ctx_access`).
    pub ctx: Vec<bool>,
    /// For each slot of an accepted program: `Some(map)` when its load, store or atomic goes
    /// through a pointer to a value of map `map` (`PTR_TO_MAP_VALUE`, an index into
    /// [`Options::maps`]) on every path, the same map on each, and so was proven inside the value
    /// (`check_map_access`); `None` elsewhere, and for rejected programs. The JIT compiles such
    /// accesses without a branch.
    pub map_value: Vec<Option<u32>>,
    /// For each slot of an accepted program holding `call bpf_map_lookup_elem`: `Some((map,
    /// type))` when its `r1` is the same map on every path (`CONST_PTR_TO_MAP`, an index into
    /// [`Options::maps`], and that map's type); `None` elsewhere, and for rejected programs.
    /// The JIT compiles such a lookup for that map's kind only.
    pub lookup_map: Vec<Option<(u32, bpfsim_vm::spec::MapType)>>,
    /// For each slot of an accepted program: its load, store or atomic goes through a stack
    /// pointer (`PTR_TO_STACK`: `r10`, a copy of it, a pointer into a caller's frame passed to a
    /// subprogram, at a constant or a bounded variable offset) on every path, and so was proven
    /// inside that frame's stack (`check_stack_access_within_bounds`); false elsewhere, and for
    /// rejected programs. The JIT compiles such accesses without a branch.
    pub stack: Vec<bool>,
    /// For an accepted program: each subprogram reached (by first slot, ascending) and how
    /// many bytes of its frame, counted down from its frame pointer, any explored path reads
    /// or writes (through `r10`, or a pointer into the frame passed down to a callee, helpers'
    /// accesses included). No run of the program touches a byte of that frame below them, so
    /// an engine that zeroes only these bytes of a callee's frame at a call reads what one that
    /// zeroes the whole frame reads. Empty for rejected programs.
    /// For each slot whose access is a proven stack access ([`Verdict::stack`]): `Some((up,
    /// off))` when on every path its pointer is the frame pointer of the frame `up` calls above
    /// the accessing one (0: its own) plus the constant `off` (before the instruction's own
    /// offset); `None` elsewhere, and for rejected programs. With static call depths the JIT
    /// addresses such an access as a constant place in the stack.
    pub stack_at: Vec<Option<(u32, i32)>>,
    pub frame_bytes: Vec<(usize, u32)>,
    /// The ids of helpers a program type may call but whose prototype bpfsim does not know,
    /// called on some explored path: their arguments were not checked, so the kernel may reject
    /// what was accepted here.
    pub unchecked_helpers: Vec<u32>,
}

/// Verify `insns` (one entry per instruction, `lddw` counting as one) under `opts`.
pub fn verify(insns: &[Insn], opts: &Options) -> Verdict {
    let started = std::time::Instant::now();
    let run = |trace: bool| {
        let mut v = explore::Verifier::new(insns, opts);
        v.trace.enable(trace);
        if opts.log_level >= 2 {
            v.log.extend(log::subprog_lines(insns));
        }
        let result = passes::structure(&v.prog_slots(), insns, || {
            check_map_prog_compat(insns, opts)
        })
        .and_then(|()| v.do_check())
        .and_then(|()| v.check_max_stack_depth());
        (v, result)
    };
    // A level-1 log keeps nothing of a successful verification: the trace is written only
    // when a first pass without it fails (verification is deterministic), so accepting costs
    // no formatting.
    let (mut v, mut result) = run(opts.log_level != 1);
    if result.is_err() && opts.log_level == 1 {
        (v, result) = run(true);
    }
    v.trace.drain(&mut v.log);
    let mut log = std::mem::take(&mut v.log);
    let stats = format!(
        "processed {} insns (limit {}) max_states_per_insn {} total_states {} peak_states {} mark_read 0",
        v.processed, opts.limit, v.max_states_per_insn(), v.total_states(), v.peak_states()
    );
    let mut error = result.err();
    match &mut error {
        // Messages the kernel prints without a newline run into the statistics line.
        Some(e) if e.ends_with('\0') => {
            e.pop();
            e.push_str(&stats);
            log.push(e.clone());
        }
        Some(e) => {
            log.push(e.clone());
            log.push(stats);
        }
        None => log.push(stats),
    }
    let frame_bytes = if error.is_none() {
        let mut f: Vec<(usize, u32)> = v
            .frame_reach
            .iter()
            .map(|(&s, &d)| (s, d.min(u32::MAX as usize) as u32))
            .collect();
        f.sort_unstable();
        f
    } else {
        Vec::new()
    };
    let stack_at = if error.is_none() {
        v.access
            .iter()
            .zip(&v.access_stack_at)
            .map(|(&k, &a)| {
                let known = k == explore::ACCESS_STACK
                    && a != explore::STACK_AT_NONE
                    && a != explore::STACK_AT_MANY;
                known.then_some(((a >> 32) as u32, a as u32 as i32))
            })
            .collect()
    } else {
        Vec::new()
    };
    let lookup_map = if error.is_none() {
        v.lookup_map
            .iter()
            .map(|&m| {
                let info = (m != explore::NO_MAP && m != explore::MANY_MAPS)
                    .then(|| opts.maps.get(m as usize))
                    .flatten()?;
                Some((m, info.map_type))
            })
            .collect()
    } else {
        Vec::new()
    };
    let (no_ctx, packet, ctx, map_value, stack) = if error.is_none() {
        let only = |kind: u8| v.access.iter().map(|&k| k == kind).collect();
        let map_value = v
            .access
            .iter()
            .zip(&v.access_map)
            .map(|(&k, &m)| {
                let one = m != explore::NO_MAP && m != explore::MANY_MAPS;
                (k == explore::ACCESS_MAP_VALUE && one).then_some(m)
            })
            .collect();
        (
            v.access
                .iter()
                .map(|&k| k != 0 && k & explore::ACCESS_CTX == 0)
                .collect(),
            only(explore::ACCESS_PACKET),
            only(explore::ACCESS_CTX),
            map_value,
            only(explore::ACCESS_STACK),
        )
    } else {
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new())
    };
    Verdict {
        no_ctx,
        packet,
        ctx,
        map_value,
        lookup_map,
        stack,
        frame_bytes,
        stack_at,
        unchecked_helpers: v.unchecked_helpers.iter().copied().collect(),
        accepted: error.is_none(),
        error,
        log,
        processed: v.processed,
        max_states_per_insn: v.max_states_per_insn(),
        total_states: v.total_states(),
        peak_states: v.peak_states(),
        time: started.elapsed(),
    }
}

/// What `resolve_pseudo_ldimm64` checks of each `lddw` of a map before any instruction is
/// walked: a direct value address within the value of a map that has one
/// (`map_direct_value_addr`), and `check_map_prog_compatibility`: program types that may not
/// use a map whose values hold a `bpf_spin_lock`.
fn check_map_prog_compat(insns: &[Insn], opts: &Options) -> Result<(), String> {
    use bpfsim_vm::isa::Imm64;
    for insn in insns {
        let (idx, value_off) = match insn {
            Insn::LdImm64 {
                imm: Imm64::MapIdx(i),
                ..
            } => (*i, None),
            Insn::LdImm64 {
                imm: Imm64::MapIdxValue { idx, off },
                ..
            } => (*idx, Some(*off)),
            _ => continue,
        };
        let Some(m) = usize::try_from(idx).ok().and_then(|i| opts.maps.get(i)) else {
            continue;
        };
        if let Some(off) = value_off {
            let off = off as u32;
            if off >= 1 << 29 {
                return Err(format!("direct value offset of {off} is not allowed"));
            }
            if m.map_type != MapType::Array {
                return Err("no direct value access support for this map type".to_string());
            }
            if off >= m.value_size {
                return Err(format!(
                    "invalid access to map value pointer, value_size={} off={off}",
                    m.value_size
                ));
            }
        }
        if m.spin_lock.is_some() {
            match opts.prog_type {
                ProgType::SocketFilter => {
                    return Err("socket filter progs cannot use bpf_spin_lock yet".to_string())
                }
                ProgType::Kprobe
                | ProgType::Tracepoint
                | ProgType::PerfEvent
                | ProgType::RawTracepoint
                | ProgType::RawTracepointWritable => {
                    return Err("tracing progs cannot use bpf_spin_lock yet".to_string())
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Whether a license string is GPL-compatible (the kernel's `license_is_gpl_compatible`).
pub fn license_is_gpl(license: &str) -> bool {
    matches!(
        license,
        "GPL"
            | "GPL v2"
            | "GPL and additional rights"
            | "Dual BSD/GPL"
            | "Dual MIT/GPL"
            | "Dual MPL/GPL"
    )
}

/// The map table of an ELF object as the verifier sees it (`.rodata` frozen, read-only).
pub fn object_maps(obj: &Object) -> Vec<MapInfo> {
    obj.maps
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let frozen = obj.globals.iter().any(|g| g.map == i && g.read_only);
            MapInfo {
                name: m.name.clone(),
                map_type: m.map_type,
                key_size: m.key_size,
                value_size: m.value_size,
                max_entries: m.max_entries,
                rdonly_prog: m.flags & BPF_F_RDONLY_PROG != 0,
                frozen,
                btf: m.btf_value_type_id != 0,
                spin_lock: obj
                    .btf
                    .as_ref()
                    .filter(|_| m.btf_value_type_id != 0)
                    .and_then(|b| spin_lock_off(b, m.btf_value_type_id, 0)),
                data: obj
                    .globals
                    .iter()
                    .find(|g| g.map == i && g.read_only)
                    .map(|g| g.data.clone()),
            }
        })
        .collect()
}

/// Where a `struct bpf_spin_lock` sits in the BTF type `id`, looking into nested structs as
/// the kernel's `btf_parse_fields` does.
fn spin_lock_off(btf: &bpfsim_vm::loader::Btf, id: u32, depth: u32) -> Option<u32> {
    use bpfsim_vm::loader::BtfKind;
    let t = btf.type_by_id(btf.skip_mods_and_typedefs(id)?)?;
    if depth > 8 {
        return None;
    }
    match &t.kind {
        // Global data (`.bss`, `.data`): a lock among the section's variables.
        BtfKind::Datasec { vars, .. } => {
            return vars.iter().find_map(|v| {
                let BtfKind::Var { target, .. } = btf.type_by_id(v.type_id)?.kind else {
                    return None;
                };
                Some(v.offset + spin_lock_off(btf, target, depth + 1)?)
            })
        }
        BtfKind::Struct { .. } => {}
        _ => return None,
    }
    let BtfKind::Struct { members, .. } = &t.kind else {
        return None;
    };
    if t.name == "bpf_spin_lock" {
        return Some(0);
    }
    members.iter().find_map(|m| {
        let inner = spin_lock_off(btf, m.type_id, depth + 1)?;
        Some(m.bit_offset / 8 + inner)
    })
}

/// Verify one program of an ELF object, as libbpf would load it (its type and attach type from
/// the section unless `prog_type` says otherwise).
pub fn verify_object_program(
    obj: &Object,
    prog: &ObjProgram,
    prog_type: Option<ProgType>,
    log_level: u32,
) -> Option<Verdict> {
    let opts = object_program_options(obj, prog, prog_type, log_level)?;
    Some(verify(&prog.insns, &opts))
}

/// The options [`verify_object_program`] verifies `prog` with (its type, license, the object's
/// maps, global functions, source lines); `None` when it has no type.
pub fn object_program_options(
    obj: &Object,
    prog: &ObjProgram,
    prog_type: Option<ProgType>,
    log_level: u32,
) -> Option<Options> {
    let ty = prog_type.or(prog.prog_type)?;
    let mut opts = Options::new(ty);
    opts.attach = prog.expected_attach_type;
    opts.attach_btf = prog.attach_target.clone();
    opts.gpl = license_is_gpl(&obj.license);
    opts.log_level = log_level;
    opts.maps = object_maps(obj);
    opts.func_info = obj.kernel_btf.is_some();
    if opts.func_info {
        opts.global_funcs = global_funcs(obj, prog, ty);
    }
    // Source lines for the log, as a loader with BTF hands them to the kernel.
    if opts.func_info && log_level > 0 {
        opts.line_info = obj
            .line_info(prog)
            .into_iter()
            .map(|l| LineInfo {
                slot: l.slot,
                text: l.text,
                file: l.file,
                line: l.line,
            })
            .collect();
    }
    Some(opts)
}

/// The global subprograms of `prog` whose arguments bpfsim can type from BTF (scalars and
/// context pointers); others stay inlined as static ones.
fn global_funcs(obj: &Object, prog: &ObjProgram, ty: ProgType) -> Vec<GlobalFunc> {
    use bpfsim_vm::loader::BtfKind;
    let Some(btf) = &obj.btf else {
        return Vec::new();
    };
    let ctx_name = match ty {
        ProgType::Xdp => "xdp_md",
        ProgType::SocketFilter
        | ProgType::SchedCls
        | ProgType::SchedAct
        | ProgType::CgroupSkb
        | ProgType::LwtIn
        | ProgType::LwtOut
        | ProgType::LwtXmit
        | ProgType::SkSkb => "__sk_buff",
        _ => "",
    };
    let arg = |id: u32| -> Option<ArgKind> {
        let t = btf.type_by_id(btf.skip_mods_and_typedefs(id)?)?;
        match &t.kind {
            BtfKind::Int { .. } | BtfKind::Enum { .. } | BtfKind::Enum64 { .. } => {
                Some(ArgKind::Scalar)
            }
            BtfKind::Ptr { target } => {
                let pid = btf.skip_mods_and_typedefs(*target)?;
                let p = btf.type_by_id(pid)?;
                if !ctx_name.is_empty() && p.name == ctx_name {
                    return Some(ArgKind::Ctx);
                }
                // Any other pointer is to memory of its type's size (a `void *` has none: the
                // function stays inlined as a static one).
                let size = btf.resolve_size(pid).ok().filter(|&n| n > 0)?;
                Some(ArgKind::Mem { size })
            }
            _ => None,
        }
    };
    prog.functions
        .iter()
        .filter(|f| f.global && f.slot > 0)
        .filter_map(|f| {
            let id = btf.find(&f.name, |k| matches!(k, BtfKind::Func { linkage: 1, .. }))?;
            let BtfKind::Func { proto, .. } = btf.type_by_id(id)?.kind else {
                return None;
            };
            let BtfKind::FuncProto { params, .. } = &btf.type_by_id(proto)?.kind else {
                return None;
            };
            if params.len() > 5 {
                return None;
            }
            let args = params
                .iter()
                .map(|p| arg(p.type_id))
                .collect::<Option<Vec<_>>>()?;
            Some(GlobalFunc {
                slot: f.slot,
                name: f.name.clone(),
                args,
            })
        })
        .collect()
}
