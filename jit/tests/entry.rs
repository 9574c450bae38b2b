//! The generated entry loads only the argument registers some instruction reads, and the exit
//! of a program without local calls skips the frame test: each argument read through each kind
//! of instruction that can read it must still see the run's value, as the interpreter does.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

/// Helper 7 returns a mix of its five arguments, each weighted differently.
struct Mix;

impl Host for Mix {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            7 => Ok(args
                .iter()
                .enumerate()
                .fold(0, |acc, (i, a)| acc + a * (1 << (8 * i)))),
            _ => Err(HelperStop::Unknown),
        }
    }
}

#[test]
fn every_argument_reaches_every_reader() {
    let args = [11u64, 22, 33, 44, 55];
    let mut srcs = Vec::new();
    for i in 1..=5 {
        srcs.push(format!("mov %r0, %r{i}\nexit"));
        srcs.push(format!("mov %r0, 1\nadd %r0, %r{i}\nexit"));
        srcs.push(format!(
            "mov %r0, 1\njeq %r{i}, {}, +1\nmov %r0, 2\nexit",
            args[i - 1]
        ));
        srcs.push(format!("neg %r{i}\nmov %r0, %r{i}\nexit"));
        srcs.push(format!("stxdw [%r10-8], %r{i}\nldxdw %r0, [%r10-8]\nexit"));
    }
    // Read by the helper alone: no instruction names them, the call passes them.
    srcs.push("call 7\nexit".to_string());
    // Written before read: the argument's value must not leak through.
    srcs.push("mov %r3, 5\nmov %r0, %r3\nexit".to_string());
    // Not read at all.
    srcs.push("mov %r0, 9\nexit".to_string());
    for src in &srcs {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        let mut mem = vm.memory();
        let j = jit.run(&mut mem, &mut Mix, args, 100);
        drop(mem);
        let mut mem = vm.memory();
        let i = interp.run(&mut mem, &mut Mix, args, 100);
        drop(mem);
        assert_eq!(j, i, "{src}");
        assert!(j.result.is_ok(), "{src}: {j:?}");
        // A session's runs too (its context keeps no argument from run to run).
        let mut session = jit.session();
        for k in 0..3u64 {
            let a = args.map(|x| x + k);
            let mut mem = vm.memory();
            let s = session.run(&mut mem, &mut Mix, a, 100);
            drop(mem);
            let mut mem = vm.memory();
            let i = interp.run(&mut mem, &mut Mix, a, 100);
            drop(mem);
            assert_eq!(s, i, "{src}, run {k}");
        }
    }
}

/// A budget too short for the path from slot 0 to the first checkpoint hands the run to the
/// interpreter at slot 0, with the registers the entry set up. Every budget from none to enough,
/// through each entry (a run on a memory map, a session's, a run on raw memory), with all five
/// arguments read, stores, a helper call and a loop after the entry's straight line, ends as
/// the interpreter's run does.
#[test]
fn a_short_budget_at_entry_ends_as_the_interpreter() {
    let srcs = [
        "mov %r0, %r1\nadd %r0, %r2\nadd %r0, %r3\nadd %r0, %r4\nadd %r0, %r5\nexit",
        "stxdw [%r10-8], %r3\nmov %r0, %r4\njgt %r5, 50, +2\nldxdw %r0, [%r10-8]\nadd %r0, 1\nexit",
        "mov %r6, %r1\ncall 7\nadd %r0, %r6\nexit",
        "mov %r0, %r5\nmov %r1, 4\nloop:\nadd %r0, %r1\nsub %r1, 1\njne %r1, 0, loop\nexit",
    ];
    let args = [11u64, 22, 33, 44, 55];
    for src in srcs {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        let mut mem = vm.memory();
        let full = interp.run(&mut mem, &mut Mix, args, 1000);
        drop(mem);
        assert!(full.result.is_ok(), "{src}: {full:?}");
        let mut session = jit.session();
        for budget in (0..=full.insns + 1).chain([full.insns * 2 + 1_000]) {
            let mut mem = vm.memory();
            let i = interp.run(&mut mem, &mut Mix, args, budget);
            drop(mem);
            let mut mem = vm.memory();
            let j = jit.run(&mut mem, &mut Mix, args, budget);
            drop(mem);
            assert_eq!(j, i, "{src}, budget {budget}");
            let mut mem = vm.memory();
            let s = session.run(&mut mem, &mut Mix, args, budget);
            drop(mem);
            assert_eq!(s, i, "{src}, budget {budget}, session");
            // On raw memory: r1 and r2 are the memory's address and length.
            let mut m1 = [7u8; 16];
            vm.budget = budget;
            let a = vm.run_with_memory(&interp, &mut Mix, &mut m1);
            let mut m2 = [7u8; 16];
            let b = jit.run_with_memory(&mut vm, &mut Mix, &mut m2);
            assert_eq!(a, b, "{src}, budget {budget}, raw memory");
            assert_eq!(m1, m2, "{src}, budget {budget}, raw memory");
        }
    }
}
