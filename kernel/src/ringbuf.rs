//! Reading a kernel `BPF_MAP_TYPE_RINGBUF` from user space through its mmap'ed pages, as libbpf's
//! ring_buffer__consume does.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::Errno;
use crate::map::KernelMap;

/// Record header flags: still being written, and thrown away by `bpf_ringbuf_discard`.
const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: usize = 8;

/// The consumer page (read-write) and the producer page plus the data pages mapped twice
/// (read-only) of one ring buffer.
#[derive(Debug)]
pub struct RingbufReader {
    consumer: *mut u8,
    producer: *mut u8,
    page: usize,
    size: usize,
}

// SAFETY: the reader owns its two mappings; nothing else in this process refers to them.
unsafe impl Send for RingbufReader {}

impl RingbufReader {
    /// Map `map`, which must be a ring buffer (`max_entries` is its data size).
    pub fn new(map: &KernelMap) -> Result<RingbufReader, Errno> {
        if map.spec().map_type != 27 {
            return Err(Errno::EINVAL);
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let size = map.spec().max_entries as usize;
        let fd = map.raw_fd();
        // SAFETY: mapping a ring buffer map fd: offset 0 is the consumer page, which user space
        // may write; the mapping is private to this reader and unmapped on drop.
        let consumer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if consumer == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        // SAFETY: the producer page and the data pages, which the kernel maps twice in a row so
        // that a record wrapping around the end reads contiguously; read-only for user space.
        let producer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page + 2 * size,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                page as libc::off_t,
            )
        };
        if producer == libc::MAP_FAILED {
            let e = Errno::last();
            // SAFETY: `consumer` was mapped above with this length.
            unsafe { libc::munmap(consumer, page) };
            return Err(e);
        }
        Ok(RingbufReader {
            consumer: consumer.cast(),
            producer: producer.cast(),
            page,
            size,
        })
    }

    /// Every committed record not read yet, in order; discarded ones are skipped. Advances the
    /// consumer position past what it returns.
    pub fn drain(&mut self) -> Vec<Vec<u8>> {
        // SAFETY: both positions are 8-byte aligned u64s at the start of their pages, shared
        // with the kernel, so they are read and written atomically.
        let cons_pos = unsafe { &*(self.consumer as *const AtomicU64) };
        // SAFETY: as above, at the start of the producer page.
        let prod_pos = unsafe { &*(self.producer as *const AtomicU64) };
        let mut cons = cons_pos.load(Ordering::Acquire);
        let prod = prod_pos.load(Ordering::Acquire);
        let mut records = Vec::new();
        while cons < prod {
            let off = self.page + (cons as usize & (self.size - 1));
            // SAFETY: `off` is within the first copy of the data pages, and a header is 8-byte
            // aligned inside it.
            let hdr =
                unsafe { &*(self.producer.add(off) as *const AtomicU32) }.load(Ordering::Acquire);
            if hdr & BUSY != 0 {
                break;
            }
            let len = (hdr & !(BUSY | DISCARD)) as usize;
            if len > self.size {
                break; // not a record header: never trust the shared page beyond its size
            }
            if hdr & DISCARD == 0 {
                // SAFETY: the record lies within the double mapping (len <= size).
                let data =
                    unsafe { std::slice::from_raw_parts(self.producer.add(off + HEADER), len) };
                records.push(data.to_vec());
            }
            cons += ((len + HEADER).next_multiple_of(8)) as u64;
        }
        cons_pos.store(cons, Ordering::Release);
        records
    }
}

impl Drop for RingbufReader {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped in `new` with these lengths and are unmapped once.
        unsafe {
            libc::munmap(self.consumer.cast(), self.page);
            libc::munmap(self.producer.cast(), self.page + 2 * self.size);
        }
    }
}
