//! How much of a callee's frame a local call zeroes under the JIT (`Verdict::frame_bytes`,
//! `Hints::frame_bytes`): the bytes the verifier saw the subprogram reach, where the
//! interpreter zeroes the whole frame. Reads of stack never written (which a privileged load
//! may make) must still read 0, also on a path the verifier pruned.

use bpfsim_helpers::run::{Input, RunResult, Runner};
use bpfsim_helpers::Env;
use bpfsim_verifier::{verify, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::{Executable, Interpreter, Program};

/// An Ethernet frame carrying ARP; byte 14 is `reader`'s selector.
const PACKET: [u8; 20] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6, 0, 1, 8, 0, 6, 4];

/// The main program calls `dirty`, which fills 384 bytes of its frame with non-zero words, then
/// `reader` in the same frame (depth 1). `reader` reads `[r10-200]`, which it never wrote,
/// on the path a non-zero selector takes: the verifier explores the other path first, which
/// touches only `[r10-8]`, and prunes this one at their join (the value read is not precise),
/// so only the pruned path knows that byte 200 is reached.
fn source() -> String {
    let mut s = String::from(
        "mov %r6, %r1
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 15
mov %r7, 0
jgt %r4, %r3, +1
ldxb %r7, [%r2+14]
call local dirty
mov %r8, %r0
mov %r1, %r7
call local reader
add %r0, %r8
exit
dirty:
",
    );
    for k in 1..=48 {
        s.push_str(&format!("stdw [%r10-{}], {}\n", 8 * k, 0x5050 + k));
    }
    s.push_str(
        "mov %r0, 1
exit
reader:
mov %r0, 0
jne %r1, 0, +10
stdw [%r10-8], 1
ja +0
mov %r2, 1
mov %r2, 2
mov %r2, 3
mov %r2, 4
mov %r2, 5
mov %r2, 6
mov %r2, 7
ja +1
ldxdw %r0, [%r10-200]
mov %r2, 0
exit",
    );
    s
}

/// The program and the verifier's verdict on it as the JIT's hints.
fn build() -> (Program, bpfsim_jit::Hints) {
    let insns = assemble(&source()).unwrap();
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

/// The verifier's log of the program.
fn log() -> Vec<String> {
    let mut opts = Options::new(ProgType::Xdp);
    opts.log_level = 2;
    let v = verify(&assemble(&source()).unwrap(), &opts);
    assert!(v.accepted, "{:?}", v.error);
    v.log
}

/// The first slots of `dirty` and `reader`.
fn subprograms(prog: &Program) -> (usize, usize) {
    let subs = prog.subprograms();
    assert_eq!(subs.len(), 3, "{subs:?}");
    (subs[1], subs[2])
}

/// Runs of `prog` under `engine`, `repeat` times, for selectors 0 and non-zero.
fn runs(engine: &dyn Executable, repeat: u32) -> Vec<RunResult> {
    let mut r = Runner::new(Env::default());
    r.set_timing(false);
    [0u8, 1, 9]
        .iter()
        .map(|&b| {
            let mut packet = PACKET;
            packet[14] = b;
            r.run_repeat(engine, ProgType::Xdp, &packet, Input::default(), repeat)
                .unwrap()
        })
        .collect()
}

#[test]
fn the_verifier_counts_the_bytes_each_frame_reaches_on_pruned_paths_too() {
    let (prog, hints) = build();
    let (dirty, reader) = subprograms(&prog);
    assert_eq!(hints.frame_bytes, vec![(0, 0), (dirty, 384), (reader, 200)]);
    // The path that reads `[r10-200]` is the pruned one.
    let verdict_log = log();
    assert!(
        verdict_log.iter().any(|l| l == "77: safe"),
        "{verdict_log:?}"
    );
}

#[test]
fn a_call_zeroing_the_bytes_reached_reads_what_the_interpreter_reads() {
    let (prog, hints) = build();
    let interp = Interpreter::new(&prog);
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints).unwrap();
    for repeat in [1, 3] {
        let want = runs(&interp, repeat);
        // `reader` reads 0 from the word `dirty` wrote: the frame is zeroed between the calls.
        assert!(want.iter().all(|r| r.retval == 1), "{want:?}");
        assert_eq!(runs(&jit, repeat), want, "repeat {repeat}");
    }
}

/// Wrong hints change what a read of unwritten stack sees, never where memory goes: too few
/// bytes leave `dirty`'s word for `reader`, too many (or a frame past `FRAME_SIZE`) are the
/// whole frame, and slots that are no subprogram's or out of order change nothing unsafe.
#[test]
fn wrong_frame_bytes_stay_inside_the_stack() {
    let (prog, hints) = build();
    let (dirty, reader) = subprograms(&prog);
    let with = |frame_bytes: Vec<(usize, u32)>| {
        let h = bpfsim_jit::Hints {
            frame_bytes,
            ..hints.clone()
        };
        let jit = bpfsim_jit::JitProgram::compile_with(&prog, &h).unwrap();
        runs(&jit, 2)
    };
    let want = runs(&Interpreter::new(&prog), 2);
    let short = with(vec![(dirty, 384), (reader, 8)]);
    // Selector 0 never reads it; the others read what `dirty` left at `[r10-200]`.
    assert_eq!(short[0], want[0]);
    for r in &short[1..] {
        assert_eq!(r.retval, 1 + 0x5050 + 25, "{r:?}");
    }
    assert_eq!(with(vec![(dirty, 0), (reader, u32::MAX)]), want);
    assert_eq!(
        with(vec![(reader, 7), (dirty, 3), (999, 1), (0, 4096)]).len(),
        3
    );
    assert_eq!(with(Vec::new()), want);
}

/// `src` verified as XDP (it never reads its context) and compiled with the verdict's
/// hints, with its interpreter.
fn compiled(src: &str) -> (Interpreter, bpfsim_jit::JitProgram, Vec<(usize, u32)>) {
    let insns = assemble(src).unwrap();
    let verdict = verify(&insns, &Options::new(ProgType::Xdp));
    assert!(verdict.accepted, "{:?}", verdict.error);
    let frame_bytes = verdict.frame_bytes.clone();
    let hints = bpfsim_jit::Hints {
        no_ctx: verdict.no_ctx,
        stack: verdict.stack,
        frame_bytes: verdict.frame_bytes,
        ..Default::default()
    };
    let prog = Program::new(insns).unwrap();
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints).unwrap();
    (Interpreter::new(&prog), jit, frame_bytes)
}

/// Frame 0 before a run of a program that reaches only its top 16 bytes is cleared only there;
/// a run of another program on the same stack after it still reads zeros everywhere, under
/// either engine, the interpreter with the verifier's frame proof or without.
#[test]
fn the_main_frame_is_cleared_where_the_program_reaches_and_stays_marked_written() {
    use bpfsim_vm::{ConformanceHost, Vm};
    let mut fill = String::new();
    for k in 1..=64 {
        fill.push_str(&format!("stdw [%r10-{}], {}\n", 8 * k, 1000 + k));
    }
    fill.push_str("mov %r0, 1\nexit");
    let (_, filler, _) = compiled(&fill);
    // Reads two words it never wrote.
    let (near_interp, near, near_bytes) =
        compiled("ldxdw %r0, [%r10-8]\nldxdw %r1, [%r10-16]\nadd %r0, %r1\nexit");
    assert_eq!(near_bytes, vec![(0, 16)]);
    let (far_interp, far, far_bytes) = compiled("ldxdw %r0, [%r10-512]\nexit");
    assert_eq!(far_bytes, vec![(0, 512)]);
    // The interpreter with the same proof (`Interpreter::with_frame_proof`) clears as the JIT.
    let near_proven = near_interp.clone().with_frame_proof(&near_bytes);
    assert_eq!(near_proven.frame_entry(), (true, 16));
    let far_proven = far_interp.clone().with_frame_proof(&far_bytes);
    let mut vm = Vm::default();
    vm.budget = 1000;
    enum E<'a> {
        I(&'a Interpreter),
        J(&'a bpfsim_jit::JitProgram),
    }
    let mut run = |e: E<'_>| {
        let out = match e {
            E::I(p) => vm.run_with_memory(p, &mut ConformanceHost, &mut []),
            E::J(p) => p.run_with_memory(&mut vm, &mut ConformanceHost, &mut []),
        };
        out.result.unwrap()
    };
    for (near_e, far_e) in [
        (E::J(&near), E::J(&far)),
        (E::I(&near_interp), E::I(&far_interp)),
        (E::J(&near), E::I(&far_interp)),
        (E::I(&near_interp), E::J(&far)),
        (E::I(&near_proven), E::I(&far_proven)),
        (E::I(&near_proven), E::I(&far_interp)),
        (E::J(&near), E::I(&far_proven)),
    ] {
        assert_eq!(run(E::J(&filler)), 1);
        assert_eq!(run(near_e), 0);
        // `near` writes nothing, but left `filler`'s word at the bottom.
        assert_eq!(run(far_e), 0);
    }
}
