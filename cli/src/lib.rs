//! bpfsim: a userspace eBPF runtime, verifier and test simulator.
//!
//! This facade re-exports the engine crates ([`vm`]: instructions, loader, interpreter;
//! [`sim`]: maps, helpers, contexts, test runs) and holds what the `bpfsim` CLI runs.
//!
//! # Testing an XDP program from Rust
//!
//! Load the very object clang produced, fill its maps, run packets, read the results:
//!
//! ```
//! use bpfsim::sim::object::LoadedObject;
//! use bpfsim::sim::run::Input;
//! use bpfsim::sim::Env;
//!
//! // test-vectors/progs/firewall.bpf.c: drops TCP/UDP to ports listed in `blocked_ports`.
//! let bytes = include_bytes!("../../test-vectors/progs/firewall.bpf.o");
//! let mut obj = LoadedObject::load(bytes, Env::default())?;
//! let prog = obj.program("xdp_firewall", None)?;
//!
//! // struct port_key { __u8 proto; __u8 pad; __be16 port; }: block TCP port 22.
//! let blocked = obj.map_id("blocked_ports").unwrap();
//! obj.runner.maps.update(blocked, &[6, 0, 0, 22], &0u64.to_le_bytes(), 0)?;
//!
//! // An Ethernet + IPv4 + TCP SYN to port 22.
//! let mut pkt = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
//! pkt.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
//! pkt.extend_from_slice(&[0x30, 0x39, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
//!
//! let res = obj.run(&prog, &pkt, Input::default())?;
//! assert_eq!(res.retval, 1); // XDP_DROP
//! assert_eq!(res.data, pkt); // the packet, unchanged
//!
//! // The program counts hits in the map's value: read it back from the host.
//! let hits = obj.runner.maps.lookup(blocked, &[6, 0, 0, 22])?;
//! assert_eq!(u64::from_le_bytes(hits.try_into().unwrap()), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The environment is injectable: `Env { clock: Clock::stepping(start, step), prandom:
//! Prandom::seeded(42), cpu, ncpus, .. }` makes time and randomness reproducible, and
//! [`sim::run::Runner::override_helper`] replaces any helper with a closure.

pub use bpfsim_helpers as sim;
pub use bpfsim_verifier as verifier;
pub use bpfsim_vm as vm;

#[cfg(feature = "kernel")]
pub use bpfsim_kernel as kernel;

/// Why this build cannot reach the kernel: said in place of the bpf(2) probe's answer.
#[cfg(not(kernel_backend))]
pub const NO_KERNEL_BACKEND: &str = if cfg!(target_os = "linux") {
    "bpfsim was built without its `kernel` feature"
} else {
    "bpf(2) needs Linux"
};

pub mod bench_cmd;
pub mod capture;
#[cfg(kernel_backend)]
pub mod compare;
pub mod compare_cmd;
pub mod conformance;
pub mod disasm_cmd;
pub mod map_spec;
pub mod pcapng;
pub mod plugin;
pub mod run_cmd;
#[cfg(kernel_backend)]
pub mod run_kernel;
pub mod verify_cmd;
