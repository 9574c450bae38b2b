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
//!   first, so an empty trie answers at once), no longer than the key's. Keys of at most 16
//!   data bytes (IPv4, IPv6) are probed as one 128-bit number masked to each length, in a
//!   table of their own; longer ones through the byte-key index. A key whose prefixlen exceeds
//!   `8 * data_size` finds nothing.
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

use hashbrown::HashTable;

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
}

/// The index of a trie whose data fits 128 bits: slots in a table hashed by (length, masked
/// data), each slot's length and masked data kept by slot.
struct SmallIndex {
    table: HashTable<u32>,
    bits: Box<[u128]>,
    len: Box<[u16]>,
}

/// The hash of a prefix of length `len` whose masked data is `bits`: both words folded through
/// one multiply, the length mixed into the first (no per-process seed: runs must repeat).
#[inline(always)]
fn small_hash(len: u16, bits: u128) -> u64 {
    const S0: u64 = 0x243f_6a88_85a3_08d3;
    const S1: u64 = 0x1319_8a2e_0370_7344;
    let (lo, hi) = (bits as u64, (bits >> 64) as u64);
    let p = ((lo ^ S0 ^ len as u64) as u128).wrapping_mul((hi ^ S1) as u128);
    (p as u64) ^ ((p >> 64) as u64) ^ (len as u64).rotate_left(29)
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
            table: HashTable::new(),
            bits: vec![0; slots].into_boxed_slice(),
            len: vec![0; slots].into_boxed_slice(),
        }
    }

    #[inline(always)]
    fn find(&self, len: u16, masked: u128) -> Option<u32> {
        let (bits, lens) = (&self.bits, &self.len);
        self.table
            .find(small_hash(len, masked), |&s| {
                bits[s as usize] == masked && lens[s as usize] == len
            })
            .copied()
    }

    fn insert(&mut self, slot: u32, len: u16, masked: u128) {
        self.bits[slot as usize] = masked;
        self.len[slot as usize] = len;
        let (bits, lens) = (&self.bits, &self.len);
        self.table
            .insert_unique(small_hash(len, masked), slot, |&s| {
                small_hash(lens[s as usize], bits[s as usize])
            });
    }

    fn remove(&mut self, slot: u32) {
        let h = small_hash(self.len[slot as usize], self.bits[slot as usize]);
        if let Ok(entry) = self.table.find_entry(h, |&s| s == slot) {
            entry.remove();
        }
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
        }
    }

    /// The data of `key` (at most 16 bytes) as one number, its first bit the most
    /// significant: masking it to a prefix is one AND.
    #[inline(always)]
    fn wide(&self, key: &[u8]) -> u128 {
        let mut b = [0u8; 16];
        let ds = self.data_size.min(16);
        if let Some(data) = key.get(4..4 + ds) {
            b[..ds].copy_from_slice(data);
        }
        u128::from_be_bytes(b)
    }

    /// Count an element of prefix length `len` in or out, keeping `lens` the lengths in use.
    fn count(&mut self, len: u32, added: bool) {
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
        // The lengths in use no longer than the key's, longest first.
        let start = self.lens.partition_point(|&l| l as u32 > len);
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
        self.count(len, true);
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
        self.count(len, false);
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
        if let Some(small) = &mut self.small {
            small.table.clear();
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
