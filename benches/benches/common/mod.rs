//! What the benchmarks measure with: the calling thread's CPU time by default, wall time with
//! `BPFSIM_BENCH_CLOCK=wall`.
//!
//! Why CPU time: the development machines are shared, and wall time then includes the time the
//! benchmark thread waits for a CPU, which inflates every userspace figure (3x at a load average
//! of 7 on 2 CPUs) while the kernel's `BPF_PROG_TEST_RUN` duration leaves it out (its test-run
//! timer stops while the loop yields the CPU). Thread CPU time leaves it out too, so the
//! figures stay comparable with the kernel's. It still counts time spent in system calls (kernel
//! loads), and cannot remove what a busy sibling core or a cold cache costs.

use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};

/// Thread CPU time or wall time, chosen once from the environment.
pub struct Clock {
    wall: bool,
}

impl Clock {
    pub fn from_env() -> Clock {
        let wall = std::env::var("BPFSIM_BENCH_CLOCK").is_ok_and(|v| v == "wall")
            || !cfg!(target_os = "linux");
        Clock { wall }
    }

    pub fn name(&self) -> &'static str {
        if self.wall {
            "wall time"
        } else {
            "thread CPU time"
        }
    }
}

/// The calling thread's CPU time.
#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; this clock id always
    // exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Duration {
    unreachable!("wall time is used elsewhere")
}

pub enum Start {
    Wall(Instant),
    Cpu(Duration),
}

impl Measurement for Clock {
    type Intermediate = Start;
    type Value = Duration;

    fn start(&self) -> Start {
        if self.wall {
            Start::Wall(Instant::now())
        } else {
            Start::Cpu(thread_cpu_time())
        }
    }

    fn end(&self, i: Start) -> Duration {
        match i {
            Start::Wall(t) => t.elapsed(),
            Start::Cpu(t) => thread_cpu_time().saturating_sub(t),
        }
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Nanoseconds shown as ps/ns/µs/ms/s, as criterion shows wall time.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match ns {
            n if n < 1.0 => (1e3, "ps"),
            n if n < 1e3 => (1.0, "ns"),
            n if n < 1e6 => (1e-3, "µs"),
            n if n < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        for v in values {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        // Elements (or bytes) per second; no benchmark here sets a throughput.
        let n = match *t {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Elements(n) => n,
            Throughput::Bits(n) => n,
        } as f64;
        for v in values {
            *v = n * 1e9 / *v;
        }
        "/s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// The configuration every benchmark group starts from: short warm-up and measurement (a run
/// of the whole suite takes minutes), overridable on the command line.
pub fn criterion() -> Criterion<Clock> {
    let clock = Clock::from_env();
    eprintln!("measuring {}", clock.name());
    Criterion::default()
        .with_measurement(clock)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}
