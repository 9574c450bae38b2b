//! Kernel-compat: one ELF object loaded twice, in the simulator and in the live kernel, the same
//! map writes and packets given to both (map state flowing across packets on each side), and
//! every difference said in words.
//!
//! What the kernel does not report is named, not compared: the redirect target (a test run returns
//! only the action), `tc_classid` and `hash` written by TC programs, the instruction count, traps.

use std::collections::BTreeMap;

use bpfsim_helpers::object::{LinkedProgram, LoadedObject};
use bpfsim_helpers::run::{Input, RunResult};
use bpfsim_helpers::Env;
use bpfsim_kernel::{KernelBpf, KernelRunner};
use bpfsim_vm::spec::{MapType, ProgType};

/// What a setup step writes into a map slot, on both sides.
#[derive(Clone, Debug)]
pub enum SlotValue {
    Bytes(Vec<u8>),
    /// A program of the object: its descriptor in the kernel, its id in the simulator.
    Prog(String),
    /// An AF_XDP socket bound to this interface and queue (the simulator stores the queue).
    Xsk {
        ifindex: u32,
        queue: u32,
    },
}

/// Both sides of one packet.
#[derive(Debug)]
pub struct PacketComparison {
    pub sim: Result<RunResult, String>,
    pub kernel: Result<RunResult, String>,
    /// Each difference, in words; empty when the two agree.
    pub differences: Vec<String>,
    /// What the simulator reported that the kernel cannot, so was not compared.
    pub not_comparable: Vec<String>,
}

/// Map types whose contents a syscall cannot read back comparably: prog arrays hold ids that
/// differ between the two, ring buffers have no keys (their records are compared per packet),
/// XSKMAP lookups are EOPNOTSUPP, perf event arrays hold descriptors.
const MAPS_NOT_COMPARED: [MapType; 4] = [
    MapType::ProgArray,
    MapType::Ringbuf,
    MapType::Xskmap,
    MapType::PerfEventArray,
];

pub struct Comparison {
    pub sim: LoadedObject,
    pub kernel: KernelRunner,
    /// bpf_printk lines are compared ([`Comparison::capture_trace`]).
    pub trace: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The named fields of `struct xdp_md` / `struct __sk_buff` (as ctx_out reports them) whose
/// bytes differ, each with both values.
fn ctx_fields_differing(prog_type: ProgType, a: &[u8], b: &[u8]) -> Vec<String> {
    const XDP: &[(&str, usize, usize)] = &[
        ("data", 0, 4),
        ("data_end", 4, 4),
        ("data_meta", 8, 4),
        ("ingress_ifindex", 12, 4),
        ("rx_queue_index", 16, 4),
        ("egress_ifindex", 20, 4),
    ];
    const SKB: &[(&str, usize, usize)] = &[
        ("mark", 8, 4),
        ("priority", 32, 4),
        ("ingress_ifindex", 36, 4),
        ("ifindex", 40, 4),
        ("cb", 48, 20),
        ("tstamp", 152, 8),
        ("wire_len", 160, 4),
        ("gso_segs", 164, 4),
        ("gso_size", 176, 4),
        ("hwtstamp", 184, 8),
    ];
    let fields = if prog_type == ProgType::Xdp { XDP } else { SKB };
    let mut out: Vec<String> = fields
        .iter()
        .filter(|(_, at, n)| a.get(*at..at + n) != b.get(*at..at + n))
        .map(|(name, at, n)| {
            let v = |x: &[u8]| x.get(*at..at + n).map_or("-".to_string(), hex);
            format!("{name} ({} here, {} in the kernel)", v(a), v(b))
        })
        .collect();
    if out.is_empty() {
        out.push(format!("bytes: {} here, {} in the kernel", hex(a), hex(b)));
    }
    out
}

/// A map dump: hex key -> hex values (one per CPU for per-CPU maps).
pub type Dump = BTreeMap<String, Vec<String>>;

impl Comparison {
    /// Load `elf` in both. The simulator gets as many CPUs as the kernel has possible ones, and
    /// runs on CPU 0: pin the calling thread there ([`bpfsim_kernel::pin_current_thread`]) for
    /// per-CPU maps to agree.
    pub fn load(bpf: &KernelBpf, elf: &[u8], mut env: Env) -> Result<Comparison, String> {
        env.ncpus = bpfsim_kernel::possible_cpus() as u32;
        env.cpu = 0;
        let sim = LoadedObject::load(elf, env).map_err(|e| format!("simulator: {e}"))?;
        let kernel = KernelRunner::load(bpf, elf).map_err(|e| format!("kernel: {e}"))?;
        Ok(Comparison {
            sim,
            kernel,
            trace: false,
        })
    }

    /// Compare bpf_printk lines too: the kernel's trace buffer (global to the machine) is
    /// cleared before and read after every run. Says why when tracefs is not writable.
    pub fn capture_trace(&mut self) -> Result<(), String> {
        self.kernel.capture_trace(true).map_err(|e| e.to_string())?;
        self.trace = true;
        Ok(())
    }

    /// Write one map slot on both sides.
    pub fn set_map(&mut self, map: &str, key: &[u8], value: &SlotValue) -> Result<(), String> {
        let (sim_value, kernel_value) = match value {
            SlotValue::Bytes(v) => (v.clone(), v.clone()),
            SlotValue::Prog(p) => (
                self.sim
                    .prog_id(p)
                    .map_err(|e| e.to_string())?
                    .to_le_bytes()
                    .to_vec(),
                self.kernel
                    .prog_fd(p)
                    .map_err(|e| e.to_string())?
                    .to_le_bytes()
                    .to_vec(),
            ),
            SlotValue::Xsk { ifindex, queue } => (
                queue.to_le_bytes().to_vec(),
                self.kernel
                    .xsk_socket(*ifindex, *queue)
                    .map_err(|e| e.to_string())?
                    .to_le_bytes()
                    .to_vec(),
            ),
        };
        let id = self
            .sim
            .map_id(map)
            .ok_or_else(|| format!("no map {map} in the object"))?;
        // One value for a per-CPU map goes to every CPU, as the kernel side does.
        let idx = self.sim.object.map_index(map).expect("map_id found it");
        let def = &self.sim.object.maps[idx];
        let percpu = matches!(
            def.map_type,
            MapType::PercpuArray | MapType::PercpuHash | MapType::LruPercpuHash
        );
        let sim_value = if percpu && sim_value.len() == def.value_size as usize {
            let stride = sim_value.len().next_multiple_of(8);
            let mut all = vec![0u8; stride * self.sim.runner.env.ncpus as usize];
            for chunk in all.chunks_mut(stride) {
                chunk[..sim_value.len()].copy_from_slice(&sim_value);
            }
            all
        } else {
            sim_value
        };
        self.sim
            .runner
            .maps
            .update(id, key, &sim_value, 0)
            .map_err(|e| format!("simulator: map {map}: {e}"))?;
        self.kernel
            .map_update(map, key, &kernel_value)
            .map_err(|e| format!("kernel: {e}"))
    }

    /// Run `prog` on `packet` in both and compare.
    pub fn run(&mut self, prog: &LinkedProgram, packet: &[u8], input: Input) -> PacketComparison {
        let sim = self.sim.run(prog, packet, input).map_err(|e| e.to_string());
        let kernel = self
            .kernel
            .run(&prog.name, packet, &input)
            .map(|k| k.result)
            .map_err(|e| e.to_string());
        let (differences, not_comparable) = compare_runs(prog.prog_type, &sim, &kernel, self.trace);
        PacketComparison {
            sim,
            kernel,
            differences,
            not_comparable,
        }
    }

    /// Both sides' dumps of every comparable map ([`map_dumps`]).
    pub fn map_dumps(
        &self,
        masked: &[(String, std::ops::Range<usize>)],
    ) -> Result<Vec<(String, Dump, Dump)>, String> {
        map_dumps(&self.sim, &self.kernel, masked)
    }

    /// Every map whose contents differ, in words ([`map_differences`]).
    pub fn map_differences(
        &self,
        masked: &[(String, std::ops::Range<usize>)],
    ) -> Result<Vec<String>, String> {
        map_differences(&self.sim, &self.kernel, masked)
    }
}

/// The differences between one run of a program of type `prog_type` in the simulator and in the
/// kernel (either side's error is that side refusing the run), and what the simulator reported
/// that the kernel cannot show. `trace`: compare `bpf_printk` lines (only meaningful when the
/// kernel's were captured).
pub fn compare_runs(
    prog_type: ProgType,
    sim: &Result<RunResult, String>,
    kernel: &Result<RunResult, String>,
    trace: bool,
) -> (Vec<String>, Vec<String>) {
    let mut differences = Vec::new();
    let mut not_comparable = Vec::new();
    match (sim, kernel) {
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => differences.push(format!("the kernel refused it ({e}), we ran it")),
        (Err(e), Ok(_)) => differences.push(format!("the kernel ran it, we refused it ({e})")),
        (Ok(s), Ok(k)) => {
            differences = run_differences(prog_type, s, k, trace);
            if let Some(r) = &s.redirect {
                not_comparable.push(format!("redirect target {r:?}"));
            }
            if let Some(t) = &s.trap {
                not_comparable.push(format!("trap ({t})"));
            }
            if let Some(skb) = &s.skb {
                if skb.tc_classid != 0 {
                    not_comparable.push(format!("tc_classid {:#x}", skb.tc_classid));
                }
            }
        }
    }
    (differences, not_comparable)
}

fn run_differences(prog_type: ProgType, s: &RunResult, k: &RunResult, trace: bool) -> Vec<String> {
    let mut d = Vec::new();
    // The kernel returns the low 32 bits of r0.
    if s.retval as u32 as u64 != k.retval {
        d.push(format!(
            "retval {} here, {} in the kernel",
            crate::run_cmd::action_name(prog_type, s.retval as u32 as u64),
            crate::run_cmd::action_name(prog_type, k.retval)
        ));
    }
    if s.data != k.data {
        let first = s
            .data
            .iter()
            .zip(&k.data)
            .position(|(a, b)| a != b)
            .unwrap_or(s.data.len().min(k.data.len()));
        d.push(format!(
            "output packet differs from byte {first} ({} bytes here, {} in the kernel): {} vs {}",
            s.data.len(),
            k.data.len(),
            hex(&s.data),
            hex(&k.data)
        ));
    }
    if !s.ctx_out.is_empty() && !k.ctx_out.is_empty() && s.ctx_out != k.ctx_out {
        d.push(format!(
            "context out differs in {}",
            ctx_fields_differing(prog_type, &s.ctx_out, &k.ctx_out).join(", ")
        ));
    }
    let records = |r: &RunResult| -> Vec<(String, String)> {
        r.events
            .iter()
            .filter(|e| e.cpu.is_none())
            .map(|e| (e.map.clone(), hex(&e.data)))
            .collect()
    };
    if records(s) != records(k) {
        d.push(format!(
            "ring buffer records {:?} here, {:?} in the kernel",
            records(s),
            records(k)
        ));
    }
    if trace && s.trace != k.trace {
        d.push(format!(
            "bpf_printk {:?} here, {:?} in the kernel",
            s.trace, k.trace
        ));
    }
    d
}

/// Both sides' dumps of every comparable map of an object loaded in each, with `masked` value
/// byte ranges zeroed (times, random numbers): array-like maps list their non-zero entries (and
/// every entry of global data), others all.
pub fn map_dumps(
    sim: &LoadedObject,
    kernel: &KernelRunner,
    masked: &[(String, std::ops::Range<usize>)],
) -> Result<Vec<(String, Dump, Dump)>, String> {
    let mut out = Vec::new();
    for (idx, m) in kernel.object.maps.iter().enumerate() {
        let def = &kernel.parsed.maps[idx];
        if MAPS_NOT_COMPARED.contains(&def.map_type) {
            continue;
        }
        let array_like = matches!(
            def.map_type,
            MapType::Array | MapType::PercpuArray | MapType::Devmap | MapType::Cpumap
        );
        let name = &m.spec().name;
        let kernel_entries = kernel.map_entries(name).map_err(|e| e.to_string())?;
        let id = sim
            .map_id(name)
            .ok_or_else(|| format!("simulator: no map {name}"))?;
        let maps = &sim.runner.maps;
        let sim_entries = if m.is_percpu() {
            maps.entries_percpu(id)
        } else {
            maps.entries(id)
                .map(|es| es.into_iter().map(|(k, v)| (k, vec![v])).collect())
        }
        .map_err(|e| format!("simulator: map {name}: {e}"))?;
        let norm = |entries: Vec<(Vec<u8>, Vec<Vec<u8>>)>| -> Dump {
            entries
                .into_iter()
                .filter(|(_, vs)| {
                    !array_like || name.starts_with('.') || vs.iter().flatten().any(|&b| b != 0)
                })
                .map(|(k, vs)| {
                    let vs = vs
                        .into_iter()
                        .map(|mut v| {
                            for (_, r) in masked.iter().filter(|(m, _)| m == name) {
                                for b in v.iter_mut().take(r.end).skip(r.start) {
                                    *b = 0;
                                }
                            }
                            hex(&v)
                        })
                        .collect();
                    (hex(&k), vs)
                })
                .collect()
        };
        out.push((name.clone(), norm(sim_entries), norm(kernel_entries)));
    }
    Ok(out)
}

/// Every map entry whose contents differ between the two sides, in words.
pub fn map_differences(
    sim: &LoadedObject,
    kernel: &KernelRunner,
    masked: &[(String, std::ops::Range<usize>)],
) -> Result<Vec<String>, String> {
    let mut d = Vec::new();
    for (name, sim, kernel) in map_dumps(sim, kernel, masked)? {
        for key in sim
            .keys()
            .chain(kernel.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            match (sim.get(key), kernel.get(key)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => d.push(format!(
                    "map {name}[{key}]: {a:?} here, {b:?} in the kernel"
                )),
                (Some(a), None) => d.push(format!(
                    "map {name}[{key}]: {a:?} here, absent in the kernel"
                )),
                (None, Some(b)) => d.push(format!(
                    "map {name}[{key}]: absent here, {b:?} in the kernel"
                )),
                (None, None) => {}
            }
        }
    }
    Ok(d)
}
