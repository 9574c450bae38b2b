//! The JIT's own packet proofs (`gen::bounds`) on random packet-parsing programs: pointers from
//! `data` and `data_end` moved by constants and small scalars, compared, spilled, reloaded,
//! across calls that move `data`, with truthful and lying contexts and writable or read-only
//! packets. The JIT must give the interpreter's results (r0 or the trap, the packet after) and
//! never touch the guard bytes around the packet.

mod common;
use common::pkt::*;
use proptest::prelude::*;

const SIZES: [&str; 4] = ["b", "h", "w", "dw"];
const CMP: [&str; 4] = ["jgt", "jge", "jlt", "jle"];

/// A register the body may write: r0-r5 mostly, now and then r7 and r9 (which start as
/// `data`) or r8 (`data_end`).
fn reg(x: u8) -> u8 {
    [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 7, 8, 9][x as usize % 15]
}

/// A register an access goes through: mostly those that start as `data` (r7, r9).
fn ptr(x: u8) -> u8 {
    [7, 9, 7, 9, 0, 1, 2, 3, 4, 5][x as usize % 10]
}

/// One line of a body of `n` lines; `k` its index.
fn line(op: u8, a: u8, b: u8, imm: i16, k: usize, n: usize) -> String {
    let (ra, rb) = (reg(a), reg(b));
    // Forward to a later line or the exit.
    let fwd = 1 + (imm.unsigned_abs() as usize % (n - k).max(1)) - 1;
    match op % 16 {
        0 | 1 => format!("mov %r{ra}, %r{rb}"),
        2 | 3 => format!("add %r{ra}, {}", imm % 72 - 8),
        4 => format!("add %r{ra}, %r{rb}"),
        5..=7 => format!(
            "ldx{} %r{ra}, [%r{}{:+}]",
            SIZES[(imm as usize >> 8) % 4],
            ptr(b),
            imm % 70 - 6
        ),
        8 => format!(
            "stx{} [%r{}{:+}], %r{ra}",
            SIZES[(imm as usize >> 8) % 4],
            ptr(b),
            imm % 70 - 6
        ),
        9 => format!("{} %r{ra}, %r{rb}, +{fwd}", CMP[imm as usize % 4]),
        // A bounds check of a pointer plus a constant against `data_end` (or whatever r8 holds
        // now), either way round.
        10 => {
            let p = ptr(b);
            let k = imm.rem_euclid(64);
            let check = match (imm >> 6) & 3 {
                0 => format!("jgt %r{ra}, %r8, +{fwd}"),
                1 => format!("jge %r{ra}, %r8, +{fwd}"),
                2 => format!("jlt %r8, %r{ra}, +{fwd}"),
                _ => format!("jle %r8, %r{ra}, +{fwd}"),
            };
            // An access through the pointer right after, inside the checked bytes or not.
            let size = SIZES[(imm as usize >> 8) % 4];
            let at = (b as i64 * 7) % 70 - 4;
            format!("mov %r{ra}, %r{p}\nadd %r{ra}, {k}\n{check}\nldx{size} %r{ra}, [%r{p}{at:+}]")
        }
        11 => format!("and %r{ra}, {}", imm & 0xff),
        12 => format!("lsh %r{ra}, {}", imm & 3),
        13 => format!("ldxw %r{ra}, [%r6+{}]", if imm & 1 == 0 { 0 } else { 4 }),
        14 if imm & 1 == 0 => format!(
            "stxdw [%r10-{}], %r{ra}",
            8 * (1 + (imm >> 1).rem_euclid(4))
        ),
        14 => format!(
            "ldxdw %r{ra}, [%r10-{}]",
            8 * (1 + (imm >> 1).rem_euclid(4))
        ),
        // Moves `data` by 0-3 bytes (clobbering r0-r5, as calls do).
        _ => format!("mov %r1, {}\ncall 7", imm & 3),
    }
}

/// A loop over the packet by an index (clang's shape of `for (i = 0; i < n; i += step)` over
/// `data + i`, the index a count for the proofs): the pointer checked against `data_end` (or
/// what r8 holds) `k` bytes on, then an access through it, inside the checked bytes or not.
/// One loop in two steps its index otherwise: by more than a count's step, by doubling, or
/// down (`i - 1` from 0 is the largest integer, `data + i` then the byte before `data`), none
/// of which may leave a proof.
fn counted_loop(a: u8, b: u8, imm: i16) -> String {
    let i = 1 + a % 5;
    let t = i % 5 + 1;
    let p = ptr(b) % 10;
    let p = if p == i || p == t { 7 } else { p };
    let k = 1 + imm.rem_euclid(8);
    let size = SIZES[(imm as usize >> 4) % 4];
    let at = (imm >> 6).rem_euclid(6) - 1;
    let step = 1 + (imm >> 9).rem_euclid(4);
    let n = 8 + (b as i64 * 3) % 64;
    let steps: &[String] = &match (a >> 3) % 8 {
        0..=3 => vec![format!("add %r{i}, {step}")],
        4 => vec![format!("add %r{i}, %r{i}"), format!("add %r{i}, 1")],
        5 => vec![format!("lsh %r{i}, 1"), format!("add %r{i}, 1")],
        6 => vec![format!("add %r{i}, 70000")],
        _ => vec![format!("add %r{i}, -1")],
    };
    let cond = if a & 1 == 0 { "jlt" } else { "jne" };
    let mut body = vec![
        format!("mov %r{t}, %r{p}"),
        format!("add %r{t}, %r{i}"),
        format!("mov %r0, %r{t}"),
        format!("add %r0, {k}"),
        format!("jgt %r0, %r8, +{}", 2 + steps.len()),
        format!("ldx{size} %r0, [%r{t}{at:+}]"),
    ];
    body.extend(steps.iter().cloned());
    let back = body.len() + 1;
    format!(
        "mov %r{i}, 0\n{}\n{cond} %r{i}, {n}, -{back}",
        body.join("\n")
    )
}

fn program() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<i16>()),
        4..36,
    )
    .prop_map(|ops| {
        let n = ops.len();
        // The body's forward jumps land on a line or on the exit (which each line counts).
        let mut src = String::from(
            "mov %r6, %r1\nldxw %r7, [%r6+0]\nldxw %r8, [%r6+4]\nmov %r9, %r7\nmov %r0, 0\n\
             stxdw [%r10-8], %r0\nstxdw [%r10-16], %r0\nstxdw [%r10-24], %r0\nstxdw [%r10-32], %r0\n",
        );
        // Instructions of the body so far: a backward jump lands on one of them.
        let mut emitted = 0usize;
        for (k, &(op, a, b, imm)) in ops.iter().enumerate() {
            // One line in sixteen a loop's back edge (the budget ends a runaway one under both
            // engines alike); several-instruction lines make a forward jump land earlier than
            // its line count, never past the exit.
            let l = if op % 32 == 30 {
                counted_loop(a, b, imm)
            } else if op % 32 == 31 && emitted > 0 {
                let back = 1 + (imm.unsigned_abs() as usize % emitted);
                format!(
                    "{} %r{}, %r{}, -{back}",
                    CMP[a as usize % 4],
                    reg(a),
                    reg(b)
                )
            } else {
                line(op, a, b, imm, k, n)
            };
            emitted += l.lines().count();
            src.push_str(&l);
            src.push('\n');
        }
        src.push_str("exit");
        src
    })
}

/// 2,000 cases in optimised builds, 200 in debug ones; BPFSIM_DIFF_CASES overrides.
fn cases() -> u32 {
    std::env::var("BPFSIM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 200 } else { 2_000 })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn proven_accesses_stay_in_the_packet(
        src in program(),
        lie in prop_oneof![3 => Just(0u64), 1 => 1u64..64, 1 => Just(1 << 20)],
        writable in any::<bool>(),
    ) {
        let make = move |p: u64, _: u64, n: usize| Pkt {
            data: p,
            end: p + n as u64 + lie,
            cell: false,
        };
        let prog = Program::new(assemble(&src).unwrap()).unwrap();
        let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
        // Every length up to past the farthest access: a proof one byte too generous shows
        // at the length where the access ends one byte past the packet.
        for len in 0..=76 {
            let packet: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let [i, j] = both_compiled(&prog, &jit, &src, &packet, writable, &make);
            prop_assert_eq!(i, j, "len {}: {}", len, src);
        }
    }
}

/// The generator's programs do give the JIT proofs to use (else the property says little).
#[test]
fn generated_programs_have_proven_accesses() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut with, mut accesses, mut counted) = (0, 0, 0);
    for _ in 0..500 {
        let src = program().new_tree(&mut runner).unwrap().current();
        let prog = Program::new(assemble(&src).unwrap()).unwrap();
        let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
        let proven = jit.bounds_proven();
        with += !proven.is_empty() as u32;
        accesses += proven.len();
        counted += (jit.budget_max() != u64::MAX) as u32;
    }
    assert!(with >= 50, "{with} of 500 programs with a proven access");
    // Some proofs rest on a loop's index (`counted_loop`).
    assert!(
        counted >= 10,
        "{counted} of 500 programs with a proof through an index"
    );
    eprintln!(
        "{with} of 500 programs with a proven access, {accesses} accesses, {counted} through \
         an index"
    );
}
