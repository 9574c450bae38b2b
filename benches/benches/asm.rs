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

    let jit = bpfsim_jit::JitProgram::compile(&prog).expect("the JIT compiles the workload");
    let first = jit
        .run_with_memory(&mut vm, &mut NoHelpers, &mut mem)
        .result;
    assert_eq!(first, Ok(w.expected), "bpfsim JIT on {}", w.name);
    group.bench_function("bpfsim_jit", |b| {
        b.iter(|| {
            jit.run_with_memory(&mut vm, &mut NoHelpers, black_box(&mut mem))
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
        group.bench_function("rbpf_jit", |b| {
            // SAFETY: as above.
            b.iter(|| unsafe { rbpf_jit.execute_program_jit(black_box(&mut m)) }.ok())
        });
    }

    group.finish();
}

fn execute(c: &mut Criterion) {
    for w in bpfsim_benches::all() {
        bench_workload(c, &w);
    }
}

/// JIT compile time of a 1,000-instruction program (the bound: 2 ms).
fn compile(c: &mut Criterion) {
    let mut src = String::from("mov %r0, 0\nmov %r1, 1\n");
    for i in 0..332 {
        src.push_str(&format!(
            "add %r0, %r1\nxor %r0, {i}\njgt %r0, {}, +0\n",
            i * 7
        ));
    }
    src.push_str("exit\n");
    let prog = bpfsim_vm::Program::new(bpfsim_vm::asm::assemble(&src).unwrap()).unwrap();
    assert!(prog.insns().len() >= 995);
    let mut group = c.benchmark_group("compile_1000_insns");
    group.bench_function("bpfsim_jit", |b| {
        b.iter(|| bpfsim_jit::JitProgram::compile(black_box(&prog)).unwrap())
    });
    group.bench_function("bpfsim_interp_translate", |b| {
        b.iter(|| Interpreter::new(black_box(&prog)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = execute, compile
}
criterion_main!(benches);
