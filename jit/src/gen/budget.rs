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

use bpfsim_vm::isa::{AluOp, CallTarget, Cond, Imm64, Insn, Reg, Source, Width};

use super::{regs_written, Exit, Gen};
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

/// The loop heads checked once per entry into their loop, for all its trips, instead of once per
/// trip: by slot, what the budget must hold on the loop's one entry edge. A loop qualifies
/// when the number of times its back edge can be taken per entry is known (`T`), so that
/// `(T + 1)` times the head's need pays for every trip and the exit path to the next
/// checkpoint; the back edge then goes to a head that only counts. Its shape (clang's
/// `for (i = N; i; i--)` and `for (i = C; i < N; i++)`):
///
/// - one back edge, from slot `b` to the head `h`, and no other jump into `[h, b]` from
///   outside it, nor to `h` at all: the only entry is the fall-through from `h - 1`, a plain
///   instruction in whose block the induction register `r` is last set to a constant `c`;
/// - no call, no other back edge and no other checkpoint in `[h, b]`;
/// - `r` written in `[h, b]` by one instruction only, `r += 1` or `r -= 1` (64-bit), in the
///   block of the test that guards the back edge, before it;
/// - that test a 64-bit compare of `r` with a constant: the back edge itself
///   (`jne r, 0, h`), or a jump over it (`jeq r, 0, +1; ja h`), taken while `r != 0` (down),
///   or while `r < k` or `r != k` (up, `c < k`).
///
/// The `i`-th test sees `c - i` (or `c + i`), so the back edge is taken at most `c - 1` times
/// (or `k - c - 1`) before the test leaves; other exits only make that fewer.
pub(super) fn counted_heads(
    insns: &[Insn],
    pcs: &[usize],
    leaders: &[bool],
    checkpoint: &[bool],
    need: &[u64],
    subprogs: &[usize],
) -> Vec<Option<u64>> {
    let slots = pcs.last().map_or(0, |&p| p + 2);
    let mut out = vec![None; slots + 1];
    let mut index = vec![usize::MAX; slots + 1];
    for (i, &pc) in pcs.iter().enumerate() {
        index[pc] = i;
    }
    let target = |i: usize| -> Option<usize> {
        let t = pcs[i] as i64 + insns[i].slots() as i64 + insns[i].jump_offset()? as i64;
        usize::try_from(t).ok().filter(|&t| t < slots)
    };
    // Back edges by head: (latch slot, count).
    let mut back: Vec<(usize, u32)> = vec![(0, 0); slots + 1];
    for (i, &pc) in pcs.iter().enumerate() {
        if let Some(t) = target(i) {
            if t <= pc {
                back[t] = (pc, back[t].1 + 1);
            }
        }
    }
    for (h, &(b, n)) in back.iter().enumerate() {
        if n != 1 {
            continue;
        }
        if let Some(need) = counted_head(insns, pcs, &index, leaders, checkpoint, subprogs, h, b)
            .and_then(|trips| trips.checked_add(1)?.checked_mul(need[h]))
            .filter(|&n| n <= i64::MAX as u64 / 2)
        {
            out[h] = Some(need);
        }
    }
    out
}

/// The back edges a counted loop from `h` to the latch `b` takes at most per entry
/// ([`counted_heads`]), or `None` for a loop of another shape.
#[allow(clippy::too_many_arguments)]
fn counted_head(
    insns: &[Insn],
    pcs: &[usize],
    index: &[usize],
    leaders: &[bool],
    checkpoint: &[bool],
    subprogs: &[usize],
    h: usize,
    b: usize,
) -> Option<u64> {
    let (ih, ib) = (*index.get(h)?, *index.get(b)?);
    if ih == usize::MAX
        || ib == usize::MAX
        || ih == 0
        || subprogs.iter().any(|&s| (h..=b).contains(&s))
    {
        return None;
    }
    let target = |i: usize| -> Option<i64> {
        Some(pcs[i] as i64 + insns[i].slots() as i64 + insns[i].jump_offset()? as i64)
    };
    // The only entry: the fall-through from a plain instruction.
    let prev = &insns[ih - 1];
    if prev.jump_offset().is_some()
        || matches!(prev, Insn::Exit | Insn::Call(_) | Insn::Callx { .. })
    {
        return None;
    }
    for (i, &pc) in pcs.iter().enumerate() {
        let Some(t) = target(i) else { continue };
        let inside = (ih..=ib).contains(&i);
        if (t == h as i64 && i != ib) || (!inside && t > h as i64 && t <= b as i64) {
            return None;
        }
        if inside && i != ib && t <= pc as i64 {
            return None;
        }
    }
    if insns[ih..=ib]
        .iter()
        .any(|i| matches!(i, Insn::Call(_) | Insn::Callx { .. }))
        || (h + 1..=b).any(|p| checkpoint.get(p).copied().unwrap_or(true))
    {
        return None;
    }
    // The test, and whether the back edge is taken when it holds.
    let (it, taken_back) = match insns[ib] {
        Insn::Jmp { .. } => (ib, true),
        Insn::Ja { .. } if ib > ih => {
            // `jcc +1` over the `ja`, which nothing else reaches.
            let t = ib - 1;
            if target(t) != Some(b as i64 + 1)
                || (0..insns.len()).any(|i| target(i) == Some(b as i64))
            {
                return None;
            }
            (t, false)
        }
        _ => return None,
    };
    let Insn::Jmp {
        width: Width::W64,
        cond,
        dst: r,
        src: Source::Imm(k),
        ..
    } = insns[it]
    else {
        return None;
    };
    let k = k as i64 as u64;
    // The one write of `r` in the loop: a step of one, in the test's block, before it.
    let bit = 1u16 << r.index();
    let writers: Vec<usize> = (ih..=ib)
        .filter(|&i| regs_written(&insns[i]) & bit != 0)
        .collect();
    let &[a] = writers.as_slice() else {
        return None;
    };
    let step = match insns[a] {
        Insn::Alu {
            width: Width::W64,
            op,
            dst,
            src: Source::Imm(1),
        } if dst == r => match op {
            AluOp::Add => 1i64,
            AluOp::Sub => -1,
            _ => return None,
        },
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst,
            src: Source::Imm(-1),
        } if dst == r => -1,
        _ => return None,
    };
    if a >= it || (pcs[a] + 1..=pcs[it]).any(|p| leaders.get(p).copied().unwrap_or(true)) {
        return None;
    }
    // `r`'s value on entry: its last write in the block that falls into the head.
    let c = (0..ih).rev().find_map(|i| {
        if regs_written(&insns[i]) & bit != 0 {
            return Some(start_value(&insns[i], r));
        }
        // A leader starts the block: a write before it may not be the one that reaches.
        leaders.get(pcs[i]).copied().unwrap_or(true).then_some(None)
    })??;
    // Taken back while: `r != 0` (down), `r < k` or `r != k` (up).
    let back_while = match (cond, taken_back) {
        (Cond::Ne, true) | (Cond::Eq, false) => Some(Cond::Ne),
        (Cond::Lt, true) | (Cond::Ge, false) => Some(Cond::Lt),
        (Cond::Gt, true) | (Cond::Le, false) if k == 0 => Some(Cond::Ne),
        _ => None,
    }?;
    match (step, back_while) {
        (-1, Cond::Ne) if k == 0 && c >= 1 => Some(c - 1),
        (1, Cond::Ne | Cond::Lt) if c < k => Some(k - c - 1),
        _ => None,
    }
}

/// The constant `insn` sets `r` to, if it is a 64-bit move of one.
fn start_value(insn: &Insn, r: Reg) -> Option<u64> {
    match *insn {
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst,
            src: Source::Imm(v),
        } if dst == r => Some(v as i64 as u64),
        Insn::LdImm64 {
            dst,
            imm: Imm64::Imm(v),
        } if dst == r => Some(v),
        _ => None,
    }
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

/// Joins (leaders with more than one predecessor) a function may have and still take the
/// budget off with subtractions everywhere ([`Gen::flush_as`]): the allocator's merges of
/// their chain cost about 0.1 ms at 32 joins, 0.3 at 64, 5 at 249.
pub(super) const MANY_JOINS: usize = 48;

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

    /// [`Self::flush`], `looping` on the way to a checkpoint (a loop's back edge, or its
    /// entry). The count is a subtraction: x64 lowering folds a chain of constant additions into
    /// a three-operand `lea` with the constant in a register (a move more, and three cycles of
    /// latency on a loop's budget chain), and an `lea` into a register of its own keeps the old
    /// budget alive beside the new one (in `xdp-dispatcher`, four callee-saved registers more to
    /// save and restore at every run). But a subtraction reuses its operand's register, which
    /// ties the budget's values from one join to the next into one of the register allocator's
    /// bundles, merged a join at a time with a sort of the whole: quadratic in the joins, and
    /// on a 1,000-instruction program of if-then blocks (`synthetic_1000_skips`, 249 joins)
    /// the allocator took 5 of the 7 ms. So in a function with more than [`MANY_JOINS`] joins
    /// the count outside loops is an addition, which ties nothing.
    pub(super) fn flush_as(&mut self, looping: bool) {
        if self.pending > 0 {
            let left = self.b.use_var(self.left);
            let v = if looping || !self.many_joins {
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
        if self.counted[pc].is_some() {
            // Checked on the loop's entry edge for every trip (`loop_entry_check`).
            return;
        }
        self.check_budget(pc, self.need[pc]);
    }

    /// On the one edge into the counted loop at `pc` (its count taken off `left`): hand the
    /// run to the interpreter at the head unless the budget holds `need`, what every trip
    /// the loop can make and its exit path take ([`counted_heads`]).
    pub(super) fn loop_entry_check(&mut self, pc: usize, need: u64) {
        self.check_budget(pc, need);
    }

    /// Hand the run to the interpreter at `pc` unless `left` holds `need`; go on in a fresh
    /// block.
    fn check_budget(&mut self, pc: usize, need: u64) {
        let left = self.b.use_var(self.left);
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
