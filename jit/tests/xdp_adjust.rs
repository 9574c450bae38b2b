//! `call 54`, `bpf_xdp_adjust_meta`, and `call 65`, `bpf_xdp_adjust_tail`, under the JIT:
//! answered by the host's direct methods ([`Host::xdp_adjust_meta`],
//! [`Host::xdp_adjust_tail`]) without the generic dispatch, and by `call_helper` when the host
//! does not answer, with the interpreter's result either way.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{Executable, HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

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

fn run(exec: &dyn Executable, direct: bool) -> (bpfsim_vm::Outcome, u32, u32) {
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

/// A context whose metadata edge and packet end move by any delta keeping them in 0..=64 (else
/// `-22`, nothing moved), over no bytes (nothing to zero).
struct Edges {
    meta: i64,
    end: i64,
}

impl bpfsim_vm::memory::Context for Edges {
    fn load(&self, off: u32, size: bpfsim_vm::isa::Size) -> Option<u64> {
        match (off, size) {
            (0, bpfsim_vm::isa::Size::W) => Some(self.meta as u64),
            (4, bpfsim_vm::isa::Size::W) => Some(self.end as u64),
            _ => None,
        }
    }
    fn store(&mut self, _: u32, _: bpfsim_vm::isa::Size, _: u64) -> bool {
        false
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn loads_are_pure(&self) -> bool {
        true
    }
    fn adjust_meta(&mut self, delta: i64) -> Option<i64> {
        Some(match self.meta + delta {
            m @ 0..=64 => {
                self.meta = m;
                0
            }
            _ => -22,
        })
    }
    fn adjust_tail(&mut self, delta: i64, _: &mut dyn FnMut(u64, usize) -> bool) -> Option<i64> {
        Some(match self.end + delta {
            e @ 0..=64 => {
                self.end = e;
                0
            }
            _ => -22,
        })
    }
}

/// A host whose adjustments are the context's, as its helper's are, and which says so when
/// `by_context`; it counts the calls of its direct methods.
struct Honest {
    by_context: bool,
    direct: u32,
}

impl Host for Honest {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        let delta = args[1] as i32 as i64;
        let r0 = match id {
            54 => mem.adjust_ctx_meta(delta),
            65 => mem.adjust_ctx_tail(delta),
            _ => return Err(HelperStop::Unknown),
        };
        r0.map(|r| r as u64).ok_or(HelperStop::Fault)
    }

    fn xdp_adjust_meta(&mut self, _: u64, delta: u64, mem: &mut MemoryMap<'_>) -> Option<u64> {
        self.direct += 1;
        mem.adjust_ctx_meta(delta as i32 as i64).map(|r| r as u64)
    }

    fn xdp_adjust_tail(&mut self, _: u64, delta: u64, mem: &mut MemoryMap<'_>) -> Option<u64> {
        self.direct += 1;
        mem.adjust_ctx_tail(delta as i32 as i64).map(|r| r as u64)
    }

    fn xdp_adjust_by_context(&mut self) -> bool {
        self.by_context
    }
}

/// A host that says its adjustments are the context's is not called for them: the shims ask the
/// context, with the interpreter's results, the fields read after each move the moved ones;
/// without a context, the helper answers (here a fault).
#[test]
fn a_host_whose_adjustments_are_the_contexts_is_not_asked() {
    // meta -8, tail +8 (twice: the second refused past 64), each r0 and both edges kept.
    let src = "mov %r6, %r1
               lddw %r2, 0x1fffffff8
               call 54
               mov %r7, %r0
               mov %r1, %r6
               mov %r2, 30
               call 65
               lsh %r0, 8
               or %r7, %r0
               mov %r1, %r6
               mov %r2, 30
               call 65
               and %r0, 0xff
               lsh %r0, 16
               or %r7, %r0
               ldxw %r2, [%r6+0]
               lsh %r2, 24
               or %r7, %r2
               ldxw %r2, [%r6+4]
               lsh %r2, 32
               or %r0, %r7
               or %r0, %r2
               exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    let with_ctx = |exec: &dyn Executable, by_context: bool| {
        let mut vm = Vm::default();
        let mut mem = vm.memory();
        let mut ctx = Edges { meta: 20, end: 30 };
        let r1 = mem.map_context(&mut ctx).unwrap();
        let mut host = Honest {
            by_context,
            direct: 0,
        };
        let out = exec.execute(&mut mem, &mut host, [r1, 0, 0, 0, 0], 1000);
        drop(mem);
        (out.result, ctx.meta, ctx.end, host.direct)
    };
    let want = with_ctx(&interp, true);
    let first = 0xea << 16 | 12 << 24 | 60u64 << 32;
    assert_eq!(want, (Ok(first), 12, 60, 0));
    assert_eq!(with_ctx(&jit, true), want, "the context answers");
    assert_eq!(
        with_ctx(&jit, false),
        (want.0, 12, 60, 3),
        "the host answers"
    );
    // No context: the helper's fault, at the first call, both ways.
    for by_context in [true, false] {
        let mut vm = Vm::default();
        let mut mem = vm.memory();
        let mut host = Honest {
            by_context,
            direct: 0,
        };
        let i = interp.execute(&mut mem, &mut host, [0; 5], 1000);
        let j = jit.execute(&mut mem, &mut host, [0; 5], 1000);
        assert_eq!(i.result, j.result, "by_context {by_context}");
        assert_eq!(i.result.unwrap_err().pc, 3);
    }
}
