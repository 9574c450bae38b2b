//! Stack accesses the verifier proved (`Verdict::stack`, `Hints::stack`) through pointers other
//! than `r10` itself: a pointer into the caller's frame passed to a subprogram, a copy of `r10`
//! with a constant offset used in another block, a variable offset the verifier bounded, atomics
//! on the stack. The JIT addresses them inside the one buffer of all frames' stacks with no
//! branch, and must give the interpreter's results.

use bpfsim_helpers::run::{Input, RunResult, Runner};
use bpfsim_helpers::Env;
use bpfsim_verifier::{verify, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::Insn;
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::{Executable, Interpreter, Program};

/// An Ethernet frame carrying ARP; byte 14 selects offsets on the stack.
const PACKET: [u8; 20] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6, 0, 1, 8, 0, 6, 4];

/// The main program zeroes 32 bytes of its frame and passes their address to `fill`, which
/// writes them through the pointer (and calls `deeper` with a pointer into its own frame and
/// the caller's pointer); back in the caller, a copy of `r10` made before a branch reads them
/// after it, a packet byte picks a 4-byte word at a variable offset, and atomics add to them.
const STACK_PTRS: &str = "mov %r6, %r1
stdw [%r10-8], 0
stdw [%r10-16], 0
stdw [%r10-24], 0
stdw [%r10-32], 0
mov %r1, %r10
add %r1, -32
call local fill
mov %r7, %r10
add %r7, -16
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 15
mov %r8, 0
jgt %r4, %r3, +1
ldxb %r8, [%r2+14]
ldxw %r0, [%r7+4]
ldxdw %r5, [%r7-16]
add %r0, %r5
and %r8, 7
lsh %r8, 2
mov %r9, %r10
add %r9, -32
add %r9, %r8
ldxw %r5, [%r9+0]
add %r0, %r5
stxw [%r9+0], %r0
mov %r5, 3
lock add [%r7+0], %r5
lock fetch xor32 [%r7+8], %r5
add %r0, %r5
ldxdw %r5, [%r7+0]
add %r0, %r5
ldxdw %r5, [%r10-32]
add %r0, %r5
exit
fill:
stdw [%r10-8], 77
mov %r3, 21
stxdw [%r1+0], %r3
stw [%r1+8], 11
sth [%r1+12], 12
stb [%r1+14], 13
stdw [%r1+16], 17
mov %r2, %r10
add %r2, -8
call local deeper
ldxdw %r0, [%r10-8]
exit
deeper:
ldxdw %r0, [%r2+0]
stxw [%r1+20], %r0
ldxw %r3, [%r1+8]
add %r0, %r3
stxdw [%r2+0], %r0
mov %r3, 9
lock fetch add [%r1+24], %r3
mov %r3, 5
lock xchg [%r1+16], %r3
exit";

/// `src`, and the verifier's verdict on it as the JIT's hints.
fn build(src: &str) -> (Program, bpfsim_jit::Hints) {
    let insns = assemble(src).unwrap();
    let mut opts = Options::new(ProgType::Xdp);
    opts.log_level = 2;
    let verdict = verify(&insns, &opts);
    assert!(
        verdict.accepted,
        "{:?}\n{}",
        verdict.error,
        verdict.log.join("\n")
    );
    let hints = bpfsim_helpers::tier::verdict_hints(verdict);
    (Program::new(insns).unwrap(), hints)
}

/// Runs of `prog` under `engine`, `repeat` times, for several packets (and one too short to
/// parse).
fn runs(engine: &dyn Executable, repeat: u32) -> Vec<RunResult> {
    let mut r = Runner::new(Env::default());
    r.set_timing(false);
    let mut results = Vec::new();
    for b in [0u8, 1, 2, 3, 7, 255] {
        let mut packet = PACKET;
        packet[14] = b;
        results.push(
            r.run_repeat(engine, ProgType::Xdp, &packet, Input::default(), repeat)
                .unwrap(),
        );
    }
    results.push(
        r.run_repeat(
            engine,
            ProgType::Xdp,
            &PACKET[..14],
            Input::default(),
            repeat,
        )
        .unwrap(),
    );
    results
}

fn stack_hinted(prog: &Program, hints: &bpfsim_jit::Hints) -> Vec<usize> {
    prog.iter()
        .filter(|(pc, _)| hints.stack.get(*pc).copied().unwrap_or(false))
        .map(|(pc, _)| pc)
        .collect()
}

/// Every load, store and atomic of the program goes through a stack pointer but the two packet
/// loads (through the context, then the packet): exactly those are proven stack accesses,
/// whether through `r10`, a copy of it, the caller's pointer or a variable offset.
#[test]
fn the_verifier_proves_stack_accesses_through_any_stack_pointer() {
    let (prog, hints) = build(STACK_PTRS);
    let mut want = Vec::new();
    for (pc, insn) in prog.iter() {
        let (base, off) = match *insn {
            Insn::Load { src, off, .. } => (src, off),
            Insn::Store { dst, off, .. } | Insn::Atomic { dst, off, .. } => (dst, off),
            _ => continue,
        };
        // The context's two words and the packet's byte.
        let packet = base.index() == 6 || (base.index() == 2 && off == 14);
        if !packet {
            want.push(pc);
        }
    }
    assert_eq!(want.len(), 25);
    assert_eq!(stack_hinted(&prog, &hints), want);
    // Where the pointer is known: `fill`'s stores through main's `r10 - 32` one frame up,
    // `deeper`'s through it two frames up and through `fill`'s `r10 - 8` one up; the variable
    // offset (`r9`) is not placed; `r10` itself is its own frame's pointer plus 0.
    let placed: Vec<_> = prog
        .iter()
        .filter_map(|(pc, _)| hints.stack_at[pc])
        .collect();
    for want in [(1, -32), (2, -32), (1, -8), (0, -16), (0, 0)] {
        assert!(placed.contains(&want), "{want:?} in {placed:?}");
    }
    let variable = prog
        .iter()
        .find(|(_, i)| matches!(i, Insn::Load { src, .. } if src.index() == 9))
        .unwrap()
        .0;
    assert_eq!(hints.stack_at[variable], None);
    for pc in want {
        assert!(
            hints.no_ctx[pc] && !hints.packet[pc] && !hints.ctx[pc],
            "slot {pc}"
        );
        assert_eq!(hints.map_value[pc], None, "slot {pc}");
    }
}

#[test]
fn proven_stack_accesses_under_the_jit_run_as_the_interpreter() {
    let (prog, hints) = build(STACK_PTRS);
    let interp = Interpreter::new(&prog);
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints).unwrap();
    let no_stack = bpfsim_jit::JitProgram::compile_with(
        &prog,
        &bpfsim_jit::Hints {
            stack: Vec::new(),
            ..hints.clone()
        },
    )
    .unwrap();
    // The hinted accesses take fewer instructions than the table walks they replace.
    assert!(
        jit.code_size < no_stack.code_size,
        "{} {}",
        jit.code_size,
        no_stack.code_size
    );
    for repeat in [1, 3] {
        let want = runs(&interp, repeat);
        // The packet's byte picks the word read at a variable offset: the results differ.
        let mut rets: Vec<_> = want.iter().map(|r| r.retval).collect();
        rets.sort_unstable();
        rets.dedup();
        assert!(rets.len() >= 4, "{want:?}");
        assert_eq!(runs(&jit, repeat), want, "repeat {repeat}");
        assert_eq!(runs(&no_stack, repeat), want, "repeat {repeat}");
    }
}

/// An access through a register that holds a stack pointer on one path and a packet pointer on
/// another is not a proven stack access (nor a packet one): it keeps its check.
#[test]
fn an_access_through_stack_or_packet_is_not_proven() {
    let src = "ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r5, %r10
add %r5, -8
mov %r4, %r2
add %r4, 8
jgt %r4, %r3, +1
mov %r5, %r2
stdw [%r5+0], 1
ldxdw %r0, [%r5+0]
exit";
    let (prog, hints) = build(src);
    assert_eq!(stack_hinted(&prog, &hints), Vec::<usize>::new());
    let interp = Interpreter::new(&prog);
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints).unwrap();
    assert_eq!(runs(&jit, 2), runs(&interp, 2));
}

/// The real program with the most stack accesses through pointers passed to subprograms: the
/// verifier proves them, and the JIT with those hints gives the interpreter's results.
#[test]
fn bpf2bpf_calls_stack_pointers_are_proven() {
    use bpfsim_helpers::object::LoadedObject;
    let bytes = include_bytes!("../../test-vectors/progs/bpf2bpf_calls.bpf.o");
    let obj = LoadedObject::load(bytes, Env::default()).unwrap();
    let p = obj.program("xdp_calls", None).unwrap();
    let hints = p.jit_hints();
    let prog = Program::new(p.insns.clone()).unwrap();
    let hinted = stack_hinted(&prog, &hints);
    let insns: std::collections::HashMap<usize, Insn> =
        prog.iter().map(|(pc, i)| (pc, *i)).collect();
    // Every access through a register other than r10 that the hints prove on the stack.
    let through_copies = hinted
        .iter()
        .filter(|&&pc| match insns.get(&pc) {
            Some(Insn::Load { src, .. }) => src.index() != 10,
            Some(Insn::Store { dst, .. } | Insn::Atomic { dst, .. }) => dst.index() != 10,
            _ => false,
        })
        .count();
    // The subprograms' 13 accesses through the caller's pointer (r3, r6), and r10's own.
    assert_eq!(through_copies, 13, "{hinted:?}");
    assert_eq!(hinted.len(), 17, "{hinted:?}");
    // Each of the 13 through the caller's `struct flow_info *` (its `r10 - 16`, one or two
    // frames up), at a known place: the JIT addresses them as constants.
    let up: Vec<u32> = hinted
        .iter()
        .filter_map(|&pc| hints.stack_at[pc])
        .filter(|&(up, _)| up > 0)
        .map(|(up, off)| {
            assert_eq!(off, -16, "{:?}", hints.stack_at);
            up
        })
        .collect();
    assert_eq!(up.len(), 13, "{:?}", hints.stack_at);
    assert!(up.contains(&1) && up.contains(&2), "{up:?}");
    let unplaced = bpfsim_jit::JitProgram::compile_with(
        &prog,
        &bpfsim_jit::Hints {
            stack_at: Vec::new(),
            ..hints.clone()
        },
    )
    .unwrap();
    let interp = Interpreter::new(&prog);
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints).unwrap();
    assert!(
        jit.code_size < unplaced.code_size,
        "{} {}",
        jit.code_size,
        unplaced.code_size
    );
    for repeat in [1, 4] {
        assert_eq!(runs(&jit, repeat), runs(&interp, repeat), "repeat {repeat}");
        assert_eq!(
            runs(&unplaced, repeat),
            runs(&interp, repeat),
            "repeat {repeat}"
        );
    }
}
