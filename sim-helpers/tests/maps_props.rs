//! Property tests: simulated maps against simple models over random operation sequences.

use std::collections::{HashMap, VecDeque};

use bpfsim_helpers::maps::*;
use bpfsim_vm::spec::{MapDef, MapType};
use proptest::prelude::*;

fn def(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32, flags: u32) -> MapDef {
    MapDef {
        name: "prop".into(),
        map_type,
        key_size,
        value_size,
        max_entries,
        flags,
        inner: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    }
}

#[derive(Clone, Debug)]
enum HashOp {
    Update(u32, u64, u64),
    Delete(u32),
    Lookup(u32),
    NextKey(Option<u32>),
}

fn hash_op() -> impl Strategy<Value = HashOp> {
    let key = 0u32..12;
    // Mostly valid flags, sometimes BPF_F_LOCK or an unknown bit (both EINVAL here).
    let flags = prop_oneof![8 => 0u64..3, 1 => Just(BPF_F_LOCK), 1 => Just(8u64)];
    prop_oneof![
        4 => (key.clone(), any::<u64>(), flags).prop_map(|(k, v, f)| HashOp::Update(k, v, f)),
        2 => key.clone().prop_map(HashOp::Delete),
        2 => key.clone().prop_map(HashOp::Lookup),
        1 => proptest::option::of(key).prop_map(HashOp::NextKey),
    ]
}

/// The reference: a std HashMap with a capacity, plus the insertion order the simulator
/// promises for iteration.
struct Model {
    cap: usize,
    values: HashMap<u32, u64>,
    order: Vec<u32>,
}

impl Model {
    fn update(&mut self, k: u32, v: u64, flags: u64) -> Result<(), Errno> {
        if flags > BPF_EXIST {
            return Err(Errno::EINVAL);
        }
        let exists = self.values.contains_key(&k);
        match flags {
            BPF_NOEXIST if exists => return Err(Errno::EEXIST),
            BPF_EXIST if !exists => return Err(Errno::ENOENT),
            _ => {}
        }
        if !exists {
            if self.values.len() == self.cap {
                return Err(Errno::E2BIG);
            }
            self.order.push(k);
        }
        self.values.insert(k, v);
        Ok(())
    }

    fn delete(&mut self, k: u32) -> Result<(), Errno> {
        self.values.remove(&k).ok_or(Errno::ENOENT)?;
        self.order.retain(|&x| x != k);
        Ok(())
    }

    fn next_key(&self, k: Option<u32>) -> Result<u32, Errno> {
        let pos = k.and_then(|k| self.order.iter().position(|&x| x == k));
        let next = match pos {
            Some(i) => self.order.get(i + 1),
            None => self.order.first(),
        };
        next.copied().ok_or(Errno::ENOENT)
    }
}

fn key_u32(k: &[u8]) -> u32 {
    u32::from_le_bytes(k.try_into().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hash_behaves_like_a_hashmap_with_a_capacity(
        cap in 1u32..8,
        ncpus in 1u32..4,
        ops in proptest::collection::vec(hash_op(), 1..200),
    ) {
        let mut maps = Maps::new(ncpus);
        let id = maps.create(&def(MapType::Hash, 4, 8, cap, 0)).unwrap();
        let mut model = Model { cap: cap as usize, values: HashMap::new(), order: Vec::new() };
        for (step, op) in ops.iter().enumerate() {
            // Alternate host and program paths, and the CPU the program runs on.
            let cpu = step as u32 % ncpus;
            match *op {
                HashOp::Update(k, v, flags) => {
                    let got = if step % 2 == 0 {
                        maps.update(id, &k.to_le_bytes(), &v.to_le_bytes(), flags).map_err(|e| e.errno())
                    } else {
                        let map = maps.get_mut(id).unwrap();
                        map.update(&k.to_le_bytes(), &v.to_le_bytes(), flags, cpu).map_err(|e| e.errno)
                    };
                    prop_assert_eq!(got, model.update(k, v, flags), "{:?}", op);
                }
                HashOp::Delete(k) => {
                    let got = maps.delete(id, &k.to_le_bytes()).map_err(|e| e.errno());
                    prop_assert_eq!(got, model.delete(k));
                }
                HashOp::Lookup(k) => {
                    let want = model.values.get(&k).map(|v| v.to_le_bytes().to_vec());
                    prop_assert_eq!(maps.lookup(id, &k.to_le_bytes()).ok(), want.clone());
                    // The program's view through the arena agrees.
                    let map = maps.get_mut(id).unwrap();
                    let seen = map.lookup(&k.to_le_bytes(), cpu).map(|off| map.arena(cpu)[off..off + 8].to_vec());
                    prop_assert_eq!(seen, want);
                }
                HashOp::NextKey(k) => {
                    let key = k.map(u32::to_le_bytes);
                    let got = maps.get_next_key(id, key.as_ref().map(|k| &k[..]));
                    prop_assert_eq!(got.map(|k| key_u32(&k)).map_err(|e| e.errno()), model.next_key(k));
                }
            }
        }
        let keys: Vec<u32> = maps.keys(id).unwrap().iter().map(|k| key_u32(k)).collect();
        prop_assert_eq!(keys, model.order.clone());
        for (k, v) in maps.entries(id).unwrap() {
            prop_assert_eq!(Some(&u64::from_le_bytes(v.try_into().unwrap())), model.values.get(&key_u32(&k)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LPM against brute force over 16-bit keys (dense, so prefixes overlap a lot).

fn lpm_key(len: u32, bits: u16) -> Vec<u8> {
    [&len.to_le_bytes()[..], &bits.to_be_bytes()].concat()
}

fn matches(prefix_len: u32, prefix: u16, len: u32, addr: u16) -> bool {
    prefix_len <= len && (prefix_len == 0 || (prefix ^ addr) >> (16 - prefix_len) == 0)
}

fn masked(len: u32, bits: u16) -> u16 {
    if len == 0 {
        0
    } else {
        bits & (u16::MAX << (16 - len))
    }
}

/// The kernel's post-order, computed by walking the binary tree of prefixes (children 0 then 1,
/// then the node itself), independently of the implementation's comparison.
fn post_order(present: &[(u32, u16)]) -> Vec<(u32, u16)> {
    fn walk(len: u32, bits: u16, present: &[(u32, u16)], out: &mut Vec<(u32, u16)>) {
        let below = |p: &&(u32, u16)| p.0 > len && masked(len, p.1) == bits;
        if len < 16 && present.iter().any(|p| below(&p)) {
            walk(len + 1, bits, present, out);
            walk(len + 1, bits | (1 << (15 - len)), present, out);
        }
        if present.contains(&(len, bits)) {
            out.push((len, bits));
        }
    }
    let mut out = Vec::new();
    walk(0, 0, present, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn lpm_matches_brute_force(
        inserts in proptest::collection::vec((0u32..=16, any::<u16>(), any::<bool>()), 1..40),
        probes in proptest::collection::vec((0u32..=18, any::<u16>()), 1..60),
    ) {
        let mut maps = Maps::new(1);
        let id = maps.create(&def(MapType::LpmTrie, 6, 4, 24, BPF_F_NO_PREALLOC)).unwrap();
        // Model: identity (len, masked bits) -> value.
        let mut model: Vec<((u32, u16), u32)> = Vec::new();
        for (i, &(len, bits, delete)) in inserts.iter().enumerate() {
            let ident = (len, masked(len, bits));
            let pos = model.iter().position(|(p, _)| *p == ident);
            if delete {
                let got = maps.delete(id, &lpm_key(len, bits)).map_err(|e| e.errno());
                prop_assert_eq!(got.is_ok(), pos.is_some());
                if let Some(p) = pos {
                    model.remove(p);
                }
                continue;
            }
            let got = maps.update(id, &lpm_key(len, bits), &(i as u32).to_le_bytes(), BPF_ANY);
            match pos {
                Some(p) => { got.unwrap(); model[p].1 = i as u32; }
                None if model.len() == 24 => prop_assert_eq!(got.unwrap_err().errno(), Errno::ENOSPC),
                None => { got.unwrap(); model.push((ident, i as u32)); }
            }
        }
        for &(len, addr) in &probes {
            let want = if len > 16 {
                None
            } else {
                model
                    .iter()
                    .filter(|((pl, p), _)| matches(*pl, *p, len, addr))
                    .max_by_key(|((pl, _), _)| *pl)
                    .map(|(_, v)| v.to_le_bytes().to_vec())
            };
            prop_assert_eq!(maps.lookup(id, &lpm_key(len, addr)).ok(), want);
        }
        let present: Vec<(u32, u16)> = model.iter().map(|(p, _)| *p).collect();
        let walked: Vec<(u32, u16)> = maps
            .keys(id)
            .unwrap()
            .iter()
            .map(|k| {
                let len = u32::from_le_bytes(k[..4].try_into().unwrap());
                (len, masked(len, u16::from_be_bytes([k[4], k[5]])))
            })
            .collect();
        prop_assert_eq!(walked, post_order(&present));
    }

    /// Data of 1 to 20 bytes: both sides of the 16-byte line where lookups leave the byte-key
    /// index for a 128-bit number, against a bitwise model. Bytes come from a small alphabet
    /// so that prefixes overlap.
    #[test]
    fn lpm_wide_keys_match_brute_force(
        ds in prop_oneof![Just(1usize), Just(4), Just(15), Just(16), Just(17), Just(20)],
        inserts in proptest::collection::vec(
            (0u32..=170, proptest::collection::vec(prop_oneof![Just(0u8), Just(0xff), Just(0x80)], 20), any::<bool>()),
            1..40,
        ),
        probes in proptest::collection::vec(
            (0u32..=170, proptest::collection::vec(prop_oneof![Just(0u8), Just(0xff), Just(0x80), Just(0x7f)], 20)),
            1..60,
        ),
    ) {
        let max = 8 * ds as u32;
        let key = |len: u32, data: &[u8]| [&len.to_le_bytes()[..], &data[..ds]].concat();
        let bit = |d: &[u8], i: u32| d[i as usize / 8] >> (7 - i % 8) & 1;
        let same = |a: &[u8], b: &[u8], len: u32| (0..len).all(|i| bit(a, i) == bit(b, i));
        let mut maps = Maps::new(1);
        let id = maps
            .create(&def(MapType::LpmTrie, 4 + ds as u32, 4, 24, BPF_F_NO_PREALLOC))
            .unwrap();
        let mut model: Vec<(u32, Vec<u8>, u32)> = Vec::new();
        for (i, (len, data, delete)) in inserts.iter().enumerate() {
            let len = len % (max + 2);
            let got = if *delete {
                maps.delete(id, &key(len, data)).map_err(|e| e.errno())
            } else {
                maps.update(id, &key(len, data), &(i as u32).to_le_bytes(), BPF_ANY)
                    .map_err(|e| e.errno())
            };
            if len > max {
                prop_assert_eq!(got, Err(Errno::EINVAL));
                continue;
            }
            let pos = model.iter().position(|(l, d, _)| *l == len && same(d, data, len));
            match (delete, pos) {
                (true, Some(p)) => { prop_assert_eq!(got, Ok(())); model.remove(p); }
                (true, None) => prop_assert_eq!(got, Err(Errno::ENOENT)),
                (false, Some(p)) => { prop_assert_eq!(got, Ok(())); model[p].2 = i as u32; }
                (false, None) if model.len() == 24 => prop_assert_eq!(got, Err(Errno::ENOSPC)),
                (false, None) => { prop_assert_eq!(got, Ok(())); model.push((len, data.clone(), i as u32)); }
            }
        }
        for (len, data) in &probes {
            let len = len % (max + 2);
            let want = if len > max {
                None
            } else {
                model
                    .iter()
                    .filter(|(l, d, _)| *l <= len && same(d, data, *l))
                    .max_by_key(|(l, _, _)| *l)
                    .map(|(_, _, v)| v.to_le_bytes().to_vec())
            };
            prop_assert_eq!(maps.lookup(id, &key(len, data)).ok(), want);
        }
        prop_assert_eq!(maps.keys(id).unwrap().len(), model.len());
        maps.clear(id).unwrap();
        for (len, data) in &probes {
            prop_assert!(maps.lookup(id, &key(len % (max + 1), data)).is_err());
        }
    }

    #[test]
    fn queue_and_stack_behave_like_a_deque(
        stack in any::<bool>(),
        cap in 1u32..6,
        ops in proptest::collection::vec((0u8..4, any::<u32>()), 1..100),
    ) {
        let t = if stack { MapType::Stack } else { MapType::Queue };
        let mut maps = Maps::new(1);
        let id = maps.create(&def(t, 0, 4, cap, 0)).unwrap();
        let mut model: VecDeque<u32> = VecDeque::new();
        for &(op, v) in &ops {
            match op {
                0 | 1 => {
                    let flags = if op == 1 { BPF_EXIST } else { BPF_ANY };
                    let got = maps.push(id, &v.to_le_bytes(), flags).map_err(|e| e.errno());
                    if model.len() == cap as usize && flags == BPF_ANY {
                        prop_assert_eq!(got, Err(Errno::E2BIG));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        if model.len() == cap as usize {
                            model.pop_front();
                        }
                        model.push_back(v);
                    }
                }
                2 => {
                    let want = if stack { model.pop_back() } else { model.pop_front() };
                    let got = maps.pop(id).ok().map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                    prop_assert_eq!(got, want);
                }
                _ => {
                    let want = if stack { model.back() } else { model.front() };
                    let got = maps.peek(id).ok().map(|b| u32::from_le_bytes(b.try_into().unwrap()));
                    prop_assert_eq!(got, want.copied());
                }
            }
        }
    }
}
