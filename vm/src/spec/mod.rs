//! Facts about the Linux BPF environment, kept as data.

mod helper_names;

pub use helper_names::{helper_name, HELPER_NAMES};
pub mod proto;
mod types;

pub use types::{MapDef, MapType, ProgType};
