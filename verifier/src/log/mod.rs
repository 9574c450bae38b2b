//! The verifier log as the kernel writes it (`do_check`'s printing, kernel/bpf/log.c): at level 1
//! every processed instruction in the kernel's notation, followed (`; `) by the registers and
//! stack slots it touched ("scratched"), source lines from BTF line info, `N: safe` where a path
//! is pruned; at level 2 also the whole state where a path resumes (`from X to Y: ...`), the
//! subprogram and live-register tables, the states at calls and returns.
//!
//! The kernel rewinds its level-1 log when it backs up to a pushed branch (`pop_stack` with
//! `pop_log`), so a rejection's log is the path to the error; on success a level-1 log is the
//! statistics line alone. Level 2 keeps everything.
//!
//! One field cannot match: an `lddw` of a map prints the map's kernel address there; bpfsim
//! prints `map[idx:K]` (and `map[idx:K][0]+OFF` for a global variable), close to what the kernel
//! shows an unprivileged user.

pub mod fmt;
mod hooks;
pub(crate) mod liveness;

use bpfsim_vm::asm::kernel_line;
use bpfsim_vm::isa::{AtomicOp, CallTarget, Imm64, Insn, PacketMode, Source};

use crate::domain::reg::RegType;
use crate::domain::state::State;
use crate::MapInfo;
use fmt::Mask;

/// One BTF `line_info` record, resolved: the source line a run of instructions comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineInfo {
    /// First slot (instruction index) the line covers.
    pub slot: usize,
    /// The source line's text.
    pub text: String,
    /// The file's name (the kernel prints its base name).
    pub file: String,
    pub line: u32,
}

/// Where the log stood: lines, and the length of the last one (an instruction line may get its
/// state comment appended later).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogPos {
    lines: usize,
    last_len: usize,
}

/// What printing a state needs besides it: the map table (names, sizes) and the program (to
/// tell a callback's frame).
pub struct Env<'a> {
    pub maps: &'a [MapInfo],
    pub insn_at: &'a dyn Fn(usize) -> Option<Insn>,
}

/// The printing state of `do_check` (`env->scratched_regs`, `prev_log_pos`, `prev_linfo`...).
#[derive(Default)]
pub struct Trace {
    pub level: u32,
    scratch: Mask,
    /// A path was just resumed (`do_print_state`).
    do_print_state: bool,
    /// The last instruction line and its length, to append its comment to.
    insn_line: Option<(usize, usize)>,
    prev_linfo: Option<usize>,
    lines: Vec<LineInfo>,
    /// Lines written where the verifier holds only `&self` (precision backtracking walks the
    /// explored states while it logs), moved to the log before anything else is written.
    held: std::cell::RefCell<Vec<String>>,
    /// Level 2: each checkpoint as taken, before its dead registers were cleared. The kernel
    /// clears them only once a checkpoint is done, so while backtracking through the current
    /// path (`mark_precise: ... parent state`) it prints them all.
    raw: Vec<Option<State>>,
    /// The line a call of a global function prints once its arguments passed.
    pub(crate) global_call: Option<String>,
    /// The per-instruction trace is written (see [`Trace::enable`]).
    enabled: bool,
    /// The next line continues the last one after a space (see [`Trace::reset`]).
    join: bool,
}

/// `BPF_LOG_ALIGNMENT` and `BPF_LOG_MIN_ALIGNMENT`: state comments start at column 40 or the
/// next multiple of 8 at least 4 past the instruction (`vlog_alignment`).
fn alignment(pos: usize) -> usize {
    (pos + 4).max(40).next_multiple_of(8) - pos - 1
}

/// An instruction as the log prints it: `(cc) text`, with map references stable (see the module
/// documentation).
pub fn insn_text(insn: &Insn) -> String {
    match insn {
        Insn::LdImm64 {
            dst,
            imm: Imm64::MapIdx(k) | Imm64::MapFd(k),
        } => format!("(18) r{} = map[idx:{k}]", dst.num()),
        Insn::LdImm64 {
            dst,
            imm: Imm64::MapIdxValue { idx: k, off } | Imm64::MapValue { fd: k, off },
        } => format!("(18) r{} = map[idx:{k}][0]+{off}", dst.num()),
        _ => kernel_line(insn),
    }
}

impl Trace {
    pub fn new(level: u32, mut lines: Vec<LineInfo>) -> Trace {
        lines.sort_by_key(|l| l.slot);
        Trace {
            level,
            // The first instruction prints the whole initial state.
            scratch: Mask::ALL,
            do_print_state: false,
            insn_line: None,
            prev_linfo: None,
            lines,
            held: Default::default(),
            raw: Vec::new(),
            global_call: None,
            enabled: true,
            join: false,
        }
    }

    /// Whether to write the per-instruction trace: a level-1 pass that is expected to succeed
    /// skips it (its log would be discarded), the other lines of the level stay.
    pub fn enable(&mut self, on: bool) {
        self.enabled = on;
    }

    /// Checkpoint `idx` was taken from `st`.
    pub fn keep_raw(&mut self, idx: usize, st: &State) {
        if !self.level2() {
            return;
        }
        if self.raw.len() <= idx {
            self.raw.resize(idx + 1, None);
        }
        self.raw[idx] = Some(st.clone());
    }

    /// Checkpoint `idx` as taken, if kept.
    pub fn raw(&self, idx: usize) -> Option<&State> {
        self.raw.get(idx).and_then(Option::as_ref)
    }

    /// Write `line` to the log as soon as the caller can (see `held`).
    pub fn hold(&self, line: String) {
        self.held.borrow_mut().push(line);
    }

    /// Level 2: `SCC enter (1)`, `SCC exit ...`, `SCC backedge ...` for the strongly connected
    /// component `c` (call sites, component) as `format_callchain` writes it.
    pub fn scc(&self, what: &str, c: &(Vec<usize>, u32)) {
        if !self.level2() || !self.enabled {
            return;
        }
        let mut s = format!("SCC {what} (");
        for site in &c.0 {
            s.push_str(&format!("{site},"));
        }
        s.push_str(&format!("{})", c.1));
        self.hold(s);
    }

    /// Move the held lines to the log.
    pub fn drain(&self, log: &mut Vec<String>) {
        log.append(&mut self.held.borrow_mut());
    }

    /// `do_check` starts (the main program, or a global function on its own).
    pub fn start_run(&mut self) {
        self.scratch = Mask::ALL;
        self.do_print_state = false;
        self.insn_line = None;
    }

    /// Lines came after the last instruction's: its state goes on a line of its own.
    pub fn interrupted(&mut self) {
        self.insn_line = None;
    }

    pub fn on(&self) -> bool {
        self.level >= 1 && self.enabled
    }

    pub fn level2(&self) -> bool {
        self.level >= 2
    }

    pub fn pos(&self, log: &[String]) -> LogPos {
        LogPos {
            lines: log.len(),
            last_len: log.last().map_or(0, String::len),
        }
    }

    /// `bpf_vlog_reset`: back to `pos` (a level-1 log forgets a finished path). The kernel's
    /// position is a byte offset just past the branch's line: when the finished path appended
    /// its state comment to that line, it overwrote the newline with the comment's padding, so
    /// what the next path prints continues the line after a space.
    fn reset(&mut self, log: &mut Vec<String>, pos: LogPos) {
        log.truncate(pos.lines);
        if let Some(l) = log.last_mut() {
            if l.len() > pos.last_len {
                l.truncate(pos.last_len);
                l.push(' ');
                self.join = true;
            }
        }
    }

    /// Write a line, or continue the last one (see [`Trace::reset`]).
    fn emit(&mut self, log: &mut Vec<String>, line: String) {
        match log.last_mut() {
            Some(l) if std::mem::take(&mut self.join) => l.push_str(&line),
            _ => log.push(line),
        }
    }

    /// A path ended (exit or pruned): the next one resumes at a pushed branch whose log
    /// position was `pos` (`process_bpf_exit`, `pop_stack`).
    pub fn path_done(&mut self, log: &mut Vec<String>, pos: Option<LogPos>) {
        self.drain(log);
        self.scratch = Mask::ALL;
        self.do_print_state = true;
        if let (false, Some(p)) = (self.level2(), pos) {
            self.reset(log, p);
        }
    }

    /// After an exit from a subprogram the caller's state prints in full at level 2.
    pub fn resumed(&mut self) {
        self.do_print_state = true;
    }

    /// Everything is printed again at the next instruction (entering a function).
    pub fn scratch_all(&mut self) {
        self.scratch = Mask::ALL;
    }

    /// `is_state_visited` found the path covered.
    pub fn safe(&mut self, log: &mut Vec<String>, prev: Option<usize>, pc: usize) {
        if !self.on() {
            return;
        }
        self.drain(log);
        if self.do_print_state {
            self.emit(log, String::new());
            log.push(format!("from {} to {pc}: safe", from(prev)));
        } else {
            self.emit(log, format!("{pc}: safe"));
        }
        self.insn_line = None;
    }

    /// Whether frame `f` of `st` runs a callback (its call site is a helper call).
    fn callback_frame(st: &State, f: usize, insn_at: &dyn Fn(usize) -> Option<Insn>) -> bool {
        f > 0
            && matches!(
                insn_at(st.frames[f].callsite),
                Some(Insn::Call(CallTarget::Helper(_)))
            )
    }

    /// One frame of `st` as `print_verifier_state` prints it.
    pub fn state_line(st: &State, f: usize, mask: Mask, env: &Env<'_>) -> String {
        fmt::frame(
            &st.frames[f],
            f,
            outer_mask(st, f, mask, env.insn_at),
            &st.refs,
            Self::callback_frame(st, f, env.insn_at),
            env.maps,
        )
    }

    /// Everything `do_check` prints before an instruction: the resumed state (level 2), the
    /// state the previous instruction left (appended to its line when nothing came between),
    /// the source line, and the instruction.
    pub fn before_insn(
        &mut self,
        log: &mut Vec<String>,
        st: &State,
        prev: Option<usize>,
        pc: usize,
        insn: &Insn,
        env: &Env<'_>,
    ) {
        if !self.on() {
            return;
        }
        self.drain(log);
        let cur = st.frames.len() - 1;
        if self.level2() && self.do_print_state {
            log.push(String::new());
            log.push(format!(
                "from {} to {pc}:{}",
                from(prev),
                Self::state_line(st, cur, Mask::ALL, env)
            ));
            self.do_print_state = false;
            self.insn_line = None;
        }
        self.insn_state(log, st, pc, env);
        self.linfo(log, pc);
        let line = format!("{pc}: {}", insn_text(insn));
        self.join = false;
        self.insn_line = Some((log.len(), line.len()));
        log.push(line);
    }

    /// `print_insn_state`: the registers and slots touched since the last print, appended to
    /// the last instruction's line if nothing came after it, else on a line of their own
    /// numbered `pc`.
    pub fn insn_state(&mut self, log: &mut Vec<String>, st: &State, pc: usize, env: &Env<'_>) {
        if !self.on() || !self.scratch.any() {
            return;
        }
        self.drain(log);
        let state = Self::state_line(st, st.frames.len() - 1, self.scratch, env);
        match self.insn_line {
            Some((i, len)) if log.len() == i + 1 && log[i].len() == len => {
                let pad = alignment(len + 1);
                let l = &mut log[i];
                l.extend(std::iter::repeat_n(' ', pad));
                l.push(';');
                l.push_str(&state);
            }
            _ => self.emit(log, format!("{pc}:{state}")),
        }
        self.scratch = Mask::NONE;
    }

    /// `verbose_linfo`: the source line of `pc`, unless it is the one printed last.
    fn linfo(&mut self, log: &mut Vec<String>, pc: usize) {
        let n = self.lines.partition_point(|l| l.slot <= pc);
        if n == 0 || self.prev_linfo == Some(n - 1) {
            return;
        }
        let l = &self.lines[n - 1];
        // Records for other columns of the line just printed print nothing.
        if let Some(p) = self.prev_linfo.and_then(|p| self.lines.get(p)) {
            if p.file == l.file && p.line == l.line {
                return;
            }
        }
        let file = l.file.rsplit('/').next().unwrap_or(&l.file);
        let line = format!("; {} @ {file}:{}", l.text.trim_start(), l.line);
        self.emit(log, line);
        self.prev_linfo = Some(n - 1);
    }

    /// Registers and stack slots `insn` touches (`mark_reg_scratched` from `check_reg_arg`,
    /// `mark_stack_slot_scratched` from stack accesses), `st` being the state before it.
    pub fn scratch_insn(&mut self, st: &State, insn: &Insn) {
        if !self.on() {
            return;
        }
        let r = |n: u8| 1u16 << n;
        let src_bit = |s: &Source| match s {
            Source::Reg(x) => r(x.num()),
            Source::Imm(_) => 0,
        };
        // The stack slot an access through `base` at `off` lands in, if it is the stack.
        let slot = |base: u8, off: i16| -> u64 {
            let p = st.reg(base as usize);
            if p.ty != RegType::Stack || !p.var_off.is_const() {
                return 0;
            }
            let at = (p.var_off.value as i64)
                .wrapping_add(p.off as i64)
                .wrapping_add(off as i64);
            if !(-512..0).contains(&at) {
                return 0;
            }
            1u64 << ((-at - 1) / 8)
        };
        // Through a variable offset: a write touches every slot it may reach, a read those up to
        // and including the first byte that is not zero (`mark_reg_stack_read` stops there).
        let var_slots = |base: u8, off: i16, size: usize, read: bool| -> u64 {
            let p = st.reg(base as usize);
            if p.ty != RegType::Stack || p.var_off.is_const() {
                return 0;
            }
            let Some(fr) = st.frames.get(p.frameno as usize) else {
                return 0;
            };
            let at = p.off as i64 + off as i64;
            let (min, max) = (p.smin.saturating_add(at), p.smax.saturating_add(at));
            let mut m = 0u64;
            for a in min..max.saturating_add(size as i64) {
                if !(-512..0).contains(&a) {
                    break;
                }
                let spi = ((-a - 1) / 8) as usize;
                m |= 1 << spi;
                let b = (512 + a) as usize;
                if read
                    && fr.slot(crate::domain::state::SLOTS - 1 - b / 8).bytes[b % 8]
                        != crate::domain::state::Byte::Zero
                {
                    break;
                }
            }
            m
        };
        let (regs, stack) = match insn {
            Insn::Alu { dst, src, .. } => (r(dst.num()) | src_bit(src), 0),
            Insn::Neg { dst, .. } | Insn::Endian { dst, .. } => (r(dst.num()), 0),
            Insn::MovSx { dst, src, .. } => (r(dst.num()) | r(src.num()), 0),
            Insn::LdImm64 { dst, .. } => (r(dst.num()), 0),
            Insn::LoadPacket { mode, .. } => {
                let ind = match mode {
                    PacketMode::Ind(x) => r(x.num()),
                    PacketMode::Abs => 0,
                };
                (r(6) | ind | 0x3f, 0)
            }
            Insn::Load {
                dst,
                src,
                off,
                size,
                ..
            } => (
                r(dst.num()) | r(src.num()),
                slot(src.num(), *off) | var_slots(src.num(), *off, size.bytes(), true),
            ),
            Insn::Store {
                dst,
                src,
                off,
                size,
                ..
            } => (
                r(dst.num()) | src_bit(src),
                slot(dst.num(), *off) | var_slots(dst.num(), *off, size.bytes(), false),
            ),
            Insn::Atomic {
                dst, src, off, op, ..
            } => {
                let r0 = if matches!(op, AtomicOp::CmpXchg) {
                    r(0)
                } else {
                    0
                };
                (r(dst.num()) | r(src.num()) | r0, slot(dst.num(), *off))
            }
            Insn::Jmp { dst, src, .. } => (r(dst.num()) | src_bit(src), 0),
            Insn::Call(CallTarget::Local(_)) => (u16::MAX, u64::MAX),
            // A helper that runs a callback prints the whole state it returns to.
            Insn::Call(CallTarget::Helper(id))
                if matches!(
                    bpfsim_vm::spec::helper_name(*id as i64),
                    Some("loop" | "for_each_map_elem" | "find_vma" | "user_ringbuf_drain")
                ) =>
            {
                (u16::MAX, u64::MAX)
            }
            // A helper writing into stack memory it is given (`MEM_UNINIT`) writes it byte by
            // byte as a store would.
            Insn::Call(CallTarget::Helper(id)) => (0x3f, uninit_stack_args(st, *id as u32)),
            Insn::Call(_) | Insn::Callx { .. } => (0x3f, 0),
            // A subprogram's exit checks nothing (the main program's ends the path, after
            // which everything prints anyway).
            Insn::Exit | Insn::Ja { .. } | Insn::Gotol { .. } => (0, 0),
        };
        self.scratch.regs |= regs;
        self.scratch.stack |= stack;
    }

    /// A `do_check` run (the main program, or a global function) succeeded: at level 1 the
    /// kernel keeps none of its trace, from `mark` on.
    pub fn run_done(&self, log: &mut Vec<String>, mark: usize) {
        self.drain(log);
        if self.level == 1 {
            log.truncate(mark);
        }
    }
}

/// The stack slots a helper's uninitialised-memory arguments cover.
fn uninit_stack_args(st: &State, id: u32) -> u64 {
    use bpfsim_vm::spec::proto::{self, ArgAux, ArgBase, TypeFlags};
    let Some(p) = proto::proto(id) else {
        return 0;
    };
    let mut mask = 0u64;
    for (i, a) in p.args.iter().enumerate() {
        if a.base != ArgBase::PtrToMem || !a.flags.contains(TypeFlags::MEM_UNINIT) {
            continue;
        }
        let size = match p.arg_aux[i] {
            ArgAux::Size(n) => n as u64,
            _ => st.reg(i + 2).umax,
        };
        let ptr = st.reg(i + 1);
        if ptr.ty != RegType::Stack || !ptr.var_off.is_const() {
            continue;
        }
        let lo = (ptr.var_off.value as i64).wrapping_add(ptr.off as i64);
        for b in 0..size.min(512) as i64 {
            let at = lo + b;
            if (-512..0).contains(&at) {
                mask |= 1 << ((-at - 1) / 8);
            }
        }
    }
    mask
}

/// A caller's r0-r5 are cleared while it waits on a call of a subprogram
/// (`clear_caller_saved_regs`); bpfsim keeps them (dead), so they are left out of what prints.
/// A helper's callback runs on a copy of the state from before the helper call: its caller's
/// registers print.
pub fn outer_mask(
    st: &State,
    f: usize,
    mut mask: Mask,
    insn_at: &dyn Fn(usize) -> Option<Insn>,
) -> Mask {
    if f + 1 < st.frames.len() && !Trace::callback_frame(st, f + 1, insn_at) {
        mask.regs &= !0x3f;
    }
    mask
}

/// `check_subprogs`: where each subprogram starts (the program, every local call's target, every
/// function whose address is taken), in order.
pub fn subprog_starts(insns: &[Insn]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut pc = 0usize;
    for insn in insns {
        let next = pc + insn.slots();
        let target = match insn {
            Insn::Call(CallTarget::Local(off)) => Some(next as i64 + *off as i64),
            Insn::LdImm64 {
                imm: Imm64::Func(off),
                ..
            } => Some(pc as i64 + 1 + *off as i64),
            _ => None,
        };
        if let Some(t) = target.and_then(|t| usize::try_from(t).ok()) {
            starts.push(t);
        }
        pc = next;
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Level 2's first lines: `func#N @SLOT` per subprogram.
pub fn subprog_lines(insns: &[Insn]) -> Vec<String> {
    subprog_starts(insns)
        .iter()
        .enumerate()
        .map(|(i, s)| format!("func#{i} @{s}"))
        .collect()
}

/// Level 2's table of `compute_live_registers`: per instruction its strongly connected
/// component (if in a loop), the registers r0-r9 live before it, and the instruction.
pub fn live_table(insns: &[Insn], live: &[u16], scc: &[u32]) -> Vec<String> {
    let mut out = vec!["Live regs before insn:".to_string()];
    let mut pc = 0usize;
    for insn in insns {
        let l = live.get(pc).copied().unwrap_or(0);
        let regs: String = (0..10)
            .map(|j| {
                if l & (1 << j) != 0 {
                    char::from(b'0' + j as u8)
                } else {
                    '.'
                }
            })
            .collect();
        let c = match scc.get(pc).copied().unwrap_or(0) {
            0 => "    ".to_string(),
            c => format!("{c:>3} "),
        };
        out.push(format!("{c}{pc:>3}: {regs} {}", insn_text(insn)));
        pc += insn.slots();
    }
    out
}

fn from(prev: Option<usize>) -> String {
    prev.map_or_else(|| "0".to_string(), |p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reg::Reg;
    use crate::domain::state::Frame;
    use bpfsim_vm::asm::assemble;

    fn state() -> State {
        let mut f = Frame::new(0, 0, 0);
        f.regs[1] = Reg::ptr(RegType::Ctx);
        State {
            frames: vec![f],
            refs: Vec::new(),
            lock: None,
        }
    }

    #[test]
    fn comments_align_as_the_kernels() {
        // "0: (61) r2 = *(u32 *)(r1 +4)" is 28 characters: the ';' goes to column 38.
        assert_eq!(alignment(29), 10);
        // Long lines: 4 past the end, rounded up to 8.
        assert_eq!(alignment(41), 6);
    }

    #[test]
    fn an_instruction_prints_with_the_state_it_left() {
        let insns = assemble("ldxw %r2, [%r1+4]\nmov %r0, 2\nexit").unwrap();
        let mut t = Trace::new(1, Vec::new());
        let mut log = Vec::new();
        let mut st = state();
        let at = |_: usize| None;
        let env = Env {
            maps: &[],
            insn_at: &at,
        };
        t.before_insn(&mut log, &st, None, 0, &insns[0], &env);
        t.scratch_insn(&st, &insns[0]);
        st.frames[0].regs[2] = Reg::ptr(RegType::PacketEnd);
        t.before_insn(&mut log, &st, Some(0), 1, &insns[1], &env);
        assert_eq!(
            log,
            [
                "0: R1=ctx() R10=fp0",
                "0: (61) r2 = *(u32 *)(r1 +4)          ; R1=ctx() R2=pkt_end()",
                "1: (b7) r0 = 2",
            ]
        );
        // A line in between (an error's explanation) moves the state to a line of its own.
        log.push("something".to_string());
        t.scratch_insn(&st, &insns[1]);
        st.frames[0].regs[0] = Reg::known(2);
        t.before_insn(&mut log, &st, Some(1), 2, &insns[2], &env);
        assert_eq!(log[3..], ["something", "2: R0=2", "2: (95) exit"]);
    }

    #[test]
    fn source_lines_print_once_per_record() {
        let line = |slot, text: &str, n| LineInfo {
            slot,
            text: text.to_string(),
            file: "/src/x.bpf.c".to_string(),
            line: n,
        };
        let mut t = Trace::new(
            1,
            vec![
                line(0, "  int a = 1;", 3),
                line(1, "  int a = 1;", 3),
                line(2, "", 0),
            ],
        );
        let mut log = Vec::new();
        for pc in 0..3 {
            t.linfo(&mut log, pc);
        }
        assert_eq!(log, ["; int a = 1; @ x.bpf.c:3", ";  @ x.bpf.c:0"]);
    }

    #[test]
    fn a_level_1_log_forgets_a_finished_path() {
        let mut t = Trace::new(1, Vec::new());
        let mut log = vec!["5: (2d) if r3 > r2 goto pc+4".to_string()];
        let pos = t.pos(&log);
        log[0].push_str("   ; R2=pkt_end()");
        log.push("6: (95) exit".to_string());
        t.path_done(&mut log, Some(pos));
        // The finished path's comment had replaced the line's newline (the kernel's byte
        // offsets): what comes next continues the line after a space.
        assert_eq!(log, ["5: (2d) if r3 > r2 goto pc+4 "]);
        t.emit(&mut log, "10: R1=ctx()".to_string());
        t.emit(&mut log, "10: (95) exit".to_string());
        assert_eq!(
            log,
            ["5: (2d) if r3 > r2 goto pc+4 10: R1=ctx()", "10: (95) exit"]
        );
        // A branch line the finished path left alone keeps its newline.
        let mut log = vec!["5: (2d) if r3 > r2 goto pc+4".to_string()];
        let pos = t.pos(&log);
        log.push("6: (95) exit".to_string());
        t.path_done(&mut log, Some(pos));
        t.emit(&mut log, "10: R1=ctx()".to_string());
        assert_eq!(log, ["5: (2d) if r3 > r2 goto pc+4", "10: R1=ctx()"]);
        let mut t2 = Trace::new(2, Vec::new());
        let mut log2 = vec!["a".to_string(), "b".to_string()];
        t2.path_done(&mut log2, Some(LogPos::default()));
        assert_eq!(log2.len(), 2);
    }
}
