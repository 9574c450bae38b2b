//! The reference interpreter. Every other engine is tested against it.

mod op;
#[cfg(test)]
mod tests;

use op::{Op, K};

use crate::host::{HelperStop, Host};
use crate::isa::{AtomicOp, Insn, Size};
use crate::memory::{
    frame_pointer, MemFault, MemoryMap, RegionTable, Stack, FRAME_SIZE, MAX_FRAMES,
};
use crate::program::Program;
use crate::trap::{Trap, TrapCode};

/// Default instruction budget of a run: generous for real programs (the kernel's verifier bounds a
/// program to 1M processed instructions), small enough to stop a runaway loop within milliseconds.
pub const DEFAULT_BUDGET: u64 = 10_000_000;

/// The high half of a subprogram's address as `lddw rN, func` loads it (its low half is the
/// slot): a region that never maps, so a code pointer is useless as a data pointer.
pub const FUNC_TAG: u64 = 0xfffe_0000 << 32;

/// A frame below the one [`Interpreter::finish_budget`] starts in: the slot its call returns
/// to and the `r6`-`r10` it saved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub ret: usize,
    pub saved: [u64; 5],
}

/// A program translated for the interpreter. Immutable: one can serve any number of runs.
#[derive(Clone, Debug)]
pub struct Interpreter {
    /// One op per slot and a trap after the last (see `op::prepare`), with pairs fused.
    ops: Vec<Op>,
    /// The same without fusion, for the exact level (see `level`).
    plain: Vec<Op>,
    /// Slots of the program.
    slots: usize,
    /// Whether any instruction can write guest memory (store, atomic, helper call).
    may_write: bool,
    /// How many bytes at the top of frame 0 a run can reach: all of it unless the verifier
    /// proved fewer ([`Interpreter::with_frame_proof`]); only those are cleared at entry.
    main_bytes: usize,
    /// The verifier proved that a run reaches no frame but those it enters, so the frames past
    /// 0 an earlier run wrote need no clearing at entry (`MemoryMap::enter_main_reaching`).
    proven_frames: bool,
}

/// An engine that runs a program: the interpreter, or compiled code (bpfsim-jit), with the same
/// observable results.
pub trait Executable: Send + Sync {
    fn execute(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome;

    /// For a caller about to run this program many times (a test run's `repeat`): runs that
    /// keep what the engine prepares for a run from one to the next (the JIT's run context),
    /// with exactly the results of [`Self::execute`]. `None` when the engine has nothing to keep.
    fn prepare(&self) -> Option<Box<dyn PreparedRuns + '_>> {
        None
    }
}

/// Runs of one program that share what the engine prepared ([`Executable::prepare`]).
pub trait PreparedRuns {
    /// [`Executable::execute`].
    fn execute(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome;

    /// Up to `n` runs (`n` at least 1) one after the other, each as [`Self::execute`] with the
    /// same arguments and budget, the host's [`Host::begin_run`] called before every run but the
    /// first: a `repeat` batch of a test run. Stops after the first run that asks for a tail
    /// call (the caller follows it). Returns the last run's outcome and the number of runs.
    /// Engines override it to set a run up once for the whole batch, as the kernel's test-run
    /// loop does.
    fn execute_repeat(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        n: u32,
    ) -> (Outcome, u32) {
        let mut k = 0;
        loop {
            if k > 0 {
                host.begin_run();
            }
            let out = self.execute(mem, host, args, budget);
            k += 1;
            if out.tail_call.is_some() || k >= n {
                return (out, k);
            }
        }
    }

    /// [`Self::execute`], the outcome written to `out`. A caller that keeps one outcome
    /// across runs (a test run's chain of tail calls) uses these `_into` forms: a returned
    /// outcome reaches it through memory, and its copy reads in 16-byte loads what the engine
    /// wrote in narrower stores, which the CPU cannot forward (a stall at every entry of a
    /// tail call's target, and at every batch's end). Engines override them to write in place.
    fn execute_into(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        out: &mut Outcome,
    ) {
        *out = self.execute(mem, host, args, budget);
    }

    /// [`Self::execute_repeat`], the last run's outcome written to `out` (see
    /// [`Self::execute_into`]); returns the number of runs.
    fn execute_repeat_into(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        n: u32,
        out: &mut Outcome,
    ) -> u32 {
        let (o, k) = self.execute_repeat(mem, host, args, budget, n);
        *out = o;
        k
    }
}

impl Executable for Interpreter {
    fn execute(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        self.run(mem, host, args, budget)
    }

    fn prepare(&self) -> Option<Box<dyn PreparedRuns + '_>> {
        Some(Box::new(Batch(self)))
    }
}

/// The interpreter's runs of a batch ([`Executable::prepare`]): [`PreparedRuns::execute_repeat`]'s
/// loop then has the run inlined, so that the arguments are read once per batch rather than
/// copied into each run through a call (whose 16-byte loads of the caller's 8-byte stores the
/// CPU could not forward, a stall as long as an empty run).
struct Batch<'i>(&'i Interpreter);

impl PreparedRuns for Batch<'_> {
    /// Inlined into the default `execute_repeat`'s loop always: left to the heuristics, a small
    /// change elsewhere in the run made it a call again (an empty run 10.5 -> 17.5 ns).
    #[inline(always)]
    fn execute(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        self.0.run_in::<false>(mem, host, args, budget)
    }

    /// As the default, but frame 0 is entered once and each later run clears it as an entry
    /// would through pointers worked out once ([`MemoryMap::reentry`]), as the JIT's batch does;
    /// one inlined run for all.
    #[inline(always)]
    fn execute_repeat(
        &mut self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
        n: u32,
    ) -> (Outcome, u32) {
        let i = self.0;
        mem.enter_main_reaching(i.may_write, i.main_bytes, i.proven_frames);
        let again = mem.reentry(i.may_write, i.main_bytes, i.proven_frames);
        let mut k = 0;
        loop {
            if k > 0 {
                host.begin_run();
                // SAFETY: this program entered frame 0 through `mem` (above) with the arguments
                // `again` was made with, and no other program has run since (a tail call ends
                // the batch); no run is in progress.
                unsafe { again.apply() };
            }
            let out = i.outcome::<false, true>(0, 0, mem, host, args, budget, budget);
            k += 1;
            if out.tail_call.is_some() || k >= n {
                return (out, k);
            }
        }
    }
}

/// How a run ended, with the number of instructions it executed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Outcome {
    pub result: Result<u64, Trap>,
    pub insns: u64,
    /// The program a helper asked to continue in (`bpf_tail_call`): the run ended there and the
    /// caller starts that program with the same context. `result` is then `Ok(0)`.
    pub tail_call: Option<u32>,
}

impl Default for Outcome {
    /// `Ok(0)` after no instruction.
    fn default() -> Outcome {
        Outcome {
            result: Ok(0),
            insns: 0,
            tail_call: None,
        }
    }
}

/// A host behind a reference, so that any host, sized or not, can be used as `&mut dyn Host`.
struct HostRef<'h, H: ?Sized>(&'h mut H);

impl<H: Host + ?Sized> Host for HostRef<'_, H> {
    #[inline]
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        self.0.call_helper(id, args, mem)
    }

    #[inline]
    fn load_packet(
        &mut self,
        mem: &mut MemoryMap<'_>,
        offset: i64,
        size: Size,
    ) -> Result<Option<u64>, HelperStop> {
        self.0.load_packet(mem, offset, size)
    }

    #[inline]
    fn begin_run(&mut self) {
        self.0.begin_run()
    }
}

/// What every level of a run shares, behind one pointer so that the interpreter's loop keeps its
/// registers for the program's state. `left` first, at the address of the whole: a level then
/// keeps one pointer for both in its frame rather than two.
#[repr(C)]
struct Env<'e, 'm> {
    /// Instructions the budget still allows.
    left: u64,
    mem: &'e mut MemoryMap<'m>,
    /// Behind a vtable: the interpreter's loop is compiled once, here, the same for every host,
    /// and no host's inlined helper code can take its registers.
    host: &'e mut dyn Host,
    /// The frame of the level running: here rather than a level's argument, so that the level
    /// does not keep it (and the depth check's bound) in its own frame, two words written on
    /// every entry for the few runs that make a local call or a callback.
    depth: usize,
    /// Whether the program ended inside a level rather than at its frame's `exit`. Kept here
    /// rather than in each level's return value, so that a level returns `Result<u64, Trap>`,
    /// the run's result as it is, without a conversion. (The run's whole budget, which the
    /// budget trap reports, is not here either: the run's entry writes it into the trap, so that
    /// a run sets up one field fewer.)
    halt: Halt,
}

/// How a program ended inside a level ([`Env::halt`]): every level then returns at once with
/// the value it got. One field, so that a run starts it with one store.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Halt {
    /// Not yet: levels return at their frame's `exit`.
    Running,
    /// A helper's exit, or a legacy packet load past the packet.
    Exited,
    /// A tail call, to this program.
    TailCall(u32),
}

impl Halt {
    /// The program a run with this result continues in: a tail call's, unless a trap followed.
    #[inline(always)]
    fn tail_call(self, result: &Result<u64, Trap>) -> Option<u32> {
        match (self, result) {
            (Halt::TailCall(t), Ok(_)) => Some(t),
            _ => None,
        }
    }
}

/// The budget trap with the run's whole budget as its detail: levels leave it 0 (they do not
/// know it) and each entry that starts a run's count writes it here.
#[inline(always)]
fn budget_detail(result: &mut Result<u64, Trap>, budget: u64) {
    if let Err(t) = result {
        if t.code == TrapCode::Budget {
            t.detail = budget;
        }
    }
}

fn mem_trap(f: MemFault, pc: usize) -> Trap {
    Trap {
        code: if f.write {
            TrapCode::MemoryWrite
        } else {
            TrapCode::MemoryRead
        },
        pc,
        detail: f.addr,
        size: f.size,
    }
}

impl Interpreter {
    pub fn new(prog: &Program) -> Interpreter {
        let may_write = prog.insns().iter().any(|i| {
            matches!(
                i,
                Insn::Store { .. } | Insn::Atomic { .. } | Insn::Call(_) | Insn::Callx { .. }
            )
        });
        let plain = op::prepare(prog);
        Interpreter {
            ops: op::fuse(&plain),
            plain,
            slots: prog.slots(),
            may_write,
            main_bytes: FRAME_SIZE,
            proven_frames: false,
        }
    }

    /// This program as the verifier proved it, from an accepting verdict's `frame_bytes` (each
    /// subprogram reached, by first slot, and the bytes of its frame any path reaches): a run
    /// clears only the top bytes of frame 0 the main program reaches, and leaves the frames past
    /// 0 as an earlier run wrote them, as the JIT does with the same proof. Sound only for the
    /// very instructions the verifier accepted: no run then reads a byte of a frame it did not
    /// enter (each call clears its callee's frame) nor below its proven bytes, so every run
    /// reads what a run on a fresh stack reads. A verdict that says nothing of slot 0 (a
    /// rejected program's is empty) proves nothing, and the interpreter stays as it was.
    pub fn with_frame_proof(mut self, frame_bytes: &[(usize, u32)]) -> Interpreter {
        if let Some(&(0, n)) = frame_bytes.first() {
            self.proven_frames = true;
            self.main_bytes = (n as usize).min(FRAME_SIZE).next_multiple_of(8);
        }
        self
    }

    /// Whether runs skip clearing the frames past 0 ([`Self::with_frame_proof`]), and how many
    /// bytes at the top of frame 0 an entry clears.
    pub fn frame_entry(&self) -> (bool, usize) {
        (self.proven_frames, self.main_bytes)
    }

    /// Run from slot 0 with `r1..r5 = args` and `r10` at the top of frame 0's stack. The program
    /// sees only `mem`; `budget` bounds the number of instructions executed.
    /// Inlined, as the set-up it leads to is: called, its arguments went through memory, and
    /// the wide reloads of their narrow stores stalled (an empty run 9 -> 13 ns).
    #[inline(always)]
    pub fn run<H: Host + ?Sized>(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut H,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        self.run_in::<false>(mem, &mut HostRef(host), args, budget)
    }

    /// [`Self::run`] with the budget paid per instruction and no fused ops anywhere: the plain
    /// semantics, against which the tests check the fast paths.
    #[cfg(test)]
    fn run_exact<H: Host + ?Sized>(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut H,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        self.run_in::<true>(mem, &mut HostRef(host), args, budget)
    }

    #[inline(always)]
    fn run_in<const EXACT: bool>(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        self.outcome::<EXACT, false>(0, 0, mem, host, args, budget, budget)
    }

    /// [`Self::exec`] with `steps` instructions to spend, as an [`Outcome`] (its `insns` those
    /// spent).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn outcome<const EXACT: bool, const ENTERED: bool>(
        &self,
        start: usize,
        base: usize,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        steps: u64,
        budget: u64,
    ) -> Outcome {
        let mut left = steps;
        let mut out = Outcome::default();
        self.exec::<EXACT, ENTERED>(start, base, mem, host, args, &mut left, &mut out);
        budget_detail(&mut out.result, budget);
        out.insns = steps - left;
        out
    }

    /// Execute at most `steps` instructions from slot `pc` with registers `regs`, in frame
    /// `depth`, then stop with the budget trap at the next instruction, as a run of total budget
    /// `budget` whose budget ran out there would; or earlier, as the instructions decide (a
    /// helper's exit, a fault). `insns` counts the instructions executed here. The JIT counts
    /// its budget per block and hands the last, partial block over to this, so that its runs
    /// stop exactly where the interpreter's do.
    ///
    /// `callers` are the frames below `depth`, outermost first (`depth` of them; fewer are
    /// taken as none below): where each called the next (the slot after its call) and the
    /// `r6`-`r10` it saved. An `exit` of frame `depth` then returns to its caller, as a run
    /// that made those calls itself would, rather than ending the run.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_budget(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        regs: [u64; 11],
        pc: usize,
        depth: usize,
        callers: &[Caller],
        steps: u64,
        budget: u64,
    ) -> Outcome {
        assert!(
            pc < self.slots,
            "finish_budget at slot {pc}, outside the program"
        );
        let mut r = [0u64; 16];
        r[..11].copy_from_slice(&regs);
        let mut env = Env {
            mem,
            host,
            left: steps,
            depth,
            halt: Halt::Running,
        };
        let (mut start, mut level) = (pc, depth);
        let result = loop {
            env.depth = level;
            let out = self.level::<false>(&mut r, start, &mut env);
            match (out, callers.get(level.wrapping_sub(1))) {
                // The frame returned: on in its caller, from the slot after the call (as
                // `call_local` does; the call's own level would pay for the block there).
                (Ok(_), Some(c))
                    if level > 0 && env.halt == Halt::Running && c.ret < self.slots =>
                {
                    r[6..11].copy_from_slice(&c.saved);
                    start = c.ret;
                    level -= 1;
                }
                (out, _) => break out,
            }
        };
        let mut result = result;
        budget_detail(&mut result, budget);
        Outcome {
            tail_call: env.halt.tail_call(&result),
            result,
            insns: steps - env.left,
        }
    }

    /// The callbacks of a helper, for another engine (the JIT) whose helper asked for callbacks
    /// (`bpf_loop`, `bpf_for_each_map_elem`, ...): the interpreter runs them, from frame
    /// `depth + 1`, with the budget `left` (updated) of a run of total `budget`; `pc` and `helper`
    /// name the calling instruction in a trap.
    #[allow(clippy::too_many_arguments)]
    pub fn run_callbacks(
        &self,
        func: u64,
        depth: usize,
        calls: &mut dyn Iterator<Item = [u64; 5]>,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        left: &mut u64,
        budget: u64,
        pc: usize,
        helper: u64,
    ) -> Result<u64, Trap> {
        let mut result =
            self.callbacks_in::<false>(func, depth, calls, mem, host, left, pc, helper);
        budget_detail(&mut result, budget);
        result
    }

    /// Call the subprogram at code address `func` one frame below `depth` with each argument set,
    /// stopping after a call that returns non-zero; returns the number of calls made. Each call
    /// runs as `exec::<EXACT>`: the interpreter's own levels pass theirs, other engines' helpers
    /// come through [`Self::run_callbacks`]. A budget trap's detail is left to the run's entry.
    #[allow(clippy::too_many_arguments)]
    fn callbacks_in<const EXACT: bool>(
        &self,
        func: u64,
        depth: usize,
        calls: &mut dyn Iterator<Item = [u64; 5]>,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        left: &mut u64,
        pc: usize,
        helper: u64,
    ) -> Result<u64, Trap> {
        let entry = (func & 0xffff_ffff) as usize;
        if func & !0xffff_ffff != FUNC_TAG || entry >= self.slots {
            return Err(Trap::new(TrapCode::HelperFault, pc, helper));
        }
        if depth + 1 >= MAX_FRAMES {
            return Err(Trap::new(TrapCode::CallDepth, pc, MAX_FRAMES as u64));
        }
        let mut made = 0;
        for args in calls {
            made += 1;
            let mut out = Outcome::default();
            self.exec::<EXACT, false>(entry, depth + 1, mem, host, args, left, &mut out);
            let ret = out.result?;
            if ret != 0 {
                break;
            }
        }
        Ok(made)
    }

    /// Run from slot `start` in frame `base` (0 for the program, deeper for a callback) until
    /// that frame exits: `r0` or the trap, and the program a tail call continues in.
    /// Inlined into its callers so that the arguments go to the registers without a round trip
    /// through memory (a wide reload of narrow stores stalls store forwarding).
    /// `ENTERED`: frame 0 is ready (a batch's runs, [`Batch`]), the run does not enter it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn exec<const EXACT: bool, const ENTERED: bool>(
        &self,
        start: usize,
        base: usize,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        left: &mut u64,
        out: &mut Outcome,
    ) {
        // 16 registers so that a 4-bit index needs no bounds check; only r0-r10 are ever named.
        // A fresh frame with the arguments (another engine's hand-over, with registers as it
        // left them, goes through `finish_budget`), written once each: zeroed first and then
        // given the arguments, the first six were stored twice.
        let [a1, a2, a3, a4, a5] = args;
        let fp = frame_pointer(base);
        let mut r = [0, a1, a2, a3, a4, a5, 0, 0, 0, 0, fp, 0, 0, 0, 0, 0];
        if ENTERED {
            // The caller made frame 0 ready.
        } else if base == 0 {
            mem.enter_main_reaching(self.may_write, self.main_bytes, self.proven_frames);
        } else {
            mem.clear_frame(base);
        }
        let mut env = Env {
            mem,
            host,
            left: *left,
            depth: base,
            halt: Halt::Running,
        };
        // Written in place: `level` then writes the result where the caller reads it. A result
        // returned and moved was read back in 16-byte loads from the 8-byte (and narrower)
        // stores that wrote it, which the CPU cannot forward (a stall as long as an empty run).
        out.result = self.level::<EXACT>(&mut r, start, &mut env);
        *left = env.left;
        // A tail call halts with `Ok`; a trap never follows it.
        out.tail_call = env.halt.tail_call(&out.result);
    }

    /// A local call from frame `depth` to slot `callee`, as a nested level. Out of line: inlined,
    /// the callee's frame number and frame pointer were computed on entry to every level, a
    /// cost paid by every run, most of which make no local call.
    #[inline(never)]
    fn call_local<const EXACT: bool>(
        &self,
        r: &mut [u64; 16],
        callee: usize,
        env: &mut Env<'_, '_>,
    ) -> Result<u64, Trap> {
        let depth = env.depth;
        // The callee may change r6-r10; the caller gets them back on return.
        let saved = [r[6], r[7], r[8], r[9], r[10]];
        env.mem.clear_frame(depth + 1);
        r[10] = frame_pointer(depth + 1);
        env.depth = depth + 1;
        let r0 = self.level::<EXACT>(r, callee, env);
        env.depth = depth;
        let r0 = r0?;
        if env.halt == Halt::Running {
            r[6..11].copy_from_slice(&saved);
        }
        Ok(r0)
    }

    /// Execute frame `env.depth` from slot `start` until it exits; a local call runs the callee as a
    /// nested level, so a frame's saved registers live in this function's own Rust frame.
    ///
    /// The budget: `*left` instructions may still execute. Unless `EXACT`, a run (see
    /// [`Op::run`]) is paid for in full where it is entered, and the instructions of it not
    /// executed are given back when a trap or a helper ends the program inside it, so the count
    /// stays exact. A run the budget cannot pay for is executed by the `EXACT` level, which pays
    /// per instruction and stops at the first one it cannot pay for, exactly as a run paid per
    /// instruction would. (Calls from an `EXACT` level are `EXACT` too; in a run they are never
    /// reached, as a call ends the run the budget could not pay for, but tests run whole programs
    /// `EXACT`, as the plain semantics.)
    fn level<const EXACT: bool>(
        &self,
        r: &mut [u64; 16],
        start: usize,
        env: &mut Env<'_, '_>,
    ) -> Result<u64, Trap> {
        let ops = if EXACT {
            &self.plain[..]
        } else {
            &self.ops[..]
        };
        assert!(start <= self.slots);
        // The next op to execute, as a pointer so that a step is a load and an increment. It only
        // ever points at `ops[i]` with `i <= self.slots` (see `op::prepare`): `start` is a slot of
        // the program (checked by every caller) and each step moves to a checked target, the slot
        // after a call, or at most one past the last slot, onto a trap that does not move.
        let base = ops.as_ptr();
        let mut ip = base.wrapping_add(start);
        let mut n = env.left;
        // The slot `ip` points at.
        macro_rules! pc {
            () => {
                (ip as usize - base as usize) / std::mem::size_of::<Op>()
            };
        }
        // The op at `ip`, or `$back` ops before it.
        macro_rules! at {
            ($back:expr) => {{
                let p = ip.wrapping_sub($back);
                debug_assert!(p >= base && p < base.wrapping_add(ops.len()));
                // SAFETY: `p` points at `ops[i]` with `i <= self.slots < ops.len()`, as argued
                // above (`$back` is 1 only after a step, back to the op being executed).
                unsafe { &*p }
            }};
        }
        // Store the budget left for the caller when the program stops at the op being executed,
        // giving back the instructions after it that its run paid for.
        macro_rules! settle {
            () => {
                env.left = if EXACT {
                    n
                } else {
                    n + (at!(1).run as u64 - 1)
                };
            };
        }
        // Pay for the run entered at `ip`, or finish it (and the program) per instruction.
        macro_rules! charge {
            () => {
                if !EXACT {
                    let cost = at!(0).run as u64;
                    if n < cost {
                        env.left = n;
                        return self.level::<true>(r, pc!(), env);
                    }
                    n -= cost;
                }
            };
        }
        macro_rules! trap {
            ($code:expr, $detail:expr) => {{
                settle!();
                return Err(Trap::new($code, pc!() - 1, $detail));
            }};
        }
        macro_rules! mem {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(f) => {
                        settle!();
                        return Err(mem_trap(f, pc!() - 1));
                    }
                }
            };
        }
        macro_rules! jump_if {
            ($cond:expr, $target:expr) => {{
                if $cond {
                    ip = base.wrapping_add($target as usize);
                }
                charge!();
            }};
        }
        // Past the second slot of a fused pair or of `lddw`.
        macro_rules! skip {
            () => {
                ip = ip.wrapping_add(1)
            };
        }
        charge!();
        loop {
            let op = at!(0);
            ip = ip.wrapping_add(1);
            if EXACT {
                if n == 0 {
                    env.left = 0;
                    // The detail (the run's whole budget) is the entry's to write.
                    return Err(Trap::new(TrapCode::Budget, pc!() - 1, 0));
                }
                n -= 1;
            }
            // Operands are read in the arms that use them, so that the dispatch itself stays short.
            macro_rules! d {
                () => {
                    (op.dst & 15) as usize
                };
            }
            macro_rules! s {
                () => {
                    (op.src & 15) as usize
                };
            }
            macro_rules! imm {
                () => {
                    op.imm as i64 as u64
                };
            }
            let addr = |base: u64| base.wrapping_add(op.off as i64 as u64);
            // A fused `mov rD, rS; sh rD, imm; op rS, rD`: `rD != rS`, so `rS` is read once.
            macro_rules! shift_combine {
                ($sh:tt, $op:tt) => {{
                    let x = r[s!()];
                    let t = x $sh (imm!() & 63);
                    r[s!()] = combine!(x, $op, t);
                    r[d!()] = t;
                    skip!();
                    skip!();
                }};
            }
            // The same with the result in `rD`: `rD = (rS sh imm) op rS`.
            macro_rules! shift_combine_t {
                ($sh:tt, $op:tt) => {{
                    let x = r[s!()];
                    r[d!()] = combine!(x $sh (imm!() & 63), $op, x);
                    skip!();
                    skip!();
                }};
            }
            macro_rules! combine {
                ($x:expr, +, $t:expr) => {
                    $x.wrapping_add($t)
                };
                ($x:expr, $op:tt, $t:expr) => {
                    $x $op $t
                };
            }
            // A fused conditional jump and the `ja` after it: each pays for the run it enters, as
            // two steps would.
            macro_rules! jump_else_ja {
                ($cond:expr) => {{
                    if $cond {
                        ip = base.wrapping_add(op.off as usize);
                        charge!();
                    } else {
                        // `ip` is at the `ja`, a run of one.
                        charge!();
                        ip = base.wrapping_add(at!(0).off as usize);
                        charge!();
                    }
                }};
            }
            // A fused `rD = rS + imm` and conditional jump on `rD` against `r[aux]`, read after `rD`
            // is written (it may be `rD`).
            macro_rules! mov_add_jump_if {
                (|$v:ident, $x:ident| $cond:expr) => {{
                    let $v = r[s!()].wrapping_add(imm!());
                    r[d!()] = $v;
                    let $x = r[(op.aux & 15) as usize];
                    skip!();
                    skip!();
                    jump_if!($cond, op.off)
                }};
            }
            // A fused `add rD, aux` and conditional jump: the sum stays in a host register.
            macro_rules! add_jump_if {
                (|$v:ident| $cond:expr) => {{
                    let $v = r[d!()].wrapping_add(op.aux as i8 as i64 as u64);
                    r[d!()] = $v;
                    skip!();
                    jump_if!($cond, op.off)
                }};
            }
            match op.kind {
                K::Add64I => r[d!()] = r[d!()].wrapping_add(imm!()),
                K::Add64R => r[d!()] = r[d!()].wrapping_add(r[s!()]),
                K::Sub64I => r[d!()] = r[d!()].wrapping_sub(imm!()),
                K::Sub64R => r[d!()] = r[d!()].wrapping_sub(r[s!()]),
                K::Mul64I => r[d!()] = r[d!()].wrapping_mul(imm!()),
                K::Mul64R => r[d!()] = r[d!()].wrapping_mul(r[s!()]),
                K::Div64I => r[d!()] = div64(r[d!()], imm!()),
                K::Div64R => r[d!()] = div64(r[d!()], r[s!()]),
                K::SDiv64I => r[d!()] = sdiv64(r[d!()], imm!()),
                K::SDiv64R => r[d!()] = sdiv64(r[d!()], r[s!()]),
                K::Or64I => r[d!()] |= imm!(),
                K::Or64R => r[d!()] |= r[s!()],
                K::And64I => r[d!()] &= imm!(),
                K::And64R => r[d!()] &= r[s!()],
                K::Lsh64I => r[d!()] <<= imm!() & 63,
                K::Lsh64R => r[d!()] <<= r[s!()] & 63,
                K::Rsh64I => r[d!()] >>= imm!() & 63,
                K::Rsh64R => r[d!()] >>= r[s!()] & 63,
                K::Mod64I => r[d!()] = mod64(r[d!()], imm!()),
                K::Mod64R => r[d!()] = mod64(r[d!()], r[s!()]),
                K::SMod64I => r[d!()] = smod64(r[d!()], imm!()),
                K::SMod64R => r[d!()] = smod64(r[d!()], r[s!()]),
                K::Xor64I => r[d!()] ^= imm!(),
                K::Xor64R => r[d!()] ^= r[s!()],
                K::Mov64I => r[d!()] = imm!(),
                K::Mov64R => r[d!()] = r[s!()],
                K::Arsh64I => r[d!()] = ((r[d!()] as i64) >> (imm!() & 63)) as u64,
                K::Arsh64R => r[d!()] = ((r[d!()] as i64) >> (r[s!()] & 63)) as u64,

                K::Add32I => r[d!()] = (r[d!()] as u32).wrapping_add(imm!() as u32) as u64,
                K::Add32R => r[d!()] = (r[d!()] as u32).wrapping_add(r[s!()] as u32) as u64,
                K::Sub32I => r[d!()] = (r[d!()] as u32).wrapping_sub(imm!() as u32) as u64,
                K::Sub32R => r[d!()] = (r[d!()] as u32).wrapping_sub(r[s!()] as u32) as u64,
                K::Mul32I => r[d!()] = (r[d!()] as u32).wrapping_mul(imm!() as u32) as u64,
                K::Mul32R => r[d!()] = (r[d!()] as u32).wrapping_mul(r[s!()] as u32) as u64,
                K::Div32I => r[d!()] = div32(r[d!()], imm!()),
                K::Div32R => r[d!()] = div32(r[d!()], r[s!()]),
                K::SDiv32I => r[d!()] = sdiv32(r[d!()], imm!()),
                K::SDiv32R => r[d!()] = sdiv32(r[d!()], r[s!()]),
                K::Or32I => r[d!()] = (r[d!()] as u32 | imm!() as u32) as u64,
                K::Or32R => r[d!()] = (r[d!()] as u32 | r[s!()] as u32) as u64,
                K::And32I => r[d!()] = (r[d!()] as u32 & imm!() as u32) as u64,
                K::And32R => r[d!()] = (r[d!()] as u32 & r[s!()] as u32) as u64,
                K::Lsh32I => r[d!()] = ((r[d!()] as u32) << (imm!() & 31)) as u64,
                K::Lsh32R => r[d!()] = ((r[d!()] as u32) << (r[s!()] & 31)) as u64,
                K::Rsh32I => r[d!()] = ((r[d!()] as u32) >> (imm!() & 31)) as u64,
                K::Rsh32R => r[d!()] = ((r[d!()] as u32) >> (r[s!()] & 31)) as u64,
                K::Mod32I => r[d!()] = mod32(r[d!()], imm!()),
                K::Mod32R => r[d!()] = mod32(r[d!()], r[s!()]),
                K::SMod32I => r[d!()] = smod32(r[d!()], imm!()),
                K::SMod32R => r[d!()] = smod32(r[d!()], r[s!()]),
                K::Xor32I => r[d!()] = (r[d!()] as u32 ^ imm!() as u32) as u64,
                K::Xor32R => r[d!()] = (r[d!()] as u32 ^ r[s!()] as u32) as u64,
                K::Mov32I => r[d!()] = imm!() as u32 as u64,
                K::Mov32R => r[d!()] = r[s!()] as u32 as u64,
                K::Arsh32I => r[d!()] = ((r[d!()] as i32) >> (imm!() & 31)) as u32 as u64,
                K::Arsh32R => r[d!()] = ((r[d!()] as i32) >> (r[s!()] & 31)) as u32 as u64,

                K::Neg64 => r[d!()] = r[d!()].wrapping_neg(),
                K::Neg32 => r[d!()] = (r[d!()] as u32).wrapping_neg() as u64,
                K::MovSx64B => r[d!()] = r[s!()] as i8 as i64 as u64,
                K::MovSx64H => r[d!()] = r[s!()] as i16 as i64 as u64,
                K::MovSx64W => r[d!()] = r[s!()] as i32 as i64 as u64,
                K::MovSx32B => r[d!()] = r[s!()] as i8 as i32 as u32 as u64,
                K::MovSx32H => r[d!()] = r[s!()] as i16 as i32 as u32 as u64,
                K::Le16 => r[d!()] = (r[d!()] as u16).to_le() as u64,
                K::Le32 => r[d!()] = (r[d!()] as u32).to_le() as u64,
                K::Le64 => r[d!()] = r[d!()].to_le(),
                K::Be16 => r[d!()] = (r[d!()] as u16).to_be() as u64,
                K::Be32 => r[d!()] = (r[d!()] as u32).to_be() as u64,
                K::Be64 => r[d!()] = r[d!()].to_be(),
                K::Swap16 => r[d!()] = (r[d!()] as u16).swap_bytes() as u64,
                K::Swap32 => r[d!()] = (r[d!()] as u32).swap_bytes() as u64,
                K::Swap64 => r[d!()] = r[d!()].swap_bytes(),
                K::LdImm64 => {
                    // The high half is in the second slot, which `ip` now points at.
                    r[d!()] = op.imm as u32 as u64 | (at!(0).imm as u32 as u64) << 32;
                    skip!();
                }

                K::LdxB => r[d!()] = mem!(env.mem.load(addr(r[s!()]), Size::B)),
                K::LdxH => r[d!()] = mem!(env.mem.load(addr(r[s!()]), Size::H)),
                K::LdxW => r[d!()] = mem!(env.mem.load(addr(r[s!()]), Size::W)),
                K::LdxDW => r[d!()] = mem!(env.mem.load(addr(r[s!()]), Size::DW)),
                K::LdxSB => {
                    r[d!()] = mem!(env.mem.load(addr(r[s!()]), Size::B)) as i8 as i64 as u64
                }
                K::LdxSH => {
                    r[d!()] = mem!(env.mem.load(addr(r[s!()]), Size::H)) as i16 as i64 as u64
                }
                K::LdxSW => {
                    r[d!()] = mem!(env.mem.load(addr(r[s!()]), Size::W)) as i32 as i64 as u64
                }
                K::StB => mem!(env.mem.store(addr(r[d!()]), Size::B, imm!())),
                K::StH => mem!(env.mem.store(addr(r[d!()]), Size::H, imm!())),
                K::StW => mem!(env.mem.store(addr(r[d!()]), Size::W, imm!())),
                K::StDW => mem!(env.mem.store(addr(r[d!()]), Size::DW, imm!())),
                K::StxB => mem!(env.mem.store(addr(r[d!()]), Size::B, r[s!()])),
                K::StxH => mem!(env.mem.store(addr(r[d!()]), Size::H, r[s!()])),
                K::StxW => mem!(env.mem.store(addr(r[d!()]), Size::W, r[s!()])),
                K::StxDW => mem!(env.mem.store(addr(r[d!()]), Size::DW, r[s!()])),
                K::Atomic => {
                    let a = addr(r[d!()]);
                    mem!(atomic(env.mem, r, d!(), s!(), *op, a))
                }

                K::Ja => jump_if!(true, op.off),
                K::Jeq64I => jump_if!(r[d!()] == imm!(), op.off),
                K::Jeq64R => jump_if!(r[d!()] == r[s!()], op.off),
                K::Jgt64I => jump_if!(r[d!()] > imm!(), op.off),
                K::Jgt64R => jump_if!(r[d!()] > r[s!()], op.off),
                K::Jge64I => jump_if!(r[d!()] >= imm!(), op.off),
                K::Jge64R => jump_if!(r[d!()] >= r[s!()], op.off),
                K::Jset64I => jump_if!(r[d!()] & imm!() != 0, op.off),
                K::Jset64R => jump_if!(r[d!()] & r[s!()] != 0, op.off),
                K::Jne64I => jump_if!(r[d!()] != imm!(), op.off),
                K::Jne64R => jump_if!(r[d!()] != r[s!()], op.off),
                K::Jsgt64I => jump_if!((r[d!()] as i64) > imm!() as i64, op.off),
                K::Jsgt64R => jump_if!((r[d!()] as i64) > r[s!()] as i64, op.off),
                K::Jsge64I => jump_if!((r[d!()] as i64) >= imm!() as i64, op.off),
                K::Jsge64R => jump_if!((r[d!()] as i64) >= r[s!()] as i64, op.off),
                K::Jlt64I => jump_if!(r[d!()] < imm!(), op.off),
                K::Jlt64R => jump_if!(r[d!()] < r[s!()], op.off),
                K::Jle64I => jump_if!(r[d!()] <= imm!(), op.off),
                K::Jle64R => jump_if!(r[d!()] <= r[s!()], op.off),
                K::Jslt64I => jump_if!((r[d!()] as i64) < imm!() as i64, op.off),
                K::Jslt64R => jump_if!((r[d!()] as i64) < r[s!()] as i64, op.off),
                K::Jsle64I => jump_if!((r[d!()] as i64) <= imm!() as i64, op.off),
                K::Jsle64R => jump_if!((r[d!()] as i64) <= r[s!()] as i64, op.off),
                K::Jeq32I => jump_if!(r[d!()] as u32 == imm!() as u32, op.off),
                K::Jeq32R => jump_if!(r[d!()] as u32 == r[s!()] as u32, op.off),
                K::Jgt32I => jump_if!(r[d!()] as u32 > imm!() as u32, op.off),
                K::Jgt32R => jump_if!(r[d!()] as u32 > r[s!()] as u32, op.off),
                K::Jge32I => jump_if!(r[d!()] as u32 >= imm!() as u32, op.off),
                K::Jge32R => jump_if!(r[d!()] as u32 >= r[s!()] as u32, op.off),
                K::Jset32I => jump_if!(r[d!()] as u32 & imm!() as u32 != 0, op.off),
                K::Jset32R => jump_if!(r[d!()] as u32 & r[s!()] as u32 != 0, op.off),
                K::Jne32I => jump_if!(r[d!()] as u32 != imm!() as u32, op.off),
                K::Jne32R => jump_if!(r[d!()] as u32 != r[s!()] as u32, op.off),
                K::Jsgt32I => jump_if!(r[d!()] as i32 > imm!() as i32, op.off),
                K::Jsgt32R => jump_if!(r[d!()] as i32 > r[s!()] as i32, op.off),
                K::Jsge32I => jump_if!(r[d!()] as i32 >= imm!() as i32, op.off),
                K::Jsge32R => jump_if!(r[d!()] as i32 >= r[s!()] as i32, op.off),
                K::Jlt32I => jump_if!((r[d!()] as u32) < imm!() as u32, op.off),
                K::Jlt32R => jump_if!((r[d!()] as u32) < r[s!()] as u32, op.off),
                K::Jle32I => jump_if!(r[d!()] as u32 <= imm!() as u32, op.off),
                K::Jle32R => jump_if!(r[d!()] as u32 <= r[s!()] as u32, op.off),
                K::Jslt32I => jump_if!((r[d!()] as i32) < imm!() as i32, op.off),
                K::Jslt32R => jump_if!((r[d!()] as i32) < r[s!()] as i32, op.off),
                K::Jsle32I => jump_if!(r[d!()] as i32 <= imm!() as i32, op.off),
                K::Jsle32R => jump_if!(r[d!()] as i32 <= r[s!()] as i32, op.off),

                K::Call | K::Callx => {
                    // A helper id is the immediate as an unsigned 32-bit number.
                    let id = if op.kind == K::Call {
                        op.imm as u32 as u64
                    } else {
                        r[d!()]
                    };
                    let Ok(id32) = u32::try_from(id) else {
                        trap!(TrapCode::UnknownHelper, id)
                    };
                    // Read one by one: the program has just written these registers with
                    // 8-byte stores, and a 16-byte load of two of them (as the compiler would
                    // merge the reads) cannot take its bytes from those stores, and waits for
                    // them to reach the cache, a stall of most of a cheap helper's call.
                    let args = [
                        std::hint::black_box(r[1]),
                        std::hint::black_box(r[2]),
                        std::hint::black_box(r[3]),
                        std::hint::black_box(r[4]),
                        std::hint::black_box(r[5]),
                    ];
                    match env.host.call_helper(id32, args, env.mem) {
                        Ok(v) => r[0] = v,
                        Err(HelperStop::Exit(v)) => {
                            settle!();
                            env.halt = Halt::Exited;
                            return Ok(v);
                        }
                        Err(HelperStop::TailCall(target)) => {
                            settle!();
                            env.halt = Halt::TailCall(target);
                            return Ok(0);
                        }
                        Err(HelperStop::Loop {
                            func,
                            iterations,
                            ctx,
                        }) => {
                            // bpf_loop: call the callback with (i, ctx) until it returns non-zero.
                            let mut calls = (0..iterations as u64).map(|i| [i, ctx, 0, 0, 0]);
                            // A call ends its run: nothing after it is paid for yet.
                            env.left = n;
                            r[0] = self.callbacks_in::<EXACT>(
                                func,
                                env.depth,
                                &mut calls,
                                env.mem,
                                env.host,
                                &mut env.left,
                                pc!() - 1,
                                id,
                            )?;
                            n = env.left;
                        }
                        Err(HelperStop::CallEach { func, calls }) => {
                            env.left = n;
                            r[0] = self.callbacks_in::<EXACT>(
                                func,
                                env.depth,
                                &mut calls.iter().copied(),
                                env.mem,
                                env.host,
                                &mut env.left,
                                pc!() - 1,
                                id,
                            )?;
                            n = env.left;
                        }
                        Err(HelperStop::Unknown) => trap!(TrapCode::UnknownHelper, id),
                        Err(HelperStop::Fault) => trap!(TrapCode::HelperFault, id),
                        Err(HelperStop::Memory(f)) => {
                            settle!();
                            return Err(mem_trap(f, pc!() - 1));
                        }
                    }
                    charge!();
                }
                K::CallLocal => {
                    if env.depth + 1 >= MAX_FRAMES {
                        trap!(TrapCode::CallDepth, MAX_FRAMES as u64);
                    }
                    env.left = n;
                    let r0 = self.call_local::<EXACT>(r, op.off as usize, env)?;
                    if env.halt != Halt::Running {
                        return Ok(r0);
                    }
                    n = env.left;
                    charge!();
                }
                K::Exit => {
                    settle!();
                    return Ok(r[0]);
                }
                K::LdAbs | K::LdInd => {
                    let base = if op.kind == K::LdInd {
                        r[s!()] as u32 as i32 as i64
                    } else {
                        0
                    };
                    let offset = base.wrapping_add(imm!() as i64);
                    let size = match op.aux {
                        1 => Size::B,
                        2 => Size::H,
                        _ => Size::W,
                    };
                    match env.host.load_packet(env.mem, offset, size) {
                        Ok(Some(v)) => r[0] = v,
                        // Out of the packet: the kernel ends the program with r0 = 0.
                        Ok(None) => {
                            settle!();
                            env.halt = Halt::Exited;
                            return Ok(0);
                        }
                        Err(_) => {
                            let mode = if op.kind == K::LdInd { 0x40 } else { 0x20 };
                            trap!(TrapCode::Unsupported, (mode | size.code()) as u64)
                        }
                    }
                }
                K::Unsupported | K::LdImm64Tail => trap!(TrapCode::Unsupported, imm!()),

                // Fused pairs: the second op's slot is skipped.
                K::MovAdd64 => {
                    r[d!()] = r[s!()].wrapping_add(imm!());
                    skip!()
                }
                K::MovSub64 => {
                    r[d!()] = r[s!()].wrapping_sub(imm!());
                    skip!()
                }
                K::MovMul64 => {
                    r[d!()] = r[s!()].wrapping_mul(imm!());
                    skip!()
                }
                K::MovOr64 => {
                    r[d!()] = r[s!()] | imm!();
                    skip!()
                }
                K::MovAnd64 => {
                    r[d!()] = r[s!()] & imm!();
                    skip!()
                }
                K::MovLsh64 => {
                    r[d!()] = r[s!()] << (imm!() & 63);
                    skip!()
                }
                K::MovRsh64 => {
                    r[d!()] = r[s!()] >> (imm!() & 63);
                    skip!()
                }
                K::MovXor64 => {
                    r[d!()] = r[s!()] ^ imm!();
                    skip!()
                }
                K::MovArsh64 => {
                    r[d!()] = ((r[s!()] as i64) >> (imm!() & 63)) as u64;
                    skip!()
                }
                K::AddJeqI => add_jump_if!(|v| v == imm!()),
                K::AddJeqR => add_jump_if!(|v| v == r[s!()]),
                K::AddJgtI => add_jump_if!(|v| v > imm!()),
                K::AddJgtR => add_jump_if!(|v| v > r[s!()]),
                K::AddJgeI => add_jump_if!(|v| v >= imm!()),
                K::AddJgeR => add_jump_if!(|v| v >= r[s!()]),
                K::AddJsetI => add_jump_if!(|v| v & imm!() != 0),
                K::AddJsetR => add_jump_if!(|v| v & r[s!()] != 0),
                K::AddJneI => add_jump_if!(|v| v != imm!()),
                K::AddJneR => add_jump_if!(|v| v != r[s!()]),
                K::AddJsgtI => add_jump_if!(|v| v as i64 > imm!() as i64),
                K::AddJsgtR => add_jump_if!(|v| v as i64 > r[s!()] as i64),
                K::AddJsgeI => add_jump_if!(|v| v as i64 >= imm!() as i64),
                K::AddJsgeR => add_jump_if!(|v| v as i64 >= r[s!()] as i64),
                K::AddJltI => add_jump_if!(|v| v < imm!()),
                K::AddJltR => add_jump_if!(|v| v < r[s!()]),
                K::AddJleI => add_jump_if!(|v| v <= imm!()),
                K::AddJleR => add_jump_if!(|v| v <= r[s!()]),
                K::AddJsltI => add_jump_if!(|v| (v as i64) < imm!() as i64),
                K::AddJsltR => add_jump_if!(|v| (v as i64) < r[s!()] as i64),
                K::AddJsleI => add_jump_if!(|v| v as i64 <= imm!() as i64),
                K::AddJsleR => add_jump_if!(|v| v as i64 <= r[s!()] as i64),
                K::JeqJaI => jump_else_ja!(r[d!()] == imm!()),
                K::JeqJaR => jump_else_ja!(r[d!()] == r[s!()]),
                K::JgtJaI => jump_else_ja!(r[d!()] > imm!()),
                K::JgtJaR => jump_else_ja!(r[d!()] > r[s!()]),
                K::JgeJaI => jump_else_ja!(r[d!()] >= imm!()),
                K::JgeJaR => jump_else_ja!(r[d!()] >= r[s!()]),
                K::JsetJaI => jump_else_ja!(r[d!()] & imm!() != 0),
                K::JsetJaR => jump_else_ja!(r[d!()] & r[s!()] != 0),
                K::JneJaI => jump_else_ja!(r[d!()] != imm!()),
                K::JneJaR => jump_else_ja!(r[d!()] != r[s!()]),
                K::JsgtJaI => jump_else_ja!((r[d!()] as i64) > imm!() as i64),
                K::JsgtJaR => jump_else_ja!((r[d!()] as i64) > r[s!()] as i64),
                K::JsgeJaI => jump_else_ja!((r[d!()] as i64) >= imm!() as i64),
                K::JsgeJaR => jump_else_ja!((r[d!()] as i64) >= r[s!()] as i64),
                K::JltJaI => jump_else_ja!(r[d!()] < imm!()),
                K::JltJaR => jump_else_ja!(r[d!()] < r[s!()]),
                K::JleJaI => jump_else_ja!(r[d!()] <= imm!()),
                K::JleJaR => jump_else_ja!(r[d!()] <= r[s!()]),
                K::JsltJaI => jump_else_ja!((r[d!()] as i64) < imm!() as i64),
                K::JsltJaR => jump_else_ja!((r[d!()] as i64) < r[s!()] as i64),
                K::JsleJaI => jump_else_ja!((r[d!()] as i64) <= imm!() as i64),
                K::JsleJaR => jump_else_ja!((r[d!()] as i64) <= r[s!()] as i64),
                K::MovAddJgtR => mov_add_jump_if!(|v, x| v > x),
                K::MovAddJgeR => mov_add_jump_if!(|v, x| v >= x),
                K::MovAddJltR => mov_add_jump_if!(|v, x| v < x),
                K::MovAddJleR => mov_add_jump_if!(|v, x| v <= x),
                K::LshXor => shift_combine!(<<, ^),
                K::LshOr => shift_combine!(<<, |),
                K::LshAdd => shift_combine!(<<, +),
                K::RshXor => shift_combine!(>>, ^),
                K::RshOr => shift_combine!(>>, |),
                K::RshAdd => shift_combine!(>>, +),
                K::LshXorT => shift_combine_t!(<<, ^),
                K::LshOrT => shift_combine_t!(<<, |),
                K::LshAddT => shift_combine_t!(<<, +),
                K::RshXorT => shift_combine_t!(>>, ^),
                K::RshOrT => shift_combine_t!(>>, |),
                K::RshAddT => shift_combine_t!(>>, +),
                K::Zext => {
                    let k = imm!() & 63;
                    r[d!()] = (r[d!()] << k) >> k;
                    skip!();
                }
                K::Sext => {
                    let k = imm!() & 63;
                    r[d!()] = ((r[d!()] << k) as i64 >> k) as u64;
                    skip!();
                }
                K::MovZext => {
                    let k = imm!() & 63;
                    r[d!()] = (r[s!()] << k) >> k;
                    skip!();
                    skip!();
                }
                K::MovSext => {
                    let k = imm!() & 63;
                    r[d!()] = ((r[s!()] << k) as i64 >> k) as u64;
                    skip!();
                    skip!();
                }
                K::MovAdd64R => {
                    r[d!()] = r[s!()].wrapping_add(r[(op.aux & 15) as usize]);
                    skip!()
                }
                K::MovSub64R => {
                    r[d!()] = r[s!()].wrapping_sub(r[(op.aux & 15) as usize]);
                    skip!()
                }
                K::MovOr64R => {
                    r[d!()] = r[s!()] | r[(op.aux & 15) as usize];
                    skip!()
                }
                K::MovAnd64R => {
                    r[d!()] = r[s!()] & r[(op.aux & 15) as usize];
                    skip!()
                }
                K::MovXor64R => {
                    r[d!()] = r[s!()] ^ r[(op.aux & 15) as usize];
                    skip!()
                }
                K::LdxHBe => {
                    let v = mem!(env.mem.load(addr(r[s!()]), Size::H)) as u16;
                    {
                        r[d!()] = v.swap_bytes() as u64;
                        skip!()
                    };
                }
                K::LdxWBe => {
                    let v = mem!(env.mem.load(addr(r[s!()]), Size::W)) as u32;
                    {
                        r[d!()] = v.swap_bytes() as u64;
                        skip!()
                    };
                }
                K::LdxDWBe => {
                    let v = mem!(env.mem.load(addr(r[s!()]), Size::DW));
                    {
                        r[d!()] = v.swap_bytes();
                        skip!()
                    };
                }
            }
        }
    }
}

// Division and modulo by the kernel's rules (by zero: 0 for a quotient, the dividend for a
// remainder; `INT_MIN / -1` wraps), public so that the JIT's baseline tier computes exactly these.
#[inline(always)]
pub fn div64(a: u64, b: u64) -> u64 {
    a.checked_div(b).unwrap_or(0)
}

#[inline(always)]
pub fn mod64(a: u64, b: u64) -> u64 {
    a.checked_rem(b).unwrap_or(a)
}

#[inline(always)]
pub fn div32(a: u64, b: u64) -> u64 {
    (a as u32).checked_div(b as u32).unwrap_or(0) as u64
}

/// Modulo by zero leaves the low half of `dst` and, as for every 32-bit op, zeroes the high half.
#[inline(always)]
pub fn mod32(a: u64, b: u64) -> u64 {
    (a as u32).checked_rem(b as u32).unwrap_or(a as u32) as u64
}

#[inline(always)]
pub fn sdiv64(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        (a as i64).wrapping_div(b as i64) as u64
    }
}

#[inline(always)]
pub fn smod64(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        (a as i64).wrapping_rem(b as i64) as u64
    }
}

#[inline(always)]
pub fn sdiv32(a: u64, b: u64) -> u64 {
    if b as u32 == 0 {
        0
    } else {
        (a as i32).wrapping_div(b as i32) as u32 as u64
    }
}

#[inline(always)]
pub fn smod32(a: u64, b: u64) -> u64 {
    if b as u32 == 0 {
        a as u32 as u64
    } else {
        (a as i32).wrapping_rem(b as i32) as u32 as u64
    }
}

#[cold]
fn atomic(
    mem: &mut MemoryMap<'_>,
    r: &mut [u64; 16],
    d: usize,
    s: usize,
    op: Op,
    a: u64,
) -> Result<(), MemFault> {
    let size = if op.aux == 8 {
        Size::DW
    } else if op.aux == 4 {
        Size::W
    } else if op.aux == 2 {
        Size::H
    } else {
        Size::B
    };
    let mask = if size == Size::DW {
        u64::MAX
    } else {
        (1u64 << size.bits()) - 1
    };
    let v = r[s];
    let Some(aop) = crate::isa::AtomicOp::from_code(op.imm) else {
        unreachable!("decode admits only known atomic operations")
    };
    match aop {
        AtomicOp::Add { fetch } => fetch_into(
            r,
            s,
            fetch,
            mem.update(a, size, |o| o.wrapping_add(v) & mask)?,
        ),
        AtomicOp::Or { fetch } => fetch_into(r, s, fetch, mem.update(a, size, |o| o | (v & mask))?),
        AtomicOp::And { fetch } => fetch_into(r, s, fetch, mem.update(a, size, |o| o & v)?),
        AtomicOp::Xor { fetch } => {
            fetch_into(r, s, fetch, mem.update(a, size, |o| o ^ (v & mask))?)
        }
        AtomicOp::Xchg => r[s] = mem.update(a, size, |_| v)?,
        AtomicOp::CmpXchg => {
            let expected = r[0] & mask;
            r[0] = mem.update(a, size, |o| if o == expected { v } else { o })?;
        }
        AtomicOp::LoadAcquire => {
            let src = r[s].wrapping_add(op.off as i64 as u64);
            r[d] = mem.load(src, size)?;
        }
        AtomicOp::StoreRelease => mem.store(a, size, v)?,
    }
    Ok(())
}

#[inline(always)]
fn fetch_into(r: &mut [u64; 16], s: usize, fetch: bool, old: u64) {
    if fetch {
        r[s] = old;
    }
}

/// Everything needed to run programs repeatedly without allocating: the stack and a region table.
pub struct Vm {
    stack: Stack,
    scratch: RegionTable,
    /// Instruction budget of each run.
    pub budget: u64,
}

impl Default for Vm {
    fn default() -> Self {
        Vm {
            stack: Stack::default(),
            scratch: RegionTable::with_capacity(16),
            budget: DEFAULT_BUDGET,
        }
    }
}

impl Vm {
    /// An address space with this VM's stack, for a caller that maps its own regions (context,
    /// packet, map values) and runs with [`Interpreter::run`]. The map's rows live in this VM's
    /// table, so a run does not allocate; dropping the map drops the rows of what it mapped.
    ///
    /// A run's stack reads as zeros against what earlier runs wrote, not against the caller:
    /// bytes the caller itself writes into a frame through this map ([`MemoryMap::store`],
    /// [`MemoryMap::slice_mut`]) may still be there at the next run's entry, which clears only
    /// what runs may have written. Tracking the caller's writes would put a check on every
    /// store a program makes (the interpreter's stores go through the same methods).
    #[inline]
    pub fn memory(&mut self) -> MemoryMap<'_> {
        MemoryMap::new(&mut self.stack, &mut self.scratch)
    }

    /// The stack and region table, for an engine's lean entry that builds a [`MemoryMap`]
    /// only when a run needs one ([`RegionTable::enter_main`]).
    #[inline]
    pub fn parts(&mut self) -> (&mut Stack, &mut RegionTable) {
        (&mut self.stack, &mut self.scratch)
    }

    /// Run with `r1` pointing at a writable `input` and `r2` its length (both 0 when `input` is
    /// empty), the calling convention of the bpf_conformance suite and of raw-memory programs.
    /// Inlined: its own frame (six saved registers and a return) cost as much as the set-up.
    #[inline(always)]
    pub fn run_with_memory<H: Host + ?Sized>(
        &mut self,
        prog: &Interpreter,
        host: &mut H,
        input: &mut [u8],
    ) -> Outcome {
        let budget = self.budget;
        let mut mem = self.memory();
        let (r1, r2) = if input.is_empty() {
            (0, 0)
        } else {
            let len = input.len() as u64;
            match mem.map_mut(input) {
                Ok(a) => (a, len),
                Err(_) => {
                    return Outcome {
                        result: Err(Trap::new(TrapCode::MemoryRead, 0, 0)),
                        insns: 0,
                        tail_call: None,
                    };
                }
            }
        };
        prog.run(&mut mem, host, [r1, r2, 0, 0, 0], budget)
    }
}
