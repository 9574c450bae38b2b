//! Helper functions with the kernel's ids and semantics.

pub mod csum;
pub mod printk;
pub mod proto;
pub mod strtol;
