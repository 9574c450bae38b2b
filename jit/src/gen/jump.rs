//! Jumps: unconditional and conditional, each ending its block.

use bpfsim_vm::isa::{Cond, Insn, Reg, Source, Width};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::Gen;

impl Gen<'_, '_> {
    pub(super) fn translate_ja(&mut self, insn: &Insn, next: usize) {
        let off = insn.jump_offset().unwrap_or(0);
        let target = (next as i64 + off as i64) as usize;
        self.leave_block(&[target]);
        let t = self.block_at(target);
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
        let target = (next as i64 + off as i64) as usize;
        let (t_carry, f_carry) = (self.can_carry(target), self.can_carry(next));
        if t_carry == f_carry || self.pending == 0 {
            self.leave_block(&[target, next]);
            let t = self.block_at(target);
            let f = self.block_at(next);
            self.b.ins().brif(c, t, &[], f, &[]);
            return;
        }
        // One side carries the count on, the other (a join, or a loop's head) needs it taken
        // off: on that edge only, so that the path that stays in straight-line code (a loop's
        // body, typically) does not pay for it.
        let pending = self.pending;
        let mut edges = Vec::new();
        let mut side = |g: &mut Self, to: usize, carry: bool| {
            if carry {
                g.carry[to] = Some(pending);
                g.block_at(to)
            } else {
                let e = g.b.create_block();
                edges.push((e, to));
                e
            }
        };
        let t = side(self, target, t_carry);
        let f = side(self, next, f_carry);
        self.b.ins().brif(c, t, &[], f, &[]);
        // Filled once the branch has ended the current block; sealed then, their one
        // predecessor being known.
        for (e, to) in edges {
            self.switch(e);
            self.pending = pending;
            self.flush();
            let leader = self.block_at(to);
            self.b.ins().jump(leader, &[]);
        }
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
