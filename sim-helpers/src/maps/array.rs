//! `BPF_MAP_TYPE_ARRAY` and `BPF_MAP_TYPE_PERCPU_ARRAY` (kernel/bpf/arraymap.c).
//!
//! Every element exists from creation, zeroed; element `i` lives at `i * round_up(value_size, 8)`
//! in the arena (one arena per CPU for the per-CPU flavour), exactly the layout of the kernel's
//! `array->value`, so a value pointer is `arena + index * elem_size` and never changes.

use super::error::{Errno, Op, OpError, Reason};
use super::table::{round8, write_value};
use super::{span, ArenaAccess, Values, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST};

pub struct ArrayMap {
    value_size: usize,
    stride: usize,
    max_entries: u32,
    percpu: bool,
    ncpus: u32,
    lock: Option<u32>,
}

/// The index a 4-byte array key names (the caller has checked the key size).
#[inline]
pub(crate) fn index_of(key: &[u8]) -> u32 {
    u32::from_le_bytes([key[0], key[1], key[2], key[3]])
}

/// `array_map_get_next_key`: no key, or one past the end, restarts at 0; the last index ends.
/// Every array-like map (fd arrays, devmap, cpumap, xskmap) shares it.
pub(crate) fn array_next_key(
    key: Option<&[u8]>,
    max_entries: u32,
    out: &mut [u8],
) -> Result<(), OpError> {
    let index = key.map_or(u32::MAX, index_of);
    let next = if index >= max_entries {
        0
    } else if index == max_entries - 1 {
        return Err(OpError::no_key());
    } else {
        index + 1
    };
    out.copy_from_slice(&next.to_le_bytes());
    Ok(())
}

impl ArrayMap {
    pub(crate) fn new(
        value_size: u32,
        max_entries: u32,
        percpu: bool,
        ncpus: u32,
        lock: Option<u32>,
    ) -> ArrayMap {
        ArrayMap {
            value_size: value_size as usize,
            stride: round8(value_size as usize),
            max_entries,
            percpu,
            ncpus,
            lock,
        }
    }

    /// Bytes of each arena.
    pub(crate) fn arena_len(value_size: u32, max_entries: u32) -> u64 {
        round8(value_size as usize) as u64 * max_entries as u64
    }

    /// `(max_entries, stride)`: [`Self::lookup`] in two numbers.
    pub(crate) fn layout(&self) -> (u32, u64) {
        (self.max_entries, self.stride as u64)
    }

    pub(crate) fn lookup(&self, key: &[u8]) -> Option<usize> {
        let i = index_of(key);
        (i < self.max_entries).then_some(i as usize * self.stride)
    }

    /// `array_map_update_elem` / `bpf_percpu_array_update`: the checks in the kernel's order.
    pub(crate) fn update(
        &mut self,
        key: &[u8],
        values: Values<'_>,
        flags: u64,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        // BPF_F_LOCK is checked last; a per-CPU value never holds a spin lock, so there it fails.
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(OpError::bad_flags(flags));
        }
        let i = index_of(key);
        if i >= self.max_entries {
            // All elements were preallocated: there is no room for a new index.
            return Err(OpError::new(
                Errno::E2BIG,
                Reason::IndexOutOfRange {
                    index: i,
                    max_entries: self.max_entries,
                },
            ));
        }
        if flags & BPF_NOEXIST != 0 {
            // Every element always exists.
            return Err(OpError::exists());
        }
        if flags & BPF_F_LOCK != 0 && self.lock.is_none() {
            return Err(OpError::new(Errno::EINVAL, Reason::LockWithoutSpinLock));
        }
        let off = i as usize * self.stride;
        let vs = self.value_size;
        match values {
            Values::One(v) => write_value(span(mem, 0, off, vs)?, v, self.lock, false),
            Values::Cpu(v, cpu) => span(mem, cpu as usize, off, vs)?.copy_from_slice(v),
            Values::All(all) => {
                for c in 0..self.ncpus as usize {
                    let v = &all[c * self.stride..c * self.stride + vs];
                    span(mem, c, off, vs)?.copy_from_slice(v);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn delete(&self) -> Result<(), OpError> {
        // Elements of an array cannot be removed.
        Err(OpError::unsupported(Errno::EINVAL, Op::Delete))
    }

    pub(crate) fn get_next_key(&self, key: Option<&[u8]>, out: &mut [u8]) -> Result<(), OpError> {
        array_next_key(key, self.max_entries, out)
    }

    pub(crate) fn clear(&mut self, mem: &mut impl ArenaAccess) {
        let arenas = if self.percpu { self.ncpus } else { 1 };
        for c in 0..arenas as usize {
            if let Some(a) = mem.arena_mut(c) {
                a.fill(0);
            }
        }
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = (Vec<u8>, usize)> + '_ {
        (0..self.max_entries).map(|i| (i.to_le_bytes().to_vec(), i as usize * self.stride))
    }

    /// [`Self::keys`] without a key's allocation.
    pub(crate) fn visit_keys(&self, f: &mut dyn FnMut(&[u8], usize)) {
        for i in 0..self.max_entries {
            f(&i.to_le_bytes(), i as usize * self.stride);
        }
    }
}
