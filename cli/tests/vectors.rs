//! Every test vector of test-vectors/progs: the object, its packets and the results the live kernel
//! gave (recorded by record_expected.py), replayed in the simulator. Each scenario's verdicts and
//! output packets must equal the kernel's; scenarios that need what the simulator does not do yet
//! are listed by name below and must still fail, so the list cannot go stale.

mod common;

use std::path::Path;

use bpfsim_helpers::object::{Engine, LoadedObject};
use bpfsim_helpers::Env;
use common::{hex, matches, SetupValue};
use serde_json::Value;

/// Scenarios that need features not built yet. Each must still disagree somewhere.
const NOT_YET: &[&str] = &[];

/// Replay one scenario; `Err` says where the simulator first disagrees with the kernel.
fn replay(path: &Path, engine: Engine) -> Result<usize, String> {
    let sc = common::load(path);
    let s = &sc.json;
    let run = &s["run"];
    let env = Env {
        ncpus: run["nr_cpus"].as_u64().unwrap_or(1) as u32,
        cpu: run["cpu"].as_u64().unwrap_or(0) as u32,
        ..Env::default()
    };
    let mut obj = LoadedObject::load(&sc.object, env).map_err(|e| format!("load: {e}"))?;
    let prog = obj
        .program(&sc.program, sc.prog_type)
        .map_err(|e| format!("link: {e}"))?;
    for u in &sc.setup {
        let value = match &u.value {
            SetupValue::Bytes(v) => v.clone(),
            // An AF_XDP socket: the simulator stores the queue it is bound to.
            SetupValue::Xsk { queue, .. } => queue.to_le_bytes().to_vec(),
            SetupValue::Prog(p) => obj
                .prog_id(p)
                .map_err(|e| format!("setup: {e}"))?
                .to_le_bytes()
                .to_vec(),
        };
        let id = obj
            .map_id(&u.map)
            .ok_or(format!("setup: no map {}", u.map))?;
        obj.runner
            .maps
            .update(id, &u.key, &value, 0)
            .map_err(|e| format!("setup of {}: {e}", u.map))?;
    }
    let packets = &sc.packets;
    let input = sc.input;
    let mut n = 0;
    for p in s["packets"].as_array().unwrap() {
        let i = p["pcap_index"].as_u64().unwrap() as usize;
        let name = p["name"].as_str().unwrap_or("");
        let ours = obj.run_engine(&prog, &packets[i], input, 1, engine);
        if p.get("errno").is_some() {
            if ours.is_ok() {
                return Err(format!(
                    "packet {i} ({name}): the kernel refused it, we ran it"
                ));
            }
            n += 1;
            continue;
        }
        let r = ours.map_err(|e| format!("packet {i} ({name}): {e}"))?;
        if let Some(t) = r.trap {
            return Err(format!("packet {i} ({name}): trapped: {t}"));
        }
        let want = p["retval"].as_u64().unwrap();
        if r.retval as u32 as u64 != want {
            return Err(format!(
                "packet {i} ({name}): retval {} , kernel {want}",
                r.retval as u32
            ));
        }
        if !matches(p["data_out"].as_str().unwrap(), &r.data) {
            return Err(format!("packet {i} ({name}): output packet differs"));
        }
        // The context out. XDP: data, data_end, data_meta (the recorder gave ingress_ifindex 0,
        // which the kernel echoes; the simulator's default names loopback).
        if let Some(want) = p["ctx_out"].as_str() {
            let n = if r.ctx_out.len() == 24 {
                12
            } else {
                r.ctx_out.len()
            };
            if r.ctx_out.is_empty() || !matches(&want[..2 * n.min(want.len() / 2)], &r.ctx_out[..n])
            {
                return Err(format!(
                    "packet {i} ({name}): ctx_out {}, the kernel's {want}",
                    hex(&r.ctx_out)
                ));
            }
        }
        // bpf_printk lines, as the kernel's trace buffer showed them.
        let want_trace: Vec<&str> = p["trace"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if want_trace != r.trace {
            return Err(format!(
                "packet {i} ({name}): trace {:?}, the kernel's {want_trace:?}",
                r.trace
            ));
        }
        // Ring buffer records the kernel's reader saw after this packet, map by map.
        if let Some(rb) = p["ringbuf"].as_object() {
            let want: Vec<&str> = rb
                .values()
                .flat_map(|v| v.as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            let got: Vec<String> = r
                .events
                .iter()
                .filter(|e| rb.contains_key(&e.map))
                .map(|e| hex(&e.data))
                .collect();
            if want.len() != got.len() || !want.iter().zip(&got).all(|(w, g)| w == g) {
                return Err(format!(
                    "packet {i} ({name}): ring buffer records {got:?}, the kernel's {want:?}"
                ));
            }
        }
        n += 1;
    }
    compare_maps(&s["maps_after"], &obj)?;
    Ok(n)
}

/// The maps after the last packet, as the recorder dumped them (see the vectors' README):
/// hash-like maps list every entry, array-like maps their non-zero ones, per-CPU maps a value per
/// CPU; `??` bytes match anything.
fn compare_maps(after: &Value, obj: &LoadedObject) -> Result<(), String> {
    let Some(after) = after.as_object() else {
        return Ok(());
    };
    for (name, dump) in after {
        if dump.get("not_dumped").is_some() {
            continue;
        }
        let id = obj
            .map_id(name)
            .ok_or(format!("maps_after: no map {name}"))?;
        let maps = &obj.runner.maps;
        let percpu = dump["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("percpu") || t.starts_with("lru_percpu"));
        let nonzero_only = dump["entries_listed"].as_str() != Some("all");
        // Ours, as (key, [value per CPU]) with all-zero array entries dropped when the dump did.
        let ours: Vec<(String, Vec<Vec<u8>>)> = if percpu {
            maps.entries_percpu(id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(k, v)| (hex(&k), v))
                .collect()
        } else {
            maps.entries(id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(k, v)| (hex(&k), vec![v]))
                .collect()
        };
        let ours: Vec<_> = ours
            .into_iter()
            .filter(|(_, v)| !nonzero_only || v.iter().any(|cpu| cpu.iter().any(|&b| b != 0)))
            .collect();
        let want = dump["entries"].as_array().cloned().unwrap_or_default();
        if want.len() != ours.len() {
            return Err(format!(
                "maps_after: {name} has {} entries, the kernel's {}",
                ours.len(),
                want.len()
            ));
        }
        for w in &want {
            let key = w["key"].as_str().unwrap_or("");
            let Some((_, values)) = ours.iter().find(|(k, _)| k == key) else {
                return Err(format!("maps_after: {name} lacks key {key}"));
            };
            let expected: Vec<&str> = match w["values"].as_array() {
                Some(vs) => vs.iter().filter_map(Value::as_str).collect(),
                None => vec![w["value"].as_str().unwrap_or("")],
            };
            let same = expected.len() == values.len()
                && expected.iter().zip(values).all(|(e, v)| matches(e, v));
            if !same {
                let ours: Vec<String> = values.iter().map(|v| hex(v)).collect();
                return Err(format!(
                    "maps_after: {name}[{key}] = {ours:?}, the kernel's {expected:?}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn vectors_agree_with_the_kernel() {
    let files = common::scenario_files();
    assert!(files.len() >= 30);
    let (mut agree, mut packets) = (0, 0);
    let mut unexpected = Vec::new();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let expected_to_fail = NOT_YET.contains(&name.as_str());
        match replay(f, Engine::Interp) {
            Ok(n) => {
                agree += 1;
                packets += n;
                println!("ok   {name}: {n} packets");
                if expected_to_fail {
                    unexpected.push(format!("{name} now passes: remove it from NOT_YET"));
                }
            }
            Err(e) => {
                println!("FAIL {name}: {e}");
                if !expected_to_fail {
                    unexpected.push(format!("{name}: {e}"));
                }
            }
        }
    }
    println!(
        "test vectors: {agree}/{} scenarios agree with the kernel ({packets} packets)",
        files.len()
    );
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}

/// The same scenarios under the JIT's baseline tier (x86-64 only): every verdict, packet, map
/// and record the kernel recorded.
#[test]
fn vectors_agree_under_the_baseline_tier() {
    if !cfg!(target_arch = "x86_64") {
        println!("skipped: the baseline tier compiles for x86-64 hosts only");
        return;
    }
    let files = common::scenario_files();
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        if let Err(e) = replay(f, Engine::Baseline) {
            failures.push(format!("{name}: {e}"));
        }
    }
    println!(
        "test vectors under the baseline tier: {}/{} scenarios agree",
        files.len() - failures.len(),
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same scenarios under the JIT: every verdict, packet, map and record must be the
/// interpreter's (which the kernel's recorded results pin). A program the JIT did not compile
/// would be listed, run interpreted under `auto`, and fail the test.
#[test]
fn vectors_agree_under_the_jit() {
    let files = common::scenario_files();
    let (mut agree, mut not_compiled) = (0, Vec::new());
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        match replay(f, Engine::Jit) {
            Ok(_) => agree += 1,
            Err(e) if e.contains("not compiled by the JIT yet") => {
                not_compiled.push(name.clone());
                if let Err(e) = replay(f, Engine::Auto) {
                    failures.push(format!("{name} (auto): {e}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    println!(
        "test vectors under the JIT: {agree}/{} scenarios agree; interpreted (not compiled yet): {not_compiled:?}",
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every program compiles, callbacks included (the interpreter runs the callback bodies).
    assert!(not_compiled.is_empty(), "{not_compiled:?}");
}
