//! The XDP packet-edge helpers of `bpfsim_helpers::ctx::xdp` against the live kernel: same
//! return value and same output bytes for each delta.

use bpfsim_helpers::ctx::xdp::{XdpFrame, XdpMd};
use bpfsim_kernel::{KernelBpf, ProgType};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::encode;

const ADJUST_HEAD: u32 = 44;
const ADJUST_META: u32 = 54;
const ADJUST_TAIL: u32 = 65;

#[test]
fn adjust_helpers_match_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let packet: Vec<u8> = (0..64u8).collect();
    let mut compared = 0;
    for (helper, deltas) in [
        (
            ADJUST_HEAD,
            &[-256i64, -217, -216, -100, -1, 0, 1, 50, 51, 64][..],
        ),
        (ADJUST_META, &[-220, -216, -36, -32, -4, -2, 0, 4][..]),
        (ADJUST_TAIL, &[-51, -50, -1, 0, 1, 100, 3456, 3457][..]),
    ] {
        for &delta in deltas {
            let src = format!("mov %r2, {delta}\ncall {helper}\nexit");
            let prog = kernel
                .prog_load(ProgType::XDP, &encode(&assemble(&src).unwrap()), "GPL", 1)
                .unwrap_or_else(|e| panic!("{src}: {e}"));
            let k = kernel.test_run(&prog, &packet, 1).unwrap();

            let mut f = XdpFrame::new(&packet, XdpMd::default()).unwrap();
            let ret = match helper {
                ADJUST_HEAD => f.ctx.adjust_head(&mut f.buf, delta),
                ADJUST_META => f.ctx.adjust_meta(delta),
                _ => f.ctx.adjust_tail(&mut f.buf, delta),
            };
            assert_eq!(
                ret as i32, k.retval as i32,
                "helper {helper} delta {delta}: return value"
            );
            // Bytes uncovered by adjust_head/meta are whatever the frame held; compare lengths
            // there and full contents where the kernel defines them.
            assert_eq!(
                f.data_out().len(),
                k.data_out.len(),
                "helper {helper} delta {delta}"
            );
            if helper == ADJUST_TAIL || delta >= 0 {
                assert_eq!(
                    f.data_out(),
                    &k.data_out[..],
                    "helper {helper} delta {delta}: bytes"
                );
            }
            compared += 1;
        }
    }
    println!("xdp adjust helpers: {compared} cases agree with the kernel");
}
