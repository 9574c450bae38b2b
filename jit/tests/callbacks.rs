//! Helpers with callbacks (`bpf_loop`) under the JIT: the interpreter runs the callback with the
//! run's exact budget, so every budget, from none to enough, ends both engines at the same pc
//! with the same count, result and memory; a fault inside the callback has the callback's pc.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

/// `bpf_loop(n, callback, ctx, flags)` (helper 181) and helper 1, which returns r1 + 1.
struct LoopHost;

impl Host for LoopHost {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            181 => Err(HelperStop::Loop {
                func: args[1],
                iterations: args[0] as u32,
                ctx: args[2],
            }),
            1 => Ok(args[0].wrapping_add(1)),
            _ => Err(HelperStop::Unknown),
        }
    }
}

/// Sums i * 3 for i < 5 into the first 8 bytes of memory through the callback, and runs a few
/// more instructions after the loop in the same block, so that the budget can run out before,
/// inside and after the callbacks.
const SUM: &str = "
    mov %r6, %r1
    stdw [%r6+0], 0
    mov %r1, 5
    lddw %r2, func +10
    mov %r3, %r6
    mov %r4, 0
    call 181
    mov %r7, %r0
    ldxdw %r0, [%r6+0]
    add %r0, %r7
    mov %r1, %r0
    call 1
    exit
    mov %r3, %r1
    mul %r3, 3
    ldxdw %r4, [%r2+0]
    add %r4, %r3
    stdw [%r2+0], 0
    stxdw [%r2+0], %r4
    mov %r0, 0
    exit
";

fn both(src: &str, budget: u64) -> (bpfsim_vm::Outcome, bpfsim_vm::Outcome) {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    vm.budget = budget;
    let mut m1 = [0u8; 16];
    let a = vm.run_with_memory(&interp, &mut LoopHost, &mut m1);
    let mut m2 = [0u8; 16];
    let b = jit.run_with_memory(&mut vm, &mut LoopHost, &mut m2);
    assert_eq!(m1, m2, "memory at budget {budget}");
    (a, b)
}

#[test]
fn bpf_loop_under_the_jit() {
    let (a, b) = both(SUM, 100_000);
    // 0+3+6+9+12 = 30, plus the 5 calls bpf_loop reports, plus one from helper 1.
    assert_eq!(a.result, Ok(36));
    assert_eq!(a, b);
}

#[test]
fn every_budget_stops_both_engines_alike() {
    let (full, _) = both(SUM, 100_000);
    for budget in 0..=full.insns + 1 {
        let (a, b) = both(SUM, budget);
        assert_eq!(a, b, "budget {budget}");
    }
}

#[test]
fn a_fault_inside_the_callback_has_its_pc() {
    // The callback reads through its ctx, which is 0 here: a null dereference at the callback's
    // third instruction.
    let src = SUM.replace("mov %r3, %r6", "mov %r3, 0");
    let (a, b) = both(&src, 100_000);
    let trap = a.result.expect_err("the callback faults");
    assert_eq!(a, b);
    let cb = Program::new(assemble(&src).unwrap())
        .unwrap()
        .iter()
        .count();
    assert!(
        trap.pc > 12 && trap.pc < cb,
        "pc {} is in the callback",
        trap.pc
    );
}

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

/// When callbacks leave too little budget for the longest path after the call, the
/// interpreter takes the run over from the next instruction with every register as the code had
/// it: after each call every one of r0-r10 is stored to memory on a path shorter than the
/// longest (a jump over a tail that is never taken), so that the run can end after the
/// hand-over. Every budget, through both shims (the lookup's passes two registers, the generic
/// one five).
#[test]
fn callbacks_that_spend_the_budget_hand_over_every_register() {
    let mut after = String::new();
    for r in 0..=10 {
        after.push_str(&format!("stxdw [%r9+{}], %r{r}\n", 8 * r));
    }
    after.push_str("jne %r9, 0, +4\nadd %r0, 1\nadd %r0, 1\nadd %r0, 1\nadd %r0, 1\n");
    let src = format!(
        "mov %r9, %r1\nlddw %r3, 0x300\nlddw %r4, 0x4000\nmov %r5, 0x50\nmov %r6, 6\n\
         mov %r7, 0x700\nmov %r8, 0x8000\n\
         lddw %r1, func cb\nmov %r2, 17\ncall 1\n{after}\
         lddw %r1, func cb\nmov %r2, 5\ncall 181\n{after}exit\n\
         cb:\nmov %r0, %r1\nadd %r0, %r2\nmov %r6, %r0\nmul %r6, 7\nmov %r0, 0\nexit"
    );
    let prog = Program::new(assemble(&src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    vm.budget = 100_000;
    let full = vm.run_with_memory(&interp, &mut LookupLoops, &mut [0u8; 88]);
    assert!(full.result.is_ok(), "{full:?}");
    // Up to what the longest paths would need: the code hands over after the second call's
    // callbacks at budgets from the run's own count up, and the interpreter ends the run.
    for budget in 0..=full.insns + 8 {
        vm.budget = budget;
        let mut m1 = [0u8; 88];
        let a = vm.run_with_memory(&interp, &mut LookupLoops, &mut m1);
        let mut m2 = [0u8; 88];
        let b = jit.run_with_memory(&mut vm, &mut LookupLoops, &mut m2);
        assert_eq!(a, b, "budget {budget}");
        assert_eq!(m1, m2, "memory at budget {budget}");
    }
}
