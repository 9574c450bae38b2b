//! bpfsim-vm: the shared vocabulary of bpfsim (instruction set, assembler, disassembler, programs,
//! guest memory) and the reference interpreter every other engine is tested against.

pub mod asm;
pub mod host;
pub mod interp;
pub mod isa;
pub mod loader;
pub mod memory;
pub mod program;
pub mod spec;
pub mod trap;
pub mod unique;

pub use host::{ConformanceHost, HelperStop, Host, NoHelpers};
pub use interp::{Executable, Interpreter, Outcome, PreparedRuns, Vm, DEFAULT_BUDGET};
pub use memory::{MemoryMap, RegionTable, Stack};
pub use program::{LoadError, Program};
pub use trap::{Trap, TrapCode};
