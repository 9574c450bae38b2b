//! Which registers are live (may be read before written) at each instruction: a backward
//! dataflow over the CFG, as the kernel's `compute_live_registers` does. State pruning ignores
//! dead registers, so two states that differ only in them are the same state.

use bpfsim_vm::isa::{AtomicOp, CallTarget, Insn, PacketMode, Source};
use bpfsim_vm::spec::{proto, ProgType};

fn bit(r: u8) -> u16 {
    1 << r
}

/// (registers read, registers written) by one instruction.
fn uses_defs(insn: &Insn, prog_type: ProgType) -> (u16, u16) {
    let src_bits = |s: Source| match s {
        Source::Reg(r) => bit(r.num()),
        Source::Imm(_) => 0,
    };
    let r1_5: u16 = 0b11_1110;
    match *insn {
        Insn::Alu { op, dst, src, .. } => {
            let d = bit(dst.num());
            let u = if op == bpfsim_vm::isa::AluOp::Mov {
                0
            } else {
                d
            };
            (u | src_bits(src), d)
        }
        Insn::Neg { dst, .. } | Insn::Endian { dst, .. } => (bit(dst.num()), bit(dst.num())),
        Insn::MovSx { dst, src, .. } => (bit(src.num()), bit(dst.num())),
        Insn::LdImm64 { dst, .. } => (0, bit(dst.num())),
        Insn::LoadPacket { mode, .. } => {
            // The kernel counts every register as read (`compute_insn_live_regs`): a failed
            // load ends the program from here.
            let u = 0x3ff
                | match mode {
                    PacketMode::Ind(r) => bit(r.num()),
                    PacketMode::Abs => 0,
                };
            (u, 1 | r1_5)
        }
        Insn::Load { dst, src, .. } => (bit(src.num()), bit(dst.num())),
        Insn::Store { dst, src, .. } => (bit(dst.num()) | src_bits(src), 0),
        Insn::Atomic { op, dst, src, .. } => match op {
            AtomicOp::LoadAcquire => (bit(src.num()), bit(dst.num())),
            AtomicOp::StoreRelease => (bit(dst.num()) | bit(src.num()), 0),
            AtomicOp::CmpXchg => (bit(dst.num()) | bit(src.num()) | 1, 1),
            AtomicOp::Xchg
            | AtomicOp::Add { fetch: true }
            | AtomicOp::Or { fetch: true }
            | AtomicOp::And { fetch: true }
            | AtomicOp::Xor { fetch: true } => (bit(dst.num()) | bit(src.num()), bit(src.num())),
            _ => (bit(dst.num()) | bit(src.num()), 0),
        },
        Insn::Jmp { dst, src, .. } => (bit(dst.num()) | src_bits(src), 0),
        Insn::Ja { .. } | Insn::Gotol { .. } => (0, 0),
        Insn::Call(CallTarget::Helper(id)) => {
            // A helper the program type may not call counts as reading r1-r5
            // (`get_call_summary` fails; the call is refused later).
            let n = proto::proto_for(prog_type, id as u32).map_or(5, |p| p.arg_count());
            let uses = (1..=n as u8).fold(0, |a, r| a | bit(r));
            (uses, 1 | r1_5)
        }
        Insn::Call(_) | Insn::Callx { .. } => (r1_5, 1 | r1_5),
        Insn::Exit => (1, 0),
    }
}

/// Live registers on entry to each instruction (by instruction index), bit n for rN.
pub fn live_registers(insns: &[Insn], pcs: &[usize], prog_type: ProgType) -> Vec<u16> {
    let n = insns.len();
    let total = pcs.last().map_or(0, |&p| p + insns[n - 1].slots());
    let mut at = vec![usize::MAX; total + 1];
    for (i, &pc) in pcs.iter().enumerate() {
        at[pc] = i;
    }
    let succs = |i: usize| -> Vec<usize> {
        let next = pcs[i] + insns[i].slots();
        let to = |pc: i64| {
            usize::try_from(pc)
                .ok()
                .and_then(|p| at.get(p).copied())
                .filter(|&j| j != usize::MAX)
        };
        match insns[i] {
            Insn::Exit => vec![],
            Insn::Ja { .. } | Insn::Gotol { .. } => {
                to(next as i64 + insns[i].jump_offset().unwrap_or(0) as i64)
                    .into_iter()
                    .collect()
            }
            Insn::Jmp { off, .. } => [to(next as i64), to(next as i64 + off as i64)]
                .into_iter()
                .flatten()
                .collect(),
            _ => to(next as i64).into_iter().collect(),
        }
    };
    let ud: Vec<(u16, u16)> = insns.iter().map(|i| uses_defs(i, prog_type)).collect();
    let mut live = vec![0u16; n];
    let mut changed = true;
    while changed {
        changed = false;
        for i in (0..n).rev() {
            let out = succs(i).iter().fold(0u16, |a, &s| a | live[s]);
            let v = ud[i].0 | (out & !ud[i].1);
            if v != live[i] {
                live[i] = v;
                changed = true;
            }
        }
    }
    live
}
