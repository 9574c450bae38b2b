//! Every test vector run twice, side by side: in the live kernel (the object loaded through
//! bpfsim-kernel, packets through BPF_PROG_TEST_RUN) and in the simulator, with the same map setup,
//! context and packet order. Retval, output packet, ring buffer records, bpf_printk lines and the
//! maps afterwards must be equal. Where bpf(2) is unavailable the test says why and skips.
//!
//! The recorded expectations (vectors.rs) pin the simulator to what the kernel did once; this test
//! asks the kernel again on every run, so a kernel that changes its mind is noticed too.

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
mod live {
    use bpfsim::compare::{Comparison, SlotValue};
    use bpfsim_helpers::Env;
    use bpfsim_kernel::KernelBpf;

    use super::common::{self, Scenario, SetupValue};

    /// Run one scenario on both sides; the number of packets compared, or the first difference.
    fn compare(bpf: &KernelBpf, sc: &Scenario, trace: bool) -> Result<usize, String> {
        let mut c = Comparison::load(bpf, &sc.object, Env::default())?;
        if trace {
            c.capture_trace()?;
        }
        // Every vector has BTF, and the kernel must take it as the loader fixed it up.
        if let Some(e) = &c.kernel.object.btf_error {
            return Err(format!("kernel refused the object's BTF: {e}: {}", e.log));
        }
        if c.kernel.object.btf.is_none() {
            return Err("the object's BTF was not loaded".to_string());
        }
        for u in &sc.setup {
            let value = match &u.value {
                SetupValue::Bytes(v) => SlotValue::Bytes(v.clone()),
                SetupValue::Prog(p) => SlotValue::Prog(p.clone()),
                SetupValue::Xsk { ifindex, queue } => SlotValue::Xsk {
                    ifindex: *ifindex,
                    queue: *queue,
                },
            };
            c.set_map(&u.map, &u.key, &value)?;
        }
        let prog = c
            .sim
            .program(&sc.program, sc.prog_type)
            .map_err(|e| e.to_string())?;
        for (i, packet) in sc.packets.iter().enumerate() {
            let r = c.run(&prog, packet, sc.input);
            if !r.differences.is_empty() {
                return Err(format!("packet {i}: {}", r.differences.join("; ")));
            }
        }
        let maps = c.map_differences(&sc.nondeterministic)?;
        if !maps.is_empty() {
            return Err(format!("after the last packet: {}", maps.join("; ")));
        }
        Ok(sc.packets.len())
    }

    #[test]
    fn vectors_agree_with_the_live_kernel() {
        let bpf = match KernelBpf::probe() {
            Ok(b) => b,
            Err(u) => return println!("skipped: {u}"),
        };
        // Per-CPU maps: every run on CPU 0, on both sides.
        if let Err(e) = bpfsim_kernel::pin_current_thread(0) {
            return println!("skipped: cannot pin the test to CPU 0: {e}");
        }
        let trace = std::fs::write("/sys/kernel/tracing/trace", "").is_ok();
        if !trace {
            println!(
                "note: tracefs not writable at /sys/kernel/tracing: bpf_printk lines not compared"
            );
        }
        let files = common::scenario_files();
        let (mut agree, mut packets) = (0, 0);
        let mut failures = Vec::new();
        for f in &files {
            let sc = common::load(f);
            match compare(&bpf, &sc, trace) {
                Ok(n) => {
                    agree += 1;
                    packets += n;
                    println!("ok   {}: {n} packets", sc.name);
                }
                Err(e) => {
                    println!("FAIL {}: {e}", sc.name);
                    failures.push(format!("{}: {e}", sc.name));
                }
            }
        }
        println!(
            "kernel agreement: {agree}/{} scenarios ({packets} packets)",
            files.len()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

/// `repeat` runs the program that many times in both, maps persisting: xdp_pass counts frames.
#[cfg(target_os = "linux")]
#[test]
fn repeat_counts_like_the_kernel() {
    use bpfsim_helpers::run::Input;
    let bpf = match bpfsim_kernel::KernelBpf::probe() {
        Ok(b) => b,
        Err(u) => return println!("skipped: {u}"),
    };
    let bytes = std::fs::read(common::root().join("xdp_pass.bpf.o")).unwrap();
    let mut c =
        bpfsim::compare::Comparison::load(&bpf, &bytes, bpfsim_helpers::Env::default()).unwrap();
    let prog = c.sim.program("xdp_pass_count", None).unwrap();
    let pkt = [0u8; 60];
    let ours = c.sim.run_repeat(&prog, &pkt, Input::default(), 7).unwrap();
    let theirs = c
        .kernel
        .run_repeat("xdp_pass_count", &pkt, &Input::default(), 7)
        .unwrap();
    assert_eq!(ours.retval, theirs.result.retval);
    assert_eq!(ours.data, theirs.result.data);
    let dumps = c.map_dumps(&[]).unwrap();
    let (_, sim, kernel) = dumps.iter().find(|(n, _, _)| n == ".bss").unwrap();
    assert_eq!(sim, kernel);
    let frames = &sim.values().next().unwrap()[0][..16];
    assert_eq!(frames, "0700000000000000", "seven runs counted");
}
