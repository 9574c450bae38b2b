//! Simulated BPF maps (work in progress).
