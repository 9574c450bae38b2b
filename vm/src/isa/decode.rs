//! Bytes to [`Insn`]s, rejecting every encoding RFC 9669 or the kernel does not define.

use super::insn::*;
use super::opcode::*;
use super::raw::RawInsn;

/// A field of an instruction slot, named as in `struct bpf_insn`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Field {
    Dst,
    Src,
    Off,
    Imm,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Dst => "dst_reg",
            Field::Src => "src_reg",
            Field::Off => "off",
            Field::Imm => "imm",
        })
    }
}

#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("program length {len} bytes is not a multiple of 8")]
    Length { len: usize },
    #[error("unknown opcode")]
    UnknownOpcode,
    #[error("{what}: reserved field {field} must be {expected}, found {found}")]
    Reserved {
        what: &'static str,
        field: Field,
        expected: &'static str,
        found: i64,
    },
    #[error("{what}: {field} register r{reg} does not exist (r0-r10)")]
    BadRegister {
        what: &'static str,
        field: Field,
        reg: u8,
    },
    #[error("lddw: second slot missing (program ends after the first half)")]
    TruncatedLdImm64,
    #[error("lddw: second slot must have opcode, dst_reg, src_reg and off zero, found opcode {code:#04x} dst_reg {dst} src_reg {src} off {off}")]
    BadLdImm64Tail {
        code: u8,
        dst: u8,
        src: u8,
        off: i16,
    },
    #[error("lddw: unknown pseudo source src_reg={0}")]
    UnknownPseudo(u8),
    #[error("{what}: imm {imm} is not a byte-order width (16, 32 or 64)")]
    EndianWidth { what: &'static str, imm: i32 },
    #[error("atomic: imm {imm:#x} is not an atomic operation")]
    AtomicOp { imm: i32 },
    #[error("atomic {op:?}: size {size:?} not allowed")]
    AtomicSize { op: AtomicOp, size: Size },
}

/// Why bytecode could not be decoded, and where: the slot index and its opcode byte.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("instruction {pc} (opcode {opcode:#04x}): {kind}")]
pub struct DecodeError {
    pub pc: usize,
    pub opcode: u8,
    pub kind: DecodeErrorKind,
}

/// Decode a whole program. Every instruction must be valid; the first invalid one is reported.
pub fn decode(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if bytes.len() % RawInsn::SIZE != 0 {
        return Err(DecodeError {
            pc: bytes.len() / RawInsn::SIZE,
            opcode: bytes[bytes.len() - bytes.len() % RawInsn::SIZE],
            kind: DecodeErrorKind::Length { len: bytes.len() },
        });
    }
    let raws: Vec<RawInsn> = bytes
        .chunks_exact(RawInsn::SIZE)
        .map(|c| RawInsn::from_bytes(c.try_into().expect("chunks_exact yields 8 bytes")))
        .collect();
    decode_raw(&raws)
}

/// Decode from already split slots.
pub fn decode_raw(raws: &[RawInsn]) -> Result<Vec<Insn>, DecodeError> {
    let mut out = Vec::with_capacity(raws.len());
    let mut pc = 0;
    while pc < raws.len() {
        let insn = decode_one(raws[pc], raws.get(pc + 1).copied()).map_err(|kind| DecodeError {
            pc,
            opcode: raws[pc].code,
            kind,
        })?;
        pc += insn.slots();
        out.push(insn);
    }
    Ok(out)
}

struct Check {
    what: &'static str,
    raw: RawInsn,
}

impl Check {
    fn zero(&self, field: Field) -> Result<(), DecodeErrorKind> {
        let found = match field {
            Field::Dst => self.raw.dst as i64,
            Field::Src => self.raw.src as i64,
            Field::Off => self.raw.off as i64,
            Field::Imm => self.raw.imm as i64,
        };
        if found != 0 {
            return Err(DecodeErrorKind::Reserved {
                what: self.what,
                field,
                expected: "0",
                found,
            });
        }
        Ok(())
    }

    fn zeros(&self, fields: &[Field]) -> Result<(), DecodeErrorKind> {
        fields.iter().try_for_each(|f| self.zero(*f))
    }

    fn reg(&self, field: Field) -> Result<Reg, DecodeErrorKind> {
        let n = if field == Field::Dst {
            self.raw.dst
        } else {
            self.raw.src
        };
        Reg::new(n).ok_or(DecodeErrorKind::BadRegister {
            what: self.what,
            field,
            reg: n,
        })
    }

    /// Register or immediate second operand: the unused one must be zero.
    fn source(&self, code: u8) -> Result<Source, DecodeErrorKind> {
        if code & SRC_X != 0 {
            self.zero(Field::Imm)?;
            Ok(Source::Reg(self.reg(Field::Src)?))
        } else {
            self.zero(Field::Src)?;
            Ok(Source::Imm(self.raw.imm))
        }
    }
}

fn decode_one(raw: RawInsn, next: Option<RawInsn>) -> Result<Insn, DecodeErrorKind> {
    let code = raw.code;
    let class = code & CLASS_MASK;
    let what = super::names::opcode_name(code).ok_or(DecodeErrorKind::UnknownOpcode)?;
    let c = Check { what, raw };
    match class {
        ALU | ALU64 => decode_alu(&c),
        JMP | JMP32 => decode_jmp(&c),
        LDX => {
            c.zero(Field::Imm)?;
            Ok(Insn::Load {
                size: Size::from_code(code),
                signed: code & MODE_MASK == MODE_MEMSX,
                dst: c.reg(Field::Dst)?,
                src: c.reg(Field::Src)?,
                off: raw.off,
            })
        }
        ST => {
            c.zero(Field::Src)?;
            Ok(Insn::Store {
                size: Size::from_code(code),
                dst: c.reg(Field::Dst)?,
                off: raw.off,
                src: Source::Imm(raw.imm),
            })
        }
        STX if code & MODE_MASK == MODE_MEM => {
            c.zero(Field::Imm)?;
            Ok(Insn::Store {
                size: Size::from_code(code),
                dst: c.reg(Field::Dst)?,
                off: raw.off,
                src: Source::Reg(c.reg(Field::Src)?),
            })
        }
        STX => {
            let size = Size::from_code(code);
            let op =
                AtomicOp::from_code(raw.imm).ok_or(DecodeErrorKind::AtomicOp { imm: raw.imm })?;
            if !op.allows(size) {
                return Err(DecodeErrorKind::AtomicSize { op, size });
            }
            Ok(Insn::Atomic {
                size,
                op,
                dst: c.reg(Field::Dst)?,
                src: c.reg(Field::Src)?,
                off: raw.off,
            })
        }
        _ => decode_ld(&c, next),
    }
}

fn decode_alu(c: &Check) -> Result<Insn, DecodeErrorKind> {
    let code = c.raw.code;
    let width = if code & CLASS_MASK == ALU64 {
        Width::W64
    } else {
        Width::W32
    };
    let dst = c.reg(Field::Dst)?;
    let op = match code & OP_MASK {
        ALU_NEG => {
            c.zeros(&[Field::Src, Field::Off, Field::Imm])?;
            return Ok(Insn::Neg { width, dst });
        }
        ALU_END => {
            c.zeros(&[Field::Src, Field::Off])?;
            let order = match (width, code & SRC_X != 0) {
                (Width::W32, false) => Endian::Le,
                (Width::W32, true) => Endian::Be,
                _ => Endian::Swap,
            };
            if !matches!(c.raw.imm, 16 | 32 | 64) {
                return Err(DecodeErrorKind::EndianWidth {
                    what: c.what,
                    imm: c.raw.imm,
                });
            }
            return Ok(Insn::Endian {
                dst,
                order,
                bits: c.raw.imm as u8,
            });
        }
        ALU_MOV if code & SRC_X != 0 && c.raw.off != 0 => {
            c.zero(Field::Imm)?;
            let from = match (width, c.raw.off) {
                (_, 8) => Size::B,
                (_, 16) => Size::H,
                (Width::W64, 32) => Size::W,
                _ => {
                    return Err(DecodeErrorKind::Reserved {
                        what: c.what,
                        field: Field::Off,
                        expected: if width == Width::W64 {
                            "0, 8, 16 or 32"
                        } else {
                            "0, 8 or 16"
                        },
                        found: c.raw.off as i64,
                    })
                }
            };
            return Ok(Insn::MovSx {
                width,
                dst,
                src: c.reg(Field::Src)?,
                from,
            });
        }
        ALU_DIV | ALU_MOD => {
            let signed = match c.raw.off {
                0 => false,
                1 => true,
                found => {
                    return Err(DecodeErrorKind::Reserved {
                        what: c.what,
                        field: Field::Off,
                        expected: "0 or 1",
                        found: found as i64,
                    })
                }
            };
            match (code & OP_MASK == ALU_DIV, signed) {
                (true, false) => AluOp::Div,
                (true, true) => AluOp::SDiv,
                (false, false) => AluOp::Mod,
                (false, true) => AluOp::SMod,
            }
        }
        other => {
            c.zero(Field::Off)?;
            match other {
                ALU_ADD => AluOp::Add,
                ALU_SUB => AluOp::Sub,
                ALU_MUL => AluOp::Mul,
                ALU_OR => AluOp::Or,
                ALU_AND => AluOp::And,
                ALU_LSH => AluOp::Lsh,
                ALU_RSH => AluOp::Rsh,
                ALU_XOR => AluOp::Xor,
                ALU_MOV => AluOp::Mov,
                ALU_ARSH => AluOp::Arsh,
                _ => return Err(DecodeErrorKind::UnknownOpcode),
            }
        }
    };
    Ok(Insn::Alu {
        width,
        op,
        dst,
        src: c.source(code)?,
    })
}

fn decode_jmp(c: &Check) -> Result<Insn, DecodeErrorKind> {
    let code = c.raw.code;
    let wide = code & CLASS_MASK == JMP;
    match code & OP_MASK {
        JMP_JA if wide => {
            c.zeros(&[Field::Dst, Field::Src, Field::Imm])?;
            Ok(Insn::Ja { off: c.raw.off })
        }
        JMP_JA => {
            c.zeros(&[Field::Dst, Field::Src, Field::Off])?;
            Ok(Insn::Gotol { off: c.raw.imm })
        }
        JMP_EXIT => {
            c.zeros(&[Field::Dst, Field::Src, Field::Off, Field::Imm])?;
            Ok(Insn::Exit)
        }
        JMP_CALL if code & SRC_X != 0 => {
            c.zeros(&[Field::Src, Field::Off, Field::Imm])?;
            Ok(Insn::Callx {
                reg: c.reg(Field::Dst)?,
            })
        }
        JMP_CALL => {
            c.zero(Field::Dst)?;
            match c.raw.src {
                0 | PSEUDO_CALL => {
                    c.zero(Field::Off)?;
                    Ok(Insn::Call(if c.raw.src == 0 {
                        CallTarget::Helper(c.raw.imm)
                    } else {
                        CallTarget::Local(c.raw.imm)
                    }))
                }
                PSEUDO_KFUNC_CALL => Ok(Insn::Call(CallTarget::Kfunc {
                    btf_id: c.raw.imm,
                    module: c.raw.off,
                })),
                found => Err(DecodeErrorKind::Reserved {
                    what: c.what,
                    field: Field::Src,
                    expected: "0 (helper), 1 (local) or 2 (kfunc)",
                    found: found as i64,
                }),
            }
        }
        op => {
            let cond = Cond::from_code(op).ok_or(DecodeErrorKind::UnknownOpcode)?;
            Ok(Insn::Jmp {
                width: if wide { Width::W64 } else { Width::W32 },
                cond,
                dst: c.reg(Field::Dst)?,
                src: c.source(code)?,
                off: c.raw.off,
            })
        }
    }
}

fn decode_ld(c: &Check, next: Option<RawInsn>) -> Result<Insn, DecodeErrorKind> {
    let code = c.raw.code;
    let size = Size::from_code(code);
    match code & MODE_MASK {
        MODE_IMM => {
            c.zero(Field::Off)?;
            let dst = c.reg(Field::Dst)?;
            let tail = next.ok_or(DecodeErrorKind::TruncatedLdImm64)?;
            if tail.code != 0 || tail.dst != 0 || tail.src != 0 || tail.off != 0 {
                return Err(DecodeErrorKind::BadLdImm64Tail {
                    code: tail.code,
                    dst: tail.dst,
                    src: tail.src,
                    off: tail.off,
                });
            }
            let (lo, hi) = (c.raw.imm, tail.imm);
            let hi_zero = |what: &'static str| {
                if hi != 0 {
                    Err(DecodeErrorKind::Reserved {
                        what,
                        field: Field::Imm,
                        expected: "0 in the second slot",
                        found: hi as i64,
                    })
                } else {
                    Ok(())
                }
            };
            let imm = match c.raw.src {
                0 => Imm64::Imm((lo as u32 as u64) | ((hi as u32 as u64) << 32)),
                PSEUDO_MAP_FD => {
                    hi_zero("lddw map_fd")?;
                    Imm64::MapFd(lo)
                }
                PSEUDO_MAP_VALUE => Imm64::MapValue { fd: lo, off: hi },
                PSEUDO_BTF_ID => Imm64::BtfId {
                    id: lo,
                    module_fd: hi,
                },
                PSEUDO_FUNC => {
                    hi_zero("lddw func")?;
                    Imm64::Func(lo)
                }
                PSEUDO_MAP_IDX => {
                    hi_zero("lddw map_idx")?;
                    Imm64::MapIdx(lo)
                }
                PSEUDO_MAP_IDX_VALUE => Imm64::MapIdxValue { idx: lo, off: hi },
                other => return Err(DecodeErrorKind::UnknownPseudo(other)),
            };
            Ok(Insn::LdImm64 { dst, imm })
        }
        MODE_ABS => {
            c.zeros(&[Field::Dst, Field::Src, Field::Off])?;
            Ok(Insn::LoadPacket {
                mode: PacketMode::Abs,
                size,
                imm: c.raw.imm,
            })
        }
        _ => {
            c.zeros(&[Field::Dst, Field::Off])?;
            Ok(Insn::LoadPacket {
                mode: PacketMode::Ind(c.reg(Field::Src)?),
                size,
                imm: c.raw.imm,
            })
        }
    }
}
