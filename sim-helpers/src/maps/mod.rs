//! Simulated BPF maps with the kernel's semantics and errnos.
//!
//! # Shape
//!
//! - [`Maps`] is the registry: it creates maps from [`MapDef`]s (checking them as
//!   `BPF_MAP_CREATE` does), names them by [`MapId`] and offers the host API, which behaves like
//!   the bpf(2) commands (lookup, update, delete, get_next_key, freeze, push/pop/peek) plus
//!   conveniences (per-CPU values as one `Vec` per CPU, iteration, clear, ring buffer and perf
//!   readers).
//! - A [`Map`] is a [`MapState`] (keys, free lists, LRU lists, ring positions...) and its
//!   [`Arenas`]: the byte buffers that hold the values, preallocated at creation and never moved
//!   or resized while the map lives. Per-CPU maps have one arena per simulated CPU.
//! - Program-side operations (what the helpers call) live on [`MapState`]. A lookup returns an
//!   **offset** into the arena, so the runtime maps each arena as one guest memory region and a
//!   value pointer is `region_base + offset`. Operations that write value bytes take the arenas
//!   through [`ArenaAccess`], so that during a run the arenas can be lent to the guest memory map
//!   while the helpers hold `&mut MapState` (see [`Map::split_mut`]).
//!
//! # Why an enum
//!
//! The storage families are an enum ([`MapState`] dispatches with a `match`) rather than trait
//! objects: calls are static and inlinable on the helper hot path, every operation must say what
//! each family does (the compiler checks exhaustiveness when a family is added), and the families
//! have different extra operations (ring buffer reserve, perf output, queue pop) that a common
//! trait would have to stub out everywhere. The families:
//!
//! | family | map types | module |
//! |---|---|---|
//! | array | ARRAY, PERCPU_ARRAY | [`array`](mod@array) |
//! | slot array | PROG_ARRAY, ARRAY_OF_MAPS, DEVMAP, CPUMAP, XSKMAP | [`slots`] |
//! | hash | HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH, HASH_OF_MAPS, DEVMAP_HASH | [`hash`], [`lru`] |
//! | LPM trie | LPM_TRIE | [`lpm`] |
//! | queue | QUEUE, STACK | [`queue`] |
//! | ring buffer | RINGBUF | [`ringbuf`] |
//! | perf events | PERF_EVENT_ARRAY | [`perf`] |
//!
//! # Determinism
//!
//! Nothing depends on addresses, hashing seeds or time. Hash maps iterate in insertion order;
//! LPM tries in the kernel's post-order; arrays by index. "The current CPU" is always an
//! argument (the host's operations run on [`Maps::host_cpu`], CPU 0 by default).

pub mod array;
mod check;
pub mod error;
pub mod hash;
pub mod lpm;
pub mod lru;
pub mod perf;
pub mod queue;
mod registry;
pub mod ringbuf;
pub mod slots;
mod table;

use std::fmt;

use bpfsim_vm::spec::{MapDef, MapType};

pub use array::ArrayMap;
pub use check::{MAP_MEMORY_BUDGET, NR_CPUS};
pub use error::{CreateRule, Errno, MapError, Op, OpError, Reason};
pub use hash::HashTab;
pub use lpm::LpmTrie;
pub use perf::{PerfEventArray, PerfRecord, BPF_F_CURRENT_CPU, BPF_F_INDEX_MASK};
pub use queue::QueueStack;
pub use registry::{Entry, Maps, PerCpuEntry};
pub use ringbuf::RingBuf;
pub use slots::SlotArray;

use check::Family;

/// `BPF_ANY`: create or update.
pub const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only.
pub const BPF_EXIST: u64 = 2;
/// `BPF_F_LOCK`: update the value under its `bpf_spin_lock`.
pub const BPF_F_LOCK: u64 = 4;

/// `map_flags` bits of `BPF_MAP_CREATE`.
pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
pub const BPF_F_NUMA_NODE: u32 = 1 << 2;
pub const BPF_F_RDONLY: u32 = 1 << 3;
pub const BPF_F_WRONLY: u32 = 1 << 4;
pub const BPF_F_ZERO_SEED: u32 = 1 << 6;
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
pub const BPF_F_WRONLY_PROG: u32 = 1 << 8;
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
pub const BPF_F_PRESERVE_ELEMS: u32 = 1 << 11;
pub const BPF_F_INNER_MAP: u32 = 1 << 12;

/// A map's id in its [`Maps`] registry. Ids start at 1, so 0 never names a map (an empty
/// map-in-map slot reads as no map).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MapId(pub u32);

impl fmt::Display for MapId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Special fields of the value type, as the object's BTF describes them (the kernel's
/// `btf_record`); the loader fills this in. Without BTF a map has none.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct ValueFields {
    /// Offset of a `struct bpf_spin_lock` in the value: allows `BPF_F_LOCK` updates, and the
    /// lock word is never overwritten by an update nor shown by a host lookup.
    pub spin_lock: Option<u32>,
}

/// Access to a map's arenas during an operation: arena `index` is the CPU's for per-CPU maps and
/// 0 for the others. The runtime implements it over guest memory while a program runs; [`Arenas`]
/// implements it over the owned buffers.
pub trait ArenaAccess {
    fn arena_mut(&mut self, index: usize) -> Option<&mut [u8]>;
}

/// The owned value arenas of a map. Allocated once at creation (zeroed, so untouched pages cost
/// nothing) and never reallocated: a region mapped from one stays valid while the map lives.
pub struct Arenas(Vec<Box<[u8]>>);

impl Arenas {
    fn new(count: u32, len: u64) -> Arenas {
        Arenas(
            (0..count)
                .map(|_| vec![0u8; len as usize].into_boxed_slice())
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.0.get(index).map(|a| &a[..])
    }

    /// Every arena, to lend to a guest memory map (`MemoryMap::map_mut`) for a run.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut [u8]> {
        self.0.iter_mut().map(|a| &mut a[..])
    }
}

impl ArenaAccess for Arenas {
    fn arena_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.0.get_mut(index).map(|a| &mut a[..])
    }
}

/// `len` bytes at `off` of arena `index`, or an error instead of a panic.
pub(crate) fn span(
    mem: &mut impl ArenaAccess,
    index: usize,
    off: usize,
    len: usize,
) -> Result<&mut [u8], OpError> {
    let fault = OpError::new(Errno::EFAULT, Reason::NoArena { index });
    mem.arena_mut(index)
        .ok_or(fault)?
        .get_mut(off..off + len)
        .ok_or(fault)
}

/// The value(s) an update writes.
#[derive(Clone, Copy)]
pub(crate) enum Values<'a> {
    /// A map with one value per key.
    One(&'a [u8]),
    /// A program's update of a per-CPU map: this CPU's value (a new element is zero elsewhere).
    Cpu(&'a [u8], u32),
    /// The host's update of a per-CPU map: every CPU's value, `round_up(value_size, 8)` apart
    /// (the bpf(2) layout).
    All(&'a [u8]),
}

pub(crate) enum Storage {
    Array(ArrayMap),
    Slots(SlotArray),
    Hash(HashTab),
    Lpm(LpmTrie),
    Queue(QueueStack),
    Ringbuf(RingBuf),
    Perf(PerfEventArray),
}

/// Everything about a map but its value bytes: what the helpers operate on during a run.
pub struct MapState {
    id: MapId,
    def: MapDef,
    max_entries: u32,
    ncpus: u32,
    percpu: bool,
    fields: ValueFields,
    frozen: bool,
    storage: Storage,
}

/// A map: its state and its value arenas.
pub struct Map {
    state: MapState,
    arenas: Arenas,
}

impl MapState {
    fn new(
        id: MapId,
        def: &MapDef,
        ncpus: u32,
        fields: ValueFields,
    ) -> Result<(MapState, Arenas), MapError> {
        let layout = check::check(def, ncpus, fields.spin_lock).map_err(|(errno, rule)| {
            MapError::Create {
                map: def.name.clone(),
                map_type: def.map_type,
                errno,
                rule,
            }
        })?;
        let (ks, vs, max) = (def.key_size, def.value_size, layout.max_entries);
        let lock = fields.spin_lock;
        let storage = match layout.family {
            Family::Array { percpu } => Storage::Array(ArrayMap::new(vs, max, percpu, ncpus, lock)),
            Family::Slots(kind) => Storage::Slots(SlotArray::new(kind, vs, max, ncpus)),
            Family::Hash { kind, per_cpu_lru } => {
                Storage::Hash(HashTab::new(kind, ks, vs, max, ncpus, lock, per_cpu_lru))
            }
            Family::Lpm => Storage::Lpm(LpmTrie::new(ks, vs, max)),
            Family::Queue { stack } => Storage::Queue(QueueStack::new(stack, vs, max)),
            Family::Ringbuf => Storage::Ringbuf(RingBuf::new(max)),
            Family::Perf => Storage::Perf(PerfEventArray::new(max, ncpus)),
        };
        let state = MapState {
            id,
            def: def.clone(),
            max_entries: max,
            ncpus,
            percpu: matches!(
                def.map_type,
                MapType::PercpuArray | MapType::PercpuHash | MapType::LruPercpuHash
            ),
            fields,
            frozen: false,
            storage,
        };
        Ok((state, Arenas::new(layout.arenas, layout.arena_len)))
    }

    pub fn id(&self) -> MapId {
        self.id
    }

    pub fn def(&self) -> &MapDef {
        &self.def
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn map_type(&self) -> MapType {
        self.def.map_type
    }

    pub fn key_size(&self) -> u32 {
        self.def.key_size
    }

    pub fn value_size(&self) -> u32 {
        self.def.value_size
    }

    /// `max_entries` as the kernel reports it (an `LRU` with `BPF_F_NO_COMMON_LRU` rounds it up
    /// to a multiple of the CPU count).
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    pub fn map_flags(&self) -> u32 {
        self.def.flags
    }

    /// Whether each CPU has its own value (and arena).
    pub fn is_percpu(&self) -> bool {
        self.percpu
    }

    pub fn ncpus(&self) -> u32 {
        self.ncpus
    }

    pub fn value_fields(&self) -> ValueFields {
        self.fields
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The arena a program on `cpu` sees: `cpu` for per-CPU maps, else 0.
    #[inline]
    pub fn arena_index(&self, cpu: u32) -> usize {
        if self.percpu {
            cpu as usize
        } else {
            0
        }
    }

    /// Number of elements (filled slots for the slot arrays; `max_entries` for arrays, whose
    /// elements always exist; bytes pending for a ring buffer are not elements: 0).
    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Array(_) => self.max_entries as usize,
            Storage::Slots(s) => s.len(),
            Storage::Perf(p) => p.slots.len(),
            Storage::Hash(h) => h.len(),
            Storage::Lpm(t) => t.len(),
            Storage::Queue(q) => q.len(),
            Storage::Ringbuf(_) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key_ok(&self, key: &[u8]) -> Result<(), OpError> {
        if key.len() != self.def.key_size as usize {
            return Err(OpError::key_size(self.def.key_size, key.len()));
        }
        Ok(())
    }

    fn value_ok(&self, value: &[u8]) -> Result<(), OpError> {
        if value.len() != self.def.value_size as usize {
            return Err(OpError::value_size(
                self.def.value_size as usize,
                value.len(),
            ));
        }
        Ok(())
    }

    fn cpu_ok(&self, cpu: u32) -> Result<(), OpError> {
        if cpu >= self.ncpus {
            return Err(OpError::new(
                Errno::EINVAL,
                Reason::BadValue("the CPU number is not a simulated CPU"),
            ));
        }
        Ok(())
    }

    /// `bpf_map_lookup_elem` from a program on `cpu`: the offset of the value in the arena
    /// ([`Self::arena_index`] of `cpu`), or `None` (the helper's NULL). Marks an LRU element as
    /// recently used. Maps whose lookup gives programs no value pointer answer `None`: queues,
    /// stacks, ring buffers, perf event arrays, program arrays and CPU maps (the verifier rejects
    /// such lookups); for a map-in-map the offset holds the inner [`MapId`] (see
    /// [`Self::inner_map`]). A key of the wrong size finds nothing.
    #[inline(always)]
    pub fn lookup(&mut self, key: &[u8], cpu: u32) -> Option<usize> {
        // The offset is the same in every CPU's arena; `cpu` only selects which arena the
        // caller reads (`arena_index`), so nothing here depends on it yet.
        let _ = cpu;
        if key.len() != self.def.key_size as usize {
            return None;
        }
        // The hash maps (which engines do not answer themselves, as they do arrays) tested
        // first and inlined into the caller: the match's jump table and the calls down to the
        // table were most of an empty map's lookup (xdpfilt_dny_ip).
        if let Storage::Hash(h) = &mut self.storage {
            return h.lookup(key);
        }
        self.lookup_other(key)
    }

    /// [`Self::lookup`] of a map other than a hash map, its key of the map's size.
    #[inline(never)]
    fn lookup_other(&mut self, key: &[u8]) -> Option<usize> {
        match &mut self.storage {
            Storage::Array(a) => a.lookup(key),
            Storage::Hash(h) => h.lookup(key),
            Storage::Lpm(t) => t.lookup(key),
            Storage::Slots(s) => s.lookup(key),
            Storage::Queue(_) | Storage::Ringbuf(_) | Storage::Perf(_) => None,
        }
    }

    /// For an ARRAY or PERCPU_ARRAY: `(max_entries, stride)`, what a lookup from a program
    /// answers from ([`Self::lookup`] of a 4-byte key `index` finds offset `index * stride` when
    /// `index < max_entries`, and nothing else); `None` for other maps.
    pub fn array_layout(&self) -> Option<(u32, u64)> {
        match &self.storage {
            Storage::Array(a) if self.def.key_size == 4 => Some(a.layout()),
            _ => None,
        }
    }

    /// For an array whose slots may be empty (PROG_ARRAY, ARRAY_OF_MAPS, DEVMAP, CPUMAP,
    /// XSKMAP): `(max_entries, stride)` with the filled slots'
    /// bits written in `bits` ([`Self::lookup`] of a 4-byte key `index` finds offset `index *
    /// stride` when `index < max_entries` and bit `index % 64` of `bits[index / 64]` is set,
    /// and nothing else); `None` for other maps, or when the bits need more words than `bits`
    /// has.
    pub fn slot_layout(&self, bits: &mut [u64]) -> Option<(u32, u64)> {
        match &self.storage {
            Storage::Slots(s) if self.def.key_size == 4 => s.lookup_bits(bits),
            _ => None,
        }
    }

    /// The syscall's lookup: the value's offset, without touching LRU state; the errno when the
    /// kernel refuses (`ENOENT`, or the map type's "not supported").
    pub(crate) fn host_lookup(&self, key: &[u8]) -> Result<usize, OpError> {
        let key_ok = self.key_ok(key);
        match &self.storage {
            Storage::Queue(_) => Err(QueueStack::keyed_op(Op::Lookup)),
            Storage::Ringbuf(_) => Err(RingBuf::keyed_op(Op::Lookup, !key.is_empty())),
            _ if key_ok.is_err() => key_ok.map(|()| 0),
            Storage::Array(a) => a.lookup(key).ok_or(OpError::no_key()),
            Storage::Hash(h) => h.peek(key).ok_or(OpError::no_key()),
            Storage::Lpm(t) => t.lookup(key).ok_or(OpError::no_key()),
            Storage::Slots(s) => s.host_lookup(key),
            Storage::Perf(p) => p.slots.host_lookup(key),
        }
    }

    /// `bpf_map_update_elem` from a program on `cpu` (a per-CPU map updates that CPU's value;
    /// a new per-CPU element reads as zero on the other CPUs). `value` is `value_size` bytes.
    /// Inner map ids and program ids are stored unchecked: programs cannot update those maps
    /// (the verifier refuses), and the host API ([`Maps::update`]) checks inner maps.
    pub fn update(
        &mut self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        cpu: u32,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        self.value_ok(value)?;
        let values = if self.percpu {
            Values::Cpu(value, cpu)
        } else {
            Values::One(value)
        };
        self.update_values(key, values, flags, cpu, mem)
    }

    pub(crate) fn update_values(
        &mut self,
        key: &[u8],
        values: Values<'_>,
        flags: u64,
        cpu: u32,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        self.cpu_ok(cpu)?;
        let key_ok = self.key_ok(key);
        let value = match values {
            Values::One(v) | Values::Cpu(v, _) => v,
            Values::All(_) => &[],
        };
        match &mut self.storage {
            // A keyed update of a queue or stack is a push (the key is empty).
            Storage::Queue(q) => {
                if !key.is_empty() {
                    return Err(OpError::key_size(0, key.len()));
                }
                q.push(value, flags)
            }
            Storage::Ringbuf(_) => Err(RingBuf::keyed_op(Op::Update, !key.is_empty())),
            _ if key_ok.is_err() => key_ok,
            Storage::Array(a) => a.update(key, values, flags, mem),
            Storage::Hash(h) => h.update(key, values, flags, cpu, mem),
            Storage::Lpm(t) => t.update(key, value, flags, mem),
            Storage::Slots(s) => s.update(key, value, flags, mem),
            Storage::Perf(p) => p.slots.update(key, value, flags, mem),
        }
    }

    /// `bpf_map_delete_elem`.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), OpError> {
        let key_ok = self.key_ok(key);
        match &mut self.storage {
            Storage::Queue(_) => Err(QueueStack::keyed_op(Op::Delete)),
            Storage::Ringbuf(_) => Err(RingBuf::keyed_op(Op::Delete, !key.is_empty())),
            _ if key_ok.is_err() => key_ok,
            Storage::Array(a) => a.delete(),
            Storage::Hash(h) => h.delete(key),
            Storage::Lpm(t) => t.delete(key),
            Storage::Slots(s) => s.delete(key),
            Storage::Perf(p) => p.slots.delete(key),
        }
    }

    /// `BPF_MAP_GET_NEXT_KEY`: the key after `key` in iteration order into `out` (`key_size`
    /// bytes); `None`, or a key that is not in the map, gives the first key; after the last key
    /// it is `ENOENT`.
    pub fn get_next_key(&self, key: Option<&[u8]>, out: &mut [u8]) -> Result<(), OpError> {
        match &self.storage {
            Storage::Queue(_) => return Err(QueueStack::keyed_op(Op::GetNextKey)),
            Storage::Ringbuf(_) => return Err(RingBuf::keyed_op(Op::GetNextKey, key.is_some())),
            _ => {}
        }
        if let Some(k) = key {
            self.key_ok(k)?;
        }
        if out.len() != self.def.key_size as usize {
            return Err(OpError::key_size(self.def.key_size, out.len()));
        }
        match &self.storage {
            Storage::Array(a) => a.get_next_key(key, out),
            Storage::Hash(h) => h.get_next_key(key, out),
            Storage::Lpm(t) => t.get_next_key(key, out),
            Storage::Slots(s) => s.get_next_key(key, out),
            Storage::Perf(p) => p.slots.get_next_key(key, out),
            Storage::Queue(_) | Storage::Ringbuf(_) => Err(OpError::no_key()),
        }
    }

    fn queue(&mut self, op: Op) -> Result<&mut QueueStack, OpError> {
        match &mut self.storage {
            Storage::Queue(q) => Ok(q),
            _ => Err(OpError::unsupported(Errno::EINVAL, op)),
        }
    }

    /// `bpf_map_push_elem` (QUEUE and STACK; `BPF_EXIST` overwrites the oldest when full).
    pub fn push(&mut self, value: &[u8], flags: u64) -> Result<(), OpError> {
        self.queue(Op::Push)?.push(value, flags)
    }

    /// `bpf_map_pop_elem`: the next value into `out` (`value_size` bytes), removed.
    pub fn pop(&mut self, out: &mut [u8]) -> Result<(), OpError> {
        self.queue(Op::Pop)?.pop(out)
    }

    /// `bpf_map_peek_elem`: the next value into `out`, kept.
    pub fn peek(&self, out: &mut [u8]) -> Result<(), OpError> {
        match &self.storage {
            Storage::Queue(q) => q.peek(out),
            _ => Err(OpError::unsupported(Errno::EINVAL, Op::Peek)),
        }
    }

    /// The ring buffer, for the ringbuf helpers.
    pub fn ringbuf_mut(&mut self) -> Option<&mut RingBuf> {
        match &mut self.storage {
            Storage::Ringbuf(r) => Some(r),
            _ => None,
        }
    }

    pub fn ringbuf(&self) -> Option<&RingBuf> {
        match &self.storage {
            Storage::Ringbuf(r) => Some(r),
            _ => None,
        }
    }

    /// The perf event array, for `bpf_perf_event_output`.
    pub fn perf_mut(&mut self) -> Option<&mut PerfEventArray> {
        match &mut self.storage {
            Storage::Perf(p) => Some(p),
            _ => None,
        }
    }

    pub fn perf(&self) -> Option<&PerfEventArray> {
        match &self.storage {
            Storage::Perf(p) => Some(p),
            _ => None,
        }
    }

    /// Offset of the value stored at `index` of a slot array (PROG_ARRAY, ARRAY_OF_MAPS, DEVMAP,
    /// CPUMAP, XSKMAP), if the slot is filled: what `tail_call` and `redirect_map` read (a u32
    /// program id, map id, ifindex, queue size or socket id, then for DEVMAP/CPUMAP with 8-byte
    /// values a u32 program id).
    pub fn slot(&self, index: u32) -> Option<usize> {
        match &self.storage {
            Storage::Slots(s) => s.value_at(index),
            _ => None,
        }
    }

    /// Whether `bpf_redirect_map` finds a target under `key` for a program on `cpu`: a filled
    /// slot of a slot array (DEVMAP, CPUMAP, XSKMAP, and the other slot arrays alike), else
    /// what [`Self::lookup`] of the 4-byte key finds (DEVMAP_HASH; an LRU map's lookup marks
    /// the element). One dispatch on the map's family: the helper's hottest path.
    #[inline]
    pub fn redirect_target(&mut self, key: u32, cpu: u32) -> bool {
        match &self.storage {
            // A slot array's lookup finds only filled slots: the slot says it all.
            Storage::Slots(s) => s.value_at(key).is_some(),
            _ => self.lookup(&key.to_le_bytes(), cpu).is_some(),
        }
    }

    /// The inner map a map-in-map holds under `key` (ARRAY_OF_MAPS, HASH_OF_MAPS).
    pub fn inner_map(&mut self, key: &[u8], mem: &mut impl ArenaAccess) -> Option<MapId> {
        if !matches!(
            self.def.map_type,
            MapType::ArrayOfMaps | MapType::HashOfMaps
        ) {
            return None;
        }
        let off = self.lookup(key, 0)?;
        let b = span(mem, 0, off, 4).ok()?;
        Some(MapId(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    /// Keys in iteration order with the offset of their value. Arrays list every index; slot
    /// arrays the filled slots; queues, stacks and ring buffers nothing.
    pub fn entries(&self) -> Vec<(Vec<u8>, usize)> {
        match &self.storage {
            Storage::Array(a) => a.keys().collect(),
            Storage::Slots(s) => s.keys().collect(),
            Storage::Perf(p) => p.slots.keys().collect(),
            Storage::Hash(h) => h.keys().collect(),
            Storage::Lpm(t) => t.keys().collect(),
            Storage::Queue(_) | Storage::Ringbuf(_) => Vec::new(),
        }
    }

    /// How many entries [`Self::entries`] lists.
    pub fn entries_len(&self) -> usize {
        match &self.storage {
            Storage::Queue(_) | Storage::Ringbuf(_) => 0,
            _ => self.len(),
        }
    }

    /// A number that stays the same while what [`Self::visit_entries`] visits does (the same
    /// keys at the same offsets, in the same order), and that no other map's entries have had:
    /// an array's never change (its number is [0, 0]), a hash map's change with the keys it holds.
    /// `None` for other maps (their entries may change without a new number).
    pub fn entries_generation(&self) -> Option<[u64; 2]> {
        match &self.storage {
            Storage::Array(_) => Some([0; 2]),
            Storage::Hash(h) => Some(h.key_generation()),
            _ => None,
        }
    }

    /// [`Self::entries`], each key lent to `f` rather than allocated: what
    /// `bpf_for_each_map_elem` walks for each call.
    pub fn visit_entries(&self, f: &mut dyn FnMut(&[u8], usize)) {
        match &self.storage {
            Storage::Array(a) => a.visit_keys(f),
            Storage::Slots(s) => s.visit_keys(f),
            Storage::Perf(p) => p.slots.visit_keys(f),
            Storage::Hash(h) => h.visit_keys(f),
            Storage::Lpm(t) => t.keys().for_each(|(k, off)| f(&k, off)),
            Storage::Queue(_) | Storage::Ringbuf(_) => {}
        }
    }

    /// Empty the map as if every element were deleted (arrays: zeroed), dropping queued values,
    /// ring records and perf samples.
    pub fn clear(&mut self, mem: &mut impl ArenaAccess) {
        match &mut self.storage {
            Storage::Array(a) => a.clear(mem),
            Storage::Slots(s) => s.clear(),
            Storage::Hash(h) => h.clear(),
            Storage::Lpm(t) => t.clear(),
            Storage::Queue(q) => q.clear(),
            Storage::Ringbuf(r) => {
                r.clear();
                if let Some(a) = mem.arena_mut(0) {
                    a.fill(0);
                }
            }
            Storage::Perf(p) => p.clear(),
        }
    }

    pub(crate) fn queue_values(&self) -> Vec<Vec<u8>> {
        match &self.storage {
            Storage::Queue(q) => q.values(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn freeze(&mut self) {
        self.frozen = true;
    }
}

impl Map {
    pub fn state(&self) -> &MapState {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut MapState {
        &mut self.state
    }

    /// The state and the arenas, borrowed separately: lend the arenas to the guest memory map
    /// (one region each) and give the state to the helpers for the length of a run.
    pub fn split_mut(&mut self) -> (&mut MapState, &mut Arenas) {
        (&mut self.state, &mut self.arenas)
    }

    pub fn arenas(&self) -> &Arenas {
        &self.arenas
    }

    /// The arena a program on `cpu` sees (empty for maps without one: queues, stacks, perf).
    pub fn arena(&self, cpu: u32) -> &[u8] {
        self.arenas.get(self.state.arena_index(cpu)).unwrap_or(&[])
    }

    pub fn arena_mut(&mut self, cpu: u32) -> &mut [u8] {
        let index = self.state.arena_index(cpu);
        self.arenas.arena_mut(index).unwrap_or(&mut [])
    }

    pub fn id(&self) -> MapId {
        self.state.id
    }

    pub fn name(&self) -> &str {
        self.state.name()
    }

    pub fn map_type(&self) -> MapType {
        self.state.map_type()
    }

    /// [`MapState::lookup`].
    pub fn lookup(&mut self, key: &[u8], cpu: u32) -> Option<usize> {
        self.state.lookup(key, cpu)
    }

    /// [`MapState::update`] with this map's own arenas.
    pub fn update(
        &mut self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        cpu: u32,
    ) -> Result<(), OpError> {
        self.state.update(key, value, flags, cpu, &mut self.arenas)
    }

    /// [`MapState::delete`].
    pub fn delete(&mut self, key: &[u8]) -> Result<(), OpError> {
        self.state.delete(key)
    }

    /// The ring buffer's reserve with this map's arena ([`RingBuf::reserve`]).
    pub fn ringbuf_reserve(&mut self, size: u64, flags: u64) -> Option<usize> {
        let (state, arenas) = self.split_mut();
        state.ringbuf_mut()?.reserve(size, flags, arenas)
    }

    pub fn ringbuf_submit(&mut self, offset: usize, flags: u64) -> Result<(), OpError> {
        let (state, arenas) = self.split_mut();
        state
            .ringbuf_mut()
            .ok_or(OpError::unsupported(Errno::EINVAL, Op::Submit))?
            .submit(offset, flags, arenas)
    }

    pub fn ringbuf_discard(&mut self, offset: usize, flags: u64) -> Result<(), OpError> {
        let (state, arenas) = self.split_mut();
        state
            .ringbuf_mut()
            .ok_or(OpError::unsupported(Errno::EINVAL, Op::Submit))?
            .discard(offset, flags, arenas)
    }

    pub fn ringbuf_output(&mut self, data: &[u8], flags: u64) -> Result<(), OpError> {
        let (state, arenas) = self.split_mut();
        state
            .ringbuf_mut()
            .ok_or(OpError::unsupported(Errno::EINVAL, Op::Output))?
            .output(data, flags, arenas)
    }

    /// Read the value at `off` of arena `index` for the host (lock word zeroed).
    pub(crate) fn read_value(&self, index: usize, off: usize) -> Vec<u8> {
        let vs = self.state.def.value_size as usize;
        let arena = self.arenas.get(index).unwrap_or(&[]);
        match arena.get(off..off + vs) {
            Some(v) => table::read_value(v, self.state.fields.spin_lock),
            None => vec![0; vs],
        }
    }
}
