//! The engines alone: each hand-written assembly workload of `src/lib.rs` on bpfsim's interpreter
//! and JIT and on rbpf's interpreter and JIT, with the memory in `r1` (the conformance
//! convention), so no test-run set-up is timed. Group `asm`, functions `<workload>/<engine>`.
//!
//! Times are thread CPU time unless `BPFSIM_BENCH_CLOCK=wall` (see `common/mod.rs`).
//!
//! Programs are loaded and translated, and VMs built, outside the timed loop; each iteration is one
//! run of the program. `cargo test --benches` runs every benchmark once (criterion's test mode).

use std::hint::black_box;

use bpfsim_benches::Workload;
use bpfsim_vm::{Interpreter, NoHelpers, Vm};
use criterion::{criterion_group, criterion_main, BenchmarkGroup};

mod common;
use common::Clock;

type Criterion = criterion::Criterion<Clock>;

/// Every engine's result is consumed the same way, as an `Option<u64>` (rbpf's `.ok()`): a
/// `Result<u64, Trap>` handed to `black_box` whole is written with a one-byte tag and read back
/// in wider loads, a store-forwarding stall that cost more than the empty run itself.
fn bench_workload(group: &mut BenchmarkGroup<'_, Clock>, w: &Workload) {
    let id = |engine: &str| format!("{}/{engine}", w.name);

    let prog = w.program();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    // No workload writes its memory, so every run can reuse one buffer.
    let mut mem = w.mem.clone();
    let first = vm.run_with_memory(&interp, &mut NoHelpers, &mut mem).result;
    assert_eq!(first, Ok(w.expected), "bpfsim on {}", w.name);
    group.bench_function(id("bpfsim_interp"), |b| {
        b.iter(|| {
            vm.run_with_memory(&interp, &mut NoHelpers, black_box(&mut mem))
                .result
                .ok()
        })
    });

    // The JIT through a session, its entry for many runs of one program: the run's context is
    // built once, and each run sets only its arguments, memory rows and budget.
    let jit = bpfsim_jit::JitProgram::compile(&prog).expect("the JIT compiles the workload");
    let mut session = jit.session();
    let first = session.run_with_memory(&mut NoHelpers, &mut mem).result;
    assert_eq!(first, Ok(w.expected), "bpfsim JIT on {}", w.name);
    group.bench_function(id("bpfsim_jit"), |b| {
        b.iter(|| {
            session
                .run_with_memory(&mut NoHelpers, black_box(&mut mem))
                .result
                .ok()
        })
    });

    // rbpf's EbpfVmRaw sets only r1, so its bytecode loads r2 itself (see `bytecode_r1_only`).
    let code = w.bytecode_r1_only();
    let rbpf_vm = rbpf::EbpfVmRaw::new(Some(&code)).expect("rbpf accepts the program");
    let mut rbpf_mem = w.mem.clone();
    let first = rbpf_vm.execute_program(&mut rbpf_mem).expect("rbpf run");
    assert_eq!(first, w.expected, "rbpf on {}", w.name);
    group.bench_function(id("rbpf_interp"), |b| {
        b.iter(|| rbpf_vm.execute_program(black_box(&mut rbpf_mem)).ok())
    });

    // rbpf's x86-64 JIT: no bounds checks at all, the unsafe baseline.
    #[cfg(target_arch = "x86_64")]
    {
        let mut rbpf_jit = rbpf::EbpfVmRaw::new(Some(&code)).expect("rbpf accepts the program");
        rbpf_jit.jit_compile().expect("rbpf compiles the program");
        let mut m = w.mem.clone();
        // SAFETY: the workloads only touch the memory they are given (checked by the
        // interpreters' runs above); rbpf's JIT code does not check.
        let first = unsafe { rbpf_jit.execute_program_jit(&mut m) }.expect("rbpf JIT run");
        assert_eq!(first, w.expected, "rbpf JIT on {}", w.name);
        group.bench_function(id("rbpf_jit"), |b| {
            // SAFETY: as above.
            b.iter(|| unsafe { rbpf_jit.execute_program_jit(black_box(&mut m)) }.ok())
        });
    }
}

fn asm(c: &mut Criterion) {
    let mut group = c.benchmark_group("asm");
    for w in bpfsim_benches::all() {
        bench_workload(&mut group, &w);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = asm
}
criterion_main!(benches);
