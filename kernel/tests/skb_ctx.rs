//! The socket-buffer context of `bpfsim_helpers::ctx::skb` against the live kernel: the fields a
//! program reads (len, pkt_type, protocol, ...) and the packet handed back, per program type.

use bpfsim_helpers::ctx::skb::{off, SkbFrame, SkbMd};
use bpfsim_kernel::{KernelBpf, ProgType as KType};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::{encode, Size};
use bpfsim_vm::memory::Context;
use bpfsim_vm::spec::ProgType;

fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let base = |dst: [u8; 6], ethertype: [u8; 2]| {
        let mut p = vec![0u8; 60];
        p[..6].copy_from_slice(&dst);
        p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        p[12..14].copy_from_slice(&ethertype);
        p[14] = 0x45;
        p
    };
    vec![
        ("unicast ipv4", base([2, 0, 0, 0, 0, 1], [0x08, 0x00])),
        ("zero mac", base([0; 6], [0x08, 0x00])),
        ("broadcast arp", base([0xff; 6], [0x08, 0x06])),
        (
            "multicast ipv6",
            base([0x33, 0x33, 0, 0, 0, 1], [0x86, 0xdd]),
        ),
        ("vlan", base([2, 0, 0, 0, 0, 1], [0x81, 0x00])),
        ("802.3 length", base([2, 0, 0, 0, 0, 1], [0x00, 0x2e])),
    ]
}

#[test]
fn skb_fields_match_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let mut compared = 0;
    for (ty, kty) in [
        (ProgType::SchedCls, KType(3)),
        (ProgType::SocketFilter, KType(1)),
    ] {
        for (field, name) in [
            (off::LEN, "len"),
            (off::PKT_TYPE, "pkt_type"),
            (off::PROTOCOL, "protocol"),
            (off::IFINDEX, "ifindex"),
            (off::INGRESS_IFINDEX, "ingress_ifindex"),
            (off::MARK, "mark"),
            (off::WIRE_LEN, "wire_len"),
            (off::TC_CLASSID, "tc_classid"),
            (off::NAPI_ID, "napi_id"),
            (off::GSO_SEGS, "gso_segs"),
            (off::HASH, "hash"),
            (off::TSTAMP, "tstamp"),
            (off::HWTSTAMP, "hwtstamp"),
        ] {
            let wide = field == off::TSTAMP || field == off::HWTSTAMP;
            let (insn, size) = if wide {
                ("ldxdw", Size::DW)
            } else {
                ("ldxw", Size::W)
            };
            let src = format!("{insn} %r0, [%r1+{field}]\nexit");
            let prog = match kernel.prog_load(kty, &encode(&assemble(&src).unwrap()), "GPL", 1) {
                Ok(p) => p,
                // The kernel refuses the access for this type: so must our context.
                Err(e) if e.log.contains("invalid bpf_context access") => {
                    let f = SkbFrame::new(&packets()[0].1, ty, SkbMd::default()).unwrap();
                    assert_eq!(f.ctx.load(field, size), None, "{ty} may not read {name}");
                    compared += 1;
                    continue;
                }
                Err(e) => panic!("{ty} {name}: {e}"),
            };
            for (what, p) in packets() {
                let k = kernel.test_run(&prog, &p, 1).unwrap();
                let f = SkbFrame::new(&p, ty, SkbMd::default()).unwrap();
                let ours = f.ctx.load(field, size).unwrap();
                assert_eq!(ours, k.retval as u64, "{ty} {name} of {what}");
                assert_eq!(f.data_out(), k.data_out, "{ty} data_out of {what}");
                compared += 1;
            }
        }
    }
    println!("skb context: {compared} field reads agree with the kernel");
}
