//! Kernel ground truth for the simulated maps: the same definitions and the same operation
//! sequences run through bpf(2) and through the simulator, comparing every result (value or
//! errno) and, for LRU maps, which keys survive each step. Skipped, with a one-line reason, where
//! bpf(2) is unavailable (not Linux, not privileged).
//!
//! The bpfsim-kernel crate only wraps array maps, so map commands are issued here directly with
//! `libc::syscall(SYS_bpf, ...)`; program loading and `BPF_PROG_TEST_RUN` (used to make a
//! program's lookup set an LRU element's ref bit) go through bpfsim-kernel.

#![cfg(target_os = "linux")]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bpfsim_helpers::maps::*;
use bpfsim_kernel::{KernelBpf, ProgType};
use bpfsim_vm::spec::{MapDef, MapType};

/// Raw bpf(2) map commands. Each attribute struct spells out its padding so that no
/// uninitialised byte reaches the kernel.
mod sys {
    use super::*;

    const MAP_CREATE: i32 = 0;
    const MAP_LOOKUP_ELEM: i32 = 1;
    const MAP_UPDATE_ELEM: i32 = 2;
    const MAP_DELETE_ELEM: i32 = 3;
    const MAP_GET_NEXT_KEY: i32 = 4;
    const MAP_LOOKUP_AND_DELETE_ELEM: i32 = 21;

    #[repr(C)]
    #[derive(Default)]
    struct CreateAttr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
        numa_node: u32,
        map_name: [u8; 16],
        map_ifindex: u32,
        btf_fd: u32,
        btf_key_type_id: u32,
        btf_value_type_id: u32,
        btf_vmlinux_value_type_id: u32,
        map_extra: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct ElemAttr {
        map_fd: u32,
        pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }

    const _: () = assert!(std::mem::size_of::<CreateAttr>() == 72);
    const _: () = assert!(std::mem::size_of::<ElemAttr>() == 32);

    /// # Safety
    /// `attr` must be the attribute struct of `cmd`, and every address in it valid for the
    /// reads and writes `cmd` does (sizes as the map's key and value sizes) during the call.
    unsafe fn bpf<A>(cmd: i32, attr: &mut A) -> Result<i64, i32> {
        let ptr: *mut A = attr;
        // SAFETY: `ptr` is a live, writable `A` of `size_of::<A>()` bytes of plain integers; the
        // caller vouches for the addresses inside it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                ptr.cast::<libc::c_void>(),
                std::mem::size_of::<A>() as libc::c_uint,
            )
        };
        if ret < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(ret)
        }
    }

    fn addr(b: &[u8]) -> u64 {
        // An empty key is "no key" (NULL), as for queues and the first get_next_key.
        if b.is_empty() {
            0
        } else {
            b.as_ptr() as u64
        }
    }

    pub struct KMap {
        fd: OwnedFd,
        pub key_size: usize,
        pub value_len: usize,
    }

    pub fn create(def: &MapDef, inner_fd: Option<&KMap>, ncpus: usize) -> Result<KMap, i32> {
        let mut attr = CreateAttr {
            map_type: def.map_type.id(),
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: def.max_entries,
            map_flags: def.flags,
            inner_map_fd: inner_fd.map_or(0, |m| m.fd.as_raw_fd() as u32),
            ..CreateAttr::default()
        };
        attr.map_name[..6].copy_from_slice(b"bpfsim");
        // SAFETY: BPF_MAP_CREATE without BTF reads only the integers of `attr`.
        let fd = unsafe { bpf(MAP_CREATE, &mut attr) }?;
        let percpu = matches!(
            def.map_type,
            MapType::PercpuArray | MapType::PercpuHash | MapType::LruPercpuHash
        );
        let vs = def.value_size as usize;
        Ok(KMap {
            // SAFETY: a descriptor BPF_MAP_CREATE has just returned; nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
            key_size: def.key_size as usize,
            value_len: if percpu {
                vs.div_ceil(8) * 8 * ncpus
            } else {
                vs
            },
        })
    }

    impl KMap {
        pub fn raw_fd(&self) -> i32 {
            self.fd.as_raw_fd()
        }

        fn elem(&self, cmd: i32, key: &[u8], value: &mut [u8], flags: u64) -> Result<(), i32> {
            // The kernel reads `key_size` bytes of a non-NULL key and `value_len` of the value.
            assert!(key.is_empty() || key.len() == self.key_size);
            assert!(value.is_empty() || value.len() == self.value_len);
            let mut attr = ElemAttr {
                map_fd: self.raw_fd() as u32,
                key: addr(key),
                value: if value.is_empty() {
                    0
                } else {
                    value.as_mut_ptr() as u64
                },
                flags,
                ..ElemAttr::default()
            };
            // SAFETY: `key` is readable for the map's key_size bytes (or NULL) and `value`
            // readable and writable for the bytes the command copies (checked above); both
            // outlive the call.
            unsafe { bpf(cmd, &mut attr) }.map(|_| ())
        }

        pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
            let mut v = value.to_vec();
            self.elem(MAP_UPDATE_ELEM, key, &mut v, flags)
        }

        pub fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, i32> {
            let mut v = vec![0u8; self.value_len];
            self.elem(MAP_LOOKUP_ELEM, key, &mut v, 0).map(|()| v)
        }

        pub fn pop(&self) -> Result<Vec<u8>, i32> {
            let mut v = vec![0u8; self.value_len];
            self.elem(MAP_LOOKUP_AND_DELETE_ELEM, &[], &mut v, 0)
                .map(|()| v)
        }

        pub fn delete(&self, key: &[u8]) -> Result<(), i32> {
            self.elem(MAP_DELETE_ELEM, key, &mut [], 0)
        }

        pub fn next_key(&self, key: Option<&[u8]>) -> Result<Vec<u8>, i32> {
            let mut next = vec![0u8; self.key_size];
            // `value` shares its slot with `next_key`.
            let key = key.unwrap_or(&[]);
            let mut attr = ElemAttr {
                map_fd: self.raw_fd() as u32,
                key: addr(key),
                value: next.as_mut_ptr() as u64,
                ..ElemAttr::default()
            };
            assert!(key.is_empty() || key.len() == self.key_size);
            // SAFETY: `key` is readable for key_size bytes (or NULL), `next` writable for
            // key_size bytes; both outlive the call.
            unsafe { bpf(MAP_GET_NEXT_KEY, &mut attr) }.map(|_| next)
        }

        /// Every key, in the kernel's order.
        pub fn keys(&self) -> Vec<Vec<u8>> {
            let mut keys = Vec::new();
            let mut key = None;
            while let Ok(next) = self.next_key(key.as_deref()) {
                keys.push(next.clone());
                key = Some(next);
            }
            keys
        }
    }
}

use sys::KMap;

/// bpf(2) usable here, the possible CPU count (what per-CPU maps and LRU lists are sized by),
/// and the test thread pinned to CPU 0, where the simulator's host operations run.
fn kernel() -> Option<(KernelBpf, u32)> {
    let k = match KernelBpf::probe() {
        Ok(k) => k,
        Err(u) => {
            println!("skipped: {u}");
            return None;
        }
    };
    let Some(ncpus) = possible_cpus() else {
        println!("skipped: cannot read /sys/devices/system/cpu/possible");
        return None;
    };
    // SAFETY: `set` is a plain bitmask owned by this frame; CPU_SET writes inside it and
    // sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it, for the calling thread.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !pinned {
        println!("skipped: cannot pin the test thread to CPU 0");
        return None;
    }
    Some((k, ncpus))
}

/// `num_possible_cpus()`, from a list like `0-3,8-11`.
fn possible_cpus() -> Option<u32> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    let mut n = 0;
    for part in s.trim().split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()? - a.parse::<u32>().ok()? + 1,
            None => {
                part.parse::<u32>().ok()?;
                1
            }
        };
    }
    Some(n)
}

fn def(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32, flags: u32) -> MapDef {
    MapDef {
        name: format!("k_{}", map_type.name()),
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

fn sim_errno<T>(r: Result<T, MapError>) -> Result<T, i32> {
    r.map_err(|e| e.errno().code())
}

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn creation_errnos_match_the_kernel() {
    use MapType::*;
    let Some((_k, ncpus)) = kernel() else { return };
    let nopre = BPF_F_NO_PREALLOC;
    let defs = [
        def(Hash, 4, 8, 16, 0),
        def(Hash, 4, 8, 0, 0),
        def(Hash, 0, 8, 16, 0),
        def(Hash, 4, 0, 16, 0),
        def(Hash, 513, 4, 4, 0),
        def(Hash, 8, (4 << 20) - 56, 4, nopre),
        def(Hash, 8, (4 << 20) - 57, 4, nopre),
        def(Hash, 4, 4, (1 << 27) + 1, nopre),
        def(Hash, 4, 4, 4, BPF_F_NO_COMMON_LRU),
        def(Hash, 4, 4, 4, BPF_F_MMAPABLE),
        def(Hash, 4, 4, 4, BPF_F_INNER_MAP),
        def(Hash, 4, 4, 4, BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG),
        def(Hash, 4, 4, 4, BPF_F_RDONLY | BPF_F_WRONLY),
        def(Hash, 4, 4, 4, BPF_F_ZERO_SEED),
        def(Hash, 4, 4, 4, 1 << 20),
        def(PercpuHash, 4, 32768, 4, 0),
        def(PercpuHash, 4, 32769, 4, 0),
        def(PercpuHash, 4, 4, 4, BPF_F_NUMA_NODE),
        def(LruHash, 4, 4, 4, nopre),
        def(LruHash, 4, 4, 4, BPF_F_NO_COMMON_LRU),
        def(
            LruPercpuHash,
            4,
            4,
            4,
            BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE,
        ),
        def(Array, 4, 4, 4, 0),
        def(Array, 8, 4, 4, 0),
        def(Array, 4, 0, 4, 0),
        def(Array, 4, 4, 0, 0),
        def(Array, 4, 4, 4, nopre),
        def(Array, 4, 4, 4, BPF_F_MMAPABLE | BPF_F_INNER_MAP),
        def(Array, 4, 4, 4, BPF_F_PRESERVE_ELEMS),
        def(Array, 4, 1 << 31, 1, 0),
        def(PercpuArray, 4, 4, 4, BPF_F_MMAPABLE),
        def(PercpuArray, 4, 32769, 4, 0),
        def(PercpuArray, 4, 4, 4, BPF_F_NUMA_NODE),
        def(ProgArray, 4, 8, 4, 0),
        def(ProgArray, 4, 4, 4, BPF_F_RDONLY_PROG),
        def(ProgArray, 4, 4, 4, 0),
        def(PerfEventArray, 4, 4, 0, 0),
        def(PerfEventArray, 4, 4, 4, BPF_F_PRESERVE_ELEMS),
        def(LpmTrie, 8, 4, 4, 0),
        def(LpmTrie, 4, 4, 4, nopre),
        def(LpmTrie, 5, 4, 4, nopre),
        def(LpmTrie, 260, 4, 4, nopre),
        def(LpmTrie, 261, 4, 4, nopre),
        def(LpmTrie, 8, 0, 4, nopre),
        def(LpmTrie, 8, 4_194_024, 1, nopre),
        def(LpmTrie, 8, 4_194_025, 1, nopre),
        def(LpmTrie, 8, 4, 4, nopre | BPF_F_ZERO_SEED),
        def(Queue, 4, 4, 4, 0),
        def(Queue, 0, 0, 4, 0),
        def(Queue, 0, 4, 0, 0),
        def(Queue, 0, 4, 4, nopre),
        def(Queue, 0, 4, 4, BPF_F_RDONLY_PROG),
        def(Stack, 0, (4 << 20) + 1, 1, 0),
        def(Ringbuf, 0, 0, 4096, 0),
        def(Ringbuf, 0, 0, 2048, 0),
        def(Ringbuf, 0, 0, 3 * 4096, 0),
        def(Ringbuf, 0, 0, 0, 0),
        def(Ringbuf, 4, 0, 4096, 0),
        def(Ringbuf, 0, 4, 4096, 0),
        def(Ringbuf, 0, 0, 4096, BPF_F_RDONLY),
        def(Devmap, 4, 8, 4, 0),
        def(Devmap, 4, 12, 4, 0),
        def(Devmap, 8, 4, 4, 0),
        def(Devmap, 4, 4, 4, BPF_F_RDONLY_PROG),
        def(Devmap, 4, 4, 4, nopre),
        def(Devmap, 4, 4, 0, 0),
        def(DevmapHash, 4, 4, (1 << 31) + 1, 0),
        def(DevmapHash, 4, 4, 4, BPF_F_RDONLY),
        def(Cpumap, 4, 4, 4, 0),
        def(Cpumap, 4, 12, 4, 0),
        def(Cpumap, 4, 4, 4, BPF_F_RDONLY),
        def(Xskmap, 4, 8, 4, 0),
        def(Xskmap, 4, 4, 4, BPF_F_RDONLY),
        def(Xskmap, 4, 4, 4, BPF_F_RDONLY_PROG),
    ];
    let mut maps = Maps::new(ncpus);
    let mut mismatches = Vec::new();
    for d in &defs {
        let kernel = sys::create(d, None, ncpus as usize).map(|_| ());
        let sim = sim_errno(maps.create(d).map(|_| ()));
        if kernel != sim {
            mismatches.push(format!("{d:?}: kernel {kernel:?}, bpfsim {sim:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// One map created both in the kernel and in the simulator.
struct Twin {
    kernel: KMap,
    maps: Maps,
    id: MapId,
    def: MapDef,
}

impl Twin {
    fn new(d: MapDef, ncpus: u32) -> Twin {
        let kernel = sys::create(&d, None, ncpus as usize)
            .unwrap_or_else(|e| panic!("kernel refused {d:?}: errno {e}"));
        let mut maps = Maps::new(ncpus);
        let id = maps.create(&d).unwrap();
        Twin {
            kernel,
            maps,
            id,
            def: d,
        }
    }

    /// Every key by repeated get_next_key, as `KMap::keys` walks the kernel's map.
    fn sim_keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let mut key = None;
        while let Ok(next) = self.maps.get_next_key(self.id, key.as_deref()) {
            keys.push(next.clone());
            key = Some(next);
        }
        keys
    }

    /// The keys of both sides, sorted: hash iteration orders differ by design.
    fn key_sets(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut k = self.kernel.keys();
        let mut s = self.sim_keys();
        k.sort();
        s.sort();
        (k, s)
    }
}

#[derive(Debug, Clone)]
enum Step {
    Update(Vec<u8>, Vec<u8>, u64),
    Delete(Vec<u8>),
    Lookup(Vec<u8>),
    NextKey(Option<Vec<u8>>),
    Pop,
}

/// Apply `step` to both sides; the results must agree.
fn run_step(t: &mut Twin, step: &Step) -> (Result<Vec<u8>, i32>, Result<Vec<u8>, i32>) {
    let (k, m, id) = (&t.kernel, &mut t.maps, t.id);
    match step {
        Step::Update(key, value, flags) => (
            k.update(key, value, *flags).map(|()| vec![]),
            sim_errno(m.update(id, key, value, *flags)).map(|()| vec![]),
        ),
        Step::Delete(key) => (
            k.delete(key).map(|()| vec![]),
            sim_errno(m.delete(id, key)).map(|()| vec![]),
        ),
        Step::Lookup(key) => (k.lookup(key), sim_errno(m.lookup(id, key))),
        Step::NextKey(key) => (
            k.next_key(key.as_deref()),
            sim_errno(m.get_next_key(id, key.as_deref())),
        ),
        Step::Pop => (k.pop(), sim_errno(m.pop(id))),
    }
}

/// A random step for `t`'s map type, over a small key space so that keys collide.
fn random_step(t: &Twin, rng: &mut Rng, ncpus: u32) -> Step {
    use MapType::*;
    let d = &t.def;
    let flags = [0, 0, 1, 2, 2, 3, 4][rng.below(7) as usize];
    let u32k = |rng: &mut Rng, n: u64| (rng.below(n) as u32).to_le_bytes().to_vec();
    let key = match d.map_type {
        LpmTrie => {
            let len = rng.below(19) as u32;
            let data = [
                [10u8, 11][rng.below(2) as usize],
                [0u8, 1, 128, 255][rng.below(4) as usize],
            ];
            [&len.to_le_bytes()[..], &data].concat()
        }
        Queue | Stack => vec![],
        Array | PercpuArray | Devmap | Cpumap => u32k(rng, d.max_entries as u64 + 2),
        _ => u32k(rng, 3 * d.max_entries as u64),
    };
    let vs = d.value_size as usize;
    let mut value: Vec<u8> = (0..vs).map(|_| rng.next() as u8).collect();
    match d.map_type {
        // Only ifindex 1 (lo) exists everywhere; a program fd only with ifindex 0 (EINVAL).
        Devmap | DevmapHash => {
            value[..4].copy_from_slice(&(rng.below(2) as u32).to_le_bytes());
            if vs == 8 {
                let prog: i32 = [0, -1, 3][rng.below(3) as usize];
                let prog = if value[..4] == [0; 4] {
                    prog
                } else {
                    prog.min(0)
                };
                value[4..].copy_from_slice(&prog.to_le_bytes());
            }
        }
        Cpumap => {
            let q: u32 = [0, 100, 20000][rng.below(3) as usize];
            value.copy_from_slice(&q.to_le_bytes());
        }
        PercpuArray | PercpuHash | LruPercpuHash => {
            // The bpf(2) layout: each CPU's value padded to 8 bytes.
            let stride = vs.div_ceil(8) * 8;
            value = vec![0; stride * ncpus as usize];
            for c in 0..ncpus as usize {
                for b in &mut value[c * stride..c * stride + vs] {
                    *b = rng.next() as u8;
                }
            }
        }
        _ => {}
    }
    let hashed = matches!(
        d.map_type,
        Hash | PercpuHash | LruHash | LruPercpuHash | DevmapHash
    );
    match rng.below(10) {
        0..=3 => Step::Update(key, value, flags),
        4 | 5 => {
            if matches!(d.map_type, Queue | Stack) {
                Step::Pop
            } else {
                Step::Delete(key)
            }
        }
        6 | 7 => Step::Lookup(key),
        // Hash iteration orders differ by design: only the first key's existence is compared.
        _ if hashed => Step::NextKey(None),
        8 => Step::NextKey(Some(key)),
        _ => Step::NextKey(None),
    }
}

fn compare_sequence(d: MapDef, ncpus: u32, seed: u64, steps: usize) {
    use MapType::*;
    let mut t = Twin::new(d.clone(), ncpus);
    let mut rng = Rng(seed);
    let hashed = matches!(
        d.map_type,
        Hash | PercpuHash | LruHash | LruPercpuHash | DevmapHash
    );
    let mut history = Vec::new();
    for i in 0..steps {
        let step = random_step(&t, &mut rng, ncpus);
        let (kernel, sim) = run_step(&mut t, &step);
        history.push(format!("{step:?} -> {kernel:?}"));
        let (kernel, sim) = match &step {
            // For hashes the first key differs; compare success and errno only.
            Step::NextKey(_) if hashed => (kernel.map(|_| vec![]), sim.map(|_| vec![])),
            _ => (kernel, sim),
        };
        let context = || format!("{d:?}, seed {seed}, step {i}:\n{}", history.join("\n"));
        assert_eq!(kernel, sim, "{}", context());
        if hashed {
            let (k, s) = t.key_sets();
            assert_eq!(k, s, "surviving keys differ: {}", context());
        } else if !matches!(d.map_type, Queue | Stack) {
            assert_eq!(
                t.kernel.keys(),
                t.sim_keys(),
                "iteration differs: {}",
                context()
            );
        }
    }
}

#[test]
fn operation_results_match_the_kernel_over_random_sequences() {
    use MapType::*;
    let Some((_k, ncpus)) = kernel() else { return };
    let nopre = BPF_F_NO_PREALLOC;
    let defs = [
        def(Hash, 4, 8, 4, 0),
        def(Hash, 4, 3, 6, nopre),
        def(PercpuHash, 4, 12, 4, 0),
        def(Array, 4, 8, 4, 0),
        def(PercpuArray, 4, 4, 3, 0),
        def(LpmTrie, 6, 4, 6, nopre),
        def(Queue, 0, 4, 3, 0),
        def(Stack, 0, 4, 3, 0),
        def(Devmap, 4, 8, 4, 0),
        def(Devmap, 4, 4, 4, 0),
        def(DevmapHash, 4, 4, 3, 0),
        def(Cpumap, 4, 4, 4, 0),
        def(LruHash, 4, 8, 4, 0),
        def(LruHash, 4, 8, 16, 0),
        def(LruHash, 4, 4, 64, 0),
        def(LruHash, 4, 8, 6, BPF_F_NO_COMMON_LRU),
        def(LruPercpuHash, 4, 8, 8, 0),
        def(LruPercpuHash, 4, 8, 5, BPF_F_NO_COMMON_LRU),
    ];
    for (n, d) in defs.into_iter().enumerate() {
        for seed in 1..=4u64 {
            compare_sequence(d.clone(), ncpus, seed * 7919 + n as u64, 300);
        }
    }
}

/// `*(u32 *)(r10 - 4) = key; r1 = map; r2 = r10 - 4; call bpf_map_lookup_elem; r0 = XDP_PASS`.
fn lookup_program(map_fd: i32, key: u32) -> Vec<u8> {
    let insn = |op: u8, regs: u8, off: i16, imm: i32| {
        let mut b = vec![op, regs];
        b.extend_from_slice(&off.to_le_bytes());
        b.extend_from_slice(&imm.to_le_bytes());
        b
    };
    [
        insn(0x62, 0x0a, -4, key as i32), // st [r10 - 4], key
        insn(0x18, 0x11, 0, map_fd),      // lddw r1, map_fd (BPF_PSEUDO_MAP_FD)
        insn(0x00, 0x00, 0, 0),           //   (second half)
        insn(0xbf, 0xa2, 0, 0),           // r2 = r10
        insn(0x07, 0x02, 0, -4),          // r2 += -4
        insn(0x85, 0x00, 0, 1),           // call bpf_map_lookup_elem
        insn(0xb7, 0x00, 0, 2),           // r0 = XDP_PASS
        insn(0x95, 0x00, 0, 0),           // exit
    ]
    .concat()
}

#[test]
fn lru_eviction_with_program_lookups_matches_the_kernel() {
    let Some((k, ncpus)) = kernel() else { return };
    for (max, flags, map_type) in [
        (4, 0, MapType::LruHash),
        (8, 0, MapType::LruHash),
        (20, 0, MapType::LruHash),
        (6, BPF_F_NO_COMMON_LRU, MapType::LruHash),
        (9, BPF_F_NO_COMMON_LRU, MapType::LruHash),
        (8, 0, MapType::LruPercpuHash),
    ] {
        let d = def(map_type, 4, 8, max, flags);
        let mut t = Twin::new(d.clone(), ncpus);
        let keys = 2 * max;
        let progs: Vec<_> = (0..keys)
            .map(|key| {
                k.prog_load(
                    ProgType::XDP,
                    &lookup_program(t.kernel.raw_fd(), key),
                    "GPL",
                    1,
                )
                .unwrap_or_else(|e| panic!("loading the lookup program: {e}"))
            })
            .collect();
        let mut rng = Rng(0x5eed + max as u64);
        let mut history = Vec::new();
        for step in 0..400 {
            let key = rng.below(keys as u64) as u32;
            match rng.below(8) {
                0..=3 => {
                    let vlen = t.kernel.value_len;
                    let value = vec![rng.next() as u8; vlen];
                    let flags = [0, 0, 0, 1, 2][rng.below(5) as usize];
                    let kr = t.kernel.update(&key.to_le_bytes(), &value, flags);
                    let sr = sim_errno(t.maps.update(t.id, &key.to_le_bytes(), &value, flags));
                    history.push(format!("update {key} flags {flags} -> {kr:?}"));
                    assert_eq!(kr, sr, "{d:?} step {step}\n{}", history.join("\n"));
                }
                4 => {
                    let kr = t.kernel.delete(&key.to_le_bytes());
                    let sr = sim_errno(t.maps.delete(t.id, &key.to_le_bytes()));
                    history.push(format!("delete {key} -> {kr:?}"));
                    assert_eq!(kr, sr, "{d:?} step {step}\n{}", history.join("\n"));
                }
                _ => {
                    // A lookup from a program on CPU 0 sets the element's ref bit.
                    let out = k.test_run(&progs[key as usize], &[0u8; 64], 1).unwrap();
                    assert_eq!(out.retval, 2);
                    let map = t.maps.get_mut(t.id).unwrap();
                    let _ = map.lookup(&key.to_le_bytes(), 0);
                    history.push(format!("program lookup {key}"));
                }
            }
            let (kernel, sim) = t.key_sets();
            assert_eq!(
                kernel,
                sim,
                "{d:?} step {step}: surviving keys differ\n{}",
                history.join("\n")
            );
        }
    }
}

#[test]
fn queue_overwrite_and_access_flags_match_the_kernel() {
    let Some((_k, ncpus)) = kernel() else { return };
    // Freeze and the host access flags.
    for flags in [BPF_F_RDONLY, BPF_F_WRONLY, 0] {
        let mut t = Twin::new(def(MapType::Hash, 4, 4, 4, flags), ncpus);
        for step in [
            Step::Update(vec![1, 0, 0, 0], vec![1; 4], 0),
            Step::Lookup(vec![1, 0, 0, 0]),
            Step::NextKey(None),
            Step::Delete(vec![1, 0, 0, 0]),
        ] {
            let (kernel, sim) = run_step(&mut t, &step);
            assert_eq!(kernel, sim, "flags {flags:#x}: {step:?}");
        }
    }
    // A queue that keeps overwriting its oldest element.
    for map_type in [MapType::Queue, MapType::Stack] {
        let mut t = Twin::new(def(map_type, 0, 4, 3, 0), ncpus);
        for i in 0..10u32 {
            let step = Step::Update(vec![], i.to_le_bytes().to_vec(), BPF_EXIST);
            let (kernel, sim) = run_step(&mut t, &step);
            assert_eq!(kernel, sim);
        }
        for _ in 0..4 {
            let (kernel, sim) = run_step(&mut t, &Step::Pop);
            assert_eq!(kernel, sim, "{map_type}");
        }
    }
}
