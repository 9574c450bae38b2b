//! The instruction set: typed model, wire format, decoding and encoding.

mod decode;
mod insn;
mod names;
pub mod opcode;
mod raw;

pub use decode::{decode, decode_raw, DecodeError, DecodeErrorKind, Field};
pub use insn::*;
pub use names::opcode_name;
pub use raw::RawInsn;
