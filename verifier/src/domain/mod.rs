//! The abstract domain: tnums, registers with bounds, stack slots, frames and states.

pub mod reg;
pub mod state;
pub mod tnum;
