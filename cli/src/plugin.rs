//! The bpf_conformance plugin protocol: the upstream runner starts `bpfsim conformance-plugin
//! [MEMORY-HEX] [OPTIONS...]` once per test, writes the program as hex text on stdin and reads the
//! final `r0` in hex from stdout (exit 0), or an error message (exit non-zero).

use bpfsim_vm::{ConformanceHost, Interpreter, Program, Vm};

/// Decode hex text, ignoring all whitespace (the runner writes `b7  00  00 ...`).
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "invalid hex byte `{}` at byte {i}",
                        String::from_utf8_lossy(pair)
                    )
                })
        })
        .collect()
}

/// Run one program as the plugin protocol asks; `Ok(r0)` or the message to report.
pub fn run(program_hex: &str, args: &[String]) -> Result<u64, String> {
    let mut mem = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        match arg.as_str() {
            "--interpret" | "--interp" => {}
            "--jit" | "--cranelift" => {
                return Err("the JIT engine is not built yet; use --interpret".to_string())
            }
            "--elf" => return Err("ELF input is not supported by the plugin yet".to_string()),
            a if i == 0 && !a.starts_with("--") => {
                mem = parse_hex(a).map_err(|e| format!("memory: {e}"))?
            }
            a => return Err(format!("unknown plugin option `{a}`")),
        }
    }
    let bytes = parse_hex(program_hex).map_err(|e| format!("program: {e}"))?;
    let prog = Program::from_bytes(&bytes).map_err(|e| format!("Failed to load program: {e}"))?;
    let interp = Interpreter::new(&prog);
    Vm::default()
        .run_with_memory(&interp, &mut ConformanceHost, &mut mem)
        .result
        .map_err(|t| format!("Program trapped: {t}"))
}

/// The whole plugin process: read the program from stdin, run, print `r0` or the error.
pub fn main_with(args: &[String]) -> std::process::ExitCode {
    use std::io::Read;
    let mut program = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut program) {
        eprintln!("stdin: {e}");
        return std::process::ExitCode::from(2);
    }
    match run(&program, args) {
        Ok(r0) => {
            println!("{r0:x}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_hex_programs_with_memory() {
        // ldxb r0, [r1+2]; exit
        let prog = "71  10  02  00  00  00  00  00  95  00  00  00  00  00  00  00\n";
        assert_eq!(run(prog, &["aa bb 11 cc".to_string()]), Ok(0x11));
        assert_eq!(
            run(prog, &[]).unwrap_err().split(':').next(),
            Some("Program trapped")
        );
        assert!(run("07 00 01", &[]).unwrap_err().contains("program"));
        assert!(run(prog, &["--bogus".into()]).is_err());
    }
}
