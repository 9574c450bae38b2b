//! Random programs with local calls, verified, run under the JIT with the verifier's hints
//! (frames zeroed where reached, `Verdict::frame_bytes`; stack places, `Verdict::stack_at`)
//! against the interpreter: reads of stack never written (a privileged program may make them)
//! in every frame, through `r10` and through a pointer into the caller's frame, on paths the
//! packet picks (so that the verifier prunes some), after a call that left its frame dirty, and
//! again in the next runs.

use bpfsim_helpers::run::{Input, RunResult, Runner};
use bpfsim_helpers::Env;
use bpfsim_verifier::{verify, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::{Executable, Interpreter, Program};
use proptest::prelude::*;

const PACKET: [u8; 20] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6, 0, 1, 8, 0, 6, 4];

/// One line of the main program: its frame through `r10` (256 bytes), a call with a pointer
/// into its frame, a branch on the packet's byte (`r7`) over the next line.
fn main_line(op: u8, a: u16, b: i32) -> String {
    let off = 8 * (1 + a as i64 % 32);
    match op % 6 {
        0 => format!("stxdw [%r10-{off}], %r7"),
        1 => format!("stdw [%r10-{off}], {b}"),
        2 => format!("ldxdw %r0, [%r10-{off}]\nadd %r8, %r0"),
        // A branch skips a line's first instruction only: whatever it skips leaves every
        // register the rest reads initialised.
        3 => format!(
            "mov %r2, {b}\nmov %r1, %r10\nadd %r1, -{}\ncall local sub{}\nadd %r8, %r0\nmov %r2, 0",
            if a & 1 == 0 { 64 } else { 128 },
            b & 1
        ),
        4 => format!("jeq %r7, {}, +1", a % 4),
        _ => format!("mov %r7, {}", b % 4),
    }
}

/// One line of a subprogram: its own frame (128 bytes), the caller's through `r1` (at least 64
/// bytes below the caller's `r10`), a branch on its argument `r2`; `r6` (callee-saved, the
/// caller's restored at the exit) sums what it reads.
fn sub_line(op: u8, a: u16, b: i32) -> String {
    let own = 8 * (1 + a as i64 % 16);
    let caller = 8 * (a as i64 % 8);
    match op % 6 {
        0 => format!("stxdw [%r10-{own}], %r2"),
        1 => format!("ldxdw %r0, [%r10-{own}]\nadd %r6, %r0"),
        2 => format!("ldxdw %r0, [%r1+{caller}]\nadd %r6, %r0"),
        3 => format!("stxdw [%r1+{caller}], %r6"),
        4 => format!("jeq %r2, {}, +1", b % 3),
        _ => format!("add %r2, {}", b % 5),
    }
}

fn program() -> impl Strategy<Value = String> {
    let lines = |n| proptest::collection::vec((any::<u8>(), any::<u16>(), any::<i32>()), 1..n);
    (lines(24), lines(12), lines(12), any::<bool>()).prop_map(|(main, s0, s1, nested)| {
        let mut src = String::from(
            "mov %r6, %r1
mov %r8, 0
mov %r7, 0
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 15
jgt %r4, %r3, +1
ldxb %r7, [%r2+14]
mov %r0, 0
call local fill
mov %r2, 0
",
        );
        for (op, a, b) in main {
            src.push_str(&main_line(op, a, b));
            src.push('\n');
        }
        // Each subprogram called at least once (the verifier refuses unreachable code).
        for sub in ["sub0", "sub1"] {
            src.push_str(&format!(
                "mov %r2, %r7\nmov %r1, %r10\nadd %r1, -128\ncall local {sub}\nadd %r8, %r0\nmov %r2, 0\n"
            ));
        }
        src.push_str("mov %r0, %r8\nexit\nfill:\n");
        for k in 1..=16 {
            src.push_str(&format!("stdw [%r10-{}], {}\n", 8 * k, 0x1111 * k));
        }
        src.push_str("mov %r0, 0\nexit\n");
        for (name, body) in [("sub0", s0), ("sub1", s1)] {
            src.push_str(&format!("{name}:\nmov %r6, 0\nmov %r0, 0\n"));
            for (op, a, b) in body {
                src.push_str(&sub_line(op, a, b));
                src.push('\n');
            }
            if nested && name == "sub0" {
                // `sub1` then runs at two depths: no static depths, no stack places.
                src.push_str("mov %r2, %r6\nmov %r1, %r10\nadd %r1, -64\ncall local sub1\nadd %r6, %r0\n");
            }
            src.push_str("mov %r0, %r6\nexit\n");
        }
        src
    })
}

fn runs(engine: &dyn Executable) -> Vec<RunResult> {
    let mut r = Runner::new(Env::default());
    r.set_timing(false);
    let mut out = Vec::new();
    for b in [0u8, 1, 2, 3, 2, 0] {
        let mut packet = PACKET;
        packet[14] = b;
        out.push(
            r.run_repeat(engine, ProgType::Xdp, &packet, Input::default(), 2)
                .unwrap(),
        );
    }
    out.push(
        r.run_repeat(engine, ProgType::Xdp, &PACKET[..14], Input::default(), 2)
            .unwrap(),
    );
    out
}

fn both(src: &str) -> Result<(), TestCaseError> {
    let insns = assemble(src).map_err(|e| TestCaseError::fail(format!("{e:?}\n{src}")))?;
    let verdict = verify(&insns, &Options::new(ProgType::Xdp));
    prop_assert!(verdict.accepted, "{:?}\n{}", verdict.error, src);
    let hints = bpfsim_helpers::tier::verdict_hints(verdict);
    let prog = Program::new(insns).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints)
        .map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
    let want = runs(&Interpreter::new(&prog));
    prop_assert_eq!(runs(&jit), want, "{}", src);
    Ok(())
}

/// 500 cases in optimised builds, 100 in debug ones; BPFSIM_DIFF_CASES overrides.
fn cases() -> u32 {
    std::env::var("BPFSIM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 100 } else { 500 })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn hinted_frames_match_the_interpreter(src in program()) {
        both(&src)?;
    }
}
