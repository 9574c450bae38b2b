//! Every test vector of test-vectors/progs: the object, its packets and the results the live kernel
//! gave (recorded by record_expected.py), replayed in the simulator. Each scenario's verdicts and
//! output packets must equal the kernel's; scenarios that need what the simulator does not do yet
//! are listed by name below and must still fail, so the list cannot go stale.

use std::path::{Path, PathBuf};

use bpfsim::capture::Capture;
use bpfsim_helpers::ctx::skb::SkbMd;
use bpfsim_helpers::object::LoadedObject;
use bpfsim_helpers::run::Input;
use bpfsim_helpers::Env;
use bpfsim_vm::spec::ProgType;
use serde_json::Value;

/// Scenarios that need features not built yet. Each must still disagree somewhere.
const NOT_YET: &[&str] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/progs")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Hex with `??` wildcards against bytes.
fn matches(expected: &str, got: &[u8]) -> bool {
    expected.len() == got.len() * 2
        && got.iter().enumerate().all(|(i, b)| {
            let e = &expected[2 * i..2 * i + 2];
            e == "??" || u8::from_str_radix(e, 16) == Ok(*b)
        })
}

/// Replay one scenario; `Err` says where the simulator first disagrees with the kernel.
fn replay(path: &Path) -> Result<usize, String> {
    let s: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dir = root();
    let bytes = std::fs::read(dir.join(s["object"].as_str().unwrap())).unwrap();
    let run = &s["run"];
    let env = Env {
        ncpus: run["nr_cpus"].as_u64().unwrap_or(1) as u32,
        cpu: run["cpu"].as_u64().unwrap_or(0) as u32,
        ..Env::default()
    };
    let mut obj = LoadedObject::load(&bytes, env).map_err(|e| format!("load: {e}"))?;
    let prog_type = ProgType::from_name(s["prog_type"].as_str().unwrap());
    let prog = obj
        .program(s["program"].as_str().unwrap(), prog_type)
        .map_err(|e| format!("link: {e}"))?;
    for u in s["setup"].as_array().into_iter().flatten() {
        let name = u["map"].as_str().unwrap();
        let value = match (u["value"].as_str(), u["value_prog"].as_str()) {
            (Some(v), _) => unhex(v),
            // An AF_XDP socket: the simulator stores the queue it is bound to.
            (None, None) if u["value_xsk"].is_object() => {
                (u["value_xsk"]["queue"].as_u64().unwrap_or(0) as u32)
                    .to_le_bytes()
                    .to_vec()
            }
            (None, Some(p)) => obj
                .prog_id(p)
                .map_err(|e| format!("setup: {e}"))?
                .to_le_bytes()
                .to_vec(),
            _ => {
                return Err(format!(
                    "setup: {name}: a value kind this runner does not apply yet: {u}"
                ))
            }
        };
        let id = obj.map_id(name).ok_or(format!("setup: no map {name}"))?;
        obj.runner
            .maps
            .update(id, &unhex(u["key"].as_str().unwrap()), &value, 0)
            .map_err(|e| format!("setup of {name}: {e}"))?;
    }
    let mut skb = SkbMd::default();
    let c = &s["ctx_in"];
    if !c.is_null() {
        let field = |k: &str| c[k].as_u64();
        for (k, slot) in [
            ("mark", &mut skb.mark),
            ("priority", &mut skb.priority),
            ("ifindex", &mut skb.ifindex),
            ("ingress_ifindex", &mut skb.ingress_ifindex),
        ] {
            if let Some(v) = field(k) {
                *slot = v as u32;
            }
        }
        if let Some(t) = field("tstamp") {
            skb.tstamp = t;
        }
        if let Some(cb) = c["cb"].as_array() {
            for (i, v) in cb.iter().enumerate().take(5) {
                skb.cb[i] = v.as_u64().unwrap_or(0) as u32;
            }
        }
    }
    let packets: Vec<Vec<u8>> = Capture::open(&dir.join(s["pcap"].as_str().unwrap()))
        .unwrap()
        .map(|p| p.unwrap().data)
        .collect();
    // The recorder always hands the kernel a context (zeros unless ctx_in says otherwise).
    let input = Input {
        skb: Some(skb),
        ..Input::default()
    };
    let mut n = 0;
    for p in s["packets"].as_array().unwrap() {
        let i = p["pcap_index"].as_u64().unwrap() as usize;
        let name = p["name"].as_str().unwrap_or("");
        let ours = obj.run(&prog, &packets[i], input);
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 30);
    let (mut agree, mut packets) = (0, 0);
    let mut unexpected = Vec::new();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let expected_to_fail = NOT_YET.contains(&name.as_str());
        match replay(f) {
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
