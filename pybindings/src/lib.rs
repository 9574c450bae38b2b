//! `bpfsim._native`: the Rust engine as a Python extension module. It stays low-level (bytes in,
//! bytes out); `python/bpfsim/` turns that into the public API (typed maps, enums, pcap replays,
//! the pytest plugin).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

mod helper_call;
#[cfg(target_os = "linux")]
mod kernel;
#[cfg(not(target_os = "linux"))]
#[path = "kernel_other.rs"]
mod kernel;
mod object;
mod result;

create_exception!(_native, Error, PyException, "Base of every bpfsim error.");
create_exception!(
    _native,
    LoadError,
    Error,
    "The object or program cannot be loaded."
);
create_exception!(_native, Trap, Error, "The program faulted while running.");
create_exception!(
    _native,
    PacketError,
    Error,
    "The packet or context was refused (as the kernel's test run refuses it)."
);
create_exception!(
    _native,
    MapError,
    Error,
    "A map operation failed (bad key or value size, full map, missing key...)."
);
create_exception!(
    _native,
    VerifierError,
    LoadError,
    "The verifier rejected a program, as the kernel's would."
);

create_exception!(
    _native,
    KernelUnavailable,
    Error,
    "bpf(2) cannot be used here (not root, EPERM, ENOSYS, not Linux): the message says why."
);

/// The kernel's helper id for a name (`bpf_fib_lookup`, `fib_lookup`), if it has one.
#[pyfunction]
fn helper_id(name: &str) -> Option<u32> {
    let bare = name.strip_prefix("bpf_").unwrap_or(name);
    bpfsim::vm::spec::HELPER_NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|i| i as u32)
}

/// Read a capture through without running anything: `(packets, bytes, seconds)`. What the
/// capture handling of `run_pcap` costs on its own, for benchmarks.
#[pyfunction]
fn read_capture(py: Python<'_>, path: std::path::PathBuf) -> PyResult<(usize, usize, f64)> {
    py.detach(|| -> Result<(usize, usize, f64), String> {
        let t = std::time::Instant::now();
        let (mut n, mut bytes) = (0, 0);
        let cap = bpfsim::capture::Capture::open(&path).map_err(|e| e.to_string())?;
        for p in cap {
            let p = p.map_err(|e| e.to_string())?;
            n += 1;
            bytes += p.data.len();
        }
        Ok((n, bytes, t.elapsed().as_secs_f64()))
    })
    .map_err(PacketError::new_err)
}

/// Every frame of a pcap or pcapng capture, in order (what `run_pcap` replays, for replays done
/// packet by packet from Python).
#[pyfunction]
fn read_packets<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
) -> PyResult<Vec<Bound<'py, pyo3::types::PyBytes>>> {
    let frames = py
        .detach(|| -> Result<Vec<Vec<u8>>, String> {
            let cap = bpfsim::capture::Capture::open(&path).map_err(|e| e.to_string())?;
            cap.map(|p| p.map(|p| p.data).map_err(|e| e.to_string()))
                .collect()
        })
        .map_err(PacketError::new_err)?;
    Ok(frames
        .iter()
        .map(|f| pyo3::types::PyBytes::new(py, f))
        .collect())
}

/// Make `path` (a raw BTF file; `None`: `/sys/kernel/btf/vmlinux`) the kernel BTF of every later
/// load in this process: what CO-RE relocations, tracing attach targets and kfunc calls are
/// resolved against.
#[pyfunction]
#[pyo3(signature = (path=None))]
fn set_kernel_btf(path: Option<std::path::PathBuf>) {
    use bpfsim::vm::loader::{set_default_kernel_btf, KernelBtfSource};
    set_default_kernel_btf(path.map_or(KernelBtfSource::System, KernelBtfSource::File));
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("LoadError", py.get_type::<LoadError>())?;
    m.add("Trap", py.get_type::<Trap>())?;
    m.add("PacketError", py.get_type::<PacketError>())?;
    m.add("MapError", py.get_type::<MapError>())?;
    m.add("VerifierError", py.get_type::<VerifierError>())?;
    m.add("KernelUnavailable", py.get_type::<KernelUnavailable>())?;
    m.add_class::<object::Object>()?;
    m.add_class::<result::RunResult>()?;
    m.add_class::<result::PcapRun>()?;
    m.add_class::<helper_call::HelperCall>()?;
    m.add_function(wrap_pyfunction!(helper_id, m)?)?;
    m.add_function(wrap_pyfunction!(read_capture, m)?)?;
    m.add_function(wrap_pyfunction!(read_packets, m)?)?;
    m.add_function(wrap_pyfunction!(set_kernel_btf, m)?)?;
    m.add_function(wrap_pyfunction!(kernel::kernel_unavailable_reason, m)?)?;
    m.add_function(wrap_pyfunction!(kernel::kernel_possible_cpus, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
