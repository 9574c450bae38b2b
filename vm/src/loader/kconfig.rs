//! `.kconfig` externs (`extern u32 LINUX_KERNEL_VERSION __kconfig;`), as libbpf provides them:
//! one read-only, frozen array map `.kconfig` holding every extern's value, each `lddw` of an
//! extern pointing into it. The values libbpf computes itself are supported: the running
//! kernel's `LINUX_KERNEL_VERSION`, and `LINUX_HAS_SYSCALL_WRAPPER` and `LINUX_HAS_BPF_COOKIE`
//! from the kernel's BTF (what `BPF_KSYSCALL` needs). `CONFIG_*` values are not read (the
//! kernel's config is usually only in `/proc/config.gz`): a program using one is refused.

use std::collections::HashMap;

use super::btf::{Btf, BtfKind};
use super::maps::{GlobalInit, MapSource, Maps, BPF_F_RDONLY_PROG};
use super::Target;
use crate::spec::{MapDef, MapType};

/// Where each `.kconfig` extern lives in the `.kconfig` map, or why it has no value.
pub(crate) type Externs = HashMap<String, Result<(usize, u64), String>>;

/// `KERNEL_VERSION(a, b, c)` of a release string (`6.18.44-fc-v1252`), the patch level capped
/// at 255 as libbpf caps it.
pub(crate) fn kernel_version(release: &str) -> Option<u32> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u32>().ok());
    let (a, b) = (parts.next()??, parts.next()??);
    let c = parts.next().flatten().unwrap_or(0);
    Some((a << 16) + (b.min(255) << 8) + c.min(255))
}

/// The prefix of the kernel's syscall wrappers on this architecture (`__x64_sys_bpf`).
fn syscall_prefix() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("__x64_"),
        "x86" => Some("__ia32_"),
        "aarch64" => Some("__arm64_"),
        "s390x" => Some("__s390x_"),
        "riscv64" => Some("__riscv_"),
        "powerpc64" => Some(""),
        _ => None,
    }
}

/// The value of extern `name` (of `size` bytes), little endian.
fn value(name: &str, target: &Target<'_>) -> Result<u64, String> {
    match name {
        "LINUX_KERNEL_VERSION" => {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_err(|e| format!("cannot read the kernel release: {e}"))?;
            kernel_version(release.trim())
                .map(u64::from)
                .ok_or_else(|| format!("cannot parse kernel release '{}'", release.trim()))
        }
        "LINUX_HAS_SYSCALL_WRAPPER" => {
            let kernel = target.get()?;
            let prefix = syscall_prefix().ok_or("syscall wrappers unknown on this architecture")?;
            let wrapper = format!("{prefix}sys_bpf");
            Ok(kernel
                .find(&wrapper, |k| matches!(k, BtfKind::Func { .. }))
                .is_some() as u64)
        }
        "LINUX_HAS_BPF_COOKIE" => {
            let kernel = target.get()?;
            let has = kernel
                .find("bpf_func_id", |k| matches!(k, BtfKind::Enum { .. }))
                .and_then(|id| kernel.btf().type_by_id(id))
                .is_some_and(|t| match &t.kind {
                    BtfKind::Enum { values, .. } => values
                        .iter()
                        .any(|v| v.name == "BPF_FUNC_get_attach_cookie"),
                    _ => false,
                });
            Ok(has as u64)
        }
        n if n.starts_with("CONFIG_") => {
            Err("kernel config values (CONFIG_*) are not read by bpfsim".to_string())
        }
        _ => Err("unrecognized extern (libbpf knows LINUX_* and CONFIG_* only)".to_string()),
    }
}

/// Add the `.kconfig` map for the externs the object's BTF declares in its `.kconfig` DATASEC,
/// with their values; empty when there are none.
pub(crate) fn add_map(btf: Option<&Btf>, maps: &mut Maps, target: &Target<'_>) -> Externs {
    let mut out = Externs::new();
    let Some(btf) = btf else { return out };
    let Some(id) = btf.find(".kconfig", |k| matches!(k, BtfKind::Datasec { .. })) else {
        return out;
    };
    let Some(BtfKind::Datasec { vars, .. }) = btf.type_by_id(id).map(|t| &t.kind) else {
        return out;
    };
    let mut layout = Vec::new();
    let mut off = 0u64;
    for v in vars {
        let Some(var) = btf.type_by_id(v.type_id) else {
            continue;
        };
        let BtfKind::Var { target: ty, .. } = var.kind else {
            continue;
        };
        let size = match btf.resolve_size(ty) {
            Ok(s) if (1..=8).contains(&s) => s as u64,
            Ok(s) => {
                out.insert(
                    var.name.clone(),
                    Err(format!("{s}-byte values are not supported")),
                );
                continue;
            }
            Err(e) => {
                out.insert(var.name.clone(), Err(e));
                continue;
            }
        };
        let align = size.next_power_of_two();
        off = off.div_ceil(align) * align;
        layout.push((var.name.clone(), off, size));
        off += size;
    }
    if layout.is_empty() {
        return out;
    }
    let mut data = vec![0u8; off as usize];
    let map = maps.defs.len();
    for (name, at, size) in layout {
        match value(&name, target) {
            Ok(v) => {
                let bytes = v.to_le_bytes();
                data[at as usize..(at + size) as usize].copy_from_slice(&bytes[..size as usize]);
                out.insert(name, Ok((map, at)));
            }
            Err(why) => {
                out.insert(name, Err(why));
            }
        }
    }
    maps.defs.push(MapDef {
        name: ".kconfig".to_string(),
        map_type: MapType::Array,
        key_size: 4,
        value_size: data.len() as u32,
        max_entries: 1,
        flags: BPF_F_RDONLY_PROG,
        inner: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    });
    maps.sources.push(MapSource {
        section: ".kconfig".to_string(),
        offset: 0,
        pinning: 0,
    });
    maps.globals.push(GlobalInit {
        map,
        section: ".kconfig".to_string(),
        data,
        read_only: true,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::kernel_version;

    #[test]
    fn kernel_versions_as_libbpf_computes_them() {
        assert_eq!(kernel_version("6.18.44-fc-v1252"), Some(0x06122c));
        assert_eq!(kernel_version("5.4.300"), Some(0x0504ff));
        assert_eq!(kernel_version("6.1"), Some(0x060100));
        assert_eq!(kernel_version("x"), None);
    }
}
