//! Helpers replaced by Python functions (`obj.mock_helper(name, fn)`): the function gets a
//! `HelperCall` with the five argument registers and access to the program's memory for the
//! duration of the call, and returns r0.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use bpfsim::sim::run::Runner;
use bpfsim::vm::{HelperStop, MemoryMap};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::Error;

/// One call of a mocked helper. Memory access ends when the call returns.
#[pyclass(module = "bpfsim._native", unsendable)]
pub struct HelperCall {
    args: [u64; 5],
    /// The run's memory while the call lasts; null afterwards.
    mem: Cell<*mut MemoryMap<'static>>,
}

impl HelperCall {
    fn with_mem<T>(&self, f: impl FnOnce(&mut MemoryMap<'static>) -> PyResult<T>) -> PyResult<T> {
        let p = self.mem.get();
        if p.is_null() {
            return Err(Error::new_err(
                "this helper call has returned: its memory is no longer accessible",
            ));
        }
        // SAFETY: `p` is set only for the duration of the Python call that received this
        // object (see `install`), on this thread (the class is unsendable), and the run that owns
        // the memory map is blocked in that call; it is nulled before the call returns.
        f(unsafe { &mut *p })
    }
}

#[pymethods]
impl HelperCall {
    /// r1..r5 as unsigned 64-bit integers.
    #[getter]
    fn args(&self) -> [u64; 5] {
        self.args
    }

    /// `n` bytes of guest memory at `addr` (a pointer argument).
    fn read<'py>(&self, py: Python<'py>, addr: u64, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        self.with_mem(|m| {
            m.slice(addr, n)
                .map(|b| PyBytes::new(py, b))
                .map_err(|_| Error::new_err(format!("read of {n} bytes at {addr:#x}: not mapped")))
        })
    }

    /// Write `data` to guest memory at `addr`.
    fn write(&self, addr: u64, data: &[u8]) -> PyResult<()> {
        self.with_mem(|m| {
            m.slice_mut(addr, data.len())
                .map(|b| b.copy_from_slice(data))
                .map_err(|_| {
                    Error::new_err(format!(
                        "write of {} bytes at {addr:#x}: not mapped writable",
                        data.len()
                    ))
                })
        })
    }
}

/// Where a Python exception raised by a mocked helper waits to be re-raised after the run.
pub type Pending = Arc<Mutex<Option<PyErr>>>;

/// Replace helper `id` of `runner` with the Python callable `f`.
pub fn install(runner: &mut Runner, id: u32, f: Py<PyAny>, pending: Pending) {
    runner.override_helper(id, move |args, mem| {
        Python::attach(|py| {
            let ptr: *mut MemoryMap<'static> = (mem as *mut MemoryMap<'_>).cast();
            let call = match Py::new(
                py,
                HelperCall {
                    args,
                    mem: Cell::new(ptr),
                },
            ) {
                Ok(c) => c,
                Err(e) => {
                    *pending.lock().expect("pending lock") = Some(e);
                    return Err(HelperStop::Fault);
                }
            };
            let r = f.call1(py, (call.clone_ref(py),));
            call.borrow(py).mem.set(std::ptr::null_mut());
            let r = r.and_then(|v| {
                // r0 as the program sees it: negative errnos wrap to u64.
                match v.extract::<i64>(py) {
                    Ok(x) => Ok(x as u64),
                    Err(_) => v.extract::<u64>(py),
                }
            });
            match r {
                Ok(v) => Ok(v),
                Err(e) => {
                    *pending.lock().expect("pending lock") = Some(e);
                    Err(HelperStop::Fault)
                }
            }
        })
    });
}
