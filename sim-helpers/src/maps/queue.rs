//! `BPF_MAP_TYPE_QUEUE` and `BPF_MAP_TYPE_STACK` (kernel/bpf/queue_stack_maps.c).
//!
//! Programs never get a pointer into these maps (push copies a value in, pop and peek copy one
//! out), so values are kept in a plain growable buffer rather than a guest-visible arena; it grows
//! with the elements pushed, not with `max_entries`.

use std::collections::VecDeque;

use super::error::{Errno, Op, OpError, Reason};
use super::{BPF_EXIST, BPF_NOEXIST};

pub struct QueueStack {
    stack: bool,
    value_size: usize,
    max_entries: u32,
    /// Values back to back, oldest first.
    bytes: VecDeque<u8>,
}

impl QueueStack {
    pub(crate) fn new(stack: bool, value_size: u32, max_entries: u32) -> QueueStack {
        QueueStack {
            stack,
            value_size: value_size as usize,
            max_entries,
            bytes: VecDeque::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len() / self.value_size
    }

    /// `queue_stack_map_push_elem`: `BPF_EXIST` makes room in a full map by dropping the oldest
    /// element (for a stack too: the bottom one); without it a full map is `E2BIG`.
    pub(crate) fn push(&mut self, value: &[u8], flags: u64) -> Result<(), OpError> {
        if flags & BPF_NOEXIST != 0 || flags > BPF_EXIST {
            return Err(OpError::bad_flags(flags));
        }
        if value.len() != self.value_size {
            return Err(OpError::value_size(self.value_size, value.len()));
        }
        if self.len() >= self.max_entries as usize {
            if flags & BPF_EXIST == 0 {
                return Err(OpError::new(
                    Errno::E2BIG,
                    Reason::Full {
                        max_entries: self.max_entries,
                    },
                ));
            }
            self.bytes.drain(..self.value_size);
        }
        self.bytes.extend(value);
        Ok(())
    }

    fn next_range(&self) -> Result<std::ops::Range<usize>, OpError> {
        if self.bytes.is_empty() {
            return Err(OpError::new(Errno::ENOENT, Reason::Empty));
        }
        Ok(if self.stack {
            self.bytes.len() - self.value_size..self.bytes.len()
        } else {
            0..self.value_size
        })
    }

    /// Copy the next element (the oldest for a queue, the newest for a stack) into `out`.
    pub(crate) fn peek(&self, out: &mut [u8]) -> Result<(), OpError> {
        if out.len() != self.value_size {
            return Err(OpError::value_size(self.value_size, out.len()));
        }
        let range = self.next_range()?;
        for (o, b) in out.iter_mut().zip(self.bytes.range(range)) {
            *o = *b;
        }
        Ok(())
    }

    /// Copy the next element into `out` and remove it.
    pub(crate) fn pop(&mut self, out: &mut [u8]) -> Result<(), OpError> {
        self.peek(out)?;
        let range = self.next_range()?;
        self.bytes.drain(range);
        Ok(())
    }

    /// Delete, update by key and `get_next_key` are all `EINVAL` on these maps.
    pub(crate) fn keyed_op(op: Op) -> OpError {
        OpError::unsupported(Errno::EINVAL, op)
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
    }

    /// Elements oldest first.
    pub(crate) fn values(&self) -> Vec<Vec<u8>> {
        let flat: Vec<u8> = self.bytes.iter().copied().collect();
        flat.chunks(self.value_size).map(<[u8]>::to_vec).collect()
    }
}
