//! What a run hands back to Python. Fields stay Rust values until read, so a run that is only
//! checked for its verdict costs no Python objects beyond this one.

use bpfsim::sim::run::{Redirect, RunResult as SimResult};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// One run's result (the public `bpfsim.Result` wraps it).
#[pyclass(module = "bpfsim._native", frozen)]
pub struct RunResult {
    pub(crate) inner: SimResult,
    /// The tail-call chain by program name.
    pub(crate) chain: Vec<String>,
    /// Map names by object index, for redirects through maps.
    pub(crate) redirect_map: Option<String>,
}

#[pymethods]
impl RunResult {
    /// `r0` at exit (64 bits; the kernel reports the low 32).
    #[getter]
    fn retval(&self) -> u64 {
        self.inner.retval
    }

    /// The packet afterwards, as `BPF_PROG_TEST_RUN` returns it.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.data)
    }

    /// The context afterwards, as the kernel's ctx_out (`xdp_md` or `__sk_buff` bytes).
    #[getter]
    fn ctx_out<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.ctx_out)
    }

    #[getter]
    fn insns(&self) -> u64 {
        self.inner.insns
    }

    #[getter]
    fn duration_ns(&self) -> u64 {
        self.inner.duration_ns
    }

    /// `bpf_printk` lines of this run.
    #[getter]
    fn trace(&self) -> Vec<String> {
        self.inner.trace.to_vec()
    }

    /// Ring buffer and perf records: `(map, cpu or None, bytes)`.
    #[getter]
    fn events<'py>(&self, py: Python<'py>) -> Vec<(String, Option<u32>, Bound<'py, PyBytes>)> {
        self.inner
            .events
            .iter()
            .map(|e| (e.map.clone(), e.cpu, PyBytes::new(py, &e.data)))
            .collect()
    }

    /// `("ifindex", ifindex, flags)`, `("map", map name, key, flags)` or None.
    #[getter]
    fn redirect<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match &self.inner.redirect {
            None => None,
            Some(Redirect::Ifindex { ifindex, flags }) => {
                Some(("ifindex", *ifindex, *flags).into_pyobject(py)?.into_any())
            }
            Some(Redirect::Map { key, flags, .. }) => Some(
                (
                    "map",
                    self.redirect_map.clone().unwrap_or_default(),
                    *key,
                    *flags,
                )
                    .into_pyobject(py)?
                    .into_any(),
            ),
        })
    }

    /// Programs entered by tail calls, in order.
    #[getter]
    fn tail_calls(&self) -> Vec<String> {
        self.chain.clone()
    }

    /// `(code, pc, detail)` when the program faulted, else None.
    #[getter]
    fn trap(&self) -> Option<(String, usize, u64, String)> {
        self.inner.trap.map(|t| {
            (
                format!("{:?}", t.code).to_lowercase(),
                t.pc,
                t.detail,
                t.to_string(),
            )
        })
    }
}

/// A pcap replay's outcome: verdict counts, every retval in order, refused packets, and (when
/// asked for) every result.
#[pyclass(module = "bpfsim._native", frozen)]
pub struct PcapRun {
    #[pyo3(get)]
    pub counts: Vec<(u64, u64)>,
    #[pyo3(get)]
    pub retvals: Vec<u64>,
    /// `(packet index, reason)` for packets the run refused.
    #[pyo3(get)]
    pub refused: Vec<(usize, String)>,
    #[pyo3(get)]
    pub packets: usize,
    #[pyo3(get)]
    pub written: usize,
    #[pyo3(get)]
    pub seconds: f64,
    /// Time inside the runs themselves: the sum of their durations where each packet's result
    /// is kept or written, else the time of the runs of each read-ahead batch of packets
    /// (with their verdicts' counting). The rest of `seconds` is capture reading, output
    /// writing and bookkeeping.
    #[pyo3(get)]
    pub run_seconds: f64,
    pub(crate) results: Vec<Py<RunResult>>,
}

#[pymethods]
impl PcapRun {
    #[getter]
    fn results(&self, py: Python<'_>) -> Vec<Py<RunResult>> {
        self.results.iter().map(|r| r.clone_ref(py)).collect()
    }
}
