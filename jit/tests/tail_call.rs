//! `call 12`, `bpf_tail_call`, under the JIT: answered by the host's direct method
//! ([`Host::tail_call`]) without the generic dispatch, and by `call_helper` when the host does
//! not answer, with the interpreter's result either way: a failed call goes on with its `r0`, a
//! taken one ends the run with the target, a fault traps at the call.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

/// A host whose helper 12 takes index 3 to program 9, faults on index 4 and fails otherwise
/// with `r0` the index plus the map (its direct method the same, when `direct`), counting which
/// of the two answered.
struct Tail {
    direct: bool,
    helper: u32,
    answered: u32,
}

fn answer(map: u64, index: u64) -> Result<u64, HelperStop> {
    match index {
        3 => Err(HelperStop::TailCall(9)),
        4 => Err(HelperStop::Fault),
        i => Ok(i.wrapping_add(map)),
    }
}

impl Host for Tail {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            12 => {
                self.helper += 1;
                answer(args[1], args[2])
            }
            _ => Err(HelperStop::Unknown),
        }
    }

    fn tail_call(
        &mut self,
        map: u64,
        index: u64,
        _: &mut MemoryMap<'_>,
    ) -> Option<Result<u64, HelperStop>> {
        if !self.direct {
            return None;
        }
        self.answered += 1;
        Some(answer(map, index))
    }
}

fn run(exec: &dyn bpfsim_vm::Executable, direct: bool) -> (bpfsim_vm::Outcome, u32, u32) {
    let mut vm = Vm::default();
    let mut mem = vm.memory();
    let mut host = Tail {
        direct,
        helper: 0,
        answered: 0,
    };
    let out = exec.execute(&mut mem, &mut host, [0; 5], 1000);
    (out, host.helper, host.answered)
}

#[test]
fn tail_calls_take_the_direct_answer_or_the_helper() {
    for (second, calls) in [(5, 2), (3, 2), (4, 2)] {
        // A failed call (index 1), then `second`: failed, taken, or a fault; the registers the
        // program keeps across them (r6) and r0 used after.
        let src = format!(
            "mov %r6, 100
             mov %r2, 10
             mov %r3, 1
             call 12
             mov %r7, %r0
             mov %r2, 20
             mov %r3, {second}
             call 12
             add %r0, %r7
             add %r0, %r6
             exit"
        );
        let prog = Program::new(assemble(&src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let (want, helper, _) = run(&Interpreter::new(&prog), true);
        assert_eq!(helper, calls, "the interpreter asks the helper");
        match second {
            5 => assert_eq!(want.result, Ok(25 + 11 + 100)),
            3 => assert_eq!(want.tail_call, Some(9)),
            _ => assert!(want.result.is_err(), "{want:?}"),
        }
        assert_eq!(run(&jit, true), (want, 0, calls), "{second}");
        assert_eq!(run(&jit, false), (want, calls, 0), "{second}");
    }
}
