//! `JitProgram::run` keeps the last program's run context per thread: runs of programs taking
//! turns, of a program moved after a run, of one compiled where a dropped one lived, and on
//! memory of another length, each give the interpreter's outcome.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{Executable, Interpreter, NoHelpers, Program, Vm};

/// A program that sums the first `n` bytes of its memory (`r1`, length in `r2`), checked.
fn summing(n: usize, plus: i32) -> Program {
    let mut src = String::from("mov %r0, 0\n");
    for i in 0..n {
        src.push_str(&format!("ldxb %r3, [%r1+{i}]\nadd %r0, %r3\n"));
    }
    src.push_str(&format!("add %r0, {plus}\nexit\n"));
    Program::new(assemble(&src).unwrap()).unwrap()
}

fn run(e: &dyn Executable, buf: &mut [u8]) -> bpfsim_vm::Outcome {
    let mut vm = Vm::default();
    let mut mem = vm.memory();
    let len = buf.len() as u64;
    let a = mem.map_mut(buf).unwrap();
    e.execute(&mut mem, &mut NoHelpers, [a, len, 0, 0, 0], 1000)
}

#[test]
fn runs_that_take_turns_move_or_replace_a_program_agree() {
    let (pa, pb) = (summing(4, 1), summing(8, 2));
    let a = JitProgram::compile(&pa).unwrap();
    let b = JitProgram::compile(&pb).unwrap();
    let (ia, ib) = (Interpreter::new(&pa), Interpreter::new(&pb));
    let mut bufs: Vec<Vec<u8>> = vec![vec![1; 16], vec![2; 6], vec![3; 4], vec![9; 2], vec![5; 64]];
    for round in 0..3 {
        for buf in bufs.iter_mut() {
            assert_eq!(
                run(&a, buf),
                run(&ia, buf),
                "a, round {round}, {} bytes",
                buf.len()
            );
            assert_eq!(
                run(&b, buf),
                run(&ib, buf),
                "b, round {round}, {} bytes",
                buf.len()
            );
        }
    }
    // Moved after its runs: the kept context names the old place of its runtime.
    let moved = vec![a];
    for buf in bufs.iter_mut() {
        assert_eq!(
            run(&moved[0], buf),
            run(&ia, buf),
            "moved, {} bytes",
            buf.len()
        );
    }
    // Dropped, and another compiled (perhaps where it lived).
    drop(moved);
    drop(b);
    let pc = summing(2, 3);
    let c = JitProgram::compile(&pc).unwrap();
    let ic = Interpreter::new(&pc);
    for buf in bufs.iter_mut() {
        assert_eq!(run(&c, buf), run(&ic, buf), "c, {} bytes", buf.len());
    }
}
