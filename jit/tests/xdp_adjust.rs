//! `call 54`, `bpf_xdp_adjust_meta`, and `call 65`, `bpf_xdp_adjust_tail`, under the JIT:
//! answered by the host's direct methods ([`Host::xdp_adjust_meta`],
//! [`Host::xdp_adjust_tail`]) without the generic dispatch, and by `call_helper` when the host
//! does not answer, with the interpreter's result either way.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

/// A host whose helper 54 answers `r2 * 3 + r1` and helper 65 `r2 * 5 ^ r1` (its direct
/// methods the same, when `direct`), counting which of the two answered.
struct Adjust {
    direct: bool,
    helper: u32,
    answered: u32,
}

fn meta(ctx: u64, delta: u64) -> u64 {
    delta.wrapping_mul(3).wrapping_add(ctx)
}

fn tail(ctx: u64, delta: u64) -> u64 {
    delta.wrapping_mul(5) ^ ctx
}

impl Host for Adjust {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        let f = match id {
            54 => meta,
            65 => tail,
            _ => return Err(HelperStop::Unknown),
        };
        self.helper += 1;
        Ok(f(args[0], args[1]))
    }

    fn xdp_adjust_meta(&mut self, ctx: u64, delta: u64, _: &mut MemoryMap<'_>) -> Option<u64> {
        if !self.direct {
            return None;
        }
        self.answered += 1;
        Some(meta(ctx, delta))
    }

    fn xdp_adjust_tail(&mut self, ctx: u64, delta: u64, _: &mut MemoryMap<'_>) -> Option<u64> {
        if !self.direct {
            return None;
        }
        self.answered += 1;
        Some(tail(ctx, delta))
    }
}

fn run(exec: &dyn bpfsim_vm::Executable, direct: bool) -> (bpfsim_vm::Outcome, u32, u32) {
    let mut vm = Vm::default();
    let mut mem = vm.memory();
    let mut host = Adjust {
        direct,
        helper: 0,
        answered: 0,
    };
    let out = exec.execute(&mut mem, &mut host, [0; 5], 1000);
    (out, host.helper, host.answered)
}

#[test]
fn xdp_adjustments_take_the_direct_answer_or_the_helper() {
    for (id, f) in [(54, meta as fn(u64, u64) -> u64), (65, tail)] {
        // Two calls, the registers the program keeps across them (r6) and r0 of both used
        // after.
        let src = format!(
            "mov %r6, 100
             mov %r1, 7
             mov %r2, -8
             call {id}
             mov %r7, %r0
             mov %r1, %r6
             mov %r2, 5
             call {id}
             lsh %r7, 16
             add %r0, %r7
             add %r0, %r6
             exit"
        );
        let prog = Program::new(assemble(&src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let (want, helper, _) = run(&Interpreter::new(&prog), true);
        assert_eq!(helper, 2, "the interpreter asks the helper");
        let first = f(7, -8i64 as u64);
        assert_eq!(
            want.result,
            Ok((first << 16).wrapping_add(f(100, 5)).wrapping_add(100)),
            "helper {id}"
        );
        assert_eq!(run(&jit, true), (want, 0, 2), "helper {id}");
        assert_eq!(run(&jit, false), (want, 2, 0), "helper {id}");
    }
}
