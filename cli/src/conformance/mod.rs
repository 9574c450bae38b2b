//! Runs the bpf_conformance suite (`.data` files) under every engine this build has.

pub mod data;
mod runner;

pub use runner::{collect, run_file, Engine, Outcome, Report};
