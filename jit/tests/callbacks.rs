//! Helpers with callbacks (`bpf_loop`) under the JIT: the interpreter runs the callback with the
//! run's exact budget, so every budget, from none to enough, ends both engines at the same pc
//! with the same count, result and memory; a fault inside the callback has the callback's pc.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

/// `bpf_loop(n, callback, ctx, flags)` (helper 181) and helper 1, which returns r1 + 1.
struct LoopHost;

impl Host for LoopHost {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            181 => Err(HelperStop::Loop {
                func: args[1],
                iterations: args[0] as u32,
                ctx: args[2],
            }),
            1 => Ok(args[0].wrapping_add(1)),
            _ => Err(HelperStop::Unknown),
        }
    }
}

/// Sums i * 3 for i < 5 into the first 8 bytes of memory through the callback, and runs a few
/// more instructions after the loop in the same block, so that the budget can run out before,
/// inside and after the callbacks.
const SUM: &str = "
    mov %r6, %r1
    stdw [%r6+0], 0
    mov %r1, 5
    lddw %r2, func +10
    mov %r3, %r6
    mov %r4, 0
    call 181
    mov %r7, %r0
    ldxdw %r0, [%r6+0]
    add %r0, %r7
    mov %r1, %r0
    call 1
    exit
    mov %r3, %r1
    mul %r3, 3
    ldxdw %r4, [%r2+0]
    add %r4, %r3
    stdw [%r2+0], 0
    stxdw [%r2+0], %r4
    mov %r0, 0
    exit
";

fn both(src: &str, budget: u64) -> (bpfsim_vm::Outcome, bpfsim_vm::Outcome) {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    vm.budget = budget;
    let mut m1 = [0u8; 16];
    let a = vm.run_with_memory(&interp, &mut LoopHost, &mut m1);
    let mut m2 = [0u8; 16];
    let b = jit.run_with_memory(&mut vm, &mut LoopHost, &mut m2);
    assert_eq!(m1, m2, "memory at budget {budget}");
    (a, b)
}

#[test]
fn bpf_loop_under_the_jit() {
    let (a, b) = both(SUM, 100_000);
    // 0+3+6+9+12 = 30, plus the 5 calls bpf_loop reports, plus one from helper 1.
    assert_eq!(a.result, Ok(36));
    assert_eq!(a, b);
}

#[test]
fn every_budget_stops_both_engines_alike() {
    let (full, _) = both(SUM, 100_000);
    for budget in (0..=full.insns + 1).chain([full.insns * 2 + 1_000]) {
        let (a, b) = both(SUM, budget);
        assert_eq!(a, b, "budget {budget}");
    }
}

#[test]
fn a_fault_inside_the_callback_has_its_pc() {
    // The callback reads through its ctx, which is 0 here: a null dereference at the callback's
    // third instruction.
    let src = SUM.replace("mov %r3, %r6", "mov %r3, 0");
    let (a, b) = both(&src, 100_000);
    let trap = a.result.expect_err("the callback faults");
    assert_eq!(a, b);
    let cb = Program::new(assemble(&src).unwrap())
        .unwrap()
        .iter()
        .count();
    assert!(
        trap.pc > 12 && trap.pc < cb,
        "pc {} is in the callback",
        trap.pc
    );
}

/// `bpf_map_lookup_elem` (helper 1) and helper 181 as `bpf_loop`, three calls of the function
/// in `r1` with the context in `r2`: both through the shims' own paths (the lookup's passes
/// two registers, the generic one five).
struct LookupLoops;

impl Host for LookupLoops {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            1 | 181 => Err(HelperStop::Loop {
                func: args[0],
                iterations: 3,
                ctx: args[1],
            }),
            _ => Err(HelperStop::Unknown),
        }
    }
}

/// When callbacks leave too little budget for the longest path after the call, the
/// interpreter takes the run over from the next instruction with every register as the code had
/// it: after each call every one of r0-r10 is stored to memory on a path shorter than the
/// longest (a jump over a tail that is never taken), so that the run can end after the
/// hand-over. Every budget, through both shims (the lookup's passes two registers, the generic
/// one five).
#[test]
fn callbacks_that_spend_the_budget_hand_over_every_register() {
    let mut after = String::new();
    for r in 0..=10 {
        after.push_str(&format!("stxdw [%r9+{}], %r{r}\n", 8 * r));
    }
    after.push_str("jne %r9, 0, +4\nadd %r0, 1\nadd %r0, 1\nadd %r0, 1\nadd %r0, 1\n");
    let src = format!(
        "mov %r9, %r1\nlddw %r3, 0x300\nlddw %r4, 0x4000\nmov %r5, 0x50\nmov %r6, 6\n\
         mov %r7, 0x700\nmov %r8, 0x8000\n\
         lddw %r1, func cb\nmov %r2, 17\ncall 1\n{after}\
         lddw %r1, func cb\nmov %r2, 5\ncall 181\n{after}exit\n\
         cb:\nmov %r0, %r1\nadd %r0, %r2\nmov %r6, %r0\nmul %r6, 7\nmov %r0, 0\nexit"
    );
    // Up to what the longest paths would need: the code hands over after the second call's
    // callbacks at budgets from the run's own count up, and the interpreter ends the run.
    lookup_loops_agree_at_every_budget(&src, 88, 8, "every register");
}

/// Every budget from none to `slack` past what the whole run of `src` takes, with
/// [`LookupLoops`]' helpers and `len` bytes of memory: the JIT's result, count and memory are
/// the interpreter's.
fn lookup_loops_agree_at_every_budget(src: &str, len: usize, slack: u64, what: &str) {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    vm.budget = 100_000;
    let full = vm.run_with_memory(&interp, &mut LookupLoops, &mut vec![0u8; len]);
    assert!(full.result.is_ok(), "{what}: {full:?}");
    for budget in (0..=full.insns + slack).chain([full.insns * 2 + 1_000]) {
        vm.budget = budget;
        let mut m1 = vec![0u8; len];
        let a = vm.run_with_memory(&interp, &mut LookupLoops, &mut m1);
        let mut m2 = vec![0u8; len];
        let b = jit.run_with_memory(&mut vm, &mut LookupLoops, &mut m2);
        assert_eq!(a, b, "{what}, budget {budget}");
        assert_eq!(m1, m2, "{what}: memory at budget {budget}");
    }
}

/// The hand-over after callbacks carries only the registers some path after the call reads
/// before writing them: the code stores no other (a register written first, one the call's
/// result replaces), and a register read on one path only is carried. At every budget, through
/// both shims, the interpreter's result, count and memory.
#[test]
fn callbacks_that_spend_the_budget_hand_over_the_registers_read_after() {
    let after = "mov %r6, %r0\n\
                 mov %r4, %r7\n\
                 jeq %r9, 0, +3\n\
                 add %r0, %r8\n\
                 add %r0, %r3\n\
                 add %r0, 1\n\
                 stxdw [%r9+0], %r6\n\
                 stxdw [%r9+8], %r4\n\
                 stxdw [%r9+16], %r0\n\
                 mov %r3, 5\n\
                 mov %r5, %r3\n\
                 stxdw [%r9+24], %r5\n";
    for (call, args) in [
        ("call 1", "lddw %r1, func cb\nmov %r2, 17\n"),
        ("call 181", "lddw %r1, func cb\nmov %r2, 5\n"),
    ] {
        let src = format!(
            "mov %r9, %r1\nmov %r3, 0x33\nmov %r4, 0x44\nmov %r5, 0x55\nmov %r6, 6\n\
             mov %r7, 0x700\nmov %r8, 0x8000\n{args}{call}\n{after}mov %r0, 1\nexit\n\
             cb:\nmov %r0, %r1\nadd %r0, %r2\nmov %r6, %r0\nmul %r6, 7\nmov %r0, 0\nexit"
        );
        lookup_loops_agree_at_every_budget(&src, 32, 8, call);
    }
}

/// The hand-over at a loop's head when the budget cannot pay for the next iteration carries
/// only the registers read from there on: one written first in the loop, one written in the
/// loop before the exit path reads it, and one read on one path of the loop only (carried).
/// At every budget, the interpreter's result, count and memory.
#[test]
fn a_checkpoint_hands_over_the_registers_read_after() {
    let src = "mov %r9, %r1
mov %r6, 0x66
mov %r7, 5
mov %r8, 0x88
mov %r3, 0x33
mov %r0, 0
loop:
mov %r6, %r7
add %r0, %r6
jne %r7, 2, +1
add %r0, %r3
mov %r8, %r0
stxdw [%r9+0], %r8
sub %r7, 1
jne %r7, 0, loop
add %r0, %r8
stxdw [%r9+8], %r0
exit";
    lookup_loops_agree_at_every_budget(src, 16, 4, "loop head");
}

/// Callbacks as the simulator's helpers give them, and helpers that end the program: 181
/// `bpf_loop(n, func, ctx)` (with `inline`, exactly the simulator's: flags non-zero give
/// -EINVAL, `n` over `1 << 23` -E2BIG, and the code may make the calls itself,
/// [`Host::inline_loop`]; `asked` counts the loops it was asked for); 182 calls `func` with (k, r2, r3, r4, 0) for k in 10, 11, 12 (as
/// `bpf_for_each_map_elem` gives a map, key, value and context); 9 ends the program with r1
/// (`HelperStop::Exit`); 12 asks for a tail call to program r1; 2 faults when r1 is 0, else
/// returns r1 * 2.
#[derive(Default)]
struct Stops {
    inline: bool,
    asked: u32,
}

impl Host for Stops {
    fn inline_loop(&mut self) -> bool {
        self.inline
    }

    fn call_helper(
        &mut self,
        id: u32,
        a: [u64; 5],
        _mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        if id == 181 {
            self.asked += 1;
        }
        match id {
            181 if self.inline && a[3] != 0 => Ok(-22i64 as u64),
            181 if self.inline && a[0] > 1 << 23 => Ok(-7i64 as u64),
            181 => Err(HelperStop::Loop {
                func: a[1],
                iterations: a[0] as u32,
                ctx: a[2],
            }),
            182 => Err(HelperStop::CallEach {
                func: a[1],
                calls: (10..13).map(|k| [k, a[2], a[3], a[4], 0]).collect(),
            }),
            9 => Err(HelperStop::Exit(a[0])),
            12 => Err(HelperStop::TailCall(a[0] as u32)),
            2 if a[0] == 0 => Err(HelperStop::Fault),
            2 => Ok(a[0].wrapping_mul(2)),
            _ => Err(HelperStop::Unknown),
        }
    }
}

/// Runs `src` on 64 bytes of memory (r1 points at them) under both engines at every budget
/// from none to two past what the whole run takes, and asks for the same outcome and memory
/// at each: with a host whose `bpf_loop` the code may make itself ([`Host::inline_loop`])
/// and with one whose it may not. Returns the outcome of the whole run.
fn agree_at_every_budget(src: &str) -> bpfsim_vm::Outcome {
    agree_with_hosts(src, &[false, true])
}

/// [`agree_at_every_budget`] with the hosts `inlines` names (the whole run's, the first's).
fn agree_with_hosts(src: &str, inlines: &[bool]) -> bpfsim_vm::Outcome {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    vm.budget = 1_000_000;
    let mut first = Stops {
        inline: inlines[0],
        ..Stops::default()
    };
    let full = vm.run_with_memory(&interp, &mut first, &mut [0u8; 64]);
    for &inline in inlines {
        let host = || Stops {
            inline,
            ..Stops::default()
        };
        for budget in (0..=full.insns + 2).chain([full.insns * 2 + 1_000]) {
            vm.budget = budget;
            let mut m1 = [0u8; 64];
            let a = vm.run_with_memory(&interp, &mut host(), &mut m1);
            let mut m2 = [0u8; 64];
            let b = jit.run_with_memory(&mut vm, &mut host(), &mut m2);
            assert_eq!(a, b, "budget {budget}, inline {inline}\n{src}");
            assert_eq!(m1, m2, "memory at budget {budget}, inline {inline}\n{src}");
            // A session keeps its context from run to run (and a dirty stack).
            let mut s = jit.session();
            s.vm().budget = budget;
            for _ in 0..2 {
                let mut m3 = [0u8; 64];
                assert_eq!(
                    s.run_with_memory(&mut host(), &mut m3),
                    a,
                    "session, {budget}, inline {inline}"
                );
                assert_eq!(m1, m3, "session memory at budget {budget}, inline {inline}");
            }
        }
    }
    full
}

#[test]
fn the_callbacks_are_compiled_for_their_frame() {
    let prog = Program::new(assemble(SUM).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    assert_eq!(jit.compiled_callbacks(), vec![(14, 1)]);
}

/// `bpf_loop` over a callback that counts its calls in memory, writes its own stack (dirty from
/// the call before: each call starts zeroed) and stops the loop when the index reaches the
/// context's limit.
const EARLY_STOP: &str = "
    mov %r6, %r1
    mov %r1, 9
    lddw %r2, func cb
    mov %r3, %r6
    stdw [%r6+8], 3
    call 181
    ldxdw %r1, [%r6+0]
    lsh %r0, 8
    add %r0, %r1
    exit
cb:
    ldxdw %r3, [%r10-8]
    add %r3, %r1
    stxdw [%r10-8], %r3
    ldxdw %r4, [%r2+0]
    add %r4, %r3
    stxdw [%r2+0], %r4
    ldxdw %r5, [%r2+8]
    mov %r0, 0
    jlt %r1, %r5, +1
    mov %r0, 1
    exit
";

#[test]
fn a_callback_returning_one_stops_the_loop() {
    let out = agree_at_every_budget(EARLY_STOP);
    // Four calls (i = 0..=3), each adding its index: 6.
    assert_eq!(out.result, Ok(4 << 8 | 6));
}

#[test]
fn for_each_calls_stop_on_one_and_pass_four_arguments() {
    // The callback stores r1 + r3 + r4 (k, value, context) and stops at k == 11.
    let src = "
        mov %r6, %r1
        mov %r1, 0
        lddw %r2, func cb
        mov %r3, %r6
        mov %r4, 1000
        mov %r5, 7
        call 182
        ldxdw %r1, [%r6+0]
        lsh %r0, 16
        add %r0, %r1
        exit
    cb:
        mov %r0, %r1
        add %r0, %r3
        add %r0, %r4
        ldxdw %r5, [%r2+0]
        add %r5, %r0
        stxdw [%r2+0], %r5
        mov %r0, 0
        jne %r1, 11, +1
        mov %r0, 1
        exit
    ";
    let out = agree_at_every_budget(src);
    // Two calls (k = 10, 11), each adding k + the memory's address + 1000.
    assert_eq!(out.result.map(|r| r >> 16), Ok(2));
}

#[test]
fn faults_inside_compiled_callbacks_have_their_pc() {
    // The third call reads through a null pointer (a fault at the callback's fourth
    // instruction); helper 2 faults in the second call of the other.
    for src in [
        "mov %r6, %r1\nmov %r1, 5\nlddw %r2, func cb\nmov %r3, %r6\ncall 181\nexit\n\
         cb:\nmov %r0, 0\nmov %r3, %r2\njne %r1, 2, +1\nmov %r3, 0\nldxdw %r4, [%r3+0]\nexit",
        "mov %r6, %r1\nmov %r1, 5\nlddw %r2, func cb\nmov %r3, %r6\ncall 181\nexit\n\
         cb:\nmov %r7, %r1\nsub %r1, 1\ncall 2\nmov %r0, 0\nexit",
    ] {
        let out = agree_at_every_budget(src);
        let trap = out.result.expect_err("the callback faults");
        assert!(trap.pc >= 7, "pc {} is the callback's", trap.pc);
    }
}

#[test]
fn local_calls_and_nested_callbacks_inside_compiled_callbacks() {
    // The outer callback calls a subprogram (which writes its own frame and the caller's
    // through a pointer) and runs an inner `bpf_loop` of its own; the inner callback, two
    // frames below the main program, adds to the memory.
    let src = "
        mov %r6, %r1
        mov %r1, 3
        lddw %r2, func outer
        mov %r3, %r6
        call 181
        ldxdw %r1, [%r6+0]
        lsh %r0, 32
        add %r0, %r1
        exit
    outer:
        mov %r6, %r2
        mov %r7, %r1
        stxdw [%r10-16], %r1
        mov %r1, %r10
        add %r1, -16
        call local twice
        ldxdw %r2, [%r10-16]
        ldxdw %r3, [%r6+0]
        add %r3, %r2
        stxdw [%r6+0], %r3
        mov %r1, %r7
        add %r1, 1
        lddw %r2, func inner
        mov %r3, %r6
        mov %r4, 0
        call 181
        mov %r0, 0
        exit
    twice:
        ldxdw %r2, [%r1+0]
        stxdw [%r10-8], %r2
        ldxdw %r3, [%r10-8]
        add %r3, %r2
        stxdw [%r1+0], %r3
        mov %r0, %r3
        exit
    inner:
        ldxdw %r3, [%r2+0]
        add %r3, 100
        add %r3, %r1
        stxdw [%r2+0], %r3
        mov %r0, 0
        exit
    ";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    assert_eq!(jit.compiled_callbacks().len(), 2);
    let out = agree_at_every_budget(src);
    assert!(out.result.is_ok(), "{out:?}");
}

#[test]
fn recursion_inside_a_callback_keeps_the_depth_limit() {
    // The callback calls itself as a subprogram (no static depths: the depth in a variable)
    // until r1 reaches 0, or past the frame limit when the loop's index asks for 9 levels.
    let src = "
        mov %r6, %r1
        mov %r1, 3
        lddw %r2, func cb
        mov %r3, %r6
        call 181
        exit
    cb:
        mov %r6, %r2
        mul %r1, 4
        add %r1, 1
        call local down
        ldxdw %r3, [%r6+0]
        add %r3, %r0
        stxdw [%r6+0], %r3
        mov %r0, 0
        exit
    down:
        stxdw [%r10-8], %r1
        mov %r0, 1
        jeq %r1, 0, +4
        sub %r1, 1
        call local down
        ldxdw %r1, [%r10-8]
        add %r0, %r1
        exit
    ";
    let out = agree_at_every_budget(src);
    let trap = out.result.expect_err("the third call recurses too deep");
    assert_eq!(trap.code, bpfsim_vm::TrapCode::CallDepth);
}

#[test]
fn exits_and_tail_calls_inside_callbacks_end_only_that_call() {
    // Helper 9 ends the program with r1 and helper 12 asks for a tail call: inside a callback
    // either ends that call, with r1 or 0 as its return value, from a local call too.
    for (helper, calls) in [(9, 2), (12, 5)] {
        let src = format!(
            "mov %r6, %r1\nmov %r1, 5\nlddw %r2, func cb\nmov %r3, %r6\ncall 181\n\
             ldxdw %r1, [%r6+0]\nlsh %r0, 8\nadd %r0, %r1\nexit\n\
             cb:\nldxdw %r3, [%r2+0]\nadd %r3, 1\nstxdw [%r2+0], %r3\ncall local sub\n\
             mov %r0, 0\nexit\n\
             sub:\nmov %r0, 0\njne %r1, 1, +2\ncall {helper}\nmov %r0, 5\nmov %r0, 0\nexit"
        );
        let out = agree_at_every_budget(&src);
        assert_eq!(out.result, Ok(calls << 8 | calls), "{src}");
        assert_eq!(out.tail_call, None);
    }
}

#[test]
fn callbacks_from_another_depth_or_address_are_interpreted() {
    // The callback is compiled for the frame below the main program's, and also passed to
    // `bpf_loop` from a subprogram (its frame one deeper: the interpreter runs it there); a
    // code address that is not a callback's entry (its second instruction, where the
    // interpreter starts the call as asked: it overwrites the sum with 0 + 0 + 1) is the
    // interpreter's too.
    let src = "
        mov %r6, %r1
        mov %r1, 2
        lddw %r2, func cb
        mov %r3, %r6
        call 181
        mov %r1, %r6
        call local sub
        ldxdw %r0, [%r6+0]
        exit
    cb:
        ldxdw %r3, [%r2+0]
        add %r3, %r1
        add %r3, 1
        stxdw [%r2+0], %r3
        mov %r0, 0
        exit
    sub:
        mov %r6, %r1
        mov %r1, 3
        lddw %r2, func cb
        mov %r3, %r6
        call 181
        mov %r1, 1
        lddw %r2, func cb
        add %r2, 1
        mov %r3, %r6
        call 181
        exit
    ";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    assert_eq!(jit.compiled_callbacks(), vec![(10, 1)]);
    let out = agree_at_every_budget(src);
    assert_eq!(out.result, Ok(1));
}

#[test]
fn each_call_of_a_loop_starts_with_fresh_registers_and_frame() {
    // The code makes a loop's calls one after another: each must see r0 and r3-r9 zero, r1
    // its index, r2 the context, r10 its frame's top (a call that moved it must not leak) and
    // a zeroed frame, whatever the call before left in them. The callback sums what it sees
    // into memory, then dirties every register, moves r10 and writes its frame.
    let mut src = String::from(
        "mov %r6, %r1\nmov %r1, 4\nlddw %r2, func cb\nmov %r3, %r6\ncall 181\n\
         ldxdw %r0, [%r6+0]\nexit\ncb:\n",
    );
    for r in [0, 3, 4, 5, 6, 7, 8, 9] {
        src.push_str(&format!(
            "ldxdw %r1, [%r2+0]\nadd %r1, %r{r}\nstxdw [%r2+0], %r1\n"
        ));
    }
    src.push_str(
        "ldxdw %r1, [%r10-8]\nldxdw %r3, [%r2+0]\nadd %r3, %r1\nadd %r3, 1\nstxdw [%r2+0], %r3\n",
    );
    for r in [3, 4, 5, 6, 7, 8, 9] {
        src.push_str(&format!("mov %r{r}, 77\n"));
    }
    src.push_str("stdw [%r10-8], 1000\nadd %r10, -64\nmov %r0, 0\nexit\n");
    let out = agree_at_every_budget(&src);
    // Four calls, each adding 1 and nothing else.
    assert_eq!(out.result, Ok(4));
}

#[test]
fn an_inner_loop_leaves_the_outer_loops_count_alone() {
    // Regression: the outer callback runs an inner `bpf_loop` (3 calls) and then stops the outer
    // loop in its second call; the outer loop made 2 calls, whatever index the inner code
    // reached last (both loops' code keeps its call's index in the run's context).
    let src = "
        mov %r6, %r1
        mov %r1, 5
        lddw %r2, func outer
        mov %r3, %r6
        call 181
        exit
    outer:
        mov %r7, %r1
        mov %r8, %r2
        mov %r1, 3
        lddw %r2, func inner
        mov %r3, %r8
        call 181
        mov %r0, 0
        jne %r7, 1, +1
        mov %r0, 1
        exit
    inner:
        ldxdw %r3, [%r2+0]
        add %r3, 1
        stxdw [%r2+0], %r3
        mov %r0, 0
        exit
    ";
    let out = agree_at_every_budget(src);
    assert_eq!(out.result, Ok(2));
}

#[test]
fn callbacks_at_the_frame_limit() {
    // Six subprograms deep (frame 6), a `bpf_loop` whose callback runs in the last frame
    // (7, compiled for it) and asks for a loop of its own in its second call: there is no
    // frame left for that callback, a depth trap at the helper's call in both engines.
    let mut src = String::from("mov %r6, %r1\ncall local s1\nexit\n");
    for k in 1..=5 {
        src.push_str(&format!(
            "s{k}:\nmov %r1, %r6\ncall local s{}\nexit\n",
            k + 1
        ));
    }
    src.push_str(
        "s6:\nmov %r1, 3\nlddw %r2, func cb\nmov %r3, %r6\ncall 181\nexit\n\
         cb:\nldxdw %r3, [%r2+0]\nadd %r3, 1\nstxdw [%r2+0], %r3\nmov %r0, 0\njeq %r1, 0, +4\n\
         mov %r1, 1\nlddw %r2, func inner\ncall 181\nexit\n\
         inner:\nmov %r0, 0\nexit\n",
    );
    let prog = Program::new(assemble(&src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let cb = jit.compiled_callbacks();
    assert!(cb.iter().any(|&(_, d)| d == 7), "{cb:?}");
    let out = agree_at_every_budget(&src);
    let trap = out.result.expect_err("no frame for the inner callback");
    assert_eq!(trap.code, bpfsim_vm::TrapCode::CallDepth);
}

/// Runs `src` once under the JIT with a host that lets the code make its loops (on 64 bytes
/// of memory), and returns the outcome and how many loops the host was asked for.
fn jit_asks(src: &str, inline: bool) -> (bpfsim_vm::Outcome, u32) {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let mut vm = Vm::default();
    vm.budget = 1_000_000;
    let mut host = Stops {
        inline,
        ..Stops::default()
    };
    let out = jit.run_with_memory(&mut vm, &mut host, &mut [0u8; 64]);
    (out, host.asked)
}

#[test]
fn the_code_makes_a_loops_calls_when_the_host_lets_it() {
    // The callback's address and the count set in the loop's block (no test of them), or
    // loaded in another block (tested at run time); an inner loop inside a callback.
    let other_block = "
        mov %r6, %r1
        stdw [%r6+8], 3
        lddw %r2, func cb
        mov %r3, %r6
        ja +0
        ldxdw %r1, [%r6+8]
        add %r1, 4
        call 181
        ldxdw %r1, [%r6+0]
        lsh %r0, 8
        add %r0, %r1
        exit
    cb:
        ldxdw %r4, [%r2+0]
        add %r4, %r1
        stxdw [%r2+0], %r4
        mov %r0, 0
        exit
    ";
    for (src, calls) in [(EARLY_STOP, 4), (other_block, 7)] {
        let out = agree_at_every_budget(src);
        assert_eq!(out.result.map(|r| r >> 8), Ok(calls), "{src}");
        let (direct, asked) = jit_asks(src, true);
        assert_eq!((direct, asked), (out, 0), "{src}");
        let (shim, asked) = jit_asks(src, false);
        assert_eq!((shim, asked), (out, 1), "{src}");
    }
    let nested = "
        mov %r6, %r1
        mov %r1, 5
        lddw %r2, func outer
        mov %r3, %r6
        mov %r4, 0
        call 181
        exit
    outer:
        mov %r7, %r1
        mov %r8, %r2
        mov %r1, 3
        lddw %r2, func inner
        mov %r3, %r8
        mov %r4, 0
        call 181
        mov %r0, 0
        jne %r7, 1, +1
        mov %r0, 1
        exit
    inner:
        ldxdw %r3, [%r2+0]
        add %r3, 1
        stxdw [%r2+0], %r3
        mov %r0, 0
        exit
    ";
    let out = agree_at_every_budget(nested);
    assert_eq!(out.result, Ok(2));
    assert_eq!(jit_asks(nested, true), (out, 0));
}

#[test]
fn loops_the_code_cannot_make_go_to_the_host() {
    // Flags, no calls, too many calls, another address than the callback's entry: the host
    // answers (-EINVAL, 0, -E2BIG, the interpreter's calls), in both engines alike. Each set
    // as a constant in the block and through a register the code tests.
    let head = "mov %r6, %r1\nstdw [%r6+8], 100\nlddw %r2, func cb\nmov %r3, %r6\n";
    let tail = "ldxdw %r1, [%r6+0]\nlsh %r0, 8\nadd %r0, %r1\nexit\n\
                cb:\nldxdw %r4, [%r2+0]\nadd %r4, 1\nstxdw [%r2+0], %r4\nmov %r0, 0\nexit\n";
    for (args, r0) in [
        ("mov %r1, 2\nmov %r4, 1\n", -22i64 as u64),
        ("ldxdw %r4, [%r6+8]\nmov %r1, 2\n", -22i64 as u64),
        ("mov %r1, 0\nmov %r4, 0\n", 0),
        ("ja +0\nmov %r1, 0\n", 0),
        ("lddw %r1, 0x800001\nmov %r4, 0\n", -7i64 as u64),
        ("lddw %r1, 0x100000001\n", -7i64 as u64),
        ("mov %r1, 2\nadd %r2, 1\n", 0),
    ] {
        let src = format!("{head}{args}call 181\n{tail}");
        // (Only with the simulator's `bpf_loop`: the other host makes 2^23 calls.)
        let out = agree_with_hosts(&src, &[true]);
        let (jit, asked) = jit_asks(&src, true);
        assert_eq!(jit, out, "{src}");
        assert_eq!(asked, 1, "{src}");
        if r0 != 0 {
            assert_eq!(out.result, Ok(r0 << 8), "{src}");
        }
    }
}
