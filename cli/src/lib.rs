//! bpfsim: a userspace eBPF runtime, verifier and test simulator.
//!
//! This facade re-exports the engine crates and holds what the `bpfsim` CLI runs.

pub use bpfsim_vm as vm;

pub mod capture;
pub mod conformance;
pub mod plugin;
pub mod run_cmd;
