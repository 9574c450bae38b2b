//! `bpf_strtol`/`bpf_strtoul` of `bpfsim_helpers::helpers::strtol` against the live kernel.

use bpfsim_helpers::helpers::strtol::parse;
use bpfsim_kernel::{KernelBpf, ProgType};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::encode;

/// Put `s` (up to 16 bytes) at fp-32, call the helper, and return r0 and the result word packed:
/// the program stores both into the packet's first 16 bytes.
fn program(s: &[u8], flags: u64, signed: bool) -> Vec<u8> {
    let mut src = String::from("mov %r9, %r1\nstdw [%r10-8], 0\n");
    for (i, b) in s.iter().enumerate() {
        src += &format!("stb [%r10{:+}], {b}\n", -32 + i as i32);
    }
    src += &format!(
        "mov %r1, %r10\nadd %r1, -32\nmov %r2, {}\nmov %r3, {flags}\nmov %r4, %r10\nadd %r4, -8\ncall {}\n",
        s.len(),
        if signed { 105 } else { 106 }
    );
    src += "ldxw %r2, [%r9+0]\nldxw %r3, [%r9+4]\nmov %r4, %r2\nadd %r4, 16\njgt %r4, %r3, out\nstxdw [%r2+0], %r0\nldxdw %r5, [%r10-8]\nstxdw [%r2+8], %r5\nout:\nmov %r0, 2\nexit\n";
    encode(&assemble(&src).unwrap())
}

#[test]
fn strtol_matches_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let cases: &[(&[u8], u64)] = &[
        (b"  42abc", 0),
        (b"-17", 10),
        (b"0x1f", 0),
        (b"0755", 0),
        (b"ff", 16),
        (b"0x", 16),
        // (An empty buffer is refused by the verifier: `R2 invalid zero-sized read`.)
        (b"xyz", 10),
        (b"1", 7),
        (b"99999999999999999999", 10),
        (b"+5", 10),
        (b"-0", 0),
    ];
    let mut compared = 0;
    for signed in [true, false] {
        for (s, flags) in cases {
            if s.len() > 24 {
                continue;
            }
            let prog = match kernel.prog_load(ProgType::XDP, &program(s, *flags, signed), "GPL", 1)
            {
                Ok(p) => p,
                Err(e) if e.log.contains("unknown func") || e.log.contains("cannot use helper") => {
                    return println!("skipped: this kernel does not give XDP programs bpf_strtol");
                }
                Err(e) => panic!("{e}"),
            };
            let out = kernel.test_run(&prog, &[0u8; 64], 1).unwrap();
            let r0 = i64::from_le_bytes(out.data_out[..8].try_into().unwrap());
            let res = u64::from_le_bytes(out.data_out[8..16].try_into().unwrap());
            let ours = parse(s, *flags, signed);
            let what = format!(
                "{}({:?}, {flags})",
                if signed { "strtol" } else { "strtoul" },
                String::from_utf8_lossy(s)
            );
            match ours {
                Ok((v, n)) => assert_eq!((n as i64, v), (r0, res), "{what}"),
                Err(e) => assert_eq!(e, r0, "{what}"),
            }
            compared += 1;
        }
    }
    println!("strtol/strtoul: {compared} cases agree with the kernel");
}
