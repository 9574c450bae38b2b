//! Real-world XDP objects, written and compiled by others (xdp-tools as Debian ships it: the nine
//! xdp-filter programs, the libxdp dispatcher, the AF_XDP default programs, xdpdump's XDP program,
//! xdp-tools' test programs), run side by side in the simulator and the live kernel over every
//! frame of the bundled captures, with empty maps and with filter rules. Retval, output packet and
//! the maps afterwards must agree.
//!
//! The objects are not in this repository: `scripts/fetch-realworld.sh` unpacks them (test.sh
//! runs it) into target/realworld, or BPFSIM_REALWORLD_DIR names a folder of objects. Without
//! them, or without bpf(2), the test says why and skips.

#[cfg(target_os = "linux")]
mod live {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use bpfsim::capture::Capture;
    use bpfsim::compare::{Comparison, SlotValue};
    use bpfsim_helpers::run::Input;
    use bpfsim_helpers::Env;
    use bpfsim_kernel::KernelBpf;
    use bpfsim_vm::spec::ProgType;

    fn objects() -> Result<Vec<PathBuf>, String> {
        let root = match std::env::var_os("BPFSIM_REALWORLD_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/realworld"),
        };
        let mut found = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "o") {
                    found.push(p);
                }
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(format!(
                "no real-world objects under {} (run scripts/fetch-realworld.sh, or set \
                 BPFSIM_REALWORLD_DIR)",
                root.display()
            ));
        }
        Ok(found)
    }

    /// Every distinct frame of every bundled capture: the varied packet set.
    fn packets() -> Vec<Vec<u8>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/progs/pcaps");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
            .collect();
        files.sort();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for f in files {
            for p in Capture::open(&f).unwrap() {
                let data = p.unwrap().data;
                if seen.insert(data.clone()) {
                    out.push(data);
                }
            }
        }
        out
    }

    /// xdp-filter's rules (its map flags: 1 source, 2 destination, 4 TCP, 8 UDP), for addresses
    /// and ports the captures use; an AF_XDP socket for the XSK programs.
    fn rules() -> Vec<(&'static str, Vec<u8>, SlotValue)> {
        let flags = |f: u64| SlotValue::Bytes(f.to_le_bytes().to_vec());
        let mut v6 = vec![0x20, 0x01, 0x0d, 0xb8];
        v6.extend_from_slice(&[0; 11]);
        v6.push(1);
        vec![
            (
                "filter_ports",
                22u32.to_le_bytes().to_vec(),
                flags(1 | 2 | 4),
            ),
            ("filter_ports", 53u32.to_le_bytes().to_vec(), flags(2 | 8)),
            ("filter_ports", 9090u32.to_le_bytes().to_vec(), flags(2 | 4)),
            ("filter_ipv4", vec![10, 0, 0, 2], flags(2)),
            ("filter_ipv6", v6, flags(1)),
            (
                "filter_ethernet",
                vec![0x02, 0xba, 0xd0, 0, 0, 1],
                flags(1 | 2),
            ),
            (
                "xsks_map",
                0u32.to_le_bytes().to_vec(),
                SlotValue::Xsk {
                    ifindex: 1,
                    queue: 0,
                },
            ),
        ]
    }

    struct Tally {
        runs: usize,
        agree: usize,
        failures: Vec<String>,
    }

    fn compare_object(bpf: &KernelBpf, path: &Path, with_rules: bool, t: &mut Tally) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let mut c = match Comparison::load(bpf, &bytes, Env::default()) {
            Ok(c) => c,
            Err(e) => {
                // A load refused by both is agreement; only one side refusing is a difference.
                return println!("both refuse {name}: {e}");
            }
        };
        let xdp: Vec<String> = c
            .sim
            .object
            .programs
            .iter()
            .filter(|p| p.prog_type == Some(ProgType::Xdp))
            .map(|p| p.name.clone())
            .collect();
        if xdp.is_empty() {
            return println!("{name}: no XDP program");
        }
        if with_rules {
            for (map, key, value) in rules() {
                let Some(idx) = c.sim.object.map_index(map) else {
                    continue;
                };
                let def = &c.sim.object.maps[idx];
                let value = match value {
                    SlotValue::Bytes(mut b) => {
                        b.resize(def.value_size as usize, 0);
                        SlotValue::Bytes(b)
                    }
                    v => v,
                };
                if let Err(e) = c.set_map(map, &key, &value) {
                    t.failures.push(format!("{name}: setting {map}: {e}"));
                    return;
                }
            }
        }
        let packets = packets();
        for prog_name in xdp {
            let prog = match c.sim.program(&prog_name, None) {
                Ok(p) => p,
                Err(e) => {
                    t.failures.push(format!("{name} {prog_name}: {e}"));
                    continue;
                }
            };
            let (mut ok, mut n) = (0, 0);
            let mut verdicts = std::collections::BTreeMap::new();
            for (i, p) in packets.iter().enumerate() {
                let r = c.run(&prog, p, Input::default());
                n += 1;
                let v = match &r.kernel {
                    Ok(k) => bpfsim::run_cmd::action_name(ProgType::Xdp, k.retval),
                    Err(_) => "refused".to_string(),
                };
                *verdicts.entry(v).or_insert(0) += 1;
                if r.differences.is_empty() {
                    ok += 1;
                } else {
                    t.failures.push(format!(
                        "{name} {prog_name} packet {i}: {}",
                        r.differences.join("; ")
                    ));
                }
            }
            t.runs += n;
            t.agree += ok;
            let rules = if with_rules {
                "with rules"
            } else {
                "empty maps"
            };
            println!("{name} {prog_name} ({rules}): {ok}/{n} packets agree; kernel verdicts {verdicts:?}");
        }
        match c.map_differences(&[]) {
            Ok(d) => t
                .failures
                .extend(d.into_iter().map(|d| format!("{name}: {d}"))),
            Err(e) => t.failures.push(format!("{name}: reading maps: {e}")),
        }
    }

    #[test]
    fn public_xdp_objects_agree_with_the_kernel() {
        let objects = match objects() {
            Ok(o) => o,
            Err(reason) => return println!("skipped: {reason}"),
        };
        let bpf = match KernelBpf::probe() {
            Ok(b) => b,
            Err(u) => return println!("skipped: {u}"),
        };
        if let Err(e) = bpfsim_kernel::pin_current_thread(0) {
            return println!("skipped: cannot pin the test to CPU 0: {e}");
        }
        let mut t = Tally {
            runs: 0,
            agree: 0,
            failures: Vec::new(),
        };
        for path in &objects {
            for with_rules in [false, true] {
                compare_object(&bpf, path, with_rules, &mut t);
            }
        }
        println!(
            "kernel agreement (real-world objects): {}/{} packet runs, {} objects",
            t.agree,
            t.runs,
            objects.len()
        );
        assert!(t.runs > 0, "no XDP program ran");
        assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    }
}
