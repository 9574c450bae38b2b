//! The fast paths against the plain semantics: random programs, rich in the instruction sequences
//! the interpreter fuses, run by [`Interpreter::run`] (budget paid per run, fused ops) and by
//! `run_exact` (budget paid per instruction, no fusion) with many budgets, including every small
//! one, so that the budget runs out at every point of the first runs. The outcome (r0 or the trap
//! with its pc, the instruction count, a tail call) and the memory afterwards must be identical.

use super::*;
use crate::asm::assemble;

/// A host with every way a helper can end or divert a run.
struct TestHost;

impl Host for TestHost {
    fn call_helper(
        &mut self,
        id: u32,
        a: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            5 if a[0] == 0 => Err(HelperStop::Exit(0)),
            5 => Ok(a[0]),
            9 => Err(HelperStop::Exit(a[0])),
            12 if a[0] & 1 == 1 => Err(HelperStop::TailCall(a[0] as u32)),
            12 => Ok(3),
            7 if a[0] % 3 == 0 => Err(HelperStop::Fault),
            7 => Ok(a[0].wrapping_mul(2)),
            8 => {
                mem.store(a[0], Size::W, a[1])?;
                Ok(1)
            }
            181 => Err(HelperStop::Loop {
                func: a[0],
                iterations: (a[1] % 6) as u32,
                ctx: a[2],
            }),
            182 => Err(HelperStop::CallEach {
                func: a[0],
                calls: vec![[1, 2, 3, 4, 5], [0; 5], [a[2], 0, 0, 0, 0]].into(),
            }),
            _ => Err(HelperStop::Unknown),
        }
    }

    fn load_packet(
        &mut self,
        _mem: &mut MemoryMap<'_>,
        offset: i64,
        size: Size,
    ) -> Result<Option<u64>, HelperStop> {
        match offset {
            0..100 => Ok(Some(offset as u64 * 3 + size.bytes() as u64)),
            100..200 => Ok(None),
            _ => Err(HelperStop::Unknown),
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    fn imm(&mut self) -> i64 {
        match self.below(4) {
            0 => self.below(8) as i64 - 4,
            1 => self.next() as i32 as i64,
            2 => [
                0,
                1,
                -1,
                2,
                127,
                128,
                -128,
                -129,
                i32::MIN as i64,
                i32::MAX as i64,
            ][self.below(10) as usize],
            _ => self.below(64) as i64,
        }
    }
}

const ALU: [&str; 14] = [
    "add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "lsh", "rsh", "arsh", "xor",
    "mov",
];
const JMP: [&str; 11] = [
    "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset",
];
const SIZES: [&str; 4] = ["b", "h", "w", "dw"];

/// One statement (some are several instructions) of a body of `n`, the `k`th; labels `{p}0..`.
fn statement(g: &mut Rng, p: &str, k: usize, n: usize) -> String {
    let a = g.below(9); // r9 holds the memory pointer
    let b = g.below(10);
    let w = g.pick(&["", "32"]);
    let target = |g: &mut Rng| match g.below(6) {
        0 => "exit".to_string(),
        1 if k > 0 => format!("{p}{}", g.below(k as u64 + 1)),
        _ => format!("{p}{}", k + 1 + g.below((n - k) as u64) as usize),
    };
    let moff = |g: &mut Rng| match g.below(16) {
        0 => g.below(80) as i64 - 8,
        _ => g.below(57) as i64,
    };
    let rhs = |g: &mut Rng| match g.below(2) {
        0 => g.imm().to_string(),
        _ => format!("%r{}", g.below(10)),
    };
    match g.below(24) {
        0 => format!("{}{w} %r{a}, %r{b}", g.pick(&ALU)),
        1 => format!("{}{w} %r{a}, {}", g.pick(&ALU), g.imm()),
        2 => format!("lddw %r{a}, {:#x}", g.next()),
        3 => format!("ldx{} %r{a}, [%r9{:+}]", g.pick(&SIZES), moff(g)),
        4 => format!("stx{} [%r9{:+}], %r{a}", g.pick(&SIZES), moff(g)),
        5 => format!("st{} [%r10-{}], {}", g.pick(&SIZES), g.below(72), g.imm()),
        6 => format!("ldx{} %r{a}, [%r10-{}]", g.pick(&SIZES), g.below(72)),
        7 => {
            // One time in three followed by `ja`, as clang ends loops.
            let jcc = format!("{}{w} %r{a}, {}, {}", g.pick(&JMP), rhs(g), target(g));
            match g.below(3) {
                0 => format!("{jcc}\nja {}", target(g)),
                _ => jcc,
            }
        }
        8 => format!("ja {}", target(g)),
        9 => format!(
            "lock {}add [%r9{:+}], %r{a}",
            g.pick(&["", "fetch "]),
            8 * (g.below(9) as i64 - 1)
        ),
        10 => match g.below(11) {
            0 => "call 5".into(),
            1 => "call 99".into(),
            2 => "call 9".into(),
            3 => "call 12".into(),
            4 => "call 7".into(),
            5 => "mov %r2, 77\ncall 8".into(),
            6 => "lddw %r1, func cb\ncall 181".into(),
            7 => "lddw %r1, func cb\ncall 182".into(),
            8 => format!("mov %r{a}, 5\ncall %r{a}"),
            9 => format!("call %r{a}"),
            _ if p == "S" => "call 5".into(),
            _ => "call local sub".into(),
        },
        11 => format!(
            "{} %r{a}",
            g.pick(&["neg", "be16", "be32", "be64", "le16", "le32"])
        ),
        12 => format!(
            "ld{} {}",
            g.pick(&["absb", "absh", "absw"]),
            g.below(260) as i64 - 30
        ),
        13 => format!(
            "ld{} %r{a}, {}",
            g.pick(&["indb", "indh", "indw"]),
            g.below(260) as i64 - 30
        ),
        // What the interpreter fuses, with near misses (other registers, amounts, operations).
        14 | 15 => format!("mov %r{a}, %r{b}\n{} %r{a}, {}", g.pick(&ALU), g.imm()),
        16 => format!(
            "mov %r{a}, %r{b}\n{} %r{}, %r{}",
            g.pick(&["add", "sub", "or", "and", "xor", "mul"]),
            [a, b][g.below(2) as usize],
            [a, b, g.below(10)][g.below(3) as usize]
        ),
        17 | 18 => format!(
            "{} %r{a}, {}\n{} %r{}, {}, {}",
            g.pick(&["add", "sub"]),
            g.imm(),
            g.pick(&JMP),
            [a, a, a, b][g.below(4) as usize],
            rhs(g),
            target(g)
        ),
        19 => {
            let (size, bits) = [("h", 16), ("w", 32), ("dw", 64)][g.below(3) as usize];
            let at = match g.below(3) {
                0 => format!("%r10-{}", g.below(72)),
                _ => format!("%r9{:+}", moff(g)),
            };
            let c = [a, a, a, b][g.below(4) as usize];
            format!("ldx{size} %r{a}, [{at}]\nbe{bits} %r{c}")
        }
        20 | 21 => {
            let x = [a, b, b, b][g.below(4) as usize];
            let t2 = [a, a, a, a, a, g.below(9)][g.below(6) as usize];
            let (c1, c2) = match g.below(2) {
                0 => (x, a),
                _ => (a, x),
            };
            let c2 = [c2, c2, c2, c2, c2, g.below(9)][g.below(6) as usize];
            format!(
                "mov %r{a}, %r{x}\n{} %r{t2}, {}\n{} %r{c1}, %r{c2}",
                g.pick(&["lsh", "rsh", "arsh"]),
                g.imm(),
                g.pick(&["xor", "or", "add", "sub"])
            )
        }
        22 => {
            let k = [32, 32, g.imm()][g.below(3) as usize];
            let k2 = [k, k, k, g.imm()][g.below(4) as usize];
            let mov = ["", &format!("mov %r{a}, %r{b}\n")][g.below(2) as usize].to_string();
            let t2 = [a, a, a, b][g.below(4) as usize];
            format!(
                "{mov}lsh %r{a}, {k}\n{} %r{t2}, {k2}",
                g.pick(&["rsh", "arsh", "lsh"])
            )
        }
        23 if g.below(2) == 0 => {
            // The packet bounds check: `data + n > data_end`, with near misses.
            let t2 = [a, a, a, b][g.below(4) as usize];
            format!(
                "mov %r{a}, %r{b}\n{} %r{}, {}\n{} %r{t2}, %r{}, {}",
                g.pick(&["add", "add", "add", "sub"]),
                [a, a, a, b][g.below(4) as usize],
                g.imm(),
                g.pick(&["jgt", "jge", "jlt", "jle", "jgt", "jeq"]),
                [g.below(10), a][g.below(2) as usize],
                target(g)
            )
        }
        _ => format!("mov{w} %r{a}, {}", g.imm()),
    }
}

fn program(g: &mut Rng) -> String {
    let mut src = String::from("mov %r9, %r1\n");
    for r in [0, 2, 3, 4, 5, 6, 7, 8] {
        match g.below(2) {
            0 => src += &format!("lddw %r{r}, {:#x}\n", g.next()),
            _ => src += &format!("mov %r{r}, {}\n", g.below(20) as i64 - 3),
        }
    }
    let n = 1 + g.below(40) as usize;
    for k in 0..n {
        src += &format!("L{k}:\n{}\n", statement(g, "L", k, n));
    }
    src += &format!("L{n}:\nexit\nsub:\n");
    let m = g.below(6) as usize;
    for k in 0..m {
        src += &format!("S{k}:\n{}\n", statement(g, "S", k, m));
    }
    src += &format!("S{m}:\ncall local sub2\nexit\n");
    src += "sub2:\nmov %r0, %r1\nadd %r0, 7\nstxdw [%r10-8], %r0\nldxdw %r0, [%r10-8]\nexit\n";
    // A callback that loops on its argument and returns its parity.
    src += "cb:\nmov %r0, %r1\nadd %r0, %r2\nand %r0, 1\njne %r0, 0, +2\nadd %r1, -1\n";
    src += "jne %r1, 0, -3\nexit\n";
    src
}

fn cases() -> u64 {
    let default = if cfg!(debug_assertions) { 3000 } else { 20000 };
    std::env::var("BPFSIM_INTERP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn fast_paths_equal_the_plain_semantics() {
    let mut g = Rng(0x1234_5678_9abc_def1);
    let (mut programs, mut budget_traps, mut fused) = (0u64, 0u64, 0usize);
    for _ in 0..cases() {
        let src = program(&mut g);
        let Ok(prog) = assemble(&src)
            .map_err(drop)
            .and_then(|i| Program::new(i).map_err(drop))
        else {
            continue; // a jump outside its subprogram
        };
        programs += 1;
        let interp = Interpreter::new(&prog);
        fused += interp
            .ops
            .iter()
            .zip(&interp.plain)
            .filter(|(a, b)| a.kind != b.kind)
            .count();
        let mut budgets: Vec<u64> = (0..24).chain([300, 10_000]).collect();
        budgets.extend((0..6).map(|_| g.below(300)));
        let init: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        for budget in budgets {
            let (mut vm_fast, mut vm_plain) = (Vm::default(), Vm::default());
            // Twice, so that the second run starts on the stack the first one left.
            for _ in 0..2 {
                let (mut m_fast, mut m_plain) = (init.clone(), init.clone());
                let fast = run(&mut vm_fast, &mut m_fast, |mem, args| {
                    interp.run(mem, &mut TestHost, args, budget)
                });
                let plain = run(&mut vm_plain, &mut m_plain, |mem, args| {
                    interp.run_exact(mem, &mut TestHost, args, budget)
                });
                assert_eq!(fast, plain, "budget {budget}\n{src}");
                assert_eq!(m_fast, m_plain, "memory, budget {budget}\n{src}");
                if matches!(fast.result, Err(t) if t.code == TrapCode::Budget) {
                    budget_traps += 1;
                }
            }
        }
    }
    // The generator must keep exercising what it is for.
    assert!(programs * 10 > cases() * 9, "{programs} programs");
    assert!(
        fused as u64 > programs,
        "{fused} fused ops in {programs} programs"
    );
    assert!(budget_traps > programs * 10, "{budget_traps} budget traps");
}

/// A run with `mem` mapped at r1 and its length in r2, as [`Vm::run_with_memory`] does it.
fn run(
    vm: &mut Vm,
    mem: &mut [u8],
    f: impl FnOnce(&mut MemoryMap<'_>, [u64; 5]) -> Outcome,
) -> Outcome {
    let len = mem.len() as u64;
    let mut map = vm.memory();
    let addr = map.map_mut(mem).unwrap();
    f(&mut map, [addr, len, 0, 0, 0])
}

/// The frame proof is what an entry trusts: a program that forges a pointer into frame 7 (`r10 ^=
/// r1`, its memory at region 9) reads there what the run before wrote when it is said to be
/// proven (a false proof: the verifier refuses the forgery), and zeros when nothing proved it;
/// a proof that says nothing of slot 0 (a rejected program's) leaves the interpreter as it was.
#[test]
fn a_frame_proof_decides_whether_an_entry_clears_the_frames_past_0() {
    let prog = Program::new(
        assemble("xor %r10, %r1\nldxdw %r0, [%r10-8]\nstdw [%r10-8], 7\nexit").unwrap(),
    )
    .unwrap();
    let plain = Interpreter::new(&prog);
    assert_eq!(plain.frame_entry(), (false, FRAME_SIZE));
    assert_eq!(
        plain.clone().with_frame_proof(&[]).frame_entry(),
        (false, FRAME_SIZE)
    );
    assert_eq!(
        plain.clone().with_frame_proof(&[(3, 8)]).frame_entry(),
        (false, FRAME_SIZE)
    );
    assert_eq!(
        plain
            .clone()
            .with_frame_proof(&[(0, 13), (3, 8)])
            .frame_entry(),
        (true, 16)
    );
    assert_eq!(
        plain.clone().with_frame_proof(&[(0, 4096)]).frame_entry(),
        (true, FRAME_SIZE)
    );
    let lied = plain.clone().with_frame_proof(&[(0, 0)]);
    let mut vm = Vm::default();
    let mut mem = [0u8; 8];
    let mut two = |p: &Interpreter| {
        [(); 2].map(|()| {
            vm.run_with_memory(p, &mut TestHost, &mut mem)
                .result
                .unwrap()
        })
    };
    assert_eq!(two(&plain), [0, 0]);
    assert_eq!(
        two(&lied),
        [7, 7],
        "the proven entry left frame 7 as written"
    );
    assert_eq!(two(&plain), [0, 0]);
}

/// A batch's later runs (`Batch::execute_repeat`, which clears through `MemoryMap::reentry`)
/// start from the stack a lone run starts from: a read of frame 0 before its write sees 0 in
/// every run, proven or not, and a forged pointer into frame 7 sees 0 unless the program is
/// (falsely) said to be proven; the count of runs and the last outcome are as asked.
#[test]
fn a_batch_clears_before_each_run_as_an_entry_does() {
    let batch = |src: &str, proof: Option<&[(usize, u32)]>, n: u32| {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let mut interp = Interpreter::new(&prog);
        if let Some(f) = proof {
            interp = interp.with_frame_proof(f);
        }
        let mut vm = Vm::default();
        let mut mem = [0u8; 8];
        let mut runs = interp.prepare().unwrap();
        run(&mut vm, &mut mem, |m, args| {
            let (out, k) = runs.execute_repeat(m, &mut TestHost, args, 100, n);
            assert_eq!(k, n);
            out
        })
        .result
        .unwrap()
    };
    let own = "ldxdw %r0, [%r10-16]\nstdw [%r10-16], 7\nexit";
    for proof in [None, Some(&[(0, 16)][..])] {
        assert_eq!(batch(own, proof, 1), 0);
        assert_eq!(batch(own, proof, 5), 0);
    }
    let forged = "xor %r10, %r1\nldxdw %r0, [%r10-8]\nstdw [%r10-8], 7\nexit";
    assert_eq!(batch(forged, None, 5), 0);
    assert_eq!(batch(forged, Some(&[(0, 0)]), 1), 0);
    assert_eq!(batch(forged, Some(&[(0, 0)]), 5), 7);
}
