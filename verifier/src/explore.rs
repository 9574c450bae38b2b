//! `do_check`: walk every path of the program over abstract states, depth first (the fall-through
//! of a branch first, the taken side pushed), pruning at checkpoints where an explored state
//! covers the current one (`is_state_visited`).

use std::collections::HashMap;

use bpfsim_vm::isa::Insn;

use crate::domain::reg::{Reg, RegType};
use crate::domain::state::{states_equal, Frame, State};
use crate::Options;

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
    /// Go on, under this checkpoint.
    Go(Option<usize>),
}

struct Explored {
    pc: usize,
    /// Times a later state matched this one, and times one did not: states that keep missing
    /// are dropped, as the kernel does (`miss_cnt > hit_cnt * 3 + 3`).
    hits: u32,
    misses: u32,
    state: State,
    /// Paths from this state not finished yet; 0 means fully verified (safe to prune against).
    branches: u32,
    parent: Option<usize>,
}

struct Pending {
    pc: usize,
    state: State,
    parent: Option<usize>,
}

pub struct Verifier<'a> {
    pub insns: &'a [Insn],
    pub opts: &'a Options,
    /// Slot of each instruction.
    pub pcs: Vec<usize>,
    /// Instruction at each slot.
    at: Vec<Option<usize>>,
    pub log: Vec<String>,
    pub processed: u64,
    prune: Vec<bool>,
    explored: Vec<Explored>,
    /// Fully explored checkpoints by instruction: what pruning compares against.
    by_pc: HashMap<usize, Vec<usize>>,
    /// Every checkpoint by (instruction, state hash): in-progress ones are only ever compared
    /// exactly (an identical state on its own path is an infinite loop).
    exact: HashMap<(usize, u64), Vec<usize>>,
    next_id: u32,
    /// Live registers at each slot.
    live: Vec<u16>,
    /// Jump-class instructions processed, and both counts when the last checkpoint was added
    /// (the kernel adds one only after 2 jumps and 8 instructions).
    jmps: u64,
    prev_jmps: u64,
    prev_insns: u64,
    /// Deepest stack use of each subprogram (by first slot), for `check_max_stack_depth`.
    pub subprog_depth: HashMap<usize, usize>,
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
            pcs,
            at,
            log: Vec::new(),
            processed: 0,
            prune: vec![false; slot + 1],
            explored: Vec::new(),
            by_pc: HashMap::new(),
            exact: HashMap::new(),
            next_id: 0,
            live: Vec::new(),
            jmps: 0,
            prev_jmps: 0,
            prev_insns: 0,
            subprog_depth: HashMap::new(),
        }
    }

    pub fn prog_slots(&self) -> Vec<usize> {
        self.pcs.clone()
    }

    pub fn max_states_per_insn(&self) -> usize {
        let mut per: HashMap<usize, usize> = HashMap::new();
        for e in &self.explored {
            *per.entry(e.pc).or_default() += 1;
        }
        per.values().copied().max().unwrap_or(0)
    }

    pub fn total_states(&self) -> usize {
        self.explored.len()
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
            match insn {
                Insn::Jmp { .. } => self.prune[pc] = true,
                Insn::Ja { .. } | Insn::Gotol { .. } => {
                    if let Some(off) = insn.jump_offset() {
                        let t = (next as i64 + off as i64) as usize;
                        if t < self.prune.len() {
                            self.prune[t] = true;
                        }
                    }
                }
                Insn::Call(target) => {
                    let last = self.prune.len() - 1;
                    self.prune[next.min(last)] = true;
                    if matches!(target, bpfsim_vm::isa::CallTarget::Local(_)) {
                        self.prune[pc] = true;
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
            // Fully explored: from now on a candidate for pruning.
            let pc = e.pc;
            p = e.parent;
            self.by_pc.entry(pc).or_default().push(i);
        }
    }

    fn hash_of(st: &State) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        st.hash(&mut h);
        h.finish()
    }

    /// `is_state_visited`: Ok(None) to prune, Ok(Some(new parent)) to go on.
    fn visit(&mut self, pc: usize, st: &State, parent: Option<usize>) -> Result<Visit, String> {
        let hash = Self::hash_of(st);
        if let Some(same) = self.exact.get(&(pc, hash)) {
            if same
                .iter()
                .any(|&i| self.explored[i].branches > 0 && self.explored[i].state == *st)
            {
                return Err(format!("infinite loop detected at insn {pc}"));
            }
        }
        let live = self.live.get(pc).copied().unwrap_or(u16::MAX);
        if let Some(list) = self.by_pc.get_mut(&pc) {
            let mut k = 0;
            while k < list.len() {
                let e = &mut self.explored[list[k]];
                if states_equal(&e.state, st, live) {
                    e.hits += 1;
                    return Ok(Visit::Prune);
                }
                e.misses += 1;
                if e.misses > e.hits * 3 + 3 {
                    list.swap_remove(k);
                    continue;
                }
                k += 1;
            }
        }
        if !(self.jmps - self.prev_jmps >= 2 && self.processed - self.prev_insns >= 8) {
            return Ok(Visit::Go(parent));
        }
        self.prev_jmps = self.jmps;
        self.prev_insns = self.processed;
        self.explored.push(Explored {
            pc,
            hits: 0,
            misses: 0,
            state: st.clone(),
            branches: 1,
            parent,
        });
        let idx = self.explored.len() - 1;
        self.exact.entry((pc, hash)).or_default().push(idx);
        Ok(Visit::Go(Some(idx)))
    }

    fn initial_state(&self) -> State {
        let mut main = Frame::new(0, 0, 0);
        main.regs[1] = Reg::ptr(RegType::Ctx);
        State {
            frames: vec![main],
            refs: Vec::new(),
        }
    }

    pub fn do_check(&mut self) -> Result<(), String> {
        self.mark_prune_points();
        let by_insn = crate::passes::liveness::live_registers(self.insns, &self.pcs);
        self.live = vec![u16::MAX; self.at.len()];
        for (i, &pc) in self.pcs.iter().enumerate() {
            self.live[pc] = by_insn[i];
        }
        let mut pending = vec![Pending {
            pc: 0,
            state: self.initial_state(),
            parent: None,
        }];
        while let Some(Pending {
            mut pc,
            mut state,
            mut parent,
        }) = pending.pop()
        {
            loop {
                self.processed += 1;
                if self.processed > self.opts.limit {
                    return Err(format!(
                        "BPF program is too large. Processed {} insn",
                        self.processed
                    ));
                }
                if self.prune.get(pc).copied().unwrap_or(false) {
                    match self.visit(pc, &state, parent)? {
                        Visit::Prune => {
                            self.update_branch_counts(parent);
                            break;
                        }
                        Visit::Go(p) => parent = p,
                    }
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
                match self.step(&mut state, pc, insn)? {
                    Step::Next(n) => pc = n,
                    Step::Fork { fall, taken, other } => {
                        if let Some(p) = parent {
                            self.explored[p].branches += 1;
                        }
                        pending.push(Pending {
                            pc: taken,
                            state: *other,
                            parent,
                        });
                        pc = fall;
                    }
                    Step::Done => {
                        self.update_branch_counts(parent);
                        break;
                    }
                }
            }
        }
        Ok(())
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
        let depth_of = |s: usize| {
            let d = self.subprog_depth.get(&s).copied().unwrap_or(0);
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
                self.check_load(st, dst, src, off, size, signed)?;
                Ok(Step::Next(next))
            }
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
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
