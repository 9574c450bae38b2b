//! The baseline tier's instructions: ALU, jumps, memory through the region table, helper calls
//! through the shim, and the exit.

use std::mem::offset_of;

use bpfsim_vm::isa::{AluOp, CallTarget, Cond, Endian, Imm64, Insn, Reg, Size, Source, Width};
use bpfsim_vm::memory::{frame_pointer, FIRST_FRAME_REGION, FRAME_SIZE, REGION_SHIFT};

use super::enc::*;
use super::{host, Baseline, Stub, LEFT, REGS, VM};
use crate::shims::{self, VmCtx};

/// r10's value: frame 0's pointer (the tier runs no BPF-to-BPF call).
const FP: u64 = frame_pointer(0);
/// The primary region's tag, which an address's offset in it is taken from.
const PRIMARY_TAG: u64 = (shims::PRIMARY_REGION as u64) << REGION_SHIFT;

/// A memory access's out-of-line path: the region table, then the shim.
pub(super) struct Access {
    general: Label,
    done: Label,
    pub(super) pc: usize,
    after: i32,
    size: Size,
    base: Reg,
    off: i16,
    kind: AccessKind,
}

#[derive(Clone, Copy)]
enum AccessKind {
    Load { dst: R, signed: bool },
    Store { src: Source },
}

fn width(size: Size) -> W {
    match size {
        Size::B => W::B,
        Size::H => W::H,
        Size::W => W::D,
        Size::DW => W::Q,
    }
}

impl Baseline<'_> {
    pub(super) fn insn(&mut self, pc: usize, next: usize, insn: &Insn) {
        match *insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => match host(dst) {
                Some(d) => self.alu(width, op, REGS[d], src),
                None => self.hand_over_here(pc),
            },
            Insn::Neg { width, dst } => match host(dst) {
                Some(d) => self.a.neg(width == Width::W64, REGS[d]),
                None => self.hand_over_here(pc),
            },
            Insn::MovSx {
                width,
                dst,
                src,
                from,
            } => match (host(dst), width, from) {
                (Some(d), Width::W64, _) | (Some(d), Width::W32, Size::B | Size::H) => {
                    let s = self.src(src, R11);
                    self.a
                        .movsx_rr(width == Width::W64, REGS[d], s, self::width(from));
                }
                _ => self.hand_over_here(pc),
            },
            Insn::Endian { dst, order, bits } => match host(dst) {
                Some(d) => self.endian(pc, REGS[d], order, bits),
                None => self.hand_over_here(pc),
            },
            Insn::LdImm64 { dst, imm } => {
                let v = match imm {
                    Imm64::Imm(v) => Some(v),
                    Imm64::Func(off) => Some(
                        bpfsim_vm::interp::FUNC_TAG | (pc as i64 + 1 + off as i64) as u32 as u64,
                    ),
                    _ => None,
                };
                match (host(dst), v) {
                    (Some(d), Some(v)) => self.a.mov_ri(REGS[d], v),
                    _ => self.hand_over_here(pc),
                }
            }
            Insn::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => match host(dst) {
                Some(d) => {
                    // A sign-extending load of 8 bytes is a plain one.
                    let signed = signed && size != Size::DW;
                    let kind = AccessKind::Load {
                        dst: REGS[d],
                        signed,
                    };
                    self.access(pc, size, src, off, kind)
                }
                None => self.hand_over_here(pc),
            },
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => self.access(pc, size, dst, off, AccessKind::Store { src }),
            Insn::Ja { off } => self.jump(pc, next as i64 + off as i64),
            Insn::Gotol { off } => self.jump(pc, next as i64 + off as i64),
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => self.branch(pc, width, cond, dst, src, next as i64 + off as i64),
            Insn::Call(CallTarget::Helper(id)) => self.helper(pc, Source::Imm(id)),
            Insn::Callx { reg } if host(reg).is_some() => self.helper(pc, Source::Reg(reg)),
            Insn::Exit if self.calls => self.exit_with_calls(),
            Insn::Exit => {
                self.a.mov_rr(true, RDX, LEFT);
                self.epilogue();
            }
            Insn::Call(CallTarget::Local(off)) => {
                self.local_call(pc, next, next as i64 + off as i64)
            }
            Insn::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => self.atomic(pc, size, op, dst, src, off),
            Insn::LoadPacket { mode, size, imm } => self.ld_packet(pc, mode, size, imm),
            // kfuncs (refused before), `callx` of r10: the interpreter.
            Insn::Call(_) | Insn::Callx { .. } => self.hand_over_here(pc),
        }
    }

    /// A source operand in a register: r10's value, in `scratch`.
    pub(super) fn src(&mut self, r: Reg, scratch: R) -> R {
        match host(r) {
            Some(s) => REGS[s],
            None => {
                self.frame_pointer(scratch);
                scratch
            }
        }
    }

    fn alu(&mut self, width: Width, op: AluOp, d: R, src: Source) {
        let w64 = width == Width::W64;
        let group = match op {
            AluOp::Add => Some(Alu::Add),
            AluOp::Sub => Some(Alu::Sub),
            AluOp::Or => Some(Alu::Or),
            AluOp::And => Some(Alu::And),
            AluOp::Xor => Some(Alu::Xor),
            _ => None,
        };
        let shift = match op {
            AluOp::Lsh => Some(Shift::Shl),
            AluOp::Rsh => Some(Shift::Shr),
            AluOp::Arsh => Some(Shift::Sar),
            _ => None,
        };
        match (op, src) {
            (AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod, _) => {
                self.divide(width, op, d, src)
            }
            (_, Source::Imm(i)) => {
                if let Some(g) = group {
                    self.a.alu_ri(g, w64, d, i);
                } else if let Some(s) = shift {
                    let mask = if w64 { 63 } else { 31 };
                    let w = if w64 { W::Q } else { W::D };
                    self.a.shift_ri(s, w, d, (i & mask) as u8);
                } else if op == AluOp::Mul {
                    self.a.imul_rri(w64, d, d, i);
                } else if w64 {
                    self.a.mov_ri(d, i as i64 as u64);
                } else {
                    self.a.mov_ri32(d, i as u32);
                }
            }
            (_, Source::Reg(r)) => {
                let s = self.src(r, R11);
                if let Some(g) = group {
                    self.a.alu_rr(g, w64, d, s);
                } else if let Some(sh) = shift {
                    // x86 masks a count in `cl` to the width, as BPF does.
                    self.a.mov_rr(false, RCX, s);
                    self.a.shift_cl(sh, w64, d);
                } else if op == AluOp::Mul {
                    self.a.imul_rr(w64, d, s);
                } else {
                    self.a.mov_rr(w64, d, s);
                }
            }
        }
    }

    /// Division and modulo by the kernel's rules (by zero, `INT_MIN / -1`), in Rust.
    fn divide(&mut self, width: Width, op: AluOp, d: R, src: Source) {
        self.a.mov_rr(true, R10, d);
        match src {
            Source::Imm(i) => self.a.mov_ri(R11, i as i64 as u64),
            Source::Reg(r) => {
                let s = self.src(r, R11);
                self.a.mov_rr(true, R11, s);
            }
        }
        self.save();
        self.a.mov_ri32(RDI, div_kind(width, op) as u32);
        self.a.mov_rr(true, RSI, R10);
        self.a.mov_rr(true, RDX, R11);
        self.call_fn(divide as *const ());
        self.a.mov_rr(true, R10, RAX);
        self.restore();
        self.a.mov_rr(true, d, R10);
    }

    fn endian(&mut self, pc: usize, d: R, order: Endian, bits: u8) {
        let swap = order != Endian::Le;
        match (bits, swap) {
            (16, false) => self.a.movzx16(d, d),
            (32, false) => self.a.mov_rr(false, d, d),
            (64, false) => {}
            (16, true) => {
                self.a.shift_ri(Shift::Rol, W::H, d, 8);
                self.a.movzx16(d, d);
            }
            (32, true) => self.a.bswap(false, d),
            (64, true) => self.a.bswap(true, d),
            _ => self.hand_over_here(pc),
        }
    }

    fn jump(&mut self, pc: usize, target: i64) {
        match self.target(target) {
            Some(l) => self.a.jmp(l),
            None => self.hand_over_here(pc),
        }
    }

    fn branch(&mut self, pc: usize, width: Width, cond: Cond, dst: Reg, src: Source, target: i64) {
        let to = match self.target(target) {
            Some(l) => l,
            None => {
                let l = self.a.label();
                self.stubs.push(Stub::HandOver {
                    label: l,
                    pc,
                    unexec: self.place.after + 1,
                });
                l
            }
        };
        let d = self.src(dst, R11);
        let w64 = width == Width::W64;
        match (src, cond) {
            (Source::Imm(i), Cond::Set) => self.a.test_ri(w64, d, i),
            (Source::Imm(i), _) => self.a.alu_ri(Alu::Cmp, w64, d, i),
            (Source::Reg(r), c) => {
                let s = self.src(r, RCX);
                if c == Cond::Set {
                    self.a.test_rr(w64, d, s);
                } else {
                    self.a.alu_rr(Alu::Cmp, w64, d, s);
                }
            }
        }
        let cc = match cond {
            Cond::Eq => Cc::E,
            Cond::Ne | Cond::Set => Cc::Ne,
            Cond::Gt => Cc::A,
            Cond::Ge => Cc::Ae,
            Cond::Lt => Cc::B,
            Cond::Le => Cc::Be,
            Cond::Sgt => Cc::G,
            Cond::Sge => Cc::Ge,
            Cond::Slt => Cc::L,
            Cond::Sle => Cc::Le,
        };
        self.a.jcc(cc, to);
    }

    /// A load or store: the primary region's bound inline (or frame 0's, through r10), the
    /// rest out of line.
    fn access(&mut self, pc: usize, size: Size, base: Reg, off: i16, kind: AccessKind) {
        let write = matches!(kind, AccessKind::Store { .. });
        let general = self.a.label();
        let done = self.a.label();
        let at = FRAME_SIZE as i32 + off as i32;
        let end = at + size.bytes() as i32;
        match host(base) {
            None if at >= 0 && !self.calls => {
                // r10 + off: frame 0's row of the region table, whose limit the constant
                // offset's end is checked against.
                let row = 24 * FIRST_FRAME_REGION as i32;
                self.a
                    .load(W::Q, false, R11, Self::vm_field(offset_of!(VmCtx, regions)));
                self.a
                    .alu_mi(Alu::Cmp, mem(R11, row + if write { 16 } else { 8 }), end);
                self.a.jcc(Cc::B, general);
                self.a.load(W::Q, false, R11, mem(R11, row));
                self.host_access(size, kind, at);
            }
            _ => {
                // r11: the address less the primary region's tag, an offset into it when in
                // range.
                let rel = (off as i64 as u64).wrapping_sub(PRIMARY_TAG);
                match host(base) {
                    Some(b) => {
                        self.a.mov_ri(R11, rel);
                        self.a.alu_rr(Alu::Add, true, R11, REGS[b]);
                    }
                    None if !self.calls => self.a.mov_ri(R11, FP.wrapping_add(rel)),
                    None => {
                        self.frame_pointer(R11);
                        self.a.mov_ri(RCX, rel);
                        self.a.alu_rr(Alu::Add, true, R11, RCX);
                    }
                }
                let idx = size.bytes().trailing_zeros() as usize + if write { 4 } else { 0 };
                self.a.alu_rm(
                    Alu::Cmp,
                    R11,
                    Self::vm_field(offset_of!(VmCtx, primary_lt) + 8 * idx),
                );
                self.a.jcc(Cc::Ae, general);
                self.a.alu_rm(
                    Alu::Add,
                    R11,
                    Self::vm_field(offset_of!(VmCtx, primary_base)),
                );
                self.host_access(size, kind, 0);
            }
        }
        self.a.bind(done);
        self.stubs.push(Stub::Access(Access {
            general,
            done,
            pc,
            after: self.place.after,
            size,
            base,
            off,
            kind,
        }));
    }

    /// The access itself, at host address `r11 + disp`.
    fn host_access(&mut self, size: Size, kind: AccessKind, disp: i32) {
        let at = mem(R11, disp);
        match kind {
            AccessKind::Load { dst, signed } => self.a.load(width(size), signed, dst, at),
            AccessKind::Store {
                src: Source::Imm(i),
            } => self.a.store_i(width(size), at, i),
            AccessKind::Store {
                src: Source::Reg(r),
            } => {
                let v = self.src(r, RCX);
                self.a.store(width(size), at, v);
            }
        }
    }

    /// The out-of-line path of an access: the region table's row for the address, then the
    /// shim for what the table refuses (a context field, or the fault).
    pub(super) fn access_stub(&mut self, acc: Access) {
        let field = Self::vm_field;
        let write = matches!(acc.kind, AccessKind::Store { .. });
        let bytes = acc.size.bytes() as i32;
        self.a.bind(acc.general);
        // r10: the guest address.
        match host(acc.base) {
            Some(b) => self.a.lea(R10, mem(REGS[b], acc.off as i32)),
            None if !self.calls => self.a.mov_ri(R10, FP.wrapping_add(acc.off as i64 as u64)),
            None => {
                self.frame_pointer(R10);
                self.a.alu_ri(Alu::Add, true, R10, acc.off as i32);
            }
        }
        let shim = self.a.label();
        self.a.mov_rr(true, RCX, R10);
        self.a.shift_ri(Shift::Shr, W::Q, RCX, REGION_SHIFT as u8);
        self.a
            .alu_rm(Alu::Cmp, RCX, field(offset_of!(VmCtx, nregions)));
        self.a.jcc(Cc::Ae, shim);
        self.a.imul_rri(true, RCX, RCX, 24);
        self.a
            .alu_rm(Alu::Add, RCX, field(offset_of!(VmCtx, regions)));
        // The offset is the address's low 32 bits; its end must be within the row's limit.
        self.a.mov_rr(false, R11, R10);
        self.a.alu_ri(Alu::Add, true, R11, bytes);
        self.a
            .alu_rm(Alu::Cmp, R11, mem(RCX, if write { 16 } else { 8 }));
        self.a.jcc(Cc::A, shim);
        self.a.alu_rm(Alu::Add, R11, mem(RCX, 0));
        self.host_access(acc.size, acc.kind, -bytes);
        self.a.jmp(acc.done);

        self.a.bind(shim);
        self.save();
        if let AccessKind::Store { src } = acc.kind {
            match src {
                Source::Imm(i) => self.a.mov_ri(RCX, i as i64 as u64),
                Source::Reg(r) => {
                    let v = self.src(r, RCX);
                    self.a.mov_rr(true, RCX, v);
                }
            }
        }
        self.a.mov_rr(true, RDI, VM);
        self.a.mov_rr(true, RSI, R10);
        self.a.mov_ri32(RDX, bytes as u32);
        let f = if write {
            shims::store as *const ()
        } else {
            shims::load as *const ()
        };
        self.call_fn(f);
        // A fault: the shim's trap at this instruction, the rest of its block given back.
        self.shim_status(acc.pc, acc.after);
        self.a.mov_rr(true, R10, RAX);
        self.restore();
        if let AccessKind::Load { dst, signed } = acc.kind {
            match (acc.size, signed) {
                (Size::B, true) => self.a.movsx_rr(true, dst, R10, W::B),
                (Size::H, true) => self.a.movsx_rr(true, dst, R10, W::H),
                (Size::W, true) => self.a.movsx_rr(true, dst, R10, W::D),
                _ => self.a.mov_rr(true, dst, R10),
            }
        }
        self.a.jmp(acc.done);
    }
}

/// The tier's own runtime functions, by name, for a listing's comments.
pub(crate) fn runtime_symbols() -> [(u64, &'static str); 1] {
    [(divide as *const () as u64, "bpfsim_baseline_divide")]
}

/// What [`divide`] computes: the operation and width.
fn div_kind(width: Width, op: AluOp) -> u64 {
    let k = match op {
        AluOp::Div => 0,
        AluOp::SDiv => 1,
        AluOp::Mod => 2,
        _ => 3,
    };
    k | if width == Width::W32 { 4 } else { 0 }
}

/// Division and modulo: the interpreter's own functions, by kind.
extern "C" fn divide(kind: u64, a: u64, b: u64) -> u64 {
    use bpfsim_vm::interp::{div32, div64, mod32, mod64, sdiv32, sdiv64, smod32, smod64};
    let f = match (kind & 3, kind & 4 != 0) {
        (0, false) => div64,
        (1, false) => sdiv64,
        (2, false) => mod64,
        (_, false) => smod64,
        (0, true) => div32,
        (1, true) => sdiv32,
        (2, true) => mod32,
        (_, true) => smod32,
    };
    f(a, b)
}
