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
        trace.scratch_insn(st, insn);
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
