//! `bpf_csum_diff` of `bpfsim_helpers::helpers::csum` against the live kernel: the exact
//! partial sum the helper returns, for several inputs and seeds.

use bpfsim_helpers::helpers::csum::csum_diff;
use bpfsim_kernel::{KernelBpf, ProgType};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::encode;

/// Put `from` at fp-64 and `to` at fp-32 (each at most 32 bytes), call bpf_csum_diff, return r0.
fn program(from: &[u8], to: &[u8], seed: u32) -> Vec<u8> {
    let mut src = String::new();
    for (base, bytes) in [(-64i32, from), (-32, to)] {
        for (i, b) in bytes.iter().enumerate() {
            src += &format!("stb [%r10{:+}], {b}\n", base + i as i32);
        }
    }
    src += &format!(
        "mov %r1, %r10\nadd %r1, -64\nmov %r2, {}\nmov %r3, %r10\nadd %r3, -32\nmov %r4, {}\nlddw %r5, {seed:#x}\ncall 28\nexit\n",
        from.len(),
        to.len()
    );
    encode(&assemble(&src).unwrap())
}

#[test]
fn csum_diff_matches_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let cases: Vec<(Vec<u8>, Vec<u8>, u32)> = vec![
        (vec![10, 0, 0, 1], vec![192, 168, 1, 1], 0),
        (vec![], vec![0xff; 8], 0xffff_ffff),
        (vec![0xff; 8], vec![], 0x1234),
        (
            vec![1, 2, 3, 4, 5, 6, 7, 8],
            vec![8, 7, 6, 5, 4, 3, 2, 1],
            0xdead_beef,
        ),
        (vec![], vec![0x80; 32], 0x8000_0000),
        (vec![0; 4], vec![0; 4], 0),
        // Linux 6.18 takes any sizes.
        (vec![0; 3], vec![], 0),
        (vec![1, 2, 3], vec![], 0),
        (vec![], vec![1, 2, 3, 4, 5, 6], 0),
        (vec![1, 1], vec![1, 1], 0),
        (vec![9; 5], vec![7; 7], 0xabcd_ef01),
        (vec![], vec![], 0x1_2345),
    ];
    for (from, to, seed) in &cases {
        let prog = kernel
            .prog_load(ProgType::XDP, &program(from, to, *seed), "GPL", 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let k = kernel.test_run(&prog, &[0u8; 64], 1).unwrap();
        assert_eq!(
            csum_diff(from, to, *seed),
            k.retval,
            "from {from:?} to {to:?} seed {seed:#x}"
        );
    }
    println!("csum_diff: {} cases agree with the kernel", cases.len());
}
