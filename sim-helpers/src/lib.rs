//! bpfsim-helpers: simulated maps, helpers and contexts (work in progress, issue 3).

pub mod maps;
