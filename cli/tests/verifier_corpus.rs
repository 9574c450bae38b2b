//! The verifier's fidelity corpus (test-vectors/verifier/*.txt): small programs, each aimed at one
//! kernel check, with the kernel's verdict and first error line recorded. Each runs through our
//! verifier and, where bpf(2) is available, through the live kernel's; our verdict must equal the
//! kernel's on every program, our first error line on at least 95% of rejections.
//!
//! `BPFSIM_RECORD=1 cargo test -p bpfsim --test verifier_corpus` (as root) rewrites the recorded
//! expectations from the live kernel.
//!
//! Format: `=== name`, then `; type: xdp` (default), `; maps: array 4 8 1, hash 4 8 16` (map_idx
//! 0, 1, ...: type, key size, value size, max entries), `; license: GPL` (default), `; expect:
//! accept` or `; expect: reject: <first error line>`; a map spec may add `btf` (a BTF value type: a
//! struct of `int`s) or `lock=N` (with a `struct bpf_spin_lock` at offset N), optionally `; processed: N` (the kernel's
//! processed-instruction count, which ours must equal: cases about state pruning), then the
//! program in bpfsim's assembly.

use std::path::PathBuf;

use bpfsim_verifier::{verify, MapInfo, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::encode;
use bpfsim_vm::spec::{MapType, ProgType};

struct Case {
    file: PathBuf,
    name: String,
    prog_type: ProgType,
    maps: Vec<MapInfo>,
    license: String,
    expect: Option<Result<(), String>>,
    /// The kernel's `processed N insns`, for cases that check pruning.
    processed: Option<u64>,
    source: String,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/verifier")
}

fn parse_maps(spec: &str) -> Vec<MapInfo> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|m| {
            let f: Vec<&str> = m.split_whitespace().collect();
            let n = |i: usize| f.get(i).and_then(|x| x.parse().ok()).unwrap_or(0);
            MapInfo {
                name: format!("m{}", f[0]),
                map_type: MapType::from_name(f[0]).unwrap_or_else(|| panic!("map type {}", f[0])),
                key_size: n(1),
                value_size: n(2),
                max_entries: n(3),
                rdonly_prog: f.contains(&"rdonly"),
                frozen: f.contains(&"rdonly"),
                // `btf` gives the map a BTF value type (a struct of `int`s), `lock=N` one with a
                // `struct bpf_spin_lock` at offset N.
                btf: f.iter().any(|x| *x == "btf" || x.starts_with("lock=")),
                spin_lock: f.iter().find_map(|x| x.strip_prefix("lock=")?.parse().ok()),
                // The kernel's frozen maps in the corpus are all zeros.
                data: f.contains(&"rdonly").then(|| vec![0; n(2) as usize]),
            }
        })
        .collect()
}

fn load_cases() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for block in text.split("\n=== ").skip(1) {
            let (name, body) = block.split_once('\n').unwrap_or((block, ""));
            let mut c = Case {
                file: file.clone(),
                name: name.trim().to_string(),
                prog_type: ProgType::Xdp,
                maps: Vec::new(),
                license: "GPL".to_string(),
                expect: None,
                processed: None,
                source: String::new(),
            };
            for line in body.lines() {
                let l = line.trim();
                if let Some(v) = l.strip_prefix("; type:") {
                    c.prog_type = ProgType::from_name(v.trim()).expect("program type");
                } else if let Some(v) = l.strip_prefix("; maps:") {
                    c.maps = parse_maps(v);
                } else if let Some(v) = l.strip_prefix("; license:") {
                    c.license = v.trim().to_string();
                } else if let Some(v) = l.strip_prefix("; expect:") {
                    let v = v.trim();
                    c.expect = Some(match v.strip_prefix("reject:") {
                        Some(e) => Err(e.trim().to_string()),
                        None => Ok(()),
                    });
                } else if let Some(v) = l.strip_prefix("; processed:") {
                    c.processed = Some(v.trim().parse().expect("processed count"));
                } else if !l.starts_with(';') && !l.is_empty() {
                    c.source.push_str(line);
                    c.source.push('\n');
                }
            }
            cases.push(c);
        }
    }
    cases
}

#[cfg(target_os = "linux")]
fn kernel_verdict(bpf: &bpfsim_kernel::KernelBpf, c: &Case) -> Result<Result<(), String>, String> {
    kernel_load(bpf, c).map(|(v, _)| v)
}

/// The kernel's verdict on a case and its processed-instruction count.
#[cfg(target_os = "linux")]
fn kernel_load(
    bpf: &bpfsim_kernel::KernelBpf,
    c: &Case,
) -> Result<(Result<(), String>, Option<u64>), String> {
    use bpfsim_kernel::{MapSpec, ProgSpec, ProgType as KType};
    let mut maps = Vec::new();
    let mut btfs = Vec::new();
    for m in &c.maps {
        let mut spec = MapSpec {
            map_type: m.map_type.id(),
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
            name: m.name.clone(),
            ..MapSpec::default()
        };
        if matches!(m.map_type, MapType::LpmTrie | MapType::SkStorage) {
            spec.flags = 1; // BPF_F_NO_PREALLOC
        }
        if m.rdonly_prog {
            spec.flags |= 1 << 7;
        }
        if m.btf {
            let (raw, key, value) = value_btf(m.key_size, m.value_size, m.spin_lock);
            let b = bpf
                .btf_load(&raw)
                .map_err(|e| format!("loading BTF for {}: {e:?}", m.name))?;
            spec.btf = Some((b.raw_fd(), key, value));
            btfs.push(b);
        }
        let map = bpf
            .map_create(&spec, None)
            .map_err(|e| format!("creating map {}: {e}", m.name))?;
        if m.rdonly_prog {
            map.freeze().map_err(|e| format!("freezing: {e}"))?;
        }
        maps.push(map);
    }
    let fds: Vec<i32> = maps.iter().map(|m| m.raw_fd()).collect();
    let insns = encode(&assemble(&c.source).map_err(|e| e.to_string())?);
    let spec = ProgSpec {
        fd_array: &fds,
        ..ProgSpec::new(KType(c.prog_type.id()), &insns, &c.license)
    };
    // `BPFSIM_CORPUS_LOG=DIR` keeps the kernel's level-2 log of each case (`NAME.k2`), beside
    // ours (`NAME.b2`), for `diff`.
    if let Some(dir) = std::env::var_os("BPFSIM_CORPUS_LOG") {
        let (_, log2) = bpf.prog_load_spec_logged(&spec, 2);
        let _ = std::fs::write(PathBuf::from(dir).join(format!("{}.k2", c.name)), log2);
    }
    let (r, log) = bpf.prog_load_spec_logged(&spec, 1);
    let verdict = match r {
        Ok(_) => Ok(()),
        Err(_) => Err(bpfsim_kernel::last_meaningful_line(&log)
            .unwrap_or("")
            .to_string()),
    };
    Ok((verdict, processed_of(&log)))
}

/// Raw BTF for a map whose key is an integer of `key_size` bytes and whose value is a struct of
/// `value_size` bytes made of `int` members, one of them a `struct bpf_spin_lock` at `lock`:
/// (the BTF, the key's type id, the value's type id).
fn value_btf(key_size: u32, value_size: u32, lock: Option<u32>) -> (Vec<u8>, u32, u32) {
    let mut strings: Vec<u8> = vec![0];
    let mut name = |s: &str| -> u32 {
        let off = strings.len() as u32;
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        off
    };
    let mut types: Vec<u32> = Vec::new();
    let int = |types: &mut Vec<u32>, name_off: u32, size: u32| {
        // BTF_KIND_INT (1), signed, `size * 8` bits.
        types.extend([name_off, 1 << 24, size, (1 << 24) | (size * 8)]);
    };
    // 1: int, 2: the key, 3: struct bpf_spin_lock { int val; }, 4: the value.
    let n_int = name("int");
    int(&mut types, n_int, 4);
    let n_key = name("key");
    int(&mut types, n_key, key_size);
    let (n_lock, n_val) = (name("bpf_spin_lock"), name("val"));
    types.extend([n_lock, (4 << 24) | 1, 4, n_val, 1, 0]);
    let n_value = name("value");
    let fields: Vec<(u32, u32, u32)> = (0..value_size / 4)
        .map(|i| {
            let off = i * 4;
            let n = name(&format!("f{off}"));
            let ty = if lock == Some(off) { 3 } else { 1 };
            (n, ty, off * 8)
        })
        .collect();
    types.extend([n_value, (4 << 24) | fields.len() as u32, value_size]);
    for (n, ty, bits) in fields {
        types.extend([n, ty, bits]);
    }
    let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut raw = Vec::new();
    raw.extend_from_slice(&0xeb9fu16.to_le_bytes());
    raw.extend_from_slice(&[1, 0]);
    for w in [
        24u32,
        0,
        type_bytes.len() as u32,
        type_bytes.len() as u32,
        strings.len() as u32,
    ] {
        raw.extend_from_slice(&w.to_le_bytes());
    }
    raw.extend_from_slice(&type_bytes);
    raw.extend_from_slice(&strings);
    (raw, 2, 4)
}

fn show(v: &Result<(), String>) -> String {
    match v {
        Ok(()) => "accept".to_string(),
        Err(e) => format!("reject: {e}"),
    }
}

#[test]
fn verifier_agrees_with_the_kernel() {
    let cases = load_cases();
    assert!(!cases.is_empty());
    #[cfg(target_os = "linux")]
    let kernel = match bpfsim_kernel::KernelBpf::probe() {
        Ok(k) => Some(k),
        Err(u) => {
            println!("note: comparing with the recorded kernel verdicts: {u}");
            None
        }
    };
    #[cfg(not(target_os = "linux"))]
    let kernel: Option<()> = None;
    let record = std::env::var_os("BPFSIM_RECORD").is_some();
    let (mut verdicts, mut lines, mut rejections) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut records: Vec<(PathBuf, String, Result<(), String>)> = Vec::new();
    for c in &cases {
        let insns = assemble(&c.source).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let mut opts = Options::new(c.prog_type);
        opts.maps = c.maps.clone();
        opts.gpl = bpfsim_verifier::license_is_gpl(&c.license);
        let ours = verify(&insns, &opts);
        if let Some(dir) = std::env::var_os("BPFSIM_CORPUS_LOG") {
            let mut o2 = opts.clone();
            o2.log_level = 2;
            let log2 = verify(&insns, &o2).log.join("\n") + "\n";
            let _ = std::fs::write(PathBuf::from(dir).join(format!("{}.b2", c.name)), log2);
        }
        let ours_v = match &ours.error {
            None => Ok(()),
            Some(e) => Err(e.clone()),
        };
        #[cfg(target_os = "linux")]
        let truth = match &kernel {
            Some(k) => match kernel_verdict(k, c) {
                Ok(v) => Some(v),
                Err(e) => panic!("{}: {e}", c.name),
            },
            None => None,
        };
        #[cfg(not(target_os = "linux"))]
        let truth: Option<Result<(), String>> = None;
        if let (Some(t), Some(e)) = (&truth, &c.expect) {
            if t != e && !record {
                failures.push(format!(
                    "{}: recorded `{}` but the kernel now says `{}` (BPFSIM_RECORD=1 to re-record)",
                    c.name,
                    show(e),
                    show(t)
                ));
            }
        }
        if let Some(t) = &truth {
            records.push((c.file.clone(), c.name.clone(), t.clone()));
        }
        let Some(want) = truth.or_else(|| c.expect.clone()) else {
            failures.push(format!(
                "{}: no expectation recorded and no kernel to ask",
                c.name
            ));
            continue;
        };
        if want.is_ok() == ours_v.is_ok() {
            verdicts += 1;
        } else {
            failures.push(format!(
                "{}: ours `{}`, the kernel's `{}`",
                c.name,
                show(&ours_v),
                show(&want)
            ));
        }
        if let Err(w) = &want {
            rejections += 1;
            if ours_v.as_ref().err() == Some(w) {
                lines += 1;
            } else {
                println!(
                    "error line differs: {}: ours `{}`, the kernel's `{w}`",
                    c.name,
                    show(&ours_v)
                );
            }
        }
    }
    if record {
        write_records(&records);
    }
    let _ = &kernel;
    println!(
        "verdict agreement {verdicts}/{}, error-line agreement {lines}/{rejections}",
        cases.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        lines * 100 >= rejections * 95,
        "error-line agreement {lines}/{rejections} is below 95%"
    );
}

/// Rewrite each case's `; expect:` line with what the kernel said.
fn write_records(records: &[(PathBuf, String, Result<(), String>)]) {
    let mut files: Vec<&PathBuf> = records.iter().map(|r| &r.0).collect();
    files.dedup();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut out = String::new();
        let mut current: Option<&Result<(), String>> = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("=== ") {
                current = records
                    .iter()
                    .find(|r| &r.0 == file && r.1 == name.trim())
                    .map(|r| &r.2);
                out.push_str(line);
                out.push('\n');
                if let Some(v) = current {
                    out.push_str(&format!("; expect: {}\n", show(v)));
                }
                continue;
            }
            if line.trim().starts_with("; expect:") && current.is_some() {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        std::fs::write(file, out).unwrap();
    }
}

/// Every program of every test-vectors object loads in the kernel (vectors_kernel.rs proves it
/// on each run): our verifier must accept each too, as libbpf would load it.
#[test]
fn every_vector_object_is_accepted() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/progs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.o"))
        .collect();
    files.sort();
    let (mut n, mut failures) = (0, Vec::new());
    for f in &files {
        let obj = bpfsim_vm::loader::load_object(&std::fs::read(f).unwrap()).unwrap();
        for p in &obj.programs {
            let Some(v) = bpfsim_verifier::verify_object_program(&obj, p, None, 1) else {
                continue;
            };
            n += 1;
            if !v.accepted {
                failures.push(format!(
                    "{} {}: {}",
                    f.file_name().unwrap().to_string_lossy(),
                    p.name,
                    v.error.unwrap_or_default()
                ));
            } else {
                println!(
                    "ok {} {}: {} insns processed",
                    f.file_name().unwrap().to_string_lossy(),
                    p.name,
                    v.processed
                );
            }
        }
    }
    println!("test-vector programs accepted: {}/{n}", n - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `processed N insns` of a verifier log.
fn processed_of(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        l.strip_prefix("processed ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

/// Cases with a recorded processed-instruction count (pruning and precision tracking): ours
/// must equal it, and so must the live kernel's where bpf(2) is available.
#[test]
fn pruning_cases_process_what_the_kernel_processes() {
    let cases: Vec<Case> = load_cases()
        .into_iter()
        .filter(|c| c.processed.is_some())
        .collect();
    assert!(!cases.is_empty());
    #[cfg(target_os = "linux")]
    let kernel = bpfsim_kernel::KernelBpf::probe().ok();
    let mut failures = Vec::new();
    for c in &cases {
        let want = c.processed.expect("filtered");
        let mut opts = Options::new(c.prog_type);
        opts.maps = c.maps.clone();
        let ours = verify(&assemble(&c.source).unwrap(), &opts);
        println!(
            "{:<40} ours {:>5}  kernel {want:>5}",
            c.name, ours.processed
        );
        if ours.processed != want {
            failures.push(format!(
                "{}: ours {} insns, the kernel's {want}",
                c.name, ours.processed
            ));
        }
        #[cfg(target_os = "linux")]
        if let Some(k) = &kernel {
            let (_, live) = kernel_load(k, c).unwrap();
            if live != Some(want) {
                failures.push(format!(
                    "{}: recorded {want} insns but the kernel now processes {live:?}",
                    c.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Programs whose processed-instruction count must be within 10% of the live kernel's: all of
/// them (35 programs), so any regression in pruning fails here.
const PROCESSED_FLOOR: usize = 35;

/// How many instructions our verifier processes against the kernel's, for every program of
/// every test-vectors object: the state pruning (precision tracking included) follows the
/// kernel's, so the counts should too.
#[test]
fn processed_instructions_follow_the_kernel() {
    let kernel = match bpfsim_kernel::KernelBpf::probe() {
        Ok(k) => k,
        Err(u) => {
            println!("skipped: {u}");
            return;
        }
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/progs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.o"))
        .collect();
    files.sort();
    let mut rows: Vec<(String, u64, u64)> = Vec::new();
    for f in &files {
        let obj = bpfsim_vm::loader::load_object(&std::fs::read(f).unwrap()).unwrap();
        let ko = kernel.load_object_maps(&obj).unwrap();
        for p in &obj.programs {
            let Some(v) = bpfsim_verifier::verify_object_program(&obj, p, None, 1) else {
                continue;
            };
            let (r, log) = ko.load_program_logged(&kernel, &obj, p, None, 1);
            assert!(r.is_ok(), "{}: the kernel rejects it:\n{log}", p.name);
            let k = processed_of(&log).unwrap_or_else(|| panic!("{}: no count in\n{log}", p.name));
            rows.push((p.name.clone(), v.processed, k));
        }
    }
    let ratio = |o: u64, k: u64| o as f64 / k.max(1) as f64;
    let within = |o: u64, k: u64| (ratio(o, k) - 1.0).abs() <= 0.10;
    println!(
        "{:<24} {:>8} {:>8} {:>6}",
        "program", "bpfsim", "kernel", "ratio"
    );
    for (name, o, k) in &rows {
        let mark = if within(*o, *k) { "" } else { "  outside 10%" };
        println!("{name:<24} {o:>8} {k:>8} {:>6.2}{mark}", ratio(*o, *k));
    }
    let mut ratios: Vec<f64> = rows.iter().map(|(_, o, k)| ratio(*o, *k)).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let (worst, wr) = rows
        .iter()
        .map(|(n, o, k)| (n, ratio(*o, *k)))
        .max_by(|a, b| (a.1.ln().abs()).total_cmp(&b.1.ln().abs()))
        .unwrap();
    let good = rows.iter().filter(|(_, o, k)| within(*o, *k)).count();
    println!(
        "processed-insn agreement: {good}/{} within 10% (median ratio {median:.2}, worst program {worst} {wr:.2})",
        rows.len()
    );
    assert!(
        good >= PROCESSED_FLOOR,
        "only {good} programs within 10% of the kernel's processed count (floor {PROCESSED_FLOOR})"
    );
}

/// Every program of the objects in `test-vectors/verifier/objects` (clang-built, with BTF: map
/// values with a `bpf_spin_lock`, NULL checks, packet bounds) gets the live kernel's verdict and
/// first error line.
#[test]
fn verifier_objects_agree_with_the_kernel() {
    let kernel = match bpfsim_kernel::KernelBpf::probe() {
        Ok(k) => k,
        Err(u) => {
            println!("skipped: {u}");
            return;
        }
    };
    let dir = corpus_dir().join("objects");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.o"))
        .collect();
    files.sort();
    let (mut n, mut failures) = (0, Vec::new());
    for f in &files {
        let obj = bpfsim_vm::loader::load_object(&std::fs::read(f).unwrap()).unwrap();
        let ko = kernel.load_object_maps(&obj).unwrap();
        for p in &obj.programs {
            let Some(v) = bpfsim_verifier::verify_object_program(&obj, p, None, 1) else {
                continue;
            };
            let (r, log) = ko.load_program_logged(&kernel, &obj, p, None, 1);
            let theirs = match r {
                Ok(_) => Ok(()),
                Err(_) => Err(bpfsim_kernel::last_meaningful_line(&log)
                    .unwrap_or("")
                    .to_string()),
            };
            let ours = v.error.map_or(Ok(()), Err);
            let file = f.file_name().unwrap().to_string_lossy();
            println!("{file} {}: {}", p.name, show(&theirs));
            n += 1;
            if ours != theirs {
                failures.push(format!(
                    "{}: ours `{}`, the kernel's `{}`",
                    p.name,
                    show(&ours),
                    show(&theirs)
                ));
            }
        }
    }
    assert!(n >= 5, "only {n} programs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
