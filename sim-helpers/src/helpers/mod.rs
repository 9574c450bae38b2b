//! Helper functions with the kernel's ids and semantics.

pub mod csum;
pub mod printk;
/// The helper prototype table lives with the ISA facts (`bpfsim_vm::spec::proto`), where the
/// verifier reads it too; re-exported here for the runtime.
pub use bpfsim_vm::spec::proto;
pub mod strtol;
