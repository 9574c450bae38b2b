//! The kernel's notation for register and stack states in the verifier log (`print_reg_state`,
//! `print_scalar_ranges`, `print_verifier_state` in kernel/bpf/log.c, as of 6.18): what follows
//! `; ` after an instruction, and the whole-state lines of level 2.

use std::fmt::Write;

use crate::domain::reg::{Reg, RegType};
use crate::domain::state::{Byte, Frame, Ref, Slot};
use crate::domain::tnum::Tnum;
use crate::MapInfo;

/// Numbers that fit an s16 print in decimal, others in hex (`verbose_snum`); a negative one's
/// hex is its two's complement, as `%#llx` prints it.
pub fn snum(v: i64) -> String {
    if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
        v.to_string()
    } else {
        hex(v as u64)
    }
}

/// `verbose_unum`: up to `S16_MAX` in decimal, above in hex.
pub fn unum(v: u64) -> String {
    if v <= i16::MAX as u64 {
        v.to_string()
    } else {
        hex(v)
    }
}

/// The kernel's `%#llx`, which (unlike C's) writes zero as `0x0`.
fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// `tnum_strn`: `(value; mask)`.
pub fn tnum(t: Tnum) -> String {
    format!("({}; {})", hex(t.value), hex(t.mask))
}

/// `print_scalar_ranges`: each bound that says something, a minimum or maximum merged with the
/// later ones of the same kind (`smin=umin32=...`) that hold the same value, never a negative
/// signed one with an unsigned one.
fn scalar_ranges(r: &Reg, out: &mut Vec<String>) {
    // (name, value as the kernel holds it in a u64, omitted)
    let s32 = |v: i32| -> u64 {
        // Large 32-bit signed bounds print as their u32 pattern (0x80000000), small negative
        // ones in decimal.
        if (i16::MIN as i32..=i16::MAX as i32).contains(&v) {
            v as i64 as u64
        } else {
            v as u32 as u64
        }
    };
    let mut m: [(&str, u64, bool); 8] = [
        ("smin", r.smin as u64, r.smin == i64::MIN),
        ("smax", r.smax as u64, r.smax == i64::MAX),
        ("umin", r.umin, r.umin == 0),
        ("umax", r.umax, r.umax == u64::MAX),
        ("smin32", s32(r.s32min), r.s32min == i32::MIN),
        ("smax32", s32(r.s32max), r.s32max == i32::MAX),
        ("umin32", r.u32min as u64, r.u32min == 0),
        ("umax32", r.u32max as u64, r.u32max == u32::MAX),
    ];
    for i in 0..m.len() {
        if m[i].2 {
            continue;
        }
        let (name, val, _) = m[i];
        let signed = name.starts_with('s');
        let neg = signed && (val as i64) < 0;
        let mut s = format!("{name}=");
        let mut j = i + 2;
        while j < m.len() {
            let (n2, v2, omit) = m[j];
            let neg2 = n2.starts_with('s') && (v2 as i64) < 0;
            if !omit && v2 == val && neg2 == neg {
                m[j].2 = true;
                s.push_str(n2);
                s.push('=');
            }
            j += 2;
        }
        s.push_str(&if signed { snum(val as i64) } else { unum(val) });
        out.push(s);
    }
}

/// The kernel's name of a register's type (`reg_type_str`).
fn type_str(r: &Reg) -> String {
    if r.ty == RegType::BtfId {
        return crate::check::btf::flags_str(r) + &crate::domain::reg::btf_name(r.btf_name);
    }
    if r.ty == RegType::Mem && r.btf_flags != 0 {
        return crate::check::btf::flags_str(r);
    }
    let base = match r.ty {
        RegType::NotInit => "?",
        RegType::Scalar => "scalar",
        RegType::Ctx => "ctx",
        RegType::MapPtr => "map_ptr",
        RegType::MapValue => "map_value",
        RegType::MapKey => "map_key",
        RegType::Stack => "fp",
        RegType::PacketMeta => "pkt_meta",
        RegType::Packet => "pkt",
        RegType::PacketEnd => "pkt_end",
        RegType::Mem => "mem",
        RegType::Func => "func",
        RegType::Sock => "sock",
        RegType::SockCommon => "sock_common",
        RegType::TcpSock => "tcp_sock",
        RegType::BtfId => "ptr_",
    };
    let mut s = String::new();
    if r.rdonly && r.ty == RegType::Mem {
        s.push_str("rdonly_");
    }
    if r.ringbuf {
        s.push_str("ringbuf_");
    }
    s.push_str(base);
    if r.maybe_null {
        s.push_str("_or_null");
    }
    s
}

/// A map's name as the kernel holds it: the characters it accepts, at most 15.
fn map_name(m: &MapInfo) -> String {
    m.name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .take(15)
        .collect()
}

/// `print_reg_state`: one register, e.g. `scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0;
/// 0xffffffff))`, `fp-8`, `map_value(map=counts,ks=4,vs=8,off=8)`, `pkt(off=14,r=14)`. `frameno`
/// is the frame being printed (a stack pointer into another frame says which).
#[cfg(test)]
pub fn reg(r: &Reg, frameno: usize, maps: &[MapInfo]) -> String {
    reg_p(r, frameno, maps, false)
}

/// [`reg`], with the kernel's `P` before a scalar a later instruction relied on.
pub fn reg_p(r: &Reg, frameno: usize, maps: &[MapInfo], precise: bool) -> String {
    let mut s = String::new();
    if r.ty == RegType::Scalar && precise {
        s.push('P');
    }
    if r.ty == RegType::Scalar && r.var_off.is_const() {
        s.push_str(&snum(r.var_off.value as i64));
        return s;
    }
    s.push_str(&type_str(r));
    if r.ty == RegType::Stack {
        if r.frameno as usize != frameno {
            let _ = write!(s, "[{}]", r.frameno);
        }
        if r.var_off.is_const() {
            s.push_str(&snum((r.var_off.value as i64).wrapping_add(r.off as i64)));
            return s;
        }
    }
    let mut a: Vec<String> = Vec::new();
    if r.id != 0 {
        a.push(if r.add_const != 0 {
            format!("id={}{:+}", r.id, r.off)
        } else {
            format!("id={}", r.id)
        });
    }
    if r.ref_obj_id != 0 {
        a.push(format!("ref_obj_id={}", r.ref_obj_id));
    }
    if matches!(r.ty, RegType::MapPtr | RegType::MapValue | RegType::MapKey) {
        if let Some(m) = maps.get(r.map as usize) {
            let name = map_name(m);
            if !name.is_empty() {
                a.push(format!("map={name}"));
            }
            a.push(format!("ks={},vs={}", m.key_size, m.value_size));
        }
    }
    if r.ty != RegType::Scalar && r.off != 0 {
        a.push(format!("off={}", snum(r.off as i64)));
    }
    if r.is_pkt() {
        // A negative range (beyond the end) prints as the u64 it is in the kernel's printf.
        a.push(format!("r={}", unum(r.range as i64 as u64)));
    }
    if r.ty == RegType::Mem {
        a.push(format!("sz={}", unum(r.mem_size as u64)));
    }
    if r.var_off.is_const() {
        if r.var_off.value != 0 {
            a.push(format!("imm={}", snum(r.var_off.value as i64)));
        }
    } else {
        scalar_ranges(r, &mut a);
        if !r.var_off.is_unknown() {
            a.push(format!("var_off={}", tnum(r.var_off)));
        }
    }
    let _ = write!(s, "({})", a.join(","));
    s
}

/// Byte `k` of a slot in the kernel's order (`slot_type[k]`, 0 the highest address).
fn kbyte(s: &Slot, k: usize) -> Byte {
    s.bytes[7 - k]
}

fn byte_char(b: Byte) -> char {
    match b {
        Byte::Invalid => '?',
        Byte::Misc => 'm',
        Byte::Zero => '0',
        Byte::Spill => 'r',
    }
}

/// One stack slot (`fp-8=mmmm????`, `fp-16=0`, `fp-24=pkt_end()`), if it holds anything; a
/// spilled scalar relied on prints with `P`.
fn slot_p(s: &Slot, i: usize, frameno: usize, maps: &[MapInfo], precise: bool) -> Option<String> {
    if (0..8).all(|k| kbyte(s, k) == Byte::Invalid) {
        return None;
    }
    let at = -8 * (i as i64 + 1);
    Some(if kbyte(s, 7) == Byte::Spill {
        // A narrow spill: the bytes around it first, then the register.
        let around: String = (0..8)
            .map(|k| kbyte(s, k))
            .filter(|b| *b != Byte::Spill)
            .map(byte_char)
            .collect();
        format!(
            "fp{at}={around}{}",
            reg_p(&s.spilled, frameno, maps, precise)
        )
    } else {
        let types: String = (0..8).map(|k| byte_char(kbyte(s, k))).collect();
        format!("fp{at}={types}")
    })
}

/// What of a frame to print: every register and slot, or those an instruction touched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mask {
    pub regs: u16,
    pub stack: u64,
}

impl Mask {
    pub const ALL: Mask = Mask {
        regs: u16::MAX,
        stack: u64::MAX,
    };
    pub const NONE: Mask = Mask { regs: 0, stack: 0 };

    pub fn any(&self) -> bool {
        self.regs != 0 || self.stack != 0
    }
}

/// `print_verifier_state` without its newline: ` frame1: R1=ctx() R10=fp0 fp-8=mmmm???? refs=2`
/// (each item with its leading space). `callback` adds the kernel's ` cb`.
pub fn frame(
    fr: &Frame,
    frameno: usize,
    mask: Mask,
    refs: &[Ref],
    callback: bool,
    maps: &[MapInfo],
) -> String {
    frame_p(fr, frameno, mask, refs, callback, maps, (0, 0))
}

/// [`frame`] of a checkpoint, whose precise scalars (`prec`: registers, stack slots) print
/// with `P`.
pub fn frame_p(
    fr: &Frame,
    frameno: usize,
    mask: Mask,
    refs: &[Ref],
    callback: bool,
    maps: &[MapInfo],
    prec: (u16, u64),
) -> String {
    let mut s = String::new();
    if frameno != 0 {
        let _ = write!(s, " frame{frameno}:");
    }
    for (i, r) in fr.regs.iter().enumerate() {
        if r.ty == RegType::NotInit || mask.regs & (1 << i) == 0 {
            continue;
        }
        let p = prec.0 & (1 << i) != 0;
        let _ = write!(s, " R{i}={}", reg_p(r, frameno, maps, p));
    }
    for (i, sl) in fr.stack.iter().enumerate() {
        if i < 64 && mask.stack & (1 << i) == 0 {
            continue;
        }
        let p = i < 64 && prec.1 & (1 << i) != 0;
        if let Some(t) = slot_p(sl, i, frameno, maps, p) {
            s.push(' ');
            s.push_str(&t);
        }
    }
    let ids: Vec<String> = refs
        .iter()
        .filter(|r| r.id != 0)
        .map(|r| r.id.to_string())
        .collect();
    if refs.first().is_some_and(|r| r.id != 0) {
        let _ = write!(s, " refs={}", ids.join(","));
    }
    if callback {
        s.push_str(" cb");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::state::Frame;
    use bpfsim_vm::spec::MapType;

    fn scalar(f: impl FnOnce(&mut Reg)) -> Reg {
        let mut r = Reg::unknown();
        f(&mut r);
        r.sync();
        r
    }

    fn map(name: &str) -> MapInfo {
        MapInfo {
            name: name.to_string(),
            map_type: MapType::Hash,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            rdonly_prog: false,
            frozen: false,
            btf: false,
            spin_lock: None,
            data: None,
        }
    }

    #[test]
    fn scalars_print_their_informative_bounds_merged() {
        assert_eq!(reg(&Reg::unknown(), 0, &[]), "scalar()");
        assert_eq!(reg(&Reg::known(3), 0, &[]), "3");
        assert_eq!(reg(&Reg::known(1000), 0, &[]), "1000");
        assert_eq!(reg(&Reg::known(32767), 0, &[]), "32767");
        assert_eq!(reg(&Reg::known(32768), 0, &[]), "0x8000");
        assert_eq!(reg(&Reg::known(-1i64 as u64), 0, &[]), "-1");
        assert_eq!(
            reg(&Reg::known(-40000i64 as u64), 0, &[]),
            "0xffffffffffff63c0"
        );
        // A u32 load: the 32-bit bounds are the type's, so only the 64-bit ones print.
        let u32load = scalar(|r| {
            r.var_off = Tnum::range(0, u32::MAX as u64);
            r.umax = u32::MAX as u64;
        });
        assert_eq!(
            reg(&u32load, 0, &[]),
            "scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))"
        );
        let byte = scalar(|r| {
            r.umax = 255;
        });
        assert_eq!(
            reg(&byte, 0, &[]),
            "scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))"
        );
        // Negative signed bounds never merge with unsigned ones.
        let mut signed = Reg::unknown();
        (signed.smin, signed.smax, signed.s32min, signed.s32max) = (-5, 5, -5, 5);
        assert_eq!(reg(&signed, 0, &[]), "scalar(smin=smin32=-5,smax=smax32=5)");
        let mut with_id = Reg::unknown();
        with_id.id = 7;
        assert_eq!(reg(&with_id, 0, &[]), "scalar(id=7)");
        assert_eq!(reg_p(&with_id, 0, &[], true), "Pscalar(id=7)");
        assert_eq!(reg_p(&Reg::known(26), 0, &[], true), "P26");
    }

    #[test]
    fn pointers_print_type_map_offset_and_range() {
        let maps = [map("counts")];
        let mut v = Reg::ptr(RegType::MapValue);
        v.maybe_null = true;
        v.id = 1;
        assert_eq!(
            reg(&v, 0, &maps),
            "map_value_or_null(id=1,map=counts,ks=4,vs=8)"
        );
        v.maybe_null = false;
        v.id = 0;
        v.off = 8;
        assert_eq!(reg(&v, 0, &maps), "map_value(map=counts,ks=4,vs=8,off=8)");
        let mut p = Reg::ptr(RegType::Packet);
        p.off = 14;
        p.range = 14;
        assert_eq!(reg(&p, 0, &[]), "pkt(off=14,r=14)");
        p.range = -2;
        assert_eq!(reg(&p, 0, &[]), "pkt(off=14,r=0xfffffffffffffffe)");
        assert_eq!(reg(&Reg::ptr(RegType::Ctx), 0, &[]), "ctx()");
        assert_eq!(reg(&Reg::ptr(RegType::PacketEnd), 0, &[]), "pkt_end()");
        let mut fp = Reg::ptr(RegType::Stack);
        fp.off = -16;
        assert_eq!(reg(&fp, 0, &[]), "fp-16");
        assert_eq!(reg(&fp, 1, &[]), "fp[0]-16");
        let mut rb = Reg::ptr(RegType::Mem);
        rb.ringbuf = true;
        rb.maybe_null = true;
        rb.id = 2;
        rb.ref_obj_id = 2;
        rb.mem_size = 24;
        assert_eq!(
            reg(&rb, 0, &[]),
            "ringbuf_mem_or_null(id=2,ref_obj_id=2,sz=24)"
        );
    }

    #[test]
    fn stack_slots_print_their_bytes_or_the_spilled_register() {
        let mut f = Frame::new(0, 0, 0);
        // fp-4..fp-1 written: the kernel's slot_type[0..4], its highest bytes, come first.
        for b in &mut f.slot_mut(0).bytes[4..] {
            *b = Byte::Misc;
        }
        let s = f.slot_mut(1);
        s.bytes = [Byte::Spill; 8];
        s.spilled = Reg::known(0);
        let s = f.slot_mut(2);
        s.bytes = [Byte::Zero; 8];
        s.bytes[0] = Byte::Invalid;
        // A one-byte spill of 17 at fp-32, above it a zero byte and uninitialised ones.
        let s = f.slot_mut(3);
        s.bytes = [Byte::Invalid; 8];
        s.bytes[0] = Byte::Spill;
        s.bytes[1] = Byte::Zero;
        s.spilled = Reg::known(17);
        f.slot_mut(4).bytes = [Byte::Spill; 8];
        f.stack[4].spilled = Reg::ptr(RegType::PacketEnd);
        let all = frame(&f, 0, Mask::ALL, &[], false, &[]);
        assert_eq!(
            all,
            " R10=fp0 fp-8=mmmm???? fp-16=0 fp-24=0000000? fp-32=??????017 fp-40=pkt_end()"
        );
        let some = frame(
            &f,
            0,
            Mask {
                regs: 0,
                stack: 1 << 1,
            },
            &[Ref::ptr(3, 0)],
            true,
            &[],
        );
        assert_eq!(some, " fp-16=0 refs=3 cb");
        assert_eq!(frame(&f, 2, Mask::NONE, &[], false, &[]), " frame2:");
        f.regs[3] = Reg::known(30);
        assert_eq!(
            frame_p(&f, 0, Mask::ALL, &[], false, &[], (1 << 3, 1 << 1)),
            " R3=P30 R10=fp0 fp-8=mmmm???? fp-16=P0 fp-24=0000000? fp-32=??????017 fp-40=pkt_end()"
        );
    }
}
