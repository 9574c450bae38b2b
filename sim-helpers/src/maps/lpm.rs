//! `BPF_MAP_TYPE_LPM_TRIE` (kernel/bpf/lpm_trie.c): longest-prefix match over keys
//! `struct bpf_lpm_trie_key_u8 { __u32 prefixlen; __u8 data[]; }`, bits numbered from the most
//! significant bit of `data[0]` (network order).
//!
//! The kernel's Patricia trie is not needed to reproduce its answers:
//!
//! - An element is identified by its prefix length and the first `prefixlen` bits of its data;
//!   bits past the prefix do not matter for matching (10.99.0.0/8 updates, finds and deletes the
//!   element inserted as 10.0.0.0/8), but the data bytes are kept as given and returned by
//!   `get_next_key`, as the kernel keeps the node's copy of the key.
//! - Lookup returns the element with the longest prefix, no longer than the key's, that matches
//!   the key; here that is one hash probe per prefix length in use (a list kept sorted, longest
//!   first, so an empty trie answers at once), no longer than the key's; the elements of 8 bits
//!   or more are counted by first data byte, and a key whose first byte has none probes only
//!   the shorter lengths (a block list's miss then probes nothing). Keys of at most 16 data
//!   bytes (IPv4, IPv6) are probed as one 128-bit number masked to each length, in an
//!   open-addressing table of their own; longer ones through the byte-key index. A key whose
//!   prefixlen exceeds `8 * data_size` finds nothing.
//! - `get_next_key` walks the trie in post-order (a more specific prefix before the prefixes that
//!   contain it, bit 0 before bit 1). That order is a total order on (prefix, length), so a sorted
//!   map gives the same sequence: keys differing within their common length compare by the first
//!   differing bit; otherwise the longer one comes first. A key that is not in the trie (or is
//!   invalid) restarts at the first element, like the kernel.
//!
//! Full: `ENOSPC` (not `E2BIG`); replacing an existing prefix in a full trie works (Linux 6.13+).
//! Deviation: an update of an existing prefix writes the value in place; the kernel allocates a
//! new node, so a program holding a pointer from an earlier lookup would keep seeing the old value.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::error::{Errno, OpError, Reason};
use super::table::{round8, write_value, KeyIndex, SlotAlloc};
use super::{span, ArenaAccess, BPF_EXIST, BPF_NOEXIST};

/// Most data bytes a key may have (`LPM_DATA_SIZE_MAX`).
pub const LPM_DATA_SIZE_MAX: u32 = 256;
/// Largest value (`LPM_VAL_SIZE_MAX`: `KMALLOC_MAX_SIZE` less the data and the node header).
pub const LPM_VAL_SIZE_MAX: u32 = (4 << 20) - LPM_DATA_SIZE_MAX - 24;

/// An element's identity in post-order: prefix length and the data masked to it.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Prefix {
    len: u32,
    bits: Box<[u8]>,
}

impl Ord for Prefix {
    fn cmp(&self, other: &Self) -> Ordering {
        let common = self.len.min(other.len) as usize;
        for i in 0..common.div_ceil(8) {
            let mut diff = self.bits[i] ^ other.bits[i];
            if (i + 1) * 8 > common {
                diff &= 0xffu8 << ((i + 1) * 8 - common);
            }
            if diff != 0 {
                let bit = 0x80u8 >> diff.leading_zeros();
                // The side with a 0 at the first differing bit is in the left subtree.
                return if self.bits[i] & bit == 0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
        }
        // One is a prefix of the other: the more specific one comes first in post-order.
        other.len.cmp(&self.len)
    }
}

impl PartialOrd for Prefix {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Zero the bits of `data` from bit `len` on.
fn mask_bits(data: &mut [u8], len: u32) {
    let len = len as usize;
    let full = len / 8;
    if full < data.len() {
        if len % 8 != 0 {
            data[full] &= 0xffu8 << (8 - len % 8);
            data[full + 1..].fill(0);
        } else {
            data[full..].fill(0);
        }
    }
}

pub struct LpmTrie {
    data_size: usize,
    max_prefixlen: u32,
    value_size: usize,
    stride: usize,
    max_entries: u32,
    /// Index keys: the 4-byte prefix length then the masked data.
    index: KeyIndex,
    /// The data of each element as it was given.
    raw: Box<[u8]>,
    order: BTreeMap<Prefix, u32>,
    alloc: SlotAlloc,
    /// Elements per prefix length.
    per_len: Box<[u32]>,
    /// The prefix lengths in use (`per_len` not 0), longest first: what a lookup probes.
    lens: Vec<u16>,
    /// For data of at most 16 bytes: the elements by prefix length and masked data as a
    /// 128-bit number ([`Self::wide`]), which a lookup probes without building a byte key.
    small: Option<SmallIndex>,
    /// Elements of 8 bits or more by their first data byte: a key whose first byte no such
    /// element has can only match the shorter ones, and its lookup skips the others' probes
    /// (a miss, most lookups of a block list, then probes nothing).
    by_first: Box<[u32; 256]>,
}

/// The index of a trie whose data fits 128 bits: an open-addressing table (linear probing, at
/// most half full) whose buckets hold the prefix's length and masked data next to its slot, so
/// that a probe is one hash, one load and a compare (a hashbrown table's probe waited on its
/// control bytes, then the slot, then the stored key: the lookup probes once per length in
/// use). Deletions shift the buckets after the hole back (no tombstones). Each slot's length
/// and data are also kept by slot, to find its bucket again.
struct SmallIndex {
    /// A power of two of buckets, or none before the first insertion.
    buckets: Vec<Bucket>,
    /// `64 - log2(buckets.len())`: a hash's top bits pick the home bucket.
    shift: u32,
    count: usize,
    bits: Box<[u128]>,
    len: Box<[u16]>,
}

/// One bucket of a [`SmallIndex`], 32 bytes: a bucket never straddles two cache lines.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Bucket {
    bits: u128,
    /// The prefix length plus one; 0 for an empty bucket.
    tag: u32,
    slot: u32,
}

/// The first `len` bits of a data number ([`LpmTrie::wide`]).
#[inline(always)]
fn small_mask(bits: u128, len: u16) -> u128 {
    if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - len as u32))
    }
}

impl SmallIndex {
    fn new(slots: usize) -> SmallIndex {
        SmallIndex {
            buckets: Vec::new(),
            shift: 64,
            count: 0,
            bits: vec![0; slots].into_boxed_slice(),
            len: vec![0; slots].into_boxed_slice(),
        }
    }

    /// The home bucket of a prefix: the two words and the length folded into one (the data of
    /// short keys sits in the high word), then a multiplicative hash's top bits, which every
    /// bit of the fold reaches. No per-process seed: runs must repeat.
    #[inline(always)]
    fn home(&self, len: u16, masked: u128) -> usize {
        let x = (masked as u64)
            ^ ((masked >> 64) as u64).rotate_left(23)
            ^ (len as u64).wrapping_mul(0x0100_0000_0001_0001);
        (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    #[inline(always)]
    fn find(&self, len: u16, masked: u128) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let tag = len as u32 + 1;
        let mut i = self.home(len, masked);
        loop {
            let b = &self.buckets[i];
            if b.tag == tag && b.bits == masked {
                return Some(b.slot);
            }
            if b.tag == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Index a prefix that is absent.
    fn insert(&mut self, slot: u32, len: u16, masked: u128) {
        self.bits[slot as usize] = masked;
        self.len[slot as usize] = len;
        if (self.count + 1) * 2 > self.buckets.len() {
            let size = (self.buckets.len() * 2).max(8);
            let old = std::mem::replace(&mut self.buckets, vec![Bucket::default(); size]);
            self.shift = 64 - size.trailing_zeros();
            for b in old.into_iter().filter(|b| b.tag != 0) {
                self.place(b);
            }
        }
        self.place(Bucket {
            bits: masked,
            tag: len as u32 + 1,
            slot,
        });
        self.count += 1;
    }

    /// Put `b` in the first empty bucket from its home (there is one: at most half full).
    fn place(&mut self, b: Bucket) {
        let mask = self.buckets.len() - 1;
        let mut i = self.home(b.tag as u16 - 1, b.bits);
        while self.buckets[i].tag != 0 {
            i = (i + 1) & mask;
        }
        self.buckets[i] = b;
    }

    /// Forget the prefix at `slot` (which must be indexed): the buckets after it that its place
    /// would cut off from their home move back into the hole, one after another.
    fn remove(&mut self, slot: u32) {
        if self.buckets.is_empty() {
            return;
        }
        let (len, bits) = (self.len[slot as usize], self.bits[slot as usize]);
        let mask = self.buckets.len() - 1;
        let mut hole = self.home(len, bits);
        loop {
            let b = &self.buckets[hole];
            if b.tag == 0 {
                return;
            }
            if b.slot == slot && b.tag == len as u32 + 1 {
                break;
            }
            hole = (hole + 1) & mask;
        }
        let mut j = (hole + 1) & mask;
        loop {
            let b = self.buckets[j];
            if b.tag == 0 {
                break;
            }
            let home = self.home(b.tag as u16 - 1, b.bits);
            // `b` may fill the hole when the hole lies on its probe sequence, from its home
            // bucket to `j`, wrapping around.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.buckets[hole] = b;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.buckets[hole] = Bucket::default();
        self.count -= 1;
    }

    fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        self.count = 0;
    }
}

impl LpmTrie {
    pub(crate) fn arena_len(value_size: u32, max_entries: u32) -> u64 {
        round8(value_size as usize) as u64 * max_entries as u64
    }

    pub(crate) fn new(key_size: u32, value_size: u32, max_entries: u32) -> LpmTrie {
        let data_size = key_size as usize - 4;
        LpmTrie {
            data_size,
            max_prefixlen: 8 * data_size as u32,
            value_size: value_size as usize,
            stride: round8(value_size as usize),
            max_entries,
            index: KeyIndex::new(key_size as usize, max_entries as usize),
            raw: vec![0; data_size * max_entries as usize].into_boxed_slice(),
            order: BTreeMap::new(),
            alloc: SlotAlloc::new(max_entries),
            per_len: vec![0; 8 * data_size + 1].into_boxed_slice(),
            lens: Vec::new(),
            small: (data_size <= 16).then(|| SmallIndex::new(max_entries as usize)),
            by_first: Box::new([0; 256]),
        }
    }

    /// The data of `key` (at most 16 bytes) as one number, its first bit the most
    /// significant: masking it to a prefix is one AND.
    ///
    /// Read in words of the data's own size where there is one: a copy into a 16-byte buffer
    /// read back as one number (a `memcpy` of the data's length) made the load wait for the
    /// copy's narrower stores, a third of the lookup.
    #[inline(always)]
    fn wide(&self, key: &[u8]) -> u128 {
        let data = key.get(4..4 + self.data_size.min(16)).unwrap_or(&[]);
        if let Ok(w) = <[u8; 4]>::try_from(data) {
            return (u32::from_be_bytes(w) as u128) << 96;
        }
        if let Ok(w) = <[u8; 16]>::try_from(data) {
            return u128::from_be_bytes(w);
        }
        data.iter()
            .enumerate()
            .fold(0, |acc, (i, &b)| acc | (b as u128) << (120 - 8 * i))
    }

    /// Count an element of prefix length `len` and first data byte `first` in or out, keeping
    /// `lens` the lengths in use and `by_first`.
    fn count(&mut self, len: u32, first: u8, added: bool) {
        if len >= 8 {
            let f = &mut self.by_first[first as usize];
            *f = if added { *f + 1 } else { *f - 1 };
        }
        let n = &mut self.per_len[len as usize];
        let len = len as u16;
        if added {
            *n += 1;
            if *n == 1 {
                let at = self.lens.partition_point(|&l| l > len);
                self.lens.insert(at, len);
            }
        } else {
            *n -= 1;
            if *n == 0 {
                self.lens.retain(|&l| l != len);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    fn prefixlen(key: &[u8]) -> u32 {
        u32::from_le_bytes([key[0], key[1], key[2], key[3]])
    }

    /// The index key of `key` truncated to `len` bits, written into `buf`.
    fn index_key<'b>(&self, key: &[u8], len: u32, buf: &'b mut [u8; 4 + 256]) -> &'b [u8] {
        let n = 4 + self.data_size;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        buf[4..n].copy_from_slice(&key[4..n]);
        mask_bits(&mut buf[4..n], len);
        &buf[..n]
    }

    fn exact(&self, key: &[u8]) -> Option<u32> {
        let mut buf = [0u8; 4 + 256];
        self.index
            .find(self.index_key(key, Self::prefixlen(key), &mut buf))
    }

    fn prefix(&self, key: &[u8]) -> Prefix {
        let mut bits: Box<[u8]> = key[4..4 + self.data_size].into();
        let len = Self::prefixlen(key);
        mask_bits(&mut bits, len);
        Prefix { len, bits }
    }

    /// Longest-prefix match (`trie_lookup_elem`), from programs and the host alike.
    #[inline]
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<usize> {
        if self.lens.is_empty() {
            return None;
        }
        let len = Self::prefixlen(key);
        if len > self.max_prefixlen {
            return None;
        }
        // The lengths in use no longer than the key's, longest first; when no element of 8 bits
        // or more shares the key's first byte, only the shorter ones.
        let mut start = self.lens.partition_point(|&l| l as u32 > len);
        if self.by_first[key.get(4).copied().unwrap_or(0) as usize] == 0 {
            start = start.max(self.lens.partition_point(|&l| l >= 8));
        }
        let lens = &self.lens[start..];
        let slot = match &self.small {
            Some(small) => {
                let bits = self.wide(key);
                lens.iter()
                    .find_map(|&l| small.find(l, small_mask(bits, l)))
            }
            None => {
                let mut buf = [0u8; 4 + 256];
                lens.iter()
                    .find_map(|&l| self.index.find(self.index_key(key, l as u32, &mut buf)))
            }
        };
        slot.map(|slot| slot as usize * self.stride)
    }

    fn too_long(&self, len: u32) -> OpError {
        OpError::new(
            Errno::EINVAL,
            Reason::PrefixTooLong {
                prefixlen: len,
                max: self.max_prefixlen,
            },
        )
    }

    /// `trie_update_elem`.
    pub(crate) fn update(
        &mut self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        if flags > BPF_EXIST {
            return Err(OpError::bad_flags(flags));
        }
        let len = Self::prefixlen(key);
        if len > self.max_prefixlen {
            return Err(self.too_long(len));
        }
        let ds = self.data_size;
        if let Some(slot) = self.exact(key) {
            if flags == BPF_NOEXIST {
                return Err(OpError::exists());
            }
            let off = slot as usize * self.stride;
            write_value(span(mem, 0, off, self.value_size)?, value, None, false);
            // The replacing node carries the new key's data.
            self.raw[slot as usize * ds..(slot as usize + 1) * ds].copy_from_slice(&key[4..]);
            return Ok(());
        }
        if flags == BPF_EXIST {
            return Err(OpError::no_key());
        }
        if self.order.len() >= self.max_entries as usize {
            return Err(OpError::new(
                Errno::ENOSPC,
                Reason::Full {
                    max_entries: self.max_entries,
                },
            ));
        }
        let slot = self.alloc.pop().ok_or(OpError::new(
            Errno::ENOSPC,
            Reason::Full {
                max_entries: self.max_entries,
            },
        ))?;
        let off = slot as usize * self.stride;
        match span(mem, 0, off, self.value_size) {
            Ok(dst) => write_value(dst, value, None, true),
            Err(e) => {
                self.alloc.push(slot);
                return Err(e);
            }
        }
        let mut buf = [0u8; 4 + 256];
        let ikey = self.index_key(key, len, &mut buf).to_vec();
        self.index.insert(slot, &ikey);
        let bits = self.wide(key);
        if let Some(small) = &mut self.small {
            small.insert(slot, len as u16, small_mask(bits, len as u16));
        }
        self.raw[slot as usize * ds..(slot as usize + 1) * ds].copy_from_slice(&key[4..]);
        self.order.insert(self.prefix(key), slot);
        self.count(len, key[4], true);
        Ok(())
    }

    /// `trie_delete_elem`: only an exact prefix is removed.
    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<(), OpError> {
        let len = Self::prefixlen(key);
        if len > self.max_prefixlen {
            return Err(self.too_long(len));
        }
        let slot = self.exact(key).ok_or(OpError::no_key())?;
        self.index.remove(slot);
        if let Some(small) = &mut self.small {
            small.remove(slot);
        }
        self.order.remove(&self.prefix(key));
        self.alloc.push(slot);
        self.count(len, key[4], false);
        Ok(())
    }

    fn write_key(&self, prefix: &Prefix, slot: u32, out: &mut [u8]) {
        let ds = self.data_size;
        out[..4].copy_from_slice(&prefix.len.to_le_bytes());
        out[4..].copy_from_slice(&self.raw[slot as usize * ds..(slot as usize + 1) * ds]);
    }

    /// `trie_get_next_key`: post-order successor, or the first element for an unknown key.
    pub(crate) fn get_next_key(&self, key: Option<&[u8]>, out: &mut [u8]) -> Result<(), OpError> {
        let start = key.filter(|k| Self::prefixlen(k) <= self.max_prefixlen);
        let next = match start.map(|k| self.prefix(k)) {
            Some(p) if self.order.contains_key(&p) => self
                .order
                .range((std::ops::Bound::Excluded(p), std::ops::Bound::Unbounded))
                .next(),
            _ => self.order.iter().next(),
        };
        let (prefix, &slot) = next.ok_or(OpError::no_key())?;
        self.write_key(prefix, slot, out);
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.order.clear();
        self.alloc.reset();
        self.per_len.fill(0);
        self.lens.clear();
        self.by_first.fill(0);
        if let Some(small) = &mut self.small {
            small.clear();
        }
    }

    /// Elements in post-order, keys as `get_next_key` returns them.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (Vec<u8>, usize)> + '_ {
        self.order.iter().map(|(p, &slot)| {
            let mut key = vec![0u8; 4 + self.data_size];
            self.write_key(p, slot, &mut key);
            (key, slot as usize * self.stride)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(len: u32, bits: &[u8]) -> Prefix {
        let mut bits: Box<[u8]> = bits.into();
        mask_bits(&mut bits, len);
        Prefix { len, bits }
    }

    #[test]
    fn post_order_puts_specific_prefixes_first_and_zero_bits_left() {
        // The kernel's own example in lpm_trie.c, in the order its get_next_key returns it.
        let want = [
            p(24, &[192, 168, 0, 0]),
            p(24, &[192, 168, 1, 0]),
            p(24, &[192, 168, 128, 0]),
            p(16, &[192, 168, 0, 0]),
        ];
        let mut shuffled = [&want[3], &want[1], &want[0], &want[2]];
        shuffled.sort();
        assert_eq!(shuffled, [&want[0], &want[1], &want[2], &want[3]]);
        assert!(p(0, &[0; 4]) > p(8, &[255, 0, 0, 0]));
        assert_eq!(p(8, &[10, 1, 0, 0]), p(8, &[10, 99, 0, 0]));
    }

    /// The open-addressing index against a model: many prefixes sharing data and lengths (so
    /// that probe runs are long and collide), removed in an order unlike their insertion's,
    /// every prefix looked up after each step.
    #[test]
    fn small_index_finds_what_it_holds_through_removals() {
        let n = 300u32;
        let mut idx = SmallIndex::new(n as usize);
        let key = |s: u32| {
            let len = (s % 7 * 5) as u16;
            (len, small_mask(((s / 7) as u128) << 100 | 0xabcd, len))
        };
        let mut present = vec![false; n as usize];
        let check = |idx: &SmallIndex, present: &[bool]| {
            for s in 0..n {
                let (len, bits) = key(s);
                let want = present
                    .iter()
                    .enumerate()
                    .find(|&(t, &p)| p && key(t as u32) == (len, bits))
                    .map(|(t, _)| t as u32);
                assert_eq!(idx.find(len, bits), want, "slot {s}");
            }
        };
        for s in 0..n {
            if present
                .iter()
                .enumerate()
                .any(|(t, &p)| p && key(t as u32) == key(s))
            {
                continue;
            }
            let (len, bits) = key(s);
            idx.insert(s, len, bits);
            present[s as usize] = true;
        }
        check(&idx, &present);
        for step in 0..n {
            let s = step * 37 % n;
            if present[s as usize] {
                idx.remove(s);
                present[s as usize] = false;
                if step % 16 == 0 {
                    check(&idx, &present);
                }
            }
        }
        check(&idx, &present);
        assert_eq!(idx.count, 0);
        idx.clear();
        check(&idx, &present);
    }

    #[test]
    fn masking() {
        let mut d = [0xff; 3];
        mask_bits(&mut d, 12);
        assert_eq!(d, [0xff, 0xf0, 0]);
        let mut d = [0xff; 3];
        mask_bits(&mut d, 24);
        assert_eq!(d, [0xff; 3]);
        mask_bits(&mut d, 0);
        assert_eq!(d, [0; 3]);
    }
}
