//! The structural passes that run before `do_check`, in the kernel's order: `check_subprogs`
//! (jumps within their subprogram, the last instruction an exit or a jump) and `check_cfg`
//! (every instruction reachable).

use bpfsim_vm::isa::{CallTarget, Imm64, Insn};
use bpfsim_vm::Program;

pub mod liveness;

/// Slot index of each instruction (lddw takes two slots).
pub type Slots = Vec<usize>;

/// `check_subprogs` (through the VM's structural checks, which use the kernel's messages) and
/// `check_cfg`'s reachability.
/// `maps` runs between the two, where the kernel's `resolve_pseudo_ldimm64` checks each map the
/// program references.
pub fn structure(
    pcs: &Slots,
    insns: &[Insn],
    maps: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    if let Err(e) = Program::new(insns.to_vec()) {
        // A jump into the second half of an lddw leaves the lddw itself unvisited: the kernel's
        // check_cfg reports it as unreachable.
        if let bpfsim_vm::program::StructureErrorKind::JumpIntoLdImm64(pc) = e.kind {
            return Err(format!("unreachable insn {pc}"));
        }
        return Err(e.kind.to_string());
    }
    maps()?;
    let n = insns.len();
    let total = pcs.last().map_or(0, |&p| p + insns[n - 1].slots());
    let mut at = vec![None; total];
    for (i, &pc) in pcs.iter().enumerate() {
        at[pc] = Some(i);
    }
    let idx = |pc: usize| at.get(pc).copied().flatten();
    // Entry points: the main program and every subprogram (called or used as a callback).
    let mut roots = vec![0usize];
    for (i, insn) in insns.iter().enumerate() {
        let off = match *insn {
            Insn::Call(CallTarget::Local(off)) => off,
            Insn::LdImm64 {
                imm: Imm64::Func(off),
                ..
            } => off,
            _ => continue,
        };
        roots.push((pcs[i] as i64 + 1 + off as i64) as usize);
    }
    let mut seen = vec![false; n];
    let mut work: Vec<usize> = roots.iter().filter_map(|&pc| idx(pc)).collect();
    while let Some(i) = work.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let pc = pcs[i];
        let next = pc + insns[i].slots();
        let mut push = |pc: usize| {
            if let Some(j) = idx(pc) {
                work.push(j);
            }
        };
        match insns[i] {
            Insn::Exit => {}
            Insn::Ja { off } => push((next as i64 + off as i64) as usize),
            Insn::Gotol { off } => push((next as i64 + off as i64) as usize),
            Insn::Jmp { off, .. } => {
                push(next);
                push((next as i64 + off as i64) as usize);
            }
            _ => push(next),
        }
    }
    match seen.iter().position(|s| !s) {
        Some(i) => Err(format!("unreachable insn {}", pcs[i])),
        None => Ok(()),
    }
}
