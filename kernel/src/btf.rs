//! `BPF_BTF_LOAD`: an object's type information in the kernel, which program loads reference for
//! `func_info` and map creation for key and value types.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{Errno, LoadFailure};
use crate::sys::{self, addr, BtfLoadAttr, Cmd};
use crate::KernelBpf;

const LOG_SIZE: usize = 1 << 20;

/// Loaded BTF; closed on drop.
#[derive(Debug)]
pub struct KernelBtf {
    fd: OwnedFd,
}

impl KernelBtf {
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl KernelBpf {
    /// Load raw BTF (as [`bpfsim_vm::loader::Object::kernel_btf`] gives it). On failure the
    /// kernel's BTF verifier log says why.
    pub fn btf_load(&self, raw: &[u8]) -> Result<KernelBtf, LoadFailure> {
        let size = u32::try_from(raw.len()).map_err(|_| LoadFailure {
            errno: Errno::E2BIG,
            log: String::new(),
        })?;
        let once = |log: Option<&mut [u8]>| {
            let mut attr = BtfLoadAttr {
                btf: addr(raw.as_ptr()),
                btf_size: size,
                ..BtfLoadAttr::default()
            };
            if let Some(buf) = log {
                attr.btf_log_buf = addr(buf.as_mut_ptr());
                attr.btf_log_size = buf.len() as u32;
                attr.btf_log_level = 1;
            }
            // SAFETY: `raw` is readable for `btf_size` bytes and the log buffer (if any) writable
            // for `btf_log_size` bytes; both outlive the call.
            unsafe { sys::bpf(Cmd::BtfLoad, &mut attr) }
        };
        match once(None) {
            Ok(fd) => Ok(KernelBtf {
                fd: sys::owned_fd(fd),
            }),
            Err(errno) => {
                let mut buf = vec![0u8; LOG_SIZE];
                let _ = once(Some(&mut buf));
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                Err(LoadFailure {
                    errno,
                    log: String::from_utf8_lossy(&buf[..end]).into_owned(),
                })
            }
        }
    }
}
