//! Array lookups with a constant handle answered from a row the batch checks, and the
//! accesses the JIT proves through their results (`gen/rows.rs`): the interpreter's results
//! with a true table, odd value sizes, keys past the map, accesses past a value, false hints
//! and hosts that list nothing, at every budget; a table that lies can make the program read or
//! write other bytes of the map's own values, never the bytes around them.

use bpfsim_jit::{Hints, JitProgram, LookupPath};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::host::ArrayLookup;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Outcome, Program, Vm};

const HANDLE: u64 = 0x1000;
/// Guard bytes on each side of the values, which no run may touch.
const GUARD: usize = 64;

/// An array of `max` values of `stride` bytes at guest address `base`, its lookups answered by
/// `call_helper` as a host answers them; `table` is what `array_lookups` says of it.
struct Array {
    base: u64,
    max: u64,
    stride: u64,
    table: Option<ArrayLookup>,
    calls: u32,
}

impl Host for Array {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        if id == 181 {
            // bpf_loop(n, callback, ctx, flags)
            return Err(HelperStop::Loop {
                func: args[1],
                iterations: args[0] as u32,
                ctx: args[2],
            });
        }
        if id != 1 || args[0] != HANDLE {
            return Err(HelperStop::Unknown);
        }
        self.calls += 1;
        let key = mem.slice(args[1], 4)?;
        let index = u32::from_le_bytes([key[0], key[1], key[2], key[3]]) as u64;
        Ok(if index < self.max {
            self.base + index * self.stride
        } else {
            0
        })
    }

    fn array_lookups(&mut self, out: &mut [ArrayLookup]) -> (u64, usize) {
        match self.table {
            Some(t) => {
                out[0] = t;
                (HANDLE, 1)
            }
            None => (0, 0),
        }
    }
}

/// The array's layout: `max` values of `stride` bytes.
#[derive(Clone, Copy, Debug)]
struct Layout {
    max: u64,
    stride: u64,
}

/// Runs `exec` on the array's values (`0, 1, 2, ...`, with guard bytes around them) with
/// `table(base)` as the host's claim: the outcome, the values with their guards, and the
/// helper's calls.
fn run(
    exec: &dyn bpfsim_vm::Executable,
    layout: Layout,
    table: &dyn Fn(u64) -> Option<ArrayLookup>,
    budget: u64,
) -> (Outcome, Vec<u8>, u32) {
    let len = (layout.max * layout.stride) as usize;
    let mut bytes: Vec<u8> = (0..len + 2 * GUARD).map(|i| i as u8).collect();
    let mut vm = Vm::default();
    let (out, calls) = {
        let mut mem = vm.memory();
        let base = mem.map_mut(&mut bytes[GUARD..GUARD + len]).unwrap();
        let mut host = Array {
            base,
            max: layout.max,
            stride: layout.stride,
            table: table(base),
            calls: 0,
        };
        let out = exec.execute(&mut mem, &mut host, [0; 5], budget);
        (out, host.calls)
    };
    (out, bytes, calls)
}

fn truth(layout: Layout) -> impl Fn(u64) -> Option<ArrayLookup> {
    move |base| {
        Some(ArrayLookup {
            max_entries: layout.max,
            stride: layout.stride,
            base,
        })
    }
}

/// The verifier's hint that every lookup of `prog` is an array's.
fn array_hints(prog: &Program) -> Hints {
    let mut lookup = vec![None; prog.iter().map(|(pc, i)| pc + i.slots()).max().unwrap_or(0)];
    for (pc, insn) in prog.iter() {
        if matches!(
            insn,
            bpfsim_vm::isa::Insn::Call(bpfsim_vm::isa::CallTarget::Helper(1))
        ) {
            lookup[pc] = Some(LookupPath::Array);
        }
    }
    Hints {
        lookup,
        ..Hints::default()
    }
}

/// Look up `key`; on a hit, through a copy of the result plus `k`, read `size` bytes at `off`,
/// add 1, write them back and return what is read again; 99 on a miss.
fn rmw(key: i32, k: i32, size: &str, off: i32) -> Program {
    let src = format!(
        "stw [%r10-4], {key}\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, {HANDLE:#x}\ncall 1\n\
         jne %r0, 0, +2\nmov %r0, 99\nexit\nmov %r6, %r0\nadd %r6, {k}\n\
         ldx{size} %r1, [%r6{off:+}]\nadd %r1, 1\nstx{size} [%r6{off:+}], %r1\n\
         ldx{size} %r0, [%r6{off:+}]\nexit"
    );
    Program::new(assemble(&src).unwrap()).unwrap()
}

/// Each key, offset and size on arrays of odd and even value sizes: the interpreter's
/// results, with the table true or absent; a true table answers without the helper.
#[test]
fn row_lookups_answer_as_the_helper() {
    for layout in [
        Layout { max: 4, stride: 8 },
        Layout { max: 3, stride: 12 },
        Layout { max: 5, stride: 1 },
    ] {
        for key in [0, 1, 2, 4, 5, -1] {
            for (k, size, off) in [
                (0, "dw", 0),
                (4, "w", 0),
                (0, "w", 8),
                (2, "h", 4),
                (0, "b", 0),
                (8, "dw", -8),
                // Past the value (not what a verifier lets through): the helper's pointer, as
                // the interpreter reads it.
                (0, "dw", 8),
                (-4, "w", 0),
                (16, "b", 0),
            ] {
                let prog = rmw(key, k, size, off);
                let case = (layout, key, k, size, off);
                let (want, want_bytes, _) =
                    run(&Interpreter::new(&prog), layout, &truth(layout), 100);
                let jit = JitProgram::compile_with(&prog, &array_hints(&prog)).unwrap();
                let (got, bytes, calls) = run(&jit, layout, &truth(layout), 100);
                assert_eq!((&got, &bytes), (&want, &want_bytes), "{case:?}");
                if (0..layout.max as i32).contains(&key) && got.result.is_ok() {
                    // A negative start first: as u64 it would overflow the sum.
                    let start = k + off;
                    if start >= 0 && start as u64 + size_bytes(size) <= layout.stride {
                        assert_eq!(calls, 0, "{case:?}: answered from the row");
                    }
                }
                let (got, bytes, calls) = run(&jit, layout, &|_| None, 100);
                assert_eq!((&got, &bytes), (&want, &want_bytes), "{case:?}, no table");
                assert_eq!(calls, 1, "{case:?}, no table: the interpreter's call");
            }
        }
    }
}

fn size_bytes(size: &str) -> u64 {
    match size {
        "b" => 1,
        "h" => 2,
        "w" => 4,
        _ => 8,
    }
}

/// Tables the batch finds false (values outside any region, past the region's end, a stride
/// smaller than the accesses reach, a region of another guest address) leave the row empty:
/// the interpreter makes the call and the rest of the run, with its exact results. Tables
/// that hold inside the region but lie make the program touch other bytes of the values only.
#[test]
fn false_tables_never_reach_past_the_values() {
    let layout = Layout { max: 4, stride: 8 };
    let caught: [&dyn Fn(u64) -> Option<ArrayLookup>; 5] = [
        &|_| {
            Some(ArrayLookup {
                max_entries: u64::MAX,
                stride: 1 << 40,
                base: 0x7fff_ffff_0000_0000,
            })
        },
        &|b| {
            Some(ArrayLookup {
                max_entries: 5,
                stride: 8,
                base: b,
            })
        },
        &|b| {
            Some(ArrayLookup {
                max_entries: 4,
                stride: 4,
                base: b,
            })
        },
        &|b| {
            Some(ArrayLookup {
                max_entries: 4,
                stride: 8,
                base: b.wrapping_sub(8),
            })
        },
        &|b| {
            Some(ArrayLookup {
                max_entries: u64::MAX / 2,
                stride: 8,
                base: b,
            })
        },
    ];
    for key in [0, 3, 4] {
        let prog = rmw(key, 0, "dw", 0);
        let jit = JitProgram::compile_with(&prog, &array_hints(&prog)).unwrap();
        let want = run(&Interpreter::new(&prog), layout, &truth(layout), 100);
        for (i, lie) in caught.iter().enumerate() {
            let got = run(&jit, layout, lie, 100);
            assert_eq!((&got.0, &got.1), (&want.0, &want.1), "key {key}, lie {i}");
        }
        // Inside the region but wrong: other values are read and written, the guards never.
        let lies: [&dyn Fn(u64) -> Option<ArrayLookup>; 3] = [
            &|b| {
                Some(ArrayLookup {
                    max_entries: 3,
                    stride: 8,
                    base: b + 8,
                })
            },
            &|b| {
                Some(ArrayLookup {
                    max_entries: 1,
                    stride: 32,
                    base: b + 24,
                })
            },
            &|b| {
                Some(ArrayLookup {
                    max_entries: 2,
                    stride: 9,
                    base: b + 1,
                })
            },
        ];
        for (i, lie) in lies.iter().enumerate() {
            let (out, bytes, _) = run(&jit, layout, lie, 100);
            assert!(out.result.is_ok(), "key {key}, lie {i}: {out:?}");
            let len = bytes.len();
            for at in (0..GUARD).chain(len - GUARD..len) {
                assert_eq!(bytes[at], at as u8, "key {key}, lie {i}: guard byte {at}");
            }
        }
    }
}

/// A lookup hinted as an array's on a map the host does not list (a false hint), and a
/// lookup with no hint: the interpreter's results and the helper's call.
#[test]
fn false_hints_take_the_helpers_call() {
    let layout = Layout { max: 4, stride: 8 };
    let prog = rmw(1, 0, "dw", 0);
    let want = run(&Interpreter::new(&prog), layout, &truth(layout), 100);
    for hints in [array_hints(&prog), Hints::default()] {
        let jit = JitProgram::compile_with(&prog, &hints).unwrap();
        let got = run(&jit, layout, &|_| None, 100);
        assert_eq!((&got.0, &got.1, got.2), (&want.0, &want.1, 1));
    }
}

/// A lookup in a loop whose results are kept across trips (an earlier trip's result is still
/// one of the lookup's), tested through a copy, an access through a register another
/// instruction overwrote, at every budget: the interpreter's results, instructions counted
/// and traps, the table true or absent.
#[test]
fn loops_and_budgets_agree_with_the_interpreter() {
    let layout = Layout { max: 4, stride: 8 };
    let src = format!(
        "mov %r7, 0\nmov %r6, %r10\n\
         stxw [%r10-4], %r7\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, {HANDLE:#x}\ncall 1\n\
         jeq %r0, 0, +9\nldxw %r1, [%r0+0]\nadd %r1, %r7\nstxw [%r0+4], %r1\n\
         ldxb %r3, [%r6-1]\nmov %r6, %r0\nadd %r6, 2\nadd %r7, 1\nmov %r0, %r3\nja -16\n\
         ldxh %r0, [%r6+0]\nexit"
    );
    let prog = Program::new(assemble(&src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &array_hints(&prog)).unwrap();
    let interp = Interpreter::new(&prog);
    let tables: [&dyn Fn(u64) -> Option<ArrayLookup>; 2] = [&truth(layout), &|_| None];
    for budget in 0..120 {
        for (t, table) in tables.iter().enumerate() {
            let want = run(&interp, layout, table, budget);
            let got = run(&jit, layout, table, budget);
            assert_eq!(
                (&got.0, &got.1),
                (&want.0, &want.1),
                "budget {budget}, table {t}"
            );
        }
    }
}

/// Row lookups in a `bpf_loop` callback (a function of its own), each call's index the key:
/// the interpreter's results at every budget, the table true or absent (a hand-over inside
/// the callback).
#[test]
fn callbacks_look_up_rows_as_the_interpreter() {
    let layout = Layout { max: 4, stride: 8 };
    let src = format!(
        "mov %r1, 6\nlddw %r2, func +6\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit\nexit\n\
         stxw [%r10-4], %r1\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, {HANDLE:#x}\ncall 1\n\
         jeq %r0, 0, +3\nldxdw %r1, [%r0+0]\nadd %r1, 5\nstxdw [%r0+0], %r1\nmov %r0, 0\nexit"
    );
    let prog = Program::new(assemble(&src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &array_hints(&prog)).unwrap();
    let interp = Interpreter::new(&prog);
    let tables: [&dyn Fn(u64) -> Option<ArrayLookup>; 2] = [&truth(layout), &|_| None];
    for budget in (0..140).chain([1000]) {
        for (t, table) in tables.iter().enumerate() {
            let want = run(&interp, layout, table, budget);
            let got = run(&jit, layout, table, budget);
            assert_eq!(
                (&got.0, &got.1),
                (&want.0, &want.1),
                "budget {budget}, table {t}"
            );
        }
    }
    let (out, bytes, calls) = run(&jit, layout, &truth(layout), 1000);
    assert!(out.result.is_ok(), "{out:?}");
    assert_eq!(calls, 0, "answered from the row");
    assert_eq!(bytes[GUARD], GUARD as u8 + 5, "value 0 counted");
}
