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

/// Whether Cranelift appends its own line per function to the same map
/// (`PERF_BUILDID_DIR` set, as `perf record` does). Read once, as Cranelift reads it per module.
pub(crate) fn cranelift_writes() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PERF_BUILDID_DIR").is_some())
}

/// Empty a map file an earlier process with this process's pid left (pids are reused; perf
/// would name this process's code after that process's lines), once per process, before this
/// process's first line: every compile that may write a line calls it first.
pub(crate) fn claim() {
    static CLAIMED: std::sync::Once = std::sync::Once::new();
    CLAIMED.call_once(|| truncate_existing(&path()));
}

/// Truncate `path` if it exists; create nothing (a process that never writes a line leaves no
/// file behind). Errors are left to the first append, which reports them.
fn truncate_existing(path: &std::path::Path) {
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path);
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
    fn a_stale_map_is_emptied_and_none_is_created() {
        let dir = std::env::temp_dir().join(format!("bpfsim-perf-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stale = dir.join("stale.map");
        std::fs::write(&stale, "1000 10 bpf_jit:someone_else\n").unwrap();
        truncate_existing(&stale);
        assert_eq!(std::fs::read_to_string(&stale).unwrap(), "");
        let none = dir.join("none.map");
        truncate_existing(&none);
        assert!(!none.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_is_hex_without_prefix_and_one_line() {
        assert_eq!(
            line(0x7f00_1234_5000, 0x1a0, &symbol("xdp_pass")),
            "7f0012345000 1a0 bpf_jit:xdp_pass\n"
        );
        assert_eq!(line(16, 1, &symbol("a\nb")), "10 1 bpf_jit:a_b\n");
    }
}
