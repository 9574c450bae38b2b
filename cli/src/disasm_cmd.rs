//! `bpfsim disasm --jit`: the code the JIT generates for a program, as `bpftool prog dump jited`
//! shows the kernel's: each BPF instruction followed by the host instructions generated for it.

use std::fmt::Write;

use bpfsim_jit::{CompileOptions, Hints, JitProgram, Listing};
use bpfsim_vm::asm;
use bpfsim_vm::isa::Insn;
use bpfsim_vm::Program;

/// How BPF instructions are written (`--style`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BpfStyle {
    Conformance,
    Kernel,
}

fn bpf_text(insn: &Insn, style: BpfStyle) -> String {
    match style {
        BpfStyle::Conformance => asm::disassemble_insn(insn),
        BpfStyle::Kernel => asm::kernel_line(insn),
    }
}

/// One host instruction's line: offset, bytes, text.
fn host_line(out: &mut String, listing: &Listing, offset: usize, len: usize, text: &str) {
    let bytes: Vec<String> = listing.code[offset..offset + len]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let _ = writeln!(out, "  {offset:6x}:  {:<30} {text}", bytes.join(" "));
}

/// The host code of no BPF instruction, in `[from, to)`, under `title`.
fn unattributed(out: &mut String, listing: &Listing, title: &str, from: usize, to: usize) {
    let parts: Vec<_> = listing
        .parts
        .iter()
        .filter(|p| p.pc.is_none() && p.start >= from && p.start < to)
        .collect();
    if parts.is_empty() {
        return;
    }
    let _ = writeln!(out, "; {title}");
    for i in &listing.insns {
        if i.pc.is_none() && i.offset >= from && i.offset < to {
            host_line(out, listing, i.offset, i.len, &i.text);
        }
    }
    if listing.insns.is_empty() {
        for p in parts {
            raw_part(out, listing, p.start, p.end);
        }
    }
}

/// Bytes of a part, where the host has no disassembler.
fn raw_part(out: &mut String, listing: &Listing, start: usize, end: usize) {
    for chunk_start in (start..end).step_by(16) {
        let chunk = &listing.code[chunk_start..end.min(chunk_start + 16)];
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "  {chunk_start:6x}:  {}", hex.join(" "));
    }
}

/// The listing as text: the program's function, then each callback compiled as a function of
/// its own, and the total size.
pub fn listing_text(listing: &Listing, insns: &[Insn], style: BpfStyle) -> String {
    // The subprograms' first slots: each function lists those with code in it; the program's
    // also those with code in no function (a callback the interpreter runs).
    let subprograms = Program::new(insns.to_vec()).map_or(vec![0], |p| p.subprograms().to_vec());
    let sub_of = |pc: usize| subprograms.partition_point(|&s| s <= pc).saturating_sub(1);
    let has_code = |l: &Listing| {
        let mut has = vec![false; subprograms.len()];
        for pc in l.parts.iter().filter_map(|p| p.pc) {
            if let Some(h) = has.get_mut(sub_of(pc)) {
                *h = true;
            }
        }
        has
    };
    let in_callbacks: Vec<Vec<bool>> = listing.callbacks.iter().map(has_code).collect();
    let main_shows: Vec<bool> = has_code(listing)
        .iter()
        .enumerate()
        .map(|(i, &h)| i == 0 || h || !in_callbacks.iter().any(|c| c[i]))
        .collect();
    let mut out = function_text(listing, insns, &sub_of, &main_shows, style);
    for (cb, shows) in listing.callbacks.iter().zip(&in_callbacks) {
        let _ = writeln!(
            out,
            "\n; {}: a callback, a function of its own",
            cb.function
        );
        out.push_str(&function_text(cb, insns, &sub_of, shows, style));
    }
    if !listing.callbacks.is_empty() {
        let callbacks: usize = listing.callbacks.iter().map(|c| c.code_size()).sum();
        let _ = writeln!(
            out,
            "; {} bytes of {} code in all ({} the program's, {callbacks} the callbacks')",
            listing.code_size() + callbacks,
            listing.arch,
            listing.code_size(),
        );
    }
    out
}

/// One function's listing: the code that belongs to no single instruction before the first
/// instruction's (the entry), each BPF instruction of the subprograms `shows` says (by
/// `sub_of` the slot) with the host instructions generated for it (in code order, those placed
/// out of line included), the shared exits, and the function's size.
fn function_text(
    listing: &Listing,
    insns: &[Insn],
    sub_of: &dyn Fn(usize) -> usize,
    shows: &[bool],
    style: BpfStyle,
) -> String {
    let mut out = String::new();
    let first = listing
        .parts
        .iter()
        .find(|p| p.pc.is_some())
        .map_or(listing.code_size(), |p| p.start);
    unattributed(&mut out, listing, "entry", 0, first);
    let mut pc = 0;
    for insn in insns {
        let here = pc;
        pc += insn.slots();
        if !shows.get(sub_of(here)).copied().unwrap_or(true) {
            continue;
        }
        let _ = writeln!(out, "{here}: {}", bpf_text(insn, style));
        if listing.insns.is_empty() {
            for p in listing.parts.iter().filter(|p| p.pc == Some(here)) {
                raw_part(&mut out, listing, p.start, p.end);
            }
        } else {
            let mut any = false;
            for i in listing.insns_of(here) {
                host_line(&mut out, listing, i.offset, i.len, &i.text);
                any = true;
            }
            if !any {
                let _ = writeln!(out, "          (no code of its own)");
            }
        }
    }
    unattributed(
        &mut out,
        listing,
        "shared exits and paths out of line (no single instruction)",
        first,
        listing.code_size(),
    );
    if listing.insns.is_empty() {
        let _ = writeln!(
            out,
            "; no disassembler for {}: Cranelift's own text",
            listing.arch
        );
        out.push_str(&listing.cranelift);
    }
    let _ = writeln!(
        out,
        "; {} bytes of {} code",
        listing.code_size(),
        listing.arch
    );
    out
}

/// The listing of raw bytecode: compiled without the verifier's hints (there is no program type
/// to verify it as).
pub fn raw(insns: Vec<Insn>, style: BpfStyle) -> Result<String, String> {
    let prog = Program::new(insns.clone()).map_err(|e| e.to_string())?;
    let opts = CompileOptions {
        listing: true,
        ..Default::default()
    };
    let jit = JitProgram::compile_opts(&prog, &Hints::default(), &opts)
        .map_err(|e| format!("JIT: {e}"))?;
    let listing = jit.listing().ok_or("the JIT kept no listing")?;
    Ok(format!(
        "; raw bytecode, not verified: compiled without the verifier's hints\n{}",
        listing_text(listing, &insns, style)
    ))
}

/// Every program of an object (or the one named), verified and compiled as `run --engine jit`
/// compiles it, listed. Programs that cannot be listed are reported on stderr after the others;
/// `Ok(false)` when there was any.
pub fn object(
    bytes: &[u8],
    only: Option<&str>,
    style: BpfStyle,
    out: &mut dyn std::io::Write,
) -> Result<bool, String> {
    use bpfsim_helpers::object::LoadedObject;
    let obj =
        LoadedObject::load(bytes, bpfsim_helpers::Env::default()).map_err(|e| e.to_string())?;
    let names = match only {
        Some(n) => vec![n.to_string()],
        None => obj.program_names(),
    };
    let mut failed = Vec::new();
    let mut listed_any = false;
    for name in &names {
        let listed = obj
            .program(name, None)
            .and_then(|p| Ok((p.jit_listed()?, p)));
        let (jit, p) = match listed {
            Ok(x) => x,
            Err(e) => {
                failed.push(e.to_string());
                continue;
            }
        };
        let Some(listing) = jit.listing() else {
            failed.push(format!("program `{name}`: the JIT kept no listing"));
            continue;
        };
        // The instructions as the plain listing shows them (map references by the object's
        // map index), where the object has them slot for slot; else as linked (map handles).
        let shown = match obj.object.find_program(name) {
            Ok(o) if o.insns.len() == p.insns.len() => &o.insns,
            _ => &p.insns,
        };
        let text = format!(
            "{}; {} (section {}, {}): verified, compiled with the verifier's hints\n{}",
            if listed_any { "\n" } else { "" },
            p.name,
            p.section,
            p.prog_type,
            listing_text(listing, shown, style)
        );
        out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
        listed_any = true;
    }
    // (A program named with `--prog` that the loader refused failed to link above.)
    if only.is_none() {
        for r in &obj.object.rejected {
            failed.push(format!(
                "program `{}` (section {}): the loader refuses it: {}",
                r.name, r.section, r.error
            ));
        }
    }
    for f in &failed {
        eprintln!("bpfsim: {f}");
    }
    Ok(failed.is_empty())
}
