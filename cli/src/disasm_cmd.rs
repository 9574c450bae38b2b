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

/// Which of the JIT's code generators to list (`--baseline`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tier {
    /// Cranelift's code, as `engine="jit"` runs.
    Cranelift,
    /// The baseline tier's (`engine="baseline"`, `auto`'s first compiled tier).
    Baseline,
}

impl Tier {
    /// `prog` compiled by this tier with a listing (Cranelift's without the verifier's hints).
    pub fn compile(self, prog: &Program, name: Option<String>) -> Result<JitProgram, String> {
        let opts = CompileOptions {
            listing: true,
            name,
            ..Default::default()
        };
        match self {
            Tier::Cranelift => JitProgram::compile_opts(prog, &Hints::default(), &opts),
            Tier::Baseline => JitProgram::compile_baseline_opts(prog, &opts),
        }
        .map_err(|e| format!("JIT: {e}"))
    }
}

/// `--format`: text, or one JSON object per program and line ([`listing_json`]'s, with the
/// program's name, section and type, and whether it was verified).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

fn bpf_text(insn: &Insn, style: BpfStyle) -> String {
    match style {
        BpfStyle::Conformance => asm::disassemble_insn(insn),
        BpfStyle::Kernel => asm::kernel_line(insn),
    }
}

/// One host instruction (or, where the host has no disassembler, up to 16 bytes of a part).
struct Host<'a> {
    offset: usize,
    bytes: &'a [u8],
    /// `None`: bytes not decoded.
    text: Option<&'a str>,
}

/// A BPF instruction and the host code generated for it.
struct Line<'a> {
    pc: usize,
    text: String,
    host: Vec<Host<'a>>,
}

/// One function of the listing, as both formats show it.
struct FunctionView<'a> {
    listing: &'a Listing,
    /// The code of no single instruction before the first instruction's (the prologue).
    entry: Vec<Host<'a>>,
    lines: Vec<Line<'a>>,
    /// The code of no single instruction after it (shared exits, shared slow paths, constants).
    shared: Vec<Host<'a>>,
}

/// The host code in `listing` whose part has slot `pc`, within `[from, to)`.
fn host_code(listing: &Listing, pc: Option<usize>, from: usize, to: usize) -> Vec<Host<'_>> {
    if listing.insns.is_empty() {
        let mut out = Vec::new();
        for p in listing.parts.iter().filter(|p| p.pc == pc) {
            for at in (p.start.max(from)..p.end.min(to)).step_by(16) {
                out.push(Host {
                    offset: at,
                    bytes: &listing.code[at..p.end.min(at + 16)],
                    text: None,
                });
            }
        }
        return out;
    }
    listing
        .insns
        .iter()
        .filter(|i| i.pc == pc && i.offset >= from && i.offset < to)
        .map(|i| Host {
            offset: i.offset,
            bytes: &listing.code[i.offset..i.offset + i.len],
            text: Some(&i.text),
        })
        .collect()
}

fn function_view<'a>(
    listing: &'a Listing,
    insns: &[Insn],
    sub_of: &dyn Fn(usize) -> usize,
    shows: &[bool],
    style: BpfStyle,
) -> FunctionView<'a> {
    let size = listing.code_size();
    let first = listing
        .parts
        .iter()
        .find(|p| p.pc.is_some())
        .map_or(size, |p| p.start);
    let mut lines = Vec::new();
    let mut pc = 0;
    for insn in insns {
        let here = pc;
        pc += insn.slots();
        if shows.get(sub_of(here)).copied().unwrap_or(true) {
            lines.push(Line {
                pc: here,
                text: bpf_text(insn, style),
                host: host_code(listing, Some(here), 0, size),
            });
        }
    }
    FunctionView {
        listing,
        entry: host_code(listing, None, 0, first),
        lines,
        shared: host_code(listing, None, first, size),
    }
}

/// Every function of the listing: the program's, then each callback compiled as a function of
/// its own.
fn views<'a>(listing: &'a Listing, insns: &[Insn], style: BpfStyle) -> Vec<FunctionView<'a>> {
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
    let mut out = vec![function_view(listing, insns, &sub_of, &main_shows, style)];
    for (cb, shows) in listing.callbacks.iter().zip(&in_callbacks) {
        out.push(function_view(cb, insns, &sub_of, shows, style));
    }
    out
}

fn host_text(out: &mut String, h: &Host<'_>) {
    let bytes: Vec<String> = h.bytes.iter().map(|b| format!("{b:02x}")).collect();
    let _ = match h.text {
        Some(t) => writeln!(out, "  {:6x}:  {:<30} {t}", h.offset, bytes.join(" ")),
        None => writeln!(out, "  {:6x}:  {}", h.offset, bytes.join(" ")),
    };
}

/// One function as text: the entry, each BPF instruction followed by the host instructions
/// generated for it (in code order, those placed out of line included), the shared exits, and
/// the function's size.
fn function_text(v: &FunctionView<'_>, out: &mut String) {
    let l = v.listing;
    if !v.entry.is_empty() {
        let _ = writeln!(out, "; entry");
        v.entry.iter().for_each(|h| host_text(out, h));
    }
    for line in &v.lines {
        let _ = writeln!(out, "{}: {}", line.pc, line.text);
        if line.host.is_empty() {
            let _ = writeln!(out, "          (no code of its own)");
        }
        line.host.iter().for_each(|h| host_text(out, h));
    }
    if !v.shared.is_empty() {
        let _ = writeln!(
            out,
            "; shared exits and paths out of line (no single instruction)"
        );
        v.shared.iter().for_each(|h| host_text(out, h));
    }
    if l.insns.is_empty() {
        let _ = writeln!(
            out,
            "; no disassembler for {}: Cranelift's own text",
            l.arch
        );
        out.push_str(&l.cranelift);
    }
    let _ = writeln!(out, "; {} bytes of {} code", l.code_size(), l.arch);
}

/// The listing as text: the program's function, then each callback compiled as a function of
/// its own, and the total size.
pub fn listing_text(listing: &Listing, insns: &[Insn], style: BpfStyle) -> String {
    let mut out = String::new();
    for (i, v) in views(listing, insns, style).iter().enumerate() {
        if i > 0 {
            let _ = writeln!(
                out,
                "\n; {}: a callback, a function of its own",
                v.listing.function
            );
        }
        function_text(v, &mut out);
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

fn host_json(h: &Host<'_>) -> serde_json::Value {
    let bytes: String = h.bytes.iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({ "offset": h.offset, "bytes": bytes, "text": h.text })
}

/// The listing as one JSON object: the host architecture, the total size, and each function
/// (the program's first) with its symbol, address, size, the entry's host code, each BPF
/// instruction with its host code, and the shared code; `text` is null where the host has no
/// disassembler (then `cranelift` holds Cranelift's own text).
pub fn listing_json(listing: &Listing, insns: &[Insn], style: BpfStyle) -> serde_json::Value {
    let functions: Vec<serde_json::Value> = views(listing, insns, style)
        .iter()
        .map(|v| {
            let l = v.listing;
            let lines: Vec<serde_json::Value> = v
                .lines
                .iter()
                .map(|line| {
                    serde_json::json!({
                        "pc": line.pc,
                        "text": line.text,
                        "host": line.host.iter().map(host_json).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::json!({
                "function": l.function,
                "address": format!("{:#x}", l.address),
                "code_size": l.code_size(),
                "entry": v.entry.iter().map(host_json).collect::<Vec<_>>(),
                "instructions": lines,
                "shared": v.shared.iter().map(host_json).collect::<Vec<_>>(),
                "cranelift": l.insns.is_empty().then_some(&l.cranelift),
            })
        })
        .collect();
    let total: usize = listing.code_size()
        + listing
            .callbacks
            .iter()
            .map(|c| c.code_size())
            .sum::<usize>();
    serde_json::json!({
        "arch": listing.arch,
        "code_size": total,
        "functions": functions,
    })
}

/// The listing of raw bytecode: compiled without the verifier's hints (there is no program type
/// to verify it as).
pub fn raw(
    insns: Vec<Insn>,
    style: BpfStyle,
    format: Format,
    tier: Tier,
) -> Result<String, String> {
    let prog = Program::new(insns.clone()).map_err(|e| e.to_string())?;
    let jit = tier.compile(&prog, None)?;
    let listing = jit.listing().ok_or("the JIT kept no listing")?;
    Ok(match format {
        Format::Text => format!(
            "; raw bytecode, not verified: {}\n{}",
            match tier {
                Tier::Cranelift => "compiled without the verifier's hints",
                Tier::Baseline => "compiled by the baseline tier",
            },
            listing_text(listing, &insns, style)
        ),
        Format::Json => {
            let mut v = listing_json(listing, &insns, style);
            v["program"] = serde_json::Value::Null;
            v["verified"] = false.into();
            v["tier"] = tier_name(tier).into();
            format!("{v}\n")
        }
    })
}

fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Cranelift => "cranelift",
        Tier::Baseline => "baseline",
    }
}

/// Every program of an object (or the one named), verified and compiled as `run --engine jit`
/// compiles it, listed. Programs that cannot be listed are reported on stderr after the others;
/// `Ok(false)` when there was any.
pub fn object(
    bytes: &[u8],
    only: Option<&str>,
    style: BpfStyle,
    format: Format,
    tier: Tier,
    out: &mut dyn std::io::Write,
) -> Result<bool, String> {
    use bpfsim_helpers::object::LoadedObject;
    let obj =
        LoadedObject::load(bytes, bpfsim_helpers::Env::default()).map_err(|e| e.to_string())?;
    let names = match only {
        // A name the object does not have is a usage error (exit 2, as plain `disasm`); one the
        // loader refused is a program that cannot be listed (exit 1, with the loader's reason).
        Some(n)
            if !obj.program_names().iter().any(|p| p == n)
                && !obj.object.rejected.iter().any(|r| r.name == n) =>
        {
            return Err(format!(
                "no program named '{n}' in the object (programs: {})",
                obj.program_names().join(", ")
            ));
        }
        Some(n) => vec![n.to_string()],
        None => obj.program_names(),
    };
    let mut failed = Vec::new();
    let mut listed_any = false;
    for name in &names {
        let listed = match tier {
            Tier::Cranelift => obj
                .program(name, None)
                .and_then(|p| Ok((p.jit_listed()?, p)))
                .map_err(|e| e.to_string()),
            Tier::Baseline => obj
                .program(name, None)
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    let prog = Program::new(p.insns.clone()).map_err(|e| e.to_string())?;
                    Ok((tier.compile(&prog, Some(name.clone()))?, p))
                }),
        };
        let (jit, p) = match listed {
            Ok(x) => x,
            Err(e) => {
                failed.push(e);
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
        // The packet accesses the JIT proved from the program's own bounds checks: no clamp
        // and no check in their code.
        let proven = jit.bounds_proven();
        // The context loads that share an earlier load's check.
        let unchecked = jit.ctx_unchecked();
        // The loops whose budget is checked once, on entry.
        let counted = jit.counted_loops();
        let slots = |s: &[usize]| {
            if s.is_empty() {
                "none".to_string()
            } else {
                s.iter()
                    .map(|pc| pc.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let text = match format {
            Format::Text if tier == Tier::Baseline => format!(
                "{}; {} (section {}, {}): compiled by the baseline tier (one pass, no \
                 verifier's hints)\n{}",
                if listed_any { "\n" } else { "" },
                p.name,
                p.section,
                p.prog_type,
                listing_text(listing, shown, style)
            ),
            Format::Text => format!(
                "{}; {} (section {}, {}): verified, compiled with the verifier's hints\n\
                 ; packet accesses proven by the program's own bounds checks (no check): {}\n\
                 ; context loads checked by an earlier load of their block (no check): {}\n\
                 ; loops whose budget is checked once on entry for all their trips (heads): {}\n{}",
                if listed_any { "\n" } else { "" },
                p.name,
                p.section,
                p.prog_type,
                slots(&proven),
                slots(&unchecked),
                slots(&counted),
                listing_text(listing, shown, style)
            ),
            Format::Json => {
                let mut v = listing_json(listing, shown, style);
                v["bounds_proven"] = proven.into();
                v["ctx_unchecked"] = unchecked.into();
                v["counted_loops"] = counted.into();
                v["program"] = p.name.clone().into();
                v["section"] = p.section.clone().into();
                v["type"] = p.prog_type.to_string().into();
                v["verified"] = (tier == Tier::Cranelift).into();
                v["tier"] = tier_name(tier).into();
                format!("{v}\n")
            }
        };
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
