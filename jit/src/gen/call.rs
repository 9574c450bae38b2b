//! Calls: helpers (through the `call` shim and the run's `Host`), local calls (the caller's
//! callee-saved registers and frame pointer saved in the context) and exits (a return to the
//! call site, or the end of the run).

use std::mem::offset_of;

use bpfsim_vm::host::{ArrayLookup, SlotLookup};
use bpfsim_vm::isa::{CallTarget, Insn, Reg, Size};
use bpfsim_vm::memory::{frame_pointer, FIRST_FRAME_REGION, FRAME_SIZE, REGION_SHIFT};
use bpfsim_vm::TrapCode;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, FuncRef, InstBuilder, MemFlags, Value};

use super::{Exit, Gen, I64};
use crate::shims::{FrameSave, ValueRow, VmCtx};
use crate::LookupPath;

/// The most bytes of a callee's frame a call zeroes with stores of its own; more go through
/// [`crate::shims::zero_stack`].
const INLINE_ZERO: usize = 128;

/// For each subprogram (by index in `subprogs`), the return sites of the local calls to it made
/// from the subprograms `compiled` marks (the others' are not in the function).
pub(super) fn sites_by_subprogram(
    insns: &[Insn],
    pcs: &[usize],
    subprogs: &[usize],
    compiled: &[bool],
) -> Vec<Vec<usize>> {
    let mut sites = vec![Vec::new(); subprogs.len()];
    for (i, insn) in insns.iter().enumerate() {
        if !compiled[sub_of(subprogs, pcs[i])] {
            continue;
        }
        if let Insn::Call(CallTarget::Local(off)) = *insn {
            let next = pcs[i] + 1;
            let target = (next as i64 + off as i64) as usize;
            if let Ok(sub) = subprogs.binary_search(&target) {
                sites[sub].push(next);
            }
        }
    }
    sites
}

/// For each subprogram (by index in `subprogs`), which of `r6`-`r9` its own instructions write,
/// as a mask by register index. Calls are not counted: a local call returns with them as they
/// were, a helper call leaves them alone.
pub(super) fn callee_saved_written(insns: &[Insn], pcs: &[usize], subprogs: &[usize]) -> Vec<u16> {
    const SAVED: u16 = 0b11_1100_0000;
    let mut w = vec![0u16; subprogs.len()];
    for (i, insn) in insns.iter().enumerate() {
        let written = match insn {
            Insn::Call(_) | Insn::Callx { .. } | Insn::LoadPacket { .. } | Insn::Exit => 0,
            _ => super::regs_written(insn),
        };
        let sub = subprogs.partition_point(|&s| s <= pcs[i]).saturating_sub(1);
        if let Some(m) = w.get_mut(sub) {
            *m |= written & SAVED;
        }
    }
    w
}

/// The subprogram (index in `subprogs`) that slot `pc` belongs to.
pub(super) fn sub_of(subprogs: &[usize], pc: usize) -> usize {
    subprogs.partition_point(|&s| s <= pc).saturating_sub(1)
}

/// The subprograms a function rooted at subprogram `root` contains: the root and every
/// subprogram its local calls reach (jumps never leave a subprogram). A callback's body, which
/// only a helper enters, is a function of its own; the main program's function leaves it out.
pub(super) fn reachable(
    insns: &[Insn],
    pcs: &[usize],
    subprogs: &[usize],
    root: usize,
) -> Vec<bool> {
    let mut calls = vec![Vec::new(); subprogs.len()];
    for (i, insn) in insns.iter().enumerate() {
        if let Insn::Call(CallTarget::Local(off)) = *insn {
            let target = (pcs[i] as i64 + 1 + off as i64) as usize;
            if let Ok(to) = subprogs.binary_search(&target) {
                calls[sub_of(subprogs, pcs[i])].push(to);
            }
        }
    }
    let mut seen = vec![false; subprogs.len()];
    let mut work = vec![root];
    while let Some(s) = work.pop() {
        if s < seen.len() && !std::mem::replace(&mut seen[s], true) {
            work.extend(&calls[s]);
        }
    }
    seen
}

/// The callbacks' entries (`lddw rX, func`'s targets, by slot, ascending) and the call depth
/// each is compiled for: one more than the depth of the subprogram whose `lddw` names it first,
/// following local calls and such references from the main program at depth 0 (breadth first,
/// so the least depth). A callback no such path reaches takes 1. The callbacks' shim runs the
/// compiled code only when the helper's call is made at one depth less (any other depth is the
/// interpreter's), so the guess decides the speed, never the result.
pub(crate) fn callback_roots(
    insns: &[Insn],
    pcs: &[usize],
    subprogs: &[usize],
) -> Vec<(usize, u64)> {
    let mut edges = vec![Vec::new(); subprogs.len()];
    let mut roots = Vec::new();
    for (i, insn) in insns.iter().enumerate() {
        let (off, func) = match *insn {
            Insn::Call(CallTarget::Local(off)) => (off, false),
            Insn::LdImm64 {
                imm: bpfsim_vm::isa::Imm64::Func(off),
                ..
            } => (off, true),
            _ => continue,
        };
        let target = (pcs[i] as i64 + 1 + off as i64) as usize;
        if let Ok(to) = subprogs.binary_search(&target) {
            edges[sub_of(subprogs, pcs[i])].push(to);
            if func {
                roots.push(to);
            }
        }
    }
    let mut depth: Vec<Option<u64>> = vec![None; subprogs.len()];
    depth[0] = Some(0);
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(s) = queue.pop_front() {
        let d = depth[s].unwrap_or(0);
        for &t in &edges[s] {
            if depth[t].is_none() {
                depth[t] = Some(d + 1);
                queue.push_back(t);
            }
        }
    }
    roots.sort_unstable();
    roots.dedup();
    roots
        .into_iter()
        .filter(|&r| r != 0)
        .map(|r| (subprogs[r], depth[r].unwrap_or(1)))
        .collect()
}

/// Each subprogram's call depth when it has one only: every call to it is made from frames of
/// one depth, and that depth leaves room for its frame (below the limit, so no call of a
/// subprogram with a static depth can fail the depth test). The function's root (subprogram
/// `root`, the main program or a callback) runs at `base`; only calls made from the
/// subprograms `compiled` marks count. `None` when some subprogram that local calls reach has
/// no such depth (recursion, calls from several depths, the root called): the code then keeps
/// the depth in a variable. A subprogram no call reaches takes 0.
pub(super) fn static_depths(
    insns: &[Insn],
    pcs: &[usize],
    subprogs: &[usize],
    root: usize,
    base: u64,
    compiled: &[bool],
) -> Option<Vec<u64>> {
    // Calls by (caller's subprogram, callee's subprogram).
    let mut calls = Vec::new();
    for (i, insn) in insns.iter().enumerate() {
        if let Insn::Call(CallTarget::Local(off)) = *insn {
            let target = (pcs[i] as i64 + 1 + off as i64) as usize;
            let from = sub_of(subprogs, pcs[i]);
            if !compiled[from] {
                continue;
            }
            let to = subprogs.binary_search(&target).ok()?;
            calls.push((from, to));
        }
    }
    let mut depth: Vec<Option<u64>> = vec![None; subprogs.len()];
    depth[root] = Some(base);
    // Each round settles the subprograms one call further from the root; a depth past the
    // last frame that can call (or a recursion, which grows it each round) gives up.
    for _ in 0..=subprogs.len() {
        let mut changed = false;
        for &(from, to) in &calls {
            let Some(d) = depth[from] else { continue };
            if to == root || d + 1 >= bpfsim_vm::memory::MAX_FRAMES as u64 - 1 {
                return None;
            }
            match depth[to] {
                None => {
                    depth[to] = Some(d + 1);
                    changed = true;
                }
                Some(e) if e != d + 1 => return None,
                Some(_) => {}
            }
        }
        if !changed {
            return Some(depth.iter().map(|d| d.unwrap_or(0)).collect());
        }
    }
    None
}

/// Which shim a helper call goes through.
pub(super) enum Helper {
    /// `call id` or `callx`: the generic shim, with the id.
    Any(Value),
    /// `call 1`: `bpf_map_lookup_elem`, two arguments ([`crate::shims::map_lookup`]).
    MapLookup,
}

impl Gen<'_, '_> {
    pub(super) fn translate_local_call(&mut self, pc: usize, next: usize, off: i32) {
        // The callee's entry and the return site check the budget: the count is settled here.
        self.flush();
        let fsz = std::mem::size_of::<FrameSave>() as i64;
        let target = (next as i64 + off as i64) as usize;
        let t = self.block_at(target);
        if self.static_depth.is_some() {
            // Below the limit by construction (`static_depths`): no test, constant rows.
            let d = self.static_depth_here();
            let row = (offset_of!(VmCtx, frames) as i64 + d as i64 * fsz) as i32;
            let sitev = self.iconst(next as u64);
            self.b.ins().store(MemFlags::trusted(), sitev, self.vm, row);
            for (k, r) in (6..11).enumerate() {
                let v = self.reg_at(r);
                self.b
                    .ins()
                    .store(MemFlags::trusted(), v, self.vm, row + 8 + 8 * k as i32);
            }
            self.clear_callee(target, Ok(d + 1));
            let fp = self.iconst(frame_pointer(d as usize + 1));
            self.b.def_var(self.regs[10], fp);
            self.b.ins().jump(t, &[]);
            return;
        }
        let depth = self.depth();
        let full = self
            .b
            .ins()
            .icmp_imm(IntCC::SignedGreaterThanOrEqual, depth, 7);
        let deep = self.b.create_block();
        let ok = self.cont();
        self.b.ins().brif(full, deep, &[], ok, &[]);
        self.switch(deep);
        let d = self.iconst(8);
        self.trap(pc, TrapCode::CallDepth, d, 0);
        self.switch(ok);
        // Save the caller's frame in vm.frames[depth], with the return site's slot.
        let rowoff = self.b.ins().imul_imm(depth, fsz);
        let frames = self
            .b
            .ins()
            .iadd_imm(self.vm, offset_of!(VmCtx, frames) as i64);
        let row = self.b.ins().iadd(frames, rowoff);
        let sitev = self.iconst(next as u64);
        self.b.ins().store(MemFlags::trusted(), sitev, row, 0);
        for (k, r) in (6..10).enumerate() {
            let v = self.reg_at(r);
            self.b
                .ins()
                .store(MemFlags::trusted(), v, row, 8 + 8 * k as i32);
        }
        let fp = self.reg_at(10);
        self.b.ins().store(MemFlags::trusted(), fp, row, 40);
        let nd = self.b.ins().iadd_imm(depth, 1);
        self.b.def_var(self.depth, nd);
        if self.fp_fixed {
            self.set_frame_top(nd);
        }
        self.clear_callee(target, Err(nd));
        // r10 = frame_pointer(depth): ((FIRST + depth) << 32) | FRAME_SIZE.
        let region = self.b.ins().iadd_imm(nd, FIRST_FRAME_REGION as i64);
        let hi = self.b.ins().ishl_imm(region, REGION_SHIFT as i64);
        let newfp = self.b.ins().bor_imm(hi, FRAME_SIZE as i64);
        self.b.def_var(self.regs[10], newfp);
        self.b.ins().jump(t, &[]);
    }

    /// Zero the callee's frame at a call to the subprogram at `target`, in the frame at depth
    /// `frame` (known when compiling, or in a value below `MAX_FRAMES`): the bytes the verifier
    /// says it reaches ([`crate::Hints::frame_bytes`]), else all of it. No call into Rust for a
    /// few stores: the address is the stack buffer's base plus the frame's place in it.
    pub(super) fn clear_callee(&mut self, target: usize, frame: Result<u64, Value>) {
        let len = match self.frame_bytes.binary_search_by_key(&target, |&(s, _)| s) {
            Ok(i) => (self.frame_bytes[i].1 as usize)
                .min(FRAME_SIZE)
                .next_multiple_of(8),
            Err(_) => FRAME_SIZE,
        };
        if len == 0 {
            return;
        }
        let base = self.stack_base();
        let skip = (FRAME_SIZE - len) as i64;
        let at = match frame {
            Ok(d) => self
                .b
                .ins()
                .iadd_imm(base, d as i64 * FRAME_SIZE as i64 + skip),
            Err(nd) => {
                let row = self.b.ins().imul_imm(nd, FRAME_SIZE as i64);
                let top = self.b.ins().iadd(base, row);
                self.b.ins().iadd_imm(top, skip)
            }
        };
        if len <= INLINE_ZERO {
            let z = self.iconst(0);
            let mut k = 0;
            if len >= 16 {
                let v = self.b.ins().splat(types::I64X2, z);
                while k + 16 <= len {
                    self.b.ins().store(MemFlags::trusted(), v, at, k as i32);
                    k += 16;
                }
            }
            if k < len {
                self.b.ins().store(MemFlags::trusted(), z, at, k as i32);
            }
        } else {
            let n = self.iconst(len as u64);
            self.b.ins().call(self.shims.zero_stack, &[at, n]);
        }
    }

    /// The exit at `pc`. In a subprogram other than the function's root (the main program, or
    /// the callback the function runs) it always returns to a caller (the code enters one only
    /// through a local call), one of the calls to that subprogram; in the root it ends the
    /// function's run, unless some call targets the root.
    pub(super) fn translate_exit(&mut self, pc: usize) {
        self.flush();
        let sub = self.subprogs.partition_point(|&s| s <= pc) - 1;
        let sites = std::mem::take(&mut self.sub_sites[sub]);
        if sites.is_empty() {
            // Never a callee: every exit here is the root frame's, so no depth test.
            let r0 = self.reg(Reg::R0);
            let exit = self.exit(Exit::Return);
            self.b.ins().jump(exit, &[r0.into()]);
            return;
        }
        let fsz = std::mem::size_of::<FrameSave>() as i64;
        let row = if self.static_depth.is_some() {
            // A callee (the root, called, has no static depth): below the root's depth.
            let nd = self.static_depth_here().saturating_sub(1);
            self.b
                .ins()
                .iadd_imm(self.vm, offset_of!(VmCtx, frames) as i64 + nd as i64 * fsz)
        } else {
            self.dynamic_return(sub)
        };
        for (k, r) in (6..10).enumerate() {
            if self.sub_writes[sub] & (1 << r) == 0 {
                continue;
            }
            let v = self
                .b
                .ins()
                .load(I64, MemFlags::trusted(), row, 8 + 8 * k as i32);
            self.b.def_var(self.regs[r], v);
        }
        // Where `r10` is each subprogram's constant (`Gen::static_fp`) the variable is never
        // read: no load of what the call saved (Cranelift at `opt_level` none keeps dead loads).
        if !self.static_fp() {
            let fp = self.b.ins().load(I64, MemFlags::trusted(), row, 40);
            self.b.def_var(self.regs[10], fp);
        }
        // Back to the call site's continuation: with one caller, no need to read which.
        if sites.len() == 1 {
            let t = self.block_at(sites[0]);
            self.b.ins().jump(t, &[]);
        } else {
            let site = self.b.ins().load(I64, MemFlags::trusted(), row, 0);
            self.dispatch(site, &sites);
        }
        self.sub_sites[sub] = sites;
    }

    /// An exit's return with the depth in a variable: in the root (called from somewhere) the
    /// function's run ends at the root's depth; else the depth goes down one and the caller's
    /// saved frame is at the returned row.
    fn dynamic_return(&mut self, sub: usize) -> Value {
        let depth = self.depth();
        if sub == self.root_sub {
            let main = self
                .b
                .ins()
                .icmp_imm(IntCC::Equal, depth, self.root_depth as i64);
            let ret = self.b.create_block();
            let r0 = self.reg(Reg::R0);
            let exit = self.exit(Exit::Return);
            self.b.ins().brif(main, exit, &[r0.into()], ret, &[]);
            self.switch(ret);
        }
        let nd = self.b.ins().iadd_imm(depth, -1);
        self.b.def_var(self.depth, nd);
        if self.fp_fixed {
            self.set_frame_top(nd);
        }
        let fsz = std::mem::size_of::<FrameSave>() as i64;
        let rowoff = self.b.ins().imul_imm(nd, fsz);
        let frames = self
            .b
            .ins()
            .iadd_imm(self.vm, offset_of!(VmCtx, frames) as i64);
        self.b.ins().iadd(frames, rowoff)
    }

    /// Jump to the return site whose slot `slot` holds, among `sites` (a chain of compares:
    /// call sites are few); the last is taken without a compare.
    fn dispatch(&mut self, slot: Value, sites: &[usize]) {
        for (k, &s) in sites.iter().enumerate() {
            let t = self.block_at(s);
            if k + 1 == sites.len() {
                self.b.ins().jump(t, &[]);
                return;
            }
            let hit = self.b.ins().icmp_imm(IntCC::Equal, slot, s as i64);
            let nextb = self.b.create_block();
            self.b.ins().brif(hit, t, &[], nextb, &[]);
            self.switch(nextb);
        }
    }

    /// A helper call. The exact budget goes to the context first, because a helper with a
    /// callback (`bpf_loop`, `bpf_for_each_map_elem`, ...) has the interpreter run the callback
    /// with it; the budget comes back from the context after the call. When what the callbacks
    /// left cannot pay for the path to the next checkpoint, the shim has the interpreter finish
    /// the run (`shims::check_after_callbacks`) and reports it as a stop, so the code has no
    /// check of its own here (a compare, a cold block and every register passed to it, after
    /// every call, for what only a callback can cause): it stores the registers the shim is not
    /// passed and a later instruction may read, for that hand-over.
    pub(super) fn helper(&mut self, pc: usize, helper: Helper) {
        let adjust = self.adjust();
        let left = self.b.use_var(self.left);
        let exact = self.b.ins().iadd_imm(left, adjust);
        self.vm_store(offset_of!(VmCtx, left), exact);
        let need = self.need_at(pc + 1);
        let site = self.iconst(pc as u64 | need << 32);
        let passed = match helper {
            Helper::Any(_) => 5,
            Helper::MapLookup => 2,
        };
        // Only the registers a later instruction may read: the interpreter gets 0 for the
        // others, which no path reads before writing. Where the depth is a constant, the shim
        // is told which were left out with it (`shims::split_depth`); elsewhere all are stored.
        let known_depth = match (self.fixed_depth, &self.static_depth) {
            (Some(_), _) => Some(self.root_depth),
            (None, Some(_)) => Some(self.static_depth_here()),
            (None, None) => None,
        };
        let live = match known_depth {
            Some(_) => self.live.get(pc + 1).copied().unwrap_or(u16::MAX),
            None => u16::MAX,
        };
        let mut skipped = 0u64;
        if need > 0 {
            for r in passed + 1..11 {
                if live & 1 << r == 0 {
                    skipped |= 1 << r;
                    continue;
                }
                let v = self.reg_at(r);
                self.vm_store(offset_of!(VmCtx, regs) + 8 * r, v);
            }
        }
        let depth = match known_depth {
            Some(d) => self.iconst(d | skipped << 32),
            None => self.depth(),
        };
        let call = match helper {
            Helper::Any(id) => {
                let args: Vec<Value> = (1..=5).map(|r| self.reg_at(r)).collect();
                self.b.ins().call(
                    self.shims.call,
                    &[
                        self.vm, id, args[0], args[1], args[2], args[3], args[4], site, depth,
                    ],
                )
            }
            Helper::MapLookup => {
                let (map, key) = (self.reg_at(1), self.reg_at(2));
                self.b
                    .ins()
                    .call(self.shims.map_lookup, &[self.vm, map, key, site, depth])
            }
        };
        let v = self.b.inst_results(call)[0];
        let st = self.vm_load(offset_of!(VmCtx, status));
        let ok = self.cont();
        let stop = self.exit(Exit::HelperStop);
        self.b.ins().brif(st, stop, &[], ok, &[]);
        self.switch(ok);
        self.set(Reg::R0, v);
        let now = self.vm_load(offset_of!(VmCtx, left));
        let after = self.b.ins().iadd_imm(now, -adjust);
        self.b.def_var(self.left, after);
    }

    /// `call 181`, `bpf_loop(nr_loops, callback, ctx, flags)`, as the kernel's verifier inlines
    /// it: where the callback is a compiled callback's function for the frame below this one
    /// (the one `r2` names when the block loaded it, else the only such function), the code
    /// calls that function directly, which makes the calls one after another (see
    /// `Gen::callback_done`), when the run's host says its `bpf_loop` is the simulator's
    /// ([`bpfsim_vm::Host::inline_loop`]), `r2` is that function's address, `r4` (flags) is 0
    /// and `r1` is from 1 to `1 << 23` (each tested only when the block did not set it to a
    /// constant). Anything else goes through the helper's shim, which checks what the host
    /// says. The budget as for a helper: exact into the callback's function and back out of
    /// it; when what is left cannot pay for the path to the next checkpoint, the run is
    /// handed to the interpreter from the next instruction, as a checkpoint hands a block
    /// over. A call the callback's function could not finish (a trap, a hand-over) goes to
    /// [`crate::shims::loop_rest`].
    pub(super) fn translate_loop(&mut self, pc: usize) {
        let depth = match (self.fixed_depth, &self.static_depth) {
            (Some(_), _) => Some(self.root_depth),
            (None, Some(_)) => Some(self.static_depth_here()),
            (None, None) => None,
        };
        let known = self.consts[2];
        let target = depth.and_then(|d| {
            let mut fits = self.loop_targets.iter().filter(|t| t.1 == d + 1);
            match known {
                Some(f) => fits
                    .find(|t| bpfsim_vm::interp::FUNC_TAG | t.0 as u64 == f)
                    .copied(),
                None => {
                    let first = fits.next().copied();
                    first.filter(|_| fits.next().is_none())
                }
            }
        });
        let Some((slot, cb_depth, func)) = target else {
            let idv = self.iconst(bpfsim_vm::host::LOOP as u64);
            self.helper(pc, Helper::Any(idv));
            return;
        };
        let generic = self.b.create_block();
        let done = self.b.create_block();
        let addr = bpfsim_vm::interp::FUNC_TAG | slot as u64;
        // The tests, each falling to the helper's shim.
        let on = self.vm_load(offset_of!(VmCtx, inline_loop));
        let next = self.cont();
        self.b.ins().brif(on, next, &[], generic, &[]);
        self.switch(next);
        if known != Some(addr) {
            let r2 = self.reg(Reg::R2);
            let same = self.b.ins().icmp_imm(IntCC::Equal, r2, addr as i64);
            let next = self.cont();
            self.b.ins().brif(same, next, &[], generic, &[]);
            self.switch(next);
        }
        if self.consts[4] != Some(0) {
            let r4 = self.reg_at(4);
            let next = self.cont();
            self.b.ins().brif(r4, generic, &[], next, &[]);
            self.switch(next);
        }
        const MAX_LOOPS: u64 = 1 << 23;
        let n = match self.consts[1] {
            Some(n) if (1..=MAX_LOOPS).contains(&n) => self.iconst(n),
            _ => {
                let n = self.reg(Reg::R1);
                let less = self.b.ins().iadd_imm(n, -1);
                let fits = self
                    .b
                    .ins()
                    .icmp_imm(IntCC::UnsignedLessThan, less, MAX_LOOPS as i64);
                let next = self.cont();
                self.b.ins().brif(fits, next, &[], generic, &[]);
                self.switch(next);
                n
            }
        };
        // The calls: from index 0 below `n`, a `bpf_loop`'s (no table), in the callback's frame
        // (where its hand-overs end), r3-r5 0 for the first call.
        let adjust = self.adjust();
        let left = self.b.use_var(self.left);
        let exact = self.b.ins().iadd_imm(left, adjust);
        let zero = self.iconst(0);
        let cbd = self.iconst(cb_depth);
        self.vm_store(offset_of!(VmCtx, base), cbd);
        self.vm_store(offset_of!(VmCtx, cb_i), zero);
        self.vm_store(offset_of!(VmCtx, cb_end), n);
        self.vm_store(offset_of!(VmCtx, cb_args), zero);
        for r in 3..=5 {
            if self.read & 1 << r != 0 {
                self.vm_store(offset_of!(VmCtx, args) + 8 * (r - 1), zero);
            }
        }
        let ctx = self.reg_at(3);
        let call = self.b.ins().call(func, &[self.vm, exact, zero, ctx]);
        let (a, b) = {
            let r = self.b.inst_results(call);
            (r[0], r[1])
        };
        let join = self.b.create_block();
        self.b.append_block_param(join, I64);
        self.b.append_block_param(join, I64);
        let fast = self.cont();
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        let finished = self
            .b
            .ins()
            .icmp_imm(IntCC::NotEqual, b, crate::shims::SLOW as i64);
        self.b.ins().brif(finished, fast, &[], slow, &[]);
        // Every call returned: the last one's index is in the context.
        self.switch(fast);
        let last = self.vm_load(offset_of!(VmCtx, cb_i));
        let made = self.b.ins().iadd_imm(last, 1);
        self.restore_loop_caller();
        self.b.ins().jump(join, &[made.into(), b.into()]);
        self.switch(slow);
        let slotv = self.iconst(slot as u64);
        let rest = self
            .b
            .ins()
            .call(self.shims.loop_rest, &[self.vm, a, n, ctx, slotv]);
        let made = self.b.inst_results(rest)[0];
        self.restore_loop_caller();
        let st = self.vm_load(offset_of!(VmCtx, status));
        let back = self.vm_load(offset_of!(VmCtx, left));
        let stop = self.exit(Exit::HelperStop);
        let ok = self.cont();
        self.b.ins().brif(st, stop, &[], ok, &[]);
        self.switch(ok);
        self.b.ins().jump(join, &[made.into(), back.into()]);
        self.switch(join);
        let made = self.b.block_params(join)[0];
        let now = self.b.block_params(join)[1];
        self.set(Reg::R0, made);
        let need = self.need_at(pc + 1);
        if need > 0 {
            let short = self
                .b
                .ins()
                .icmp_imm(IntCC::SignedLessThan, now, need as i64);
            let cold = self.b.create_block();
            self.b.set_cold_block(cold);
            let ok = self.cont();
            self.b.ins().brif(short, cold, &[], ok, &[]);
            self.switch(cold);
            self.hand_over(pc + 1, now);
            self.switch(ok);
        }
        let after = self.b.ins().iadd_imm(now, -adjust);
        self.b.def_var(self.left, after);
        self.b.ins().jump(done, &[]);
        self.switch(generic);
        let idv = self.iconst(bpfsim_vm::host::LOOP as u64);
        self.helper(pc, Helper::Any(idv));
        self.b.ins().jump(done, &[]);
        self.switch(done);
    }

    /// After a loop's calls made by a callback's function: the frame this function's hand-overs
    /// end at, and when this function is a callback's, the call it is making (the callee's
    /// code changed them).
    fn restore_loop_caller(&mut self) {
        let base = self.iconst(self.root_depth);
        self.vm_store(offset_of!(VmCtx, base), base);
        if self.root_depth > 0 {
            let i = self.b.use_var(self.cb_i);
            self.vm_store(offset_of!(VmCtx, cb_i), i);
            if let Some(end) = self.cb_end {
                self.vm_store(offset_of!(VmCtx, cb_end), end);
            }
            if let Some(args) = self.cb_args {
                self.vm_store(offset_of!(VmCtx, cb_args), args);
            }
        }
    }

    /// `call 1`, `bpf_map_lookup_elem(r1, r2)`: answered here for the run's array maps
    /// ([`bpfsim_vm::Host::array_lookups`]), as the kernel's JIT inlines them: the map's entry,
    /// the 4-byte key read through the region table (a fault is the helper's: a read of the
    /// key's size at the call's pc), one compare and a multiply. Other maps call the host:
    /// with a key at a known place in the stack, on a map the host lists
    /// ([`bpfsim_vm::Host::key_lookups`]) whose key fits between that place and the frame's
    /// top, a direct call with the key's address ([`crate::shims::map_lookup_key`], as the
    /// kernel's JIT calls a hash map's lookup directly); else the helper's shim. Where the
    /// verifier knows the map's kind ([`crate::Hints::lookup`]), only that kind's way is
    /// compiled before the shim: a lookup's three ways were 15% of the real programs' code to
    /// compile, whatever the map.
    pub(super) fn translate_map_lookup(&mut self, pc: usize) {
        let path = self.lookup.get(pc).copied().flatten();
        let done = self.b.create_block();
        if let Some(j) = self.ctx_fields.rows.site.get(pc).copied().flatten() {
            let other = self.b.create_block();
            self.b.set_cold_block(other);
            self.row_lookup(pc, j as usize, other, done);
            self.switch(other);
            if self.ctx_fields.rows.relied_on(j as usize) {
                // Accesses after would take another way's answer for the row's: the
                // interpreter makes the call and the rest of the run.
                let unexec = self.adjust() + 1;
                let left = self.b.use_var(self.left);
                let before = self.b.ins().iadd_imm(left, unexec);
                self.hand_over(pc, before);
                self.switch(done);
                return;
            }
        }
        match path {
            Some(LookupPath::Array) => {
                let call = self.b.create_block();
                self.array_lookup(pc, call, done);
                self.switch(call);
            }
            Some(LookupPath::Key) => self.key_lookup(done),
            Some(LookupPath::Slots) => {
                let call = self.b.create_block();
                self.slot_lookup(pc, call, done);
                self.switch(call);
                self.key_lookup(done);
            }
            Some(LookupPath::Helper) => {}
            None => {
                let call = self.b.create_block();
                self.array_lookup(pc, call, done);
                self.switch(call);
                self.key_lookup(done);
            }
        }
        self.helper(pc, Helper::MapLookup);
        self.b.ins().jump(done, &[]);
        self.switch(done);
    }

    /// `call 51`, `bpf_redirect_map(r1, r2, r3)`: a direct call of the host's answer
    /// ([`crate::shims::redirect_map`], as the kernel's verifier turns the helper into a call
    /// of the map's own `map_redirect`), with no budget, registers or memory handed over: the
    /// answer reads no memory, cannot fail nor run anything.
    pub(super) fn translate_redirect_map(&mut self, pc: usize) {
        let args = [self.vm, self.reg_at(1), self.reg_at(2), self.reg_at(3)];
        let f = self.shims.redirect_map;
        self.direct_helper(pc, f, &args, bpfsim_vm::host::REDIRECT_MAP, false);
    }

    /// `call 54`, `bpf_xdp_adjust_meta(r1, r2)`: a direct call of the host's answer
    /// ([`crate::shims::xdp_adjust_meta`]), with no budget or registers handed over: the answer
    /// moves at most the context's metadata edge, runs nothing and maps nothing.
    pub(super) fn translate_xdp_adjust_meta(&mut self, pc: usize) {
        let args = [self.vm, self.reg_at(1), self.reg_at(2)];
        let f = self.shims.xdp_adjust_meta;
        self.direct_helper(pc, f, &args, bpfsim_vm::host::XDP_ADJUST_META, false);
    }

    /// `call 65`, `bpf_xdp_adjust_tail(r1, r2)`: a direct call of the host's answer
    /// ([`crate::shims::xdp_adjust_tail`]), with no budget or registers handed over: the answer
    /// moves at most the context's packet end (zeroing the frame's bytes it uncovers), runs
    /// nothing and maps nothing.
    pub(super) fn translate_xdp_adjust_tail(&mut self, pc: usize) {
        let args = [self.vm, self.reg_at(1), self.reg_at(2)];
        let f = self.shims.xdp_adjust_tail;
        self.direct_helper(pc, f, &args, bpfsim_vm::host::XDP_ADJUST_TAIL, false);
    }

    /// `call 12`, `bpf_tail_call(r1, r2, r3)`: a direct call of the host's answer
    /// ([`crate::shims::tail_call`]), with no budget or registers handed over: the answer
    /// reads the program array's slot and runs nothing. A failed call goes on with its `r0`; a
    /// taken one (or a fault) stops the run here as after the helper's shim (the tail call's
    /// exit, or the trap at this slot).
    pub(super) fn translate_tail_call(&mut self, pc: usize) {
        let args = [self.vm, self.reg_at(2), self.reg_at(3)];
        let f = self.shims.tail_call;
        self.direct_helper(pc, f, &args, bpfsim_vm::host::TAIL_CALL, true);
    }

    /// A helper answered by a direct call of the host (`f` with `args`): its result in `r0`
    /// when the status it leaves is [`crate::shims::OK`]; the helper's shim (helper `id`) when
    /// the host did not answer ([`crate::shims::NOT_ANSWERED`]). With `stops`, any other
    /// status stops the run here as after the helper's shim; without, the answer is never
    /// anything else, and one branch tells the two apart.
    fn direct_helper(&mut self, pc: usize, f: FuncRef, args: &[Value], id: u32, stops: bool) {
        let call = self.b.ins().call(f, args);
        let r0 = self.b.inst_results(call)[0];
        let st = self.vm_load(offset_of!(VmCtx, status));
        let done = self.b.create_block();
        let generic = self.b.create_block();
        self.b.set_cold_block(generic);
        let answered = self.cont();
        if stops {
            let unanswered =
                self.b
                    .ins()
                    .icmp_imm(IntCC::Equal, st, crate::shims::NOT_ANSWERED as i64);
            self.b.ins().brif(unanswered, generic, &[], answered, &[]);
            self.switch(answered);
            let ok = self.cont();
            self.status_branch(pc, ok, &[]);
            self.switch(ok);
        } else {
            self.b.ins().brif(st, generic, &[], answered, &[]);
            self.switch(answered);
        }
        self.set(Reg::R0, r0);
        self.b.ins().jump(done, &[]);
        self.switch(generic);
        let idv = self.iconst(id as u64);
        self.helper(pc, Helper::Any(idv));
        self.b.ins().jump(done, &[]);
        self.switch(done);
    }

    /// The lookup of `translate_map_lookup` through row `j` (`gen::rows`: `r1` is the row's
    /// handle on every path), going on to `done` with `r0` set: the key against the row's
    /// entry count, then `base + index * stride`, as the kernel's JIT inlines an array's
    /// lookup. An empty row goes to `other` (before the key is read when reading it could
    /// fault: another map's lookup may read fewer bytes).
    fn row_lookup(&mut self, pc: usize, j: usize, other: Block, done: Block) {
        let at = |f: usize| offset_of!(VmCtx, rows) + j * std::mem::size_of::<ValueRow>() + f;
        let max = self.vm_load(at(offset_of!(ValueRow, max_entries)));
        let fixed = self.fixed_stack(Reg::R2, 0, Size::W);
        let index = match fixed {
            Some((top, off)) => self.b.ins().uload32(MemFlags::trusted(), top, off),
            None => {
                let listed = self.cont();
                self.b.ins().brif(max, listed, &[], other, &[]);
                self.switch(listed);
                self.lookup_index(pc)
            }
        };
        let found = self.b.ins().icmp(IntCC::UnsignedLessThan, index, max);
        let hit = self.cont();
        let not = self.b.create_block();
        self.b.set_cold_block(not);
        self.b.ins().brif(found, hit, &[], not, &[]);
        self.switch(hit);
        let stride = self.vm_load(at(offset_of!(ValueRow, stride)));
        let base = self.vm_load(at(offset_of!(ValueRow, base)));
        let off = self.b.ins().imul(index, stride);
        let value = self.b.ins().iadd(base, off);
        self.set(Reg::R0, value);
        self.b.ins().jump(done, &[]);
        self.switch(not);
        // Past the row's entries: NULL, when the row is the map's. Out of line: placed
        // between the compare and the hit, it made a hit jump over it.
        let miss = self.cont();
        self.b.set_cold_block(miss);
        self.b.ins().brif(max, miss, &[], other, &[]);
        self.switch(miss);
        let null = self.iconst(0);
        self.set(Reg::R0, null);
        self.b.ins().jump(done, &[]);
    }

    /// The inline array lookup of `translate_map_lookup`, going on to `done` with `r0` set; a
    /// map the host does not list as an array goes to `call`.
    fn array_lookup(&mut self, pc: usize, call: Block, done: Block) {
        let map = self.reg(Reg::R1);
        let first = self.vm_load(offset_of!(VmCtx, arrays_first));
        let i = self.b.ins().isub(map, first);
        let n = self.vm_load(offset_of!(VmCtx, arrays_n));
        let listed = self.b.ins().icmp(IntCC::UnsignedLessThan, i, n);
        let entry = self.cont();
        self.b.ins().brif(listed, entry, &[], call, &[]);
        self.switch(entry);
        let row = self
            .b
            .ins()
            .imul_imm(i, std::mem::size_of::<ArrayLookup>() as i64);
        let e = self.b.ins().iadd(self.vm, row);
        let at = |f: usize| (offset_of!(VmCtx, arrays) + f) as i32;
        let max = self.b.ins().load(
            I64,
            MemFlags::trusted(),
            e,
            at(offset_of!(ArrayLookup, max_entries)),
        );
        let array = self.cont();
        self.b.ins().brif(max, array, &[], call, &[]);
        self.switch(array);
        let index = self.lookup_index(pc);
        let stride = self.b.ins().load(
            I64,
            MemFlags::trusted(),
            e,
            at(offset_of!(ArrayLookup, stride)),
        );
        let base = self.b.ins().load(
            I64,
            MemFlags::trusted(),
            e,
            at(offset_of!(ArrayLookup, base)),
        );
        let off = self.b.ins().imul(index, stride);
        let value = self.b.ins().iadd(base, off);
        let found = self.b.ins().icmp(IntCC::UnsignedLessThan, index, max);
        let null = self.iconst(0);
        let r0 = self.b.ins().select(found, value, null);
        self.set(Reg::R0, r0);
        self.b.ins().jump(done, &[]);
    }

    /// The 4-byte key at `r2` of an inline lookup at `pc`, zero-extended. A key on the stack at
    /// a known offset (clang's `r2 = r10 - n`) is read from the frame with no check; any other
    /// through the region table (a fault is the helper's: a read of the key's size at `pc`).
    fn lookup_index(&mut self, pc: usize) -> Value {
        if let Some((top, at)) = self.fixed_stack(Reg::R2, 0, Size::W) {
            self.b.ins().uload32(MemFlags::trusted(), top, at)
        } else {
            let key = self.reg(Reg::R2);
            let fault = self.fault_path(pc, key, Size::W, false);
            let p = self.translate_table(key, 4, false, fault, false);
            self.b.ins().uload32(MemFlags::trusted(), p, 0)
        }
    }

    /// The inline slot lookup of `translate_map_lookup` (an xskmap's, a devmap's, as the
    /// kernel's verifier inlines the first), going on to `done` with `r0` set; a map the host
    /// does not list in its slot table ([`bpfsim_vm::Host::slot_lookups`]) goes to `call`. A
    /// stale table (a batch's first lookup, or one after another call of the host) is fetched
    /// first ([`crate::shims::fetch_slots`]), out of line. Branch-free past the listing: an
    /// index past the map reads the map's first word of bits (inside the table: `fetch_slots`
    /// checked the entry's words) and answers NULL.
    fn slot_lookup(&mut self, pc: usize, call: Block, done: Block) {
        let map = self.reg(Reg::R1);
        let entry = self.b.create_block();
        let i = self.b.append_block_param(entry, I64);
        let unlisted = self.b.create_block();
        let fetch = self.b.create_block();
        self.b.set_cold_block(unlisted);
        self.b.set_cold_block(fetch);
        let listed = |g: &mut Self| {
            let first = g.vm_load(offset_of!(VmCtx, slots_first));
            let i = g.b.ins().isub(map, first);
            let n = g.vm_load(offset_of!(VmCtx, slots_n));
            (i, g.b.ins().icmp(IntCC::UnsignedLessThan, i, n))
        };
        let (i0, yes) = listed(self);
        self.b.ins().brif(yes, entry, &[i0.into()], unlisted, &[]);
        self.switch(unlisted);
        let stale = self.vm_load(offset_of!(VmCtx, slots_stale));
        self.b.ins().brif(stale, fetch, &[], call, &[]);
        self.switch(fetch);
        self.b.ins().call(self.shims.fetch_slots, &[self.vm]);
        let (i1, yes) = listed(self);
        self.b.ins().brif(yes, entry, &[i1.into()], call, &[]);
        self.switch(entry);
        let row = self
            .b
            .ins()
            .imul_imm(i, std::mem::size_of::<SlotLookup>() as i64);
        let e = self.b.ins().iadd(self.vm, row);
        let at = |f: usize| (offset_of!(VmCtx, slots) + f) as i32;
        let field = |g: &mut Self, f: usize| g.b.ins().load(I64, MemFlags::trusted(), e, at(f));
        let max = field(self, offset_of!(SlotLookup, max_entries));
        let slots = self.cont();
        self.b.ins().brif(max, slots, &[], call, &[]);
        self.switch(slots);
        let index = self.lookup_index(pc);
        let inside = self.b.ins().icmp(IntCC::UnsignedLessThan, index, max);
        let zero = self.iconst(0);
        let probe = self.b.ins().select(inside, index, zero);
        let word = field(self, offset_of!(SlotLookup, word));
        let k = self.b.ins().ushr_imm(probe, 6);
        let w = self.b.ins().iadd(word, k);
        let w = self.b.ins().ishl_imm(w, 3);
        let w = self.b.ins().iadd(self.vm, w);
        let bits = self.b.ins().load(
            I64,
            MemFlags::trusted(),
            w,
            offset_of!(VmCtx, slot_bits) as i32,
        );
        // `ushr` takes the shift modulo 64: bit `index % 64`.
        let bit = self.b.ins().ushr(bits, probe);
        let bit = self.b.ins().band_imm(bit, 1);
        let filled = self.b.ins().icmp_imm(IntCC::NotEqual, bit, 0);
        let found = self.b.ins().band(inside, filled);
        let stride = field(self, offset_of!(SlotLookup, stride));
        let base = field(self, offset_of!(SlotLookup, base));
        let off = self.b.ins().imul(index, stride);
        let value = self.b.ins().iadd(base, off);
        let r0 = self.b.ins().select(found, value, zero);
        self.set(Reg::R0, r0);
        self.b.ins().jump(done, &[]);
    }

    /// The direct call of `translate_map_lookup` for a key at a constant place in the current
    /// frame (clang's `r2 = r10 - n`), going on to `done` with `r0` set; a map the host does not
    /// list, or whose key would not fit below the frame's top, falls through to the block the
    /// builder is left in. No budget or status handling: the host's answer cannot fail nor run
    /// anything (what the helper's shim must be ready for), and maps no region.
    fn key_lookup(&mut self, done: Block) {
        let Some(off) = self.fp_off[Reg::R2.index()] else {
            return;
        };
        let Some((top, at)) = self.fixed_stack(Reg::R2, 0, Size::B) else {
            return;
        };
        // The bytes from the key's place to the frame's top: a key of up to that many lies in
        // the frame (`fixed_stack` checked the place), and only such a key is read here.
        let room = -off;
        let generic = self.b.create_block();
        let map = self.reg(Reg::R1);
        let first = self.vm_load(offset_of!(VmCtx, keys_first));
        let i = self.b.ins().isub(map, first);
        let n = self.vm_load(offset_of!(VmCtx, keys_n));
        let listed = self.b.ins().icmp(IntCC::UnsignedLessThan, i, n);
        let entry = self.cont();
        self.b.ins().brif(listed, entry, &[], generic, &[]);
        self.switch(entry);
        let row = self.b.ins().ishl_imm(i, 2);
        let e = self.b.ins().iadd(self.vm, row);
        let size = self
            .b
            .ins()
            .uload32(MemFlags::trusted(), e, offset_of!(VmCtx, keys) as i32);
        // Size 0 (not such a map) wraps to the largest number: one compare for both.
        let less = self.b.ins().iadd_imm(size, -1);
        let fits = self.b.ins().icmp_imm(IntCC::UnsignedLessThan, less, room);
        let direct = self.cont();
        self.b.ins().brif(fits, direct, &[], generic, &[]);
        self.switch(direct);
        let key = self.b.ins().iadd_imm(top, at as i64);
        let call = self
            .b
            .ins()
            .call(self.shims.map_lookup_key, &[self.vm, map, key, size]);
        let r0 = self.b.inst_results(call)[0];
        self.set(Reg::R0, r0);
        self.b.ins().jump(done, &[]);
        self.switch(generic);
    }

    /// The shared stop after a helper call: the shim left the pc and the exact budget.
    pub(super) fn helper_stop_epilogue(&mut self) {
        if self.enter_exit(Exit::HelperStop).is_none() {
            return;
        }
        let left = self.vm_load(offset_of!(VmCtx, left));
        self.b.def_var(self.left, left);
        let pc = self.vm_load(offset_of!(VmCtx, trap_pc));
        let zero = self.iconst(0);
        let stop = self.exit(Exit::Stop);
        self.b.ins().jump(stop, &[pc.into(), zero.into()]);
    }
}
