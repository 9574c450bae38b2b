//! The verifier's log against the live kernel's, line by line: every program of every
//! test-vectors object is loaded in the kernel at log level 1 and 2 and verified by bpfsim at the
//! same level, and the two logs are compared. The one field that cannot agree, the kernel
//! address an `lddw` of a map prints (bpfsim prints `map[idx:K]`), is masked on both sides.
//!
//! `BPFSIM_VLOG_DUMP=DIR` writes both logs of every program to DIR (`NAME.k1`, `NAME.b1`, ...)
//! for `diff`.

use std::path::PathBuf;

/// Lines of the kernel's logs that ours matches (in order), as measured: any regression fails.
/// Level 1 misses only statistics lines whose state counts differ.
const LEVEL1_FLOOR: usize = 145;
/// Level 2: what bpfsim's exploration does differently (the iterations of bpf_loop callbacks in
/// xdp_loop, most of the rest) shows as lines the kernel has and bpfsim has not.
const LEVEL2_FLOOR: usize = 42936;

fn objects() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors");
    let mut files = Vec::new();
    for dir in [root.join("progs"), root.join("verifier/objects")] {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".bpf.o"))
            .collect();
        fs.sort();
        files.extend(fs);
    }
    files
}

/// An `lddw` line with the map's address masked: `N: (18) rK = <map>`, comment kept, the
/// padding before it collapsed (it depends on the address's width).
fn normalize(line: &str) -> String {
    // `N: (18) ...` in the trace, `[SCC] N: LIVE (18) ...` in level 2's live-register table,
    // `mark_precise: ... before N: (18) ...` in backtracking.
    let Some(at) = line.find("(18) r") else {
        return line.to_string();
    };
    let head = &line[..at];
    let rest = &line[at + 5..];
    let (insn, comment) = match rest.split_once(" ; ") {
        Some((i, c)) => (i.trim_end(), Some(c)),
        None => (rest.trim_end(), None),
    };
    let Some((dst, value)) = insn.split_once(" = ") else {
        return line.to_string();
    };
    // A kernel address (0xffff...) or bpfsim's stand-in; a true 64-bit immediate stays.
    let masked = value.starts_with("map[") || (value.starts_with("0xffff") && value.len() == 18);
    if !masked {
        return line.to_string();
    }
    match comment {
        Some(c) => format!("{head}(18) {dst} = <map> ; {c}"),
        None => format!("{head}(18) {dst} = <map>"),
    }
}

/// Lines of `b` matched in order with lines of `a` (a longest common subsequence, by Myers'
/// algorithm, O((N+M)·D)); past 60000 differences, the common prefix.
fn common_lines(a: &[String], b: &[String]) -> usize {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max_d = 60000.min(n + m);
    let off = max_d + 1;
    let mut v = vec![0isize; (2 * off + 1) as usize];
    for d in 0..=max_d {
        let mut k = -d;
        while k <= d {
            let i = (k + off) as usize;
            let mut x = if k == -d || (k != d && v[i - 1] < v[i + 1]) {
                v[i + 1]
            } else {
                v[i - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[i] = x;
            if x >= n && y >= m {
                // d edits: n + m - d lines on the longer-of-both sides are shared pairs.
                return ((n + m - d) / 2) as usize;
            }
            k += 2;
        }
    }
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

struct Tally {
    lines: usize,
    agree: usize,
    programs: usize,
    identical: usize,
}

#[test]
fn verifier_log_follows_the_kernel_line_by_line() {
    let kernel = match bpfsim_kernel::KernelBpf::probe() {
        Ok(k) => k,
        Err(u) => {
            println!("skipped: {u}");
            return;
        }
    };
    let dump = std::env::var_os("BPFSIM_VLOG_DUMP").map(PathBuf::from);
    let mut tallies = Vec::new();
    for level in [1u32, 2] {
        let mut t = Tally {
            lines: 0,
            agree: 0,
            programs: 0,
            identical: 0,
        };
        for f in objects() {
            let obj = bpfsim_vm::loader::load_object(&std::fs::read(&f).unwrap()).unwrap();
            let ko = kernel.load_object_maps(&obj).unwrap();
            let stem = f
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".bpf.o", "");
            for p in &obj.programs {
                let Some(v) = bpfsim_verifier::verify_object_program(&obj, p, None, level) else {
                    continue;
                };
                let (_, klog) = ko.load_program_logged(&kernel, &obj, p, None, level);
                let k: Vec<String> = klog.lines().map(normalize).collect();
                let ours: Vec<String> = v.log.iter().map(|l| normalize(l)).collect();
                if let Some(dir) = &dump {
                    std::fs::create_dir_all(dir).unwrap();
                    let name = format!("{stem}.{}", p.name);
                    std::fs::write(dir.join(format!("{name}.k{level}")), k.join("\n") + "\n")
                        .unwrap();
                    std::fs::write(dir.join(format!("{name}.b{level}")), ours.join("\n") + "\n")
                        .unwrap();
                }
                let agree = common_lines(&k, &ours);
                println!(
                    "level {level} {stem:<20} {:<24} {agree:>6}/{:<6} lines (ours {})",
                    p.name,
                    k.len(),
                    ours.len()
                );
                t.lines += k.len();
                t.agree += agree;
                t.programs += 1;
                t.identical += usize::from(k == ours);
            }
        }
        println!(
            "level {level}: log-line agreement: {}/{} lines ({} programs identical of {})",
            t.agree, t.lines, t.identical, t.programs
        );
        tallies.push(t);
    }
    assert!(
        tallies[0].agree >= LEVEL1_FLOOR,
        "level 1: {} lines agree, floor {LEVEL1_FLOOR}",
        tallies[0].agree
    );
    assert!(
        tallies[1].agree >= LEVEL2_FLOOR,
        "level 2: {} lines agree, floor {LEVEL2_FLOOR}",
        tallies[1].agree
    );
}

/// `.BTF.ext` line info is placed where each function landed, and the verifier's log prints it.
#[test]
fn line_info_follows_the_linked_program() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors");
    let obj = bpfsim_vm::loader::load_object(
        &std::fs::read(root.join("progs/bpf2bpf_calls.bpf.o")).unwrap(),
    )
    .unwrap();
    let p = &obj.programs[0];
    let lines = obj.line_info(p);
    assert_eq!(lines.first().map(|l| l.slot), Some(0));
    // Every function starts with a record of its own (the kernel insists on it).
    for f in &p.functions {
        assert!(
            lines.iter().any(|l| l.slot == f.slot),
            "{}: no line at {}",
            f.name,
            f.slot
        );
    }
    assert!(lines.windows(2).all(|w| w[0].slot < w[1].slot));
    assert!(lines
        .iter()
        .all(|l| l.file.ends_with("bpf2bpf_calls.bpf.c")));
    let v = bpfsim_verifier::verify_object_program(&obj, p, None, 2).unwrap();
    assert!(
        v.log.iter().any(|l| l.starts_with("; ")
            && l.ends_with(&format!("@ bpf2bpf_calls.bpf.c:{}", lines[0].line))),
        "{:?}",
        &v.log[..20.min(v.log.len())]
    );
}

/// `bpfsim verify --log-level N` prints the trace, and JSON carries it.
#[test]
fn the_cli_prints_the_trace() {
    let obj = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../test-vectors/verifier/objects/reject_null_deref.bpf.o");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bpfsim"))
            .arg("verify")
            .arg(&obj)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["--prog", "xdp_count_unchecked", "--log-level", "1"]);
    for want in [
        "  | 0: R1=ctx() R10=fp0",
        "  | ; *v += 1; /* no NULL check */ @ reject_null_deref.bpf.c:20",
        "  | 6: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1,map=counts,ks=4,vs=8)",
        "  | R0 invalid mem access 'map_value_or_null'",
    ] {
        assert!(text.lines().any(|l| l == want), "{want:?} not in\n{text}");
    }
    let json = run(&[
        "--prog",
        "xdp_count_checked",
        "--log-level",
        "2",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let log: Vec<&str> = v["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(log[0], "func#0 @0");
    assert!(
        log.iter().any(|l| l.starts_with("from 7 to 11: ")),
        "{log:?}"
    );
    assert!(log.last().unwrap().starts_with("processed "));
}

#[test]
fn lddw_addresses_are_masked_and_nothing_else() {
    assert_eq!(
        normalize("4: (18) r1 = 0xffff88810483c800       ; R1=map_ptr(map=counts,ks=4,vs=8)"),
        "4: (18) r1 = <map> ; R1=map_ptr(map=counts,ks=4,vs=8)"
    );
    assert_eq!(
        normalize("4: (18) r1 = map[idx:0]                ; R1=map_ptr(map=counts,ks=4,vs=8)"),
        "4: (18) r1 = <map> ; R1=map_ptr(map=counts,ks=4,vs=8)"
    );
    assert_eq!(
        normalize("mark_precise: frame0: regs= stack=-32 before 54: (18) r1 = 0xffffc900012f7018"),
        "mark_precise: frame0: regs= stack=-32 before 54: (18) r1 = <map>"
    );
    let imm = "23: (18) r0 = 0xffffffff              ; frame1: R0=0xffffffff";
    assert_eq!(normalize(imm), imm);
    assert_eq!(
        normalize("R1 type=scalar expected=fp"),
        "R1 type=scalar expected=fp"
    );
    assert_eq!(
        normalize("  1  14: 0......... (18) r1 = 0xffffc90009703008"),
        "  1  14: 0......... (18) r1 = <map>"
    );
    let a: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let b: Vec<String> = ["a", "x", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(common_lines(&a, &b), 3);
    assert_eq!(common_lines(&a, &a), 4);
    assert_eq!(common_lines(&a, &[]), 0);
}

/// Lines of the kernel's logs of `test-vectors/loader/btf_ptr.bpf.o` (tracing arguments
/// dereferenced as PTR_TO_BTF_ID) that ours matches, levels 1 and 2 together, as measured.
const BTF_PTR_FLOOR: usize = 641;

/// The logs of programs that walk kernel structs through PTR_TO_BTF_ID: the argument's
/// `func '...' argN has btf_id ...` line, `trusted_ptr_task_struct()`, `rcu_ptr_or_null_sock(id=1)`.
#[test]
fn btf_pointer_logs_follow_the_kernel() {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return println!("skipped: no /sys/kernel/btf/vmlinux");
    }
    let kernel = match bpfsim_kernel::KernelBpf::probe() {
        Ok(k) => k,
        Err(u) => return println!("skipped: {u}"),
    };
    let dump = std::env::var_os("BPFSIM_VLOG_DUMP").map(PathBuf::from);
    let f = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/loader/btf_ptr.bpf.o");
    let obj = bpfsim_vm::loader::load_object(&std::fs::read(&f).unwrap()).unwrap();
    let ko = kernel.load_object_maps(&obj).unwrap();
    let (mut lines, mut agree, mut identical) = (0, 0, 0);
    for level in [1u32, 2] {
        for p in &obj.programs {
            let v = bpfsim_verifier::verify_object_program(&obj, p, None, level).unwrap();
            let (_, klog) = ko.load_program_logged(&kernel, &obj, p, None, level);
            let k: Vec<String> = klog.lines().map(normalize).collect();
            let ours: Vec<String> = v.log.iter().map(|l| normalize(l)).collect();
            if let Some(dir) = &dump {
                std::fs::create_dir_all(dir).unwrap();
                let name = format!("btf_ptr.{}", p.name);
                std::fs::write(dir.join(format!("{name}.k{level}")), k.join("\n") + "\n").unwrap();
                std::fs::write(dir.join(format!("{name}.b{level}")), ours.join("\n") + "\n")
                    .unwrap();
            }
            let a = common_lines(&k, &ours);
            println!("level {level} {:<24} {a:>4}/{:<4} lines", p.name, k.len());
            lines += k.len();
            agree += a;
            identical += usize::from(k == ours);
        }
    }
    println!("btf_ptr: log-line agreement {agree}/{lines} ({identical} logs identical)");
    assert!(
        agree >= BTF_PTR_FLOOR,
        "{agree} lines agree, floor {BTF_PTR_FLOOR}"
    );
}
