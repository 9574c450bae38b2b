//! What `BPF_MAP_CREATE` accepts: the generic checks of `map_create` and each type's
//! `map_alloc_check`/`map_alloc`, in the kernel's order, each failure reported with the errno the
//! kernel returns and the rule it broke. The numbers were checked against Linux 6.18
//! (`tests/maps_kernel.rs` compares a table of definitions with the running kernel).

use bpfsim_vm::spec::{MapDef, MapType};

use super::error::{CreateRule, Errno};
use super::hash::{HashKind, HashTab};
use super::lpm::{LpmTrie, LPM_DATA_SIZE_MAX, LPM_VAL_SIZE_MAX};
use super::ringbuf::RingBuf;
use super::slots::{SlotArray, SlotKind};
use super::{array::ArrayMap, *};

/// `KMALLOC_MAX_SIZE` on x86-64 (4 MiB): bounds element sizes.
const KMALLOC_MAX_SIZE: u64 = 4 << 20;
/// `sizeof(struct htab_elem)`.
const HTAB_ELEM_SIZE: u64 = 48;
/// `PCPU_MIN_UNIT_SIZE`: the largest per-CPU value.
const PCPU_MIN_UNIT_SIZE: usize = 32 << 10;
/// `NR_CPUS` of the distributions' kernels, the most CPUs a CPUMAP may have slots for.
pub const NR_CPUS: u32 = 8192;
const PAGE_SIZE: u32 = 4096;
/// The most host memory one map's buffers may take. They are allocated zeroed up front (so
/// untouched pages cost nothing), but an allocation larger than the machine could ever back
/// would abort the process instead of failing, so definitions beyond this are `ENOMEM`.
pub const MAP_MEMORY_BUDGET: u64 = 4 << 30;
/// Bookkeeping bytes per element slot (insertion-order links, LRU links and flags).
const SLOT_OVERHEAD: u64 = 16;

const ACCESS_MASK: u32 = BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG;
const HTAB_CREATE_FLAG_MASK: u32 =
    BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | ACCESS_MASK | BPF_F_ZERO_SEED;
const ARRAY_CREATE_FLAG_MASK: u32 =
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | ACCESS_MASK | BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP;
const LPM_CREATE_FLAG_MASK: u32 = BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | ACCESS_MASK;
const QUEUE_STACK_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE | ACCESS_MASK;
const DEV_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY;

/// How a valid definition is laid out.
pub(crate) struct Layout {
    /// `max_entries` as the map reports it (a per-CPU LRU rounds it to a multiple of the CPUs).
    pub(crate) max_entries: u32,
    pub(crate) family: Family,
    /// Arenas (one per CPU for per-CPU maps) and the bytes of each.
    pub(crate) arenas: u32,
    pub(crate) arena_len: u64,
}

#[derive(Clone, Copy)]
pub(crate) enum Family {
    Array { percpu: bool },
    Slots(SlotKind),
    Hash { kind: HashKind, per_cpu_lru: bool },
    Lpm,
    Queue { stack: bool },
    Ringbuf,
    Perf,
}

type Fail = (Errno, CreateRule);

fn fail<T>(errno: Errno, rule: CreateRule) -> Result<T, Fail> {
    Err((errno, rule))
}

fn flags_within(flags: u32, allowed: u32) -> Result<(), Fail> {
    if flags & !allowed != 0 {
        return fail(Errno::EINVAL, CreateRule::UnknownFlags { flags, allowed });
    }
    Ok(())
}

/// `bpf_map_flags_access_ok`.
fn access_ok(flags: u32) -> Result<(), Fail> {
    if flags & BPF_F_RDONLY_PROG != 0 && flags & BPF_F_WRONLY_PROG != 0 {
        return fail(
            Errno::EINVAL,
            CreateRule::ConflictingFlags {
                flags,
                why: "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG together",
            },
        );
    }
    Ok(())
}

fn key_size(def: &MapDef, ok: bool, want: &'static str) -> Result<(), Fail> {
    if !ok {
        return fail(
            Errno::EINVAL,
            CreateRule::KeySize {
                got: def.key_size,
                want,
            },
        );
    }
    Ok(())
}

fn value_size(def: &MapDef, ok: bool, errno: Errno, want: &'static str) -> Result<(), Fail> {
    if !ok {
        return fail(
            errno,
            CreateRule::ValueSize {
                got: def.value_size,
                want,
            },
        );
    }
    Ok(())
}

fn nonzero_entries(def: &MapDef) -> Result<(), Fail> {
    if def.max_entries == 0 {
        return fail(Errno::EINVAL, CreateRule::ZeroMaxEntries);
    }
    Ok(())
}

fn percpu_value(def: &MapDef) -> Result<(), Fail> {
    value_size(
        def,
        (def.value_size as usize).div_ceil(8) * 8 <= PCPU_MIN_UNIT_SIZE,
        Errno::E2BIG,
        "a per-CPU value is at most 32 KiB",
    )
}

/// `htab_map_alloc_check` and the size checks of `htab_map_alloc`.
fn check_hash(def: &MapDef, ncpus: u32, kind: HashKind) -> Result<Layout, Fail> {
    let flags = def.flags;
    let lru = matches!(kind, HashKind::Lru | HashKind::LruPercpu);
    let percpu = matches!(kind, HashKind::Percpu | HashKind::LruPercpu);
    let per_cpu_lru = flags & BPF_F_NO_COMMON_LRU != 0;
    flags_within(flags, HTAB_CREATE_FLAG_MASK)?;
    access_ok(flags)?;
    if !lru && per_cpu_lru {
        return fail(
            Errno::EINVAL,
            CreateRule::ConflictingFlags {
                flags,
                why: "BPF_F_NO_COMMON_LRU on a map that is not an LRU",
            },
        );
    }
    if lru && flags & BPF_F_NO_PREALLOC != 0 {
        return fail(Errno::ENOTSUPP, CreateRule::LruNeedsPrealloc);
    }
    if flags & BPF_F_NUMA_NODE != 0 && (percpu || per_cpu_lru) {
        return fail(
            Errno::EINVAL,
            CreateRule::ConflictingFlags {
                flags,
                why: "BPF_F_NUMA_NODE on per-CPU storage",
            },
        );
    }
    nonzero_entries(def)?;
    key_size(def, def.key_size > 0, "must be at least 1")?;
    value_size(def, def.value_size > 0, Errno::EINVAL, "must be at least 1")?;
    if def.key_size as u64 + def.value_size as u64 >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE {
        return fail(
            Errno::E2BIG,
            CreateRule::ValueSize {
                got: def.value_size,
                want: "key_size + value_size must be below 4 MiB - 48",
            },
        );
    }
    if percpu {
        percpu_value(def)?;
    }
    let mut max_entries = def.max_entries;
    if per_cpu_lru {
        // Every CPU's list gets the same number of elements, at least one.
        max_entries = match max_entries.checked_next_multiple_of(ncpus) {
            Some(m) => m,
            None => max_entries / ncpus * ncpus,
        };
    }
    // The bucket array (16 bytes per bucket, a power of two of them) must fit in 4 GiB.
    if max_entries
        .checked_next_power_of_two()
        .is_none_or(|b| b > u32::MAX / 16)
    {
        return fail(
            Errno::E2BIG,
            CreateRule::MaxEntries {
                got: def.max_entries,
                want: "a hash table holds at most 2^27 elements",
            },
        );
    }
    Ok(Layout {
        max_entries,
        family: Family::Hash { kind, per_cpu_lru },
        arenas: if percpu { ncpus } else { 1 },
        arena_len: HashTab::arena_len(kind, def.value_size, max_entries, ncpus),
    })
}

/// `array_map_alloc_check`, and `fd_array_map_alloc_check` for the fd arrays.
fn check_array(def: &MapDef, ncpus: u32) -> Result<Layout, Fail> {
    let t = def.map_type;
    let flags = def.flags;
    let fd_array = matches!(
        t,
        MapType::ProgArray | MapType::PerfEventArray | MapType::ArrayOfMaps
    );
    if fd_array {
        value_size(
            def,
            def.value_size == 4,
            Errno::EINVAL,
            "must be 4 (a program, map or perf event id)",
        )?;
        if flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
            return fail(
                Errno::EINVAL,
                CreateRule::ConflictingFlags {
                    flags,
                    why: "program access flags are not supported on this map type",
                },
            );
        }
    }
    let percpu = t == MapType::PercpuArray;
    nonzero_entries(def)?;
    key_size(def, def.key_size == 4, "must be 4")?;
    value_size(def, def.value_size > 0, Errno::EINVAL, "must be at least 1")?;
    flags_within(flags, ARRAY_CREATE_FLAG_MASK)?;
    access_ok(flags)?;
    if percpu && flags & BPF_F_NUMA_NODE != 0 {
        return fail(
            Errno::EINVAL,
            CreateRule::ConflictingFlags {
                flags,
                why: "BPF_F_NUMA_NODE on per-CPU storage",
            },
        );
    }
    if t != MapType::Array && flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP) != 0 {
        return fail(
            Errno::EINVAL,
            CreateRule::ConflictingFlags {
                flags,
                why: "BPF_F_MMAPABLE and BPF_F_INNER_MAP are for plain arrays only",
            },
        );
    }
    if t != MapType::PerfEventArray && flags & BPF_F_PRESERVE_ELEMS != 0 {
        return fail(
            Errno::EINVAL,
            CreateRule::ConflictingFlags {
                flags,
                why: "BPF_F_PRESERVE_ELEMS is for perf event arrays only",
            },
        );
    }
    value_size(
        def,
        def.value_size <= i32::MAX as u32,
        Errno::E2BIG,
        "must be below 2 GiB",
    )?;
    if percpu {
        percpu_value(def)?;
    }
    let family = match t {
        MapType::ProgArray => Family::Slots(SlotKind::ProgArray),
        MapType::ArrayOfMaps => Family::Slots(SlotKind::MapArray),
        MapType::PerfEventArray => Family::Perf,
        _ => Family::Array { percpu },
    };
    let arena_len = match family {
        Family::Array { .. } => ArrayMap::arena_len(def.value_size, def.max_entries),
        _ => SlotArray::arena_len(def.max_entries),
    };
    Ok(Layout {
        max_entries: def.max_entries,
        family,
        arenas: if percpu { ncpus } else { 1 },
        arena_len,
    })
}

fn check_lpm(def: &MapDef) -> Result<Layout, Fail> {
    let flags = def.flags;
    nonzero_entries(def)?;
    if flags & BPF_F_NO_PREALLOC == 0 {
        return fail(Errno::EINVAL, CreateRule::NeedsNoPrealloc);
    }
    flags_within(flags, LPM_CREATE_FLAG_MASK)?;
    access_ok(flags)?;
    key_size(
        def,
        (5..=4 + LPM_DATA_SIZE_MAX).contains(&def.key_size),
        "must be 4 (prefixlen) + 1..=256 data bytes",
    )?;
    value_size(
        def,
        (1..=LPM_VAL_SIZE_MAX).contains(&def.value_size),
        Errno::EINVAL,
        "must be 1..=4194024",
    )?;
    Ok(Layout {
        max_entries: def.max_entries,
        family: Family::Lpm,
        arenas: 1,
        arena_len: LpmTrie::arena_len(def.value_size, def.max_entries),
    })
}

fn check_queue(def: &MapDef, stack: bool) -> Result<Layout, Fail> {
    nonzero_entries(def)?;
    key_size(def, def.key_size == 0, "must be 0 (no keys)")?;
    value_size(def, def.value_size > 0, Errno::EINVAL, "must be at least 1")?;
    flags_within(def.flags, QUEUE_STACK_CREATE_FLAG_MASK)?;
    access_ok(def.flags)?;
    value_size(
        def,
        def.value_size as u64 <= KMALLOC_MAX_SIZE,
        Errno::E2BIG,
        "must be at most 4 MiB",
    )?;
    Ok(Layout {
        max_entries: def.max_entries,
        family: Family::Queue { stack },
        arenas: 0,
        arena_len: 0,
    })
}

fn check_ringbuf(def: &MapDef) -> Result<Layout, Fail> {
    flags_within(def.flags, BPF_F_NUMA_NODE)?;
    key_size(def, def.key_size == 0, "must be 0 (no keys)")?;
    value_size(def, def.value_size == 0, Errno::EINVAL, "must be 0")?;
    if !def.max_entries.is_power_of_two() || def.max_entries % PAGE_SIZE != 0 {
        return fail(
            Errno::EINVAL,
            CreateRule::MaxEntries {
                got: def.max_entries,
                want: "the ring size must be a power of 2 and a multiple of the page size",
            },
        );
    }
    Ok(Layout {
        max_entries: def.max_entries,
        family: Family::Ringbuf,
        arenas: 1,
        arena_len: RingBuf::arena_len(def.max_entries),
    })
}

/// `dev_map_init_map`, `cpu_map_alloc`, `xsk_map_alloc`.
fn check_redirect(def: &MapDef) -> Result<Layout, Fail> {
    let t = def.map_type;
    nonzero_entries(def)?;
    key_size(def, def.key_size == 4, "must be 4")?;
    let (kind, allowed) = match t {
        MapType::Devmap | MapType::DevmapHash => (SlotKind::Devmap, DEV_CREATE_FLAG_MASK),
        MapType::Cpumap => (SlotKind::Cpumap, BPF_F_NUMA_NODE),
        _ => (SlotKind::Xskmap, DEV_CREATE_FLAG_MASK),
    };
    if kind == SlotKind::Xskmap {
        value_size(def, def.value_size == 4, Errno::EINVAL, "must be 4")?;
    } else {
        value_size(
            def,
            def.value_size == 4 || def.value_size == 8,
            Errno::EINVAL,
            "must be 4 (ifindex or qsize) or 8 (with a program fd)",
        )?;
    }
    flags_within(def.flags, allowed)?;
    if t == MapType::DevmapHash && def.max_entries > 1 << 31 {
        return fail(
            Errno::EINVAL,
            CreateRule::MaxEntries {
                got: def.max_entries,
                want: "at most 2^31",
            },
        );
    }
    if t == MapType::Cpumap && def.max_entries > NR_CPUS {
        return fail(
            Errno::E2BIG,
            CreateRule::MaxEntries {
                got: def.max_entries,
                want: "at most NR_CPUS (8192)",
            },
        );
    }
    let (family, arena_len) = if t == MapType::DevmapHash {
        (
            Family::Hash {
                kind: HashKind::DevmapHash,
                per_cpu_lru: false,
            },
            HashTab::arena_len(HashKind::DevmapHash, def.value_size, def.max_entries, 1),
        )
    } else {
        (Family::Slots(kind), SlotArray::arena_len(def.max_entries))
    };
    Ok(Layout {
        max_entries: def.max_entries,
        family,
        arenas: 1,
        arena_len,
    })
}

/// `bpf_map_meta_alloc`: which maps can be inner maps.
fn check_inner(def: &MapDef) -> Result<(), Fail> {
    let Some(inner) = &def.inner else {
        return fail(
            Errno::EINVAL,
            CreateRule::InnerMap {
                why: "a map-in-map needs the definition of its inner maps",
            },
        );
    };
    match inner.map_type {
        MapType::ArrayOfMaps | MapType::HashOfMaps => fail(
            Errno::EINVAL,
            CreateRule::InnerMap {
                why: "maps of maps do not nest more than one level",
            },
        ),
        MapType::ProgArray => fail(
            Errno::ENOTSUPP,
            CreateRule::InnerMap {
                why: "a program array cannot be an inner map",
            },
        ),
        _ => Ok(()),
    }
}

/// `map_check_btf` for a `struct bpf_spin_lock` in the value.
fn check_spin_lock(def: &MapDef, off: u32) -> Result<(), Fail> {
    if !matches!(def.map_type, MapType::Hash | MapType::Array) {
        return fail(
            Errno::EOPNOTSUPP,
            CreateRule::SpinLock {
                off,
                why: "only HASH and ARRAY values may hold a bpf_spin_lock",
            },
        );
    }
    if off % 4 != 0 || off as u64 + 4 > def.value_size as u64 {
        return fail(
            Errno::EINVAL,
            CreateRule::SpinLock {
                off,
                why: "must be 4-byte aligned and inside the value",
            },
        );
    }
    Ok(())
}

/// Host bytes a map's preallocated buffers take: the arenas, and for keyed maps a copy of each
/// key (LPM tries also keep the raw data) and per-slot bookkeeping.
fn footprint(def: &MapDef, layout: &Layout, ncpus: u32) -> u64 {
    let arenas = layout.arenas as u64 * layout.arena_len;
    let max = layout.max_entries as u64;
    let per_slot = match layout.family {
        Family::Hash { kind, .. } => {
            let slots = HashTab::slots(kind, layout.max_entries, ncpus) as u64;
            return arenas + slots * (def.key_size as u64 + SLOT_OVERHEAD);
        }
        Family::Lpm => 2 * def.key_size as u64 + SLOT_OVERHEAD,
        Family::Slots(_) | Family::Perf => 1,
        Family::Array { .. } | Family::Queue { .. } | Family::Ringbuf => 0,
    };
    arenas + max * per_slot
}

/// Check `def` as `BPF_MAP_CREATE` would, for `ncpus` simulated CPUs.
pub(crate) fn check(def: &MapDef, ncpus: u32, spin_lock: Option<u32>) -> Result<Layout, Fail> {
    if def.flags & BPF_F_RDONLY != 0 && def.flags & BPF_F_WRONLY != 0 {
        return fail(
            Errno::EINVAL,
            CreateRule::ConflictingFlags {
                flags: def.flags,
                why: "BPF_F_RDONLY and BPF_F_WRONLY together",
            },
        );
    }
    let layout = match def.map_type {
        MapType::Hash => check_hash(def, ncpus, HashKind::Plain),
        MapType::PercpuHash => check_hash(def, ncpus, HashKind::Percpu),
        MapType::LruHash => check_hash(def, ncpus, HashKind::Lru),
        MapType::LruPercpuHash => check_hash(def, ncpus, HashKind::LruPercpu),
        MapType::HashOfMaps => {
            value_size(
                def,
                def.value_size == 4,
                Errno::EINVAL,
                "must be 4 (a map id)",
            )?;
            let layout = check_hash(def, ncpus, HashKind::OfMaps)?;
            check_inner(def)?;
            Ok(layout)
        }
        MapType::Array | MapType::PercpuArray | MapType::ProgArray | MapType::PerfEventArray => {
            check_array(def, ncpus)
        }
        MapType::ArrayOfMaps => {
            let layout = check_array(def, ncpus)?;
            check_inner(def)?;
            Ok(layout)
        }
        MapType::LpmTrie => check_lpm(def),
        MapType::Queue => check_queue(def, false),
        MapType::Stack => check_queue(def, true),
        MapType::Ringbuf => check_ringbuf(def),
        MapType::Devmap | MapType::DevmapHash | MapType::Cpumap | MapType::Xskmap => {
            check_redirect(def)
        }
        MapType::Unspec => fail(Errno::EINVAL, CreateRule::NotSimulated(def.map_type)),
        other => fail(Errno::ENOTSUPP, CreateRule::NotSimulated(other)),
    }?;
    if let Some(off) = spin_lock {
        check_spin_lock(def, off)?;
    }
    // Each arena becomes one guest memory region, addressed by a 32-bit offset.
    if layout.arena_len > u32::MAX as u64 {
        return fail(
            Errno::ENOMEM,
            CreateRule::RegionTooLarge {
                bytes: layout.arena_len,
            },
        );
    }
    let bytes = footprint(def, &layout, ncpus);
    if bytes > MAP_MEMORY_BUDGET {
        return fail(Errno::ENOMEM, CreateRule::TooMuchMemory { bytes });
    }
    Ok(layout)
}
