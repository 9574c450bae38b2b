//! Our kernel-notation disassembler against the live kernel's verifier log: every instruction
//! line the verifier prints for the conformance programs (wrapped as XDP, see
//! `bpfsim_kernel::conformance`) must equal `bpfsim_vm::asm::kernel_line` for that instruction.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bpfsim::conformance::data;
use bpfsim_kernel::{conformance_wrapper, KernelBpf, MemMap, ProgType};
use bpfsim_vm::asm::{assemble, kernel_line};
use bpfsim_vm::isa::{decode, encode, Imm64, Insn};

/// `N: (cc) text` lines of a verifier log, by slot, with any `; state` comment removed.
fn insn_lines(log: &str) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let Some((idx, rest)) = line.split_once(": ") else {
            continue;
        };
        let Ok(idx) = idx.parse::<usize>() else {
            continue;
        };
        if !rest.starts_with('(') {
            continue;
        }
        let text = rest.split(';').next().unwrap_or(rest).trim_end();
        out.insert(idx, text.to_string());
    }
    out
}

#[test]
fn kernel_notation_matches_the_verifier_log() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/conformance/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let result_map = kernel.array_map_create(8, 1).unwrap();
    let mem_map = kernel.array_map_create(64, 1).unwrap();
    let (mut compared, mut programs) = (0usize, 0usize);
    let mut mismatches = Vec::new();
    for file in files {
        let t = data::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let Ok(insns) = assemble(&t.asm_text()) else {
            continue;
        };
        let test = encode(&insns);
        let mem = (!t.mem.is_empty()).then_some(MemMap {
            fd: mem_map.raw_fd(),
            len: 64,
        });
        let wrapper = conformance_wrapper(&test, mem, result_map.raw_fd());
        let (_, log) = kernel.prog_load_logged(ProgType::XDP, &wrapper, "GPL", 2);
        let decoded = decode(&wrapper).unwrap();
        let mut by_slot = BTreeMap::new();
        let mut slot = 0;
        for insn in &decoded {
            by_slot.insert(slot, *insn);
            slot += insn.slots();
        }
        programs += 1;
        for (idx, text) in insn_lines(&log) {
            let Some(insn) = by_slot.get(&idx) else {
                mismatches.push(format!(
                    "{}: log names slot {idx}, not an instruction start",
                    file.display()
                ));
                continue;
            };
            // Map references print kernel addresses, which only the kernel knows.
            if matches!(insn, Insn::LdImm64 { imm, .. } if !matches!(imm, Imm64::Imm(_))) {
                continue;
            }
            compared += 1;
            let ours = kernel_line(insn);
            if ours != text {
                mismatches.push(format!(
                    "{}: slot {idx}: kernel `{text}`, ours `{ours}`",
                    file.display()
                ));
            }
        }
    }
    println!(
        "kernel notation: {compared} verifier-log lines of {programs} programs compared, {} differ",
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(
        compared > 2000,
        "too few lines compared ({compared}): is the log being parsed?"
    );
}
