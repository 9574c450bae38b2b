//! Instructions as the kernel's verifier log and `bpftool prog dump xlated` print them
//! (`r0 = *(u32 *)(r1 +0)`), the notation the verifier log will need.

use crate::isa::*;
use crate::spec::helper_name;

fn reg(w: Width, r: Reg) -> String {
    match w {
        Width::W32 => format!("w{}", r.num()),
        Width::W64 => format!("r{}", r.num()),
    }
}

fn ty(size: Size, signed: bool) -> String {
    format!("{}{}", if signed { 's' } else { 'u' }, size.bits())
}

fn alu_op(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div => "/=",
        AluOp::SDiv => "s/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod => "%=",
        AluOp::SMod => "s%=",
        AluOp::Xor => "^=",
        AluOp::Mov => "=",
        AluOp::Arsh => "s>>=",
    }
}

fn cond_op(c: Cond) -> &'static str {
    match c {
        Cond::Eq => "==",
        Cond::Gt => ">",
        Cond::Ge => ">=",
        Cond::Set => "&",
        Cond::Ne => "!=",
        Cond::Sgt => "s>",
        Cond::Sge => "s>=",
        Cond::Lt => "<",
        Cond::Le => "<=",
        Cond::Slt => "s<",
        Cond::Sle => "s<=",
    }
}

/// The instruction text without the opcode prefix, e.g. `r0 = *(u32 *)(r1 +0)`.
pub fn kernel_text(insn: &Insn) -> String {
    match *insn {
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let s = match src {
                Source::Reg(r) => reg(width, r),
                Source::Imm(i) => i.to_string(),
            };
            format!("{} {} {s}", reg(width, dst), alu_op(op))
        }
        Insn::Neg { width, dst } => format!("{0} = -{0}", reg(width, dst)),
        Insn::MovSx {
            width,
            dst,
            src,
            from,
        } => {
            format!(
                "{} = (s{}){}",
                reg(width, dst),
                from.bits(),
                reg(width, src)
            )
        }
        Insn::Endian { dst, order, bits } => {
            let name = match order {
                Endian::Le => "le",
                Endian::Be => "be",
                Endian::Swap => "bswap",
            };
            format!("r{0} = {name}{bits} r{0}", dst.num())
        }
        Insn::LdImm64 { dst, imm } => {
            // The verifier log prints the raw 64-bit value; map references show as 0x0 to a
            // loader without pointer access, which is what a simulator is.
            let v = match imm {
                Imm64::Imm(v) => v,
                Imm64::Func(off) => off as u32 as u64,
                _ => 0,
            };
            format!("r{} = {v:#x}", dst.num())
        }
        Insn::LoadPacket { mode, size, imm } => match mode {
            PacketMode::Abs => format!("r0 = *({} *)skb[{imm}]", ty(size, false)),
            PacketMode::Ind(r) => format!("r0 = *({} *)skb[r{} + {imm}]", ty(size, false), r.num()),
        },
        Insn::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            format!(
                "r{} = *({} *)(r{} {off:+})",
                dst.num(),
                ty(size, signed),
                src.num()
            )
        }
        Insn::Store {
            size,
            dst,
            off,
            src,
        } => {
            let v = match src {
                Source::Reg(r) => format!("r{}", r.num()),
                Source::Imm(i) => i.to_string(),
            };
            format!("*({} *)(r{} {off:+}) = {v}", ty(size, false), dst.num())
        }
        Insn::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => {
            let t = ty(size, false);
            let (d, s) = (dst.num(), src.num());
            let at = format!("({t} *)(r{d} {off:+})");
            let w = if size == Size::DW { "64" } else { "" };
            let (name, fetch, sym) = match op {
                AtomicOp::Add { fetch } => ("add", fetch, "+="),
                AtomicOp::Or { fetch } => ("or", fetch, "|="),
                AtomicOp::And { fetch } => ("and", fetch, "&="),
                AtomicOp::Xor { fetch } => ("xor", fetch, "^="),
                AtomicOp::Xchg => return format!("r{s} = atomic{w}_xchg({at}, r{s})"),
                AtomicOp::CmpXchg => return format!("r0 = atomic{w}_cmpxchg({at}, r0, r{s})"),
                AtomicOp::LoadAcquire => {
                    return format!("r{d} = load_acquire(({t} *)(r{s} {off:+}))")
                }
                AtomicOp::StoreRelease => return format!("store_release({at}, r{s})"),
            };
            if fetch {
                format!("r{s} = atomic{w}_fetch_{name}({at}, r{s})")
            } else {
                format!("lock *{at} {sym} r{s}")
            }
        }
        Insn::Ja { off } => format!("goto pc{off:+}"),
        Insn::Gotol { off } => format!("gotol pc{off:+}"),
        Insn::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => {
            let s = match src {
                Source::Reg(r) => reg(width, r),
                Source::Imm(i) => format!("{:#x}", i as u32),
            };
            format!(
                "if {} {} {s} goto pc{off:+}",
                reg(width, dst),
                cond_op(cond)
            )
        }
        Insn::Call(CallTarget::Helper(id)) => match helper_name(id as i64) {
            Some(name) => format!("call bpf_{name}#{id}"),
            None => format!("call unknown#{id}"),
        },
        Insn::Call(CallTarget::Local(off)) => format!("call pc{off:+}"),
        Insn::Call(CallTarget::Kfunc { btf_id, .. }) => format!("call kernel-function#{btf_id}"),
        // The kernel has no callx; its printer treats 0x8d like a helper call with imm 0.
        Insn::Callx { .. } => "call bpf_unspec#0".to_string(),
        Insn::Exit => "exit".to_string(),
    }
}

/// `(cc) text`, as in the verifier log after `N: `.
pub fn kernel_line(insn: &Insn) -> String {
    let (raw, _) = insn.to_raw();
    format!("({:02x}) {}", raw[0].code, kernel_text(insn))
}

/// A whole program in the verifier log's numbering: `N: (cc) text`, one line per instruction.
pub fn kernel_listing(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut pc = 0;
    for insn in insns {
        out.push_str(&format!("{pc}: {}\n", kernel_line(insn)));
        pc += insn.slots();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    fn k(src: &str) -> String {
        kernel_line(&assemble(src).unwrap()[0])
    }

    #[test]
    fn kernel_notation() {
        assert_eq!(k("mov %r0, 0"), "(b7) r0 = 0");
        assert_eq!(k("add %r1, -8"), "(07) r1 += -8");
        assert_eq!(k("add32 %r1, %r2"), "(0c) w1 += w2");
        assert_eq!(k("sdiv %r1, %r2"), "(3f) r1 s/= r2");
        assert_eq!(k("neg32 %r1"), "(84) w1 = -w1");
        assert_eq!(k("movsx832 %r1, %r2"), "(bc) w1 = (s8)w2");
        assert_eq!(k("be16 %r1"), "(dc) r1 = be16 r1");
        assert_eq!(k("bswap64 %r3"), "(d7) r3 = bswap64 r3");
        assert_eq!(k("ldxw %r1, [%r8+40]"), "(61) r1 = *(u32 *)(r8 +40)");
        assert_eq!(k("ldxsb %r1, [%r2]"), "(91) r1 = *(s8 *)(r2 +0)");
        assert_eq!(k("stxw [%r10-96], %r6"), "(63) *(u32 *)(r10 -96) = r6");
        assert_eq!(k("stdw [%r10-8], -1"), "(7a) *(u64 *)(r10 -8) = -1");
        assert_eq!(k("lock add [%r1], %r2"), "(db) lock *(u64 *)(r1 +0) += r2");
        assert_eq!(
            k("lock fetch add32 [%r1], %r2"),
            "(c3) r2 = atomic_fetch_add((u32 *)(r1 +0), r2)"
        );
        assert_eq!(
            k("lock cmpxchg [%r1], %r2"),
            "(db) r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)"
        );
        assert_eq!(
            k("lock xchg32 [%r1], %r2"),
            "(c3) r2 = atomic_xchg((u32 *)(r1 +0), r2)"
        );
        assert_eq!(k("lddw %r1, 0x2a"), "(18) r1 = 0x2a");
        assert_eq!(k("ja -10"), "(05) goto pc-10");
        assert_eq!(k("ja32 +70000"), "(06) gotol pc+70000");
        assert_eq!(k("jsgt %r1, -1, +1"), "(65) if r1 s> 0xffffffff goto pc+1");
        assert_eq!(k("jne32 %r0, -1, -3"), "(56) if w0 != 0xffffffff goto pc-3");
        assert_eq!(k("jset %r1, %r2, +0"), "(4d) if r1 & r2 goto pc+0");
        assert_eq!(k("call 1"), "(85) call bpf_map_lookup_elem#1");
        assert_eq!(k("call 300"), "(85) call unknown#300");
        assert_eq!(k("call local +5"), "(85) call pc+5");
        assert_eq!(k("ldindh %r7, 2"), "(48) r0 = *(u16 *)skb[r7 + 2]");
        assert_eq!(k("ldabsw 12"), "(20) r0 = *(u32 *)skb[12]");
        assert_eq!(k("exit"), "(95) exit");
    }

    #[test]
    fn listing_counts_slots() {
        let p = assemble("lddw %r0, 1\nexit").unwrap();
        assert_eq!(kernel_listing(&p), "0: (18) r0 = 0x1\n2: (95) exit\n");
    }
}
