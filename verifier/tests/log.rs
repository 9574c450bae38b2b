//! The verifier log's levels: what level 1 keeps (the failing path, or the statistics alone),
//! what level 2 adds, and that writing it never panics.

use bpfsim_verifier::{verify, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::decode;
use bpfsim_vm::spec::ProgType;
use proptest::prelude::*;

fn run(src: &str, level: u32) -> bpfsim_verifier::Verdict {
    let mut o = Options::new(ProgType::Xdp);
    o.log_level = level;
    verify(&assemble(src).unwrap(), &o)
}

/// Reads the packet's first byte if the packet has one: two paths, both fine.
const BRANCHY: &str = "
    ldxw %r2, [%r1+4]
    ldxw %r1, [%r1+0]
    mov %r3, %r1
    add %r3, 1
    mov %r0, 1
    jgt %r3, %r2, +1
    ldxb %r0, [%r1+0]
    exit";

#[test]
fn level_1_keeps_only_the_path_to_the_error() {
    // The same program, reading one byte too many on the checked path.
    let bad = BRANCHY.replace("ldxb %r0, [%r1+0]", "ldxb %r0, [%r1+1]");
    let v = run(&bad, 1);
    assert!(!v.accepted);
    let log: Vec<&str> = v.log.iter().map(String::as_str).collect();
    assert_eq!(log[0], "0: R1=ctx() R10=fp0");
    assert_eq!(
        log[1],
        "0: (61) r2 = *(u32 *)(r1 +4)          ; R1=ctx() R2=pkt_end()"
    );
    assert!(
        log.contains(&"5: (2d) if r3 > r2 goto pc+1          ; R2=pkt_end() R3=pkt(off=1,r=1)"),
        "{log:#?}"
    );
    assert_eq!(log[log.len() - 2], v.error.as_deref().unwrap());
    assert!(log[log.len() - 1].starts_with("processed "));
    // The fall-through is explored first and fails there: no other path is in the log.
    assert!(!log.iter().any(|l| l.starts_with("from ")), "{log:#?}");
}

#[test]
fn level_1_of_an_accepted_program_is_the_statistics_line() {
    let v = run(BRANCHY, 1);
    assert!(v.accepted);
    assert_eq!(v.log.len(), 1);
    assert!(v.log[0].starts_with("processed 9 insns"), "{:?}", v.log);
}

#[test]
fn level_2_shows_every_path() {
    let v = run(BRANCHY, 2);
    assert!(v.accepted);
    let log: Vec<&str> = v.log.iter().map(String::as_str).collect();
    assert_eq!(log[0], "func#0 @0");
    assert_eq!(log[1], "Live regs before insn:");
    assert_eq!(log[2], "      0: .1........ (61) r2 = *(u32 *)(r1 +4)");
    // The pushed side resumes with its whole state (r3 known past the end: r=-2).
    assert!(
        log.contains(
            &"from 5 to 7: R0=1 R1=pkt(r=0) R2=pkt_end() R3=pkt(off=1,r=0xfffffffffffffffe) R10=fp0"
        ),
        "{log:#?}"
    );
    assert!(log.last().unwrap().starts_with("processed "));
}

#[test]
fn level_0_has_the_error_and_the_statistics() {
    let v = run("exit", 0);
    assert_eq!(v.log.len(), 2);
    assert_eq!(v.log[0], "R0 !read_ok");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Every level's log of any decodable program is written without a panic, and ends with
    /// the statistics.
    #[test]
    fn logs_of_arbitrary_programs_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 8..256),
        level in 0u32..3,
    ) {
        let len = bytes.len() / 8 * 8;
        if let Ok(insns) = decode(&bytes[..len]) {
            let mut o = Options::new(ProgType::Xdp);
            o.limit = 5_000;
            o.log_level = level;
            let v = verify(&insns, &o);
            prop_assert!(v.log.last().is_some_and(|l| l.contains("processed ")));
        }
    }
}
