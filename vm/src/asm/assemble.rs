//! Text to instructions, in the bpf_conformance dialect (see test-vectors/conformance/README.md):
//! one statement per line, `label:` lines, `%rN` registers, `[%rN+off]` memory operands, `+N`/`-N`
//! or label jump targets, and an implicit `exit` label at the first `exit`.
//!
//! Extensions beyond the upstream dialect, so that every decodable instruction has a spelling:
//! `lddw %rN, map_fd FD` / `map_value FD, OFF` / `map_idx IDX` / `map_idx_value IDX, OFF` /
//! `btf_id ID, MODULE_FD` / `func TARGET`; `ldabs{b,h,w} IMM` and `ldind{b,h,w} %rN, IMM`;
//! `ldacq{b,h,w,dw} %rD, [%rS+off]` and `strel{b,h,w,dw} [%rD+off], %rS`; `call runtime ID, MODULE`.

use std::collections::HashMap;

use crate::isa::*;

/// An assembly error at a 1-based line, with the upstream assembler's wording where it has one.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct AsmError {
    pub line: usize,
    pub message: String,
}

/// A jump or call target not yet resolved to an offset.
enum Target {
    Rel(i64),
    Label(String),
}

/// How a pending instruction takes its resolved offset.
enum Fixup {
    Jump16,
    Jump32,
    Call,
    Func,
}

struct Pending {
    insn: Insn,
    slot: usize,
    line: usize,
    fixup: Option<(Fixup, Target)>,
}

type R<T> = Result<T, String>;

/// Assemble a whole program.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut slot = 0usize;
    let mut exit_label: Option<usize> = None;
    for (i, raw_line) in text.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| AsmError { line, message };
        let code = raw_line.split('#').next().unwrap_or("");
        let tokens: Vec<&str> = code.split_whitespace().collect();
        let Some(&first) = tokens.first() else {
            continue;
        };
        if let Some(name) = first.strip_suffix(':') {
            if labels.insert(name.to_string(), slot).is_some() {
                return Err(err(format!("Duplicate label: {name}")));
            }
            continue;
        }
        let operands: Vec<&str> = tokens[1..]
            .iter()
            .map(|t| t.strip_suffix(',').unwrap_or(t))
            .collect();
        let (insn, fixup) = parse_statement(first, &operands).map_err(err)?;
        if insn == Insn::Exit && exit_label.is_none() {
            exit_label = Some(slot);
        }
        pending.push(Pending {
            insn,
            slot,
            line,
            fixup,
        });
        slot += insn.slots();
    }
    if let Some(s) = exit_label {
        labels.entry("exit".to_string()).or_insert(s);
    }
    pending.into_iter().map(|p| resolve(p, &labels)).collect()
}

fn resolve(p: Pending, labels: &HashMap<String, usize>) -> Result<Insn, AsmError> {
    let Some((fixup, target)) = p.fixup else {
        return Ok(p.insn);
    };
    let err = |message: String| AsmError {
        line: p.line,
        message,
    };
    let off = match target {
        Target::Rel(n) => n,
        Target::Label(name) => match labels.get(&name) {
            Some(&to) => to as i64 - p.slot as i64 - 1,
            None => return Err(err(format!("Invalid label: {name}"))),
        },
    };
    let off16 =
        || i16::try_from(off).map_err(|_| err(format!("Jump offset out of 16-bit range: {off}")));
    let off32 =
        || i32::try_from(off).map_err(|_| err(format!("Jump offset out of 32-bit range: {off}")));
    Ok(match (fixup, p.insn) {
        (Fixup::Jump16, Insn::Ja { .. }) => Insn::Ja { off: off16()? },
        (
            Fixup::Jump16,
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                ..
            },
        ) => Insn::Jmp {
            width,
            cond,
            dst,
            src,
            off: off16()?,
        },
        (Fixup::Jump32, _) => Insn::Gotol { off: off32()? },
        (Fixup::Call, _) => Insn::Call(CallTarget::Local(off32()?)),
        (Fixup::Func, Insn::LdImm64 { dst, .. }) => Insn::LdImm64 {
            dst,
            imm: Imm64::Func(off32()?),
        },
        (_, insn) => insn,
    })
}

fn operand_count(mnemonic: &str, ops: &[&str], n: usize) -> R<()> {
    if ops.len() != n {
        return Err(format!("Invalid number of operands for {mnemonic}"));
    }
    Ok(())
}

fn reg(tok: &str) -> R<Reg> {
    tok.strip_prefix("%r")
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|_| tok[2..].bytes().all(|b| b.is_ascii_digit()))
        .and_then(Reg::new)
        .ok_or_else(|| format!("Invalid register: {tok}"))
}

/// A number in decimal or `0x` hex, with an optional sign; hex is a bit pattern of `bits` bits.
fn number(tok: &str, what: &str) -> R<i128> {
    let (neg, body) = match tok.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, tok.strip_prefix('+').unwrap_or(tok)),
    };
    let v = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => i128::from_str_radix(hex, 16),
        _ if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) => body.parse::<i128>(),
        _ => return Err(format!("Invalid {what}: {tok}")),
    }
    .map_err(|_| format!("Invalid {what}: {tok}"))?;
    Ok(if neg { -v } else { v })
}

fn imm32(tok: &str) -> R<i32> {
    let v = number(tok, "immediate")?;
    let is_hex = tok.contains("0x") || tok.contains("0X");
    let ok = if is_hex {
        (-(1i128 << 31)..(1i128 << 32)).contains(&v)
    } else {
        (-(1i128 << 31)..(1i128 << 31)).contains(&v)
    };
    if !ok {
        return Err(format!("Immediate out of 32-bit range: {tok}"));
    }
    Ok(v as i64 as i32)
}

fn imm64(tok: &str) -> R<u64> {
    let v = number(tok, "immediate")?;
    if !(-(1i128 << 63)..(1i128 << 64)).contains(&v) {
        return Err(format!("Immediate out of 64-bit range: {tok}"));
    }
    Ok(v as u64)
}

fn off16(tok: &str, text: &str) -> R<i16> {
    let v = number(tok, "offset")?;
    i16::try_from(v).map_err(|_| format!("Offset out of 16-bit range: {text}"))
}

/// `[%rN+off]`, `[%rN-off]` or `[%rN]`.
fn mem(tok: &str) -> R<(Reg, i16)> {
    let inner = tok
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("Invalid memory operand: {tok}"))?;
    match inner.find(['+', '-']) {
        Some(i) => Ok((reg(&inner[..i])?, off16(&inner[i..], &inner[i..])?)),
        None => Ok((reg(inner)?, 0)),
    }
}

fn target(tok: &str) -> R<Target> {
    if tok.starts_with('+') || tok.starts_with('-') {
        let v = number(tok, "jump offset")?;
        let v = i64::try_from(v).map_err(|_| format!("Jump offset out of range: {tok}"))?;
        Ok(Target::Rel(v))
    } else {
        Ok(Target::Label(tok.to_string()))
    }
}

fn source(tok: &str) -> R<Source> {
    if tok.starts_with('%') {
        Ok(Source::Reg(reg(tok)?))
    } else {
        Ok(Source::Imm(imm32(tok)?))
    }
}

fn size_suffix(s: &str) -> Option<Size> {
    Some(match s {
        "b" => Size::B,
        "h" => Size::H,
        "w" => Size::W,
        "dw" => Size::DW,
        _ => return None,
    })
}

/// Split a trailing width: `add32` -> (`add`, W32), `add64`/`add` -> (`add`, W64).
fn width_of(m: &str) -> (&str, Width) {
    if let Some(stem) = m.strip_suffix("32") {
        (stem, Width::W32)
    } else {
        (m.strip_suffix("64").unwrap_or(m), Width::W64)
    }
}

type Parsed = (Insn, Option<(Fixup, Target)>);

fn parse_statement(m: &str, ops: &[&str]) -> R<Parsed> {
    let plain = |insn: Insn| Ok((insn, None));
    let invalid = || Err(format!("Invalid mnemonic: {m}"));
    match m {
        "exit" => {
            operand_count(m, ops, 0)?;
            return plain(Insn::Exit);
        }
        "ja" | "ja32" | "gotol" => {
            operand_count(m, ops, 1)?;
            let fix = if m == "ja" {
                Fixup::Jump16
            } else {
                Fixup::Jump32
            };
            return Ok((Insn::Ja { off: 0 }, Some((fix, target(ops[0])?))));
        }
        "call" => return parse_call(ops),
        "lock" => return parse_lock(ops),
        "lddw" => return parse_lddw(ops),
        _ => {}
    }
    if let Some(rest) = m.strip_prefix("movsx") {
        let (from, width) = match rest {
            "864" => (Size::B, Width::W64),
            "1664" => (Size::H, Width::W64),
            "3264" => (Size::W, Width::W64),
            "832" => (Size::B, Width::W32),
            "1632" => (Size::H, Width::W32),
            _ => return invalid(),
        };
        operand_count(m, ops, 2)?;
        return plain(Insn::MovSx {
            width,
            dst: reg(ops[0])?,
            src: reg(ops[1])?,
            from,
        });
    }
    for (prefix, order) in [
        ("le", Endian::Le),
        ("be", Endian::Be),
        ("bswap", Endian::Swap),
        ("swap", Endian::Swap),
    ] {
        if let Some(bits) = m.strip_prefix(prefix).and_then(|b| b.parse::<u8>().ok()) {
            if !matches!(bits, 16 | 32 | 64) || m.len() != prefix.len() + 2 {
                return invalid();
            }
            operand_count(m, ops, 1)?;
            return plain(Insn::Endian {
                dst: reg(ops[0])?,
                order,
                bits,
            });
        }
    }
    // Loads and stores: ldx*, ldxs*, st*, stx*, ldacq*, strel*, ldabs*, ldind*.
    let sized = |prefix: &str| m.strip_prefix(prefix).and_then(size_suffix);
    if let Some(size) = sized("ldxs").filter(|s| *s != Size::DW) {
        operand_count(m, ops, 2)?;
        let (src, off) = mem(ops[1])?;
        return plain(Insn::Load {
            size,
            signed: true,
            dst: reg(ops[0])?,
            src,
            off,
        });
    }
    if let Some(size) = sized("ldx").or_else(|| sized("ldacq")) {
        operand_count(m, ops, 2)?;
        let dst = reg(ops[0])?;
        let (src, off) = mem(ops[1])?;
        return plain(if m.starts_with("ldacq") {
            Insn::Atomic {
                size,
                op: AtomicOp::LoadAcquire,
                dst,
                src,
                off,
            }
        } else {
            Insn::Load {
                size,
                signed: false,
                dst,
                src,
                off,
            }
        });
    }
    if let Some(size) = sized("stx").or_else(|| sized("strel")) {
        operand_count(m, ops, 2)?;
        let (dst, off) = mem(ops[0])?;
        let src = reg(ops[1])?;
        return plain(if m.starts_with("strel") {
            Insn::Atomic {
                size,
                op: AtomicOp::StoreRelease,
                dst,
                src,
                off,
            }
        } else {
            Insn::Store {
                size,
                dst,
                off,
                src: Source::Reg(src),
            }
        });
    }
    if let Some(size) = sized("st") {
        operand_count(m, ops, 2)?;
        let (dst, off) = mem(ops[0])?;
        return plain(Insn::Store {
            size,
            dst,
            off,
            src: Source::Imm(imm32(ops[1])?),
        });
    }
    if let Some(size) = sized("ldabs").filter(|s| *s != Size::DW) {
        operand_count(m, ops, 1)?;
        return plain(Insn::LoadPacket {
            mode: PacketMode::Abs,
            size,
            imm: imm32(ops[0])?,
        });
    }
    if let Some(size) = sized("ldind").filter(|s| *s != Size::DW) {
        operand_count(m, ops, 2)?;
        return plain(Insn::LoadPacket {
            mode: PacketMode::Ind(reg(ops[0])?),
            size,
            imm: imm32(ops[1])?,
        });
    }
    let (stem, width) = width_of(m);
    if stem == "neg" {
        operand_count(m, ops, 1)?;
        return plain(Insn::Neg {
            width,
            dst: reg(ops[0])?,
        });
    }
    if let Some(op) = AluOp::ALL.into_iter().find(|o| o.name() == stem) {
        operand_count(m, ops, 2)?;
        return plain(Insn::Alu {
            width,
            op,
            dst: reg(ops[0])?,
            src: source(ops[1])?,
        });
    }
    if let Some(cond) = Cond::ALL.into_iter().find(|c| c.name() == stem) {
        operand_count(m, ops, 3)?;
        let insn = Insn::Jmp {
            width,
            cond,
            dst: reg(ops[0])?,
            src: source(ops[1])?,
            off: 0,
        };
        return Ok((insn, Some((Fixup::Jump16, target(ops[2])?))));
    }
    invalid()
}

fn parse_call(ops: &[&str]) -> R<Parsed> {
    let plain = |insn: Insn| Ok((insn, None));
    match ops {
        [r] | ["helper", r] if r.starts_with('%') => plain(Insn::Callx { reg: reg(r)? }),
        [n] | ["helper", n] => plain(Insn::Call(CallTarget::Helper(imm32(n)?))),
        ["local", t] => Ok((
            Insn::Call(CallTarget::Local(0)),
            Some((Fixup::Call, target(t)?)),
        )),
        ["runtime", n] | ["runtime", n, _] => {
            let module = match ops.get(2) {
                Some(m) => off16(m, m)?,
                None => 0,
            };
            plain(Insn::Call(CallTarget::Kfunc {
                btf_id: imm32(n)?,
                module,
            }))
        }
        _ => Err("Invalid number of operands for call".to_string()),
    }
}

fn parse_lock(ops: &[&str]) -> R<Parsed> {
    let (fetch, rest) = match ops.first() {
        Some(&"fetch") => (true, &ops[1..]),
        _ => (false, ops),
    };
    let [opname, dst, src] = rest else {
        return Err("Invalid number of operands for lock".to_string());
    };
    let (stem, width) = width_of(opname);
    let op = match (stem, fetch) {
        ("add", _) => AtomicOp::Add { fetch },
        ("or", _) => AtomicOp::Or { fetch },
        ("and", _) => AtomicOp::And { fetch },
        ("xor", _) => AtomicOp::Xor { fetch },
        ("xchg", false) => AtomicOp::Xchg,
        ("cmpxchg", false) => AtomicOp::CmpXchg,
        _ => return Err(format!("Invalid atomic operation: {}", rest[0])),
    };
    let (dst, off) = mem(dst)?;
    Ok((
        Insn::Atomic {
            size: if width == Width::W32 {
                Size::W
            } else {
                Size::DW
            },
            op,
            dst,
            src: reg(src)?,
            off,
        },
        None,
    ))
}

fn parse_lddw(ops: &[&str]) -> R<Parsed> {
    let err = || Err("Invalid number of operands for lddw".to_string());
    let Some((&d, rest)) = ops.split_first() else {
        return err();
    };
    let dst = reg(d)?;
    let plain = |imm: Imm64| Ok((Insn::LdImm64 { dst, imm }, None));
    match rest {
        [v] => plain(Imm64::Imm(imm64(v)?)),
        ["map_fd", fd] => plain(Imm64::MapFd(imm32(fd)?)),
        ["map_idx", idx] => plain(Imm64::MapIdx(imm32(idx)?)),
        ["map_value", fd, off] => plain(Imm64::MapValue {
            fd: imm32(fd)?,
            off: imm32(off)?,
        }),
        ["map_idx_value", idx, off] => plain(Imm64::MapIdxValue {
            idx: imm32(idx)?,
            off: imm32(off)?,
        }),
        ["btf_id", id, module] => plain(Imm64::BtfId {
            id: imm32(id)?,
            module_fd: imm32(module)?,
        }),
        ["func", t] => Ok((
            Insn::LdImm64 {
                dst,
                imm: Imm64::Func(0),
            },
            Some((Fixup::Func, target(t)?)),
        )),
        _ => err(),
    }
}
