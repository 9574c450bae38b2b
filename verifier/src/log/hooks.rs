//! The log's hooks in `do_check`'s loop (explore.rs calls these around each instruction), kept
//! here so that the exploration code stays about exploring.

use bpfsim_vm::isa::Insn;

use super::fmt::Mask;
use super::{Env, Trace};
use crate::domain::state::State;
use crate::explore::Verifier;

impl Verifier<'_> {
    /// Before `insn` at `pc` runs in `st`: its log lines, and the registers it will touch.
    /// Returns the callee's state line when `insn` exits a subprogram (printed once back in
    /// the caller, as `prepare_func_exit` does).
    pub(crate) fn trace_before(&mut self, st: &State, pc: usize, insn: &Insn) -> Option<String> {
        if !self.trace.on() {
            return None;
        }
        let mut trace = std::mem::take(&mut self.trace);
        let mut log = std::mem::take(&mut self.log);
        let at = |p: usize| self.insn_at(p).copied();
        let env = Env {
            maps: &self.opts.maps,
            insn_at: &at,
        };
        trace.before_insn(&mut log, st, self.prev_pc, pc, insn, &env);
        let scratched = trace.scratch;
        trace.scratch_insn(st, insn);
        trace.global_call = None;
        if let Insn::Call(bpfsim_vm::isa::CallTarget::Local(off)) = insn {
            let target = usize::try_from(pc as i64 + 1 + *off as i64).ok();
            if let Some(g) = target.and_then(|t| self.global_at(t)) {
                // A global function's call only scratches the caller-saved registers.
                trace.scratch = scratched;
                trace.scratch.regs |= 0x3f;
                let idx = super::subprog_starts(self.insns)
                    .iter()
                    .position(|&s| s == g.slot)
                    .unwrap_or(0);
                trace.global_call = Some(format!(
                    "Func#{idx} ('{}') is global and assumed valid.",
                    g.name
                ));
            }
        }
        let n = st.frames.len();
        let callee = (matches!(insn, Insn::Exit) && n > 1)
            .then(|| Trace::state_line(st, n - 1, Mask::ALL, &env));
        self.trace = trace;
        self.log = log;
        callee
    }

    /// After an instruction that went on to `next`: a call into a subprogram prints both
    /// frames (`caller:`/`callee:`), a return prints the callee's last state and the caller's.
    pub(crate) fn trace_after(
        &mut self,
        st: &State,
        frames_before: usize,
        callee: Option<String>,
        next: usize,
    ) {
        if !self.trace.on() {
            return;
        }
        self.trace.drain(&mut self.log);
        if let Some(line) = self.trace.global_call.take() {
            self.log.push(line);
        }
        let n = st.frames.len();
        let at = |p: usize| self.insn_at(p).copied();
        let env = Env {
            maps: &self.opts.maps,
            insn_at: &at,
        };
        if n > frames_before && n >= 2 {
            // The kernel prints the caller once its caller-saved registers are cleared.
            let saved = Mask {
                regs: !0x3f,
                stack: u64::MAX,
            };
            let caller = Trace::state_line(st, n - 2, saved, &env);
            let callee = Trace::state_line(st, n - 1, Mask::ALL, &env);
            self.log.push("caller:".to_string());
            self.log.push(caller);
            self.log.push("callee:".to_string());
            self.log.push(callee);
            self.trace.scratch_all();
            self.trace.interrupted();
        } else if let (true, Some(callee)) = (n < frames_before, callee) {
            let caller = Trace::state_line(st, n - 1, Mask::ALL, &env);
            self.log.push("returning from callee:".to_string());
            self.log.push(callee);
            self.log.push(format!("to caller at {next}:"));
            self.log.push(caller);
            self.trace.resumed();
            self.trace.interrupted();
        }
    }
}

/// `fmt_reg_mask`: `r1,r4`.
fn reg_mask(m: u16) -> String {
    (0..16)
        .filter(|r| m & (1 << r) != 0)
        .map(|r| format!("r{r}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `fmt_stack_mask`: `-8,-16` (slot i is fp-8*(i+1)).
fn stack_mask(m: u64) -> String {
    (0..64)
        .filter(|i| m & (1 << i) != 0)
        .map(|i| format!("{}", -8 * (i + 1)))
        .collect::<Vec<_>>()
        .join(",")
}

fn idx(i: Option<usize>) -> String {
    i.map_or_else(|| "-1".to_string(), |i| i.to_string())
}

impl Verifier<'_> {
    /// `check_cond_jmp_op` prints the state the branch leaves on the path that goes on (after
    /// the other side is pushed, so a level-1 log drops it with the path).
    pub(crate) fn trace_jmp(&mut self, st: &State, pc: usize) {
        // Only conditional jumps (a helper that runs a callback forks too).
        if !self.trace.on() || !matches!(self.insn_at(pc), Some(Insn::Jmp { .. })) {
            return;
        }
        let mut trace = std::mem::take(&mut self.trace);
        let mut log = std::mem::take(&mut self.log);
        let at = |p: usize| self.insn_at(p).copied();
        let env = Env {
            maps: &self.opts.maps,
            insn_at: &at,
        };
        trace.insn_state(&mut log, st, pc, &env);
        self.trace = trace;
        self.log = log;
    }

    /// Level 2, `__mark_chain_precision`: a segment of the path is walked backwards.
    pub(crate) fn log_mp_segment(
        &self,
        frame: usize,
        last: Option<usize>,
        first: usize,
        subseq: Option<usize>,
    ) {
        if self.trace.level2() {
            self.trace.hold(format!(
                "mark_precise: frame{frame}: last_idx {} first_idx {first} subseq_idx {} ",
                idx(last),
                idx(subseq)
            ));
        }
    }

    /// Level 2, `backtrack_insn`: what is still sought, before instruction `at`.
    pub(crate) fn log_mp_insn(&self, frame: usize, regs: u16, stack: u64, at: usize) {
        if !self.trace.level2() {
            return;
        }
        if let Some(insn) = self.insn_at(at) {
            self.trace.hold(format!(
                "mark_precise: frame{frame}: regs={} stack={} before {at}: {}",
                reg_mask(regs),
                stack_mask(stack),
                super::insn_text(insn)
            ));
        }
    }

    /// Level 2: checkpoint `p` got its marks for `frame`; it prints with them.
    pub(crate) fn log_mp_parent(&self, p: usize, frame: usize, regs: u16, stack: u64) {
        if !self.trace.level2() {
            return;
        }
        let Some(e) = self.explored.get(p) else {
            return;
        };
        let st = self.trace.raw(p).unwrap_or(&e.state);
        let Some(fr) = st.frames.get(frame) else {
            return;
        };
        let at = |p: usize| self.insn_at(p).copied();
        let callback = Trace::callback_frame(st, frame, &at);
        let prec = e.prec.get(frame).copied().unwrap_or((0, 0));
        let state = super::fmt::frame_p(
            fr,
            frame,
            super::outer_mask(st, frame, Mask::ALL, &at),
            &st.refs,
            callback,
            &self.opts.maps,
            prec,
        );
        self.trace.hold(format!(
            "mark_precise: frame{frame}: parent state regs={} stack={}: {state}",
            reg_mask(regs),
            stack_mask(stack)
        ));
    }
}

impl Verifier<'_> {
    /// Level 2, `propagate_precision`: per frame, innermost first, the registers and slots
    /// a checkpoint relied on that the pruned path must now keep precise.
    pub(crate) fn log_propagating(&self, frames: usize, regs: &[u16], stack: &[u64]) {
        if !self.trace.level2() {
            return;
        }
        for f in (0..frames.min(regs.len()).min(stack.len())).rev() {
            let mut items: Vec<String> = (0..10)
                .filter(|r| regs[f] & (1 << r) != 0)
                .map(|r| format!("r{r}"))
                .collect();
            items.extend(
                (0..64)
                    .filter(|i| stack[f] & (1 << i) != 0)
                    .map(|i| format!("fp{}", -8 * (i + 1))),
            );
            if !items.is_empty() {
                self.trace
                    .hold(format!("frame {f}: propagating {}", items.join(",")));
            }
        }
    }
}

impl Verifier<'_> {
    /// Before `insn` runs (after its log lines): its stack reads and writes go into the stack
    /// liveness, and a subprogram's exit brings the liveness up to date before returning.
    pub(crate) fn live_insn(&mut self, st: &State, pc: usize, insn: &Insn) {
        let sl = self
            .stack_live
            .get_or_insert_with(|| super::liveness::StackLive::new(self.insns));
        if matches!(
            insn,
            Insn::Load { .. }
                | Insn::Store { .. }
                | Insn::Atomic { .. }
                | Insn::Call(bpfsim_vm::isa::CallTarget::Helper(_))
        ) {
            sl.begin(st, pc, insn, &self.opts.maps);
        } else if let Some(g) = match insn {
            Insn::Call(bpfsim_vm::isa::CallTarget::Local(off)) => {
                usize::try_from(pc as i64 + 1 + *off as i64)
                    .ok()
                    .and_then(|t| self.opts.global_funcs.iter().find(|g| g.slot == t))
            }
            _ => None,
        } {
            let args: Vec<(usize, u32)> = g
                .args
                .iter()
                .enumerate()
                .filter_map(|(i, a)| match a {
                    crate::ArgKind::Mem { size } => Some((i + 1, *size)),
                    _ => None,
                })
                .collect();
            sl.global_call(st, pc, &args);
        } else {
            sl.flush();
        }
        if matches!(insn, Insn::Exit) && st.frames.len() > 1 {
            let mut sl = self.stack_live.take().expect("set above");
            self.live_update(&mut sl, st, true);
            self.stack_live = Some(sl);
        }
    }

    /// A call entered a subprogram (`bpf_reset_live_stack_callchain`).
    pub(crate) fn live_entered(&mut self) {
        if let Some(sl) = self.stack_live.as_mut() {
            sl.entered();
        }
    }

    /// A path ended (an exit, or pruned): the stack liveness of its call chain is brought up to
    /// date before the next path resumes (`bpf_update_live_stack`).
    pub(crate) fn live_path_end(&mut self, st: &State) {
        if let Some(mut sl) = self.stack_live.take() {
            self.live_update(&mut sl, st, false);
            self.stack_live = Some(sl);
        }
    }

    /// `bpf_update_live_stack`, its changes written to the log at level 2.
    fn live_update(&mut self, sl: &mut super::liveness::StackLive, st: &State, exit_insn: bool) {
        let mut log =
            (self.trace.level2() && self.trace.on()).then(|| std::mem::take(&mut self.log));
        {
            let prune = |p: usize| self.is_prune_point(p);
            if let Some(l) = log.as_mut() {
                self.trace.drain(l);
            }
            sl.update(st, exit_insn, &prune, log.as_mut());
        }
        if let Some(l) = log {
            self.log = l;
        }
    }
}
