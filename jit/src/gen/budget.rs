//! The instruction budget, counted per block and checked only at checkpoints: the leaders
//! that a later instruction can reach (loop heads, subprogram entries, return sites) and slot 0.
//! Between checkpoints control only moves forward, so the longest path from a checkpoint to the
//! next one is known: a checkpoint that the budget cannot pay that far hands the run to the
//! interpreter, which stops exactly where it would have (a budget trap has the interpreter's pc
//! and side effects), and every other block only counts, with no compare and no cold block (a
//! third of the blocks of branchy code).
//!
//! The count itself is deferred: a block adds its length to a pending count known at compile
//! time, carried into a successor that has no other predecessor, and taken off `left` (one
//! subtraction) only on an edge into a join or a checkpoint, or where a run may stop (a trap,
//! a helper, an exit), where [`Gen::adjust`] gives the exact budget. A loop pays one
//! subtraction and one compare per iteration.

use std::mem::offset_of;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use bpfsim_vm::isa::{CallTarget, Insn};

use super::{Exit, Gen};
use crate::shims::{self, VmCtx};

/// For each leader (by slot), whether exactly one block branches or falls through to it.
pub(super) fn single_predecessor(insns: &[Insn], pcs: &[usize], leaders: &[bool]) -> Vec<bool> {
    let mut preds = vec![0u32; leaders.len()];
    let mut block = usize::MAX;
    // The last block that counted as a predecessor of each leader (a `jgt +0` is one).
    let mut last = vec![usize::MAX; leaders.len()];
    let mut add = |preds: &mut Vec<u32>, from: usize, to: usize| {
        if to < preds.len() && last[to] != from {
            last[to] = from;
            preds[to] += 1;
        }
    };
    for (i, insn) in insns.iter().enumerate() {
        let pc = pcs[i];
        if leaders[pc] {
            block = pc;
        }
        let next = pc + insn.slots();
        let target = insn
            .jump_offset()
            .map(|off| (next as i64 + off as i64) as usize);
        match insn {
            Insn::Exit => {}
            // The callee's entry is entered from here, and the return site from the callee's
            // exits: neither may take a count carried along another edge.
            Insn::Call(CallTarget::Local(off)) => {
                add(&mut preds, block, next);
                add(&mut preds, block, (next as i64 + *off as i64) as usize);
            }
            Insn::Ja { .. } | Insn::Gotol { .. } => {
                if let Some(t) = target {
                    add(&mut preds, block, t);
                }
            }
            Insn::Jmp { .. } => {
                add(&mut preds, block, next);
                if let Some(t) = target {
                    add(&mut preds, block, t);
                }
            }
            _ if leaders.get(next).copied().unwrap_or(false) => add(&mut preds, block, next),
            _ => {}
        }
    }
    preds.iter().map(|&n| n == 1).collect()
}

/// Local calls when every subprogram has a static depth (`call::static_depths`: no recursion,
/// so the calls form a DAG): a call need not be a checkpoint's business. The callee's entry
/// checks nothing (the call's own path counts the callee's, up to its first checkpoint or its
/// exits), and the return site checks only after a callee that may have spent budget the
/// caller's check did not see: one with a checkpoint of its own (a loop) or a helper call (a
/// callback), itself or in a callee, whose checks know nothing of the caller's path after the
/// return.
pub(super) struct CallBudget {
    /// The first slot of each subprogram.
    subprogs: Vec<usize>,
    /// Each subprogram's local calls: (the call's slot, the callee's index).
    calls: Vec<Vec<(usize, usize)>>,
    /// Whether a subprogram, or one it calls, has a loop or a helper call.
    checks: Vec<bool>,
    /// The subprograms, callees before their callers.
    order: Vec<usize>,
}

impl CallBudget {
    pub(super) fn new(insns: &[Insn], pcs: &[usize], subprogs: &[usize]) -> CallBudget {
        let n = subprogs.len();
        let sub_of = |pc: usize| subprogs.partition_point(|&s| s <= pc) - 1;
        let mut calls = vec![Vec::new(); n];
        let mut checks = vec![false; n];
        for (i, insn) in insns.iter().enumerate() {
            let pc = pcs[i];
            let next = pc + insn.slots();
            let sub = sub_of(pc);
            match *insn {
                Insn::Call(CallTarget::Local(off)) => {
                    let t = (next as i64 + off as i64) as usize;
                    if let Ok(callee) = subprogs.binary_search(&t) {
                        calls[sub].push((pc, callee));
                    }
                }
                Insn::Call(CallTarget::Helper(_)) | Insn::Callx { .. } => checks[sub] = true,
                _ => {
                    if let Some(off) = insn.jump_offset() {
                        if next as i64 + off as i64 <= pc as i64 {
                            checks[sub] = true;
                        }
                    }
                }
            }
        }
        // Callees first: a depth-first post-order (no cycles: the depths are static).
        let mut order = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        fn visit(
            s: usize,
            calls: &[Vec<(usize, usize)>],
            seen: &mut [bool],
            order: &mut Vec<usize>,
        ) {
            if std::mem::replace(&mut seen[s], true) {
                return;
            }
            for &(_, c) in &calls[s] {
                visit(c, calls, seen, order);
            }
            order.push(s);
        }
        for s in 0..n {
            visit(s, &calls, &mut seen, &mut order);
        }
        for &s in &order {
            let inherited = calls[s].iter().any(|&(_, c)| checks[c]);
            checks[s] |= inherited;
        }
        CallBudget {
            subprogs: subprogs.to_vec(),
            calls,
            checks,
            order,
        }
    }

    /// The leaders that check the budget: loop heads, and the return sites of calls whose
    /// callee [`Self::checks`] says may have spent what the caller reserved.
    pub(super) fn checkpoints(&self, insns: &[Insn], pcs: &[usize], slots: usize) -> Vec<bool> {
        let mut checkpoint = vec![false; slots + 1];
        for (i, insn) in insns.iter().enumerate() {
            let pc = pcs[i];
            if let Some(off) = insn.jump_offset() {
                let t = (pc as i64 + insn.slots() as i64 + off as i64) as usize;
                if t <= pc {
                    checkpoint[t] = true;
                }
            }
        }
        for calls in &self.calls {
            for &(pc, callee) in calls {
                if self.checks[callee] {
                    checkpoint[pc + 1] = true;
                }
            }
        }
        checkpoint
    }

    fn callee_entry(&self, pc: usize) -> Option<usize> {
        let sub = self.subprogs.partition_point(|&s| s <= pc) - 1;
        self.calls[sub]
            .iter()
            .find(|&&(p, _)| p == pc)
            .map(|&(_, c)| self.subprogs[c])
    }
}

/// For each slot that starts an instruction, the most instructions a run can execute from there
/// (that one included) before it reaches a checkpoint or ends: what the budget must hold for the
/// JIT to run that far without checking it. `checkpoint` marks the leaders that check. With
/// `calls`, a local call's path goes on through its callee and on after the return site (see
/// [`CallBudget`]); without, a call's path ends at the call (its callee's entry and its return
/// site check).
pub(super) fn budget_needs(
    insns: &[Insn],
    pcs: &[usize],
    checkpoint: &[bool],
    calls: Option<&CallBudget>,
) -> Vec<u64> {
    let slots = pcs.last().map_or(0, |&pc| pc + 2);
    let mut need = vec![0u64; slots + 1];
    // Successors are after the instruction, or checkpoints (a back edge's target is one), so
    // one backward pass over a subprogram sees every successor's need first; callees are done
    // before their callers.
    let after = |need: &[u64], s: usize| -> u64 {
        if s >= need.len() || checkpoint.get(s).copied().unwrap_or(true) {
            0
        } else {
            need[s]
        }
    };
    let ranges: Vec<(usize, usize)> = match calls {
        Some(c) => c
            .order
            .iter()
            .map(|&s| {
                let lo = pcs.partition_point(|&p| p < c.subprogs[s]);
                let hi = c
                    .subprogs
                    .get(s + 1)
                    .map_or(pcs.len(), |&e| pcs.partition_point(|&p| p < e));
                (lo, hi)
            })
            .collect(),
        None => vec![(0, insns.len())],
    };
    for (lo, hi) in ranges {
        for i in (lo..hi).rev() {
            let insn = &insns[i];
            let pc = pcs[i];
            let next = pc + insn.slots();
            let target = insn
                .jump_offset()
                .map(|off| (next as i64 + off as i64) as usize);
            let rest = match insn {
                Insn::Exit => 0,
                Insn::Call(CallTarget::Local(_)) => match calls.and_then(|c| c.callee_entry(pc)) {
                    Some(entry) => after(&need, entry).saturating_add(after(&need, next)),
                    None => 0,
                },
                Insn::Ja { .. } | Insn::Gotol { .. } => target.map_or(0, |t| after(&need, t)),
                Insn::Jmp { .. } => after(&need, next).max(target.map_or(0, |t| after(&need, t))),
                _ => after(&need, next),
            };
            need[pc] = 1u64.saturating_add(rest);
        }
    }
    need
}

/// What the budget must hold at entry for the code to run to its first checkpoint unchecked,
/// when the root (slot 0, or a callback's entry) is not a loop's head: the entry compares before calling the code and, when the
/// budget is short, makes the hand-over the code would have made at slot 0 itself, so that the
/// code has no check, no cold block and no hand-over there (a program without loops or helpers
/// then has no hand-over at all). 0 when the code checks.
pub(super) fn entry_need(need: &[u64], late: &[bool], root: usize) -> u64 {
    if late.get(root).copied().unwrap_or(true) {
        0
    } else {
        need.get(root).copied().unwrap_or(0)
    }
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

    /// What to add to `left` for the exact budget after the current instruction: the
    /// block's instructions after it were counted, the pending ones not yet taken off.
    pub(super) fn adjust(&self) -> i64 {
        (self.block_len - self.block_pos - 1) as i64 - self.pending as i64
    }

    /// Take the pending count off `left` (`adjust` 0 is then the block's end), where the
    /// path goes on to no loop's head.
    pub(super) fn flush(&mut self) {
        self.flush_as(false);
    }

    /// [`Self::flush`] on the way to a checkpoint (`looping`): a loop's back edge, or its
    /// entry. There the count is a subtraction, elsewhere the addition of a negative constant.
    /// x64 lowering folds a chain of constant additions into a three-operand `lea` with the
    /// constant in a register (a move more, and three cycles of latency on a loop's budget
    /// chain); but a subtraction reuses its operand's register, which ties every value of the
    /// budget from one join to the next into one of the register allocator's bundles, merged
    /// one join at a time with a sort of the whole: the allocator then took 5 of the 7 ms of a
    /// 1,000-instruction program of if-then blocks (`synthetic_1000_skips`).
    pub(super) fn flush_as(&mut self, looping: bool) {
        if self.pending > 0 {
            let left = self.b.use_var(self.left);
            let v = if looping {
                let n = self.iconst(self.pending);
                self.b.ins().isub(left, n)
            } else {
                self.b.ins().iadd_imm(left, -(self.pending as i64))
            };
            self.b.def_var(self.left, v);
            self.pending = 0;
        }
    }

    /// Before the current block branches or falls through to the leaders `targets`: carry the
    /// pending count into them when each has this block as its only predecessor and does not
    /// check the budget, else take it off `left` now. Straight-line code then pays one
    /// subtraction per path to a join or a checkpoint instead of one per block (a chain of
    /// dependent additions on the hottest loops).
    pub(super) fn leave_block(&mut self, targets: &[usize]) {
        let carry = targets.iter().all(|&t| self.can_carry(t));
        if carry {
            for &t in targets {
                self.carry[t] = Some(self.pending as i64);
            }
        } else {
            let looping = targets.iter().any(|&t| self.checkpoint[t]);
            self.flush_as(looping);
        }
    }

    /// Whether the pending count may be carried into the leader at `target`.
    pub(super) fn can_carry(&self, target: usize) -> bool {
        !self.checkpoint[target] && self.single_pred[target]
    }

    /// Entering a block of `len` instructions at `pc`: count them (pending), with what its only
    /// predecessor carried; at a checkpoint, first hand the run to the interpreter
    /// (`budget_tail`) when the budget cannot pay for the longest path to the next checkpoint.
    pub(super) fn block_entry(&mut self, pc: usize, len: u64) {
        // The root is checked by the entry (or the callbacks' shim) before the code runs
        // ([`entry_need`]), unless a jump or a call leads back to it.
        if !self.checkpoint[pc] || (pc == self.root && !self.late[pc]) {
            // A carry is at least -1 and a block at least one instruction long.
            self.pending = (self.carry[pc].unwrap_or(0) + len as i64) as u64;
            return;
        }
        // Every edge into a checkpoint took its count off `left`.
        self.pending = len;
        let left = self.b.use_var(self.left);
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
        self.hand_over(pc, left);
        self.switch(ok);
    }

    /// Hand the run to the interpreter from slot `pc` with the exact budget `left` (the
    /// instruction at `pc` not yet counted), through the shared budget tail.
    pub(super) fn hand_over(&mut self, pc: usize, left: Value) {
        let depth = self.depth();
        self.vm_store(offset_of!(VmCtx, budget_depth), depth);
        // The registers the interpreter may read from `pc` on, stored here rather than by the
        // shared block (which would take every register as a parameter from every checkpoint);
        // the others as 0, which no path reads before writing them: kept for this cold path
        // alone, a dead register would be carried around the loop by the register allocator.
        let live = self.live.get(pc).copied().unwrap_or(u16::MAX);
        for r in 0..11 {
            let v = if live & 1 << r != 0 {
                self.reg_at(r)
            } else {
                self.iconst(0)
            };
            self.vm_store(offset_of!(VmCtx, regs) + 8 * r, v);
        }
        let pcv = self.iconst(pc as u64);
        let budget = self.exit(Exit::Budget);
        self.b.ins().jump(budget, &[pcv.into(), left.into()]);
    }

    /// The shared budget tail: the interpreter finishes the run from `pc`.
    pub(super) fn budget_epilogue(&mut self) {
        let Some(p) = self.enter_exit(Exit::Budget) else {
            return;
        };
        self.vm_store(offset_of!(VmCtx, left_at_block), p[1]);
        self.vm_store(offset_of!(VmCtx, budget_pc), p[0]);
        // The entry calls `budget_tail` once the code has returned: no call here, so a program
        // that calls nothing else is a leaf function (no frame, no saved registers).
        let st = self.iconst(shims::BUDGET);
        let slow = self.iconst(shims::SLOW);
        self.b.ins().return_(&[st, slow]);
    }
}
