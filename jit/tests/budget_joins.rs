//! The budget across many joins: a function with more joins than `budget::MANY_JOINS` takes
//! its count off with additions outside loops, one with fewer with subtractions. Either way a
//! run stops where the interpreter stops, at every budget.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{Executable, Interpreter, NoHelpers, Program, Vm};

fn run(e: &dyn Executable, r1: u64, budget: u64) -> bpfsim_vm::Outcome {
    let mut vm = Vm::default();
    let mut mem = vm.memory();
    e.execute(&mut mem, &mut NoHelpers, [r1, 0, 0, 0, 0], budget)
}

/// `joins` if-then blocks, each skipped or not by a bit of `r1`, with a loop in the middle
/// whose back edge keeps its subtraction.
fn if_thens(joins: u32) -> String {
    let mut src = String::from("mov %r0, 0\nmov %r2, %r1\n");
    for i in 0..joins {
        src.push_str(&format!(
            "add %r0, {i}\nrsh %r2, 1\njset %r2, 1, +2\nadd %r0, 3\nxor %r0, %r2\n"
        ));
        if i == joins / 2 {
            src.push_str("mov %r3, %r1\nand %r3, 7\nadd %r0, 1\nadd %r3, -1\njsgt %r3, 0, -3\n");
        }
    }
    src.push_str("exit\n");
    src
}

#[test]
fn many_joins_and_few_stop_where_the_interpreter_does() {
    for joins in [40, 60, 130] {
        let src = if_thens(joins);
        let prog = Program::new(assemble(&src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        for r1 in [0u64, 0x5555_5555_5555_5555, u64::MAX, 0x1234_5678_9abc_def1] {
            let full = run(&interp, r1, 1 << 20);
            assert!(full.result.is_ok(), "{joins} joins, r1 {r1:#x}: {full:?}");
            for budget in (0..=full.insns + 1).chain([1 << 20]) {
                assert_eq!(
                    run(&jit, r1, budget),
                    run(&interp, r1, budget),
                    "{joins} joins, r1 {r1:#x}, budget {budget}"
                );
            }
        }
    }
}
