//! Judging one test file: assemble or decode it, load it, run it under each engine.
//!
//! A test passes when the program runs to `exit` with the expected 64-bit `r0`. A test expecting
//! an error (an `-- error` section, or any file under a `negative/` folder, which upstream keeps
//! for its assembler's and runner's own self-tests) passes only when the program is rejected by
//! the assembler or the loader, or traps, or, when it runs to `exit`, when the verifier rejects
//! it as an XDP program (the kernel's runner meets such a program at its verifier, which is how
//! upstream's kernel plugin rejects it; the engines run unverified programs memory-safely).

use std::path::{Path, PathBuf};

use bpfsim_vm::{asm, ConformanceHost, Interpreter, Program, Vm};

use super::data::{self, TestFile};

/// Upstream files whose expectation is deliberately wrong, with the reason. Such a test is run
/// as written and must fail; the failure is reported with this note, never inverted.
const KNOWN_WRONG: &[(&str, &str)] = &[(
    "incorrect_return_value_high_bits.data",
    "expected to fail: upstream's expected result is deliberately wrong in the high bits, \
     to prove that a runner compares all 64 bits of r0",
)];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Engine {
    Interp,
    Jit,
    /// The JIT's baseline tier (`JitProgram::compile_baseline`, x86-64 only).
    Baseline,
}

impl Engine {
    /// The engines this build can run.
    pub fn available() -> Vec<Engine> {
        if cfg!(target_arch = "x86_64") {
            vec![Engine::Interp, Engine::Jit, Engine::Baseline]
        } else {
            vec![Engine::Interp, Engine::Jit]
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Interp => "interp",
            Engine::Jit => "jit",
            Engine::Baseline => "baseline",
        }
    }

    pub fn from_name(name: &str) -> Option<Engine> {
        Engine::available().into_iter().find(|e| e.name() == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    /// The engine (None when the failure came before any engine ran) and the reason.
    Fail(Option<Engine>, String),
    Skip(String),
}

/// The verdict on one file: a pass needs every engine to pass.
#[derive(Clone, Debug)]
pub struct Report {
    pub path: PathBuf,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|o| matches!(o, Outcome::Fail(..)))
    }

    pub fn skipped(&self) -> bool {
        self.outcomes.iter().any(|o| matches!(o, Outcome::Skip(_)))
    }
}

/// The `.data` files named by `paths`: files as given, folders searched recursively, sorted.
pub fn collect(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|e| e == "data") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no such file or folder", p.display()),
            ));
        }
    }
    Ok(out)
}

enum Expect {
    Result(u64, Option<&'static str>),
    Rejection(String),
}

fn expectation(path: &Path, t: &TestFile) -> Option<Expect> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let known_wrong = KNOWN_WRONG
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why);
    let in_negative = path
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|d| d == "negative");
    match (&t.error, t.result) {
        (Some(hint), _) => Some(Expect::Rejection(hint.clone())),
        (None, Some(r)) if known_wrong.is_some() => Some(Expect::Result(r, known_wrong)),
        (None, Some(_)) if in_negative => Some(Expect::Rejection(String::new())),
        (None, Some(r)) => Some(Expect::Result(r, None)),
        (None, None) => None,
    }
}

fn hint(h: &str) -> String {
    if h.is_empty() {
        String::new()
    } else {
        format!(" (upstream expects the error `{h}`)")
    }
}

/// A test file read, assembled and decoded, with what it expects.
#[cfg_attr(not(kernel_backend), allow(dead_code))]
pub(super) struct Prepared {
    pub(super) test: TestFile,
    pub(super) bytes: Vec<u8>,
    pub(super) prog: Program,
    expect: Expect,
}

#[cfg_attr(not(kernel_backend), allow(dead_code))]
impl Prepared {
    /// The 64-bit `r0` the test expects, when it expects one (not a rejection).
    pub(super) fn expected_r0(&self) -> Option<u64> {
        match self.expect {
            Expect::Result(r, _) => Some(r),
            Expect::Rejection(_) => None,
        }
    }
}

/// Read and decode one file; `Err` is the report to give when it cannot run at all.
pub(super) fn prepare(path: &Path) -> Result<Prepared, Vec<Outcome>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Outcome::Fail(None, format!("cannot read: {e}"))])?;
    let t = data::parse(&text)
        .map_err(|e| vec![Outcome::Fail(None, format!("malformed test file: {e}"))])?;
    if let Some(d) = &t.unknown_directive {
        return Err(vec![Outcome::Skip(format!("unknown directive `{d}`"))]);
    }
    if t.asm.is_empty() && t.raw.as_ref().is_none_or(|r| r.is_empty()) {
        return Err(vec![Outcome::Skip("no instructions".to_string())]);
    }
    let Some(expect) = expectation(path, &t) else {
        return Err(vec![Outcome::Skip(
            "no result or error section".to_string(),
        )]);
    };
    let rejected = |stage: &str, msg: String| match &expect {
        Expect::Rejection(_) => Outcome::Pass(format!("rejected by the {stage}: {msg}")),
        Expect::Result(..) => Outcome::Fail(None, format!("{stage} rejected the program: {msg}")),
    };
    let bytes = match &t.raw {
        Some(lines) => data::raw_bytes(lines)
            .map_err(|e| vec![Outcome::Fail(None, format!("malformed raw section: {e}"))])?,
        None => match asm::assemble(&t.asm_text()) {
            Ok(insns) => bpfsim_vm::isa::encode(&insns),
            Err(e) => return Err(vec![rejected("assembler", e.to_string())]),
        },
    };
    let prog = match Program::from_bytes(&bytes) {
        Ok(p) => p,
        Err(e) => return Err(vec![rejected("loader", e.to_string())]),
    };
    Ok(Prepared {
        test: t,
        bytes,
        prog,
        expect,
    })
}

/// The verifier's first error line when it rejects `prog` as an XDP program, as the kernel's
/// runner would load it.
fn verifier_rejection(prog: &Program) -> Option<String> {
    let opts = bpfsim_verifier::Options::new(bpfsim_vm::spec::ProgType::Xdp);
    let v = bpfsim_verifier::verify(prog.insns(), &opts);
    (!v.accepted).then(|| v.error.unwrap_or_else(|| "rejected".to_string()))
}

/// Run the program under one engine with the test's memory; `Err` when the engine cannot take it.
pub(super) fn execute(
    engine: Engine,
    prog: &Program,
    mem: &[u8],
) -> Result<Result<u64, bpfsim_vm::Trap>, String> {
    let mut mem = mem.to_vec();
    Ok(match engine {
        Engine::Interp => {
            let interp = Interpreter::new(prog);
            Vm::default()
                .run_with_memory(&interp, &mut ConformanceHost, &mut mem)
                .result
        }
        Engine::Jit => {
            let jit =
                bpfsim_jit::JitProgram::compile(prog).map_err(|e| format!("JIT compile: {e}"))?;
            jit.run_with_memory(&mut Vm::default(), &mut ConformanceHost, &mut mem)
                .result
        }
        Engine::Baseline => {
            let jit = bpfsim_jit::JitProgram::compile_baseline(prog)
                .map_err(|e| format!("baseline compile: {e}"))?;
            jit.run_with_memory(&mut Vm::default(), &mut ConformanceHost, &mut mem)
                .result
        }
    })
}

/// Judge one file under `engines`.
pub fn run_file(path: &Path, engines: &[Engine]) -> Report {
    let report = |outcomes| Report {
        path: path.to_path_buf(),
        outcomes,
    };
    let p = match prepare(path) {
        Ok(p) => p,
        Err(outcomes) => return report(outcomes),
    };
    let outcomes = engines
        .iter()
        .map(|&engine| {
            let result = match execute(engine, &p.prog, &p.test.mem) {
                Ok(r) => r,
                Err(e) => return Outcome::Fail(Some(engine), e),
            };
            match (&p.expect, result) {
                (Expect::Result(want, note), Ok(got)) if got == *want => Outcome::Pass(format!(
                    "r0 = {got:#x}{}",
                    note.map(|n| format!(" ({n})")).unwrap_or_default()
                )),
                (Expect::Result(want, note), Ok(got)) => Outcome::Fail(
                    Some(engine),
                    format!(
                        "r0 = {got:#x}, expected {want:#x}{}",
                        note.map(|n| format!(" -- {n}")).unwrap_or_default()
                    ),
                ),
                (Expect::Result(..), Err(trap)) => {
                    Outcome::Fail(Some(engine), format!("trapped: {trap}"))
                }
                (Expect::Rejection(_), Err(trap)) => Outcome::Pass(format!("trapped: {trap}")),
                (Expect::Rejection(h), Ok(got)) => match verifier_rejection(&p.prog) {
                    Some(err) => Outcome::Pass(format!(
                        "rejected by the verifier (as an XDP program): {err}"
                    )),
                    None => Outcome::Fail(
                        Some(engine),
                        format!(
                            "expected a rejection{}, but it ran to exit with r0 = {got:#x} and \
                             the verifier accepts it",
                            hint(h)
                        ),
                    ),
                },
            }
        })
        .collect();
    report(outcomes)
}
