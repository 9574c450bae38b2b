//! Helpers never panic, whatever a program passes them: random argument values (map handles,
//! guest addresses of every region, garbage) to every implemented helper, on XDP and skb runs.

use bpfsim_helpers::run::{arena_addr, Input, Runner, MAP_HANDLE_BASE};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::spec::{MapDef, MapType, ProgType};
use bpfsim_vm::{Interpreter, Program};
use proptest::prelude::*;

const HELPERS: &[u32] = &[
    1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 23, 25, 26, 28, 42, 44, 51, 54, 65, 87, 88, 89,
    112, 113, 114, 115, 118, 125, 130, 131, 132, 133, 160, 177,
];

fn runner() -> Runner {
    let mut r = Runner::default();
    let def = |name: &str, map_type, key_size, value_size, max_entries, flags| MapDef {
        name: name.to_string(),
        map_type,
        key_size,
        value_size,
        max_entries,
        flags,
        inner: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    for d in [
        def("h", MapType::Hash, 4, 8, 4, 0),
        def("a", MapType::Array, 4, 8, 4, 0),
        def("q", MapType::Queue, 0, 8, 4, 0),
        def("rb", MapType::Ringbuf, 0, 0, 4096, 0),
        def("pe", MapType::PerfEventArray, 4, 4, 1, 0),
        def("pa", MapType::ProgArray, 4, 4, 2, 0),
        def("dm", MapType::Devmap, 4, 4, 2, 0),
        def("lpm", MapType::LpmTrie, 8, 8, 4, 1),
        def("pc", MapType::PercpuArray, 4, 8, 2, 0),
    ] {
        let id = r.maps.create(&d).unwrap();
        if d.map_type == MapType::PerfEventArray {
            r.maps.perf_open_all(id).unwrap();
        }
    }
    r
}

/// Argument values worth trying: map handles, addresses in and around each region, small and
/// huge numbers.
fn arg() -> impl Strategy<Value = u64> {
    let r = runner();
    let bases: Vec<u64> = (0..9).map(|m| arena_addr(&r.maps, m, 0)).collect();
    prop_oneof![
        (0u64..12).prop_map(|i| MAP_HANDLE_BASE + i),
        (proptest::sample::select(bases), 0u64..5000).prop_map(|(b, o)| b + o),
        (1u64..11, 0u64..600).prop_map(|(region, o)| (region << 32) + o),
        (0u64..4, 0u64..4200).prop_map(|(region, o)| ((9 + region) << 32) + o),
        any::<u64>(),
        0u64..70000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn helpers_never_panic(
        calls in proptest::collection::vec((proptest::sample::select(HELPERS), proptest::array::uniform5(any::<u16>())), 1..6),
        pool in proptest::collection::vec(arg(), 32),
        skb in any::<bool>(),
    ) {
        let mut r = runner();
        let mut src = String::from("mov %r6, %r1\nstdw [%r10-8], 0\nstdw [%r10-16], 0\n");
        for (id, picks) in &calls {
            for (i, p) in picks.iter().enumerate() {
                let v = pool[*p as usize % pool.len()];
                if i == 0 && p % 3 == 0 {
                    src += "mov %r1, %r6\n";
                } else if p % 5 == 0 {
                    src += &format!("mov %r{}, %r10\nadd %r{}, -16\n", i + 1, i + 1);
                } else {
                    src += &format!("lddw %r{}, {v:#x}\n", i + 1);
                }
            }
            src += &format!("call {id}\n");
        }
        src += "mov %r0, 2\nexit\n";
        let prog = Interpreter::new(&Program::new(assemble(&src).unwrap()).unwrap());
        let packet: Vec<u8> = (0..64u8).collect();
        let ty = if skb { ProgType::SchedCls } else { ProgType::Xdp };
        let _ = r.run(&prog, ty, &packet, Input::default());
        // And the maps survive for the host.
        for m in r.maps.iter() {
            let _ = r.maps.entries(m.id());
        }
    }
}
