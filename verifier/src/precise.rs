//! Precision tracking (`mark_chain_precision`, `backtrack_insn`, `propagate_precision`).
//!
//! A scalar in a checkpoint is compared by its bounds only once some later instruction relied
//! on its exact value (a branch decided by it, a pointer offset, a helper's size argument...);
//! until then any scalar in the same place is as good. When an instruction relies on a scalar,
//! the verifier walks the current path backwards, instruction by instruction, through the jump
//! history of each state segment and up the chain of checkpoints, finding every register and
//! stack slot the value came from and marking those precise in the checkpoints they pass.
//! The current state itself never carries marks: only checkpoints are ever compared against.

use bpfsim_vm::isa::{AluOp, AtomicOp, CallTarget, Insn, Source};

use crate::domain::reg::RegType;
use crate::domain::state::{Byte, State, MAX_FRAMES};
use crate::explore::Verifier;

/// r1-r5: what a call passes and clobbers.
const ARGS: u16 = 0b11_1110;

/// One register or spilled stack slot that shares a scalar id at a branch (`struct linked_reg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linked {
    pub frame: u8,
    pub is_reg: bool,
    /// Register number or stack slot index.
    pub n: u8,
}

/// One entry of a state segment's jump history (`struct bpf_jmp_history_entry`): where the
/// path came from when it did not fall through, and which stack slot a spill or fill used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hist {
    pub idx: usize,
    /// The instruction before `idx` on this path; `None` at the program's entry.
    pub prev: Option<usize>,
    /// A spill or fill of a register through a constant stack address: (frame, slot).
    pub stack: Option<(u8, u8)>,
    /// Registers and slots whose bounds a branch here refined together.
    pub linked: Vec<Linked>,
}

/// Where a path stands, for walking it backwards: its instruction, the checkpoint it descends
/// from, the first instruction since that checkpoint, and the jump history since then.
#[derive(Clone, Debug)]
pub struct PathPos {
    pub pc: usize,
    pub first: usize,
    pub parent: Option<usize>,
    pub hist: Vec<Hist>,
}

/// Registers and stack slots still looking for their origin, per frame (`struct backtrack_state`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bt {
    pub frame: usize,
    pub regs: [u16; MAX_FRAMES],
    pub stack: [u64; MAX_FRAMES],
}

/// Why backtracking gave up: the kernel then marks every scalar of the path precise.
struct Unsupported;

impl Bt {
    fn empty(&self) -> bool {
        (0..=self.frame.min(MAX_FRAMES - 1)).all(|f| self.regs[f] == 0 && self.stack[f] == 0)
    }
    fn is_reg(&self, r: u8) -> bool {
        self.regs[self.frame] & (1 << r) != 0
    }
    fn set_reg(&mut self, r: u8) {
        self.regs[self.frame] |= 1 << r;
    }
    fn clear_reg(&mut self, r: u8) {
        self.regs[self.frame] &= !(1 << r);
    }
    fn slot_set(&self, f: usize, s: usize) -> bool {
        f < MAX_FRAMES && s < 64 && self.stack[f] & (1 << s) != 0
    }

    /// `bt_sync_linked_regs`: if one of the linked registers needs precision, all do.
    fn sync_linked(&mut self, h: Option<&Hist>) {
        let Some(h) = h else { return };
        let set = |bt: &Bt, e: &Linked| {
            let f = e.frame as usize;
            if f >= MAX_FRAMES {
                return false;
            }
            if e.is_reg {
                bt.regs[f] & (1 << e.n) != 0
            } else {
                bt.slot_set(f, e.n as usize)
            }
        };
        if !h.linked.iter().any(|e| set(self, e)) {
            return;
        }
        for e in &h.linked {
            let f = e.frame as usize;
            if f >= MAX_FRAMES {
                continue;
            }
            if e.is_reg {
                self.regs[f] |= 1 << e.n;
            } else if e.n < 64 {
                self.stack[f] |= 1 << e.n;
            }
        }
    }
}

impl Verifier<'_> {
    /// Record a non-linear step into `pc` (or a stack access at it) in the current segment's
    /// history; a second record for the same instruction merges into the first.
    pub fn push_hist(&mut self, stack: Option<(u8, u8)>, linked: Vec<Linked>) {
        if self.cur_hist_ent {
            if let Some(h) = self.cur_hist.last_mut() {
                if stack.is_some() {
                    h.stack = stack;
                }
                if !linked.is_empty() {
                    h.linked = linked;
                }
                return;
            }
        }
        self.cur_hist.push(Hist {
            idx: self.cur_pc,
            prev: self.prev_pc,
            stack,
            linked,
        });
        self.cur_hist_ent = true;
    }

    /// `collect_linked_regs` and the history entry a branch on a scalar with an id records.
    /// `collect_linked_regs`: the live registers and spilled slots of every frame that share
    /// one of `ids` (whatever their constant delta), at most six, innermost frame first.
    pub fn collect_linked(&self, st: &State, ids: &[u32]) -> Vec<Linked> {
        let live = self.live_masks(st, self.cur_pc);
        let mut linked = Vec::new();
        for &id in ids.iter().filter(|&&id| id != 0) {
            for (f, fr) in st.frames.iter().enumerate().rev() {
                let mask = live.get(f).copied().unwrap_or(u16::MAX);
                for (r, reg) in fr.regs.iter().enumerate().take(10) {
                    if mask & (1 << r) != 0 && reg.is_scalar() && reg.id == id && linked.len() < 6 {
                        linked.push(Linked {
                            frame: f as u8,
                            is_reg: true,
                            n: r as u8,
                        });
                    }
                }
                for (s, slot) in fr.stack.iter().enumerate() {
                    if slot.bytes[0] == Byte::Spill
                        && slot.spilled.is_scalar()
                        && slot.spilled.id == id
                        && linked.len() < 6
                    {
                        linked.push(Linked {
                            frame: f as u8,
                            is_reg: false,
                            n: s as u8,
                        });
                    }
                }
            }
        }
        linked
    }

    /// Registers linked at a branch go into the jump history, so that precision needed by one
    /// of them later reaches the others.
    pub fn record_linked(&mut self, linked: &[Linked]) {
        if linked.len() > 1 {
            self.push_hist(None, linked.to_vec());
        }
    }

    /// `mark_chain_precision`: the current instruction relies on the exact value of scalar
    /// register `regno` of the innermost frame.
    pub fn mark_precise(&mut self, st: &State, regno: usize) {
        if !st.reg(regno).is_scalar() {
            return;
        }
        let mut bt = Bt {
            frame: st.frames.len() - 1,
            ..Bt::default()
        };
        bt.regs[bt.frame] |= 1 << regno;
        self.mark_chain(bt);
    }

    /// The current instruction relies on the scalar spilled in `slot` of frame `frame`.
    pub fn mark_precise_slot(&mut self, st: &State, frame: usize, slot: usize) {
        if slot >= 64 || frame >= st.frames.len() {
            return;
        }
        let mut bt = Bt {
            frame: st.frames.len() - 1,
            ..Bt::default()
        };
        bt.stack[frame] |= 1 << slot;
        self.mark_chain(bt);
    }

    /// `propagate_precision`: the current state was pruned against checkpoint `old`; what `old`
    /// needed precise, the current path must keep precise too.
    pub fn propagate_precision(&mut self, old: usize, cur_frames: usize) {
        let pos = self.cur_pos();
        self.propagate_precision_from(old, cur_frames, &pos);
    }

    /// The current path's position.
    pub fn cur_pos(&self) -> PathPos {
        PathPos {
            pc: self.cur_pc,
            first: self.cur_first,
            parent: self.cur_parent,
            hist: self.cur_hist.clone(),
        }
    }

    /// `propagate_precision` for a path at `pos` found equal to checkpoint `old`.
    pub fn propagate_precision_from(&mut self, old: usize, cur_frames: usize, pos: &PathPos) {
        let e = &self.explored[old];
        let mut bt = Bt {
            frame: cur_frames.saturating_sub(1).min(MAX_FRAMES - 1),
            ..Bt::default()
        };
        for (f, fr) in e.state.frames.iter().enumerate().take(MAX_FRAMES) {
            let (regs, stack) = e.prec.get(f).copied().unwrap_or((0, 0));
            for r in 0..10 {
                if regs & (1 << r) != 0 && fr.regs[r].is_scalar() {
                    bt.regs[f] |= 1 << r;
                }
            }
            for (s, slot) in fr.stack.iter().enumerate().take(64) {
                if stack & (1 << s) != 0 && slot.bytes[0] == Byte::Spill && slot.spilled.is_scalar()
                {
                    bt.stack[f] |= 1 << s;
                }
            }
        }
        self.log_propagating(e.state.frames.len(), &bt.regs, &bt.stack);
        self.mark_chain_from(bt, pos);
    }

    /// `__mark_chain_precision` from the current instruction of the current path.
    fn mark_chain(&mut self, bt: Bt) {
        if bt.empty() {
            return;
        }
        let pos = self.cur_pos();
        self.mark_chain_from(bt, &pos);
    }

    /// `__mark_chain_precision` from the instruction at `pos`.
    fn mark_chain_from(&mut self, mut bt: Bt, pos: &PathPos) {
        if bt.empty() {
            return;
        }
        let mut last = Some(pos.pc);
        let mut first = pos.first;
        let mut parent = pos.parent;
        // None: the current segment's history; Some(i): checkpoint i's.
        let mut seg: Option<usize> = None;
        let mut subseq: Option<usize> = None;
        let mut skip_first = true;
        loop {
            self.log_mp_segment(bt.frame, last, first, subseq);
            let Some(mut i) = last else {
                // Only a global function's entry has no previous instruction; bpfsim treats
                // every subprogram as static, so stop here.
                return;
            };
            let hist: &[Hist] = match seg {
                None => &pos.hist,
                Some(s) => &self.explored[s].hist,
            };
            let mut cnt = hist.len();
            loop {
                if skip_first {
                    skip_first = false;
                } else {
                    let f = bt.frame.min(MAX_FRAMES - 1);
                    self.log_mp_insn(f, bt.regs[f], bt.stack[f], i);
                    let h = (cnt > 0 && hist[cnt - 1].idx == i).then(|| &hist[cnt - 1]);
                    if self.backtrack_insn(i, subseq, h, &mut bt).is_err() {
                        self.mark_all_precise(pos.parent);
                        return;
                    }
                }
                if bt.empty() {
                    return;
                }
                subseq = Some(i);
                // get_prev_insn_idx
                if i == first && (cnt == 0 || (cnt == 1 && hist[0].idx == i)) {
                    break;
                }
                if cnt > 0 && hist[cnt - 1].idx == i {
                    match hist[cnt - 1].prev {
                        Some(p) => i = p,
                        None => return,
                    }
                    cnt -= 1;
                } else if i == 0 {
                    // Backtracking ran past the program's start with marks left: the
                    // kernel's "backtracking idx" bug; be conservative.
                    self.mark_all_precise(pos.parent);
                    return;
                } else {
                    i -= 1;
                }
            }
            let Some(p) = parent else { return };
            let mut changed = false;
            let e = &mut self.explored[p];
            if e.prec.len() < e.state.frames.len() {
                e.prec.resize(e.state.frames.len(), (0, 0));
            }
            for f in (0..=bt.frame).rev() {
                let Some(fr) = e.state.frames.get(f) else {
                    bt.regs[f] = 0;
                    bt.stack[f] = 0;
                    continue;
                };
                for r in 0..11u8 {
                    if bt.regs[f] & (1 << r) == 0 {
                        continue;
                    }
                    if fr.regs[r as usize].ty != RegType::Scalar || e.prec[f].0 & (1 << r) != 0 {
                        bt.regs[f] &= !(1 << r);
                    } else {
                        e.prec[f].0 |= 1 << r;
                        changed = true;
                    }
                }
                for s in 0..64usize {
                    if bt.stack[f] & (1 << s) == 0 {
                        continue;
                    }
                    let spilled_scalar = fr
                        .stack
                        .get(s)
                        .is_some_and(|x| x.bytes[0] == Byte::Spill && x.spilled.is_scalar());
                    if !spilled_scalar || e.prec[f].1 & (1 << s) != 0 {
                        bt.stack[f] &= !(1 << s);
                    } else {
                        e.prec[f].1 |= 1 << s;
                        changed = true;
                    }
                }
            }
            let (e_last, e_first, e_parent) = (e.last, e.first, e.parent);
            self.prec_changed |= changed;
            for f in (0..=bt.frame.min(MAX_FRAMES - 1)).rev() {
                self.log_mp_parent(p, f, bt.regs[f], bt.stack[f]);
            }
            if bt.empty() {
                return;
            }
            subseq = Some(first);
            last = e_last;
            first = e_first;
            parent = e_parent;
            seg = Some(p);
        }
    }

    /// `mark_all_scalars_precise`: every scalar of every checkpoint up the current path.
    pub fn mark_all_precise(&mut self, from: Option<usize>) {
        let mut p = from;
        while let Some(i) = p {
            let e = &mut self.explored[i];
            e.prec
                .resize(e.state.frames.len().max(e.prec.len()), (0, 0));
            let before = e.prec.clone();
            for (f, fr) in e.state.frames.iter().enumerate() {
                for r in 0..10 {
                    if fr.regs[r].is_scalar() {
                        e.prec[f].0 |= 1 << r;
                    }
                }
                for (s, slot) in fr.stack.iter().enumerate().take(64) {
                    if slot.bytes[0] == Byte::Spill && slot.spilled.is_scalar() {
                        e.prec[f].1 |= 1 << s;
                    }
                }
            }
            let changed = e.prec != before;
            p = e.parent;
            self.prec_changed |= changed;
        }
    }

    /// `backtrack_insn`: what instruction `idx` means for the registers and slots sought.
    fn backtrack_insn(
        &self,
        idx: usize,
        subseq: Option<usize>,
        h: Option<&Hist>,
        bt: &mut Bt,
    ) -> Result<(), Unsupported> {
        // The second slot of an lddw.
        let Some(insn) = self.insn_at(idx) else {
            return Ok(());
        };
        bt.sync_linked(h);
        let stack_of = |h: Option<&Hist>| h.and_then(|h| h.stack);
        match *insn {
            Insn::Alu { op, dst, src, .. } => {
                if !bt.is_reg(dst.num()) {
                    return Ok(());
                }
                match (op, src) {
                    (AluOp::Mov, Source::Reg(s)) => {
                        bt.clear_reg(dst.num());
                        if s.num() != 10 {
                            bt.set_reg(s.num());
                        }
                    }
                    (AluOp::Mov, Source::Imm(_)) => bt.clear_reg(dst.num()),
                    (_, Source::Reg(s)) => {
                        if s.num() != 10 {
                            bt.set_reg(s.num());
                        }
                    }
                    (_, Source::Imm(_)) => {}
                }
            }
            Insn::MovSx { dst, src, .. } => {
                if !bt.is_reg(dst.num()) {
                    return Ok(());
                }
                bt.clear_reg(dst.num());
                if src.num() != 10 {
                    bt.set_reg(src.num());
                }
            }
            Insn::Neg { .. } | Insn::Endian { .. } => {}
            Insn::Load { dst, .. } => self.bt_load(dst.num(), stack_of(h), bt),
            Insn::Atomic { op, dst, src, .. } => match op {
                AtomicOp::LoadAcquire => self.bt_load(dst.num(), stack_of(h), bt),
                AtomicOp::CmpXchg => self.bt_load(0, stack_of(h), bt),
                AtomicOp::Xchg
                | AtomicOp::Add { fetch: true }
                | AtomicOp::Or { fetch: true }
                | AtomicOp::And { fetch: true }
                | AtomicOp::Xor { fetch: true } => self.bt_load(src.num(), stack_of(h), bt),
                _ => {
                    if bt.is_reg(dst.num()) {
                        return Err(Unsupported);
                    }
                    if let Some((f, s)) = stack_of(h) {
                        let (f, s) = (f as usize, s as usize);
                        if bt.slot_set(f, s) {
                            bt.stack[f] &= !(1 << s);
                            bt.set_reg(src.num());
                        }
                    }
                }
            },
            Insn::Store { dst, src, .. } => {
                if bt.is_reg(dst.num()) {
                    // A scalar used as an address: pointer subtraction the walk cannot follow.
                    return Err(Unsupported);
                }
                if let Some((f, s)) = stack_of(h) {
                    let (f, s) = (f as usize, s as usize);
                    if !bt.slot_set(f, s) {
                        return Ok(());
                    }
                    bt.stack[f] &= !(1 << s);
                    if let Source::Reg(r) = src {
                        bt.set_reg(r.num());
                    }
                }
            }
            Insn::Jmp { dst, src, .. } => {
                if let Source::Reg(s) = src {
                    if bt.is_reg(dst.num()) || bt.is_reg(s.num()) {
                        bt.set_reg(s.num());
                        bt.set_reg(dst.num());
                    }
                }
            }
            Insn::Ja { .. } | Insn::Gotol { .. } => {}
            Insn::Call(CallTarget::Local(off))
                if self
                    .global_at((idx as i64 + 1 + off as i64) as usize)
                    .is_some() =>
            {
                // A global function only sets r0; its arguments were checked by type.
                if bt.regs[bt.frame] & ARGS != 0 {
                    return Err(Unsupported);
                }
                bt.clear_reg(0);
            }
            Insn::Call(CallTarget::Local(_)) => {
                // Walking back out of a callee into its caller: only arguments can be sought.
                if bt.regs[bt.frame] & !ARGS != 0 || bt.stack[bt.frame] != 0 || bt.frame == 0 {
                    return Err(Unsupported);
                }
                let args = bt.regs[bt.frame] & ARGS;
                bt.regs[bt.frame] = 0;
                bt.frame -= 1;
                bt.regs[bt.frame] |= args;
            }
            Insn::Call(CallTarget::Helper(_)) if subseq.is_some_and(|s| s != idx + 1) => {
                // The exit of a callback back to the helper that called it.
                if bt.regs[bt.frame] & !ARGS != 0 || bt.stack[bt.frame] != 0 || bt.frame == 0 {
                    return Err(Unsupported);
                }
                bt.regs[bt.frame] = 0;
                bt.frame -= 1;
            }
            Insn::Call(_) | Insn::Callx { .. } => {
                bt.clear_reg(0);
                if bt.regs[bt.frame] & ARGS != 0 {
                    return Err(Unsupported);
                }
            }
            Insn::Exit => {
                // Walking back into a callee from the instruction after its call.
                let calls_callback = subseq
                    .and_then(|s| self.insn_at(s))
                    .is_some_and(|i| matches!(i, Insn::Call(CallTarget::Helper(_))));
                if calls_callback {
                    bt.regs[bt.frame] &= !ARGS;
                }
                if bt.regs[bt.frame] & ARGS != 0 || bt.frame + 1 >= MAX_FRAMES {
                    return Err(Unsupported);
                }
                let r0 = subseq
                    .and_then(|s| s.checked_sub(1))
                    .and_then(|s| self.insn_at(s))
                    .is_some_and(|i| matches!(i, Insn::Call(CallTarget::Local(_))))
                    && bt.is_reg(0);
                bt.clear_reg(0);
                bt.frame += 1;
                if r0 {
                    bt.set_reg(0);
                }
                return Ok(());
            }
            Insn::LdImm64 { dst, .. } => {
                if bt.is_reg(dst.num()) {
                    bt.clear_reg(dst.num());
                }
            }
            Insn::LoadPacket { .. } => {
                // ld_abs/ld_ind write r0 from the packet: the kernel does not follow them.
                if bt.is_reg(0) {
                    return Err(Unsupported);
                }
            }
        }
        bt.sync_linked(h);
        Ok(())
    }

    fn bt_load(&self, reg: u8, stack: Option<(u8, u8)>, bt: &mut Bt) {
        if !bt.is_reg(reg) {
            return;
        }
        bt.clear_reg(reg);
        // Only a fill from the stack restores a value a later instruction can track back.
        if let Some((f, s)) = stack {
            if (f as usize) < MAX_FRAMES && s < 64 {
                bt.stack[f as usize] |= 1 << s;
            }
        }
    }
}
