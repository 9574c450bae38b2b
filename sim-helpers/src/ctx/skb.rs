//! The socket-buffer context (`struct __sk_buff`) for socket filters, TC and cgroup skb programs,
//! as `BPF_PROG_TEST_RUN` builds it: protocol and pkt_type derived from the Ethernet header the
//! way `eth_type_trans` does on the loopback device the kernel runs tests on, and the packet
//! starting at L2 for TC and at L3 for socket filters and cgroup programs.
//!
//! Which fields a program may read and write is decided per program type; the rules here are the
//! common ones of `net/core/filter.c` (`sk_filter_is_valid_access`, `tc_cls_act_is_valid_access`,
//! `cg_skb_is_valid_access`). The exact per-field rules, narrow loads included, are the
//! verifier's (issue 5); the runtime refuses what is plainly outside them.

use bpfsim_vm::isa::Size;
use bpfsim_vm::memory::Context;
use bpfsim_vm::spec::ProgType;

/// Field offsets of `struct __sk_buff` (UAPI).
pub mod off {
    pub const LEN: u32 = 0;
    pub const PKT_TYPE: u32 = 4;
    pub const MARK: u32 = 8;
    pub const QUEUE_MAPPING: u32 = 12;
    pub const PROTOCOL: u32 = 16;
    pub const VLAN_PRESENT: u32 = 20;
    pub const VLAN_TCI: u32 = 24;
    pub const VLAN_PROTO: u32 = 28;
    pub const PRIORITY: u32 = 32;
    pub const INGRESS_IFINDEX: u32 = 36;
    pub const IFINDEX: u32 = 40;
    pub const TC_INDEX: u32 = 44;
    pub const CB: u32 = 48;
    pub const HASH: u32 = 68;
    pub const TC_CLASSID: u32 = 72;
    pub const DATA: u32 = 76;
    pub const DATA_END: u32 = 80;
    pub const NAPI_ID: u32 = 84;
    pub const FAMILY: u32 = 88;
    pub const DATA_META: u32 = 140;
    pub const TSTAMP: u32 = 152;
    pub const WIRE_LEN: u32 = 160;
    pub const GSO_SEGS: u32 = 164;
    pub const GSO_SIZE: u32 = 176;
    pub const HWTSTAMP: u32 = 184;
    pub const SIZE: u32 = 192;
}

/// `PACKET_HOST` .. `PACKET_OTHERHOST`.
pub mod pkt_type {
    pub const HOST: u32 = 0;
    pub const BROADCAST: u32 = 1;
    pub const MULTICAST: u32 = 2;
    pub const OTHERHOST: u32 = 3;
}

/// `TC_ACT_*` verdicts.
pub mod tc_action {
    pub fn name(a: u64) -> Option<&'static str> {
        Some(match a as i32 {
            -1 => "TC_ACT_UNSPEC",
            0 => "TC_ACT_OK",
            1 => "TC_ACT_RECLASSIFY",
            2 => "TC_ACT_SHOT",
            3 => "TC_ACT_PIPE",
            4 => "TC_ACT_STOLEN",
            5 => "TC_ACT_QUEUED",
            6 => "TC_ACT_REPEAT",
            7 => "TC_ACT_REDIRECT",
            _ => return None,
        })
    }
}

pub const ETH_HLEN: usize = 14;
/// Headroom `BPF_PROG_TEST_RUN` leaves before an skb's data (`NET_SKB_PAD + NET_IP_ALIGN`).
pub const HEADROOM: usize = 64 + 2;

/// The `__sk_buff` fields a test may set (what `BPF_PROG_TEST_RUN`'s ctx_in accepts). The
/// default is what the kernel's test runs see: the skb is on loopback (ifindex 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkbMd {
    pub mark: u32,
    pub priority: u32,
    pub ingress_ifindex: u32,
    pub ifindex: u32,
    pub cb: [u32; 5],
    pub tstamp: u64,
    pub wire_len: u32,
    pub gso_segs: u32,
    pub gso_size: u32,
    pub hwtstamp: u64,
}

impl Default for SkbMd {
    fn default() -> Self {
        SkbMd {
            mark: 0,
            priority: 0,
            // Measured: ifindex reads 1 (lo), ingress_ifindex 0 (the skb never came in).
            ingress_ifindex: 0,
            ifindex: crate::ctx::xdp::LOOPBACK_IFINDEX,
            cb: [0; 5],
            tstamp: 0,
            wire_len: 0,
            gso_segs: 0,
            gso_size: 0,
            hwtstamp: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkbError {
    #[error("packet of {0} bytes is shorter than an Ethernet header ({ETH_HLEN} bytes); the kernel refuses it too")]
    TooShort(usize),
    #[error("{what} packet of {len} bytes has no room for its {need}-byte network header after the Ethernet header; the kernel's test run refuses it (EINVAL)")]
    TruncatedL3 {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("program type {0} does not run on socket buffers")]
    NotSkbType(ProgType),
    #[error("wire_len {wire_len} is less than the packet's {len} bytes; the kernel's test run refuses it (EINVAL)")]
    WireLen { wire_len: u32, len: u32 },
}

/// The context's state: every field, and where the packet lies in the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbContext {
    pub prog_type: ProgType,
    /// Guest address of the buffer's first byte, set when the buffer is mapped.
    pub buf_addr: u64,
    /// Offset of the Ethernet header in the buffer.
    pub mac: usize,
    pub data: usize,
    pub end: usize,
    pub md: SkbMd,
    pub pkt_type: u32,
    /// `skb->protocol`: the ethertype as the kernel stores it (network byte order).
    pub protocol: u32,
    pub queue_mapping: u32,
    pub vlan_present: u32,
    pub vlan_tci: u32,
    pub vlan_proto: u32,
    pub tc_index: u32,
    pub hash: u32,
    pub tc_classid: u32,
    pub napi_id: u32,
}

/// A socket buffer: its bytes (the packet region) and the context.
#[derive(Clone, Debug)]
pub struct SkbFrame {
    pub buf: Vec<u8>,
    pub ctx: SkbContext,
}

/// `eth_type_trans` on the loopback device, whose address and broadcast address are both
/// 00:00:00:00:00:00: so ff:ff:ff:ff:ff:ff is multicast there, never broadcast.
fn classify(eth: &[u8]) -> (u32, u32) {
    let dst = &eth[..6];
    let pkt_type = if dst[0] & 1 != 0 {
        pkt_type::MULTICAST
    } else if dst.iter().all(|&b| b == 0) {
        pkt_type::HOST
    } else {
        pkt_type::OTHERHOST
    };
    let ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    // Below 0x600 the field is an 802.3 length: raw 802.3 (IPX) or 802.2 LLC.
    let proto = if ethertype >= 0x600 {
        ethertype
    } else if eth.len() >= 16 && eth[14] == 0xff && eth[15] == 0xff {
        0x0001
    } else {
        0x0004
    };
    (pkt_type, proto.to_be() as u32)
}

impl SkbFrame {
    pub fn new(packet: &[u8], prog_type: ProgType, md: SkbMd) -> Result<SkbFrame, SkbError> {
        if packet.len() < ETH_HLEN {
            return Err(SkbError::TooShort(packet.len()));
        }
        let at_l3 = match prog_type {
            ProgType::SocketFilter | ProgType::CgroupSkb => true,
            ProgType::SchedCls
            | ProgType::SchedAct
            | ProgType::LwtIn
            | ProgType::LwtOut
            | ProgType::LwtXmit => false,
            other => return Err(SkbError::NotSkbType(other)),
        };
        let (pkt_type, protocol) = classify(packet);
        // BPF_PROG_TEST_RUN pulls the IPv4/IPv6 header into the linear area, or fails.
        let l3 = match protocol {
            0x0008 => Some(("IPv4", 20)),
            0xdd86 => Some(("IPv6", 40)),
            _ => None,
        };
        if let Some((what, need)) = l3.filter(|(_, need)| packet.len() < ETH_HLEN + need) {
            return Err(SkbError::TruncatedL3 {
                what,
                len: packet.len(),
                need,
            });
        }
        let mut buf = vec![0u8; HEADROOM + packet.len()];
        buf[HEADROOM..].copy_from_slice(packet);
        let mac = HEADROOM;
        let data = if at_l3 { mac + ETH_HLEN } else { mac };
        Ok(SkbFrame {
            ctx: SkbContext {
                prog_type,
                buf_addr: 0,
                mac,
                data,
                end: buf.len(),
                md,
                pkt_type,
                protocol,
                queue_mapping: 0,
                vlan_present: 0,
                vlan_tci: 0,
                vlan_proto: 0,
                tc_index: 0,
                hash: 0,
                tc_classid: 0,
                napi_id: 0,
            },
            buf,
        })
    }

    /// The packet from `skb->data`, as the program sees it.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.ctx.data..self.ctx.end]
    }

    /// What `BPF_PROG_TEST_RUN` returns: the packet from the MAC header, with the Ethernet
    /// header zeroed for programs that ran at L3 (the kernel pushes it back as zeros).
    pub fn data_out(&self) -> Vec<u8> {
        let mut out = self.buf[self.ctx.mac..self.ctx.end].to_vec();
        if self.ctx.data > self.ctx.mac {
            let n = (self.ctx.data - self.ctx.mac).min(out.len());
            out[..n].fill(0);
        }
        out
    }
}

impl SkbContext {
    /// `struct __sk_buff` as the test run's ctx_out: the kernel copies back mark, priority,
    /// ingress_ifindex, ifindex, tstamp, cb, wire_len, gso_segs and hwtstamp (not gso_size),
    /// and leaves the rest zero.
    pub fn ctx_out(&self) -> Vec<u8> {
        let mut b = vec![0u8; off::SIZE as usize];
        let mut put = |at: u32, v: &[u8]| b[at as usize..at as usize + v.len()].copy_from_slice(v);
        let md = &self.md;
        put(off::MARK, &md.mark.to_le_bytes());
        put(off::PRIORITY, &md.priority.to_le_bytes());
        put(off::INGRESS_IFINDEX, &md.ingress_ifindex.to_le_bytes());
        put(off::IFINDEX, &md.ifindex.to_le_bytes());
        for (i, c) in md.cb.iter().enumerate() {
            put(off::CB + 4 * i as u32, &c.to_le_bytes());
        }
        put(off::TSTAMP, &md.tstamp.to_le_bytes());
        put(off::WIRE_LEN, &md.wire_len.to_le_bytes());
        put(off::GSO_SEGS, &md.gso_segs.to_le_bytes());
        put(off::HWTSTAMP, &md.hwtstamp.to_le_bytes());
        b
    }

    #[inline(always)]
    fn direct_packet_access(&self) -> bool {
        !matches!(self.prog_type, ProgType::SocketFilter)
    }

    fn writable(&self, off: u32) -> bool {
        let cb = (off::CB..off::CB + 20).contains(&off);
        match self.prog_type {
            ProgType::SocketFilter => cb,
            ProgType::CgroupSkb => cb || matches!(off, off::MARK | off::PRIORITY | off::TSTAMP),
            _ => {
                cb || matches!(
                    off,
                    off::MARK
                        | off::PRIORITY
                        | off::TC_INDEX
                        | off::TC_CLASSID
                        | off::QUEUE_MAPPING
                        | off::TSTAMP
                )
            }
        }
    }

    /// Fields socket filters may not read (`sk_filter_is_valid_access`; measured on 6.18).
    #[inline(always)]
    fn hidden(&self, off: u32) -> bool {
        self.prog_type == ProgType::SocketFilter
            && matches!(
                off,
                off::TC_CLASSID
                    | off::DATA
                    | off::DATA_END
                    | off::DATA_META
                    | off::TSTAMP
                    | off::WIRE_LEN
                    | off::HWTSTAMP
            )
    }

    #[inline(always)]
    fn field(&self, off: u32) -> Option<u64> {
        if self.hidden(off) {
            return None;
        }
        let ptr = |o: usize| self.buf_addr + o as u64;
        let len = (self.end - self.data) as u64;
        Some(match off {
            off::LEN => len,
            off::PKT_TYPE => self.pkt_type as u64,
            off::MARK => self.md.mark as u64,
            off::QUEUE_MAPPING => self.queue_mapping as u64,
            off::PROTOCOL => self.protocol as u64,
            off::VLAN_PRESENT => self.vlan_present as u64,
            off::VLAN_TCI => self.vlan_tci as u64,
            off::VLAN_PROTO => self.vlan_proto as u64,
            off::PRIORITY => self.md.priority as u64,
            off::INGRESS_IFINDEX => self.md.ingress_ifindex as u64,
            off::IFINDEX => self.md.ifindex as u64,
            off::TC_INDEX => self.tc_index as u64,
            o if (off::CB..off::CB + 20).contains(&o) => {
                self.md.cb[((o - off::CB) / 4) as usize] as u64
            }
            off::HASH => self.hash as u64,
            off::TC_CLASSID if self.prog_type != ProgType::SocketFilter => self.tc_classid as u64,
            off::DATA if self.direct_packet_access() => ptr(self.data),
            off::DATA_END if self.direct_packet_access() => ptr(self.end),
            off::DATA_META if self.direct_packet_access() => ptr(self.data),
            off::NAPI_ID => self.napi_id as u64,
            off::TSTAMP => self.md.tstamp,
            off::WIRE_LEN => self.md.wire_len as u64,
            off::GSO_SEGS => self.md.gso_segs as u64,
            off::GSO_SIZE => self.md.gso_size as u64,
            off::HWTSTAMP => self.md.hwtstamp,
            _ => return None,
        })
    }

    fn set(&mut self, off: u32, v: u64) {
        match off {
            off::MARK => self.md.mark = v as u32,
            off::PRIORITY => self.md.priority = v as u32,
            off::TC_INDEX => self.tc_index = v as u32,
            off::TC_CLASSID => self.tc_classid = v as u32,
            off::QUEUE_MAPPING => self.queue_mapping = v as u32,
            off::TSTAMP => self.md.tstamp = v,
            o => self.md.cb[((o - off::CB) / 4) as usize] = v as u32,
        }
    }
}

fn is_u64_field(off: u32) -> bool {
    matches!(off, off::TSTAMP | off::HWTSTAMP)
}

impl Context for SkbContext {
    fn load(&self, off: u32, size: Size) -> Option<u64> {
        let pointer = matches!(off, off::DATA | off::DATA_END | off::DATA_META);
        let whole = if is_u64_field(off) { Size::DW } else { Size::W };
        if size == whole {
            return self.field(off);
        }
        // Narrow loads of the low bytes of a 32-bit field, as the kernel allows for most fields.
        let base = off & !3;
        if pointer
            || is_u64_field(base)
            || !matches!(size, Size::B | Size::H)
            || off % size.bytes() as u32 != 0
        {
            return None;
        }
        let v = self.field(base)?;
        let shift = (off - base) * 8;
        Some((v >> shift) & ((1u64 << size.bits()) - 1))
    }

    fn store(&mut self, off: u32, size: Size, value: u64) -> bool {
        let whole = if is_u64_field(off) { Size::DW } else { Size::W };
        if size != whole || !self.writable(off) {
            return false;
        }
        self.set(off, value);
        true
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn packet(&self) -> Option<(u64, usize)> {
        Some((self.buf_addr + self.data as u64, self.end - self.data))
    }

    /// Every field is computed from the context's own fields.
    fn loads_are_pure(&self) -> bool {
        true
    }

    /// Every writable field is a plain one: its whole-size store ([`Self::store`]) sets it and
    /// nothing else, and loads read it as it is.
    fn store_cell(&mut self, off: u32, size: Size) -> Option<&mut [u8]> {
        let whole = if is_u64_field(off) { Size::DW } else { Size::W };
        // The cell holds the value's bytes in the host's order: little-endian hosts only.
        // Aligned only: an unaligned store to cb[] writes the slot it starts in, not the
        // bytes at its offset.
        let aligned = off % size.bytes() as u32 == 0;
        if size != whole || !aligned || !self.writable(off) || cfg!(target_endian = "big") {
            return None;
        }
        Some(match off {
            off::MARK => u32_bytes(&mut self.md.mark),
            off::PRIORITY => u32_bytes(&mut self.md.priority),
            off::TC_INDEX => u32_bytes(&mut self.tc_index),
            off::TC_CLASSID => u32_bytes(&mut self.tc_classid),
            off::QUEUE_MAPPING => u32_bytes(&mut self.queue_mapping),
            off::TSTAMP => u64_bytes(&mut self.md.tstamp),
            o => u32_bytes(&mut self.md.cb[((o - off::CB) / 4) as usize]),
        })
    }
}

/// A field's bytes, for [`SkbContext::store_cell`].
fn u32_bytes(x: &mut u32) -> &mut [u8] {
    // SAFETY: a `u32` is 4 initialised bytes, each of which may hold any value, and `u8` needs
    // no alignment; the slice borrows `x` for its whole life.
    unsafe { std::slice::from_raw_parts_mut((x as *mut u32).cast::<u8>(), 4) }
}

fn u64_bytes(x: &mut u64) -> &mut [u8] {
    // SAFETY: as in `u32_bytes`, for 8 bytes.
    unsafe { std::slice::from_raw_parts_mut((x as *mut u64).cast::<u8>(), 8) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp() -> Vec<u8> {
        let mut p = vec![0u8; 54];
        p[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        p[12] = 0x08;
        p[14] = 0x45;
        p[23] = 6;
        p
    }

    #[test]
    fn eth_type_trans_on_loopback() {
        let f = SkbFrame::new(&ipv4_tcp(), ProgType::SchedCls, SkbMd::default()).unwrap();
        assert_eq!(f.ctx.protocol, 0x0008, "ETH_P_IP in network byte order");
        assert_eq!(f.ctx.pkt_type, pkt_type::OTHERHOST);
        let mut bcast = ipv4_tcp();
        bcast[..6].fill(0xff);
        // Measured: test runs on loopback classify ff:ff:ff:ff:ff:ff as multicast.
        assert_eq!(
            SkbFrame::new(&bcast, ProgType::SchedCls, SkbMd::default())
                .unwrap()
                .ctx
                .pkt_type,
            pkt_type::MULTICAST
        );
    }

    #[test]
    fn socket_filters_start_at_l3_and_get_a_zeroed_mac_header_back() {
        let p = ipv4_tcp();
        let f = SkbFrame::new(&p, ProgType::SocketFilter, SkbMd::default()).unwrap();
        assert_eq!(f.data()[0], 0x45);
        assert_eq!(f.ctx.field(off::LEN), Some(40));
        let out = f.data_out();
        assert_eq!(out.len(), 54);
        assert!(out[..14].iter().all(|&b| b == 0));
        assert_eq!(&out[14..], &p[14..]);
        let tc = SkbFrame::new(&p, ProgType::SchedCls, SkbMd::default()).unwrap();
        assert_eq!(tc.ctx.field(off::LEN), Some(54));
        assert_eq!(tc.data_out(), p);
    }

    #[test]
    fn truncated_network_headers_are_refused_like_the_kernel() {
        let mut p = ipv4_tcp();
        p.truncate(33);
        assert!(matches!(
            SkbFrame::new(&p, ProgType::SchedCls, SkbMd::default()),
            Err(SkbError::TruncatedL3 { need: 20, .. })
        ));
        p.truncate(14);
        p[12] = 0x86;
        p[13] = 0xdd;
        assert!(SkbFrame::new(&p, ProgType::SocketFilter, SkbMd::default()).is_err());
        p[12] = 0x08;
        p[13] = 0x06;
        assert!(
            SkbFrame::new(&p, ProgType::SocketFilter, SkbMd::default()).is_ok(),
            "ARP has no such check"
        );
    }

    #[test]
    fn access_rules_per_type() {
        let mut sf = SkbFrame::new(&ipv4_tcp(), ProgType::SocketFilter, SkbMd::default())
            .unwrap()
            .ctx;
        assert!(sf.store(off::CB + 4, Size::W, 5));
        assert!(
            !sf.store(off::MARK, Size::W, 1),
            "socket filters write cb[] only"
        );
        assert_eq!(sf.load(off::DATA, Size::W), None, "no direct packet access");
        assert_eq!(sf.load(off::CB + 4, Size::W), Some(5));
        let mut tc = SkbFrame::new(
            &ipv4_tcp(),
            ProgType::SchedCls,
            SkbMd {
                mark: 0x1234_5678,
                ..SkbMd::default()
            },
        )
        .unwrap()
        .ctx;
        tc.buf_addr = 0x7_0000_0000;
        assert_eq!(
            tc.load(off::DATA, Size::W),
            Some(0x7_0000_0000 + HEADROOM as u64)
        );
        assert_eq!(tc.load(off::MARK, Size::B), Some(0x78));
        assert_eq!(tc.load(off::MARK + 2, Size::H), Some(0x1234));
        assert!(tc.store(off::TC_CLASSID, Size::W, 0x10001));
        assert!(tc.store(off::MARK, Size::W, 7));
        assert!(!tc.store(off::LEN, Size::W, 7));
        assert_eq!(tc.load(off::TSTAMP, Size::DW), Some(0));
        assert_eq!(tc.load(off::SIZE, Size::W), None);
    }

    /// A cell is offered exactly where a store is allowed, whole and aligned, and writing
    /// the value's bytes into it is that store.
    #[test]
    fn store_cells_are_the_allowed_stores() {
        for ty in [
            ProgType::SocketFilter,
            ProgType::SchedCls,
            ProgType::CgroupSkb,
        ] {
            let fresh = || {
                SkbFrame::new(&ipv4_tcp(), ty, SkbMd::default())
                    .unwrap()
                    .ctx
            };
            for o in 0..off::SIZE + 8 {
                for size in [Size::B, Size::H, Size::W, Size::DW] {
                    let v = 0x1122_3344_5566_7788u64;
                    let (mut a, mut b) = (fresh(), fresh());
                    let stored = a.store(o, size, v);
                    match b.store_cell(o, size) {
                        Some(cell) => {
                            assert!(stored, "{ty} {o} {size:?}");
                            assert_eq!(o % size.bytes() as u32, 0);
                            cell.copy_from_slice(&v.to_le_bytes()[..size.bytes()]);
                            assert_eq!(a, b, "{ty} {o} {size:?}");
                        }
                        None => assert!(!stored || o % size.bytes() as u32 != 0, "{ty} {o}"),
                    }
                }
            }
        }
    }
}
