//! The listing of the generated code ([`bpfsim_jit::Listing`]) and the perf map.

use bpfsim_jit::{CompileOptions, Hints, JitError, JitProgram, Listing};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::{NoHelpers, Program, Vm};

fn listed(src: &str) -> (Program, JitProgram) {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let opts = CompileOptions {
        listing: true,
        ..Default::default()
    };
    let jit = JitProgram::compile_opts(&prog, &Hints::default(), &opts).unwrap();
    (prog, jit)
}

/// What every listing must be: its parts tile the code exactly, each names a slot where an
/// instruction starts (or none), and the host instructions tile it too, each in the part it
/// names.
fn check_tiling(prog: &Program, jit: &JitProgram, l: &Listing) {
    assert_eq!(l.code, jit.code(), "the listing shows the code that runs");
    assert_eq!(l.code_size(), jit.code_size);
    assert_eq!(l.address, jit.code().as_ptr() as u64);
    let mut at = 0;
    for p in &l.parts {
        assert_eq!(p.start, at, "parts are consecutive: {:?}", l.parts);
        assert!(p.end > p.start, "no empty part: {p:?}");
        if let Some(pc) = p.pc {
            assert!(
                prog.iter().any(|(q, _)| q == pc),
                "part {p:?} names slot {pc}, where no instruction starts"
            );
        }
        at = p.end;
    }
    assert_eq!(at, l.code_size(), "the parts cover the whole code");
    // The prologue is no instruction's, also where the entry block has no code of its own.
    assert_eq!(l.parts[0].pc, None, "{:?}", l.parts);
    if cfg!(target_arch = "x86_64") {
        let mut at = 0;
        for i in &l.insns {
            assert_eq!(i.offset, at, "host instructions are consecutive");
            assert_ne!(i.text, "(bad)", "every byte decodes: {i:?}");
            assert_eq!(i.pc, l.pc_at(i.offset));
            at += i.len;
        }
        assert_eq!(at, l.code_size());
        assert_eq!(l.insns[0].text, "push    %rbp");
    }
}

#[test]
fn a_constant_return_lists_its_value_and_a_return() {
    let (prog, jit) = listed("mov %r0, 2\nexit");
    let l = jit.listing().expect("asked for");
    check_tiling(&prog, &jit, l);
    assert!(l.bytes_of(0) > 0, "mov r0, 2 has code: {:?}", l.parts);
    assert!(!l.cranelift.is_empty());
    #[cfg(target_arch = "x86_64")]
    {
        let mov: Vec<_> = l.insns_of(0).map(|i| i.text.as_str()).collect();
        assert!(
            mov.iter()
                .any(|t| t.starts_with("mov") && t.contains("$2,")),
            "slot 0 loads 2: {mov:?}"
        );
        assert!(
            l.insns.iter().any(|i| i.text == "ret"),
            "the code returns: {:?}",
            l.insns
        );
        assert!(l.cranelift.contains("ret"), "{}", l.cranelift);
    }
    // The listed program runs as any other.
    let mut vm = Vm::default();
    let mut mem = vm.memory();
    assert_eq!(jit.run(&mut mem, &mut NoHelpers, [0; 5], 100).result, Ok(2));
}

/// Every instruction of this program must leave code of its own (stores, loads, arithmetic on
/// values only known at run time, a branch; no constant Cranelift could fold into its user):
/// each slot shows up in the listing.
#[test]
fn every_instruction_with_code_is_annotated_with_its_slot() {
    let src = "stxdw [%r10-8], %r1
ldxdw %r0, [%r10-8]
add %r0, 3
mul %r0, %r1
xor %r0, %r2
jeq %r0, 4, +1
stxdw [%r10-16], %r0
ldxw %r3, [%r10-16]
add %r0, %r3
exit";
    let (prog, jit) = listed(src);
    let l = jit.listing().unwrap();
    check_tiling(&prog, &jit, l);
    for (pc, insn) in prog.iter() {
        assert!(
            l.bytes_of(pc) > 0,
            "slot {pc} ({insn:?}) has no code: {:?}",
            l.parts
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        let jeq: Vec<_> = l.insns_of(5).map(|i| i.text.as_str()).collect();
        assert!(
            jeq.iter().any(|t| t.starts_with("je")),
            "the jeq branches: {jeq:?}"
        );
        assert!(
            l.insns.iter().any(|i| i.text.ends_with("# pc 7")),
            "a branch to slot 7 says so: {:?}",
            l.insns
        );
    }
}

/// A 64-bit constant Cranelift keeps after the code (loaded relative to the instruction
/// pointer) is listed as data, not decoded as instructions.
#[test]
fn constants_after_the_code_are_data() {
    let (prog, jit) = listed("lddw %r2, 0x1122334455667788\nmov %r0, %r1\nxor %r0, %r2\nexit");
    let l = jit.listing().unwrap();
    check_tiling(&prog, &jit, l);
    #[cfg(target_arch = "x86_64")]
    {
        let xor: Vec<_> = l.insns_of(3).map(|i| i.text.as_str()).collect();
        assert!(xor.iter().any(|t| t.starts_with("xor")), "{xor:?}");
        assert!(
            l.insns
                .iter()
                .any(|i| i.text.contains("0x1122334455667788")),
            "the constant is listed: {:?}",
            l.insns
        );
    }
}

#[test]
fn calls_into_the_runtime_are_named() {
    // A helper call and a load through an unknown pointer: both call into Rust.
    let (prog, jit) = listed("ldxdw %r0, [%r1+0]\ncall 5\nexit");
    let l = jit.listing().unwrap();
    check_tiling(&prog, &jit, l);
    #[cfg(target_arch = "x86_64")]
    for name in ["bpfsim_load", "bpfsim_call"] {
        assert!(
            l.insns
                .iter()
                .any(|i| i.text.ends_with(&format!("# {name}"))),
            "{name} named: {:?}",
            l.insns
        );
    }
}

/// The fault path of an access the hints prove is no context access (placed out of line, after
/// the shared exits) is its instruction's: it hands the trap exit the access's size.
#[test]
fn fault_paths_are_their_access_instructions() {
    let prog = Program::new(
        assemble("ldxdw %r0, [%r1+0]\nldxw %r2, [%r1+8]\nadd %r0, %r2\nexit").unwrap(),
    )
    .unwrap();
    let hints = Hints {
        no_ctx: vec![true; 8],
        ..Hints::default()
    };
    let opts = CompileOptions {
        listing: true,
        ..Default::default()
    };
    let jit = JitProgram::compile_opts(&prog, &hints, &opts).unwrap();
    let l = jit.listing().unwrap();
    check_tiling(&prog, &jit, l);
    #[cfg(target_arch = "x86_64")]
    {
        let sized = |pc: Option<usize>, size: &str| {
            l.insns
                .iter()
                .any(|i| i.pc == pc && i.text.starts_with("mov") && i.text.contains(size))
        };
        assert!(sized(Some(0), "$8,"), "{:?}", l.insns);
        assert!(sized(Some(1), "$4,"), "{:?}", l.insns);
        assert!(!sized(None, "$8,") && !sized(None, "$4,"), "{:?}", l.insns);
    }
}

#[test]
fn loops_and_local_calls_are_tiled() {
    let src = "mov %r0, 0
mov %r1, 10
loop:
add %r0, %r1
sub %r1, 1
jne %r1, 0, loop
call local sub
exit
sub:
stxdw [%r10-8], %r1
add %r0, 7
exit";
    let (prog, jit) = listed(src);
    check_tiling(&prog, &jit, jit.listing().unwrap());
}

/// `bpf_loop(5, cb, r1)` with a callback that adds to memory: the callback is a function of its
/// own, listed apart with its instructions' slots.
const LOOP: &str = "mov %r6, %r1
mov %r1, 5
lddw %r2, func cb
mov %r3, %r6
mov %r4, 0
call 181
exit
cb:
ldxdw %r4, [%r2+0]
add %r4, %r1
stxdw [%r2+0], %r4
mov %r0, 0
exit";

#[test]
fn a_callback_compiled_apart_is_listed_apart() {
    let (prog, jit) = listed(LOOP);
    let l = jit.listing().unwrap();
    check_tiling(&prog, &jit, l);
    assert!(l.function.starts_with("bpf_jit:"), "{}", l.function);
    let code: Vec<(usize, &[u8])> = jit.callback_code().collect();
    assert_eq!(code.len(), 1, "one callback compiled");
    assert_eq!(l.callbacks.len(), 1);
    let (slot, bytes) = code[0];
    assert_eq!(slot, 8);
    let cb = &l.callbacks[0];
    assert_eq!(cb.function, format!("{}:cb_8", l.function));
    assert_eq!(cb.code, bytes, "the callback's listing is its code");
    assert_eq!(cb.address, bytes.as_ptr() as u64);
    assert!(cb.callbacks.is_empty());
    // The callback's instructions have code in its function, none in the program's.
    for pc in 8..13 {
        assert_eq!(l.bytes_of(pc), 0, "slot {pc} in the program's code");
    }
    for pc in [8, 9, 10] {
        assert!(cb.bytes_of(pc) > 0, "slot {pc}: {:?}", cb.parts);
    }
    assert!(cb.parts.iter().all(|p| p.pc.is_none_or(|pc| pc >= 8)));
    assert_eq!(cb.parts[0].pc, None);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        cb.insns.last().map(|i| i.offset + i.len),
        Some(cb.code.len())
    );
}

#[test]
fn no_listing_unless_asked() {
    let prog = Program::new(assemble("mov %r0, 2\nexit").unwrap()).unwrap();
    assert!(JitProgram::compile(&prog).unwrap().listing().is_none());
    let (_, listed) = listed("mov %r0, 2\nexit");
    // The same code either way: the listing only watches.
    assert_eq!(JitProgram::compile(&prog).unwrap().code(), listed.code());
}

#[test]
fn a_program_the_jit_cannot_compile_is_an_error_with_its_slot() {
    let prog = Program::new(vec![
        bpfsim_vm::isa::Insn::Call(bpfsim_vm::isa::CallTarget::Kfunc {
            btf_id: 1,
            module: 0,
        }),
        bpfsim_vm::isa::Insn::Exit,
    ])
    .unwrap();
    let opts = CompileOptions {
        listing: true,
        ..Default::default()
    };
    let err = JitProgram::compile_opts(&prog, &Hints::default(), &opts).unwrap_err();
    assert!(matches!(err, JitError::Unsupported { pc: 0, .. }), "{err}");
}

/// The one test of this binary that writes the perf map (the file is the process's).
#[test]
fn the_perf_map_gets_a_line_covering_the_code() {
    let prog = Program::new(assemble("mov %r0, 1\nadd %r0, 2\nexit").unwrap()).unwrap();
    let name = format!("listing_test_{}", std::process::id());
    let opts = CompileOptions {
        perf_map: true,
        name: Some(name.clone()),
        ..Default::default()
    };
    let jit = JitProgram::compile_opts(&prog, &Hints::default(), &opts).unwrap();
    let path = bpfsim_jit::perf_map_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .rev()
        .find(|l| l.ends_with(&format!(" bpf_jit:{name}")))
        .unwrap_or_else(|| panic!("no line for {name} in {}: {text}", path.display()));
    let mut f = line.split(' ');
    let start = u64::from_str_radix(f.next().unwrap(), 16).unwrap();
    let size = u64::from_str_radix(f.next().unwrap(), 16).unwrap();
    let code = jit.code().as_ptr() as u64;
    assert!(
        start <= code && code + jit.code_size as u64 <= start + size,
        "{line} covers the code at {code:#x}, {} bytes",
        jit.code_size
    );
    assert_eq!((start, size), (code, jit.code_size as u64));
    // Another compile, another line; the first one stays.
    let again = JitProgram::compile_opts(&prog, &Hints::default(), &opts).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(line));
    assert!(text.contains(&format!(
        "{:x} {:x} bpf_jit:{name}",
        again.code().as_ptr() as u64,
        again.code_size
    )));
    // A callback compiled as a function of its own gets its line.
    let prog = Program::new(assemble(LOOP).unwrap()).unwrap();
    let opts = CompileOptions {
        perf_map: true,
        name: Some(format!("{name}_loop")),
        ..Default::default()
    };
    let jit = JitProgram::compile_opts(&prog, &Hints::default(), &opts).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let (slot, code) = jit.callback_code().next().expect("compiled apart");
    assert!(
        text.contains(&format!(
            "{:x} {:x} bpf_jit:{name}_loop:cb_{slot}\n",
            code.as_ptr() as u64,
            code.len()
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "{:x} {:x} bpf_jit:{name}_loop\n",
        jit.code().as_ptr() as u64,
        jit.code_size
    )));
    let _ = std::fs::remove_file(&path);
}

/// A conditional jump to the next instruction has no code of its own (both ways lead there),
/// and the run, its budget and count are the interpreter's.
#[test]
fn a_conditional_jump_to_the_next_instruction_is_no_code() {
    let src = "mov %r0, 7\njgt %r0, 3, +0\njeq32 %r0, %r1, +0\nadd %r0, 1\njset %r0, 8, +0\nexit";
    let (prog, jit) = listed(src);
    let l = jit.listing().expect("asked for");
    check_tiling(&prog, &jit, l);
    for pc in [1, 2, 4] {
        assert_eq!(l.bytes_of(pc), 0, "slot {pc}: {:?}", l.parts);
    }
    let interp = bpfsim_vm::Interpreter::new(&prog);
    for budget in 0..8 {
        let mut vm = Vm::default();
        let want = interp.run(&mut vm.memory(), &mut NoHelpers, [0; 5], budget);
        let got = jit.run(&mut vm.memory(), &mut NoHelpers, [0; 5], budget);
        assert_eq!(
            (got.result, got.insns),
            (want.result, want.insns),
            "budget {budget}"
        );
    }
}
