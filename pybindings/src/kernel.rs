//! Kernel-compat mode: the object a Python `Object` simulates, loaded a second time into the live
//! kernel, with every map write from Python made on both sides, so that a run can be repeated by
//! `BPF_PROG_TEST_RUN` and the two results compared (`bpfsim::compare`).
//!
//! The kernel side is created on first use, from the simulator's state at that moment: `.rodata`
//! as Python set it (written into the ELF before the kernel freezes it), and every map entry
//! written so far.

use std::ops::Range;
use std::sync::OnceLock;

use bpfsim::sim::object::{Engine, LinkedProgram, LoadedObject};
use bpfsim::sim::run::{Input, RunResult as SimResult};
use bpfsim::vm::spec::MapType;
use bpfsim_kernel::{KernelBpf, KernelRunner};
use pyo3::prelude::*;

use crate::{Error, KernelUnavailable, MapError};

/// The probe runs once per process: it loads and test-runs a program, and the answer does not
/// change while the process keeps its privileges.
static PROBE: OnceLock<Result<KernelBpf, String>> = OnceLock::new();

fn probe() -> Result<KernelBpf, String> {
    PROBE
        .get_or_init(|| KernelBpf::probe().map_err(|u| u.reason))
        .clone()
}

/// Why bpf(2) cannot be used by this process (one line), or None when it can.
#[pyfunction]
pub fn kernel_unavailable_reason() -> Option<String> {
    probe().err()
}

/// How many values a per-CPU map holds in the kernel (the possible CPUs).
#[pyfunction]
pub fn kernel_possible_cpus() -> usize {
    bpfsim_kernel::possible_cpus()
}

const PERCPU: [MapType; 3] = [
    MapType::PercpuArray,
    MapType::PercpuHash,
    MapType::LruPercpuHash,
];

/// Map types whose writes from Python reach the kernel byte for byte, but for prog arrays
/// (program id here, program descriptor there) and XSKMAPs (queue here, there an AF_XDP socket
/// bound to that queue of the loopback device, where test runs happen).
const MIRRORED: [MapType; 12] = [
    MapType::Hash,
    MapType::Array,
    MapType::PercpuHash,
    MapType::PercpuArray,
    MapType::LruHash,
    MapType::LruPercpuHash,
    MapType::LpmTrie,
    MapType::Devmap,
    MapType::DevmapHash,
    MapType::Cpumap,
    MapType::ProgArray,
    MapType::Xskmap,
];

/// The device `BPF_PROG_TEST_RUN` runs XDP programs on: loopback.
const TEST_RUN_IFINDEX: u32 = 1;

/// Maps with no contents the host writes: their records are compared per run instead.
const NO_HOST_STATE: [MapType; 2] = [MapType::Ringbuf, MapType::PerfEventArray];

/// The object in the kernel, next to the simulator's.
pub struct KernelSide {
    /// Err: the kernel refused to load the object (the verifier's reason), which every
    /// comparison then reports as a difference.
    runner: Result<KernelRunner, String>,
    /// Err: why `bpf_printk` lines cannot be read back from the kernel.
    trace: Result<(), String>,
    /// Map value bytes not compared (times, random numbers).
    pub masks: Vec<(String, Range<usize>)>,
}

/// One run on both sides, compared.
pub struct Compared {
    pub sim: Result<SimResult, String>,
    pub kernel: Result<SimResult, String>,
    pub differences: Vec<String>,
    pub not_comparable: Vec<String>,
}

fn map_type(obj: &LoadedObject, name: &str) -> PyResult<MapType> {
    obj.object
        .map_index(name)
        .map(|i| obj.object.maps[i].map_type)
        .ok_or_else(|| MapError::new_err(format!("the object has no map `{name}`")))
}

/// The ELF with the current contents of its read-only data sections: Python may have set
/// `.rodata` after load, and the kernel freezes it as it loads, so the values must be in the
/// object it is given.
fn elf_with_rodata(elf: &[u8], obj: &LoadedObject) -> PyResult<Vec<u8>> {
    use object::{Object as _, ObjectSection as _};
    let mut out = elf.to_vec();
    let mut file = None;
    for g in obj.object.globals.iter().filter(|g| g.read_only) {
        let name = &obj.object.maps[g.map].name;
        let id = obj.map_id(name).expect("global data has its map");
        let now = obj
            .runner
            .maps
            .lookup(id, &0u32.to_le_bytes())
            .map_err(|e| MapError::new_err(format!("{name}: {e}")))?;
        if now == g.data {
            continue;
        }
        let cannot = |why: String| {
            Error::new_err(format!(
                "cannot give the kernel {} as set from Python: {why}",
                g.section
            ))
        };
        if file.is_none() {
            file = Some(object::File::parse(elf).map_err(|e| cannot(e.to_string()))?);
        }
        let f = file.as_ref().expect("parsed above");
        let (off, size) = f
            .section_by_name(&g.section)
            .and_then(|s| s.file_range())
            .ok_or_else(|| cannot("no such section with file contents".to_string()))?;
        if size as usize != now.len() {
            return Err(cannot(format!(
                "the section holds {size} bytes, the map {}",
                now.len()
            )));
        }
        out[off as usize..(off + size) as usize].copy_from_slice(&now);
    }
    Ok(out)
}

/// Per-CPU values as one syscall buffer: each value 8-byte aligned, one per CPU.
fn percpu_buffer(values: &[Vec<u8>], value_size: usize) -> Vec<u8> {
    let stride = value_size.next_multiple_of(8);
    let mut b = vec![0u8; stride * values.len()];
    for (c, v) in values.iter().enumerate() {
        b[c * stride..c * stride + v.len()].copy_from_slice(v);
    }
    b
}

/// Restores the calling thread's CPU affinity when dropped.
struct Pinned(Option<libc::cpu_set_t>);

impl Pinned {
    /// Run on `cpu` until dropped: the simulator ran on that CPU, and per-CPU maps and
    /// `bpf_get_smp_processor_id` agree only if the kernel does too.
    fn on(cpu: u32) -> Result<Pinned, String> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
        // its size into it.
        let old = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
                .then_some(set)
        };
        bpfsim_kernel::pin_current_thread(cpu as usize)
            .map_err(|e| format!("cannot run on CPU {cpu}, where the simulator ran: {e}"))?;
        Ok(Pinned(old))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(set) = &self.0 {
            // SAFETY: `set` is the affinity read in `on`; sched_setaffinity only reads it.
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
            }
        }
    }
}

impl KernelSide {
    /// Load `elf` (which `obj` simulates) into the kernel with the simulator's current map
    /// contents. KernelUnavailable when bpf(2) cannot be used; Error for what cannot be carried
    /// over; a kernel refusing the object is kept as the answer of every later run.
    pub fn attach(obj: &mut LoadedObject, elf: &[u8]) -> PyResult<KernelSide> {
        let bpf = probe().map_err(KernelUnavailable::new_err)?;
        let ncpus = obj.runner.env.ncpus as usize;
        let possible = bpfsim_kernel::possible_cpus();
        if let Some(m) = obj
            .object
            .maps
            .iter()
            .find(|m| PERCPU.contains(&m.map_type))
        {
            if ncpus != possible {
                return Err(Error::new_err(format!(
                    "per-CPU map `{}`: the simulator has {ncpus} CPUs, the kernel {possible}; \
                     load with Env(ncpus=bpfsim.kernel.possible_cpus()) to compare",
                    m.name
                )));
            }
        }
        if obj.runner.env.cpu as usize >= possible {
            return Err(Error::new_err(format!(
                "the simulator runs on CPU {}, which the kernel does not have ({possible} CPUs)",
                obj.runner.env.cpu
            )));
        }
        let elf = elf_with_rodata(elf, obj)?;
        // From here the kernel's `.rodata` is frozen: so is the simulator's.
        for g in obj.object.globals.iter().filter(|g| g.read_only) {
            let id = obj
                .map_id(&obj.object.maps[g.map].name)
                .expect("global map");
            let _ = obj.runner.maps.freeze(id);
        }
        let runner = match KernelRunner::load(&bpf, &elf) {
            Ok(r) => r,
            Err(e) => {
                return Ok(KernelSide {
                    runner: Err(format!("the kernel refused to load the object: {e}")),
                    trace: Err("no object in the kernel".to_string()),
                    masks: Vec::new(),
                })
            }
        };
        let mut side = KernelSide {
            runner: Ok(runner),
            trace: Ok(()),
            masks: Vec::new(),
        };
        if let Ok(r) = &mut side.runner {
            side.trace = r.capture_trace(true).map_err(|e| e.to_string());
        }
        side.copy_maps(obj)?;
        Ok(side)
    }

    /// Write every entry the simulator holds into the kernel's maps.
    fn copy_maps(&mut self, obj: &LoadedObject) -> PyResult<()> {
        for def in &obj.object.maps {
            if NO_HOST_STATE.contains(&def.map_type)
                || matches!(def.map_type, MapType::ArrayOfMaps | MapType::HashOfMaps)
            {
                // Map-in-map slots come from the object's `.values`, set by both loaders.
                continue;
            }
            let id = obj.map_id(&def.name).expect("object map");
            let maps = &obj.runner.maps;
            if !MIRRORED.contains(&def.map_type) {
                let empty = match def.map_type {
                    MapType::Queue | MapType::Stack => maps.queue_values(id).map(|v| v.is_empty()),
                    _ => maps.keys(id).map(|k| k.is_empty()),
                }
                .map_err(|e| MapError::new_err(e.to_string()))?;
                if !empty {
                    return Err(Error::new_err(format!(
                        "map `{}` ({}) holds entries that cannot be given to the kernel",
                        def.name, def.map_type
                    )));
                }
                continue;
            }
            let array_like = matches!(
                def.map_type,
                MapType::Array
                    | MapType::PercpuArray
                    | MapType::ProgArray
                    | MapType::Devmap
                    | MapType::Cpumap
            );
            let global = obj
                .object
                .globals
                .iter()
                .find(|g| obj.object.maps[g.map].name == def.name);
            if global.is_some_and(|g| g.read_only) {
                continue;
            }
            let entries: Vec<(Vec<u8>, Vec<Vec<u8>>)> = if PERCPU.contains(&def.map_type) {
                maps.entries_percpu(id)
            } else {
                maps.entries(id)
                    .map(|es| es.into_iter().map(|(k, v)| (k, vec![v])).collect())
            }
            .map_err(|e| MapError::new_err(format!("map {}: {e}", def.name)))?;
            for (k, vs) in entries {
                // A kernel array starts zeroed (global data excepted, written at load).
                if array_like && global.is_none() && vs.iter().flatten().all(|&b| b == 0) {
                    continue;
                }
                self.mirror_update(obj, &def.name, &k, &vs, 0)?;
            }
        }
        Ok(())
    }

    fn runner(&self) -> Option<&KernelRunner> {
        self.runner.as_ref().ok()
    }

    fn four_bytes(v: &[Vec<u8>], what: &str) -> PyResult<u32> {
        let [v] = v else {
            return Err(MapError::new_err(format!("a {what} slot takes one value")));
        };
        Ok(u32::from_le_bytes(v.as_slice().try_into().map_err(
            |_| MapError::new_err(format!("a {what} value is 4 bytes")),
        )?))
    }

    /// Refuse, before the simulator is touched, a write that cannot be made in the kernel too.
    pub fn check_mirrorable(obj: &LoadedObject, name: &str) -> PyResult<()> {
        let ty = map_type(obj, name)?;
        if MIRRORED.contains(&ty) {
            return Ok(());
        }
        Err(MapError::new_err(format!(
            "map `{name}` ({ty}): writes from Python are not made in the kernel, so they \
             cannot be used while comparing with it"
        )))
    }

    /// Make in the kernel an update the simulator just made: one value (every CPU's for a
    /// per-CPU map) or one per CPU.
    pub fn mirror_update(
        &mut self,
        obj: &LoadedObject,
        name: &str,
        key: &[u8],
        values: &[Vec<u8>],
        flags: u64,
    ) -> PyResult<()> {
        let Ok(runner) = &mut self.runner else {
            return Ok(());
        };
        let ty = map_type(obj, name)?;
        let kernel_err = |e: String| MapError::new_err(format!("the kernel refused it: {e}"));
        let value = if ty == MapType::Xskmap {
            let queue = Self::four_bytes(values, "XSKMAP")?;
            let fd = runner
                .xsk_socket(TEST_RUN_IFINDEX, queue)
                .map_err(|e| kernel_err(e.to_string()))?;
            fd.to_le_bytes().to_vec()
        } else if ty == MapType::ProgArray {
            let id = Self::four_bytes(values, "prog array")?;
            let prog = obj.program_name_by_id(id).ok_or_else(|| {
                MapError::new_err(format!("no program has id {id} in prog array `{name}`"))
            })?;
            let fd = runner
                .prog_fd(prog)
                .map_err(|e| kernel_err(e.to_string()))?;
            fd.to_le_bytes().to_vec()
        } else if values.len() == 1 {
            values[0].clone()
        } else {
            let def = &obj.object.maps[obj.object.map_index(name).expect("typed above")];
            percpu_buffer(values, def.value_size as usize)
        };
        let map = runner
            .object
            .map(name)
            .ok_or_else(|| kernel_err(format!("no map {name}")))?;
        map.update(key, &value, flags)
            .map_err(|e| kernel_err(format!("updating map {name}: {e}")))
    }

    pub fn mirror_delete(&self, name: &str, key: &[u8]) -> PyResult<()> {
        let Some(runner) = self.runner() else {
            return Ok(());
        };
        let map = runner
            .object
            .map(name)
            .ok_or_else(|| MapError::new_err(format!("the kernel's object has no map {name}")))?;
        map.delete(key).map_err(|e| {
            MapError::new_err(format!(
                "the kernel refused it: deleting from map {name}: {e}"
            ))
        })
    }

    /// Empty a map in the kernel as the simulator's clear does: entries deleted, array slots
    /// (which cannot be deleted) zeroed.
    pub fn mirror_clear(&self, name: &str) -> PyResult<()> {
        let Some(runner) = self.runner() else {
            return Ok(());
        };
        let err = |e: bpfsim_kernel::Errno| {
            MapError::new_err(format!("the kernel: clearing map {name}: {e}"))
        };
        let map = runner
            .object
            .map(name)
            .ok_or_else(|| MapError::new_err(format!("the kernel's object has no map {name}")))?;
        let zero = vec![0u8; map.spec().value_size as usize];
        for k in map.keys().map_err(err)? {
            match map.delete(&k) {
                Ok(()) => {}
                Err(bpfsim_kernel::Errno::EINVAL) => map.update(&k, &zero, 0).map_err(err)?,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }

    /// The kernel's value(s) at `key` of map `name`; None when absent.
    pub fn lookup(&self, name: &str, key: &[u8]) -> PyResult<Option<Vec<Vec<u8>>>> {
        let runner = self
            .runner
            .as_ref()
            .map_err(|e| Error::new_err(e.clone()))?;
        let map = runner
            .object
            .map(name)
            .ok_or_else(|| MapError::new_err(format!("the kernel's object has no map `{name}`")))?;
        map.lookup(key)
            .map_err(|e| MapError::new_err(format!("the kernel: map {name}: {e}")))
    }

    /// The kernel's keys of map `name`, in its iteration order.
    pub fn keys(&self, name: &str) -> PyResult<Vec<Vec<u8>>> {
        let runner = self
            .runner
            .as_ref()
            .map_err(|e| Error::new_err(e.clone()))?;
        let map = runner
            .object
            .map(name)
            .ok_or_else(|| MapError::new_err(format!("the kernel's object has no map `{name}`")))?;
        map.keys()
            .map_err(|e| MapError::new_err(format!("the kernel: map {name}: {e}")))
    }

    /// Why the object is not in the kernel, if it is not.
    pub fn load_error(&self) -> Option<&str> {
        self.runner.as_ref().err().map(String::as_str)
    }

    /// Run `prog` in the kernel alone (the kernel backend), on the simulator's CPU.
    pub fn run_kernel_only(
        &mut self,
        cpu: u32,
        prog: &LinkedProgram,
        data: &[u8],
        input: Input,
        repeat: u32,
    ) -> Result<SimResult, String> {
        let r = self.runner.as_mut().map_err(|e| e.clone())?;
        let _pin = Pinned::on(cpu)?;
        r.run_repeat(&prog.name, data, &input, repeat)
            .map(|k| k.result)
            .map_err(|e| e.to_string())
    }

    /// Every map entry that differs between the simulator and the kernel, in words.
    pub fn map_differences(&self, obj: &LoadedObject) -> Result<Vec<String>, String> {
        match &self.runner {
            Ok(r) => bpfsim::compare::map_differences(obj, r, &self.masks),
            Err(e) => Err(e.clone()),
        }
    }

    /// Run `prog` on both sides (the simulator under `engine`) and compare the results and,
    /// afterwards, the maps. `mocked`: helpers replaced in the simulator, named as what may
    /// explain a difference.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        obj: &mut LoadedObject,
        prog: &LinkedProgram,
        data: &[u8],
        input: Input,
        repeat: u32,
        engine: Engine,
        mocked: &[String],
    ) -> Compared {
        let sim = obj
            .run_engine(prog, data, input, repeat, engine)
            .map_err(|e| e.to_string());
        let kernel = match &mut self.runner {
            Err(e) => Err(e.clone()),
            Ok(r) => Pinned::on(obj.runner.env.cpu).and_then(|_pin| {
                r.run_repeat(&prog.name, data, &input, repeat)
                    .map(|k| k.result)
                    .map_err(|e| e.to_string())
            }),
        };
        let (mut differences, mut not_comparable) =
            bpfsim::compare::compare_runs(prog.prog_type, &sim, &kernel, self.trace.is_ok());
        if let (Ok(s), Err(why)) = (&sim, &self.trace) {
            if !s.trace.is_empty() {
                not_comparable.push(format!("bpf_printk lines ({why})"));
            }
        }
        if kernel.is_ok() {
            match self.map_differences(obj) {
                Ok(d) => differences.extend(d.into_iter().map(|d| format!("afterwards, {d}"))),
                Err(e) => differences.push(format!("the maps could not be compared: {e}")),
            }
        }
        for m in mocked {
            not_comparable.push(format!("helper {m} is mocked here"));
        }
        Compared {
            sim,
            kernel,
            differences,
            not_comparable,
        }
    }
}
