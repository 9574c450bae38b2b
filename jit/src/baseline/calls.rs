//! The baseline tier's calls: helpers through the shim, BPF-to-BPF calls and their returns,
//! and the instructions it leaves to shims (atomics, legacy packet loads).

use std::mem::offset_of;

use bpfsim_vm::isa::{AtomicOp, PacketMode, Reg, Size, Source};
use bpfsim_vm::memory::{FRAME_SIZE, MAX_FRAMES};

use super::enc::*;
use super::{host, Baseline, Stub, DEPTH, LEFT, REGS, SAVE, VM};
use crate::shims::{self, FrameSave, VmCtx};

/// Bytes of one saved frame in `VmCtx::frames`.
const FRAME_SAVE: i32 = std::mem::size_of::<FrameSave>() as i32;

impl Baseline<'_> {
    /// A helper call (`id` a constant, or `callx`'s register) through the helpers' shim, as
    /// Cranelift's code makes it: the exact budget in the context around the call, and the
    /// registers after the arguments stored for a hand-over inside the helper.
    pub(super) fn helper(&mut self, pc: usize, id: Source) {
        let after = self.place.after;
        let field = Self::vm_field;
        if let Source::Reg(r) = id {
            self.a.mov_rr(true, R10, REGS[r.index()]);
        }
        self.a.lea(R11, mem(LEFT, after));
        self.a.store(W::Q, field(offset_of!(VmCtx, left)), R11);
        let need = after as u64;
        if need > 0 {
            let regs = offset_of!(VmCtx, regs);
            for (r, host) in REGS.iter().enumerate().skip(6) {
                self.a.store(W::Q, field(regs + 8 * r), *host);
            }
            self.frame_pointer(R11);
            self.a.store(W::Q, field(regs + 80), R11);
        }
        self.save();
        // The shim's last three arguments on the stack: r5, the site, the depth.
        self.a.store(W::Q, mem(RSP, 0), REGS[5]);
        self.a.mov_ri(R11, pc as u64 | need << 32);
        self.a.store(W::Q, mem(RSP, 8), R11);
        self.store_depth(mem(RSP, 16));
        // (vm, id, r1, r2, r3, r4): r4 is already in r9.
        self.a.mov_rr(true, RCX, REGS[2]);
        self.a.mov_rr(true, R8, REGS[3]);
        self.a.mov_rr(true, RDX, REGS[1]);
        self.a.mov_rr(true, RDI, VM);
        match id {
            Source::Imm(i) => self.a.mov_ri(RSI, i as i64 as u64),
            Source::Reg(_) => self.a.mov_rr(true, RSI, R10),
        }
        self.call_fn(shims::call as *const ());
        self.a.alu_mi(Alu::Cmp, field(offset_of!(VmCtx, status)), 0);
        self.a.jcc(Cc::Ne, self.helper_stop);
        for (k, r) in REGS[1..6].iter().enumerate() {
            self.a
                .load(W::Q, false, *r, mem(RSP, SAVE + 8 * (k as i32 + 1)));
        }
        self.a
            .load(W::Q, false, LEFT, field(offset_of!(VmCtx, left)));
        if after != 0 {
            self.a.alu_ri(Alu::Sub, true, LEFT, after);
        }
    }

    /// `call local`: the caller's frame saved in `vm.frames[depth]` as Cranelift's code saves it
    /// (the return slot, r6-r9, r10), which the interpreter reads on a hand-over inside the
    /// callee; the callee's frame zeroed; one level deeper. A call past the last frame is the
    /// interpreter's to trap on.
    pub(super) fn local_call(&mut self, pc: usize, next: usize, target: i64) {
        let Some(to) = self.target(target) else {
            return self.hand_over_here(pc);
        };
        let deep = self.a.label();
        self.stubs.push(Stub::HandOver {
            label: deep,
            pc,
            unexec: self.place.after + 1,
        });
        let frames = offset_of!(VmCtx, frames) as i32;
        self.a.load(W::Q, false, RCX, mem(RSP, DEPTH));
        self.a.alu_ri(Alu::Cmp, true, RCX, MAX_FRAMES as i32 - 2);
        self.a.jcc(Cc::A, deep);
        self.a.imul_rri(true, RCX, RCX, FRAME_SAVE);
        self.a.alu_rr(Alu::Add, true, RCX, VM);
        self.a.store_i(W::Q, mem(RCX, frames), next as i32);
        for (k, r) in REGS[6..10].iter().enumerate() {
            self.a.store(W::Q, mem(RCX, frames + 8 + 8 * k as i32), *r);
        }
        self.frame_pointer(R11);
        self.a.store(W::Q, mem(RCX, frames + 40), R11);
        // The callee's frame (depth + 1) is the stack buffer's from (depth + 1) * FRAME_SIZE.
        self.save();
        self.a.load(W::Q, false, RDI, mem(RSP, DEPTH));
        self.a.alu_ri(Alu::Add, true, RDI, 1);
        self.a.imul_rri(true, RDI, RDI, FRAME_SIZE as i32);
        self.a
            .alu_rm(Alu::Add, RDI, Self::vm_field(offset_of!(VmCtx, stack_base)));
        self.a.mov_ri32(RSI, FRAME_SIZE as u32);
        self.call_fn(shims::zero_stack as *const ());
        self.restore();
        self.a.alu_mi(Alu::Add, mem(RSP, DEPTH), 1);
        self.a.jmp(to);
    }

    /// `exit` in a program that makes calls: at depth 0 the run's end, else a return.
    pub(super) fn exit_with_calls(&mut self) {
        self.a.alu_mi(Alu::Cmp, mem(RSP, DEPTH), 0);
        self.a.jcc(Cc::Ne, self.sub_return);
        self.a.mov_rr(true, RDX, LEFT);
        self.epilogue();
    }

    /// The shared return from a callee: one level up, the caller's r6-r9 back, then to the
    /// slot its frame names (one of the program's return slots).
    pub(super) fn sub_return(&mut self) {
        let frames = offset_of!(VmCtx, frames) as i32;
        self.a.bind(self.sub_return);
        self.a.load(W::Q, false, RCX, mem(RSP, DEPTH));
        self.a.alu_ri(Alu::Sub, true, RCX, 1);
        self.a.store(W::Q, mem(RSP, DEPTH), RCX);
        self.a.imul_rri(true, RCX, RCX, FRAME_SAVE);
        self.a.alu_rr(Alu::Add, true, RCX, VM);
        for (k, r) in REGS[6..10].iter().enumerate() {
            self.a
                .load(W::Q, false, *r, mem(RCX, frames + 8 + 8 * k as i32));
        }
        self.a.load(W::Q, false, R11, mem(RCX, frames));
        // Every return slot starts a block (`leaders`); the last is the only one left.
        let sites: Vec<(usize, Label)> = self
            .ret_pcs
            .iter()
            .filter_map(|&p| Some((p, self.target(p as i64)?)))
            .collect();
        for (k, &(p, l)) in sites.iter().enumerate() {
            if k + 1 == sites.len() {
                self.a.jmp(l);
            } else {
                self.a.alu_ri(Alu::Cmp, true, R11, p as i32);
                self.a.jcc(Cc::E, l);
            }
        }
    }

    /// An atomic operation, through the shim (which reports the fault).
    pub(super) fn atomic(
        &mut self,
        pc: usize,
        size: Size,
        op: AtomicOp,
        dst: Reg,
        src: Reg,
        off: i16,
    ) {
        let result = crate::atomic_result(op, src);
        if result.is_some_and(|r| host(r).is_none()) {
            // A fetch into r10: the interpreter's to do.
            return self.hand_over_here(pc);
        }
        let d = self.src(dst, R10);
        self.a.lea(R10, mem(d, off as i32));
        let s = self.src(src, R11);
        self.a.mov_rr(true, R11, s);
        self.save();
        self.a.mov_rr(true, RDX, R10);
        self.a.mov_rr(true, R8, R11);
        self.a.mov_rr(true, R9, RAX);
        self.a.mov_rr(true, RDI, VM);
        self.a.mov_ri32(RSI, crate::atomic_code(op) as u32);
        self.a.mov_ri32(RCX, size.bytes() as u32);
        self.call_fn(shims::atomic as *const ());
        self.shim_status(pc, self.place.after);
        self.a.mov_rr(true, R10, RAX);
        self.restore();
        if let Some(r) = result.and_then(host) {
            self.a.mov_rr(true, REGS[r], R10);
        }
    }

    /// `ld_abs`/`ld_ind`: through the shim, which ends the run with r0 = 0 outside the packet.
    pub(super) fn ld_packet(&mut self, pc: usize, mode: PacketMode, size: Size, imm: i32) {
        let m = match mode {
            PacketMode::Abs => {
                self.a.mov_ri(R10, imm as i64 as u64);
                0x20
            }
            PacketMode::Ind(r) => {
                // The register's low half, sign-extended, plus the immediate.
                let s = self.src(r, R10);
                self.a.movsx_rr(true, R10, s, W::D);
                self.a.alu_ri(Alu::Add, true, R10, imm);
                0x40
            }
        };
        self.save();
        self.a.mov_rr(true, RSI, R10);
        self.a.mov_rr(true, RDI, VM);
        self.a.mov_ri32(RDX, size.bytes() as u32);
        self.a.mov_ri32(RCX, m);
        self.call_fn(shims::ld_packet as *const ());
        self.shim_status(pc, self.place.after);
        self.a.mov_rr(true, R10, RAX);
        self.restore();
        self.a.mov_rr(true, REGS[0], R10);
    }

    /// After a shim call: to the shared stop at `pc` (the `after` instructions of the block
    /// after it given back) when its status is not OK.
    pub(super) fn shim_status(&mut self, pc: usize, after: i32) {
        let ok = self.a.label();
        self.a
            .alu_mi(Alu::Cmp, Self::vm_field(offset_of!(VmCtx, status)), 0);
        self.a.jcc(Cc::E, ok);
        self.a.mov_ri32(RCX, pc as u32);
        self.a.mov_ri32(R10, after as u32);
        self.a.jmp(self.stop);
        self.a.bind(ok);
    }
}
