//! `bpfsim disasm --jit`: the JIT's code listed per BPF instruction; `BPFSIM_PERF_MAP=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bpfsim(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_bpfsim"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        pid,
    )
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors")
}

fn raw_file(tag: &str, src: &str) -> PathBuf {
    let insns = bpfsim_vm::asm::assemble(src).unwrap();
    let p = std::env::temp_dir().join(format!("bpfsim-disasm-jit-{tag}-{}", std::process::id()));
    std::fs::write(&p, bpfsim_vm::isa::encode(&insns)).unwrap();
    p
}

/// The lines of the listing that are BPF instructions (`N: text`), as (slot, text).
fn bpf_lines(out: &str) -> Vec<(usize, &str)> {
    out.lines()
        .filter_map(|l| {
            let (n, rest) = l.split_once(": ")?;
            Some((n.parse().ok()?, rest))
        })
        .collect()
}

/// How many of a JSON listing function's host instructions (entry, shared, and each BPF
/// instruction's) cover each byte of its code; on x86-64 each also has its text.
fn bytes_covered(f: &serde_json::Value) -> Vec<u32> {
    let size = f["code_size"].as_u64().unwrap() as usize;
    let mut covered = vec![0u32; size];
    let host = f["entry"]
        .as_array()
        .unwrap()
        .iter()
        .chain(f["shared"].as_array().unwrap())
        .chain(
            f["instructions"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|i| i["host"].as_array().unwrap()),
        );
    for h in host {
        let off = h["offset"].as_u64().unwrap() as usize;
        let len = h["bytes"].as_str().unwrap().len() / 2;
        covered[off..off + len].iter_mut().for_each(|c| *c += 1);
        if cfg!(target_arch = "x86_64") {
            assert!(h["text"].is_string(), "{h}");
        }
    }
    covered
}

#[test]
fn raw_bytecode_lists_each_instruction_then_its_code() {
    let f = raw_file("ret2", "mov %r0, 2\nexit");
    let (code, out, err, _) = bpfsim(&["disasm", f.to_str().unwrap(), "--jit"], &[]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        bpf_lines(&out),
        [(0, "mov %r0, 2"), (1, "exit")],
        "each instruction once, in order:\n{out}"
    );
    assert!(out.contains("not verified"), "{out}");
    let size = out
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("; "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("the size ends the listing:\n{out}"));
    assert!(size > 0);
    if cfg!(target_arch = "x86_64") {
        // The host instructions of slot 0 come between its line and slot 1's.
        let (_, after0) = out.split_once("0: mov %r0, 2\n").unwrap();
        let (slot0, _) = after0.split_once("1: exit\n").unwrap();
        assert!(slot0.contains("mov     $2, %eax"), "{out}");
        assert!(out.lines().any(|l| l.ends_with(" ret")), "{out}");
    }
}

#[test]
fn an_object_is_listed_with_every_instruction_in_the_kernel_style() {
    let obj = root().join("progs/xdp_drop.bpf.o");
    let (code, out, err, _) = bpfsim(
        &[
            "disasm",
            obj.to_str().unwrap(),
            "--jit",
            "--style",
            "kernel",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("; xdp_drop_non_ip (section xdp, xdp): verified"),
        "{out}"
    );
    // The same instructions as the plain listing, each once.
    let (_, plain, _, _) = bpfsim(&["disasm", obj.to_str().unwrap(), "--style", "kernel"], &[]);
    let plain: Vec<&str> = plain.lines().filter(|l| !l.starts_with(';')).collect();
    let listed: Vec<String> = bpf_lines(&out)
        .iter()
        .map(|(n, t)| format!("{n}: {t}"))
        .collect();
    assert_eq!(listed, plain);
    assert!(out.contains("; entry\n"), "{out}");
    assert!(out.contains("bytes of "), "{out}");
    if cfg!(target_arch = "x86_64") {
        assert!(out.contains("# bpfsim_map_lookup"), "{out}");
    }
}

#[test]
fn a_callback_compiled_apart_is_listed_after_the_program() {
    let obj = root().join("progs/xdp_loop.bpf.o");
    let (code, out, err, _) = bpfsim(&["disasm", obj.to_str().unwrap(), "--jit"], &[]);
    assert_eq!(code, 0, "{err}");
    let (main, cb) = out
        .split_once("\n; bpf_jit:xdp_loop:cb_26: a callback, a function of its own\n")
        .unwrap_or_else(|| panic!("{out}"));
    let main_slots: Vec<usize> = bpf_lines(main).iter().map(|(n, _)| *n).collect();
    let cb_slots: Vec<usize> = bpf_lines(cb).iter().map(|(n, _)| *n).collect();
    assert_eq!(main_slots.first(), Some(&0));
    assert!(main_slots.iter().all(|&n| n < 26), "{main}");
    assert_eq!(cb_slots, (26..=35).collect::<Vec<_>>(), "{cb}");
    assert!(out.lines().last().unwrap().contains("code in all"), "{out}");
    if cfg!(target_arch = "x86_64") {
        // The `bpf_loop` calls the callback's function directly, named.
        let call = main
            .split_once("13: call 181\n")
            .map(|(_, c)| c)
            .unwrap_or("");
        assert!(call.contains("  # bpf_jit:xdp_loop:cb_26\n"), "{main}");
    }
}

#[test]
fn json_has_every_instruction_once_and_every_byte_of_each_function() {
    let obj = root().join("progs/xdp_loop.bpf.o");
    let (code, out, err, _) = bpfsim(
        &["disasm", obj.to_str().unwrap(), "--jit", "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "one program, one line: {out}");
    let v = &lines[0];
    assert_eq!(v["program"], "xdp_loop");
    assert_eq!(v["verified"], true);
    let functions = v["functions"].as_array().unwrap();
    assert_eq!(functions.len(), 2, "the program and its callback");
    assert_eq!(functions[1]["function"], "bpf_jit:xdp_loop:cb_26");
    let mut pcs = Vec::new();
    let mut total = 0;
    for f in functions {
        total += f["code_size"].as_u64().unwrap() as usize;
        assert!(
            bytes_covered(f).iter().all(|&c| c == 1),
            "{}: every byte once",
            f["function"]
        );
        for i in f["instructions"].as_array().unwrap() {
            pcs.push(i["pc"].as_u64().unwrap());
        }
    }
    assert_eq!(v["code_size"].as_u64().unwrap() as usize, total);
    pcs.sort();
    let (_, text, _, _) = bpfsim(&["disasm", obj.to_str().unwrap(), "--jit"], &[]);
    let want: Vec<u64> = bpf_lines(&text).iter().map(|(n, _)| *n as u64).collect();
    assert_eq!(pcs, want, "each instruction once, as in the text");
    assert_eq!(
        want.len(),
        33,
        "xdp_loop's 33 instructions (36 slots, three lddw)"
    );
    // JSON is for the JIT's listing.
    let (code, _, err, _) = bpfsim(&["disasm", obj.to_str().unwrap(), "--format", "json"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--jit"), "{err}");
}

#[test]
fn programs_that_cannot_be_listed_fail_clearly() {
    // Rejected by the verifier.
    let obj = root().join("verifier/objects/reject_pkt_oob.bpf.o");
    let (code, _, err, _) = bpfsim(&["disasm", obj.to_str().unwrap(), "--jit"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the verifier rejects it"), "{err}");
    assert!(err.contains("outside of the packet"), "{err}");
    // The plain listing of the same object still works.
    let (code, _, _, _) = bpfsim(&["disasm", obj.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    // Not compiled by the JIT: a kfunc call in raw bytecode (`call` with src 2).
    let f = std::env::temp_dir().join(format!("bpfsim-disasm-jit-kfunc-{}", std::process::id()));
    std::fs::write(
        &f,
        [
            0x85, 0x20, 0, 0, 1, 0, 0, 0, // call kfunc 1
            0x95, 0, 0, 0, 0, 0, 0, 0, // exit
        ],
    )
    .unwrap();
    let (code, out, err, _) = bpfsim(&["disasm", f.to_str().unwrap(), "--jit"], &[]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("instruction 0: a kfunc call"), "{err}");
}

#[test]
fn the_perf_map_names_the_program() {
    let obj = root().join("progs/xdp_drop.bpf.o");
    let (code, _, err, pid) = bpfsim(
        &[
            "run",
            obj.to_str().unwrap(),
            "--engine",
            "jit",
            "--packet",
            "ffffffffffff0200000000010800",
        ],
        &[("BPFSIM_PERF_MAP", "1")],
    );
    let map = PathBuf::from(format!("/tmp/perf-{pid}.map"));
    let text = std::fs::read_to_string(&map);
    let _ = std::fs::remove_file(&map);
    assert_eq!(code, 0, "{err}");
    let text = text.unwrap_or_else(|e| panic!("{}: {e}", map.display()));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let f: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(f.len(), 3, "{text}");
    assert!(u64::from_str_radix(f[0], 16).unwrap() > 0, "{text}");
    assert!(u64::from_str_radix(f[1], 16).unwrap() > 0, "{text}");
    assert_eq!(f[2], "bpf_jit:xdp_drop_non_ip");
    // Without the variable, no map (a file of that name older than the run is an earlier
    // process's: pids are reused).
    let before = std::time::SystemTime::now();
    let (_, _, _, pid) = bpfsim(
        &[
            "run",
            obj.to_str().unwrap(),
            "--engine",
            "jit",
            "--packet",
            "ffffffffffff0200000000010800",
        ],
        &[],
    );
    let map = PathBuf::from(format!("/tmp/perf-{pid}.map"));
    if let Ok(meta) = std::fs::metadata(&map) {
        assert!(
            meta.modified().unwrap() < before,
            "{} written by a run without BPFSIM_PERF_MAP",
            map.display()
        );
    }
    // Under `perf record` (which sets PERF_BUILDID_DIR) Cranelift writes its own line, under
    // the same name.
    let (code, _, err, pid) = bpfsim(
        &[
            "run",
            obj.to_str().unwrap(),
            "--engine",
            "jit",
            "--packet",
            "ffffffffffff0200000000010800",
        ],
        &[("PERF_BUILDID_DIR", "/tmp")],
    );
    let map = PathBuf::from(format!("/tmp/perf-{pid}.map"));
    let text = std::fs::read_to_string(&map);
    let _ = std::fs::remove_file(&map);
    assert_eq!(code, 0, "{err}");
    let text = text.unwrap_or_else(|e| panic!("{}: {e}", map.display()));
    assert!(
        text.lines()
            .all(|l| l.ends_with(" bpf_jit:xdp_drop_non_ip")),
        "{text}"
    );
}

/// An unknown `--prog` is a usage error under `--jit` as without it (exit 2, the programs named);
/// exit 1 stays for a program that exists but cannot be listed.
#[test]
fn unknown_program_is_a_usage_error_with_or_without_jit() {
    let obj = root().join("progs/xdp_loop.bpf.o");
    for jit in [false, true] {
        let mut args = vec!["disasm", obj.to_str().unwrap(), "--prog", "nope"];
        if jit {
            args.push("--jit");
        }
        let (code, out, err, _) = bpfsim(&args, &[]);
        assert_eq!(code, 2, "--jit {jit}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains("no program named 'nope'") && err.contains("xdp_loop"),
            "{err}"
        );
    }
}

/// The slots a `disasm --jit` header line lists after `prefix` (text), checked against the JSON
/// field `field`, and each one's host instructions (the lines after its BPF line).
fn listed_slots(obj: &str, prefix: &str, field: &str) -> Vec<(usize, Vec<String>)> {
    let obj = root().join(obj);
    let (code, out, err, _) = bpfsim(&["disasm", obj.to_str().unwrap(), "--jit"], &[]);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("{out}"));
    let slots: Vec<usize> = line.split(", ").map(|p| p.parse().unwrap()).collect();
    let (_, json, _, _) = bpfsim(
        &["disasm", obj.to_str().unwrap(), "--jit", "--format", "json"],
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    let from_json: Vec<usize> = v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(from_json, slots);
    let lines: Vec<&str> = out.lines().collect();
    slots
        .into_iter()
        .map(|pc| {
            let at = lines
                .iter()
                .position(|l| l.starts_with(&format!("{pc}: ")))
                .unwrap();
            let code = lines[at + 1..]
                .iter()
                .take_while(|l| l.starts_with(' '))
                .map(|l| l.to_string())
                .collect();
            (pc, code)
        })
        .collect()
}

/// The listing names the packet accesses the JIT proved from the program's own bounds checks,
/// and their code has no clamp (a conditional move) and no compare.
#[test]
fn the_listing_names_the_accesses_proven_by_the_programs_checks() {
    let proven = listed_slots(
        "progs/parse_headers.bpf.o",
        "; packet accesses proven by the program's own bounds checks (no check): ",
        "bounds_proven",
    );
    assert!(proven.len() >= 30, "{proven:?}");
    if cfg!(target_arch = "x86_64") {
        for (pc, code) in &proven {
            assert!(
                code.iter()
                    .all(|l| !l.contains("cmov") && !l.contains("cmp")),
                "{pc}: {code:?}"
            );
        }
    }
}

/// The listing names the context loads that share an earlier load's check (`tc_ctx_fields`
/// copies twenty `__sk_buff` fields through `r6` in one block): text and JSON agree, and each
/// such load's own code is one load of the kept value, no compare and no branch.
#[test]
fn the_listing_names_the_context_loads_sharing_a_check() {
    let unchecked = listed_slots(
        "progs/tc_ctx_fields.bpf.o",
        "; context loads checked by an earlier load of their block (no check): ",
        "ctx_unchecked",
    );
    assert!(unchecked.len() >= 18, "{unchecked:?}");
    if cfg!(target_arch = "x86_64") {
        for (pc, code) in &unchecked {
            assert_eq!(code.len(), 1, "{pc}: {code:?}");
            assert!(code[0].contains("mov "), "{pc}: {code:?}");
        }
    }
}

/// A reader that closes the pipe early ends the listing quietly: no panic on the write's
/// EPIPE (regression: `bpfsim disasm --jit ... | head` printed a panic and a backtrace).
#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    use std::io::Read;
    let mut src = String::from("mov %r0, 0\n");
    // Listings well past a pipe's 64 KiB buffer.
    for i in 0..10000 {
        src.push_str(&format!("add %r0, {i}\n"));
    }
    src.push_str("exit\n");
    let raw = raw_file("pipe", &src);
    for args in [vec!["disasm", "--jit"], vec!["disasm"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bpfsim"))
            .args(&args)
            .arg(&raw)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 64];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The pipe's read end is dropped here, long before the listing's end.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGPIPE),
                "{args:?}: {stderr}"
            );
        }
    }
    let _ = std::fs::remove_file(raw);
}

/// `--baseline`: the baseline tier's code, each instruction once with its code, every byte of
/// the function in one part; helpers and faults named by the runtime function they call; a
/// usage error without `--jit`.
#[test]
fn the_baseline_tier_lists_its_code_too() {
    if !cfg!(target_arch = "x86_64") {
        println!("skipped: the baseline tier compiles for x86-64 hosts only");
        return;
    }
    let obj = root().join("progs/xdp_loop.bpf.o");
    let (code, out, err, _) = bpfsim(
        &["disasm", obj.to_str().unwrap(), "--jit", "--baseline"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("compiled by the baseline tier"), "{out}");
    let (_, cranelift, _, _) = bpfsim(&["disasm", obj.to_str().unwrap(), "--jit"], &[]);
    // Every instruction of the program, callback included (the tier compiles one function).
    let slots: Vec<usize> = bpf_lines(&out).iter().map(|(n, _)| *n).collect();
    let mut want: Vec<usize> = bpf_lines(&cranelift).iter().map(|(n, _)| *n).collect();
    want.sort();
    assert_eq!(slots, want, "{out}");
    assert!(
        out.contains("# bpfsim_call"),
        "helpers through the shim:\n{out}"
    );
    let (code, out, err, _) = bpfsim(
        &[
            "disasm",
            obj.to_str().unwrap(),
            "--jit",
            "--baseline",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["tier"], "baseline");
    assert_eq!(v["verified"], false);
    assert!(
        bytes_covered(&v["functions"][0]).iter().all(|&c| c == 1),
        "every byte once"
    );
    let (code, _, err, _) = bpfsim(&["disasm", obj.to_str().unwrap(), "--baseline"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--jit"), "{err}");
}
