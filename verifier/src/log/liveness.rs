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

/// A multiplicative hasher for call chains (a few small integers): the default SipHash costs
/// more than the rest of an instance lookup, done for every instruction that touches memory.
#[derive(Default)]
struct ChainHasher(u64);

impl std::hash::Hasher for ChainHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// The function instances, with an index by call chain and the last chain looked up (most
/// lookups repeat the previous one).
#[derive(Default)]
struct Instances {
    all: Vec<Instance>,
    index: HashMap<Vec<usize>, usize, std::hash::BuildHasherDefault<ChainHasher>>,
    last: Option<(Chain, usize)>,
}

impl Instances {
    /// The instance of `chain`, if there is one.
    fn find(&self, chain: &[usize]) -> Option<&Instance> {
        if let Some((c, i)) = &self.last {
            if **c == *chain {
                return self.all.get(*i);
            }
        }
        self.index.get(chain).map(|&i| &self.all[i])
    }
}

/// Frames of a call chain (`MAX_CALL_FRAMES`).
const FRAMES: usize = 8;

/// A call chain without an allocation: call sites, then the subprogram's first instruction.
#[derive(Clone, Copy)]
struct Chain {
    at: [usize; FRAMES + 1],
    len: usize,
}

impl std::ops::Deref for Chain {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.at[..self.len]
    }
}

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
    instances: Instances,
    /// Subprogram starts, and each one's instructions in the kernel's postorder.
    starts: Vec<usize>,
    end: usize,
    postorder: Vec<Vec<usize>>,
    /// Successors of each instruction (`bpf_insn_successors`).
    succ: Vec<Succ>,
    /// The write marks of the instruction being processed: its instance, slot, per-frame
    /// masks; `None` once committed or when the instance changed under it.
    pending: Option<(Chain, usize, [u64; FRAMES])>,
}

/// Up to two successors of an instruction.
#[derive(Clone, Copy, Default)]
struct Succ {
    at: [usize; 2],
    len: u8,
}

impl std::ops::Deref for Succ {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.at[..self.len as usize]
    }
}

/// `bpf_insn_successors`.
fn successors(insns: &[Insn], at: &[Option<usize>], pc: usize) -> Succ {
    let mut s = Succ::default();
    let Some(insn) = at.get(pc).copied().flatten().map(|i| &insns[i]) else {
        return s;
    };
    let next = pc + insn.slots();
    let jump = insn
        .jump_offset()
        .and_then(|o| usize::try_from(next as i64 + o as i64).ok());
    let mut push = |x: usize| {
        s.at[s.len as usize] = x;
        s.len += 1;
    };
    match insn {
        Insn::Exit => {}
        Insn::Ja { .. } | Insn::Gotol { .. } => jump.into_iter().for_each(&mut push),
        Insn::Jmp { .. } => {
            push(next);
            jump.into_iter().for_each(&mut push);
        }
        _ => push(next),
    }
    s
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
                for &n in successors(insns, &at, top).iter() {
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
            instances: Instances::default(),
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
    fn chain(st: &State, frameno: usize) -> Chain {
        let mut c = Chain {
            at: [0; FRAMES + 1],
            len: 0,
        };
        for i in 0..frameno.min(FRAMES - 1) {
            c.at[i] = st.frames[i + 1].callsite;
        }
        c.len = frameno.min(FRAMES - 1);
        c.at[c.len] = st.frames[frameno].subprog;
        c.len += 1;
        c
    }

    fn instance(&mut self, chain: &[usize]) -> &mut Instance {
        Self::instance_in(&mut self.instances, &self.starts, self.end, chain)
    }

    /// [`StackLive::instance`] over the instance table alone (so that the other fields stay
    /// borrowable); looked up before inserting, so that a known chain costs no allocation.
    fn instance_in<'m>(
        instances: &'m mut Instances,
        starts: &[usize],
        end: usize,
        chain: &[usize],
    ) -> &'m mut Instance {
        if let Some((c, i)) = &instances.last {
            if **c == *chain {
                let i = *i;
                return &mut instances.all[i];
            }
        }
        let found = instances.index.get(chain).copied();
        let i = match found {
            Some(i) => i,
            None => {
                let start = *chain.last().unwrap_or(&0);
                let sp = starts.partition_point(|&s| s <= start).saturating_sub(1);
                let next = starts.get(sp + 1).copied().unwrap_or(end);
                let len = next.saturating_sub(start).max(1);
                instances.all.push(Instance {
                    chain: chain.to_vec(),
                    start,
                    len,
                    frames: vec![None; chain.len()],
                    must_write_set: vec![false; len],
                    updated: false,
                    must_write_dropped: false,
                });
                let i = instances.all.len() - 1;
                instances.index.insert(chain.to_vec(), i);
                i
            }
        };
        if chain.len() <= FRAMES + 1 {
            let mut c = Chain {
                at: [0; FRAMES + 1],
                len: chain.len(),
            };
            c.at[..chain.len()].copy_from_slice(chain);
            instances.last = Some((c, i));
        }
        &mut instances.all[i]
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

    /// Commit the last instruction's write marks (an instruction that cannot touch the stack
    /// records nothing of its own).
    pub fn flush(&mut self) {
        self.commit();
    }

    fn commit(&mut self) {
        if let Some((chain, insn, acc)) = self.pending.take() {
            let n = chain.len().min(FRAMES);
            self.commit_to(&chain, insn, &acc[..n]);
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
        for (frame, &mask) in reads.iter().enumerate() {
            if mask != 0 {
                Self::mark_read(inst, frame, pc, mask);
            }
        }
        let mut acc = [0u64; FRAMES];
        acc[..=cur.min(FRAMES - 1)].copy_from_slice(&writes[..=cur.min(FRAMES - 1)]);
        self.pending = Some((chain, pc, acc));
    }

    /// `bpf_stack_slot_alive` for every slot of every frame of `st` at `pc`: the slots that may
    /// still be read, live before `pc` in the innermost call chain's instance or, for an outer
    /// frame, live after the call it waits on (before it, for a call that runs a callback,
    /// which may run again).
    pub fn alive_masks(
        &self,
        st: &State,
        pc: usize,
        calls_callback: &dyn Fn(usize) -> bool,
    ) -> [u64; FRAMES] {
        let n = st.frames.len().min(FRAMES);
        let mut inst: [Option<&Instance>; FRAMES] = [None; FRAMES];
        for (i, x) in inst.iter_mut().enumerate().take(n) {
            *x = self.instances.find(&Self::chain(st, i));
        }
        let live = |i: usize, f: usize, at: usize| {
            inst[i]
                .and_then(|x| x.get(f, at))
                .map_or(0, |m| m.live_before)
        };
        let cur = n - 1;
        let mut out = [0u64; FRAMES];
        for (f, o) in out.iter_mut().enumerate().take(n) {
            let mut m = live(cur, f, pc);
            for i in f..cur {
                let callsite = st.frames[i + 1].callsite;
                let at = if calls_callback(callsite) {
                    callsite
                } else {
                    callsite + 1
                };
                m |= live(i, f, at);
            }
            *o = m;
        }
        out
    }

    /// A call of a global function at `pc` reads the memory its pointer arguments give it
    /// (`check_mem_reg`): `(register, size)` of each.
    pub fn global_call(&mut self, st: &State, pc: usize, args: &[(usize, u32)]) {
        self.commit();
        let cur = st.frames.len() - 1;
        let chain = Self::chain(st, cur);
        let mut reads = [0u64; FRAMES];
        for &(r, size) in args {
            let p = st.reg(r);
            if p.ty != RegType::Stack {
                continue;
            }
            let (lo, len) = if p.var_off.is_const() {
                (p.var_off.value as i64 + p.off as i64, size as i64)
            } else {
                let lo = p.smin.saturating_add(p.off as i64);
                let hi = p.smax.saturating_add(p.off as i64);
                (lo, hi.saturating_sub(lo).saturating_add(size as i64))
            };
            for b in 0..len.clamp(0, 512) {
                let at = lo + b;
                if (-512..0).contains(&at) {
                    if let Some(m) = reads.get_mut(p.frameno as usize) {
                        *m |= 1 << ((-at - 1) / 8);
                    }
                }
            }
        }
        let inst = self.instance(&chain);
        for (frame, &mask) in reads.iter().enumerate() {
            if mask != 0 {
                Self::mark_read(inst, frame, pc, mask);
            }
        }
        self.pending = Some((chain, pc, [0; FRAMES]));
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
        let StackLive {
            instances,
            starts,
            end,
            postorder,
            succ,
            ..
        } = self;
        let order: &[usize] = postorder.get(sp).map_or(&[], Vec::as_slice);
        let inst = Self::instance_in(instances, starts, *end, chain);
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
            let (start, len) = (inst.start, inst.len);
            for (frame, fm) in inst.frames.iter_mut().enumerate() {
                let Some(fm) = fm.as_mut() else {
                    continue;
                };
                let rel = |x: usize| x.checked_sub(start).filter(|&r| r < len);
                for &pc in order {
                    let succ: &[usize] = succ.get(pc).map_or(&[], |s| &s[..]);
                    let Some(i) = rel(pc) else {
                        continue;
                    };
                    if succ.is_empty() {
                        continue;
                    }
                    let mut after = 0u64;
                    let mut acc = u64::MAX;
                    for &s in succ {
                        // A successor outside the function (none in practice) has no marks.
                        let sm = rel(s).map_or(Masks::default(), |j| fm[j]);
                        after |= sm.live_before;
                        acc &= sm.must_write_acc;
                    }
                    let m = fm[i];
                    let acc = acc | m.must_write;
                    let before = (after & !m.must_write) | m.may_read;
                    changed |= before != m.live_before || acc != m.must_write_acc;
                    if let Some(log) = log.as_deref_mut() {
                        if m.may_read != 0 || m.must_write != 0 || pc == start || prune(pc) {
                            change_line(log, &name, "live", frame, pc, m.live_before, before);
                            change_line(log, &name, "written", frame, pc, m.must_write_acc, acc);
                        }
                    }
                    fm[i].live_before = before;
                    fm[i].must_write_acc = acc;
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

/// Stack slots (bit i: fp-8*(i+1)) of each frame.
type FrameMasks = [u64; FRAMES];

/// The stack slots `insn` reads, and those it writes whole, per frame, `st` being the state
/// before it (the kernel's `bpf_mark_stack_read`/`bpf_mark_stack_write` calls).
fn accesses(st: &State, insn: &Insn, maps: &[MapInfo]) -> (FrameMasks, FrameMasks) {
    let mut reads = [0u64; FRAMES];
    let mut writes = [0u64; FRAMES];
    let add = |to: &mut FrameMasks, f: usize, m: u64| {
        if let Some(x) = to.get_mut(f) {
            *x |= m;
        }
    };
    // Slots `[off, off+size)` from stack pointer register `r` cover, with its frame.
    // A variable offset covers every byte it may reach; the kernel cannot tell which slots it
    // writes, so it records reads only (`lo` is then 1: no whole-slot write).
    let span = |r: usize, off: i64, size: u64| -> Option<(usize, u64, i64)> {
        let p = st.reg(r);
        if p.ty != RegType::Stack {
            return None;
        }
        let (lo, len) = if p.var_off.is_const() {
            let lo = (p.var_off.value as i64)
                .wrapping_add(p.off as i64)
                .wrapping_add(off);
            (lo, size as i64)
        } else {
            let lo = p.smin.saturating_add(p.off as i64).saturating_add(off);
            let hi = p.smax.saturating_add(p.off as i64).saturating_add(off);
            (lo, hi.saturating_sub(lo).saturating_add(size as i64))
        };
        let mut mask = 0u64;
        for b in 0..len.clamp(0, 512) {
            let at = lo + b;
            if (-512..0).contains(&at) {
                mask |= 1 << ((-at - 1) / 8);
            }
        }
        let lo = if p.var_off.is_const() { lo } else { 1 };
        Some((p.frameno as usize, mask, lo))
    };
    match *insn {
        Insn::Load { src, off, size, .. } => {
            if let Some((f, m, _)) = span(src.index(), off as i64, size.bytes() as u64) {
                add(&mut reads, f, m);
            }
        }
        Insn::Store { dst, off, size, .. } => {
            if let Some((f, m, lo)) = span(dst.index(), off as i64, size.bytes() as u64) {
                if size.bytes() == 8 && lo % 8 == 0 {
                    add(&mut writes, f, m);
                }
            }
        }
        Insn::Atomic { dst, off, size, .. } => {
            if let Some((f, m, lo)) = span(dst.index(), off as i64, size.bytes() as u64) {
                add(&mut reads, f, m);
                if size.bytes() == 8 && lo % 8 == 0 {
                    add(&mut writes, f, m);
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
                    // Memory the helper only fills is not read, unless at a variable offset
                    // (`check_stack_range_initialized` drops raw mode there).
                    ArgBase::PtrToMem
                        if a.flags.contains(TypeFlags::MEM_UNINIT)
                            && st.reg(r).var_off.is_const() =>
                    {
                        None
                    }
                    ArgBase::PtrToMem if a.flags.contains(TypeFlags::MEM_UNINIT) => {
                        p.args.get(i + 1).map(|_| st.reg(r + 1).umax)
                    }
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
                    add(&mut reads, f, m);
                }
            }
        }
        _ => {}
    }
    (reads, writes)
}
