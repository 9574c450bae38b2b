//! `kernel_backend`: the `kernel` feature on Linux, the only place bpf(2) exists. One cfg keeps
//! the two conditions from drifting apart across the modules that talk to the kernel.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kernel_backend)");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && std::env::var_os("CARGO_FEATURE_KERNEL").is_some() {
        println!("cargo::rustc-cfg=kernel_backend");
    }
}
