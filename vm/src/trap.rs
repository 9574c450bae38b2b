//! Run-time faults. Every engine reports the same [`Trap`] for the same fault.

/// Why a program stopped before `exit`. A `u8` so that a JIT can return it from native code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum TrapCode {
    /// A load outside every readable region; `detail` is the guest address, `size` the access size.
    MemoryRead = 1,
    /// A store or atomic outside every writable region; `detail` is the guest address.
    MemoryWrite = 2,
    /// The instruction budget ran out; `detail` is the budget.
    Budget = 3,
    /// A local call past the deepest frame; `detail` is the frame limit.
    CallDepth = 4,
    /// A helper id the host does not provide; `detail` is the id.
    UnknownHelper = 5,
    /// A helper refused its arguments; `detail` is the helper id.
    HelperFault = 6,
    /// An instruction this environment cannot execute (kfunc call, unresolved map reference,
    /// legacy packet load without a socket buffer); `detail` is the opcode byte.
    Unsupported = 7,
}

impl TrapCode {
    pub const ALL: [TrapCode; 7] = [
        TrapCode::MemoryRead,
        TrapCode::MemoryWrite,
        TrapCode::Budget,
        TrapCode::CallDepth,
        TrapCode::UnknownHelper,
        TrapCode::HelperFault,
        TrapCode::Unsupported,
    ];

    pub fn from_u8(v: u8) -> Option<TrapCode> {
        TrapCode::ALL.into_iter().find(|c| *c as u8 == v)
    }
}

/// A fault with the slot index of the instruction that caused it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub struct Trap {
    pub code: TrapCode,
    pub pc: usize,
    pub detail: u64,
    /// Access size in bytes for memory traps, 0 otherwise.
    pub size: u8,
}

impl Trap {
    pub const fn new(code: TrapCode, pc: usize, detail: u64) -> Trap {
        Trap {
            code,
            pc,
            detail,
            size: 0,
        }
    }
}

impl std::fmt::Display for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.detail;
        match self.code {
            TrapCode::MemoryRead => {
                write!(f, "out-of-bounds read of {} bytes at {d:#x}", self.size)?
            }
            TrapCode::MemoryWrite => write!(
                f,
                "out-of-bounds or read-only write of {} bytes at {d:#x}",
                self.size
            )?,
            TrapCode::Budget => write!(f, "instruction budget of {d} exhausted")?,
            TrapCode::CallDepth => write!(f, "call depth exceeds {d} frames")?,
            TrapCode::UnknownHelper => write!(f, "call to unknown helper {}", d as i64)?,
            TrapCode::HelperFault => write!(f, "helper {d} failed")?,
            TrapCode::Unsupported => write!(f, "instruction (opcode {d:#04x}) not supported here")?,
        }
        write!(f, " at pc {}", self.pc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_round_trips_through_u8() {
        for c in TrapCode::ALL {
            assert_eq!(TrapCode::from_u8(c as u8), Some(c));
        }
        assert_eq!(TrapCode::from_u8(0), None);
        assert_eq!(TrapCode::from_u8(200), None);
    }

    #[test]
    fn trap_stays_small() {
        assert!(std::mem::size_of::<Trap>() <= 24);
    }
}
