//! `bpfsim run --engine kernel`: the live kernel's verdict table and maps, as the simulator
//! reports them; exit 3 with one line where bpf(2) is unavailable.

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

fn progs(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../test-vectors/progs")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The verdict rows of a text report, without its title (which names the engine).
fn verdicts(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("  ")).collect()
}

/// Skips (true) when the kernel is unavailable, checking the exit code and the one-line reason.
fn unavailable(code: i32, err: &str) -> bool {
    if code == 3 {
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("bpfsim: kernel unavailable: "), "{err}");
        println!("skipped: {}", err.trim());
        return true;
    }
    false
}

#[test]
fn kernel_table_and_maps_match_the_simulator() {
    let obj = progs("firewall.bpf.o");
    let pcap = progs("pcaps/firewall.pcap");
    // Block TCP port 22 so that some packets are dropped and a hash entry counts them.
    let args = |engine: &'static str| {
        vec![
            "run".to_string(),
            obj.clone(),
            "--pcap".into(),
            pcap.clone(),
            "--engine".into(),
            engine.into(),
            "--map".into(),
            "blocked_ports:06000016=0000000000000000".into(),
            "--dump-maps".into(),
        ]
    };
    let run = |engine| {
        let a = args(engine);
        bpfsim(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, kernel, err) = run("kernel");
    if unavailable(code, &err) {
        return;
    }
    assert_eq!(code, 0, "{kernel}{err}");
    let (code, sim, err) = run("interp");
    assert_eq!(code, 0, "{sim}{err}");
    assert!(
        kernel.contains("xdp_firewall [kernel] (xdp): 33 packets"),
        "{kernel}"
    );
    assert!(
        sim.contains("XDP_DROP"),
        "the map entry must make a difference:\n{sim}"
    );
    // The verdict rows and the hash map's counter are the same; the array map is listed whole
    // by the kernel and by its non-zero entries by the simulator.
    let rows = |out: &str| -> Vec<String> {
        verdicts(out)
            .into_iter()
            .filter(|l| !l.starts_with("  01000000 =>"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rows(&kernel), rows(&sim), "kernel:\n{kernel}\nsim:\n{sim}");
}

#[test]
fn kernel_json_names_what_it_cannot_observe() {
    let (code, out, err) = bpfsim(&[
        "run",
        &progs("xdp_drop.bpf.o"),
        "--pcap",
        &progs("pcaps/xdp_drop.pcap"),
        "--engine",
        "kernel",
        "--format",
        "json",
    ]);
    if unavailable(code, &err) {
        return;
    }
    assert_eq!(code, 0, "{out}{err}");
    let mut ran = 0;
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["refused"] == true {
            // The capture holds a runt the kernel refuses (EINVAL), as the simulator does.
            assert!(v["error"].as_str().unwrap().contains("EINVAL"), "{line}");
            continue;
        }
        ran += 1;
        assert_eq!(v["engine"], "kernel", "{line}");
        assert!(v["insns"].is_null() && v["trap"].is_null(), "{line}");
        assert!(v["retval"].is_u64() && v["data"].is_string(), "{line}");
    }
    assert!(ran > 20, "{out}");
}

#[test]
fn kernel_engine_usage_errors_exit_2() {
    let (code, _, err) = bpfsim(&["run", "--raw", "/dev/null", "--engine", "kernel"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs an object file"), "{err}");
    let (code, _, err) = bpfsim(&[
        "run",
        &progs("xdp_drop.bpf.o"),
        "--packet",
        "00",
        "--engine",
        "kernel",
        "--type",
        "sched_cls",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = bpfsim(&[
        "run",
        &progs("xdp_drop.bpf.o"),
        "--packet",
        "00",
        "--engine",
        "warp",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown engine"), "{err}");
}
