//! `check_cond_jmp_op`: decide a branch where the state allows it, else explore both sides,
//! each refined by its condition: scalar bounds (`reg_set_min_max`), null checks
//! (`mark_ptr_or_null_regs`) and packet ranges (`find_good_pkt_pointers`).

use bpfsim_vm::isa::{Cond as ICond, Reg as R, Source, Width};

use crate::domain::reg::{
    branch_taken, refine, refine_jset_false, scalar_alu, Cond, Reg, RegType, ScalarOp, ADD_CONST32,
};
use crate::domain::state::State;
use crate::explore::{Step, Verifier};
use crate::precise::Linked;

/// `MAX_PACKET_OFF`.
const MAX_PACKET_OFF: u64 = 0xffff;

fn cond(c: ICond) -> Cond {
    match c {
        ICond::Eq => Cond::Eq,
        ICond::Ne => Cond::Ne,
        ICond::Gt => Cond::Gt,
        ICond::Ge => Cond::Ge,
        ICond::Lt => Cond::Lt,
        ICond::Le => Cond::Le,
        ICond::Sgt => Cond::Sgt,
        ICond::Sge => Cond::Sge,
        ICond::Slt => Cond::Slt,
        ICond::Sle => Cond::Sle,
        ICond::Set => Cond::Set,
    }
}

/// Give every copy of scalar `id` among `linked` the bounds `r` now has (`sync_linked_regs`): a
/// copy that is `r` plus a different constant (`BPF_ADD_CONST`) gets `r`'s bounds moved by the
/// difference.
fn sync_scalar(st: &mut State, linked: &[Linked], id: u32, r: &Reg) {
    if id == 0 {
        return;
    }
    for l in linked {
        let Some(fr) = st.frames.get_mut(l.frame as usize) else {
            continue;
        };
        let x = if l.is_reg {
            &mut fr.regs[l.n as usize]
        } else {
            match fr.stack.get_mut(l.n as usize) {
                Some(s) => &mut s.spilled,
                None => continue,
            }
        };
        sync_one(x, id, r);
    }
}

fn sync_one(x: &mut Reg, id: u32, r: &Reg) {
    if !x.is_scalar() || x.id != id {
        return;
    }
    // A 32-bit link and a 64-bit one say nothing of each other.
    if x.add_const != 0 && r.add_const != 0 && x.add_const != r.add_const {
        return;
    }
    if (x.add_const == 0 && r.add_const == 0) || x.off == r.off {
        *x = *r;
        return;
    }
    let delta = Reg::known((x.off as i64 - r.off as i64) as u64);
    let (off, add_const) = (x.off, x.add_const);
    let zext = (x.add_const | r.add_const) & ADD_CONST32 != 0;
    *x = *r;
    scalar_alu(x, &delta, ScalarOp::Add, false);
    if zext {
        x.zext32();
    }
    // The copy keeps its own delta and link.
    x.id = id;
    x.off = off;
    x.add_const = add_const;
}

/// `mark_ptr_or_null_regs`: after `ptr == NULL` / `ptr != NULL`, every copy of the pointer is
/// known NULL (a scalar 0) or known valid.
fn mark_null(st: &mut State, id: u32, is_null: bool, maps: &[crate::MapInfo]) {
    if id == 0 {
        return;
    }
    st.for_each_reg(|x| {
        if x.maybe_null && x.id == id {
            if is_null {
                *x = Reg::known(0);
            } else {
                x.maybe_null = false;
                // The kernel drops the id once the pointer is known valid
                // (`mark_ptr_or_null_reg`): nothing needs it, and the log shows none. A value
                // of a map with a `bpf_spin_lock` keeps it: it names the lock.
                let lock = x.ty == RegType::MapValue
                    && maps
                        .get(x.map as usize)
                        .is_some_and(|m| m.spin_lock.is_some());
                if !lock {
                    x.id = 0;
                }
            }
        }
    });
    if is_null {
        st.refs
            .retain(|r| r.id != id || r.kind != crate::domain::state::RefKind::Ptr);
    }
}

/// Packet pointer ranges that say the pointer is past the end, or at it.
const BEYOND_PKT_END: i32 = -2;
const AT_PKT_END: i32 = -1;

/// `find_good_pkt_pointers`: `reg` (and its copies) is proven `range` bytes short of the end.
fn mark_pkt_range(st: &mut State, reg: &Reg, right_open: bool) {
    if reg.off < 0 || (reg.off == 0 && right_open) {
        return;
    }
    if reg.umax > MAX_PACKET_OFF || reg.umax + reg.off as u64 > MAX_PACKET_OFF {
        return;
    }
    let range = reg.off + right_open as i32;
    let (ty, id) = (reg.ty, reg.id);
    st.for_each_reg(|x| {
        if x.ty == ty && x.id == id {
            x.range = x.range.max(range);
        }
    });
}

/// The end a packet-like pointer is compared with.
fn is_end_of(p: &Reg, end: &Reg) -> bool {
    matches!(
        (p.ty, end.ty),
        (RegType::Packet, RegType::PacketEnd) | (RegType::PacketMeta, RegType::Packet)
    )
}

impl Verifier<'_> {
    #[allow(clippy::too_many_arguments)]
    pub fn check_cond_jmp_op(
        &mut self,
        st: &mut State,
        pc: usize,
        width: Width,
        c: ICond,
        dst: R,
        src: Source,
        off: i16,
    ) -> Result<Step, String> {
        let w32 = width == Width::W32;
        let fall = pc + 1;
        let taken = (pc as i64 + 1 + off as i64) as usize;
        self.check_reg_read(st, dst)?;
        let (b, src_reg) = match src {
            Source::Reg(r) => {
                self.check_reg_read(st, r)?;
                (*st.reg(r.index()), Some(r))
            }
            Source::Imm(imm) => (
                Reg::known(if w32 {
                    imm as u32 as u64
                } else {
                    imm as i64 as u64
                }),
                None,
            ),
        };
        let a = *st.reg(dst.index());
        let op = cond(c);

        // Null checks of a maybe-null pointer against 0.
        let zero = b.is_scalar() && b.is_const() && b.var_off.value == 0;
        if a.maybe_null && zero && matches!(op, Cond::Eq | Cond::Ne) && !w32 {
            let mut other = st.clone();
            // `taken` holds `a op 0`.
            let taken_is_null = op == Cond::Eq;
            mark_null(&mut other, a.id, taken_is_null, &self.opts.maps);
            mark_null(st, a.id, !taken_is_null, &self.opts.maps);
            return Ok(Step::Fork {
                fall,
                taken,
                other: Box::new(other),
            });
        }
        // A valid pointer is never NULL.
        if a.is_pointer()
            && !a.maybe_null
            && crate::check::btf::known_non_null(&a)
            && zero
            && matches!(op, Cond::Eq | Cond::Ne)
        {
            if let Some(r) = src_reg {
                self.mark_precise(st, r.index());
            }
            return Ok(Step::Next(if op == Cond::Ne { taken } else { fall }));
        }
        // Packet pointers against their end.
        if !w32 {
            let src_no = src_reg.map(|r| r.index());
            if let Some(step) = self.pkt_compare(st, &a, &b, dst.index(), src_no, op, fall, taken) {
                return Ok(step);
            }
        }
        if a.is_pointer() || b.is_pointer() {
            // Other pointer comparisons are allowed (privileged) and teach nothing.
            let other = st.clone();
            return Ok(Step::Fork {
                fall,
                taken,
                other: Box::new(other),
            });
        }
        if let Some(t) = branch_taken(&a, &b, op, w32) {
            // The path now depends on the exact values compared.
            self.mark_precise(st, dst.index());
            if let Some(r) = src_reg {
                self.mark_precise(st, r.index());
            }
            return Ok(Step::Next(if t { taken } else { fall }));
        }
        // Copies of a compared scalar learn its new bounds too: recorded so that precision
        // needed by one of them later reaches the others (`collect_linked_regs`).
        let mut ids = Vec::new();
        if src_reg.is_some() && b.is_scalar() && b.id != 0 {
            ids.push(b.id);
        }
        if a.is_scalar() && a.id != 0 && !ids.contains(&a.id) {
            ids.push(a.id);
        }
        let linked = self.collect_linked(st, &ids);
        self.record_linked(&linked);
        let mut other = st.clone();
        // The taken side: `a op b` holds.
        {
            let (mut x, mut y) = (a, b);
            if op == Cond::Set {
                // Nothing to learn but that some bit is set.
            } else {
                refine(&mut x, &mut y, op, w32);
            }
            *other.reg_mut(dst.index()) = x;
            sync_scalar(&mut other, &linked, a.id, &x);
            if let Some(r) = src_reg {
                *other.reg_mut(r.index()) = y;
                sync_scalar(&mut other, &linked, b.id, &y);
            }
        }
        // The fall-through side: its negation.
        {
            let (mut x, mut y) = (a, b);
            if op == Cond::Set {
                refine_jset_false(&mut x, &y, w32);
            } else {
                refine(&mut x, &mut y, op.negate(), w32);
            }
            *st.reg_mut(dst.index()) = x;
            sync_scalar(st, &linked, a.id, &x);
            if let Some(r) = src_reg {
                *st.reg_mut(r.index()) = y;
                sync_scalar(st, &linked, b.id, &y);
            }
        }
        Ok(Step::Fork {
            fall,
            taken,
            other: Box::new(other),
        })
    }

    /// `try_match_pkt_pointers`, and `is_pkt_ptr_branch_taken` before it.
    #[allow(clippy::too_many_arguments)]
    fn pkt_compare(
        &mut self,
        st: &mut State,
        a: &Reg,
        b: &Reg,
        dst: usize,
        src: Option<usize>,
        op: Cond,
        fall: usize,
        taken: usize,
    ) -> Option<Step> {
        // Normalise to `pkt op end`.
        let (p, pno, op) = if is_end_of(a, b) {
            (*a, Some(dst), op)
        } else if is_end_of(b, a) {
            (*b, src, op.flip())
        } else {
            return None;
        };
        // A pointer known to be at or beyond the end decides some comparisons with it.
        if p.ty == RegType::Packet && p.range < 0 {
            let decided = match op {
                Cond::Gt | Cond::Le if p.range == BEYOND_PKT_END => Some(op == Cond::Gt),
                Cond::Lt | Cond::Ge => Some(op == Cond::Ge),
                _ => None,
            };
            if let Some(t) = decided {
                return Some(Step::Next(if t { taken } else { fall }));
            }
        }
        let mut other = st.clone();
        // `mark_pkt_end`: on the side where the pointer is past (or at) the end, that register
        // (and no copy of it) says so.
        let mark_end = |s: &mut State, beyond: bool| {
            if let Some(n) = pno {
                let r = s.reg_mut(n);
                if r.ty == RegType::Packet {
                    r.range = if beyond { BEYOND_PKT_END } else { AT_PKT_END };
                }
            }
        };
        // Which side proves `p <= end` (closed) or `p < end` (right open).
        match op {
            Cond::Gt => {
                mark_pkt_range(st, &p, false);
                mark_end(&mut other, true);
            }
            Cond::Le => {
                mark_pkt_range(&mut other, &p, false);
                mark_end(st, true);
            }
            Cond::Ge => {
                mark_pkt_range(st, &p, true);
                mark_end(&mut other, false);
            }
            Cond::Lt => {
                mark_pkt_range(&mut other, &p, true);
                mark_end(st, false);
            }
            _ => {}
        }
        Some(Step::Fork {
            fall,
            taken,
            other: Box::new(other),
        })
    }
}
