//! The `auto` engine's tiering: interpreted until the executed instructions outweigh a compile,
//! then compiled in the background, with the same results throughout.

use bpfsim_helpers::object::{Engine, LoadedObject, Tier, AUTO_COST};
use bpfsim_helpers::run::Input;
use bpfsim_helpers::tier::{JitSlot, Ran, Source, BASELINE_COST};
use bpfsim_helpers::Env;
use bpfsim_vm::isa::{CallTarget, Insn, Reg, Source as Operand, Width};
use bpfsim_vm::{Interpreter, Program};

const XDP_PASS: &[u8] = include_bytes!("../../test-vectors/progs/xdp_pass.bpf.o");

/// `.bss` of xdp_pass: frames counted, bytes counted.
fn counters(obj: &LoadedObject) -> (u64, u64) {
    let bss = obj.map_id(".bss").unwrap();
    let v = obj.runner.maps.lookup(bss, &0u32.to_le_bytes()).unwrap();
    (
        u64::from_le_bytes(v[..8].try_into().unwrap()),
        u64::from_le_bytes(v[8..16].try_into().unwrap()),
    )
}

#[test]
fn a_few_runs_never_compile() {
    let mut obj = LoadedObject::load(XDP_PASS, Env::default()).unwrap();
    let prog = obj.program("xdp_pass_count", None).unwrap();
    for _ in 0..20 {
        let r = obj
            .run_engine(&prog, &[0u8; 60], Input::default(), 1, Engine::Auto)
            .unwrap();
        assert_eq!(r.retval, 2);
    }
    // Twenty runs of ten instructions are far below a thousand per instruction: a unit test's
    // handful of packets costs no compile.
    assert_eq!(prog.tier(), Tier::Interpreted);
    assert_eq!(prog.wait_for_tier(), Tier::Interpreted);
}

#[test]
fn a_hot_program_is_compiled_in_the_background_and_runs_alike() {
    let mut obj = LoadedObject::load(XDP_PASS, Env::default()).unwrap();
    let prog = obj.program("xdp_pass_count", None).unwrap();
    let pkt = [7u8; 64];
    let one = obj
        .run_engine(&prog, &pkt, Input::default(), 1, Engine::Auto)
        .unwrap();
    assert_eq!(prog.tier(), Tier::Interpreted);
    // One batch whose instructions reach the threshold starts the compile.
    let runs = (AUTO_COST * prog.insns.len() as u64).div_ceil(one.insns) as u32;
    obj.run_engine(&prog, &pkt, Input::default(), runs, Engine::Auto)
        .unwrap();
    assert_ne!(prog.tier(), Tier::Interpreted);
    assert_eq!(prog.wait_for_tier(), Tier::Compiled);
    // From here the compiled code runs: same verdict, same instruction count, same map state.
    let r = obj
        .run_engine(&prog, &pkt, Input::default(), 3, Engine::Auto)
        .unwrap();
    assert_eq!(
        (r.retval, r.insns, r.data),
        (one.retval, one.insns, one.data)
    );
    let total = 1 + runs as u64 + 3;
    assert_eq!(counters(&obj), (total, total * pkt.len() as u64));
    // `jit` now finds the program compiled (no second compile); it runs alike too.
    let j = obj
        .run_engine(&prog, &pkt, Input::default(), 1, Engine::Jit)
        .unwrap();
    assert_eq!((j.retval, j.insns), (one.retval, one.insns));
}

/// Past `BASELINE_COST` instructions per instruction (on x86-64), the baseline tier's code runs
/// the program until Cranelift's is ready, with the same results; its runs count toward the
/// compile's threshold as interpreted ones do.
#[test]
fn a_warm_program_runs_the_baseline_tier_first() {
    let mut obj = LoadedObject::load(XDP_PASS, Env::default()).unwrap();
    let prog = obj.program("xdp_pass_count", None).unwrap();
    let pkt = [7u8; 64];
    let one = obj
        .run_engine(&prog, &pkt, Input::default(), 1, Engine::Auto)
        .unwrap();
    let len = prog.insns.len() as u64;
    let warm = (BASELINE_COST * len).div_ceil(one.insns) as u32;
    obj.run_engine(&prog, &pkt, Input::default(), warm, Engine::Auto)
        .unwrap();
    // Decided at a batch's start: the batch that made it warm was interpreted.
    assert_eq!(prog.tier(), Tier::Interpreted);
    let r = obj
        .run_engine(&prog, &pkt, Input::default(), 3, Engine::Auto)
        .unwrap();
    let want = if cfg!(target_arch = "x86_64") {
        Tier::Baseline
    } else {
        Tier::Interpreted
    };
    assert_eq!(prog.tier(), want);
    assert_eq!(
        (r.retval, r.insns, r.data),
        (one.retval, one.insns, one.data.clone())
    );
    let mut total = 1 + warm as u64 + 3;
    assert_eq!(counters(&obj), (total, total * pkt.len() as u64));
    // The baseline's runs count: this batch ends exactly at Cranelift's threshold.
    let done = (1 + warm as u64 + 3) * one.insns;
    let rest = (AUTO_COST * len).saturating_sub(done).div_ceil(one.insns) as u32;
    obj.run_engine(&prog, &pkt, Input::default(), rest, Engine::Auto)
        .unwrap();
    assert_eq!(prog.wait_for_tier(), Tier::Compiled);
    total += rest as u64;
    let r = obj
        .run_engine(&prog, &pkt, Input::default(), 1, Engine::Auto)
        .unwrap();
    assert_eq!(
        (r.retval, r.insns, r.data),
        (one.retval, one.insns, one.data)
    );
    total += 1;
    assert_eq!(counters(&obj), (total, total * pkt.len() as u64));
}

#[test]
fn interpreted_runs_alone_count_toward_the_threshold() {
    let mut obj = LoadedObject::load(XDP_PASS, Env::default()).unwrap();
    let prog = obj.program("xdp_pass_count", None).unwrap();
    let threshold_runs = AUTO_COST as u32 * prog.insns.len() as u32;
    // Runs under `interp` (or `jit`) are not `auto`'s business.
    obj.run_engine(
        &prog,
        &[0u8; 60],
        Input::default(),
        threshold_runs,
        Engine::Interp,
    )
    .unwrap();
    assert_eq!(prog.tier(), Tier::Interpreted);
}

#[test]
fn a_program_the_jit_cannot_compile_stays_interpreted() {
    // A kfunc call: the interpreter reports it at run time, the JIT refuses to compile it.
    let insns = vec![
        Insn::Alu {
            width: Width::W64,
            op: bpfsim_vm::isa::AluOp::Mov,
            dst: Reg::R0,
            src: Operand::Imm(1),
        },
        Insn::Jmp {
            width: Width::W64,
            cond: bpfsim_vm::isa::Cond::Eq,
            dst: Reg::R0,
            src: Operand::Imm(1),
            off: 1,
        },
        Insn::Call(CallTarget::Kfunc {
            btf_id: 1,
            module: 0,
        }),
        Insn::Exit,
    ];
    let interp = Interpreter::new(&Program::new(insns.clone()).unwrap());
    let slot = JitSlot::new(Source {
        insns,
        verify: None,
        name: "kfunc".to_string(),
    });
    slot.ran(u64::MAX);
    assert_eq!(slot.wait(), Tier::Uncompilable);
    let (_, ran) = slot.executable(&interp, Engine::Auto).unwrap();
    assert_eq!(ran, Ran::Interpreter, "auto falls back to the interpreter");
    assert!(slot.executable(&interp, Engine::Jit).is_err());
}

/// The interpreter's runs get the verifier's frame proof (`LinkedProgram::interpreter_for`)
/// once the program is verified: by a batch or a sum of runs reaching `PROVE_RUNS`, or by a
/// compile; not for a few runs, never for a program the verifier rejects; with the same results
/// either way.
#[test]
fn interpreted_runs_take_the_frame_proof_once_the_program_is_verified() {
    use bpfsim_helpers::object::PROVE_RUNS;
    let mut obj = LoadedObject::load(XDP_PASS, Env::default()).unwrap();
    let prog = obj.program("xdp_pass_count", None).unwrap();
    let pkt = [7u8; 64];
    let run = |obj: &mut LoadedObject, n: u32| {
        let r = obj
            .run_engine(&prog, &pkt, Input::default(), n, Engine::Interp)
            .unwrap();
        (r.retval, r.insns, r.data)
    };
    let one = run(&mut obj, 1);
    assert!(prog.proven_interpreter().is_none());
    // Runs one at a time count too: this batch brings the sum to one short of the threshold.
    assert_eq!(run(&mut obj, PROVE_RUNS as u32 - 2), one);
    assert!(prog.proven_interpreter().is_none(), "one run short");
    assert_eq!(run(&mut obj, 1), one);
    let (proven, bytes) = prog.proven_interpreter().unwrap().frame_entry();
    assert!(proven);
    assert!(std::ptr::eq(
        prog.interpreter_for(1),
        prog.proven_interpreter().unwrap()
    ));
    let frame_bytes = prog.jit_hints().frame_bytes;
    assert_eq!(frame_bytes.first().map(|&(s, _)| s), Some(0));
    assert!(
        bytes < 512,
        "xdp_pass_count reaches {bytes} bytes of its frame"
    );
    assert_eq!(run(&mut obj, 5), one);
    let (frames, _) = counters(&obj);
    assert_eq!(frames, PROVE_RUNS + 5);

    // A compile verifies it: the next run is proven at once.
    let compiled = obj.program("xdp_pass_count", None).unwrap();
    assert!(!compiled.interpreter_for(1).frame_entry().0);
    compiled.jit().unwrap();
    assert!(compiled.interpreter_for(1).frame_entry().0);

    // A big batch of a program the verifier rejects: verified, and nothing proven.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../test-vectors/verifier/objects/reject_null_deref.bpf.o");
    let mut bad = LoadedObject::load(&std::fs::read(path).unwrap(), Env::default()).unwrap();
    let p = bad.program("xdp_count_unchecked", None).unwrap();
    let a = bad
        .run_engine(
            &p,
            &pkt,
            Input::default(),
            PROVE_RUNS as u32,
            Engine::Interp,
        )
        .unwrap();
    assert!(p.proven_interpreter().is_none());
    assert_eq!(p.interpreter_for(1).frame_entry(), (false, 512));
    let b = bad
        .run_engine(&p, &pkt, Input::default(), 1, Engine::Interp)
        .unwrap();
    assert_eq!((a.retval, a.insns, a.trap), (b.retval, b.insns, b.trap));
}
