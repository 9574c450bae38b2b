//! Context access per program type: which offsets and sizes of the context a program may read or
//! write, and the register type a load gives (the kernel's `*_is_valid_access` callbacks).

use bpfsim_vm::loader::{AttachTarget, AttachType, TracingArgKind};
use bpfsim_vm::spec::ProgType;

use crate::domain::reg::RegType;

/// `struct __sk_buff` offsets.
mod skb {
    pub const MARK: u32 = 8;
    pub const QUEUE_MAPPING: u32 = 12;
    pub const PRIORITY: u32 = 32;
    pub const TC_INDEX: u32 = 44;
    pub const CB: u32 = 48;
    pub const CB_END: u32 = 68;
    pub const TC_CLASSID: u32 = 72;
    pub const DATA: u32 = 76;
    pub const DATA_END: u32 = 80;
    pub const FAMILY: u32 = 88;
    pub const REMOTE_IP4: u32 = 92;
    pub const LOCAL_PORT_END: u32 = 140;
    pub const DATA_META: u32 = 140;
    pub const FLOW_KEYS: u32 = 144;
    pub const TSTAMP: u32 = 152;
    pub const WIRE_LEN: u32 = 160;
    pub const SK: u32 = 168;
    pub const TSTAMP_TYPE: u32 = 180;
    pub const HWTSTAMP: u32 = 184;
    pub const SIZE: u32 = 192;
}

/// What a valid access gives: the loaded register's type (a scalar, or a packet pointer). A
/// scalar is some value of the load's width, whatever the field's.
pub struct Access {
    pub ty: RegType,
}

/// Within one 4-byte field `[f, f+4)`?
fn in_field(off: u32, field: u32, len: u32) -> bool {
    (field..field + len).contains(&off)
}

/// `bpf_skb_is_valid_access`.
fn skb_common(off: u32, size: u32, write: bool) -> Option<Access> {
    if off >= skb::SIZE || off % size != 0 {
        return None;
    }
    let scalar = || {
        Some(Access {
            ty: RegType::Scalar,
        })
    };
    if in_field(off, skb::CB, skb::CB_END - skb::CB) {
        if off + size > skb::CB_END {
            return None;
        }
        return scalar();
    }
    if in_field(off, skb::REMOTE_IP4, 40)
        || in_field(off, skb::DATA, 4)
        || in_field(off, skb::DATA_META, 4)
        || in_field(off, skb::DATA_END, 4)
    {
        return if size == 4 { scalar() } else { None };
    }
    if in_field(off, skb::FLOW_KEYS, 8) || off == skb::TSTAMP_TYPE {
        return None;
    }
    if in_field(off, skb::HWTSTAMP, 8) {
        return if !write && size == 8 { scalar() } else { None };
    }
    if in_field(off, skb::TSTAMP, 8) {
        return if size == 8 { scalar() } else { None };
    }
    if in_field(off, skb::SK, 8) {
        // PTR_TO_SOCK_COMMON_OR_NULL.
        return if !write && size == 8 {
            Some(Access {
                ty: RegType::SockCommon,
            })
        } else {
            None
        };
    }
    if write {
        return if size == 4 { scalar() } else { None };
    }
    // Narrow reads of a 4-byte field.
    if size <= 4 && size.is_power_of_two() {
        scalar()
    } else {
        None
    }
}

fn skb_access(prog: ProgType, off: u32, size: u32, write: bool) -> Option<Access> {
    let in_range = |lo: u32, hi: u32| (lo..hi).contains(&off);
    let field = |f: u32| in_field(off, f, 4);
    let ptr_field = |ty| {
        if off % 4 == 0 && size == 4 && !write {
            Some(Access { ty })
        } else {
            None
        }
    };
    match prog {
        ProgType::SocketFilter => {
            if field(skb::TC_CLASSID)
                || field(skb::DATA)
                || field(skb::DATA_META)
                || field(skb::DATA_END)
                || in_range(skb::FAMILY, skb::LOCAL_PORT_END)
                || in_field(off, skb::TSTAMP, 8)
                || field(skb::WIRE_LEN)
                || in_field(off, skb::HWTSTAMP, 8)
            {
                return None;
            }
            if write && !in_range(skb::CB, skb::CB_END) {
                return None;
            }
            skb_common(off, size, write)
        }
        ProgType::SchedCls | ProgType::SchedAct => {
            if write
                && !(field(skb::MARK)
                    || field(skb::TC_INDEX)
                    || field(skb::PRIORITY)
                    || field(skb::TC_CLASSID)
                    || in_range(skb::CB, skb::CB_END)
                    || in_field(off, skb::TSTAMP, 8)
                    || field(skb::QUEUE_MAPPING))
            {
                return None;
            }
            if in_range(skb::FAMILY, skb::LOCAL_PORT_END) {
                return None;
            }
            match off {
                skb::DATA => ptr_field(RegType::Packet),
                skb::DATA_META => ptr_field(RegType::PacketMeta),
                skb::DATA_END => ptr_field(RegType::PacketEnd),
                _ => skb_common(off, size, write),
            }
        }
        ProgType::CgroupSkb => {
            if field(skb::TC_CLASSID) || field(skb::DATA_META) || field(skb::WIRE_LEN) {
                return None;
            }
            if write
                && !(field(skb::MARK)
                    || field(skb::PRIORITY)
                    || in_range(skb::CB, skb::CB_END)
                    || in_field(off, skb::TSTAMP, 8))
            {
                return None;
            }
            match off {
                skb::DATA => ptr_field(RegType::Packet),
                skb::DATA_END => ptr_field(RegType::PacketEnd),
                _ => skb_common(off, size, write),
            }
        }
        _ => None,
    }
}

/// `xdp_is_valid_access`: 4-byte reads of `struct xdp_md`; `egress_ifindex` only for devmap
/// programs.
fn xdp_access(attach: Option<AttachType>, off: u32, size: u32, write: bool) -> Option<Access> {
    if off == 20 && attach != Some(AttachType::XdpDevmap) {
        return None;
    }
    if write || off >= 24 || off % size != 0 || size != 4 {
        return None;
    }
    let ty = match off {
        0 => RegType::Packet,
        4 => RegType::PacketEnd,
        8 => RegType::PacketMeta,
        _ => RegType::Scalar,
    };
    Some(Access { ty })
}

/// Read-only, naturally aligned contexts of the tracing types.
fn tracing_access(prog: ProgType, off: u32, size: u32, write: bool) -> Option<Access> {
    if write || off % size != 0 {
        return None;
    }
    let scalar = Some(Access {
        ty: RegType::Scalar,
    });
    match prog {
        // struct pt_regs on x86_64: 21 registers of 8 bytes.
        ProgType::Kprobe => (off + size <= 168).then_some(()).and(scalar),
        // The tracepoint's own fields, after the 8-byte common header.
        ProgType::Tracepoint => (8..8192).contains(&off).then_some(()).and(scalar),
        // u64 args[12], any width.
        ProgType::RawTracepoint => (off < 96).then_some(()).and(scalar),
        // struct bpf_perf_event_data: pt_regs, sample_period, addr.
        ProgType::PerfEvent => (off + size <= 184 && (off < 168 || size == 8))
            .then_some(())
            .and(scalar),
        _ => None,
    }
}

/// The access `prog` may make at `off` of `size` bytes, or None (`invalid bpf_context access`).
pub fn access(
    prog: ProgType,
    attach: Option<AttachType>,
    off: i32,
    size: u32,
    write: bool,
) -> Option<Access> {
    let off = u32::try_from(off).ok()?;
    match prog {
        ProgType::Xdp => xdp_access(attach, off, size, write),
        ProgType::SocketFilter | ProgType::SchedCls | ProgType::SchedAct | ProgType::CgroupSkb => {
            skb_access(prog, off, size, write)
        }
        ProgType::Kprobe | ProgType::Tracepoint | ProgType::RawTracepoint | ProgType::PerfEvent => {
            tracing_access(prog, off, size, write)
        }
        _ => None,
    }
}

/// Context slots of a BTF-attached program (`MAX_BPF_FUNC_ARGS` u64s).
const MAX_FUNC_ARGS: i32 = 12;

/// `bpf_tracing_btf_ctx_access` then `btf_ctx_access`: what `fentry`/`fexit`/`fmod_ret`/
/// `tp_btf`/`lsm`/`iter` programs read from their context, one `u64` per argument of the attach
/// target, then the return value for `fexit`, `fmod_ret` and LSM. `Err` holds the line the
/// kernel logs before `invalid bpf_context access`, when it logs one.
///
/// A pointer argument to a struct is then typed `PTR_TO_BTF_ID` by `check::btf::ctx_arg` (when
/// the target carries the kernel's BTF); other pointers load as scalars.
pub fn btf_ctx_access(
    target: &AttachTarget,
    attach: Option<AttachType>,
    off: i32,
    size: u32,
    write: bool,
) -> Result<Access, Option<String>> {
    // bpf_tracing_ctx_access: silent refusals.
    if !(0..8 * MAX_FUNC_ARGS).contains(&off) || write || size == 0 || off as u32 % size != 0 {
        return Err(None);
    }
    let tname = target
        .btf_name
        .strip_prefix("btf_trace_")
        .unwrap_or(&target.btf_name);
    if off % 8 != 0 {
        return Err(Some(format!(
            "func '{tname}' offset {off} is not multiple of 8"
        )));
    }
    let arg = (off / 8) as usize;
    let nr_args = target.args.len();
    let missing = || {
        Some(format!(
            "func '{tname}' doesn't have {}-th argument",
            arg + 1
        ))
    };
    let a = match arg.cmp(&nr_args) {
        std::cmp::Ordering::Greater => return Err(missing()),
        std::cmp::Ordering::Less => &target.args[arg],
        std::cmp::Ordering::Equal => match attach {
            Some(AttachType::LsmMac | AttachType::LsmCgroup | AttachType::TraceFexit) => {
                match &target.ret {
                    Some(r) => r,
                    None => {
                        return Err(Some(format!(
                            "func '{tname}' arg{arg} '' has type UNKNOWN. Only pointer access is allowed"
                        )))
                    }
                }
            }
            Some(AttachType::ModifyReturn) => match &target.ret {
                Some(r) if r.kind == TracingArgKind::Scalar => r,
                other => {
                    let kind = match other.as_ref().map(|r| r.kind) {
                        None => "UNKNOWN",
                        Some(TracingArgKind::Pointer { .. }) => "PTR",
                        Some(_) => "non-integer",
                    };
                    return Err(Some(format!("ret type {kind} not allowed for fmod_ret")));
                }
            },
            _ => return Err(missing()),
        },
    };
    let scalar = Access {
        ty: RegType::Scalar,
    };
    match a.kind {
        TracingArgKind::Scalar => Ok(scalar),
        TracingArgKind::Pointer { .. } if size != 8 => {
            Err(Some(format!("func '{tname}' size {size} must be 8")))
        }
        TracingArgKind::Pointer { .. } => Ok(scalar),
        TracingArgKind::Other => Err(Some(format!(
            "func '{tname}' arg{arg} '{}' has type {}. Only pointer access is allowed",
            a.name, a.type_name
        ))),
    }
}

/// `struct bpf_sock` offsets.
mod sock {
    pub const FAMILY: i32 = 4;
    pub const TYPE: i32 = 8;
    pub const PROTOCOL: i32 = 12;
    pub const PRIORITY_END: i32 = 24;
    pub const SRC_IP4: i32 = 24;
    pub const SRC_IP6: i32 = 28;
    pub const SRC_PORT: i32 = 44;
    pub const DST_PORT: i32 = 48;
    pub const DST_IP4: i32 = 52;
    pub const DST_IP6: i32 = 56;
    pub const STATE: i32 = 72;
    pub const RX_QUEUE_MAPPING: i32 = 76;
    pub const SIZE: i32 = 80;
}

/// Whether a load of `size` bytes at `off` of a socket pointer of type `ty` is allowed
/// (`bpf_sock_is_valid_access`, `bpf_sock_common_is_valid_access`,
/// `bpf_tcp_sock_is_valid_access`); sockets are never written.
pub fn sock_access(ty: RegType, off: i32, size: u32) -> bool {
    let size = size as i32;
    if ty == RegType::TcpSock {
        // `struct bpf_tcp_sock` up to `icsk_retransmits`: `bytes_received` and `bytes_acked`
        // are 8 bytes, the rest 4.
        if !(0..112).contains(&off) || off % size != 0 {
            return false;
        }
        return if off == 80 || off == 88 {
            size == 8
        } else {
            size == 4
        };
    }
    // A request or time-wait socket has no type, protocol, mark or priority.
    if ty == RegType::SockCommon && (sock::TYPE..sock::PRIORITY_END).contains(&off) {
        return false;
    }
    if !(0..sock::SIZE).contains(&off) || off % size != 0 {
        return false;
    }
    let narrow_ok = |field: i32| size <= field && (size & (size - 1)) == 0;
    let range = |lo: i32, len: i32| (lo..lo + len).contains(&off);
    if matches!(
        off,
        sock::STATE | sock::FAMILY | sock::TYPE | sock::PROTOCOL | sock::SRC_PORT
    ) || off == sock::RX_QUEUE_MAPPING
        || range(sock::SRC_IP4, 4)
        || range(sock::SRC_IP6, 16)
        || range(sock::DST_IP4, 4)
        || range(sock::DST_IP6, 16)
    {
        return narrow_ok(4);
    }
    if range(sock::DST_PORT, 2) {
        return narrow_ok(if size == 4 { 4 } else { 2 });
    }
    if range(sock::DST_PORT + 2, 2) {
        return false;
    }
    size == 4
}
