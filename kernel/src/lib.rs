//! Kernel ground truth (work in progress).
