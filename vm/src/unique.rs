//! Numbers no other caller of [`next`] in the process has had: the ids of stacks, compiled
//! programs and hash maps' orders, the serials of memory maps, the stamps of their contexts'
//! states and the epochs of hosts, which engines compare to know that what they derived from
//! one (host addresses of rows, context fields, value tables) still holds.
//!
//! Each thread takes them from a block of its own, a plain increment: a locked add per memory
//! map (per test run) was most of an empty program's interpreted run on a virtual machine (10
//! of its 16 ns).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers handed to a thread at a time.
const BLOCK: u64 = 1 << 32;

/// The first number of the next block to hand out (never 0: 0 is no one's).
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(BLOCK);

thread_local! {
    /// This thread's next number and the end of its block.
    static NEXT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A number, never 0, that no other call in the process, on any thread, returns.
#[inline]
pub fn next() -> u64 {
    NEXT.with(|s| {
        let (mut next, mut end) = s.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        s.set((next + 1, end));
        next
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_unique_across_threads_and_never_0() {
        let take = |n: usize| (0..n).map(|_| super::next()).collect::<Vec<u64>>();
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || take(1000)))
            .collect();
        let mut all = take(1000);
        for t in threads {
            all.extend(t.join().unwrap());
        }
        assert!(all.iter().all(|&n| n != 0));
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a number was handed out twice");
    }
}
