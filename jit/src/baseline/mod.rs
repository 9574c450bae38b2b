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

mod ops;

use std::mem::offset_of;

use bpfsim_vm::isa::{Insn, Reg};
use bpfsim_vm::Program;
use iced_x86::code_asm::*;

use crate::shims::{self, VmCtx};
use crate::JitError;

/// Host register of each BPF register r0-r9. r1-r5 are caller-saved on the host, as they are
/// clobbered by a BPF call; r6-r9 callee-saved. `rcx` stays free for shift counts.
const REGS: [AsmRegister64; 10] = [rax, rdi, rsi, rdx, r9, r8, rbx, r12, r13, r14];
const REGS32: [AsmRegister32; 10] = [eax, edi, esi, edx, r9d, r8d, ebx, r12d, r13d, r14d];
const REGS16: [AsmRegister16; 10] = [ax, di, si, dx, r9w, r8w, bx, r12w, r13w, r14w];
const REGS8: [AsmRegister8; 10] = [al, dil, sil, dl, r9b, r8b, bl, r12b, r13b, r14b];
/// The run's context and the budget left, for the whole function.
const VM: AsmRegister64 = r15;
const LEFT: AsmRegister64 = rbp;

/// Bytes of the function's own frame: three outgoing stack arguments (a helper's shim takes
/// nine), then r0-r5 saved around a shim call. Keeps `rsp` 16-byte aligned at calls after the
/// six pushes of the prologue.
const FRAME: i32 = 88;
const SAVE: i32 = 32;

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
        label: CodeLabel,
        pc: usize,
        unexec: i32,
    },
    /// A memory access the primary region's check refused: the region table, then the shim.
    Access(ops::Access),
}

pub(crate) struct Baseline<'p> {
    a: CodeAssembler,
    prog: &'p Program,
    /// The label of each slot that starts a block.
    labels: Vec<Option<CodeLabel>>,
    stubs: Vec<Stub>,
    /// Shared exits (`Stop`: pc in `rcx`, budget to give back in `r10`).
    stop: CodeLabel,
    helper_stop: CodeLabel,
    hand_over: CodeLabel,
    place: Place,
}

fn asm_err(e: IcedError) -> JitError {
    JitError::Codegen(format!("baseline assembler: {e}"))
}

/// Compile `prog` for the baseline tier.
pub(crate) fn compile(prog: &Program, reads_r3_r5: bool) -> Result<Code, JitError> {
    let leaders = leaders(prog);
    let mut b = Baseline::new(prog, &leaders)?;
    b.body(&leaders, reads_r3_r5).map_err(asm_err)?;
    let bytes = b.a.assemble(0).map_err(asm_err)?;
    place(&bytes)
}

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
    fn new(prog: &'p Program, leaders: &[bool]) -> Result<Self, JitError> {
        let mut a = CodeAssembler::new(64).map_err(asm_err)?;
        let labels = leaders
            .iter()
            .map(|&l| l.then(|| a.create_label()))
            .collect();
        let stop = a.create_label();
        let helper_stop = a.create_label();
        let hand_over = a.create_label();
        Ok(Baseline {
            a,
            prog,
            labels,
            stubs: Vec::new(),
            stop,
            helper_stop,
            hand_over,
            place: Place { after: 0 },
        })
    }

    /// Bind `label` here. A zero-byte instruction follows it: iced takes one label per
    /// instruction, and two paths may meet at one place.
    fn bind(&mut self, label: &mut CodeLabel) -> Result<(), IcedError> {
        self.a.set_label(label)?;
        self.a.zero_bytes()
    }

    fn vm_field(field: usize) -> AsmMemoryOperand {
        qword_ptr(VM + field as i32)
    }

    fn body(&mut self, leaders: &[bool], reads_r3_r5: bool) -> Result<(), IcedError> {
        self.prologue(reads_r3_r5)?;
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
            let mut l = self.labels[pc0].expect("a block starts at a leader");
            self.bind(&mut l)?;
            // Pay the block's budget on entry, or hand the run over before it.
            let short = self.a.create_label();
            self.a.cmp(LEFT, n)?;
            self.a.jb(short)?;
            self.stubs.push(Stub::HandOver {
                label: short,
                pc: pc0,
                unexec: 0,
            });
            self.a.sub(LEFT, n)?;
            for (k, &(pc, insn)) in items[start..end].iter().enumerate() {
                self.place = Place {
                    after: n - 1 - k as i32,
                };
                let next = pc + insn.slots();
                let falls_off = next >= prog.slots() && !ends_flow(&insn);
                if falls_off {
                    // Past the last instruction: the interpreter reports it as it does.
                    self.hand_over_here(pc)?;
                } else {
                    self.insn(pc, next, &insn)?;
                }
            }
            i = end;
        }
        self.stubs_and_exits()
    }

    fn prologue(&mut self, reads_r3_r5: bool) -> Result<(), IcedError> {
        for r in [rbp, rbx, r12, r13, r14, r15] {
            self.a.push(r)?;
        }
        self.a.sub(rsp, FRAME)?;
        // (context, budget, r1, r2): r3-r5 from the context when the program reads them.
        self.a.mov(VM, rdi)?;
        self.a.mov(LEFT, rsi)?;
        self.a.mov(rdi, rdx)?;
        self.a.mov(rsi, rcx)?;
        let args = offset_of!(VmCtx, args) as i32;
        if reads_r3_r5 {
            self.a.mov(REGS[3], qword_ptr(VM + (args + 16)))?;
            self.a.mov(REGS[4], qword_ptr(VM + (args + 24)))?;
            self.a.mov(REGS[5], qword_ptr(VM + (args + 32)))?;
        }
        // Registers a program reads before writing them read 0, as in the interpreter.
        for r in [0, 6, 7, 8, 9] {
            self.a.xor(REGS32[r], REGS32[r])?;
        }
        Ok(())
    }

    fn epilogue(&mut self) -> Result<(), IcedError> {
        self.a.add(rsp, FRAME)?;
        for r in [r15, r14, r13, r12, rbx, rbp] {
            self.a.pop(r)?;
        }
        self.a.ret()
    }

    /// Hand the run to the interpreter at `pc`, not executed.
    fn hand_over_here(&mut self, pc: usize) -> Result<(), IcedError> {
        let label = self.a.create_label();
        self.a.jmp(label)?;
        self.stubs.push(Stub::HandOver {
            label,
            pc,
            unexec: self.place.after + 1,
        });
        Ok(())
    }

    /// The label of the block at `slot`, or `None` when no block starts there.
    fn target(&self, slot: i64) -> Option<CodeLabel> {
        usize::try_from(slot)
            .ok()
            .and_then(|s| self.labels.get(s).copied().flatten())
    }

    /// Save the caller-saved BPF registers (r0-r5) before a call into Rust.
    fn save(&mut self) -> Result<(), IcedError> {
        for (k, r) in REGS[..6].iter().enumerate() {
            self.a.mov(qword_ptr(rsp + (SAVE + 8 * k as i32)), *r)?;
        }
        Ok(())
    }

    fn restore(&mut self) -> Result<(), IcedError> {
        for (k, r) in REGS[..6].iter().enumerate() {
            self.a.mov(*r, qword_ptr(rsp + (SAVE + 8 * k as i32)))?;
        }
        Ok(())
    }

    /// Call `f` (an `extern "C"` function), its arguments in place.
    fn call_fn(&mut self, f: *const ()) -> Result<(), IcedError> {
        self.a.mov(r11, f as u64)?;
        self.a.call(r11)
    }

    fn stubs_and_exits(&mut self) -> Result<(), IcedError> {
        let stubs = std::mem::take(&mut self.stubs);
        for stub in stubs {
            match stub {
                Stub::HandOver {
                    mut label,
                    pc,
                    unexec,
                } => {
                    self.bind(&mut label)?;
                    self.a.lea(r10, qword_ptr(LEFT + unexec))?;
                    self.a.mov(ecx, pc as u32)?;
                    self.a.jmp(self.hand_over)?;
                }
                Stub::Access(acc) => self.access_stub(acc)?,
            }
        }
        self.exits()
    }

    fn exits(&mut self) -> Result<(), IcedError> {
        let field = Self::vm_field;
        // Hand-over: registers, pc (rcx) and the budget before it (r10) for the interpreter,
        // which the entry calls once this returns `(BUDGET, SLOW)`.
        let mut l = self.hand_over;
        self.bind(&mut l)?;
        let regs = offset_of!(VmCtx, regs);
        for (k, r) in REGS.iter().enumerate() {
            self.a.mov(field(regs + 8 * k), *r)?;
        }
        self.a.mov(r11, bpfsim_vm::memory::frame_pointer(0))?;
        self.a.mov(field(regs + 80), r11)?;
        self.a.mov(field(offset_of!(VmCtx, left_at_block)), r10)?;
        self.a.mov(field(offset_of!(VmCtx, budget_pc)), rcx)?;
        self.a.mov(field(offset_of!(VmCtx, budget_depth)), 0)?;
        self.a.mov(eax, shims::BUDGET as u32)?;
        self.a.mov(rdx, shims::SLOW)?;
        self.epilogue()?;

        // A helper stopped the run: its budget and pc are in the context.
        let mut l = self.helper_stop;
        self.bind(&mut l)?;
        self.a.mov(LEFT, field(offset_of!(VmCtx, left)))?;
        self.a.mov(rcx, field(offset_of!(VmCtx, trap_pc)))?;
        self.a.xor(r10d, r10d)?;
        // Falls into the stop.

        // A shim stopped the run at pc `rcx`: give back `r10` instructions of budget, then
        // exit with the value, ask for the tail call, or trap as the shim said.
        let mut l = self.stop;
        self.bind(&mut l)?;
        self.a.add(LEFT, r10)?;
        self.a.mov(r11, field(offset_of!(VmCtx, status)))?;
        let not_exit = self.a.create_label();
        self.a.cmp(r11, shims::STOP_EXIT as i32)?;
        self.a.jne(not_exit)?;
        self.a.mov(rax, field(offset_of!(VmCtx, status_value)))?;
        self.a.mov(rdx, LEFT)?;
        self.epilogue()?;
        let mut l = not_exit;
        self.bind(&mut l)?;
        self.a.mov(field(offset_of!(VmCtx, left)), LEFT)?;
        let trap = self.a.create_label();
        self.a.cmp(r11, shims::STOP_TAIL as i32)?;
        self.a.jne(trap)?;
        self.a.mov(eax, shims::TAIL_CALL as u32)?;
        self.a.mov(rdx, shims::SLOW)?;
        self.epilogue()?;
        let mut l = trap;
        self.bind(&mut l)?;
        self.a.mov(field(offset_of!(VmCtx, trap_pc)), rcx)?;
        self.a.mov(eax, shims::TRAP as u32)?;
        self.a.mov(rdx, shims::SLOW)?;
        self.epilogue()
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
