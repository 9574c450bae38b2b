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
#[derive(Debug)]
enum Never {}

/// Proof that bpf(2) works here, obtained from [`KernelBpf::probe`]; every kernel operation is
/// a method of it.
#[derive(Debug)]
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
    /// The kernel's average duration of one run, in nanoseconds.
    pub duration_ns: u64,
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
        #[cfg(target_os = "linux")]
        imp::prog_load(prog_type, insns, license, log_level)
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
        #[cfg(target_os = "linux")]
        imp::prog_load_logged(prog_type, insns, license, log_level)
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
        #[cfg(target_os = "linux")]
        imp::test_run(prog, data_in, repeat)
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

    use super::{ArrayMap, ProgFd, ProgType, TestRunOut};
    use crate::error::{Errno, LoadFailure};
    use crate::sys::{self, addr, Cmd, MapCreateAttr, MapElemAttr, ProgLoadAttr, TestRunAttr};

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
        prog_type: ProgType,
        insns: &[u8],
        license: &CString,
        log: Option<(&mut [u8], u32)>,
    ) -> (Result<ProgFd, Errno>, u32) {
        let mut attr = ProgLoadAttr {
            prog_type: prog_type.0,
            insn_cnt: (insns.len() / 8) as u32,
            insns: addr(insns.as_ptr()),
            license: addr(license.as_ptr()),
            ..ProgLoadAttr::default()
        };
        if let Some((buf, level)) = log {
            buf[0] = 0;
            attr.log_level = level;
            attr.log_size = buf.len() as u32;
            attr.log_buf = addr(buf.as_mut_ptr());
        }
        let mut result = Err(Errno::EAGAIN);
        for _ in 0..EAGAIN_RETRIES {
            // SAFETY: `insns` holds `insn_cnt` 8-byte instructions, `license` is NUL-terminated,
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

    pub(super) fn prog_load(
        prog_type: ProgType,
        insns: &[u8],
        license: &str,
        log_level: u32,
    ) -> Result<ProgFd, LoadFailure> {
        if insns.is_empty() || insns.len() % 8 != 0 || insns.len() / 8 > u32::MAX as usize {
            return Err(failure(
                Errno::EINVAL,
                format!(
                    "bytecode of {} bytes is not a whole number of 8-byte instructions",
                    insns.len()
                ),
            ));
        }
        let Ok(license) = CString::new(license) else {
            return Err(failure(Errno::EINVAL, "license contains a NUL byte"));
        };
        let errno = match load_once(prog_type, insns, &license, None).0 {
            Ok(fd) => return Ok(fd),
            Err(e) => e,
        };
        match load_with_log(prog_type, insns, &license, log_level.max(1)) {
            // Loaded on the second attempt (a transient failure the first time).
            (Ok(fd), _) => Ok(fd),
            (Err(_), log) => Err(failure(errno, log)),
        }
    }

    /// One load with a verifier log of `level`, growing the buffer until the log fits.
    fn load_with_log(
        prog_type: ProgType,
        insns: &[u8],
        license: &CString,
        level: u32,
    ) -> (Result<ProgFd, Errno>, String) {
        let mut size = LOG_START;
        loop {
            let mut buf = vec![0u8; size];
            let (result, true_size) = load_once(prog_type, insns, license, Some((&mut buf, level)));
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
        prog_type: ProgType,
        insns: &[u8],
        license: &str,
        log_level: u32,
    ) -> (Result<ProgFd, Errno>, String) {
        if insns.is_empty() || insns.len() % 8 != 0 {
            return (Err(Errno::EINVAL), String::new());
        }
        let Ok(license) = CString::new(license) else {
            return (Err(Errno::EINVAL), String::new());
        };
        load_with_log(prog_type, insns, &license, log_level.max(1))
    }

    pub(super) fn test_run(
        prog: &ProgFd,
        data_in: &[u8],
        repeat: u32,
    ) -> Result<TestRunOut, Errno> {
        let size_in = u32::try_from(data_in.len()).map_err(|_| Errno::E2BIG)?;
        // Room for what XDP's adjust_head/tail can add; on ENOSPC the kernel reports the size.
        let mut cap = data_in.len() + 4096;
        loop {
            let mut out = vec![0u8; cap];
            let mut attr = TestRunAttr {
                prog_fd: prog.raw_fd() as u32,
                data_size_in: size_in,
                data_size_out: cap as u32,
                data_in: addr(data_in.as_ptr()),
                data_out: addr(out.as_mut_ptr()),
                repeat,
                ..TestRunAttr::default()
            };
            // SAFETY: `data_in` is readable for `data_size_in` bytes and `out` writable for
            // `data_size_out` bytes; no context buffers are passed; both outlive the call.
            match unsafe { sys::bpf(Cmd::ProgTestRun, &mut attr) } {
                Ok(_) => {
                    out.truncate((attr.data_size_out as usize).min(cap));
                    return Ok(TestRunOut {
                        retval: attr.retval,
                        data_out: out,
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
