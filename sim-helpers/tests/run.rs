//! What a simulated run reports beyond what the kernel's test run can: trace lines, redirect
//! targets, traps, the environment's clock and randomness.

use bpfsim_helpers::ctx::xdp::XdpMd;
use bpfsim_helpers::run::{Input, Redirect, Runner};
use bpfsim_helpers::{Clock, Env, Prandom};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::spec::{MapDef, MapType, ProgType};
use bpfsim_vm::{Interpreter, Program, TrapCode};

fn prog(src: &str) -> Interpreter {
    Interpreter::new(&Program::new(assemble(src).unwrap()).unwrap())
}

/// An Ethernet frame carrying ARP (no network header the skb test run would insist on).
/// A map definition as an object would declare it, for tests that build maps by hand.
fn def(name: &str, map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
    MapDef {
        name: name.to_string(),
        map_type,
        key_size,
        value_size,
        max_entries,
        flags: 0,
        inner: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    }
}

const PACKET: [u8; 20] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6, 0, 1, 8, 0, 6, 4];

#[test]
fn printk_lines_are_captured_per_run() {
    // bpf_printk("ifindex %d", ctx->ingress_ifindex): the format is "ifindex %d\0" on the stack.
    let p = prog(
        "ldxw %r3, [%r1+12]
         lddw %r1, 0x207865646e696669
         stxdw [%r10-16], %r1
         lddw %r1, 0x6425
         stxdw [%r10-8], %r1
         mov %r1, %r10
         add %r1, -16
         mov %r2, 11
         call 6
         mov %r0, 2
         exit",
    );
    let mut r = Runner::default();
    let input = Input {
        xdp: XdpMd {
            ingress_ifindex: 7,
            ..XdpMd::default()
        },
        ..Input::default()
    };
    let out = r.run(&p, ProgType::Xdp, &PACKET, input).unwrap();
    assert_eq!(out.trap, None);
    assert_eq!(out.trace, vec!["ifindex 7".to_string()]);
    let again = r.run(&p, ProgType::Xdp, &PACKET, input).unwrap();
    assert_eq!(again.trace.len(), 1, "per-run lines");
    assert_eq!(r.env.trace.len(), 2, "the environment keeps them all");
}

#[test]
fn redirect_targets_are_visible() {
    let p = prog("mov %r1, 3\nmov %r2, 0\ncall 23\nexit");
    let out = Runner::default()
        .run(&p, ProgType::Xdp, &PACKET, Input::default())
        .unwrap();
    assert_eq!(out.retval, 4);
    assert_eq!(
        out.redirect,
        Some(Redirect::Ifindex {
            ifindex: 3,
            flags: 0
        })
    );
    let tc = Runner::default()
        .run(&p, ProgType::SchedCls, &PACKET, Input::default())
        .unwrap();
    assert_eq!(tc.retval, 7, "TC_ACT_REDIRECT");
}

/// A flag `bpf_redirect` refuses (any under XDP, any but `BPF_F_INGRESS` under TC) returns
/// before anything is recorded, as the kernel's helper does: the redirect made before it stands.
#[test]
fn a_refused_redirect_records_nothing() {
    let p = prog(
        "mov %r1, 3\nmov %r2, 0\ncall 23\nmov %r6, %r0\n\
         mov %r1, 5\nmov %r2, 2\ncall 23\nlsh %r6, 4\nor %r0, %r6\nexit",
    );
    for (t, r0) in [(ProgType::Xdp, 0x40), (ProgType::SchedCls, 0x72)] {
        let out = Runner::default()
            .run(&p, t, &PACKET, Input::default())
            .unwrap();
        assert_eq!(out.retval, r0, "{t:?}");
        assert_eq!(
            out.redirect,
            Some(Redirect::Ifindex {
                ifindex: 3,
                flags: 0
            }),
            "{t:?}"
        );
    }
}

#[test]
fn traps_become_aborted_with_the_trap_reported() {
    let p = prog("ldxw %r2, [%r1+0]\nldxb %r0, [%r2+5000]\nexit");
    let out = Runner::default()
        .run(&p, ProgType::Xdp, &PACKET, Input::default())
        .unwrap();
    assert_eq!(out.retval, 0);
    let t = out.trap.unwrap();
    assert_eq!((t.code, t.pc), (TrapCode::MemoryRead, 1));
    assert_eq!(out.data, PACKET);
}

#[test]
fn clock_and_randomness_come_from_the_environment() {
    let p = prog("call 5\nmov %r6, %r0\ncall 5\nsub %r0, %r6\nexit");
    let mut r = Runner::new(Env {
        clock: Clock::stepping(1_000, 250),
        ..Env::default()
    });
    assert_eq!(
        r.run(&p, ProgType::Xdp, &PACKET, Input::default())
            .unwrap()
            .retval,
        250
    );
    let rnd = prog("call 7\nexit");
    let seeded = |seed| {
        let mut r = Runner::new(Env {
            prandom: Prandom::seeded(seed),
            ..Env::default()
        });
        (0..3)
            .map(|_| {
                r.run(&rnd, ProgType::Xdp, &PACKET, Input::default())
                    .unwrap()
                    .retval
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(seeded(1), seeded(1));
    assert_ne!(seeded(1), seeded(2));
}

#[test]
fn unsupported_types_and_bad_packets_are_errors() {
    let p = prog("mov %r0, 0\nexit");
    assert!(Runner::default()
        .run(&p, ProgType::Kprobe, &PACKET, Input::default())
        .is_err());
    let err = Runner::default()
        .run(&p, ProgType::Xdp, &PACKET[..10], Input::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("shorter than an Ethernet header"),
        "{err}"
    );
}

#[test]
fn tail_calls_chain_at_most_33_times() {
    use bpfsim_helpers::run::{arena_addr, MAP_HANDLE_BASE};
    let mut r = Runner::default();
    let jmp = r
        .maps
        .create(&def("jmp", MapType::ProgArray, 4, 4, 1))
        .unwrap();
    r.maps
        .create(&def("count", MapType::Array, 4, 8, 1))
        .unwrap();
    // Count each entry in `count[0]`, then tail-call jmp[0] (this very program).
    let src = format!(
        "mov %r6, %r1
         lddw %r2, {count:#x}
         ldxdw %r3, [%r2]
         add %r3, 1
         stxdw [%r2], %r3
         mov %r1, %r6
         lddw %r2, {jmp:#x}
         mov %r3, 0
         call 12
         mov %r0, 2
         exit",
        count = arena_addr(&r.maps, 1, 0),
        jmp = MAP_HANDLE_BASE,
    );
    let p = prog(&src);
    let compiled = Program::new(assemble(&src).unwrap()).unwrap();
    let id = r.add_program(p.clone());
    r.maps
        .update(jmp, &0u32.to_le_bytes(), &id.to_le_bytes(), 0)
        .unwrap();
    let out = r.run(&p, ProgType::Xdp, &PACKET, Input::default()).unwrap();
    assert_eq!((out.retval, out.trap), (2, None));
    assert_eq!(
        out.tail_calls,
        vec![id; 33],
        "the chain, program by program"
    );
    let count = r
        .maps
        .lookup(r.maps.by_name("count").unwrap(), &0u32.to_le_bytes())
        .unwrap();
    assert_eq!(
        u64::from_le_bytes(count.try_into().unwrap()),
        34,
        "the entry run and 33 tail calls"
    );
    // The entry program under the JIT, whose `call 12` asks the host directly: the same
    // chain, and the same count.
    let jit = bpfsim_jit::JitProgram::compile(&compiled).unwrap();
    let out = r
        .run(&jit, ProgType::Xdp, &PACKET, Input::default())
        .unwrap();
    assert_eq!((out.retval, out.trap), (2, None));
    assert_eq!(out.tail_calls, vec![id; 33]);
    // A test's override of the helper still answers it under the JIT.
    r.override_helper(12, |_, _| Ok(7));
    let out = r
        .run(&jit, ProgType::Xdp, &PACKET, Input::default())
        .unwrap();
    assert_eq!(out.retval, 2);
    assert!(out.tail_calls.is_empty());
    r.restore_helper(12);
    // An empty slot: the call fails and the program goes on.
    r.maps.delete(jmp, &0u32.to_le_bytes()).unwrap();
    for e in [&p as &dyn bpfsim_vm::Executable, &jit] {
        let out = r.run(e, ProgType::Xdp, &PACKET, Input::default()).unwrap();
        assert_eq!(out.retval, 2);
        assert!(out.tail_calls.is_empty());
    }
}

#[test]
fn tail_call_chains_are_named_by_the_object() {
    use bpfsim_helpers::object::LoadedObject;
    let bytes = include_bytes!("../../test-vectors/progs/tail_calls.bpf.o");
    let mut obj = LoadedObject::load(bytes, Env::default()).unwrap();
    let jmp = obj.map_id("jmp_table").unwrap();
    for (slot, name) in ["handle_ipv4", "handle_ipv6", "handle_arp", "handle_icmp"]
        .iter()
        .enumerate()
    {
        let id = obj.prog_id(name).unwrap();
        obj.runner
            .maps
            .update(jmp, &(slot as u32).to_le_bytes(), &id.to_le_bytes(), 0)
            .unwrap();
    }
    let prog = obj.program("xdp_dispatch", None).unwrap();
    // Ethernet + IPv4 + ICMP echo request: entry -> handle_ipv4 -> handle_icmp.
    let mut pkt = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    pkt.extend_from_slice(&[
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    pkt.extend_from_slice(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    let r = obj.run(&prog, &pkt, Input::default()).unwrap();
    let chain: Vec<&str> = r
        .tail_calls
        .iter()
        .map(|id| obj.program_name_by_id(*id).unwrap())
        .collect();
    assert_eq!(chain, ["handle_ipv4", "handle_icmp"]);
    assert_eq!(r.retval, 3, "XDP_TX from handle_icmp");
}

/// A chain's targets run under the entry program's engine: compiled, once a tail call enters
/// them, under the JIT (and under `auto` once their own runs make them hot); interpreted under
/// the interpreter. Every engine gives the same results, the `ran` counters included.
#[test]
fn tail_call_targets_run_under_the_entrys_engine() {
    use bpfsim_helpers::object::{Engine, LoadedObject};
    use bpfsim_helpers::tier::Tier;
    let bytes = include_bytes!("../../test-vectors/progs/tail_calls.bpf.o");
    let names = ["handle_ipv4", "handle_ipv6", "handle_arp", "handle_icmp"];
    let eth = |proto: u16, l3: &[u8]| {
        let mut p = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        p.extend_from_slice(&proto.to_be_bytes());
        p.extend_from_slice(l3);
        p
    };
    let icmp = [
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 8, 0, 0xf7, 0xff, 0, 0,
        0, 0,
    ];
    let mut tcp23 = icmp.to_vec();
    tcp23[9] = 6;
    tcp23.extend_from_slice(&[
        0, 80, 0, 23, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 2, 0, 0, 0, 0, 0, 0,
    ]);
    let packets = [
        eth(0x0800, &icmp),
        eth(0x0800, &tcp23),
        eth(0x86dd, &[0x60; 40]),
        eth(0x0806, &[0; 28]),
        eth(0x88cc, &[0; 20]),
    ];
    let run = |engine: Engine, repeat: u32| {
        let mut obj = LoadedObject::load(bytes, Env::default()).unwrap();
        let jmp = obj.map_id("jmp_table").unwrap();
        let mut ids = Vec::new();
        for (slot, name) in names.iter().enumerate() {
            let id = obj.prog_id(name).unwrap();
            ids.push(id);
            obj.runner
                .maps
                .update(jmp, &(slot as u32).to_le_bytes(), &id.to_le_bytes(), 0)
                .unwrap();
        }
        let prog = obj.program("xdp_dispatch", None).unwrap();
        let mut results = Vec::new();
        for p in &packets {
            let mut r = obj
                .run_engine(&prog, p, Input::default(), repeat, engine)
                .unwrap();
            r.duration_ns = 0;
            results.push(r);
        }
        let counters = obj.map_id("ran").unwrap();
        let ran: Vec<Vec<u8>> = (0..6u32)
            .map(|k| obj.runner.maps.lookup(counters, &k.to_le_bytes()).unwrap())
            .collect();
        let tiers: Vec<Tier> = ids
            .iter()
            .map(|&id| obj.runner.tail_tier(id).unwrap())
            .collect();
        assert_eq!(obj.runner.tail_tier(ids.len() as u32 + 1), None);
        (results, ran, tiers)
    };
    for repeat in [1, 3] {
        let (want, ran, tiers) = run(Engine::Interp, repeat);
        assert_eq!(tiers, [Tier::Interpreted; 4]);
        assert_eq!(
            want[0].tail_calls.len(),
            2,
            "entry -> handle_ipv4 -> handle_icmp"
        );
        let (got, jit_ran, tiers) = run(Engine::Jit, repeat);
        assert_eq!(got, want, "repeat {repeat}");
        assert_eq!(jit_ran, ran);
        assert_eq!(tiers, [Tier::Compiled; 4], "every handler was entered");
    }
    // Under `auto`, 4,000 runs of each packet: the handlers are hot on their own runs.
    let (want, ..) = run(Engine::Interp, 4000);
    let (got, _, tiers) = run(Engine::Auto, 4000);
    assert_eq!(got, want);
    assert!(tiers.iter().all(|t| *t != Tier::Interpreted), "{tiers:?}");
}

#[test]
fn repeat_runs_like_the_kernel_maps_persisting() {
    use bpfsim_helpers::object::LoadedObject;
    // xdp_pass counts frames and bytes in .bss.
    let bytes = include_bytes!("../../test-vectors/progs/xdp_pass.bpf.o");
    let mut obj = LoadedObject::load(bytes, Env::default()).unwrap();
    let prog = obj.program("xdp_pass_count", None).unwrap();
    let pkt = [0u8; 60];
    let r = obj.run_repeat(&prog, &pkt, Input::default(), 5).unwrap();
    assert_eq!(r.retval, 2);
    assert_eq!(r.data, pkt, "every repeat starts from the packet given");
    let bss = obj.map_id(".bss").unwrap();
    let v = obj.runner.maps.lookup(bss, &0u32.to_le_bytes()).unwrap();
    assert_eq!(
        u64::from_le_bytes(v[..8].try_into().unwrap()),
        5,
        "five runs counted"
    );
    assert!(r.duration_ns > 0);
}

#[test]
fn queues_and_perf_events_from_programs() {
    use bpfsim_helpers::run::MAP_HANDLE_BASE;
    let mut r = Runner::default();
    r.maps.create(&def("q", MapType::Queue, 0, 8, 4)).unwrap();
    let perf = r
        .maps
        .create(&def("out", MapType::PerfEventArray, 4, 4, 1))
        .unwrap();
    r.maps.perf_open_all(perf).unwrap();
    // push(q, 7); pop(q, fp-8); perf_event_output(ctx, out, CURRENT_CPU | 14 << 32, fp-8, 8)
    let src = format!(
        "mov %r6, %r1
         stdw [%r10-8], 7
         lddw %r1, {q:#x}
         mov %r2, %r10
         add %r2, -8
         mov %r3, 0
         call 87
         stdw [%r10-8], 0
         lddw %r1, {q:#x}
         mov %r2, %r10
         add %r2, -8
         call 88
         mov %r1, %r6
         lddw %r2, {out:#x}
         lddw %r3, 0xeffffffff
         mov %r4, %r10
         add %r4, -8
         mov %r5, 8
         call 25
         exit",
        q = MAP_HANDLE_BASE,
        out = MAP_HANDLE_BASE + 1,
    );
    let out = r
        .run(&prog(&src), ProgType::Xdp, &PACKET, Input::default())
        .unwrap();
    assert_eq!(
        (out.retval, out.trap),
        (0, None),
        "perf_event_output returned 0"
    );
    assert_eq!(out.events.len(), 1);
    let e = &out.events[0];
    assert_eq!((e.map.as_str(), e.cpu), ("out", Some(0)));
    assert_eq!(&e.data[..8], &7u64.to_le_bytes(), "popped from the queue");
    assert_eq!(&e.data[8..], &PACKET[..14], "14 bytes of the packet follow");
    // Popping an empty queue is -ENOENT.
    let pop = format!(
        "lddw %r1, {q:#x}\nmov %r2, %r10\nadd %r2, -8\ncall 88\nexit",
        q = MAP_HANDLE_BASE
    );
    let out = r
        .run(&prog(&pop), ProgType::Xdp, &PACKET, Input::default())
        .unwrap();
    assert_eq!(out.retval as i64, -2);
}

#[test]
fn helpers_can_be_overridden_and_restored() {
    let p = prog("mov %r1, 1\ncall 7\nexit");
    let mut r = Runner::default();
    let mut calls = 0u64;
    r.override_helper(7, move |args, _mem| {
        calls += 1;
        Ok(1000 + calls + args[0])
    });
    assert_eq!(
        r.run(&p, ProgType::Xdp, &PACKET, Input::default())
            .unwrap()
            .retval,
        1001 + 1
    );
    assert_eq!(
        r.run(&p, ProgType::Xdp, &PACKET, Input::default())
            .unwrap()
            .retval,
        1002 + 1
    );
    // An override may refuse: the run traps at the call.
    r.override_helper(7, |_, _| Err(bpfsim_vm::HelperStop::Fault));
    let out = r.run(&p, ProgType::Xdp, &PACKET, Input::default()).unwrap();
    assert_eq!(
        out.trap.map(|t| (t.code, t.pc)),
        Some((TrapCode::HelperFault, 1))
    );
    r.restore_helper(7);
    let plain = r.run(&p, ProgType::Xdp, &PACKET, Input::default()).unwrap();
    assert!(plain.trap.is_none());
}

#[test]
fn process_and_probe_read_come_from_the_environment() {
    let mut env = Env::default();
    env.process.pid = 7;
    env.process.tgid = 5;
    env.process.comm = "a-very-long-command-name".to_string();
    env.probe_memory
        .insert(0xffff_8000_0000_1000, b"kernel\0data".to_vec());
    let mut r = Runner::new(env);
    let pid = prog("call 14\nexit");
    assert_eq!(
        r.run(&pid, ProgType::Xdp, &PACKET, Input::default())
            .unwrap()
            .retval,
        (5 << 32) | 7
    );
    // get_current_comm into 16 bytes of stack, then return its 15th byte (the NUL) and 1st.
    let comm = prog(
        "mov %r1, %r10\nadd %r1, -16\nmov %r2, 16\ncall 16\nldxb %r0, [%r10-1]\nldxb %r1, [%r10-16]\nlsh %r1, 8\nor %r0, %r1\nexit",
    );
    assert_eq!(
        r.run(&comm, ProgType::Xdp, &PACKET, Input::default())
            .unwrap()
            .retval,
        (b'a' as u64) << 8
    );
    // probe_read_kernel_str of "kernel": 7 bytes with the NUL; from a bad address, -EFAULT.
    let read = |addr: u64| {
        prog(&format!(
            "mov %r1, %r10\nadd %r1, -16\nmov %r2, 16\nlddw %r3, {addr:#x}\ncall 115\nexit"
        ))
    };
    assert_eq!(
        r.run(
            &read(0xffff_8000_0000_1000),
            ProgType::Xdp,
            &PACKET,
            Input::default()
        )
        .unwrap()
        .retval,
        7
    );
    assert_eq!(
        r.run(&read(0x1234), ProgType::Xdp, &PACKET, Input::default())
            .unwrap()
            .retval as i64,
        -14
    );
    // probe_read_kernel of 4 bytes inside the block.
    let p = prog("mov %r1, %r10\nadd %r1, -8\nmov %r2, 4\nlddw %r3, 0xffff800000001002\ncall 113\nldxw %r0, [%r10-8]\nexit");
    assert_eq!(
        r.run(&p, ProgType::Xdp, &PACKET, Input::default())
            .unwrap()
            .retval,
        u32::from_le_bytes(*b"rnel") as u64
    );
}

#[test]
fn bpf_loop_runs_the_callback() {
    // ctx = fp-8 holds a sum; the callback adds i and stops after i == 5.
    let p = prog(
        "stdw [%r10-8], 0
         mov %r1, 100
         lddw %r2, func cb
         mov %r3, %r10
         add %r3, -8
         mov %r4, 0
         call 181
         ldxdw %r1, [%r10-8]
         lsh %r0, 16
         or %r0, %r1
         exit
     cb:
         ldxdw %r3, [%r2]
         add %r3, %r1
         stxdw [%r2], %r3
         mov %r0, 0
         jne %r1, 5, +1
         mov %r0, 1
         exit",
    );
    let out = Runner::default()
        .run(&p, ProgType::Xdp, &PACKET, Input::default())
        .unwrap();
    assert_eq!(out.trap, None);
    // 6 calls (i = 0..=5), sum 15.
    assert_eq!(out.retval, (6 << 16) | 15);
    // Flags must be 0.
    let bad = prog("mov %r1, 1\nlddw %r2, func cb\nmov %r3, 0\nmov %r4, 1\ncall 181\nexit\ncb:\nmov %r0, 0\nexit");
    let out = Runner::default()
        .run(&bad, ProgType::Xdp, &PACKET, Input::default())
        .unwrap();
    assert_eq!(out.retval as i64, -22);
}

#[test]
fn fib_lookup_answers_from_the_routing_table() {
    use bpfsim_helpers::FibRoute;
    let mut env = Env::default();
    let route = |prefix: [u8; 4], prefix_len, result, ifindex, d0| FibRoute {
        prefix: prefix.to_vec(),
        prefix_len,
        result,
        ifindex,
        smac: [2, 0, 0, 0, 0, 0xaa],
        dmac: [d0, 0, 0, 0, 0, 0xbb],
    };
    env.fib = vec![
        route([10, 0, 0, 0], 8, 0, 3, 0x10),
        route([10, 1, 0, 0], 16, 0, 4, 0x20),
        route([192, 0, 2, 0], 24, 2, 0, 0),
    ];
    let mut r = Runner::new(env);
    // struct bpf_fib_lookup at fp-64: family AF_INET, ipv4_dst at +32; returns
    // rc | ifindex << 8 | dmac[0] << 16.
    let lookup = |dst: [u8; 4]| {
        prog(&format!(
            "mov %r6, %r1
             mov %r1, 0
             stdw [%r10-64], 0
             stdw [%r10-56], 0
             stdw [%r10-48], 0
             stdw [%r10-40], 0
             stdw [%r10-32], 0
             stdw [%r10-24], 0
             stdw [%r10-16], 0
             stdw [%r10-8], 0
             stb [%r10-64], 2
             stw [%r10-32], {dst}
             mov %r1, %r6
             mov %r2, %r10
             add %r2, -64
             mov %r3, 64
             mov %r4, 0
             call 69
             ldxw %r1, [%r10-56]
             lsh %r1, 8
             or %r0, %r1
             ldxb %r1, [%r10-6]
             lsh %r1, 16
             or %r0, %r1
             exit",
            dst = u32::from_le_bytes(dst) as i32
        ))
    };
    let run = |r: &mut Runner, dst| {
        r.run(&lookup(dst), ProgType::Xdp, &PACKET, Input::default())
            .unwrap()
            .retval
    };
    assert_eq!(
        run(&mut r, [10, 9, 9, 9]),
        (0x10 << 16) | (3 << 8),
        "the /8 route"
    );
    assert_eq!(
        run(&mut r, [10, 1, 2, 3]),
        (0x20 << 16) | (4 << 8),
        "the longer /16 wins"
    );
    assert_eq!(
        run(&mut r, [192, 0, 2, 7]),
        2,
        "BPF_FIB_LKUP_RET_UNREACHABLE"
    );
    assert_eq!(
        run(&mut r, [8, 8, 8, 8]),
        4,
        "no route: BPF_FIB_LKUP_RET_NOT_FWDED"
    );
}

#[test]
fn rodata_is_configurable_until_the_first_run_then_frozen() {
    use bpfsim_helpers::object::LoadedObject;
    let bytes = include_bytes!("../../test-vectors/progs/rodata_config.bpf.o");
    let mut obj = LoadedObject::load(bytes, Env::default()).unwrap();
    assert!(obj.rodata_writable());
    let vars = obj.object.global_vars(".rodata");
    let cfg = vars
        .iter()
        .find(|v| v.name == "cfg")
        .expect("cfg in .rodata");
    let rodata = obj.map_id(".rodata").unwrap();
    let mut value = obj.runner.maps.lookup(rodata, &0u32.to_le_bytes()).unwrap();
    // struct config { __u16 match_port; __u8 match_action; __u8 default_action; ... }:
    // default_action := XDP_DROP.
    value[cfg.offset as usize + 3] = 1;
    obj.runner
        .maps
        .update(rodata, &0u32.to_le_bytes(), &value, 0)
        .unwrap();
    let prog = obj.program("xdp_config", None).unwrap();
    // An ARP frame takes the default action.
    let r = obj.run(&prog, &PACKET, Input::default()).unwrap();
    assert_eq!(r.retval, 1, "the new default_action");
    assert!(!obj.rodata_writable());
    let e = obj
        .runner
        .maps
        .update(rodata, &0u32.to_le_bytes(), &value, 0)
        .unwrap_err();
    assert!(e.to_string().contains("EPERM"), "{e}");
}

/// The frame's allocation is reused from run to run: what one run writes outside its packet (here
/// the headroom, through an unchecked pointer, as the unverified simulator allows) is zero again
/// for the next, as in the kernel's freshly allocated frame; so is the tail after a longer packet.
#[test]
fn each_run_gets_a_fresh_frame() {
    let p = prog(
        "ldxw %r2, [%r1+0]
         ldxb %r0, [%r2-8]
         ldxb %r3, [%r2+70]
         or %r0, %r3
         stb [%r2-8], 0x55
         stb [%r2+70], 0x66
         exit",
    );
    let mut r = Runner::default();
    let long = vec![1u8; 100];
    let short = vec![2u8; 64];
    // The long packet's byte 70 is 1; the short packet ends before it, where the frame is zero.
    assert_eq!(
        r.run(&p, ProgType::Xdp, &long, Input::default())
            .unwrap()
            .retval,
        1
    );
    for _ in 0..3 {
        let out = r.run(&p, ProgType::Xdp, &short, Input::default()).unwrap();
        assert_eq!(out.retval, 0);
        assert_eq!(out.data, short);
    }
}

/// A result written into a reused `RunResult` (`run_repeat_into`, what a pcap replay does) is
/// the one a fresh run returns, whatever the runs before it left there: longer packets, a
/// trace line, a socket buffer, a trap, a refused packet.
#[test]
fn results_written_in_place_match_fresh_ones() {
    let writer = prog(
        "ldxw %r2, [%r1+0]
         ldxb %r0, [%r2-8]
         ldxb %r3, [%r2+70]
         or %r0, %r3
         stb [%r2-8], 0x55
         stb [%r2+70], 0x66
         exit",
    );
    let tracer = prog(
        "mov %r1, 0x0a6968
         stxw [%r10-8], %r1
         mov %r1, %r10
         add %r1, -8
         mov %r2, 4
         call 6
         mov %r0, 2
         exit",
    );
    let trapper = prog(
        "mov %r2, 0
         ldxw %r0, [%r2+0]
         exit",
    );
    let long = vec![1u8; 100];
    let short = vec![2u8; 64];
    let runs: [(&Interpreter, ProgType, &[u8]); 8] = [
        (&writer, ProgType::Xdp, &long),
        (&writer, ProgType::Xdp, &short),
        (&tracer, ProgType::Xdp, &long),
        (&writer, ProgType::SchedCls, &PACKET),
        (&trapper, ProgType::Xdp, &short),
        (&writer, ProgType::Xdp, &[1, 2, 3]),
        (&writer, ProgType::Xdp, &short),
        (&writer, ProgType::SocketFilter, &PACKET),
    ];
    let (mut fresh, mut reused) = (Runner::default(), Runner::default());
    fresh.set_timing(false);
    reused.set_timing(false);
    let mut out = bpfsim_helpers::run::RunResult::default();
    for (i, (p, ty, packet)) in runs.into_iter().enumerate() {
        let want = fresh.run(p, ty, packet, Input::default());
        let got = reused.run_repeat_into(p, ty, packet, Input::default(), 1, &mut out);
        match want {
            Ok(want) => {
                assert_eq!(got, Ok(()), "run {i}");
                assert_eq!(out, want, "run {i}");
            }
            Err(e) => assert_eq!(got, Err(e), "run {i}"),
        }
        // The runs are the kinds the list names (a refused run leaves `out` as it was).
        assert_eq!(fresh.run(p, ty, packet, Input::default()).is_err(), i == 5);
        if i != 5 {
            assert_eq!(out.trace.len(), usize::from(i == 2), "run {i}");
            assert_eq!(out.skb.is_some(), i == 3 || i == 7, "run {i}");
        }
        if i == 4 {
            assert!(out.trap.is_some());
        }
    }
}

/// The verifier's proof reaches the JIT: accesses through the context are known as such, the
/// others (packet, stack, map values) as never touching it; a program the verifier rejects gets
/// no hints.
#[test]
fn the_jit_gets_what_the_verifier_proved() {
    use bpfsim_helpers::object::LoadedObject;
    use bpfsim_vm::isa::{Insn, Reg};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors");
    let bytes = std::fs::read(dir.join("progs/firewall.bpf.o")).unwrap();
    let obj = LoadedObject::load(&bytes, Env::default()).unwrap();
    let p = obj.program("xdp_firewall", None).unwrap();
    let hints = p.jit_hints();
    let prog = Program::new(p.insns.clone()).unwrap();
    let (mut ctx, mut other) = (0, 0);
    for (pc, insn) in prog.iter() {
        match insn {
            // The program reads data and data_end from its context at the start.
            Insn::Load { src: Reg::R1, .. } if pc < 4 => {
                assert!(!hints.no_ctx[pc], "slot {pc} reads the context");
                ctx += 1;
            }
            Insn::Load { .. } | Insn::Store { .. } if hints.no_ctx[pc] => other += 1,
            _ => {}
        }
    }
    assert!(
        ctx >= 1 && other >= 5,
        "context reads {ctx}, other accesses {other}"
    );

    let bytes = std::fs::read(dir.join("verifier/objects/reject_null_deref.bpf.o")).unwrap();
    let obj = LoadedObject::load(&bytes, Env::default()).unwrap();
    let p = obj.program("xdp_count_unchecked", None).unwrap();
    assert!(p.jit_hints().no_ctx.is_empty());
    assert!(p.jit_hints().packet.is_empty());
}

/// Packet accesses the verifier proved in bounds reach the JIT as such, and nothing else does:
/// parse_csum's loads through packet pointers (headers and the checksum loop) are hinted, its
/// two context reads are not.
#[test]
fn the_jit_knows_the_proven_packet_accesses() {
    use bpfsim_helpers::object::LoadedObject;
    use bpfsim_vm::isa::{Insn, Reg};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors");
    let bytes = std::fs::read(dir.join("bench/parse_csum.bpf.o")).unwrap();
    let obj = LoadedObject::load(&bytes, Env::default()).unwrap();
    let p = obj.program("xdp_parse_csum", None).unwrap();
    let hints = p.jit_hints();
    let prog = Program::new(p.insns.clone()).unwrap();
    let (mut packet, mut ctx) = (0, 0);
    for (pc, insn) in prog.iter() {
        match insn {
            Insn::Load { src: Reg::R1, .. } if pc < 3 => {
                assert!(!hints.packet[pc] && !hints.no_ctx[pc], "slot {pc}");
                ctx += 1;
            }
            Insn::Load { .. } => {
                assert!(hints.packet[pc], "slot {pc} is a packet load");
                assert!(hints.no_ctx[pc], "slot {pc}");
                packet += 1;
            }
            _ => assert!(!hints.packet.get(pc).copied().unwrap_or(false), "slot {pc}"),
        }
    }
    assert_eq!((ctx, packet), (2, 7));
}

/// `repeat` as the kernel's test-run loop: each run gets the packet as the previous one left it,
/// its own budget and count of tail calls, and the result carries the trace lines of every run.
#[test]
fn repeat_runs_on_what_the_last_run_left() {
    // data[14] += 1; printk("x"); r0 = data[14].
    let p = prog(
        "mov %r6, %r1
         ldxw %r2, [%r6+0]
         ldxw %r3, [%r6+4]
         mov %r4, %r2
         add %r4, 15
         mov %r0, 0
         jgt %r4, %r3, +10
         ldxb %r7, [%r2+14]
         add %r7, 1
         stxb [%r2+14], %r7
         mov %r1, 0x78
         stxdw [%r10-8], %r1
         mov %r1, %r10
         add %r1, -8
         mov %r2, 2
         call 6
         mov %r0, %r7
         exit",
    );
    let mut r = Runner::default();
    let mut pkt = PACKET.to_vec();
    pkt[14] = 10;
    let out = r
        .run_repeat(&p, ProgType::Xdp, &pkt, Input::default(), 4)
        .unwrap();
    assert_eq!(out.retval, 14);
    assert_eq!(out.data[14], 14);
    assert_eq!(out.trace, vec!["x".to_string(); 4]);
    assert_eq!(out.insns, 18, "the last run's count");
    // The next batch starts from the packet given again.
    let out = r
        .run_repeat(&p, ProgType::Xdp, &pkt, Input::default(), 2)
        .unwrap();
    assert_eq!((out.retval, out.data[14]), (12, 12));
    let out = r.run(&p, ProgType::Xdp, &pkt, Input::default()).unwrap();
    assert_eq!((out.retval, out.data[14]), (11, 11));
}

#[test]
fn repeat_counts_tail_calls_per_run() {
    use bpfsim_helpers::run::{arena_addr, MAP_HANDLE_BASE};
    let mut r = Runner::default();
    let jmp = r
        .maps
        .create(&def("jmp", MapType::ProgArray, 4, 4, 1))
        .unwrap();
    r.maps
        .create(&def("count", MapType::Array, 4, 8, 1))
        .unwrap();
    let src = format!(
        "mov %r6, %r1
         lddw %r2, {count:#x}
         ldxdw %r3, [%r2]
         add %r3, 1
         stxdw [%r2], %r3
         mov %r1, %r6
         lddw %r2, {jmp:#x}
         mov %r3, 0
         call 12
         mov %r0, 2
         exit",
        count = arena_addr(&r.maps, 1, 0),
        jmp = MAP_HANDLE_BASE,
    );
    let p = prog(&src);
    let id = r.add_program(p.clone());
    r.maps
        .update(jmp, &0u32.to_le_bytes(), &id.to_le_bytes(), 0)
        .unwrap();
    let out = r
        .run_repeat(&p, ProgType::Xdp, &PACKET, Input::default(), 3)
        .unwrap();
    assert_eq!(out.tail_calls, vec![id; 33], "the last run's chain");
    let count = r
        .maps
        .lookup(r.maps.by_name("count").unwrap(), &0u32.to_le_bytes())
        .unwrap();
    assert_eq!(
        u64::from_le_bytes(count.try_into().unwrap()),
        3 * 34,
        "each run chains 33 tail calls of its own"
    );
}

/// Without timing, `duration_ns` is 0 and everything else is what a timed run gives.
#[test]
fn timing_off_changes_only_the_duration() {
    let p = prog(
        "ldxw %r2, [%r1+0]
         ldxw %r3, [%r1+4]
         mov %r4, %r2
         add %r4, 15
         mov %r0, 1
         jgt %r4, %r3, +4
         ldxb %r0, [%r2+14]
         add %r0, 1
         stxb [%r2+14], %r0
         mov %r0, 2
         exit",
    );
    let (mut timed, mut untimed) = (Runner::default(), Runner::default());
    untimed.set_timing(false);
    for repeat in [1, 3] {
        let mut a = timed
            .run_repeat(&p, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap();
        let b = untimed
            .run_repeat(&p, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap();
        assert_eq!(b.duration_ns, 0);
        assert!(a.duration_ns > 0, "a timed run reads the clock");
        a.duration_ns = 0;
        assert_eq!(a, b);
        assert_eq!(b.data[14], PACKET[14] + repeat as u8);
    }
}

/// A batch under the JIT (whose runs keep one run context, `Executable::prepare`) gives what it
/// gives under the interpreter: the packet as the runs left it, every run's trace line, the last
/// run's count, and with a tail call each run's own chain.
#[test]
fn repeat_under_the_jit_runs_as_the_interpreter() {
    let src = "mov %r6, %r1
         ldxw %r2, [%r6+0]
         ldxw %r3, [%r6+4]
         mov %r4, %r2
         add %r4, 15
         mov %r0, 0
         jgt %r4, %r3, +10
         ldxb %r7, [%r2+14]
         add %r7, 1
         stxb [%r2+14], %r7
         mov %r1, 0x78
         stxdw [%r10-8], %r1
         mov %r1, %r10
         add %r1, -8
         mov %r2, 2
         call 6
         mov %r0, %r7
         exit";
    let program = Program::new(assemble(src).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    let (mut a, mut b) = (Runner::default(), Runner::default());
    a.set_timing(false);
    b.set_timing(false);
    for repeat in [1, 2, 7] {
        let i = a
            .run_repeat(&interp, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap();
        let j = b
            .run_repeat(&jit, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap();
        assert_eq!(i, j, "repeat {repeat}");
        assert_eq!(j.trace.len(), repeat as usize);
        assert_eq!(j.data[14], PACKET[14] + repeat as u8);
    }
}

/// Runs of `src` (with `lddw` of `MAPS+i` naming map `i`) under the interpreter and the JIT, each
/// on its own runner with a hash map, an array and a per-CPU array, on CPU 1 of 2, `repeat`
/// times: the results and every map value must agree. `setup` may override helpers.
fn lookups_agree(src: &str, repeat: u32, setup: impl Fn(&mut Runner)) {
    use bpfsim_helpers::run::{RunResult, MAP_HANDLE_BASE};
    let src = (0..4).fold(src.to_string(), |s, i| {
        s.replace(&format!("MAPS+{i}"), &format!("{:#x}", MAP_HANDLE_BASE + i))
    });
    let program = Program::new(assemble(&src).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    let mut seen: Vec<(RunResult, Vec<Vec<Vec<u8>>>)> = Vec::new();
    for e in engines {
        let mut r = Runner::new(Env {
            cpu: 1,
            ncpus: 2,
            ..Env::default()
        });
        r.set_timing(false);
        let ids = [
            r.maps.create(&def("h", MapType::Hash, 4, 8, 8)).unwrap(),
            r.maps.create(&def("a", MapType::Array, 4, 12, 4)).unwrap(),
            r.maps
                .create(&def("pa", MapType::PercpuArray, 4, 8, 3))
                .unwrap(),
        ];
        r.maps
            .update(ids[0], &5u32.to_le_bytes(), &[9; 8], 0)
            .unwrap();
        setup(&mut r);
        let out = r
            .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap();
        let mut values = Vec::new();
        for k in 0..4u32 {
            values.push(vec![r.maps.lookup(ids[1], &k.to_le_bytes()).unwrap()]);
            if k < 3 {
                values.push(r.maps.lookup_percpu(ids[2], &k.to_le_bytes()).unwrap());
            }
        }
        seen.push((out, values));
    }
    assert_eq!(seen[0], seen[1], "interpreter, then JIT:\n{src}");
}

/// Lookups of every index of an array and a per-CPU array (in range, past the end, the largest
/// key) and of a hash map, with the values found written: the JIT answers the arrays' lookups
/// itself, which must agree with the helper in the pointer, the NULL and the CPU's value.
const LOOKUPS: &str = "mov %r6, 0
mov %r7, 0
loop:
stxw [%r10-4], %r6
lddw %r1, MAPS+1
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, +6
ldxdw %r3, [%r0+0]
add %r3, %r6
add %r3, 1
stxdw [%r0+0], %r3
add %r7, %r3
add %r7, %r0
lddw %r1, MAPS+2
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, +4
ldxdw %r3, [%r0+0]
add %r3, 10
stxdw [%r0+0], %r3
add %r7, %r0
add %r6, 1
jlt %r6, 6, loop
stw [%r10-4], -1
lddw %r1, MAPS+1
mov %r2, %r10
add %r2, -4
call 1
add %r7, %r0
stw [%r10-4], 5
lddw %r1, MAPS+0
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, +2
ldxdw %r3, [%r0+0]
add %r7, %r3
mov %r0, %r7
exit";

#[test]
fn array_lookups_under_the_jit_run_as_the_interpreter() {
    for repeat in [1, 3] {
        lookups_agree(LOOKUPS, repeat, |_| {});
    }
    // An override of the lookup answers for every map, arrays included.
    lookups_agree(LOOKUPS, 2, |r| {
        r.override_helper(1, |a, _| Ok(a[0] & 0xff));
    });
}

/// The key's pointer is read as the helper reads it: from the packet it works, and NULL, the
/// context (which maps no bytes), past the stack or a map handle fault at the call.
#[test]
fn array_lookup_keys_fault_as_the_helper_does() {
    let cases = [
        "ldxw %r2, [%r1+0]\nlddw %r1, MAPS+1\ncall 1\nexit",
        "mov %r2, 0\nlddw %r1, MAPS+1\ncall 1\nexit",
        "mov %r2, %r1\nlddw %r1, MAPS+1\ncall 1\nexit",
        "mov %r2, %r10\nadd %r2, -2\nlddw %r1, MAPS+2\ncall 1\nexit",
        "lddw %r2, MAPS+1\nlddw %r1, MAPS+1\ncall 1\nexit",
        "mov %r2, %r10\nadd %r2, -4\nlddw %r1, MAPS+3\ncall 1\nexit",
    ];
    for src in cases {
        lookups_agree(src, 1, |_| {});
    }
}

/// A batch's runs each start with the host's per-run state reset (`Host::begin_run`), under the
/// JIT's batch (one set-up for the runs, `PreparedRuns::execute_repeat`) as under the
/// interpreter: a run that redirects leaves no redirect to the next run, which passes, and a run
/// that tail-calls ends a batch of the JIT's runs, the runner going on with the rest.
#[test]
fn repeat_resets_each_runs_host_state_under_both_engines() {
    use bpfsim_helpers::run::MAP_HANDLE_BASE;
    // Packet byte 14 counts the runs (each run sees the packet as the last left it): odd runs
    // redirect to ifindex 5, even runs pass; every third run (the byte a multiple of 3) first
    // tail-calls program 0 of `jmp`, which passes.
    let src = format!(
        "mov %r6, %r1
         ldxw %r2, [%r6+0]
         ldxw %r3, [%r6+4]
         mov %r4, %r2
         add %r4, 15
         mov %r0, 0
         jgt %r4, %r3, +17
         ldxb %r7, [%r2+14]
         add %r7, 1
         stxb [%r2+14], %r7
         mov %r8, %r7
         mod %r8, 3
         jne %r8, 0, +5
         mov %r1, %r6
         lddw %r2, {jmp:#x}
         mov %r3, 0
         call 12
         and %r7, 1
         mov %r0, 2
         jeq %r7, 0, +3
         mov %r1, 5
         mov %r2, 0
         call 23
         exit",
        jmp = MAP_HANDLE_BASE,
    );
    let program = Program::new(assemble(&src).unwrap()).unwrap();
    let passer = Program::new(assemble("mov %r0, 2\nexit").unwrap()).unwrap();
    let mut runners = Vec::new();
    for _ in 0..2 {
        let mut r = Runner::default();
        r.set_timing(false);
        let jmp = r
            .maps
            .create(&def("jmp", MapType::ProgArray, 4, 4, 1))
            .unwrap();
        let id = r.add_program(Interpreter::new(&passer));
        r.maps
            .update(jmp, &0u32.to_le_bytes(), &id.to_le_bytes(), 0)
            .unwrap();
        runners.push(r);
    }
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    for repeat in 1..=7u32 {
        let i = runners[0]
            .run_repeat(&interp, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap();
        let j = runners[1]
            .run_repeat(&jit, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap();
        assert_eq!(i, j, "repeat {repeat}");
        let last = PACKET[14] as u32 + repeat;
        assert_eq!(j.data[14] as u32, last, "repeat {repeat}");
        if last % 3 == 0 {
            assert_eq!(
                (j.tail_calls.len(), j.redirect),
                (1, None),
                "repeat {repeat}"
            );
        } else if last % 2 == 1 {
            let to5 = Some(Redirect::Ifindex {
                ifindex: 5,
                flags: 0,
            });
            assert_eq!(
                (j.tail_calls.len(), j.redirect),
                (0, to5),
                "repeat {repeat}"
            );
        } else {
            assert_eq!(
                (j.tail_calls.len(), j.redirect),
                (0, None),
                "repeat {repeat}"
            );
        }
    }
}

/// The verifier's context hint reaches the JIT: `map_heavy` reads `data_end` and `data` through
/// its context pointer (slots 0 and 1, 4-byte loads the JIT serves from kept values) and nothing
/// else; its other accesses (packet, stack, map values) are not context accesses.
#[test]
fn the_jit_knows_the_context_field_loads() {
    use bpfsim_helpers::object::LoadedObject;
    use bpfsim_vm::isa::Insn;
    let bytes = include_bytes!("../../test-vectors/bench/map_heavy.bpf.o");
    let obj = LoadedObject::load(bytes, Env::default()).unwrap();
    let p = obj.program("xdp_map_heavy", None).unwrap();
    let hints = p.jit_hints();
    let prog = Program::new(p.insns.clone()).unwrap();
    let ctx: Vec<usize> = prog
        .iter()
        .filter(|&(pc, _)| hints.ctx.get(pc).copied().unwrap_or(false))
        .map(|(pc, _)| pc)
        .collect();
    assert_eq!(ctx, [0, 1]);
    for pc in ctx {
        assert!(matches!(
            prog.iter().nth(pc).map(|(_, i)| i),
            Some(Insn::Load { .. })
        ));
        assert!(!hints.no_ctx[pc] && !hints.packet[pc], "slot {pc}");
    }
    // Under the JIT (with these hints) a run gives what the interpreter gives.
    let jit = p.jit().unwrap();
    let interp = bpfsim_vm::Interpreter::new(&prog);
    // Ethernet, IPv4 (10.0.0.1 -> 10.0.0.2, UDP), UDP 40000 -> 4789, padded to 64 bytes: the
    // program parses it, misses in the flow table and counts the packet in class 0.
    let mut packet = vec![0u8; 64];
    packet[12..14].copy_from_slice(&[0x08, 0x00]);
    packet[14..34].copy_from_slice(&[
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    packet[34..42].copy_from_slice(&[0x9c, 0x40, 0x12, 0xb5, 0, 8, 0, 0]);
    let (mut a, mut b) = (
        LoadedObject::load(bytes, Env::default()).unwrap(),
        LoadedObject::load(bytes, Env::default()).unwrap(),
    );
    a.runner.set_timing(false);
    b.runner.set_timing(false);
    let i = a
        .runner
        .run_repeat(&interp, ProgType::Xdp, &packet, Input::default(), 3)
        .unwrap();
    let j = b
        .runner
        .run_repeat(jit, ProgType::Xdp, &packet, Input::default(), 3)
        .unwrap();
    assert_eq!(i, j);
    assert_eq!(j.retval, 2, "XDP_PASS");
    let stats = |o: &LoadedObject| {
        let id = o.map_id("class_stats").unwrap();
        o.runner
            .maps
            .lookup_percpu(id, &0u32.to_le_bytes())
            .unwrap()
    };
    assert_eq!(stats(&a), stats(&b));
    assert_eq!(
        stats(&b)[0][..8],
        3u64.to_le_bytes(),
        "three packets counted"
    );
}

/// A map's keys in order, each with its values (every CPU's).
type Contents = Vec<(Vec<u8>, Vec<Vec<u8>>)>;

/// Runs of `src` (with `lddw` of `MAPS+i` naming map `i`) under the interpreter and the JIT on
/// CPU 1 of 2, `repeat` times, each on its own runner with a hash map of 16-byte keys, an LRU
/// hash of 8-byte keys (full: 4 of 4), a per-CPU hash and an LPM trie: the results and every
/// map's keys and values (every CPU's) must agree. The JIT asks these maps with the key's bytes
/// (`Host::key_lookups`) where the key's place in the stack is known.
fn hash_lookups_agree(src: &str, repeat: u32) -> (bpfsim_helpers::run::RunResult, Vec<Contents>) {
    use bpfsim_helpers::run::{RunResult, MAP_HANDLE_BASE};
    let src = (0..4).fold(src.to_string(), |s, i| {
        s.replace(&format!("MAPS+{i}"), &format!("{:#x}", MAP_HANDLE_BASE + i))
    });
    let program = Program::new(assemble(&src).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    let mut seen: Vec<(RunResult, Vec<Contents>)> = Vec::new();
    for e in engines {
        let mut r = Runner::new(Env {
            cpu: 1,
            ncpus: 2,
            ..Env::default()
        });
        r.set_timing(false);
        let mut lpm = def("lpm", MapType::LpmTrie, 8, 8, 4);
        lpm.flags = 1; // BPF_F_NO_PREALLOC, which an LPM trie requires
        let ids = [
            r.maps.create(&def("h", MapType::Hash, 16, 8, 8)).unwrap(),
            r.maps.create(&def("l", MapType::LruHash, 8, 8, 4)).unwrap(),
            r.maps
                .create(&def("p", MapType::PercpuHash, 4, 8, 4))
                .unwrap(),
            r.maps.create(&lpm).unwrap(),
        ];
        for k in 1..4u8 {
            let mut key = [0u8; 16];
            key[0] = k;
            key[15] = k;
            r.maps.update(ids[0], &key, &[k; 8], 0).unwrap();
        }
        for k in 0..4u64 {
            r.maps
                .update(ids[1], &k.to_le_bytes(), &[k as u8 + 10; 8], 0)
                .unwrap();
        }
        r.maps
            .update(ids[2], &5u32.to_le_bytes(), &[7; 16], 0)
            .unwrap();
        // 10.0.0.0/8
        r.maps
            .update(ids[3], &[8, 0, 0, 0, 10, 0, 0, 0], &[3; 8], 0)
            .unwrap();
        let out = r
            .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap();
        let contents = ids
            .iter()
            .map(|&id| {
                r.maps
                    .keys(id)
                    .unwrap()
                    .into_iter()
                    .map(|k| {
                        let v = r
                            .maps
                            .lookup_percpu(id, &k)
                            .or_else(|_| r.maps.lookup(id, &k).map(|v| vec![v]));
                        (k.clone(), v.unwrap())
                    })
                    .collect()
            })
            .collect();
        seen.push((out, contents));
    }
    assert_eq!(seen[0], seen[1], "interpreter, then JIT:\n{src}");
    seen.pop().unwrap()
}

/// Lookups in each map with the key at constant places in the stack: found and not found (a
/// 16-byte key differing in its first or last byte), values written through the pointers
/// found, the LRU's lookups marking keys 0 and 1 referenced before two updates evict two keys,
/// the per-CPU hash's CPU 1 value, the trie's longest prefix.
const HASH_LOOKUPS: &str = "mov %r6, 0
mov %r7, 0
loop:
stdw [%r10-16], 0
stdw [%r10-8], 0
stxb [%r10-16], %r6
stxb [%r10-1], %r6
lddw %r1, MAPS+0
mov %r2, %r10
add %r2, -16
call 1
jeq %r0, 0, +5
ldxdw %r3, [%r0+0]
add %r3, %r6
stxdw [%r0+0], %r3
add %r7, %r3
add %r7, %r0
add %r6, 1
jlt %r6, 5, loop
stb [%r10-16], 2
lddw %r1, MAPS+0
mov %r2, %r10
add %r2, -16
call 1
jne %r0, 0, +1
add %r7, 1000
mov %r6, 0
lru:
stxdw [%r10-24], %r6
lddw %r1, MAPS+1
mov %r2, %r10
add %r2, -24
call 1
jeq %r0, 0, +2
ldxdw %r3, [%r0+0]
add %r7, %r3
add %r6, 1
jlt %r6, 2, lru
stdw [%r10-24], 8
stdw [%r10-32], 1
lddw %r1, MAPS+1
mov %r2, %r10
add %r2, -24
mov %r3, %r10
add %r3, -32
mov %r4, 0
call 2
stdw [%r10-24], 9
lddw %r1, MAPS+1
mov %r2, %r10
add %r2, -24
mov %r3, %r10
add %r3, -32
mov %r4, 0
call 2
stw [%r10-4], 5
lddw %r1, MAPS+2
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, +4
ldxdw %r3, [%r0+0]
add %r3, 1
stxdw [%r0+0], %r3
add %r7, %r3
stw [%r10-40], 32
stw [%r10-36], 0x0403020a
lddw %r1, MAPS+3
mov %r2, %r10
add %r2, -40
call 1
jeq %r0, 0, +2
ldxdw %r3, [%r0+0]
add %r7, %r3
stw [%r10-36], 0x0403020b
lddw %r1, MAPS+3
mov %r2, %r10
add %r2, -40
call 1
jne %r0, 0, +1
add %r7, 5000
mov %r0, %r7
exit";

#[test]
fn hash_lookups_under_the_jit_run_as_the_interpreter() {
    for repeat in [1, 3] {
        let (out, maps) = hash_lookups_agree(HASH_LOOKUPS, repeat);
        assert_eq!(out.trap, None);
        // Each run adds its index to the values of keys 1 to 3 (the first byte's 8 bits).
        let firsts: Vec<u8> = maps[0].iter().map(|(_, v)| v[0][0]).collect();
        let r = repeat as u8;
        assert_eq!(firsts, [1 + r, 2 + 2 * r, 3 + 3 * r]);
        // The keys looked up (0, 1) outlive the updates, which evict 2 and then 8.
        let lru: Vec<u8> = maps[1].iter().map(|(k, _)| k[0]).collect();
        assert_eq!(lru, [0, 1, 3, 9]);
        // CPU 1's counter, once per run.
        assert_eq!(maps[2][0].1[1][0], 7 + r);
    }
}

/// Keys the JIT cannot ask with their bytes, through the helper alike: one that would cross
/// the frame's top (a fault), one in the packet, one through a pointer not known to be r10's
/// plus a constant (loaded from the stack).
#[test]
fn hash_lookup_keys_off_the_fast_path_agree() {
    let cases = [
        "stdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -8\nlddw %r1, MAPS+0\ncall 1\nexit",
        "stdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, MAPS+2\ncall 1\nexit",
        "ldxw %r2, [%r1+0]\nlddw %r1, MAPS+2\ncall 1\nexit",
        "ldxw %r2, [%r1+0]\nlddw %r1, MAPS+1\ncall 1\nexit",
        "stw [%r10-4], 5\nmov %r2, %r10\nadd %r2, -4\nstxdw [%r10-16], %r2\n\
         ldxdw %r2, [%r10-16]\nlddw %r1, MAPS+2\ncall 1\njeq %r0, 0, +1\nldxdw %r0, [%r0+0]\nexit",
    ];
    for src in cases {
        hash_lookups_agree(src, 1);
    }
}

/// Lookups from a `bpf_loop` callback, which the JIT compiles as a function of its own, with
/// the key in the callback's frame: asked with the key's bytes there too, as the interpreter
/// answers.
#[test]
fn hash_lookups_in_callbacks_agree() {
    let src = "mov %r1, 4
lddw %r2, func +5
mov %r3, 0
mov %r4, 0
call 181
exit
stdw [%r10-16], 0
stdw [%r10-8], 0
stxb [%r10-16], %r1
stxb [%r10-1], %r1
lddw %r1, MAPS+0
mov %r2, %r10
add %r2, -16
call 1
jeq %r0, 0, +3
ldxdw %r3, [%r0+0]
add %r3, 1
stxdw [%r0+0], %r3
mov %r0, 0
exit";
    for repeat in [1, 2] {
        let (out, maps) = hash_lookups_agree(src, repeat);
        assert_eq!((out.trap, out.retval), (None, 4));
        let firsts: Vec<u8> = maps[0].iter().map(|(_, v)| v[0][0]).collect();
        let r = repeat as u8;
        assert_eq!(firsts, [1 + r, 2 + r, 3 + r]);
    }
}

/// The JIT makes a `bpf_loop`'s calls itself under the simulator's helper
/// (`Host::inline_loop`), but an override of helper 181 still answers every loop: a loop of
/// 3 calls counting in the frame, run plain and with 181 overridden (7, no calls), under
/// both engines, once and in a batch.
#[test]
fn an_override_of_bpf_loop_wins_under_the_jit() {
    let src = "mov %r1, 0\nstxdw [%r10-8], %r1\nmov %r1, 3\nlddw %r2, func cb\n\
               mov %r3, %r10\nadd %r3, -8\nmov %r4, 0\ncall 181\nldxdw %r1, [%r10-8]\n\
               lsh %r0, 8\nadd %r0, %r1\nexit\n\
               cb:\nldxdw %r3, [%r2+0]\nadd %r3, 1\nstxdw [%r2+0], %r3\nmov %r0, 0\nexit";
    let program = Program::new(assemble(src).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    for e in engines {
        let mut r = Runner::default();
        for (repeat, want) in [(1, 3 << 8 | 3), (4, 3 << 8 | 3)] {
            let out = r
                .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), repeat)
                .unwrap();
            assert_eq!(out.retval, want);
        }
        r.override_helper(181, |_, _| Ok(7));
        for repeat in [1, 4] {
            let out = r
                .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), repeat)
                .unwrap();
            assert_eq!(out.retval, 7 << 8);
        }
        r.restore_helper(181);
        let out = r.run(e, ProgType::Xdp, &PACKET, Input::default()).unwrap();
        assert_eq!(out.retval, 3 << 8 | 3);
    }
}

/// `bpf_ringbuf_output` of bytes in the ring itself (a reserved record's) and of stack bytes,
/// with reserve and submit, over enough runs to fill the ring: the interpreter and the JIT give
/// the same records and return values, the records hold what was written, and a source that
/// does not map faults at the call.
#[test]
fn ringbuf_output_from_the_ring_and_the_stack_under_both_engines() {
    use bpfsim_helpers::run::MAP_HANDLE_BASE;
    let src = format!(
        "mov %r6, %r1
         lddw %r1, {rb:#x}
         mov %r2, 16
         mov %r3, 0
         call 131
         jeq %r0, 0, full
         mov %r7, %r0
         stdw [%r7+0], 0x11
         stdw [%r7+8], 0x22
         lddw %r1, {rb:#x}
         mov %r2, %r7
         mov %r3, 16
         mov %r4, 0
         call 130
         mov %r8, %r0
         mov %r1, %r7
         mov %r2, 0
         call 132
         stdw [%r10-8], 0x33
         lddw %r1, {rb:#x}
         mov %r2, %r10
         add %r2, -8
         mov %r3, 8
         mov %r4, 0
         call 130
         add %r0, %r8
         exit
         full:
         mov %r0, 99
         exit",
        rb = MAP_HANDLE_BASE
    );
    let program = Program::new(assemble(&src).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    let mut seen = Vec::new();
    for e in engines {
        let mut r = Runner::default();
        r.set_timing(false);
        r.maps
            .create(&def("rb", MapType::Ringbuf, 0, 0, 4096))
            .unwrap();
        let first = r.run(e, ProgType::Xdp, &PACKET, Input::default()).unwrap();
        assert_eq!((first.retval, first.trap), (0, None));
        let data: Vec<&[u8]> = first.events.iter().map(|e| &e.data[..]).collect();
        let rec = [0x11u64.to_le_bytes(), 0x22u64.to_le_bytes()].concat();
        assert_eq!(data, [&rec[..], &rec[..], &0x33u64.to_le_bytes()[..]]);
        // 64 bytes a run in a 4 KiB ring: it fills within the batch, reservations then fail.
        let batch = r
            .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), 100)
            .unwrap();
        assert_eq!(batch.retval, 99);
        assert!(batch.events.len() > 150, "{}", batch.events.len());
        seen.push((first, batch));
    }
    assert_eq!(seen[0], seen[1], "interpreter, then JIT");
    // The source of an output is read as any helper argument: NULL faults at the call.
    let bad = format!(
        "lddw %r1, {:#x}\nmov %r2, 0\nmov %r3, 8\nmov %r4, 0\ncall 130\nexit",
        MAP_HANDLE_BASE
    );
    let program = Program::new(assemble(&bad).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    let mut traps = Vec::new();
    for e in engines {
        let mut r = Runner::default();
        r.maps
            .create(&def("rb", MapType::Ringbuf, 0, 0, 4096))
            .unwrap();
        let out = r.run(e, ProgType::Xdp, &PACKET, Input::default()).unwrap();
        assert!(out.trap.is_some() && out.events.is_empty());
        traps.push(out.trap);
    }
    assert_eq!(traps[0], traps[1]);
}

/// Ethernet, IPv4 (10.0.0.1 -> 10.0.0.2, TCP), TCP 1234 -> 80, then 10 payload bytes: 64 bytes.
fn tcp_packet() -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p[14..34].copy_from_slice(&[
        0x45, 0, 0, 50, 0, 0, 0, 0, 64, 6, 0x26, 0xc4, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    p[34..38].copy_from_slice(&[0x04, 0xd2, 0, 80]);
    for (i, b) in p[54..].iter_mut().enumerate() {
        *b = 0xa0 + i as u8;
    }
    p
}

/// `src` (a TC program, `r6` the context on every load through it) under the interpreter and
/// under the JIT told that those loads read the context (so that it keeps the fields between
/// the context's changes), `repeat` times: the results must agree. Returns the JIT's.
fn skb_runs_agree(src: &str, repeat: u32) -> bpfsim_helpers::run::RunResult {
    use bpfsim_vm::isa::{Insn, Reg};
    let program = Program::new(assemble(src).unwrap()).unwrap();
    let mut hints = bpfsim_jit::Hints::default();
    let slots = program.iter().map(|(pc, _)| pc + 2).max().unwrap_or(0);
    hints.ctx = vec![false; slots];
    for (pc, insn) in program.iter() {
        if matches!(insn, Insn::Load { src, .. } if *src == Reg::R6) {
            hints.ctx[pc] = true;
        }
    }
    assert!(
        hints.ctx.iter().any(|&c| c),
        "the program reads the context"
    );
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile_with(&program, &hints).unwrap();
    let [i, j] = both_engines(&interp, &jit, ProgType::SchedCls, &tcp_packet(), repeat);
    assert_eq!(i, j, "interpreter, then JIT:\n{src}");
    j
}

/// `repeat` runs of `packet` under the interpreter, then the JIT, each on a fresh runner.
fn both_engines(
    interp: &Interpreter,
    jit: &bpfsim_jit::JitProgram,
    prog_type: ProgType,
    packet: &[u8],
    repeat: u32,
) -> [bpfsim_helpers::run::RunResult; 2] {
    [interp as &dyn bpfsim_vm::Executable, jit].map(|e| {
        let mut r = Runner::default();
        r.set_timing(false);
        r.run_repeat(e, prog_type, packet, Input::default(), repeat)
            .unwrap()
    })
}

/// The skb helpers copy guest to guest and read the context without changing it: what a run
/// reads of the context between and after them, what they copy (overlapping ranges included),
/// their -EFAULT with the destination zeroed, and the context store after them, agree between
/// the interpreter and the JIT (which keeps the context's fields across helper calls now), and
/// are what the helpers are defined to do.
#[test]
fn skb_helpers_under_the_jit_run_as_the_interpreter() {
    let src = "mov %r6, %r1
        ldxw %r7, [%r6+0]
        mov %r1, %r6
        mov %r2, 14
        mov %r3, %r10
        add %r3, -24
        mov %r4, 20
        call 26
        mov %r8, %r0
        ldxw %r2, [%r6+0]
        add %r7, %r2
        stdw [%r10-32], -1
        mov %r1, %r6
        mov %r2, 60
        mov %r3, %r10
        add %r3, -32
        mov %r4, 8
        call 26
        stxdw [%r10-40], %r0
        ldxdw %r2, [%r10-32]
        lsh %r2, 1
        or %r8, %r2
        ldxw %r3, [%r6+76]
        ldxw %r4, [%r6+80]
        mov %r5, %r3
        add %r5, 64
        jgt %r5, %r4, skip
        add %r3, 16
        mov %r1, %r6
        mov %r2, 20
        mov %r4, 8
        mov %r5, 0
        call 9
        lsh %r0, 2
        or %r8, %r0
        skip:
        mov %r1, %r10
        add %r1, -24
        mov %r2, 4
        mov %r3, %r10
        add %r3, -20
        mov %r4, 4
        mov %r5, 0
        call 28
        stxdw [%r10-48], %r0
        mov %r1, %r6
        mov %r2, 24
        mov %r3, 0
        mov %r4, 0x1234
        mov %r5, 4
        call 10
        lsh %r0, 3
        or %r8, %r0
        stw [%r6+8], 7
        ldxw %r2, [%r6+8]
        lsh %r2, 8
        add %r7, %r2
        ldabsb 14
        lsh %r0, 16
        add %r7, %r0
        ldxdw %r2, [%r10-40]
        ldxdw %r3, [%r10-48]
        add %r3, %r2
        add %r7, %r3
        ldxw %r2, [%r6+0]
        add %r7, %r2
        lsh %r8, 32
        or %r7, %r8
        mov %r0, %r7
        exit";
    let packet = tcp_packet();
    let efault = -14i64 as u64;
    for repeat in [1, 3] {
        let out = skb_runs_agree(src, repeat);
        // The last run read the packet as the runs before it left it: their stores copied
        // bytes 16..24 to 20..28 (overlapping, as through a buffer between).
        let mut before = packet.clone();
        for _ in 1..repeat {
            before.copy_within(16..24, 20);
        }
        // csum_diff of the IP header's first word (as skb_load_bytes read it) against its
        // second, seed 0.
        let diff = bpfsim_helpers::helpers::csum::csum_diff(&before[14..18], &before[18..22], 0);
        assert_ne!(before[14..18], before[18..22]);
        assert_eq!(out.trap, None);
        // Every helper returned 0 (-EFAULT only where it must), the zeroed destination read 0.
        assert_eq!(out.retval >> 32, 0, "helpers' returns, repeat {repeat}");
        let len = 64u64;
        let want = (len * 3 + (7 << 8) + (0x45 << 16) + efault.wrapping_add(diff as u64)) as u32;
        assert_eq!(out.retval as u32, want, "repeat {repeat}");
        assert_eq!(out.skb.as_ref().unwrap().md.mark, 7);
        // skb_store_bytes(skb, 20, data + 16, 8), each run.
        let mut expect = before;
        expect.copy_within(16..24, 20);
        // l3_csum_replace(skb, 24, 0, 0x1234, 4) on the IP checksum the store just wrote.
        let sum = u16::from_le_bytes([expect[24], expect[25]]);
        let sum = bpfsim_helpers::helpers::csum::csum_replace(sum, 0, 0x1234);
        expect[24..26].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(out.data, expect, "repeat {repeat}");
    }
}

/// A helper's bad pointer faults at its call under both engines, whichever argument it is: the
/// source is checked before the destination, so with both bad the source's address is the one
/// reported.
#[test]
fn skb_helper_faults_agree() {
    let bad = 0x7fff_0000_0000u64;
    // skb_load_bytes into a bad destination, also past the end of the packet (-EFAULT zeroes
    // the destination); skb_store_bytes from a bad source; csum_diff of a bad first range.
    for (case, call, code) in [
        (
            "load_bytes",
            format!("mov %r2, 14\nlddw %r3, {bad:#x}\nmov %r4, 8\ncall 26"),
            TrapCode::MemoryWrite,
        ),
        (
            "load_bytes past the end",
            format!("mov %r2, 60\nlddw %r3, {bad:#x}\nmov %r4, 8\ncall 26"),
            TrapCode::MemoryWrite,
        ),
        (
            "store_bytes",
            format!("mov %r2, 14\nlddw %r3, {bad:#x}\nmov %r4, 8\nmov %r5, 0\ncall 9"),
            TrapCode::MemoryRead,
        ),
        (
            "csum_diff",
            format!(
                "lddw %r1, {bad:#x}\nmov %r2, 4\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\nmov %r5, 0\ncall 28"
            ),
            TrapCode::MemoryRead,
        ),
    ] {
        let src = format!(
            "mov %r6, %r1\nldxw %r7, [%r6+0]\nmov %r1, %r6\n{call}\nldxw %r2, [%r6+0]\nadd %r0, %r2\nexit"
        );
        let out = skb_runs_agree(&src, 2);
        let trap = out.trap.unwrap_or_else(|| panic!("{case}: no trap"));
        assert_eq!((trap.code, trap.detail), (code, bad), "{case}");
        assert_eq!(out.retval, 0, "{case}");
    }
    // Store bytes out of the packet: -EFAULT, the bad source never read.
    let src = format!(
        "mov %r6, %r1\nmov %r1, %r6\nmov %r2, 60\nlddw %r3, {bad:#x}\nmov %r4, 8\nmov %r5, 0\ncall 9\nldxw %r2, [%r6+0]\nadd %r0, %r2\nexit"
    );
    let out = skb_runs_agree(&src, 2);
    assert_eq!(out.trap, None);
    assert_eq!(out.retval, (-14i64 as u64).wrapping_add(64));
}

/// `bpf_redirect_map` calls `(map, key, flags)` in order (map `i` the `i`-th of
/// [`redirect_maps`]), under the interpreter and the JIT (which asks the host directly,
/// `Host::redirect_map`), each on its own runner, `repeat` times: both results, returned with
/// each call's `r0` four bits apart (the last call's lowest).
fn redirects(
    calls: &[(u64, u64, u64)],
    repeat: u32,
    setup: impl Fn(&mut Runner),
) -> [bpfsim_helpers::run::RunResult; 2] {
    use bpfsim_helpers::run::MAP_HANDLE_BASE;
    let mut src = String::from("mov %r6, 0\n");
    for &(map, key, flags) in calls {
        let handle = MAP_HANDLE_BASE.wrapping_add(map);
        src += &format!(
            "lddw %r1, {handle:#x}\nlddw %r2, {key:#x}\nlddw %r3, {flags:#x}\ncall 51\nlsh %r6, 4\nor %r6, %r0\n"
        );
    }
    src += "mov %r0, %r6\nexit";
    let program = Program::new(assemble(&src).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    engines.map(|e| {
        let mut r = Runner::new(Env {
            ncpus: 2,
            ..Env::default()
        });
        r.set_timing(false);
        redirect_maps(&mut r);
        setup(&mut r);
        r.run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), repeat)
            .unwrap()
    })
}

/// A DEVMAP with slot 2 filled, a CPUMAP with slot 1, an XSKMAP with slot 0, a DEVMAP_HASH with
/// key 9, and an ARRAY (not a map to redirect to), in that order.
fn redirect_maps(r: &mut Runner) {
    let maps = [
        (MapType::Devmap, 4, 2u32, 7u32),
        (MapType::Cpumap, 4, 1, 64),
        (MapType::Xskmap, 4, 0, 5),
        (MapType::DevmapHash, 4, 9, 3),
        (MapType::Array, 4, 3, 1),
    ];
    for (i, (t, max, key, value)) in maps.into_iter().enumerate() {
        let id = r.maps.create(&def(&format!("m{i}"), t, 4, 4, max)).unwrap();
        r.maps
            .update(id, &key.to_le_bytes(), &value.to_le_bytes(), 0)
            .unwrap();
    }
}

#[test]
fn redirect_map_under_the_jit_answers_as_the_helper() {
    // What a call does to the recorded redirect: makes it, forgets it (a miss: the last call
    // decides, as the kernel clears its redirect info), or leaves it (flags refused before
    // the lookup).
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Then {
        Made,
        Forgot,
        Left,
    }
    use Then::*;
    // (map, key, flags, r0, then): a filled slot redirects (XDP_REDIRECT, 4), an empty one or a
    // key past the end gives the low two bits of the flags; the key is a u32 (bit 32 ignored).
    // Flags past the action bits are XDP_ABORTED (0), but for a devmap's BPF_F_BROADCAST (8)
    // and BPF_F_EXCLUDE_INGRESS (16); a broadcast redirects whatever the key. An array (which
    // the verifier refuses here) answers as its lookup.
    let cases: [(u64, u64, u64, u64, Then); 22] = [
        (0, 2, 0, 4, Made),
        (0, 1, 2, 2, Forgot),
        (0, 3, 0x13, 3, Forgot),
        (0, 1 << 32 | 2, 1, 4, Made),
        (0, 4, 1, 1, Forgot),
        (1, 1, 0, 4, Made),
        (1, 0, 2, 2, Forgot),
        (2, 0, 3, 4, Made),
        (2, 1, 3, 3, Forgot),
        (3, 9, 0, 4, Made),
        (3, 2, 2, 2, Forgot),
        (4, 3, 2, 4, Made),
        (4, 4, 2, 2, Forgot),
        (2, u32::MAX as u64, 1, 1, Forgot),
        (0, 2, 0x20, 0, Left),
        (0, 3, 0x8, 4, Made),
        (3, 5, 0x1a, 4, Made),
        (1, 1, 0x8, 0, Left),
        (2, 0, 0x10, 0, Left),
        (0, 2, 4, 0, Left),
        (0, 2, 1 << 32, 0, Left),
        (1, 7, 1, 1, Forgot),
    ];
    // In groups of up to 16 calls (four bits each in r0), the groups ending on a redirect, a
    // miss and a refusal.
    for group in [
        &cases[..16],
        &cases[16..],
        &cases[..5],
        &cases[5..12],
        &cases[12..15],
    ] {
        let calls: Vec<_> = group.iter().map(|&(m, k, f, ..)| (m, k, f)).collect();
        let want = group.iter().fold(0u64, |acc, c| acc << 4 | c.3);
        let last = group
            .iter()
            .fold(None, |last, &(m, k, f, _, then)| match then {
                Made => Some(Redirect::Map {
                    map: m as usize,
                    key: k as u32,
                    flags: f,
                }),
                Forgot => None,
                Left => last,
            });
        for repeat in [1, 3] {
            let [i, j] = redirects(&calls, repeat, |_| {});
            assert_eq!(i, j, "interpreter, then JIT: {group:?}");
            assert_eq!(j.retval, want, "{group:?}");
            assert_eq!(j.redirect, last, "{group:?}");
            assert_eq!(j.trap, None);
        }
    }
}

/// The JIT's direct call falls back to the helper: an override of `bpf_redirect_map` answers
/// every call (and records no redirect), and a handle that names no map faults at the call.
#[test]
fn redirect_map_under_the_jit_falls_back_to_the_helper() {
    let calls = [(0, 2, 0), (1, 0, 2)];
    let [i, j] = redirects(&calls, 2, |r| {
        r.override_helper(51, |a, _| Ok(a[1] + a[2] + 1));
    });
    assert_eq!(i, j);
    assert_eq!(j.retval, 3 << 4 | 3);
    assert_eq!(j.redirect, None);
    let [i, j] = redirects(&[(0, 2, 0), (9, 2, 0)], 1, |_| {});
    assert_eq!(i, j);
    assert_eq!(
        j.trap.map(|t| (t.code, t.detail)),
        Some((TrapCode::HelperFault, 51))
    );
    // The first call redirected before the fault.
    assert_eq!(
        j.redirect,
        Some(Redirect::Map {
            map: 0,
            key: 2,
            flags: 0
        })
    );
}

/// The helpers `call_helper` answers before its generic dispatch (the packet helpers,
/// `csum_diff`, the CPU id) still give way to an override, and keep their answers by program
/// type: on XDP the skb helpers are refused as before, `bpf_skb_load_bytes` with a fault (it
/// needs a socket buffer), the store and checksum ones as unknown (XDP has none).
#[test]
fn fast_helpers_keep_overrides_and_program_types() {
    let run = |r: &mut Runner, src: &str, ty: ProgType| {
        let program = Program::new(assemble(src).unwrap()).unwrap();
        let interp = Interpreter::new(&program);
        let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
        let i = r.run(&interp, ty, &tcp_packet(), Input::default()).unwrap();
        let j = r.run(&jit, ty, &tcp_packet(), Input::default()).unwrap();
        assert_eq!((i.retval, i.trap), (j.retval, j.trap), "{src}");
        i
    };
    let mut r = Runner::new(Env {
        cpu: 1,
        ncpus: 2,
        ..Env::default()
    });
    r.set_timing(false);
    let load = "mov %r2, 14\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\ncall 26\nexit";
    for id in [8u32, 9, 10, 11, 26, 28] {
        let src = format!("mov %r6, %r1\nmov %r1, %r6\ncall {id}\nexit");
        let skb = run(&mut r, &src, ProgType::SchedCls);
        let xdp = run(&mut r, &src, ProgType::Xdp);
        let code = |o: &bpfsim_helpers::run::RunResult| o.trap.map(|t| t.code);
        match id {
            8 => {
                assert_eq!((skb.retval, xdp.retval), (1, 1), "the CPU id");
                assert_eq!((code(&skb), code(&xdp)), (None, None));
            }
            26 => assert_eq!(code(&xdp), Some(TrapCode::HelperFault)),
            9..=11 => assert_eq!(code(&xdp), Some(TrapCode::UnknownHelper), "{id}"),
            _ => assert_eq!(code(&xdp), None, "{id}"),
        }
        if id != 26 {
            assert_ne!(code(&skb), Some(TrapCode::UnknownHelper), "{id} on skb");
        }
        r.override_helper(id, move |_, _| Ok(7000 + id as u64));
        let over = run(&mut r, &src, ProgType::SchedCls);
        assert_eq!((over.retval, over.trap), (7000 + id as u64, None), "{id}");
        let over = run(&mut r, &src, ProgType::Xdp);
        assert_eq!((over.retval, over.trap), (7000 + id as u64, None), "{id}");
        r.restore_helper(id);
    }
    let out = run(&mut r, &format!("mov %r6, %r1\n{load}"), ProgType::SchedCls);
    assert_eq!((out.retval, out.trap), (0, None));
}

/// `bpf_trace_vprintk` with 13 arguments in its array: a format of 12 conversions prints the
/// first 12, one of 16 is refused (-EINVAL, no line); the interpreter and the JIT agree, and the
/// environment keeps the lines of every run.
#[test]
fn trace_vprintk_reads_at_most_twelve_arguments_under_both_engines() {
    let src = |words: usize| {
        let mut s = String::from("lddw %r1, 0x6425642564256425\n");
        for w in 0..words {
            s += &format!("stxdw [%r10{}], %r1\n", -72 + 8 * w as i64);
        }
        s += &format!("stdw [%r10{}], 0\n", -72 + 8 * words as i64);
        for i in 0..13 {
            s += &format!("stdw [%r10{}], {}\n", -176 + 8 * i, 100 + i);
        }
        s += &format!(
            "mov %r1, %r10\nadd %r1, -72\nmov %r2, {}\nmov %r3, %r10\nadd %r3, -176\n\
             mov %r4, 104\ncall 177\nexit",
            8 * words + 1
        );
        Program::new(assemble(&s).unwrap()).unwrap()
    };
    let twelve: String = (100..112).map(|i| i.to_string()).collect();
    for (words, ret, lines) in [(3, 36, vec![twelve.as_str()]), (4, -22i64 as u64, vec![])] {
        let program = src(words);
        let interp = Interpreter::new(&program);
        let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
        let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
        for e in engines {
            let mut r = Runner::default();
            r.set_timing(false);
            let out = r
                .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), 3)
                .unwrap();
            assert_eq!((out.retval, out.trap), (ret, None), "{words} words");
            let want: Vec<&str> = lines
                .iter()
                .cycle()
                .take(3 * lines.len())
                .copied()
                .collect();
            assert_eq!(out.trace, want);
            assert_eq!(r.env.trace, want);
        }
    }
}

/// A context's packet (`Context::packet`, what the skb helpers read) is what its `data` and
/// `data_end` fields say, for socket buffers of each kind and XDP frames; a context without one
/// says none.
#[test]
fn contexts_name_the_packet_their_fields_point_at() {
    use bpfsim_helpers::ctx::skb::{off, SkbFrame, SkbMd};
    use bpfsim_helpers::ctx::xdp::XdpFrame;
    use bpfsim_vm::isa::Size;
    use bpfsim_vm::memory::Context;
    let packet = tcp_packet();
    let fields = |c: &dyn Context, data: u32, end: u32| {
        let (d, e) = (
            c.load(data, Size::W).unwrap(),
            c.load(end, Size::W).unwrap(),
        );
        Some((d, (e - d) as usize))
    };
    for ty in [ProgType::SchedCls, ProgType::SocketFilter] {
        let mut f = SkbFrame::new(&packet, ty, SkbMd::default()).unwrap();
        f.ctx.buf_addr = 0x3_0000_0000;
        let want = Some((f.ctx.buf_addr + f.ctx.data as u64, f.ctx.end - f.ctx.data));
        assert_eq!(f.ctx.packet(), want, "{ty:?}");
        // Socket filters may not read `data` and `data_end`; TC programs read the same.
        if ty == ProgType::SchedCls {
            assert_eq!(fields(&f.ctx, off::DATA, off::DATA_END), want);
        }
        // A socket filter's packet starts at the network header.
        let len = if ty == ProgType::SchedCls { 64 } else { 50 };
        assert_eq!(want.map(|w| w.1), Some(len), "{ty:?}");
    }
    let mut x = XdpFrame::new(&packet, XdpMd::default()).unwrap();
    x.ctx.frame_addr = 0x5_0000_0000;
    assert_eq!(x.ctx.packet(), fields(&x.ctx, 0, 4));
    assert_eq!(x.ctx.packet().map(|p| p.1), Some(64));
}

/// `bpf_xdp_adjust_meta`, `_tail` and `_head` called on every run of a batch until they fail
/// (the metadata area full, the packet at its 14-byte minimum), with the context's fields read
/// after each call: the JIT, which keeps the fields it reads until the context changes, must
/// read the moved edges after a call that moved them and may keep them after one that failed;
/// the interpreter and the JIT agree on every run count.
#[test]
fn xdp_adjustments_that_fail_keep_the_context_under_both_engines() {
    for (id, delta, ok_runs) in [(54, -8i32, 27u32), (65, -1, 6), (44, 1, 6)] {
        let src = format!(
            "mov %r6, %r1
             mov %r1, %r6
             mov %r2, {delta}
             call {id}
             and %r0, 0xff
             ldxw %r2, [%r6+8]
             ldxw %r3, [%r6+0]
             ldxw %r4, [%r6+4]
             mov %r5, %r3
             sub %r5, %r2
             lsh %r5, 8
             or %r0, %r5
             sub %r4, %r3
             lsh %r4, 24
             or %r0, %r4
             exit"
        );
        let program = Program::new(assemble(&src).unwrap()).unwrap();
        let interp = Interpreter::new(&program);
        let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
        for repeat in [1, 2, ok_runs, ok_runs + 1, ok_runs + 5] {
            let seen = both_engines(&interp, &jit, ProgType::Xdp, &PACKET, repeat);
            assert_eq!(seen[0], seen[1], "helper {id}, {repeat} runs");
            let out = &seen[0];
            let moved = repeat.min(ok_runs) as u64;
            let (meta, len) = match id {
                54 => (8 * moved, 20),
                _ => (0, 20 - moved),
            };
            let ret = if repeat > ok_runs { 0xea } else { 0 };
            assert_eq!(
                out.retval,
                ret | meta << 8 | len << 24,
                "helper {id}, {repeat} runs"
            );
            assert_eq!(out.data.len() as u64, meta + len);
        }
    }
}

/// `bpf_xdp_adjust_meta` and `bpf_xdp_adjust_tail`, answered before the generic dispatch (and
/// by direct calls under the JIT), are still XDP's alone (on TC they are unknown helpers) and
/// still give way to an override, under both engines.
#[test]
fn xdp_adjust_meta_and_tail_keep_their_program_type_and_overrides() {
    // Each grows the data out by 8 bytes: metadata in front, or zeroes behind.
    for (id, delta) in [(54, -8i64), (65, 8)] {
        let src = format!("mov %r2, {delta}\ncall {id}\nexit");
        let program = Program::new(assemble(&src).unwrap()).unwrap();
        let interp = Interpreter::new(&program);
        let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
        for e in [&interp as &dyn bpfsim_vm::Executable, &jit] {
            let mut r = Runner::default();
            let tc = r
                .run(e, ProgType::SchedCls, &tcp_packet(), Input::default())
                .unwrap();
            assert_eq!(
                tc.trap.map(|t| t.code),
                Some(TrapCode::UnknownHelper),
                "{id}"
            );
            let xdp = r.run(e, ProgType::Xdp, &PACKET, Input::default()).unwrap();
            assert_eq!(
                (xdp.retval, xdp.trap, xdp.data.len()),
                (0, None, PACKET.len() + 8),
                "{id}"
            );
            // A batch asks once whether the answers are the context's (the JIT's shims then
            // ask it directly): before an override, and again after one.
            let batch = |r: &mut Runner| {
                r.run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), 3)
                    .unwrap()
            };
            let xdp = batch(&mut r);
            assert_eq!(
                (xdp.retval, xdp.trap, xdp.data.len()),
                (0, None, PACKET.len() + 24),
                "{id}"
            );
            r.override_helper(id, |a, _| Ok(a[1] ^ 1));
            for over in [
                r.run(e, ProgType::Xdp, &PACKET, Input::default()).unwrap(),
                batch(&mut r),
            ] {
                assert_eq!((over.retval, over.trap), (delta as u64 ^ 1, None), "{id}");
                assert_eq!(
                    over.data.len(),
                    PACKET.len(),
                    "{id}: the override moved nothing"
                );
            }
        }
    }
}

/// `bpf_xdp_adjust_meta` with the deltas its direct path under the JIT must answer as the
/// helper: refused ones (not a multiple of 4: `EACCES`; past `data` or the headroom: `EINVAL`),
/// 0, and deltas whose high 32 bits are set (the helper takes an `int`), each twice in a run
/// and over a batch, with the edges read after each call; both engines agree, with the
/// expected answers.
#[test]
fn xdp_adjust_meta_answers_every_delta_as_the_helper_under_both_engines() {
    const EACCES: u64 = -13i64 as u64;
    const EINVAL: u64 = -22i64 as u64;
    let cases: [(i64, [u64; 2]); 7] = [
        (-2, [EACCES, EACCES]),
        (4, [EINVAL, EINVAL]),
        (0, [0, 0]),
        (-4, [0, 0]),
        (-256, [EINVAL, EINVAL]),
        (0x7_ffff_fff8, [0, 0]),
        (-0x1_0000_0004, [0, 0]),
    ];
    for (delta, want) in cases {
        let src = format!(
            "mov %r6, %r1
             lddw %r2, {delta:#x}
             call 54
             mov %r7, %r0
             ldxw %r2, [%r6+8]
             ldxw %r3, [%r6+0]
             sub %r3, %r2
             mov %r1, %r6
             lddw %r2, {delta:#x}
             call 54
             mov %r8, %r0
             ldxw %r2, [%r6+8]
             ldxw %r4, [%r6+0]
             sub %r4, %r2
             lsh %r3, 8
             lsh %r4, 16
             or %r3, %r4
             and %r7, 0xff
             and %r8, 0xff
             lsh %r8, 24
             or %r3, %r7
             or %r3, %r8
             mov %r0, %r3
             exit",
            delta = delta as u64
        );
        let program = Program::new(assemble(&src).unwrap()).unwrap();
        let interp = Interpreter::new(&program);
        let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
        for repeat in [1, 3] {
            let seen = both_engines(&interp, &jit, ProgType::Xdp, &PACKET, repeat);
            assert_eq!(seen[0], seen[1], "delta {delta:#x}, {repeat} runs");
            if repeat == 1 {
                // The metadata's length after each call: the moves of -4 and the wrapped -8
                // and -4 are taken.
                let step = (delta as i32).unsigned_abs() as u64;
                let (m1, m2) = match want {
                    [0, 0] => (step, 2 * step),
                    _ => (0, 0),
                };
                let r0 = |x: u64| x & 0xff;
                assert_eq!(
                    seen[0].retval,
                    m1 << 8 | m2 << 16 | r0(want[0]) | r0(want[1]) << 24,
                    "delta {delta:#x}"
                );
            }
        }
    }
}

/// `bpf_xdp_adjust_tail` with the deltas its direct path under the JIT must answer as the
/// helper, on the 20-byte packet: refused ones (below an Ethernet header's 14 bytes, past the
/// frame's end: `EINVAL`), 0, shrinks and growths taken once or twice, and deltas whose high
/// 32 bits are set (the helper takes an `int`), each twice in a run and over a batch. After
/// the first call the program reads `data` and `data_end` again and reads the packet at byte
/// 21, past the old end, under its own bounds check (a packet access the JIT proves, from the
/// fields it keeps: they must be the moved ones), and at byte 19 under a check against the
/// `data_end` it read before the call (inside the old end, maybe past the new one; the
/// kernel's verifier would refuse it, the frame's byte is still there). Both engines agree,
/// with the expected answers: grown bytes read as zero, a shrink leaves the bytes behind.
#[test]
fn xdp_adjust_tail_answers_every_delta_as_the_helper_under_both_engines() {
    const EINVAL: u64 = -22i64 as u64;
    let cases: [(i64, [u64; 2], [u64; 2]); 11] = [
        (-7, [EINVAL, EINVAL], [20, 20]),
        (-6, [0, EINVAL], [14, 14]),
        (-3, [0, 0], [17, 14]),
        (0, [0, 0], [20, 20]),
        (1, [0, 0], [21, 22]),
        (4, [0, 0], [24, 28]),
        (1750, [0, 0], [1770, 3520]),
        (1751, [0, EINVAL], [1771, 1771]),
        (3501, [EINVAL, EINVAL], [20, 20]),
        (0x1_0000_0004, [0, 0], [24, 28]),
        (-0x1_0000_0003, [0, 0], [17, 14]),
    ];
    for (delta, want, lens) in cases {
        let call = format!(
            "mov %r1, %r6
             lddw %r2, {:#x}
             call 65",
            delta as u64
        );
        let src = format!(
            "mov %r6, %r1
             ldxw %r9, [%r6+4]
             {call}
             mov %r7, %r0
             and %r7, 0xff
             ldxw %r2, [%r6+0]
             ldxw %r3, [%r6+4]
             mov %r4, %r3
             sub %r4, %r2
             lsh %r4, 8
             or %r7, %r4
             mov %r4, %r2
             add %r4, 22
             mov %r5, 0xdd
             jgt %r4, %r3, +1
             ldxb %r5, [%r2+21]
             lsh %r5, 40
             or %r7, %r5
             mov %r4, %r2
             add %r4, 20
             mov %r5, 0xee
             jgt %r4, %r9, +1
             ldxb %r5, [%r2+19]
             lsh %r5, 48
             or %r7, %r5
             {call}
             and %r0, 0xff
             lsh %r0, 20
             or %r7, %r0
             ldxw %r2, [%r6+0]
             ldxw %r3, [%r6+4]
             sub %r3, %r2
             lsh %r3, 28
             or %r7, %r3
             mov %r0, %r7
             exit"
        );
        let program = Program::new(assemble(&src).unwrap()).unwrap();
        let interp = Interpreter::new(&program);
        // The context's loads (through r6) hinted, as the verifier would: the JIT keeps the
        // fields and proves the packet accesses from them.
        let mut ctx = vec![false; program.iter().map(|(pc, _)| pc + 2).max().unwrap()];
        for (pc, insn) in program.iter() {
            if let bpfsim_vm::isa::Insn::Load { src, .. } = insn {
                ctx[pc] = src.index() == 6;
            }
        }
        let hints = bpfsim_jit::Hints {
            ctx,
            ..Default::default()
        };
        let jit = bpfsim_jit::JitProgram::compile_with(&program, &hints).unwrap();
        assert!(
            jit.bounds_proven().contains(&18),
            "the load past the old end is proven: {:?}",
            jit.bounds_proven()
        );
        for repeat in [1, 3] {
            let seen = both_engines(&interp, &jit, ProgType::Xdp, &PACKET, repeat);
            assert_eq!(seen[0], seen[1], "delta {delta:#x}, {repeat} runs");
            if repeat == 1 {
                let r0 = |x: u64| x & 0xff;
                let past_old_end = if lens[0] >= 22 { 0 } else { 0xdd };
                assert_eq!(
                    seen[0].retval,
                    r0(want[0])
                        | lens[0] << 8
                        | r0(want[1]) << 20
                        | lens[1] << 28
                        | past_old_end << 40
                        | (PACKET[19] as u64) << 48,
                    "delta {delta:#x}"
                );
                let mut data = PACKET.to_vec();
                data.resize(lens[1] as usize, 0);
                assert_eq!(seen[0].data, data, "delta {delta:#x}");
            }
        }
    }
}

/// `bpf_for_each_map_elem` over an array gives every element's key and value pointer, in
/// index order, whatever the runner kept of an earlier call (the table of an array's calls is
/// kept while its arguments stay the same): three calls per run, over an array, a per-CPU
/// array (on CPU 1 of 2) and the array again with another context, each callback adding
/// `key + 1` to its value and folding the value into its context in order; single runs and
/// batches, one runner, both engines, checked against a model of the maps.
#[test]
fn for_each_over_arrays_sees_each_element_in_order_at_every_call() {
    use bpfsim_helpers::run::MAP_HANDLE_BASE;
    let src = format!(
        "stdw [%r10-8], 0
         stdw [%r10-16], 0
         lddw %r1, {a:#x}
         lddw %r2, func cb
         mov %r3, %r10
         add %r3, -8
         mov %r4, 0
         call 164
         mov %r7, %r0
         lddw %r1, {pa:#x}
         lddw %r2, func cb
         mov %r3, %r10
         add %r3, -16
         mov %r4, 0
         call 164
         lsh %r0, 8
         add %r7, %r0
         lddw %r1, {a:#x}
         lddw %r2, func cb
         mov %r3, %r10
         add %r3, -16
         mov %r4, 0
         call 164
         lsh %r0, 16
         add %r7, %r0
         ldxdw %r0, [%r10-8]
         ldxdw %r1, [%r10-16]
         mul %r1, 7
         add %r0, %r1
         lsh %r0, 24
         add %r0, %r7
         exit
     cb:
         ldxw %r5, [%r2]
         ldxdw %r0, [%r3]
         add %r0, %r5
         add %r0, 1
         stxdw [%r3], %r0
         ldxdw %r1, [%r4]
         mul %r1, 31
         add %r1, %r0
         stxdw [%r4], %r1
         mov %r0, 0
         exit",
        a = MAP_HANDLE_BASE,
        pa = MAP_HANDLE_BASE + 1,
    );
    let program = Program::new(assemble(&src).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    // The model: the array's first words, the per-CPU array's on CPU 1.
    let call = |vals: &mut [u64], ctx: &mut u64| {
        for (k, v) in vals.iter_mut().enumerate() {
            *v = v.wrapping_add(k as u64 + 1);
            *ctx = ctx.wrapping_mul(31).wrapping_add(*v);
        }
        vals.len() as u64
    };
    for e in [&interp as &dyn bpfsim_vm::Executable, &jit] {
        let mut r = Runner::new(Env {
            cpu: 1,
            ncpus: 2,
            ..Env::default()
        });
        r.set_timing(false);
        let a = r.maps.create(&def("a", MapType::Array, 4, 12, 5)).unwrap();
        let pa = r
            .maps
            .create(&def("pa", MapType::PercpuArray, 4, 8, 3))
            .unwrap();
        let (mut av, mut pav) = (vec![0u64; 5], vec![0u64; 3]);
        for (run, repeat) in [1u32, 1, 4, 1, 3].into_iter().enumerate() {
            let mut want = 0;
            for _ in 0..repeat {
                let (mut c8, mut c16) = (0u64, 0u64);
                let n = call(&mut av, &mut c8) + (call(&mut pav, &mut c16) << 8);
                let n = n + (call(&mut av, &mut c16) << 16);
                want = c8
                    .wrapping_add(c16.wrapping_mul(7))
                    .wrapping_shl(24)
                    .wrapping_add(n);
            }
            let out = r
                .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), repeat)
                .unwrap();
            assert_eq!(out.trap, None, "run {run}");
            assert_eq!(out.retval, want, "run {run}");
        }
        for (k, &v) in av.iter().enumerate() {
            let got = r.maps.lookup(a, &(k as u32).to_le_bytes()).unwrap();
            assert_eq!(got[..8], v.to_le_bytes(), "array element {k}");
        }
        for (k, &v) in pav.iter().enumerate() {
            let got = r.maps.lookup_percpu(pa, &(k as u32).to_le_bytes()).unwrap();
            assert_eq!(got[1], v.to_le_bytes(), "per-CPU element {k}");
            assert_eq!(got[0], [0; 8], "CPU 0's element {k}");
        }
    }
}

/// `bpf_for_each_map_elem` over a hash map sees its keys as they are at each call: three walks
/// per run, with a key inserted (or, once, updated in place) after the first, and another
/// deleted and one inserted after the second (as many keys, other ones; the runner keeps each
/// map's table while its keys stay the same), over single runs and batches
/// on one runner, both engines, checked against a model of the map (keys in insertion order).
#[test]
fn for_each_over_a_hash_sees_its_keys_at_every_call() {
    use bpfsim_helpers::run::MAP_HANDLE_BASE;
    let walk = |slot: i32, shift: u32| {
        format!(
            "lddw %r1, {h:#x}
             lddw %r2, func cb
             mov %r3, %r10
             add %r3, -16
             mov %r4, 0
             call 164
             lsh %r0, {shift}
             add %r8, %r0
             ldxdw %r1, [%r10-16]
             stxdw [%r10-{slot}], %r1",
            h = MAP_HANDLE_BASE,
        )
    };
    let src = format!(
        "stw [%r10-4], 0
         lddw %r1, {a:#x}
         mov %r2, %r10
         add %r2, -4
         call 1
         jeq %r0, 0, out
         ldxdw %r7, [%r0]
         add %r7, 1
         stxdw [%r0], %r7
         mov %r8, 0
         stdw [%r10-16], 0
         {w1}
         stxw [%r10-4], %r7
         mov %r1, %r7
         mul %r1, 10
         stxdw [%r10-24], %r1
         lddw %r1, {h:#x}
         mov %r2, %r10
         add %r2, -4
         mov %r3, %r10
         add %r3, -24
         mov %r4, 0
         call 2
         {w2}
         mov %r1, %r7
         sub %r1, 2
         stxw [%r10-4], %r1
         lddw %r1, {h:#x}
         mov %r2, %r10
         add %r2, -4
         call 3
         mov %r1, %r7
         add %r1, 1000
         stxw [%r10-4], %r1
         stxdw [%r10-24], %r7
         lddw %r1, {h:#x}
         mov %r2, %r10
         add %r2, -4
         mov %r3, %r10
         add %r3, -24
         mov %r4, 0
         call 2
         {w3}
         ldxdw %r0, [%r10-32]
         ldxdw %r1, [%r10-40]
         mul %r1, 3
         add %r0, %r1
         ldxdw %r1, [%r10-48]
         mul %r1, 5
         add %r0, %r1
         lsh %r0, 24
         add %r0, %r8
         exit
     out:
         mov %r0, 0
         exit
     cb:
         ldxw %r5, [%r2]
         ldxdw %r0, [%r3]
         mul %r5, 1000
         add %r5, %r0
         ldxdw %r1, [%r4]
         mul %r1, 31
         add %r1, %r5
         stxdw [%r4], %r1
         mov %r0, 0
         exit",
        a = MAP_HANDLE_BASE + 1,
        h = MAP_HANDLE_BASE,
        w1 = walk(32, 0),
        w2 = walk(40, 8),
        w3 = walk(48, 16),
    );
    let program = Program::new(assemble(&src).unwrap()).unwrap();
    let interp = Interpreter::new(&program);
    let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
    // The walk of the model's entries: the fold, on from what the context held.
    let fold = |m: &[(u32, u64)], ctx: u64| {
        m.iter().fold(ctx, |c, &(k, v)| {
            c.wrapping_mul(31)
                .wrapping_add((k as u64 * 1000).wrapping_add(v))
        })
    };
    for e in [&interp as &dyn bpfsim_vm::Executable, &jit] {
        let mut r = Runner::default();
        r.set_timing(false);
        let h = r.maps.create(&def("h", MapType::Hash, 4, 8, 16)).unwrap();
        r.maps.create(&def("a", MapType::Array, 4, 8, 1)).unwrap();
        r.maps
            .update(h, &7u32.to_le_bytes(), &71u64.to_le_bytes(), 0)
            .unwrap();
        let mut model: Vec<(u32, u64)> = vec![(7, 71)];
        let mut n = 0u64;
        for (run, repeat) in [1u32, 1, 3, 1, 1, 2, 1, 4].into_iter().enumerate() {
            let mut want = 0;
            for _ in 0..repeat {
                n += 1;
                let c1 = fold(&model, 0);
                let k1 = model.len() as u64;
                // An update of a key present keeps its place (key 7 at the seventh run).
                match model.iter_mut().find(|(k, _)| *k as u64 == n) {
                    Some(e) => e.1 = n * 10,
                    None => model.push((n as u32, n * 10)),
                }
                let c2 = fold(&model, c1);
                let k2 = model.len() as u64;
                model.retain(|&(k, _)| k as u64 != n.wrapping_sub(2) & 0xffff_ffff);
                // Then a key of its own: as many keys as before the delete, other ones.
                model.push((n as u32 + 1000, n));
                let c3 = fold(&model, c2);
                let k3 = model.len() as u64;
                let calls = k1 + (k2 << 8) + (k3 << 16);
                let sums = c1
                    .wrapping_add(c2.wrapping_mul(3))
                    .wrapping_add(c3.wrapping_mul(5));
                want = sums.wrapping_shl(24).wrapping_add(calls);
            }
            let out = r
                .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), repeat)
                .unwrap();
            assert_eq!(out.trap, None, "run {run}");
            assert_eq!(out.retval, want, "run {run}: {model:?}");
        }
    }
}
