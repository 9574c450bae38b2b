//! A minimal, safe wrapper over the bpf(2) commands bpfsim needs: program load and test run,
//! array maps. Not a loader: no ELF, no BTF, no relocations.

use crate::error::{Errno, LoadFailure, Unavailable};

/// A `BPF_PROG_TYPE_*` value (`enum bpf_prog_type`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ProgType(pub u32);

impl ProgType {
    pub const SOCKET_FILTER: ProgType = ProgType(1);
    pub const SCHED_CLS: ProgType = ProgType(3);
    pub const SCHED_ACT: ProgType = ProgType(4);
    pub const XDP: ProgType = ProgType(6);
    pub const CGROUP_SKB: ProgType = ProgType(8);
}

/// XDP actions a program returns.
pub mod xdp {
    pub const ABORTED: u32 = 0;
    pub const DROP: u32 = 1;
    pub const PASS: u32 = 2;
}

#[cfg(target_os = "linux")]
type Fd = std::os::fd::OwnedFd;
#[cfg(not(target_os = "linux"))]
type Fd = Never;
/// The type of values that cannot exist: the handles of a platform without bpf(2).
#[cfg(not(target_os = "linux"))]
#[derive(Clone, Copy, Debug)]
enum Never {}

/// Proof that bpf(2) works here, obtained from [`KernelBpf::probe`]; every kernel operation is
/// a method of it.
#[derive(Clone, Copy, Debug)]
pub struct KernelBpf {
    #[cfg(target_os = "linux")]
    _token: (),
    #[cfg(not(target_os = "linux"))]
    never: Never,
}

/// A loaded program; its file descriptor is closed on drop.
#[derive(Debug)]
pub struct ProgFd {
    fd: Fd,
}

impl ProgFd {
    /// The raw file descriptor (still owned by `self`).
    pub fn raw_fd(&self) -> i32 {
        #[cfg(target_os = "linux")]
        return std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        #[cfg(not(target_os = "linux"))]
        match self.fd {}
    }
}

/// A `BPF_MAP_TYPE_ARRAY` map with `u32` keys `0..max_entries`; its file descriptor is closed on
/// drop. Programs reference it with `lddw rN, map_fd(raw_fd)` (`Imm64::MapFd`).
#[derive(Debug)]
pub struct ArrayMap {
    fd: Fd,
    value_size: u32,
    max_entries: u32,
}

impl ArrayMap {
    /// The raw file descriptor (still owned by `self`).
    pub fn raw_fd(&self) -> i32 {
        #[cfg(target_os = "linux")]
        return std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        #[cfg(not(target_os = "linux"))]
        match self.fd {}
    }

    pub fn value_size(&self) -> u32 {
        self.value_size
    }

    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }
}

/// The result of `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOut {
    /// The program's return value (the low 32 bits of `r0`).
    pub retval: u32,
    /// The packet after the run (for XDP it starts at `data_meta`).
    pub data_out: Vec<u8>,
    /// The context after the run (`xdp_md`, `__sk_buff`), when one was asked for.
    pub ctx_out: Vec<u8>,
    /// The kernel's average duration of one run, in nanoseconds.
    pub duration_ns: u64,
}

/// What `BPF_PROG_LOAD` gets besides the bytecode.
#[derive(Clone, Copy, Debug)]
pub struct ProgSpec<'a> {
    pub prog_type: ProgType,
    /// Raw bytecode, 8 bytes per slot.
    pub insns: &'a [u8],
    pub license: &'a str,
    /// `enum bpf_attach_type` (0 when the type needs none).
    pub expected_attach_type: u32,
    /// `BPF_F_*` program flags (`BPF_F_XDP_HAS_FRAGS`, ...).
    pub flags: u32,
    /// The program's name; cut to the kernel's 15 characters of `[A-Za-z0-9_.]`.
    pub name: &'a str,
    /// The map fds that `BPF_PSEUDO_MAP_IDX`/`_IDX_VALUE` instructions index. The kernel reads
    /// the slot an instruction names without knowing the slice's length, so the load refuses
    /// (EINVAL) bytecode whose index is out of range.
    pub fd_array: &'a [i32],
    /// The object's BTF (`BPF_BTF_LOAD`), for `func_info`.
    pub btf_fd: Option<i32>,
    /// `struct bpf_func_info` records: (first instruction, BTF `FUNC` type id) of every
    /// function in the program, sorted; what callbacks and global functions need.
    pub func_info: &'a [[u32; 2]],
    /// `struct bpf_line_info` records: (first instruction, file name and line string offsets
    /// in the BTF, line << 10 | column), sorted; sent with `func_info` only. They give the
    /// verifier log its source lines.
    pub line_info: &'a [[u32; 4]],
    /// The attach target's type id in the kernel's BTF (vmlinux), which tracing, LSM and
    /// iterator programs must give (0: none).
    pub attach_btf_id: u32,
}

impl<'a> ProgSpec<'a> {
    pub fn new(prog_type: ProgType, insns: &'a [u8], license: &'a str) -> ProgSpec<'a> {
        ProgSpec {
            prog_type,
            insns,
            license,
            expected_attach_type: 0,
            flags: 0,
            name: "",
            fd_array: &[],
            btf_fd: None,
            func_info: &[],
            line_info: &[],
            attach_btf_id: 0,
        }
    }
}

/// The input of `BPF_PROG_TEST_RUN`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestRunIn<'a> {
    pub data: &'a [u8],
    /// The context handed in (`struct xdp_md`, `struct __sk_buff`), if any.
    pub ctx_in: Option<&'a [u8]>,
    /// Room for the context out (0: none asked for).
    pub ctx_out_size: u32,
    /// Runs (0 means 1); the duration is their average.
    pub repeat: u32,
    /// `BPF_F_TEST_RUN_ON_CPU`, `BPF_F_TEST_XDP_LIVE_FRAMES`, ...
    pub flags: u32,
    /// The CPU, with `BPF_F_TEST_RUN_ON_CPU`.
    pub cpu: u32,
}

/// `r0 = 0; exit`: the program `probe` loads.
#[cfg(target_os = "linux")]
fn trivial_program() -> Vec<u8> {
    use bpfsim_vm::isa::{encode, AluOp, Insn, Reg, Source, Width};
    encode(&[
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Source::Imm(0),
        },
        Insn::Exit,
    ])
}

impl KernelBpf {
    /// Find out whether bpf(2) is usable here by loading `r0 = 0; exit` as an XDP program, test
    /// running it and creating an array map: exactly what [`KernelBpf::run_conformance_in_kernel`]
    /// needs. The error is a one-line reason (not Linux, ENOSYS, EPERM/EACCES for an unprivileged
    /// user, ...).
    pub fn probe() -> Result<KernelBpf, Unavailable> {
        #[cfg(not(target_os = "linux"))]
        return Err(Unavailable::new("not Linux"));
        #[cfg(target_os = "linux")]
        {
            let k = KernelBpf { _token: () };
            let prog = k
                .prog_load(ProgType::XDP, &trivial_program(), "GPL", 1)
                .map_err(|f| {
                    let mut u = unavailable(f.errno, "loading an XDP program");
                    if let Some(r) = f.reason() {
                        u.reason.push_str(&format!(" (verifier: {r})"));
                    }
                    u
                })?;
            let out = k
                .test_run(&prog, &[0u8; 64], 1)
                .map_err(|e| unavailable(e, "BPF_PROG_TEST_RUN"))?;
            if out.retval != xdp::ABORTED {
                return Err(Unavailable::new(format!(
                    "BPF_PROG_TEST_RUN of `r0 = 0; exit` returned {} instead of 0",
                    out.retval
                )));
            }
            // `struct xdp_md` in ctx_in (Linux 5.13): every XDP comparison passes one.
            let md = xdp_md_probe_ctx(64);
            k.test_run_with(
                &prog,
                &TestRunIn {
                    data: &[0u8; 64],
                    ctx_in: Some(&md),
                    ctx_out_size: md.len() as u32,
                    ..TestRunIn::default()
                },
            )
            .map_err(xdp_ctx_unsupported)?;
            k.array_map_create(8, 1)
                .map_err(|e| unavailable(e, "creating an array map"))?;
            Ok(k)
        }
    }

    /// Load `insns` (raw bytecode, 8 bytes per slot) as a program of `prog_type`. The first
    /// attempt goes without a verifier log (with a log buffer too small, 6.x kernels fail even a
    /// valid program with ENOSPC); if it fails, the load is repeated with a log of `log_level`
    /// (at least 1) to capture the verifier's explanation. The errno is the first attempt's.
    pub fn prog_load(
        &self,
        prog_type: ProgType,
        insns: &[u8],
        license: &str,
        log_level: u32,
    ) -> Result<ProgFd, LoadFailure> {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (prog_type, insns, license, log_level);
            match self.never {}
        }
        self.prog_load_spec(&ProgSpec::new(prog_type, insns, license), log_level)
    }

    /// [`KernelBpf::prog_load`] with every attribute of [`ProgSpec`]: attach type, flags, name
    /// and the map fds that `BPF_PSEUDO_MAP_IDX` instructions index.
    pub fn prog_load_spec(
        &self,
        spec: &ProgSpec<'_>,
        log_level: u32,
    ) -> Result<ProgFd, LoadFailure> {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (spec, log_level);
            match self.never {}
        }
        #[cfg(target_os = "linux")]
        imp::prog_load(spec, log_level)
    }

    /// Load with a verifier log of `log_level` (at least 1) whatever the outcome, and return
    /// the log with the result: what a comparison of verifier logs needs.
    pub fn prog_load_logged(
        &self,
        prog_type: ProgType,
        insns: &[u8],
        license: &str,
        log_level: u32,
    ) -> (Result<ProgFd, Errno>, String) {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (prog_type, insns, license, log_level);
            match self.never {}
        }
        self.prog_load_spec_logged(&ProgSpec::new(prog_type, insns, license), log_level)
    }

    /// [`KernelBpf::prog_load_logged`] with every attribute of [`ProgSpec`].
    pub fn prog_load_spec_logged(
        &self,
        spec: &ProgSpec<'_>,
        log_level: u32,
    ) -> (Result<ProgFd, Errno>, String) {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (spec, log_level);
            match self.never {}
        }
        #[cfg(target_os = "linux")]
        imp::prog_load_logged(spec, log_level)
    }

    /// Run `prog` once per `repeat` (0 means 1) on a copy of `data_in` with `BPF_PROG_TEST_RUN`.
    pub fn test_run(
        &self,
        prog: &ProgFd,
        data_in: &[u8],
        repeat: u32,
    ) -> Result<TestRunOut, Errno> {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (prog, data_in, repeat);
            match self.never {}
        }
        self.test_run_with(
            prog,
            &TestRunIn {
                data: data_in,
                repeat,
                ..TestRunIn::default()
            },
        )
    }

    /// `BPF_PROG_TEST_RUN` with a context in and out, flags and a CPU.
    pub fn test_run_with(&self, prog: &ProgFd, input: &TestRunIn<'_>) -> Result<TestRunOut, Errno> {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (prog, input);
            match self.never {}
        }
        #[cfg(target_os = "linux")]
        imp::test_run(prog, input)
    }

    /// Create a `BPF_MAP_TYPE_ARRAY` map of `max_entries` zeroed values of `value_size` bytes.
    pub fn array_map_create(&self, value_size: u32, max_entries: u32) -> Result<ArrayMap, Errno> {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (value_size, max_entries);
            match self.never {}
        }
        #[cfg(target_os = "linux")]
        imp::array_map_create(value_size, max_entries)
    }

    /// Set element `index` to `value`, which must be exactly `value_size` bytes (EINVAL otherwise).
    pub fn array_map_update(&self, map: &ArrayMap, index: u32, value: &[u8]) -> Result<(), Errno> {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (map, index, value);
            match self.never {}
        }
        #[cfg(target_os = "linux")]
        imp::array_map_update(map, index, value)
    }

    /// The `value_size` bytes of element `index`.
    pub fn array_map_lookup(&self, map: &ArrayMap, index: u32) -> Result<Vec<u8>, Errno> {
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (map, index);
            match self.never {}
        }
        #[cfg(target_os = "linux")]
        imp::array_map_lookup(map, index)
    }
}

/// The one-line reason for a failed probe step.
#[cfg(target_os = "linux")]
/// `struct xdp_md` for a packet of `len` bytes without metadata: data 0, data_end `len`.
#[cfg(target_os = "linux")]
fn xdp_md_probe_ctx(len: u32) -> [u8; 24] {
    let mut md = [0u8; 24];
    md[4..8].copy_from_slice(&len.to_le_bytes());
    md
}

/// Why the backend is unavailable when the kernel refuses an XDP context in
/// `BPF_PROG_TEST_RUN` although it runs XDP programs: before Linux 5.13 it takes none (EINVAL).
fn xdp_ctx_unsupported(e: Errno) -> Unavailable {
    match e {
        Errno::EINVAL => Unavailable::new(
            "the kernel is too old for XDP ctx_in: BPF_PROG_TEST_RUN refused a struct xdp_md \
             (EINVAL; it needs Linux 5.13 or later)",
        ),
        e => unavailable(e, "BPF_PROG_TEST_RUN with a struct xdp_md"),
    }
}

fn unavailable(e: Errno, what: &str) -> Unavailable {
    match e {
        Errno::ENOSYS => Unavailable::new(format!(
            "bpf(2) is not implemented (ENOSYS) {what}: kernel without CONFIG_BPF_SYSCALL, or a \
             seccomp filter"
        )),
        Errno::EPERM | Errno::EACCES => {
            let sysctl = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
                .map(|s| format!(", kernel.unprivileged_bpf_disabled = {}", s.trim()))
                .unwrap_or_default();
            Unavailable::new(format!(
                "bpf(2) denied ({}) {what} as uid {}: needs CAP_BPF + CAP_NET_ADMIN (root has them \
                 unless they were dropped){sysctl}",
                e.name().unwrap_or("EPERM"),
                crate::sys::euid(),
            ))
        }
        _ => Unavailable::new(format!("bpf(2) failed {what}: {e}")),
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ffi::CString;

    use super::{ArrayMap, ProgFd, ProgSpec, TestRunIn, TestRunOut};
    use crate::error::{Errno, LoadFailure};
    use crate::sys::{
        self, addr, Cmd, MapCreateAttr, MapElemAttr, ProgLoadAttr, TestRunAttr, OBJ_NAME_LEN,
    };

    /// Initial verifier-log buffer, and the most the retry will ask for (the kernel's limit
    /// before 5.2 was 16 MiB - 1; later ones allow more, but no log we need is that long).
    const LOG_START: usize = 64 * 1024;
    const LOG_MAX: usize = (16 << 20) - 1;
    /// The verifier returns EAGAIN when interrupted by a signal; libbpf retries 5 times.
    const EAGAIN_RETRIES: usize = 5;

    fn failure(errno: Errno, log: impl Into<String>) -> LoadFailure {
        LoadFailure {
            errno,
            log: log.into(),
        }
    }

    /// One BPF_PROG_LOAD; `log` is the buffer for the verifier log (level 0 without it).
    fn load_once(
        spec: &ProgSpec<'_>,
        license: &CString,
        log: Option<(&mut [u8], u32)>,
    ) -> (Result<ProgFd, Errno>, u32) {
        let mut attr = ProgLoadAttr {
            prog_type: spec.prog_type.0,
            insn_cnt: (spec.insns.len() / 8) as u32,
            insns: addr(spec.insns.as_ptr()),
            license: addr(license.as_ptr()),
            expected_attach_type: spec.expected_attach_type,
            prog_flags: spec.flags,
            attach_btf_id: spec.attach_btf_id,
            ..ProgLoadAttr::default()
        };
        if !spec.fd_array.is_empty() {
            attr.fd_array = addr(spec.fd_array.as_ptr());
        }
        if let (Some(btf), false) = (spec.btf_fd, spec.func_info.is_empty()) {
            attr.prog_btf_fd = btf as u32;
            attr.func_info_rec_size = 8;
            attr.func_info = addr(spec.func_info.as_ptr());
            attr.func_info_cnt = spec.func_info.len() as u32;
            if !spec.line_info.is_empty() {
                attr.line_info_rec_size = 16;
                attr.line_info = addr(spec.line_info.as_ptr());
                attr.line_info_cnt = spec.line_info.len() as u32;
            }
        }
        // The kernel accepts [A-Za-z0-9_.] in object names, at most 15 bytes.
        for (slot, b) in attr.prog_name[..OBJ_NAME_LEN - 1].iter_mut().zip(
            spec.name
                .bytes()
                .filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.'),
        ) {
            *slot = b;
        }
        if let Some((buf, level)) = log {
            buf[0] = 0;
            attr.log_level = level;
            attr.log_size = buf.len() as u32;
            attr.log_buf = addr(buf.as_mut_ptr());
        }
        let mut result = Err(Errno::EAGAIN);
        for _ in 0..EAGAIN_RETRIES {
            // SAFETY: `insns` holds `insn_cnt` 8-byte instructions, `license` is NUL-terminated,
            // `fd_array` (if set) holds every index the instructions name (`check_bytecode`),
            // `func_info` holds `func_info_cnt` 8-byte records, `line_info` `line_info_cnt`
            // 16-byte ones,
            // and the log buffer (if any) is writable for `log_size` bytes; all outlive the call.
            result = unsafe { sys::bpf(Cmd::ProgLoad, &mut attr) };
            if result != Err(Errno::EAGAIN) {
                break;
            }
        }
        (
            result.map(|fd| ProgFd {
                fd: sys::owned_fd(fd),
            }),
            attr.log_true_size,
        )
    }

    /// `BPF_PSEUDO_MAP_IDX` and `BPF_PSEUDO_MAP_IDX_VALUE`: `lddw` sources that index `fd_array`.
    const PSEUDO_MAP_IDX: u8 = 5;
    const PSEUDO_MAP_IDX_VALUE: u8 = 6;

    fn check_bytecode(insns: &[u8], fd_array: &[i32]) -> Result<(), LoadFailure> {
        if insns.is_empty() || insns.len() % 8 != 0 || insns.len() / 8 > u32::MAX as usize {
            return Err(failure(
                Errno::EINVAL,
                format!(
                    "bytecode of {} bytes is not a whole number of 8-byte instructions",
                    insns.len()
                ),
            ));
        }
        for (pc, insn) in insns.chunks_exact(8).enumerate() {
            let src = insn[1] >> 4;
            if insn[0] == 0x18 && (src == PSEUDO_MAP_IDX || src == PSEUDO_MAP_IDX_VALUE) {
                let idx = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
                if usize::try_from(idx).map_or(true, |i| i >= fd_array.len()) {
                    return Err(failure(
                        Errno::EINVAL,
                        format!(
                            "instruction {pc}: map index {idx} is outside fd_array ({} maps)",
                            fd_array.len()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn prog_load(spec: &ProgSpec<'_>, log_level: u32) -> Result<ProgFd, LoadFailure> {
        check_bytecode(spec.insns, spec.fd_array)?;
        let Ok(license) = CString::new(spec.license) else {
            return Err(failure(Errno::EINVAL, "license contains a NUL byte"));
        };
        let errno = match load_once(spec, &license, None).0 {
            Ok(fd) => return Ok(fd),
            Err(e) => e,
        };
        match load_with_log(spec, &license, log_level.max(1)) {
            // Loaded on the second attempt (a transient failure the first time).
            (Ok(fd), _) => Ok(fd),
            (Err(_), log) => Err(failure(errno, log)),
        }
    }

    /// One load with a verifier log of `level`, growing the buffer until the log fits.
    fn load_with_log(
        spec: &ProgSpec<'_>,
        license: &CString,
        level: u32,
    ) -> (Result<ProgFd, Errno>, String) {
        let mut size = LOG_START;
        loop {
            let mut buf = vec![0u8; size];
            let (result, true_size) = load_once(spec, license, Some((&mut buf, level)));
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let log = String::from_utf8_lossy(&buf[..end]).into_owned();
            match result {
                Err(Errno::ENOSPC) if size < LOG_MAX => {
                    size = (true_size as usize).max(size * 2).min(LOG_MAX);
                }
                result => return (result, log),
            }
        }
    }

    pub(super) fn prog_load_logged(
        spec: &ProgSpec<'_>,
        log_level: u32,
    ) -> (Result<ProgFd, Errno>, String) {
        if check_bytecode(spec.insns, spec.fd_array).is_err() {
            return (Err(Errno::EINVAL), String::new());
        }
        let Ok(license) = CString::new(spec.license) else {
            return (Err(Errno::EINVAL), String::new());
        };
        load_with_log(spec, &license, log_level.max(1))
    }

    pub(super) fn test_run(prog: &ProgFd, input: &TestRunIn<'_>) -> Result<TestRunOut, Errno> {
        let data_in = input.data;
        let size_in = u32::try_from(data_in.len()).map_err(|_| Errno::E2BIG)?;
        let ctx_size_in =
            u32::try_from(input.ctx_in.map_or(0, <[u8]>::len)).map_err(|_| Errno::E2BIG)?;
        // Room for what XDP's adjust_head/tail can add; on ENOSPC the kernel reports the size.
        let mut cap = data_in.len() + 4096;
        let mut ctx_out = vec![0u8; input.ctx_out_size as usize];
        loop {
            let mut out = vec![0u8; cap];
            let mut attr = TestRunAttr {
                prog_fd: prog.raw_fd() as u32,
                data_size_in: size_in,
                data_size_out: cap as u32,
                data_in: addr(data_in.as_ptr()),
                data_out: addr(out.as_mut_ptr()),
                repeat: input.repeat,
                ctx_size_in,
                ctx_in: input.ctx_in.map_or(0, |c| addr(c.as_ptr())),
                ctx_size_out: input.ctx_out_size,
                ctx_out: if ctx_out.is_empty() {
                    0
                } else {
                    addr(ctx_out.as_mut_ptr())
                },
                flags: input.flags,
                cpu: input.cpu,
                ..TestRunAttr::default()
            };
            // SAFETY: `data_in` and `ctx_in` are readable for their sizes, `out` and `ctx_out`
            // writable for `data_size_out` and `ctx_size_out` bytes; all outlive the call.
            match unsafe { sys::bpf(Cmd::ProgTestRun, &mut attr) } {
                Ok(_) => {
                    out.truncate((attr.data_size_out as usize).min(cap));
                    ctx_out.truncate((attr.ctx_size_out as usize).min(ctx_out.len()));
                    return Ok(TestRunOut {
                        retval: attr.retval,
                        data_out: out,
                        ctx_out,
                        duration_ns: attr.duration.into(),
                    });
                }
                Err(Errno::ENOSPC) if attr.data_size_out as usize > cap => {
                    cap = attr.data_size_out as usize;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn array_map_create(value_size: u32, max_entries: u32) -> Result<ArrayMap, Errno> {
        let mut attr = MapCreateAttr {
            map_type: sys::MAP_TYPE_ARRAY,
            key_size: 4,
            value_size,
            max_entries,
            ..MapCreateAttr::default()
        };
        attr.map_name[..6].copy_from_slice(b"bpfsim");
        // SAFETY: BPF_MAP_CREATE with no BTF and no inner map reads only the integers of `attr`.
        let fd = unsafe { sys::bpf(Cmd::MapCreate, &mut attr) }?;
        Ok(ArrayMap {
            fd: sys::owned_fd(fd),
            value_size,
            max_entries,
        })
    }

    pub(super) fn array_map_update(map: &ArrayMap, index: u32, value: &[u8]) -> Result<(), Errno> {
        if value.len() != map.value_size as usize {
            return Err(Errno::EINVAL);
        }
        let key = index;
        let mut attr = MapElemAttr {
            map_fd: map.raw_fd() as u32,
            key: addr(&key),
            value: addr(value.as_ptr()),
            flags: sys::BPF_ANY,
            ..MapElemAttr::default()
        };
        // SAFETY: the key is a readable u32 (the map's key_size is 4) and `value` is readable for
        // the map's `value_size` bytes (checked above); both outlive the call.
        unsafe { sys::bpf(Cmd::MapUpdateElem, &mut attr) }?;
        Ok(())
    }

    pub(super) fn array_map_lookup(map: &ArrayMap, index: u32) -> Result<Vec<u8>, Errno> {
        let key = index;
        let mut value = vec![0u8; map.value_size as usize];
        let mut attr = MapElemAttr {
            map_fd: map.raw_fd() as u32,
            key: addr(&key),
            value: addr(value.as_mut_ptr()),
            ..MapElemAttr::default()
        };
        // SAFETY: the key is a readable u32 and `value` is writable for the map's `value_size`
        // bytes (a plain, not per-CPU, array map copies exactly that much); both outlive the call.
        unsafe { sys::bpf(Cmd::MapLookupElem, &mut attr) }?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_xdp_ctx_in_is_named_too_old() {
        let u = xdp_ctx_unsupported(Errno::EINVAL);
        assert!(u.reason.contains("too old for XDP ctx_in"), "{}", u.reason);
        assert!(!u.reason.contains('\n'));
        // Any other failure keeps its errno in the reason.
        let u = xdp_ctx_unsupported(Errno::ENOMEM);
        assert!(u.reason.contains("struct xdp_md"), "{}", u.reason);
        assert!(!u.reason.contains("too old"), "{}", u.reason);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_probe_ctx_is_what_the_kernel_takes() {
        let Ok(k) = KernelBpf::probe() else {
            eprintln!("skipped: bpf(2) unavailable");
            return;
        };
        let prog = k
            .prog_load(ProgType::XDP, &trivial_program(), "GPL", 1)
            .expect("the probe loaded it");
        let md = xdp_md_probe_ctx(60);
        let mut out = [0u8; 24];
        let r = k
            .test_run_with(
                &prog,
                &TestRunIn {
                    data: &[0u8; 60],
                    ctx_in: Some(&md),
                    ctx_out_size: 24,
                    ..TestRunIn::default()
                },
            )
            .expect("test run with xdp_md");
        out[..r.ctx_out.len()].copy_from_slice(&r.ctx_out);
        assert_eq!(out, md, "data 0, data_end 60 come back as given");
    }
}
