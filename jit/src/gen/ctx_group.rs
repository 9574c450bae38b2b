//! Groups of context field loads through one register value: the first load of a group
//! compares the register with the context's address and checks that the run keeps every field
//! the group reads (`VmCtx::ctx_base`, `VmCtx::ctx_kept`), and the others read their kept value
//! with no compare, as the kernel's rewritten context loads do. Alone, each hinted load compares
//! its own address with its field's key (`Gen::ctx_field_load`): four instructions more per
//! field in a program that copies twenty of them (`tc_ctx_fields`).
//!
//! A group runs from its first load to the last load through the same register value before
//! anything that could change what the run keeps or where the register points: a leader, an
//! instruction writing the register, a call (helpers, and the shims behind any access not
//! proven: they may read the context afresh), a context store (which may stop keeping a field
//! the JIT's own proofs use). Between its loads the code only moves forward, so the first
//! load's check dominates the others; a failed check hands the run to the interpreter at the
//! first load, before any of the group's effects.

use std::mem::offset_of;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use bpfsim_vm::isa::{Insn, Reg};

use super::Gen;
use crate::shims::VmCtx;

/// A context load's part in a group, by slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CtxGroup {
    Alone,
    /// The first load: the slots of the group's fields, as bits.
    First {
        fields: u64,
    },
    /// A later load of the group that starts at this slot.
    Later {
        first: usize,
    },
}

impl Gen<'_, '_> {
    /// The groups of the program's hinted context loads (see the module's docs).
    pub(super) fn ctx_groups(&self, insns: &[Insn]) -> Vec<CtxGroup> {
        let slots = self.pcs.last().map_or(0, |&p| p + 2);
        let mut out = vec![CtxGroup::Alone; slots];
        let leader = |pc: usize| {
            self.blocks.get(pc).is_some_and(|b| b.is_some())
                || self.subprogs.binary_search(&pc).is_ok()
        };
        for (i, insn) in insns.iter().enumerate() {
            let pc = self.pcs[i];
            let Insn::Load {
                size,
                src,
                dst,
                off,
                ..
            } = *insn
            else {
                continue;
            };
            if out[pc] != CtxGroup::Alone || src == Reg::FP {
                continue;
            }
            let Some(slot) = self.ctx_slot(pc, size, off) else {
                continue;
            };
            let mut fields = 1u64 << slot;
            let mut later = Vec::new();
            let mut j = i + 1;
            // A load that overwrites its own address register ends its group.
            let mut open = dst != src;
            while open && j < insns.len() {
                let at = self.pcs[j];
                if leader(at) {
                    break;
                }
                match insns[j] {
                    Insn::Load {
                        size,
                        src: s,
                        dst: d,
                        off,
                        ..
                    } => {
                        match self.ctx_slot(at, size, off) {
                            Some(k) if s == src => {
                                fields |= 1 << k;
                                later.push(at);
                            }
                            // Another register's context load: a compare and a hand-over,
                            // no call.
                            Some(_) => {}
                            None if self.calls_nothing(at) || self.fp_direct(s, off, size) => {}
                            None => break,
                        }
                        open = d != src;
                    }
                    Insn::Store { dst, off, size, .. } => {
                        if !self.calls_nothing(at) && !self.fp_direct(dst, off, size) {
                            break;
                        }
                    }
                    Insn::Alu { dst: d, .. }
                    | Insn::Neg { dst: d, .. }
                    | Insn::MovSx { dst: d, .. }
                    | Insn::Endian { dst: d, .. }
                    | Insn::LdImm64 { dst: d, .. } => open = d != src,
                    _ => break,
                }
                j += 1;
            }
            // Two loads check as much alone (a compare each) as together (the address, then
            // the fields' bits), and the group's words sit on another line of the context.
            if later.len() >= 2 {
                out[pc] = CtxGroup::First { fields };
                for at in later {
                    out[at] = CtxGroup::Later { first: pc };
                }
            }
        }
        out
    }

    /// Whether the access at `pc` (not a context one) compiles without a call: a proven packet,
    /// map value or stack access (clamped), or one the verifier says never touches the context
    /// (a fault goes straight to the trap).
    fn calls_nothing(&self, pc: usize) -> bool {
        self.packet.get(pc).copied().unwrap_or(false)
            || self.value_slot(pc).is_some()
            || self.stack_hint(pc)
            || self.no_ctx.get(pc).copied().unwrap_or(false)
    }

    /// Whether `[reg + off]` is an access of the frame at a constant place from `r10` (which no
    /// instruction writes): `Gen::fixed_stack`'s, no check and no call.
    fn fp_direct(&self, reg: Reg, off: i16, size: bpfsim_vm::isa::Size) -> bool {
        let off = off as i64;
        reg == Reg::FP
            && self.fp_fixed
            && !self.writes_fp
            && off >= -(bpfsim_vm::memory::FRAME_SIZE as i64)
            && off + size.bytes() as i64 <= 0
    }

    /// The value of the context load at `pc` of `slot` through `src` (whose value is `s`) when
    /// it is part of a group: the first load checks for the group, the later ones read the
    /// kept value as they are. `None`: alone, or a later load whose group's first load did not
    /// make the check (it took another way): the load compares its own address.
    pub(super) fn ctx_grouped(
        &mut self,
        pc: usize,
        src: Reg,
        s: Value,
        slot: usize,
    ) -> Option<Value> {
        match self.ctx_groups.get(pc).copied().unwrap_or(CtxGroup::Alone) {
            CtxGroup::Alone => return None,
            CtxGroup::Later { first } => match self.ctx_checked {
                // No instruction between the two writes `src` (`ctx_groups`): it holds the
                // value the first load checked, whatever SSA value the builder gives it here.
                Some((r, f)) if r == src && f == first => self.ctx_unchecked.push(pc),
                _ => return None,
            },
            CtxGroup::First { fields } => {
                // Two branches to one cold block: a conjunction of the compares would be two
                // `sete` and a `test` more.
                let miss = self.b.create_block();
                self.b.set_cold_block(miss);
                let base = self.vm_load(offset_of!(VmCtx, ctx_base));
                let here = self.b.ins().icmp(IntCC::Equal, s, base);
                let next = self.cont();
                self.b.ins().brif(here, next, &[], miss, &[]);
                self.switch(next);
                let kept = self.vm_load(offset_of!(VmCtx, ctx_kept));
                let kept = self.b.ins().band_imm(kept, fields as i64);
                let all = self.b.ins().icmp_imm(IntCC::Equal, kept, fields as i64);
                let fast = self.cont();
                self.b.ins().brif(all, fast, &[], miss, &[]);
                self.switch(miss);
                self.hand_over_at(pc);
                self.switch(fast);
                self.ctx_checked = Some((src, pc));
            }
        }
        Some(self.ctx_field_value(slot))
    }
}
