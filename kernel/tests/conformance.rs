//! The bpf_conformance suite in the kernel: the kernel is the ground truth our interpreter and
//! loader are compared with. Both tests skip (pass with a `skipped:` line) where bpf(2) is
//! unavailable.

use std::path::{Path, PathBuf};

use bpfsim::conformance::data::{self, TestFile};
use bpfsim_kernel::{Errno, KernelBpf, ProgType};
use bpfsim_vm::{asm, isa, Program};

fn suite(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../test-vectors/conformance")
        .join(dir)
}

fn data_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "data")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn parse(path: &Path) -> TestFile {
    let text = std::fs::read_to_string(path).unwrap();
    data::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", name(path)))
}

/// The test's bytecode: its `-- raw` section, else its assembled `-- asm`.
fn bytecode(path: &Path, t: &TestFile) -> Vec<u8> {
    match &t.raw {
        Some(lines) => data::raw_bytes(lines).unwrap_or_else(|e| panic!("{}: {e}", name(path))),
        None => isa::encode(
            &asm::assemble(&t.asm_text()).unwrap_or_else(|e| panic!("{}: {e}", name(path))),
        ),
    }
}

fn probe() -> Option<KernelBpf> {
    match KernelBpf::probe() {
        Ok(k) => Some(k),
        Err(u) => {
            println!("skipped: {u}");
            None
        }
    }
}

#[test]
fn conformance_agrees_with_kernel() {
    use bpfsim::conformance::{kernel_check, Engine, KernelVerdict};
    let Some(bpf) = probe() else { return };
    let files = data_files(&suite("tests"), "");
    assert!(!files.is_empty(), "no conformance tests found");
    let mut agree = 0usize;
    let mut total = 0usize;
    let mut not_run = Vec::new();
    let mut disagreements = Vec::new();
    // Both engines: the kernel's r0 must be the interpreter's and the JIT's.
    let engines = [Engine::Interp, Engine::Jit];
    for path in &files {
        match kernel_check(path, &bpf, &engines) {
            KernelVerdict::NotCompared => continue,
            KernelVerdict::Agree(kernel) => {
                agree += 1;
                let t = parse(path);
                if t.result != Some(kernel) {
                    // Kernel and engines agree on a value the suite does not expect: worth a look.
                    println!(
                        "note: {}: kernel and engines both give {kernel:#x}, the suite expects \
                         {:?}",
                        name(path),
                        t.result
                    );
                }
            }
            KernelVerdict::CannotRun(why) => not_run.push(format!("{}: {why}", name(path))),
            KernelVerdict::Differ(what) => disagreements.push(format!("{}: {what}", name(path))),
        }
        total += 1;
    }
    println!("kernel agreement: {agree}/{total}");
    println!("kernel could not run {} tests:", not_run.len());
    for line in &not_run {
        println!("  {line}");
    }
    for line in &disagreements {
        println!("DISAGREEMENT {line}");
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements between the kernel and the engines:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    // Only what the kernel itself refuses may go uncompared: its verifier's shift and opcode
    // rules, and helpers that are not the suite's.
    assert!(
        not_run.len() <= 14,
        "the kernel ran fewer tests than before:\n{}",
        not_run.join("\n")
    );
    assert_eq!(agree + not_run.len(), total);
}

/// `mov r0, 0` (b7 00 00 00 00 00 00 00).
const MOV_R0_0: [u8; 8] = [0xb7, 0, 0, 0, 0, 0, 0, 0];
/// The opcode of `exit`.
const EXIT: u8 = 0x95;

/// The `<bad insn>; exit` program rearranged so that the verifier must examine the bad
/// instruction's fields: `mov r0, 0` first (conditional jumps read r0 before their reserved
/// fields are checked, so `R0 !read_ok` would come first), and when the bad instruction is itself
/// an `exit`, without the trailing `exit` (otherwise the CFG check rejects it as `unreachable
/// insn` before the fields are looked at).
fn reaching_variant(bytes: &[u8]) -> Vec<u8> {
    let mut out = MOV_R0_0.to_vec();
    out.extend_from_slice(bytes);
    if bytes.len() == 16 && bytes[0] == EXIT && bytes[8..] == [EXIT, 0, 0, 0, 0, 0, 0, 0] {
        out.truncate(16);
    }
    out
}

/// Reserved fields the kernel does not check (checked on Linux 6.18, and unchanged in the
/// verifier since 2014): a program that reaches such an instruction is accepted. The unmodified
/// file is still rejected, but only because its trailing `exit` is unreachable.
const KERNEL_IGNORES: &[(&str, &str)] = &[(
    "unused-exit-offset.data",
    "the verifier's BPF_EXIT check looks at src, dst, imm and the JMP32 class, never at `off`",
)];

/// Words of a verifier message about an instruction's fields or encoding (rather than about
/// register state, like `R0 !read_ok`).
fn is_encoding_complaint(reason: &str) -> bool {
    ["reserved", "invalid", "unknown opcode", "addr_space_cast"]
        .iter()
        .any(|w| reason.contains(w))
}

#[test]
fn kernel_rejects_reserved_fields() {
    let kernel = KernelBpf::probe();
    let files = data_files(&suite("negative"), "unused-");
    assert!(!files.is_empty(), "no unused-* tests found");
    // Our loader, with or without a kernel.
    for path in &files {
        let bytes = bytecode(path, &parse(path));
        if let Ok(p) = Program::from_bytes(&bytes) {
            panic!("{}: our loader accepted {:?}", name(path), p.insns());
        }
    }
    let bpf = match kernel {
        Ok(k) => k,
        Err(u) => {
            println!("skipped: {u}");
            return;
        }
    };
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for path in &files {
        let bytes = bytecode(path, &parse(path));
        let asis = bpf.prog_load(ProgType::XDP, &bytes, "GPL", 1);
        let init = bpf.prog_load(ProgType::XDP, &reaching_variant(&bytes), "GPL", 1);
        let why = |r: &Result<_, bpfsim_kernel::LoadFailure>| match r {
            Ok(_) => "ACCEPTED".to_string(),
            Err(f) => format!(
                "{} {}",
                f.errno.name().unwrap_or("?"),
                f.reason().unwrap_or("(no log)")
            ),
        };
        report.push(format!(
            "{:32} as is: {:40} | rearranged: {}",
            name(path),
            why(&asis),
            why(&init)
        ));
        // Both variants must be rejected, and the rearranged one for the bad instruction's
        // encoding, not for the register state or the control flow.
        let ignored = KERNEL_IGNORES.iter().find(|(n, _)| *n == name(path));
        match (&asis, &init) {
            (Err(_), Ok(_)) if ignored.is_some() => {
                notes.push(format!(
                    "{}: accepted by the kernel: {}",
                    name(path),
                    ignored.unwrap().1
                ));
            }
            (Err(_), Err(f)) if f.errno == Errno::EINVAL || f.errno == Errno::EACCES => {
                if !f.reason().is_some_and(is_encoding_complaint) {
                    failures.push(format!("{}: rejected for `{}`", name(path), why(&init)));
                }
            }
            _ => failures.push(format!(
                "{}: as is: {}, rearranged: {}",
                name(path),
                why(&asis),
                why(&init)
            )),
        }
    }
    println!(
        "kernel verdicts on negative/unused-* ({} files):",
        files.len()
    );
    for line in &report {
        println!("  {line}");
    }
    for line in &notes {
        println!("note: {line}");
    }
    assert!(
        failures.is_empty(),
        "the kernel did not reject these for their reserved fields:\n{}",
        failures.join("\n")
    );
}
