//! Runs the bpf_conformance suite (`.data` files) under every engine this build has.

pub mod data;
#[cfg(kernel_backend)]
mod kernel;
mod runner;

#[cfg(kernel_backend)]
pub use kernel::{kernel_check, KernelVerdict};

pub use runner::{collect, run_file, Engine, Outcome, Report};
