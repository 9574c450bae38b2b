//! Stack slots, frames and whole verifier states, and the comparison that prunes a path when an
//! already-verified state covers it (`states_equal`, `regsafe`, `stacksafe`).

use super::reg::{Reg, RegType};

pub const MAX_BPF_STACK: usize = 512;
pub const SLOTS: usize = MAX_BPF_STACK / 8;
pub const MAX_FRAMES: usize = 8;

/// What one stack byte holds (`enum bpf_stack_slot_type`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Byte {
    Invalid,
    Misc,
    Zero,
    Spill,
}

/// One 8-byte stack slot: its bytes' kinds and the register spilled into it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Slot {
    pub bytes: [Byte; 8],
    pub spilled: Reg,
}

impl Slot {
    pub const EMPTY: Slot = Slot {
        bytes: [Byte::Invalid; 8],
        spilled: Reg::NOT_INIT,
    };
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Frame {
    pub regs: [Reg; 11],
    /// Slot i covers `fp-8*(i+1)` .. `fp-8*i`; only as many as were touched (the kernel's
    /// `allocated_stack`), the rest are invalid.
    pub stack: Vec<Slot>,
    /// The call instruction that made this frame (0 for the main frame).
    pub callsite: usize,
    /// First instruction of the function.
    pub subprog: usize,
    /// Deepest stack byte touched, for the stack depth check.
    pub depth: usize,
    /// Visits of a callback this frame's current helper call has scheduled (`callback_depth`).
    pub callback_depth: u32,
}

impl Frame {
    pub fn slot(&self, i: usize) -> Slot {
        self.stack.get(i).copied().unwrap_or(Slot::EMPTY)
    }

    pub fn slot_mut(&mut self, i: usize) -> &mut Slot {
        if self.stack.len() <= i {
            self.stack.resize(i + 1, Slot::EMPTY);
        }
        &mut self.stack[i]
    }

    pub fn new(frameno: u8, subprog: usize, callsite: usize) -> Frame {
        let mut regs = [Reg::NOT_INIT; 11];
        regs[10] = Reg::ptr(RegType::Stack);
        regs[10].frameno = frameno;
        Frame {
            regs,
            stack: Vec::new(),
            callsite,
            subprog,
            depth: 0,
            callback_depth: 0,
        }
    }
}

/// What a reference stands for (`enum ref_state_type`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RefKind {
    /// An acquired pointer (ring buffer reservation, socket): `REF_TYPE_PTR`.
    Ptr,
    /// A held `bpf_spin_lock`: `REF_TYPE_LOCK`.
    Lock,
}

/// A reference the program holds and must release (`struct bpf_reference_state`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ref {
    pub id: u32,
    pub insn: usize,
    pub kind: RefKind,
    /// A lock's map (index into the verifier's map table): with `id`, which lock it is.
    pub ptr: u32,
}

impl Ref {
    pub fn ptr(id: u32, insn: usize) -> Ref {
        Ref {
            id,
            insn,
            kind: RefKind::Ptr,
            ptr: 0,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct State {
    pub frames: Vec<Frame>,
    /// Acquired pointers and held locks, in the order they were taken.
    pub refs: Vec<Ref>,
    /// The lock held, as (id, map) (`active_lock_id`, `active_lock_ptr`); `bpf_spin_lock`
    /// allows one at a time.
    pub lock: Option<(u32, u32)>,
}

impl State {
    pub fn cur(&self) -> &Frame {
        self.frames.last().expect("a state has a frame")
    }

    pub fn cur_mut(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("a state has a frame")
    }

    pub fn reg(&self, r: usize) -> &Reg {
        &self.cur().regs[r]
    }

    pub fn reg_mut(&mut self, r: usize) -> &mut Reg {
        &mut self.cur_mut().regs[r]
    }

    /// Every register and spilled register of every frame.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for fr in &mut self.frames {
            for r in &mut fr.regs {
                f(r);
            }
            for s in &mut fr.stack {
                if s.bytes[0] == Byte::Spill {
                    f(&mut s.spilled);
                }
            }
        }
    }
}

/// Precise scalars of one frame of a checkpoint: registers (bit n for rN) and stack slots
/// (bit i for slot i). Only checkpoints carry them; see `precise.rs`.
pub type Prec = (u16, u64);

/// Ids of `old` mapped to ids of `cur` during one comparison (`struct bpf_idmap`): registers
/// that shared an id in `old` (copies of one scalar, of one maybe-null pointer) must share one
/// in `cur` too.
#[derive(Default)]
struct IdMap {
    pairs: Vec<(u32, u32)>,
    /// Fresh ids standing for "no id" in `cur`, each distinct (`tmp_id_gen`).
    fresh: u32,
}

impl IdMap {
    /// `check_ids`.
    fn check(&mut self, old: u32, cur: u32) -> bool {
        if (old == 0) != (cur == 0) {
            return false;
        }
        if old == 0 {
            return true;
        }
        for &(o, c) in &self.pairs {
            if o == old {
                return c == cur;
            }
            if c == cur {
                return false;
            }
        }
        self.pairs.push((old, cur));
        true
    }

    /// `check_scalar_ids`: an independent scalar in `old` accepts anything; linked ones need
    /// the same links in `cur`, where an unlinked scalar counts as linked to nothing else.
    fn check_scalar(&mut self, old: u32, cur: u32) -> bool {
        if old == 0 {
            return true;
        }
        let cur = if cur == 0 {
            self.fresh += 1;
            self.fresh
        } else {
            cur
        };
        self.check(old, cur)
    }
}

/// `regsafe`: whether everything `cur` can be is covered by what `old` was verified with.
/// An imprecise scalar in `old` never had its value relied on: any scalar covers it.
fn regsafe(old: &Reg, cur: &Reg, precise: bool, ids: &mut IdMap) -> bool {
    if old.ty == RegType::NotInit {
        return true;
    }
    if old.ty != cur.ty || old.maybe_null != cur.maybe_null || old.ringbuf != cur.ringbuf {
        return false;
    }
    let bounds = old.umin <= cur.umin
        && cur.umax <= old.umax
        && old.smin <= cur.smin
        && cur.smax <= old.smax
        && old.u32min <= cur.u32min
        && cur.u32max <= old.u32max
        && old.s32min <= cur.s32min
        && cur.s32max <= old.s32max
        && old.var_off.contains(cur.var_off);
    match old.ty {
        RegType::Scalar => {
            // A link with a constant delta must be the same link with the same delta, and a
            // plain link no delta; the flag is part of the id the kernel maps.
            let id = |r: &Reg| r.id | (r.add_const as u32) << 29;
            !precise
                || (old.add_const == cur.add_const || (old.id == 0 && cur.add_const != 0))
                    && (old.add_const == 0 || old.off == cur.off)
                    && bounds
                    && ids.check_scalar(id(old), id(cur))
        }
        RegType::Packet | RegType::PacketMeta => {
            // A pointer known past (or at) the end matches only the same knowledge.
            let range = if old.range < 0 || cur.range < 0 {
                old.range == cur.range
            } else {
                old.range <= cur.range
            };
            old.off == cur.off && range && bounds && ids.check(old.id, cur.id)
        }
        _ => {
            old.off == cur.off
                && old.map == cur.map
                && old.mem_size == cur.mem_size
                && old.frameno == cur.frameno
                && old.subprog == cur.subprog
                && old.btf_id == cur.btf_id
                && old.btf_flags == cur.btf_flags
                && bounds
                && ids.check(old.id, cur.id)
                && ids.check(old.ref_obj_id, cur.ref_obj_id)
        }
    }
}

/// Byte `k` of a slot in the kernel's order (`slot_type[k]`, 0 the highest address); ours
/// keeps the lowest address first.
fn kbyte(s: &Slot, k: usize) -> Byte {
    s.bytes[7 - k]
}

/// `scalar_reg_for_stack`: the scalar a load of bytes `k..8` (kernel order) would give: a
/// spilled scalar, or an unbounded one from misc or uninitialised bytes (privileged programs
/// may read those). The flag says whether it is the spill (whose precision counts).
fn scalar_for_stack(s: &Slot, k: usize) -> Option<(Reg, bool)> {
    if kbyte(s, k) == Byte::Spill && s.spilled.is_scalar() {
        return Some((s.spilled, true));
    }
    (k..8)
        .all(|j| matches!(kbyte(s, j), Byte::Misc | Byte::Invalid))
        .then_some((Reg::unknown(), false))
}

/// `stacksafe`, for a privileged load (`allow_uninit_stack`): misc bytes in `old` promise
/// nothing, and a spilled scalar no one relied on matches any unknown bytes.
fn stacksafe(old: &Frame, cur: &Frame, prec: u64, ids: &mut IdMap) -> bool {
    for (i, o) in old.stack.iter().enumerate() {
        let mut k = 0;
        while k < 8 {
            let ob = kbyte(o, k);
            if matches!(ob, Byte::Invalid | Byte::Misc) {
                k += 1;
                continue;
            }
            let Some(c) = cur.stack.get(i) else {
                return false;
            };
            if k == 0 || k == 4 {
                if let (Some((or, spill)), Some((cr, _))) =
                    (scalar_for_stack(o, k), scalar_for_stack(c, k))
                {
                    let precise = spill && i < 64 && prec & (1 << i) != 0;
                    if !regsafe(&or, &cr, precise, ids) {
                        return false;
                    }
                    k += if k == 0 { 8 } else { 4 };
                    continue;
                }
            }
            if ob != kbyte(c, k) {
                return false;
            }
            if k == 7 && ob == Byte::Spill {
                let precise = i < 64 && prec & (1 << i) != 0;
                if !regsafe(&o.spilled, &c.spilled, precise, ids) {
                    return false;
                }
            }
            k += 1;
        }
    }
    true
}

/// `states_equal`: `cur` is safe if `old` (fully explored) was. `live` says which registers of
/// each frame may still be read; `prec` which scalars of `old` were relied on.
pub fn states_equal(
    old: &State,
    cur: &State,
    live: &[u16],
    prec: &[Prec],
    range_within: bool,
) -> bool {
    if old.frames.len() != cur.frames.len() || old.refs.len() != cur.refs.len() {
        return false;
    }
    // Stand-in ids for unlinked scalars, above any id a verification hands out and below the
    // flag bit of linked ones.
    let mut ids = IdMap {
        pairs: Vec::new(),
        fresh: 1 << 28,
    };
    // `refsafe`: the same lock held, the same references in the same order.
    match (old.lock, cur.lock) {
        (None, None) => {}
        (Some((oid, omap)), Some((cid, cmap))) => {
            if omap != cmap || !ids.check(oid, cid) {
                return false;
            }
        }
        _ => return false,
    }
    if !old.refs.iter().zip(&cur.refs).all(|(a, b)| {
        ids.check(a.id, b.id) && a.kind == b.kind && (a.kind == RefKind::Ptr || a.ptr == b.ptr)
    }) {
        return false;
    }
    old.frames
        .iter()
        .zip(&cur.frames)
        .enumerate()
        .all(|(f, (o, c))| {
            let mask = live.get(f).copied().unwrap_or(u16::MAX);
            // RANGE_WITHIN (loops whose marks are not final yet): every scalar counts.
            let (pregs, pstack) = if range_within {
                (u16::MAX, u64::MAX)
            } else {
                prec.get(f).copied().unwrap_or((0, 0))
            };
            o.callsite == c.callsite
                && o.callback_depth <= c.callback_depth
                && o.regs.iter().zip(&c.regs).enumerate().all(|(r, (a, b))| {
                    mask & (1 << r) == 0 || regsafe(a, b, pregs & (1 << r) != 0, &mut ids)
                })
                && stacksafe(o, c, pstack, &mut ids)
        })
}
