//! Errors of map operations, carrying the errno the kernel returns for the same case.
//!
//! Two levels: [`OpError`] is what a map operation returns at run time (`Copy`, no allocation, so
//! a program that fails an update on every packet costs nothing extra); helpers turn it into
//! `-errno` with [`Errno::helper_ret`]. [`MapError`] is what the host API returns: the same error
//! plus the map's name and the operation, or a creation error naming the rule that was broken.

use std::fmt;

use bpfsim_vm::spec::MapType;

use super::MapId;

/// The Linux errno values map operations return (positive, as `errno` holds them).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(i32)]
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    E2BIG = 7,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    EINVAL = 22,
    ENOSPC = 28,
    EOVERFLOW = 75,
    EOPNOTSUPP = 95,
    /// The kernel-internal `ENOTSUPP` (524), which several bpf(2) map paths return to userspace.
    ENOTSUPP = 524,
}

impl Errno {
    /// The positive errno number.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// What a helper puts in `r0` for this error: `-errno` as a 64-bit value.
    pub const fn helper_ret(self) -> u64 {
        (-(self as i64)) as u64
    }

    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::E2BIG => "E2BIG",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::ENODEV => "ENODEV",
            Errno::EINVAL => "EINVAL",
            Errno::ENOSPC => "ENOSPC",
            Errno::EOVERFLOW => "EOVERFLOW",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::ENOTSUPP => "ENOTSUPP",
        }
    }

    /// The errno with this number, if it is one map operations return.
    pub fn from_code(code: i32) -> Option<Errno> {
        const ALL: [Errno; 15] = [
            Errno::EPERM,
            Errno::ENOENT,
            Errno::E2BIG,
            Errno::EBADF,
            Errno::EAGAIN,
            Errno::ENOMEM,
            Errno::EFAULT,
            Errno::EBUSY,
            Errno::EEXIST,
            Errno::ENODEV,
            Errno::EINVAL,
            Errno::ENOSPC,
            Errno::EOVERFLOW,
            Errno::EOPNOTSUPP,
            Errno::ENOTSUPP,
        ];
        ALL.into_iter().find(|e| e.code() == code)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an operation failed; the errno is kept beside it in [`OpError`] because the kernel returns
/// different errnos for the same situation in different map types (a full HASH is `E2BIG`, a full
/// LPM_TRIE `ENOSPC`, an LRU that cannot free an element `ENOMEM`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Reason {
    #[error("no element with this key")]
    NoSuchKey,
    #[error("an element with this key exists (BPF_NOEXIST)")]
    KeyExists,
    #[error("the map is full ({max_entries} entries)")]
    Full { max_entries: u32 },
    #[error("no free element could be taken from the LRU lists")]
    NoFreeElement,
    #[error("index {index} is out of range (max_entries {max_entries})")]
    IndexOutOfRange { index: u32, max_entries: u32 },
    #[error("flags {flags:#x} are not valid here")]
    BadFlags { flags: u64 },
    #[error("BPF_F_LOCK on a map whose value has no bpf_spin_lock")]
    LockWithoutSpinLock,
    #[error("key is {got} bytes, the map's key_size is {expected}")]
    KeySize { expected: u32, got: usize },
    #[error("value is {got} bytes, expected {expected}")]
    ValueSize { expected: usize, got: usize },
    #[error("prefixlen {prefixlen} exceeds the trie's maximum of {max}")]
    PrefixTooLong { prefixlen: u32, max: u32 },
    #[error("the map is empty")]
    Empty,
    #[error("{op} is not supported by this map type")]
    NotSupported { op: Op },
    #[error("the map is read-only for the host (BPF_F_RDONLY or frozen)")]
    ReadOnly,
    #[error("the map is write-only for the host (BPF_F_WRONLY)")]
    WriteOnly,
    #[error("{0}")]
    BadValue(&'static str),
    #[error("no map with id {0}")]
    NoSuchMap(MapId),
    #[error("inner map #{id} does not match the map-in-map's template: {why}")]
    InnerMapMismatch { id: MapId, why: &'static str },
    #[error("offset {offset} is not a record reserved in this ring buffer")]
    NotReserved { offset: usize },
    #[error("no room in the ring buffer for a {size}-byte record")]
    RingFull { size: u64 },
    #[error("perf event slot {index} belongs to CPU {index}, the program runs on CPU {cpu}")]
    WrongCpu { index: u32, cpu: u32 },
    #[error("arena {index} is not available to this operation")]
    NoArena { index: usize },
}

/// A failed map operation: the kernel's errno for it and the reason. Small and `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{errno}: {reason}")]
pub struct OpError {
    pub errno: Errno,
    pub reason: Reason,
}

impl OpError {
    pub const fn new(errno: Errno, reason: Reason) -> OpError {
        OpError { errno, reason }
    }
    pub(crate) const fn no_key() -> OpError {
        OpError::new(Errno::ENOENT, Reason::NoSuchKey)
    }
    pub(crate) const fn exists() -> OpError {
        OpError::new(Errno::EEXIST, Reason::KeyExists)
    }
    pub(crate) const fn bad_flags(flags: u64) -> OpError {
        OpError::new(Errno::EINVAL, Reason::BadFlags { flags })
    }
    pub(crate) const fn unsupported(errno: Errno, op: Op) -> OpError {
        OpError::new(errno, Reason::NotSupported { op })
    }
    pub(crate) const fn key_size(expected: u32, got: usize) -> OpError {
        OpError::new(Errno::EINVAL, Reason::KeySize { expected, got })
    }
    pub(crate) const fn value_size(expected: usize, got: usize) -> OpError {
        OpError::new(Errno::EINVAL, Reason::ValueSize { expected, got })
    }
}

/// The operation that failed, for messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    Create,
    Lookup,
    Update,
    Delete,
    GetNextKey,
    Push,
    Pop,
    Peek,
    Freeze,
    Clear,
    Reserve,
    Submit,
    Output,
    Read,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Create => "create",
            Op::Lookup => "lookup",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::GetNextKey => "get_next_key",
            Op::Push => "push",
            Op::Pop => "pop",
            Op::Peek => "peek",
            Op::Freeze => "freeze",
            Op::Clear => "clear",
            Op::Reserve => "reserve",
            Op::Submit => "submit",
            Op::Output => "output",
            Op::Read => "read",
        })
    }
}

/// The rule of the kernel's `map_alloc_check` (or of the simulator) that a definition broke.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CreateRule {
    #[error("map type {0} is not simulated")]
    NotSimulated(MapType),
    #[error("max_entries must be greater than 0")]
    ZeroMaxEntries,
    #[error("key_size {got} is invalid: {want}")]
    KeySize { got: u32, want: &'static str },
    #[error("value_size {got} is invalid: {want}")]
    ValueSize { got: u32, want: &'static str },
    #[error("max_entries {got} is invalid: {want}")]
    MaxEntries { got: u32, want: &'static str },
    #[error("map_flags {flags:#x} has bits this map type does not accept (allowed: {allowed:#x})")]
    UnknownFlags { flags: u32, allowed: u32 },
    #[error("map_flags {flags:#x}: {why}")]
    ConflictingFlags { flags: u32, why: &'static str },
    #[error("the map type requires BPF_F_NO_PREALLOC")]
    NeedsNoPrealloc,
    #[error("LRU maps cannot be created with BPF_F_NO_PREALLOC")]
    LruNeedsPrealloc,
    #[error("inner map: {why}")]
    InnerMap { why: &'static str },
    #[error("bpf_spin_lock at value offset {off}: {why}")]
    SpinLock { off: u32, why: &'static str },
    #[error("a value arena of {bytes} bytes exceeds the 4 GiB a guest memory region can address")]
    RegionTooLarge { bytes: u64 },
    #[error("the map's buffers would take {bytes} bytes, over the simulator's 4 GiB per map")]
    TooMuchMemory { bytes: u64 },
}

/// An error of the host API: which map, which operation, the kernel's errno and why.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum MapError {
    #[error("map `{map}` ({map_type}): {op}: {source}")]
    Op {
        map: String,
        map_type: MapType,
        op: Op,
        #[source]
        source: OpError,
    },
    #[error("cannot create map `{map}` ({map_type}): {errno}: {rule}")]
    Create {
        map: String,
        map_type: MapType,
        errno: Errno,
        rule: CreateRule,
    },
    #[error("no map with id {0} (EBADF)")]
    NoSuchMap(MapId),
}

impl MapError {
    /// The errno bpf(2) would have returned.
    pub fn errno(&self) -> Errno {
        match self {
            MapError::Op { source, .. } => source.errno,
            MapError::Create { errno, .. } => *errno,
            MapError::NoSuchMap(_) => Errno::EBADF,
        }
    }

    /// The run-time error inside, for an operation error.
    pub fn op_error(&self) -> Option<OpError> {
        match self {
            MapError::Op { source, .. } => Some(*source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_numbers_round_trip_and_helpers_see_negatives() {
        for code in 0..600 {
            if let Some(e) = Errno::from_code(code) {
                assert_eq!(e.code(), code);
            }
        }
        assert_eq!(Errno::ENOENT.helper_ret() as i64, -2);
        assert_eq!(Errno::ENOTSUPP.code(), 524);
        assert_eq!(Errno::E2BIG.to_string(), "E2BIG");
    }

    #[test]
    fn op_error_is_small_and_copy() {
        // Returned by every failing helper call: no allocation, a few words at most.
        assert!(std::mem::size_of::<OpError>() <= 32);
        let e = OpError::new(Errno::E2BIG, Reason::Full { max_entries: 4 });
        assert_eq!(e.to_string(), "E2BIG: the map is full (4 entries)");
    }

    #[test]
    fn map_error_names_map_and_errno() {
        let e = MapError::Op {
            map: "counters".into(),
            map_type: MapType::Hash,
            op: Op::Update,
            source: OpError::exists(),
        };
        assert_eq!(
            e.to_string(),
            "map `counters` (hash): update: EEXIST: an element with this key exists (BPF_NOEXIST)"
        );
        assert_eq!(e.errno(), Errno::EEXIST);
    }
}
