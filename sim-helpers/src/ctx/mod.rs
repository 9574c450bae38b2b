//! Program contexts laid out and rewritten as the kernel does.

pub mod skb;
pub mod xdp;
