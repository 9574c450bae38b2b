//! Packet accesses the JIT proves from the program's own bounds checks (`gen::bounds`): with a
//! context whose `data` and `data_end` are what they say, the interpreter's results; with one
//! that lies (an end past the packet, a start in another region, a packet the run may not
//! write), still the interpreter's results, the lying field's load handing the run over, and
//! never an access outside the packet.

mod common;
use common::pkt::*;

/// clang's shape: a bounds check of `data` plus a constant against `data_end`, then loads and
/// a store below it.
const PARSE: &str = "mov %r6, %r1
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 14
mov %r0, 0
jgt %r4, %r3, +5
ldxb %r0, [%r2+13]
ldxh %r5, [%r2+12]
add %r0, %r5
stxb [%r2+1], %r0
ldxdw %r1, [%r2+6]
exit";

#[test]
fn proven_accesses_give_the_interpreters_results() {
    let prog = Program::new(assemble(PARSE).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    // The three loads and the store below the check, no other access.
    assert_eq!(jit.bounds_proven(), vec![7, 8, 10, 11]);
    for len in [0usize, 1, 13, 14, 15, 64] {
        let packet: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
        let [i, j] = both(PARSE, &packet, true, &truthful);
        assert_eq!(i, j, "len {len}");
    }
}

/// `data_end` past the packet's region: the proof's bound is a lie, and the run hands itself
/// to the interpreter at its load, which faults where the access leaves the packet.
#[test]
fn an_end_past_the_packet_hands_the_run_over() {
    let src = "mov %r6, %r1
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 2000
mov %r0, 0
jgt %r4, %r3, +2
ldxb %r0, [%r2+1999]
stxb [%r2+1990], %r0
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    assert_eq!(
        JitProgram::compile_with(&prog, &ctx_hints(&prog))
            .unwrap()
            .bounds_proven(),
        vec![7, 8]
    );
    for extra in [1u64, 100, 4096, 1 << 31] {
        let lie = move |p: u64, _: u64, len: usize| Pkt {
            data: p,
            end: p + len as u64 + extra,
            cell: false,
        };
        for len in [0usize, 64, 1999, 2000] {
            let [i, j] = both(src, &vec![3u8; len], true, &lie);
            assert_eq!(i, j, "len {len}, end {extra} past it");
        }
    }
}

/// `data` in another region than the packet (the primary one): the proofs' base is not the
/// packet, and the run hands itself over at its load; the interpreter reads the other region.
#[test]
fn a_start_in_another_region_hands_the_run_over() {
    let in_other = |_: u64, o: u64, _: usize| Pkt {
        data: o,
        end: o + 64,
        cell: false,
    };
    let [i, j] = both(PARSE, &[9u8; 64], true, &in_other);
    assert_eq!(i, j);
    assert!(i.0[0].result.is_ok(), "{:?}", i.0[0]);
}

/// A packet the run may not write: a proven store's bound does not hold for writing, and the
/// interpreter faults at the store as it would.
#[test]
fn a_read_only_packet_hands_proven_stores_over() {
    let [i, j] = both(PARSE, &[1u8; 64], false, &truthful);
    assert_eq!(i, j);
    assert!(i.0[0].result.is_err(), "{:?}", i.0[0]);
}

/// A call may move the packet: a check made before it proves nothing of a `data` loaded
/// after it (here 50 bytes further on, its old bound past the packet's end), though a
/// register still holds the value loaded before.
#[test]
fn a_check_before_a_call_proves_nothing_after_it() {
    let src = "mov %r6, %r1
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r7, %r2
mov %r4, %r2
add %r4, 40
mov %r0, 0
jgt %r4, %r3, +6
ldxb %r0, [%r2+39]
mov %r1, 50
call 7
ldxw %r2, [%r6+0]
ldxb %r1, [%r2+39]
add %r0, %r1
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    assert_eq!(jit.bounds_proven(), vec![8]);
    for len in [40usize, 64, 89, 90, 200] {
        let [i, j] = both(src, &vec![5u8; len], true, &truthful);
        assert_eq!(i, j, "len {len}");
    }
}

/// Pointers that survive a call keep what was proven of them (the call does not move the
/// registers' values, only the context's fields), as do spills (until a call, which may
/// write the stack); a pointer plus a small
/// variable (`ihl * 4`) is proven by its own check; a join of paths that disagree on a
/// constant keeps the weakest bound.
#[test]
fn proofs_survive_calls_spills_variables_and_joins() {
    let src = "mov %r6, %r1
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r4, %r7
add %r4, 34
mov %r0, 0
jgt %r4, %r8, +19
stxdw [%r10-8], %r7
ldxdw %r2, [%r10-8]
ldxb %r0, [%r2+33]
mov %r1, 0
call 7
ldxb %r3, [%r7+14]
and %r3, 15
lsh %r3, 2
mov %r5, %r7
add %r5, 14
jeq %r0, 0, +1
add %r5, 4
add %r5, %r3
mov %r4, %r5
add %r4, 8
jgt %r4, %r8, +3
ldxdw %r1, [%r5+0]
add %r0, %r1
ldxb %r1, [%r5+8]
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    // The reloaded spill, the pointer kept across the call, the sum's load; not the load
    // past the sum's check.
    assert_eq!(jit.bounds_proven(), vec![9, 12, 23]);
    for len in [0usize, 33, 34, 60, 64, 100] {
        for first in [0u8, 1, 0x45, 0xff] {
            let mut packet = vec![first; len];
            if len > 33 {
                packet[33] = first & 1;
            }
            let [i, j] = both(src, &packet, true, &truthful);
            assert_eq!(i, j, "len {len}, byte {first}");
        }
    }
}

/// A scalar plus a pointer (`r3 = (ihl & 15) << 2; r3 += data`, the operands the other way
/// round from `data += r3`) is a pointer too, proven by its own check.
#[test]
fn a_scalar_plus_a_pointer_is_a_pointer() {
    let src = "mov %r6, %r1
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r4, %r7
add %r4, 20
mov %r0, 0
jgt %r4, %r8, +8
ldxb %r3, [%r7+0]
and %r3, 15
lsh %r3, 2
add %r3, %r7
mov %r4, %r3
add %r4, 4
jgt %r4, %r8, +1
ldxw %r0, [%r3+0]
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    assert_eq!(jit.bounds_proven(), vec![7, 14]);
    for len in [0usize, 20, 23, 24, 63, 64, 80] {
        for first in [0u8, 5, 0x4f, 0xff] {
            let mut packet = vec![0x11u8; len];
            if len > 0 {
                packet[0] = first;
            }
            let [i, j] = both(src, &packet, true, &truthful);
            assert_eq!(i, j, "len {len}, byte {first}");
        }
    }
}

/// A store into the cell of a field the proofs bound accesses by (which a verifier refuses,
/// and a context may offer): the field is no longer kept, and its next load hands the run over,
/// which then faults where the interpreter does.
#[test]
fn a_store_into_a_proofs_field_unkeeps_it() {
    let src = "mov %r6, %r1
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
add %r3, 1000
stxw [%r6+4], %r3
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 500
mov %r0, 0
jgt %r4, %r3, +1
ldxb %r0, [%r2+499]
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    assert_eq!(jit.bounds_proven(), vec![10]);
    let with_cell = |p: u64, _: u64, len: usize| Pkt {
        data: p,
        end: p + len as u64,
        cell: true,
    };
    for len in [64usize, 499, 500, 600] {
        let [i, j] = both(src, &vec![2u8; len], true, &with_cell);
        assert_eq!(i, j, "len {len}");
    }
}

/// A subprogram that only local calls enter starts with what its callers pass: `data` and
/// `data_end` as arguments, checked and read in the callee (clang's `__noinline` parsers), from
/// two call sites, one passing a pointer further on. A subprogram a helper may also call (a
/// callback) starts with nothing known.
#[test]
fn a_callee_proves_what_its_callers_pass() {
    let src = "mov %r6, %r1
ldxw %r1, [%r6+0]
ldxw %r2, [%r6+4]
call local parse
mov %r7, %r0
ldxw %r1, [%r6+0]
add %r1, 2
ldxw %r2, [%r6+4]
call local parse
add %r0, %r7
exit
parse:
mov %r0, 0
mov %r3, %r1
add %r3, 6
jgt %r3, %r2, +1
ldxw %r0, [%r1+2]
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    assert_eq!(jit.bounds_proven(), vec![15]);
    for len in [0usize, 5, 6, 7, 8, 9, 64] {
        let packet: Vec<u8> = (0..len as u8).collect();
        let [i, j] = both(src, &packet, true, &truthful);
        assert_eq!(i, j, "len {len}");
    }
    // The same callee, its address also taken (`lddw r5, func`): a helper may call it with
    // anything in its registers.
    let also = src.replacen(
        "call local parse\nmov %r7",
        "lddw %r5, func parse\ncall local parse\nmov %r7",
        1,
    );
    let prog = Program::new(assemble(&also).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    assert_eq!(jit.bounds_proven(), Vec::<usize>::new());
}

/// Paths that meet with a pointer at different constants from one value (`data + 18` on one,
/// `data + 14` on the other) make the pointer a value of its own there: a check of it proves
/// nothing of another register holding `data`, whose room depends on the path.
#[test]
fn a_join_of_different_offsets_is_a_new_value() {
    let src = "mov %r6, %r1
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
ldxw %r3, [%r6+0]
mov %r5, %r7
add %r5, 18
jeq %r8, %r7, +1
add %r5, -4
mov %r2, %r5
add %r2, 8
mov %r0, 0
jgt %r2, %r8, +2
ldxb %r0, [%r5+7]
ldxb %r0, [%r3+25]
exit";
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    // Through the checked pointer itself, yes; through `data` 25 bytes on, no (22 were
    // checked on the path most runs take).
    assert_eq!(jit.bounds_proven(), vec![12]);
    for len in [0usize, 21, 22, 23, 25, 26, 40] {
        let [i, j] = both(src, &vec![4u8; len], true, &truthful);
        assert_eq!(i, j, "len {len}");
    }
}

/// A loop over the packet by an index (`for (i = 0; i < n; i += 2)` over `data + i`, checked
/// against `data_end`): the access through `data + i` is proven (the index grows by at most
/// 2^16 an instruction from 0, so `data + i` does not wrap in a run of at most 2^32
/// instructions, and runs with more budget are interpreted), and gives the interpreter's
/// results at every length. An index stepped down, by doubling or by more than 2^16 proves
/// nothing.
#[test]
fn a_loop_index_added_to_the_packet_pointer_is_proven() {
    let counted = |step: &str, cond: &str| {
        format!(
            "mov %r6, %r1
ldxw %r1, [%r6+0]
ldxw %r2, [%r6+4]
mov %r3, 0
mov %r4, 0
loop:
mov %r5, %r1
add %r5, %r4
mov %r0, %r5
add %r0, 2
jgt %r0, %r2, out
ldxh %r5, [%r5+0]
add %r3, %r5
{step}
mov %r5, %r4
lsh %r5, 32
rsh %r5, 32
{cond} %r5, 4096, loop
out:
mov %r0, %r3
exit"
        )
    };
    let src = counted("add %r4, 2", "jne");
    let prog = Program::new(assemble(&src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    assert_eq!(jit.bounds_proven(), vec![10]);
    assert_eq!(jit.budget_max(), 1 << 32);
    for len in 0..=76 {
        let packet: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(29)).collect();
        let [i, j] = both(&src, &packet, true, &truthful);
        assert_eq!(i, j, "len {len}");
    }
    for step in [
        "add %r4, -2",
        "add %r4, %r4\nadd %r4, 2",
        "lsh %r4, 1\nadd %r4, 2",
        "add %r4, 131072",
    ] {
        for cond in ["jne", "jlt"] {
            let src = counted(step, cond);
            let prog = Program::new(assemble(&src).unwrap()).unwrap();
            let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
            assert_eq!(jit.bounds_proven(), Vec::<usize>::new(), "{step}, {cond}");
            assert_eq!(jit.budget_max(), u64::MAX, "{step}, {cond}");
            for len in [0usize, 2, 3, 64] {
                let [i, j] = both(&src, &vec![7u8; len], true, &truthful);
                assert_eq!(i, j, "{step}, {cond}, len {len}");
            }
        }
    }
    // A budget above 2^32: the interpreter runs it, with the same results.
    let prog = Program::new(assemble(&src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    let interp = Interpreter::new(&prog);
    for budget in [1u64 << 32, (1 << 32) + 1, u64::MAX] {
        let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, &jit];
        let outs = engines.map(|e| {
            let mut vm = Vm::default();
            let mut packet = vec![3u8; 1500];
            let mut ctx;
            let mut mem = vm.memory();
            let p = mem.map_mut(&mut packet).unwrap();
            ctx = truthful(p, 0, 1500);
            let c = mem.map_context(&mut ctx).unwrap();
            e.execute(&mut mem, &mut MoveData, [c, 0, 0, 0, 0], budget)
        });
        assert_eq!(outs[0], outs[1], "budget {budget}");
        assert_eq!(outs[1].result, Ok(750 * 0x0303), "budget {budget}");
    }
}
