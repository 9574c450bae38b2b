//! Errors of the bpf(2) wrapper.

use std::fmt;

/// A Linux errno value returned by bpf(2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const EINTR: Errno = Errno(4);
    pub const E2BIG: Errno = Errno(7);
    pub const EBADF: Errno = Errno(9);
    pub const EAGAIN: Errno = Errno(11);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const EFAULT: Errno = Errno(14);
    pub const EBUSY: Errno = Errno(16);
    pub const EINVAL: Errno = Errno(22);
    pub const ENOSPC: Errno = Errno(28);
    pub const ENOSYS: Errno = Errno(38);
    pub const EOPNOTSUPP: Errno = Errno(95);
    /// The kernel-internal `ENOTSUPP`, which some bpf(2) paths leak to userspace.
    pub const ENOTSUPP: Errno = Errno(524);

    /// The errno of the last failed system call of this thread.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The symbolic name (`EPERM`), when this crate knows it.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::EINTR => "EINTR",
            Errno::E2BIG => "E2BIG",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EINVAL => "EINVAL",
            Errno::ENOSPC => "ENOSPC",
            Errno::ENOSYS => "ENOSYS",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::ENOTSUPP => "ENOTSUPP",
            _ => return None,
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) if *self == Errno::ENOTSUPP => write!(f, "{n} (operation not supported)"),
            Some(n) => write!(
                f,
                "{n} ({})",
                std::io::Error::from_raw_os_error(self.0)
                    .to_string()
                    .split(" (os error")
                    .next()
                    .unwrap_or("")
            ),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "Errno({n})"),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

/// Why bpf(2) cannot be used here: a one-line human reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unavailable {
    pub reason: String,
}

impl Unavailable {
    pub fn new(reason: impl Into<String>) -> Unavailable {
        Unavailable {
            reason: reason.into(),
        }
    }
}

/// A failed `BPF_PROG_LOAD`: the errno of the first (log-less) attempt and the verifier log of
/// the retry (empty when the kernel wrote none).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("BPF_PROG_LOAD failed with {errno}{}", fmt_reason(self.reason()))]
pub struct LoadFailure {
    pub errno: Errno,
    pub log: String,
}

fn fmt_reason(r: Option<&str>) -> String {
    r.map(|r| format!(": {r}")).unwrap_or_default()
}

impl LoadFailure {
    /// The verifier log's last meaningful line: the error, without the statistics the verifier
    /// prints after it (`processed N insns ...`, `verification time ...`, `stack depth ...`).
    pub fn reason(&self) -> Option<&str> {
        last_meaningful_line(&self.log)
    }
}

/// The last line of a verifier log that is not blank and not one of the verifier's closing
/// statistics lines.
pub fn last_meaningful_line(log: &str) -> Option<&str> {
    log.lines().map(str::trim).rev().find(|l| {
        !l.is_empty()
            && !l.starts_with("processed ")
            && !l.starts_with("verification time ")
            && !l.starts_with("stack depth ")
            && !l.starts_with("mark_precise")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_display() {
        assert_eq!(Errno::EPERM.to_string(), "EPERM (Operation not permitted)");
        assert_eq!(Errno(1234).to_string(), "errno 1234");
        assert_eq!(format!("{:?}", Errno::EINVAL), "Errno(EINVAL)");
    }

    #[test]
    fn last_line_of_a_log() {
        let log = "func#0 @0\n0: R1=ctx() R10=fp0\n0: (95) exit\nR0 !read_ok\n\
                   processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 \
                   peak_states 0 mark_read 0\n\n";
        assert_eq!(last_meaningful_line(log), Some("R0 !read_ok"));
        assert_eq!(last_meaningful_line("\n \n"), None);
        let f = LoadFailure {
            errno: Errno::EACCES,
            log: log.to_string(),
        };
        assert_eq!(
            f.to_string(),
            "BPF_PROG_LOAD failed with EACCES (Permission denied): R0 !read_ok"
        );
    }
}
