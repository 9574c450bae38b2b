//! Runs the bpf_conformance suite (`.data` files) under every engine this build has.

pub mod data;
#[cfg(target_os = "linux")]
mod kernel;
mod runner;

#[cfg(target_os = "linux")]
pub use kernel::{kernel_check, KernelVerdict};

pub use runner::{collect, run_file, Engine, Outcome, Report};
