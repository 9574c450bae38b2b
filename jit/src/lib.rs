//! bpfsim-jit: eBPF compiled to native code with Cranelift, with the interpreter's exact
//! semantics. Registers are Cranelift variables; every CFG leader is a block; guest memory goes
//! through the same region table as the interpreter (an inline check of the region and the limit,
//! a call into Rust for anything the check refuses: the context's computed fields, or a fault);
//! helpers go through the same `Host`; the instruction budget is counted per block, and a
//! block the budget cannot pay for whole is handed to the interpreter, so a budget trap has the
//! interpreter's pc and side effects. Failures are explicit branches to a trap exit: the
//! generated code never faults natively.
//!
//! ```
//! use bpfsim_jit::JitProgram;
//! use bpfsim_vm::{asm::assemble, NoHelpers, Program, Vm};
//!
//! let prog = Program::new(assemble("mov %r0, 6\nmul %r0, 7\nexit").unwrap()).unwrap();
//! let jit = JitProgram::compile(&prog).unwrap();
//! let mut vm = Vm::default();
//! let mut mem = vm.memory();
//! let out = jit.run(&mut mem, &mut NoHelpers, [0; 5], 1000);
//! assert_eq!(out.result, Ok(42));
//! assert_eq!(out.insns, 3);
//! ```

mod shims;

use std::mem::offset_of;

use bpfsim_vm::isa::{
    AluOp, AtomicOp, CallTarget, Cond, Endian, Imm64, Insn, PacketMode, Reg, Size, Source, Width,
};
use bpfsim_vm::memory::{FIRST_FRAME_REGION, FRAME_SIZE, REGION_SHIFT};
use bpfsim_vm::{Host, MemoryMap, Outcome, Program, Trap, TrapCode};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, Block, FuncRef, InstBuilder, MemFlags, Type, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};

use shims::{FrameSave, HostRef, VmCtx};

/// Why a program cannot be compiled (the `auto` engine then interprets it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JitError {
    #[error("instruction {pc}: {what} is not compiled by the JIT yet; use the interpreter")]
    Unsupported { pc: usize, what: &'static str },
    #[error("Cranelift: {0}")]
    Codegen(String),
}

pub(crate) fn atomic_code(op: AtomicOp) -> u64 {
    match op {
        AtomicOp::Add { .. } => 0,
        AtomicOp::Or { .. } => 1,
        AtomicOp::And { .. } => 2,
        AtomicOp::Xor { .. } => 3,
        AtomicOp::Xchg => 4,
        AtomicOp::CmpXchg => 5,
        AtomicOp::LoadAcquire => 6,
        AtomicOp::StoreRelease => 7,
    }
}

pub(crate) fn atomic_from_code(c: u64) -> Option<AtomicOp> {
    Some(match c {
        0 => AtomicOp::Add { fetch: true },
        1 => AtomicOp::Or { fetch: true },
        2 => AtomicOp::And { fetch: true },
        3 => AtomicOp::Xor { fetch: true },
        4 => AtomicOp::Xchg,
        5 => AtomicOp::CmpXchg,
        6 => AtomicOp::LoadAcquire,
        7 => AtomicOp::StoreRelease,
        _ => return None,
    })
}

/// What the verifier proved about a program, for the JIT to use. Indexed by slot (an `lddw`
/// takes two).
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// The memory access at this slot never touches the context (its pointer is never
    /// `PTR_TO_CTX`). Such an access keeps its bounds check, but a failed check can only be a
    /// fault, so it goes straight to the trap instead of calling into Rust and coming back: no
    /// call on the hot path, so nothing around it has to live in the few callee-saved registers,
    /// and fewer blocks to compile. If the hint were wrong, the access would trap where the
    /// interpreter reads the context: a different result, never an unchecked access.
    pub no_ctx: Vec<bool>,
}

/// A compiled program. Owns its code; runs any number of times.
pub struct JitProgram {
    _module: JITModule,
    /// Finishes a run whose budget runs out inside a block (see `Interpreter::finish_budget`).
    interp: bpfsim_vm::Interpreter,
    entry: extern "C" fn(*mut VmCtx) -> u64,
    /// Bytes of code; for reports.
    pub code_size: usize,
    /// Whether a run can write its stack (a store, an atomic or a call): a run that cannot
    /// leaves it clean, and the next run need not zero it.
    may_write: bool,
}

// SAFETY: the module's code is immutable after finalisation and the function pointer refers to
// it; nothing in the module is mutated after `compile` returns.
unsafe impl Send for JitProgram {}
// SAFETY: as above: running the code reads the module only.
unsafe impl Sync for JitProgram {}

impl std::fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JitProgram({} bytes)", self.code_size)
    }
}

struct Shims {
    budget_tail: FuncRef,
    load: FuncRef,
    store: FuncRef,
    atomic: FuncRef,
    call: FuncRef,
    ld_packet: FuncRef,
    clear_frame: FuncRef,
}

/// A fault exit of a proven non-context access, filled after the body.
struct Fault {
    block: Block,
    pc: usize,
    code: TrapCode,
    addr: Value,
    size: u64,
    /// Instructions of the block after the faulting one: their budget is given back.
    unexecuted: u64,
}

struct Gen<'a, 'b> {
    b: FunctionBuilder<'b>,
    regs: [Variable; 11],
    left: Variable,
    depth: Variable,
    vm: Value,
    shims: Shims,
    blocks: Vec<Option<Block>>,
    pcs: &'a [usize],
    /// (pc, code, detail, size) -> one trap exit block with those as parameters.
    trap_block: Block,
    /// Exit with r0 (block parameter).
    exit_block: Block,
    tail_block: Block,
    /// Shared: a shim asked to stop (params: pc, budget to give back).
    stop_block: Block,
    /// Shared: the budget runs out inside a block (params: its pc, the budget left).
    budget_block: Block,
    /// Shared: a helper call stopped the run; the shim left the pc and the exact budget in the
    /// context (a trap inside a callback has the callback's pc).
    helper_stop_block: Block,
    /// [`Hints::no_ctx`].
    no_ctx: &'a [bool],
    faults: Vec<Fault>,
    /// The continuation of each local call site, by site index.
    ret_sites: Vec<Block>,
    /// Instructions of the current block, and the index of the one being translated: a stop
    /// in the middle gives back the budget of those after it.
    block_len: u64,
    block_pos: u64,
}

const I64: Type = types::I64;

fn vm_off(field: usize) -> i32 {
    field as i32
}

impl JitProgram {
    /// Compile `prog`.
    pub fn compile(prog: &Program) -> Result<JitProgram, JitError> {
        Self::compile_with(prog, &Hints::default())
    }

    /// [`Self::compile`] using what the verifier proved ([`Hints`]).
    pub fn compile_with(prog: &Program, hints: &Hints) -> Result<JitProgram, JitError> {
        let insns = prog.insns();
        let pcs: Vec<usize> = prog.iter().map(|(pc, _)| pc).collect();
        for (pc, insn) in prog.iter() {
            match insn {
                Insn::Call(CallTarget::Kfunc { .. }) => {
                    return Err(JitError::Unsupported {
                        pc,
                        what: "a kfunc call",
                    })
                }
                Insn::LdImm64 {
                    imm:
                        Imm64::MapFd(_)
                        | Imm64::MapValue { .. }
                        | Imm64::BtfId { .. }
                        | Imm64::MapIdx(_)
                        | Imm64::MapIdxValue { .. },
                    ..
                } => {
                    return Err(JitError::Unsupported {
                        pc,
                        what: "an unresolved lddw pseudo source",
                    })
                }
                _ => {}
            }
        }
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v).map_err(|e| JitError::Codegen(e.to_string()))
        };
        set(&mut flags, "opt_level", "none")?;
        // Cranelift's IR verifier checks our own generated IR on every compile (a fifth of the
        // compile time); the differential tests exercise the translation instead.
        set(&mut flags, "enable_verifier", "false")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        let isa = cranelift_native::builder()
            .map_err(|e| JitError::Codegen(e.to_string()))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        jb.symbol("bpfsim_load", shims::load as *const u8);
        jb.symbol("bpfsim_store", shims::store as *const u8);
        jb.symbol("bpfsim_atomic", shims::atomic as *const u8);
        jb.symbol("bpfsim_call", shims::call as *const u8);
        jb.symbol("bpfsim_ld_packet", shims::ld_packet as *const u8);
        jb.symbol("bpfsim_clear_frame", shims::clear_frame as *const u8);
        jb.symbol("bpfsim_budget_tail", shims::budget_tail as *const u8);
        let mut module = JITModule::new(jb);
        let ptr = module.target_config().pointer_type();
        let err = |e: cranelift_module::ModuleError| JitError::Codegen(e.to_string());

        let sig_of = |module: &JITModule, params: usize, ret: bool| {
            let mut s = module.make_signature();
            s.params.push(AbiParam::new(ptr));
            for _ in 0..params {
                s.params.push(AbiParam::new(I64));
            }
            if ret {
                s.returns.push(AbiParam::new(I64));
            }
            s
        };
        let declare = |module: &mut JITModule, name: &str, params: usize, ret: bool| {
            let s = sig_of(module, params, ret);
            module
                .declare_function(name, Linkage::Import, &s)
                .map_err(err)
        };
        let f_load = declare(&mut module, "bpfsim_load", 2, true)?;
        let f_store = declare(&mut module, "bpfsim_store", 3, false)?;
        let f_atomic = declare(&mut module, "bpfsim_atomic", 5, true)?;
        let f_call = declare(&mut module, "bpfsim_call", 8, true)?;
        let f_ld = declare(&mut module, "bpfsim_ld_packet", 3, true)?;
        let f_clear = declare(&mut module, "bpfsim_clear_frame", 1, false)?;
        let f_budget = declare(&mut module, "bpfsim_budget_tail", 3, false)?;

        let mut ctx = module.make_context();
        ctx.func.signature = sig_of(&module, 0, true);
        let func_id = module
            .declare_function("bpf_main", Linkage::Local, &ctx.func.signature)
            .map_err(err)?;
        let mut fbc = FunctionBuilderContext::new();
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fbc);
            let shims = Shims {
                budget_tail: module.declare_func_in_func(f_budget, b.func),
                load: module.declare_func_in_func(f_load, b.func),
                store: module.declare_func_in_func(f_store, b.func),
                atomic: module.declare_func_in_func(f_atomic, b.func),
                call: module.declare_func_in_func(f_call, b.func),
                ld_packet: module.declare_func_in_func(f_ld, b.func),
                clear_frame: module.declare_func_in_func(f_clear, b.func),
            };
            let regs: [Variable; 11] = std::array::from_fn(|_| b.declare_var(I64));
            let left = b.declare_var(I64);
            let depth = b.declare_var(I64);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let vm = b.block_params(entry)[0];
            // One block per instruction that starts one.
            let total_slots = prog.slots();
            let mut leaders = vec![false; total_slots + 1];
            leaders[0] = true;
            for (i, insn) in insns.iter().enumerate() {
                let pc = pcs[i];
                let next = pc + insn.slots();
                match insn {
                    Insn::Jmp { off, .. } => {
                        leaders[next] = true;
                        leaders[(next as i64 + *off as i64) as usize] = true;
                    }
                    Insn::Ja { .. } | Insn::Gotol { .. } => {
                        if let Some(off) = insn.jump_offset() {
                            leaders[(next as i64 + off as i64) as usize] = true;
                        }
                        leaders[next] = true;
                    }
                    Insn::Call(CallTarget::Local(off)) => {
                        leaders[next] = true;
                        leaders[(next as i64 + *off as i64) as usize] = true;
                    }
                    Insn::Exit => leaders[next] = true,
                    _ => {}
                }
            }
            let mut blocks = vec![None; total_slots + 1];
            for (pc, l) in leaders.iter().enumerate() {
                if *l && pc < total_slots {
                    blocks[pc] = Some(b.create_block());
                }
            }
            let trap_block = b.create_block();
            for _ in 0..4 {
                b.append_block_param(trap_block, I64);
            }
            let exit_block = b.create_block();
            b.append_block_param(exit_block, I64);
            let tail_block = b.create_block();
            b.append_block_param(tail_block, I64);
            let stop_block = b.create_block();
            b.append_block_param(stop_block, I64);
            b.append_block_param(stop_block, I64);
            let budget_block = b.create_block();
            b.append_block_param(budget_block, I64);
            b.append_block_param(budget_block, I64);
            let helper_stop_block = b.create_block();
            let mut g = Gen {
                b,
                regs,
                left,
                depth,
                vm,
                shims,
                blocks,
                pcs: &pcs,
                trap_block,
                exit_block,
                tail_block,
                stop_block,
                budget_block,
                helper_stop_block,
                no_ctx: &hints.no_ctx,
                faults: Vec::new(),
                ret_sites: Vec::new(),
                block_len: 0,
                block_pos: 0,
            };
            g.prologue();
            let first = g.blocks[0].expect("slot 0 leads");
            g.b.ins().jump(first, &[]);
            g.body(insns)?;
            g.fault_epilogues();
            g.helper_stop_epilogue();
            g.stop_epilogue();
            g.budget_epilogue();
            g.epilogues();
            g.b.seal_all_blocks();
            g.b.finalize();
        }
        module.define_function(func_id, &mut ctx).map_err(err)?;
        let code_size = ctx.compiled_code().map_or(0, |c| c.code_buffer().len());
        module.clear_context(&mut ctx);
        module.finalize_definitions().map_err(err)?;
        let code = module.get_finalized_function(func_id);
        // SAFETY: `code` is the function just defined with signature (pointer) -> i64, which is
        // `extern "C" fn(*mut VmCtx) -> u64` on every target Cranelift supports.
        let entry: extern "C" fn(*mut VmCtx) -> u64 = unsafe { std::mem::transmute(code) };
        Ok(JitProgram {
            _module: module,
            interp: bpfsim_vm::Interpreter::new(prog),
            entry,
            code_size,
            may_write: insns
                .iter()
                .any(|i| matches!(i, Insn::Store { .. } | Insn::Atomic { .. } | Insn::Call(_))),
        })
    }

    /// [`bpfsim_vm::Vm::run_with_memory`] for compiled code: `r1` points at a writable `input`
    /// and `r2` is its length (both 0 when `input` is empty).
    pub fn run_with_memory(
        &self,
        vm: &mut bpfsim_vm::Vm,
        host: &mut dyn Host,
        input: &mut [u8],
    ) -> Outcome {
        let budget = vm.budget;
        let mut mem = vm.memory();
        let (r1, r2) = if input.is_empty() {
            (0, 0)
        } else {
            let len = input.len() as u64;
            match mem.map_mut(input) {
                Ok(a) => (a, len),
                Err(_) => {
                    let t = mem.into_scratch();
                    vm.recycle(t);
                    return Outcome {
                        result: Err(Trap::new(TrapCode::MemoryRead, 0, 0)),
                        insns: 0,
                        tail_call: None,
                    };
                }
            }
        };
        let out = self.run(&mut mem, host, [r1, r2, 0, 0, 0], budget);
        let t = mem.into_scratch();
        vm.recycle(t);
        out
    }

    /// Run from slot 0 with `r1..r5 = args`, as [`bpfsim_vm::Interpreter::run`] does.
    pub fn run(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        mem.enter_main(self.may_write);
        // The generated code counts the budget as a signed 64-bit number.
        let budget = budget.min(i64::MAX as u64);
        let mut host_ref = HostRef { host };
        let (table, n) = mem.region_table();
        let mut vm = VmCtx {
            regions: table,
            nregions: n as u64,
            primary_base: 0,
            primary_lt: [0; 8],
            left: budget,
            r0: 0,
            args,
            status: 0,
            status_value: 0,
            trap_code: 0,
            trap_pc: 0,
            trap_detail: 0,
            trap_size: 0,
            frames: std::mem::MaybeUninit::uninit(),
            mem: (mem as *mut MemoryMap<'_>).cast(),
            host: (&mut host_ref as *mut HostRef<'_>).cast(),
            regs: std::mem::MaybeUninit::uninit(),
            interp: &self.interp,
            budget,
            left_at_block: 0,
        };
        vm.set_primary();
        let status = (self.entry)(&mut vm);
        let insns = budget - vm.left;
        match status {
            shims::EXIT => Outcome {
                result: Ok(vm.r0),
                insns,
                tail_call: None,
            },
            shims::TAIL_CALL => Outcome {
                result: Ok(0),
                insns,
                tail_call: Some(vm.status_value as u32),
            },
            _ => {
                let code = TrapCode::from_u8(vm.trap_code as u8).unwrap_or(TrapCode::Unsupported);
                Outcome {
                    result: Err(Trap {
                        code,
                        pc: vm.trap_pc as usize,
                        detail: vm.trap_detail,
                        size: vm.trap_size as u8,
                    }),
                    insns,
                    tail_call: None,
                }
            }
        }
    }
}

impl bpfsim_vm::Executable for JitProgram {
    fn execute(
        &self,
        mem: &mut MemoryMap<'_>,
        host: &mut dyn Host,
        args: [u64; 5],
        budget: u64,
    ) -> Outcome {
        self.run(mem, host, args, budget)
    }
}

impl Gen<'_, '_> {
    fn iconst(&mut self, v: u64) -> Value {
        self.b.ins().iconst(I64, v as i64)
    }

    fn reg(&mut self, r: Reg) -> Value {
        self.b.use_var(self.regs[r.index()])
    }

    fn set(&mut self, r: Reg, v: Value) {
        self.b.def_var(self.regs[r.index()], v);
    }

    fn vm_load(&mut self, off: usize) -> Value {
        self.b
            .ins()
            .load(I64, MemFlags::trusted(), self.vm, vm_off(off))
    }

    fn vm_store(&mut self, off: usize, v: Value) {
        self.b
            .ins()
            .store(MemFlags::trusted(), v, self.vm, vm_off(off));
    }

    fn prologue(&mut self) {
        for r in 0..11 {
            let z = self.iconst(0);
            self.b.def_var(self.regs[r], z);
        }
        for i in 0..5 {
            let a = self.vm_load(offset_of!(VmCtx, args) + 8 * i);
            self.b.def_var(self.regs[i + 1], a);
        }
        let fp = self.iconst(((FIRST_FRAME_REGION) << REGION_SHIFT) | FRAME_SIZE as u64);
        self.b.def_var(self.regs[10], fp);
        let left = self.vm_load(offset_of!(VmCtx, left));
        self.b.def_var(self.left, left);
        let z = self.iconst(0);
        self.b.def_var(self.depth, z);
    }

    /// Give back the budget of the block's instructions after the current one: the run stops
    /// here, and the block was counted whole when it was entered.
    fn refund(&mut self) {
        let unexecuted = self.block_len - self.block_pos - 1;
        if unexecuted > 0 {
            let left = self.b.use_var(self.left);
            let back = self.b.ins().iadd_imm(left, unexecuted as i64);
            self.b.def_var(self.left, back);
        }
    }

    /// Jump to the trap exit with these values.
    fn trap(&mut self, pc: usize, code: TrapCode, detail: Value, size: u64) {
        self.refund();
        let pcv = self.iconst(pc as u64);
        let c = self.iconst(code as u64);
        let s = self.iconst(size);
        self.b.ins().jump(
            self.trap_block,
            &[pcv.into(), c.into(), detail.into(), s.into()],
        );
    }

    /// A fresh block to continue in after a conditional exit.
    fn cont(&mut self) -> Block {
        self.b.create_block()
    }

    /// Entering a block of `len` instructions at `pc`: count them all, or, when the budget runs
    /// out inside the block, hand its start to the interpreter, which stops exactly where it
    /// would have (`budget_tail`).
    fn block_entry(&mut self, pc: usize, len: u64) {
        let left = self.b.use_var(self.left);
        let after = self.b.ins().iadd_imm(left, -(len as i64));
        let short = self.b.ins().icmp_imm(IntCC::SignedLessThan, after, 0);
        let ok = self.cont();
        // The pc is materialised on the cold path only: as an argument of the branch it would
        // cost a move on every entry of the block (every loop iteration).
        let cold = self.b.create_block();
        self.b.set_cold_block(cold);
        self.b.ins().brif(short, cold, &[], ok, &[]);
        self.b.switch_to_block(cold);
        let pcv = self.iconst(pc as u64);
        self.b
            .ins()
            .jump(self.budget_block, &[pcv.into(), left.into()]);
        self.b.switch_to_block(ok);
        self.b.def_var(self.left, after);
    }

    /// Host pointer for `size` bytes at `addr`, or a jump to `slow` (with nothing).
    /// The host address of `size` bytes at guest `addr` when the region table maps them, else a
    /// jump to `slow`. One branch: an index past the table is replaced by 0, the unmapped null
    /// region whose limits are 0, so it fails the limit check like any out-of-bounds access.
    fn translate(&mut self, addr: Value, size: u64, write: bool, slow: Block) -> Value {
        // The primary region first (the packet, or the memory of a raw run): its offset is
        // `addr` less the region's tag, in range exactly when below the per-size bound, so one
        // compare covers both the region and the limit. Everything else walks the table.
        let general = self.b.create_block();
        let join = self.b.create_block();
        self.b.append_block_param(join, I64);
        let t = self
            .b
            .ins()
            .iadd_imm(addr, -((shims::PRIMARY_REGION as i64) << REGION_SHIFT));
        let idx = size.trailing_zeros() as usize + if write { 4 } else { 0 };
        let lt = self.vm_load(offset_of!(VmCtx, primary_lt) + 8 * idx);
        let inside = self.b.ins().icmp(IntCC::UnsignedLessThan, t, lt);
        let fast = self.cont();
        self.b.ins().brif(inside, fast, &[], general, &[]);
        self.b.switch_to_block(fast);
        let base = self.vm_load(offset_of!(VmCtx, primary_base));
        let p = self.b.ins().iadd(base, t);
        self.b.ins().jump(join, &[p.into()]);
        self.b.switch_to_block(general);
        let p = self.translate_table(addr, size, write, slow);
        self.b.ins().jump(join, &[p.into()]);
        self.b.switch_to_block(join);
        self.b.block_params(join)[0]
    }

    fn translate_table(&mut self, addr: Value, size: u64, write: bool, slow: Block) -> Value {
        // The table and its length are read from the context at each access rather than kept
        // in variables: two registers fewer across the whole function (fewer spills in loops),
        // for loads that hit L1 and that x86 folds into the compare.
        let region = self.b.ins().ushr_imm(addr, REGION_SHIFT as i64);
        let n = self.vm_load(offset_of!(VmCtx, nregions));
        let inside = self.b.ins().icmp(IntCC::UnsignedLessThan, region, n);
        let zero = self.iconst(0);
        let index = self.b.ins().select(inside, region, zero);
        let table = self.vm_load(offset_of!(VmCtx, regions));
        let row = self.b.ins().imul_imm(index, 24);
        let entry = self.b.ins().iadd(table, row);
        let limit = self
            .b
            .ins()
            .load(I64, MemFlags::trusted(), entry, if write { 16 } else { 8 });
        // The offset is the low 32 bits: a 32-bit move zero-extends, with no mask constant.
        let low = self.b.ins().ireduce(types::I32, addr);
        let off = self.b.ins().uextend(I64, low);
        let end = self.b.ins().iadd_imm(off, size as i64);
        let fits = self
            .b
            .ins()
            .icmp(IntCC::UnsignedLessThanOrEqual, end, limit);
        let ok = self.cont();
        self.b.ins().brif(fits, ok, &[], slow, &[]);
        self.b.switch_to_block(ok);
        let base = self.b.ins().load(I64, MemFlags::trusted(), entry, 0);
        self.b.ins().iadd(base, off)
    }

    fn mem_ty(size: Size) -> Type {
        match size {
            Size::B => types::I8,
            Size::H => types::I16,
            Size::W => types::I32,
            Size::DW => I64,
        }
    }

    /// After a shim call: go on if it succeeded, else trap (with the shim's trap) at `pc`.
    fn check_status(&mut self, pc: usize) {
        let ok = self.cont();
        self.status_branch(pc, ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// After a shim call: on failure to the shared stop (for `pc`), else to `ok` with `args`.
    /// One branch straight to the stop block: no block of its own per call site.
    fn status_branch(&mut self, pc: usize, ok: Block, args: &[Value]) {
        let st = self.vm_load(offset_of!(VmCtx, status));
        let pcv = self.iconst(pc as u64);
        let unexec = self.iconst(self.block_len - self.block_pos - 1);
        let args: Vec<_> = args.iter().map(|&v| v.into()).collect();
        self.b
            .ins()
            .brif(st, self.stop_block, &[pcv.into(), unexec.into()], ok, &args);
    }

    /// The shared stop: give back the unexecuted budget, then exit with a value, tail call, or
    /// trap with the shim's code at the given pc.
    fn stop_epilogue(&mut self) {
        self.b.switch_to_block(self.stop_block);
        let p = self.b.block_params(self.stop_block).to_vec();
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
        self.b.switch_to_block(exit);
        let v = self.vm_load(offset_of!(VmCtx, status_value));
        self.b.ins().jump(self.exit_block, &[v.into()]);
        self.b.switch_to_block(not_exit);
        let is_tail = self
            .b
            .ins()
            .icmp_imm(IntCC::Equal, st, shims::STOP_TAIL as i64);
        let tail = self.b.create_block();
        let trap = self.b.create_block();
        self.b.ins().brif(is_tail, tail, &[], trap, &[]);
        self.b.switch_to_block(tail);
        let t = self.vm_load(offset_of!(VmCtx, status_value));
        self.b.ins().jump(self.tail_block, &[t.into()]);
        self.b.switch_to_block(trap);
        let code = self.vm_load(offset_of!(VmCtx, trap_code));
        let detail = self.vm_load(offset_of!(VmCtx, trap_detail));
        let size = self.vm_load(offset_of!(VmCtx, trap_size));
        self.b.ins().jump(
            self.trap_block,
            &[p[0].into(), code.into(), detail.into(), size.into()],
        );
    }

    /// The shared budget tail: the interpreter finishes the partial block at `pc`.
    fn budget_epilogue(&mut self) {
        self.b.switch_to_block(self.budget_block);
        let p = self.b.block_params(self.budget_block).to_vec();
        self.vm_store(offset_of!(VmCtx, left_at_block), p[1]);
        for r in 0..11 {
            let v = self.b.use_var(self.regs[r]);
            self.vm_store(offset_of!(VmCtx, regs) + 8 * r, v);
        }
        let depth = self.b.use_var(self.depth);
        self.b
            .ins()
            .call(self.shims.budget_tail, &[self.vm, p[0], p[1], depth]);
        let final_left = self.vm_load(offset_of!(VmCtx, left));
        self.b.def_var(self.left, final_left);
        let tpc = self.vm_load(offset_of!(VmCtx, trap_pc));
        let zero = self.iconst(0);
        self.b
            .ins()
            .jump(self.stop_block, &[tpc.into(), zero.into()]);
    }

    /// A proven non-context access: a failed check is the fault, on a cold path that ends the
    /// run. The block is filled at the end ([`Self::fault_epilogues`]): the builder must finish
    /// the current block first.
    fn fault_path(&mut self, pc: usize, addr: Value, size: Size, write: bool) -> Block {
        let fault = self.b.create_block();
        self.b.set_cold_block(fault);
        let code = if write {
            TrapCode::MemoryWrite
        } else {
            TrapCode::MemoryRead
        };
        let unexecuted = self.block_len - self.block_pos - 1;
        self.faults.push(Fault {
            block: fault,
            pc,
            code,
            addr,
            size: size.bytes() as u64,
            unexecuted,
        });
        fault
    }

    fn fault_epilogues(&mut self) {
        for f in std::mem::take(&mut self.faults) {
            self.b.switch_to_block(f.block);
            if f.unexecuted > 0 {
                let left = self.b.use_var(self.left);
                let back = self.b.ins().iadd_imm(left, f.unexecuted as i64);
                self.b.def_var(self.left, back);
            }
            let pcv = self.iconst(f.pc as u64);
            let c = self.iconst(f.code as u64);
            let sz = self.iconst(f.size);
            self.b.ins().jump(
                self.trap_block,
                &[pcv.into(), c.into(), f.addr.into(), sz.into()],
            );
        }
    }

    fn load(&mut self, pc: usize, addr: Value, size: Size) -> Value {
        let ty = Self::mem_ty(size);
        if self.no_ctx.get(pc).copied().unwrap_or(false) {
            let fault = self.fault_path(pc, addr, size, false);
            let p = self.translate(addr, size.bytes() as u64, false, fault);
            let raw = self.b.ins().load(ty, MemFlags::trusted(), p, 0);
            return if ty == I64 {
                raw
            } else {
                self.b.ins().uextend(I64, raw)
            };
        }
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let p = self.translate(addr, size.bytes() as u64, false, slow);
        let raw = self.b.ins().load(ty, MemFlags::trusted(), p, 0);
        let v = if ty == I64 {
            raw
        } else {
            self.b.ins().uextend(I64, raw)
        };
        self.b.ins().jump(done, &[v.into()]);
        self.b.switch_to_block(slow);
        let sz = self.iconst(size.bytes() as u64);
        let call = self.b.ins().call(self.shims.load, &[self.vm, addr, sz]);
        let v = self.b.inst_results(call)[0];
        self.status_branch(pc, done, &[v]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    fn store(&mut self, pc: usize, addr: Value, size: Size, value: Value) {
        if self.no_ctx.get(pc).copied().unwrap_or(false) {
            let fault = self.fault_path(pc, addr, size, true);
            let p = self.translate(addr, size.bytes() as u64, true, fault);
            let ty = Self::mem_ty(size);
            let v = if ty == I64 {
                value
            } else {
                self.b.ins().ireduce(ty, value)
            };
            self.b.ins().store(MemFlags::trusted(), v, p, 0);
            return;
        }
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let done = self.b.create_block();
        let p = self.translate(addr, size.bytes() as u64, true, slow);
        let ty = Self::mem_ty(size);
        let v = if ty == I64 {
            value
        } else {
            self.b.ins().ireduce(ty, value)
        };
        self.b.ins().store(MemFlags::trusted(), v, p, 0);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(slow);
        let sz = self.iconst(size.bytes() as u64);
        self.b
            .ins()
            .call(self.shims.store, &[self.vm, addr, sz, value]);
        self.status_branch(pc, done, &[]);
        self.b.switch_to_block(done);
    }

    fn epilogues(&mut self) {
        // Trap: record where and why, and the budget left.
        self.b.switch_to_block(self.trap_block);
        let p = self.b.block_params(self.trap_block).to_vec();
        self.vm_store(offset_of!(VmCtx, trap_pc), p[0]);
        self.vm_store(offset_of!(VmCtx, trap_code), p[1]);
        self.vm_store(offset_of!(VmCtx, trap_detail), p[2]);
        self.vm_store(offset_of!(VmCtx, trap_size), p[3]);
        let left = self.b.use_var(self.left);
        self.vm_store(offset_of!(VmCtx, left), left);
        let one = self.iconst(shims::TRAP);
        self.b.ins().return_(&[one]);

        self.b.switch_to_block(self.exit_block);
        let r0 = self.b.block_params(self.exit_block)[0];
        self.vm_store(offset_of!(VmCtx, r0), r0);
        let left = self.b.use_var(self.left);
        self.vm_store(offset_of!(VmCtx, left), left);
        let z = self.iconst(shims::EXIT);
        self.b.ins().return_(&[z]);

        self.b.switch_to_block(self.tail_block);
        let t = self.b.block_params(self.tail_block)[0];
        self.vm_store(offset_of!(VmCtx, status_value), t);
        let left = self.b.use_var(self.left);
        self.vm_store(offset_of!(VmCtx, left), left);
        let two = self.iconst(shims::TAIL_CALL);
        self.b.ins().return_(&[two]);
    }

    fn block_at(&self, pc: usize) -> Block {
        self.blocks[pc].expect("jump targets are leaders")
    }

    fn body(&mut self, insns: &[Insn]) -> Result<(), JitError> {
        // Return sites of local calls, numbered in order.
        let mut sites = Vec::new();
        for (i, insn) in insns.iter().enumerate() {
            if let Insn::Call(CallTarget::Local(_)) = insn {
                sites.push(self.pcs[i] + 1);
            }
        }
        self.ret_sites = sites.iter().map(|&pc| self.block_at(pc)).collect();
        let mut open = false;
        for (i, insn) in insns.iter().enumerate() {
            let pc = self.pcs[i];
            if let Some(blk) = self.blocks[pc] {
                if open {
                    self.b.ins().jump(blk, &[]);
                }
                self.b.switch_to_block(blk);
                open = true;
                // The block runs to the next leader.
                let len = (i + 1..insns.len())
                    .find(|&j| self.blocks[self.pcs[j]].is_some())
                    .unwrap_or(insns.len())
                    - i;
                self.block_len = len as u64;
                self.block_pos = 0;
                self.block_entry(pc, self.block_len);
            } else {
                self.block_pos += 1;
            }
            if !open {
                continue;
            }
            let next = pc + insn.slots();
            open = self.insn(pc, next, insn, &sites)?;
        }
        if open {
            // Falling off the end is refused by Program::new; close the block anyway.
            let d = self.iconst(0);
            self.trap(
                self.pcs.last().copied().unwrap_or(0),
                TrapCode::Unsupported,
                d,
                0,
            );
        }
        Ok(())
    }

    fn alu(&mut self, width: Width, op: AluOp, dst: Reg, src: Source) {
        let w32 = width == Width::W32;
        let d0 = self.reg(dst);
        let s0 = match src {
            Source::Reg(r) => self.reg(r),
            Source::Imm(i) => self.iconst(i as i64 as u64),
        };
        let (a, bv, ty) = if w32 {
            (
                self.b.ins().ireduce(types::I32, d0),
                self.b.ins().ireduce(types::I32, s0),
                types::I32,
            )
        } else {
            (d0, s0, I64)
        };
        let r = match op {
            AluOp::Add => self.b.ins().iadd(a, bv),
            AluOp::Sub => self.b.ins().isub(a, bv),
            AluOp::Mul => self.b.ins().imul(a, bv),
            AluOp::Or => self.b.ins().bor(a, bv),
            AluOp::And => self.b.ins().band(a, bv),
            AluOp::Xor => self.b.ins().bxor(a, bv),
            AluOp::Lsh => self.b.ins().ishl(a, bv),
            AluOp::Rsh => self.b.ins().ushr(a, bv),
            AluOp::Arsh => self.b.ins().sshr(a, bv),
            AluOp::Mov => bv,
            AluOp::Div | AluOp::Mod | AluOp::SDiv | AluOp::SMod => self.divmod(op, a, bv, ty),
        };
        let r = if w32 { self.b.ins().uextend(I64, r) } else { r };
        self.set(dst, r);
    }

    /// Division and modulo with the kernel's rules, never a native trap: x/0 = 0, x%0 = x,
    /// INT_MIN/-1 = INT_MIN, INT_MIN%-1 = 0.
    fn divmod(&mut self, op: AluOp, a: Value, b: Value, ty: Type) -> Value {
        let zero = self.b.ins().icmp_imm(IntCC::Equal, b, 0);
        let one = self.b.ins().iconst(ty, 1);
        match op {
            AluOp::Div | AluOp::Mod => {
                let safe = self.b.ins().select(zero, one, b);
                let q = if op == AluOp::Div {
                    self.b.ins().udiv(a, safe)
                } else {
                    self.b.ins().urem(a, safe)
                };
                let z = self.b.ins().iconst(ty, 0);
                let dflt = if op == AluOp::Div { z } else { a };
                self.b.ins().select(zero, dflt, q)
            }
            _ => {
                let minus1 = self.b.ins().icmp_imm(IntCC::Equal, b, -1);
                let bad = self.b.ins().bor(zero, minus1);
                let safe = self.b.ins().select(bad, one, b);
                let q = if op == AluOp::SDiv {
                    self.b.ins().sdiv(a, safe)
                } else {
                    self.b.ins().srem(a, safe)
                };
                let z = self.b.ins().iconst(ty, 0);
                let neg = self.b.ins().ineg(a);
                let (on_zero, on_minus1) = if op == AluOp::SDiv { (z, neg) } else { (a, z) };
                let r = self.b.ins().select(minus1, on_minus1, q);
                self.b.ins().select(zero, on_zero, r)
            }
        }
    }

    fn cond(&mut self, width: Width, cond: Cond, dst: Reg, src: Source) -> Value {
        let d0 = self.reg(dst);
        let s0 = match src {
            Source::Reg(r) => self.reg(r),
            Source::Imm(i) => self.iconst(i as i64 as u64),
        };
        let (a, b) = if width == Width::W32 {
            (
                self.b.ins().ireduce(types::I32, d0),
                self.b.ins().ireduce(types::I32, s0),
            )
        } else {
            (d0, s0)
        };
        let cc = match cond {
            Cond::Eq => IntCC::Equal,
            Cond::Ne => IntCC::NotEqual,
            Cond::Gt => IntCC::UnsignedGreaterThan,
            Cond::Ge => IntCC::UnsignedGreaterThanOrEqual,
            Cond::Lt => IntCC::UnsignedLessThan,
            Cond::Le => IntCC::UnsignedLessThanOrEqual,
            Cond::Sgt => IntCC::SignedGreaterThan,
            Cond::Sge => IntCC::SignedGreaterThanOrEqual,
            Cond::Slt => IntCC::SignedLessThan,
            Cond::Sle => IntCC::SignedLessThanOrEqual,
            Cond::Set => {
                let x = self.b.ins().band(a, b);
                return self.b.ins().icmp_imm(IntCC::NotEqual, x, 0);
            }
        };
        self.b.ins().icmp(cc, a, b)
    }

    /// One instruction; false when it ends its block.
    fn insn(
        &mut self,
        pc: usize,
        next: usize,
        insn: &Insn,
        sites: &[usize],
    ) -> Result<bool, JitError> {
        match *insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => self.alu(width, op, dst, src),
            Insn::Neg { width, dst } => {
                let d = self.reg(dst);
                let r = if width == Width::W32 {
                    let x = self.b.ins().ireduce(types::I32, d);
                    let n = self.b.ins().ineg(x);
                    self.b.ins().uextend(I64, n)
                } else {
                    self.b.ins().ineg(d)
                };
                self.set(dst, r);
            }
            Insn::MovSx {
                width,
                dst,
                src,
                from,
            } => {
                let s = self.reg(src);
                let narrow = self.b.ins().ireduce(Self::mem_ty(from), s);
                let r = if width == Width::W32 {
                    let x = self.b.ins().sextend(types::I32, narrow);
                    self.b.ins().uextend(I64, x)
                } else {
                    self.b.ins().sextend(I64, narrow)
                };
                self.set(dst, r);
            }
            Insn::Endian { dst, order, bits } => {
                let d = self.reg(dst);
                let ty = match bits {
                    16 => types::I16,
                    32 => types::I32,
                    _ => I64,
                };
                let x = if ty == I64 {
                    d
                } else {
                    self.b.ins().ireduce(ty, d)
                };
                let swap = matches!(order, Endian::Be | Endian::Swap);
                let y = if swap { self.b.ins().bswap(x) } else { x };
                let r = if ty == I64 {
                    y
                } else {
                    self.b.ins().uextend(I64, y)
                };
                self.set(dst, r);
            }
            Insn::LdImm64 { dst, imm } => {
                let v = match imm {
                    Imm64::Imm(v) => v,
                    // A callback's address, as the interpreter forms it: a code pointer that no
                    // memory access can use, and that the callback helpers decode.
                    Imm64::Func(off) => {
                        bpfsim_vm::interp::FUNC_TAG | (pc as i64 + 1 + off as i64) as u32 as u64
                    }
                    _ => {
                        return Err(JitError::Unsupported {
                            pc,
                            what: "an unresolved lddw pseudo source",
                        })
                    }
                };
                let c = self.iconst(v);
                self.set(dst, c);
            }
            Insn::Load {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                let s = self.reg(src);
                let addr = self.b.ins().iadd_imm(s, off as i64);
                let v = self.load(pc, addr, size);
                let v = if signed && size != Size::DW {
                    let n = self.b.ins().ireduce(Self::mem_ty(size), v);
                    self.b.ins().sextend(I64, n)
                } else {
                    v
                };
                self.set(dst, v);
            }
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
                let d = self.reg(dst);
                let addr = self.b.ins().iadd_imm(d, off as i64);
                let v = match src {
                    Source::Reg(r) => self.reg(r),
                    Source::Imm(i) => self.iconst(i as i64 as u64),
                };
                self.store(pc, addr, size, v);
            }
            Insn::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => {
                let d = self.reg(dst);
                let addr = self.b.ins().iadd_imm(d, off as i64);
                let s = self.reg(src);
                let r0 = self.reg(Reg::R0);
                let code = self.iconst(atomic_code(op));
                let sz = self.iconst(size.bytes() as u64);
                let call = self
                    .b
                    .ins()
                    .call(self.shims.atomic, &[self.vm, code, addr, sz, s, r0]);
                let old = self.b.inst_results(call)[0];
                self.check_status(pc);
                match op {
                    AtomicOp::CmpXchg => self.set(Reg::R0, old),
                    AtomicOp::LoadAcquire => self.set(src, old),
                    AtomicOp::Xchg
                    | AtomicOp::Add { fetch: true }
                    | AtomicOp::Or { fetch: true }
                    | AtomicOp::And { fetch: true }
                    | AtomicOp::Xor { fetch: true } => self.set(src, old),
                    _ => {}
                }
            }
            Insn::LoadPacket { mode, size, imm } => {
                let (off, m) = match mode {
                    PacketMode::Abs => (self.iconst(imm as i64 as u64), 0x20),
                    PacketMode::Ind(r) => {
                        let v = self.reg(r);
                        let lo = self.b.ins().ireduce(types::I32, v);
                        let base = self.b.ins().sextend(I64, lo);
                        (self.b.ins().iadd_imm(base, imm as i64), 0x40)
                    }
                };
                let sz = self.iconst(size.bytes() as u64);
                let mode = self.iconst(m);
                let call = self
                    .b
                    .ins()
                    .call(self.shims.ld_packet, &[self.vm, off, sz, mode]);
                let v = self.b.inst_results(call)[0];
                self.check_status(pc);
                self.set(Reg::R0, v);
            }
            Insn::Ja { .. } | Insn::Gotol { .. } => {
                let off = insn.jump_offset().unwrap_or(0);
                let t = self.block_at((next as i64 + off as i64) as usize);
                self.b.ins().jump(t, &[]);
                return Ok(false);
            }
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let c = self.cond(width, cond, dst, src);
                let t = self.block_at((next as i64 + off as i64) as usize);
                let f = self.block_at(next);
                self.b.ins().brif(c, t, &[], f, &[]);
                return Ok(false);
            }
            Insn::Call(CallTarget::Helper(id)) => {
                let idv = self.iconst(id as i64 as u64);
                self.helper(pc, idv);
            }
            Insn::Callx { reg } => {
                let id = self.reg(reg);
                self.helper(pc, id);
            }
            Insn::Call(CallTarget::Local(off)) => {
                let site = sites.iter().position(|&s| s == next).expect("a call site");
                let depth = self.b.use_var(self.depth);
                let full = self
                    .b
                    .ins()
                    .icmp_imm(IntCC::SignedGreaterThanOrEqual, depth, 7);
                let deep = self.b.create_block();
                let ok = self.cont();
                self.b.ins().brif(full, deep, &[], ok, &[]);
                self.b.switch_to_block(deep);
                let d = self.iconst(8);
                self.trap(pc, TrapCode::CallDepth, d, 0);
                self.b.switch_to_block(ok);
                // Save the caller's frame in vm.frames[depth].
                let fsz = std::mem::size_of::<FrameSave>() as i64;
                let rowoff = self.b.ins().imul_imm(depth, fsz);
                let frames = self
                    .b
                    .ins()
                    .iadd_imm(self.vm, offset_of!(VmCtx, frames) as i64);
                let row = self.b.ins().iadd(frames, rowoff);
                let sitev = self.iconst(site as u64);
                self.b.ins().store(MemFlags::trusted(), sitev, row, 0);
                for (k, r) in (6..10).enumerate() {
                    let v = self.b.use_var(self.regs[r]);
                    self.b
                        .ins()
                        .store(MemFlags::trusted(), v, row, 8 + 8 * k as i32);
                }
                let fp = self.b.use_var(self.regs[10]);
                self.b.ins().store(MemFlags::trusted(), fp, row, 40);
                let nd = self.b.ins().iadd_imm(depth, 1);
                self.b.def_var(self.depth, nd);
                self.b.ins().call(self.shims.clear_frame, &[self.vm, nd]);
                // r10 = frame_pointer(depth): ((FIRST + depth) << 32) | FRAME_SIZE.
                let region = self.b.ins().iadd_imm(nd, FIRST_FRAME_REGION as i64);
                let hi = self.b.ins().ishl_imm(region, REGION_SHIFT as i64);
                let newfp = self.b.ins().bor_imm(hi, FRAME_SIZE as i64);
                self.b.def_var(self.regs[10], newfp);
                let t = self.block_at((next as i64 + off as i64) as usize);
                self.b.ins().jump(t, &[]);
                return Ok(false);
            }
            Insn::Call(CallTarget::Kfunc { .. }) => {
                return Err(JitError::Unsupported {
                    pc,
                    what: "a kfunc call",
                })
            }
            Insn::Exit => {
                let depth = self.b.use_var(self.depth);
                let main = self.b.ins().icmp_imm(IntCC::Equal, depth, 0);
                let ret = self.b.create_block();
                let r0 = self.reg(Reg::R0);
                self.b
                    .ins()
                    .brif(main, self.exit_block, &[r0.into()], ret, &[]);
                self.b.switch_to_block(ret);
                let nd = self.b.ins().iadd_imm(depth, -1);
                self.b.def_var(self.depth, nd);
                let fsz = std::mem::size_of::<FrameSave>() as i64;
                let rowoff = self.b.ins().imul_imm(nd, fsz);
                let frames = self
                    .b
                    .ins()
                    .iadd_imm(self.vm, offset_of!(VmCtx, frames) as i64);
                let row = self.b.ins().iadd(frames, rowoff);
                for (k, r) in (6..10).enumerate() {
                    let v = self
                        .b
                        .ins()
                        .load(I64, MemFlags::trusted(), row, 8 + 8 * k as i32);
                    self.b.def_var(self.regs[r], v);
                }
                let fp = self.b.ins().load(I64, MemFlags::trusted(), row, 40);
                self.b.def_var(self.regs[10], fp);
                let site = self.b.ins().load(I64, MemFlags::trusted(), row, 0);
                // Back to the call site's continuation.
                let targets = self.ret_sites.clone();
                self.dispatch(site, &targets);
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Jump to `targets[idx]` (a chain of compares: call sites are few).
    fn dispatch(&mut self, idx: Value, targets: &[Block]) {
        for (k, &t) in targets.iter().enumerate() {
            if k + 1 == targets.len() {
                self.b.ins().jump(t, &[]);
                return;
            }
            let hit = self.b.ins().icmp_imm(IntCC::Equal, idx, k as i64);
            let nextb = self.b.create_block();
            self.b.ins().brif(hit, t, &[], nextb, &[]);
            self.b.switch_to_block(nextb);
        }
        // No call site: an exit below the main frame cannot happen; keep the block closed.
        let z = self.iconst(0);
        self.b.ins().jump(self.exit_block, &[z.into()]);
    }

    /// A helper call. The exact budget goes to the context first, because a helper with a
    /// callback (`bpf_loop`, `bpf_for_each_map_elem`, ...) has the interpreter run the callback
    /// with it; the budget comes back from the context after the call, and when what is left
    /// cannot pay for the rest of the block, the interpreter finishes it.
    fn helper(&mut self, pc: usize, id: Value) {
        let unexec = self.block_len - self.block_pos - 1;
        let left = self.b.use_var(self.left);
        let exact = self.b.ins().iadd_imm(left, unexec as i64);
        self.vm_store(offset_of!(VmCtx, left), exact);
        let args: Vec<Value> = (1..=5).map(|r| self.b.use_var(self.regs[r])).collect();
        let pcv = self.iconst(pc as u64);
        let depth = self.b.use_var(self.depth);
        let call = self.b.ins().call(
            self.shims.call,
            &[
                self.vm, id, args[0], args[1], args[2], args[3], args[4], pcv, depth,
            ],
        );
        let v = self.b.inst_results(call)[0];
        let st = self.vm_load(offset_of!(VmCtx, status));
        let ok = self.cont();
        self.b.ins().brif(st, self.helper_stop_block, &[], ok, &[]);
        self.b.switch_to_block(ok);
        self.set(Reg::R0, v);
        let now = self.vm_load(offset_of!(VmCtx, left));
        let after = self.b.ins().iadd_imm(now, -(unexec as i64));
        if unexec > 0 {
            let short = self.b.ins().icmp_imm(IntCC::SignedLessThan, after, 0);
            let cold = self.b.create_block();
            self.b.set_cold_block(cold);
            let go = self.cont();
            self.b.ins().brif(short, cold, &[], go, &[]);
            self.b.switch_to_block(cold);
            let next = self.iconst(pc as u64 + 1);
            self.b
                .ins()
                .jump(self.budget_block, &[next.into(), now.into()]);
            self.b.switch_to_block(go);
        }
        self.b.def_var(self.left, after);
    }

    /// The shared stop after a helper call: the shim left the pc and the exact budget.
    fn helper_stop_epilogue(&mut self) {
        self.b.switch_to_block(self.helper_stop_block);
        let left = self.vm_load(offset_of!(VmCtx, left));
        self.b.def_var(self.left, left);
        let pc = self.vm_load(offset_of!(VmCtx, trap_pc));
        let zero = self.iconst(0);
        self.b
            .ins()
            .jump(self.stop_block, &[pc.into(), zero.into()]);
    }
}
