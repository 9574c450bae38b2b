//! What the JIT does with the verifier's proofs ([`Hints`]): with true hints, the results of
//! the interpreter; with false ones, other results perhaps, but never an access outside memory
//! the run owns (the host survives and its memory is intact).

use bpfsim_jit::{Hints, JitProgram};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{ConformanceHost, Interpreter, Program, Vm};

fn slots(prog: &Program) -> usize {
    prog.iter().map(|(pc, _)| pc + 2).max().unwrap_or(0)
}

/// Hints marking the listed slots as proven packet accesses.
fn packet_at(prog: &Program, pcs: &[usize]) -> Hints {
    let mut packet = vec![false; slots(prog)];
    for &pc in pcs {
        packet[pc] = true;
    }
    Hints {
        no_ctx: vec![true; slots(prog)],
        packet,
        ..Hints::default()
    }
}

/// A checked loop over the memory (`r1`, `r2` bytes), as a packet parser is written: every load
/// is preceded by its bounds check, so the hint on it holds.
const SUM: &str = "mov %r0, 0
mov %r3, %r1
add %r2, %r1
loop:
mov %r4, %r3
add %r4, 2
jgt %r4, %r2, tail
ldxh %r5, [%r3+0]
be16 %r5
add %r0, %r5
stxh [%r3+0], %r0
mov %r3, %r4
ja loop
tail:
mov %r4, %r3
add %r4, 1
jgt %r4, %r2, done
ldxb %r5, [%r3+0]
add %r0, %r5
done:
exit";

/// [`SUM`] as clang writes the checksum loop (`test-vectors/bench/parse_csum.bpf.c`): an index
/// added to the start for each access (`p = data + i`, whose low 32 bits the clamp takes as a
/// 32-bit sum), a 32-bit count and a conditional branch past the `ja` back; the loop's exit
/// reads the address of the load its bound check guards (made on the exit's edge).
const SUM_INDEXED: &str = "add %r2, %r1
mov %r0, 0
mov %r4, 0
loop:
mov %r5, %r1
add %r5, %r4
mov %r3, %r5
add %r3, 2
jgt %r3, %r2, tail
ldxh %r5, [%r5+0]
be16 %r5
add %r0, %r5
mov %r3, %r1
add %r3, %r4
stxh [%r3+0], %r0
add %r4, 2
mov %r5, %r4
lsh %r5, 32
rsh %r5, 32
jeq %r5, 4096, end
ja loop
end:
mov %r5, %r1
add %r5, %r4
tail:
mov %r3, %r5
add %r3, 1
jgt %r3, %r2, done
ldxb %r3, [%r5+0]
add %r0, %r3
done:
exit";

#[test]
fn true_packet_hints_change_nothing() {
    for (src, n) in [(SUM, 3), (SUM_INDEXED, 3)] {
        true_packet_hints_change_nothing_in(src, n);
    }
}

fn true_packet_hints_change_nothing_in(src: &str, n: usize) {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let accesses: Vec<usize> = prog
        .iter()
        .filter(|(_, i)| {
            matches!(
                i,
                bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. }
            )
        })
        .map(|(pc, _)| pc)
        .collect();
    assert_eq!(accesses.len(), n);
    let jit = JitProgram::compile_with(&prog, &packet_at(&prog, &accesses)).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    // Lengths around the clamp's scratch stand-in (under 8 bytes) and above.
    for len in 0..40usize {
        let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(29) ^ 0x5a).collect();
        let mut m1 = init.clone();
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        let mut m2 = init.clone();
        let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
        assert!(a.result.is_ok(), "len {len}: {a:?}");
        assert_eq!(a, b, "{src}\nlen {len}");
        assert_eq!(m1, m2, "{src}\nmemory, len {len}");
    }
}

/// True packet hints in straight-line code (no loop: the clamp bounds are loaded at each
/// access rather than once at entry), every size, loads and stores, at every length around
/// the checked one: the interpreter's results and memory.
#[test]
fn true_packet_hints_without_a_loop() {
    let src = "mov %r0, 0
mov %r4, %r1
add %r4, %r2
mov %r3, %r1
add %r3, 16
jgt %r3, %r4, out
ldxh %r0, [%r1+4]
ldxb %r5, [%r1+0]
add %r0, %r5
ldxw %r5, [%r1+8]
add %r0, %r5
ldxdw %r5, [%r1+8]
add %r0, %r5
stxb [%r1+15], %r0
stxh [%r1+2], %r0
stxw [%r1+4], %r5
stxdw [%r1+8], %r0
out:
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let accesses: Vec<usize> = prog
        .iter()
        .filter(|(_, i)| {
            matches!(
                i,
                bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. }
            )
        })
        .map(|(pc, _)| pc)
        .collect();
    let jit = JitProgram::compile_with(&prog, &packet_at(&prog, &accesses)).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    for len in [0usize, 1, 8, 15, 16, 17, 64] {
        let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        let mut m1 = init.clone();
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        let mut m2 = init.clone();
        let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
        assert_eq!(a, b, "len {len}");
        assert_eq!(m1, m2, "memory, len {len}");
        if len >= 16 {
            assert_ne!(m2, init, "len {len}: the stores ran");
        }
    }
}

/// False hints on accesses far outside the memory (and outside any region, and on the stack):
/// each lands inside the run's own memory, or its scratch word when the memory is under 8
/// bytes; the bytes around the memory are untouched and the host goes on.
#[test]
fn false_packet_hints_stay_inside_the_run() {
    let cases = [
        "stxdw [%r1+4096], %r1\nldxdw %r0, [%r1+4096]\nexit",
        "lddw %r3, 0x7fffffff00000000\nstxdw [%r3+0], %r3\nldxdw %r0, [%r3+0]\nexit",
        "lddw %r3, 0xfffffffffffffff8\nstxb [%r3+0], %r3\nldxb %r0, [%r3+0]\nexit",
        "mov %r3, 0\nstxw [%r3+0], %r1\nldxw %r0, [%r3+0]\nexit",
        "stxdw [%r10-8], %r1\nldxdw %r0, [%r10-600]\nexit",
        "stxdw [%r1-8], %r1\nldxh %r0, [%r1-1]\nexit",
        // Addresses that are sums (their low 32 bits taken as a 32-bit sum): of two registers
        // with and without an offset, one wrapping past 2^32, of a register and a constant.
        "lddw %r4, 0x7fffffff00001000\nmov %r3, %r1\nadd %r3, %r4\nstxdw [%r3+8], %r1\nldxdw %r0, [%r3+8]\nexit",
        "lddw %r4, 0xfffffff0\nmov %r3, %r1\nadd %r3, %r4\nstxh [%r3+0], %r1\nldxh %r0, [%r3+20]\nexit",
        "mov %r3, %r1\nadd %r3, 2147483647\nstxb [%r3+0], %r1\nldxw %r0, [%r3+0]\nexit",
        "mov %r3, %r1\nadd %r3, -1\nstxw [%r3+0], %r1\nldxdw %r0, [%r3-7]\nexit",
    ];
    for src in cases {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let accesses: Vec<usize> = prog
            .iter()
            .filter(|(_, i)| {
                matches!(
                    i,
                    bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. }
                )
            })
            .map(|(pc, _)| pc)
            .collect();
        let jit = JitProgram::compile_with(&prog, &packet_at(&prog, &accesses)).unwrap();
        let checked = JitProgram::compile(&prog).unwrap();
        let mut vm = Vm::default();
        for len in [0usize, 1, 3, 7, 8, 9, 64] {
            // The memory sits between guard bytes of one allocation.
            let mut buf = vec![0xeeu8; len + 64];
            let before = buf.clone();
            let out = {
                let mem = &mut buf[32..32 + len];
                jit.run_with_memory(&mut vm, &mut ConformanceHost, mem)
            };
            assert_eq!(&buf[..32], &before[..32], "{src} len {len}: guard before");
            assert_eq!(
                &buf[32 + len..],
                &before[32 + len..],
                "{src} len {len}: guard after"
            );
            // Without hints, the access traps as the interpreter's does.
            let mut m = vec![0u8; len];
            let c = checked.run_with_memory(&mut vm, &mut ConformanceHost, &mut m);
            let i = vm.run_with_memory(&Interpreter::new(&prog), &mut ConformanceHost, &mut m);
            assert_eq!(c, i, "{src} len {len}");
            // The clamped accesses never trap: they read what the run owns.
            assert!(out.result.is_ok(), "{src} len {len}: {out:?}");
        }
    }
}

/// A helper (id 7) that adds 1 to the byte at its first argument and maps a fresh region, as a
/// helper may (the run's table grows, and may move).
struct BumpAndMap;

impl bpfsim_vm::Host for BumpAndMap {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut bpfsim_vm::MemoryMap<'_>,
    ) -> Result<u64, bpfsim_vm::HelperStop> {
        if id != 7 {
            return Err(bpfsim_vm::HelperStop::Unknown);
        }
        let b = mem.slice_mut(args[0], 1)?;
        b[0] = b[0].wrapping_add(1);
        let fresh: &'static mut [u8] = Box::leak(vec![0u8; 16].into_boxed_slice());
        mem.map_mut(fresh).map_err(|_| bpfsim_vm::HelperStop::Fault)
    }
}

/// Proven packet accesses after helper calls: the clamp bounds, loaded once at entry, still
/// place them in the memory a helper wrote and after it mapped more regions (a run's regions
/// are only ever appended, so the primary region's row does not change).
#[test]
fn true_packet_hints_across_helper_calls() {
    let src = "mov %r6, %r1
mov %r7, %r1
add %r7, %r2
mov %r8, 0
loop:
mov %r4, %r6
add %r4, 2
jgt %r4, %r7, done
mov %r1, %r6
call 7
ldxh %r5, [%r6+0]
add %r8, %r5
stxh [%r6+0], %r8
ldxb %r5, [%r6+1]
add %r8, %r5
mov %r6, %r4
ja loop
done:
mov %r0, %r8
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let accesses: Vec<usize> = prog
        .iter()
        .filter(|(_, i)| {
            matches!(
                i,
                bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. }
            )
        })
        .map(|(pc, _)| pc)
        .collect();
    assert_eq!(accesses.len(), 3);
    let jit = JitProgram::compile_with(&prog, &packet_at(&prog, &accesses)).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    for len in 0..24usize {
        let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(41) ^ 0x3c).collect();
        let mut m1 = init.clone();
        let a = vm.run_with_memory(&interp, &mut BumpAndMap, &mut m1);
        let mut m2 = init.clone();
        let b = jit.run_with_memory(&mut vm, &mut BumpAndMap, &mut m2);
        assert!(a.result.is_ok(), "len {len}: {a:?}");
        assert_eq!(a, b, "{src}\nlen {len}");
        assert_eq!(m1, m2, "{src}\nmemory, len {len}");
        if len >= 2 {
            assert_ne!(m1, init, "len {len}: the program wrote the memory");
        }
    }
}

/// Accesses the hints leave as perhaps the context's (`no_ctx` false, not a packet access) are
/// one call into Rust each, which serves every region: the memory, the stack through a copied
/// pointer, and faults with the interpreter's trap (code, pc, address) and count.
#[test]
fn context_accesses_by_call_give_the_interpreters_results() {
    let cases = [
        SUM,
        // The stack through a copied frame pointer.
        "mov %r3, %r10\nadd %r3, -16\nstxdw [%r3+0], %r1\nstxw [%r3+8], %r2\nldxdw %r0, [%r3+0]\nldxw %r4, [%r3+8]\nadd %r0, %r4\nexit",
        // Out of bounds, read and write, after some work (the count at the fault matters).
        "mov %r0, 1\nadd %r0, 2\nldxdw %r0, [%r1+4096]\nexit",
        "mov %r0, 1\nstxb [%r1-1], %r0\nexit",
        "mov %r3, 0\nldxw %r0, [%r3+0]\nexit",
    ];
    for src in cases {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let maybe_ctx = Hints {
            no_ctx: vec![false; slots(&prog)],
            packet: vec![false; slots(&prog)],
            ..Hints::default()
        };
        let jit = JitProgram::compile_with(&prog, &maybe_ctx).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        for len in [0usize, 1, 5, 8, 16, 33] {
            let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            let mut m1 = init.clone();
            let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
            let mut m2 = init.clone();
            let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
            assert_eq!(a, b, "{src} len {len}");
            assert_eq!(m1, m2, "{src} memory, len {len}");
        }
    }
}

/// A context of four u32 fields: `a` (offset 0) and `b` (4) read-only, `c` (8) read-write, and
/// at 12 a field that exists only when `open`; a helper (id 7) moves `a` by its first argument
/// through `context_mut`, as `bpf_xdp_adjust_head` moves `data`.
struct Fields {
    a: u32,
    b: u32,
    c: u32,
    open: bool,
    pure: bool,
    /// Whether a store to `c` may be made straight into it (`Context::store_cell`).
    cell: bool,
}

impl bpfsim_vm::memory::Context for Fields {
    fn load(&self, off: u32, size: bpfsim_vm::isa::Size) -> Option<u64> {
        if size != bpfsim_vm::isa::Size::W {
            return None;
        }
        Some(match off {
            0 => self.a as u64,
            4 => self.b as u64,
            8 => self.c as u64,
            12 if self.open => 0xdead,
            _ => return None,
        })
    }
    fn store(&mut self, off: u32, size: bpfsim_vm::isa::Size, value: u64) -> bool {
        if (off, size) == (8, bpfsim_vm::isa::Size::W) {
            self.c = value as u32;
            return true;
        }
        false
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn loads_are_pure(&self) -> bool {
        self.pure
    }
    fn store_cell(&mut self, off: u32, size: bpfsim_vm::isa::Size) -> Option<&mut [u8]> {
        if !self.cell || (off, size) != (8, bpfsim_vm::isa::Size::W) {
            return None;
        }
        // The field's bytes: `c` is kept as bytes next to the struct for the test's sake.
        Some(self.c_bytes())
    }
}

impl Fields {
    fn new(open: bool, pure: bool, cell: bool) -> Fields {
        Fields {
            a: 100,
            b: 200,
            c: 300,
            open,
            pure,
            cell,
        }
    }

    fn c_bytes(&mut self) -> &mut [u8] {
        // SAFETY: a `u32` is 4 initialised bytes, any of which may hold any value.
        unsafe { std::slice::from_raw_parts_mut((&mut self.c as *mut u32).cast::<u8>(), 4) }
    }
}

struct MoveA;

impl bpfsim_vm::Host for MoveA {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut bpfsim_vm::MemoryMap<'_>,
    ) -> Result<u64, bpfsim_vm::HelperStop> {
        if id != 7 {
            return Err(bpfsim_vm::HelperStop::Unknown);
        }
        let f = mem
            .context_mut()
            .and_then(|c| c.downcast_mut::<Fields>())
            .ok_or(bpfsim_vm::HelperStop::Fault)?;
        f.a = f.a.wrapping_add(args[0] as u32);
        Ok(0)
    }
}

/// Hints marking every load and store through `r6` as a context field access (the programs
/// below keep the context in `r6`, as compiled C does), and those at `wrong` too.
fn ctx_hints(prog: &Program, wrong: &[usize]) -> Hints {
    let mut ctx = vec![false; slots(prog)];
    for (pc, insn) in prog.iter() {
        match insn {
            bpfsim_vm::isa::Insn::Load { src: r, .. }
            | bpfsim_vm::isa::Insn::Store { dst: r, .. } => {
                ctx[pc] = r.index() == 6 || wrong.contains(&pc);
            }
            _ => {}
        }
    }
    Hints {
        ctx,
        ..Hints::default()
    }
}

/// Runs `src` with `r1` the context and `r2` a 16-byte buffer under the interpreter and the JIT
/// (with `hints`), several runs on one map as a test run's `repeat` does, and compares every
/// result and the context's fields after.
fn ctx_agree(src: &str, hints_of: impl Fn(&Program) -> Hints, open: bool, pure: bool) {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &hints_of(&prog)).unwrap();
    let interp = Interpreter::new(&prog);
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    let mut seen = Vec::new();
    for (e, cell) in [(engines[0], false), (engines[1], false), (engines[1], true)] {
        let mut vm = Vm::default();
        let mut ctx = Fields::new(open, pure, cell);
        let mut buf = [7u8; 16];
        let mut outs = Vec::new();
        {
            let mut mem = vm.memory();
            let c = mem.map_context(&mut ctx).unwrap();
            let b = mem.map_mut(&mut buf).unwrap();
            let mut prepared = e.prepare();
            for _ in 0..3 {
                let args = [c, b, 0, 0, 0];
                outs.push(match &mut prepared {
                    Some(p) => p.execute(&mut mem, &mut MoveA, args, 10_000),
                    None => e.execute(&mut mem, &mut MoveA, args, 10_000),
                });
            }
        }
        seen.push((outs, (ctx.a, ctx.b, ctx.c), buf));
    }
    assert_eq!(seen[0], seen[1], "interpreter, then JIT:\n{src}");
    assert_eq!(
        seen[0], seen[2],
        "interpreter, then JIT storing into cells:\n{src}"
    );
}

/// Fields read before and after a helper moves one, and after a store writes one: the kept
/// values follow the context (here, and across the runs of one map).
const CTX_FIELDS: &str = "mov %r6, %r1
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r1, 5
call 7
ldxw %r0, [%r6+0]
sub %r0, %r7
ldxw %r3, [%r6+8]
add %r3, 1
stxw [%r6+8], %r3
ldxw %r4, [%r6+8]
add %r0, %r4
add %r0, %r8
exit";

#[test]
fn context_field_loads_follow_the_context() {
    for pure in [true, false] {
        ctx_agree(CTX_FIELDS, |p| ctx_hints(p, &[]), false, pure);
    }
}

#[test]
fn a_refused_context_field_faults_as_the_interpreter_does() {
    let src = "mov %r6, %r1\nldxw %r0, [%r6+12]\nexit";
    for open in [true, false] {
        ctx_agree(src, |p| ctx_hints(p, &[]), open, true);
    }
    // Past the context's fields, and an offset no field has.
    ctx_agree(
        "mov %r6, %r1\nldxw %r0, [%r6+16]\nexit",
        |p| ctx_hints(p, &[]),
        true,
        true,
    );
    ctx_agree(
        "mov %r6, %r1\nldxw %r0, [%r6+2]\nexit",
        |p| ctx_hints(p, &[]),
        true,
        true,
    );
}

/// Wrong context hints: loads through other pointers (the buffer, the context moved off its
/// fields, the stack, NULL) marked as field loads read what the interpreter reads, or fault
/// where it faults.
#[test]
fn false_context_hints_read_what_the_interpreter_reads() {
    let cases = [
        // The buffer at the offsets of the kept fields.
        "mov %r6, %r1\nldxw %r9, [%r6+0]\nldxw %r0, [%r2+0]\nldxw %r3, [%r2+4]\nadd %r0, %r3\nexit",
        // The context's address plus a field's offset, through another register.
        "mov %r6, %r1\nldxw %r9, [%r6+4]\nmov %r3, %r1\nadd %r3, 4\nldxw %r0, [%r3+0]\nexit",
        // The context pointer moved onto another field.
        "mov %r6, %r1\nldxw %r9, [%r6+0]\nadd %r6, 4\nldxw %r0, [%r6+0]\nexit",
        // The stack, and NULL.
        "mov %r6, %r1\nldxw %r9, [%r6+0]\nstw [%r10-8], 9\nldxw %r0, [%r10-8]\nexit",
        "mov %r6, %r1\nldxw %r9, [%r6+4]\nmov %r3, 0\nldxw %r0, [%r3+4]\nexit",
        "mov %r6, %r1\nldxw %r9, [%r6+4]\nlddw %r3, -1\nldxw %r0, [%r3+0]\nexit",
    ];
    for src in cases {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let wrong: Vec<usize> = prog
            .iter()
            .filter(|(_, i)| matches!(i, bpfsim_vm::isa::Insn::Load { .. }))
            .map(|(pc, _)| pc)
            .collect();
        ctx_agree(src, |p| ctx_hints(p, &wrong), true, true);
    }
}

/// A hinted load whose address is not its field's hands the run to the interpreter from that
/// load, with the registers live there and the exact budget: here inside a subprogram (the
/// interpreter returns to the caller's frame), after a helper that moved a field, at every
/// budget from too small for the first instruction to enough for the whole run.
#[test]
fn a_missed_context_field_hands_the_run_over_at_its_load() {
    let src = "mov %r6, %r1
mov %r7, 3
call local sub
add %r0, %r7
exit
sub:
ldxw %r9, [%r6+0]
mov %r1, 5
call 7
ldxw %r8, [%r6+0]
sub %r8, %r9
mov %r3, %r2
ldxw %r0, [%r3+4]
add %r0, %r8
stxw [%r2+8], %r0
ldxw %r4, [%r6+4]
add %r0, %r4
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    // The load through `r3` (the buffer) is marked as a field load of the context.
    let wrong: Vec<usize> = prog
        .iter()
        .filter(|(_, i)| matches!(i, bpfsim_vm::isa::Insn::Load { src, .. } if src.index() == 3))
        .map(|(pc, _)| pc)
        .collect();
    assert_eq!(wrong.len(), 1);
    let whole = budgets_agree(&prog, &ctx_hints(&prog, &wrong), true, src);
    assert_eq!(
        whole.result,
        Ok(0x0707_0707u64 + 5 + 200 + 3),
        "the whole run at budget 23"
    );
}

/// One run of `prog` at every budget from 0 to 23 under the interpreter and the JIT (with
/// `hints`), the context's field at 12 there when `open`: the outcomes, the fields and the buffer
/// after must agree. Returns the JIT's outcome at budget 23.
fn budgets_agree(prog: &Program, hints: &Hints, open: bool, src: &str) -> bpfsim_vm::Outcome {
    let jit = JitProgram::compile_with(prog, hints).unwrap();
    let interp = Interpreter::new(prog);
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    let mut last = None;
    for budget in 0..24 {
        let mut seen = Vec::new();
        for e in engines {
            let mut vm = Vm::default();
            let mut ctx = Fields::new(open, true, true);
            let mut buf = [7u8; 16];
            let out = {
                let mut mem = vm.memory();
                let c = mem.map_context(&mut ctx).unwrap();
                let b = mem.map_mut(&mut buf).unwrap();
                e.execute(&mut mem, &mut MoveA, [c, b, 0, 0, 0], budget)
            };
            seen.push((out, ctx.a, ctx.c, buf));
        }
        assert_eq!(
            seen[0], seen[1],
            "interpreter, then JIT, budget {budget}:\n{src}"
        );
        last = seen.pop().map(|s| s.0);
    }
    last.expect("24 budgets")
}

/// Stores into the context's cells: a field written and read back, by register and by
/// immediate, across the runs of one map; a store to a field the context refuses (`a` is
/// read-only) faults as in the interpreter, with or without a cell for `c`.
#[test]
fn context_field_stores_follow_the_context() {
    let src = "mov %r6, %r1
ldxw %r3, [%r6+8]
add %r3, 1
stxw [%r6+8], %r3
ldxw %r4, [%r6+8]
stw [%r6+8], 5
ldxw %r0, [%r6+8]
add %r0, %r4
stxw [%r6+8], %r4
mov %r1, 2
call 7
ldxw %r5, [%r6+8]
add %r0, %r5
ldxw %r5, [%r6+0]
add %r0, %r5
exit";
    for pure in [true, false] {
        ctx_agree(src, |p| ctx_hints(p, &[]), true, pure);
    }
    let refused = "mov %r6, %r1\nldxw %r3, [%r6+8]\nstxw [%r6+8], %r3\nstxw [%r6+0], %r3\nexit";
    ctx_agree(refused, |p| ctx_hints(p, &[]), true, true);
    // A store of another width at the cell's field, and a store past the fields.
    ctx_agree(
        "mov %r6, %r1\nstw [%r6+8], 1\nsth [%r6+8], 2\nldxw %r0, [%r6+8]\nexit",
        |p| ctx_hints(p, &[]),
        true,
        true,
    );
    ctx_agree(
        "mov %r6, %r1\nstw [%r6+8], 1\nstw [%r6+16], 2\nldxw %r0, [%r6+8]\nexit",
        |p| ctx_hints(p, &[]),
        true,
        true,
    );
}

/// A batch whose runs the interpreter finishes (the budget runs out inside a block, after the
/// code read a kept field): the interpreter's store to the field reaches the next run's kept
/// value, as each run of the interpreter alone sees the last one's store.
#[test]
fn a_store_after_a_hand_over_reaches_the_next_runs_kept_field() {
    let src = "mov %r6, %r1
ldxw %r0, [%r6+8]
add %r0, 1
mov %r3, 0
add %r3, 1
jlt %r3, 3, -2
stxw [%r6+8], %r0
mov %r2, 2
mov %r2, 3
mov %r2, 4
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog, &[])).unwrap();
    let interp = Interpreter::new(&prog);
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
    for budget in 0..18 {
        for cell in [false, true] {
            let mut seen = Vec::new();
            for e in engines {
                let mut vm = Vm::default();
                let mut ctx = Fields::new(true, true, cell);
                let out = {
                    let mut mem = vm.memory();
                    let c = mem.map_context(&mut ctx).unwrap();
                    let args = [c, 0, 0, 0, 0];
                    match e.prepare() {
                        Some(mut p) => p.execute_repeat(&mut mem, &mut MoveA, args, budget, 3),
                        None => (
                            (0..3)
                                .map(|_| e.execute(&mut mem, &mut MoveA, args, budget))
                                .last()
                                .unwrap(),
                            3,
                        ),
                    }
                };
                seen.push((out, ctx.c));
            }
            assert_eq!(seen[0], seen[1], "budget {budget}, cell {cell}");
        }
    }
}

/// Wrong context hints on stores: stores through other pointers (the buffer at the cell's
/// offset, the context moved onto another field, the stack, NULL) marked as field stores write
/// what the interpreter writes, or fault where it faults.
#[test]
fn false_context_store_hints_write_what_the_interpreter_writes() {
    let cases = [
        "mov %r6, %r1\nldxw %r9, [%r6+8]\nstw [%r2+8], 9\nstxw [%r6+8], %r9\nldxw %r0, [%r2+8]\nexit",
        "mov %r6, %r1\nadd %r6, -4\nstw [%r6+8], 9\nmov %r6, %r1\nldxw %r0, [%r6+8]\nexit",
        "mov %r6, %r1\nldxw %r0, [%r6+8]\nstw [%r10-8], 9\nldxw %r0, [%r10-8]\nexit",
        "mov %r6, %r1\nldxw %r9, [%r6+8]\nmov %r3, 0\nstw [%r3+8], 1\nexit",
        "mov %r6, %r1\nldxw %r9, [%r6+8]\nmov %r3, %r6\nstw [%r3+8], 1\nldxw %r0, [%r6+8]\nexit",
    ];
    for src in cases {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let wrong: Vec<usize> = prog
            .iter()
            .filter(|(_, i)| {
                matches!(
                    i,
                    bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. }
                )
            })
            .map(|(pc, _)| pc)
            .collect();
        ctx_agree(src, |p| ctx_hints(p, &wrong), true, true);
    }
}

/// Two programs' batches taking turns on one context, one storing into the field's cell and
/// one keeping the field's value: the keeper reads each store of the other's last batch, as
/// the interpreter does (the cell's stores leave the context with a new stamp).
#[test]
fn a_cell_store_reaches_what_another_program_keeps() {
    let writer = "mov %r6, %r1\nldxw %r0, [%r6+8]\nadd %r0, 1\nstxw [%r6+8], %r0\nexit";
    let reader = "mov %r6, %r1\nldxw %r0, [%r6+8]\nexit";
    let progs = [writer, reader].map(|src| Program::new(assemble(src).unwrap()).unwrap());
    let jits = progs
        .each_ref()
        .map(|p| JitProgram::compile_with(p, &ctx_hints(p, &[])).unwrap());
    let interps = progs.each_ref().map(Interpreter::new);
    let mut seen = Vec::new();
    for jit in [false, true] {
        let engines: [&dyn bpfsim_vm::Executable; 2] = if jit {
            [&jits[0], &jits[1]]
        } else {
            [&interps[0], &interps[1]]
        };
        let mut vm = Vm::default();
        let mut ctx = Fields::new(true, true, true);
        let mut outs = Vec::new();
        {
            let mut mem = vm.memory();
            let c = mem.map_context(&mut ctx).unwrap();
            let mut prepared = engines.map(|e| e.prepare());
            for turn in 0..6 {
                let who = [1, 0, 1, 0, 0, 1][turn];
                let args = [c, 0, 0, 0, 0];
                let out = match &mut prepared[who] {
                    Some(p) => p.execute_repeat(&mut mem, &mut MoveA, args, 10_000, 2).0,
                    None => {
                        engines[who].execute(&mut mem, &mut MoveA, args, 10_000);
                        engines[who].execute(&mut mem, &mut MoveA, args, 10_000)
                    }
                };
                outs.push(out);
            }
        }
        seen.push((outs, ctx.c));
    }
    assert_eq!(seen[0], seen[1], "interpreter, then JIT");
    assert_eq!(seen[0].1, 306);
}

/// A session's runs with a context, then without one (raw memory, where the context's region
/// is the input's): a hinted load must read the input, not the field kept from the last run.
#[test]
fn kept_context_fields_do_not_outlive_their_context() {
    let src = "mov %r6, %r1\nldxw %r0, [%r6+0]\nexit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog, &[])).unwrap();
    let interp = Interpreter::new(&prog);
    let mut session = jit.session();
    let mut ctx = Fields::new(true, true, true);
    let mut other = Vm::default();
    {
        let mut mem = other.memory();
        let c = mem.map_context(&mut ctx).unwrap();
        let out = session.run(&mut mem, &mut MoveA, [c, 0, 0, 0, 0], 100);
        assert_eq!(out.result, Ok(100));
        assert_eq!(
            c >> 32,
            bpfsim_vm::memory::FIXED_ROWS as u64,
            "the context sits where raw memory will"
        );
    }
    let mut input = 7u32.to_le_bytes();
    let raw = session.run_with_memory(&mut MoveA, &mut input);
    let mut vm = Vm::default();
    let want = vm.run_with_memory(&interp, &mut MoveA, &mut 7u32.to_le_bytes());
    assert_eq!(raw, want);
    assert_eq!(raw.result, Ok(7));
}

/// A host with the conformance helpers that says map 0's values are in the region at `values`
/// (the run's memory, for runs on raw memory: region `FIXED_ROWS`), and nothing of other maps.
struct ValuesAt(Option<u64>);

impl bpfsim_vm::Host for ValuesAt {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut bpfsim_vm::MemoryMap<'_>,
    ) -> Result<u64, bpfsim_vm::HelperStop> {
        ConformanceHost.call_helper(id, args, mem)
    }

    fn value_region(&mut self, map: u32) -> Option<u64> {
        if map == 0 {
            self.0
        } else {
            None
        }
    }
}

/// The region of the memory of a run on raw memory.
const MEMORY: u64 = (bpfsim_vm::memory::FIXED_ROWS as u64) << bpfsim_vm::memory::REGION_SHIFT;

/// Hints marking every load and store of `prog` as a proven access to a value of `map`.
fn values_of(prog: &Program, map: u32) -> Hints {
    let mut map_value = vec![None; slots(prog)];
    for (pc, i) in prog.iter() {
        if matches!(
            i,
            bpfsim_vm::isa::Insn::Load { .. } | bpfsim_vm::isa::Insn::Store { .. }
        ) {
            map_value[pc] = Some(map);
        }
    }
    Hints {
        no_ctx: vec![true; slots(prog)],
        map_value,
        ..Hints::default()
    }
}

/// True map value hints, with the host placing the values where they are (the run's memory),
/// give the interpreter's results; a host that does not place them, or names a region that is
/// not mapped, has the interpreter run the program, faults and all.
#[test]
fn true_value_hints_change_nothing() {
    let prog = Program::new(assemble(SUM).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &values_of(&prog, 0)).unwrap();
    let plain = JitProgram::compile(&prog).unwrap();
    assert!(jit.code_size < plain.code_size);
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    for len in 0..40usize {
        let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(29) ^ 0x5a).collect();
        let mut m1 = init.clone();
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        for at in [Some(MEMORY), None, Some(MEMORY + 8), Some(MEMORY << 1)] {
            let mut m2 = init.clone();
            let b = jit.run_with_memory(&mut vm, &mut ValuesAt(at), &mut m2);
            assert_eq!(a, b, "len {len}, values at {at:?}");
            assert_eq!(m1, m2, "memory, len {len}, values at {at:?}");
            // The same through a session, whose context serves run after run.
            let mut s = jit.session();
            let mut m3 = init.clone();
            let c = s.run_with_memory(&mut ValuesAt(at), &mut m3);
            assert_eq!(a, c, "session, len {len}, values at {at:?}");
            assert_eq!(m1, m3, "session memory, len {len}, values at {at:?}");
        }
    }
}

/// A host that keeps one tables epoch (`Host::tables_epoch`) across a session's runs on
/// different memories: the value clamps are made from each run's region table, so each run
/// reads and writes its own memory (stale ones would have reached the first run's buffer).
#[test]
fn a_kept_tables_epoch_never_keeps_value_clamps() {
    struct Kept;
    impl bpfsim_vm::Host for Kept {
        fn call_helper(
            &mut self,
            id: u32,
            args: [u64; 5],
            mem: &mut bpfsim_vm::MemoryMap<'_>,
        ) -> Result<u64, bpfsim_vm::HelperStop> {
            ConformanceHost.call_helper(id, args, mem)
        }

        fn value_region(&mut self, map: u32) -> Option<u64> {
            (map == 0).then_some(MEMORY)
        }

        fn tables_epoch(&self) -> u64 {
            5
        }
    }
    use bpfsim_vm::Executable;
    let prog = Program::new(assemble(SUM).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &values_of(&prog, 0)).unwrap();
    let interp = Interpreter::new(&prog);
    let mut prepared = jit.prepare().unwrap();
    for len in [40usize, 8, 24, 0, 40] {
        let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(13) ^ 0x33).collect();
        let mut want = init.clone();
        let a = Vm::default().run_with_memory(&interp, &mut ConformanceHost, &mut want);
        // A memory map of its own each time, the memory its first region (as in a run on raw
        // memory), entered through the one preparation.
        let mut got = init.clone();
        let mut vm = Vm::default();
        let mut mem = vm.memory();
        let at = mem.map_mut(&mut got).unwrap();
        assert_eq!(at, MEMORY);
        let b = prepared.execute(&mut mem, &mut Kept, [at, len as u64, 0, 0, 0], 1 << 20);
        drop(mem);
        assert_eq!(a, b, "len {len}");
        assert_eq!(want, got, "memory, len {len}");
    }
}

/// False map value hints on accesses far outside the memory (outside any region, on the stack):
/// each lands inside the region the host named, never traps, and leaves the bytes around the
/// memory untouched. When the host names no region, or one under 8 bytes, the interpreter runs
/// the program and its faults are the interpreter's.
#[test]
fn false_value_hints_stay_inside_the_region() {
    let cases = [
        "stxdw [%r1+4096], %r1\nldxdw %r0, [%r1+4096]\nexit",
        "lddw %r3, 0x7fffffff00000000\nstxdw [%r3+0], %r3\nldxdw %r0, [%r3+0]\nexit",
        "lddw %r3, 0xfffffffffffffff8\nstxb [%r3+0], %r3\nldxb %r0, [%r3+0]\nexit",
        "mov %r3, 0\nstxw [%r3+0], %r1\nldxw %r0, [%r3+0]\nexit",
        "mov %r3, %r10\nstxdw [%r3-8], %r1\nldxdw %r0, [%r3-600]\nexit",
        "stxdw [%r1-8], %r1\nldxh %r0, [%r1-1]\nexit",
        // Addresses that are sums (their low 32 bits taken as a 32-bit sum): of two registers
        // with and without an offset, one wrapping past 2^32, of a register and a constant.
        "lddw %r4, 0x7fffffff00001000\nmov %r3, %r1\nadd %r3, %r4\nstxdw [%r3+8], %r1\nldxdw %r0, [%r3+8]\nexit",
        "lddw %r4, 0xfffffff0\nmov %r3, %r1\nadd %r3, %r4\nstxh [%r3+0], %r1\nldxh %r0, [%r3+20]\nexit",
        "mov %r3, %r1\nadd %r3, 2147483647\nstxb [%r3+0], %r1\nldxw %r0, [%r3+0]\nexit",
        "mov %r3, %r1\nadd %r3, -1\nstxw [%r3+0], %r1\nldxdw %r0, [%r3-7]\nexit",
    ];
    for src in cases {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile_with(&prog, &values_of(&prog, 0)).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        for len in [0usize, 1, 3, 7, 8, 9, 64] {
            let mut buf = vec![0xeeu8; len + 64];
            let before = buf.clone();
            let out = {
                let mem = &mut buf[32..32 + len];
                jit.run_with_memory(&mut vm, &mut ValuesAt(Some(MEMORY)), mem)
            };
            assert_eq!(&buf[..32], &before[..32], "{src} len {len}: guard before");
            assert_eq!(
                &buf[32 + len..],
                &before[32 + len..],
                "{src} len {len}: guard after"
            );
            let mut m = vec![0u8; len];
            let i = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m);
            if len >= 8 {
                assert!(out.result.is_ok(), "{src} len {len}: {out:?}");
                assert!(i.result.is_err(), "{src} len {len}: {i:?}");
            } else {
                // No memory, or too little for one base to serve every size: the
                // interpreter's run.
                assert_eq!(out, i, "{src} len {len}");
            }
            let mut m2 = vec![0u8; len];
            let unplaced = jit.run_with_memory(&mut vm, &mut ValuesAt(None), &mut m2);
            assert_eq!(unplaced, i, "{src} len {len}: values unplaced");
            assert_eq!(m2, m, "{src} len {len}: memory, values unplaced");
        }
    }
}

/// Proven value accesses at constant addresses (globals: `lddw` of the value's address, then
/// constant offsets) take no clamp: with the region holding the bytes they reach, the
/// interpreter's results; with a region too small for them, the interpreter's run; with false
/// hints (the constant address in no region), bytes of the named region and nothing else.
#[test]
fn value_accesses_at_constant_addresses() {
    let global = |base: u64| {
        format!(
            "lddw %r3, {base:#x}
stxdw [%r3+32], %r1
mov %r4, %r3
add %r4, 16
stxw [%r4+4], %r4
ldxw %r0, [%r4+4]
ldxdw %r5, [%r3+32]
add %r0, %r5
ldxb %r5, [%r3+0]
add %r0, %r5
exit"
        )
    };
    // The first 40 bytes of the region are reached (8 at 32).
    for (base, right) in [(MEMORY, true), (0x7fff_ffff_0000_0000, false)] {
        let src = global(base);
        let prog = Program::new(assemble(&src).unwrap()).unwrap();
        let jit = JitProgram::compile_with(&prog, &values_of(&prog, 0)).unwrap();
        let listed = JitProgram::compile_opts(
            &prog,
            &values_of(&prog, 0),
            &bpfsim_jit::CompileOptions {
                listing: true,
                ..Default::default()
            },
        )
        .unwrap();
        let l = listed.listing().unwrap();
        let clamps = prog
            .iter()
            .flat_map(|(pc, _)| l.insns_of(pc))
            .filter(|i| i.text.contains("cmov"))
            .count();
        assert_eq!(clamps, 0, "no access is clamped");
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        for len in [0usize, 8, 39, 40, 41, 64] {
            let init: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(7) ^ 0x33).collect();
            let mut buf = vec![0xeeu8; len + 64];
            buf[32..32 + len].copy_from_slice(&init);
            let before = buf.clone();
            let out = {
                let mem = &mut buf[32..32 + len];
                jit.run_with_memory(&mut vm, &mut ValuesAt(Some(MEMORY)), mem)
            };
            assert_eq!(
                &buf[..32],
                &before[..32],
                "{base:#x} len {len}: guard before"
            );
            assert_eq!(
                &buf[32 + len..],
                &before[32 + len..],
                "{base:#x} len {len}: guard after"
            );
            let mut m = init.clone();
            let i = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m);
            if len < 40 {
                // A region without the bytes the constant accesses reach: the interpreter's run.
                assert_eq!(out, i, "{base:#x} len {len}");
                assert_eq!(&buf[32..32 + len], &m[..], "{base:#x} len {len}: memory");
            } else if right {
                assert_eq!(out, i, "{base:#x} len {len}");
                assert_eq!(&buf[32..32 + len], &m[..], "{base:#x} len {len}: memory");
                assert!(out.result.is_ok(), "{base:#x} len {len}: {out:?}");
            } else {
                // The interpreter faults (no region there); the code wrote the named region's
                // bytes at the constant offsets.
                assert!(i.result.is_err(), "{base:#x} len {len}: {i:?}");
                assert!(out.result.is_ok(), "{base:#x} len {len}: {out:?}");
                assert_eq!(
                    &buf[32 + 32..32 + 40],
                    &MEMORY.to_le_bytes(),
                    "{base:#x} len {len}: r1 at offset 32"
                );
            }
            let mut m2 = init.clone();
            let unplaced = jit.run_with_memory(&mut vm, &mut ValuesAt(None), &mut m2);
            let mut m3 = init.clone();
            let i3 = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m3);
            assert_eq!(unplaced, i3, "{base:#x} len {len}: values unplaced");
            assert_eq!(m2, m3, "{base:#x} len {len}: memory, values unplaced");
        }
    }
}

/// Hints marking every load, store and atomic of `prog` as a proven stack access.
fn stack_of(prog: &Program) -> Hints {
    let mut stack = vec![false; slots(prog)];
    for (pc, i) in prog.iter() {
        stack[pc] = matches!(
            i,
            bpfsim_vm::isa::Insn::Load { .. }
                | bpfsim_vm::isa::Insn::Store { .. }
                | bpfsim_vm::isa::Insn::Atomic { .. }
        );
    }
    Hints {
        no_ctx: vec![true; slots(prog)],
        stack,
        ..Hints::default()
    }
}

/// True stack hints where the frame's address is not known at compile time (the verifier
/// rejects a write to `r10`, so only hand-made hints reach such a program; the JIT must still
/// address the frames right): `r10` moved down, a subprogram writing its caller's frame
/// through the moved pointer and its own through a copy, atomics, every size.
#[test]
fn true_stack_hints_where_r10_is_written() {
    let src = "mov %r2, %r10
add %r2, -64
mov %r10, %r2
stdw [%r10-8], 5
stxdw [%r10+16], %r1
sth [%r10+30], 0x1234
mov %r1, %r10
call local f
ldxdw %r3, [%r10-8]
add %r0, %r3
ldxh %r3, [%r10+30]
add %r0, %r3
ldxdw %r3, [%r10+16]
add %r0, %r3
ldxb %r3, [%r10+63]
add %r0, %r3
exit
f:
mov %r4, %r10
add %r4, -512
stb [%r4+0], 9
ldxb %r5, [%r4+0]
stxb [%r1+63], %r5
mov %r3, 40
lock fetch add [%r1-8], %r3
lock cmpxchg32 [%r1+30], %r3
mov %r0, %r3
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &stack_of(&prog)).unwrap();
    let plain = JitProgram::compile(&prog).unwrap();
    assert!(jit.code_size < plain.code_size);
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    for len in [0usize, 8] {
        let mut m1 = vec![3u8; len];
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m1);
        assert!(a.result.is_ok(), "{a:?}");
        for _ in 0..2 {
            let mut m2 = vec![3u8; len];
            let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut m2);
            assert_eq!(a, b, "len {len}");
            assert_eq!(m1, m2, "len {len}");
            let mut s = jit.session();
            let mut m3 = vec![3u8; len];
            assert_eq!(a, s.run_with_memory(&mut ConformanceHost, &mut m3));
        }
    }
}

/// False stack hints on accesses outside the stack (outside any region, in the run's memory,
/// past a frame's end): each lands inside the buffer of the frames' stacks, never traps, and
/// never touches the run's memory or the bytes around it. An address in region 0 one frame
/// above frame 0's word at `r10 - 8` wraps onto that very word: the access read the stack.
#[test]
fn false_stack_hints_stay_inside_the_stack() {
    let cases = [
        ("stxdw [%r1+0], %r1\nldxdw %r0, [%r1+0]\nexit", None),
        (
            "lddw %r3, 0x7fffffff00000000\nstxdw [%r3+0], %r3\nldxdw %r0, [%r3+0]\nexit",
            None,
        ),
        (
            "lddw %r3, 0xfffffffffffffff8\nstxb [%r3+0], %r3\nldxb %r0, [%r3+0]\nexit",
            None,
        ),
        (
            "mov %r3, %r10\nstxdw [%r3+8], %r1\nldxdw %r0, [%r3+8]\nexit",
            None,
        ),
        (
            "mov %r3, %r10\nadd %r3, -4096\nstw [%r3-8], 7\nlock add32 [%r3-8], %r3\nldxw %r0, [%r3-8]\nexit",
            None,
        ),
        (
            "stdw [%r10-8], 0x1234\nmov %r3, 1016\nldxdw %r0, [%r3+0]\nexit",
            Some(0x1234),
        ),
    ];
    for (src, want) in cases {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let jit = JitProgram::compile_with(&prog, &stack_of(&prog)).unwrap();
        let interp = Interpreter::new(&prog);
        let mut vm = Vm::default();
        for len in [0usize, 8, 64] {
            let mut buf = vec![0xeeu8; len + 64];
            let before = buf.clone();
            let out = {
                let mem = &mut buf[32..32 + len];
                jit.run_with_memory(&mut vm, &mut ConformanceHost, mem)
            };
            assert_eq!(buf, before, "{src} len {len}: memory and guards");
            let mut m = vec![0u8; len];
            let i = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m);
            assert!(out.result.is_ok(), "{src} len {len}: {out:?}");
            // The first case's address is the run's memory when there is some: the interpreter
            // writes it there, the JIT (told it is the stack) on the stack.
            let in_memory = src.starts_with("stxdw [%r1") && len >= 8;
            assert_eq!(i.result.is_err(), !in_memory, "{src} len {len}: {i:?}");
            if let Some(w) = want {
                assert_eq!(out.result, Ok(w), "{src} len {len}");
            }
        }
    }
}

/// After a return the caller's `r10` is its own frame's pointer again, whether restored from
/// what the call saved or (static depths, `r10` never written) set as a constant: its value,
/// copied to other registers after returns at depths 1 and 0, is the interpreter's.
#[test]
fn r10_after_a_return_is_the_callers() {
    let src = "call local a
mov %r8, %r0
mov %r6, %r10
call local a
mov %r7, %r10
sub %r7, %r6
mov %r0, %r10
rsh %r0, 32
lsh %r0, 8
add %r0, %r7
add %r0, %r8
exit
a:
call local b
mov %r0, %r10
rsh %r0, 24
exit
b:
mov %r0, 0
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let interp = Interpreter::new(&prog);
    let mut vm = Vm::default();
    let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut []);
    // Frame 0 is region 1 and frame 1 region 2: `r10 >> 32` of each, shifted by 8.
    let want = (1u64 << 8) + (2u64 << 8);
    assert_eq!(a.result, Ok(want), "{a:?}");
    for hints in [Hints::default(), stack_of(&prog)] {
        let jit = JitProgram::compile_with(&prog, &hints).unwrap();
        assert_eq!(
            jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut []),
            a
        );
    }
}

/// An exit restores only the callee-saved registers its own subprogram writes: the others
/// still hold the caller's values, through nested calls (static depths) and recursion (a depth
/// in a variable), and a budget running out anywhere inside hands over the same registers.
#[test]
fn an_exit_restores_the_callee_saved_registers_its_subprogram_writes() {
    let nested = "mov %r6, 1
mov %r7, 2
mov %r8, 3
mov %r9, 4
call local a
mul %r6, 1000
mul %r7, 100
mul %r8, 10
add %r0, %r6
add %r0, %r7
add %r0, %r8
add %r0, %r9
exit
a:
mov %r6, 50
call local b
add %r6, %r7
mov %r0, %r6
exit
b:
mov %r7, 9
mov %r8, 9
mov %r0, %r7
exit";
    let recursive = "mov %r8, 7
mov %r6, 5
mov %r1, 4
call local c
mul %r8, 100
add %r0, %r8
add %r0, %r6
exit
c:
mov %r0, 0
jeq %r1, 0, +5
mov %r9, %r1
sub %r1, 1
call local c
add %r0, %r9
add %r0, %r8
exit";
    for (src, want) in [
        (nested, 1000 + 200 + 30 + 4 + 52),
        (recursive, 700 + 5 + 10 + 28),
    ] {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        let interp = Interpreter::new(&prog);
        let jit = JitProgram::compile(&prog).unwrap();
        let mut vm = Vm::default();
        vm.budget = 1000;
        let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut []);
        assert_eq!(a.result, Ok(want), "{src}");
        for budget in (0..=a.insns + 1).chain([a.insns * 2 + 1_000]) {
            vm.budget = budget;
            let a = vm.run_with_memory(&interp, &mut ConformanceHost, &mut []);
            let b = jit.run_with_memory(&mut vm, &mut ConformanceHost, &mut []);
            assert_eq!(a, b, "budget {budget}\n{src}");
        }
    }
}

/// Stack places ([`Hints::stack_at`]) address an access as a constant place in the stack
/// buffer, without reading its pointer: true ones give the interpreter's results; false ones
/// (another frame, another offset, a frame above the main program's, a place outside any
/// frame) read and write other bytes of the run's stack or are not used, and never touch the
/// run's memory or trap.
#[test]
fn stack_places_true_and_false() {
    use bpfsim_vm::isa::Insn;
    let src = "stdw [%r10-8], 5
stdw [%r10-16], 6
mov %r1, %r10
add %r1, -16
call local f
ldxdw %r3, [%r10-8]
add %r0, %r3
ldxdw %r3, [%r10-16]
add %r0, %r3
exit
f:
stdw [%r10-8], 1
ldxdw %r2, [%r1+8]
stxdw [%r1+0], %r2
mov %r0, 0
ldxdw %r0, [%r10-8]
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let interp = Interpreter::new(&prog);
    let slots = prog.iter().map(|(pc, _)| pc + 2).max().unwrap_or(0);
    let accesses: Vec<usize> = prog
        .iter()
        .filter(|(_, i)| matches!(i, Insn::Load { .. } | Insn::Store { .. }))
        .map(|(pc, _)| pc)
        .collect();
    // `f`'s accesses through `r1`: main's `r10 - 16`, one frame up.
    let through_r1: Vec<usize> = prog
        .iter()
        .filter(|(_, i)| {
            matches!(i, Insn::Load { src, .. } if src.index() == 1)
                || matches!(i, Insn::Store { dst, .. } if dst.index() == 1)
        })
        .map(|(pc, _)| pc)
        .collect();
    assert_eq!(through_r1.len(), 2);
    let with = |place: Option<(u32, i32)>| {
        let mut stack = vec![false; slots];
        let mut stack_at = vec![None; slots];
        for &pc in &accesses {
            stack[pc] = true;
        }
        for &pc in &through_r1 {
            stack_at[pc] = place;
        }
        let hints = Hints {
            no_ctx: vec![true; slots],
            stack,
            stack_at,
            ..Hints::default()
        };
        JitProgram::compile_with(&prog, &hints).unwrap()
    };
    let mut vm = Vm::default();
    let mut m = [7u8; 16];
    let want = vm.run_with_memory(&interp, &mut ConformanceHost, &mut m);
    assert_eq!(want.result, Ok(1 + 5 + 5), "{want:?}");
    let run = |jit: &JitProgram, vm: &mut Vm| {
        let mut m = [7u8; 16];
        let out = jit.run_with_memory(vm, &mut ConformanceHost, &mut m);
        assert_eq!(m, [7u8; 16]);
        out
    };
    // True, and places not used (a frame above the main program's, outside a frame).
    for place in [
        Some((1, -16)),
        None,
        Some((2, -16)),
        Some((1, -600)),
        Some((1, 8)),
    ] {
        assert_eq!(run(&with(place), &mut vm), want, "{place:?}");
    }
    // False: main's other word, or `f`'s own frame: other stack bytes, no trap.
    for place in [Some((1, -8)), Some((0, -16)), Some((0, -512))] {
        let out = run(&with(place), &mut vm);
        assert!(out.result.is_ok(), "{place:?}: {out:?}");
        assert_ne!(out.result, want.result, "{place:?}");
    }
}

/// A context that counts the loads it answers.
struct Counted(Fields, std::cell::Cell<u32>);

impl bpfsim_vm::memory::Context for Counted {
    fn load(&self, off: u32, size: bpfsim_vm::isa::Size) -> Option<u64> {
        self.1.set(self.1.get() + 1);
        self.0.load(off, size)
    }
    fn store(&mut self, off: u32, size: bpfsim_vm::isa::Size, value: u64) -> bool {
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

/// Single runs (a context made for each, its kept-field slots not written before the entry
/// reads them) read each kept field once, at the entry, and the code then finds every load in
/// its slot: a slot left as the stack had it would hand the run to the interpreter, which asks
/// the context at each load. Over a stack scribbled on between the runs.
#[test]
fn a_single_run_reads_each_kept_field_once() {
    let src = "mov %r6, %r1
ldxw %r0, [%r6+0]
ldxw %r2, [%r6+4]
add %r0, %r2
ldxw %r2, [%r6+0]
add %r0, %r2
ldxw %r2, [%r6+4]
add %r0, %r2
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog, &[])).unwrap();
    let interp = Interpreter::new(&prog);
    #[inline(never)]
    fn scribble(x: u64) -> u64 {
        let a = std::hint::black_box([x; 512]);
        a.iter().fold(0, |s, &v| s ^ v)
    }
    for (i, e) in [&interp as &dyn bpfsim_vm::Executable, &jit]
        .into_iter()
        .enumerate()
    {
        for run in 0..4u64 {
            // Stack bytes that look like the fields' addresses and like garbage.
            std::hint::black_box(scribble(if run % 2 == 0 { 10 << 32 } else { !0 >> 1 }));
            let mut vm = Vm::default();
            let mut ctx = Counted(Fields::new(false, true, false), std::cell::Cell::new(0));
            let out = {
                let mut mem = vm.memory();
                let c = mem.map_context(&mut ctx).unwrap();
                e.execute(&mut mem, &mut MoveA, [c, 0, 0, 0, 0], 1_000)
            };
            assert_eq!(out.result, Ok(600), "engine {i}, run {run}");
            let want = if i == 0 { 4 } else { 2 };
            assert_eq!(ctx.1.get(), want, "engine {i}, run {run}: loads asked");
        }
    }
}

/// Three or more loads of context fields through one register in one block share the first
/// one's check (`JitProgram::ctx_unchecked`); a call, a store to the context or a write of the
/// register ends the group. The kept values follow the context as alone (a helper moves `a`, a store
/// writes `c`), an unkept field in a group (`open` false: the field at 12 is refused) and a
/// register that is not the context (wrong hints on the buffer) hand the run to the
/// interpreter at the group's first load, at every budget.
#[test]
fn context_loads_of_one_block_share_one_check() {
    let grouped = "mov %r6, %r1
ldxw %r7, [%r6+0]
stw [%r10-8], 3
ldxw %r8, [%r6+4]
add %r7, %r8
ldxw %r9, [%r6+8]
mov %r1, 5
call 7
ldxw %r0, [%r6+0]
ldxw %r3, [%r6+8]
ldxw %r1, [%r6+4]
add %r0, %r1
stxw [%r6+8], %r3
ldxw %r4, [%r6+8]
ldxw %r5, [%r6+4]
ldxw %r1, [%r6+0]
add %r0, %r1
ldxw %r1, [%r6+4]
mov %r6, %r2
ldxw %r2, [%r6+4]
add %r0, %r7
add %r0, %r9
add %r0, %r3
add %r0, %r4
add %r0, %r5
add %r0, %r1
exit";
    let prog = Program::new(assemble(grouped).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog, &[])).unwrap();
    // Slots 3 and 5 share slot 1's check, 9 and 10 slot 8's (after the call); 14, 15 and 17
    // slot 13's (after the store to the context); 19 follows a write of `r6`. Two loads alone
    // are no group.
    assert_eq!(jit.ctx_unchecked(), vec![3, 5, 9, 10, 14, 15, 17]);
    // `r6` is the buffer at slot 14: a wrong hint there, alone.
    for pure in [true, false] {
        for open in [true, false] {
            ctx_agree(grouped, |p| ctx_hints(p, &[]), open, pure);
        }
    }
    // A group reading the refused field: the interpreter faults at its second load, after
    // reading the first.
    let refused = "mov %r6, %r1\nldxw %r7, [%r6+4]\nldxw %r8, [%r6+0]\nldxw %r0, [%r6+12]\n\
                   add %r0, %r7\nadd %r0, %r8\nexit";
    let prog = Program::new(assemble(refused).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog, &[])).unwrap();
    assert_eq!(jit.ctx_unchecked(), vec![2, 3]);
    for open in [true, false] {
        ctx_agree(refused, |p| ctx_hints(p, &[]), open, true);
    }
    // A group through the buffer (`r6 = r2`) marked as the context's.
    let wrong = "mov %r6, %r2\nldxw %r7, [%r6+4]\nldxw %r8, [%r6+0]\nldxw %r0, [%r6+8]\n\
                 add %r0, %r7\nadd %r0, %r8\nexit";
    let prog = Program::new(assemble(wrong).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog, &[])).unwrap();
    assert_eq!(jit.ctx_unchecked(), vec![2, 3]);
    ctx_agree(wrong, |p| ctx_hints(p, &[]), true, true);
    // Every budget, from none to the whole run: the hand-over at the group's first load is
    // exact.
    for src in [refused, wrong, grouped] {
        let prog = Program::new(assemble(src).unwrap()).unwrap();
        budgets_agree(&prog, &ctx_hints(&prog, &[]), false, src);
    }
}
