//! `bpf_trace_printk` formatting with the kernel's rules (`bpf_bprintf_prepare`): the supported
//! conversions are `%d %i %u %x %X %c %s %%`, with `l`/`ll` length modifiers, flags `0+- ` and a
//! width, plus `%p`, `%pK`, `%px`, `%pS`, `%ps`, `%pB`, `%pks`, `%pus`, `%pi4`, `%pI4`, `%pi6`,
//! `%pI6`; anything else (`%5.2d`, `%zu`, `%o`, `%#x`, `%pa`, ...),
//! more than three arguments, or a non-printable character makes the helper return `-EINVAL`.
//! Without `l`, an integer conversion uses the argument's low 32 bits, as the kernel does.

/// Why a format string was refused (the helper then returns `-EINVAL`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrintkError {
    #[error("format string is not NUL-terminated within its size")]
    Unterminated,
    #[error("non-printable character {0:#04x} in format string")]
    NonPrintable(u8),
    #[error("unsupported conversion `%{0}` in format string")]
    Unsupported(String),
    #[error("more than {0} arguments in format string")]
    TooManyArgs(usize),
}

/// Reads guest memory for `%s`, `%pI4` and the like; `None` when the address does not map.
pub trait GuestRead {
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>>;

    /// The `out.len()` bytes at `addr` into `out`; `false` (and `out` as it was) when they do
    /// not all map. The default goes through [`GuestRead::read`]; a reader that can lend its
    /// bytes overrides it, so that formatting allocates nothing.
    fn read_into(&self, addr: u64, out: &mut [u8]) -> bool {
        match self.read(addr, out.len()) {
            Some(b) if b.len() == out.len() => {
                out.copy_from_slice(&b);
                true
            }
            _ => false,
        }
    }
}

/// Longest string `%s` copies (the kernel's per-conversion buffer).
const MAX_STR: usize = 512;

/// The most bytes of one line the kernel keeps: it formats into a buffer of
/// `MAX_BPRINTF_BUF` (1024) bytes, NUL included, and the helper returns the length the whole
/// line would have had.
pub const MAX_LINE: usize = 1023;

#[derive(Default)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    width: usize,
}

/// A line being formatted: the bytes kept (at most [`MAX_LINE`]) and the length of the whole
/// line, which a width may make longer than anything worth keeping.
struct Line<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    len: usize,
}

impl Line<'_> {
    fn room(&self) -> usize {
        MAX_LINE.saturating_sub(self.out.len() - self.start)
    }

    fn push(&mut self, b: u8) {
        self.len = self.len.saturating_add(1);
        if self.room() > 0 {
            self.out.push(b);
        }
    }

    /// `bytes` (UTF-8), cut at the end of the kept line before a character, not inside one.
    fn push_all(&mut self, bytes: &[u8]) {
        self.len = self.len.saturating_add(bytes.len());
        let mut n = bytes.len().min(self.room());
        while n < bytes.len() && n > 0 && bytes[n] & 0xc0 == 0x80 {
            n -= 1;
        }
        self.out.extend_from_slice(&bytes[..n]);
    }

    /// `bytes` that are not UTF-8, kept as `String::from_utf8_lossy` shows them but counted
    /// as they are: the helper returns the kernel's length, which copies bytes.
    fn push_lossy(&mut self, bytes: &[u8]) {
        let len = self.len;
        self.push_all(String::from_utf8_lossy(bytes).as_bytes());
        self.len = len.saturating_add(bytes.len());
    }

    /// `body` (one conversion's text) padded to the width as `spec` asks: zeros go after a
    /// sign, and only numbers get them.
    fn push_padded(&mut self, spec: &Spec, body: &[u8], numeric: bool) {
        let fill = spec.width.saturating_sub(body.len());
        if fill == 0 {
            return self.push_all(body);
        }
        if spec.left {
            self.push_all(body);
            return self.fill(b' ', fill);
        }
        if spec.zero && numeric {
            let signed = matches!(body.first(), Some(b'-' | b'+' | b' '));
            let (sign, digits) = body.split_at(usize::from(signed));
            self.push_all(sign);
            self.fill(b'0', fill);
            self.push_all(digits);
        } else {
            self.fill(b' ', fill);
            self.push_all(body);
        }
    }

    fn fill(&mut self, b: u8, n: usize) {
        self.len = self.len.saturating_add(n);
        let n = n.min(self.room());
        self.out.resize(self.out.len() + n, b);
    }
}

/// Up to 24 bytes of text built on the stack: a number, an address, a character.
struct Small {
    buf: [u8; 24],
    len: usize,
}

impl Small {
    fn new() -> Small {
        Small {
            buf: [0; 24],
            len: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// `v` in `base` (10 or 16), at least `min` digits.
    fn number(&mut self, mut v: u64, base: u64, upper: bool, min: usize) {
        let digits = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let mut tmp = [0u8; 20];
        let mut n = 0;
        while v > 0 || n < min.max(1) {
            tmp[n] = digits[(v % base) as usize];
            v /= base;
            n += 1;
        }
        for &d in tmp[..n].iter().rev() {
            self.push(d);
        }
    }

    fn signed(&mut self, spec: &Spec, v: i64) {
        if v < 0 {
            self.push(b'-');
        } else if spec.plus {
            self.push(b'+');
        } else if spec.space {
            self.push(b' ');
        }
        self.number(v.unsigned_abs(), 10, false, 1);
    }
}

/// The NUL-terminated string at `addr` into `buf`, read byte-wise up to the first NUL (the
/// string may end right at a region's end); returns its length.
fn c_string(mem: &dyn GuestRead, addr: u64, buf: &mut [u8; MAX_STR]) -> usize {
    let mut n = 0;
    while n < MAX_STR - 1 {
        let mut b = [0u8];
        if !mem.read_into(addr.wrapping_add(n as u64), &mut b) || b[0] == 0 {
            break;
        }
        buf[n] = b[0];
        n += 1;
    }
    n
}

/// The text of a string argument: its bytes, with what is not UTF-8 replaced as
/// `String::from_utf8_lossy` does.
fn push_string(line: &mut Line<'_>, spec: &Spec, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(_) => line.push_padded(spec, bytes, false),
        // Not UTF-8 (bytes from guest memory): rare, allowed to allocate.
        Err(_) => line.push_padded(spec, String::from_utf8_lossy(bytes).as_bytes(), false),
    }
}

/// Format `fmt` (the bytes the program passed, including the NUL) with up to `max_args` args.
pub fn format(
    fmt: &[u8],
    args: &[u64],
    max_args: usize,
    mem: &dyn GuestRead,
) -> Result<String, PrintkError> {
    let mut out = Vec::new();
    format_into(&mut out, fmt, args, max_args, mem)?;
    // Only ASCII and whole UTF-8 sequences are ever written.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// [`format()`] appending the line's bytes (UTF-8) to `out`, so that a caller formatting many
/// lines can reuse one buffer: nothing is allocated but `out`'s growth (and a copy of a string
/// argument that is not UTF-8). At most [`MAX_LINE`] bytes are appended, as the kernel keeps;
/// returns the length of the whole line, the helper's return value. On an error `out` may hold
/// part of the line.
pub fn format_into(
    out: &mut Vec<u8>,
    fmt: &[u8],
    args: &[u64],
    max_args: usize,
    mem: &dyn GuestRead,
) -> Result<usize, PrintkError> {
    // `CStr` finds the NUL a word at a time: the format is often most of the bytes looked at.
    let fmt = std::ffi::CStr::from_bytes_until_nul(fmt)
        .map_err(|_| PrintkError::Unterminated)?
        .to_bytes();
    let start = out.len();
    let mut line = Line { out, start, len: 0 };
    let mut next_arg = 0usize;
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        if !printable(c) {
            return Err(PrintkError::NonPrintable(c));
        }
        if c != b'%' {
            // The run of plain text up to the next conversion, at once.
            let run = fmt[i..]
                .iter()
                .position(|&b| b == b'%' || !printable(b))
                .unwrap_or(fmt.len() - i);
            let text = &fmt[i..i + run];
            if text.is_ascii() || std::str::from_utf8(text).is_ok() {
                line.push_all(text);
            } else {
                line.push_lossy(text);
            }
            i += run;
            continue;
        }
        let start = i;
        i += 1;
        if fmt.get(i) == Some(&b'%') {
            line.push(b'%');
            i += 1;
            continue;
        }
        if next_arg >= max_args {
            return Err(PrintkError::TooManyArgs(max_args));
        }
        let mut spec = Spec::default();
        while let Some(&f) = fmt.get(i) {
            match f {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        while let Some(d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
            spec.width = spec
                .width
                .saturating_mul(10)
                .saturating_add((d - b'0') as usize);
            i += 1;
        }
        let arg = args.get(next_arg).copied().unwrap_or(0);
        next_arg += 1;
        let unsupported = |to: usize| {
            PrintkError::Unsupported(
                String::from_utf8_lossy(&fmt[start + 1..to.min(fmt.len())]).into_owned(),
            )
        };
        match fmt.get(i).copied() {
            Some(b'c') => {
                i += 1;
                let mut s = Small::new();
                let c = arg as u8;
                // As a `char`: bytes above 0x7f are that code point, two bytes of UTF-8.
                let mut utf8 = [0u8; 4];
                for &b in (c as char).encode_utf8(&mut utf8).as_bytes() {
                    s.push(b);
                }
                line.push_padded(&spec, s.bytes(), false);
            }
            Some(b's') => {
                i += 1;
                if !ends_string(fmt.get(i)) {
                    return Err(unsupported(i + 1));
                }
                let mut buf = [0u8; MAX_STR];
                let n = c_string(mem, arg, &mut buf);
                push_string(&mut line, &spec, &buf[..n]);
            }
            Some(b'p') => {
                i += 1;
                let used = pointer(&mut line, &spec, &fmt[i..], arg, mem)
                    .ok_or_else(|| unsupported(i + 2))?;
                i += used;
            }
            _ => {
                let mut long = 0;
                while fmt.get(i) == Some(&b'l') && long < 2 {
                    long += 1;
                    i += 1;
                }
                let v = if long > 0 { arg } else { arg as u32 as u64 };
                let mut s = Small::new();
                match fmt.get(i) {
                    Some(b'd' | b'i') if long > 0 => s.signed(&spec, v as i64),
                    Some(b'd' | b'i') => s.signed(&spec, v as u32 as i32 as i64),
                    Some(b'u') => s.number(v, 10, false, 1),
                    Some(b'x') => s.number(v, 16, false, 1),
                    Some(b'X') => s.number(v, 16, true, 1),
                    _ => return Err(unsupported(i + 1)),
                }
                i += 1;
                line.push_padded(&spec, s.bytes(), true);
            }
        }
    }
    Ok(line.len)
}

/// A `%p` conversion after the `p`, written to `line`: how many format bytes it used beyond
/// `p`, or `None` (nothing written) for an extension the kernel refuses. Like the kernel's
/// vsprintf, a pointer conversion swallows every alphanumeric character after its extension
/// (`%pI4x` prints the address and no `x`).
fn pointer(
    line: &mut Line<'_>,
    spec: &Spec,
    rest: &[u8],
    ptr: u64,
    mem: &dyn GuestRead,
) -> Option<usize> {
    // An address's bytes, zeros where they do not map.
    let ip = |buf: &mut [u8]| {
        if !mem.read_into(ptr, buf) {
            buf.fill(0);
        }
    };
    let mut s = Small::new();
    let used = match rest {
        // The kernel hashes %p and %pK; a simulator has no secret to hide and prints the value.
        [b'K' | b'x', ..] => {
            s.number(ptr, 16, false, 16);
            1
        }
        // Symbol lookups: a simulated address is never a kernel symbol, which prints as hex.
        [b'S' | b's' | b'B', ..] => {
            s.push(b'0');
            s.push(b'x');
            s.number(ptr, 16, false, 1);
            1
        }
        [b'k' | b'u', b's', ..] => {
            if !ends_string(rest.get(2)) {
                return None;
            }
            let mut buf = [0u8; MAX_STR];
            let n = c_string(mem, ptr, &mut buf);
            push_string(line, spec, &buf[..n]);
            return Some(2);
        }
        [b'I' | b'i', b'4', ..] => {
            let mut a = [0u8; 4];
            ip(&mut a);
            let wide = rest[0] == b'i';
            let mut t = Small::new();
            for (k, &b) in a.iter().enumerate() {
                if k > 0 {
                    t.push(b'.');
                }
                t.number(b as u64, 10, false, if wide { 3 } else { 1 });
            }
            line.push_padded(spec, t.bytes(), false);
            return Some(2 + swallowed(&rest[2..]));
        }
        [b'I' | b'i', b'6', ..] => {
            let mut a = [0u8; 16];
            ip(&mut a);
            // 39 bytes at most: longer than `Small`, so built here.
            let mut t = [0u8; 39];
            let mut n = 0;
            for (k, &b) in a.iter().enumerate() {
                if rest[0] == b'I' && k > 0 && k % 2 == 0 {
                    t[n] = b':';
                    n += 1;
                }
                t[n] = HEX[(b >> 4) as usize];
                t[n + 1] = HEX[(b & 15) as usize];
                n += 2;
            }
            line.push_padded(spec, &t[..n], false);
            return Some(2 + swallowed(&rest[2..]));
        }
        // Other extensions (%pa, %pf, ...) are refused by the kernel for BPF.
        [c, ..] if c.is_ascii_alphanumeric() => return None,
        _ => {
            s.number(ptr, 16, false, 16);
            0
        }
    };
    line.push_padded(spec, s.bytes(), false);
    Some(used + swallowed(&rest[used..]))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How many alphanumeric characters follow a pointer conversion's extension.
/// C's `isspace`: Rust's `is_ascii_whitespace` without the vertical tab.
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A byte the kernel takes in a format: printable ASCII, a space, or any byte past ASCII (the
/// 6.18 kernel takes all of 0x80-0xff, so UTF-8 text prints; older kernels refused them).
fn printable(b: u8) -> bool {
    b >= 0x80 || b.is_ascii_graphic() || c_space(b)
}

/// Whether the byte after a string conversion (`%s`, `%pks`, `%pus`; `None` at the format's
/// end) is one the kernel lets follow it: the end, or a space or punctuation character by the
/// kernel's Latin-1 `ctype` (0xa0 a space; 0xa1-0xbf, 0xd7 and 0xf7 punctuation). A letter or
/// digit there is refused (`-EINVAL`), so that no format can read as `%sx`.
fn ends_string(next: Option<&u8>) -> bool {
    next.is_none_or(|&b| {
        c_space(b) || b.is_ascii_punctuation() || matches!(b, 0xa0..=0xbf | 0xd7 | 0xf7)
    })
}

fn swallowed(rest: &[u8]) -> usize {
    rest.iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(Vec<u8>);

    impl GuestRead for Mem {
        fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            let a = addr as usize;
            self.0.get(a..a.checked_add(len)?).map(<[u8]>::to_vec)
        }
    }

    fn f(fmt: &str, args: &[u64]) -> Result<String, PrintkError> {
        let mem = Mem(b"\x00hello\x00\x0a\x01\x02\x03".to_vec());
        format(format!("{fmt}\0").as_bytes(), args, 3, &mem)
    }

    #[test]
    fn integers_and_widths() {
        assert_eq!(f("n=%d", &[(-5i64) as u64]).unwrap(), "n=-5");
        assert_eq!(
            f("%u %x %X", &[0x1_0000_0001, 255, 255]).unwrap(),
            "1 ff FF"
        );
        assert_eq!(
            f("%llu %lld", &[u64::MAX, u64::MAX]).unwrap(),
            "18446744073709551615 -1"
        );
        assert_eq!(f("%llx", &[0xdead_beef_0000]).unwrap(), "deadbeef0000");
        assert_eq!(
            f("[%5d][%-4u][%05d]", &[42, 7, (-42i64) as u64]).unwrap(),
            "[   42][7   ][-0042]"
        );
        assert_eq!(f("[%+d][% d]", &[0, 3]).unwrap(), "[+0][ 3]");
        assert_eq!(f("100%%", &[]).unwrap(), "100%");
        assert_eq!(f("%c%c", &[b'o' as u64, b'k' as u64]).unwrap(), "ok");
    }

    #[test]
    fn strings_and_addresses() {
        assert_eq!(f("%s!", &[1]).unwrap(), "hello!");
        assert_eq!(f("%pI4 %pi4", &[7, 7]).unwrap(), "10.1.2.3 010.001.002.003");
        assert_eq!(
            f("[%s]", &[1000]).unwrap(),
            "[]",
            "a bad pointer prints nothing"
        );
    }

    #[test]
    fn kernel_refusals() {
        assert_eq!(
            f("%d %d %d %d", &[1, 2, 3, 4]),
            Err(PrintkError::TooManyArgs(3))
        );
        assert_eq!(f("%f", &[1]), Err(PrintkError::Unsupported("f".into())));
        assert_eq!(f("%pa", &[1]), Err(PrintkError::Unsupported("pa".into())));
        assert!(f("%zu", &[1]).is_err() && f("%#x", &[1]).is_err() && f("%5%", &[1]).is_err());
        assert_eq!(
            format(b"no nul", &[], 3, &Mem(vec![])),
            Err(PrintkError::Unterminated)
        );
        assert_eq!(
            format(b"\x07\0", &[], 3, &Mem(vec![])),
            Err(PrintkError::NonPrintable(7))
        );
        // A string conversion followed by a letter or digit (ASCII or Latin-1), not by the
        // end, a space (the vertical tab one) or punctuation (Latin-1's too).
        for bad in ["%sx", "%s1", "%pksa", "%pus9"] {
            assert!(f(bad, &[1]).is_err(), "{bad}");
        }
        assert_eq!(f("%s_x", &[1]).unwrap(), "hello_x");
        assert!(format(b"%s\xc3\0", &[1], 3, &Mem(vec![])).is_err());
        for ok in [
            &b"%s\0"[..],
            b"%s.\0",
            b"%s \0",
            b"%s\x0b\0",
            b"%s\xa9\0",
            b"%pks:\0",
        ] {
            assert!(format(ok, &[1], 3, &Mem(vec![])).is_ok(), "{ok:?}");
        }
    }

    /// Bytes past ASCII are text (the 6.18 kernel's rule), shown lossily where not UTF-8 but
    /// counted as bytes in the length the helper returns.
    #[test]
    fn bytes_past_ascii() {
        assert_eq!(f("caf\u{e9} %d", &[7]).unwrap(), "caf\u{e9} 7");
        let mut out = Vec::new();
        let n = format_into(&mut out, b"a\x80\xffb\0", &[], 3, &Mem(vec![])).unwrap();
        assert_eq!(n, 4, "the kernel's length: four bytes");
        assert_eq!(String::from_utf8(out).unwrap(), "a\u{fffd}\u{fffd}b");
    }
}
