//! Instructions to text in the bpf_conformance dialect, one line per instruction, so that
//! `assemble(disassemble(p)) == p`. Jump targets print as relative offsets (`+3`, `-1`).

use std::fmt::Write;

use crate::isa::*;

fn rel(off: i64) -> String {
    format!("{off:+}")
}

fn mem(r: Reg, off: i16) -> String {
    if off == 0 {
        format!("[%r{}]", r.num())
    } else {
        format!("[%r{}{off:+}]", r.num())
    }
}

fn src(s: Source) -> String {
    match s {
        Source::Reg(r) => format!("%r{}", r.num()),
        Source::Imm(i) => i.to_string(),
    }
}

fn suffix(w: Width) -> &'static str {
    match w {
        Width::W32 => "32",
        Width::W64 => "",
    }
}

/// One instruction in the conformance dialect.
pub fn disassemble_insn(insn: &Insn) -> String {
    match *insn {
        Insn::Alu {
            width,
            op,
            dst,
            src: s,
        } => {
            format!("{}{} %r{}, {}", op.name(), suffix(width), dst.num(), src(s))
        }
        Insn::Neg { width, dst } => format!("neg{} %r{}", suffix(width), dst.num()),
        Insn::MovSx {
            width,
            dst,
            src,
            from,
        } => format!(
            "movsx{}{} %r{}, %r{}",
            from.bits(),
            if width == Width::W64 { 64 } else { 32 },
            dst.num(),
            src.num()
        ),
        Insn::Endian { dst, order, bits } => {
            let name = match order {
                Endian::Le => "le",
                Endian::Be => "be",
                Endian::Swap => "bswap",
            };
            format!("{name}{bits} %r{}", dst.num())
        }
        Insn::LdImm64 { dst, imm } => {
            let value = match imm {
                Imm64::Imm(v) => format!("{v:#x}"),
                Imm64::MapFd(fd) => format!("map_fd {fd}"),
                Imm64::MapValue { fd, off } => format!("map_value {fd}, {off}"),
                Imm64::BtfId { id, module_fd } => format!("btf_id {id}, {module_fd}"),
                Imm64::Func(off) => format!("func {}", rel(off as i64)),
                Imm64::MapIdx(idx) => format!("map_idx {idx}"),
                Imm64::MapIdxValue { idx, off } => format!("map_idx_value {idx}, {off}"),
            };
            format!("lddw %r{}, {value}", dst.num())
        }
        Insn::LoadPacket { mode, size, imm } => match mode {
            PacketMode::Abs => format!("ldabs{} {imm}", size.suffix()),
            PacketMode::Ind(r) => format!("ldind{} %r{}, {imm}", size.suffix(), r.num()),
        },
        Insn::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => format!(
            "ldx{}{} %r{}, {}",
            if signed { "s" } else { "" },
            size.suffix(),
            dst.num(),
            mem(src, off)
        ),
        Insn::Store {
            size,
            dst,
            off,
            src: s,
        } => match s {
            Source::Imm(i) => format!("st{} {}, {i}", size.suffix(), mem(dst, off)),
            Source::Reg(r) => format!("stx{} {}, %r{}", size.suffix(), mem(dst, off), r.num()),
        },
        Insn::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            let w = if size == Size::W { "32" } else { "" };
            let (fetch, name) = match op {
                AtomicOp::Add { fetch } => (fetch, "add"),
                AtomicOp::Or { fetch } => (fetch, "or"),
                AtomicOp::And { fetch } => (fetch, "and"),
                AtomicOp::Xor { fetch } => (fetch, "xor"),
                AtomicOp::Xchg => (false, "xchg"),
                AtomicOp::CmpXchg => (false, "cmpxchg"),
                AtomicOp::LoadAcquire => {
                    return format!("ldacq{} %r{}, {}", size.suffix(), dst.num(), mem(src, off))
                }
                AtomicOp::StoreRelease => {
                    return format!("strel{} {}, %r{}", size.suffix(), mem(dst, off), src.num())
                }
            };
            let fetch = if fetch { "fetch " } else { "" };
            format!("lock {fetch}{name}{w} {}, %r{}", mem(dst, off), src.num())
        }
        Insn::Ja { off } => format!("ja {}", rel(off as i64)),
        Insn::Gotol { off } => format!("ja32 {}", rel(off as i64)),
        Insn::Jmp {
            width,
            cond,
            dst,
            src: s,
            off,
        } => format!(
            "{}{} %r{}, {}, {}",
            cond.name(),
            suffix(width),
            dst.num(),
            src(s),
            rel(off as i64)
        ),
        Insn::Call(CallTarget::Helper(id)) => format!("call {id}"),
        Insn::Call(CallTarget::Local(off)) => format!("call local {}", rel(off as i64)),
        Insn::Call(CallTarget::Kfunc { btf_id, module: 0 }) => format!("call runtime {btf_id}"),
        Insn::Call(CallTarget::Kfunc { btf_id, module }) => {
            format!("call runtime {btf_id}, {module}")
        }
        Insn::Callx { reg } => format!("call %r{}", reg.num()),
        Insn::Exit => "exit".to_string(),
    }
}

/// A whole program, one instruction per line.
pub fn disassemble(insns: &[Insn]) -> String {
    let mut out = String::new();
    for insn in insns {
        let _ = writeln!(out, "{}", disassemble_insn(insn));
    }
    out
}
