//! A decoded program with the structural checks every engine relies on: jump and call targets
//! inside the program and inside their subprogram, never into the middle of `lddw`, and no
//! subprogram that can fall through its end. The messages are the kernel's, with positions.

use crate::isa::{self, CallTarget, DecodeError, Imm64, Insn};

/// The kernel's limit on program size in slots (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_SLOTS: usize = 1_000_000;

#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum StructureErrorKind {
    #[error("program is empty")]
    Empty,
    #[error("program has {0} instructions, more than the limit of {MAX_SLOTS}")]
    TooLong(usize),
    #[error("jump out of range from insn {from} to {to}")]
    JumpOutOfRange { from: usize, to: i64 },
    #[error("jump into the middle of ldimm64 insn {0}")]
    JumpIntoLdImm64(usize),
    #[error("call to invalid destination (insn {to})")]
    BadCallTarget { to: i64 },
    #[error("last insn is not an exit or jmp")]
    FallThrough,
}

/// A structural fault, at slot `pc`.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("instruction {pc}: {kind}")]
pub struct StructureError {
    pub pc: usize,
    pub kind: StructureErrorKind,
}

/// Why bytecode is not a runnable program.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Structure(#[from] StructureError),
}

impl LoadError {
    /// Slot index of the offending instruction.
    pub fn pc(&self) -> usize {
        match self {
            LoadError::Decode(e) => e.pc,
            LoadError::Structure(e) => e.pc,
        }
    }
}

/// A structurally valid program. Indices are slots (`lddw` takes two), as in the kernel's logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
    /// Slot of each entry of `insns`.
    pcs: Vec<u32>,
    slots: usize,
    /// First slot of every subprogram, ascending; the main program starts at 0.
    subprogs: Vec<usize>,
}

impl Program {
    pub fn from_bytes(bytes: &[u8]) -> Result<Program, LoadError> {
        Ok(Program::new(isa::decode(bytes)?)?)
    }

    pub fn new(insns: Vec<Insn>) -> Result<Program, StructureError> {
        let mut pcs = Vec::with_capacity(insns.len());
        let mut slots = 0usize;
        for insn in &insns {
            pcs.push(slots as u32);
            slots += insn.slots();
            if slots > MAX_SLOTS {
                return Err(StructureError {
                    pc: 0,
                    kind: StructureErrorKind::TooLong(slots),
                });
            }
        }
        if insns.is_empty() {
            return Err(StructureError {
                pc: 0,
                kind: StructureErrorKind::Empty,
            });
        }
        // `true` where an instruction starts, so that targets inside an lddw can be told apart.
        let mut starts = vec![false; slots];
        for &pc in &pcs {
            starts[pc as usize] = true;
        }
        let target = |pc: u32, off: i32| pc as i64 + 1 + off as i64;
        let mut subprogs = vec![0usize];
        for (insn, &pc) in insns.iter().zip(&pcs) {
            let to = match *insn {
                Insn::Call(CallTarget::Local(off)) => target(pc, off),
                Insn::LdImm64 {
                    imm: Imm64::Func(off),
                    ..
                } => target(pc, off),
                _ => continue,
            };
            if to < 0 || to >= slots as i64 || !starts[to as usize] {
                return Err(StructureError {
                    pc: pc as usize,
                    kind: StructureErrorKind::BadCallTarget { to },
                });
            }
            subprogs.push(to as usize);
        }
        subprogs.sort_unstable();
        subprogs.dedup();

        for (i, (insn, &pc)) in insns.iter().zip(&pcs).enumerate() {
            let pc = pc as usize;
            let sub = subprogs.partition_point(|&s| s <= pc) - 1;
            let (lo, hi) = (
                subprogs[sub],
                subprogs.get(sub + 1).copied().unwrap_or(slots),
            );
            if let Some(off) = insn.jump_offset() {
                let to = target(pc as u32, off);
                if to < lo as i64 || to >= hi as i64 {
                    return Err(StructureError {
                        pc,
                        kind: StructureErrorKind::JumpOutOfRange { from: pc, to },
                    });
                }
                if !starts[to as usize] {
                    return Err(StructureError {
                        pc,
                        kind: StructureErrorKind::JumpIntoLdImm64(to as usize - 1),
                    });
                }
            }
            let last_of_sub = pcs.get(i + 1).is_none_or(|&next| next as usize >= hi);
            if last_of_sub && !matches!(insn, Insn::Exit | Insn::Ja { .. } | Insn::Gotol { .. }) {
                return Err(StructureError {
                    pc,
                    kind: StructureErrorKind::FallThrough,
                });
            }
        }
        Ok(Program {
            insns,
            pcs,
            slots,
            subprogs,
        })
    }

    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// `(slot, instruction)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Insn)> + '_ {
        self.pcs.iter().map(|&p| p as usize).zip(&self.insns)
    }

    /// Length in 8-byte slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// First slot of each subprogram, the main program's (0) first.
    pub fn subprograms(&self) -> &[usize] {
        &self.subprogs
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        isa::encode(&self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{Reg, Source, Width};

    fn err(insns: Vec<Insn>) -> StructureError {
        Program::new(insns).unwrap_err()
    }

    const EXIT: Insn = Insn::Exit;
    const LD: Insn = Insn::LdImm64 {
        dst: Reg::R0,
        imm: Imm64::Imm(1),
    };

    #[test]
    fn structural_faults_are_reported_with_the_kernel_message() {
        assert_eq!(err(vec![]).kind, StructureErrorKind::Empty);
        assert_eq!(
            err(vec![Insn::Ja { off: 5 }, EXIT]).to_string(),
            "instruction 0: jump out of range from insn 0 to 6"
        );
        assert_eq!(
            err(vec![Insn::Ja { off: 1 }, LD, EXIT]).kind,
            StructureErrorKind::JumpIntoLdImm64(1)
        );
        let mov = Insn::Alu {
            width: Width::W64,
            op: crate::isa::AluOp::Mov,
            dst: Reg::R0,
            src: Source::Imm(0),
        };
        assert_eq!(err(vec![mov]).kind, StructureErrorKind::FallThrough);
        // A jump may not leave its subprogram: here from main (0..2) into the callee at 2.
        let e = err(vec![
            Insn::Call(CallTarget::Local(1)),
            Insn::Ja { off: 0 },
            EXIT,
        ]);
        assert_eq!(
            e.kind,
            StructureErrorKind::JumpOutOfRange { from: 1, to: 2 }
        );
        assert!(matches!(
            err(vec![Insn::Call(CallTarget::Local(7)), EXIT]).kind,
            StructureErrorKind::BadCallTarget { to: 8 }
        ));
    }

    #[test]
    fn subprograms_and_slots() {
        let p = Program::new(vec![LD, Insn::Call(CallTarget::Local(1)), EXIT, EXIT]).unwrap();
        assert_eq!(p.slots(), 5);
        assert_eq!(p.subprograms(), &[0, 4]);
        assert_eq!(
            p.iter().map(|(pc, _)| pc).collect::<Vec<_>>(),
            vec![0, 2, 3, 4]
        );
    }
}
