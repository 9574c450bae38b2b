//! The simulated world a program runs in: clock, randomness, CPU, trace output. Everything a test
//! wants to control is here and nothing reads the host's clock or entropy, so the same inputs and
//! seed give the same outputs, every run.

/// Jiffies per second of the simulated kernel (Debian's `CONFIG_HZ=250`).
pub const HZ: u64 = 250;

/// A fake monotonic clock: each reading returns the current time, then advances it by `step_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub now_ns: u64,
    pub step_ns: u64,
    /// `CLOCK_BOOTTIME` minus `CLOCK_MONOTONIC`: time spent suspended.
    pub suspended_ns: u64,
}

impl Default for Clock {
    fn default() -> Self {
        // An arbitrary but plausible uptime, so programs never see time 0.
        Clock {
            now_ns: 1_000_000_000_000,
            step_ns: 0,
            suspended_ns: 0,
        }
    }
}

impl Clock {
    pub fn fixed(now_ns: u64) -> Clock {
        Clock {
            now_ns,
            ..Clock::default()
        }
    }

    pub fn stepping(start_ns: u64, step_ns: u64) -> Clock {
        Clock {
            now_ns: start_ns,
            step_ns,
            suspended_ns: 0,
        }
    }

    /// `bpf_ktime_get_ns`: monotonic time, then advance.
    pub fn monotonic_ns(&mut self) -> u64 {
        let t = self.now_ns;
        self.now_ns = self.now_ns.wrapping_add(self.step_ns);
        t
    }

    /// `bpf_ktime_get_boot_ns`: boot time includes suspend.
    pub fn boot_ns(&mut self) -> u64 {
        self.monotonic_ns().wrapping_add(self.suspended_ns)
    }

    /// `bpf_ktime_get_coarse_ns`: the time of the last tick.
    pub fn coarse_ns(&mut self) -> u64 {
        let tick = 1_000_000_000 / HZ;
        self.monotonic_ns() / tick * tick
    }

    /// `bpf_jiffies64`.
    pub fn jiffies64(&mut self) -> u64 {
        self.monotonic_ns() / (1_000_000_000 / HZ)
    }
}

/// A seeded generator for `bpf_get_prandom_u32` (splitmix64: small, fast, well distributed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prandom {
    state: u64,
}

impl Prandom {
    pub fn seeded(seed: u64) -> Prandom {
        Prandom { state: seed }
    }

    pub fn next_u32(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

/// The task a program believes it runs in (`bpf_get_current_pid_tgid` and friends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Thread id (the kernel's `pid`).
    pub pid: u32,
    /// Process id (the kernel's `tgid`).
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Up to 15 bytes are visible, as in the kernel's `TASK_COMM_LEN` of 16.
    pub comm: String,
}

impl Default for Process {
    fn default() -> Self {
        Process {
            pid: 1000,
            tgid: 1000,
            uid: 0,
            gid: 0,
            comm: "bpfsim".to_string(),
        }
    }
}

/// A route `bpf_fib_lookup` answers from: the longest matching prefix wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibRoute {
    /// Destination prefix: 4 bytes for IPv4, 16 for IPv6 (network order).
    pub prefix: Vec<u8>,
    pub prefix_len: u8,
    /// The helper's result for this route: 0 forwards; 1 blackhole, 2 unreachable, 3 prohibit,
    /// 7 no neighbour ... (UAPI `BPF_FIB_LKUP_RET_*`).
    pub result: u32,
    /// Egress device, and the MAC addresses the lookup fills in.
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// Everything injectable about the world outside the program.
#[derive(Clone, Debug)]
pub struct Env {
    pub clock: Clock,
    pub prandom: Prandom,
    /// CPU the program runs on (`bpf_get_smp_processor_id`); selects per-CPU map values.
    pub cpu: u32,
    /// Number of simulated CPUs: per-CPU maps hold this many values.
    pub ncpus: u32,
    pub numa_node: u32,
    /// `bpf_printk` / `bpf_trace_printk` lines of every run, in order: the newest, up to the
    /// kernel's default trace buffer ([`crate::trace::TRACE_BUFFER_BYTES`]; older lines are
    /// dropped as the kernel's buffer overwrites them). A run's own lines are all in its
    /// result.
    pub trace: crate::TraceLines,
    pub process: Process,
    /// Memory `bpf_probe_read_{kernel,user}[_str]` can read: address -> bytes. Reads outside it
    /// fail with `-EFAULT`, as a bad pointer does in the kernel.
    pub probe_memory: std::collections::BTreeMap<u64, Vec<u8>>,
    /// The routing table of `bpf_fib_lookup`; without a matching route the lookup answers
    /// `BPF_FIB_LKUP_RET_NOT_FWDED`.
    pub fib: Vec<FibRoute>,
}

impl Env {
    /// The longest-prefix route for `dst` (4 or 16 bytes).
    pub fn route(&self, dst: &[u8]) -> Option<&FibRoute> {
        let covers = |r: &FibRoute| {
            let bits = r.prefix_len as usize;
            r.prefix.len() == dst.len()
                && bits <= dst.len() * 8
                && (0..bits).all(|b| (r.prefix[b / 8] ^ dst[b / 8]) & (0x80 >> (b % 8)) == 0)
        };
        self.fib
            .iter()
            .filter(|r| covers(r))
            .max_by_key(|r| r.prefix_len)
    }

    /// `len` bytes at `addr` of [`Env::probe_memory`], if one block holds them all.
    pub fn probe(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let (&start, bytes) = self.probe_memory.range(..=addr).next_back()?;
        let off = usize::try_from(addr - start).ok()?;
        bytes.get(off..off.checked_add(len)?)
    }
}

impl Default for Env {
    fn default() -> Self {
        Env {
            clock: Clock::default(),
            prandom: Prandom::seeded(0),
            cpu: 0,
            ncpus: 1,
            numa_node: 0,
            trace: crate::TraceLines::with_limit(crate::trace::TRACE_BUFFER_BYTES),
            process: Process::default(),
            probe_memory: Default::default(),
            fib: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_steps_and_derives() {
        let mut c = Clock::stepping(10_000_000, 1_000);
        assert_eq!(c.monotonic_ns(), 10_000_000);
        assert_eq!(c.monotonic_ns(), 10_001_000);
        c.suspended_ns = 5;
        assert_eq!(c.boot_ns(), 10_002_005);
        assert_eq!(c.coarse_ns(), 8_000_000);
        assert_eq!(c.jiffies64(), 2);
    }

    #[test]
    fn prandom_is_seeded_and_deterministic() {
        let a: Vec<u32> = (0..4)
            .scan(Prandom::seeded(42), |r, _| Some(r.next_u32()))
            .collect();
        let b: Vec<u32> = (0..4)
            .scan(Prandom::seeded(42), |r, _| Some(r.next_u32()))
            .collect();
        let c: Vec<u32> = (0..4)
            .scan(Prandom::seeded(43), |r, _| Some(r.next_u32()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0] != w[1]));
    }
}
