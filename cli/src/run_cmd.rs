//! `bpfsim run`: run a program over packets (a capture or `--packet` hex) and report verdicts,
//! with maps and environment persisting across the packets of one invocation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bpfsim_helpers::ctx::{skb::tc_action, xdp};
use bpfsim_helpers::object::{Engine, LoadedObject};
use bpfsim_helpers::run::{Input, Redirect, RunResult, Runner};
use bpfsim_helpers::tier::{self, JitSlot, Source};
use bpfsim_helpers::Env;
use bpfsim_vm::spec::{MapType, ProgType};
use bpfsim_vm::{Interpreter, Program};
use serde_json::json;

use crate::capture::Capture;

/// What `bpfsim run` was asked to do.
pub struct RunArgs {
    pub raw: Option<PathBuf>,
    /// Run only this program of the object (default: every program).
    pub prog: Option<String>,
    pub object: Option<PathBuf>,
    pub prog_type: Option<ProgType>,
    pub packets_hex: Vec<String>,
    pub pcap: Option<PathBuf>,
    pub json: bool,
    /// The context the runs get (the kernel's ctx_in).
    pub input: Input,
    /// Runs per packet (BPF_PROG_TEST_RUN's repeat).
    pub repeat: u32,
    /// `NAME:KEYHEX=VALUEHEX` or `NAME:KEYHEX=@PROG` map writes before the first packet.
    pub maps: Vec<String>,
    /// Print the maps after the last packet.
    pub dump_maps: bool,
    /// Simulated CPUs (`Env::ncpus`); the runs are on CPU 0.
    pub cpus: u32,
    pub engine: Engine,
    /// Run in the live kernel (`--engine kernel`) rather than the simulator.
    pub kernel: bool,
}

/// Every map of the object after the run: hash-like maps in full, array-like maps (every index
/// always exists) their non-zero entries; per-CPU values one per CPU.
fn dump_maps(obj: &LoadedObject, json: bool) -> Result<(), String> {
    let mut all = serde_json::Map::new();
    for (i, def) in obj.object.maps.iter().enumerate() {
        let id = obj.map_id(&def.name).ok_or("map vanished")?;
        let maps = &obj.runner.maps;
        let array_like = matches!(
            def.map_type,
            MapType::Array | MapType::PercpuArray | MapType::Devmap | MapType::Cpumap
        ) && !def.name.starts_with('.');
        let percpu = maps.entries_percpu(id).ok();
        let entries: Vec<serde_json::Value> = match percpu {
            Some(es) => es
                .into_iter()
                .filter(|(_, vs)| !array_like || vs.iter().flatten().any(|&b| b != 0))
                .map(|(k, vs)| json!({"key": hex(&k), "values": vs.iter().map(|v| hex(v)).collect::<Vec<_>>()}))
                .collect(),
            None => match def.map_type {
                MapType::Queue | MapType::Stack => maps
                    .queue_values(id)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|v| json!({"value": hex(&v)}))
                    .collect(),
                _ => maps
                    .entries(id)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .filter(|(_, v)| !array_like || v.iter().any(|&b| b != 0))
                    .map(|(k, v)| json!({"key": hex(&k), "value": hex(&v)}))
                    .collect(),
            },
        };
        if json {
            all.insert(
                def.name.clone(),
                json!({"type": def.map_type.to_string(), "entries": entries}),
            );
        } else {
            let which = if array_like { " non-zero" } else { "" };
            say(format!(
                "map {i} {} ({}): {}{which} entries",
                def.name,
                def.map_type,
                entries.len()
            ));
            for e in &entries {
                let value = match (&e["value"], &e["values"]) {
                    (serde_json::Value::String(v), _) => v.clone(),
                    (_, vs) => vs.to_string(),
                };
                match e["key"].as_str() {
                    Some(k) => say(format!("  {k} => {value}")),
                    None => say(format!("  {value}")),
                }
            }
        }
    }
    if json {
        say(json!({ "maps": all }));
    }
    Ok(())
}

/// Apply one `--map NAME:KEYHEX=VALUEHEX|@PROG` to the simulator's maps.
pub(crate) fn set_map(obj: &mut LoadedObject, spec: &str) -> Result<(), String> {
    let w = crate::map_spec::MapWrite::parse(spec)?;
    let value = w.bytes(spec, |p| obj.prog_id(p).map_err(|e| e.to_string()))?;
    let id = obj
        .map_id(&w.map)
        .ok_or_else(|| format!("--map {spec}: the object has no map `{}`", w.map))?;
    obj.runner
        .maps
        .update(id, &w.key, &value, 0)
        .map_err(|e| format!("--map {spec}: {e}"))
}

/// The verdict's name for this program type, when it has one.
pub fn action_name(prog_type: ProgType, retval: u64) -> String {
    let named = match prog_type {
        ProgType::Xdp => xdp::action::name(retval),
        ProgType::SchedCls | ProgType::SchedAct => tc_action::name(retval),
        _ => None,
    };
    match (named, prog_type) {
        (Some(n), _) => n.to_string(),
        (None, ProgType::SocketFilter) if retval as u32 == 0 => "drop".to_string(),
        (None, ProgType::SocketFilter) => format!("keep {} bytes", retval as u32),
        (None, _) => format!("{}", retval as i64),
    }
}

/// Print a line; a closed stdout (`| head`) ends the command quietly, as Unix tools do.
pub(crate) fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    crate::plugin::parse_hex(s).map_err(|e| format!("--packet: {e}"))
}

fn redirect_json(r: &Option<Redirect>) -> serde_json::Value {
    match r {
        None => serde_json::Value::Null,
        Some(Redirect::Ifindex { ifindex, flags }) => json!({"ifindex": ifindex, "flags": flags}),
        Some(Redirect::Map { map, key, flags }) => json!({"map": map, "key": key, "flags": flags}),
    }
}

fn packet_json(
    i: usize,
    prog_type: ProgType,
    r: &RunResult,
    chain: Vec<String>,
    kernel: bool,
) -> serde_json::Value {
    if kernel {
        // What BPF_PROG_TEST_RUN reports; the rest it does not tell.
        return json!({
            "packet": i,
            "engine": "kernel",
            "retval": r.retval,
            "action": action_name(prog_type, r.retval),
            "data": hex(&r.data),
            "redirect": null,
            "trace": r.trace.to_vec(),
            "events": r.events.iter().map(|e| json!({"map": e.map, "cpu": e.cpu, "data": hex(&e.data)})).collect::<Vec<_>>(),
            "insns": null,
            "trap": null,
            "ctx_out": hex(&r.ctx_out),
            "tail_calls": null,
            "duration_ns": r.duration_ns,
        });
    }
    json!({
        "packet": i,
        "retval": r.retval,
        "action": action_name(prog_type, r.retval),
        "data": hex(&r.data),
        "redirect": redirect_json(&r.redirect),
        "trace": r.trace.to_vec(),
        "events": r.events.iter().map(|e| json!({"map": e.map, "cpu": e.cpu, "data": hex(&e.data)})).collect::<Vec<_>>(),
        "insns": r.insns,
        "trap": r.trap.map(|t| t.to_string()),
        "ctx_out": hex(&r.ctx_out),
        "tail_calls": chain,
        "duration_ns": r.duration_ns,
    })
}

/// A run's result and its tail-call chain by program name.
type Ran = (RunResult, Vec<String>);

/// Feed every packet (hex ones first, then the capture's) to `run_one`, printing JSON lines or,
/// at the end, the verdict table of `title`.
pub(crate) fn replay(
    args: &RunArgs,
    title: &str,
    prog_type: ProgType,
    kernel: bool,
    run_one: &mut dyn FnMut(&[u8]) -> Result<Ran, String>,
) -> Result<(), String> {
    // Counted by return value and named once at the end: naming each packet's verdict is an
    // allocation per packet.
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    let mut traps = 0usize;
    let mut n = 0usize;
    let mut refused: Vec<String> = Vec::new();
    // A packet the run refuses (as BPF_PROG_TEST_RUN refuses it: too short, a bad context) is
    // reported and skipped, like the kernel's EINVAL for that one packet; the others still run.
    let mut one = |packet: &[u8], n: &mut usize| {
        match run_one(packet) {
            Ok((r, chain)) => {
                if args.json {
                    say(packet_json(*n, prog_type, &r, chain, kernel));
                }
                traps += r.trap.is_some() as usize;
                *counts.entry(r.retval).or_default() += 1;
            }
            Err(e) => {
                if args.json {
                    say(json!({"packet": *n, "refused": true, "error": e}));
                }
                refused.push(format!("packet {n}: {e}"));
            }
        }
        *n += 1;
    };
    for h in &args.packets_hex {
        one(&parse_hex(h)?, &mut n);
    }
    if let Some(pcap) = &args.pcap {
        let mut cap = Capture::open(pcap).map_err(|e| e.to_string())?;
        // One packet buffer for the whole capture: no allocation per packet.
        let mut p = crate::capture::Packet::default();
        while let Some(read) = cap.next_into(&mut p) {
            read.map_err(|e| e.to_string())?;
            one(&p.data, &mut n);
        }
    }
    if n == 0 {
        return Err("no packets: give --pcap FILE or --packet HEX".to_string());
    }
    if refused.len() == n {
        // Nothing ran: that is an error of the input, not a result.
        return Err(refused.join("\n"));
    }
    if !args.json {
        say(format!("{title} ({prog_type}): {n} packets"));
        let mut named: BTreeMap<String, usize> = BTreeMap::new();
        for (retval, count) in counts {
            *named.entry(action_name(prog_type, retval)).or_default() += count;
        }
        for (verdict, count) in &named {
            say(format!("  {verdict:<20} {count:>8}"));
        }
        if !refused.is_empty() {
            say(format!("  {:<20} {:>8}", "refused", refused.len()));
            for r in &refused {
                eprintln!("bpfsim: refused {r}");
            }
        }
        if traps > 0 {
            say(format!(
                "  ({traps} runs trapped; see --format json for where)"
            ));
        }
    }
    Ok(())
}

/// Runs the command; `Err` is a message for exit code 2.
pub fn run(args: RunArgs) -> Result<(), String> {
    match (&args.raw, &args.object) {
        (Some(_), None) if !args.maps.is_empty() || args.dump_maps => {
            Err("--map and --dump-maps need an object: raw bytecode has no maps".to_string())
        }
        (Some(raw), None) => {
            let bytes = std::fs::read(raw).map_err(|e| format!("{}: {e}", raw.display()))?;
            let prog =
                Program::from_bytes(&bytes).map_err(|e| format!("{}: {e}", raw.display()))?;
            let prog_type = args
                .prog_type
                .ok_or("--type is required with --raw (e.g. xdp, sched_cls, socket_filter)")?;
            let interp = Interpreter::new(&prog);
            // Raw bytecode has no object to verify against: compiled without hints, and under
            // `auto` tiered as a linked program is.
            let slot = JitSlot::new(Source {
                insns: prog.insns().to_vec(),
                verify: None,
                name: raw
                    .file_stem()
                    .map_or("raw".into(), |s| s.to_string_lossy().into_owned()),
            });
            if args.engine == Engine::Jit {
                slot.get().map_err(|e| format!("{}: {e}", raw.display()))?;
            }
            let mut runner = Runner::default();
            let title = raw.display().to_string();
            replay(&args, &title, prog_type, false, &mut |p| {
                let (exec, ran) = slot
                    .executable(&interp, args.engine)
                    .map_err(|e| format!("{}: {e}", raw.display()))?;
                let r = runner
                    .run_repeat(exec, prog_type, p, args.input, args.repeat)
                    .map_err(|e| e.to_string())?;
                if args.engine == Engine::Auto && ran != tier::Ran::Compiled {
                    slot.ran(r.insns.saturating_mul(args.repeat.max(1) as u64));
                }
                let chain = r.tail_calls.iter().map(|id| format!("#{id}")).collect();
                Ok((r, chain))
            })
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if !(1..=bpfsim_helpers::maps::NR_CPUS).contains(&args.cpus) {
                return Err(format!(
                    "--cpus {}: 1 to {} (the kernel's NR_CPUS)",
                    args.cpus,
                    bpfsim_helpers::maps::NR_CPUS
                ));
            }
            let env = Env {
                ncpus: args.cpus,
                ..Env::default()
            };
            let mut obj =
                LoadedObject::load(&bytes, env).map_err(|e| format!("{}: {e}", path.display()))?;
            let names = match &args.prog {
                Some(p) => vec![p.clone()],
                None => obj.program_names(),
            };
            if names.is_empty() {
                return Err(format!("{}: the object has no programs", path.display()));
            }
            for m in &args.maps {
                set_map(&mut obj, m)?;
            }
            for name in names {
                let prog = obj
                    .program(&name, args.prog_type)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let title = format!("{} {}", path.display(), prog.name);
                replay(&args, &title, prog.prog_type, false, &mut |p| {
                    let r = obj
                        .run_engine(&prog, p, args.input, args.repeat, args.engine)
                        .map_err(|e| e.to_string())?;
                    let chain = r
                        .tail_calls
                        .iter()
                        .map(|id| match obj.program_name_by_id(*id) {
                            Some(n) => n.to_string(),
                            None => format!("#{id}"),
                        })
                        .collect();
                    Ok((r, chain))
                })?;
            }
            if args.dump_maps {
                dump_maps(&obj, args.json)?;
            }
            Ok(())
        }
        _ => Err("give an object file or --raw FILE".to_string()),
    }
}
