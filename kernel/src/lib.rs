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

mod bpf;
mod conformance;
mod error;
#[cfg(target_os = "linux")]
mod sys;

pub use bpf::{xdp, ArrayMap, KernelBpf, ProgFd, ProgType, TestRunOut};
pub use conformance::{conformance_wrapper, KernelReject, MemMap, PACKET_LEN};
pub use error::{last_meaningful_line, Errno, LoadFailure, Unavailable};
