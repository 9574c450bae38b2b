//! `bpf_map_lookup_elem` on a host's arrays whose slots may be empty (an xskmap, a devmap),
//! which the generated code answers itself from the run's slot table
//! ([`Host::slot_lookups`]): the interpreter's answers when the table is true, the host asked
//! again after anything that may have filled a slot, and a false table's wrong pointers checked
//! by the program's accesses, never host memory.

use bpfsim_jit::{Hints, JitProgram, LookupPath};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::host::SlotLookup;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

const HANDLE: u64 = 0x1000;

/// The slots of the map: 70, so that the bits take two words.
const SLOTS: usize = 70;

/// What a host says of its map, given the true entry and bits (it may write other bits).
type Claim = fn(SlotLookup, &mut [u64]) -> Option<SlotLookup>;

/// One slot map of [`SLOTS`] 8-byte slots at guest address `base`, its lookups answered by
/// `call_helper` (a filled slot's address, else NULL). `call 2` with `r2` fills the slot
/// `r2` names (empties it when `r3` is 0), as a program's update would. `claim` is what
/// `slot_lookups` says of the map, given its true entry and bits (`None`: not listed).
struct SlotMap {
    base: u64,
    filled: Vec<bool>,
    claim: Claim,
    /// The lookups `call_helper` answered, and how often the table was asked.
    calls: u32,
    fetches: u32,
}

impl SlotMap {
    fn truth(&self, bits: &mut [u64]) -> SlotLookup {
        bits[..2].fill(0);
        for (i, _) in self.filled.iter().enumerate().filter(|(_, &f)| f) {
            bits[i / 64] |= 1 << (i % 64);
        }
        SlotLookup {
            max_entries: SLOTS as u64,
            stride: 8,
            base: self.base,
            word: 0,
        }
    }
}

impl Host for SlotMap {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut MemoryMap<'_>,
    ) -> Result<u64, HelperStop> {
        match id {
            1 if args[0] == HANDLE => {
                self.calls += 1;
                let key = mem.slice(args[1], 4)?;
                let index = u32::from_le_bytes([key[0], key[1], key[2], key[3]]) as usize;
                let found = self.filled.get(index).copied().unwrap_or(false);
                Ok(if found {
                    self.base + index as u64 * 8
                } else {
                    0
                })
            }
            2 => {
                if let Some(f) = self.filled.get_mut(args[1] as usize) {
                    *f = args[2] != 0;
                }
                Ok(0)
            }
            _ => Err(HelperStop::Unknown),
        }
    }

    fn slot_lookups(&mut self, out: &mut [SlotLookup], bits: &mut [u64]) -> (u64, usize) {
        self.fetches += 1;
        let truth = self.truth(bits);
        match (self.claim)(truth, bits) {
            Some(e) if !out.is_empty() => {
                out[0] = e;
                (HANDLE, 1)
            }
            _ => (0, 0),
        }
    }
}

/// Runs `prog` with the slots' values mapped (slots 1, 5 and 66 filled), under `exec`, with
/// `claim` as the host's table: the outcome, the values, the host's lookups and fetches.
fn run(exec: &dyn bpfsim_vm::Executable, claim: Claim) -> (bpfsim_vm::Outcome, Vec<u8>, u32, u32) {
    let mut vm = Vm::default();
    let mut values: Vec<u8> = (0..SLOTS as u32 * 8).map(|b| b as u8).collect();
    let mut filled = vec![false; SLOTS];
    for i in [1, 5, 66] {
        filled[i] = true;
    }
    let mut mem = vm.memory();
    let base = mem.map_mut(&mut values).unwrap();
    let mut host = SlotMap {
        base,
        filled,
        claim,
        calls: 0,
        fetches: 0,
    };
    let out = exec.execute(&mut mem, &mut host, [0; 5], 10_000);
    drop(mem);
    (out, values, host.calls, host.fetches)
}

fn truth(e: SlotLookup, _: &mut [u64]) -> Option<SlotLookup> {
    Some(e)
}

fn unlisted(_: SlotLookup, _: &mut [u64]) -> Option<SlotLookup> {
    None
}

/// Hints naming `path` for every `call 1` of `prog`.
fn hints(prog: &Program, path: Option<LookupPath>) -> Hints {
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

/// Look up the key `key` sets up, and return the 8 bytes found, or 99 for NULL.
fn program(key: &str) -> Program {
    let src = format!(
        "{key}\nlddw %r1, {HANDLE:#x}\ncall 1\njeq %r0, 0, +2\nldxdw %r0, [%r0+0]\nexit\nmov %r0, 99\nexit"
    );
    Program::new(assemble(&src).unwrap()).unwrap()
}

/// Filled slots (1, 5, 66: both words of bits), empty ones (0, 64, 69), past the end (70, the
/// largest key, one whose low six bits name a filled slot), a key read through the region table
/// (in the values), and keys that fault (NULL, past the stack's top, the map's handle).
fn keys() -> Vec<String> {
    let mut k: Vec<String> = [1i64, 5, 66, 0, 64, 69, 70, -1, 65 + 64]
        .iter()
        .map(|i| format!("stw [%r10-4], {i}\nmov %r2, %r10\nadd %r2, -4"))
        .collect();
    k.push("mov %r2, 0".to_string());
    k.push("mov %r2, %r10\nadd %r2, -2".to_string());
    k.push(format!("lddw %r2, {HANDLE:#x}"));
    k
}

#[test]
fn true_slot_tables_answer_as_the_helper_without_calling_it() {
    for key in keys() {
        let prog = program(&key);
        let (out, values, _, _) = run(&Interpreter::new(&prog), truth);
        let faults = out.result.is_err();
        let want = (out, values);
        for path in [
            Some(LookupPath::Slots),
            Some(LookupPath::Key),
            Some(LookupPath::Array),
            Some(LookupPath::Helper),
            None,
        ] {
            let jit = JitProgram::compile_with(&prog, &hints(&prog, path)).unwrap();
            let (out, values, calls, fetches) = run(&jit, truth);
            assert_eq!((out, values), want, "{key}, {path:?}");
            let inline = path == Some(LookupPath::Slots);
            assert_eq!(fetches, inline as u32, "{key}, {path:?}");
            if !faults {
                assert_eq!(calls, !inline as u32, "{key}, {path:?}");
            }
            let (out, values, calls, _) = run(&jit, unlisted);
            assert_eq!((out, values), want, "{key}, {path:?}, not listed");
            if !faults {
                assert_eq!(calls, 1, "{key}, {path:?}, not listed");
            }
        }
    }
}

/// The found value's first byte, found by slot 5's lookup, is what slot 5's values hold.
#[test]
fn a_filled_slot_gives_its_value() {
    let prog = program("stw [%r10-4], 5\nmov %r2, %r10\nadd %r2, -4");
    let jit = JitProgram::compile_with(&prog, &hints(&prog, Some(LookupPath::Slots))).unwrap();
    let (out, _, calls, _) = run(&jit, truth);
    let want = u64::from_le_bytes(std::array::from_fn(|i| (40 + i) as u8));
    assert_eq!((out.result, calls), (Ok(want), 0));
}

/// A lookup after a helper that filled or emptied a slot sees the change: the code's table is
/// fetched again before it answers another lookup. Slot 3 empty, filled, emptied; slot 5 filled,
/// emptied, filled: each lookup's NULL-ness adds a bit.
#[test]
fn a_helper_that_changes_a_slot_makes_the_table_fetched_again() {
    let src = format!(
        "mov %r7, 0
         mov %r6, 3
         outer:
         mov %r8, 0
         step:
         stxw [%r10-4], %r6
         lddw %r1, {HANDLE:#x}
         mov %r2, %r10
         add %r2, -4
         call 1
         lsh %r7, 1
         mov %r3, 1
         jeq %r0, 0, +2
         or %r7, 1
         mov %r3, 0
         mov %r2, %r6
         call 2
         add %r8, 1
         jlt %r8, 3, step
         add %r6, 2
         jlt %r6, 6, outer
         mov %r0, %r7
         exit"
    );
    let prog = Program::new(assemble(&src).unwrap()).unwrap();
    let (want, values, _, _) = run(&Interpreter::new(&prog), truth);
    // Bits, oldest first: slot 3 (empty, filled, empty), slot 5 (filled, empty, filled).
    assert_eq!(want.result, Ok(0b010_101));
    let jit = JitProgram::compile_with(&prog, &hints(&prog, Some(LookupPath::Slots))).unwrap();
    let (got, got_values, calls, fetches) = run(&jit, truth);
    assert_eq!((&got, &got_values), (&want, &values));
    // Every lookup is the table's, each fetched again: the first lookup's was never fetched,
    // and the others follow a helper call.
    assert_eq!((calls, fetches), (0, 6));
}

/// A host whose table lies: an entry whose bits would lie past the code's table is dropped
/// (the host answers); bits that claim empty slots filled, or a wrong base or stride, give
/// pointers that the program's access checks, never host memory, and the values stay untouched.
#[test]
fn false_slot_tables_are_dropped_or_give_checked_pointers() {
    let lies: [Claim; 5] = [
        |e, _| {
            Some(SlotLookup {
                max_entries: u64::MAX,
                ..e
            })
        },
        |e, _| Some(SlotLookup { word: 63, ..e }),
        |e, _| {
            Some(SlotLookup {
                word: u64::MAX,
                ..e
            })
        },
        |e, bits| {
            bits[..2].fill(u64::MAX);
            Some(SlotLookup {
                stride: 1 << 40,
                base: 0x7fff_ffff_0000_0000,
                ..e
            })
        },
        |e, bits| {
            bits[..2].fill(u64::MAX);
            Some(SlotLookup {
                base: e.base.wrapping_sub(8),
                ..e
            })
        },
    ];
    let untouched: Vec<u8> = (0..SLOTS as u32 * 8).map(|b| b as u8).collect();
    for key in keys() {
        let prog = program(&key);
        let jit = JitProgram::compile_with(&prog, &hints(&prog, Some(LookupPath::Slots))).unwrap();
        let (want, _, _, _) = run(&Interpreter::new(&prog), truth);
        for (n, lie) in lies.into_iter().enumerate() {
            let (out, values, calls, _) = run(&jit, lie);
            assert_eq!(values, untouched, "{key}, lie {n}");
            if n < 3 {
                // Dropped: the host's answer.
                assert_eq!(out, want, "{key}, lie {n}");
                if want.result.is_ok() {
                    assert_eq!(calls, 1, "{key}, lie {n}");
                }
            } else if n == 3 {
                // Every key in range finds a pointer into no region; the others NULL.
                assert!(
                    out.result.is_err() || out.result == Ok(99),
                    "{key}, lie {n}: {out:?}"
                );
            }
        }
    }
}

/// A session's runs each take their own host's table: a slot filled for one run and empty for
/// the next is found, then not.
#[test]
fn each_run_takes_its_hosts_slots() {
    let prog = program("stw [%r10-4], 5\nmov %r2, %r10\nadd %r2, -4");
    let jit = JitProgram::compile_with(&prog, &hints(&prog, Some(LookupPath::Slots))).unwrap();
    let mut session = jit.session();
    let mut other = Vm::default();
    let mut values: Vec<u8> = (0..SLOTS as u32 * 8).map(|b| b as u8).collect();
    let mut mem = other.memory();
    let base = mem.map_mut(&mut values).unwrap();
    let mut found = Vec::new();
    for filled in [true, false, true] {
        let mut host = SlotMap {
            base,
            filled: (0..SLOTS).map(|i| i == 5 && filled).collect(),
            claim: truth,
            calls: 0,
            fetches: 0,
        };
        let out = session.run(&mut mem, &mut host, [0; 5], 1000);
        found.push((out.result, host.calls, host.fetches));
    }
    let value = u64::from_le_bytes(std::array::from_fn(|i| (40 + i) as u8));
    assert_eq!(
        found,
        [(Ok(value), 0, 1), (Ok(99), 0, 1), (Ok(value), 0, 1)]
    );
}
