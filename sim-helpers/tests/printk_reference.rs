//! `bpf_trace_printk`'s formatting checked against the formatter it replaced (kept here as
//! the reference: it built each conversion as a `String` with `std::fmt`), on generated formats
//! and arguments: the text, the length and every refusal must be the same. Both are checked
//! against the kernel's trace buffer by `kernel/tests/printk.rs`.

use bpfsim_helpers::helpers::printk::{format, format_into, GuestRead, PrintkError, MAX_LINE};
use proptest::prelude::*;

mod reference {
    use super::{GuestRead, PrintkError};

    /// Longest string `%s` copies (the kernel's per-conversion buffer).
    const MAX_STR: usize = 512;

    #[derive(Default)]
    struct Spec {
        left: bool,
        zero: bool,
        plus: bool,
        space: bool,
        width: usize,
    }

    impl Spec {
        fn pad(&self, body: String, numeric: bool) -> String {
            if body.len() >= self.width {
                return body;
            }
            let fill = self.width - body.len();
            if self.left {
                body + &" ".repeat(fill)
            } else if self.zero && numeric {
                let (sign, digits) = match body.strip_prefix(['-', '+', ' ']) {
                    Some(d) => (&body[..1], d),
                    None => ("", body.as_str()),
                };
                format!("{sign}{}{digits}", "0".repeat(fill))
            } else {
                " ".repeat(fill) + &body
            }
        }

        fn signed(&self, v: i64) -> String {
            let s = v.to_string();
            if v >= 0 && self.plus {
                format!("+{s}")
            } else if v >= 0 && self.space {
                format!(" {s}")
            } else {
                s
            }
        }
    }

    /// The kernel lets only the end, a space or punctuation follow a string conversion (in
    /// ASCII: the formats generated here are ASCII).
    fn ends_string(next: Option<&u8>) -> bool {
        next.is_none_or(|&b| b.is_ascii_whitespace() || b == 0x0b || b.is_ascii_punctuation())
    }

    fn c_string(mem: &dyn GuestRead, addr: u64) -> Vec<u8> {
        // Read byte-wise up to the first NUL: the string may end right at a region's end.
        let mut out = Vec::new();
        while out.len() < MAX_STR - 1 {
            match mem.read(addr.wrapping_add(out.len() as u64), 1) {
                Some(b) if b[0] != 0 => out.push(b[0]),
                _ => break,
            }
        }
        out
    }

    /// Format `fmt` (the bytes the program passed, including the NUL) with up to `max_args` args.
    pub fn format(
        fmt: &[u8],
        args: &[u64],
        max_args: usize,
        mem: &dyn GuestRead,
    ) -> Result<String, PrintkError> {
        let end = fmt
            .iter()
            .position(|&b| b == 0)
            .ok_or(PrintkError::Unterminated)?;
        let fmt = &fmt[..end];
        let mut out = String::new();
        let mut next_arg = 0usize;
        let mut i = 0;
        while i < fmt.len() {
            let c = fmt[i];
            if !(c.is_ascii_graphic() || c.is_ascii_whitespace()) {
                return Err(PrintkError::NonPrintable(c));
            }
            if c != b'%' {
                out.push(c as char);
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            if fmt.get(i) == Some(&b'%') {
                out.push('%');
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
            let conv = fmt.get(i).copied();
            let body = match conv {
                Some(b'c') => {
                    i += 1;
                    spec.pad(((arg as u8) as char).to_string(), false)
                }
                Some(b's') => {
                    i += 1;
                    if !ends_string(fmt.get(i)) {
                        return Err(PrintkError::Unsupported(
                            String::from_utf8_lossy(&fmt[start + 1..i + 1]).into_owned(),
                        ));
                    }
                    spec.pad(
                        String::from_utf8_lossy(&c_string(mem, arg)).into_owned(),
                        false,
                    )
                }
                Some(b'p') => {
                    i += 1;
                    let (text, used) =
                        pointer(&fmt[i..], arg, mem).ok_or_else(|| unsupported(i + 2))?;
                    i += used;
                    spec.pad(text, false)
                }
                _ => {
                    let mut long = 0;
                    while fmt.get(i) == Some(&b'l') && long < 2 {
                        long += 1;
                        i += 1;
                    }
                    let v = if long > 0 { arg } else { arg as u32 as u64 };
                    let text = match fmt.get(i) {
                        Some(b'd' | b'i') if long > 0 => spec.signed(v as i64),
                        Some(b'd' | b'i') => spec.signed(v as u32 as i32 as i64),
                        Some(b'u') => v.to_string(),
                        Some(b'x') => format!("{v:x}"),
                        Some(b'X') => format!("{v:X}"),
                        _ => return Err(unsupported(i + 1)),
                    };
                    i += 1;
                    spec.pad(text, true)
                }
            };
            out.push_str(&body);
        }
        Ok(out)
    }

    /// A `%p` conversion after the `p`: the text and how many format bytes it used beyond `p`.
    /// Like the kernel's vsprintf, a pointer conversion swallows every alphanumeric character after
    /// its extension (`%pI4x` prints the address and no `x`).
    fn pointer(rest: &[u8], ptr: u64, mem: &dyn GuestRead) -> Option<(String, usize)> {
        let ip = |len: usize| mem.read(ptr, len).unwrap_or_else(|| vec![0; len]);
        let (text, used) = match rest {
            // The kernel hashes %p and %pK; a simulator has no secret to hide and prints the value.
            [b'K' | b'x', ..] => (format!("{ptr:016x}"), 1),
            // Symbol lookups: a simulated address is never a kernel symbol, which prints as hex.
            [b'S' | b's' | b'B', ..] => (format!("{ptr:#x}"), 1),
            [b'k' | b'u', b's', rest @ ..] => {
                if !ends_string(rest.first()) {
                    return None;
                }
                (String::from_utf8_lossy(&c_string(mem, ptr)).into_owned(), 2)
            }
            [b'I', b'4', ..] => {
                let a = ip(4);
                (format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]), 2)
            }
            [b'i', b'4', ..] => {
                let a = ip(4);
                (
                    format!("{:03}.{:03}.{:03}.{:03}", a[0], a[1], a[2], a[3]),
                    2,
                )
            }
            [b'I', b'6', ..] => {
                let a = ip(16);
                let groups: Vec<String> = a
                    .chunks(2)
                    .map(|g| format!("{:02x}{:02x}", g[0], g[1]))
                    .collect();
                (groups.join(":"), 2)
            }
            [b'i', b'6', ..] => {
                let a = ip(16);
                (a.iter().map(|b| format!("{b:02x}")).collect(), 2)
            }
            // Other extensions (%pa, %pf, ...) are refused by the kernel for BPF.
            [c, ..] if c.is_ascii_alphanumeric() => return None,
            _ => (format!("{ptr:016x}"), 0),
        };
        let skipped = rest[used..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        Some((text, used + skipped))
    }
}

/// Guest memory: a string, an address and bytes that are not UTF-8, at 0x1000.
struct Mem(Vec<u8>);

const BASE: u64 = 0x1000;

impl GuestRead for Mem {
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let a = usize::try_from(addr.checked_sub(BASE)?).ok()?;
        self.0.get(a..a.checked_add(len)?).map(<[u8]>::to_vec)
    }
}

fn mem() -> Mem {
    let mut m = b"hello\0\x0a\x01\x02\x03world, of\xff\xfe bytes\xc3\xa9\0".to_vec();
    m.extend((0..40u8).map(|i| i.wrapping_mul(7)));
    Mem(m)
}

/// One piece of a format: text, or a conversion with flags and a width.
fn piece() -> impl Strategy<Value = String> {
    let conv = prop::sample::select(vec![
        "d", "i", "u", "x", "X", "ld", "lld", "lu", "llx", "lX", "lli", "c", "s", "p", "pK", "px",
        "pS", "ps", "pB", "pks", "pus", "pI4", "pi4", "pI6", "pi6", "pI4x", "pa", "f", "%", "zu",
        "5%", "lllx", "q",
    ]);
    let flags = prop::collection::vec(prop::sample::select(vec!["-", "0", "+", " "]), 0..3);
    let text = prop::sample::select(vec!["a", " ", "ip=", "->", ":", "[", "]", "\n", "\t", "~"]);
    prop_oneof![
        text.prop_map(str::to_string),
        (flags, prop::option::of(0usize..40), conv).prop_map(|(f, w, c)| {
            format!(
                "%{}{}{c}",
                f.concat(),
                w.map(|w| w.to_string()).unwrap_or_default()
            )
        }),
    ]
}

/// Arguments: small and extreme numbers, and addresses in and out of the memory.
fn arg() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..300,
        prop::sample::select(vec![
            0,
            u64::MAX,
            i64::MIN as u64,
            i32::MIN as u32 as u64,
            0x8000_0000,
            BASE,
            BASE + 6,
            BASE + 10,
            BASE + 22,
            BASE + 40,
            BASE + 95,
            7,
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn formats_as_the_formatter_it_replaced(
        pieces in prop::collection::vec(piece(), 0..8),
        args in prop::collection::vec(arg(), 0..13),
        max_args in prop::sample::select(vec![3usize, 12]),
    ) {
        let mut fmt = pieces.concat().into_bytes();
        fmt.push(0);
        let m = mem();
        let want = reference::format(&fmt, &args, max_args, &m);
        prop_assert_eq!(&format(&fmt, &args, max_args, &m), &want);
        // Appended after what the buffer holds, with the line's length returned.
        let mut buf = b"before|".to_vec();
        let got = format_into(&mut buf, &fmt, &args, max_args, &m);
        match (&want, got) {
            (Ok(line), Ok(n)) => {
                prop_assert_eq!(n, line.len());
                prop_assert_eq!(&buf[7..], line.as_bytes());
            }
            (Err(e), Err(g)) => prop_assert_eq!(e, &g),
            (w, g) => prop_assert!(false, "{:?} then {:?}", w, g),
        }
    }
}

#[test]
fn lines_are_cut_where_the_kernels_buffer_ends() {
    let m = mem();
    // A width past the buffer: the line keeps MAX_LINE bytes, the length counts them all.
    let mut buf = Vec::new();
    let n = format_into(&mut buf, b"[%1500d]\0", &[7], 3, &m).unwrap();
    assert_eq!(n, 1502);
    assert_eq!(buf.len(), MAX_LINE);
    assert!(buf.starts_with(b"[   ") && buf.iter().skip(1).all(|&b| b == b' '));
    let n = format_into(&mut Vec::new(), b"%-1100s|\0", &[BASE], 3, &m).unwrap();
    assert_eq!(n, 1101);
    // Absurd widths neither allocate them nor overflow.
    let mut buf = Vec::new();
    let n = format_into(&mut buf, b"%99999999999999999999999d%5d\0", &[1, 2], 3, &m).unwrap();
    assert_eq!((n, buf.len()), (usize::MAX, MAX_LINE));
    assert_eq!(
        format("%05000x\0".as_bytes(), &[0xab], 3, &m)
            .unwrap()
            .len(),
        MAX_LINE
    );
    // A multi-byte character is never cut in two.
    let fmt = format!("{}%c\0", "x".repeat(MAX_LINE - 1));
    let line = format(fmt.as_bytes(), &[0xe9], 3, &m).unwrap();
    assert_eq!(line, "x".repeat(MAX_LINE - 1));
    // The rules hold on a line that was cut: a bad conversion later is still refused.
    let fmt = format!("%2000d{}%f\0", "y".repeat(10));
    assert_eq!(
        format(fmt.as_bytes(), &[1, 2], 3, &m),
        Err(PrintkError::Unsupported("f".into()))
    );
}
