//! Code generation: one Cranelift function per program. [`build`] lays out a block per CFG
//! leader and the shared exits; each instruction class has its translate function in the module
//! named after it (`alu`, `memory`, `jump`, `call`), [`insn`] dispatches on the instruction, and
//! `exits` / `budget` hold the paths that end a run or hand it to the interpreter.

mod alu;
pub(crate) mod bounds;
mod budget;
mod call;
mod ctx_group;
mod exits;
mod insn;
mod jump;
mod live;
mod memory;
pub(crate) mod rows;
mod shifts;

use std::mem::offset_of;

use bpfsim_vm::isa::{AluOp, CallTarget, Insn, Reg, Source, Width};
use bpfsim_vm::memory::{FIRST_FRAME_REGION, FRAME_SIZE, REGION_SHIFT};
use bpfsim_vm::{Program, TrapCode};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, FuncRef, Function, InstBuilder, MemFlags, Type, Value};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module};

use crate::shims::VmCtx;
use crate::{Hints, JitError};

pub(crate) use call::callback_roots;

/// The shims the generated code calls, as declared in the module.
pub(crate) struct ShimIds {
    pub load: FuncId,
    pub store: FuncId,
    pub atomic: FuncId,
    pub call: FuncId,
    pub map_lookup: FuncId,
    pub map_lookup_key: FuncId,
    pub redirect_map: FuncId,
    pub ld_packet: FuncId,
    pub zero_stack: FuncId,
    pub loop_rest: FuncId,
    pub fetch_slots: FuncId,
    pub xdp_adjust_meta: FuncId,
    pub xdp_adjust_tail: FuncId,
    pub tail_call: FuncId,
}

/// A compiled callback's function, which a `bpf_loop` made from one frame above `depth` may
/// call directly (see `call::translate_loop`).
pub(crate) struct LoopTarget {
    pub slot: usize,
    pub depth: u64,
    pub id: FuncId,
}

struct Shims {
    load: FuncRef,
    store: FuncRef,
    atomic: FuncRef,
    call: FuncRef,
    map_lookup: FuncRef,
    map_lookup_key: FuncRef,
    redirect_map: FuncRef,
    ld_packet: FuncRef,
    zero_stack: FuncRef,
    loop_rest: FuncRef,
    fetch_slots: FuncRef,
    xdp_adjust_meta: FuncRef,
    xdp_adjust_tail: FuncRef,
    tail_call: FuncRef,
}

/// The shared exits ([`Gen::exit`]), each with its parameters.
#[derive(Clone, Copy)]
pub(super) enum Exit {
    /// (pc, code, detail, size): the trap exit.
    Trap,
    /// r0: the run's end.
    Return,
    /// The tail call's target.
    Tail,
    /// A shim asked to stop (pc, budget to give back).
    Stop,
    /// The budget runs out inside a block (its pc, the budget left).
    Budget,
    /// A helper call stopped the run; the shim left the pc and the exact budget in the context
    /// (a trap inside a callback has the callback's pc).
    HelperStop,
}

impl Exit {
    fn params(self) -> usize {
        match self {
            Exit::Trap => 4,
            Exit::Return | Exit::Tail => 1,
            Exit::Stop | Exit::Budget => 2,
            Exit::HelperStop => 0,
        }
    }
}

/// Where a function starts: the main program at slot 0, depth 0, or a callback's entry in the
/// frame a helper gives it (see `call::callback_roots`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Root {
    pub slot: usize,
    pub depth: u64,
}

/// A fault exit of a proven non-context access, filled after the body.
struct Fault {
    block: Block,
    pc: usize,
    code: TrapCode,
    addr: Value,
    size: u64,
    /// Instructions of the block after the faulting one: their budget is given back.
    /// [`Gen::adjust`] at the faulting instruction.
    adjust: i64,
}

pub(crate) struct Gen<'a, 'b> {
    b: FunctionBuilder<'b>,
    regs: [Variable; 11],
    left: Variable,
    depth: Variable,
    /// The host address one past the current frame's stack (its row's base + `FRAME_SIZE`),
    /// for [`Gen::fixed_stack`] accesses; meaningful only when `fp_fixed` and the depths are not
    /// static (`fixed_stack_base` serves then).
    frame_top: Variable,
    /// No instruction writes `r10`: it is always the current frame's pointer, so an access at
    /// `r10 + off` with the access inside the frame needs no check (see `memory.rs`).
    fp_fixed: bool,
    /// When `fp_fixed`: for each register, the constant it holds more than `r10` when known
    /// from the instructions of the current block (`mov rX, r10; add rX, -16`, the way clang
    /// passes a stack pointer to a helper), so that an access through it is a frame access too.
    fp_off: [Option<i64>; 11],
    /// Some instruction may write `r10`.
    writes_fp: bool,
    vm: Value,
    /// The function's entry block (its parameters are the run's context, budget, r1 and r2).
    entry: Block,
    shims: Shims,
    blocks: Vec<Option<Block>>,
    /// Leaders sealed only at the end (see [`Gen::switch`]).
    late: Vec<bool>,
    /// The function loops: a backward jump, or a callback's function (which loops back to its
    /// root for the next call). Only then are the clamp bounds loaded at entry
    /// ([`Gen::clamp_fixed`]): in straight-line code each access loads its bounds where it
    /// is, and the bounds do not take registers from the whole function (`nat_xdp` 7.3-7.5 ->
    /// 6.4 ns a run, `xdp_icmp_echo` 6.2-6.3 -> 5.3-5.5).
    has_loop: bool,
    /// Some instruction of the program calls out (a helper, a local call, `callx`, a legacy
    /// packet load).
    calls: bool,
    /// Leaders that check the budget (see `budget.rs`), and what each slot needs.
    checkpoint: Vec<bool>,
    need: Vec<u64>,
    /// The loop heads checked on their loop's entry edge for all its trips, with what that
    /// check asks (`budget::counted_heads`).
    counted: Vec<Option<u64>>,
    /// Whether the function has more than `budget::MANY_JOINS` joins ([`Gen::flush_as`]).
    many_joins: bool,
    pcs: &'a [usize],
    /// The shared exits, created when first used (a program that cannot reach one does not
    /// pay for compiling it), by [`Exit`].
    exits: [Option<Block>; 6],
    /// [`Hints::no_ctx`].
    no_ctx: &'a [bool],
    /// [`Hints::packet`].
    packet: &'a [bool],
    /// [`Hints::ctx`], and the fields whose values the run keeps and whose cells it stores
    /// into, by slot.
    ctx: &'a [bool],
    ctx_fields: &'a crate::CtxFields,
    /// [`Hints::map_value`], and the maps whose values the run places, by slot
    /// ([`VmCtx::value_base`]).
    map_value: &'a [Option<u32>],
    /// [`crate::Hints::lookup`].
    lookup: &'a [Option<crate::LookupPath>],
    /// [`crate::Hints::frame_bytes`].
    frame_bytes: &'a [(usize, u32)],
    /// [`crate::Hints::stack_at`] by slot, with the instruction's own offset added.
    stack_at: Vec<Option<(u32, i64)>>,
    value_maps: Vec<u32>,
    /// For each value map slot, the bytes from the region's start that the accesses at
    /// constant addresses compiled so far read and write (the function's share of
    /// `JitProgram::value_need`).
    value_need: Vec<[u64; 2]>,
    /// [`Hints::stack`].
    stack: &'a [bool],
    /// For each clamp index (`memory::clamp_index`): whether a proven packet access uses it.
    clamp_used: [bool; 8],
    /// Values that never change in a run, defined in the entry block and used directly instead
    /// of through a variable: the SSA builder would otherwise add each as a parameter of every
    /// block sealed late (loop heads) and remove it again. The clamp bounds (a run's regions
    /// are only ever appended, and a helper that moves the packet moves its pointers inside
    /// the one region mapped for it, so the primary region's row stays as the run found it);
    /// the call depth, the frame's top and `r10` (unless written), in a program without local
    /// calls.
    clamp_fixed: [Option<(Value, Value)>; 8],
    /// [`VmCtx::primary_base`] read at entry, in a function that loops (as `clamp_fixed`).
    primary_fixed: Option<Value>,
    no_local_calls: bool,
    fixed_depth: Option<Value>,
    /// When every subprogram runs at one call depth only (each called from frames of a
    /// single depth, no recursion: what the verifier asks of a program), that depth, by
    /// subprogram: the code then uses constants for the depth, the frame's row and `r10`, with
    /// no depth test at a call.
    static_depth: Option<Vec<u64>>,
    /// The subprogram of the instruction being translated.
    cur_sub: usize,
    /// With static depths, the stack buffer's base ([`VmCtx::stack_base`]), from which every
    /// frame access is a constant offset (no frame-top variable).
    fixed_stack_base: Option<Value>,
    fixed_fp: Option<Value>,
    faults: Vec<Fault>,
    /// The first slot of each subprogram ([`Program::subprograms`]).
    subprogs: &'a [usize],
    /// The registers live on entry to each slot's instruction (`live::live_in`): what a
    /// hand-over to the interpreter carries.
    live: Vec<u16>,
    /// Which subprograms the function contains (its root's and those local calls reach).
    compiled: Vec<bool>,
    /// The root's slot, subprogram and call depth ([`Root`]).
    root: usize,
    root_sub: usize,
    root_depth: u64,
    /// In a callback's function (`root_depth > 0`): the index of the call being made, the
    /// index the calls end before ([`VmCtx::cb_end`]) and the context every `bpf_loop` call
    /// gets in `r2` (the function's fourth parameter): the function makes the calls of a
    /// `bpf_loop` itself, one after another (see `Gen::callback_done`).
    cb_i: Variable,
    cb_end: Option<Value>,
    cb_ctx: Option<Value>,
    /// [`VmCtx::cb_args`]: null for a `bpf_loop`'s calls, else each call's five arguments.
    cb_args: Option<Value>,
    /// The registers some instruction may read ([`regs_read`]): a callback's next call sets
    /// only those.
    read: u16,
    /// For each subprogram, the return sites (slots after the calls) of the local calls to it:
    /// an exit of a subprogram returns to one of its own callers only (jumps never leave a
    /// subprogram), so its dispatch tests those alone, and a subprogram called from one site
    /// returns with a plain jump.
    sub_sites: Vec<Vec<usize>>,
    /// For each subprogram, which of `r6`-`r9` its own instructions write (a mask by index): an
    /// exit restores only those, the others hold the caller's values already (every call
    /// restores what its callee writes).
    sub_writes: Vec<u16>,
    /// Instructions of the current block, and the index of the one being translated: a stop
    /// in the middle gives back the budget of those after it.
    block_len: u64,
    block_pos: u64,
    /// Instructions counted but not yet taken off `left`: the current block's, and those of the
    /// straight-line path that led to it (see `budget.rs`).
    pending: u64,
    /// For each leader with a single predecessor block and no budget check: what that
    /// predecessor left pending when it branched there (-1 when it took the `ja` of a loop's
    /// back edge off with its own count, see `jump.rs`).
    carry: Vec<Option<i64>>,
    /// For each slot: the checkpoint its instruction jumps to when it is a `ja` to one (a
    /// loop's back edge), which a conditional branch to it may take directly (`jump.rs`).
    ja_to: Vec<Option<usize>>,
    /// The slots of `ja` blocks a conditional branch went past (see `ja_to`).
    went_past: Vec<bool>,
    /// The blocks of the leaders a later instruction jumps back to.
    loop_heads: Vec<Block>,
    /// The loops whose shift amounts are loaded into registers on their entry edge
    /// (`shifts::loops`), by head slot; empty where the host has no three-operand shifts.
    shift_loops: Vec<Option<(usize, Vec<u8>)>>,
    /// The amounts loaded for the loops being translated: (loop's last slot, amount, value).
    shift_regs: Vec<(usize, u8, Value)>,
    /// The loops: each back edge's target and the slot it jumps from.
    loops: Vec<(usize, usize)>,
    /// For each slot: the register a load there reads its address from and overwrites
    /// (`ldxh r5, [r5+0]`), see `jump.rs`.
    self_load: Vec<Option<Reg>>,
    /// The leader of the current block, and the registers its instructions have written.
    block_pc: usize,
    block_writes: u16,
    /// For each leader: it has exactly one predecessor block (the budget count may be carried
    /// into it).
    single_pred: Vec<bool>,
    /// Mark the code of each instruction with its slot (Cranelift's source locations), for a
    /// listing ([`crate::CompileOptions::listing`]).
    srclocs: bool,
    /// The compiled callbacks' functions: slot, the depth of their frame, and the function.
    loop_targets: Vec<(usize, u64, FuncRef)>,
    /// For each register, the constant it holds when known from the instructions of the current
    /// block (`mov rX, imm`, `lddw rX, func`): a `bpf_loop` whose arguments are known needs no
    /// test of them.
    consts: [Option<u64>; 11],
    /// The host addresses the JIT's own packet proofs made in the current block, by the
    /// guest address they translate (see `memory::own_proven`).
    own_addrs: Vec<(Block, Value, Value)>,
    /// For each load of a field the proofs start from, its value and its host address.
    own_hosts: Vec<(Value, Value)>,
    /// The rows' host offsets read in the current block, by row (`memory::row_proven`).
    row_offs: Vec<(Block, usize, Value)>,
    /// The groups of context loads, by slot, and the last group whose first load checked:
    /// the register and that load's slot (`ctx_group.rs`).
    ctx_groups: Vec<ctx_group::CtxGroup>,
    ctx_checked: Option<(Reg, usize)>,
    /// The slots of the context loads compiled with no check of their own.
    ctx_unchecked: Vec<usize>,
}

const I64: Type = types::I64;

fn vm_off(field: usize) -> i32 {
    field as i32
}

/// Whether `insn` may write `r10` (which the interpreter allows, and the verifier refuses).
pub(super) fn writes_r10(insn: &Insn) -> bool {
    match *insn {
        Insn::Alu { dst, .. }
        | Insn::Neg { dst, .. }
        | Insn::MovSx { dst, .. }
        | Insn::Endian { dst, .. }
        | Insn::LdImm64 { dst, .. }
        | Insn::Load { dst, .. } => dst.index() == 10,
        Insn::Atomic { src, .. } => src.index() == 10,
        _ => false,
    }
}

/// A mask of the registers `insn` may read, by index; a superset (`mov` counts as reading its
/// destination), so that a register not in the mask of any instruction is never read.
fn regs_read(insn: &Insn) -> u16 {
    let r = |reg: Reg| 1u16 << reg.index();
    let src = |s: &Source| match *s {
        Source::Reg(reg) => r(reg),
        Source::Imm(_) => 0,
    };
    // A call passes r1-r5 (a helper's arguments, a subprogram's registers).
    const ARGS: u16 = 0b11_1110;
    match insn {
        Insn::Alu { dst, src: s, .. } | Insn::Jmp { dst, src: s, .. } => r(*dst) | src(s),
        Insn::Store { dst, src: s, .. } => r(*dst) | src(s),
        Insn::Neg { dst, .. } | Insn::Endian { dst, .. } => r(*dst),
        Insn::MovSx { src, .. } | Insn::Load { src, .. } => r(*src),
        Insn::Atomic { dst, src, .. } => r(*dst) | r(*src) | r(Reg::R0),
        Insn::LdImm64 { .. } | Insn::Ja { .. } | Insn::Gotol { .. } => 0,
        Insn::Exit => r(Reg::R0),
        Insn::Callx { reg } => r(*reg) | ARGS,
        Insn::Call(_) => ARGS,
        // The context (r6) and an index register.
        Insn::LoadPacket { .. } => u16::MAX,
    }
}

/// A mask of the registers `insn` may write, by index (a superset).
fn regs_written(insn: &Insn) -> u16 {
    let r = |reg: Reg| 1u16 << reg.index();
    match insn {
        Insn::Alu { dst, .. }
        | Insn::Neg { dst, .. }
        | Insn::MovSx { dst, .. }
        | Insn::Endian { dst, .. }
        | Insn::LdImm64 { dst, .. }
        | Insn::Load { dst, .. } => r(*dst),
        Insn::Atomic { src, .. } => r(*src) | r(Reg::R0),
        Insn::Store { .. } | Insn::Ja { .. } | Insn::Gotol { .. } | Insn::Jmp { .. } => 0,
        Insn::Exit | Insn::Call(_) | Insn::Callx { .. } | Insn::LoadPacket { .. } => u16::MAX,
    }
}

/// The registers some instruction of `insns` may read, as a mask by index.
pub(crate) fn regs_read_by(insns: &[Insn]) -> u16 {
    insns.iter().fold(0, |m, i| m | regs_read(i))
}

/// [`crate::Hints::stack_at`] for each slot with a load, store or atomic, the instruction's
/// offset added: the access's offset from the frame pointer of the frame it reaches.
fn stack_places(insns: &[Insn], pcs: &[usize], hints: &Hints) -> Vec<Option<(u32, i64)>> {
    let mut at = vec![None; pcs.last().map_or(0, |&p| p + 2)];
    for (i, insn) in insns.iter().enumerate() {
        let off = match *insn {
            Insn::Load { off, .. } | Insn::Store { off, .. } | Insn::Atomic { off, .. } => off,
            _ => continue,
        };
        if let Some(&Some((up, o))) = hints.stack_at.get(pcs[i]) {
            at[pcs[i]] = Some((up, o as i64 + off as i64));
        }
    }
    at
}

/// For each slot, the target of its instruction when that is a `ja` (or `gotol`) to a
/// checkpoint: see [`Gen::ja_to`].
fn jumps_to_checkpoints(
    insns: &[Insn],
    pcs: &[usize],
    checkpoint: &[bool],
    slots: usize,
) -> Vec<Option<usize>> {
    let mut to = vec![None; slots + 1];
    for (i, insn) in insns.iter().enumerate() {
        if !matches!(insn, Insn::Ja { .. } | Insn::Gotol { .. }) {
            continue;
        }
        let Some(off) = insn.jump_offset() else {
            continue;
        };
        let t = pcs[i] as i64 + insn.slots() as i64 + off as i64;
        if t >= 0 && checkpoint.get(t as usize).copied().unwrap_or(false) {
            to[pcs[i]] = Some(t as usize);
        }
    }
    to
}

/// The source location of code generated for no single BPF instruction (the entry, the shared
/// exits), in a listing ([`crate::CompileOptions::listing`]). Not Cranelift's default location:
/// code with that one is what Cranelift adds without a location (constants it splits out of an
/// instruction, the register allocator's moves), placed right before the instruction they serve.
pub(crate) fn no_slot() -> cranelift_codegen::ir::SourceLoc {
    cranelift_codegen::ir::SourceLoc::new(u32::MAX - 1)
}

/// Translate the function of `prog` rooted at `root` into `func`: the root's subprogram and those
/// its local calls reach. Returns what the budget must hold at entry (see `budget::entry_need`).
/// `srclocs`: mark each instruction's code with its slot ([`Gen::srclocs`]).
#[allow(clippy::too_many_arguments)] // one call site, each argument a different thing
pub(crate) fn build(
    module: &mut JITModule,
    func: &mut Function,
    fbc: &mut FunctionBuilderContext,
    ids: &ShimIds,
    prog: &Program,
    pcs: &[usize],
    hints: &Hints,
    ctx_fields: &crate::CtxFields,
    srclocs: bool,
    root: Root,
    targets: &[LoopTarget],
    value_need: &mut [[u64; 2]],
    ctx_unchecked: &mut Vec<usize>,
    counted_loops: &mut Vec<usize>,
) -> Result<u64, JitError> {
    let insns = prog.insns();
    let subprogs = prog.subprograms();
    let root_sub = call::sub_of(subprogs, root.slot);
    let compiled = call::reachable(insns, pcs, subprogs, root_sub);
    let mut b = FunctionBuilder::new(func, fbc);
    let shims = Shims {
        load: module.declare_func_in_func(ids.load, b.func),
        store: module.declare_func_in_func(ids.store, b.func),
        atomic: module.declare_func_in_func(ids.atomic, b.func),
        call: module.declare_func_in_func(ids.call, b.func),
        map_lookup: module.declare_func_in_func(ids.map_lookup, b.func),
        map_lookup_key: module.declare_func_in_func(ids.map_lookup_key, b.func),
        redirect_map: module.declare_func_in_func(ids.redirect_map, b.func),
        ld_packet: module.declare_func_in_func(ids.ld_packet, b.func),
        zero_stack: module.declare_func_in_func(ids.zero_stack, b.func),
        loop_rest: module.declare_func_in_func(ids.loop_rest, b.func),
        fetch_slots: module.declare_func_in_func(ids.fetch_slots, b.func),
        xdp_adjust_meta: module.declare_func_in_func(ids.xdp_adjust_meta, b.func),
        xdp_adjust_tail: module.declare_func_in_func(ids.xdp_adjust_tail, b.func),
        tail_call: module.declare_func_in_func(ids.tail_call, b.func),
    };
    // Only where a `bpf_loop` may call them.
    let loops = insns.iter().any(
        |i| matches!(i, Insn::Call(CallTarget::Helper(id)) if *id as u32 == bpfsim_vm::host::LOOP),
    );
    let loop_targets = if loops {
        targets
            .iter()
            .map(|t| (t.slot, t.depth, module.declare_func_in_func(t.id, b.func)))
            .collect()
    } else {
        Vec::new()
    };
    let regs: [Variable; 11] = std::array::from_fn(|_| b.declare_var(I64));
    let left = b.declare_var(I64);
    let depth = b.declare_var(I64);
    let cb_i = b.declare_var(I64);
    let frame_top = b.declare_var(I64);
    let mut clamp_used = [false; 8];
    for (i, insn) in insns.iter().enumerate() {
        // An access the JIT's own proofs take (`memory::own_proven`) needs no clamp: its bounds
        // would only be loaded at entry for nothing (Cranelift lowers every load).
        let own = ctx_fields.proofs.proven.get(pcs[i]).copied().unwrap_or(0) & bounds::PROVEN;
        if !hints.packet.get(pcs[i]).copied().unwrap_or(false) || own != 0 {
            continue;
        }
        let (size, write) = match *insn {
            Insn::Load { size, .. } => (size, false),
            Insn::Store { size, .. } => (size, true),
            _ => continue,
        };
        let idx = memory::clamp_index(size, write);
        clamp_used[idx] = true;
    }
    // Only where some access uses it: the frame's top costs a few instructions per run and
    // per call.
    // (Directly, or through a register that holds `r10` plus a constant, `fp_off`.)
    let fp_fixed = !insns.iter().any(writes_r10) && regs_read_by(insns) & (1 << 10) != 0;
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let vm = b.block_params(entry)[0];
    // One block per instruction that starts one.
    let total_slots = prog.slots();
    let mut leaders = vec![false; total_slots + 1];
    // Each subprogram's first slot: the one before it may not be in the function.
    for (s, &first) in subprogs.iter().enumerate() {
        leaders[first] |= compiled[s];
    }
    // Leaders with a predecessor placed after them (a loop's head, a subprogram's entry, a
    // call's return site): sealed only at the end.
    let mut late = vec![false; total_slots + 1];
    // A callback's function loops back to its root for the next call.
    late[root.slot] = root.depth > 0;
    let mut has_loop = root.depth > 0;
    for (i, insn) in insns.iter().enumerate() {
        let pc = pcs[i];
        if !compiled[call::sub_of(subprogs, pc)] {
            continue;
        }
        let next = pc + insn.slots();
        match insn {
            Insn::Jmp { off, .. } => {
                leaders[next] = true;
                let t = (next as i64 + *off as i64) as usize;
                leaders[t] = true;
                late[t] |= t <= pc;
                has_loop |= t <= pc;
            }
            Insn::Ja { .. } | Insn::Gotol { .. } => {
                if let Some(off) = insn.jump_offset() {
                    let t = (next as i64 + off as i64) as usize;
                    leaders[t] = true;
                    late[t] |= t <= pc;
                    has_loop |= t <= pc;
                }
                leaders[next] = true;
            }
            Insn::Call(CallTarget::Local(off)) => {
                // A subprogram is entered from every call site and returns to each site from
                // its exits, wherever they are.
                let t = (next as i64 + *off as i64) as usize;
                leaders[next] = true;
                leaders[t] = true;
                late[next] = true;
                late[t] = true;
            }
            Insn::Exit => leaders[next] = true,
            _ => {}
        }
    }
    let mut blocks = vec![None; total_slots + 1];
    for (pc, l) in leaders.iter().enumerate() {
        if *l && pc < total_slots && compiled[call::sub_of(subprogs, pc)] {
            blocks[pc] = Some(b.create_block());
        }
    }
    let static_depth = call::static_depths(insns, pcs, subprogs, root_sub, root.depth, &compiled);
    let calls = static_depth
        .as_ref()
        .map(|_| budget::CallBudget::new(insns, pcs, prog.subprograms()));
    let mut checkpoint = match &calls {
        Some(c) => c.checkpoints(insns, pcs, total_slots),
        None => late.clone(),
    };
    checkpoint[root.slot] = true;
    let need = budget::budget_needs(insns, pcs, &checkpoint, calls.as_ref());
    let counted = budget::counted_heads(insns, pcs, &leaders, &checkpoint, &need, subprogs);
    let ja_to = jumps_to_checkpoints(insns, pcs, &checkpoint, total_slots);
    let loops: Vec<(usize, usize)> = (0..insns.len())
        .filter_map(|i| {
            let t = pcs[i] as i64 + insns[i].slots() as i64 + insns[i].jump_offset()? as i64;
            usize::try_from(t)
                .ok()
                .filter(|&t| t <= pcs[i])
                .map(|t| (t, pcs[i]))
        })
        .collect();
    let mut self_load = vec![None; total_slots + 1];
    for (i, insn) in insns.iter().enumerate() {
        if let Insn::Load { dst, src, .. } = *insn {
            if dst == src {
                self_load[pcs[i]] = Some(dst);
            }
        }
    }
    let loop_heads = (0..insns.len())
        .filter_map(|i| {
            let t = pcs[i] as i64 + insns[i].slots() as i64 + insns[i].jump_offset()? as i64;
            let t = usize::try_from(t).ok().filter(|&t| t <= pcs[i])?;
            blocks.get(t).copied().flatten()
        })
        .collect();
    let entry_need = budget::entry_need(&need, &late, root.slot);
    let single_pred = budget::single_predecessor(insns, pcs, &leaders);
    let mut g = Gen {
        b,
        regs,
        left,
        depth,
        frame_top,
        fp_fixed,
        fp_off: [None; 11],
        writes_fp: insns.iter().any(writes_r10),
        vm,
        entry,
        shims,
        blocks,
        late,
        has_loop,
        calls: insns.iter().any(|i| {
            matches!(
                i,
                Insn::Call(_) | Insn::Callx { .. } | Insn::LoadPacket { .. }
            )
        }),
        checkpoint,
        need,
        counted,
        many_joins: (0..leaders.len())
            .filter(|&pc| leaders[pc] && !single_pred.get(pc).copied().unwrap_or(true))
            .count()
            > budget::MANY_JOINS,
        pcs,
        exits: [None; 6],
        no_ctx: &hints.no_ctx,
        packet: &hints.packet,
        ctx: &hints.ctx,
        ctx_fields,
        map_value: &hints.map_value,
        lookup: &hints.lookup,
        value_maps: crate::value_maps(prog, hints),
        value_need: vec![[0; 2]; value_need.len()],
        stack: &hints.stack,
        frame_bytes: &hints.frame_bytes,
        stack_at: stack_places(insns, pcs, hints),
        clamp_used,
        clamp_fixed: [None; 8],
        primary_fixed: None,
        no_local_calls: !insns
            .iter()
            .any(|i| matches!(i, Insn::Call(CallTarget::Local(_)))),
        fixed_depth: None,
        static_depth,
        cur_sub: 0,
        fixed_stack_base: None,
        fixed_fp: None,
        faults: Vec::new(),
        subprogs,
        live: live::live_in(insns, pcs, subprogs),
        sub_sites: call::sites_by_subprogram(insns, pcs, subprogs, &compiled),
        compiled,
        root: root.slot,
        root_sub,
        root_depth: root.depth,
        cb_i,
        cb_end: None,
        cb_ctx: None,
        cb_args: None,
        read: 0,
        sub_writes: call::callee_saved_written(insns, pcs, prog.subprograms()),
        block_len: 0,
        block_pos: 0,
        pending: 0,
        carry: vec![None; total_slots + 1],
        ja_to,
        went_past: vec![false; total_slots + 1],
        loop_heads,
        shift_loops: if shifts::host_has_them() {
            shifts::loops(insns, pcs, subprogs)
        } else {
            Vec::new()
        },
        shift_regs: Vec::new(),
        loops,
        self_load,
        block_pc: 0,
        block_writes: 0,
        single_pred,
        srclocs,
        loop_targets,
        consts: [None; 11],
        own_addrs: Vec::new(),
        own_hosts: Vec::new(),
        row_offs: Vec::new(),
        ctx_groups: Vec::new(),
        ctx_checked: None,
        ctx_unchecked: Vec::new(),
    };
    g.at_slot(None);
    g.prologue(regs_read_by(insns));
    let first = g.blocks[root.slot].expect("the root leads");
    g.b.ins().jump(first, &[]);
    g.body(insns)?;
    // What follows serves many instructions (or none).
    g.at_slot(None);
    g.fault_epilogues();
    g.helper_stop_epilogue();
    g.stop_epilogue();
    g.budget_epilogue();
    g.epilogues();
    g.b.seal_all_blocks();
    g.b.finalize();
    for (all, mine) in value_need.iter_mut().zip(&g.value_need) {
        all[0] = all[0].max(mine[0]);
        all[1] = all[1].max(mine[1]);
    }
    ctx_unchecked.extend(&g.ctx_unchecked);
    counted_loops.extend(
        (0..g.counted.len())
            .filter(|&pc| g.counted[pc].is_some() && g.compiled[call::sub_of(g.subprogs, pc)]),
    );
    Ok(entry_need)
}

impl Gen<'_, '_> {
    /// The shared exit `e`, created with its parameters the first time it is asked for.
    pub(super) fn exit(&mut self, e: Exit) -> Block {
        if let Some(b) = self.exits[e as usize] {
            return b;
        }
        let b = self.b.create_block();
        for _ in 0..e.params() {
            self.b.append_block_param(b, I64);
        }
        self.exits[e as usize] = Some(b);
        b
    }

    /// The shared exit `e` if something jumps to it: switched to, for its epilogue.
    pub(super) fn enter_exit(&mut self, e: Exit) -> Option<Vec<Value>> {
        let b = self.exits[e as usize]?;
        self.b.switch_to_block(b);
        Some(self.b.block_params(b).to_vec())
    }

    pub(super) fn iconst(&mut self, v: u64) -> Value {
        self.b.ins().iconst(I64, v as i64)
    }

    pub(super) fn reg(&mut self, r: Reg) -> Value {
        self.reg_at(r.index())
    }

    /// Register `i`'s current value.
    pub(super) fn reg_at(&mut self, i: usize) -> Value {
        match self.fixed_fp {
            Some(fp) if i == 10 => fp,
            _ if i == 10 && self.static_fp() => {
                let d = self.static_depth_here();
                self.iconst(bpfsim_vm::memory::frame_pointer(d as usize))
            }
            _ => self.b.use_var(self.regs[i]),
        }
    }

    /// Whether `r10` is a constant of each subprogram rather than a variable or one value:
    /// depths static, local calls made, no instruction writing it.
    pub(super) fn static_fp(&self) -> bool {
        self.fixed_fp.is_none() && !self.writes_fp && self.static_depth.is_some()
    }

    /// The call depth of the subprogram being translated, when depths are static.
    pub(super) fn static_depth_here(&self) -> u64 {
        self.static_depth
            .as_ref()
            .and_then(|d| d.get(self.cur_sub).copied())
            .unwrap_or(0)
    }

    /// The current call depth.
    pub(super) fn depth(&mut self) -> Value {
        match self.fixed_depth {
            Some(d) => d,
            None if self.static_depth.is_some() => {
                let d = self.static_depth_here();
                self.iconst(d)
            }
            None => self.b.use_var(self.depth),
        }
    }

    pub(super) fn set(&mut self, r: Reg, v: Value) {
        self.b.def_var(self.regs[r.index()], v);
    }

    pub(super) fn vm_load(&mut self, off: usize) -> Value {
        self.b
            .ins()
            .load(I64, MemFlags::trusted(), self.vm, vm_off(off))
    }

    pub(super) fn vm_store(&mut self, off: usize, v: Value) {
        self.b
            .ins()
            .store(MemFlags::trusted(), v, self.vm, vm_off(off));
    }

    /// `read`: the registers some instruction may read (see [`regs_read`]). An argument no
    /// instruction reads is not loaded: the register stays 0, which nothing can observe.
    pub(super) fn prologue(&mut self, read: u16) {
        self.read = read;
        for r in 0..11 {
            let z = self.iconst(0);
            self.b.def_var(self.regs[r], z);
        }
        // The budget, r1 and r2 come in registers (the entry's parameters: see
        // `JitProgram::compile_with`), r3-r5 from the context.
        let params = self.b.block_params(self.entry).to_vec();
        // Only those live at the root: Cranelift lowers every load, used or not (`read` counts
        // a `mov`'s destination; `xdpfilt_alw_tcp` loaded r3-r5 for nothing).
        let live = self.live.get(self.root).copied().unwrap_or(u16::MAX);
        for i in 0..5 {
            if read & live & (1 << (i + 1)) == 0 {
                continue;
            }
            let a = match i {
                0 | 1 => params[2 + i],
                _ => self.vm_load(offset_of!(VmCtx, args) + 8 * i),
            };
            self.b.def_var(self.regs[i + 1], a);
        }
        let fp = self
            .iconst(((FIRST_FRAME_REGION + self.root_depth) << REGION_SHIFT) | FRAME_SIZE as u64);
        self.b.def_var(self.regs[10], fp);
        self.b.def_var(self.left, params[1]);
        let z = self.iconst(self.root_depth);
        self.b.def_var(self.depth, z);
        if self.fp_fixed {
            if self.static_depth.is_some() {
                // Frame `d`'s stack is `FRAME_SIZE` bytes at `stack_base + d * FRAME_SIZE`:
                // with static depths, each access's offset from this one base is a constant.
                self.fixed_stack_base = Some(self.vm_load(offset_of!(VmCtx, stack_base)));
            } else {
                self.set_frame_top(z);
            }
        }
        if self.root_depth > 0 {
            // The shim wrote the first call's index.
            let i = self.vm_load(offset_of!(VmCtx, cb_i));
            self.b.def_var(self.cb_i, i);
            self.cb_end = Some(self.vm_load(offset_of!(VmCtx, cb_end)));
            self.cb_args = Some(self.vm_load(offset_of!(VmCtx, cb_args)));
            self.cb_ctx = Some(params[3]);
            self.clear_callback_frame(z);
        }
        if self.no_local_calls {
            self.fixed_depth = Some(z);
            // No instruction writes r10 (`fp_fixed` also asks that some access uses it).
            if !self.writes_fp {
                self.fixed_fp = Some(fp);
            }
        }
        if self.has_loop {
            self.load_clamp_bounds();
        }
    }

    /// A callback's frame starts zeroed, as the interpreter clears it for each call. `depth`:
    /// the root's depth as a value.
    fn clear_callback_frame(&mut self, depth: Value) {
        let frame = match self.static_depth {
            Some(_) => Ok(self.root_depth),
            None => Err(depth),
        };
        self.clear_callee(self.root, frame);
    }

    /// The end of a call of a callback's function with `r0` (its exit, a helper's exit inside
    /// it, or a tail call's 0, as the interpreter ends a callback's call): the function returns
    /// `(r0, left)` when `r0` is not 0 or the calls are done ([`VmCtx::cb_i`] then says which
    /// call was the last), else makes the next call from the root, in a frame zeroed again,
    /// with `r1`-`r5` its arguments (a `bpf_loop`'s index and context, or the next row of
    /// [`VmCtx::cb_args`]) and the other registers 0. The root is a checkpoint: a call the
    /// budget cannot pay for is handed over there.
    pub(super) fn callback_done(&mut self, r0: Value) {
        let left = self.b.use_var(self.left);
        let ret = self.b.create_block();
        self.b.append_block_param(ret, I64);
        let more = self.cont();
        self.b.ins().brif(r0, ret, &[r0.into()], more, &[]);
        self.switch(more);
        let i = self.b.use_var(self.cb_i);
        let next = self.b.ins().iadd_imm(i, 1);
        let end = self.cb_end.expect("a callback's function loads its end");
        let go = self.b.ins().icmp(IntCC::UnsignedLessThan, next, end);
        let again = self.cont();
        self.b.ins().brif(go, again, &[], ret, &[r0.into()]);
        self.switch(again);
        self.b.def_var(self.cb_i, next);
        self.vm_store(offset_of!(VmCtx, cb_i), next);
        // Registers no instruction reads keep what they hold: nothing can see it.
        let mask = self.read;
        let read = |r: usize| mask & (1 << r) != 0;
        let table = self
            .cb_args
            .expect("a callback's function loads its arguments' table");
        let each = self.cont();
        let count = self.cont();
        let join = self.cont();
        self.b.ins().brif(table, each, &[], count, &[]);
        // The next call's arguments from the table (`for_each`'s element)...
        self.switch(each);
        let at = self.b.ins().imul_imm(next, 40);
        let p = self.b.ins().iadd(table, at);
        for r in (1..=5).filter(|&r| read(r)) {
            let v = self
                .b
                .ins()
                .load(I64, MemFlags::trusted(), p, 8 * (r as i32 - 1));
            self.b.def_var(self.regs[r], v);
        }
        self.b.ins().jump(join, &[]);
        // ... or `bpf_loop`'s: the index and the context.
        self.switch(count);
        let z = self.iconst(0);
        for r in (3..=5).filter(|&r| read(r)) {
            self.b.def_var(self.regs[r], z);
        }
        self.b.def_var(self.regs[1], next);
        let ctx = self
            .cb_ctx
            .expect("a callback's function keeps its context");
        self.b.def_var(self.regs[2], ctx);
        self.b.ins().jump(join, &[]);
        self.switch(join);
        let z = self.iconst(0);
        for r in [0, 6, 7, 8, 9].into_iter().filter(|&r| read(r)) {
            self.b.def_var(self.regs[r], z);
        }
        let fp = self.iconst(bpfsim_vm::memory::frame_pointer(self.root_depth as usize));
        self.b.def_var(self.regs[10], fp);
        let d = self.iconst(self.root_depth);
        self.b.def_var(self.depth, d);
        if self.fp_fixed && self.fixed_stack_base.is_none() {
            self.set_frame_top(d);
        }
        self.clear_callback_frame(d);
        let root = self.block_at(self.root);
        self.b.ins().jump(root, &[]);
        self.switch(ret);
        let r0 = self.b.block_params(ret)[0];
        self.b.ins().return_(&[r0, left]);
    }

    /// `frame_top` for the frame at `depth`: its stack region's row, base + `FRAME_SIZE`.
    pub(super) fn set_frame_top(&mut self, depth: Value) {
        let table = self.vm_load(offset_of!(VmCtx, regions));
        let region = self.b.ins().iadd_imm(depth, FIRST_FRAME_REGION as i64);
        let row = self.b.ins().imul_imm(region, 24);
        let entry = self.b.ins().iadd(table, row);
        let base = self.b.ins().load(I64, MemFlags::trusted(), entry, 0);
        let top = self.b.ins().iadd_imm(base, FRAME_SIZE as i64);
        self.b.def_var(self.frame_top, top);
    }

    /// After `insn`: what each register holds more than `r10`, where known ([`Gen::fp_off`]).
    fn track_fp(&mut self, insn: &Insn) {
        if !self.fp_fixed {
            return;
        }
        let known = match *insn {
            Insn::Alu {
                width: Width::W64,
                op,
                dst,
                src,
            } => match (op, src) {
                (AluOp::Mov, Source::Reg(s)) => Some((dst, self.fp_off[s.index()])),
                (AluOp::Add, Source::Imm(i)) => {
                    Some((dst, self.fp_off[dst.index()].map(|k| k + i as i64)))
                }
                (AluOp::Sub, Source::Imm(i)) => {
                    Some((dst, self.fp_off[dst.index()].map(|k| k - i as i64)))
                }
                _ => None,
            },
            _ => None,
        };
        let written = regs_written(insn);
        for (r, k) in self.fp_off.iter_mut().enumerate().take(10) {
            if written & (1 << r) != 0 {
                *k = None;
            }
        }
        if let Some((dst, k)) = known {
            self.fp_off[dst.index()] = k;
        }
    }

    /// After `insn` at `pc`: the constants registers hold, where known ([`Gen::consts`]).
    fn track_consts(&mut self, insn: &Insn, pc: usize) {
        let known = match *insn {
            Insn::Alu {
                width,
                op: AluOp::Mov,
                dst,
                src,
            } => {
                let v = match src {
                    Source::Imm(i) => Some(i as i64 as u64),
                    Source::Reg(r) => self.consts[r.index()],
                };
                let v = match width {
                    Width::W64 => v,
                    Width::W32 => v.map(|v| v as u32 as u64),
                };
                Some((dst, v))
            }
            Insn::LdImm64 {
                dst,
                imm: bpfsim_vm::isa::Imm64::Func(off),
            } => Some((
                dst,
                Some(bpfsim_vm::interp::FUNC_TAG | (pc as i64 + 1 + off as i64) as u32 as u64),
            )),
            Insn::LdImm64 {
                dst,
                imm: bpfsim_vm::isa::Imm64::Imm(v),
            } => Some((dst, Some(v))),
            _ => None,
        };
        let written = regs_written(insn);
        for (r, k) in self.consts.iter_mut().enumerate() {
            if written & (1 << r) != 0 {
                *k = None;
            }
        }
        if let Some((dst, v)) = known {
            self.consts[dst.index()] = v;
        }
    }

    /// Whether the `ja` block at `pc` is reached only by a conditional branch that went past
    /// it to the `ja`'s target.
    fn threaded(&self, pc: usize) -> bool {
        self.went_past[pc] && self.single_pred[pc]
    }

    /// In a listing ([`Gen::srclocs`]), mark the code generated from here on as slot `pc`'s
    /// (`None`: of no single instruction).
    pub(super) fn at_slot(&mut self, pc: Option<usize>) {
        if self.srclocs {
            let loc = pc.map_or(no_slot(), |pc| {
                cranelift_codegen::ir::SourceLoc::new(pc as u32)
            });
            self.b.set_srcloc(loc);
        }
    }

    /// A fresh block to continue in after a conditional exit.
    /// Switch to `block`, sealing it: every block but the shared exits and the leaders that
    /// `late` names has all its predecessors emitted by the time code is placed in it. Sealing
    /// early lets the SSA builder resolve variables without a parameter per variable per block
    /// (which it would otherwise add everywhere and remove again at the end: a third of the
    /// compile time on branchy code).
    pub(super) fn switch(&mut self, block: Block) {
        self.b.switch_to_block(block);
        self.b.seal_block(block);
    }

    pub(super) fn cont(&mut self) -> Block {
        self.b.create_block()
    }

    pub(super) fn block_at(&self, pc: usize) -> Block {
        self.blocks[pc].expect("jump targets are leaders")
    }

    pub(super) fn body(&mut self, insns: &[Insn]) -> Result<(), JitError> {
        self.ctx_groups = self.ctx_groups(insns);
        let mut open = false;
        let mut fused = false;
        for (i, insn) in insns.iter().enumerate() {
            let pc = self.pcs[i];
            if !self.shift_regs.is_empty() {
                self.shift_regs.retain(|&(last, _, _)| pc <= last);
            }
            self.cur_sub = self.subprogs.partition_point(|&s| s <= pc) - 1;
            if !self.compiled[self.cur_sub] {
                // Another function's: every subprogram ends in a jump or an exit, so no block
                // is open here.
                debug_assert!(!open);
                continue;
            }
            if self.blocks[pc].is_some() && self.threaded(pc) {
                // Its only predecessor branched past it (`jump.rs`): no code, and no block for
                // the SSA builder to take as one more predecessor of the loop's head.
                debug_assert!(!open);
                continue;
            }
            if let Some(blk) = self.blocks[pc] {
                if open {
                    self.leave_block(&[pc]);
                    if let Some(need) = self.counted[pc] {
                        self.loop_entry_check(pc, need);
                    }
                    self.load_shift_amounts(pc);
                    self.b.ins().jump(blk, &[]);
                }
                self.at_slot(Some(pc));
                self.b.switch_to_block(blk);
                if !self.late[pc] {
                    self.b.seal_block(blk);
                }
                open = true;
                // The block runs to the next leader (a subprogram's start is one, though
                // another function's has no block here).
                let len = (i + 1..insns.len())
                    .find(|&j| {
                        let pc = self.pcs[j];
                        self.blocks[pc].is_some() || self.subprogs.binary_search(&pc).is_ok()
                    })
                    .unwrap_or(insns.len())
                    - i;
                self.block_len = len as u64;
                self.block_pos = 0;
                self.block_pc = pc;
                self.block_writes = 0;
                self.block_entry(pc, self.block_len);
                // Other paths lead here: what registers hold is not known.
                self.fp_off = [None; 11];
                self.fp_off[10] = Some(0);
                self.consts = [None; 11];
            } else {
                self.block_pos += 1;
                self.at_slot(Some(pc));
            }
            self.block_writes |= regs_written(insn);
            if !open || std::mem::take(&mut fused) {
                self.track_fp(insn);
                self.track_consts(insn, pc);
                continue;
            }
            if self.extend_pair(insns, i) {
                // The second of the pair is counted in its block but emits nothing.
                fused = true;
                self.track_fp(insn);
                self.track_consts(insn, pc);
                continue;
            }
            let next = pc + insn.slots();
            open = self.insn(pc, next, insn)?;
            self.track_fp(insn);
            self.track_consts(insn, pc);
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
}
