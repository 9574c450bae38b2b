//! The bpf_conformance `.data` format (test-vectors/conformance/README.md, section 1).

/// One parsed test file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestFile {
    /// Lines of the `-- asm` section with their 1-based line numbers in the file.
    pub asm: Vec<(usize, String)>,
    /// Lines of the `-- raw` section, if present (it takes precedence over `asm`).
    pub raw: Option<Vec<String>>,
    pub mem: Vec<u8>,
    pub result: Option<u64>,
    /// The `-- error` section's last line; `Some("")` for an empty section.
    pub error: Option<String>,
    /// The first header the format does not know: upstream skips such files.
    pub unknown_directive: Option<String>,
}

impl TestFile {
    /// The assembly as text whose line numbers are the file's, so assembler errors point into it.
    pub fn asm_text(&self) -> String {
        let mut out = String::new();
        let mut at = 1;
        for (line, text) in &self.asm {
            while at < *line {
                out.push('\n');
                at += 1;
            }
            out.push_str(text);
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DataError {
    pub line: usize,
    pub message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Asm,
    Result,
    Mem,
    Raw,
    Ignored,
    Error,
}

/// Parse a test file the way the upstream runner reads it.
pub fn parse(text: &str) -> Result<TestFile, DataError> {
    let mut t = TestFile::default();
    let mut section = Section::None;
    let mut skip_next = false;
    let mut result_line: Option<(usize, String)> = None;
    for (i, raw_line) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let line = line.split('#').next().unwrap_or("");
        if line.contains("--") {
            // The marker's companion line is a content line; a header right after ends it.
            skip_next = false;
            section = if line.contains("asm") {
                Section::Asm
            } else if line.contains("result") {
                Section::Result
            } else if line.contains("mem") {
                Section::Mem
            } else if line.contains("raw") {
                t.raw.get_or_insert_with(Vec::new);
                Section::Raw
            } else if line.contains("no register offset") {
                skip_next = true;
                Section::Ignored
            } else if line.contains(" c") {
                Section::Ignored
            } else if line.contains("error") {
                t.error.get_or_insert_with(String::new);
                Section::Error
            } else {
                t.unknown_directive = Some(line.trim().to_string());
                return Ok(t);
            };
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        if skip_next {
            skip_next = false;
            continue;
        }
        match section {
            Section::None | Section::Ignored => {}
            Section::Asm => t.asm.push((line_no, line.to_string())),
            Section::Raw => t.raw.get_or_insert_with(Vec::new).push(line.to_string()),
            Section::Result => result_line = Some((line_no, line.trim().to_string())),
            Section::Error => t.error = Some(line.trim().to_string()),
            Section::Mem => {
                for tok in line.split_whitespace() {
                    let b = u8::from_str_radix(tok, 16).map_err(|_| DataError {
                        line: line_no,
                        message: format!("bad memory byte `{tok}`"),
                    })?;
                    t.mem.push(b);
                }
            }
        }
    }
    if let Some((line, text)) = result_line {
        let parsed = match text.find("0x") {
            Some(i) => u64::from_str_radix(&text[i + 2..], 16),
            None => text.parse::<u64>(),
        };
        t.result = Some(parsed.map_err(|_| DataError {
            line,
            message: format!("bad result `{text}`"),
        })?);
    }
    Ok(t)
}

/// Bytecode of a `-- raw` section: either 64-bit words (one token per slot, `0x` hex or decimal,
/// little-endian image), or, as in upstream's `negative/unused-*` files, 8 hex bytes per line.
pub fn raw_bytes(lines: &[String]) -> Result<Vec<u8>, String> {
    let bytewise = !lines.is_empty()
        && lines.iter().all(|l| {
            let toks: Vec<&str> = l.split_whitespace().collect();
            toks.len() == 8
                && toks
                    .iter()
                    .all(|t| t.len() == 2 && u8::from_str_radix(t, 16).is_ok())
        });
    let mut out = Vec::new();
    for tok in lines.iter().flat_map(|l| l.split_whitespace()) {
        if bytewise {
            out.push(u8::from_str_radix(tok, 16).map_err(|_| format!("bad byte `{tok}`"))?);
        } else {
            let word = match tok.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => tok.parse::<u64>(),
            }
            .map_err(|_| format!("bad instruction word `{tok}`"))?;
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_comments_and_results() {
        let t = parse(
            "# Copyright\n-- asm\nmov %r0, 1 # one\n\nexit\n-- mem\naa bb\n 11\n-- result\n0x1\n0xFF\n",
        )
        .unwrap();
        assert_eq!(
            t.asm,
            vec![(3, "mov %r0, 1 ".to_string()), (5, "exit".to_string())]
        );
        assert_eq!(t.mem, vec![0xaa, 0xbb, 0x11]);
        assert_eq!(t.result, Some(0xff));
        assert_eq!(t.error, None);
        let t = parse("-- asm\nexit\n-- result\n0\n").unwrap();
        assert_eq!(t.result, Some(0));
    }

    #[test]
    fn ignored_sections_and_unknown_directives() {
        let t = parse(
            "-- asm\nexit\n-- no register offset\ncall instruction\n-- c\nint x;\n-- result\n0x2\n",
        )
        .unwrap();
        assert_eq!(t.asm, vec![(2, "exit".to_string())]);
        // mem-len.data: the marker is followed directly by the next header.
        let t = parse("-- asm\nexit\n-- no register offset\n-- result\n0x8\n").unwrap();
        assert_eq!(t.result, Some(8));
        let t = parse("-- asm\n-- Unknown directive\n-- error\nx\n").unwrap();
        assert_eq!(t.unknown_directive.as_deref(), Some("-- Unknown directive"));
        let t = parse("-- raw\n07 00 01 00 01 00 00 00\n-- error\n").unwrap();
        assert_eq!(t.error.as_deref(), Some(""));
    }

    #[test]
    fn raw_layouts() {
        let words = raw_bytes(&["0x5566778800000018 0".to_string()]).unwrap();
        assert_eq!(&words[..8], &[0x18, 0, 0, 0, 0x88, 0x77, 0x66, 0x55]);
        assert_eq!(words.len(), 16);
        let bytes = raw_bytes(&["07 00 01 00 01 00 00 00".to_string()]).unwrap();
        assert_eq!(bytes, vec![7, 0, 1, 0, 1, 0, 0, 0]);
    }
}
