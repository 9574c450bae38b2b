//! Every test vector run twice, side by side: in the live kernel (the object loaded through
//! bpfsim-kernel, packets through BPF_PROG_TEST_RUN) and in the simulator, with the same map setup,
//! context and packet order. Retval, output packet, ring buffer records, bpf_printk lines and the
//! maps afterwards must be equal. Where bpf(2) is unavailable the test says why and skips.
//!
//! The recorded expectations (vectors.rs) pin the simulator to what the kernel did once; this test
//! asks the kernel again on every run, so a kernel that changes its mind is noticed too.

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
mod live {
    use std::collections::BTreeMap;

    use bpfsim_helpers::object::LoadedObject;
    use bpfsim_helpers::Env;
    use bpfsim_kernel::{possible_cpus, KernelBpf, KernelRunner};
    use bpfsim_vm::spec::MapType;

    use super::common::{self, hex, Scenario, SetupValue};

    /// Map types whose contents a syscall cannot read back comparably: prog arrays hold ids that
    /// differ between the two, ring buffers have no keys (their records are compared per packet),
    /// XSKMAP lookups are EOPNOTSUPP, perf event arrays hold descriptors.
    const NOT_COMPARED: [MapType; 4] = [
        MapType::ProgArray,
        MapType::Ringbuf,
        MapType::Xskmap,
        MapType::PerfEventArray,
    ];

    type Entries = BTreeMap<String, Vec<String>>;

    /// Normalise a dump: hex keys and values, nondeterministic bytes masked, and for array-like
    /// maps (every index always present) only the non-zero entries.
    fn normalise(
        sc: &Scenario,
        map: &str,
        array_like: bool,
        entries: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    ) -> Entries {
        entries
            .into_iter()
            .filter(|(_, vs)| {
                !array_like || map.starts_with('.') || vs.iter().flatten().any(|&b| b != 0)
            })
            .map(|(k, vs)| {
                let vs = vs
                    .into_iter()
                    .map(|mut v| {
                        for (m, r) in &sc.nondeterministic {
                            if m == map {
                                for b in v.iter_mut().take(r.end).skip(r.start) {
                                    *b = 0;
                                }
                            }
                        }
                        hex(&v)
                    })
                    .collect();
                (hex(&k), vs)
            })
            .collect()
    }

    /// Run one scenario on both sides; the number of packets compared, or the first difference.
    fn compare(bpf: &KernelBpf, sc: &Scenario, trace: bool) -> Result<usize, String> {
        let ncpus = possible_cpus();
        let env = Env {
            ncpus: ncpus as u32,
            cpu: 0,
            ..Env::default()
        };
        let mut sim = LoadedObject::load(&sc.object, env).map_err(|e| format!("sim load: {e}"))?;
        let prog = sim
            .program(&sc.program, sc.prog_type)
            .map_err(|e| format!("sim link: {e}"))?;
        let mut kern = KernelRunner::load(bpf, &sc.object).map_err(|e| format!("kernel: {e}"))?;
        // Every vector has BTF, and the kernel must take it as the loader fixed it up.
        if let Some(e) = &kern.object.btf_error {
            return Err(format!("kernel refused the object's BTF: {e}: {}", e.log));
        }
        if kern.object.btf.is_none() {
            return Err("the object's BTF was not loaded".to_string());
        }
        if trace {
            kern.capture_trace(true).map_err(|e| e.to_string())?;
        }
        for u in &sc.setup {
            let (sim_value, kern_value) = match &u.value {
                SetupValue::Bytes(v) => (v.clone(), v.clone()),
                SetupValue::Prog(p) => (
                    sim.prog_id(p)
                        .map_err(|e| e.to_string())?
                        .to_le_bytes()
                        .to_vec(),
                    kern.prog_fd(p)
                        .map_err(|e| e.to_string())?
                        .to_le_bytes()
                        .to_vec(),
                ),
                SetupValue::Xsk { ifindex, queue } => (
                    queue.to_le_bytes().to_vec(),
                    kern.xsk_socket(*ifindex, *queue)
                        .map_err(|e| e.to_string())?
                        .to_le_bytes()
                        .to_vec(),
                ),
            };
            let id = sim.map_id(&u.map).ok_or(format!("sim: no map {}", u.map))?;
            sim.runner
                .maps
                .update(id, &u.key, &sim_value, 0)
                .map_err(|e| format!("sim setup of {}: {e}", u.map))?;
            kern.map_update(&u.map, &u.key, &kern_value)
                .map_err(|e| format!("kernel setup: {e}"))?;
        }
        for (i, packet) in sc.packets.iter().enumerate() {
            let ours = sim.run(&prog, packet, sc.input);
            let theirs = kern.run(&sc.program, packet, &sc.input);
            let (ours, theirs) = match (ours, theirs) {
                (Err(_), Err(_)) => continue,
                (Ok(_), Err(e)) => {
                    return Err(format!(
                        "packet {i}: the kernel refused it ({e}), we ran it"
                    ))
                }
                (Err(e), Ok(_)) => {
                    return Err(format!(
                        "packet {i}: the kernel ran it, we refused it ({e})"
                    ))
                }
                (Ok(o), Ok(t)) => (o, t.result),
            };
            if ours.retval as u32 as u64 != theirs.retval {
                return Err(format!(
                    "packet {i}: retval {}, the kernel's {}",
                    ours.retval as u32, theirs.retval
                ));
            }
            if ours.data != theirs.data {
                return Err(format!(
                    "packet {i}: output packet {}, the kernel's {}",
                    hex(&ours.data),
                    hex(&theirs.data)
                ));
            }
            let records = |r: &bpfsim_helpers::run::RunResult| -> Vec<(String, String)> {
                r.events
                    .iter()
                    .filter(|e| e.cpu.is_none())
                    .map(|e| (e.map.clone(), hex(&e.data)))
                    .collect()
            };
            if records(&ours) != records(&theirs) {
                return Err(format!(
                    "packet {i}: ring buffer records {:?}, the kernel's {:?}",
                    records(&ours),
                    records(&theirs)
                ));
            }
            if trace && ours.trace != theirs.trace {
                return Err(format!(
                    "packet {i}: trace {:?}, the kernel's {:?}",
                    ours.trace, theirs.trace
                ));
            }
        }
        for (idx, m) in kern.object.maps.iter().enumerate() {
            let def = &kern.parsed.maps[idx];
            if NOT_COMPARED.contains(&def.map_type) {
                continue;
            }
            let array_like = matches!(
                def.map_type,
                MapType::Array | MapType::PercpuArray | MapType::Devmap | MapType::Cpumap
            );
            let name = &m.spec().name;
            let theirs = kern.map_entries(name).map_err(|e| e.to_string())?;
            let id = sim.map_id(name).ok_or(format!("sim: no map {name}"))?;
            let ours = if m.is_percpu() {
                sim.runner.maps.entries_percpu(id)
            } else {
                sim.runner
                    .maps
                    .entries(id)
                    .map(|es| es.into_iter().map(|(k, v)| (k, vec![v])).collect())
            }
            .map_err(|e| format!("sim map {name}: {e}"))?;
            let (ours, theirs) = (
                normalise(sc, name, array_like, ours),
                normalise(sc, name, array_like, theirs),
            );
            if ours != theirs {
                return Err(format!(
                    "map {name} after the run: {ours:?}, the kernel's {theirs:?}"
                ));
            }
        }
        Ok(sc.packets.len())
    }

    #[test]
    fn vectors_agree_with_the_live_kernel() {
        let bpf = match KernelBpf::probe() {
            Ok(b) => b,
            Err(u) => return println!("skipped: {u}"),
        };
        // Per-CPU maps: every run on CPU 0, on both sides.
        if let Err(e) = bpfsim_kernel::pin_current_thread(0) {
            return println!("skipped: cannot pin the test to CPU 0: {e}");
        }
        let trace = std::fs::write("/sys/kernel/tracing/trace", "").is_ok();
        if !trace {
            println!(
                "note: tracefs not writable at /sys/kernel/tracing: bpf_printk lines not compared"
            );
        }
        let files = common::scenario_files();
        let (mut agree, mut packets) = (0, 0);
        let mut failures = Vec::new();
        for f in &files {
            let sc = common::load(f);
            match compare(&bpf, &sc, trace) {
                Ok(n) => {
                    agree += 1;
                    packets += n;
                    println!("ok   {}: {n} packets", sc.name);
                }
                Err(e) => {
                    println!("FAIL {}: {e}", sc.name);
                    failures.push(format!("{}: {e}", sc.name));
                }
            }
        }
        println!(
            "kernel agreement: {agree}/{} scenarios ({packets} packets)",
            files.len()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
