//! The ELF loader: objects from `clang -target bpf` (and `bpftool gen object`) to programs,
//! map definitions and global data, following libbpf's conventions.
//!
//! ```no_run
//! let bytes = std::fs::read("prog.bpf.o").unwrap();
//! let obj = bpfsim_vm::loader::load_object(&bytes).unwrap();
//! let prog = obj.find_program("xdp_main").unwrap();
//! let program = bpfsim_vm::Program::new(prog.insns.clone()).unwrap();
//! # let _ = program;
//! ```
//!
//! Map references in the programs are `lddw rN, map_idx K` ([`Imm64::MapIdx`]) and global
//! data references `lddw rN, map_idx_value K, OFF` ([`Imm64::MapIdxValue`]), with `K` an index
//! into [`Object::maps`]: whoever creates the maps binds them by that index.
//!
//! A program that needs something unsupported (a CO-RE relocation, a kfunc) does not stop the
//! others from loading: it is listed in [`Object::rejected`] with the reason, which
//! [`Object::find_program`] returns when asked for it. Broken ELF, BTF or map definitions fail
//! the whole object.
//!
//! [`Imm64::MapIdx`]: crate::isa::Imm64::MapIdx
//! [`Imm64::MapIdxValue`]: crate::isa::Imm64::MapIdxValue

mod attach;
mod btf;
mod btf_ext;
mod btf_fixup;
mod elf;
mod error;
mod kconfig;
mod link;
mod maps;
mod relo_core;
mod reloc;
mod sections;
mod target;

pub use attach::{AttachTarget, KernelBtf, TracingArg, TracingArgKind};
pub use btf::{Btf, BtfEnumValue, BtfKind, BtfMember, BtfParam, BtfType, BtfVarSecinfo};
pub use error::ObjectError;
pub use link::PlacedFunction;
pub use maps::{GlobalInit, MapInit, MapInitTarget, MapSource, BPF_F_MMAPABLE, BPF_F_RDONLY_PROG};
pub use relo_core::POISON_IMM;
pub use sections::{section_def, AttachType, SectionDef, BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS};
pub use target::{
    essential_name_len, kernel_btf, set_default_kernel_btf, KernelBtfSource, LoadOptions,
    TargetBtf, SYSTEM_VMLINUX_BTF,
};

use std::cell::OnceCell;
use std::sync::Arc;

use crate::isa::{self, Insn};
use crate::program::Program;
use crate::spec::{MapDef, ProgType};
use elf::Elf;
use link::Linker;

/// A loaded object: its programs, the maps they use and the data to initialise them with.
#[derive(Clone, Debug)]
pub struct Object {
    /// The `license` section up to its NUL (`""` when there is none).
    pub license: String,
    /// BTF `.maps` definitions, then legacy `maps` definitions, then one single-entry array
    /// per global data section (`.data*`, `.rodata*`, `.bss*`, named after the section).
    pub maps: Vec<MapDef>,
    /// Where each map of [`Object::maps`] was defined (same indices).
    pub map_sources: Vec<MapSource>,
    /// Initial values of the global data maps.
    pub globals: Vec<GlobalInit>,
    /// Map slots the object fills statically (map-in-map and prog array `values`).
    pub map_inits: Vec<MapInit>,
    /// Every function of a program section, ordered by section and offset as libbpf orders
    /// them; when the object has no program section, the functions of `.text`.
    pub programs: Vec<ObjProgram>,
    /// Programs that cannot be loaded, with the reason.
    pub rejected: Vec<RejectedProgram>,
    /// The object's `.BTF`, when it has one.
    pub btf: Option<Btf>,
    /// The `.BTF` section with data section sizes and variable offsets filled in, as a loader
    /// hands it to the kernel (`BPF_BTF_LOAD`); `None` without a parsable `.BTF`.
    pub kernel_btf: Option<Vec<u8>>,
    linker: Linker,
    /// Where attach targets are looked up.
    kernel_btf_source: KernelBtfSource,
    /// `.BTF.ext` line info, by code section.
    lines: Vec<btf_ext::LineRec>,
}

/// A BTF `line_info` record placed in a linked program: the first slot of a source line's code,
/// the line, and the record's string offsets in [`Object::kernel_btf`] as `BPF_PROG_LOAD`
/// takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineInfo {
    pub slot: usize,
    pub file: String,
    pub text: String,
    pub line: u32,
    pub col: u32,
    pub file_name_off: u32,
    pub line_off: u32,
    pub line_col: u32,
}

/// One program, linked: its own code followed by the subprograms it uses.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ObjProgram {
    /// The function's symbol name.
    pub name: String,
    /// The ELF section it was found in.
    pub section: String,
    /// From libbpf's `SEC()` conventions; `None` for section names libbpf does not know.
    pub prog_type: Option<ProgType>,
    /// The `expected_attach_type` libbpf would load the program with.
    pub expected_attach_type: Option<AttachType>,
    /// `prog_flags` libbpf would load the program with ([`BPF_F_XDP_HAS_FRAGS`], [`BPF_F_SLEEPABLE`]).
    pub flags: u32,
    /// The program's instructions, then every function it calls or takes the address of,
    /// transitively, with calls and function addresses relocated and map references rewritten.
    pub insns: Vec<Insn>,
    /// The functions in `insns`, the program itself first.
    pub functions: Vec<PlacedFunction>,
    /// For tracing, LSM and iterator programs whose section names a target: the target in
    /// the kernel's BTF (its id is the load's `attach_btf_id`).
    pub attach_target: Option<AttachTarget>,
}

impl ObjProgram {
    /// The linked program as raw bytecode (8 bytes per slot), e.g. for `bpfsim disasm`.
    pub fn to_bytes(&self) -> Vec<u8> {
        isa::encode(&self.insns)
    }
}

/// A variable of a global data section.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GlobalVar {
    pub name: String,
    /// Byte offset in the section (its map's single value).
    pub offset: u32,
    pub size: u32,
    /// The variable's type in [`Object::btf`].
    pub type_id: u32,
}

/// A program the loader refused, and why.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RejectedProgram {
    pub name: String,
    pub section: String,
    pub error: ObjectError,
}

/// The kernel BTF, fetched the first time something needs it.
pub(crate) struct Target<'a> {
    source: &'a KernelBtfSource,
    got: OnceCell<Result<Arc<TargetBtf>, String>>,
}

impl<'a> Target<'a> {
    fn new(source: &'a KernelBtfSource) -> Target<'a> {
        Target {
            source,
            got: OnceCell::new(),
        }
    }

    /// The kernel's BTF, or why there is none.
    pub(crate) fn get(&self) -> Result<&TargetBtf, String> {
        match self.got.get_or_init(|| kernel_btf(self.source)) {
            Ok(b) => Ok(b),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Parse an eBPF ELF object, with CO-RE relocations and attach targets resolved against the
/// running kernel's BTF (`/sys/kernel/btf/vmlinux`, or what [`set_default_kernel_btf`] chose)
/// when a program needs it. Never panics, whatever the bytes.
pub fn load_object(bytes: &[u8]) -> Result<Object, ObjectError> {
    load_object_with(bytes, &LoadOptions::default())
}

/// [`load_object`] with the kernel BTF taken from `opts` (a file, BTF already parsed, or none).
/// The BTF is read only when a program has a CO-RE relocation or a BTF attach target.
pub fn load_object_with(bytes: &[u8], opts: &LoadOptions) -> Result<Object, ObjectError> {
    let target = Target::new(&opts.kernel_btf);
    let elf = Elf::parse(bytes)?;
    let btf_error = |section: &str, e: btf::BtfError| ObjectError::Btf {
        section: section.to_string(),
        offset: e.offset,
        detail: e.detail,
    };
    // Like libbpf, a broken .BTF only matters when something needs it (BTF-defined maps).
    let btf = match elf.section_by_name(".BTF").map(|(_, s)| Btf::parse(s.data)) {
        Some(Ok(btf)) => Some(btf),
        Some(Err(e)) if elf.section_by_name(".maps").is_some() => return Err(btf_error(".BTF", e)),
        Some(Err(_)) | None => None,
    };
    let core = match (elf.section_by_name(".BTF.ext"), &btf) {
        (Some((_, s)), Some(b)) => {
            btf_ext::core_relos(s.data, b).map_err(|e| btf_error(".BTF.ext", e))?
        }
        _ => Vec::new(),
    };
    let lines = match (elf.section_by_name(".BTF.ext"), &btf) {
        (Some((_, s)), Some(b)) => btf_ext::line_infos(s.data, b),
        _ => Vec::new(),
    };
    let mut maps = maps::collect(&elf, btf.as_ref())?;
    maps.kconfig = kconfig::add_map(btf.as_ref(), &mut maps, &target);
    let linker = Linker::build(&elf, &maps, btf.as_ref(), &core, &target)?;

    let license = elf
        .section_by_name("license")
        .map(|(_, s)| {
            let end = s.data.iter().position(|&b| b == 0).unwrap_or(s.data.len());
            String::from_utf8_lossy(&s.data[..end]).into_owned()
        })
        .unwrap_or_default();

    let mut obj = Object {
        license,
        maps: maps.defs,
        map_sources: maps.sources,
        globals: maps.globals,
        map_inits: maps.inits,
        programs: Vec::new(),
        rejected: Vec::new(),
        kernel_btf: btf.as_ref().and_then(|_| {
            let (_, s) = elf.section_by_name(".BTF")?;
            btf_fixup::kernel_btf(&elf, s.data)
        }),
        btf,
        linker,
        kernel_btf_source: opts.kernel_btf.clone(),
        lines,
    };
    let in_text = |f: &link::Function| obj.linker.section_name(f) == ".text";
    let mut entries: Vec<usize> = (0..obj.linker.funcs.len())
        .filter(|&f| !in_text(&obj.linker.funcs[f]))
        .collect();
    if entries.is_empty() {
        entries = (0..obj.linker.funcs.len()).collect();
    }
    for f in entries {
        let func = &obj.linker.funcs[f];
        let section = obj.linker.section_name(func);
        match obj.link_program(f, section_def(section)) {
            Ok(p) => obj.programs.push(p),
            Err(error) => obj.rejected.push(RejectedProgram {
                name: func.name.clone(),
                section: section.to_string(),
                error,
            }),
        }
    }
    Ok(obj)
}

impl Object {
    /// The loaded program with this (function) name.
    pub fn program(&self, name: &str) -> Option<&ObjProgram> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// Like [`Object::program`], but says why there is none: the reason the program was
    /// rejected, or that the name is a function without a program section.
    pub fn find_program(&self, name: &str) -> Result<&ObjProgram, ObjectError> {
        if let Some(p) = self.program(name) {
            return Ok(p);
        }
        if let Some(r) = self.rejected.iter().find(|r| r.name == name) {
            return Err(r.error.clone());
        }
        let hint = match self.linker.funcs.iter().find(|f| f.name == name) {
            Some(f) => format!(
                " ('{name}' is a function in section '{}': load it with a program type)",
                self.linker.section_name(f)
            ),
            None if self.programs.is_empty() => String::new(),
            None => {
                let names: Vec<_> = self.programs.iter().map(|p| p.name.as_str()).collect();
                format!(" (programs: {})", names.join(", "))
            }
        };
        Err(ObjectError::NoSuchProgram {
            symbol: name.to_string(),
            hint,
        })
    }

    /// Link any function of the object as a program of type `prog_type`: how a program that
    /// lives in `.text` alone, or in a section with a free name, is loaded when the user names
    /// it and its type. The section's attach type and flags are kept when they fit the type.
    pub fn function_program(
        &self,
        name: &str,
        prog_type: ProgType,
    ) -> Result<ObjProgram, ObjectError> {
        let f = self
            .linker
            .funcs
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| ObjectError::NoSuchProgram {
                symbol: name.to_string(),
                hint: " or function".to_string(),
            })?;
        let section = self.linker.section_name(&self.linker.funcs[f]);
        let def = match section_def(section) {
            Some(d) if d.prog_type == prog_type => d,
            _ => SectionDef {
                prog_type,
                attach_type: None,
                flags: 0,
            },
        };
        self.link_program(f, Some(def))
    }

    /// `(name, section)` of every function of the object, programs and subprograms alike.
    pub fn functions(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.linker
            .funcs
            .iter()
            .map(|f| (f.name.as_str(), self.linker.section_name(f)))
    }

    /// The line info of a linked program, by slot (empty without `.BTF.ext` line info): each
    /// function's records moved to where the function landed.
    pub fn line_info(&self, p: &ObjProgram) -> Vec<LineInfo> {
        let Some(btf) = &self.btf else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for placed in &p.functions {
            let Some(f) =
                self.linker.funcs.iter().find(|f| {
                    f.name == placed.name && self.linker.section_name(f) == placed.section
                })
            else {
                continue;
            };
            for l in self.lines.iter().filter(|l| l.section == placed.section) {
                let at = (l.insn_off / 8) as usize;
                if l.insn_off % 8 != 0 || at < f.start || at >= f.start + f.len {
                    continue;
                }
                out.push(LineInfo {
                    slot: placed.slot + (at - f.start),
                    file: btf.string(l.file_name_off).unwrap_or("").to_string(),
                    text: btf.string(l.line_off).unwrap_or("").to_string(),
                    line: l.line_col >> 10,
                    col: l.line_col & 0x3ff,
                    file_name_off: l.file_name_off,
                    line_off: l.line_off,
                    line_col: l.line_col,
                });
            }
        }
        out.sort_by_key(|l| l.slot);
        out
    }

    /// Index into [`Object::maps`] of the map with this name.
    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.name == name)
    }

    /// The variables of a global data section (`.rodata`, `.data`, `.bss`, ...) with their
    /// offsets in the section's map value, as BTF describes them: what a libbpf skeleton's
    /// `skel->rodata->var` names. Empty without BTF.
    pub fn global_vars(&self, section: &str) -> Vec<GlobalVar> {
        let Some(btf) = self.kernel_btf.as_deref().and_then(|b| Btf::parse(b).ok()) else {
            return Vec::new();
        };
        let Some(id) = btf.find(section, |k| matches!(k, BtfKind::Datasec { .. })) else {
            return Vec::new();
        };
        let Some(BtfKind::Datasec { vars, .. }) = btf.type_by_id(id).map(|t| &t.kind) else {
            return Vec::new();
        };
        vars.iter()
            .filter_map(|v| {
                let var = btf.type_by_id(v.type_id)?;
                let BtfKind::Var { target, .. } = var.kind else {
                    return None;
                };
                Some(GlobalVar {
                    name: var.name.clone(),
                    offset: v.offset,
                    size: v.size,
                    type_id: target,
                })
            })
            .collect()
    }

    fn link_program(&self, f: usize, def: Option<SectionDef>) -> Result<ObjProgram, ObjectError> {
        let func = &self.linker.funcs[f];
        let section = self.linker.section_name(func).to_string();
        let (insns, functions) = self.linker.link(f)?;
        // Every loaded program is one `Program::new` accepts: check it here, once.
        if let Err(source) = Program::new(insns.clone()) {
            return Err(ObjectError::Structure {
                section,
                symbol: func.name.clone(),
                source,
            });
        }
        let attach_type = def.and_then(|d| d.attach_type);
        let attach_target = match attach::section_target(&section, attach_type) {
            Some((name, attach)) => Some(self.attach_target(&section, &func.name, name, attach)?),
            None => None,
        };
        Ok(ObjProgram {
            name: func.name.clone(),
            section,
            prog_type: def.map(|d| d.prog_type),
            expected_attach_type: attach_type,
            flags: def.map_or(0, |d| d.flags),
            insns,
            functions,
            attach_target,
        })
    }

    /// The attach target `name` of the program `symbol` in the kernel's BTF.
    fn attach_target(
        &self,
        section: &str,
        symbol: &str,
        name: &str,
        attach: AttachType,
    ) -> Result<AttachTarget, ObjectError> {
        let target =
            kernel_btf(&self.kernel_btf_source).map_err(|reason| ObjectError::NeedsKernelBtf {
                feature: format!("attach target '{name}' ({})", attach.name()),
                section: section.to_string(),
                insn: 0,
                symbol: symbol.to_string(),
                reason,
            })?;
        attach::find(&target, name, attach).map_err(|detail| ObjectError::AttachTarget {
            section: section.to_string(),
            symbol: symbol.to_string(),
            detail,
        })
    }
}
