//! The generated code's calls back into Rust, for everything off the fast path: memory the
//! inline check refused (the context's computed fields, or a real fault), helpers, legacy packet
//! loads, atomics and frame clearing. Each takes the run's [`VmCtx`] and reports a failure in it.

use bpfsim_vm::host::{ArrayLookup, SlotLookup};
use bpfsim_vm::isa::{AtomicOp, Size};
use bpfsim_vm::{HelperStop, Host, MemoryMap, TrapCode};
use std::mem::MaybeUninit;

/// The generated function returns two words, in registers: `(r0, left)` when the program
/// exits (`left`, the budget left, is below 2^63: the code counts it as a signed number that
/// never goes below 0), else `(status, SLOW)` with the details in the context.
pub const SLOW: u64 = u64::MAX;
/// Statuses of a slow return: a trap (`trap_*` and `left` in the context), a tail call
/// (`status_value`, `left`), or the budget running out inside a block (`regs`, `left_at_block`,
/// `budget_pc`, `budget_depth`: the entry hands the block to the interpreter).
pub const TRAP: u64 = 1;
pub const TAIL_CALL: u64 = 2;
pub const BUDGET: u64 = 3;

/// What the generated function returns (`rax`, `rdx` on x86-64 System V, as Cranelift returns
/// two integers).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ret {
    pub a: u64,
    pub b: u64,
}

/// Shim status in `VmCtx::status`.
pub const OK: u64 = 0;
/// The program must stop: `status_value` is r0 (`bpf_exit`-like helpers, out-of-packet
/// `ld_abs`), or a tail call.
pub const STOP_EXIT: u64 = 1;
pub const STOP_TAIL: u64 = 2;
pub const STOP_TRAP: u64 = 3;
/// A direct helper's host did not answer ([`redirect_map`]): the code calls the helper's shim,
/// which sets the status again.
pub const NOT_ANSWERED: u64 = 4;

/// Saved state of a caller's frame during a BPF-to-BPF call.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct FrameSave {
    /// The slot the call returns to.
    pub ret_site: u64,
    /// `r6`-`r9`, and `r10` in `fp`.
    pub saved: [u64; 4],
    pub fp: u64,
}

/// A callback's body compiled as a function of its own ([`crate::Entry`]: the callback's
/// registers r1 and r2 as its arguments, r3-r5 in [`VmCtx::args`]), entered by the callbacks'
/// shim for each call a helper asks for.
pub struct CompiledCallback {
    /// The callback's first slot (the low half of its `lddw rX, func` address).
    pub slot: usize,
    /// The call depth of the callback's frame the code was compiled for: the shim enters it
    /// only from a helper called one frame above, else the interpreter runs the callbacks.
    pub depth: u64,
    pub entry: crate::Entry,
}

/// What a compiled program's runs share, read-only: the interpreter that finishes what the code
/// hands over, and the compiled callbacks (by slot, ascending).
pub struct Runtime {
    pub interp: bpfsim_vm::Interpreter,
    pub callbacks: Vec<CompiledCallback>,
}

impl Runtime {
    /// The compiled callback a helper's `func` (an address `lddw rX, func` produced) names, if
    /// its code was compiled for a frame at `depth`.
    fn callback(&self, func: u64, depth: u64) -> Option<&CompiledCallback> {
        if func & !0xffff_ffff != bpfsim_vm::interp::FUNC_TAG {
            return None;
        }
        let slot = (func & 0xffff_ffff) as usize;
        let i = self
            .callbacks
            .binary_search_by_key(&slot, |c| c.slot)
            .ok()?;
        let c = &self.callbacks[i];
        (c.depth == depth).then_some(c)
    }
}

/// The base of the stack buffer in a region table as [`MemoryMap::region_table`] gives it:
/// the first frame's row, which `MemoryMap::fixed_rows` writes with the frames' rows after it,
/// `FRAME_SIZE` bytes apart in one buffer of `FRAME_SIZE * MAX_FRAMES` bytes.
///
/// # Safety
/// `rows` points at a region table of at least [`bpfsim_vm::memory::FIXED_ROWS`] rows.
#[inline(always)]
pub unsafe fn stack_base(rows: *const u8) -> u64 {
    let first = bpfsim_vm::memory::FIRST_FRAME_REGION as usize;
    // SAFETY: the caller's contract; a row is three u64s (`#[repr(C)]`: base first).
    unsafe { rows.add(24 * first).cast::<u64>().read() }
}

/// The region index of the primary region: the first after the frames' stacks.
pub const PRIMARY_REGION: usize =
    bpfsim_vm::memory::FIRST_FRAME_REGION as usize + bpfsim_vm::memory::MAX_FRAMES;

/// Everything a run shares between Rust and the generated code. Field offsets are read by the
/// generated code through `std::mem::offset_of!`. Aligned to a cache line, its hottest fields
/// first: which fields shared a line with which moved with each field added (and with the heap
/// address), and the runs' times with it (an 8-byte field added near the top made
/// `parse_csum_64` 35 -> 39 ns).
#[repr(C, align(64))]
pub struct VmCtx {
    pub regions: *const u8,
    pub nregions: u64,
    /// The primary region (the first one a run maps after the stack: the packet of a test run,
    /// the memory of `run_with_memory`): its base, and for each access size (1, 2, 4, 8; reads
    /// then writes) one past the greatest offset an access of that size may start at (0 when
    /// none may). Generated code tries it first: one compare instead of a table walk.
    pub primary_base: u64,
    pub primary_lt: [u64; 8],
    pub left: u64,
    pub args: [u64; 5],
    pub status: u64,
    pub status_value: u64,
    pub trap_code: u64,
    pub trap_pc: u64,
    pub trap_detail: u64,
    pub trap_size: u64,
    /// Written by generated code on a local call before it is read: left uninitialised so
    /// that a run does not pay for zeroing it.
    pub frames: MaybeUninit<[FrameSave; 8]>,
    pub mem: *mut MemoryMap<'static>,
    pub host: *mut HostRef<'static>,
    /// Registers handed to the interpreter for the last, partial block of a run.
    /// Written by generated code before `budget_tail` reads it (uninitialised until then).
    pub regs: MaybeUninit<[u64; 11]>,
    pub rt: *const Runtime,
    /// The total budget of the run.
    pub budget: u64,
    /// The budget left when the partial block was entered, the block's pc and the frame depth
    /// (set by the generated code before it returns [`BUDGET`]).
    pub left_at_block: u64,
    pub budget_pc: u64,
    pub budget_depth: u64,
    /// The primary region's row (base, read limit, write limit) that [`VmCtx::primary_base`]
    /// and [`VmCtx::primary_lt`] were computed from, so that a context reused across runs
    /// recomputes them only when the row changes. Not read by generated code.
    pub primary_row: [u64; 3],
    /// `primary_row == [0; 3]`, the row of a run that maps no primary region: such runs (an
    /// empty input) then check one flag rather than compare the row.
    pub primary_none: bool,
    /// Proven packet accesses ([`crate::Hints::packet`]) take no branch: their offset is
    /// clamped into the primary region. For each access size (1, 2, 4, 8; reads then writes)
    /// the base they add it to and the greatest offset they may use. Where the region is
    /// smaller than the size, the base is [`CLAMP_SINK`] and the offset 0, so that a clamped
    /// access is inside memory that is no one's data whatever the offset. Both depend on the
    /// primary region's row alone. Set by [`VmCtx::set_primary`].
    pub clamp_base: [u64; 8],
    pub clamp_max: [u64; 8],
    /// The lean entry ([`crate::JitSession::run_with_memory`]) builds no memory map: `mem` stays
    /// null until a shim needs one, which then builds it here ([`VmCtx::materialize`]) from the
    /// session's VM and the run's input, exactly the map the full entry would have built.
    /// Null and unused outside a lean run.
    pub lazy_vm: *mut bpfsim_vm::Vm,
    pub lazy_input: *mut u8,
    pub lazy_len: usize,
    /// The map built by [`VmCtx::materialize`]; initialised exactly when a lean run's `mem` is
    /// not null, dropped when that run returns.
    pub lazy_map: MaybeUninit<MemoryMap<'static>>,
    /// The context fields that hinted loads read ([`crate::Hints::ctx`]), by slot: the field's
    /// guest address (`u64::MAX` when the context refuses a 4-byte load there) and its value,
    /// as of the context state [`VmCtx::ctx_stamp`]. Set by [`VmCtx::refresh_ctx`], which a run
    /// calls before its code reads them: uninitialised before that (the generated code reads
    /// only the program's slots, below `ctx_n`), as a single test run's context is made for
    /// that run alone, where writing all 48 slots and the store slots at each entry cost a
    /// kilobyte of stores (xdp_book_9090's single runs under the JIT 149-159 -> 181-183 ns).
    pub ctx_key: [MaybeUninit<u64>; CTX_SLOTS],
    pub ctx_val: [MaybeUninit<u64>; CTX_SLOTS],
    /// [`MemoryMap::ctx_stamp`] of the values in `ctx_val`; `u64::MAX` (no map's) before the
    /// first run.
    pub ctx_stamp: u64,
    /// The fields of the slots (the program's, `crate::ctx_field_key`), and how many.
    pub ctx_offs: *const u64,
    pub ctx_n: u64,
    /// The context stores hinted stores make directly ([`crate::Hints::ctx`]), by slot: the
    /// field's guest address (`u64::MAX` when the context has no cell for it,
    /// [`bpfsim_vm::memory::Context::store_cell`]) and the host address of its cell, as of
    /// [`VmCtx::ctx_stamp`]. Set by [`VmCtx::refresh_ctx`] with the kept values, uninitialised
    /// before as they are.
    pub ctx_skey: [MaybeUninit<u64>; STORE_SLOTS],
    pub ctx_sptr: [MaybeUninit<u64>; STORE_SLOTS],
    /// The fields of the store slots, and how many.
    pub ctx_soffs: *const u64,
    pub ctx_sn: u64,
    /// For each kept load's slot, what the JIT's own packet proofs need of its field
    /// (`gen::bounds`: a pointer into the primary region, ending inside its readable or
    /// writable bytes), and whether any slot needs anything. A field that does not hold it is
    /// not kept (its key `u64::MAX`): its load hands the run to the interpreter. Checked by
    /// [`VmCtx::read_ctx`] and again whenever the primary region's row changes.
    pub ctx_pflags: *const u8,
    pub ctx_pcheck: bool,
    /// The run's array maps ([`Host::array_lookups`]): the generated code answers their
    /// lookups itself. Entry `i` is the map whose handle is `arrays_first + i`, for `i` below
    /// `arrays_n`.
    pub arrays: [ArrayLookup; ARRAY_SLOTS],
    pub arrays_first: u64,
    pub arrays_n: u64,
    /// The rows the lookups with a constant handle answer from (`gen::rows`), by the
    /// program's row: filled by [`VmCtx::fetch_rows`] once per batch, after the array table
    /// and the regions; an empty row (`max_entries` 0) for a map the table does not list as an
    /// array, or whose values do not hold what the accesses proven through its lookups need.
    pub rows: [ValueRow; ROW_SLOTS],
    /// Proven map value accesses ([`crate::Hints::map_value`]) take no branch: their offset is
    /// clamped into the region the host says holds the map's values ([`Host::value_region`]).
    /// For the program's value maps by slot (`JitProgram::value_maps`): the region's base, and
    /// for each access size (1, 2, 4, 8; reads then writes) the greatest offset an access may
    /// start at (index `8 * slot + clamp index`). Written by [`VmCtx::fetch_values`] for the
    /// program's slots before any run reads them; the others stay unwritten.
    pub value_base: MaybeUninit<[u64; VALUE_SLOTS]>,
    pub value_max: MaybeUninit<[u64; 8 * VALUE_SLOTS]>,
    /// The host did not say where some value map's values are, or named a region under 8
    /// bytes (readable or writable): runs go to the interpreter (the code's clamped accesses
    /// would address memory the values may not be in).
    pub values_unknown: bool,
    /// The host address of the run's stack, all frames' in one buffer of `FRAME_SIZE *
    /// MAX_FRAMES` bytes (the base of the first frame's row, `MemoryMap::fixed_rows`), where
    /// proven stack accesses ([`crate::Hints::stack`]) are clamped. Set by every entry before
    /// the code runs; the buffer never moves while the table lives.
    pub stack_base: u64,
    /// The call depth of the frame the running code's function started in: 0 for the main
    /// program, a compiled callback's frame while it runs. A hand-over to the interpreter ends
    /// at that frame's exit rather than returning to the frames below, which are the helper's
    /// caller's (`VmCtx::callers`).
    pub base: u64,
    /// A callback's code makes the calls from index `cb_i` (as the shim enters it) up to below
    /// `cb_end`, and keeps in `cb_i` the index of the call in progress.
    pub cb_i: u64,
    pub cb_end: u64,
    /// The arguments of each call of a `for_each`-like helper (`HelperStop::CallEach`), by
    /// index, for the code's calls after the first; null for a `bpf_loop`'s.
    pub cb_args: *const [u64; 5],
    /// The run's maps whose lookups the generated code asks with the key's bytes
    /// ([`Host::key_lookups`], [`map_lookup_key`]): entry `i`, the key size of the map whose
    /// handle is `keys_first + i` (0: not such a map), for `i` below `keys_n`. Last: placed
    /// before `stack_base`, they moved the fields every run reads (`empty` under the JIT
    /// 2.56-2.57 -> 2.77-2.96 ns; here 2.48-2.67).
    pub keys: [u32; KEY_SLOTS],
    pub keys_first: u64,
    pub keys_n: u64,
    /// Non-zero when the run's host says its `bpf_loop` may be made by the code
    /// ([`Host::inline_loop`]): a `call 181` on a compiled callback then calls the callback's
    /// function directly.
    pub inline_loop: u64,
    /// The host's [`Host::tables_epoch`] when its tables (arrays, keys, loop, adjustments) were
    /// last asked; 0: never, or under no promise.
    pub tables_epoch: u64,
    /// Non-zero when the run's host says its XDP edge adjustments are the context's
    /// ([`Host::xdp_adjust_by_context`]): their shims then ask the memory map's context
    /// without calling the host.
    pub adjust_ctx: u64,
    /// The run's arrays whose slots may be empty ([`Host::slot_lookups`]): the generated code
    /// answers their lookups itself. Entry `i` is the map whose handle is `slots_first + i`,
    /// for `i` below `slots_n`; the filled slots' bits in `slot_bits` (each entry's within it:
    /// [`fetch_slots`] checks). Unwritten until the first fetch.
    pub slots: MaybeUninit<[SlotLookup; SLOT_MAPS]>,
    pub slots_first: u64,
    pub slots_n: u64,
    /// Non-zero when the table is not the host's current one: before a batch's first slot
    /// lookup ([`VmCtx::forget_slots`]), and once the run's code has called its host in a way
    /// that may fill or empty a slot ([`VmCtx::parts`]); `slots_n` is then 0, and the code's
    /// next slot lookup fetches the table ([`fetch_slots`]).
    pub slots_stale: u64,
    pub slot_bits: MaybeUninit<[u64; SLOT_WORDS]>,
    /// Non-zero once `slots` and `slot_bits` are written.
    pub slots_ready: u64,
    // Last, with `values_key`: placed among the fields every run reads, they moved those
    // (`xdp_pass_count` 0.19-0.22x -> 0.34-0.35x the kernel's time).
    /// The slots whose field the run keeps (bit `i`: `ctx_key[i]` is `ctx_base` plus the
    /// field's offset), and the context's guest address (`u64::MAX` with none kept): a group of
    /// loads through one register compares it with `ctx_base` once, and its slots' bits, rather
    /// than each load its address with its key (`gen::ctx_group`). Kept with the keys, wherever
    /// they are written.
    pub ctx_kept: u64,
    pub ctx_base: u64,
    /// The memory map's serial, its region count and the tables epoch when the value clamps
    /// and rows (host addresses) were last made ([`Self::fetch_values`], [`Self::fetch_rows`]):
    /// while all three stay, so do they. 0s: never.
    pub values_key: [u64; 3],
}

/// The most maps whose slot lookups the generated code answers (the others call the host).
pub const SLOT_MAPS: usize = 8;

/// The words of presence bits the slot maps of a run share: 4,096 slots in all (an xskmap of
/// 64 sockets takes one word); the maps whose bits do not fit call the host.
pub const SLOT_WORDS: usize = 64;

/// The most maps whose proven value accesses the generated code clamps (the others' keep
/// their checks).
pub const VALUE_SLOTS: usize = 8;

/// The most maps whose array lookups the generated code answers (the others call the host).
pub const ARRAY_SLOTS: usize = 8;

/// The most rows of lookups with a constant handle (`gen::rows`): a program's other lookups
/// take the array table's way.
pub const ROW_SLOTS: usize = 8;

/// A row of [`VmCtx::rows`]: an array map's entry of the host's table
/// ([`Host::array_lookups`]) checked against the regions, for the lookups of one handle.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValueRow {
    /// Indexes below it find a value; 0: the row's lookups take the other ways.
    pub max_entries: u64,
    pub stride: u64,
    /// Guest address of value 0.
    pub base: u64,
    /// What to add to a guest address inside the map's values for its host address.
    pub host_off: u64,
}

/// The most maps whose lookups the generated code asks with the key's bytes (the others go
/// through [`map_lookup`]).
pub const KEY_SLOTS: usize = 8;

/// The most context fields hinted loads read from kept values; a program's other fields are
/// read the usual way. As many as `struct __sk_buff` has 4-byte fields: a program reading all
/// of them (a TC program recording what it sees) keeps every one.
pub const CTX_SLOTS: usize = 48;
// One bit per slot in `VmCtx::ctx_kept`.
const _: () = assert!(CTX_SLOTS <= 64);

/// The most context fields hinted stores write straight into the context's cells; a
/// program's other stores go the usual way.
pub const STORE_SLOTS: usize = 16;

/// Where a proven packet access goes when the packet is smaller than the access (which only a
/// wrong proof can reach): eight bytes that no Rust code reads, shared by every run. Runs on
/// several threads may write it at once; what a wrong proof reads from it is as arbitrary as
/// any other byte it could have read.
pub struct ClampSink(std::cell::UnsafeCell<[u64; 1]>);
// SAFETY: Rust code never reads or writes the cell; only generated code does, through its
// address, and any value there is as good as any other.
unsafe impl Sync for ClampSink {}
pub static CLAMP_SINK: ClampSink = ClampSink(std::cell::UnsafeCell::new([0]));

/// The most bytes from a value region's start that a proven value access at a constant address
/// may end at and still take no clamp ([`VmCtx::fetch_values`]).
pub const VALUE_CONST_BYTES: u64 = 512;

/// Where the value accesses of a map whose region the host did not name go: [`CLAMP_SINK`]'s
/// kind, [`VALUE_CONST_BYTES`] long, so that an access at a constant address (which has no
/// clamp) stays inside it too. Runs whose host names no region are interpreted, so only a
/// wrong entry into the code could write it.
pub struct ValueSink(std::cell::UnsafeCell<[u64; VALUE_CONST_BYTES as usize / 8]>);
// SAFETY: as for `ClampSink`.
unsafe impl Sync for ValueSink {}
pub static VALUE_SINK: ValueSink = ValueSink(std::cell::UnsafeCell::new(
    [0; VALUE_CONST_BYTES as usize / 8],
));

/// A thin pointer to the run's host.
pub struct HostRef<'a> {
    pub host: &'a mut dyn Host,
}

impl VmCtx {
    /// A context for runs of `interp`'s compiled program, with no memory or host yet: each run
    /// sets the region table, the arguments, the budget, the memory map and the host
    /// (`JitProgram::enter`), which is all the generated code reads before writing.
    pub fn new(rt: *const Runtime) -> VmCtx {
        let mut slot = MaybeUninit::uninit();
        Self::init(&mut slot, rt);
        // SAFETY: `init` wrote every field but `frames`, `regs`, `lazy_map`, `value_base`,
        // `value_max` and the kept context slots, which are `MaybeUninit`.
        unsafe { slot.assume_init() }
    }

    /// [`Self::new`] in place: every field written one by one, and the stack of saved frames and
    /// registers (most of the context's bytes) left unwritten. Written as a whole, a context
    /// made for one run compiled to a `memset` of all of it, which cost the run more than the
    /// program.
    #[inline(always)]
    pub fn init(slot: &mut MaybeUninit<VmCtx>, rt: *const Runtime) -> &mut VmCtx {
        let p = slot.as_mut_ptr();
        // SAFETY: `p` points at the slot, valid for writes of a `VmCtx`; each field is written
        // through a raw pointer, no reference to uninitialised memory is made.
        unsafe {
            std::ptr::addr_of_mut!((*p).regions).write(std::ptr::null());
            std::ptr::addr_of_mut!((*p).nregions).write(0);
            std::ptr::addr_of_mut!((*p).stack_base).write(0);
            std::ptr::addr_of_mut!((*p).primary_base).write(0);
            std::ptr::addr_of_mut!((*p).primary_lt).write([0; 8]);
            std::ptr::addr_of_mut!((*p).left).write(0);
            std::ptr::addr_of_mut!((*p).args).write([0; 5]);
            std::ptr::addr_of_mut!((*p).status).write(0);
            std::ptr::addr_of_mut!((*p).status_value).write(0);
            std::ptr::addr_of_mut!((*p).trap_code).write(0);
            std::ptr::addr_of_mut!((*p).trap_pc).write(0);
            std::ptr::addr_of_mut!((*p).trap_detail).write(0);
            std::ptr::addr_of_mut!((*p).trap_size).write(0);
            std::ptr::addr_of_mut!((*p).mem).write(std::ptr::null_mut());
            std::ptr::addr_of_mut!((*p).host).write(std::ptr::null_mut());
            std::ptr::addr_of_mut!((*p).rt).write(rt);
            std::ptr::addr_of_mut!((*p).base).write(0);
            std::ptr::addr_of_mut!((*p).cb_i).write(0);
            std::ptr::addr_of_mut!((*p).cb_end).write(0);
            std::ptr::addr_of_mut!((*p).cb_args).write(std::ptr::null());
            std::ptr::addr_of_mut!((*p).budget).write(0);
            std::ptr::addr_of_mut!((*p).left_at_block).write(0);
            std::ptr::addr_of_mut!((*p).budget_pc).write(0);
            std::ptr::addr_of_mut!((*p).budget_depth).write(0);
            // No row has these limits (a region is at most 4 GiB): the first run computes.
            std::ptr::addr_of_mut!((*p).primary_row).write([0, u64::MAX, u64::MAX]);
            std::ptr::addr_of_mut!((*p).primary_none).write(false);
            std::ptr::addr_of_mut!((*p).clamp_base).write([0; 8]);
            std::ptr::addr_of_mut!((*p).clamp_max).write([0; 8]);
            std::ptr::addr_of_mut!((*p).lazy_vm).write(std::ptr::null_mut());
            std::ptr::addr_of_mut!((*p).lazy_input).write(std::ptr::null_mut());
            std::ptr::addr_of_mut!((*p).lazy_len).write(0);
            std::ptr::addr_of_mut!((*p).ctx_stamp).write(u64::MAX);
            std::ptr::addr_of_mut!((*p).ctx_kept).write(0);
            std::ptr::addr_of_mut!((*p).ctx_base).write(u64::MAX);
            std::ptr::addr_of_mut!((*p).ctx_offs).write(std::ptr::null());
            std::ptr::addr_of_mut!((*p).ctx_n).write(0);
            std::ptr::addr_of_mut!((*p).ctx_soffs).write(std::ptr::null());
            std::ptr::addr_of_mut!((*p).ctx_sn).write(0);
            std::ptr::addr_of_mut!((*p).ctx_pflags).write(std::ptr::null());
            std::ptr::addr_of_mut!((*p).ctx_pcheck).write(false);
            std::ptr::addr_of_mut!((*p).arrays).write([ArrayLookup::default(); ARRAY_SLOTS]);
            std::ptr::addr_of_mut!((*p).arrays_first).write(0);
            std::ptr::addr_of_mut!((*p).arrays_n).write(0);
            std::ptr::addr_of_mut!((*p).rows).write([ValueRow::default(); ROW_SLOTS]);
            std::ptr::addr_of_mut!((*p).keys).write([0; KEY_SLOTS]);
            std::ptr::addr_of_mut!((*p).keys_first).write(0);
            std::ptr::addr_of_mut!((*p).keys_n).write(0);
            std::ptr::addr_of_mut!((*p).inline_loop).write(0);
            std::ptr::addr_of_mut!((*p).tables_epoch).write(0);
            std::ptr::addr_of_mut!((*p).values_key).write([0; 3]);
            std::ptr::addr_of_mut!((*p).adjust_ctx).write(0);
            std::ptr::addr_of_mut!((*p).slots_first).write(0);
            std::ptr::addr_of_mut!((*p).slots_n).write(0);
            std::ptr::addr_of_mut!((*p).slots_stale).write(0);
            std::ptr::addr_of_mut!((*p).slots_ready).write(0);
            std::ptr::addr_of_mut!((*p).values_unknown).write(false);
            // SAFETY: every field but `frames`, `regs`, `lazy_map`, `value_base`, `value_max`,
            // `slots`, `slot_bits` and the kept context slots (`ctx_key` ... `ctx_sptr`) is
            // written above, and those are `MaybeUninit`, for which any bytes are
            // valid.
            slot.assume_init_mut()
        }
    }

    /// # Safety
    /// `vm` is the live context of a run: its `mem` and `host` point at the run's memory map and
    /// host, which outlive the run and are used by nothing else meanwhile.
    unsafe fn parts<'v>(
        vm: *mut VmCtx,
    ) -> (&'v mut VmCtx, &'v mut MemoryMap<'static>, &'v mut dyn Host) {
        // SAFETY: the caller's contract.
        unsafe {
            let v = &mut *vm;
            // Whatever the caller asks of the host may fill or empty a slot map's slot (a
            // helper's update, an override, the interpreter's part of the run): the code's
            // slot lookups call the host until the table is fetched again.
            v.slots_n = 0;
            v.slots_stale = 1;
            if v.mem.is_null() {
                v.materialize();
            }
            let mem = &mut *v.mem;
            let host = &mut *(*v.host).host;
            (v, mem, host)
        }
    }

    /// The frames below `depth` as the interpreter takes them over (a hand-over inside a
    /// subprogram returns to its callers): the code saved each in `frames` at its call. Those
    /// below [`VmCtx::base`] are the helper's caller's, to which a callback never returns: a
    /// return site past the program, where the interpreter ends the hand-over.
    fn callers(&self, depth: u64) -> Vec<bpfsim_vm::interp::Caller> {
        let n = (depth as usize).min(8);
        let frames = self.frames.as_ptr().cast::<FrameSave>();
        (0..n)
            .map(|d| {
                if (d as u64) < self.base {
                    return bpfsim_vm::interp::Caller {
                        ret: usize::MAX,
                        saved: [0; 5],
                    };
                }
                // SAFETY: the generated code wrote `frames[d]` at the call from frame `d`, for
                // every `d` below the current depth; `d` is below 8.
                let f = unsafe { frames.add(d).read() };
                bpfsim_vm::interp::Caller {
                    ret: f.ret_site as usize,
                    saved: [f.saved[0], f.saved[1], f.saved[2], f.saved[3], f.fp],
                }
            })
            .collect()
    }

    /// Build a lean run's memory map: the session VM's stack and table (whose fixed rows the
    /// run already uses, `RegionTable::enter_main`), then the input mapped, as
    /// [`bpfsim_vm::Vm::run_with_memory`] maps it, at the primary region.
    ///
    /// # Safety
    /// `self` is the context of a lean run in progress whose `mem` is null: `lazy_vm` points at
    /// the session's VM and `lazy_input`/`lazy_len` at the run's input, both borrowed for the
    /// whole run and used by nothing else meanwhile.
    #[cold]
    #[inline(never)]
    unsafe fn materialize(&mut self) {
        // SAFETY: the caller's contract: the VM and the input outlive the run, which ends
        // before the entry drops this map (`JitProgram::enter_lean`), so erasing the lifetime
        // lets no borrow outlive what it borrows.
        unsafe {
            let vm = &mut *self.lazy_vm;
            let mut map: MemoryMap<'static> = std::mem::transmute(vm.memory());
            if self.lazy_len > 0 {
                let input = std::slice::from_raw_parts_mut(self.lazy_input, self.lazy_len);
                // Cannot fail: the entry refused inputs over 4 GiB, and the map holds only its
                // fixed rows. Were it to, the input would be unmapped and its accesses fault.
                let _ = map.map_mut(input);
            }
            self.mem = self.lazy_map.write(map);
        }
    }

    /// Refresh the region table the generated code reads (a helper may have mapped more).
    pub fn refresh(&mut self) {
        // SAFETY: `mem` is the run's map (see `parts`).
        let (p, n) = unsafe { (*self.mem).region_table() };
        self.regions = p;
        self.nregions = n as u64;
        self.set_primary();
    }

    /// The program's context fields ([`crate::CtxFields`]), which [`Self::refresh_ctx`] reads.
    pub(crate) fn set_ctx_fields(&mut self, f: &crate::CtxFields) {
        self.ctx_offs = f.loads.as_ptr();
        self.ctx_n = f.loads.len() as u64;
        self.ctx_soffs = f.stores.as_ptr();
        self.ctx_sn = f.stores.len() as u64;
        self.ctx_pflags = f.proofs.flags.as_ptr();
        self.ctx_pcheck = f.proofs.flags.iter().any(|&x| x != 0);
        debug_assert!(f.proofs.flags.len() >= f.loads.len().min(CTX_SLOTS));
    }

    /// Read the context fields of the hinted loads, and the cells of the hinted stores, again
    /// if the context changed since they were read (a helper moved the packet, a store through
    /// the map wrote a field, or this is another context).
    #[inline]
    pub fn refresh_ctx(&mut self) {
        if self.ctx_n | self.ctx_sn == 0 {
            return;
        }
        // SAFETY: `mem` is the run's map (see `parts`), used by nothing else meanwhile.
        let mem = unsafe { &mut *self.mem };
        let stamp = mem.ctx_stamp();
        if stamp != self.ctx_stamp {
            self.read_ctx(mem, stamp);
        }
    }

    /// Keep no context field: the state of a run that maps no context (stamp 0).
    #[inline]
    pub fn forget_ctx(&mut self) {
        if self.ctx_stamp != 0 {
            self.ctx_stamp = 0;
            self.ctx_kept = 0;
            self.ctx_key = [MaybeUninit::new(u64::MAX); CTX_SLOTS];
            self.ctx_val = [MaybeUninit::new(0); CTX_SLOTS];
            self.ctx_skey = [MaybeUninit::new(u64::MAX); STORE_SLOTS];
            self.ctx_sptr = [MaybeUninit::new(0); STORE_SLOTS];
        }
    }

    #[cold]
    fn read_ctx(&mut self, mem: &mut MemoryMap<'static>, stamp: u64) {
        self.ctx_stamp = stamp;
        let field = |k: u64| (k as u32, size_of(k >> 32));
        // `ctx_kept` and `ctx_base` as the keys are read: the bits of the slots whose key is the
        // context's address (the first kept key's, less its offset) plus the field's offset.
        let (mut kept_bits, mut base) = (0u64, u64::MAX);
        for i in 0..(self.ctx_n as usize).min(CTX_SLOTS) {
            // SAFETY: `ctx_offs` points at the program's `ctx_n` fields (`set_ctx_fields`).
            let (off, size) = field(unsafe { *self.ctx_offs.add(i) });
            // Nothing is kept of a context whose loads may change on their own (stamp 0): every
            // access goes the usual way.
            let kept = if stamp == 0 {
                None
            } else {
                mem.ctx_field(off, size)
            };
            let (key, val) = kept.unwrap_or((u64::MAX, 0));
            self.ctx_key[i] = MaybeUninit::new(key);
            self.ctx_val[i] = MaybeUninit::new(val);
            if key != u64::MAX {
                let at = key.wrapping_sub(off as u64);
                if base == u64::MAX {
                    base = at;
                }
                kept_bits |= ((at == base) as u64) << i;
            }
        }
        self.ctx_kept = kept_bits;
        self.ctx_base = base;
        if self.ctx_pcheck {
            self.check_proof_fields();
        }
        for i in 0..(self.ctx_sn as usize).min(STORE_SLOTS) {
            // SAFETY: `ctx_soffs` points at the program's `ctx_sn` fields (`set_ctx_fields`).
            let (off, size) = field(unsafe { *self.ctx_soffs.add(i) });
            // Without kept values the code's stores could not keep them up to date, nor need
            // to: a context whose loads are not pure has its stores go the usual way too.
            let cell = if stamp == 0 {
                None
            } else {
                mem.ctx_store_cell(off, size)
            };
            let (key, ptr) = match cell {
                Some((addr, p)) => (addr, p as u64),
                None => (u64::MAX, 0),
            };
            self.ctx_skey[i] = MaybeUninit::new(key);
            self.ctx_sptr[i] = MaybeUninit::new(ptr);
        }
    }

    /// [`Self::refresh`] when the run's map has mapped a region since the table was read: a
    /// map only ever appends rows (its table's address or length then changes), so an
    /// unchanged table has unchanged rows.
    #[inline]
    pub fn refresh_if_mapped(&mut self) {
        // SAFETY: `mem` is the run's map (see `parts`).
        let (p, n) = unsafe { (*self.mem).region_table() };
        if p != self.regions || n as u64 != self.nregions {
            self.refresh();
        }
    }

    /// Read the primary region's row of the table into [`VmCtx::primary_base`] and
    /// [`VmCtx::primary_lt`].
    #[inline]
    pub fn set_primary(&mut self) {
        if (self.nregions as usize) <= PRIMARY_REGION {
            if !self.primary_none {
                self.primary_row = [0; 3];
                self.compute_primary();
            }
            return;
        }
        let row = {
            // SAFETY: `regions` points at `nregions` rows of three u64s (`#[repr(C)]` base, read
            // limit, write limit), the layout the generated code reads too.
            unsafe {
                let row = self.regions.add(PRIMARY_REGION * 24).cast::<u64>();
                [
                    row.read_unaligned(),
                    row.add(1).read_unaligned(),
                    row.add(2).read_unaligned(),
                ]
            }
        };
        self.set_primary_row(row);
    }

    /// Take `row` (base, read limit, write limit) as the primary region's, recomputing the
    /// bounds only when it differs from the last one. Compared word by word: an array compare
    /// loads a row just built in 16-byte pieces, which the CPU cannot forward from its 8-byte
    /// stores (a stall longer than a whole empty run).
    #[inline(always)]
    pub(crate) fn set_primary_row(&mut self, row: [u64; 3]) {
        let old = &self.primary_row;
        if old[0] != row[0] || old[1] != row[1] || old[2] != row[2] {
            self.primary_row = row;
            self.compute_primary();
        }
    }

    /// Ask the host for its array maps ([`Host::array_lookups`]), whose lookups the generated
    /// code then answers itself, and for the maps it may ask with the key's bytes
    /// ([`Host::key_lookups`]), for the runs until the next call.
    #[inline]
    pub(crate) fn fetch_arrays(&mut self, host: &mut dyn Host) {
        let (first, count) = host.array_lookups(&mut self.arrays);
        self.arrays_first = first;
        self.arrays_n = count.min(ARRAY_SLOTS) as u64;
        let (first, count) = host.key_lookups(&mut self.keys);
        self.keys_first = first;
        self.keys_n = count.min(KEY_SLOTS) as u64;
    }

    /// Fill [`VmCtx::rows`] for the program's row handles and what its proven accesses need
    /// of each (`gen::rows::Rows`), from the array table [`VmCtx::fetch_arrays`] fetched and
    /// the region table of the batch. A row is kept only when every value of the map holds the
    /// bytes its accesses need (at most its stride) inside one region, readable for loads and
    /// writable for stores: the accesses proven through its lookups then add
    /// [`ValueRow::host_off`] to their guest address with no clamp.
    pub(crate) fn fetch_rows(&mut self, handles: &[u64], needs: &[[u64; 2]]) {
        let lows = (1u64 << bpfsim_vm::memory::REGION_SHIFT) - 1;
        for (j, (&h, need)) in handles.iter().zip(needs).enumerate().take(ROW_SLOTS) {
            let i = h.wrapping_sub(self.arrays_first);
            let e = if i < self.arrays_n {
                self.arrays[i as usize]
            } else {
                ArrayLookup::default()
            };
            let index = e.base >> bpfsim_vm::memory::REGION_SHIFT;
            let row = (e.max_entries > 0 && index != 0 && index < self.nregions).then(|| {
                // SAFETY: `regions` points at `nregions` rows of three u64s (`#[repr(C)]`
                // base, read limit, write limit), and `index` is below `nregions`.
                unsafe {
                    let row = self.regions.add(index as usize * 24).cast::<u64>();
                    [
                        row.read_unaligned(),
                        row.add(1).read_unaligned(),
                        row.add(2).read_unaligned(),
                    ]
                }
            });
            // The end of the bytes the proven accesses reach in the last value, if inside
            // the region's `limit` bytes.
            let fits = |n: u64, limit: u64| {
                n == 0
                    || (e.max_entries - 1)
                        .checked_mul(e.stride)
                        .and_then(|x| x.checked_add(e.base & lows))
                        .and_then(|x| x.checked_add(n))
                        .is_some_and(|end| end <= limit)
            };
            self.rows[j] = match row {
                Some([host, read, write])
                    if need[0].max(need[1]) <= e.stride
                        && fits(need[0], read)
                        && fits(need[1], write) =>
                {
                    ValueRow {
                        max_entries: e.max_entries,
                        stride: e.stride,
                        base: e.base,
                        host_off: host.wrapping_add(e.base & lows).wrapping_sub(e.base),
                    }
                }
                _ => ValueRow::default(),
            };
        }
    }

    /// Have the code's next slot lookup ask the host for its table ([`fetch_slots`]): a new
    /// batch's host may not be the last one's, nor its maps as they were.
    #[inline]
    pub(crate) fn forget_slots(&mut self) {
        self.slots_n = 0;
        self.slots_stale = 1;
    }

    /// Ask the host for its arrays whose slots may be empty ([`Host::slot_lookups`]), whose
    /// lookups the generated code then answers itself, until the code calls the host otherwise
    /// ([`VmCtx::slots_stale`]) or the next batch. An entry whose bits lie past [`SLOT_WORDS`]
    /// is dropped (its lookups call the host): the code reads them without a bound.
    fn fetch_slots_from(&mut self, host: &mut dyn Host) {
        if self.slots_ready == 0 {
            // Once per context, by the first fetch: a context made for one run that looks up
            // no slot map does not pay for these bytes.
            self.slots.write([SlotLookup::default(); SLOT_MAPS]);
            self.slot_bits.write([0; SLOT_WORDS]);
            self.slots_ready = 1;
        }
        // SAFETY: both were written above, by this fetch or an earlier one (`slots_ready`).
        let (out, bits) = unsafe {
            (
                self.slots.assume_init_mut(),
                self.slot_bits.assume_init_mut(),
            )
        };
        let (first, count) = host.slot_lookups(out, bits);
        let n = count.min(SLOT_MAPS);
        for e in &mut out[..n] {
            let words = e.max_entries.div_ceil(64);
            let fits = e
                .word
                .checked_add(words)
                .is_some_and(|end| end <= SLOT_WORDS as u64);
            if !fits {
                *e = SlotLookup::default();
            }
        }
        self.slots_first = first;
        self.slots_n = n as u64;
        self.slots_stale = 0;
    }

    /// Ask the host whether its XDP edge adjustments are the context's
    /// ([`Host::xdp_adjust_by_context`]), for the runs until the next call.
    #[inline]
    pub(crate) fn fetch_adjust(&mut self, host: &mut dyn Host) {
        self.adjust_ctx = host.xdp_adjust_by_context() as u64;
    }

    /// Ask the host whether the code may make its `bpf_loop`s' calls ([`Host::inline_loop`]),
    /// for the runs until the next call.
    #[inline]
    pub(crate) fn fetch_loop(&mut self, host: &mut dyn Host) {
        self.inline_loop = host.inline_loop() as u64;
    }

    /// Ask the host where the values of each of `maps` (the program's value maps, by slot) are
    /// ([`Host::value_region`]), for the runs until the next call, and set their clamp bounds
    /// from the region's row; [`VmCtx::values_unknown`] when the host does not say for one,
    /// names no mapped region, or one under 8 bytes or under `needs` (for each slot, the bytes
    /// from the region's start that the code's accesses at constant addresses read and write:
    /// they take no clamp). The region table must be the runs' (`regions` set).
    pub(crate) fn fetch_values(&mut self, host: &mut dyn Host, maps: &[u32], needs: &[[u64; 2]]) {
        self.values_unknown = false;
        let lows = (1u64 << bpfsim_vm::memory::REGION_SHIFT) - 1;
        let bases = self.value_base.as_mut_ptr().cast::<u64>();
        let maxes = self.value_max.as_mut_ptr().cast::<u64>();
        for (slot, &map) in maps.iter().enumerate().take(VALUE_SLOTS) {
            let index = host
                .value_region(map)
                .filter(|a| a & lows == 0)
                .map(|a| a >> bpfsim_vm::memory::REGION_SHIFT)
                // Region 0 is never mapped: a host naming it names nothing.
                .filter(|&i| i != 0 && i < self.nregions);
            let row = index.map(|index| {
                // SAFETY: `regions` points at `nregions` rows of three u64s (`#[repr(C)]` base,
                // read limit, write limit), and `index` is below `nregions`.
                unsafe {
                    let row = self.regions.add(index as usize * 24).cast::<u64>();
                    [
                        row.read_unaligned(),
                        row.add(1).read_unaligned(),
                        row.add(2).read_unaligned(),
                    ]
                }
            });
            // A region every access size fits in shares one base. Any other (none, or under 8
            // bytes: a map whose values all fit in less, rare, and right either way) has the
            // runs interpreted, its bounds the sink's, which the code could use safely.
            let [need_read, need_write] = needs.get(slot).copied().unwrap_or([0; 2]);
            let [base, read, write] = match row {
                Some([base, read, write])
                    if read >= need_read.max(8) && write >= need_write.max(8) =>
                {
                    [base, read, write]
                }
                _ => {
                    self.values_unknown = true;
                    [VALUE_SINK.0.get() as u64, 8, 8]
                }
            };
            // SAFETY: `slot` is below `VALUE_SLOTS` and `8 * slot + 7` below `8 * VALUE_SLOTS`:
            // inside both arrays.
            unsafe {
                bases.add(slot).write(base);
                let m = maxes.add(8 * slot);
                m.write(read - 1);
                m.add(1).write(read - 2);
                m.add(2).write(read - 4);
                m.add(3).write(read - 8);
                m.add(4).write(write - 1);
                m.add(5).write(write - 2);
                m.add(6).write(write - 4);
                m.add(7).write(write - 8);
            }
        }
    }

    /// Unkeep every kept field the JIT's own packet proofs use (`VmCtx::ctx_pflags`) that does
    /// not hold what they need of it in the current primary region: such a field's load then
    /// hands the run to the interpreter, so no proven access uses it.
    #[cold]
    fn check_proof_fields(&mut self) {
        // Keys and values are written for the program's slots once a run has read them.
        if self.ctx_stamp == u64::MAX || self.ctx_stamp == 0 {
            return;
        }
        let [_, read, write] = self.primary_row;
        let lows = (1u64 << bpfsim_vm::memory::REGION_SHIFT) - 1;
        for i in 0..(self.ctx_n as usize).min(CTX_SLOTS) {
            // SAFETY: `ctx_pflags` points at one flag per kept load slot (`set_ctx_fields`).
            let flags = unsafe { *self.ctx_pflags.add(i) };
            if flags == 0 {
                continue;
            }
            // SAFETY: slots below `ctx_n` are written by `read_ctx` (the stamp says it ran).
            let (key, val) =
                unsafe { (self.ctx_key[i].assume_init(), self.ctx_val[i].assume_init()) };
            if key == u64::MAX {
                continue;
            }
            let end = val & lows;
            let ok = !self.primary_none
                && val >> bpfsim_vm::memory::REGION_SHIFT == PRIMARY_REGION as u64
                && (flags & crate::gen::bounds::END_READ == 0 || end <= read)
                && (flags & crate::gen::bounds::END_WRITE == 0 || end <= write);
            if !ok {
                self.ctx_key[i] = MaybeUninit::new(u64::MAX);
                self.ctx_kept &= !(1 << i);
            }
        }
    }

    #[cold]
    fn compute_primary(&mut self) {
        let [base, read, write] = self.primary_row;
        self.primary_none = self.primary_row == [0; 3];
        if self.ctx_pcheck && self.ctx_stamp != u64::MAX && self.ctx_stamp != 0 {
            // The fields were checked against another row: check them again now, and read
            // them afresh at the next refresh (a field unkept for the old row may suit this one).
            self.check_proof_fields();
            self.ctx_stamp = u64::MAX;
        }
        self.primary_base = base;
        for (i, size) in [1u64, 2, 4, 8].into_iter().enumerate() {
            self.primary_lt[i] = (read + 1).saturating_sub(size);
            self.primary_lt[4 + i] = (write + 1).saturating_sub(size);
        }
        let sink = CLAMP_SINK.0.get() as u64;
        for (k, len) in [read, write].into_iter().enumerate() {
            for (i, size) in [1u64, 2, 4, 8].into_iter().enumerate() {
                let fits = len >= size;
                self.clamp_base[4 * k + i] = if fits { base } else { sink };
                self.clamp_max[4 * k + i] = if fits { len - size } else { 0 };
            }
        }
    }

    /// The end of a callback's call the interpreter finished: its r0 (a tail call's or a
    /// helper's exit included, as the interpreter's callbacks end), or `None` with the trap
    /// recorded.
    fn finish_call(&mut self, result: Result<u64, bpfsim_vm::Trap>) -> Option<u64> {
        match result {
            Ok(r0) => Some(r0),
            Err(t) => {
                self.trap(t.code, t.detail, t.size);
                self.trap_pc = t.pc as u64;
                None
            }
        }
    }

    fn trap(&mut self, code: TrapCode, detail: u64, size: u8) {
        self.status = STOP_TRAP;
        self.trap_code = code as u64;
        self.trap_detail = detail;
        self.trap_size = size as u64;
    }
}

fn size_of(n: u64) -> Size {
    match n {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        _ => Size::DW,
    }
}

/// A load the inline check refused.
pub extern "C" fn load(vm: *mut VmCtx, addr: u64, size: u64) -> u64 {
    // SAFETY: called by generated code with its run's context.
    let (v, mem, _) = unsafe { VmCtx::parts(vm) };
    match mem.load(addr, size_of(size)) {
        Ok(x) => {
            v.status = OK;
            x
        }
        Err(f) => {
            v.trap(TrapCode::MemoryRead, f.addr, f.size);
            0
        }
    }
}

/// A store the inline check refused.
pub extern "C" fn store(vm: *mut VmCtx, addr: u64, size: u64, value: u64) {
    // SAFETY: called by generated code with its run's context.
    let (v, mem, _) = unsafe { VmCtx::parts(vm) };
    match mem.store(addr, size_of(size), value) {
        Ok(()) => {
            v.status = OK;
            // A context field may have been written.
            v.refresh_ctx();
        }
        Err(f) => v.trap(TrapCode::MemoryWrite, f.addr, f.size),
    }
}

/// Atomic read-modify-write; `op` is the instruction's immediate. Returns the old value.
pub extern "C" fn atomic(vm: *mut VmCtx, op: u64, addr: u64, size: u64, src: u64, r0: u64) -> u64 {
    // SAFETY: called by generated code with its run's context.
    let (v, mem, _) = unsafe { VmCtx::parts(vm) };
    let size = size_of(size);
    let mask = if size == Size::W {
        0xffff_ffff
    } else {
        u64::MAX
    };
    let op = crate::atomic_from_code(op);
    let r = match op {
        Some(AtomicOp::Add { .. }) => mem.update(addr, size, |o| o.wrapping_add(src) & mask),
        Some(AtomicOp::Or { .. }) => mem.update(addr, size, |o| o | (src & mask)),
        Some(AtomicOp::And { .. }) => mem.update(addr, size, |o| o & src & mask),
        Some(AtomicOp::Xor { .. }) => mem.update(addr, size, |o| (o ^ src) & mask),
        Some(AtomicOp::Xchg) => mem.update(addr, size, |_| src & mask),
        Some(AtomicOp::CmpXchg) => {
            mem.update(addr, size, |o| if o == r0 & mask { src & mask } else { o })
        }
        Some(AtomicOp::LoadAcquire) => mem.load(addr, size),
        Some(AtomicOp::StoreRelease) => mem.store(addr, size, src).map(|()| 0),
        None => {
            v.trap(TrapCode::Unsupported, 0xdb, 0);
            return 0;
        }
    };
    match r {
        Ok(old) => {
            v.status = OK;
            old
        }
        Err(f) => {
            let code = if f.write {
                TrapCode::MemoryWrite
            } else {
                TrapCode::MemoryRead
            };
            v.trap(code, f.addr, f.size);
            0
        }
    }
}

/// A helper call (`call id` or `callx`).
pub extern "C" fn call(
    vm: *mut VmCtx,
    id: u64,
    r1: u64,
    r2: u64,
    r3: u64,
    r4: u64,
    r5: u64,
    site: u64,
    depth: u64,
) -> u64 {
    // SAFETY: called by generated code with its run's context.
    let (v, mem, host) = unsafe { VmCtx::parts(vm) };
    let (pc, need) = split_site(site);
    let (depth, skipped) = split_depth(depth);
    // Where a stop happens, unless a callback says otherwise.
    v.trap_pc = pc;
    let Ok(id32) = u32::try_from(id) else {
        v.trap(TrapCode::UnknownHelper, id, 0);
        return 0;
    };
    let args = [r1, r2, r3, r4, r5];
    let out = match host.call_helper(id32, args, mem) {
        Ok(x) => {
            v.status = OK;
            x
        }
        // SAFETY: called by generated code with its run's context.
        Err(stop) => unsafe { after_stop(vm, stop, id, &args, pc, need, depth, skipped) },
    };
    // SAFETY: as above; no reference made before the helper is used after it (the callbacks'
    // code may have used the context meanwhile).
    let v = unsafe { &mut *vm };
    v.refresh_if_mapped();
    v.refresh_ctx();
    out
}

/// A helper that did not return a value: its stop, or the callbacks it asked for run (then the
/// budget after them checked, [`check_after_callbacks`]). Takes the context alone: the
/// callbacks' compiled code uses it, and the run's memory and host, through their pointers.
///
/// # Safety
/// `vm` is the live context of a run (as for the shims), of which the caller holds no
/// reference across this call.
#[cold]
#[allow(clippy::too_many_arguments)]
unsafe fn after_stop(
    vm: *mut VmCtx,
    stop: HelperStop,
    id: u64,
    args: &[u64],
    pc: u64,
    need: u64,
    depth: u64,
    skipped: u64,
) -> u64 {
    let (cb, calls) = {
        // SAFETY: the caller's contract; these references end before the callbacks run.
        let (v, mem, host) = unsafe { VmCtx::parts(vm) };
        let (func, calls) = match stopped(v, stop, id) {
            Stopped::Done(x) => return x,
            Stopped::Calls { func, calls } => (func, calls),
        };
        // SAFETY: `rt` is the JIT program's own, alive as long as the program.
        let rt = unsafe { &*v.rt };
        match rt.callback(func, depth + 1) {
            Some(cb) => (cb, calls),
            None => {
                let x = callbacks(v, mem, host, func, depth, calls, pc, id);
                check_after_callbacks(v, mem, host, x, args, pc, need, depth, skipped);
                return x;
            }
        }
    };
    // SAFETY: the caller's contract.
    let x = unsafe { compiled_callbacks(vm, cb, calls, pc) };
    // SAFETY: the caller's contract; the callbacks are done with the context.
    let (v, mem, host) = unsafe { VmCtx::parts(vm) };
    check_after_callbacks(v, mem, host, x, args, pc, need, depth, skipped);
    x
}

/// The call's slot and what the path after it needs of the budget, as the generated code
/// passes them in one argument (`slot | need << 32`).
fn split_site(site: u64) -> (u64, u64) {
    (site & 0xffff_ffff, site >> 32)
}

/// The call depth, and the registers (a mask by index) the generated code did not store for
/// [`check_after_callbacks`] because no later instruction reads them before writing them, as
/// the code passes them in one argument (`depth | skipped << 32`).
fn split_depth(depth: u64) -> (u64, u64) {
    (depth & 0xffff_ffff, depth >> 32)
}

/// After a helper's callbacks, which the interpreter ran with the run's budget: when what is
/// left cannot pay for the path to the next checkpoint (`need`), the interpreter finishes the
/// run from the instruction after the call, as the code's own checkpoints hand it over, and
/// the run stops with its result. The registers a shim is not passed (`args` holds r1 up) the
/// generated code stored in the context before the call, but for those in `skipped`, which no
/// path after the call reads before writing them: the interpreter gets 0 for those. Only here,
/// out of the code: a call
/// whose helper runs no callback leaves the budget as the last checkpoint found it, enough.
#[allow(clippy::too_many_arguments)]
#[cold]
fn check_after_callbacks(
    v: &mut VmCtx,
    mem: &mut MemoryMap<'static>,
    host: &mut dyn Host,
    r0: u64,
    args: &[u64],
    pc: u64,
    need: u64,
    depth: u64,
    skipped: u64,
) {
    if v.status != OK || v.left >= need {
        return;
    }
    let mut regs = [0u64; 11];
    regs[0] = r0;
    regs[1..=args.len()].copy_from_slice(args);
    let stored = v.regs.as_ptr().cast::<u64>();
    for (i, r) in regs.iter_mut().enumerate().skip(args.len() + 1) {
        if skipped & 1 << i != 0 {
            continue;
        }
        // SAFETY: the generated code wrote `regs[i]` for every register after the arguments it
        // passes before a call with a `need`, but those in `skipped` (`Gen::helper`); `i` is
        // below 11.
        *r = unsafe { stored.add(i).read() };
    }
    // SAFETY: `rt` is the JIT program's own, alive as long as the program.
    let interp = unsafe { &(*v.rt).interp };
    let callers = v.callers(depth);
    let out = interp.finish_budget(
        mem,
        host,
        regs,
        pc as usize + 1,
        depth as usize,
        &callers,
        v.left,
        v.budget,
    );
    v.left -= out.insns;
    match (out.result, out.tail_call) {
        (Ok(_), Some(t)) => {
            v.status = STOP_TAIL;
            v.status_value = t as u64;
        }
        (Ok(r0), None) => {
            v.status = STOP_EXIT;
            v.status_value = r0;
        }
        (Err(t), _) => {
            v.trap(t.code, t.detail, t.size);
            v.trap_pc = t.pc as u64;
        }
    }
}

/// `call 1`, `bpf_map_lookup_elem(r1, r2)`: [`Host::map_lookup_elem`], the helper without the
/// generic path's marshalling (five arguments, the helper table's dispatch).
pub extern "C" fn map_lookup(vm: *mut VmCtx, map: u64, key: u64, site: u64, depth: u64) -> u64 {
    // SAFETY: called by generated code with its run's context.
    let (v, mem, host) = unsafe { VmCtx::parts(vm) };
    let (pc, need) = split_site(site);
    let (depth, skipped) = split_depth(depth);
    v.trap_pc = pc;
    let out = match host.map_lookup_elem(map, key, mem) {
        Ok(x) => {
            v.status = OK;
            x
        }
        // SAFETY: called by generated code with its run's context.
        Err(stop) => unsafe {
            let id = bpfsim_vm::host::MAP_LOOKUP_ELEM as u64;
            after_stop(vm, stop, id, &[map, key], pc, need, depth, skipped)
        },
    };
    // SAFETY: as in `call`.
    let v = unsafe { &mut *vm };
    v.refresh_if_mapped();
    v.refresh_ctx();
    out
}

/// `call 1` on a map the host lists in [`Host::key_lookups`], its key at a place in the run's
/// stack that the generated code computed: [`Host::map_lookup_key`] with the key's bytes. No
/// memory map, no status: such a lookup maps nothing and cannot fail.
pub extern "C" fn map_lookup_key(vm: *mut VmCtx, map: u64, key: *const u8, len: u64) -> u64 {
    // SAFETY: called by generated code with its run's context, whose `host` is the run's and
    // used by nothing else meanwhile; `key` points at `len` bytes inside the run's stack buffer
    // (the code compared `len` with the room between the key's place and its frame's top),
    // which nothing writes during the call.
    unsafe {
        let host = &mut *(*(*vm).host).host;
        host.map_lookup_key(map, std::slice::from_raw_parts(key, len as usize))
    }
}

/// A slot lookup found the run's slot table stale ([`VmCtx::slots_stale`]): fetch it
/// ([`Host::slot_lookups`]). Reads no memory and runs nothing: no memory map, no status.
#[cold]
pub extern "C" fn fetch_slots(vm: *mut VmCtx) {
    // SAFETY: called by generated code with its run's context, whose `host` is the run's and
    // used by nothing else meanwhile; no other reference into the context is alive.
    unsafe {
        let host = &mut *(*(*vm).host).host;
        (*vm).fetch_slots_from(host);
    }
}

/// `call 54`, `bpf_xdp_adjust_meta(ctx, delta)`: [`Host::xdp_adjust_meta`], which runs nothing
/// and maps no region: its answer with the status [`OK`], the kept context fields read again
/// if it moved the edge (a new stamp); a host that does not answer leaves the status
/// [`NOT_ANSWERED`] (and nothing else changed), and the code then calls the helper's shim.
pub extern "C" fn xdp_adjust_meta(vm: *mut VmCtx, ctx: u64, delta: u64) -> u64 {
    adjust_edge(
        vm,
        delta,
        |mem, d| mem.adjust_ctx_meta(d),
        |host, mem| host.xdp_adjust_meta(ctx, delta, mem),
    )
}

/// `call 65`, `bpf_xdp_adjust_tail(ctx, delta)`: [`Host::xdp_adjust_tail`], which runs nothing
/// and maps no region (the bytes a growth uncovers are zeroed in the frame the run mapped): as
/// [`xdp_adjust_meta`], the kept context fields read again if the end moved (a new stamp),
/// which every proof of a packet access made after the call rests on (`data_end` loaded after
/// a call is a new value to `gen::bounds`).
pub extern "C" fn xdp_adjust_tail(vm: *mut VmCtx, ctx: u64, delta: u64) -> u64 {
    adjust_edge(
        vm,
        delta,
        |mem, d| mem.adjust_ctx_tail(d),
        |host, mem| host.xdp_adjust_tail(ctx, delta, mem),
    )
}

/// The edge adjustments' shared body: the context's own answer (`by_context`, with the delta as
/// the helper's `int`) when the host said its answers are the context's (one call fewer: the
/// failing call of every run of xdp_meta_tail's batches), else the host's (`by_host`); an
/// answer reads the kept context fields again, no answer leaves [`NOT_ANSWERED`].
#[inline(always)]
fn adjust_edge(
    vm: *mut VmCtx,
    delta: u64,
    by_context: impl FnOnce(&mut MemoryMap<'static>, i64) -> Option<i64>,
    by_host: impl FnOnce(&mut dyn Host, &mut MemoryMap<'static>) -> Option<u64>,
) -> u64 {
    // SAFETY: called by generated code with its run's context, whose `mem` (once built) and
    // `host` are the run's and used by nothing else meanwhile. Not through `parts`: the host
    // answers without filling or emptying a map's slot, so the slot table stays.
    unsafe {
        let v = &mut *vm;
        if v.mem.is_null() {
            v.materialize();
        }
        let mem = &mut *v.mem;
        let answer = if v.adjust_ctx != 0 {
            by_context(mem, delta as i32 as i64).map(|r0| r0 as u64)
        } else {
            by_host(&mut *(*v.host).host, mem)
        };
        match answer {
            Some(r0) => {
                v.status = OK;
                v.refresh_ctx();
                r0
            }
            None => {
                v.status = NOT_ANSWERED;
                0
            }
        }
    }
}

/// `call 12`, `bpf_tail_call(ctx, map, index)`: [`Host::tail_call`]. A failed call's `r0` with
/// the status [`OK`]; a taken one leaves the tail call's status (or a fault its trap), as the
/// helper's shim does; a host that does not answer leaves [`NOT_ANSWERED`] (and nothing else
/// changed), and the code then calls the helper's shim.
pub extern "C" fn tail_call(vm: *mut VmCtx, map: u64, index: u64) -> u64 {
    // SAFETY: called by generated code with its run's context, whose `mem` (once built) and
    // `host` are the run's and used by nothing else meanwhile. Not through `parts`: the host
    // answers without filling or emptying a map's slot, so the slot table stays.
    unsafe {
        let v = &mut *vm;
        if v.mem.is_null() {
            v.materialize();
        }
        let host = &mut *(*v.host).host;
        match host.tail_call(map, index, &mut *v.mem) {
            Some(Ok(r0)) => {
                v.status = OK;
                r0
            }
            Some(Err(stop)) => {
                // A tail call or a fault: nothing to call back.
                if let Stopped::Calls { .. } = stopped(v, stop, bpfsim_vm::host::TAIL_CALL as u64) {
                    v.trap(TrapCode::HelperFault, bpfsim_vm::host::TAIL_CALL as u64, 0);
                }
                0
            }
            None => {
                v.status = NOT_ANSWERED;
                0
            }
        }
    }
}

/// `call 51`, `bpf_redirect_map(map, key, flags)`: [`Host::redirect_map`], which needs no
/// memory map and cannot fail. Its answer with the status [`OK`]; a host that does not answer
/// leaves the status [`NOT_ANSWERED`] (and nothing else changed), and the code then calls the
/// helper's shim.
pub extern "C" fn redirect_map(vm: *mut VmCtx, map: u64, key: u64, flags: u64) -> u64 {
    // SAFETY: called by generated code with its run's context, whose `host` is the run's and
    // used by nothing else meanwhile; no other reference into the context is alive.
    unsafe {
        let host = &mut *(*(*vm).host).host;
        let answer = host.redirect_map(map, key, flags);
        let v = &mut *vm;
        match answer {
            Some(r0) => {
                v.status = OK;
                r0
            }
            None => {
                v.status = NOT_ANSWERED;
                0
            }
        }
    }
}

/// The calls of a callback a helper asks for.
enum Calls {
    /// `bpf_loop`: `(i, ctx)` for `i` from `next` below `n`.
    Loop { next: u64, n: u64, ctx: u64 },
    /// One argument set per call, from the row `next` on.
    Each {
        table: std::sync::Arc<[[u64; 5]]>,
        next: usize,
    },
}

impl Iterator for Calls {
    type Item = [u64; 5];

    #[inline]
    fn next(&mut self) -> Option<[u64; 5]> {
        match self {
            Calls::Loop { next, n, ctx } => {
                if *next >= *n {
                    return None;
                }
                *next += 1;
                Some([*next - 1, *ctx, 0, 0, 0])
            }
            Calls::Each { table, next } => {
                let row = table.get(*next).copied();
                *next += row.is_some() as usize;
                row
            }
        }
    }
}

/// How a helper that did not return a value goes on.
enum Stopped {
    /// The value the call gives, with the status (and trap) left in the context.
    Done(u64),
    /// The callback at `func` is to be called.
    Calls { func: u64, calls: Calls },
}

/// A helper that did not return a value: the status (and trap) it leaves in `v`, or the
/// callbacks it asked for.
#[cold]
fn stopped(v: &mut VmCtx, stop: HelperStop, id: u64) -> Stopped {
    match stop {
        HelperStop::Exit(x) => {
            v.status = STOP_EXIT;
            v.status_value = x;
        }
        HelperStop::TailCall(t) => {
            v.status = STOP_TAIL;
            v.status_value = t as u64;
        }
        HelperStop::Unknown => v.trap(TrapCode::UnknownHelper, id, 0),
        HelperStop::Fault => v.trap(TrapCode::HelperFault, id, 0),
        HelperStop::Memory(f) => {
            let code = if f.write {
                TrapCode::MemoryWrite
            } else {
                TrapCode::MemoryRead
            };
            v.trap(code, f.addr, f.size);
        }
        HelperStop::Loop {
            func,
            iterations,
            ctx,
        } => {
            let calls = Calls::Loop {
                next: 0,
                n: iterations as u64,
                ctx,
            };
            return Stopped::Calls { func, calls };
        }
        HelperStop::CallEach { func, calls } => {
            let calls = Calls::Each {
                table: calls,
                next: 0,
            };
            return Stopped::Calls { func, calls };
        }
    }
    Stopped::Done(0)
}

/// The interpreter runs the callbacks a helper asked for, with the run's exact budget (left in
/// `v.left` by the generated code and given back there): callbacks not compiled, or called
/// from a frame other than the one their code was compiled for.
#[allow(clippy::too_many_arguments)]
fn callbacks(
    v: &mut VmCtx,
    mem: &mut MemoryMap<'static>,
    host: &mut dyn Host,
    func: u64,
    depth: u64,
    mut calls: Calls,
    pc: u64,
    helper: u64,
) -> u64 {
    // SAFETY: `rt` is the JIT program's own, alive as long as the program.
    let interp = unsafe { &(*v.rt).interp };
    let mut left = v.left;
    let out = interp.run_callbacks(
        func,
        depth as usize,
        &mut calls,
        mem,
        host,
        &mut left,
        v.budget,
        pc as usize,
        helper,
    );
    v.left = left;
    match out {
        Ok(n) => {
            v.status = OK;
            n
        }
        Err(t) => {
            v.trap(t.code, t.detail, t.size);
            v.trap_pc = t.pc as u64;
            0
        }
    }
}

/// The callbacks a helper asked for, run by their compiled code `cb` (whose frame is one below
/// the helper's caller's), with the exact budget left, stopping after a call that returns
/// non-zero, as [`bpfsim_vm::Interpreter::run_callbacks`] does: the calls made by the code one
/// after another (it is entered again only after a call it handed over), a `bpf_loop`'s with
/// their index and context, a `for_each`'s from their table. A call returns r0 (a helper's exit inside it ends that call
/// only, with its value, a tail call with 0, as in the interpreter), or hands its last block
/// to the interpreter (the budget), or traps, which ends them all. Returns the number of calls
/// made, or 0 with the trap in the context.
///
/// # Safety
/// `vm` is the live context of a run (as for the shims), of which the caller holds no
/// reference across this call: the callbacks' code and the shims it calls use it.
unsafe fn compiled_callbacks(vm: *mut VmCtx, cb: &CompiledCallback, calls: Calls, pc: u64) -> u64 {
    // What the caller's code left for `check_after_callbacks` (the registers it did not pass),
    // the frame its own hand-overs end at and, when the caller is itself a callback's code, the
    // call it is making: the callbacks' code and shims use them all.
    let (regs, base, cb_i, cb_end, cb_args) = {
        // SAFETY: the caller's contract; the reference ends here.
        let v = unsafe { &mut *vm };
        let saved = (v.regs, v.base, v.cb_i, v.cb_end, v.cb_args);
        v.base = cb.depth;
        saved
    };
    let made = match calls {
        Calls::Loop { next, n, ctx } => {
            let args = |i| [i, ctx, 0, 0, 0];
            // SAFETY: the caller's contract; no table.
            unsafe { compiled_loop(vm, cb, next, n, &args, std::ptr::null()) }
        }
        Calls::Each { table, next } => {
            let table = &table[next.min(table.len())..];
            let args = |i| table[i as usize];
            // SAFETY: the caller's contract; `table` holds the `len` calls' arguments and
            // lives until the calls are done.
            unsafe { compiled_loop(vm, cb, 0, table.len() as u64, &args, table.as_ptr()) }
        }
    };
    // SAFETY: the caller's contract; the callbacks are done with the context.
    let v = unsafe { &mut *vm };
    v.regs = regs;
    v.base = base;
    v.cb_i = cb_i;
    v.cb_end = cb_end;
    v.cb_args = cb_args;
    match made {
        Some(made) => {
            v.status = OK;
            v.trap_pc = pc;
            made
        }
        None => {
            v.status = STOP_TRAP;
            0
        }
    }
}

/// The calls from index `next` below `n`, call `i` with `args(i)` (null `table`: a
/// `bpf_loop`'s, else `table` holds them all): the code makes them one after another until one
/// returns non-zero or hands its last block over, after which the code is entered again for
/// the next. The number of calls made, or `None` at a trap.
///
/// # Safety
/// As [`compiled_callbacks`], which has set [`VmCtx::base`] to the callback's frame; a
/// non-null `table` points at `n` argument sets, alive until this returns.
unsafe fn compiled_loop(
    vm: *mut VmCtx,
    cb: &CompiledCallback,
    mut next: u64,
    n: u64,
    args: &dyn Fn(u64) -> [u64; 5],
    table: *const [u64; 5],
) -> Option<u64> {
    while next < n {
        // SAFETY: the caller's contract.
        let (r0, last) = unsafe { compiled_entry(vm, cb, next, args(next), n, table) }?;
        if r0 != 0 {
            return Some(last + 1);
        }
        next = last + 1;
    }
    Some(n)
}

/// The code of `cb` entered for call `i` with `args`, which makes the calls from `i` below
/// `end` (a `bpf_loop`'s, whose `args[0]` is `i`, or those `table` holds, whose row `i` is
/// `args`): the r0 of the last call it made and that call's index
/// (`VmCtx::cb_i`), or `None` when it trapped (the trap and the budget left in the context). A
/// call the code handed over is finished by the interpreter.
///
/// # Safety
/// As [`compiled_loop`].
#[inline]
unsafe fn compiled_entry(
    vm: *mut VmCtx,
    cb: &CompiledCallback,
    i: u64,
    args: [u64; 5],
    end: u64,
    table: *const [u64; 5],
) -> Option<(u64, u64)> {
    let left = {
        // SAFETY: the caller's contract; the reference ends before the code runs.
        let v = unsafe { &mut *vm };
        v.args[2] = args[2];
        v.args[3] = args[3];
        v.args[4] = args[4];
        v.cb_i = i;
        v.cb_end = end;
        v.cb_args = table;
        v.left
    };
    let ret = (cb.entry)(vm, left, args[0], args[1]);
    // SAFETY: the caller's contract; the code has returned.
    let v = unsafe { &mut *vm };
    if ret.b != SLOW {
        v.left = ret.b;
        return Some((ret.a, v.cb_i));
    }
    if ret.a == TRAP {
        return None;
    }
    // `BUDGET` (a callback's code turns a tail call into the end of its call): the
    // interpreter finishes the call, in the frames the code had.
    let last = v.cb_i;
    // SAFETY: the caller's contract; the code returned `BUDGET`.
    let (v, out) = unsafe { finish_block(vm) };
    v.finish_call(out.result).map(|r0| (r0, last))
}

/// The rest of a `bpf_loop` whose calls the generated code made itself (its callback's
/// function called directly, [`Host::inline_loop`]) when that function did not return `(r0,
/// left)` but `(a, SLOW)`: a trap (`a` is [`TRAP`], recorded in the context), or a call handed
/// to the interpreter ([`BUDGET`]), which finishes it before the calls go on from the next
/// index below `n` with `ctx`, as [`compiled_loop`] makes them. Returns the number of calls
/// made with [`VmCtx::status`] [`OK`], or 0 with [`STOP_TRAP`]. The code set
/// [`VmCtx::base`] to the callback's frame and gives the caller's back after.
pub extern "C" fn loop_rest(vm: *mut VmCtx, a: u64, n: u64, ctx: u64, slot: u64) -> u64 {
    let (last, cb) = {
        // SAFETY: called by generated code with its run's context; the reference ends before
        // the callbacks' code runs again.
        let v = unsafe { &mut *vm };
        // SAFETY: `rt` is the JIT program's own, alive as long as the program.
        let rt = unsafe { &*v.rt };
        let cb = rt
            .callbacks
            .binary_search_by_key(&(slot as usize), |c| c.slot)
            .ok()
            .map(|i| &rt.callbacks[i]);
        match cb {
            Some(cb) if a == BUDGET => (v.cb_i, cb),
            _ => {
                // A trap: the code recorded it (a function the code calls is always listed).
                v.status = STOP_TRAP;
                return 0;
            }
        }
    };
    // SAFETY: the code returned `BUDGET`, with the run's map and host valid.
    let (v, out) = unsafe { finish_block(vm) };
    let made = match v.finish_call(out.result) {
        None => None,
        Some(r0) if r0 != 0 => Some(last + 1),
        Some(_) => {
            let args = |i| [i, ctx, 0, 0, 0];
            // SAFETY: as above; no table.
            unsafe { compiled_loop(vm, cb, last + 1, n, &args, std::ptr::null()) }
        }
    };
    // SAFETY: as above; the callbacks are done with the context.
    let v = unsafe { &mut *vm };
    // The interpreter's part may have mapped regions or written the context (`finish_block`
    // built the map if the run had none).
    v.refresh_if_mapped();
    v.refresh_ctx();
    match made {
        Some(made) => {
            v.status = OK;
            made
        }
        None => {
            v.status = STOP_TRAP;
            0
        }
    }
}

/// `ld_abs`/`ld_ind`: packet bytes through the host, as the interpreter does.
pub extern "C" fn ld_packet(vm: *mut VmCtx, offset: i64, size: u64, mode: u64) -> u64 {
    // SAFETY: called by generated code with its run's context.
    let (v, mem, host) = unsafe { VmCtx::parts(vm) };
    let sz = size_of(size);
    match host.load_packet(mem, offset, sz) {
        Ok(Some(x)) => {
            v.status = OK;
            x
        }
        Ok(None) => {
            v.status = STOP_EXIT;
            v.status_value = 0;
            0
        }
        Err(_) => {
            let size_code = match sz {
                Size::B => 0x10,
                Size::H => 0x08,
                Size::W => 0x00,
                Size::DW => 0x18,
            };
            v.trap(TrapCode::Unsupported, mode | size_code, 0);
            0
        }
    }
}

/// Zero `len` bytes at `at` of the run's stack: the part of a callee's frame a BPF-to-BPF call
/// clears (the interpreter clears the whole frame; see [`crate::Hints::frame_bytes`]). A plain
/// memset, with no context: the generated code computes the address from
/// [`VmCtx::stack_base`].
///
/// # Safety
/// `[at, at + len)` lies inside the run's stack buffer (`FRAME_SIZE * MAX_FRAMES` bytes from
/// `stack_base`), which the generated code guarantees: a frame at a depth below `MAX_FRAMES`,
/// `len` at most `FRAME_SIZE`, the bytes at the frame's top.
pub unsafe extern "C" fn zero_stack(at: *mut u8, len: u64) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::write_bytes(at, 0, len as usize) }
}

/// The interpreter executes what the budget left at the block at `budget_pc` pays for
/// (`left_at_block`), with the registers the code stored, in frame `budget_depth`, and stops
/// where it would have; `left` becomes what remains (everything before the block was counted,
/// the block's own instructions were not).
///
/// # Safety
/// `vm` is the live context of a run whose generated code just returned [`BUDGET`], its memory
/// map and host still valid.
unsafe fn finish_block<'v>(vm: *mut VmCtx) -> (&'v mut VmCtx, bpfsim_vm::Outcome) {
    // SAFETY: the caller's contract.
    let (v, mem, host) = unsafe { VmCtx::parts(vm) };
    // SAFETY: `rt` is the JIT program's own, alive as long as the program.
    let interp = unsafe { &(*v.rt).interp };
    // SAFETY: the generated code stores all eleven registers before returning `BUDGET`.
    let regs = unsafe { v.regs.assume_init() };
    let callers = v.callers(v.budget_depth);
    let out = interp.finish_budget(
        mem,
        host,
        regs,
        v.budget_pc as usize,
        v.budget_depth as usize,
        &callers,
        v.left_at_block,
        v.budget,
    );
    v.left = v.left_at_block - out.insns;
    (v, out)
}

/// The budget ran out inside the block at `budget_pc`, which the generated code could not pay
/// for whole (it returned [`BUDGET`]): the interpreter executes what the budget left at the
/// block (`left_at_block`) pays for, with the registers in `regs`, in frame `budget_depth`, and
/// stops where it would have. Returns what the generated code would have, had it finished the
/// run itself: `(r0, left)` for an exit, else `(status, SLOW)` with the context filled in.
///
/// # Safety
/// `vm` is the live context of the run whose generated code just returned [`BUDGET`] (as for
/// the shims: its memory map and host still valid).
pub unsafe fn budget_tail(vm: *mut VmCtx) -> Ret {
    // SAFETY: the caller's contract.
    let (v, out) = unsafe { finish_block(vm) };
    // The interpreter's part may have written the context through the map (a new stamp):
    // the batch's next runs read the fields it wrote, not the values kept before.
    v.refresh_ctx();
    let slow = |st| Ret { a: st, b: SLOW };
    match (out.result, out.tail_call) {
        (Ok(_), Some(t)) => {
            v.status_value = t as u64;
            slow(TAIL_CALL)
        }
        (Ok(r0), None) => Ret { a: r0, b: v.left },
        (Err(t), _) => {
            v.trap_code = t.code as u64;
            v.trap_pc = t.pc as u64;
            v.trap_detail = t.detail;
            v.trap_size = t.size as u64;
            slow(TRAP)
        }
    }
}
