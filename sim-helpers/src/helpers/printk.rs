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
}

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
        [b'k' | b'u', b's', ..] => (String::from_utf8_lossy(&c_string(mem, ptr)).into_owned(), 2),
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
    }
}
