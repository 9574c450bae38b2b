//! Arithmetic: ALU operations (division with the kernel's rules, never a native trap), negation,
//! sign-extending moves, byte swaps and 64-bit immediates.

use bpfsim_vm::isa::{AluOp, Endian, Imm64, Insn, Reg, Size, Source, Width};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};

use super::{Gen, I64};
use crate::JitError;

impl Gen<'_, '_> {
    pub(super) fn alu(&mut self, width: Width, op: AluOp, dst: Reg, src: Source) {
        let w32 = width == Width::W32;
        // A shift in a loop that holds its amount in a register (`shifts.rs`).
        let held = match (op, src) {
            (AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, Source::Imm(k)) => self.shift_amount(k),
            _ => None,
        };
        let s0 = match (held, src) {
            (Some(amount), _) => amount,
            (None, Source::Reg(r)) => self.reg(r),
            (None, Source::Imm(i)) => self.iconst(i as i64 as u64),
        };
        if op == AluOp::Mov {
            // The destination is not read: a read in a loop's head, whose block is sealed
            // last, would make the old value a parameter of the head that the register
            // allocator carries (and spills) around the loop for nothing.
            let r = if w32 {
                let low = self.b.ins().ireduce(types::I32, s0);
                self.b.ins().uextend(I64, low)
            } else {
                s0
            };
            self.set(dst, r);
            return;
        }
        let d0 = self.reg(dst);
        let (a, bv, ty) = if w32 {
            (
                self.b.ins().ireduce(types::I32, d0),
                self.b.ins().ireduce(types::I32, s0),
                types::I32,
            )
        } else {
            (d0, s0, I64)
        };
        let r = match op {
            AluOp::Add if !w32 && self.loop_carried(d0) => match src {
                // `i += k` of a value carried around a loop: as a subtraction, which the
                // instruction selector does not fold into later additions (`p = data + i`
                // after the loop would become `data + old i + k`, keeping the old `i` alive
                // past the update and costing a register copy on every back edge).
                Source::Imm(k) => {
                    let neg = self.iconst((k as i64).wrapping_neg() as u64);
                    self.b.ins().isub(a, neg)
                }
                Source::Reg(_) => self.b.ins().iadd(a, bv),
            },
            AluOp::Add => self.b.ins().iadd(a, bv),
            AluOp::Sub => self.b.ins().isub(a, bv),
            AluOp::Mul => self.b.ins().imul(a, bv),
            AluOp::Or => self.b.ins().bor(a, bv),
            AluOp::And => self.b.ins().band(a, bv),
            AluOp::Xor => self.b.ins().bxor(a, bv),
            AluOp::Lsh => self.b.ins().ishl(a, bv),
            AluOp::Rsh => self.b.ins().ushr(a, bv),
            AluOp::Arsh => self.b.ins().sshr(a, bv),
            AluOp::Mov => bv,
            AluOp::Div | AluOp::Mod | AluOp::SDiv | AluOp::SMod => self.divmod(op, a, bv, ty),
        };
        let r = if w32 { self.b.ins().uextend(I64, r) } else { r };
        self.set(dst, r);
    }

    /// Whether `v` is a parameter of a loop's head: a value the loop carries from one
    /// iteration to the next.
    fn loop_carried(&self, v: Value) -> bool {
        match self.b.func.dfg.value_def(v) {
            cranelift_codegen::ir::ValueDef::Param(block, _) => self.loop_heads.contains(&block),
            _ => false,
        }
    }

    /// Division and modulo with the kernel's rules, never a native trap: x/0 = 0, x%0 = x,
    /// INT_MIN/-1 = INT_MIN, INT_MIN%-1 = 0.
    pub(super) fn divmod(&mut self, op: AluOp, a: Value, b: Value, ty: Type) -> Value {
        let zero = self.b.ins().icmp_imm(IntCC::Equal, b, 0);
        let one = self.b.ins().iconst(ty, 1);
        match op {
            AluOp::Div | AluOp::Mod => {
                let safe = self.b.ins().select(zero, one, b);
                let q = if op == AluOp::Div {
                    self.b.ins().udiv(a, safe)
                } else {
                    self.b.ins().urem(a, safe)
                };
                let z = self.b.ins().iconst(ty, 0);
                let dflt = if op == AluOp::Div { z } else { a };
                self.b.ins().select(zero, dflt, q)
            }
            _ => {
                let minus1 = self.b.ins().icmp_imm(IntCC::Equal, b, -1);
                let bad = self.b.ins().bor(zero, minus1);
                let safe = self.b.ins().select(bad, one, b);
                let q = if op == AluOp::SDiv {
                    self.b.ins().sdiv(a, safe)
                } else {
                    self.b.ins().srem(a, safe)
                };
                let z = self.b.ins().iconst(ty, 0);
                let neg = self.b.ins().ineg(a);
                let (on_zero, on_minus1) = if op == AluOp::SDiv { (z, neg) } else { (a, z) };
                let r = self.b.ins().select(minus1, on_minus1, q);
                self.b.ins().select(zero, on_zero, r)
            }
        }
    }

    /// `dst <<= 32; dst >>= 32` (or `s>>= 32`), clang's zero (sign) extension of a 32-bit
    /// value, as one extension when both are in one block: at `opt_level` none the two shifts
    /// (and the copy before them) would stay three instructions on hot loops. True when the
    /// pair at `i` was translated.
    pub(super) fn extend_pair(&mut self, insns: &[Insn], i: usize) -> bool {
        let (Some(a), Some(b)) = (insns.get(i), insns.get(i + 1)) else {
            return false;
        };
        let Insn::Alu {
            width: Width::W64,
            op: AluOp::Lsh,
            dst,
            src: Source::Imm(32),
        } = *a
        else {
            return false;
        };
        let signed = match *b {
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Rsh,
                dst: d,
                src: Source::Imm(32),
            } if d == dst => false,
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Arsh,
                dst: d,
                src: Source::Imm(32),
            } if d == dst => true,
            _ => return false,
        };
        if self.blocks[self.pcs[i + 1]].is_some() {
            return false;
        }
        let v = self.reg(dst);
        let low = self.b.ins().ireduce(types::I32, v);
        let r = if signed {
            self.b.ins().sextend(I64, low)
        } else {
            self.b.ins().uextend(I64, low)
        };
        self.set(dst, r);
        true
    }

    pub(super) fn translate_neg(&mut self, width: Width, dst: Reg) {
        let d = self.reg(dst);
        let r = if width == Width::W32 {
            let x = self.b.ins().ireduce(types::I32, d);
            let n = self.b.ins().ineg(x);
            self.b.ins().uextend(I64, n)
        } else {
            self.b.ins().ineg(d)
        };
        self.set(dst, r);
    }

    pub(super) fn translate_movsx(&mut self, width: Width, dst: Reg, src: Reg, from: Size) {
        let s = self.reg(src);
        let narrow = self.b.ins().ireduce(Self::mem_ty(from), s);
        let r = if width == Width::W32 {
            let x = self.b.ins().sextend(types::I32, narrow);
            self.b.ins().uextend(I64, x)
        } else {
            self.b.ins().sextend(I64, narrow)
        };
        self.set(dst, r);
    }

    pub(super) fn translate_endian(&mut self, dst: Reg, order: Endian, bits: u8) {
        let d = self.reg(dst);
        let ty = match bits {
            16 => types::I16,
            32 => types::I32,
            _ => I64,
        };
        let x = if ty == I64 {
            d
        } else {
            self.b.ins().ireduce(ty, d)
        };
        let swap = matches!(order, Endian::Be | Endian::Swap);
        let y = if swap { self.b.ins().bswap(x) } else { x };
        let r = if ty == I64 {
            y
        } else {
            self.b.ins().uextend(I64, y)
        };
        self.set(dst, r);
    }

    pub(super) fn translate_lddw(
        &mut self,
        pc: usize,
        dst: Reg,
        imm: Imm64,
    ) -> Result<(), JitError> {
        let v = match imm {
            Imm64::Imm(v) => v,
            // A callback's address, as the interpreter forms it: a code pointer that no
            // memory access can use, and that the callback helpers decode.
            Imm64::Func(off) => {
                bpfsim_vm::interp::FUNC_TAG | (pc as i64 + 1 + off as i64) as u32 as u64
            }
            _ => {
                return Err(JitError::Unsupported {
                    pc,
                    what: "an unresolved lddw pseudo source",
                })
            }
        };
        let c = self.iconst(v);
        self.set(dst, c);
        Ok(())
    }
}
