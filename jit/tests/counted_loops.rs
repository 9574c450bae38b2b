//! Loops whose budget is checked once on entry for every trip they can make
//! ([`JitProgram::counted_loops`]): which loops qualify, and runs at every budget around what
//! they take giving the interpreter's result, count and budget trap.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{Executable, Interpreter, NoHelpers, Program, Vm};

fn program(src: &str) -> Program {
    Program::new(assemble(src).unwrap()).unwrap()
}

/// One run of `e` with no arguments and `budget`.
fn run(e: &dyn Executable, budget: u64) -> bpfsim_vm::Outcome {
    let mut vm = Vm::default();
    let mut mem = vm.memory();
    e.execute(&mut mem, &mut NoHelpers, [0; 5], budget)
}

/// Every budget from 0 to past what the run takes, and a large one: the JIT's outcome (result,
/// trap and its pc, instructions counted) is the interpreter's. Returns the instructions the
/// run takes with the large budget.
fn budgets_agree(prog: &Program, src: &str) -> u64 {
    let jit = JitProgram::compile(prog).unwrap();
    let interp = Interpreter::new(prog);
    let full = run(&interp, 1 << 20);
    assert!(full.result.is_ok(), "{src}: {full:?}");
    for budget in (0..=full.insns + 2).chain([1 << 20]) {
        assert_eq!(
            run(&jit, budget),
            run(&interp, budget),
            "budget {budget}:\n{src}"
        );
    }
    full.insns
}

fn counted(src: &str) -> Vec<usize> {
    JitProgram::compile(&program(src)).unwrap().counted_loops()
}

/// clang's shapes, each counted: down to zero with a jump over the back edge or as the back
/// edge itself, up to a constant with `<`, `!=` or a jump over the back edge; with an early
/// exit too.
#[test]
fn counted_shapes_run_as_the_interpreter_at_every_budget() {
    let shapes = [
        // Down: `jeq r, 0, +1; ja head`.
        "mov %r0, 0\nmov %r1, 5\nadd %r0, 3\nxor %r0, %r1\nadd %r1, -1\njeq %r1, 0, +1\nja -5\nexit",
        // Down: `jne r, 0, head`, with `sub`.
        "mov %r0, 1\nmov %r2, 7\nlsh %r0, 1\nadd %r0, %r2\nsub %r2, 1\njne %r2, 0, -4\nexit",
        // Up: `jlt r, k, head`.
        "mov %r0, 0\nmov %r3, 2\nadd %r0, %r3\nadd %r3, 1\njlt %r3, 9, -3\nexit",
        // Up: `jne r, k, head`.
        "mov %r0, 0\nmov %r3, 0\nadd %r0, 2\nadd %r3, 1\njne %r3, 6, -3\nexit",
        // Up: `jge r, k, +1; ja head`, and a branch inside.
        "mov %r0, 0\nmov %r4, 1\njgt %r0, 10, +1\nadd %r0, 4\nadd %r4, 1\njge %r4, 8, +1\nja -5\nexit",
        // Down, with an early exit out of the loop.
        "mov %r0, 0\nmov %r1, 50\nadd %r0, 1\njeq %r0, 9, +2\nadd %r1, -1\njne %r1, 0, -4\nexit",
    ];
    for src in shapes {
        let prog = program(src);
        let jit = JitProgram::compile(&prog).unwrap();
        assert_eq!(jit.counted_loops(), vec![2], "{src}");
        assert!(budgets_agree(&prog, src) > 10, "{src}");
    }
}

/// One trip (down from 1, up from k - 1) and the largest trip counts still counted.
#[test]
fn edge_trip_counts() {
    for src in [
        "mov %r0, 0\nmov %r1, 1\nadd %r0, 3\nadd %r1, -1\njne %r1, 0, -3\nexit",
        "mov %r0, 0\nmov %r1, 8\nadd %r0, 3\nadd %r1, 1\njlt %r1, 9, -3\nexit",
    ] {
        assert_eq!(counted(src), vec![2], "{src}");
        budgets_agree(&program(src), src);
    }
    // 2^40 trips of 3 instructions: counted (the check asks 3 * 2^40), and handed to the
    // interpreter at the head by any budget below that, which stops where it would have.
    let big = "mov %r0, 0\nlddw %r1, 0x10000000000\nadd %r0, 1\nadd %r1, -1\njne %r1, 0, -3\nexit";
    assert_eq!(counted(big), vec![3]);
    let prog = program(big);
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    for budget in [0, 3, 4, 100, 1001] {
        assert_eq!(run(&jit, budget), run(&interp, budget), "budget {budget}");
    }
}

/// Loops whose trips the shape does not bound are checked at every trip, as before, and still
/// run as the interpreter does.
#[test]
fn other_loops_are_not_counted() {
    let not = [
        // Down from 0: 2^64 - 1 trips.
        "mov %r0, 0\nmov %r1, 0\nadd %r0, 1\nadd %r1, -1\njeq %r0, 20, +1\njne %r1, 0, -4\nexit",
        // Up from past the bound.
        "mov %r0, 0\nmov %r1, 12\nadd %r0, 1\nadd %r1, 1\njeq %r0, 20, +1\njne %r1, 9, -4\nexit",
        // A step of two.
        "mov %r0, 0\nmov %r1, 10\nadd %r0, 1\nadd %r1, -2\njne %r1, 0, -3\nexit",
        // A second write of the counter.
        "mov %r0, 0\nmov %r1, 10\nadd %r0, 1\nmov %r1, 3\nadd %r1, -1\njne %r1, 0, -4\nexit",
        // The counter stepped after the test (in another block).
        "mov %r0, 0\nmov %r1, 10\njeq %r1, 0, +3\nadd %r0, 1\nadd %r1, -1\nja -4\nexit",
        // A 32-bit test.
        "mov %r0, 0\nmov %r1, 10\nadd %r0, 1\nadd %r1, -1\njne32 %r1, 0, -3\nexit",
        // The counter's start not a constant of the entry's block.
        "mov %r0, 0\nmov %r1, %r2\nadd %r0, 1\nadd %r1, -1\njeq %r0, 20, +1\njne %r1, 0, -4\nexit",
        // A second entry: a jump to the head from before it.
        "mov %r0, 0\nmov %r1, 4\njeq %r2, 0, +0\nja +0\nadd %r0, 1\nadd %r1, -1\njne %r1, 0, -3\nexit",
        // A jump into the loop's body from outside.
        "mov %r0, 0\nmov %r1, 4\njeq %r2, 1, +2\nadd %r0, 1\nadd %r0, 1\nadd %r1, -1\njne %r1, 0, -4\nexit",
        // Compared with a register.
        "mov %r0, 0\nmov %r1, 4\nmov %r2, 0\nadd %r0, 1\nadd %r1, -1\njne %r1, %r2, -3\nexit",
    ];
    for src in not {
        let prog = program(src);
        let jit = JitProgram::compile(&prog).unwrap();
        let heads = jit.counted_loops();
        assert!(heads.is_empty(), "{src}: counted {heads:?}");
        let interp = Interpreter::new(&prog);
        for budget in (0..60).chain([1 << 20]) {
            assert_eq!(
                run(&jit, budget),
                run(&interp, budget),
                "budget {budget}:\n{src}"
            );
        }
    }
}

/// A nested loop: the inner one counted (its entry checks for all its trips at every trip of
/// the outer one), the outer one not (it holds another loop).
#[test]
fn in_nested_loops_only_the_inner_one_is_counted() {
    let src = "mov %r0, 0\nmov %r6, 3\nmov %r1, 4\nadd %r0, 1\nadd %r1, -1\njne %r1, 0, -3\nadd %r6, -1\njne %r6, 0, -6\nexit";
    assert_eq!(counted(src), vec![3]);
    budgets_agree(&program(src), src);
}
