//! `bpfsim compare`: simulator and live kernel side by side; exit 3 without a kernel.

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

#[test]
fn every_vector_object_agrees_with_the_kernel() {
    let dir = vectors();
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.o"))
        .collect();
    objects.sort();
    let mut agreed = 0;
    for obj in &objects {
        let stem = obj
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".bpf.o")
            .to_string();
        let mut cap = dir.join(format!("pcaps/{stem}.pcap"));
        if !cap.exists() {
            cap = dir.join("pcaps/nat_tc.pcap");
        }
        let mut args = vec![
            "compare",
            obj.to_str().unwrap(),
            "--pcap",
            cap.to_str().unwrap(),
        ];
        // The rate limiter's buckets hold bpf_ktime_get_ns(): kernel time, not comparable.
        if stem == "rate_limit" {
            args.extend(["--ignore-map-bytes", "buckets:8..16"]);
        }
        let (code, out, err) = bpfsim(&args);
        if code == 3 {
            assert!(err.contains("kernel unavailable"), "{err}");
            return println!("skipped: {}", err.trim());
        }
        assert_eq!(code, 0, "{stem}: {out}{err}");
        let last = out.lines().last().unwrap_or("");
        assert!(
            last.starts_with("kernel agreement: ") && last.ends_with("maps equal"),
            "{stem}: {last}"
        );
        agreed += 1;
    }
    println!(
        "bpfsim compare: {agreed}/{} objects agree with the kernel",
        objects.len()
    );
}

#[test]
fn json_lines_and_not_comparable_fields() {
    let obj = vectors().join("tc_classifier.bpf.o");
    let cap = vectors().join("pcaps/tc_classifier.pcap");
    let (code, out, err) = bpfsim(&[
        "compare",
        obj.to_str().unwrap(),
        "--pcap",
        cap.to_str().unwrap(),
        "--format",
        "json",
    ]);
    if code == 3 {
        return println!("skipped: {}", err.trim());
    }
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["not_comparable"]
        .as_array()
        .is_some_and(|a| !a.is_empty())));
    assert_eq!(
        lines.last().unwrap()["kernel_agreement"],
        format!("{}/{}", lines.len() - 1, lines.len() - 1)
    );
}

#[test]
fn bad_input_exits_2() {
    let (code, _, err) = bpfsim(&["compare", "/nonexistent.o", "--packet", "00"]);
    assert_eq!(code, 2, "{err}");
    let obj = vectors().join("xdp_pass.bpf.o");
    let (code, _, err) = bpfsim(&[
        "compare",
        obj.to_str().unwrap(),
        "--packet",
        "0",
        "--ignore-map-bytes",
        "x",
    ]);
    assert_eq!(code, 2, "{err}");
}

/// `--map` writes the slot on both sides (the drops then happen in both), and the context flags
/// reach both sides' ctx_in (the program copies mark and priority into its output).
#[test]
fn map_slots_and_context_on_both_sides() {
    let dir = vectors();
    let obj = dir.join("firewall.bpf.o");
    let cap = dir.join("pcaps/firewall.pcap");
    let (code, out, err) = bpfsim(&[
        "compare",
        obj.to_str().unwrap(),
        "--pcap",
        cap.to_str().unwrap(),
        "--map",
        "blocked_ports:06000016=0000000000000000",
    ]);
    if code == 3 {
        return println!("skipped: {}", err.trim());
    }
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("agree, XDP_DROP"), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("kernel agreement: 33/33"),
        "{out}"
    );

    let obj = dir.join("tc_ctx_fields.bpf.o");
    let cap = dir.join("pcaps/tc_ctx_fields.pcap");
    let (code, out, err) = bpfsim(&[
        "compare",
        obj.to_str().unwrap(),
        "--pcap",
        cap.to_str().unwrap(),
        "--mark",
        "7",
        "--priority",
        "3",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The program records mark and priority in a map: equal maps mean both sides saw them.
    assert!(
        out.lines()
            .last()
            .unwrap()
            .contains("\"kernel_agreement\":\"29/29\""),
        "{out}"
    );

    let (code, _, err) = bpfsim(&[
        "compare",
        dir.join("firewall.bpf.o").to_str().unwrap(),
        "--packet",
        "00",
        "--map",
        "nosuch:00=00",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no map nosuch"), "{err}");
}

/// A program the kernel's verifier refuses: both verifiers' verdicts are shown, exit 1.
#[test]
fn kernel_rejection_shows_both_verdicts() {
    let obj = vectors().join("../verifier/objects/reject_null_deref.bpf.o");
    let (code, out, err) = bpfsim(&[
        "compare",
        obj.to_str().unwrap(),
        "--packet",
        "0000000000000000000000000800450000140000000040110000",
    ]);
    if code == 3 {
        return println!("skipped: {}", err.trim());
    }
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("the kernel refuses program xdp_count_unchecked"),
        "{err}"
    );
    assert!(
        out.contains("kernel: rejected: R0 invalid mem access 'map_value_or_null' (agree)"),
        "{out}"
    );
}
