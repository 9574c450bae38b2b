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
        let (t, f) = (self.edge(target, t_carry), self.edge(next, f_carry));
        self.b.ins().brif(c, t, &[], f, &[]);
        // The edge block's one predecessor exists only now.
        for blk in [t, f] {
            if !self.blocks.contains(&Some(blk)) {
                self.b.seal_block(blk);
            }
        }
    }

    /// The block a branch of the current block goes to for `target`: the leader itself, with
    /// the pending count carried into it, or a block on the edge that takes the count off
    /// `left` first.
    fn edge(&mut self, target: usize, carry: bool) -> cranelift_codegen::ir::Block {
        let leader = self.block_at(target);
        if carry {
            self.carry[target] = Some(self.pending);
            return leader;
        }
        let e = self.b.create_block();
        let here = self.b.current_block().expect("inside a block");
        let pending = self.pending;
        // Sealed by the caller once the branch to it exists.
        self.b.switch_to_block(e);
        self.flush();
        self.b.ins().jump(leader, &[]);
        self.pending = pending;
        self.b.switch_to_block(here);
        e
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
