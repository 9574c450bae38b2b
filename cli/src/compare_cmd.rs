//! `bpfsim compare`: the same object and packets in the simulator and in the live kernel, every
//! difference said per packet, then a summary. Exit 0 when they agree, 1 on any difference, 3
//! when the kernel cannot be used (with the reason), 2 on bad input.

use std::path::PathBuf;

#[cfg(kernel_backend)]
use serde_json::json;

pub struct CompareArgs {
    pub object: PathBuf,
    pub prog: Option<String>,
    pub packets_hex: Vec<String>,
    pub pcap: Option<PathBuf>,
    pub json: bool,
    /// `MAP:START..END`: value bytes holding times or random numbers, not compared.
    pub ignore: Vec<String>,
    /// The context every run gets (ctx_in), on both sides.
    pub input: bpfsim_helpers::run::Input,
    /// `NAME:KEYHEX=VALUEHEX` or `NAME:KEYHEX=@PROG`: map slots written on both sides first.
    pub maps: Vec<String>,
}

pub enum Verdict {
    Agree,
    Differ,
    KernelUnavailable,
}

/// `NAME:KEYHEX=VALUEHEX` or `NAME:KEYHEX=@PROG`, as `bpfsim run --map` takes them.
#[cfg(kernel_backend)]
fn parse_map_spec(spec: &str) -> Result<(String, Vec<u8>, crate::compare::SlotValue), String> {
    use crate::compare::SlotValue;
    use crate::map_spec::{MapWrite, SlotBytes};
    let w = MapWrite::parse(spec)?;
    let value = match w.value {
        SlotBytes::Bytes(b) => SlotValue::Bytes(b),
        SlotBytes::Prog(p) => SlotValue::Prog(p),
    };
    Ok((w.map, w.key, value))
}

#[cfg(not(kernel_backend))]
pub fn run(_args: CompareArgs) -> Result<Verdict, String> {
    eprintln!("bpfsim: kernel unavailable: {}", crate::NO_KERNEL_BACKEND);
    Ok(Verdict::KernelUnavailable)
}

#[cfg(kernel_backend)]
pub fn run(args: CompareArgs) -> Result<Verdict, String> {
    use crate::compare::Comparison;
    use bpfsim_helpers::Env;

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
    // The object must parse before the kernel is asked anything.
    bpfsim_vm::loader::load_object(&bytes)
        .map_err(|e| format!("{}: {e}", args.object.display()))?;
    let bpf = match bpfsim_kernel::KernelBpf::probe() {
        Ok(b) => b,
        Err(u) => {
            eprintln!("bpfsim: kernel unavailable: {u}");
            return Ok(Verdict::KernelUnavailable);
        }
    };
    // Per-CPU maps agree only if every run is on the simulator's CPU 0.
    let _ = bpfsim_kernel::pin_current_thread(0);
    let mut c = match Comparison::load(&bpf, &bytes, Env::default()) {
        Ok(c) => c,
        Err(e) => {
            // The kernel's verifier refusing a program is a result, not an input error: show
            // both verifiers' verdicts, and count it as a difference from the simulator, which
            // would have run it.
            use bpfsim_kernel::{BackendError, ObjectLoadError};
            if let Err(BackendError::Load(ObjectLoadError::Program { program, .. })) =
                bpfsim_kernel::KernelRunner::load(&bpf, &bytes)
            {
                eprintln!("bpfsim: the kernel refuses program {program}; the verifiers' verdicts:");
                crate::verify_cmd::run(crate::verify_cmd::VerifyArgs {
                    object: Some(args.object.clone()),
                    raw: None,
                    prog: args.prog.clone(),
                    prog_type: None,
                    log_level: 1,
                    json: args.json,
                    compare_kernel: true,
                    // The process default, which `--btf` set.
                    btf: None,
                })?;
                return Ok(Verdict::Differ);
            }
            return Err(e);
        }
    };
    let _ = c.capture_trace();
    for spec in &args.maps {
        let (map, key, value) = parse_map_spec(spec)?;
        c.set_map(&map, &key, &value)
            .map_err(|e| format!("--map {spec}: {e}"))?;
    }
    let names: Vec<String> = match &args.prog {
        Some(p) => vec![p.clone()],
        None => c
            .sim
            .object
            .programs
            .iter()
            .filter(|p| p.prog_type.is_some())
            .map(|p| p.name.clone())
            .collect(),
    };
    let (mut agree, mut total) = (0usize, 0usize);
    let mut differ = false;
    for name in &names {
        let prog = c.sim.program(name, None).map_err(|e| e.to_string())?;
        for (i, p) in packets.iter().enumerate() {
            let r = c.run(&prog, p, args.input);
            total += 1;
            let ok = r.differences.is_empty();
            agree += ok as usize;
            differ |= !ok;
            let refused = |x: &Result<_, String>| x.as_ref().err().cloned();
            if args.json {
                println!(
                    "{}",
                    json!({
                        "program": name,
                        "packet": i,
                        "agree": ok,
                        "differences": r.differences,
                        "not_comparable": r.not_comparable,
                        "retval": r.sim.as_ref().ok().map(|s| s.retval),
                        "kernel_retval": r.kernel.as_ref().ok().map(|k| k.retval),
                        "refused": refused(&r.sim),
                        "kernel_refused": refused(&r.kernel),
                    })
                );
            } else if ok {
                let what = match (&r.sim, &r.kernel) {
                    (Ok(s), _) => {
                        crate::run_cmd::action_name(prog.prog_type, s.retval as u32 as u64)
                    }
                    (Err(_), _) => "refused by both".to_string(),
                };
                let extra = if r.not_comparable.is_empty() {
                    String::new()
                } else {
                    format!(" (not comparable: {})", r.not_comparable.join(", "))
                };
                println!("{name} packet {i}: agree, {what}{extra}");
            } else {
                println!("{name} packet {i}: DIFFERENT");
                for d in &r.differences {
                    println!("  {d}");
                }
            }
        }
    }
    let mut masks = Vec::new();
    for spec in &args.ignore {
        let bad = || format!("--ignore-map-bytes {spec}: expected MAP:START..END");
        let (map, range) = spec.rsplit_once(':').ok_or_else(bad)?;
        let (a, b) = range.split_once("..").ok_or_else(bad)?;
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        masks.push((map.to_string(), a..b));
    }
    let maps = c.map_differences(&masks)?;
    differ |= !maps.is_empty();
    if args.json {
        println!(
            "{}",
            json!({"maps_differences": maps, "kernel_agreement": format!("{agree}/{total}")})
        );
    } else {
        for d in &maps {
            println!("after the last packet: {d}");
        }
        println!(
            "kernel agreement: {agree}/{total} packet runs{}",
            if maps.is_empty() {
                ", maps equal"
            } else {
                ", maps differ"
            }
        );
    }
    Ok(if differ {
        Verdict::Differ
    } else {
        Verdict::Agree
    })
}
