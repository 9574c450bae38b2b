//! Which registers a later instruction may read: the registers a hand-over to the interpreter
//! must carry. A register no path reads before writing it is never observed (a run's result is
//! `r0`, its count, memory and the host's state, never the other registers), so a hand-over
//! may give the interpreter anything for it.

use bpfsim_vm::isa::{AluOp, CallTarget, Insn, Source};

/// Every register, `r0`-`r10`.
const ALL: u16 = (1 << 11) - 1;

/// The registers `insn` may read (a superset). A local call's callee and an exit that returns
/// to a caller may read any; an exit of a main program that nothing calls reads `r0`.
fn reads(insn: &Insn, main_exit: bool) -> u16 {
    match insn {
        Insn::Exit if main_exit => 1,
        Insn::Exit | Insn::Call(CallTarget::Local(_)) | Insn::LoadPacket { .. } => ALL,
        Insn::Call(_) => 0b11_1110,
        Insn::Alu {
            op: AluOp::Mov,
            src: Source::Reg(s),
            ..
        } => 1 << s.index(),
        Insn::Alu {
            op: AluOp::Mov,
            src: Source::Imm(_),
            ..
        } => 0,
        _ => super::regs_read(insn),
    }
}

/// The registers `insn` surely overwrites when the run goes on after it (a subset).
fn writes(insn: &Insn) -> u16 {
    let r = |reg: bpfsim_vm::isa::Reg| 1u16 << reg.index();
    match insn {
        Insn::Alu { dst, .. }
        | Insn::Neg { dst, .. }
        | Insn::MovSx { dst, .. }
        | Insn::Endian { dst, .. }
        | Insn::LdImm64 { dst, .. }
        | Insn::Load { dst, .. } => r(*dst),
        // A helper's result.
        Insn::Call(CallTarget::Helper(_)) | Insn::Callx { .. } => 1,
        _ => 0,
    }
}

/// For each slot that starts an instruction, the registers some path from there may read
/// before writing them (live on entry to the instruction); 0 elsewhere. Slot `pcs[i]` holds
/// `insns[i]`; `subprogs` are the subprograms' first slots.
pub(super) fn live_in(insns: &[Insn], pcs: &[usize], subprogs: &[usize]) -> Vec<u16> {
    let slots = pcs.last().map_or(0, |&pc| pc + 2);
    let mut live = vec![0u16; slots + 1];
    // The main program's exits end the run, unless a call leads to slot 0.
    let main_called = insns.iter().enumerate().any(|(i, insn)| match insn {
        Insn::Call(CallTarget::Local(off)) => pcs[i] as i64 + 1 + *off as i64 == 0,
        _ => false,
    });
    let main_end = subprogs.get(1).copied().unwrap_or(usize::MAX);
    let at = |live: &[u16], s: usize| live.get(s).copied().unwrap_or(ALL);
    // Backward passes until nothing changes: loops carry liveness to their heads.
    loop {
        let mut changed = false;
        for i in (0..insns.len()).rev() {
            let insn = &insns[i];
            let pc = pcs[i];
            let next = pc + insn.slots();
            let target = insn
                .jump_offset()
                .map(|off| (next as i64 + off as i64) as usize);
            let out = match insn {
                Insn::Exit => 0,
                Insn::Ja { .. } | Insn::Gotol { .. } => target.map_or(ALL, |t| at(&live, t)),
                Insn::Jmp { .. } => at(&live, next) | target.map_or(ALL, |t| at(&live, t)),
                _ => at(&live, next),
            };
            let main_exit = !main_called && pc < main_end;
            let v = reads(insn, main_exit) | (out & !writes(insn));
            if live[pc] != v {
                live[pc] = v;
                changed = true;
            }
        }
        if !changed {
            return live;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfsim_vm::asm::assemble;
    use bpfsim_vm::Program;

    fn live(src: &str) -> Vec<u16> {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let (pcs, insns): (Vec<usize>, Vec<Insn>) = prog.iter().map(|(pc, i)| (pc, *i)).unzip();
        live_in(&insns, &pcs, prog.subprograms())
    }

    #[test]
    fn straight_line_and_branches() {
        // 0: r3 = 1; 1: call 5; 2: if r6 > 0 goto 4; 3: r0 = r3; 4: exit
        let l = live("mov %r3, 1\ncall 5\njgt %r6, 0, +1\nmov %r0, %r3\nexit");
        assert_eq!(l[4], 1, "a main exit reads r0");
        assert_eq!(l[3], 1 << 3, "r0 written, r3 read");
        assert_eq!(l[2], 1 << 6 | 1 << 3 | 1, "both paths, and the jump's r6");
        // The call writes r0 and reads r1-r5.
        assert_eq!(l[1], 1 << 6 | 1 << 3 | 0b11_1110);
        assert_eq!(l[0] & 1 << 3, 0, "r3 written first");
    }

    #[test]
    fn loops_carry_liveness_to_their_head() {
        // r7 is read at the loop's end only, through the back edge.
        let l = live("mov %r0, 0\nadd %r0, 1\njlt %r0, %r7, -2\nexit");
        assert_ne!(l[1] & 1 << 7, 0);
        assert_ne!(l[0] & 1 << 7, 0);
    }

    #[test]
    fn calls_and_their_exits_keep_everything() {
        let l = live("mov %r4, 1\ncall local sub\nexit\nsub:\nmov %r0, 1\nexit");
        assert_eq!(l[1], ALL, "a local call may read any register");
        assert_eq!(l[4], ALL, "a subprogram's exit returns to its caller");
        assert_eq!(l[2], 1);
        // A main program that a call leads back to: its exit returns too.
        let l = live("top:\nmov %r0, 1\njeq %r1, 0, +1\ncall local top\nexit");
        assert_eq!(l[3], ALL);
    }
}
