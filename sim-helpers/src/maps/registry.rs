//! The registry of maps and the host API, which behaves like the bpf(2) map commands run by a
//! privileged process on CPU [`Maps::host_cpu`].

use bpfsim_vm::spec::{MapDef, MapType};

use super::error::{Errno, MapError, Op, OpError, Reason};
use super::perf::PerfRecord;
use super::table::round8;
use super::{
    Map, MapId, MapState, ValueFields, Values, BPF_ANY, BPF_F_INNER_MAP, BPF_F_LOCK, BPF_F_RDONLY,
    BPF_F_WRONLY, NR_CPUS,
};

/// A key and its value, copied out.
pub type Entry = (Vec<u8>, Vec<u8>);
/// A key and its value on each CPU, copied out.
pub type PerCpuEntry = (Vec<u8>, Vec<Vec<u8>>);

/// Every map of one simulated system, for `ncpus` CPUs.
pub struct Maps {
    maps: Vec<Map>,
    ncpus: u32,
    host_cpu: u32,
}

impl Default for Maps {
    fn default() -> Self {
        Maps::new(1)
    }
}

fn op_error(state: &MapState, op: Op, source: OpError) -> MapError {
    MapError::Op {
        map: state.name().to_string(),
        map_type: state.map_type(),
        op,
        source,
    }
}

/// Whether `inner` may be stored in a map-in-map whose inner maps look like `template`
/// (`bpf_map_meta_equal`, and for arrays `array_map_meta_equal`).
fn meta_mismatch(template: &MapDef, inner: &MapState) -> Option<&'static str> {
    let d = inner.def();
    if template.map_type != d.map_type {
        Some("map type differs")
    } else if template.key_size != d.key_size {
        Some("key_size differs")
    } else if template.value_size != d.value_size {
        Some("value_size differs")
    } else if template.flags != d.flags {
        Some("map_flags differ")
    } else if matches!(d.map_type, MapType::Array | MapType::PercpuArray)
        && template.flags & BPF_F_INNER_MAP == 0
        && template.max_entries != d.max_entries
    {
        // The verifier inlines array lookups with the template's bound, so it must match
        // unless the template was declared BPF_F_INNER_MAP.
        Some("max_entries differs (and the template is not BPF_F_INNER_MAP)")
    } else {
        None
    }
}

impl Maps {
    /// A registry for `ncpus` simulated CPUs (clamped to `1..=NR_CPUS`).
    pub fn new(ncpus: u32) -> Maps {
        Maps {
            maps: Vec::new(),
            ncpus: ncpus.clamp(1, NR_CPUS),
            host_cpu: 0,
        }
    }

    pub fn ncpus(&self) -> u32 {
        self.ncpus
    }

    /// The CPU the host's operations run on (it matters to LRU maps, whose free lists are per
    /// CPU). 0 unless set.
    pub fn host_cpu(&self) -> u32 {
        self.host_cpu
    }

    /// Run the host's operations on `cpu` (taken modulo the CPU count).
    pub fn set_host_cpu(&mut self, cpu: u32) {
        self.host_cpu = cpu % self.ncpus;
    }

    /// Create a map as `BPF_MAP_CREATE` would; a definition the kernel rejects is an error with
    /// the kernel's errno and the rule.
    pub fn create(&mut self, def: &MapDef) -> Result<MapId, MapError> {
        self.create_with(def, ValueFields::default())
    }

    /// Create a map whose value has the special fields `fields` (from BTF).
    pub fn create_with(&mut self, def: &MapDef, fields: ValueFields) -> Result<MapId, MapError> {
        let id = MapId(self.maps.len() as u32 + 1);
        let (state, arenas) = MapState::new(id, def, self.ncpus, fields)?;
        self.maps.push(Map { state, arenas });
        Ok(id)
    }

    pub fn get(&self, id: MapId) -> Option<&Map> {
        self.maps.get((id.0 as usize).checked_sub(1)?)
    }

    pub fn get_mut(&mut self, id: MapId) -> Option<&mut Map> {
        self.maps.get_mut((id.0 as usize).checked_sub(1)?)
    }

    /// The first map with this name.
    pub fn by_name(&self, name: &str) -> Option<MapId> {
        self.maps.iter().find(|m| m.name() == name).map(Map::id)
    }

    pub fn len(&self) -> usize {
        self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Map> {
        self.maps.iter()
    }

    /// Every map, e.g. to split each into state and arenas for a run.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Map> {
        self.maps.iter_mut()
    }

    fn map(&self, id: MapId) -> Result<&Map, MapError> {
        self.get(id).ok_or(MapError::NoSuchMap(id))
    }

    fn map_mut(&mut self, id: MapId) -> Result<&mut Map, MapError> {
        self.get_mut(id).ok_or(MapError::NoSuchMap(id))
    }

    /// The host may read unless the map was created `BPF_F_WRONLY`.
    fn readable(map: &Map, op: Op) -> Result<(), MapError> {
        if map.state.map_flags() & BPF_F_WRONLY != 0 {
            return Err(op_error(
                &map.state,
                op,
                OpError::new(Errno::EPERM, Reason::WriteOnly),
            ));
        }
        Ok(())
    }

    /// The host may write unless the map is `BPF_F_RDONLY` or frozen.
    fn writable(map: &Map, op: Op) -> Result<(), MapError> {
        if map.state.map_flags() & BPF_F_RDONLY != 0 || map.state.is_frozen() {
            return Err(op_error(
                &map.state,
                op,
                OpError::new(Errno::EPERM, Reason::ReadOnly),
            ));
        }
        Ok(())
    }

    /// A per-CPU value in the bpf(2) layout: each CPU's value padded to 8 bytes, CPU 0 first.
    fn read_flat(map: &Map, off: usize) -> Vec<u8> {
        let vs = map.state.value_size() as usize;
        let stride = round8(vs);
        let mut out = vec![0u8; stride * map.state.ncpus() as usize];
        for (c, chunk) in out.chunks_mut(stride).enumerate() {
            chunk[..vs].copy_from_slice(&map.read_value(c, off));
        }
        out
    }

    /// `BPF_MAP_LOOKUP_ELEM`: a copy of the value (for a per-CPU map every CPU's value, each
    /// padded to a multiple of 8 bytes, as bpf(2) returns them; see [`Self::lookup_percpu`]).
    /// For an LPM trie this is the longest-prefix match; for a queue or stack (empty key), a peek.
    pub fn lookup(&self, id: MapId, key: &[u8]) -> Result<Vec<u8>, MapError> {
        let map = self.map(id)?;
        Self::readable(map, Op::Lookup)?;
        if map.map_type() == MapType::Queue || map.map_type() == MapType::Stack {
            if !key.is_empty() {
                return Err(op_error(
                    &map.state,
                    Op::Lookup,
                    OpError::key_size(0, key.len()),
                ));
            }
            return self.peek(id);
        }
        let off = map
            .state
            .host_lookup(key)
            .map_err(|e| op_error(&map.state, Op::Lookup, e))?;
        Ok(if map.state.is_percpu() {
            Self::read_flat(map, off)
        } else {
            map.read_value(0, off)
        })
    }

    fn not_percpu(map: &Map, op: Op) -> MapError {
        op_error(
            &map.state,
            op,
            OpError::new(Errno::EINVAL, Reason::BadValue("the map is not per-CPU")),
        )
    }

    /// Lookup in a per-CPU map: one value per CPU.
    pub fn lookup_percpu(&self, id: MapId, key: &[u8]) -> Result<Vec<Vec<u8>>, MapError> {
        let map = self.map(id)?;
        if !map.state.is_percpu() {
            return Err(Self::not_percpu(map, Op::Lookup));
        }
        Self::readable(map, Op::Lookup)?;
        let off = map
            .state
            .host_lookup(key)
            .map_err(|e| op_error(&map.state, Op::Lookup, e))?;
        Ok((0..map.state.ncpus() as usize)
            .map(|c| map.read_value(c, off))
            .collect())
    }

    /// Check a map-in-map value (an inner map id) against the map's template.
    fn check_inner(&self, outer: &Map, value: &[u8]) -> Result<(), OpError> {
        let id = MapId(u32::from_le_bytes(
            value
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 4]),
        ));
        let inner = self
            .get(id)
            .ok_or(OpError::new(Errno::EBADF, Reason::NoSuchMap(id)))?;
        let why = match &outer.state.def().inner {
            Some(template) => meta_mismatch(template, &inner.state),
            None => Some("the map-in-map has no template"),
        };
        match why {
            Some(why) => Err(OpError::new(
                Errno::EINVAL,
                Reason::InnerMapMismatch { id, why },
            )),
            None => Ok(()),
        }
    }

    /// `BPF_MAP_UPDATE_ELEM`, with `flags` `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`, optionally with
    /// `BPF_F_LOCK`. For a per-CPU map `value` holds every CPU's value in the bpf(2) layout
    /// (see [`Self::update_percpu`]); for a queue or stack (empty key) this is a push; for a
    /// map-in-map the value is an inner [`MapId`], for a program array a program id.
    pub fn update(
        &mut self,
        id: MapId,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), MapError> {
        let cpu = self.host_cpu;
        let map = self.map(id)?;
        Self::writable(map, Op::Update)?;
        let fail = |e| op_error(&map.state, Op::Update, e);
        if flags & BPF_F_LOCK != 0 && map.state.value_fields().spin_lock.is_none() {
            return Err(fail(OpError::new(
                Errno::EINVAL,
                Reason::LockWithoutSpinLock,
            )));
        }
        let vs = map.state.value_size() as usize;
        let values = if map.state.is_percpu() {
            let want = round8(vs) * map.state.ncpus() as usize;
            if value.len() != want {
                return Err(fail(OpError::value_size(want, value.len())));
            }
            Values::All(value)
        } else {
            if value.len() != vs && map.map_type() != MapType::Ringbuf {
                return Err(fail(OpError::value_size(vs, value.len())));
            }
            Values::One(value)
        };
        // Map-in-map values must name a compatible map; fd arrays check flags and range first.
        if map.map_type() == MapType::ArrayOfMaps {
            let max = map.state.max_entries();
            if flags != BPF_ANY {
                return Err(fail(OpError::bad_flags(flags)));
            }
            if key.len() == 4 {
                let index = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
                if index >= max {
                    return Err(fail(OpError::new(
                        Errno::E2BIG,
                        Reason::IndexOutOfRange {
                            index,
                            max_entries: max,
                        },
                    )));
                }
            }
            self.check_inner(map, value).map_err(fail)?;
        } else if map.map_type() == MapType::HashOfMaps {
            self.check_inner(map, value).map_err(fail)?;
        }
        let map = self.map_mut(id)?;
        let (state, arenas) = map.split_mut();
        state
            .update_values(key, values, flags, cpu, arenas)
            .map_err(|e| op_error(state, Op::Update, e))
    }

    /// Update a per-CPU map with one value per CPU.
    pub fn update_percpu<V: AsRef<[u8]>>(
        &mut self,
        id: MapId,
        key: &[u8],
        values: &[V],
        flags: u64,
    ) -> Result<(), MapError> {
        let map = self.map(id)?;
        if !map.state.is_percpu() {
            return Err(Self::not_percpu(map, Op::Update));
        }
        let vs = map.state.value_size() as usize;
        let ncpus = map.state.ncpus() as usize;
        if values.len() != ncpus {
            return Err(op_error(
                &map.state,
                Op::Update,
                OpError::new(
                    Errno::EINVAL,
                    Reason::BadValue("need exactly one value per simulated CPU"),
                ),
            ));
        }
        let mut flat = vec![0u8; round8(vs) * ncpus];
        for (chunk, v) in flat.chunks_mut(round8(vs)).zip(values) {
            let v = v.as_ref();
            if v.len() != vs {
                return Err(op_error(
                    &map.state,
                    Op::Update,
                    OpError::value_size(vs, v.len()),
                ));
            }
            chunk[..vs].copy_from_slice(v);
        }
        self.update(id, key, &flat, flags)
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn delete(&mut self, id: MapId, key: &[u8]) -> Result<(), MapError> {
        let map = self.map_mut(id)?;
        Self::writable(map, Op::Delete)?;
        map.state
            .delete(key)
            .map_err(|e| op_error(&map.state, Op::Delete, e))
    }

    /// `BPF_MAP_GET_NEXT_KEY`: the key after `key` (`None` or an absent key: the first one).
    pub fn get_next_key(&self, id: MapId, key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        let map = self.map(id)?;
        Self::readable(map, Op::GetNextKey)?;
        let mut out = vec![0u8; map.state.key_size() as usize];
        map.state
            .get_next_key(key, &mut out)
            .map_err(|e| op_error(&map.state, Op::GetNextKey, e))?;
        Ok(out)
    }

    /// Every key, in iteration order (hashes: insertion order; LPM: the kernel's post-order;
    /// arrays: every index; slot arrays: the filled slots).
    pub fn keys(&self, id: MapId) -> Result<Vec<Vec<u8>>, MapError> {
        let map = self.map(id)?;
        Ok(map.state.entries().into_iter().map(|(k, _)| k).collect())
    }

    /// Every key and value in iteration order, values as [`Self::lookup`] returns them (but
    /// read even where bpf(2) refuses a lookup: the socket ids of an XSKMAP, the slots of a perf
    /// event array). Queues and stacks: see [`Self::queue_values`].
    pub fn entries(&self, id: MapId) -> Result<Vec<Entry>, MapError> {
        let map = self.map(id)?;
        Ok(map
            .state
            .entries()
            .into_iter()
            .map(|(k, off)| {
                let v = if map.state.is_percpu() {
                    Self::read_flat(map, off)
                } else {
                    map.read_value(0, off)
                };
                (k, v)
            })
            .collect())
    }

    /// Every key of a per-CPU map with one value per CPU.
    pub fn entries_percpu(&self, id: MapId) -> Result<Vec<PerCpuEntry>, MapError> {
        let map = self.map(id)?;
        if !map.state.is_percpu() {
            return Err(Self::not_percpu(map, Op::Read));
        }
        Ok(map
            .state
            .entries()
            .into_iter()
            .map(|(k, off)| {
                let vs = (0..map.state.ncpus() as usize)
                    .map(|c| map.read_value(c, off))
                    .collect();
                (k, vs)
            })
            .collect())
    }

    /// The values of a queue or stack, oldest first.
    pub fn queue_values(&self, id: MapId) -> Result<Vec<Vec<u8>>, MapError> {
        Ok(self.map(id)?.state.queue_values())
    }

    /// Empty a map, as if every element were deleted (arrays are zeroed; queues, ring buffers
    /// and perf samples dropped). A host reset, not a bpf(2) command: it ignores freezing.
    pub fn clear(&mut self, id: MapId) -> Result<(), MapError> {
        let map = self.map_mut(id)?;
        let (state, arenas) = map.split_mut();
        state.clear(arenas);
        Ok(())
    }

    /// `BPF_MAP_FREEZE`: the host can no longer write the map (programs still can).
    pub fn freeze(&mut self, id: MapId) -> Result<(), MapError> {
        let map = self.map_mut(id)?;
        Self::writable(map, Op::Freeze)?;
        map.state.freeze();
        Ok(())
    }

    /// Push onto a queue or stack (`BPF_MAP_UPDATE_ELEM` with no key).
    pub fn push(&mut self, id: MapId, value: &[u8], flags: u64) -> Result<(), MapError> {
        self.update(id, &[], value, flags)
    }

    /// Pop from a queue or stack (`BPF_MAP_LOOKUP_AND_DELETE_ELEM` with no key).
    pub fn pop(&mut self, id: MapId) -> Result<Vec<u8>, MapError> {
        let map = self.map_mut(id)?;
        Self::readable(map, Op::Pop)?;
        Self::writable(map, Op::Pop)?;
        let mut out = vec![0u8; map.state.value_size() as usize];
        map.state
            .pop(&mut out)
            .map_err(|e| op_error(&map.state, Op::Pop, e))?;
        Ok(out)
    }

    /// Peek at a queue or stack (`BPF_MAP_LOOKUP_ELEM` with no key).
    pub fn peek(&self, id: MapId) -> Result<Vec<u8>, MapError> {
        let map = self.map(id)?;
        Self::readable(map, Op::Peek)?;
        let mut out = vec![0u8; map.state.value_size() as usize];
        map.state
            .peek(&mut out)
            .map_err(|e| op_error(&map.state, Op::Peek, e))?;
        Ok(out)
    }

    fn not_a(map: &Map, op: Op) -> MapError {
        op_error(&map.state, op, OpError::unsupported(Errno::EINVAL, op))
    }

    /// Read every committed record of a ring buffer, as a consumer would (stops at the first
    /// record still reserved; discarded records are skipped). Frees their space for producers.
    pub fn ringbuf_consume(&mut self, id: MapId) -> Result<Vec<Vec<u8>>, MapError> {
        let map = self.map_mut(id)?;
        let (state, arenas) = map.split_mut();
        if state.ringbuf().is_none() {
            return Err(Self::not_a(map, Op::Read));
        }
        let arena = arenas.get(0).unwrap_or(&[]);
        Ok(state
            .ringbuf_mut()
            .map(|r| r.consume(arena))
            .unwrap_or_default())
    }

    /// Fill every slot of a perf event array, as a perf buffer opened on every CPU does.
    pub fn perf_open_all(&mut self, id: MapId) -> Result<(), MapError> {
        let map = self.map_mut(id)?;
        let (state, arenas) = map.split_mut();
        let Some(perf) = state.perf_mut() else {
            return Err(Self::not_a(map, Op::Update));
        };
        let result = perf.open_all(arenas);
        result.map_err(|e| op_error(&map.state, Op::Update, e))
    }

    /// Take every sample written to a perf event array so far, in order.
    pub fn perf_drain(&mut self, id: MapId) -> Result<Vec<PerfRecord>, MapError> {
        let map = self.map_mut(id)?;
        match map.state.perf_mut() {
            Some(p) => Ok(p.drain()),
            None => Err(Self::not_a(map, Op::Read)),
        }
    }
}
