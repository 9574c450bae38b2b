//! Tiering for [`Engine::Auto`]: a program is interpreted until the
//! instructions it has executed outweigh what compiling it would cost, then compiled on a
//! thread of its own while the interpreter goes on running it; runs use the compiled code from
//! the first one that starts after the compile is done.
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
use std::sync::{Arc, OnceLock};

use bpfsim_jit::{Hints, JitError, JitProgram};
use bpfsim_vm::isa::Insn;
use bpfsim_vm::{Executable, Interpreter, Program};

use crate::object::Engine;

/// Instructions [`Engine::Auto`] interprets per instruction of the
/// program before it starts compiling: about a tenth of what the compile costs, measured in
/// the interpreter's time (see the module's documentation).
pub const AUTO_COST: u64 = 1_000;

/// Where a program stands under [`Engine::Auto`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tier {
    /// Interpreted; not hot enough to compile yet.
    Interpreted,
    /// Interpreted while a thread compiles it.
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
}

impl Source {
    /// What the verifier proves that the JIT can use; nothing when it rejects the program.
    pub fn hints(&self) -> Hints {
        let Some((insns, opts)) = &self.verify else {
            return Hints::default();
        };
        let verdict = bpfsim_verifier::verify(insns, opts);
        if !verdict.accepted {
            return Hints::default();
        }
        Hints {
            no_ctx: verdict.no_ctx,
            packet: verdict.packet,
            ctx: verdict.ctx,
        }
    }

    fn compile(&self) -> Result<Arc<JitProgram>, JitError> {
        let prog = Program::new(self.insns.clone())
            .map_err(|e| JitError::Codegen(format!("program structure: {e}")))?;
        JitProgram::compile_with(&prog, &self.hints()).map(Arc::new)
    }
}

/// A program's compiled form: compiled once, by the first engine that asks or by the background
/// thread [`JitSlot::ran`] starts, whichever comes first (the other waits for it). A linked
/// program has one; a program without an object (raw bytecode) can have its own.
pub struct JitSlot {
    source: Source,
    code: OnceLock<Result<Arc<JitProgram>, JitError>>,
    /// Instructions interpreted under `auto` so far.
    executed: AtomicU64,
    started: AtomicBool,
    threshold: u64,
}

impl JitSlot {
    pub fn new(source: Source) -> Arc<JitSlot> {
        let threshold = AUTO_COST.saturating_mul(source.insns.len().max(1) as u64);
        Arc::new(JitSlot {
            source,
            code: OnceLock::new(),
            executed: AtomicU64::new(0),
            started: AtomicBool::new(false),
            threshold,
        })
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// What runs the program under `engine` now, and whether it is `interp` (which a run under
    /// [`Engine::Auto`] then reports to [`JitSlot::ran`]).
    pub fn executable<'a>(
        &'a self,
        interp: &'a Interpreter,
        engine: Engine,
    ) -> Result<(&'a dyn Executable, bool), JitError> {
        Ok(match engine {
            Engine::Interp => (interp, true),
            Engine::Jit => (self.get()?, false),
            Engine::Auto => match self.ready() {
                Some(j) => (j, false),
                None => (interp, true),
            },
        })
    }

    /// The compiled program, compiling it here if no one has (or waiting for the thread that
    /// is).
    pub fn get(&self) -> Result<&JitProgram, JitError> {
        self.code
            .get_or_init(|| self.source.compile())
            .as_ref()
            .map(|a| &**a)
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
            None => Tier::Interpreted,
        }
    }

    /// Count `insns` interpreted under `auto`; once they reach the threshold, compile on a
    /// thread of its own (here, if no thread can be started).
    pub fn ran(self: &Arc<Self>, insns: u64) {
        let total = self.executed.fetch_add(insns, Ordering::Relaxed) + insns;
        if total < self.threshold || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let slot = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("bpfsim-jit".to_string())
            .spawn(move || {
                let _ = slot.get();
            });
        if spawned.is_err() {
            let _ = self.get();
        }
    }

    /// Wait until a compile [`JitSlot::ran`] started has finished (at once if none has
    /// started).
    pub fn wait(&self) -> Tier {
        if self.started.load(Ordering::Acquire) {
            let _ = self.get();
        }
        self.tier()
    }
}
