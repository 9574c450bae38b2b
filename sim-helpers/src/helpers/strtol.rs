//! `bpf_strtol` and `bpf_strtoul`: parse an integer at the start of a buffer that need not be
//! NUL-terminated, with the kernel's rules (leading whitespace, optional sign, base 0 meaning
//! auto-detect `0x`/`0` prefixes, `-EINVAL` without digits, `-ERANGE` on overflow).

pub const EINVAL: i64 = -22;
pub const ERANGE: i64 = -34;

/// The number and the bytes consumed, or the negative errno the helper returns.
pub fn parse(buf: &[u8], flags: u64, signed: bool) -> Result<(u64, usize), i64> {
    // The low 5 bits are the base; any other bit is reserved.
    let mut base = (flags & 0x1f) as u32;
    if flags & !0x1f != 0 || !matches!(base, 0 | 8 | 10 | 16) {
        return Err(EINVAL);
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let s = &buf[..end];
    let mut i = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let negative = signed && s.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let hex_prefix = s.get(i) == Some(&b'0') && matches!(s.get(i + 1), Some(b'x' | b'X'));
    // Auto-detection wants a hex digit after `0x`; an explicit base 16 skips `0x` regardless.
    if base == 0 {
        base = if hex_prefix && s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit()) {
            16
        } else if s.get(i) == Some(&b'0') {
            8
        } else {
            10
        };
    }
    if base == 16 && hex_prefix {
        i += 2;
    }
    let start = i;
    let mut value: u64 = 0;
    while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(base)) {
        value = value
            .checked_mul(base as u64)
            .and_then(|v| v.checked_add(d as u64))
            .ok_or(ERANGE)?;
        i += 1;
    }
    if i == start {
        return Err(EINVAL);
    }
    if signed {
        let limit = if negative {
            1u64 << 63
        } else {
            i64::MAX as u64
        };
        if value > limit {
            return Err(ERANGE);
        }
        let v = if negative {
            (value as i64).wrapping_neg() as u64
        } else {
            value
        };
        return Ok((v, i));
    }
    Ok((value, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_style_parsing() {
        assert_eq!(parse(b"  42abc", 0, true), Ok((42, 4)));
        assert_eq!(parse(b"-17", 10, true), Ok(((-17i64) as u64, 3)));
        assert_eq!(parse(b"0x1f", 0, false), Ok((31, 4)));
        assert_eq!(parse(b"0755", 0, false), Ok((0o755, 4)));
        assert_eq!(parse(b"ff", 16, false), Ok((255, 2)));
        assert_eq!(
            parse(b"12\x0034", 10, false),
            Ok((12, 2)),
            "stops at the NUL"
        );
        assert_eq!(parse(b"", 10, true), Err(EINVAL));
        assert_eq!(parse(b"xyz", 10, true), Err(EINVAL));
        assert_eq!(parse(b"1", 7, true), Err(EINVAL));
        assert_eq!(parse(b"99999999999999999999", 10, false), Err(ERANGE));
        assert_eq!(parse(b"9223372036854775808", 10, true), Err(ERANGE));
        assert_eq!(parse(b"-9223372036854775808", 10, true), Ok((1 << 63, 20)));
    }
}
