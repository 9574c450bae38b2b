//! Whole runs of `bpfsim_helpers::run::Runner` against `BPF_PROG_TEST_RUN` on the live kernel:
//! small XDP, TC and socket-filter programs (assembly) on several packets; retval and output
//! packet must agree.

use bpfsim_helpers::run::{Input, Runner};
use bpfsim_kernel::{KernelBpf, ProgType as KType};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::encode;
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::{Interpreter, Program};

fn packets() -> Vec<Vec<u8>> {
    let eth = |ethertype: u16, payload: &[u8]| {
        let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        p.extend_from_slice(&ethertype.to_be_bytes());
        p.extend_from_slice(payload);
        p
    };
    let mut tcp = vec![
        0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    tcp.extend_from_slice(&[
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    let mut udp = tcp.clone();
    udp[9] = 17;
    vec![
        eth(0x0800, &tcp),
        eth(0x0800, &udp),
        eth(0x86dd, &[0x60; 40]),
        eth(0x0806, &[1; 28]),
        eth(0x0800, &tcp[..10]),
        vec![0xff; 14],
    ]
}

/// (name, type, assembly). Each program reads its context and packet the way C programs do.
const PROGRAMS: &[(&str, ProgType, &str)] = &[
    (
        "xdp: drop IPv4 TCP, pass the rest",
        ProgType::Xdp,
        "ldxw %r2, [%r1+0]
         ldxw %r3, [%r1+4]
         mov %r0, 2
         mov %r4, %r2
         add %r4, 34
         jgt %r4, %r3, out
         ldxh %r5, [%r2+12]
         jne %r5, 0x0008, out
         ldxb %r5, [%r2+23]
         jne %r5, 6, out
         mov %r0, 1
         out:
         exit",
    ),
    (
        "xdp: swap MACs and XDP_TX",
        ProgType::Xdp,
        "ldxw %r2, [%r1+0]
         ldxw %r3, [%r1+4]
         mov %r4, %r2
         add %r4, 14
         mov %r0, 1
         jgt %r4, %r3, out
         ldxw %r5, [%r2+0]
         ldxh %r6, [%r2+4]
         ldxw %r7, [%r2+6]
         ldxh %r8, [%r2+10]
         stxw [%r2+0], %r7
         stxh [%r2+4], %r8
         stxw [%r2+6], %r5
         stxh [%r2+10], %r6
         mov %r0, 3
         out:
         exit",
    ),
    (
        "xdp: push 4 bytes of header, then shrink the tail by 2",
        ProgType::Xdp,
        "mov %r6, %r1
         mov %r2, -4
         call 44
         jne %r0, 0, fail
         mov %r1, %r6
         mov %r2, -2
         call 65
         jne %r0, 0, fail
         ldxw %r2, [%r6+0]
         ldxw %r3, [%r6+4]
         mov %r4, %r2
         add %r4, 4
         jgt %r4, %r3, fail
         stw [%r2+0], 0x01020304
         mov %r0, 2
         exit
         fail:
         mov %r0, 0
         exit",
    ),
    (
        "tc: mark by protocol, classid, drop UDP",
        ProgType::SchedCls,
        "ldxw %r2, [%r1+16]
         stw [%r1+8], 7
         mov %r0, 0
         jne %r2, 0x0008, out
         stw [%r1+72], 0x10002
         ldxw %r2, [%r1+76]
         ldxw %r3, [%r1+80]
         mov %r4, %r2
         add %r4, 24
         jgt %r4, %r3, out
         ldxb %r5, [%r2+23]
         jne %r5, 17, out
         mov %r0, 2
         out:
         exit",
    ),
    (
        "socket filter: keep TCP to port 80, by ldabs/ldind",
        ProgType::SocketFilter,
        "mov %r6, %r1
         ldxw %r2, [%r6+16]
         mov %r0, 0
         jne %r2, 0x0008, out
         ldabsb 9
         jne %r0, 6, drop
         ldabsb 0
         and %r0, 15
         lsh %r0, 2
         mov %r7, %r0
         ldindh %r7, 2
         jne %r0, 80, drop
         mov %r0, -1
         exit
         drop:
         mov %r0, 0
         out:
         exit",
    ),
    (
        "socket filter: skb_load_bytes of the IP header",
        ProgType::SocketFilter,
        "mov %r2, 0
         mov %r3, %r10
         add %r3, -20
         mov %r4, 20
         call 26
         jne %r0, 0, fail
         ldxb %r0, [%r10-11]
         exit
         fail:
         mov %r0, 99
         exit",
    ),
    (
        "tc: NAT the IPv4 destination with l4/l3_csum_replace and skb_store_bytes",
        ProgType::SchedCls,
        "mov %r6, %r1
         mov %r9, 0
         ldxw %r2, [%r6+76]
         ldxw %r3, [%r6+80]
         mov %r4, %r2
         add %r4, 34
         mov %r7, 0
         jgt %r4, %r3, nohdr
         ldxw %r7, [%r2+30]
         nohdr:
         stw [%r10-4], 0x0101a8c0
         mov %r1, %r6
         mov %r2, 50
         mov %r3, %r7
         mov %r4, 0x0101a8c0
         mov %r5, 0x14
         call 11
         and %r0, 0xff
         or %r9, %r0
         mov %r1, %r6
         mov %r2, 24
         mov %r3, %r7
         mov %r4, 0x0101a8c0
         mov %r5, 4
         call 10
         and %r0, 0xff
         lsh %r0, 8
         or %r9, %r0
         mov %r1, %r6
         mov %r2, 30
         mov %r3, %r10
         add %r3, -4
         mov %r4, 4
         mov %r5, 0
         call 9
         and %r0, 0xff
         lsh %r0, 16
         or %r9, %r0
         mov %r0, %r9
         exit",
    ),
    (
        "tc: checksum and store helpers refusing their arguments",
        ProgType::SchedCls,
        "mov %r6, %r1
         mov %r9, 0
         mov %r2, 24
         mov %r3, 0
         mov %r4, 1
         mov %r5, 3
         call 10
         and %r0, 0xff
         or %r9, %r0
         mov %r1, %r6
         mov %r2, 25
         mov %r3, 0
         mov %r4, 1
         mov %r5, 2
         call 10
         and %r0, 0xff
         lsh %r0, 8
         or %r9, %r0
         mov %r1, %r6
         mov %r2, 40
         mov %r3, 0
         mov %r4, 0
         mov %r5, 0x22
         call 11
         and %r0, 0xff
         lsh %r0, 16
         or %r9, %r0
         stw [%r10-4], 0
         mov %r1, %r6
         mov %r2, 58
         mov %r3, %r10
         add %r3, -4
         mov %r4, 4
         mov %r5, 0
         call 9
         and %r0, 0xff
         lsh %r0, 24
         or %r9, %r0
         mov %r1, %r6
         mov %r2, 0
         mov %r3, %r10
         add %r3, -4
         mov %r4, 4
         mov %r5, 4
         call 9
         and %r0, 0xff
         lsh %r0, 32
         or %r9, %r0
         mov %r0, %r9
         exit",
    ),
];

fn kernel_type(t: ProgType) -> KType {
    KType(t.id())
}

#[test]
fn runs_agree_with_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let mut runner = Runner::default();
    let mut compared = 0;
    for (name, ty, src) in PROGRAMS {
        let bytes = encode(&assemble(src).unwrap_or_else(|e| panic!("{name}: {e}")));
        let prog = kernel
            .prog_load(kernel_type(*ty), &bytes, "GPL", 1)
            .unwrap_or_else(|e| panic!("{name}: the kernel refused it: {e}"));
        let interp = Interpreter::new(&Program::from_bytes(&bytes).unwrap());
        for (i, p) in packets().iter().enumerate() {
            let ours = runner.run(&interp, *ty, p, Input::default());
            let k = match kernel.test_run(&prog, p, 1) {
                Ok(k) => k,
                Err(e) => {
                    assert!(
                        ours.is_err(),
                        "{name}, packet {i}: the kernel refused it ({e}), we ran it"
                    );
                    compared += 1;
                    continue;
                }
            };
            let ours = ours.unwrap_or_else(|e| {
                panic!("{name}, packet {i}: the kernel ran it, we refused: {e}")
            });
            assert_eq!(ours.trap, None, "{name}, packet {i}");
            assert_eq!(ours.retval as u32, k.retval, "{name}, packet {i}: retval");
            assert_eq!(ours.data, k.data_out, "{name}, packet {i}: output packet");
            compared += 1;
        }
    }
    println!("simulated runs: {compared} agree with BPF_PROG_TEST_RUN");
}
