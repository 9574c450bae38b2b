//! Relocation records of a code section, resolved to what each relocated instruction refers to
//! (a map, global data, code, or something unsupported), the way `bpf_program__record_reloc`
//! in libbpf classifies them; [`super::link`] applies those fixups. CO-RE relocations are
//! resolved against the kernel's BTF and patched into the raw code here (see [`super::core`]).

use std::collections::BTreeMap;

use super::btf::{Btf, BtfKind};
use super::btf_ext::{core_kind_name, CoreRelo};
use super::elf::{Elf, Symbol, R_BPF_NONE, STT_FUNC, STT_SECTION};
use super::maps::Maps;
use super::relo_core as core;
use super::target::TargetBtf;
use super::ObjectError;
use super::Target;
use crate::isa::RawInsn;

const CALL: u8 = 0x85;
const LDDW: u8 = 0x18;
const PSEUDO_CALL: u8 = 1;

/// What the instruction at one slot of a code section refers to.
#[derive(Clone, Debug)]
pub(crate) enum Fixup {
    /// `lddw` of a map symbol: becomes `Imm64::MapIdx`.
    Map(usize),
    /// `lddw` of global data: becomes `Imm64::MapIdxValue` at the symbol's offset plus the addend
    /// clang leaves in the instruction's `imm`.
    Data { map: usize, sym_off: u64 },
    /// A call, or an `lddw` of a function address (a callback), to this slot of a code section.
    Code { section: usize, slot: u64 },
    /// A call of a kernel function: its `FUNC` id in the kernel's BTF.
    Kfunc(u32),
    /// An `lddw` of a typed kernel variable: its `VAR` id in the kernel's BTF.
    KsymVar(u32),
    /// Programs that contain this instruction are refused with this error.
    Reject(ObjectError),
}

/// A function's extent in its section, for naming the function a CO-RE record falls into.
pub(crate) struct FuncExtent<'a> {
    pub name: &'a str,
    pub start: usize,
    pub len: usize,
}

/// The object's CO-RE records and the kernel BTF they resolve against.
pub(crate) struct CoreInput<'a> {
    pub relos: &'a [CoreRelo],
    pub target: &'a Target<'a>,
}

/// Resolve the relocations and CO-RE records that apply to code section `index`, keyed by slot.
pub(crate) fn resolve(
    elf: &Elf<'_>,
    index: usize,
    maps: &Maps,
    btf: Option<&Btf>,
    core: &CoreInput<'_>,
    funcs: &[FuncExtent<'_>],
    raws: &mut [RawInsn],
) -> Result<BTreeMap<usize, Fixup>, ObjectError> {
    let (core, target) = (core.relos, core.target);
    let section = &elf.sections[index];
    let code = section.data;
    let mut fixups = BTreeMap::new();
    for rel in elf.relocations_for(index)? {
        if rel.kind == R_BPF_NONE {
            continue;
        }
        let slot = usize::try_from(rel.offset)
            .ok()
            .filter(|&off| off % 8 == 0 && off.checked_add(8).is_some_and(|e| e <= code.len()))
            .map(|off| off / 8)
            .ok_or_else(|| {
                ObjectError::elf(
                    &elf.sections[rel.table].name,
                    rel.file_offset,
                    format!(
                        "relocation offset {:#x} is not an instruction of the section",
                        rel.offset
                    ),
                )
            })?;
        let raw = &code[slot * 8..slot * 8 + 8];
        let sym = &elf.symbols[rel.symbol];
        let fixup = match (ksym_func(sym, raw, btf), ksym_var(sym, raw, btf)) {
            (Some(local), _) => kfunc(&section.name, slot, &sym.name, (btf, local), target),
            (None, Some(local)) => {
                ksym_var_fixup(&section.name, slot, &sym.name, (btf, local), target)
            }
            (None, None) => classify(elf, &section.name, slot, raw, sym, maps, btf),
        };
        fixups.insert(slot, fixup.unwrap_or_else(Fixup::Reject));
    }
    let records = core.iter().filter(|r| r.section == section.name);
    for (idx, relo) in records.enumerate() {
        let slot = relo.insn_off as usize / 8;
        if relo.insn_off % 8 != 0 || slot >= code.len() / 8 {
            return Err(ObjectError::Btf {
                section: ".BTF.ext".into(),
                offset: relo.at,
                detail: format!(
                    "CO-RE record for instruction offset {:#x} of '{}' is outside its code",
                    relo.insn_off, section.name
                ),
            });
        }
        let func = funcs
            .iter()
            .find(|f| slot >= f.start && slot - f.start < f.len)
            .map_or("", |f| f.name);
        let Some(local) = btf else {
            continue;
        };
        let target_btf = if core::needs_target(relo.kind) {
            match target.get() {
                Ok(t) => Some(t),
                Err(reason) => {
                    let feature = format!(
                        "CO-RE relocation against {} ({}, access {})",
                        local.type_name(relo.type_id),
                        core_kind_name(relo.kind),
                        relo.access
                    );
                    let err = ObjectError::NeedsKernelBtf {
                        feature,
                        section: section.name.clone(),
                        insn: slot,
                        symbol: func.to_string(),
                        reason,
                    };
                    fixups.insert(slot, Fixup::Reject(err));
                    continue;
                }
            }
        } else {
            None
        };
        let applied = core::resolve(local, relo, idx, target_btf)
            .and_then(|res| core::patch(raws, slot, idx, &res));
        if let Err(detail) = applied {
            let err = ObjectError::Core {
                section: section.name.clone(),
                insn: slot,
                symbol: func.to_string(),
                detail,
            };
            fixups.insert(slot, Fixup::Reject(err));
        }
    }
    Ok(fixups)
}

/// What one relocation record means for the instruction (`raw`, at `slot`) it patches.
fn classify(
    elf: &Elf<'_>,
    section: &str,
    slot: usize,
    raw: &[u8],
    sym: &Symbol,
    maps: &Maps,
    btf: Option<&Btf>,
) -> Result<Fixup, ObjectError> {
    let (code, src) = (raw[0], raw[1] >> 4);
    let imm = i32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
    let reloc = |detail: String| ObjectError::reloc(section, slot, &sym.name, detail);
    if code != CALL && code != LDDW {
        return Err(reloc(format!(
            "opcode {code:#04x} cannot be relocated (only lddw and call)"
        )));
    }
    if sym.section.is_none() && code == LDDW {
        match maps.kconfig.get(&sym.name) {
            Some(Ok((map, off))) => {
                return Ok(Fixup::Data {
                    map: *map,
                    sym_off: *off,
                })
            }
            Some(Err(why)) => {
                let feature = format!("Kconfig extern '{}' (.kconfig; {why})", sym.name);
                return Err(ObjectError::unsupported(feature, section, slot, &sym.name));
            }
            None => {}
        }
    }
    let Some(target) = sym.section else {
        if sym.name.is_empty() {
            return Err(reloc("relocation against the null symbol".into()));
        }
        let feature = extern_feature(&sym.name, code == CALL, btf);
        return Err(ObjectError::unsupported(feature, section, slot, &sym.name));
    };
    let target_section = &elf.sections[target];
    if code == CALL {
        if src != PSEUDO_CALL {
            return Err(reloc(
                "relocated call is not a BPF-to-BPF call (src_reg != 1)".into(),
            ));
        }
        if !target_section.is_code() {
            return Err(reloc(format!(
                "call into '{}', which is not a code section",
                target_section.name
            )));
        }
        // Global functions: st_value is the callee, imm is -1. Static ones: the symbol is the
        // section, and imm + 1 counts slots from its start.
        let to = (sym.value / 8) as i64 + imm as i64 + 1;
        return match u64::try_from(to) {
            Ok(slot) if sym.value % 8 == 0 => Ok(Fixup::Code {
                section: target,
                slot,
            }),
            _ => Err(reloc(format!(
                "call target {to} is not a slot of '{}'",
                target_section.name
            ))),
        };
    }
    if target_section.is_code() && matches!(sym.kind, STT_FUNC | STT_SECTION) {
        let byte = i64::try_from(sym.value)
            .ok()
            .and_then(|v| v.checked_add(imm as i64))
            .and_then(|b| u64::try_from(b).ok());
        return match byte {
            Some(b) if b % 8 == 0 => Ok(Fixup::Code {
                section: target,
                slot: b / 8,
            }),
            _ => Err(reloc(format!(
                "function address {:#x}{imm:+} is not an instruction boundary",
                sym.value
            ))),
        };
    }
    if let Some(&map) = maps.by_data_section.get(&target) {
        return Ok(Fixup::Data {
            map,
            sym_off: sym.value,
        });
    }
    if target_section.name == ".maps" || target_section.name == "maps" {
        return match maps.by_symbol.get(&(target, sym.value)) {
            Some(&map) => Ok(Fixup::Map(map)),
            None => Err(reloc(format!(
                "no map is defined at offset {:#x} of '{}'",
                sym.value, target_section.name
            ))),
        };
    }
    Err(reloc(format!(
        "section '{}' holds no map, global data or code",
        target_section.name
    )))
}

/// For a call of an undefined symbol that the object's BTF declares as a kernel function
/// (`extern ... __ksym`, a `FUNC` in the `.ksyms` DATASEC): its local `FUNC` id.
fn ksym_func(sym: &Symbol, raw: &[u8], btf: Option<&Btf>) -> Option<u32> {
    if sym.section.is_some() || raw[0] != CALL || sym.name.is_empty() {
        return None;
    }
    let btf = btf?;
    btf.types().iter().find_map(|t| match &t.kind {
        BtfKind::Datasec { vars, .. } if t.name == ".ksyms" => vars.iter().find_map(|v| {
            let f = btf.type_by_id(v.type_id)?;
            (f.name == sym.name && matches!(f.kind, BtfKind::Func { .. })).then_some(v.type_id)
        }),
        _ => None,
    })
}

/// For an `lddw` of an undefined symbol that the object's BTF declares as a kernel variable
/// (`extern const T name __ksym`, a `VAR` in the `.ksyms` DATASEC): its local `VAR` id.
fn ksym_var(sym: &Symbol, raw: &[u8], btf: Option<&Btf>) -> Option<u32> {
    if sym.section.is_some() || raw[0] != LDDW || sym.name.is_empty() {
        return None;
    }
    let btf = btf?;
    btf.types().iter().find_map(|t| match &t.kind {
        BtfKind::Datasec { vars, .. } if t.name == ".ksyms" => vars.iter().find_map(|v| {
            let f = btf.type_by_id(v.type_id)?;
            (f.name == sym.name && matches!(f.kind, BtfKind::Var { .. })).then_some(v.type_id)
        }),
        _ => None,
    })
}

/// The kernel BTF (or why there is none: `feature` needs it) and the id of the `__ksym`
/// extern `name` in it, a type of the kind `is_kind` accepts (`what`: "var" or "func", for
/// libbpf's message). A `___flavor` suffix is ignored, as for CO-RE types.
fn find_ksym<'t>(
    section: &str,
    slot: usize,
    name: &str,
    target: &'t Target<'_>,
    feature: &str,
    what: &str,
    is_kind: impl Fn(&BtfKind) -> bool,
) -> Result<(&'t TargetBtf, u32), ObjectError> {
    let kernel = target.get().map_err(|reason| ObjectError::NeedsKernelBtf {
        feature: feature.to_string(),
        section: section.to_string(),
        insn: slot,
        symbol: name.to_string(),
        reason,
    })?;
    let essential = &name[..super::essential_name_len(name)];
    let id = kernel.find(essential, is_kind).ok_or_else(|| {
        ObjectError::reloc(
            section,
            slot,
            name,
            format!(
                "extern ({what} ksym) '{name}': not found in kernel BTF ({})",
                kernel.source()
            ),
        )
    })?;
    Ok((kernel, id))
}

/// Resolve a typed kernel variable as libbpf's `bpf_object__resolve_ksym_var_btf_id`: the
/// kernel's `VAR` of that name, its type compatible with the local declaration. Typeless ones
/// (`extern const void x __ksym`, an address from `/proc/kallsyms`) are not supported.
fn ksym_var_fixup(
    section: &str,
    slot: usize,
    name: &str,
    (local, local_var): (Option<&Btf>, u32),
    target: &Target<'_>,
) -> Result<Fixup, ObjectError> {
    // The variable's type without modifiers and typedefs, on both sides, as libbpf compares.
    let var_type = |b: &Btf, v: u32| match b.type_by_id(v).map(|t| &t.kind) {
        Some(BtfKind::Var { target, .. }) => b.skip_mods_and_typedefs(*target).unwrap_or(0),
        _ => 0,
    };
    let local_type = local.map_or(0, |b| var_type(b, local_var));
    if local_type == 0 {
        let feature =
            format!("typeless kernel symbol '{name}' (.ksyms, an address from /proc/kallsyms)");
        return Err(ObjectError::unsupported(feature, section, slot, name));
    }
    let (kernel, id) = find_ksym(
        section,
        slot,
        name,
        target,
        &format!("kernel variable '{name}' (.ksyms)"),
        "var",
        |k| matches!(k, BtfKind::Var { .. }),
    )?;
    let reject = |detail: String| ObjectError::reloc(section, slot, name, detail);
    let kernel_type = var_type(kernel.btf(), id);
    let compat = local.is_some_and(|b| {
        core::types_compat(b, local_type, kernel.btf(), kernel_type, 32).unwrap_or(false)
    });
    if !compat {
        return Err(reject(format!(
            "extern (var ksym) '{name}': incompatible types, expected [{local_type}] {}, but kernel has [{kernel_type}] {}",
            local.map_or_else(String::new, |b| b.type_name(local_type)),
            kernel.btf().type_name(kernel_type)
        )));
    }
    Ok(Fixup::KsymVar(id))
}

/// Resolve a kfunc call as libbpf's `bpf_object__resolve_ksym_func_btf_id`: the kernel's `FUNC`
/// of that name, its prototype compatible with the local declaration.
fn kfunc(
    section: &str,
    slot: usize,
    name: &str,
    (local, local_func): (Option<&Btf>, u32),
    target: &Target<'_>,
) -> Result<Fixup, ObjectError> {
    let feature = || format!("kfunc call to '{name}' (.ksyms)");
    let (kernel, id) = find_ksym(section, slot, name, target, &feature(), "func", |k| {
        matches!(k, BtfKind::Func { .. })
    })?;
    let reject = |detail: String| ObjectError::reloc(section, slot, name, detail);
    let proto = |b: &Btf, f: u32| match b.type_by_id(f).map(|t| &t.kind) {
        Some(BtfKind::Func { proto, .. }) => *proto,
        _ => 0,
    };
    let (local_proto, kernel_proto) = (
        local.map_or(0, |b| proto(b, local_func)),
        proto(kernel.btf(), id),
    );
    let compat = local.is_some_and(|b| {
        core::types_compat(b, local_proto, kernel.btf(), kernel_proto, 32).unwrap_or(false)
    });
    if !compat {
        return Err(reject(format!(
            "extern (func ksym) '{name}': func_proto [{local_proto}] incompatible with vmlinux [{kernel_proto}]"
        )));
    }
    Ok(Fixup::Kfunc(id))
}

/// Names an undefined symbol's feature: kfuncs and kernel variables (`__ksym`, in the BTF
/// DATASEC `.ksyms`), Kconfig values (`__kconfig`, `.kconfig`), or another object's symbol.
fn extern_feature(name: &str, call: bool, btf: Option<&Btf>) -> String {
    let datasec = btf.and_then(|b| {
        b.types().iter().find_map(|t| match &t.kind {
            BtfKind::Datasec { vars, .. }
                if vars
                    .iter()
                    .any(|v| b.type_by_id(v.type_id).is_some_and(|t| t.name == name)) =>
            {
                Some(t.name.clone())
            }
            _ => None,
        })
    });
    match (datasec.as_deref(), call) {
        (Some(".ksyms"), true) => format!("kfunc call to '{name}' (.ksyms)"),
        (_, true) => format!("call to extern function '{name}'"),
        (Some(".ksyms"), false) => format!("kernel variable '{name}' (.ksyms)"),
        (Some(".kconfig"), false) => format!("Kconfig extern '{name}' (.kconfig)"),
        (_, false) => format!("reference to extern symbol '{name}'"),
    }
}
