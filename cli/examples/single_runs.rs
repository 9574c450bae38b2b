//! Time whole single test runs (one `BPF_PROG_TEST_RUN` without `repeat` per packet, as
//! `bpfsim run` on a pcap or one `prog.run()` from Python does) of an object's first program,
//! the interpreter and the JIT interleaved in rounds, medians of the rounds in ns per run.
//!
//!     cargo run --release -p bpfsim --example single_runs OBJECT PCAP [ROUNDS [ENGINES]]
//!
//! ENGINES is `interp,jit` (the default), `interp` or `jit` (one engine alone, to profile it).

use bpfsim::capture::Capture;
use bpfsim::sim::object::{Engine, LoadedObject};
use bpfsim::sim::run::Input;
use bpfsim::sim::Env;
use std::time::Instant;

/// Passes over the pcap in one timing.
const PASSES: usize = 2_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(object), Some(pcap)) = (args.next(), args.next()) else {
        return Err("usage: single_runs OBJECT PCAP [ROUNDS [ENGINES]]".into());
    };
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(7);
    let packets: Vec<Vec<u8>> = Capture::open(std::path::Path::new(&pcap))?
        .map(|p| p.map(|p| p.data))
        .collect::<Result<_, _>>()?;
    let bytes = std::fs::read(&object)?;
    let wanted = args.next().unwrap_or_else(|| "interp,jit".to_string());
    let engines: Vec<(&str, Engine)> = [("interp", Engine::Interp), ("jit", Engine::Jit)]
        .into_iter()
        .filter(|(n, _)| wanted.split(',').any(|w| w == *n))
        .collect();
    let mut objs = Vec::new();
    for &(_, engine) in &engines {
        let mut obj = LoadedObject::load(&bytes, Env::default())?;
        obj.runner.set_timing(false);
        let name = obj.program_names().into_iter().next().ok_or("no program")?;
        let prog = obj.program(&name, None)?;
        // Packets the test run refuses are not timed; the first run compiles.
        let ok: Vec<&Vec<u8>> = packets
            .iter()
            .filter(|p| {
                obj.run_engine(&prog, p, Input::default(), 1, engine)
                    .is_ok()
            })
            .collect();
        objs.push((obj, prog, ok));
    }
    let mut times = vec![Vec::new(); engines.len()];
    for _ in 0..rounds {
        for (i, (_, engine)) in engines.iter().enumerate() {
            let (obj, prog, ok) = &mut objs[i];
            let t = Instant::now();
            for _ in 0..PASSES {
                for p in ok.iter() {
                    obj.run_engine(prog, p, Input::default(), 1, *engine)?;
                }
            }
            times[i].push(t.elapsed().as_nanos() as f64 / (PASSES * ok.len()) as f64);
        }
    }
    for (i, (name, _)) in engines.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name}: {:.1} ns per single run (median of {rounds}, min {:.1}, max {:.1})",
            t[t.len() / 2],
            t[0],
            t[t.len() - 1]
        );
    }
    Ok(())
}
