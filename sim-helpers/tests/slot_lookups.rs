//! Lookups in the simulator's arrays whose slots may be empty (xskmap, devmap, cpumap), which
//! the JIT answers from the run's slot table (`Host::slot_lookups`): the interpreter's answers
//! with slots filled and empty, keys past the end, slots a program fills and empties during a
//! batch, a map too large for the table, and an override of the lookup.

use bpfsim_helpers::run::{Input, Runner, MAP_HANDLE_BASE};
use bpfsim_helpers::Env;
use bpfsim_jit::{Hints, JitProgram, LookupPath};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::{CallTarget, Insn};
use bpfsim_vm::spec::{MapDef, MapType, ProgType};
use bpfsim_vm::{Interpreter, Program};

fn def(map_type: MapType, value_size: u32, max_entries: u32) -> MapDef {
    MapDef {
        name: format!("{map_type:?}").to_lowercase(),
        map_type,
        key_size: 4,
        value_size,
        max_entries,
        flags: 0,
        inner: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    }
}

const PACKET: [u8; 20] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 6, 0, 1, 8, 0, 6, 4];

/// Hints naming `path` for every `call 1` of `prog`.
fn hints(prog: &Program, path: LookupPath) -> Hints {
    let mut lookup = vec![None; prog.iter().map(|(pc, i)| pc + i.slots()).max().unwrap_or(0)];
    for (pc, insn) in prog.iter() {
        if matches!(insn, Insn::Call(CallTarget::Helper(1))) {
            lookup[pc] = Some(path);
        }
    }
    Hints {
        lookup,
        ..Hints::default()
    }
}

/// For index 0 to 9, then 4095, 4999 and `u32::MAX`: a lookup in each of the four maps, mixed
/// into `r7` with the pointer found and the first word it points at. After index 4, the program
/// fills the xskmap's slot 3 and empties its slot 1 (as an unverified program may: the
/// verifier refuses such updates), so that the rest of the run, and the batch's next runs, see
/// them changed.
fn program() -> Program {
    let mut src = String::from("mov %r6, 0\nmov %r7, 0\nloop:\nstxw [%r10-4], %r6\n");
    let lookups = |src: &mut String| {
        for m in 0..4 {
            src.push_str(&format!(
                "lddw %r1, {:#x}
                 mov %r2, %r10
                 add %r2, -4
                 call 1
                 mul %r7, 31
                 jeq %r0, 0, +3
                 add %r7, %r0
                 ldxw %r3, [%r0+0]
                 add %r7, %r3
                 ",
                MAP_HANDLE_BASE + m
            ));
        }
    };
    lookups(&mut src);
    src.push_str(&format!(
        "jne %r6, 4, skip
         stw [%r10-4], 3
         stw [%r10-8], 77
         lddw %r1, {xsk:#x}
         mov %r2, %r10
         add %r2, -4
         mov %r3, %r10
         add %r3, -8
         mov %r4, 0
         call 2
         add %r7, %r0
         stw [%r10-4], 1
         lddw %r1, {xsk:#x}
         mov %r2, %r10
         add %r2, -4
         call 3
         add %r7, %r0
         skip:
         add %r6, 1
         jlt %r6, 10, loop
         ",
        xsk = MAP_HANDLE_BASE
    ));
    for key in [4095i64, 4999, -1] {
        src.push_str(&format!("stw [%r10-4], {key}\n"));
        lookups(&mut src);
    }
    src.push_str("mov %r0, %r7\nexit");
    Program::new(assemble(&src).unwrap()).unwrap()
}

/// A runner with an xskmap of 8 sockets (slots 1 and 6 filled), a devmap with program ids (slot
/// 2 filled), an empty cpumap and an xskmap too large for the slot table (slots 0 and 4999
/// filled); the xskmap's id.
fn runner() -> (Runner, bpfsim_helpers::maps::MapId) {
    let mut r = Runner::new(Env {
        ncpus: 4,
        ..Env::default()
    });
    r.set_timing(false);
    let xsk = r.maps.create(&def(MapType::Xskmap, 4, 8)).unwrap();
    let dev = r.maps.create(&def(MapType::Devmap, 8, 4)).unwrap();
    r.maps.create(&def(MapType::Cpumap, 4, 4)).unwrap();
    let big = r.maps.create(&def(MapType::Xskmap, 4, 5000)).unwrap();
    let put = |r: &mut Runner, map, key: u32, value: &[u8]| {
        r.maps.update(map, &key.to_le_bytes(), value, 0).unwrap();
    };
    put(&mut r, xsk, 1, &11u32.to_le_bytes());
    put(&mut r, xsk, 6, &16u32.to_le_bytes());
    put(&mut r, dev, 2, &[5, 0, 0, 0, 0, 0, 0, 0]);
    put(&mut r, big, 0, &20u32.to_le_bytes());
    put(&mut r, big, 4999, &29u32.to_le_bytes());
    (r, xsk)
}

#[test]
fn slot_lookups_under_the_jit_run_as_the_interpreter() {
    let prog = program();
    let interp = Interpreter::new(&prog);
    for path in [LookupPath::Slots, LookupPath::Key, LookupPath::Helper] {
        let jit = JitProgram::compile_with(&prog, &hints(&prog, path)).unwrap();
        for repeat in [1, 2, 5] {
            let run = |e: &dyn bpfsim_vm::Executable, over: bool| {
                let (mut r, xsk) = runner();
                if over {
                    // An override answers every lookup itself: no table.
                    r.override_helper(1, |a, _| Ok(a[0] & 0xff));
                }
                let out = r
                    .run_repeat(e, ProgType::Xdp, &PACKET, Input::default(), repeat)
                    .unwrap();
                (out, r.maps.keys(xsk).unwrap())
            };
            for over in [false, true] {
                let want = run(&interp, over);
                assert_eq!(run(&jit, over), want, "{path:?}, repeat {repeat}, {over}");
                if !over {
                    // The program's update and delete happened: slots 3 and 6 are left.
                    let keys: Vec<Vec<u8>> =
                        [3u32, 6].iter().map(|k| k.to_le_bytes().to_vec()).collect();
                    assert_eq!(want.1, keys);
                }
            }
        }
    }
}

/// xdp_redirect_xsk's lookup in its xskmap takes the slot table's way; the program runs as the
/// interpreter with the socket of its queue there and not.
#[test]
fn xdp_redirect_xsks_lookup_takes_the_slot_tables_way() {
    use bpfsim_helpers::object::LoadedObject;
    let bytes = include_bytes!("../../test-vectors/progs/xdp_redirect_xsk.bpf.o");
    let obj = LoadedObject::load(bytes, Env::default()).unwrap();
    let name = obj.program_names()[0].clone();
    let p = obj.program(&name, None).unwrap();
    let hints = p.jit_hints();
    let prog = Program::new(p.insns.clone()).unwrap();
    let ways: Vec<_> = prog
        .iter()
        .filter(|(_, i)| matches!(i, Insn::Call(CallTarget::Helper(1))))
        .map(|(pc, _)| hints.lookup[pc])
        .collect();
    assert_eq!(ways, [Some(LookupPath::Slots)]);
}
