//! Random verified programs whose `bpf_loop` callbacks (compiled as functions of their own) use
//! their own frame, the caller's through the context pointer, local calls and the loop's
//! index, stopping the loop early on paths the packet picks, run under the JIT with the
//! verifier's hints against the interpreter: results, memory, instructions counted, and every
//! budget of a few runs.

use bpfsim_helpers::run::{Input, RunResult, Runner};
use bpfsim_helpers::Env;
use bpfsim_verifier::{verify, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::{Executable, Interpreter, Program};
use proptest::prelude::*;

const PACKET: [u8; 20] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6, 0, 1, 8, 0, 6, 4];

/// One line of the callback: its own frame through `r10` (128 bytes), the caller's 64-byte
/// context through `r2`, a branch on the index (`r1`), a local call with a pointer into its
/// frame; `r6` sums what it reads.
fn cb_line(op: u8, a: u16, b: i32) -> String {
    let own = 8 * (1 + a as i64 % 16);
    let ctx = 8 * (a as i64 % 8);
    match op % 7 {
        0 => format!("stxdw [%r10-{own}], %r1"),
        1 => format!("ldxdw %r0, [%r10-{own}]\nadd %r6, %r0"),
        2 => format!("ldxdw %r0, [%r2+{ctx}]\nadd %r6, %r0"),
        3 => format!("stxdw [%r2+{ctx}], %r6"),
        4 => format!("jeq %r1, {}, +1", b % 4),
        5 => format!(
            "mov %r7, %r1\nmov %r8, %r2\nmov %r1, %r10\nadd %r1, -{}\ncall local sub\n\
             add %r6, %r0\nmov %r1, %r7\nmov %r2, %r8",
            8 * (1 + a % 8)
        ),
        _ => format!("add %r6, {}", b % 5),
    }
}

fn program() -> impl Strategy<Value = String> {
    let lines = |n| proptest::collection::vec((any::<u8>(), any::<u16>(), any::<i32>()), 1..n);
    (lines(16), 1u32..9, 0u32..9, any::<bool>()).prop_map(|(body, n, stop, twice)| {
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
",
        );
        for k in 1..=8 {
            src.push_str(&format!("stdw [%r10-{}], {}\n", 8 * k, 0x101 * k));
        }
        // The loop stops where the callback's index meets the packet's byte (`r7`), if below
        // `n`; once more from a second call site when `twice`.
        src.push_str("stxdw [%r10-64], %r7\n");
        for _ in 0..if twice { 2 } else { 1 } {
            src.push_str(&format!(
                "mov %r1, {n}\nlddw %r2, func cb\nmov %r3, %r10\nadd %r3, -64\nmov %r4, 0\n\
                 call 181\nadd %r8, %r0\n"
            ));
        }
        for k in 1..=8 {
            src.push_str(&format!("ldxdw %r0, [%r10-{}]\nadd %r8, %r0\n", 8 * k));
        }
        src.push_str("mov %r0, %r8\nexit\ncb:\nmov %r6, 0\nmov %r0, 0\nmov %r7, 0\nmov %r8, 0\n");
        for (op, a, b) in body {
            src.push_str(&cb_line(op, a, b));
            src.push('\n');
        }
        // The subprogram called at least once (the verifier refuses unreachable code).
        src.push_str(&cb_line(5, 3, 0));
        src.push('\n');
        src.push_str(&format!(
            "ldxdw %r3, [%r2+0]\nmov %r0, 0\njeq %r1, {stop}, +1\njne %r1, %r3, +1\nmov %r0, 1\n\
             stxdw [%r2+8], %r6\nexit\n\
             sub:\nldxdw %r0, [%r1+0]\nstxdw [%r10-8], %r0\nadd %r0, 3\nstxdw [%r1+0], %r0\nexit\n"
        ));
        src
    })
}

fn runs(engine: &dyn Executable, budget: Option<u64>) -> Vec<RunResult> {
    let mut r = Runner::new(Env::default());
    r.set_timing(false);
    if let Some(b) = budget {
        r.set_budget(b);
    }
    let mut out = Vec::new();
    for b in [0u8, 1, 2, 3, 5, 0] {
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
    let mut opts = Options::new(ProgType::Xdp);
    // As libbpf loads an object with BTF: the kernel takes callbacks only then.
    opts.func_info = true;
    let verdict = verify(&insns, &opts);
    prop_assert!(verdict.accepted, "{:?}\n{}", verdict.error, src);
    let hints = bpfsim_helpers::tier::verdict_hints(verdict);
    let prog = Program::new(insns).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints)
        .map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
    prop_assert_eq!(jit.compiled_callbacks().len(), 1);
    let interp = Interpreter::new(&prog);
    let want = runs(&interp, None);
    prop_assert_eq!(runs(&jit, None), want.clone(), "{}", src);
    // Budgets that run out inside the loop: before it, in its calls, after it.
    let most = want.iter().map(|r| r.insns).max().unwrap_or(0);
    for budget in [most / 3, most / 2, most * 2 / 3, most.saturating_sub(1)] {
        prop_assert_eq!(
            runs(&jit, Some(budget)),
            runs(&interp, Some(budget)),
            "budget {}\n{}",
            budget,
            src
        );
    }
    Ok(())
}

/// 300 cases in optimised builds, 60 in debug ones; BPFSIM_DIFF_CASES overrides.
fn cases() -> u32 {
    std::env::var("BPFSIM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 60 } else { 300 })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn compiled_callbacks_match_the_interpreter(src in program()) {
        both(&src)?;
    }
}
