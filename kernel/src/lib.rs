//! Kernel ground truth: run bpfsim programs in the real Linux kernel through raw bpf(2) calls
//! (`BPF_PROG_LOAD`, `BPF_PROG_TEST_RUN`, array maps), with no libbpf.
//!
//! Everything starts from [`KernelBpf::probe`], which says in one line why the kernel cannot be
//! used (not Linux, ENOSYS, EPERM for an unprivileged user, ...); callers such as tests print that
//! reason and skip. On other operating systems the crate compiles and `probe` always fails.
//!
//! ```no_run
//! use bpfsim_kernel::KernelBpf;
//!
//! match KernelBpf::probe() {
//!     Ok(bpf) => {
//!         // mov r0, 7; exit, as a bpf_conformance test with no memory.
//!         let prog = [0xb7, 0, 0, 0, 7, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
//!         assert_eq!(bpf.run_conformance_in_kernel(&prog, &[]), Ok(7));
//!     }
//!     Err(u) => println!("skipped: {u}"),
//! }
//! ```

#[cfg(target_os = "linux")]
mod backend;
mod bpf;
#[cfg(target_os = "linux")]
mod btf;
mod conformance;
mod error;
#[cfg(target_os = "linux")]
mod map;
#[cfg(target_os = "linux")]
mod object;
#[cfg(target_os = "linux")]
mod ringbuf;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod xsk;

#[cfg(target_os = "linux")]
pub use backend::{
    skb_ctx, BackendError, KernelRun, KernelRunner, MapEntry, SKB_SIZE, XDP_MD_SIZE,
};
pub use bpf::{xdp, ArrayMap, KernelBpf, ProgFd, ProgSpec, ProgType, TestRunIn, TestRunOut};
#[cfg(target_os = "linux")]
pub use btf::KernelBtf;
pub use conformance::{conformance_wrapper, KernelReject, MemMap, PACKET_LEN};
pub use error::{last_meaningful_line, Errno, LoadFailure, Unavailable};
#[cfg(target_os = "linux")]
pub use map::{possible_cpus, KernelMap, MapSpec};
#[cfg(target_os = "linux")]
pub use object::{KernelObject, KernelProgram, ObjectLoadError};
#[cfg(target_os = "linux")]
pub use ringbuf::RingbufReader;
#[cfg(target_os = "linux")]
pub use xsk::XskSocket;

/// Pin the calling thread to `cpu`, so that per-CPU maps see every run on that CPU.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpu: usize) -> Result<(), Errno> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only read
    // and write that set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}
