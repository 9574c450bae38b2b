//! Jumps: unconditional and conditional, each ending its block.

use bpfsim_vm::isa::{Cond, Insn, Reg, Source, Width};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::Gen;

impl Gen<'_, '_> {
    pub(super) fn translate_ja(&mut self, insn: &Insn, next: usize) {
        let off = insn.jump_offset().unwrap_or(0);
        let t = self.block_at((next as i64 + off as i64) as usize);
        self.b.ins().jump(t, &[]);
    }

    pub(super) fn translate_jmp(
        &mut self,
        width: Width,
        cond: Cond,
        dst: Reg,
        src: Source,
        off: i16,
        next: usize,
    ) {
        let c = self.cond(width, cond, dst, src);
        let t = self.block_at((next as i64 + off as i64) as usize);
        let f = self.block_at(next);
        self.b.ins().brif(c, t, &[], f, &[]);
    }

    pub(super) fn cond(&mut self, width: Width, cond: Cond, dst: Reg, src: Source) -> Value {
        let d0 = self.reg(dst);
        let s0 = match src {
            Source::Reg(r) => self.reg(r),
            Source::Imm(i) => self.iconst(i as i64 as u64),
        };
        let (a, b) = if width == Width::W32 {
            (
                self.b.ins().ireduce(types::I32, d0),
                self.b.ins().ireduce(types::I32, s0),
            )
        } else {
            (d0, s0)
        };
        let cc = match cond {
            Cond::Eq => IntCC::Equal,
            Cond::Ne => IntCC::NotEqual,
            Cond::Gt => IntCC::UnsignedGreaterThan,
            Cond::Ge => IntCC::UnsignedGreaterThanOrEqual,
            Cond::Lt => IntCC::UnsignedLessThan,
            Cond::Le => IntCC::UnsignedLessThanOrEqual,
            Cond::Sgt => IntCC::SignedGreaterThan,
            Cond::Sge => IntCC::SignedGreaterThanOrEqual,
            Cond::Slt => IntCC::SignedLessThan,
            Cond::Sle => IntCC::SignedLessThanOrEqual,
            Cond::Set => {
                let x = self.b.ins().band(a, b);
                return self.b.ins().icmp_imm(IntCC::NotEqual, x, 0);
            }
        };
        self.b.ins().icmp(cc, a, b)
    }
}
