use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use bpfsim::conformance::{self, Engine, Outcome};
use bpfsim::vm::{asm, isa, Program};
use clap::{Parser, Subcommand, ValueEnum};

/// bpfsim: run, check and inspect eBPF programs in userspace.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Style {
    /// The bpf_conformance assembly dialect (round-trips through `bpfsim asm`).
    Conformance,
    /// The kernel's verifier-log notation: `0: (61) r0 = *(u32 *)(r1 +0)`.
    Kernel,
}

/// The context a run gets (BPF_PROG_TEST_RUN's ctx_in), shared by `run` and `compare`.
#[derive(clap::Args)]
struct CtxArgs {
    /// Context: the ifindex the packet arrives on (XDP ingress_ifindex; skb ingress_ifindex).
    #[arg(long)]
    ingress_ifindex: Option<u32>,
    /// Context: the XDP receive queue.
    #[arg(long)]
    rx_queue_index: Option<u32>,
    /// Context: skb->mark before the program runs.
    #[arg(long)]
    mark: Option<u32>,
    /// Context: skb->priority before the program runs.
    #[arg(long)]
    priority: Option<u32>,
}

impl CtxArgs {
    fn input(&self) -> bpfsim::sim::run::Input {
        use bpfsim::sim::ctx::{skb::SkbMd, xdp::XdpMd};
        let mut input = bpfsim::sim::run::Input::default();
        let xdp_default = XdpMd::default();
        input.xdp = XdpMd {
            ingress_ifindex: self.ingress_ifindex.unwrap_or(xdp_default.ingress_ifindex),
            rx_queue_index: self.rx_queue_index.unwrap_or(0),
            meta_len: 0,
        };
        if self.ingress_ifindex.is_some() || self.mark.is_some() || self.priority.is_some() {
            let d = SkbMd::default();
            input.skb = Some(SkbMd {
                ingress_ifindex: self.ingress_ifindex.unwrap_or(d.ingress_ifindex),
                mark: self.mark.unwrap_or(0),
                priority: self.priority.unwrap_or(0),
                ..d
            });
        }
        input
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run bpf_conformance `.data` tests (files or folders) under every engine.
    Conformance {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Engine to use (default: every engine this build has).
        #[arg(long)]
        engine: Vec<String>,
        /// Also print passing tests and the reason for each rejection.
        #[arg(short, long)]
        verbose: bool,
        /// Also run each test in the live kernel (BPF_PROG_TEST_RUN) and compare its r0 with every
        /// engine's: prints `kernel agreement: N/M` and each test the kernel cannot run, with why.
        /// Exit 3 when bpf(2) is unavailable.
        #[arg(long)]
        kernel: bool,
    },
    /// The bpf_conformance plugin protocol: program hex on stdin, memory hex as the first argument.
    ConformancePlugin {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a program over packets and print the verdicts (maps persist across the packets).
    Run {
        /// ELF object (clang -target bpf).
        object: Option<PathBuf>,
        /// Raw bytecode (8-byte instructions, no ELF) in place of an object.
        #[arg(long)]
        raw: Option<PathBuf>,
        /// The program to run, by function name (default: every program in the object).
        #[arg(long)]
        prog: Option<String>,
        /// Program type, the kernel's name without BPF_PROG_TYPE_: xdp, sched_cls, socket_filter ...
        #[arg(long = "type")]
        prog_type: Option<String>,
        /// Packets from a pcap or pcapng file.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// One packet as hex (repeatable).
        #[arg(long)]
        packet: Vec<String>,
        /// text (verdict table) or json (one object per packet and line).
        #[arg(long, default_value = "text")]
        format: String,
        #[command(flatten)]
        ctx: CtxArgs,
        /// Run each packet this many times, as BPF_PROG_TEST_RUN's repeat (maps persist; the
        /// reported result is the last run's, the duration their average).
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Set a map slot before the first packet: NAME:KEYHEX=VALUEHEX, or NAME:KEYHEX=@PROG for
        /// a program array slot (repeatable; objects only).
        #[arg(long = "map")]
        maps: Vec<String>,
        /// After the last packet, print every map's entries (arrays: the non-zero ones).
        #[arg(long)]
        dump_maps: bool,
        /// Simulated CPUs (1 to 8192): per-CPU maps hold this many values and a cpumap's slots
        /// name them; the runs are on CPU 0.
        #[arg(long, default_value_t = 1)]
        cpus: u32,
        /// interp (the reference), jit (compiled with Cranelift), auto (interpret the first
        /// runs, compile once hot), baseline (the JIT's one-pass tier, x86-64), or kernel (the
        /// live kernel through BPF_PROG_TEST_RUN; exit 3 when bpf(2) is unavailable).
        #[arg(long, default_value = "interp")]
        engine: String,
        /// The kernel's BTF for CO-RE relocations and tracing attach targets (a raw BTF file
        /// such as another machine's /sys/kernel/btf/vmlinux; default: this machine's).
        #[arg(long)]
        btf: Option<PathBuf>,
    },
    /// Verify programs as the Linux kernel's verifier would: one verdict per program.
    Verify {
        /// ELF object (clang -target bpf).
        object: Option<PathBuf>,
        /// Raw bytecode (8-byte instructions, no ELF, no maps) in place of an object.
        #[arg(long)]
        raw: Option<PathBuf>,
        /// Only this program, by function name.
        #[arg(long)]
        prog: Option<String>,
        /// Program type (the kernel's name without BPF_PROG_TYPE_), overriding the section's.
        #[arg(long = "type")]
        prog_type: Option<String>,
        /// 1: the log of rejected programs; 2: every program's log.
        #[arg(long, default_value_t = 1)]
        log_level: u32,
        /// text, or json (one object per program and line).
        #[arg(long, default_value = "text")]
        format: String,
        /// Also load each program in the running kernel and report agreement (exit 3 when
        /// the kernel cannot be asked).
        #[arg(long)]
        compare_kernel: bool,
        /// The kernel's BTF for CO-RE relocations and tracing attach targets (a raw BTF file
        /// such as another machine's /sys/kernel/btf/vmlinux; default: this machine's).
        #[arg(long)]
        btf: Option<PathBuf>,
    },
    /// Run an object's programs in the simulator and in the live kernel over the same packets,
    /// and report every difference (exit 1 on any, 3 when the kernel cannot be used).
    Compare {
        /// ELF object.
        object: PathBuf,
        /// Only this program (default: every program with a type).
        #[arg(long)]
        prog: Option<String>,
        /// Packets from a pcap or pcapng file.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// One packet as hex (repeatable).
        #[arg(long)]
        packet: Vec<String>,
        /// text or json (one object per packet and line, then the summary).
        #[arg(long, default_value = "text")]
        format: String,
        /// MAP:START..END: value bytes that hold times or random numbers, not compared
        /// (repeatable).
        #[arg(long = "ignore-map-bytes")]
        ignore: Vec<String>,
        #[command(flatten)]
        ctx: CtxArgs,
        /// Set a map slot on both sides before the first packet: NAME:KEYHEX=VALUEHEX, or
        /// NAME:KEYHEX=@PROG for a program array slot (repeatable).
        #[arg(long = "map")]
        maps: Vec<String>,
        /// The kernel's BTF for CO-RE relocations and tracing attach targets (a raw BTF file
        /// such as another machine's /sys/kernel/btf/vmlinux; default: this machine's).
        #[arg(long)]
        btf: Option<PathBuf>,
    },
    /// Time one program under each engine (interleaved rounds, medians), with per-call overhead
    /// and ratios to the kernel.
    Bench {
        /// ELF object.
        object: PathBuf,
        /// The program (default: the object's first).
        #[arg(long)]
        prog: Option<String>,
        /// One packet as hex (repeatable).
        #[arg(long)]
        packet: Vec<String>,
        /// Packets from a pcap or pcapng file.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Comma-separated: interp, jit, baseline, kernel. An unavailable kernel is skipped with a line
        /// saying why; exit 3 when it was the only engine asked for.
        #[arg(long, default_value = "interp,jit,kernel")]
        engines: String,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
        /// Interleaved rounds (the median is reported).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
        /// Set a map slot in every engine before timing: NAME:KEYHEX=VALUEHEX, or
        /// NAME:KEYHEX=@PROG for a program array (repeatable).
        #[arg(long = "map")]
        maps: Vec<String>,
    },
    /// Assemble conformance-dialect text into raw bytecode.
    Asm {
        /// Source file ("-" for stdin).
        input: PathBuf,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Disassemble raw bytecode (8-byte instructions).
    Disasm {
        /// Raw bytecode, or an ELF object (every program, linked as it will run) ("-": stdin).
        input: PathBuf,
        #[arg(long, value_enum, default_value = "conformance")]
        style: Style,
        /// With an object: only this program, by function name.
        #[arg(long)]
        prog: Option<String>,
        /// The code the JIT generates instead: each BPF instruction, then the host instructions
        /// generated for it, and the code's size. An object's programs are verified and compiled
        /// with the verifier's hints, as `run --engine jit` runs them (exit 1 for a program the
        /// verifier rejects or the JIT cannot compile); raw bytecode is compiled without hints.
        #[arg(long)]
        jit: bool,
        /// With --jit: the baseline tier's code (`--engine baseline`, `auto`'s first compiled
        /// tier; x86-64 hosts) instead of Cranelift's; an object's programs are not verified.
        #[arg(long)]
        baseline: bool,
        /// With --jit: text, or json (one object per program and line: each function, each BPF
        /// instruction with its host instructions' offsets, bytes and text).
        #[arg(long, default_value = "text")]
        format: String,
    },
}

fn read_input(path: &PathBuf) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("stdin: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Every program of an ELF object (or the one named), after linking: `.text` functions placed,
/// map references as `map_idx`/`map_idx_value` of the object's maps.
fn disasm_object(
    input: &std::path::Path,
    bytes: &[u8],
    only: Option<&str>,
    style: Style,
) -> Result<ExitCode, String> {
    let obj =
        bpfsim::vm::loader::load_object(bytes).map_err(|e| format!("{}: {e}", input.display()))?;
    let progs: Vec<_> = match only {
        Some(name) => vec![obj
            .find_program(name)
            .map_err(|e| format!("{}: {e}", input.display()))?],
        None => obj.programs.iter().collect(),
    };
    for (i, p) in progs.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let ty = p.prog_type.map_or("no type".to_string(), |t| t.to_string());
        println!("; {} (section {}, {ty})", p.name, p.section);
        for f in p.functions.iter().filter(|f| f.slot > 0) {
            println!(";   {} at instruction {}", f.name, f.slot);
        }
        print!(
            "{}",
            match style {
                Style::Conformance => asm::disassemble(&p.insns),
                Style::Kernel => asm::kernel_listing(&p.insns),
            }
        );
    }
    for r in &obj.rejected {
        eprintln!("warning: {} (section {}): {}", r.name, r.section, r.error);
    }
    for (i, m) in obj.maps.iter().enumerate() {
        println!(
            "; map_idx {i}: {} ({}, key {} B, value {} B, {} entries)",
            m.name, m.map_type, m.key_size, m.value_size, m.max_entries
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `disasm --jit`: exit 1 when a program cannot be listed.
fn disasm_jit(
    input: &std::path::Path,
    bytes: &[u8],
    only: Option<&str>,
    style: Style,
    format: bpfsim::disasm_cmd::Format,
    tier: bpfsim::disasm_cmd::Tier,
) -> Result<ExitCode, String> {
    use bpfsim::disasm_cmd::{self, BpfStyle};
    let style = match style {
        Style::Conformance => BpfStyle::Conformance,
        Style::Kernel => BpfStyle::Kernel,
    };
    if bytes.starts_with(b"\x7fELF") {
        let ok = disasm_cmd::object(bytes, only, style, format, tier, &mut std::io::stdout())
            .map_err(|e| format!("{}: {e}", input.display()))?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let insns = isa::decode(bytes).map_err(|e| format!("{}: {e}", input.display()))?;
    match disasm_cmd::raw(insns, style, format, tier) {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("bpfsim: {}: {e}", input.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// `run --engine kernel`: exit 3 when the kernel is unavailable.
#[cfg(kernel_backend)]
fn run_in_kernel(args: &bpfsim::run_cmd::RunArgs) -> Result<ExitCode, String> {
    use bpfsim::run_kernel::KernelRunOutcome;
    Ok(match bpfsim::run_kernel::run(args)? {
        KernelRunOutcome::Ran => ExitCode::SUCCESS,
        KernelRunOutcome::Unavailable => ExitCode::from(3),
    })
}

#[cfg(not(kernel_backend))]
fn run_in_kernel(_args: &bpfsim::run_cmd::RunArgs) -> Result<ExitCode, String> {
    eprintln!("bpfsim: kernel unavailable: {}", bpfsim::NO_KERNEL_BACKEND);
    Ok(ExitCode::from(3))
}

/// `conformance --kernel`: the tally of the suite in the live kernel.
struct KernelCheck {
    #[cfg(kernel_backend)]
    bpf: bpfsim_kernel::KernelBpf,
    agree: usize,
    total: usize,
    cannot: Vec<String>,
    differ: usize,
}

impl KernelCheck {
    #[cfg(kernel_backend)]
    fn new() -> Result<KernelCheck, String> {
        let bpf = bpfsim_kernel::KernelBpf::probe().map_err(|u| u.to_string())?;
        Ok(KernelCheck {
            bpf,
            agree: 0,
            total: 0,
            cannot: Vec::new(),
            differ: 0,
        })
    }

    #[cfg(not(kernel_backend))]
    fn new() -> Result<KernelCheck, String> {
        Err(bpfsim::NO_KERNEL_BACKEND.to_string())
    }

    #[cfg(kernel_backend)]
    fn check(&mut self, file: &std::path::Path, engines: &[Engine]) {
        use bpfsim::conformance::KernelVerdict;
        let p = file.display();
        match conformance::kernel_check(file, &self.bpf, engines) {
            KernelVerdict::NotCompared => return,
            KernelVerdict::Agree(_) => self.agree += 1,
            KernelVerdict::CannotRun(why) => self.cannot.push(format!("{p}: {why}")),
            KernelVerdict::Differ(what) => {
                self.differ += 1;
                println!("KERNEL-DIFF {p}: {what}");
            }
        }
        self.total += 1;
    }

    #[cfg(not(kernel_backend))]
    fn check(&mut self, _file: &std::path::Path, _engines: &[Engine]) {}

    /// Print the tally; true when the kernel and an engine differed.
    fn finish(self) -> bool {
        println!(
            "kernel agreement: {}/{} ({} the kernel cannot run, {} differ)",
            self.agree,
            self.total,
            self.cannot.len(),
            self.differ
        );
        for c in &self.cannot {
            println!("  kernel cannot run {c}");
        }
        self.differ > 0
    }
}

fn conformance_cmd(
    paths: &[PathBuf],
    engines: &[String],
    verbose: bool,
    kernel: bool,
) -> Result<ExitCode, String> {
    let engines = if engines.is_empty() {
        Engine::available()
    } else {
        engines
            .iter()
            .map(|n| {
                Engine::from_name(n).ok_or_else(|| format!("unknown or unavailable engine `{n}`"))
            })
            .collect::<Result<_, _>>()?
    };
    let files = conformance::collect(paths).map_err(|e| e.to_string())?;
    let mut in_kernel = if kernel {
        match KernelCheck::new() {
            Ok(k) => Some(k),
            Err(why) => {
                eprintln!("bpfsim: kernel unavailable: {why}");
                return Ok(ExitCode::from(3));
            }
        }
    } else {
        None
    };
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for file in &files {
        if let Some(k) = &mut in_kernel {
            k.check(file, &engines);
        }
        let report = conformance::run_file(file, &engines);
        let p = file.display();
        for o in &report.outcomes {
            match o {
                Outcome::Fail(Some(e), why) => println!("FAIL {p} [{}]: {why}", e.name()),
                Outcome::Fail(None, why) => println!("FAIL {p}: {why}"),
                Outcome::Skip(why) => println!("SKIP {p}: {why}"),
                Outcome::Pass(why) if verbose => println!("PASS {p}: {why}"),
                Outcome::Pass(_) => {}
            }
        }
        if report.failed() {
            failed += 1;
        } else if report.skipped() {
            skipped += 1;
        } else {
            passed += 1;
        }
    }
    let names: Vec<&str> = engines.iter().map(|e| e.name()).collect();
    if verbose {
        println!("engines: {}", names.join(", "));
    }
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    let kernel_differs = in_kernel.is_some_and(|k| k.finish());
    Ok(if failed == 0 && !kernel_differs {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    // A reader that stops early (`bpfsim disasm ... | head`) ends the process quietly, as it
    // ends other Unix tools: Rust ignores SIGPIPE, and `println!` then panics on the write's
    // EPIPE with a backtrace.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Conformance {
            paths,
            engine,
            verbose,
            kernel,
        } => conformance_cmd(&paths, &engine, verbose, kernel),
        Command::ConformancePlugin { args } => return bpfsim::plugin::main_with(&args),
        Command::Run {
            object,
            raw,
            prog,
            prog_type,
            pcap,
            packet,
            format,
            ctx,
            repeat,
            maps,
            dump_maps,
            cpus,
            engine,
            btf,
        } => (|| {
            use_btf(btf);
            let kernel = engine == "kernel";
            let engine = match kernel {
                true => bpfsim::sim::object::Engine::Interp,
                false => bpfsim::sim::object::Engine::from_name(&engine).ok_or_else(|| {
                    format!("unknown engine `{engine}` (interp, jit, auto, baseline or kernel)")
                })?,
            };
            let input = ctx.input();
            let prog_type = match prog_type {
                Some(t) => Some(bpfsim::vm::spec::ProgType::from_name(&t).ok_or_else(|| {
                    format!("unknown program type `{t}` (try xdp, sched_cls, socket_filter)")
                })?),
                None => None,
            };
            let json = match format.as_str() {
                "json" => true,
                "text" => false,
                other => return Err(format!("unknown format `{other}` (text or json)")),
            };
            let args = bpfsim::run_cmd::RunArgs {
                raw,
                prog,
                object,
                prog_type,
                packets_hex: packet,
                pcap,
                json,
                input,
                repeat,
                maps,
                dump_maps,
                cpus,
                engine,
                kernel,
            };
            if kernel {
                return run_in_kernel(&args);
            }
            bpfsim::run_cmd::run(args)?;
            Ok(ExitCode::SUCCESS)
        })(),
        Command::Verify {
            object,
            raw,
            prog,
            prog_type,
            log_level,
            format,
            compare_kernel,
            btf,
        } => (|| {
            let prog_type = match prog_type {
                Some(t) => Some(bpfsim::vm::spec::ProgType::from_name(&t).ok_or_else(|| {
                    format!("unknown program type `{t}` (try xdp, sched_cls, socket_filter)")
                })?),
                None => None,
            };
            let json = match format.as_str() {
                "json" => true,
                "text" => false,
                other => return Err(format!("unknown format `{other}` (text or json)")),
            };
            let outcome = bpfsim::verify_cmd::run(bpfsim::verify_cmd::VerifyArgs {
                object,
                raw,
                prog,
                prog_type,
                log_level,
                json,
                compare_kernel,
                btf,
            })?;
            Ok(match outcome {
                bpfsim::verify_cmd::Outcome::Accepted => ExitCode::SUCCESS,
                bpfsim::verify_cmd::Outcome::Rejected => ExitCode::from(1),
                bpfsim::verify_cmd::Outcome::KernelUnavailable => ExitCode::from(3),
                bpfsim::verify_cmd::Outcome::NotLoaded => ExitCode::from(2),
            })
        })(),
        Command::Compare {
            object,
            prog,
            pcap,
            packet,
            format,
            ignore,
            ctx,
            maps,
            btf,
        } => (|| {
            use_btf(btf);
            let json = match format.as_str() {
                "json" => true,
                "text" => false,
                other => return Err(format!("unknown format `{other}` (text or json)")),
            };
            let v = bpfsim::compare_cmd::run(bpfsim::compare_cmd::CompareArgs {
                object,
                prog,
                packets_hex: packet,
                pcap,
                json,
                ignore,
                input: ctx.input(),
                maps,
            })?;
            Ok(match v {
                bpfsim::compare_cmd::Verdict::Agree => ExitCode::SUCCESS,
                bpfsim::compare_cmd::Verdict::Differ => ExitCode::from(1),
                bpfsim::compare_cmd::Verdict::KernelUnavailable => ExitCode::from(3),
            })
        })(),
        Command::Bench {
            object,
            prog,
            packet,
            pcap,
            engines,
            format,
            rounds,
            maps,
        } => (|| {
            let json = match format.as_str() {
                "json" => true,
                "text" => false,
                other => return Err(format!("unknown format `{other}` (text or json)")),
            };
            let outcome = bpfsim::bench_cmd::run(bpfsim::bench_cmd::BenchArgs {
                object,
                prog,
                packets_hex: packet,
                pcap,
                engines: engines.split(',').map(|s| s.trim().to_string()).collect(),
                json,
                rounds,
                maps,
            })?;
            Ok(match outcome {
                bpfsim::bench_cmd::BenchOutcome::Timed => ExitCode::SUCCESS,
                bpfsim::bench_cmd::BenchOutcome::KernelUnavailable => ExitCode::from(3),
            })
        })(),
        Command::Asm { input, output } => (|| {
            let text = String::from_utf8(read_input(&input)?)
                .map_err(|_| "input is not UTF-8".to_string())?;
            let insns = asm::assemble(&text).map_err(|e| format!("{}: {e}", input.display()))?;
            let bytes = isa::encode(&insns);
            match output {
                Some(o) => {
                    std::fs::write(&o, bytes).map_err(|e| format!("{}: {e}", o.display()))?
                }
                None => std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| e.to_string())?,
            }
            Ok(ExitCode::SUCCESS)
        })(),
        Command::Disasm {
            input,
            style,
            prog,
            jit,
            baseline,
            format,
        } => (|| {
            let format = match (format.as_str(), jit) {
                ("text", _) => bpfsim::disasm_cmd::Format::Text,
                ("json", true) => bpfsim::disasm_cmd::Format::Json,
                ("json", false) => {
                    return Err("--format json lists the JIT's code: add --jit".into())
                }
                (other, _) => return Err(format!("unknown format `{other}` (text or json)")),
            };
            let bytes = read_input(&input)?;
            if baseline && !jit {
                return Err("--baseline lists the JIT's code: add --jit".into());
            }
            if jit {
                let tier = if baseline {
                    bpfsim::disasm_cmd::Tier::Baseline
                } else {
                    bpfsim::disasm_cmd::Tier::Cranelift
                };
                return disasm_jit(&input, &bytes, prog.as_deref(), style, format, tier);
            }
            if bytes.starts_with(b"\x7fELF") {
                return disasm_object(&input, &bytes, prog.as_deref(), style);
            }
            let prog = isa::decode(&bytes).map_err(|e| format!("{}: {e}", input.display()))?;
            let text = match style {
                Style::Conformance => asm::disassemble(&prog),
                Style::Kernel => asm::kernel_listing(&prog),
            };
            // Structural problems do not stop a listing, but are worth saying.
            if let Err(e) = Program::new(prog) {
                eprintln!("warning: {e}");
            }
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        })(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bpfsim: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--btf FILE`: every object this process loads takes its kernel BTF from FILE.
fn use_btf(btf: Option<PathBuf>) {
    if let Some(path) = btf {
        bpfsim::vm::loader::set_default_kernel_btf(bpfsim::vm::loader::KernelBtfSource::File(path));
    }
}
