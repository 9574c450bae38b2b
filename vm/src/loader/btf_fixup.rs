//! The object's `.BTF` as the kernel will take it. clang leaves the layout of data sections to
//! the loader: every `DATASEC` has size 0 and its variables offset 0. Like libbpf, fill in the
//! ELF section's size and each variable's symbol value, and sort the variables by offset (the
//! kernel refuses overlapping or unsorted ones).

use super::btf::{parse_type, string_at, BtfKind, Reader};
use super::elf::Elf;

const HEADER_MIN: usize = 24;
const DATASEC_RECORD: usize = 12;

/// The patched BTF, or `None` when the section does not parse (the kernel would refuse it too).
pub(crate) fn kernel_btf(elf: &Elf<'_>, raw: &[u8]) -> Option<Vec<u8>> {
    let r = Reader { data: raw };
    let hdr_len = r.u32(4).ok()? as usize;
    if hdr_len < HEADER_MIN {
        return None;
    }
    let (type_off, type_len) = (r.u32(8).ok()? as usize, r.u32(12).ok()? as usize);
    let (str_off, str_len) = (r.u32(16).ok()? as usize, r.u32(20).ok()? as usize);
    let types =
        hdr_len.checked_add(type_off)?..hdr_len.checked_add(type_off)?.checked_add(type_len)?;
    let strs = hdr_len.checked_add(str_off)?..hdr_len.checked_add(str_off)?.checked_add(str_len)?;
    let strings = raw.get(strs)?;
    let mut out = raw.to_vec();
    // Type id -> (name); needed to find a variable's symbol.
    let mut positions = Vec::new();
    let mut names = vec![String::new()];
    let mut pos = types.start;
    let view = Reader {
        data: raw.get(..types.end)?,
    };
    while pos < types.end {
        let (t, next) = parse_type(&view, pos, strings).ok()?;
        if matches!(t.kind, BtfKind::Datasec { .. }) {
            positions.push(pos);
        }
        names.push(t.name);
        pos = next;
    }
    for pos in positions {
        let name = string_at(strings, r.u32(pos).ok()?)?;
        let Some((index, section)) = elf.section_by_name(name) else {
            continue; // .kconfig, .ksyms: externs, not sections of the object
        };
        out[pos + 8..pos + 12].copy_from_slice(&(section.size as u32).to_le_bytes());
        let vlen = (r.u32(pos + 4).ok()? & 0xffff) as usize;
        let mut vars: Vec<[u32; 3]> = (0..vlen)
            .map(|i| {
                let at = pos + 12 + i * DATASEC_RECORD;
                let type_id = r.u32(at).ok()?;
                let var = names.get(type_id as usize)?;
                let offset = elf
                    .symbols
                    .iter()
                    .find(|s| s.section == Some(index) && &s.name == var)
                    .map_or(r.u32(at + 4).ok()?, |s| s.value as u32);
                Some([type_id, offset, r.u32(at + 8).ok()?])
            })
            .collect::<Option<_>>()?;
        vars.sort_by_key(|v| v[1]);
        for (i, v) in vars.iter().enumerate() {
            let at = pos + 12 + i * DATASEC_RECORD;
            for (j, word) in v.iter().enumerate() {
                out[at + 4 * j..at + 4 * j + 4].copy_from_slice(&word.to_le_bytes());
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::{load_object, Btf, BtfKind};

    #[test]
    fn datasec_sizes_and_offsets_come_from_the_elf() {
        let obj = load_object(include_bytes!(
            "../../../test-vectors/progs/bpf2bpf_calls.bpf.o"
        ))
        .unwrap();
        // As clang wrote it: size 0, every variable at offset 0.
        let original = obj.btf.as_ref().unwrap();
        let bss = |btf: &Btf| {
            let id = btf
                .find(".bss", |k| matches!(k, BtfKind::Datasec { .. }))
                .unwrap();
            match &btf.type_by_id(id).unwrap().kind {
                BtfKind::Datasec { size, vars } => (
                    *size,
                    vars.iter().map(|v| (v.offset, v.size)).collect::<Vec<_>>(),
                ),
                _ => unreachable!(),
            }
        };
        assert_eq!(bss(original), (0, vec![(0, 4), (0, 4)]));
        let fixed = Btf::parse(obj.kernel_btf.as_deref().unwrap()).unwrap();
        let (size, vars) = bss(&fixed);
        assert_eq!(size, 8);
        assert_eq!(vars, vec![(0, 4), (4, 4)]);
        // Nothing but data sections changes.
        assert_eq!(fixed.types().len(), original.types().len());
    }
}
