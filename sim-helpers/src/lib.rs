//! bpfsim-helpers: simulated maps, helpers and contexts (work in progress, issue 3).

pub mod ctx;
pub mod env;
pub mod helpers;
pub mod maps;
pub mod object;
pub mod run;
pub mod tier;
pub mod trace;

pub use env::{Clock, Env, FibRoute, Prandom, Process};
pub use trace::TraceLines;
