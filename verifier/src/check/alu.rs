//! `check_alu_op`, pointer arithmetic (`adjust_ptr_min_max_vals`) and `lddw`
//! (`check_ld_imm`).

use bpfsim_vm::isa::{AluOp, Imm64, Insn, Reg as R, Source, Width};

use crate::domain::reg::{scalar_alu, Reg, RegType, ScalarOp, ADD_CONST32, ADD_CONST64};
use crate::domain::state::State;
use crate::domain::tnum::Tnum;
use crate::explore::Verifier;

/// The kernel's `reg_type_str` (which names no struct: `trusted_ptr_`, `ptr_or_null_`).
pub fn type_str(r: &Reg) -> std::borrow::Cow<'static, str> {
    if r.ty == RegType::BtfId || (r.ty == RegType::Mem && r.btf_flags != 0) {
        return crate::check::btf::flags_str(r).into();
    }
    match (r.ty, r.maybe_null, r.ringbuf) {
        (RegType::NotInit, ..) => "?",
        (RegType::Scalar, ..) => "scalar",
        (RegType::Ctx, ..) => "ctx",
        (RegType::MapPtr, ..) => "map_ptr",
        (RegType::MapValue, false, _) => "map_value",
        (RegType::MapValue, true, _) => "map_value_or_null",
        (RegType::MapKey, ..) => "map_key",
        (RegType::Stack, ..) => "fp",
        (RegType::PacketMeta, ..) => "pkt_meta",
        (RegType::Packet, ..) => "pkt",
        (RegType::PacketEnd, ..) => "pkt_end",
        (RegType::Mem, false, false) => "mem",
        (RegType::Mem, true, false) => "mem_or_null",
        (RegType::Mem, false, true) => "ringbuf_mem",
        (RegType::Mem, true, true) => "ringbuf_mem_or_null",
        (RegType::Func, ..) => "func",
        (RegType::Sock, false, _) => "sock",
        (RegType::Sock, true, _) => "sock_or_null",
        (RegType::SockCommon, false, _) => "sock_common",
        (RegType::SockCommon, true, _) => "sock_common_or_null",
        (RegType::TcpSock, false, _) => "tcp_sock",
        (RegType::TcpSock, true, _) => "tcp_sock_or_null",
        (RegType::BtfId, ..) => "ptr_",
    }
    .into()
}

fn op_str(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div | AluOp::SDiv => "/=",
        AluOp::Mod | AluOp::SMod => "%=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Arsh => "s>>=",
        AluOp::Xor => "^=",
        AluOp::Mov => "=",
    }
}

/// Sign-extend the low `bits` of `r` (movsx, signed loads): known values stay known; anything
/// else becomes the full range of that width.
pub fn sign_extend(r: &mut Reg, bits: u32) {
    if r.is_const() {
        let v = r.var_off.value;
        let s = ((v << (64 - bits)) as i64) >> (64 - bits);
        *r = Reg::known(s as u64);
        return;
    }
    let lo = -(1i64 << (bits - 1));
    let hi = (1i64 << (bits - 1)) - 1;
    let fits = r.umax < (1u64 << (bits - 1));
    *r = Reg::unknown();
    if fits {
        return;
    }
    r.smin = lo;
    r.smax = hi;
    r.sync();
}

impl Verifier<'_> {
    pub fn check_reg_read(&self, st: &State, r: R) -> Result<(), String> {
        if st.reg(r.index()).ty == RegType::NotInit {
            return Err(format!("R{} !read_ok", r.num()));
        }
        Ok(())
    }

    pub fn check_reg_write(&self, r: R) -> Result<(), String> {
        if r == R::FP {
            return Err("frame pointer is read only".to_string());
        }
        Ok(())
    }

    pub fn check_alu_op(&mut self, st: &mut State, insn: &Insn) -> Result<(), String> {
        match *insn {
            Insn::Neg { width, dst } => {
                self.check_reg_read(st, dst)?;
                self.check_reg_write(dst)?;
                let d = st.reg_mut(dst.index());
                // Privileged programs may turn a pointer into a scalar (allow_ptr_leaks).
                if d.is_pointer() {
                    *d = Reg::unknown();
                }
                let v = *d;
                let mut z = Reg::known(0);
                scalar_alu(&mut z, &v, ScalarOp::Sub, width == Width::W32);
                *d = z;
                Ok(())
            }
            Insn::Endian { dst, bits, order } => {
                self.check_reg_read(st, dst)?;
                self.check_reg_write(dst)?;
                let d = st.reg_mut(dst.index());
                // A pointer's bytes swapped are some scalar (`check_reg_arg(DST_OP)`).
                if d.is_pointer() {
                    *d = Reg::unknown();
                    return Ok(());
                }
                // `scalar_byte_swap`: on this little-endian target `be` and `bswap` swap the
                // bytes, which moves the known bits (the tnum swaps with them) and loses the
                // bounds; `le` only truncates. Either keeps `bits` bits (`coerce_reg_to_size`).
                let swap = |x: u64| match bits {
                    16 => (x as u16).swap_bytes() as u64,
                    32 => (x as u32).swap_bytes() as u64,
                    _ => x.swap_bytes(),
                };
                let mut n = Reg::unknown();
                n.var_off = d.var_off;
                (n.umin, n.umax) = (d.umin, d.umax);
                if matches!(
                    order,
                    bpfsim_vm::isa::Endian::Be | bpfsim_vm::isa::Endian::Swap
                ) {
                    n.var_off = Tnum {
                        value: swap(d.var_off.value),
                        mask: swap(d.var_off.mask),
                    };
                    (n.umin, n.umax) = (0, u64::MAX);
                }
                if bits < 64 {
                    let mask = (1u64 << bits) - 1;
                    n.var_off = n.var_off.cast(u32::from(bits / 8));
                    if n.umin & !mask == n.umax & !mask {
                        (n.umin, n.umax) = (n.umin & mask, n.umax & mask);
                    } else {
                        (n.umin, n.umax) = (0, mask);
                    }
                    (n.smin, n.smax) = (n.umin as i64, n.umax as i64);
                } else {
                    (n.smin, n.smax) = if n.umin as i64 <= n.umax as i64 {
                        (n.umin as i64, n.umax as i64)
                    } else {
                        (i64::MIN, i64::MAX)
                    };
                }
                n.sync();
                *d = n;
                Ok(())
            }
            Insn::MovSx {
                width,
                dst,
                src,
                from,
            } => {
                self.check_reg_read(st, src)?;
                self.check_reg_write(dst)?;
                let s = *st.reg(src.index());
                if s.is_pointer() {
                    // A pointer sign-extended is some scalar (`mark_reg_unknown`).
                    *st.reg_mut(dst.index()) = Reg::unknown();
                    return Ok(());
                }
                let mut v = s;
                sign_extend(&mut v, from.bits());
                if width == Width::W32 {
                    v.zext32();
                }
                v.clear_id();
                *st.reg_mut(dst.index()) = v;
                Ok(())
            }
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => self.alu(st, width, op, dst, src),
            _ => Ok(()),
        }
    }

    fn alu(
        &mut self,
        st: &mut State,
        width: Width,
        op: AluOp,
        dst: R,
        src: Source,
    ) -> Result<(), String> {
        let alu32 = width == Width::W32;
        let src_reg = match src {
            Source::Reg(r) => {
                self.check_reg_read(st, r)?;
                *st.reg(r.index())
            }
            Source::Imm(imm) => {
                if matches!(op, AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod) && imm == 0 {
                    return Err("div by zero".to_string());
                }
                if matches!(op, AluOp::Lsh | AluOp::Rsh | AluOp::Arsh) {
                    let bits = if alu32 { 32 } else { 64 };
                    if imm < 0 || imm >= bits {
                        return Err(format!("invalid shift {imm}"));
                    }
                }
                if alu32 {
                    Reg::known(imm as u32 as u64)
                } else {
                    Reg::known(imm as i64 as u64)
                }
            }
        };
        if op == AluOp::Mov {
            self.check_reg_write(dst)?;
            let mut v = src_reg;
            // A copy of a scalar shares its id, so that bounds learnt on one apply to the other
            // (`assign_scalar_id_before_mov`); a 32-bit copy only of a value that fits.
            if let (Source::Reg(r), true) = (src, v.is_scalar()) {
                let fits = !alu32 || 64 - v.umax.leading_zeros() <= 32;
                if fits {
                    let mut s = v;
                    s.link_for_copy(|| self.new_id());
                    *st.reg_mut(r.index()) = s;
                    v = s;
                }
            }
            if alu32 {
                if v.is_pointer() {
                    // A 32-bit copy of a pointer is a scalar (privileged programs may leak it).
                    v = Reg::unknown();
                }
                if 64 - src_reg.umax.leading_zeros() > 32 || !src_reg.is_scalar() {
                    v.clear_id();
                }
                v.zext32();
            }
            *st.reg_mut(dst.index()) = v;
            return Ok(());
        }
        self.check_reg_read(st, dst)?;
        self.check_reg_write(dst)?;
        let d = *st.reg(dst.index());
        if d.is_pointer() || src_reg.is_pointer() {
            // A scalar added to a pointer becomes part of an address: its exact range matters.
            if let Source::Reg(r) = src {
                if d.is_pointer() && src_reg.is_scalar() {
                    self.mark_precise(st, r.index());
                } else if d.is_scalar() && src_reg.is_pointer() {
                    self.mark_precise(st, dst.index());
                }
            }
            let r = self.ptr_alu(d, src_reg, op, alu32, dst, src)?;
            *st.reg_mut(dst.index()) = r;
            return Ok(());
        }
        let mut r = d;
        let sop = match op {
            AluOp::Add => Some(ScalarOp::Add),
            AluOp::Sub => Some(ScalarOp::Sub),
            AluOp::Mul => Some(ScalarOp::Mul),
            AluOp::And => Some(ScalarOp::And),
            AluOp::Or => Some(ScalarOp::Or),
            AluOp::Xor => Some(ScalarOp::Xor),
            AluOp::Lsh => Some(ScalarOp::Lsh),
            AluOp::Rsh => Some(ScalarOp::Rsh),
            AluOp::Arsh => Some(ScalarOp::Arsh),
            _ => None,
        };
        match sop {
            Some(o) => {
                scalar_alu(&mut r, &src_reg, o, alu32);
                // A copy plus or minus a constant stays linked to its copies, the constant kept
                // as the delta (`BPF_ADD_CONST`), once: a second one, a 64-bit one beyond s32,
                // or a 32-bit one on a value wider than 32 bits unlinks.
                let konst = if alu32 {
                    src_reg.var_off.subreg().is_const()
                } else {
                    src_reg.is_const()
                };
                if matches!(o, ScalarOp::Add | ScalarOp::Sub) && d.id != 0 && konst {
                    let val = if alu32 {
                        src_reg.var_off.value as u32 as u64
                    } else {
                        src_reg.var_off.value
                    };
                    let mut off = Some(val as i32);
                    if (!alu32 && i32::try_from(val as i64).is_err())
                        || (alu32 && d.umax > u32::MAX as u64)
                    {
                        off = None;
                    }
                    if o == ScalarOp::Sub {
                        off = off.and_then(i32::checked_neg);
                    }
                    match off {
                        Some(off) if d.add_const == 0 => {
                            r.id = d.id;
                            r.add_const = if alu32 { ADD_CONST32 } else { ADD_CONST64 };
                            r.off = off;
                        }
                        _ => r.off = 0,
                    }
                }
            }
            None => {
                // Division and modulo: the kernel computes no range for them
                // (`is_safe_to_compute_dst_reg_range`), not even of constants, and leaves the
                // whole register unknown, the 32-bit forms too.
                r = Reg::unknown();
            }
        }
        *st.reg_mut(dst.index()) = r;
        Ok(())
    }

    /// `adjust_ptr_min_max_vals` and the pointer rules around it.
    fn ptr_alu(
        &mut self,
        d: Reg,
        s: Reg,
        op: AluOp,
        alu32: bool,
        dst: R,
        src: Source,
    ) -> Result<Reg, String> {
        let dn = dst.num();
        if alu32 {
            // A 32-bit difference of pointers is a meaningless scalar a privileged program may
            // compute; anything else is refused.
            if op == AluOp::Sub {
                return Ok(Reg::unknown());
            }
            return Err(format!("R{dn} 32-bit pointer arithmetic prohibited"));
        }
        // pointer - pointer: a scalar distance (privileged programs may compute any).
        if d.is_pointer() && s.is_pointer() {
            if op == AluOp::Sub {
                return Ok(Reg::unknown());
            }
            let sn = match src {
                Source::Reg(r) => r.num(),
                Source::Imm(_) => 0,
            };
            return Err(match op {
                AluOp::Sub => format!("R{dn} pointer -= pointer prohibited"),
                AluOp::Add => format!("R{sn} pointer += pointer prohibited"),
                _ => format!(
                    "R{dn} pointer arithmetic with {} operator prohibited",
                    op_str(op)
                ),
            });
        }
        let (ptr, off, ptr_is_dst) = if d.is_pointer() {
            (d, s, true)
        } else {
            (s, d, false)
        };
        if !ptr_is_dst && op == AluOp::Sub {
            return Err(format!("R{dn} tried to subtract pointer from scalar"));
        }
        if !ptr_is_dst && op != AluOp::Add {
            return Err(format!(
                "R{dn} pointer arithmetic with {} operator prohibited",
                op_str(op)
            ));
        }
        match op {
            AluOp::Add | AluOp::Sub => {}
            AluOp::And | AluOp::Or | AluOp::Xor => {
                return Err(format!(
                    "R{dn} bitwise operator {} on pointer prohibited",
                    op_str(op)
                ))
            }
            _ => {
                return Err(format!(
                    "R{dn} pointer arithmetic with {} operator prohibited",
                    op_str(op)
                ))
            }
        }
        let name = type_str(&ptr);
        if ptr.maybe_null {
            return Err(format!(
                "R{dn} pointer arithmetic on {name} prohibited, null-check it first"
            ));
        }
        if matches!(ptr.ty, RegType::MapPtr | RegType::PacketEnd | RegType::Func)
            || ptr.ty.is_sock()
        {
            return Err(format!("R{dn} pointer arithmetic on {name} prohibited"));
        }
        // check_reg_sane_offset, on the scalar and on the pointer.
        let known = off.is_const();
        let val = off.var_off.value as i64;
        if known && (val >= MAX_VAR_OFF || val <= -MAX_VAR_OFF) {
            return Err(format!(
                "math between {name} pointer and {val} is not allowed"
            ));
        }
        if !known && off.smin == i64::MIN {
            return Err(format!(
                "math between {name} pointer and register with unbounded min value is not allowed"
            ));
        }
        if !known && (off.smin >= MAX_VAR_OFF || off.smin <= -MAX_VAR_OFF) {
            return Err(format!(
                "value {} makes {name} pointer be out of bounds",
                off.smin
            ));
        }
        // JITs may not cope with a frame pointer moved by subtraction (`invalid fp arithmetic`).
        if op == AluOp::Sub && ptr.ty == RegType::Stack {
            return Err(format!("R{dn} subtraction from stack pointer prohibited"));
        }
        let mut r = ptr;
        if off.is_const() {
            let v = off.var_off.value as i64;
            let delta = if op == AluOp::Sub {
                v.wrapping_neg()
            } else {
                v
            };
            let new = r.off as i64 + delta;
            if !(-(1 << 29)..=(1 << 29)).contains(&new) {
                return Err(format!("value {v} makes {name} pointer be out of bounds"));
            }
            r.off = new as i32;
            return Ok(r);
        }
        if ptr.ty == RegType::Ctx {
            // A variable offset into the context is refused when it is dereferenced.
        }
        if op == AluOp::Sub && !ptr_is_dst {
            return Err(format!("R{dn} tried to subtract pointer from scalar"));
        }
        // A variable offset: the bounds move into var_off and the bounds of the pointer.
        let sop = if op == AluOp::Sub {
            ScalarOp::Sub
        } else {
            ScalarOp::Add
        };
        let mut var = Reg::unknown();
        var.var_off = r.var_off;
        var.smin = r.smin;
        var.smax = r.smax;
        var.umin = r.umin;
        var.umax = r.umax;
        var.sync();
        scalar_alu(&mut var, &off, sop, false);
        r.var_off = var.var_off;
        r.smin = var.smin;
        r.smax = var.smax;
        r.umin = var.umin;
        r.umax = var.umax;
        r.s32min = var.s32min;
        r.s32max = var.s32max;
        r.u32min = var.u32min;
        r.u32max = var.u32max;
        if r.is_pkt() {
            // A new variable part: its range must be proven again.
            r.id = self.new_id();
            r.range = 0;
        }
        Ok(r)
    }

    /// `lddw`: a constant, a map pointer, a map value's address, or a subprogram.
    pub fn check_ld_imm(
        &mut self,
        st: &mut State,
        pc: usize,
        dst: R,
        imm: Imm64,
    ) -> Result<(), String> {
        self.check_reg_write(dst)?;
        let map = |idx: i32| -> Result<u32, String> {
            if idx < 0 || idx as usize >= self.opts.maps.len() {
                return Err(format!("fd_array[{idx}] is not a valid map"));
            }
            Ok(idx as u32)
        };
        let r = match imm {
            Imm64::Imm(v) => Reg::known(v),
            Imm64::MapIdx(i) => {
                let mut r = Reg::ptr(RegType::MapPtr);
                r.map = map(i)?;
                r
            }
            Imm64::MapIdxValue { idx, off } => {
                let m = map(idx)?;
                let value_size = self.opts.maps[m as usize].value_size;
                if off as u32 >= 1 << 29 {
                    return Err(format!("direct value offset of {} is not allowed", off as u32));
                }
                if off < 0 || off as u32 >= value_size.max(1) {
                    return Err(format!(
                        "invalid access to map value pointer, value_size={value_size} off={off}"
                    ));
                }
                let mut r = Reg::ptr(RegType::MapValue);
                r.map = m;
                r.off = off;
                r
            }
            Imm64::Func(off) => {
                if !self.opts.func_info {
                    return Err("missing btf func_info".to_string());
                }
                let mut r = Reg::ptr(RegType::Func);
                r.subprog = (pc as i64 + 1 + off as i64) as u32;
                r
            }
            Imm64::MapFd(_) | Imm64::MapValue { .. } => {
                return Err(format!(
                    "insn {pc}: a map referenced by file descriptor: give bpfsim the object, or use map_idx"
                ))
            }
            Imm64::BtfId { .. } => {
                return Err("kernel variables (__ksym, BPF_PSEUDO_BTF_ID) are not simulated".to_string())
            }
        };
        *st.reg_mut(dst.index()) = r;
        Ok(())
    }
}

/// `BPF_MAX_VAR_OFF`.
const MAX_VAR_OFF: i64 = 1 << 29;
