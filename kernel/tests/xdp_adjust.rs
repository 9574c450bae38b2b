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

/// `bpf_xdp_adjust_tail` in whole runs of the simulator, under the interpreter and the JIT
/// (whose call is a direct one, `Host::xdp_adjust_tail`), against the kernel's: on packets from
/// the 14-byte minimum to the 3,520-byte most, each delta at and just past the kernel's limits
/// (down to an Ethernet header, up to the frame's tailroom), 0, and deltas with bits above the
/// helper's `int` set; one run and a batch of 3 (the kernel's `repeat` runs on one frame, so
/// each run moves the end again). Same return value, same output bytes.
#[test]
fn adjust_tail_in_whole_runs_matches_the_kernel() {
    use bpfsim_helpers::run::{Input, Runner};
    use bpfsim_vm::spec::ProgType as SimType;
    use bpfsim_vm::{Interpreter, Program};
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    const ETH_HLEN: i64 = 14;
    const MOST: i64 = 3520;
    let mut compared = 0;
    for len in [14i64, 64, 1500, 3520] {
        let packet: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
        let (down, up) = (ETH_HLEN - len, MOST - len);
        let deltas = [
            down - 1,
            down,
            down / 2,
            0,
            1,
            up / 3,
            up,
            up + 1,
            0x1_0000_0004,
            -0x1_0000_0003,
            i32::MIN as u32 as i64,
        ];
        for delta in deltas {
            let src = format!("lddw %r2, {:#x}\ncall {ADJUST_TAIL}\nexit", delta as u64);
            let insns = assemble(&src).unwrap();
            let prog = kernel
                .prog_load(ProgType::XDP, &encode(&insns), "GPL", 1)
                .unwrap_or_else(|e| panic!("{src}: {e}"));
            let program = Program::new(insns).unwrap();
            let interp = Interpreter::new(&program);
            let jit = bpfsim_jit::JitProgram::compile(&program).unwrap();
            for repeat in [1, 3] {
                let k = kernel.test_run(&prog, &packet, repeat).unwrap();
                for e in [&interp as &dyn bpfsim_vm::Executable, &jit] {
                    let mut r = Runner::default();
                    r.set_timing(false);
                    let ours = r
                        .run_repeat(e, SimType::Xdp, &packet, Input::default(), repeat)
                        .unwrap();
                    let what = format!("len {len}, delta {delta:#x}, {repeat} runs");
                    assert_eq!(ours.retval as u32, k.retval, "{what}: return value");
                    assert_eq!(ours.data, k.data_out, "{what}: bytes");
                    compared += 1;
                }
            }
        }
    }
    println!("bpf_xdp_adjust_tail: {compared} whole runs agree with the kernel");
}
