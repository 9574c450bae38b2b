//! Interpreter semantics beyond the conformance suite: traps, budget, frames, helpers.

use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::{encode, Insn, Reg};
use bpfsim_vm::memory::{frame_pointer, MemoryMap, Stack, MAX_FRAMES};
use bpfsim_vm::{ConformanceHost, Interpreter, NoHelpers, Outcome, Program, Trap, TrapCode, Vm};

fn load(src: &str) -> Interpreter {
    let prog = Program::new(assemble(src).expect("assembles")).expect("structurally valid");
    Interpreter::new(&prog)
}

fn run_mem(src: &str, mem: &mut [u8]) -> Outcome {
    Vm::default().run_with_memory(&load(src), &mut ConformanceHost, mem)
}

fn run(src: &str) -> Outcome {
    run_mem(src, &mut [])
}

fn trap(src: &str) -> Trap {
    run(src).result.expect_err("program should trap")
}

#[test]
fn out_of_bounds_accesses_trap_with_pc_and_address() {
    let mut mem = [0u8; 8];
    let t = run_mem("mov %r0, 0\nldxdw %r0, [%r1+1]\nexit", &mut mem)
        .result
        .unwrap_err();
    assert_eq!((t.code, t.pc, t.size), (TrapCode::MemoryRead, 1, 8));
    let base = t.detail - 1;
    let t = run_mem("stb [%r1-1], 1\nexit", &mut mem)
        .result
        .unwrap_err();
    assert_eq!(
        (t.code, t.pc, t.detail),
        (TrapCode::MemoryWrite, 0, base.wrapping_sub(1))
    );
    // NULL and small integers never map.
    let t = trap("mov %r1, 0\nldxb %r0, [%r1]\nexit");
    assert_eq!((t.code, t.detail), (TrapCode::MemoryRead, 0));
    // Above the top of the stack.
    let t = trap("ldxb %r0, [%r10]\nexit");
    assert_eq!((t.code, t.detail), (TrapCode::MemoryRead, frame_pointer(0)));
    // An atomic needs write access too.
    let t = trap("mov %r1, 1\nlock add [%r10+0], %r1\nexit");
    assert_eq!((t.code, t.pc), (TrapCode::MemoryWrite, 1));
    assert!(t.to_string().contains("at pc 1"), "{t}");
}

#[test]
fn read_only_regions_reject_writes() {
    let prog = load("stb [%r1], 7\nexit");
    let mut stack = Stack::default();
    let ro = [1u8; 4];
    let mut table = Default::default();
    let mut mem = MemoryMap::new(&mut stack, &mut table);
    let addr = mem.map_ro(&ro).unwrap();
    let out = prog.run(&mut mem, &mut NoHelpers, [addr, 0, 0, 0, 0], 100);
    assert_eq!(out.result.unwrap_err().code, TrapCode::MemoryWrite);
    let prog = load("ldxb %r0, [%r1+3]\nexit");
    assert_eq!(
        prog.run(&mut mem, &mut NoHelpers, [addr, 0, 0, 0, 0], 100)
            .result,
        Ok(1)
    );
}

#[test]
fn budget_stops_runaway_programs_exactly() {
    let prog = load("mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit");
    let mut vm = Vm::default();
    vm.budget = 1001;
    let out = vm.run_with_memory(&prog, &mut NoHelpers, &mut []);
    let t = out.result.unwrap_err();
    assert_eq!((t.code, t.detail), (TrapCode::Budget, 1001));
    assert_eq!(out.insns, 1001);
    // 1 + 2 * 500 instructions ran: the 1002nd would be `add` at pc 1.
    assert_eq!(t.pc, 1);
    // A program that fits its budget exactly completes.
    vm.budget = 3;
    let ok = vm.run_with_memory(
        &load("mov %r0, 2\nadd %r0, 1\nexit"),
        &mut NoHelpers,
        &mut [],
    );
    assert_eq!((ok.result, ok.insns), (Ok(3), 3));
}

#[test]
fn local_calls_preserve_callee_saved_registers_and_use_their_own_frame() {
    let src = "
        mov %r6, 6
        mov %r9, 9
        stdw [%r10-8], 42
        mov %r1, 5
        call local f
        add %r0, %r6
        add %r0, %r9
        ldxdw %r1, [%r10-8]
        add %r0, %r1
        exit
    f:
        mov %r6, 100
        mov %r9, 100
        stdw [%r10-8], 1000
        mov %r0, %r1
        exit";
    // 5 + 6 + 9 + 42: r6, r9 and the caller's stack slot survive the call.
    assert_eq!(run(src).result, Ok(62));
    // The caller's frame is not reachable above the callee's r10.
    let t = trap("call local f\nexit\nf:\nldxdw %r0, [%r10+8]\nexit");
    assert_eq!((t.code, t.pc), (TrapCode::MemoryRead, 2));
}

#[test]
fn call_depth_is_limited_to_eight_frames() {
    let t = trap("call local f\nexit\nf:\ncall local f\nexit");
    assert_eq!(
        (t.code, t.pc, t.detail),
        (TrapCode::CallDepth, 2, MAX_FRAMES as u64)
    );
    // Seven nested calls (eight frames) are fine.
    let mut src = String::new();
    for i in 0..7 {
        src += &format!("call local f{i}\nexit\nf{i}:\n");
    }
    src += "mov %r0, 7\nexit";
    assert_eq!(run(&src).result, Ok(7));
}

#[test]
fn every_frame_starts_zeroed_and_runs_are_deterministic() {
    let prog = load("ldxdw %r0, [%r10-8]\nstdw [%r10-8], 99\ncall local f\nexit\nf:\nldxdw %r1, [%r10-8]\nstdw [%r10-8], 5\nadd %r0, %r1\nexit");
    let mut vm = Vm::default();
    for _ in 0..3 {
        assert_eq!(
            vm.run_with_memory(&prog, &mut NoHelpers, &mut []).result,
            Ok(0)
        );
    }
}

#[test]
fn helpers_unknown_ids_and_unwind() {
    let t = Vm::default()
        .run_with_memory(&load("call 1\nexit"), &mut NoHelpers, &mut [])
        .result
        .unwrap_err();
    assert_eq!((t.code, t.detail), (TrapCode::UnknownHelper, 1));
    // callx with a register value that is no helper id.
    let t = trap("lddw %r2, 0x100000005\ncall %r2\nexit");
    assert_eq!(
        (t.code, t.pc, t.detail),
        (TrapCode::UnknownHelper, 2, 0x1_0000_0005)
    );
    // unwind(0) ends the program with r0 = 0 at once.
    assert_eq!(run("mov %r1, 0\ncall 5\nmov %r0, 3\nexit").result, Ok(0));
    assert_eq!(run("mov %r1, 7\ncall 5\nexit").result, Ok(7));
}

#[test]
fn unresolved_references_and_kernel_only_instructions_trap() {
    for (src, pc) in [
        ("mov %r0, 0\nlddw %r1, map_fd 3\nexit", 1),
        ("call runtime 1234\nexit", 0),
        ("ldabsb 12\nexit", 0),
        ("mov %r1, 0\nldindw %r1, 4\nexit", 1),
    ] {
        let t = trap(src);
        assert_eq!((t.code, t.pc), (TrapCode::Unsupported, pc), "{src}");
        if src.contains("ldabsb") {
            assert_eq!(t.detail, 0x30, "the opcode of ldabsb");
        }
    }
}

#[test]
fn division_and_modulo_edge_cases() {
    // mod32 by zero keeps the low half and, like every 32-bit op, zeroes the high half (RFC 9669).
    assert_eq!(
        run("lddw %r0, 0x100000005\nmod32 %r0, 0\nexit").result,
        Ok(5)
    );
    assert_eq!(
        run("lddw %r0, 0x100000005\nmov %r1, 0\nmod %r0, %r1\nexit").result,
        Ok(0x1_0000_0005)
    );
    assert_eq!(
        run("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit").result,
        Ok(1 << 63)
    );
    assert_eq!(
        run("lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit").result,
        Ok(0)
    );
    assert_eq!(
        run("mov %r0, -7\nsmod32 %r0, 0\nexit").result,
        Ok(0xffff_fff9)
    );
    assert_eq!(run("mov %r0, 7\ndiv %r0, 0\nexit").result, Ok(0));
    // Immediates of 64-bit ops are sign-extended: 7 / 0xffffffffffffffff = 0.
    assert_eq!(run("mov %r0, 7\ndiv %r0, -1\nexit").result, Ok(0));
}

#[test]
fn load_acquire_and_store_release() {
    let src = "mov %r1, 77\nstrelw [%r10-4], %r1\nldacqw %r0, [%r10-4]\nexit";
    assert_eq!(run(src).result, Ok(77));
}

#[test]
fn interpreter_is_reusable_across_runs_and_inputs() {
    let prog = load("ldxb %r0, [%r1]\nexit");
    let mut vm = Vm::default();
    for b in [1u8, 2, 3] {
        let mut mem = [b];
        assert_eq!(
            vm.run_with_memory(&prog, &mut NoHelpers, &mut mem).result,
            Ok(b as u64)
        );
    }
}

#[test]
fn writes_reach_the_callers_buffer() {
    let mut mem = [0u8; 4];
    assert!(run_mem("stw [%r1], 0x01020304\nmov %r0, 0\nexit", &mut mem)
        .result
        .is_ok());
    assert_eq!(mem, [4, 3, 2, 1]);
}

#[test]
fn program_round_trips_to_bytes() {
    let insns = assemble("lddw %r0, 0x1122334455667788\nexit").unwrap();
    let prog = Program::from_bytes(&encode(&insns)).unwrap();
    assert_eq!(prog.insns(), &insns[..]);
    assert_eq!(prog.to_bytes(), encode(&insns));
    assert_eq!(
        insns[0],
        Insn::LdImm64 {
            dst: Reg::R0,
            imm: bpfsim_vm::isa::Imm64::Imm(0x1122334455667788)
        }
    );
}

#[test]
fn a_run_never_sees_stack_bytes_of_an_earlier_run_of_another_program() {
    let writer = load("stdw [%r10-8], 99\nmov %r0, 0\nexit");
    let reader = load("ldxdw %r0, [%r10-8]\nexit");
    let mut vm = Vm::default();
    assert_eq!(
        vm.run_with_memory(&reader, &mut NoHelpers, &mut []).result,
        Ok(0)
    );
    assert_eq!(
        vm.run_with_memory(&writer, &mut NoHelpers, &mut []).result,
        Ok(0)
    );
    // The reader writes nothing, and must still see the writer's bytes cleared, every time.
    for _ in 0..2 {
        assert_eq!(
            vm.run_with_memory(&reader, &mut NoHelpers, &mut []).result,
            Ok(0)
        );
    }
    // A helper may write the stack through a pointer, so a helper call also dirties it.
    let helper = load("mov %r1, 1\ncall 5\nexit");
    assert_eq!(
        vm.run_with_memory(&helper, &mut ConformanceHost, &mut [])
            .result,
        Ok(1)
    );
    assert_eq!(
        vm.run_with_memory(&reader, &mut NoHelpers, &mut []).result,
        Ok(0)
    );
}

#[test]
fn callers_map_their_own_regions() {
    let prog = load("ldxw %r0, [%r2]\nldxb %r3, [%r1+1]\nadd %r0, %r3\nexit");
    let mut vm = Vm::default();
    let budget = vm.budget;
    let mut a = [0u8, 5];
    let b = 100u32.to_le_bytes();
    for _ in 0..2 {
        let mut mem = vm.memory();
        let ra = mem.map_mut(&mut a).unwrap();
        let rb = mem.map_ro(&b).unwrap();
        let out = prog.run(&mut mem, &mut NoHelpers, [ra, rb, 0, 0, 0], budget);
        assert_eq!(out.result, Ok(105));
    }
}

/// A host with a socket buffer, to drive `ldabs`/`ldind`.
struct Packet(Vec<u8>);

impl bpfsim_vm::Host for Packet {
    fn call_helper(
        &mut self,
        _: u32,
        _: [u64; 5],
        _: &mut MemoryMap<'_>,
    ) -> Result<u64, bpfsim_vm::HelperStop> {
        Err(bpfsim_vm::HelperStop::Unknown)
    }

    fn load_packet(
        &mut self,
        _: &mut MemoryMap<'_>,
        offset: i64,
        size: bpfsim_vm::isa::Size,
    ) -> Result<Option<u64>, bpfsim_vm::HelperStop> {
        let n = size.bytes();
        let Ok(at) = usize::try_from(offset) else {
            return Ok(None);
        };
        Ok(self
            .0
            .get(at..at + n)
            .map(|b| b.iter().fold(0u64, |acc, &x| acc << 8 | x as u64)))
    }
}

#[test]
fn legacy_packet_loads_go_to_the_host() {
    let run = |src: &str| {
        Vm::default()
            .run_with_memory(
                &load(src),
                &mut Packet(vec![0x45, 0, 0x12, 0x34, 6, 7]),
                &mut [],
            )
            .result
    };
    assert_eq!(
        run("ldabsh 2
exit"),
        Ok(0x1234)
    );
    assert_eq!(
        run("mov %r6, 1
ldindw %r6, 1
exit"),
        Ok(0x1234_0607)
    );
    // Outside the packet the program ends at once with r0 = 0.
    assert_eq!(
        run("ldabsb 6
mov %r0, 9
exit"),
        Ok(0)
    );
    assert_eq!(
        run("mov %r6, -1
ldindb %r6, 0
mov %r0, 9
exit"),
        Ok(0)
    );
}

/// A host whose helper 12 asks to continue in program 7.
struct TailCaller;

impl bpfsim_vm::Host for TailCaller {
    fn call_helper(
        &mut self,
        id: u32,
        _: [u64; 5],
        _: &mut MemoryMap<'_>,
    ) -> Result<u64, bpfsim_vm::HelperStop> {
        match id {
            12 => Err(bpfsim_vm::HelperStop::TailCall(7)),
            _ => Err(bpfsim_vm::HelperStop::Unknown),
        }
    }
}

#[test]
fn a_tail_call_ends_the_run_and_names_the_next_program() {
    let out = Vm::default().run_with_memory(
        &load("mov %r6, 1\ncall local f\nmov %r0, 9\nexit\nf:\ncall 12\nmov %r0, 5\nexit"),
        &mut TailCaller,
        &mut [],
    );
    assert_eq!((out.result, out.tail_call, out.insns), (Ok(0), Some(7), 3));
    let plain = Vm::default().run_with_memory(&load("mov %r0, 1\nexit"), &mut TailCaller, &mut []);
    assert_eq!(plain.tail_call, None);
}

/// A host whose helper 181 asks the VM to loop over the callback in r2, as `bpf_loop` does.
struct Looper;

impl bpfsim_vm::Host for Looper {
    fn call_helper(
        &mut self,
        id: u32,
        a: [u64; 5],
        _: &mut MemoryMap<'_>,
    ) -> Result<u64, bpfsim_vm::HelperStop> {
        match id {
            181 => Err(bpfsim_vm::HelperStop::Loop {
                func: a[1],
                iterations: a[0] as u32,
                ctx: a[2],
            }),
            _ => Err(bpfsim_vm::HelperStop::Unknown),
        }
    }
}

#[test]
fn callbacks_run_in_their_own_frame_and_bad_code_pointers_trap() {
    let run = |src: &str| {
        Vm::default()
            .run_with_memory(&load(src), &mut Looper, &mut [])
            .result
    };
    // The callback returns 1 at i == 3: four calls; r6 of the caller survives.
    let ok = "mov %r6, 40\nmov %r1, 10\nlddw %r2, func cb\ncall 181\nadd %r0, %r6\nexit\ncb:\nmov %r6, 0\nmov %r0, 0\njne %r1, 3, +1\nmov %r0, 1\nexit";
    assert_eq!(run(ok), Ok(44));
    // A data pointer is not code.
    let t = run("mov %r1, 1\nmov %r2, %r10\ncall 181\nexit").unwrap_err();
    assert_eq!((t.code, t.pc), (TrapCode::HelperFault, 2));
    // A callback that recurses through bpf_loop runs out of frames, and traps.
    let deep = "mov %r1, 1\nlddw %r2, func cb\ncall 181\nexit\ncb:\nmov %r1, 1\nlddw %r2, func cb\ncall 181\nexit";
    assert_eq!(run(deep).unwrap_err().code, TrapCode::CallDepth);
}

/// The budget trap names the run's whole budget wherever the budget runs out: in the main
/// frame, a local call, a `bpf_loop` callback, and in the per-instruction finish of a run the
/// budget could not pay for (levels leave the detail to the run's entry, which writes it).
#[test]
fn the_budget_trap_names_the_whole_budget_wherever_it_runs_out() {
    let src =
        "mov %r6, 0\ncall local f\nmov %r1, 5\nlddw %r2, func cb\ncall 181\nadd %r0, %r6\nexit\n\
               f:\nmov %r0, 1\nadd %r0, 2\nexit\n\
               cb:\nmov %r0, 0\nadd %r6, 1\nexit";
    let prog = load(src);
    let mut vm = Vm::default();
    let mut traps = 0;
    let mut pcs = Vec::new();
    for budget in 0..40 {
        vm.budget = budget;
        let out = vm.run_with_memory(&prog, &mut Looper, &mut []);
        match out.result {
            Err(t) => {
                assert_eq!(
                    (t.code, t.detail),
                    (TrapCode::Budget, budget),
                    "budget {budget}"
                );
                assert_eq!(out.insns, budget);
                traps += 1;
                pcs.push(t.pc);
            }
            Ok(_) => assert!(out.insns <= budget),
        }
    }
    // The budget ran out in every frame: main (slots 0-7), the local call (8-10), the callback.
    assert!(pcs.iter().any(|&pc| pc < 8));
    assert!(pcs.iter().any(|&pc| (8..11).contains(&pc)));
    assert!(pcs.iter().any(|&pc| pc >= 11));
    assert!(traps > 20, "{traps}");
    // Another engine's hand-over: the total, not the steps left for the finish.
    let mut stack = Stack::default();
    let mut table = Default::default();
    let mut mem = MemoryMap::new(&mut stack, &mut table);
    let mut regs = [0u64; 11];
    regs[10] = frame_pointer(0);
    let out = prog.finish_budget(&mut mem, &mut Looper, regs, 0, 0, &[], 3, 1000);
    let t = out.result.unwrap_err();
    assert_eq!(
        (t.code, t.detail, t.pc, out.insns),
        (TrapCode::Budget, 1000, 9, 3)
    );
    let mut left = 1;
    let t = prog
        .run_callbacks(
            bpfsim_vm::interp::FUNC_TAG | 11,
            0,
            &mut [[0u64; 5]; 2].into_iter(),
            &mut mem,
            &mut Looper,
            &mut left,
            77,
            4,
            181,
        )
        .unwrap_err();
    assert_eq!((t.code, t.detail), (TrapCode::Budget, 77));
}
