//! BTF attach targets of tracing (`fentry`, `fexit`, `fmod_ret`, `tp_btf`, `iter`) and LSM
//! programs, found in the kernel's BTF by name as libbpf's `find_attach_btf_id` finds them: the
//! section's target with a prefix and a kind per attach type (`btf_trace_<tp>` typedef,
//! `bpf_lsm_<hook>` and `bpf_iter_<name>` functions, the function itself). The kernel takes the
//! id as `attach_btf_id`; the verifier reads the target's arguments as the program's context.

use std::sync::Arc;

use super::btf::{Btf, BtfKind};
use super::sections::AttachType;
use super::target::TargetBtf;

/// The kernel BTF an attach target was found in, shared: the verifier walks its structs for
/// the target's pointer arguments (`PTR_TO_BTF_ID`). Equal when it is the same parse.
#[derive(Clone)]
pub struct KernelBtf(pub Arc<TargetBtf>);

impl PartialEq for KernelBtf {
    fn eq(&self, other: &KernelBtf) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for KernelBtf {}

impl std::fmt::Debug for KernelBtf {
    // The whole vmlinux BTF would be megabytes of output: its source says which it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelBtf({})", self.0.source())
    }
}

/// What a tracing program's context slot (one `u64`) holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TracingArgKind {
    /// An integer or enum (`btf_type_is_small_int`, any enum): read as a scalar.
    Scalar,
    /// A pointer: the kernel types pointers to structs as `PTR_TO_BTF_ID`, others as scalars.
    Pointer { to_struct: bool },
    /// Something the kernel does not let a program read through the context (a struct or
    /// float by value, ...).
    Other,
}

/// One argument (or the return value) of an attach target.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TracingArg {
    pub name: String,
    /// The C spelling of its type in the kernel's BTF.
    pub type_name: String,
    pub kind: TracingArgKind,
}

/// A program's attach target in the kernel's BTF.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AttachTarget {
    /// The BTF name looked up: `do_nanosleep`, `btf_trace_sched_switch`, `bpf_lsm_file_open`.
    pub btf_name: String,
    /// Its id in the kernel's BTF: `attach_btf_id` of `BPF_PROG_LOAD`.
    pub btf_id: u32,
    /// The target function (for `fentry`/`fexit`/`fmod_ret`/`lsm`/`iter`) or tracepoint (for
    /// `tp_btf`, the prototype without its leading `void *__data`) arguments, one context slot
    /// each.
    pub args: Vec<TracingArg>,
    /// The function's return value (`None` for `void`), which `fexit`, `fmod_ret` and LSM
    /// programs read in the slot after the arguments.
    pub ret: Option<TracingArg>,
    /// The BTF `btf_id` is an id of (None when the target was made by hand).
    pub kernel: Option<KernelBtf>,
}

/// The prefix and the kind of the BTF type libbpf looks up for an attach type, or `None` when
/// the type has no BTF target.
fn lookup_rule(attach: AttachType) -> Option<(&'static str, bool)> {
    // (prefix, is the type a typedef rather than a FUNC)
    match attach {
        AttachType::TraceRawTp => Some(("btf_trace_", true)),
        AttachType::LsmMac | AttachType::LsmCgroup => Some(("bpf_lsm_", false)),
        AttachType::TraceIter => Some(("bpf_iter_", false)),
        AttachType::TraceFentry | AttachType::TraceFexit | AttachType::ModifyReturn => {
            Some(("", false))
        }
        _ => None,
    }
}

/// The target a section names (`fentry/do_nanosleep` -> `do_nanosleep`), if its attach type
/// has a BTF target and the section names one (a bare `SEC("fentry")` is attached at run time).
pub(crate) fn section_target(
    section: &str,
    attach: Option<AttachType>,
) -> Option<(&str, AttachType)> {
    let attach = attach?;
    lookup_rule(attach)?;
    let (_, name) = section.split_once('/')?;
    (!name.is_empty()).then_some((name, attach))
}

fn arg(btf: &Btf, name: &str, type_id: u32) -> TracingArg {
    let skipped = btf.skip_mods_and_typedefs(type_id);
    let kind = match skipped.and_then(|id| btf.type_by_id(id)).map(|t| &t.kind) {
        Some(BtfKind::Int { .. } | BtfKind::Enum { .. } | BtfKind::Enum64 { .. }) => {
            TracingArgKind::Scalar
        }
        Some(BtfKind::Ptr { target }) => {
            let pointee = btf
                .skip_mods_and_typedefs(*target)
                .and_then(|id| btf.type_by_id(id));
            TracingArgKind::Pointer {
                to_struct: matches!(
                    pointee.map(|t| &t.kind),
                    Some(BtfKind::Struct { .. } | BtfKind::Union { .. })
                ),
            }
        }
        _ => TracingArgKind::Other,
    };
    TracingArg {
        name: name.to_string(),
        type_name: btf.type_name(type_id),
        kind,
    }
}

/// Find `name`'s attach target for `attach` in `target`; the error is libbpf's message.
pub(crate) fn find(
    target: &Arc<TargetBtf>,
    name: &str,
    attach: AttachType,
) -> Result<AttachTarget, String> {
    let (prefix, typedef) = lookup_rule(attach).ok_or("no BTF attach target for this type")?;
    if name.contains(':') {
        return Err(format!(
            "attach target '{name}' is in a kernel module: only vmlinux BTF is searched"
        ));
    }
    let btf_name = format!("{prefix}{name}");
    let what = if typedef { "typedef" } else { "function" };
    let id = target
        .find(&btf_name, |k| match k {
            BtfKind::Typedef { .. } => typedef,
            BtfKind::Func { .. } => !typedef,
            _ => false,
        })
        .ok_or_else(|| {
            format!(
                "failed to find kernel BTF type ID of '{name}': no {what} '{btf_name}' in {}",
                target.source()
            )
        })?;
    let btf = target.btf();
    // A FUNC points at its prototype; a tracepoint's typedef at a pointer to one.
    let proto_id = match btf.type_by_id(id).map(|t| &t.kind) {
        Some(BtfKind::Func { proto, .. }) => Some(*proto),
        Some(BtfKind::Typedef { target }) => match btf.type_by_id(*target).map(|t| &t.kind) {
            Some(BtfKind::Ptr { target }) => Some(*target),
            _ => None,
        },
        _ => None,
    };
    let Some(BtfKind::FuncProto { ret, params }) =
        proto_id.and_then(|p| btf.type_by_id(p)).map(|t| &t.kind)
    else {
        return Err(format!("'{btf_name}' [{id}] is not a function prototype"));
    };
    let skip = usize::from(typedef);
    let args = params
        .iter()
        .skip(skip)
        .map(|p| arg(btf, &p.name, p.type_id))
        .collect();
    let ret = (*ret != 0).then(|| arg(btf, "", *ret));
    Ok(AttachTarget {
        btf_name,
        btf_id: id,
        args,
        ret,
        kernel: Some(KernelBtf(target.clone())),
    })
}
