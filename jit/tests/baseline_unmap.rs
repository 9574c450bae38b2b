//! The baseline tier's code memory, in a test binary of its own: the process's address space
//! is measured, which other tests' threads would move.

use bpfsim_jit::JitProgram;
use bpfsim_vm::asm::assemble;
use bpfsim_vm::Program;

/// A dropped program unmaps its code: compiling and dropping many leaves the process's address
/// space as it was (each compile maps a page of its own; adjacent mappings merge, so the size
/// is counted, not the mappings).
#[cfg(target_os = "linux")]
#[test]
fn dropped_programs_unmap_their_code() {
    let vm_kib = || -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let prog = Program::new(assemble("mov %r0, 1\nstdw [%r10-8], 2\nexit").unwrap()).unwrap();
    drop(JitProgram::compile_baseline(&prog).unwrap());
    let before = vm_kib();
    for _ in 0..4_000 {
        drop(JitProgram::compile_baseline(&prog).unwrap());
    }
    let after = vm_kib();
    // 4,000 leaked pages would be 16,000 KiB.
    assert!(
        after < before + 4_000,
        "VmSize {before} KiB before, {after} after 4,000 compiles"
    );
    // Kept, each holds at least its page until it is dropped.
    let kept: Vec<_> = (0..1_000)
        .map(|_| JitProgram::compile_baseline(&prog).unwrap())
        .collect();
    assert!(
        vm_kib() >= after + 4 * 1_000,
        "each program maps its own code"
    );
    drop(kept);
}
