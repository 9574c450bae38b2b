//! The verifier log's levels: what level 1 keeps (the failing path, or the statistics alone),
//! what level 2 adds, and that writing it never panics.

use bpfsim_verifier::{verify, MapInfo, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::decode;
use bpfsim_vm::spec::{MapType, ProgType};
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

    /// Programs that reach deep (stack spills and fills, helper calls with stack keys, a
    /// subprogram taking a stack pointer, branches to prune on) print every level without a
    /// panic, and level 2 holds level 1's instructions.
    #[test]
    fn logs_of_structured_programs_never_panic(
        ops in proptest::collection::vec((0u8..12, 0u8..11, 0u8..11, -64i32..64), 1..30),
        level in 1u32..3,
    ) {
        let mut src = String::new();
        for (op, a, b, imm) in &ops {
            let (a, b) = (a % 10, b % 11);
            let line = match op {
                0 => format!("mov %r{a}, {imm}"),
                1 => format!("add %r{a}, %r{b}"),
                2 => format!("stxdw [%r10-{}], %r{a}", 8 * (1 + imm.unsigned_abs() % 8)),
                3 => format!("ldxdw %r{a}, [%r10-{}]", 8 * (1 + imm.unsigned_abs() % 8)),
                4 => format!("stxh [%r10-{}], %r{a}", 2 * (1 + imm.unsigned_abs() % 32)),
                5 => format!("jgt %r{a}, %r{b}, +{}", imm.unsigned_abs() % 3),
                6 => format!("jeq %r{a}, {imm}, +1"),
                7 => "lddw %r1, map_idx 0\nmov %r2, %r10\nadd %r2, -8\ncall 1".to_string(),
                8 => "mov %r1, %r10\nadd %r1, -16\ncall local sub".to_string(),
                9 => format!("be16 %r{a}"),
                10 => format!("and %r{a}, {}", imm & 0x3f),
                _ => "ja +0".to_string(),
            };
            src.push_str(&line);
            src.push('\n');
        }
        src.push_str("mov %r0, 0\nexit\nsub:\nldxdw %r0, [%r1+0]\nstxdw [%r1+8], %r0\nmov %r0, 0\nexit\n");
        if let Ok(insns) = assemble(&src) {
            let mut o = Options::new(ProgType::Xdp);
            o.limit = 20_000;
            o.log_level = level;
            o.maps = vec![MapInfo {
                name: "m".into(),
                map_type: MapType::Hash,
                key_size: 8,
                value_size: 8,
                max_entries: 4,
                rdonly_prog: false,
                frozen: false,
                btf: false,
                spin_lock: None,
                data: None,
            }];
            let v = verify(&insns, &o);
            prop_assert!(v.log.last().is_some_and(|l| l.contains("processed ")));
            if level == 2 {
                prop_assert_eq!(v.log.first().map(String::as_str), Some("func#0 @0"));
            }
        }
    }
}
