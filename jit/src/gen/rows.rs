//! Array lookups answered from rows fixed for a batch, and the JIT's own proof of the accesses
//! through their results, the way the kernel's JIT turns an array map's lookup into a compare,
//! a multiply and an add (`array_map_gen_lookup`) and then trusts its verifier for the value
//! accesses; here nothing rests on the verifier.
//!
//! A `call bpf_map_lookup_elem` the verifier says is an array's ([`crate::Hints::lookup`]) and
//! whose `r1` is a constant handle on every path (clang's `lddw r1, map` before the call: the
//! JIT's own finding, the hint only chooses the way) reads a row of the run's context for that
//! handle
//! ([`crate::shims::ValueRow`]), filled once per batch from the host's array table
//! ([`bpfsim_vm::Host::array_lookups`]): the code compares the key with the row's entry count
//! and makes `base + index * stride`, with no look at the table and no compare of `r1`.
//!
//! A forward analysis follows each such lookup's result (`r0`, copies of it, constants added
//! to them) through the program and through the branches that test it against 0: an access
//! `[p + off]` with `p` a non-null result of the lookup of row `j` plus `k`, and `0 <= k + off`
//! and `k + off + size` at most the row's stride, reaches the value the lookup found, inside
//! that map's values. The batch checks once, for each row, that every value's first `need`
//! bytes (the most such accesses reach) lie in the row's region, readable (writable, for
//! stores), and makes the row's host offset: the access is then the guest address plus that
//! offset, one instruction, no clamp. A row that does not hold what its accesses need (a host
//! that lists no such array, one whose values lie elsewhere) is left empty, and a lookup
//! through it whose result some access relies on hands the run to the interpreter before the
//! call; one whose result nothing relies on takes the other ways of a lookup.
//!
//! Only the lookup's own instruction makes a result: a value a helper, a local call or a load
//! gives is not one, nor a register some other instruction wrote. A result in a loop may be an
//! earlier trip's: it still is some result of that lookup, which is all a proof needs; only the
//! register a branch tested is known non-null on that branch's side.

use bpfsim_vm::isa::{AluOp, CallTarget, Cond, Imm64, Insn, Size, Source, Width};

use crate::LookupPath;

/// The most rows a program's lookups use (others take the other ways).
pub(crate) const MAX_ROWS: usize = crate::shims::ROW_SLOTS;

/// Sums beyond this make a result unknown: no value is near that size.
const MAX_K: i64 = 1 << 16;

/// What the analysis found, by slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rows {
    /// The handle (`r1`) of each row's lookups.
    pub handles: Vec<u64>,
    /// For each row, the bytes from a value's start that proven accesses read and write.
    pub need: Vec<[u64; 2]>,
    /// By slot: the row a lookup there answers from.
    pub site: Vec<Option<u8>>,
    /// By slot: the row whose value a load, store or atomic there is proven inside.
    pub access: Vec<Option<u8>>,
}

impl Rows {
    /// Whether some access relies on row `j`'s lookups being answered from it.
    pub fn relied_on(&self, j: usize) -> bool {
        self.need.get(j).is_some_and(|n| n[0] > 0 || n[1] > 0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Val {
    Unknown,
    Const(u64),
    /// A result of the lookups answered from row `.0`, plus `.1`; `.2`: not null.
    Res(u8, i64, bool),
}

impl Val {
    fn meet(self, o: Val) -> Val {
        match (self, o) {
            (Val::Const(a), Val::Const(b)) if a == b => self,
            (Val::Res(j, k, n), Val::Res(i, m, p)) if j == i && k == m => Val::Res(j, k, n && p),
            _ => Val::Unknown,
        }
    }
}

type State = [Val; 11];

/// Find the lookups answered from rows and the accesses proven through their results.
/// `lookup`: the verifier's hint of each lookup's way ([`crate::Hints::lookup`]); only a lookup
/// it says is an array's is answered from a row (a false hint costs a hand-over, never a wrong
/// answer).
pub(crate) fn analyse(
    insns: &[Insn],
    pcs: &[usize],
    subprogs: &[usize],
    lookup: &[Option<LookupPath>],
) -> Rows {
    let slots = pcs.last().map_or(0, |&p| p + 2);
    let mut rows = Rows {
        handles: Vec::new(),
        need: Vec::new(),
        site: vec![None; slots],
        access: vec![None; slots],
    };
    // No lookup the verifier says is an array's: no row, and no flow to follow (a tenth of
    // the compile of a program without memory accesses).
    if !lookup.contains(&Some(LookupPath::Array)) {
        return rows;
    }
    let mut index = vec![usize::MAX; slots + 1];
    for (i, &pc) in pcs.iter().enumerate() {
        index[pc] = i;
    }
    // Only where the verifier says the map is an array: with no hint, a constant handle may
    // well be a hash map's, whose lookups would hand every run that relies on a row over to
    // the interpreter.
    let array_way = |pc: usize| lookup.get(pc).copied().flatten() == Some(LookupPath::Array);
    // The handles: first as they come, then again with those the rows took (a handle beyond
    // `MAX_ROWS` makes no result).
    let Some(states) = flow(insns, pcs, subprogs, &index, &mut rows.handles, &array_way) else {
        return rows;
    };
    rows.need = vec![[0; 2]; rows.handles.len()];
    for (i, insn) in insns.iter().enumerate() {
        let pc = pcs[i];
        let Some(st) = &states[i] else { continue };
        match *insn {
            Insn::Call(CallTarget::Helper(id))
                if id as u32 == bpfsim_vm::host::MAP_LOOKUP_ELEM && array_way(pc) =>
            {
                if let Val::Const(h) = st[1] {
                    rows.site[pc] = rows.handles.iter().position(|&x| x == h).map(|j| j as u8);
                }
            }
            Insn::Load { size, src, off, .. } => {
                prove(&mut rows, pc, st[src.index()], off, size, false)
            }
            Insn::Store { size, dst, off, .. } => {
                prove(&mut rows, pc, st[dst.index()], off, size, true)
            }
            Insn::Atomic {
                size, op, dst, off, ..
            } if crate::value_atomic(op) => {
                prove(&mut rows, pc, st[dst.index()], off, size, true);
                // A read-modify-write reads what it writes.
                if let Some(j) = rows.access[pc] {
                    let n = &mut rows.need[j as usize];
                    n[0] = n[0].max(n[1]);
                }
            }
            _ => {}
        }
    }
    rows
}

fn prove(rows: &mut Rows, pc: usize, v: Val, off: i16, size: Size, write: bool) {
    let Val::Res(j, k, true) = v else { return };
    let c = k + off as i64;
    if !(0..=MAX_K).contains(&c) {
        return;
    }
    let end = c as u64 + size.bytes() as u64;
    let n = &mut rows.need[j as usize][write as usize];
    *n = (*n).max(end);
    rows.access[pc] = Some(j);
}

/// The state before each instruction (by index; `None`: not reached), or `None` for a program
/// whose jumps leave it. Handles of the lookups whose `r1` is a constant are added to `handles`
/// as the analysis meets them, up to [`MAX_ROWS`].
fn flow(
    insns: &[Insn],
    pcs: &[usize],
    subprogs: &[usize],
    index: &[usize],
    handles: &mut Vec<u64>,
    array_way: &dyn Fn(usize) -> bool,
) -> Option<Vec<Option<State>>> {
    let n = insns.len();
    let mut state: Vec<Option<State>> = vec![None; n];
    let mut work = std::collections::BTreeSet::new();
    for &s in subprogs {
        let i = *index.get(s)?;
        if i == usize::MAX {
            return None;
        }
        state[i] = Some([Val::Unknown; 11]);
        work.insert(i);
    }
    let at = |slot: i64| -> Option<usize> {
        let i = *index.get(usize::try_from(slot).ok()?)?;
        (i != usize::MAX).then_some(i)
    };
    while let Some(i) = work.pop_first() {
        let Some(mut s) = state[i] else { continue };
        let insn = &insns[i];
        let pc = pcs[i];
        let next = pc as i64 + insn.slots() as i64;
        let mut outs: [(Option<usize>, Option<State>); 2] = [(None, None), (None, None)];
        match *insn {
            Insn::Exit => {}
            Insn::Ja { .. } | Insn::Gotol { .. } => {
                let t = at(next + insn.jump_offset()? as i64)?;
                outs[0] = (Some(t), Some(s));
            }
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let t = at(next + off as i64)?;
                let f = at(next)?;
                let (mut taken, mut fall) = (s, s);
                // `if (p == 0)` and `if (p != 0)`: the side where the register is not 0.
                if let (Width::W64, Source::Imm(0), Val::Res(j, k, _)) =
                    (width, src, s[dst.index()])
                {
                    match cond {
                        Cond::Eq => fall[dst.index()] = Val::Res(j, k, true),
                        Cond::Ne => taken[dst.index()] = Val::Res(j, k, true),
                        _ => {}
                    }
                }
                outs[0] = (Some(t), Some(taken));
                outs[1] = (Some(f), Some(fall));
            }
            _ => {
                step(&mut s, insn, pc, handles, array_way);
                outs[0] = (Some(at(next)?), Some(s));
            }
        }
        for (to, out) in outs {
            let (Some(to), Some(out)) = (to, out) else {
                continue;
            };
            let changed = match &mut state[to] {
                Some(old) => {
                    let mut c = false;
                    for r in 0..11 {
                        let m = old[r].meet(out[r]);
                        c |= m != old[r];
                        old[r] = m;
                    }
                    c
                }
                slot @ None => {
                    *slot = Some(out);
                    true
                }
            };
            if changed {
                work.insert(to);
            }
        }
    }
    Some(state)
}

/// The state after `insn` (not a jump nor an exit).
fn step(
    s: &mut State,
    insn: &Insn,
    pc: usize,
    handles: &mut Vec<u64>,
    array_way: &dyn Fn(usize) -> bool,
) {
    let set = match *insn {
        Insn::Alu {
            width: Width::W64,
            op,
            dst,
            src,
        } => {
            let v = match (op, src, s[dst.index()]) {
                (AluOp::Mov, Source::Imm(i), _) => Val::Const(i as i64 as u64),
                (AluOp::Mov, Source::Reg(r), _) => s[r.index()],
                (AluOp::Add, Source::Imm(i), Val::Res(j, k, nn)) => res(j, k + i as i64, nn),
                (AluOp::Sub, Source::Imm(i), Val::Res(j, k, nn)) => res(j, k - i as i64, nn),
                _ => Val::Unknown,
            };
            Some((dst, v))
        }
        Insn::LdImm64 {
            dst,
            imm: Imm64::Imm(v),
        } => Some((dst, Val::Const(v))),
        _ => None,
    };
    match *insn {
        // A call leaves `r6`-`r9` as they were (a helper's, a subprogram's: the interpreter
        // restores them) and `r10`.
        Insn::Call(_) | Insn::Callx { .. } | Insn::LoadPacket { .. } => {
            let r0 = match (*insn, s[1]) {
                (Insn::Call(CallTarget::Helper(id)), Val::Const(h))
                    if id as u32 == bpfsim_vm::host::MAP_LOOKUP_ELEM && array_way(pc) =>
                {
                    let j = match handles.iter().position(|&x| x == h) {
                        Some(j) => Some(j),
                        None if handles.len() < MAX_ROWS => {
                            handles.push(h);
                            Some(handles.len() - 1)
                        }
                        None => None,
                    };
                    j.map_or(Val::Unknown, |j| Val::Res(j as u8, 0, false))
                }
                _ => Val::Unknown,
            };
            s[..6].fill(Val::Unknown);
            s[0] = r0;
        }
        _ => {
            let w = super::regs_written(insn);
            for (r, v) in s.iter_mut().enumerate() {
                if w & (1 << r) != 0 {
                    *v = Val::Unknown;
                }
            }
        }
    }
    if let Some((dst, v)) = set {
        s[dst.index()] = v;
    }
    // `r10` is never a result (a program may write it; its value is the frame's).
    s[10] = Val::Unknown;
}

fn res(j: u8, k: i64, nn: bool) -> Val {
    if k.abs() > MAX_K {
        Val::Unknown
    } else {
        Val::Res(j, k, nn)
    }
}
