//! `BPF_MAP_TYPE_RINGBUF` (kernel/bpf/ringbuf.c): a multi-producer ring of `max_entries` bytes
//! (a power of two, whole pages) read by one consumer, the host.
//!
//! Records are an 8-byte header (`len | BUSY | DISCARD` bits, then the page offset the kernel
//! uses to find the ring from a sample) followed by the data, rounded up to 8 bytes, written at
//! `producer_pos & mask`. `reserve` returns the offset of the data in the arena so the program
//! writes in place; `submit`/`discard` commit it. The consumer reads committed records in order
//! and stops at the first one still reserved, exactly as libbpf's consumer does, so a reserved but
//! uncommitted record holds back every later one.
//!
//! The kernel maps the data pages twice in a row so that a record that wraps past the end is
//! contiguous in memory; the arena here is likewise `2 * max_entries` bytes. A reservation that
//! wraps copies the wrapped-around bytes into the second copy first (so the program reads what the
//! kernel's program would), and its commit copies them back (so the ring's first copy is right).
//!
//! The ring's bookkeeping (positions, record states) is kept here, not parsed back from the
//! arena, so a program that scribbles over headers cannot confuse the host; record headers are
//! still written into the arena as the kernel lays them out.

use std::collections::VecDeque;

use super::error::{Errno, Op, OpError, Reason};
use super::{span, ArenaAccess};

/// `BPF_RINGBUF_BUSY_BIT`.
pub const BUSY_BIT: u32 = 1 << 31;
/// `BPF_RINGBUF_DISCARD_BIT`.
pub const DISCARD_BIT: u32 = 1 << 30;
/// `BPF_RINGBUF_HDR_SZ`.
pub const HDR_SZ: u32 = 8;
/// `BPF_RB_NO_WAKEUP`: commit without notifying the consumer.
pub const BPF_RB_NO_WAKEUP: u64 = 1;
/// `BPF_RB_FORCE_WAKEUP`: commit and notify the consumer unconditionally.
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
/// `bpf_ringbuf_query` flags.
pub const BPF_RB_AVAIL_DATA: u64 = 0;
pub const BPF_RB_RING_SIZE: u64 = 1;
pub const BPF_RB_CONS_POS: u64 = 2;
pub const BPF_RB_PROD_POS: u64 = 3;
/// `RINGBUF_MAX_RECORD_SZ`.
const MAX_RECORD: u64 = (u32::MAX / 4) as u64;
const PAGE_SHIFT: u32 = 12;
/// Pages of `struct bpf_ringbuf` before its data (`RINGBUF_PGOFF + RINGBUF_POS_PAGES`).
const DATA_PGOFF: u32 = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Busy,
    Committed,
    Discarded,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    pos: u64,
    size: u32,
    state: State,
}

impl Record {
    /// Bytes the record takes in the ring.
    fn len(&self) -> u64 {
        (self.size as u64 + HDR_SZ as u64 + 7) & !7
    }
}

pub struct RingBuf {
    size: u64,
    mask: u64,
    consumer_pos: u64,
    producer_pos: u64,
    /// Records between the consumer and producer positions, in ring order.
    records: VecDeque<Record>,
    wakeups: u64,
}

impl RingBuf {
    pub(crate) fn arena_len(size: u32) -> u64 {
        2 * size as u64
    }

    pub(crate) fn new(size: u32) -> RingBuf {
        RingBuf {
            size: size as u64,
            mask: size as u64 - 1,
            consumer_pos: 0,
            producer_pos: 0,
            records: VecDeque::new(),
            wakeups: 0,
        }
    }

    /// How many times a commit would have woken the consumer up (epoll) so far.
    pub fn wakeups(&self) -> u64 {
        self.wakeups
    }

    /// Records reserved and not yet consumed (committed, discarded or still busy).
    pub fn pending(&self) -> usize {
        self.records.len()
    }

    /// `bpf_ringbuf_query`.
    pub fn query(&self, flags: u64) -> u64 {
        match flags {
            BPF_RB_AVAIL_DATA => self.producer_pos - self.consumer_pos,
            BPF_RB_RING_SIZE => self.size,
            BPF_RB_CONS_POS => self.consumer_pos,
            BPF_RB_PROD_POS => self.producer_pos,
            _ => 0,
        }
    }

    /// `bpf_ringbuf_reserve`: the arena offset of `size` writable bytes, or `None` (the helper's
    /// NULL) for non-zero flags, an oversized record or a ring without room.
    pub fn reserve(&mut self, size: u64, flags: u64, mem: &mut impl ArenaAccess) -> Option<usize> {
        if flags != 0 {
            return None;
        }
        self.reserve_record(size, mem).ok()
    }

    fn reserve_record(&mut self, size: u64, mem: &mut impl ArenaAccess) -> Result<usize, OpError> {
        let full = || OpError::new(Errno::EAGAIN, Reason::RingFull { size });
        if size > MAX_RECORD {
            return Err(full());
        }
        let rec = Record {
            pos: self.producer_pos,
            size: size as u32,
            state: State::Busy,
        };
        let len = rec.len();
        if len > self.size {
            return Err(full());
        }
        // The kernel also refuses a ring spanning more than its size from the oldest record
        // not yet committed (`pending_pos`), against a user-space consumer moved past it. Here
        // the consumer stops at that record, so it is never behind the consumer: the
        // consumer's bound below is the tighter one, and the record need not be looked for
        // (a walk over every record a full ring holds, on each reservation it refuses).
        let new_prod = self.producer_pos + len;
        if new_prod - self.consumer_pos > self.mask {
            return Err(full());
        }
        let at = (rec.pos & self.mask) as usize;
        let arena = span(mem, 0, 0, 2 * self.size as usize)?;
        let n = self.size as usize;
        let end = at + len as usize;
        if end > n {
            // Show the program the bytes the kernel's second mapping of the pages would.
            arena.copy_within(..end - n, n);
        }
        let pg_off = DATA_PGOFF + (at as u32 >> PAGE_SHIFT);
        arena[at..at + 4].copy_from_slice(&(rec.size | BUSY_BIT).to_le_bytes());
        arena[at + 4..at + 8].copy_from_slice(&pg_off.to_le_bytes());
        self.records.push_back(rec);
        self.producer_pos = new_prod;
        Ok(at + HDR_SZ as usize)
    }

    /// Commit the record whose data starts at `offset` (`bpf_ringbuf_submit`/`_discard`; their
    /// flags are not checked, as in the kernel). An offset that is not a reserved record is
    /// `EINVAL` here; the verifier makes it impossible in the kernel.
    fn commit(
        &mut self,
        offset: usize,
        flags: u64,
        discard: bool,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        let mask = self.mask;
        // Searched from the newest: a program commits what it reserved last, most often. Busy
        // records lie within one ring's length of each other, so at most one has this offset.
        let rec = self
            .records
            .iter_mut()
            .rev()
            .find(|r| r.state == State::Busy && (r.pos & mask) as usize + HDR_SZ as usize == offset)
            .ok_or_else(|| OpError::new(Errno::EINVAL, Reason::NotReserved { offset }))?;
        rec.state = if discard {
            State::Discarded
        } else {
            State::Committed
        };
        let (pos, size, len) = (rec.pos, rec.size, rec.len());
        let at = (pos & mask) as usize;
        let n = self.size as usize;
        let arena = span(mem, 0, 0, 2 * n)?;
        let header = size | if discard { DISCARD_BIT } else { 0 };
        arena[at..at + 4].copy_from_slice(&header.to_le_bytes());
        let end = at + len as usize;
        if end > n {
            arena.copy_within(n..end, 0);
        }
        // Wake the consumer if asked to, or if it had caught up and is waiting for this record.
        if flags & BPF_RB_FORCE_WAKEUP != 0
            || (flags & BPF_RB_NO_WAKEUP == 0 && self.consumer_pos & mask == pos & mask)
        {
            self.wakeups += 1;
        }
        Ok(())
    }

    /// `bpf_ringbuf_submit`.
    pub fn submit(
        &mut self,
        offset: usize,
        flags: u64,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        self.commit(offset, flags, false, mem)
    }

    /// `bpf_ringbuf_discard`: the record is skipped by the consumer.
    pub fn discard(
        &mut self,
        offset: usize,
        flags: u64,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        self.commit(offset, flags, true, mem)
    }

    /// `bpf_ringbuf_output`: reserve, copy and submit; `EAGAIN` when there is no room.
    pub fn output(
        &mut self,
        data: &[u8],
        flags: u64,
        mem: &mut impl ArenaAccess,
    ) -> Result<(), OpError> {
        if flags & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
            return Err(OpError::bad_flags(flags));
        }
        let off = self.reserve_record(data.len() as u64, mem)?;
        span(mem, 0, off, data.len())?.copy_from_slice(data);
        self.commit(off, flags, false, mem)
    }

    /// The consumer: the data of every committed record in order, skipping discarded ones and
    /// stopping at the first record still reserved; consumed space becomes free for producers.
    pub fn consume(&mut self, arena: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(rec) = self.records.front().copied() {
            match rec.state {
                State::Busy => break,
                State::Discarded => {}
                State::Committed => {
                    let at = (rec.pos & self.mask) as usize + HDR_SZ as usize;
                    let data = arena.get(at..at + rec.size as usize).unwrap_or(&[]);
                    out.push(data.to_vec());
                }
            }
            self.consumer_pos += rec.len();
            self.records.pop_front();
        }
        out
    }

    /// Drop every record and start over at position 0.
    pub(crate) fn clear(&mut self) {
        *self = RingBuf::new(self.size as u32);
    }

    /// Map operations by key are not supported on a ring buffer.
    pub(crate) fn keyed_op(op: Op, key_given: bool) -> OpError {
        // bpf(2) refuses a key pointer for a map without keys before reaching the map.
        let errno = if key_given {
            Errno::EINVAL
        } else {
            Errno::ENOTSUPP
        };
        OpError::unsupported(errno, op)
    }
}
