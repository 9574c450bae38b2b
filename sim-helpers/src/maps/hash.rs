//! The hash tables: `HASH`, `PERCPU_HASH`, `LRU_HASH`, `LRU_PERCPU_HASH` (kernel/bpf/hashtab.c),
//! `HASH_OF_MAPS` (its fd flavour) and `DEVMAP_HASH` (kernel/bpf/devmap.c).
//!
//! Values live in slots of a preallocated arena (`round_up(value_size, 8)` bytes each, one arena
//! per CPU for the per-CPU types), as in the kernel's preallocated maps, so a lookup returns an
//! arena offset that stays valid while the map lives. Like the kernel:
//!
//! - deleting returns the slot to a free list, and a stale pointer still reads the old value;
//! - updating an existing key of a plain `HASH` moves it to a new slot (the kernel's per-CPU
//!   "extra element"), so a pointer taken before the update keeps reading the old value, unless
//!   the update takes `BPF_F_LOCK`, which writes in place; the per-CPU types and the map-in-map
//!   update in place; `LRU_HASH` takes a new element from its LRU lists.
//!
//! Iteration (`get_next_key`) follows insertion order: the kernel's follows its hash buckets,
//! which depend on a random seed, so no order can match it and this one at least is stable. An
//! updated key keeps its place; a deleted and re-added key goes to the end. As in the kernel, a
//! `get_next_key` from a key that is not in the map restarts at the first key.

use super::error::{Errno, OpError, Reason};
use super::lru::Lru;
use super::table::{round8, write_value, KeyIndex, Order, SlotAlloc};
use super::{span, ArenaAccess, Values, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HashKind {
    Plain,
    Percpu,
    Lru,
    LruPercpu,
    OfMaps,
    DevmapHash,
}

pub struct HashTab {
    kind: HashKind,
    value_size: usize,
    stride: usize,
    ncpus: u32,
    max_entries: u32,
    lock: Option<u32>,
    index: KeyIndex,
    order: Order,
    alloc: SlotAlloc,
    /// Plain `HASH`: the spare slot of each CPU that an update of an existing key moves into.
    extra: Vec<u32>,
    lru: Option<Lru>,
}

/// `check_flags` of hashtab.c.
fn check_flags(old: Option<u32>, flags: u64) -> Result<(), OpError> {
    match (old, flags & !BPF_F_LOCK) {
        (Some(_), BPF_NOEXIST) => Err(OpError::exists()),
        (None, BPF_EXIST) => Err(OpError::no_key()),
        _ => Ok(()),
    }
}

impl HashTab {
    /// Slots of each arena: `max_entries`, plus one spare per CPU for a plain `HASH`.
    pub(crate) fn slots(kind: HashKind, max_entries: u32, ncpus: u32) -> u32 {
        match kind {
            HashKind::Plain => max_entries + ncpus,
            _ => max_entries,
        }
    }

    pub(crate) fn arena_len(kind: HashKind, value_size: u32, max_entries: u32, ncpus: u32) -> u64 {
        round8(value_size as usize) as u64 * Self::slots(kind, max_entries, ncpus) as u64
    }

    /// `max_entries` is the effective one (rounded for a per-CPU LRU).
    pub(crate) fn new(
        kind: HashKind,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        ncpus: u32,
        lock: Option<u32>,
        per_cpu_lru: bool,
    ) -> HashTab {
        let slots = Self::slots(kind, max_entries, ncpus);
        let lru = matches!(kind, HashKind::Lru | HashKind::LruPercpu)
            .then(|| Lru::new(max_entries, ncpus, per_cpu_lru));
        HashTab {
            kind,
            value_size: value_size as usize,
            stride: round8(value_size as usize),
            ncpus,
            max_entries,
            lock,
            index: KeyIndex::new(key_size as usize, slots as usize),
            order: Order::new(slots as usize),
            alloc: SlotAlloc::new(max_entries),
            extra: if kind == HashKind::Plain {
                (max_entries..slots).collect()
            } else {
                Vec::new()
            },
            lru,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    fn full(&self) -> OpError {
        OpError::new(
            Errno::E2BIG,
            Reason::Full {
                max_entries: self.max_entries,
            },
        )
    }

    /// A lookup from a program: marks an LRU element as referenced.
    #[inline(always)]
    pub(crate) fn lookup(&mut self, key: &[u8]) -> Option<usize> {
        let slot = self.index.find(key)?;
        if let Some(lru) = &mut self.lru {
            lru.set_ref(slot);
        }
        Some(slot as usize * self.stride)
    }

    /// A lookup from the host (the syscall's, which leaves the LRU alone).
    pub(crate) fn peek(&self, key: &[u8]) -> Option<usize> {
        self.index.find(key).map(|s| s as usize * self.stride)
    }

    fn write(
        &self,
        slot: u32,
        values: Values<'_>,
        fresh: bool,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        let (off, vs) = (slot as usize * self.stride, self.value_size);
        match values {
            Values::One(v) => write_value(span(mem, 0, off, vs)?, v, self.lock, fresh),
            // A program updates its own CPU's value; a new element reads as zero on the others.
            Values::Cpu(v, cpu) => {
                for c in 0..self.ncpus {
                    let dst = span(mem, c as usize, off, vs)?;
                    if c == cpu {
                        dst.copy_from_slice(v);
                    } else if fresh {
                        dst.fill(0);
                    }
                }
            }
            Values::All(all) => {
                for c in 0..self.ncpus as usize {
                    let at = c * self.stride;
                    span(mem, c, off, vs)?.copy_from_slice(&all[at..at + vs]);
                }
            }
        }
        Ok(())
    }

    fn insert_new(
        &mut self,
        key: &[u8],
        values: Values<'_>,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        let slot = self.alloc.pop().ok_or_else(|| self.full())?;
        if let Err(e) = self.write(slot, values, true, mem) {
            self.alloc.push(slot);
            return Err(e);
        }
        self.index.insert(slot, key);
        self.order.push_back(slot);
        Ok(())
    }

    pub(crate) fn update(
        &mut self,
        key: &[u8],
        values: Values<'_>,
        flags: u64,
        cpu: u32,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        match self.kind {
            HashKind::Plain => self.update_plain(key, values, flags, cpu, mem),
            HashKind::Percpu | HashKind::OfMaps => {
                if flags > BPF_EXIST {
                    return Err(OpError::bad_flags(flags));
                }
                let old = self.index.find(key);
                check_flags(old, flags)?;
                match old {
                    Some(slot) => self.write(slot, values, false, mem),
                    None => self.insert_new(key, values, mem),
                }
            }
            HashKind::Lru => self.update_lru(key, values, flags, cpu, mem),
            HashKind::LruPercpu => self.update_lru_percpu(key, values, flags, cpu, mem),
            HashKind::DevmapHash => self.update_devmap(key, values, flags, mem),
        }
    }

    /// `htab_map_update_elem`.
    fn update_plain(
        &mut self,
        key: &[u8],
        values: Values<'_>,
        flags: u64,
        cpu: u32,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(OpError::bad_flags(flags));
        }
        let locked = flags & BPF_F_LOCK != 0;
        if locked && self.lock.is_none() {
            return Err(OpError::new(Errno::EINVAL, Reason::LockWithoutSpinLock));
        }
        let old = self.index.find(key);
        check_flags(old, flags)?;
        let Some(old) = old else {
            return self.insert_new(key, values, mem);
        };
        if locked {
            // Under the element's lock the value is updated in place.
            return self.write(old, values, false, mem);
        }
        // The new value goes to this CPU's spare element, and the old element becomes the spare.
        let cpu = cpu as usize % self.extra.len().max(1);
        let new = self.extra[cpu];
        self.write(new, values, true, mem)?;
        self.extra[cpu] = old;
        self.index.move_slot(old, new);
        self.order.replace(old, new);
        Ok(())
    }

    /// Free an element's node back to the LRU lists, or its slot to the free list.
    fn release(&mut self, slot: u32) {
        match &mut self.lru {
            Some(lru) => lru.push_free(slot),
            None => self.alloc.push(slot),
        }
    }

    /// Take a node from the LRU lists for a new element, evicting as the kernel would.
    fn lru_pop(&mut self, cpu: u32) -> Result<u32, OpError> {
        let (index, order) = (&mut self.index, &mut self.order);
        let lru = self.lru.as_mut().ok_or(OpError::new(
            Errno::EINVAL,
            Reason::BadValue("not an LRU map"),
        ))?;
        lru.pop_free(cpu, &mut |slot| {
            index.remove(slot);
            order.unlink(slot);
        })
        .ok_or(OpError::new(Errno::ENOMEM, Reason::NoFreeElement))
    }

    /// `htab_lru_map_update_elem`: the new element is taken (possibly evicting others) before
    /// the flags are checked, as in the kernel, so even a failing update can evict.
    fn update_lru(
        &mut self,
        key: &[u8],
        values: Values<'_>,
        flags: u64,
        cpu: u32,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        if flags > BPF_EXIST {
            return Err(OpError::bad_flags(flags));
        }
        let new = self.lru_pop(cpu)?;
        let checked = self
            .write(new, values, true, mem)
            .and_then(|()| check_flags(self.index.find(key), flags));
        if let Err(e) = checked {
            self.release(new);
            return Err(e);
        }
        match self.index.find(key) {
            Some(old) => {
                self.index.move_slot(old, new);
                self.order.replace(old, new);
                if let Some(lru) = &mut self.lru {
                    lru.set_ref(new);
                }
                self.release(old);
            }
            None => {
                self.index.insert(new, key);
                self.order.push_back(new);
            }
        }
        Ok(())
    }

    /// `__htab_lru_percpu_map_update_elem`: a node is taken unless the update requires an
    /// existing element; an existing element is updated in place and marked referenced.
    fn update_lru_percpu(
        &mut self,
        key: &[u8],
        values: Values<'_>,
        flags: u64,
        cpu: u32,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        if flags > BPF_EXIST {
            return Err(OpError::bad_flags(flags));
        }
        let mut new = if flags != BPF_EXIST {
            Some(self.lru_pop(cpu)?)
        } else {
            None
        };
        let old = self.index.find(key);
        let result = check_flags(old, flags).and_then(|()| match old {
            Some(slot) => {
                if let Some(lru) = &mut self.lru {
                    lru.set_ref(slot);
                }
                self.write(slot, values, false, mem)
            }
            None => {
                let slot = new.take().ok_or(OpError::no_key())?;
                self.write(slot, values, true, mem)?;
                self.index.insert(slot, key);
                self.order.push_back(slot);
                Ok(())
            }
        });
        if let Some(unused) = new {
            self.release(unused);
        }
        result
    }

    /// `__dev_map_hash_update_elem`: ifindex 0 is invalid here (unlike DEVMAP), `BPF_EXIST` on a
    /// missing key is accepted, and fullness is checked only for a new key.
    fn update_devmap(
        &mut self,
        key: &[u8],
        values: Values<'_>,
        flags: u64,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        let Values::One(value) = values else {
            return Err(OpError::bad_flags(flags));
        };
        let word = |at: usize| {
            value
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let ifindex = word(0);
        if flags > BPF_EXIST {
            return Err(OpError::bad_flags(flags));
        }
        if ifindex == 0 {
            return Err(OpError::new(
                Errno::EINVAL,
                Reason::BadValue("a devmap_hash entry needs a non-zero ifindex"),
            ));
        }
        // The program slot reads back as 0 when no program was given (fd <= 0).
        let prog = if (word(4) as i32) > 0 { word(4) } else { 0 };
        let mut normal = [0u8; 8];
        normal[..4].copy_from_slice(&ifindex.to_le_bytes());
        normal[4..].copy_from_slice(&prog.to_le_bytes());
        let normal = Values::One(&normal[..self.value_size]);
        match self.index.find(key) {
            Some(_) if flags == BPF_NOEXIST => Err(OpError::exists()),
            Some(slot) => self.write(slot, normal, false, mem),
            None if self.index.len() >= self.max_entries as usize => Err(self.full()),
            None => self.insert_new(key, normal, mem),
        }
    }

    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<(), OpError> {
        let slot = self.index.find(key).ok_or(OpError::no_key())?;
        self.index.remove(slot);
        self.order.unlink(slot);
        self.release(slot);
        Ok(())
    }

    pub(crate) fn get_next_key(&self, key: Option<&[u8]>, out: &mut [u8]) -> Result<(), OpError> {
        let next = match key.and_then(|k| self.index.find(k)) {
            Some(slot) => self.order.next(slot),
            None => self.order.first(),
        };
        let slot = next.ok_or(OpError::no_key())?;
        out.copy_from_slice(self.index.key(slot));
        Ok(())
    }

    /// Delete every element, in iteration order (so the free lists and LRU lists end as the
    /// kernel's would after deleting every key).
    pub(crate) fn clear(&mut self) {
        let slots: Vec<u32> = self.order.iter().collect();
        for slot in slots {
            self.index.remove(slot);
            self.release(slot);
        }
        self.order.clear();
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = (Vec<u8>, usize)> + '_ {
        self.order
            .iter()
            .map(|s| (self.index.key(s).to_vec(), s as usize * self.stride))
    }

    /// A number that stays the same exactly while the keys [`Self::visit_keys`] lends, their
    /// offsets and their order do (no other map's order ever has it).
    pub(crate) fn key_generation(&self) -> [u64; 2] {
        self.order.generation()
    }

    /// [`Self::keys`] without a key's allocation.
    pub(crate) fn visit_keys(&self, f: &mut dyn FnMut(&[u8], usize)) {
        for s in self.order.iter() {
            f(self.index.key(s), s as usize * self.stride);
        }
    }
}
