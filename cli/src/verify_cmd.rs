//! `bpfsim verify`: the verifier's verdict per program, optionally next to the live kernel's.

use std::path::PathBuf;

use bpfsim_verifier::{verify, verify_object_program, Options, Verdict};
use bpfsim_vm::loader::{load_object_with, LoadOptions};
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::Program;
use serde_json::json;

pub struct VerifyArgs {
    pub object: Option<PathBuf>,
    pub raw: Option<PathBuf>,
    pub prog: Option<String>,
    pub prog_type: Option<ProgType>,
    pub log_level: u32,
    pub json: bool,
    pub compare_kernel: bool,
    /// The kernel BTF file for CO-RE and attach targets (default: /sys/kernel/btf/vmlinux).
    pub btf: Option<PathBuf>,
}

/// What the command ends with: 0 all accepted (and agreeing), 1 a rejection or a disagreement,
/// 3 the kernel cannot be asked. Usage and load errors are `Err` (exit 2).
pub enum Outcome {
    Accepted,
    Rejected,
    KernelUnavailable,
    /// A program of the object could not be loaded (CO-RE, kfuncs, ...), so it has no verdict;
    /// the others were verified and reported.
    NotLoaded,
}

/// The kernel's answer for one program: verdict, first error line, processed instructions.
struct KernelAnswer {
    accepted: bool,
    error: Option<String>,
    processed: Option<u64>,
    /// The kernel's own `verification time N usec` (its log's statistics).
    time_us: Option<u64>,
    /// Refused with nothing in the log: the load stopped before the verifier ran (a tracing
    /// program where the kernel cannot attach trampolines, a lockdown, an LSM), so there is no
    /// verdict to compare ours with.
    unverified: bool,
}

/// The kernel's log level: the user's plus BPF_LOG_STATS, which adds the `verification time`
/// line we report next to ours. At level 0 only the statistics: the kernel's time then leaves
/// out writing its per-instruction log, which at level 1 multiplies it 10-20x; a rejection is
/// loaded again at level 1 for its error line ([`kernel_load`]).
#[cfg(kernel_backend)]
fn kernel_log_level(log_level: u32) -> u32 {
    log_level | 4
}

/// Load in the kernel with `load(level)` and read its answer: at log level 0 a rejection is
/// loaded again at level 1 for the error line, the time kept from the statistics-only load.
#[cfg(kernel_backend)]
fn kernel_load(log_level: u32, load: impl Fn(u32) -> (Result<(), i32>, String)) -> KernelAnswer {
    let (r, log) = load(kernel_log_level(log_level));
    let mut answer = kernel_answer(r, &log);
    if log_level == 0 && !answer.accepted {
        let (r, log) = load(1);
        let again = kernel_answer(r, &log);
        answer.error = again.error;
        answer.processed = again.processed.or(answer.processed);
    }
    answer
}

#[cfg(kernel_backend)]
fn time_of(log: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.strip_prefix("verification time "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(kernel_backend)]
fn processed_of(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("processed "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(kernel_backend)]
fn kernel_answer(result: Result<(), i32>, log: &str) -> KernelAnswer {
    KernelAnswer {
        accepted: result.is_ok(),
        // Some refusals leave no log (EPERM for a tracing program the kernel cannot attach
        // trampolines to): the errno is then the kernel's whole answer.
        error: result
            .err()
            .map(|errno| match bpfsim_kernel::last_meaningful_line(log) {
                Some(line) if !line.trim().is_empty() => line.to_string(),
                _ => format!("{} with an empty log", bpfsim_kernel::Errno(errno)),
            }),
        processed: processed_of(log),
        time_us: time_of(log),
        unverified: result.is_err() && log.trim().is_empty(),
    }
}

fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

struct Row<'a> {
    object: &'a str,
    section: &'a str,
    program: &'a str,
    prog_type: ProgType,
    verdict: Verdict,
    kernel: Option<KernelAnswer>,
}

/// `bpf_<name>#<id>`, as the kernel's log names a helper.
fn helper_label(id: u32) -> String {
    format!(
        "bpf_{}#{id}",
        bpfsim_vm::spec::helper_name(i64::from(id)).unwrap_or("unknown")
    )
}

/// The warning for helpers whose arguments bpfsim could not check (it knows no prototype for
/// them): an acceptance is then weaker than the kernel's.
fn unchecked_warning(ids: &[u32]) -> Option<String> {
    if ids.is_empty() {
        return None;
    }
    let names: Vec<String> = ids.iter().map(|&id| helper_label(id)).collect();
    Some(format!(
        "warning: arguments not checked (bpfsim has no prototype): {}",
        names.join(", ")
    ))
}

fn report(rows: &[Row<'_>], args: &VerifyArgs) -> bool {
    let mut ok = true;
    for r in rows {
        let v = &r.verdict;
        let agree = r
            .kernel
            .as_ref()
            .filter(|k| !k.unverified)
            .map(|k| k.accepted == v.accepted && (v.accepted || k.error == v.error));
        ok &= v.accepted && agree != Some(false);
        if args.json {
            let mut o = json!({
                "object": r.object,
                "section": r.section,
                "program": r.program,
                "prog_type": r.prog_type.to_string(),
                "accepted": v.accepted,
                "error": v.error,
                "processed_insns": v.processed,
                "log": v.log,
                "verification_time_us": v.time.as_micros() as u64,
                "unchecked_helpers": v.unchecked_helpers.iter().map(|&id| helper_label(id)).collect::<Vec<_>>(),
            });
            if let Some(k) = &r.kernel {
                o["kernel"] = json!({
                    "accepted": k.accepted,
                    "error": k.error,
                    "processed_insns": k.processed,
                    "verification_time_us": k.time_us,
                    "agree": agree,
                    "comparable": !k.unverified,
                });
            }
            say(o);
            continue;
        }
        let head = format!(
            "{} {} ({}, section {})",
            r.object, r.program, r.prog_type, r.section
        );
        match &v.error {
            None => say(format!("{head}: accepted, {} insns processed", v.processed)),
            Some(e) => say(format!("{head}: REJECTED: {e}")),
        }
        if let Some(w) = unchecked_warning(&v.unchecked_helpers) {
            say(format!("  {w}"));
        }
        if args.log_level > 0 && (v.error.is_some() || args.log_level > 1) {
            for l in &v.log {
                say(format!("  | {l}"));
            }
        }
        if let Some(k) = &r.kernel {
            let what = match (&k.error, k.processed) {
                (None, Some(p)) => format!("accepted, {p} insns processed"),
                (None, None) => "accepted".to_string(),
                (Some(e), _) => format!("rejected: {e}"),
            };
            let time = match k.time_us {
                Some(t) => format!(
                    ", verified in {t} us (bpfsim: {} us)",
                    r.verdict.time.as_micros()
                ),
                None => String::new(),
            };
            let tag = match agree {
                Some(true) => "agree",
                Some(false) => "DIFFERENT",
                None => "not comparable: the kernel refused the load before its verifier ran",
            };
            say(format!("  kernel: {what} ({tag}){time}"));
        }
    }
    ok
}

pub fn run(args: VerifyArgs) -> Result<Outcome, String> {
    #[cfg(kernel_backend)]
    let kernel = if args.compare_kernel {
        match bpfsim_kernel::KernelBpf::probe() {
            Ok(k) => Some(k),
            Err(u) => {
                eprintln!("bpfsim: kernel unavailable: {u}");
                return Ok(Outcome::KernelUnavailable);
            }
        }
    } else {
        None
    };
    #[cfg(not(kernel_backend))]
    if args.compare_kernel {
        eprintln!("bpfsim: kernel unavailable: {}", crate::NO_KERNEL_BACKEND);
        return Ok(Outcome::KernelUnavailable);
    }
    let log_level = args.log_level;
    match (&args.raw, &args.object) {
        (Some(raw), None) => {
            let bytes = std::fs::read(raw).map_err(|e| format!("{}: {e}", raw.display()))?;
            let prog_type = args
                .prog_type
                .ok_or("--type is required with --raw (e.g. xdp, sched_cls, socket_filter)")?;
            let insns =
                bpfsim_vm::isa::decode(&bytes).map_err(|e| format!("{}: {e}", raw.display()))?;
            let mut opts = Options::new(prog_type);
            opts.log_level = log_level;
            let verdict = verify(&insns, &opts);
            #[cfg(kernel_backend)]
            let kernel = kernel.map(|k| {
                kernel_load(log_level, |level| {
                    let (r, log) = k.prog_load_logged(
                        bpfsim_kernel::ProgType(prog_type.id()),
                        &bytes,
                        "GPL",
                        level,
                    );
                    (r.map(|_| ()).map_err(|e| e.0), log)
                })
            });
            #[cfg(not(kernel_backend))]
            let kernel = None;
            let name = raw.display().to_string();
            let _ = Program::new(insns.clone());
            let rows = [Row {
                object: &name,
                section: "-",
                program: "-",
                prog_type,
                verdict,
                kernel,
            }];
            Ok(if report(&rows, &args) {
                Outcome::Accepted
            } else {
                Outcome::Rejected
            })
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let opts = match &args.btf {
                Some(file) => LoadOptions::with_btf_file(Some(file)),
                None => LoadOptions::default(),
            };
            let obj =
                load_object_with(&bytes, &opts).map_err(|e| format!("{}: {e}", path.display()))?;
            let progs: Vec<_> = match &args.prog {
                Some(name) => match obj.find_program(name) {
                    Ok(p) => vec![p.clone()],
                    Err(_) if args.prog_type.is_some() => vec![obj
                        .function_program(name, args.prog_type.expect("checked"))
                        .map_err(|e| format!("{}: {e}", path.display()))?],
                    Err(e) => return Err(format!("{}: {e}", path.display())),
                },
                None => obj.programs.clone(),
            };
            // Programs the loader refused have no verdict; with `--prog` they are not asked for.
            let unloaded: Vec<_> = obj
                .rejected
                .iter()
                .filter(|_| args.prog.is_none())
                .collect();
            for r in &unloaded {
                if args.json {
                    say(json!({
                        "object": path.display().to_string(),
                        "section": r.section,
                        "program": r.name,
                        "accepted": null,
                        "error": null,
                        "load_error": r.error.to_string(),
                    }));
                } else {
                    eprintln!(
                        "bpfsim: {}: {} (section {}): not verified, the loader refuses it: {}",
                        path.display(),
                        r.name,
                        r.section,
                        r.error
                    );
                }
            }
            if progs.is_empty() {
                return Err(match unloaded.len() {
                    0 => format!("{}: the object has no programs", path.display()),
                    _ => format!(
                        "{}: no program of the object could be loaded",
                        path.display()
                    ),
                });
            }
            #[cfg(kernel_backend)]
            let kobj = match &kernel {
                Some(k) => Some(
                    k.load_object_maps(&obj)
                        .map_err(|e| format!("{}: kernel: {e}", path.display()))?,
                ),
                None => None,
            };
            let name = path.display().to_string();
            let mut rows = Vec::new();
            for p in &progs {
                let Some(verdict) = verify_object_program(&obj, p, args.prog_type, log_level)
                else {
                    return Err(format!(
                        "{}: program {} (section {}) has no type: give --type",
                        path.display(),
                        p.name,
                        p.section
                    ));
                };
                #[cfg(kernel_backend)]
                let kernel = match (&kernel, &kobj) {
                    (Some(k), Some(ko)) => Some(kernel_load(log_level, |level| {
                        let (r, log) = ko.load_program_logged(k, &obj, p, args.prog_type, level);
                        (r.map_err(|e| e.0), log)
                    })),
                    _ => None,
                };
                #[cfg(not(kernel_backend))]
                let kernel = None;
                rows.push((p, verdict, kernel));
            }
            let rows: Vec<Row<'_>> = rows
                .into_iter()
                .map(|(p, verdict, kernel)| Row {
                    object: &name,
                    section: &p.section,
                    program: &p.name,
                    prog_type: args
                        .prog_type
                        .or(p.prog_type)
                        .expect("verified with a type"),
                    verdict,
                    kernel,
                })
                .collect();
            Ok(match (report(&rows, &args), unloaded.is_empty()) {
                (_, false) => Outcome::NotLoaded,
                (true, true) => Outcome::Accepted,
                (false, true) => Outcome::Rejected,
            })
        }
        _ => Err("give an object file or --raw FILE".to_string()),
    }
}

#[cfg(all(test, kernel_backend))]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_without_a_log_is_not_a_verdict() {
        let k = kernel_answer(Err(1), "");
        assert!(k.unverified && !k.accepted);
        assert_eq!(
            k.error.as_deref(),
            Some("EPERM (Operation not permitted) with an empty log")
        );
        let k = kernel_answer(Err(13), "0: (95) exit\nR0 !read_ok\nprocessed 1 insns");
        assert!(!k.unverified);
        assert_eq!(k.error.as_deref(), Some("R0 !read_ok"));
        assert!(!kernel_answer(Ok(()), "").unverified);
    }
}
