//! The interpreter's pre-decoded form: one 16-byte [`Op`] per slot, with the operation, its width
//! and its operand kind folded into one `u8` so that a step is a single indexed jump, immediates
//! already sign-extended and jump targets already absolute.

use crate::isa::{AluOp, CallTarget, Cond, Endian, Imm64, Insn, Size, Source, Width};
use crate::program::Program;

/// Declares `K` and `K::ALL`, the variants in discriminant order, so that a kind can be computed
/// from a base kind plus offsets without `unsafe`.
macro_rules! kinds {
    ($($(#[$m:meta])* $v:ident),* $(,)?) => {
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        #[repr(u8)]
        pub(crate) enum K { $($(#[$m])* $v),* }
        impl K {
            const ALL: &'static [K] = &[$(K::$v),*];
        }
    };
}

#[rustfmt::skip]
kinds! {
    Add64I, Add64R, Sub64I, Sub64R, Mul64I, Mul64R, Div64I, Div64R, SDiv64I, SDiv64R,
    Or64I, Or64R, And64I, And64R, Lsh64I, Lsh64R, Rsh64I, Rsh64R, Mod64I, Mod64R,
    SMod64I, SMod64R, Xor64I, Xor64R, Mov64I, Mov64R, Arsh64I, Arsh64R,
    Add32I, Add32R, Sub32I, Sub32R, Mul32I, Mul32R, Div32I, Div32R, SDiv32I, SDiv32R,
    Or32I, Or32R, And32I, And32R, Lsh32I, Lsh32R, Rsh32I, Rsh32R, Mod32I, Mod32R,
    SMod32I, SMod32R, Xor32I, Xor32R, Mov32I, Mov32R, Arsh32I, Arsh32R,
    Neg64, Neg32, MovSx64B, MovSx64H, MovSx64W, MovSx32B, MovSx32H,
    Le16, Le32, Le64, Be16, Be32, Be64, Swap16, Swap32, Swap64,
    LdImm64,
    LdxB, LdxH, LdxW, LdxDW, LdxSB, LdxSH, LdxSW,
    StB, StH, StW, StDW, StxB, StxH, StxW, StxDW,
    /// Size in `aux`, operation in `imm`.
    Atomic,
    Ja,
    Jeq64I, Jeq64R, Jgt64I, Jgt64R, Jge64I, Jge64R, Jset64I, Jset64R, Jne64I, Jne64R,
    Jsgt64I, Jsgt64R, Jsge64I, Jsge64R, Jlt64I, Jlt64R, Jle64I, Jle64R, Jslt64I, Jslt64R,
    Jsle64I, Jsle64R,
    Jeq32I, Jeq32R, Jgt32I, Jgt32R, Jge32I, Jge32R, Jset32I, Jset32R, Jne32I, Jne32R,
    Jsgt32I, Jsgt32R, Jsge32I, Jsge32R, Jlt32I, Jlt32R, Jle32I, Jle32R, Jslt32I, Jslt32R,
    Jsle32I, Jsle32R,
    Call, CallLocal, Callx, Exit,
    /// Legacy packet load: offset `imm` (plus `src` for LdInd), size in `aux`.
    LdAbs, LdInd,
    /// Cannot run here: the opcode byte is in `imm`.
    Unsupported,
    /// The second slot of `lddw`; structural checks keep every jump away from it.
    LdImm64Tail,
}

/// One pre-decoded slot.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Op {
    pub kind: K,
    pub dst: u8,
    pub src: u8,
    /// Access size of atomics (bytes).
    pub aux: u8,
    /// Memory offset, or the absolute target slot of jumps and local calls.
    pub off: i32,
    /// Immediate, sign-extended to 64 bits (`lddw`: the full value).
    pub imm: u64,
}

const fn alu_base(op: AluOp) -> u8 {
    (match op {
        AluOp::Add => K::Add64I,
        AluOp::Sub => K::Sub64I,
        AluOp::Mul => K::Mul64I,
        AluOp::Div => K::Div64I,
        AluOp::SDiv => K::SDiv64I,
        AluOp::Or => K::Or64I,
        AluOp::And => K::And64I,
        AluOp::Lsh => K::Lsh64I,
        AluOp::Rsh => K::Rsh64I,
        AluOp::Mod => K::Mod64I,
        AluOp::SMod => K::SMod64I,
        AluOp::Xor => K::Xor64I,
        AluOp::Mov => K::Mov64I,
        AluOp::Arsh => K::Arsh64I,
    }) as u8
}

const fn cond_base(c: Cond) -> u8 {
    (match c {
        Cond::Eq => K::Jeq64I,
        Cond::Gt => K::Jgt64I,
        Cond::Ge => K::Jge64I,
        Cond::Set => K::Jset64I,
        Cond::Ne => K::Jne64I,
        Cond::Sgt => K::Jsgt64I,
        Cond::Sge => K::Jsge64I,
        Cond::Lt => K::Jlt64I,
        Cond::Le => K::Jle64I,
        Cond::Slt => K::Jslt64I,
        Cond::Sle => K::Jsle64I,
    }) as u8
}

/// The kinds are laid out so that `base + 32-bit offset + register` selects the variant.
fn kind_from(index: u8) -> K {
    K::ALL[index as usize]
}

fn split(src: Source) -> (u8, u8, u64) {
    match src {
        Source::Reg(r) => (1, r.num(), 0),
        Source::Imm(i) => (0, 0, i as i64 as u64),
    }
}

impl Op {
    const fn new(kind: K) -> Op {
        Op {
            kind,
            dst: 0,
            src: 0,
            aux: 0,
            off: 0,
            imm: 0,
        }
    }
}

/// Translate a checked program into one op per slot.
pub(crate) fn prepare(prog: &Program) -> Vec<Op> {
    let mut ops = Vec::with_capacity(prog.slots());
    for (pc, insn) in prog.iter() {
        let target = |off: i32| (pc as i64 + 1 + off as i64) as i32;
        let mut op = Op::new(K::Unsupported);
        match *insn {
            Insn::Alu {
                width,
                op: alu,
                dst,
                src,
            } => {
                let (reg, s, imm) = split(src);
                let w32 = if width == Width::W32 {
                    K::Add32I as u8
                } else {
                    0
                };
                op.kind = kind_from(alu_base(alu) + w32 + reg);
                op.dst = dst.num();
                op.src = s;
                op.imm = imm;
            }
            Insn::Neg { width, dst } => {
                op.kind = if width == Width::W64 {
                    K::Neg64
                } else {
                    K::Neg32
                };
                op.dst = dst.num();
            }
            Insn::MovSx {
                width,
                dst,
                src,
                from,
            } => {
                op.kind = match (width, from) {
                    (Width::W64, Size::B) => K::MovSx64B,
                    (Width::W64, Size::H) => K::MovSx64H,
                    (Width::W64, _) => K::MovSx64W,
                    (Width::W32, Size::B) => K::MovSx32B,
                    (Width::W32, _) => K::MovSx32H,
                };
                op.dst = dst.num();
                op.src = src.num();
            }
            Insn::Endian { dst, order, bits } => {
                let base = match order {
                    Endian::Le => K::Le16,
                    Endian::Be => K::Be16,
                    Endian::Swap => K::Swap16,
                } as u8;
                op.kind = kind_from(base + (bits / 32));
                op.dst = dst.num();
            }
            Insn::LdImm64 { dst, imm } => {
                op.dst = dst.num();
                match imm {
                    Imm64::Imm(v) => {
                        op.kind = K::LdImm64;
                        op.imm = v;
                    }
                    // A callback's address (`bpf_loop`): a code pointer no data access can use.
                    Imm64::Func(off) => {
                        op.kind = K::LdImm64;
                        op.imm = crate::interp::FUNC_TAG | target(off) as u32 as u64;
                    }
                    // Map and BTF references must be resolved by a loader before running.
                    _ => op.imm = crate::isa::opcode::LDDW as u64,
                }
            }
            Insn::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                op.kind = match (size, signed) {
                    (Size::B, false) => K::LdxB,
                    (Size::H, false) => K::LdxH,
                    (Size::W, false) => K::LdxW,
                    (Size::DW, _) => K::LdxDW,
                    (Size::B, true) => K::LdxSB,
                    (Size::H, true) => K::LdxSH,
                    (Size::W, true) => K::LdxSW,
                };
                op.dst = dst.num();
                op.src = src.num();
                op.off = off as i32;
            }
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
                let (reg, s, imm) = split(src);
                let base = if reg == 1 { K::StxB } else { K::StB } as u8;
                op.kind = kind_from(
                    base + match size {
                        Size::B => 0,
                        Size::H => 1,
                        Size::W => 2,
                        Size::DW => 3,
                    },
                );
                op.dst = dst.num();
                op.src = s;
                op.off = off as i32;
                op.imm = imm;
            }
            Insn::Atomic {
                size,
                op: a,
                dst,
                src,
                off,
            } => {
                op.kind = K::Atomic;
                op.dst = dst.num();
                op.src = src.num();
                op.aux = size.bytes() as u8;
                op.off = off as i32;
                op.imm = a.code() as u64;
            }
            Insn::Ja { off } => {
                op.kind = K::Ja;
                op.off = target(off as i32);
            }
            Insn::Gotol { off } => {
                op.kind = K::Ja;
                op.off = target(off);
            }
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let (reg, s, imm) = split(src);
                let w32 = if width == Width::W32 {
                    K::Jeq32I as u8 - K::Jeq64I as u8
                } else {
                    0
                };
                op.kind = kind_from(cond_base(cond) + w32 + reg);
                op.dst = dst.num();
                op.src = s;
                op.imm = imm;
                op.off = target(off as i32);
            }
            Insn::Call(CallTarget::Helper(id)) => {
                op.kind = K::Call;
                op.imm = id as u32 as u64;
            }
            Insn::Call(CallTarget::Local(off)) => {
                op.kind = K::CallLocal;
                op.off = target(off);
            }
            Insn::Call(CallTarget::Kfunc { .. }) => {
                op.imm = (crate::isa::opcode::JMP | crate::isa::opcode::JMP_CALL) as u64;
            }
            Insn::Callx { reg } => {
                op.kind = K::Callx;
                op.dst = reg.num();
            }
            Insn::Exit => op.kind = K::Exit,
            Insn::LoadPacket { mode, size, imm } => {
                op.aux = size.bytes() as u8;
                op.imm = imm as i64 as u64;
                match mode {
                    crate::isa::PacketMode::Abs => op.kind = K::LdAbs,
                    crate::isa::PacketMode::Ind(r) => {
                        op.kind = K::LdInd;
                        op.src = r.num();
                    }
                }
            }
        }
        ops.push(op);
        if insn.slots() == 2 {
            ops.push(Op::new(K::LdImm64Tail));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Op>(), 16);
    }

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, k) in K::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }

    #[test]
    fn kind_arithmetic_matches_layout() {
        assert_eq!(
            kind_from(alu_base(AluOp::Arsh) + K::Add32I as u8 + 1),
            K::Arsh32R
        );
        assert_eq!(
            kind_from(cond_base(Cond::Sle) + (K::Jeq32I as u8 - K::Jeq64I as u8) + 1),
            K::Jsle32R
        );
        assert_eq!(kind_from(K::Swap16 as u8 + 64 / 32), K::Swap64);
        assert_eq!(kind_from(K::Le16 as u8 + 32 / 32), K::Le32);
        assert_eq!(kind_from(K::StxB as u8 + 3), K::StxDW);
    }
}
