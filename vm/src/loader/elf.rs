//! The ELF layer: sections, symbols and relocation records, read with the `object` crate and
//! copied into plain structs so that the rest of the loader never touches raw headers.

use object::elf;
use object::read::elf::{FileHeader, SectionHeader as _, Sym as _};
use object::{Endianness, SymbolIndex};

use super::ObjectError;

pub(crate) const SHT_PROGBITS: u32 = 1;
pub(crate) const SHT_RELA: u32 = 4;
pub(crate) const SHT_NOBITS: u32 = 8;
pub(crate) const SHT_REL: u32 = 9;
pub(crate) const SHF_EXECINSTR: u64 = 4;

pub(crate) const STT_OBJECT: u8 = 1;
pub(crate) const STT_FUNC: u8 = 2;
pub(crate) const STT_SECTION: u8 = 3;
pub(crate) const STB_LOCAL: u8 = 0;

/// Relocation types of `EM_BPF` that matter to a loader (the others live in debug sections).
pub(crate) const R_BPF_NONE: u32 = 0;

const EM_BPF: u16 = 247;

pub(crate) struct Section<'a> {
    pub name: String,
    pub kind: u32,
    pub flags: u64,
    /// File contents; empty for `SHT_NOBITS`.
    pub data: &'a [u8],
    /// `sh_size`, which for `SHT_NOBITS` (`.bss`) is the size of memory the section asks for.
    pub size: u64,
    pub info: u32,
    pub file_offset: u64,
}

impl Section<'_> {
    /// Program code: `SHT_PROGBITS` with `SHF_EXECINSTR`, as libbpf decides.
    pub fn is_code(&self) -> bool {
        self.kind == SHT_PROGBITS && self.flags & SHF_EXECINSTR != 0 && !self.data.is_empty()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    /// The symbol's name; for an unnamed `STT_SECTION` symbol, the section's name.
    pub name: String,
    pub value: u64,
    pub size: u64,
    pub kind: u8,
    pub bind: u8,
    /// Defining section, `None` for undefined (extern) and absolute symbols.
    pub section: Option<usize>,
}

pub(crate) struct Relocation {
    /// Byte offset in the section the relocation applies to.
    pub offset: u64,
    pub symbol: usize,
    pub kind: u32,
    /// The relocation section holding the record, and the record's byte offset in the file.
    pub table: usize,
    pub file_offset: u64,
}

pub(crate) struct Elf<'a> {
    /// Indexed by ELF section index; entry 0 is the null section.
    pub sections: Vec<Section<'a>>,
    /// Indexed by ELF symbol index; entry 0 is the null symbol.
    pub symbols: Vec<Symbol>,
}

fn not_bpf(offset: u64, detail: &str) -> ObjectError {
    ObjectError::NotBpf {
        offset,
        detail: detail.to_string(),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Elf<'a>, ObjectError> {
        // Check the identification bytes ourselves: `object` only says "unsupported header".
        if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
            return Err(not_bpf(0, "no ELF magic"));
        }
        if bytes[4] != elf::ELFCLASS64.0 {
            return Err(not_bpf(4, "not a 64-bit ELF file"));
        }
        if bytes[5] != elf::ELFDATA2LSB.0 {
            return Err(not_bpf(
                5,
                "big-endian (bpfeb) objects are not supported: build with -target bpf or bpfel",
            ));
        }
        let header = elf::FileHeader64::<Endianness>::parse(bytes)
            .map_err(|e| not_bpf(0, &e.to_string()))?;
        let endian = header.endian().map_err(|e| not_bpf(5, &e.to_string()))?;
        let machine = header.e_machine(endian).0;
        if machine != EM_BPF {
            return Err(not_bpf(
                18,
                &format!("e_machine is {machine}, not EM_BPF ({EM_BPF})"),
            ));
        }
        let shoff: u64 = header.e_shoff(endian);
        let table = header
            .sections(endian, bytes)
            .map_err(|e| ObjectError::elf("<section headers>", shoff, e.to_string()))?;

        let mut sections = Vec::new();
        for (index, sh) in table.enumerate() {
            let header_offset = shoff.saturating_add((index.0 as u64).saturating_mul(64));
            let name = if index.0 == 0 {
                String::new()
            } else {
                let name = table.section_name(endian, sh).map_err(|e| {
                    ObjectError::elf("<section headers>", header_offset, e.to_string())
                })?;
                lossy(name)
            };
            let data = sh
                .data(endian, bytes)
                .map_err(|e| ObjectError::elf(&name, header_offset, e.to_string()))?;
            sections.push(Section {
                kind: sh.sh_type(endian).0,
                flags: sh.sh_flags(endian).0,
                data,
                size: sh.sh_size(endian),
                info: sh.sh_info(endian),
                file_offset: sh.sh_offset(endian),
                name,
            });
        }

        let symtab = table
            .symbols(endian, bytes, elf::SHT_SYMTAB)
            .map_err(|e| ObjectError::elf(".symtab", 0, e.to_string()))?;
        let mut symbols = Vec::new();
        for (i, sym) in symtab.iter().enumerate() {
            let at = || {
                let off = sections
                    .iter()
                    .find(|s| s.name == ".symtab")
                    .map_or(0, |s| s.file_offset);
                off.saturating_add((i as u64).saturating_mul(24))
            };
            let section = symtab
                .symbol_section(endian, sym, SymbolIndex(i))
                .map_err(|e| ObjectError::elf(".symtab", at(), e.to_string()))?
                .map(|s| s.0)
                .filter(|&s| s < sections.len());
            let kind = sym.st_type().0;
            let raw_name = sym
                .name(endian, symtab.strings())
                .map_err(|e| ObjectError::elf(".symtab", at(), e.to_string()))?;
            let name = match section {
                Some(s) if kind == STT_SECTION && raw_name.is_empty() => sections[s].name.clone(),
                _ => lossy(raw_name),
            };
            symbols.push(Symbol {
                name,
                value: sym.st_value(endian),
                size: sym.st_size(endian),
                kind,
                bind: sym.st_bind().0,
                section,
            });
        }

        Ok(Elf { sections, symbols })
    }

    pub fn section_by_name(&self, name: &str) -> Option<(usize, &Section<'a>)> {
        self.sections
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, s)| s.name == name)
    }

    /// The `SHT_REL` records that apply to section `target`, in file order. A `SHT_RELA` table
    /// for it is refused: clang never emits one for BPF, and silently ignoring it would be wrong.
    pub fn relocations_for(&self, target: usize) -> Result<Vec<Relocation>, ObjectError> {
        let mut out = Vec::new();
        for (table, section) in self.sections.iter().enumerate().skip(1) {
            if section.info as usize != target {
                continue;
            }
            if section.kind == SHT_RELA {
                return Err(ObjectError::elf(
                    &section.name,
                    section.file_offset,
                    "RELA relocations are not used by BPF objects",
                ));
            }
            if section.kind != SHT_REL {
                continue;
            }
            if section.data.len() % 16 != 0 {
                return Err(ObjectError::elf(
                    &section.name,
                    section.file_offset,
                    "relocation table size is not a multiple of 16 (Elf64_Rel)",
                ));
            }
            // Elf64_Rel: r_offset (u64), r_info (u64) = sym << 32 | type.
            for (i, rec) in section.data.chunks_exact(16).enumerate() {
                let word = |at: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&rec[at..at + 8]);
                    u64::from_le_bytes(b)
                };
                let info = word(8);
                let file_offset = section.file_offset.saturating_add(i as u64 * 16);
                let symbol = (info >> 32) as usize;
                if symbol >= self.symbols.len() {
                    return Err(ObjectError::elf(
                        &section.name,
                        file_offset,
                        format!("relocation names symbol {symbol}, which does not exist"),
                    ));
                }
                out.push(Relocation {
                    offset: word(0),
                    symbol,
                    kind: info as u32,
                    table,
                    file_offset,
                });
            }
        }
        Ok(out)
    }
}
