//! A loaded ELF object: programs, maps, BTF descriptions, the environment, mocked helpers, runs
//! and pcap replays. Every method takes the object's lock; runs release the GIL.

use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bpfsim::capture::{Capture, Packet};

use bpfsim::pcapng::{PcapngWriter, INBOUND, OUTBOUND};
use bpfsim::sim::ctx::skb::SkbMd;
use bpfsim::sim::ctx::xdp::XdpMd;
use bpfsim::sim::maps::MapId;
use bpfsim::sim::object::{Engine, LinkedProgram, LoadedObject};
use bpfsim::sim::run::{Input, Redirect, RunResult as SimResult};
use bpfsim::sim::{Clock, Env, Prandom};
use bpfsim::vm::loader::{Btf, BtfKind};
use bpfsim::vm::spec::{MapType, ProgType};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::helper_call::{install, Pending};
use crate::kernel::KernelSide;
use crate::result::{PcapRun, RunResult};
use crate::{Error, LoadError, MapError, PacketError};

/// Packets `run_pcap` reads ahead and times the runs of together.
const PCAP_BATCH: usize = 64;

struct State {
    obj: LoadedObject,
    progs: Vec<LinkedProgram>,
    /// The object as given, for loading it into the kernel later.
    elf: Vec<u8>,
    /// The same object in the kernel, once a comparison asked for it.
    kernel: Option<KernelSide>,
    /// Helpers replaced by Python functions: (id, name).
    mocked: Vec<(u32, String)>,
    /// The kernel backend: programs run in the kernel alone, maps are read from it.
    kernel_only: bool,
    /// Map value bytes to leave out of comparisons, asked for before the kernel side exists.
    masks: Vec<(String, std::ops::Range<usize>)>,
}

/// An object loaded into the simulator (the public `bpfsim.Object` wraps it).
#[pyclass(module = "bpfsim._native")]
pub struct Object {
    state: Mutex<State>,
    pending: Pending,
}

/// The skb context as Python hands it over: mark, priority, ingress_ifindex, ifindex, cb,
/// tstamp, wire_len, gso_segs, gso_size, hwtstamp.
type SkbArgs = (u32, u32, u32, u32, [u32; 5], u64, u32, u32, u32, u64);

fn input(xdp: (u32, u32, u32), skb: Option<SkbArgs>) -> Input {
    Input {
        xdp: XdpMd {
            ingress_ifindex: xdp.0,
            rx_queue_index: xdp.1,
            meta_len: xdp.2,
        },
        skb: skb.map(
            |(
                mark,
                priority,
                ingress_ifindex,
                ifindex,
                cb,
                tstamp,
                wire_len,
                gso_segs,
                gso_size,
                hwtstamp,
            )| SkbMd {
                mark,
                priority,
                ingress_ifindex,
                ifindex,
                cb,
                tstamp,
                wire_len,
                gso_segs,
                gso_size,
                hwtstamp,
            },
        ),
    }
}

fn env(ncpus: u32, cpu: u32, clock: (u64, u64), seed: u64) -> PyResult<Env> {
    if ncpus == 0 || cpu >= ncpus {
        return Err(Error::new_err(format!(
            "cpu {cpu} is not one of the {ncpus} simulated CPUs"
        )));
    }
    Ok(Env {
        clock: Clock::stepping(clock.0, clock.1),
        prandom: Prandom::seeded(seed),
        cpu,
        ncpus,
        ..Env::default()
    })
}

fn engine_of(name: &str) -> PyResult<Engine> {
    Engine::from_name(name).ok_or_else(|| {
        Error::new_err(format!(
            "engine `{name}` is not available: interp, jit, auto or baseline"
        ))
    })
}

fn map_err(e: impl std::fmt::Display) -> PyErr {
    MapError::new_err(e.to_string())
}

fn verdict_name(ty: ProgType, retval: u64) -> String {
    bpfsim::run_cmd::action_name(ty, retval)
}

/// A pcapng comment for a verdict: `XDP_REDIRECT devmap tx_port[0]`, `XDP_TX`...
fn comment(ty: ProgType, r: &SimResult, maps: &[String]) -> String {
    let mut c = verdict_name(ty, r.retval);
    match &r.redirect {
        Some(Redirect::Ifindex { ifindex, .. }) => c.push_str(&format!(" -> ifindex {ifindex}")),
        Some(Redirect::Map { map, key, .. }) => c.push_str(&format!(
            " {}[{key}]",
            maps.get(*map).map_or("?", String::as_str)
        )),
        None => {}
    }
    if let Some(t) = r.trap {
        c.push_str(&format!(" (trap: {t})"));
    }
    c
}

impl Object {
    /// For the kernel backend, load the object into the kernel before its first run (and say
    /// so if the kernel refuses it); whether runs go to the kernel alone.
    fn kernel_side_for_runs(&self, py: Python<'_>) -> PyResult<bool> {
        if !self.lock().kernel_only {
            return Ok(false);
        }
        self.kernel_attach(py)?;
        let st = self.lock();
        match st.kernel.as_ref().and_then(|k| k.load_error()) {
            Some(e) => Err(LoadError::new_err(e.to_string())),
            None => Ok(true),
        }
    }

    /// Queue, stack and ring buffer contents are the simulator's; the kernel backend cannot
    /// read them back.
    fn not_from_the_kernel(st: &State, name: &str) -> PyResult<()> {
        if st.kernel_only && st.kernel.is_some() {
            return Err(MapError::new_err(format!(
                "map `{name}`: reading a queue or stack back from the kernel is not supported"
            )));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the simulator half-updated in a way that
        // matters more than losing the object; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn map(state: &State, name: &str) -> PyResult<(MapId, MapType)> {
        let i = state
            .obj
            .object
            .map_index(name)
            .ok_or_else(|| MapError::new_err(format!("the object has no map `{name}`")))?;
        Ok((
            state.obj.map_id(name).expect("indexed map"),
            state.obj.object.maps[i].map_type,
        ))
    }

    fn take_pending(&self) -> PyResult<()> {
        match self.pending.lock().expect("pending lock").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn wrap(state: &State, prog: usize, r: SimResult) -> RunResult {
        let chain = r
            .tail_calls
            .iter()
            .map(|id| match state.obj.program_name_by_id(*id) {
                Some(n) => n.to_string(),
                None => format!("#{id}"),
            })
            .collect();
        let redirect_map = match &r.redirect {
            Some(Redirect::Map { map, .. }) => {
                state.obj.object.maps.get(*map).map(|m| m.name.clone())
            }
            _ => None,
        };
        let _ = prog;
        RunResult {
            inner: r,
            chain,
            redirect_map,
        }
    }
}

/// A BTF type as Python builds ctypes from it.
fn describe<'py>(py: Python<'py>, btf: &Btf, id: u32, depth: u32) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let Some(resolved) = btf.skip_mods_and_typedefs(id) else {
        d.set_item("kind", "unknown")?;
        return Ok(d);
    };
    let t = btf.type_by_id(resolved).expect("resolved id exists");
    d.set_item("name", &t.name)?;
    d.set_item("size", btf.resolve_size(resolved).ok())?;
    if depth > 8 {
        d.set_item("kind", "unknown")?;
        return Ok(d);
    }
    match &t.kind {
        BtfKind::Int {
            size,
            encoding,
            bits,
            offset,
        } => {
            d.set_item(
                "kind",
                if u32::from(*bits) == size * 8 && *offset == 0 {
                    "int"
                } else {
                    "unknown"
                },
            )?;
            d.set_item("signed", encoding & 1 != 0)?;
        }
        BtfKind::Enum { signed, .. } | BtfKind::Enum64 { signed, .. } => {
            d.set_item("kind", "int")?;
            d.set_item("signed", *signed)?;
        }
        BtfKind::Ptr { .. } => {
            d.set_item("kind", "int")?;
            d.set_item("signed", false)?;
        }
        BtfKind::Array { elem, nelems, .. } => {
            d.set_item("kind", "array")?;
            d.set_item("elem", describe(py, btf, *elem, depth + 1)?)?;
            d.set_item("n", nelems)?;
        }
        BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
            let union = matches!(t.kind, BtfKind::Union { .. });
            d.set_item("kind", if union { "union" } else { "struct" })?;
            let ms = PyList::empty(py);
            for m in members {
                if m.bitfield_size != 0 || m.bit_offset % 8 != 0 {
                    d.set_item("kind", "unknown")?;
                    return Ok(d);
                }
                ms.append((
                    m.name.clone(),
                    m.bit_offset / 8,
                    describe(py, btf, m.type_id, depth + 1)?,
                ))?;
            }
            d.set_item("members", ms)?;
        }
        _ => d.set_item("kind", "unknown")?,
    }
    Ok(d)
}

#[pymethods]
impl Object {
    #[new]
    #[pyo3(signature = (data, ncpus=1, cpu=0, clock=(0, 1000), seed=0, kernel_only=false))]
    fn new(
        data: &[u8],
        ncpus: u32,
        cpu: u32,
        clock: (u64, u64),
        seed: u64,
        kernel_only: bool,
    ) -> PyResult<Object> {
        let obj = LoadedObject::load(data, env(ncpus, cpu, clock, seed)?)
            .map_err(|e| LoadError::new_err(e.to_string()))?;
        Ok(Object {
            state: Mutex::new(State {
                obj,
                progs: Vec::new(),
                elf: data.to_vec(),
                kernel: None,
                mocked: Vec::new(),
                kernel_only,
                masks: Vec::new(),
            }),
            pending: Arc::new(Mutex::new(None)),
        })
    }

    /// `(name, section, type or None, instructions)` of every program, and of programs the
    /// loader refused `(name, section, None, -1, reason)` as errors to raise when asked for.
    fn programs(&self) -> Vec<(String, String, Option<String>, usize)> {
        let st = self.lock();
        st.obj
            .object
            .programs
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.section.clone(),
                    p.prog_type.map(|t| t.to_string()),
                    p.insns.len(),
                )
            })
            .collect()
    }

    /// Link program `name` (as type `prog_type` if given): a handle, its type, section and
    /// instruction count.
    #[pyo3(signature = (name, prog_type=None))]
    fn link(
        &self,
        name: &str,
        prog_type: Option<&str>,
    ) -> PyResult<(usize, String, String, usize)> {
        let ty = match prog_type {
            Some(t) => Some(ProgType::from_name(t).ok_or_else(|| {
                LoadError::new_err(format!(
                    "unknown program type `{t}` (the kernel's names: xdp, sched_cls, socket_filter, ...)"
                ))
            })?),
            None => None,
        };
        let mut st = self.lock();
        let p = st
            .obj
            .program(name, ty)
            .map_err(|e| LoadError::new_err(e.to_string()))?;
        let out = (
            st.progs.len(),
            p.prog_type.to_string(),
            p.section.clone(),
            p.insns.len(),
        );
        st.progs.push(p);
        Ok(out)
    }

    /// The linked program as text: `style` is "conformance" or "kernel".
    #[pyo3(signature = (handle, style="kernel"))]
    fn disasm(&self, handle: usize, style: &str) -> PyResult<String> {
        let st = self.lock();
        let p = st
            .progs
            .get(handle)
            .ok_or_else(|| Error::new_err("no such program handle"))?;
        Ok(match style {
            "conformance" => bpfsim::vm::asm::disassemble(&p.insns),
            _ => bpfsim::vm::asm::kernel_listing(&p.insns),
        })
    }

    /// The code the JIT generates for a linked program (verified, compiled with the verifier's
    /// hints as `engine="jit"` runs it): each instruction in `style`, then its host
    /// instructions, as `bpfsim disasm --jit` prints it.
    /// With `baseline`, the baseline tier's code (not verified: the tier takes no hints).
    #[pyo3(signature = (handle, style="kernel", baseline=false))]
    fn disasm_jit(&self, handle: usize, style: &str, baseline: bool) -> PyResult<String> {
        let st = self.lock();
        let p = st
            .progs
            .get(handle)
            .ok_or_else(|| Error::new_err("no such program handle"))?;
        let jit = if baseline {
            let prog = bpfsim::vm::Program::new(p.insns.clone())
                .map_err(|e| LoadError::new_err(e.to_string()))?;
            bpfsim::disasm_cmd::Tier::Baseline
                .compile(&prog, Some(p.name.clone()))
                .map_err(LoadError::new_err)?
        } else {
            p.jit_listed()
                .map_err(|e| LoadError::new_err(e.to_string()))?
        };
        let listing = jit
            .listing()
            .ok_or_else(|| Error::new_err("the JIT kept no listing"))?;
        let style = match style {
            "conformance" => bpfsim::disasm_cmd::BpfStyle::Conformance,
            _ => bpfsim::disasm_cmd::BpfStyle::Kernel,
        };
        Ok(bpfsim::disasm_cmd::listing_text(listing, &p.insns, style))
    }

    /// Run a linked program once (`repeat` times) on `data`; the GIL is released meanwhile.
    /// `xdp` None: the default context (ingress ifindex 1, queue 0), so that the Python side
    /// can pass every argument by position (keywords cost the call as much as a short run).
    #[pyo3(signature = (handle, data, xdp=None, skb=None, repeat=1, engine="interp"))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        handle: usize,
        data: &[u8],
        xdp: Option<(u32, u32, u32)>,
        skb: Option<SkbArgs>,
        repeat: u32,
        engine: &str,
    ) -> PyResult<RunResult> {
        let engine = engine_of(engine)?;
        let inp = input(xdp.unwrap_or((1, 0, 0)), skb);
        let kernel_only = self.kernel_side_for_runs(py)?;
        let mut guard = self.lock();
        let st = &mut *guard;
        let prog = st
            .progs
            .get(handle)
            .ok_or_else(|| Error::new_err("no such program handle"))?;
        let obj = &mut st.obj;
        let r = match (kernel_only, st.kernel.as_mut()) {
            (true, Some(k)) => {
                let cpu = obj.runner.env.cpu;
                py.detach(|| k.run_kernel_only(cpu, prog, data, inp, repeat))
            }
            _ => py
                .detach(|| obj.run_engine(prog, data, inp, repeat, engine))
                .map_err(|e| e.to_string()),
        };
        self.take_pending()?;
        let r = r.map_err(PacketError::new_err)?;
        Ok(Self::wrap(st, handle, r))
    }

    /// Replay a capture through a linked program, streaming; optionally write the packets
    /// whose verdict is in `only` (all when empty) to a pcapng file with the verdict as comment.
    #[pyo3(signature = (handle, path, out=None, only=Vec::new(), xdp=(1, 0, 0), skb=None, progress=None, keep=false, engine="interp"))]
    #[allow(clippy::too_many_arguments)]
    fn run_pcap(
        &self,
        py: Python<'_>,
        handle: usize,
        path: PathBuf,
        out: Option<PathBuf>,
        only: Vec<String>,
        xdp: (u32, u32, u32),
        skb: Option<SkbArgs>,
        progress: Option<bool>,
        keep: bool,
        engine: &str,
    ) -> PyResult<PcapRun> {
        let engine = engine_of(engine)?;
        let inp = input(xdp, skb);
        let progress = progress.unwrap_or_else(|| std::io::stderr().is_terminal());
        let kernel_only = self.kernel_side_for_runs(py)?;
        let mut guard = self.lock();
        let st = &mut *guard;
        let map_names: Vec<String> = st.obj.object.maps.iter().map(|m| m.name.clone()).collect();
        let prog = st
            .progs
            .get(handle)
            .ok_or_else(|| Error::new_err("no such program handle"))?;
        let ty = prog.prog_type;
        let obj = &mut st.obj;
        let mut kernel = st.kernel.as_mut().filter(|_| kernel_only);
        let pending = &self.pending;
        let started = std::time::Instant::now();
        // The runs' own clock readings only where a packet's result is kept or written.
        let timing = obj.runner.timing();
        obj.runner.set_timing(keep || out.is_some());
        let outcome = py.detach(|| -> Result<_, String> {
            let mut cap = Capture::open(&path).map_err(|e| e.to_string())?;
            let mut writer = match &out {
                Some(p) => Some(
                    std::fs::File::create(p)
                        .map_err(|e| format!("{}: {e}", p.display()))
                        .and_then(|f| {
                            PcapngWriter::new(BufWriter::new(f))
                                .map_err(|e| format!("{}: {e}", p.display()))
                        })?,
                ),
                None => None,
            };
            let only: Vec<String> = only.iter().map(|s| s.to_ascii_uppercase()).collect();
            let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
            let (mut retvals, mut refused, mut kept) = (Vec::new(), Vec::new(), Vec::new());
            let (mut n, mut written, mut run_ns) = (0usize, 0usize, 0u64);
            let mut slot = SimResult::default();
            // Packets are read a batch at a time into reused buffers, and when no packet's
            // own result is kept or written, the runs of a batch are timed together: two clock
            // readings per packet were a tenth of a replay's time.
            let timed_each = keep || writer.is_some() || kernel.is_some();
            let mut batch: Vec<Packet> = vec![Packet::default(); PCAP_BATCH];
            loop {
                let mut got = 0;
                let mut read_error = None;
                while got < PCAP_BATCH {
                    match cap.next_into(&mut batch[got]) {
                        None => break,
                        Some(Ok(())) => got += 1,
                        Some(Err(e)) => {
                            read_error = Some(e.to_string());
                            break;
                        }
                    }
                }
                let batch_started = (!timed_each).then(std::time::Instant::now);
                for p in &batch[..got] {
                    // The simulator writes each packet's result into `slot`, in its allocations.
                    let ran = match kernel.as_deref_mut() {
                        Some(k) => k
                            .run_kernel_only(obj.runner.env.cpu, prog, &p.data, inp, 1)
                            .map(|r| slot = r),
                        None => obj
                            .run_engine_into(prog, &p.data, inp, 1, engine, &mut slot)
                            .map_err(|e| e.to_string()),
                    };
                    match ran {
                        Ok(()) => {
                            let r = &slot;
                            run_ns += r.duration_ns;
                            *counts.entry(r.retval).or_default() += 1;
                            retvals.push(r.retval);
                            if let Some(w) = writer.as_mut() {
                                let name = verdict_name(ty, r.retval);
                                let short = name
                                    .strip_prefix("XDP_")
                                    .or_else(|| name.strip_prefix("TC_ACT_"))
                                    .unwrap_or(&name)
                                    .to_ascii_uppercase();
                                if only.is_empty() || only.iter().any(|o| *o == short || *o == name)
                                {
                                    // What the program sends on (TX, REDIRECT) goes out; the rest
                                    // carries on inbound.
                                    let dir = match (ty, r.retval) {
                                        (ProgType::Xdp, 3 | 4) => OUTBOUND,
                                        _ => INBOUND,
                                    };
                                    w.packet(&r.data, p.ts_ns, dir, &comment(ty, r, &map_names))
                                        .map_err(|e| e.to_string())?;
                                    written += 1;
                                }
                            }
                            if keep {
                                kept.push(std::mem::take(&mut slot));
                            }
                        }
                        Err(e) => {
                            if pending.lock().expect("pending lock").is_some() {
                                return Err("a mocked helper raised".to_string());
                            }
                            refused.push((n, e.to_string()));
                        }
                    }
                    n += 1;
                    if progress && n % 10_000 == 0 {
                        eprint!("\rbpfsim: {n} packets");
                    }
                }
                if let Some(t) = batch_started {
                    run_ns += t.elapsed().as_nanos() as u64;
                }
                if let Some(e) = read_error {
                    return Err(e);
                }
                if got < PCAP_BATCH {
                    break;
                }
            }
            if progress && n >= 10_000 {
                eprintln!("\rbpfsim: {n} packets");
            }
            if let Some(w) = writer {
                w.finish().map_err(|e| e.to_string())?;
            }
            Ok((counts, retvals, refused, kept, n, written, run_ns))
        });
        obj.runner.set_timing(timing);
        self.take_pending()?;
        let (counts, retvals, refused, kept, packets, written, run_ns) =
            outcome.map_err(PacketError::new_err)?;
        let results = kept
            .into_iter()
            .map(|r| Py::new(py, Self::wrap(st, handle, r)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PcapRun {
            counts: counts.into_iter().collect(),
            retvals,
            refused,
            packets,
            written,
            seconds: started.elapsed().as_secs_f64(),
            run_seconds: run_ns as f64 / 1e9,
            results,
        })
    }

    /// `(name, type, key_size, value_size, max_entries, flags, btf key id, btf value id)`.
    #[allow(clippy::type_complexity)]
    fn maps(&self) -> Vec<(String, String, u32, u32, u32, u32, u32, u32)> {
        let st = self.lock();
        st.obj
            .object
            .maps
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.map_type.to_string(),
                    m.key_size,
                    m.value_size,
                    m.max_entries,
                    m.flags,
                    m.btf_key_type_id,
                    m.btf_value_type_id,
                )
            })
            .collect()
    }

    /// The value(s) at `key`: one per CPU for per-CPU maps; None when absent.
    fn map_lookup<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        key: &[u8],
    ) -> PyResult<Option<Vec<Bound<'py, PyBytes>>>> {
        let st = self.lock();
        let (id, ty) = Self::map(&st, name)?;
        if let Some(k) = st.kernel.as_ref().filter(|_| st.kernel_only) {
            let vs = k.lookup(name, key)?;
            return Ok(vs.map(|vs| vs.iter().map(|v| PyBytes::new(py, v)).collect()));
        }
        let maps = &st.obj.runner.maps;
        let percpu = matches!(
            ty,
            MapType::PercpuArray | MapType::PercpuHash | MapType::LruPercpuHash
        );
        let r = if percpu {
            maps.lookup_percpu(id, key)
        } else {
            maps.lookup(id, key).map(|v| vec![v])
        };
        match r {
            Ok(vs) => Ok(Some(vs.iter().map(|v| PyBytes::new(py, v)).collect())),
            Err(e) if e.errno() == bpfsim::sim::maps::Errno::ENOENT => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Update `key` with one value, or one per CPU for per-CPU maps (a single value goes to
    /// every CPU); `flags` as BPF_ANY (0), BPF_NOEXIST (1), BPF_EXIST (2).
    #[pyo3(signature = (name, key, values, flags=0))]
    fn map_update(&self, name: &str, key: &[u8], values: Vec<Vec<u8>>, flags: u64) -> PyResult<()> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let (id, ty) = Self::map(st, name)?;
        if st.kernel.is_some() {
            KernelSide::check_mirrorable(&st.obj, name)?;
        }
        if let Some(k) = st.kernel.as_mut().filter(|_| st.kernel_only) {
            // The programs write the kernel's maps only: the simulator's no longer count.
            return k.mirror_update(&st.obj, name, key, &values, flags);
        }
        let maps = &mut st.obj.runner.maps;
        let percpu = matches!(
            ty,
            MapType::PercpuArray | MapType::PercpuHash | MapType::LruPercpuHash
        );
        if percpu {
            let n = maps.ncpus() as usize;
            let all = if values.len() == 1 {
                vec![values[0].clone(); n]
            } else {
                values
            };
            maps.update_percpu(id, key, &all, flags).map_err(map_err)?;
            if let Some(k) = &mut st.kernel {
                k.mirror_update(&st.obj, name, key, &all, flags)?;
            }
            Ok(())
        } else {
            let [v] = values.as_slice() else {
                return Err(MapError::new_err(format!(
                    "map `{name}` takes one value, not {}",
                    values.len()
                )));
            };
            maps.update(id, key, v, flags).map_err(map_err)?;
            if let Some(k) = &mut st.kernel {
                k.mirror_update(&st.obj, name, key, std::slice::from_ref(v), flags)?;
            }
            Ok(())
        }
    }

    fn map_delete(&self, name: &str, key: &[u8]) -> PyResult<()> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let (id, _) = Self::map(st, name)?;
        if st.kernel.is_some() {
            KernelSide::check_mirrorable(&st.obj, name)?;
        }
        if let Some(k) = st.kernel.as_ref().filter(|_| st.kernel_only) {
            return k.mirror_delete(name, key);
        }
        st.obj.runner.maps.delete(id, key).map_err(map_err)?;
        match &st.kernel {
            Some(k) => k.mirror_delete(name, key),
            None => Ok(()),
        }
    }

    fn map_keys<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let st = self.lock();
        let (id, _) = Self::map(&st, name)?;
        if let Some(k) = st.kernel.as_ref().filter(|_| st.kernel_only) {
            return Ok(k.keys(name)?.iter().map(|k| PyBytes::new(py, k)).collect());
        }
        let keys = st.obj.runner.maps.keys(id).map_err(map_err)?;
        Ok(keys.iter().map(|k| PyBytes::new(py, k)).collect())
    }

    fn map_clear(&self, name: &str) -> PyResult<()> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let (id, _) = Self::map(st, name)?;
        if st.kernel.is_some() {
            KernelSide::check_mirrorable(&st.obj, name)?;
        }
        if let Some(k) = st.kernel.as_ref().filter(|_| st.kernel_only) {
            return k.mirror_clear(name);
        }
        st.obj.runner.maps.clear(id).map_err(map_err)?;
        match &st.kernel {
            Some(k) => k.mirror_clear(name),
            None => Ok(()),
        }
    }

    #[pyo3(signature = (name, value, flags=0))]
    fn map_push(&self, name: &str, value: &[u8], flags: u64) -> PyResult<()> {
        let mut st = self.lock();
        let (id, _) = Self::map(&st, name)?;
        if st.kernel.is_some() {
            KernelSide::check_mirrorable(&st.obj, name)?;
        }
        st.obj.runner.maps.push(id, value, flags).map_err(map_err)
    }

    fn map_pop<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyBytes>> {
        let mut st = self.lock();
        let (id, _) = Self::map(&st, name)?;
        if st.kernel.is_some() {
            KernelSide::check_mirrorable(&st.obj, name)?;
        }
        st.obj
            .runner
            .maps
            .pop(id)
            .map(|v| PyBytes::new(py, &v))
            .map_err(map_err)
    }

    fn map_peek<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyBytes>> {
        let st = self.lock();
        let (id, _) = Self::map(&st, name)?;
        Self::not_from_the_kernel(&st, name)?;
        st.obj
            .runner
            .maps
            .peek(id)
            .map(|v| PyBytes::new(py, &v))
            .map_err(map_err)
    }

    fn map_queue_values<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let st = self.lock();
        let (id, _) = Self::map(&st, name)?;
        Self::not_from_the_kernel(&st, name)?;
        let vs = st.obj.runner.maps.queue_values(id).map_err(map_err)?;
        Ok(vs.iter().map(|v| PyBytes::new(py, v)).collect())
    }

    /// A BTF type described for Python (`kind`: int, struct, union, array, unknown).
    fn btf_type<'py>(&self, py: Python<'py>, id: u32) -> PyResult<Option<Bound<'py, PyDict>>> {
        let st = self.lock();
        match &st.obj.object.btf {
            Some(btf) if id != 0 => Ok(Some(describe(py, btf, id, 0)?)),
            _ => Ok(None),
        }
    }

    /// `(name, offset, size, type id)` of the variables of a global data section.
    fn global_vars(&self, section: &str) -> Vec<(String, u32, u32, u32)> {
        let st = self.lock();
        st.obj
            .object
            .global_vars(section)
            .into_iter()
            .map(|v| (v.name, v.offset, v.size, v.type_id))
            .collect()
    }

    /// False once a program has run or the object is in the kernel: `.rodata` is then frozen.
    fn rodata_writable(&self) -> bool {
        let st = self.lock();
        st.obj.rodata_writable() && st.kernel.is_none()
    }

    /// Replace the clock, random seed and CPU (the number of CPUs is fixed at load).
    #[pyo3(signature = (cpu=None, clock=None, seed=None))]
    fn set_env(
        &self,
        cpu: Option<u32>,
        clock: Option<(u64, u64)>,
        seed: Option<u64>,
    ) -> PyResult<()> {
        let mut st = self.lock();
        let env = &mut st.obj.runner.env;
        if let Some(c) = cpu {
            if c >= env.ncpus {
                return Err(Error::new_err(format!(
                    "cpu {c} is not one of the {} simulated CPUs",
                    env.ncpus
                )));
            }
            env.cpu = c;
        }
        if let Some((start, step)) = clock {
            env.clock = Clock::stepping(start, step);
        }
        if let Some(s) = seed {
            env.prandom = Prandom::seeded(s);
        }
        let cpu = env.cpu;
        st.obj.runner.maps.set_host_cpu(cpu);
        Ok(())
    }

    /// `(ncpus, cpu, clock now)`.
    fn env(&self) -> (u32, u32, u64) {
        let st = self.lock();
        let e = &st.obj.runner.env;
        (e.ncpus, e.cpu, e.clock.now_ns)
    }

    /// Verify program `name` (as `prog_type` if given) as the kernel would load it:
    /// `(accepted, first error line, processed instructions, log lines, microseconds)`.
    #[pyo3(signature = (name, prog_type=None, log_level=1))]
    #[allow(clippy::type_complexity)]
    fn verify(
        &self,
        py: Python<'_>,
        name: &str,
        prog_type: Option<&str>,
        log_level: u32,
    ) -> PyResult<(bool, Option<String>, u64, Vec<String>, u64)> {
        let ty = match prog_type {
            Some(t) => Some(
                ProgType::from_name(t)
                    .ok_or_else(|| LoadError::new_err(format!("unknown program type `{t}`")))?,
            ),
            None => None,
        };
        let st = self.lock();
        let obj = &st.obj.object;
        let owned;
        let p = match (obj.find_program(name), ty) {
            (Ok(p), _) => p,
            (Err(_), Some(t)) => {
                owned = obj
                    .function_program(name, t)
                    .map_err(|e| LoadError::new_err(e.to_string()))?;
                &owned
            }
            (Err(e), None) => return Err(LoadError::new_err(e.to_string())),
        };
        let v = py
            .detach(|| bpfsim::verifier::verify_object_program(obj, p, ty, log_level))
            .ok_or_else(|| {
                LoadError::new_err(format!(
                    "program `{name}` (section `{}`) has no type: give one",
                    p.section
                ))
            })?;
        Ok((
            v.accepted,
            v.error,
            v.processed,
            v.log,
            v.time.as_micros() as u64,
        ))
    }

    /// The id a prog array slot holds to reach program `name` (linking it on first use).
    fn prog_id(&self, name: &str) -> PyResult<u32> {
        self.lock()
            .obj
            .prog_id(name)
            .map_err(|e| LoadError::new_err(e.to_string()))
    }

    /// Replace helper `id` with a Python callable taking a `HelperCall` and returning r0.
    fn mock_helper(&self, id: u32, f: Py<PyAny>) -> PyResult<()> {
        let mut st = self.lock();
        if st.kernel_only {
            return Err(Error::new_err(
                "the kernel backend runs the kernel's own helpers: mocking needs the simulator",
            ));
        }
        install(&mut st.obj.runner, id, f, self.pending.clone());
        let name = bpfsim::vm::spec::HELPER_NAMES
            .get(id as usize)
            .map_or_else(|| format!("#{id}"), |n| format!("bpf_{n}"));
        st.mocked.retain(|(i, _)| *i != id);
        st.mocked.push((id, name));
        Ok(())
    }

    fn restore_helper(&self, id: u32) {
        let mut st = self.lock();
        st.obj.runner.restore_helper(id);
        st.mocked.retain(|(i, _)| *i != id);
    }

    /// Load the object into the kernel (once) with the simulator's current maps; later map
    /// writes go to both. KernelUnavailable without bpf(2).
    fn kernel_attach(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.kernel.is_none() {
            let (obj, elf) = (&mut st.obj, &st.elf);
            let mut side = py.detach(|| KernelSide::attach(obj, elf))?;
            side.masks = std::mem::take(&mut st.masks);
            st.kernel = Some(side);
        }
        Ok(())
    }

    fn kernel_attached(&self) -> bool {
        self.lock().kernel.is_some()
    }

    fn kernel_only(&self) -> bool {
        self.lock().kernel_only
    }

    /// Leave value bytes `start..end` of map `name` out of the comparisons (times, random
    /// numbers).
    /// Kept until the object goes into the kernel: asking for it must not load it there, which
    /// would freeze `.rodata` before Python has set it.
    fn kernel_ignore(&self, name: &str, start: usize, end: usize) -> PyResult<()> {
        if start >= end {
            return Err(Error::new_err(format!("empty byte range {start}..{end}")));
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        Self::map(st, name)?;
        let mask = (name.to_string(), start..end);
        match st.kernel.as_mut() {
            Some(k) => k.masks.push(mask),
            None => st.masks.push(mask),
        }
        Ok(())
    }

    /// The kernel's value(s) at `key` of map `name` (one per CPU for per-CPU maps); None when
    /// absent.
    fn kernel_map_lookup<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        key: &[u8],
    ) -> PyResult<Option<Vec<Bound<'py, PyBytes>>>> {
        self.kernel_attach(py)?;
        let st = self.lock();
        let vs = st.kernel.as_ref().expect("attached").lookup(name, key)?;
        Ok(vs.map(|vs| vs.iter().map(|v| PyBytes::new(py, v)).collect()))
    }

    /// Every map entry that differs between the simulator and the kernel now, in words.
    fn kernel_map_differences(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.kernel_attach(py)?;
        let st = self.lock();
        st.kernel
            .as_ref()
            .expect("attached")
            .map_differences(&st.obj)
            .map_err(Error::new_err)
    }

    /// Run a linked program in the simulator and in the kernel and compare: `(simulator
    /// result, simulator refusal, kernel result, kernel refusal, differences, not comparable)`.
    #[pyo3(signature = (handle, data, xdp=(1, 0, 0), skb=None, repeat=1, engine="interp"))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn run_compare(
        &self,
        py: Python<'_>,
        handle: usize,
        data: &[u8],
        xdp: (u32, u32, u32),
        skb: Option<SkbArgs>,
        repeat: u32,
        engine: &str,
    ) -> PyResult<(
        Option<RunResult>,
        Option<String>,
        Option<RunResult>,
        Option<String>,
        Vec<String>,
        Vec<String>,
    )> {
        let engine = engine_of(engine)?;
        let inp = input(xdp, skb);
        self.kernel_attach(py)?;
        let mut guard = self.lock();
        let st = &mut *guard;
        let prog = st
            .progs
            .get(handle)
            .ok_or_else(|| Error::new_err("no such program handle"))?;
        let mocked: Vec<String> = st.mocked.iter().map(|(_, n)| n.clone()).collect();
        let (obj, side) = (&mut st.obj, st.kernel.as_mut().expect("attached"));
        let c = py.detach(|| side.run(obj, prog, data, inp, repeat, engine, &mocked));
        self.take_pending()?;
        let wrap = |r: SimResult| RunResult {
            inner: r,
            chain: Vec::new(),
            redirect_map: None,
        };
        let (sim, sim_err) = match c.sim {
            Ok(r) => (Some(Self::wrap(st, handle, r)), None),
            Err(e) => (None, Some(e)),
        };
        let (kernel, kernel_err) = match c.kernel {
            Ok(r) => (Some(wrap(r)), None),
            Err(e) => (None, Some(e)),
        };
        Ok((
            sim,
            sim_err,
            kernel,
            kernel_err,
            c.differences,
            c.not_comparable,
        ))
    }
}
