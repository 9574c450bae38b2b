//! `do_check`: walk every path of the program over abstract states, depth first (the fall-through
//! of a branch first, the taken side pushed), pruning at checkpoints where an explored state
//! covers the current one (`is_state_visited`).

use std::collections::HashMap;

use bpfsim_vm::isa::Insn;

use crate::domain::reg::{Reg, RegType};
use crate::domain::state::{states_equal, Frame, Prec, State};
use crate::precise::Hist;
use crate::Options;

/// [`Verifier::access`]: an access through the context pointer.
pub const ACCESS_CTX: u8 = 1;
/// [`Verifier::access`]: an access through any other pointer but a packet, map value or stack
/// pointer.
pub const ACCESS_OTHER: u8 = 2;
/// [`Verifier::access`]: an access through a packet pointer (`PTR_TO_PACKET`), which the
/// access checks proved inside the packet's verified range.
pub const ACCESS_PACKET: u8 = 4;
/// [`Verifier::access`]: an access through a map value pointer (`PTR_TO_MAP_VALUE`), which the
/// access checks proved inside the value (`check_map_access`); the map is in
/// [`Verifier::access_map`].
pub const ACCESS_MAP_VALUE: u8 = 8;
/// [`Verifier::access`]: an access through a stack pointer (`PTR_TO_STACK`, any frame's), which
/// the access checks proved inside that frame's stack (`check_stack_access_within_bounds`).
pub const ACCESS_STACK: u8 = 16;

/// [`Verifier::access_map`]: no map value access seen at the slot yet.
pub const NO_MAP: u32 = u32::MAX;
/// [`Verifier::access_map`]: map value accesses of different maps at the slot.
pub const MANY_MAPS: u32 = u32::MAX - 1;
/// `access_stack_at` of a slot no stack access reached yet (no frame is that far up).
pub const STACK_AT_NONE: u64 = u64::MAX;
/// `access_stack_at` of a slot whose stack pointers disagree or have a variable offset.
pub const STACK_AT_MANY: u64 = u64::MAX - 1;

const MAX_CALL_FRAMES: usize = 8;

/// What one instruction did to the path.
pub enum Step {
    /// Go on at this slot.
    Next(usize),
    /// A branch whose two sides are both possible: go on at `fall`, and later explore `taken`
    /// with `other`.
    Fork {
        fall: usize,
        taken: usize,
        other: Box<State>,
    },
    /// The path ended (exit from the main program).
    Done,
}

/// What `is_state_visited` decided.
enum Visit {
    /// An explored state covers this one: the path ends here.
    Prune,
    /// Go on (under a new checkpoint, if one was added).
    Go,
}

pub struct Explored {
    pc: usize,
    /// Times a later state matched this one, and times one did not: states that keep missing
    /// are dropped, as the kernel does (`miss_cnt > hit_cnt * 3 + 3`).
    hits: u32,
    misses: u32,
    /// The state as checkpointed, its dead registers cleared (`clean_verifier_state`).
    pub state: State,
    /// Paths from this state not finished yet; 0 means fully verified (safe to prune against).
    branches: u32,
    pub parent: Option<usize>,
    /// The segment of the path that led here from `parent`: its first instruction, the
    /// instruction just before this checkpoint, and its jump history.
    pub first: usize,
    pub last: Option<usize>,
    pub hist: Vec<Hist>,
    /// Precise scalars, per frame: (registers, stack slots).
    pub prec: Vec<Prec>,
    /// Its dead stack slots were forgotten, once it was fully explored (`cleaned`).
    stack_cleaned: bool,
}

/// A path pruned against a checkpoint inside an SCC before the SCC was done
/// (`bpf_scc_backedge`): once it is, precision is propagated again along it.
struct Backedge {
    pos: crate::precise::PathPos,
    frames: usize,
    equal: usize,
}

#[derive(Default)]
struct SccVisit {
    entry: Option<usize>,
    backedges: Vec<Backedge>,
}

struct Pending {
    pc: usize,
    /// The instruction the path comes from (the branch, for a pushed side).
    prev: Option<usize>,
    state: State,
    parent: Option<usize>,
    first: usize,
    hist: Vec<Hist>,
    /// Where the log stood when this branch was pushed (a level-1 log goes back there).
    log_pos: Option<crate::log::LogPos>,
}

pub struct Verifier<'a> {
    pub insns: &'a [Insn],
    pub opts: &'a Options,
    /// For each slot, the kinds of pointer its memory access went through on every path
    /// explored ([`ACCESS_CTX`], [`ACCESS_OTHER`], [`ACCESS_PACKET`], [`ACCESS_MAP_VALUE`],
    /// [`ACCESS_STACK`]): what the JIT may rely on.
    pub access: Vec<u8>,
    /// For each slot, the map of the map value pointers its access went through ([`NO_MAP`],
    /// [`MANY_MAPS`] or the map's index).
    pub access_map: Vec<u32>,
    /// For each slot holding `call bpf_map_lookup_elem`, the map its `r1` held on the paths
    /// explored ([`NO_MAP`] before any, [`MANY_MAPS`] when two disagree, else the map's index).
    pub lookup_map: Vec<u32>,
    /// For each slot, where the stack pointers its access went through point: [`STACK_AT_NONE`]
    /// before any, [`STACK_AT_MANY`] when two paths (or a variable offset) disagree, else the frame as a
    /// count of frames up from the accessing one (high 32 bits) and the constant offset from
    /// that frame's pointer (low 32 bits, two's complement).
    pub access_stack_at: Vec<u64>,
    /// Slot of each instruction.
    pub pcs: Vec<usize>,
    /// Instruction at each slot.
    at: Vec<Option<usize>>,
    pub log: Vec<String>,
    /// Helpers called on a path whose arguments went unchecked (no prototype), sorted.
    pub unchecked_helpers: std::collections::BTreeSet<u32>,
    /// What the log prints per instruction (levels 1 and 2).
    pub trace: crate::log::Trace,
    pub processed: u64,
    prune: Vec<bool>,
    /// Where a path may arrive other than by falling through: each arrival is recorded in the
    /// jump history that precision backtracking walks (`is_jmp_point`).
    jmp_point: Vec<bool>,
    /// Helper calls that run a callback (`bpf_loop`, ...): a checkpoint at each visit, and a
    /// visit whose state is within one still in progress there ends the iteration.
    calls_callback: Vec<bool>,
    pub explored: Vec<Explored>,
    /// Checkpoints by instruction, oldest first (the kernel's list, newest first, reversed);
    /// ones that keep missing are dropped from here but stay in `explored` as parents.
    by_pc: HashMap<usize, Vec<usize>>,
    next_id: u32,
    /// The path being verified: the instruction at hand and the one before it, the checkpoint
    /// it descends from, the first instruction since that checkpoint and the jump history.
    pub cur_pc: usize,
    pub prev_pc: Option<usize>,
    pub cur_parent: Option<usize>,
    pub cur_first: usize,
    pub cur_hist: Vec<Hist>,
    /// The current instruction already has a history entry (`env->cur_hist_ent`).
    pub cur_hist_ent: bool,
    /// Some precision mark was added since this was last cleared.
    pub prec_changed: bool,
    /// Strongly connected component of each slot (0: none): loops, and calls of callbacks.
    scc: Vec<u32>,
    /// Per call chain into an SCC (`bpf_scc_visit`): the checkpoint that entered it, and the
    /// paths pruned inside it against checkpoints whose precision may still grow.
    visits: HashMap<(Vec<usize>, u32), SccVisit>,
    /// Live registers at each slot.
    live: Vec<u16>,
    /// The stack slot liveness per call chain (`env->liveness`), built on first use.
    pub(crate) stack_live: Option<crate::log::liveness::StackLive>,
    /// Jump-class instructions processed, and both counts when the last checkpoint was added
    /// (the kernel adds one only after 2 jumps and 8 instructions).
    jmps: u64,
    prev_jmps: u64,
    prev_insns: u64,
    /// Deepest stack use of each subprogram (by first slot), for `check_max_stack_depth`.
    pub subprog_depth: HashMap<usize, usize>,
    /// Deepest byte of each subprogram's frame (by first slot) that any explored path reads or
    /// writes, through `r10` or a pointer passed down: recorded where a path ends, at an exit
    /// or where it is pruned, so that the accesses a pruned path made before the checkpoint
    /// count too (`subprog_depth` takes a frame's depth at its exit only). The JIT zeroes only
    /// these bytes of a callee's frame ([`crate::Verdict::frame_bytes`]).
    pub frame_reach: HashMap<usize, usize>,
    /// Global functions called on verified paths (first slots), to verify after the program.
    pub globals_called: Vec<usize>,
    /// Checkpoints of the runs already finished (main program, earlier global functions).
    finished_states: usize,
    finished_max_per_insn: usize,
    /// The kernel's statistics: the most checkpoints one visit compared against without a
    /// match (`max_states_per_insn`), checkpoints still listed, and the most ever listed at
    /// once (`peak_states`).
    stat_max_per_insn: usize,
    alive: usize,
    peak: usize,
}

impl<'a> Verifier<'a> {
    pub fn new(insns: &'a [Insn], opts: &'a Options) -> Verifier<'a> {
        let mut pcs = Vec::with_capacity(insns.len());
        let mut slot = 0;
        for i in insns {
            pcs.push(slot);
            slot += i.slots();
        }
        let mut at = vec![None; slot];
        for (i, &pc) in pcs.iter().enumerate() {
            at[pc] = Some(i);
        }
        Verifier {
            insns,
            opts,
            access: vec![0; slot],
            access_map: vec![NO_MAP; slot],
            lookup_map: vec![NO_MAP; slot],
            access_stack_at: vec![STACK_AT_NONE; slot],
            pcs,
            at,
            log: Vec::new(),
            unchecked_helpers: Default::default(),
            trace: crate::log::Trace::new(opts.log_level, opts.line_info.clone()),
            processed: 0,
            prune: vec![false; slot + 1],
            jmp_point: vec![false; slot + 1],
            calls_callback: vec![false; slot + 1],
            explored: Vec::new(),
            by_pc: HashMap::new(),
            next_id: 0,
            cur_pc: 0,
            prev_pc: None,
            cur_parent: None,
            cur_first: 0,
            cur_hist: Vec::new(),
            cur_hist_ent: false,
            prec_changed: false,
            scc: Vec::new(),
            visits: HashMap::new(),
            live: Vec::new(),
            stack_live: None,
            jmps: 0,
            prev_jmps: 0,
            prev_insns: 0,
            subprog_depth: HashMap::new(),
            frame_reach: HashMap::new(),
            globals_called: Vec::new(),
            finished_states: 0,
            finished_max_per_insn: 0,
            stat_max_per_insn: 0,
            alive: 0,
            peak: 0,
        }
    }

    /// A checkpoint may be taken at `pc` (`prune_point`).
    pub(crate) fn is_prune_point(&self, pc: usize) -> bool {
        self.prune.get(pc).copied().unwrap_or(false)
    }

    pub fn prog_slots(&self) -> Vec<usize> {
        self.pcs.clone()
    }

    pub fn max_states_per_insn(&self) -> usize {
        self.stat_max_per_insn.max(self.finished_max_per_insn)
    }

    pub fn peak_states(&self) -> usize {
        self.peak
    }

    pub fn total_states(&self) -> usize {
        self.finished_states + self.explored.len()
    }

    pub fn new_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    pub fn insn_at(&self, pc: usize) -> Option<&'a Insn> {
        self.at.get(pc).copied().flatten().map(|i| &self.insns[i])
    }

    /// Checkpoints: conditional jumps, jump targets and the instruction after a call.
    fn mark_prune_points(&mut self) {
        for (i, insn) in self.insns.iter().enumerate() {
            let pc = self.pcs[i];
            let next = pc + insn.slots();
            let last = self.prune.len() - 1;
            match insn {
                Insn::Jmp { .. } | Insn::Ja { .. } | Insn::Gotol { .. } => {
                    if matches!(insn, Insn::Jmp { .. }) {
                        self.prune[pc] = true;
                    }
                    if let Some(off) = insn.jump_offset() {
                        let t = (next as i64 + off as i64) as usize;
                        if t < self.prune.len() {
                            self.prune[t] = true;
                            self.jmp_point[t] = true;
                        }
                    }
                }
                Insn::LdImm64 {
                    imm: bpfsim_vm::isa::Imm64::Func(off),
                    ..
                } => {
                    // A callback's address: its body is a branch target, as for a call.
                    self.prune[pc] = true;
                    self.prune[next.min(last)] = true;
                    self.jmp_point[next.min(last)] = true;
                    let t = (next as i64 + *off as i64 - 1) as usize;
                    if t < self.prune.len() {
                        self.prune[t] = true;
                        self.jmp_point[t] = true;
                    }
                }
                Insn::Call(target) => {
                    if let bpfsim_vm::isa::CallTarget::Helper(id) = target {
                        if matches!(
                            bpfsim_vm::spec::helper_name(*id as i64),
                            Some("loop" | "for_each_map_elem" | "find_vma" | "user_ringbuf_drain")
                        ) {
                            self.prune[pc] = true;
                            self.jmp_point[pc] = true;
                            self.calls_callback[pc] = true;
                        }
                    }
                    self.prune[next.min(last)] = true;
                    self.jmp_point[next.min(last)] = true;
                    if let bpfsim_vm::isa::CallTarget::Local(off) = target {
                        self.prune[pc] = true;
                        let t = (next as i64 + *off as i64) as usize;
                        if t < self.prune.len() {
                            self.prune[t] = true;
                            self.jmp_point[t] = true;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn update_branch_counts(&mut self, mut p: Option<usize>) {
        while let Some(i) = p {
            let e = &mut self.explored[i];
            e.branches = e.branches.saturating_sub(1);
            if e.branches > 0 {
                break;
            }
            p = e.parent;
            self.maybe_exit_scc(i);
        }
    }

    /// Live registers of each frame of `st` at `pc`: the innermost frame's at `pc`, an outer
    /// frame's at the call it is waiting on (`frame_insn_idx`).
    pub(crate) fn live_masks(&self, st: &State, pc: usize) -> Vec<u16> {
        let n = st.frames.len();
        (0..n)
            .map(|f| {
                let at = if f + 1 == n {
                    pc
                } else {
                    st.frames[f + 1].callsite
                };
                self.live.get(at).copied().unwrap_or(u16::MAX) | 1 << 10
            })
            .collect()
    }

    /// `clean_verifier_state`: dead registers become NOT_INIT, so they match anything.
    fn clean(st: &mut State, live: &[u16]) {
        for (fr, &l) in st.frames.iter_mut().zip(live) {
            for (r, reg) in fr.regs.iter_mut().enumerate() {
                if l & (1 << r) == 0 {
                    *reg = Reg::NOT_INIT;
                }
            }
        }
    }

    /// `compute_scc`: Tarjan's algorithm over each function's flow graph (calls fall
    /// through); components of several instructions, self-loops and callback calls count.
    fn compute_scc(&mut self) {
        let n = self.at.len();
        let succs = |pc: usize| -> Vec<usize> {
            let Some(insn) = self.insn_at(pc) else {
                return Vec::new();
            };
            let next = pc + insn.slots();
            let to = |t: i64| usize::try_from(t).ok().filter(|&t| t < n);
            match insn {
                Insn::Exit => Vec::new(),
                Insn::Ja { .. } | Insn::Gotol { .. } => insn
                    .jump_offset()
                    .and_then(|o| to(next as i64 + o as i64))
                    .into_iter()
                    .collect(),
                Insn::Jmp { off, .. } => [to(next as i64), to(next as i64 + *off as i64)]
                    .into_iter()
                    .flatten()
                    .collect(),
                _ => to(next as i64).into_iter().collect(),
            }
        };
        let mut index = vec![usize::MAX; n];
        let mut low = vec![0usize; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut scc = vec![0u32; n];
        let mut next_index = 0;
        let mut next_id = 1;
        for root in 0..n {
            if index[root] != usize::MAX || self.insn_at(root).is_none() {
                continue;
            }
            // (node, its successors, position in them)
            let mut work: Vec<(usize, Vec<usize>, usize)> = Vec::new();
            index[root] = next_index;
            low[root] = next_index;
            next_index += 1;
            stack.push(root);
            on_stack[root] = true;
            work.push((root, succs(root), 0));
            while let Some((v, ss, k)) = work.last_mut() {
                let v = *v;
                if *k < ss.len() {
                    let w = ss[*k];
                    *k += 1;
                    if index[w] == usize::MAX {
                        index[w] = next_index;
                        low[w] = next_index;
                        next_index += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        let sw = succs(w);
                        work.push((w, sw, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                let self_loop = ss.contains(&v);
                work.pop();
                if let Some((u, _, _)) = work.last() {
                    low[*u] = low[*u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut members = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        members.push(w);
                        if w == v {
                            break;
                        }
                    }
                    let is_loop = members.len() > 1
                        || self_loop
                        || self.calls_callback.get(v).copied().unwrap_or(false);
                    if is_loop {
                        for w in members {
                            scc[w] = next_id;
                        }
                        next_id += 1;
                    }
                }
            }
        }
        self.scc = scc;
    }

    /// `compute_scc_callchain`: the call sites down to the outermost frame that is inside an
    /// SCC, and that SCC.
    fn callchain(&self, st: &State, pc: usize) -> Option<(Vec<usize>, u32)> {
        let n = st.frames.len();
        let mut sites = Vec::new();
        for i in 0..n {
            let at = if i + 1 == n {
                pc
            } else {
                st.frames[i + 1].callsite
            };
            let scc = self.scc.get(at).copied().unwrap_or(0);
            if scc != 0 {
                return Some((sites, scc));
            }
            if i + 1 == n {
                return None;
            }
            sites.push(at);
        }
        None
    }

    /// `incomplete_read_marks`: checkpoint `i` is inside an SCC still being explored, where
    /// paths were pruned against states whose precision may yet grow.
    fn incomplete_marks(&self, i: usize) -> bool {
        let e = &self.explored[i];
        self.callchain(&e.state, e.pc)
            .and_then(|c| self.visits.get(&c))
            .is_some_and(|v| !v.backedges.is_empty())
    }

    /// `maybe_exit_scc`: checkpoint `i` is done; if it entered its SCC, the SCC is done too:
    /// propagate precision along its backedges until nothing changes.
    fn maybe_exit_scc(&mut self, i: usize) {
        let e = &self.explored[i];
        let Some(c) = self.callchain(&e.state, e.pc) else {
            return;
        };
        let Some(v) = self.visits.get_mut(&c) else {
            return;
        };
        if v.entry != Some(i) {
            return;
        }
        v.entry = None;
        let backedges = std::mem::take(&mut v.backedges);
        self.trace.scc("exit", &c);
        for round in 0.. {
            if round > 64 {
                for b in &backedges {
                    self.mark_all_precise(b.pos.parent);
                }
                break;
            }
            self.prec_changed = false;
            for b in &backedges {
                self.propagate_precision_from(b.equal, b.frames, &b.pos);
            }
            if !self.prec_changed {
                break;
            }
        }
    }

    /// `widen_imprecise_scalars`: back at a callback's call, scalars that changed since the
    /// previous visit of the call on this path and that nothing relied on become unknown, so
    /// that the visits converge (a counter bumped by the callback would otherwise never repeat).
    pub fn widen_imprecise(&self, st: &mut State, pc: usize) {
        let listed = self.by_pc.get(&pc);
        let mut p = self.cur_parent;
        let prev = loop {
            let Some(i) = p else { return };
            let e = &self.explored[i];
            if e.pc == pc
                && e.branches > 0
                && listed.is_some_and(|l| l.contains(&i))
                && e.state.frames.len() == st.frames.len()
                && e.state
                    .frames
                    .iter()
                    .zip(&st.frames)
                    .all(|(a, b)| a.callsite == b.callsite)
            {
                break e;
            }
            p = e.parent;
        };
        let same = |a: &Reg, b: &Reg| {
            let (mut a, mut b) = (*a, *b);
            a.id = 0;
            b.id = 0;
            a == b
        };
        for (f, (old, cur)) in prev
            .state
            .frames
            .iter()
            .zip(st.frames.iter_mut())
            .enumerate()
        {
            let (pregs, pstack) = prev.prec.get(f).copied().unwrap_or((0, 0));
            for (r, (o, c)) in old.regs.iter().zip(cur.regs.iter_mut()).enumerate() {
                if o.is_scalar() && c.is_scalar() && pregs & (1 << r) == 0 && !same(o, c) {
                    *c = Reg::unknown();
                }
            }
            for (i, (o, c)) in old.stack.iter().zip(cur.stack.iter_mut()).enumerate() {
                if o.bytes[0] != crate::domain::state::Byte::Spill
                    || c.bytes[0] != crate::domain::state::Byte::Spill
                {
                    continue;
                }
                let precise = i < 64 && pstack & (1 << i) != 0;
                if o.spilled.is_scalar()
                    && c.spilled.is_scalar()
                    && !precise
                    && !same(&o.spilled, &c.spilled)
                {
                    c.spilled = Reg::unknown();
                }
            }
        }
    }

    /// `clean_live_states`: checkpoints at this instruction that are fully explored, on the
    /// same call chain as `cur` and not waiting on an SCC's precision, forget the stack slots
    /// no path from them reads (the stack liveness is complete for them now).
    fn clean_live_states(&mut self, list: &[usize], cur: &State) {
        let Some(sl) = self.stack_live.as_ref() else {
            return;
        };
        let calls_cb = |p: usize| self.calls_callback.get(p).copied().unwrap_or(false);
        let mut dead: Vec<(usize, usize, usize)> = Vec::new();
        for &i in list {
            let e = &self.explored[i];
            let same_chain = e.state.frames.len() == cur.frames.len()
                && e.state
                    .frames
                    .iter()
                    .zip(&cur.frames)
                    .all(|(a, b)| a.callsite == b.callsite);
            if e.branches > 0 || e.stack_cleaned || !same_chain || self.incomplete_marks(i) {
                continue;
            }
            let alive = sl.alive_masks(&e.state, e.pc, &calls_cb);
            for (f, fr) in e.state.frames.iter().enumerate() {
                let m = alive.get(f).copied().unwrap_or(u64::MAX);
                for spi in 0..fr.stack.len().min(64) {
                    if m & (1 << spi) == 0 {
                        dead.push((i, f, spi));
                    }
                }
            }
            dead.push((i, usize::MAX, 0));
        }
        for (i, f, spi) in dead {
            let e = &mut self.explored[i];
            if f == usize::MAX {
                e.stack_cleaned = true;
            } else {
                e.state.frames[f].stack[spi] = crate::domain::state::Slot::EMPTY;
            }
        }
    }

    /// `is_state_visited`.
    fn visit(&mut self, pc: usize, st: &State) -> Result<Visit, String> {
        // Long segments are cut so the history stays short (`jmp_history_cnt > 40`).
        let callback_call = self.calls_callback.get(pc).copied().unwrap_or(false);
        let force = callback_call || self.cur_hist.len() > 40;
        let mut add =
            force || (self.jmps - self.prev_jmps >= 2 && self.processed - self.prev_insns >= 8);
        let live = self.live_masks(st, pc);
        let mut cleaned: Option<State> = None;
        let list = self.by_pc.get(&pc).cloned().unwrap_or_default();
        self.clean_live_states(&list, st);
        // Newest first, as the kernel adds each checkpoint at its list's head.
        for k in (0..list.len()).rev() {
            let i = list[k];
            let mut hit = false;
            let mut loop_ = false;
            if self.explored[i].branches > 0 && callback_call {
                // Back at a callback's call with a state within one seen on the way here:
                // further visits of the callback add nothing.
                hit = states_equal(
                    &self.explored[i].state,
                    st,
                    &live,
                    &self.explored[i].prec,
                    true,
                );
                loop_ = hit;
                if !hit
                    && !force
                    && self.jmps - self.prev_jmps < 20
                    && self.processed - self.prev_insns < 100
                {
                    add = false;
                }
            } else if self.explored[i].branches > 0 {
                // A checkpoint on the current path: an identical state is an infinite loop.
                let c = cleaned.get_or_insert_with(|| {
                    let mut c = st.clone();
                    Self::clean(&mut c, &live);
                    c
                });
                if self.explored[i].state == *c {
                    return Err(format!("infinite loop detected at insn {pc}"));
                }
                // Inside a loop, checkpoints are added less often (every 20 jumps or 100
                // instructions), since each iteration's state differs.
                if !force
                    && self.jmps - self.prev_jmps < 20
                    && self.processed - self.prev_insns < 100
                {
                    add = false;
                }
            } else {
                // Inside an SCC not done yet, precision marks are not final: compare as if
                // every scalar were precise.
                loop_ = self.incomplete_marks(i);
                hit = states_equal(
                    &self.explored[i].state,
                    st,
                    &live,
                    &self.explored[i].prec,
                    loop_,
                );
            }
            if hit {
                self.explored[i].hits += 1;
                if self.jmp_point.get(pc).copied().unwrap_or(false) {
                    self.push_hist(None, Vec::new());
                }
                self.propagate_precision(i, st.frames.len());
                if loop_ {
                    let e = &self.explored[i];
                    if let Some(c) = self.callchain(&e.state, e.pc) {
                        let b = Backedge {
                            pos: self.cur_pos(),
                            frames: st.frames.len(),
                            equal: i,
                        };
                        if let Some(v) = self.visits.get_mut(&c) {
                            v.backedges.push(b);
                            self.trace.scc("backedge", &c);
                        }
                    }
                }
                return Ok(Visit::Prune);
            }
            let e = &mut self.explored[i];
            if add {
                e.misses += 1;
            }
            // Checkpoints at callback calls are kept longer while in progress, so that the
            // iteration can converge on them.
            let n = if callback_call && e.branches > 0 {
                64
            } else {
                3
            };
            if e.misses > e.hits * n + n {
                if let Some(l) = self.by_pc.get_mut(&pc) {
                    let before = l.len();
                    l.retain(|&x| x != i);
                    self.alive -= before - l.len();
                }
            }
        }
        // The kernel counts the checkpoints a visit went through without a match.
        self.stat_max_per_insn = self.stat_max_per_insn.max(list.len());
        if !add {
            return Ok(Visit::Go);
        }
        self.prev_jmps = self.jmps;
        self.prev_insns = self.processed;
        let state = cleaned.unwrap_or_else(|| {
            let mut c = st.clone();
            Self::clean(&mut c, &live);
            c
        });
        self.explored.push(Explored {
            pc,
            hits: 0,
            misses: 0,
            prec: vec![(0, 0); state.frames.len()],
            stack_cleaned: false,
            state,
            branches: 1,
            parent: self.cur_parent,
            first: self.cur_first,
            last: self.prev_pc,
            hist: std::mem::take(&mut self.cur_hist),
        });
        let idx = self.explored.len() - 1;
        self.trace.keep_raw(idx, st);
        if let Some(c) = self.callchain(&self.explored[idx].state, pc) {
            let name = c.clone();
            let v = self.visits.entry(c).or_default();
            if v.entry.is_none() {
                v.entry = Some(idx);
                self.trace.scc("enter", &name);
            }
        }
        self.by_pc.entry(pc).or_default().push(idx);
        self.alive += 1;
        self.peak = self.peak.max(self.alive);
        self.cur_parent = Some(idx);
        self.cur_first = pc;
        self.cur_hist_ent = false;
        Ok(Visit::Go)
    }

    fn initial_state(&self) -> State {
        let mut main = Frame::new(0, 0, 0);
        main.regs[1] = Reg::ptr(RegType::Ctx);
        State {
            frames: vec![main],
            refs: Vec::new(),
            lock: None,
        }
    }

    /// `do_check_main`, then `do_check_subprogs`: each global function a verified path
    /// called, once, on its own, from a state its BTF prototype describes.
    pub fn do_check(&mut self) -> Result<(), String> {
        self.mark_prune_points();
        self.compute_scc();
        let by_insn =
            crate::passes::liveness::live_registers(self.insns, &self.pcs, self.opts.prog_type);
        self.live = vec![u16::MAX; self.at.len()];
        for (i, &pc) in self.pcs.iter().enumerate() {
            self.live[pc] = by_insn[i];
        }
        if self.trace.level2() {
            let table = crate::log::live_table(self.insns, &self.live, &self.scc);
            self.log.extend(table);
        }
        let mark = self.log.len();
        self.run(0, self.initial_state())?;
        self.trace.run_done(&mut self.log, mark);
        let mut globals = self.opts.global_funcs.clone();
        globals.sort_by_key(|g| g.slot);
        let mut verified: Vec<usize> = Vec::new();
        loop {
            let mut new = 0;
            for g in &globals {
                if !self.globals_called.contains(&g.slot) || verified.contains(&g.slot) {
                    continue;
                }
                let idx = self.subprog_index(g.slot);
                let mark = self.log.len();
                if self.opts.log_level >= 1 {
                    self.log
                        .push(format!("Validating {}() func#{idx}...", g.name));
                }
                // Each function starts from no checkpoints (`free_states`).
                self.finished_states += self.explored.len();
                self.finished_max_per_insn = self.max_states_per_insn();
                self.explored.clear();
                self.by_pc.clear();
                self.alive = 0;
                self.visits.clear();
                let mut f = Frame::new(0, g.slot, 0);
                for (i, a) in g.args.iter().enumerate() {
                    f.regs[i + 1] = match a {
                        crate::ArgKind::Scalar => Reg::unknown(),
                        crate::ArgKind::Ctx => Reg::ptr(RegType::Ctx),
                        crate::ArgKind::Mem { size } => {
                            let mut r = Reg::ptr(RegType::Mem);
                            r.maybe_null = true;
                            r.mem_size = *size;
                            r.id = self.new_id();
                            r
                        }
                    };
                }
                let st = State {
                    frames: vec![f],
                    refs: Vec::new(),
                    lock: None,
                };
                self.run(g.slot, st)?;
                self.trace.run_done(&mut self.log, mark);
                if self.opts.log_level >= 1 {
                    self.log.push(format!(
                        "Func#{idx} ('{}') is safe for any args that match its prototype",
                        g.name
                    ));
                }
                verified.push(g.slot);
                new += 1;
            }
            if new == 0 {
                return Ok(());
            }
        }
    }

    /// The kernel's number for the subprogram starting at `slot` (subprograms in slot order).
    fn subprog_index(&self, slot: usize) -> usize {
        let mut starts: Vec<usize> = self
            .insns
            .iter()
            .enumerate()
            .filter_map(|(i, insn)| match insn {
                Insn::Call(bpfsim_vm::isa::CallTarget::Local(off)) => {
                    Some((self.pcs[i] as i64 + 1 + *off as i64) as usize)
                }
                _ => None,
            })
            .collect();
        starts.sort_unstable();
        starts.dedup();
        starts.iter().filter(|&&x| x > 0 && x <= slot).count()
    }

    /// A global function, if a subprogram starts at `slot` and is one.
    pub fn global_at(&self, slot: usize) -> Option<&'a crate::GlobalFunc> {
        self.opts.global_funcs.iter().find(|g| g.slot == slot)
    }

    /// Explore every path from `start` in state `init`.
    fn run(&mut self, start: usize, init: State) -> Result<(), String> {
        let mut pending = vec![Pending {
            pc: start,
            prev: None,
            state: init,
            parent: None,
            first: start,
            hist: Vec::new(),
            log_pos: None,
        }];
        self.trace.start_run();
        while let Some(Pending {
            mut pc,
            prev,
            mut state,
            parent,
            first,
            hist,
            ..
        }) = pending.pop()
        {
            self.prev_pc = prev;
            self.cur_parent = parent;
            self.cur_first = first;
            self.cur_hist = hist;
            loop {
                self.cur_pc = pc;
                self.cur_hist_ent = false;
                self.processed += 1;
                if self.processed > self.opts.limit {
                    return Err(format!(
                        "BPF program is too large. Processed {} insn",
                        self.processed
                    ));
                }
                if self.prune.get(pc).copied().unwrap_or(false) {
                    if let Visit::Prune = self.visit(pc, &state)? {
                        self.record_reach(&state);
                        self.trace.safe(&mut self.log, self.prev_pc, pc);
                        self.live_path_end(&state);
                        self.update_branch_counts(self.cur_parent);
                        let pos = pending.last().and_then(|p| p.log_pos);
                        self.trace.path_done(&mut self.log, pos);
                        break;
                    }
                }
                if self.jmp_point.get(pc).copied().unwrap_or(false) {
                    self.push_hist(None, Vec::new());
                }
                let Some(insn) = self.insn_at(pc) else {
                    return Err(format!("invalid insn idx {pc}"));
                };
                if matches!(
                    insn,
                    Insn::Jmp { .. }
                        | Insn::Ja { .. }
                        | Insn::Gotol { .. }
                        | Insn::Call(_)
                        | Insn::Exit
                ) {
                    self.jmps += 1;
                }
                let frames = state.frames.len();
                let callee = self.trace_before(&state, pc, insn);
                self.live_insn(&state, pc, insn);
                match self.step(&mut state, pc, insn)? {
                    Step::Next(n) => {
                        if state.frames.len() > frames {
                            self.live_entered();
                        }
                        self.trace_after(&state, frames, callee, n);
                        if matches!(insn, Insn::Jmp { .. }) {
                            self.trace_jmp(&state, pc);
                        }
                        self.prev_pc = Some(pc);
                        pc = n;
                    }
                    Step::Fork { fall, taken, other } => {
                        if let Some(p) = self.cur_parent {
                            self.explored[p].branches += 1;
                        }
                        pending.push(Pending {
                            pc: taken,
                            prev: Some(pc),
                            state: *other,
                            parent: self.cur_parent,
                            first: self.cur_first,
                            hist: self.cur_hist.clone(),
                            log_pos: self.trace.on().then(|| self.trace.pos(&self.log)),
                        });
                        self.trace_jmp(&state, pc);
                        self.prev_pc = Some(pc);
                        pc = fall;
                    }
                    Step::Done => {
                        self.live_path_end(&state);
                        self.update_branch_counts(self.cur_parent);
                        let pos = pending.last().and_then(|p| p.log_pos);
                        self.trace.path_done(&mut self.log, pos);
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Note how deep each frame of `st` has been accessed so far ([`Self::frame_reach`]).
    pub(crate) fn record_reach(&mut self, st: &State) {
        for f in &st.frames {
            let d = self.frame_reach.entry(f.subprog).or_default();
            *d = (*d).max(f.depth);
        }
    }

    /// `check_max_stack_depth`: along every chain of static calls from the main program, at most
    /// 8 frames and 512 bytes of stack (each frame's depth rounded up to 16, as with the JIT).
    pub fn check_max_stack_depth(&self) -> Result<(), String> {
        let mut starts: Vec<usize> = vec![0];
        for (i, insn) in self.insns.iter().enumerate() {
            if let Insn::Call(bpfsim_vm::isa::CallTarget::Local(off)) = insn {
                starts.push((self.pcs[i] as i64 + 1 + *off as i64) as usize);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let end_of = |s: usize| {
            starts
                .iter()
                .find(|&&x| x > s)
                .copied()
                .unwrap_or(usize::MAX)
        };
        // The kernel counts every access as it checks it (`update_stack_depth`): a path pruned
        // at a checkpoint counts what it touched before it (`frame_reach`), not just paths that
        // reach an exit (`subprog_depth`).
        let depth_of = |s: usize| {
            let d = self.subprog_depth.get(&s).copied().unwrap_or(0);
            let d = d.max(self.frame_reach.get(&s).copied().unwrap_or(0));
            d.max(1).next_multiple_of(16)
        };
        // Depth-first over (subprogram, frames so far, bytes so far).
        let mut work = vec![(0usize, 1usize, depth_of(0))];
        while let Some((sub, frames, bytes)) = work.pop() {
            // The kernel counts calls from frame 0 and stops at frame 8.
            if frames > MAX_CALL_FRAMES {
                return Err(format!(
                    "the call stack of {} frames is too deep !",
                    frames - 1
                ));
            }
            if bytes > 512 {
                return Err(format!(
                    "combined stack size of {frames} calls is {bytes}. Too large"
                ));
            }
            let end = end_of(sub);
            for (i, insn) in self.insns.iter().enumerate() {
                let pc = self.pcs[i];
                if pc < sub || pc >= end {
                    continue;
                }
                if let Insn::Call(bpfsim_vm::isa::CallTarget::Local(off)) = insn {
                    let callee = (pc as i64 + 1 + *off as i64) as usize;
                    work.push((callee, frames + 1, bytes + depth_of(callee)));
                }
            }
        }
        Ok(())
    }

    /// Record the kind of pointer the access at `pc` goes through on this path.
    fn note_access(&mut self, st: &State, pc: usize, base: bpfsim_vm::isa::Reg) {
        let reg = st.reg(base.index());
        let kind = match reg.ty {
            RegType::Ctx => ACCESS_CTX,
            RegType::Packet => ACCESS_PACKET,
            RegType::MapValue => ACCESS_MAP_VALUE,
            RegType::Stack => ACCESS_STACK,
            _ => ACCESS_OTHER,
        };
        if let Some(k) = self.access.get_mut(pc) {
            *k |= kind;
        }
        if kind == ACCESS_STACK {
            let here = st.frames.len().saturating_sub(1);
            let at = if reg.var_off.is_const() && (reg.frameno as usize) <= here {
                let off = reg.off as i64 + reg.var_off.value as i64;
                i32::try_from(off)
                    .map(|o| ((here - reg.frameno as usize) as u64) << 32 | o as u32 as u64)
                    .unwrap_or(STACK_AT_MANY)
            } else {
                STACK_AT_MANY
            };
            if let Some(m) = self.access_stack_at.get_mut(pc) {
                *m = match *m {
                    STACK_AT_NONE => at,
                    same if same == at => same,
                    _ => STACK_AT_MANY,
                };
            }
        }
        if kind == ACCESS_MAP_VALUE {
            if let Some(m) = self.access_map.get_mut(pc) {
                *m = match *m {
                    NO_MAP => reg.map,
                    same if same == reg.map => same,
                    _ => MANY_MAPS,
                };
            }
        }
    }

    /// One instruction: the checks of its class.
    fn step(&mut self, st: &mut State, pc: usize, insn: &Insn) -> Result<Step, String> {
        let next = pc + insn.slots();
        match *insn {
            Insn::Alu { .. } | Insn::Neg { .. } | Insn::MovSx { .. } | Insn::Endian { .. } => {
                self.check_alu_op(st, insn)?;
                Ok(Step::Next(next))
            }
            Insn::LdImm64 { dst, imm } => {
                self.check_ld_imm(st, pc, dst, imm)?;
                Ok(Step::Next(next))
            }
            Insn::LoadPacket { mode, size, .. } => {
                self.check_ld_abs(st, mode, size)?;
                Ok(Step::Next(next))
            }
            Insn::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                self.note_access(st, pc, src);
                self.check_load(st, dst, src, off, size, signed)?;
                Ok(Step::Next(next))
            }
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
                self.note_access(st, pc, dst);
                self.check_store(st, dst, off, size, src)?;
                Ok(Step::Next(next))
            }
            Insn::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => {
                self.note_access(st, pc, dst);
                self.check_atomic(st, op, dst, src, off, size)?;
                Ok(Step::Next(next))
            }
            Insn::Ja { off } => Ok(Step::Next((next as i64 + off as i64) as usize)),
            Insn::Gotol { off } => Ok(Step::Next((next as i64 + off as i64) as usize)),
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => self.check_cond_jmp_op(st, pc, width, cond, dst, src, off),
            Insn::Call(target) => self.check_call(st, pc, target),
            Insn::Callx { .. } => Err("unknown opcode 8d".to_string()),
            Insn::Exit => self.check_exit(st),
        }
    }
}
