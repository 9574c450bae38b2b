//! Loading an ELF object (as `bpfsim_vm::loader` parsed it) into the kernel, as libbpf would:
//! every map created (global data filled, `.rodata` frozen, map-in-map templates), every program
//! with a type loaded with its attach type and flags, map references passed through `fd_array`,
//! and the `.values` slots of prog arrays and map-in-maps filled.

use bpfsim_vm::loader::{BtfKind, MapInitTarget, ObjProgram, Object};
use bpfsim_vm::spec::MapDef;

use crate::btf::KernelBtf;
use crate::error::{Errno, LoadFailure};
use crate::map::{KernelMap, MapSpec};
use crate::{KernelBpf, ProgFd, ProgSpec, ProgType};

/// Why an object did not load.
#[derive(Debug, thiserror::Error)]
pub enum ObjectLoadError {
    #[error("map {map}: BPF_MAP_CREATE failed with {errno}")]
    MapCreate { map: String, errno: Errno },
    #[error("map {map}: setting its initial contents failed with {errno}")]
    MapInit { map: String, errno: Errno },
    #[error("program {program} (section {section}): {failure}")]
    Program {
        program: String,
        section: String,
        failure: LoadFailure,
    },
}

/// A program loaded in the kernel.
#[derive(Debug)]
pub struct KernelProgram {
    pub name: String,
    pub section: String,
    pub prog_type: ProgType,
    pub fd: ProgFd,
}

/// An object's maps and programs, loaded. Dropping it closes every descriptor.
#[derive(Debug)]
pub struct KernelObject {
    /// In the order of [`Object::maps`], so map indexes carry over.
    pub maps: Vec<KernelMap>,
    pub programs: Vec<KernelProgram>,
    /// The object's BTF, when it has some and the kernel took it.
    pub btf: Option<KernelBtf>,
    /// Why the kernel refused the object's BTF (loading goes on without it, as libbpf does).
    pub btf_error: Option<LoadFailure>,
}

fn map_spec(def: &MapDef) -> MapSpec {
    MapSpec {
        btf: None,
        map_type: def.map_type.id(),
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: def.max_entries,
        flags: def.flags,
        name: def.name.clone(),
    }
}

impl KernelBpf {
    /// Create the maps of `obj` (global data set, `.rodata` frozen) and load its BTF, but no
    /// program: load them one by one with [`KernelObject::load_program_logged`].
    pub fn load_object_maps(&self, obj: &Object) -> Result<KernelObject, ObjectLoadError> {
        self.load_object_with(obj, false)
    }

    /// Create the maps of `obj` and load every program that has a type (programs of `.text`
    /// alone can be added with [`KernelObject::load_program`]). The first failure ends the load,
    /// as with libbpf.
    pub fn load_object(&self, obj: &Object) -> Result<KernelObject, ObjectLoadError> {
        self.load_object_with(obj, true)
    }

    fn load_object_with(
        &self,
        obj: &Object,
        programs: bool,
    ) -> Result<KernelObject, ObjectLoadError> {
        let (btf, btf_error) = match obj.kernel_btf.as_deref().map(|raw| self.btf_load(raw)) {
            Some(Ok(b)) => (Some(b), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let mut maps = Vec::with_capacity(obj.maps.len());
        for def in &obj.maps {
            let create_err = |errno| ObjectLoadError::MapCreate {
                map: def.name.clone(),
                errno,
            };
            let inner = match &def.inner {
                Some(inner) => Some(
                    self.map_create(&map_spec(inner), None)
                        .map_err(create_err)?,
                ),
                None => None,
            };
            let plain = map_spec(def);
            // With BTF for key and value where the object has it; like libbpf, without when
            // the kernel refuses that.
            let with_btf = match (&btf, def.btf_key_type_id | def.btf_value_type_id) {
                (Some(b), ids) if ids != 0 => self
                    .map_create(
                        &MapSpec {
                            btf: Some((b.raw_fd(), def.btf_key_type_id, def.btf_value_type_id)),
                            ..plain.clone()
                        },
                        inner.as_ref(),
                    )
                    .ok(),
                _ => None,
            };
            let map = match with_btf {
                Some(m) => m,
                None => self
                    .map_create(&plain, inner.as_ref())
                    .map_err(create_err)?,
            };
            maps.push(map);
        }
        for g in &obj.globals {
            let map = &maps[g.map];
            let init_err = |errno| ObjectLoadError::MapInit {
                map: g.section.clone(),
                errno,
            };
            map.update(&0u32.to_le_bytes(), &g.data, 0)
                .map_err(init_err)?;
            if g.read_only {
                map.freeze().map_err(init_err)?;
            }
        }
        let mut loaded = KernelObject {
            maps,
            programs: Vec::new(),
            btf,
            btf_error,
        };
        if programs {
            for p in obj.programs.iter().filter(|p| p.prog_type.is_some()) {
                loaded.load_program(self, obj, p)?;
            }
        }
        for init in &obj.map_inits {
            let value = match &init.target {
                MapInitTarget::Map(m) => loaded.maps[*m].raw_fd(),
                MapInitTarget::Program(name) => match loaded.program(name) {
                    Some(p) => p.fd.raw_fd(),
                    None => continue,
                },
            };
            let outer = &loaded.maps[init.map];
            outer
                .update(&init.slot.to_le_bytes(), &value.to_le_bytes(), 0)
                .map_err(|errno| ObjectLoadError::MapInit {
                    map: outer.spec().name.clone(),
                    errno,
                })?;
        }
        Ok(loaded)
    }
}

impl KernelObject {
    /// Load one linked program of `obj` (from [`Object::programs`] or
    /// [`Object::function_program`]) against this object's maps.
    pub fn load_program(
        &mut self,
        bpf: &KernelBpf,
        obj: &Object,
        p: &ObjProgram,
    ) -> Result<&KernelProgram, ObjectLoadError> {
        let fail = |failure| ObjectLoadError::Program {
            program: p.name.clone(),
            section: p.section.clone(),
            failure,
        };
        let Some(t) = p.prog_type else {
            return Err(fail(LoadFailure {
                errno: Errno::EINVAL,
                log: "no program type: name one".to_string(),
            }));
        };
        let fds: Vec<i32> = self.maps.iter().map(KernelMap::raw_fd).collect();
        let insns = p.to_bytes();
        let func_info = self.func_info(obj, p);
        let spec = ProgSpec {
            expected_attach_type: p.expected_attach_type.map_or(0, |a| a.id()),
            flags: p.flags,
            name: &p.name,
            fd_array: &fds,
            btf_fd: self.btf.as_ref().map(KernelBtf::raw_fd),
            func_info: &func_info,
            attach_btf_id: p.attach_target.as_ref().map_or(0, |a| a.btf_id),
            ..ProgSpec::new(ProgType(t.id()), &insns, &obj.license)
        };
        let fd = bpf.prog_load_spec(&spec, 1).map_err(fail)?;
        self.programs.push(KernelProgram {
            name: p.name.clone(),
            section: p.section.clone(),
            prog_type: ProgType(t.id()),
            fd,
        });
        Ok(self.programs.last().expect("just pushed"))
    }

    /// Load `p` (as `prog_type` when given) with a verifier log of `log_level`, whatever the
    /// outcome: the verdict and the kernel's log, for comparisons. The program is not kept.
    pub fn load_program_logged(
        &self,
        bpf: &KernelBpf,
        obj: &Object,
        p: &ObjProgram,
        prog_type: Option<bpfsim_vm::spec::ProgType>,
        log_level: u32,
    ) -> (Result<(), Errno>, String) {
        let Some(t) = prog_type.or(p.prog_type) else {
            return (Err(Errno::EINVAL), "no program type".to_string());
        };
        let fds: Vec<i32> = self.maps.iter().map(KernelMap::raw_fd).collect();
        let insns = p.to_bytes();
        let func_info = self.func_info(obj, p);
        // Line info too, as libbpf sends it: the log then has the source lines.
        let line_info: Vec<[u32; 4]> = obj
            .line_info(p)
            .iter()
            .map(|l| [l.slot as u32, l.file_name_off, l.line_off, l.line_col])
            .collect();
        let spec = ProgSpec {
            expected_attach_type: p.expected_attach_type.map_or(0, |a| a.id()),
            flags: p.flags,
            name: &p.name,
            fd_array: &fds,
            btf_fd: self.btf.as_ref().map(KernelBtf::raw_fd),
            func_info: &func_info,
            line_info: &line_info,
            attach_btf_id: p.attach_target.as_ref().map_or(0, |a| a.btf_id),
            ..ProgSpec::new(ProgType(t.id()), &insns, &obj.license)
        };
        let (r, log) = bpf.prog_load_spec_logged(&spec, log_level);
        (r.map(|_| ()), log)
    }

    /// `bpf_func_info` for every function of `p`: its first slot and its BTF `FUNC` type. Empty
    /// (no BTF for functions) unless every function has one.
    fn func_info(&self, obj: &Object, p: &ObjProgram) -> Vec<[u32; 2]> {
        let (Some(btf), Some(_)) = (&obj.btf, &self.btf) else {
            return Vec::new();
        };
        let mut info: Vec<[u32; 2]> = Vec::new();
        for f in &p.functions {
            match btf.find(&f.name, |k| matches!(k, BtfKind::Func { .. })) {
                Some(id) => info.push([f.slot as u32, id]),
                None => return Vec::new(),
            }
        }
        info.sort_unstable();
        info
    }

    pub fn program(&self, name: &str) -> Option<&KernelProgram> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// A map by its name in the object (global data maps by section: `.bss`, `.rodata`, ...).
    pub fn map(&self, name: &str) -> Option<&KernelMap> {
        self.maps.iter().find(|m| m.spec().name == name)
    }
}
