//! The kernel as an execution engine with the simulator's interface: load an ELF object, run its
//! programs on packets with `BPF_PROG_TEST_RUN` (maps persisting between runs, as in a loaded
//! program), and hand back the simulator's [`RunResult`], plus what only the kernel reports.

use bpfsim_helpers::ctx::skb::SkbMd;
use bpfsim_helpers::run::{Event, Input, RunResult};
use bpfsim_vm::loader::{load_object, Object, ObjectError};
use bpfsim_vm::spec::ProgType as SimProgType;

use crate::error::Errno;
use crate::object::{KernelObject, ObjectLoadError};
use crate::ringbuf::RingbufReader;
use crate::xsk::XskSocket;
use crate::{KernelBpf, TestRunIn};

/// A key and its values (one per CPU for per-CPU maps).
pub type MapEntry = (Vec<u8>, Vec<Vec<u8>>);

/// `sizeof(struct xdp_md)` and `sizeof(struct __sk_buff)`.
pub const XDP_MD_SIZE: usize = 24;
pub const SKB_SIZE: usize = 192;
const TRACE: &str = "/sys/kernel/tracing/trace";
const PRINTK_TAG: &str = "bpf_trace_printk: ";

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Object(#[from] ObjectError),
    #[error("{0}")]
    Load(#[from] ObjectLoadError),
    #[error("no program {0} loaded in the kernel")]
    NoProgram(String),
    #[error("no map {0} in the kernel object")]
    NoMap(String),
    #[error("{what}: {errno}")]
    Sys { what: String, errno: Errno },
}

/// One run in the kernel: the simulator's result type (retval, packet out, ring buffer records,
/// printk lines when captured; no instruction count, trap or redirect target, which the kernel
/// does not report) and the context it handed back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRun {
    pub result: RunResult,
    pub duration_ns: u64,
}

/// A loaded object and what its runs need: ring buffer readers, AF_XDP sockets kept open.
pub struct KernelRunner {
    bpf: KernelBpf,
    pub object: KernelObject,
    pub parsed: Object,
    rings: Vec<(String, RingbufReader)>,
    sockets: Vec<XskSocket>,
    capture_trace: bool,
}

/// `struct xdp_md` for ctx_in: data/data_end as offsets into the data handed in (metadata
/// first), the device fields.
fn xdp_ctx(packet_len: usize, input: &Input) -> Vec<u8> {
    let md = &input.xdp;
    [
        md.meta_len,
        packet_len as u32,
        0,
        md.ingress_ifindex,
        md.rx_queue_index,
        0,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect()
}

/// `struct __sk_buff` with the fields `BPF_PROG_TEST_RUN` accepts in ctx_in; the rest zero.
pub fn skb_ctx(md: &SkbMd) -> Vec<u8> {
    let mut b = vec![0u8; SKB_SIZE];
    let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(8, &md.mark.to_le_bytes());
    put(32, &md.priority.to_le_bytes());
    put(36, &md.ingress_ifindex.to_le_bytes());
    put(40, &md.ifindex.to_le_bytes());
    for (i, c) in md.cb.iter().enumerate() {
        put(48 + 4 * i, &c.to_le_bytes());
    }
    put(152, &md.tstamp.to_le_bytes());
    put(160, &md.wire_len.to_le_bytes());
    put(164, &md.gso_segs.to_le_bytes());
    put(176, &md.gso_size.to_le_bytes());
    put(184, &md.hwtstamp.to_le_bytes());
    b
}

/// The printk messages in the trace buffer.
fn read_trace() -> Vec<String> {
    std::fs::read_to_string(TRACE)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(PRINTK_TAG).map(|(_, m)| m.to_string()))
        .collect()
}

/// How long [`KernelRunner::xsk_socket`] waits for a queue another socket holds.
const XSK_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl KernelRunner {
    /// Parse `elf` with bpfsim's loader and load it in the kernel.
    pub fn load(bpf: &KernelBpf, elf: &[u8]) -> Result<KernelRunner, BackendError> {
        let parsed = load_object(elf)?;
        let object = bpf.load_object(&parsed)?;
        let mut rings = Vec::new();
        for m in object.maps.iter().filter(|m| m.spec().map_type == 27) {
            let r = RingbufReader::new(m).map_err(|errno| BackendError::Sys {
                what: format!("mapping ring buffer {}", m.spec().name),
                errno,
            })?;
            rings.push((m.spec().name.clone(), r));
        }
        Ok(KernelRunner {
            bpf: *bpf,
            object,
            parsed,
            rings,
            sockets: Vec::new(),
            capture_trace: false,
        })
    }

    /// Clear and read the kernel's trace buffer around every run to capture `bpf_printk`
    /// output. Off by default: the buffer is global, and needs tracefs at /sys/kernel/tracing.
    pub fn capture_trace(&mut self, on: bool) -> Result<(), BackendError> {
        if on {
            std::fs::write(TRACE, "").map_err(|e| BackendError::Sys {
                what: format!("clearing {TRACE}"),
                errno: Errno(e.raw_os_error().unwrap_or(0)),
            })?;
        }
        self.capture_trace = on;
        Ok(())
    }

    /// Set `key` of map `name` to `value` (`BPF_ANY`).
    pub fn map_update(&self, name: &str, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        let map = self
            .object
            .map(name)
            .ok_or_else(|| BackendError::NoMap(name.to_string()))?;
        map.update(key, value, 0)
            .map_err(|errno| BackendError::Sys {
                what: format!("updating map {name}"),
                errno,
            })
    }

    /// The descriptor of a loaded program: the value a prog array slot takes.
    pub fn prog_fd(&self, name: &str) -> Result<i32, BackendError> {
        self.object
            .program(name)
            .map(|p| p.fd.raw_fd())
            .ok_or_else(|| BackendError::NoProgram(name.to_string()))
    }

    /// Open an AF_XDP socket bound to `queue` of `ifindex`, kept as long as the runner; its
    /// descriptor is the value an XSKMAP slot takes. A queue another socket holds is waited for
    /// up to `XSK_BUSY_WAIT` (20 s).
    pub fn xsk_socket(&mut self, ifindex: u32, queue: u32) -> Result<i32, BackendError> {
        // Another runner (a concurrent test run) may hold the queue for the length of its runs.
        let s = XskSocket::bind_waiting(ifindex, queue, XSK_BUSY_WAIT).map_err(|errno| {
            BackendError::Sys {
                what: format!("binding an AF_XDP socket to ifindex {ifindex} queue {queue}"),
                errno,
            }
        })?;
        let fd = s.raw_fd();
        self.sockets.push(s);
        Ok(fd)
    }

    /// Run program `name` once on `packet`. The context handed in is built from `input` as the
    /// simulator reads it: `xdp_md` always for XDP, `__sk_buff` when `input.skb` is set. An errno
    /// is the kernel refusing the run (a packet too short, a program type it cannot test-run).
    pub fn run(
        &mut self,
        name: &str,
        packet: &[u8],
        input: &Input,
    ) -> Result<KernelRun, BackendError> {
        self.run_repeat(name, packet, input, 1)
    }

    /// [`KernelRunner::run`] with `BPF_PROG_TEST_RUN`'s `repeat`: the kernel runs the program
    /// `repeat` times and reports the last result and the average duration.
    pub fn run_repeat(
        &mut self,
        name: &str,
        packet: &[u8],
        input: &Input,
        repeat: u32,
    ) -> Result<KernelRun, BackendError> {
        let prog = self
            .object
            .program(name)
            .ok_or_else(|| BackendError::NoProgram(name.to_string()))?;
        let xdp = prog.prog_type.0 == SimProgType::Xdp.id();
        let ctx_in = if xdp {
            Some(xdp_ctx(packet.len(), input))
        } else {
            input.skb.as_ref().map(skb_ctx)
        };
        // Asking for a context out makes the kernel build one, which changes what the program
        // sees (wire_len); without an skb context in, ask for none.
        let ctx_out_size = match (xdp, &ctx_in) {
            (true, _) => XDP_MD_SIZE as u32,
            (false, Some(_)) => SKB_SIZE as u32,
            (false, None) => 0,
        };
        if self.capture_trace {
            let _ = std::fs::write(TRACE, "");
        }
        let out = self
            .bpf
            .test_run_with(
                &prog.fd,
                &TestRunIn {
                    data: packet,
                    ctx_in: ctx_in.as_deref(),
                    ctx_out_size,
                    repeat,
                    ..TestRunIn::default()
                },
            )
            .map_err(|errno| BackendError::Sys {
                what: format!("BPF_PROG_TEST_RUN of {name}"),
                errno,
            })?;
        let trace = if self.capture_trace {
            read_trace()
        } else {
            Vec::new()
        };
        let mut events = Vec::new();
        for (map, r) in &mut self.rings {
            events.extend(r.drain().into_iter().map(|data| Event {
                map: map.clone(),
                cpu: None,
                data,
            }));
        }
        Ok(KernelRun {
            result: RunResult {
                retval: out.retval.into(),
                data: out.data_out,
                redirect: None,
                trace: trace.into(),
                events,
                insns: 0,
                trap: None,
                skb: None,
                ctx_out: out.ctx_out,
                tail_calls: Vec::new(),
                duration_ns: out.duration_ns,
            },
            duration_ns: out.duration_ns,
        })
    }

    /// A map's entries as `(key, values)`, values one per CPU for per-CPU maps, in the kernel's
    /// iteration order.
    pub fn map_entries(&self, name: &str) -> Result<Vec<MapEntry>, BackendError> {
        let map = self
            .object
            .map(name)
            .ok_or_else(|| BackendError::NoMap(name.to_string()))?;
        let sys = |errno| BackendError::Sys {
            what: format!("reading map {name}"),
            errno,
        };
        let mut out = Vec::new();
        for k in map.keys().map_err(sys)? {
            if let Some(v) = map.lookup(&k).map_err(sys)? {
                out.push((k, v));
            }
        }
        Ok(out)
    }
}
