//! The listing of a linked program's compiled code (`LinkedProgram::jit_listed`): the code runs
//! use, every part named with its BPF instruction, for every program of the test objects.

use bpfsim_helpers::object::{LoadError, LoadedObject};
use bpfsim_helpers::Env;

fn objects() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/progs");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_test_program_is_listed_with_the_code_it_runs() {
    let (mut listed, mut callbacks) = (0, 0);
    for (file, bytes) in objects() {
        let obj = LoadedObject::load(&bytes, Env::default()).unwrap();
        for name in obj.program_names() {
            let Ok(p) = obj.program(&name, None) else {
                continue;
            };
            let jit = p
                .jit_listed()
                .unwrap_or_else(|e| panic!("{file} {name}: {e}"));
            let l = jit.listing().expect("asked for");
            // The code runs use (the same hints, compiled without a listing) is the code listed.
            let runs = p.jit().unwrap();
            assert_eq!(
                runs.code(),
                &l.code[..],
                "{file} {name}: the listed code is the code that runs"
            );
            let cbs: Vec<(usize, &[u8])> = runs.callback_code().collect();
            assert_eq!(cbs.len(), l.callbacks.len(), "{file} {name}");
            for ((_, code), cb) in cbs.iter().zip(&l.callbacks) {
                assert_eq!(*code, &cb.code[..], "{file} {name}: {}", cb.function);
            }
            callbacks += cbs.len();
            let mut at = 0;
            for part in &l.parts {
                assert_eq!(part.start, at, "{file} {name}: {:?}", l.parts);
                at = part.end;
                if let Some(pc) = part.pc {
                    assert!(pc < p.insns.len() * 2, "{file} {name}: slot {pc}");
                }
            }
            assert_eq!(at, l.code_size(), "{file} {name}");
            assert_eq!(
                l.parts[0].pc, None,
                "{file} {name}: the prologue is no instruction's"
            );
            assert!(
                l.parts.iter().any(|p| p.pc.is_some()),
                "{file} {name}: some code has a slot"
            );
            if cfg!(target_arch = "x86_64") {
                assert!(
                    !l.insns.iter().any(|i| i.text == "(bad)"),
                    "{file} {name}: {:?}",
                    l.insns
                );
            }
            listed += 1;
        }
    }
    assert!(listed >= 20, "only {listed} programs listed");
    assert!(
        callbacks >= 2,
        "xdp_loop's and xdp_foreach's callbacks: {callbacks}"
    );
}

#[test]
fn a_program_the_verifier_rejects_is_not_listed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../test-vectors/verifier/objects/reject_pkt_oob.bpf.o");
    let obj = LoadedObject::load(&std::fs::read(path).unwrap(), Env::default()).unwrap();
    let name = obj.program_names().remove(0);
    let p = obj.program(&name, None).unwrap();
    match p.jit_listed() {
        Err(LoadError::Rejected { error, .. }) => {
            assert!(error.contains("outside of the packet"), "{error}")
        }
        other => panic!("{other:?}"),
    }
}
