//! Shifts by a constant inside a loop take their amount from a register loaded on the loop's
//! entry edge (`gen/shifts.rs`), for BMI2's three-operand shifts: which loops and shifts do,
//! and every run giving the interpreter's result, count and trap at every budget.

use bpfsim_jit::{CompileOptions, Hints, JitProgram};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{Executable, Interpreter, NoHelpers, Program, Vm};

fn program(src: &str) -> Program {
    Program::new(assemble(src).unwrap()).unwrap()
}

fn run(e: &dyn Executable, args: [u64; 5], budget: u64) -> bpfsim_vm::Outcome {
    let mut vm = Vm::default();
    let mut mem = vm.memory();
    e.execute(&mut mem, &mut NoHelpers, args, budget)
}

/// The JIT's outcome is the interpreter's for each argument in `r1`, at every budget up to
/// past what the run takes and at a large one.
fn agrees(src: &str) {
    let prog = program(src);
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    for seed in [
        0u64,
        1,
        0x8000_0000_0000_0001,
        0x0123_4567_89ab_cdef,
        u64::MAX,
    ] {
        let args = [seed, 0, 0, 0, 0];
        let full = run(&interp, args, 1 << 20);
        assert!(full.result.is_ok(), "{src}: {full:?}");
        for budget in (0..=full.insns + 2).chain([1 << 20]) {
            assert_eq!(
                run(&jit, args, budget),
                run(&interp, args, budget),
                "seed {seed:#x}, budget {budget}:\n{src}"
            );
        }
    }
}

/// The text of the host instructions generated for the shifts of `src`, in code order.
fn shift_insns(src: &str) -> Vec<String> {
    let opts = CompileOptions {
        listing: true,
        ..Default::default()
    };
    let jit = JitProgram::compile_opts(&program(src), &Hints::default(), &opts).unwrap();
    jit.listing()
        .unwrap()
        .insns
        .iter()
        .filter(|i| i.text.starts_with("sh") || i.text.starts_with("sa"))
        .map(|i| i.text.clone())
        .collect()
}

fn three_operand(texts: &[String]) -> usize {
    texts
        .iter()
        .filter(|t| t.starts_with("shlx") || t.starts_with("shrx") || t.starts_with("sarx"))
        .count()
}

fn host_has_bmi2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// xorshift64 ten times, the shape of `test-vectors/bench/loop_xorshift`.
const XORSHIFT: &str = "mov %r0, %r1\nmov %r2, 10\n\
    mov %r3, %r0\nlsh %r3, 13\nxor %r0, %r3\n\
    mov %r3, %r0\nrsh %r3, 7\nxor %r0, %r3\n\
    mov %r3, %r0\nlsh %r3, 17\nxor %r0, %r3\n\
    add %r2, -1\njne %r2, 0, -11\nexit";

#[test]
fn a_loops_shifts_by_constants_use_three_operand_shifts() {
    let texts = shift_insns(XORSHIFT);
    if host_has_bmi2() {
        assert_eq!(three_operand(&texts), 3, "{texts:?}");
    } else {
        assert_eq!(three_operand(&texts), 0, "{texts:?}");
    }
    agrees(XORSHIFT);
}

#[test]
fn widths_kinds_and_edge_amounts_run_as_the_interpreter() {
    for body in [
        // 32-bit shifts: the amount masked to 5 bits as the immediate would be.
        "lsh32 %r3, 5\nrsh32 %r3, 31\narsh32 %r3, 1",
        // 64-bit, amounts 0 and 63, arithmetic.
        "lsh %r3, 0\narsh %r3, 63\nrsh %r3, 1",
        // More distinct amounts than a loop holds: the least used keep the immediate.
        "lsh %r3, 1\nlsh %r3, 1\nrsh %r3, 2\nrsh %r3, 2\narsh %r3, 3\narsh %r3, 3\nlsh %r3, 4",
    ] {
        let src = format!(
            "mov %r0, %r1\nmov %r2, 6\nmov %r3, %r0\n{body}\nxor %r0, %r3\nadd %r0, 0x1234567\n\
             add %r2, -1\njne %r2, 0, -{}\nexit",
            body.lines().count() + 5
        );
        agrees(&src);
    }
    // Four amounts: three held, the fourth (used once) an immediate.
    let src = "mov %r0, %r1\nmov %r2, 6\nmov %r3, %r0\nlsh %r3, 1\nlsh %r3, 1\nrsh %r3, 2\n\
        rsh %r3, 2\narsh %r3, 3\narsh %r3, 3\nlsh %r3, 4\nxor %r0, %r3\nadd %r2, -1\n\
        jne %r2, 0, -11\nexit";
    if host_has_bmi2() {
        assert_eq!(three_operand(&shift_insns(src)), 6);
    }
    agrees(src);
}

/// Shifts outside any loop, after one, in a loop entered by a jump, or in one with a call keep
/// their immediate.
#[test]
fn other_shifts_keep_the_immediate() {
    let after = "mov %r0, %r1\nmov %r2, 3\nlsh %r0, 3\nadd %r2, -1\njne %r2, 0, -3\n\
        mov %r3, %r0\nlsh %r3, 3\nxor %r0, %r3\nexit";
    let entered_by_jump = "mov %r0, %r1\nmov %r2, 3\nja +1\nlsh %r0, 3\nadd %r0, 1\nadd %r2, -1\n\
        jne %r2, 0, -4\nexit";
    let with_call = "mov %r6, %r1\nmov %r7, 3\nmov %r1, 0\ncall 5\nlsh %r6, 3\nadd %r7, -1\n\
        jne %r7, 0, -5\nmov %r0, %r6\nexit";
    if host_has_bmi2() {
        assert_eq!(
            three_operand(&shift_insns(after)),
            1,
            "the loop's shift only"
        );
        assert_eq!(three_operand(&shift_insns(entered_by_jump)), 0);
        assert_eq!(three_operand(&shift_insns(with_call)), 0);
    }
    agrees(after);
    agrees(entered_by_jump);
}

/// Nested loops: the outer loop's amounts serve the inner one, which loads only its own.
#[test]
fn nested_loops_share_their_amounts() {
    let src = "mov %r0, %r1\nmov %r2, 4\n\
        mov %r3, %r0\nlsh %r3, 7\nxor %r0, %r3\n\
        mov %r4, 3\n\
        mov %r3, %r0\nrsh %r3, 7\nxor %r0, %r3\n\
        mov %r3, %r0\nlsh %r3, 9\nxor %r0, %r3\n\
        add %r4, -1\njne %r4, 0, -8\n\
        add %r2, -1\njne %r2, 0, -14\nexit";
    if host_has_bmi2() {
        assert_eq!(three_operand(&shift_insns(src)), 3);
    }
    agrees(src);
}

/// clang's 32-bit extension in a loop (`lsh r, 32; rsh r, 32`, as in `parse_csum`'s loop) is
/// one instruction that takes no amount: nothing is loaded for it (regression: the amount 32
/// was loaded, unused, and changed the loop's registers).
#[test]
fn an_extension_pair_loads_no_amount() {
    let movabs = |src: &str| {
        let opts = CompileOptions {
            listing: true,
            ..Default::default()
        };
        let jit = JitProgram::compile_opts(&program(src), &Hints::default(), &opts).unwrap();
        let l = jit.listing().unwrap();
        l.insns
            .iter()
            .filter(|i| i.text.starts_with("movabs"))
            .count()
    };
    let pair = "mov %r0, 0\nmov %r4, 0\nadd %r4, 2\nmov %r5, %r4\nlsh %r5, 32\nrsh %r5, 32\n\
        add %r0, %r5\njlt %r5, 40, -6\nexit";
    assert_eq!(movabs(pair), 0);
    agrees(pair);
    if host_has_bmi2() {
        assert_eq!(movabs(XORSHIFT), 3, "one load of each amount's place");
    }
}
