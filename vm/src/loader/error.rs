//! Why an object (or one program of it) could not be loaded, and where.

use crate::isa::DecodeErrorKind;
use crate::program::StructureError;

/// A loader failure. Every variant names the place in the object: the ELF section, and the
/// symbol, byte offset or instruction index (counted in 8-byte slots from the start of the
/// section, as `llvm-objdump -d` numbers them) where that makes sense.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ObjectError {
    /// The bytes are not a 64-bit little-endian ELF object for `EM_BPF`.
    #[error("not an eBPF object (byte offset {offset:#x}): {detail}")]
    NotBpf { offset: u64, detail: String },
    /// The ELF structure itself is broken (headers, tables, symbols, relocation records).
    #[error("malformed ELF in section '{section}' at byte offset {offset:#x}: {detail}")]
    Elf {
        section: String,
        offset: u64,
        detail: String,
    },
    /// `.BTF` or `.BTF.ext` cannot be parsed or refers to types that do not exist.
    #[error("malformed BTF in section '{section}' at byte offset {offset:#x}: {detail}")]
    Btf {
        section: String,
        offset: u64,
        detail: String,
    },
    /// A map definition is invalid (`offset` is the definition's offset in its section).
    #[error("map '{map}' (section '{section}', byte offset {offset:#x}): {detail}")]
    Map {
        section: String,
        map: String,
        offset: u64,
        detail: String,
    },
    /// A relocation or a BPF-to-BPF call cannot be resolved.
    #[error("section '{section}' instruction {insn}: reference to '{symbol}': {detail}")]
    Reloc {
        section: String,
        insn: usize,
        symbol: String,
        detail: String,
    },
    /// The object uses something the loader does not implement.
    #[error(
        "{feature} in section '{section}' is not supported (instruction {insn}, symbol '{symbol}')"
    )]
    Unsupported {
        feature: String,
        section: String,
        insn: usize,
        symbol: String,
    },
    /// The program needs the kernel's BTF (CO-RE relocations, a tracing program's attach
    /// target) and there is none: `reason` says why and where to get one.
    #[error("{feature} in section '{section}' (instruction {insn}, symbol '{symbol}') needs the kernel's BTF: {reason}")]
    NeedsKernelBtf {
        feature: String,
        section: String,
        insn: usize,
        symbol: String,
        reason: String,
    },
    /// A CO-RE relocation cannot be resolved against the kernel's BTF, or the instruction it
    /// names cannot take the value (libbpf fails the load the same way).
    #[error("CO-RE relocation failed in section '{section}' (instruction {insn}, symbol '{symbol}'): {detail}")]
    Core {
        section: String,
        insn: usize,
        symbol: String,
        detail: String,
    },
    /// A tracing, LSM or iterator program's attach target is not in the kernel's BTF.
    #[error("program '{symbol}' (section '{section}'): {detail}")]
    AttachTarget {
        section: String,
        symbol: String,
        detail: String,
    },
    /// A function's bytecode does not decode.
    #[error("function '{symbol}' in section '{section}' instruction {insn} (opcode {opcode:#04x}): {kind}")]
    Decode {
        section: String,
        symbol: String,
        insn: usize,
        opcode: u8,
        kind: DecodeErrorKind,
    },
    /// The linked program (its code followed by its subprograms) is not a valid program; the
    /// error's instruction index counts from the start of the linked program.
    #[error("program '{symbol}' (section '{section}'): {source}")]
    Structure {
        section: String,
        symbol: String,
        source: StructureError,
    },
    /// No program (and, for [`Object::function_program`](super::Object::function_program), no
    /// function) has this name.
    #[error("no program named '{symbol}' in the object{hint}")]
    NoSuchProgram { symbol: String, hint: String },
}

impl ObjectError {
    pub(crate) fn elf(section: &str, offset: u64, detail: impl Into<String>) -> ObjectError {
        ObjectError::Elf {
            section: section.to_string(),
            offset,
            detail: detail.into(),
        }
    }

    pub(crate) fn reloc(
        section: &str,
        insn: usize,
        symbol: &str,
        detail: impl Into<String>,
    ) -> ObjectError {
        ObjectError::Reloc {
            section: section.to_string(),
            insn,
            symbol: symbol.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(
        feature: impl Into<String>,
        section: &str,
        insn: usize,
        symbol: &str,
    ) -> ObjectError {
        ObjectError::Unsupported {
            feature: feature.into(),
            section: section.to_string(),
            insn,
            symbol: symbol.to_string(),
        }
    }

    /// The ELF section the error is about (empty for [`ObjectError::NotBpf`] and
    /// [`ObjectError::NoSuchProgram`]).
    pub fn section(&self) -> &str {
        match self {
            ObjectError::NotBpf { .. } | ObjectError::NoSuchProgram { .. } => "",
            ObjectError::Elf { section, .. }
            | ObjectError::Btf { section, .. }
            | ObjectError::Map { section, .. }
            | ObjectError::Reloc { section, .. }
            | ObjectError::Unsupported { section, .. }
            | ObjectError::NeedsKernelBtf { section, .. }
            | ObjectError::Core { section, .. }
            | ObjectError::AttachTarget { section, .. }
            | ObjectError::Decode { section, .. }
            | ObjectError::Structure { section, .. } => section,
        }
    }
}
