//! Running a program on a packet, as `BPF_PROG_TEST_RUN` does, in the simulator: build the
//! context and packet regions, run, and collect everything observable.

use bpfsim_vm::host::{ArrayLookup, SlotLookup};
use bpfsim_vm::isa::Size;
use bpfsim_vm::memory::{Context, MapError, MemoryMap, REGION_SHIFT};
use bpfsim_vm::spec::{MapType, ProgType};
use bpfsim_vm::{Executable, HelperStop, Host, Interpreter, Outcome, Trap, Vm};

use crate::ctx::skb::{SkbContext, SkbError, SkbFrame, SkbMd};
use crate::ctx::xdp::{self, XdpContext, XdpError, XdpFrame, XdpMd};
use crate::env::Env;
use crate::helpers::{csum, printk, strtol};
use crate::maps::{ArenaAccess, MapState, Maps};
use crate::object::Engine;
use crate::tier::JitSlot;
use crate::trace::TraceLines;
use std::sync::Arc;

/// Where a redirect sent the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `bpf_redirect(ifindex, flags)`.
    Ifindex { ifindex: u32, flags: u64 },
    /// `bpf_redirect_map(map, key, flags)`: map number (object order) and key.
    Map { map: usize, key: u32, flags: u64 },
}

/// A record a run sent to user space through a ring buffer or a perf event array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The map's name.
    pub map: String,
    /// The CPU's buffer, for perf event arrays.
    pub cpu: Option<u32>,
    pub data: Vec<u8>,
}

/// What one execution (tail calls included) left.
struct Executed {
    out: Outcome,
    redirect: Option<Redirect>,
    trace: TraceLines,
    chain: Vec<u32>,
    /// Whether the programs may have written to memory ([`MemoryMap::may_have_written`]).
    wrote: bool,
}

/// The inputs of one run besides the packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Input {
    pub xdp: XdpMd,
    /// The `__sk_buff` fields given to the run (the kernel's ctx_in), or `None` for none: the
    /// kernel then leaves `wire_len` 0, and with a context it defaults it to the packet length.
    pub skb: Option<SkbMd>,
}

/// Everything a run produced. The default is an empty result, to hand to
/// [`Runner::run_repeat_into`], which reuses its vectors' allocations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunResult {
    /// `r0` at exit (0 when the program trapped, as the kernel's `XDP_ABORTED`/`TC_ACT_OK`).
    pub retval: u64,
    /// The packet afterwards, as `BPF_PROG_TEST_RUN` returns it.
    pub data: Vec<u8>,
    pub redirect: Option<Redirect>,
    /// `bpf_printk` lines of this run.
    pub trace: TraceLines,
    /// Ring buffer and perf event records, in order per map, as a reader of every map would get
    /// them after the run.
    pub events: Vec<Event>,
    pub insns: u64,
    pub trap: Option<Trap>,
    /// The socket-buffer fields afterwards (mark, priority, cb, tc_classid ...), for skb types.
    /// Boxed: an XDP run's result is then small enough to move cheaply.
    pub skb: Option<Box<SkbContext>>,
    /// The programs entered by `bpf_tail_call`, in order: the ids their program array slots
    /// held ([`Runner::add_program`]; `LoadedObject::program_name_by_id` names them).
    pub tail_calls: Vec<u32>,
    /// The context as `BPF_PROG_TEST_RUN` hands it back in ctx_out: `struct xdp_md` (data and
    /// data_end as offsets from data_meta), or `struct __sk_buff` with the fields the kernel
    /// copies back (empty when the run was given no skb context).
    pub ctx_out: Vec<u8>,
    /// Host time of the run in nanoseconds, the simulator's own speed, not the kernel's: as the
    /// kernel's test run does, one clock reading before the first run and one after the last,
    /// divided by the number of runs (`repeat`); the runs' set-up (the frame, the regions) and
    /// results (the packet out) are included. 0 when the runner does not time runs
    /// ([`Runner::set_timing`]).
    pub duration_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Xdp(#[from] XdpError),
    #[error(transparent)]
    Skb(#[from] SkbError),
    #[error("cannot map the packet: {0}")]
    Map(#[from] MapError),
    #[error("program type {0} cannot be test-run on a packet")]
    ProgType(ProgType),
}

const EINVAL: u64 = -22i64 as u64;
const EFAULT: u64 = -14i64 as u64;
const ENOENT: u64 = -2i64 as u64;

/// Flags of the skb store and checksum helpers (UAPI `BPF_F_*`).
const F_RECOMPUTE_CSUM: u64 = 1;
const F_INVALIDATE_HASH: u64 = 1 << 1;
const F_HDR_FIELD_MASK: u64 = 0xf;
const F_PSEUDO_HDR: u64 = 1 << 4;
const F_MARK_MANGLED_0: u64 = 1 << 5;
const F_MARK_ENFORCE: u64 = 1 << 6;
const F_IPV6: u64 = 1 << 7;
/// What a zero UDP checksum becomes when it must be marked as computed (`CSUM_MANGLED_0`).
const CSUM_MANGLED_0: u16 = 0xffff;

/// Runs programs against one environment and one set of maps; reuses its VM across runs.
pub struct Runner {
    vm: Vm,
    pub env: Env,
    /// The maps programs see, with state kept across runs as in a loaded kernel program.
    pub maps: Maps,
    /// Programs a tail call can reach, by id (id `n` is `programs[n - 1]`): the values of
    /// program arrays.
    programs: Vec<TailTarget>,
    /// The engine a tail call's target runs under ([`Runner::set_tail_engine`]).
    tail_engine: Engine,
    overrides: std::collections::BTreeMap<u32, HelperOverride>,
    /// Guest-visible copies of keys for `bpf_for_each_map_elem`, whose callbacks get key pointers.
    key_scratch: Vec<u8>,
    /// The XDP frame's allocation, reused by every run.
    xdp_buf: Vec<u8>,
    /// Where `xdp_buf` may hold non-zero bytes: `Some(range)` after a run that could not write
    /// (only the packet it was given is there), `None` when any byte may be non-zero.
    xdp_dirty: Option<(usize, usize)>,
    /// Whether runs read the clock for [`RunResult::duration_ns`].
    timing: bool,
    /// The allocation of the helpers' map views, kept (empty) between runs.
    views: Vec<MapView<'static>>,
    /// The maps' `bpf_for_each_map_elem` tables, kept between runs ([`ForEachTable`]).
    for_each: Vec<ForEachTable>,
}

/// The calls `bpf_for_each_map_elem` asked for over a map, and what they were made of: the
/// same entries (`MapState::entries_generation`) and the same arguments give the same table and
/// keys, so a program calling the helper at every run builds them once.
#[derive(Clone)]
struct ForEachTable {
    generation: [u64; 2],
    /// The map handle, the keys' and values' guest addresses, the callback's context and the
    /// number of entries.
    of: [u64; 5],
    /// The keys as laid out in the scratch region.
    keys: Vec<u8>,
    calls: Arc<[[u64; 5]]>,
}

/// The most maps whose `bpf_for_each_map_elem` tables a runner keeps.
const FOR_EACH_TABLES: usize = 8;

/// A program a tail call can enter: its interpreter, and its compiled form when its object
/// has one.
struct TailTarget {
    interp: Interpreter,
    jit: Option<Arc<JitSlot>>,
}

impl TailTarget {
    /// What runs it under `engine`, and the slot to tell of its run under [`Engine::Auto`]
    /// (interpreted, or by the baseline tier's code). Compiled on its first call under [`Engine::Jit`], as the entry program
    /// is on its first run; one that cannot be compiled is interpreted, with the same results.
    fn executable(&self, engine: Engine) -> (&dyn Executable, Option<&Arc<JitSlot>>) {
        let Some(slot) = &self.jit else {
            return (&self.interp, None);
        };
        match engine {
            Engine::Interp => (&self.interp, None),
            Engine::Jit => match slot.get() {
                Ok(j) => (j, None),
                Err(_) => (&self.interp, None),
            },
            Engine::Baseline => match slot.baseline() {
                Ok(j) => (j, None),
                Err(_) => (&self.interp, None),
            },
            Engine::Auto => match slot.ready() {
                Some(j) => (j, None),
                None => match slot.warm() {
                    Some(b) => (b, Some(slot)),
                    None => (&self.interp, Some(slot)),
                },
            },
        }
    }
}

/// The most key bytes `bpf_for_each_map_elem` lays out for one map.
const KEY_SCRATCH_MAX: usize = 16 << 20;

/// A replacement for a helper: gets the five argument registers and guest memory, returns `r0`
/// (or stops the program, e.g. with `HelperStop::Fault`).
pub type HelperOverride =
    Box<dyn FnMut([u64; 5], &mut MemoryMap<'_>) -> Result<u64, HelperStop> + Send>;

/// Most tail calls one run may chain (the kernel's `MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALLS: u32 = 33;

/// `bpf_for_each_map_elem`, whose callbacks get value pointers.
const FOR_EACH_MAP_ELEM: u32 = 164;

impl Default for Runner {
    fn default() -> Self {
        Runner::new(Env::default())
    }
}

/// Regions every run maps first: the packet buffer, then the context; map arenas follow, in map
/// order, so that their guest addresses are the same in every run and can be linked as constants.
pub const PACKET_REGION: u64 = 9;
pub const CONTEXT_REGION: u64 = 10;
pub const FIRST_MAP_REGION: u64 = 11;
/// Map pointers (`lddw rN, map`) are handles in a region that never maps: dereferencing one
/// faults, as the verifier would refuse it.
pub const MAP_HANDLE_BASE: u64 = 0xffff_ff00 << 32;

/// Guest address of arena `arena` of map number `map` (in `maps` order).
pub fn arena_addr(maps: &Maps, map: usize, arena: usize) -> u64 {
    let before: usize = maps.iter().take(map).map(|m| m.arenas().len()).sum();
    (FIRST_MAP_REGION + before as u64 + arena as u64) << 32
}

impl Runner {
    pub fn new(env: Env) -> Runner {
        let maps = Maps::new(env.ncpus.max(1));
        Runner {
            vm: Vm::default(),
            env,
            maps,
            programs: Vec::new(),
            tail_engine: Engine::Interp,
            overrides: std::collections::BTreeMap::new(),
            key_scratch: Vec::new(),
            xdp_buf: Vec::new(),
            xdp_dirty: None,
            timing: true,
            views: Vec::new(),
            for_each: Vec::new(),
        }
    }

    /// Whether runs read the host's clock for [`RunResult::duration_ns`] (on by default; off,
    /// it is 0). Two clock readings per [`Runner::run`] (per batch with `repeat`) cost 60-80 ns
    /// in some virtual machines, more than the rest of a short program's run: a caller that does
    /// not read the duration (a replay, a benchmark timing runs itself) can switch them off.
    pub fn set_timing(&mut self, on: bool) {
        self.timing = on;
    }

    /// Whether runs read the host's clock ([`Runner::set_timing`]).
    pub fn timing(&self) -> bool {
        self.timing
    }

    /// Replace helper `id` (the kernel's number, e.g. 69 for `bpf_fib_lookup`) with `f` for
    /// every later run; [`Runner::restore_helper`] undoes it.
    pub fn override_helper(
        &mut self,
        id: u32,
        f: impl FnMut([u64; 5], &mut MemoryMap<'_>) -> Result<u64, HelperStop> + Send + 'static,
    ) {
        self.overrides.insert(id, Box::new(f));
    }

    pub fn restore_helper(&mut self, id: u32) {
        self.overrides.remove(&id);
    }

    /// Read every ring buffer and perf event array, as a user-space reader would after a run.
    /// Nothing is allocated unless there are records: this runs after every packet.
    #[inline]
    fn drain_events(&mut self) -> Vec<Event> {
        if !self.maps.iter().any(|m| is_event_map(m.map_type())) {
            return Vec::new();
        }
        self.drain_event_maps()
    }

    #[cold]
    fn drain_event_maps(&mut self) -> Vec<Event> {
        let ids: Vec<_> = self
            .maps
            .iter()
            .filter(|m| is_event_map(m.map_type()))
            .map(|m| (m.id(), m.map_type()))
            .collect();
        let mut out = Vec::new();
        for (id, ty) in ids {
            if ty == MapType::Ringbuf {
                let records = self.maps.ringbuf_consume(id).unwrap_or_default();
                if records.is_empty() {
                    continue;
                }
                let name = self.map_name(id);
                out.extend(records.into_iter().map(|data| Event {
                    map: name.clone(),
                    cpu: None,
                    data,
                }));
            } else {
                let records = self.maps.perf_drain(id).unwrap_or_default();
                if records.is_empty() {
                    continue;
                }
                let name = self.map_name(id);
                out.extend(records.into_iter().map(|r| Event {
                    map: name.clone(),
                    cpu: Some(r.cpu),
                    data: r.data,
                }));
            }
        }
        out
    }

    fn map_name(&self, id: crate::maps::MapId) -> String {
        self.maps
            .iter()
            .find(|m| m.id() == id)
            .map(|m| m.name().to_string())
            .unwrap_or_default()
    }

    /// Make a program reachable by tail calls; returns the id to store in a program array. It
    /// runs in the interpreter.
    pub fn add_program(&mut self, prog: Interpreter) -> u32 {
        self.programs.push(TailTarget {
            interp: prog,
            jit: None,
        });
        self.programs.len() as u32
    }

    /// [`Runner::add_program`] with the program's compiled form, which a tail call into it then
    /// runs when [`Runner::set_tail_engine`] says so.
    pub(crate) fn add_program_with_jit(&mut self, prog: Interpreter, jit: Arc<JitSlot>) -> u32 {
        self.programs.push(TailTarget {
            interp: prog,
            jit: Some(jit),
        });
        self.programs.len() as u32
    }

    /// The engine the targets of tail calls run under: the entry program's, so that a chain
    /// runs compiled throughout under the JIT (a target that cannot be compiled runs in the
    /// interpreter, with the same results). Under [`Engine::Auto`] each target is tiered on
    /// its own runs.
    pub fn set_tail_engine(&mut self, engine: Engine) {
        self.tail_engine = engine;
    }

    /// Where the program registered under `id` stands: compiled once a tail call entered it
    /// under the JIT (or it grew hot under `auto`); always interpreted when added by
    /// [`Runner::add_program`]. `None` for an id no program has.
    pub fn tail_tier(&self, id: u32) -> Option<crate::tier::Tier> {
        let t = self.programs.get((id as usize).checked_sub(1)?)?;
        Some(
            t.jit
                .as_ref()
                .map_or(crate::tier::Tier::Interpreted, |s| s.tier()),
        )
    }

    /// The instruction budget of each run.
    pub fn set_budget(&mut self, budget: u64) {
        self.vm.budget = budget;
    }

    /// `BPF_PROG_TEST_RUN` with `repeat`: the program runs `repeat` times (0 means 1), as the
    /// kernel's test-run loop does: the frame and context are set up once and every run gets
    /// the same ones, as the previous run left them (nothing restores the packet or the context
    /// between runs: a byte written, a head moved, an `__sk_buff` field set are what the next run
    /// sees), with a fresh stack and budget each. Maps persist as in the kernel. The result is
    /// the last run's (its return value, instructions, trap, tail calls, redirect) with the
    /// packet and context after all of them, the events and trace lines of all of them, and the
    /// average duration.
    pub fn run_repeat(
        &mut self,
        prog: &dyn Executable,
        prog_type: ProgType,
        packet: &[u8],
        input: Input,
        repeat: u32,
    ) -> Result<RunResult, RunError> {
        let mut out = RunResult::default();
        self.run_repeat_into(prog, prog_type, packet, input, repeat, &mut out)?;
        Ok(out)
    }

    /// [`Self::run_repeat`] writing the result into `out`, every field of it, reusing the
    /// allocations of its packet and context vectors: a loop of single runs (a pcap replay)
    /// passing the same `out` neither allocates them again nor moves a result through the
    /// calls. On an error `out` is left as it was or partly written.
    pub fn run_repeat_into(
        &mut self,
        prog: &dyn Executable,
        prog_type: ProgType,
        packet: &[u8],
        input: Input,
        repeat: u32,
        out: &mut RunResult,
    ) -> Result<(), RunError> {
        let n = repeat.max(1);
        let started = self.timing.then(std::time::Instant::now);
        match prog_type {
            ProgType::Xdp => self.run_xdp(prog, packet, input.xdp, n, out),
            ProgType::SocketFilter
            | ProgType::SchedCls
            | ProgType::SchedAct
            | ProgType::CgroupSkb => self.run_skb(prog, prog_type, packet, input.skb, n, out),
            other => Err(RunError::ProgType(other)),
        }?;
        out.duration_ns = match started {
            Some(t) => t.elapsed().as_nanos() as u64 / n as u64,
            None => 0,
        };
        Ok(())
    }

    pub fn run(
        &mut self,
        prog: &dyn Executable,
        prog_type: ProgType,
        packet: &[u8],
        input: Input,
    ) -> Result<RunResult, RunError> {
        self.run_repeat(prog, prog_type, packet, input, 1)
    }

    /// `n` runs with `buf` as the packet region and `ctx` as the context (`set_base` tells the
    /// context where its packet landed), mapped once: what XDP and skb runs share.
    fn execute<C: Context>(
        &mut self,
        prog: &dyn Executable,
        prog_type: ProgType,
        buf: &mut [u8],
        ctx: &mut C,
        set_base: fn(&mut C, u64),
        n: u32,
    ) -> Result<Executed, RunError> {
        let budget = self.vm.budget;
        let mut host = SimHost::new(&mut self.env, prog_type);
        // None for none: a lookup in an empty map was two dependent loads in every helper call.
        host.overrides = (!self.overrides.is_empty()).then_some(&mut self.overrides);
        host.maps = reuse_views(std::mem::take(&mut self.views));
        host.for_each = std::mem::take(&mut self.for_each);
        let mut mem = self.vm.memory();
        set_base(ctx, mem.map_mut(buf)?);
        let r1 = mem.map_context(ctx)?;
        let want = map_arenas(&mut self.maps, &mut mem, &mut host.maps)?;
        // No map with keys to lay out (no maps at all, most often): no region for them, so a
        // run maps one region fewer; nothing is mapped after it, so no address moves.
        if want > 0 {
            if self.key_scratch.len() < want {
                self.key_scratch.resize(want, 0);
            }
            host.key_scratch = (mem.map_mut(&mut self.key_scratch)?, want);
        }
        let mut chain = Vec::new();
        // The last run's outcome, which the engines write in place and whose fields are read
        // here (`PreparedRuns::execute_into`).
        let mut out = bpfsim_vm::Outcome::default();
        let mut runs = n;
        // Many runs: the entry program's runs keep what its engine prepares (the JIT's context).
        let mut prepared = if n > 1 { prog.prepare() } else { None };
        // And so do the tail calls' targets, each prepared at its first call of the batch (by
        // id): every run of a chain enters them again.
        let mut targets: Vec<(u32, Box<dyn bpfsim_vm::PreparedRuns + '_>)> = Vec::new();
        let mut target: Option<usize>;
        let args = [r1, 0, 0, 0, 0];
        loop {
            // Each run starts at the program with the whole budget and its own count of tail
            // calls; the trace lines of every run are kept.
            let mut current: &dyn Executable = prog;
            let mut entry = true;
            let mut used = 0;
            let mut counted: Option<&Arc<JitSlot>> = None;
            target = None;
            host.begin_run();
            chain.clear();
            loop {
                match &mut prepared {
                    // The runs up to the first tail call in one batch, set up once by the engine
                    // (the runs it did before the last one are done with).
                    Some(p) if entry => {
                        let k = p
                            .execute_repeat_into(&mut mem, &mut host, args, budget, runs, &mut out);
                        runs -= k - 1;
                    }
                    _ => match target.and_then(|i| targets.get_mut(i)) {
                        Some((_, p)) => {
                            p.execute_into(&mut mem, &mut host, args, budget - used, &mut out)
                        }
                        None => out = current.execute(&mut mem, &mut host, args, budget - used),
                    },
                }
                entry = false;
                if let Some(slot) = counted.take() {
                    // An interpreted target under `auto`: its own runs make it hot.
                    slot.ran(out.insns);
                }
                used += out.insns;
                out.insns = used;
                let Some((id, t)) = out
                    .tail_call
                    .and_then(|id| Some((id, self.programs.get((id as usize).wrapping_sub(1))?)))
                else {
                    break;
                };
                host.tail_calls += 1;
                chain.push(id);
                // A target prepared earlier in the batch is entered through its preparation
                // with no more asked; an interpreted target under `auto` is asked again each
                // time (it may have been compiled since), and never prepared.
                target = targets.iter().position(|(t, _)| *t == id);
                if target.is_none() {
                    let (next, count) = t.executable(self.tail_engine);
                    current = next;
                    counted = count;
                    if n > 1 && count.is_none() {
                        if let Some(p) = next.prepare() {
                            targets.push((id, p));
                            target = Some(targets.len() - 1);
                        }
                    }
                }
            }
            runs -= 1;
            if runs == 0 {
                break;
            }
        }
        let (redirect, trace) = (host.redirect, std::mem::take(&mut host.trace));
        self.views = reuse_views(std::mem::take(&mut host.maps));
        self.for_each = std::mem::take(&mut host.for_each);
        drop(host);
        let wrote = mem.may_have_written();
        drop(mem);
        Ok(Executed {
            out,
            redirect,
            trace,
            chain,
            wrote,
        })
    }

    fn run_xdp(
        &mut self,
        prog: &dyn Executable,
        packet: &[u8],
        md: XdpMd,
        n: u32,
        out: &mut RunResult,
    ) -> Result<(), RunError> {
        let mut buf = std::mem::take(&mut self.xdp_buf);
        let dirty = self.xdp_dirty.take();
        let mut ctx = match XdpFrame::refill(&mut buf, packet, md, dirty) {
            Ok(ctx) => ctx,
            Err(e) => {
                // Refused before the buffer was touched.
                (self.xdp_buf, self.xdp_dirty) = (buf, dirty);
                return Err(e.into());
            }
        };
        let e = self.execute(
            prog,
            ProgType::Xdp,
            &mut buf,
            &mut ctx,
            |c, a| c.frame_addr = a,
            n,
        );
        fill_vec(&mut out.data, &buf[ctx.meta..ctx.end]);
        self.xdp_buf = buf;
        let e = e?;
        if !e.wrote {
            // Nothing could move the packet's edges or write a byte: the frame holds zeros and
            // the packet given, where `refill` put it.
            self.xdp_dirty = Some((ctx.meta, ctx.end));
        }
        out.retval = e.out.result.unwrap_or(xdp::action::ABORTED as u64);
        out.redirect = e.redirect;
        out.trace = e.trace;
        out.events = self.drain_events();
        out.insns = e.out.insns;
        out.trap = e.out.result.err();
        out.skb = None;
        ctx.write_ctx_out(&mut out.ctx_out);
        out.tail_calls = e.chain;
        Ok(())
    }

    fn run_skb(
        &mut self,
        prog: &dyn Executable,
        prog_type: ProgType,
        packet: &[u8],
        md: Option<SkbMd>,
        n: u32,
        out: &mut RunResult,
    ) -> Result<(), RunError> {
        let given = md.is_some();
        let SkbFrame { mut buf, mut ctx } =
            SkbFrame::new(packet, prog_type, md.unwrap_or_default())?;
        if given {
            // With a context the kernel sets wire_len to skb->len when it is 0 (the length from
            // the network header for types that run at L3), and refuses one below that.
            let len = (ctx.end - ctx.data) as u32;
            if ctx.md.wire_len == 0 {
                ctx.md.wire_len = len;
            } else if ctx.md.wire_len < len {
                return Err(SkbError::WireLen {
                    wire_len: ctx.md.wire_len,
                    len,
                }
                .into());
            }
        }
        let e = self.execute(
            prog,
            prog_type,
            &mut buf,
            &mut ctx,
            |c, a| c.buf_addr = a,
            n,
        )?;
        let frame = SkbFrame { buf, ctx };
        let ctx_out = if given {
            frame.ctx.ctx_out()
        } else {
            Vec::new()
        };
        out.retval = e.out.result.unwrap_or(0);
        out.data = frame.data_out();
        out.redirect = e.redirect;
        out.trace = e.trace;
        out.events = self.drain_events();
        out.insns = e.out.insns;
        out.trap = e.out.result.err();
        out.skb = Some(Box::new(frame.ctx));
        out.ctx_out = ctx_out;
        out.tail_calls = e.chain;
        Ok(())
    }
}

/// Lend every map's arenas to the run (in map order, see [`arena_addr`]) and its state to the
/// helpers; returns the key scratch area `bpf_for_each_map_elem` may need (the most key bytes of
/// one map, at most [`KEY_SCRATCH_MAX`]).
fn map_arenas<'a>(
    maps: &'a mut Maps,
    mem: &mut MemoryMap<'a>,
    views: &mut Vec<MapView<'a>>,
) -> Result<usize, MapError> {
    let mut want = 0;
    for m in maps.iter_mut() {
        let (state, arenas) = m.split_mut();
        want = want.max(state.max_entries() as usize * state.key_size() as usize);
        let (mut first, mut count, mut len) = (0, 0, 0);
        for arena in arenas.iter_mut() {
            len = arena.len();
            let addr = mem.map_mut(arena)?;
            if count == 0 {
                first = addr;
            }
            count += 1;
        }
        views.push(MapView {
            state,
            first,
            count,
            len,
        });
    }
    Ok(want.min(KEY_SCRATCH_MAX))
}

/// Maps whose records a run hands to user space (`drain_events`).
fn is_event_map(t: MapType) -> bool {
    matches!(t, MapType::Ringbuf | MapType::PerfEventArray)
}

/// `out` holding `bytes`: in its allocation when it has one, else in a new one of the exact
/// size (a fresh result's empty vectors; growing one takes the slower path of `reserve`).
#[inline]
pub(crate) fn fill_vec(out: &mut Vec<u8>, bytes: &[u8]) {
    if out.capacity() == 0 {
        *out = bytes.to_vec();
    } else {
        out.clear();
        out.extend_from_slice(bytes);
    }
}

/// An emptied vector of map views with another lifetime, in the same allocation.
#[inline(always)]
fn reuse_views<'b>(mut views: Vec<MapView<'_>>) -> Vec<MapView<'b>> {
    views.clear();
    // Not collected in place (`into_iter().map(..).collect()`): that is a call, on every
    // run, whose result the run reloads through memory.
    let mut views = std::mem::ManuallyDrop::new(views);
    let (ptr, cap) = (views.as_mut_ptr(), views.capacity());
    // SAFETY: the allocation of an empty `Vec` of a type differing only in a lifetime (same
    // layout), from the same allocator, handed over whole (the old `Vec` is never dropped).
    unsafe { Vec::from_raw_parts(ptr.cast::<MapView<'b>>(), 0, cap) }
}

/// A map as the helpers of one run see it: its state, and where its arenas are in guest memory:
/// `count` consecutive regions from `first`, `len` bytes each.
struct MapView<'a> {
    state: &'a mut MapState,
    first: u64,
    count: usize,
    len: usize,
}

impl MapView<'_> {
    /// Guest address of arena `index`.
    fn base(&self, index: usize) -> Option<u64> {
        (index < self.count).then(|| self.first + ((index as u64) << REGION_SHIFT))
    }

    fn bases(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count).filter_map(|i| self.base(i))
    }

    /// The arenas, through guest memory.
    fn arenas<'m, 'a>(&self, mem: &'m mut MemoryMap<'a>) -> GuestArenas<'m, 'a> {
        GuestArenas {
            mem,
            first: self.first,
            count: self.count,
            len: self.len,
        }
    }
}

/// A map's arenas reached through guest memory, for map operations that write values.
struct GuestArenas<'m, 'a> {
    mem: &'m mut MemoryMap<'a>,
    first: u64,
    count: usize,
    len: usize,
}

impl ArenaAccess for GuestArenas<'_, '_> {
    fn arena_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        if index >= self.count {
            return None;
        }
        let base = self.first + ((index as u64) << REGION_SHIFT);
        self.mem.slice_mut(base, self.len).ok()
    }
}

/// The helpers' view of one run.
struct SimHost<'e, 'a> {
    env: &'e mut Env,
    prog_type: ProgType,
    redirect: Option<Redirect>,
    trace: TraceLines,
    maps: Vec<MapView<'a>>,
    tail_calls: u32,
    overrides: Option<&'e mut std::collections::BTreeMap<u32, HelperOverride>>,
    /// Guest address and length of the key scratch area.
    key_scratch: (u64, usize),
    /// Bytes a helper copies out of guest memory before writing guest memory, kept for the
    /// batch of runs so that such a call allocates only the first time.
    scratch: Vec<u8>,
    /// This host's [`Host::tables_epoch`]: one per host, whose maps are mapped and overrides
    /// set before its first run and stay so for all its runs.
    epoch: u64,
    /// The runner's `bpf_for_each_map_elem` tables, lent for the batch.
    for_each: Vec<ForEachTable>,
}

/// The next [`SimHost`]'s tables epoch (0 is no promise).
struct Guest<'m, 'a>(&'m MemoryMap<'a>);

impl printk::GuestRead for Guest<'_, '_> {
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.0.slice(addr, len).ok().map(<[u8]>::to_vec)
    }

    fn read_into(&self, addr: u64, out: &mut [u8]) -> bool {
        match self.0.slice(addr, out.len()) {
            Ok(b) => {
                out.copy_from_slice(b);
                true
            }
            Err(_) => false,
        }
    }
}

impl<'e> SimHost<'e, '_> {
    /// Whether the test overrides helper `id`: an engine's own way of answering it (an inline
    /// lookup, a direct call, `bpf_loop`'s calls from the code) must then not be taken.
    fn overridden(&self, id: u32) -> bool {
        self.overrides.as_ref().is_some_and(|o| o.contains_key(&id))
    }

    fn new(env: &'e mut Env, prog_type: ProgType) -> Self {
        SimHost {
            env,
            prog_type,
            redirect: None,
            trace: TraceLines::new(),
            maps: Vec::new(),
            tail_calls: 0,
            overrides: None,
            key_scratch: (0, 0),
            scratch: Vec::new(),
            for_each: Vec::new(),
            // Unique to this host (`Host::tables_epoch`): no locked add per run.
            epoch: bpfsim_vm::unique::next(),
        }
    }

    /// `bpf_tail_call(ctx, prog_array, index)`: on success the run continues in that program;
    /// an empty slot or too many chained calls fail, and the caller goes on.
    fn tail_call_in(&mut self, mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        let i = self.map_index(a[1])?;
        let m = &self.maps[i];
        let Some(off) = m.state.slot(a[2] as u32) else {
            return Ok(ENOENT);
        };
        if self.tail_calls >= MAX_TAIL_CALLS {
            return Ok(ENOENT);
        }
        let base = m.base(0).ok_or(HelperStop::Fault)?;
        let id = mem.slice(base + off as u64, 4)?;
        Err(HelperStop::TailCall(u32::from_le_bytes([
            id[0], id[1], id[2], id[3],
        ])))
    }

    /// The map a program-side map pointer names.
    fn map_index(&self, handle: u64) -> Result<usize, HelperStop> {
        let i = handle.wrapping_sub(MAP_HANDLE_BASE);
        if i < self.maps.len() as u64 {
            Ok(i as usize)
        } else {
            Err(HelperStop::Fault)
        }
    }

    fn key(&self, mem: &MemoryMap<'_>, i: usize, addr: u64) -> Result<Vec<u8>, HelperStop> {
        let n = self.maps[i].state.key_size() as usize;
        Ok(mem.slice(addr, n)?.to_vec())
    }

    /// `bpf_map_lookup_elem(map, key)`: a pointer into the map's arena for this CPU, or NULL.
    #[inline(always)]
    fn map_lookup(&mut self, mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        let i = self.map_index(a[0])?;
        // The key read in place: a copy would be an allocation per lookup, the hottest helper.
        let key = mem.slice(a[1], self.maps[i].state.key_size() as usize)?;
        self.lookup_in(i, key)
    }

    /// The lookup of `key` (of the map's key size) in map `i`, once the key is read.
    #[inline(always)]
    fn lookup_in(&mut self, i: usize, key: &[u8]) -> Result<u64, HelperStop> {
        let cpu = self.env.cpu;
        let m = &mut self.maps[i];
        Ok(match m.state.lookup(key, cpu) {
            Some(off) => m.base(m.state.arena_index(cpu)).ok_or(HelperStop::Fault)? + off as u64,
            None => 0,
        })
    }

    fn map_update(&mut self, mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        let i = self.map_index(a[0])?;
        let key = self.key(mem, i, a[1])?;
        let value = mem
            .slice(a[2], self.maps[i].state.value_size() as usize)?
            .to_vec();
        let cpu = self.env.cpu;
        let m = &mut self.maps[i];
        let mut arenas = m.arenas(mem);
        Ok(match m.state.update(&key, &value, a[3], cpu, &mut arenas) {
            Ok(()) => 0,
            Err(e) => e.errno.helper_ret(),
        })
    }

    /// The map whose arena holds guest address `ptr`, and the offset in that arena.
    fn locate(&self, ptr: u64) -> Option<(usize, usize)> {
        self.maps.iter().enumerate().find_map(|(i, m)| {
            m.bases()
                .find(|&b| ptr >= b && ptr - b < m.len as u64)
                .map(|b| (i, (ptr - b) as usize))
        })
    }

    fn ringbuf(
        &mut self,
        mem: &mut MemoryMap<'_>,
        id: u32,
        a: [u64; 5],
    ) -> Result<u64, HelperStop> {
        let ret = |r: Result<(), crate::maps::OpError>| match r {
            Ok(()) => 0,
            Err(e) => e.errno.helper_ret(),
        };
        Ok(match id {
            // output(map, data, size, flags), reserve(map, size, flags)
            130 | 131 => {
                let i = self.map_index(a[0])?;
                // The record's bytes go through the host's scratch buffer: they may be in the
                // ring's own arena, which the ring writes meanwhile.
                let mut data = std::mem::take(&mut self.scratch);
                data.clear();
                if id == 130 {
                    data.extend_from_slice(mem.slice(a[1], a[2] as u32 as usize)?);
                }
                let m = &mut self.maps[i];
                let base = m.base(0).ok_or(HelperStop::Fault)?;
                let mut arenas = m.arenas(mem);
                let Some(rb) = m.state.ringbuf_mut() else {
                    return Err(HelperStop::Fault);
                };
                let r = if id == 130 {
                    ret(rb.output(&data, a[3], &mut arenas))
                } else {
                    rb.reserve(a[1], a[2], &mut arenas)
                        .map_or(0, |off| base + off as u64)
                };
                self.scratch = data;
                r
            }
            // submit(data, flags), discard(data, flags)
            _ => {
                let (i, off) = self.locate(a[0]).ok_or(HelperStop::Fault)?;
                let m = &mut self.maps[i];
                let mut arenas = m.arenas(mem);
                let Some(rb) = m.state.ringbuf_mut() else {
                    return Err(HelperStop::Fault);
                };
                let _ = if id == 132 {
                    rb.submit(off, a[1], &mut arenas)
                } else {
                    rb.discard(off, a[1], &mut arenas)
                };
                0
            }
        })
    }

    /// `bpf_map_push_elem` (87), `bpf_map_pop_elem` (88), `bpf_map_peek_elem` (89).
    fn queue_op(
        &mut self,
        mem: &mut MemoryMap<'_>,
        id: u32,
        a: [u64; 5],
    ) -> Result<u64, HelperStop> {
        let i = self.map_index(a[0])?;
        let n = self.maps[i].state.value_size() as usize;
        let state = &mut *self.maps[i].state;
        let r = match id {
            87 => {
                let v = mem.slice(a[1], n)?.to_vec();
                state.push(&v, a[2])
            }
            _ => {
                let mut out = vec![0u8; n];
                let r = if id == 88 {
                    state.pop(&mut out)
                } else {
                    state.peek(&mut out)
                };
                if r.is_ok() {
                    mem.slice_mut(a[1], n)?.copy_from_slice(&out);
                }
                r
            }
        };
        Ok(r.map_or_else(|e| e.errno.helper_ret(), |()| 0))
    }

    /// `bpf_perf_event_output(ctx, map, flags, data, size)`: bits 32-51 of `flags` ask for that
    /// many bytes of the packet to follow the data, as the XDP and skb versions do.
    fn perf_output(&mut self, mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        const CTXLEN_SHIFT: u32 = 32;
        const CTXLEN_MASK: u64 = 0xfffff << CTXLEN_SHIFT;
        let i = self.map_index(a[1])?;
        let mut data = mem.slice(a[3], a[4] as u32 as usize)?.to_vec();
        let ctx_len = ((a[2] & CTXLEN_MASK) >> CTXLEN_SHIFT) as usize;
        if ctx_len > 0 {
            let any = mem.context_mut().ok_or(HelperStop::Fault)?;
            let (addr, avail) = if let Some(x) = any.downcast_ref::<XdpContext>() {
                (x.frame_addr + x.data as u64, x.end - x.data)
            } else if let Some(k) = any.downcast_ref::<SkbContext>() {
                (k.buf_addr + k.data as u64, k.end - k.data)
            } else {
                return Err(HelperStop::Fault);
            };
            if ctx_len > avail {
                return Ok(EFAULT);
            }
            data.extend_from_slice(mem.slice(addr, ctx_len)?);
        }
        let cpu = self.env.cpu;
        let Some(perf) = self.maps[i].state.perf_mut() else {
            return Err(HelperStop::Fault);
        };
        Ok(perf
            .output(a[2] & !CTXLEN_MASK, cpu, &data)
            .map_or_else(|e| e.errno.helper_ret(), |()| 0))
    }

    /// `bpf_for_each_map_elem(map, callback, ctx, flags)`: the callback gets (map, key, value,
    /// ctx) for each element in iteration order; the keys are laid out in guest memory first.
    // Out of line: inlined into `other_helper`, its tables' locals gave every helper call that
    // goes there a larger frame (`ringbuf_events` 1.35-1.45x -> 1.47-1.6x the kernel's time).
    #[inline(never)]
    fn for_each(&mut self, mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        let i = self.map_index(a[0])?;
        if a[3] != 0 {
            return Ok(EINVAL);
        }
        let cpu = self.env.cpu;
        let m = &self.maps[i];
        let ks = m.state.key_size() as usize;
        let base = m.base(m.state.arena_index(cpu)).ok_or(HelperStop::Fault)?;
        let n = m.state.entries_len();
        if n == 0 {
            return Err(HelperStop::CallEach {
                func: a[1],
                calls: Arc::new([]),
            });
        }
        let (scratch, room) = self.key_scratch;
        if n * ks > room {
            return Err(HelperStop::Fault);
        }
        // The entries' table and keys, kept per map while its entries (and the call's
        // arguments) stay the same: a program walking its maps at every run lays out no key
        // and builds no table but the first time. The keys are written again at every call
        // (another map's walk, or the program, may have written the scratch region).
        let generation = m.state.entries_generation();
        let of = [a[0], scratch, base, a[2], n as u64];
        if let Some(t) = self
            .for_each
            .iter()
            .find(|t| generation == Some(t.generation) && t.of == of)
        {
            mem.slice_mut(scratch, t.keys.len())?
                .copy_from_slice(&t.keys);
            return Err(HelperStop::CallEach {
                func: a[1],
                calls: t.calls.clone(),
            });
        }
        let mut keys = Vec::with_capacity(n * ks);
        let mut calls = Vec::with_capacity(n);
        let mut short = false;
        m.state.visit_entries(&mut |key, off| {
            let j = calls.len();
            if key.len() == ks && j < n {
                keys.extend_from_slice(key);
                calls.push([a[0], scratch + (j * ks) as u64, base + off as u64, a[2], 0]);
            } else {
                short = true;
            }
        });
        if short {
            return Err(HelperStop::Fault);
        }
        mem.slice_mut(scratch, keys.len())?.copy_from_slice(&keys);
        let calls: Arc<[[u64; 5]]> = calls.into();
        if let Some(generation) = generation {
            let table = ForEachTable {
                generation,
                of,
                keys,
                calls: calls.clone(),
            };
            // One table per map (by handle), a few maps at most.
            let full = self.for_each.len() >= FOR_EACH_TABLES;
            match self.for_each.iter().position(|t| t.of[0] == a[0]) {
                Some(k) => self.for_each[k] = table,
                None if full => self.for_each[0] = table,
                None => self.for_each.push(table),
            }
        }
        Err(HelperStop::CallEach { func: a[1], calls })
    }

    /// `bpf_redirect_map(map, key, flags)`: XDP_REDIRECT when the slot is filled, else the action
    /// in the low bits of `flags`.
    fn redirect_map(&mut self, mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        let i = self.map_index(a[0])?;
        let _ = mem;
        Ok(self.redirect_in(i, a[1], a[2]))
    }

    /// `bpf_redirect_map` on map `i`, a map of the run: it reads no memory and cannot fail.
    /// As the kernel's: flags past the action bits (and, on a devmap, `BPF_F_BROADCAST` and
    /// `BPF_F_EXCLUDE_INGRESS`) are `XDP_ABORTED` with nothing recorded; a missed lookup
    /// answers the action in the flags' low bits and forgets any redirect recorded before it
    /// (the last call decides); a broadcast needs no entry under the key.
    #[inline(always)]
    fn redirect_in(&mut self, i: usize, key: u64, flags: u64) -> u64 {
        const ACTIONS: u64 = 0x3;
        const BROADCAST: u64 = 1 << 3;
        const EXCLUDE_INGRESS: u64 = 1 << 4;
        let allowed = match self.maps[i].state.map_type() {
            MapType::Devmap | MapType::DevmapHash => ACTIONS | BROADCAST | EXCLUDE_INGRESS,
            _ => ACTIONS,
        };
        if flags & !allowed != 0 {
            return xdp::action::ABORTED as u64;
        }
        // The kernel's lookup takes the key as a u32.
        let key = key as u32;
        let cpu = self.env.cpu;
        // Array-like maps (devmap, cpumap, xskmap) by slot; devmap_hash by key.
        if flags & BROADCAST != 0 || self.maps[i].state.redirect_target(key, cpu) {
            self.redirect = Some(Redirect::Map { map: i, key, flags });
            xdp::action::REDIRECT as u64
        } else {
            self.redirect = None;
            flags & ACTIONS
        }
    }

    fn map_delete(&mut self, mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        let i = self.map_index(a[0])?;
        let key = self.key(mem, i, a[1])?;
        Ok(match self.maps[i].state.delete(&key) {
            Ok(()) => 0,
            Err(e) => e.errno.helper_ret(),
        })
    }

    /// `trace_printk`/`trace_vprintk`: format `(a[0], a[1])` with `args`; the line goes to this
    /// run's trace and the environment's, and the helper returns its length (or `-EINVAL`).
    fn printk(
        &mut self,
        mem: &MemoryMap<'_>,
        a: [u64; 5],
        args: &[u64],
        max_args: usize,
    ) -> Result<u64, HelperStop> {
        let fmt = mem.slice(a[0], a[1] as u32 as usize)?;
        // Formatted in place at the end of the run's lines, then copied to the environment's:
        // neither allocates once their buffers have grown.
        let line = self
            .trace
            .push_formatted(|buf| printk::format_into(buf, fmt, args, max_args, &Guest(mem)));
        Ok(match line {
            Ok(n) => {
                self.env.trace.push_last_of(&self.trace);
                n as u64
            }
            Err(_) => EINVAL,
        })
    }

    fn is_skb(&self) -> bool {
        self.prog_type != ProgType::Xdp
    }

    #[inline(never)]
    fn xdp_adjust(
        &mut self,
        mem: &mut MemoryMap<'_>,
        id: u32,
        delta: i64,
    ) -> Result<u64, HelperStop> {
        match id {
            // The metadata's edge moves alone, no bytes touched: one call into the context,
            // which changes its stamp only when the edge moved. The copies and the downcast
            // below were half of a failing call's cost (xdp_meta_tail's every run).
            54 => {
                return mem
                    .adjust_ctx_meta(delta)
                    .map(|r0| r0 as u64)
                    .ok_or(HelperStop::Fault)
            }
            // Likewise the end, the bytes a growth uncovers zeroed through the map; the JIT's
            // direct call (`Host::xdp_adjust_tail`) is this very call.
            65 => {
                return mem
                    .adjust_ctx_tail(delta)
                    .map(|r0| r0 as u64)
                    .ok_or(HelperStop::Fault)
            }
            _ => {}
        }
        // Adjusted on a copy, read without `context_mut`: only an adjustment that moved an
        // edge changes the context (and its stamp, so that the JIT reads the fields it keeps
        // again). A refused one (a head past the frame) leaves both, as the kernel leaves the
        // buffer: every repeated run of a program whose adjustment fails paid for a new stamp
        // and a read of every kept field.
        let Some(old) = mem.context().and_then(|c| c.downcast_ref::<XdpContext>()) else {
            return Err(HelperStop::Fault);
        };
        let before = old.clone();
        let mut c = old.clone();
        let ret = c.adjust_head(mem.slice_mut(c.frame_addr, xdp::FRAME_END)?, delta);
        if c != before {
            if let Some(ctx) = mem
                .context_mut()
                .and_then(|x| x.downcast_mut::<XdpContext>())
            {
                *ctx = c;
            }
        }
        Ok(ret as u64)
    }

    /// Where the socket buffer's packet lies: its guest address and length. Read through
    /// [`MemoryMap::packet`], which keeps the context's stamp: through `context_mut` every skb
    /// helper call made the JIT read the fields it keeps again (and take a new stamp, an atomic
    /// increment), most of the cost of a `bpf_skb_load_bytes`; and a downcast through
    /// `MemoryMap::context` is two calls and a compare of the type's 16-byte id, returned
    /// through memory (where a sixth of the helper's samples sat). Callers refuse XDP
    /// themselves: its context has a packet too.
    #[inline]
    fn skb(mem: &MemoryMap<'_>) -> Result<(u64, usize), HelperStop> {
        mem.packet().ok_or(HelperStop::Fault)
    }

    /// `bpf_skb_load_bytes(skb, offset, to, len)`: bytes from `skb->data + offset`.
    fn skb_load_bytes(mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        let (pkt, pkt_len) = Self::skb(mem)?;
        let (offset, len) = (a[1] as u32 as usize, a[3] as u32 as usize);
        let inside = offset.checked_add(len).is_some_and(|e| e <= pkt_len);
        match inside {
            true if offset <= i32::MAX as usize => {
                // Guest to guest: a buffer in between was an allocation per call.
                mem.copy(a[2], pkt + offset as u64, len)?;
                Ok(0)
            }
            _ => {
                mem.slice_mut(a[2], len)?.fill(0);
                Ok(EFAULT)
            }
        }
    }
}

impl SimHost<'_, '_> {
    /// `bpf_skb_store_bytes(skb, offset, from, len, flags)`.
    fn skb_store_bytes(mem: &mut MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        if a[4] & !(F_RECOMPUTE_CSUM | F_INVALIDATE_HASH) != 0 {
            return Ok(EINVAL);
        }
        let (pkt, pkt_len) = Self::skb(mem)?;
        let (offset, len) = (a[1] as u32 as u64, a[3] as u32 as u64);
        if offset > i32::MAX as u64 {
            return Ok(EFAULT);
        }
        // Measured on Linux 6.18: past the end of the packet is -EFAULT.
        if offset + len > pkt_len as u64 {
            return Ok(EFAULT);
        }
        mem.copy(pkt + offset, a[2], len as usize)?;
        Ok(0)
    }

    /// `bpf_csum_diff(from, from_size, to, to_size, seed)`.
    fn csum_diff(mem: &MemoryMap<'_>, a: [u64; 5]) -> Result<u64, HelperStop> {
        // Both read in place: copies were two allocations per call.
        let from = mem.slice(a[0], a[1] as u32 as usize)?;
        let to = mem.slice(a[2], a[3] as u32 as usize)?;
        Ok(csum::csum_diff(from, to, a[4] as u32) as u64)
    }

    /// `bpf_l3_csum_replace` (id 10) and `bpf_l4_csum_replace` (id 11) on a socket buffer the
    /// test run built with `CHECKSUM_NONE`, where the pseudo-header flag changes nothing.
    fn csum_replace(mem: &mut MemoryMap<'_>, l4: bool, a: [u64; 5]) -> Result<u64, HelperStop> {
        let flags = a[4];
        let allowed = if l4 {
            F_HDR_FIELD_MASK | F_PSEUDO_HDR | F_MARK_MANGLED_0 | F_MARK_ENFORCE | F_IPV6
        } else {
            F_HDR_FIELD_MASK
        };
        if flags & !allowed != 0 {
            return Ok(EINVAL);
        }
        let (pkt, pkt_len) = Self::skb(mem)?;
        let offset = a[1] as u32 as usize;
        if offset > 0xffff || offset & 1 != 0 || offset + 2 > pkt_len {
            return Ok(EFAULT);
        }
        let at = pkt + offset as u64;
        let field = mem.slice(at, 2)?;
        let sum = u16::from_le_bytes([field[0], field[1]]);
        let mangled0 = l4 && flags & F_MARK_MANGLED_0 != 0;
        if mangled0 && flags & F_MARK_ENFORCE == 0 && sum == 0 {
            return Ok(0);
        }
        let (from, to) = (a[2], a[3]);
        let mut new = match flags & F_HDR_FIELD_MASK {
            0 => csum::csum_replace_by_diff(sum, to as u32),
            2 => csum::csum_replace(sum, from as u16 as u32, to as u16 as u32),
            4 => csum::csum_replace(sum, from as u32, to as u32),
            _ => return Ok(EINVAL),
        };
        if mangled0 && new == 0 {
            new = CSUM_MANGLED_0;
        }
        mem.slice_mut(at, 2)?.copy_from_slice(&new.to_le_bytes());
        Ok(0)
    }
}

impl Host for SimHost<'_, '_> {
    /// What `Runner::execute` resets before every run of a `repeat` batch.
    fn begin_run(&mut self) {
        self.tail_calls = 0;
        self.redirect = None;
    }

    fn array_lookups(&mut self, out: &mut [ArrayLookup]) -> (u64, usize) {
        // An override of the lookup answers every lookup itself.
        if self.overridden(bpfsim_vm::host::MAP_LOOKUP_ELEM) {
            return (0, 0);
        }
        // Written straight into `out`, once per batch of runs: a table kept here would be an
        // allocation per test run (a single run's batch paid 30 ns for it).
        let cpu = self.env.cpu;
        let n = self.maps.len().min(out.len());
        for (o, m) in out.iter_mut().zip(&self.maps) {
            let base = m.base(m.state.arena_index(cpu));
            *o = match (m.state.array_layout(), base) {
                (Some((max_entries, stride)), Some(base)) => ArrayLookup {
                    max_entries: max_entries as u64,
                    stride,
                    base,
                },
                _ => ArrayLookup::default(),
            };
        }
        (MAP_HANDLE_BASE, n)
    }

    fn slot_lookups(&mut self, out: &mut [SlotLookup], bits: &mut [u64]) -> (u64, usize) {
        if self.overridden(bpfsim_vm::host::MAP_LOOKUP_ELEM) {
            return (0, 0);
        }
        // Each listed map's bits after the last one's; a map whose bits do not fit in what is
        // left is not listed (its lookups call the host).
        let cpu = self.env.cpu;
        let n = self.maps.len().min(out.len());
        let mut word = 0;
        for (o, m) in out.iter_mut().zip(&self.maps) {
            let base = m.base(m.state.arena_index(cpu));
            let room = bits.get_mut(word..).unwrap_or_default();
            *o = match (base, m.state.slot_layout(room)) {
                (Some(base), Some((max_entries, stride))) if max_entries > 0 => {
                    let at = word as u64;
                    word += (max_entries as usize).div_ceil(64);
                    SlotLookup {
                        max_entries: max_entries as u64,
                        stride,
                        base,
                        word: at,
                    }
                }
                _ => SlotLookup::default(),
            };
        }
        (MAP_HANDLE_BASE, n)
    }

    fn key_lookups(&mut self, out: &mut [u32]) -> (u64, usize) {
        if self.overridden(bpfsim_vm::host::MAP_LOOKUP_ELEM) {
            return (0, 0);
        }
        // Every map whose lookup has an arena to point into: reading the key is then the only
        // way `map_lookup` can fail.
        let cpu = self.env.cpu;
        let n = self.maps.len().min(out.len());
        for (o, m) in out.iter_mut().zip(&self.maps) {
            *o = match m.base(m.state.arena_index(cpu)) {
                Some(_) => m.state.key_size(),
                None => 0,
            };
        }
        (MAP_HANDLE_BASE, n)
    }

    #[inline]
    fn map_lookup_key(&mut self, map: u64, key: &[u8]) -> u64 {
        // Not listed (an engine's mistake): the helper's answer to a handle that names no map
        // is a fault, which this method cannot give; NULL is the nearest.
        let Ok(i) = self.map_index(map) else {
            return 0;
        };
        // `lookup_in` without its `Result`; a key of another size finds nothing
        // (`MapState::lookup`).
        let cpu = self.env.cpu;
        let m = &mut self.maps[i];
        match m.state.lookup(key, cpu) {
            Some(off) => m
                .base(m.state.arena_index(cpu))
                .map_or(0, |b| b + off as u64),
            None => 0,
        }
    }

    fn tail_call(
        &mut self,
        map: u64,
        index: u64,
        mem: &mut MemoryMap<'_>,
    ) -> Option<Result<u64, HelperStop>> {
        // An override answers the helper itself.
        if self.overridden(bpfsim_vm::host::TAIL_CALL) {
            return None;
        }
        Some(self.tail_call_in(mem, [0, map, index, 0, 0]))
    }

    #[inline]
    fn redirect_map(&mut self, map: u64, key: u64, flags: u64) -> Option<u64> {
        // An override answers the helper itself; a handle that names no map is the helper's
        // fault, which only `call_helper` can report.
        if self.overridden(bpfsim_vm::host::REDIRECT_MAP) {
            return None;
        }
        let i = self.map_index(map).ok()?;
        Some(self.redirect_in(i, key, flags))
    }

    #[inline]
    fn xdp_adjust_meta(&mut self, _ctx: u64, delta: u64, mem: &mut MemoryMap<'_>) -> Option<u64> {
        // `call_helper`'s order: an override first, then XDP's own answer (`xdp_adjust`); the
        // helper reads no `ctx` (the run has one context). Its only error is a context with no
        // metadata, which changes nothing: `None`, and `call_helper` reports it.
        if self.prog_type != ProgType::Xdp || self.overridden(bpfsim_vm::host::XDP_ADJUST_META) {
            return None;
        }
        mem.adjust_ctx_meta(delta as i32 as i64).map(|r0| r0 as u64)
    }

    #[inline]
    fn xdp_adjust_tail(&mut self, _ctx: u64, delta: u64, mem: &mut MemoryMap<'_>) -> Option<u64> {
        // As `xdp_adjust_meta`: `call_helper`'s order, and its call (`xdp_adjust`). Its only
        // errors, a context with no packet or a frame not mapped writable, change nothing:
        // `None`, and `call_helper` reports them.
        if self.prog_type != ProgType::Xdp || self.overridden(bpfsim_vm::host::XDP_ADJUST_TAIL) {
            return None;
        }
        mem.adjust_ctx_tail(delta as i32 as i64).map(|r0| r0 as u64)
    }

    fn xdp_adjust_by_context(&mut self) -> bool {
        // What `xdp_adjust_meta` and `xdp_adjust_tail` answer but for an override of either
        // (or another program type), which stands for the batch: a test sets its overrides
        // between runs, never during one.
        self.prog_type == ProgType::Xdp
            && !self.overridden(bpfsim_vm::host::XDP_ADJUST_META)
            && !self.overridden(bpfsim_vm::host::XDP_ADJUST_TAIL)
    }

    fn tables_epoch(&self) -> u64 {
        self.epoch
    }

    fn inline_loop(&mut self) -> bool {
        // An override of `bpf_loop` answers every loop itself.
        !self.overridden(bpfsim_vm::host::LOOP)
    }

    fn value_region(&mut self, map: u32) -> Option<u64> {
        // An override of a helper that hands out value pointers may point them anywhere.
        let overridden = self.overrides.as_ref().is_some_and(|o| {
            o.keys().any(|&id| {
                id == FOR_EACH_MAP_ELEM
                    || bpfsim_vm::spec::proto::proto(id).is_some_and(|p| {
                        p.ret.base == bpfsim_vm::spec::proto::RetBase::PtrToMapValue
                    })
            })
        });
        if overridden {
            return None;
        }
        // Lookups and callbacks point into `arena_index(cpu)`; direct value addresses into
        // arena 0, which is that arena for every map that has them (arrays: one arena).
        let m = self.maps.get(map as usize)?;
        m.base(m.state.arena_index(self.env.cpu))
    }

    /// `call_helper(1, ..)` without its dispatch: an override of helper 1 still wins.
    #[inline]
    fn map_lookup_elem(
        &mut self,
        map: u64,
        key: u64,
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        let a = [map, key, 0, 0, 0];
        if let Some(f) = self
            .overrides
            .as_mut()
            .and_then(|o| o.get_mut(&bpfsim_vm::host::MAP_LOOKUP_ELEM))
        {
            return f(a, mem);
        }
        self.map_lookup(mem, a)
    }

    fn call_helper(
        &mut self,
        id: u32,
        a: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        if let Some(f) = self.overrides.as_mut().and_then(|o| o.get_mut(&id)) {
            return f(a, mem);
        }
        // The packet helpers and the cheapest ones here, each a call or a few instructions;
        // the rest out of line: inlined here they gave every call the 184-byte stack frame the
        // largest of them need (56 bytes now), whichever helper it was.
        match id {
            26 if self.is_skb() => Self::skb_load_bytes(mem, a),
            // No socket buffer: refused as the helper refuses a context it cannot use.
            26 => Err(HelperStop::Fault),
            9 if self.is_skb() => Self::skb_store_bytes(mem, a),
            10 | 11 if self.is_skb() => Self::csum_replace(mem, id == 11, a),
            28 => Self::csum_diff(mem, a),
            8 => Ok(self.env.cpu as u64),
            // An XDP program's metadata helper, once per packet in most that use it.
            54 | 65 if self.prog_type == ProgType::Xdp => {
                self.xdp_adjust(mem, id, a[1] as i32 as i64)
            }
            _ => self.other_helper(id, a, mem),
        }
    }

    fn load_packet(
        &mut self,
        mem: &mut MemoryMap<'_>,
        offset: i64,
        size: Size,
    ) -> Result<Option<u64>, HelperStop> {
        // An XDP context has a packet too, but no legacy packet loads.
        if !self.is_skb() {
            return Err(HelperStop::Fault);
        }
        let (pkt, pkt_len) = Self::skb(mem)?;
        let n = size.bytes();
        let Ok(off) = usize::try_from(offset) else {
            return Ok(None);
        };
        if off.checked_add(n).is_none_or(|e| e > pkt_len) {
            return Ok(None);
        }
        let b = mem.slice(pkt + off as u64, n)?;
        Ok(Some(b.iter().fold(0u64, |acc, &x| acc << 8 | x as u64)))
    }
}

impl SimHost<'_, '_> {
    /// The helpers [`Host::call_helper`] does not answer itself.
    #[inline(never)]
    fn other_helper(
        &mut self,
        id: u32,
        a: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        let env = &mut *self.env;
        Ok(match id {
            1 => return self.map_lookup(mem, a),
            12 => return self.tail_call_in(mem, a),
            25 => return self.perf_output(mem, a),
            87..=89 => return self.queue_op(mem, id, a),
            bpfsim_vm::host::REDIRECT_MAP => return self.redirect_map(mem, a),
            130..=133 => return self.ringbuf(mem, id, a),
            177 => {
                // trace_vprintk(fmt, fmt_size, data, data_len): arguments as an array of u64.
                let data = mem.slice(a[2], a[3] as u32 as usize)?;
                // A format uses at most 12 arguments: later ones are never read.
                let mut args = [0u64; 12];
                let mut n = 0;
                for (arg, c) in args.iter_mut().zip(data.chunks_exact(8)) {
                    *arg = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
                    n += 1;
                }
                return self.printk(mem, a, &args[..n], 12);
            }
            2 => return self.map_update(mem, a),
            3 => return self.map_delete(mem, a),
            5 => env.clock.monotonic_ns(),
            6 => return self.printk(mem, a, &a[2..5], 3),
            7 => env.prandom.next_u32() as u64,
            23 => {
                // A refused flag records nothing, as the kernel's helper returns first.
                let (accepted, r0) = match self.prog_type {
                    ProgType::Xdp if a[1] != 0 => (false, xdp::action::ABORTED as u64),
                    ProgType::Xdp => (true, xdp::action::REDIRECT as u64),
                    // BPF_F_INGRESS is the only flag; anything else is TC_ACT_SHOT.
                    _ if a[1] & !1 != 0 => (false, 2),
                    _ => (true, 7),
                };
                if accepted {
                    self.redirect = Some(Redirect::Ifindex {
                        ifindex: a[0] as u32,
                        flags: a[1],
                    });
                }
                r0
            }
            42 => env.numa_node as u64,
            164 => return self.for_each(mem, a),
            // bpf_loop(nr_loops, callback, ctx, flags): the VM runs the callback. Engines make
            // the calls themselves unless overridden (`inline_loop`): keep both in step.
            181 => {
                if a[3] != 0 {
                    EINVAL
                } else if a[0] > 1 << 23 {
                    (-7i64) as u64
                } else {
                    return Err(HelperStop::Loop {
                        func: a[1],
                        iterations: a[0] as u32,
                        ctx: a[2],
                    });
                }
            }
            // fib_lookup(ctx, params, plen, flags), answered from Env::fib.
            69 => {
                const NOT_FWDED: u64 = 4;
                let plen = a[2] as u32 as usize;
                if plen < 64 {
                    EINVAL
                } else {
                    let mut p = mem.slice(a[1], 64)?.to_vec();
                    let dst = match p[0] {
                        2 => p[32..36].to_vec(),
                        10 => p[32..48].to_vec(),
                        _ => return Ok((-97i64) as u64), // -EAFNOSUPPORT
                    };
                    match env.route(&dst) {
                        None => NOT_FWDED,
                        Some(r) if r.result != 0 => r.result as u64,
                        Some(r) => {
                            p[8..12].copy_from_slice(&r.ifindex.to_le_bytes());
                            p[52..58].copy_from_slice(&r.smac);
                            p[58..64].copy_from_slice(&r.dmac);
                            mem.slice_mut(a[1], 64)?.copy_from_slice(&p);
                            0
                        }
                    }
                }
            }
            // One simulated CPU runs at a time, so a lock is always free.
            93 | 94 => 0,
            // strtol/strtoul(buf, buf_len, flags, res)
            105 | 106 => {
                let buf = mem.slice(a[0], a[1] as u32 as usize)?.to_vec();
                match strtol::parse(&buf, a[2], id == 105) {
                    Ok((v, n)) => {
                        mem.store(a[3], Size::DW, v).map_err(HelperStop::Memory)?;
                        n as u64
                    }
                    Err(e) => e as u64,
                }
            }
            14 => ((env.process.tgid as u64) << 32) | env.process.pid as u64,
            15 => ((env.process.gid as u64) << 32) | env.process.uid as u64,
            16 => {
                // get_current_comm(buf, size): NUL-terminated, truncated to the buffer.
                let size = a[1] as u32 as usize;
                let mut comm: Vec<u8> = env.process.comm.bytes().take(15).collect();
                comm.push(0);
                let buf = mem.slice_mut(a[0], size)?;
                buf.fill(0);
                let n = comm.len().min(size);
                buf[..n].copy_from_slice(&comm[..n]);
                if let Some(last) = buf.last_mut() {
                    *last = 0;
                }
                0
            }
            // probe_read_user (112), probe_read_kernel (113): dst, size, unsafe_ptr.
            112 | 113 => {
                let size = a[1] as u32 as usize;
                let src = env.probe(a[2], size).map(<[u8]>::to_vec);
                let dst = mem.slice_mut(a[0], size)?;
                match src {
                    Some(b) => {
                        dst.copy_from_slice(&b);
                        0
                    }
                    None => {
                        dst.fill(0);
                        EFAULT
                    }
                }
            }
            // probe_read_user_str (114), probe_read_kernel_str (115): up to and with the NUL.
            114 | 115 => {
                let size = a[1] as u32 as usize;
                let mut s = Vec::new();
                while s.len() + 1 < size {
                    match env.probe(a[2] + s.len() as u64, 1) {
                        Some(&[0]) | None => break,
                        Some(b) => s.push(b[0]),
                    }
                }
                let ok = env.probe(a[2], 1).is_some();
                let dst = mem.slice_mut(a[0], size)?;
                if !ok || size == 0 {
                    dst.fill(0);
                    EFAULT
                } else {
                    dst[..s.len()].copy_from_slice(&s);
                    dst[s.len()] = 0;
                    s.len() as u64 + 1
                }
            }
            44 | 54 | 65 if self.prog_type == ProgType::Xdp => {
                return self.xdp_adjust(mem, id, a[1] as i32 as i64)
            }
            118 => env.clock.jiffies64(),
            125 => env.clock.boot_ns(),
            160 => env.clock.coarse_ns(),
            _ => return Err(HelperStop::Unknown),
        })
    }
}

#[cfg(test)]
mod size_probe {
    #[test]
    fn sizes() {
        eprintln!(
            "RunResult {} Result {} SkbContext {} Trap {} Redirect {} Executed {} Outcome {}",
            std::mem::size_of::<super::RunResult>(),
            std::mem::size_of::<Result<super::RunResult, super::RunError>>(),
            std::mem::size_of::<super::SkbContext>(),
            std::mem::size_of::<Option<bpfsim_vm::Trap>>(),
            std::mem::size_of::<Option<super::Redirect>>(),
            std::mem::size_of::<super::Executed>(),
            std::mem::size_of::<bpfsim_vm::Outcome>(),
        );
    }
}
