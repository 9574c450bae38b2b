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
    let n = key.len();
    if n <= SHORT_KEY {
        return hash_words(short_words(key, false), n);
    }
    hash_long_key(key, false)
}

/// [`hash_key`] of a key longer than [`SHORT_KEY`] bytes, its words read as [`short_words`]
/// reads them (`bytewise`: each byte on its own); the same hash either way.
#[inline(always)]
fn hash_long_key(key: &[u8], bytewise: bool) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let n = key.len();
    let mut h = (n as u64).wrapping_mul(K);
    let whole = n / 8 * 8;
    let mut at = 0;
    while at < whole {
        let w = if bytewise {
            key_word8(key, at, true)
        } else {
            u64::from_le_bytes(first(&key[at..]))
        };
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
        at += 8;
    }
    if whole < n {
        let mut w = 0;
        for i in whole..n {
            w |= key_byte(key, i, bytewise) << (8 * (i - whole));
        }
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    // Final avalanche: hashbrown takes its control byte from the top bits.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 29)
}

/// Keys of at most this many bytes (most keys: an index, an address, a 5-tuple) are hashed
/// and compared as two words ([`short_words`]).
const SHORT_KEY: usize = 16;

/// The hash of a short key of `n` bytes from its [`short_words`]: one folded multiply, which a
/// lookup waits on before it can probe (the word-by-word loop of longer keys is several times
/// as long).
#[inline(always)]
fn hash_words((lo, hi): (u64, u64), n: usize) -> u64 {
    const S0: u64 = 0x243f_6a88_85a3_08d3;
    const S1: u64 = 0x1319_8a2e_0370_7344;
    // Every bit of each word reaches both ends of the product. A word equal to its seed would
    // zero the product whatever the other: the words themselves, added alongside (in parallel
    // with the multiply), still tell such keys apart.
    let p = fold_mul(lo ^ S0, hi ^ S1 ^ n as u64);
    p.wrapping_add(lo ^ hi.rotate_left(32))
}

/// The two words a key of at most [`SHORT_KEY`] bytes is hashed and compared by: its first and
/// last 8 bytes (4 for keys of 4 to 7 bytes, the bytes themselves for shorter ones), little
/// endian. They overlap and hold every byte between them, so two keys of one length are equal
/// exactly when their words are.
///
/// With `bytewise`, each byte is read on its own (the reads kept apart, so that they are not
/// merged into word loads): for a key the program has just written to its stack in pieces of
/// other sizes (a 5-tuple's two 4-byte addresses, 2-byte ports, a 1-byte protocol), a word
/// load spanning several of those stores cannot take its bytes from them and waits until they
/// reach the cache, which cost a lookup more than its hashing and probing; a byte always lies
/// within one store.
#[inline(always)]
fn short_words(key: &[u8], bytewise: bool) -> (u64, u64) {
    let n = key.len();
    debug_assert!(n <= SHORT_KEY);
    let byte = |i: usize| key_byte(key, i, bytewise);
    match n {
        8..=16 => {
            if bytewise {
                (key_word8(key, 0, bytewise), key_word8(key, n - 8, bytewise))
            } else {
                (
                    u64::from_le_bytes(first(key)),
                    u64::from_le_bytes(last(key)),
                )
            }
        }
        4..=7 => (key_word4(key, 0, bytewise), key_word4(key, n - 4, bytewise)),
        1..=3 => (byte(0) << 16 | byte(n / 2) << 8 | byte(n - 1), 0),
        _ => (0, 0),
    }
}

/// Byte `i` of `key`; with `bytewise`, read on its own (see [`short_words`]).
#[inline(always)]
fn key_byte(key: &[u8], i: usize, bytewise: bool) -> u64 {
    if bytewise {
        // SAFETY: `&key[i]` is a valid reference to an initialised byte; a volatile read of it
        // reads that byte.
        (unsafe { std::ptr::read_volatile(&key[i]) }) as u64
    } else {
        key[i] as u64
    }
}

/// `x`, through a barrier the optimiser cannot see through, so that it cannot reassociate an
/// expression across it (no instruction: the value stays in its register).
#[inline(always)]
fn opaque(x: u64) -> u64 {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let mut x = x;
        // SAFETY: an empty assembly block that reads and writes one register and nothing else.
        unsafe {
            std::arch::asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags))
        };
        x
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        x
    }
}

/// Bytes `at..at + 4` of `key`, little endian, each read by [`key_byte`], combined as a tree:
/// the lookup waits on these words, and LLVM turns any order of ORs into one chain (7
/// dependent ORs for 8 bytes) unless the halves are [`opaque`].
#[inline(always)]
fn key_word4(key: &[u8], at: usize, bytewise: bool) -> u64 {
    let lo = opaque(key_byte(key, at, bytewise) | key_byte(key, at + 1, bytewise) << 8);
    let hi = opaque(key_byte(key, at + 2, bytewise) | key_byte(key, at + 3, bytewise) << 8);
    lo | hi << 16
}

/// Bytes `at..at + 8` of `key`, as [`key_word4`].
#[inline(always)]
fn key_word8(key: &[u8], at: usize, bytewise: bool) -> u64 {
    opaque(key_word4(key, at, bytewise)) | opaque(key_word4(key, at + 4, bytewise)) << 32
}

/// The 128-bit product of `x` and `y`, its two halves xored: every bit of either factor
/// reaches both ends of the result.
#[inline(always)]
fn fold_mul(x: u64, y: u64) -> u64 {
    let p = (x as u128).wrapping_mul(y as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The first `N` bytes of `s` (zeros when it is shorter: callers check the length).
#[inline(always)]
fn first<const N: usize>(s: &[u8]) -> [u8; N] {
    s.first_chunk::<N>().copied().unwrap_or([0; N])
}

/// The last `N` bytes of `s` (zeros when it is shorter).
#[inline(always)]
fn last<const N: usize>(s: &[u8]) -> [u8; N] {
    s.last_chunk::<N>().copied().unwrap_or([0; N])
}

/// Keys by slot, and an index from key bytes to slot: keys of at most [`SHORT_KEY`] bytes in a
/// [`ShortTable`], longer ones in a hashbrown table of slots.
pub(crate) struct KeyIndex {
    key_size: usize,
    keys: Box<[u8]>,
    short: ShortTable,
    index: HashTable<u32>,
}

impl KeyIndex {
    pub(crate) fn new(key_size: usize, slots: usize) -> KeyIndex {
        KeyIndex {
            key_size,
            keys: vec![0u8; key_size * slots].into_boxed_slice(),
            short: ShortTable::default(),
            index: HashTable::new(),
        }
    }

    #[inline]
    pub(crate) fn key(&self, slot: u32) -> &[u8] {
        let at = slot as usize * self.key_size;
        &self.keys[at..at + self.key_size]
    }

    pub(crate) fn len(&self) -> usize {
        if self.key_size <= SHORT_KEY {
            self.short.len
        } else {
            self.index.len()
        }
    }

    #[inline(always)]
    pub(crate) fn find(&self, key: &[u8]) -> Option<u32> {
        let ks = self.key_size;
        if key.len() != ks {
            return None;
        }
        if ks <= SHORT_KEY {
            // An empty map (a filter nobody has filled) answers before the key is read and
            // hashed: the read waits on the program's stores of the key.
            if self.short.len == 0 {
                return None;
            }
            // The key (often the program's, just written) read once, byte by byte.
            let words = short_words(key, true);
            return self.short.find(words, hash_words(words, ks));
        }
        if self.index.is_empty() {
            return None;
        }
        self.find_long(key)
    }

    /// [`Self::find`] of a key longer than [`SHORT_KEY`] bytes, out of line: the hashbrown
    /// probe's registers and stack would otherwise be saved and set up by every lookup of a
    /// short key too (the caller's whole frame). The key hashed from bytes read one by one, as
    /// [`short_words`] reads short ones: 8-byte loads of a key the program just stored in
    /// smaller pieces wait for those stores to reach the cache.
    #[inline(never)]
    fn find_long(&self, key: &[u8]) -> Option<u32> {
        let ks = self.key_size;
        let keys = &self.keys;
        self.index
            .find(hash_long_key(key, true), |&s| {
                &keys[s as usize * ks..(s as usize + 1) * ks] == key
            })
            .copied()
    }

    /// Record `key` at `slot`; the caller has checked that the key is absent.
    pub(crate) fn insert(&mut self, slot: u32, key: &[u8]) {
        let ks = self.key_size;
        let at = slot as usize * ks;
        self.keys[at..at + ks].copy_from_slice(key);
        if ks <= SHORT_KEY {
            self.short.insert(short_words(key, false), ks, slot);
            return;
        }
        let keys = &self.keys;
        self.index.insert_unique(hash_key(key), slot, |&s| {
            hash_key(&keys[s as usize * ks..(s as usize + 1) * ks])
        });
    }

    /// Forget the key at `slot` (which must be indexed).
    pub(crate) fn remove(&mut self, slot: u32) {
        let ks = self.key_size;
        let at = slot as usize * ks;
        let key = &self.keys[at..at + ks];
        if ks <= SHORT_KEY {
            self.short.remove(short_words(key, false), ks);
            return;
        }
        let h = hash_key(key);
        if let Ok(entry) = self.index.find_entry(h, |&s| s == slot) {
            entry.remove();
        }
    }

    /// Move the key of indexed slot `old` to unindexed slot `new`.
    pub(crate) fn move_slot(&mut self, old: u32, new: u32) {
        let ks = self.key_size;
        let (o, n) = (old as usize * ks, new as usize * ks);
        self.keys.copy_within(o..o + ks, n);
        let key = &self.keys[n..n + ks];
        if ks <= SHORT_KEY {
            let words = short_words(key, false);
            if let Some(b) = self.short.bucket_mut(words, hash_words(words, ks)) {
                b.slot = new + 1;
            }
            return;
        }
        let h = hash_key(key);
        if let Some(s) = self.index.find_mut(h, |&s| s == old) {
            *s = new;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.short.clear();
        self.index.clear();
    }
}

/// An open-addressing table (linear probing, at most half full) of keys of at most
/// [`SHORT_KEY`] bytes, each bucket holding the key's two [`short_words`] and its slot. A
/// lookup's first probe is one load of one bucket and a compare, where a hashbrown table reads
/// a group of control bytes, then the slot, then the stored key, each load waiting on the one
/// before (that chain was most of a hash lookup). Deletions shift the buckets after the hole
/// back (no tombstones), so that a probe always ends at an empty bucket within a short run.
#[derive(Default)]
struct ShortTable {
    /// A power of two of buckets, or none before the first insertion.
    buckets: Vec<Bucket>,
    len: usize,
}

/// One bucket of a [`ShortTable`], 32 bytes: a bucket never straddles two cache lines.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Bucket {
    lo: u64,
    hi: u64,
    /// The slot plus one; 0 for an empty bucket.
    slot: u32,
}

impl ShortTable {
    #[inline(always)]
    fn find(&self, words: (u64, u64), hash: u64) -> Option<u32> {
        let mask = self.buckets.len().wrapping_sub(1);
        if self.buckets.is_empty() {
            return None;
        }
        let mut i = hash as usize & mask;
        loop {
            let b = &self.buckets[i];
            if b.lo == words.0 && b.hi == words.1 && b.slot != 0 {
                return Some(b.slot - 1);
            }
            if b.slot == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// The bucket of an indexed key, found as [`Self::find`] finds it.
    fn bucket_mut(&mut self, words: (u64, u64), hash: u64) -> Option<&mut Bucket> {
        let i = self.position(words, hash)?;
        Some(&mut self.buckets[i])
    }

    fn position(&self, words: (u64, u64), hash: u64) -> Option<usize> {
        let mask = self.buckets.len().checked_sub(1)?;
        let mut i = hash as usize & mask;
        loop {
            let b = &self.buckets[i];
            if b.slot == 0 {
                return None;
            }
            if (b.lo, b.hi) == words {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Index a key absent from the table, of `n` bytes (the hash's length).
    fn insert(&mut self, words: (u64, u64), n: usize, slot: u32) {
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow(n);
        }
        self.place(
            Bucket {
                lo: words.0,
                hi: words.1,
                slot: slot + 1,
            },
            hash_words(words, n),
        );
        self.len += 1;
    }

    /// Put `b` in the first empty bucket of its probe sequence (there is one: the table is at
    /// most half full).
    fn place(&mut self, b: Bucket, hash: u64) {
        let mask = self.buckets.len() - 1;
        let mut i = hash as usize & mask;
        while self.buckets[i].slot != 0 {
            i = (i + 1) & mask;
        }
        self.buckets[i] = b;
    }

    fn grow(&mut self, n: usize) {
        let size = (self.buckets.len() * 2).max(8);
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::default(); size]);
        for b in old.into_iter().filter(|b| b.slot != 0) {
            self.place(b, hash_words((b.lo, b.hi), n));
        }
    }

    /// Forget an indexed key of `n` bytes: the buckets after it that its place would cut off
    /// from their home bucket move back into the hole, one after another.
    fn remove(&mut self, words: (u64, u64), n: usize) {
        let Some(mut hole) = self.position(words, hash_words(words, n)) else {
            return;
        };
        let mask = self.buckets.len() - 1;
        let mut j = (hole + 1) & mask;
        loop {
            let b = self.buckets[j];
            if b.slot == 0 {
                break;
            }
            let home = hash_words((b.lo, b.hi), n) as usize & mask;
            // `b` may fill the hole when the hole lies on its probe sequence, from its home
            // bucket to `j`, wrapping around.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.buckets[hole] = b;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.buckets[hole] = Bucket::default();
        self.len -= 1;
    }

    fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        self.len = 0;
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
    /// A number no other order has had, and a count of this one's changes: while both stay,
    /// so do the slots in order (and their keys, which never change in a slot in the order).
    /// The count is plain: an atomic at every insert and delete cost every map update.
    id: u64,
    changes: u64,
}

impl Order {
    pub(crate) fn new(slots: usize) -> Order {
        Order {
            prev: vec![0; slots].into_boxed_slice(),
            next: vec![0; slots].into_boxed_slice(),
            head: 0,
            tail: 0,
            id: bpfsim_vm::unique::next(),
            changes: 0,
        }
    }

    /// What no other order, nor this one at another time, has had: while it stays, so do
    /// the slots in order.
    pub(crate) fn generation(&self) -> [u64; 2] {
        [self.id, self.changes]
    }

    pub(crate) fn first(&self) -> Option<u32> {
        self.head.checked_sub(1)
    }

    pub(crate) fn next(&self, slot: u32) -> Option<u32> {
        self.next[slot as usize].checked_sub(1)
    }

    pub(crate) fn push_back(&mut self, slot: u32) {
        self.changes = self.changes.wrapping_add(1);
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
        self.changes = self.changes.wrapping_add(1);
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
        self.changes = self.changes.wrapping_add(1);
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
        self.changes = self.changes.wrapping_add(1);
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
    use proptest::prelude::*;

    proptest! {
        /// A lookup hashes a long key from its bytes one by one, an insertion from its words:
        /// the two must agree, or lookups would miss keys that are there.
        #[test]
        fn long_keys_hash_alike_read_either_way(key in proptest::collection::vec(any::<u8>(), 17..80)) {
            prop_assert_eq!(hash_long_key(&key, true), hash_long_key(&key, false));
            prop_assert_eq!(hash_long_key(&key, true), hash_key(&key));
        }

        /// Keys of every length, short and long, found after their insertion, not after their
        /// removal, and never when absent, the index empty or not.
        #[test]
        fn index_finds_exactly_its_keys(
            ks in 1usize..40,
            ops in proptest::collection::vec((any::<bool>(), 0u8..24), 1..120),
        ) {
            let slots = 24;
            let key = |k: u8| -> Vec<u8> {
                (0..ks).map(|i| k.wrapping_mul(31).wrapping_add(i as u8 ^ k)).collect()
            };
            let mut index = KeyIndex::new(ks, slots);
            let mut model: std::collections::HashMap<Vec<u8>, u32> = Default::default();
            for (insert, k) in ops {
                let kb = key(k);
                prop_assert_eq!(index.find(&kb), model.get(&kb).copied());
                match (insert, model.get(&kb).copied()) {
                    (true, None) => {
                        index.insert(k as u32, &kb);
                        model.insert(kb.clone(), k as u32);
                    }
                    (false, Some(slot)) => {
                        index.remove(slot);
                        model.remove(&kb);
                    }
                    _ => {}
                }
                prop_assert_eq!(index.find(&kb), model.get(&kb).copied());
                prop_assert_eq!(index.len(), model.len());
            }
            // A key of another length finds nothing.
            prop_assert_eq!(index.find(&vec![0; ks + 1]), None);
        }
    }

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
    fn short_keys_spread_over_the_index() {
        // Keys that differ in one byte (ports of one flow, consecutive indexes) must not
        // collide, and the top 7 bits (hashbrown's control byte) and the low bits (its bucket)
        // must both vary.
        for n in [1usize, 2, 3, 4, 5, 8, 12, 16] {
            let mut seen = std::collections::HashSet::new();
            let (mut tops, mut lows) = (
                std::collections::HashSet::new(),
                std::collections::HashSet::new(),
            );
            for at in 0..n {
                for v in 0..=255u8 {
                    let mut k = vec![0x11u8; n];
                    k[at] = v;
                    let h = hash_key(&k);
                    seen.insert(k.clone());
                    tops.insert(h >> 57);
                    lows.insert(h & 1023);
                }
            }
            let distinct: std::collections::HashSet<u64> =
                seen.iter().map(|k| hash_key(k)).collect();
            assert_eq!(distinct.len(), seen.len(), "{n}-byte keys collide");
            assert!(
                tops.len() >= 100,
                "{n}-byte keys: {} control bytes",
                tops.len()
            );
            assert!(
                lows.len() >= seen.len().min(1024) / 2,
                "{n}-byte keys: {} buckets",
                lows.len()
            );
        }
        assert_ne!(hash_key(&[0; 4]), hash_key(&[0; 8]), "the length is hashed");
        // Keys whose first (or second) word cancels its seed still differ by the other word.
        let s0 = 0x243f_6a88_85a3_08d3u64.to_le_bytes();
        let hs: std::collections::HashSet<u64> = (0..256u64)
            .map(|w| hash_key(&[s0, w.to_le_bytes()].concat()))
            .collect();
        assert_eq!(hs.len(), 256, "a seed-valued first word");
    }

    #[test]
    fn short_words_are_the_key_read_either_way() {
        for n in 0..=SHORT_KEY {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            let w = short_words(&a, false);
            assert_eq!(short_words(&a, true), w, "{n} bytes");
            assert_eq!(hash_key(&a), hash_words(w, n), "{n} bytes");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x80;
                assert_ne!(short_words(&b, true), w, "{n} bytes, byte {at} differs");
            }
        }
    }

    #[test]
    fn index_finds_keys_of_every_length() {
        for n in [1usize, 3, 4, 7, 8, 12, 16, 17, 40] {
            let key = |s: u32| -> Vec<u8> {
                (0..n)
                    .map(|i| (s as u8).wrapping_add(i as u8 * 3))
                    .collect()
            };
            let mut ix = KeyIndex::new(n, 64);
            for s in 0..40u32 {
                ix.insert(s, &key(s));
            }
            for s in 0..40u32 {
                assert_eq!(ix.find(&key(s)), Some(s), "{n} bytes, slot {s}");
            }
            assert_eq!(ix.find(&key(50)), None, "{n} bytes");
            assert_eq!(ix.find(&key(1)[..n - 1]), None, "a shorter key");
        }
    }

    /// Random insertions, removals and moves against a model, in tables kept small (the probe
    /// runs wrap around the end, removals shift buckets back across it) and grown large, for
    /// short keys of several lengths and a long one.
    #[test]
    fn index_agrees_with_a_model_through_random_changes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in [1usize, 2, 4, 8, 13, 16, 24] {
            for (live, space) in [(4u64, 12u64), (300, 2000)] {
                let slots = live as usize + 1;
                let mut ix = KeyIndex::new(n, slots);
                let mut model: std::collections::HashMap<Vec<u8>, u32> = Default::default();
                let key = |v: u64| -> Vec<u8> {
                    (0..n)
                        .map(|i| (v >> (8 * (i % 2))) as u8 ^ i as u8)
                        .collect()
                };
                let mut free: Vec<u32> = (0..slots as u32).collect();
                for step in 0..20_000 {
                    let k = key(next() % space);
                    match (model.get(&k).copied(), next() % 3) {
                        (None, _) if model.len() < live as usize => {
                            let s = free.pop().unwrap();
                            ix.insert(s, &k);
                            model.insert(k.clone(), s);
                        }
                        (Some(s), 0) => {
                            ix.remove(s);
                            model.remove(&k);
                            free.push(s);
                        }
                        (Some(s), 1) => {
                            let t = free.pop().unwrap();
                            ix.move_slot(s, t);
                            free.push(s);
                            model.insert(k.clone(), t);
                        }
                        _ => {}
                    }
                    assert_eq!(
                        ix.find(&k),
                        model.get(&k).copied(),
                        "{n} bytes, step {step}"
                    );
                    assert_eq!(ix.len(), model.len());
                    if step % 1000 == 0 {
                        for (k, &s) in &model {
                            assert_eq!(ix.find(k), Some(s), "{n} bytes, step {step}");
                            assert_eq!(ix.key(s), &k[..]);
                        }
                    }
                }
                ix.clear();
                assert_eq!((ix.len(), ix.find(&key(0))), (0, None));
            }
        }
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
