//! The kernel's BTF (`vmlinux`): what CO-RE relocations are resolved against and where tracing
//! programs find their attach targets. Read from `/sys/kernel/btf/vmlinux` unless the caller
//! names a file or hands one in, parsed by our own parser and kept for the life of the process
//! (one parse per path), since a 5-6 MB vmlinux BTF costs tens of milliseconds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::btf::Btf;

/// Where the running kernel publishes its BTF.
pub const SYSTEM_VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// A parsed kernel BTF with a name index for candidate and attach-target lookups.
#[derive(Debug)]
pub struct TargetBtf {
    btf: Btf,
    source: String,
    /// (hash of the essential name, type id) of every named type, sorted: the name index.
    /// Hashes rather than strings keep it one allocation (built in a few ms for vmlinux);
    /// lookups compare the names of the ids they find.
    by_name: OnceLock<Vec<(u64, u32)>>,
}

impl TargetBtf {
    /// Wraps parsed BTF; `source` names it in messages (a path, or `"test BTF"`).
    pub fn new(btf: Btf, source: impl Into<String>) -> TargetBtf {
        TargetBtf {
            btf,
            source: source.into(),
            by_name: OnceLock::new(),
        }
    }

    /// Parse raw BTF bytes (a vmlinux BTF file).
    pub fn from_bytes(data: &[u8], source: &str) -> Result<TargetBtf, super::ObjectError> {
        Ok(TargetBtf::new(Btf::from_bytes(data, source)?, source))
    }

    pub fn btf(&self) -> &Btf {
        &self.btf
    }

    /// Where the BTF came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Ids of the types whose essential name (the name up to a `___flavor` suffix) is
    /// `essential`, of every kind, ascending.
    pub fn ids_by_essential_name(&self, essential: &str) -> Vec<u32> {
        let index = self.by_name.get_or_init(|| {
            let mut v: Vec<(u64, u32)> = self
                .btf
                .types()
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, t)| !t.name.is_empty())
                .map(|(id, t)| (name_hash(&t.name[..essential_name_len(&t.name)]), id as u32))
                .collect();
            v.sort_unstable();
            v
        });
        let h = name_hash(essential);
        let start = index.partition_point(|&(k, _)| k < h);
        index[start..]
            .iter()
            .take_while(|&&(k, _)| k == h)
            .map(|&(_, id)| id)
            .filter(|&id| {
                self.btf.type_by_id(id).is_some_and(|t| {
                    t.name.len() >= essential.len()
                        && t.name.as_bytes()[..essential.len()] == *essential.as_bytes()
                        && essential_name_len(&t.name) == essential.len()
                })
            })
            .collect()
    }

    /// The first type named exactly `name` whose kind `pred` accepts (libbpf's
    /// `btf__find_by_name_kind`).
    pub fn find(&self, name: &str, pred: impl Fn(&super::BtfKind) -> bool) -> Option<u32> {
        let essential = &name[..essential_name_len(name)];
        self.ids_by_essential_name(essential)
            .into_iter()
            .find(|&id| {
                self.btf
                    .type_by_id(id)
                    .is_some_and(|t| t.name == name && pred(&t.kind))
            })
    }
}

/// FNV-1a: a fast, deterministic hash of a type name for the index.
fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Length of `name` without its flavor suffix: `task_struct___old` -> 11. A flavor separator is
/// `___` between two characters that are not underscores; the last one counts (libbpf's
/// `bpf_core_essential_name_len`).
pub fn essential_name_len(name: &str) -> usize {
    let b = name.as_bytes();
    let n = b.len();
    if n >= 5 {
        for i in (0..=n - 5).rev() {
            if b[i] != b'_'
                && b[i + 1] == b'_'
                && b[i + 2] == b'_'
                && b[i + 3] == b'_'
                && b[i + 4] != b'_'
            {
                return i + 1;
            }
        }
    }
    n
}

/// Where the kernel's BTF comes from when an object needs it.
#[derive(Clone, Debug, Default)]
pub enum KernelBtfSource {
    /// `/sys/kernel/btf/vmlinux` of the machine bpfsim runs on.
    #[default]
    System,
    /// A raw BTF file (a copy of another machine's `/sys/kernel/btf/vmlinux`, a BTFHub file).
    File(PathBuf),
    /// BTF the caller already has.
    Parsed(Arc<TargetBtf>),
    /// No kernel BTF: programs that need it are refused.
    None,
}

/// How [`load_object_with`](super::load_object_with) loads an object.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub kernel_btf: KernelBtfSource,
}

static DEFAULT_SOURCE: Mutex<Option<KernelBtfSource>> = Mutex::new(None);

/// Make `source` the kernel BTF of every later [`load_object`](super::load_object) and
/// `LoadOptions::default()` in this process (what the CLI's `--btf FILE` does).
pub fn set_default_kernel_btf(source: KernelBtfSource) {
    *DEFAULT_SOURCE.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
}

impl Default for LoadOptions {
    /// The process default ([`set_default_kernel_btf`]), else the system's BTF.
    fn default() -> LoadOptions {
        let source = DEFAULT_SOURCE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        LoadOptions { kernel_btf: source }
    }
}

impl LoadOptions {
    /// Options with the kernel BTF read from `path` (`None`: the system's).
    pub fn with_btf_file(path: Option<&Path>) -> LoadOptions {
        LoadOptions {
            kernel_btf: path.map_or(KernelBtfSource::System, |p| {
                KernelBtfSource::File(p.to_path_buf())
            }),
        }
    }
}

type Cache = Mutex<HashMap<PathBuf, Result<Arc<TargetBtf>, String>>>;

/// The kernel BTF of `source`, parsed once per path and process. The error says why there is
/// none, in a sentence that can follow "needs the kernel's BTF: ".
pub fn kernel_btf(source: &KernelBtfSource) -> Result<Arc<TargetBtf>, String> {
    let path = match source {
        KernelBtfSource::Parsed(b) => return Ok(b.clone()),
        KernelBtfSource::None => return Err("no kernel BTF was given".to_string()),
        KernelBtfSource::System => PathBuf::from(SYSTEM_VMLINUX_BTF),
        KernelBtfSource::File(p) => p.clone(),
    };
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    // A panic elsewhere while holding the lock leaves only complete entries behind.
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = map.get(&path) {
        return r.clone();
    }
    let system = matches!(source, KernelBtfSource::System);
    let r = read(&path, system);
    map.insert(path, r.clone());
    r
}

fn read(path: &Path, system: bool) -> Result<Arc<TargetBtf>, String> {
    let shown = path.display();
    let data = std::fs::read(path).map_err(|e| {
        if system && e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{shown} does not exist (a kernel built without CONFIG_DEBUG_INFO_BTF); \
                 give the target kernel's BTF with --btf FILE (its /sys/kernel/btf/vmlinux, \
                 or a BTFHub file)"
            )
        } else {
            format!("cannot read {shown}: {e}")
        }
    })?;
    let src = shown.to_string();
    TargetBtf::from_bytes(&data, &src)
        .map(Arc::new)
        .map_err(|e| format!("{shown} is not usable BTF: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essential_names_drop_the_last_flavor() {
        assert_eq!(essential_name_len("task_struct"), 11);
        assert_eq!(essential_name_len("task_struct___old"), 11);
        assert_eq!(essential_name_len("a___b___c"), 5);
        // Underscores on either side are part of the name, not a separator.
        assert_eq!(essential_name_len("a____b"), 6);
        assert_eq!(essential_name_len("___a"), 4);
        assert_eq!(essential_name_len("x___"), 4);
        assert_eq!(essential_name_len(""), 0);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let e = kernel_btf(&KernelBtfSource::File("/nonexistent/vmlinux".into())).unwrap_err();
        assert!(e.contains("/nonexistent/vmlinux"), "{e}");
        assert!(kernel_btf(&KernelBtfSource::None).is_err());
    }
}
