//! The loader on corrupted objects: truncations, bit flips and overwritten fields of the real
//! fixtures must give `Ok` or `Err`, never a panic (or an allocation the size of a bad header
//! field); and whatever loads is still made of valid programs.

use bpfsim_vm::loader::{load_object, ObjectError};
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::Program;
use proptest::prelude::*;

const FIXTURES: &[&str] = &[
    "calls.bpf.o",
    "core.bpf.o",
    "kfunc.bpf.o",
    "globals.bpf.o",
    "linked.o",
    "maps_btf.bpf.o",
    "maps_iproute2.bpf.o",
    "maps_legacy.bpf.o",
    "unsupported.bpf.o",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../test-vectors/loader/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// File ranges worth corrupting: the ELF header, the section header table and every section
/// the loader reads (code, relocations, symbols, strings, BTF, maps, data), not DWARF.
fn interesting_ranges(obj: &[u8]) -> Vec<(usize, usize)> {
    let shoff = u64_at(obj, 0x28) as usize;
    let shnum = u16::from_le_bytes([obj[0x3c], obj[0x3d]]) as usize;
    let shstrndx = u16::from_le_bytes([obj[0x3e], obj[0x3f]]) as usize;
    let mut ranges = vec![(0, 64), (shoff, shnum * 64)];
    let header = |i: usize| &obj[shoff + i * 64..shoff + (i + 1) * 64];
    let strtab = u64_at(header(shstrndx), 0x18) as usize;
    for i in 1..shnum {
        let h = header(i);
        let name_off = u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
        let name: Vec<u8> = obj[strtab + name_off..]
            .iter()
            .take_while(|&&b| b != 0)
            .copied()
            .collect();
        let (off, size) = (u64_at(h, 0x18) as usize, u64_at(h, 0x20) as usize);
        let kind = u32::from_le_bytes(h[4..8].try_into().unwrap());
        if name.windows(6).any(|w| w == b".debug") || kind == 8 || size == 0 {
            continue;
        }
        ranges.push((off, size));
    }
    ranges
}

/// Load, and check what the loader promises about anything it returns.
fn exercise(bytes: &[u8]) {
    let Ok(obj) = load_object(bytes) else { return };
    for p in &obj.programs {
        assert!(
            Program::new(p.insns.clone()).is_ok(),
            "{} loaded but invalid",
            p.name
        );
    }
    for r in &obj.rejected {
        let _ = r.error.to_string();
    }
    let names: Vec<String> = obj.functions().map(|(n, _)| n.to_string()).collect();
    for name in names {
        let _ = obj.find_program(&name);
        if let Ok(p) = obj.function_program(&name, ProgType::Xdp) {
            assert!(Program::new(p.insns).is_ok());
        }
    }
    for (i, m) in obj.maps.iter().enumerate() {
        if let Some(btf) = &obj.btf {
            let _ = btf.type_name(m.btf_key_type_id);
            let _ = btf.type_name(m.btf_value_type_id);
        }
        assert_eq!(obj.map_sources.len(), obj.maps.len(), "map {i}");
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte of an interesting range.
    Flip { range: usize, at: usize, mask: u8 },
    /// Overwrite an aligned u32 of an interesting range with an edge value.
    Word { range: usize, at: usize, value: u32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let edge = prop_oneof![
        Just(0u32),
        Just(1),
        Just(7),
        Just(8),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(u32::MAX),
        any::<u32>(),
    ];
    prop_oneof![
        (any::<usize>(), any::<usize>(), 1u8..=255).prop_map(|(range, at, mask)| Mutation::Flip {
            range,
            at,
            mask
        }),
        (any::<usize>(), any::<usize>(), edge).prop_map(|(range, at, value)| Mutation::Word {
            range,
            at,
            value
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn corrupted_objects_never_panic(
        which in 0..FIXTURES.len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        truncate in proptest::option::weighted(0.1, any::<usize>()),
    ) {
        let mut bytes = fixture(FIXTURES[which]);
        let ranges = interesting_ranges(&bytes);
        for m in mutations {
            match m {
                Mutation::Flip { range, at, mask } => {
                    let (start, len) = ranges[range % ranges.len()];
                    let i = start + at % len;
                    bytes[i] ^= mask;
                }
                Mutation::Word { range, at, value } => {
                    let (start, len) = ranges[range % ranges.len()];
                    if len >= 4 {
                        let i = start + (at % (len / 4)) * 4;
                        bytes[i..i + 4].copy_from_slice(&value.to_le_bytes());
                    }
                }
            }
        }
        if let Some(n) = truncate {
            bytes.truncate(n % (bytes.len() + 1));
        }
        exercise(&bytes);
    }
}

#[test]
fn every_truncation_is_an_error_or_a_valid_object() {
    for name in FIXTURES {
        let bytes = fixture(name);
        for len in (0..bytes.len()).step_by(8) {
            exercise(&bytes[..len]);
        }
    }
}

#[test]
fn fixtures_themselves_load_cleanly() {
    for name in FIXTURES {
        let obj = load_object(&fixture(name)).unwrap();
        // These refuse some programs on purpose (unsupported features, a missing attach
        // target or kfunc, or no kernel BTF on the machine).
        if !["unsupported.bpf.o", "core.bpf.o", "kfunc.bpf.o"].contains(name) {
            let errors: Vec<&ObjectError> = obj.rejected.iter().map(|r| &r.error).collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
    }
}
