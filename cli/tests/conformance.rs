//! The conformance suite through the `bpfsim` binary, exactly as users and CI run it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn vectors(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../test-vectors/conformance")
        .join(sub)
}

fn bpfsim(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfsim"))
        .args(args)
        .output()
        .expect("bpfsim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn whole_suite_passes_under_every_engine() {
    let dir = vectors("tests");
    let (code, out) = bpfsim(&["conformance", dir.to_str().unwrap()]);
    assert_eq!(out.lines().last(), Some("313 passed, 0 failed"), "{out}");
    assert_eq!(
        out.lines().count(),
        1,
        "no failure or skip lines expected:\n{out}"
    );
    assert_eq!(code, 0);
}

#[test]
fn negative_files_are_judged_as_the_issue_requires() {
    let dir = vectors("negative");
    let (code, out) = bpfsim(&["conformance", "-v", dir.to_str().unwrap()]);
    assert_eq!(
        code, 1,
        "a deliberately wrong test must fail the run:\n{out}"
    );
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(&format!("/{name}.data")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
            .to_string()
    };

    let unused: Vec<&str> = out.lines().filter(|l| l.contains("/unused-")).collect();
    assert_eq!(unused.len(), 45, "{out}");
    for l in unused {
        assert!(l.starts_with("PASS "), "{l}");
        assert!(
            l.contains("rejected by the loader: instruction 0 (opcode 0x"),
            "{l}"
        );
        let field = l.rsplit('-').next().unwrap().split('.').next().unwrap();
        let named = match field {
            "offset" => "field off ",
            "src" => "field src_reg ",
            "dst" => "field dst_reg ",
            "imm" => "field imm ",
            other => panic!("unexpected file name part {other}"),
        };
        assert!(l.contains(named), "{l} should name {named}");
    }

    for (name, token) in [
        ("invalid_imm32_dec_range", "2147483648"),
        ("invalid_imm32_hex_range", "0x100000000"),
        ("invalid_label", "NOT_A_LABEL"),
        ("invalid_lock", "lock"),
        ("invalid_lock2", "lock"),
        ("invalid_mnemonic", "ldxq"),
        ("invalid_offset", "%r1"),
        ("invalid_offset_range", "+0x10000"),
        ("invalid_operand_count", "lddw"),
        ("invalid_register", "%r50"),
    ] {
        let l = line(name);
        assert!(l.starts_with("PASS "), "{l}");
        assert!(l.contains("rejected by the assembler: line "), "{l}");
        assert!(l.ends_with(token), "{l} should name `{token}`");
    }

    for name in ["empty", "empty_instructions", "invalid_unknown_directive"] {
        assert!(line(name).starts_with("SKIP "), "{}", line(name));
    }

    let wrong = line("incorrect_return_value_high_bits");
    assert!(wrong.starts_with("FAIL "), "{wrong}");
    assert!(
        wrong.contains("r0 = 0x8877665544332211, expected 0x8977665544332211"),
        "{wrong}"
    );
    assert!(
        wrong.contains("deliberately wrong"),
        "the runner must say why: {wrong}"
    );

    // `or %r0, %r10` reads r0 before any write: both engines run it (they need no verifier to
    // be memory-safe); the kernel's verifier, and ours, refuse it.
    let error = line("error");
    assert!(error.starts_with("PASS "), "{error}");
    assert!(
        error.ends_with("rejected by the verifier (as an XDP program): R0 !read_ok"),
        "{error}"
    );

    assert_eq!(
        out.lines().last().unwrap(),
        "56 passed, 1 failed, 3 skipped",
        "{out}"
    );
}

#[test]
fn single_files_and_missing_paths() {
    let (code, out) = bpfsim(&["conformance", vectors("tests/ldxb.data").to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "1 passed, 0 failed\n"));
    let out = Command::new(env!("CARGO_BIN_EXE_bpfsim"))
        .args(["conformance", "/nonexistent/x.data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file or folder"));
}

fn plugin(program_hex: &str, args: &[&str]) -> (i32, String, String) {
    let via_subcommand = plugin_with(
        Command::new(env!("CARGO_BIN_EXE_bpfsim")).arg("conformance-plugin"),
        program_hex,
        args,
    );
    let standalone = plugin_with(
        &mut Command::new(env!("CARGO_BIN_EXE_bpfsim-conformance-plugin")),
        program_hex,
        args,
    );
    assert_eq!(via_subcommand, standalone, "both entry points behave alike");
    standalone
}

fn plugin_with(cmd: &mut Command, program_hex: &str, args: &[&str]) -> (i32, String, String) {
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(program_hex.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn plugin_protocol_as_the_upstream_runner_drives_it() {
    // ldxb %r0, [%r1+2]; exit -- written the way the runner writes it.
    let prog = "71  10  02  00  00  00  00  00  95  00  00  00  00  00  00  00  \n";
    assert_eq!(
        plugin(prog, &["aa bb 11 cc dd"]),
        (0, "11\n".to_string(), String::new())
    );
    assert_eq!(plugin(prog, &["aa bb 11 cc dd", "--interpret"]).1, "11\n");
    // Full 64-bit r0: lddw %r0, 0x8877665544332211; exit
    let lddw = "18 00 00 00 11 22 33 44 00 00 00 00 55 66 77 88 95 00 00 00 00 00 00 00";
    assert_eq!(plugin(lddw, &[]).1, "8877665544332211\n");
    // Failure: non-zero exit, stdout empty, the reason on stderr.
    let (code, out, err) = plugin("07 00 01 00 01 00 00 00 95 00 00 00 00 00 00 00", &[]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("reserved field off"), "{err}");
    let (code, _, err) = plugin(prog, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("out-of-bounds read"), "{err}");
}

#[test]
fn asm_and_disasm_round_trip_through_files() {
    let dir = std::env::temp_dir().join(format!("bpfsim-asm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("p.s");
    let bin = dir.join("p.bin");
    std::fs::write(
        &src,
        "mov %r0, 1\nlddw %r1, 0x100000000\njne %r1, 0, +1\nexit\nexit\n",
    )
    .unwrap();
    let (code, _) = bpfsim(&["asm", src.to_str().unwrap(), "-o", bin.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::metadata(&bin).unwrap().len(), 6 * 8);
    let (_, text) = bpfsim(&["disasm", bin.to_str().unwrap()]);
    assert_eq!(
        text,
        "mov %r0, 1\nlddw %r1, 0x100000000\njne %r1, 0, +1\nexit\nexit\n"
    );
    let (_, kernel) = bpfsim(&["disasm", "--style", "kernel", bin.to_str().unwrap()]);
    assert_eq!(
        kernel,
        "0: (b7) r0 = 1\n1: (18) r1 = 0x100000000\n3: (55) if r1 != 0x0 goto pc+1\n4: (95) exit\n5: (95) exit\n"
    );
    std::fs::write(&bin, [0x07, 0, 1, 0]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bpfsim"))
        .args(["disasm", bin.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a multiple of 8"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--kernel`: the suite in the live kernel, compared with both engines; every test the kernel
/// cannot run is listed with its reason. Without bpf(2): exit 3 and one line saying why.
#[test]
fn kernel_agreement_line() {
    let dir = vectors("tests");
    let out = Command::new(env!("CARGO_BIN_EXE_bpfsim"))
        .args(["conformance", "--kernel", dir.to_str().unwrap()])
        .output()
        .expect("bpfsim runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    if out.status.code() == Some(3) {
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("bpfsim: kernel unavailable: "),
            "{stderr}"
        );
        println!("skipped: {}", stderr.trim());
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("kernel agreement: "))
        .unwrap_or_else(|| panic!("no agreement line:\n{stdout}"));
    println!("{line}");
    // "kernel agreement: A/T (C the kernel cannot run, 0 differ)"
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let (agree, total, cannot, differ) = (nums[0], nums[1], nums[2], nums[3]);
    assert_eq!(differ, 0, "{stdout}");
    assert_eq!(agree + cannot, total, "{stdout}");
    assert!(
        agree >= 299,
        "the kernel ran fewer tests than before:\n{stdout}"
    );
    let listed = stdout
        .lines()
        .filter(|l| l.starts_with("  kernel cannot run "))
        .count();
    assert_eq!(
        listed, cannot,
        "each test the kernel cannot run is listed:\n{stdout}"
    );
    assert!(!stdout.contains("KERNEL-DIFF"), "{stdout}");
}
