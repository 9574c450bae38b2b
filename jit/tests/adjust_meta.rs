//! `call 54`, `bpf_xdp_adjust_meta`, under the JIT: answered by the host's direct method
//! ([`Host::xdp_adjust_meta`]) without the generic dispatch, and by `call_helper` when the host
//! does not answer, with the interpreter's result either way.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

/// A host whose helper 54 answers `r2 * 3 + r1` (its direct method the same, when `direct`),
/// counting which of the two answered.
struct Meta {
    direct: bool,
    helper: u32,
    answered: u32,
}

impl Host for Meta {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            54 => {
                self.helper += 1;
                Ok(args[1].wrapping_mul(3).wrapping_add(args[0]))
            }
            _ => Err(HelperStop::Unknown),
        }
    }

    fn xdp_adjust_meta(&mut self, ctx: u64, delta: u64, _: &mut MemoryMap<'_>) -> Option<u64> {
        if !self.direct {
            return None;
        }
        self.answered += 1;
        Some(delta.wrapping_mul(3).wrapping_add(ctx))
    }
}

fn run(exec: &dyn bpfsim_vm::Executable, direct: bool) -> (bpfsim_vm::Outcome, u32, u32) {
    let mut vm = Vm::default();
    let mut mem = vm.memory();
    let mut host = Meta {
        direct,
        helper: 0,
        answered: 0,
    };
    let out = exec.execute(&mut mem, &mut host, [0; 5], 1000);
    (out, host.helper, host.answered)
}

#[test]
fn adjust_meta_takes_the_direct_answer_or_the_helper() {
    // Two calls, the registers the program keeps across them (r6) and r0 of both used after.
    let src = "mov %r6, 100
               mov %r1, 7
               mov %r2, -8
               call 54
               mov %r7, %r0
               mov %r1, %r6
               mov %r2, 5
               call 54
               lsh %r7, 16
               add %r0, %r7
               add %r0, %r6
               exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let (want, helper, _) = run(&Interpreter::new(&prog), true);
    assert_eq!(helper, 2, "the interpreter asks the helper");
    let first = (-8i64 as u64).wrapping_mul(3).wrapping_add(7);
    assert_eq!(
        want.result,
        Ok((first << 16).wrapping_add(115).wrapping_add(100))
    );
    assert_eq!(run(&jit, true), (want, 0, 2));
    assert_eq!(run(&jit, false), (want, 2, 0));
}
