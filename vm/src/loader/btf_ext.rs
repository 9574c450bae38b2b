//! `.BTF.ext`: read only for its CO-RE relocation records, so that a program that needs them
//! is refused with the type and section named instead of running with unrelocated offsets.
//! (Function and line info are not needed by the simulator.)

use super::btf::{Btf, BtfError, Reader};

/// One `struct bpf_core_relo`.
#[derive(Clone, Debug)]
pub(crate) struct CoreRelo {
    /// The program section the record belongs to.
    pub section: String,
    /// Byte offset of the relocated instruction in that section.
    pub insn_off: u32,
    pub type_id: u32,
    /// The access string, e.g. `0:1` (field 1 of the root type).
    pub access: String,
    pub kind: u32,
    /// Byte offset of the record in `.BTF.ext`.
    pub at: u64,
}

const BTF_EXT_MAGIC: u16 = 0xeb9f;

fn err<T>(offset: usize, detail: impl Into<String>) -> Result<T, BtfError> {
    Err(BtfError {
        offset: offset as u64,
        detail: detail.into(),
    })
}

/// The kernel's names of `enum bpf_core_relo_kind`.
pub(crate) fn core_kind_name(kind: u32) -> &'static str {
    match kind {
        0 => "field byte offset",
        1 => "field byte size",
        2 => "field existence",
        3 => "field signedness",
        4 => "field lshift",
        5 => "field rshift",
        6 => "local type id",
        7 => "target type id",
        8 => "type existence",
        9 => "type size",
        10 => "enum value existence",
        11 => "enum value",
        12 => "type match",
        _ => "unknown kind",
    }
}

/// The CO-RE records of a `.BTF.ext` section (empty when it has none).
pub(crate) fn core_relos(data: &[u8], btf: &Btf) -> Result<Vec<CoreRelo>, BtfError> {
    let r = Reader { data };
    let magic = r.u16(0)?;
    if magic != BTF_EXT_MAGIC {
        return err(0, format!("bad magic {magic:#06x}"));
    }
    let hdr_len = r.u32(4)? as usize;
    if hdr_len > data.len() {
        return err(4, format!("header length {hdr_len} exceeds the section"));
    }
    // The CO-RE part of the header (two more u32s after line info) is optional.
    if hdr_len < 32 {
        return Ok(Vec::new());
    }
    let (off, len) = (r.u32(24)? as usize, r.u32(28)? as usize);
    if len == 0 {
        return Ok(Vec::new());
    }
    let start = hdr_len.checked_add(off);
    let end = start.and_then(|s| s.checked_add(len));
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) if e <= data.len() => (s, e),
        _ => return err(24, "CO-RE relocation info lies outside the section"),
    };
    let r = Reader { data: &data[..end] };
    let rec_size = r.u32(start)? as usize;
    if rec_size < 16 {
        return err(start, format!("CO-RE record size {rec_size} is below 16"));
    }
    let mut out = Vec::new();
    let mut pos = start + 4;
    while pos < end {
        let sec_name_off = r.u32(pos)?;
        let num = r.u32(pos + 4)? as usize;
        let section = match btf.string(sec_name_off) {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => {
                return err(
                    pos,
                    format!("section name offset {sec_name_off} is not a string"),
                )
            }
        };
        pos += 8;
        let bytes = num.checked_mul(rec_size);
        let after = bytes.and_then(|b| pos.checked_add(b));
        match after {
            Some(a) if a <= end => {}
            _ => return err(pos, format!("{num} CO-RE records run past the section")),
        }
        for _ in 0..num {
            let access_off = r.u32(pos + 8)?;
            out.push(CoreRelo {
                section: section.clone(),
                insn_off: r.u32(pos)?,
                type_id: r.u32(pos + 4)?,
                access: btf.string(access_off).unwrap_or("?").to_string(),
                kind: r.u32(pos + 12)?,
                at: pos as u64,
            });
            pos += rec_size;
        }
    }
    Ok(out)
}

/// One `struct bpf_line_info` of a code section: where a source line's code starts (byte
/// offset in the section) and the BTF string offsets of its file name and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LineRec {
    pub section: String,
    pub insn_off: u32,
    pub file_name_off: u32,
    pub line_off: u32,
    /// Line number (high 22 bits) and column (low 10).
    pub line_col: u32,
}

/// The line info records of a `.BTF.ext` section (empty when it has none). A malformed part
/// yields nothing rather than an error: line info is only for logs.
pub(crate) fn line_infos(data: &[u8], btf: &Btf) -> Vec<LineRec> {
    let r = Reader { data };
    let mut out = Vec::new();
    let parse = |out: &mut Vec<LineRec>| -> Result<(), BtfError> {
        if r.u16(0)? != BTF_EXT_MAGIC {
            return err(0, "bad magic");
        }
        let hdr_len = r.u32(4)? as usize;
        if hdr_len < 24 {
            return Ok(());
        }
        let (off, len) = (r.u32(16)? as usize, r.u32(20)? as usize);
        if len == 0 {
            return Ok(());
        }
        let start = hdr_len.saturating_add(off);
        let end = start.saturating_add(len);
        if end > data.len() {
            return err(16, "line info lies outside the section");
        }
        let r = Reader { data: &data[..end] };
        let rec_size = r.u32(start)? as usize;
        if rec_size < 16 {
            return err(start, "line info record size below 16");
        }
        let mut pos = start + 4;
        while pos < end {
            let section = btf.string(r.u32(pos)?).unwrap_or("").to_string();
            let num = r.u32(pos + 4)? as usize;
            pos += 8;
            for _ in 0..num {
                out.push(LineRec {
                    section: section.clone(),
                    insn_off: r.u32(pos)?,
                    file_name_off: r.u32(pos + 4)?,
                    line_off: r.u32(pos + 8)?,
                    line_col: r.u32(pos + 12)?,
                });
                pos += rec_size;
            }
        }
        Ok(())
    };
    if parse(&mut out).is_err() {
        out.clear();
    }
    out
}
