//! Runs of one compiled program that share a prepared context: the lean entry for callers that
//! run a program many times (replays, benchmarks, fuzzing).

use bpfsim_vm::{Host, MemoryMap, Outcome, Vm};

use crate::shims::VmCtx;
use crate::JitProgram;

/// What a session's runs on raw memory keep from one to the next once a run set it up
/// ([`JitProgram::keep`]): frame 0's clearing worked out for the session's stack, and the budget.
/// Forgotten whenever the caller may change what it was made from ([`JitSession::vm`],
/// [`JitSession::run`]) or a run built its memory map.
pub(crate) struct Kept {
    pub(crate) reentry: bpfsim_vm::memory::FrameReentry,
    pub(crate) budget: u64,
}

/// Runs of one [`JitProgram`] with a context built once: its stack, its region table (whose
/// rows for the stack's frames stay from run to run) and the context the generated code reads
/// (`VmCtx`), of which a run sets only the arguments, the budget, the rows of the memory it maps
/// and the pointers to its memory map and host, cleared again when the run returns. A run
/// behaves exactly as [`JitProgram::run_with_memory`] on a fresh [`Vm`]: every frame starts
/// zeroed (a frame a run may have written is cleared before the next), and nothing of one run's
/// memory stays reachable from the next.
pub struct JitSession<'p> {
    pub(crate) prog: &'p JitProgram,
    pub(crate) vm: Vm,
    pub(crate) ctx: VmCtx,
    pub(crate) kept: Option<Kept>,
}

// SAFETY: between runs the context's pointers are the program's own interpreter (shared, `Sync`)
// and the session's region table (owned, moved with it); those to a run's memory map and host are
// null outside a run (`JitProgram::enter`); `kept` points only into the session's own stack.
// Nothing is shared with another thread.
unsafe impl Send for JitSession<'_> {}

impl JitSession<'_> {
    /// The stack and region table of the session's runs, and their budget (`vm().budget`).
    pub fn vm(&mut self) -> &mut Vm {
        // The caller may change the budget, the stack or the table: the next run sets up anew.
        self.kept = None;
        &mut self.vm
    }

    /// [`JitProgram::run_with_memory`]: `r1` points at a writable `input` and `r2` is its
    /// length (both 0 when `input` is empty), with the budget of [`Self::vm`].
    #[inline]
    pub fn run_with_memory(&mut self, host: &mut dyn Host, input: &mut [u8]) -> Outcome {
        if self.kept.is_some() && input.len() <= u32::MAX as usize {
            // SAFETY: `kept` was made after a run of `enter_lean` on this VM and context, and
            // forgotten by everything else that used them since (`vm`, `run`, a run that built
            // its map); the input's length is checked above.
            return unsafe {
                self.prog
                    .enter_kept(&mut self.ctx, &mut self.vm, &mut self.kept, host, input)
            };
        }
        self.run_with_memory_cold(host, input)
    }

    /// A run through the full lean entry, after which the next runs can keep what it set.
    #[inline(never)]
    fn run_with_memory_cold(&mut self, host: &mut dyn Host, input: &mut [u8]) -> Outcome {
        let out = self
            .prog
            .enter_lean(&mut self.ctx, &mut self.vm, host, input);
        self.kept = self.prog.keep(&mut self.vm, &self.ctx);
        out
    }

    /// [`JitProgram::run`] on a memory map the caller built (from any [`Vm`]'s stack).
    #[inline]
    pub fn run(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        // This run sets the context's table, stack base and arguments from `mem`.
        self.kept = None;
        self.prog.enter(&mut self.ctx, mem, host, args, budget)
    }
}

/// The run context alone, for runs on the caller's memory maps ([`bpfsim_vm::Executable::prepare`]:
/// a test run's `repeat`).
pub(crate) struct Prepared<'p> {
    pub(crate) prog: &'p JitProgram,
    pub(crate) ctx: VmCtx,
}

impl bpfsim_vm::PreparedRuns for Prepared<'_> {
    fn execute(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        self.prog.enter(&mut self.ctx, mem, host, args, budget)
    }

    fn execute_repeat(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        n: u32,
    ) -> (Outcome, u32) {
        let mut out = Outcome::default();
        let k = self
            .prog
            .enter_repeat(&mut self.ctx, mem, host, args, budget, n, &mut out);
        (out, k)
    }

    fn execute_into(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        out: &mut Outcome,
    ) {
        self.prog
            .enter_into(&mut self.ctx, mem, host, args, budget, out)
    }

    fn execute_repeat_into(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        n: u32,
        out: &mut Outcome,
    ) -> u32 {
        self.prog
            .enter_repeat(&mut self.ctx, mem, host, args, budget, n, out)
    }
}
