//! The few x86-64 instruction forms the baseline tier writes, encoded straight into bytes.
//! Every branch takes a 32-bit displacement, patched once the code is complete, so there is no
//! relaxation pass: iced's block encoder, which has one, cost more than the rest of a compile
//! put together (2.9 ms per 1,000 BPF instructions against 2 for the whole budget).

/// A host register, by its hardware number (`rax` 0 .. `r15` 15).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct R(pub u8);

pub(crate) const RAX: R = R(0);
pub(crate) const RCX: R = R(1);
pub(crate) const RDX: R = R(2);
pub(crate) const RBX: R = R(3);
pub(crate) const RSP: R = R(4);
pub(crate) const RBP: R = R(5);
pub(crate) const RSI: R = R(6);
pub(crate) const RDI: R = R(7);
pub(crate) const R8: R = R(8);
pub(crate) const R9: R = R(9);
pub(crate) const R10: R = R(10);
pub(crate) const R11: R = R(11);
pub(crate) const R12: R = R(12);
pub(crate) const R13: R = R(13);
pub(crate) const R14: R = R(14);
pub(crate) const R15: R = R(15);

/// `[base + disp]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mem {
    pub base: R,
    pub disp: i32,
}

pub(crate) fn mem(base: R, disp: i32) -> Mem {
    Mem { base, disp }
}

/// Operand size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum W {
    B,
    H,
    D,
    Q,
}

/// The two-operand ALU group, by its `/digit` (the `op r/m, r` opcode is `8 * digit + 1`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Alu {
    Add = 0,
    Or = 1,
    And = 4,
    Sub = 5,
    Xor = 6,
    Cmp = 7,
}

/// Shifts and rotates, by their `/digit` in `C1`/`D3`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Shift {
    Rol = 0,
    Shl = 4,
    Shr = 5,
    Sar = 7,
}

/// Condition codes (the low nibble of `jcc`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Cc {
    B = 2,
    Ae = 3,
    E = 4,
    Ne = 5,
    Be = 6,
    A = 7,
    L = 0xc,
    Ge = 0xd,
    Le = 0xe,
    G = 0xf,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Label(u32);

/// Not yet bound.
const UNBOUND: usize = usize::MAX;

#[derive(Default)]
pub(crate) struct Enc {
    pub buf: Vec<u8>,
    labels: Vec<usize>,
    /// (offset of a rel32 field, its label)
    fixups: Vec<(usize, Label)>,
}

impl Enc {
    pub fn with_capacity(n: usize) -> Enc {
        Enc {
            buf: Vec::with_capacity(n),
            ..Enc::default()
        }
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(UNBOUND);
        Label(self.labels.len() as u32 - 1)
    }

    pub fn bind(&mut self, l: Label) {
        self.labels[l.0 as usize] = self.buf.len();
    }

    /// The code, every branch patched; `None` if a branch's label was never bound.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        for &(at, l) in &self.fixups {
            let target = self.labels[l.0 as usize];
            if target == UNBOUND {
                return None;
            }
            let rel = (target as i64 - (at as i64 + 4)) as i32;
            self.buf[at..at + 4].copy_from_slice(&rel.to_le_bytes());
        }
        Some(self.buf)
    }

    fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    fn imm32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Operand-size prefix and REX. `byte_reg`: an 8-bit operand in `reg` (or `rm` as a
    /// register) numbered 4-7 needs a REX to mean `spl`..`dil` rather than `ah`..`bh`.
    fn prefix(&mut self, w: W, reg: u8, rm: u8, byte_regs: bool) {
        if w == W::H {
            self.byte(0x66);
        }
        let rex = 0x40 | u8::from(w == W::Q) << 3 | (reg >> 3 & 1) << 2 | (rm >> 3 & 1);
        if rex != 0x40 || (byte_regs && (reg & 7 >= 4 && reg < 8 || rm & 7 >= 4 && rm < 8)) {
            self.byte(rex);
        }
    }

    fn modrm_reg(&mut self, reg: u8, rm: u8) {
        self.byte(0xc0 | (reg & 7) << 3 | (rm & 7));
    }

    fn modrm_mem(&mut self, reg: u8, m: Mem) {
        let base = m.base.0 & 7;
        let (md, short) = if m.disp == 0 && base != 5 {
            (0x00, None)
        } else if let Ok(d) = i8::try_from(m.disp) {
            (0x40, Some(d))
        } else {
            (0x80, None)
        };
        self.byte(md | (reg & 7) << 3 | base);
        if base == 4 {
            self.byte(0x24);
        }
        match (md, short) {
            (0x40, Some(d)) => self.byte(d as u8),
            (0x80, _) => self.imm32(m.disp),
            _ => {}
        }
    }

    /// `opcode reg, r/m` (or `r/m, reg`) with a register `rm`.
    fn rr(&mut self, w: W, opcode: &[u8], reg: R, rm: R) {
        self.prefix(w, reg.0, rm.0, w == W::B);
        self.buf.extend_from_slice(opcode);
        self.modrm_reg(reg.0, rm.0);
    }

    /// `opcode reg, [mem]` (or `[mem], reg`). `byte_reg`: `reg` is an 8-bit operand.
    fn rm(&mut self, w: W, opcode: &[u8], reg: u8, m: Mem, byte_reg: bool) {
        if w == W::H {
            self.byte(0x66);
        }
        let rex = 0x40 | u8::from(w == W::Q) << 3 | (reg >> 3 & 1) << 2 | (m.base.0 >> 3 & 1);
        if rex != 0x40 || (byte_reg && (4..8).contains(&reg)) {
            self.byte(rex);
        }
        self.buf.extend_from_slice(opcode);
        self.modrm_mem(reg, m);
    }

    fn wq(w64: bool) -> W {
        if w64 {
            W::Q
        } else {
            W::D
        }
    }

    /// `op dst, src` (64 or 32 bits; 32-bit forms zero the upper half).
    pub fn alu_rr(&mut self, op: Alu, w64: bool, dst: R, src: R) {
        self.rr(Self::wq(w64), &[op as u8 * 8 + 1], src, dst);
    }

    pub fn alu_ri(&mut self, op: Alu, w64: bool, dst: R, imm: i32) {
        let w = Self::wq(w64);
        if let Ok(b) = i8::try_from(imm) {
            self.rr(w, &[0x83], R(op as u8), dst);
            self.byte(b as u8);
        } else {
            self.rr(w, &[0x81], R(op as u8), dst);
            self.imm32(imm);
        }
    }

    /// `op dst, qword [m]` (`add`, `cmp`...).
    pub fn alu_rm(&mut self, op: Alu, dst: R, m: Mem) {
        self.rm(W::Q, &[op as u8 * 8 + 3], dst.0, m, false);
    }

    /// `op qword [m], imm`.
    pub fn alu_mi(&mut self, op: Alu, m: Mem, imm: i32) {
        if let Ok(b) = i8::try_from(imm) {
            self.rm(W::Q, &[0x83], op as u8, m, false);
            self.byte(b as u8);
        } else {
            self.rm(W::Q, &[0x81], op as u8, m, false);
            self.imm32(imm);
        }
    }

    pub fn test_rr(&mut self, w64: bool, a: R, b: R) {
        self.rr(Self::wq(w64), &[0x85], b, a);
    }

    pub fn test_ri(&mut self, w64: bool, a: R, imm: i32) {
        self.rr(Self::wq(w64), &[0xf7], R(0), a);
        self.imm32(imm);
    }

    pub fn mov_rr(&mut self, w64: bool, dst: R, src: R) {
        self.rr(Self::wq(w64), &[0x89], src, dst);
    }

    /// `dst = v`, in the shortest of the three forms.
    pub fn mov_ri(&mut self, dst: R, v: u64) {
        if let Ok(v32) = u32::try_from(v) {
            self.mov_ri32(dst, v32);
        } else if let Ok(s) = i32::try_from(v as i64) {
            self.rr(W::Q, &[0xc7], R(0), dst);
            self.imm32(s);
        } else {
            self.prefix(W::Q, 0, dst.0, false);
            self.byte(0xb8 + (dst.0 & 7));
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// `dst = v` zero-extended (a 32-bit move).
    pub fn mov_ri32(&mut self, dst: R, v: u32) {
        self.prefix(W::D, 0, dst.0, false);
        self.byte(0xb8 + (dst.0 & 7));
        self.imm32(v as i32);
    }

    pub fn imul_rr(&mut self, w64: bool, dst: R, src: R) {
        self.rr(Self::wq(w64), &[0x0f, 0xaf], dst, src);
    }

    pub fn imul_rri(&mut self, w64: bool, dst: R, src: R, imm: i32) {
        self.rr(Self::wq(w64), &[0x69], dst, src);
        self.imm32(imm);
    }

    pub fn shift_ri(&mut self, op: Shift, w: W, dst: R, n: u8) {
        self.rr(w, &[0xc1], R(op as u8), dst);
        self.byte(n);
    }

    /// Shift by `cl`.
    pub fn shift_cl(&mut self, op: Shift, w64: bool, dst: R) {
        self.rr(Self::wq(w64), &[0xd3], R(op as u8), dst);
    }

    pub fn neg(&mut self, w64: bool, dst: R) {
        self.rr(Self::wq(w64), &[0xf7], R(3), dst);
    }

    pub fn bswap(&mut self, w64: bool, r: R) {
        self.prefix(Self::wq(w64), 0, r.0, false);
        self.byte(0x0f);
        self.byte(0xc8 + (r.0 & 7));
    }

    /// `dst32 = zero-extended low 16 bits of src`.
    pub fn movzx16(&mut self, dst: R, src: R) {
        self.rr(W::D, &[0x0f, 0xb7], dst, src);
    }

    /// `dst = sign-extended low `from` bits of src` (`from` B, H or D; `w64` the result's
    /// width, 32-bit results zero the upper half).
    pub fn movsx_rr(&mut self, w64: bool, dst: R, src: R, from: W) {
        let w = Self::wq(w64);
        match from {
            W::B => {
                // The source is a byte register: a REX for sil/dil.
                let need = (4..8).contains(&src.0);
                let rex = 0x40 | u8::from(w64) << 3 | (dst.0 >> 3 & 1) << 2 | (src.0 >> 3 & 1);
                if rex != 0x40 || need {
                    self.byte(rex);
                }
                self.byte(0x0f);
                self.byte(0xbe);
                self.modrm_reg(dst.0, src.0);
            }
            W::H => self.rr(w, &[0x0f, 0xbf], dst, src),
            _ => self.rr(W::Q, &[0x63], dst, src),
        }
    }

    /// A load of `size` bytes at `m` into `dst`, zero- or sign-extended to 64 bits.
    pub fn load(&mut self, size: W, signed: bool, dst: R, m: Mem) {
        match (size, signed) {
            (W::B, false) => self.rm(W::D, &[0x0f, 0xb6], dst.0, m, false),
            (W::H, false) => self.rm(W::D, &[0x0f, 0xb7], dst.0, m, false),
            (W::D, false) => self.rm(W::D, &[0x8b], dst.0, m, false),
            (W::B, true) => self.rm(W::Q, &[0x0f, 0xbe], dst.0, m, false),
            (W::H, true) => self.rm(W::Q, &[0x0f, 0xbf], dst.0, m, false),
            (W::D, true) => self.rm(W::Q, &[0x63], dst.0, m, false),
            (W::Q, _) => self.rm(W::Q, &[0x8b], dst.0, m, false),
        }
    }

    /// A store of the low `size` bytes of `src` at `m`.
    pub fn store(&mut self, size: W, m: Mem, src: R) {
        let op = if size == W::B { 0x88 } else { 0x89 };
        self.rm(size, &[op], src.0, m, size == W::B);
    }

    /// A store of `imm` (its low `size` bytes; sign-extended for a quadword) at `m`.
    pub fn store_i(&mut self, size: W, m: Mem, imm: i32) {
        match size {
            W::B => {
                self.rm(W::B, &[0xc6], 0, m, false);
                self.byte(imm as u8);
            }
            W::H => {
                self.rm(W::H, &[0xc7], 0, m, false);
                self.buf.extend_from_slice(&(imm as u16).to_le_bytes());
            }
            _ => {
                self.rm(size, &[0xc7], 0, m, false);
                self.imm32(imm);
            }
        }
    }

    pub fn lea(&mut self, dst: R, m: Mem) {
        self.rm(W::Q, &[0x8d], dst.0, m, false);
    }

    pub fn jcc(&mut self, cc: Cc, l: Label) {
        self.byte(0x0f);
        self.byte(0x80 | cc as u8);
        self.fixups.push((self.buf.len(), l));
        self.imm32(0);
    }

    pub fn jmp(&mut self, l: Label) {
        self.byte(0xe9);
        self.fixups.push((self.buf.len(), l));
        self.imm32(0);
    }

    pub fn call_r(&mut self, r: R) {
        self.prefix(W::D, 0, r.0, false);
        self.byte(0xff);
        self.modrm_reg(2, r.0);
    }

    pub fn push(&mut self, r: R) {
        self.prefix(W::D, 0, r.0, false);
        self.byte(0x50 + (r.0 & 7));
    }

    pub fn pop(&mut self, r: R) {
        self.prefix(W::D, 0, r.0, false);
        self.byte(0x58 + (r.0 & 7));
    }

    pub fn ret(&mut self) {
        self.byte(0xc3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};

    /// The instructions `f` writes, as iced decodes and prints them (AT&T syntax).
    fn text(f: impl FnOnce(&mut Enc)) -> Vec<String> {
        let mut e = Enc::default();
        f(&mut e);
        let code = e.finish().expect("labels bound");
        let mut dec = Decoder::with_ip(64, &code, 0, DecoderOptions::NONE);
        let mut fmt = GasFormatter::new();
        fmt.options_mut().set_uppercase_hex(false);
        let mut out = Vec::new();
        for insn in &mut dec {
            assert!(!insn.is_invalid(), "invalid encoding in {code:02x?}");
            let mut s = String::new();
            fmt.format(&insn, &mut s);
            out.push(s);
        }
        out
    }

    fn one(f: impl FnOnce(&mut Enc)) -> String {
        let t = text(f);
        assert_eq!(t.len(), 1, "{t:?}");
        t[0].clone()
    }

    #[test]
    fn register_forms_name_every_register() {
        let names = [
            "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15",
        ];
        for (i, n) in names.iter().enumerate() {
            let r = R(i as u8);
            assert_eq!(
                one(|e| e.alu_rr(Alu::Add, true, r, R11)),
                format!("add %r11,%{n}")
            );
            assert_eq!(one(|e| e.mov_rr(true, R9, r)), format!("mov %{n},%r9"));
            assert_eq!(one(|e| e.push(r)), format!("push %{n}"));
            assert_eq!(one(|e| e.pop(r)), format!("pop %{n}"));
            assert_eq!(one(|e| e.bswap(true, r)), format!("bswap %{n}"));
        }
        let bytes = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil", "r8b"];
        for (i, n) in bytes.iter().enumerate() {
            assert_eq!(
                one(|e| e.store(W::B, mem(RAX, 0), R(i as u8))),
                format!("mov %{n},(%rax)")
            );
            assert_eq!(
                one(|e| e.movsx_rr(true, RAX, R(i as u8), W::B)),
                format!("movsbq %{n},%rax")
            );
        }
    }

    #[test]
    fn memory_operands_take_every_base() {
        assert_eq!(
            one(|e| e.load(W::Q, false, RAX, mem(RSP, 8))),
            "mov 8(%rsp),%rax"
        );
        assert_eq!(
            one(|e| e.load(W::Q, false, RAX, mem(R12, 0))),
            "mov (%r12),%rax"
        );
        assert_eq!(
            one(|e| e.load(W::Q, false, RAX, mem(RBP, 0))),
            "mov (%rbp),%rax"
        );
        assert_eq!(
            one(|e| e.load(W::Q, false, RAX, mem(R13, -8))),
            "mov -8(%r13),%rax"
        );
        assert_eq!(
            one(|e| e.load(W::Q, false, R14, mem(R15, 0x1234))),
            "mov 0x1234(%r15),%r14"
        );
        assert_eq!(one(|e| e.lea(R10, mem(RBP, 3))), "lea 3(%rbp),%r10");
        assert_eq!(
            one(|e| e.load(W::B, false, R9, mem(R11, -1))),
            "movzbl -1(%r11),%r9d"
        );
        assert_eq!(
            one(|e| e.load(W::H, false, RSI, mem(R11, 0))),
            "movzwl (%r11),%esi"
        );
        assert_eq!(
            one(|e| e.load(W::D, false, R8, mem(R11, 0))),
            "mov (%r11),%r8d"
        );
        assert_eq!(
            one(|e| e.load(W::B, true, RDI, mem(R11, 0))),
            "movsbq (%r11),%rdi"
        );
        assert_eq!(
            one(|e| e.load(W::H, true, RDI, mem(R11, 0))),
            "movswq (%r11),%rdi"
        );
        assert_eq!(
            one(|e| e.load(W::D, true, RDI, mem(R11, 0))),
            "movslq (%r11),%rdi"
        );
        assert_eq!(
            one(|e| e.store(W::H, mem(R11, 2), R14)),
            "mov %r14w,2(%r11)"
        );
        assert_eq!(one(|e| e.store(W::D, mem(R11, 2), RDX)), "mov %edx,2(%r11)");
        assert_eq!(one(|e| e.store(W::Q, mem(R11, 2), RBX)), "mov %rbx,2(%r11)");
        assert_eq!(
            one(|e| e.store_i(W::B, mem(R11, 0), -1)),
            "movb $0xff,(%r11)"
        );
        assert_eq!(
            one(|e| e.store_i(W::H, mem(R11, 0), 0x1234)),
            "movw $0x1234,(%r11)"
        );
        assert_eq!(
            one(|e| e.store_i(W::D, mem(R11, 0), -2)),
            "movl $0xfffffffe,(%r11)"
        );
        assert_eq!(
            one(|e| e.store_i(W::Q, mem(R11, 0), -2)),
            "movq $0xfffffffffffffffe,(%r11)"
        );
        assert_eq!(
            one(|e| e.alu_rm(Alu::Cmp, R11, mem(R15, 16))),
            "cmp 0x10(%r15),%r11"
        );
        assert_eq!(
            one(|e| e.alu_rm(Alu::Add, RCX, mem(R15, 0))),
            "add (%r15),%rcx"
        );
        assert_eq!(
            one(|e| e.alu_mi(Alu::Cmp, mem(R15, 8), 0)),
            "cmpq $0,8(%r15)"
        );
        assert_eq!(
            one(|e| e.alu_mi(Alu::Cmp, mem(R15, 8), 1000)),
            "cmpq $0x3e8,8(%r15)"
        );
    }

    #[test]
    fn alu_forms_and_immediates() {
        assert_eq!(one(|e| e.alu_ri(Alu::Sub, true, RBP, 5)), "sub $5,%rbp");
        assert_eq!(
            one(|e| e.alu_ri(Alu::Cmp, true, RBP, 500)),
            "cmp $0x1f4,%rbp"
        );
        assert_eq!(
            one(|e| e.alu_ri(Alu::And, false, R13, -1)),
            "and $0xffffffff,%r13d"
        );
        assert_eq!(
            one(|e| e.alu_ri(Alu::Xor, true, R8, -200)),
            "xor $0xffffffffffffff38,%r8"
        );
        assert_eq!(one(|e| e.alu_rr(Alu::Or, false, RDI, R9)), "or %r9d,%edi");
        assert_eq!(one(|e| e.test_rr(true, RAX, R12)), "test %r12,%rax");
        assert_eq!(one(|e| e.test_ri(false, R9, 0x100)), "test $0x100,%r9d");
        assert_eq!(one(|e| e.mov_ri(RAX, 7)), "mov $7,%eax");
        assert_eq!(
            one(|e| e.mov_ri(R9, u64::MAX)),
            "mov $0xffffffffffffffff,%r9"
        );
        assert_eq!(
            one(|e| e.mov_ri(R11, 0x1_0000_0000)),
            "movabs $0x100000000,%r11"
        );
        assert_eq!(
            one(|e| e.mov_ri32(R10, 0xffff_ffff)),
            "mov $0xffffffff,%r10d"
        );
        assert_eq!(one(|e| e.imul_rr(true, RSI, R14)), "imul %r14,%rsi");
        assert_eq!(
            one(|e| e.imul_rri(false, RBX, R12, 3)),
            "imul $3,%r12d,%ebx"
        );
        assert_eq!(
            one(|e| e.shift_ri(Shift::Shl, W::Q, R12, 13)),
            "shl $0xd,%r12"
        );
        assert_eq!(
            one(|e| e.shift_ri(Shift::Sar, W::D, RAX, 31)),
            "sar $0x1f,%eax"
        );
        assert_eq!(one(|e| e.shift_ri(Shift::Rol, W::H, R9, 8)), "rol $8,%r9w");
        assert_eq!(one(|e| e.shift_cl(Shift::Shr, true, RDX)), "shr %cl,%rdx");
        assert_eq!(one(|e| e.neg(false, R8)), "neg %r8d");
        assert_eq!(one(|e| e.movzx16(RDI, RDI)), "movzwl %di,%edi");
        assert_eq!(
            one(|e| e.movsx_rr(false, RAX, R9, W::H)),
            "movswl %r9w,%eax"
        );
        assert_eq!(
            one(|e| e.movsx_rr(true, RAX, RSI, W::D)),
            "movslq %esi,%rax"
        );
        assert_eq!(one(|e| e.call_r(R11)), "call *%r11");
        assert_eq!(one(|e| e.ret()), "ret");
    }

    #[test]
    fn branches_reach_their_labels() {
        let mut e = Enc::default();
        let back = e.label();
        let fwd = e.label();
        e.bind(back);
        e.jcc(Cc::Le, fwd);
        e.jmp(back);
        e.bind(fwd);
        e.ret();
        let code = e.finish().unwrap();
        // jle +5 (over the jmp), jmp -11 (to the start), ret.
        assert_eq!(code.len(), 6 + 5 + 1);
        assert_eq!(&code[2..6], &5i32.to_le_bytes());
        assert_eq!(&code[7..11], &(-11i32).to_le_bytes());
        let mut e = Enc::default();
        let never = e.label();
        e.jmp(never);
        assert!(e.finish().is_none(), "an unbound label is an error");
    }
}
