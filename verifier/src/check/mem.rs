//! `check_mem_access` and what calls it: loads, stores, atomics, the stack (spills and fills),
//! the context, packets, map values and memory regions; `check_ld_abs`.

use bpfsim_vm::isa::{AtomicOp, PacketMode, Reg as R, Size, Source};
use bpfsim_vm::spec::ProgType;

use super::alu::{sign_extend, type_str};
use super::ctx;
use crate::domain::reg::{Reg, RegType};
use crate::domain::state::{Byte, State, MAX_BPF_STACK, SLOTS};
use crate::domain::tnum::Tnum;
use crate::explore::Verifier;

/// Offsets beyond this are never bounded (`BPF_MAX_VAR_OFF`).
const MAX_VAR_OFF: u64 = 1 << 29;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A value loaded from memory of `size` bytes: unknown but within the width.
fn loaded(size: u32, signed: bool) -> Reg {
    let mut r = Reg::unknown();
    if size < 8 {
        r.var_off = Tnum::range(0, (1u64 << (size * 8)) - 1);
        r.sync();
        if signed {
            sign_extend(&mut r, size * 8);
        }
    }
    r
}

/// A narrow load keeps the low `size` bytes of a value (`coerce_reg_to_size`).
fn coerce_to_size(r: &mut Reg, size: u32) {
    r.var_off = r.var_off.cast(size);
    let mask = (1u64 << (size * 8)) - 1;
    if r.umin & !mask == r.umax & !mask {
        r.umin &= mask;
        r.umax &= mask;
    } else {
        r.umin = 0;
        r.umax = mask;
    }
    r.smin = r.umin as i64;
    r.smax = r.umax as i64;
    if size < 4 {
        r.s32min = i32::MIN;
        r.s32max = i32::MAX;
        r.u32min = 0;
        r.u32max = u32::MAX;
    }
    r.sync();
}

impl Verifier<'_> {
    pub fn check_load(
        &mut self,
        st: &mut State,
        dst: R,
        src: R,
        off: i16,
        size: Size,
        signed: bool,
    ) -> Result<(), String> {
        self.check_reg_read(st, src)?;
        self.check_reg_write(dst)?;
        let v =
            self.check_mem_access(st, src, off as i32, size.bytes() as u32, Access::Read, None)?;
        let mut v = v.unwrap_or_else(|| loaded(size.bytes() as u32, false));
        if signed && v.is_scalar() {
            sign_extend(&mut v, size.bits());
        } else if v.is_scalar() && size.bytes() < 8 {
            coerce_to_size(&mut v, size.bytes() as u32);
        }
        *st.reg_mut(dst.index()) = v;
        Ok(())
    }

    pub fn check_store(
        &mut self,
        st: &mut State,
        dst: R,
        off: i16,
        size: Size,
        src: Source,
    ) -> Result<(), String> {
        let value = match src {
            Source::Reg(r) => {
                self.check_reg_read(st, r)?;
                Some(*st.reg(r.index()))
            }
            Source::Imm(imm) => Some(Reg::known(imm as i64 as u64)),
        };
        self.check_reg_read(st, dst)?;
        let d = *st.reg(dst.index());
        self.check_mem_access(
            st,
            dst,
            off as i32,
            size.bytes() as u32,
            Access::Write,
            value,
        )?;
        // Zero bytes from a register that is not a slot-aligned spill: reads of them will be
        // constants, so the register's zero must stay precise (the kernel's STACK_ZERO case).
        if let (Source::Reg(r), Some(v)) = (src, value) {
            let total = d.off as i64 + d.var_off.value as i64 + off as i64;
            if d.ty == RegType::Stack
                && d.var_off.is_const()
                && total % 8 != 0
                && v.is_scalar()
                && v.is_const()
                && v.var_off.value == 0
            {
                self.mark_precise(st, r.index());
            }
        }
        Ok(())
    }

    pub fn check_atomic(
        &mut self,
        st: &mut State,
        op: AtomicOp,
        dst: R,
        src: R,
        off: i16,
        size: Size,
    ) -> Result<(), String> {
        if matches!(op, AtomicOp::LoadAcquire) {
            return self.check_load(st, src, dst, off, size, false);
        }
        if matches!(op, AtomicOp::StoreRelease) {
            return self.check_store(st, dst, off, size, Source::Reg(src));
        }
        self.check_reg_read(st, src)?;
        self.check_reg_read(st, dst)?;
        if op == AtomicOp::CmpXchg {
            self.check_reg_read(st, R::R0)?;
        }
        let d = *st.reg(dst.index());
        if matches!(
            d.ty,
            RegType::Ctx | RegType::Packet | RegType::PacketMeta | RegType::MapKey
        ) {
            return Err(format!(
                "BPF_ATOMIC stores into R{} {} is not allowed",
                dst.num(),
                type_str(&d)
            ));
        }
        let n = size.bytes() as u32;
        // Atomics are always checked for alignment (strict_alignment_once).
        let total = d.var_off.add(crate::domain::tnum::Tnum::konst(
            (d.off as i64 + off as i64) as u64,
        ));
        if !total.is_aligned(n as u64) {
            let desc = match d.ty {
                RegType::MapValue => "value ",
                RegType::Stack => "stack ",
                _ => "",
            };
            let var = if d.var_off.is_const() {
                (d.var_off.value as i64).to_string()
            } else {
                d.var_off.to_string()
            };
            return Err(format!(
                "misaligned {desc}access off {var}+{}+{off} size {n}",
                d.off
            ));
        }
        self.check_mem_access(st, dst, off as i32, n, Access::Read, None)?;
        self.check_mem_access(st, dst, off as i32, n, Access::Write, Some(Reg::unknown()))?;
        let fetched = loaded(n, false);
        match op {
            AtomicOp::CmpXchg => *st.reg_mut(0) = fetched,
            AtomicOp::Xchg
            | AtomicOp::Add { fetch: true }
            | AtomicOp::Or { fetch: true }
            | AtomicOp::And { fetch: true }
            | AtomicOp::Xor { fetch: true } => *st.reg_mut(src.index()) = fetched,
            _ => {}
        }
        Ok(())
    }

    /// Read or write `size` bytes at `reg + off`; a read gives the loaded register when the
    /// memory says more than "some bytes" (a spill, a packet pointer from the context, a
    /// constant of a frozen map).
    pub fn check_mem_access(
        &mut self,
        st: &mut State,
        regno: R,
        off: i32,
        size: u32,
        t: Access,
        value: Option<Reg>,
    ) -> Result<Option<Reg>, String> {
        let reg = *st.reg(regno.index());
        let rn = regno.num();
        if reg.ty == RegType::MapPtr && t == Access::Read && !reg.maybe_null {
            // Fields of struct bpf_map, read through the kernel's BTF (check_ptr_to_map_access).
            return Ok(Some(loaded(size, false)));
        }
        if reg.maybe_null
            || !reg.is_pointer()
            || matches!(reg.ty, RegType::MapPtr | RegType::PacketEnd | RegType::Func)
        {
            return Err(format!("R{rn} invalid mem access '{}'", type_str(&reg)));
        }
        match reg.ty {
            RegType::Stack => self.stack_access(st, &reg, rn, off, size, t, value),
            RegType::Ctx => {
                if reg.off != 0 {
                    return Err(format!(
                        "dereference of modified ctx ptr R{rn} off={} disallowed",
                        reg.off
                    ));
                }
                if !reg.var_off.is_const() || reg.var_off.value != 0 {
                    return Err(format!(
                        "variable ctx access var_off={} disallowed",
                        reg.var_off
                    ));
                }
                if t == Access::Write && value.is_some_and(|v| v.is_pointer()) {
                    return Err(format!("R{rn} leaks addr into ctx"));
                }
                let write = t == Access::Write;
                let a = match &self.opts.attach_btf {
                    Some(target) => ctx::btf_ctx_access(target, self.opts.attach, off, size, write)
                        .map_err(|note| self.log.extend(note)),
                    None => ctx::access(self.opts.prog_type, self.opts.attach, off, size, write)
                        .ok_or(()),
                }
                .map_err(|()| format!("invalid bpf_context access off={off} size={size}"))?;
                // A pointer argument to a struct (already checked 8 bytes wide).
                if let (Some(target), Access::Read, 8) = (&self.opts.attach_btf, t, size) {
                    if let Some((mut p, line)) =
                        super::btf::ctx_arg(target, self.opts.prog_type, self.opts.attach, off)
                    {
                        self.log.extend(line);
                        if p.maybe_null {
                            p.id = self.new_id();
                        }
                        return Ok(Some(p));
                    }
                }
                if t == Access::Read && a.ty != RegType::Scalar {
                    let mut p = Reg::ptr(a.ty);
                    p.id = 0;
                    if a.ty == RegType::SockCommon {
                        // `skb->sk`: PTR_TO_SOCK_COMMON_OR_NULL, with an id for its NULL check.
                        p.maybe_null = true;
                        p.id = self.new_id();
                    }
                    return Ok(Some(p));
                }
                // Some value of the load's width, whatever the field's (`mark_reg_unknown`,
                // then `coerce_reg_to_size`).
                Ok(Some(loaded(size, false)))
            }
            RegType::BtfId => self.check_ptr_to_btf_access(&reg, rn, off, size, t),
            RegType::Packet | RegType::PacketMeta => {
                if t == Access::Write && !self.may_write_packet() {
                    return Err("cannot write into packet".to_string());
                }
                if t == Access::Write && value.is_some_and(|v| v.is_pointer()) {
                    return Err(format!("R{rn} leaks addr into packet"));
                }
                let off = off + reg.off;
                if reg.smin < 0 {
                    return Err(format!("R{rn} min value is negative, either use unsigned index or do a if (index >=0) check."));
                }
                if off < 0 || off as i64 + size as i64 > reg.range as i64 {
                    self.log.push(format!(
                        "invalid access to packet, off={off} size={size}, R{rn}(id={},off={off},r={})",
                        reg.id, reg.range
                    ));
                    return Err(format!("R{rn} offset is outside of the packet"));
                }
                Ok(None)
            }
            RegType::MapValue => {
                let m = &self.opts.maps[reg.map as usize];
                if t == Access::Write && m.rdonly_prog {
                    return Err(format!(
                        "write into map forbidden, value_size={} off={} size={size}",
                        m.value_size,
                        off + reg.off
                    ));
                }
                self.region_access(
                    &reg,
                    rn,
                    off + reg.off,
                    size,
                    m.value_size,
                    "map value",
                    "value_size",
                )?;
                // `check_map_access`: the value's special fields are the kernel's alone.
                if let Some(p) = m.spin_lock {
                    let at = (off + reg.off) as i64;
                    let lo = reg.smin.saturating_add(at);
                    let hi = (reg.umax as i64).saturating_add(at + size as i64);
                    if lo < p as i64 + 4 && (p as i64) < hi {
                        return Err(
                            "bpf_spin_lock cannot be accessed directly by load/store".to_string()
                        );
                    }
                }
                // A frozen read-only map's bytes are constants.
                if t == Access::Read
                    && size <= 8
                    && m.frozen
                    && m.rdonly_prog
                    && reg.var_off.is_const()
                {
                    if let Some(data) = &m.data {
                        let at = off as i64 + reg.off as i64 + reg.var_off.value as i64;
                        if let Some(b) = usize::try_from(at)
                            .ok()
                            .and_then(|a| data.get(a..a + size as usize))
                        {
                            let mut v = [0u8; 8];
                            v[..b.len()].copy_from_slice(b);
                            return Ok(Some(Reg::known(u64::from_le_bytes(v))));
                        }
                    }
                }
                Ok(None)
            }
            RegType::MapKey => {
                let key_size = self.opts.maps[reg.map as usize].key_size;
                self.region_access(
                    &reg,
                    rn,
                    off + reg.off,
                    size,
                    key_size,
                    "map key",
                    "key_size",
                )?;
                Ok(None)
            }
            RegType::Mem => {
                if t == Access::Write && reg.rdonly {
                    return Err(format!("R{rn} cannot write into {}", type_str(&reg)));
                }
                // Untrusted memory (a pointer member of a kernel struct to something other
                // than a struct) is read through probe loads: no bounds to check.
                if reg.rdonly && reg.btf_flags & crate::domain::reg::BTF_UNTRUSTED != 0 {
                    return Ok(None);
                }
                self.region_access(
                    &reg,
                    rn,
                    off + reg.off,
                    size,
                    reg.mem_size,
                    "memory",
                    "mem_size",
                )?;
                Ok(None)
            }
            ty if ty.is_sock() => {
                // `check_sock_access`: read-only fields of `struct bpf_sock` (or its views).
                if t == Access::Write {
                    return Err(format!("R{rn} cannot write into {}", type_str(&reg)));
                }
                if reg.smin < 0 {
                    return Err(format!("R{rn} min value is negative, either use unsigned index or do a if (index >=0) check."));
                }
                let off = off + reg.off;
                if !ctx::sock_access(ty, off, size) {
                    return Err(format!(
                        "R{rn} invalid {} access off={off} size={size}",
                        type_str(&reg)
                    ));
                }
                Ok(None)
            }
            _ => Err(format!("R{rn} invalid mem access '{}'", type_str(&reg))),
        }
    }

    fn may_write_packet(&self) -> bool {
        matches!(
            self.opts.prog_type,
            ProgType::Xdp
                | ProgType::SchedCls
                | ProgType::SchedAct
                | ProgType::LwtXmit
                | ProgType::SkSkb
        )
    }

    /// `check_mem_region_access`: both ends of a possibly variable offset within `mem_size`.
    #[allow(clippy::too_many_arguments)]
    fn region_access(
        &mut self,
        reg: &Reg,
        rn: u8,
        off: i32,
        size: u32,
        mem_size: u32,
        what: &str,
        size_name: &str,
    ) -> Result<(), String> {
        let within = |o: i64| o >= 0 && o + size as i64 <= mem_size as i64;
        let min = reg.smin.saturating_add(off as i64);
        if reg.smin < 0 && (reg.smin == i64::MIN || min < 0) {
            return Err(format!("R{rn} min value is negative, either use unsigned index or do a if (index >=0) check."));
        }
        if !within(min) {
            self.log.push(format!(
                "invalid access to {what}, {size_name}={mem_size} off={min} size={size}"
            ));
            return Err(format!(
                "R{rn} min value is outside of the allowed memory range"
            ));
        }
        if reg.umax >= MAX_VAR_OFF {
            return Err(format!(
                "R{rn} unbounded memory access, make sure to bounds check any such access"
            ));
        }
        let max = reg.umax as i64 + off as i64;
        if !within(max) {
            self.log.push(format!(
                "invalid access to {what}, {size_name}={mem_size} off={max} size={size}"
            ));
            return Err(format!(
                "R{rn} max value is outside of the allowed memory range"
            ));
        }
        Ok(())
    }

    /// Stack reads and writes at a constant offset: spills, fills, misc and zero bytes.
    #[allow(clippy::too_many_arguments)]
    fn stack_access(
        &mut self,
        st: &mut State,
        reg: &Reg,
        rn: u8,
        off: i32,
        size: u32,
        t: Access,
        value: Option<Reg>,
    ) -> Result<Option<Reg>, String> {
        if !reg.var_off.is_const() {
            return self.stack_access_var(st, reg, rn, off, size, t, value);
        }
        let total = reg.off as i64 + reg.var_off.value as i64 + off as i64;
        if total % (size as i64) != 0 {
            let var = if reg.var_off.is_const() {
                (reg.var_off.value as i64).to_string()
            } else {
                reg.var_off.to_string()
            };
            return Err(format!(
                "misaligned stack access off {var}+{}+{off} size {size}",
                reg.off
            ));
        }
        let full = reg.off + off;
        if total < -(MAX_BPF_STACK as i64) || total + size as i64 > 0 {
            let what = if t == Access::Read {
                " read from"
            } else {
                " write to"
            };
            return Err(format!("invalid{what} stack R{rn} off={full} size={size}"));
        }
        // A scalar spilled at a slot's start gets an id first (unless it is a constant), so
        // that what a branch learns about the register holds for its stack copy too; a spill
        // narrower than the value breaks the relation (`check_stack_write_fixed_off`).
        let mut value = value;
        if let (Access::Write, 0, Some(v)) = (t, total % 8, value.as_mut()) {
            if let Some(bpfsim_vm::isa::Insn::Store {
                src: Source::Reg(r),
                ..
            }) = self.insn_at(self.cur_pc)
            {
                let fits = 64 - v.umax.leading_zeros() <= 8 * size;
                if v.is_scalar() && fits {
                    let mut s = *v;
                    s.link_for_copy(|| self.new_id());
                    *st.reg_mut(r.index()) = s;
                    *v = s;
                } else if v.is_scalar() && !fits {
                    v.clear_id();
                }
            }
        }
        // A pointer into a frame that has returned (the kernel never lets one escape).
        let frame = st
            .frames
            .get_mut(reg.frameno as usize)
            .ok_or_else(|| format!("R{rn} points into a returned frame"))?;
        let depth = (-total) as usize;
        frame.depth = frame.depth.max(depth);
        let start = (MAX_BPF_STACK as i64 + total) as usize; // byte index from the stack's bottom
                                                             // Slot i covers bytes [512 - 8(i+1), 512 - 8i) counted from the bottom.
        let slot_of = |b: usize| SLOTS - 1 - b / 8;
        // Spills and fills by load and store instructions go into the jump history, so that
        // precision backtracking can follow a value through the stack.
        let by_insn = matches!(
            self.insn_at(self.cur_pc),
            Some(bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. })
        );
        let hist_slot = (reg.frameno, slot_of(start) as u8);
        let slot = slot_of(start);
        // Byte j of a slot is its j-th lowest address; a write or read at the slot's start
        // covers bytes 0..size.
        let at_start = start % 8 == 0;
        let first = start % 8;
        match t {
            Access::Write => {
                let v = value.unwrap_or_else(Reg::unknown);
                let (reg_store, imm_store) = match self.insn_at(self.cur_pc) {
                    Some(bpfsim_vm::isa::Insn::Store { src, .. }) => {
                        (matches!(src, Source::Reg(_)), matches!(src, Source::Imm(_)))
                    }
                    _ => (false, false),
                };
                let s = frame.slot_mut(slot);
                if at_start && ((reg_store && v.is_scalar()) || imm_store) {
                    // A scalar (or an immediate) spilled at the slot's start, of any size: its
                    // register state is kept (`save_register_state`); the slot's other bytes
                    // stay zero or uninitialised, or become misc.
                    s.spilled = v;
                    for (j, b) in s.bytes.iter_mut().enumerate() {
                        if j < size as usize {
                            *b = Byte::Spill;
                        } else if !matches!(b, Byte::Zero | Byte::Invalid) {
                            *b = Byte::Misc;
                        }
                    }
                    if by_insn {
                        self.push_hist(Some(hist_slot), Vec::new());
                    }
                } else if at_start && reg_store && v.is_pointer() {
                    if size != 8 {
                        return Err("invalid size of register spill".to_string());
                    }
                    s.spilled = v;
                    s.bytes = [Byte::Spill; 8];
                    if by_insn {
                        self.push_hist(Some(hist_slot), Vec::new());
                    }
                } else {
                    // Plain bytes: a spill they overwrite becomes misc bytes altogether.
                    if s.bytes[0] == Byte::Spill {
                        for b in s.bytes.iter_mut() {
                            if *b != Byte::Invalid {
                                *b = Byte::Misc;
                            }
                        }
                    }
                    s.spilled = Reg::NOT_INIT;
                    let zero = v.is_scalar() && v.is_const() && v.var_off.value == 0;
                    for b in &mut s.bytes[first..first + size as usize] {
                        *b = if zero { Byte::Zero } else { Byte::Misc };
                    }
                }
                Ok(None)
            }
            Access::Read => {
                let s = frame.slot(slot);
                let read = &s.bytes[first..first + size as usize];
                if s.bytes[0] == Byte::Spill {
                    let spill_size = s.bytes.iter().take_while(|b| **b == Byte::Spill).count();
                    if size == 8 && spill_size == 8 {
                        if by_insn {
                            self.push_hist(Some(hist_slot), Vec::new());
                        }
                        return Ok(Some(s.spilled));
                    }
                    if !s.spilled.is_scalar() {
                        return Err("invalid size of register fill".to_string());
                    }
                    if size as usize <= spill_size && at_start {
                        // A fill of the spill's low bytes: the register, narrowed by the load.
                        let mut v = s.spilled;
                        if size != 4 || spill_size != 4 {
                            v.clear_id();
                        }
                        if by_insn {
                            self.push_hist(Some(hist_slot), Vec::new());
                        }
                        return Ok(Some(v));
                    }
                    let spills = read.iter().filter(|b| **b == Byte::Spill).count();
                    let zeros = read.iter().filter(|b| **b == Byte::Zero).count();
                    if spills == size as usize
                        && s.spilled.is_const()
                        && s.spilled.var_off.value == 0
                    {
                        if by_insn {
                            self.push_hist(Some(hist_slot), Vec::new());
                        }
                        return Ok(Some(Reg::known(0)));
                    }
                    if zeros == size as usize {
                        return Ok(Some(Reg::known(0)));
                    }
                    return Ok(Some(Reg::unknown()));
                }
                // Privileged programs may read stack they never wrote (allow_uninit_stack).
                if read.iter().all(|b| *b == Byte::Zero) {
                    return Ok(Some(Reg::known(0)));
                }
                Ok(Some(Reg::unknown()))
            }
        }
    }

    /// `check_stack_access_within_bounds` for a stack pointer with a variable offset: every
    /// byte the access may touch, `[min, max)` from the frame pointer, lies in the stack.
    fn var_stack_bounds(
        &self,
        reg: &Reg,
        rn: u8,
        off: i32,
        size: u32,
        write: bool,
    ) -> Result<(i64, i64), String> {
        let what = if write { " write to" } else { " read from" };
        if reg.smax >= MAX_VAR_OFF as i64 || reg.smin <= -(MAX_VAR_OFF as i64) {
            return Err(format!(
                "invalid unbounded variable-offset{what} stack R{rn}"
            ));
        }
        let min = reg.smin + off as i64;
        let max = reg.smax + off as i64 + size as i64;
        if min < -(MAX_BPF_STACK as i64) || min > -1 || max > 0 {
            return Err(format!(
                "invalid variable-offset{what} stack R{rn} var_off={} off={off} size={size}",
                reg.var_off
            ));
        }
        Ok((min, max))
    }

    /// A load or store through a stack pointer with a variable offset (privileged):
    /// `check_stack_read_var_off` gives zero if every byte it may read is zero, else an
    /// unknown value; `check_stack_write_var_off` makes every byte it may write misc (zero
    /// bytes stay zero, and spilled zeros stay, when it writes zero), forgetting spills.
    #[allow(clippy::too_many_arguments)]
    fn stack_access_var(
        &mut self,
        st: &mut State,
        reg: &Reg,
        rn: u8,
        off: i32,
        size: u32,
        t: Access,
        value: Option<Reg>,
    ) -> Result<Option<Reg>, String> {
        let full = reg.off + off;
        let at = reg.var_off.add(Tnum::konst(full as i64 as u64));
        if !at.is_aligned(size as u64) {
            return Err(format!(
                "misaligned stack access off {}+{}+{off} size {size}",
                reg.var_off, reg.off
            ));
        }
        let (min, max) = self.var_stack_bounds(reg, rn, full, size, t == Access::Write)?;
        let insn = self.insn_at(self.cur_pc).copied();
        // A read that goes to no register needs a fixed offset: a read-modify-write atomic
        // checks its read so first (`check_atomic_rmw`), fetching or not.
        if let (Access::Read, Some(bpfsim_vm::isa::Insn::Atomic { op, .. })) = (t, insn) {
            if !matches!(op, AtomicOp::LoadAcquire | AtomicOp::StoreRelease) {
                return Err(format!(
                    "variable offset stack pointer cannot be passed into helper function; var_off={} off={full} size={size}",
                    reg.var_off
                ));
            }
        }
        let frame = st
            .frames
            .get_mut(reg.frameno as usize)
            .ok_or_else(|| format!("R{rn} points into a returned frame"))?;
        frame.depth = frame.depth.max((-min) as usize);
        let byte = |at: i64| (MAX_BPF_STACK as i64 + at) as usize;
        match t {
            Access::Read => {
                let zero = (min..max).all(|a| {
                    let b = byte(a);
                    frame.slot(SLOTS - 1 - b / 8).bytes[b % 8] == Byte::Zero
                });
                Ok(Some(if zero { Reg::known(0) } else { Reg::unknown() }))
            }
            Access::Write => {
                let imm_zero = matches!(
                    insn,
                    Some(bpfsim_vm::isa::Insn::Store {
                        src: Source::Imm(0),
                        ..
                    })
                );
                let writing_zero = imm_zero
                    || (!matches!(
                        insn,
                        Some(bpfsim_vm::isa::Insn::Store {
                            src: Source::Imm(_),
                            ..
                        })
                    ) && value
                        .is_some_and(|v| v.is_scalar() && v.is_const() && v.var_off.value == 0));
                let mut zero_used = false;
                for a in min..max {
                    let b = byte(a);
                    let s = frame.slot_mut(SLOTS - 1 - b / 8);
                    if writing_zero
                        && s.bytes[b % 8] == Byte::Spill
                        && s.bytes[0] == Byte::Spill
                        && s.spilled.is_scalar()
                        && s.spilled.is_const()
                        && s.spilled.var_off.value == 0
                    {
                        zero_used = true;
                        continue;
                    }
                    s.spilled = Reg::NOT_INIT;
                    s.bytes[b % 8] = if writing_zero && s.bytes[b % 8] == Byte::Zero {
                        zero_used = true;
                        Byte::Zero
                    } else {
                        Byte::Misc
                    };
                }
                // The zero kept the bytes zero: its value is relied on.
                if let (
                    true,
                    Some(bpfsim_vm::isa::Insn::Store {
                        src: Source::Reg(r),
                        ..
                    }),
                ) = (zero_used, insn)
                {
                    self.mark_precise(st, r.index());
                }
                Ok(None)
            }
        }
    }

    /// Memory a helper reads or writes through a pointer argument (`check_helper_mem_access`).
    pub fn check_helper_mem(
        &mut self,
        st: &mut State,
        regno: R,
        size: u32,
        write: bool,
    ) -> Result<(), String> {
        let reg = *st.reg(regno.index());
        if size == 0 {
            return Ok(());
        }
        let t = if write { Access::Write } else { Access::Read };
        match reg.ty {
            // The bytes are walked as one load of the whole size (writes too, as the kernel).
            RegType::BtfId => self
                .check_ptr_to_btf_access(&reg, regno.num(), 0, size, Access::Read)
                .map(|_| ()),
            RegType::Stack if !reg.var_off.is_const() => {
                // `check_stack_range_initialized` with a variable offset (privileged): any
                // initialised or not byte in the range may be read; a write makes them all misc.
                let rn = regno.num();
                let (min, max) = self.var_stack_bounds(&reg, rn, reg.off, size, write)?;
                let frame = st
                    .frames
                    .get_mut(reg.frameno as usize)
                    .ok_or_else(|| format!("R{rn} points into a returned frame"))?;
                frame.depth = frame.depth.max((-min) as usize);
                if write {
                    for at in min..max {
                        let b = (MAX_BPF_STACK as i64 + at) as usize;
                        let s = frame.slot_mut(SLOTS - 1 - b / 8);
                        if s.bytes[0] == Byte::Spill {
                            s.spilled = Reg::unknown();
                            for x in s.bytes.iter_mut() {
                                if *x != Byte::Invalid {
                                    *x = Byte::Misc;
                                }
                            }
                        }
                        if matches!(s.bytes[b % 8], Byte::Zero | Byte::Invalid) {
                            s.bytes[b % 8] = Byte::Misc;
                        }
                    }
                }
                Ok(())
            }
            RegType::Stack => {
                // Byte by byte: a write makes them misc, a read accepts any (privileged).
                let rn = regno.num();
                let total = reg.off as i64 + reg.var_off.value as i64;
                if !reg.var_off.is_const()
                    || total < -(MAX_BPF_STACK as i64)
                    || total + size as i64 > 0
                {
                    let what = if write { "write to" } else { "read from" };
                    return Err(format!(
                        "invalid {what} stack R{rn} off={} size={size}",
                        reg.off
                    ));
                }
                if write {
                    // A pointer into a frame that has returned (the kernel never lets one escape).
                    let frame = st
                        .frames
                        .get_mut(reg.frameno as usize)
                        .ok_or_else(|| format!("R{rn} points into a returned frame"))?;
                    frame.depth = frame.depth.max((-total) as usize);
                    let start = (MAX_BPF_STACK as i64 + total) as usize;
                    for b in start..start + size as usize {
                        let s = frame.slot_mut(SLOTS - 1 - b / 8);
                        if s.bytes[0] == Byte::Spill {
                            s.bytes = [Byte::Misc; 8];
                        }
                        s.bytes[b % 8] = Byte::Misc;
                    }
                } else {
                    // A pointer into a frame that has returned (the kernel never lets one escape).
                    let frame = st
                        .frames
                        .get_mut(reg.frameno as usize)
                        .ok_or_else(|| format!("R{rn} points into a returned frame"))?;
                    frame.depth = frame.depth.max((-total) as usize);
                }
                Ok(())
            }
            _ => {
                // One access of the whole range checks its two ends, as the kernel does.
                self.check_mem_access(st, regno, 0, size, t, Some(Reg::unknown()))?;
                Ok(())
            }
        }
    }

    /// `check_ld_abs`: legacy packet loads, relative to the skb in r6.
    pub fn check_ld_abs(
        &mut self,
        st: &mut State,
        mode: PacketMode,
        size: Size,
    ) -> Result<(), String> {
        if !matches!(
            self.opts.prog_type,
            ProgType::SocketFilter | ProgType::SchedCls | ProgType::SchedAct
        ) {
            return Err(
                "BPF_LD_[ABS|IND] instructions not allowed for this program type".to_string(),
            );
        }
        if size == Size::DW {
            return Err("BPF_LD_[ABS|IND] uses reserved fields".to_string());
        }
        self.check_reg_read(st, R::R6)?;
        // The load may end the program at run time: nothing may be held (`check_resource_leak`).
        self.check_resource_leak(st, "BPF_LD_[ABS|IND]", true)?;
        if st.reg(6).ty != RegType::Ctx {
            return Err("at the time of BPF_LD_ABS|IND R6 != pointer to skb".to_string());
        }
        if let PacketMode::Ind(r) = mode {
            self.check_reg_read(st, r)?;
        }
        for r in 1..=5 {
            *st.reg_mut(r) = Reg::NOT_INIT;
        }
        // The kernel does not bound what ld_abs/ld_ind load (`mark_reg_unknown`).
        let _ = size;
        *st.reg_mut(0) = Reg::unknown();
        Ok(())
    }
}
