//! `bpf_trace_printk` formatting against the live kernel: each case is printed by a real XDP
//! program, read back from the trace buffer, and compared with `bpfsim_helpers::helpers::printk`.

use bpfsim_helpers::helpers::printk::{format, format_into, GuestRead};
use bpfsim_kernel::{KernelBpf, ProgType};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::isa::encode;

const TRACE: &str = "/sys/kernel/tracing/trace";

struct NoMem;

impl GuestRead for NoMem {
    fn read(&self, _: u64, _: usize) -> Option<Vec<u8>> {
        None
    }
}

/// A program that puts `fmt` (NUL-padded to 8 bytes) on the stack and prints it with `args`.
fn program(fmt: &[u8], args: &[u64], return_helper_result: bool) -> Vec<u8> {
    let mut bytes = fmt.to_vec();
    bytes.push(0);
    while bytes.len() % 8 != 0 {
        bytes.push(0);
    }
    let n = bytes.len() as i64;
    let mut src = String::new();
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().unwrap());
        src += &format!(
            "lddw %r1, {word:#x}\nstxdw [%r10{:+}], %r1\n",
            -n + 8 * i as i64
        );
    }
    src += &format!(
        "mov %r1, %r10\nadd %r1, {}\nmov %r2, {}\n",
        -n,
        fmt.len() + 1
    );
    for (i, a) in args.iter().enumerate() {
        src += &format!("lddw %r{}, {a:#x}\n", 3 + i);
    }
    src += if return_helper_result {
        "call 6\nexit\n"
    } else {
        "call 6\nmov %r0, 2\nexit\n"
    };
    encode(&assemble(&src).unwrap())
}

/// The messages of the trace buffer's `bpf_trace_printk:` lines.
fn trace_messages() -> Vec<String> {
    std::fs::read_to_string(TRACE)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once("bpf_trace_printk: ")
                .map(|(_, m)| m.to_string())
        })
        .collect()
}

#[test]
fn trace_printk_formats_like_the_kernel() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    if std::fs::write(TRACE, "").is_err() {
        return println!("skipped: cannot clear {TRACE} (tracefs not mounted or not writable)");
    }
    let cases: &[(&str, &[u64])] = &[
        ("plain text", &[]),
        ("n=%d", &[(-5i64) as u64]),
        ("%d low half", &[0x1_ffff_fffe]),
        ("%u %x %X", &[0x1_0000_0001, 255, 255]),
        ("%llu %lld", &[u64::MAX, u64::MAX]),
        ("%lx %llx", &[0xdead_beef_0000, 1]),
        ("[%5d][%-4u][%05d]", &[42, 7, (-42i64) as u64]),
        ("[%+d][% d]", &[0, 3]),
        ("100%% %c%c", &[b'o' as u64, b'k' as u64]),
        ("%i|%li", &[(-1i64) as u64, (-1i64) as u64]),
        // Pointer conversions on an address that maps nothing in the kernel.
        ("%pS %pB %px", &[0x1234, 0x1234, 0x1234]),
        ("[%pI4x] [%pi6]", &[0x10, 0x10]),
        ("[%5s] [%pks] [%-5c]", &[0x10, 0x10, b'4' as u64]),
        // Longer than the kernel's 1024-byte buffer: the line is cut.
        ("[%1500d]", &[7]),
    ];
    let mut expected = Vec::new();
    for (fmt, args) in cases {
        let prog = kernel
            .prog_load(
                ProgType::XDP,
                &program(fmt.as_bytes(), args, false),
                "GPL",
                1,
            )
            .unwrap_or_else(|e| panic!("{fmt}: {e}"));
        let out = kernel.test_run(&prog, &[0u8; 64], 1).unwrap();
        assert_eq!(
            out.retval, 2,
            "{fmt}: the helper must not have failed the program"
        );
        let mut with_nul = fmt.as_bytes().to_vec();
        with_nul.push(0);
        expected.push(format(&with_nul, args, 3, &NoMem).unwrap());
    }
    // Formats the kernel refuses: the helper returns -EINVAL, and ours refuses them too.
    for (fmt, args) in [
        ("%f", &[1u64][..]),
        ("%d %d %d %d", &[1, 2, 3]),
        ("%pa", &[1]),
        ("%5.2d", &[1]),
        ("%zu", &[1]),
        ("%#x", &[1]),
        ("%5%", &[1]),
    ] {
        let prog = kernel
            .prog_load(
                ProgType::XDP,
                &program(fmt.as_bytes(), args, true),
                "GPL",
                1,
            )
            .unwrap();
        let out = kernel.test_run(&prog, &[0u8; 64], 1).unwrap();
        assert_eq!(out.retval as i32, -22, "{fmt}: kernel returns -EINVAL");
        let mut with_nul = fmt.as_bytes().to_vec();
        with_nul.push(0);
        assert!(
            format(&with_nul, args, 3, &NoMem).is_err(),
            "{fmt}: ours must refuse it too"
        );
    }
    let got = trace_messages();
    let _ = std::fs::write(TRACE, "");
    if got.len() != expected.len() {
        // Another tracer user may have interleaved lines; only compare a clean capture.
        return println!(
            "skipped: trace buffer held {} printk lines, expected {}",
            got.len(),
            expected.len()
        );
    }
    assert_eq!(got, expected);
    println!("trace_printk: {} formats agree with the kernel", got.len());
}

/// The helper returns the length of the whole line, whether or not the kernel's 1024-byte
/// buffer cut it (no trace buffer needed).
#[test]
fn trace_printk_returns_the_whole_lines_length() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    for (fmt, args) in [
        ("%u|%x", &[7u64, 255][..]),
        ("[%1500d]", &[7]),
        ("%-1100d|%5u", &[7, 3]),
    ] {
        let prog = kernel
            .prog_load(
                ProgType::XDP,
                &program(fmt.as_bytes(), args, true),
                "GPL",
                1,
            )
            .unwrap();
        let out = kernel.test_run(&prog, &[0u8; 64], 1).unwrap();
        let mut with_nul = fmt.as_bytes().to_vec();
        with_nul.push(0);
        let n = format_into(&mut Vec::new(), &with_nul, args, 3, &NoMem).unwrap();
        assert_eq!(out.retval as usize, n, "{fmt}");
    }
}

/// What the kernel refuses or accepts around a string conversion and in the format's bytes
/// (checked before anything is printed, so no trace buffer is needed): a `%s`, `%pks` or
/// `%pus` followed by anything but the end, a space or a punctuation character, and a byte that
/// is neither printable ASCII nor a space, are `-EINVAL`; ours answers each the same way.
#[test]
fn trace_printk_refuses_what_the_kernel_refuses() {
    let kernel = match KernelBpf::probe() {
        Ok(k) => k,
        Err(e) => return println!("skipped: {e}"),
    };
    let mut compared = 0;
    for fmt in [
        &b"%s"[..],
        b"%sx",
        b"%s1",
        b"%s_",
        b"%s.",
        b"%s ",
        b"[%5s]",
        b"%s\t",
        b"%pks",
        b"%pksa",
        b"%pks:",
        b"%pus9",
        b"%pI4x",
        b"%pKx",
        b"%pSx",
        b"%c1",
        b"%dx",
        b"a\x01b",
        b"a\x7fb",
        b"a\xc3\xa9",
        b"a\x80\xffb",
        b"tab\there\n",
        b"\r\x0b\x0c",
        b"%s\x0b",
        b"%s\xa0",
        b"%s\xa9",
        b"%s\xc3",
        b"%s\xd7",
        b"%s\xf7",
        b"%s\xff",
        b"%pks\xbf",
        b"%pus\xe9",
    ] {
        let prog = kernel
            .prog_load(
                ProgType::XDP,
                &program(fmt, &[0x10, 0x10, 0x10], true),
                "GPL",
                1,
            )
            .unwrap();
        let k = kernel.test_run(&prog, &[0u8; 64], 1).unwrap().retval as i32;
        let mut with_nul = fmt.to_vec();
        with_nul.push(0);
        let ours = format_into(&mut Vec::new(), &with_nul, &[0x10, 0x10, 0x10], 3, &NoMem);
        let show = String::from_utf8_lossy(fmt);
        match ours {
            Ok(n) => assert_eq!(k, n as i32, "{show:?}: ours printed {n} bytes"),
            Err(e) => assert_eq!(k, -22, "{show:?}: ours refused it ({e})"),
        }
        compared += 1;
    }
    println!("trace_printk: {compared} formats refused or accepted as the kernel does");
}
