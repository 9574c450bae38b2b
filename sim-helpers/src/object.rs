//! An ELF object loaded into the simulator: its maps created, global data written, and programs
//! linked against the run layout (map handles and arena addresses as constants).

use bpfsim_vm::isa::{Imm64, Insn};
use bpfsim_vm::loader::{load_object, Object, ObjectError};
use bpfsim_vm::spec::{MapDef, MapType, ProgType};
use bpfsim_vm::{Interpreter, Program};

use crate::env::Env;
use crate::maps::{MapError, MapId};
use crate::run::{arena_addr, Input, RunError, RunResult, Runner, MAP_HANDLE_BASE};
use crate::tier::{JitSlot, Source};
pub use crate::tier::{Tier, AUTO_COST};

/// Interpreted runs of a program after which [`LinkedProgram::interpreter_for`] verifies it for
/// its frame proof.
pub const PROVE_RUNS: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("map `{name}`: {source}")]
    Map { name: String, source: MapError },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("program `{name}`: {source}")]
    Program {
        name: String,
        source: bpfsim_vm::program::StructureError,
    },
    #[error("program `{name}` (section `{section}`): the section does not say its type; give one (e.g. --type xdp)")]
    NoType { name: String, section: String },
    #[error("program `{name}`: {source}")]
    Jit {
        name: String,
        source: bpfsim_jit::JitError,
    },
    #[error("program `{name}`: the verifier rejects it: {error}")]
    Rejected { name: String, error: String },
    #[error("program `{name}`: the kernel cannot test-run {what} programs (BPF_PROG_TEST_RUN fails with EINVAL), so neither does the simulator")]
    NotTestRunnable { name: String, what: &'static str },
}

/// Which engine runs a program.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Engine {
    /// The interpreter (the reference).
    #[default]
    Interp,
    /// Compiled code (bpfsim-jit), compiled on first use; an error if the JIT cannot compile it.
    Jit,
    /// The interpreter until the program is hot ([`crate::tier::AUTO_COST`] instructions
    /// executed per instruction of the program), then compiled code, compiled in the background
    /// while the interpreter goes on; the interpreter throughout if the JIT cannot compile it.
    Auto,
    /// The JIT's baseline tier (`JitProgram::compile_baseline`: compiled in one pass, about 30x
    /// faster to compile than `jit` and slower to run), compiled on first use; x86-64 only.
    Baseline,
}

impl Engine {
    pub fn from_name(name: &str) -> Option<Engine> {
        match name {
            "interp" => Some(Engine::Interp),
            "jit" => Some(Engine::Jit),
            "auto" => Some(Engine::Auto),
            "baseline" => Some(Engine::Baseline),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Interp => "interp",
            Engine::Jit => "jit",
            Engine::Auto => "auto",
            Engine::Baseline => "baseline",
        }
    }
}

/// A program ready to run against its object's maps.
pub struct LinkedProgram {
    pub name: String,
    /// Why the kernel would refuse to test-run it, if it would.
    pub not_test_runnable: Option<&'static str>,
    pub section: String,
    pub prog_type: ProgType,
    pub insns: Vec<Insn>,
    pub interp: Interpreter,
    /// `interp` with the verifier's frame proof ([`Interpreter::with_frame_proof`]), made once
    /// the program is verified; `None` inside when the verifier proves nothing of its frames
    /// (it rejects the program).
    proven: std::sync::OnceLock<Option<Interpreter>>,
    /// Runs interpreted so far without the frame proof ([`LinkedProgram::interpreter_for`]).
    unproven_runs: std::sync::atomic::AtomicU64,
    /// The compiled program (compiled when an engine asks for it, or in the background under
    /// [`Engine::Auto`]), with what compiling it needs.
    jit: std::sync::Arc<JitSlot>,
}

impl LinkedProgram {
    /// What the verifier proves about the program that the JIT can use: the accesses that
    /// never go through the context pointer, the packet accesses it proved in bounds, and the
    /// context field accesses. Nothing when the verifier rejects the program (the
    /// simulator runs it all the same, with every check).
    ///
    /// `.rodata` is left unknown to this verification: the hints must hold whatever values it
    /// is given before the first run, which the kernel's verification would have seen.
    pub fn jit_hints(&self) -> bpfsim_jit::Hints {
        self.jit.proven_hints().clone().unwrap_or_default()
    }

    /// The interpreter that runs the next `runs` runs: [`LinkedProgram::interp`] with the
    /// verifier's frame proof once the program has been verified (for the JIT, or by this
    /// call), so that an entry skips clearing the frames past 0 an earlier run wrote (3.5 KB,
    /// about 17 ns a run) and clears only the bytes of frame 0 the program reaches. A program
    /// not verified yet is verified here once its interpreted runs reach [`PROVE_RUNS`] (this
    /// call's included): a verification costs about what a few thousand runs' clearing does
    /// (1.4 us for an empty program, 24 us for `map_heavy`, more for loops, whose runs are
    /// longer too), so a program run only a few times is not verified for it.
    pub fn interpreter_for(&self, runs: u32) -> &Interpreter {
        self.count_unproven(runs)
    }

    /// The interpreter with the verifier's frame proof, if [`LinkedProgram::interpreter_for`]
    /// has made it (without counting a run).
    pub fn proven_interpreter(&self) -> Option<&Interpreter> {
        self.proven.get()?.as_ref()
    }

    #[inline]
    fn count_unproven(&self, runs: u32) -> &Interpreter {
        use std::sync::atomic::Ordering;
        if let Some(p) = self.proven.get() {
            return p.as_ref().unwrap_or(&self.interp);
        }
        let before = self
            .unproven_runs
            .fetch_add(u64::from(runs.max(1)), Ordering::Relaxed);
        if !self.jit.verified() && before.saturating_add(u64::from(runs.max(1))) < PROVE_RUNS {
            return &self.interp;
        }
        self.proven
            .get_or_init(|| {
                let hints = self.jit.proven_hints().as_ref().ok()?;
                let proven = self.interp.clone().with_frame_proof(&hints.frame_bytes);
                proven.frame_entry().0.then_some(proven)
            })
            .as_ref()
            .unwrap_or(&self.interp)
    }

    /// The compiled program, compiling it on first use (with [`LinkedProgram::jit_hints`]), or
    /// waiting for the background compile [`Engine::Auto`] started.
    pub fn jit(&self) -> Result<&bpfsim_jit::JitProgram, bpfsim_jit::JitError> {
        self.jit.get()
    }

    /// The program compiled afresh with a [`bpfsim_jit::Listing`] of its code
    /// ([`bpfsim_jit::JitProgram::listing`]): the code runs use (the same hints), each part with
    /// the BPF instruction it comes from, disassembled. An error when the verifier rejects the
    /// program (whose code, compiled without the hints, is not what a verified program runs) or
    /// the JIT cannot compile it.
    pub fn jit_listed(&self) -> Result<bpfsim_jit::JitProgram, LoadError> {
        let source = self.jit.source();
        let hints = self
            .jit
            .proven_hints()
            .as_ref()
            .map_err(|error| LoadError::Rejected {
                name: self.name.clone(),
                error: error.clone(),
            })?;
        let opts = bpfsim_jit::CompileOptions {
            listing: true,
            ..Default::default()
        };
        source
            .compile_opts(hints, opts)
            .map_err(|source| LoadError::Jit {
                name: self.name.clone(),
                source,
            })
    }

    /// Where the program stands under [`Engine::Auto`].
    pub fn tier(&self) -> Tier {
        self.jit.tier()
    }

    /// Wait for a background compile [`Engine::Auto`] started, if any; where the program
    /// stands then. For tests and benchmarks that want the compiled code from a known run on.
    pub fn wait_for_tier(&self) -> Tier {
        self.jit.wait()
    }

    /// What runs the next `runs` runs of the program under `engine`, and whether they count
    /// toward `auto`'s compile (the interpreter, [`LinkedProgram::interpreter_for`], or the
    /// baseline tier's code).
    fn executable(
        &self,
        engine: Engine,
        runs: u32,
    ) -> Result<(&dyn bpfsim_vm::Executable, bool), LoadError> {
        let (exec, ran) =
            self.jit
                .executable(&self.interp, engine)
                .map_err(|e| LoadError::Jit {
                    name: self.name.clone(),
                    source: e,
                })?;
        match ran {
            crate::tier::Ran::Interpreter => Ok((self.interpreter_for(runs), true)),
            crate::tier::Ran::Baseline => Ok((exec, true)),
            crate::tier::Ran::Compiled => Ok((exec, false)),
        }
    }
}

/// An object with its maps; programs run against them, and their state persists across runs.
pub struct LoadedObject {
    pub object: Object,
    pub runner: Runner,
    map_ids: Vec<MapId>,
    /// Tail-call ids of the programs registered so far, by name.
    prog_ids: Vec<(String, u32)>,
    /// `.rodata` maps, frozen when the first program runs: libbpf freezes them at load, and a
    /// skeleton's `rodata` can be set between open and load; here between load and first run.
    to_freeze: Vec<MapId>,
}

/// Definitions as libbpf adjusts them before creating the maps.
fn adjusted(def: &MapDef, ncpus: u32) -> MapDef {
    let mut d = def.clone();
    match d.map_type {
        MapType::PerfEventArray if d.max_entries == 0 => d.max_entries = ncpus,
        MapType::Ringbuf => d.max_entries = d.max_entries.max(4096).next_multiple_of(4096),
        _ => {}
    }
    d
}

impl LoadedObject {
    pub fn load(bytes: &[u8], env: Env) -> Result<LoadedObject, LoadError> {
        let object = load_object(bytes)?;
        let mut runner = Runner::new(env);
        let ncpus = runner.maps.ncpus();
        let mut map_ids = Vec::with_capacity(object.maps.len());
        let mut to_freeze = Vec::new();
        for def in &object.maps {
            let id = runner
                .maps
                .create(&adjusted(def, ncpus))
                .map_err(|source| LoadError::Map {
                    name: def.name.clone(),
                    source,
                })?;
            // A reader holds every CPU's perf buffer open, so that programs' output lands.
            if def.map_type == MapType::PerfEventArray {
                runner
                    .maps
                    .perf_open_all(id)
                    .map_err(|source| LoadError::Map {
                        name: def.name.clone(),
                        source,
                    })?;
            }
            map_ids.push(id);
        }
        for g in &object.globals {
            let id = map_ids[g.map];
            let name = || object.maps[g.map].name.clone();
            runner
                .maps
                .update(id, &0u32.to_le_bytes(), &g.data, 0)
                .map_err(|source| LoadError::Map {
                    name: name(),
                    source,
                })?;
            if g.read_only {
                to_freeze.push(id);
            }
        }
        Ok(LoadedObject {
            object,
            runner,
            map_ids,
            prog_ids: Vec::new(),
            to_freeze,
        })
    }

    /// Whether `.rodata` can still be written from the host (no program has run yet).
    pub fn rodata_writable(&self) -> bool {
        !self.to_freeze.is_empty()
    }

    /// The id of the map the object calls `name` (`.rodata` and friends included).
    pub fn map_id(&self, name: &str) -> Option<MapId> {
        self.object.map_index(name).map(|i| self.map_ids[i])
    }

    /// Link program `name`; `prog_type` overrides (or supplies) the section's type.
    pub fn program(
        &self,
        name: &str,
        prog_type: Option<ProgType>,
    ) -> Result<LinkedProgram, LoadError> {
        // A function that is no program of its own (in `.text`, or a section without a type)
        // runs when the caller names its type, as libbpf loads it with an explicit type.
        let linked;
        let p = match (self.object.find_program(name), prog_type) {
            (Ok(p), _) => p,
            (Err(_), Some(t)) if self.object.functions().any(|(f, _)| f == name) => {
                linked = self.object.function_program(name, t)?;
                &linked
            }
            (Err(e), _) => return Err(e.into()),
        };
        let ty = prog_type.or(p.prog_type).ok_or_else(|| LoadError::NoType {
            name: p.name.clone(),
            section: p.section.clone(),
        })?;
        let maps = &self.runner.maps;
        let insns: Vec<Insn> = p
            .insns
            .iter()
            .map(|insn| match *insn {
                Insn::LdImm64 {
                    dst,
                    imm: Imm64::MapIdx(i),
                } => Insn::LdImm64 {
                    dst,
                    imm: Imm64::Imm(MAP_HANDLE_BASE + i as u32 as u64),
                },
                Insn::LdImm64 {
                    dst,
                    imm: Imm64::MapIdxValue { idx, off },
                } => Insn::LdImm64 {
                    dst,
                    imm: Imm64::Imm(
                        arena_addr(maps, idx as u32 as usize, 0).wrapping_add(off as i64 as u64),
                    ),
                },
                other => other,
            })
            .collect();
        let prog = Program::new(insns.clone()).map_err(|source| LoadError::Program {
            name: p.name.clone(),
            source,
        })?;
        let verify = bpfsim_verifier::object_program_options(&self.object, p, Some(ty), 0).map(
            |mut opts| {
                for m in &mut opts.maps {
                    m.data = None;
                }
                (p.insns.clone(), opts)
            },
        );
        let not_test_runnable = match p.expected_attach_type {
            Some(bpfsim_vm::loader::AttachType::XdpCpumap) => Some("xdp/cpumap"),
            _ => None,
        };
        Ok(LinkedProgram {
            not_test_runnable,
            name: p.name.clone(),
            section: p.section.clone(),
            prog_type: ty,
            interp: Interpreter::new(&prog),
            proven: std::sync::OnceLock::new(),
            unproven_runs: std::sync::atomic::AtomicU64::new(0),
            jit: JitSlot::new(Source {
                insns: insns.clone(),
                verify,
                name: p.name.clone(),
            }),
            insns,
        })
    }

    /// The id that names program `name` in a program array (for `bpf_tail_call`), linking and
    /// registering it on first use.
    pub fn prog_id(&mut self, name: &str) -> Result<u32, LoadError> {
        if let Some((_, id)) = self.prog_ids.iter().find(|(n, _)| n == name) {
            return Ok(*id);
        }
        let linked = self.program(name, None)?;
        let id = self
            .runner
            .add_program_with_jit(linked.interp, std::sync::Arc::clone(&linked.jit));
        self.prog_ids.push((name.to_string(), id));
        Ok(id)
    }

    /// The name of the program registered under `id` by [`LoadedObject::prog_id`]: how a
    /// [`RunResult::tail_calls`] chain reads.
    pub fn program_name_by_id(&self, id: u32) -> Option<&str> {
        self.prog_ids
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(n, _)| n.as_str())
    }

    /// Every program the object defines, in order.
    pub fn program_names(&self) -> Vec<String> {
        self.object
            .programs
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    pub fn run(
        &mut self,
        prog: &LinkedProgram,
        packet: &[u8],
        input: Input,
    ) -> Result<RunResult, LoadError> {
        self.run_repeat(prog, packet, input, 1)
    }

    /// [`LoadedObject::run`] `repeat` times, as `BPF_PROG_TEST_RUN` does (see
    /// [`Runner::run_repeat`]).
    pub fn run_repeat(
        &mut self,
        prog: &LinkedProgram,
        packet: &[u8],
        input: Input,
        repeat: u32,
    ) -> Result<RunResult, LoadError> {
        self.run_engine(prog, packet, input, repeat, Engine::Interp)
    }

    /// [`LoadedObject::run_repeat`] under `engine`.
    pub fn run_engine(
        &mut self,
        prog: &LinkedProgram,
        packet: &[u8],
        input: Input,
        repeat: u32,
        engine: Engine,
    ) -> Result<RunResult, LoadError> {
        let mut out = RunResult::default();
        self.run_engine_into(prog, packet, input, repeat, engine, &mut out)?;
        Ok(out)
    }

    /// [`LoadedObject::run_engine`] into `out` (see [`Runner::run_repeat_into`]): for loops of
    /// single runs, which pass the same `out` to every one.
    pub fn run_engine_into(
        &mut self,
        prog: &LinkedProgram,
        packet: &[u8],
        input: Input,
        repeat: u32,
        engine: Engine,
        out: &mut RunResult,
    ) -> Result<(), LoadError> {
        if let Some(what) = prog.not_test_runnable {
            return Err(LoadError::NotTestRunnable {
                name: prog.name.clone(),
                what,
            });
        }
        for id in std::mem::take(&mut self.to_freeze) {
            // A freeze fails only for a map that is already read-only to the host.
            let _ = self.runner.maps.freeze(id);
        }
        let (exec, counts) = prog.executable(engine, repeat)?;
        self.runner.set_tail_engine(engine);
        self.runner
            .run_repeat_into(exec, prog.prog_type, packet, input, repeat, out)?;
        if engine == Engine::Auto && counts {
            prog.jit.ran(out.insns.saturating_mul(repeat.max(1) as u64));
        }
        Ok(())
    }
}
