//! The interpreter's pre-decoded form: one 16-byte [`Op`] per slot, with the operation, its width
//! and its operand kind folded into one `u8` so that a step is a single indexed jump, jump targets
//! already absolute, and the length of the straight-line run each op starts, so that the budget is
//! charged once per run instead of once per instruction.

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

    // Fused pairs (see [`fuse`]): one op does the work of the op in its slot and of the next.
    /// `mov rD, rS` then `op rD, imm` (64-bit): `rD = rS op imm`.
    MovAdd64, MovSub64, MovMul64, MovOr64, MovAnd64, MovLsh64, MovRsh64, MovXor64, MovArsh64,
    /// `add rD, aux` (`aux` as `i8`) then a 64-bit conditional jump on `rD` to `off`, against
    /// `imm` or `rS`.
    AddJeqI, AddJeqR, AddJgtI, AddJgtR, AddJgeI, AddJgeR, AddJsetI, AddJsetR, AddJneI, AddJneR,
    AddJsgtI, AddJsgtR, AddJsgeI, AddJsgeR, AddJltI, AddJltR, AddJleI, AddJleR, AddJsltI,
    AddJsltR, AddJsleI, AddJsleR,
    /// `ldx{h,w,dw} rD, [rS + off]` then `be{16,32,64} rD`.
    LdxHBe, LdxWBe, LdxDWBe,
    /// A triple, `mov rD, rS` / `{lsh,rsh} rD, imm` / `{xor,or,add} rS, rD` (`rS ^= rS >> k`,
    /// the shift-and-combine step of hash functions), with `rD != rS`; skips two slots.
    LshXor, LshOr, LshAdd, RshXor, RshOr, RshAdd,
    /// The same with the result in `rD`: `mov rD, rS` / `{lsh,rsh} rD, imm` / `{xor,or,add} rD,
    /// rS`, `rD != rS` (clang's `x ^ (x << k)`); skips two slots.
    LshXorT, LshOrT, LshAddT, RshXorT, RshOrT, RshAddT,
    /// `lsh rD, imm` / `{rsh,arsh} rD, imm`, the same amount: zero- or sign-extension.
    Zext, Sext,
    /// `mov rD, rS` and the pair above: skips two slots.
    MovZext, MovSext,
    /// `mov rD, rS` then `op rD, rX` (64-bit), `rX` in `aux`: `rD = rS op rX`.
    MovAdd64R, MovSub64R, MovOr64R, MovAnd64R, MovXor64R,
    /// A 64-bit conditional jump followed by `ja`: not taken, the `ja` (whose target is in the
    /// next op) runs in the same step. Clang's loops end this way (`if done goto +1; goto top`).
    JeqJaI, JeqJaR, JgtJaI, JgtJaR, JgeJaI, JgeJaR, JsetJaI, JsetJaR, JneJaI, JneJaR,
    JsgtJaI, JsgtJaR, JsgeJaI, JsgeJaR, JltJaI, JltJaR, JleJaI, JleJaR, JsltJaI, JsltJaR,
    JsleJaI, JsleJaR,
    /// `mov rD, rS` / `add rD, imm` / `j{gt,ge,lt,le} rD, rX, off` (64-bit, `rX` in `aux`): the
    /// packet bounds check `if (data + n > data_end)`; skips two slots.
    MovAddJgtR, MovAddJgeR, MovAddJltR, MovAddJleR,
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
    /// Immediate as encoded: every use sign-extends it, as the ISA does (`lddw`: the low half,
    /// the high half in the second slot's `imm`).
    pub imm: i32,
    /// Instructions from this one to the end of its run, this one included: a run ends at the
    /// first jump, call or exit, so a run entered here executes exactly this many instructions
    /// unless a trap or a helper ends the program inside it.
    pub run: u32,
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

fn split(src: Source) -> (u8, u8, i32) {
    match src {
        Source::Reg(r) => (1, r.num(), 0),
        Source::Imm(i) => (0, 0, i),
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
            run: 0,
        }
    }

    /// Whether this op ends a run: control may continue anywhere but the next slot (or the budget
    /// may be spent elsewhere, by a callback), so the budget is charged again after it.
    fn ends_run(&self) -> bool {
        use K::*;
        (Ja as u8..=Exit as u8).contains(&(self.kind as u8))
    }

    /// Whether `off` is the absolute target slot of a jump or local call.
    fn has_target(&self) -> bool {
        use K::*;
        (Ja as u8..=Jsle32R as u8).contains(&(self.kind as u8)) || self.kind == CallLocal
    }
}

/// Translate a checked program into one op per slot, plus one trapping op after the last slot.
///
/// The interpreter fetches ops without bounds checks; this is what makes that sound. On return:
/// every jump and local-call target is below `prog.slots()`, the second slot of every `lddw`
/// exists, and the last op (index `prog.slots()`) is an `Unsupported` trap. So an execution that
/// starts at a slot below `prog.slots()` only ever reaches indices up to `prog.slots()`: a jump or
/// call lands below it, a return goes to the slot after a call, falling through or skipping an
/// `lddw` tail goes at most one past the last slot, onto the trap, which never falls through.
pub(crate) fn prepare(prog: &Program) -> Vec<Op> {
    let mut ops = Vec::with_capacity(prog.slots() + 1);
    for (pc, insn) in prog.iter() {
        let target = |off: i32| (pc as i64 + 1 + off as i64) as i32;
        let mut op = Op::new(K::Unsupported);
        // The value of an `lddw`, split over its two slots.
        let mut wide = None;
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
                        wide = Some(v);
                    }
                    // A callback's address (`bpf_loop`): a code pointer no data access can use.
                    Imm64::Func(off) => {
                        op.kind = K::LdImm64;
                        wide = Some(crate::interp::FUNC_TAG | target(off) as u32 as u64);
                    }
                    // Map and BTF references must be resolved by a loader before running.
                    _ => op.imm = crate::isa::opcode::LDDW as i32,
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
                op.imm = a.code();
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
                op.imm = id;
            }
            Insn::Call(CallTarget::Local(off)) => {
                op.kind = K::CallLocal;
                op.off = target(off);
            }
            Insn::Call(CallTarget::Kfunc { .. }) => {
                op.imm = (crate::isa::opcode::JMP | crate::isa::opcode::JMP_CALL) as i32;
            }
            Insn::Callx { reg } => {
                op.kind = K::Callx;
                op.dst = reg.num();
            }
            Insn::Exit => op.kind = K::Exit,
            Insn::LoadPacket { mode, size, imm } => {
                op.aux = size.bytes() as u8;
                op.imm = imm;
                match mode {
                    crate::isa::PacketMode::Abs => op.kind = K::LdAbs,
                    crate::isa::PacketMode::Ind(r) => {
                        op.kind = K::LdInd;
                        op.src = r.num();
                    }
                }
            }
        }
        if let Some(v) = wide {
            op.imm = v as u32 as i32;
        }
        ops.push(op);
        if insn.slots() == 2 {
            let mut tail = Op::new(K::LdImm64Tail);
            tail.imm = wide.map_or(0, |v| (v >> 32) as u32 as i32);
            ops.push(tail);
        }
    }
    let slots = ops.len();
    assert_eq!(slots, prog.slots());
    ops.push(Op::new(K::Unsupported));
    for op in &ops {
        assert!(
            !op.has_target() || (0..slots as i64).contains(&(op.off as i64)),
            "a checked program jumps inside itself"
        );
    }
    // Run lengths, from the end: an op that ends a run is a run of one; any other adds itself to
    // the run of the op after it (after both slots for `lddw`, which is one instruction).
    let mut i = slots;
    ops[slots].run = 1;
    while i > 0 {
        i -= 1;
        let next = if ops[i].kind == K::LdImm64Tail {
            // Never executed: the `lddw` before it accounts for it.
            continue;
        } else if ops[i + 1].kind == K::LdImm64Tail {
            i + 2
        } else {
            i + 1
        };
        ops[i].run = if ops[i].ends_run() {
            1
        } else {
            ops[next].run.saturating_add(1)
        };
    }
    ops
}

/// The ops of `plain` with some pairs of adjacent instructions fused into one op, so that the
/// interpreter dispatches once and keeps the intermediate value in a host register: the copy and
/// the ALU op of three-operand arithmetic, a loop counter's increment and its test, a load and the
/// byte swap of `ntohs`/`ntohl`. A fused op replaces only the first op of its pair; the second
/// stays in its slot for jumps that land there. A fused op traps only in its first part, keeps
/// the first op's run, and runs only where the budget is paid per run: the exact level runs
/// `plain`.
pub(crate) fn fuse(plain: &[Op]) -> Vec<Op> {
    let mut ops = plain.to_vec();
    for (i, pair) in plain.windows(2).enumerate() {
        let third = plain.get(i + 2).copied();
        if let Some(f) = third.and_then(|c| fuse_triple(pair[0], pair[1], c)) {
            ops[i] = f;
        } else if let Some(f) = fuse_pair(pair[0], pair[1]) {
            ops[i] = f;
        }
    }
    ops
}

fn fuse_triple(a: Op, b: Op, c: Op) -> Option<Op> {
    use K::*;
    let (t, x) = (a.dst, a.src);
    if a.kind == Mov64R && b.kind == Add64I && b.dst == t && c.dst == t {
        let kind = match c.kind {
            Jgt64R => MovAddJgtR,
            Jge64R => MovAddJgeR,
            Jlt64R => MovAddJltR,
            Jle64R => MovAddJleR,
            _ => return None,
        };
        return Some(Op {
            kind,
            aux: c.src,
            imm: b.imm,
            off: c.off,
            ..a
        });
    }
    if a.kind != Mov64R || b.dst != t || c.dst != t && c.dst != x {
        return None;
    }
    let kind = match (b.kind, c.kind) {
        // Extensions: `x` is read before `t` is written, so `t == x` is fine.
        (Lsh64I, Rsh64I) if c.dst == t && c.imm == b.imm => MovZext,
        (Lsh64I, Arsh64I) if c.dst == t && c.imm == b.imm => MovSext,
        // Combines read `x` once, so `t` must be another register.
        _ if t == x => return None,
        (Lsh64I, Xor64R) if c.dst == x && c.src == t => LshXor,
        (Lsh64I, Or64R) if c.dst == x && c.src == t => LshOr,
        (Lsh64I, Add64R) if c.dst == x && c.src == t => LshAdd,
        (Rsh64I, Xor64R) if c.dst == x && c.src == t => RshXor,
        (Rsh64I, Or64R) if c.dst == x && c.src == t => RshOr,
        (Rsh64I, Add64R) if c.dst == x && c.src == t => RshAdd,
        (Lsh64I, Xor64R) if c.dst == t && c.src == x => LshXorT,
        (Lsh64I, Or64R) if c.dst == t && c.src == x => LshOrT,
        (Lsh64I, Add64R) if c.dst == t && c.src == x => LshAddT,
        (Rsh64I, Xor64R) if c.dst == t && c.src == x => RshXorT,
        (Rsh64I, Or64R) if c.dst == t && c.src == x => RshOrT,
        (Rsh64I, Add64R) if c.dst == t && c.src == x => RshAddT,
        _ => return None,
    };
    Some(Op {
        kind,
        imm: b.imm,
        ..a
    })
}

fn fuse_pair(a: Op, b: Op) -> Option<Op> {
    use K::*;
    let mut f = a;
    match (a.kind, b.kind) {
        (Mov64R, Add64R | Sub64R | Or64R | And64R | Xor64R) if b.dst == a.dst => {
            f.kind = match b.kind {
                Add64R => MovAdd64R,
                Sub64R => MovSub64R,
                Or64R => MovOr64R,
                And64R => MovAnd64R,
                _ => MovXor64R,
            };
            // `op rD, rD` after the copy operates on `rS`.
            f.aux = if b.src == a.dst { a.src } else { b.src };
        }
        (Lsh64I, Rsh64I | Arsh64I) if b.dst == a.dst && b.imm == a.imm => {
            f.kind = if b.kind == Rsh64I { Zext } else { Sext };
        }
        (Mov64R, _) if b.dst == a.dst => {
            f.kind = match b.kind {
                Add64I => MovAdd64,
                Sub64I => MovSub64,
                Mul64I => MovMul64,
                Or64I => MovOr64,
                And64I => MovAnd64,
                Lsh64I => MovLsh64,
                Rsh64I => MovRsh64,
                Xor64I => MovXor64,
                Arsh64I => MovArsh64,
                _ => return None,
            };
            f.imm = b.imm;
        }
        (_, Ja) if (Jeq64I as u8..=Jsle64R as u8).contains(&(a.kind as u8)) => {
            f.kind = K::ALL[(JeqJaI as u8 + (a.kind as u8 - Jeq64I as u8)) as usize];
        }
        (Add64I | Sub64I, _)
            if b.dst == a.dst && (Jeq64I as u8..=Jsle64R as u8).contains(&(b.kind as u8)) =>
        {
            let add = if a.kind == Add64I {
                a.imm as i64
            } else {
                -(a.imm as i64)
            };
            f.aux = i8::try_from(add).ok()? as u8;
            f.kind = K::ALL[(AddJeqI as u8 + (b.kind as u8 - Jeq64I as u8)) as usize];
            f.src = b.src;
            f.imm = b.imm;
            f.off = b.off;
        }
        (LdxH, Be16) | (LdxW, Be32) | (LdxDW, Be64) if b.dst == a.dst => {
            f.kind = match a.kind {
                LdxH => LdxHBe,
                LdxW => LdxWBe,
                _ => LdxDWBe,
            };
        }
        _ => return None,
    }
    Some(f)
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
        // Fused add-and-jump kinds parallel the 64-bit jumps.
        assert_eq!(
            K::ALL[(K::AddJeqI as u8 + (K::Jsle64R as u8 - K::Jeq64I as u8)) as usize],
            K::AddJsleR
        );
        assert_eq!(
            K::ALL[(K::AddJeqI as u8 + (K::Jset64I as u8 - K::Jeq64I as u8)) as usize],
            K::AddJsetI
        );
        assert_eq!(
            K::ALL[(K::JeqJaI as u8 + (K::Jsle64R as u8 - K::Jeq64I as u8)) as usize],
            K::JsleJaR
        );
    }
}
