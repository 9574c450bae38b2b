//! The JIT's own proof of packet accesses, from the program's own bounds checks, in the way the
//! kernel's verifier tracks packet pointers (`find_good_pkt_pointers`) but with none of its
//! verdicts: an access `[p + off]` is proven when `p` is a kept context field (`data`) plus
//! what the code added to it since (a constant, or a small scalar such as `ihl * 4`), and a
//! compare of `p`, or of a register that differs from it by a known constant, against another
//! kept field (`if (p + 34 > data_end) goto drop`) says that the access ends before that
//! field's value on every path to it.
//!
//! Such an access needs no clamp and no check, because the run checks the fields themselves:
//! whenever it reads the kept fields (`VmCtx::read_ctx`), and again if the packet's region
//! changes, every field a proof starts from must point into the primary region, and every field
//! a proof bounds an access by must end inside the region's readable (for a store, writable)
//! bytes; a field that does not is not kept, and its load hands the run to the interpreter. A
//! proven access then reads or writes the region's base plus the low 32 bits of its address,
//! inside the region whatever the verifier said (the region's row does not change during a
//! run: a map only appends rows, and borrows their buffers for the run).
//!
//! Independent of the verifier's hints ([`crate::Hints::packet`] clamps instead): the context
//! loads it starts from are hinted ones, whose values are the kept ones the run checks. Kept
//! values change only at a call or a store that may reach the context: a value loaded after one
//! is not assumed equal to one loaded before it (an "epoch"), and the spills this tracks
//! (`*(u64 *)(r10 - 8) = r1`) are forgotten there too.

use bpfsim_vm::isa::{AluOp, CallTarget, Cond, Insn, Reg, Size, Source, Width};

/// A kept field the proofs use as a pointer into the packet: it must point into the primary
/// region (`VmCtx::read_ctx`).
pub(crate) const BASE: u8 = 1;
/// A kept field a proof bounds a load by: it must end inside the region's readable bytes.
pub(crate) const END_READ: u8 = 2;
/// A kept field a proof bounds a store by: it must end inside the region's writable bytes.
pub(crate) const END_WRITE: u8 = 4;

/// An access is proven.
pub(crate) const PROVEN: u8 = 1;
/// A proven access through a register at least its base field's value and with an offset of
/// at least 0: the low 32 bits of the register are its offset in the region with no wrap, and
/// the instruction's offset may be added in the host access's own addressing.
pub(crate) const FOLD: u8 = 2;

/// Constants beyond this make a pointer unknown: no packet is near that size, and sums stay
/// far from wrapping.
const MAX_OFF: i64 = 1 << 20;
/// The most instructions one entry of the code runs where a proof rests on a count
/// ([`Val::Count`]): a run with a greater budget is interpreted (`JitProgram::call_entry`).
pub(crate) const BUDGET_MAX: u64 = 1 << 32;
/// The most a count can be: 32 bits, then [`BUDGET_MAX`] additions of at most [`STEP_MAX`].
const COUNT_MAX: u64 = (1 << 32) + STEP_MAX * BUDGET_MAX;
/// The most one instruction adds to a count.
const STEP_MAX: u64 = 1 << 16;
// A guest address (below 2^40: a region's index, then 32 bits) plus a count stays far from
// wrapping.
const _: () = assert!(COUNT_MAX < 1 << 50);
/// The most spill slots a state tracks.
const MAX_SPILLS: usize = 16;
/// No room.
const NONE: u8 = u8::MAX;
/// The back edges merged into a leader before what they weaken is dropped.
const WIDEN_AFTER: u8 = 4;

/// Identities of pointer values: registers with the same id differ by the difference of their
/// `d`. The kind is in the top bits.
type Id = u64;
/// A kept field's value as loaded in an epoch: `ANCHOR | epoch << 8 | slot`.
const ANCHOR: u64 = 0;
/// The sum a pointer-plus-scalar instruction made at its slot: `VAR | slot`.
const VAR: u64 = 1 << 60;
/// The value a register or spill slot held on entry to a leader, when the paths into it
/// disagree: `JOIN | leader << 20 | holder` (a register's index, or 16 plus a spill's slot).
const JOIN: u64 = 2 << 60;
const KIND: u64 = 3 << 60;

/// Epochs: a kill at slot `p` starts `KILLED + p`, a join of different epochs at leader `l`
/// starts `JOINED + l`; a run starts in 0.
const KILLED: u64 = 1 << 40;
const JOINED: u64 = 2 << 40;

fn anchor(epoch: u64, slot: u8) -> Id {
    ANCHOR | epoch << 8 | slot as u64
}

fn join_id(leader: usize, holder: usize) -> Id {
    JOIN | (leader as u64) << 20 | holder as u64
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Ptr {
    id: Id,
    d: i64,
    /// The kept field whose value this is at least, plus `lo`.
    base: u8,
    lo: i64,
    /// `(field, n)`: this plus `n` is at most the field's value ([`NONE`]: no room).
    rooms: [(u8, i64); 3],
}

impl Ptr {
    fn shifted(mut self, k: i64) -> Option<Ptr> {
        self.d += k;
        self.lo += k;
        for r in self.rooms.iter_mut().filter(|r| r.0 != NONE) {
            r.1 -= k;
        }
        (self.d.abs() <= MAX_OFF && self.lo.abs() <= MAX_OFF).then_some(self)
    }

    fn room(&self, field: u8) -> Option<i64> {
        self.rooms.iter().find(|r| r.0 == field).map(|r| r.1)
    }

    fn add_room(&mut self, field: u8, n: i64) {
        if n.abs() > MAX_OFF {
            return;
        }
        if let Some(r) = self.rooms.iter_mut().find(|r| r.0 == field) {
            r.1 = r.1.max(n);
        } else if let Some(r) = self.rooms.iter_mut().find(|r| r.0 == NONE) {
            *r = (field, n);
        }
    }

    /// What both say of one value, or `None` when their bases differ. `old`: the leader's state
    /// before, whose facts may only shrink (what a loop weakens at each trip is dropped at once,
    /// so that the analysis ends).
    fn meet(&self, other: &Ptr, old: Option<&Ptr>) -> Option<Ptr> {
        if self.base != other.base {
            return None;
        }
        let lo = self.lo.min(other.lo);
        if old.is_some_and(|o| lo < o.lo) {
            return None;
        }
        let mut rooms = [(NONE, 0); 3];
        let mut k = 0;
        for &(f, n) in &self.rooms {
            if f == NONE {
                continue;
            }
            let Some(m) = other.room(f) else { continue };
            let n = n.min(m);
            if old.is_some_and(|o| o.room(f).is_some_and(|x| n < x)) {
                continue;
            }
            rooms[k] = (f, n);
            k += 1;
        }
        Some(Ptr {
            id: self.id,
            d: self.d,
            base: self.base,
            lo,
            rooms,
        })
    }
}

/// What a register (or spill slot) holds, as far as the proofs care.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Val {
    Unknown,
    /// An integer from `.0` to `.1`.
    Scalar(u64, u64),
    /// An integer of at least `.0` that is at most 2^32 plus [`STEP_MAX`] for each instruction
    /// the run has made (a loop's index: set below 2^32, then stepped by small constants), so
    /// at most [`COUNT_MAX`] in a run of at most [`BUDGET_MAX`] instructions. A range that
    /// keeps growing around a loop widens to this rather than to unknown when each of its
    /// values is such an integer: the instructions that keep it one are those of
    /// [`Val::count`] and a [`scalar64`] that does not increase.
    Count(u64),
    Ptr(Ptr),
}

impl Val {
    fn ptr(&self) -> Option<&Ptr> {
        match self {
            Val::Ptr(p) => Some(p),
            _ => None,
        }
    }

    fn range(&self) -> Option<(u64, u64)> {
        match *self {
            Val::Scalar(a, b) => Some((a, b)),
            _ => None,
        }
    }

    /// The least value of a count this is, when it is one: a range below 2^32 is.
    fn count(&self) -> Option<u64> {
        match *self {
            Val::Scalar(a, b) if b <= 1 << 32 => Some(a),
            Val::Count(a) => Some(a),
            _ => None,
        }
    }

    /// `counted` is set when the meet is a count made of ranges (see [`Val::Count`]).
    fn meet(&self, other: &Val, old: Option<&Val>, fresh: Id, counted: &mut bool) -> Val {
        match (self, other) {
            (Val::Scalar(a, b), Val::Scalar(c, d)) => {
                let (lo, hi) = ((*a).min(*c), (*b).max(*d));
                match old {
                    Some(Val::Scalar(x, y)) if lo < *x || hi > *y => {
                        // Growing around a loop: a count if every value is one (then from 0,
                        // so that it cannot keep shrinking either).
                        if self.count().is_some() && other.count().is_some() {
                            *counted = true;
                            Val::Count(0)
                        } else {
                            Val::Unknown
                        }
                    }
                    _ => Val::Scalar(lo, hi),
                }
            }
            (Val::Count(_), _) | (_, Val::Count(_)) => match (self.count(), other.count()) {
                (Some(a), Some(b)) => {
                    let lo = a.min(b);
                    match old {
                        Some(Val::Count(x)) if lo < *x => Val::Count(0),
                        _ => Val::Count(lo),
                    }
                }
                _ => Val::Unknown,
            },
            (Val::Ptr(p), Val::Ptr(q)) => {
                let old = old.and_then(Val::ptr);
                let same = p.id == q.id && p.d == q.d;
                match p.meet(q, old) {
                    Some(mut m) => {
                        if !same || old.is_some_and(|o| o.id != m.id || o.d != m.d) {
                            m.id = fresh;
                            m.d = 0;
                        }
                        Val::Ptr(m)
                    }
                    None => Val::Unknown,
                }
            }
            _ => Val::Unknown,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct State {
    regs: [Val; 11],
    /// Spills of 8 bytes at `r10 + off`, by offset.
    spills: Vec<(i16, Val)>,
    epoch: u64,
}

impl State {
    fn entry() -> State {
        State {
            regs: [Val::Unknown; 11],
            spills: Vec::new(),
            epoch: 0,
        }
    }

    /// Every holder of a value, registers then spills.
    fn vals_mut(&mut self) -> impl Iterator<Item = &mut Val> {
        self.regs
            .iter_mut()
            .chain(self.spills.iter_mut().map(|(_, v)| v))
    }

    /// Forget every value `gone` says has another meaning from now on.
    fn forget(&mut self, gone: impl Fn(Id) -> bool) {
        for v in self.vals_mut() {
            if v.ptr().is_some_and(|p| gone(p.id)) {
                *v = Val::Unknown;
            }
        }
    }

    /// The kept fields may have changed (a call, a store that may reach the context): a new
    /// epoch, which a kill at this slot starts anew each time it runs.
    fn kill(&mut self, pc: usize) {
        let epoch = KILLED + pc as u64;
        self.epoch = epoch;
        self.forget(|id| id & KIND == ANCHOR && id >> 8 == epoch);
    }

    fn call(&mut self, pc: usize) {
        self.kill(pc);
        for r in &mut self.regs[..6] {
            *r = Val::Unknown;
        }
        // A helper or a callee may write the stack through a pointer it was given.
        self.spills.clear();
    }

    /// `x + s <= y` of the values of two registers (`s` 1 for `<`): where `y` has room `m`
    /// below a field (`y + m <= field`; a field as loaded has room 0 below itself), every
    /// holder of `x`'s id learns its room below that field.
    fn learn(&mut self, x: Val, y: Val, s: i64) {
        let (Val::Ptr(x), Val::Ptr(y)) = (x, y) else {
            return;
        };
        for (field, m) in y.rooms {
            if field == NONE {
                continue;
            }
            for v in self.vals_mut() {
                if let Val::Ptr(z) = v {
                    if z.id == x.id {
                        z.add_room(field, x.d - z.d + s + m);
                    }
                }
            }
        }
    }

    /// A branch's two sides: what `x cond y` says when taken, and when not.
    fn branch(&self, width: Width, cond: Cond, dst: Reg, src: Source) -> (State, State) {
        let (mut t, mut f) = (self.clone(), self.clone());
        if width != Width::W64 {
            return (t, f);
        }
        let x = self.regs[dst.index()];
        match src {
            Source::Reg(r) => {
                let y = self.regs[r.index()];
                // Each side learns what its outcome says, as `a + s <= b`.
                let (tl, fl) = match cond {
                    Cond::Gt => ((y, x, 1), (x, y, 0)),
                    Cond::Ge => ((y, x, 0), (x, y, 1)),
                    Cond::Lt => ((x, y, 1), (y, x, 0)),
                    Cond::Le => ((x, y, 0), (y, x, 1)),
                    _ => return (t, f),
                };
                t.learn(tl.0, tl.1, tl.2);
                f.learn(fl.0, fl.1, fl.2);
            }
            Source::Imm(i) => {
                let Some((a, b)) = x.range() else {
                    return (t, f);
                };
                let k = i as i64 as u64;
                // The range each side leaves, for the unsigned compares.
                let (tr, fr) = match cond {
                    Cond::Gt => ((a.max(k.saturating_add(1)), b), (a, b.min(k))),
                    Cond::Ge => ((a.max(k), b), (a, b.min(k.saturating_sub(1)))),
                    Cond::Lt => ((a, b.min(k.saturating_sub(1))), (a.max(k), b)),
                    Cond::Le => ((a, b.min(k)), (a.max(k.saturating_add(1)), b)),
                    Cond::Eq => ((a.max(k), b.min(k)), (a, b)),
                    Cond::Ne => ((a, b), (a.max(k), b.min(k))),
                    _ => return (t, f),
                };
                let d = dst.index();
                // An empty range is a side no run takes: anything holds there.
                t.regs[d] = Val::Scalar(tr.0, tr.1.max(tr.0));
                f.regs[d] = Val::Scalar(fr.0, fr.1.max(fr.0));
            }
        }
        (t, f)
    }

    /// This state, on entry to `leader` from a predecessor: the values named after an entry to
    /// `leader`, or loaded in the epoch a join there starts, name an earlier entry's, so each
    /// holder of one becomes a value of its own.
    fn entering(&self, leader: usize) -> State {
        let mut s = self.clone();
        let epoch = JOINED + leader as u64;
        let stale = |id: Id| {
            (id & KIND == JOIN && (id & !KIND) >> 20 == leader as u64)
                || (id & KIND == ANCHOR && id >> 8 == epoch)
        };
        let holders = (0..11).chain(s.spills.iter().map(|(o, _)| spill_holder(*o)));
        let holders: Vec<usize> = holders.collect();
        for (v, h) in s.vals_mut().zip(holders) {
            if let Val::Ptr(p) = v {
                if stale(p.id) {
                    p.id = join_id(leader, h);
                    p.d = 0;
                }
            }
        }
        s
    }

    /// Meet `other` (already [`Self::entering`] `leader`) into this state, the leader's; true
    /// when this state changed. `widen` (a loop's back edge, after [`WIDEN_AFTER`] of them):
    /// what the state knows may only shrink, so that a loop that weakens a fact at each trip
    /// drops it and the analysis ends.
    /// `counted` is set when a value becomes a count ([`Val::Count`]).
    fn join(&mut self, other: &State, leader: usize, widen: bool, counted: &mut bool) -> bool {
        let old = self.clone();
        let was = |v: &Val| widen.then_some(*v);
        let epoch = if self.epoch == other.epoch {
            self.epoch
        } else {
            JOINED + leader as u64
        };
        for r in 0..11 {
            self.regs[r] = old.regs[r].meet(
                &other.regs[r],
                was(&old.regs[r]).as_ref(),
                join_id(leader, r),
                counted,
            );
        }
        let mut spills = Vec::new();
        for (o, v) in &old.spills {
            if let Some((_, w)) = other.spills.iter().find(|(p, _)| p == o) {
                let m = v.meet(
                    w,
                    was(v).as_ref(),
                    join_id(leader, spill_holder(*o)),
                    counted,
                );
                if m != Val::Unknown {
                    spills.push((*o, m));
                }
            }
        }
        self.spills = spills;
        self.epoch = epoch;
        *self != old
    }

    /// What a local call to the subprogram at `entry` passes: `r1`-`r5`, each a value of its
    /// own at the callee's entry (named after it, so that nothing the callee loads is taken
    /// for one of them), in an epoch of the callee's own; nothing of the caller's frame.
    fn for_callee(&self, entry: usize) -> State {
        let mut s = State {
            regs: [Val::Unknown; 11],
            spills: Vec::new(),
            epoch: JOINED + entry as u64,
        };
        for r in 1..6 {
            s.regs[r] = match self.regs[r] {
                Val::Ptr(mut p) => {
                    p.id = join_id(entry, r);
                    p.d = 0;
                    Val::Ptr(p)
                }
                v => v,
            };
        }
        s
    }

    fn spill(&mut self, off: i16, v: Val) {
        self.unspill(off, 8);
        if v != Val::Unknown && self.spills.len() < MAX_SPILLS {
            self.spills.push((off, v));
        }
    }

    /// Forget the spills a store of `size` bytes at `r10 + off` overlaps.
    fn unspill(&mut self, off: i16, size: u64) {
        let (lo, hi) = (off as i64, off as i64 + size as i64);
        self.spills
            .retain(|&(o, _)| o as i64 + 8 <= lo || hi <= o as i64);
    }
}

/// A spill slot's number among a join's holders ([`join_id`]): past the registers' 0-10, below
/// the leader's bits for any 16-bit offset.
fn spill_holder(off: i16) -> usize {
    16 + (off as i64 + 32768) as usize
}

/// What the proofs found: for each slot, whether its access is proven ([`PROVEN`], [`FOLD`]);
/// for each kept load slot, what the run must check of its field ([`BASE`], [`END_READ`],
/// [`END_WRITE`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Proofs {
    pub proven: Vec<u8>,
    pub flags: Vec<u8>,
    /// Some proof may rest on a count's bound ([`Val::Count`]), which holds for runs of at
    /// most [`BUDGET_MAX`] instructions: a run with a greater budget is interpreted.
    pub counted: bool,
}

/// What the analysis needs of the hints, by slot.
pub(crate) struct Inputs<'a> {
    /// The kept-field slot a load at a slot reads (`None`: not a kept field load).
    pub field: &'a dyn Fn(usize, Size, i16, bool) -> Option<usize>,
    /// A store at the slot cannot reach the context (a proven packet, stack or map value
    /// access): it leaves the kept fields as they are.
    pub harmless_store: &'a dyn Fn(usize) -> bool,
    pub fields: usize,
}

/// Prove what the program's own bounds checks prove (see the module's docs).
pub(crate) fn prove(insns: &[Insn], pcs: &[usize], subprogs: &[usize], inp: &Inputs) -> Proofs {
    let slots = pcs.last().map_or(0, |&p| p + 2);
    let none = Proofs {
        proven: vec![0; slots],
        flags: vec![0; inp.fields],
        counted: false,
    };
    if inp.fields == 0 || inp.fields >= NONE as usize {
        return none;
    }
    let mut out = none.clone();
    let mut index = vec![usize::MAX; slots + 1];
    for (i, &pc) in pcs.iter().enumerate() {
        index[pc] = i;
    }
    // `r10` written anywhere (the interpreter allows it): no spill is where it seems.
    let spills = !insns.iter().any(super::writes_r10);
    let mut leader = vec![false; slots + 1];
    for &s in subprogs {
        leader[s.min(slots)] = true;
    }
    for (i, insn) in insns.iter().enumerate() {
        let next = pcs[i] + insn.slots();
        if let Some(off) = insn.jump_offset() {
            let t = next as i64 + off as i64;
            if t < 0 || t as usize >= slots || index[t as usize] == usize::MAX {
                return none;
            }
            leader[t as usize] = true;
            leader[next] = true;
        }
        if matches!(insn, Insn::Exit) {
            leader[next] = true;
        }
    }
    let mut state: Vec<Option<Box<State>>> = vec![None; slots];
    let mut work = std::collections::BTreeSet::new();
    // A subprogram only local calls enter starts with what its callers pass in `r1`-`r5`; any
    // other (the main program, a callback a helper calls) with nothing known.
    let mut called = vec![false; slots + 1];
    let mut other = vec![false; slots + 1];
    other[0] = true;
    for (i, insn) in insns.iter().enumerate() {
        let next = (pcs[i] + insn.slots()) as i64;
        match *insn {
            Insn::Call(CallTarget::Local(off)) => {
                if let Ok(t) = usize::try_from(next + off as i64) {
                    called[t.min(slots)] = true;
                }
            }
            // The callee `off + 1` slots after the instruction's first.
            Insn::LdImm64 {
                imm: bpfsim_vm::isa::Imm64::Func(off),
                ..
            } => {
                if let Ok(t) = usize::try_from(pcs[i] as i64 + 1 + off as i64) {
                    other[t.min(slots)] = true;
                }
            }
            _ => {}
        }
    }
    for &s in subprogs {
        if s < slots && index[s] != usize::MAX && (other[s] || !called[s]) {
            state[s] = Some(Box::new(State::entry()));
            work.insert(s);
        }
    }
    // Back edges merged into each leader: the first few may weaken what it knows as the
    // paths around a loop meet; after them, what would weaken is dropped (see `State::join`).
    let mut trips = vec![0u8; slots];
    let mut counted = false;
    let mut merge = |state: &mut Vec<Option<Box<State>>>,
                     work: &mut std::collections::BTreeSet<usize>,
                     from: usize,
                     to: usize,
                     s: &State| {
        let s = s.entering(to);
        let widen = to <= from && {
            trips[to] = trips[to].saturating_add(1);
            trips[to] > WIDEN_AFTER
        };
        match &mut state[to] {
            Some(old) => {
                if old.join(&s, to, widen, &mut counted) {
                    work.insert(to);
                }
            }
            slot @ None => {
                *slot = Some(Box::new(s));
                work.insert(to);
            }
        }
    };
    // Each leader's state only loses what it knows: a bounded number of visits.
    let mut budget = 64 * insns.len() + 64;
    while let Some(start) = work.pop_first() {
        if budget == 0 {
            return none;
        }
        budget -= 1;
        let mut s = (**state[start].as_ref().expect("queued with a state")).clone();
        let mut i = index[start];
        loop {
            let pc = pcs[i];
            let insn = &insns[i];
            let next = pc + insn.slots();
            match *insn {
                Insn::Exit => break,
                Insn::Ja { .. } | Insn::Gotol { .. } => {
                    let t = (next as i64 + insn.jump_offset().unwrap_or(0) as i64) as usize;
                    merge(&mut state, &mut work, pc, t, &s);
                    break;
                }
                Insn::Jmp {
                    width,
                    cond,
                    dst,
                    src,
                    off,
                } => {
                    let t = (next as i64 + off as i64) as usize;
                    let (taken, fall) = s.branch(width, cond, dst, src);
                    merge(&mut state, &mut work, pc, t, &taken);
                    merge(&mut state, &mut work, pc, next, &fall);
                    break;
                }
                Insn::Call(CallTarget::Local(off)) => {
                    let t = (next as i64 + off as i64) as usize;
                    if subprogs.binary_search(&t).is_ok() && index.get(t) != Some(&usize::MAX) {
                        merge(&mut state, &mut work, pc, t, &s.for_callee(t));
                    }
                    step(&mut s, pc, insn, inp, spills, None);
                }
                _ => step(&mut s, pc, insn, inp, spills, None),
            }
            if leader[next] {
                merge(&mut state, &mut work, pc, next, &s);
                break;
            }
            i += 1;
        }
    }
    // The states are final: mark each block's proven accesses.
    for (start, st) in state.iter().enumerate() {
        let Some(st) = st else { continue };
        let mut s = (**st).clone();
        let mut i = index[start];
        loop {
            let pc = pcs[i];
            let insn = &insns[i];
            if matches!(
                insn,
                Insn::Exit | Insn::Ja { .. } | Insn::Gotol { .. } | Insn::Jmp { .. }
            ) {
                break;
            }
            step(&mut s, pc, insn, inp, spills, Some(&mut out));
            let next = pc + insn.slots();
            if leader[next] {
                break;
            }
            i += 1;
        }
    }
    out.counted = counted && out.proven.iter().any(|&p| p != 0);
    out
}

/// Whether the state proves `size` bytes at `[reg + off]`: (base field, bounding field, fold).
fn proves(s: &State, reg: Reg, off: i16, size: Size) -> Option<(u8, u8, bool)> {
    let p = s.regs[reg.index()].ptr()?;
    let off = off as i64;
    if p.lo + off < 0 {
        return None;
    }
    let end = off + size.bytes() as i64;
    let &(b, _) = p.rooms.iter().find(|r| r.0 != NONE && end <= r.1)?;
    Some((p.base, b, p.lo >= 0 && off >= 0))
}

/// The effect of a non-jump instruction on `s`; with `out`, record its access when proven.
fn step(
    s: &mut State,
    pc: usize,
    insn: &Insn,
    inp: &Inputs,
    spills: bool,
    out: Option<&mut Proofs>,
) {
    let prove = |s: &State, reg: Reg, off: i16, size: Size, write: bool| {
        let found = proves(s, reg, off, size);
        if let (Some((a, b, fold)), Some(out)) = (found, out) {
            out.proven[pc] = if fold { PROVEN | FOLD } else { PROVEN };
            out.flags[a as usize] |= BASE;
            out.flags[b as usize] |= if write { END_WRITE } else { END_READ };
        }
        found.is_some()
    };
    let bits = |size: Size| match size {
        Size::DW => u64::MAX,
        s => (1u64 << (8 * s.bytes())) - 1,
    };
    match *insn {
        Insn::Load {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            prove(s, src, off, size, false);
            let v = if let Some(f) = (inp.field)(pc, size, off, signed) {
                let id = anchor(s.epoch, f as u8);
                // Another load of the field in this epoch read the same value: its rooms hold.
                let known = s
                    .regs
                    .iter()
                    .chain(s.spills.iter().map(|(_, v)| v))
                    .filter_map(Val::ptr)
                    .find(|p| p.id == id)
                    .copied();
                // The field's value, room 0 below itself.
                let fresh = Ptr {
                    id,
                    d: 0,
                    base: f as u8,
                    lo: 0,
                    rooms: [(f as u8, 0), (NONE, 0), (NONE, 0)],
                };
                // The rooms of the holder, as of the value itself (its own base and bound 0).
                let p = known.and_then(|p| p.shifted(-p.d)).map_or(fresh, |p| Ptr {
                    lo: 0,
                    base: f as u8,
                    ..p
                });
                Val::Ptr(p)
            } else if spills && src == Reg::FP && size == Size::DW {
                s.spills
                    .iter()
                    .find(|(o, _)| *o == off)
                    .map_or(Val::Unknown, |(_, v)| *v)
            } else if signed {
                Val::Unknown
            } else {
                Val::Scalar(0, bits(size))
            };
            s.regs[dst.index()] = v;
        }
        Insn::Store {
            size,
            dst,
            off,
            src,
        } => {
            if spills && dst == Reg::FP {
                match (size, src) {
                    (Size::DW, Source::Reg(r)) => s.spill(off, s.regs[r.index()]),
                    _ => s.unspill(off, size.bytes() as u64),
                }
            } else if !prove(s, dst, off, size, true) {
                if !(inp.harmless_store)(pc) {
                    s.kill(pc);
                }
                // A pointer may reach the spills.
                s.spills.clear();
            }
        }
        Insn::Alu {
            width: Width::W64,
            op,
            dst,
            src,
        } => {
            let d = dst.index();
            let x = s.regs[d];
            let y = match src {
                Source::Reg(r) => s.regs[r.index()],
                Source::Imm(k) => Val::Scalar(k as i64 as u64, k as i64 as u64),
            };
            s.regs[d] = match (op, x, y) {
                (AluOp::Mov, _, y) => y,
                (AluOp::Add, Val::Ptr(p), Val::Scalar(a, b)) if a == b => {
                    p.shifted(a as i64).map_or(Val::Unknown, Val::Ptr)
                }
                (AluOp::Sub, Val::Ptr(p), Val::Scalar(a, b)) if a == b => p
                    .shifted((a as i64).wrapping_neg())
                    .map_or(Val::Unknown, Val::Ptr),
                (AluOp::Add, Val::Ptr(p), Val::Scalar(a, b))
                | (AluOp::Add, Val::Scalar(a, b), Val::Ptr(p))
                    if b <= MAX_OFF as u64 =>
                {
                    // A new value: the holders of this slot's sum from an earlier run of it
                    // hold another.
                    let id = VAR | pc as u64;
                    s.forget(|i| i == id);
                    let mut q = Ptr {
                        id,
                        d: 0,
                        base: p.base,
                        lo: p.lo + a as i64,
                        rooms: [(NONE, 0); 3],
                    };
                    for &(f, n) in &p.rooms {
                        if f != NONE {
                            q.add_room(f, n - b as i64);
                        }
                    }
                    Val::Ptr(q)
                }
                (op, Val::Scalar(a, b), Val::Scalar(c, e)) => scalar64(op, (a, b), (c, e)),
                (AluOp::Add, Val::Ptr(p), Val::Count(a))
                | (AluOp::Add, Val::Count(a), Val::Ptr(p))
                    if a <= MAX_OFF as u64 =>
                {
                    // As a small scalar's sum, with no room (the count may be large): the
                    // program's compare of the sum gives it one. The pointer plus at most
                    // `COUNT_MAX` stays far from wrapping.
                    let id = VAR | pc as u64;
                    s.forget(|i| i == id);
                    Val::Ptr(Ptr {
                        id,
                        d: 0,
                        base: p.base,
                        lo: p.lo + a as i64,
                        rooms: [(NONE, 0); 3],
                    })
                }
                (op, x, y) => count64(op, x, y),
            };
        }
        Insn::Alu {
            width: Width::W32,
            op,
            dst,
            src,
        } => {
            let d = dst.index();
            s.regs[d] = match (op, src) {
                (AluOp::Mov, Source::Imm(k)) => Val::Scalar(k as u32 as u64, k as u32 as u64),
                (AluOp::And, Source::Imm(k)) => Val::Scalar(0, k as u32 as u64),
                _ => Val::Scalar(0, u32::MAX as u64),
            };
        }
        Insn::Endian { dst, bits, order } => {
            s.regs[dst.index()] = match (order, bits) {
                (_, b) if b < 64 => Val::Scalar(0, (1u64 << b) - 1),
                _ => Val::Unknown,
            };
        }
        Insn::Neg { dst, .. } | Insn::MovSx { dst, .. } | Insn::LdImm64 { dst, .. } => {
            s.regs[dst.index()] = Val::Unknown
        }
        Insn::Atomic { src, dst, off, .. } => {
            s.kill(pc);
            if dst == Reg::FP {
                s.unspill(off, 8);
            } else {
                s.spills.clear();
            }
            s.regs[src.index()] = Val::Unknown;
            s.regs[0] = Val::Unknown;
        }
        Insn::Call(CallTarget::Helper(_) | CallTarget::Local(_) | CallTarget::Kfunc { .. })
        | Insn::Callx { .. }
        | Insn::LoadPacket { .. } => s.call(pc),
        Insn::Exit | Insn::Ja { .. } | Insn::Gotol { .. } | Insn::Jmp { .. } => {}
    }
}

/// A 64-bit operation on a count ([`Val::Count`]) that leaves one: a step of at most
/// [`STEP_MAX`], or an operation that does not increase it; an `and` with a range is that range.
fn count64(op: AluOp, x: Val, y: Val) -> Val {
    let (x, y) = match (x, y) {
        (Val::Scalar(..), Val::Count(_)) if matches!(op, AluOp::Add | AluOp::And) => (y, x),
        _ => (x, y),
    };
    let Val::Count(lo) = x else {
        return Val::Unknown;
    };
    match (op, y) {
        (AluOp::Add, Val::Scalar(a, b)) if b <= STEP_MAX => Val::Count(lo.saturating_add(a)),
        (AluOp::And, Val::Scalar(_, b)) => Val::Scalar(0, b),
        (AluOp::And, y) if y.count().is_some() => Val::Count(0),
        (AluOp::Rsh, Val::Scalar(_, b)) if b < 64 => Val::Count(lo >> b),
        _ => Val::Unknown,
    }
}

/// A 64-bit operation of two ranges, where it stays a small range.
fn scalar64(op: AluOp, (a, b): (u64, u64), (c, d): (u64, u64)) -> Val {
    let r = |lo: Option<u64>, hi: Option<u64>| match (lo, hi) {
        (Some(lo), Some(hi)) if lo <= hi => Val::Scalar(lo, hi),
        _ => Val::Unknown,
    };
    match op {
        AluOp::Add => r(a.checked_add(c), b.checked_add(d)),
        AluOp::And => Val::Scalar(0, b.min(d)),
        AluOp::Lsh if d < 64 => r(
            Some(a << c),
            (b.leading_zeros() as u64 >= d).then(|| b << d),
        ),
        AluOp::Rsh if d < 64 => Val::Scalar(a >> d, b >> c),
        _ => Val::Unknown,
    }
}
