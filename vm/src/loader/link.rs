//! Functions and linking: every `STT_FUNC` symbol of a code section is decoded once with its
//! map and data references fixed; a program is then its entry function followed by every
//! function it calls or takes the address of, transitively, appended in the order libbpf's
//! `bpf_object__reloc_code` appends them (depth first, at the first reference), with call and
//! `lddw` function offsets rewritten for that layout.

use std::collections::{BTreeMap, HashMap};

use super::btf::Btf;
use super::btf_ext::CoreRelo;
use super::elf::{Elf, STB_LOCAL, STT_FUNC};
use super::maps::Maps;
use super::reloc::{self, Fixup, FuncExtent};
use super::{ObjectError, Target};
use crate::isa::{self, CallTarget, Imm64, Insn, RawInsn};

/// One function of the object, as it appears in a linked program.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PlacedFunction {
    pub name: String,
    pub section: String,
    /// First slot of the function in the linked program (0 for the program itself).
    pub slot: usize,
    /// The ELF symbol is global (libbpf marks such functions `BTF_FUNC_GLOBAL`).
    pub global: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Function {
    pub name: String,
    pub section: usize,
    /// First slot in the section, and length in slots.
    pub start: usize,
    pub len: usize,
    pub global: bool,
    /// The decoded, fixed-up code, or why no program may contain this function.
    pub body: Result<Body, ObjectError>,
}

#[derive(Clone, Debug)]
pub(crate) struct Body {
    insns: Vec<Insn>,
    /// Slot of each instruction, from the start of the function.
    slots: Vec<usize>,
    /// (instruction index, target section, target slot in that section) of every call and
    /// function-address load.
    refs: Vec<(usize, usize, u64)>,
}

#[derive(Clone, Debug)]
pub(crate) struct Linker {
    pub funcs: Vec<Function>,
    pub section_names: Vec<String>,
    /// Code section -> (start slot, function) sorted by start, for finding a call's target.
    by_section: HashMap<usize, Vec<(usize, usize)>>,
}

impl Linker {
    pub fn build(
        elf: &Elf<'_>,
        maps: &Maps,
        btf: Option<&Btf>,
        core: &[CoreRelo],
        target: &Target<'_>,
    ) -> Result<Linker, ObjectError> {
        let mut funcs = Vec::new();
        for (index, section) in elf.sections.iter().enumerate() {
            if !section.is_code() {
                continue;
            }
            if section.data.len() % 8 != 0 {
                return Err(ObjectError::elf(
                    &section.name,
                    section.file_offset,
                    "code size is not a multiple of 8 bytes",
                ));
            }
            let mut raws: Vec<RawInsn> = section
                .data
                .chunks_exact(8)
                .map(|c| RawInsn::from_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            let mut syms: Vec<_> = elf
                .symbols
                .iter()
                .filter(|s| s.section == Some(index) && s.kind == STT_FUNC && s.size > 0)
                .collect();
            syms.sort_by_key(|s| s.value);
            let mut extents = Vec::new();
            for s in &syms {
                let end = s.value.checked_add(s.size);
                if s.value % 8 != 0
                    || s.size % 8 != 0
                    || end.is_none_or(|e| e > raws.len() as u64 * 8)
                {
                    return Err(ObjectError::elf(
                        &section.name,
                        section.file_offset.saturating_add(s.value),
                        format!(
                            "function '{}' ({:#x}+{:#x}) is not a whole number of instructions inside the section",
                            s.name, s.value, s.size
                        ),
                    ));
                }
                extents.push(FuncExtent {
                    name: &s.name,
                    start: (s.value / 8) as usize,
                    len: (s.size / 8) as usize,
                });
            }
            let fixups = reloc::resolve(
                elf,
                index,
                maps,
                btf,
                &reloc::CoreInput {
                    relos: core,
                    target,
                },
                &extents,
                &mut raws,
            )?;
            for (s, e) in syms.iter().zip(&extents) {
                let code = &raws[e.start..e.start + e.len];
                funcs.push(Function {
                    name: s.name.clone(),
                    section: index,
                    start: e.start,
                    len: e.len,
                    global: s.bind != STB_LOCAL,
                    body: decode_body(
                        &section.name,
                        index,
                        s.name.as_str(),
                        e.start,
                        code,
                        &fixups,
                    ),
                });
            }
        }
        let mut by_section: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for (i, f) in funcs.iter().enumerate() {
            by_section.entry(f.section).or_default().push((f.start, i));
        }
        for v in by_section.values_mut() {
            v.sort_unstable();
        }
        Ok(Linker {
            funcs,
            section_names: elf.sections.iter().map(|s| s.name.clone()).collect(),
            by_section,
        })
    }

    pub fn section_name(&self, f: &Function) -> &str {
        &self.section_names[f.section]
    }

    /// The function containing `slot` of code section `section`, and the slot's offset in it.
    fn find(&self, section: usize, slot: u64) -> Option<(usize, usize)> {
        let list = self.by_section.get(&section)?;
        let slot = usize::try_from(slot).ok()?;
        let i = list
            .partition_point(|&(start, _)| start <= slot)
            .checked_sub(1)?;
        let (start, f) = list[i];
        (slot - start < self.funcs[f].len).then_some((f, slot - start))
    }

    /// Function `entry` followed by everything it references, with references relocated.
    pub fn link(&self, entry: usize) -> Result<(Vec<Insn>, Vec<PlacedFunction>), ObjectError> {
        let body = |f: usize| self.funcs[f].body.as_ref().map_err(Clone::clone);
        let mut layout = Layout::default();
        layout.place(self, entry, body(entry)?);
        // Depth-first, like libbpf's recursion: a newly appended callee is processed before
        // the rest of its caller. An explicit stack keeps deep call chains off the Rust stack.
        let mut stack = vec![(entry, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (f, next) = *top;
            let b = body(f)?;
            let Some(&(i, section, target)) = b.refs.get(next) else {
                stack.pop();
                continue;
            };
            top.1 += 1;
            let func = &self.funcs[f];
            let at = func.start + b.slots[i];
            let err = |detail: String| {
                ObjectError::reloc(self.section_name(func), at, &func.name, detail)
            };
            let (g, within) = self.find(section, target).ok_or_else(|| {
                err(format!(
                    "target slot {target} of '{}' is not inside a function",
                    self.section_names[section]
                ))
            })?;
            let gb = body(g)?;
            if gb.slots.binary_search(&within).is_err() {
                return Err(err(format!(
                    "target is in the middle of an instruction of '{}'",
                    self.funcs[g].name
                )));
            }
            let (caller_insn, caller_slot) = layout.bases[&f];
            let (_, callee_slot) = match layout.bases.get(&g) {
                Some(&base) => base,
                None => {
                    stack.push((g, 0));
                    layout.place(self, g, gb)
                }
            };
            let from = caller_slot + b.slots[i];
            let to = callee_slot + within;
            let off = i32::try_from(to as i64 - from as i64 - 1)
                .map_err(|_| err("program too large for a relative call".into()))?;
            match &mut layout.out[caller_insn + i] {
                Insn::Call(CallTarget::Local(o)) => *o = off,
                Insn::LdImm64 { imm, .. } => *imm = Imm64::Func(off),
                other => return Err(err(format!("cannot relocate {other:?}"))),
            }
        }
        Ok((layout.out, layout.placed))
    }
}

/// A program being linked.
#[derive(Default)]
struct Layout {
    out: Vec<Insn>,
    placed: Vec<PlacedFunction>,
    /// Function -> (index of its first instruction in `out`, its first slot).
    bases: HashMap<usize, (usize, usize)>,
    slots: usize,
}

impl Layout {
    /// Append function `f`; returns its base (first instruction index, first slot).
    fn place(&mut self, linker: &Linker, f: usize, body: &Body) -> (usize, usize) {
        let base = (self.out.len(), self.slots);
        let func = &linker.funcs[f];
        self.bases.insert(f, base);
        self.placed.push(PlacedFunction {
            name: func.name.clone(),
            section: linker.section_name(func).to_string(),
            slot: self.slots,
            global: func.global,
        });
        self.out.extend_from_slice(&body.insns);
        self.slots += func.len;
        base
    }
}

/// Decode one function and apply its map and data fixups; collect its code references.
fn decode_body(
    section: &str,
    section_index: usize,
    name: &str,
    start: usize,
    code: &[RawInsn],
    fixups: &BTreeMap<usize, Fixup>,
) -> Result<Body, ObjectError> {
    let mut insns = isa::decode_raw(code).map_err(|e| ObjectError::Decode {
        section: section.to_string(),
        symbol: name.to_string(),
        insn: start + e.pc,
        opcode: e.opcode,
        kind: e.kind,
    })?;
    let mut slots = Vec::with_capacity(insns.len());
    let mut slot = 0;
    for insn in &insns {
        slots.push(slot);
        slot += insn.slots();
    }
    // Every fixup in this function must sit on an instruction, not on an lddw's second half.
    for (&at, fixup) in fixups.range(start..start + code.len()) {
        if slots.binary_search(&(at - start)).is_err() {
            return Err(match fixup {
                Fixup::Reject(e) => e.clone(),
                _ => ObjectError::reloc(section, at, name, "relocation in the middle of an lddw"),
            });
        }
    }
    let mut refs = Vec::new();
    for (i, insn) in insns.iter_mut().enumerate() {
        let at = start + slots[i];
        let bad = |detail: &str| ObjectError::reloc(section, at, name, detail);
        match (fixups.get(&at), insn) {
            (Some(Fixup::Reject(e)), _) => return Err(e.clone()),
            (Some(Fixup::Map(map)), Insn::LdImm64 { imm, .. }) => {
                let idx = i32::try_from(*map).map_err(|_| bad("too many maps"))?;
                *imm = Imm64::MapIdx(idx);
            }
            (Some(Fixup::Data { map, sym_off }), Insn::LdImm64 { imm, .. }) => {
                let Imm64::Imm(v) = *imm else {
                    return Err(bad("global data reference is not a plain lddw"));
                };
                // The addend is the low 32 bits; libbpf computes `insn[0].imm + sym_off`.
                let sym_off = i64::try_from(*sym_off).unwrap_or(i64::MAX);
                let off = i64::from(v as u32 as i32).saturating_add(sym_off);
                *imm = Imm64::MapIdxValue {
                    idx: i32::try_from(*map).map_err(|_| bad("too many maps"))?,
                    off: i32::try_from(off).map_err(|_| bad("global data offset out of range"))?,
                };
            }
            (Some(Fixup::Kfunc(btf_id)), insn @ Insn::Call(_)) => {
                let btf_id = i32::try_from(*btf_id).map_err(|_| bad("kfunc BTF id too large"))?;
                *insn = Insn::Call(CallTarget::Kfunc { btf_id, module: 0 });
            }
            (Some(Fixup::KsymVar(btf_id)), Insn::LdImm64 { imm, .. }) => {
                let id = i32::try_from(*btf_id).map_err(|_| bad("kernel BTF id too large"))?;
                *imm = Imm64::BtfId { id, module_fd: 0 };
            }
            (Some(Fixup::Code { section, slot }), insn) => {
                match insn {
                    Insn::Call(CallTarget::Local(_)) => {}
                    Insn::LdImm64 { imm, .. } => *imm = Imm64::Func(0),
                    _ => {
                        return Err(bad(
                            "code reference on an instruction that is not a call or lddw",
                        ))
                    }
                }
                refs.push((i, *section, *slot));
            }
            (Some(_), _) => {
                return Err(bad(
                    "map or data reference on an instruction that is not lddw",
                ))
            }
            // Unrelocated calls and function addresses are relative to their own section.
            (
                None,
                Insn::Call(CallTarget::Local(off))
                | Insn::LdImm64 {
                    imm: Imm64::Func(off),
                    ..
                },
            ) => {
                let to = at as i64 + 1 + *off as i64;
                let to =
                    u64::try_from(to).map_err(|_| bad("call before the start of the section"))?;
                refs.push((i, section_index, to));
            }
            (None, _) => {}
        }
    }
    Ok(Body { insns, slots, refs })
}
