//! The generated code of a compiled program, for people: its bytes, which BPF instruction each
//! part comes from (Cranelift's source locations, set to the BPF slot while that instruction is
//! translated), and its instructions as text. Kept only when the compile asks for it
//! ([`crate::CompileOptions::listing`]): setting source locations and Cranelift's disassembly
//! cost compile time that runs need not pay.

/// A compiled program's code as the JIT generated it, like `bpftool prog dump jited` for the
/// kernel's JIT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The function's symbol, as perf shows it: `bpf_jit:NAME` for the program,
    /// `bpf_jit:NAME:cb_SLOT` for a callback compiled as a function of its own.
    pub function: String,
    /// Where the code was placed in memory (the start of the range a perf map names).
    pub address: u64,
    /// The machine code, as it runs (calls to the runtime's functions resolved).
    pub code: Vec<u8>,
    /// The code cut into consecutive parts, in code order, each with the BPF slot it was
    /// generated for: together they cover `code` exactly once. `pc: None` is code of no single
    /// BPF instruction: the entry (prologue), the shared exits (return, trap, budget hand-over)
    /// and the paths out of line that serve several instructions.
    pub parts: Vec<CodePart>,
    /// The host's instructions, in code order, with the slot of the part each starts in; then
    /// the constants Cranelift placed after the code, as `.quad` (and `.byte`) lines of no slot.
    /// Decoded on x86-64 hosts only (empty elsewhere: [`Listing::cranelift`] still has text).
    pub insns: Vec<HostInsn>,
    /// Cranelift's own text of the machine instructions it emitted, by Cranelift block
    /// (registers as allocated; no offsets, no BPF slots). Every host ISA has it.
    pub cranelift: String,
    /// The host's architecture, as Rust names it (`x86_64`, `aarch64`).
    pub arch: &'static str,
    /// The callbacks compiled as functions of their own (the targets of `lddw rX, func` that a
    /// helper calls: their bodies and the subprograms they call), each listed as the program
    /// is, by first slot; their code is not in the program's. Empty in their own listings.
    pub callbacks: Vec<Listing>,
}

/// A byte range of the code and the BPF slot it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodePart {
    /// Offset of the first byte, from the start of the code.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
    /// The BPF slot (instruction index; an `lddw` takes two) this code was generated for.
    pub pc: Option<usize>,
}

/// One instruction of the host's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInsn {
    /// Offset from the start of the code.
    pub offset: usize,
    /// Its bytes.
    pub len: usize,
    /// AT&T syntax, as `objdump` and `perf annotate` print it; branch targets are offsets
    /// from the start of the code, followed by a comment naming the BPF slot the target starts,
    /// and a call's absolute address by a comment naming the runtime function it is.
    pub text: String,
    /// The BPF slot of the part this instruction starts in ([`CodePart::pc`]).
    pub pc: Option<usize>,
}

impl Listing {
    /// The number of bytes of machine code.
    pub fn code_size(&self) -> usize {
        self.code.len()
    }

    /// The BPF slot the code at `offset` was generated for (`None`: no single instruction, or
    /// past the end).
    pub fn pc_at(&self, offset: usize) -> Option<usize> {
        let i = self.parts.partition_point(|p| p.end <= offset);
        self.parts
            .get(i)
            .filter(|p| p.start <= offset)
            .and_then(|p| p.pc)
    }

    /// The host instructions generated for BPF slot `pc`, in code order (those out of line
    /// included, wherever Cranelift placed them).
    pub fn insns_of(&self, pc: usize) -> impl Iterator<Item = &HostInsn> {
        self.insns.iter().filter(move |i| i.pc == Some(pc))
    }

    /// The bytes of code generated for BPF slot `pc`.
    pub fn bytes_of(&self, pc: usize) -> usize {
        self.parts
            .iter()
            .filter(|p| p.pc == Some(pc))
            .map(|p| p.end - p.start)
            .sum()
    }
}

/// The parts of a code of `size` bytes from Cranelift's source locations (`(start, end, slot)`,
/// sorted by start; `None` for code of no single instruction; code without a location left out):
/// a gap between them belongs to the range after it, the end to no slot, and neighbours of one
/// slot merge.
pub(crate) fn parts(size: usize, locs: &[(usize, usize, Option<usize>)]) -> Vec<CodePart> {
    let mut out: Vec<CodePart> = Vec::new();
    let mut push = |start: usize, end: usize, pc: Option<usize>| {
        if end <= start {
            return;
        }
        match out.last_mut() {
            Some(last) if last.pc == pc && last.end == start => last.end = end,
            _ => out.push(CodePart { start, end, pc }),
        }
    };
    let mut at = 0;
    for &(start, end, pc) in locs {
        // Clamped: a range the buffer reports past the code or behind what is covered (never
        // seen) must not make parts overlap.
        let start = start.clamp(at, size);
        let end = end.clamp(start, size);
        // Code without a location is what Cranelift adds on its own right before the code it
        // serves: constants split out of an instruction, the register allocator's moves at the
        // start of a block, the moves on an edge into the block that follows.
        push(at, start, pc);
        push(start, end, pc);
        at = end;
    }
    push(at, size, None);
    out
}

/// The host's instructions in `code[..code_end]`, each with the slot of its part, then the data
/// after them ([`data`]). `names`: absolute addresses of the runtime's functions and of the
/// program's own (a `bpf_loop`'s direct call of its callback's), to name in comments; `addr`:
/// where `code` is.
#[cfg(target_arch = "x86_64")]
pub(crate) fn decode(
    addr: u64,
    code: &[u8],
    code_end: usize,
    parts: &[CodePart],
    names: &[(u64, &str)],
) -> Vec<HostInsn> {
    use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, OpKind};
    let pc_at = |off: usize| {
        let i = parts.partition_point(|p| p.end <= off);
        parts.get(i).filter(|p| p.start <= off).and_then(|p| p.pc)
    };
    let starts_slot = |off: usize| {
        parts
            .iter()
            .find(|p| p.start == off)
            .and_then(|p| p.pc)
            .filter(|&pc| {
                // The first part of its slot: a branch there enters the instruction.
                parts.iter().find(|q| q.pc == Some(pc)).map(|q| q.start) == Some(off)
            })
    };
    let mut fmt = GasFormatter::new();
    fmt.options_mut().set_space_after_operand_separator(true);
    fmt.options_mut().set_first_operand_char_index(8);
    fmt.options_mut().set_uppercase_hex(false);
    fmt.options_mut().set_branch_leading_zeros(false);
    let code_end = code_end.min(code.len());
    let mut dec = Decoder::with_ip(64, &code[..code_end], 0, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut text = String::new();
    while dec.can_decode() {
        let insn = dec.decode();
        let offset = insn.ip() as usize;
        text.clear();
        if insn.is_invalid() {
            text.push_str("(bad)");
        } else {
            fmt.format(&insn, &mut text);
        }
        let mut note = None;
        for op in 0..insn.op_count() {
            match insn.op_kind(op) {
                OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16 => {
                    let target = insn.near_branch_target() as usize;
                    if let Some(pc) = starts_slot(target) {
                        note = Some(format!("pc {pc}"));
                    } else if let Some((_, name)) = names
                        .iter()
                        .find(|(a, _)| *a == addr.wrapping_add(target as u64))
                    {
                        note = Some((*name).to_string());
                    }
                }
                OpKind::Immediate64 => {
                    let imm = insn.immediate64();
                    if let Some((_, name)) = names.iter().find(|(a, _)| *a == imm) {
                        note = Some((*name).to_string());
                    }
                }
                _ => {}
            }
        }
        if let Some(n) = note {
            text.push_str("  # ");
            text.push_str(&n);
        }
        out.push(HostInsn {
            offset,
            len: insn.len(),
            text: text.clone(),
            pc: pc_at(offset),
        });
    }
    out.extend(data(code, dec.ip() as usize));
    out
}

/// The bytes of `code` from `from` on, which are constants (the wide ones Cranelift loads
/// relative to the instruction pointer), as `.quad` lines at each aligned 8 bytes and `.byte`
/// lines around them.
// Called by the x86-64 decoder only (and this module's tests).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn data(code: &[u8], from: usize) -> Vec<HostInsn> {
    let mut out = Vec::new();
    let mut at = from;
    while at < code.len() {
        let len = if at % 8 == 0 && at + 8 <= code.len() {
            8
        } else {
            (8 - at % 8).min(code.len() - at)
        };
        let bytes = &code[at..at + len];
        let text = if len == 8 {
            let mut q = [0; 8];
            q.copy_from_slice(bytes);
            format!(".quad   {:#x}", u64::from_le_bytes(q))
        } else {
            let b: Vec<String> = bytes.iter().map(|b| format!("{b:#x}")).collect();
            format!(".byte   {}", b.join(", "))
        };
        out.push(HostInsn {
            offset: at,
            len,
            text,
            pc: None,
        });
        at += len;
    }
    out
}

/// No disassembler for this host: [`Listing::cranelift`] has Cranelift's text.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn decode(
    _addr: u64,
    _code: &[u8],
    _code_end: usize,
    _parts: &[CodePart],
    _names: &[(u64, &str)],
) -> Vec<HostInsn> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_go_to_the_range_after_and_neighbours_merge() {
        let p = parts(
            20,
            &[
                (2, 5, Some(0)),
                (5, 8, Some(0)),
                (8, 9, Some(1)),
                (12, 15, None),
            ],
        );
        let want = [(0, 8, Some(0)), (8, 9, Some(1)), (9, 20, None)]
            .map(|(start, end, pc)| CodePart { start, end, pc });
        assert_eq!(p, want);
    }

    #[test]
    fn data_is_quads_where_aligned() {
        let code: Vec<u8> = (0..20).collect();
        let d = data(&code, 5);
        let got: Vec<(usize, usize, &str)> = d
            .iter()
            .map(|i| (i.offset, i.len, i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (5, 3, ".byte   0x5, 0x6, 0x7"),
                (8, 8, ".quad   0xf0e0d0c0b0a0908"),
                (16, 4, ".byte   0x10, 0x11, 0x12, 0x13"),
            ]
        );
        assert!(data(&code, 20).is_empty());
    }

    #[test]
    fn parts_never_overlap_or_pass_the_end() {
        let p = parts(10, &[(0, 6, Some(3)), (4, 12, Some(4))]);
        assert_eq!(
            p,
            [
                CodePart {
                    start: 0,
                    end: 6,
                    pc: Some(3)
                },
                CodePart {
                    start: 6,
                    end: 10,
                    pc: Some(4)
                }
            ]
        );
        assert_eq!(parts(0, &[]), []);
    }
}
