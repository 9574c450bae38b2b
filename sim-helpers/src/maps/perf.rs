//! `BPF_MAP_TYPE_PERF_EVENT_ARRAY` (kernel/bpf/arraymap.c + kernel/trace/bpf_trace.c): slot `i`
//! holds a perf event, and `bpf_perf_event_output` appends a sample to the event's buffer.
//!
//! The simulator has no perf events: the host fills slot `i` with any value (as userspace stores
//! an event fd there; [`Maps::perf_open_all`](super::Maps::perf_open_all) fills them all) and slot
//! `i` then stands for an event opened on CPU `i`, which is how libbpf's perf buffer sets the map
//! up. Samples are kept in the order they were written, with the CPU that wrote them; none is
//! ever lost (a real perf buffer drops samples when the reader lags).

use super::error::{Errno, OpError, Reason};
use super::slots::{SlotArray, SlotKind};
use super::ArenaAccess;

/// `BPF_F_INDEX_MASK`: the slot index in the helper's flags.
pub const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
/// `BPF_F_CURRENT_CPU`: use the slot of the CPU the program runs on.
pub const BPF_F_CURRENT_CPU: u64 = BPF_F_INDEX_MASK;

/// One sample written by `bpf_perf_event_output`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PerfRecord {
    /// The CPU (and slot) the sample was written on.
    pub cpu: u32,
    pub data: Vec<u8>,
}

pub struct PerfEventArray {
    pub(crate) slots: SlotArray,
    max_entries: u32,
    records: Vec<PerfRecord>,
}

impl PerfEventArray {
    pub(crate) fn new(max_entries: u32, ncpus: u32) -> PerfEventArray {
        PerfEventArray {
            slots: SlotArray::new(SlotKind::PerfEvents, 4, max_entries, ncpus),
            max_entries,
            records: Vec::new(),
        }
    }

    /// `bpf_perf_event_output` from a program on `cpu`. `flags` is the slot index or
    /// `BPF_F_CURRENT_CPU`; the socket and XDP flavours of the helper strip their
    /// `BPF_F_CTXLEN_MASK` bits and append the packet bytes to `data` before calling this.
    pub fn output(&mut self, flags: u64, cpu: u32, data: &[u8]) -> Result<(), OpError> {
        if flags & !BPF_F_INDEX_MASK != 0 {
            return Err(OpError::bad_flags(flags));
        }
        let index = if flags == BPF_F_CURRENT_CPU {
            cpu
        } else {
            flags as u32
        };
        if index >= self.max_entries {
            return Err(OpError::new(
                Errno::E2BIG,
                Reason::IndexOutOfRange {
                    index,
                    max_entries: self.max_entries,
                },
            ));
        }
        if self.slots.value_at(index).is_none() {
            return Err(OpError::no_key());
        }
        // The event in slot `index` was opened on CPU `index`; writing to another CPU's event
        // is refused by perf_event_output (`event->oncpu != smp_processor_id()`).
        if index != cpu {
            return Err(OpError::new(
                Errno::EOPNOTSUPP,
                Reason::WrongCpu { index, cpu },
            ));
        }
        self.records.push(PerfRecord {
            cpu,
            data: data.to_vec(),
        });
        Ok(())
    }

    /// Fill every slot, as a perf buffer opened on every CPU does.
    pub(crate) fn open_all(&mut self, mem: &mut impl ArenaAccess) -> Result<(), OpError> {
        for i in 0..self.max_entries {
            self.slots
                .update(&i.to_le_bytes(), &i.to_le_bytes(), 0, mem)?;
        }
        Ok(())
    }

    /// Samples not read yet, in the order they were written.
    pub fn records(&self) -> &[PerfRecord] {
        &self.records
    }

    /// Take every sample written so far.
    pub fn drain(&mut self) -> Vec<PerfRecord> {
        std::mem::take(&mut self.records)
    }

    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.records.clear();
    }
}
