//! Semantics of every simulated map type, with the errno of each failure as Linux returns it.
//! (The numbers were taken from a 6.18 kernel; `maps_kernel.rs` re-checks many of them live.)

use bpfsim_helpers::maps::*;
use bpfsim_vm::spec::{MapDef, MapType};

fn def(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32, flags: u32) -> MapDef {
    MapDef {
        name: format!("test_{}", map_type.name()),
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

fn k(i: u32) -> [u8; 4] {
    i.to_le_bytes()
}

fn u64v(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// The errno of a host operation's result.
fn errno<T: std::fmt::Debug>(r: Result<T, MapError>) -> Errno {
    r.expect_err("expected an error").errno()
}

fn op_errno<T: std::fmt::Debug>(r: Result<T, OpError>) -> Errno {
    r.expect_err("expected an error").errno
}

fn create(maps: &mut Maps, d: MapDef) -> MapId {
    maps.create(&d).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Creation

#[test]
fn creation_follows_the_kernels_alloc_checks() {
    use MapType::*;
    let nopre = BPF_F_NO_PREALLOC;
    let cases: &[(MapDef, Option<Errno>)] = &[
        (def(Hash, 4, 8, 16, 0), None),
        (def(Hash, 4, 8, 0, 0), Some(Errno::EINVAL)),
        (def(Hash, 0, 8, 16, 0), Some(Errno::EINVAL)),
        (def(Hash, 4, 0, 16, 0), Some(Errno::EINVAL)),
        (def(Hash, 513, 4, 4, 0), None),
        (def(Hash, 8, (4 << 20) - 56, 4, nopre), Some(Errno::E2BIG)),
        (def(Hash, 8, (4 << 20) - 57, 4, nopre), None),
        (def(Hash, 4, 4, 1 << 27, nopre), None),
        (def(Hash, 4, 4, (1 << 27) + 1, nopre), Some(Errno::E2BIG)),
        (def(Hash, 4, 4, 4, BPF_F_NO_COMMON_LRU), Some(Errno::EINVAL)),
        (def(Hash, 4, 4, 4, BPF_F_MMAPABLE), Some(Errno::EINVAL)),
        (def(Hash, 4, 4, 4, BPF_F_INNER_MAP), Some(Errno::EINVAL)),
        (
            def(Hash, 4, 4, 4, BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG),
            Some(Errno::EINVAL),
        ),
        (
            def(Hash, 4, 4, 4, BPF_F_RDONLY | BPF_F_WRONLY),
            Some(Errno::EINVAL),
        ),
        (def(Hash, 4, 4, 4, BPF_F_ZERO_SEED | BPF_F_NUMA_NODE), None),
        (def(PercpuHash, 4, 32768, 4, 0), None),
        (def(PercpuHash, 4, 32769, 4, 0), Some(Errno::E2BIG)),
        (
            def(PercpuHash, 4, 4, 4, BPF_F_NUMA_NODE),
            Some(Errno::EINVAL),
        ),
        (def(LruHash, 4, 4, 4, nopre), Some(Errno::ENOTSUPP)),
        (def(LruHash, 4, 4, 4, BPF_F_NO_COMMON_LRU), None),
        (def(LruPercpuHash, 4, 4, 1, BPF_F_NO_COMMON_LRU), None),
        (def(Array, 4, 4, 4, 0), None),
        (def(Array, 8, 4, 4, 0), Some(Errno::EINVAL)),
        (def(Array, 4, 0, 4, 0), Some(Errno::EINVAL)),
        (def(Array, 4, 4, 4, nopre), Some(Errno::EINVAL)),
        (def(Array, 4, 4, 4, BPF_F_MMAPABLE | BPF_F_INNER_MAP), None),
        (
            def(Array, 4, 4, 4, BPF_F_PRESERVE_ELEMS),
            Some(Errno::EINVAL),
        ),
        (def(Array, 4, 1 << 31, 1, 0), Some(Errno::E2BIG)),
        (def(Array, 4, 4, u32::MAX, 0), Some(Errno::ENOMEM)),
        (
            def(PercpuArray, 4, 4, 4, BPF_F_MMAPABLE),
            Some(Errno::EINVAL),
        ),
        (def(PercpuArray, 4, 32769, 4, 0), Some(Errno::E2BIG)),
        (def(ProgArray, 4, 8, 4, 0), Some(Errno::EINVAL)),
        (
            def(ProgArray, 4, 4, 4, BPF_F_RDONLY_PROG),
            Some(Errno::EINVAL),
        ),
        (def(PerfEventArray, 4, 4, 0, 0), Some(Errno::EINVAL)),
        (def(PerfEventArray, 4, 4, 4, BPF_F_PRESERVE_ELEMS), None),
        (def(LpmTrie, 8, 4, 4, 0), Some(Errno::EINVAL)),
        (def(LpmTrie, 4, 4, 4, nopre), Some(Errno::EINVAL)),
        (def(LpmTrie, 5, 4, 4, nopre), None),
        (def(LpmTrie, 260, 4, 4, nopre), None),
        (def(LpmTrie, 261, 4, 4, nopre), Some(Errno::EINVAL)),
        (def(LpmTrie, 8, 0, 4, nopre), Some(Errno::EINVAL)),
        (def(LpmTrie, 8, 4_194_024, 1, nopre), None),
        (def(LpmTrie, 8, 4_194_025, 1, nopre), Some(Errno::EINVAL)),
        (def(Queue, 4, 4, 4, 0), Some(Errno::EINVAL)),
        (def(Queue, 0, 0, 4, 0), Some(Errno::EINVAL)),
        (def(Queue, 0, 4, 0, 0), Some(Errno::EINVAL)),
        (def(Queue, 0, 4, 4, nopre), Some(Errno::EINVAL)),
        (def(Stack, 0, 4 << 20, 1, 0), None),
        (def(Stack, 0, (4 << 20) + 1, 1, 0), Some(Errno::E2BIG)),
        (def(Ringbuf, 0, 0, 4096, 0), None),
        (def(Ringbuf, 0, 0, 2048, 0), Some(Errno::EINVAL)),
        (def(Ringbuf, 0, 0, 3 * 4096, 0), Some(Errno::EINVAL)),
        (def(Ringbuf, 4, 0, 4096, 0), Some(Errno::EINVAL)),
        (def(Ringbuf, 0, 0, 4096, BPF_F_RDONLY), Some(Errno::EINVAL)),
        (def(Ringbuf, 0, 0, 0, 0), Some(Errno::EINVAL)),
        (def(Devmap, 4, 8, 4, 0), None),
        (def(Devmap, 4, 12, 4, 0), Some(Errno::EINVAL)),
        (def(Devmap, 8, 4, 4, 0), Some(Errno::EINVAL)),
        (def(Devmap, 4, 4, 4, BPF_F_RDONLY_PROG), Some(Errno::EINVAL)),
        (def(Devmap, 4, 4, 4, nopre), Some(Errno::EINVAL)),
        (def(DevmapHash, 4, 4, 1 << 20, 0), None),
        (def(DevmapHash, 4, 4, (1 << 31) + 1, 0), Some(Errno::EINVAL)),
        (def(Cpumap, 4, 4, 8192, 0), None),
        (def(Cpumap, 4, 4, 8193, 0), Some(Errno::E2BIG)),
        (def(Cpumap, 4, 12, 4, 0), Some(Errno::EINVAL)),
        (def(Cpumap, 4, 4, 4, BPF_F_RDONLY), Some(Errno::EINVAL)),
        (def(Xskmap, 4, 8, 4, 0), Some(Errno::EINVAL)),
        (def(Xskmap, 4, 4, 4, BPF_F_RDONLY), None),
        (def(Xskmap, 4, 4, 4, BPF_F_RDONLY_PROG), Some(Errno::EINVAL)),
        (def(StackTrace, 4, 8, 4, 0), Some(Errno::ENOTSUPP)),
        (def(Unspec, 4, 4, 4, 0), Some(Errno::EINVAL)),
        // Simulator limit: each arena is one guest region, addressed by 32 bits (the kernel
        // accepts these two).
        (def(Ringbuf, 0, 0, 1 << 31, 0), Some(Errno::ENOMEM)),
        (def(DevmapHash, 4, 4, 1 << 31, 0), Some(Errno::ENOMEM)),
        // ...and each map's buffers (keys included) stay within a budget instead of aborting
        // the process on an allocation the machine cannot back.
        (
            def(Hash, (4 << 20) - 100, 8, 1 << 20, nopre),
            Some(Errno::ENOMEM),
        ),
        (def(LpmTrie, 260, 8, 1 << 28, nopre), Some(Errno::ENOMEM)),
    ];
    let mut maps = Maps::new(2);
    for (d, want) in cases {
        let got = maps.create(d).err().map(|e| e.errno());
        assert_eq!(got, *want, "{d:?}");
    }
}

#[test]
fn creation_errors_name_the_map_and_the_rule() {
    let mut maps = Maps::new(1);
    let mut d = def(MapType::LpmTrie, 8, 4, 16, 0);
    d.name = "routes".into();
    let e = maps.create(&d).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot create map `routes` (lpm_trie): EINVAL: the map type requires BPF_F_NO_PREALLOC"
    );
    let e = maps
        .create(&def(MapType::Array, 8, 4, 4, 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("key_size 8 is invalid: must be 4"), "{e}");
    let e = maps
        .create(&def(MapType::Hash, 1 << 20, 8, 1 << 20, BPF_F_NO_PREALLOC))
        .unwrap_err()
        .to_string();
    assert!(e.contains("over the simulator's 4 GiB per map"), "{e}");
}

#[test]
fn ids_names_and_ncpus() {
    let mut maps = Maps::new(0);
    assert_eq!(maps.ncpus(), 1, "at least one CPU");
    let a = create(&mut maps, def(MapType::Array, 4, 4, 1, 0));
    let mut d = def(MapType::Hash, 4, 4, 1, 0);
    d.name = "flows".into();
    let h = create(&mut maps, d);
    assert_eq!((a, h), (MapId(1), MapId(2)));
    assert_eq!(maps.by_name("flows"), Some(h));
    assert_eq!(errno(maps.lookup(MapId(9), &k(0))), Errno::EBADF);
    assert!(maps.get(MapId(0)).is_none());
}

// ---------------------------------------------------------------------------------------------
// HASH

#[test]
fn hash_update_flags_and_errnos() {
    let mut maps = Maps::new(1);
    let h = create(&mut maps, def(MapType::Hash, 4, 8, 2, 0));
    assert_eq!(
        errno(maps.update(h, &k(1), &u64v(1), BPF_EXIST)),
        Errno::ENOENT
    );
    maps.update(h, &k(1), &u64v(1), BPF_NOEXIST).unwrap();
    assert_eq!(
        errno(maps.update(h, &k(1), &u64v(2), BPF_NOEXIST)),
        Errno::EEXIST
    );
    maps.update(h, &k(1), &u64v(3), BPF_EXIST).unwrap();
    maps.update(h, &k(2), &u64v(4), BPF_ANY).unwrap();
    assert_eq!(
        errno(maps.update(h, &k(3), &u64v(5), BPF_ANY)),
        Errno::E2BIG
    );
    assert_eq!(
        errno(maps.update(h, &k(3), &u64v(5), BPF_EXIST)),
        Errno::ENOENT
    );
    // Replacing an existing key in a full map works (the spare element takes it).
    maps.update(h, &k(2), &u64v(6), BPF_ANY).unwrap();
    assert_eq!(maps.lookup(h, &k(2)).unwrap(), u64v(6));
    for bad in [3, 8, BPF_F_LOCK, BPF_F_LOCK | 3] {
        assert_eq!(
            errno(maps.update(h, &k(1), &u64v(0), bad)),
            Errno::EINVAL,
            "{bad}"
        );
    }
    assert_eq!(errno(maps.delete(h, &k(9))), Errno::ENOENT);
    assert_eq!(errno(maps.lookup(h, &k(9))), Errno::ENOENT);
    maps.delete(h, &k(1)).unwrap();
    assert_eq!(errno(maps.delete(h, &k(1))), Errno::ENOENT);
}

#[test]
fn wrong_sizes_are_typed_errors() {
    let mut maps = Maps::new(1);
    let h = create(&mut maps, def(MapType::Hash, 4, 8, 2, 0));
    let e = maps.update(h, &[1, 2, 3], &u64v(0), 0).unwrap_err();
    assert_eq!(
        e.op_error().unwrap().reason,
        Reason::KeySize {
            expected: 4,
            got: 3
        }
    );
    assert_eq!(e.errno(), Errno::EINVAL);
    let e = maps.update(h, &k(1), &[0; 7], 0).unwrap_err();
    assert_eq!(
        e.op_error().unwrap().reason,
        Reason::ValueSize {
            expected: 8,
            got: 7
        }
    );
    assert_eq!(errno(maps.lookup(h, &[0; 5])), Errno::EINVAL);
    assert_eq!(errno(maps.delete(h, &[])), Errno::EINVAL);
    assert_eq!(errno(maps.get_next_key(h, Some(&[0; 2]))), Errno::EINVAL);
    // A program lookup with a wrong-size key simply finds nothing.
    assert_eq!(maps.get_mut(h).unwrap().lookup(&[1], 0), None);
}

#[test]
fn no_operation_panics_on_any_key_or_value_size() {
    use MapType::*;
    let mut maps = Maps::new(2);
    let mut inner = def(Array, 4, 4, 1, 0);
    inner.name = "inner".into();
    let inner_id = create(&mut maps, inner.clone());
    let nopre = BPF_F_NO_PREALLOC;
    let mut defs = vec![
        def(Hash, 4, 8, 4, 0),
        def(PercpuHash, 4, 8, 4, 0),
        def(LruHash, 4, 8, 4, 0),
        def(LruPercpuHash, 4, 8, 4, BPF_F_NO_COMMON_LRU),
        def(Array, 4, 8, 4, 0),
        def(PercpuArray, 4, 8, 4, 0),
        def(ProgArray, 4, 4, 4, 0),
        def(PerfEventArray, 4, 4, 4, 0),
        def(LpmTrie, 8, 8, 4, nopre),
        def(Queue, 0, 8, 4, 0),
        def(Stack, 0, 8, 4, 0),
        def(Ringbuf, 0, 0, 4096, 0),
        def(Devmap, 4, 8, 4, 0),
        def(DevmapHash, 4, 8, 4, 0),
        def(Cpumap, 4, 8, 4, 0),
        def(Xskmap, 4, 4, 4, 0),
    ];
    for t in [ArrayOfMaps, HashOfMaps] {
        let mut d = def(t, 4, 4, 4, 0);
        d.inner = Some(Box::new(inner.clone()));
        defs.push(d);
    }
    let sizes = [0usize, 1, 3, 4, 5, 7, 8, 9, 16, 300];
    for d in defs {
        let id = create(&mut maps, d.clone());
        for &ks in &sizes {
            for &vs in &sizes {
                let key = vec![0x11u8; ks];
                let mut value = vec![0x22u8; vs];
                if vs >= 4 {
                    value[..4].copy_from_slice(&inner_id.0.to_le_bytes());
                }
                for flags in [0, 1, 2, 4, 7] {
                    let _ = maps.update(id, &key, &value, flags);
                }
                let _ = maps.update_percpu(id, &key, &[value.clone(), value.clone()], 0);
                let _ = maps.lookup(id, &key);
                let _ = maps.lookup_percpu(id, &key);
                let _ = maps.get_next_key(id, Some(&key));
                let _ = maps.get_next_key(id, None);
                let _ = maps.delete(id, &key);
                let _ = maps.push(id, &value, 0);
                let _ = maps.pop(id);
                let _ = maps.peek(id);
                let map = maps.get_mut(id).unwrap();
                let _ = map.lookup(&key, 1);
                let _ = map.update(&key, &value, 0, 1);
                let _ = map.update(&key, &value, 0, 7);
                let _ = map.delete(&key);
                let mut out = vec![0u8; vs];
                let _ = map.state_mut().pop(&mut out);
                let _ = map.state().get_next_key(Some(&key), &mut out);
                let _ = map.ringbuf_reserve(vs as u64, 0);
                let _ = map.ringbuf_submit(vs, 0);
                let _ = map.ringbuf_output(&value, 0);
                if let Some(p) = map.state_mut().perf_mut() {
                    let _ = p.output(ks as u64, 1, &value);
                }
            }
        }
        let _ = maps.entries(id);
        let _ = maps.entries_percpu(id);
        let _ = maps.ringbuf_consume(id);
        let _ = maps.perf_drain(id);
        maps.clear(id).unwrap();
    }
}

#[test]
fn hash_get_next_key_follows_insertion_order_like_the_kernels_protocol() {
    let mut maps = Maps::new(1);
    let h = create(&mut maps, def(MapType::Hash, 4, 4, 8, 0));
    assert_eq!(errno(maps.get_next_key(h, None)), Errno::ENOENT);
    for i in [5, 3, 9, 1] {
        maps.update(h, &k(i), &k(i), 0).unwrap();
    }
    assert_eq!(maps.get_next_key(h, None).unwrap(), k(5));
    assert_eq!(maps.get_next_key(h, Some(&k(3))).unwrap(), k(9));
    assert_eq!(errno(maps.get_next_key(h, Some(&k(1)))), Errno::ENOENT);
    // A key not in the map restarts the walk, as in the kernel.
    assert_eq!(maps.get_next_key(h, Some(&k(77))).unwrap(), k(5));
    // Updating keeps the position; deleting and re-adding moves to the end.
    maps.update(h, &k(3), &k(33), 0).unwrap();
    maps.delete(h, &k(5)).unwrap();
    maps.update(h, &k(5), &k(55), 0).unwrap();
    let keys: Vec<_> = maps.keys(h).unwrap();
    assert_eq!(keys, [k(3), k(9), k(1), k(5)].map(|a| a.to_vec()));
    let entries = maps.entries(h).unwrap();
    assert_eq!(entries[0], (k(3).to_vec(), k(33).to_vec()));
}

#[test]
fn hash_values_live_in_a_stable_arena_with_kernel_pointer_semantics() {
    let mut maps = Maps::new(2);
    let h = create(&mut maps, def(MapType::Hash, 4, 8, 4, 0));
    let map = maps.get_mut(h).unwrap();
    let base = map.arena(0).as_ptr();
    let len = map.arena(0).len();
    map.update(&k(1), &u64v(100), 0, 0).unwrap();
    let off = map.lookup(&k(1), 0).unwrap();
    assert_eq!(map.arena(0)[off..off + 8], u64v(100));
    // A program writes through the pointer: the host sees it.
    map.arena_mut(0)[off..off + 8].copy_from_slice(&u64v(101));
    assert_eq!(maps.lookup(h, &k(1)).unwrap(), u64v(101));
    // Updating an existing key moves it to CPU 1's spare element; the old pointer still reads
    // the old value, as a kernel program holding it would.
    let map = maps.get_mut(h).unwrap();
    map.update(&k(1), &u64v(200), 0, 1).unwrap();
    let new = map.lookup(&k(1), 0).unwrap();
    assert_ne!(new, off);
    assert_eq!(map.arena(0)[off..off + 8], u64v(101));
    assert_eq!(map.arena(0)[new..new + 8], u64v(200));
    // Deleting frees the slot; the stale pointer stays readable; the slot is reused.
    map.delete(&k(1)).unwrap();
    assert_eq!(map.arena(0)[new..new + 8], u64v(200));
    map.update(&k(2), &u64v(300), 0, 0).unwrap();
    assert_eq!(map.lookup(&k(2), 0), Some(new));
    // Nothing ever moved the arena.
    assert_eq!((map.arena(0).as_ptr(), map.arena(0).len()), (base, len));
    assert_eq!(len, 8 * (4 + 2), "max_entries slots plus one spare per CPU");
}

#[test]
fn spin_lock_values_update_in_place_under_bpf_f_lock() {
    let mut maps = Maps::new(1);
    let fields = ValueFields { spin_lock: Some(0) };
    let h = maps
        .create_with(&def(MapType::Hash, 4, 8, 4, 0), fields)
        .unwrap();
    let value = |n: u32| [[0xff; 4], n.to_le_bytes()].concat();
    maps.update(h, &k(1), &value(1), BPF_NOEXIST | BPF_F_LOCK)
        .unwrap();
    let off = maps.get_mut(h).unwrap().lookup(&k(1), 0).unwrap();
    // The lock word starts unlocked and is never written by an update nor shown to the host.
    assert_eq!(maps.get(h).unwrap().arena(0)[off..off + 4], [0; 4]);
    maps.get_mut(h).unwrap().arena_mut(0)[off] = 1; // a program holds the lock
    maps.update(h, &k(1), &value(2), BPF_F_LOCK).unwrap();
    assert_eq!(
        maps.get_mut(h).unwrap().lookup(&k(1), 0),
        Some(off),
        "in place"
    );
    assert_eq!(maps.get(h).unwrap().arena(0)[off], 1);
    assert_eq!(
        maps.lookup(h, &k(1)).unwrap(),
        [[0; 4], 2u32.to_le_bytes()].concat()
    );
    assert_eq!(
        errno(maps.update(h, &k(9), &value(0), BPF_EXIST | BPF_F_LOCK)),
        Errno::ENOENT
    );
    // The kernel accepts spin locks in HASH and ARRAY values only.
    let e = maps.create_with(&def(MapType::LruHash, 4, 8, 4, 0), fields);
    assert_eq!(errno(e), Errno::EOPNOTSUPP);
    let e = maps.create_with(
        &def(MapType::Array, 4, 8, 4, 0),
        ValueFields { spin_lock: Some(6) },
    );
    assert_eq!(errno(e), Errno::EINVAL);
    let a = maps
        .create_with(&def(MapType::Array, 4, 8, 4, 0), fields)
        .unwrap();
    maps.update(a, &k(0), &value(5), BPF_F_LOCK).unwrap();
    assert_eq!(
        errno(maps.update(a, &k(4), &value(5), BPF_F_LOCK)),
        Errno::E2BIG
    );
}

// ---------------------------------------------------------------------------------------------
// ARRAY and per-CPU maps

#[test]
fn array_semantics_and_errnos() {
    let mut maps = Maps::new(1);
    let a = create(&mut maps, def(MapType::Array, 4, 4, 4, 0));
    assert_eq!(
        maps.lookup(a, &k(3)).unwrap(),
        [0; 4],
        "elements exist from creation"
    );
    assert_eq!(
        errno(maps.update(a, &k(1), &k(1), BPF_NOEXIST)),
        Errno::EEXIST
    );
    maps.update(a, &k(1), &k(7), BPF_EXIST).unwrap();
    assert_eq!(errno(maps.update(a, &k(1), &k(1), 3)), Errno::EINVAL);
    assert_eq!(
        errno(maps.update(a, &k(1), &k(1), BPF_F_LOCK)),
        Errno::EINVAL
    );
    assert_eq!(errno(maps.update(a, &k(4), &k(1), BPF_ANY)), Errno::E2BIG);
    assert_eq!(
        errno(maps.update(a, &k(4), &k(1), BPF_NOEXIST)),
        Errno::E2BIG
    );
    assert_eq!(errno(maps.lookup(a, &k(4))), Errno::ENOENT);
    assert_eq!(maps.get_mut(a).unwrap().lookup(&k(4), 0), None);
    assert_eq!(errno(maps.delete(a, &k(1))), Errno::EINVAL);
    assert_eq!(maps.get_next_key(a, None).unwrap(), k(0));
    assert_eq!(maps.get_next_key(a, Some(&k(100))).unwrap(), k(0));
    assert_eq!(maps.get_next_key(a, Some(&k(2))).unwrap(), k(3));
    assert_eq!(errno(maps.get_next_key(a, Some(&k(3)))), Errno::ENOENT);
    let off = maps.get_mut(a).unwrap().lookup(&k(1), 0).unwrap();
    assert_eq!(
        off, 8,
        "elements are 8-byte aligned, at index * round_up(value_size, 8)"
    );
    assert_eq!(maps.keys(a).unwrap().len(), 4);
    maps.clear(a).unwrap();
    assert_eq!(maps.lookup(a, &k(1)).unwrap(), [0; 4]);
}

#[test]
fn percpu_array_has_one_arena_per_cpu() {
    let mut maps = Maps::new(3);
    let a = create(&mut maps, def(MapType::PercpuArray, 4, 4, 2, 0));
    let map = maps.get_mut(a).unwrap();
    assert_eq!(map.arenas().len(), 3);
    map.update(&k(1), &k(11), 0, 1).unwrap();
    map.update(&k(1), &k(22), 0, 2).unwrap();
    let off = map.lookup(&k(1), 2).unwrap();
    assert_eq!(map.arena(2)[off..off + 4], k(22));
    assert_eq!(
        maps.lookup_percpu(a, &k(1)).unwrap(),
        [k(0).to_vec(), k(11).to_vec(), k(22).to_vec()]
    );
    // The bpf(2) layout: each CPU's value padded to 8 bytes.
    let flat = maps.lookup(a, &k(1)).unwrap();
    assert_eq!(
        flat,
        [0, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0]
    );
    maps.update_percpu(a, &k(0), &[k(1), k(2), k(3)], 0)
        .unwrap();
    assert_eq!(maps.entries_percpu(a).unwrap()[0].1[2], k(3));
    assert_eq!(
        errno(maps.update(a, &k(0), &k(1), 0)),
        Errno::EINVAL,
        "needs every CPU's value"
    );
    assert_eq!(
        errno(maps.update_percpu(a, &k(0), &[k(1)], 0)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(maps.update_percpu(a, &k(0), &[k(1), k(2), k(3)], 1)),
        Errno::EEXIST
    );
    let plain = create(&mut maps, def(MapType::Array, 4, 4, 1, 0));
    assert_eq!(errno(maps.lookup_percpu(plain, &k(0))), Errno::EINVAL);
}

#[test]
fn percpu_hash_program_updates_touch_only_their_cpu() {
    let mut maps = Maps::new(2);
    let h = create(&mut maps, def(MapType::PercpuHash, 4, 8, 2, 0));
    maps.update_percpu(h, &k(1), &[u64v(1), u64v(2)], BPF_NOEXIST)
        .unwrap();
    let map = maps.get_mut(h).unwrap();
    // An existing element: only CPU 1's value changes.
    map.update(&k(1), &u64v(20), BPF_EXIST, 1).unwrap();
    assert_eq!(
        maps.lookup_percpu(h, &k(1)).unwrap(),
        [u64v(1).to_vec(), u64v(20).to_vec()]
    );
    // A new element from a program: this CPU's value, zero on the others (even where a deleted
    // element left bytes behind).
    let map = maps.get_mut(h).unwrap();
    let off = map.lookup(&k(1), 0).unwrap();
    map.arena_mut(0)[off + 8..].fill(0xaa);
    map.arena_mut(1)[off + 8..].fill(0xaa);
    map.update(&k(2), &u64v(5), 0, 0).unwrap();
    assert_eq!(
        maps.lookup_percpu(h, &k(2)).unwrap(),
        [u64v(5).to_vec(), u64v(0).to_vec()]
    );
    assert_eq!(
        errno(maps.update_percpu(h, &k(3), &[u64v(0), u64v(0)], 0)),
        Errno::E2BIG
    );
    assert_eq!(
        errno(maps.update_percpu(h, &k(1), &[u64v(0), u64v(0)], BPF_F_LOCK)),
        Errno::EINVAL
    );
    let map = maps.get_mut(h).unwrap();
    assert_eq!(
        op_errno(map.update(&k(1), &u64v(0), 0, 2)),
        Errno::EINVAL,
        "no CPU 2"
    );
}

// ---------------------------------------------------------------------------------------------
// LRU

/// Keys currently in a map, as u32s, sorted.
fn live(maps: &Maps, id: MapId) -> Vec<u32> {
    let mut keys: Vec<u32> = maps
        .keys(id)
        .unwrap()
        .iter()
        .map(|k| u32::from_le_bytes(k[..4].try_into().unwrap()))
        .collect();
    keys.sort();
    keys
}

#[test]
fn lru_evicts_least_recently_used_and_references_protect() {
    // One CPU, 4 elements: target_free = 4 / 1 / 2 = 2, so an insert into a full map frees 2.
    let mut maps = Maps::new(1);
    let l = create(&mut maps, def(MapType::LruHash, 4, 4, 4, 0));
    for i in 0..4 {
        maps.update(l, &k(i), &k(i), 0).unwrap();
    }
    assert_eq!(live(&maps, l), [0, 1, 2, 3]);
    maps.update(l, &k(4), &k(4), 0).unwrap();
    assert_eq!(live(&maps, l), [2, 3, 4], "the two oldest went together");
    // A lookup from a program sets the ref bit: key 2 survives the next eviction round, in
    // which the two oldest unreferenced keys go.
    assert!(maps.get_mut(l).unwrap().lookup(&k(2), 0).is_some());
    maps.update(l, &k(5), &k(5), 0).unwrap();
    maps.update(l, &k(6), &k(6), 0).unwrap();
    assert_eq!(live(&maps, l), [2, 5, 6]);
    // A host lookup does not count as a use (the syscall path does not set the ref bit).
    maps.lookup(l, &k(5)).unwrap();
    maps.update(l, &k(7), &k(7), 0).unwrap();
    assert_eq!(live(&maps, l), [2, 5, 6, 7]);
    maps.update(l, &k(8), &k(8), 0).unwrap();
    assert_eq!(live(&maps, l), [2, 7, 8]);
    // Errnos: no E2BIG ever; flags as for HASH.
    assert_eq!(
        errno(maps.update(l, &k(7), &k(0), BPF_NOEXIST)),
        Errno::EEXIST
    );
    assert_eq!(
        errno(maps.update(l, &k(70), &k(0), BPF_EXIST)),
        Errno::ENOENT
    );
    assert_eq!(
        errno(maps.update(l, &k(7), &k(0), BPF_F_LOCK)),
        Errno::EINVAL
    );
    assert_eq!(errno(maps.delete(l, &k(70))), Errno::ENOENT);
}

#[test]
fn lru_on_two_cpus_matches_the_kernels_eviction_sets() {
    // Observed on Linux 6.18 with 2 possible CPUs, inserting 1, 2, ... on CPU 0:
    // max_entries 4 evicts one key at a time; max_entries 8 evicts two at a time.
    for (max, after9) in [(4u32, vec![6, 7, 8, 9]), (8, vec![3, 4, 5, 6, 7, 8, 9])] {
        let mut maps = Maps::new(2);
        let l = create(&mut maps, def(MapType::LruHash, 4, 4, max, 0));
        for i in 1..=9 {
            maps.update(l, &k(i), &k(i), 0).unwrap();
        }
        assert_eq!(live(&maps, l), after9, "max_entries {max}");
    }
}

#[test]
fn per_cpu_lru_lists_split_max_entries_between_cpus() {
    let mut maps = Maps::new(2);
    let l = create(
        &mut maps,
        def(MapType::LruHash, 4, 4, 5, BPF_F_NO_COMMON_LRU),
    );
    assert_eq!(
        maps.get(l).unwrap().state().max_entries(),
        6,
        "rounded up to 2 CPUs"
    );
    // The host runs on CPU 0, which owns 3 elements; the 4th insert evicts up to 4 at once.
    for i in 1..=4 {
        maps.update(l, &k(i), &k(i), 0).unwrap();
    }
    assert_eq!(live(&maps, l), [4]);
    // CPU 1's elements are separate.
    maps.set_host_cpu(1);
    for i in 10..13 {
        maps.update(l, &k(i), &k(i), 0).unwrap();
    }
    assert_eq!(live(&maps, l), [4, 10, 11, 12]);
}

#[test]
fn lru_percpu_hash_updates_in_place() {
    let mut maps = Maps::new(2);
    let l = create(&mut maps, def(MapType::LruPercpuHash, 4, 8, 4, 0));
    maps.update_percpu(l, &k(1), &[u64v(1), u64v(2)], 0)
        .unwrap();
    let off = maps.get_mut(l).unwrap().lookup(&k(1), 0).unwrap();
    maps.update_percpu(l, &k(1), &[u64v(3), u64v(4)], BPF_EXIST)
        .unwrap();
    assert_eq!(maps.get_mut(l).unwrap().lookup(&k(1), 1), Some(off));
    assert_eq!(maps.lookup_percpu(l, &k(1)).unwrap()[1], u64v(4));
    assert_eq!(
        errno(maps.update_percpu(l, &k(2), &[u64v(0), u64v(0)], BPF_EXIST)),
        Errno::ENOENT
    );
}

// ---------------------------------------------------------------------------------------------
// LPM_TRIE

fn v4(prefixlen: u32, a: [u8; 4]) -> Vec<u8> {
    [prefixlen.to_le_bytes(), a].concat()
}

#[test]
fn lpm_longest_prefix_match_with_overlapping_prefixes() {
    let mut maps = Maps::new(1);
    let t = create(
        &mut maps,
        def(MapType::LpmTrie, 8, 4, 16, BPF_F_NO_PREALLOC),
    );
    for (key, val) in [
        (v4(8, [10, 0, 0, 0]), 8),
        (v4(16, [10, 1, 0, 0]), 16),
        (v4(24, [10, 1, 2, 0]), 24),
        (v4(0, [0, 0, 0, 0]), 0),
        (v4(32, [10, 1, 2, 3]), 32),
    ] {
        maps.update(t, &key, &k(val), BPF_NOEXIST).unwrap();
    }
    let hit = |maps: &Maps, key: Vec<u8>| {
        maps.lookup(t, &key)
            .map(|v| u32::from_le_bytes(v[..4].try_into().unwrap()))
            .ok()
    };
    assert_eq!(hit(&maps, v4(32, [10, 1, 2, 3])), Some(32));
    assert_eq!(hit(&maps, v4(32, [10, 1, 2, 4])), Some(24));
    assert_eq!(hit(&maps, v4(32, [10, 1, 3, 4])), Some(16));
    assert_eq!(hit(&maps, v4(32, [10, 2, 0, 0])), Some(8));
    assert_eq!(hit(&maps, v4(32, [11, 0, 0, 0])), Some(0));
    // The lookup key's own prefix length bounds the match.
    assert_eq!(hit(&maps, v4(20, [10, 1, 2, 3])), Some(16));
    assert_eq!(hit(&maps, v4(7, [10, 1, 2, 3])), Some(0));
    // A lookup beyond the maximum prefix length finds nothing, as in the kernel.
    assert_eq!(hit(&maps, v4(33, [10, 1, 2, 3])), None);
    // Programs get a value offset.
    let map = maps.get_mut(t).unwrap();
    let off = map.lookup(&v4(32, [10, 1, 2, 200]), 0).unwrap();
    assert_eq!(map.arena(0)[off..off + 4], k(24));
    // Without /0 a miss is ENOENT.
    maps.delete(t, &v4(0, [1, 2, 3, 4])).unwrap();
    assert_eq!(hit(&maps, v4(32, [11, 0, 0, 0])), None);
}

#[test]
fn lpm_update_delete_and_errnos() {
    let mut maps = Maps::new(1);
    let t = create(&mut maps, def(MapType::LpmTrie, 8, 4, 2, BPF_F_NO_PREALLOC));
    assert_eq!(
        errno(maps.update(t, &v4(33, [0; 4]), &k(0), 0)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(maps.update(t, &v4(8, [10, 0, 0, 0]), &k(0), 3)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(maps.update(t, &v4(8, [10, 0, 0, 0]), &k(0), BPF_F_LOCK)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(maps.update(t, &v4(8, [10, 0, 0, 0]), &k(0), BPF_EXIST)),
        Errno::ENOENT
    );
    maps.update(t, &v4(8, [10, 0, 0, 0]), &k(1), 0).unwrap();
    assert_eq!(
        errno(maps.update(t, &v4(8, [10, 0, 0, 0]), &k(0), BPF_NOEXIST)),
        Errno::EEXIST
    );
    maps.update(t, &v4(16, [10, 1, 0, 0]), &k(2), 0).unwrap();
    // Full is ENOSPC; replacing in a full trie works.
    assert_eq!(
        errno(maps.update(t, &v4(24, [10, 1, 2, 0]), &k(3), 0)),
        Errno::ENOSPC
    );
    assert_eq!(
        errno(maps.update(t, &v4(24, [10, 1, 2, 0]), &k(3), BPF_EXIST)),
        Errno::ENOENT
    );
    maps.update(t, &v4(8, [10, 0, 0, 0]), &k(4), 0).unwrap();
    // Bits past the prefix length do not matter: 10.99.0.0/8 is the element 10.0.0.0/8.
    assert_eq!(maps.lookup(t, &v4(8, [10, 99, 0, 0])).unwrap(), k(4));
    maps.update(t, &v4(8, [10, 99, 1, 1]), &k(5), BPF_EXIST)
        .unwrap();
    // ...but get_next_key returns the data the element was last written with.
    assert_eq!(
        maps.get_next_key(t, Some(&v4(16, [10, 1, 0, 0]))).unwrap(),
        v4(8, [10, 99, 1, 1])
    );
    assert_eq!(errno(maps.delete(t, &v4(24, [10, 1, 2, 0]))), Errno::ENOENT);
    assert_eq!(errno(maps.delete(t, &v4(40, [10, 1, 2, 0]))), Errno::EINVAL);
    maps.delete(t, &v4(8, [10, 42, 0, 0])).unwrap();
    assert_eq!(maps.keys(t).unwrap(), [v4(16, [10, 1, 0, 0])]);
}

#[test]
fn lpm_get_next_key_is_the_kernels_post_order() {
    let mut maps = Maps::new(1);
    let t = create(
        &mut maps,
        def(MapType::LpmTrie, 8, 4, 16, BPF_F_NO_PREALLOC),
    );
    // The example at the top of lpm_trie.c, plus a default route and a host route.
    let inserted = [
        v4(16, [192, 168, 0, 0]),
        v4(0, [0, 0, 0, 0]),
        v4(24, [192, 168, 128, 0]),
        v4(24, [192, 168, 0, 0]),
        v4(32, [192, 168, 1, 7]),
        v4(24, [192, 168, 1, 0]),
        v4(8, [10, 0, 0, 0]),
    ];
    for key in &inserted {
        maps.update(t, key, &k(0), 0).unwrap();
    }
    let want = [
        v4(8, [10, 0, 0, 0]),
        v4(24, [192, 168, 0, 0]),
        v4(32, [192, 168, 1, 7]),
        v4(24, [192, 168, 1, 0]),
        v4(24, [192, 168, 128, 0]),
        v4(16, [192, 168, 0, 0]),
        v4(0, [0, 0, 0, 0]),
    ];
    let mut walked = Vec::new();
    let mut key = None;
    while let Ok(next) = maps.get_next_key(t, key.as_deref()) {
        walked.push(next.clone());
        key = Some(next);
    }
    assert_eq!(walked, want);
    // An absent or invalid key restarts at the first element.
    assert_eq!(
        maps.get_next_key(t, Some(&v4(12, [1, 2, 3, 4]))).unwrap(),
        want[0]
    );
    assert_eq!(
        maps.get_next_key(t, Some(&v4(99, [0; 4]))).unwrap(),
        want[0]
    );
}

#[test]
fn lpm_ipv6_keys() {
    let mut maps = Maps::new(1);
    let t = create(
        &mut maps,
        def(MapType::LpmTrie, 20, 1, 4, BPF_F_NO_PREALLOC),
    );
    let key = |len: u32, a: [u8; 16]| [&len.to_le_bytes()[..], &a].concat();
    let mut net = [0u8; 16];
    net[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    maps.update(t, &key(32, net), &[32], 0).unwrap();
    maps.update(t, &key(128, [0xff; 16]), &[128], 0).unwrap();
    let mut host = net;
    host[15] = 1;
    assert_eq!(maps.lookup(t, &key(128, host)).unwrap(), [32]);
    assert_eq!(maps.lookup(t, &key(128, [0xff; 16])).unwrap(), [128]);
    assert_eq!(errno(maps.lookup(t, &key(127, [0xff; 16]))), Errno::ENOENT);
    assert_eq!(
        errno(maps.update(t, &key(129, net), &[0], 0)),
        Errno::EINVAL
    );
}

// ---------------------------------------------------------------------------------------------
// QUEUE and STACK

#[test]
fn queue_and_stack_semantics() {
    let mut maps = Maps::new(1);
    let q = create(&mut maps, def(MapType::Queue, 0, 4, 2, 0));
    let s = create(&mut maps, def(MapType::Stack, 0, 4, 2, 0));
    for id in [q, s] {
        assert_eq!(errno(maps.pop(id)), Errno::ENOENT);
        assert_eq!(errno(maps.peek(id)), Errno::ENOENT);
        assert_eq!(errno(maps.push(id, &k(1), BPF_NOEXIST)), Errno::EINVAL);
        assert_eq!(errno(maps.push(id, &k(1), 3)), Errno::EINVAL);
        assert_eq!(errno(maps.push(id, &k(1), BPF_F_LOCK)), Errno::EINVAL);
        maps.push(id, &k(1), BPF_ANY).unwrap();
        maps.push(id, &k(2), BPF_ANY).unwrap();
        assert_eq!(errno(maps.push(id, &k(3), BPF_ANY)), Errno::E2BIG);
        // BPF_EXIST makes room by dropping the oldest element, for a stack too.
        maps.push(id, &k(3), BPF_EXIST).unwrap();
        assert_eq!(
            maps.queue_values(id).unwrap(),
            [k(2).to_vec(), k(3).to_vec()]
        );
        assert_eq!(errno(maps.delete(id, &[])), Errno::EINVAL);
        assert_eq!(errno(maps.get_next_key(id, None)), Errno::EINVAL);
        assert_eq!(
            errno(maps.lookup(id, &k(0))),
            Errno::EINVAL,
            "no key allowed"
        );
        assert_eq!(
            errno(maps.update(id, &k(0), &k(0), 0)),
            Errno::EINVAL,
            "no key allowed"
        );
    }
    assert_eq!(maps.peek(q).unwrap(), k(2));
    assert_eq!(maps.lookup(q, &[]).unwrap(), k(2), "lookup is a peek");
    assert_eq!(maps.pop(q).unwrap(), k(2));
    assert_eq!(maps.pop(s).unwrap(), k(3));
    assert_eq!(maps.pop(s).unwrap(), k(2));
    // Program side.
    let map = maps.get_mut(q).unwrap();
    map.state_mut().push(&k(9), 0).unwrap();
    let mut out = [0u8; 4];
    map.state_mut().pop(&mut out).unwrap();
    assert_eq!(out, k(3));
    assert_eq!(map.lookup(&[], 0), None, "no value pointers into a queue");
    assert_eq!(map.arena(0).len(), 0);
}

// ---------------------------------------------------------------------------------------------
// RINGBUF

fn ring(maps: &mut Maps, size: u32) -> MapId {
    create(maps, def(MapType::Ringbuf, 0, 0, size, 0))
}

#[test]
fn ringbuf_records_in_order_with_discards_and_busy_records_blocking() {
    let mut maps = Maps::new(1);
    let r = ring(&mut maps, 4096);
    let map = maps.get_mut(r).unwrap();
    let a = map.ringbuf_reserve(5, 0).unwrap();
    assert_eq!(a, 8, "data follows the 8-byte header");
    map.arena_mut(0)[a..a + 5].copy_from_slice(b"first");
    let b = map.ringbuf_reserve(3, 0).unwrap();
    assert_eq!(b, 8 + 16, "records are rounded to 8 bytes");
    let c = map.ringbuf_reserve(6, 0).unwrap();
    map.arena_mut(0)[c..c + 6].copy_from_slice(b"third!");
    // Header as the kernel writes it: length with the busy bit, then the page offset.
    assert_eq!(map.arena(0)[..8], [5, 0, 0, 0x80, 3, 0, 0, 0]);
    map.ringbuf_submit(c, 0).unwrap();
    map.ringbuf_discard(b, 0).unwrap();
    // `a` is still reserved: nothing can be read past it.
    assert_eq!(maps.ringbuf_consume(r).unwrap(), Vec::<Vec<u8>>::new());
    let map = maps.get_mut(r).unwrap();
    map.ringbuf_submit(a, 0).unwrap();
    assert_eq!(map.arena(0)[..4], [5, 0, 0, 0]);
    map.ringbuf_output(b"fourth", 0).unwrap();
    assert_eq!(
        maps.ringbuf_consume(r).unwrap(),
        [b"first".to_vec(), b"third!".to_vec(), b"fourth".to_vec()]
    );
    let rb = maps.get(r).unwrap().state().ringbuf().unwrap();
    assert_eq!(rb.query(ringbuf::BPF_RB_AVAIL_DATA), 0);
    assert_eq!(rb.query(ringbuf::BPF_RB_CONS_POS), 16 + 16 + 16 + 16);
    assert_eq!(rb.query(ringbuf::BPF_RB_RING_SIZE), 4096);
    assert_eq!(rb.query(99), 0);
}

#[test]
fn ringbuf_errors_and_flags() {
    let mut maps = Maps::new(1);
    let r = ring(&mut maps, 4096);
    let map = maps.get_mut(r).unwrap();
    assert_eq!(map.ringbuf_reserve(8, 1), None, "reserve takes no flags");
    assert_eq!(
        map.ringbuf_reserve(4096, 0),
        None,
        "record larger than the ring"
    );
    assert_eq!(op_errno(map.ringbuf_output(b"x", 4)), Errno::EINVAL);
    let a = map.ringbuf_reserve(8, 0).unwrap();
    assert_eq!(
        op_errno(map.ringbuf_submit(a + 8, 0)),
        Errno::EINVAL,
        "not a reservation"
    );
    map.ringbuf_submit(a, 0).unwrap();
    assert_eq!(
        op_errno(map.ringbuf_submit(a, 0)),
        Errno::EINVAL,
        "already committed"
    );
    // Key operations: ENOTSUPP without a key, EINVAL with one (bpf(2) rejects the key first).
    assert_eq!(errno(maps.lookup(r, &[])), Errno::ENOTSUPP);
    assert_eq!(errno(maps.update(r, &[], &[], 0)), Errno::ENOTSUPP);
    assert_eq!(errno(maps.delete(r, &[])), Errno::ENOTSUPP);
    assert_eq!(errno(maps.get_next_key(r, None)), Errno::ENOTSUPP);
    assert_eq!(errno(maps.lookup(r, &k(0))), Errno::EINVAL);
}

#[test]
fn ringbuf_fills_up_and_wakeups_follow_the_flags() {
    let mut maps = Maps::new(1);
    let r = ring(&mut maps, 4096);
    let map = maps.get_mut(r).unwrap();
    // Records of 1024 bytes take 1032: three fit (the producer may not get a full ring ahead).
    for _ in 0..3 {
        map.ringbuf_output(&[7; 1024], ringbuf::BPF_RB_NO_WAKEUP)
            .unwrap();
    }
    assert_eq!(op_errno(map.ringbuf_output(&[7; 1024], 0)), Errno::EAGAIN);
    assert_eq!(map.state().ringbuf().unwrap().wakeups(), 0);
    assert_eq!(maps.ringbuf_consume(r).unwrap().len(), 3);
    let map = maps.get_mut(r).unwrap();
    // The consumer has caught up: the next commit wakes it, unless told not to.
    map.ringbuf_output(b"a", 0).unwrap();
    map.ringbuf_output(b"b", 0).unwrap();
    map.ringbuf_output(b"c", ringbuf::BPF_RB_FORCE_WAKEUP)
        .unwrap();
    assert_eq!(map.state().ringbuf().unwrap().wakeups(), 2);
}

#[test]
fn ringbuf_wraparound_keeps_records_contiguous_and_intact() {
    let mut maps = Maps::new(1);
    let r = ring(&mut maps, 4096);
    let mut expect = Vec::new();
    let mut got = Vec::new();
    // Odd sizes so records straddle the end of the ring at varying points.
    for round in 0..200u32 {
        let size = 1 + (round * 37) % 700;
        let data: Vec<u8> = (0..size).map(|i| (i + round) as u8).collect();
        let map = maps.get_mut(r).unwrap();
        if round % 3 == 0 {
            let off = map.ringbuf_reserve(size as u64, 0).unwrap();
            assert!(off + size as usize <= map.arena(0).len());
            map.arena_mut(0)[off..off + size as usize].copy_from_slice(&data);
            if round % 2 == 0 {
                map.ringbuf_discard(off, 0).unwrap();
            } else {
                map.ringbuf_submit(off, 0).unwrap();
                expect.push(data);
            }
        } else {
            map.ringbuf_output(&data, 0).unwrap();
            expect.push(data);
        }
        if round % 4 == 3 {
            got.extend(maps.ringbuf_consume(r).unwrap());
        }
    }
    got.extend(maps.ringbuf_consume(r).unwrap());
    assert_eq!(got, expect);
    let rb = maps.get(r).unwrap().state().ringbuf().unwrap();
    assert!(
        rb.query(ringbuf::BPF_RB_PROD_POS) > 3 * 4096,
        "wrapped several times"
    );
}

#[test]
fn ringbuf_wrapped_reservation_sees_the_rings_bytes() {
    let mut maps = Maps::new(1);
    let r = ring(&mut maps, 4096);
    let map = maps.get_mut(r).unwrap();
    // Move the producer to 64 bytes before the end.
    map.ringbuf_output(&[1; 4096 - 64 - 8], 0).unwrap();
    maps.ringbuf_consume(r).unwrap();
    let map = maps.get_mut(r).unwrap();
    let off = map.ringbuf_reserve(200, 0).unwrap();
    assert_eq!(off, 4096 - 64 + 8);
    // The part past the end shows the ring's first bytes (the kernel maps the pages twice):
    // the header and data of the first record.
    let wrapped = map.arena(0)[4096..4096 + 8].to_vec();
    assert_eq!(wrapped, map.arena(0)[..8]);
    let data: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
    map.arena_mut(0)[off..off + 200].copy_from_slice(&data);
    map.ringbuf_submit(off, 0).unwrap();
    // After the commit the ring's first pages hold the wrapped tail too.
    let tail = off + 200 - 4096;
    assert_eq!(map.arena(0)[..tail], data[200 - tail..]);
    assert_eq!(maps.ringbuf_consume(r).unwrap(), [data]);
}

// ---------------------------------------------------------------------------------------------
// PERF_EVENT_ARRAY

#[test]
fn perf_event_output_needs_an_open_event_on_the_current_cpu() {
    let mut maps = Maps::new(2);
    let p = create(&mut maps, def(MapType::PerfEventArray, 4, 4, 2, 0));
    let out = |maps: &mut Maps, flags: u64, cpu: u32, data: &[u8]| {
        maps.get_mut(p)
            .unwrap()
            .state_mut()
            .perf_mut()
            .unwrap()
            .output(flags, cpu, data)
    };
    assert_eq!(
        op_errno(out(&mut maps, BPF_F_CURRENT_CPU, 0, b"x")),
        Errno::ENOENT
    );
    maps.perf_open_all(p).unwrap();
    out(&mut maps, BPF_F_CURRENT_CPU, 1, b"on 1").unwrap();
    out(&mut maps, 0, 0, b"on 0").unwrap();
    assert_eq!(op_errno(out(&mut maps, 1, 0, b"x")), Errno::EOPNOTSUPP);
    assert_eq!(op_errno(out(&mut maps, 2, 0, b"x")), Errno::E2BIG);
    assert_eq!(op_errno(out(&mut maps, 1 << 32, 0, b"x")), Errno::EINVAL);
    assert_eq!(
        maps.perf_drain(p).unwrap(),
        [
            PerfRecord {
                cpu: 1,
                data: b"on 1".to_vec()
            },
            PerfRecord {
                cpu: 0,
                data: b"on 0".to_vec()
            }
        ]
    );
    assert!(maps.perf_drain(p).unwrap().is_empty());
    // bpf(2) lookups are ENOTSUPP; deleting an empty slot is ENOENT.
    assert_eq!(errno(maps.lookup(p, &k(0))), Errno::ENOTSUPP);
    maps.delete(p, &k(0)).unwrap();
    assert_eq!(errno(maps.delete(p, &k(0))), Errno::ENOENT);
    assert_eq!(errno(maps.delete(p, &k(5))), Errno::E2BIG);
}

// ---------------------------------------------------------------------------------------------
// PROG_ARRAY and maps of maps

#[test]
fn prog_array_holds_program_ids() {
    let mut maps = Maps::new(1);
    let p = create(&mut maps, def(MapType::ProgArray, 4, 4, 4, 0));
    assert_eq!(
        errno(maps.update(p, &k(0), &k(7), BPF_NOEXIST)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(maps.update(p, &k(0), &k(7), BPF_EXIST)),
        Errno::EINVAL
    );
    assert_eq!(errno(maps.update(p, &k(4), &k(7), BPF_ANY)), Errno::E2BIG);
    assert_eq!(errno(maps.lookup(p, &k(0))), Errno::ENOENT);
    maps.update(p, &k(0), &k(7), BPF_ANY).unwrap();
    assert_eq!(maps.lookup(p, &k(0)).unwrap(), k(7));
    let map = maps.get_mut(p).unwrap();
    assert_eq!(
        map.lookup(&k(0), 0),
        None,
        "programs cannot look up a program array"
    );
    let off = map.state().slot(0).unwrap();
    assert_eq!(map.arena(0)[off..off + 4], k(7), "what tail_call reads");
    assert_eq!(map.state().slot(1), None);
    assert_eq!(maps.keys(p).unwrap(), [k(0).to_vec()]);
    assert_eq!(
        maps.get_next_key(p, Some(&k(0))).unwrap(),
        k(1),
        "every index iterates"
    );
    maps.delete(p, &k(0)).unwrap();
    assert_eq!(errno(maps.delete(p, &k(0))), Errno::ENOENT);
    assert_eq!(errno(maps.delete(p, &k(9))), Errno::E2BIG);
}

fn map_in_map(maps: &mut Maps, t: MapType, inner: &MapDef, max: u32) -> MapId {
    let mut d = def(t, 4, 4, max, 0);
    d.inner = Some(Box::new(inner.clone()));
    create(maps, d)
}

#[test]
fn maps_of_maps_hold_compatible_inner_maps() {
    let mut maps = Maps::new(1);
    let template = def(MapType::Array, 4, 4, 4, 0);
    assert_eq!(
        errno(maps.create(&def(MapType::ArrayOfMaps, 4, 4, 4, 0))),
        Errno::EINVAL
    );
    let mut d = def(MapType::HashOfMaps, 4, 4, 4, 0);
    d.inner = Some(Box::new(def(MapType::ProgArray, 4, 4, 4, 0)));
    assert_eq!(errno(maps.create(&d)), Errno::ENOTSUPP);
    d.inner = Some(Box::new(def(MapType::HashOfMaps, 4, 4, 4, 0)));
    assert_eq!(errno(maps.create(&d)), Errno::EINVAL);
    d.value_size = 8;
    d.inner = Some(Box::new(template.clone()));
    assert_eq!(errno(maps.create(&d)), Errno::EINVAL);

    let aom = map_in_map(&mut maps, MapType::ArrayOfMaps, &template, 2);
    let inner = create(&mut maps, template.clone());
    let other_size = create(&mut maps, def(MapType::Array, 4, 4, 5, 0));
    let a_hash = create(&mut maps, def(MapType::Hash, 4, 4, 4, 0));
    let id = |m: MapId| m.0.to_le_bytes();
    assert_eq!(
        errno(maps.update(aom, &k(0), &id(inner), BPF_NOEXIST)),
        Errno::EINVAL
    );
    assert_eq!(errno(maps.update(aom, &k(2), &id(inner), 0)), Errno::E2BIG);
    assert_eq!(
        errno(maps.update(aom, &k(0), &id(MapId(99)), 0)),
        Errno::EBADF
    );
    assert_eq!(
        errno(maps.update(aom, &k(0), &id(other_size), 0)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(maps.update(aom, &k(0), &id(a_hash), 0)),
        Errno::EINVAL
    );
    maps.update(aom, &k(0), &id(inner), 0).unwrap();
    assert_eq!(maps.lookup(aom, &k(0)).unwrap(), id(inner));
    assert_eq!(errno(maps.lookup(aom, &k(1))), Errno::ENOENT);
    let map = maps.get_mut(aom).unwrap();
    let (state, arenas) = map.split_mut();
    assert_eq!(state.inner_map(&k(0), arenas), Some(inner));
    assert_eq!(state.inner_map(&k(1), arenas), None);
    assert_eq!(errno(maps.delete(aom, &k(1))), Errno::ENOENT);

    // BPF_F_INNER_MAP lets arrays of any size in; hash inner maps never compare max_entries.
    let mut flexible = template.clone();
    flexible.flags = BPF_F_INNER_MAP;
    let aom2 = map_in_map(&mut maps, MapType::ArrayOfMaps, &flexible, 1);
    let mut big = flexible.clone();
    big.max_entries = 100;
    let big = create(&mut maps, big);
    maps.update(aom2, &k(0), &id(big), 0).unwrap();
    let hom = map_in_map(
        &mut maps,
        MapType::HashOfMaps,
        &def(MapType::Hash, 4, 4, 4, 0),
        1,
    );
    let h9 = create(&mut maps, def(MapType::Hash, 4, 4, 9, 0));
    assert_eq!(
        errno(maps.update(hom, &k(5), &id(h9), BPF_EXIST)),
        Errno::ENOENT
    );
    assert_eq!(
        errno(maps.update(hom, &k(5), &id(inner), BPF_EXIST)),
        Errno::EINVAL,
        "map checked first"
    );
    maps.update(hom, &k(5), &id(h9), 0).unwrap();
    assert_eq!(errno(maps.update(hom, &k(6), &id(h9), 0)), Errno::E2BIG);
    assert_eq!(maps.lookup(hom, &k(5)).unwrap(), id(h9));
}

// ---------------------------------------------------------------------------------------------
// DEVMAP, DEVMAP_HASH, CPUMAP, XSKMAP

fn dev_val(ifindex: u32, prog: i32) -> Vec<u8> {
    [ifindex.to_le_bytes(), prog.to_le_bytes()].concat()
}

#[test]
fn devmap_semantics() {
    let mut maps = Maps::new(1);
    let d = create(&mut maps, def(MapType::Devmap, 4, 8, 4, 0));
    assert_eq!(
        errno(maps.update(d, &k(0), &dev_val(1, 0), BPF_NOEXIST)),
        Errno::EEXIST
    );
    maps.update(d, &k(0), &dev_val(3, -1), 0).unwrap();
    assert_eq!(
        maps.lookup(d, &k(0)).unwrap(),
        dev_val(3, 0),
        "no program reads as id 0"
    );
    maps.update(d, &k(1), &dev_val(4, 12), BPF_EXIST).unwrap();
    // A program reads the struct bpf_devmap_val through its pointer.
    let map = maps.get_mut(d).unwrap();
    let off = map.lookup(&k(1), 0).unwrap();
    assert_eq!(map.arena(0)[off..off + 8], dev_val(4, 12));
    assert_eq!(
        errno(maps.update(d, &k(0), &dev_val(0, 5), 0)),
        Errno::EINVAL
    );
    maps.update(d, &k(0), &dev_val(0, 0), 0).unwrap();
    assert_eq!(
        errno(maps.lookup(d, &k(0))),
        Errno::ENOENT,
        "ifindex 0 empties the slot"
    );
    assert_eq!(
        errno(maps.update(d, &k(4), &dev_val(1, 0), 0)),
        Errno::E2BIG
    );
    assert_eq!(
        errno(maps.update(d, &k(0), &dev_val(1, 0), 3)),
        Errno::EINVAL
    );
    maps.delete(d, &k(2)).unwrap();
    assert_eq!(errno(maps.delete(d, &k(4))), Errno::EINVAL);
    assert_eq!(maps.keys(d).unwrap(), [k(1).to_vec()]);

    let h = create(&mut maps, def(MapType::DevmapHash, 4, 4, 1, 0));
    assert_eq!(errno(maps.update(h, &k(5), &k(0), 0)), Errno::EINVAL);
    maps.update(h, &k(5), &k(1), BPF_EXIST).unwrap();
    assert_eq!(
        errno(maps.update(h, &k(5), &k(1), BPF_NOEXIST)),
        Errno::EEXIST
    );
    maps.update(h, &k(5), &k(2), 0).unwrap();
    assert_eq!(errno(maps.update(h, &k(6), &k(2), 0)), Errno::E2BIG);
    assert_eq!(errno(maps.delete(h, &k(6))), Errno::ENOENT);
    assert_eq!(maps.lookup(h, &k(5)).unwrap(), k(2));
    maps.delete(h, &k(5)).unwrap();
}

#[test]
fn cpumap_semantics() {
    let mut maps = Maps::new(2);
    let c = create(&mut maps, def(MapType::Cpumap, 4, 4, 8, 0));
    assert_eq!(
        errno(maps.update(c, &k(5), &k(100), 0)),
        Errno::ENODEV,
        "no CPU 5"
    );
    assert_eq!(errno(maps.update(c, &k(1), &k(20000), 0)), Errno::EOVERFLOW);
    assert_eq!(
        errno(maps.update(c, &k(1), &k(100), BPF_NOEXIST)),
        Errno::EEXIST
    );
    assert_eq!(errno(maps.update(c, &k(9), &k(100), 0)), Errno::E2BIG);
    maps.update(c, &k(1), &k(100), BPF_EXIST).unwrap();
    assert_eq!(maps.lookup(c, &k(1)).unwrap(), k(100));
    assert_eq!(errno(maps.lookup(c, &k(0))), Errno::ENOENT);
    assert_eq!(
        maps.get_mut(c).unwrap().lookup(&k(1), 0),
        None,
        "no program lookups"
    );
    maps.update(c, &k(1), &k(0), 0).unwrap();
    assert_eq!(
        errno(maps.lookup(c, &k(1))),
        Errno::ENOENT,
        "qsize 0 deletes"
    );
    maps.delete(c, &k(0)).unwrap();
    assert_eq!(errno(maps.delete(c, &k(9))), Errno::EINVAL);
}

#[test]
fn xskmap_semantics() {
    let mut maps = Maps::new(1);
    let x = create(&mut maps, def(MapType::Xskmap, 4, 4, 4, 0));
    assert_eq!(
        errno(maps.update(x, &k(0), &k(3), BPF_EXIST)),
        Errno::ENOENT
    );
    maps.update(x, &k(0), &k(3), BPF_NOEXIST).unwrap();
    maps.update(x, &k(0), &k(3), BPF_NOEXIST).unwrap(); // the same socket again: no error
    assert_eq!(
        errno(maps.update(x, &k(0), &k(4), BPF_NOEXIST)),
        Errno::EEXIST
    );
    assert_eq!(errno(maps.update(x, &k(4), &k(4), 0)), Errno::E2BIG);
    assert_eq!(errno(maps.lookup(x, &k(0))), Errno::EOPNOTSUPP);
    assert_eq!(maps.entries(x).unwrap(), [(k(0).to_vec(), k(3).to_vec())]);
    assert!(maps.get_mut(x).unwrap().lookup(&k(0), 0).is_some());
    maps.delete(x, &k(1)).unwrap();
    assert_eq!(errno(maps.delete(x, &k(4))), Errno::EINVAL);
}

// ---------------------------------------------------------------------------------------------
// Access flags and freezing

#[test]
fn host_access_flags_and_freeze() {
    let mut maps = Maps::new(1);
    let ro = create(&mut maps, def(MapType::Hash, 4, 4, 2, BPF_F_RDONLY));
    assert_eq!(errno(maps.update(ro, &k(1), &k(1), 0)), Errno::EPERM);
    assert_eq!(errno(maps.delete(ro, &k(1))), Errno::EPERM);
    assert_eq!(errno(maps.lookup(ro, &k(1))), Errno::ENOENT);
    assert_eq!(errno(maps.freeze(ro)), Errno::EPERM);
    // Programs are not bound by the host's access flags.
    maps.get_mut(ro)
        .unwrap()
        .update(&k(1), &k(1), 0, 0)
        .unwrap();
    assert_eq!(maps.lookup(ro, &k(1)).unwrap(), k(1));

    let wo = create(&mut maps, def(MapType::Hash, 4, 4, 2, BPF_F_WRONLY));
    maps.update(wo, &k(1), &k(1), 0).unwrap();
    assert_eq!(errno(maps.lookup(wo, &k(1))), Errno::EPERM);
    assert_eq!(errno(maps.get_next_key(wo, None)), Errno::EPERM);

    let h = create(&mut maps, def(MapType::Array, 4, 4, 2, 0));
    maps.update(h, &k(1), &k(5), 0).unwrap();
    maps.freeze(h).unwrap();
    assert_eq!(errno(maps.freeze(h)), Errno::EPERM);
    assert_eq!(errno(maps.update(h, &k(1), &k(1), 0)), Errno::EPERM);
    assert_eq!(maps.lookup(h, &k(1)).unwrap(), k(5));
    maps.get_mut(h).unwrap().update(&k(0), &k(9), 0, 0).unwrap();
    assert_eq!(maps.lookup(h, &k(0)).unwrap(), k(9));
}

// ---------------------------------------------------------------------------------------------
// Determinism and the runtime split

/// A fixed pseudo-random sequence (xorshift): the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Run a random operation sequence on a fresh registry and describe everything observable.
fn replay(seed: u64) -> String {
    use MapType::*;
    let mut maps = Maps::new(2);
    let ids = [
        create(&mut maps, def(Hash, 4, 8, 16, 0)),
        create(&mut maps, def(LruHash, 4, 8, 8, 0)),
        create(&mut maps, def(LruPercpuHash, 4, 8, 8, BPF_F_NO_COMMON_LRU)),
        create(&mut maps, def(PercpuHash, 4, 8, 16, 0)),
        create(&mut maps, def(LpmTrie, 8, 8, 16, BPF_F_NO_PREALLOC)),
    ];
    let mut rng = Rng(seed);
    let mut log = String::new();
    for _ in 0..2000 {
        let id = ids[(rng.next() % ids.len() as u64) as usize];
        let key = if id == ids[4] {
            v4(
                (rng.next() % 33) as u32,
                [(rng.next() % 4) as u8 * 64, 0, 0, 0],
            )
        } else {
            k((rng.next() % 24) as u32).to_vec()
        };
        let cpu = (rng.next() % 2) as u32;
        let map = maps.get_mut(id).unwrap();
        match rng.next() % 4 {
            0 => log += &format!("{:?} ", map.lookup(&key, cpu)),
            1 => log += &format!("{:?} ", map.delete(&key).err().map(|e| e.errno)),
            _ => {
                let flags = rng.next() % 3;
                let r = map.update(&key, &u64v(rng.next()), flags, cpu);
                log += &format!("{:?} ", r.err().map(|e| e.errno));
            }
        }
    }
    for id in ids {
        log += &format!("{:?}\n", maps.entries(id).unwrap());
    }
    log
}

#[test]
fn iteration_and_results_are_deterministic() {
    let a = replay(0x1234_5678);
    assert_eq!(a, replay(0x1234_5678));
    assert_ne!(a, replay(42));
}

/// A stand-in for guest memory: the runtime's view of the arenas while they are lent out.
struct Lent<'a>(Vec<&'a mut [u8]>);
impl ArenaAccess for Lent<'_> {
    fn arena_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.0.get_mut(index).map(|a| &mut **a)
    }
}

#[test]
fn state_and_arenas_split_for_a_run() {
    let mut maps = Maps::new(2);
    let h = create(&mut maps, def(MapType::PercpuHash, 4, 8, 4, 0));
    let a = create(&mut maps, def(MapType::Array, 4, 8, 4, 0));
    let mut states = Vec::new();
    let mut lent = Vec::new();
    for map in maps.iter_mut() {
        let (state, arenas) = map.split_mut();
        states.push(state);
        lent.push(Lent(arenas.iter_mut().collect()));
    }
    // A "program" on CPU 1 updates through the states while the arenas are lent out.
    states[0]
        .update(&k(1), &u64v(11), 0, 1, &mut lent[0])
        .unwrap();
    states[1]
        .update(&k(2), &u64v(22), 0, 1, &mut lent[1])
        .unwrap();
    let off = states[0].lookup(&k(1), 1).unwrap();
    assert_eq!(lent[0].0[states[0].arena_index(1)][off..off + 8], u64v(11));
    drop((states, lent));
    assert_eq!(maps.lookup_percpu(h, &k(1)).unwrap()[1], u64v(11));
    assert_eq!(maps.lookup(a, &k(2)).unwrap(), u64v(22));
}

/// What `bpf_for_each_map_elem` walks (`MapState::visit_entries`, keys lent, not allocated) is
/// `entries()`, key for key and offset for offset, in every kind of storage.
#[test]
fn visited_entries_are_the_listed_ones() {
    use MapType::*;
    let nopre = BPF_F_NO_PREALLOC;
    let mut maps = Maps::new(2);
    for (d, keys) in [
        (def(Array, 4, 8, 5, 0), vec![k(1).to_vec(), k(3).to_vec()]),
        (def(PercpuArray, 4, 8, 3, 0), vec![k(2).to_vec()]),
        (
            def(Hash, 4, 8, 8, 0),
            vec![k(9).to_vec(), k(2).to_vec(), k(5).to_vec()],
        ),
        (def(Hash, 12, 8, 8, 0), vec![vec![7; 12], vec![1; 12]]),
        (
            def(LpmTrie, 8, 8, 8, nopre),
            vec![
                [24, 0, 0, 0, 10, 1, 2, 0].to_vec(),
                [8, 0, 0, 0, 10, 0, 0, 0].to_vec(),
            ],
        ),
        (def(Devmap, 4, 4, 6, 0), vec![k(4).to_vec(), k(0).to_vec()]),
        (def(Queue, 0, 8, 4, 0), vec![]),
    ] {
        let vsize = d.value_size as usize;
        let id = create(&mut maps, d.clone());
        for key in &keys {
            let r = if d.map_type == PercpuArray {
                maps.update_percpu(id, key, &[vec![1u8; vsize], vec![2u8; vsize]], 0)
            } else {
                maps.update(id, key, &vec![1u8; vsize], 0)
            };
            r.unwrap_or_else(|e| panic!("{:?}: {e}", d.map_type));
        }
        if d.map_type == Queue {
            maps.update(id, &[], &u64v(5), 0).unwrap();
        }
        let state = maps.get(id).unwrap().state();
        let listed = state.entries();
        let mut visited = Vec::new();
        state.visit_entries(&mut |key, off| visited.push((key.to_vec(), off)));
        assert_eq!(visited, listed, "{:?}", d.map_type);
        assert_eq!(state.entries_len(), listed.len(), "{:?}", d.map_type);
    }
}

#[test]
fn hash_lookups_point_at_the_value_for_every_value_stride() {
    // Strides of a power of two (8, 16, 32, 64) take a shift, the others a multiply: both must
    // land on the value the update wrote, for plain and per-CPU tables.
    for map_type in [MapType::Hash, MapType::PercpuHash, MapType::LruHash] {
        for value_size in [1u32, 4, 8, 12, 16, 20, 24, 32, 40, 64, 72] {
            let mut maps = Maps::new(2);
            let h = create(&mut maps, def(map_type, 16, value_size, 8, 0));
            let map = maps.get_mut(h).unwrap();
            let stride = value_size.div_ceil(8) as usize * 8;
            let mut seen = Vec::new();
            for i in 0..8u8 {
                let key = [i.wrapping_mul(29) ^ 0x5a; 16];
                let value: Vec<u8> = (0..value_size as u8).map(|b| b ^ i << 4).collect();
                map.update(&key, &value, 0, 1).unwrap();
                let off = map.lookup(&key, 1).unwrap();
                let ctx = format!("{map_type:?}, value {value_size} bytes, key {i}");
                assert_eq!(off % stride, 0, "{ctx}");
                assert_eq!(&map.arena(1)[off..off + value.len()], &value[..], "{ctx}");
                seen.push(off);
            }
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(
                seen.len(),
                8,
                "{map_type:?}, value {value_size}: distinct slots"
            );
        }
    }
}

/// The kernel's rule for a reservation, both of its bounds: the ring may span at most its size
/// from the consumer and from the oldest record still reserved (found by a walk). The ring must
/// refuse and place every reservation as this model does, whatever the order of reserves,
/// commits and reads; it checks the consumer's bound alone, which implies the other here.
#[test]
fn ringbuf_reservations_follow_a_model_of_the_kernels_rule() {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Busy,
        Done,
        Dropped,
    }
    let size = 4096u64;
    let mut maps = Maps::new(1);
    let r = ring(&mut maps, size as u32);
    // (pos, data offset, length in the ring, state)
    let mut model: std::collections::VecDeque<(u64, usize, u64, St)> = Default::default();
    let (mut prod, mut cons) = (0u64, 0u64);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut refused, mut placed, mut out_of_order) = (0, 0, 0);
    for step in 0..20_000 {
        let roll = next() % 10;
        if roll < 5 {
            let want = 1 + next() % 300;
            let len = (want + 8 + 7) & !7;
            let pending = model.iter().find(|e| e.3 == St::Busy).map_or(prod, |e| e.0);
            let fits = prod + len - cons < size && prod + len - pending < size;
            let got = maps.get_mut(r).unwrap().ringbuf_reserve(want, 0);
            assert_eq!(got.is_some(), fits, "step {step}: reserve {want}");
            match got {
                Some(off) => {
                    assert_eq!(off as u64, (prod & (size - 1)) + 8, "step {step}");
                    model.push_back((prod, off, len, St::Busy));
                    prod += len;
                    placed += 1;
                }
                None => refused += 1,
            }
        } else if roll < 8 {
            // Commit a reserved record: most often the newest, sometimes an older one.
            let busy: Vec<usize> = (0..model.len())
                .filter(|&i| model[i].3 == St::Busy)
                .collect();
            if let Some(&newest) = busy.last() {
                let i = if next() % 4 == 0 {
                    out_of_order += 1;
                    busy[(next() % busy.len() as u64) as usize]
                } else {
                    newest
                };
                let discard = next() % 3 == 0;
                let map = maps.get_mut(r).unwrap();
                if discard {
                    map.ringbuf_discard(model[i].1, 0).unwrap();
                    model[i].3 = St::Dropped;
                } else {
                    map.ringbuf_submit(model[i].1, 0).unwrap();
                    model[i].3 = St::Done;
                }
            }
        } else {
            let mut want = 0;
            while let Some(&(_, _, len, st)) = model.front() {
                if st == St::Busy {
                    break;
                }
                want += usize::from(st == St::Done);
                cons += len;
                model.pop_front();
            }
            assert_eq!(maps.ringbuf_consume(r).unwrap().len(), want, "step {step}");
        }
        let rb = maps.get(r).unwrap().state().ringbuf().unwrap();
        assert_eq!(
            (
                rb.query(ringbuf::BPF_RB_PROD_POS),
                rb.query(ringbuf::BPF_RB_CONS_POS)
            ),
            (prod, cons),
            "step {step}"
        );
        assert_eq!(rb.pending(), model.len(), "step {step}");
    }
    assert!(
        refused > 100 && placed > 1000 && out_of_order > 100,
        "{refused} {placed} {out_of_order}"
    );
}
