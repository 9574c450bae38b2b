//! `PTR_TO_BTF_ID`: pointers to kernel structs described by the kernel's BTF. A tracing
//! program's pointer arguments are typed so (`btf_ctx_access`), a load through one walks the
//! struct (`check_ptr_to_btf_access`, `btf_struct_access`): a scalar member gives a scalar, a
//! pointer member to a struct another `PTR_TO_BTF_ID` whose trust follows the kernel's rules
//! (the `<struct>__safe_trusted`/`__safe_rcu`... lists are read from the kernel's BTF, where the
//! kernel emits them), a pointer to anything else read-only untrusted memory of size 0.

use bpfsim_vm::loader::{AttachTarget, AttachType, Btf, BtfKind, TargetBtf};
use bpfsim_vm::spec::ProgType;

use crate::domain::reg::{
    intern_btf_name, Reg, RegType, BTF_PERCPU, BTF_RCU, BTF_TRUSTED, BTF_UNTRUSTED, BTF_USER,
};
use crate::explore::Verifier;

use super::mem::Access;

/// `reg_type_str` of a `PTR_TO_BTF_ID` (or flagged `PTR_TO_MEM`), without the struct's name:
/// `trusted_ptr_`, `rcu_ptr_or_null_`, `rdonly_untrusted_mem`.
pub fn flags_str(r: &Reg) -> String {
    let f = r.btf_flags;
    let mut s = String::new();
    if r.ty == RegType::Mem && r.rdonly {
        s.push_str("rdonly_");
    }
    for (bit, name) in [
        (BTF_USER, "user_"),
        (BTF_PERCPU, "percpu_"),
        (BTF_RCU, "rcu_"),
        (BTF_UNTRUSTED, "untrusted_"),
        (BTF_TRUSTED, "trusted_"),
    ] {
        if f & bit != 0 {
            s.push_str(name);
        }
    }
    if r.ty == RegType::BtfId {
        s.push_str("ptr_");
        if r.maybe_null {
            s.push_str("or_null_");
        }
    } else {
        s.push_str("mem");
        if r.maybe_null {
            s.push_str("_or_null");
        }
    }
    s
}

/// `is_trusted_reg`: trusted, with no flag that makes it less so, or a reference.
pub fn is_trusted(r: &Reg) -> bool {
    r.ty == RegType::BtfId && (r.ref_obj_id != 0 || (r.btf_flags == BTF_TRUSTED && !r.maybe_null))
}

/// `reg_not_null` for the pointers this module makes: only a trusted one is known non-NULL.
pub fn known_non_null(r: &Reg) -> bool {
    match r.ty {
        RegType::BtfId => is_trusted(r),
        RegType::Mem => r.btf_flags & BTF_UNTRUSTED == 0,
        _ => true,
    }
}

fn is_modifier(k: &BtfKind) -> Option<u32> {
    match *k {
        BtfKind::Typedef { target }
        | BtfKind::Volatile { target }
        | BtfKind::Const { target }
        | BtfKind::Restrict { target }
        | BtfKind::TypeTag { target } => Some(target),
        _ => None,
    }
}

/// `btf_type_skip_modifiers`: the id after typedefs, qualifiers and type tags.
fn skip_mods(btf: &Btf, mut id: u32) -> u32 {
    for _ in 0..32 {
        match btf.type_by_id(id).and_then(|t| is_modifier(&t.kind)) {
            Some(next) => id = next,
            None => break,
        }
    }
    id
}

fn is_struct(btf: &Btf, id: u32) -> bool {
    matches!(
        btf.type_by_id(id).map(|t| &t.kind),
        Some(BtfKind::Struct { .. } | BtfKind::Union { .. })
    )
}

fn name(btf: &Btf, id: u32) -> &str {
    btf.type_by_id(id).map(|t| t.name.as_str()).unwrap_or("")
}

/// The flag a type tag directly on a pointer's target gives (`__user`, `__percpu`, `__rcu`).
fn tag_flag(btf: &Btf, id: u32, rcu: bool) -> u8 {
    match btf.type_by_id(id) {
        Some(t) if matches!(t.kind, BtfKind::TypeTag { .. }) => match t.name.as_str() {
            "user" => BTF_USER,
            "percpu" => BTF_PERCPU,
            "rcu" if rcu => BTF_RCU,
            _ => 0,
        },
        _ => 0,
    }
}

/// `prog_args_trusted`: whose pointer arguments the kernel trusts.
fn args_trusted(prog: ProgType, attach: Option<AttachType>, target: &AttachTarget) -> bool {
    match prog {
        ProgType::Tracing => matches!(attach, Some(AttachType::TraceRawTp | AttachType::TraceIter)),
        // `bpf_lsm_is_trusted`: all hooks but those that see objects being set up or torn down.
        ProgType::Lsm => !matches!(
            target.btf_name.as_str(),
            "bpf_lsm_bpf_map_free"
                | "bpf_lsm_bpf_prog_free"
                | "bpf_lsm_file_alloc_security"
                | "bpf_lsm_file_free_security"
                | "bpf_lsm_sk_alloc_security"
                | "bpf_lsm_sk_free_security"
                | "bpf_lsm_task_free"
        ),
        _ => false,
    }
}

/// The context slot `off` of a BTF-attached program, when it is a pointer to a struct: the
/// `PTR_TO_BTF_ID` the kernel loads it as, and the line `btf_ctx_access` logs for it. `None`
/// when the slot is something else or the target came without the kernel's BTF.
pub fn ctx_arg(
    target: &AttachTarget,
    prog: ProgType,
    attach: Option<AttachType>,
    off: i32,
) -> Option<(Reg, Option<String>)> {
    let btf = target.kernel.as_ref()?.0.btf();
    let (proto, skip) = match &btf.type_by_id(target.btf_id)?.kind {
        BtfKind::Func { proto, .. } => (*proto, 0),
        BtfKind::Typedef { target } => match btf.type_by_id(*target)?.kind {
            BtfKind::Ptr { target } => (target, 1),
            _ => return None,
        },
        _ => return None,
    };
    let BtfKind::FuncProto { ret, params } = &btf.type_by_id(proto)?.kind else {
        return None;
    };
    let arg = usize::try_from(off / 8).ok()?;
    let params = params.get(skip..)?;
    let (ty, nullable) = match params.get(arg) {
        Some(p) => (p.type_id, p.name.ends_with("__nullable")),
        None if arg == params.len() => (*ret, false),
        None => return None,
    };
    let ptr = skip_mods(btf, ty);
    let BtfKind::Ptr { target: pointee } = btf.type_by_id(ptr)?.kind else {
        return None;
    };
    let id = skip_mods(btf, pointee);
    let kind = match btf.type_by_id(id)?.kind {
        BtfKind::Struct { .. } => "STRUCT",
        BtfKind::Union { .. } => "UNION",
        _ => return None,
    };
    let mut r = Reg::ptr(RegType::BtfId);
    r.btf_id = id;
    r.btf_name = intern_btf_name(name(btf, id));
    r.btf_flags = tag_flag(btf, pointee, false);
    if args_trusted(prog, attach, target) {
        r.btf_flags |= BTF_TRUSTED;
    }
    r.maybe_null = nullable;
    if attach == Some(AttachType::TraceIter) && arg > 0 {
        // An iterator's objects after its `bpf_iter_meta` are NULL at the iteration's end: the
        // target registers them in `ctx_arg_info` (`PTR_TO_BTF_ID_OR_NULL`, trusted for tasks
        // and cgroups), which the kernel takes without logging the argument.
        r.maybe_null = true;
        r.btf_flags = if matches!(
            target.btf_name.as_str(),
            "bpf_iter_task" | "bpf_iter_cgroup"
        ) {
            BTF_TRUSTED
        } else {
            0
        };
        return Some((r, None));
    }
    let tname = target
        .btf_name
        .strip_prefix("btf_trace_")
        .unwrap_or(&target.btf_name);
    let line = format!(
        "func '{tname}' arg{arg} has btf_id {id} type {kind} '{}'",
        name(btf, id)
    );
    Some((r, Some(line)))
}

/// What `btf_struct_walk` found at an offset.
enum Walk {
    Scalar,
    /// A pointer to a struct: its id, the flags its tags and the walk gave, the member's name.
    Ptr(u32, u8, String),
    /// A pointer to something else.
    PtrUntrusted,
    /// A struct starting exactly at the offset.
    Struct(u32),
}

/// `__btf_resolve_size`: (the member's type after modifiers, or the outermost array; its size;
/// the element type and id; the number of elements; the id to use for a struct member).
fn resolve_size(btf: &Btf, mut id: u32) -> Option<(u32, u32, u32, u32, u32, u32)> {
    let mut array: Option<u32> = None;
    let mut nelems: u32 = 1;
    let mut mod_id = 0;
    let start = id;
    for _ in 0..32 {
        let t = btf.type_by_id(id)?;
        let size = match &t.kind {
            BtfKind::Int { size, .. }
            | BtfKind::Struct { size, .. }
            | BtfKind::Union { size, .. }
            | BtfKind::Enum { size, .. }
            | BtfKind::Float { size }
            | BtfKind::Enum64 { size, .. } => *size,
            BtfKind::Ptr { .. } => 8,
            k => {
                if let Some(next) = is_modifier(k) {
                    mod_id = next;
                    id = next;
                    continue;
                }
                if let BtfKind::Array {
                    elem, nelems: n, ..
                } = *k
                {
                    array.get_or_insert(id);
                    if nelems != 0 && n > u32::MAX / nelems {
                        return None;
                    }
                    nelems *= n;
                    id = elem;
                    continue;
                }
                return None;
            }
        };
        if nelems != 0 && size > u32::MAX / nelems {
            return None;
        }
        let mid = if mod_id != 0 { mod_id } else { start };
        return Some((array.unwrap_or(id), nelems * size, id, mod_id, nelems, mid));
    }
    None
}

/// `btf_struct_walk`: what a `size`-byte read at `off` of struct `id` reaches.
fn struct_walk(btf: &Btf, id: u32, off: u32, size: u32, flag: &mut u8) -> Result<Walk, String> {
    let mut tid = id;
    let mut off = off;
    'again: loop {
        tid = skip_mods(btf, tid);
        let tname = name(btf, tid).to_string();
        let (tsize, members, union) = match btf.type_by_id(tid).map(|t| &t.kind) {
            Some(BtfKind::Struct { size, members }) => (*size, members, false),
            Some(BtfKind::Union { size, members }) => (*size, members, true),
            _ => return Err(format!("Type '{tname}' is not a struct")),
        };
        if union && members.len() != 1 && *flag & BTF_UNTRUSTED == 0 {
            *flag |= BTF_UNTRUSTED;
        }
        if off as u64 + size as u64 > tsize as u64 {
            let beyond = || format!("access beyond struct {tname} at off {off} size {size}");
            // A flexible array at the end may be read past the struct's size.
            let Some(last) = members.last() else {
                return Err(beyond());
            };
            let mt = skip_mods(btf, last.type_id);
            let Some(BtfKind::Array { elem, nelems, .. }) = btf.type_by_id(mt).map(|t| &t.kind)
            else {
                return Err(beyond());
            };
            let moff = last.bit_offset / 8;
            if *nelems != 0 || off < moff {
                return Err(beyond());
            }
            let e = skip_mods(btf, *elem);
            match btf.type_by_id(e).map(|t| &t.kind) {
                Some(BtfKind::Int { .. }) => return Ok(Walk::Scalar),
                Some(BtfKind::Struct { size: es, .. } | BtfKind::Union { size: es, .. })
                    if *es != 0 =>
                {
                    off = (off - moff) % es;
                    tid = e;
                    continue 'again;
                }
                _ => return Err(beyond()),
            }
        }
        for m in members {
            let mut moff = m.bit_offset / 8;
            if off + size <= moff {
                break;
            }
            if m.bitfield_size != 0 {
                let end_bit = m.bit_offset + m.bitfield_size;
                if off <= moff && end_bit.div_ceil(8) <= off + size {
                    return Ok(Walk::Scalar);
                }
                continue;
            }
            if off < moff {
                break;
            }
            let Some((mut mtype, mut msize, elem, elem_id, total, mut mid)) =
                resolve_size(btf, m.type_id)
            else {
                return Err(format!("field {} doesn't have size", m.name));
            };
            let mtrue_end = moff + msize;
            if off >= mtrue_end {
                continue;
            }
            if matches!(
                btf.type_by_id(mtype).map(|t| &t.kind),
                Some(BtfKind::Array { .. })
            ) {
                if moff == mtrue_end {
                    continue;
                }
                msize /= total;
                moff += (off - moff) / msize * msize;
                mtype = elem;
                mid = elem_id;
            }
            match btf.type_by_id(mtype).map(|t| &t.kind) {
                Some(BtfKind::Struct { .. } | BtfKind::Union { .. }) => {
                    if off == moff {
                        return Ok(Walk::Struct(mid));
                    }
                    off -= moff;
                    tid = mtype;
                    continue 'again;
                }
                Some(BtfKind::Ptr { target }) => {
                    if msize != size || off != moff {
                        return Err(format!(
                            "cannot access ptr member {} with moff {moff} in struct {tname} with off {off} size {size}",
                            m.name
                        ));
                    }
                    let tag = tag_flag(btf, *target, true);
                    let s = skip_mods(btf, *target);
                    if is_struct(btf, s) {
                        *flag |= tag;
                        return Ok(Walk::Ptr(s, *flag, m.name.clone()));
                    }
                    return Ok(Walk::PtrUntrusted);
                }
                _ => {}
            }
            if off + size > mtrue_end && *flag & BTF_UNTRUSTED == 0 {
                return Err(format!(
                    "access beyond the end of member {} (mend:{mtrue_end}) in struct {tname} with off {off} size {size}",
                    m.name
                ));
            }
            return Ok(Walk::Scalar);
        }
        return Err(format!("struct {tname} doesn't have field at offset {off}"));
    }
}

/// `btf_nested_type_is_trusted`: whether `<parent's name><suffix>` in the kernel's BTF has a
/// pointer member named `field` to type `id`.
fn nested_is(kernel: &TargetBtf, parent: u32, field: &str, id: u32, suffix: &str) -> bool {
    let btf = kernel.btf();
    let Some(p) = btf.type_by_id(parent) else {
        return false;
    };
    let safe = format!("{}{suffix}", p.name);
    let same_kind = |k: &BtfKind| {
        matches!(
            (k, &p.kind),
            (BtfKind::Struct { .. }, BtfKind::Struct { .. })
                | (BtfKind::Union { .. }, BtfKind::Union { .. })
        )
    };
    let Some(sid) = kernel.find(&safe, same_kind) else {
        return false;
    };
    let members = match btf.type_by_id(sid).map(|t| &t.kind) {
        Some(BtfKind::Struct { members, .. } | BtfKind::Union { members, .. }) => members,
        _ => return false,
    };
    members.iter().any(|m| {
        matches!(btf.type_by_id(m.type_id).map(|t| &t.kind), Some(BtfKind::Ptr { target })
            if skip_mods(btf, *target) == id && m.name == field)
    })
}

impl Verifier<'_> {
    /// `check_ptr_to_btf_access`: a load or store of `size` bytes at `off` (the instruction's
    /// offset) of `reg`, a non-NULL `PTR_TO_BTF_ID`; a read gives the loaded register (None
    /// for a scalar of the load's width).
    pub fn check_ptr_to_btf_access(
        &mut self,
        reg: &Reg,
        rn: u8,
        off: i32,
        size: u32,
        t: Access,
    ) -> Result<Option<Reg>, String> {
        let Some(kernel) = self.opts.attach_btf.as_ref().and_then(|t| t.kernel.clone()) else {
            return Err(format!(
                "R{rn} invalid mem access '{}' (no kernel BTF)",
                flags_str(reg)
            ));
        };
        let btf = kernel.0.btf();
        let tname = name(btf, reg.btf_id).to_string();
        if !self.opts.gpl {
            return Err(format!(
                "Cannot access kernel 'struct {tname}' from non-GPL compatible program"
            ));
        }
        let off = off + reg.off;
        if off < 0 {
            return Err(format!(
                "R{rn} is ptr_{tname} invalid negative access: off={off}"
            ));
        }
        if !reg.var_off.is_const() || reg.var_off.value != 0 {
            return Err(format!(
                "R{rn} is ptr_{tname} invalid variable offset: off={off}, var_off={}",
                reg.var_off
            ));
        }
        if reg.btf_flags & BTF_USER != 0 {
            return Err(format!(
                "R{rn} is ptr_{tname} access user memory: off={off}"
            ));
        }
        if reg.btf_flags & BTF_PERCPU != 0 {
            return Err(format!(
                "R{rn} is ptr_{tname} access percpu memory: off={off}"
            ));
        }
        if t != Access::Read {
            return Err("only read is supported".to_string());
        }
        let mut id = reg.btf_id;
        let mut at = off as u32;
        let mut flag = 0u8;
        let walked = loop {
            match struct_walk(btf, id, at, size, &mut flag)? {
                Walk::Struct(next) => {
                    id = next;
                    at = 0;
                }
                w => break w,
            }
        };
        match walked {
            Walk::Scalar | Walk::Struct(_) => Ok(None),
            Walk::PtrUntrusted => {
                let mut m = Reg::ptr(RegType::Mem);
                m.rdonly = true;
                m.btf_flags = BTF_UNTRUSTED;
                Ok(Some(m))
            }
            Walk::Ptr(child, mut flag, field) => {
                let mut maybe_null = false;
                if reg.btf_flags & BTF_UNTRUSTED != 0 {
                    flag = BTF_UNTRUSTED;
                } else if is_trusted(reg) || reg.btf_flags & BTF_RCU != 0 {
                    let nested = |suffix| nested_is(&kernel.0, reg.btf_id, &field, child, suffix);
                    // Programs here are not sleepable: always inside an RCU section.
                    let in_rcu_cs = true;
                    if nested("__safe_trusted") {
                        flag |= BTF_TRUSTED;
                    } else if nested("__safe_trusted_or_null") {
                        flag |= BTF_TRUSTED;
                        maybe_null = true;
                    } else if in_rcu_cs && !reg.maybe_null {
                        let rcu_or_null = nested("__safe_rcu_or_null");
                        if nested("__safe_rcu") {
                            flag |= BTF_RCU;
                        } else if flag & BTF_RCU != 0 || rcu_or_null {
                            flag |= BTF_RCU;
                            maybe_null = true;
                            if rcu_or_null {
                                flag &= !BTF_UNTRUSTED;
                            }
                        } else if flag & (BTF_PERCPU | BTF_USER) == 0 {
                            // Any other member: the kernel here (6.18) gives an untrusted
                            // pointer (`task->mm` is `untrusted_ptr_mm_struct()`), not the
                            // plain `ptr_` some versions give.
                            flag = BTF_UNTRUSTED;
                        }
                    } else {
                        flag = BTF_UNTRUSTED;
                    }
                } else {
                    flag &= !(BTF_TRUSTED | BTF_RCU);
                }
                let mut p = Reg::ptr(RegType::BtfId);
                p.btf_id = child;
                p.btf_name = intern_btf_name(name(btf, child));
                p.btf_flags = flag;
                if maybe_null {
                    p.maybe_null = true;
                    p.id = self.new_id();
                }
                Ok(Some(p))
            }
        }
    }
}
