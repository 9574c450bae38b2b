//! Writing pcapng: what a replay hands back, one Enhanced Packet Block per output packet with the
//! direction in `epb_flags` and the verdict in an `opt_comment`, so Wireshark and scapy show them.
//! pcap-parser only reads, so the writer is ours; it needs three block types.

use std::io::{self, Write};

/// `epb_flags` direction bits.
pub const INBOUND: u32 = 1;
pub const OUTBOUND: u32 = 2;

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const LINKTYPE_ETHERNET: u16 = 1;
const OPT_COMMENT: u16 = 1;
const OPT_EPB_FLAGS: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_END: u16 = 0;

/// A pcapng file with one Ethernet interface of nanosecond timestamps.
pub struct PcapngWriter<W: Write> {
    out: W,
}

fn pad4(n: usize) -> usize {
    n.next_multiple_of(4)
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    buf.resize(pad4(buf.len()), 0);
}

impl<W: Write> PcapngWriter<W> {
    /// Write the section header and the interface description.
    pub fn new(mut out: W) -> io::Result<PcapngWriter<W>> {
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes()); // major version
        body.extend_from_slice(&0u16.to_le_bytes()); // minor version
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // section length: unknown
        option(&mut body, OPT_END, &[]);
        Self::block(&mut out, SHB, &body)?;
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes()); // snaplen: none
        option(&mut body, OPT_IF_TSRESOL, &[9]); // nanoseconds
        option(&mut body, OPT_END, &[]);
        Self::block(&mut out, IDB, &body)?;
        Ok(PcapngWriter { out })
    }

    fn block(out: &mut W, kind: u32, body: &[u8]) -> io::Result<()> {
        let len = (12 + body.len()) as u32;
        out.write_all(&kind.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(body)?;
        out.write_all(&len.to_le_bytes())
    }

    /// One packet: its bytes, its time, its direction ([`INBOUND`]/[`OUTBOUND`]) and a comment.
    pub fn packet(
        &mut self,
        data: &[u8],
        ts_ns: u64,
        direction: u32,
        comment: &str,
    ) -> io::Result<()> {
        let mut body = Vec::with_capacity(32 + data.len() + comment.len());
        body.extend_from_slice(&0u32.to_le_bytes()); // interface 0
        body.extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts_ns as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        body.resize(pad4(body.len()), 0);
        if !comment.is_empty() {
            // A comment option is at most 65535 bytes.
            let c = &comment.as_bytes()[..comment.len().min(u16::MAX as usize)];
            option(&mut body, OPT_COMMENT, c);
        }
        option(&mut body, OPT_EPB_FLAGS, &direction.to_le_bytes());
        option(&mut body, OPT_END, &[]);
        Self::block(&mut self.out, EPB, &body)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_read_back_with_pcap_parser() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.packet(
            &[1, 2, 3, 4, 5],
            1_700_000_000_123_456_789,
            OUTBOUND,
            "XDP_TX",
        )
        .unwrap();
        w.packet(&[9; 64], 5, INBOUND, "").unwrap();
        let bytes = w.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("bpfsim-pcapng-{}", std::process::id()));
        std::fs::write(&dir, &bytes).unwrap();
        let got: Vec<_> = crate::capture::Capture::open(&dir)
            .unwrap()
            .map(|p| p.unwrap())
            .collect();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data, [1, 2, 3, 4, 5]);
        assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_789);
        assert_eq!(got[1].data, [9; 64]);
        // The comment is in the block, padded to 4 bytes.
        assert!(bytes.windows(6).any(|w| w == b"XDP_TX"));
    }
}
