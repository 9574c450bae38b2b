//! Benchmark workloads: programs in the conformance assembly dialect, each with the memory it runs
//! on and the `r0` it must return, computed by a plain-Rust reference implementation so that every
//! engine can be checked against the same answer before it is timed.
//!
//! Calling convention: `r1` points at the memory and `r2` holds its length (both 0 when the memory
//! is empty), as [`bpfsim_vm::Vm::run_with_memory`] sets them. Engines that only set `r1` (rbpf's
//! `EbpfVmRaw`) run [`Workload::bytecode_r1_only`], which loads `r2` itself.

use bpfsim_vm::{asm, isa, Program};

pub mod objects;

/// A 1,000-instruction straight-line program with branches (the compile-time bound:
/// 2 ms per 1,000 instructions): 332 rounds of an add, a xor and a conditional jump to the next
/// instruction, so that every third instruction ends a block.
pub fn synthetic_1000() -> Program {
    synthetic(332, "")
}

/// A 1,000-instruction program of if-then blocks, as a compiler writes them: 249 rounds of an
/// add, a xor, a conditional jump over the next instruction, and that instruction (each round
/// three blocks: the test, the skipped add, the join both reach).
pub fn synthetic_1000_skips() -> Program {
    synthetic(249, "add %r0, 3\n")
}

/// `rounds` of an add, a xor and a `jgt` over `skipped` (nothing, or one instruction).
fn synthetic(rounds: u32, skipped: &str) -> Program {
    let over = skipped.lines().count();
    let mut src = String::from("mov %r0, 0\nmov %r1, 1\n");
    for i in 0..rounds {
        src.push_str(&format!(
            "add %r0, %r1\nxor %r0, {i}\njgt %r0, {}, +{over}\n{skipped}",
            i * 7
        ));
    }
    src.push_str("exit\n");
    let prog = Program::new(asm::assemble(&src).expect("the synthetic program assembles"))
        .expect("the synthetic program is valid");
    assert!(prog.insns().len() >= 995);
    prog
}

/// Iterations of the loop in [`loop_xorshift`] and [`alu_chains`].
pub const ITERATIONS: u32 = 1000;

/// Seeds of the xorshift chains (odd, nonzero, all bytes distinct).
const SEEDS: [u64; 4] = [
    0x2545_f491_4f6c_dd1d,
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
];

/// Returned by the packet workloads when the frame is not IPv4 (or too short to tell).
pub const NOT_IPV4: u64 = u64::MAX;

/// One benchmark: a program, its input memory and the result it must produce.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: &'static str,
    /// Conformance-dialect assembly.
    pub asm: String,
    /// Input memory (`r1`/`r2`); no workload writes it, so one buffer can serve every run.
    pub mem: Vec<u8>,
    /// `r0` on exit, from the Rust reference implementation.
    pub expected: u64,
}

impl Workload {
    /// Bytecode for engines that set `r1` and `r2` (bpfsim).
    pub fn bytecode(&self) -> Vec<u8> {
        assemble(&self.asm)
    }

    /// Bytecode for engines that set only `r1`: the same program after `mov %r2, <mem length>`
    /// (one extra instruction per run, and none when the memory is empty).
    pub fn bytecode_r1_only(&self) -> Vec<u8> {
        if self.mem.is_empty() {
            self.bytecode()
        } else {
            assemble(&format!("mov %r2, {}\n{}", self.mem.len(), self.asm))
        }
    }

    /// The program, loaded for bpfsim's engines.
    pub fn program(&self) -> Program {
        Program::from_bytes(&self.bytecode())
            .unwrap_or_else(|e| panic!("workload {}: {e}", self.name))
    }
}

fn assemble(text: &str) -> Vec<u8> {
    let insns = asm::assemble(text).unwrap_or_else(|e| panic!("workload assembly: {e}\n{text}"));
    isa::encode(&insns)
}

/// Every workload, in a fixed order.
pub fn all() -> Vec<Workload> {
    vec![
        empty(),
        loop_xorshift(),
        alu_chains(),
        parse_csum_64(),
        parse_csum_1500(),
    ]
}

/// `mov %r0, 0` / `exit`: the fixed cost of one run.
pub fn empty() -> Workload {
    Workload {
        name: "empty",
        asm: "mov %r0, 0\nexit\n".to_string(),
        mem: Vec::new(),
        expected: 0,
    }
}

/// One step of 64-bit xorshift (Marsaglia's 13/7/17 triple).
pub fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Assembly of one xorshift step on `%rX`, with `%rT` as scratch.
fn xorshift_asm(x: u8, t: u8) -> String {
    [("lsh", 13), ("rsh", 7), ("lsh", 17)]
        .iter()
        .map(|(shift, n)| {
            format!("    mov %r{t}, %r{x}\n    {shift} %r{t}, {n}\n    xor %r{x}, %r{t}\n")
        })
        .collect()
}

/// [`ITERATIONS`] xorshift steps on one register, counted down in another; returns the state.
pub fn loop_xorshift() -> Workload {
    let asm = format!(
        "    lddw %r0, {seed:#x}\n    mov %r3, {ITERATIONS}\nloop:\n{step}    sub %r3, 1\n    jne %r3, 0, loop\n    exit\n",
        seed = SEEDS[0],
        step = xorshift_asm(0, 4),
    );
    let expected = (0..ITERATIONS).fold(SEEDS[0], |x, _| xorshift(x));
    Workload {
        name: "loop_xorshift",
        asm,
        mem: Vec::new(),
        expected,
    }
}

/// Four independent xorshift chains (`r0`, `r6`, `r7`, `r8`, each with its own scratch register
/// so that they share no data) for [`ITERATIONS`] iterations; returns the xor of the four states.
pub fn alu_chains() -> Workload {
    const REGS: [u8; 4] = [0, 6, 7, 8];
    const SCRATCH: [u8; 4] = [4, 5, 9, 1];
    let mut asm = String::new();
    for (reg, seed) in REGS.iter().zip(SEEDS) {
        asm += &format!("    lddw %r{reg}, {seed:#x}\n");
    }
    asm += &format!("    mov %r3, {ITERATIONS}\nloop:\n");
    for (reg, scratch) in REGS.into_iter().zip(SCRATCH) {
        asm += &xorshift_asm(reg, scratch);
    }
    asm += "    sub %r3, 1\n    jne %r3, 0, loop\n";
    for reg in &REGS[1..] {
        asm += &format!("    xor %r0, %r{reg}\n");
    }
    asm += "    exit\n";
    let expected = SEEDS
        .iter()
        .map(|&seed| (0..ITERATIONS).fold(seed, |x, _| xorshift(x)))
        .fold(0, |acc, x| acc ^ x);
    Workload {
        name: "alu_chains",
        asm,
        mem: Vec::new(),
        expected,
    }
}

/// Check the ethertype, then return the Internet checksum (RFC 1071) of the whole frame: the
/// ones' complement of the ones'-complement sum of its big-endian 16-bit words, an odd last byte
/// padded with zero. Bounds come from `r2`; frames shorter than 14 bytes or not IPv4 give
/// [`NOT_IPV4`].
pub const PARSE_CSUM_ASM: &str = "
    mov %r0, -1
    jlt %r2, 14, out
    ldxh %r3, [%r1+12]
    be16 %r3
    jne %r3, 0x0800, out
    mov %r4, 0
    mov %r5, %r1
    mov %r6, %r2
    and %r6, -2
    add %r6, %r1
loop:
    ldxh %r3, [%r5]
    be16 %r3
    add %r4, %r3
    add %r5, 2
    jlt %r5, %r6, loop
    jset %r2, 1, odd
    ja fold
odd:
    ldxb %r3, [%r5]
    lsh %r3, 8
    add %r4, %r3
fold:
    mov %r3, %r4
    rsh %r3, 16
    and %r4, 0xffff
    add %r4, %r3
    jgt %r4, 0xffff, fold
    xor %r4, 0xffff
    mov %r0, %r4
out:
    exit
";

/// Reference implementation of [`PARSE_CSUM_ASM`].
pub fn parse_csum_ref(frame: &[u8]) -> u64 {
    if frame.len() < 14 || frame[12..14] != [0x08, 0x00] {
        return NOT_IPV4;
    }
    !fold(sum_be16(frame)) & 0xffff
}

/// Sum of the big-endian 16-bit words of `bytes`, an odd last byte padded with zero.
fn sum_be16(bytes: &[u8]) -> u64 {
    bytes
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum()
}

/// Fold a sum into 16 bits with end-around carry.
fn fold(mut sum: u64) -> u64 {
    while sum > 0xffff {
        sum = (sum >> 16) + (sum & 0xffff);
    }
    sum
}

/// The 16-bit Internet checksum of `bytes`.
fn inet_csum(bytes: &[u8]) -> u16 {
    !(fold(sum_be16(bytes)) as u16)
}

/// An Ethernet + IPv4 + UDP frame of `len` bytes (at least 42), with valid IPv4 and UDP checksums
/// and a deterministic payload.
pub fn udp_frame(len: usize) -> Vec<u8> {
    const ETH: usize = 14;
    const IP: usize = 20;
    const UDP: usize = 8;
    assert!(
        (ETH + IP + UDP..=0xffff).contains(&len),
        "bad frame length {len}"
    );
    let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination MAC
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source MAC
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // ethertype IPv4
    let ip_len = (len - ETH) as u16;
    f.extend_from_slice(&[0x45, 0]); // version 4, IHL 5; DSCP/ECN
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&0x1c46u16.to_be_bytes()); // identification
    f.extend_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    f.extend_from_slice(&[64, 17, 0, 0]); // TTL, protocol UDP, checksum (below)
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let ip_csum = inet_csum(&f[ETH..ETH + IP]);
    f[ETH + 10..ETH + 12].copy_from_slice(&ip_csum.to_be_bytes());
    let udp_len = (len - ETH - IP) as u16;
    f.extend_from_slice(&40000u16.to_be_bytes()); // source port
    f.extend_from_slice(&4789u16.to_be_bytes()); // destination port
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // checksum (below)
    f.extend((0..len - ETH - IP - UDP).map(|i| (i * 31 + 7) as u8));
    // UDP checksum over the pseudo-header (addresses, protocol, UDP length) and the datagram.
    let mut pseudo = Vec::with_capacity(12 + usize::from(udp_len));
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    pseudo.extend_from_slice(&f[ETH + IP..]);
    let udp_csum = match inet_csum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    f[ETH + IP + 6..ETH + IP + 8].copy_from_slice(&udp_csum.to_be_bytes());
    f
}

fn parse_csum(name: &'static str, len: usize) -> Workload {
    let mem = udp_frame(len);
    Workload {
        name,
        asm: PARSE_CSUM_ASM.to_string(),
        expected: parse_csum_ref(&mem),
        mem,
    }
}

/// [`PARSE_CSUM_ASM`] on a 64-byte UDP frame.
pub fn parse_csum_64() -> Workload {
    parse_csum("parse_csum_64", 64)
}

/// [`PARSE_CSUM_ASM`] on a 1500-byte UDP frame.
pub fn parse_csum_1500() -> Workload {
    parse_csum("parse_csum_1500", 1500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfsim_vm::{Interpreter, NoHelpers, Vm};

    fn run_bpfsim(bytecode: &[u8], mem: &[u8]) -> u64 {
        let prog = Program::from_bytes(bytecode).expect("program loads");
        let interp = Interpreter::new(&prog);
        let mut buf = mem.to_vec();
        let out = Vm::default().run_with_memory(&interp, &mut NoHelpers, &mut buf);
        assert_eq!(buf, mem, "workloads must not write their memory");
        out.result.expect("bpfsim run")
    }

    fn run_rbpf(bytecode: &[u8], mem: &[u8]) -> u64 {
        let vm = rbpf::EbpfVmRaw::new(Some(bytecode)).expect("rbpf accepts the program");
        let mut buf = mem.to_vec();
        let r0 = vm.execute_program(&mut buf).expect("rbpf run");
        assert_eq!(buf, mem, "workloads must not write their memory");
        r0
    }

    #[test]
    fn bpfsim_interpreter_returns_expected() {
        for w in all() {
            assert_eq!(
                run_bpfsim(&w.bytecode(), &w.mem),
                w.expected,
                "workload {}",
                w.name
            );
        }
    }

    #[test]
    fn rbpf_interpreter_agrees() {
        for w in all() {
            assert_eq!(
                run_rbpf(&w.bytecode_r1_only(), &w.mem),
                w.expected,
                "workload {}",
                w.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_results_nontrivial() {
        let ws = all();
        let mut names: Vec<_> = ws.iter().map(|w| w.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ws.len());
        for w in &ws[1..] {
            assert_ne!(w.expected, 0, "{}", w.name);
            assert_ne!(w.expected, NOT_IPV4, "{}", w.name);
        }
    }

    #[test]
    fn frames_have_valid_checksums() {
        for len in [42, 64, 65, 1500] {
            let f = udp_frame(len);
            assert_eq!(f.len(), len);
            assert_eq!(inet_csum(&f[14..34]), 0, "IPv4 header checksum, len {len}");
            let mut pseudo = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 17];
            pseudo.extend_from_slice(&f[38..40]);
            pseudo.extend_from_slice(&f[34..]);
            assert_eq!(inet_csum(&pseudo), 0, "UDP checksum, len {len}");
        }
    }

    /// The checksum program against its reference on odd lengths, short and non-IPv4 frames, so
    /// that the bounds really come from `r2`.
    #[test]
    fn parse_csum_matches_reference_on_edge_cases() {
        let mut arp = udp_frame(60);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut cases = vec![arp, vec![0; 13], udp_frame(42)[..14].to_vec()];
        cases.extend([42, 43, 64, 65, 99, 1500, 1501].map(udp_frame));
        let prog = assemble(PARSE_CSUM_ASM);
        for mem in cases {
            let want = parse_csum_ref(&mem);
            assert_eq!(run_bpfsim(&prog, &mem), want, "bpfsim, len {}", mem.len());
            let with_r2 = assemble(&format!("mov %r2, {}\n{PARSE_CSUM_ASM}", mem.len()));
            assert_eq!(run_rbpf(&with_r2, &mem), want, "rbpf, len {}", mem.len());
        }
    }
}
