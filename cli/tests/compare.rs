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
