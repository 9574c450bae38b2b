//! Register states: a type, a fixed offset, and for scalars (and the variable part of pointers)
//! a tnum with signed/unsigned 64- and 32-bit bounds, kept consistent as the kernel keeps them
//! (`reg_bounds_sync`).

use super::tnum::Tnum;

/// `enum bpf_reg_type`, the types bpfsim tracks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RegType {
    NotInit,
    Scalar,
    Ctx,
    /// `CONST_PTR_TO_MAP`: from `lddw rN, map`.
    MapPtr,
    MapValue,
    MapKey,
    Stack,
    PacketMeta,
    Packet,
    PacketEnd,
    /// `PTR_TO_MEM`; with `ringbuf`, memory reserved in a ring buffer.
    Mem,
    /// A subprogram's address (`lddw rN, func`).
    Func,
    /// `PTR_TO_SOCKET`: a full socket (`struct bpf_sock`), from `bpf_sk_lookup_*`.
    Sock,
    /// `PTR_TO_SOCK_COMMON`: a socket that may be a request or time-wait one (`skb->sk`,
    /// `bpf_skc_lookup_tcp`).
    SockCommon,
    /// `PTR_TO_TCP_SOCK`.
    TcpSock,
    /// `PTR_TO_BTF_ID`: a kernel struct described by the kernel's BTF ([`Reg::btf_id`]), with
    /// its trust in [`Reg::btf_flags`]; loads through it walk the struct (`btf_struct_access`).
    BtfId,
}

impl RegType {
    /// `type_is_sk_pointer`.
    pub fn is_sock(self) -> bool {
        matches!(self, RegType::Sock | RegType::SockCommon | RegType::TcpSock)
    }
}

/// One register.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Reg {
    pub ty: RegType,
    /// `PTR_MAYBE_NULL`.
    pub maybe_null: bool,
    /// `MEM_RINGBUF` on `Mem`.
    pub ringbuf: bool,
    /// `MEM_RDONLY`.
    pub rdonly: bool,
    /// Fixed offset of a pointer.
    pub off: i32,
    pub var_off: Tnum,
    pub smin: i64,
    pub smax: i64,
    pub umin: u64,
    pub umax: u64,
    pub s32min: i32,
    pub s32max: i32,
    pub u32min: u32,
    pub u32max: u32,
    /// Shared by copies of one pointer (null checks, packet ranges) or of one scalar.
    pub id: u32,
    /// `BPF_ADD_CONST64` / `BPF_ADD_CONST32` (0 for neither): a scalar that is its id's value
    /// plus the constant in `off` (`r1 = r2; r1 += 4`, or `w1 += 4`), so that bounds learnt on
    /// either carry over to the other.
    pub add_const: u8,
    /// The reference this pointer holds (ringbuf reservations), 0 for none.
    pub ref_obj_id: u32,
    /// Packet pointers: bytes proven readable from `off`.
    pub range: i32,
    /// Map pointers and values: the map (index into the verifier's map table).
    pub map: u32,
    /// `Mem`: its size.
    pub mem_size: u32,
    /// `Stack`: the frame it points into.
    pub frameno: u8,
    /// `Func`: the subprogram's first instruction.
    pub subprog: u32,
    /// `BtfId`: the struct's id in the kernel's BTF.
    pub btf_id: u32,
    /// `BtfId`: its name, interned (`btf_name`), for the log.
    pub btf_name: u32,
    /// `BtfId` (and untrusted `Mem`): `BTF_TRUSTED`, `BTF_UNTRUSTED`, `BTF_RCU`,
    /// `BTF_USER`, `BTF_PERCPU`.
    pub btf_flags: u8,
}

/// `PTR_TRUSTED`.
pub const BTF_TRUSTED: u8 = 1;
/// `PTR_UNTRUSTED`.
pub const BTF_UNTRUSTED: u8 = 2;
/// `MEM_RCU`.
pub const BTF_RCU: u8 = 4;
/// `MEM_USER`.
pub const BTF_USER: u8 = 8;
/// `MEM_PERCPU`.
pub const BTF_PERCPU: u8 = 16;

/// Kernel type names as registers refer to them (a `Reg` is `Copy`, so it holds an index):
/// the names by index, and the index of each name.
type Names = (Vec<String>, std::collections::HashMap<String, u32>);

fn names() -> &'static std::sync::Mutex<Names> {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<Names>> = std::sync::OnceLock::new();
    NAMES.get_or_init(Default::default)
}

/// The index of `name` for [`Reg::btf_name`].
pub fn intern_btf_name(name: &str) -> u32 {
    let mut n = names().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&i) = n.1.get(name) {
        return i;
    }
    let i = n.0.len() as u32;
    n.0.push(name.to_string());
    n.1.insert(name.to_string(), i);
    i
}

/// The name [`intern_btf_name`] gave `i`.
pub fn btf_name(i: u32) -> String {
    let n = names().lock().unwrap_or_else(|e| e.into_inner());
    n.0.get(i as usize).cloned().unwrap_or_default()
}

/// [`Reg::add_const`]: linked by a 64-bit addition.
pub const ADD_CONST64: u8 = 1;
/// [`Reg::add_const`]: linked by a 32-bit addition (the copy is the sum's low half, zero-extended).
pub const ADD_CONST32: u8 = 2;

impl Reg {
    pub const NOT_INIT: Reg = Reg {
        ty: RegType::NotInit,
        maybe_null: false,
        ringbuf: false,
        rdonly: false,
        off: 0,
        var_off: Tnum::UNKNOWN,
        smin: i64::MIN,
        smax: i64::MAX,
        umin: 0,
        umax: u64::MAX,
        s32min: i32::MIN,
        s32max: i32::MAX,
        u32min: 0,
        u32max: u32::MAX,
        id: 0,
        add_const: 0,
        ref_obj_id: 0,
        range: 0,
        map: 0,
        mem_size: 0,
        frameno: 0,
        subprog: 0,
        btf_id: 0,
        btf_name: 0,
        btf_flags: 0,
    };

    pub fn unknown() -> Reg {
        Reg {
            ty: RegType::Scalar,
            ..Reg::NOT_INIT
        }
    }

    pub fn known(v: u64) -> Reg {
        let mut r = Reg::unknown();
        r.set_known(v);
        r
    }

    /// A pointer of `ty` with a zero offset, known exactly.
    pub fn ptr(ty: RegType) -> Reg {
        let mut r = Reg::known(0);
        r.ty = ty;
        r
    }

    /// Unlink a scalar from its copies (the kernel's `reg->id = 0`, which drops
    /// `BPF_ADD_CONST` with the id).
    pub fn clear_id(&mut self) {
        self.id = 0;
        self.add_const = 0;
    }

    /// `assign_scalar_id_before_mov`: a scalar about to be copied gets an id its copy will
    /// share; one already linked with a delta starts a new link (one delta per link).
    pub fn link_for_copy(&mut self, new_id: impl FnOnce() -> u32) {
        if !self.is_scalar() {
            return;
        }
        if self.add_const != 0 {
            self.clear_id();
            self.off = 0;
        }
        if self.id == 0 && !self.is_const() {
            self.id = new_id();
        }
    }

    pub fn is_scalar(&self) -> bool {
        self.ty == RegType::Scalar
    }

    pub fn is_pointer(&self) -> bool {
        !matches!(self.ty, RegType::NotInit | RegType::Scalar)
    }

    pub fn is_pkt(&self) -> bool {
        matches!(self.ty, RegType::Packet | RegType::PacketMeta)
    }

    pub fn is_const(&self) -> bool {
        self.var_off.is_const()
    }

    pub fn set_known(&mut self, v: u64) {
        self.var_off = Tnum::konst(v);
        self.smin = v as i64;
        self.smax = v as i64;
        self.umin = v;
        self.umax = v;
        self.s32min = v as u32 as i32;
        self.s32max = v as u32 as i32;
        self.u32min = v as u32;
        self.u32max = v as u32;
    }

    pub fn set_unbounded(&mut self) {
        self.smin = i64::MIN;
        self.smax = i64::MAX;
        self.umin = 0;
        self.umax = u64::MAX;
        self.s32min = i32::MIN;
        self.s32max = i32::MAX;
        self.u32min = 0;
        self.u32max = u32::MAX;
    }

    pub fn set_unknown(&mut self) {
        *self = Reg::unknown();
    }

    fn set_unbounded64(&mut self) {
        self.smin = i64::MIN;
        self.smax = i64::MAX;
        self.umin = 0;
        self.umax = u64::MAX;
    }

    fn set_unbounded32(&mut self) {
        self.s32min = i32::MIN;
        self.s32max = i32::MAX;
        self.u32min = 0;
        self.u32max = u32::MAX;
    }

    /// `__update_reg_bounds`: bounds from what the tnum says.
    fn update_bounds(&mut self) {
        let v = self.var_off;
        self.smin = self.smin.max((v.value | (v.mask & i64::MIN as u64)) as i64);
        self.smax = self.smax.min((v.value | (v.mask & i64::MAX as u64)) as i64);
        self.umin = self.umin.max(v.value);
        self.umax = self.umax.min(v.value | v.mask);
        let v32 = v.subreg();
        self.s32min = self
            .s32min
            .max((v32.value as u32 | (v32.mask as u32 & i32::MIN as u32)) as i32);
        self.s32max = self
            .s32max
            .min((v32.value as u32 | (v32.mask as u32 & i32::MAX as u32)) as i32);
        self.u32min = self.u32min.max(v32.value as u32);
        self.u32max = self.u32max.min((v32.value | v32.mask) as u32);
    }

    /// `__reg_deduce_bounds`: signed and unsigned, 32- and 64-bit bounds refine each other.
    fn deduce_bounds(&mut self) {
        // 64-bit bounds with the same upper half fix the 32-bit ones.
        if self.umin >> 32 == self.umax >> 32 {
            self.u32min = self.u32min.max(self.umin as u32);
            self.u32max = self.u32max.min(self.umax as u32);
            if (self.umin as i32) <= (self.umax as i32) {
                self.s32min = self.s32min.max(self.umin as i32);
                self.s32max = self.s32max.min(self.umax as i32);
            }
        }
        if (self.smin as u64) >> 32 == (self.smax as u64) >> 32 {
            if (self.smin as u32) <= (self.smax as u32) {
                self.u32min = self.u32min.max(self.smin as u32);
                self.u32max = self.u32max.min(self.smax as u32);
            }
            if (self.smin as i32) <= (self.smax as i32) {
                self.s32min = self.s32min.max(self.smin as i32);
                self.s32max = self.s32max.min(self.smax as i32);
            }
        }
        // Upper halves that are two consecutive numbers (0xffffffff then 0 included) with a
        // low half going from negative to non-negative: the low halves still form an s32 range.
        for (lo, hi) in [(self.umin, self.umax), (self.smin as u64, self.smax as u64)] {
            if ((lo >> 32) as u32).wrapping_add(1) == (hi >> 32) as u32
                && (lo as i32) < 0
                && (hi as i32) >= 0
            {
                self.s32min = self.s32min.max(lo as i32);
                self.s32max = self.s32max.min(hi as i32);
            }
        }
        // 32-bit: a sign-consistent range carries over between signed and unsigned.
        if (self.u32min as i32) <= (self.u32max as i32) {
            self.s32min = self.s32min.max(self.u32min as i32);
            self.s32max = self.s32max.min(self.u32max as i32);
        }
        if (self.s32min as u32) <= (self.s32max as u32) {
            self.u32min = self.u32min.max(self.s32min as u32);
            self.u32max = self.u32max.min(self.s32max as u32);
        }
        // 64-bit likewise.
        if (self.umin as i64) <= (self.umax as i64) {
            self.smin = self.smin.max(self.umin as i64);
            self.smax = self.smax.min(self.umax as i64);
        }
        if (self.smin as u64) <= (self.smax as u64) {
            self.umin = self.umin.max(self.smin as u64);
            self.umax = self.umax.min(self.smax as u64);
        }
        // The 32-bit bounds give the low half of the 64-bit ones.
        let new_umin = (self.umin & !0xffff_ffff) | self.u32min as u64;
        let new_umax = (self.umax & !0xffff_ffff) | self.u32max as u64;
        if new_umin <= new_umax {
            self.umin = self.umin.max(new_umin);
            self.umax = self.umax.min(new_umax);
        }
        let new_smin = ((self.smin as u64 & !0xffff_ffff) | self.u32min as u64) as i64;
        let new_smax = ((self.smax as u64 & !0xffff_ffff) | self.u32max as u64) as i64;
        if new_smin <= new_smax {
            self.smin = self.smin.max(new_smin);
            self.smax = self.smax.min(new_smax);
        }
    }

    /// `__reg_bound_offset`: the tnum from the bounds.
    fn bound_offset(&mut self) {
        let v64 = self.var_off.intersect(Tnum::range(self.umin, self.umax));
        let v32 = self
            .var_off
            .subreg()
            .intersect(Tnum::range(self.u32min as u64, self.u32max as u64));
        self.var_off = v64.with_subreg(v32);
    }

    /// `reg_bounds_sync`. Bounds that cross (an impossible state) leave the register unknown.
    pub fn sync(&mut self) {
        self.update_bounds();
        self.deduce_bounds();
        self.deduce_bounds();
        self.bound_offset();
        self.update_bounds();
        if self.smin > self.smax
            || self.umin > self.umax
            || self.s32min > self.s32max
            || self.u32min > self.u32max
        {
            let ty = self.ty;
            *self = Reg::unknown();
            self.ty = ty;
        }
    }

    /// After a 32-bit operation: the upper half is zero (`zext_32_to_64`).
    pub fn zext32(&mut self) {
        self.var_off = self.var_off.subreg();
        if self.s32min >= 0 {
            self.smin = self.s32min as i64;
            self.smax = self.s32max as i64;
        } else {
            self.smin = 0;
            self.smax = u32::MAX as i64;
        }
        self.umin = self.u32min as u64;
        self.umax = self.u32max as u64;
        self.sync();
    }

    /// The 64-bit bounds from the 32-bit ones alone, after a 32-bit operation.
    fn bounds_from_32(&mut self) {
        self.set_unbounded64();
        self.zext32();
    }
}

/// The ALU operations on scalars (`adjust_scalar_min_max_vals`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ScalarOp {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Lsh,
    Rsh,
    Arsh,
}

fn add32(a: &Reg, b: &Reg, d: &mut Reg) {
    let (s1, o1) = a.s32min.overflowing_add(b.s32min);
    let (s2, o2) = a.s32max.overflowing_add(b.s32max);
    if o1 || o2 {
        d.s32min = i32::MIN;
        d.s32max = i32::MAX;
    } else {
        d.s32min = s1;
        d.s32max = s2;
    }
    let (u1, o1) = a.u32min.overflowing_add(b.u32min);
    let (u2, o2) = a.u32max.overflowing_add(b.u32max);
    if o1 || o2 {
        d.u32min = 0;
        d.u32max = u32::MAX;
    } else {
        d.u32min = u1;
        d.u32max = u2;
    }
}

fn add64(a: &Reg, b: &Reg, d: &mut Reg) {
    let (s1, o1) = a.smin.overflowing_add(b.smin);
    let (s2, o2) = a.smax.overflowing_add(b.smax);
    if o1 || o2 {
        d.smin = i64::MIN;
        d.smax = i64::MAX;
    } else {
        d.smin = s1;
        d.smax = s2;
    }
    let (u1, o1) = a.umin.overflowing_add(b.umin);
    let (u2, o2) = a.umax.overflowing_add(b.umax);
    if o1 || o2 {
        d.umin = 0;
        d.umax = u64::MAX;
    } else {
        d.umin = u1;
        d.umax = u2;
    }
}

fn sub32(a: &Reg, b: &Reg, d: &mut Reg) {
    let (s1, o1) = a.s32min.overflowing_sub(b.s32max);
    let (s2, o2) = a.s32max.overflowing_sub(b.s32min);
    if o1 || o2 {
        d.s32min = i32::MIN;
        d.s32max = i32::MAX;
    } else {
        d.s32min = s1;
        d.s32max = s2;
    }
    if a.u32min < b.u32max {
        d.u32min = 0;
        d.u32max = u32::MAX;
    } else {
        d.u32min = a.u32min - b.u32max;
        d.u32max = a.u32max - b.u32min;
    }
}

fn sub64(a: &Reg, b: &Reg, d: &mut Reg) {
    let (s1, o1) = a.smin.overflowing_sub(b.smax);
    let (s2, o2) = a.smax.overflowing_sub(b.smin);
    if o1 || o2 {
        d.smin = i64::MIN;
        d.smax = i64::MAX;
    } else {
        d.smin = s1;
        d.smax = s2;
    }
    if a.umin < b.umax {
        d.umin = 0;
        d.umax = u64::MAX;
    } else {
        d.umin = a.umin - b.umax;
        d.umax = a.umax - b.umin;
    }
}

fn mul64(a: &Reg, b: &Reg, d: &mut Reg) {
    match (a.umax.checked_mul(b.umax), a.umin.checked_mul(b.umin)) {
        (Some(hi), Some(lo)) => {
            d.umin = lo;
            d.umax = hi;
        }
        _ => {
            d.umin = 0;
            d.umax = u64::MAX;
        }
    }
    let products = [
        a.smin.checked_mul(b.smin),
        a.smin.checked_mul(b.smax),
        a.smax.checked_mul(b.smin),
        a.smax.checked_mul(b.smax),
    ];
    if products.iter().all(Option::is_some) {
        let p: Vec<i64> = products.iter().map(|x| x.unwrap_or(0)).collect();
        d.smin = *p.iter().min().unwrap_or(&i64::MIN);
        d.smax = *p.iter().max().unwrap_or(&i64::MAX);
    } else {
        d.smin = i64::MIN;
        d.smax = i64::MAX;
    }
}

fn mul32(a: &Reg, b: &Reg, d: &mut Reg) {
    match (
        a.u32max.checked_mul(b.u32max),
        a.u32min.checked_mul(b.u32min),
    ) {
        (Some(hi), Some(lo)) => {
            d.u32min = lo;
            d.u32max = hi;
        }
        _ => {
            d.u32min = 0;
            d.u32max = u32::MAX;
        }
    }
    let products = [
        a.s32min.checked_mul(b.s32min),
        a.s32min.checked_mul(b.s32max),
        a.s32max.checked_mul(b.s32min),
        a.s32max.checked_mul(b.s32max),
    ];
    if products.iter().all(Option::is_some) {
        let p: Vec<i32> = products.iter().map(|x| x.unwrap_or(0)).collect();
        d.s32min = *p.iter().min().unwrap_or(&i32::MIN);
        d.s32max = *p.iter().max().unwrap_or(&i32::MAX);
    } else {
        d.s32min = i32::MIN;
        d.s32max = i32::MAX;
    }
}

/// Whether the kernel computes a range for `op` at all (`is_safe_to_compute_dst_reg_range`):
/// shifts need a known amount below the width.
pub fn safe_to_compute(op: ScalarOp, src: &Reg, alu32: bool) -> bool {
    match op {
        ScalarOp::Lsh | ScalarOp::Rsh | ScalarOp::Arsh => {
            let bits = if alu32 { 32 } else { 64 };
            let known = if alu32 {
                src.u32min == src.u32max
            } else {
                src.umin == src.umax
            };
            known && (if alu32 { src.u32max as u64 } else { src.umax }) < bits
        }
        _ => true,
    }
}

/// `dst = dst op src` on scalars, 64- or 32-bit.
pub fn scalar_alu(dst: &mut Reg, src: &Reg, op: ScalarOp, alu32: bool) {
    if !safe_to_compute(op, src, alu32) {
        dst.set_unknown();
        if alu32 {
            dst.zext32();
        }
        return;
    }
    let a = *dst;
    let mut d = *dst;
    let (av, bv) = if alu32 {
        (a.var_off.subreg(), src.var_off.subreg())
    } else {
        (a.var_off, src.var_off)
    };
    match op {
        ScalarOp::Add => {
            add32(&a, src, &mut d);
            add64(&a, src, &mut d);
            d.var_off = av.add(bv);
        }
        ScalarOp::Sub => {
            sub32(&a, src, &mut d);
            sub64(&a, src, &mut d);
            d.var_off = av.sub(bv);
        }
        ScalarOp::Mul => {
            mul32(&a, src, &mut d);
            mul64(&a, src, &mut d);
            d.var_off = av.mul(bv);
        }
        ScalarOp::And | ScalarOp::Or | ScalarOp::Xor => {
            d.var_off = match op {
                ScalarOp::And => av.and(bv),
                ScalarOp::Or => av.or(bv),
                _ => av.xor(bv),
            };
            // Bounds from the resulting tnum, then the operation's own limits.
            d.set_unbounded();
            match op {
                ScalarOp::And => {
                    d.umax = a.umax.min(src.umax);
                    d.u32max = a.u32max.min(src.u32max);
                }
                ScalarOp::Or => {
                    d.umin = a.umin.max(src.umin);
                    d.u32min = a.u32min.max(src.u32min);
                }
                _ => {}
            }
        }
        ScalarOp::Lsh => {
            let s = if alu32 { src.u32min } else { src.umin as u32 };
            d.set_unbounded();
            if alu32 {
                if (a.u32max as u64) << s <= u32::MAX as u64 {
                    d.u32min = a.u32min << s;
                    d.u32max = a.u32max << s;
                }
            } else if s == 0 || a.umax <= u64::MAX >> s {
                d.umin = a.umin << s;
                d.umax = a.umax << s;
            }
            d.var_off = av.lshift(s);
        }
        ScalarOp::Rsh => {
            let s = if alu32 { src.u32min } else { src.umin as u32 };
            d.set_unbounded();
            if alu32 {
                d.u32min = a.u32min >> s;
                d.u32max = a.u32max >> s;
            } else {
                d.umin = a.umin >> s;
                d.umax = a.umax >> s;
            }
            d.var_off = av.rshift(s);
        }
        ScalarOp::Arsh => {
            let s = if alu32 { src.u32min } else { src.umin as u32 };
            d.set_unbounded();
            if alu32 {
                d.s32min = a.s32min >> s;
                d.s32max = a.s32max >> s;
            } else {
                d.smin = a.smin >> s;
                d.smax = a.smax >> s;
            }
            d.var_off = av.arshift(s, if alu32 { 32 } else { 64 });
        }
    }
    if alu32 {
        d.bounds_from_32();
    } else {
        // The 32-bit bounds of a 64-bit result are only what the tnum says.
        if matches!(
            op,
            ScalarOp::Lsh | ScalarOp::Rsh | ScalarOp::Arsh | ScalarOp::Mul
        ) {
            d.set_unbounded32();
        }
        d.sync();
    }
    d.ty = RegType::Scalar;
    d.clear_id();
    *dst = d;
}

/// Conditional jump operators.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cond {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    Set,
}

impl Cond {
    /// The condition that holds on the other branch.
    pub fn negate(self) -> Cond {
        match self {
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Gt => Cond::Le,
            Cond::Ge => Cond::Lt,
            Cond::Lt => Cond::Ge,
            Cond::Le => Cond::Gt,
            Cond::Sgt => Cond::Sle,
            Cond::Sge => Cond::Slt,
            Cond::Slt => Cond::Sge,
            Cond::Sle => Cond::Sgt,
            // JSET has no negation as a comparison: its false branch is handled on its own.
            Cond::Set => Cond::Set,
        }
    }

    /// `a op b` seen from `b`: `a > b` is `b < a`.
    pub fn flip(self) -> Cond {
        match self {
            Cond::Gt => Cond::Lt,
            Cond::Ge => Cond::Le,
            Cond::Lt => Cond::Gt,
            Cond::Le => Cond::Ge,
            Cond::Sgt => Cond::Slt,
            Cond::Sge => Cond::Sle,
            Cond::Slt => Cond::Sgt,
            Cond::Sle => Cond::Sge,
            c => c,
        }
    }
}

/// Bounds as one width sees them: (umin, umax, smin, smax, tnum).
fn view(r: &Reg, w32: bool) -> (u64, u64, i64, i64, Tnum) {
    if w32 {
        (
            r.u32min as u64,
            r.u32max as u64,
            r.s32min as i64,
            r.s32max as i64,
            r.var_off.subreg(),
        )
    } else {
        (r.umin, r.umax, r.smin, r.smax, r.var_off)
    }
}

/// `is_scalar_branch_taken`: Some(true) when `a op b` always holds, Some(false) when never.
pub fn branch_taken(a: &Reg, b: &Reg, op: Cond, w32: bool) -> Option<bool> {
    let (aumin, aumax, asmin, asmax, at) = view(a, w32);
    let (bumin, bumax, bsmin, bsmax, bt) = view(b, w32);
    let known = |t: Tnum| t.is_const();
    match op {
        Cond::Eq | Cond::Ne => {
            let eq = if known(at) && known(bt) {
                Some(at.value == bt.value)
            } else if aumin > bumax
                || aumax < bumin
                || asmin > bsmax
                || asmax < bsmin
                || (at.value ^ bt.value) & !(at.mask | bt.mask) != 0
            {
                Some(false)
            } else {
                None
            };
            eq.map(|e| if op == Cond::Eq { e } else { !e })
        }
        Cond::Set => {
            if (at.value & bt.value) != 0 {
                Some(true)
            } else if ((at.value | at.mask) & (bt.value | bt.mask)) == 0 {
                Some(false)
            } else {
                None
            }
        }
        Cond::Gt => ord(aumin > bumax, aumax <= bumin),
        Cond::Ge => ord(aumin >= bumax, aumax < bumin),
        Cond::Lt => ord(aumax < bumin, aumin >= bumax),
        Cond::Le => ord(aumax <= bumin, aumin > bumax),
        Cond::Sgt => ord(asmin > bsmax, asmax <= bsmin),
        Cond::Sge => ord(asmin >= bsmax, asmax < bsmin),
        Cond::Slt => ord(asmax < bsmin, asmin >= bsmax),
        Cond::Sle => ord(asmax <= bsmin, asmin > bsmax),
    }
}

fn ord(always: bool, never: bool) -> Option<bool> {
    if always {
        Some(true)
    } else if never {
        Some(false)
    } else {
        None
    }
}

/// `regs_refine_cond_op`: narrow `a` and `b` knowing `a op b` holds.
pub fn refine(a: &mut Reg, b: &mut Reg, op: Cond, w32: bool) {
    if w32 {
        match op {
            Cond::Eq => {
                let lo = a.u32min.max(b.u32min);
                let hi = a.u32max.min(b.u32max);
                let slo = a.s32min.max(b.s32min);
                let shi = a.s32max.min(b.s32max);
                for r in [&mut *a, &mut *b] {
                    r.u32min = lo;
                    r.u32max = hi;
                    r.s32min = slo;
                    r.s32max = shi;
                }
                let t = a.var_off.subreg().intersect(b.var_off.subreg());
                a.var_off = a.var_off.with_subreg(t);
                b.var_off = b.var_off.with_subreg(t);
            }
            Cond::Ne => ne_const32(a, b),
            Cond::Gt => {
                a.u32min = a.u32min.max(b.u32min.saturating_add(1));
                b.u32max = b.u32max.min(a.u32max.saturating_sub(1));
            }
            Cond::Ge => {
                a.u32min = a.u32min.max(b.u32min);
                b.u32max = b.u32max.min(a.u32max);
            }
            Cond::Lt => refine(b, a, Cond::Gt, true),
            Cond::Le => refine(b, a, Cond::Ge, true),
            Cond::Sgt => {
                a.s32min = a.s32min.max(b.s32min.saturating_add(1));
                b.s32max = b.s32max.min(a.s32max.saturating_sub(1));
            }
            Cond::Sge => {
                a.s32min = a.s32min.max(b.s32min);
                b.s32max = b.s32max.min(a.s32max);
            }
            Cond::Slt => refine(b, a, Cond::Sgt, true),
            Cond::Sle => refine(b, a, Cond::Sge, true),
            Cond::Set => {}
        }
    } else {
        match op {
            Cond::Eq => {
                let lo = a.umin.max(b.umin);
                let hi = a.umax.min(b.umax);
                let slo = a.smin.max(b.smin);
                let shi = a.smax.min(b.smax);
                for r in [&mut *a, &mut *b] {
                    r.umin = lo;
                    r.umax = hi;
                    r.smin = slo;
                    r.smax = shi;
                }
                let t = a.var_off.intersect(b.var_off);
                a.var_off = t;
                b.var_off = t;
            }
            Cond::Ne => ne_const64(a, b),
            Cond::Gt => {
                a.umin = a.umin.max(b.umin.saturating_add(1));
                b.umax = b.umax.min(a.umax.saturating_sub(1));
            }
            Cond::Ge => {
                a.umin = a.umin.max(b.umin);
                b.umax = b.umax.min(a.umax);
            }
            Cond::Lt => refine(b, a, Cond::Gt, false),
            Cond::Le => refine(b, a, Cond::Ge, false),
            Cond::Sgt => {
                a.smin = a.smin.max(b.smin.saturating_add(1));
                b.smax = b.smax.min(a.smax.saturating_sub(1));
            }
            Cond::Sge => {
                a.smin = a.smin.max(b.smin);
                b.smax = b.smax.min(a.smax);
            }
            Cond::Slt => refine(b, a, Cond::Sgt, false),
            Cond::Sle => refine(b, a, Cond::Sge, false),
            Cond::Set => {}
        }
    }
    a.sync();
    b.sync();
}

/// `!=` a constant: only a bound equal to it moves.
fn ne_const64(a: &mut Reg, b: &mut Reg) {
    let (ca, cb) = (*a, *b);
    for (x, y) in [(&mut *a, cb), (&mut *b, ca)] {
        if !y.is_const() {
            continue;
        }
        let v = y.var_off.value;
        if x.umin == v && x.umin < x.umax {
            x.umin += 1;
        } else if x.umax == v && x.umin < x.umax {
            x.umax -= 1;
        }
        if x.smin == v as i64 && x.smin < x.smax {
            x.smin += 1;
        } else if x.smax == v as i64 && x.smin < x.smax {
            x.smax -= 1;
        }
    }
}

fn ne_const32(a: &mut Reg, b: &mut Reg) {
    let (ca, cb) = (*a, *b);
    for (x, y) in [(&mut *a, cb), (&mut *b, ca)] {
        if !y.var_off.subreg().is_const() {
            continue;
        }
        let v = y.var_off.value as u32;
        if x.u32min == v && x.u32min < x.u32max {
            x.u32min += 1;
        } else if x.u32max == v && x.u32min < x.u32max {
            x.u32max -= 1;
        }
        if x.s32min == v as i32 && x.s32min < x.s32max {
            x.s32min += 1;
        } else if x.s32max == v as i32 && x.s32min < x.s32max {
            x.s32max -= 1;
        }
    }
}

/// The false branch of `if a & b` with a constant `b`: those bits of `a` are 0.
pub fn refine_jset_false(a: &mut Reg, b: &Reg, w32: bool) {
    if !b.is_const() {
        return;
    }
    let bits = if w32 {
        b.var_off.value & 0xffff_ffff
    } else {
        b.var_off.value
    };
    a.var_off = a.var_off.and(Tnum::konst(!bits));
    a.sync();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_bound_values() {
        let mut r = Reg::unknown();
        scalar_alu(&mut r, &Reg::known(0xff), ScalarOp::And, false);
        assert_eq!((r.umin, r.umax, r.smin, r.smax), (0, 255, 0, 255));
        scalar_alu(&mut r, &Reg::known(16), ScalarOp::Add, false);
        assert_eq!((r.umin, r.umax), (16, 271));
        let mut k = Reg::known(5);
        scalar_alu(&mut k, &Reg::known(3), ScalarOp::Mul, true);
        assert!(k.is_const() && k.var_off.value == 15);
    }

    #[test]
    fn comparisons_refine_and_decide() {
        let mut a = Reg::unknown();
        let mut b = Reg::known(10);
        refine(&mut a, &mut b, Cond::Lt, false);
        assert_eq!((a.umin, a.umax), (0, 9));
        assert_eq!(
            branch_taken(&a, &Reg::known(20), Cond::Lt, false),
            Some(true)
        );
        assert_eq!(branch_taken(&a, &Reg::known(5), Cond::Lt, false), None);
        let mut c = Reg::unknown();
        scalar_alu(&mut c, &Reg::known(0xf), ScalarOp::And, true);
        assert_eq!(
            branch_taken(&c, &Reg::known(16), Cond::Ge, false),
            Some(false)
        );
    }
}
