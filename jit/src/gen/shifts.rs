//! Shift amounts held in registers across a loop, so that x86's BMI2 three-operand shifts
//! (`shlx`, `shrx`, `sarx`) replace BPF's `mov dst, src; lsh dst, k`: the copy costs a slot in
//! the front end on every trip, and on loops of independent chains (`alu_chains`: four
//! xorshifts, 40 host instructions a trip, 12 of them copies) the front end is what bounds the
//! loop. Cranelift takes an immediate amount into the two-operand `shl`, so the amount must
//! come in a register it cannot see to be a constant: a load from [`AMOUNTS`], made once on
//! the loop's entry edge.

use bpfsim_vm::isa::{AluOp, Insn, Source};
use cranelift_codegen::ir::{InstBuilder, MemFlags, Value};

use super::{Gen, I64};

/// The most amounts one loop holds: each takes a register for the whole loop.
pub(super) const MAX_AMOUNTS: usize = 3;

/// The most instructions of a loop whose amounts are hoisted: in a longer one the registers
/// they take are worth more than the copies they save.
const MAX_LOOP: usize = 96;

/// Every shift amount an instruction can encode, as the loads of the entry edge read them.
pub(super) static AMOUNTS: [u64; 64] = {
    let mut a = [0u64; 64];
    let mut i = 0;
    while i < 64 {
        a[i] = i as u64;
        i += 1;
    }
    a
};

/// Whether the host has three-operand shifts with a register amount.
pub(super) fn host_has_them() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The shift amount of `insn` (a shift by an immediate in `0..64`), if it is one.
pub(super) fn amount(insn: &Insn) -> Option<u8> {
    match *insn {
        Insn::Alu {
            op: AluOp::Lsh | AluOp::Rsh | AluOp::Arsh,
            src: Source::Imm(k),
            ..
        } => u8::try_from(k).ok().filter(|&k| k < 64),
        _ => None,
    }
}

/// `a; b` is clang's zero or sign extension of a 32-bit value: `lsh r, 32; rsh r, 32`
/// (or `arsh`).
fn is_extension_pair(a: &Insn, b: &Insn) -> bool {
    use bpfsim_vm::isa::Width;
    match (*a, *b) {
        (
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Lsh,
                dst,
                src: Source::Imm(32),
            },
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Rsh | AluOp::Arsh,
                dst: d,
                src: Source::Imm(32),
            },
        ) => d == dst,
        _ => false,
    }
}

/// For each loop head (by slot) whose amounts are worth holding: the loop's last slot and the
/// amounts, most used first. Such a loop is entered only by falling into its head from an
/// instruction that is not a jump (the edge where the loads go, and whose block dominates the
/// loop), has no jump into it from outside, no call, no subprogram's start, and at most
/// [`MAX_LOOP`] instructions.
pub(super) fn loops(
    insns: &[Insn],
    pcs: &[usize],
    subprogs: &[usize],
) -> Vec<Option<(usize, Vec<u8>)>> {
    let slots = pcs.last().map_or(0, |&p| p + 2);
    let mut out = vec![None; slots + 1];
    let target = |i: usize| -> Option<i64> {
        Some(pcs[i] as i64 + insns[i].slots() as i64 + insns[i].jump_offset()? as i64)
    };
    // Each head's last back edge, by instruction index.
    let mut latch: Vec<Option<usize>> = vec![None; insns.len()];
    let index_of = |slot: i64| pcs.binary_search(&usize::try_from(slot).ok()?).ok();
    for (i, &pc) in pcs.iter().enumerate() {
        if let Some(t) = target(i).filter(|&t| t <= pc as i64) {
            if let Some(h) = index_of(t) {
                latch[h] = Some(latch[h].map_or(i, |l: usize| l.max(i)));
            }
        }
    }
    for (ih, l) in latch.iter().enumerate() {
        let Some(ib) = *l else { continue };
        if ih == 0 || ib - ih + 1 > MAX_LOOP {
            continue;
        }
        let (h, b) = (pcs[ih], pcs[ib]);
        let prev = &insns[ih - 1];
        if prev.jump_offset().is_some()
            || matches!(prev, Insn::Exit | Insn::Call(_) | Insn::Callx { .. })
            || subprogs.iter().any(|&s| (h..=b).contains(&s))
            || insns[ih..=ib].iter().any(|i| {
                matches!(
                    i,
                    Insn::Call(_) | Insn::Callx { .. } | Insn::LoadPacket { .. }
                )
            })
        {
            continue;
        }
        let entered_elsewhere = (0..insns.len()).any(|i| {
            let inside = (ih..=ib).contains(&i);
            target(i).is_some_and(|t| !inside && t >= h as i64 && t <= b as i64)
        });
        if entered_elsewhere {
            continue;
        }
        let mut uses = [0u32; 64];
        let mut fused = false;
        for (j, insn) in insns[ih..=ib].iter().enumerate() {
            // `lsh r, 32; rsh r, 32` (or `arsh`) is one extension (`Gen::extend_pair`),
            // which takes no amount.
            if std::mem::take(&mut fused) {
                continue;
            }
            if let Some(next) = insns.get(ih + j + 1) {
                if is_extension_pair(insn, next) {
                    fused = true;
                    continue;
                }
            }
            if let Some(k) = amount(insn) {
                uses[k as usize] += 1;
            }
        }
        let mut ks: Vec<u8> = (0..64u8).filter(|&k| uses[k as usize] > 0).collect();
        if ks.is_empty() {
            continue;
        }
        ks.sort_by_key(|&k| std::cmp::Reverse(uses[k as usize]));
        ks.truncate(MAX_AMOUNTS);
        out[h] = Some((b, ks));
    }
    out
}

impl Gen<'_, '_> {
    /// On the edge falling into the loop at `pc`: load the amounts it holds
    /// ([`loops`]) that an enclosing loop does not already hold. The block of this edge
    /// dominates the loop, so the loaded values serve all of it.
    pub(super) fn load_shift_amounts(&mut self, pc: usize) {
        let Some(Some((last, ks))) = self.shift_loops.get(pc).cloned() else {
            return;
        };
        for k in ks {
            if self.shift_regs.iter().any(|&(_, held, _)| held == k) {
                continue;
            }
            let at = self.iconst(&AMOUNTS[k as usize] as *const u64 as u64);
            let v = self
                .b
                .ins()
                .load(I64, MemFlags::trusted().with_readonly(), at, 0);
            self.shift_regs.push((last, k, v));
        }
    }

    /// The register holding shift amount `k` here, if a loop holds it.
    pub(super) fn shift_amount(&self, k: i32) -> Option<Value> {
        self.shift_regs
            .iter()
            .find(|&&(_, held, _)| i32::from(held) == k)
            .map(|&(_, _, v)| v)
    }
}
