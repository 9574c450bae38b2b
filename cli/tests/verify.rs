//! `bpfsim verify`: verdicts per program, exit codes, JSON, raw bytecode, kernel comparison.

use std::path::PathBuf;
use std::process::Command;

fn bpfsim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfsim"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/progs")
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("bpfsim-verify-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn raw(src: &str, name: &str) -> PathBuf {
    let insns = bpfsim_vm::asm::assemble(src).unwrap();
    tmp(name, &bpfsim_vm::isa::encode(&insns))
}

#[test]
fn objects_verdicts_and_json() {
    let obj = vectors().join("tail_calls.bpf.o");
    let (code, out, err) = bpfsim(&["verify", obj.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(
        out.contains("xdp_dispatch (xdp, section xdp): accepted,"),
        "{out}"
    );
    let (code, out, _) = bpfsim(&[
        "verify",
        obj.to_str().unwrap(),
        "--prog",
        "handle_icmp",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for field in [
        "object",
        "section",
        "program",
        "prog_type",
        "accepted",
        "error",
        "processed_insns",
        "log",
        "verification_time_us",
    ] {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
    assert_eq!(v["program"], "handle_icmp");
    assert_eq!(v["accepted"], true);
    assert!(v["log"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .starts_with("processed "));
}

#[test]
fn raw_bytecode_rejections_exit_1_with_the_kernels_line() {
    let bad = raw("exit", "bad.bin");
    let (code, out, _) = bpfsim(&["verify", "--raw", bad.to_str().unwrap(), "--type", "xdp"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("REJECTED: R0 !read_ok"), "{out}");
    assert!(out.contains("  | processed 1 insns"), "{out}");
    let ctx = raw("ldxw %r0, [%r1+24]\nexit", "ctx.bin");
    let (code, out, _) = bpfsim(&[
        "verify",
        "--raw",
        ctx.to_str().unwrap(),
        "--type",
        "xdp",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["error"], "invalid bpf_context access off=24 size=4");
    // The same read is fine for a type whose context is larger.
    let (code, _, _) = bpfsim(&[
        "verify",
        "--raw",
        ctx.to_str().unwrap(),
        "--type",
        "sched_cls",
    ]);
    assert_eq!(code, 0);
    for p in [bad, ctx] {
        let _ = std::fs::remove_file(p);
    }
}

/// A helper the program type may call but bpfsim has no prototype for is accepted with its
/// arguments unchecked: the verdict says so, once per helper, in text and JSON.
#[test]
fn helpers_without_a_prototype_are_named_in_a_warning() {
    // 158 is bpf_get_current_task_btf (returns a BTF pointer bpfsim does not model); 109,
    // bpf_send_signal, has a prototype.
    let src = "call 158\ncall 158\nmov %r1, 9\ncall 109\nmov %r0, 2\nexit";
    let prog = raw(src, "unchecked.bin");
    let path = prog.to_str().unwrap();
    let (code, out, err) = bpfsim(&["verify", "--raw", path, "--type", "xdp"]);
    assert_eq!(code, 0, "{out}{err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(
        warnings,
        ["  warning: arguments not checked (bpfsim has no prototype): bpf_get_current_task_btf#158"],
        "{out}"
    );
    let (_, out, _) = bpfsim(&["verify", "--raw", path, "--type", "xdp", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["unchecked_helpers"],
        serde_json::json!(["bpf_get_current_task_btf#158"])
    );
    // A program whose helpers all have prototypes has no warning and an empty list.
    let checked = raw("mov %r1, 9\ncall 109\nmov %r0, 2\nexit", "checked.bin");
    let (_, out, _) = bpfsim(&[
        "verify",
        "--raw",
        checked.to_str().unwrap(),
        "--type",
        "xdp",
    ]);
    assert!(!out.contains("warning:"), "{out}");
    let (_, out, _) = bpfsim(&[
        "verify",
        "--raw",
        checked.to_str().unwrap(),
        "--type",
        "xdp",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["unchecked_helpers"], serde_json::json!([]));
    for p in [prog, checked] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn usage_and_load_errors_exit_2() {
    let ok = raw("mov %r0, 0\nexit", "ok.bin");
    let (code, _, err) = bpfsim(&["verify", "--raw", ok.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--type is required"), "{err}");
    let (code, _, err) = bpfsim(&["verify", "--raw", ok.to_str().unwrap(), "--type", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown program type"), "{err}");
    let junk = tmp("junk.o", b"\x7fELF junk");
    let (code, _, err) = bpfsim(&["verify", junk.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(!err.contains("panicked"), "{err}");
    let (code, _, _) = bpfsim(&[
        "verify",
        vectors().join("xdp_pass.bpf.o").to_str().unwrap(),
        "--prog",
        "nope",
    ]);
    assert_eq!(code, 2);
    for p in [ok, junk] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn compare_kernel_agrees_or_says_why_not() {
    let obj = vectors().join("firewall.bpf.o");
    let (code, out, err) = bpfsim(&["verify", obj.to_str().unwrap(), "--compare-kernel"]);
    if code == 3 {
        assert!(err.contains("kernel unavailable"), "{err}");
        return println!("skipped: {}", err.trim());
    }
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("kernel: accepted") && out.contains("(agree), verified in "),
        "{out}"
    );
    // JSON carries both verification times.
    let (_, out, _) = bpfsim(&[
        "verify",
        obj.to_str().unwrap(),
        "--compare-kernel",
        "--format",
        "json",
    ]);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["verification_time_us"].is_u64(), "{line}");
        assert!(v["kernel"]["verification_time_us"].is_u64(), "{line}");
    }
    let bad = raw("mov %r0, %r5\nexit", "r5.bin");
    let (code, out, _) = bpfsim(&[
        "verify",
        "--raw",
        bad.to_str().unwrap(),
        "--type",
        "xdp",
        "--compare-kernel",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("kernel: rejected: R5 !read_ok (agree)"),
        "{out}"
    );
    let _ = std::fs::remove_file(bad);
}

/// A program the loader refuses (CO-RE, a kfunc) has no verdict: the others are verified and
/// reported, the refused ones named with the loader's reason, and the exit code is 2 (a load
/// error), never 0.
#[test]
fn programs_the_loader_refuses_are_named_and_exit_2() {
    let obj = vectors().join("../loader/unsupported.bpf.o");
    // Without the kernel's BTF, the CO-RE program says what it needs.
    let no_btf = "/nonexistent/vmlinux";
    let (code, out, err) = bpfsim(&["verify", obj.to_str().unwrap(), "--btf", no_btf]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("core_reader (section kprobe/do_nanosleep): not verified, the loader refuses it: CO-RE relocation"),
        "{err}"
    );
    assert!(
        err.contains("needs the kernel's BTF: cannot read /nonexistent/vmlinux"),
        "{err}"
    );
    assert!(
        err.contains("kfunc_caller (section tc): not verified"),
        "{err}"
    );
    // JSON: one record per refused program, with the reason and no verdict.
    let (code, out, _) = bpfsim(&[
        "verify",
        obj.to_str().unwrap(),
        "--format",
        "json",
        "--btf",
        no_btf,
    ]);
    assert_eq!(code, 2);
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let core = records
        .iter()
        .find(|r| r["program"] == "core_reader")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(core["accepted"].is_null(), "{core}");
    assert!(core["load_error"]
        .as_str()
        .unwrap()
        .contains("needs the kernel's BTF"));
    // Asking for a program the loader takes leaves the others out.
    let ok: Vec<&str> = records
        .iter()
        .filter(|r| r["accepted"] == true)
        .map(|r| r["program"].as_str().unwrap())
        .collect();
    if let Some(name) = ok.first() {
        let (code, _, err) = bpfsim(&["verify", obj.to_str().unwrap(), "--prog", name]);
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("not verified"), "{err}");
    }
}

/// CO-RE programs relocated against this machine's BTF load into the kernel as they are
/// verified here: the same bytes, the same verdicts (a poisoned reachable read refused by both).
#[test]
fn core_programs_agree_with_the_kernel() {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return println!("skipped: no /sys/kernel/btf/vmlinux");
    }
    let obj = vectors().join("../loader/core.bpf.o");
    let obj = obj.to_str().unwrap();
    for (prog, accepted) in [
        ("read_pid", true),
        ("kinds", true),
        ("guarded", true),
        ("unguarded", false),
        ("via_subprog", true),
        // Loaded with attach_btf_id from this machine's BTF.
        ("tp_switch", true),
    ] {
        let (code, out, err) = bpfsim(&["verify", obj, "--prog", prog, "--compare-kernel"]);
        if code == 3 {
            assert!(err.contains("kernel unavailable"), "{err}");
            return println!("skipped: {}", err.trim());
        }
        assert_eq!(code, if accepted { 0 } else { 1 }, "{prog}: {out}{err}");
        assert!(out.contains("(agree)"), "{prog}: {out}");
    }
    let (code, out, err) = bpfsim(&["verify", obj, "--prog", "unguarded"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("REJECTED: invalid func unknown#195896080"),
        "{out}"
    );
}

/// A kfunc call resolved against this machine's BTF loads into the kernel (which decides on
/// it), while bpfsim's verifier says plainly that it does not simulate kfuncs.
#[test]
fn kfunc_calls_reach_the_kernel_and_are_refused_here_by_name() {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return println!("skipped: no /sys/kernel/btf/vmlinux");
    }
    let obj = vectors().join("../loader/kfunc.bpf.o");
    let obj = obj.to_str().unwrap();
    let (code, out, err) = bpfsim(&["verify", obj, "--prog", "rcu"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("REJECTED: kfuncs are not simulated"), "{out}");
    let (code, out, err) = bpfsim(&["verify", obj, "--prog", "rcu", "--compare-kernel"]);
    if code == 3 {
        return println!("skipped: {}", err.trim());
    }
    assert!(out.contains("kernel: accepted"), "{out}{err}");
}

/// Programs in the style of libbpf-tools, built against a bpftool-generated vmlinux.h: every
/// kernel type relocated, verdicts and processed counts as the kernel's, a tp_btf argument
/// dereferenced directly (PTR_TO_BTF_ID) included.
#[test]
fn vmlinux_h_programs_agree_with_the_kernel() {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return println!("skipped: no /sys/kernel/btf/vmlinux");
    }
    let obj = vectors().join("../loader/core_vmlinux.bpf.o");
    let obj = obj.to_str().unwrap();
    for prog in [
        "exec_enter",
        "connect_v4",
        "rx",
        "wakeup",
        "wakeup_new_direct",
    ] {
        let (code, out, err) = bpfsim(&["verify", obj, "--prog", prog, "--compare-kernel"]);
        if code == 3 {
            return println!("skipped: {}", err.trim());
        }
        assert_eq!(code, 0, "{prog}: {out}{err}");
        assert!(out.contains("(agree)"), "{prog}: {out}");
    }
    // .kconfig externs: the kernel version makes a branch dead for both verifiers alike.
    let kconfig = vectors().join("../loader/kconfig.bpf.o");
    for prog in ["version", "ksys_nanosleep"] {
        let (code, out, err) = bpfsim(&[
            "verify",
            kconfig.to_str().unwrap(),
            "--prog",
            prog,
            "--compare-kernel",
        ]);
        assert_eq!(code, 0, "{prog}: {out}{err}");
        assert!(out.contains("(agree)"), "{prog}: {out}");
    }
}

/// Tracing arguments dereferenced directly (`test-vectors/loader/btf_ptr.bpf.c`): the
/// argument is a `PTR_TO_BTF_ID` and each load walks the struct's BTF, pointer members giving
/// pointers whose trust and NULL-ness follow the kernel's rules. Each program's verdict and
/// error line, and the kernel's agreement where bpf(2) works.
#[test]
fn btf_pointer_arguments_agree_with_the_kernel() {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return println!("skipped: no /sys/kernel/btf/vmlinux");
    }
    let obj = vectors().join("../loader/btf_ptr.bpf.o");
    let obj = obj.to_str().unwrap();
    let expected: &[(&str, Option<&str>)] = &[
        ("scalar_members", None),
        ("pointer_members", None),
        ("null_check", None),
        ("trusted_chain", None),
        ("maybe_null_checked", None),
        ("void_pointer_member", None),
        ("helper_args", None),
        ("iter_task_checked", None),
        ("iter_task_file", None),
        (
            "iter_task_unchecked",
            Some("R1 invalid mem access 'trusted_ptr_or_null_'"),
        ),
        (
            "helper_mem_beyond_member",
            Some("access beyond the end of member flags (mend:8) in struct thread_info with off 0 size 16"),
        ),
        (
            "maybe_null_unchecked",
            Some("R1 invalid mem access 'rcu_ptr_or_null_'"),
        ),
        ("write_member", Some("only read is supported")),
        (
            "beyond_struct",
            Some("access beyond struct task_struct at off "),
        ),
        (
            "half_pointer",
            Some("cannot access ptr member real_parent with moff "),
        ),
        (
            "negative_offset",
            Some("R1 is ptr_task_struct invalid negative access: off=-8"),
        ),
        (
            "variable_offset",
            Some("R6 is ptr_task_struct invalid variable offset: off=0, var_off=(0x0; 0x7)"),
        ),
    ];
    let mut kernel = true;
    for (prog, error) in expected {
        let (code, out, err) = bpfsim(&["verify", obj, "--prog", prog, "--log-level", "1"]);
        match error {
            None => assert_eq!(code, 0, "{prog}: {out}{err}"),
            Some(e) => {
                assert_eq!(code, 1, "{prog}: {out}{err}");
                assert!(out.contains(&format!("REJECTED: {e}")), "{prog}: {out}");
            }
        }
        if !kernel {
            continue;
        }
        let (code, out, err) = bpfsim(&["verify", obj, "--prog", prog, "--compare-kernel"]);
        if code == 3 {
            println!("kernel comparison skipped: {}", err.trim());
            kernel = false;
            continue;
        }
        assert!(out.contains("(agree)"), "{prog}: {out}{err}");
    }
    // The log names the argument's type as the kernel does.
    let (_, out, _) = bpfsim(&[
        "verify",
        obj,
        "--prog",
        "maybe_null_unchecked",
        "--log-level",
        "1",
    ]);
    assert!(
        out.contains("func 'kfree_skb' arg0 has btf_id ")
            && out.contains("R1=trusted_ptr_sk_buff()")
            && out.contains("R1=rcu_ptr_or_null_sock(id=1)"),
        "{out}"
    );
}

/// `--btf FILE` reaches `run` and `compare` too: a CO-RE program names the file it could not
/// read.
#[test]
fn btf_option_reaches_run_and_compare() {
    let obj = vectors().join("../loader/core.bpf.o");
    for cmd in ["run", "compare"] {
        let (code, out, err) = bpfsim(&[
            cmd,
            obj.to_str().unwrap(),
            "--prog",
            "read_pid",
            "--packet",
            "00",
            "--btf",
            "/nonexistent/vmlinux",
        ]);
        if cmd == "compare" && code == 3 {
            return println!("skipped: {}", err.trim());
        }
        assert_ne!(code, 0, "{cmd}: {out}{err}");
        assert!(
            err.contains("needs the kernel's BTF: cannot read /nonexistent/vmlinux"),
            "{cmd}: {err}"
        );
    }
}
