//! The suite in the live kernel: each test that expects an `r0` runs as an XDP program through
//! BPF_PROG_TEST_RUN (the wrapper in `bpfsim_kernel::conformance` hands back the full 64-bit
//! `r0` through a map), and its `r0` is compared with every engine's.

use std::path::Path;

use bpfsim_kernel::KernelBpf;

use super::runner::{execute, prepare, Engine};

/// What the kernel made of one test file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelVerdict {
    /// The test expects no `r0` (a rejection, no result section, a malformed file): not compared.
    NotCompared,
    /// The kernel cannot run it (its verifier rejects it, a helper it lacks, callx ...): why.
    CannotRun(String),
    /// The kernel and every engine give this `r0`.
    Agree(u64),
    /// The kernel and an engine differ: in words.
    Differ(String),
}

/// Run one file in the kernel and under `engines`, and compare the `r0`s.
pub fn kernel_check(path: &Path, bpf: &KernelBpf, engines: &[Engine]) -> KernelVerdict {
    let Ok(p) = prepare(path) else {
        return KernelVerdict::NotCompared;
    };
    if p.expected_r0().is_none() {
        return KernelVerdict::NotCompared;
    }
    let kernel = match bpf.run_conformance_in_kernel(&p.bytes, &p.test.mem) {
        Ok(r0) => r0,
        Err(reject) => return KernelVerdict::CannotRun(reject.reason),
    };
    let mut differences = Vec::new();
    for &engine in engines {
        match execute(engine, &p.prog, &p.test.mem) {
            Ok(Ok(r0)) if r0 == kernel => {}
            Ok(Ok(r0)) => differences.push(format!(
                "kernel r0 = {kernel:#x}, {} r0 = {r0:#x}",
                engine.name()
            )),
            Ok(Err(trap)) => differences.push(format!(
                "kernel r0 = {kernel:#x}, {} trapped: {trap}",
                engine.name()
            )),
            Err(e) => differences.push(format!(
                "kernel r0 = {kernel:#x}, {} could not run: {e}",
                engine.name()
            )),
        }
    }
    if differences.is_empty() {
        KernelVerdict::Agree(kernel)
    } else {
        KernelVerdict::Differ(differences.join("; "))
    }
}
