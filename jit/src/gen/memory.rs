//! Guest memory: loads, stores, atomics and legacy packet loads, each through the region table
//! (the primary region first), with a cold path into Rust or straight to the fault.

use std::mem::offset_of;

use bpfsim_vm::isa::{AtomicOp, PacketMode, Reg, Size, Source};
use bpfsim_vm::memory::{FIRST_FRAME_REGION, FRAME_SIZE, MAX_FRAMES, REGION_SHIFT};
use bpfsim_vm::TrapCode;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, Block, InstBuilder, InstructionData, MemFlags, Opcode, Type, Value, ValueDef,
};

use super::{bounds, Exit, Fault, Gen, I64};
use crate::atomic_code;
use crate::shims::{self, VmCtx};

impl Gen<'_, '_> {
    pub(super) fn translate_load(
        &mut self,
        pc: usize,
        size: Size,
        signed: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    ) {
        let v = if let Some((top, at)) = self.fixed_stack(src, off, size) {
            self.load_zx_at(size, top, at)
        } else if let Some((p, at)) = self.own_proven(pc, src, off) {
            self.load_zx_at(size, p, at)
        } else if let Some((p, at)) = self.row_proven(pc, src, off) {
            self.load_zx_at(size, p, at)
        } else if let Some(slot) = self.ctx_slot(pc, size, off) {
            let s = self.reg(src);
            match self.ctx_grouped(pc, src, s, slot) {
                Some(v) => v,
                None => {
                    let addr = self.offset(s, off);
                    self.ctx_field_load(pc, addr, slot)
                }
            }
        } else {
            let s = self.reg(src);
            let addr = self.offset(s, off);
            self.load(pc, addr, size)
        };
        let v = if signed && size != Size::DW {
            let n = self.b.ins().ireduce(Self::mem_ty(size), v);
            self.b.ins().sextend(I64, n)
        } else {
            v
        };
        self.set(dst, v);
    }

    pub(super) fn translate_store(
        &mut self,
        pc: usize,
        size: Size,
        dst: Reg,
        off: i16,
        src: Source,
    ) {
        let v = match src {
            Source::Reg(r) => self.reg(r),
            Source::Imm(i) => self.iconst(i as i64 as u64),
        };
        if let Some((top, at)) = self.fixed_stack(dst, off, size) {
            self.store_sized(size, v, top, at);
            return;
        }
        if let Some((p, at)) = self.own_proven(pc, dst, off) {
            self.store_sized(size, v, p, at);
            return;
        }
        if let Some((p, at)) = self.row_proven(pc, dst, off) {
            self.store_sized(size, v, p, at);
            return;
        }
        let d = self.reg(dst);
        let addr = self.offset(d, off);
        if let Some(slot) = self.ctx_store_slot(pc, size, off) {
            self.ctx_field_store(pc, addr, size, v, slot);
            return;
        }
        self.store(pc, addr, size, v);
    }

    pub(super) fn translate_atomic(
        &mut self,
        pc: usize,
        size: Size,
        op: AtomicOp,
        dst: Reg,
        src: Reg,
        off: i16,
    ) {
        let d = self.reg(dst);
        let addr = self.b.ins().iadd_imm(d, off as i64);
        let s = self.reg(src);
        let r0 = self.reg(Reg::R0);
        if crate::value_atomic(op) {
            if let Some((p, at)) = self.row_proven(pc, dst, off) {
                let p = self.b.ins().iadd_imm(p, at as i64);
                self.inline_atomic(p, size, op, src, s, r0);
                return;
            }
            if let Some(slot) = self.value_slot(pc) {
                let p = self.value_clamped(addr, size, true, slot);
                self.inline_atomic(p, size, op, src, s, r0);
                return;
            }
            if self.stack_hint(pc) {
                let p = self.stack_clamped(pc, addr, size);
                self.inline_atomic(p, size, op, src, s, r0);
                return;
            }
        }
        let code = self.iconst(atomic_code(op));
        let sz = self.iconst(size.bytes() as u64);
        let call = self
            .b
            .ins()
            .call(self.shims.atomic, &[self.vm, code, addr, sz, s, r0]);
        let old = self.b.inst_results(call)[0];
        self.check_status(pc);
        if let Some(r) = crate::atomic_result(op, src) {
            self.set(r, old);
        }
    }

    /// An atomic read-modify-write of a proven map value or stack slot ([`crate::value_atomic`])
    /// at host address `p`, clamped: the load, the operation and the store inline, as the shim
    /// does them (runs are single-threaded: no other writer can come between).
    fn inline_atomic(&mut self, p: Value, size: Size, op: AtomicOp, src: Reg, s: Value, r0: Value) {
        let old = self.load_zx(size, p);
        let new = match op {
            AtomicOp::Add { .. } => self.b.ins().iadd(old, s),
            AtomicOp::Or { .. } => self.b.ins().bor(old, s),
            AtomicOp::And { .. } => self.b.ins().band(old, s),
            AtomicOp::Xor { .. } => self.b.ins().bxor(old, s),
            AtomicOp::Xchg => s,
            AtomicOp::CmpXchg => {
                // Compared in the access's width: a 4-byte exchange compares r0's low half.
                let ty = Self::mem_ty(size);
                let (o, e) = if ty == I64 {
                    (old, r0)
                } else {
                    (self.b.ins().ireduce(ty, old), self.b.ins().ireduce(ty, r0))
                };
                let same = self.b.ins().icmp(IntCC::Equal, o, e);
                self.b.ins().select(same, s, old)
            }
            AtomicOp::LoadAcquire | AtomicOp::StoreRelease => {
                unreachable!("inline_atomic admits read-modify-writes only")
            }
        };
        self.store_sized(size, new, p, 0);
        if let Some(r) = crate::atomic_result(op, src) {
            self.set(r, old);
        }
    }

    pub(super) fn translate_ld_packet(
        &mut self,
        pc: usize,
        mode: PacketMode,
        size: Size,
        imm: i32,
    ) {
        let (off, m) = match mode {
            PacketMode::Abs => (self.iconst(imm as i64 as u64), 0x20),
            PacketMode::Ind(r) => {
                let v = self.reg(r);
                let lo = self.b.ins().ireduce(types::I32, v);
                let base = self.b.ins().sextend(I64, lo);
                (self.b.ins().iadd_imm(base, imm as i64), 0x40)
            }
        };
        let sz = self.iconst(size.bytes() as u64);
        let mode = self.iconst(m);
        let call = self
            .b
            .ins()
            .call(self.shims.ld_packet, &[self.vm, off, sz, mode]);
        let v = self.b.inst_results(call)[0];
        self.check_status(pc);
        self.set(Reg::R0, v);
    }

    /// Host pointer for `size` bytes at `addr`, or a jump to `slow` (with nothing).
    /// The host address of `size` bytes at guest `addr` when the region table maps them, else a
    /// jump to `slow`. One branch: an index past the table is replaced by 0, the unmapped null
    /// region whose limits are 0, so it fails the limit check like any out-of-bounds access.
    pub(super) fn translate(&mut self, addr: Value, size: u64, write: bool, slow: Block) -> Value {
        // The primary region first (the packet, or the memory of a raw run): its offset is
        // `addr` less the region's tag, in range exactly when below the per-size bound, so one
        // compare covers both the region and the limit. Everything else walks the table.
        // The table walk is the rare path: laid out after the function's hot code, so that the
        // primary region's path falls through into the access instead of jumping to it.
        let general = self.b.create_block();
        self.b.set_cold_block(general);
        let join = self.b.create_block();
        self.b.append_block_param(join, I64);
        let t = self
            .b
            .ins()
            .iadd_imm(addr, -((shims::PRIMARY_REGION as i64) << REGION_SHIFT));
        let idx = size.trailing_zeros() as usize + if write { 4 } else { 0 };
        let lt = self.vm_load(offset_of!(VmCtx, primary_lt) + 8 * idx);
        let inside = self.b.ins().icmp(IntCC::UnsignedLessThan, t, lt);
        let fast = self.cont();
        self.b.ins().brif(inside, fast, &[], general, &[]);
        self.switch(fast);
        let base = self.vm_load(offset_of!(VmCtx, primary_base));
        let p = self.b.ins().iadd(base, t);
        self.b.ins().jump(join, &[p.into()]);
        self.switch(general);
        let p = self.translate_table(addr, size, write, slow, true);
        self.b.ins().jump(join, &[p.into()]);
        self.switch(join);
        self.b.block_params(join)[0]
    }

    /// [`Self::translate`] for an access the verifier proved never reaches the context and did
    /// not prove a packet access: most likely a map value or a stack slot, so the region table
    /// straight away, without trying the primary region first (which the table covers too, so a
    /// packet access here is still right, one compare slower).
    fn translate_no_ctx(&mut self, addr: Value, size: u64, write: bool, fault: Block) -> Value {
        self.translate_table(addr, size, write, fault, false)
    }

    pub(super) fn translate_table(
        &mut self,
        addr: Value,
        size: u64,
        write: bool,
        slow: Block,
        cold: bool,
    ) -> Value {
        // The table and its length are read from the context at each access rather than kept
        // in variables: two registers fewer across the whole function (fewer spills in loops),
        // for loads that hit L1 and that x86 folds into the compare.
        let region = self.b.ins().ushr_imm(addr, REGION_SHIFT as i64);
        let n = self.vm_load(offset_of!(VmCtx, nregions));
        let inside = self.b.ins().icmp(IntCC::UnsignedLessThan, region, n);
        let zero = self.iconst(0);
        let index = self.b.ins().select(inside, region, zero);
        let table = self.vm_load(offset_of!(VmCtx, regions));
        let row = self.b.ins().imul_imm(index, 24);
        let entry = self.b.ins().iadd(table, row);
        let limit = self
            .b
            .ins()
            .load(I64, MemFlags::trusted(), entry, if write { 16 } else { 8 });
        // The offset is the low 32 bits: a 32-bit move zero-extends, with no mask constant.
        let low = self.low32(addr);
        let off = self.b.ins().uextend(I64, low);
        let end = self.b.ins().iadd_imm(off, size as i64);
        let fits = self
            .b
            .ins()
            .icmp(IntCC::UnsignedLessThanOrEqual, end, limit);
        let ok = self.cont();
        if cold {
            self.b.set_cold_block(ok);
        }
        self.b.ins().brif(fits, ok, &[], slow, &[]);
        self.switch(ok);
        let base = self.b.ins().load(I64, MemFlags::trusted(), entry, 0);
        self.b.ins().iadd(base, off)
    }

    /// `base + off`: no instruction for offset 0 (x64 lowering would recompute the base's own
    /// addition into a second `lea`).
    fn offset(&mut self, base: Value, off: i16) -> Value {
        if off == 0 {
            base
        } else {
            self.b.ins().iadd_imm(base, off as i64)
        }
    }

    /// A load of `size` bytes at host address `p`, zero-extended to 64 bits in the same
    /// instruction (a load then an extend would be two moves at `opt_level` none).
    fn load_zx(&mut self, size: Size, p: Value) -> Value {
        self.load_zx_at(size, p, 0)
    }

    /// A store of `v`'s low `size` bytes at host address `p + off`.
    fn store_sized(&mut self, size: Size, v: Value, p: Value, off: i32) {
        let ty = Self::mem_ty(size);
        let v = if ty == I64 {
            v
        } else {
            self.b.ins().ireduce(ty, v)
        };
        self.b.ins().store(MemFlags::trusted(), v, p, off);
    }

    fn load_zx_at(&mut self, size: Size, p: Value, off: i32) -> Value {
        let f = MemFlags::trusted();
        match size {
            Size::B => self.b.ins().uload8(I64, f, p, off),
            Size::H => self.b.ins().uload16(I64, f, p, off),
            Size::W => self.b.ins().uload32(f, p, off),
            Size::DW => self.b.ins().load(I64, f, p, off),
        }
    }

    /// An access at `r10 + off` (or through a register known to hold `r10` plus a constant,
    /// [`Gen::fp_off`]) wholly inside the current frame's stack, in a program that never writes
    /// `r10`: its address is the frame's, so it needs no check and no proof (the call depth is
    /// at most 7, the offset within the frame by construction). Returns a base (the frame's top,
    /// or with static depths the stack buffer's) and the offset from it, which the access adds
    /// in its own addressing.
    pub(super) fn fixed_stack(&mut self, base: Reg, off: i16, size: Size) -> Option<(Value, i32)> {
        if !self.fp_fixed {
            return None;
        }
        let off = self.fp_off[base.index()]? + off as i64;
        let inside = off >= -(FRAME_SIZE as i64) && off + size.bytes() as i64 <= 0;
        if !inside {
            return None;
        }
        if let Some(base) = self.fixed_stack_base {
            let top = (self.static_depth_here() as i64 + 1) * FRAME_SIZE as i64;
            return Some((base, (top + off) as i32));
        }
        let top = self.b.use_var(self.frame_top);
        Some((top, off as i32))
    }

    /// An access at `[reg + off]` the JIT proved from the program's own bounds checks
    /// (`bounds.rs`): the primary region's base plus the low 32 bits of the address, no clamp,
    /// no branch. Returns the host address and the offset the access adds to it.
    fn own_proven(&mut self, pc: usize, reg: Reg, off: i16) -> Option<(Value, i32)> {
        let how = self.ctx_fields.proofs.proven.get(pc).copied().unwrap_or(0);
        if how & bounds::PROVEN == 0 {
            return None;
        }
        let r = self.reg(reg);
        let (addr, at) = if how & bounds::FOLD != 0 {
            (r, off as i32)
        } else {
            (self.offset(r, off), 0)
        };
        // A pointer the code made from a field the proofs start from (`data + 14`): the host
        // address made at the field's load, plus the constant. No wrap: the sum is inside the
        // field's region, below the bound the proof found.
        if how & bounds::FOLD != 0 {
            let dfg = &self.b.func.dfg;
            let (x, k) = match self.sum_of(r) {
                Some(Sum::Imm(x, k)) if k >= 0 => (dfg.resolve_aliases(x), k),
                _ => (dfg.resolve_aliases(r), 0),
            };
            if let Some(&(_, h)) = self.own_hosts.iter().find(|&&(v, _)| v == x) {
                if let Ok(at) = i32::try_from(k + off as i64) {
                    return Some((h, at));
                }
            }
        }
        // The host address of one guest value, made once per block: clang's parsers read
        // several fields through one pointer (`eth->h_proto`, then the next header's).
        let block = self.b.current_block()?;
        if let Some(&(_, _, p)) = self
            .own_addrs
            .iter()
            .find(|&&(b, a, _)| b == block && a == addr)
        {
            return Some((p, at));
        }
        let low = self.low32(addr);
        let idx = self.b.ins().uextend(I64, low);
        let base = match self.primary_fixed {
            Some(base) => base,
            None => self.vm_load(offset_of!(VmCtx, primary_base)),
        };
        let p = self.b.ins().iadd(base, idx);
        self.own_addrs.retain(|&(b, _, _)| b == block);
        self.own_addrs.push((block, addr, p));
        Some((p, at))
    }

    /// An access at `[reg + off]` proven inside the value a row's lookup found (`gen::rows`):
    /// the guest address plus the row's host offset, no clamp, no branch. Returns the host
    /// address and the offset the access adds to it.
    fn row_proven(&mut self, pc: usize, reg: Reg, off: i16) -> Option<(Value, i32)> {
        let j = self.ctx_fields.rows.access.get(pc).copied().flatten()? as usize;
        let r = self.reg(reg);
        // The row's offset read once per block: a batch's rows do not change, and a program
        // filling a value field by field makes one access after another in one block.
        let block = self.b.current_block()?;
        let host_off = match self
            .row_offs
            .iter()
            .find(|&&(b, k, _)| b == block && k == j)
        {
            Some(&(_, _, v)) => v,
            None => {
                let v = self.vm_load(
                    offset_of!(VmCtx, rows)
                        + j * std::mem::size_of::<shims::ValueRow>()
                        + offset_of!(shims::ValueRow, host_off),
                );
                self.row_offs.retain(|&(b, _, _)| b == block);
                self.row_offs.push((block, j, v));
                v
            }
        };
        Some((self.b.ins().iadd(r, host_off), off as i32))
    }

    /// The host address of a proven packet access ([`crate::Hints::packet`]): no branch, the
    /// offset clamped into the primary region (or its scratch stand-in), so that even a wrong
    /// proof stays inside memory the run owns.
    fn clamped(&mut self, addr: Value, size: Size, write: bool) -> Value {
        let low = self.low32(addr);
        let off = self.b.ins().uextend(I64, low);
        let idx = clamp_index(size, write);
        let (base, max) = match self.clamp_fixed[idx] {
            Some(fixed) => fixed,
            None => (
                self.vm_load(offset_of!(VmCtx, clamp_base) + 8 * idx),
                self.vm_load(offset_of!(VmCtx, clamp_max) + 8 * idx),
            ),
        };
        let c = self.b.ins().umin(off, max);
        self.b.ins().iadd(base, c)
    }

    /// `addr`'s low 32 bits, the offset a clamp starts from. Where `addr` is a sum (a pointer
    /// plus an index or a constant: `r5 = r1 + r4`, the instruction's own offset) the sum is
    /// made again in 32 bits, whose x86-64 instruction zeroes the upper half: the extension
    /// to 64 bits that the clamp's compare needs is then free (a `mov %ecx,%ecx` per access
    /// otherwise), and the 64-bit sum is not computed at all when nothing else uses it.
    pub(super) fn low32(&mut self, addr: Value) -> Value {
        match self.sum_of(addr) {
            // `p + k` where `p` is itself `x + y`: one three-operand `lea` in 32 bits.
            Some(Sum::Imm(p, k)) => {
                let low = match self.sum_of(p) {
                    Some(Sum::Regs(x, y)) => self.add32(x, y),
                    _ => self.b.ins().ireduce(types::I32, p),
                };
                self.b.ins().iadd_imm(low, k as i32 as i64)
            }
            Some(Sum::Regs(x, y)) => self.add32(x, y),
            None => self.b.ins().ireduce(types::I32, addr),
        }
    }

    /// `x + y` in 32 bits.
    fn add32(&mut self, x: Value, y: Value) -> Value {
        let a = self.b.ins().ireduce(types::I32, x);
        let b = self.b.ins().ireduce(types::I32, y);
        self.b.ins().iadd(a, b)
    }

    /// `v`'s value when the code computes it from constants alone: a constant, plus
    /// constants (an `lddw` address and the offsets added to it).
    fn const_of(&self, v: Value) -> Option<u64> {
        let dfg = &self.b.func.dfg;
        let mut v = v;
        let mut add = 0u64;
        // A chain of a few additions at most: `lddw`, `add`, the access's own offset.
        for _ in 0..8 {
            let ValueDef::Result(inst, 0) = dfg.value_def(v) else {
                return None;
            };
            match dfg.insts[inst] {
                InstructionData::UnaryImm {
                    opcode: Opcode::Iconst,
                    imm,
                } if dfg.value_type(v) == I64 => return Some(add.wrapping_add(imm.bits() as u64)),
                InstructionData::BinaryImm64 {
                    opcode: Opcode::IaddImm,
                    arg,
                    imm,
                } => {
                    add = add.wrapping_add(imm.bits() as u64);
                    v = arg;
                }
                InstructionData::Binary {
                    opcode: Opcode::Iadd,
                    args: [x, y],
                } => match self.const_of(y) {
                    Some(k) => {
                        add = add.wrapping_add(k);
                        v = x;
                    }
                    None => {
                        add = add.wrapping_add(self.const_of(x)?);
                        v = y;
                    }
                },
                _ => return None,
            }
        }
        None
    }

    /// `v` as a 64-bit sum, from its definition: of two values, or of a value and a constant.
    pub(super) fn sum_of(&self, v: Value) -> Option<Sum> {
        let dfg = &self.b.func.dfg;
        let konst = |x: Value| match dfg.value_def(x) {
            ValueDef::Result(i, 0) => match dfg.insts[i] {
                InstructionData::UnaryImm {
                    opcode: Opcode::Iconst,
                    imm,
                } => Some(imm.bits()),
                _ => None,
            },
            _ => None,
        };
        let ValueDef::Result(inst, 0) = dfg.value_def(v) else {
            return None;
        };
        if dfg.value_type(v) != I64 {
            return None;
        }
        match dfg.insts[inst] {
            InstructionData::BinaryImm64 {
                opcode: Opcode::IaddImm,
                arg,
                imm,
            } => Some(Sum::Imm(arg, imm.bits())),
            InstructionData::Binary {
                opcode: Opcode::Iadd,
                args: [x, y],
            } => match (konst(x), konst(y)) {
                (None, None) => Some(Sum::Regs(x, y)),
                (None, Some(k)) => Some(Sum::Imm(x, k)),
                (Some(k), None) => Some(Sum::Imm(y, k)),
                (Some(_), Some(_)) => None,
            },
            _ => None,
        }
    }

    /// The slot of the map whose value a proven access at `pc` reaches ([`crate::Hints::map_value`]),
    /// if its map has one.
    pub(super) fn value_slot(&self, pc: usize) -> Option<usize> {
        let map = self.map_value.get(pc).copied().flatten()?;
        self.value_maps.iter().position(|&m| m == map)
    }

    /// The host address of a proven map value access: no branch, the offset clamped into the
    /// region the host said holds the map's values, so that even a wrong proof stays inside
    /// memory the run owns (see [`VmCtx::value_base`]).
    ///
    /// An access at a constant address (a global: `lddw r1, map_value`, then a constant
    /// offset) within the first [`shims::VALUE_CONST_BYTES`] of the region takes no clamp: the
    /// run checks once that the region holds those bytes (`JitProgram::value_need`, runs on a
    /// smaller one are interpreted), so the constant offset is inside it whatever the hint.
    fn value_clamped(&mut self, addr: Value, size: Size, write: bool, slot: usize) -> Value {
        if let Some(c) = self.const_of(addr) {
            let low = c as u32 as u64;
            let end = low + size.bytes() as u64;
            if end <= shims::VALUE_CONST_BYTES {
                let need = &mut self.value_need[slot][write as usize];
                *need = (*need).max(end);
                let base = self.vm_load(offset_of!(VmCtx, value_base) + 8 * slot);
                return self.b.ins().iadd_imm(base, low as i64);
            }
        }
        let low = self.low32(addr);
        let off = self.b.ins().uextend(I64, low);
        let at = 8 * (8 * slot + clamp_index(size, write));
        let base = self.vm_load(offset_of!(VmCtx, value_base) + 8 * slot);
        let max = self.vm_load(offset_of!(VmCtx, value_max) + at);
        let c = self.b.ins().umin(off, max);
        self.b.ins().iadd(base, c)
    }

    /// Whether the access at `pc` is a proven stack access ([`crate::Hints::stack`]).
    pub(super) fn stack_hint(&self, pc: usize) -> bool {
        self.stack.get(pc).copied().unwrap_or(false)
    }

    /// The host address of a proven stack access: no branch, the address's place in the buffer
    /// of all frames' stacks (frame `region - FIRST_FRAME_REGION`, `FRAME_SIZE` bytes each, the
    /// low 32 bits its offset in the frame) clamped so that the access ends inside the buffer.
    /// A right proof gives the very bytes the region table maps; a wrong one (any region, any
    /// offset: the arithmetic wraps, the compare is unsigned) other bytes of the run's stack.
    fn stack_clamped(&mut self, pc: usize, addr: Value, size: Size) -> Value {
        if let Some(p) = self.stack_place(pc, size) {
            return p;
        }
        const _: () = assert!(FRAME_SIZE.is_power_of_two());
        let region = self.b.ins().ushr_imm(addr, REGION_SHIFT as i64);
        // `(region - FIRST) * FRAME_SIZE + off` as `region * FRAME_SIZE + off - FIRST *
        // FRAME_SIZE`: the same wrapping sum, the constant folded into one addition.
        let start = self
            .b
            .ins()
            .ishl_imm(region, FRAME_SIZE.trailing_zeros() as i64);
        let low = self.low32(addr);
        let off = self.b.ins().uextend(I64, low);
        let sum = self.b.ins().iadd(start, off);
        let at = self
            .b
            .ins()
            .iadd_imm(sum, -((FIRST_FRAME_REGION as usize * FRAME_SIZE) as i64));
        let max = self.iconst((FRAME_SIZE * MAX_FRAMES) as u64 - size.bytes() as u64);
        let c = self.b.ins().umin(at, max);
        let base = self.stack_base();
        self.b.ins().iadd(base, c)
    }

    /// The host address of a proven stack access whose pointer the verifier knows
    /// ([`crate::Hints::stack_at`]): with static depths, the frame `up` calls above this
    /// subprogram's is at a depth known here, so the place is a constant from the stack base.
    /// `None` without static depths, or for a place outside that frame.
    fn stack_place(&mut self, pc: usize, size: Size) -> Option<Value> {
        let (up, off) = self.stack_at.get(pc).copied().flatten()?;
        self.static_depth.as_ref()?;
        let frame = self.static_depth_here().checked_sub(up as u64)? as i64;
        let inside = off >= -(FRAME_SIZE as i64) && off + size.bytes() as i64 <= 0;
        if !inside || frame >= MAX_FRAMES as i64 {
            return None;
        }
        let place = (frame + 1) * FRAME_SIZE as i64 + off;
        let base = self.stack_base();
        Some(self.b.ins().iadd_imm(base, place))
    }

    /// The stack buffer's base ([`VmCtx::stack_base`]): the value loaded at entry where depths
    /// are static, else a load here.
    pub(super) fn stack_base(&mut self) -> Value {
        match self.fixed_stack_base {
            Some(base) => base,
            None => self.vm_load(offset_of!(VmCtx, stack_base)),
        }
    }

    /// Load the clamp bounds the program's proven packet accesses use, once, at entry (see
    /// [`Gen::clamp_fixed`]), in a function with a loop (`Gen::has_loop`). Kept in
    /// registers, they cost the hot loops two loads fewer per access.
    pub(super) fn load_clamp_bounds(&mut self) {
        if self.ctx_fields.proofs.proven.iter().any(|&p| p != 0) && !self.calls {
            // The primary region's base, for the accesses the JIT proved itself: as fixed for
            // the run as the clamps' bases (see `Gen::clamp_fixed`), and read once rather than
            // at each access in the loop. Not across calls, which would make it one more value
            // to keep in a callee-saved register or the frame (`ringbuf_events` 1.0-1.5x ->
            // 1.2-1.8x the kernel's time).
            self.primary_fixed = Some(self.vm_load(offset_of!(VmCtx, primary_base)));
        }
        for idx in 0..8 {
            if self.clamp_used[idx] {
                let b = self.vm_load(offset_of!(VmCtx, clamp_base) + 8 * idx);
                let m = self.vm_load(offset_of!(VmCtx, clamp_max) + 8 * idx);
                self.clamp_fixed[idx] = Some((b, m));
            }
        }
    }

    pub(super) fn mem_ty(size: Size) -> Type {
        match size {
            Size::B => types::I8,
            Size::H => types::I16,
            Size::W => types::I32,
            Size::DW => I64,
        }
    }

    /// A proven non-context access: a failed check is the fault, on a cold path that ends the
    /// run. The block is filled at the end ([`Self::fault_epilogues`]): the builder must finish
    /// the current block first.
    pub(super) fn fault_path(&mut self, pc: usize, addr: Value, size: Size, write: bool) -> Block {
        let fault = self.b.create_block();
        self.b.set_cold_block(fault);
        let code = if write {
            TrapCode::MemoryWrite
        } else {
            TrapCode::MemoryRead
        };
        let adjust = self.adjust();
        self.faults.push(Fault {
            block: fault,
            pc,
            code,
            addr,
            size: size.bytes() as u64,
            adjust,
        });
        fault
    }

    pub(super) fn fault_epilogues(&mut self) {
        for f in std::mem::take(&mut self.faults) {
            self.at_slot(Some(f.pc));
            self.switch(f.block);
            if f.adjust != 0 {
                let left = self.b.use_var(self.left);
                let back = self.b.ins().iadd_imm(left, f.adjust);
                self.b.def_var(self.left, back);
            }
            let pcv = self.iconst(f.pc as u64);
            let c = self.iconst(f.code as u64);
            let sz = self.iconst(f.size);
            let trap = self.exit(Exit::Trap);
            self.b
                .ins()
                .jump(trap, &[pcv.into(), c.into(), f.addr.into(), sz.into()]);
        }
        self.at_slot(None);
    }

    /// Whether the verifier's hints leave the access at `pc` through the context pointer on
    /// some path: the context has no bytes of its own in the region table (its fields are
    /// computed by the shim), so an inline check would only ever fail for it, and such an access
    /// is a call to the shim alone, which serves any other region as well (five blocks fewer per
    /// access). Without hints nothing is known, and the inline check stays.
    fn ctx_access(&self, pc: usize) -> bool {
        self.no_ctx.get(pc) == Some(&false) && self.packet.get(pc) != Some(&true)
    }

    /// The slot of the kept context field a load at `pc` reads ([`crate::Hints::ctx`]).
    pub(super) fn ctx_slot(&self, pc: usize, size: Size, off: i16) -> Option<usize> {
        if !self.ctx.get(pc).copied().unwrap_or(false) || off < 0 {
            return None;
        }
        let key = crate::ctx_field_key(off as u32, size);
        self.ctx_fields.loads.iter().position(|&f| f == key)
    }

    /// The slot of the context cell a store at `pc` writes ([`crate::Hints::ctx`]).
    fn ctx_store_slot(&self, pc: usize, size: Size, off: i16) -> Option<usize> {
        if !self.ctx.get(pc).copied().unwrap_or(false) || off < 0 {
            return None;
        }
        let key = crate::ctx_field_key(off as u32, size);
        self.ctx_fields.stores.iter().position(|&f| f == key)
    }

    /// A context field store: straight into the field's cell when the address is the
    /// field's (one compare), and the kept values of the loads inside the stored bytes set
    /// from the value, so that they read what the context now holds; else the usual way (the
    /// address is not the context's, or the context has no cell for the field: the shim then
    /// stores, or faults as the interpreter does).
    fn ctx_field_store(&mut self, pc: usize, addr: Value, size: Size, v: Value, slot: usize) {
        let key = self.vm_load(offset_of!(VmCtx, ctx_skey) + 8 * slot);
        let hit = self.b.ins().icmp(IntCC::Equal, addr, key);
        let fast = self.cont();
        let miss = self.b.create_block();
        self.b.set_cold_block(miss);
        let done = self.b.create_block();
        self.b.ins().brif(hit, fast, &[], miss, &[]);
        self.switch(fast);
        let p = self.vm_load(offset_of!(VmCtx, ctx_sptr) + 8 * slot);
        self.store_sized(size, v, p, 0);
        let (lo, n) = (self.ctx_fields.stores[slot] as u32, size.bytes() as u32);
        let covered: Vec<(usize, u32, u32)> = self
            .ctx_fields
            .loads
            .iter()
            .enumerate()
            .map(|(i, &k)| (i, k as u32, (k >> 32) as u32))
            .filter(|&(_, o, m)| o >= lo && o + m <= lo + n)
            .collect();
        for (i, o, m) in covered {
            if self.ctx_fields.proofs.flags.get(i).copied().unwrap_or(0) != 0 {
                // A field the JIT's own proofs rely on holds what the run checked
                // (`VmCtx::read_ctx`), never a stored value: its next load hands the run over.
                let none = self.iconst(u64::MAX);
                self.vm_store(offset_of!(VmCtx, ctx_key) + 8 * i, none);
                let kept = self.vm_load(offset_of!(VmCtx, ctx_kept));
                let kept = self.b.ins().band_imm(kept, !(1i64 << i));
                self.vm_store(offset_of!(VmCtx, ctx_kept), kept);
                continue;
            }
            // The load's bytes of the stored value, zero-extended as a load reads them.
            let shifted = if o == lo {
                v
            } else {
                self.b.ins().ushr_imm(v, 8 * (o - lo) as i64)
            };
            let val = if m >= 8 {
                shifted
            } else {
                self.b
                    .ins()
                    .band_imm(shifted, ((1u64 << (8 * m)) - 1) as i64)
            };
            self.vm_store(offset_of!(VmCtx, ctx_val) + 8 * i, val);
        }
        self.b.ins().jump(done, &[]);
        self.switch(miss);
        self.store(pc, addr, size, v);
        self.b.ins().jump(done, &[]);
        self.switch(done);
    }

    /// A context field load: the value kept for the field when the address is the field's
    /// (one compare), else the interpreter finishes the run from this load (the address is not
    /// the context's, the run has no context or one whose fields are not kept, or the context
    /// refused the field: the interpreter then reads or faults as it always does). The way
    /// out is a jump to the shared hand-over, not a call: no register lives across a call on
    /// the load's account, where a call into the load shim here had the code keep its values
    /// in callee-saved registers or the frame (`nat_xdp` 8.6-9.0 -> 7.6-7.9 ns a run).
    fn ctx_field_load(&mut self, pc: usize, addr: Value, slot: usize) -> Value {
        let key = self.vm_load(offset_of!(VmCtx, ctx_key) + 8 * slot);
        let hit = self.b.ins().icmp(IntCC::Equal, addr, key);
        let fast = self.cont();
        let miss = self.b.create_block();
        self.b.set_cold_block(miss);
        self.b.ins().brif(hit, fast, &[], miss, &[]);
        self.switch(miss);
        self.hand_over_at(pc);
        self.switch(fast);
        self.ctx_field_value(slot)
    }

    /// Hand the run to the interpreter at the instruction at `pc`, not executed: with the exact
    /// budget before it (what is left after it, and the instruction itself).
    pub(super) fn hand_over_at(&mut self, pc: usize) {
        let unexec = self.adjust() + 1;
        let left = self.b.use_var(self.left);
        let before = self.b.ins().iadd_imm(left, unexec);
        self.hand_over(pc, before);
    }

    /// The value the run keeps for the context field of `slot`, where the code knows the load's
    /// address is the field's and the field kept.
    pub(super) fn ctx_field_value(&mut self, slot: usize) -> Value {
        let v = self.vm_load(offset_of!(VmCtx, ctx_val) + 8 * slot);
        if self.ctx_fields.proofs.flags.get(slot).copied().unwrap_or(0) & bounds::BASE != 0 {
            // The field's host address, for the accesses proven through it (`own_proven`):
            // made here, it dominates every use of the value. The run checked the field
            // points into the primary region.
            let low = self.b.ins().ireduce(types::I32, v);
            let idx = self.b.ins().uextend(I64, low);
            let base = self.vm_load(offset_of!(VmCtx, primary_base));
            let h = self.b.ins().iadd(base, idx);
            self.own_hosts.push((v, h));
        }
        v
    }

    pub(super) fn load(&mut self, pc: usize, addr: Value, size: Size) -> Value {
        if self.packet.get(pc).copied().unwrap_or(false) {
            let p = self.clamped(addr, size, false);
            return self.load_zx(size, p);
        }
        if let Some(slot) = self.value_slot(pc) {
            let p = self.value_clamped(addr, size, false, slot);
            return self.load_zx(size, p);
        }
        if self.stack_hint(pc) {
            let p = self.stack_clamped(pc, addr, size);
            return self.load_zx(size, p);
        }
        if self.no_ctx.get(pc).copied().unwrap_or(false) {
            let fault = self.fault_path(pc, addr, size, false);
            let p = self.translate_no_ctx(addr, size.bytes() as u64, false, fault);
            return self.load_zx(size, p);
        }
        self.load_checked(pc, addr, size)
    }

    /// A load with nothing proven: the region table, and the shim for what it refuses (a
    /// context field, or a fault).
    fn load_checked(&mut self, pc: usize, addr: Value, size: Size) -> Value {
        let sz = size.bytes() as u64;
        if self.ctx_access(pc) {
            let szv = self.iconst(sz);
            let call = self.b.ins().call(self.shims.load, &[self.vm, addr, szv]);
            let v = self.b.inst_results(call)[0];
            self.check_status(pc);
            return v;
        }
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let p = self.translate(addr, sz, false, slow);
        let v = self.load_zx(size, p);
        self.b.ins().jump(done, &[v.into()]);
        self.switch(slow);
        let sz = self.iconst(size.bytes() as u64);
        let call = self.b.ins().call(self.shims.load, &[self.vm, addr, sz]);
        let v = self.b.inst_results(call)[0];
        self.status_branch(pc, done, &[v]);
        self.switch(done);
        self.b.block_params(done)[0]
    }

    pub(super) fn store(&mut self, pc: usize, addr: Value, size: Size, value: Value) {
        let value_slot = self.value_slot(pc);
        let packet = self.packet.get(pc).copied().unwrap_or(false);
        if packet || value_slot.is_some() || self.stack_hint(pc) {
            let p = match value_slot {
                Some(slot) => self.value_clamped(addr, size, true, slot),
                None if packet => self.clamped(addr, size, true),
                None => self.stack_clamped(pc, addr, size),
            };
            self.store_sized(size, value, p, 0);
            return;
        }
        if self.no_ctx.get(pc).copied().unwrap_or(false) {
            let fault = self.fault_path(pc, addr, size, true);
            let p = self.translate_no_ctx(addr, size.bytes() as u64, true, fault);
            self.store_sized(size, value, p, 0);
            return;
        }
        if self.ctx_access(pc) {
            let sz = self.iconst(size.bytes() as u64);
            self.b
                .ins()
                .call(self.shims.store, &[self.vm, addr, sz, value]);
            self.check_status(pc);
            return;
        }
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let done = self.b.create_block();
        let p = self.translate(addr, size.bytes() as u64, true, slow);
        self.store_sized(size, value, p, 0);
        self.b.ins().jump(done, &[]);
        self.switch(slow);
        let sz = self.iconst(size.bytes() as u64);
        self.b
            .ins()
            .call(self.shims.store, &[self.vm, addr, sz, value]);
        self.status_branch(pc, done, &[]);
        self.switch(done);
    }
}

/// The index of an access of `size` in [`VmCtx::clamp_base`] and [`VmCtx::clamp_max`].
pub(super) fn clamp_index(size: Size, write: bool) -> usize {
    size.bytes().trailing_zeros() as usize + if write { 4 } else { 0 }
}

/// A 64-bit sum, as `Gen::low32` remakes it in 32 bits.
pub(super) enum Sum {
    Regs(Value, Value),
    Imm(Value, i64),
}
