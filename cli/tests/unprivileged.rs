//! Every kernel-dependent command, run as an unprivileged user (uid 65534, no capabilities):
//! one line saying the kernel is unavailable and why, exit 3, never a crash. Needs root (to drop
//! privileges) and setpriv; skips with the reason otherwise.

use std::path::PathBuf;
use std::process::Command;

fn vectors(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../test-vectors")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

/// Why the test cannot drop privileges here, if it cannot.
fn cannot_drop() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    if uid.as_deref() != Some("0") {
        return Some("not root: cannot switch to uid 65534".to_string());
    }
    match Command::new("setpriv").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("setpriv (util-linux) is not installed".to_string()),
    }
}

fn as_nobody(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_bpfsim"))
        .args(args)
        .output()
        .expect("setpriv runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kernel_commands_say_why_and_exit_3() {
    if let Some(why) = cannot_drop() {
        println!("skipped: {why}");
        return;
    }
    let obj = vectors("progs/firewall.bpf.o");
    let pcap = vectors("progs/pcaps/firewall.pcap");
    let suite = vectors("conformance/tests");
    let commands: Vec<Vec<&str>> = vec![
        vec!["compare", &obj, "--pcap", &pcap],
        vec!["verify", &obj, "--compare-kernel"],
        vec!["run", &obj, "--pcap", &pcap, "--engine", "kernel"],
        vec![
            "bench",
            &obj,
            "--pcap",
            &pcap,
            "--engines",
            "kernel",
            "--rounds",
            "1",
        ],
        vec!["conformance", "--kernel", &suite],
    ];
    for args in commands {
        let (code, out, err) = as_nobody(&args);
        let what = format!("bpfsim {}:\nstdout:\n{out}\nstderr:\n{err}", args.join(" "));
        assert_eq!(code, 3, "{what}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {what}");
        assert!(lines[0].contains("kernel unavailable"), "{what}");
        // The reason names what is missing.
        assert!(
            lines[0].contains("EPERM") || lines[0].contains("CAP_"),
            "{what}"
        );
    }
    // The simulator itself needs no privilege at all.
    let (code, out, err) = as_nobody(&["run", &obj, "--pcap", &pcap]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("33 packets"), "{out}");
}
