//! Proven stack accesses ([`Hints::stack`]) against the interpreter on random programs whose
//! every load, store and atomic goes through a pointer into a frame's stack by construction:
//! a copy of `r10` moved to the middle of the frame (`r8`, never written again), the caller's
//! copy passed to a subprogram (`r1` there), and the subprogram's own copy (`r2`), at offsets
//! anywhere inside the frame, of every size. The hints are then true, so r0, the instructions
//! executed and the memory must be the interpreter's; the frame is folded into r0 at the end.

use bpfsim_jit::{Hints, JitProgram};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::Insn;
use bpfsim_vm::{ConformanceHost, Interpreter, Program, Vm};
use proptest::prelude::*;

const ALU: [&str; 8] = ["add", "sub", "mul", "or", "and", "lsh", "rsh", "xor"];
const SIZES: [(&str, i64); 4] = [("b", 1), ("h", 2), ("w", 4), ("dw", 8)];
const ATOMICS: [&str; 6] = ["add", "or", "and", "xor", "xchg", "cmpxchg"];

/// An offset from `r8` (256 bytes below the frame's top) at which `size` bytes fit in the frame.
fn frame_off(imm: i64, size: i64) -> i64 {
    imm.rem_euclid(512 - size + 1) - 256
}

/// One line of the body: scratch registers r0-r7, the stack through `r8`.
fn line(op: u8, a: u8, b: u8, imm: i64) -> String {
    let ra = a % 8;
    let rb = b % 8;
    let (sz, bytes) = SIZES[b as usize % 4];
    match op % 8 {
        0 => format!("{} %r{ra}, %r{rb}", ALU[imm as usize % ALU.len()]),
        1 => format!(
            "{} %r{ra}, {}",
            ALU[imm as usize % ALU.len()],
            (imm >> 8) as i32 % 64
        ),
        2 => format!("stx{sz} [%r8{:+}], %r{ra}", frame_off(imm, bytes)),
        3 => format!("ldx{sz} %r{ra}, [%r8{:+}]", frame_off(imm, bytes)),
        4 => format!("st{sz} [%r8{:+}], {}", frame_off(imm, bytes), imm >> 40),
        5 => {
            let (w, bytes) = if imm & 1 == 0 { ("", 8) } else { ("32", 4) };
            let op = ATOMICS[(imm as usize >> 1) % ATOMICS.len()];
            let fetch = if imm & 64 != 0 && !matches!(op, "xchg" | "cmpxchg") {
                "fetch "
            } else {
                ""
            };
            let off = frame_off(imm >> 8, bytes) & !(bytes - 1);
            format!("lock {fetch}{op}{w} [%r8{off:+}], %r{ra}")
        }
        6 => format!("mov %r1, %r8\ncall local sub\nmov %r{ra}, %r0"),
        _ => format!("mov %r{ra}, {}", (imm >> 4) as i32),
    }
}

fn program() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(any::<i64>(), 8),
        proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<i64>()), 1..40),
        (0i64..505, 0i64..509, 0i64..505),
    )
        .prop_map(|(init, body, (o1, o2, o3))| {
            let mut src = String::from("mov %r8, %r10\nadd %r8, -256\n");
            for (r, v) in init.iter().enumerate() {
                src.push_str(&format!("lddw %r{r}, {v:#x}\n"));
            }
            for (op, a, b, imm) in body {
                src.push_str(&line(op, a, b, imm));
                src.push('\n');
            }
            // The whole frame, folded into r0.
            for k in 0..64 {
                src.push_str(&format!(
                    "ldxdw %r3, [%r8{:+}]\nmul %r0, 1000003\nxor %r0, %r3\n",
                    8 * k - 256
                ));
            }
            src.push_str("exit\n");
            // The caller's frame through r1, its own through a copy of r10.
            let (o1, o2, o3) = (o1 - 256, o2 - 256, (o3 - 256) & !7);
            src.push_str(&format!(
                "sub:\nmov %r2, %r10\nadd %r2, -64\nstxdw [%r2+8], %r1\n\
                 ldxdw %r3, [%r1{o1:+}]\nadd %r3, 5\nstxw [%r1{o2:+}], %r3\n\
                 lock add [%r1{o3:+}], %r3\nldxdw %r0, [%r2+8]\nsub %r0, %r1\n\
                 ldxw %r4, [%r2+8]\nadd %r0, %r4\nadd %r0, %r3\nexit\n"
            ));
            src
        })
}

/// Every load, store and atomic of `prog` hinted as a proven stack access: true here, as every
/// one goes through `r8`, `r1` in the subprogram (the caller's `r8`) or `r2` (its own frame).
fn stack_hints(prog: &Program) -> Hints {
    let slots = prog.iter().map(|(pc, _)| pc + 2).max().unwrap_or(0);
    let mut stack = vec![false; slots];
    for (pc, insn) in prog.iter() {
        stack[pc] = matches!(
            insn,
            Insn::Load { .. } | Insn::Store { .. } | Insn::Atomic { .. }
        );
    }
    Hints {
        no_ctx: vec![true; slots],
        stack,
        ..Hints::default()
    }
}

fn both(src: &str) -> Result<(), TestCaseError> {
    let prog =
        Program::new(assemble(src).map_err(|e| TestCaseError::fail(format!("{e:?}\n{src}")))?)
            .map_err(|e| TestCaseError::fail(format!("{e:?}\n{src}")))?;
    let interp = Interpreter::new(&prog);
    let hinted = JitProgram::compile_with(&prog, &stack_hints(&prog))
        .map_err(|e| TestCaseError::fail(format!("compile: {e}\n{src}")))?;
    let mut vm = Vm::default();
    vm.budget = 1_000_000;
    let init: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    let mut m1 = init.clone();
    let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
    prop_assert!(a.result.is_ok(), "interpreter: {:?}\n{}", a, src);
    let mut m2 = init.clone();
    let b = hinted.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
    prop_assert_eq!(&a, &b, "outcome\n{}", src);
    prop_assert_eq!(&m1, &m2, "memory\n{}", src);
    // Again on the same VM (frame 0 as the last run left it, cleared by the entry).
    let mut m3 = init;
    let c = hinted.run_with_memory(&mut vm, &mut ConformanceHost, &mut m3);
    prop_assert_eq!(&a, &c, "second run\n{}", src);
    Ok(())
}

/// 2,000 cases in optimised builds, fewer in debug ones; BPFSIM_DIFF_CASES overrides.
fn cases() -> u32 {
    std::env::var("BPFSIM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 200 } else { 2_000 })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn proven_stack_accesses_match_the_interpreter(src in program()) {
        both(&src)?;
    }
}
