//! The ways out of a run: traps, shim stops and the final exits that hand r0, a tail call or a
//! trap back to Rust.

use std::mem::offset_of;

use bpfsim_vm::TrapCode;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{Block, InstBuilder, Value};

use super::{Exit, Gen};
use crate::shims::{self, VmCtx};

impl Gen<'_, '_> {
    /// Give back the budget of the block's instructions after the current one: the run stops
    /// here, and the block was counted whole when it was entered.
    pub(super) fn refund(&mut self) {
        let adjust = self.adjust();
        if adjust != 0 {
            let left = self.b.use_var(self.left);
            let back = self.b.ins().iadd_imm(left, adjust);
            self.b.def_var(self.left, back);
        }
    }

    /// Jump to the trap exit with these values.
    pub(super) fn trap(&mut self, pc: usize, code: TrapCode, detail: Value, size: u64) {
        self.refund();
        let pcv = self.iconst(pc as u64);
        let c = self.iconst(code as u64);
        let s = self.iconst(size);
        let trap = self.exit(Exit::Trap);
        self.b
            .ins()
            .jump(trap, &[pcv.into(), c.into(), detail.into(), s.into()]);
    }

    /// After a shim call: go on if it succeeded, else trap (with the shim's trap) at `pc`.
    pub(super) fn check_status(&mut self, pc: usize) {
        let ok = self.cont();
        self.status_branch(pc, ok, &[]);
        self.switch(ok);
    }

    /// After a shim call: on failure to the shared stop (for `pc`), else to `ok` with `args`.
    /// One branch straight to the stop block: no block of its own per call site.
    pub(super) fn status_branch(&mut self, pc: usize, ok: Block, args: &[Value]) {
        let st = self.vm_load(offset_of!(VmCtx, status));
        let pcv = self.iconst(pc as u64);
        let unexec = self.iconst(self.adjust() as u64);
        let args: Vec<_> = args.iter().map(|&v| v.into()).collect();
        let stop = self.exit(Exit::Stop);
        self.b
            .ins()
            .brif(st, stop, &[pcv.into(), unexec.into()], ok, &args);
    }

    /// The shared stop: give back the unexecuted budget, then exit with a value, tail call, or
    /// trap with the shim's code at the given pc.
    pub(super) fn stop_epilogue(&mut self) {
        let Some(p) = self.enter_exit(Exit::Stop) else {
            return;
        };
        let left = self.b.use_var(self.left);
        let back = self.b.ins().iadd(left, p[1]);
        self.b.def_var(self.left, back);
        let st = self.vm_load(offset_of!(VmCtx, status));
        let is_exit = self
            .b
            .ins()
            .icmp_imm(IntCC::Equal, st, shims::STOP_EXIT as i64);
        let exit = self.b.create_block();
        let not_exit = self.b.create_block();
        self.b.ins().brif(is_exit, exit, &[], not_exit, &[]);
        self.switch(exit);
        let v = self.vm_load(offset_of!(VmCtx, status_value));
        let exit = self.exit(Exit::Return);
        self.b.ins().jump(exit, &[v.into()]);
        self.switch(not_exit);
        let is_tail = self
            .b
            .ins()
            .icmp_imm(IntCC::Equal, st, shims::STOP_TAIL as i64);
        let tail = self.b.create_block();
        let trap = self.b.create_block();
        self.b.ins().brif(is_tail, tail, &[], trap, &[]);
        self.switch(tail);
        let t = self.vm_load(offset_of!(VmCtx, status_value));
        let tail = self.exit(Exit::Tail);
        self.b.ins().jump(tail, &[t.into()]);
        self.switch(trap);
        let code = self.vm_load(offset_of!(VmCtx, trap_code));
        let detail = self.vm_load(offset_of!(VmCtx, trap_detail));
        let size = self.vm_load(offset_of!(VmCtx, trap_size));
        let trap = self.exit(Exit::Trap);
        self.b.ins().jump(
            trap,
            &[p[0].into(), code.into(), detail.into(), size.into()],
        );
    }

    pub(super) fn epilogues(&mut self) {
        // Trap: record where and why, and the budget left.
        if let Some(p) = self.enter_exit(Exit::Trap) {
            self.vm_store(offset_of!(VmCtx, trap_pc), p[0]);
            self.vm_store(offset_of!(VmCtx, trap_code), p[1]);
            self.vm_store(offset_of!(VmCtx, trap_detail), p[2]);
            self.vm_store(offset_of!(VmCtx, trap_size), p[3]);
            let left = self.b.use_var(self.left);
            self.vm_store(offset_of!(VmCtx, left), left);
            let st = self.iconst(shims::TRAP);
            let slow = self.iconst(shims::SLOW);
            self.b.ins().return_(&[st, slow]);
        }

        if self.root_depth > 0 {
            // A callback's call ends with r0 0 at a tail call, whose target is not followed.
            if self.enter_exit(Exit::Tail).is_some() {
                let z = self.iconst(0);
                let ret = self.exit(Exit::Return);
                self.b.ins().jump(ret, &[z.into()]);
            }
            if let Some(p) = self.enter_exit(Exit::Return) {
                self.callback_done(p[0]);
            }
            return;
        }

        // The common way out, in registers: r0 and the budget left.
        if let Some(p) = self.enter_exit(Exit::Return) {
            let left = self.b.use_var(self.left);
            self.b.ins().return_(&[p[0], left]);
        }

        if let Some(p) = self.enter_exit(Exit::Tail) {
            self.vm_store(offset_of!(VmCtx, status_value), p[0]);
            let left = self.b.use_var(self.left);
            self.vm_store(offset_of!(VmCtx, left), left);
            let st = self.iconst(shims::TAIL_CALL);
            let slow = self.iconst(shims::SLOW);
            self.b.ins().return_(&[st, slow]);
        }
    }
}
