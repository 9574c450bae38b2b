//! Arrays whose slots may be empty: `PROG_ARRAY`, `ARRAY_OF_MAPS`, `PERF_EVENT_ARRAY` (the
//! kernel's "fd arrays", kernel/bpf/arraymap.c), `DEVMAP` (kernel/bpf/devmap.c), `CPUMAP`
//! (kernel/bpf/cpumap.c) and `XSKMAP` (net/xdp/xskmap.c).
//!
//! The kernel stores a pointer per slot (a program, a map, a net device, a CPU queue, a socket)
//! and NULL when empty. The simulator stores the value the host gave (a program id, a map id, an
//! ifindex, a queue size, a socket id) in the arena at `index * 8`, and a presence bit. Each type
//! keeps its own update and delete rules, which differ in surprising ways (a devmap delete of an
//! empty slot succeeds, an fd-array delete of one is `ENOENT`; cpumap and devmap take
//! `BPF_EXIST`/`BPF_NOEXIST`, fd arrays only `BPF_ANY`).

use super::array::{array_next_key, index_of};
use super::error::{Errno, Op, OpError, Reason};
use super::{span, ArenaAccess, BPF_ANY, BPF_EXIST, BPF_NOEXIST};

/// The largest CPU-map queue the kernel accepts (`cpu_map_update_elem`'s sanity limit).
pub const CPUMAP_MAX_QSIZE: u32 = 16384;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SlotKind {
    ProgArray,
    MapArray,
    PerfEvents,
    Devmap,
    Cpumap,
    Xskmap,
}

pub struct SlotArray {
    kind: SlotKind,
    value_size: usize,
    max_entries: u32,
    ncpus: u32,
    present: Box<[bool]>,
    count: u32,
}

const STRIDE: usize = 8;

impl SlotArray {
    pub(crate) fn new(kind: SlotKind, value_size: u32, max_entries: u32, ncpus: u32) -> SlotArray {
        SlotArray {
            kind,
            value_size: value_size as usize,
            max_entries,
            ncpus,
            present: vec![false; max_entries as usize].into_boxed_slice(),
            count: 0,
        }
    }

    pub(crate) fn arena_len(max_entries: u32) -> u64 {
        STRIDE as u64 * max_entries as u64
    }

    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    fn out_of_range(&self, index: u32, errno: Errno) -> OpError {
        OpError::new(
            errno,
            Reason::IndexOutOfRange {
                index,
                max_entries: self.max_entries,
            },
        )
    }

    /// Offset of the value in slot `index`, if the slot is filled, whatever the map type: what
    /// `tail_call` and `redirect_map` read.
    #[inline]
    pub(crate) fn value_at(&self, index: u32) -> Option<usize> {
        match self.present.get(index as usize) {
            Some(true) => Some(index as usize * STRIDE),
            _ => None,
        }
    }

    /// `bpf_map_lookup_elem` from a program: only the types whose lookup gives programs a
    /// pointer (an inner map, a `struct bpf_devmap_val`, an `xdp_sock`) answer.
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<usize> {
        match self.kind {
            SlotKind::MapArray | SlotKind::Devmap | SlotKind::Xskmap => {
                self.value_at(index_of(key))
            }
            SlotKind::ProgArray | SlotKind::PerfEvents | SlotKind::Cpumap => None,
        }
    }

    /// What a program's [`Self::lookup`] answers from, for an engine to answer it itself: the
    /// number of slots and the offset from one slot's value to the next, with the filled slots
    /// as bits in `bits` (slot `i` in bit `i % 64` of `bits[i / 64]`; the types whose lookup
    /// finds nothing have none set). `None`, with `bits` untouched, when they do not fit in it.
    pub(crate) fn lookup_bits(&self, bits: &mut [u64]) -> Option<(u32, u64)> {
        let words = (self.max_entries as usize).div_ceil(64);
        let bits = bits.get_mut(..words)?;
        bits.fill(0);
        let answers = matches!(
            self.kind,
            SlotKind::MapArray | SlotKind::Devmap | SlotKind::Xskmap
        );
        if answers && self.count > 0 {
            for (i, _) in self.present.iter().enumerate().filter(|(_, &p)| p) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        Some((self.max_entries, STRIDE as u64))
    }

    /// The syscall's lookup: which types answer, and with what errno the others refuse.
    pub(crate) fn host_lookup(&self, key: &[u8]) -> Result<usize, OpError> {
        match self.kind {
            SlotKind::PerfEvents => Err(OpError::unsupported(Errno::ENOTSUPP, Op::Lookup)),
            SlotKind::Xskmap => Err(OpError::unsupported(Errno::EOPNOTSUPP, Op::Lookup)),
            _ => self.value_at(index_of(key)).ok_or(OpError::no_key()),
        }
    }

    fn store(
        &mut self,
        index: u32,
        words: [u32; 2],
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        let dst = span(mem, 0, index as usize * STRIDE, self.value_size)?;
        dst[..4].copy_from_slice(&words[0].to_le_bytes());
        if self.value_size == 8 {
            dst[4..].copy_from_slice(&words[1].to_le_bytes());
        }
        if !self.present[index as usize] {
            self.present[index as usize] = true;
            self.count += 1;
        }
        Ok(())
    }

    fn empty(&mut self, index: u32) -> bool {
        let was = std::mem::replace(&mut self.present[index as usize], false);
        self.count -= was as u32;
        was
    }

    pub(crate) fn update(
        &mut self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        let index = index_of(key);
        let word = |at: usize| {
            value
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (first, second) = (word(0), word(4));
        // The program fd of a devmap/cpumap value: none when <= 0 (the kernel then reports id 0).
        let prog = if (second as i32) > 0 { second } else { 0 };
        match self.kind {
            SlotKind::ProgArray | SlotKind::MapArray | SlotKind::PerfEvents => {
                if flags != BPF_ANY {
                    return Err(OpError::bad_flags(flags));
                }
                if index >= self.max_entries {
                    return Err(self.out_of_range(index, Errno::E2BIG));
                }
                self.store(index, [first, 0], mem)
            }
            SlotKind::Devmap => {
                self.check_redirect_flags(index, flags)?;
                if first == 0 {
                    // ifindex 0 empties the slot; it cannot come with a program.
                    if prog != 0 {
                        return Err(OpError::new(
                            Errno::EINVAL,
                            Reason::BadValue("a devmap entry with ifindex 0 cannot name a program"),
                        ));
                    }
                    self.empty(index);
                    return Ok(());
                }
                self.store(index, [first, prog], mem)
            }
            SlotKind::Cpumap => {
                self.check_redirect_flags(index, flags)?;
                if first > CPUMAP_MAX_QSIZE {
                    return Err(OpError::new(
                        Errno::EOVERFLOW,
                        Reason::BadValue("cpumap qsize exceeds 16384"),
                    ));
                }
                if index >= self.ncpus {
                    return Err(OpError::new(
                        Errno::ENODEV,
                        Reason::BadValue("cpumap key is not a simulated CPU"),
                    ));
                }
                if first == 0 {
                    // A queue size of 0 is the same as deleting the entry.
                    self.empty(index);
                    return Ok(());
                }
                self.store(index, [first, prog], mem)
            }
            SlotKind::Xskmap => {
                if flags > BPF_EXIST {
                    return Err(OpError::bad_flags(flags));
                }
                if index >= self.max_entries {
                    return Err(self.out_of_range(index, Errno::E2BIG));
                }
                if let Some(off) = self.value_at(index) {
                    let same = span(mem, 0, off, 4)? == first.to_le_bytes();
                    if same {
                        return Ok(());
                    }
                    if flags == BPF_NOEXIST {
                        return Err(OpError::exists());
                    }
                } else if flags == BPF_EXIST {
                    return Err(OpError::no_key());
                }
                self.store(index, [first, 0], mem)
            }
        }
    }

    /// The checks devmap and cpumap share, in their order: flags, range, then `BPF_NOEXIST`
    /// (always `EEXIST`, even for an empty slot: the kernel treats every slot as existing).
    fn check_redirect_flags(&self, index: u32, flags: u64) -> Result<(), OpError> {
        if flags > BPF_EXIST {
            return Err(OpError::bad_flags(flags));
        }
        if index >= self.max_entries {
            return Err(self.out_of_range(index, Errno::E2BIG));
        }
        if flags == BPF_NOEXIST {
            return Err(OpError::exists());
        }
        Ok(())
    }

    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<(), OpError> {
        let index = index_of(key);
        match self.kind {
            SlotKind::ProgArray | SlotKind::MapArray | SlotKind::PerfEvents => {
                if index >= self.max_entries {
                    return Err(self.out_of_range(index, Errno::E2BIG));
                }
                if self.empty(index) {
                    Ok(())
                } else {
                    Err(OpError::no_key())
                }
            }
            SlotKind::Devmap | SlotKind::Cpumap | SlotKind::Xskmap => {
                if index >= self.max_entries {
                    return Err(self.out_of_range(index, Errno::EINVAL));
                }
                // Emptying an empty slot is not an error here.
                self.empty(index);
                Ok(())
            }
        }
    }

    pub(crate) fn get_next_key(&self, key: Option<&[u8]>, out: &mut [u8]) -> Result<(), OpError> {
        array_next_key(key, self.max_entries, out)
    }

    pub(crate) fn clear(&mut self) {
        self.present.fill(false);
        self.count = 0;
    }

    /// Filled slots in index order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (Vec<u8>, usize)> + '_ {
        self.present
            .iter()
            .enumerate()
            .filter(|(_, &p)| p)
            .map(|(i, _)| ((i as u32).to_le_bytes().to_vec(), i * STRIDE))
    }

    /// [`Self::keys`] without a key's allocation.
    pub(crate) fn visit_keys(&self, f: &mut dyn FnMut(&[u8], usize)) {
        for (i, _) in self.present.iter().enumerate().filter(|(_, &p)| p) {
            f(&(i as u32).to_le_bytes(), i * STRIDE);
        }
    }
}
