//! The checks `do_check` runs per instruction class, named after the kernel's functions.

pub mod alu;
pub mod btf;
mod call;
pub mod ctx;
mod jmp;
mod mem;
