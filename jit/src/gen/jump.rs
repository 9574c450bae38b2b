//! Jumps: unconditional and conditional, each ending its block.

use bpfsim_vm::isa::{Cond, Insn, Reg, Source, Width};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder, InstructionData, Opcode, Value, ValueDef};

use super::memory::Sum;
use super::Gen;

impl Gen<'_, '_> {
    pub(super) fn translate_ja(&mut self, insn: &Insn, next: usize) {
        let off = insn.jump_offset().unwrap_or(0);
        let target = (next as i64 + off as i64) as usize;
        self.leave_block(&[target]);
        let t = self.block_at(target);
        self.b.ins().jump(t, &[]);
    }

    pub(super) fn translate_jmp(
        &mut self,
        width: Width,
        cond: Cond,
        dst: Reg,
        src: Source,
        off: i16,
        next: usize,
    ) {
        let target = (next as i64 + off as i64) as usize;
        if target == next {
            // Both ways lead to the next instruction, and a compare has no effect of its own:
            // a jump there. A branch with one block as both targets had both its edges split
            // by Cranelift (two blocks more for the register allocator, for nothing).
            self.leave_block(&[next]);
            let t = self.block_at(next);
            self.b.ins().jump(t, &[]);
            return;
        }
        let c = self.cond(width, cond, dst, src);
        let ja = |g: &Self, to: usize| g.ja_to.get(to).copied().flatten();
        match (ja(self, target), ja(self, next)) {
            (Some(head), None) => {
                self.went_past[target] = true;
                return self.branch_back(c, true, head, next);
            }
            (None, Some(head)) => {
                self.went_past[next] = true;
                return self.branch_back(c, false, head, target);
            }
            _ => {}
        }
        let (t_carry, f_carry) = (self.can_carry(target), self.can_carry(next));
        if t_carry == f_carry || self.pending == 0 {
            self.leave_block(&[target, next]);
            let t = self.block_at(target);
            let f = self.block_at(next);
            self.brif_to(c, (target, t), (next, f));
            return;
        }
        // One side carries the count on, the other (a join, or a loop's head) needs it taken
        // off: on that edge only, so that the path that stays in straight-line code (a loop's
        // body, typically) does not pay for it.
        let pending = self.pending;
        let mut edges = Vec::new();
        let mut side = |g: &mut Self, to: usize, carry: bool| {
            if carry {
                g.carry[to] = Some(pending as i64);
                g.block_at(to)
            } else {
                let e = g.b.create_block();
                edges.push((e, to));
                e
            }
        };
        let t = side(self, target, t_carry);
        let f = side(self, next, f_carry);
        self.brif_to(c, (target, t), (next, f));
        // Filled once the branch has ended the current block; sealed then, their one
        // predecessor being known.
        for (e, to) in edges {
            self.switch(e);
            self.pending = pending;
            self.flush_as(self.checkpoint[to]);
            let leader = self.block_at(to);
            self.b.ins().jump(leader, &[]);
        }
    }

    /// A conditional branch one side of which (`back` says whether the taken one) goes to a
    /// block that is a lone `ja` to the checkpoint `head` (clang's loop latch: `if (i == n)
    /// break; goto head`): that side branches to `head` itself, the `ja` counted on it. The
    /// count, the `ja`'s included, is taken off before the branch on both sides, the other
    /// side (`other`) getting the `ja` back: carried into it as -1 when it can take a count,
    /// else added back on its edge. The loop's back edge is then the conditional branch alone,
    /// with no block of its own and no `jmp`, and the loop's exit the one that falls through.
    fn branch_back(&mut self, c: Value, back: bool, head: usize, other: usize) {
        self.pending += 1;
        self.flush_as(true);
        let h = self.block_at(head);
        let (o, edge) = if self.can_carry(other) {
            self.carry[other] = Some(-1);
            (self.block_at(other), None)
        } else {
            let e = self.b.create_block();
            (e, Some(e))
        };
        if back {
            self.brif_to(c, (head, h), (other, o));
        } else {
            self.brif_to(c, (other, o), (head, h));
        }
        if let Some(e) = edge {
            self.switch(e);
            let left = self.b.use_var(self.left);
            let v = self.b.ins().iadd_imm(left, 1);
            self.b.def_var(self.left, v);
            let o = self.block_at(other);
            self.b.ins().jump(o, &[]);
        }
    }

    /// `brif c, t, f`, each side given as (the leader it leads to, the block to branch to),
    /// with the address a side that leaves the loop needs made on its own edge (see
    /// [`Gen::exit_address`]).
    fn brif_to(&mut self, c: Value, t: (usize, Block), f: (usize, Block)) {
        let te = self.exit_address(t.0, f.0);
        let fe = self.exit_address(f.0, t.0);
        let edge = |e: &Option<(Block, Reg, Value)>, b: Block| e.as_ref().map_or(b, |e| e.0);
        self.b
            .ins()
            .brif(c, edge(&te, t.1), &[], edge(&fe, f.1), &[]);
        for (e, dest) in [(te, t.1), (fe, f.1)] {
            if let Some((block, r, v)) = e {
                self.switch(block);
                let again = self.remake(v);
                self.set(r, again);
                self.b.ins().jump(dest, &[]);
            }
        }
    }

    /// A branch inside a loop that goes out of it (to `to`) while its other side (`stay`) is a
    /// load through a register it overwrites (`ldxh r5, [r5+0]`: clang's `if (p + 2 >
    /// data_end) break; x = *p`) whose address the block made as a sum (`p = data + i`): the
    /// sum is made again on the loop's exit edge (a cold block), where the register is still
    /// read, so that the loop need not make it. A proven packet load takes its address's low
    /// half from the sum's operands ([`Gen::low32`]), so in the loop the sum then has no use
    /// left and no code. Returns the edge block, the register and its value.
    fn exit_address(&mut self, to: usize, stay: usize) -> Option<(Block, Reg, Value)> {
        let pc = self.block_pc;
        let &(head, end) = self
            .loops
            .iter()
            .filter(|&&(h, e)| h <= pc && pc <= e)
            .min_by_key(|&&(h, e)| e - h)?;
        if (head..=end).contains(&to) || !(head..=end).contains(&stay) {
            return None;
        }
        let r = self.self_load.get(stay).copied().flatten()?;
        let i = r.index();
        if self.block_writes & (1 << i) == 0
            || self.live.get(to).copied().unwrap_or(u16::MAX) & (1 << i) == 0
        {
            return None;
        }
        let v = self.reg(r);
        self.sum_of(v)?;
        let e = self.b.create_block();
        self.b.set_cold_block(e);
        Some((e, r, v))
    }

    /// A new sum of `v`'s operands (`v` a sum, [`Gen::sum_of`]).
    fn remake(&mut self, v: Value) -> Value {
        match self.sum_of(v) {
            Some(Sum::Imm(x, k)) => self.b.ins().iadd_imm(x, k),
            Some(Sum::Regs(x, y)) => self.b.ins().iadd(x, y),
            None => v,
        }
    }

    pub(super) fn cond(&mut self, width: Width, cond: Cond, dst: Reg, src: Source) -> Value {
        let d0 = self.reg(dst);
        if let Some(c) = self.cond_narrow(width, cond, d0, src) {
            return c;
        }
        let s0 = match src {
            Source::Reg(r) => self.reg(r),
            Source::Imm(i) => self.iconst(i as i64 as u64),
        };
        let (a, b) = if width == Width::W32 {
            (
                self.b.ins().ireduce(types::I32, d0),
                self.b.ins().ireduce(types::I32, s0),
            )
        } else {
            (d0, s0)
        };
        let cc = match cond {
            Cond::Eq => IntCC::Equal,
            Cond::Ne => IntCC::NotEqual,
            Cond::Gt => IntCC::UnsignedGreaterThan,
            Cond::Ge => IntCC::UnsignedGreaterThanOrEqual,
            Cond::Lt => IntCC::UnsignedLessThan,
            Cond::Le => IntCC::UnsignedLessThanOrEqual,
            Cond::Sgt => IntCC::SignedGreaterThan,
            Cond::Sge => IntCC::SignedGreaterThanOrEqual,
            Cond::Slt => IntCC::SignedLessThan,
            Cond::Sle => IntCC::SignedLessThanOrEqual,
            Cond::Set => {
                let x = self.b.ins().band(a, b);
                return self.b.ins().icmp_imm(IntCC::NotEqual, x, 0);
            }
        };
        self.b.ins().icmp(cc, a, b)
    }

    /// A 64-bit compare of a zero-extended 32-bit value (clang's `<<= 32; >>= 32` before a
    /// loop's exit test) with a constant from 0 to `i32::MAX` or another such value, as a 32-bit
    /// compare: both sides are below 2^31 or 2^32, so every condition, signed or not, agrees
    /// with the unsigned one on the low halves. The extension then often has no use left (a
    /// move fewer per iteration).
    fn cond_narrow(&mut self, width: Width, cond: Cond, d0: Value, src: Source) -> Option<Value> {
        if width != Width::W64 || cond == Cond::Set {
            return None;
        }
        let a = self.zext32(d0)?;
        let b = match src {
            Source::Imm(i) if i >= 0 => self.b.ins().iconst(types::I32, i as i64),
            Source::Reg(r) => {
                let v = self.reg(r);
                self.zext32(v)?
            }
            Source::Imm(_) => return None,
        };
        let cc = match cond {
            Cond::Eq => IntCC::Equal,
            Cond::Ne => IntCC::NotEqual,
            Cond::Gt | Cond::Sgt => IntCC::UnsignedGreaterThan,
            Cond::Ge | Cond::Sge => IntCC::UnsignedGreaterThanOrEqual,
            Cond::Lt | Cond::Slt => IntCC::UnsignedLessThan,
            Cond::Le | Cond::Sle => IntCC::UnsignedLessThanOrEqual,
            Cond::Set => return None,
        };
        Some(self.b.ins().icmp(cc, a, b))
    }

    /// The 32-bit value `v` is the zero extension of, when its definition says so.
    fn zext32(&self, v: Value) -> Option<Value> {
        let dfg = &self.b.func.dfg;
        let ValueDef::Result(inst, 0) = dfg.value_def(v) else {
            return None;
        };
        match dfg.insts[inst] {
            InstructionData::Unary {
                opcode: Opcode::Uextend,
                arg,
            } if dfg.value_type(arg) == types::I32 => Some(arg),
            _ => None,
        }
    }
}
