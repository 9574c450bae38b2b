//! One instruction: the dispatch to each class's translate function.

use bpfsim_vm::isa::{CallTarget, Insn};

use super::call::Helper;
use super::Gen;
use crate::JitError;

impl Gen<'_, '_> {
    /// One instruction; false when it ends its block.
    pub(super) fn insn(&mut self, pc: usize, next: usize, insn: &Insn) -> Result<bool, JitError> {
        match *insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => self.alu(width, op, dst, src),
            Insn::Neg { width, dst } => self.translate_neg(width, dst),
            Insn::MovSx {
                width,
                dst,
                src,
                from,
            } => self.translate_movsx(width, dst, src, from),
            Insn::Endian { dst, order, bits } => self.translate_endian(dst, order, bits),
            Insn::LdImm64 { dst, imm } => self.translate_lddw(pc, dst, imm)?,
            Insn::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => self.translate_load(pc, size, signed, dst, src, off),
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => self.translate_store(pc, size, dst, off, src),
            Insn::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => self.translate_atomic(pc, size, op, dst, src, off),
            Insn::LoadPacket { mode, size, imm } => self.translate_ld_packet(pc, mode, size, imm),
            Insn::Ja { .. } | Insn::Gotol { .. } => {
                self.translate_ja(insn, next);
                return Ok(false);
            }
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                self.translate_jmp(width, cond, dst, src, off, next);
                return Ok(false);
            }
            Insn::Call(CallTarget::Helper(id)) if id as u32 == bpfsim_vm::host::MAP_LOOKUP_ELEM => {
                self.translate_map_lookup(pc);
            }
            Insn::Call(CallTarget::Helper(id)) if id as u32 == bpfsim_vm::host::REDIRECT_MAP => {
                self.translate_redirect_map(pc);
            }
            Insn::Call(CallTarget::Helper(id)) if id as u32 == bpfsim_vm::host::XDP_ADJUST_META => {
                self.translate_xdp_adjust_meta(pc);
            }
            Insn::Call(CallTarget::Helper(id)) if id as u32 == bpfsim_vm::host::XDP_ADJUST_TAIL => {
                self.translate_xdp_adjust_tail(pc);
            }
            Insn::Call(CallTarget::Helper(id)) if id as u32 == bpfsim_vm::host::TAIL_CALL => {
                self.translate_tail_call(pc);
            }
            Insn::Call(CallTarget::Helper(id)) if id as u32 == bpfsim_vm::host::LOOP => {
                self.translate_loop(pc);
            }
            Insn::Call(CallTarget::Helper(id)) => {
                let idv = self.iconst(id as i64 as u64);
                self.helper(pc, Helper::Any(idv));
            }
            Insn::Callx { reg } => {
                let id = self.reg(reg);
                self.helper(pc, Helper::Any(id));
            }
            Insn::Call(CallTarget::Local(off)) => {
                self.translate_local_call(pc, next, off);
                return Ok(false);
            }
            Insn::Call(CallTarget::Kfunc { .. }) => {
                return Err(JitError::Unsupported {
                    pc,
                    what: "a kfunc call",
                })
            }
            Insn::Exit => {
                self.translate_exit(pc);
                return Ok(false);
            }
        }
        Ok(true)
    }
}
