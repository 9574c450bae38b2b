//! The raw bpf(2) interface (Linux only): command numbers, the `union bpf_attr` members this crate
//! uses, laid out as in the UAPI header `include/uapi/linux/bpf.h`, and the syscall itself.
//!
//! Every struct spells out its padding as explicit zeroed fields, so no uninitialised byte ever
//! reaches the kernel (it rejects non-zero bytes past a command's last field with `E2BIG`/`EINVAL`).

use std::ffi::c_void;
use std::mem::{offset_of, size_of};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::error::Errno;

/// `enum bpf_cmd` values.
#[derive(Clone, Copy, Debug)]
#[repr(i32)]
pub(crate) enum Cmd {
    MapCreate = 0,
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    MapGetNextKey = 4,
    ProgLoad = 5,
    ProgTestRun = 10,
    BtfLoad = 18,
    MapFreeze = 22,
}

/// `BPF_MAP_TYPE_ARRAY`.
pub(crate) const MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_ANY` for `BPF_MAP_UPDATE_ELEM`.
pub(crate) const BPF_ANY: u64 = 0;
/// `BPF_OBJ_NAME_LEN`.
pub(crate) const OBJ_NAME_LEN: usize = 16;

/// The `BPF_MAP_CREATE` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default, Debug)]
pub(crate) struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; OBJ_NAME_LEN],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
}

/// The `BPF_MAP_*_ELEM` and `BPF_MAP_FREEZE` member of `union bpf_attr` (`value` shares its
/// slot with `next_key`).
#[repr(C)]
#[derive(Default, Debug)]
pub(crate) struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `log_true_size` (Linux 6.4; older
/// kernels accept the struct as long as the fields they do not know are zero).
#[repr(C)]
#[derive(Default, Debug)]
pub(crate) struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; OBJ_NAME_LEN],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
    /// Union with `attach_btf_obj_fd`.
    pub attach_prog_fd: u32,
    pub core_relo_cnt: u32,
    pub fd_array: u64,
    pub core_relos: u64,
    pub core_relo_rec_size: u32,
    /// Output (6.4+): the log size the whole verifier log would need, terminating NUL included.
    pub log_true_size: u32,
}

/// The `BPF_BTF_LOAD` member of `union bpf_attr`, up to `btf_log_true_size` (6.4).
#[repr(C)]
#[derive(Default, Debug)]
pub(crate) struct BtfLoadAttr {
    pub btf: u64,
    pub btf_log_buf: u64,
    pub btf_size: u32,
    pub btf_log_size: u32,
    pub btf_log_level: u32,
    pub btf_log_true_size: u32,
}

/// The `BPF_PROG_TEST_RUN` member (`test`) of `union bpf_attr`.
#[repr(C)]
#[derive(Default, Debug)]
pub(crate) struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}

// The offsets of the UAPI header (x86-64, aarch64 and every other Linux ABI agree: the header
// uses `__aligned_u64` so that 32-bit ABIs lay the union out the same way).
const _: () = {
    assert!(offset_of!(MapCreateAttr, map_name) == 28);
    assert!(offset_of!(MapCreateAttr, map_ifindex) == 44);
    assert!(offset_of!(MapCreateAttr, btf_vmlinux_value_type_id) == 60);
    assert!(offset_of!(MapCreateAttr, map_extra) == 64);
    assert!(size_of::<MapCreateAttr>() == 72);

    assert!(offset_of!(MapElemAttr, key) == 8);
    assert!(offset_of!(MapElemAttr, value) == 16);
    assert!(offset_of!(MapElemAttr, flags) == 24);
    assert!(size_of::<MapElemAttr>() == 32);

    assert!(offset_of!(ProgLoadAttr, insns) == 8);
    assert!(offset_of!(ProgLoadAttr, license) == 16);
    assert!(offset_of!(ProgLoadAttr, log_level) == 24);
    assert!(offset_of!(ProgLoadAttr, log_buf) == 32);
    assert!(offset_of!(ProgLoadAttr, kern_version) == 40);
    assert!(offset_of!(ProgLoadAttr, prog_name) == 48);
    assert!(offset_of!(ProgLoadAttr, prog_ifindex) == 64);
    assert!(offset_of!(ProgLoadAttr, func_info) == 80);
    assert!(offset_of!(ProgLoadAttr, line_info) == 96);
    assert!(offset_of!(ProgLoadAttr, attach_prog_fd) == 112);
    assert!(offset_of!(ProgLoadAttr, fd_array) == 120);
    assert!(offset_of!(ProgLoadAttr, core_relos) == 128);
    assert!(offset_of!(ProgLoadAttr, core_relo_rec_size) == 136);
    assert!(offset_of!(ProgLoadAttr, log_true_size) == 140);
    assert!(size_of::<ProgLoadAttr>() == 144);

    assert!(offset_of!(TestRunAttr, data_in) == 16);
    assert!(offset_of!(TestRunAttr, data_out) == 24);
    assert!(offset_of!(TestRunAttr, repeat) == 32);
    assert!(offset_of!(TestRunAttr, duration) == 36);
    assert!(offset_of!(TestRunAttr, ctx_in) == 48);
    assert!(offset_of!(TestRunAttr, ctx_out) == 56);
    assert!(offset_of!(TestRunAttr, flags) == 64);
    assert!(offset_of!(TestRunAttr, batch_size) == 72);
    assert!(size_of::<TestRunAttr>() == 80);

    assert!(offset_of!(BtfLoadAttr, btf_size) == 16);
    assert!(size_of::<BtfLoadAttr>() == 32);
};

/// Marker for the attribute structs above: plain `repr(C)` data, valid for any bit pattern the
/// kernel writes back.
pub(crate) trait Attr {}
impl Attr for MapCreateAttr {}
impl Attr for MapElemAttr {}
impl Attr for ProgLoadAttr {}
impl Attr for TestRunAttr {}
impl Attr for BtfLoadAttr {}

/// The address of a buffer, as the kernel's `__aligned_u64` pointer fields take it.
pub(crate) fn addr<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// `bpf(cmd, attr, sizeof(*attr))`; the non-negative return value, or the errno.
///
/// # Safety
/// `attr` must be the attribute struct of `cmd`, and every address it carries must point to
/// memory valid for the reads and writes `cmd` does through it (with the sizes the struct gives),
/// for the duration of the call.
pub(crate) unsafe fn bpf<A: Attr>(cmd: Cmd, attr: &mut A) -> Result<i64, Errno> {
    let ptr: *mut A = attr;
    // SAFETY: `ptr` points to a live, writable `A` of `size_of::<A>()` bytes that the kernel may
    // read and write back (plain integer fields); the caller vouches for the addresses inside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_int,
            ptr.cast::<c_void>(),
            size_of::<A>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Take ownership of a file descriptor bpf(2) has just returned.
pub(crate) fn owned_fd(ret: i64) -> OwnedFd {
    let fd = RawFd::try_from(ret).expect("bpf(2) returned a file descriptor out of range");
    // SAFETY: `fd` is a descriptor the kernel has just created for this process (the successful
    // return of BPF_MAP_CREATE or BPF_PROG_LOAD); nothing else knows or owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The effective user id, for diagnostics.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
