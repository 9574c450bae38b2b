//! Precision tracking against the kernel's processed-instruction counts: the pruning cases of
//! the verifier corpus (`test-vectors/verifier/15_precision.txt`, counts recorded from Linux
//! 6.18 and re-checked against the live kernel by `cli/tests/verifier_corpus.rs`), run here
//! without a kernel.

use bpfsim_verifier::{verify, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::spec::ProgType;

struct Case {
    name: String,
    prog_type: ProgType,
    processed: u64,
    source: String,
}

fn cases() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../test-vectors/verifier/15_precision.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n=== ")
        .skip(1)
        .map(|block| {
            let (name, body) = block.split_once('\n').unwrap();
            let mut c = Case {
                name: name.trim().to_string(),
                prog_type: ProgType::Xdp,
                processed: 0,
                source: String::new(),
            };
            for l in body.lines() {
                if let Some(t) = l.strip_prefix("; type:") {
                    c.prog_type = ProgType::from_name(t.trim()).unwrap();
                } else if let Some(n) = l.strip_prefix("; processed:") {
                    c.processed = n.trim().parse().unwrap();
                } else if !l.starts_with(';') && !l.trim().is_empty() {
                    c.source.push_str(l);
                    c.source.push('\n');
                }
            }
            c
        })
        // Cases without a count check verdicts only (the corpus test runs those).
        .filter(|c| c.processed > 0)
        .collect()
}

fn processed(c: &Case) -> u64 {
    let v = verify(&assemble(&c.source).unwrap(), &Options::new(c.prog_type));
    assert!(v.accepted, "{}: {:?}", c.name, v.error);
    v.processed
}

#[test]
fn pruning_follows_the_kernels_counts() {
    let cases = cases();
    assert!(cases.len() >= 10);
    for c in &cases {
        assert_eq!(processed(c), c.processed, "{}", c.name);
    }
}

/// The pairs differ only in whether a later instruction relies on the value that differs at
/// the join: relying on it must cost the second path its pruning.
#[test]
fn relying_on_a_value_prevents_pruning_on_it() {
    let cases = cases();
    let get = |n: &str| cases.iter().find(|c| c.name == n).unwrap();
    for (imprecise, precise) in [
        (
            "precision_imprecise_scalar_pruned",
            "precision_branch_makes_scalar_precise",
        ),
        (
            "precision_spill_never_relied_on",
            "precision_through_stack_spill",
        ),
        (
            "precision_subprogram_result_unused",
            "precision_through_subprogram",
        ),
    ] {
        assert!(
            processed(get(imprecise)) < processed(get(precise)),
            "{imprecise} vs {precise}"
        );
    }
}

/// Every program of the test-vectors objects against the kernel's recorded processed count
/// (`test-vectors/verifier/processed.tsv`): loops (`xdp_parse`), callbacks iterated to a fixed
/// point (`xdp_loop`, `xdp_foreach`), global functions and stack liveness per call chain
/// (`xdp_calls`), spills and precision all move the count: each must be the kernel's exactly.
#[test]
fn test_vector_programs_process_what_the_kernel_processes() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-vectors");
    let table = std::fs::read_to_string(format!("{root}/verifier/processed.tsv")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in table.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let (object, program, want) = (f[0], f[1], f[2].parse::<u64>().unwrap());
        let bytes = std::fs::read(format!("{root}/progs/{object}")).unwrap();
        let obj = bpfsim_vm::loader::load_object(&bytes).unwrap();
        let p = obj.programs.iter().find(|p| p.name == program).unwrap();
        let v = bpfsim_verifier::verify_object_program(&obj, p, None, 1).unwrap();
        assert!(v.accepted, "{program}: {:?}", v.error);
        let ratio = v.processed as f64 / want as f64;
        println!("{program:<24} {:>7} {want:>7} {ratio:>5.2}", v.processed);
        if v.processed != want {
            failures.push(format!(
                "{program}: {} insns, the kernel {want}",
                v.processed
            ));
        }
        checked += 1;
    }
    assert!(checked >= 35, "{checked} programs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
