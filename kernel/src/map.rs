//! Kernel maps of any type: create, read, write, delete, iterate and freeze through bpf(2).

use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::Errno;
use crate::sys::{self, addr, Cmd, MapCreateAttr, MapElemAttr, OBJ_NAME_LEN};
use crate::KernelBpf;

/// `BPF_MAP_TYPE_*` numbers whose lookups return one value per possible CPU.
const PERCPU_TYPES: [u32; 4] = [5, 6, 10, 21]; // percpu_hash, percpu_array, lru_percpu_hash, percpu_cgroup_storage

/// Longest map iteration accepted before `keys` gives up (a map that keeps changing under it).
const MAX_KEYS: usize = 1 << 20;

/// What `BPF_MAP_CREATE` gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapSpec {
    /// The kernel's `BPF_MAP_TYPE_*` number.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// Cut to the kernel's 15 characters of `[A-Za-z0-9_.]`.
    pub name: String,
    /// BTF for key and value: (btf fd, key type id, value type id); `None` for none.
    pub btf: Option<(i32, u32, u32)>,
}

/// A map in the kernel; its file descriptor is closed on drop.
#[derive(Debug)]
pub struct KernelMap {
    fd: OwnedFd,
    spec: MapSpec,
    ncpus: usize,
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`): how many values a per-CPU
/// map lookup returns.
pub fn possible_cpus() -> usize {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    let n: usize = text
        .trim()
        .split(',')
        .filter_map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            Some(b.trim().parse::<usize>().ok()? + 1 - a.trim().parse::<usize>().ok()?)
        })
        .sum();
    n.max(1)
}

fn elem_attr(fd: i32) -> MapElemAttr {
    MapElemAttr {
        map_fd: fd as u32,
        ..MapElemAttr::default()
    }
}

impl KernelBpf {
    /// Create a map; `inner` is the template of a map-in-map's inner maps.
    pub fn map_create(
        &self,
        spec: &MapSpec,
        inner: Option<&KernelMap>,
    ) -> Result<KernelMap, Errno> {
        let mut attr = MapCreateAttr {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.flags,
            inner_map_fd: inner.map_or(0, |m| m.raw_fd() as u32),
            ..MapCreateAttr::default()
        };
        if let Some((fd, key, value)) = spec.btf {
            attr.btf_fd = fd as u32;
            attr.btf_key_type_id = key;
            attr.btf_value_type_id = value;
        }
        let name = spec
            .name
            .bytes()
            .filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.');
        for (slot, b) in attr.map_name[..OBJ_NAME_LEN - 1].iter_mut().zip(name) {
            *slot = b;
        }
        // SAFETY: BPF_MAP_CREATE reads only the integers of `attr` (the BTF is a descriptor).
        let fd = unsafe { sys::bpf(Cmd::MapCreate, &mut attr) }?;
        Ok(KernelMap {
            fd: sys::owned_fd(fd),
            spec: spec.clone(),
            ncpus: possible_cpus(),
        })
    }
}

impl KernelMap {
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub fn spec(&self) -> &MapSpec {
        &self.spec
    }

    pub fn is_percpu(&self) -> bool {
        PERCPU_TYPES.contains(&self.spec.map_type)
    }

    /// How many values a lookup returns: the possible CPUs for per-CPU maps, else 1.
    pub fn value_count(&self) -> usize {
        if self.is_percpu() {
            self.ncpus
        } else {
            1
        }
    }

    /// The bytes a syscall lookup or update moves: per-CPU values are 8-byte aligned, one per
    /// possible CPU.
    fn value_buf_len(&self) -> usize {
        let v = self.spec.value_size as usize;
        if self.is_percpu() {
            v.next_multiple_of(8) * self.ncpus
        } else {
            v
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), Errno> {
        if key.len() != self.spec.key_size as usize {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// `BPF_MAP_UPDATE_ELEM`. `value` is one value, or for per-CPU maps either one value (given
    /// to every CPU) or the full buffer of [`KernelMap::lookup`].
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), Errno> {
        self.check_key(key)?;
        let v = self.spec.value_size as usize;
        let buf = if self.is_percpu() && value.len() == v && self.value_buf_len() != v {
            let stride = v.next_multiple_of(8);
            let mut b = vec![0u8; self.value_buf_len()];
            for c in 0..self.ncpus {
                b[c * stride..c * stride + v].copy_from_slice(value);
            }
            b
        } else if value.len() == self.value_buf_len() {
            value.to_vec()
        } else {
            return Err(Errno::EINVAL);
        };
        let mut attr = elem_attr(self.raw_fd());
        attr.key = addr(key.as_ptr());
        attr.value = addr(buf.as_ptr());
        attr.flags = flags;
        // SAFETY: `key` holds key_size bytes and `buf` the value bytes the map's type reads
        // (checked above); both outlive the call.
        unsafe { sys::bpf(Cmd::MapUpdateElem, &mut attr) }?;
        Ok(())
    }

    /// `BPF_MAP_LOOKUP_ELEM`: the value, one slice per CPU for per-CPU maps (each cut to
    /// `value_size`); `Ok(None)` for a missing key.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>, Errno> {
        self.check_key(key)?;
        let mut buf = vec![0u8; self.value_buf_len()];
        let mut attr = elem_attr(self.raw_fd());
        attr.key = addr(key.as_ptr());
        attr.value = addr(buf.as_mut_ptr());
        // SAFETY: `key` holds key_size bytes; `buf` is writable for the whole value (per-CPU
        // values included); both outlive the call.
        match unsafe { sys::bpf(Cmd::MapLookupElem, &mut attr) } {
            Ok(_) => {}
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
        let v = self.spec.value_size as usize;
        if !self.is_percpu() {
            return Ok(Some(vec![buf]));
        }
        let stride = v.next_multiple_of(8);
        Ok(Some(
            (0..self.ncpus)
                .map(|c| buf[c * stride..c * stride + v].to_vec())
                .collect(),
        ))
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn delete(&self, key: &[u8]) -> Result<(), Errno> {
        self.check_key(key)?;
        let mut attr = elem_attr(self.raw_fd());
        attr.key = addr(key.as_ptr());
        // SAFETY: `key` holds key_size bytes and outlives the call.
        unsafe { sys::bpf(Cmd::MapDeleteElem, &mut attr) }?;
        Ok(())
    }

    /// Every key, in the kernel's `BPF_MAP_GET_NEXT_KEY` order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, Errno> {
        let ks = self.spec.key_size as usize;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut next = vec![0u8; ks.max(1)];
            let mut attr = elem_attr(self.raw_fd());
            attr.key = keys.last().map_or(0, |k| addr(k.as_ptr()));
            attr.value = addr(next.as_mut_ptr());
            // SAFETY: the current key (if any) holds key_size bytes and `next` is writable for
            // key_size bytes; both outlive the call.
            match unsafe { sys::bpf(Cmd::MapGetNextKey, &mut attr) } {
                Ok(_) => {}
                Err(Errno::ENOENT) => return Ok(keys),
                Err(e) => return Err(e),
            }
            next.truncate(ks);
            keys.push(next);
            if keys.len() > MAX_KEYS {
                return Err(Errno::E2BIG);
            }
        }
    }

    /// `BPF_MAP_FREEZE`: no more syscall writes (libbpf freezes `.rodata` after filling it).
    pub fn freeze(&self) -> Result<(), Errno> {
        let mut attr = elem_attr(self.raw_fd());
        // SAFETY: BPF_MAP_FREEZE reads only the map fd.
        unsafe { sys::bpf(Cmd::MapFreeze, &mut attr) }?;
        Ok(())
    }
}
