//! The benchmark suite, one criterion group per phase, on the C workloads of
//! `test-vectors/bench/` (see `src/objects.rs`):
//!
//! - `load/<object>/{elf,sim,kernel}`: bpfsim's ELF parser and linker alone; the simulator's load
//!   (maps created, program linked and translated for the interpreter); the kernel's load through
//!   `bpfsim-kernel` (maps created, `BPF_PROG_LOAD`, which includes the kernel's verifier and JIT).
//! - `verify/<object>/{bpfsim,kernel}`: bpfsim's verifier on the program as libbpf would load it;
//!   the kernel's, as a raw `BPF_PROG_LOAD` (its JIT included; programs without maps).
//! - `jit_compile/<object>/{bpfsim_jit,bpfsim_interp_translate,rbpf_jit}`, and the same on two
//!   synthetic 1,000-instruction programs (`synthetic_1000_insns`: straight-line code cut by
//!   conditional jumps to the next instruction; `synthetic_1000_skips`: if-then blocks, a jump
//!   over one instruction, whose joins carry values) and on a real one of several hundred
//!   (`parse_headers_481_insns`, also `/bpfsim_jit_hints`: with the verifier's hints, as a
//!   simulated run compiles it; the other rows compile without hints); `/bpfsim_baseline` is
//!   the baseline tier's compile (`JitProgram::compile_baseline`, x86-64 only).
//! - `execute/<workload>/{interp,jit,kernel,rbpf_interp,rbpf_jit}`: one run of the program on its
//!   packet. `interp` and `jit` go through the simulator's test-run API with `repeat`, as the
//!   kernel's row does (`Runner::run_repeat`: the XDP frame built and the maps mapped once per
//!   batch, the program run `repeat` times, the result collected once; the time of the batch
//!   divided by its runs); `interp_once` and `jit_once` (for `empty` and `map_heavy`) are one
//!   whole test run per iteration, set-up and result included (what `bpfsim run` and one
//!   `prog.run()` from Python pay); `kernel` is `BPF_PROG_TEST_RUN` with `repeat`, timed by the
//!   kernel itself (its average duration, reported as is, nothing subtracted); rbpf runs the workloads without maps or helpers as raw bytecode,
//!   with the packet pointers in a metadata buffer (`ObjectWorkload::rbpf_bytecode` says how that
//!   context differs from the kernel's).
//!
//! Times are thread CPU time unless `BPFSIM_BENCH_CLOCK=wall` (see `common/mod.rs`).
//!
//! Every function checks the workload's result before it times anything. The kernel's functions
//! are skipped, with one printed reason, where bpf(2) is unavailable.

use std::hint::black_box;
use std::time::Duration;

use bpfsim_benches::objects;
use bpfsim_helpers::object::{Engine, LoadedObject};
use bpfsim_helpers::run::Input;
use bpfsim_helpers::Env;
use bpfsim_vm::{Interpreter, Program};
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, SamplingMode};

mod common;
use common::Clock;

type Criterion = criterion::Criterion<Clock>;

/// The kernel, or why it cannot be used (printed once per group).
#[cfg(target_os = "linux")]
fn kernel(group: &str) -> Option<bpfsim_kernel::KernelBpf> {
    match bpfsim_kernel::KernelBpf::probe() {
        Ok(bpf) => Some(bpf),
        Err(u) => {
            eprintln!("{group}/*/kernel skipped: {u}");
            None
        }
    }
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    // A kernel load verifies the program: milliseconds for the loops, so few samples.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    #[cfg(target_os = "linux")]
    let bpf = kernel("load");
    for w in objects::distinct_objects() {
        let name = w.object_name();
        let obj = bpfsim_vm::loader::load_object(w.elf).expect("the object loads");
        assert!(obj.find_program(w.prog).is_ok(), "{}: {}", w.file, w.prog);
        group.bench_function(format!("{name}/elf"), |b| {
            b.iter(|| bpfsim_vm::loader::load_object(black_box(w.elf)).unwrap())
        });
        group.bench_function(format!("{name}/sim"), |b| {
            b.iter(|| {
                let obj = LoadedObject::load(black_box(w.elf), Env::default()).unwrap();
                let prog = obj.program(w.prog, None).unwrap();
                (obj, prog)
            })
        });
        #[cfg(target_os = "linux")]
        if let Some(bpf) = &bpf {
            let runner = bpfsim_kernel::KernelRunner::load(bpf, w.elf)
                .unwrap_or_else(|e| panic!("kernel load of {}: {e}", w.file));
            assert!(runner.prog_fd(w.prog).is_ok());
            drop(runner);
            group.bench_function(format!("{name}/kernel"), |b| {
                b.iter(|| bpfsim_kernel::KernelRunner::load(bpf, black_box(w.elf)).unwrap())
            });
        }
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    #[cfg(target_os = "linux")]
    let bpf = kernel("verify");
    for w in objects::distinct_objects() {
        let obj = bpfsim_vm::loader::load_object(w.elf).expect("the object loads");
        let prog = obj.find_program(w.prog).expect("program");
        let v = bpfsim_verifier::verify_object_program(&obj, prog, None, 0).expect("typed");
        assert!(v.accepted, "{}: {:?}", w.file, v.error);
        group.bench_function(format!("{}/bpfsim", w.object_name()), |b| {
            b.iter(|| {
                bpfsim_verifier::verify_object_program(black_box(&obj), prog, None, 0)
                    .unwrap()
                    .accepted
            })
        });
        #[cfg(target_os = "linux")]
        if let Some(bpf) = &bpf {
            bench_kernel_verify(&mut group, bpf, &w, prog);
        }
    }
    group.finish();
}

/// The kernel's verifier: a raw `BPF_PROG_LOAD` of the program, timed with the same clock as
/// bpfsim's verifier (the thread's CPU time includes the system call's). That also counts the
/// kernel's JIT of the program (the whole load of the empty program is about 20 µs). Not the
/// `verification time` of the kernel's `BPF_LOG_STATS` line: that is kernel wall time, which a
/// busy machine inflates, and any log level of 1 or more makes the kernel print every
/// instruction it walks (10-20x slower on these loops). Programs with maps or callbacks are left
/// out (a raw load would need their fds, or BTF `func_info`): `load/*/kernel` covers them.
#[cfg(target_os = "linux")]
fn bench_kernel_verify(
    group: &mut BenchmarkGroup<'_, Clock>,
    bpf: &bpfsim_kernel::KernelBpf,
    w: &objects::ObjectWorkload,
    prog: &bpfsim_vm::loader::ObjProgram,
) {
    use bpfsim_vm::isa::{Imm64, Insn};
    let has_maps = prog.insns.iter().any(|i| {
        matches!(
            i,
            Insn::LdImm64 {
                imm: Imm64::MapIdx(_) | Imm64::MapIdxValue { .. } | Imm64::Func(_),
                ..
            }
        )
    });
    if has_maps {
        return;
    }
    let code = prog.to_bytes();
    let xdp = bpfsim_kernel::ProgType::XDP;
    bpf.prog_load(xdp, &code, "GPL", 1)
        .unwrap_or_else(|e| panic!("kernel verifier on {}: {e}", w.file));
    group.bench_function(format!("{}/kernel", w.object_name()), |b| {
        b.iter(|| bpf.prog_load(xdp, black_box(&code), "GPL", 0).unwrap())
    });
}

fn jit_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("jit_compile");
    group.sample_size(20);
    let mut progs: Vec<(String, Program, Option<Vec<u8>>)> = objects::distinct_objects()
        .into_iter()
        .map(|w| {
            let (_, linked) = w.load_sim();
            let prog = Program::new(linked.insns.clone()).expect("a linked program");
            (w.object_name().to_string(), prog, w.rbpf_bytecode())
        })
        .collect();
    progs.push((
        "synthetic_1000_insns".to_string(),
        bpfsim_benches::synthetic_1000(),
        None,
    ));
    progs.push((
        "synthetic_1000_skips".to_string(),
        bpfsim_benches::synthetic_1000_skips(),
        None,
    ));
    // A real program of several hundred instructions (a header parser: packet accesses, map
    // lookups), compiled as a simulated run compiles it, with the verifier's hints.
    let obj = LoadedObject::load(
        include_bytes!("../../test-vectors/progs/parse_headers.bpf.o"),
        Env::default(),
    )
    .expect("parse_headers.bpf.o loads");
    let linked = obj.program("xdp_parse", None).expect("xdp_parse links");
    let hints = linked.jit_hints();
    assert!(
        hints.packet.iter().any(|&p| p),
        "the verifier accepts xdp_parse"
    );
    let parse = Program::new(linked.insns.clone()).expect("a linked program");
    bpfsim_jit::JitProgram::compile_with(&parse, &hints).expect("the JIT compiles xdp_parse");
    group.bench_function(
        format!(
            "parse_headers_{}_insns/bpfsim_jit_hints",
            parse.insns().len()
        ),
        |b| b.iter(|| bpfsim_jit::JitProgram::compile_with(black_box(&parse), &hints).unwrap()),
    );
    progs.push((
        format!("parse_headers_{}_insns", parse.insns().len()),
        parse,
        None,
    ));
    for (name, prog, rbpf_code) in &progs {
        bpfsim_jit::JitProgram::compile(prog).expect("the JIT compiles the program");
        group.bench_function(format!("{name}/bpfsim_jit"), |b| {
            b.iter(|| bpfsim_jit::JitProgram::compile(black_box(prog)).unwrap())
        });
        group.bench_function(format!("{name}/bpfsim_interp_translate"), |b| {
            b.iter(|| Interpreter::new(black_box(prog)))
        });
        #[cfg(target_arch = "x86_64")]
        group.bench_function(format!("{name}/bpfsim_baseline"), |b| {
            b.iter(|| bpfsim_jit::JitProgram::compile_baseline(black_box(prog)).unwrap())
        });
        #[cfg(target_arch = "x86_64")]
        if let Some(code) = rbpf_code {
            // rbpf's constructor runs its own (small) verifier; both are timed, as a user pays both.
            group.bench_function(format!("{name}/rbpf_jit"), |b| {
                b.iter(|| {
                    let mut vm = rbpf::EbpfVmMbuff::new(Some(black_box(code))).unwrap();
                    vm.jit_compile().unwrap();
                    vm
                })
            });
        }
    }
    group.finish();
}

/// Runs of one simulated test run at most (`repeat` is a u32; keep each call short).
const REPEAT_CHUNK: u64 = 1 << 20;

/// Workloads also timed one test run per iteration (`<engine>_once`): the empty program (the
/// fixed cost) and the one with maps (whose regions each run maps).
const ONCE_TOO: [&str; 2] = ["empty", "map_heavy"];

/// Runs of one `BPF_PROG_TEST_RUN` at most (the kernel takes a u32; keep each call short).
#[cfg(target_os = "linux")]
const KERNEL_CHUNK: u64 = 1 << 20;

fn execute(c: &mut Criterion) {
    let mut group = c.benchmark_group("execute");
    #[cfg(target_os = "linux")]
    let bpf = kernel("execute");
    for w in objects::all() {
        let id = |engine: &str| format!("{}/{engine}", w.name);
        for (engine, label) in [(Engine::Interp, "interp"), (Engine::Jit, "jit")] {
            let (mut obj, prog) = w.load_sim();
            let r = obj
                .run_engine(&prog, &w.packet, Input::default(), 1, engine)
                .unwrap_or_else(|e| panic!("{} {label}: {e}", w.name));
            assert_eq!(r.trap, None, "{} {label}", w.name);
            assert_eq!(r.retval as u32, w.expected, "{} {label}", w.name);
            if !w.flows.is_empty() {
                let id = obj.map_id("class_stats").expect("map_heavy's counters");
                let key = objects::MAP_HEAVY_CLASS.to_le_bytes();
                let per_cpu = obj.runner.maps.lookup_percpu(id, &key).unwrap();
                assert_eq!(objects::class_packets(&per_cpu), 1, "{} {label}", w.name);
            }
            // Criterion times the runs: the runner's own clock reads are not wanted.
            obj.runner.set_timing(false);
            // As the kernel's row: `repeat` runs of one test run, the frame and maps set up
            // once (`Runner::run_repeat`), the time divided by the runs.
            group.bench_function(id(label), |b| {
                b.iter_custom(|iters| {
                    let clock = Clock::from_env();
                    let start = clock.start();
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(REPEAT_CHUNK);
                        let r = obj
                            .run_engine(
                                &prog,
                                black_box(&w.packet),
                                Input::default(),
                                n as u32,
                                engine,
                            )
                            .unwrap();
                        black_box(r.retval);
                        left -= n;
                    }
                    clock.end(start)
                })
            });
            // One test run per iteration, set-up and result included (`bpfsim run`, one
            // `prog.run()` from Python): what a single run costs beyond the program.
            if ONCE_TOO.contains(&w.name) {
                group.bench_function(id(&format!("{label}_once")), |b| {
                    b.iter(|| {
                        obj.run_engine(&prog, black_box(&w.packet), Input::default(), 1, engine)
                            .unwrap()
                            .retval
                    })
                });
            }
        }

        #[cfg(target_os = "linux")]
        if let Some(bpf) = &bpf {
            bench_kernel(&mut group, bpf, &w);
        }

        if let Some(code) = w.rbpf_bytecode() {
            let vm = rbpf::EbpfVmMbuff::new(Some(&code)).expect("rbpf accepts the program");
            let mbuff = objects::rbpf_mbuff(&w.packet);
            let r0 = vm.execute_program(&w.packet, &mbuff).expect("rbpf run");
            assert_eq!(r0 as u32, w.expected, "{} rbpf_interp", w.name);
            group.bench_function(id("rbpf_interp"), |b| {
                b.iter(|| {
                    vm.execute_program(black_box(&w.packet), black_box(&mbuff))
                        .unwrap()
                })
            });

            // rbpf's x86-64 JIT checks no memory access: the unsafe baseline.
            #[cfg(target_arch = "x86_64")]
            {
                let mut vm = rbpf::EbpfVmMbuff::new(Some(&code)).expect("rbpf accepts it");
                vm.jit_compile().expect("rbpf compiles the program");
                // The metadata buffer points into `packet`, which neither moves nor is written.
                let mut packet = w.packet.clone();
                let mut mbuff = objects::rbpf_mbuff(&packet);
                // SAFETY: the program only reads the packet between the two pointers of `mbuff`
                // (checked by rbpf's interpreter, which bounds-checks every access, above), and
                // `packet` outlives every run.
                let r0 = unsafe { vm.execute_program_jit(&mut packet, &mut mbuff) }.unwrap();
                assert_eq!(r0 as u32, w.expected, "{} rbpf_jit", w.name);
                group.bench_function(id("rbpf_jit"), |b| {
                    // SAFETY: as above.
                    b.iter(|| unsafe {
                        vm.execute_program_jit(black_box(&mut packet), black_box(&mut mbuff))
                            .unwrap()
                    })
                });
            }
        }
    }
    group.finish();
}

/// The kernel's JIT through `BPF_PROG_TEST_RUN`: the time is the kernel's own measurement (the
/// average over `repeat` runs in its test-run loop, whole nanoseconds), not the wall time of
/// the system call.
#[cfg(target_os = "linux")]
fn bench_kernel(
    group: &mut BenchmarkGroup<'_, Clock>,
    bpf: &bpfsim_kernel::KernelBpf,
    w: &objects::ObjectWorkload,
) {
    let mut runner = bpfsim_kernel::KernelRunner::load(bpf, w.elf)
        .unwrap_or_else(|e| panic!("kernel load of {}: {e}", w.file));
    for (k, v) in &w.flows {
        runner.map_update("flows", k, v).expect("flow table");
    }
    let r = runner
        .run_repeat(w.prog, &w.packet, &Input::default(), 1)
        .unwrap_or_else(|e| panic!("{} kernel: {e}", w.name));
    assert_eq!(r.result.retval as u32, w.expected, "{} kernel", w.name);
    if !w.flows.is_empty() {
        let key = objects::MAP_HEAVY_CLASS.to_le_bytes();
        let entries = runner.map_entries("class_stats").unwrap();
        let (_, per_cpu) = entries.iter().find(|(k, _)| k[..] == key).unwrap();
        assert_eq!(objects::class_packets(per_cpu), 1, "{} kernel", w.name);
    }
    group.bench_function(format!("{}/kernel", w.name), |b| {
        b.iter_custom(|iters| {
            let mut total = 0u64;
            let mut left = iters;
            while left > 0 {
                let n = left.min(KERNEL_CHUNK);
                let r = runner
                    .run_repeat(w.prog, &w.packet, &Input::default(), n as u32)
                    .unwrap();
                total += r.duration_ns * n;
                left -= n;
            }
            Duration::from_nanos(total)
        })
    });
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = load, verify, jit_compile, execute
}
criterion_main!(benches);
