//! The baseline tier on what its translation hands to the interpreter or treats apart: writes to
//! r10, r10 as an operand, the stack around the frame, `callx`, division by zero; each run under
//! the interpreter and the baseline tier at every budget, with the same outcome and memory.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{ConformanceHost, Interpreter, Program, Vm};

fn alike(prog: &Program, what: &str) {
    let base = JitProgram::compile_baseline(prog).unwrap_or_else(|e| panic!("{what}: {e}"));
    let interp = Interpreter::new(prog);
    let mut vm = Vm::default();
    vm.budget = 10_000;
    let init: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(29)).collect();
    let full = vm.run_with_memory(&interp, &mut ConformanceHost, &mut init.clone());
    for budget in (0..=full.insns + 1).chain([10_000]) {
        vm.budget = budget;
        let mut m1 = init.clone();
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        let mut m2 = init.clone();
        let b = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
        assert_eq!(a, b, "{what} at budget {budget}");
        assert_eq!(m1, m2, "{what}: memory at budget {budget}");
    }
}

fn src(s: &str) -> Program {
    Program::new(assemble(s).unwrap()).unwrap()
}

#[test]
fn edges_of_the_translation_agree() {
    let cases = [
        // r10 written (the interpreter allows it), then used as an address and a value.
        "mov %r10, %r1\nldxb %r0, [%r10+3]\nexit",
        "stdw [%r10-8], 9\nmov %r2, %r10\nadd %r2, -8\nldxdw %r0, [%r2+0]\nadd %r0, %r10\nexit",
        // r10 on either side of a compare and in ALU sources.
        "mov %r0, 0\njgt %r10, %r1, +1\nmov %r0, 1\njne %r1, %r10, +1\nadd %r0, 2\nexit",
        "mov %r0, %r10\nrsh %r0, 32\nmov %r3, 3\nlsh %r3, %r10\nadd %r0, %r3\nexit",
        // The stack: a constant offset below the frame, above it, and the frame's ends.
        "stb [%r10-513], 1\nexit",
        "ldxb %r0, [%r10+0]\nexit",
        "stb [%r10-512], 7\nldxb %r0, [%r10-512]\nstdw [%r10-8], 3\nldxdw %r2, [%r10-8]\nadd %r0, %r2\nexit",
        // callx: a helper by register, and an unknown one.
        "mov %r1, 9\nmov %r2, 5\ncall %r2\nexit",
        "mov %r2, 99\ncall %r2\nexit",
        // Division and modulo by zero and INT_MIN / -1, both widths.
        "lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nmov %r2, 0\nmod %r1, %r2\n\
         add %r0, %r1\nmov32 %r3, 7\nsmod32 %r3, %r2\nadd %r0, %r3\ndiv32 %r3, 0\nadd %r0, %r3\nexit",
    ];
    for s in cases {
        alike(&src(s), s);
    }
}
