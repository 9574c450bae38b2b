//! What a running program calls out to: helper functions, provided by the embedder.

use crate::memory::{MemFault, MemoryMap};

/// Why a helper did not return a value to the program.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum HelperStop {
    /// No helper with this id exists here.
    Unknown,
    /// End the whole program now with this `r0` (uBPF's `unwind` helper; a tail call's end).
    Exit(u64),
    /// Continue in this program (`bpf_tail_call`): the run ends and the caller starts it.
    TailCall(u32),
    /// `bpf_loop`: call the subprogram at `func` (an address `lddw rN, func` produced) with
    /// `(i, ctx)` for `i` in `0..iterations`, stopping after a call that returns non-zero; `r0`
    /// becomes the number of calls made.
    Loop {
        func: u64,
        iterations: u32,
        ctx: u64,
    },
    /// Call the subprogram at `func` once per argument set, in order, stopping after a call that
    /// returns non-zero; `r0` becomes the number of calls made (`bpf_for_each_map_elem`).
    /// Shared, so that a host can keep a table it gives again and again (an array's calls are
    /// the same at every call of the helper) instead of building one per call.
    CallEach {
        func: u64,
        calls: std::sync::Arc<[[u64; 5]]>,
    },
    /// A pointer argument did not lie in guest memory.
    Memory(MemFault),
    /// The helper rejected its arguments.
    Fault,
}

impl From<MemFault> for HelperStop {
    fn from(f: MemFault) -> Self {
        HelperStop::Memory(f)
    }
}

/// The helpers a program can call, by their UAPI id (`call imm`) or through `callx`.
pub trait Host {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop>;

    /// The legacy packet loads (`ldabs*`/`ldind*`): `size` bytes at `offset` from the start of
    /// the socket buffer's data, in host order (the kernel converts from network order).
    /// `Ok(None)` when the bytes lie outside the packet: the program then ends with `r0 = 0`.
    /// The default has no socket buffer, and the instruction traps as unsupported.
    fn load_packet(
        &mut self,
        mem: &mut MemoryMap<'_>,
        offset: i64,
        size: crate::isa::Size,
    ) -> Result<Option<u64>, HelperStop> {
        let _ = (mem, offset, size);
        Err(HelperStop::Unknown)
    }

    /// A new run of a `repeat` batch starts on this host (see
    /// [`crate::PreparedRuns::execute_repeat`]): forget what the host keeps per run (a test run's
    /// tail-call count, its redirect target). Nothing by default.
    fn begin_run(&mut self) {}

    /// `bpf_map_lookup_elem(map, key)` (helper 1): exactly `call_helper(1, [map, key, 0, 0, 0],
    /// mem)`, which the default is. A host may answer it without the generic dispatch: engines
    /// call it for every lookup (the hottest helper), so it must never differ from
    /// `call_helper`'s answer, side effects included.
    #[inline]
    fn map_lookup_elem(
        &mut self,
        map: u64,
        key: u64,
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        self.call_helper(MAP_LOOKUP_ELEM, [map, key, 0, 0, 0], mem)
    }

    /// The array maps whose lookups an engine may answer without calling the host, as the
    /// kernel's JIT inlines them (`map_gen_lookup`): fills `out[i]` for the map whose handle (the
    /// `r1` of `bpf_map_lookup_elem`) is `first + i`, and returns `(first, count)`. An entry must
    /// answer exactly what [`Self::map_lookup_elem`] would, side effects included (none), until
    /// the next call of this method (the runs of a batch, [`Self::begin_run`] included): a 4-byte key `index` read at `r2` finds `base + index * stride` when
    /// `index < max_entries`, else NULL; an entry whose `max_entries` is 0 is not such a map
    /// (its lookups call the host). The answers are guest addresses, so a wrong entry can give
    /// a program a wrong pointer, which its accesses then check, but never host memory. The
    /// default: none.
    fn array_lookups(&mut self, out: &mut [ArrayLookup]) -> (u64, usize) {
        let _ = out;
        (0, 0)
    }

    /// The arrays whose slots may be empty (device maps, socket maps, maps of maps) whose
    /// lookups an engine may answer without calling the host, as the kernel's verifier inlines
    /// an xskmap's (`map_gen_lookup`): fills `out[i]` for the map whose handle is `first + i`
    /// and the presence bits its entry names in `bits`, and returns `(first, count)`. A 4-byte
    /// key `index` read at `r2` finds `base + index * stride` when `index < max_entries` and
    /// bit `index % 64` of `bits[word + index / 64]` is set, else NULL; an entry whose
    /// `max_entries` is 0 is not such a map (its lookups call the host), nor one whose bits
    /// would not fit in `bits` (the engine checks). An entry must answer exactly what
    /// [`Self::map_lookup_elem`] would until the next call of this method or until the engine
    /// calls this host in any other way than [`Self::map_lookup_key`], [`Self::redirect_map`],
    /// [`Self::xdp_adjust_meta`], [`Self::xdp_adjust_tail`], [`Self::tail_call`] and
    /// [`Self::begin_run`] (a helper may fill or empty a slot: the engine then asks again
    /// before it answers another lookup so). The default: none.
    fn slot_lookups(&mut self, out: &mut [SlotLookup], bits: &mut [u64]) -> (u64, usize) {
        let _ = (out, bits);
        (0, 0)
    }

    /// The maps whose lookups an engine may ask with the key's bytes in hand
    /// ([`Self::map_lookup_key`]) rather than through [`Self::map_lookup_elem`]: fills `out[i]`
    /// with the key size of the map whose handle (the `r1` of `bpf_map_lookup_elem`) is `first +
    /// i`, 0 for a map whose lookups must go through [`Self::map_lookup_elem`], and returns
    /// `(first, count)`. It holds until the next call of this method (the runs of a batch,
    /// [`Self::begin_run`] included). The default: none.
    fn key_lookups(&mut self, out: &mut [u32]) -> (u64, usize) {
        let _ = out;
        (0, 0)
    }

    /// `bpf_map_lookup_elem(map, key)` on a map that [`Self::key_lookups`] lists, `key` the
    /// bytes at the key's address (as many as it says): exactly what [`Self::map_lookup_elem`]
    /// would answer for a key with these bytes, side effects included (an LRU map's reference
    /// mark). Such a lookup cannot fail: the engine read the key, which is the only thing the
    /// helper could fault on. Engines call it only for the maps listed; the default (for hosts
    /// that list none) finds nothing.
    fn map_lookup_key(&mut self, map: u64, key: &[u8]) -> u64 {
        let _ = (map, key);
        0
    }

    /// `bpf_redirect_map(map, key, flags)` (helper 51) without the generic dispatch: `Some(r0)`
    /// exactly when `call_helper(51, [map, key, flags, r4, r5], mem)` would return `Ok(r0)`
    /// without touching memory, with the same side effects (the redirect a run records), which
    /// happen only then; `None` leaves everything as it was, and the engine then calls
    /// `call_helper`. Engines may call it for every `call 51`, so it must never differ from
    /// `call_helper`. The default: `None`.
    #[inline]
    fn redirect_map(&mut self, map: u64, key: u64, flags: u64) -> Option<u64> {
        let _ = (map, key, flags);
        None
    }

    /// `bpf_xdp_adjust_meta(ctx, delta)` (helper 54) without the generic dispatch: `Some(r0)`
    /// exactly when `call_helper(54, [ctx, delta, r3, r4, r5], mem)` would return `Ok(r0)`,
    /// with the same effect on the context (its metadata edge moved, or nothing when the
    /// adjustment is refused), which happens only then, and without mapping a region or
    /// touching anything else; `None` leaves everything as it was, and the engine then calls
    /// `call_helper`. Engines may call it for every `call 54`, so it must never differ from
    /// `call_helper`. The default: `None`.
    #[inline]
    fn xdp_adjust_meta(&mut self, ctx: u64, delta: u64, mem: &mut MemoryMap<'_>) -> Option<u64> {
        let _ = (ctx, delta, mem);
        None
    }

    /// `bpf_xdp_adjust_tail(ctx, delta)` (helper 65) without the generic dispatch: `Some(r0)`
    /// exactly when `call_helper(65, [ctx, delta, r3, r4, r5], mem)` would return `Ok(r0)`,
    /// with the same effects (the packet's end moved and the bytes a growth uncovers zeroed,
    /// or nothing when the adjustment is refused), which happen only then, and without mapping
    /// a region or touching anything else; `None` leaves everything as it was, and the engine
    /// then calls `call_helper`. Engines may call it for every `call 65`, so it must never
    /// differ from `call_helper`. The default: `None`.
    #[inline]
    fn xdp_adjust_tail(&mut self, ctx: u64, delta: u64, mem: &mut MemoryMap<'_>) -> Option<u64> {
        let _ = (ctx, delta, mem);
        None
    }

    /// Whether this host's [`Self::xdp_adjust_meta`] and [`Self::xdp_adjust_tail`] are the
    /// mapped context's: each answers exactly `mem.adjust_ctx_meta(delta as i32 as i64)` (and
    /// `mem.adjust_ctx_tail(..)`) as `r0`, `None` where those are, with no other effect. An
    /// engine may then ask the context itself, one call fewer, until it asks this again (once
    /// per batch of runs, like [`Self::inline_loop`]). The default: no.
    fn xdp_adjust_by_context(&mut self) -> bool {
        false
    }

    /// `bpf_tail_call(ctx, map, index)` (helper 12) without the generic dispatch: `Some(answer)`
    /// exactly when `call_helper(12, [ctx, map, index, r4, r5], mem)` would return `answer`
    /// (`Ok(r0)`: the call failed and the program goes on; `Err(HelperStop::TailCall(id))`: the
    /// run goes on in program `id`; another `Err`: a fault), with the same effects, which
    /// happen only then; `None` leaves everything as it was, and the engine then calls
    /// `call_helper`. Engines may call it for every `call 12`, so it must never differ from
    /// `call_helper`. The default: `None`.
    #[inline]
    fn tail_call(
        &mut self,
        map: u64,
        index: u64,
        mem: &mut MemoryMap<'_>,
    ) -> Option<Result<u64, HelperStop>> {
        let _ = (map, index, mem);
        None
    }

    /// A number for the answers of [`Self::array_lookups`], [`Self::key_lookups`],
    /// [`Self::value_region`], [`Self::inline_loop`] and [`Self::xdp_adjust_by_context`]: while
    /// it stays the same, and is not 0, they do too, and an engine that asked them under it may
    /// skip asking again (the programs of a chain of tail calls, each entered once a run). No
    /// two hosts whose answers may differ should give the same number; one that does gets wrong
    /// guest addresses or flags from an engine, never host memory (engines derive host
    /// addresses from the memory map: again at every entry on another map, or after the map
    /// mapped a region, [`MemoryMap::serial`]). The default, 0: no promise, ask each time.
    fn tables_epoch(&self) -> u64 {
        0
    }

    /// Whether this host's `bpf_loop` (helper 181) is the simulator's, with no side effect:
    /// for `flags` (`r4`) 0 and `nr_loops` (`r1`, all 64 bits) from 1 to `1 << 23`,
    /// `call_helper(181, ..)` returns `Err(HelperStop::Loop { func: r2, iterations: r1, ctx:
    /// r3 })` and does nothing else. An engine may then make such a loop's calls itself,
    /// without asking the host, as the kernel's verifier inlines `bpf_loop` (other arguments
    /// still go to the host). Asked once per batch of runs, like [`Self::array_lookups`]. The
    /// default: no.
    fn inline_loop(&mut self) -> bool {
        false
    }

    /// Where the values of map `map` (the index its handle names, as the verifier numbers a
    /// program's maps) are during the runs until the next call of this method (the runs of a
    /// batch): the guest address of the one region (offset 0) that every pointer to one of its
    /// values this host gives a program points into (lookups, callbacks' arguments, direct value
    /// addresses), for a per-CPU map the run's CPU's. An engine then addresses the verifier's
    /// proven accesses to the map's values in that region without looking the address up. A
    /// wrong answer can make such an access read or write other bytes of guest memory (the
    /// region's), never host memory. `None` (the default): this host does not say, and an
    /// engine relying on it must not run the program's code that would (the interpreter then
    /// runs it).
    fn value_region(&mut self, map: u32) -> Option<u64> {
        let _ = map;
        None
    }
}

/// An array map as [`Host::array_lookups`] describes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArrayLookup {
    /// Indexes below it find a value; 0: not an array whose lookups may be answered so.
    pub max_entries: u64,
    /// Bytes from one value to the next.
    pub stride: u64,
    /// Guest address of value 0 (in the arena of the CPU the program runs on).
    pub base: u64,
}

/// An array whose slots may be empty as [`Host::slot_lookups`] describes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotLookup {
    /// Indexes below it may find a value; 0: not a map whose lookups may be answered so.
    pub max_entries: u64,
    /// Bytes from one slot's value to the next.
    pub stride: u64,
    /// Guest address of slot 0's value.
    pub base: u64,
    /// The first of the map's words of presence bits (slot `i` is filled when bit `i % 64` of
    /// word `word + i / 64` is set).
    pub word: u64,
}

/// The helper id of `bpf_map_lookup_elem`.
pub const MAP_LOOKUP_ELEM: u32 = 1;

/// The helper id of `bpf_redirect_map`.
pub const REDIRECT_MAP: u32 = 51;

/// The helper id of `bpf_xdp_adjust_meta`.
pub const XDP_ADJUST_META: u32 = 54;

/// The helper id of `bpf_tail_call`.
pub const TAIL_CALL: u32 = 12;

/// The helper id of `bpf_xdp_adjust_tail`.
pub const XDP_ADJUST_TAIL: u32 = 65;

/// The helper id of `bpf_loop`.
pub const LOOP: u32 = 181;

/// A host without helpers: every call traps with [`crate::TrapCode::UnknownHelper`].
#[derive(Default, Clone, Copy, Debug)]
pub struct NoHelpers;

impl Host for NoHelpers {
    fn call_helper(
        &mut self,
        _: u32,
        _: [u64; 5],
        _: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        Err(HelperStop::Unknown)
    }
}

/// The helpers the bpf_conformance suite expects (as uBPF provides them): id 5 is `unwind(x)`,
/// which returns `x`, and ends the program with `r0 = 0` when `x` is 0.
#[derive(Default, Clone, Copy, Debug)]
pub struct ConformanceHost;

impl ConformanceHost {
    pub const UNWIND: u32 = 5;
}

impl Host for ConformanceHost {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        _: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            Self::UNWIND if args[0] == 0 => Err(HelperStop::Exit(0)),
            Self::UNWIND => Ok(args[0]),
            _ => Err(HelperStop::Unknown),
        }
    }
}
