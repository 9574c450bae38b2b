//! perf's map of JIT code (`tools/perf/Documentation/jit-interface.txt`): a process appends
//! `START SIZE name` lines (hex, no prefix) to `/tmp/perf-<pid>.map`, and `perf report` names
//! samples in those ranges after them instead of leaving them as unknown addresses.

use std::io::Write;

use crate::JitError;

/// Whether `BPFSIM_PERF_MAP=1` asks every compile of this process for a map line. Read once:
/// a compile takes milliseconds, but the variable is the process's setting, not a compile's.
pub(crate) fn from_env() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("BPFSIM_PERF_MAP").is_some_and(|v| v == "1"))
}

/// The map file perf reads for this process.
pub fn path() -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()))
}

/// The symbol of the code of program `name`: `bpf_jit:NAME`.
pub(crate) fn symbol(name: &str) -> String {
    // perf reads the name to the end of the line: a line break in it would start a bogus entry.
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    format!("bpf_jit:{name}")
}

/// The symbol of the function of the callback at `slot` of the program whose code is `main`
/// (`bpf_jit:NAME:cb_SLOT`).
pub(crate) fn callback_symbol(main: &str, slot: usize) -> String {
    format!("{main}:cb_{slot}")
}

/// The line for code of `size` bytes at `start` named `symbol`.
pub(crate) fn line(start: u64, size: usize, symbol: &str) -> String {
    format!("{start:x} {size:x} {symbol}\n")
}

/// Append the line for code of `size` bytes at `start` named `symbol` to this process's map.
pub(crate) fn append(start: u64, size: usize, symbol: &str) -> Result<(), JitError> {
    let path = path();
    let fail = |e: std::io::Error| JitError::PerfMap {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    // One write of the whole line to a file opened for appending: lines of compiles on other
    // threads never interleave within it.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line(start, size, symbol).as_bytes()))
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_hex_without_prefix_and_one_line() {
        assert_eq!(
            line(0x7f00_1234_5000, 0x1a0, &symbol("xdp_pass")),
            "7f0012345000 1a0 bpf_jit:xdp_pass\n"
        );
        assert_eq!(line(16, 1, &symbol("a\nb")), "10 1 bpf_jit:a_b\n");
    }
}
