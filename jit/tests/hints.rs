//! What the JIT does with the verifier's proofs ([`Hints`]): with true hints, the results of
//! the interpreter; with false ones, other results perhaps, but never an access outside memory
//! the run owns (the host survives and its memory is intact).

use bpfsim_jit::{Hints, JitProgram};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{ConformanceHost, Interpreter, Program, Vm};

fn slots(prog: &Program) -> usize {
    prog.iter().map(|(pc, _)| pc + 2).max().unwrap_or(0)
}

/// Hints marking the listed slots as proven packet accesses.
fn packet_at(prog: &Program, pcs: &[usize]) -> Hints {
    let mut packet = vec![false; slots(prog)];
    for &pc in pcs {
        packet[pc] = true;
    }
    Hints {
        no_ctx: vec![true; slots(prog)],
        packet,
    }
}

/// A checked loop over the memory (`r1`, `r2` bytes), as a packet parser is written: every load
/// is preceded by its bounds check, so the hint on it holds.
const SUM: &str = "mov %r0, 0
mov %r3, %r1
add %r2, %r1
loop:
mov %r4, %r3
add %r4, 2
jgt %r4, %r2, tail
ldxh %r5, [%r3+0]
be16 %r5
add %r0, %r5
stxh [%r3+0], %r0
mov %r3, %r4
ja loop
tail:
mov %r4, %r3
add %r4, 1
jgt %r4, %r2, done
ldxb %r5, [%r3+0]
add %r0, %r5
done:
exit";

#[test]
fn true_packet_hints_change_nothing() {
    let prog = Program::new(assemble(SUM).unwrap()).unwrap();
    let accesses: Vec<usize> = prog
        .iter()
        .filter(|(_, i)| {
            matches!(
                i,
                bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. }
            )
        })
        .map(|(pc, _)| pc)
        .collect();
    assert_eq!(accesses.len(), 3);
    let jit = JitProgram::compile_with(&prog, &packet_at(&prog, &accesses)).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    // Lengths around the clamp's scratch stand-in (under 8 bytes) and above.
    for len in 0..40usize {
        let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(29) ^ 0x5a).collect();
        let mut m1 = init.clone();
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        let mut m2 = init.clone();
        let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
        assert!(a.result.is_ok(), "len {len}: {a:?}");
        assert_eq!(a, b, "len {len}");
        assert_eq!(m1, m2, "memory, len {len}");
    }
}

/// False hints on accesses far outside the memory (and outside any region, and on the stack):
/// each lands inside the run's own memory, or its scratch word when the memory is under 8
/// bytes; the bytes around the memory are untouched and the host goes on.
#[test]
fn false_packet_hints_stay_inside_the_run() {
    let cases = [
        "stxdw [%r1+4096], %r1\nldxdw %r0, [%r1+4096]\nexit",
        "lddw %r3, 0x7fffffff00000000\nstxdw [%r3+0], %r3\nldxdw %r0, [%r3+0]\nexit",
        "lddw %r3, 0xfffffffffffffff8\nstxb [%r3+0], %r3\nldxb %r0, [%r3+0]\nexit",
        "mov %r3, 0\nstxw [%r3+0], %r1\nldxw %r0, [%r3+0]\nexit",
        "stxdw [%r10-8], %r1\nldxdw %r0, [%r10-600]\nexit",
        "stxdw [%r1-8], %r1\nldxh %r0, [%r1-1]\nexit",
    ];
    for src in cases {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let accesses: Vec<usize> = prog
            .iter()
            .filter(|(_, i)| {
                matches!(
                    i,
                    bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. }
                )
            })
            .map(|(pc, _)| pc)
            .collect();
        let jit = JitProgram::compile_with(&prog, &packet_at(&prog, &accesses)).unwrap();
        let checked = JitProgram::compile(&prog).unwrap();
        let mut vm = Vm::default();
        for len in [0usize, 1, 3, 7, 8, 9, 64] {
            // The memory sits between guard bytes of one allocation.
            let mut buf = vec![0xeeu8; len + 64];
            let before = buf.clone();
            let out = {
                let mem = &mut buf[32..32 + len];
                jit.run_with_memory(&mut vm, &mut ConformanceHost, mem)
            };
            assert_eq!(&buf[..32], &before[..32], "{src} len {len}: guard before");
            assert_eq!(
                &buf[32 + len..],
                &before[32 + len..],
                "{src} len {len}: guard after"
            );
            // Without hints, the access traps as the interpreter's does.
            let mut m = vec![0u8; len];
            let c = checked.run_with_memory(&mut vm, &mut ConformanceHost, &mut m);
            let i = vm.run_with_memory(&Interpreter::new(&prog), &mut ConformanceHost, &mut m);
            assert_eq!(c, i, "{src} len {len}");
            // The clamped accesses never trap: they read what the run owns.
            assert!(out.result.is_ok(), "{src} len {len}: {out:?}");
        }
    }
}

/// Accesses the hints leave as perhaps the context's (`no_ctx` false, not a packet access) are
/// one call into Rust each, which serves every region: the memory, the stack through a copied
/// pointer, and faults with the interpreter's trap (code, pc, address) and count.
#[test]
fn context_accesses_by_call_give_the_interpreters_results() {
    let cases = [
        SUM,
        // The stack through a copied frame pointer.
        "mov %r3, %r10\nadd %r3, -16\nstxdw [%r3+0], %r1\nstxw [%r3+8], %r2\nldxdw %r0, [%r3+0]\nldxw %r4, [%r3+8]\nadd %r0, %r4\nexit",
        // Out of bounds, read and write, after some work (the count at the fault matters).
        "mov %r0, 1\nadd %r0, 2\nldxdw %r0, [%r1+4096]\nexit",
        "mov %r0, 1\nstxb [%r1-1], %r0\nexit",
        "mov %r3, 0\nldxw %r0, [%r3+0]\nexit",
    ];
    for src in cases {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let maybe_ctx = Hints {
            no_ctx: vec![false; slots(&prog)],
            packet: vec![false; slots(&prog)],
        };
        let jit = JitProgram::compile_with(&prog, &maybe_ctx).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        for len in [0usize, 1, 5, 8, 16, 33] {
            let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            let mut m1 = init.clone();
            let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
            let mut m2 = init.clone();
            let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
            assert_eq!(a, b, "{src} len {len}");
            assert_eq!(m1, m2, "{src} memory, len {len}");
        }
    }
}
