//! `bpf_map_lookup_elem` on the host's array maps, which the generated code answers itself
//! ([`Host::array_lookups`]): the interpreter's answers when the host's table is true, and with
//! a false table, wrong pointers that the program's accesses check, never host memory.

use bpfsim_jit::{Hints, JitProgram, LookupPath};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::host::ArrayLookup;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

const HANDLE: u64 = 0x1000;

/// One array of 4 values of 8 bytes at guest address `base`, its lookups answered by
/// `call_helper` as a host answers them; `table` is what `array_lookups` says of it.
struct OneArray {
    base: u64,
    table: Option<ArrayLookup>,
    /// The lookups `call_helper` answered.
    calls: u32,
    /// Its `tables_epoch` (0: none).
    epoch: u64,
}

impl Host for OneArray {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        if id != 1 || args[0] != HANDLE {
            return Err(HelperStop::Unknown);
        }
        self.calls += 1;
        let key = mem.slice(args[1], 4)?;
        let index = u32::from_le_bytes([key[0], key[1], key[2], key[3]]) as u64;
        Ok(if index < 4 { self.base + index * 8 } else { 0 })
    }

    fn tables_epoch(&self) -> u64 {
        self.epoch
    }

    fn array_lookups(&mut self, out: &mut [ArrayLookup]) -> (u64, usize) {
        match self.table {
            Some(t) if !out.is_empty() => {
                out[0] = t;
                (HANDLE, 1)
            }
            _ => (0, 0),
        }
    }
}

/// Look up `key` (a stack slot, or the pointer `r2` given) and return the value found, or 99.
fn program(key: &str) -> Program {
    let src = format!(
        "{key}\nlddw %r1, {HANDLE:#x}\ncall 1\njeq %r0, 0, +2\nldxdw %r0, [%r0+0]\nexit\nmov %r0, 99\nexit"
    );
    Program::new(assemble(&src).unwrap()).unwrap()
}

fn keys() -> Vec<String> {
    let mut k: Vec<String> = [0i32, 1, 3, 4, -1]
        .iter()
        .map(|i| format!("stw [%r10-4], {i}\nmov %r2, %r10\nadd %r2, -4"))
        .collect();
    // Keys that fault: NULL, past the stack's top, the map handle.
    k.push("mov %r2, 0".to_string());
    k.push("mov %r2, %r10\nadd %r2, -2".to_string());
    k.push(format!("lddw %r2, {HANDLE:#x}"));
    k
}

/// Runs `prog` with the values mapped, under `exec`, with `table` as the host's claim.
fn run(
    exec: &dyn bpfsim_vm::Executable,
    table: impl Fn(u64) -> Option<ArrayLookup>,
) -> (bpfsim_vm::Outcome, Vec<u8>, u32) {
    let mut vm = Vm::default();
    let mut values: Vec<u8> = (0..32u8).collect();
    let out = {
        let mut mem = vm.memory();
        let base = mem.map_mut(&mut values).unwrap();
        let mut host = OneArray {
            base,
            table: table(base),
            calls: 0,
            epoch: 0,
        };
        (exec.execute(&mut mem, &mut host, [0; 5], 1000), host.calls)
    };
    (out.0, values, out.1)
}

fn truth(base: u64) -> Option<ArrayLookup> {
    Some(ArrayLookup {
        max_entries: 4,
        stride: 8,
        base,
    })
}

#[test]
fn true_tables_answer_as_the_helper() {
    for key in keys() {
        let prog = program(&key);
        let jit = JitProgram::compile(&prog).unwrap();
        let (out, values, _) = run(&Interpreter::new(&prog), truth);
        let want = (out, values);
        let (out, values, _) = run(&jit, truth);
        assert_eq!((out, values), want, "{key}");
        // No table: every lookup calls the host.
        let (out, values, _) = run(&jit, |_| None);
        assert_eq!((out, values), want, "{key}, no table");
    }
}

/// A host whose table lies: pointers into no region, or past its values, fault at the
/// program's access (a read the region table checks); one inside the values reads a wrong
/// value of the guest's own; the values stay untouched.
#[test]
fn false_tables_give_pointers_that_are_checked() {
    let lies = [
        |_| ArrayLookup {
            max_entries: u64::MAX,
            stride: 1 << 40,
            base: 0x7fff_ffff_0000_0000,
        },
        |base| ArrayLookup {
            max_entries: 1000,
            stride: 64,
            base,
        },
        |base: u64| ArrayLookup {
            max_entries: 4,
            stride: 8,
            base: base.wrapping_sub(8),
        },
    ];
    let prog = program("stw [%r10-4], 3\nmov %r2, %r10\nadd %r2, -4");
    let jit = JitProgram::compile(&prog).unwrap();
    for (i, lie) in lies.into_iter().enumerate() {
        let (out, values, _) = run(&jit, |b| Some(lie(b)));
        if i < 2 {
            assert!(out.result.is_err(), "lie {i}: {out:?}");
        } else {
            // Index 3 eight bytes early: value 2.
            assert_eq!(
                out.result,
                Ok(u64::from_le_bytes([16, 17, 18, 19, 20, 21, 22, 23]))
            );
        }
        assert_eq!(values, (0..32u8).collect::<Vec<_>>(), "lie {i}");
    }
}

/// A session's runs take each run's table: a host without arrays after one with them sends
/// the lookup to that host.
#[test]
fn each_run_takes_its_hosts_table() {
    let prog = program("stw [%r10-4], 1\nmov %r2, %r10\nadd %r2, -4");
    let jit = JitProgram::compile(&prog).unwrap();
    let mut session = jit.session();
    let mut other = Vm::default();
    let mut values: Vec<u8> = (0..32u8).collect();
    {
        let mut mem = other.memory();
        let base = mem.map_mut(&mut values).unwrap();
        let mut host = OneArray {
            base,
            table: truth(base),
            calls: 0,
            epoch: 0,
        };
        let out = session.run(&mut mem, &mut host, [0; 5], 1000);
        assert_eq!(
            out.result,
            Ok(u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]))
        );
    }
    let want =
        Vm::default().run_with_memory(&Interpreter::new(&prog), &mut bpfsim_vm::NoHelpers, &mut []);
    let got = session.run_with_memory(&mut bpfsim_vm::NoHelpers, &mut []);
    assert_eq!(got, want);
    assert!(got.result.is_err(), "no helper 1 here: {got:?}");
}

/// A hash map of 16-byte keys at guest address `base` (two values of 8 bytes, for keys whose
/// bytes sum to 1 and 2), answered by `call_helper` as a host answers it, and by
/// `map_lookup_key` for the code's direct calls when `listed` (the key size `key_lookups`
/// says) is not `None`; counts the calls of each.
struct Keyed {
    base: u64,
    listed: Option<u32>,
    helper_calls: u32,
    key_calls: u32,
}

impl Keyed {
    fn find(&self, key: &[u8]) -> u64 {
        match key.iter().map(|&b| b as u64).sum::<u64>() {
            s @ (1 | 2) => self.base + (s - 1) * 8,
            _ => 0,
        }
    }
}

impl Host for Keyed {
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
        self.helper_calls += 1;
        let key = mem.slice(args[1], 16)?;
        Ok(self.find(key))
    }

    fn key_lookups(&mut self, out: &mut [u32]) -> (u64, usize) {
        match self.listed {
            Some(size) => {
                out[0] = size;
                (HANDLE, 1)
            }
            None => (0, 0),
        }
    }

    fn map_lookup_key(&mut self, map: u64, key: &[u8]) -> u64 {
        assert_eq!(map, HANDLE);
        self.key_calls += 1;
        if key.len() != 16 {
            return 0;
        }
        self.find(key)
    }
}

/// Runs `prog` with the hash map's values mapped, under `exec`: the outcome, the values, and
/// the calls of `call_helper` and of `map_lookup_key`.
fn run_keyed(
    exec: &dyn bpfsim_vm::Executable,
    listed: Option<u32>,
) -> (bpfsim_vm::Outcome, Vec<u8>, u32, u32) {
    let mut vm = Vm::default();
    let mut values: Vec<u8> = (0..16u8).collect();
    let (out, calls) = {
        let mut mem = vm.memory();
        let base = mem.map_mut(&mut values).unwrap();
        let mut host = Keyed {
            base,
            listed,
            helper_calls: 0,
            key_calls: 0,
        };
        let out = exec.execute(&mut mem, &mut host, [0; 5], 1000);
        (out, (host.helper_calls, host.key_calls))
    };
    (out, values, calls.0, calls.1)
}

/// A 16-byte key written at `r10 - at` (its first byte `first`, the others 0 but a last byte
/// `last` at `r10 - 1`), looked up from `r2 = r10 - from`: the value found, or 99.
fn keyed_program(at: i32, first: u8, last: u8, from: i32) -> Program {
    let src = format!(
        "stdw [%r10-8], 0\nstdw [%r10-16], 0\nstdw [%r10-24], 0\nstb [%r10-{at}], {first}\n\
         stb [%r10-1], {last}\nmov %r2, %r10\nadd %r2, -{from}\nlddw %r1, {HANDLE:#x}\ncall 1\n\
         jeq %r0, 0, +2\nldxdw %r0, [%r0+0]\nexit\nmov %r0, 99\nexit"
    );
    Program::new(assemble(&src).unwrap()).unwrap()
}

/// Keys at a constant place in the stack on a listed map go to `map_lookup_key` (found, not
/// found, bytes at both ends of the key), with the helper's answers; a key that would cross
/// the frame's top, or a map not listed, goes through the helper, which faults or answers.
#[test]
fn listed_maps_are_asked_with_the_keys_bytes() {
    // (key at, first byte, last byte, r2 at, direct call expected)
    let cases = [
        (16, 1, 0, 16, true),
        (16, 1, 1, 16, true),
        (16, 0, 0, 16, true),
        (16, 3, 0, 16, true),
        (16, 0, 2, 16, true),
        // 16 bytes from r10 - 8 cross the frame's top: the helper faults.
        (8, 1, 0, 8, false),
        (24, 1, 0, 24, true),
    ];
    for (at, first, last, from, direct) in cases {
        let prog = keyed_program(at, first, last, from);
        let jit = JitProgram::compile(&prog).unwrap();
        let (want, want_values, _, _) = run_keyed(&Interpreter::new(&prog), Some(16));
        let (got, values, helper, keyed) = run_keyed(&jit, Some(16));
        let case = (at, first, last, from);
        assert_eq!(got, want, "{case:?}");
        assert_eq!(values, want_values, "{case:?}");
        assert_eq!((helper, keyed), (!direct as u32, direct as u32), "{case:?}");
        // Not listed: the helper answers alike.
        let (got, _, helper, keyed) = run_keyed(&jit, None);
        assert_eq!(got, want, "{case:?}, not listed");
        assert_eq!((helper, keyed), (1, 0), "{case:?}, not listed");
    }
    // Found and not found, through both paths.
    let found = run_keyed(
        &JitProgram::compile(&keyed_program(16, 1, 1, 16)).unwrap(),
        Some(16),
    );
    assert_eq!(
        found.0.result,
        Ok(u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]))
    );
    let missed = run_keyed(
        &JitProgram::compile(&keyed_program(16, 3, 0, 16)).unwrap(),
        Some(16),
    );
    assert_eq!(missed.0.result, Ok(99));
}

/// A host whose key sizes lie: a size the key's place cannot hold (up to the whole frame and
/// past it) sends the lookup through the helper; one it can hold hands the host that many bytes
/// of the program's own stack, never more, and 0 means not listed.
#[test]
fn false_key_sizes_never_read_past_the_frame() {
    let prog = keyed_program(16, 1, 0, 16);
    let jit = JitProgram::compile(&prog).unwrap();
    let (want, _, _, _) = run_keyed(&Interpreter::new(&prog), Some(16));
    for size in [17, 512, 513, 4096, u32::MAX, 0] {
        let (got, _, helper, keyed) = run_keyed(&jit, Some(size));
        assert_eq!(got, want, "size {size}");
        assert_eq!((helper, keyed), (1, 0), "size {size}");
    }
    for size in [1, 8, 15] {
        // The host reads `size` bytes and (its own rule) finds nothing for them.
        let (got, _, helper, keyed) = run_keyed(&jit, Some(size));
        assert_eq!(got.result, Ok(99), "size {size}");
        assert_eq!((helper, keyed), (0, 1), "size {size}");
    }
    // The frame's whole 512 bytes from its bottom: inside, asked directly.
    let prog = keyed_program(16, 1, 0, 512);
    let jit = JitProgram::compile(&prog).unwrap();
    let (got, _, helper, keyed) = run_keyed(&jit, Some(512));
    assert_eq!((got.result, helper, keyed), (Ok(99), 0, 1));
}

/// A lookup in a `bpf_loop` callback (compiled as a function of its own) with the key in the
/// callback's frame is asked with the key's bytes as in the main program: each call's key (its
/// first byte the index) found or not as the helper finds it.
#[test]
fn callbacks_ask_listed_maps_with_the_keys_bytes() {
    let src = format!(
        "mov %r1, 4\nlddw %r2, func +8\nmov %r3, 0\nmov %r4, 0\ncall 181\nmov %r0, %r6\n\
         exit\nexit\nexit\nstdw [%r10-8], 0\nstdw [%r10-16], 0\nstxb [%r10-16], %r1\n\
         mov %r2, %r10\nadd %r2, -16\nlddw %r1, {HANDLE:#x}\ncall 1\njeq %r0, 0, +1\n\
         ldxdw %r0, [%r0+0]\nmov %r0, 0\nexit"
    );
    let prog = Program::new(assemble(&src).unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let (want, want_values, _, _) = run_keyed(&Interpreter::new(&prog), Some(16));
    let (got, values, helper, keyed) = run_keyed(&jit, Some(16));
    assert_eq!(got, want);
    assert_eq!(values, want_values);
    assert_eq!((helper, keyed), (0, 4));
}

/// Hints naming `path` for every `call 1` of `prog` (`None`: no hint).
fn lookup_hints(prog: &Program, path: Option<LookupPath>) -> Hints {
    let mut lookup = vec![None; prog.iter().map(|(pc, i)| pc + i.slots()).max().unwrap_or(0)];
    for (pc, insn) in prog.iter() {
        if matches!(
            insn,
            bpfsim_vm::isa::Insn::Call(bpfsim_vm::isa::CallTarget::Helper(1))
        ) {
            lookup[pc] = path;
        }
    }
    Hints {
        lookup,
        ..Hints::default()
    }
}

const PATHS: [Option<LookupPath>; 5] = [
    None,
    Some(LookupPath::Array),
    Some(LookupPath::Key),
    Some(LookupPath::Slots),
    Some(LookupPath::Helper),
];

/// An array's lookups compiled with each hint, true or false, give the interpreter's results
/// with the host's table true or absent; only a hint that keeps the inline path (the array's,
/// or none) answers from the table without calling the host.
#[test]
fn array_lookups_under_each_hint_answer_as_the_helper() {
    for key in keys() {
        let prog = program(&key);
        let (out, values, _) = run(&Interpreter::new(&prog), truth);
        let faults = out.result.is_err();
        let want = (out, values);
        for path in PATHS {
            let jit = JitProgram::compile_with(&prog, &lookup_hints(&prog, path)).unwrap();
            let (out, values, calls) = run(&jit, truth);
            assert_eq!((out, values), want, "{key}, {path:?}");
            let inline = matches!(path, None | Some(LookupPath::Array));
            if !faults {
                assert_eq!(calls, !inline as u32, "{key}, {path:?}");
            }
            let (out, values, calls) = run(&jit, |_| None);
            assert_eq!((out, values), want, "{key}, {path:?}, no table");
            if !faults {
                assert_eq!(calls, 1, "{key}, {path:?}, no table");
            }
        }
    }
}

/// A hash map's lookups compiled with each hint, true or false, give the interpreter's results
/// whether the host lists the map or not; only a hint that keeps the key's path (the key's, or
/// none) asks the host with the key's bytes.
#[test]
fn keyed_lookups_under_each_hint_answer_as_the_helper() {
    for (at, first, last, from) in [(16, 1, 1, 16), (16, 3, 0, 16), (8, 1, 0, 8)] {
        let prog = keyed_program(at, first, last, from);
        let (want, want_values, _, _) = run_keyed(&Interpreter::new(&prog), Some(16));
        let fits = from >= 16;
        for path in PATHS {
            let case = (at, first, last, from, path);
            let jit = JitProgram::compile_with(&prog, &lookup_hints(&prog, path)).unwrap();
            let (got, values, helper, keyed) = run_keyed(&jit, Some(16));
            assert_eq!(got, want, "{case:?}");
            assert_eq!(values, want_values, "{case:?}");
            // A slot map's way falls back to the key's for a map the slot table leaves out.
            let direct = fits && matches!(path, None | Some(LookupPath::Key | LookupPath::Slots));
            assert_eq!((helper, keyed), (!direct as u32, direct as u32), "{case:?}");
            let (got, _, helper, keyed) = run_keyed(&jit, None);
            assert_eq!(got, want, "{case:?}, not listed");
            assert_eq!((helper, keyed), (1, 0), "{case:?}, not listed");
        }
    }
}

/// A hint leaves out code: the helper's path alone is smaller than the key's, each kind's path
/// smaller than all of them.
#[test]
fn a_lookups_hint_compiles_less_code() {
    let prog = keyed_program(16, 1, 1, 16);
    let size = |path| {
        JitProgram::compile_with(&prog, &lookup_hints(&prog, path))
            .unwrap()
            .code_size
    };
    let all = size(None);
    let (array, key, helper) = (
        size(Some(LookupPath::Array)),
        size(Some(LookupPath::Key)),
        size(Some(LookupPath::Helper)),
    );
    // (An array's way with a row (`gen/rows.rs`) whose result an access relies on has no
    // helper's call at all: it hands the run over when the host does not list the map.)
    assert!(helper < key, "{helper} {key}");
    assert!(array < all && key < all, "{array} {key} {all}");
}

/// A preparation's runs on hosts that give tables numbers (`Host::tables_epoch`): a host under
/// a new number is asked again (the second host's array is read, not the first's), one under
/// the number of the last asking is not, and one under none (0) is asked at every entry.
#[test]
fn a_preparation_asks_the_tables_again_under_a_new_epoch() {
    use bpfsim_vm::Executable;
    let prog = program("stw [%r10-4], 1\nmov %r2, %r10\nadd %r2, -4");
    let jit = JitProgram::compile(&prog).unwrap();
    let mut vm = Vm::default();
    let mut first: Vec<u8> = (0..32u8).collect();
    let mut second: Vec<u8> = (100..132u8).collect();
    let mut mem = vm.memory();
    let a = mem.map_mut(&mut first).unwrap();
    let b = mem.map_mut(&mut second).unwrap();
    let mut prepared = jit.prepare().unwrap();
    let mut entry = |base: u64, epoch: u64| {
        let mut host = OneArray {
            base,
            table: truth(base),
            calls: 0,
            epoch,
        };
        let out = prepared.execute(&mut mem, &mut host, [0; 5], 1000);
        assert_eq!(host.calls, 0, "answered from the table");
        out.result.unwrap()
    };
    // The word at index 1 of each array (bytes 8-15).
    let (one, two) = (
        u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        u64::from_le_bytes([108, 109, 110, 111, 112, 113, 114, 115]),
    );
    assert_eq!(entry(a, 7), one);
    assert_eq!(entry(b, 8), two, "a new number: asked again");
    assert_eq!(entry(b, 8), two);
    assert_eq!(entry(a, 0), one, "no number: asked");
    assert_eq!(entry(b, 0), two, "no number: asked again");
}
