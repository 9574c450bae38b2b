//! Hash map lookups (HASH, LRU_HASH, PERCPU_HASH, LRU_PERCPU_HASH; 4-, 13- and 20-byte keys;
//! empty maps and filled ones, hits and misses) under the interpreter and the JIT, whose
//! lookups take the direct path with the key's bytes (`Host::map_lookup_key`): the same
//! verdicts, the same map contents afterwards (the LRU's evictions follow the reference marks
//! lookups leave), per-CPU values on the run's CPU only, and a test's override of the helper
//! answering every lookup.

use bpfsim_helpers::object::{Engine, LoadedObject};
use bpfsim_helpers::run::Input;
use bpfsim_helpers::Env;
use bpfsim_jit::LookupPath;

const OBJ: &[u8] = include_bytes!("../../test-vectors/progs/hash_lookups.bpf.o");
const PROG: &str = "xdp_hash_lookups";

/// An Ethernet + IPv4 + UDP frame from `10.0.0.src` to `10.0.0.dst`, ports `sport -> dport`.
fn udp(src: u8, dst: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, src, 10, 0, 0, dst]);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 8, 0, 0]);
    f
}

fn arp() -> Vec<u8> {
    let mut f = vec![0xffu8; 12];
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0u8; 28]);
    f
}

/// Six flows from three sources, older flows seen again between new ones: with four LRU
/// entries, which flows the fifth and sixth evict depends on the reference marks the lookups
/// of the repeated ones left.
fn packets() -> Vec<(Vec<u8>, u32)> {
    vec![
        (udp(1, 9, 1000, 53), 1),
        (udp(1, 9, 1000, 53), 1),
        (udp(2, 9, 1001, 53), 1),
        (udp(1, 9, 1002, 53), 1),
        (arp(), 1),
        (udp(3, 9, 1003, 53), 3),
        (udp(1, 9, 1000, 53), 1),
        (udp(2, 9, 1004, 53), 1),
        (udp(3, 9, 1003, 53), 1),
        (udp(1, 9, 1005, 53), 2),
        (udp(2, 9, 1001, 53), 1),
        (udp(1, 9, 1000, 53), 1),
    ]
}

type Maps = Vec<(String, Vec<(Vec<u8>, Vec<Vec<u8>>)>)>;

/// Every packet's verdict (one per run of a batch's last run), and every map's entries in
/// iteration order, each value on each CPU.
fn run(engine: Engine, override_lookup: bool) -> (Vec<u64>, Maps) {
    let env = Env {
        cpu: 1,
        ncpus: 3,
        ..Env::default()
    };
    let mut obj = LoadedObject::load(OBJ, env).unwrap();
    let prog = obj.program(PROG, None).unwrap();
    if engine == Engine::Jit {
        // The lookups the test is about take the JIT's direct path.
        let keyed = prog
            .jit_hints()
            .lookup
            .iter()
            .filter(|l| **l == Some(LookupPath::Key))
            .count();
        assert!(keyed >= 5, "{keyed} keyed lookups");
    }
    if override_lookup {
        obj.runner.override_helper(1, |_, _| Ok(0));
    }
    let verdicts = packets()
        .into_iter()
        .map(|(p, repeat)| {
            obj.run_engine(&prog, &p, Input::default(), repeat, engine)
                .unwrap()
                .retval
        })
        .collect();
    let maps = [
        "by_src",
        "flows",
        "per_proto",
        "by_wide",
        "recent_src",
        "never",
    ]
    .iter()
    .map(|name| {
        let id = obj.map_id(name).unwrap();
        let maps = &obj.runner.maps;
        let entries = match maps.entries_percpu(id) {
            Ok(e) => e,
            Err(_) => maps
                .entries(id)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, vec![v]))
                .collect(),
        };
        (name.to_string(), entries)
    })
    .collect();
    (verdicts, maps)
}

fn entries<'a>(maps: &'a Maps, name: &str) -> &'a [(Vec<u8>, Vec<Vec<u8>>)] {
    &maps.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn engines_agree_on_hits_misses_evictions_and_per_cpu_values() {
    let (iv, im) = run(Engine::Interp, false);
    let (jv, jm) = run(Engine::Jit, false);
    assert_eq!(jv, iv);
    assert_eq!(jm, im);
    // The run exercised what it is meant to: misses on new keys (1), one hit (2), two (3),
    // non-IPv4 passing (2), an LRU that evicted. The fifth flow (1004) evicts 1001, the one
    // flow no lookup found again (1000 and 1003 were found, 1002 is newer), so 1001 misses
    // when it comes back (2) while 1003 and 1000 still hit (3). The kernel agrees on these
    // packets (each batch as single runs) and on the maps after them: `bpfsim compare
    // hash_lookups.bpf.o --packet ...`.
    assert_eq!(iv, [1, 3, 1, 2, 2, 3, 3, 2, 3, 3, 2, 3]);
    assert_eq!(entries(&im, "by_src").len(), 3);
    assert_eq!(entries(&im, "flows").len(), 4);
    assert_eq!(entries(&im, "by_wide").len(), 6);
    assert!(entries(&im, "never").is_empty());
    // Per-CPU bytes: all on the run's CPU (1), none on the others.
    let per_proto = entries(&im, "per_proto");
    assert_eq!(per_proto.len(), 1);
    let bytes: Vec<u64> = per_proto[0]
        .1
        .iter()
        .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()))
        .collect();
    assert_eq!(bytes, [0, 14 * 42, 0]);
    // The per-CPU LRU of two sources kept two of the three, counted on CPU 1 only.
    let recent = entries(&im, "recent_src");
    assert_eq!(recent.len(), 2);
    for (_, values) in recent {
        assert_eq!(values[0], [0; 8]);
        assert_ne!(values[1], [0; 8]);
        assert_eq!(values[2], [0; 8]);
    }
}

#[test]
fn an_override_of_the_lookup_answers_every_lookup_under_each_engine() {
    let (iv, im) = run(Engine::Interp, true);
    let (jv, jm) = run(Engine::Jit, true);
    assert_eq!(jv, iv);
    assert_eq!(jm, im);
    // Every lookup misses: IPv4 frames drop (no hit), the ARP frame passes.
    assert_eq!(iv, [1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1]);
    // Each key inserted once (later inserts find it there: BPF_NOEXIST), the counts never
    // incremented.
    for (_, values) in entries(&im, "by_src") {
        assert_eq!(values[0][..8], 1u64.to_le_bytes());
    }
}
