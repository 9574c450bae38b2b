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
