//! Contexts in and out against the live kernel: XDP metadata given through ctx_in, and the
//! `__sk_buff` fields a test run copies back (wire_len's defaults per program type included).
//! Skips with the reason where bpf(2) is unavailable.

#![cfg(target_os = "linux")]

use bpfsim_helpers::ctx::skb::SkbMd;
use bpfsim_helpers::ctx::xdp::XdpMd;
use bpfsim_helpers::run::{Input, Runner};
use bpfsim_kernel::{skb_ctx, KernelBpf, ProgType as KType, TestRunIn, SKB_SIZE, XDP_MD_SIZE};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::encode;
use bpfsim_vm::spec::ProgType;
use bpfsim_vm::{Interpreter, Program};

fn kernel() -> Option<KernelBpf> {
    KernelBpf::probe()
        .map_err(|u| println!("skipped: {u}"))
        .ok()
}

/// An Ethernet + IPv4 + UDP frame of 60 bytes.
fn frame() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    f.extend_from_slice(&[
        0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f.resize(60, 0xab);
    f
}

/// Both sides' retval, data and ctx_out, or both refusing.
fn both(
    bpf: &KernelBpf,
    src: &str,
    ty: ProgType,
    data: &[u8],
    input: Input,
    kctx: Option<Vec<u8>>,
) -> Option<(u32, Vec<u8>, Vec<u8>)> {
    both_repeat(bpf, src, ty, data, input, kctx, 1)
}

/// [`both`] with `BPF_PROG_TEST_RUN`'s `repeat`.
fn both_repeat(
    bpf: &KernelBpf,
    src: &str,
    ty: ProgType,
    data: &[u8],
    input: Input,
    kctx: Option<Vec<u8>>,
    repeat: u32,
) -> Option<(u32, Vec<u8>, Vec<u8>)> {
    let insns = assemble(src).unwrap();
    let prog = bpf
        .prog_load(KType(ty.id()), &encode(&insns), "GPL", 1)
        .unwrap_or_else(|e| panic!("{src}: {e}"));
    let out_size = match (ty, &kctx) {
        (ProgType::Xdp, _) => XDP_MD_SIZE as u32,
        (_, Some(_)) => SKB_SIZE as u32,
        _ => 0,
    };
    let theirs = bpf.test_run_with(
        &prog,
        &TestRunIn {
            data,
            ctx_in: kctx.as_deref(),
            ctx_out_size: out_size,
            repeat,
            ..TestRunIn::default()
        },
    );
    let interp = Interpreter::new(&Program::new(insns).unwrap());
    let ours = Runner::default().run_repeat(&interp, ty, data, input, repeat);
    match (ours, theirs) {
        (Err(_), Err(_)) => None,
        (Ok(o), Ok(t)) => {
            assert_eq!(o.retval as u32, t.retval, "{src}: retval");
            assert_eq!(o.data, t.data_out, "{src}: data out");
            assert_eq!(o.ctx_out, t.ctx_out, "{src}: ctx out");
            Some((t.retval, t.data_out, t.ctx_out))
        }
        (o, t) => panic!("{src}: ours {o:?}, the kernel's {t:?}"),
    }
}

fn xdp_ctx(meta: u32, len: usize, md: &XdpMd) -> Vec<u8> {
    [
        meta,
        len as u32,
        0,
        md.ingress_ifindex,
        md.rx_queue_index,
        0,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect()
}

#[test]
fn xdp_metadata_from_ctx_in() {
    let Some(bpf) = kernel() else { return };
    // r0 = first u32 of the metadata, or 0xdead without 4 bytes of it.
    let src = "ldxw %r2, [%r1+8]
               ldxw %r3, [%r1]
               mov %r0, 0xdead
               mov %r4, %r2
               add %r4, 4
               jgt %r4, %r3, +1
               ldxw %r0, [%r2]
               exit";
    for meta in [0u32, 4, 8, 32, 36, 216, 220, 6] {
        let mut data: Vec<u8> = (1..=meta).map(|b| b as u8).collect();
        data.extend(frame());
        let md = XdpMd {
            meta_len: meta,
            ..XdpMd::default()
        };
        let input = Input {
            xdp: md,
            ..Input::default()
        };
        let got = both(
            &bpf,
            src,
            ProgType::Xdp,
            &data,
            input,
            Some(xdp_ctx(meta, data.len(), &md)),
        );
        match meta {
            0 => assert_eq!(got.unwrap().0, 0xdead),
            220 | 6 => assert!(got.is_none(), "meta {meta} is refused by both"),
            _ => {
                let (r, out, ctx) = got.unwrap();
                assert_eq!(r, 0x04030201);
                assert_eq!(out, data, "data out starts at data_meta");
                assert_eq!(&ctx[..4], &meta.to_le_bytes());
            }
        }
    }
}

#[test]
fn skb_wire_len_and_fields_copied_back() {
    let Some(bpf) = kernel() else { return };
    // Socket filters cannot read wire_len: r0 = skb->len (bytes kept); cb[0] written. What
    // the kernel set wire_len to shows in ctx_out.
    let src = "ldxw %r0, [%r1+0]
               mov %r2, 77
               stxw [%r1+48], %r2
               exit";
    let tc_src = "ldxw %r0, [%r1+160]
                  mov %r2, 77
                  stxw [%r1+8], %r2
                  stxw [%r1+48], %r2
                  exit";
    let f = frame();
    for (ty, src, given, wire_len, want) in [
        // No context: wire_len is 0 in both.
        (ProgType::SchedCls, tc_src, false, 0, Some(0)),
        (ProgType::SocketFilter, src, false, 0, Some(46)),
        // A context: the length the program sees (from L3 for a socket filter).
        (ProgType::SchedCls, tc_src, true, 0, Some(60)),
        (ProgType::SocketFilter, src, true, 0, Some(46)),
        // Given: kept; below the packet length: refused.
        (ProgType::SchedCls, tc_src, true, 1500, Some(1500)),
        (ProgType::SchedCls, tc_src, true, 59, None),
    ] {
        let md = SkbMd {
            mark: 5,
            priority: 3,
            cb: [1, 2, 3, 4, 5],
            wire_len,
            ..SkbMd::default()
        };
        let input = Input {
            skb: given.then_some(md),
            ..Input::default()
        };
        let got = both(&bpf, src, ty, &f, input, given.then(|| skb_ctx(&md)));
        assert_eq!(
            got.as_ref().map(|g| g.0),
            want,
            "{ty} given={given} wire_len={wire_len}"
        );
        if let Some((_, _, ctx)) = got.filter(|_| given) {
            assert_eq!(&ctx[48..52], &77u32.to_le_bytes(), "cb[0] written back");
            if ty == ProgType::SocketFilter {
                assert_eq!(&ctx[160..164], &46u32.to_le_bytes(), "wire_len from L3");
            }
        }
    }
}

/// `repeat` runs the program again on the same packet and context, as the kernel's test-run loop
/// does: nothing is restored between runs, so a byte the program increments grows by one per
/// run, `bpf_xdp_adjust_head` moves `data` further each time, and an `__sk_buff` field written
/// is what the next run reads.
#[test]
fn repeat_runs_on_the_same_packet_and_context() {
    let Some(bpf) = kernel() else { return };
    // Byte 14 of the packet += 1, then data moves one byte on (bpf_xdp_adjust_head(ctx, 1)
    // while at least 20 bytes are left), r0 = the byte.
    let xdp = "mov %r6, %r1
               ldxw %r2, [%r6+0]
               ldxw %r3, [%r6+4]
               mov %r4, %r2
               add %r4, 20
               mov %r0, 1
               jgt %r4, %r3, +9
               ldxb %r0, [%r2+14]
               add %r0, 1
               stxb [%r2+14], %r0
               mov %r7, %r0
               mov %r1, %r6
               mov %r2, 1
               call 44
               mov %r0, %r7
               and %r0, 3
               exit";
    let f = frame();
    for repeat in [1u32, 2, 5] {
        let (r, out, _) = both_repeat(
            &bpf,
            xdp,
            ProgType::Xdp,
            &f,
            Input::default(),
            Some(xdp_ctx(0, f.len(), &XdpMd::default())),
            repeat,
        )
        .unwrap();
        // Run k incremented the byte 14 places after the data of its time, which was k bytes
        // into the frame.
        let mut want = f.clone();
        for k in 0..repeat as usize {
            want[14 + k] += 1;
        }
        assert_eq!(out, want[repeat as usize..], "repeat {repeat}");
        assert_eq!(
            r,
            (f[14 + repeat as usize - 1] as u32 + 1) & 3,
            "repeat {repeat}"
        );
    }
    // skb->mark += 1 and cb[0] += 2 per run; r0 = the mark.
    let tc = "ldxw %r2, [%r1+8]
              add %r2, 1
              stxw [%r1+8], %r2
              ldxw %r3, [%r1+48]
              add %r3, 2
              stxw [%r1+48], %r3
              mov %r0, %r2
              exit";
    let md = SkbMd {
        mark: 5,
        cb: [10, 0, 0, 0, 0],
        ..SkbMd::default()
    };
    let input = Input {
        skb: Some(md),
        ..Input::default()
    };
    for repeat in [1u32, 3] {
        let (r, _, ctx) = both_repeat(
            &bpf,
            tc,
            ProgType::SchedCls,
            &f,
            input,
            Some(skb_ctx(&md)),
            repeat,
        )
        .unwrap();
        assert_eq!(r, 5 + repeat, "mark after {repeat} runs");
        assert_eq!(&ctx[48..52], &(10 + 2 * repeat).to_le_bytes(), "cb[0]");
    }
}
