//! The JIT against the interpreter on random programs whose callbacks (`bpf_loop`, and a
//! `for_each`-like helper that passes four arguments per call) do everything a program can:
//! ALU ops, loads and stores inside and outside memory and their frame, jumps back and forth
//! (runaway loops end on the budget), local calls, a nested `bpf_loop`, helpers that fault,
//! end the program or ask for a tail call, and returns of any value (non-zero stops the calls).
//! r0 or the trap (code, pc, detail, size), the instructions executed and the memory must be
//! identical, at budgets that run out anywhere.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};
use proptest::prelude::*;

const ALU: [&str; 8] = ["add", "sub", "mul", "or", "and", "lsh", "rsh", "xor"];
const JMP: [&str; 6] = ["jeq", "jne", "jgt", "jge", "jlt", "jset"];
const SIZES: [&str; 4] = ["b", "h", "w", "dw"];

/// 181 `bpf_loop(n, func, ctx)` (`n % 8` calls; with `inline`, the simulator's: flags
/// non-zero give -EINVAL, `n` over `1 << 23` -E2BIG, and the code makes the calls itself,
/// [`Host::inline_loop`]); 182 calls `func` with (k, r3, r4, r5, 0) for k in 7..10; 9 ends
/// the program with r1; 12 asks for a tail call; 2 faults when r1 is 0.
struct Stops {
    inline: bool,
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
        match id {
            181 if self.inline && a[3] != 0 => Ok(-22i64 as u64),
            181 if self.inline && a[0] > 1 << 23 => Ok(-7i64 as u64),
            181 if self.inline => Err(HelperStop::Loop {
                func: a[1],
                iterations: a[0] as u32,
                ctx: a[2],
            }),
            181 => Err(HelperStop::Loop {
                func: a[1],
                iterations: (a[0] % 8) as u32,
                ctx: a[2],
            }),
            182 => Err(HelperStop::CallEach {
                func: a[1],
                calls: (7..10).map(|k| [k, a[2], a[3], a[4], 0]).collect(),
            }),
            9 => Err(HelperStop::Exit(a[0])),
            12 => Err(HelperStop::TailCall(a[0] as u32)),
            2 if a[0] == 0 => Err(HelperStop::Fault),
            2 => Ok(a[0].wrapping_mul(3)),
            _ => Err(HelperStop::Unknown),
        }
    }
}

fn mem_off(imm: i64) -> i64 {
    if imm.rem_euclid(16) == 0 {
        (imm % 80) - 8
    } else {
        imm.rem_euclid(57)
    }
}

/// One line of a callback's body; `r2` holds the memory's address (scratch registers are the
/// others). `k` is its index, `n` the body's length (for jump targets).
fn cb_line(op: u8, a: u8, b: u8, imm: i64, k: usize, n: usize) -> String {
    let ra = [0, 1, 3, 4, 5, 6, 7, 8][a as usize % 8];
    let rb = b % 10;
    match op % 12 {
        0 => format!("{} %r{ra}, %r{rb}", ALU[(imm as usize) % ALU.len()]),
        1 => format!("{} %r{ra}, {}", ALU[(imm as usize) % ALU.len()], (imm >> 8) as i32 % 64),
        2 => format!("mov %r{ra}, {}", (imm >> 4) as i32 % 8),
        3 => format!("ldx{} %r{ra}, [%r2{:+}]", SIZES[b as usize % 4], mem_off(imm)),
        4 => format!("stx{} [%r2{:+}], %r{ra}", SIZES[b as usize % 4], mem_off(imm)),
        5 => format!("stdw [%r10{:+}], {}", -8 * (1 + imm.rem_euclid(8)), imm >> 40),
        6 => format!("ldxdw %r{ra}, [%r10{:+}]", -8 * (1 + imm.rem_euclid(8))),
        7 => {
            // Forward (or, one time in four, backward) conditional jump within the body.
            let back = imm % 4 == 0 && k > 0;
            let target = if back {
                -((imm.unsigned_abs() as usize % k.max(1)) as i64) - 1
            } else {
                (imm.unsigned_abs() as usize % (n - k).max(1)) as i64
            };
            format!("{} %r{ra}, {}, {target:+}", JMP[b as usize % JMP.len()], (imm >> 16) as i32 % 8)
        }
        8 => match imm.rem_euclid(6) {
            0 => "call 9".to_string(),
            1 => "call 12".to_string(),
            2 => "call 2".to_string(),
            3 => "mov %r7, %r2\nmov %r1, %r2\ncall local sub\nmov %r2, %r7".to_string(),
            4 => "mov %r7, %r2\nmov %r1, 3\nlddw %r2, func inner\nmov %r3, %r7\ncall 181\nmov %r2, %r7"
                .to_string(),
            _ => format!("mov %r0, {}\nexit", imm.rem_euclid(3)),
        },
        9 => format!("lock add [%r2{:+}], %r{ra}", 8 * imm.rem_euclid(8)),
        10 => format!("add %r10, {}", -8 * imm.rem_euclid(3)),
        _ => format!("mov %r0, %r{rb}"),
    }
}

fn program() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        0u64..8,
        proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<i64>()), 1..24),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(each, n, body, ret, flags)| {
            let flags = if flags { 0 } else { 44 };
            let helper = if each { 182 } else { 181 };
            let mut src = format!(
                "mov %r9, %r1\nmov %r6, 66\nmov %r1, {n}\nlddw %r2, func cb\nmov %r3, %r9\n\
                 mov %r4, {flags}\nmov %r5, 55\ncall {helper}\nldxdw %r1, [%r9+0]\nadd %r0, %r1\n\
                 add %r0, %r6\nexit\ncb:\n"
            );
            let len = body.len();
            for (k, (op, a, b, imm)) in body.iter().enumerate() {
                src.push_str(&cb_line(*op, *a, *b, *imm, k, len));
                src.push('\n');
            }
            src.push_str(&format!(
                "mov %r0, {}\nexit\n\
                 sub:\nldxdw %r0, [%r1+8]\nstxdw [%r10-8], %r0\nadd %r0, 5\nstxdw [%r1+8], %r0\nmov %r6, 1\nexit\n\
                 inner:\nldxdw %r3, [%r2+16]\nadd %r3, %r1\nstxdw [%r2+16], %r3\nmov %r0, 0\nexit\n",
                ret % 3 / 2
            ));
            src
        })
}

fn both(src: &str, budget: u64, inline: bool) -> Result<(), TestCaseError> {
    let Ok(insns) = assemble(src) else {
        return Ok(()); // a jump that lands outside the body: not a program
    };
    let Ok(prog) = Program::new(insns) else {
        return Ok(());
    };
    let jit = JitProgram::compile(&prog)
        .map_err(|e| TestCaseError::fail(format!("compile: {e}\n{src}")))?;
    prop_assert!(!jit.compiled_callbacks().is_empty());
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    vm.budget = budget;
    let init: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    let mut m1 = init.clone();
    let a = vm.run_with_memory(&interp, &mut Stops { inline }, &mut m1);
    let mut m2 = init;
    let b = jit.run_with_memory(&mut vm, &mut Stops { inline }, &mut m2);
    prop_assert_eq!(&a, &b, "outcome at budget {}\n{}", budget, src);
    prop_assert_eq!(&m1, &m2, "memory at budget {}\n{}", budget, src);
    Ok(())
}

/// 3,000 cases in optimised builds, 300 in debug ones; BPFSIM_DIFF_CASES overrides.
fn cases() -> u32 {
    std::env::var("BPFSIM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 300 } else { 3_000 })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn compiled_callbacks_equal_the_interpreter(
        src in program(),
        budget in prop_oneof![Just(100_000u64), 0u64..250],
        inline in any::<bool>(),
    ) {
        both(&src, budget, inline)?;
    }
}

/// The generator's programs call their callbacks, and end every way a run can.
#[test]
fn generated_callbacks_run() {
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
        vm.budget = 100_000;
        let out = vm.run_with_memory(
            &Interpreter::new(&prog),
            &mut Stops { inline: false },
            &mut [0u8; 64],
        );
        ran += 1;
        trapped += out.result.is_err() as usize;
        long += (out.insns >= 40) as usize;
    }
    eprintln!("programs {ran}/500, trapped {trapped}, ran >= 40 insns {long}");
    assert!(ran > 300 && long > 100 && trapped > 20 && trapped < ran * 3 / 4);
}
