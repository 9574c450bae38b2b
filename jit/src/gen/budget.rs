//! The instruction budget, counted per block: a block the budget cannot pay for whole is
//! finished by the interpreter, so a budget trap has the interpreter's pc and side effects.

use std::mem::offset_of;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::InstBuilder;

use super::Gen;
use crate::shims::VmCtx;

impl Gen<'_, '_> {
    /// Entering a block of `len` instructions at `pc`: count them all, or, when the budget runs
    /// out inside the block, hand its start to the interpreter, which stops exactly where it
    /// would have (`budget_tail`).
    pub(super) fn block_entry(&mut self, pc: usize, len: u64) {
        let left = self.b.use_var(self.left);
        let after = self.b.ins().iadd_imm(left, -(len as i64));
        let short = self.b.ins().icmp_imm(IntCC::SignedLessThan, after, 0);
        let ok = self.cont();
        // The pc is materialised on the cold path only: as an argument of the branch it would
        // cost a move on every entry of the block (every loop iteration).
        let cold = self.b.create_block();
        self.b.set_cold_block(cold);
        self.b.ins().brif(short, cold, &[], ok, &[]);
        self.b.switch_to_block(cold);
        let pcv = self.iconst(pc as u64);
        self.b
            .ins()
            .jump(self.budget_block, &[pcv.into(), left.into()]);
        self.b.switch_to_block(ok);
        self.b.def_var(self.left, after);
    }

    /// The shared budget tail: the interpreter finishes the partial block at `pc`.
    pub(super) fn budget_epilogue(&mut self) {
        self.b.switch_to_block(self.budget_block);
        let p = self.b.block_params(self.budget_block).to_vec();
        self.vm_store(offset_of!(VmCtx, left_at_block), p[1]);
        for r in 0..11 {
            let v = self.b.use_var(self.regs[r]);
            self.vm_store(offset_of!(VmCtx, regs) + 8 * r, v);
        }
        let depth = self.b.use_var(self.depth);
        self.b
            .ins()
            .call(self.shims.budget_tail, &[self.vm, p[0], p[1], depth]);
        let final_left = self.vm_load(offset_of!(VmCtx, left));
        self.b.def_var(self.left, final_left);
        let tpc = self.vm_load(offset_of!(VmCtx, trap_pc));
        let zero = self.iconst(0);
        self.b
            .ins()
            .jump(self.stop_block, &[tpc.into(), zero.into()]);
    }
}
