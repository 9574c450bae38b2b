//! A reused [`JitSession`] against fresh runs: after a program that writes its stack and memory,
//! one that traps, one that tail-calls, one that runs out of budget, a session's next run gives
//! the same outcome and memory as a run on a fresh `Vm`, and as the interpreter's.

use bpfsim_jit::{JitProgram, JitSession};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Outcome, Program, TrapCode, Vm};

/// Helper 12 is `bpf_tail_call` to program `r3`; helper 1 writes 0xaa into the byte at `r1`.
struct TailHost;

impl Host for TailHost {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            12 => Err(HelperStop::TailCall(args[2] as u32)),
            1 => {
                mem.store(args[0], bpfsim_vm::isa::Size::B, 0xaa)?;
                Ok(0)
            }
            _ => Err(HelperStop::Unknown),
        }
    }
}

/// Reads a stack slot no run writes first (so it must read 0), then writes it and memory.
const WRITER: &str = "
    ldxdw %r0, [%r10-8]
    stdw [%r10-8], 7
    ldxb %r3, [%r1+0]
    add %r3, 1
    stxb [%r1+0], %r3
    add %r0, %r3
    exit
";
/// Reads a stack slot, then faults one byte past its memory.
const TRAPPER: &str = "
    ldxdw %r0, [%r10-16]
    stdw [%r10-16], 9
    add %r1, %r2
    ldxb %r0, [%r1+0]
    exit
";
/// A helper writes memory, then a tail call to program 3 ends the run.
const TAILER: &str = "
    ldxdw %r0, [%r10-24]
    stdw [%r10-24], 1
    mov %r6, %r1
    call 1
    mov %r1, %r6
    mov %r3, 3
    call 12
    mov %r0, 1
    exit
";
/// A loop longer than the small budget below.
const LOOPER: &str = "
    ldxdw %r0, [%r10-32]
    stdw [%r10-32], 5
    mov %r3, 100
    sub %r3, 1
    jne %r3, 0, -2
    exit
";
/// Cannot write: reads the slots the others wrote, which must all read 0.
const READER: &str = "
    ldxdw %r0, [%r10-8]
    ldxdw %r3, [%r10-16]
    or %r0, %r3
    ldxdw %r3, [%r10-24]
    or %r0, %r3
    ldxdw %r3, [%r10-32]
    or %r0, %r3
    ldxb %r3, [%r1+0]
    lsh %r3, 8
    or %r0, %r3
    exit
";

fn program(src: &str) -> Program {
    Program::new(assemble(src).unwrap()).unwrap()
}

/// Each program run through its own session, in an order that leaves every kind of state behind
/// (a written stack, a trap mid-run, a tail call, a budget stop), against the same runs on a fresh
/// `Vm` each time and on the interpreter; the memory after each run must match too.
#[test]
fn a_reused_session_runs_as_a_fresh_one() {
    let srcs = [WRITER, TRAPPER, TAILER, LOOPER, READER];
    let progs: Vec<Program> = srcs.iter().map(|s| program(s)).collect();
    let jits: Vec<JitProgram> = progs
        .iter()
        .map(|p| JitProgram::compile(p).unwrap())
        .collect();
    let interps: Vec<Interpreter> = progs.iter().map(Interpreter::new).collect();
    let mut sessions: Vec<JitSession<'_>> = jits.iter().map(JitProgram::session).collect();
    for s in &mut sessions {
        s.vm().budget = 50;
    }
    // One session shared by every program would be wrong (a session belongs to one program), so
    // the sharing that matters is of runs of the same program, and of one `Vm` between the
    // interpreter's runs, across these rounds.
    let mut shared_vm = Vm::default();
    shared_vm.budget = 50;
    let (mut mem_s, mut mem_f, mut mem_i) = (vec![3u8; 8], vec![3u8; 8], vec![3u8; 8]);
    let mut seen = Vec::new();
    for round in 0..3 {
        for (i, ((jit, interp), session)) in jits
            .iter()
            .zip(&interps)
            .zip(sessions.iter_mut())
            .enumerate()
        {
            let s = session.run_with_memory(&mut TailHost, &mut mem_s);
            let mut fresh = Vm::default();
            fresh.budget = 50;
            let f = jit.run_with_memory(&mut fresh, &mut TailHost, &mut mem_f);
            let n = shared_vm.run_with_memory(interp, &mut TailHost, &mut mem_i);
            assert_eq!(s, f, "round {round}, program {i}: session against fresh");
            assert_eq!(
                s, n,
                "round {round}, program {i}: session against interpreter"
            );
            assert_eq!(mem_s, mem_f, "round {round}, program {i}: memory");
            assert_eq!(
                mem_s, mem_i,
                "round {round}, program {i}: memory (interpreter)"
            );
            seen.push(s);
        }
    }
    // The runs did what the test is about: a write, a trap, a tail call, a budget stop, and a
    // read of the stack that found zeros each time.
    let outcome = |i: usize| seen[i];
    assert_eq!(outcome(0).result, Ok(4));
    assert_eq!(outcome(1).result.unwrap_err().code, TrapCode::MemoryRead);
    assert_eq!(outcome(2).tail_call, Some(3));
    assert_eq!(outcome(3).result.unwrap_err().code, TrapCode::Budget);
    let reads: Vec<Outcome> = seen.iter().skip(4).step_by(5).copied().collect();
    assert_eq!(reads.len(), 3);
    for r in reads {
        // The stack slots read 0; only the memory's first byte is there, shifted.
        assert_eq!(r.result.unwrap() & 0xff, 0, "{r:?}");
    }
}

/// A session's runs through a memory map the caller built: the same as `JitProgram::run`.
#[test]
fn a_session_runs_on_a_callers_map() {
    let prog = program(WRITER);
    let jit = JitProgram::compile(&prog).unwrap();
    let mut session = jit.session();
    let mut vm = Vm::default();
    for _ in 0..3 {
        let (mut a, mut b) = ([5u8; 4], [5u8; 4]);
        let mut mem = vm.memory();
        let addr = mem.map_mut(&mut a).unwrap();
        let s = session.run(&mut mem, &mut TailHost, [addr, 4, 0, 0, 0], 100);
        drop(mem);
        let mut mem = vm.memory();
        let addr = mem.map_mut(&mut b).unwrap();
        let f = jit.run(&mut mem, &mut TailHost, [addr, 4, 0, 0, 0], 100);
        drop(mem);
        assert_eq!(s, f);
        assert_eq!(s.result, Ok(6));
        assert_eq!(a, b);
    }
}

/// Memory of one size, then another, then none: the primary region's bounds follow each run's
/// memory, so an access that fits one run's memory faults in a shorter one's.
#[test]
fn a_session_follows_each_runs_memory() {
    let prog = program("ldxb %r0, [%r1+7]\nexit");
    let jit = JitProgram::compile(&prog).unwrap();
    let mut session = jit.session();
    for len in [8usize, 7, 0, 0, 16, 8, 1, 0, 8] {
        let mut m: Vec<u8> = (0..len as u8).collect();
        let s = session.run_with_memory(&mut TailHost, &mut m);
        let f = jit.run_with_memory(&mut Vm::default(), &mut TailHost, &mut m);
        assert_eq!(s, f, "memory of {len} bytes");
        assert_eq!(s.result.is_ok(), len >= 8, "memory of {len} bytes: {s:?}");
    }
}

/// One buffer, in prefixes of several lengths: a run on the very memory of the run before keeps
/// its row, but one on a shorter or longer part of it (the same address) must see its own bounds.
#[test]
fn a_session_follows_the_length_of_one_buffer() {
    let prog = program("ldxb %r0, [%r1+7]\nexit");
    let jit = JitProgram::compile(&prog).unwrap();
    let mut session = jit.session();
    let mut buf: Vec<u8> = (10..26).collect();
    for len in [8usize, 8, 4, 4, 8, 0, 0, 16, 7, 8, 8] {
        let m = &mut buf[..len];
        let s = session.run_with_memory(&mut TailHost, m);
        let f = jit.run_with_memory(&mut Vm::default(), &mut TailHost, m);
        assert_eq!(s, f, "the first {len} bytes");
        assert_eq!(
            s.result.ok(),
            (len >= 8).then_some(17),
            "the first {len} bytes"
        );
    }
}

/// `Executable::prepare`: runs on the caller's maps through one kept context give, run after
/// run, what `execute` gives, after programs that write, trap, tail-call and run out of budget.
#[test]
fn prepared_runs_run_as_execute() {
    use bpfsim_vm::Executable;
    for src in [WRITER, TRAPPER, TAILER, LOOPER, READER] {
        let jit = JitProgram::compile(&program(src)).unwrap();
        let mut prepared = jit.prepare().expect("the JIT keeps its run context");
        let (mut vm_a, mut vm_b) = (Vm::default(), Vm::default());
        let (mut a, mut b) = ([3u8; 8], [3u8; 8]);
        for budget in [50, 7, 50, 3, 50] {
            let mut mem = vm_a.memory();
            let addr = mem.map_mut(&mut a).unwrap();
            let p = prepared.execute(&mut mem, &mut TailHost, [addr, 8, 0, 0, 0], budget);
            drop(mem);
            let mut mem = vm_b.memory();
            let addr = mem.map_mut(&mut b).unwrap();
            let e = jit.execute(&mut mem, &mut TailHost, [addr, 8, 0, 0, 0], budget);
            drop(mem);
            assert_eq!(p, e, "{src} with budget {budget}");
            assert_eq!(a, b, "{src} with budget {budget}: memory");
        }
    }
}

/// The lean entry puts a run's memory in the region table itself (no memory map is built unless
/// the run leaves the fast path): an access that walks the table (one the verifier said never
/// reaches the context) must find each run's own memory there, never the last run's, however
/// the sizes go; and the same through a shim (no hint: the fault is decided in Rust, on a map
/// built for the run).
#[test]
fn lean_runs_find_their_own_memory_in_the_table() {
    let prog = program("ldxb %r0, [%r1+7]\nstb [%r1+7], 0x55\nexit");
    let hinted = JitProgram::compile_with(
        &prog,
        &bpfsim_jit::Hints {
            no_ctx: vec![true; 3],
            ..Default::default()
        },
    )
    .unwrap();
    let plain = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    for jit in [&hinted, &plain] {
        let mut session = jit.session();
        for len in [8usize, 0, 16, 7, 0, 8, 1, 9] {
            let mut m: Vec<u8> = (0..len as u8).collect();
            let mut n = m.clone();
            let s = session.run_with_memory(&mut TailHost, &mut m);
            let i = Vm::default().run_with_memory(&interp, &mut TailHost, &mut n);
            assert_eq!(s, i, "memory of {len} bytes");
            assert_eq!(m, n, "memory of {len} bytes");
            assert_eq!(s.result.is_ok(), len >= 8, "memory of {len} bytes: {s:?}");
        }
    }
}

/// After a lean run, a map the caller builds from the session's VM holds only the stack: the
/// region the last run's memory had is unmapped again (its buffer may be gone).
#[test]
fn a_lean_run_leaves_nothing_for_the_next_map() {
    let jit = JitProgram::compile(&program("mov %r0, %r1\nexit")).unwrap();
    let mut session = jit.session();
    let mut first = vec![42u8; 8];
    // The guest address the run's memory had.
    let addr = session
        .run_with_memory(&mut TailHost, &mut first)
        .result
        .unwrap();
    assert_eq!(addr, (bpfsim_vm::memory::FIXED_ROWS as u64) << 32);
    drop(first);
    let reader = Interpreter::new(&program("ldxb %r0, [%r1+0]\nexit"));
    let mut mem = session.vm().memory();
    assert_eq!(mem.region_table().1, bpfsim_vm::memory::FIXED_ROWS);
    let out = reader.run(&mut mem, &mut TailHost, [addr, 0, 0, 0, 0], 100);
    assert_eq!(out.result.unwrap_err().code, TrapCode::MemoryRead);
}

/// Counts its runs: helper 2 returns how many times it was called in this run (reset by
/// `begin_run`), helper 12 tail-calls, helper 1 writes memory as `TailHost`'s does.
#[derive(Default)]
struct RunCounter {
    calls: u64,
    begun: u32,
}

impl Host for RunCounter {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            2 => {
                self.calls += 1;
                Ok(self.calls)
            }
            _ => TailHost.call_helper(id, args, mem),
        }
    }

    fn begin_run(&mut self) {
        self.calls = 0;
        self.begun += 1;
    }
}

/// Calls helper 2 twice (r0 = 2 when the host forgot the last run's calls), after reading a
/// stack slot it then writes (which must read 0 in every run).
const COUNTER: &str = "
    ldxdw %r6, [%r10-8]
    stdw [%r10-8], 1
    call 2
    call 2
    add %r0, %r6
    exit
";

/// A batch of runs (`execute_repeat`, set up once by the JIT) against the same number of single
/// runs with the host told before each: the same last outcome and memory, a clean stack and a
/// reset host in every run, and a batch that stops at its first tail call.
#[test]
fn a_batch_runs_as_single_runs() {
    use bpfsim_vm::Executable;
    for src in [COUNTER, WRITER, TRAPPER, TAILER, LOOPER, READER] {
        let jit = JitProgram::compile(&program(src)).unwrap();
        let interp = Interpreter::new(&program(src));
        for n in [1u32, 2, 5] {
            let mut prepared = jit.prepare().expect("the JIT keeps its run context");
            let (mut vm_a, mut vm_b) = (Vm::default(), Vm::default());
            let (mut a, mut b) = ([3u8; 8], [3u8; 8]);
            let (mut host_a, mut host_b) = (RunCounter::default(), RunCounter::default());
            let mut mem = vm_a.memory();
            let addr = mem.map_mut(&mut a).unwrap();
            let (batch, k) =
                prepared.execute_repeat(&mut mem, &mut host_a, [addr, 8, 0, 0, 0], 50, n);
            drop(mem);
            let mut mem = vm_b.memory();
            let addr = mem.map_mut(&mut b).unwrap();
            let mut single = None;
            let mut runs = 0;
            for i in 0..n {
                if i > 0 {
                    host_b.begin_run();
                }
                let out = interp.execute(&mut mem, &mut host_b, [addr, 8, 0, 0, 0], 50);
                runs += 1;
                single = Some(out);
                if out.tail_call.is_some() {
                    break;
                }
            }
            drop(mem);
            assert_eq!(Some(batch), single, "{src} x{n}");
            assert_eq!(k, runs, "{src} x{n}: runs done");
            assert_eq!(a, b, "{src} x{n}: memory");
            // A host no run can reach need not hear of the runs (nothing could tell).
            if src.contains("call") {
                assert_eq!(host_a.begun, host_b.begun, "{src} x{n}: runs begun");
            }
        }
    }
    // What the comparison is about: the counter program sees a reset host and a clean stack in
    // the fifth run of a batch, and a tail call ends a batch at once.
    let jit = JitProgram::compile(&program(COUNTER)).unwrap();
    let mut prepared = jit.prepare().unwrap();
    let mut vm = Vm::default();
    let mut host = RunCounter::default();
    let (out, k) = prepared.execute_repeat(&mut vm.memory(), &mut host, [0; 5], 50, 5);
    assert_eq!((out.result, k, host.begun), (Ok(2), 5, 4));
    let jit = JitProgram::compile(&program(TAILER)).unwrap();
    let mut prepared = jit.prepare().unwrap();
    let mut m = [0u8; 8];
    let mut mem = vm.memory();
    let addr = mem.map_mut(&mut m).unwrap();
    let (out, k) = prepared.execute_repeat(
        &mut mem,
        &mut RunCounter::default(),
        [addr, 8, 0, 0, 0],
        50,
        5,
    );
    assert_eq!((out.tail_call, k), (Some(3), 1));
    // The `_into` forms the runner uses write the same outcomes in place, over whatever the
    // place held.
    let mut into = bpfsim_vm::Outcome {
        result: Ok(77),
        insns: 99,
        tail_call: Some(9),
    };
    let k = prepared.execute_repeat_into(
        &mut mem,
        &mut RunCounter::default(),
        [addr, 8, 0, 0, 0],
        50,
        5,
        &mut into,
    );
    assert_eq!((into, k), (out, 1));
    let single = prepared.execute(&mut mem, &mut RunCounter::default(), [addr, 8, 0, 0, 0], 50);
    into.result = Ok(77);
    prepared.execute_into(
        &mut mem,
        &mut RunCounter::default(),
        [addr, 8, 0, 0, 0],
        50,
        &mut into,
    );
    assert_eq!(into, single);
    drop(mem);
    let jit = JitProgram::compile(&program(COUNTER)).unwrap();
    let mut prepared = jit.prepare().unwrap();
    let mut host = RunCounter::default();
    let k = prepared.execute_repeat_into(&mut vm.memory(), &mut host, [0; 5], 50, 5, &mut into);
    assert_eq!(
        (into.result, into.tail_call, k, host.begun),
        (Ok(2), None, 5, 4)
    );
}

/// A session keeps frame 0's clearing and the budget from run to run on raw memory; whatever the
/// caller changes between runs through `vm()` (the budget, the stack, by running another program
/// on it) or through `run` (another map's stack and table) must be seen by the next run, which
/// then gives what a run on a fresh `Vm` gives.
#[test]
fn a_session_sees_what_the_caller_changed_between_runs() {
    let writer = program(WRITER);
    let reader = program(READER);
    let jit_w = JitProgram::compile(&writer).unwrap();
    let jit_r = JitProgram::compile(&reader).unwrap();
    let fresh = |jit: &JitProgram, budget: u64, mem: &mut [u8]| {
        let mut vm = Vm::default();
        vm.budget = budget;
        jit.run_with_memory(&mut vm, &mut TailHost, mem)
    };

    // The budget: lowered below the writer's seven instructions, then raised again.
    let mut s = jit_w.session();
    let mut mem = vec![3u8; 8];
    let mut set = s.vm().budget;
    for budget in [1000, 1000, 1000, 3, 3, 1000, 1000] {
        if budget != set {
            s.vm().budget = budget;
            set = budget;
        }
        let mut want_mem = mem.clone();
        let want = fresh(&jit_w, budget, &mut want_mem);
        let got = s.run_with_memory(&mut TailHost, &mut mem);
        assert_eq!(got, want, "budget {budget}");
        assert_eq!(mem, want_mem, "budget {budget}");
    }
    assert_eq!(
        fresh(&jit_w, 3, &mut [0; 8]).result.unwrap_err().code,
        TrapCode::Budget
    );

    // The stack: another program writes it through the session's `Vm`, then the reader (which
    // never writes, so it keeps no clearing of its own) must still find zeros.
    let mut s = jit_r.session();
    let interp_w = Interpreter::new(&writer);
    for round in 0..3 {
        let mut mem = vec![0u8; 8];
        assert_eq!(s.run_with_memory(&mut TailHost, &mut mem).result, Ok(0));
        assert_eq!(s.run_with_memory(&mut TailHost, &mut mem).result, Ok(0));
        let vm = s.vm();
        let wrote = vm.run_with_memory(&interp_w, &mut TailHost, &mut mem);
        assert_eq!(wrote.result, Ok(1), "round {round}: the writer ran");
        // The writer left 7 in its slot and 1 in the memory's first byte.
        assert_eq!(
            s.run_with_memory(&mut TailHost, &mut mem).result,
            Ok(1 << 8),
            "round {round}: the reader after the writer"
        );
    }

    // Another map's stack: a run through `run` points the context at it; the next lean run must
    // use the session's own stack again (cleared), not the other one, which it must not touch.
    let mut s = jit_w.session();
    let mut other = Vm::default();
    for round in 0..3 {
        let mut mem = vec![3u8; 8];
        let lean = s.run_with_memory(&mut TailHost, &mut mem);
        assert_eq!(lean.result, Ok(4), "round {round}: lean run");
        let mut m = other.memory();
        let input = m.map_mut(&mut mem).unwrap();
        let on_map = s.run(&mut m, &mut TailHost, [input, 8, 0, 0, 0], 1000);
        drop(m);
        // The entry cleared the other stack's slot (its 7 of the round before): only the byte.
        assert_eq!(on_map.result, Ok(5), "round {round}: run on a map");
        let lean = s.run_with_memory(&mut TailHost, &mut mem);
        // Its own stack's slot reads 0 again: only the memory's byte (now 6) counts.
        assert_eq!(lean.result, Ok(6), "round {round}: lean run after");
        // The lean runs wrote only the session's stack: the other still holds its 7.
        let m = other.memory();
        let fp = bpfsim_vm::memory::frame_pointer(0);
        assert_eq!(m.load(fp - 8, bpfsim_vm::isa::Size::DW), Ok(7));
    }
}
