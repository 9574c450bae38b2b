//! The JIT (Cranelift's code and the baseline tier's) against the interpreter on random
//! programs: r0 or the trap (code, pc, detail, size), the instructions executed, and the memory
//! afterwards must be identical. Programs mix ALU ops
//! of both widths (division by zero, INT_MIN / -1, shifts past the width), loads and stores
//! inside and outside memory and the stack, atomics, forward and backward jumps (runaway loops
//! end on the budget), helper calls and BPF-to-BPF calls.

use bpfsim_jit::{Hints, JitProgram};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{ConformanceHost, Interpreter, Program, Vm};
use proptest::prelude::*;

const ALU: [&str; 13] = [
    "add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "lsh", "rsh", "arsh", "xor",
];
const JMP: [&str; 11] = [
    "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset",
];
const SIZES: [&str; 4] = ["b", "h", "w", "dw"];

/// One line of a random program; `k` is its index, `n` the body length (for jump targets).
fn line(op: u8, a: u8, b: u8, imm: i64, k: usize, n: usize) -> String {
    let ra = a % 9; // r0..r8 as scratch; r9 keeps the memory pointer
    let rb = b % 10;
    let w = if imm & 1 == 0 { "" } else { "32" };
    match op % 12 {
        0 | 1 => format!("{}{w} %r{ra}, %r{rb}", ALU[(imm as usize / 2) % ALU.len()]),
        2 => format!(
            "{}{w} %r{ra}, {}",
            ALU[(imm as usize / 2) % ALU.len()],
            (imm >> 8) as i32
        ),
        3 => format!("mov{w} %r{ra}, {}", (imm >> 4) as i32),
        // Inside the 64 bytes, but one access in sixteen may stray.
        4 => format!(
            "ldx{} %r{ra}, [%r9{:+}]",
            SIZES[b as usize % 4],
            mem_off(imm)
        ),
        5 => format!(
            "stx{} [%r9{:+}], %r{ra}",
            SIZES[b as usize % 4],
            mem_off(imm)
        ),
        6 => format!(
            "st{} [%r10{:+}], {}",
            SIZES[b as usize % 4],
            -imm.rem_euclid(72),
            imm >> 40
        ),
        7 => format!(
            "ldx{} %r{ra}, [%r10{:+}]",
            SIZES[b as usize % 4],
            -imm.rem_euclid(72)
        ),
        8 => {
            // Forward (or, one time in four, backward) conditional jump within the body.
            let back = imm % 4 == 0 && k > 0;
            let target = if back {
                -((imm.unsigned_abs() as usize % k.max(1)) as i64) - 1
            } else {
                (imm.unsigned_abs() as usize % (n - k).max(1)) as i64
            };
            format!(
                "{}{w} %r{ra}, {}, {target:+}",
                JMP[b as usize % JMP.len()],
                (imm >> 16) as i32 % 64
            )
        }
        9 => format!(
            "lock {} [%r9{:+}], %r{ra}",
            [
                "add",
                "fetch add",
                "fetch or",
                "and",
                "fetch xor",
                "xchg",
                "cmpxchg"
            ][(imm as usize / 4) % 7],
            8 * ((imm.rem_euclid(9)) - 1)
        ),
        10 => match imm.rem_euclid(8) {
            0 => "call 5".to_string(),  // ConformanceHost's unwind helper
            1 => "call 99".to_string(), // unknown helper: a trap
            _ => "call local sub".to_string(),
        },
        _ => format!(
            "{} %r{ra}",
            ["neg", "be16", "be32", "be64", "le16", "le32"][(imm as usize) % 6]
        ),
    }
}

fn mem_off(imm: i64) -> i64 {
    if imm.rem_euclid(16) == 0 {
        (imm % 80) - 8
    } else {
        imm.rem_euclid(57)
    }
}

fn program() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(any::<i64>(), 9),
        proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<i64>()), 1..40),
    )
        .prop_map(|(init, body)| {
            let mut src = String::from("mov %r9, %r1\n");
            for (r, v) in init.iter().enumerate() {
                if r != 1 && r != 9 {
                    src.push_str(&format!("lddw %r{r}, {v:#x}\n"));
                }
            }
            let n = body.len();
            for (k, (op, a, b, imm)) in body.iter().enumerate() {
                src.push_str(&line(*op, *a, *b, *imm, k, n));
                src.push('\n');
            }
            // The callee reads a slot of its frame before writing it (0: each call's frame
            // starts clear) and changes r6 and r7, which the caller gets back.
            src.push_str(
                "exit\nsub:\nldxdw %r0, [%r10-16]\nadd %r0, %r1\nadd %r0, 7\nmov %r6, 77\n\
                 mov %r7, %r0\nstxdw [%r10-16], %r0\nstxdw [%r10-8], %r0\nldxdw %r0, [%r10-8]\n\
                 exit\n",
            );
            src
        })
}

/// Both engines on `src` with `budget` instructions: budgets from none to more than enough make
/// the JIT hand the run to the interpreter at every kind of budget checkpoint (a loop head, a
/// subprogram, a helper's return) as well as run to the end.
fn both(src: &str, budget: u64) -> Result<(), TestCaseError> {
    let Ok(insns) = assemble(src) else {
        return Ok(()); // a jump that lands outside the body: not a program
    };
    let Ok(prog) = Program::new(insns) else {
        return Ok(());
    };
    let jit = JitProgram::compile(&prog)
        .map_err(|e| TestCaseError::fail(format!("compile: {e}\n{src}")))?;
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    vm.budget = budget;
    let init: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    let mut m1 = init.clone();
    let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
    let mut m2 = init.clone();
    let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
    prop_assert_eq!(&a, &b, "outcome\n{}", src);
    prop_assert_eq!(&m1, &m2, "memory\n{}", src);
    // These runs map no context, so "no access reaches the context" holds for every slot: the
    // accesses compiled without a slow path must fault exactly where the interpreter does.
    let hints = Hints {
        no_ctx: vec![true; prog.iter().map(|(pc, _)| pc + 2).max().unwrap_or(0)],
        ..Hints::default()
    };
    let jit = JitProgram::compile_with(&prog, &hints)
        .map_err(|e| TestCaseError::fail(format!("compile with hints: {e}\n{src}")))?;
    let init_copy = init.clone();
    let mut m3 = init;
    let c = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m3);
    prop_assert_eq!(&a, &c, "outcome with hints\n{}", src);
    prop_assert_eq!(&m1, &m3, "memory with hints\n{}", src);
    // The baseline tier, on the same run.
    let base = JitProgram::compile_baseline(&prog)
        .map_err(|e| TestCaseError::fail(format!("baseline compile: {e}\n{src}")))?;
    let mut m4 = init_copy;
    let d = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut m4);
    prop_assert_eq!(&a, &d, "outcome under the baseline tier\n{}", src);
    prop_assert_eq!(&m1, &m4, "memory under the baseline tier\n{}", src);
    Ok(())
}

/// 10,000 cases in optimised builds (test.sh runs this file with --release); fewer in debug
/// builds, where Cranelift itself runs unoptimised. BPFSIM_DIFF_CASES overrides.
fn cases() -> u32 {
    std::env::var("BPFSIM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 500 } else { 10_000 })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn jit_equals_interpreter(src in program(), budget in prop_oneof![Just(300u64), 0u64..120]) {
        both(&src, budget)?;
    }
}

#[test]
fn generated_programs_exercise_the_engines() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut ran, mut trapped, mut long) = (0, 0, 0);
    for _ in 0..500 {
        let src = program().new_tree(&mut runner).unwrap().current();
        let Ok(prog) = assemble(&src)
            .map_err(|_| ())
            .and_then(|i| Program::new(i).map_err(|_| ()))
        else {
            continue;
        };
        let mut vm = Vm::default();
        vm.budget = 300;
        let out = vm.run_with_memory(
            &Interpreter::new(&prog),
            &mut ConformanceHost,
            &mut [0u8; 64],
        );
        ran += 1;
        trapped += out.result.is_err() as usize;
        long += (out.insns >= 20) as usize;
    }
    eprintln!("programs {ran}/500, trapped {trapped}, ran >= 20 insns {long}");
    assert!(ran > 300 && long > 100 && trapped > 20 && trapped < ran * 3 / 4);
}

/// An out-of-bounds access: the same trap under both engines, and the process goes on.
#[test]
fn out_of_bounds_traps_alike() {
    let prog = Program::new(assemble("ldxdw %r0, [%r1+4096]\nexit").unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let base = JitProgram::compile_baseline(&prog).unwrap();
    let mut vm = Vm::default();
    let a = vm.run_with_memory(
        &Interpreter::new(&prog),
        &mut ConformanceHost,
        &mut [0u8; 16],
    );
    let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut [0u8; 16]);
    assert!(a.result.is_err());
    assert_eq!(a, b);
    assert_eq!(
        a,
        base.run_with_memory(&mut vm, &mut ConformanceHost, &mut [0u8; 16])
    );
    // Null, stack underflow, the code region.
    for src in [
        "ldxw %r0, [%r0+0]\nexit",
        "stdw [%r10+8], 1\nmov %r0, 0\nexit",
        "lddw %r1, 0xfffe000000000000\nldxb %r0, [%r1+0]\nexit",
        // Around the primary region (the memory, region 9), which has its own one-compare path:
        // one past its end for each size, just below its start, and the last stack bytes of
        // region 8 (frame 7), which lie just below it and are mapped.
        "ldxb %r0, [%r1+16]\nexit",
        "ldxh %r0, [%r1+15]\nexit",
        "ldxw %r0, [%r1+13]\nexit",
        "ldxdw %r0, [%r1+9]\nexit",
        "stxdw [%r1+9], %r1\nmov %r0, 0\nexit",
        "ldxb %r0, [%r1-1]\nexit",
        "lddw %r1, 0x8000001ff\nldxb %r0, [%r1+0]\nexit",
        "lddw %r1, 0x8000001fc\nldxdw %r0, [%r1+0]\nexit",
        "lddw %r1, 0x8ffffffff\nldxb %r0, [%r1+0]\nexit",
        "lddw %r1, 0xfffffffffffffffc\nldxdw %r0, [%r1+0]\nexit",
    ] {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let base = JitProgram::compile_baseline(&prog).unwrap();
        let a = vm.run_with_memory(
            &Interpreter::new(&prog),
            &mut ConformanceHost,
            &mut [0u8; 16],
        );
        let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut [0u8; 16]);
        assert!(a.result.is_err() || src.contains("0x8000001ff"), "{src}");
        assert_eq!(a, b, "{src}");
        let c = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut [0u8; 16]);
        assert_eq!(a, c, "baseline\n{src}");
    }
}

/// The budget is checked only at checkpoints (loop heads, subprograms, return sites, helper
/// returns), each for the longest path to the next one: every budget from none to enough must
/// still stop both engines at the same pc with the same count, on forward branches of unequal
/// lengths (the longest path is not the one taken), a loop, a local call and a helper. Each
/// sweep of this kind (here and in the other JIT tests) ends with a budget to spare: a budget
/// just above the run's count hands the loops' last iterations to the interpreter, so only a
/// generous one runs the compiled loop to its end.
#[test]
fn every_budget_stops_both_engines_alike() {
    let src = "mov %r0, 0\nmov %r6, 5\n\
        loop:\n\
        jgt %r0, 100, long\n\
        add %r0, 1\n\
        ja join\n\
        long:\n\
        add %r0, 2\nadd %r0, 3\nadd %r0, 4\nadd %r0, 5\n\
        join:\n\
        call local sub\n\
        stxdw [%r1+0], %r0\n\
        sub %r6, 1\n\
        jne %r6, 0, loop\n\
        call 5\n\
        add %r0, 1\nadd %r0, 1\n\
        exit\n\
        sub:\n\
        add %r0, 10\n\
        exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let base = JitProgram::compile_baseline(&prog).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    let full = vm.run_with_memory(&interp, &mut ConformanceHost, &mut [0u8; 16]);
    assert!(full.result.is_ok() && full.insns > 40, "{full:?}");
    for budget in (0..=full.insns + 1).chain([full.insns * 2 + 1_000]) {
        vm.budget = budget;
        let mut m1 = [0u8; 16];
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        let mut m2 = [0u8; 16];
        let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
        assert_eq!(a, b, "budget {budget}");
        assert_eq!(m1, m2, "memory at budget {budget}");
        let mut m3 = [0u8; 16];
        let c = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut m3);
        assert_eq!(a, c, "baseline, budget {budget}");
        assert_eq!(m1, m3, "baseline, memory at budget {budget}");
    }
}

/// clang's 32-bit extensions (`r <<= 32; r >>= 32`, or `s>>=`) are compiled as one extension
/// when both shifts are in one block: the same values, the same count (each shift is an
/// instruction) at every budget, and no fusion across a jump target.
#[test]
fn shift_pairs_extend_alike() {
    let srcs = [
        "lddw %r1, 0x89abcdef80000001\nmov %r2, %r1\nlsh %r2, 32\nrsh %r2, 32\nmov %r0, %r2\nexit",
        "lddw %r1, 0x89abcdef80000001\nmov %r2, %r1\nlsh %r2, 32\narsh %r2, 32\nmov %r0, %r2\nexit",
        "lddw %r1, 0x1234567876543210\nlsh %r1, 32\narsh %r1, 32\nmov %r0, %r1\nexit",
        // The second shift is a jump target: two instructions of different blocks.
        "lddw %r1, 0x89abcdef80000001\njeq %r1, 0, +1\nlsh %r1, 32\nrsh %r1, 32\nmov %r0, %r1\nexit",
        // Different registers, or a shift by another amount: no pair.
        "lddw %r1, -1\nmov %r2, %r1\nlsh %r1, 32\nrsh %r2, 32\nadd %r1, %r2\nmov %r0, %r1\nexit",
        "lddw %r1, -1\nlsh %r1, 32\nrsh %r1, 31\nmov %r0, %r1\nexit",
    ];
    for src in srcs {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let base = JitProgram::compile_baseline(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        let full = vm.run_with_memory(&interp, &mut ConformanceHost, &mut []);
        assert!(full.result.is_ok(), "{src}: {full:?}");
        for budget in (0..=full.insns + 1).chain([full.insns * 2 + 1_000]) {
            vm.budget = budget;
            let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut []);
            let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut []);
            assert_eq!(a, b, "{src} at budget {budget}");
            let c = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut []);
            assert_eq!(a, c, "baseline: {src} at budget {budget}");
        }
    }
}

/// A dropped program gives its code memory back: compiling and dropping more programs than
/// the process may hold mappings (65,530 by default on Linux, a few per program) goes on (the
/// criterion compile bench failed with "unable to make memory readable+executable" before).
/// Optimised builds only: unoptimised Cranelift makes this a minute.
#[test]
fn dropped_programs_free_their_code() {
    let prog = Program::new(assemble("mov %r0, 1\nexit").unwrap()).unwrap();
    let n = if cfg!(debug_assertions) {
        2_000
    } else {
        40_000
    };
    for _ in 0..n {
        drop(JitProgram::compile(&prog).unwrap());
    }
}

/// Accesses at `r10 + off` inside the frame are compiled without a check when no instruction
/// writes `r10`: at every depth of local calls they reach the same bytes as the interpreter's;
/// just outside the frame they trap alike; and a program that writes `r10` (the interpreter
/// allows it) keeps every check.
#[test]
fn frame_accesses_alike() {
    let srcs = [
        // Main frame, its first and last bytes, then a subprogram's frame and back.
        "stdw [%r10-8], 7\nstb [%r10-512], 9\nldxb %r2, [%r10-512]\nldxdw %r0, [%r10-8]\n\
         add %r0, %r2\ncall local f\nldxdw %r3, [%r10-8]\nadd %r0, %r3\nexit\n\
         f:\nstdw [%r10-8], 100\ncall local g\nldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit\n\
         g:\nstxw [%r10-4], %r10\nldxw %r1, [%r10-4]\nadd %r0, %r1\nexit",
        // One byte past the frame's top, one below its bottom.
        "ldxb %r0, [%r10+0]\nexit",
        "ldxdw %r0, [%r10-4]\nexit",
        "stb [%r10-513], 1\nmov %r0, 0\nexit",
        // r10 written: every access checked (the second load is outside any frame).
        "stdw [%r10-8], 5\nmov %r10, %r1\nldxb %r0, [%r10-1]\nexit",
        "lddw %r10, 0x100000200\nldxdw %r0, [%r10-8]\nexit",
        // Through registers that hold r10 plus a constant: inside the frame, past its top,
        // below its bottom, through a chain of moves; a 32-bit move, and a join where another
        // path sets the register, forget it.
        "mov %r2, %r10\nadd %r2, -16\nstdw [%r2+8], 7\nldxdw %r0, [%r10-8]\nexit",
        "mov %r2, %r10\nsub %r2, 8\nldxdw %r0, [%r2+8]\nexit",
        "mov %r2, %r10\nadd %r2, -512\nstb [%r2-1], 1\nmov %r0, 0\nexit",
        "mov %r3, %r10\nadd %r3, -8\nmov %r2, %r3\nstw [%r2+4], 9\nldxw %r0, [%r10-4]\nexit",
        "mov %r2, %r10\nmov32 %r2, %r2\nldxdw %r0, [%r2-8]\nexit",
        "mov %r2, %r1\nadd %r2, 8\njne %r1, 0, +2\nmov %r2, %r10\nmov %r0, 0\n\
         stdw [%r2-8], 5\nldxdw %r0, [%r10-8]\nexit",
    ];
    for src in srcs {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let base = JitProgram::compile_baseline(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        let mut m1 = [3u8; 16];
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        let mut m2 = [3u8; 16];
        let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
        assert_eq!(a, b, "{src}");
        assert_eq!(m1, m2, "{src}");
        let mut m3 = [3u8; 16];
        let c = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut m3);
        assert_eq!(a, c, "baseline\n{src}");
        assert_eq!(m1, m3, "baseline\n{src}");
        if src.starts_with("stdw [%r10-8], 7") {
            assert!(a.result.is_ok(), "{a:?}");
        }
    }
}

/// An exit returns to the calls of its own subprogram only: several subprograms, each called
/// from several sites (one from a single site, one from its own body, one calling another),
/// and the main program called back from a subprogram (its exits then return to that call
/// until the call depth runs out). Every budget, under both engines.
#[test]
fn local_calls_return_to_their_callers() {
    let srcs = [
        "mov %r6, 0\n\
         call local f\nadd %r6, %r0\n\
         call local g\nadd %r6, %r0\n\
         call local f\nmul %r6, 3\nadd %r6, %r0\n\
         call local h\nadd %r6, %r0\n\
         call local g\nmov %r0, %r6\nadd %r0, %r0\nexit\n\
         f:\nadd %r1, 1\nmov %r0, %r1\nexit\n\
         g:\nadd %r2, 5\nmov %r0, %r2\ncall local f\nmul %r0, 7\nexit\n\
         h:\nmov %r0, 11\nexit",
        // Each subprogram at one depth (constants in the code): f and g from main, h from g
        // at two sites, every frame's stack and r6-r9 kept across the calls.
        "mov %r6, 3\nmov %r9, 9\nstdw [%r10-8], 40\ncall local f\nadd %r6, %r0\n\
         call local g\nadd %r6, %r0\ncall local f\nadd %r6, %r0\nldxdw %r1, [%r10-8]\n\
         add %r6, %r1\nmov %r0, %r6\nadd %r0, %r9\nexit\n\
         f:\nmov %r1, %r10\nrsh %r1, 32\njne %r1, 2, +3\nmov %r6, 100\nmov %r6, 101\n\
         mov %r6, 102\nstdw [%r10-8], 5\nldxdw %r0, [%r10-8]\nadd %r0, %r6\nexit\n\
         g:\nmov %r7, %r10\nstdw [%r10-16], 6\ncall local h\nmov %r8, %r0\ncall local h\n\
         add %r0, %r8\nldxdw %r1, [%r7-16]\nadd %r0, %r1\nexit\n\
         h:\nmov %r9, 1\nmov %r2, %r10\nadd %r2, -8\nstxdw [%r2+0], %r2\n\
         ldxdw %r0, [%r10-8]\nrsh %r0, 32\nexit",
        // Budget checks at calls (depths static): p and q (nested) have no loop or helper, so
        // their calls are counted through (no check at their entries or return sites); l has a
        // loop and u a helper call, whose return sites check again.
        "mov %r6, 1\ncall local p\nadd %r6, %r0\ncall local l\nadd %r6, %r0\n\
         call local u\nadd %r6, %r0\ncall local p\nadd %r0, %r6\nexit\n\
         p:\nmov %r0, 2\njeq %r6, 1, +2\nadd %r0, 1\nadd %r0, 1\ncall local q\nadd %r0, 3\nexit\n\
         q:\nadd %r0, 10\nexit\n\
         l:\nmov %r0, 0\nmov %r1, 4\nadd %r0, %r1\nsub %r1, 1\njne %r1, 0, -3\nexit\n\
         u:\nmov %r1, 9\ncall 5\nadd %r0, 1\nexit",
        // A jump to the return site from the block before the call: the count it carries must
        // not be taken again when the callee returns there.
        "mov %r0, 0\nmov %r1, 0\nmov %r2, 0\njne %r0, 0, +1\ncall local s\nadd %r0, 1\n\
         add %r0, 1\nadd %r0, 1\nadd %r0, 1\nexit\ns:\nmov %r0, 5\nexit",
        // Seven frames deep, then a call past the limit (depths no longer static).
        "call local a\nexit\na:\ncall local b\nexit\nb:\ncall local c\nexit\n\
         c:\ncall local d\nexit\nd:\ncall local e\nexit\ne:\ncall local f\nexit\n\
         f:\ncall local g\nexit\ng:\ncall local h\nexit\nh:\nmov %r0, 1\nexit",
        // A subprogram that calls itself: the depth limit traps.
        "call local f\nadd %r0, 1\nexit\nf:\nadd %r1, 1\ncall local f\nexit",
        // The main program called from a subprogram.
        "add %r0, 1\njgt %r0, 3, +1\ncall local f\nexit\n\
         f:\ncall local -5\nadd %r0, 10\nexit",
    ];
    for src in srcs {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let base = JitProgram::compile_baseline(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        vm.budget = 1_000;
        let full = vm.run_with_memory(&interp, &mut ConformanceHost, &mut [0u8; 16]);
        assert!(full.insns > 5, "{full:?}\n{src}");
        for budget in (0..=full.insns + 1).chain([full.insns * 2 + 1_000]) {
            vm.budget = budget;
            let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut [0u8; 16]);
            let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut [0u8; 16]);
            assert_eq!(a, b, "budget {budget}\n{src}");
            let c = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut [0u8; 16]);
            assert_eq!(a, c, "baseline, budget {budget}\n{src}");
        }
    }
}

/// A budget too short for the longest path from a subprogram's entry hands the run over there,
/// inside the call; when the path taken is shorter, the interpreter reaches the subprogram's
/// `exit` and must return to the caller (whose registers it gets back) rather than end the run
/// with the subprogram's `r0`. Nested calls, every budget.
#[test]
fn hand_over_inside_a_call_returns_to_the_caller() {
    let srcs = [
        "mov %r1, 0\ncall local f\nadd %r0, 100\nexit\n\
         f:\njgt %r1, 0, +2\nmov %r0, 1\nexit\n\
         mov %r0, 2\nmov %r0, 3\nmov %r0, 4\nmov %r0, 5\nexit",
        "mov %r6, 7\nmov %r1, 0\ncall local f\nadd %r0, %r6\nexit\n\
         f:\nmov %r6, 1000\ncall local g\nadd %r0, %r6\nmov %r7, %r0\nexit\n\
         g:\nmov %r6, 50\njgt %r1, 0, +2\nmov %r0, %r6\nexit\n\
         mov %r0, 2\nmov %r0, 3\nmov %r0, 4\nmov %r0, 5\nexit",
    ];
    for src in srcs {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let base = JitProgram::compile_baseline(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        vm.budget = 1_000;
        let full = vm.run_with_memory(&interp, &mut ConformanceHost, &mut [0u8; 8]);
        assert!(full.result.is_ok(), "{full:?}");
        for budget in (0..=full.insns + 8).chain([full.insns * 2 + 1_000]) {
            vm.budget = budget;
            let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut [0u8; 8]);
            let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut [0u8; 8]);
            assert_eq!(a, b, "budget {budget}\n{src}");
            let c = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut [0u8; 8]);
            assert_eq!(a, c, "baseline, budget {budget}\n{src}");
        }
    }
}

/// Loops whose back edge is a conditional branch past a lone `ja` (clang's `if (i == n) break;
/// goto head`): the branch goes to the head itself with the `ja` counted on it, and the side
/// that leaves the loop gets the `ja` back (carried into a block with one predecessor, or
/// added on its own edge into a join). Every budget from none to enough stops both engines at
/// the same pc with the same count and memory, whichever side of the branch is the `ja`.
#[test]
fn loop_latches_stop_both_engines_alike() {
    let srcs = [
        // The checksum loop's shape: the exit falls through to a block of its own, and the
        // other exit reads the address the bound check was for (made on that exit's edge):
        // the count ends the loop, or the memory's end does.
        "add %r2, %r1\nmov %r0, 0\nmov %r4, 0\nloop:\nmov %r5, %r1\nadd %r5, %r4\nmov %r3, %r5\nadd %r3, 2\n\
         jgt %r3, %r2, out\nldxh %r5, [%r5+0]\nbe16 %r5\nadd %r0, %r5\nadd %r4, 2\n\
         mov %r5, %r4\nlsh %r5, 32\nrsh %r5, 32\njeq %r5, 24, done\nja loop\n\
         done:\nadd %r1, %r4\nstxb [%r1-1], %r0\nexit\nout:\nsub %r5, %r1\nadd %r0, %r5\nexit",
        "add %r2, %r1\nmov %r0, 0\nmov %r4, 0\nloop:\nmov %r5, %r1\nadd %r5, %r4\nmov %r3, %r5\nadd %r3, 2\n\
         jgt %r3, %r2, out\nldxh %r5, [%r5+0]\nbe16 %r5\nadd %r0, %r5\nadd %r4, 2\n\
         mov %r5, %r4\nlsh %r5, 32\nrsh %r5, 32\njeq %r5, 4096, done\nja loop\n\
         done:\nadd %r1, %r4\nstxb [%r1-1], %r0\nexit\nout:\nsub %r5, %r1\nadd %r0, %r5\nexit",
        // The exit is a join (the loop's two exits meet): the `ja` is given back on its edge.
        "mov %r0, 0\nmov %r4, 0\nloop:\njgt %r0, 1000, out\nadd %r0, %r4\nadd %r4, 3\n\
         mov %r5, %r4\nlsh %r5, 32\nrsh %r5, 32\njeq %r5, 30, out\nja loop\n\
         out:\nstxdw [%r1+0], %r0\nadd %r0, 1\nexit",
        // The `ja` is the taken side, the exit the fall-through.
        "mov %r0, 0\nmov %r4, 0\nloop:\nadd %r0, 3\nadd %r4, 1\nstxw [%r1+4], %r4\n\
         jlt %r4, 10, back\nadd %r0, 100\nexit\nback:\nja loop",
        // Both sides a `ja` to a head (nested loops): no branch goes past either.
        "mov %r0, 0\nmov %r6, 0\nouter:\nmov %r4, 0\ninner:\nadd %r0, 1\nadd %r4, 1\n\
         jlt %r4, 3, in_back\nadd %r6, 1\njlt %r6, 4, out_back\nexit\n\
         in_back:\nja inner\nout_back:\nja outer",
        // An increment by the most negative 32-bit constant, and a count kept in 32 bits.
        "mov %r0, 0\nlddw %r4, 0x100000000\nloop:\nadd %r4, -2147483648\nadd %r0, 1\n\
         mov32 %r5, %r4\njne %r5, 0, loop2\nja loop\nloop2:\njlt %r0, 6, back\n\
         mov %r0, %r4\nexit\nback:\nja loop",
    ];
    for src in srcs {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile(&prog).unwrap();
        let base = JitProgram::compile_baseline(&prog).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        let init: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(53) ^ 0x3c).collect();
        let full = vm.run_with_memory(&interp, &mut ConformanceHost, &mut init.clone());
        assert!(full.result.is_ok() && full.insns > 20, "{src}: {full:?}");
        // With the budget to spare the JIT's code runs to the end (with a budget that runs out
        // within a loop's length the run ends in the interpreter).
        let mut m1 = init.clone();
        vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        let mut m2 = init.clone();
        let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
        assert_eq!(full, b, "{src}");
        assert_eq!(m1, m2, "{src}\nmemory");
        for budget in (0..=full.insns + 1).chain([full.insns * 2 + 1_000]) {
            vm.budget = budget;
            let mut m1 = init.clone();
            let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
            let mut m2 = init.clone();
            let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
            assert_eq!(a, b, "{src}\nat budget {budget}");
            assert_eq!(m1, m2, "{src}\nmemory at budget {budget}");
            let mut m3 = init.clone();
            let c = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut m3);
            assert_eq!(a, c, "baseline: {src}\nat budget {budget}");
            assert_eq!(m1, m3, "baseline: {src}\nmemory at budget {budget}");
        }
    }
}

/// A 64-bit compare of a zero-extended 32-bit value with a constant from 0 up, or with another
/// such value, is made in 32 bits: every condition gives the interpreter's answer, on values
/// with the top bit of the low half set (which signed 32-bit compares would read as negative),
/// and not on values that only look extended (a negative constant, a register whose high half
/// is set) or on 32-bit jumps.
#[test]
fn compares_of_extended_values_agree() {
    let values: [u64; 6] = [0, 5, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0005];
    let conds = [
        "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset",
    ];
    let mut n = 0;
    for &a in &values {
        for &b in &values {
            for cond in conds {
                let ext = "lsh %r1, 32\nrsh %r1, 32\nlsh %r2, 32\nrsh %r2, 32";
                let srcs = [
                    format!("lddw %r1, {a:#x}\nlddw %r2, {b:#x}\n{ext}\n{cond} %r1, %r2, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit"),
                    format!("lddw %r1, {a:#x}\nlddw %r2, {b:#x}\n{ext}\n{cond} %r1, 5, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit"),
                    format!("lddw %r1, {a:#x}\nlddw %r2, {b:#x}\n{ext}\n{cond} %r1, -1, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit"),
                    format!("lddw %r1, {a:#x}\nlddw %r2, {b:#x}\n{ext}\n{cond} %r1, 2147483647, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit"),
                    // Only one side extended: the other's high half counts.
                    format!("lddw %r1, {a:#x}\nlddw %r2, {b:#x}\nlsh %r1, 32\nrsh %r1, 32\n{cond} %r1, %r2, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit"),
                    format!("lddw %r1, {a:#x}\nlddw %r2, {b:#x}\nmov32 %r1, %r1\nmov32 %r2, %r2\n{cond} %r1, %r2, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit"),
                    format!("lddw %r1, {a:#x}\nlddw %r2, {b:#x}\n{ext}\n{cond}32 %r1, %r2, +2\nmov %r0, 1\nexit\nmov %r0, 2\nexit"),
                ];
                for src in &srcs {
                    let prog = Program::new(assemble(src).unwrap()).unwrap();
                    let jit = JitProgram::compile(&prog).unwrap();
                    let base = JitProgram::compile_baseline(&prog).unwrap();
                    let mut vm = Vm::default();
                    let i =
                        vm.run_with_memory(&Interpreter::new(&prog), &mut ConformanceHost, &mut []);
                    let j = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut []);
                    assert!(i.result.is_ok(), "{src}: {i:?}");
                    assert_eq!(i, j, "{src}");
                    let k = base.run_with_memory(&mut vm, &mut ConformanceHost, &mut []);
                    assert_eq!(i, k, "baseline: {src}");
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 6 * 6 * 11 * 7);
}
