//! Execution time of each workload on bpfsim's interpreter and on rbpf's, side by side.
//!
//! Programs are loaded and translated, and VMs built, outside the timed loop; each iteration is one
//! run of the program. `cargo test --benches` runs every benchmark once (criterion's test mode).

use std::hint::black_box;
use std::time::Duration;

use bpfsim_benches::Workload;
use bpfsim_vm::{Interpreter, NoHelpers, Vm};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench_workload(c: &mut Criterion, w: &Workload) {
    let mut group = c.benchmark_group(w.name);

    let prog = w.program();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    // No workload writes its memory, so every run can reuse one buffer.
    let mut mem = w.mem.clone();
    let first = vm.run_with_memory(&interp, &mut NoHelpers, &mut mem).result;
    assert_eq!(first, Ok(w.expected), "bpfsim on {}", w.name);
    group.bench_function("bpfsim_interp", |b| {
        b.iter(|| {
            vm.run_with_memory(&interp, &mut NoHelpers, black_box(&mut mem))
                .result
        })
    });

    // rbpf's EbpfVmRaw sets only r1, so its bytecode loads r2 itself (see `bytecode_r1_only`).
    let code = w.bytecode_r1_only();
    let rbpf_vm = rbpf::EbpfVmRaw::new(Some(&code)).expect("rbpf accepts the program");
    let mut rbpf_mem = w.mem.clone();
    let first = rbpf_vm.execute_program(&mut rbpf_mem).expect("rbpf run");
    assert_eq!(first, w.expected, "rbpf on {}", w.name);
    group.bench_function("rbpf_interp", |b| {
        b.iter(|| rbpf_vm.execute_program(black_box(&mut rbpf_mem)).ok())
    });

    group.finish();
}

fn execute(c: &mut Criterion) {
    for w in bpfsim_benches::all() {
        bench_workload(c, &w);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = execute
}
criterion_main!(benches);
