//! Kernel-compat mode where there is no bpf(2): the same interface as `kernel.rs`, and every
//! attempt to use the kernel is KernelUnavailable("not Linux").

use std::ops::Range;

use bpfsim::sim::object::{Engine, LinkedProgram, LoadedObject};
use bpfsim::sim::run::{Input, RunResult as SimResult};
use pyo3::prelude::*;

use crate::KernelUnavailable;

const REASON: &str = "not Linux: bpf(2) exists only there";

#[pyfunction]
pub fn kernel_unavailable_reason() -> Option<String> {
    Some(REASON.to_string())
}

#[pyfunction]
pub fn kernel_possible_cpus() -> usize {
    1
}

/// Never made: [`KernelSide::attach`] always fails here.
pub struct KernelSide {
    pub masks: Vec<(String, Range<usize>)>,
    never: std::convert::Infallible,
}

pub struct Compared {
    pub sim: Result<SimResult, String>,
    pub kernel: Result<SimResult, String>,
    pub differences: Vec<String>,
    pub not_comparable: Vec<String>,
}

impl KernelSide {
    pub fn attach(_obj: &mut LoadedObject, _elf: &[u8]) -> PyResult<KernelSide> {
        Err(KernelUnavailable::new_err(REASON))
    }

    pub fn check_mirrorable(_obj: &LoadedObject, _name: &str) -> PyResult<()> {
        Ok(())
    }

    pub fn mirror_update(
        &mut self,
        _obj: &LoadedObject,
        _name: &str,
        _key: &[u8],
        _values: &[Vec<u8>],
        _flags: u64,
    ) -> PyResult<()> {
        match self.never {}
    }

    pub fn mirror_delete(&self, _name: &str, _key: &[u8]) -> PyResult<()> {
        match self.never {}
    }

    pub fn mirror_clear(&self, _name: &str) -> PyResult<()> {
        match self.never {}
    }

    pub fn lookup(&self, _name: &str, _key: &[u8]) -> PyResult<Option<Vec<Vec<u8>>>> {
        match self.never {}
    }

    pub fn keys(&self, _name: &str) -> PyResult<Vec<Vec<u8>>> {
        match self.never {}
    }

    pub fn load_error(&self) -> Option<&str> {
        match self.never {}
    }

    pub fn run_kernel_only(
        &mut self,
        _cpu: u32,
        _prog: &LinkedProgram,
        _data: &[u8],
        _input: Input,
        _repeat: u32,
    ) -> Result<SimResult, String> {
        match self.never {}
    }

    pub fn map_differences(&self, _obj: &LoadedObject) -> Result<Vec<String>, String> {
        match self.never {}
    }

    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        _obj: &mut LoadedObject,
        _prog: &LinkedProgram,
        _data: &[u8],
        _input: Input,
        _repeat: u32,
        _engine: Engine,
        _mocked: &[String],
    ) -> Compared {
        match self.never {}
    }
}
