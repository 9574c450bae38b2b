//! Tiering for [`Engine::Auto`]: a program is interpreted until the
//! instructions it has executed outweigh what compiling it would cost, then compiled on a
//! thread of its own while the interpreter goes on running it; runs use the compiled code from
//! the first one that starts after the compile is done.
//!
//! On x86-64 hosts a middle tier comes first: once a program has executed [`BASELINE_COST`]
//! instructions per instruction of its own, it is compiled by the baseline tier
//! (`JitProgram::compile_baseline`, about 0.2 µs per instruction, on the running thread), whose
//! code runs it until Cranelift's is ready. Its runs count toward the threshold as interpreted
//! ones do.
//!
//! The threshold counts executed instructions rather than runs: compiling costs about 10 µs
//! per instruction of the program (docs/benchmarks.md, "Real programs"), and interpreting about
//! 1-3 ns per executed instruction, so a count of runs would compile a large program run a few
//! times (a unit test's handful of packets: milliseconds of compiling for microseconds of
//! runs) and leave a small one with a long loop interpreted for as many runs. Compiling in the
//! background means no run waits for it: a replay keeps going under the interpreter until the
//! code is ready. Both engines give the same results (the differential tests check it), so
//! where the switch falls changes only the speed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use bpfsim_jit::{CompileOptions, Hints, JitError, JitProgram};
use bpfsim_vm::isa::{CallTarget, Insn};
use bpfsim_vm::{Executable, Interpreter, Program};

use crate::object::Engine;

/// Instructions [`Engine::Auto`] interprets per instruction of the
/// program before it starts compiling: about a tenth of what the compile costs, measured in
/// the interpreter's time (see the module's documentation).
pub const AUTO_COST: u64 = 1_000;

/// Instructions [`Engine::Auto`] interprets per instruction of the program before it compiles
/// it with the baseline tier: the compile costs about as much as interpreting 50-100
/// instructions per instruction of the program (0.2 µs against 2-4 ns), so a program that
/// never gets this far never pays for it, and one that does has paid at most about as much
/// again.
pub const BASELINE_COST: u64 = 50;

/// What runs a program's next runs under an engine ([`JitSlot::executable`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ran {
    Interpreter,
    /// The baseline tier's code.
    Baseline,
    /// Cranelift's code.
    Compiled,
}
/// Where a program stands under [`Engine::Auto`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tier {
    /// Interpreted; not hot enough to compile yet.
    Interpreted,
    /// Run by the baseline tier's code; not hot enough for Cranelift yet.
    Baseline,
    /// Interpreted, or run by the baseline tier's code, while a thread compiles it.
    Compiling,
    /// Compiled: runs use the compiled code.
    Compiled,
    /// The JIT cannot compile it: interpreted for good.
    Uncompilable,
}

/// What compiling a program needs, owned so that a thread can compile it.
pub struct Source {
    /// The program as it runs (map references resolved).
    pub insns: Vec<Insn>,
    /// The object's form of the program and the options to verify it with, for the verifier's
    /// hints ([`Source::hints`]); `None` for a program without an object.
    pub verify: Option<(Vec<Insn>, bpfsim_verifier::Options)>,
    /// The program's name, for what names its code (a perf map: `BPFSIM_PERF_MAP=1`).
    pub name: String,
}

/// Everything the verifier's `verdict` on an accepted program proves that the JIT can use, as
/// it says it (a run's host must also place the value maps: [`bpfsim_vm::Host::value_region`]).
pub fn verdict_hints(verdict: bpfsim_verifier::Verdict) -> Hints {
    Hints {
        no_ctx: verdict.no_ctx,
        packet: verdict.packet,
        ctx: verdict.ctx,
        map_value: verdict.map_value,
        stack: verdict.stack,
        frame_bytes: verdict.frame_bytes,
        stack_at: verdict.stack_at,
        lookup: verdict
            .lookup_map
            .iter()
            .map(|m| m.map(|(_, t)| lookup_path(t)))
            .collect(),
    }
}

/// The way the JIT answers a `bpf_map_lookup_elem` of a map of type `t`, as the simulated
/// maps answer it: plain and per-CPU arrays are the hosts' array tables' (`array_layout`);
/// the arrays whose slots may be empty (arrays of maps, device, CPU and socket maps) the slot
/// tables' (`slot_layout`), or by their key's bytes when the host does not list them; the maps
/// with no value a program's lookup can get (queues and stacks, whose lookup the kernel
/// refuses, ring buffers, bloom filters, perf event and program arrays) the helper's alone;
/// every other map's (hash maps, tries, hashes of maps, hashed device maps, socket maps) by its
/// key's bytes.
pub fn lookup_path(t: bpfsim_vm::spec::MapType) -> bpfsim_jit::LookupPath {
    use bpfsim_jit::LookupPath;
    use bpfsim_vm::spec::MapType;
    match t {
        MapType::Array | MapType::PercpuArray => LookupPath::Array,
        MapType::ArrayOfMaps | MapType::Devmap | MapType::Cpumap | MapType::Xskmap => {
            LookupPath::Slots
        }
        MapType::Queue
        | MapType::Stack
        | MapType::Ringbuf
        | MapType::UserRingbuf
        | MapType::BloomFilter
        | MapType::PerfEventArray
        | MapType::ProgArray
        | MapType::Unspec => LookupPath::Helper,
        _ => LookupPath::Key,
    }
}

impl Source {
    /// What the verifier proves that the JIT can use; nothing when it rejects the program.
    pub fn hints(&self) -> Hints {
        self.proven_hints().unwrap_or_default()
    }

    /// What the verifier proves that the JIT can use (nothing for a program without an object),
    /// or the verifier's error when it rejects the program.
    pub fn proven_hints(&self) -> Result<Hints, String> {
        let Some((insns, opts)) = &self.verify else {
            return Ok(Hints::default());
        };
        let verdict = bpfsim_verifier::verify(insns, opts);
        if !verdict.accepted {
            return Err(verdict
                .error
                .unwrap_or_else(|| "rejected (no error line)".to_string()));
        }
        // `bpf_map_lookup_percpu_elem` gives pointers into another CPU's arena of a per-CPU
        // map, where the run's region for the map's values is this CPU's.
        let other_cpus = insns.iter().any(|i| {
            matches!(i, Insn::Call(CallTarget::Helper(id)) if *id as u32 == MAP_LOOKUP_PERCPU_ELEM)
        });
        let mut hints = verdict_hints(verdict);
        for m in &mut hints.map_value {
            *m = m.filter(|&m| {
                !other_cpus
                    || opts
                        .maps
                        .get(m as usize)
                        .is_some_and(|info| !is_percpu(info.map_type))
            });
        }
        Ok(hints)
    }

    /// Compile with `hints`, as `opts` asks (the program's name added).
    pub fn compile_opts(
        &self,
        hints: &Hints,
        opts: CompileOptions,
    ) -> Result<JitProgram, JitError> {
        let prog = Program::new(self.insns.clone())
            .map_err(|e| JitError::Codegen(format!("program structure: {e}")))?;
        let opts = CompileOptions {
            name: opts.name.or_else(|| Some(self.name.clone())),
            ..opts
        };
        JitProgram::compile_opts(&prog, hints, &opts)
    }
}

/// `bpf_map_lookup_percpu_elem`.
const MAP_LOOKUP_PERCPU_ELEM: u32 = 195;

/// Maps with a value per CPU (an arena per CPU).
fn is_percpu(t: bpfsim_vm::spec::MapType) -> bool {
    use bpfsim_vm::spec::MapType;
    matches!(
        t,
        MapType::PercpuArray
            | MapType::PercpuHash
            | MapType::LruPercpuHash
            | MapType::PercpuCgroupStorage
    )
}

/// A program's compiled form: compiled once, by the first engine that asks or by the background
/// thread [`JitSlot::ran`] starts (an engine that asks meanwhile waits for that thread). A
/// linked program has one; a program without an object (raw bytecode) can have its own.
pub struct JitSlot {
    source: Source,
    /// The verifier's verdict on the source as [`Source::proven_hints`] gives it, verified once
    /// for everything that uses it (the compile, the interpreter's frame proof).
    verdict: OnceLock<Result<Hints, String>>,
    code: OnceLock<Result<Arc<JitProgram>, JitError>>,
    /// The baseline tier's code ([`Engine::Baseline`]), compiled on first use.
    baseline: OnceLock<Result<JitProgram, JitError>>,
    /// Instructions interpreted under `auto` so far.
    executed: AtomicU64,
    started: AtomicBool,
    /// The background compile, and the process that started it. The thread compiles outside
    /// `code`'s lock and only stores the result in it: a process forked while it runs (Python's
    /// `multiprocessing`) finds `code` empty rather than locked forever by a thread the fork did
    /// not copy, and compiles for itself when it needs the code.
    compiler: Mutex<Option<(u32, JoinHandle<()>)>>,
    threshold: u64,
}

impl JitSlot {
    pub fn new(source: Source) -> Arc<JitSlot> {
        let threshold = AUTO_COST.saturating_mul(source.insns.len().max(1) as u64);
        Arc::new(JitSlot {
            source,
            verdict: OnceLock::new(),
            code: OnceLock::new(),
            baseline: OnceLock::new(),
            executed: AtomicU64::new(0),
            started: AtomicBool::new(false),
            compiler: Mutex::new(None),
            threshold,
        })
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// [`Source::proven_hints`], verified on first use and kept.
    pub fn proven_hints(&self) -> &Result<Hints, String> {
        self.verdict.get_or_init(|| self.source.proven_hints())
    }

    /// Whether the source has been verified ([`Self::proven_hints`]) already.
    pub fn verified(&self) -> bool {
        self.verdict.get().is_some()
    }

    /// Compile with the kept verdict's hints (none when the verifier rejects the program).
    fn compile(&self) -> Result<Arc<JitProgram>, JitError> {
        let none = Hints::default();
        let hints = self.proven_hints().as_ref().unwrap_or(&none);
        self.source
            .compile_opts(hints, CompileOptions::default())
            .map(Arc::new)
    }

    /// What runs the program under `engine` now (a run under [`Engine::Auto`] not by
    /// [`Ran::Compiled`] code then reports to [`JitSlot::ran`]).
    pub fn executable<'a>(
        &'a self,
        interp: &'a Interpreter,
        engine: Engine,
    ) -> Result<(&'a dyn Executable, Ran), JitError> {
        Ok(match engine {
            Engine::Interp => (interp, Ran::Interpreter),
            Engine::Jit => (self.get()?, Ran::Compiled),
            Engine::Baseline => (self.baseline()?, Ran::Baseline),
            Engine::Auto => match self.ready() {
                Some(j) => (j, Ran::Compiled),
                None => match self.warm() {
                    Some(b) => (b, Ran::Baseline),
                    None => (interp, Ran::Interpreter),
                },
            },
        })
    }

    /// The baseline tier's code once `auto`'s runs have reached [`BASELINE_COST`] (compiled
    /// here the first time), else `None`; `None` for good where it cannot compile the program.
    pub fn warm(&self) -> Option<&JitProgram> {
        if !cfg!(target_arch = "x86_64") {
            return None;
        }
        let due = BASELINE_COST.saturating_mul(self.source.insns.len().max(1) as u64);
        if self.executed.load(Ordering::Relaxed) < due {
            return None;
        }
        self.baseline().ok()
    }

    /// The compiled program, compiling it here if no one has (or waiting for the thread that
    /// is).
    pub fn get(&self) -> Result<&JitProgram, JitError> {
        self.join_compiler();
        self.code
            .get_or_init(|| self.compile())
            .as_ref()
            .map(|a| &**a)
            .map_err(Clone::clone)
    }

    /// The baseline tier's code, compiled here on first use.
    pub fn baseline(&self) -> Result<&JitProgram, JitError> {
        self.baseline
            .get_or_init(|| {
                let prog = Program::new(self.source.insns.clone())
                    .map_err(|e| JitError::Codegen(format!("program structure: {e}")))?;
                JitProgram::compile_baseline(&prog)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The compiled program if it is ready, without waiting.
    pub fn ready(&self) -> Option<&JitProgram> {
        match self.code.get() {
            Some(Ok(j)) => Some(j),
            _ => None,
        }
    }

    pub fn tier(&self) -> Tier {
        match self.code.get() {
            Some(Ok(_)) => Tier::Compiled,
            Some(Err(_)) => Tier::Uncompilable,
            None if self.started.load(Ordering::Acquire) => Tier::Compiling,
            None if matches!(self.baseline.get(), Some(Ok(_))) => Tier::Baseline,
            None => Tier::Interpreted,
        }
    }

    /// Count `insns` interpreted under `auto`; once they reach the threshold, compile on a
    /// thread of its own (here, if no thread can be started).
    pub fn ran(self: &Arc<Self>, insns: u64) {
        // Saturating: a count never wraps back below the threshold.
        let before = self
            .executed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                Some(e.saturating_add(insns))
            })
            .unwrap_or(u64::MAX);
        let total = before.saturating_add(insns);
        if total < self.threshold || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let slot = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("bpfsim-jit".to_string())
            .spawn(move || {
                let code = slot.compile();
                let _ = slot.code.set(code);
            });
        match spawned {
            Ok(handle) => {
                let mut c = self.compiler.lock().unwrap_or_else(|e| e.into_inner());
                *c = Some((std::process::id(), handle));
            }
            Err(_) => {
                let _ = self.get();
            }
        }
    }

    /// Wait for the background compile, if this process started one.
    fn join_compiler(&self) {
        if self.code.get().is_some() || !self.started.load(Ordering::Acquire) {
            return;
        }
        let taken = self
            .compiler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((pid, handle)) = taken {
            if pid == std::process::id() {
                let _ = handle.join();
            }
        }
    }

    /// Wait until a compile [`JitSlot::ran`] started has finished (at once if none has
    /// started); where the program stands then.
    pub fn wait(&self) -> Tier {
        self.join_compiler();
        self.tier()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfsim_vm::isa::{AluOp, Reg, Source as Operand, Width};

    fn ret(v: i32) -> Vec<Insn> {
        vec![
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst: Reg::R0,
                src: Operand::Imm(v),
            },
            Insn::Exit,
        ]
    }

    /// What a process forked during a background compile sees: the compile started, by a
    /// thread that is not there (here: one that never ends, and another process's id). Asking
    /// for the code compiles it here instead of waiting for that thread.
    #[test]
    fn a_compile_started_by_another_process_is_not_waited_for() {
        let slot = JitSlot::new(Source {
            insns: ret(7),
            verify: None,
            name: "test".to_string(),
        });
        let (hold, never) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            let _ = never.recv();
        });
        slot.started.store(true, Ordering::Release);
        *slot.compiler.lock().unwrap() = Some((std::process::id().wrapping_add(1), stuck));
        assert_eq!(slot.tier(), Tier::Compiling);
        let (tx, rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&slot);
        std::thread::spawn(move || {
            let _ = tx.send(s.get().is_ok());
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(30));
        drop(hold);
        assert_eq!(got, Ok(true), "the code is compiled here, without waiting");
        assert_eq!(slot.tier(), Tier::Compiled);
    }

    /// This process's background compile is waited for, not done twice.
    #[test]
    fn an_engine_asking_during_the_background_compile_gets_its_result() {
        let slot = JitSlot::new(Source {
            insns: ret(3),
            verify: None,
            name: "test".to_string(),
        });
        slot.ran(u64::MAX);
        assert_ne!(slot.tier(), Tier::Interpreted);
        let first = slot.get().unwrap() as *const JitProgram;
        assert_eq!(slot.tier(), Tier::Compiled);
        assert_eq!(slot.get().unwrap() as *const JitProgram, first);
        // Later counts change nothing.
        slot.ran(u64::MAX);
        assert_eq!(slot.wait(), Tier::Compiled);
        assert_eq!(slot.get().unwrap() as *const JitProgram, first);
    }
}
