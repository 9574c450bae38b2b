//! The smallest AF_XDP socket an `XSKMAP` slot accepts: a 16-frame UMEM, fill, completion and RX
//! rings, bound in copy mode to one queue of one interface.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::Errno;

const AF_XDP: i32 = 44;
const SOL_XDP: i32 = 283;
const XDP_RX_RING: i32 = 2;
const XDP_UMEM_REG: i32 = 4;
const XDP_UMEM_FILL_RING: i32 = 5;
const XDP_UMEM_COMPLETION_RING: i32 = 6;
const XDP_COPY: u16 = 1 << 1;
const FRAMES: usize = 16;
const CHUNK: usize = 4096;

/// `struct xdp_umem_reg`.
#[repr(C)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

/// An AF_XDP socket and its UMEM; closed and unmapped on drop.
#[derive(Debug)]
pub struct XskSocket {
    fd: OwnedFd,
    umem: *mut libc::c_void,
}

// SAFETY: the socket owns its UMEM mapping; nothing else in this process refers to it.
unsafe impl Send for XskSocket {}

impl XskSocket {
    /// Open a socket bound to `queue` of interface `ifindex` (1 is loopback).
    pub fn bind(ifindex: u32, queue: u32) -> Result<XskSocket, Errno> {
        // SAFETY: socket(2) with constant arguments.
        let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `raw` is the socket just created; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an anonymous private mapping of FRAMES * CHUNK bytes.
        let umem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FRAMES * CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let sock = XskSocket { fd, umem };
        let reg = UmemReg {
            addr: umem as u64,
            len: (FRAMES * CHUNK) as u64,
            chunk_size: CHUNK as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sock.setsockopt(XDP_UMEM_REG, &reg)?;
        for opt in [XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING] {
            sock.setsockopt(opt, &(FRAMES as u32))?;
        }
        let sa = SockaddrXdp {
            family: AF_XDP as u16,
            flags: XDP_COPY,
            ifindex,
            queue_id: queue,
            shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a sockaddr_xdp of the length given.
        let r = unsafe {
            libc::bind(
                sock.raw_fd(),
                (&sa as *const SockaddrXdp).cast(),
                std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(sock)
    }

    /// [`Self::bind`], waiting up to `wait` while the queue is busy (`EBUSY`: another socket,
    /// such as a concurrent test run's, holds it), retrying every 20 ms.
    pub fn bind_waiting(
        ifindex: u32,
        queue: u32,
        wait: std::time::Duration,
    ) -> Result<XskSocket, Errno> {
        let start = std::time::Instant::now();
        loop {
            match Self::bind(ifindex, queue) {
                Err(Errno::EBUSY) if start.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                r => return r,
            }
        }
    }

    fn setsockopt<T>(&self, opt: i32, value: &T) -> Result<(), Errno> {
        // SAFETY: `value` is a plain repr(C) option struct of the length given.
        let r = unsafe {
            libc::setsockopt(
                self.raw_fd(),
                SOL_XDP,
                opt,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    /// The descriptor an `XSKMAP` update takes as its value.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl Drop for XskSocket {
    fn drop(&mut self) {
        // SAFETY: the UMEM was mapped in `bind` with this length. The socket (closed after this,
        // when `fd` drops) still refers to it, but the kernel pinned its pages at registration.
        unsafe { libc::munmap(self.umem, FRAMES * CHUNK) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A queue another socket holds is waited for, up to the time given: the bind succeeds once
    /// the holder lets go, and fails with `EBUSY` when it does not in time.
    #[test]
    fn a_busy_queue_is_waited_for() {
        let holder = match XskSocket::bind(1, 0) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipped: AF_XDP socket on loopback unavailable ({e})");
                return;
            }
        };
        assert_eq!(
            XskSocket::bind_waiting(1, 0, Duration::from_millis(100)).err(),
            Some(Errno::EBUSY),
            "a held queue stays busy"
        );
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(holder);
        });
        let s = XskSocket::bind_waiting(1, 0, Duration::from_secs(10));
        release.join().unwrap();
        assert!(s.is_ok(), "bound once the holder let go: {:?}", s.err());
    }
}
