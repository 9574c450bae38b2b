//! Helper availability per program type (`bpfsim_helpers::helpers::proto::allowed`) and the
//! `gpl_only`/`might_sleep` flags of the prototype table, against the live kernel's verifier.
//!
//! Each case loads `call N; exit` (r1 is the context at entry, r2-r5 are uninitialised) as a
//! program of the type. The first check of the kernel's `check_helper_call` is availability:
//! `program of this type cannot use helper bpf_xxx#N` means the type's `get_func_proto` returned
//! nothing. Any other outcome (a load, or a later complaint such as `R2 !read_ok`) means it
//! returned a prototype. With a non-GPL license the next check is `cannot call GPL-restricted
//! function ...`, then `helper call might sleep in a non-sleepable prog`.
//!
//! The verifier's log at level 2 also shows, before the first instruction, which registers are
//! live (`Live regs before insn: 0: .123...... (85) call ...`, 6.15+): for a helper call, its
//! arguments. That checks the number of arguments of each prototype.

use bpfsim_helpers::helpers::proto::{allowed, allowed_for, proto_for, COVERED_PROG_TYPES, PROTOS};
use bpfsim_kernel::{KernelBpf, LoadFailure, ProgType as KernelProgType};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::encode;
use bpfsim_vm::spec::{helper_name, ProgType, HELPER_NAMES};

const UNAVAILABLE: &[&str] = &["program of this type cannot use helper", "unknown func"];

fn call_program(id: u32) -> Vec<u8> {
    encode(&assemble(&format!("call {id}\nexit")).unwrap())
}

fn load(
    kernel: &KernelBpf,
    prog_type: ProgType,
    id: u32,
    license: &str,
) -> Result<(), LoadFailure> {
    kernel
        .prog_load(
            KernelProgType(prog_type.id()),
            &call_program(id),
            license,
            1,
        )
        .map(drop)
}

/// What the kernel's `get_func_proto` answered for (`prog_type`, `id`), or why that is unknown.
fn kernel_allows(kernel: &KernelBpf, prog_type: ProgType, id: u32) -> Result<bool, String> {
    match load(kernel, prog_type, id, "GPL") {
        Ok(()) => Ok(true),
        Err(f) if UNAVAILABLE.iter().any(|m| f.log.contains(m)) => Ok(false),
        Err(f) if f.log.trim().is_empty() => Err(format!("no verifier log ({})", f.errno)),
        Err(_) => Ok(true),
    }
}

/// The program types the harness can load here (a trivial `r0 = 0; exit`), with a reason for
/// each one it cannot.
fn loadable_types(kernel: &KernelBpf) -> Vec<ProgType> {
    let trivial = encode(&assemble("mov %r0, 0\nexit").unwrap());
    COVERED_PROG_TYPES
        .iter()
        .copied()
        .filter(
            |&t| match kernel.prog_load(KernelProgType(t.id()), &trivial, "GPL", 1) {
                Ok(_) => true,
                Err(e) => {
                    println!("cannot load a {t} program here, not compared: {e}");
                    false
                }
            },
        )
        .collect()
}

struct Tally {
    agree: usize,
    total: usize,
    diffs: Vec<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            agree: 0,
            total: 0,
            diffs: Vec::new(),
        }
    }

    fn record(&mut self, ok: bool, diff: impl FnOnce() -> String) {
        self.total += 1;
        if ok {
            self.agree += 1;
        } else {
            self.diffs.push(diff());
        }
    }

    fn report(&self, what: &str) {
        println!("{what}: {}/{}", self.agree, self.total);
        for d in &self.diffs {
            println!("  {d}");
        }
    }
}

fn compare(
    kernel: &KernelBpf,
    types: &[ProgType],
    ids: impl Iterator<Item = u32> + Clone,
) -> Tally {
    let mut tally = Tally::new();
    for &t in types {
        for id in ids.clone() {
            let ours = allowed(t, id);
            let name = helper_name(i64::from(id)).unwrap_or("?");
            match kernel_allows(kernel, t, id) {
                Ok(theirs) => tally.record(ours == theirs, || {
                    format!("{t}: bpf_{name}#{id}: kernel {theirs}, bpfsim {ours}")
                }),
                Err(why) => tally.record(false, || format!("{t}: bpf_{name}#{id}: {why}")),
            }
        }
    }
    tally
}

#[test]
fn helper_availability_matches_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let types = loadable_types(&kernel);

    let table = compare(&kernel, &types, PROTOS.iter().map(|p| p.id));
    table.report("helper availability agreement");

    // Every helper id the UAPI defines, not only the table's: `allowed` mirrors the whole
    // `get_func_proto` of each type.
    let all = compare(&kernel, &types, 1..HELPER_NAMES.len() as u32);
    all.report("all-id availability agreement");

    assert_eq!(table.agree, table.total, "availability of table helpers");
    assert_eq!(all.agree, all.total, "availability of all helper ids");
}

#[test]
fn gpl_only_and_might_sleep_match_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let types = loadable_types(&kernel);
    let mut tally = Tally::new();
    for &t in &types {
        for p in PROTOS.iter().filter_map(|p| proto_for(t, p.id)) {
            let log = match load(&kernel, t, p.id, "Proprietary") {
                Ok(()) => String::new(),
                Err(f) => f.log,
            };
            let gpl = log.contains("cannot call GPL-restricted function");
            tally.record(gpl == p.gpl_only, || {
                format!(
                    "{t}: bpf_{}#{}: kernel gpl_only {gpl}, bpfsim {}",
                    p.name, p.id, p.gpl_only
                )
            });
            if !gpl {
                let sleeps = log.contains("might sleep");
                tally.record(sleeps == p.might_sleep, || {
                    format!(
                        "{t}: bpf_{}#{}: kernel might_sleep {sleeps}, bpfsim {}",
                        p.name, p.id, p.might_sleep
                    )
                });
            }
        }
    }
    tally.report("gpl_only/might_sleep agreement");
    let never: Vec<&str> = PROTOS
        .iter()
        .filter(|p| !types.iter().any(|&t| allowed(t, p.id)))
        .map(|p| p.name)
        .collect();
    if !never.is_empty() {
        println!("no covered program type may call: {}", never.join(", "));
    }
    assert_eq!(tally.agree, tally.total);
}

/// The registers live before instruction 0 in a level-2 verifier log (`.123......` gives
/// `[1, 2, 3]`), if the kernel prints them.
fn live_regs_at_start(log: &str) -> Option<Vec<usize>> {
    let mut lines = log
        .lines()
        .skip_while(|l| !l.starts_with("Live regs before insn:"));
    lines.next()?;
    let first = lines.next()?.trim_start().strip_prefix("0: ")?;
    let mask = first.get(..10)?;
    Some(
        mask.char_indices()
            .filter(|&(_, c)| c != '.')
            .map(|(i, _)| i)
            .collect(),
    )
}

#[test]
fn argument_counts_match_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let types = loadable_types(&kernel);
    let mut tally = Tally::new();
    for &t in &types {
        for p in PROTOS.iter().filter_map(|p| proto_for(t, p.id)) {
            let (_, log) =
                kernel.prog_load_logged(KernelProgType(t.id()), &call_program(p.id), "GPL", 2);
            let Some(live) = live_regs_at_start(&log) else {
                return println!("skipped: this kernel's log does not show live registers");
            };
            let expected: Vec<usize> = (1..=p.arg_count()).collect();
            tally.record(live == expected, || {
                format!(
                    "{t}: bpf_{}#{}: kernel reads r{live:?}, bpfsim has {} arguments",
                    p.name,
                    p.id,
                    p.arg_count()
                )
            });
        }
    }
    tally.report("argument count agreement");
    assert_eq!(tally.agree, tally.total);
}

/// Tracing programs (`allowed(Tracing, ..)`), checked as a `tp_btf/sched_switch` program: the
/// kernel takes one only with the tracepoint's BTF id as `attach_btf_id`.
#[test]
fn tracing_helper_availability_matches_a_tp_btf_program() {
    use bpfsim_kernel::ProgSpec;
    use bpfsim_vm::loader::{kernel_btf, AttachType, BtfKind, KernelBtfSource};
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let btf = match kernel_btf(&KernelBtfSource::System) {
        Ok(b) => b,
        Err(e) => return println!("skipped: {e}"),
    };
    let Some(tp) = btf.find("btf_trace_sched_switch", |k| {
        matches!(k, BtfKind::Typedef { .. })
    }) else {
        return println!("skipped: no btf_trace_sched_switch");
    };
    let load = |id: u32| {
        let insns = call_program(id);
        let spec = ProgSpec {
            expected_attach_type: AttachType::TraceRawTp.id(),
            attach_btf_id: tp,
            ..ProgSpec::new(KernelProgType(ProgType::Tracing.id()), &insns, "GPL")
        };
        kernel.prog_load_spec(&spec, 1)
    };
    let mut tally = Tally::new();
    for id in 1..HELPER_NAMES.len() as u32 {
        let ours = allowed_for(ProgType::Tracing, Some(AttachType::TraceRawTp), id);
        let name = helper_name(i64::from(id)).unwrap_or("?");
        let theirs = match load(id) {
            Ok(_) => true,
            Err(f) if UNAVAILABLE.iter().any(|m| f.log.contains(m)) => false,
            Err(f) if f.log.trim().is_empty() => {
                tally.record(false, || format!("bpf_{name}#{id}: no log ({})", f.errno));
                continue;
            }
            Err(_) => true,
        };
        tally.record(ours == theirs, || {
            format!("tp_btf: bpf_{name}#{id}: kernel {theirs}, bpfsim {ours}")
        });
    }
    tally.report("tracing (tp_btf) helper availability agreement");
    assert!(tally.diffs.is_empty(), "{:?}", tally.diffs);
}
