//! `bpf_map_lookup_elem` on the host's array maps, which the generated code answers itself
//! ([`Host::array_lookups`]): the interpreter's answers when the host's table is true, and with
//! a false table, wrong pointers that the program's accesses check, never host memory.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::host::ArrayLookup;
use bpfsim_vm::{HelperStop, Host, Interpreter, MemoryMap, Program, Vm};

const HANDLE: u64 = 0x1000;

/// One array of 4 values of 8 bytes at guest address `base`, its lookups answered by
/// `call_helper` as a host answers them; `table` is what `array_lookups` says of it.
struct OneArray {
    base: u64,
    table: Option<ArrayLookup>,
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
        let key = mem.slice(args[1], 4)?;
        let index = u32::from_le_bytes([key[0], key[1], key[2], key[3]]) as u64;
        Ok(if index < 4 { self.base + index * 8 } else { 0 })
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
) -> (bpfsim_vm::Outcome, Vec<u8>) {
    let mut vm = Vm::default();
    let mut values: Vec<u8> = (0..32u8).collect();
    let out = {
        let mut mem = vm.memory();
        let base = mem.map_mut(&mut values).unwrap();
        let mut host = OneArray {
            base,
            table: table(base),
        };
        exec.execute(&mut mem, &mut host, [0; 5], 1000)
    };
    (out, values)
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
        let want = run(&Interpreter::new(&prog), truth);
        assert_eq!(run(&jit, truth), want, "{key}");
        // No table: every lookup calls the host.
        assert_eq!(run(&jit, |_| None), want, "{key}, no table");
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
        let (out, values) = run(&jit, |b| Some(lie(b)));
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
