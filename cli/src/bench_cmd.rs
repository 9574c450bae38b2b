//! `bpfsim bench`: nanoseconds per run of one program under each engine, timed interleaved in
//! one process (round-robin rounds, medians), with each engine's per-call overhead (a trivial
//! program under the same engine) and ratios to the kernel's JIT. Every engine runs each packet
//! as `BPF_PROG_TEST_RUN` with `repeat` does (set up once, run many times), so the ratios compare
//! like with like; the simulator's whole single test run is reported besides.

use std::path::PathBuf;
use std::time::Instant;

use bpfsim_helpers::object::{Engine, LoadedObject};
use bpfsim_helpers::run::{Input, Runner};
use bpfsim_helpers::Env;
use bpfsim_vm::spec::ProgType;
use serde_json::json;

pub struct BenchArgs {
    pub object: PathBuf,
    pub prog: Option<String>,
    pub packets_hex: Vec<String>,
    pub pcap: Option<PathBuf>,
    pub engines: Vec<String>,
    pub json: bool,
    pub rounds: usize,
    /// `NAME:KEYHEX=VALUEHEX` or `NAME:KEYHEX=@PROG`: map slots every engine gets written before
    /// its first timing (as `run --map`), so that lookups find what the program's users put there.
    pub maps: Vec<String>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs per packet in one timing (`repeat`), so that one timing lasts a few milliseconds.
const ITERS: u32 = 2_000;
/// Single test runs of the trivial program per timing.
const SINGLE_RUNS: u32 = 500;

enum Bencher {
    Sim {
        engine: Engine,
        obj: Box<LoadedObject>,
        prog: Box<bpfsim_helpers::object::LinkedProgram>,
        trivial: Box<dyn bpfsim_vm::Executable>,
        runner: Box<Runner>,
    },
    #[cfg(kernel_backend)]
    Kernel {
        runner: Box<bpfsim_kernel::KernelRunner>,
        bpf: bpfsim_kernel::KernelBpf,
        trivial: bpfsim_kernel::ProgFd,
        name: String,
    },
}

/// What one timing gives: ns per run of the program (over the packets), of the trivial
/// program (the per-call overhead), both as `BPF_PROG_TEST_RUN` with `repeat` runs them, and for
/// the simulator the ns of one whole test run of the trivial program (set-up and result
/// included).
struct Timing {
    run: f64,
    overhead: f64,
    single_run: Option<f64>,
    /// Instructions per run, over the packets (the simulator's count; not the kernel's).
    insns: Option<f64>,
}

impl Bencher {
    fn time(&mut self, packets: &[Vec<u8>]) -> Result<Timing, String> {
        match self {
            Bencher::Sim {
                engine,
                obj,
                prog,
                trivial,
                runner,
            } => {
                // As the kernel does with `repeat`: each packet's frame set up once, the program
                // run ITERS times on it, the result collected once.
                let t = Instant::now();
                let mut insns = 0u64;
                for p in packets {
                    let r = obj
                        .run_engine(prog, p, Input::default(), ITERS, *engine)
                        .map_err(|e| e.to_string())?;
                    insns += r.insns;
                }
                let run = t.elapsed().as_nanos() as f64 / (ITERS as f64 * packets.len() as f64);
                let t = Instant::now();
                runner
                    .run_repeat(
                        &**trivial,
                        ProgType::Xdp,
                        &packets[0],
                        Input::default(),
                        ITERS,
                    )
                    .map_err(|e| e.to_string())?;
                let overhead = t.elapsed().as_nanos() as f64 / ITERS as f64;
                let t = Instant::now();
                for _ in 0..SINGLE_RUNS {
                    runner
                        .run(&**trivial, ProgType::Xdp, &packets[0], Input::default())
                        .map_err(|e| e.to_string())?;
                }
                let single = t.elapsed().as_nanos() as f64 / SINGLE_RUNS as f64;
                Ok(Timing {
                    run,
                    overhead,
                    single_run: Some(single),
                    insns: Some(insns as f64 / packets.len() as f64),
                })
            }
            #[cfg(kernel_backend)]
            Bencher::Kernel {
                runner,
                bpf,
                trivial,
                name,
            } => {
                // The kernel times its own loop (BPF_PROG_TEST_RUN's duration, per run).
                let mut total = 0.0;
                for p in packets {
                    let r = runner
                        .run_repeat(name, p, &Input::default(), ITERS)
                        .map_err(|e| e.to_string())?;
                    total += r.duration_ns as f64;
                }
                let run = total / packets.len() as f64;
                let o = bpf
                    .test_run(trivial, &packets[0], ITERS)
                    .map_err(|e| e.to_string())?;
                Ok(Timing {
                    run,
                    overhead: o.duration_ns as f64,
                    single_run: None,
                    insns: None,
                })
            }
        }
    }
}

/// What the figures are, for the text and JSON outputs.
const MEASURES: &str = "ns_per_run: each packet run `repeat` times as BPF_PROG_TEST_RUN with \
repeat runs it (frame, context and maps set up once per packet, the result taken once), total time over \
runs; the simulator's time is the host's wall clock around the batch, the kernel's is its own \
test-run duration. overhead_ns: the same for a trivial program (mov r0, 2; exit) under the same \
engine, the per-call cost of a run within a batch. single_run_overhead_ns (simulator only): one \
whole test run of the trivial program per call (frame set-up, maps, the result with the packet \
copied out; the runner's own clock reads off), what `bpfsim run` or one prog.run() from Python \
pays.";

fn trivial_program() -> bpfsim_vm::Program {
    bpfsim_vm::Program::new(bpfsim_vm::asm::assemble("mov %r0, 2\nexit").expect("a fixed program"))
        .expect("a fixed program")
}

/// How `bpfsim bench` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum BenchOutcome {
    Timed,
    /// Only the kernel was asked for and it is unavailable (exit 3; the reason is printed).
    KernelUnavailable,
}

/// The simulator's environment: as many CPUs as the kernel's possible ones (one where that is
/// unknown), so that a map write naming a CPU (a cpumap's slot) holds on both sides and per-CPU
/// maps are as large as the kernel's.
fn sim_env() -> Env {
    #[cfg(kernel_backend)]
    let ncpus = bpfsim_kernel::possible_cpus() as u32;
    #[cfg(not(kernel_backend))]
    let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    Env {
        ncpus: ncpus.max(1),
        ..Env::default()
    }
}

pub fn run(args: BenchArgs) -> Result<BenchOutcome, String> {
    let bytes =
        std::fs::read(&args.object).map_err(|e| format!("{}: {e}", args.object.display()))?;
    let mut packets: Vec<Vec<u8>> = args
        .packets_hex
        .iter()
        .map(|h| crate::plugin::parse_hex(h).map_err(|e| format!("--packet: {e}")))
        .collect::<Result<_, _>>()?;
    if let Some(p) = &args.pcap {
        for pk in crate::capture::Capture::open(p).map_err(|e| e.to_string())? {
            packets.push(pk.map_err(|e| e.to_string())?.data);
        }
    }
    if packets.is_empty() {
        return Err("no packets: give --pcap FILE or --packet HEX".to_string());
    }
    let mut probe = LoadedObject::load(&bytes, sim_env())
        .map_err(|e| format!("{}: {e}", args.object.display()))?;
    // Bad map writes are said before any engine is set up.
    for m in &args.maps {
        crate::run_cmd::set_map(&mut probe, m)?;
    }
    let name = match &args.prog {
        Some(p) => p.clone(),
        None => probe
            .program_names()
            .into_iter()
            .next()
            .ok_or("the object has no programs")?,
    };
    // Packets the run refuses (as the kernel's test run does) are not timed.
    let probe_prog = probe.program(&name, None).map_err(|e| e.to_string())?;
    let before = packets.len();
    packets.retain(|p| probe.run(&probe_prog, p, Input::default()).is_ok());
    if packets.is_empty() {
        return Err("every packet is refused by the program's test run".to_string());
    }
    if packets.len() < before {
        eprintln!(
            "bpfsim: {} refused packets not timed",
            before - packets.len()
        );
    }
    let mut benchers: Vec<(String, Bencher)> = Vec::new();
    let mut kernel_missing = false;
    for e in &args.engines {
        match e.as_str() {
            "interp" | "jit" | "baseline" => {
                let engine = Engine::from_name(e).expect("checked");
                let mut obj = LoadedObject::load(&bytes, sim_env()).map_err(|e| e.to_string())?;
                let prog = obj.program(&name, None).map_err(|e| e.to_string())?;
                for m in &args.maps {
                    crate::run_cmd::set_map(&mut obj, m)?;
                }
                // The runs are timed here: the runners' own clock reads (duration_ns) are off.
                obj.runner.set_timing(false);
                let mut runner = Box::<Runner>::default();
                runner.set_timing(false);
                let trivial: Box<dyn bpfsim_vm::Executable> = if engine == Engine::Jit {
                    prog.jit().map_err(|e| e.to_string())?;
                    Box::new(
                        bpfsim_jit::JitProgram::compile_opts(
                            &trivial_program(),
                            &bpfsim_jit::Hints::default(),
                            // Named apart from the program timed, in a perf profile.
                            &bpfsim_jit::CompileOptions {
                                name: Some("bench_overhead".to_string()),
                                ..Default::default()
                            },
                        )
                        .map_err(|e| e.to_string())?,
                    )
                } else if engine == Engine::Baseline {
                    Box::new(
                        bpfsim_jit::JitProgram::compile_baseline(&trivial_program())
                            .map_err(|e| e.to_string())?,
                    )
                } else {
                    Box::new(bpfsim_vm::Interpreter::new(&trivial_program()))
                };
                benchers.push((
                    e.clone(),
                    Bencher::Sim {
                        engine,
                        obj: Box::new(obj),
                        prog: Box::new(prog),
                        trivial,
                        runner,
                    },
                ));
            }
            "kernel" => {
                #[cfg(kernel_backend)]
                {
                    let bpf = match bpfsim_kernel::KernelBpf::probe() {
                        Ok(b) => b,
                        Err(u) => {
                            eprintln!("bpfsim: kernel unavailable, not timed: {u}");
                            kernel_missing = true;
                            continue;
                        }
                    };
                    let runner = bpfsim_kernel::KernelRunner::load(&bpf, &bytes)
                        .map_err(|e| format!("kernel: {e}"))?;
                    for m in &args.maps {
                        crate::run_kernel::set_map(&runner, m)
                            .map_err(|e| format!("kernel: {e}"))?;
                    }
                    let insns = bpfsim_vm::isa::encode(trivial_program().insns());
                    let trivial = bpf
                        .prog_load(bpfsim_kernel::ProgType::XDP, &insns, "GPL", 1)
                        .map_err(|e| e.to_string())?;
                    benchers.push((
                        e.clone(),
                        Bencher::Kernel {
                            runner: Box::new(runner),
                            bpf,
                            trivial,
                            name: name.clone(),
                        },
                    ));
                }
                #[cfg(not(kernel_backend))]
                {
                    eprintln!(
                        "bpfsim: kernel unavailable, not timed: {}",
                        crate::NO_KERNEL_BACKEND
                    );
                    kernel_missing = true;
                }
            }
            other => {
                return Err(format!(
                    "unknown engine `{other}` (interp, jit, baseline, kernel)"
                ))
            }
        }
    }
    if benchers.is_empty() && kernel_missing {
        return Ok(BenchOutcome::KernelUnavailable);
    }
    // Interleaved rounds: every engine once per round, so drifts hit all alike.
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); benchers.len()];
    let mut overheads: Vec<Vec<f64>> = vec![Vec::new(); benchers.len()];
    let mut singles: Vec<Vec<f64>> = vec![Vec::new(); benchers.len()];
    // The last round's count: the same every round but for maps the program changes.
    let mut insns: Vec<Option<f64>> = vec![None; benchers.len()];
    for _ in 0..args.rounds.max(1) {
        for (i, (_, b)) in benchers.iter_mut().enumerate() {
            let t = b.time(&packets)?;
            runs[i].push(t.run);
            overheads[i].push(t.overhead);
            singles[i].extend(t.single_run);
            insns[i] = t.insns;
        }
    }
    let results: Vec<(String, f64, f64, Option<f64>)> = benchers
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            (
                n.clone(),
                median(runs[i].clone()),
                median(overheads[i].clone()),
                (!singles[i].is_empty()).then(|| median(singles[i].clone())),
            )
        })
        .collect();
    let kernel = results.iter().find(|r| r.0 == "kernel").map(|r| r.1);
    if args.json {
        let mut engines = serde_json::Map::new();
        for (i, (n, r, o, single)) in results.iter().enumerate() {
            engines.insert(
                n.clone(),
                json!({
                    "ns_per_run": r,
                    "overhead_ns": o,
                    "ns_per_run_minus_overhead": (r - o).max(0.0),
                    "ratio_to_kernel": kernel.map(|k| r / k),
                    "single_run_overhead_ns": single,
                    "insns_per_run": insns[i],
                }),
            );
        }
        println!(
            "{}",
            json!({"object": args.object.display().to_string(), "program": name, "packets": packets.len(), "rounds": args.rounds, "repeat": ITERS, "measures": MEASURES, "engines": engines})
        );
    } else {
        println!(
            "{} {name}: {} packets, each run {ITERS} times as BPF_PROG_TEST_RUN's repeat (set-up once per packet); median of {} interleaved rounds",
            args.object.display(),
            packets.len(),
            args.rounds
        );
        println!(
            "  {:<8} {:>12} {:>12} {:>10} {:>16}",
            "engine", "ns/run", "overhead ns", "vs kernel", "one test run ns"
        );
        for (n, r, o, single) in &results {
            let ratio = kernel.map_or("-".to_string(), |k| format!("{:.2}x", r / k));
            let single = single.map_or("-".to_string(), |s| format!("{s:.1}"));
            println!("  {n:<8} {r:>12.1} {o:>12.1} {ratio:>10} {single:>16}");
        }
        println!(
            "  overhead: a trivial program (mov r0, 2; exit) timed the same way, the per-call cost \
within a batch; one test run: the trivial program's whole test run per call (frame, maps, result)"
        );
    }
    Ok(BenchOutcome::Timed)
}
