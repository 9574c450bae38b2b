//! The baseline tier: x86-64 code written in one pass over the program, with no register
//! allocation and no optimisation, so that a program compiles in tens of microseconds where
//! Cranelift takes milliseconds (regalloc2 is half of that, and scales with the program's data
//! flow). Its code runs against the same run context ([`VmCtx`]), shims and interpreter
//! hand-over as Cranelift's, so a [`crate::JitProgram`] built by either runs the same way.
//!
//! BPF registers live in fixed host registers (r10 is a constant: the frame pointer of frame
//! 0). Each block checks and pays its instructions' budget on entry, as Cranelift's code does
//! at its checkpoints; what the tier does not translate (BPF-to-BPF calls, atomics, legacy
//! packet loads, a jump to no instruction's start) hands the rest of the run to the
//! interpreter at that instruction, with the exact budget, so results never differ.

mod calls;
mod enc;
mod ops;

pub(crate) use ops::runtime_symbols;

use std::mem::offset_of;

use bpfsim_vm::isa::{CallTarget, Insn, Reg};
use bpfsim_vm::Program;

use crate::shims::{self, VmCtx};
use crate::JitError;
use enc::*;

/// Host register of each BPF register r0-r9. r1-r5 are caller-saved on the host, as they are
/// clobbered by a BPF call; r6-r9 callee-saved. `rcx` stays free for shift counts.
const REGS: [R; 10] = [RAX, RDI, RSI, RDX, R9, R8, RBX, R12, R13, R14];
/// The run's context and the budget left, for the whole function.
const VM: R = R15;
const LEFT: R = RBP;

/// Bytes of the function's own frame: three outgoing stack arguments (a helper's shim takes
/// nine), then r0-r5 saved around a shim call. Keeps `rsp` 16-byte aligned at calls after the
/// six pushes of the prologue.
const FRAME: i32 = 88;
const SAVE: i32 = 32;
/// The call depth (BPF-to-BPF calls), in a program that makes any; 0 otherwise, as a constant.
const DEPTH: i32 = 80;

/// Executable memory holding one function.
pub(crate) struct Code {
    mem: region::Allocation,
    len: usize,
}

impl Code {
    pub(crate) fn entry(&self) -> *const u8 {
        self.mem.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// What one instruction needs from its block: where the block's budget was paid.
#[derive(Clone, Copy)]
struct Place {
    /// Instructions of the block after this one (paid on entry, not yet executed).
    after: i32,
}

/// A path out of line, emitted after the function's body.
enum Stub {
    /// Hand the run to the interpreter at `pc`, `unexec` instructions of budget given back
    /// (the instruction itself and the rest of its block).
    HandOver {
        label: Label,
        pc: usize,
        unexec: i32,
    },
    /// A memory access the primary region's check refused: the region table, then the shim.
    Access(ops::Access),
}

pub(crate) struct Baseline<'p> {
    a: Enc,
    prog: &'p Program,
    /// The label of each slot that starts a block.
    labels: Vec<Option<Label>>,
    stubs: Vec<Stub>,
    /// Shared exits (`Stop`: pc in `rcx`, budget to give back in `r10`).
    stop: Label,
    helper_stop: Label,
    hand_over: Label,
    place: Place,
    /// Whether the program makes BPF-to-BPF calls: then the depth and r10 are read at run time.
    calls: bool,
    /// The slots calls return to, and the shared return of an exit in a callee.
    ret_pcs: Vec<usize>,
    sub_return: Label,
    /// The code's ranges by slot, for a listing ([`compile`]).
    ranges: Option<Vec<Range>>,
}

/// Compile `prog` for the baseline tier.
/// With `listing`, also the code's ranges in order, each with the BPF slot it was written for
/// (`None`: the prologue and the shared exits), as [`crate::listing::parts`] takes them.
pub(crate) fn compile(
    prog: &Program,
    reads_r3_r5: bool,
    listing: bool,
) -> Result<(Code, Vec<Range>), JitError> {
    let leaders = leaders(prog);
    let mut b = Baseline::new(prog, &leaders);
    b.ranges = listing.then(Vec::new);
    b.body(&leaders, reads_r3_r5);
    let ranges = b.ranges.take().unwrap_or_default();
    let bytes =
        b.a.finish()
            .ok_or_else(|| JitError::Codegen("baseline: a branch to no label".into()))?;
    Ok((place(&bytes)?, ranges))
}

/// A range of the code and the BPF slot it was written for.
pub(crate) type Range = (usize, usize, Option<usize>);

/// The slots that start a block: the entry, every jump's target that is an instruction, and
/// every instruction after a jump, a call or an exit.
fn leaders(prog: &Program) -> Vec<bool> {
    let slots = prog.slots();
    let mut starts = vec![false; slots + 1];
    for (pc, _) in prog.iter() {
        starts[pc] = true;
    }
    let mut lead = vec![false; slots + 1];
    lead[0] = true;
    for (pc, insn) in prog.iter() {
        let next = pc + insn.slots();
        if let Some(off) = insn.jump_offset() {
            let t = next as i64 + off as i64;
            if (0..slots as i64).contains(&t) && starts[t as usize] {
                lead[t as usize] = true;
            }
            lead[next] = true;
        }
        if matches!(insn, Insn::Exit | Insn::Call(_) | Insn::Callx { .. }) {
            lead[next] = true;
        }
        if let Insn::Call(CallTarget::Local(off)) = insn {
            let t = next as i64 + *off as i64;
            if (0..slots as i64).contains(&t) && starts[t as usize] {
                lead[t as usize] = true;
            }
        }
    }
    lead
}

/// Copy `bytes` into fresh memory, then make it executable (and not writable).
fn place(bytes: &[u8]) -> Result<Code, JitError> {
    let err = |e: region::Error| JitError::Codegen(format!("baseline code memory: {e}"));
    let len = bytes.len().max(1);
    let mut mem = region::alloc(len, region::Protection::READ_WRITE).map_err(err)?;
    // SAFETY: `mem` is a fresh writable mapping of at least `len` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), mem.as_mut_ptr::<u8>(), bytes.len());
        region::protect(mem.as_ptr::<u8>(), len, region::Protection::READ_EXECUTE).map_err(err)?;
    }
    Ok(Code {
        mem,
        len: bytes.len(),
    })
}

impl<'p> Baseline<'p> {
    fn new(prog: &'p Program, leaders: &[bool]) -> Self {
        // About 24 bytes of code per instruction, stubs included.
        let mut a = Enc::with_capacity(prog.slots() * 24 + 256);
        // Only instructions get labels: a jump to one past the last slot is handed over
        // (`Program::new` refuses such a program; the tier does not rely on it).
        let slots = prog.slots();
        let labels = leaders
            .iter()
            .enumerate()
            .map(|(i, &l)| (l && i < slots).then(|| a.label()))
            .collect();
        let stop = a.label();
        let helper_stop = a.label();
        let hand_over = a.label();
        let sub_return = a.label();
        // The return slots of the calls the code makes (a call in the last slot would fall off
        // the program: handed over instead).
        let ret_pcs: Vec<usize> = prog
            .iter()
            .filter(|(_, i)| matches!(i, Insn::Call(CallTarget::Local(_))))
            .map(|(pc, i)| pc + i.slots())
            .filter(|&next| next < prog.slots())
            .collect();
        Baseline {
            a,
            prog,
            labels,
            stubs: Vec::new(),
            stop,
            helper_stop,
            hand_over,
            place: Place { after: 0 },
            calls: !ret_pcs.is_empty(),
            ret_pcs,
            sub_return,
            ranges: None,
        }
    }

    /// The code from `start` to here was written for `pc` (kept for a listing).
    fn mark(&mut self, start: usize, pc: Option<usize>) {
        let end = self.a.buf.len();
        if let Some(r) = &mut self.ranges {
            r.push((start, end, pc));
        }
    }

    fn vm_field(field: usize) -> Mem {
        mem(VM, field as i32)
    }

    fn body(&mut self, leaders: &[bool], reads_r3_r5: bool) {
        self.prologue(reads_r3_r5);
        self.mark(0, None);
        let prog = self.prog;
        let items: Vec<(usize, Insn)> = prog.iter().map(|(pc, i)| (pc, *i)).collect();
        let mut i = 0;
        while i < items.len() {
            // One block: from a leader to the next one.
            let start = i;
            let mut end = i + 1;
            while end < items.len() && !leaders[items[end].0] {
                end += 1;
            }
            let n = (end - start) as i32;
            let (pc0, _) = items[start];
            if let Some(l) = self.labels[pc0] {
                self.a.bind(l);
            }
            let at = self.a.buf.len();
            // Pay the block's budget on entry, or hand the run over before it.
            let short = self.a.label();
            self.a.alu_ri(Alu::Cmp, true, LEFT, n);
            self.a.jcc(Cc::B, short);
            self.stubs.push(Stub::HandOver {
                label: short,
                pc: pc0,
                unexec: 0,
            });
            self.a.alu_ri(Alu::Sub, true, LEFT, n);
            // The block's budget is listed with its first instruction.
            self.mark(at, Some(pc0));
            for (k, &(pc, insn)) in items[start..end].iter().enumerate() {
                let at = self.a.buf.len();
                self.place = Place {
                    after: n - 1 - k as i32,
                };
                let next = pc + insn.slots();
                let falls_off = next >= prog.slots() && !ends_flow(&insn);
                if falls_off {
                    // Past the last instruction: the interpreter reports it as it does.
                    self.hand_over_here(pc);
                } else {
                    self.insn(pc, next, &insn);
                }
                self.mark(at, Some(pc));
            }
            i = end;
        }
        self.stubs_and_exits();
    }

    fn prologue(&mut self, reads_r3_r5: bool) {
        for r in [RBP, RBX, R12, R13, R14, R15] {
            self.a.push(r);
        }
        self.a.alu_ri(Alu::Sub, true, RSP, FRAME);
        // (context, budget, r1, r2): r3-r5 from the context when the program reads them.
        self.a.mov_rr(true, VM, RDI);
        self.a.mov_rr(true, LEFT, RSI);
        self.a.mov_rr(true, REGS[1], RDX);
        self.a.mov_rr(true, REGS[2], RCX);
        let args = offset_of!(VmCtx, args);
        if reads_r3_r5 {
            for (k, r) in REGS[3..6].iter().enumerate() {
                self.a
                    .load(W::Q, false, *r, Self::vm_field(args + 16 + 8 * k));
            }
        }
        // Registers a program reads before writing them read 0, as in the interpreter.
        for r in [0, 6, 7, 8, 9] {
            self.a.alu_rr(Alu::Xor, false, REGS[r], REGS[r]);
        }
        if self.calls {
            self.a.store_i(W::Q, mem(RSP, DEPTH), 0);
        }
    }

    /// `dst` = r10's value, `frame_pointer(depth)`.
    fn frame_pointer(&mut self, dst: R) {
        if !self.calls {
            self.a.mov_ri(dst, bpfsim_vm::memory::frame_pointer(0));
            return;
        }
        // ((FIRST_FRAME_REGION + depth) << 32) | FRAME_SIZE
        self.a.load(W::Q, false, dst, mem(RSP, DEPTH));
        self.a.alu_ri(
            Alu::Add,
            true,
            dst,
            bpfsim_vm::memory::FIRST_FRAME_REGION as i32,
        );
        self.a
            .shift_ri(Shift::Shl, W::Q, dst, bpfsim_vm::memory::REGION_SHIFT as u8);
        self.a
            .alu_ri(Alu::Or, true, dst, bpfsim_vm::memory::FRAME_SIZE as i32);
    }

    /// `[rsp + at]` = the call depth.
    fn store_depth(&mut self, at: Mem) {
        if self.calls {
            self.a.load(W::Q, false, R11, mem(RSP, DEPTH));
            self.a.store(W::Q, at, R11);
        } else {
            self.a.store_i(W::Q, at, 0);
        }
    }

    fn epilogue(&mut self) {
        self.a.alu_ri(Alu::Add, true, RSP, FRAME);
        for r in [R15, R14, R13, R12, RBX, RBP] {
            self.a.pop(r);
        }
        self.a.ret();
    }

    /// Hand the run to the interpreter at `pc`, not executed.
    fn hand_over_here(&mut self, pc: usize) {
        let label = self.a.label();
        self.a.jmp(label);
        self.stubs.push(Stub::HandOver {
            label,
            pc,
            unexec: self.place.after + 1,
        });
    }

    /// The label of the block at `slot`, or `None` when no block starts there.
    fn target(&self, slot: i64) -> Option<Label> {
        usize::try_from(slot)
            .ok()
            .and_then(|s| self.labels.get(s).copied().flatten())
    }

    /// Save the caller-saved BPF registers (r0-r5) before a call into Rust.
    fn save(&mut self) {
        for (k, r) in REGS[..6].iter().enumerate() {
            self.a.store(W::Q, mem(RSP, SAVE + 8 * k as i32), *r);
        }
    }

    fn restore(&mut self) {
        for (k, r) in REGS[..6].iter().enumerate() {
            self.a.load(W::Q, false, *r, mem(RSP, SAVE + 8 * k as i32));
        }
    }

    /// Call `f` (an `extern "C"` function), its arguments in place.
    fn call_fn(&mut self, f: *const ()) {
        self.a.mov_ri(R11, f as u64);
        self.a.call_r(R11);
    }

    fn stubs_and_exits(&mut self) {
        let stubs = std::mem::take(&mut self.stubs);
        for stub in stubs {
            let at = self.a.buf.len();
            let pc = match stub {
                Stub::HandOver { label, pc, unexec } => {
                    self.a.bind(label);
                    self.a.lea(R10, mem(LEFT, unexec));
                    self.a.mov_ri32(RCX, pc as u32);
                    self.a.jmp(self.hand_over);
                    pc
                }
                Stub::Access(acc) => {
                    let pc = acc.pc;
                    self.access_stub(acc);
                    pc
                }
            };
            self.mark(at, Some(pc));
        }
        let at = self.a.buf.len();
        self.exits();
        self.mark(at, None);
    }

    fn exits(&mut self) {
        let field = Self::vm_field;
        // Hand-over: registers, pc (rcx) and the budget before it (r10) for the interpreter,
        // which the entry calls once this returns `(BUDGET, SLOW)`.
        self.a.bind(self.hand_over);
        let regs = offset_of!(VmCtx, regs);
        for (k, r) in REGS.iter().enumerate() {
            self.a.store(W::Q, field(regs + 8 * k), *r);
        }
        self.frame_pointer(R11);
        self.a.store(W::Q, field(regs + 80), R11);
        self.a
            .store(W::Q, field(offset_of!(VmCtx, left_at_block)), R10);
        self.a.store(W::Q, field(offset_of!(VmCtx, budget_pc)), RCX);
        self.store_depth(field(offset_of!(VmCtx, budget_depth)));
        self.slow_return(shims::BUDGET);
        if self.calls {
            self.sub_return();
        }

        // A helper stopped the run: its budget and pc are in the context.
        self.a.bind(self.helper_stop);
        self.a
            .load(W::Q, false, LEFT, field(offset_of!(VmCtx, left)));
        self.a
            .load(W::Q, false, RCX, field(offset_of!(VmCtx, trap_pc)));
        self.a.alu_rr(Alu::Xor, false, R10, R10);
        // Falls into the stop.

        // A shim stopped the run at pc `rcx`: give back `r10` instructions of budget, then
        // exit with the value, ask for the tail call, or trap as the shim said.
        self.a.bind(self.stop);
        self.a.alu_rr(Alu::Add, true, LEFT, R10);
        self.a
            .load(W::Q, false, R11, field(offset_of!(VmCtx, status)));
        let not_exit = self.a.label();
        self.a.alu_ri(Alu::Cmp, true, R11, shims::STOP_EXIT as i32);
        self.a.jcc(Cc::Ne, not_exit);
        self.a
            .load(W::Q, false, RAX, field(offset_of!(VmCtx, status_value)));
        self.a.mov_rr(true, RDX, LEFT);
        self.epilogue();
        self.a.bind(not_exit);
        self.a.store(W::Q, field(offset_of!(VmCtx, left)), LEFT);
        let trap = self.a.label();
        self.a.alu_ri(Alu::Cmp, true, R11, shims::STOP_TAIL as i32);
        self.a.jcc(Cc::Ne, trap);
        self.slow_return(shims::TAIL_CALL);
        self.a.bind(trap);
        self.a.store(W::Q, field(offset_of!(VmCtx, trap_pc)), RCX);
        self.slow_return(shims::TRAP);
    }

    /// Return `(status, SLOW)`.
    fn slow_return(&mut self, status: u64) {
        self.a.mov_ri(RAX, status);
        self.a.mov_ri(RDX, shims::SLOW);
        self.epilogue();
    }
}

/// Whether control never goes on to the next slot after `insn`.
fn ends_flow(insn: &Insn) -> bool {
    matches!(insn, Insn::Exit | Insn::Ja { .. } | Insn::Gotol { .. })
}

/// The host register of BPF register `r` (r10 has none).
fn host(r: Reg) -> Option<usize> {
    (r.index() < 10).then_some(r.index())
}
