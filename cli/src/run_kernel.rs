//! `bpfsim run --engine kernel`: the same object and packets, run by the live kernel through
//! BPF_PROG_TEST_RUN, reported as `bpfsim run` reports the simulator's runs.
//!
//! What the kernel does not report stays empty: the instruction count (`insns` is null in JSON),
//! traps, redirect targets and the tail-call chain.

use bpfsim_kernel::{KernelBpf, KernelRunner};
use bpfsim_vm::spec::{MapType, ProgType};
use serde_json::json;

use crate::run_cmd::{hex, replay, say, RunArgs};

/// How the command ended: run, or the kernel is unavailable (exit 3, reason printed).
pub enum KernelRunOutcome {
    Ran,
    Unavailable,
}

/// Apply one `--map NAME:KEYHEX=VALUEHEX|@PROG` to the kernel's map; `@PROG` is the program's fd.
pub(crate) fn set_map(runner: &KernelRunner, spec: &str) -> Result<(), String> {
    let w = crate::map_spec::MapWrite::parse(spec)?;
    let value = w.bytes(spec, |p| {
        runner
            .prog_fd(p)
            .map(|fd| fd as u32)
            .map_err(|e| e.to_string())
    })?;
    runner
        .map_update(&w.map, &w.key, &value)
        .map_err(|e| format!("--map {spec}: {e}"))
}

fn dump_maps(runner: &KernelRunner, json: bool) -> Result<(), String> {
    let mut all = serde_json::Map::new();
    for (i, m) in runner.object.maps.iter().enumerate() {
        let spec = m.spec();
        // Maps the kernel cannot list (ring buffers, perf arrays, queues) are named, not dumped.
        let entries = match runner.map_entries(&spec.name) {
            Ok(es) => es,
            Err(e) => {
                if !json {
                    say(format!("map {i} {}: not listed ({e})", spec.name));
                }
                continue;
            }
        };
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|(k, vs)| match vs.as_slice() {
                [v] => json!({"key": hex(k), "value": hex(v)}),
                vs => {
                    json!({"key": hex(k), "values": vs.iter().map(|v| hex(v)).collect::<Vec<_>>()})
                }
            })
            .collect();
        let type_name = match MapType::from_id(spec.map_type) {
            Some(t) => t.to_string(),
            None => format!("type {}", spec.map_type),
        };
        if json {
            all.insert(
                spec.name.clone(),
                json!({"type": type_name, "entries": rows}),
            );
        } else {
            say(format!(
                "map {i} {} ({type_name}): {} entries",
                spec.name,
                rows.len()
            ));
            for r in &rows {
                let value = match (&r["value"], &r["values"]) {
                    (serde_json::Value::String(v), _) => v.clone(),
                    (_, vs) => vs.to_string(),
                };
                say(format!("  {} => {value}", r["key"].as_str().unwrap_or("")));
            }
        }
    }
    if json {
        say(json!({ "maps": all }));
    }
    Ok(())
}

/// Run the command in the kernel; `Err` is a message for exit code 2.
pub fn run(args: &RunArgs) -> Result<KernelRunOutcome, String> {
    let path = args
        .object
        .as_ref()
        .ok_or("--engine kernel needs an object file (raw bytecode has no section to load)")?;
    if args.prog_type.is_some() {
        return Err(
            "--type with --engine kernel: the kernel loads each program with its section's type"
                .to_string(),
        );
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The object must parse before the kernel is asked anything.
    bpfsim_vm::loader::load_object(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let bpf = match KernelBpf::probe() {
        Ok(b) => b,
        Err(u) => {
            eprintln!("bpfsim: kernel unavailable: {u}");
            return Ok(KernelRunOutcome::Unavailable);
        }
    };
    // Per-CPU values land where the simulator puts them (CPU 0).
    let _ = bpfsim_kernel::pin_current_thread(0);
    let mut runner =
        KernelRunner::load(&bpf, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    // bpf_printk lines need tracefs; without it the runs go on without them.
    let _ = runner.capture_trace(true);
    for m in &args.maps {
        set_map(&runner, m)?;
    }
    let names: Vec<(String, ProgType)> = runner
        .object
        .programs
        .iter()
        .filter(|p| args.prog.as_ref().is_none_or(|n| *n == p.name))
        .filter_map(|p| ProgType::from_id(p.prog_type.0).map(|t| (p.name.clone(), t)))
        .collect();
    if names.is_empty() {
        return Err(match &args.prog {
            Some(p) => format!("{}: no program `{p}` in the object", path.display()),
            None => format!("{}: the object has no programs", path.display()),
        });
    }
    for (name, prog_type) in names {
        let title = format!("{} {name} [kernel]", path.display());
        replay(args, &title, prog_type, true, &mut |p| {
            let r = runner
                .run_repeat(&name, p, &args.input, args.repeat)
                .map_err(|e| e.to_string())?;
            Ok((r.result, Vec::new()))
        })?;
    }
    if args.dump_maps {
        dump_maps(&runner, args.json)?;
    }
    Ok(KernelRunOutcome::Ran)
}
