//! Packets from pcap and pcapng files, streamed, as Ethernet frames: captures of other link types
//! (raw IP, Linux cooked SLL/SLL2, BSD NULL/LOOP) get a synthetic Ethernet header, as XDP and TC
//! programs expect one.

use std::fs::File;
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file ({why})")]
    Format { path: String, why: String },
    #[error("{path}: malformed capture at byte {offset}: {why}")]
    Malformed {
        path: String,
        offset: usize,
        why: String,
    },
    #[error("{path}: packet {index}: link type {linktype} is not supported (Ethernet, raw IP, SLL, SLL2, NULL/LOOP are)")]
    Linktype {
        path: String,
        index: usize,
        linktype: i32,
    },
}

/// One captured packet as an Ethernet frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    pub data: Vec<u8>,
    /// Timestamp in nanoseconds since the epoch, as the capture recorded it.
    pub ts_ns: u64,
}

/// Streams the packets of a capture, one at a time.
pub struct Capture {
    path: String,
    reader: Box<dyn PcapReaderIterator + Send>,
    /// Link type of the legacy file, or of each pcapng interface.
    linktypes: Vec<Linktype>,
    /// pcapng interfaces' timestamp resolution (ticks per second); pcap: microseconds.
    tick_hz: Vec<u64>,
    index: usize,
    done: bool,
}

impl Capture {
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| CaptureError::Open {
            path: name.clone(),
            source,
        })?;
        let reader = create_reader(1 << 20, file).map_err(|e| CaptureError::Format {
            path: name.clone(),
            why: e.to_string(),
        })?;
        Ok(Capture {
            path: name,
            reader,
            linktypes: Vec::new(),
            tick_hz: Vec::new(),
            index: 0,
            done: false,
        })
    }

    fn malformed(&self, why: impl Into<String>) -> CaptureError {
        CaptureError::Malformed {
            path: self.path.clone(),
            offset: self.reader.consumed(),
            why: why.into(),
        }
    }
}

#[cfg(test)]
fn ethernet(linktype: Linktype, raw: &[u8]) -> Option<Vec<u8>> {
    let mut f = Vec::new();
    ethernet_into(linktype, raw, &mut f).then_some(f)
}

/// `raw`, captured with `linktype`, as an Ethernet frame into `f` (its allocation reused);
/// false for an unknown link type or a packet shorter than its link-layer header.
fn ethernet_into(linktype: Linktype, raw: &[u8], f: &mut Vec<u8>) -> bool {
    let mut with_header = |ethertype: u16, payload: &[u8]| {
        f.clear();
        f.extend_from_slice(&[0u8; 12]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        true
    };
    let by_version = |payload: &[u8]| match payload.first().map(|b| b >> 4) {
        Some(6) => 0x86dd,
        _ => 0x0800,
    };
    match linktype.0 {
        1 => {
            f.clear();
            f.extend_from_slice(raw);
            true
        }
        // Raw IP (DLT_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6).
        101 | 228 | 229 | 12 | 14 => with_header(by_version(raw), raw),
        // BSD loopback: a 4-byte address family in host (NULL) or network (LOOP) order.
        0 | 108 => match raw.get(4..) {
            Some(payload) => with_header(by_version(payload), payload),
            None => false,
        },
        // Linux cooked v1: 16-byte header, protocol in its last two bytes.
        113 => match (raw.get(14..16), raw.get(16..)) {
            (Some(p), Some(payload)) => with_header(u16::from_be_bytes([p[0], p[1]]), payload),
            _ => false,
        },
        // Linux cooked v2: 20-byte header, protocol first.
        276 => match (raw.get(..2), raw.get(20..)) {
            (Some(p), Some(payload)) => with_header(u16::from_be_bytes([p[0], p[1]]), payload),
            _ => false,
        },
        _ => false,
    }
}

/// What one block of the file gave: a packet's interface and time, and whether its frame was
/// made (`None`: the interface has no link type).
type Found = Option<(usize, u64, Option<bool>)>;

impl Capture {
    /// The next packet, written into `into` (its data's allocation reused: a replay makes no
    /// allocation per packet); `None` at the end of the file.
    pub fn next_into(&mut self, into: &mut Packet) -> Option<Result<(), CaptureError>> {
        if self.done {
            return None;
        }
        // A refill that brings nothing new means the file ends inside a block.
        let mut refills = 0;
        loop {
            let (offset, found): (usize, Found) = match self.reader.next() {
                Ok((offset, block)) => {
                    let mut frame = |iface: usize, raw: &[u8], ts: u64| {
                        let made = self
                            .linktypes
                            .get(iface)
                            .map(|&l| ethernet_into(l, raw, &mut into.data));
                        into.ts_ns = ts;
                        Some((iface, ts, made))
                    };
                    let found = match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            self.linktypes = vec![h.network];
                            self.tick_hz = vec![if h.is_nanosecond_precision() {
                                1_000_000_000
                            } else {
                                1_000_000
                            }];
                            None
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let ts = b.ts_sec as u64 * 1_000_000_000
                                + b.ts_usec as u64
                                    * (1_000_000_000
                                        / self.tick_hz.first().copied().unwrap_or(1_000_000));
                            frame(0, &b.data[..(b.caplen as usize).min(b.data.len())], ts)
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            self.linktypes.push(idb.linktype);
                            self.tick_hz.push(idb.ts_resolution().unwrap_or(1_000_000));
                            None
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let hz = self
                                .tick_hz
                                .get(epb.if_id as usize)
                                .copied()
                                .unwrap_or(1_000_000)
                                .max(1);
                            let ticks = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                            let ts = (ticks as u128 * 1_000_000_000 / hz as u128) as u64;
                            let n = (epb.caplen as usize).min(epb.data.len());
                            frame(epb.if_id as usize, &epb.data[..n], ts)
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            let n = (spb.origlen as usize).min(spb.data.len());
                            frame(0, &spb.data[..n], 0)
                        }
                        PcapBlockOwned::NG(_) => None,
                    };
                    (offset, found)
                }
                Err(PcapError::Eof) => {
                    self.done = true;
                    return None;
                }
                Err(PcapError::Incomplete(_)) => {
                    refills += 1;
                    let refilled = self.reader.refill().map_err(|e| e.to_string());
                    if refills > 2 {
                        self.done = true;
                        return Some(Err(self.malformed("truncated file: it ends inside a block")));
                    }
                    if let Err(e) = refilled {
                        self.done = true;
                        return Some(Err(self.malformed(format!("truncated file ({e})"))));
                    }
                    continue;
                }
                Err(PcapError::UnexpectedEof) => {
                    self.done = true;
                    return Some(Err(
                        self.malformed("truncated file: it ends inside a packet record")
                    ));
                }
                Err(e) => {
                    let why = e.to_string();
                    self.done = true;
                    return Some(Err(self.malformed(why)));
                }
            };
            self.reader.consume(offset);
            let Some((iface, _, made)) = found else {
                continue;
            };
            let index = self.index;
            self.index += 1;
            let Some(made) = made else {
                self.done = true;
                return Some(Err(self.malformed(format!(
                    "packet {index} names interface {iface}, which the file never described"
                ))));
            };
            let linktype = self.linktypes[iface];
            return Some(match made {
                true => Ok(()),
                false if [0, 1, 12, 14, 101, 108, 113, 228, 229, 276].contains(&linktype.0) => {
                    Err(self.malformed(format!(
                        "packet {index} is shorter than its link-layer header"
                    )))
                }
                false => Err(CaptureError::Linktype {
                    path: self.path.clone(),
                    index,
                    linktype: linktype.0,
                }),
            });
        }
    }
}

impl Iterator for Capture {
    type Item = Result<Packet, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut p = Packet {
            data: Vec::new(),
            ts_ns: 0,
        };
        self.next_into(&mut p).map(|r| r.map(|()| p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_types_become_ethernet() {
        let ip4 = [0x45u8, 0, 0, 20];
        let e = ethernet(Linktype(101), &ip4).unwrap();
        assert_eq!(&e[12..14], &[0x08, 0x00]);
        assert_eq!(&e[14..], &ip4);
        let e = ethernet(Linktype(229), &[0x60, 0]).unwrap();
        assert_eq!(&e[12..14], &[0x86, 0xdd]);
        let mut sll = vec![0u8; 16];
        sll[14..16].copy_from_slice(&[0x08, 0x06]);
        sll.push(1);
        assert_eq!(
            &ethernet(Linktype(113), &sll).unwrap()[12..],
            &[0x08, 0x06, 1]
        );
        let mut sll2 = vec![0x86, 0xdd];
        sll2.resize(20, 0);
        assert_eq!(
            &ethernet(Linktype(276), &sll2).unwrap()[12..14],
            &[0x86, 0xdd]
        );
        assert_eq!(
            ethernet(Linktype(0), &[2, 0, 0, 0, 0x45]).unwrap()[12..],
            [0x08, 0x00, 0x45]
        );
        assert_eq!(ethernet(Linktype(113), &[0; 10]), None);
        assert_eq!(ethernet(Linktype(147), &[0; 10]), None);
    }
}
