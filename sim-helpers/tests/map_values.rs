//! Map value accesses the verifier proved (`Verdict::map_value`, `Hints::map_value`): the JIT
//! compiles them without a branch, into the region the host says holds the map's values, and
//! must give the interpreter's results for hash, array and per-CPU array values, in single runs
//! and batches, and when the host cannot say where the values are.

use bpfsim_helpers::run::{arena_addr, Input, RunResult, Runner, MAP_HANDLE_BASE};
use bpfsim_helpers::Env;
use bpfsim_verifier::{verify, MapInfo, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::Insn;
use bpfsim_vm::spec::{MapDef, MapType, ProgType};
use bpfsim_vm::{Executable, Interpreter, Program};

/// An Ethernet frame carrying ARP; byte 14 selects offsets inside the values.
const PACKET: [u8; 20] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6, 0, 1, 8, 0, 6, 4];

/// The maps of the programs below: a hash map, an array, a per-CPU array.
fn defs() -> [MapDef; 3] {
    let def = |name: &str, map_type, value_size, max_entries| MapDef {
        name: name.to_string(),
        map_type,
        key_size: 4,
        value_size,
        max_entries,
        flags: 0,
        inner: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    [
        def("h", MapType::Hash, 8, 8),
        def("a", MapType::Array, 12, 4),
        def("pa", MapType::PercpuArray, 8, 3),
    ]
}

/// Reads and writes of each map's values, at fixed offsets and at an offset taken from the
/// packet (bounded by the value's size), of every size, and a direct value address (`.data`
/// style). `MAP i` names map `i`; `VALUE1+off` is the address of byte `off` of array value 0.
const VALUES: &str = "mov %r9, %r1
ldxw %r2, [%r9+0]
ldxw %r3, [%r9+4]
mov %r4, %r2
add %r4, 15
mov %r8, 0
jgt %r4, %r3, +1
ldxb %r8, [%r2+14]
and %r8, 3
stw [%r10-4], 5
MAP 0
mov %r2, %r10
add %r2, -4
call 1
mov %r6, 0
jeq %r0, 0, +10
ldxdw %r6, [%r0+0]
add %r6, 3
stxdw [%r0+0], %r6
ldxw %r3, [%r0+4]
add %r6, %r3
mov %r1, %r0
add %r1, %r8
ldxb %r3, [%r1+0]
add %r6, %r3
stxb [%r1+4], %r6
stw [%r10-4], 2
MAP 1
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, +11
ldxw %r3, [%r0+8]
add %r3, %r6
stxw [%r0+8], %r3
ldxh %r4, [%r0+2]
add %r4, 1
stxh [%r0+2], %r4
mov %r1, %r0
add %r1, %r8
ldxdw %r5, [%r1+0]
add %r6, %r5
sth [%r1+6], 7
stw [%r10-4], 1
MAP 2
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, +4
ldxdw %r3, [%r0+0]
add %r3, 10
stxdw [%r0+0], %r3
add %r6, %r3
VALUE1+4
ldxw %r3, [%r1+0]
add %r3, 1
stxw [%r1+0], %r3
add %r6, %r3
mov %r0, %r6
exit";

/// Atomic read-modify-writes of each width on a hash value and a per-CPU array value, with and
/// without fetching, exchanges and compare-exchanges that match and that do not.
const ATOMICS: &str = "stw [%r10-4], 5
MAP 0
mov %r2, %r10
add %r2, -4
call 1
mov %r6, 0
jeq %r0, 0, percpu
mov %r3, 0x1234567
lock add [%r0+0], %r3
mov %r3, -1
lock fetch add32 [%r0+4], %r3
add %r6, %r3
mov %r4, 0xf0
lock fetch or [%r0+0], %r4
add %r6, %r4
mov %r4, 0x0f0f
lock and32 [%r0+4], %r4
mov %r4, 0x55
lock fetch xor [%r0+0], %r4
add %r6, %r4
mov %r4, 77
lock xchg32 [%r0+4], %r4
add %r6, %r4
mov %r7, %r0
lddw %r0, 0x10000004d
mov %r4, 99
lock cmpxchg32 [%r7+4], %r4
add %r6, %r0
lddw %r0, 0x100000005
lock cmpxchg32 [%r7+0], %r4
add %r6, %r0
mov %r0, 5
lock cmpxchg [%r7+0], %r4
add %r6, %r0
percpu:
stw [%r10-4], 1
MAP 2
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, done
mov %r3, 3
lock add [%r0+0], %r3
lock fetch xor32 [%r0+4], %r3
add %r6, %r3
done:
mov %r0, %r6
exit";

/// The verifier's options for programs over [`defs`].
fn options() -> Options {
    let mut opts = Options::new(ProgType::Xdp);
    opts.maps = defs()
        .iter()
        .map(|d| MapInfo {
            name: d.name.clone(),
            map_type: d.map_type,
            key_size: d.key_size,
            value_size: d.value_size,
            max_entries: d.max_entries,
            rdonly_prog: false,
            frozen: false,
            btf: false,
            spin_lock: None,
            data: None,
        })
        .collect();
    opts
}

/// `src` as the verifier reads it (maps by index) and as the runner runs it (handles and arena
/// addresses), and the verifier's verdict on it turned into the JIT's hints.
fn build(src: &str) -> (Program, bpfsim_jit::Hints) {
    let (prog, verdict) = build_verdict(src);
    (prog, bpfsim_helpers::tier::verdict_hints(verdict))
}

/// [`build`]'s program, with the verifier's verdict as it gives it.
fn build_verdict(src: &str) -> (Program, bpfsim_verifier::Verdict) {
    let mut for_verifier = String::new();
    let mut linked = String::new();
    let runner = runner();
    for line in src.lines() {
        let (v, l) = if let Some(i) = line.strip_prefix("MAP ") {
            let i: u64 = i.parse().unwrap();
            (
                format!("lddw %r1, map_idx {i}"),
                format!("lddw %r1, {:#x}", MAP_HANDLE_BASE + i),
            )
        } else if let Some(off) = line.strip_prefix("VALUE1+") {
            let off: u64 = off.parse().unwrap();
            (
                format!("lddw %r1, map_idx_value 1, {off}"),
                format!("lddw %r1, {:#x}", arena_addr(&runner.maps, 1, 0) + off),
            )
        } else {
            (line.to_string(), line.to_string())
        };
        for_verifier.push_str(&v);
        for_verifier.push('\n');
        linked.push_str(&l);
        linked.push('\n');
    }
    let verdict = verify(&assemble(&for_verifier).unwrap(), &options());
    assert!(verdict.accepted, "{:?}\n{for_verifier}", verdict.error);
    (Program::new(assemble(&linked).unwrap()).unwrap(), verdict)
}

/// A runner on CPU 1 of 2 with [`defs`]'s maps, key 5 of the hash map filled.
fn runner() -> Runner {
    let mut r = Runner::new(Env {
        cpu: 1,
        ncpus: 2,
        ..Env::default()
    });
    r.set_timing(false);
    let ids: Vec<_> = defs().iter().map(|d| r.maps.create(d).unwrap()).collect();
    r.maps
        .update(ids[0], &5u32.to_le_bytes(), &[9, 8, 7, 6, 5, 4, 3, 2], 0)
        .unwrap();
    r.maps
        .update(ids[1], &2u32.to_le_bytes(), &[1; 12], 0)
        .unwrap();
    r
}

/// Every map value (the per-CPU array's for both CPUs).
fn values(r: &mut Runner) -> Vec<Vec<u8>> {
    let ids: Vec<_> = r.maps.iter().map(|m| m.id()).collect();
    let mut out = vec![r.maps.lookup(ids[0], &5u32.to_le_bytes()).unwrap()];
    for k in 0..4u32 {
        out.push(r.maps.lookup(ids[1], &k.to_le_bytes()).unwrap());
    }
    for k in 0..3u32 {
        out.extend(r.maps.lookup_percpu(ids[2], &k.to_le_bytes()).unwrap());
    }
    out
}

/// Runs of `prog` under `engine` on a fresh [`runner`] (after `setup`), `repeat` times, for
/// each packet: the results and the maps after them.
fn runs(
    engine: &dyn Executable,
    repeat: u32,
    setup: &dyn Fn(&mut Runner),
) -> (Vec<RunResult>, Vec<Vec<u8>>) {
    let mut r = runner();
    setup(&mut r);
    let mut results = Vec::new();
    for b in [0u8, 1, 2, 3, 7] {
        let mut packet = PACKET;
        packet[14] = b;
        results.push(
            r.run_repeat(engine, ProgType::Xdp, &packet, Input::default(), repeat)
                .unwrap(),
        );
    }
    // A packet too short to parse: offset 0.
    results.push(
        r.run_repeat(
            engine,
            ProgType::Xdp,
            &PACKET[..14],
            Input::default(),
            repeat,
        )
        .unwrap(),
    );
    (results, values(&mut r))
}

/// The slots whose access the hints prove a value access of some map, with the map.
fn hinted(prog: &Program, hints: &bpfsim_jit::Hints) -> Vec<(usize, u32)> {
    prog.iter()
        .filter_map(|(pc, _)| Some((pc, hints.map_value.get(pc).copied().flatten()?)))
        .collect()
}

#[test]
fn the_verifier_proves_each_value_access_with_its_map() {
    let (prog, hints) = build(VALUES);
    let got = hinted(&prog, &hints);
    // Every load and store through r0 (a lookup's result) or r1 (its copy, or the direct value)
    // after the packet is parsed, with the map the lookup named; nothing else.
    let mut want = Vec::new();
    let mut map = None;
    for (pc, insn) in prog.iter() {
        match insn {
            Insn::LdImm64 { imm, .. } => {
                let v = match *imm {
                    bpfsim_vm::isa::Imm64::Imm(v) => v,
                    _ => unreachable!(),
                };
                map = Some(if v >= MAP_HANDLE_BASE {
                    (v - MAP_HANDLE_BASE) as u32
                } else {
                    1
                });
            }
            Insn::Load { src, .. } | Insn::Store { dst: src, .. }
                if pc > 8 && matches!(src.index(), 0 | 1) =>
            {
                want.push((pc, map.unwrap()));
            }
            _ => {}
        }
    }
    assert_eq!(got, want);
    assert_eq!(
        got.iter().filter(|&&(_, m)| m == 0).count(),
        5,
        "hash value accesses"
    );
    assert_eq!(got.iter().filter(|&&(_, m)| m == 1).count(), 8, "array");
    assert_eq!(got.iter().filter(|&&(_, m)| m == 2).count(), 2, "per-CPU");
    // The context, the packet and the stack are not map values.
    for (pc, insn) in prog.iter().take(9) {
        assert_eq!(hints.map_value.get(pc).copied().flatten(), None, "{insn:?}");
    }
}

/// A slot reached with values of two different maps is proven for neither.
#[test]
fn an_access_to_values_of_two_maps_is_not_proven() {
    let src = "VALUE1+0
mov %r6, %r1
ldxw %r2, [%r1+0]
jeq %r2, 0, +8
stw [%r10-4], 0
MAP 2
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, +3
mov %r6, %r0
ldxw %r0, [%r6+0]
exit
mov %r0, 0
exit";
    let (prog, hints) = build(src);
    assert!(matches!(
        prog.iter().find(|&(pc, _)| pc == 13).map(|(_, i)| i),
        Some(Insn::Load { .. })
    ));
    assert_eq!(
        hinted(&prog, &hints),
        [(3, 1)],
        "only the direct value's load"
    );
    assert_eq!(hints.no_ctx.get(13), Some(&true));
}

#[test]
fn the_verifier_proves_atomic_value_accesses() {
    let (prog, hints) = build(ATOMICS);
    let atomics: Vec<usize> = prog
        .iter()
        .filter(|(_, i)| matches!(i, Insn::Atomic { .. }))
        .map(|(pc, _)| pc)
        .collect();
    assert_eq!(atomics.len(), 11);
    let got = hinted(&prog, &hints);
    assert_eq!(got.iter().map(|&(pc, _)| pc).collect::<Vec<_>>(), atomics);
    assert_eq!(got.iter().filter(|&&(_, m)| m == 2).count(), 2);
}

#[test]
fn proven_atomic_value_accesses_under_the_jit_run_as_the_interpreter() {
    let (prog, hints) = build(ATOMICS);
    let interp = Interpreter::new(&prog);
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints).unwrap();
    let plain = bpfsim_jit::JitProgram::compile(&prog).unwrap();
    assert!(jit.code_size < plain.code_size);
    for repeat in [1, 2, 3] {
        let want = runs(&interp, repeat, &|_| {});
        assert_eq!(runs(&jit, repeat, &|_| {}), want, "repeat {repeat}");
        assert_eq!(runs(&plain, repeat, &|_| {}), want, "repeat {repeat}");
    }
}

#[test]
fn proven_value_accesses_under_the_jit_run_as_the_interpreter() {
    let (prog, hints) = build(VALUES);
    assert_eq!(hinted(&prog, &hints).len(), 15);
    let interp = Interpreter::new(&prog);
    let jit = bpfsim_jit::JitProgram::compile_with(&prog, &hints).unwrap();
    let plain = bpfsim_jit::JitProgram::compile(&prog).unwrap();
    // The hinted code takes fewer instructions than the checked code.
    assert!(
        jit.code_size < plain.code_size,
        "{} {}",
        jit.code_size,
        plain.code_size
    );
    type Setup = Box<dyn Fn(&mut Runner)>;
    let setups: [(&str, Setup); 3] = [
        ("no override", Box::new(|_| {})),
        // Overrides that give no value pointers leave the host's answer as it was.
        (
            "prandom overridden",
            Box::new(|r| r.override_helper(7, |_, _| Ok(4))),
        ),
        // An override of the lookup may point anywhere: the host does not say where values
        // are, and the runs go to the interpreter.
        (
            "lookup overridden",
            Box::new(|r| {
                let array = arena_addr(&r.maps, 1, 0);
                r.override_helper(1, move |_, _| Ok(array))
            }),
        ),
    ];
    for repeat in [1, 3] {
        for (what, setup) in &setups {
            let want = runs(&interp, repeat, setup);
            assert_eq!(runs(&jit, repeat, setup), want, "{what}, repeat {repeat}");
            assert_eq!(runs(&plain, repeat, setup), want, "{what}, repeat {repeat}");
        }
    }
}

/// map_heavy's value accesses reach the JIT as proven, each with its map: the flow rule's two
/// fields (the hash map, 0) and the per-CPU counters' loads and stores (1); nothing else.
#[test]
fn the_jit_knows_map_heavys_value_accesses() {
    use bpfsim_helpers::object::LoadedObject;
    let bytes = include_bytes!("../../test-vectors/bench/map_heavy.bpf.o");
    let obj = LoadedObject::load(bytes, Env::default()).unwrap();
    let p = obj.program("xdp_map_heavy", None).unwrap();
    let hints = p.jit_hints();
    let prog = Program::new(p.insns.clone()).unwrap();
    assert_eq!(
        hinted(&prog, &hints),
        [(45, 0), (46, 0), (56, 1), (58, 1), (60, 1), (62, 1)]
    );
    for (pc, _) in hinted(&prog, &hints) {
        assert!(
            hints.no_ctx[pc] && !hints.packet[pc] && !hints.ctx[pc],
            "slot {pc}"
        );
    }
}

/// The `call 1` slots of `prog` with the map the verdict names for each.
fn lookups(
    prog: &Program,
    verdict: &bpfsim_verifier::Verdict,
) -> Vec<(usize, Option<(u32, MapType)>)> {
    prog.iter()
        .filter(|(_, i)| matches!(i, Insn::Call(bpfsim_vm::isa::CallTarget::Helper(1))))
        .map(|(pc, _)| (pc, verdict.lookup_map.get(pc).copied().flatten()))
        .collect()
}

/// Each lookup names the map its `r1` holds, with the map's type, and the JIT is told the way
/// that type's lookups take; no other slot names one.
#[test]
fn the_verifier_names_each_lookups_map() {
    use bpfsim_jit::LookupPath;
    let (prog, verdict) = build_verdict(VALUES);
    let got = lookups(&prog, &verdict);
    assert_eq!(
        got.iter().map(|&(_, m)| m).collect::<Vec<_>>(),
        [
            Some((0, MapType::Hash)),
            Some((1, MapType::Array)),
            Some((2, MapType::PercpuArray)),
        ]
    );
    let named = verdict.lookup_map.iter().filter(|m| m.is_some()).count();
    assert_eq!(named, 3);
    let hints = bpfsim_helpers::tier::verdict_hints(verdict);
    let paths: Vec<_> = got.iter().map(|&(pc, _)| hints.lookup[pc]).collect();
    assert_eq!(
        paths,
        [
            Some(LookupPath::Key),
            Some(LookupPath::Array),
            Some(LookupPath::Array)
        ]
    );
}

/// A lookup reached with two different maps in `r1` names neither; a rejected program names
/// none.
#[test]
fn a_lookup_of_two_maps_names_neither() {
    let src = "ldxw %r2, [%r1+12]
stw [%r10-4], 0
MAP 0
jeq %r2, 0, +2
MAP 1
mov %r2, %r10
add %r2, -4
call 1
mov %r0, 0
exit";
    // The interface's index (`ingress_ifindex`, unknown) chooses the map; `MAP` takes two
    // slots.
    let (prog, verdict) = build_verdict(src);
    let got = lookups(&prog, &verdict);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, None);
    // The same map on both paths is named.
    let same = src.replacen("MAP 1", "MAP 0", 1);
    let (prog, verdict) = build_verdict(&same);
    assert_eq!(lookups(&prog, &verdict)[0].1, Some((0, MapType::Hash)));
    // Rejected (the value read without a NULL check): nothing.
    let bad = "stw [%r10-4], 0\nlddw %r1, map_idx 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\n\
               ldxdw %r0, [%r0+0]\nexit";
    let v = verify(&assemble(bad).unwrap(), &options());
    assert!(!v.accepted);
    assert!(v.lookup_map.is_empty());
}

/// Lookups compiled with the verifier's ways, and with every false way (each lookup the array's,
/// the key's, the helper's alone), run as the interpreter: the tables the code checks send a
/// lookup the way does not fit to the helper.
#[test]
fn lookups_under_true_and_false_ways_run_as_the_interpreter() {
    use bpfsim_jit::LookupPath;
    let (prog, hints) = build(VALUES);
    let interp = Interpreter::new(&prog);
    let mut variants = vec![("verifier's", hints.clone())];
    for (what, path) in [
        ("all array", LookupPath::Array),
        ("all key", LookupPath::Key),
        ("all helper", LookupPath::Helper),
    ] {
        let mut h = hints.clone();
        for p in h.lookup.iter_mut().filter(|p| p.is_some()) {
            *p = Some(path);
        }
        variants.push((what, h));
    }
    let lookup_overridden = |r: &mut Runner| {
        let array = arena_addr(&r.maps, 1, 0);
        r.override_helper(1, move |_, _| Ok(array))
    };
    for (what, h) in &variants {
        let jit = bpfsim_jit::JitProgram::compile_with(&prog, h).unwrap();
        for repeat in [1, 3] {
            let want = runs(&interp, repeat, &|_| {});
            assert_eq!(runs(&jit, repeat, &|_| {}), want, "{what}, repeat {repeat}");
            let want = runs(&interp, repeat, &lookup_overridden);
            assert_eq!(
                runs(&jit, repeat, &lookup_overridden),
                want,
                "{what}, lookup overridden, repeat {repeat}"
            );
        }
    }
}

/// map_heavy's two lookups: the flow rules' hash map (0) by the key's bytes, the per-CPU
/// counters (1) inline.
#[test]
fn the_jit_knows_map_heavys_lookup_ways() {
    use bpfsim_helpers::object::LoadedObject;
    use bpfsim_jit::LookupPath;
    let bytes = include_bytes!("../../test-vectors/bench/map_heavy.bpf.o");
    let obj = LoadedObject::load(bytes, Env::default()).unwrap();
    let p = obj.program("xdp_map_heavy", None).unwrap();
    let hints = p.jit_hints();
    let prog = Program::new(p.insns.clone()).unwrap();
    let ways: Vec<_> = prog
        .iter()
        .filter(|(_, i)| matches!(i, Insn::Call(bpfsim_vm::isa::CallTarget::Helper(1))))
        .map(|(pc, _)| hints.lookup[pc])
        .collect();
    assert_eq!(ways, [Some(LookupPath::Key), Some(LookupPath::Array)]);
}
