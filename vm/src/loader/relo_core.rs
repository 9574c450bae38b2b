//! CO-RE relocations (`.BTF.ext` `bpf_core_relo` records) resolved against the kernel's BTF
//! and applied to the instructions, with the behaviour of libbpf's `relo_core.c`: the local
//! access string parsed into a spec, candidate target types found by essential name (flavor
//! suffixes ignored), each candidate matched field by field (anonymous members searched), the
//! relocated value computed per kind, ambiguous candidates refused, an unresolvable relocation
//! poisoning its instruction (`call 0xbad2310`, which the verifier reports only if it is
//! reachable), and the instruction patched with libbpf's checks of the value it holds.

use super::btf::{Btf, BtfKind, BtfMember};
use super::btf_ext::CoreRelo;
use super::target::{essential_name_len, TargetBtf};
use crate::isa::RawInsn;

pub(crate) const FIELD_BYTE_OFFSET: u32 = 0;
pub(crate) const FIELD_BYTE_SIZE: u32 = 1;
pub(crate) const FIELD_EXISTS: u32 = 2;
pub(crate) const FIELD_SIGNED: u32 = 3;
pub(crate) const FIELD_LSHIFT_U64: u32 = 4;
pub(crate) const FIELD_RSHIFT_U64: u32 = 5;
pub(crate) const TYPE_ID_LOCAL: u32 = 6;
pub(crate) const TYPE_ID_TARGET: u32 = 7;
pub(crate) const TYPE_EXISTS: u32 = 8;
pub(crate) const TYPE_SIZE: u32 = 9;
pub(crate) const ENUMVAL_EXISTS: u32 = 10;
pub(crate) const ENUMVAL_VALUE: u32 = 11;
pub(crate) const TYPE_MATCHES: u32 = 12;

/// The immediate libbpf writes into a poisoned instruction (`call 195896080`).
pub const POISON_IMM: i32 = 0x0bad_2310;

/// Deepest access string (`BPF_CORE_SPEC_MAX_LEN`).
const SPEC_MAX_LEN: usize = 64;
/// Recursion limit of the type comparisons.
const MAX_DEPTH: i32 = 32;

fn is_field_based(kind: u32) -> bool {
    kind <= FIELD_RSHIFT_U64
}

fn is_type_based(kind: u32) -> bool {
    matches!(
        kind,
        TYPE_ID_LOCAL | TYPE_ID_TARGET | TYPE_EXISTS | TYPE_SIZE | TYPE_MATCHES
    )
}

fn is_enumval_based(kind: u32) -> bool {
    matches!(kind, ENUMVAL_EXISTS | ENUMVAL_VALUE)
}

/// libbpf's short names of the kinds, as its messages print them.
pub(crate) fn kind_str(kind: u32) -> &'static str {
    match kind {
        FIELD_BYTE_OFFSET => "byte_off",
        FIELD_BYTE_SIZE => "byte_sz",
        FIELD_EXISTS => "field_exists",
        FIELD_SIGNED => "signed",
        FIELD_LSHIFT_U64 => "lshift_u64",
        FIELD_RSHIFT_U64 => "rshift_u64",
        TYPE_ID_LOCAL => "local_type_id",
        TYPE_ID_TARGET => "target_type_id",
        TYPE_EXISTS => "type_exists",
        TYPE_MATCHES => "type_matches",
        TYPE_SIZE => "type_size",
        ENUMVAL_EXISTS => "enumval_exists",
        ENUMVAL_VALUE => "enumval_value",
        _ => "unknown",
    }
}

fn kind_word(k: &BtfKind) -> &'static str {
    match k {
        BtfKind::Void => "UNKNOWN",
        BtfKind::Int { .. } => "int",
        BtfKind::Ptr { .. } => "ptr",
        BtfKind::Array { .. } => "array",
        BtfKind::Struct { .. } => "struct",
        BtfKind::Union { .. } => "union",
        BtfKind::Enum { .. } => "enum",
        BtfKind::Fwd { .. } => "fwd",
        BtfKind::Typedef { .. } => "typedef",
        BtfKind::Volatile { .. } => "volatile",
        BtfKind::Const { .. } => "const",
        BtfKind::Restrict { .. } => "restrict",
        BtfKind::Func { .. } => "func",
        BtfKind::FuncProto { .. } => "func_proto",
        BtfKind::Var { .. } => "var",
        BtfKind::Datasec { .. } => "datasec",
        BtfKind::Float { .. } => "float",
        BtfKind::DeclTag { .. } => "decl_tag",
        BtfKind::TypeTag { .. } => "type_tag",
        BtfKind::Enum64 { .. } => "enum64",
    }
}

/// Same BTF kind number, with enum and enum64 interchangeable (`btf_kind_core_compat`).
fn kinds_compat(a: &BtfKind, b: &BtfKind) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b) || (is_any_enum(a) && is_any_enum(b))
}

fn is_any_enum(k: &BtfKind) -> bool {
    matches!(k, BtfKind::Enum { .. } | BtfKind::Enum64 { .. })
}

fn members(k: &BtfKind) -> Option<&[BtfMember]> {
    match k {
        BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => Some(members),
        _ => None,
    }
}

/// A type after modifiers and typedefs, with its id.
fn skip(btf: &Btf, id: u32) -> Option<(u32, &BtfKind)> {
    let id = btf.skip_mods_and_typedefs(id)?;
    Some((id, &btf.type_by_id(id)?.kind))
}

fn kind_of(btf: &Btf, id: u32) -> Option<&BtfKind> {
    btf.type_by_id(id).map(|t| &t.kind)
}

fn name_of(btf: &Btf, id: u32) -> &str {
    btf.type_by_id(id).map_or("", |t| t.name.as_str())
}

fn enum_names(k: &BtfKind) -> Vec<&str> {
    match k {
        BtfKind::Enum { values, .. } | BtfKind::Enum64 { values, .. } => {
            values.iter().map(|v| v.name.as_str()).collect()
        }
        _ => Vec::new(),
    }
}

/// `a` and `b` have the same essential name.
fn essential_eq(a: &str, b: &str) -> bool {
    let (la, lb) = (essential_name_len(a), essential_name_len(b));
    la == lb && a.as_bytes()[..la] == b.as_bytes()[..lb]
}

/// One high-level step of an access: a named member, or an array index (`name` is `None`).
#[derive(Clone, Debug)]
struct Accessor {
    type_id: u32,
    idx: u32,
    name: Option<String>,
}

/// A relocation's access in one BTF: the raw indices, the named fields and array indices they
/// go through, and the bit offset they reach.
#[derive(Clone, Debug)]
struct Spec<'a> {
    btf: &'a Btf,
    root_type_id: u32,
    raw: Vec<u32>,
    acc: Vec<Accessor>,
    bit_offset: u32,
}

impl<'a> Spec<'a> {
    fn new(btf: &'a Btf, root_type_id: u32) -> Spec<'a> {
        Spec {
            btf,
            root_type_id,
            raw: Vec::new(),
            acc: Vec::new(),
            bit_offset: 0,
        }
    }

    /// libbpf's `[id] struct foo.a[3] (0:1:3 @ offset 12)` rendering, for messages.
    fn describe(&self, kind: u32) -> String {
        let t = self.btf.type_by_id(self.root_type_id);
        let mut s = format!(
            "<{}> [{}] {} {}",
            kind_str(kind),
            self.root_type_id,
            t.map_or("UNKNOWN", |t| kind_word(&t.kind)),
            t.map_or("<anon>", |t| if t.name.is_empty() {
                "<anon>"
            } else {
                &t.name
            })
        );
        if is_field_based(kind) {
            for (i, a) in self.acc.iter().enumerate() {
                match &a.name {
                    Some(n) => s.push_str(&format!(".{n}")),
                    None if i > 0 || a.idx > 0 => s.push_str(&format!("[{}]", a.idx)),
                    None => {}
                }
            }
            let raw: Vec<String> = self.raw.iter().map(u32::to_string).collect();
            s.push_str(&format!(" ({}", raw.join(":")));
            if self.bit_offset % 8 != 0 {
                s.push_str(&format!(
                    " @ offset {}.{})",
                    self.bit_offset / 8,
                    self.bit_offset % 8
                ));
            } else {
                s.push_str(&format!(" @ offset {})", self.bit_offset / 8));
            }
        }
        s
    }
}

/// The flexible array member `arr` (no elements, last member of the struct `parent` names).
fn is_flex_arr(btf: &Btf, parent: Option<&Accessor>, nelems: u32) -> bool {
    let Some(p) = parent else { return false };
    if p.name.is_none() || nelems > 0 {
        return false;
    }
    kind_of(btf, p.type_id)
        .and_then(members)
        .is_some_and(|m| p.idx as usize + 1 == m.len())
}

fn size_of(btf: &Btf, id: u32) -> Result<u32, String> {
    btf.resolve_size(id)
}

fn mul_bits(idx: u32, size: u32) -> Result<u32, String> {
    idx.checked_mul(size)
        .and_then(|b| b.checked_mul(8))
        .ok_or_else(|| format!("offset of element {idx} overflows"))
}

/// `bpf_core_parse_spec`: the access string of `relo` in the local BTF.
fn parse_spec<'a>(btf: &'a Btf, relo: &CoreRelo) -> Result<Spec<'a>, String> {
    let mut spec = Spec::new(btf, relo.type_id);
    let s = relo.access.as_str();
    if s.is_empty() || s.starts_with(':') {
        return Err("empty access string".into());
    }
    if is_type_based(relo.kind) {
        return if s == "0" {
            Ok(spec)
        } else {
            Err(format!(
                "type relocation with access string '{s}' (not '0')"
            ))
        };
    }
    for part in s.split(':') {
        let idx: u32 = part
            .parse()
            .map_err(|_| format!("access string '{s}' has a bad index '{part}'"))?;
        if spec.raw.len() == SPEC_MAX_LEN {
            return Err(format!("access string deeper than {SPEC_MAX_LEN}"));
        }
        spec.raw.push(idx);
    }
    let (mut id, t) =
        skip(btf, relo.type_id).ok_or_else(|| format!("type [{}] is missing", relo.type_id))?;
    let first = spec.raw[0];
    if is_enumval_based(relo.kind) {
        let names = enum_names(t);
        if !is_any_enum(t) || spec.raw.len() > 1 || first as usize >= names.len() {
            return Err(format!(
                "enum value relocation needs one index below the enum's {} values",
                names.len()
            ));
        }
        spec.acc.push(Accessor {
            type_id: id,
            idx: first,
            name: Some(names[first as usize].to_string()),
        });
        return Ok(spec);
    }
    if !is_field_based(relo.kind) {
        return Err(format!("unknown relocation kind {}", relo.kind));
    }
    spec.acc.push(Accessor {
        type_id: id,
        idx: first,
        name: None,
    });
    spec.bit_offset = mul_bits(first, size_of(btf, id)?)?;
    for i in 1..spec.raw.len() {
        let access = spec.raw[i];
        let (tid, t) = skip(btf, id).ok_or_else(|| format!("type [{id}] is missing"))?;
        id = tid;
        if let Some(ms) = members(t) {
            let m = ms.get(access as usize).ok_or_else(|| {
                format!(
                    "member index {access} of {} is out of range ({} members)",
                    btf.type_name(id),
                    ms.len()
                )
            })?;
            spec.bit_offset = spec
                .bit_offset
                .checked_add(m.bit_offset)
                .ok_or("bit offset overflows")?;
            if !m.name.is_empty() {
                spec.acc.push(Accessor {
                    type_id: id,
                    idx: access,
                    name: Some(m.name.clone()),
                });
            }
            id = m.type_id;
        } else if let BtfKind::Array { elem, nelems, .. } = *t {
            let (eid, _) = skip(btf, elem).ok_or_else(|| format!("type [{elem}] is missing"))?;
            let flex = is_flex_arr(btf, spec.acc.last(), nelems);
            if !flex && access >= nelems {
                return Err(format!(
                    "array index {access} is out of range ({} elements)",
                    nelems
                ));
            }
            id = eid;
            spec.acc.push(Accessor {
                type_id: id,
                idx: access,
                name: None,
            });
            let bits = mul_bits(access, size_of(btf, id)?)?;
            spec.bit_offset = spec
                .bit_offset
                .checked_add(bits)
                .ok_or("bit offset overflows")?;
        } else {
            return Err(format!(
                "relo for [{}] {} (at idx {i}) captures type [{id}] of unexpected kind {}",
                relo.type_id,
                relo.access,
                kind_word(t)
            ));
        }
    }
    Ok(spec)
}

/// `bpf_core_fields_are_compat`.
fn fields_compat(local: &Btf, mut lid: u32, targ: &Btf, mut tid: u32) -> Result<bool, String> {
    for _ in 0..MAX_DEPTH {
        let ((l, lt), (t, tt)) = match (skip(local, lid), skip(targ, tid)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err("type chain is broken".into()),
        };
        if members(lt).is_some() && members(tt).is_some() {
            return Ok(true);
        }
        if !kinds_compat(lt, tt) {
            return Ok(false);
        }
        return Ok(match (lt, tt) {
            (BtfKind::Ptr { .. }, _) | (BtfKind::Float { .. }, _) => true,
            (BtfKind::Fwd { .. } | BtfKind::Enum { .. } | BtfKind::Enum64 { .. }, _) => {
                let (ln, tn) = (name_of(local, l), name_of(targ, t));
                let (ll, tl) = (essential_name_len(ln), essential_name_len(tn));
                ll == 0 || tl == 0 || essential_eq(ln, tn)
            }
            (BtfKind::Int { offset: lo, .. }, BtfKind::Int { offset: to, .. }) => {
                *lo == 0 && *to == 0
            }
            (BtfKind::Array { elem: le, .. }, BtfKind::Array { elem: te, .. }) => {
                lid = *le;
                tid = *te;
                continue;
            }
            _ => false,
        });
    }
    Err("type chain too deep".into())
}

/// `bpf_core_types_are_compat`: what the type-based kinds other than `type_matches` need.
pub(crate) fn types_compat(
    local: &Btf,
    lid: u32,
    targ: &Btf,
    tid: u32,
    level: i32,
) -> Result<bool, String> {
    let (Some(l0), Some(t0)) = (kind_of(local, lid), kind_of(targ, tid)) else {
        return Err("type is missing".into());
    };
    if !kinds_compat(l0, t0) {
        return Ok(false);
    }
    let (mut lid, mut tid) = (lid, tid);
    for _ in 0..MAX_DEPTH {
        let ((_, lt), (_, tt)) = match (skip(local, lid), skip(targ, tid)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err("type chain is broken".into()),
        };
        if !kinds_compat(lt, tt) {
            return Ok(false);
        }
        match (lt, tt) {
            (
                BtfKind::Void
                | BtfKind::Struct { .. }
                | BtfKind::Union { .. }
                | BtfKind::Enum { .. }
                | BtfKind::Fwd { .. }
                | BtfKind::Enum64 { .. },
                _,
            ) => return Ok(true),
            (BtfKind::Int { offset: lo, .. }, BtfKind::Int { offset: to, .. }) => {
                return Ok(*lo == 0 && *to == 0)
            }
            (BtfKind::Ptr { target: l }, BtfKind::Ptr { target: t }) => (lid, tid) = (*l, *t),
            (BtfKind::Array { elem: l, .. }, BtfKind::Array { elem: t, .. }) => {
                (lid, tid) = (*l, *t)
            }
            (
                BtfKind::FuncProto {
                    ret: lr,
                    params: lp,
                },
                BtfKind::FuncProto {
                    ret: tr,
                    params: tp,
                },
            ) => {
                if lp.len() != tp.len() {
                    return Ok(false);
                }
                for (a, b) in lp.iter().zip(tp) {
                    if level <= 0 {
                        return Err("function prototypes nest too deep".into());
                    }
                    let la = local
                        .skip_mods_and_typedefs(a.type_id)
                        .ok_or("broken type")?;
                    let tb = targ
                        .skip_mods_and_typedefs(b.type_id)
                        .ok_or("broken type")?;
                    if !types_compat(local, la, targ, tb, level - 1)? {
                        return Ok(false);
                    }
                }
                lid = local.skip_mods_and_typedefs(*lr).ok_or("broken type")?;
                tid = targ.skip_mods_and_typedefs(*tr).ok_or("broken type")?;
            }
            _ => return Ok(false),
        }
    }
    Err("type chain too deep".into())
}

/// `bpf_core_names_match`: an anonymous target matches only an anonymous local name.
fn names_match(ln: &str, tn: &str) -> bool {
    if tn.is_empty() {
        return ln.is_empty();
    }
    essential_eq(ln, tn)
}

/// `__bpf_core_types_match`: the `type_matches` kind (`bpf_core_type_matches()`).
fn types_match(
    local: &Btf,
    lid: u32,
    targ: &Btf,
    tid: u32,
    mut behind_ptr: bool,
    level: i32,
) -> Result<bool, String> {
    if level <= 0 {
        return Err("types nest too deep".into());
    }
    let (mut lid, mut tid) = (lid, tid);
    for _ in 0..MAX_DEPTH {
        let ((l, lt), (t, tt)) = match (skip(local, lid), skip(targ, tid)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err("type chain is broken".into()),
        };
        if !names_match(name_of(local, l), name_of(targ, t)) {
            return Ok(false);
        }
        let same = std::mem::discriminant(lt) == std::mem::discriminant(tt);
        match lt {
            BtfKind::Void => return Ok(same),
            BtfKind::Fwd { union: lf } => {
                return Ok(match tt {
                    BtfKind::Fwd { union: tf } => lf == tf,
                    BtfKind::Struct { .. } if behind_ptr => !lf,
                    BtfKind::Union { .. } if behind_ptr => *lf,
                    _ => false,
                })
            }
            BtfKind::Enum { size: ls, .. } | BtfKind::Enum64 { size: ls, .. } => {
                let ts = match tt {
                    BtfKind::Enum { size, .. } | BtfKind::Enum64 { size, .. } => *size,
                    _ => return Ok(false),
                };
                let (ln, tn) = (enum_names(lt), enum_names(tt));
                return Ok(*ls == ts
                    && ln.len() <= tn.len()
                    && ln.iter().all(|a| tn.iter().any(|b| names_match(a, b))));
            }
            BtfKind::Struct { .. } | BtfKind::Union { .. } => {
                let is_union = matches!(lt, BtfKind::Union { .. });
                if behind_ptr {
                    return Ok(same || matches!(tt, BtfKind::Fwd { union } if *union == is_union));
                }
                if !same {
                    return Ok(false);
                }
                let (lm, tm) = (members(lt).unwrap_or(&[]), members(tt).unwrap_or(&[]));
                if lm.len() > tm.len() {
                    return Ok(false);
                }
                for a in lm {
                    let mut matched = false;
                    for b in tm {
                        if !names_match(&a.name, &b.name) {
                            continue;
                        }
                        if types_match(local, a.type_id, targ, b.type_id, behind_ptr, level - 1)? {
                            matched = true;
                            break;
                        }
                    }
                    if !matched {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            BtfKind::Int {
                size: ls,
                encoding: le,
                ..
            } => {
                return Ok(match tt {
                    BtfKind::Int {
                        size: ts,
                        encoding: te,
                        ..
                    } => ls == ts && (le & 1) == (te & 1),
                    _ => false,
                })
            }
            BtfKind::Ptr { target } => {
                let BtfKind::Ptr { target: t2 } = tt else {
                    return Ok(false);
                };
                behind_ptr = true;
                (lid, tid) = (*target, *t2);
            }
            BtfKind::Array { elem, nelems, .. } => {
                let BtfKind::Array {
                    elem: e2,
                    nelems: n2,
                    ..
                } = tt
                else {
                    return Ok(false);
                };
                if nelems != n2 {
                    return Ok(false);
                }
                (lid, tid) = (*elem, *e2);
            }
            BtfKind::FuncProto { ret, params } => {
                let BtfKind::FuncProto {
                    ret: r2,
                    params: p2,
                } = tt
                else {
                    return Ok(false);
                };
                if params.len() != p2.len() {
                    return Ok(false);
                }
                for (a, b) in params.iter().zip(p2) {
                    if !types_match(local, a.type_id, targ, b.type_id, behind_ptr, level - 1)? {
                        return Ok(false);
                    }
                }
                (lid, tid) = (*ret, *r2);
            }
            _ => return Ok(false),
        }
    }
    Err("type chain too deep".into())
}

/// `bpf_core_match_member`: find the local accessor's field in target type `tid`, searching
/// anonymous members; extends `spec` and returns the field's type id on a match.
fn match_member(
    local: &Btf,
    lacc: &Accessor,
    targ: &Btf,
    tid: u32,
    spec: &mut Spec<'_>,
) -> Result<Option<u32>, String> {
    let (tid, tt) = skip(targ, tid).ok_or("target type chain is broken")?;
    let Some(tms) = members(tt) else {
        return Ok(None);
    };
    let lm = kind_of(local, lacc.type_id)
        .and_then(members)
        .and_then(|m| m.get(lacc.idx as usize))
        .ok_or("local accessor is not a member")?;
    for (i, m) in tms.iter().enumerate() {
        if spec.raw.len() == SPEC_MAX_LEN {
            return Err(format!("access deeper than {SPEC_MAX_LEN}"));
        }
        spec.bit_offset = spec.bit_offset.wrapping_add(m.bit_offset);
        spec.raw.push(i as u32);
        if m.name.is_empty() {
            if let Some(found) = match_member(local, lacc, targ, m.type_id, spec)? {
                return Ok(Some(found));
            }
        } else if m.name == lm.name {
            if !fields_compat(local, lm.type_id, targ, m.type_id)? {
                return Ok(None);
            }
            spec.acc.push(Accessor {
                type_id: tid,
                idx: i as u32,
                name: Some(m.name.clone()),
            });
            return Ok(Some(m.type_id));
        }
        spec.bit_offset = spec.bit_offset.wrapping_sub(m.bit_offset);
        spec.raw.pop();
    }
    Ok(None)
}

/// `bpf_core_spec_match`: the local spec carried over to candidate `tid`, if it fits.
fn spec_match<'t>(
    local: &Spec<'_>,
    kind: u32,
    targ: &'t Btf,
    tid: u32,
) -> Result<Option<Spec<'t>>, String> {
    let mut spec = Spec::new(targ, tid);
    if is_type_based(kind) {
        let ok = if kind == TYPE_MATCHES {
            types_match(local.btf, local.root_type_id, targ, tid, false, MAX_DEPTH)?
        } else {
            types_compat(local.btf, local.root_type_id, targ, tid, MAX_DEPTH)?
        };
        return Ok(ok.then_some(spec));
    }
    if is_enumval_based(kind) {
        let (tid, tt) = skip(targ, tid).ok_or("target type chain is broken")?;
        if !is_any_enum(tt) {
            return Ok(None);
        }
        let want = local.acc[0].name.as_deref().unwrap_or("");
        for (i, n) in enum_names(tt).into_iter().enumerate() {
            if essential_eq(want, n) {
                spec.acc.push(Accessor {
                    type_id: tid,
                    idx: i as u32,
                    name: Some(n.to_string()),
                });
                spec.raw.push(i as u32);
                return Ok(Some(spec));
            }
        }
        return Ok(None);
    }
    let mut tid = tid;
    for (i, lacc) in local.acc.iter().enumerate() {
        let (cur, tt) = skip(targ, tid).ok_or("target type chain is broken")?;
        tid = cur;
        if lacc.name.is_some() {
            match match_member(local.btf, lacc, targ, tid, &mut spec)? {
                Some(next) => tid = next,
                None => return Ok(None),
            }
            continue;
        }
        if i > 0 {
            let BtfKind::Array { elem, nelems, .. } = *tt else {
                return Ok(None);
            };
            let flex = is_flex_arr(targ, spec.acc.last(), nelems);
            if !flex && lacc.idx >= nelems {
                return Ok(None);
            }
            tid = targ
                .skip_mods_and_typedefs(elem)
                .ok_or("target type chain is broken")?;
        }
        if spec.raw.len() == SPEC_MAX_LEN {
            return Err(format!("access deeper than {SPEC_MAX_LEN}"));
        }
        spec.acc.push(Accessor {
            type_id: tid,
            idx: lacc.idx,
            name: None,
        });
        spec.raw.push(lacc.idx);
        let bits = mul_bits(lacc.idx, size_of(targ, tid)?)?;
        spec.bit_offset = spec.bit_offset.wrapping_add(bits);
    }
    Ok(Some(spec))
}

/// What a relocation resolves to (`struct bpf_core_relo_res`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub orig_val: u64,
    pub new_val: u64,
    /// The instruction is replaced by `call 0xbad2310`.
    pub poison: bool,
    /// The instruction must hold `orig_val` before it is patched.
    pub validate: bool,
    pub fail_memsz_adjust: bool,
    pub orig_sz: u32,
    pub new_sz: u32,
}

/// Why a value could not be computed: poison the instruction, or fail the relocation.
enum CalcError {
    Poison,
    Fail(String),
}

impl From<String> for CalcError {
    fn from(s: String) -> CalcError {
        CalcError::Fail(s)
    }
}

struct FieldVal {
    val: u64,
    size: u32,
    type_id: u32,
    validate: bool,
}

/// `bpf_core_calc_field_relo`.
fn calc_field(relo: &CoreRelo, spec: Option<&Spec<'_>>) -> Result<FieldVal, CalcError> {
    let mut out = FieldVal {
        val: 0,
        size: 0,
        type_id: 0,
        validate: true,
    };
    if relo.kind == FIELD_EXISTS {
        out.val = spec.is_some() as u64;
        return Ok(out);
    }
    let spec = spec.ok_or(CalcError::Poison)?;
    let btf = spec.btf;
    let acc = spec.acc.last().ok_or_else(|| "empty spec".to_string())?;
    if acc.name.is_none() {
        let sz = size_of(btf, acc.type_id)?;
        match relo.kind {
            FIELD_BYTE_OFFSET => {
                out.val = (spec.bit_offset / 8) as u64;
                out.size = sz;
                out.type_id = acc.type_id;
            }
            FIELD_BYTE_SIZE => out.val = sz as u64,
            _ => {
                return Err(CalcError::Fail(format!(
                    "relo {} at insn #{} can't be applied to array access",
                    relo.kind,
                    relo.insn_off / 8
                )))
            }
        }
        return Ok(out);
    }
    let ms = kind_of(btf, acc.type_id)
        .and_then(members)
        .ok_or_else(|| "accessor is not a member".to_string())?;
    let m = ms
        .get(acc.idx as usize)
        .ok_or_else(|| "accessor is not a member".to_string())?;
    let (field_type_id, mt) = skip(btf, m.type_id).ok_or_else(|| "broken type".to_string())?;
    let bit_off = spec.bit_offset;
    let mut bit_sz = m.bitfield_size;
    let bitfield = bit_sz > 0;
    let (byte_off, byte_sz);
    if bitfield {
        let mut sz = match mt {
            BtfKind::Int { size, .. }
            | BtfKind::Enum { size, .. }
            | BtfKind::Enum64 { size, .. } => *size,
            _ => return Err(CalcError::Fail("bitfield of a type without a size".into())),
        };
        if sz == 0 {
            return Err(CalcError::Fail("bitfield of a zero-sized type".into()));
        }
        let mut off = bit_off / 8 / sz * sz;
        while bit_off as u64 + bit_sz as u64 - off as u64 * 8 > sz as u64 * 8 {
            if sz >= 8 {
                return Err(CalcError::Fail(format!(
                    "relo {} at insn #{} can't be satisfied for bitfield",
                    relo.kind,
                    relo.insn_off / 8
                )));
            }
            sz *= 2;
            off = bit_off / 8 / sz * sz;
        }
        byte_off = off;
        byte_sz = sz;
    } else {
        byte_sz = size_of(btf, field_type_id)?;
        byte_off = bit_off / 8;
        bit_sz = byte_sz.wrapping_mul(8);
    }
    out.validate = !bitfield;
    match relo.kind {
        FIELD_BYTE_OFFSET => {
            out.val = byte_off as u64;
            if !bitfield {
                out.size = byte_sz;
                out.type_id = field_type_id;
            }
        }
        FIELD_BYTE_SIZE => out.val = byte_sz as u64,
        FIELD_SIGNED => {
            out.val = match mt {
                BtfKind::Enum { signed, .. } | BtfKind::Enum64 { signed, .. } => *signed,
                BtfKind::Int { encoding, .. } => encoding & 1 != 0,
                _ => false,
            } as u64;
            out.validate = true;
        }
        FIELD_LSHIFT_U64 => {
            let end = (bit_off as u64 + bit_sz as u64).wrapping_sub(byte_off as u64 * 8);
            out.val = 64u64.wrapping_sub(end);
        }
        FIELD_RSHIFT_U64 => {
            out.val = 64u64.wrapping_sub(bit_sz as u64);
            out.validate = true;
        }
        _ => return Err(CalcError::Fail("unsupported field relocation".into())),
    }
    Ok(out)
}

/// `bpf_core_calc_type_relo`.
fn calc_type(relo: &CoreRelo, spec: Option<&Spec<'_>>) -> Result<(u64, bool), CalcError> {
    let Some(spec) = spec else {
        return Ok((0, true));
    };
    Ok(match relo.kind {
        TYPE_ID_TARGET => (spec.root_type_id as u64, false),
        TYPE_EXISTS | TYPE_MATCHES => (1, true),
        TYPE_SIZE => (size_of(spec.btf, spec.root_type_id)? as u64, true),
        _ => return Err(CalcError::Fail("unsupported type relocation".into())),
    })
}

/// `bpf_core_calc_enumval_relo`.
fn calc_enumval(relo: &CoreRelo, spec: Option<&Spec<'_>>) -> Result<u64, CalcError> {
    match relo.kind {
        ENUMVAL_EXISTS => Ok(spec.is_some() as u64),
        ENUMVAL_VALUE => {
            let spec = spec.ok_or(CalcError::Poison)?;
            let a = &spec.acc[0];
            match kind_of(spec.btf, a.type_id) {
                // A 32-bit enumerator's value is an s32, sign-extended whatever the enum's
                // signedness, as libbpf reads it.
                Some(BtfKind::Enum { values, .. }) => values
                    .get(a.idx as usize)
                    .map(|v| v.value as u32 as i32 as i64 as u64)
                    .ok_or_else(|| CalcError::Fail("enumerator index out of range".into())),
                Some(BtfKind::Enum64 { values, .. }) => values
                    .get(a.idx as usize)
                    .map(|v| v.value as u64)
                    .ok_or_else(|| CalcError::Fail("enumerator index out of range".into())),
                _ => Err(CalcError::Fail(
                    "enum value relocation on a non-enum".into(),
                )),
            }
        }
        _ => Err(CalcError::Fail("unsupported enum relocation".into())),
    }
}

/// `bpf_core_calc_relo`: local and target values of one relocation.
fn calc(relo: &CoreRelo, local: &Spec<'_>, targ: Option<&Spec<'_>>) -> Result<Resolution, String> {
    let mut res = Resolution {
        validate: true,
        ..Default::default()
    };
    let r: Result<(), CalcError> = (|| {
        if is_field_based(relo.kind) {
            let o = calc_field(relo, Some(local))?;
            res.orig_val = o.val;
            res.orig_sz = o.size;
            res.validate = o.validate;
            let n = calc_field(relo, targ)?;
            res.new_val = n.val;
            res.new_sz = n.size;
            if res.orig_sz != res.new_sz {
                let (ot, nt) = (
                    kind_of(local.btf, o.type_id),
                    targ.and_then(|t| kind_of(t.btf, n.type_id)),
                );
                let unsigned_int = |k: Option<&BtfKind>| matches!(k, Some(BtfKind::Int { encoding, .. }) if *encoding != 1);
                let ptrs = matches!(ot, Some(BtfKind::Ptr { .. }))
                    && matches!(nt, Some(BtfKind::Ptr { .. }));
                if !(ptrs || unsigned_int(ot) && unsigned_int(nt)) {
                    res.fail_memsz_adjust = true;
                }
            }
        } else if is_type_based(relo.kind) {
            let (o, v) = calc_type(relo, Some(local))?;
            res.orig_val = o;
            res.validate = v;
            res.new_val = calc_type(relo, targ)?.0;
        } else if is_enumval_based(relo.kind) {
            res.orig_val = calc_enumval(relo, Some(local))?;
            res.new_val = calc_enumval(relo, targ)?;
        } else {
            return Err(CalcError::Fail(String::new()));
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(res),
        Err(CalcError::Poison) => {
            res.poison = true;
            Ok(res)
        }
        Err(CalcError::Fail(msg)) if msg.is_empty() || msg.starts_with("unsupported") => {
            Err(format!(
                "unrecognized CO-RE relocation {} ({}) at insn #{}",
                kind_str(relo.kind),
                relo.kind,
                relo.insn_off / 8
            ))
        }
        Err(CalcError::Fail(msg)) => Err(msg),
    }
}

/// `bpf_core_calc_relo_insn`: resolve `relo` (number `idx` of its section) against `target`.
pub(crate) fn resolve(
    local: &Btf,
    relo: &CoreRelo,
    idx: usize,
    target: Option<&TargetBtf>,
) -> Result<Resolution, String> {
    let lt = local
        .type_by_id(relo.type_id)
        .ok_or_else(|| format!("relo #{idx}: type [{}] does not exist", relo.type_id))?;
    let lname = if lt.name.is_empty() {
        "<anon>"
    } else {
        lt.name.as_str()
    };
    let lspec = parse_spec(local, relo).map_err(|why| {
        format!(
            "relo #{idx}: parsing [{}] {} {lname} + {} failed: {why}",
            relo.type_id,
            kind_word(&lt.kind),
            relo.access
        )
    })?;
    if relo.kind == TYPE_ID_LOCAL {
        return Ok(Resolution {
            orig_val: relo.type_id as u64,
            new_val: relo.type_id as u64,
            ..Default::default()
        });
    }
    if lt.name.is_empty() {
        return Err(format!(
            "relo #{idx}: <{}> ({}) relocation doesn't support anonymous types",
            kind_str(relo.kind),
            relo.kind
        ));
    }
    let Some(target) = target else {
        return Err(format!("relo #{idx}: no target BTF"));
    };
    let essential = &lt.name[..essential_name_len(&lt.name)];
    let tbtf = target.btf();
    let mut chosen: Option<(Resolution, Spec<'_>)> = None;
    for (ci, cand) in target
        .ids_by_essential_name(essential)
        .into_iter()
        .enumerate()
    {
        let Some(ct) = tbtf.type_by_id(cand) else {
            continue;
        };
        if !kinds_compat(&lt.kind, &ct.kind) {
            continue;
        }
        let cspec = spec_match(&lspec, relo.kind, tbtf, cand).map_err(|e| {
            format!(
                "relo #{idx}: error matching candidate #{ci} [{cand}] {}: {e}",
                ct.name
            )
        })?;
        let Some(cspec) = cspec else { continue };
        let cres = calc(relo, &lspec, Some(&cspec)).map_err(|e| format!("relo #{idx}: {e}"))?;
        match &chosen {
            None => chosen = Some((cres, cspec)),
            Some((_, first)) if first.bit_offset != cspec.bit_offset => {
                return Err(format!(
                    "relo #{idx}: field offset ambiguity: {} != {} ({} vs {})",
                    cspec.bit_offset,
                    first.bit_offset,
                    cspec.describe(relo.kind),
                    first.describe(relo.kind)
                ));
            }
            Some((r, _)) if r.poison != cres.poison || r.new_val != cres.new_val => {
                let word = |p: bool| if p { "failure" } else { "success" };
                return Err(format!(
                    "relo #{idx}: relocation decision ambiguity: {} {} != {} {}",
                    word(cres.poison),
                    cres.new_val,
                    word(r.poison),
                    r.new_val
                ));
            }
            Some(_) => {}
        }
    }
    match chosen {
        Some((r, _)) => Ok(r),
        None => calc(relo, &lspec, None).map_err(|e| format!("relo #{idx}: {e}")),
    }
}

fn poison(insn: &mut RawInsn) {
    *insn = RawInsn::new(0x85, 0, 0, 0, POISON_IMM);
}

/// `bpf_core_patch_insn`: apply `res` to the instruction at `slot` of `code`.
pub(crate) fn patch(
    code: &mut [RawInsn],
    slot: usize,
    idx: usize,
    res: &Resolution,
) -> Result<(), String> {
    let Some(&insn) = code.get(slot) else {
        return Err(format!("relo #{idx}: insn #{slot} is outside the code"));
    };
    let is_ldimm64 = insn.code == 0x18;
    let do_poison = |code: &mut [RawInsn]| {
        if is_ldimm64 {
            if let Some(next) = code.get_mut(slot + 1) {
                poison(next);
            }
        }
        poison(&mut code[slot]);
    };
    if res.poison {
        do_poison(code);
        return Ok(());
    }
    let (orig, new) = (res.orig_val, res.new_val);
    match insn.code & 0x07 {
        // ALU, ALU64
        0x04 | 0x07 => {
            if insn.code & 0x08 != 0 {
                return Err(format!(
                    "relo #{idx}: insn #{slot} (ALU/ALU64) has a register source"
                ));
            }
            if res.validate && insn.imm as i64 as u64 != orig {
                return Err(format!(
                    "relo #{idx}: unexpected insn #{slot} (ALU/ALU64) value: got {}, exp {orig} -> {new}",
                    insn.imm as u32
                ));
            }
            code[slot].imm = new as i32;
        }
        // LDX, ST, STX
        0x01..=0x03 => {
            if res.validate && insn.off as i64 as u64 != orig {
                return Err(format!(
                    "relo #{idx}: unexpected insn #{slot} (LDX/ST/STX) value: got {}, exp {orig} -> {new}",
                    insn.off as u16
                ));
            }
            if new > i16::MAX as u64 {
                return Err(format!(
                    "relo #{idx}: insn #{slot} (LDX/ST/STX) value too big: {new}"
                ));
            }
            if res.fail_memsz_adjust {
                // libbpf warns and poisons: the verifier then reports the call if reachable.
                do_poison(code);
                return Ok(());
            }
            code[slot].off = new as i16;
            if res.new_sz != res.orig_sz {
                let bytes = match insn.code & 0x18 {
                    0x18 => 8,
                    0x00 => 4,
                    0x08 => 2,
                    _ => 1,
                };
                if bytes != res.orig_sz {
                    return Err(format!(
                        "relo #{idx}: insn #{slot} (LDX/ST/STX) unexpected mem size: got {bytes}, exp {}",
                        res.orig_sz
                    ));
                }
                let size_bits = match res.new_sz {
                    8 => 0x18,
                    4 => 0x00,
                    2 => 0x08,
                    1 => 0x10,
                    other => {
                        return Err(format!(
                            "relo #{idx}: insn #{slot} (LDX/ST/STX) invalid new mem size: {other}"
                        ))
                    }
                };
                code[slot].code = (insn.code & !0x18) | size_bits;
            }
        }
        // LD: only lddw with a plain immediate
        0x00 => {
            let next = code.get(slot + 1).copied();
            let plain = is_ldimm64
                && insn.src == 0
                && insn.off == 0
                && next.is_some_and(|n| n.code == 0 && n.dst == 0 && n.src == 0 && n.off == 0);
            let Some(next) = next.filter(|_| plain) else {
                return Err(format!(
                    "relo #{idx}: insn #{slot} (LDIMM64) has unexpected form"
                ));
            };
            let imm = insn.imm as u32 as u64 | (next.imm as u32 as u64) << 32;
            if res.validate && imm != orig {
                return Err(format!(
                    "relo #{idx}: unexpected insn #{slot} (LDIMM64) value: got {imm}, exp {orig} -> {new}"
                ));
            }
            code[slot].imm = new as u32 as i32;
            code[slot + 1].imm = (new >> 32) as u32 as i32;
        }
        _ => {
            return Err(format!(
                "relo #{idx}: trying to relocate unrecognized insn #{slot}, code:{:#x}, src:{:#x}, dst:{:#x}, off:{:#x}, imm:{:#x}",
                insn.code, insn.src, insn.dst, insn.off, insn.imm
            ))
        }
    }
    Ok(())
}

/// Whether a relocation of this kind needs the target BTF at all.
pub(crate) fn needs_target(kind: u32) -> bool {
    kind != TYPE_ID_LOCAL
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::btf::{BtfEnumValue, BtfParam, BtfType};

    fn t(name: &str, kind: BtfKind) -> BtfType {
        BtfType {
            name: name.to_string(),
            kind,
        }
    }

    fn int(name: &str, size: u32, signed: bool) -> BtfType {
        t(
            name,
            BtfKind::Int {
                size,
                encoding: signed as u8,
                offset: 0,
                bits: (size * 8) as u8,
            },
        )
    }

    fn m(name: &str, type_id: u32, bit_offset: u32) -> BtfMember {
        BtfMember {
            name: name.to_string(),
            type_id,
            bit_offset,
            bitfield_size: 0,
        }
    }

    fn bits(name: &str, type_id: u32, bit_offset: u32, size: u32) -> BtfMember {
        BtfMember {
            bitfield_size: size,
            ..m(name, type_id, bit_offset)
        }
    }

    fn st(name: &str, size: u32, members: Vec<BtfMember>) -> BtfType {
        t(name, BtfKind::Struct { size, members })
    }

    fn en(name: &str, values: &[(&str, i64)]) -> BtfType {
        t(
            name,
            BtfKind::Enum {
                size: 4,
                signed: false,
                values: values
                    .iter()
                    .map(|(n, v)| BtfEnumValue {
                        name: n.to_string(),
                        value: *v,
                    })
                    .collect(),
            },
        )
    }

    fn relo(type_id: u32, access: &str, kind: u32) -> CoreRelo {
        CoreRelo {
            section: "kprobe/x".into(),
            insn_off: 0,
            type_id,
            access: access.into(),
            kind,
            at: 0,
        }
    }

    fn target(types: Vec<BtfType>) -> TargetBtf {
        TargetBtf::new(Btf::from_types(types), "test BTF")
    }

    /// `r1 = imm` (ALU64 mov).
    fn mov(imm: i32) -> RawInsn {
        RawInsn::new(0xb7, 1, 0, 0, imm)
    }

    /// `r0 = *(u32 *)(r1 + off)`.
    fn ldx_w(off: i16) -> RawInsn {
        RawInsn::new(0x61, 0, 1, off, 0)
    }

    /// Resolve `r` and patch `code` with it.
    fn apply(
        local: &Btf,
        tgt: &TargetBtf,
        r: &CoreRelo,
        code: &mut [RawInsn],
    ) -> Result<(), String> {
        let res = resolve(local, r, 0, Some(tgt))?;
        patch(code, 0, 0, &res)
    }

    /// Local `struct s { int a; int b; }` (ids: 1 int, 2 struct s).
    fn local_s() -> Btf {
        Btf::from_types(vec![
            int("int", 4, true),
            st("s", 8, vec![m("a", 1, 0), m("b", 1, 32)]),
        ])
    }

    /// Target `struct s { long x; int b; }` (ids: 1 long, 2 int, 3 struct s).
    fn target_s() -> TargetBtf {
        target(vec![
            int("long", 8, true),
            int("int", 4, true),
            st("s", 16, vec![m("x", 1, 0), m("b", 2, 64)]),
        ])
    }

    #[test]
    fn field_byte_offset_patches_alu_and_ldx() {
        let (l, tg) = (local_s(), target_s());
        let mut code = [mov(4)];
        apply(&l, &tg, &relo(2, "0:1", FIELD_BYTE_OFFSET), &mut code).unwrap();
        assert_eq!(code[0].imm, 8);
        let mut code = [ldx_w(4)];
        apply(&l, &tg, &relo(2, "0:1", FIELD_BYTE_OFFSET), &mut code).unwrap();
        assert_eq!((code[0].off, code[0].code), (8, 0x61));
    }

    #[test]
    fn field_size_exists_and_signedness() {
        let l = Btf::from_types(vec![
            int("int", 4, true),
            st("s", 8, vec![m("a", 1, 0), m("gone", 1, 32)]),
        ]);
        let tg = target(vec![
            int("unsigned long", 8, false),
            st("s", 8, vec![m("a", 1, 0)]),
        ]);
        let mut code = [mov(4)];
        apply(&l, &tg, &relo(2, "0:0", FIELD_BYTE_SIZE), &mut code).unwrap();
        assert_eq!(code[0].imm, 8);
        let mut code = [mov(1)];
        apply(&l, &tg, &relo(2, "0:0", FIELD_EXISTS), &mut code).unwrap();
        assert_eq!(code[0].imm, 1);
        let mut code = [mov(1)];
        apply(&l, &tg, &relo(2, "0:1", FIELD_EXISTS), &mut code).unwrap();
        assert_eq!(code[0].imm, 0, "a missing field does not exist");
        let mut code = [mov(1)];
        apply(&l, &tg, &relo(2, "0:0", FIELD_SIGNED), &mut code).unwrap();
        assert_eq!(code[0].imm, 0, "the target's field is unsigned");
    }

    #[test]
    fn bitfield_shifts() {
        // Local: 3-bit field at bit 5 of a u32; target: the same field at bit 40 of a u64.
        let l = Btf::from_types(vec![
            int("unsigned int", 4, false),
            t(
                "f",
                BtfKind::Struct {
                    size: 4,
                    members: vec![bits("v", 1, 5, 3)],
                },
            ),
        ]);
        let tg = target(vec![
            int("unsigned long", 8, false),
            st("f", 8, vec![bits("v", 1, 40, 3)]),
        ]);
        let r = |kind| resolve(&l, &relo(2, "0:0", kind), 0, Some(&tg)).unwrap();
        let off = r(FIELD_BYTE_OFFSET);
        // Bitfields are not validated: the compiler's value may differ from libbpf's.
        assert!(!off.validate);
        assert_eq!((off.orig_val, off.new_val), (0, 0));
        assert_eq!(r(FIELD_BYTE_SIZE).new_val, 8);
        assert_eq!(r(FIELD_LSHIFT_U64).new_val, 64 - 43);
        assert_eq!(r(FIELD_LSHIFT_U64).orig_val, 64 - 8);
        assert_eq!(r(FIELD_RSHIFT_U64).new_val, 61);
        // A field straddling 8 bytes cannot be read with one load.
        let wide = target(vec![
            int("unsigned long", 8, false),
            st("f", 16, vec![bits("v", 1, 62, 3)]),
        ]);
        let e = resolve(&l, &relo(2, "0:0", FIELD_BYTE_OFFSET), 0, Some(&wide)).unwrap_err();
        assert!(e.contains("can't be satisfied for bitfield"), "{e}");
    }

    #[test]
    fn flavors_anonymous_members_and_arrays() {
        // Local `struct s___new { int arr[4]; }`, access `0:0:2` (arr[2]); the target nests
        // `arr` in an anonymous union after a long.
        let l = Btf::from_types(vec![
            int("int", 4, true),
            t(
                "",
                BtfKind::Array {
                    elem: 1,
                    index: 1,
                    nelems: 4,
                },
            ),
            st("s___new", 16, vec![m("arr", 2, 0)]),
        ]);
        let tg = target(vec![
            int("int", 4, true),
            t(
                "",
                BtfKind::Array {
                    elem: 1,
                    index: 1,
                    nelems: 8,
                },
            ),
            t(
                "",
                BtfKind::Union {
                    size: 32,
                    members: vec![m("arr", 2, 0)],
                },
            ),
            int("long", 8, true),
            st("s", 40, vec![m("x", 4, 0), m("", 3, 64)]),
        ]);
        let mut code = [mov(8)];
        apply(&l, &tg, &relo(3, "0:0:2", FIELD_BYTE_OFFSET), &mut code).unwrap();
        assert_eq!(code[0].imm, 16);
        // An index past the target's array: the relocation has no candidate.
        let small = target(vec![
            int("int", 4, true),
            t(
                "",
                BtfKind::Array {
                    elem: 1,
                    index: 1,
                    nelems: 2,
                },
            ),
            st("s", 8, vec![m("arr", 2, 0)]),
        ]);
        let res = resolve(&l, &relo(3, "0:0:2", FIELD_BYTE_OFFSET), 0, Some(&small)).unwrap();
        assert!(res.poison);
        // Array accessors take offsets and sizes only.
        let e = resolve(&l, &relo(3, "0:0:2", FIELD_SIGNED), 0, Some(&tg)).unwrap_err();
        assert!(e.contains("can't be applied to array access"), "{e}");
    }

    #[test]
    fn no_candidate_poisons_the_instruction() {
        let l = local_s();
        let tg = target(vec![int("int", 4, true)]);
        let mut code = [mov(4)];
        apply(&l, &tg, &relo(2, "0:1", FIELD_BYTE_OFFSET), &mut code).unwrap();
        assert_eq!(code[0], RawInsn::new(0x85, 0, 0, 0, POISON_IMM));
        // Both halves of an lddw.
        let mut code = [RawInsn::new(0x18, 1, 0, 0, 4), RawInsn::new(0, 0, 0, 0, 0)];
        apply(&l, &tg, &relo(2, "0:1", FIELD_BYTE_OFFSET), &mut code).unwrap();
        assert!(code.iter().all(|i| i.code == 0x85 && i.imm == POISON_IMM));
    }

    #[test]
    fn ambiguous_candidates_are_refused() {
        let l = local_s();
        let tg = target(vec![
            int("int", 4, true),
            st("s", 8, vec![m("b", 1, 0)]),
            st("s___2", 8, vec![m("a", 1, 0), m("b", 1, 32)]),
        ]);
        let e = resolve(&l, &relo(2, "0:1", FIELD_BYTE_OFFSET), 0, Some(&tg)).unwrap_err();
        assert!(e.contains("field offset ambiguity: 32 != 0"), "{e}");
        // Two candidates that agree are fine.
        let ok = target(vec![
            int("int", 4, true),
            st("s", 8, vec![m("b", 1, 32)]),
            st("s___2", 8, vec![m("a", 1, 0), m("b", 1, 32)]),
        ]);
        let res = resolve(&l, &relo(2, "0:1", FIELD_BYTE_OFFSET), 0, Some(&ok)).unwrap();
        assert_eq!(res.new_val, 4);
        // Same offset, different sizes: a decision ambiguity.
        let sizes = target(vec![
            int("int", 4, true),
            int("long", 8, true),
            st("s", 8, vec![m("b", 1, 32)]),
            st("s___2", 16, vec![m("b", 2, 32)]),
        ]);
        let e = resolve(&l, &relo(2, "0:1", FIELD_BYTE_SIZE), 0, Some(&sizes)).unwrap_err();
        assert!(
            e.contains("relocation decision ambiguity: success 8 != success 4"),
            "{e}"
        );
    }

    #[test]
    fn types_and_enum_values() {
        let l = Btf::from_types(vec![
            int("int", 4, true),
            st("s", 8, vec![m("a", 1, 0)]),
            en("e", &[("E_A", 0), ("E_B", 1)]),
            st("missing", 4, vec![]),
        ]);
        let tg = target(vec![
            int("int", 4, true),
            en("e", &[("E_B", -5), ("E_C", 7)]),
            st("s", 24, vec![m("z", 1, 0), m("a", 1, 64)]),
        ]);
        let r = |id, acc, kind| resolve(&l, &relo(id, acc, kind), 0, Some(&tg)).unwrap();
        assert_eq!(r(2, "0", TYPE_EXISTS).new_val, 1);
        assert_eq!(r(4, "0", TYPE_EXISTS).new_val, 0);
        assert_eq!(r(2, "0", TYPE_SIZE).new_val, 24);
        assert_eq!(r(2, "0", TYPE_ID_TARGET).new_val, 3);
        assert!(!r(2, "0", TYPE_ID_TARGET).validate);
        assert_eq!(r(2, "0", TYPE_ID_LOCAL).new_val, 2);
        assert_eq!(r(2, "0", TYPE_MATCHES).new_val, 1);
        assert_eq!(r(3, "1", ENUMVAL_EXISTS).new_val, 1);
        assert_eq!(r(3, "0", ENUMVAL_EXISTS).new_val, 0);
        // A 32-bit enumerator is sign-extended, as libbpf reads its s32.
        assert_eq!(r(3, "1", ENUMVAL_VALUE).new_val, -5i64 as u64);
        assert!(r(3, "0", ENUMVAL_VALUE).poison);
        // type_matches is stricter than type_exists: the members must match too.
        let other = target(vec![int("char", 1, true), st("s", 1, vec![m("a", 1, 0)])]);
        let rm = resolve(&l, &relo(2, "0", TYPE_MATCHES), 0, Some(&other)).unwrap();
        assert_eq!(rm.new_val, 0);
        let re = resolve(&l, &relo(2, "0", TYPE_EXISTS), 0, Some(&other)).unwrap();
        assert_eq!(re.new_val, 1);
        // Type relocations take the access string "0" only.
        let e = resolve(&l, &relo(2, "1", TYPE_EXISTS), 0, Some(&tg)).unwrap_err();
        assert!(e.contains("parsing [2] struct s + 1 failed"), "{e}");
    }

    #[test]
    fn local_spec_errors() {
        let l = Btf::from_types(vec![
            int("int", 4, true),
            st("s", 8, vec![m("a", 1, 0)]),
            st("", 4, vec![m("a", 1, 0)]),
            t(
                "fp",
                BtfKind::FuncProto {
                    ret: 1,
                    params: vec![BtfParam {
                        name: "x".into(),
                        type_id: 1,
                    }],
                },
            ),
        ]);
        let tg = target_s();
        let e = resolve(&l, &relo(2, "0:5", FIELD_BYTE_OFFSET), 0, Some(&tg)).unwrap_err();
        assert!(
            e.contains("member index 5 of struct s is out of range"),
            "{e}"
        );
        let e = resolve(&l, &relo(2, "0:0:1", FIELD_BYTE_OFFSET), 0, Some(&tg)).unwrap_err();
        assert!(e.contains("of unexpected kind int"), "{e}");
        let e = resolve(&l, &relo(2, "0:x", FIELD_BYTE_OFFSET), 0, Some(&tg)).unwrap_err();
        assert!(e.contains("bad index 'x'"), "{e}");
        let e = resolve(&l, &relo(3, "0:0", FIELD_BYTE_OFFSET), 0, Some(&tg)).unwrap_err();
        assert!(e.contains("doesn't support anonymous types"), "{e}");
        let e = resolve(&l, &relo(9, "0", TYPE_EXISTS), 0, Some(&tg)).unwrap_err();
        assert!(e.contains("type [9] does not exist"), "{e}");
        let e = resolve(&l, &relo(2, "0:0", 99), 0, Some(&tg)).unwrap_err();
        assert!(e.contains("unknown relocation kind 99"), "{e}");
    }

    #[test]
    fn patch_checks_the_instruction() {
        let (l, tg) = (local_s(), target_s());
        let r = relo(2, "0:1", FIELD_BYTE_OFFSET);
        // The instruction must hold the local value.
        let e = apply(&l, &tg, &r, &mut [mov(5)]).unwrap_err();
        assert!(
            e.contains("unexpected insn #0 (ALU/ALU64) value: got 5, exp 4 -> 8"),
            "{e}"
        );
        let e = apply(&l, &tg, &r, &mut [ldx_w(0)]).unwrap_err();
        assert!(e.contains("(LDX/ST/STX) value: got 0, exp 4 -> 8"), "{e}");
        // A register-source ALU or a jump cannot take a relocation.
        assert!(apply(&l, &tg, &r, &mut [RawInsn::new(0xbf, 1, 2, 0, 0)]).is_err());
        let e = apply(&l, &tg, &r, &mut [RawInsn::new(0x05, 0, 0, 4, 0)]).unwrap_err();
        assert!(e.contains("trying to relocate unrecognized insn"), "{e}");
        // lddw: the 64-bit immediate, in both halves.
        let mut code = [RawInsn::new(0x18, 1, 0, 0, 4), RawInsn::new(0, 0, 0, 0, 0)];
        apply(&l, &tg, &r, &mut code).unwrap();
        assert_eq!((code[0].imm, code[1].imm), (8, 0));
        let mut bad = [RawInsn::new(0x18, 1, 1, 0, 4), RawInsn::new(0, 0, 0, 0, 0)];
        let e = apply(&l, &tg, &r, &mut bad).unwrap_err();
        assert!(e.contains("(LDIMM64) has unexpected form"), "{e}");
        // An offset beyond what `off` holds.
        let far = target(vec![
            int("int", 4, true),
            st("s", 70000, vec![m("b", 1, 40000 * 8)]),
        ]);
        let e = apply(&l, &far, &r, &mut [ldx_w(4)]).unwrap_err();
        assert!(e.contains("(LDX/ST/STX) value too big: 40000"), "{e}");
    }

    #[test]
    fn load_sizes_follow_the_target_field() {
        // Local `unsigned int v`, target `unsigned short v`: the load shrinks to 2 bytes.
        let l = Btf::from_types(vec![
            int("unsigned int", 4, false),
            st("s", 4, vec![m("v", 1, 0)]),
        ]);
        let tg = target(vec![
            int("unsigned short", 2, false),
            st("s", 4, vec![m("pad", 1, 0), m("v", 1, 16)]),
        ]);
        let mut code = [ldx_w(0)];
        apply(&l, &tg, &relo(2, "0:0", FIELD_BYTE_OFFSET), &mut code).unwrap();
        assert_eq!((code[0].off, code[0].code), (2, 0x69));
        // A signed field of another size cannot be resized: the load is poisoned.
        let signed = target(vec![int("short", 2, true), st("s", 2, vec![m("v", 1, 0)])]);
        let mut code = [ldx_w(0)];
        apply(&l, &signed, &relo(2, "0:0", FIELD_BYTE_OFFSET), &mut code).unwrap();
        assert_eq!(code[0].imm, POISON_IMM);
        // The load must have the local field's size before it can be resized.
        let mut byte_load = [RawInsn::new(0x71, 0, 1, 0, 0)];
        let e = apply(&l, &tg, &relo(2, "0:0", FIELD_BYTE_OFFSET), &mut byte_load).unwrap_err();
        assert!(
            e.contains("(LDX/ST/STX) unexpected mem size: got 1, exp 4"),
            "{e}"
        );
    }

    /// Random relocation records against random small BTF: errors or patches, never a panic,
    /// whatever the ids, access strings, kinds and instructions (self-referencing types
    /// included).
    #[test]
    fn arbitrary_records_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        let kinds = |r: u64| -> BtfKind {
            match r {
                0 => BtfKind::Int {
                    size: 4,
                    encoding: 1,
                    offset: 0,
                    bits: 32,
                },
                1 => BtfKind::Ptr { target: 2 },
                2 => BtfKind::Array {
                    elem: 3,
                    index: 1,
                    nelems: 0,
                },
                3 => BtfKind::Typedef { target: 4 },
                4 => BtfKind::Enum {
                    size: 4,
                    signed: false,
                    values: vec![BtfEnumValue {
                        name: "V".into(),
                        value: 1,
                    }],
                },
                _ => BtfKind::Struct {
                    size: 8,
                    members: vec![bits("a", 5, 3, 60), m("", 5, 0), m("b", 3, 32)],
                },
            }
        };
        for round in 0..3000 {
            let mk = |next: &mut dyn FnMut(u64) -> u64| {
                (0..6)
                    .map(|i| t(if i % 2 == 0 { "s" } else { "s___f" }, kinds(next(6))))
                    .collect::<Vec<_>>()
            };
            let local = Btf::from_types(mk(&mut next));
            let tgt = target(mk(&mut next));
            let access: Vec<String> = (0..1 + next(4)).map(|_| next(4).to_string()).collect();
            let r = CoreRelo {
                kind: next(14) as u32,
                ..relo(next(8) as u32, &access.join(":"), 0)
            };
            let mut code = [
                RawInsn::new([0xb7, 0x61, 0x18, 0x05, 0x63][next(5) as usize], 1, 0, 0, 0),
                RawInsn::new(0, 0, 0, 0, 0),
            ];
            if let Ok(res) = resolve(&local, &r, round, Some(&tgt)) {
                let _ = patch(&mut code, 0, round, &res);
            }
        }
    }
}
