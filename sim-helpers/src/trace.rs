//! Lines of `bpf_printk` output, kept in one buffer: a run's ([`crate::run::RunResult::trace`])
//! and the environment's ([`crate::Env::trace`]). A line is formatted straight into the buffer,
//! so that printing allocates nothing once the buffer has grown (a `String` per line was two
//! allocations per `bpf_printk`, a copy for the run and one for the environment, about half
//! of a printing program's run).

use std::fmt;

/// Lines of text, in order, in one buffer.
#[derive(Clone)]
pub struct TraceLines {
    /// Every line's bytes, one after another (UTF-8: each line is).
    text: Vec<u8>,
    /// Where each line ends in `text`.
    ends: Vec<usize>,
    /// The most bytes kept: past it the oldest lines are dropped ([`TraceLines::with_limit`]).
    limit: usize,
}

impl Default for TraceLines {
    fn default() -> Self {
        TraceLines {
            text: Vec::new(),
            ends: Vec::new(),
            limit: usize::MAX,
        }
    }
}

/// Lines are equal whatever their limits.
impl PartialEq for TraceLines {
    fn eq(&self, other: &TraceLines) -> bool {
        self.text == other.text && self.ends == other.ends
    }
}

impl Eq for TraceLines {}

/// The kernel's trace buffer per CPU by default (`buffer_size_kb`: 1408 KiB): what
/// [`crate::Env::trace`] keeps of the newest lines.
pub const TRACE_BUFFER_BYTES: usize = 1408 * 1024;

impl TraceLines {
    pub fn new() -> TraceLines {
        TraceLines::default()
    }

    /// Lines that keep at most about `bytes` bytes of text, the newest, as the kernel's trace
    /// buffer overwrites its oldest events: when a line takes them past `bytes`, the oldest
    /// lines are dropped until half of `bytes` or less is kept (so that dropping costs O(1) a
    /// byte), the newest line always kept. Without a limit ([`TraceLines::new`]) a long replay
    /// that prints would grow them without end (100 MB in a benchmark's minute), each new
    /// page a page fault: most of a printing run's time.
    pub fn with_limit(bytes: usize) -> TraceLines {
        TraceLines {
            limit: bytes,
            ..TraceLines::default()
        }
    }

    /// Drop the oldest lines as [`TraceLines::with_limit`] says.
    fn trim(&mut self) {
        if self.text.len() <= self.limit {
            return;
        }
        let cut = self.text.len() - self.limit / 2;
        let n = self
            .ends
            .partition_point(|&e| e <= cut)
            .min(self.ends.len().saturating_sub(1));
        if n == 0 {
            return;
        }
        let start = self.ends[n - 1];
        self.text.drain(..start);
        self.ends.drain(..n);
        for e in &mut self.ends {
            *e -= start;
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Line `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        // Every line was pushed as UTF-8 (`push`, or `push_formatted`'s contract), so this
        // never fails; were it to, the line would read as empty rather than panic.
        Some(std::str::from_utf8(&self.text[start..end]).unwrap_or_default())
    }

    pub fn last(&self) -> Option<&str> {
        self.get(self.len().checked_sub(1)?)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }

    pub fn push(&mut self, line: &str) {
        self.text.extend_from_slice(line.as_bytes());
        self.ends.push(self.text.len());
        self.trim();
    }

    /// A line `write` appends to the buffer it is given (which holds the lines before it):
    /// kept when `write` succeeds, dropped (the lines left as they were) when it fails.
    /// `write` must append UTF-8.
    pub(crate) fn push_formatted<T, E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<T, E>,
    ) -> Result<T, E> {
        let start = self.text.len();
        match write(&mut self.text) {
            Ok(x) => {
                self.ends.push(self.text.len());
                self.trim();
                Ok(x)
            }
            Err(e) => {
                self.text.truncate(start);
                Err(e)
            }
        }
    }

    /// The last line of `other`, copied as it is (not read as a `str` first).
    pub(crate) fn push_last_of(&mut self, other: &TraceLines) {
        if let Some(&end) = other.ends.last() {
            let start = other.ends.len().checked_sub(2).map_or(0, |i| other.ends[i]);
            self.text.extend_from_slice(&other.text[start..end]);
            self.ends.push(self.text.len());
            self.trim();
        }
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// The lines as strings of their own.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl fmt::Debug for TraceLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<S> for TraceLines {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut t = TraceLines::new();
        for line in iter {
            t.push(line.as_ref());
        }
        t
    }
}

impl From<Vec<String>> for TraceLines {
    fn from(lines: Vec<String>) -> Self {
        lines.iter().collect()
    }
}

impl std::ops::Index<usize> for TraceLines {
    type Output = str;

    /// Line `i`; panics when there is no such line, as a vector's index does.
    fn index(&self, i: usize) -> &str {
        match self.get(i) {
            Some(line) => line,
            None => panic!("line {i} of {} trace lines", self.len()),
        }
    }
}

fn same<S: AsRef<str>>(t: &TraceLines, lines: &[S]) -> bool {
    t.len() == lines.len() && t.iter().zip(lines).all(|(a, b)| a == b.as_ref())
}

impl PartialEq<Vec<String>> for TraceLines {
    fn eq(&self, other: &Vec<String>) -> bool {
        same(self, other)
    }
}

impl PartialEq<Vec<&str>> for TraceLines {
    fn eq(&self, other: &Vec<&str>) -> bool {
        same(self, other)
    }
}

impl PartialEq<TraceLines> for Vec<String> {
    fn eq(&self, other: &TraceLines) -> bool {
        same(other, self)
    }
}

impl PartialEq<TraceLines> for Vec<&str> {
    fn eq(&self, other: &TraceLines) -> bool {
        same(other, self)
    }
}

impl<const N: usize> PartialEq<[&str; N]> for TraceLines {
    fn eq(&self, other: &[&str; N]) -> bool {
        same(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_text_and_order() {
        let mut t = TraceLines::new();
        assert!(t.is_empty() && t.last().is_none() && t.get(0).is_none());
        t.push("one");
        t.push("");
        t.push("thr\nee é");
        assert_eq!(t.len(), 3);
        assert_eq!(t, ["one", "", "thr\nee é"]);
        assert_eq!(t.to_vec(), vec!["one", "", "thr\nee é"]);
        assert_eq!((&t[1], t.last()), ("", Some("thr\nee é")));
        assert_eq!(format!("{t:?}"), r#"["one", "", "thr\nee é"]"#);
        assert_eq!(t.iter().next_back(), Some("thr\nee é"));
        assert_ne!(t, vec!["one", ""]);
        assert_ne!(t, vec!["one", "", "three"]);
        // Equal lines are equal however they were pushed.
        let back: TraceLines = t.to_vec().into();
        assert_eq!(back, t);
        assert_ne!(
            back,
            ["one", "", "thr\nee é", ""]
                .into_iter()
                .collect::<TraceLines>()
        );
        t.clear();
        assert_eq!(t, TraceLines::new());
    }

    #[test]
    fn a_failed_line_leaves_the_lines_as_they_were() {
        let mut t = TraceLines::new();
        t.push("kept");
        let r: Result<(), ()> = t.push_formatted(|b| {
            b.extend_from_slice(b"half a li");
            Err(())
        });
        assert!(r.is_err());
        assert_eq!(t, ["kept"]);
        let n: Result<usize, ()> = t.push_formatted(|b| {
            b.extend_from_slice(b"next");
            Ok(4)
        });
        assert_eq!(n, Ok(4));
        assert_eq!(t, ["kept", "next"]);
        let mut env = TraceLines::new();
        env.push_last_of(&TraceLines::new());
        assert!(env.is_empty());
        env.push_last_of(&t);
        env.push_last_of(&["é"].into_iter().collect());
        assert_eq!(env, ["next", "é"]);
    }

    #[test]
    fn a_limit_keeps_the_newest_lines() {
        let mut t = TraceLines::with_limit(20);
        for i in 0..10 {
            t.push(&format!("line {i}"));
        }
        // 6 bytes a line: past 20 bytes the oldest go until 10 or less are kept.
        assert_eq!(t, ["line 8", "line 9"]);
        let mut all = TraceLines::new();
        for i in 0..10 {
            all.push(&format!("line {i}"));
        }
        assert_eq!(all.len(), 10, "no limit");
        // The same lines are equal whatever the limits; a line longer than the limit stays.
        assert_eq!(t, all.iter().skip(8).collect::<TraceLines>());
        t.push(&"x".repeat(50));
        assert_eq!(t.len(), 1);
        assert_eq!(t.last().map(str::len), Some(50));
        let mut env = TraceLines::with_limit(20);
        for _ in 0..5 {
            env.push_last_of(&all);
        }
        assert_eq!(env, ["line 9"; 3], "24 bytes: 2 dropped, then one more");
        let _: Result<(), ()> = env.push_formatted(|b| {
            b.extend_from_slice(b"formatted line");
            Ok(())
        });
        assert_eq!(env, ["formatted line"]);
    }

    #[test]
    #[should_panic(expected = "line 1 of 1 trace lines")]
    fn indexing_past_the_end_panics_as_a_vector_does() {
        let t: TraceLines = ["a"].into_iter().collect();
        let _ = &t[1];
    }
}
