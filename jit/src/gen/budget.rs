//! The instruction budget, counted per block and checked only at checkpoints: the leaders
//! that a later instruction can reach (loop heads, subprogram entries, return sites) and slot 0.
//! Between checkpoints control only moves forward, so the longest path from a checkpoint to the
//! next one is known: a checkpoint that the budget cannot pay that far hands the run to the
//! interpreter, which stops exactly where it would have (a budget trap has the interpreter's pc
//! and side effects), and every other block just subtracts its length, with no compare and no
//! cold block (a third of the blocks of branchy code).

use std::mem::offset_of;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::InstBuilder;

use bpfsim_vm::isa::{CallTarget, Insn};

use super::Gen;
use crate::shims::VmCtx;

/// For each slot that starts an instruction, the most instructions a run can execute from there
/// (that one included) before it reaches a checkpoint or ends: what the budget must hold for the
/// JIT to run that far without checking it. `checkpoint` marks the leaders that check.
pub(super) fn budget_needs(insns: &[Insn], pcs: &[usize], checkpoint: &[bool]) -> Vec<u64> {
    let slots = pcs.last().map_or(0, |&pc| pc + 2);
    let mut need = vec![0u64; slots + 1];
    // Successors are after the instruction, or checkpoints (a back edge's target is one), so
    // one backward pass sees every successor's need first.
    let after = |need: &[u64], s: usize| -> u64 {
        if s >= need.len() || checkpoint.get(s).copied().unwrap_or(true) {
            0
        } else {
            need[s]
        }
    };
    for (i, insn) in insns.iter().enumerate().rev() {
        let pc = pcs[i];
        let next = pc + insn.slots();
        let target = insn
            .jump_offset()
            .map(|off| (next as i64 + off as i64) as usize);
        let rest = match insn {
            Insn::Exit | Insn::Call(CallTarget::Local(_)) => 0,
            Insn::Ja { .. } | Insn::Gotol { .. } => target.map_or(0, |t| after(&need, t)),
            Insn::Jmp { .. } => after(&need, next).max(target.map_or(0, |t| after(&need, t))),
            _ => after(&need, next),
        };
        need[pc] = 1 + rest;
    }
    need
}

impl Gen<'_, '_> {
    /// What the budget must hold, after the instruction before `pc`, for the run to reach the
    /// next checkpoint unchecked: 0 when `pc` checks for itself.
    pub(super) fn need_at(&self, pc: usize) -> u64 {
        if self.checkpoint.get(pc).copied().unwrap_or(true) {
            0
        } else {
            self.need.get(pc).copied().unwrap_or(0)
        }
    }

    /// Entering a block of `len` instructions at `pc`: count them all; at a checkpoint, first
    /// hand the run to the interpreter (`budget_tail`) when the budget cannot pay for the
    /// longest path to the next checkpoint.
    pub(super) fn block_entry(&mut self, pc: usize, len: u64) {
        let left = self.b.use_var(self.left);
        let after = self.b.ins().iadd_imm(left, -(len as i64));
        if !self.checkpoint[pc] {
            self.b.def_var(self.left, after);
            return;
        }
        let need = self.need[pc];
        let short = self
            .b
            .ins()
            .icmp_imm(IntCC::SignedLessThan, left, need as i64);
        let ok = self.cont();
        // The pc is materialised on the cold path only: as an argument of the branch it would
        // cost a move on every entry of the block (every loop iteration).
        let cold = self.b.create_block();
        self.b.set_cold_block(cold);
        self.b.ins().brif(short, cold, &[], ok, &[]);
        self.switch(cold);
        let pcv = self.iconst(pc as u64);
        self.b
            .ins()
            .jump(self.budget_block, &[pcv.into(), left.into()]);
        self.switch(ok);
        self.b.def_var(self.left, after);
    }

    /// The shared budget tail: the interpreter finishes the run from `pc`.
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
