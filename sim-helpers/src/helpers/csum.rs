//! Internet-checksum helpers (`bpf_csum_diff`), computing the same partial sums as the kernel's
//! x86-64 `csum_partial` does on Linux 6.18: a ones'-complement sum folded, with end-around
//! carries, into 16 bits (measured against the kernel: `kernel/tests/csum.rs`).

/// Ones'-complement sum of `data` seeded with `seed`, folded to 16 bits: little-endian 16-bit
/// words, an odd last byte counting as a word's low byte (how x86-64's `csum_partial` sums).
pub fn csum_partial(data: &[u8], seed: u32) -> u32 {
    let mut sum = seed as u64;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u16::from_le_bytes([w[0], w[1]]) as u64;
    }
    if let [last] = words.remainder() {
        sum += *last as u64;
    }
    fold16(sum)
}

fn fold16(mut sum: u64) -> u32 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u32
}

/// `bpf_csum_diff(from, from_size, to, to_size, seed)`: the checksum difference of replacing
/// `from` by `to`, added to `seed`. Linux 6.18 accepts any sizes (older kernels wanted multiples
/// of 4 up to 512 bytes) and computes it from `csum_partial` of each side.
pub fn csum_diff(from: &[u8], to: &[u8], seed: u32) -> u32 {
    match (from.is_empty(), to.is_empty()) {
        (false, false) => {
            let f = csum_partial(from, 0);
            fold16(csum_partial(to, seed) as u64 + (!f & 0xffff) as u64)
        }
        (true, false) => csum_partial(to, seed),
        (false, true) => !csum_partial(from, !seed) & 0xffff,
        (true, true) => fold16(seed as u64),
    }
}

/// Fold a 32-bit partial sum to the 16-bit checksum field value (`csum_fold`).
pub fn csum_fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum() {
        // RFC 1071's example words 0x0001 0xf203 0xf4f5 0xf6f7 (big endian) sum to 0xddf2.
        let data = [0x00u8, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(
            !csum_fold(csum_partial(&data, 0)),
            0xf2dd,
            "0xddf2 in network byte order"
        );
    }

    #[test]
    fn diff_updates_like_a_recompute() {
        let old = [10u8, 0, 0, 1];
        let new = [192u8, 168, 1, 1];
        let mut h: [u8; 20] = [
            0x45, 0, 0, 0x54, 0, 0, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = csum_fold(csum_partial(&h, 0));
        h[10..12].copy_from_slice(&c.to_le_bytes());
        let sum = csum_diff(&old, &new, !(u16::from_le_bytes([h[10], h[11]])) as u32);
        h[12..16].copy_from_slice(&new);
        h[10..12].copy_from_slice(&csum_fold(sum).to_le_bytes());
        assert_eq!(csum_fold(csum_partial(&h, 0)), 0);
        // Odd sizes, as measured on the kernel.
        assert_eq!(csum_diff(&[1, 2, 3], &[], 0), 0xfdfb);
        assert_eq!(csum_diff(&[], &[1, 2, 3, 4, 5, 6], 0), 0x0c09);
        assert_eq!(csum_diff(&[0, 0, 0], &[], 0), 0);
    }
}

/// Checksum fields are handled as the 16 bits in memory order; ones'-complement arithmetic
/// gives the same bytes whatever the order, as long as every operand uses the same one.
fn add32(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(carry as u32)
}

/// `csum_replace4`/`csum_replace2`: update the field `sum` for a word changing from `from` to `to`.
pub fn csum_replace(sum: u16, from: u32, to: u32) -> u16 {
    csum_fold(add32(add32(!(sum as u32) & 0xffff, !from), to))
}

/// `csum_replace_by_diff`: update the field `sum` by a partial-sum difference.
pub fn csum_replace_by_diff(sum: u16, diff: u32) -> u16 {
    csum_fold(add32(diff, !(sum as u32) & 0xffff))
}

#[cfg(test)]
mod replace_tests {
    use super::*;

    #[test]
    fn replacing_a_word_matches_a_recompute() {
        let mut h: Vec<u8> = vec![
            0x45, 0, 0, 0x54, 0, 0, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = csum_fold(csum_partial(&h, 0));
        h[10..12].copy_from_slice(&c.to_le_bytes());
        let from = u32::from_le_bytes([10, 0, 0, 1]);
        let to = u32::from_le_bytes([192, 168, 1, 1]);
        let new = csum_replace(u16::from_le_bytes([h[10], h[11]]), from, to);
        h[12..16].copy_from_slice(&to.to_le_bytes());
        h[10..12].copy_from_slice(&new.to_le_bytes());
        assert_eq!(csum_fold(csum_partial(&h, 0)), 0);
    }
}
