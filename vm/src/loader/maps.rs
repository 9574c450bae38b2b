//! Map definitions: BTF-defined maps in `.maps`, legacy definitions in `maps` (libbpf's
//! `struct bpf_map_def`, samples/bpf's 28-byte variant, iproute2's `struct bpf_elf_map`), and one
//! single-entry array per global data section, in that order.

use std::collections::HashMap;

use super::btf::{Btf, BtfKind, BtfMember};
use super::elf::{Elf, SHT_NOBITS, SHT_PROGBITS, STT_FUNC, STT_OBJECT, STT_SECTION};
use super::ObjectError;
use crate::spec::{MapDef, MapType};

/// `BPF_F_RDONLY_PROG`: libbpf creates `.rodata*` maps read-only for programs.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_MMAPABLE`: libbpf sets it on global data maps that hold a non-static variable.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// A global data section larger than this is refused: the kernel caps an array value far lower
/// (`KMALLOC_MAX_SIZE`), and a corrupt `.bss` size must not make the loader allocate gigabytes.
const MAX_GLOBAL_SECTION: u64 = 64 << 20;

/// Where a map definition came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MapSource {
    /// `.maps`, `maps`, or the global data section (`.rodata`, `.bss`, ...).
    pub section: String,
    /// Offset of the map's symbol in that section (0 for global data).
    pub offset: u64,
    /// The definition's pinning value: libbpf's `LIBBPF_PIN_BY_NAME` (1) in `.maps`, iproute2's
    /// `PIN_OBJECT_NS` (1) / `PIN_GLOBAL_NS` (2) in `maps`; 0 for none.
    pub pinning: u32,
}

/// The initial contents of a global data map (its single value, at key 0).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GlobalInit {
    /// Index into [`Object::maps`](super::Object::maps).
    pub map: usize,
    pub section: String,
    /// The section's bytes; zeros for `.bss`.
    pub data: Vec<u8>,
    /// `.rodata*`: frozen after loading, so the verifier may treat its contents as constants.
    pub read_only: bool,
}

/// A slot the object fills at load time: `.values = { [i] = &inner_map }` of a map-in-map or
/// `[i] = &prog` of a prog array (BTF maps), or an iproute2 inner map with `inner_idx`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MapInit {
    /// The outer map (index into [`Object::maps`](super::Object::maps)).
    pub map: usize,
    /// The key (array index) to fill.
    pub slot: u32,
    pub target: MapInitTarget,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MapInitTarget {
    /// Another map of the object, by index.
    Map(usize),
    /// A program of the object, by function name.
    Program(String),
}

pub(crate) struct Maps {
    pub defs: Vec<MapDef>,
    pub sources: Vec<MapSource>,
    pub globals: Vec<GlobalInit>,
    pub inits: Vec<MapInit>,
    /// (ELF section, symbol offset) -> map: what a relocation against a map symbol means.
    pub by_symbol: HashMap<(usize, u64), usize>,
    /// ELF section -> its global data map.
    pub by_data_section: HashMap<usize, usize>,
    /// `.kconfig` externs: where each lives in the `.kconfig` map, or why it has no value.
    pub kconfig: super::kconfig::Externs,
}

pub(crate) fn collect(elf: &Elf<'_>, btf: Option<&Btf>) -> Result<Maps, ObjectError> {
    let mut maps = Maps {
        defs: Vec::new(),
        sources: Vec::new(),
        globals: Vec::new(),
        inits: Vec::new(),
        by_symbol: HashMap::new(),
        by_data_section: HashMap::new(),
        kconfig: HashMap::new(),
    };
    if let Some((index, _)) = elf.section_by_name(".maps") {
        btf_maps(elf, index, btf, &mut maps)?;
    }
    if let Some((index, _)) = elf.section_by_name("maps") {
        legacy_maps(elf, index, &mut maps)?;
    }
    global_maps(elf, btf, &mut maps)?;
    Ok(maps)
}

impl Maps {
    fn push(&mut self, def: MapDef, source: MapSource) -> usize {
        self.defs.push(def);
        self.sources.push(source);
        self.defs.len() - 1
    }
}

fn map_error(section: &str, map: &str, offset: u64, detail: impl Into<String>) -> ObjectError {
    ObjectError::Map {
        section: section.to_string(),
        map: map.to_string(),
        offset,
        detail: detail.into(),
    }
}

fn is_map_in_map(t: MapType) -> bool {
    matches!(t, MapType::ArrayOfMaps | MapType::HashOfMaps)
}

/// Loaders' quirk: a map-in-map's value is an fd, so an unset value size means 4.
fn fix_value_size(def: &mut MapDef) {
    if is_map_in_map(def.map_type) && def.value_size == 0 {
        def.value_size = 4;
    }
}

/// A BTF map definition, as `parse_btf_map_def` in libbpf reads it.
struct BtfMapDef {
    def: MapDef,
    pinning: u32,
    /// Byte offset of the `values` member, when there is one.
    values_offset: Option<u32>,
}

/// `int (*name)[N]` encodes the integer N: a pointer to an array of N elements.
fn int_field(btf: &Btf, m: &BtfMember) -> Result<u32, String> {
    let ptr = btf
        .skip_mods_and_typedefs(m.type_id)
        .and_then(|id| btf.type_by_id(id));
    let Some(BtfKind::Ptr { target }) = ptr.map(|t| &t.kind) else {
        return Err(format!("attribute '{}' is not a pointer", m.name));
    };
    match btf.type_by_id(*target).map(|t| &t.kind) {
        Some(BtfKind::Array { nelems, .. }) => Ok(*nelems),
        _ => Err(format!("attribute '{}' does not point to an array", m.name)),
    }
}

/// `typeof(T) *name`: the pointed-to type and its size.
fn typed_field(btf: &Btf, m: &BtfMember) -> Result<(u32, u32), String> {
    let Some(BtfKind::Ptr { target }) = btf.type_by_id(m.type_id).map(|t| &t.kind) else {
        return Err(format!("'{}' is not a pointer to a type", m.name));
    };
    let size = btf
        .resolve_size(*target)
        .map_err(|e| format!("size of '{}': {e}", m.name))?;
    Ok((*target, size))
}

fn set_size(slot: &mut u32, size: u32, what: &str) -> Result<(), String> {
    if *slot != 0 && *slot != size {
        return Err(format!("conflicting {what} {} != {size}", *slot));
    }
    *slot = size;
    Ok(())
}

fn parse_btf_def(
    btf: &Btf,
    name: &str,
    members: &[BtfMember],
    inner_allowed: bool,
) -> Result<BtfMapDef, String> {
    let mut def = MapDef {
        name: name.to_string(),
        map_type: MapType::Unspec,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        flags: 0,
        inner: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    let mut map_type = 0;
    let mut pinning = 0;
    let mut values_offset = None;
    for (i, m) in members.iter().enumerate() {
        match m.name.as_str() {
            "type" => map_type = int_field(btf, m)?,
            "max_entries" => def.max_entries = int_field(btf, m)?,
            "map_flags" => def.flags = int_field(btf, m)?,
            // Meaningless in a simulator, but valid definitions.
            "numa_node" | "map_extra" => {
                int_field(btf, m)?;
            }
            "key_size" => set_size(&mut def.key_size, int_field(btf, m)?, "key size")?,
            "value_size" => set_size(&mut def.value_size, int_field(btf, m)?, "value size")?,
            "key" => {
                let (id, size) = typed_field(btf, m)?;
                set_size(&mut def.key_size, size, "key size")?;
                def.btf_key_type_id = id;
            }
            "value" => {
                let (id, size) = typed_field(btf, m)?;
                set_size(&mut def.value_size, size, "value size")?;
                def.btf_value_type_id = id;
            }
            "pinning" => {
                if !inner_allowed {
                    return Err("an inner map definition cannot be pinned".into());
                }
                pinning = int_field(btf, m)?;
                if pinning > 1 {
                    return Err(format!("invalid pinning value {pinning}"));
                }
            }
            "values" => {
                let kind = MapType::from_id(map_type);
                let prog_array = kind == Some(MapType::ProgArray);
                if !inner_allowed {
                    return Err("multi-level inner maps are not supported".into());
                }
                if i + 1 != members.len() {
                    return Err("'values' must be the last member".into());
                }
                if !prog_array && !kind.is_some_and(is_map_in_map) {
                    return Err("'values' needs a map-in-map or prog array type".into());
                }
                set_size(&mut def.value_size, 4, "value size")?;
                let elem = match btf.type_by_id(m.type_id).map(|t| &t.kind) {
                    Some(BtfKind::Array {
                        elem, nelems: 0, ..
                    }) => *elem,
                    _ => return Err("'values' is not a zero-sized array".into()),
                };
                let ptr = btf
                    .skip_mods_and_typedefs(elem)
                    .and_then(|id| btf.type_by_id(id));
                let Some(BtfKind::Ptr { target }) = ptr.map(|t| &t.kind) else {
                    return Err("'values' elements are not pointers".into());
                };
                let inner = btf
                    .skip_mods_and_typedefs(*target)
                    .and_then(|id| btf.type_by_id(id))
                    .map(|t| &t.kind);
                match (prog_array, inner) {
                    (true, Some(BtfKind::FuncProto { .. })) => {}
                    (false, Some(BtfKind::Struct { members, .. })) => {
                        let inner_name = format!("{name}.inner");
                        let mut inner = parse_btf_def(btf, &inner_name, members, false)?.def;
                        fix_value_size(&mut inner);
                        def.inner = Some(Box::new(inner));
                    }
                    _ => return Err("'values' elements point to the wrong kind of type".into()),
                }
                values_offset = Some(m.bit_offset / 8);
            }
            other => return Err(format!("unknown field '{other}'")),
        }
    }
    if map_type == 0 {
        return Err("map type isn't specified".into());
    }
    def.map_type =
        MapType::from_id(map_type).ok_or_else(|| format!("unknown map type {map_type}"))?;
    fix_value_size(&mut def);
    Ok(BtfMapDef {
        def,
        pinning,
        values_offset,
    })
}

/// Maps declared with `SEC(".maps")`: one VAR per map in the BTF DATASEC `.maps`.
fn btf_maps(
    elf: &Elf<'_>,
    section_index: usize,
    btf: Option<&Btf>,
    maps: &mut Maps,
) -> Result<(), ObjectError> {
    let section = &elf.sections[section_index];
    let sec_err = |detail: &str| map_error(&section.name, "", 0, detail);
    let btf =
        btf.ok_or_else(|| sec_err("BTF-defined maps need the .BTF section (build with -g)"))?;
    let datasec = btf
        .find(".maps", |k| matches!(k, BtfKind::Datasec { .. }))
        .and_then(|id| btf.type_by_id(id));
    let Some(BtfKind::Datasec { vars, .. }) = datasec.map(|t| &t.kind) else {
        return Err(sec_err("BTF has no DATASEC '.maps'"));
    };
    // (offset, size, map index, offset of `values`) of each map, for the init relocations.
    let mut extents = Vec::new();
    for vi in vars {
        let var = btf.type_by_id(vi.type_id);
        let name = var.map_or("?", |v| v.name.as_str());
        // clang leaves DATASEC offsets 0 and libbpf fills them in from the ELF symbols
        // (`btf_fixup_datasec`); the symbol of a map is the global object of its name.
        let offset = elf
            .symbols
            .iter()
            .find(|s| s.section == Some(section_index) && s.kind == STT_OBJECT && s.name == name)
            .map_or(vi.offset as u64, |s| s.value);
        let err = |detail: String| map_error(&section.name, name, offset, detail);
        let Some(BtfKind::Var { target, linkage }) = var.map(|v| &v.kind) else {
            return Err(err(format!("DATASEC entry [{}] is not a VAR", vi.type_id)));
        };
        if name.is_empty() {
            return Err(err("map has no name".into()));
        }
        if offset.saturating_add(vi.size as u64) > section.size {
            return Err(err("definition lies outside the section".into()));
        }
        if *linkage != 1 {
            return Err(err(format!(
                "unsupported map linkage {linkage} (must be global)"
            )));
        }
        let def_type = btf
            .skip_mods_and_typedefs(*target)
            .and_then(|id| btf.type_by_id(id));
        let Some(BtfKind::Struct { size, members }) = def_type.map(|t| &t.kind) else {
            return Err(err("definition is not a struct".into()));
        };
        if *size > vi.size {
            return Err(err("definition is larger than its variable".into()));
        }
        let parsed = parse_btf_def(btf, name, members, true).map_err(err)?;
        let index = maps.push(
            parsed.def,
            MapSource {
                section: section.name.clone(),
                offset,
                pinning: parsed.pinning,
            },
        );
        maps.by_symbol.insert((section_index, offset), index);
        extents.push((offset, vi.size as u64, index, parsed.values_offset));
    }
    btf_map_inits(elf, section_index, &extents, maps)
}

/// `.rel.maps`: each record fills one slot of a `values` array with a map or a program.
fn btf_map_inits(
    elf: &Elf<'_>,
    section_index: usize,
    extents: &[(u64, u64, usize, Option<u32>)],
    maps: &mut Maps,
) -> Result<(), ObjectError> {
    let section = &elf.sections[section_index].name;
    for rel in elf.relocations_for(section_index)? {
        let sym = &elf.symbols[rel.symbol];
        let Some(&(start, _, outer, values)) = extents
            .iter()
            .find(|(start, size, ..)| rel.offset >= *start && rel.offset - start < *size)
        else {
            return Err(ObjectError::elf(
                &elf.sections[rel.table].name,
                rel.file_offset,
                format!("relocation at offset {:#x} is not inside a map", rel.offset),
            ));
        };
        let name = maps.defs[outer].name.clone();
        let err = |detail: String| map_error(section, &name, start, detail);
        let moff = values
            .and_then(|v| start.checked_add(v as u64))
            .and_then(|v| rel.offset.checked_sub(v))
            .filter(|off| off % 8 == 0)
            .ok_or_else(|| {
                err(format!(
                    "relocation against '{}' outside 'values'",
                    sym.name
                ))
            })?;
        let slot = u32::try_from(moff / 8).map_err(|_| err("slot out of range".into()))?;
        if slot >= maps.defs[outer].max_entries {
            return Err(err(format!("'values' slot {slot} is beyond max_entries")));
        }
        let target = if maps.defs[outer].map_type == MapType::ProgArray {
            if sym.kind != STT_FUNC {
                return Err(err(format!(
                    "'{}' in a prog array is not a function",
                    sym.name
                )));
            }
            MapInitTarget::Program(sym.name.clone())
        } else {
            match sym
                .section
                .and_then(|s| maps.by_symbol.get(&(s, sym.value)))
            {
                Some(&inner) => MapInitTarget::Map(inner),
                None => return Err(err(format!("'{}' is not a map", sym.name))),
            }
        };
        maps.inits.push(MapInit {
            map: outer,
            slot,
            target,
        });
    }
    Ok(())
}

/// Legacy definitions: equally sized structs in `maps`, one per symbol, whose size is the
/// section size divided by the number of symbols (the only way to tell the layouts apart).
fn legacy_maps(elf: &Elf<'_>, section_index: usize, maps: &mut Maps) -> Result<(), ObjectError> {
    let section = &elf.sections[section_index];
    let syms: Vec<_> = elf
        .symbols
        .iter()
        .filter(|s| s.section == Some(section_index) && s.kind != STT_SECTION)
        .collect();
    let data = section.data;
    if syms.is_empty() || data.is_empty() || data.len() % syms.len() != 0 {
        return Err(map_error(
            &section.name,
            "",
            0,
            format!(
                "{} bytes cannot hold {} equally sized map definitions",
                data.len(),
                syms.len()
            ),
        ));
    }
    // Old libbpf sorted legacy maps by their offset in the section; so do we.
    let mut syms = syms;
    syms.sort_by_key(|s| s.value);
    let entry = data.len() / syms.len();
    let first = maps.defs.len();
    // iproute2 fields per map: (id, inner_id, inner_idx); samples/bpf: inner_map_idx.
    let mut links = Vec::new();
    for sym in &syms {
        let off = sym.value;
        let err = |detail: &str| map_error(&section.name, &sym.name, off, detail);
        let start = usize::try_from(off)
            .ok()
            .filter(|&o| o <= data.len() - entry);
        let bytes =
            &data[start.ok_or_else(|| err("definition lies outside the section"))?..][..entry];
        // Missing trailing fields of a short definition read as zero, as libbpf's memcpy did.
        let field = |k: usize| {
            bytes
                .get(k * 4..k * 4 + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let map_type = MapType::from_id(field(0))
            .ok_or_else(|| err(&format!("unknown map type {}", field(0))))?;
        let mut def = MapDef {
            name: sym.name.clone(),
            map_type,
            key_size: field(1),
            value_size: field(2),
            max_entries: field(3),
            flags: field(4),
            inner: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
        };
        fix_value_size(&mut def);
        let pinning = if entry >= 36 { field(6) } else { 0 };
        links.push(match entry {
            36.. => Legacy::Iproute2 {
                id: field(5),
                inner_id: field(7),
                inner_idx: field(8),
            },
            28 => Legacy::Samples {
                inner_map_idx: field(5),
            },
            _ => Legacy::Libbpf,
        });
        let index = maps.push(
            def,
            MapSource {
                section: section.name.clone(),
                offset: off,
                pinning,
            },
        );
        maps.by_symbol.insert((section_index, off), index);
    }
    link_legacy_inner_maps(&section.name, first, &links, maps)
}

enum Legacy {
    Libbpf,
    Samples {
        inner_map_idx: u32,
    },
    Iproute2 {
        id: u32,
        inner_id: u32,
        inner_idx: u32,
    },
}

/// Inner map templates and initial slots of legacy map-in-maps: samples/bpf names the inner map
/// by its position, iproute2 by `id`; iproute2 also inserts every map with an `id`, no
/// `inner_id` and an `inner_idx` other than -1 into the outer maps whose `inner_id` is its `id`.
fn link_legacy_inner_maps(
    section: &str,
    first: usize,
    links: &[Legacy],
    maps: &mut Maps,
) -> Result<(), ObjectError> {
    for (i, link) in links.iter().enumerate() {
        let outer = first + i;
        let inner = match *link {
            _ if !is_map_in_map(maps.defs[outer].map_type) => continue,
            Legacy::Libbpf => continue,
            Legacy::Samples { inner_map_idx } => Some(inner_map_idx as usize)
                .filter(|&k| k < links.len())
                .map(|k| first + k),
            Legacy::Iproute2 { inner_id, .. } => links
                .iter()
                .position(
                    |l| matches!(l, Legacy::Iproute2 { id, .. } if *id == inner_id && *id != 0),
                )
                .map(|k| first + k),
        };
        let Some(inner) = inner.filter(|&k| k != outer) else {
            let def = &maps.defs[outer];
            return Err(map_error(
                section,
                &def.name,
                maps.sources[outer].offset,
                "map-in-map names no inner map definition",
            ));
        };
        maps.defs[outer].inner = Some(Box::new(maps.defs[inner].clone()));
    }
    for (i, link) in links.iter().enumerate() {
        let Legacy::Iproute2 {
            id,
            inner_id: 0,
            inner_idx,
        } = *link
        else {
            continue;
        };
        if id == 0 || inner_idx == u32::MAX {
            continue;
        }
        for (j, outer) in links.iter().enumerate() {
            if matches!(outer, Legacy::Iproute2 { inner_id, .. } if *inner_id == id)
                && is_map_in_map(maps.defs[first + j].map_type)
            {
                maps.inits.push(MapInit {
                    map: first + j,
                    slot: inner_idx,
                    target: MapInitTarget::Map(first + i),
                });
            }
        }
    }
    Ok(())
}

fn has_global_var(btf: &Btf, datasec: u32) -> bool {
    let Some(BtfKind::Datasec { vars, .. }) = btf.type_by_id(datasec).map(|t| &t.kind) else {
        return false;
    };
    vars.iter().any(|v| {
        let var = btf.type_by_id(v.type_id).map(|t| &t.kind);
        matches!(var, Some(BtfKind::Var { linkage, .. }) if *linkage != 0)
    })
}

/// `.data`, `.data.*`, `.rodata`, `.rodata.*` (including `.rodata.str1.1`) and `.bss`, `.bss.*`:
/// each becomes an array map with one value the size of the section, named after the section.
fn global_maps(elf: &Elf<'_>, btf: Option<&Btf>, maps: &mut Maps) -> Result<(), ObjectError> {
    let is = |name: &str, base: &str| {
        name == base || name.strip_prefix(base).is_some_and(|r| r.starts_with('.'))
    };
    for (index, s) in elf.sections.iter().enumerate().skip(1) {
        let data = s.kind == SHT_PROGBITS
            && !s.is_code()
            && !s.data.is_empty()
            && (is(&s.name, ".data") || is(&s.name, ".rodata"));
        let bss = s.kind == SHT_NOBITS && s.size > 0 && is(&s.name, ".bss");
        if !data && !bss {
            continue;
        }
        if s.size > MAX_GLOBAL_SECTION {
            return Err(map_error(
                &s.name,
                &s.name,
                0,
                format!(
                    "{} bytes of global data is more than the loader's limit",
                    s.size
                ),
            ));
        }
        let read_only = is(&s.name, ".rodata");
        let datasec = btf.and_then(|b| b.find(&s.name, |k| matches!(k, BtfKind::Datasec { .. })));
        // libbpf: mmapable when some variable in the section is not static (skeletons see it).
        let exposed = btf
            .zip(datasec)
            .is_some_and(|(b, id)| has_global_var(b, id));
        let mut flags = if read_only { BPF_F_RDONLY_PROG } else { 0 };
        if exposed {
            flags |= BPF_F_MMAPABLE;
        }
        let def = MapDef {
            name: s.name.clone(),
            map_type: MapType::Array,
            key_size: 4,
            value_size: s.size as u32,
            max_entries: 1,
            flags,
            inner: None,
            btf_key_type_id: 0,
            btf_value_type_id: datasec.unwrap_or(0),
        };
        let map = maps.push(
            def,
            MapSource {
                section: s.name.clone(),
                offset: 0,
                pinning: 0,
            },
        );
        maps.by_data_section.insert(index, map);
        maps.globals.push(GlobalInit {
            map,
            section: s.name.clone(),
            data: if bss {
                vec![0; s.size as usize]
            } else {
                s.data.to_vec()
            },
            read_only,
        });
    }
    Ok(())
}
