//! The baseline tier's instructions: ALU, jumps, memory through the region table, helper calls
//! through the shim, and the exit.

use std::mem::offset_of;

use bpfsim_vm::isa::{AluOp, CallTarget, Cond, Endian, Imm64, Insn, Reg, Size, Source, Width};
use bpfsim_vm::memory::{frame_pointer, REGION_SHIFT};
use iced_x86::code_asm::*;

use super::{host, Baseline, Stub, REGS, REGS16, REGS32, REGS8, SAVE, VM};
use crate::shims::{self, VmCtx};

/// r10's value: frame 0's pointer (the tier runs no BPF-to-BPF call).
const FP: u64 = frame_pointer(0);
/// The primary region's tag, which an address's offset in it is taken from.
const PRIMARY_TAG: u64 = (shims::PRIMARY_REGION as u64) << REGION_SHIFT;

/// A memory access's out-of-line path: the region table, then the shim.
pub(super) struct Access {
    general: CodeLabel,
    done: CodeLabel,
    pc: usize,
    after: i32,
    size: Size,
    base: Reg,
    off: i16,
    kind: AccessKind,
}

/// A register operand in each width.
#[derive(Clone, Copy)]
struct Operand {
    q: AsmRegister64,
    d: AsmRegister32,
    w: AsmRegister16,
    b: AsmRegister8,
}

/// The scratch register that holds r10's value where an instruction reads it.
#[derive(Clone, Copy)]
enum Scratch {
    R11,
    Rcx,
}

#[derive(Clone, Copy)]
enum AccessKind {
    Load { dst: usize, signed: bool },
    Store { src: Source },
}

impl Baseline<'_> {
    pub(super) fn insn(&mut self, pc: usize, next: usize, insn: &Insn) -> Result<(), IcedError> {
        match *insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => match host(dst) {
                Some(d) => self.alu(width, op, d, src),
                None => self.hand_over_here(pc),
            },
            Insn::Neg { width, dst } => match host(dst) {
                Some(d) if width == Width::W64 => self.a.neg(REGS[d]),
                Some(d) => self.a.neg(REGS32[d]),
                None => self.hand_over_here(pc),
            },
            Insn::MovSx {
                width,
                dst,
                src,
                from,
            } => match host(dst) {
                Some(d) => self.movsx(pc, width, d, src, from),
                None => self.hand_over_here(pc),
            },
            Insn::Endian { dst, order, bits } => match host(dst) {
                Some(d) => self.endian(pc, d, order, bits),
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
                    (Some(d), Some(v)) => self.a.mov(REGS[d], v),
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
                Some(d) => self.access(pc, size, src, off, AccessKind::Load { dst: d, signed }),
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
            Insn::Exit => {
                self.a.mov(rdx, super::LEFT)?;
                self.epilogue()
            }
            // BPF-to-BPF calls, atomics, legacy packet loads, kfuncs: the interpreter.
            Insn::Call(_) | Insn::Callx { .. } | Insn::Atomic { .. } | Insn::LoadPacket { .. } => {
                self.hand_over_here(pc)
            }
        }
    }

    /// A source operand in a register: r10 as its constant, in `scratch`.
    fn src(&mut self, r: Reg, scratch: Scratch) -> Result<Operand, IcedError> {
        match host(r) {
            Some(s) => Ok(Operand {
                q: REGS[s],
                d: REGS32[s],
                w: REGS16[s],
                b: REGS8[s],
            }),
            None => {
                let o = match scratch {
                    Scratch::R11 => Operand {
                        q: r11,
                        d: r11d,
                        w: r11w,
                        b: r11b,
                    },
                    Scratch::Rcx => Operand {
                        q: rcx,
                        d: ecx,
                        w: cx,
                        b: cl,
                    },
                };
                self.a.mov(o.q, FP)?;
                Ok(o)
            }
        }
    }

    fn alu(&mut self, width: Width, op: AluOp, d: usize, src: Source) -> Result<(), IcedError> {
        if matches!(op, AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod) {
            return self.divide(width, op, d, src);
        }
        let w64 = width == Width::W64;
        let (d64, d32) = (REGS[d], REGS32[d]);
        match src {
            Source::Imm(i) => match (op, w64) {
                (AluOp::Add, true) => self.a.add(d64, i),
                (AluOp::Add, false) => self.a.add(d32, i),
                (AluOp::Sub, true) => self.a.sub(d64, i),
                (AluOp::Sub, false) => self.a.sub(d32, i),
                (AluOp::Mul, true) => self.a.imul_3(d64, d64, i),
                (AluOp::Mul, false) => self.a.imul_3(d32, d32, i),
                (AluOp::Or, true) => self.a.or(d64, i),
                (AluOp::Or, false) => self.a.or(d32, i),
                (AluOp::And, true) => self.a.and(d64, i),
                (AluOp::And, false) => self.a.and(d32, i),
                (AluOp::Xor, true) => self.a.xor(d64, i),
                (AluOp::Xor, false) => self.a.xor(d32, i),
                (AluOp::Mov, true) => self.a.mov(d64, i as i64),
                (AluOp::Mov, false) => self.a.mov(d32, i as u32),
                (AluOp::Lsh, true) => self.a.shl(d64, (i & 63) as u32),
                (AluOp::Lsh, false) => self.a.shl(d32, (i & 31) as u32),
                (AluOp::Rsh, true) => self.a.shr(d64, (i & 63) as u32),
                (AluOp::Rsh, false) => self.a.shr(d32, (i & 31) as u32),
                (AluOp::Arsh, true) => self.a.sar(d64, (i & 63) as u32),
                (AluOp::Arsh, false) => self.a.sar(d32, (i & 31) as u32),
                _ => unreachable!("division handled above"),
            },
            Source::Reg(r) => {
                let s = self.src(r, Scratch::R11)?;
                let (s64, s32) = (s.q, s.d);
                match op {
                    AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => {
                        self.a.mov(rcx, s64)?;
                        match (op, w64) {
                            (AluOp::Lsh, true) => self.a.shl(d64, cl),
                            (AluOp::Lsh, false) => self.a.shl(d32, cl),
                            (AluOp::Rsh, true) => self.a.shr(d64, cl),
                            (AluOp::Rsh, false) => self.a.shr(d32, cl),
                            (_, true) => self.a.sar(d64, cl),
                            (_, false) => self.a.sar(d32, cl),
                        }
                    }
                    _ => match (op, w64) {
                        (AluOp::Add, true) => self.a.add(d64, s64),
                        (AluOp::Add, false) => self.a.add(d32, s32),
                        (AluOp::Sub, true) => self.a.sub(d64, s64),
                        (AluOp::Sub, false) => self.a.sub(d32, s32),
                        (AluOp::Mul, true) => self.a.imul_2(d64, s64),
                        (AluOp::Mul, false) => self.a.imul_2(d32, s32),
                        (AluOp::Or, true) => self.a.or(d64, s64),
                        (AluOp::Or, false) => self.a.or(d32, s32),
                        (AluOp::And, true) => self.a.and(d64, s64),
                        (AluOp::And, false) => self.a.and(d32, s32),
                        (AluOp::Xor, true) => self.a.xor(d64, s64),
                        (AluOp::Xor, false) => self.a.xor(d32, s32),
                        (AluOp::Mov, true) => self.a.mov(d64, s64),
                        (_, false) => self.a.mov(d32, s32),
                        _ => unreachable!("the other operations matched above"),
                    },
                }
            }
        }
    }

    /// Division and modulo by the kernel's rules (by zero, `INT_MIN / -1`), in Rust.
    fn divide(&mut self, width: Width, op: AluOp, d: usize, src: Source) -> Result<(), IcedError> {
        self.a.mov(r10, REGS[d])?;
        match src {
            Source::Imm(i) => self.a.mov(r11, i as i64)?,
            Source::Reg(r) => {
                let s = self.src(r, Scratch::R11)?;
                self.a.mov(r11, s.q)?;
            }
        }
        self.save()?;
        let kind = div_kind(width, op);
        self.a.mov(edi, kind as u32)?;
        self.a.mov(rsi, r10)?;
        self.a.mov(rdx, r11)?;
        self.call_fn(divide as *const ())?;
        self.a.mov(r10, rax)?;
        self.restore()?;
        self.a.mov(REGS[d], r10)
    }

    fn movsx(
        &mut self,
        pc: usize,
        width: Width,
        d: usize,
        src: Reg,
        from: Size,
    ) -> Result<(), IcedError> {
        let s = self.src(src, Scratch::R11)?;
        match (width, from) {
            (Width::W64, Size::B) => self.a.movsx(REGS[d], s.b),
            (Width::W64, Size::H) => self.a.movsx(REGS[d], s.w),
            (Width::W64, Size::W) => self.a.movsxd(REGS[d], s.d),
            (Width::W32, Size::B) => self.a.movsx(REGS32[d], s.b),
            (Width::W32, Size::H) => self.a.movsx(REGS32[d], s.w),
            _ => self.hand_over_here(pc),
        }
    }

    fn endian(&mut self, pc: usize, d: usize, order: Endian, bits: u8) -> Result<(), IcedError> {
        let swap = order != Endian::Le;
        match (bits, swap) {
            (16, false) => self.a.movzx(REGS32[d], REGS16[d]),
            (32, false) => self.a.mov(REGS32[d], REGS32[d]),
            (64, false) => Ok(()),
            (16, true) => {
                self.a.rol(REGS16[d], 8)?;
                self.a.movzx(REGS32[d], REGS16[d])
            }
            (32, true) => self.a.bswap(REGS32[d]),
            (64, true) => self.a.bswap(REGS[d]),
            _ => self.hand_over_here(pc),
        }
    }

    fn jump(&mut self, pc: usize, target: i64) -> Result<(), IcedError> {
        match self.target(target) {
            Some(l) => self.a.jmp(l),
            None => self.hand_over_here(pc),
        }
    }

    fn branch(
        &mut self,
        pc: usize,
        width: Width,
        cond: Cond,
        dst: Reg,
        src: Source,
        target: i64,
    ) -> Result<(), IcedError> {
        let to = match self.target(target) {
            Some(l) => l,
            None => {
                let l = self.a.create_label();
                self.stubs.push(Stub::HandOver {
                    label: l,
                    pc,
                    unexec: self.place.after + 1,
                });
                l
            }
        };
        let o = self.src(dst, Scratch::R11)?;
        let (d, d32) = (o.q, o.d);
        let w64 = width == Width::W64;
        match src {
            Source::Imm(i) => match (cond, w64) {
                (Cond::Set, true) => self.a.test(d, i)?,
                (Cond::Set, false) => self.a.test(d32, i)?,
                (_, true) => self.a.cmp(d, i)?,
                (_, false) => self.a.cmp(d32, i)?,
            },
            Source::Reg(r) => {
                let o = self.src(r, Scratch::Rcx)?;
                let (s, s32) = (o.q, o.d);
                match (cond, w64) {
                    (Cond::Set, true) => self.a.test(d, s)?,
                    (Cond::Set, false) => self.a.test(d32, s32)?,
                    (_, true) => self.a.cmp(d, s)?,
                    (_, false) => self.a.cmp(d32, s32)?,
                }
            }
        }
        match cond {
            Cond::Eq => self.a.je(to),
            Cond::Ne | Cond::Set => self.a.jne(to),
            Cond::Gt => self.a.ja(to),
            Cond::Ge => self.a.jae(to),
            Cond::Lt => self.a.jb(to),
            Cond::Le => self.a.jbe(to),
            Cond::Sgt => self.a.jg(to),
            Cond::Sge => self.a.jge(to),
            Cond::Slt => self.a.jl(to),
            Cond::Sle => self.a.jle(to),
        }
    }

    /// A helper call (`id` a constant, or `callx`'s register) through the helpers' shim, as
    /// Cranelift's code makes it: the exact budget in the context around the call, and the
    /// registers after the arguments stored for a hand-over inside the helper.
    fn helper(&mut self, pc: usize, id: Source) -> Result<(), IcedError> {
        let after = self.place.after;
        let field = Self::vm_field;
        if let Source::Reg(r) = id {
            self.a.mov(r10, REGS[r.index()])?;
        }
        self.a.lea(r11, qword_ptr(super::LEFT + after))?;
        self.a.mov(field(offset_of!(VmCtx, left)), r11)?;
        let need = after as u64;
        if need > 0 {
            let regs = offset_of!(VmCtx, regs);
            for (r, host) in REGS.iter().enumerate().skip(6) {
                self.a.mov(field(regs + 8 * r), *host)?;
            }
            self.a.mov(r11, FP)?;
            self.a.mov(field(regs + 80), r11)?;
        }
        self.save()?;
        // The shim's last three arguments on the stack: r5, the site, the depth (0).
        self.a.mov(qword_ptr(rsp), REGS[5])?;
        self.a.mov(r11, pc as u64 | need << 32)?;
        self.a.mov(qword_ptr(rsp + 8), r11)?;
        self.a.mov(qword_ptr(rsp + 16), 0)?;
        // (vm, id, r1, r2, r3, r4): r4 is already in r9.
        self.a.mov(rcx, REGS[2])?;
        self.a.mov(r8, REGS[3])?;
        self.a.mov(rdx, REGS[1])?;
        self.a.mov(rdi, VM)?;
        match id {
            Source::Imm(i) => self.a.mov(rsi, i as i64)?,
            Source::Reg(_) => self.a.mov(rsi, r10)?,
        }
        self.call_fn(shims::call as *const ())?;
        self.a.cmp(field(offset_of!(VmCtx, status)), 0)?;
        self.a.jne(self.helper_stop)?;
        for (k, r) in REGS[1..6].iter().enumerate() {
            self.a
                .mov(*r, qword_ptr(rsp + (SAVE + 8 * (k as i32 + 1))))?;
        }
        self.a.mov(super::LEFT, field(offset_of!(VmCtx, left)))?;
        if after != 0 {
            self.a.sub(super::LEFT, after)?;
        }
        Ok(())
    }

    /// A load or store: the primary region's bound inline, the rest out of line.
    fn access(
        &mut self,
        pc: usize,
        size: Size,
        base: Reg,
        off: i16,
        kind: AccessKind,
    ) -> Result<(), IcedError> {
        let write = matches!(kind, AccessKind::Store { .. });
        // r11: the address less the primary region's tag, an offset into it when in range.
        let rel = (off as i64 as u64).wrapping_sub(PRIMARY_TAG);
        match host(base) {
            Some(b) => {
                self.a.mov(r11, rel)?;
                self.a.add(r11, REGS[b])?;
            }
            None => self.a.mov(r11, FP.wrapping_add(rel))?,
        }
        let idx = size.bytes().trailing_zeros() as usize + if write { 4 } else { 0 };
        let general = self.a.create_label();
        let done = self.a.create_label();
        self.a
            .cmp(r11, Self::vm_field(offset_of!(VmCtx, primary_lt) + 8 * idx))?;
        self.a.jae(general)?;
        self.a
            .add(r11, Self::vm_field(offset_of!(VmCtx, primary_base)))?;
        self.host_access(size, kind, 0)?;
        let mut d = done;
        self.bind(&mut d)?;
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
        Ok(())
    }

    /// The access itself, at host address `r11 + disp`.
    fn host_access(&mut self, size: Size, kind: AccessKind, disp: i32) -> Result<(), IcedError> {
        let at = r11 + disp;
        match kind {
            AccessKind::Load { dst, signed } => match (size, signed) {
                (Size::B, false) => self.a.movzx(REGS32[dst], byte_ptr(at)),
                (Size::H, false) => self.a.movzx(REGS32[dst], word_ptr(at)),
                (Size::W, false) => self.a.mov(REGS32[dst], dword_ptr(at)),
                (Size::B, true) => self.a.movsx(REGS[dst], byte_ptr(at)),
                (Size::H, true) => self.a.movsx(REGS[dst], word_ptr(at)),
                (Size::W, true) => self.a.movsxd(REGS[dst], dword_ptr(at)),
                (Size::DW, _) => self.a.mov(REGS[dst], qword_ptr(at)),
            },
            AccessKind::Store {
                src: Source::Imm(i),
            } => match size {
                Size::B => self.a.mov(byte_ptr(at), i as u8 as i32),
                Size::H => self.a.mov(word_ptr(at), i as u16 as i32),
                Size::W => self.a.mov(dword_ptr(at), i),
                Size::DW => self.a.mov(qword_ptr(at), i),
            },
            AccessKind::Store {
                src: Source::Reg(r),
            } => {
                let v = match host(r) {
                    Some(s) => s,
                    None => {
                        self.a.mov(rcx, FP)?;
                        return self.store_rcx(size, at);
                    }
                };
                match size {
                    Size::B => self.a.mov(byte_ptr(at), REGS8[v]),
                    Size::H => self.a.mov(word_ptr(at), REGS16[v]),
                    Size::W => self.a.mov(dword_ptr(at), REGS32[v]),
                    Size::DW => self.a.mov(qword_ptr(at), REGS[v]),
                }
            }
        }
    }

    fn store_rcx(&mut self, size: Size, at: AsmMemoryOperand) -> Result<(), IcedError> {
        match size {
            Size::B => self.a.mov(byte_ptr(at), cl),
            Size::H => self.a.mov(word_ptr(at), cx),
            Size::W => self.a.mov(dword_ptr(at), ecx),
            Size::DW => self.a.mov(qword_ptr(at), rcx),
        }
    }

    /// The out-of-line path of an access: the region table's row for the address, then the
    /// shim for what the table refuses (a context field, or the fault).
    pub(super) fn access_stub(&mut self, acc: Access) -> Result<(), IcedError> {
        let field = Self::vm_field;
        let write = matches!(acc.kind, AccessKind::Store { .. });
        let bytes = acc.size.bytes() as i32;
        let mut general = acc.general;
        self.bind(&mut general)?;
        // r10: the guest address.
        match host(acc.base) {
            Some(b) => self.a.lea(r10, qword_ptr(REGS[b] + acc.off as i32))?,
            None => self.a.mov(r10, FP.wrapping_add(acc.off as i64 as u64))?,
        }
        let shim = self.a.create_label();
        self.a.mov(rcx, r10)?;
        self.a.shr(rcx, REGION_SHIFT)?;
        self.a.cmp(rcx, field(offset_of!(VmCtx, nregions)))?;
        self.a.jae(shim)?;
        self.a.imul_3(rcx, rcx, 24)?;
        self.a.add(rcx, field(offset_of!(VmCtx, regions)))?;
        // The offset is the address's low 32 bits; its end must be within the row's limit.
        self.a.mov(r11d, r10d)?;
        self.a.add(r11, bytes)?;
        self.a
            .cmp(r11, qword_ptr(rcx + if write { 16 } else { 8 }))?;
        self.a.ja(shim)?;
        self.a.add(r11, qword_ptr(rcx))?;
        self.host_access(acc.size, acc.kind, -bytes)?;
        self.a.jmp(acc.done)?;

        let mut shim = shim;
        self.bind(&mut shim)?;
        self.save()?;
        if let AccessKind::Store { src } = acc.kind {
            match src {
                Source::Imm(i) => self.a.mov(rcx, i as i64)?,
                Source::Reg(r) => {
                    let v = self.src(r, Scratch::Rcx)?;
                    self.a.mov(rcx, v.q)?;
                }
            }
        }
        self.a.mov(rdi, VM)?;
        self.a.mov(rsi, r10)?;
        self.a.mov(edx, bytes as u32)?;
        let f = if write {
            shims::store as *const ()
        } else {
            shims::load as *const ()
        };
        self.call_fn(f)?;
        // A fault: the shim's trap at this instruction, the rest of its block given back.
        let ok = self.a.create_label();
        self.a.cmp(field(offset_of!(VmCtx, status)), 0)?;
        self.a.je(ok)?;
        self.a.mov(ecx, acc.pc as u32)?;
        self.a.mov(r10d, acc.after as u32)?;
        self.a.jmp(self.stop)?;
        let mut ok = ok;
        self.bind(&mut ok)?;
        self.a.mov(r10, rax)?;
        self.restore()?;
        if let AccessKind::Load { dst, signed } = acc.kind {
            match (acc.size, signed) {
                (Size::B, true) => self.a.movsx(REGS[dst], r10b)?,
                (Size::H, true) => self.a.movsx(REGS[dst], r10w)?,
                (Size::W, true) => self.a.movsxd(REGS[dst], r10d)?,
                _ => self.a.mov(REGS[dst], r10)?,
            }
        }
        self.a.jmp(acc.done)
    }
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

/// Division and modulo as the interpreter computes them.
extern "C" fn divide(kind: u64, a: u64, b: u64) -> u64 {
    let w32 = kind & 4 != 0;
    match (kind & 3, w32) {
        (0, false) => a.checked_div(b).unwrap_or(0),
        (1, false) if b == 0 => 0,
        (1, false) => (a as i64).wrapping_div(b as i64) as u64,
        (2, false) => a.checked_rem(b).unwrap_or(a),
        (_, false) if b == 0 => a,
        (_, false) => (a as i64).wrapping_rem(b as i64) as u64,
        (0, true) => (a as u32).checked_div(b as u32).unwrap_or(0) as u64,
        (1, true) if b as u32 == 0 => 0,
        (1, true) => (a as i32).wrapping_div(b as i32) as u32 as u64,
        (2, true) => (a as u32).checked_rem(b as u32).unwrap_or(a as u32) as u64,
        (_, true) if b as u32 == 0 => a as u32 as u64,
        (_, true) => (a as i32).wrapping_rem(b as i32) as u32 as u64,
    }
}
