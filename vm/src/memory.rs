//! The guest address space: a table of regions, each a host buffer with a read and a write limit.
//!
//! A guest address is `region << 32 | offset`. Translating one is a shift, an indexed load from the
//! table and one compare (`offset + size <= limit`), the same few instructions for the interpreter
//! and a JIT; region 0 is never mapped, so a NULL pointer and small integers always fault.

use std::marker::PhantomData;

use crate::isa::Size;

/// Bytes of stack per frame.
pub const FRAME_SIZE: usize = 512;
/// Deepest BPF-to-BPF call chain, counting the main program (the kernel's `MAX_CALL_FRAMES`).
pub const MAX_FRAMES: usize = 8;
/// Bits of offset in a guest address.
pub const REGION_SHIFT: u32 = 32;
/// Region index of frame 0's stack; frame `i` is region `FIRST_FRAME_REGION + i`.
pub const FIRST_FRAME_REGION: u64 = 1;

/// Guest address one past the top of frame `i`'s stack: the value of `r10` in that frame.
pub const fn frame_pointer(frame: usize) -> u64 {
    ((FIRST_FRAME_REGION + frame as u64) << REGION_SHIFT) | FRAME_SIZE as u64
}

/// One row of the region table, laid out for generated code: base pointer, then the two limits.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Region {
    base: *mut u8,
    read_len: u64,
    write_len: u64,
}

impl Region {
    const UNMAPPED: Region = Region {
        base: std::ptr::null_mut(),
        read_len: 0,
        write_len: 0,
    };
}

/// A faulting access: the guest address and size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MemFault {
    pub addr: u64,
    pub size: u8,
    pub write: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum MapError {
    #[error("region of {len} bytes exceeds the 4 GiB a region can address")]
    TooLarge { len: usize },
    #[error("guest address space is full")]
    Full,
}

/// A program context whose fields are computed when the program reads or writes them, the way
/// the kernel's `convert_ctx_access` rewrites context accesses (a 32-bit load of `xdp_md.data`
/// yields a 64-bit packet pointer). Its region maps no bytes, so ordinary accesses never reach it;
/// a faulting access to it goes to these methods instead, off the fast path.
pub trait Context: std::any::Any {
    /// The value of the field at `off`, or `None` when the access is not allowed.
    fn load(&self, off: u32, size: Size) -> Option<u64>;
    /// Write the field at `off`; `false` when the access is not allowed.
    fn store(&mut self, off: u32, size: Size, value: u64) -> bool;
    /// For helpers that need the concrete context (`bpf_xdp_adjust_head` moves `data`).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// For helpers that only read the concrete context (`bpf_skb_load_bytes` reads where the
    /// packet is): unlike [`Self::as_any_mut`], reaching it through [`MemoryMap::context`]
    /// leaves the fields an engine keeps ([`MemoryMap::ctx_stamp`]) valid.
    fn as_any(&self) -> &dyn std::any::Any;

    /// The packet this context points at, `data` to `data_end`: its guest address and length.
    /// For helpers that read or write it (`bpf_skb_load_bytes`), one call where a downcast
    /// through [`Self::as_any`] is two and a type comparison. `None` (the default): no packet.
    fn packet(&self) -> Option<(u64, usize)> {
        None
    }

    /// `bpf_xdp_adjust_meta(ctx, delta)` on this context: move the metadata's start by `delta`
    /// and return the helper's `r0`, 0 or the errno of a refused move, which changes nothing.
    /// One call, where a downcast through [`Self::as_any_mut`] is two and a type comparison
    /// (and has the engines read every field they keep again). `None` (the default): this
    /// context has no metadata, and nothing changed.
    fn adjust_meta(&mut self, delta: i64) -> Option<i64> {
        let _ = delta;
        None
    }

    /// `bpf_xdp_adjust_tail(ctx, delta)` on this context: move the packet's end by `delta` and
    /// return the helper's `r0`, 0 or the errno of a refused move, which changes nothing. The
    /// bytes a growth uncovers must read as zero: the context hands their guest address and
    /// length to `zero`, which zeroes them if they are mapped writable and says whether it
    /// did; if not, the context changes nothing and answers `None`. One call, where a downcast
    /// through [`Self::as_any_mut`] is two and a type comparison. `None` (the default): this
    /// context has no packet whose end moves, and nothing changed.
    fn adjust_tail(&mut self, delta: i64, zero: &mut dyn FnMut(u64, usize) -> bool) -> Option<i64> {
        let _ = (delta, zero);
        None
    }

    /// Whether [`Self::load`] is a function of the context's state alone, which only
    /// [`Self::store`] and changes through [`Self::as_any_mut`] modify: an engine may then keep
    /// the fields a program reads between those changes ([`MemoryMap::ctx_stamp`]) rather than
    /// ask for each access. The default, `false`, has every access ask.
    fn loads_are_pure(&self) -> bool {
        false
    }

    /// The bytes a `size`-byte store at `off` writes, when that store is plain: it sets these
    /// `size` bytes to the value's low bytes (little-endian), exactly as [`Self::store`] would,
    /// changes nothing else, and every [`Self::load`] reads the field from them (a load of `n`
    /// bytes at `off + k` inside the stored range reads the cell's bytes `k..k + n`). An engine may
    /// then store there directly, the way the kernel rewrites a store to `skb->mark` into a
    /// store to its `sk_buff` (`convert_ctx_access`), and tell the map afterwards
    /// ([`MemoryMap::ctx_written`]). `None` (the default): such stores go through
    /// [`Self::store`]. A slice of another length than `size` is not used.
    fn store_cell(&mut self, off: u32, size: Size) -> Option<&mut [u8]> {
        let _ = (off, size);
        None
    }
}

/// [`MemoryMap`]'s `writes`: a program entered.
const ENTERED: u8 = 1;
/// [`MemoryMap`]'s `writes`: a program that entered may write.
const MAY_WRITE: u8 = 2;

/// [`MemoryMap::ctx_stamp`] not yet taken for the context's current state.
const UNSTAMPED: u64 = u64::MAX;

/// A stamp no other context state has had ([`MemoryMap::ctx_stamp`]): never 0 nor
/// [`UNSTAMPED`], and no locked add (a stamp is taken at every run that keeps context fields).
fn next_ctx_stamp() -> u64 {
    crate::unique::next()
}

/// [`MemoryMap::translate`] in the rows `rows`: apart from the map, for a caller that holds
/// its context borrowed ([`MemoryMap::adjust_ctx_tail`]).
#[inline(always)]
fn translate_in(rows: &[Region], addr: u64, size: usize, write: bool) -> Result<*mut u8, MemFault> {
    let fault = MemFault {
        addr,
        size: size as u8,
        write,
    };
    let region = rows.get((addr >> REGION_SHIFT) as usize).ok_or(fault)?;
    let off = addr & ((1 << REGION_SHIFT) - 1);
    let limit = if write {
        region.write_len
    } else {
        region.read_len
    };
    if off + size as u64 > limit {
        return Err(fault);
    }
    Ok(region.base.wrapping_add(off as usize))
}

/// The stack of every frame, owned by whoever runs programs and lent to each run.
pub struct Stack {
    /// `FRAME_SIZE * MAX_FRAMES` bytes, never resized: pointers into it stay valid for the
    /// stack's whole life (a `Vec`'s buffer does not move when the `Vec` does, and
    /// `Vec::as_mut_ptr` creates no reference that would invalidate earlier pointers).
    buf: Vec<u8>,
    /// What may hold bytes a previous run wrote ([`FRAME0_DIRTY`], [`DEEP_DIRTY`]); cleared
    /// lazily by [`MemoryMap::enter_main`].
    dirty: u8,
    /// This stack's identity, never reused: a [`RegionTable`] whose fixed rows were built for
    /// it says so with the same number (see [`MemoryMap::new`]).
    id: u64,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            buf: vec![0; FRAME_SIZE * MAX_FRAMES],
            dirty: 0,
            id: crate::unique::next(),
        }
    }
}

/// [`Stack`]'s `dirty`: frame 0 may hold bytes an earlier run wrote.
const FRAME0_DIRTY: u8 = 1;
/// [`Stack`]'s `dirty`: a frame past 0 may hold bytes an earlier run wrote (through a call, or a
/// pointer an unverified program forged into a frame it never entered).
const DEEP_DIRTY: u8 = 2;

/// What an entry does to the stack: the top `bytes` of frame 0 cleared if an earlier run may
/// have written them; the frames past 0 too, unless the program is `proven` to reach no frame
/// it does not enter (a call clears the callee's frame); then marks what this run may write.
///
/// # Safety
/// `base` points at a stack's `FRAME_SIZE * MAX_FRAMES` bytes, which nothing else uses.
#[inline(always)]
unsafe fn clean_stack(base: *mut u8, dirty: &mut u8, may_write: bool, bytes: usize, proven: bool) {
    let d = *dirty;
    let bytes = bytes.min(FRAME_SIZE);
    if d & FRAME0_DIRTY != 0 {
        // SAFETY: the caller's contract; the top `bytes` bytes of frame 0.
        unsafe { zero(base.add(FRAME_SIZE - bytes), bytes) }
    }
    let mut next = 0;
    if may_write || (d & FRAME0_DIRTY != 0 && bytes < FRAME_SIZE) {
        next |= FRAME0_DIRTY;
    }
    if d & DEEP_DIRTY != 0 {
        if proven {
            next |= DEEP_DIRTY;
        } else {
            // SAFETY: the caller's contract; the frames after frame 0.
            unsafe { std::ptr::write_bytes(base.add(FRAME_SIZE), 0, FRAME_SIZE * (MAX_FRAMES - 1)) }
        }
    }
    if may_write {
        next |= DEEP_DIRTY;
    }
    *dirty = next;
}

/// Zero `n` bytes at `p`. Most programs reach a few words of their frame (the verifier's
/// `frame_bytes`), and a call to `memset` for those cost more than the stores (a few ns of a
/// one-call `bpf_loop` run's 11): from 8 to 64 bytes are two to four overlapping stores.
///
/// # Safety
/// `p..p + n` is writable and nothing else uses it.
#[inline(always)]
unsafe fn zero(p: *mut u8, n: usize) {
    // SAFETY: every store below lies inside `p..p + n`, by its arm's sizes.
    unsafe {
        match n {
            0 => {}
            8..=15 => {
                std::ptr::write_unaligned(p.cast::<u64>(), 0);
                std::ptr::write_unaligned(p.add(n - 8).cast::<u64>(), 0);
            }
            16..=32 => {
                std::ptr::write_unaligned(p.cast::<u128>(), 0);
                std::ptr::write_unaligned(p.add(n - 16).cast::<u128>(), 0);
            }
            33..=64 => {
                std::ptr::write_unaligned(p.cast::<u128>(), 0);
                std::ptr::write_unaligned(p.add(16).cast::<u128>(), 0);
                std::ptr::write_unaligned(p.add(n - 32).cast::<u128>(), 0);
                std::ptr::write_unaligned(p.add(n - 16).cast::<u128>(), 0);
            }
            _ => std::ptr::write_bytes(p, 0, n),
        }
    }
}

/// `ptr::copy(src, dst, n)`: the ranges may overlap. Helpers copy headers and keys of a few
/// bytes to a few dozen, for which a call to `memmove` cost more than the loads and stores: up
/// to 32 bytes are two overlapping loads, both made before either store, so overlapping ranges
/// copy as through a buffer.
///
/// # Safety
/// `src..src + n` is readable, `dst..dst + n` writable, and nothing else uses them.
#[inline(always)]
unsafe fn move_bytes(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: every access below lies inside its range, by its arm's sizes.
    unsafe {
        match n {
            0 => {}
            1 => *dst = *src,
            2..=3 => {
                let (a, b) = (
                    src.cast::<u16>().read_unaligned(),
                    src.add(n - 2).cast::<u16>().read_unaligned(),
                );
                dst.cast::<u16>().write_unaligned(a);
                dst.add(n - 2).cast::<u16>().write_unaligned(b);
            }
            4..=7 => {
                let (a, b) = (
                    src.cast::<u32>().read_unaligned(),
                    src.add(n - 4).cast::<u32>().read_unaligned(),
                );
                dst.cast::<u32>().write_unaligned(a);
                dst.add(n - 4).cast::<u32>().write_unaligned(b);
            }
            8..=15 => {
                let (a, b) = (
                    src.cast::<u64>().read_unaligned(),
                    src.add(n - 8).cast::<u64>().read_unaligned(),
                );
                dst.cast::<u64>().write_unaligned(a);
                dst.add(n - 8).cast::<u64>().write_unaligned(b);
            }
            16..=32 => {
                let (a, b) = (
                    src.cast::<u128>().read_unaligned(),
                    src.add(n - 16).cast::<u128>().read_unaligned(),
                );
                dst.cast::<u128>().write_unaligned(a);
                dst.add(n - 16).cast::<u128>().write_unaligned(b);
            }
            _ => std::ptr::copy(src, dst, n),
        }
    }
}

/// The clearing of a program's entry into frame 0 when it enters again on the same map
/// ([`MemoryMap::reentry`]): the pointers are worked out once per batch of runs, not chased
/// through the map before each run.
#[derive(Clone, Copy, Debug)]
pub struct FrameReentry {
    /// The first byte of frame 0 to clear, and how many.
    top: *mut u8,
    bytes: usize,
    /// Whether the frames past 0 (which follow frame 0) are cleared too.
    deep: bool,
}

impl FrameReentry {
    /// Clear what an entry clears, as [`MemoryMap::enter_main_reaching`] would now.
    ///
    /// # Safety
    /// The [`MemoryMap`] this came from is alive, this program entered frame 0 through it last
    /// ([`MemoryMap::enter_main_reaching`] with the same arguments), and no reference into its
    /// stack is held: between two runs of one batch of that program.
    #[inline(always)]
    pub unsafe fn apply(self) {
        // SAFETY: the caller's contract; `top` and the frames after frame 0 are the map's
        // stack, which holds `FRAME_SIZE * MAX_FRAMES` bytes from frame 0.
        unsafe {
            zero(self.top, self.bytes);
            if self.deep {
                let frame0 = self.top.add(self.bytes).sub(FRAME_SIZE);
                std::ptr::write_bytes(frame0.add(FRAME_SIZE), 0, FRAME_SIZE * (MAX_FRAMES - 1));
            }
        }
    }
}

/// Rows every table starts with: region 0 (never mapped), then the frames' stacks. The first
/// region a map maps gets this index.
pub const FIXED_ROWS: usize = 1 + MAX_FRAMES;

/// The address space of one run. It borrows every buffer it maps for `'a`, so no mapped buffer can
/// be moved, freed or touched by the host while a program runs.
pub struct MemoryMap<'a> {
    /// The rows, in a table lent for the run so that a run need not allocate (nor move the
    /// table in and out): its stack's frames first, then the regions this run mapped, which
    /// are dropped with the map (`Drop`).
    table: &'a mut RegionTable,
    stack_dirty: &'a mut u8,
    /// The context's region index and its accessor.
    /// With [`Self::ctx_stamp`], which only a context has: a map without one (most runs'
    /// maps) starts with one word fewer to write.
    ctx: Option<(u64, &'a mut dyn Context, u64)>,
    /// Whether a program entered with [`Self::enter_main`] (`ENTERED`), and whether one that
    /// did may write (`MAY_WRITE`): one byte, so that an entry updates it with one store.
    writes: u8,
    _borrows: PhantomData<&'a mut [u8]>,
}

/// A region table's allocation kept between runs, so that a run need not allocate: empty, or
/// only the fixed rows (region 0 and the frames' stacks) of the [`Stack`] numbered `stack_id`,
/// which the next run on that stack reuses as they are. Rows of the regions a run mapped never
/// outlive the run (a [`MemoryMap`] drops them when it is dropped), but for the input row a
/// lean entry leaves ([`RegionTable::enter_main`]), which nothing reads again: the next map or
/// entry drops it first.
#[derive(Debug, Default)]
pub struct RegionTable {
    rows: Vec<Region>,
    stack_id: u64,
    /// The serial of the map the table is lent to ([`MemoryMap::serial`]): kept here, not in
    /// the map, whose size an engine's context holds (a word more there moved the fields its
    /// runs read).
    serial: u64,
}

// SAFETY: the table holds no row that anything reads but (at most) the addresses of a stack's
// frames (the row an engine's lean entry left, `RegionTable::enter_main`, is dropped unread by
// the next map or entry), which nothing reads or writes through until a `MemoryMap` is made from
// the table and that very stack, borrowed mutably for the map's life (`MemoryMap::new`); until
// then they are plain numbers, which may move between threads.
unsafe impl Send for RegionTable {}
// SAFETY: as above; a shared table offers no access to its rows.
unsafe impl Sync for RegionTable {}

impl RegionTable {
    pub fn with_capacity(n: usize) -> RegionTable {
        RegionTable {
            rows: Vec::with_capacity(n),
            stack_id: 0,
            serial: 0,
        }
    }

    /// Start a run in frame 0 of `stack` on the raw memory `input` without building a
    /// [`MemoryMap`], for an engine's lean entry (a JIT's many runs of one program): frame 0
    /// cleared if a run may have written it (as [`MemoryMap::enter_main`] does), and the table
    /// holding this stack's fixed rows (region 0 and the frames) then, when `input` is not
    /// empty, `input` at region [`FIXED_ROWS`], as [`MemoryMap::map_mut`] would map it. Returns
    /// the rows as [`MemoryMap::region_table`] does.
    ///
    /// These are the rows a [`MemoryMap::new`] of the same stack and table followed by
    /// `map_mut(input)` would hold, so an engine may build that map later in the run, when
    /// something off its fast path needs it, and see the same address space. The input's row
    /// stays in the table after the run, but nothing reads it: a map made from the table starts
    /// from the fixed rows alone. `None` when `input` is larger than a region can be.
    #[inline]
    pub fn enter_main(
        &mut self,
        stack: &mut Stack,
        may_write: bool,
        input: &mut [u8],
    ) -> Option<(*const u8, usize)> {
        self.enter_main_reaching(stack, may_write, FRAME_SIZE, false, input)
    }

    /// [`Self::enter_main`] for a program that reaches only the top `bytes` bytes of frame 0,
    /// as [`MemoryMap::enter_main_reaching`].
    #[inline]
    pub fn enter_main_reaching(
        &mut self,
        stack: &mut Stack,
        may_write: bool,
        bytes: usize,
        proven: bool,
        input: &mut [u8],
    ) -> Option<(*const u8, usize)> {
        if input.len() > u32::MAX as usize {
            return None;
        }
        // SAFETY: `buf` is the stack's `FRAME_SIZE * MAX_FRAMES` bytes.
        unsafe {
            clean_stack(
                stack.buf.as_mut_ptr(),
                &mut stack.dirty,
                may_write,
                bytes,
                proven,
            )
        };
        if self.stack_id != stack.id || self.rows.len() < FIXED_ROWS {
            MemoryMap::fixed_rows(self, &mut stack.buf, stack.id);
        }
        self.drop_mapped();
        if !input.is_empty() {
            self.rows.push(Region {
                base: input.as_mut_ptr(),
                read_len: input.len() as u64,
                write_len: input.len() as u64,
            });
        }
        Some((self.rows.as_ptr().cast(), self.rows.len()))
    }
}

impl Stack {
    /// What [`RegionTable::enter_main_reaching`] with these arguments does again on this stack,
    /// once it has done it (as [`MemoryMap::reentry`] for a map): for an engine's lean entry
    /// that runs one program again and again on a stack nothing else uses meanwhile.
    #[inline]
    pub fn reentry(&mut self, may_write: bool, bytes: usize, proven: bool) -> FrameReentry {
        let bytes = if may_write { bytes.min(FRAME_SIZE) } else { 0 };
        FrameReentry {
            // SAFETY: inside frame 0, the buffer's first `FRAME_SIZE` bytes.
            top: unsafe { self.buf.as_mut_ptr().add(FRAME_SIZE - bytes) },
            bytes,
            deep: may_write && !proven,
        }
    }
}

impl RegionTable {
    /// The rows of [`Self::enter_main_reaching`] on a table that already holds its stack's fixed
    /// rows (an entry made them, and no map since made the table another stack's): only the
    /// input's row is set, as that entry sets it. The stack is left alone: its clearing is the
    /// caller's ([`Stack::reentry`]).
    #[inline(always)]
    pub fn reenter_rows(&mut self, input: &mut [u8]) -> (*const u8, usize) {
        debug_assert!(self.rows.len() >= FIXED_ROWS && input.len() <= u32::MAX as usize);
        self.drop_mapped();
        if !input.is_empty() {
            self.rows.push(Region {
                base: input.as_mut_ptr(),
                read_len: input.len() as u64,
                write_len: input.len() as u64,
            });
        }
        (self.rows.as_ptr().cast(), self.rows.len())
    }
}

impl RegionTable {
    /// Keep only the fixed rows. Most runs map nothing past them, or only what the run before
    /// mapped, so the length is written only when it changes (`Vec::truncate` writes it even
    /// when it stays: a store per map made and per map dropped, on every run).
    #[inline(always)]
    fn drop_mapped(&mut self) {
        if self.rows.len() > FIXED_ROWS {
            self.rows.truncate(FIXED_ROWS);
        }
    }
}

impl Drop for MemoryMap<'_> {
    /// The rows of the regions this run mapped go with it: the table keeps only the stack's.
    #[inline]
    fn drop(&mut self) {
        self.table.drop_mapped();
    }
}

impl<'a> MemoryMap<'a> {
    /// A map with the frames of `stack` at their fixed regions, in the table `table` (lent so
    /// that a run need not allocate). A table last used with this same stack keeps its rows for
    /// the frames, and the map starts from them as they are.
    #[inline]
    pub fn new(stack: &'a mut Stack, table: &'a mut RegionTable) -> MemoryMap<'a> {
        let Stack { buf, dirty, id } = stack;
        // A map dropped its own rows, so a table of this stack holds the fixed ones, and at
        // most the row of the input of a run that built no map (`RegionTable::enter_main`).
        if table.stack_id != *id || table.rows.len() < FIXED_ROWS {
            Self::fixed_rows(table, buf, *id);
        }
        table.drop_mapped();
        table.serial = crate::unique::next();
        MemoryMap {
            table,
            stack_dirty: dirty,
            ctx: None,
            writes: 0,
            _borrows: PhantomData,
        }
    }

    /// Write the rows every table starts with, for the stack `buf` numbered `id`. The frames'
    /// rows are the buffer's `FRAME_SIZE`-byte chunks in order, so frame `d`'s byte `o` is the
    /// buffer's byte `d * FRAME_SIZE + o`: the JIT addresses proven stack accesses of any frame
    /// from the first frame's base alone.
    #[cold]
    fn fixed_rows(table: &mut RegionTable, buf: &mut [u8], id: u64) {
        table.rows.clear();
        let base = buf.as_mut_ptr();
        // One copy of a fixed-size table rather than a push per frame.
        let mut fixed = [Region::UNMAPPED; FIXED_ROWS];
        for (i, r) in fixed[1..].iter_mut().enumerate() {
            *r = Region {
                base: base.wrapping_add(i * FRAME_SIZE),
                read_len: FRAME_SIZE as u64,
                write_len: FRAME_SIZE as u64,
            };
        }
        table.rows.extend_from_slice(&fixed);
        // The rows were written from this stack (ids are never reused), whose buffer never
        // moves (`Stack::buf`): a later map of the same stack can start from them as they are.
        table.stack_id = id;
    }

    /// A number no other map has had (never 0). A map's rows are only ever appended, and each
    /// lives as long as the map: the serial and the table's length name its rows, so that an
    /// engine may keep what it derived from them (host addresses) while both stay the same.
    #[inline]
    pub fn serial(&self) -> u64 {
        self.table.serial
    }

    /// The region table as generated code reads it: a pointer to `[Region]` (`#[repr(C)]`:
    /// base, read limit, write limit) and its length. Valid until the next region is mapped.
    #[inline]
    pub fn region_table(&self) -> (*const u8, usize) {
        (self.table.rows.as_ptr().cast(), self.table.rows.len())
    }

    /// Whether the programs run in this map may have written to memory: `false` only when one
    /// entered with [`Self::enter_main`] and every one that did said it never writes (no store,
    /// no atomic, no helper call). A caller that reuses a mapped buffer across runs can then skip
    /// restoring it.
    pub fn may_have_written(&self) -> bool {
        self.writes != ENTERED
    }

    #[inline]
    fn push(&mut self, base: *mut u8, len: usize, writable: bool) -> Result<u64, MapError> {
        if len > u32::MAX as usize {
            return Err(MapError::TooLarge { len });
        }
        let index = self.table.rows.len() as u64;
        if index >= 1 << (64 - REGION_SHIFT - 1) {
            return Err(MapError::Full);
        }
        self.table.rows.push(Region {
            base,
            read_len: len as u64,
            write_len: if writable { len as u64 } else { 0 },
        });
        Ok(index << REGION_SHIFT)
    }

    /// Map a buffer the program may read and write; returns its guest address.
    #[inline]
    pub fn map_mut(&mut self, mem: &'a mut [u8]) -> Result<u64, MapError> {
        self.push(mem.as_mut_ptr(), mem.len(), true)
    }

    /// Map a buffer the program may only read; returns its guest address.
    pub fn map_ro(&mut self, mem: &'a [u8]) -> Result<u64, MapError> {
        // The pointer is only ever written through when `write_len > 0`, which is 0 here.
        self.push(mem.as_ptr() as *mut u8, mem.len(), false)
    }

    /// Map a context; returns its guest address (the program's `r1`). One context per map.
    pub fn map_context(&mut self, ctx: &'a mut dyn Context) -> Result<u64, MapError> {
        let addr = self.push(std::ptr::null_mut(), 0, false)?;
        // Stamped when first asked (`ctx_stamp`): a run that never asks (the interpreter's)
        // pays no atomic increment.
        self.ctx = Some((addr >> REGION_SHIFT, ctx, UNSTAMPED));
        Ok(addr)
    }

    /// The mapped context, for helpers: `mem.context_mut()?.downcast_mut::<XdpContext>()`.
    pub fn context_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        self.ctx.as_mut().map(|(_, c, stamp)| {
            if *stamp != 0 {
                // The caller may change any field.
                *stamp = UNSTAMPED;
            }
            c.as_any_mut()
        })
    }

    /// The mapped context, for helpers that only read it:
    /// `mem.context()?.downcast_ref::<SkbContext>()`. Unlike [`Self::context_mut`] it keeps the
    /// context's stamp ([`Self::ctx_stamp`]): an engine that keeps the fields a program read
    /// need not read them again after such a helper.
    #[inline]
    pub fn context(&self) -> Option<&dyn std::any::Any> {
        self.ctx.as_ref().map(|(_, c, _)| c.as_any())
    }

    /// [`Context::adjust_meta`] on the mapped context (`None` without one). Its stamp
    /// ([`Self::ctx_stamp`]) changes only when the edge moved: a refused move leaves the fields
    /// an engine keeps valid.
    #[inline]
    pub fn adjust_ctx_meta(&mut self, delta: i64) -> Option<i64> {
        let (_, ctx, stamp) = self.ctx.as_mut()?;
        let r0 = ctx.adjust_meta(delta)?;
        if r0 == 0 && delta != 0 && *stamp != 0 {
            *stamp = UNSTAMPED;
        }
        Some(r0)
    }

    /// [`Context::adjust_tail`] on the mapped context (`None` without one), the bytes a growth
    /// uncovers zeroed through the region table (a context that names bytes not mapped
    /// writable gets `false`, and answers `None`). Its stamp ([`Self::ctx_stamp`]) changes only
    /// when the end moved.
    #[inline]
    pub fn adjust_ctx_tail(&mut self, delta: i64) -> Option<i64> {
        let (_, ctx, stamp) = self.ctx.as_mut()?;
        let rows = &self.table.rows;
        let mut zero = |addr: u64, len: usize| match translate_in(rows, addr, len, true) {
            Ok(p) => {
                // SAFETY: `translate_in` proved the range lies in one region mapped writable
                // from a borrowed `&mut` buffer, which nothing else touches during the call.
                unsafe { std::ptr::write_bytes(p, 0, len) };
                true
            }
            Err(_) => false,
        };
        let r0 = ctx.adjust_tail(delta, &mut zero)?;
        if r0 == 0 && delta != 0 && *stamp != 0 {
            *stamp = UNSTAMPED;
        }
        Some(r0)
    }

    /// The packet the mapped context points at ([`Context::packet`]), leaving the context's
    /// stamp as it is.
    #[inline]
    pub fn packet(&self) -> Option<(u64, usize)> {
        self.ctx.as_ref().and_then(|(_, c, _)| c.packet())
    }

    /// The state of the mapped context's fields: equal stamps (from any maps) mean equal field
    /// values at equal addresses, so that values read at one stamp ([`Self::ctx_field`]) hold
    /// until it changes. Changed by [`Self::context_mut`] and by each store to the context;
    /// never the same for two contexts. 0 when nothing may be kept: no context is mapped, or
    /// its loads are not pure ([`Context::loads_are_pure`]).
    #[inline]
    pub fn ctx_stamp(&mut self) -> u64 {
        match &mut self.ctx {
            Some((_, ctx, stamp)) => {
                if *stamp == UNSTAMPED {
                    *stamp = if ctx.loads_are_pure() {
                        next_ctx_stamp()
                    } else {
                        0
                    };
                }
                *stamp
            }
            None => 0,
        }
    }

    /// The guest address of the context's field at `off` and its value, as a `size`-byte
    /// [`Self::load`] there returns it; `None` when that load would fault.
    pub fn ctx_field(&self, off: u32, size: Size) -> Option<(u64, u64)> {
        let (region, ctx, _) = self.ctx.as_ref()?;
        let addr = (region << REGION_SHIFT) | off as u64;
        Some((addr, ctx.load(off, size)?))
    }

    /// The guest address of a `size`-byte store at `off` into the context and the host address
    /// of the bytes it writes, when the context says such a store is plain
    /// ([`Context::store_cell`]); `None` otherwise. The host address stays valid while the map
    /// lives; a caller that writes through it calls [`Self::ctx_written`] before anything that
    /// keeps field values by stamp ([`Self::ctx_stamp`]) reads them again.
    pub fn ctx_store_cell(&mut self, off: u32, size: Size) -> Option<(u64, *mut u8)> {
        let (region, ctx, _) = self.ctx.as_mut()?;
        let addr = (*region << REGION_SHIFT) | off as u64;
        let cell = ctx.store_cell(off, size)?;
        (cell.len() == size.bytes()).then_some((addr, cell.as_mut_ptr()))
    }

    /// The context's fields may have been written through their cells
    /// ([`Self::ctx_store_cell`]): its state takes a new stamp.
    #[inline]
    pub fn ctx_written(&mut self) {
        if let Some((_, _, stamp)) = &mut self.ctx {
            if *stamp != 0 {
                *stamp = UNSTAMPED;
            }
        }
    }

    #[cold]
    fn ctx_load(&self, fault: MemFault, size: Size) -> Result<u64, MemFault> {
        match &self.ctx {
            Some((region, ctx, _)) if fault.addr >> REGION_SHIFT == *region => {
                ctx.load(fault.addr as u32, size).ok_or(fault)
            }
            _ => Err(fault),
        }
    }

    #[cold]
    fn ctx_store(&mut self, fault: MemFault, size: Size, value: u64) -> Result<(), MemFault> {
        match &mut self.ctx {
            Some((region, ctx, stamp)) if fault.addr >> REGION_SHIFT == *region => {
                if ctx.store(fault.addr as u32, size, value) {
                    if *stamp != 0 {
                        *stamp = UNSTAMPED;
                    }
                    Ok(())
                } else {
                    Err(fault)
                }
            }
            _ => Err(fault),
        }
    }

    /// Host pointer for `size` bytes at `addr`, if the whole range lies in one region.
    #[inline(always)]
    fn translate(&self, addr: u64, size: usize, write: bool) -> Result<*mut u8, MemFault> {
        translate_in(&self.table.rows, addr, size, write)
    }

    #[inline(always)]
    pub fn load(&self, addr: u64, size: Size) -> Result<u64, MemFault> {
        let p = match self.translate(addr, size.bytes(), false) {
            Ok(p) => p,
            Err(fault) => return self.ctx_load(fault, size),
        };
        // SAFETY: `translate` proved `size` bytes at `p` lie inside a region whose buffer is borrowed
        // for 'a and not otherwise accessed during the run; reads are unaligned-safe.
        unsafe {
            Ok(match size {
                Size::B => *p as u64,
                Size::H => (p as *const u16).read_unaligned() as u64,
                Size::W => (p as *const u32).read_unaligned() as u64,
                Size::DW => (p as *const u64).read_unaligned(),
            })
        }
    }

    #[inline(always)]
    pub fn store(&mut self, addr: u64, size: Size, value: u64) -> Result<(), MemFault> {
        let p = match self.translate(addr, size.bytes(), true) {
            Ok(p) => p,
            Err(fault) => return self.ctx_store(fault, size, value),
        };
        // SAFETY: as in `load`; `write_len > 0` only for regions mapped from `&mut` buffers.
        unsafe {
            match size {
                Size::B => *p = value as u8,
                Size::H => (p as *mut u16).write_unaligned(value as u16),
                Size::W => (p as *mut u32).write_unaligned(value as u32),
                Size::DW => (p as *mut u64).write_unaligned(value),
            }
        }
        Ok(())
    }

    /// Read-modify-write of `size` bytes at `addr`; returns the old value. Needs write access.
    #[inline(always)]
    pub fn update(
        &mut self,
        addr: u64,
        size: Size,
        f: impl FnOnce(u64) -> u64,
    ) -> Result<u64, MemFault> {
        // Atomics never reach a context: the kernel refuses them there too.
        self.translate(addr, size.bytes(), true)?;
        let old = self.load(addr, size)?;
        self.store(addr, size, f(old))?;
        Ok(old)
    }

    /// The guest bytes `[addr, addr + len)`, for helpers that take a pointer and a length.
    pub fn slice(&self, addr: u64, len: usize) -> Result<&[u8], MemFault> {
        if len == 0 {
            return Ok(&[]);
        }
        let p = self.translate(addr, len, false)?;
        // SAFETY: `translate` proved the range lies in one mapped, borrowed region; the returned
        // borrow of `self` keeps the program (the only other user) from running meanwhile.
        Ok(unsafe { std::slice::from_raw_parts(p, len) })
    }

    /// Copy the guest bytes `[src, src + len)` to `[dst, dst + len)`, which may overlap, for
    /// helpers that copy from one pointer argument to another (`bpf_skb_load_bytes`): as
    /// `slice(src, len)` then `slice_mut(dst, len)` would, with the same faults in the same
    /// order (the source's first), but without a buffer in between. Nothing is checked when
    /// `len` is 0.
    #[inline]
    pub fn copy(&mut self, dst: u64, src: u64, len: usize) -> Result<(), MemFault> {
        if len == 0 {
            return Ok(());
        }
        let from = self.translate(src, len, false)?;
        let to = self.translate(dst, len, true)?;
        // SAFETY: `translate` proved both ranges lie in mapped, borrowed regions (the
        // destination's writable, so mapped from a `&mut` buffer); `&mut self` keeps the program
        // from running meanwhile; `move_bytes` allows the ranges to overlap.
        unsafe { move_bytes(to, from, len) };
        Ok(())
    }

    /// Writable guest bytes `[addr, addr + len)`.
    pub fn slice_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], MemFault> {
        if len == 0 {
            return Ok(&mut []);
        }
        let p = self.translate(addr, len, true)?;
        // SAFETY: as in `slice`, on a region mapped writable from a `&mut` buffer.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }

    /// Start a run in frame 0: its stack reads as zeros, as every frame's does on entry, so that
    /// runs are deterministic. `may_write` says whether this run can write memory (a store, an
    /// atomic or a helper call); if not, the next run need not clear the frame again, and
    /// [`Self::may_have_written`] trusts it: a run entered with `false` must write nothing.
    #[inline]
    pub fn enter_main(&mut self, may_write: bool) {
        self.enter_main_reaching(may_write, FRAME_SIZE, false);
    }

    /// [`Self::enter_main`] for a program that never reads or writes frame 0 below its top
    /// `bytes` bytes (the verifier's `frame_bytes` of the main program): only those are
    /// cleared. The rest may keep what an earlier run wrote, which this program cannot see; the
    /// stack then stays marked as written, so that the next run of any program clears it.
    ///
    /// `proven`: the verifier proved that the program reaches no frame but those it enters (as
    /// every program the kernel accepts): frames past 0 that an earlier run wrote need no
    /// clearing, a call clears the callee's frame. Otherwise a forged pointer could read a frame
    /// never entered, and those are cleared too when an earlier run may have written them.
    #[inline]
    pub fn enter_main_reaching(&mut self, may_write: bool, bytes: usize, proven: bool) {
        let r = self.table.rows[FIRST_FRAME_REGION as usize];
        // SAFETY: frame 0's region is the first `FRAME_SIZE`-byte chunk of the borrowed
        // `Stack`, whose frames follow it.
        unsafe { clean_stack(r.base, self.stack_dirty, may_write, bytes, proven) };
        self.writes |= ENTERED | if may_write { MAY_WRITE } else { 0 };
    }

    /// What [`Self::enter_main_reaching`] with these arguments does again, once it has done it
    /// on this map: for an engine's batch of runs of one program, which enters it before its
    /// first run and [`FrameReentry::apply`]s this before each later one. After the first
    /// entry of a program the stack's marks stay as they are from one entry to the next, so
    /// that only the clearing is left: the top `bytes` of frame 0 and, for a program not
    /// `proven`, the frames past 0, when it may write; nothing when it cannot (the first entry
    /// cleared what it reaches, and it writes nothing).
    #[inline]
    pub fn reentry(&self, may_write: bool, bytes: usize, proven: bool) -> FrameReentry {
        let base = self.table.rows[FIRST_FRAME_REGION as usize].base;
        let bytes = if may_write { bytes.min(FRAME_SIZE) } else { 0 };
        FrameReentry {
            // SAFETY: inside frame 0, the first `FRAME_SIZE` bytes at `base`.
            top: unsafe { base.add(FRAME_SIZE - bytes) },
            bytes,
            deep: may_write && !proven,
        }
    }

    /// Zero the stack of `frame` (each frame starts zeroed so that runs are deterministic).
    #[inline]
    pub fn clear_frame(&mut self, frame: usize) {
        let r = self.table.rows[FIRST_FRAME_REGION as usize + frame];
        // SAFETY: frame regions are the `FRAME_SIZE`-byte chunks of the borrowed `Stack`.
        unsafe { std::ptr::write_bytes(r.base, 0, FRAME_SIZE) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every map of a table gets a serial of its own, never 0 (the numbers' uniqueness across
    /// threads is `unique`'s): an engine keeps what it derived from a map's rows while its
    /// serial stays.
    #[test]
    fn every_map_has_a_serial_of_its_own() {
        let mut stack = Stack::default();
        let mut table = RegionTable::default();
        let mut seen: Vec<u64> = (0..100)
            .map(|_| MemoryMap::new(&mut stack, &mut table).serial())
            .collect();
        assert!(seen.iter().all(|&s| s != 0));
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 100);
    }

    #[test]
    fn regions_are_bounds_checked() {
        let mut stack = Stack::default();
        let mut buf = [1u8, 2, 3, 4, 5];
        let ro = [9u8; 4];
        let mut table = RegionTable::default();
        let mut m = MemoryMap::new(&mut stack, &mut table);
        let a = m.map_mut(&mut buf).unwrap();
        let b = m.map_ro(&ro).unwrap();
        assert_eq!(m.load(a + 1, Size::W).unwrap(), 0x05040302);
        assert!(m.load(a + 2, Size::W).is_err());
        assert!(m.load(a.wrapping_sub(1), Size::B).is_err());
        assert_eq!(m.load(b + 3, Size::B).unwrap(), 9);
        assert!(m.store(b, Size::B, 0).is_err());
        m.store(a + 4, Size::B, 0xff).unwrap();
        assert!(m.load(0, Size::B).is_err(), "NULL never maps");
        assert!(m.load(u64::MAX, Size::B).is_err());
        let fp = frame_pointer(0);
        m.store(fp - 8, Size::DW, 7).unwrap();
        assert_eq!(m.load(fp - 8, Size::DW).unwrap(), 7);
        assert!(m.load(fp, Size::B).is_err(), "above the top of the stack");
        assert!(m.load(frame_pointer(MAX_FRAMES - 1) + 1, Size::B).is_err());
        drop(m);
        assert_eq!(buf[4], 0xff);
    }

    /// The JIT relies on the frames' rows being one buffer, frame after frame.
    #[test]
    fn the_frames_are_one_buffer_in_order() {
        let mut s = Stack::default();
        let mut t = RegionTable::default();
        let mut buf = [0u8; 4];
        let mut m = MemoryMap::new(&mut s, &mut t);
        m.map_mut(&mut buf).unwrap();
        let (rows, n) = m.region_table();
        assert!(n > FIXED_ROWS);
        // SAFETY: `rows` points at `n` rows of three u64s.
        let base = |i: usize| unsafe { rows.add(24 * i).cast::<u64>().read() };
        let first = base(FIRST_FRAME_REGION as usize);
        for d in 0..MAX_FRAMES {
            let i = FIRST_FRAME_REGION as usize + d;
            assert_eq!(base(i), first + (d * FRAME_SIZE) as u64, "frame {d}");
            assert_eq!(m.table.rows[i].read_len, FRAME_SIZE as u64);
            assert_eq!(m.table.rows[i].write_len, FRAME_SIZE as u64);
        }
        m.store(frame_pointer(3) - 1, Size::B, 7).unwrap();
        drop(m);
        assert_eq!(s.buf[4 * FRAME_SIZE - 1], 7);
    }

    #[test]
    fn a_table_keeps_the_frames_of_its_own_stack_only() {
        let (mut s1, mut s2) = (Stack::default(), Stack::default());
        let mut buf = [0u8; 4];
        let mut t = RegionTable::default();
        let mut m = MemoryMap::new(&mut s1, &mut t);
        m.store(frame_pointer(1) - 1, Size::B, 7).unwrap();
        assert_eq!(
            m.map_mut(&mut buf).unwrap(),
            (FIXED_ROWS as u64) << REGION_SHIFT
        );
        drop(m);
        assert_eq!(t.rows.len(), FIXED_ROWS, "the packet's row is dropped");
        // The same stack: its rows are reused; another stack: they are rebuilt.
        let m = MemoryMap::new(&mut s1, &mut t);
        assert_eq!(m.load(frame_pointer(1) - 1, Size::B), Ok(7));
        assert!(m
            .load((FIXED_ROWS as u64) << REGION_SHIFT, Size::B)
            .is_err());
        drop(m);
        let m = MemoryMap::new(&mut s2, &mut t);
        assert_eq!(m.load(frame_pointer(1) - 1, Size::B), Ok(0));
        drop(m);
        drop(s2);
        // A table whose stack is gone is rebuilt for the next one.
        let mut s3 = Stack::default();
        let mut m = MemoryMap::new(&mut s3, &mut t);
        m.store(frame_pointer(0) - 8, Size::DW, 1).unwrap();
        assert_eq!(m.load(frame_pointer(1) - 1, Size::B), Ok(0));
    }

    #[test]
    fn a_forgotten_map_leaves_no_row_of_its_regions() {
        let mut s = Stack::default();
        let mut t = RegionTable::default();
        let mut buf = [5u8; 4];
        let mut m = MemoryMap::new(&mut s, &mut t);
        let a = m.map_mut(&mut buf).unwrap();
        // Leaked without its `Drop`: the table still holds the buffer's row ...
        std::mem::forget(m);
        assert_eq!(t.rows.len(), FIXED_ROWS + 1);
        // ... which the next map on the table must not offer.
        let m = MemoryMap::new(&mut s, &mut t);
        assert!(m.load(a, Size::B).is_err());
        assert_eq!(m.region_table().1, FIXED_ROWS);
    }

    #[test]
    fn writes_are_tracked_per_map() {
        let mut stack = Stack::default();
        let mut table = RegionTable::default();
        let m = MemoryMap::new(&mut stack, &mut table);
        assert!(m.may_have_written(), "nothing entered: unknown");
        drop(m);
        let mut m = MemoryMap::new(&mut stack, &mut table);
        m.enter_main(false);
        assert!(!m.may_have_written());
        m.enter_main(true);
        m.enter_main(false);
        assert!(m.may_have_written(), "one writer is enough");
    }

    /// A run that reaches only the top of frame 0 clears only that, and leaves the stack marked
    /// written, so that the next run of a program reaching all of it still finds zeros; both
    /// entries (with a map, and the lean one on a table) alike.
    #[test]
    fn entering_for_the_top_bytes_keeps_the_rest_marked_written() {
        let mut stack = Stack::default();
        let mut table = RegionTable::default();
        let fp = frame_pointer(0);
        let words = |m: &MemoryMap<'_>| -> Vec<u64> {
            (1..=64)
                .map(|k| m.load(fp - 8 * k, Size::DW).unwrap())
                .collect()
        };
        let mut m = MemoryMap::new(&mut stack, &mut table);
        m.enter_main(true);
        for k in 1..=64 {
            m.store(fp - 8 * k, Size::DW, k).unwrap();
        }
        // A reader of 16 bytes that writes nothing: the rest stays as written.
        m.enter_main_reaching(false, 16, true);
        let w = words(&m);
        assert_eq!(&w[..2], &[0, 0]);
        assert_eq!(&w[2..], &(3..=64).collect::<Vec<u64>>()[..]);
        m.enter_main(false);
        assert_eq!(words(&m), vec![0; 64]);
        // Clean now: a reader of every byte need not clear again, and one of 16 leaves it clean.
        m.enter_main_reaching(false, 16, true);
        m.store(fp - 64, Size::DW, 9).unwrap();
        m.enter_main(false);
        assert_eq!(words(&m)[7], 9, "marked clean: not cleared");
        drop(m);
        // The lean entry: dirty, clears 24 bytes (more than a frame is the frame).
        let mut m = MemoryMap::new(&mut stack, &mut table);
        m.enter_main(true);
        m.store(fp - 8, Size::DW, 1).unwrap();
        m.store(fp - 512, Size::DW, 2).unwrap();
        drop(m);
        table
            .enter_main_reaching(&mut stack, false, 24, true, &mut [])
            .unwrap();
        assert_eq!(stack.buf[FRAME_SIZE - 8], 0);
        assert_eq!(stack.buf[0], 2);
        table.enter_main(&mut stack, false, &mut []).unwrap();
        assert_eq!(stack.buf[0], 0);
        stack.buf[0] = 3;
        table
            .enter_main_reaching(&mut stack, false, 4096, true, &mut [])
            .unwrap();
        assert_eq!(stack.buf[0], 3, "clean after a full clear by a non-writer");
    }

    /// A batch's later entries through `reentry` leave the stack and its marks as entering
    /// again would: for every kind of program (writes or not, proven or not, reaching part of
    /// frame 0 or all of it) after every state an earlier run may have left.
    #[test]
    fn a_reentry_leaves_the_stack_as_an_entry_would() {
        // What a run of a writing program may leave: every byte of every frame written.
        let scribble = |stack: &mut Stack, k: u8| {
            for (i, b) in stack.buf.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31) ^ k | 1;
            }
        };
        for may_write in [false, true] {
            for bytes in [0, 8, 24, 40, 200, FRAME_SIZE, 4096] {
                for proven in [false, true] {
                    for before in 0..4u8 {
                        let after = |again: bool| {
                            let mut stack = Stack::default();
                            scribble(&mut stack, 7);
                            stack.dirty = before;
                            let mut table = RegionTable::default();
                            let mut m = MemoryMap::new(&mut stack, &mut table);
                            m.enter_main_reaching(may_write, bytes, proven);
                            let reentry = m.reentry(may_write, bytes, proven);
                            drop(m);
                            if may_write {
                                scribble(&mut stack, 9);
                            }
                            let mut m = MemoryMap::new(&mut stack, &mut table);
                            if again {
                                m.enter_main_reaching(may_write, bytes, proven);
                            } else {
                                // SAFETY: the map's stack, entered through the map last.
                                unsafe { reentry.apply() };
                            }
                            drop(m);
                            (stack.buf.clone(), stack.dirty)
                        };
                        let (entered, reentered) = (after(true), after(false));
                        assert!(
                            entered == reentered,
                            "may_write {may_write}, bytes {bytes}, proven {proven}, dirty {before}"
                        );
                    }
                }
            }
        }
    }

    /// `zero` clears exactly its bytes, whichever way its size takes.
    #[test]
    fn zero_clears_exactly_its_bytes() {
        for n in 0..=80 {
            for at in [0, 3] {
                let mut buf = [0xa5u8; 100];
                // SAFETY: `at + n` is at most 83, inside the buffer.
                unsafe { zero(buf.as_mut_ptr().add(at), n) };
                for (i, &b) in buf.iter().enumerate() {
                    let inside = (at..at + n).contains(&i);
                    assert_eq!(b, if inside { 0 } else { 0xa5 }, "n {n}, at {at}, byte {i}");
                }
            }
        }
    }

    /// A frame past 0 that a run wrote without entering it (a pointer an unverified program
    /// forged) reads as zeros in the next unproven run, through either entry; a proven run
    /// (which cannot reach it) leaves it for a later unproven one to clear.
    #[test]
    fn frames_past_0_written_by_a_run_are_cleared_for_the_next_unproven_one() {
        let mut stack = Stack::default();
        let mut table = RegionTable::default();
        let deep = frame_pointer(7) - 8;
        let mut m = MemoryMap::new(&mut stack, &mut table);
        m.enter_main(true);
        m.store(deep, Size::DW, 7).unwrap();
        m.enter_main(false);
        assert_eq!(
            m.load(deep, Size::DW).unwrap(),
            0,
            "cleared for an unproven run"
        );
        m.store(deep, Size::DW, 8).unwrap();
        m.enter_main_reaching(true, FRAME_SIZE, true);
        assert_eq!(
            m.load(deep, Size::DW).unwrap(),
            8,
            "a proven run does not clear it"
        );
        drop(m);
        table.enter_main(&mut stack, false, &mut []).unwrap();
        assert_eq!(
            stack.buf[FRAME_SIZE * 8 - 8],
            0,
            "the lean entry clears it too"
        );
        stack.buf[FRAME_SIZE * 8 - 8] = 5;
        table.enter_main(&mut stack, false, &mut []).unwrap();
        assert_eq!(
            stack.buf[FRAME_SIZE * 8 - 8],
            5,
            "a non-writer left nothing to clear"
        );
    }

    /// A context of two u32 fields: `a` read-only, `b` read-write.
    struct TwoFields {
        a: u32,
        b: u32,
    }

    impl Context for TwoFields {
        fn load(&self, off: u32, size: Size) -> Option<u64> {
            match (off, size) {
                (0, Size::W) => Some(self.a as u64),
                (4, Size::W) => Some(self.b as u64),
                _ => None,
            }
        }
        fn store(&mut self, off: u32, size: Size, value: u64) -> bool {
            match (off, size) {
                (4, Size::W) => {
                    self.b = value as u32;
                    true
                }
                _ => false,
            }
        }
        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn copies_check_the_source_then_the_destination() {
        let mut stack = Stack::default();
        let mut buf = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let ro = [9u8, 10, 11, 12];
        let mut table = RegionTable::default();
        let mut m = MemoryMap::new(&mut stack, &mut table);
        let a = m.map_mut(&mut buf).unwrap();
        let b = m.map_ro(&ro).unwrap();
        // Overlapping ranges of one region, both ways: as if through a buffer in between.
        m.copy(a + 2, a, 4).unwrap();
        assert_eq!(m.slice(a, 8).unwrap(), [1, 2, 1, 2, 3, 4, 7, 8]);
        m.copy(a, a + 3, 5).unwrap();
        assert_eq!(m.slice(a, 8).unwrap(), [2, 3, 4, 7, 8, 4, 7, 8]);
        // From a read-only region into a writable one.
        m.copy(a + 4, b, 4).unwrap();
        assert_eq!(m.slice(a, 8).unwrap(), [2, 3, 4, 7, 9, 10, 11, 12]);
        // Into a read-only region: the destination's fault, a write.
        let e = m.copy(b, a, 4).unwrap_err();
        assert_eq!((e.addr, e.size, e.write), (b, 4, true));
        // Both ranges bad: the source's fault comes first, as `slice` then `slice_mut` give.
        let e = m.copy(b, a + 6, 4).unwrap_err();
        assert_eq!((e.addr, e.size, e.write), (a + 6, 4, false));
        // A bad destination after a good source leaves the destination as it was.
        let e = m.copy(a + 6, b, 4).unwrap_err();
        assert_eq!((e.addr, e.write), (a + 6, true));
        assert_eq!(m.slice(a, 8).unwrap(), [2, 3, 4, 7, 9, 10, 11, 12]);
        // Nothing is checked for no bytes, as `slice` checks nothing.
        m.copy(0, u64::MAX, 0).unwrap();
    }

    /// Every length of each arm and past them, between ranges apart and overlapping either way:
    /// what `copy_within` (a memmove) gives, and no byte outside the destination touched.
    #[test]
    fn small_moves_copy_as_memmove_does() {
        let start: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for n in 0..=40 {
            for (src, dst) in [
                (10, 50),
                (50, 10),
                (20, 20 + n / 2),
                (20 + n / 2, 20),
                (30, 31),
                (31, 30),
                (5, 5),
            ] {
                let mut want = start.clone();
                want.copy_within(src..src + n, dst);
                let mut got = start.clone();
                let p = got.as_mut_ptr();
                // SAFETY: both ranges lie inside `got`, which nothing else uses.
                unsafe { move_bytes(p.add(dst), p.add(src), n) };
                assert_eq!(got, want, "{n} bytes from {src} to {dst}");
            }
        }
    }

    #[test]
    fn reading_the_context_keeps_its_stamp() {
        struct Pure(TwoFields);
        impl Context for Pure {
            fn load(&self, off: u32, size: Size) -> Option<u64> {
                self.0.load(off, size)
            }
            fn store(&mut self, off: u32, size: Size, value: u64) -> bool {
                self.0.store(off, size, value)
            }
            fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
                self
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            fn loads_are_pure(&self) -> bool {
                true
            }
        }
        let mut stack = Stack::default();
        let mut ctx = Pure(TwoFields { a: 7, b: 0 });
        let mut table = RegionTable::default();
        let mut m = MemoryMap::new(&mut stack, &mut table);
        assert!(m.context().is_none(), "no context mapped yet");
        assert_eq!(m.packet(), None);
        m.map_context(&mut ctx).unwrap();
        let s = m.ctx_stamp();
        assert_ne!(s, 0);
        let a = m.context().and_then(|c| c.downcast_ref::<Pure>()).unwrap();
        assert_eq!(a.0.a, 7);
        assert!(m.context().unwrap().downcast_ref::<TwoFields>().is_none());
        assert_eq!(m.ctx_stamp(), s, "a read changes no field");
        assert_eq!(m.packet(), None, "a context without a packet (the default)");
        m.context_mut();
        let t = m.ctx_stamp();
        assert!(t != s && t != 0, "a mutable borrow may change any field");
    }

    /// A context's metadata move: `None` for a context without one (the default) or no
    /// context, the context's answer otherwise, and a new stamp only after a move that moved.
    #[test]
    fn a_metadata_move_changes_the_stamp_only_when_it_moved() {
        /// The metadata's start at `a`, which may move down to 0 and up to 16 by 4s.
        struct Meta(TwoFields);
        impl Context for Meta {
            fn load(&self, off: u32, size: Size) -> Option<u64> {
                self.0.load(off, size)
            }
            fn store(&mut self, off: u32, size: Size, value: u64) -> bool {
                self.0.store(off, size, value)
            }
            fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
                self
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            fn loads_are_pure(&self) -> bool {
                true
            }
            fn adjust_meta(&mut self, delta: i64) -> Option<i64> {
                let at = self.0.a as i64 + delta;
                Some(match at {
                    _ if delta % 4 != 0 => -13,
                    0..=16 => {
                        self.0.a = at as u32;
                        0
                    }
                    _ => -22,
                })
            }
        }
        let mut stack = Stack::default();
        let mut table = RegionTable::default();
        let mut plain = TwoFields { a: 8, b: 0 };
        let mut ctx = Meta(TwoFields { a: 8, b: 0 });
        let mut m = MemoryMap::new(&mut stack, &mut table);
        assert_eq!(m.adjust_ctx_meta(-4), None, "no context");
        m.map_context(&mut plain).unwrap();
        assert_eq!(m.adjust_ctx_meta(-4), None, "a context without metadata");
        drop(m);
        let mut m = MemoryMap::new(&mut stack, &mut table);
        let c = m.map_context(&mut ctx).unwrap();
        let s = m.ctx_stamp();
        for (delta, r0) in [(-2, -13), (12, -22), (0, 0)] {
            assert_eq!(m.adjust_ctx_meta(delta), Some(r0), "{delta}");
            assert_eq!(m.ctx_stamp(), s, "{delta} moved nothing");
        }
        assert_eq!(m.adjust_ctx_meta(-8), Some(0));
        let t = m.ctx_stamp();
        assert!(t != s && t != 0, "the edge moved");
        assert_eq!(m.load(c, Size::W), Ok(0));
    }

    /// A context's tail move: `None` without a context or for one without a packet, the
    /// context's answer otherwise with the uncovered bytes zeroed, a new stamp only after a move
    /// that moved, and nothing changed when those bytes are not writable.
    #[test]
    fn a_tail_move_zeroes_what_it_uncovers_and_changes_the_stamp_only_when_it_moved() {
        /// A packet at guest address `at`, its end `end` bytes after it, which may move from 2
        /// up to 16.
        struct Tail {
            at: u64,
            end: u32,
        }
        impl Context for Tail {
            fn load(&self, off: u32, size: Size) -> Option<u64> {
                (off == 0 && size == Size::W).then_some(self.end as u64)
            }
            fn store(&mut self, _: u32, _: Size, _: u64) -> bool {
                false
            }
            fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
                self
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            fn loads_are_pure(&self) -> bool {
                true
            }
            fn adjust_tail(
                &mut self,
                delta: i64,
                zero: &mut dyn FnMut(u64, usize) -> bool,
            ) -> Option<i64> {
                let end = self.end as i64 + delta;
                if !(2..=16).contains(&end) {
                    return Some(-22);
                }
                if end > self.end as i64
                    && !zero(self.at + self.end as u64, (end - self.end as i64) as usize)
                {
                    return None;
                }
                self.end = end as u32;
                Some(0)
            }
        }
        let mut stack = Stack::default();
        let mut table = RegionTable::default();
        let mut plain = TwoFields { a: 8, b: 0 };
        let mut m = MemoryMap::new(&mut stack, &mut table);
        assert_eq!(m.adjust_ctx_tail(4), None, "no context");
        m.map_context(&mut plain).unwrap();
        assert_eq!(m.adjust_ctx_tail(4), None, "a context without a packet");
        drop(m);

        let mut buf = [0xffu8; 16];
        let ro = [0xffu8; 16];
        let mut ctx = Tail { at: 0, end: 8 };
        let mut unmapped = Tail { at: 0, end: 8 };
        let mut m = MemoryMap::new(&mut stack, &mut table);
        let at = m.map_mut(&mut buf).unwrap();
        ctx.at = at;
        let c = m.map_context(&mut ctx).unwrap();
        let s = m.ctx_stamp();
        for (delta, r0) in [(9, -22), (-7, -22), (0, 0)] {
            assert_eq!(m.adjust_ctx_tail(delta), Some(r0), "{delta}");
            assert_eq!(m.ctx_stamp(), s, "{delta} moved nothing");
        }
        assert_eq!(m.adjust_ctx_tail(-4), Some(0));
        let t = m.ctx_stamp();
        assert!(t != s && t != 0, "the end moved");
        assert_eq!(m.load(c, Size::W), Ok(4));
        assert_eq!(
            m.slice(at, 16).unwrap(),
            &[0xff; 16],
            "a shrink zeroes nothing"
        );
        assert_eq!(m.adjust_ctx_tail(6), Some(0));
        assert_eq!(m.load(c, Size::W), Ok(10));
        let want: Vec<u8> = (0..16)
            .map(|i| if (4..10).contains(&i) { 0 } else { 0xff })
            .collect();
        assert_eq!(
            m.slice(at, 16).unwrap(),
            &want[..],
            "the grown bytes read as zero"
        );
        drop(m);

        // Bytes that cannot be written: no answer, nothing changed.
        for read_only in [true, false] {
            let mut m = MemoryMap::new(&mut stack, &mut table);
            let ro_at = m.map_ro(&ro).unwrap();
            let place = if read_only { ro_at } else { 0 };
            unmapped.at = place;
            m.map_context(&mut unmapped).unwrap();
            let s = m.ctx_stamp();
            assert_eq!(m.adjust_ctx_tail(4), None, "{place:#x}");
            assert_eq!(m.ctx_stamp(), s);
            assert_eq!(m.adjust_ctx_tail(-4), Some(0), "a shrink zeroes nothing");
            drop(m);
            assert_eq!(unmapped.end, 4);
            unmapped.end = 8;
        }
    }

    #[test]
    fn context_fields_are_computed_and_checked() {
        let mut stack = Stack::default();
        let mut ctx = TwoFields { a: 7, b: 0 };
        let mut table = RegionTable::default();
        let mut m = MemoryMap::new(&mut stack, &mut table);
        let c = m.map_context(&mut ctx).unwrap();
        assert_eq!(m.load(c, Size::W), Ok(7));
        assert!(m.load(c + 1, Size::W).is_err(), "misaligned field");
        assert!(m.load(c, Size::DW).is_err(), "wrong size");
        assert!(m.store(c, Size::W, 1).is_err(), "read-only field");
        m.store(c + 4, Size::W, 9).unwrap();
        assert!(
            m.update(c + 4, Size::W, |v| v + 1).is_err(),
            "no atomics on a context"
        );
        assert!(m.slice(c, 4).is_err(), "no raw bytes behind a context");
        m.context_mut()
            .unwrap()
            .downcast_mut::<TwoFields>()
            .unwrap()
            .a = 3;
        assert_eq!(m.load(c, Size::W), Ok(3));
        drop(m);
        assert_eq!(ctx.b, 9);
    }
}
