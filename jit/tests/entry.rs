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
