//! The benchmark workloads as clang-compiled XDP programs (`test-vectors/bench/*.bpf.c`,
//! objects committed next to their sources), each with the packet it runs on and the return value
//! it must give, computed here in plain Rust so that every engine is checked against the same
//! answer before it is timed.
//!
//! The objects are embedded in the binary (`include_bytes!`), so the benchmarks run from any
//! directory and need no clang.
//!
//! rbpf runs the programs that use no maps and no helpers, as raw bytecode extracted from the
//! object. Its context differs from the kernel's: see [`ObjectWorkload::rbpf_bytecode`].

use bpfsim_helpers::object::{LinkedProgram, LoadedObject};
use bpfsim_helpers::Env;

use crate::{parse_csum_ref, udp_frame, xorshift, ITERATIONS};

/// XDP verdicts, as the programs return them.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// Seeds of `loop_xorshift.bpf.c` and `alu_chains.bpf.c`, xored with the packet's first 8 bytes.
pub const SEEDS: [u64; 4] = [
    0x2545_f491_4f6c_dd1d,
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
];

/// Flows installed in `map_heavy`'s hash table: the benchmark packet's flow and this many others.
pub const MAP_HEAVY_OTHER_FLOWS: u16 = 1023;
/// The verdict and traffic class `map_heavy`'s table gives the benchmark packet's flow.
pub const MAP_HEAVY_ACTION: u32 = XDP_DROP;
pub const MAP_HEAVY_CLASS: u32 = 3;

/// Where [`ObjectWorkload::rbpf_bytecode`]'s programs read the packet's start and end in rbpf's
/// metadata buffer (`EbpfVmMbuff`): 64-bit pointers, as the kernel's rewritten context loads read.
pub const RBPF_DATA_OFF: usize = 0;
pub const RBPF_DATA_END_OFF: usize = 8;

/// One benchmark program: an object, the program in it, its packet and its answer.
#[derive(Clone, Debug)]
pub struct ObjectWorkload {
    /// The workload's name (several workloads can share an object).
    pub name: &'static str,
    /// The object's file name under `test-vectors/bench/`.
    pub file: &'static str,
    pub elf: &'static [u8],
    /// The program (function) name.
    pub prog: &'static str,
    pub packet: Vec<u8>,
    /// The return value (`BPF_PROG_TEST_RUN`'s retval: the low 32 bits of `r0`).
    pub expected: u32,
    /// Entries of the hash map `flows` to install before the first run (key, value).
    pub flows: Vec<(Vec<u8>, Vec<u8>)>,
}

macro_rules! object {
    ($file:literal) => {
        (
            $file,
            include_bytes!(concat!("../../test-vectors/bench/", $file)).as_slice(),
        )
    };
}

/// The packet of the workloads that do not parse one (64 bytes, as the smaller parse workload).
fn default_packet() -> Vec<u8> {
    udp_frame(64)
}

/// The seed the compute programs read: the packet's first 8 bytes, little-endian.
fn packet_seed(packet: &[u8]) -> u64 {
    u64::from_le_bytes(packet[..8].try_into().expect("8 bytes"))
}

/// A 64-bit state folded into 32 bits, as `fold32` in `bench.h`.
fn fold32(x: u64) -> u32 {
    (x ^ (x >> 32)) as u32
}

fn xorshift_n(x: u64) -> u64 {
    (0..ITERATIONS).fold(x, |x, _| xorshift(x))
}

/// `struct flow_key` of `map_heavy.bpf.c`: addresses and ports in network order as they sit in
/// the packet, the protocol, 3 bytes of padding.
pub fn flow_key(saddr: [u8; 4], daddr: [u8; 4], sport: u16, dport: u16, proto: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&saddr);
    k.extend_from_slice(&daddr);
    k.extend_from_slice(&sport.to_be_bytes());
    k.extend_from_slice(&dport.to_be_bytes());
    k.extend_from_slice(&[proto, 0, 0, 0]);
    k
}

/// The flow table of `map_heavy`: the packet's flow (from [`udp_frame`]: 10.0.0.1:40000 ->
/// 10.0.0.2:4789, UDP) and [`MAP_HEAVY_OTHER_FLOWS`] others with other source ports.
fn map_heavy_flows() -> Vec<(Vec<u8>, Vec<u8>)> {
    let rule = |action: u32, class: u32| {
        let mut v = action.to_le_bytes().to_vec();
        v.extend_from_slice(&class.to_le_bytes());
        v
    };
    let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut flows = vec![(
        flow_key(src, dst, 40000, 4789, 17),
        rule(MAP_HEAVY_ACTION, MAP_HEAVY_CLASS),
    )];
    flows.extend((0..MAP_HEAVY_OTHER_FLOWS).map(|i| {
        (
            flow_key(src, dst, 1000 + i, 4789, 17),
            rule(XDP_PASS, 1 + u32::from(i % 2)),
        )
    }));
    flows
}

/// Every workload, in a fixed order: the five, then the map-heavy one.
pub fn all() -> Vec<ObjectWorkload> {
    let w = |name, (file, elf): (&'static str, &'static [u8]), prog, packet: Vec<u8>, expected| {
        ObjectWorkload {
            name,
            file,
            elf,
            prog,
            packet,
            expected,
            flows: Vec::new(),
        }
    };
    let p = default_packet();
    let seed = packet_seed(&p);
    let alu = SEEDS
        .iter()
        .map(|s| xorshift_n(seed ^ s))
        .fold(0, |acc, x| acc ^ x);
    let csum = |len| {
        let f = udp_frame(len);
        let want = parse_csum_ref(&f) as u32;
        (f, want)
    };
    let (p64, c64) = csum(64);
    let (p1500, c1500) = csum(1500);
    let mut map_heavy = w(
        "map_heavy",
        object!("map_heavy.bpf.o"),
        "xdp_map_heavy",
        p.clone(),
        MAP_HEAVY_ACTION,
    );
    map_heavy.flows = map_heavy_flows();
    vec![
        w(
            "empty",
            object!("empty.bpf.o"),
            "xdp_empty",
            p.clone(),
            XDP_PASS,
        ),
        w(
            "loop_xorshift",
            object!("loop_xorshift.bpf.o"),
            "xdp_loop_xorshift",
            p.clone(),
            fold32(xorshift_n(seed ^ SEEDS[0])),
        ),
        w(
            "alu_chains",
            object!("alu_chains.bpf.o"),
            "xdp_alu_chains",
            p.clone(),
            fold32(alu),
        ),
        w(
            "parse_csum_64",
            object!("parse_csum.bpf.o"),
            "xdp_parse_csum",
            p64,
            c64,
        ),
        w(
            "parse_csum_1500",
            object!("parse_csum.bpf.o"),
            "xdp_parse_csum",
            p1500,
            c1500,
        ),
        map_heavy,
        // The loop_xorshift steps, each in a `bpf_loop` callback: what a callback's call costs.
        w(
            "loop_callback",
            object!("loop_callback.bpf.o"),
            "xdp_loop_callback",
            p.clone(),
            fold32(xorshift_n(seed ^ SEEDS[0])),
        ),
        // The same step in a loop of 8 calls: the loop's fixed cost against its calls.
        w(
            "loop_short",
            object!("loop_short.bpf.o"),
            "xdp_loop_short",
            p.clone(),
            fold32((0..8).fold(seed ^ SEEDS[0], |x, _| xorshift(x))),
        ),
        // A `bpf_for_each_map_elem` over 256 array entries (all 0): the keys' sum and the seed's
        // low byte.
        w(
            "foreach_array",
            object!("foreach_array.bpf.o"),
            "xdp_foreach_array",
            p.clone(),
            (0..256u32).sum::<u32>() + (seed & 0xff) as u32,
        ),
    ]
}

/// One workload per object (the first of those sharing one): what the load, verify and compile
/// phases measure.
pub fn distinct_objects() -> Vec<ObjectWorkload> {
    let mut out: Vec<ObjectWorkload> = Vec::new();
    for w in all() {
        if !out.iter().any(|o| o.file == w.file) {
            out.push(w);
        }
    }
    out
}

impl ObjectWorkload {
    /// The object's name without `.bpf.o`.
    pub fn object_name(&self) -> &'static str {
        self.file.trim_end_matches(".bpf.o")
    }

    /// The object loaded into the simulator (maps created, the flow table filled) and the
    /// program linked, as `bpfsim run` does.
    pub fn load_sim(&self) -> (LoadedObject, LinkedProgram) {
        let mut obj = LoadedObject::load(self.elf, Env::default())
            .unwrap_or_else(|e| panic!("{}: {e}", self.file));
        let prog = obj
            .program(self.prog, None)
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.file, self.prog));
        if !self.flows.is_empty() {
            let id = obj.map_id("flows").expect("map_heavy has a flows map");
            for (k, v) in &self.flows {
                obj.runner
                    .maps
                    .update(id, k, v, 0)
                    .expect("the flow table has room");
            }
        }
        (obj, prog)
    }

    /// The program's raw bytecode for rbpf, or `None` when it uses maps or helpers (rbpf has
    /// neither here).
    ///
    /// The context differs: the kernel hands an XDP program a `struct xdp_md` whose `data` and
    /// `data_end` are 32-bit fields at offsets 0 and 4, and rewrites the program's 32-bit loads of
    /// them into 64-bit loads of the real pointers (its `convert_ctx_access`). rbpf does no such
    /// rewriting: `EbpfVmMbuff` passes a metadata buffer in `r1` and the program reads the
    /// pointers from it itself. So the same rewrite is done here, once, on the bytecode:
    /// `ldxw rX, [r1+0]` becomes `ldxdw rX, [r1+RBPF_DATA_OFF]` and `ldxw rX, [r1+4]` becomes
    /// `ldxdw rX, [r1+RBPF_DATA_END_OFF]`; [`rbpf_mbuff`] fills the buffer. No other context
    /// field is supported (the function panics on any other load from `r1` before `r1` is
    /// overwritten). rbpf also gives the program no packet headroom: the packet is exactly the
    /// frame, as in the kernel's test run without metadata.
    pub fn rbpf_bytecode(&self) -> Option<Vec<u8>> {
        let obj = bpfsim_vm::loader::load_object(self.elf).expect("the object loads");
        let mut code = obj.find_program(self.prog).expect("program").to_bytes();
        let uses_maps_or_helpers = code.chunks(8).any(|i| {
            let (op, src) = (i[0], i[1] >> 4);
            op == 0x85 || (op == 0x18 && src != 0)
        });
        if uses_maps_or_helpers {
            return None;
        }
        // Straight-line prefix only: the context loads clang emits come before any jump, and
        // `r1` is the context until an instruction writes it.
        for i in code.chunks_mut(8) {
            let (op, dst, src) = (i[0], i[1] & 0xf, i[1] >> 4);
            let off = i16::from_le_bytes([i[2], i[3]]);
            let class = op & 7;
            if class == 5 || class == 6 || op == 0x95 {
                break;
            }
            if src == 1 && (op & 0xe0) == 0x60 && class == 1 {
                // A load from the context.
                let new_off = match (op, off) {
                    (0x61, 0) => RBPF_DATA_OFF,
                    (0x61, 4) => RBPF_DATA_END_OFF,
                    _ => panic!("{}: context load {op:#x} at offset {off}", self.file),
                };
                i[0] = 0x79;
                i[2..4].copy_from_slice(&(new_off as i16).to_le_bytes());
            }
            // Any ALU, load or lddw into r1 ends the context's life in r1.
            let writes_dst = matches!(class, 0 | 1 | 4 | 7);
            if writes_dst && dst == 1 {
                break;
            }
        }
        Some(code)
    }
}

/// rbpf's metadata buffer for `packet`: its start and end pointers where
/// [`ObjectWorkload::rbpf_bytecode`]'s programs read them.
pub fn rbpf_mbuff(packet: &[u8]) -> [u8; 16] {
    let start = packet.as_ptr() as u64;
    let mut m = [0u8; 16];
    m[RBPF_DATA_OFF..RBPF_DATA_OFF + 8].copy_from_slice(&start.to_le_bytes());
    m[RBPF_DATA_END_OFF..RBPF_DATA_END_OFF + 8]
        .copy_from_slice(&(start + packet.len() as u64).to_le_bytes());
    m
}

/// Packets counted in `map_heavy`'s `class_stats` for `class`, summed over CPUs: the per-CPU
/// values as the simulator's map API returns them (one `struct datarec` per CPU).
pub fn class_packets(per_cpu: &[Vec<u8>]) -> u64 {
    per_cpu
        .iter()
        .map(|v| u64::from_le_bytes(v[..8].try_into().expect("struct datarec")))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfsim_helpers::object::Engine;
    use bpfsim_helpers::run::Input;

    #[test]
    fn simulator_returns_expected_under_both_engines() {
        for w in all() {
            for engine in [Engine::Interp, Engine::Jit] {
                let (mut obj, prog) = w.load_sim();
                let r = obj
                    .run_engine(&prog, &w.packet, Input::default(), 1, engine)
                    .unwrap_or_else(|e| panic!("{} {engine:?}: {e}", w.name));
                assert_eq!(r.trap, None, "{} {engine:?}", w.name);
                assert_eq!(r.retval as u32, w.expected, "{} {engine:?}", w.name);
            }
        }
    }

    #[test]
    fn the_workloads_are_not_trivial() {
        let ws = all();
        for w in &ws[1..5] {
            // Not an XDP verdict nor XDP_ABORTED: the computation really ran.
            assert!(w.expected > 4, "{}: {}", w.name, w.expected);
        }
        assert_ne!(ws[3].expected, ws[4].expected);
    }

    #[test]
    fn map_heavy_counts_per_cpu() {
        let w = all().into_iter().find(|w| w.name == "map_heavy").unwrap();
        let (mut obj, prog) = w.load_sim();
        for _ in 0..3 {
            let r = obj.run(&prog, &w.packet, Input::default()).unwrap();
            assert_eq!(r.retval as u32, MAP_HEAVY_ACTION);
        }
        let id = obj.map_id("class_stats").unwrap();
        let key = MAP_HEAVY_CLASS.to_le_bytes();
        let per_cpu = obj.runner.maps.lookup_percpu(id, &key).unwrap();
        assert_eq!(class_packets(&per_cpu), 3);
        // An unknown flow passes and lands in class 0.
        let mut other = w.packet.clone();
        other[34] ^= 0xff; // source port
        let r = obj.run(&prog, &other, Input::default()).unwrap();
        assert_eq!(r.retval as u32, XDP_PASS);
        let zero = obj
            .runner
            .maps
            .lookup_percpu(id, &0u32.to_le_bytes())
            .unwrap();
        assert_eq!(class_packets(&zero), 1);
    }

    #[test]
    fn rbpf_runs_the_programs_without_maps() {
        let mut ran = Vec::new();
        for w in all() {
            let Some(code) = w.rbpf_bytecode() else {
                continue;
            };
            let vm = rbpf::EbpfVmMbuff::new(Some(&code)).expect("rbpf accepts the program");
            let mbuff = rbpf_mbuff(&w.packet);
            let r0 = vm.execute_program(&w.packet, &mbuff).expect("rbpf run");
            assert_eq!(r0 as u32, w.expected, "{}", w.name);
            ran.push(w.name);
        }
        assert_eq!(
            ran,
            [
                "empty",
                "loop_xorshift",
                "alu_chains",
                "parse_csum_64",
                "parse_csum_1500"
            ]
        );
    }

    /// The C checksum program against the Rust reference on odd, short and non-IPv4 frames
    /// (the frame end comes from the context, so rbpf's rewritten loads are exercised too).
    #[test]
    fn parse_csum_matches_reference_on_other_frames() {
        let w = &all()[3];
        let code = w.rbpf_bytecode().unwrap();
        let vm = rbpf::EbpfVmMbuff::new(Some(&code)).unwrap();
        let (mut obj, prog) = w.load_sim();
        for len in [42, 43, 65, 99, 1501] {
            let f = udp_frame(len);
            let want = parse_csum_ref(&f) as u32;
            let r = obj.run(&prog, &f, Input::default()).unwrap();
            assert_eq!(r.retval as u32, want, "simulator, len {len}");
            let r0 = vm.execute_program(&f, &rbpf_mbuff(&f)).unwrap();
            assert_eq!(r0 as u32, want, "rbpf, len {len}");
        }
        let mut arp = udp_frame(60);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let r = obj.run(&prog, &arp, Input::default()).unwrap();
        assert_eq!(r.retval as u32, XDP_PASS);
    }
}
