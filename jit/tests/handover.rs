//! The hand-over to the interpreter after a helper's callbacks spent the budget: the registers
//! it carries.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

/// `bpf_map_lookup_elem` (helper 1) and helper 181 as `bpf_loop`, three calls of the function
/// in `r1` with the context in `r2`: both through the shims' own paths (the lookup's passes
/// two registers, the generic one five).
struct LookupLoops;

impl Host for LookupLoops {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            1 | 181 => Err(HelperStop::Loop {
                func: args[0],
                iterations: 3,
                ctx: args[1],
            }),
            _ => Err(HelperStop::Unknown),
        }
    }
}

/// The hand-over after callbacks carries only the registers some path after the call reads
/// before writing them: the code stores no other (a register written first, one the call's
/// result replaces), and a register read on one path only is carried. At every budget, through
/// both shims, the interpreter's result, count and memory.
#[test]
fn callbacks_that_spend_the_budget_hand_over_the_registers_read_after() {
    let after = "mov %r6, %r0\n\
                 mov %r4, %r7\n\
                 jeq %r9, 0, +3\n\
                 add %r0, %r8\n\
                 add %r0, %r3\n\
                 add %r0, 1\n\
                 stxdw [%r9+0], %r6\n\
                 stxdw [%r9+8], %r4\n\
                 stxdw [%r9+16], %r0\n\
                 mov %r3, 5\n\
                 mov %r5, %r3\n\
                 stxdw [%r9+24], %r5\n";
    for (call, args) in [
        ("call 1", "lddw %r1, func cb\nmov %r2, 17\n"),
        ("call 181", "lddw %r1, func cb\nmov %r2, 5\n"),
    ] {
        let src = format!(
            "mov %r9, %r1\nmov %r3, 0x33\nmov %r4, 0x44\nmov %r5, 0x55\nmov %r6, 6\n\
             mov %r7, 0x700\nmov %r8, 0x8000\n{args}{call}\n{after}mov %r0, 1\nexit\n\
             cb:\nmov %r0, %r1\nadd %r0, %r2\nmov %r6, %r0\nmul %r6, 7\nmov %r0, 0\nexit"
        );
        let prog = Program::new(assemble(&src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        vm.budget = 100_000;
        let full = vm.run_with_memory(&interp, &mut LookupLoops, &mut [0u8; 32]);
        assert!(full.result.is_ok(), "{full:?}");
        for budget in 0..=full.insns + 8 {
            vm.budget = budget;
            let mut m1 = [0u8; 32];
            let a = vm.run_with_memory(&interp, &mut LookupLoops, &mut m1);
            let mut m2 = [0u8; 32];
            let b = jit.run_with_memory(&mut vm, &mut LookupLoops, &mut m2);
            assert_eq!(a, b, "{call}, budget {budget}");
            assert_eq!(m1, m2, "{call}: memory at budget {budget}");
        }
    }
}

/// The hand-over at a loop's head when the budget cannot pay for the next iteration carries
/// only the registers read from there on: one written first in the loop, one written in the
/// loop before the exit path reads it, and one read on one path of the loop only (carried).
/// At every budget, the interpreter's result, count and memory.
#[test]
fn a_checkpoint_hands_over_the_registers_read_after() {
    let src = "mov %r9, %r1
mov %r6, 0x66
mov %r7, 5
mov %r8, 0x88
mov %r3, 0x33
mov %r0, 0
loop:
mov %r6, %r7
add %r0, %r6
jne %r7, 2, +1
add %r0, %r3
mov %r8, %r0
stxdw [%r9+0], %r8
sub %r7, 1
jne %r7, 0, loop
add %r0, %r8
stxdw [%r9+8], %r0
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    vm.budget = 100_000;
    let full = vm.run_with_memory(&interp, &mut LookupLoops, &mut [0u8; 16]);
    assert!(full.result.is_ok(), "{full:?}");
    for budget in 0..=full.insns + 4 {
        vm.budget = budget;
        let mut m1 = [0u8; 16];
        let a = vm.run_with_memory(&interp, &mut LookupLoops, &mut m1);
        let mut m2 = [0u8; 16];
        let b = jit.run_with_memory(&mut vm, &mut LookupLoops, &mut m2);
        assert_eq!(a, b, "budget {budget}");
        assert_eq!(m1, m2, "memory at budget {budget}");
    }
}
