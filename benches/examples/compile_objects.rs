//! Compile time of real objects' programs under the JIT, for profiling with `perf record`:
//! `cargo run --release -p bpfsim-benches --example compile_objects -- [iterations] FILE.o...`.
//! Prints, per program, its instruction slots and the compile time with the verifier's hints
//! (as a simulated run compiles it), with them but for the stack accesses' (`Hints::stack`,
//! which a program without proven stack accesses through pointers other than `r10` does not
//! notice), and without (as the criterion `jit_compile` rows do), in thread CPU time, and the
//! total in ms per 1,000 instructions. The three are timed one after the other per program.
//! `--synthetic` (or `--synthetic-skips`) in place of the files compiles the criterion row's
//! synthetic 1,000-instruction program instead (no hints: it has no memory access). Each
//! line also gives the baseline tier's compile time (`JitProgram::compile_baseline`).

use bpfsim_helpers::object::LoadedObject;
use bpfsim_helpers::Env;
use bpfsim_jit::{Hints, JitProgram};
use bpfsim_vm::Program;

/// This thread's CPU time: the machine is shared, wall time would count other processes.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = match args.first().and_then(|a| a.parse().ok()) {
        Some(n) => {
            args.remove(0);
            n
        }
        None => 50,
    };
    let synthetic = if args.iter().any(|a| a == "--synthetic") {
        Some(bpfsim_benches::synthetic_1000())
    } else if args.iter().any(|a| a == "--synthetic-skips") {
        Some(bpfsim_benches::synthetic_1000_skips())
    } else {
        None
    };
    if let Some(prog) = synthetic {
        JitProgram::compile(&prog).expect("compiles");
        let t = cpu_seconds();
        for _ in 0..n {
            std::hint::black_box(JitProgram::compile(&prog).expect("compiles"));
        }
        let ms = (cpu_seconds() - t) * 1e3 / n as f64;
        let t = cpu_seconds();
        for _ in 0..n {
            std::hint::black_box(JitProgram::compile_baseline(&prog).expect("compiles"));
        }
        let base = (cpu_seconds() - t) * 1e3 / n as f64;
        println!(
            "synthetic program, {} insns: {ms:.3} ms per compile, {base:.3} ms in the baseline tier",
            prog.insns().len()
        );
        return;
    }
    let (mut insns, mut with_ms, mut without_ms, mut no_stack_ms) = (0usize, 0f64, 0f64, 0f64);
    let mut base_ms = 0f64;
    for path in &args {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let obj = match LoadedObject::load(&bytes, Env::default()) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        for name in obj.program_names() {
            let linked = match obj.program(&name, None) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{path} {name}: {e}");
                    continue;
                }
            };
            let prog = Program::new(linked.insns.clone()).expect("a linked program");
            let hints = linked.jit_hints();
            let time = |h: &Hints| {
                JitProgram::compile_with(&prog, h).expect("compiles");
                let t = cpu_seconds();
                for _ in 0..n {
                    std::hint::black_box(JitProgram::compile_with(&prog, h).expect("compiles"));
                }
                (cpu_seconds() - t) * 1e3 / n as f64
            };
            let w = time(&hints);
            let ns = time(&Hints {
                stack: Vec::new(),
                ..hints.clone()
            });
            let wo = time(&Hints::default());
            let base = {
                JitProgram::compile_baseline(&prog).expect("compiles");
                let t = cpu_seconds();
                for _ in 0..n {
                    std::hint::black_box(JitProgram::compile_baseline(&prog).expect("compiles"));
                }
                (cpu_seconds() - t) * 1e3 / n as f64
            };
            let len = prog.insns().len();
            let stack = hints.stack.iter().filter(|&&s| s).count();
            let size = |h: &Hints| {
                JitProgram::compile_with(&prog, h)
                    .expect("compiles")
                    .code_size
            };
            let (size_w, size_ns) = (
                size(&hints),
                size(&Hints {
                    stack: Vec::new(),
                    ..hints.clone()
                }),
            );
            println!(
                "{path} {name}: {len} insns, {w:.3} ms with hints, {ns:.3} without the stack's \
                 ({stack} proven stack accesses; code {size_w} bytes against {size_ns}), \
                 {wo:.3} ms without, {base:.3} ms in the baseline tier"
            );
            base_ms += base;
            insns += len;
            with_ms += w;
            no_stack_ms += ns;
            without_ms += wo;
        }
    }
    println!(
        "total {insns} insns: {:.2} ms per 1,000 with hints, {:.2} without the stack's, {:.2} \
         without, {:.3} in the baseline tier",
        with_ms * 1e3 / insns as f64,
        no_stack_ms * 1e3 / insns as f64,
        without_ms * 1e3 / insns as f64,
        base_ms * 1e3 / insns as f64
    );
}
