//! BTF (`.BTF`): the type information clang emits with `-g`. Parsed in full so that map
//! definitions, key and value types and global data sections can be named and sized; nothing
//! here is trusted, every id and string offset is checked when it is used.

use std::fmt::Write as _;

/// Deepest chain of modifiers, typedefs and arrays followed before giving up (libbpf's limit).
const MAX_DEPTH: usize = 32;

/// Pointer size of the BPF target.
const PTR_SIZE: u32 = 8;

/// BTF type information: the types (id 0 is `void`) and the string section.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Btf {
    types: Vec<BtfType>,
    strings: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BtfType {
    /// Empty for anonymous types.
    pub name: String,
    pub kind: BtfKind,
}

/// One BTF type, by kind (`BTF_KIND_*`), with ids of the types it refers to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BtfKind {
    /// Type id 0.
    Void,
    Int {
        size: u32,
        /// `BTF_INT_SIGNED` (1), `BTF_INT_CHAR` (2), `BTF_INT_BOOL` (4).
        encoding: u8,
        offset: u8,
        bits: u8,
    },
    Ptr {
        target: u32,
    },
    Array {
        elem: u32,
        index: u32,
        nelems: u32,
    },
    Struct {
        size: u32,
        members: Vec<BtfMember>,
    },
    Union {
        size: u32,
        members: Vec<BtfMember>,
    },
    Enum {
        size: u32,
        signed: bool,
        values: Vec<BtfEnumValue>,
    },
    Fwd {
        union: bool,
    },
    Typedef {
        target: u32,
    },
    Volatile {
        target: u32,
    },
    Const {
        target: u32,
    },
    Restrict {
        target: u32,
    },
    Func {
        proto: u32,
        /// `BTF_FUNC_STATIC` (0), `BTF_FUNC_GLOBAL` (1), `BTF_FUNC_EXTERN` (2).
        linkage: u16,
    },
    FuncProto {
        ret: u32,
        params: Vec<BtfParam>,
    },
    Var {
        target: u32,
        /// `BTF_VAR_STATIC` (0), `BTF_VAR_GLOBAL_ALLOCATED` (1), `BTF_VAR_GLOBAL_EXTERN` (2).
        linkage: u32,
    },
    Datasec {
        size: u32,
        vars: Vec<BtfVarSecinfo>,
    },
    Float {
        size: u32,
    },
    DeclTag {
        target: u32,
        component_idx: i32,
    },
    TypeTag {
        target: u32,
    },
    Enum64 {
        size: u32,
        signed: bool,
        values: Vec<BtfEnumValue>,
    },
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BtfMember {
    pub name: String,
    pub type_id: u32,
    pub bit_offset: u32,
    /// Non-zero for bitfields (only when the struct has `kind_flag` set).
    pub bitfield_size: u32,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BtfEnumValue {
    pub name: String,
    pub value: i64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BtfParam {
    pub name: String,
    pub type_id: u32,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BtfVarSecinfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// A parse failure at a byte offset of the BTF section.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct BtfError {
    pub offset: u64,
    pub detail: String,
}

fn err<T>(offset: usize, detail: impl Into<String>) -> Result<T, BtfError> {
    Err(BtfError {
        offset: offset as u64,
        detail: detail.into(),
    })
}

/// Little-endian reads with bounds checks, reporting the offset that failed.
pub(crate) struct Reader<'a> {
    pub data: &'a [u8],
}

impl Reader<'_> {
    pub fn u32(&self, at: usize) -> Result<u32, BtfError> {
        match at.checked_add(4).and_then(|end| self.data.get(at..end)) {
            Some(b) => Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            None => err(at, "truncated"),
        }
    }

    pub fn u16(&self, at: usize) -> Result<u16, BtfError> {
        match at.checked_add(2).and_then(|end| self.data.get(at..end)) {
            Some(b) => Ok(u16::from_le_bytes([b[0], b[1]])),
            None => err(at, "truncated"),
        }
    }
}

/// A NUL-terminated string at `off` of a string section.
pub(crate) fn string_at(strings: &[u8], off: u32) -> Option<&str> {
    let tail = strings.get(off as usize..)?;
    let end = tail.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&tail[..end]).ok()
}

const BTF_MAGIC: u16 = 0xeb9f;

impl Btf {
    /// Parse a `.BTF` section.
    pub(crate) fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let r = Reader { data };
        let magic = r.u16(0)?;
        if magic != BTF_MAGIC {
            return err(
                0,
                format!("bad magic {magic:#06x} (expected 0xeb9f, little endian)"),
            );
        }
        let version = data.get(2).copied().unwrap_or(0);
        if version != 1 {
            return err(2, format!("unsupported BTF version {version}"));
        }
        let hdr_len = r.u32(4)? as usize;
        if hdr_len < 24 || hdr_len > data.len() {
            return err(4, format!("bad header length {hdr_len}"));
        }
        let (type_off, type_len) = (r.u32(8)? as usize, r.u32(12)? as usize);
        let (str_off, str_len) = (r.u32(16)? as usize, r.u32(20)? as usize);
        let range = |off: usize, len: usize, what: &str, at: usize| {
            let start = hdr_len.checked_add(off);
            let end = start.and_then(|s| s.checked_add(len));
            match (start, end) {
                (Some(s), Some(e)) if e <= data.len() => Ok(s..e),
                _ => err(at, format!("{what} section ({off}+{len}) outside the data")),
            }
        };
        let types_range = range(type_off, type_len, "type", 8)?;
        let strings_range = range(str_off, str_len, "string", 16)?;
        let strings = data[strings_range.clone()].to_vec();
        if strings.first().is_some_and(|&b| b != 0) {
            return err(
                strings_range.start,
                "string section does not start with NUL",
            );
        }

        let mut types = vec![BtfType {
            name: String::new(),
            kind: BtfKind::Void,
        }];
        let mut pos = types_range.start;
        while pos < types_range.end {
            let r = Reader {
                data: &data[..types_range.end],
            };
            let (t, next) = parse_type(&r, pos, &strings)?;
            types.push(t);
            pos = next;
        }
        Ok(Btf { types, strings })
    }

    /// Parse raw BTF (a `.BTF` section, or a kernel's `/sys/kernel/btf/vmlinux`).
    pub fn from_bytes(data: &[u8], what: &str) -> Result<Btf, super::ObjectError> {
        Btf::parse(data).map_err(|e| super::ObjectError::Btf {
            section: what.to_string(),
            offset: e.offset,
            detail: e.detail,
        })
    }

    /// BTF made of these types (id 1 first; `void` is added as id 0), for building target BTF
    /// in tests and tools; type names are kept as given, the string section is empty.
    pub fn from_types(types: Vec<BtfType>) -> Btf {
        let mut all = vec![BtfType {
            name: String::new(),
            kind: BtfKind::Void,
        }];
        all.extend(types);
        Btf {
            types: all,
            strings: vec![0],
        }
    }

    /// All types; index = type id (0 is `void`).
    pub fn types(&self) -> &[BtfType] {
        &self.types
    }

    pub fn type_by_id(&self, id: u32) -> Option<&BtfType> {
        self.types.get(id as usize)
    }

    /// The string at offset `off` of the string section (names, `.BTF.ext` section names).
    pub fn string(&self, off: u32) -> Option<&str> {
        string_at(&self.strings, off)
    }

    /// First type with this name and a kind that `pred` accepts.
    pub fn find(&self, name: &str, pred: impl Fn(&BtfKind) -> bool) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.name == name && pred(&t.kind))
            .map(|i| i as u32)
    }

    /// Follow typedefs and `const`/`volatile`/`restrict`/type tags to the underlying type.
    pub fn skip_mods_and_typedefs(&self, mut id: u32) -> Option<u32> {
        for _ in 0..MAX_DEPTH {
            match self.type_by_id(id)?.kind {
                BtfKind::Typedef { target }
                | BtfKind::Volatile { target }
                | BtfKind::Const { target }
                | BtfKind::Restrict { target }
                | BtfKind::TypeTag { target } => id = target,
                _ => return Some(id),
            }
        }
        None
    }

    /// Size in bytes of an object of type `id` (libbpf's `btf__resolve_size`).
    pub fn resolve_size(&self, mut id: u32) -> Result<u32, String> {
        let mut nelems: u64 = 1;
        for _ in 0..MAX_DEPTH {
            let t = self
                .type_by_id(id)
                .ok_or_else(|| format!("type [{id}] does not exist"))?;
            let size = match &t.kind {
                BtfKind::Int { size, .. }
                | BtfKind::Float { size }
                | BtfKind::Struct { size, .. }
                | BtfKind::Union { size, .. }
                | BtfKind::Enum { size, .. }
                | BtfKind::Enum64 { size, .. }
                | BtfKind::Datasec { size, .. } => *size,
                BtfKind::Ptr { .. } => PTR_SIZE,
                BtfKind::Typedef { target }
                | BtfKind::Volatile { target }
                | BtfKind::Const { target }
                | BtfKind::Restrict { target }
                | BtfKind::TypeTag { target }
                | BtfKind::Var { target, .. }
                | BtfKind::DeclTag { target, .. } => {
                    id = *target;
                    continue;
                }
                BtfKind::Array {
                    elem, nelems: n, ..
                } => {
                    nelems = nelems.saturating_mul(*n as u64);
                    id = *elem;
                    continue;
                }
                BtfKind::Void | BtfKind::Fwd { .. } | BtfKind::Func { .. } => {
                    return Err(format!("type [{id}] ({}) has no size", self.type_name(id)))
                }
                BtfKind::FuncProto { .. } => {
                    return Err(format!("type [{id}] (a function prototype) has no size"))
                }
            };
            return u32::try_from(nelems.saturating_mul(size as u64))
                .map_err(|_| format!("type [{id}] is larger than 4 GiB"));
        }
        Err(format!("type chain from [{id}] is deeper than {MAX_DEPTH}"))
    }

    /// A C-like spelling of type `id`: `struct flow_key`, `__u32`, `int *`, `char[16]`.
    pub fn type_name(&self, id: u32) -> String {
        let mut out = String::new();
        self.write_name(id, &mut out, 0);
        out
    }

    fn write_name(&self, id: u32, out: &mut String, depth: usize) {
        let Some(t) = self.type_by_id(id) else {
            let _ = write!(out, "<bad type {id}>");
            return;
        };
        if depth > MAX_DEPTH {
            out.push_str("...");
            return;
        }
        let named = |prefix: &str, out: &mut String| {
            out.push_str(prefix);
            out.push_str(if t.name.is_empty() { "(anon)" } else { &t.name });
        };
        match &t.kind {
            BtfKind::Void => out.push_str("void"),
            BtfKind::Struct { .. } => named("struct ", out),
            BtfKind::Union { .. } => named("union ", out),
            BtfKind::Enum { .. } | BtfKind::Enum64 { .. } => named("enum ", out),
            BtfKind::Fwd { union } => named(if *union { "union " } else { "struct " }, out),
            BtfKind::Ptr { target } => {
                self.write_name(*target, out, depth + 1);
                out.push_str(" *");
            }
            BtfKind::Const { target } => {
                out.push_str("const ");
                self.write_name(*target, out, depth + 1);
            }
            BtfKind::Volatile { target } => {
                out.push_str("volatile ");
                self.write_name(*target, out, depth + 1);
            }
            BtfKind::Restrict { target } | BtfKind::TypeTag { target } => {
                self.write_name(*target, out, depth + 1)
            }
            BtfKind::Array { elem, nelems, .. } => {
                self.write_name(*elem, out, depth + 1);
                let _ = write!(out, "[{nelems}]");
            }
            BtfKind::FuncProto { .. } => out.push_str("fn(...)"),
            BtfKind::Int { .. }
            | BtfKind::Float { .. }
            | BtfKind::Typedef { .. }
            | BtfKind::Func { .. }
            | BtfKind::Var { .. }
            | BtfKind::Datasec { .. }
            | BtfKind::DeclTag { .. } => named("", out),
        }
    }
}

/// One `struct btf_type` and its trailing data at `pos`; returns the type and the next offset.
pub(crate) fn parse_type(
    r: &Reader<'_>,
    pos: usize,
    strings: &[u8],
) -> Result<(BtfType, usize), BtfError> {
    let name_off = r.u32(pos)?;
    let info = r.u32(pos + 4)?;
    let size_or_type = r.u32(pos + 8)?;
    let vlen = (info & 0xffff) as usize;
    let kind = (info >> 24) & 0x1f;
    let kind_flag = info >> 31 != 0;
    let name = |off: u32, at: usize| match string_at(strings, off) {
        Some(s) => Ok(s.to_string()),
        None => err(at, format!("name offset {off} is not a string")),
    };
    let t_name = name(name_off, pos)?;
    let body = pos + 12;
    // Trailing records: `vlen` entries of `size` bytes each, read by `f`.
    let records = |size: usize| -> Result<usize, BtfError> {
        let len = vlen * size;
        match body.checked_add(len) {
            Some(end) if end <= r.data.len() => Ok(end),
            _ => err(
                pos,
                format!("type needs {len} more bytes than the section has"),
            ),
        }
    };
    let (kind, next) = match kind {
        1 => {
            let enc = r.u32(body)?;
            let k = BtfKind::Int {
                size: size_or_type,
                encoding: ((enc >> 24) & 0x0f) as u8,
                offset: ((enc >> 16) & 0xff) as u8,
                bits: (enc & 0xff) as u8,
            };
            (k, body + 4)
        }
        2 => (
            BtfKind::Ptr {
                target: size_or_type,
            },
            body,
        ),
        3 => {
            let k = BtfKind::Array {
                elem: r.u32(body)?,
                index: r.u32(body + 4)?,
                nelems: r.u32(body + 8)?,
            };
            (k, body + 12)
        }
        4 | 5 => {
            let end = records(12)?;
            let mut members = Vec::new();
            for at in (body..end).step_by(12) {
                let off = r.u32(at + 8)?;
                let (bit_offset, bitfield_size) = if kind_flag {
                    (off & 0x00ff_ffff, off >> 24)
                } else {
                    (off, 0)
                };
                members.push(BtfMember {
                    name: name(r.u32(at)?, at)?,
                    type_id: r.u32(at + 4)?,
                    bit_offset,
                    bitfield_size,
                });
            }
            let size = size_or_type;
            let k = if kind == 4 {
                BtfKind::Struct { size, members }
            } else {
                BtfKind::Union { size, members }
            };
            (k, end)
        }
        6 => {
            let end = records(8)?;
            let mut values = Vec::new();
            for at in (body..end).step_by(8) {
                let raw = r.u32(at + 4)?;
                values.push(BtfEnumValue {
                    name: name(r.u32(at)?, at)?,
                    value: if kind_flag {
                        raw as i32 as i64
                    } else {
                        raw as i64
                    },
                });
            }
            let k = BtfKind::Enum {
                size: size_or_type,
                signed: kind_flag,
                values,
            };
            (k, end)
        }
        7 => (BtfKind::Fwd { union: kind_flag }, body),
        8 => (
            BtfKind::Typedef {
                target: size_or_type,
            },
            body,
        ),
        9 => (
            BtfKind::Volatile {
                target: size_or_type,
            },
            body,
        ),
        10 => (
            BtfKind::Const {
                target: size_or_type,
            },
            body,
        ),
        11 => (
            BtfKind::Restrict {
                target: size_or_type,
            },
            body,
        ),
        12 => (
            BtfKind::Func {
                proto: size_or_type,
                linkage: vlen as u16,
            },
            body,
        ),
        13 => {
            let end = records(8)?;
            let mut params = Vec::new();
            for at in (body..end).step_by(8) {
                params.push(BtfParam {
                    name: name(r.u32(at)?, at)?,
                    type_id: r.u32(at + 4)?,
                });
            }
            let k = BtfKind::FuncProto {
                ret: size_or_type,
                params,
            };
            (k, end)
        }
        14 => {
            let k = BtfKind::Var {
                target: size_or_type,
                linkage: r.u32(body)?,
            };
            (k, body + 4)
        }
        15 => {
            let end = records(12)?;
            let mut vars = Vec::new();
            for at in (body..end).step_by(12) {
                vars.push(BtfVarSecinfo {
                    type_id: r.u32(at)?,
                    offset: r.u32(at + 4)?,
                    size: r.u32(at + 8)?,
                });
            }
            let k = BtfKind::Datasec {
                size: size_or_type,
                vars,
            };
            (k, end)
        }
        16 => (BtfKind::Float { size: size_or_type }, body),
        17 => {
            let k = BtfKind::DeclTag {
                target: size_or_type,
                component_idx: r.u32(body)? as i32,
            };
            (k, body + 4)
        }
        18 => (
            BtfKind::TypeTag {
                target: size_or_type,
            },
            body,
        ),
        19 => {
            let end = records(12)?;
            let mut values = Vec::new();
            for at in (body..end).step_by(12) {
                let lo = r.u32(at + 4)? as u64;
                let hi = r.u32(at + 8)? as u64;
                values.push(BtfEnumValue {
                    name: name(r.u32(at)?, at)?,
                    value: (hi << 32 | lo) as i64,
                });
            }
            let k = BtfKind::Enum64 {
                size: size_or_type,
                signed: kind_flag,
                values,
            };
            (k, end)
        }
        other => return err(pos + 4, format!("unknown BTF kind {other}")),
    };
    if next > r.data.len() {
        return err(pos, "type runs past the end of the type section");
    }
    Ok((BtfType { name: t_name, kind }, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds raw BTF from (name_off, info, size_or_type, trailing words) records.
    fn raw(types: &[(u32, u32, u32, &[u32])], strings: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, info, sz, extra) in types {
            for w in [*name, *info, *sz].iter().chain(extra.iter()) {
                t.extend_from_slice(&w.to_le_bytes());
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(strings);
        out
    }

    const STRS: &[u8] = b"\0int\0pair\0a\0b\0";

    #[test]
    fn parses_and_sizes_types() {
        let btf = Btf::parse(&raw(
            &[
                (1, 1 << 24, 4, &[(1 << 24) | 32]), // [1] int, signed 32
                (0, 2 << 24, 1, &[]),               // [2] int *
                (0, 3 << 24, 0, &[1, 1, 3]),        // [3] int[3]
                (5, (4 << 24) | 2, 16, &[10, 1, 0, 12, 2, 64]), // [4] struct pair
                (0, 10 << 24, 4, &[]),              // [5] const struct pair
            ],
            STRS,
        ))
        .unwrap();
        assert_eq!(btf.types().len(), 6);
        assert_eq!(btf.resolve_size(1), Ok(4));
        assert_eq!(btf.resolve_size(2), Ok(8));
        assert_eq!(btf.resolve_size(3), Ok(12));
        assert_eq!(btf.resolve_size(5), Ok(16));
        assert_eq!(btf.type_name(3), "int[3]");
        assert_eq!(btf.type_name(2), "int *");
        assert_eq!(btf.type_name(5), "const struct pair");
        assert_eq!(btf.skip_mods_and_typedefs(5), Some(4));
        assert!(btf.resolve_size(0).is_err());
        assert_eq!(
            btf.find("pair", |k| matches!(k, BtfKind::Struct { .. })),
            Some(4)
        );
    }

    #[test]
    fn rejects_bad_input_with_offsets() {
        let good = raw(&[(1, 1 << 24, 4, &[32])], STRS);
        assert_eq!(Btf::parse(&good[..10]).unwrap_err().offset, 4);
        let mut bad_kind = good.clone();
        bad_kind[24 + 7] = 31; // kind 31 in the info word's top byte
        assert!(Btf::parse(&bad_kind)
            .unwrap_err()
            .detail
            .contains("unknown BTF kind"));
        let mut bad_name = good.clone();
        bad_name[24] = 200;
        assert!(Btf::parse(&bad_name)
            .unwrap_err()
            .detail
            .contains("name offset"));
        // A self-referencing typedef resolves to an error, not a hang.
        let cyc = Btf::parse(&raw(&[(1, 8 << 24, 1, &[])], STRS)).unwrap();
        assert!(cyc.resolve_size(1).is_err());
        assert_eq!(cyc.skip_mods_and_typedefs(1), None);
        assert!(cyc.type_name(1).contains("int"));
    }
}
