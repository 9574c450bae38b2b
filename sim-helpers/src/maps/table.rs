//! Building blocks shared by the hash-like maps: a key index that stores keys in a flat arena and
//! finds slots without allocating, an insertion-order list over slots (the iteration order), a
//! slot allocator, and the value copy that respects a `bpf_spin_lock` field.
//!
//! Every per-slot array is allocated zeroed and touched only when a slot is used, so a map with a
//! large `max_entries` costs address space, not memory, until it fills (like the kernel's
//! `BPF_F_NO_PREALLOC` maps; preallocated kernel maps touch it all at creation).

use hashbrown::HashTable;

/// A fast, deterministic hash of key bytes (no per-process random seed: runs must repeat).
/// Iteration order never depends on it; it only spreads keys over the index.
#[inline]
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
    }
    // Final avalanche: hashbrown takes its control byte from the top bits.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 29)
}

/// Keys by slot, and an index from key bytes to slot.
pub(crate) struct KeyIndex {
    key_size: usize,
    keys: Box<[u8]>,
    index: HashTable<u32>,
}

impl KeyIndex {
    pub(crate) fn new(key_size: usize, slots: usize) -> KeyIndex {
        KeyIndex {
            key_size,
            keys: vec![0u8; key_size * slots].into_boxed_slice(),
            index: HashTable::new(),
        }
    }

    #[inline]
    pub(crate) fn key(&self, slot: u32) -> &[u8] {
        let at = slot as usize * self.key_size;
        &self.keys[at..at + self.key_size]
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    #[inline]
    pub(crate) fn find(&self, key: &[u8]) -> Option<u32> {
        let (keys, ks) = (&self.keys, self.key_size);
        self.index
            .find(hash_key(key), |&s| {
                &keys[s as usize * ks..(s as usize + 1) * ks] == key
            })
            .copied()
    }

    /// Record `key` at `slot`; the caller has checked that the key is absent.
    pub(crate) fn insert(&mut self, slot: u32, key: &[u8]) {
        let ks = self.key_size;
        let at = slot as usize * ks;
        self.keys[at..at + ks].copy_from_slice(key);
        let keys = &self.keys;
        self.index.insert_unique(hash_key(key), slot, |&s| {
            hash_key(&keys[s as usize * ks..(s as usize + 1) * ks])
        });
    }

    /// Forget the key at `slot` (which must be indexed).
    pub(crate) fn remove(&mut self, slot: u32) {
        let ks = self.key_size;
        let at = slot as usize * ks;
        let h = hash_key(&self.keys[at..at + ks]);
        if let Ok(entry) = self.index.find_entry(h, |&s| s == slot) {
            entry.remove();
        }
    }

    /// Move the key of indexed slot `old` to unindexed slot `new`.
    pub(crate) fn move_slot(&mut self, old: u32, new: u32) {
        let ks = self.key_size;
        let (o, n) = (old as usize * ks, new as usize * ks);
        self.keys.copy_within(o..o + ks, n);
        let h = hash_key(&self.keys[n..n + ks]);
        if let Some(s) = self.index.find_mut(h, |&s| s == old) {
            *s = new;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.index.clear();
    }
}

/// A doubly linked list over slots in the order keys were inserted: the iteration order of the
/// hash maps. Links are stored as `slot + 1` so that 0 means "none" and the arrays can start
/// zeroed (untouched pages).
pub(crate) struct Order {
    prev: Box<[u32]>,
    next: Box<[u32]>,
    head: u32,
    tail: u32,
}

impl Order {
    pub(crate) fn new(slots: usize) -> Order {
        Order {
            prev: vec![0; slots].into_boxed_slice(),
            next: vec![0; slots].into_boxed_slice(),
            head: 0,
            tail: 0,
        }
    }

    pub(crate) fn first(&self) -> Option<u32> {
        self.head.checked_sub(1)
    }

    pub(crate) fn next(&self, slot: u32) -> Option<u32> {
        self.next[slot as usize].checked_sub(1)
    }

    pub(crate) fn push_back(&mut self, slot: u32) {
        let s = slot as usize;
        self.prev[s] = self.tail;
        self.next[s] = 0;
        match self.tail.checked_sub(1) {
            Some(t) => self.next[t as usize] = slot + 1,
            None => self.head = slot + 1,
        }
        self.tail = slot + 1;
    }

    pub(crate) fn unlink(&mut self, slot: u32) {
        let s = slot as usize;
        let (p, n) = (self.prev[s], self.next[s]);
        match p.checked_sub(1) {
            Some(p) => self.next[p as usize] = n,
            None => self.head = n,
        }
        match n.checked_sub(1) {
            Some(n) => self.prev[n as usize] = p,
            None => self.tail = p,
        }
    }

    /// Put `new` where `old` is (an update that moved a key to a new element keeps its place).
    pub(crate) fn replace(&mut self, old: u32, new: u32) {
        let (o, n) = (old as usize, new as usize);
        let (p, nx) = (self.prev[o], self.next[o]);
        self.prev[n] = p;
        self.next[n] = nx;
        match p.checked_sub(1) {
            Some(p) => self.next[p as usize] = new + 1,
            None => self.head = new + 1,
        }
        match nx.checked_sub(1) {
            Some(x) => self.prev[x as usize] = new + 1,
            None => self.tail = new + 1,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.tail = 0;
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(self.first(), |&s| self.next(s))
    }
}

/// Free slots: the ones returned by deletes (reused last-in first-out, like the kernel's
/// freelist), then the never-used ones in increasing order.
pub(crate) struct SlotAlloc {
    free: Vec<u32>,
    fresh: u32,
    end: u32,
}

impl SlotAlloc {
    pub(crate) fn new(slots: u32) -> SlotAlloc {
        SlotAlloc {
            free: Vec::new(),
            fresh: 0,
            end: slots,
        }
    }

    pub(crate) fn pop(&mut self) -> Option<u32> {
        if let Some(s) = self.free.pop() {
            return Some(s);
        }
        (self.fresh < self.end).then(|| {
            self.fresh += 1;
            self.fresh - 1
        })
    }

    pub(crate) fn push(&mut self, slot: u32) {
        self.free.push(slot);
    }

    pub(crate) fn reset(&mut self) {
        self.free.clear();
        self.fresh = 0;
    }
}

/// `round_up(n, 8)`: the kernel aligns every value to 8 bytes, and so do the arenas.
pub(crate) const fn round8(n: usize) -> usize {
    (n + 7) & !7
}

/// Copy `value` into `dst` as the kernel's `copy_map_value` does: the `bpf_spin_lock` word at
/// `lock` is never overwritten by a value; a new element's lock starts unlocked (zero).
#[inline]
pub(crate) fn write_value(dst: &mut [u8], value: &[u8], lock: Option<u32>, fresh: bool) {
    match lock {
        None => dst.copy_from_slice(value),
        Some(off) => {
            let (l, r) = (off as usize, off as usize + 4);
            dst[..l].copy_from_slice(&value[..l]);
            dst[r..].copy_from_slice(&value[r..]);
            if fresh {
                dst[l..r].fill(0);
            }
        }
    }
}

/// Copy a value out for the host, with the lock word zeroed as the kernel's syscall lookup does.
pub(crate) fn read_value(src: &[u8], lock: Option<u32>) -> Vec<u8> {
    let mut v = src.to_vec();
    if let Some(off) = lock {
        v[off as usize..off as usize + 4].fill(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_finds_moves_and_forgets_keys() {
        let mut ix = KeyIndex::new(4, 8);
        for s in 0..6u32 {
            ix.insert(s, &(s * 10).to_le_bytes());
        }
        assert_eq!(ix.find(&30u32.to_le_bytes()), Some(3));
        ix.move_slot(3, 7);
        assert_eq!(ix.find(&30u32.to_le_bytes()), Some(7));
        assert_eq!(ix.key(7), 30u32.to_le_bytes());
        ix.remove(7);
        assert_eq!(ix.find(&30u32.to_le_bytes()), None);
        assert_eq!(ix.len(), 5);
    }

    #[test]
    fn order_keeps_insertion_order_through_replace_and_unlink() {
        let mut o = Order::new(8);
        for s in [4, 1, 6] {
            o.push_back(s);
        }
        o.replace(1, 7);
        assert_eq!(o.iter().collect::<Vec<_>>(), [4, 7, 6]);
        o.unlink(4);
        o.unlink(6);
        assert_eq!(o.iter().collect::<Vec<_>>(), [7]);
        o.push_back(2);
        assert_eq!(o.iter().collect::<Vec<_>>(), [7, 2]);
    }

    #[test]
    fn slots_reuse_freed_first() {
        let mut a = SlotAlloc::new(3);
        assert_eq!((a.pop(), a.pop()), (Some(0), Some(1)));
        a.push(0);
        assert_eq!((a.pop(), a.pop(), a.pop()), (Some(0), Some(2), None));
    }

    #[test]
    fn spin_lock_word_is_preserved() {
        let mut dst = [9u8; 12];
        write_value(&mut dst, &[1u8; 12], Some(4), false);
        assert_eq!(dst, [1, 1, 1, 1, 9, 9, 9, 9, 1, 1, 1, 1]);
        write_value(&mut dst, &[2u8; 12], Some(4), true);
        assert_eq!(dst, [2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2]);
        assert_eq!(read_value(&[5u8; 8], Some(0)), [0, 0, 0, 0, 5, 5, 5, 5]);
    }
}
