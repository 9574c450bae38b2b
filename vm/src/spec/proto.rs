//! Helper prototypes and per-program-type availability, as the Linux kernel declares them.
//!
//! This is the one table that both the runtime and the verifier read (ARCHITECTURE.md, rule 3).
//! It mirrors three kernel facts:
//!
//! * the prototype vocabulary of `include/linux/bpf.h`: `enum bpf_arg_type`, `enum
//!   bpf_return_type` and the `enum bpf_type_flag` bits that refine them ([`ArgType`],
//!   [`RetType`], [`TypeFlags`]);
//! * `struct bpf_func_proto` for each helper bpfsim knows ([`HelperProto`], [`PROTOS`]);
//! * the `get_func_proto` callbacks of each program type's `bpf_verifier_ops`
//!   (`bpf_base_func_proto`, `bpf_sk_base_func_proto`, `sk_filter_func_proto`,
//!   `cg_skb_func_proto`, `tc_cls_act_func_proto`, `xdp_func_proto`, `bpf_tracing_func_proto`,
//!   `kprobe_prog_func_proto`, `tp_prog_func_proto`, `raw_tp_prog_func_proto`,
//!   `pe_prog_func_proto`), answered by [`allowed`] for every helper id, not only those in the
//!   table.
//!
//! The reference is the kernel this project is tested against (6.18, x86_64); facts were read from
//! `kernel/bpf/helpers.c`, `kernel/bpf/ringbuf.c`, `kernel/bpf/bpf_iter.c`, `kernel/bpf/core.c`,
//! `kernel/trace/bpf_trace.c`, `net/core/filter.c` and `include/linux/bpf.h`, and the enum
//! numbering from the reference kernel's BTF. Where the prototypes changed in recent releases the
//! entry says so. `kernel/tests/helper_availability.rs` checks [`allowed`] against the live kernel.
//!
//! What [`allowed`] answers is exactly "does the program type's `get_func_proto` return a
//! prototype": the verifier's `program of this type cannot use helper bpf_xxx#N` when it does not.
//! Later checks of `check_helper_call` are separate facts of the prototype: `gpl_only` (`cannot
//! call GPL-restricted function from non-GPL compatible program`), `might_sleep` (`helper call
//! might sleep in a non-sleepable prog`), then the arguments.

use crate::spec::{helper_name, MapType, ProgType};

/// `enum bpf_type_flag`: bits that refine an argument, return or register type.
///
/// The bit values are those of the reference kernel (6.18); the kernel renumbered them as flags
/// were added (for example `MEM_RINGBUF` took bit 2 in 6.2), so only the names are stable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TypeFlags(u32);

impl TypeFlags {
    /// No flag.
    pub const NONE: TypeFlags = TypeFlags(0);
    /// The pointer may be NULL (`_OR_NULL` types).
    pub const PTR_MAYBE_NULL: TypeFlags = TypeFlags(1 << 8);
    /// On an argument: the helper only reads the memory, so read-only memory is accepted.
    pub const MEM_RDONLY: TypeFlags = TypeFlags(1 << 9);
    /// Memory reserved in a ring buffer (`RET_PTR_TO_RINGBUF_MEM_OR_NULL`).
    pub const MEM_RINGBUF: TypeFlags = TypeFlags(1 << 10);
    pub const MEM_USER: TypeFlags = TypeFlags(1 << 11);
    pub const MEM_PERCPU: TypeFlags = TypeFlags(1 << 12);
    /// The argument is released by the call: the reference the verifier tracks for it ends.
    pub const OBJ_RELEASE: TypeFlags = TypeFlags(1 << 13);
    pub const PTR_UNTRUSTED: TypeFlags = TypeFlags(1 << 14);
    /// The memory need not be initialised: the helper fills all of it (or clears it on error).
    pub const MEM_UNINIT: TypeFlags = TypeFlags(1 << 15);
    pub const DYNPTR_TYPE_LOCAL: TypeFlags = TypeFlags(1 << 16);
    pub const DYNPTR_TYPE_RINGBUF: TypeFlags = TypeFlags(1 << 17);
    /// The size is fixed by the prototype (`argN_size`), not by the next argument.
    pub const MEM_FIXED_SIZE: TypeFlags = TypeFlags(1 << 18);
    pub const MEM_ALLOC: TypeFlags = TypeFlags(1 << 19);
    pub const PTR_TRUSTED: TypeFlags = TypeFlags(1 << 20);
    pub const MEM_RCU: TypeFlags = TypeFlags(1 << 21);
    pub const NON_OWN_REF: TypeFlags = TypeFlags(1 << 22);
    pub const DYNPTR_TYPE_SKB: TypeFlags = TypeFlags(1 << 23);
    pub const DYNPTR_TYPE_XDP: TypeFlags = TypeFlags(1 << 24);
    /// The memory must be aligned to its (fixed) size; used with `MEM_FIXED_SIZE` (6.12+).
    pub const MEM_ALIGNED: TypeFlags = TypeFlags(1 << 25);
    /// On an argument: the helper writes the memory (6.12+; the verifier then treats the call as
    /// a store into it).
    pub const MEM_WRITE: TypeFlags = TypeFlags(1 << 26);
    pub const DYNPTR_TYPE_SKB_META: TypeFlags = TypeFlags(1 << 27);

    const NAMES: [(TypeFlags, &'static str); 20] = [
        (Self::PTR_MAYBE_NULL, "PTR_MAYBE_NULL"),
        (Self::MEM_RDONLY, "MEM_RDONLY"),
        (Self::MEM_RINGBUF, "MEM_RINGBUF"),
        (Self::MEM_USER, "MEM_USER"),
        (Self::MEM_PERCPU, "MEM_PERCPU"),
        (Self::OBJ_RELEASE, "OBJ_RELEASE"),
        (Self::PTR_UNTRUSTED, "PTR_UNTRUSTED"),
        (Self::MEM_UNINIT, "MEM_UNINIT"),
        (Self::DYNPTR_TYPE_LOCAL, "DYNPTR_TYPE_LOCAL"),
        (Self::DYNPTR_TYPE_RINGBUF, "DYNPTR_TYPE_RINGBUF"),
        (Self::MEM_FIXED_SIZE, "MEM_FIXED_SIZE"),
        (Self::MEM_ALLOC, "MEM_ALLOC"),
        (Self::PTR_TRUSTED, "PTR_TRUSTED"),
        (Self::MEM_RCU, "MEM_RCU"),
        (Self::NON_OWN_REF, "NON_OWN_REF"),
        (Self::DYNPTR_TYPE_SKB, "DYNPTR_TYPE_SKB"),
        (Self::DYNPTR_TYPE_XDP, "DYNPTR_TYPE_XDP"),
        (Self::MEM_ALIGNED, "MEM_ALIGNED"),
        (Self::MEM_WRITE, "MEM_WRITE"),
        (Self::DYNPTR_TYPE_SKB_META, "DYNPTR_TYPE_SKB_META"),
    ];

    /// The kernel's bits (6.18 numbering).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from the kernel's bits; `None` if a bit is not a flag.
    pub const fn from_bits(bits: u32) -> Option<TypeFlags> {
        if bits & !((1 << 28) - (1 << 8)) != 0 {
            None
        } else {
            Some(TypeFlags(bits))
        }
    }

    pub const fn union(self, other: TypeFlags) -> TypeFlags {
        TypeFlags(self.0 | other.0)
    }

    pub const fn contains(self, other: TypeFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: TypeFlags) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for TypeFlags {
    type Output = TypeFlags;
    fn bitor(self, rhs: TypeFlags) -> TypeFlags {
        self.union(rhs)
    }
}

impl std::fmt::Debug for TypeFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("NONE");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// The base of an argument type: `enum bpf_arg_type` below `__BPF_ARG_TYPE_MAX`, with the
/// reference kernel's numbering (6.18).
///
/// History worth knowing when reading older sources: `ARG_PTR_TO_INT` and `ARG_PTR_TO_LONG` were
/// removed in 6.12 (replaced by `ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT | MEM_ALIGNED` with an
/// `argN_size`), `ARG_PTR_TO_ALLOC_MEM` became `ARG_PTR_TO_RINGBUF_MEM` in 6.2, `ARG_PTR_TO_KPTR`
/// became `ARG_KPTR_XCHG_DEST`, and `ARG_PTR_TO_ARENA` (6.9) shifted every later number by one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum ArgBase {
    /// Unused argument.
    #[doc(alias = "ARG_DONTCARE")]
    DontCare = 0,
    /// A map pointer loaded with `ld_imm64` (pseudo map fd/idx).
    #[doc(alias = "ARG_CONST_MAP_PTR")]
    ConstMapPtr = 1,
    /// Memory holding `key_size` bytes of the map in the preceding `ARG_CONST_MAP_PTR`.
    #[doc(alias = "ARG_PTR_TO_MAP_KEY")]
    PtrToMapKey = 2,
    /// Memory holding `value_size` bytes of that map.
    #[doc(alias = "ARG_PTR_TO_MAP_VALUE")]
    PtrToMapValue = 3,
    /// Memory (stack, packet, map value, ...) whose size is the next argument (a
    /// `ConstSize*`), or `argN_size` with `MEM_FIXED_SIZE`.
    #[doc(alias = "ARG_PTR_TO_MEM")]
    PtrToMem = 4,
    #[doc(alias = "ARG_PTR_TO_ARENA")]
    PtrToArena = 5,
    /// The size of the preceding memory argument; must be > 0.
    #[doc(alias = "ARG_CONST_SIZE")]
    ConstSize = 6,
    /// The size of the preceding memory argument; may be 0.
    #[doc(alias = "ARG_CONST_SIZE_OR_ZERO")]
    ConstSizeOrZero = 7,
    /// The program's context pointer, unmodified.
    #[doc(alias = "ARG_PTR_TO_CTX")]
    PtrToCtx = 8,
    /// Any initialised value.
    #[doc(alias = "ARG_ANYTHING")]
    Anything = 9,
    /// A `struct bpf_spin_lock` inside a map value (or allocated object).
    #[doc(alias = "ARG_PTR_TO_SPIN_LOCK")]
    PtrToSpinLock = 10,
    #[doc(alias = "ARG_PTR_TO_SOCK_COMMON")]
    PtrToSockCommon = 11,
    #[doc(alias = "ARG_PTR_TO_SOCKET")]
    PtrToSocket = 12,
    /// A kernel object of the BTF type in `argN_btf_id`.
    #[doc(alias = "ARG_PTR_TO_BTF_ID")]
    PtrToBtfId = 13,
    /// Memory returned by `bpf_ringbuf_reserve` (unmodified pointer).
    #[doc(alias = "ARG_PTR_TO_RINGBUF_MEM")]
    #[doc(alias = "ARG_PTR_TO_ALLOC_MEM")]
    PtrToRingbufMem = 14,
    /// A size the helper allocates; becomes the `mem_size` of the returned pointer.
    #[doc(alias = "ARG_CONST_ALLOC_SIZE_OR_ZERO")]
    ConstAllocSizeOrZero = 15,
    /// A socket: BTF `sock_common` or any of the verifier's socket pointer types.
    #[doc(alias = "ARG_PTR_TO_BTF_ID_SOCK_COMMON")]
    PtrToBtfIdSockCommon = 16,
    #[doc(alias = "ARG_PTR_TO_PERCPU_BTF_ID")]
    PtrToPercpuBtfId = 17,
    /// A BPF subprogram (`ld_imm64` with `BPF_PSEUDO_FUNC`): a callback.
    #[doc(alias = "ARG_PTR_TO_FUNC")]
    PtrToFunc = 18,
    /// A stack pointer (the callback context of `bpf_loop` and friends).
    #[doc(alias = "ARG_PTR_TO_STACK")]
    PtrToStack = 19,
    /// A NUL-terminated string in a read-only (frozen) map value.
    #[doc(alias = "ARG_PTR_TO_CONST_STR")]
    PtrToConstStr = 20,
    #[doc(alias = "ARG_PTR_TO_TIMER")]
    PtrToTimer = 21,
    #[doc(alias = "ARG_KPTR_XCHG_DEST")]
    #[doc(alias = "ARG_PTR_TO_KPTR")]
    KptrXchgDest = 22,
    #[doc(alias = "ARG_PTR_TO_DYNPTR")]
    PtrToDynptr = 23,
}

/// An argument type: `enum bpf_arg_type`, a base and flags (`ARG_PTR_TO_MEM | MEM_RDONLY`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ArgType {
    pub base: ArgBase,
    pub flags: TypeFlags,
}

impl ArgType {
    pub const fn new(base: ArgBase) -> ArgType {
        ArgType {
            base,
            flags: TypeFlags::NONE,
        }
    }

    /// This type with `flags` added.
    pub const fn with(self, flags: TypeFlags) -> ArgType {
        ArgType {
            base: self.base,
            flags: self.flags.union(flags),
        }
    }

    #[doc(alias = "ARG_DONTCARE")]
    pub const DONTCARE: ArgType = ArgType::new(ArgBase::DontCare);
    #[doc(alias = "ARG_ANYTHING")]
    pub const ANYTHING: ArgType = ArgType::new(ArgBase::Anything);
    #[doc(alias = "ARG_CONST_MAP_PTR")]
    pub const CONST_MAP_PTR: ArgType = ArgType::new(ArgBase::ConstMapPtr);
    #[doc(alias = "ARG_PTR_TO_MAP_KEY")]
    pub const PTR_TO_MAP_KEY: ArgType = ArgType::new(ArgBase::PtrToMapKey);
    #[doc(alias = "ARG_PTR_TO_MAP_VALUE")]
    pub const PTR_TO_MAP_VALUE: ArgType = ArgType::new(ArgBase::PtrToMapValue);
    /// Memory the helper may both read and write (no access flag: before 6.12 the verifier
    /// treated this as a read; see [`TypeFlags::MEM_WRITE`]).
    #[doc(alias = "ARG_PTR_TO_MEM")]
    pub const PTR_TO_MEM: ArgType = ArgType::new(ArgBase::PtrToMem);
    /// `ARG_PTR_TO_MEM | MEM_RDONLY`: memory the helper only reads.
    pub const PTR_TO_RDONLY_MEM: ArgType = Self::PTR_TO_MEM.with(TypeFlags::MEM_RDONLY);
    #[doc(alias = "ARG_PTR_TO_MEM_OR_NULL")]
    pub const PTR_TO_MEM_OR_NULL: ArgType = Self::PTR_TO_MEM.with(TypeFlags::PTR_MAYBE_NULL);
    /// `ARG_PTR_TO_UNINIT_MEM`: since 6.12 defined as `ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE`
    /// (it was `MEM_UNINIT` alone before).
    #[doc(alias = "ARG_PTR_TO_UNINIT_MEM")]
    pub const PTR_TO_UNINIT_MEM: ArgType = Self::PTR_TO_MEM
        .with(TypeFlags::MEM_UNINIT)
        .with(TypeFlags::MEM_WRITE);
    /// `ARG_PTR_TO_FIXED_SIZE_MEM`: `ARG_PTR_TO_MEM | MEM_FIXED_SIZE`, size in `argN_size`.
    #[doc(alias = "ARG_PTR_TO_FIXED_SIZE_MEM")]
    pub const PTR_TO_FIXED_SIZE_MEM: ArgType = Self::PTR_TO_MEM.with(TypeFlags::MEM_FIXED_SIZE);
    #[doc(alias = "ARG_CONST_SIZE")]
    pub const CONST_SIZE: ArgType = ArgType::new(ArgBase::ConstSize);
    #[doc(alias = "ARG_CONST_SIZE_OR_ZERO")]
    pub const CONST_SIZE_OR_ZERO: ArgType = ArgType::new(ArgBase::ConstSizeOrZero);
    #[doc(alias = "ARG_PTR_TO_CTX")]
    pub const PTR_TO_CTX: ArgType = ArgType::new(ArgBase::PtrToCtx);
    #[doc(alias = "ARG_PTR_TO_CTX_OR_NULL")]
    pub const PTR_TO_CTX_OR_NULL: ArgType = Self::PTR_TO_CTX.with(TypeFlags::PTR_MAYBE_NULL);
    #[doc(alias = "ARG_PTR_TO_SPIN_LOCK")]
    pub const PTR_TO_SPIN_LOCK: ArgType = ArgType::new(ArgBase::PtrToSpinLock);
    #[doc(alias = "ARG_PTR_TO_SOCK_COMMON")]
    pub const PTR_TO_SOCK_COMMON: ArgType = ArgType::new(ArgBase::PtrToSockCommon);
    #[doc(alias = "ARG_PTR_TO_SOCKET")]
    pub const PTR_TO_SOCKET: ArgType = ArgType::new(ArgBase::PtrToSocket);
    #[doc(alias = "ARG_PTR_TO_SOCKET_OR_NULL")]
    pub const PTR_TO_SOCKET_OR_NULL: ArgType = Self::PTR_TO_SOCKET.with(TypeFlags::PTR_MAYBE_NULL);
    #[doc(alias = "ARG_PTR_TO_BTF_ID")]
    pub const PTR_TO_BTF_ID: ArgType = ArgType::new(ArgBase::PtrToBtfId);
    #[doc(alias = "ARG_PTR_TO_RINGBUF_MEM")]
    pub const PTR_TO_RINGBUF_MEM: ArgType = ArgType::new(ArgBase::PtrToRingbufMem);
    #[doc(alias = "ARG_CONST_ALLOC_SIZE_OR_ZERO")]
    pub const CONST_ALLOC_SIZE_OR_ZERO: ArgType = ArgType::new(ArgBase::ConstAllocSizeOrZero);
    #[doc(alias = "ARG_PTR_TO_BTF_ID_SOCK_COMMON")]
    pub const PTR_TO_BTF_ID_SOCK_COMMON: ArgType = ArgType::new(ArgBase::PtrToBtfIdSockCommon);
    #[doc(alias = "ARG_PTR_TO_FUNC")]
    pub const PTR_TO_FUNC: ArgType = ArgType::new(ArgBase::PtrToFunc);
    #[doc(alias = "ARG_PTR_TO_STACK")]
    pub const PTR_TO_STACK: ArgType = ArgType::new(ArgBase::PtrToStack);
    #[doc(alias = "ARG_PTR_TO_STACK_OR_NULL")]
    pub const PTR_TO_STACK_OR_NULL: ArgType = Self::PTR_TO_STACK.with(TypeFlags::PTR_MAYBE_NULL);
    #[doc(alias = "ARG_PTR_TO_CONST_STR")]
    pub const PTR_TO_CONST_STR: ArgType = ArgType::new(ArgBase::PtrToConstStr);

    /// The kernel's `enum bpf_arg_type` value (base | flags, 6.18 numbering).
    pub const fn raw(self) -> u32 {
        self.base as u32 | self.flags.bits()
    }

    /// `ARG_DONTCARE`: the argument is unused.
    pub const fn is_unused(self) -> bool {
        matches!(self.base, ArgBase::DontCare)
    }

    /// `type_may_be_null`.
    pub const fn may_be_null(self) -> bool {
        self.flags.contains(TypeFlags::PTR_MAYBE_NULL)
    }

    /// `arg_type_is_release`: the call ends the reference held by this argument.
    pub const fn is_release(self) -> bool {
        self.flags.contains(TypeFlags::OBJ_RELEASE)
    }

    /// `arg_type_is_mem_size`: this argument is the size of the memory argument before it.
    pub const fn is_mem_size(self) -> bool {
        matches!(self.base, ArgBase::ConstSize | ArgBase::ConstSizeOrZero)
    }

    /// A memory argument sized by the next argument (not `MEM_FIXED_SIZE`).
    pub const fn is_sized_mem(self) -> bool {
        matches!(self.base, ArgBase::PtrToMem) && !self.flags.contains(TypeFlags::MEM_FIXED_SIZE)
    }

    /// `MEM_RDONLY`: read-only memory is accepted.
    pub const fn is_rdonly(self) -> bool {
        self.flags.contains(TypeFlags::MEM_RDONLY)
    }

    /// `MEM_UNINIT`: the memory need not be initialised.
    pub const fn is_uninit(self) -> bool {
        self.flags.contains(TypeFlags::MEM_UNINIT)
    }

    /// `MEM_WRITE`: the helper writes the memory.
    pub const fn is_write(self) -> bool {
        self.flags.contains(TypeFlags::MEM_WRITE)
    }
}

/// The base of a return type: `enum bpf_return_type` below `__BPF_RET_TYPE_MAX` (6.18).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum RetBase {
    /// An integer (a scalar in `r0`).
    #[doc(alias = "RET_INTEGER")]
    Integer = 0,
    /// Nothing: `r0` is unreadable after the call.
    #[doc(alias = "RET_VOID")]
    Void = 1,
    /// A value of the map in the call's `ARG_CONST_MAP_PTR` argument.
    #[doc(alias = "RET_PTR_TO_MAP_VALUE")]
    PtrToMapValue = 2,
    #[doc(alias = "RET_PTR_TO_SOCKET")]
    PtrToSocket = 3,
    #[doc(alias = "RET_PTR_TO_TCP_SOCK")]
    PtrToTcpSock = 4,
    #[doc(alias = "RET_PTR_TO_SOCK_COMMON")]
    PtrToSockCommon = 5,
    /// Memory whose size is the call's `ARG_CONST_ALLOC_SIZE_OR_ZERO` argument.
    #[doc(alias = "RET_PTR_TO_MEM")]
    #[doc(alias = "RET_PTR_TO_ALLOC_MEM")]
    PtrToMem = 6,
    #[doc(alias = "RET_PTR_TO_MEM_OR_BTF_ID")]
    PtrToMemOrBtfId = 7,
    #[doc(alias = "RET_PTR_TO_BTF_ID")]
    PtrToBtfId = 8,
}

/// A return type: `enum bpf_return_type`, a base and flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RetType {
    pub base: RetBase,
    pub flags: TypeFlags,
}

impl RetType {
    pub const fn new(base: RetBase) -> RetType {
        RetType {
            base,
            flags: TypeFlags::NONE,
        }
    }

    pub const fn with(self, flags: TypeFlags) -> RetType {
        RetType {
            base: self.base,
            flags: self.flags.union(flags),
        }
    }

    #[doc(alias = "RET_INTEGER")]
    pub const INTEGER: RetType = RetType::new(RetBase::Integer);
    #[doc(alias = "RET_VOID")]
    pub const VOID: RetType = RetType::new(RetBase::Void);
    #[doc(alias = "RET_PTR_TO_MAP_VALUE_OR_NULL")]
    pub const PTR_TO_MAP_VALUE_OR_NULL: RetType =
        RetType::new(RetBase::PtrToMapValue).with(TypeFlags::PTR_MAYBE_NULL);
    #[doc(alias = "RET_PTR_TO_SOCKET_OR_NULL")]
    pub const PTR_TO_SOCKET_OR_NULL: RetType =
        RetType::new(RetBase::PtrToSocket).with(TypeFlags::PTR_MAYBE_NULL);
    #[doc(alias = "RET_PTR_TO_TCP_SOCK_OR_NULL")]
    pub const PTR_TO_TCP_SOCK_OR_NULL: RetType =
        RetType::new(RetBase::PtrToTcpSock).with(TypeFlags::PTR_MAYBE_NULL);
    #[doc(alias = "RET_PTR_TO_SOCK_COMMON_OR_NULL")]
    pub const PTR_TO_SOCK_COMMON_OR_NULL: RetType =
        RetType::new(RetBase::PtrToSockCommon).with(TypeFlags::PTR_MAYBE_NULL);
    /// `RET_PTR_TO_RINGBUF_MEM_OR_NULL`: `PTR_MAYBE_NULL | MEM_RINGBUF | RET_PTR_TO_MEM`, sized by
    /// the `ARG_CONST_ALLOC_SIZE_OR_ZERO` argument (`RET_PTR_TO_ALLOC_MEM_OR_NULL` before 6.2).
    #[doc(alias = "RET_PTR_TO_RINGBUF_MEM_OR_NULL")]
    pub const PTR_TO_RINGBUF_MEM_OR_NULL: RetType = RetType::new(RetBase::PtrToMem)
        .with(TypeFlags::PTR_MAYBE_NULL)
        .with(TypeFlags::MEM_RINGBUF);
    #[doc(alias = "RET_PTR_TO_DYNPTR_MEM_OR_NULL")]
    pub const PTR_TO_DYNPTR_MEM_OR_NULL: RetType =
        RetType::new(RetBase::PtrToMem).with(TypeFlags::PTR_MAYBE_NULL);
    #[doc(alias = "RET_PTR_TO_BTF_ID_OR_NULL")]
    pub const PTR_TO_BTF_ID_OR_NULL: RetType =
        RetType::new(RetBase::PtrToBtfId).with(TypeFlags::PTR_MAYBE_NULL);
    #[doc(alias = "RET_PTR_TO_BTF_ID_TRUSTED")]
    pub const PTR_TO_BTF_ID_TRUSTED: RetType =
        RetType::new(RetBase::PtrToBtfId).with(TypeFlags::PTR_TRUSTED);

    /// The kernel's `enum bpf_return_type` value (base | flags, 6.18 numbering).
    pub const fn raw(self) -> u32 {
        self.base as u32 | self.flags.bits()
    }

    pub const fn may_be_null(self) -> bool {
        self.flags.contains(TypeFlags::PTR_MAYBE_NULL)
    }
}

/// The per-argument union of `struct bpf_func_proto` (`argN_btf_id` / `argN_size`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum ArgAux {
    #[default]
    None,
    /// `argN_size`: the byte size of an `ARG_PTR_TO_FIXED_SIZE_MEM` argument.
    Size(u32),
    /// `argN_btf_id`: the kernel BTF struct an `ARG_PTR_TO_BTF_ID` argument must point to.
    BtfStruct(&'static str),
    /// `argN_btf_id = BPF_PTR_POISON`: the type is not fixed by the prototype (the verifier takes
    /// it from the map value or allocated object; `bpf_spin_lock`).
    #[doc(alias = "BPF_PTR_POISON")]
    Poison,
}

/// `struct bpf_func_proto`: what the verifier checks for one helper.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HelperProto {
    /// `enum bpf_func_id`.
    pub id: u32,
    /// The name without `bpf_`, as the verifier log prints it (`bpf_<name>#<id>`).
    pub name: &'static str,
    #[doc(alias = "ret_type")]
    pub ret: RetType,
    /// `arg1_type` .. `arg5_type`; unused ones are [`ArgType::DONTCARE`].
    #[doc(alias = "arg_type")]
    pub args: [ArgType; 5],
    /// `arg1_btf_id`/`arg1_size` .. for argument `i`.
    pub arg_aux: [ArgAux; 5],
    /// The helper may only be called by GPL-compatible programs.
    pub gpl_only: bool,
    /// The helper accepts packet pointers for its memory arguments (and does not invalidate them).
    pub pkt_access: bool,
    /// The helper may sleep: only sleepable programs may call it.
    pub might_sleep: bool,
    /// The helper preserves r1-r5 when inlined (`allow_fastcall`, 6.13+).
    pub allow_fastcall: bool,
    /// `ret_btf_id`: the BTF struct a `RET_PTR_TO_BTF_ID*` return points to.
    pub ret_btf: Option<&'static str>,
}

impl HelperProto {
    const fn new(id: u32, name: &'static str, ret: RetType, a: &[ArgType]) -> HelperProto {
        let mut args = [ArgType::DONTCARE; 5];
        let mut i = 0;
        while i < a.len() {
            args[i] = a[i];
            i += 1;
        }
        HelperProto {
            id,
            name,
            ret,
            args,
            arg_aux: [ArgAux::None; 5],
            gpl_only: false,
            pkt_access: false,
            might_sleep: false,
            allow_fastcall: false,
            ret_btf: None,
        }
    }

    const fn gpl(mut self) -> HelperProto {
        self.gpl_only = true;
        self
    }

    const fn pkt(mut self) -> HelperProto {
        self.pkt_access = true;
        self
    }

    const fn sleeps(mut self) -> HelperProto {
        self.might_sleep = true;
        self
    }

    const fn fastcall(mut self) -> HelperProto {
        self.allow_fastcall = true;
        self
    }

    /// `aux` for argument `i` (0-based).
    const fn aux(mut self, i: usize, aux: ArgAux) -> HelperProto {
        self.arg_aux[i] = aux;
        self
    }

    /// The number of arguments (the last one that is not `ARG_DONTCARE`).
    pub fn arg_count(&self) -> usize {
        self.args
            .iter()
            .rposition(|a| !a.is_unused())
            .map_or(0, |i| i + 1)
    }

    /// The argument the call releases (`OBJ_RELEASE`), 0-based; the kernel allows at most one.
    pub fn release_arg(&self) -> Option<usize> {
        self.args.iter().position(|a| a.is_release())
    }

    /// `is_acquire_function`: whether `r0` holds a new reference the program must release.
    /// `map_type` is the type of the call's map argument, if any (a lookup in a sockmap or
    /// sockhash acquires a socket reference).
    pub fn is_acquire(&self, map_type: Option<MapType>) -> bool {
        match self.name {
            "sk_lookup_tcp" | "sk_lookup_udp" | "skc_lookup_tcp" | "ringbuf_reserve"
            | "kptr_xchg" => true,
            "map_lookup_elem" => matches!(map_type, Some(MapType::Sockmap | MapType::Sockhash)),
            _ => false,
        }
    }

    /// The 0-based argument whose value sizes the returned memory
    /// (`ARG_CONST_ALLOC_SIZE_OR_ZERO`, for `RET_PTR_TO_MEM` types).
    pub fn ret_size_arg(&self) -> Option<usize> {
        self.args
            .iter()
            .position(|a| a.base == ArgBase::ConstAllocSizeOrZero)
    }

    /// The `argN_size` of argument `i` (0-based) for `ARG_PTR_TO_FIXED_SIZE_MEM`.
    pub fn fixed_size(&self, i: usize) -> Option<u32> {
        match self.arg_aux.get(i) {
            Some(ArgAux::Size(n)) => Some(*n),
            _ => None,
        }
    }
}

use ArgType as A;
use RetType as R;

const MEM_RDONLY: ArgType = A::PTR_TO_RDONLY_MEM;
const MEM_OR_NULL_RDONLY: ArgType = A::PTR_TO_MEM
    .with(TypeFlags::PTR_MAYBE_NULL)
    .with(TypeFlags::MEM_RDONLY);
const UNINIT: ArgType = A::PTR_TO_UNINIT_MEM;
/// `ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED` (strtol, strtoul).
const FIXED_OUT: ArgType = A::PTR_TO_FIXED_SIZE_MEM
    .with(TypeFlags::MEM_UNINIT)
    .with(TypeFlags::MEM_WRITE)
    .with(TypeFlags::MEM_ALIGNED);
/// The `bpf_probe_read*` family: (`ARG_PTR_TO_UNINIT_MEM`, `ARG_CONST_SIZE_OR_ZERO`,
/// `ARG_ANYTHING`), GPL-only.
const PROBE_READ: [ArgType; 3] = [UNINIT, A::CONST_SIZE_OR_ZERO, A::ANYTHING];
/// The `*_event_output` family: (ctx, map, flags, data, size), GPL-only.
const EVENT_OUTPUT: [ArgType; 5] = [
    A::PTR_TO_CTX,
    A::CONST_MAP_PTR,
    A::ANYTHING,
    MEM_RDONLY,
    A::CONST_SIZE_OR_ZERO,
];
/// Socket lookups: (ctx, tuple, tuple size, netns, flags).
const SK_LOOKUP: [ArgType; 5] = [
    A::PTR_TO_CTX,
    MEM_RDONLY,
    A::CONST_SIZE,
    A::ANYTHING,
    A::ANYTHING,
];

/// `bpf_tcp_{check,gen}_syncookie`: (socket, IP header, its size, TCP header, its size).
const SYNCOOKIE: [ArgType; 5] = [
    A::PTR_TO_BTF_ID_SOCK_COMMON,
    MEM_RDONLY,
    A::CONST_SIZE,
    MEM_RDONLY,
    A::CONST_SIZE,
];

const fn p(id: u32, name: &'static str, ret: RetType, args: &[ArgType]) -> HelperProto {
    HelperProto::new(id, name, ret, args)
}

/// The prototypes bpfsim knows, sorted by id (kernel/bpf/helpers.c, ringbuf.c, bpf_iter.c,
/// core.c, stackmap.c, kernel/trace/bpf_trace.c, net/core/filter.c). Where the kernel hands out
/// a different `bpf_func_proto` per program type, the shape is the same for every type
/// [`allowed`] covers unless the entry says otherwise; [`proto_for`] returns the exceptions.
#[rustfmt::skip]
pub const PROTOS: &[HelperProto] = &[
    p(1, "map_lookup_elem", R::PTR_TO_MAP_VALUE_OR_NULL, &[A::CONST_MAP_PTR, A::PTR_TO_MAP_KEY]).pkt(),
    p(2, "map_update_elem", R::INTEGER,
      &[A::CONST_MAP_PTR, A::PTR_TO_MAP_KEY, A::PTR_TO_MAP_VALUE, A::ANYTHING]).pkt(),
    p(3, "map_delete_elem", R::INTEGER, &[A::CONST_MAP_PTR, A::PTR_TO_MAP_KEY]).pkt(),
    // kernel/trace/bpf_trace.c `bpf_probe_read_compat_proto`: only on architectures whose user
    // and kernel address spaces do not overlap (x86 yes, arm64 no).
    p(4, "probe_read", R::INTEGER, &PROBE_READ).gpl(),
    p(5, "ktime_get_ns", R::INTEGER, &[]),
    p(6, "trace_printk", R::INTEGER, &[MEM_RDONLY, A::CONST_SIZE]).gpl(),
    p(7, "get_prandom_u32", R::INTEGER, &[]),
    // Networking and tracing programs get `bpf_get_smp_processor_id_proto` (allow_fastcall);
    // programs that fall through to `bpf_base_func_proto` (socket filter, cgroup skb) get
    // `bpf_get_raw_smp_processor_id_proto`, which has no allow_fastcall.
    p(8, "get_smp_processor_id", R::INTEGER, &[]).fastcall(),
    p(9, "skb_store_bytes", R::INTEGER,
      &[A::PTR_TO_CTX, A::ANYTHING, MEM_RDONLY, A::CONST_SIZE, A::ANYTHING]),
    p(10, "l3_csum_replace", R::INTEGER,
      &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING, A::ANYTHING, A::ANYTHING]),
    p(11, "l4_csum_replace", R::INTEGER,
      &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING, A::ANYTHING, A::ANYTHING]),
    // kernel/bpf/core.c; the verifier rewrites the call into a tail call.
    p(12, "tail_call", R::VOID, &[A::PTR_TO_CTX, A::CONST_MAP_PTR, A::ANYTHING]),
    p(13, "clone_redirect", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING]),
    p(14, "get_current_pid_tgid", R::INTEGER, &[]),
    p(15, "get_current_uid_gid", R::INTEGER, &[]),
    p(16, "get_current_comm", R::INTEGER, &[UNINIT, A::CONST_SIZE]),
    // TC's `bpf_get_cgroup_classid_proto` (of the skb); other types get the `current` variant
    // without arguments from `bpf_base_func_proto` (see [`proto_for`]).
    p(17, "get_cgroup_classid", R::INTEGER, &[A::PTR_TO_CTX]),
    p(18, "skb_vlan_push", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING]),
    p(19, "skb_vlan_pop", R::INTEGER, &[A::PTR_TO_CTX]),
    p(20, "skb_get_tunnel_key", R::INTEGER, &[A::PTR_TO_CTX, UNINIT, A::CONST_SIZE, A::ANYTHING]),
    p(21, "skb_set_tunnel_key", R::INTEGER,
      &[A::PTR_TO_CTX, MEM_RDONLY, A::CONST_SIZE, A::ANYTHING]),
    // XDP gets `bpf_xdp_redirect_proto`, TC `bpf_redirect_proto`: same shape.
    // Program types with `bpf_perf_event_read` (kernel/trace/bpf_trace.c) take a perf event
    // array: `check_map_func_compatibility` pairs them.
    p(22, "perf_event_read", R::INTEGER, &[A::CONST_MAP_PTR, A::ANYTHING]).gpl(),
    p(23, "redirect", R::INTEGER, &[A::ANYTHING, A::ANYTHING]),
    p(24, "get_route_realm", R::INTEGER, &[A::PTR_TO_CTX]),
    // skb, xdp and tracing variants (`bpf_skb_event_output_proto`, `bpf_xdp_event_output_proto`,
    // `bpf_perf_event_output_proto{,_tp,_raw_tp}`) share this shape.
    p(25, "perf_event_output", R::INTEGER, &EVENT_OUTPUT).gpl(),
    p(26, "skb_load_bytes", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, UNINIT, A::CONST_SIZE]),
    // kprobe, tracepoint, raw tracepoint and perf event variants share this shape, but the perf
    // event one (`bpf_get_stackid_proto_pe`, kernel/bpf/stackmap.c) is not GPL-only.
    p(27, "get_stackid", R::INTEGER, &[A::PTR_TO_CTX, A::CONST_MAP_PTR, A::ANYTHING]).gpl(),
    p(28, "csum_diff", R::INTEGER,
      &[MEM_OR_NULL_RDONLY, A::CONST_SIZE_OR_ZERO, MEM_OR_NULL_RDONLY, A::CONST_SIZE_OR_ZERO,
        A::ANYTHING]).pkt(),
    p(29, "skb_get_tunnel_opt", R::INTEGER, &[A::PTR_TO_CTX, UNINIT, A::CONST_SIZE]),
    p(30, "skb_set_tunnel_opt", R::INTEGER, &[A::PTR_TO_CTX, MEM_RDONLY, A::CONST_SIZE]),
    p(31, "skb_change_proto", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING]),
    p(32, "skb_change_type", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(33, "skb_under_cgroup", R::INTEGER, &[A::PTR_TO_CTX, A::CONST_MAP_PTR, A::ANYTHING]),
    p(34, "get_hash_recalc", R::INTEGER, &[A::PTR_TO_CTX]),
    p(35, "get_current_task", R::INTEGER, &[]).gpl(),
    // Handed out to tracing programs only with CAP_SYS_ADMIN and without kernel lockdown.
    p(36, "probe_write_user", R::INTEGER, &[A::ANYTHING, MEM_RDONLY, A::CONST_SIZE]).gpl(),
    // The map must be a cgroup array (`check_map_func_compatibility`).
    p(37, "current_task_under_cgroup", R::INTEGER, &[A::CONST_MAP_PTR, A::ANYTHING]),
    p(38, "skb_change_tail", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING]),
    p(39, "skb_pull_data", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(40, "csum_update", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(41, "set_hash_invalid", R::INTEGER, &[A::PTR_TO_CTX]),
    p(42, "get_numa_node_id", R::INTEGER, &[]),
    p(43, "skb_change_head", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING]),
    p(44, "xdp_adjust_head", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(45, "probe_read_str", R::INTEGER, &PROBE_READ).gpl(),
    p(46, "get_socket_cookie", R::INTEGER, &[A::PTR_TO_CTX]),
    p(47, "get_socket_uid", R::INTEGER, &[A::PTR_TO_CTX]),
    p(48, "set_hash", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(50, "skb_adjust_room", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING, A::ANYTHING]),
    p(51, "redirect_map", R::INTEGER, &[A::CONST_MAP_PTR, A::ANYTHING, A::ANYTHING]),
    p(54, "xdp_adjust_meta", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(55, "perf_event_read_value", R::INTEGER,
      &[A::CONST_MAP_PTR, A::ANYTHING, UNINIT, A::CONST_SIZE]).gpl(),
    // Perf event programs only.
    p(56, "perf_prog_read_value", R::INTEGER, &[A::PTR_TO_CTX, UNINIT, A::CONST_SIZE]).gpl(),
    p(65, "xdp_adjust_tail", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(66, "skb_get_xfrm_state", R::INTEGER,
      &[A::PTR_TO_CTX, A::ANYTHING, UNINIT, A::CONST_SIZE, A::ANYTHING]),
    // kprobe (`bpf_get_stack_proto`), tracepoint (`_tp`) and perf event (`_pe`) programs; raw
    // tracepoint and tracing programs get `bpf_get_stack_proto_raw_tp`, whose buffer is
    // `MEM_RDONLY` in 6.18 (so it must be initialised; see [`proto_for`]).
    p(67, "get_stack", R::INTEGER, &[A::PTR_TO_CTX, UNINIT, A::CONST_SIZE_OR_ZERO, A::ANYTHING]).gpl(),
    p(68, "skb_load_bytes_relative", R::INTEGER,
      &[A::PTR_TO_CTX, A::ANYTHING, UNINIT, A::CONST_SIZE, A::ANYTHING]),
    // The params struct is read and written. A fix proposed in January 2026 ("bpf: Fix memory
    // access flags in helper prototypes") adds MEM_WRITE; 6.18 has plain ARG_PTR_TO_MEM.
    p(69, "fib_lookup", R::INTEGER, &[A::PTR_TO_CTX, A::PTR_TO_MEM, A::CONST_SIZE, A::ANYTHING]).gpl(),
    p(79, "skb_cgroup_id", R::INTEGER, &[A::PTR_TO_CTX]),
    p(80, "get_current_cgroup_id", R::INTEGER, &[]),
    // The program's cgroup storage: never NULL, a value of the (percpu) cgroup storage map
    // given; the flags must be 0 (`check_helper_call`).
    p(81, "get_local_storage", R::new(RetBase::PtrToMapValue), &[A::CONST_MAP_PTR, A::ANYTHING]),
    p(83, "skb_ancestor_cgroup_id", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(84, "sk_lookup_tcp", R::PTR_TO_SOCKET_OR_NULL, &SK_LOOKUP).pkt(),
    p(85, "sk_lookup_udp", R::PTR_TO_SOCKET_OR_NULL, &SK_LOOKUP).pkt(),
    p(86, "sk_release", R::INTEGER,
      &[A::PTR_TO_BTF_ID_SOCK_COMMON.with(TypeFlags::OBJ_RELEASE)]),
    p(87, "map_push_elem", R::INTEGER, &[A::CONST_MAP_PTR, A::PTR_TO_MAP_VALUE, A::ANYTHING]).pkt(),
    p(88, "map_pop_elem", R::INTEGER,
      &[A::CONST_MAP_PTR, A::PTR_TO_MAP_VALUE.with(TypeFlags::MEM_UNINIT).with(TypeFlags::MEM_WRITE)]),
    p(89, "map_peek_elem", R::INTEGER,
      &[A::CONST_MAP_PTR, A::PTR_TO_MAP_VALUE.with(TypeFlags::MEM_UNINIT).with(TypeFlags::MEM_WRITE)]),
    p(93, "spin_lock", R::VOID, &[A::PTR_TO_SPIN_LOCK]).aux(0, ArgAux::Poison),
    p(94, "spin_unlock", R::VOID, &[A::PTR_TO_SPIN_LOCK]).aux(0, ArgAux::Poison),
    p(95, "sk_fullsock", R::PTR_TO_SOCKET_OR_NULL, &[A::PTR_TO_SOCK_COMMON]),
    p(96, "tcp_sock", R::PTR_TO_TCP_SOCK_OR_NULL, &[A::PTR_TO_SOCK_COMMON]),
    p(97, "skb_ecn_set_ce", R::INTEGER, &[A::PTR_TO_CTX]),
    p(98, "get_listener_sock", R::PTR_TO_SOCKET_OR_NULL, &[A::PTR_TO_SOCK_COMMON]),
    p(99, "skc_lookup_tcp", R::PTR_TO_SOCK_COMMON_OR_NULL, &SK_LOOKUP).pkt(),
    p(100, "tcp_check_syncookie", R::INTEGER, &SYNCOOKIE).gpl().pkt(),
    p(105, "strtol", R::INTEGER, &[MEM_RDONLY, A::CONST_SIZE, A::ANYTHING, FIXED_OUT])
        .aux(3, ArgAux::Size(8)),
    p(106, "strtoul", R::INTEGER, &[MEM_RDONLY, A::CONST_SIZE, A::ANYTHING, FIXED_OUT])
        .aux(3, ArgAux::Size(8)),
    // `bpf_send_signal{,_thread}` (kernel/trace/bpf_trace.c): the signal number.
    // `bpf_sk_storage_{get,delete}_proto` of networking programs. Tracing programs get the
    // `_tracing` variants, whose socket is a BTF pointer that may be NULL (see [`proto_for`]).
    p(107, "sk_storage_get", R::PTR_TO_MAP_VALUE_OR_NULL,
      &[A::CONST_MAP_PTR, A::PTR_TO_BTF_ID_SOCK_COMMON,
        A::PTR_TO_MAP_VALUE.with(TypeFlags::PTR_MAYBE_NULL), A::ANYTHING]),
    p(108, "sk_storage_delete", R::INTEGER, &[A::CONST_MAP_PTR, A::PTR_TO_BTF_ID_SOCK_COMMON]),
    p(109, "send_signal", R::INTEGER, &[A::ANYTHING]),
    p(110, "tcp_gen_syncookie", R::INTEGER, &SYNCOOKIE).gpl().pkt(),
    p(112, "probe_read_user", R::INTEGER, &PROBE_READ).gpl(),
    p(113, "probe_read_kernel", R::INTEGER, &PROBE_READ).gpl(),
    p(114, "probe_read_user_str", R::INTEGER, &PROBE_READ).gpl(),
    p(115, "probe_read_kernel_str", R::INTEGER, &PROBE_READ).gpl(),
    p(117, "send_signal_thread", R::INTEGER, &[A::ANYTHING]),
    p(118, "jiffies64", R::INTEGER, &[]),
    // Perf event programs only. The buffer may be NULL (a size query with
    // BPF_F_GET_BRANCH_RECORDS_SIZE); plain ARG_PTR_TO_MEM_OR_NULL in 6.18 (MEM_WRITE since the
    // January 2026 flags fix).
    p(119, "read_branch_records", R::INTEGER,
      &[A::PTR_TO_CTX, A::PTR_TO_MEM_OR_NULL, A::CONST_SIZE_OR_ZERO, A::ANYTHING]).gpl(),
    p(120, "get_ns_current_pid_tgid", R::INTEGER, &[A::ANYTHING, A::ANYTHING, UNINIT, A::CONST_SIZE]),
    // The socket filter and TC variant (`bpf_get_netns_cookie_proto`, 6.15).
    p(122, "get_netns_cookie", R::INTEGER, &[A::PTR_TO_CTX_OR_NULL]),
    p(123, "get_current_ancestor_cgroup_id", R::INTEGER, &[A::ANYTHING]),
    // TC's `bpf_sk_assign_proto` (sk_lookup programs have a different one, not modelled).
    p(124, "sk_assign", R::INTEGER, &[A::PTR_TO_CTX, A::PTR_TO_BTF_ID_SOCK_COMMON, A::ANYTHING]),
    p(125, "ktime_get_boot_ns", R::INTEGER, &[]),
    p(128, "sk_cgroup_id", R::INTEGER, &[A::PTR_TO_BTF_ID_SOCK_COMMON]),
    p(129, "sk_ancestor_cgroup_id", R::INTEGER, &[A::PTR_TO_BTF_ID_SOCK_COMMON, A::ANYTHING]),
    p(130, "ringbuf_output", R::INTEGER,
      &[A::CONST_MAP_PTR, MEM_RDONLY, A::CONST_SIZE_OR_ZERO, A::ANYTHING]),
    p(131, "ringbuf_reserve", R::PTR_TO_RINGBUF_MEM_OR_NULL,
      &[A::CONST_MAP_PTR, A::CONST_ALLOC_SIZE_OR_ZERO, A::ANYTHING]),
    p(132, "ringbuf_submit", R::VOID, &[A::PTR_TO_RINGBUF_MEM.with(TypeFlags::OBJ_RELEASE), A::ANYTHING]),
    p(133, "ringbuf_discard", R::VOID, &[A::PTR_TO_RINGBUF_MEM.with(TypeFlags::OBJ_RELEASE), A::ANYTHING]),
    p(134, "ringbuf_query", R::INTEGER, &[A::CONST_MAP_PTR, A::ANYTHING]),
    p(135, "csum_level", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING]),
    p(148, "copy_from_user", R::INTEGER, &[UNINIT, A::CONST_SIZE_OR_ZERO, A::ANYTHING]).sleeps(),
    p(151, "skb_cgroup_classid", R::INTEGER, &[A::PTR_TO_CTX]),
    p(152, "redirect_neigh", R::INTEGER,
      &[A::ANYTHING, MEM_OR_NULL_RDONLY, A::CONST_SIZE_OR_ZERO, A::ANYTHING]),
    p(155, "redirect_peer", R::INTEGER, &[A::ANYTHING, A::ANYTHING]),
    p(160, "ktime_get_coarse_ns", R::INTEGER, &[]),
    // `mtu_len` is read and written: MEM_UNINIT was dropped in 6.12 ("bpf: Remove MEM_UNINIT
    // from skb/xdp MTU helpers"); before that it was ARG_PTR_TO_INT.
    p(163, "check_mtu", R::INTEGER,
      &[A::PTR_TO_CTX, A::ANYTHING,
        A::PTR_TO_FIXED_SIZE_MEM.with(TypeFlags::MEM_WRITE).with(TypeFlags::MEM_ALIGNED),
        A::ANYTHING, A::ANYTHING]).gpl().aux(2, ArgAux::Size(4)),
    p(164, "for_each_map_elem", R::INTEGER,
      &[A::CONST_MAP_PTR, A::PTR_TO_FUNC, A::PTR_TO_STACK_OR_NULL, A::ANYTHING]),
    p(165, "snprintf", R::INTEGER,
      &[A::PTR_TO_MEM_OR_NULL, A::CONST_SIZE_OR_ZERO, A::PTR_TO_CONST_STR, MEM_OR_NULL_RDONLY,
        A::CONST_SIZE_OR_ZERO]).gpl(),
    // Every variant (`_tracing`, `_kprobe`, `_kprobe_multi`, `_uprobe_multi`) has this shape.
    p(173, "get_func_ip", R::INTEGER, &[A::PTR_TO_CTX]).gpl(),
    p(174, "get_attach_cookie", R::INTEGER, &[A::PTR_TO_CTX]),
    p(176, "get_branch_snapshot", R::INTEGER, &[UNINIT, A::CONST_SIZE_OR_ZERO]).gpl(),
    p(177, "trace_vprintk", R::INTEGER,
      &[MEM_RDONLY, A::CONST_SIZE, MEM_OR_NULL_RDONLY, A::CONST_SIZE_OR_ZERO]).gpl(),
    p(181, "loop", R::INTEGER, &[A::ANYTHING, A::PTR_TO_FUNC, A::PTR_TO_STACK_OR_NULL, A::ANYTHING]),
    p(182, "strncmp", R::INTEGER, &[MEM_RDONLY, A::CONST_SIZE, A::PTR_TO_CONST_STR]),
    // The trampoline's frame (fentry, fexit, fmod_ret, LSM: see [`allowed_for`]); the verifier
    // inlines them. The value is written to a u64 (`argN_size` 8, aligned).
    p(183, "get_func_arg", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, FIXED_OUT]).aux(2, ArgAux::Size(8)),
    p(184, "get_func_ret", R::INTEGER, &[A::PTR_TO_CTX, FIXED_OUT]).aux(1, ArgAux::Size(8)),
    p(185, "get_func_arg_cnt", R::INTEGER, &[A::PTR_TO_CTX]),
    p(188, "xdp_get_buff_len", R::INTEGER, &[A::PTR_TO_CTX]),
    p(189, "xdp_load_bytes", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, UNINIT, A::CONST_SIZE]),
    // The buffer is only read; ARG_PTR_TO_UNINIT_MEM until a 2025 fix (in 6.18, backported to
    // stable releases) made it ARG_PTR_TO_MEM | MEM_RDONLY.
    p(190, "xdp_store_bytes", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, MEM_RDONLY, A::CONST_SIZE]),
    p(192, "skb_set_tstamp", R::INTEGER, &[A::PTR_TO_CTX, A::ANYTHING, A::ANYTHING]),
    p(195, "map_lookup_percpu_elem", R::PTR_TO_MAP_VALUE_OR_NULL,
      &[A::CONST_MAP_PTR, A::PTR_TO_MAP_KEY, A::ANYTHING]).pkt(),
    // The headers are only read: plain ARG_PTR_TO_MEM in 6.18 (the January 2026 flags fix makes
    // them MEM_RDONLY); `argN_size` is sizeof(struct iphdr) 20, ipv6hdr 40, tcphdr 20.
    p(204, "tcp_raw_gen_syncookie_ipv4", R::INTEGER,
      &[A::PTR_TO_FIXED_SIZE_MEM, A::PTR_TO_MEM, A::CONST_SIZE_OR_ZERO]).gpl().pkt()
        .aux(0, ArgAux::Size(20)),
    p(205, "tcp_raw_gen_syncookie_ipv6", R::INTEGER,
      &[A::PTR_TO_FIXED_SIZE_MEM, A::PTR_TO_MEM, A::CONST_SIZE_OR_ZERO]).gpl().pkt()
        .aux(0, ArgAux::Size(40)),
    p(206, "tcp_raw_check_syncookie_ipv4", R::INTEGER,
      &[A::PTR_TO_FIXED_SIZE_MEM, A::PTR_TO_FIXED_SIZE_MEM]).gpl().pkt()
        .aux(0, ArgAux::Size(20)).aux(1, ArgAux::Size(20)),
    p(207, "tcp_raw_check_syncookie_ipv6", R::INTEGER,
      &[A::PTR_TO_FIXED_SIZE_MEM, A::PTR_TO_FIXED_SIZE_MEM]).gpl().pkt()
        .aux(0, ArgAux::Size(40)).aux(1, ArgAux::Size(20)),
    p(208, "ktime_get_tai_ns", R::INTEGER, &[]),
];

/// The prototype of helper `id`, if bpfsim knows it.
pub fn proto(id: u32) -> Option<&'static HelperProto> {
    PROTOS
        .binary_search_by_key(&id, |p| p.id)
        .ok()
        .map(|i| &PROTOS[i])
}

/// `bpf_get_cgroup_classid_curr_proto`: the classid of the current task's cgroup.
static GET_CGROUP_CLASSID_CURR: HelperProto = p(17, "get_cgroup_classid", R::INTEGER, &[]);
/// `bpf_get_raw_smp_processor_id_proto`: as `bpf_get_smp_processor_id_proto` without
/// `allow_fastcall`.
static GET_RAW_SMP_PROCESSOR_ID: HelperProto = p(8, "get_smp_processor_id", R::INTEGER, &[]);

/// `bpf_get_stackid_proto_pe`: perf event programs' `bpf_get_stackid`, not GPL-only.
static GET_STACKID_PE: HelperProto = p(
    27,
    "get_stackid",
    R::INTEGER,
    &[A::PTR_TO_CTX, A::CONST_MAP_PTR, A::ANYTHING],
);

/// `bpf_get_stack_proto_raw_tp`: raw tracepoint and tracing programs' `bpf_get_stack`, whose
/// buffer is `ARG_PTR_TO_MEM | MEM_RDONLY` in 6.18 (a 2026 fix makes it uninit memory).
static GET_STACK_RAW_TP: HelperProto = p(
    67,
    "get_stack",
    R::INTEGER,
    &[
        A::PTR_TO_CTX,
        MEM_RDONLY,
        A::CONST_SIZE_OR_ZERO,
        A::ANYTHING,
    ],
)
.gpl();

/// The prototype of helper `id` as a program of `prog_type` sees it (the kernel hands out a
/// different `bpf_func_proto` per program type for a few helpers): `None` when the program type
/// may not call it ([`allowed`]) or bpfsim does not know its prototype for that type.
pub fn proto_for(prog_type: ProgType, id: u32) -> Option<&'static HelperProto> {
    if !allowed(prog_type, id) {
        return None;
    }
    let tc = matches!(prog_type, ProgType::SchedCls | ProgType::SchedAct);
    let base_only = matches!(prog_type, ProgType::SocketFilter | ProgType::CgroupSkb);
    match id {
        17 if !tc => Some(&GET_CGROUP_CLASSID_CURR),
        8 if base_only => Some(&GET_RAW_SMP_PROCESSOR_ID),
        27 if prog_type == ProgType::PerfEvent => Some(&GET_STACKID_PE),
        // `bpf_sk_storage_{get,delete}_tracing_proto` (ARG_PTR_TO_BTF_ID_OR_NULL): not modelled.
        107 | 108 if matches!(prog_type, ProgType::Tracing | ProgType::Lsm) => None,
        67 if matches!(
            prog_type,
            ProgType::RawTracepoint | ProgType::Tracing | ProgType::Lsm
        ) =>
        {
            Some(&GET_STACK_RAW_TP)
        }
        _ => proto(id),
    }
}

/// The loader's privileges, which `get_func_proto` consults (`bpf_token_capable`, `capable`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Caps {
    /// `CAP_BPF` (or `CAP_SYS_ADMIN`): spin locks, `bpf_loop`, timers, dynptrs, ...
    pub bpf: bool,
    /// `CAP_PERFMON` (or `CAP_SYS_ADMIN`): `bpf_trace_printk`, `bpf_probe_read_*`,
    /// `bpf_snprintf`, `bpf_skc_to_*`, ...
    pub perfmon: bool,
    /// `CAP_SYS_ADMIN`: `bpf_probe_write_user` (and only without kernel lockdown).
    pub sys_admin: bool,
}

impl Caps {
    /// root: every capability.
    pub const ROOT: Caps = Caps {
        bpf: true,
        perfmon: true,
        sys_admin: true,
    };
    /// `CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN` without `CAP_SYS_ADMIN`.
    pub const BPF_PERFMON: Caps = Caps {
        bpf: true,
        perfmon: true,
        sys_admin: false,
    };
    /// An unprivileged loader (only socket filters and cgroup skb programs can be loaded so).
    pub const NONE: Caps = Caps {
        bpf: false,
        perfmon: false,
        sys_admin: false,
    };
}

/// The kernel lockdown level (`security_locked_down`), which withholds some tracing helpers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Lockdown {
    None,
    /// `lockdown=integrity`: no `bpf_probe_write_user` (`LOCKDOWN_BPF_WRITE_USER`).
    Integrity,
    /// `lockdown=confidentiality`: also no `bpf_probe_read_kernel{,_str}` nor the legacy
    /// `bpf_probe_read{,_str}` (`LOCKDOWN_BPF_READ_KERNEL`).
    Confidentiality,
}

/// The kernel build and boot facts availability depends on for the covered program types.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KernelConfig {
    /// `CONFIG_BPF_KPROBE_OVERRIDE`: `bpf_override_return` for kprobes.
    pub kprobe_override: bool,
    /// `CONFIG_ARCH_HAS_NON_OVERLAPPING_ADDRESS_SPACE` (x86, not arm64): the legacy
    /// `bpf_probe_read` and `bpf_probe_read_str`.
    pub non_overlapping_address_space: bool,
    pub lockdown: Lockdown,
}

impl KernelConfig {
    /// The reference kernel: 6.18 on x86_64 without `CONFIG_BPF_KPROBE_OVERRIDE` and with
    /// `CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY` (so `bpf_probe_write_user` is never handed out,
    /// even to root). Every other option that matters here (`CONFIG_INET`, `CONFIG_CGROUPS`,
    /// `CONFIG_SOCK_CGROUP_DATA`, `CONFIG_CGROUP_NET_CLASSID`, `CONFIG_SYN_COOKIES`,
    /// `CONFIG_XFRM`) is set.
    pub const REFERENCE: KernelConfig = KernelConfig {
        kprobe_override: false,
        non_overlapping_address_space: true,
        lockdown: Lockdown::Integrity,
    };

    /// A typical distribution kernel on x86_64 booted without lockdown.
    pub const UNLOCKED: KernelConfig = KernelConfig {
        kprobe_override: true,
        non_overlapping_address_space: true,
        lockdown: Lockdown::None,
    };
}

/// Why a `get_func_proto` callback hands out a prototype: always, or behind a capability, a
/// configuration option or the lockdown level.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gate {
    Always,
    CapBpf,
    CapPerfmon,
    /// `CAP_PERFMON`, and `LOCKDOWN_BPF_READ_KERNEL` not locked down.
    PerfmonReadKernel,
    /// `CONFIG_ARCH_HAS_NON_OVERLAPPING_ADDRESS_SPACE`, and `LOCKDOWN_BPF_READ_KERNEL` not
    /// locked down.
    ReadKernelCompat,
    /// `CAP_SYS_ADMIN`, and `LOCKDOWN_BPF_WRITE_USER` not locked down.
    WriteUser,
    KprobeOverride,
}

impl Gate {
    fn open(self, caps: Caps, config: KernelConfig) -> bool {
        let read_kernel = config.lockdown < Lockdown::Confidentiality;
        match self {
            Gate::Always => true,
            Gate::CapBpf => caps.bpf,
            Gate::CapPerfmon => caps.perfmon,
            Gate::PerfmonReadKernel => caps.perfmon && read_kernel,
            Gate::ReadKernelCompat => config.non_overlapping_address_space && read_kernel,
            Gate::WriteUser => caps.sys_admin && config.lockdown == Lockdown::None,
            Gate::KprobeOverride => config.kprobe_override,
        }
    }
}

/// Whether a program of `prog_type` may call helper `id`: the program type's `get_func_proto`
/// returns a prototype, for a root loader on the reference kernel ([`Caps::ROOT`],
/// [`KernelConfig::REFERENCE`]). Covered program types are [`COVERED_PROG_TYPES`], with tracing
/// and LSM programs approximated (the union over their attach types); `false` for the others.
pub fn allowed(prog_type: ProgType, id: u32) -> bool {
    allowed_with(prog_type, id, Caps::ROOT, KernelConfig::REFERENCE)
}

/// [`allowed`] for a program loaded with `attach`: the helpers that read a trampoline's frame
/// (`get_func_arg`, `get_func_arg_cnt`, `get_func_ret`) exist only for tracing and LSM
/// programs attached through one (`bpf_prog_has_trampoline`): not for `tp_btf` or iterators.
pub fn allowed_for(
    prog_type: ProgType,
    attach: Option<crate::loader::AttachType>,
    id: u32,
) -> bool {
    use crate::loader::AttachType as A;
    let trampoline_only = matches!(
        helper_name(i64::from(id)),
        Some("get_func_arg" | "get_func_arg_cnt" | "get_func_ret")
    );
    if trampoline_only && matches!(prog_type, ProgType::Tracing | ProgType::Lsm) {
        let trampoline = matches!(
            attach,
            Some(A::TraceFentry | A::TraceFexit | A::ModifyReturn | A::LsmMac | A::LsmCgroup)
        );
        return trampoline && allowed(prog_type, id);
    }
    allowed(prog_type, id)
}

/// [`allowed`] for a loader with `caps` on a kernel built and booted as `config`.
pub fn allowed_with(prog_type: ProgType, id: u32, caps: Caps, config: KernelConfig) -> bool {
    let Some(name) = helper_name(i64::from(id)) else {
        return false;
    };
    let gate = match prog_type {
        ProgType::SocketFilter => sk_filter(name),
        ProgType::CgroupSkb => cg_skb(name),
        ProgType::SchedCls | ProgType::SchedAct => tc_cls_act(name),
        ProgType::Xdp => xdp(name),
        ProgType::Kprobe => kprobe(name),
        ProgType::Tracepoint => tracepoint(name),
        ProgType::RawTracepoint => raw_tracepoint(name),
        ProgType::PerfEvent => perf_event(name),
        ProgType::Tracing => tracing_prog(name),
        ProgType::Lsm => lsm(name),
        _ => None,
    };
    gate.is_some_and(|g| g.open(caps, config))
}

/// The program types [`allowed`] models.
pub const COVERED_PROG_TYPES: &[ProgType] = &[
    ProgType::SocketFilter,
    ProgType::Kprobe,
    ProgType::SchedCls,
    ProgType::SchedAct,
    ProgType::Tracepoint,
    ProgType::Xdp,
    ProgType::PerfEvent,
    ProgType::CgroupSkb,
    ProgType::RawTracepoint,
];

/// `name` is in `list`.
fn listed(list: &[&str], name: &str) -> bool {
    list.contains(&name)
}

/// `bpf_base_func_proto`, first tier: every loader.
#[rustfmt::skip]
const BASE: &[&str] = &[
    "map_lookup_elem", "map_update_elem", "map_delete_elem", "map_push_elem", "map_pop_elem",
    "map_peek_elem", "map_lookup_percpu_elem", "get_prandom_u32", "get_smp_processor_id",
    "get_numa_node_id", "tail_call", "ktime_get_ns", "ktime_get_boot_ns", "ktime_get_tai_ns",
    "ringbuf_output", "ringbuf_reserve", "ringbuf_submit", "ringbuf_discard", "ringbuf_query",
    "strncmp", "strtol", "strtoul", "get_current_pid_tgid", "get_ns_current_pid_tgid",
    "get_current_uid_gid",
];

/// `bpf_base_func_proto`, second tier: `CAP_BPF`.
#[rustfmt::skip]
const BASE_CAP_BPF: &[&str] = &[
    "spin_lock", "spin_unlock", "jiffies64", "per_cpu_ptr", "this_cpu_ptr", "timer_init",
    "timer_set_callback", "timer_start", "timer_cancel", "kptr_xchg", "for_each_map_elem", "loop",
    "user_ringbuf_drain", "ringbuf_reserve_dynptr", "ringbuf_submit_dynptr",
    "ringbuf_discard_dynptr", "dynptr_from_mem", "dynptr_read", "dynptr_write", "dynptr_data",
    "cgrp_storage_get", "cgrp_storage_delete", "get_current_cgroup_id",
    "get_current_ancestor_cgroup_id", "current_task_under_cgroup", "get_cgroup_classid",
    "task_storage_get", "task_storage_delete",
];

/// `bpf_base_func_proto`, third tier: `CAP_PERFMON` (`probe_read_kernel{,_str}` also need
/// `LOCKDOWN_BPF_READ_KERNEL` open).
#[rustfmt::skip]
const BASE_CAP_PERFMON: &[&str] = &[
    "trace_printk", "get_current_task", "get_current_task_btf", "get_current_comm",
    "probe_read_user", "probe_read_user_str", "copy_from_user", "copy_from_user_task",
    "snprintf_btf", "snprintf", "task_pt_regs", "trace_vprintk", "perf_event_read_value",
    "perf_event_read", "send_signal", "send_signal_thread", "get_task_stack", "get_branch_snapshot",
    "find_vma",
];

/// `bpf_base_func_proto` (kernel/bpf/helpers.c): three tiers, the last two behind `CAP_BPF` and
/// `CAP_PERFMON` (`bpf_token_capable`).
///
/// The set grew a lot recently, which is why networking programs may now call many "tracing"
/// helpers: `get_current_pid_tgid` and `get_ns_current_pid_tgid` joined the first tier in 6.10;
/// in 6.16 (Feng Yang's series moving generic helpers out of `bpf_tracing_func_proto` and the
/// cgroup callbacks) `get_current_uid_gid` joined the first tier, `current_task_under_cgroup`,
/// the `current` variant of `get_cgroup_classid` and the task storage helpers the `CAP_BPF`
/// tier, and `get_current_comm`, `copy_from_user{,_task}`, `perf_event_read{,_value}`,
/// `send_signal{,_thread}`, `get_task_stack`, `get_branch_snapshot` and `find_vma` the
/// `CAP_PERFMON` tier. (Which privileged tier holds the task storage helpers moved during
/// review; it only matters to a loader with `CAP_BPF` but not `CAP_PERFMON`.)
fn base(name: &str) -> Option<Gate> {
    if listed(BASE, name) {
        Some(Gate::Always)
    } else if listed(BASE_CAP_BPF, name) {
        Some(Gate::CapBpf)
    } else if listed(BASE_CAP_PERFMON, name) {
        Some(Gate::CapPerfmon)
    } else if matches!(name, "probe_read_kernel" | "probe_read_kernel_str") {
        Some(Gate::PerfmonReadKernel)
    } else {
        None
    }
}

/// The `bpf_skc_to_*` casts of `bpf_sk_base_func_proto`, behind `CAP_PERFMON`.
#[rustfmt::skip]
const SKC_TO: &[&str] = &[
    "skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock",
    "skc_to_udp6_sock", "skc_to_unix_sock", "skc_to_mptcp_sock",
];

/// `bpf_sk_base_func_proto` (net/core/filter.c): the `bpf_skc_to_*` casts behind `CAP_PERFMON`,
/// `ktime_get_coarse_ns` (networking programs only: tracing programs do not get it), then the
/// base set.
fn sk_base(name: &str) -> Option<Gate> {
    if listed(SKC_TO, name) {
        Some(Gate::CapPerfmon)
    } else if name == "ktime_get_coarse_ns" {
        Some(Gate::Always)
    } else {
        base(name)
    }
}

/// `sk_filter_func_proto`'s own cases (`get_netns_cookie` since 6.15, for Cilium/Tetragon).
#[rustfmt::skip]
const SK_FILTER: &[&str] = &[
    "skb_load_bytes", "skb_load_bytes_relative", "get_socket_cookie", "get_netns_cookie",
    "get_socket_uid", "perf_event_output",
];

/// `sk_filter_func_proto`: BPF_PROG_TYPE_SOCKET_FILTER.
fn sk_filter(name: &str) -> Option<Gate> {
    if listed(SK_FILTER, name) {
        Some(Gate::Always)
    } else {
        sk_base(name)
    }
}

/// `cg_skb_func_proto`'s own cases.
#[rustfmt::skip]
const CG_SKB: &[&str] = &[
    "get_local_storage", "sk_fullsock", "sk_storage_get", "sk_storage_delete", "perf_event_output",
    "skb_cgroup_id", "skb_ancestor_cgroup_id", "sk_cgroup_id", "sk_ancestor_cgroup_id",
    "sk_lookup_tcp", "sk_lookup_udp", "sk_release", "skc_lookup_tcp", "tcp_sock",
    "get_listener_sock", "skb_ecn_set_ce",
];

/// `cg_skb_func_proto`: BPF_PROG_TYPE_CGROUP_SKB, falling back to the socket filter set.
fn cg_skb(name: &str) -> Option<Gate> {
    if listed(CG_SKB, name) {
        Some(Gate::Always)
    } else {
        sk_filter(name)
    }
}

/// `tc_cls_act_func_proto`'s own cases (`get_netns_cookie` since 6.15).
#[rustfmt::skip]
const TC_CLS_ACT: &[&str] = &[
    "skb_store_bytes", "skb_load_bytes", "skb_load_bytes_relative", "skb_pull_data", "csum_diff",
    "csum_update", "csum_level", "l3_csum_replace", "l4_csum_replace", "clone_redirect",
    "get_cgroup_classid", "skb_vlan_push", "skb_vlan_pop", "skb_change_proto", "skb_change_type",
    "skb_adjust_room", "skb_change_tail", "skb_change_head", "skb_get_tunnel_key",
    "skb_set_tunnel_key", "skb_get_tunnel_opt", "skb_set_tunnel_opt", "redirect", "redirect_neigh",
    "redirect_peer", "get_route_realm", "get_hash_recalc", "set_hash_invalid", "set_hash",
    "perf_event_output", "get_smp_processor_id", "skb_under_cgroup", "get_socket_cookie",
    "get_netns_cookie", "get_socket_uid", "fib_lookup", "check_mtu", "sk_fullsock",
    "sk_storage_get", "sk_storage_delete", "skb_get_xfrm_state", "skb_cgroup_classid",
    "skb_cgroup_id", "skb_ancestor_cgroup_id", "sk_lookup_tcp", "sk_lookup_udp", "sk_release",
    "tcp_sock", "get_listener_sock", "skc_lookup_tcp", "tcp_check_syncookie", "skb_ecn_set_ce",
    "tcp_gen_syncookie", "sk_assign", "skb_set_tstamp", "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6", "tcp_raw_check_syncookie_ipv4", "tcp_raw_check_syncookie_ipv6",
];

/// `tc_cls_act_func_proto`: BPF_PROG_TYPE_SCHED_CLS and BPF_PROG_TYPE_SCHED_ACT.
fn tc_cls_act(name: &str) -> Option<Gate> {
    if listed(TC_CLS_ACT, name) {
        Some(Gate::Always)
    } else {
        sk_base(name)
    }
}

/// `xdp_func_proto`'s own cases.
#[rustfmt::skip]
const XDP: &[&str] = &[
    "perf_event_output", "get_smp_processor_id", "csum_diff", "xdp_adjust_head", "xdp_adjust_meta",
    "redirect", "redirect_map", "xdp_adjust_tail", "xdp_get_buff_len", "xdp_load_bytes",
    "xdp_store_bytes", "fib_lookup", "check_mtu", "sk_lookup_udp", "sk_lookup_tcp", "sk_release",
    "skc_lookup_tcp", "tcp_check_syncookie", "tcp_gen_syncookie", "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6", "tcp_raw_check_syncookie_ipv4", "tcp_raw_check_syncookie_ipv6",
];

/// `xdp_func_proto`: BPF_PROG_TYPE_XDP.
fn xdp(name: &str) -> Option<Gate> {
    if listed(XDP, name) {
        Some(Gate::Always)
    } else {
        sk_base(name)
    }
}

/// `bpf_tracing_func_proto` (kernel/trace/bpf_trace.c), shared by kprobe, tracepoint, raw
/// tracepoint and perf event programs. Since 6.16 its own list is short (the rest moved into
/// `bpf_base_func_proto`, see [`base`]): the fastcall `get_smp_processor_id`, `get_func_ip` and
/// the legacy `probe_read{,_str}` (deliberately kept away from other program types); then the
/// base set; then, since 6.14, `bpf_probe_write_user` for `CAP_SYS_ADMIN` (before, it sat in the
/// list). Loading a tracing program needs `CAP_BPF` and `CAP_PERFMON`, so every base tier is
/// open to it.
fn tracing(name: &str) -> Option<Gate> {
    match name {
        "get_smp_processor_id" | "get_func_ip" => Some(Gate::Always),
        "probe_read" | "probe_read_str" => Some(Gate::ReadKernelCompat),
        "probe_write_user" => Some(Gate::WriteUser),
        _ => base(name),
    }
}

/// `kprobe_prog_func_proto`: BPF_PROG_TYPE_KPROBE.
fn kprobe(name: &str) -> Option<Gate> {
    match name {
        "perf_event_output" | "get_stackid" | "get_stack" | "get_func_ip" | "get_attach_cookie" => {
            Some(Gate::Always)
        }
        "override_return" => Some(Gate::KprobeOverride),
        _ => tracing(name),
    }
}

/// `tp_prog_func_proto`: BPF_PROG_TYPE_TRACEPOINT.
fn tracepoint(name: &str) -> Option<Gate> {
    match name {
        "perf_event_output" | "get_stackid" | "get_stack" | "get_attach_cookie" => {
            Some(Gate::Always)
        }
        _ => tracing(name),
    }
}

/// `raw_tp_prog_func_proto`: BPF_PROG_TYPE_RAW_TRACEPOINT (`get_attach_cookie` since 6.10, when
/// raw tracepoints got BPF cookies).
fn raw_tracepoint(name: &str) -> Option<Gate> {
    match name {
        "perf_event_output" | "get_stackid" | "get_stack" | "get_attach_cookie" => {
            Some(Gate::Always)
        }
        _ => tracing(name),
    }
}

/// `tracing_prog_func_proto`: BPF_PROG_TYPE_TRACING (fentry, fexit, fmod_ret, tp_btf, iter),
/// the union over its attach types: the `seq_*` helpers of iterators are left out, and
/// `d_path`'s list of allowed attach functions is not checked.
fn tracing_prog(name: &str) -> Option<Gate> {
    match name {
        "skb_output"
        | "xdp_output"
        | "get_socket_cookie"
        | "xdp_get_buff_len"
        | "skc_to_tcp6_sock"
        | "skc_to_tcp_sock"
        | "skc_to_tcp_timewait_sock"
        | "skc_to_tcp_request_sock"
        | "skc_to_udp6_sock"
        | "skc_to_unix_sock"
        | "skc_to_mptcp_sock"
        | "sk_storage_get"
        | "sk_storage_delete"
        | "sock_from_file"
        | "d_path"
        | "get_func_arg"
        | "get_func_ret"
        | "get_func_arg_cnt"
        | "get_attach_cookie" => Some(Gate::Always),
        _ => raw_tracepoint(name),
    }
}

/// `bpf_lsm_func_proto`: BPF_PROG_TYPE_LSM, then the tracing set.
fn lsm(name: &str) -> Option<Gate> {
    match name {
        "inode_storage_get"
        | "inode_storage_delete"
        | "bprm_opts_set"
        | "ima_inode_hash"
        | "ima_file_hash"
        | "get_attach_cookie" => Some(Gate::Always),
        _ => tracing_prog(name),
    }
}

/// `pe_prog_func_proto`: BPF_PROG_TYPE_PERF_EVENT.
fn perf_event(name: &str) -> Option<Gate> {
    match name {
        "perf_event_output"
        | "get_stackid"
        | "get_stack"
        | "perf_prog_read_value"
        | "read_branch_records"
        | "get_attach_cookie" => Some(Gate::Always),
        _ => tracing(name),
    }
}
