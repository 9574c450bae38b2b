//! The typed instruction model: one variant per instruction form of RFC 9669 (v4 included) plus the
//! Linux extensions (pseudo `lddw` sources, kfunc calls, load-acquire/store-release, legacy packet loads).

use super::opcode::*;
use super::raw::RawInsn;

/// A general-purpose register, `r0` to `r10` (`r10` is the read-only frame pointer).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Reg(u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R6: Reg = Reg(6);
    pub const R9: Reg = Reg(9);
    pub const FP: Reg = Reg(10);
    pub const COUNT: usize = 11;

    /// `None` for numbers above 10: the ISA has 11 registers.
    pub const fn new(n: u8) -> Option<Reg> {
        if n <= 10 {
            Some(Reg(n))
        } else {
            None
        }
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }

    pub const fn num(self) -> u8 {
        self.0
    }
}

impl std::fmt::Display for Reg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Operand width of ALU and jump instructions: `BPF_ALU`/`BPF_JMP32` work on the low 32 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Width {
    W32,
    W64,
}

/// Access size of loads, stores and atomics.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub const fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    pub const fn bits(self) -> u32 {
        self.bytes() as u32 * 8
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            Size::B => SIZE_B,
            Size::H => SIZE_H,
            Size::W => SIZE_W,
            Size::DW => SIZE_DW,
        }
    }

    pub(crate) const fn from_code(code: u8) -> Size {
        match code & SIZE_MASK {
            SIZE_B => Size::B,
            SIZE_H => Size::H,
            SIZE_W => Size::W,
            _ => Size::DW,
        }
    }

    /// The dialect's suffix: `b`, `h`, `w`, `dw`.
    pub const fn suffix(self) -> &'static str {
        match self {
            Size::B => "b",
            Size::H => "h",
            Size::W => "w",
            Size::DW => "dw",
        }
    }
}

/// Second operand of ALU, jump and store instructions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Source {
    Reg(Reg),
    Imm(i32),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Signed division (v4: `BPF_DIV` with `off = 1`).
    SDiv,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    /// Signed modulo (v4: `BPF_MOD` with `off = 1`).
    SMod,
    Xor,
    Mov,
    Arsh,
}

impl AluOp {
    pub const ALL: [AluOp; 14] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::SDiv,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Mod,
        AluOp::SMod,
        AluOp::Xor,
        AluOp::Mov,
        AluOp::Arsh,
    ];

    pub(crate) const fn code(self) -> (u8, i16) {
        match self {
            AluOp::Add => (ALU_ADD, 0),
            AluOp::Sub => (ALU_SUB, 0),
            AluOp::Mul => (ALU_MUL, 0),
            AluOp::Div => (ALU_DIV, 0),
            AluOp::SDiv => (ALU_DIV, 1),
            AluOp::Or => (ALU_OR, 0),
            AluOp::And => (ALU_AND, 0),
            AluOp::Lsh => (ALU_LSH, 0),
            AluOp::Rsh => (ALU_RSH, 0),
            AluOp::Mod => (ALU_MOD, 0),
            AluOp::SMod => (ALU_MOD, 1),
            AluOp::Xor => (ALU_XOR, 0),
            AluOp::Mov => (ALU_MOV, 0),
            AluOp::Arsh => (ALU_ARSH, 0),
        }
    }

    /// The conformance dialect's mnemonic stem (`add`, `sdiv`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            AluOp::Add => "add",
            AluOp::Sub => "sub",
            AluOp::Mul => "mul",
            AluOp::Div => "div",
            AluOp::SDiv => "sdiv",
            AluOp::Or => "or",
            AluOp::And => "and",
            AluOp::Lsh => "lsh",
            AluOp::Rsh => "rsh",
            AluOp::Mod => "mod",
            AluOp::SMod => "smod",
            AluOp::Xor => "xor",
            AluOp::Mov => "mov",
            AluOp::Arsh => "arsh",
        }
    }
}

/// Byte-order operations of `BPF_END`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Endian {
    /// `le16/32/64`: convert to little endian (a truncation on a little-endian host).
    Le,
    /// `be16/32/64`: convert to big endian.
    Be,
    /// `bswap16/32/64` (v4, `BPF_ALU64 | BPF_END`): unconditional swap.
    Swap,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

impl Cond {
    pub const ALL: [Cond; 11] = [
        Cond::Eq,
        Cond::Gt,
        Cond::Ge,
        Cond::Set,
        Cond::Ne,
        Cond::Sgt,
        Cond::Sge,
        Cond::Lt,
        Cond::Le,
        Cond::Slt,
        Cond::Sle,
    ];

    pub(crate) const fn code(self) -> u8 {
        match self {
            Cond::Eq => JMP_JEQ,
            Cond::Gt => JMP_JGT,
            Cond::Ge => JMP_JGE,
            Cond::Set => JMP_JSET,
            Cond::Ne => JMP_JNE,
            Cond::Sgt => JMP_JSGT,
            Cond::Sge => JMP_JSGE,
            Cond::Lt => JMP_JLT,
            Cond::Le => JMP_JLE,
            Cond::Slt => JMP_JSLT,
            Cond::Sle => JMP_JSLE,
        }
    }

    pub(crate) const fn from_code(op: u8) -> Option<Cond> {
        Some(match op {
            JMP_JEQ => Cond::Eq,
            JMP_JGT => Cond::Gt,
            JMP_JGE => Cond::Ge,
            JMP_JSET => Cond::Set,
            JMP_JNE => Cond::Ne,
            JMP_JSGT => Cond::Sgt,
            JMP_JSGE => Cond::Sge,
            JMP_JLT => Cond::Lt,
            JMP_JLE => Cond::Le,
            JMP_JSLT => Cond::Slt,
            JMP_JSLE => Cond::Sle,
            _ => return None,
        })
    }

    /// The conformance dialect's mnemonic stem (`jeq`, `jsgt`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Cond::Eq => "jeq",
            Cond::Gt => "jgt",
            Cond::Ge => "jge",
            Cond::Set => "jset",
            Cond::Ne => "jne",
            Cond::Sgt => "jsgt",
            Cond::Sge => "jsge",
            Cond::Lt => "jlt",
            Cond::Le => "jle",
            Cond::Slt => "jslt",
            Cond::Sle => "jsle",
        }
    }
}

/// Read-modify-write operations of `BPF_STX | BPF_ATOMIC`, plus the kernel's acquire/release accesses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AtomicOp {
    Add {
        fetch: bool,
    },
    Or {
        fetch: bool,
    },
    And {
        fetch: bool,
    },
    Xor {
        fetch: bool,
    },
    /// Exchange: the old value goes to `src`.
    Xchg,
    /// Compare with `r0` and exchange: the old value goes to `r0`.
    CmpXchg,
    /// Linux 6.15 `BPF_LOAD_ACQ`: `dst = load_acquire(src + off)`.
    LoadAcquire,
    /// Linux 6.15 `BPF_STORE_REL`: `store_release(dst + off, src)`.
    StoreRelease,
}

impl AtomicOp {
    pub(crate) const fn code(self) -> i32 {
        let (base, fetch) = match self {
            AtomicOp::Add { fetch } => (ATOMIC_ADD, fetch),
            AtomicOp::Or { fetch } => (ATOMIC_OR, fetch),
            AtomicOp::And { fetch } => (ATOMIC_AND, fetch),
            AtomicOp::Xor { fetch } => (ATOMIC_XOR, fetch),
            AtomicOp::Xchg => return ATOMIC_XCHG,
            AtomicOp::CmpXchg => return ATOMIC_CMPXCHG,
            AtomicOp::LoadAcquire => return ATOMIC_LOAD_ACQ,
            AtomicOp::StoreRelease => return ATOMIC_STORE_REL,
        };
        if fetch {
            base | ATOMIC_FETCH
        } else {
            base
        }
    }

    pub(crate) const fn from_code(imm: i32) -> Option<AtomicOp> {
        let fetch = imm & ATOMIC_FETCH != 0;
        Some(match imm {
            ATOMIC_XCHG => AtomicOp::Xchg,
            ATOMIC_CMPXCHG => AtomicOp::CmpXchg,
            ATOMIC_LOAD_ACQ => AtomicOp::LoadAcquire,
            ATOMIC_STORE_REL => AtomicOp::StoreRelease,
            _ => match imm & !ATOMIC_FETCH {
                ATOMIC_ADD => AtomicOp::Add { fetch },
                ATOMIC_OR => AtomicOp::Or { fetch },
                ATOMIC_AND => AtomicOp::And { fetch },
                ATOMIC_XOR => AtomicOp::Xor { fetch },
                _ => return None,
            },
        })
    }

    /// Acquire/release accept all four sizes; the read-modify-write operations only W and DW.
    pub const fn allows(self, size: Size) -> bool {
        match self {
            AtomicOp::LoadAcquire | AtomicOp::StoreRelease => true,
            _ => matches!(size, Size::W | Size::DW),
        }
    }
}

/// What the 64-bit immediate of `lddw` means (`src_reg` of the first slot, UAPI `BPF_PSEUDO_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Imm64 {
    /// A plain constant.
    Imm(u64),
    /// `BPF_PSEUDO_MAP_FD`: pointer to the map with this file descriptor.
    MapFd(i32),
    /// `BPF_PSEUDO_MAP_VALUE`: address of byte `off` of the (single) value of map `fd`.
    MapValue { fd: i32, off: i32 },
    /// `BPF_PSEUDO_BTF_ID`: address of a kernel variable; `module_fd` 0 means vmlinux BTF.
    BtfId { id: i32, module_fd: i32 },
    /// `BPF_PSEUDO_FUNC`: address of the subprogram `off + 1` slots after this instruction.
    Func(i32),
    /// `BPF_PSEUDO_MAP_IDX`: pointer to map number `idx` of the load's `fd_array`.
    MapIdx(i32),
    /// `BPF_PSEUDO_MAP_IDX_VALUE`: address of byte `off` of the value of map number `idx`.
    MapIdxValue { idx: i32, off: i32 },
}

impl Imm64 {
    pub(crate) const fn encode(self) -> (u8, i32, i32) {
        match self {
            Imm64::Imm(v) => (0, v as u32 as i32, (v >> 32) as u32 as i32),
            Imm64::MapFd(fd) => (PSEUDO_MAP_FD, fd, 0),
            Imm64::MapValue { fd, off } => (PSEUDO_MAP_VALUE, fd, off),
            Imm64::BtfId { id, module_fd } => (PSEUDO_BTF_ID, id, module_fd),
            Imm64::Func(off) => (PSEUDO_FUNC, off, 0),
            Imm64::MapIdx(idx) => (PSEUDO_MAP_IDX, idx, 0),
            Imm64::MapIdxValue { idx, off } => (PSEUDO_MAP_IDX_VALUE, idx, off),
        }
    }
}

/// The legacy packet-access addressing of `BPF_LD | BPF_ABS/BPF_IND`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PacketMode {
    /// `r0 = packet[imm]`.
    Abs,
    /// `r0 = packet[reg + imm]`.
    Ind(Reg),
}

/// Target of `BPF_JMP | BPF_CALL` (`src_reg` 0, 1 or 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CallTarget {
    /// A helper function by its UAPI id.
    Helper(i32),
    /// A BPF-to-BPF call: the callee starts `off + 1` slots after this instruction.
    Local(i32),
    /// A kernel function by BTF id; `module` indexes the load's `fd_array` (0 means vmlinux).
    Kfunc { btf_id: i32, module: i16 },
}

/// One eBPF instruction. `LdImm64` takes two 8-byte slots, every other instruction one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Insn {
    Alu {
        width: Width,
        op: AluOp,
        dst: Reg,
        src: Source,
    },
    Neg {
        width: Width,
        dst: Reg,
    },
    /// `movsx` (v4): sign-extend the low `from` bits of `src`.
    MovSx {
        width: Width,
        dst: Reg,
        src: Reg,
        from: Size,
    },
    Endian {
        dst: Reg,
        order: Endian,
        bits: u8,
    },
    LdImm64 {
        dst: Reg,
        imm: Imm64,
    },
    LoadPacket {
        mode: PacketMode,
        size: Size,
        imm: i32,
    },
    /// `ldx*` (zero-extending) or, with `signed`, `ldxs*` (v4 sign-extending).
    Load {
        size: Size,
        signed: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `st*` (immediate source) or `stx*` (register source).
    Store {
        size: Size,
        dst: Reg,
        off: i16,
        src: Source,
    },
    Atomic {
        size: Size,
        op: AtomicOp,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `ja`: jump `off` slots past the next one.
    Ja {
        off: i16,
    },
    /// `ja32`/`gotol` (v4): the jump offset is the 32-bit immediate.
    Gotol {
        off: i32,
    },
    Jmp {
        width: Width,
        cond: Cond,
        dst: Reg,
        src: Source,
        off: i16,
    },
    Call(CallTarget),
    /// `callx`: call the helper whose id is in `reg` (uBPF semantics; the kernel has no callx).
    Callx {
        reg: Reg,
    },
    Exit,
}

impl Insn {
    /// Number of 8-byte slots this instruction occupies.
    pub const fn slots(&self) -> usize {
        match self {
            Insn::LdImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// Relative jump offset in slots (from the next slot), for instructions that jump.
    pub const fn jump_offset(&self) -> Option<i32> {
        match *self {
            Insn::Ja { off } | Insn::Jmp { off, .. } => Some(off as i32),
            Insn::Gotol { off } => Some(off),
            _ => None,
        }
    }

    /// Encode into one or two raw slots.
    pub fn to_raw(&self) -> ([RawInsn; 2], usize) {
        let one = |r: RawInsn| ([r, RawInsn::default()], 1);
        let class_alu = |w: Width| if w == Width::W64 { ALU64 } else { ALU };
        let class_jmp = |w: Width| if w == Width::W64 { JMP } else { JMP32 };
        match *self {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let (code, off) = op.code();
                let (s, src_reg, imm) = split_source(src);
                one(RawInsn::new(
                    class_alu(width) | code | s,
                    dst.0,
                    src_reg,
                    off,
                    imm,
                ))
            }
            Insn::Neg { width, dst } => {
                one(RawInsn::new(class_alu(width) | ALU_NEG, dst.0, 0, 0, 0))
            }
            Insn::MovSx {
                width,
                dst,
                src,
                from,
            } => one(RawInsn::new(
                class_alu(width) | ALU_MOV | SRC_X,
                dst.0,
                src.0,
                from.bits() as i16,
                0,
            )),
            Insn::Endian { dst, order, bits } => {
                let code = match order {
                    Endian::Le => ALU | ALU_END,
                    Endian::Be => ALU | ALU_END | SRC_X,
                    Endian::Swap => ALU64 | ALU_END,
                };
                one(RawInsn::new(code, dst.0, 0, 0, bits as i32))
            }
            Insn::LdImm64 { dst, imm } => {
                let (src, lo, hi) = imm.encode();
                (
                    [
                        RawInsn::new(LDDW, dst.0, src, 0, lo),
                        RawInsn::new(0, 0, 0, 0, hi),
                    ],
                    2,
                )
            }
            Insn::LoadPacket { mode, size, imm } => match mode {
                PacketMode::Abs => one(RawInsn::new(LD | MODE_ABS | size.code(), 0, 0, 0, imm)),
                PacketMode::Ind(r) => {
                    one(RawInsn::new(LD | MODE_IND | size.code(), 0, r.0, 0, imm))
                }
            },
            Insn::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                let mode = if signed { MODE_MEMSX } else { MODE_MEM };
                one(RawInsn::new(LDX | mode | size.code(), dst.0, src.0, off, 0))
            }
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => match src {
                Source::Imm(imm) => one(RawInsn::new(
                    ST | MODE_MEM | size.code(),
                    dst.0,
                    0,
                    off,
                    imm,
                )),
                Source::Reg(r) => one(RawInsn::new(
                    STX | MODE_MEM | size.code(),
                    dst.0,
                    r.0,
                    off,
                    0,
                )),
            },
            Insn::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => one(RawInsn::new(
                STX | MODE_ATOMIC | size.code(),
                dst.0,
                src.0,
                off,
                op.code(),
            )),
            Insn::Ja { off } => one(RawInsn::new(JMP | JMP_JA, 0, 0, off, 0)),
            Insn::Gotol { off } => one(RawInsn::new(JMP32 | JMP_JA, 0, 0, 0, off)),
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let (s, src_reg, imm) = split_source(src);
                one(RawInsn::new(
                    class_jmp(width) | cond.code() | s,
                    dst.0,
                    src_reg,
                    off,
                    imm,
                ))
            }
            Insn::Call(target) => match target {
                CallTarget::Helper(id) => one(RawInsn::new(JMP | JMP_CALL, 0, 0, 0, id)),
                CallTarget::Local(off) => one(RawInsn::new(JMP | JMP_CALL, 0, PSEUDO_CALL, 0, off)),
                CallTarget::Kfunc { btf_id, module } => one(RawInsn::new(
                    JMP | JMP_CALL,
                    0,
                    PSEUDO_KFUNC_CALL,
                    module,
                    btf_id,
                )),
            },
            Insn::Callx { reg } => one(RawInsn::new(JMP | JMP_CALL | SRC_X, reg.0, 0, 0, 0)),
            Insn::Exit => one(RawInsn::new(JMP | JMP_EXIT, 0, 0, 0, 0)),
        }
    }

    /// Append the instruction's little-endian bytes (8 or 16) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let (raw, n) = self.to_raw();
        for r in &raw[..n] {
            out.extend_from_slice(&r.to_bytes());
        }
    }
}

fn split_source(src: Source) -> (u8, u8, i32) {
    match src {
        Source::Reg(r) => (SRC_X, r.0, 0),
        Source::Imm(i) => (0, 0, i),
    }
}

/// Encode a sequence of instructions into bytecode.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for insn in insns {
        insn.encode_into(&mut out);
    }
    out
}
