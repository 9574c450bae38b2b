//! bpfsim-jit: eBPF compiled to native code with Cranelift, with the interpreter's exact
//! semantics. Registers are Cranelift variables; every CFG leader is a block; guest memory goes
//! through the same region table as the interpreter (an inline check of the region and the limit,
//! a call into Rust for anything the check refuses: the context's computed fields, or a fault);
//! helpers go through the same `Host`; the instruction budget is counted per block, and a
//! block the budget cannot pay for whole is handed to the interpreter, so a budget trap has the
//! interpreter's pc and side effects. Failures are explicit branches to a trap exit: the
//! generated code never faults natively.
//!
//! ```
//! use bpfsim_jit::JitProgram;
//! use bpfsim_vm::{asm::assemble, NoHelpers, Program, Vm};
//!
//! let prog = Program::new(assemble("mov %r0, 6\nmul %r0, 7\nexit").unwrap()).unwrap();
//! let jit = JitProgram::compile(&prog).unwrap();
//! let mut vm = Vm::default();
//! let mut mem = vm.memory();
//! let out = jit.run(&mut mem, &mut NoHelpers, [0; 5], 1000);
//! assert_eq!(out.result, Ok(42));
//! assert_eq!(out.insns, 3);
//! ```

#[cfg(target_arch = "x86_64")]
mod baseline;
mod gen;
mod listing;
mod perf_map;
mod session;
mod shims;

use bpfsim_vm::isa::{AtomicOp, CallTarget, Imm64, Insn};
use bpfsim_vm::{Host, MemoryMap, Outcome, Program, Trap, TrapCode};
use cranelift_codegen::ir::{types, AbiParam};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};

pub use listing::{CodePart, HostInsn, Listing};
pub use perf_map::path as perf_map_path;
pub use session::JitSession;
use session::Kept;
use shims::{CompiledCallback, HostRef, Ret, Runtime, VmCtx};

/// The generated function: (context, budget, r1, r2) -> [`Ret`]. The main program's and each
/// compiled callback's have this convention.
pub(crate) type Entry = extern "C" fn(*mut VmCtx, u64, u64, u64) -> Ret;

const I64: cranelift_codegen::ir::Type = types::I64;

/// Why a program cannot be compiled (the `auto` engine then interprets it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JitError {
    #[error("instruction {pc}: {what} is not compiled by the JIT yet; use the interpreter")]
    Unsupported { pc: usize, what: &'static str },
    #[error("Cranelift: {0}")]
    Codegen(String),
    /// The perf map was asked for ([`CompileOptions::perf_map`], `BPFSIM_PERF_MAP=1`) and
    /// could not be written.
    #[error("perf map {path}: {error} (unset BPFSIM_PERF_MAP to compile without it)")]
    PerfMap { path: String, error: String },
}

/// What a compile keeps or announces beyond the code itself.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Keep a [`Listing`] of the generated code ([`JitProgram::listing`]): the BPF slot of each
    /// part of the code and its disassembly. Off, the compile does none of that work.
    pub listing: bool,
    /// Append the code's range to `/tmp/perf-<pid>.map` (`START SIZE bpf_jit:NAME`, hex), where
    /// `perf report` finds names for samples in JIT code. Also on for every compile when the
    /// environment variable `BPFSIM_PERF_MAP` is `1` (read once per process). (Under `perf
    /// record`, which sets `PERF_BUILDID_DIR`, Cranelift writes the same line itself.)
    pub perf_map: bool,
    /// The program's name, for the perf map (`bpf_jit:NAME`; `bpf_jit:prog` without one).
    pub name: Option<String>,
}

pub(crate) fn atomic_code(op: AtomicOp) -> u64 {
    match op {
        AtomicOp::Add { .. } => 0,
        AtomicOp::Or { .. } => 1,
        AtomicOp::And { .. } => 2,
        AtomicOp::Xor { .. } => 3,
        AtomicOp::Xchg => 4,
        AtomicOp::CmpXchg => 5,
        AtomicOp::LoadAcquire => 6,
        AtomicOp::StoreRelease => 7,
    }
}

pub(crate) fn atomic_from_code(c: u64) -> Option<AtomicOp> {
    Some(match c {
        0 => AtomicOp::Add { fetch: true },
        1 => AtomicOp::Or { fetch: true },
        2 => AtomicOp::And { fetch: true },
        3 => AtomicOp::Xor { fetch: true },
        4 => AtomicOp::Xchg,
        5 => AtomicOp::CmpXchg,
        6 => AtomicOp::LoadAcquire,
        7 => AtomicOp::StoreRelease,
        _ => return None,
    })
}

/// The host's code generator with the JIT's settings, built once per process: its flags and
/// the host's CPU features do not change between programs (building it again cost a few
/// microseconds of every compile).
fn target_isa() -> Result<cranelift_codegen::isa::OwnedTargetIsa, JitError> {
    static ISA: std::sync::OnceLock<Result<cranelift_codegen::isa::OwnedTargetIsa, String>> =
        std::sync::OnceLock::new();
    ISA.get_or_init(|| {
        let mut flags = settings::builder();
        let set =
            |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).map_err(|e| e.to_string());
        set(&mut flags, "opt_level", "none")?;
        // Cranelift's IR verifier checks our own generated IR on every compile (a fifth of the
        // compile time); the differential tests exercise the translation instead.
        set(&mut flags, "enable_verifier", "false")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        cranelift_native::builder()
            .map_err(|e| e.to_string())?
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(JitError::Codegen)
}

/// The runtime functions the generated code calls, by the names the module imports them under
/// (and a listing names them by).
fn shim_symbols() -> [(&'static str, *const u8); 14] {
    [
        ("bpfsim_load", shims::load as *const u8),
        ("bpfsim_store", shims::store as *const u8),
        ("bpfsim_atomic", shims::atomic as *const u8),
        ("bpfsim_call", shims::call as *const u8),
        ("bpfsim_map_lookup", shims::map_lookup as *const u8),
        ("bpfsim_map_lookup_key", shims::map_lookup_key as *const u8),
        ("bpfsim_redirect_map", shims::redirect_map as *const u8),
        ("bpfsim_ld_packet", shims::ld_packet as *const u8),
        ("bpfsim_zero_stack", shims::zero_stack as *const u8),
        ("bpfsim_loop_rest", shims::loop_rest as *const u8),
        ("bpfsim_fetch_slots", shims::fetch_slots as *const u8),
        (
            "bpfsim_xdp_adjust_meta",
            shims::xdp_adjust_meta as *const u8,
        ),
        (
            "bpfsim_xdp_adjust_tail",
            shims::xdp_adjust_tail as *const u8,
        ),
        ("bpfsim_tail_call", shims::tail_call as *const u8),
    ]
}

/// What the verifier proved about a program, for the JIT to use. Indexed by slot (an `lddw`
/// takes two).
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// The memory access at this slot never touches the context (its pointer is never
    /// `PTR_TO_CTX`). Such an access keeps its bounds check, but a failed check can only be a
    /// fault, so it goes straight to the trap instead of calling into Rust and coming back: no
    /// call on the hot path, so nothing around it has to live in the few callee-saved registers,
    /// and fewer blocks to compile. If the hint were wrong, the access would trap where the
    /// interpreter reads the context: a different result, never an unchecked access. An access
    /// this leaves `false` (perhaps the context's) and [`Hints::packet`] does not claim is
    /// compiled as the call into Rust alone, which serves every region: the context has no
    /// bytes an inline check could find.
    pub no_ctx: Vec<bool>,
    /// The memory access at this slot (a load or a store) goes through a packet pointer on
    /// every path, and the verifier proved it inside the packet (`[data, data + range)`). The
    /// packet must be the run's primary region (the first region mapped after the stack, as
    /// the simulator's test runs map it). Such an access takes no branch: the low 32 bits of
    /// its address (its offset in the region) are clamped to the greatest offset an access of
    /// its size may start at, and added to the region's base. If the hint were wrong, the
    /// access would read or write other bytes of the guest's own packet buffer (or, for a
    /// packet smaller than the access, a scratch word no one reads), never host memory, and
    /// never trap.
    pub packet: Vec<bool>,
    /// The load or store at this slot goes through the context pointer on every path
    /// (`PTR_TO_CTX`, which the kernel only lets a program use at offset 0), so it reaches the
    /// context's field at the instruction's offset. A load (of any width, the first 48
    /// fields) reads a value the run keeps for the field, refreshed when the context changes
    /// ([`bpfsim_vm::MemoryMap::ctx_stamp`]), after one compare of the address with the
    /// field's: the kernel rewrites such loads into plain loads
    /// (`convert_ctx_access`). Any other address (a wrong hint, a run without a context or
    /// with one whose fields are not kept, a field the context refuses) hands the run to the
    /// interpreter from that load, which reads or faults as it always does; the one exception,
    /// a load at address `u64::MAX` (never mapped) with an offset whose field the context
    /// refuses, would read 0 rather than fault. A store (the first 16 fields) writes
    /// straight into the field's bytes in the context when the context has a
    /// cell for it ([`bpfsim_vm::memory::Context::store_cell`]: `skb->mark`, `cb[]`, ...) and
    /// the address is the field's, and sets the kept values of the loads inside the bytes it
    /// wrote; any other store goes through the store shim as without the hint.
    pub ctx: Vec<bool>,
    /// `Some(map)`: the memory access at this slot (a load, a store or an atomic read-modify-write:
    /// load-acquire and store-release keep their call) goes through a pointer to
    /// a value of map `map` on every path, the same map on each, and the verifier proved it
    /// inside the value (`check_map_access`). `map` is the map's index as the host numbers it
    /// ([`bpfsim_vm::Host::value_region`], the verifier's index in the program's maps). Such an
    /// access takes no branch: the low 32 bits of its address (its offset in the region) are
    /// clamped to the greatest offset an access of its size may start at in the region the host
    /// says holds the map's values for the run, and added to that region's base. If the hint
    /// (or the host) were wrong, the access would read or write other bytes of that region of
    /// the guest's own memory, never host memory, and never trap. A run whose host does not say
    /// where a hinted map's values are, or names a region under 8 bytes, is run by the
    /// interpreter. An access at a constant address (a global) ending within the first
    /// 512 bytes of the region takes no clamp: a run whose region
    /// is smaller than what such accesses reach is run by the interpreter. At most
    /// [`MAX_VALUE_MAPS`] maps per program are used (the accesses to others keep their checks).
    pub map_value: Vec<Option<u32>>,
    /// The memory access at this slot (a load, a store or an atomic read-modify-write:
    /// load-acquire and store-release keep their call) goes through a stack pointer on every
    /// path (`PTR_TO_STACK`, of this frame or a caller's), and the verifier proved it inside that
    /// frame's stack. Such an access takes no branch: all frames' stacks are one buffer
    /// ([`bpfsim_vm::memory::Stack`], frame `d` at region `FIRST_FRAME_REGION + d`), and the
    /// address's place in it, `(region - FIRST_FRAME_REGION) * FRAME_SIZE + offset`, is
    /// clamped to the greatest place an access of its size may start at and added to the
    /// buffer's base. If the hint were wrong, the access would read or write other bytes of
    /// the run's stack (the guest's own memory), never host memory, and never trap. Accesses
    /// at a constant offset from `r10` in a program that never writes `r10` need no hint (see
    /// `fixed_stack` in the code generator).
    pub stack: Vec<bool>,
    /// Each subprogram (by first slot, ascending) and how many bytes of its frame, counted
    /// down from its frame pointer, the program ever reads or writes
    /// (`bpfsim_verifier::Verdict::frame_bytes`). A local call zeroes only these bytes of the
    /// callee's frame (rounded up to 8), where the interpreter zeroes all `FRAME_SIZE`: the
    /// bytes below are never read, so every read sees what it sees in the interpreter. A
    /// subprogram not listed gets its whole frame zeroed. If the hint were too small, a read
    /// below it would see what an earlier call or run left in the run's own stack (never
    /// memory outside it, never a trap).
    pub frame_bytes: Vec<(usize, u32)>,
    /// For a slot [`Hints::stack`] marks: `Some((up, off))` when the access's pointer is, on
    /// every path, the frame pointer of the frame `up` calls above the accessing one plus `off`
    /// (`bpfsim_verifier::Verdict::stack_at`). Where call depths are static the JIT then
    /// addresses the access as a constant place in the stack buffer, without reading the
    /// pointer. A place outside its frame is not used; if the hint were wrong, the access would
    /// read or write other bytes of the run's own stack, never other memory, never trap.
    pub stack_at: Vec<Option<(u32, i32)>>,
    /// For a slot holding `call bpf_map_lookup_elem`: `Some(path)` when the verifier knows the
    /// map in `r1` on every path (`bpfsim_verifier::Verdict::lookup_map`), and so which way of
    /// answering the lookup its kind can take; the call is compiled with that way and the
    /// helper's shim only (`None`: every way). Each way keeps its run-time checks against the
    /// run's tables ([`bpfsim_vm::Host::array_lookups`], [`bpfsim_vm::Host::key_lookups`],
    /// [`bpfsim_vm::Host::slot_lookups`]): if
    /// the hint were wrong, or the host does not list the map, the lookup goes through the
    /// helper's shim and gives the interpreter's answer, only slower. An array's lookup whose
    /// `r1` the JIT finds to be one constant handle reads a row fixed for the batch instead,
    /// and the accesses the JIT proves through its result take no clamp (`gen::rows`); if the
    /// hint were wrong or the row empty, such a lookup whose result an access relies on hands
    /// the run to the interpreter before the call.
    pub lookup: Vec<Option<LookupPath>>,
}

/// The ways a `bpf_map_lookup_elem` call's code may answer it besides the helper's shim
/// ([`Hints::lookup`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupPath {
    /// An array map's entry, computed inline from the run's array table.
    Array,
    /// A map looked up by its key's bytes (hash-like): a direct call with the key's address
    /// when the key is at a constant place in the frame.
    Key,
    /// An array whose slots may be empty (a device or socket map): the slot's address and its
    /// presence bit, read inline from the run's slot table
    /// ([`bpfsim_vm::Host::slot_lookups`]), as the kernel's verifier inlines an xskmap's
    /// lookup; a map the host does not list takes the [`LookupPath::Key`] way.
    Slots,
    /// Neither: the helper's shim alone.
    Helper,
}

/// The most maps whose value accesses [`Hints::map_value`] makes branch-free in one program.
pub const MAX_VALUE_MAPS: usize = shims::VALUE_SLOTS;

/// A compiled program. Owns its code; runs any number of times.
pub struct JitProgram {
    /// The memory holding the code.
    code_mem: CodeMem,
    /// The interpreter, which finishes a run whose budget runs out inside a block (see
    /// `Interpreter::finish_budget`), and the compiled callbacks, which the callbacks' shim
    /// enters.
    rt: Runtime,
    /// A number no other program of the process has: names the program whose run context a
    /// thread keeps (`JitProgram::run`).
    id: u64,
    entry: Entry,
    /// Bytes of the main program's code (its function: not the compiled callbacks'); for
    /// reports.
    pub code_size: usize,
    /// The bytes of code of each compiled callback, as `Runtime::callbacks`.
    callback_sizes: Vec<usize>,
    /// The generated code's listing, when the compile asked for it.
    listing: Option<Box<Listing>>,
    /// Whether a run can write its stack (a store, an atomic or a call): a run that cannot
    /// leaves it clean, and the next run need not zero it.
    may_write: bool,
    /// How many bytes at the top of frame 0 a run can reach ([`Hints::frame_bytes`] of slot 0,
    /// else all `FRAME_SIZE`): only those are cleared before a run.
    main_bytes: usize,
    /// The verifier proved (its [`Hints::frame_bytes`]) that a run reaches no frame but those
    /// it enters, so the frames past 0 an earlier run wrote need no clearing before it
    /// (`MemoryMap::enter_main_reaching`).
    proven_frames: bool,
    /// Whether the generated code reads `VmCtx::args[2..5]` (r3-r5; r1 and r2 come in
    /// registers): a run on raw memory, whose r3-r5 are 0, need not write them when it does not.
    reads_r3_r5: bool,
    /// A run whose budget is below this hands over to the interpreter at slot 0, which the
    /// code does not check (see `JitProgram::call_entry`).
    entry_need: u64,
    /// A run whose budget is above this is interpreted: proofs that rest on a loop counter's
    /// bound hold for runs of at most `gen::bounds::BUDGET_MAX` instructions.
    budget_max: u64,
    /// Whether a run can reach the host (a helper call, `callx`, a legacy packet load): only
    /// then need a batch of runs tell the host that each run begins (`Host::begin_run`).
    uses_host: bool,
    /// The context fields whose hinted loads read kept values and whose hinted stores may
    /// write cells, by slot.
    ctx_fields: CtxFields,
    /// [`JitProgram::ctx_unchecked`].
    ctx_unchecked: Vec<usize>,
    /// [`JitProgram::counted_loops`].
    counted_loops: Vec<usize>,
    /// Whether the program calls `bpf_map_lookup_elem` (whose array lookups the code answers
    /// from the run's [`Host::array_lookups`]).
    lookups: bool,
    /// Whether some lookup is compiled with the slot table's way ([`LookupPath::Slots`]): only
    /// then need a run fetch it ([`Host::slot_lookups`]).
    slot_lookups: bool,
    /// The maps whose values hinted accesses clamp into ([`Hints::map_value`]), by slot.
    value_maps: Vec<u32>,
    /// For each value map slot, the bytes from its region's start that proven accesses at
    /// constant addresses read and write ([`shims::VmCtx::fetch_values`]).
    value_need: Vec<[u64; 2]>,
    /// Whether the program calls `bpf_loop` and has a compiled callback: a batch then asks the
    /// host whether the code may make the loop's calls ([`Host::inline_loop`]).
    loops: bool,
    /// Whether the program calls `bpf_xdp_adjust_meta` or `bpf_xdp_adjust_tail`: a batch then
    /// asks the host whether their answers are the context's
    /// ([`Host::xdp_adjust_by_context`]).
    adjusts: bool,
}

// SAFETY: the module's code is immutable after finalisation and the function pointer refers to
// it; nothing in the module is mutated after `compile` returns.
unsafe impl Send for JitProgram {}
// SAFETY: as above: running the code reads the module only.
unsafe impl Sync for JitProgram {}

/// Whether a run can write its stack (a store, an atomic or a call): [`JitProgram::may_write`].
fn may_write(insns: &[Insn]) -> bool {
    insns
        .iter()
        .any(|i| matches!(i, Insn::Store { .. } | Insn::Atomic { .. } | Insn::Call(_)))
}

/// Whether a run can reach the host (a helper call, `callx`, a legacy packet load):
/// [`JitProgram::uses_host`].
fn uses_host(insns: &[Insn]) -> bool {
    insns.iter().any(|i| {
        matches!(
            i,
            Insn::Call(CallTarget::Helper(_)) | Insn::Callx { .. } | Insn::LoadPacket { .. }
        )
    })
}

/// Refuse what neither tier compiles: kfunc calls, and `lddw` pseudo sources the loader did
/// not resolve.
fn check_supported(prog: &Program) -> Result<(), JitError> {
    for (pc, insn) in prog.iter() {
        match insn {
            Insn::Call(CallTarget::Kfunc { .. }) => {
                return Err(JitError::Unsupported {
                    pc,
                    what: "a kfunc call",
                })
            }
            Insn::LdImm64 {
                imm:
                    Imm64::MapFd(_)
                    | Imm64::MapValue { .. }
                    | Imm64::BtfId { .. }
                    | Imm64::MapIdx(_)
                    | Imm64::MapIdxValue { .. },
                ..
            } => {
                return Err(JitError::Unsupported {
                    pc,
                    what: "an unresolved lddw pseudo source",
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where a program's code lives: Cranelift's module, or the baseline tier's mapping.
enum CodeMem {
    /// Freed on drop (a dropped `JITModule` keeps its mappings: a process that compiles many
    /// programs ran out of them).
    Module(std::mem::ManuallyDrop<Box<JITModule>>),
    /// Unmapped when dropped.
    #[cfg(target_arch = "x86_64")]
    #[allow(dead_code)] // held for its drop
    Baseline(baseline::Code),
}

impl Drop for JitProgram {
    fn drop(&mut self) {
        if let CodeMem::Module(module) = &mut self.code_mem {
            // SAFETY: `module` is taken once, here, and never used again. Nothing runs the
            // code any more: runs borrow the program (`run`, `JitSession`), so none outlives
            // it, and `entry`, the only pointer into the code, dies with it.
            unsafe { std::mem::ManuallyDrop::take(module).free_memory() }
        }
    }
}

impl std::fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JitProgram({} bytes)", self.code_size)
    }
}

impl JitProgram {
    /// Compile `prog`.
    pub fn compile(prog: &Program) -> Result<JitProgram, JitError> {
        Self::compile_with(prog, &Hints::default())
    }

    /// Compile `prog` for the baseline tier: machine code written in one pass, no register
    /// allocation or optimisation, in tens of microseconds for a program Cranelift takes
    /// milliseconds over; its runs are slower than Cranelift's code (every check kept, the
    /// stack through the region table) and give the same results. What the tier does not
    /// translate (BPF-to-BPF calls, atomics, legacy packet loads) hands the rest of the run
    /// to the interpreter. x86-64 hosts only ([`JitError::Unsupported`] elsewhere).
    pub fn compile_baseline(prog: &Program) -> Result<JitProgram, JitError> {
        Self::compile_baseline_opts(prog, &CompileOptions::default())
    }

    /// [`Self::compile_baseline`] with a listing ([`CompileOptions::listing`]: each BPF
    /// instruction's code, its budget check with the block's first, its paths out of line
    /// after the body) and a perf map line ([`CompileOptions::perf_map`]).
    pub fn compile_baseline_opts(
        prog: &Program,
        opts: &CompileOptions,
    ) -> Result<JitProgram, JitError> {
        check_supported(prog)?;
        #[cfg(target_arch = "x86_64")]
        {
            let insns = prog.insns();
            let reads_r3_r5 = gen::regs_read_by(insns) & 0b11_1000 != 0;
            let (code, ranges) = baseline::compile(prog, reads_r3_r5, opts.listing)?;
            let symbol = perf_map::symbol(opts.name.as_deref().unwrap_or("prog"));
            if opts.perf_map || perf_map::from_env() {
                perf_map::claim();
                perf_map::append(code.entry() as u64, code.len(), &symbol)?;
            }
            let listing = opts.listing.then(|| {
                // SAFETY: `code` maps `len` readable bytes from its entry.
                let bytes = unsafe { std::slice::from_raw_parts(code.entry(), code.len()) };
                let address = code.entry() as u64;
                let parts = listing::parts(bytes.len(), &ranges);
                let names: Vec<(u64, &str)> = shim_symbols()
                    .map(|(n, f)| (f as usize as u64, n))
                    .into_iter()
                    .chain(baseline::runtime_symbols())
                    .collect();
                let insns = listing::decode(address, bytes, bytes.len(), &parts, &names);
                Box::new(Listing {
                    function: symbol.clone(),
                    address,
                    code: bytes.to_vec(),
                    parts,
                    insns,
                    cranelift: String::new(),
                    arch: std::env::consts::ARCH,
                    callbacks: Vec::new(),
                })
            });
            // SAFETY: `code` is a function of signature (pointer, i64, i64, i64) -> (i64, i64)
            // in the System V convention, which returns two integers in `rax`/`rdx` as C
            // returns `shims::Ret`; its memory lives as long as the program (`code_mem`).
            let entry: Entry = unsafe { std::mem::transmute(code.entry()) };
            let code_size = code.len();
            Ok(JitProgram {
                id: bpfsim_vm::unique::next(),
                code_mem: CodeMem::Baseline(code),
                rt: Runtime {
                    interp: bpfsim_vm::Interpreter::new(prog),
                    callbacks: Vec::new(),
                },
                entry,
                code_size,
                callback_sizes: Vec::new(),
                listing,
                may_write: may_write(insns),
                proven_frames: false,
                main_bytes: bpfsim_vm::memory::FRAME_SIZE,
                // The code checks the budget at slot 0 itself.
                entry_need: 0,
                budget_max: u64::MAX,
                reads_r3_r5,
                uses_host: uses_host(insns),
                ctx_fields: CtxFields::default(),
                ctx_unchecked: Vec::new(),
                counted_loops: Vec::new(),
                lookups: false,
                slot_lookups: false,
                value_maps: Vec::new(),
                value_need: Vec::new(),
                loops: false,
                adjusts: false,
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        Err(JitError::Unsupported {
            pc: 0,
            what: "the baseline tier on this architecture",
        })
    }

    /// [`Self::compile`] using what the verifier proved ([`Hints`]).
    pub fn compile_with(prog: &Program, hints: &Hints) -> Result<JitProgram, JitError> {
        Self::compile_opts(prog, hints, &CompileOptions::default())
    }

    /// The machine code, as it runs.
    pub fn code(&self) -> &[u8] {
        // SAFETY: `entry` points at the start of the finalised function, `code_size` bytes
        // of memory the module mapped readable and executable, and keeps until `self` drops
        // (the slice borrows `self`).
        unsafe { std::slice::from_raw_parts(self.entry as *const u8, self.code_size) }
    }

    /// The generated code's listing, when [`CompileOptions::listing`] asked for it.
    pub fn listing(&self) -> Option<&Listing> {
        self.listing.as_deref()
    }

    /// The machine code of each callback compiled as a function of its own, with the
    /// callback's first slot, by slot.
    pub fn callback_code(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.rt
            .callbacks
            .iter()
            .zip(&self.callback_sizes)
            .map(|(cb, &size)| {
                // SAFETY: as in `code`: `entry` starts the callback's finalised function, `size`
                // bytes the module mapped readable, kept until `self` drops.
                let code = unsafe { std::slice::from_raw_parts(cb.entry as *const u8, size) };
                (cb.slot, code)
            })
    }

    /// [`Self::compile_with`], keeping or announcing what `opts` asks for.
    pub fn compile_opts(
        prog: &Program,
        hints: &Hints,
        opts: &CompileOptions,
    ) -> Result<JitProgram, JitError> {
        if opts.perf_map || perf_map::from_env() || perf_map::cranelift_writes() {
            perf_map::claim();
        }
        let insns = prog.insns();
        let pcs: Vec<usize> = prog.iter().map(|(pc, _)| pc).collect();
        check_supported(prog)?;
        let isa = target_isa()?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        jb.symbols(shim_symbols());
        let mut module = JITModule::new(jb);
        let ptr = module.target_config().pointer_type();
        let err = |e: cranelift_module::ModuleError| JitError::Codegen(e.to_string());

        let sig_of = |module: &JITModule, params: usize, ret: bool| {
            let mut s = module.make_signature();
            s.params.push(AbiParam::new(ptr));
            for _ in 0..params {
                s.params.push(AbiParam::new(I64));
            }
            if ret {
                s.returns.push(AbiParam::new(I64));
            }
            s
        };
        let declare = |module: &mut JITModule, name: &str, params: usize, ret: bool| {
            let s = sig_of(module, params, ret);
            module
                .declare_function(name, Linkage::Import, &s)
                .map_err(err)
        };
        let f_load = declare(&mut module, "bpfsim_load", 2, true)?;
        let f_store = declare(&mut module, "bpfsim_store", 3, false)?;
        let f_atomic = declare(&mut module, "bpfsim_atomic", 5, true)?;
        let f_call = declare(&mut module, "bpfsim_call", 8, true)?;
        let f_lookup = declare(&mut module, "bpfsim_map_lookup", 4, true)?;
        let f_lookup_key = declare(&mut module, "bpfsim_map_lookup_key", 3, true)?;
        let f_redirect = declare(&mut module, "bpfsim_redirect_map", 3, true)?;
        let f_ld = declare(&mut module, "bpfsim_ld_packet", 3, true)?;
        let f_clear = declare(&mut module, "bpfsim_zero_stack", 1, false)?;
        let f_loop_rest = declare(&mut module, "bpfsim_loop_rest", 4, true)?;
        let f_fetch_slots = declare(&mut module, "bpfsim_fetch_slots", 0, false)?;
        let f_adjust_meta = declare(&mut module, "bpfsim_xdp_adjust_meta", 2, true)?;
        let f_adjust_tail = declare(&mut module, "bpfsim_xdp_adjust_tail", 2, true)?;
        let f_tail_call = declare(&mut module, "bpfsim_tail_call", 2, true)?;

        // The compilation context and the builder's are kept per thread and cleared between
        // programs: fresh ones cost page faults on every compile (7% of the time of a
        // 1,000-instruction program).
        thread_local! {
            static CONTEXTS: std::cell::RefCell<Option<(cranelift_codegen::Context, cranelift_frontend::FunctionBuilderContext)>> = const { std::cell::RefCell::new(None) };
        }
        let (mut ctx, mut fbc) = CONTEXTS.with(|c| c.borrow_mut().take()).unwrap_or_else(|| {
            (
                module.make_context(),
                cranelift_frontend::FunctionBuilderContext::new(),
            )
        });
        // The entry's convention: (context, budget, r1, r2) -> (r0, left) or (status, SLOW)
        // (`shims::Ret`): what every run passes and reads in registers, not through memory.
        ctx.func.signature = {
            let mut s = sig_of(&module, 3, true);
            s.returns.push(AbiParam::new(I64));
            s
        };
        // The name perf shows: Cranelift's module writes its functions to the perf map itself
        // when `perf record` runs the process (which sets `PERF_BUILDID_DIR`).
        let symbol = perf_map::symbol(opts.name.as_deref().unwrap_or("prog"));
        let func_id = module
            .declare_function(&symbol, Linkage::Local, &ctx.func.signature)
            .map_err(err)?;
        let ctx_fields = ctx_fields(prog, hints);
        let value_maps = value_maps(prog, hints);
        let shim_ids = gen::ShimIds {
            load: f_load,
            store: f_store,
            atomic: f_atomic,
            call: f_call,
            map_lookup: f_lookup,
            map_lookup_key: f_lookup_key,
            redirect_map: f_redirect,
            ld_packet: f_ld,
            zero_stack: f_clear,
            loop_rest: f_loop_rest,
            fetch_slots: f_fetch_slots,
            xdp_adjust_meta: f_adjust_meta,
            xdp_adjust_tail: f_adjust_tail,
            tail_call: f_tail_call,
        };
        // The main program's function, then one per callback (its body and what it calls) that
        // can run in a frame of its own: a helper's callbacks then run as native code.
        let mut roots = vec![gen::Root { slot: 0, depth: 0 }];
        roots.extend(
            gen::callback_roots(insns, &pcs, prog.subprograms())
                .into_iter()
                .filter(|&(_, d)| (d as usize) < bpfsim_vm::memory::MAX_FRAMES)
                .map(|(slot, depth)| gen::Root { slot, depth }),
        );
        let mut built = Vec::with_capacity(roots.len());
        let mut value_need = vec![[0u64; 2]; value_maps.len()];
        let mut ctx_unchecked = Vec::new();
        let mut counted_loops = Vec::new();
        let mut sizes = Vec::with_capacity(roots.len());
        let mut listed = Vec::with_capacity(roots.len());
        let mut failed = None;
        // Every function declared before any is built: a `bpf_loop` calls its callback's
        // function directly (`gen::LoopTarget`).
        let mut ids = vec![func_id];
        for root in &roots[1..] {
            let sym = perf_map::callback_symbol(&symbol, root.slot);
            match module.declare_function(&sym, Linkage::Local, &ctx.func.signature) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    failed = Some(err(e));
                    break;
                }
            }
        }
        let targets: Vec<gen::LoopTarget> = roots[1..]
            .iter()
            .zip(&ids[1..])
            .map(|(r, &id)| gen::LoopTarget {
                slot: r.slot,
                depth: r.depth,
                id,
            })
            .collect();
        for (k, &root) in roots.iter().enumerate() {
            if failed.is_some() {
                break;
            }
            let id = ids[k];
            let sig = ctx.func.signature.clone();
            let listing = opts.listing;
            ctx.set_disasm(listing);
            let need = gen::build(
                &mut module,
                &mut ctx.func,
                &mut fbc,
                &shim_ids,
                prog,
                &pcs,
                hints,
                &ctx_fields,
                listing,
                root,
                &targets,
                &mut value_need,
                &mut ctx_unchecked,
                &mut counted_loops,
            )
            .and_then(|need| {
                module.define_function(id, &mut ctx).map_err(err)?;
                Ok(need)
            });
            // Each function's bytes: `JitProgram::code` reads them from its entry.
            sizes.push(ctx.compiled_code().map_or(0, |c| c.code_buffer().len()));
            {
                // What only a listing needs, taken before the context is cleared.
                listed.push(match ctx.compiled_code() {
                    Some(c) if opts.listing => {
                        let locs = c.buffer.get_srclocs_sorted();
                        Some((
                            locs.iter()
                                // The default location at the start is the ABI's prologue; elsewhere
                                // it is code Cranelift added without one (see `listing::parts`).
                                .filter(|l| !l.loc.is_default() || l.start == 0)
                                .map(|l| {
                                    let slot = l.loc != gen::no_slot() && !l.loc.is_default();
                                    let pc = slot.then(|| l.loc.bits() as usize);
                                    (l.start as usize, l.end as usize, pc)
                                })
                                .collect::<Vec<_>>(),
                            // Every instruction is emitted inside a location's range (the default one
                            // at least) and the last is a return or a jump: past the last range are
                            // only the constants Cranelift placed after the code.
                            locs.iter().map(|l| l.end as usize).max().unwrap_or(0),
                            c.vcode.clone().unwrap_or_default(),
                        ))
                    }
                    _ => None,
                });
            }
            module.clear_context(&mut ctx);
            ctx.func.signature = sig;
            match need {
                Ok(need) => built.push((root, id, need)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        CONTEXTS.with(|c| *c.borrow_mut() = Some((ctx, fbc)));
        if let Some(e) = failed {
            return Err(e);
        }
        module.finalize_definitions().map_err(err)?;
        let entry_of = |module: &JITModule, id| -> Entry {
            let code = module.get_finalized_function(id);
            // SAFETY: `code` is a function defined above with signature (pointer, i64, i64,
            // i64) -> (i64, i64) in the platform's C convention, which returns two integers as
            // C returns a struct of two (`shims::Ret`): in `rax`/`rdx` (x86-64 System V),
            // `x0`/`x1` (AArch64).
            unsafe { std::mem::transmute(code) }
        };
        let entry = entry_of(&module, built[0].1);
        let entry_need = built[0].2;
        let callbacks = built[1..]
            .iter()
            .map(|&(root, id, need)| {
                // The root of a callback's function checks the budget itself (it is a loop's
                // head: the function makes a `bpf_loop`'s calls one after another).
                debug_assert_eq!(need, 0);
                CompiledCallback {
                    slot: root.slot,
                    depth: root.depth,
                    entry: entry_of(&module, id),
                }
            })
            .collect();
        let jit = JitProgram {
            id: bpfsim_vm::unique::next(),
            code_mem: CodeMem::Module(std::mem::ManuallyDrop::new(Box::new(module))),
            rt: Runtime {
                interp: bpfsim_vm::Interpreter::new(prog),
                callbacks,
            },
            entry,
            code_size: sizes[0],
            callback_sizes: sizes[1..built.len()].to_vec(),
            listing: None,
            may_write: may_write(insns),
            proven_frames: matches!(hints.frame_bytes.first(), Some(&(0, _))),
            main_bytes: match hints.frame_bytes.first() {
                Some(&(0, n)) => (n as usize)
                    .min(bpfsim_vm::memory::FRAME_SIZE)
                    .next_multiple_of(8),
                _ => bpfsim_vm::memory::FRAME_SIZE,
            },
            entry_need,
            budget_max: if ctx_fields.proofs.counted {
                gen::bounds::BUDGET_MAX
            } else {
                u64::MAX
            },
            reads_r3_r5: gen::regs_read_by(insns) & 0b11_1000 != 0,
            uses_host: uses_host(insns),
            ctx_fields,
            ctx_unchecked: {
                ctx_unchecked.sort_unstable();
                ctx_unchecked.dedup();
                ctx_unchecked
            },
            counted_loops: {
                counted_loops.sort_unstable();
                counted_loops.dedup();
                counted_loops
            },
            lookups: reads_lookup_tables(prog, hints),
            slot_lookups: hints.lookup.contains(&Some(LookupPath::Slots)),
            value_maps,
            value_need,
            loops: built.len() > 1
                && insns.iter().any(|i| {
                    matches!(i, Insn::Call(CallTarget::Helper(id)) if *id as u32 == bpfsim_vm::host::LOOP)
                }),
            adjusts: insns.iter().any(|i| {
                matches!(i, Insn::Call(CallTarget::Helper(id))
                    if [bpfsim_vm::host::XDP_ADJUST_META, bpfsim_vm::host::XDP_ADJUST_TAIL].contains(&(*id as u32)))
            }),
        };
        let mut jit = jit;
        let perf = opts.perf_map || perf_map::from_env();
        if !perf && !opts.listing {
            return Ok(jit);
        }
        // Each function: its symbol and code, main first.
        let functions: Vec<(String, &[u8])> = std::iter::once((symbol.clone(), jit.code()))
            .chain(
                jit.callback_code()
                    .map(|(slot, code)| (perf_map::callback_symbol(&symbol, slot), code)),
            )
            .collect();
        if perf {
            for (name, code) in &functions {
                perf_map::append(code.as_ptr() as u64, code.len(), name)?;
            }
        }
        // The runtime's functions, and the program's (called directly by a `bpf_loop`).
        let names: Vec<(u64, &str)> = shim_symbols()
            .map(|(n, f)| (f as usize as u64, n))
            .into_iter()
            .chain(
                functions
                    .iter()
                    .map(|(n, code)| (code.as_ptr() as u64, n.as_str())),
            )
            .collect();
        let mut listings: Vec<Listing> = functions
            .iter()
            .zip(listed)
            .filter_map(|((name, code), listed)| {
                let (locs, code_end, cranelift) = listed?;
                let parts = listing::parts(code.len(), &locs);
                let insns = listing::decode(code.as_ptr() as u64, code, code_end, &parts, &names);
                Some(Listing {
                    function: name.clone(),
                    address: code.as_ptr() as u64,
                    code: code.to_vec(),
                    parts,
                    insns,
                    cranelift,
                    arch: std::env::consts::ARCH,
                    callbacks: Vec::new(),
                })
            })
            .collect();
        if !listings.is_empty() {
            let mut main = listings.remove(0);
            main.callbacks = listings;
            jit.listing = Some(Box::new(main));
        }
        Ok(jit)
    }

    /// The slots of the packet accesses the JIT proved from the program's own bounds checks
    /// (`if (data + 34 > data_end) goto drop`), which take no clamp and no check: a run checks
    /// instead that the context fields those proofs start from and end at point into the
    /// packet's region (the primary one) and end inside it, else hands itself to the
    /// interpreter at the load of such a field. Needs the verifier's context hints
    /// ([`Hints::ctx`]) for the loads of those fields.
    pub fn bounds_proven(&self) -> Vec<usize> {
        let proven = &self.ctx_fields.proofs.proven;
        (0..proven.len()).filter(|&pc| proven[pc] != 0).collect()
    }

    /// The slots of the hinted context loads ([`Hints::ctx`]) compiled as a plain read of the
    /// field's kept value, with no compare of their own: each follows a load through the same
    /// register value in its block, with nothing between them that could move the register
    /// or change what the run keeps, and that first load checked for all of them that the
    /// register is the context's address and the run keeps their fields (else it hands the
    /// run to the interpreter).
    pub fn ctx_unchecked(&self) -> Vec<usize> {
        self.ctx_unchecked.clone()
    }

    /// The heads of the loops whose budget is checked once per entry into the loop, for every
    /// trip it can make, instead of once per trip: loops counted down to zero or up to a
    /// constant from a constant, by one, with a single entry (`gen::budget::counted_heads`).
    /// A run that enters one with less budget than all its trips could take is handed to the
    /// interpreter at the head (with the same results).
    pub fn counted_loops(&self) -> Vec<usize> {
        self.counted_loops.clone()
    }

    /// The greatest budget a run of the code takes: a run with more is interpreted (with the
    /// same results). `u64::MAX` but where a packet access is proven through a loop's index
    /// added to a packet pointer: the proof rests on the index growing by at most 2^16 per
    /// instruction, from below 2^32, which bounds it for runs of at most 2^32 instructions.
    pub fn budget_max(&self) -> u64 {
        self.budget_max
    }

    /// The callbacks compiled as functions of their own (`lddw rX, func`'s targets), as
    /// (first slot, the call depth of the frame the code runs in): a helper called one frame
    /// above runs them as native code; from any other depth, and any callback not listed, the
    /// interpreter runs them.
    pub fn compiled_callbacks(&self) -> Vec<(usize, u64)> {
        self.rt
            .callbacks
            .iter()
            .map(|c| (c.slot, c.depth))
            .collect()
    }

    /// [`bpfsim_vm::Vm::run_with_memory`] for compiled code: `r1` points at a writable `input`
    /// and `r2` is its length (both 0 when `input` is empty). A caller that runs the program
    /// many times can keep the run's context between runs with [`JitProgram::session`].
    pub fn run_with_memory(
        &self,
        vm: &mut bpfsim_vm::Vm,
        host: &mut dyn Host,
        input: &mut [u8],
    ) -> Outcome {
        let mut slot = std::mem::MaybeUninit::uninit();
        let ctx = VmCtx::init(&mut slot, &self.rt);
        self.enter_lean(ctx, vm, host, input)
    }

    /// The lean entry of runs on raw memory: no memory map is built unless the run leaves the
    /// fast path (a shim call: a helper, an access the inline check refused, the budget running
    /// out inside a block), in which case the shim builds the very map the full entry would
    /// have (`VmCtx::materialize`). What a run on raw memory needs is set directly: frame 0
    /// cleared if dirty and the fixed rows of the table (`RegionTable::enter_main`), the input
    /// as the primary region (its bounds recomputed only when its row changes), the arguments,
    /// the budget and the host.
    #[inline(always)]
    fn enter_lean(
        &self,
        ctx: &mut VmCtx,
        vm: &mut bpfsim_vm::Vm,
        host: &mut dyn Host,
        input: &mut [u8],
    ) -> Outcome {
        debug_assert!(std::ptr::eq(ctx.rt, &self.rt));
        let len = input.len();
        // The generated code counts the budget as a signed 64-bit number.
        let budget = vm.budget.min(i64::MAX as u64);
        let Some((rows, n)) = ({
            let (stack, table) = vm.parts();
            table.enter_main_reaching(
                stack,
                self.may_write,
                self.main_bytes,
                self.proven_frames,
                input,
            )
        }) else {
            // As the full entry: the input cannot be mapped (`MapError::TooLarge`).
            return Outcome {
                result: Err(Trap::new(TrapCode::MemoryRead, 0, 0)),
                insns: 0,
                tail_call: None,
            };
        };
        ctx.regions = rows;
        ctx.nregions = n as u64;
        // SAFETY: `enter_main` returned a table holding the fixed rows.
        ctx.stack_base = unsafe { shims::stack_base(rows) };
        let (r1, r2, base) = if len == 0 {
            (0, 0, 0)
        } else {
            let addr = (bpfsim_vm::memory::FIXED_ROWS as u64) << bpfsim_vm::memory::REGION_SHIFT;
            (addr, len as u64, input.as_mut_ptr() as u64)
        };
        ctx.set_primary_row([base, r2, r2]);
        if !self.ctx_fields.is_empty() {
            // No context: the values kept from a run of this context with one must not serve.
            ctx.set_ctx_fields(&self.ctx_fields);
            ctx.forget_ctx();
        }
        if self.lookups {
            ctx.fetch_arrays(host);
        }
        if self.slot_lookups {
            ctx.forget_slots();
        }
        if self.loops {
            ctx.fetch_loop(host);
        }
        if self.adjusts {
            // A lean run maps no context: the context's answer would be none, and the helper's
            // shim would ask the host anyway.
            ctx.adjust_ctx = 0;
        }
        if !self.value_maps.is_empty() {
            ctx.fetch_values(host, &self.value_maps, &self.value_need);
        }
        if self.lookups {
            let rows = &self.ctx_fields.rows;
            ctx.fetch_rows(&rows.handles, &rows.need);
        }
        // Made from no memory map's table: nothing a later entry may keep.
        ctx.values_key = [0; 3];
        ctx.lazy_vm = vm;
        ctx.lazy_input = input.as_mut_ptr();
        ctx.lazy_len = len;
        ctx.mem = std::ptr::null_mut();
        let mut host_ref = HostRef { host };
        ctx.host = (&mut host_ref as *mut HostRef<'_>).cast();
        ctx.budget = budget;
        if self.reads_r3_r5 {
            ctx.args[2..].fill(0);
        }
        let out = self.call_entry(ctx, budget, r1, r2);
        if !ctx.mem.is_null() {
            // SAFETY: a lean run's `mem` is set only by `materialize`, which initialised
            // `lazy_map`; it is dropped once, here, and `mem` cleared with it.
            unsafe { ctx.lazy_map.assume_init_drop() };
            ctx.mem = std::ptr::null_mut();
        }
        // As in `enter`: the host dies with this call. (`lazy_vm` and `lazy_input` are read
        // only while a lean run's `mem` is null, and every lean run sets them first.)
        ctx.host = std::ptr::null_mut();
        out
    }

    /// What a session's next run on raw memory can take as set ([`Kept`]), after a run of
    /// [`Self::enter_lean`] on `vm` that returned `materialized` false: `None` when the run
    /// needs more than the bare entry (a context's fields, a host's tables, a budget the
    /// code's entry cannot take). The arguments past `r2` stay 0 as that run left them: the
    /// generated code writes them only with 0 (a `bpf_loop`'s first call), and only `enter`
    /// sets them otherwise.
    pub(crate) fn keep(&self, vm: &mut bpfsim_vm::Vm, ctx: &VmCtx) -> Option<Kept> {
        let budget = vm.budget.min(i64::MAX as u64);
        let bare = self.ctx_fields.is_empty()
            && !self.lookups
            && !self.slot_lookups
            && !self.loops
            && self.value_maps.is_empty()
            && budget >= self.entry_need
            && budget <= self.budget_max
            && !ctx.values_unknown
            && ctx.mem.is_null();
        bare.then(|| Kept {
            reentry: vm
                .parts()
                .0
                .reentry(self.may_write, self.main_bytes, self.proven_frames),
            budget,
        })
    }

    /// [`Self::enter_lean`] again after a run of it on the same `vm` and `ctx` from which
    /// [`Self::keep`] made `kept`: the stack's marks, the table's fixed rows, the stack's base,
    /// the arguments past `r2` and the budget are as that run left them, so that only frame 0's
    /// clearing (`kept`'s reentry), the input's row (when the input is not the last run's) and
    /// the run's pointers are set. A run that built its memory map (a shim did) forgets `kept`.
    ///
    /// # Safety
    /// `kept` is `Some`. Since the run it was made after, nothing but runs of this entry used `vm` or `ctx`
    /// (the session's `vm()` and `run` forget `kept`), and none of them built its memory map;
    /// `input` is at most `u32::MAX` bytes.
    #[inline(always)]
    unsafe fn enter_kept(
        &self,
        ctx: &mut VmCtx,
        vm: &mut bpfsim_vm::Vm,
        kept: &mut Option<Kept>,
        host: &mut dyn Host,
        input: &mut [u8],
    ) -> Outcome {
        debug_assert!(std::ptr::eq(ctx.rt, &self.rt) && ctx.mem.is_null());
        let Some(Kept { reentry, budget }) = *kept else {
            unreachable!("`enter_kept` without `kept`")
        };
        let len = input.len();
        // SAFETY: the caller's contract: this program entered the stack last, and no reference
        // into it is held.
        unsafe { reentry.apply() };
        let (r1, r2) = if len == 0 {
            (0, 0)
        } else {
            let addr = (bpfsim_vm::memory::FIXED_ROWS as u64) << bpfsim_vm::memory::REGION_SHIFT;
            (addr, len as u64)
        };
        if input.as_mut_ptr() != ctx.lazy_input || len != ctx.lazy_len {
            // Another buffer than the last run's (which left its row, and `lazy_input`, set):
            // a replay's or a benchmark's runs mostly reuse one.
            let (rows, n) = vm.parts().1.reenter_rows(input);
            ctx.regions = rows;
            ctx.nregions = n as u64;
            let base = if len == 0 {
                0
            } else {
                input.as_mut_ptr() as u64
            };
            ctx.set_primary_row([base, r2, r2]);
            ctx.lazy_input = input.as_mut_ptr();
            ctx.lazy_len = len;
        }
        ctx.lazy_vm = vm;
        let mut host_ref = HostRef { host };
        ctx.host = (&mut host_ref as *mut HostRef<'_>).cast();
        ctx.budget = budget;
        ctx.status = shims::OK;
        let ret = (self.entry)(ctx, budget, r1, r2);
        let out = if ret.b != shims::SLOW {
            Self::exited(ret, budget)
        } else {
            Self::slow_outcome(ctx, ret.a, budget)
        };
        if !ctx.mem.is_null() {
            // SAFETY: as in `enter_lean`.
            unsafe { ctx.lazy_map.assume_init_drop() };
            ctx.mem = std::ptr::null_mut();
            // (Not returned with the outcome: a pair is copied in 16-byte loads from the
            // outcome's 8-byte stores, a stall longer than the run.)
            *kept = None;
        }
        ctx.host = std::ptr::null_mut();
        out
    }

    /// A session of runs of this program: the run's context ([`JitSession`]) is built once and
    /// each run sets only what changes (the arguments, the memory's rows, the budget).
    pub fn session(&self) -> JitSession<'_> {
        JitSession {
            prog: self,
            vm: bpfsim_vm::Vm::default(),
            ctx: VmCtx::new(&self.rt),
            kept: None,
        }
    }

    /// Run from slot 0 with `r1..r5 = args`, as [`bpfsim_vm::Interpreter::run`] does.
    pub fn run(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        // The last program run on this thread keeps its context for the next run, as a
        // session does: a replay's runs, one per packet, then skip the context's set-up and
        // the primary region's bounds when its row has not moved. A run inside another (a
        // helper that runs a program) takes a fresh context.
        thread_local! {
            static LAST: std::cell::RefCell<Option<(u64, Box<VmCtx>)>> =
                const { std::cell::RefCell::new(None) };
        }
        let kept = LAST.try_with(|last| {
            let mut last = last.try_borrow_mut().ok()?;
            let rt: *const Runtime = &self.rt;
            let fresh = !matches!(&*last, Some((id, ctx)) if *id == self.id && ctx.rt == rt);
            if fresh {
                *last = Some((self.id, Box::new(VmCtx::new(&self.rt))));
            }
            let (_, ctx) = last.as_mut()?;
            Some(self.enter(ctx, mem, host, args, budget))
        });
        if let Ok(Some(out)) = kept {
            return out;
        }
        let mut slot = std::mem::MaybeUninit::uninit();
        let vm = VmCtx::init(&mut slot, &self.rt);
        self.enter(vm, mem, host, args, budget)
    }

    /// A run on a context `vm` made by `VmCtx::new(&self.rt)`, fresh or left by an earlier
    /// run of this program: everything the generated code reads before it writes is set here
    /// (the region table, the budget, the arguments, the memory map and the host), so a
    /// context can serve any number of runs (see [`JitSession`]).
    #[inline(always)]
    fn enter(
        &self,
        vm: &mut VmCtx,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        let mut out = Outcome::default();
        self.enter_into(vm, mem, host, args, budget, &mut out);
        out
    }

    /// [`Self::enter`], the outcome written to `out` in place: returned, it was copied out in
    /// 16-byte loads from the narrower stores that made it, which the CPU cannot forward (a
    /// stall a fifth of each entry of a tail-call chain).
    #[inline(always)]
    fn enter_into(
        &self,
        vm: &mut VmCtx,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        out: &mut Outcome,
    ) {
        let mut host_ref = HostRef { host };
        let (budget, _) = self.begin_runs(vm, mem, &mut host_ref, args, budget);
        let interpret = self.interpreted(vm, budget);
        self.call_entry_into(vm, budget, args[0], args[1], interpret, out);
        self.end_runs(vm, mem);
    }

    /// [`Self::enter`] `n` times (at least once), set up once, as
    /// [`bpfsim_vm::PreparedRuns::execute_repeat`] says: before each run but the first, frame 0
    /// is made clean again and the host told that a run begins; stops after a run that asks for a
    /// tail call. The region table, the primary region and the pointers stay set between runs (a
    /// helper that maps a region refreshes them, `VmCtx::refresh`). The last run's outcome is
    /// written to `out`; returns the number of runs.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn enter_repeat(
        &self,
        vm: &mut VmCtx,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        n: u32,
        out: &mut Outcome,
    ) -> u32 {
        let mut host_ref = HostRef { host };
        let (budget, reentry) = self.begin_runs(vm, mem, &mut host_ref, args, budget);
        let interpret = self.interpreted(vm, budget);
        let mut k = 0;
        loop {
            if k > 0 {
                // Through the context's pointers, which the shims use too: `mem` and `host` are
                // not touched while those are set.
                // SAFETY: `vm.mem` and `vm.host` point at this call's map and host (set by
                // `begin_runs`), and no run is in progress; this program entered frame 0
                // through that map last, with the arguments `reentry` was made with (and no
                // tail call since).
                unsafe {
                    reentry.apply();
                    if self.uses_host {
                        (*(*vm.host).host).begin_run();
                    }
                }
            }
            // Each run's outcome written in place (see `enter_into`), its fields read back.
            self.call_entry_into(vm, budget, args[0], args[1], interpret, out);
            k += 1;
            if out.tail_call.is_some() || k >= n {
                break;
            }
        }
        self.end_runs(vm, mem);
        k
    }

    /// What every entry sets before the code runs (see [`Self::enter`]), with `host_ref` (which
    /// must outlive the runs: the context points at it) as the host: the budget the code takes
    /// and the frame's clearing for each run after the first.
    #[inline(always)]
    fn begin_runs(
        &self,
        vm: &mut VmCtx,
        mem: &mut MemoryMap<'_>,
        host_ref: &mut HostRef<'_>,
        args: [u64; 5],
        budget: u64,
    ) -> (u64, bpfsim_vm::memory::FrameReentry) {
        debug_assert!(std::ptr::eq(vm.rt, &self.rt));
        mem.enter_main_reaching(self.may_write, self.main_bytes, self.proven_frames);
        let reentry = mem.reentry(self.may_write, self.main_bytes, self.proven_frames);
        // The generated code counts the budget as a signed 64-bit number.
        let budget = budget.min(i64::MAX as u64);
        // The host's tables of guest addresses and flags are asked again only under a new
        // number: a chain of tail calls enters each of its programs once a run, on the same
        // host (6-20% of such a run). What the code takes as host addresses (value clamps,
        // rows) is made from the region table below at every entry.
        let epoch = host_ref.host.tables_epoch();
        let fetch = epoch == 0 || epoch != vm.tables_epoch;
        vm.tables_epoch = epoch;
        if self.lookups && fetch {
            // Once per batch: a host's table holds for every run until it is asked again.
            vm.fetch_arrays(host_ref.host);
        }
        if self.slot_lookups {
            // Asked by the code's first slot lookup (`shims::fetch_slots`), not here: it asks
            // again after any other call of the host, which a batch's loop would have to check
            // for after every run (a branch that cost every program's runs 0.5 ns).
            vm.forget_slots();
        }
        if self.loops && fetch {
            vm.fetch_loop(host_ref.host);
        }
        if self.adjusts && fetch {
            vm.fetch_adjust(host_ref.host);
        }
        let (table, n_rows) = mem.region_table();
        vm.regions = table;
        vm.nregions = n_rows as u64;
        // SAFETY: a map's table starts with the fixed rows (`MemoryMap::new`); the stack does
        // not move for the whole batch.
        vm.stack_base = unsafe { shims::stack_base(table) };
        // The clamp bounds and rows are host addresses from this memory map's region table,
        // which the host's number does not cover (another map, or a new one in the same place,
        // under a host that keeps its number): made again unless the map (its serial: rows are
        // only appended) and its length are those they were made from, under the same number
        // (the programs of a chain of tail calls, each entered once a run).
        // Word by word: an array compare loads 16 bytes from the key's 8-byte stores, which the
        // CPU cannot forward (a stall a third of a tail call's entry).
        let (serial, rows) = (mem.serial(), n_rows as u64);
        let kept = epoch != 0
            && vm.values_key[0] == serial
            && vm.values_key[1] == rows
            && vm.values_key[2] == epoch;
        vm.values_key[0] = serial;
        vm.values_key[1] = rows;
        vm.values_key[2] = epoch;
        if !self.value_maps.is_empty() && !kept {
            vm.fetch_values(host_ref.host, &self.value_maps, &self.value_need);
        }
        if self.lookups && !kept {
            // After the array table and the regions, which the rows are checked against.
            let rows = &self.ctx_fields.rows;
            vm.fetch_rows(&rows.handles, &rows.need);
        }
        vm.budget = budget;
        // r1 and r2 go in registers; r3-r5 through the context, only for a program that reads
        // them. Word by word: the caller wrote `args` in 8-byte stores, which the CPU cannot
        // forward to the 16-byte loads of an array copy (a stall longer than the whole run).
        if self.reads_r3_r5 {
            let [_, _, r3, r4, r5] = args;
            vm.args[2] = r3;
            vm.args[3] = r4;
            vm.args[4] = r5;
        }
        vm.mem = (mem as *mut MemoryMap<'_>).cast();
        vm.host = (host_ref as *mut HostRef<'_>).cast();
        vm.set_primary();
        vm.set_ctx_fields(&self.ctx_fields);
        vm.refresh_ctx();
        (budget, reentry)
    }

    /// What every entry undoes after its runs (see [`Self::begin_runs`]).
    #[inline(always)]
    fn end_runs(&self, vm: &mut VmCtx, mem: &mut MemoryMap<'_>) {
        // The pointers die with the entry: clear them so that no later use of the context can
        // reach the map or the host of this run.
        vm.mem = std::ptr::null_mut();
        vm.host = std::ptr::null_mut();
        if !self.ctx_fields.stores.is_empty() {
            // The code may have stored into the context's cells, which leave its stamp as it
            // was: whoever keeps its fields by stamp (the next batch, another program's runs)
            // reads them again. This batch's own kept values followed its stores.
            mem.ctx_written();
        }
    }

    /// One run of the generated code on a context set up for it, and its result.
    #[inline(always)]
    fn call_entry(&self, vm: &mut VmCtx, budget: u64, r1: u64, r2: u64) -> Outcome {
        let interpret = self.interpreted(vm, budget);
        let mut out = Outcome::default();
        self.call_entry_into(vm, budget, r1, r2, interpret, &mut out);
        out
    }

    /// Whether a run with `budget` on `vm` is the interpreter's from its start: a budget the
    /// code's entry cannot take (below its first stretch's need, or above what its proofs allow),
    /// or value maps the host did not place. The same for every run of a batch.
    #[inline(always)]
    fn interpreted(&self, vm: &VmCtx, budget: u64) -> bool {
        budget < self.entry_need || budget > self.budget_max || vm.values_unknown
    }

    /// [`Self::call_entry`] with [`Self::interpreted`] already asked (once for a batch's runs:
    /// three compares a run were a register more in the batch's loop, `self` then reloaded from
    /// the stack at every run), the outcome written to `out` in place (see
    /// [`Self::enter_into`]).
    #[inline(always)]
    fn call_entry_into(
        &self,
        vm: &mut VmCtx,
        budget: u64,
        r1: u64,
        r2: u64,
        interpret: bool,
        out: &mut Outcome,
    ) {
        vm.status = shims::OK;
        if interpret {
            *out = self.hand_over_at_entry(vm, budget, r1, r2);
            return;
        }
        let ret = (self.entry)(vm, budget, r1, r2);
        if ret.b != shims::SLOW {
            *out = Self::exited(ret, budget);
        } else {
            Self::slow_outcome_into(vm, ret.a, budget, out);
        }
    }

    /// What the code's budget check at slot 0 would have done (the code has none), the way of
    /// a run with more budget than its proofs allow ([`JitProgram::budget_max`]), and the
    /// way of a run whose host did not place its value maps (`VmCtx::values_unknown`): hand the
    /// whole run to the interpreter, with the registers as the code's prologue sets them (a
    /// register no instruction reads is never seen) and nothing counted yet.
    #[cold]
    #[inline(never)]
    fn hand_over_at_entry(&self, vm: &mut VmCtx, budget: u64, r1: u64, r2: u64) -> Outcome {
        let mut regs = [0; 11];
        regs[1] = r1;
        regs[2] = r2;
        if self.reads_r3_r5 {
            regs[3..6].copy_from_slice(&vm.args[2..5]);
        }
        regs[10] = bpfsim_vm::memory::frame_pointer(0);
        vm.regs = std::mem::MaybeUninit::new(regs);
        vm.left_at_block = budget;
        vm.budget_pc = 0;
        vm.budget_depth = 0;
        Self::slow_outcome(vm, shims::BUDGET, budget)
    }

    /// The result of a run that exited: the generated code returned `(r0, left)`.
    #[inline(always)]
    fn exited(ret: Ret, budget: u64) -> Outcome {
        Outcome {
            result: Ok(ret.a),
            insns: budget - ret.b,
            tail_call: None,
        }
    }

    /// The result of a run whose generated code returned `(status, SLOW)`, while its memory
    /// map and host are still set: the budget ran out inside a block (the interpreter finishes
    /// the run), a trap or a tail call.
    #[cold]
    #[inline(never)]
    fn slow_outcome(vm: &mut VmCtx, status: u64, budget: u64) -> Outcome {
        let mut out = Outcome::default();
        Self::slow_outcome_into(vm, status, budget, &mut out);
        out
    }

    /// [`Self::slow_outcome`], written to `out` in place (see [`Self::enter_into`]).
    #[cold]
    #[inline(never)]
    fn slow_outcome_into(vm: &mut VmCtx, status: u64, budget: u64, out: &mut Outcome) {
        let status = if status == shims::BUDGET {
            // SAFETY: `vm` is this run's context, its map and host set by the entry.
            let ret = unsafe { shims::budget_tail(vm) };
            if ret.b != shims::SLOW {
                *out = Self::exited(ret, budget);
                return;
            }
            ret.a
        } else {
            status
        };
        let insns = budget - vm.left;
        *out = match status {
            shims::TAIL_CALL => Outcome {
                result: Ok(0),
                insns,
                tail_call: Some(vm.status_value as u32),
            },
            _ => Self::trapped(vm, insns),
        };
    }

    fn trapped(vm: &VmCtx, insns: u64) -> Outcome {
        let code = TrapCode::from_u8(vm.trap_code as u8).unwrap_or(TrapCode::Unsupported);
        Outcome {
            result: Err(Trap {
                code,
                pc: vm.trap_pc as usize,
                detail: vm.trap_detail,
                size: vm.trap_size as u8,
            }),
            insns,
            tail_call: None,
        }
    }
}

/// A context field access as the run's kept values and cells name it
/// ([`shims::VmCtx::ctx_key`], [`shims::VmCtx::ctx_skey`]): the offset in the low 32 bits,
/// the access's bytes above.
pub(crate) fn ctx_field_key(off: u32, size: bpfsim_vm::isa::Size) -> u64 {
    off as u64 | (size.bytes() as u64) << 32
}

/// The context accesses the hints say reach a field ([`Hints::ctx`]), by slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CtxFields {
    /// Loads whose values the run keeps: the first [`shims::CTX_SLOTS`] distinct fields.
    pub loads: Vec<u64>,
    /// Stores the code makes straight into the context's cell when it has one: the first
    /// [`shims::STORE_SLOTS`] distinct fields, but for those a kept load overlaps without lying
    /// inside (the code updates the kept values a store covers, and only those).
    pub stores: Vec<u64>,
    /// The accesses the JIT proves from the program's own bounds checks, and what the run must
    /// check of each kept load's field for those proofs to hold (`gen::bounds`).
    pub proofs: gen::bounds::Proofs,
    /// The lookups answered from rows fixed for a batch, and the accesses proven through their
    /// results (`gen::rows`). Not a context's, but fixed per compile and read by every
    /// function's code generator as the proofs are.
    pub rows: gen::rows::Rows,
}

impl CtxFields {
    pub fn is_empty(&self) -> bool {
        self.loads.is_empty() && self.stores.is_empty()
    }
}

pub(crate) fn ctx_fields(prog: &Program, hints: &Hints) -> CtxFields {
    let mut f = CtxFields::default();
    let hinted = |pc: usize| hints.ctx.get(pc).copied().unwrap_or(false);
    for (pc, insn) in prog.iter() {
        if let Some((key, false)) = ctx_access(insn) {
            if hinted(pc) && !f.loads.contains(&key) && f.loads.len() < shims::CTX_SLOTS {
                f.loads.push(key);
            }
        }
    }
    let span = |k: u64| (k as u32, k as u32 as u64 + (k >> 32));
    for (pc, insn) in prog.iter() {
        if let Some((key, true)) = ctx_access(insn) {
            let (lo, hi) = span(key);
            let straddled = f.loads.iter().any(|&l| {
                let (a, b) = span(l);
                (a as u64) < hi && (lo as u64) < b && !(a >= lo && b <= hi)
            });
            if hinted(pc)
                && !straddled
                && !f.stores.contains(&key)
                && f.stores.len() < shims::STORE_SLOTS
            {
                f.stores.push(key);
            }
        }
    }
    let pcs: Vec<usize> = prog.iter().map(|(pc, _)| pc).collect();
    let field = |pc: usize, size, off: i16, signed: bool| {
        if signed || off < 0 || !hinted(pc) {
            return None;
        }
        let key = ctx_field_key(off as u32, size);
        f.loads.iter().position(|&l| l == key)
    };
    let harmless_store = |pc: usize| {
        hints.packet.get(pc).copied().unwrap_or(false)
            || hints.stack.get(pc).copied().unwrap_or(false)
            || hints.map_value.get(pc).copied().flatten().is_some()
            || matches!(prog.insns()[pcs.partition_point(|&p| p < pc)], Insn::Store { dst, .. } if dst.index() == 10)
    };
    let proofs = gen::bounds::prove(
        prog.insns(),
        &pcs,
        prog.subprograms(),
        &gen::bounds::Inputs {
            field: &field,
            harmless_store: &harmless_store,
            fields: f.loads.len(),
        },
    );
    f.proofs = proofs;
    f.rows = gen::rows::analyse(prog.insns(), &pcs, prog.subprograms(), &hints.lookup);
    f
}

/// Whether some `bpf_map_lookup_elem` call of `prog` is compiled with a way that reads the
/// run's array or key tables ([`Hints::lookup`]): only then need a run fetch them.
fn reads_lookup_tables(prog: &Program, hints: &Hints) -> bool {
    prog.iter().any(|(pc, i)| {
        matches!(i, Insn::Call(CallTarget::Helper(id)) if *id as u32 == bpfsim_vm::host::MAP_LOOKUP_ELEM)
            && hints.lookup.get(pc).copied().flatten() != Some(LookupPath::Helper)
    })
}

/// The maps of the value accesses the hints prove ([`Hints::map_value`]), in the order the
/// program first accesses them, the first [`MAX_VALUE_MAPS`].
pub(crate) fn value_maps(prog: &Program, hints: &Hints) -> Vec<u32> {
    let mut maps = Vec::new();
    for (pc, insn) in prog.iter() {
        let access = match insn {
            Insn::Load { .. } | Insn::Store { .. } => true,
            Insn::Atomic { op, .. } => value_atomic(*op),
            _ => false,
        };
        if !access {
            continue;
        }
        if let Some(Some(m)) = hints.map_value.get(pc) {
            if !maps.contains(m) && maps.len() < MAX_VALUE_MAPS {
                maps.push(*m);
            }
        }
    }
    maps
}

/// Whether a proven map value access by atomic `op` is compiled inline
/// ([`Hints::map_value`]): the read-modify-writes; load-acquire and store-release keep their call.
pub(crate) fn value_atomic(op: AtomicOp) -> bool {
    !matches!(op, AtomicOp::LoadAcquire | AtomicOp::StoreRelease)
}

/// The register that gets the old value an atomic `op` reads, if any: r0 for `cmpxchg`, the
/// source register for `xchg`, the fetching operations and `load_acquire` (which reads into
/// it); `None` for the plain read-modify-writes and `store_release`.
pub(crate) fn atomic_result(op: AtomicOp, src: bpfsim_vm::isa::Reg) -> Option<bpfsim_vm::isa::Reg> {
    match op {
        AtomicOp::CmpXchg => Some(bpfsim_vm::isa::Reg::R0),
        AtomicOp::LoadAcquire
        | AtomicOp::Xchg
        | AtomicOp::Add { fetch: true }
        | AtomicOp::Or { fetch: true }
        | AtomicOp::And { fetch: true }
        | AtomicOp::Xor { fetch: true } => Some(src),
        _ => None,
    }
}

/// The field of a load or store that may reach the context at a non-negative offset
/// ([`ctx_field_key`]), and whether it is a store.
pub(crate) fn ctx_access(insn: &Insn) -> Option<(u64, bool)> {
    match *insn {
        Insn::Load { size, off, .. } if off >= 0 => Some((ctx_field_key(off as u32, size), false)),
        Insn::Store { size, off, .. } if off >= 0 => Some((ctx_field_key(off as u32, size), true)),
        _ => None,
    }
}

impl bpfsim_vm::Executable for JitProgram {
    fn execute(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        self.run(mem, host, args, budget)
    }

    fn prepare(&self) -> Option<Box<dyn bpfsim_vm::PreparedRuns + '_>> {
        Some(Box::new(session::Prepared {
            prog: self,
            ctx: VmCtx::new(&self.rt),
        }))
    }
}
