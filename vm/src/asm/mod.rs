//! Text forms of programs: the bpf_conformance assembly dialect (both ways) and the kernel's
//! verifier-log notation.

mod assemble;
mod disasm;
mod kernel;

pub use assemble::{assemble, AsmError};
pub use disasm::{disassemble, disassemble_insn};
pub use kernel::{kernel_line, kernel_listing, kernel_text};
