//! The kernel's per-call-chain stack slot liveness (kernel/bpf/liveness.c, 6.18), computed as
//! `do_check` goes from the same events (the stack slots each instruction reads and fully
//! writes, path ends and subprogram exits): a checkpoint fully explored forgets the stack slots
//! no path from it reads (`clean_live_states`), and level 2 prints each change of the dataflow
//! solution (`(0) frame 0 insn 13 +live -8`, `(0) live stack update done in 2 iterations`).

use std::collections::HashMap;

use bpfsim_vm::isa::{CallTarget, Insn};
use bpfsim_vm::spec::proto::{self, ArgAux, ArgBase, TypeFlags};

use crate::domain::reg::RegType;
use crate::domain::state::State;
use crate::MapInfo;

/// One instruction's marks for one frame (`struct per_frame_masks`).
#[derive(Clone, Copy, Default)]
struct Masks {
    may_read: u64,
    must_write: u64,
    must_write_acc: u64,
    live_before: u64,
}

/// A function instance: the marks of one subprogram reached by one call chain.
struct Instance {
    /// Call sites, then the subprogram's first instruction (`callchain.callsites`).
    chain: Vec<usize>,
    start: usize,
    len: usize,
    /// Per frame of the chain (allocated on first use), per instruction of the subprogram.
    frames: Vec<Option<Vec<Masks>>>,
    must_write_set: Vec<bool>,
    updated: bool,
    must_write_dropped: bool,
}

impl Instance {
    fn masks(&mut self, frame: usize, insn: usize) -> Option<&mut Masks> {
        let rel = insn.checked_sub(self.start)?;
        if rel >= self.len || frame >= self.frames.len() {
            return None;
        }
        let len = self.len;
        self.frames[frame]
            .get_or_insert_with(|| vec![Masks::default(); len])
            .get_mut(rel)
    }

    fn get(&self, frame: usize, insn: usize) -> Option<&Masks> {
        let rel = insn.checked_sub(self.start)?;
        self.frames.get(frame)?.as_ref()?.get(rel)
    }

    fn name(&self) -> String {
        let parts: Vec<String> = self.chain.iter().map(|c| c.to_string()).collect();
        format!("({})", parts.join(","))
    }
}

/// The analysis' state (`struct bpf_liveness`).
#[derive(Default)]
pub struct StackLive {
    instances: HashMap<Vec<usize>, Instance>,
    /// Subprogram starts, and each one's instructions in the kernel's postorder.
    starts: Vec<usize>,
    end: usize,
    postorder: Vec<Vec<usize>>,
    /// Successors of each instruction (`bpf_insn_successors`).
    succ: Vec<Vec<usize>>,
    /// The write marks of the instruction being processed: its instance, slot, per-frame
    /// masks; `None` once committed or when the instance changed under it.
    pending: Option<(Vec<usize>, usize, Vec<u64>)>,
}

/// `bpf_insn_successors`.
fn successors(insns: &[Insn], at: &[Option<usize>], pc: usize) -> Vec<usize> {
    let Some(insn) = at.get(pc).copied().flatten().map(|i| &insns[i]) else {
        return Vec::new();
    };
    let next = pc + insn.slots();
    let jump = insn
        .jump_offset()
        .and_then(|o| usize::try_from(next as i64 + o as i64).ok());
    match insn {
        Insn::Exit => Vec::new(),
        Insn::Ja { .. } | Insn::Gotol { .. } => jump.into_iter().collect(),
        Insn::Jmp { .. } => std::iter::once(next).chain(jump).collect(),
        _ => vec![next],
    }
}

fn fmt_mask(m: u64) -> String {
    (0..64)
        .filter(|i| m & (1 << i) != 0)
        .map(|i| format!("{}", -8 * (i + 1)))
        .collect::<Vec<_>>()
        .join(",")
}

impl StackLive {
    pub fn new(insns: &[Insn]) -> StackLive {
        let mut at = Vec::new();
        let mut pc = 0;
        for (i, insn) in insns.iter().enumerate() {
            at.resize(pc + insn.slots(), None);
            at[pc] = Some(i);
            pc += insn.slots();
        }
        let end = pc;
        let starts = super::subprog_starts(insns);
        // `compute_postorder`: a depth-first walk of each subprogram (calls fall through), the
        // jump target explored before the fall-through.
        let mut postorder = Vec::new();
        let mut state = vec![0u8; end + 1];
        for &s in &starts {
            let mut order = Vec::new();
            if s >= end {
                postorder.push(order);
                continue;
            }
            let mut stack = vec![s];
            while let Some(&top) = stack.last() {
                state[top] |= 1;
                if state[top] & 2 != 0 {
                    order.push(top);
                    stack.pop();
                    continue;
                }
                for n in successors(insns, &at, top) {
                    if n < end && state[n] == 0 {
                        stack.push(n);
                        state[n] |= 1;
                    }
                }
                state[top] |= 2;
            }
            postorder.push(order);
        }
        let succ = (0..end).map(|pc| successors(insns, &at, pc)).collect();
        StackLive {
            instances: HashMap::new(),
            starts,
            end,
            postorder,
            succ,
            pending: None,
        }
    }

    fn subprog_of(&self, start: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1)
    }

    /// `compute_callchain` for frame `frameno` of `st`.
    fn chain(st: &State, frameno: usize) -> Vec<usize> {
        let mut c: Vec<usize> = (0..frameno).map(|i| st.frames[i + 1].callsite).collect();
        c.push(st.frames[frameno].subprog);
        c
    }

    fn instance(&mut self, chain: &[usize]) -> &mut Instance {
        let start = *chain.last().unwrap_or(&0);
        let sp = self.subprog_of(start);
        let next = self.starts.get(sp + 1).copied().unwrap_or(self.end);
        self.instances
            .entry(chain.to_vec())
            .or_insert_with(|| Instance {
                chain: chain.to_vec(),
                start,
                len: next.saturating_sub(start).max(1),
                frames: vec![None; chain.len()],
                must_write_set: vec![false; next.saturating_sub(start).max(1)],
                updated: false,
                must_write_dropped: false,
            })
    }

    /// `mark_stack_read`.
    fn mark_read(inst: &mut Instance, frame: usize, insn: usize, mask: u64) {
        let Some(m) = inst.masks(frame, insn) else {
            return;
        };
        let new = m.may_read | mask;
        let grows = new != m.may_read && (new | m.live_before) != m.live_before;
        m.may_read = new;
        if grows {
            inst.updated = true;
        }
    }

    /// `commit_stack_write_marks`.
    fn commit_to(&mut self, chain: &[usize], insn: usize, acc: &[u64]) {
        let inst = self.instance(chain);
        let Some(rel) = insn.checked_sub(inst.start).filter(|&r| r < inst.len) else {
            return;
        };
        for (frame, &a) in acc.iter().enumerate().take(inst.frames.len()) {
            if a == 0 && !inst.must_write_set[rel] {
                continue;
            }
            let set = inst.must_write_set[rel];
            let Some(m) = inst.masks(frame, insn) else {
                continue;
            };
            let old = m.must_write;
            let mask = if set { a & old } else { a };
            let mut updated = false;
            if old != mask {
                m.must_write = mask;
                updated = true;
            }
            let dropped = old & !mask != 0;
            inst.updated |= updated;
            inst.must_write_dropped |= dropped;
        }
        inst.must_write_set[rel] = true;
    }

    fn commit(&mut self) {
        if let Some((chain, insn, acc)) = self.pending.take() {
            self.commit_to(&chain, insn, &acc);
        }
    }

    /// An instruction of `st` at `pc` is about to run: the previous one's writes are
    /// committed, and this one's reads are recorded (`bpf_reset_stack_write_marks`, the
    /// `bpf_mark_stack_read` calls of the stack accesses).
    pub fn begin(&mut self, st: &State, pc: usize, insn: &Insn, maps: &[MapInfo]) {
        self.commit();
        let cur = st.frames.len() - 1;
        let chain = Self::chain(st, cur);
        let (reads, writes) = accesses(st, insn, maps);
        let inst = self.instance(&chain);
        for &(frame, mask) in &reads {
            Self::mark_read(inst, frame, pc, mask);
        }
        let mut acc = vec![0u64; cur + 1];
        for (frame, mask) in writes {
            if let Some(a) = acc.get_mut(frame) {
                *a |= mask;
            }
        }
        self.pending = Some((chain, pc, acc));
    }

    /// `bpf_stack_slot_alive`: whether slot `spi` of frame `frameno` of `st`, at `pc`, may
    /// still be read: live before `pc` in the innermost call chain's instance, or, for an outer
    /// frame, live after the call it waits on (before it, for a call that runs a callback,
    /// which may run again).
    pub fn slot_alive(
        &self,
        st: &State,
        pc: usize,
        frameno: usize,
        spi: usize,
        calls_callback: &dyn Fn(usize) -> bool,
    ) -> bool {
        if spi >= 64 {
            return true;
        }
        let live_at = |f: usize, insn: usize| {
            self.instances
                .get(&Self::chain(st, f))
                .and_then(|inst| inst.get(frameno, insn))
                .is_some_and(|m| m.live_before & (1 << spi) != 0)
        };
        let cur = st.frames.len() - 1;
        if live_at(cur, pc) {
            return true;
        }
        (frameno..cur).any(|i| {
            let callsite = st.frames[i + 1].callsite;
            let at = if calls_callback(callsite) {
                callsite
            } else {
                callsite + 1
            };
            live_at(i, at)
        })
    }

    /// A call entered a subprogram: the instruction's marks go nowhere
    /// (`bpf_reset_live_stack_callchain` leaves no current instance to commit to).
    pub fn entered(&mut self) {
        self.pending = None;
    }

    /// `bpf_update_live_stack` at a path's end or a subprogram's exit (`exit_insn`: its marks
    /// are dropped like a call's): each instance of the current call chain, innermost first,
    /// solved again if it changed, its changes written to `log`.
    pub fn update(
        &mut self,
        st: &State,
        exit_insn: bool,
        prune: &dyn Fn(usize) -> bool,
        mut log: Option<&mut Vec<String>>,
    ) {
        if exit_insn {
            self.pending = None;
        } else {
            self.commit();
        }
        for frame in (0..st.frames.len()).rev() {
            let chain = Self::chain(st, frame);
            let updated = self.instance(&chain).updated;
            if updated {
                self.update_instance(&chain, prune, log.as_deref_mut());
                let inst = self.instance(&chain);
                inst.updated = false;
                inst.must_write_dropped = false;
            }
        }
    }

    /// `update_instance`: the fixed point of `live_before` and `must_write_acc`.
    fn update_instance(
        &mut self,
        chain: &[usize],
        prune: &dyn Fn(usize) -> bool,
        mut log: Option<&mut Vec<String>>,
    ) {
        let sp = self.subprog_of(*chain.last().unwrap_or(&0));
        let order = self.postorder.get(sp).cloned().unwrap_or_default();
        let succ_lists: Vec<Vec<usize>> = order
            .iter()
            .map(|&pc| self.succ.get(pc).cloned().unwrap_or_default())
            .collect();
        let inst = self.instance(chain);
        if inst.must_write_dropped {
            for f in inst.frames.iter_mut().flatten() {
                for m in f.iter_mut() {
                    m.must_write_acc = 0;
                }
            }
        }
        let name = if log.is_some() {
            inst.name()
        } else {
            String::new()
        };
        let mut cnt = 0;
        loop {
            cnt += 1;
            let mut changed = false;
            for frame in 0..inst.frames.len() {
                if inst.frames[frame].is_none() {
                    continue;
                }
                for (k, &pc) in order.iter().enumerate() {
                    let succ = &succ_lists[k];
                    if succ.is_empty() {
                        continue;
                    }
                    let mut after = 0u64;
                    let mut acc = u64::MAX;
                    for &s in succ {
                        let sm = inst.get(frame, s).copied().unwrap_or_default();
                        after |= sm.live_before;
                        acc &= sm.must_write_acc;
                    }
                    let Some(m) = inst.get(frame, pc).copied() else {
                        continue;
                    };
                    let acc = acc | m.must_write;
                    let before = (after & !m.must_write) | m.may_read;
                    changed |= before != m.live_before || acc != m.must_write_acc;
                    if let Some(log) = log.as_deref_mut() {
                        if m.may_read != 0 || m.must_write != 0 || pc == inst.start || prune(pc) {
                            change_line(log, &name, "live", frame, pc, m.live_before, before);
                            change_line(log, &name, "written", frame, pc, m.must_write_acc, acc);
                        }
                    }
                    if let Some(m) = inst.masks(frame, pc) {
                        m.live_before = before;
                        m.must_write_acc = acc;
                    }
                }
            }
            if !changed || cnt > 64 {
                break;
            }
        }
        if let Some(log) = log {
            log.push(format!("{name} live stack update done in {cnt} iterations"));
        }
        // `propagate_to_outer_instance`: what the subprogram's entry reads and surely writes
        // of outer frames lands on the call instruction of the caller's instance.
        if chain.len() > 1 {
            let start = inst.start;
            let entry: Vec<(u64, u64)> = (0..chain.len() - 1)
                .map(|f| {
                    inst.get(f, start)
                        .map_or((0, 0), |m| (m.must_write_acc, m.live_before))
                })
                .collect();
            let has: Vec<bool> = (0..chain.len() - 1)
                .map(|f| inst.frames[f].is_some())
                .collect();
            let callsite = chain[chain.len() - 2];
            let mut outer: Vec<usize> = chain[..chain.len() - 1].to_vec();
            // The caller's chain ends with its own subprogram's start.
            let caller_start = self.starts[self.subprog_of(callsite)];
            if let Some(last) = outer.last_mut() {
                *last = caller_start;
            }
            let mut acc = vec![0u64; outer.len()];
            let o = self.instance(&outer);
            for f in 0..entry.len() {
                if !has[f] {
                    continue;
                }
                acc[f] |= entry[f].0;
                Self::mark_read(o, f, callsite, entry[f].1);
            }
            self.commit_to(&outer, callsite, &acc);
        }
    }
}

/// `log_mask_change`.
fn change_line(
    log: &mut Vec<String>,
    name: &str,
    what: &str,
    frame: usize,
    pc: usize,
    old: u64,
    new: u64,
) {
    let changed = old ^ new;
    if changed == 0 {
        return;
    }
    let mut s = format!("{name} frame {frame} insn {pc} ");
    let ones = new & changed;
    let zeros = !new & changed;
    if ones != 0 {
        s.push_str(&format!("+{what} {} ", fmt_mask(ones)));
    }
    if zeros != 0 {
        s.push_str(&format!("-{what} {}", fmt_mask(zeros)));
    }
    log.push(s);
}

/// Stack slots (bit i: fp-8*(i+1)) of one frame.
type FrameMask = (usize, u64);

/// The stack slots `insn` reads, and those it writes whole, per frame, `st` being the state
/// before it (the kernel's `bpf_mark_stack_read`/`bpf_mark_stack_write` calls).
fn accesses(st: &State, insn: &Insn, maps: &[MapInfo]) -> (Vec<FrameMask>, Vec<FrameMask>) {
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    // Slots `[off, off+size)` from stack pointer register `r` cover, with its frame.
    let span = |r: usize, off: i64, size: u64| -> Option<(usize, u64, i64)> {
        let p = st.reg(r);
        if p.ty != RegType::Stack || !p.var_off.is_const() {
            return None;
        }
        let lo = (p.var_off.value as i64)
            .wrapping_add(p.off as i64)
            .wrapping_add(off);
        let mut mask = 0u64;
        for b in 0..size.min(512) as i64 {
            let at = lo + b;
            if (-512..0).contains(&at) {
                mask |= 1 << ((-at - 1) / 8);
            }
        }
        Some((p.frameno as usize, mask, lo))
    };
    match *insn {
        Insn::Load { src, off, size, .. } => {
            if let Some((f, m, _)) = span(src.index(), off as i64, size.bytes() as u64) {
                reads.push((f, m));
            }
        }
        Insn::Store { dst, off, size, .. } => {
            if let Some((f, m, lo)) = span(dst.index(), off as i64, size.bytes() as u64) {
                if size.bytes() == 8 && lo % 8 == 0 {
                    writes.push((f, m));
                }
            }
        }
        Insn::Atomic { dst, off, size, .. } => {
            if let Some((f, m, lo)) = span(dst.index(), off as i64, size.bytes() as u64) {
                reads.push((f, m));
                if size.bytes() == 8 && lo % 8 == 0 {
                    writes.push((f, m));
                }
            }
        }
        Insn::Call(CallTarget::Helper(id)) => {
            let Some(p) = proto::proto(id as u32) else {
                return (reads, writes);
            };
            let mut map: Option<&MapInfo> = None;
            for (i, a) in p.args.iter().enumerate() {
                let r = i + 1;
                let size = match a.base {
                    ArgBase::ConstMapPtr => {
                        map = maps.get(st.reg(r).map as usize);
                        None
                    }
                    ArgBase::PtrToMapKey => map.map(|m| m.key_size as u64),
                    ArgBase::PtrToMapValue => map.map(|m| m.value_size as u64),
                    ArgBase::PtrToMem if a.flags.contains(TypeFlags::MEM_UNINIT) => None,
                    ArgBase::PtrToMem => match p.arg_aux[i] {
                        ArgAux::Size(n) => Some(n as u64),
                        _ => p
                            .args
                            .get(i + 1)
                            .filter(|n| {
                                matches!(n.base, ArgBase::ConstSize | ArgBase::ConstSizeOrZero)
                            })
                            .map(|_| st.reg(r + 1).umax),
                    },
                    _ => None,
                };
                if let Some((f, m, _)) = size.and_then(|s| span(r, 0, s)) {
                    if m != 0 {
                        reads.push((f, m));
                    }
                }
            }
        }
        _ => {}
    }
    (reads, writes)
}
