//! `__sk_buff` field loads and stores under the JIT with the verifier's hints (kept values for
//! loads, stores straight into the context's cells) give what the interpreter gives: the same
//! verdicts, fields, packets and maps, on single runs and on the repeated runs of one test run,
//! where each run sees what the last one stored.

use bpfsim_helpers::object::{Engine, LoadedObject};
use bpfsim_helpers::run::{Input, RunResult, Runner};
use bpfsim_helpers::tier::Source;
use bpfsim_helpers::Env;
use bpfsim_jit::CompileOptions;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::{Executable, Interpreter, Program};

/// An Ethernet frame carrying IPv4 (a 20-byte header) and 26 bytes of payload.
fn frame() -> Vec<u8> {
    let mut p = vec![0u8; 60];
    p[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    p[12] = 0x08;
    p[14] = 0x45;
    p[23] = 17;
    for (i, b) in p[34..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

/// The program compiled with the hints the verifier proves for `ty` (which must accept it).
fn compiled(src: &str, ty: ProgType) -> (Interpreter, bpfsim_jit::JitProgram) {
    let insns = assemble(src).unwrap();
    let source = Source {
        insns: insns.clone(),
        verify: Some((insns.clone(), bpfsim_verifier::Options::new(ty))),
        name: "skb_ctx".into(),
    };
    let hints = source
        .proven_hints()
        .unwrap_or_else(|e| panic!("the verifier refused {src}: {e}"));
    assert!(
        hints.ctx.iter().any(|&c| c),
        "no access proven the context's"
    );
    let jit = source
        .compile_opts(&hints, CompileOptions::default())
        .unwrap();
    (Interpreter::new(&Program::new(insns).unwrap()), jit)
}

/// Both engines' results of `repeat` runs of `src` on `packet`, each on a fresh runner.
fn both(src: &str, ty: ProgType, input: Input, repeat: u32) -> [RunResult; 2] {
    let (interp, jit) = compiled(src, ty);
    let engines: [&dyn Executable; 2] = [&interp, &jit];
    engines.map(|e| {
        let mut r = Runner::default();
        r.set_timing(false);
        r.run_repeat(e, ty, &frame(), input, repeat).unwrap()
    })
}

fn with_ctx() -> Input {
    Input {
        skb: Some(bpfsim_helpers::ctx::skb::SkbMd {
            mark: 0x1122_3344,
            priority: 3,
            cb: [10, 20, 30, 40, 50],
            tstamp: 0x0102_0304_0506_0708,
            ..Default::default()
        }),
        ..Input::default()
    }
}

/// Stores to every writable field of a TC program, in every width it may store, each read
/// back whole and in narrow pieces; the pointer fields and the fields the kernel derives read
/// alongside. `r0` mixes all of them, so that any one read wrong changes it.
const TC_FIELDS: &str = "mov %r6, %r1
    ldxw %r2, [%r6+8]
    add %r2, 1
    stxw [%r6+8], %r2
    ldxb %r3, [%r6+8]
    ldxh %r4, [%r6+10]
    ldxb %r5, [%r6+11]
    mov %r0, %r2
    lsh %r0, 8
    xor %r0, %r3
    lsh %r0, 8
    xor %r0, %r4
    lsh %r0, 8
    xor %r0, %r5
    ldxw %r3, [%r6+48]
    add %r3, 2
    stxw [%r6+48], %r3
    stw [%r6+52], 0x1234
    ldxh %r4, [%r6+52]
    xor %r0, %r4
    ldxw %r4, [%r6+48]
    xor %r0, %r4
    stxw [%r6+72], %r2
    ldxw %r4, [%r6+72]
    xor %r0, %r4
    stxw [%r6+44], %r3
    ldxh %r4, [%r6+44]
    xor %r0, %r4
    stxw [%r6+12], %r3
    ldxw %r4, [%r6+12]
    xor %r0, %r4
    stw [%r6+32], 7
    ldxb %r4, [%r6+32]
    xor %r0, %r4
    ldxdw %r4, [%r6+152]
    add %r4, %r2
    stxdw [%r6+152], %r4
    ldxdw %r5, [%r6+152]
    xor %r0, %r5
    ldxw %r4, [%r6+0]
    xor %r0, %r4
    ldxw %r4, [%r6+16]
    xor %r0, %r4
    ldxw %r4, [%r6+4]
    xor %r0, %r4
    ldxw %r4, [%r6+40]
    xor %r0, %r4
    ldxw %r4, [%r6+160]
    xor %r0, %r4
    ldxw %r2, [%r6+76]
    ldxw %r3, [%r6+80]
    sub %r3, %r2
    xor %r0, %r3
    exit";

#[test]
fn tc_field_stores_and_loads_agree_on_every_run() {
    for input in [Input::default(), with_ctx()] {
        for repeat in [1, 2, 5] {
            let [i, j] = both(TC_FIELDS, ProgType::SchedCls, input, repeat);
            assert_eq!(i, j, "repeat {repeat}, input {input:?}");
            assert!(i.trap.is_none(), "{:?}", i.trap);
        }
    }
    // What the runs stored is what the result holds: mark went up by one per run.
    let [i, _] = both(TC_FIELDS, ProgType::SchedCls, with_ctx(), 3);
    let skb = i.skb.unwrap();
    assert_eq!(skb.md.mark, 0x1122_3347);
    assert_eq!(skb.md.cb[1], 0x1234);
    assert_eq!(skb.tc_classid, 0x1122_3347);
}

/// Socket filters may write cb[] only, and cgroup programs cb[], mark and priority: the same
/// program text, where each type allows it.
#[test]
fn cb_stores_of_socket_filters_and_cgroup_programs_agree() {
    let cb = "mov %r6, %r1
        ldxw %r2, [%r6+56]
        add %r2, 3
        stxw [%r6+56], %r2
        stw [%r6+64], 9
        ldxb %r0, [%r6+56]
        ldxw %r3, [%r6+64]
        add %r0, %r3
        ldxw %r3, [%r6+0]
        add %r0, %r3
        stxw [%r6+60], %r0
        and %r0, 1
        exit";
    let mark = "mov %r6, %r1
        ldxw %r2, [%r6+8]
        add %r2, 5
        stxw [%r6+8], %r2
        stw [%r6+32], 4
        ldxw %r0, [%r6+8]
        ldxw %r3, [%r6+32]
        add %r0, %r3
        and %r0, 1
        exit";
    for (src, ty) in [
        (cb, ProgType::SocketFilter),
        (cb, ProgType::CgroupSkb),
        (mark, ProgType::CgroupSkb),
    ] {
        for repeat in [1, 4] {
            let [i, j] = both(src, ty, with_ctx(), repeat);
            assert_eq!(i, j, "{ty} repeat {repeat}");
        }
    }
}

/// A store through the context's pointer and a load of the same field through a pointer the
/// verifier cannot call the context's on every path (here: the context on one path, the stack
/// on the other): the load is not a kept one, so it reads the context itself, which the
/// store wrote straight into.
#[test]
fn a_load_the_hints_leave_alone_sees_a_direct_store() {
    let src = "mov %r6, %r1
        stw [%r10-8], 77
        ldxw %r2, [%r6+0]
        mov %r7, %r10
        add %r7, -56
        jgt %r2, 100, +1
        mov %r7, %r6
        stw [%r6+48], 5
        ldxw %r0, [%r7+48]
        exit";
    for repeat in [1, 3] {
        let [i, j] = both(src, ProgType::SchedCls, with_ctx(), repeat);
        assert_eq!(i, j, "repeat {repeat}");
        assert_eq!(i.retval, 5, "the packet is short: the context's cb[0]");
    }
}

const TC_CTX_FIELDS: &[u8] = include_bytes!("../../test-vectors/progs/tc_ctx_fields.bpf.o");
const TC_CLASSIFIER: &[u8] = include_bytes!("../../test-vectors/progs/tc_classifier.bpf.o");

/// The compiled TC programs that read and write `__sk_buff` fields, on every packet of their
/// captures, one run and several: the same results and the same maps afterwards.
#[test]
fn clang_tc_programs_agree_with_the_interpreter() {
    for (obj, name, pcap) in [
        (TC_CTX_FIELDS, "tc_ctx_fields", "tc_ctx_fields.pcap"),
        (TC_CLASSIFIER, "tc_classify", "tc_classifier.pcap"),
    ] {
        let pcap = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../test-vectors/progs/pcaps")
                .join(pcap),
        )
        .unwrap();
        let packets = pcap_packets(&pcap);
        assert!(packets.len() > 10);
        let mut seen = Vec::new();
        for engine in [Engine::Interp, Engine::Jit] {
            let mut o = LoadedObject::load(obj, Env::default()).unwrap();
            o.runner.set_timing(false);
            let prog = o.program(name, None).unwrap();
            let mut outs = Vec::new();
            for p in &packets {
                for (repeat, input) in [(1, Input::default()), (3, with_ctx())] {
                    outs.push(o.run_engine(&prog, p, input, repeat, engine).ok());
                }
            }
            let maps: Vec<_> = o
                .runner
                .maps
                .iter()
                .map(|m| o.runner.maps.entries(m.id()).ok())
                .collect();
            seen.push((outs, maps));
        }
        assert!(seen[0].0.iter().flatten().count() > 10, "{name}");
        assert_eq!(seen[0], seen[1], "{name}: interpreter, then JIT");
    }
}

/// The packets of a classic pcap file (little-endian, microseconds).
fn pcap_packets(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let n = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        out.push(b[at..at + n].to_vec());
        at += n;
    }
    out
}
