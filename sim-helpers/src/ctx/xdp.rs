//! The XDP context as `BPF_PROG_TEST_RUN` builds it: the packet in a 4096-byte frame after 256
//! bytes of headroom, `struct xdp_md` fields that read as packet pointers, and the helpers that
//! move the packet's edges. The limits are the ones measured on Linux 6.18 (see the tests).

use bpfsim_vm::isa::Size;
use bpfsim_vm::memory::Context;

/// Headroom before the packet (`XDP_PACKET_HEADROOM`).
pub const HEADROOM: usize = 256;
/// `sizeof(struct xdp_frame)`, kept at the start of the headroom: data never moves below it.
pub const FRAME_HEADER: usize = 40;
/// The frame ends where `struct skb_shared_info` (320 bytes) begins in a 4096-byte page.
pub const FRAME_END: usize = 4096 - 320;
/// Largest packet kept linear: 3520 bytes.
pub const MAX_LINEAR: usize = FRAME_END - HEADROOM;
pub const ETH_HLEN: usize = 14;

/// `XDP_ABORTED` .. `XDP_REDIRECT`.
pub mod action {
    pub const ABORTED: u32 = 0;
    pub const DROP: u32 = 1;
    pub const PASS: u32 = 2;
    pub const TX: u32 = 3;
    pub const REDIRECT: u32 = 4;

    pub fn name(a: u64) -> Option<&'static str> {
        Some(match a {
            0 => "XDP_ABORTED",
            1 => "XDP_DROP",
            2 => "XDP_PASS",
            3 => "XDP_TX",
            4 => "XDP_REDIRECT",
            _ => return None,
        })
    }
}

/// The `struct xdp_md` fields a test may set (`BPF_PROG_TEST_RUN` accepts exactly these). The
/// default is what the kernel's test runs see without a context: the loopback device (ifindex 1),
/// queue 0, no metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpMd {
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    /// How many leading bytes of the data given are metadata rather than packet (ctx_in's
    /// `data`, with `data_meta` 0): a multiple of 4, at most [`MAX_META`], as the kernel allows.
    pub meta_len: u32,
}

/// The most metadata a test run accepts in ctx_in: the headroom less the `struct xdp_frame`
/// kept at its start (measured on 6.18: 216 runs, 220 is EINVAL; kernels before 6.x capped
/// metadata at 32 bytes).
pub const MAX_META: usize = HEADROOM - FRAME_HEADER;

/// The loopback device's ifindex, where the kernel runs test packets.
pub const LOOPBACK_IFINDEX: u32 = 1;

impl Default for XdpMd {
    fn default() -> Self {
        XdpMd {
            ingress_ifindex: LOOPBACK_IFINDEX,
            rx_queue_index: 0,
            meta_len: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XdpError {
    #[error("packet of {0} bytes is shorter than an Ethernet header ({ETH_HLEN} bytes); the kernel refuses it too")]
    TooShort(usize),
    #[error("packet of {0} bytes exceeds the {MAX_LINEAR} bytes XDP keeps linear; multi-buffer (frags) packets are not simulated yet")]
    TooLong(usize),
    #[error("metadata length {0} must be a multiple of 4, at most {MAX_META} bytes, and within the data given; the kernel's test run refuses it (EINVAL)")]
    BadMeta(u32),
}

/// Positions of the packet's edges in the frame, and the context fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpContext {
    /// Guest address of the frame's first byte, set when the frame is mapped.
    pub frame_addr: u64,
    pub meta: usize,
    pub data: usize,
    pub end: usize,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    /// Non-zero only for programs attached to a devmap entry (`xdp/devmap`).
    pub egress_ifindex: u32,
    /// Whether `egress_ifindex` may be read (the kernel allows it for devmap programs only).
    pub devmap: bool,
}

/// A frame: its bytes (the program's packet region) and the context that points into them.
#[derive(Clone, Debug)]
pub struct XdpFrame {
    pub buf: Vec<u8>,
    pub ctx: XdpContext,
}

impl XdpFrame {
    pub fn new(packet: &[u8], md: XdpMd) -> Result<XdpFrame, XdpError> {
        let mut buf = Vec::new();
        let ctx = Self::fill(&mut buf, packet, md)?;
        Ok(XdpFrame { buf, ctx })
    }

    /// Lay the frame out in `buf`, reusing its allocation (a run per packet need not allocate):
    /// zeroed, `packet` at the headroom's end, its first `md.meta_len` bytes as metadata.
    pub fn fill(buf: &mut Vec<u8>, packet: &[u8], md: XdpMd) -> Result<XdpContext, XdpError> {
        Self::refill(buf, packet, md, None)
    }

    /// [`Self::fill`] on a buffer where only `dirty` (a range of offsets) may hold non-zero
    /// bytes, when the caller knows it (a frame whose previous run could not write holds zeros
    /// and that run's packet): only what the new packet does not cover there is zeroed. With
    /// `None`, or a buffer not of the frame's size, all of it is. `buf` is left as it was when
    /// the packet is refused.
    #[inline]
    pub fn refill(
        buf: &mut Vec<u8>,
        packet: &[u8],
        md: XdpMd,
        dirty: Option<(usize, usize)>,
    ) -> Result<XdpContext, XdpError> {
        if packet.len() < ETH_HLEN {
            return Err(XdpError::TooShort(packet.len()));
        }
        if packet.len() > MAX_LINEAR + md.meta_len as usize {
            return Err(XdpError::TooLong(packet.len()));
        }
        let meta_len = md.meta_len as usize;
        if md.meta_len % 4 != 0 || meta_len > MAX_META || meta_len > packet.len() {
            return Err(XdpError::BadMeta(md.meta_len));
        }
        let (meta, packet) = packet.split_at(meta_len);
        let (start, end) = (HEADROOM - meta_len, HEADROOM + packet.len());
        match dirty {
            Some((a, b)) if buf.len() == FRAME_END && a <= b && b <= FRAME_END => {
                // The new packet and metadata overwrite [start, end); zero the rest of [a, b).
                buf[a..b.min(start).max(a)].fill(0);
                buf[end.max(a).min(b)..b].fill(0);
            }
            _ => {
                // A previous run may have written anywhere in the frame: all of it starts
                // zeroed again, as the kernel's freshly allocated one does.
                buf.clear();
                buf.resize(FRAME_END, 0);
            }
        }
        buf[start..HEADROOM].copy_from_slice(meta);
        buf[HEADROOM..end].copy_from_slice(packet);
        Ok(XdpContext {
            frame_addr: 0,
            meta: start,
            data: HEADROOM,
            end,
            ingress_ifindex: md.ingress_ifindex,
            rx_queue_index: md.rx_queue_index,
            egress_ifindex: 0,
            devmap: false,
        })
    }

    /// The packet as it is now.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.ctx.data..self.ctx.end]
    }

    /// Metadata followed by the packet: what `BPF_PROG_TEST_RUN` returns as `data_out`.
    pub fn data_out(&self) -> &[u8] {
        &self.buf[self.ctx.meta..self.ctx.end]
    }
}

/// The kernel's negative errno returns.
pub const EINVAL: i64 = -22;
pub const EACCES: i64 = -13;

impl XdpContext {
    /// `struct xdp_md` as the test run's ctx_out: data and data_end relative to data_meta,
    /// the device fields as given.
    pub fn ctx_out(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_ctx_out(&mut out);
        out
    }

    /// [`Self::ctx_out`] into `out`, in its allocation (a loop of runs reuses one).
    pub fn write_ctx_out(&self, out: &mut Vec<u8>) {
        let fields = [
            (self.data - self.meta) as u32,
            (self.end - self.meta) as u32,
            0,
            self.ingress_ifindex,
            self.rx_queue_index,
            0,
        ];
        let mut b = [0u8; 24];
        for (o, v) in b.chunks_exact_mut(4).zip(fields) {
            o.copy_from_slice(&v.to_le_bytes());
        }
        crate::run::fill_vec(out, &b);
    }

    /// `bpf_xdp_adjust_head`: move `data` by `delta`; metadata moves along with it.
    pub fn adjust_head(&mut self, buf: &mut [u8], delta: i64) -> i64 {
        let data = self.data as i64 + delta;
        if data < FRAME_HEADER as i64 || data > self.end as i64 - ETH_HLEN as i64 {
            return EINVAL;
        }
        let meta_len = self.data - self.meta;
        let new_meta = (data as usize) - meta_len;
        if new_meta < FRAME_HEADER {
            return EINVAL;
        }
        buf.copy_within(self.meta..self.data, new_meta);
        self.meta = new_meta;
        self.data = data as usize;
        0
    }

    /// `bpf_xdp_adjust_meta`: move `data_meta` by `delta`.
    pub fn adjust_meta(&mut self, delta: i64) -> i64 {
        let meta = self.meta as i64 + delta;
        if meta > self.data as i64 || meta < FRAME_HEADER as i64 {
            return EINVAL;
        }
        if (self.data as i64 - meta) % 4 != 0 {
            return EACCES;
        }
        self.meta = meta as usize;
        0
    }

    /// `bpf_xdp_adjust_tail`: move `data_end` by `delta`; grown bytes read as zero.
    pub fn adjust_tail(&mut self, buf: &mut [u8], delta: i64) -> i64 {
        let end = match self.tail_end(delta) {
            Ok(end) => end,
            Err(e) => return e,
        };
        if end > self.end {
            buf[self.end..end].fill(0);
        }
        self.end = end;
        0
    }

    /// Where `bpf_xdp_adjust_tail` moves `data_end` (an offset in the frame), or its errno: the
    /// kernel's limits, the frame's end (its tailroom) and an Ethernet header's length past
    /// `data`.
    fn tail_end(&self, delta: i64) -> Result<usize, i64> {
        let end = self.end as i64 + delta;
        if end > FRAME_END as i64 || end < (self.data + ETH_HLEN) as i64 {
            return Err(EINVAL);
        }
        Ok(end as usize)
    }
}

impl Context for XdpContext {
    fn load(&self, off: u32, size: Size) -> Option<u64> {
        // Every field is a u32 the kernel lets programs read only whole.
        if size != Size::W {
            return None;
        }
        let ptr = |o: usize| self.frame_addr + o as u64;
        Some(match off {
            0 => ptr(self.data),
            4 => ptr(self.end),
            8 => ptr(self.meta),
            12 => self.ingress_ifindex as u64,
            16 => self.rx_queue_index as u64,
            20 if self.devmap => self.egress_ifindex as u64,
            _ => return None,
        })
    }

    fn store(&mut self, _: u32, _: Size, _: u64) -> bool {
        false
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn packet(&self) -> Option<(u64, usize)> {
        Some((self.frame_addr + self.data as u64, self.end - self.data))
    }

    /// Every field is computed from the context's own fields.
    fn adjust_meta(&mut self, delta: i64) -> Option<i64> {
        Some(XdpContext::adjust_meta(self, delta))
    }

    /// The frame's bytes are guest memory the context does not hold: a growth has the caller
    /// zero them (at `frame_addr`, where the run mapped the frame) before the end moves.
    fn adjust_tail(&mut self, delta: i64, zero: &mut dyn FnMut(u64, usize) -> bool) -> Option<i64> {
        let end = match self.tail_end(delta) {
            Ok(end) => end,
            Err(e) => return Some(e),
        };
        if end > self.end && !zero(self.frame_addr + self.end as u64, end - self.end) {
            return None;
        }
        self.end = end;
        Some(0)
    }

    fn loads_are_pure(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> XdpFrame {
        XdpFrame::new(&vec![0xaa; len], XdpMd::default()).unwrap()
    }

    // The figures below were measured with BPF_PROG_TEST_RUN on Linux 6.18.
    #[test]
    fn adjust_head_limits() {
        let mut f = frame(64);
        assert_eq!(f.ctx.adjust_head(&mut f.buf, -217), EINVAL);
        assert_eq!(f.ctx.adjust_head(&mut f.buf, -216), 0);
        assert_eq!(f.data_out().len(), 64 + 216);
        let mut f = frame(64);
        assert_eq!(f.ctx.adjust_head(&mut f.buf, 51), EINVAL);
        assert_eq!(f.ctx.adjust_head(&mut f.buf, 50), 0);
        assert_eq!(f.data(), &[0xaa; 14]);
    }

    #[test]
    fn adjust_tail_limits_and_zeroing() {
        let mut f = frame(64);
        assert_eq!(f.ctx.adjust_tail(&mut f.buf, -51), EINVAL);
        assert_eq!(f.ctx.adjust_tail(&mut f.buf, 3457), EINVAL);
        assert_eq!(f.ctx.adjust_tail(&mut f.buf, 3456), 0);
        assert_eq!(f.data().len(), 3520);
        assert!(f.data()[64..].iter().all(|&b| b == 0));
        assert_eq!(f.ctx.adjust_tail(&mut f.buf, -3506), 0);
        assert_eq!(f.data().len(), 14);
    }

    #[test]
    fn adjust_meta_limits() {
        let mut f = frame(64);
        assert_eq!(f.ctx.adjust_meta(-2), EACCES);
        assert_eq!(f.ctx.adjust_meta(4), EINVAL);
        assert_eq!(f.ctx.adjust_meta(-220), EINVAL);
        assert_eq!(f.ctx.adjust_meta(-216), 0);
        assert_eq!(f.data_out().len(), 280);
        // adjust_head carries the metadata along.
        let mut f = frame(64);
        assert_eq!(f.ctx.adjust_meta(-8), 0);
        f.buf[f.ctx.meta] = 7;
        assert_eq!(f.ctx.adjust_head(&mut f.buf, -10), 0);
        assert_eq!(f.buf[f.ctx.meta], 7);
        assert_eq!(f.ctx.data - f.ctx.meta, 8);
    }

    #[test]
    fn refill_is_fill_when_only_the_old_packet_is_dirty() {
        let md = |meta_len| XdpMd {
            meta_len,
            ..XdpMd::default()
        };
        let packets: [(usize, u32); 5] = [(64, 0), (14, 0), (1500, 8), (100, 4), (3520, 0)];
        for &(old_len, old_meta) in &packets {
            for &(new_len, new_meta) in &packets {
                let mut buf = Vec::new();
                let old = XdpFrame::fill(&mut buf, &vec![0xaa; old_len], md(old_meta)).unwrap();
                let new = vec![0x55; new_len];
                let ctx = XdpFrame::refill(&mut buf, &new, md(new_meta), Some((old.meta, old.end)))
                    .unwrap();
                let want = XdpFrame::new(&new, md(new_meta)).unwrap();
                assert_eq!(
                    (&buf, &ctx),
                    (&want.buf, &want.ctx),
                    "{old_len} then {new_len}"
                );
            }
        }
        // Refused: the buffer is untouched.
        let mut buf = vec![1; 10];
        assert!(XdpFrame::refill(&mut buf, &[0; 13], md(0), None).is_err());
        assert_eq!(buf, [1; 10]);
    }

    #[test]
    fn packet_sizes_and_fields() {
        assert_eq!(
            XdpFrame::new(&[0; 13], XdpMd::default()).unwrap_err(),
            XdpError::TooShort(13)
        );
        assert!(XdpFrame::new(&[0; 3520], XdpMd::default()).is_ok());
        assert_eq!(
            XdpFrame::new(&[0; 3521], XdpMd::default()).unwrap_err(),
            XdpError::TooLong(3521)
        );
        let mut f = XdpFrame::new(
            &[0; 20],
            XdpMd {
                ingress_ifindex: 2,
                rx_queue_index: 1,
                meta_len: 4,
            },
        )
        .unwrap();
        f.ctx.frame_addr = 0x5_0000_0000;
        // The first 4 of the 20 bytes are metadata, the packet the other 16.
        assert_eq!(f.ctx.load(0, Size::W), Some(0x5_0000_0000 + 256));
        assert_eq!(f.ctx.load(4, Size::W), Some(0x5_0000_0000 + 272));
        assert_eq!(f.ctx.load(8, Size::W), Some(0x5_0000_0000 + 252));
        assert_eq!(f.ctx.load(12, Size::W), Some(2));
        assert_eq!(f.ctx.load(16, Size::W), Some(1));
        assert_eq!(
            f.ctx.load(20, Size::W),
            None,
            "egress_ifindex is for devmap programs"
        );
        assert_eq!(f.ctx.load(0, Size::DW), None);
        assert!(!f.ctx.store(12, Size::W, 1));
    }
}
