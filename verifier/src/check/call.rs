//! Calls and exits: `check_helper_call` (availability, GPL, arguments per prototype, map
//! compatibility, references, the returned register), BPF-to-BPF calls and callbacks
//! (`check_func_call`), and `check_return_code` at exit.

use bpfsim_vm::isa::{CallTarget, Reg as R};
use bpfsim_vm::spec::proto::{self, ArgBase, HelperProto, RetBase, TypeFlags};
use bpfsim_vm::spec::{helper_name, MapType, ProgType};

use super::alu::type_str;
use crate::domain::reg::{Reg, RegType};
use crate::domain::state::{Byte, Frame, Ref, RefKind, State, MAX_BPF_STACK, MAX_FRAMES, SLOTS};
use crate::explore::{Step, Verifier, MANY_MAPS, NO_MAP};

/// `BPF_MAX_VAR_SIZ`.
const MAX_VAR_SIZ: u64 = 1 << 29;

fn func_name(id: u32) -> String {
    format!("bpf_{}", helper_name(id as i64).unwrap_or("unknown"))
}

/// The helpers each special map type works with, and the map types each map-specific helper
/// takes (`check_map_func_compatibility`).
fn map_func_ok(map: MapType, func: &str) -> bool {
    let by_map: Option<&[&str]> = match map {
        MapType::ProgArray => Some(&["tail_call"]),
        MapType::PerfEventArray => Some(&[
            "perf_event_read",
            "perf_event_output",
            "skb_output",
            "perf_event_read_value",
            "xdp_output",
        ]),
        MapType::Ringbuf => Some(&[
            "ringbuf_output",
            "ringbuf_reserve",
            "ringbuf_query",
            "ringbuf_reserve_dynptr",
            "ringbuf_submit_dynptr",
            "ringbuf_discard_dynptr",
        ]),
        MapType::Devmap | MapType::DevmapHash => Some(&["redirect_map", "map_lookup_elem"]),
        MapType::Cpumap => Some(&["redirect_map"]),
        MapType::Xskmap => Some(&["redirect_map", "map_lookup_elem"]),
        MapType::Queue | MapType::Stack => {
            Some(&["map_peek_elem", "map_pop_elem", "map_push_elem"])
        }
        MapType::ArrayOfMaps | MapType::HashOfMaps => Some(&["map_lookup_elem"]),
        MapType::CgroupArray => Some(&["skb_under_cgroup", "current_task_under_cgroup"]),
        MapType::SkStorage => Some(&["sk_storage_get", "sk_storage_delete", "kptr_xchg"]),
        MapType::CgroupStorage | MapType::PercpuCgroupStorage => Some(&["get_local_storage"]),
        _ => None,
    };
    if let Some(fs) = by_map {
        if !fs.contains(&func) {
            return false;
        }
    }
    let by_func: Option<&[MapType]> = match func {
        "tail_call" => Some(&[MapType::ProgArray]),
        "perf_event_read"
        | "perf_event_output"
        | "perf_event_read_value"
        | "skb_output"
        | "xdp_output" => Some(&[MapType::PerfEventArray]),
        "ringbuf_output" | "ringbuf_reserve" | "ringbuf_query" => Some(&[MapType::Ringbuf]),
        "redirect_map" => Some(&[
            MapType::Devmap,
            MapType::DevmapHash,
            MapType::Cpumap,
            MapType::Xskmap,
        ]),
        "map_peek_elem" | "map_pop_elem" | "map_push_elem" => {
            Some(&[MapType::Queue, MapType::Stack, MapType::BloomFilter])
        }
        "skb_under_cgroup" | "current_task_under_cgroup" => Some(&[MapType::CgroupArray]),
        "get_local_storage" => Some(&[MapType::CgroupStorage, MapType::PercpuCgroupStorage]),
        "sk_storage_get" | "sk_storage_delete" => Some(&[MapType::SkStorage]),
        _ => None,
    };
    by_func.is_none_or(|ms| ms.contains(&map))
}

/// Helpers after which packet pointers are invalid (`bpf_helper_changes_pkt_data`).
fn changes_pkt_data(name: &str) -> bool {
    matches!(
        name,
        "clone_redirect"
            | "l3_csum_replace"
            | "l4_csum_replace"
            | "lwt_push_encap"
            | "lwt_seg6_action"
            | "lwt_seg6_adjust_srh"
            | "lwt_seg6_store_bytes"
            | "msg_pop_data"
            | "msg_pull_data"
            | "msg_push_data"
            | "skb_adjust_room"
            | "skb_change_head"
            | "skb_change_proto"
            | "skb_change_tail"
            | "skb_pull_data"
            | "skb_store_bytes"
            | "skb_vlan_pop"
            | "skb_vlan_push"
            | "store_hdr_opt"
            | "xdp_adjust_head"
            | "xdp_adjust_meta"
            | "xdp_adjust_tail"
    )
}

/// A map key on the stack that is a known constant (`get_constant_map_key`): zero bytes
/// covering the key, or a spilled constant of exactly the key's size. The flag says it is a
/// spill (whose value the verifier then relies on).
fn const_map_key(st: &State, reg: &Reg, key_size: u32) -> Option<(u64, bool)> {
    if reg.ty != RegType::Stack || !reg.var_off.is_const() {
        return None;
    }
    let total = reg.off as i64 + reg.var_off.value as i64;
    if total < -(MAX_BPF_STACK as i64) || total >= 0 {
        return None;
    }
    let frame = st.frames.get(reg.frameno as usize)?;
    let start = (MAX_BPF_STACK as i64 + total) as usize;
    let slot = frame.slot(SLOTS - 1 - start / 8);
    let run = |kind: Byte| {
        slot.bytes[start % 8..]
            .iter()
            .take_while(|b| **b == kind)
            .count()
    };
    if run(Byte::Zero) >= key_size as usize {
        return Some((0, false));
    }
    if slot.bytes[0] != Byte::Spill || !slot.spilled.is_scalar() {
        return None;
    }
    if run(Byte::Spill) != key_size as usize || !slot.spilled.is_const() {
        return None;
    }
    Some((slot.spilled.var_off.value, true))
}

impl Verifier<'_> {
    pub fn check_call(
        &mut self,
        st: &mut State,
        pc: usize,
        target: CallTarget,
    ) -> Result<Step, String> {
        // Inside a `bpf_spin_lock`-ed region only the unlock and static subprograms may be
        // called (do_check, before the call's own checks).
        if st.lock.is_some() && !matches!(target, CallTarget::Helper(94) | CallTarget::Local(_)) {
            return Err("function calls are not allowed while holding a lock".to_string());
        }
        match target {
            CallTarget::Helper(id) => self.check_helper_call(st, pc, id),
            CallTarget::Local(off) => {
                let callee = (pc as i64 + 1 + off as i64) as usize;
                if let Some(g) = self.global_at(callee) {
                    if st.lock.is_some() {
                        return Err("use static function instead".to_string());
                    }
                    // A global function is verified on its own: here only its arguments are
                    // checked, and it returns some scalar (`btf_check_subprog_call`).
                    for (i, a) in g.args.iter().enumerate() {
                        let r = R::new(i as u8 + 1).expect("r1-r5");
                        self.check_reg_read(st, r)?;
                        let reg = *st.reg(i + 1);
                        match a {
                            crate::ArgKind::Scalar if !reg.is_scalar() => {
                                return Err(format!("R{} is not a scalar", i + 1));
                            }
                            crate::ArgKind::Ctx if reg.ty != RegType::Ctx => {
                                return Err(format!("arg#{i} expects pointer to ctx"));
                            }
                            crate::ArgKind::Mem { size } => {
                                // `check_mem_reg`: NULL, or memory the callee may read and
                                // write whole (a NULL-or-valid pointer checked as valid).
                                let null =
                                    reg.is_scalar() && reg.is_const() && reg.var_off.value == 0;
                                if !null {
                                    let saved = reg;
                                    st.reg_mut(i + 1).maybe_null = false;
                                    let res =
                                        self.check_global_mem_arg(st, r, *size).map_err(|e| {
                                            self.log.push(e);
                                            let idx = crate::log::subprog_starts(self.insns)
                                                .iter()
                                                .position(|&s| s == g.slot)
                                                .unwrap_or(0);
                                            format!(
                                                "Caller passes invalid args into func#{idx} ('{}')",
                                                g.name
                                            )
                                        });
                                    *st.reg_mut(i + 1) = saved;
                                    res?;
                                }
                            }
                            _ => {}
                        }
                    }
                    if !self.globals_called.contains(&callee) {
                        self.globals_called.push(callee);
                    }
                    return self.finish_call(st, pc, None, None, Reg::unknown());
                }
                self.push_frame(st, pc, callee, None)?;
                // The caller's r0-r5 are scratched by the call (`clear_caller_saved_regs`): they
                // are nothing while the callee runs.
                let caller = st.frames.len() - 2;
                for r in 0..=5 {
                    st.frames[caller].regs[r] = Reg::NOT_INIT;
                }
                Ok(Step::Next(callee))
            }
            CallTarget::Kfunc { btf_id, .. } => Err(format!(
                "kfuncs are not simulated: call to kernel function [{btf_id}] (the kernel's \
                 verifier decides on it: --compare-kernel)"
            )),
        }
    }

    /// The memory a global function's pointer argument must give it: `size` bytes to read,
    /// then to write (`check_helper_mem_access` twice).
    fn check_global_mem_arg(&mut self, st: &mut State, r: R, size: u32) -> Result<(), String> {
        let reg = *st.reg(r.index());
        if reg.is_scalar() || reg.maybe_null {
            return Err(format!(
                "R{} type={} expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
                r.num(),
                type_str(&reg)
            ));
        }
        self.check_helper_mem(st, r, size, false)?;
        self.check_helper_mem(st, r, size, true)
    }

    /// Enter a subprogram: its frame gets r1-r5 (and, for a callback, the given arguments).
    fn push_frame(
        &mut self,
        st: &mut State,
        callsite: usize,
        callee: usize,
        args: Option<[Reg; 5]>,
    ) -> Result<(), String> {
        if st.frames.len() >= MAX_FRAMES {
            return Err(format!(
                "the call stack of {} frames is too deep",
                st.frames.len() + 1
            ));
        }
        let frameno = st.frames.len() as u8;
        let mut f = Frame::new(frameno, callee, callsite);
        let regs = args.unwrap_or_else(|| {
            let c = st.cur();
            [c.regs[1], c.regs[2], c.regs[3], c.regs[4], c.regs[5]]
        });
        f.regs[1..6].copy_from_slice(&regs);
        st.frames.push(f);
        Ok(())
    }

    fn check_helper_call(&mut self, st: &mut State, pc: usize, id: i32) -> Result<Step, String> {
        let name = || func_name(id as u32);
        if id < 0 || helper_name(id as i64).is_none() {
            return Err(format!("invalid func unknown#{id}"));
        }
        let id = id as u32;
        if !proto::allowed_for(self.opts.prog_type, self.opts.attach, id) {
            return Err(format!(
                "program of this type cannot use helper {}#{id}",
                name()
            ));
        }
        let Some(p) = proto::proto_for(self.opts.prog_type, id) else {
            // Allowed, but bpfsim does not know its prototype: arguments unchecked.
            self.log.push(format!(
                "bpfsim: no prototype for {}#{id}; its arguments are not checked",
                name()
            ));
            self.unchecked_helpers.insert(id);
            return self.finish_call(st, pc, None, None, Reg::unknown());
        };
        if p.gpl_only && !self.opts.gpl {
            return Err(
                "cannot call GPL-restricted function from non-GPL compatible program".to_string(),
            );
        }
        let mut map: Option<u32> = None;
        let mut callback: Option<u32> = None;
        let mut alloc_size: Option<u32> = None;
        let mut released: Option<u32> = None;
        // The reference an argument holds (`meta.ref_obj_id`): what a release ends, what a
        // cast of a socket keeps.
        let mut meta_ref: Option<u32> = None;
        // The largest size a memory argument's size argument may have (`msize_max_value`).
        let mut msize_max: u64 = 0;
        let n = p.arg_count();
        let mut i = 0;
        while i < n {
            let arg = p.args[i];
            let regno = R::new(i as u8 + 1).expect("r1-r5");
            let rn = i + 1;
            self.check_reg_read(st, regno)?;
            let reg = *st.reg(rn);
            let mem_arg = matches!(
                arg.base,
                ArgBase::PtrToMem | ArgBase::PtrToMapKey | ArgBase::PtrToMapValue
            );
            if mem_arg
                && !p.pkt_access
                && !reg.maybe_null
                && matches!(reg.ty, RegType::Packet | RegType::PacketMeta)
            {
                // `may_access_direct_pkt_data` with the call's meta: only helpers marked
                // `pkt_access` take packet memory (the others may move or free the packet).
                return Err("helper access to the packet is not allowed".to_string());
            }
            if let Some(expected) = sock_arg_types(arg.base) {
                // `check_reg_type` with `sock_types`, `fullsock_types`,
                // `btf_id_sock_common_types`.
                let ok = match arg.base {
                    ArgBase::PtrToSocket => reg.ty == RegType::Sock,
                    _ => reg.ty.is_sock(),
                };
                if !ok || reg.maybe_null {
                    return Err(format!("R{rn} type={} expected={expected}", type_str(&reg)));
                }
                if arg.is_release() && reg.ref_obj_id == 0 {
                    return Err(format!(
                        "R{rn} must be referenced when passed to release function"
                    ));
                }
                if reg.ref_obj_id != 0 {
                    meta_ref = Some(reg.ref_obj_id);
                }
                if arg.is_release() {
                    released = meta_ref;
                }
                i += 1;
                continue;
            }
            match arg.base {
                ArgBase::Anything | ArgBase::DontCare => {}
                ArgBase::ConstMapPtr => {
                    if reg.ty != RegType::MapPtr {
                        return Err(format!("R{rn} type={} expected=map_ptr", type_str(&reg)));
                    }
                    let m = &self.opts.maps[reg.map as usize];
                    if p.name == "tail_call" && m.map_type != MapType::ProgArray {
                        // The kernel's message has no newline: the statistics line follows it.
                        return Err("expected prog array map for tail call\u{0}".to_string());
                    }
                    map = Some(reg.map);
                }
                ArgBase::PtrToMapValue
                    if arg.may_be_null()
                        && reg.is_scalar()
                        && reg.is_const()
                        && reg.var_off.value == 0 => {}
                ArgBase::PtrToMapKey | ArgBase::PtrToMapValue => {
                    let Some(m) = map else {
                        return Err(format!(
                            "invalid map_ptr to access map->{}",
                            if arg.base == ArgBase::PtrToMapKey {
                                "key"
                            } else {
                                "value"
                            }
                        ));
                    };
                    self.check_mem_arg_type(&reg, rn, arg.may_be_null())?;
                    let mi = &self.opts.maps[m as usize];
                    let size = if arg.base == ArgBase::PtrToMapKey {
                        mi.key_size
                    } else {
                        mi.value_size
                    };
                    if size == 0 {
                        return Err("invalid zero-sized read".to_string());
                    }
                    self.check_helper_mem(st, regno, size, arg.is_uninit())?;
                }
                ArgBase::PtrToMem => {
                    if arg.may_be_null()
                        && reg.is_scalar()
                        && reg.is_const()
                        && reg.var_off.value == 0
                    {
                        // The NULL is relied on (a non-NULL pointer would be checked).
                        self.mark_precise(st, rn);
                        if p.args.get(i + 1).is_some_and(|a| a.is_mem_size()) {
                            // The size of no memory is still a size (`check_mem_size_reg`).
                            self.mark_precise(st, rn + 1);
                            i += 1;
                        }
                        i += 1;
                        continue;
                    }
                    self.check_mem_arg_type(&reg, rn, false)?;
                    let write = arg.is_uninit() || arg.flags.contains(TypeFlags::MEM_WRITE);
                    if let Some(size) = p.fixed_size(i) {
                        self.check_helper_mem(st, regno, size, write)?;
                    } else if p.args.get(i + 1).is_some_and(|a| a.is_mem_size()) {
                        let size_arg = p.args[i + 1];
                        let srn = rn + 1;
                        let sregno = R::new(srn as u8).expect("r2-r5");
                        self.check_reg_read(st, sregno)?;
                        let s = *st.reg(srn);
                        if !s.is_scalar() {
                            return Err(format!("R{srn} type={} expected=scalar", type_str(&s)));
                        }
                        if s.smin < 0 {
                            return Err(format!("R{srn} min value is negative, either use unsigned or 'var &= const'"));
                        }
                        if s.umin == 0 && size_arg.base == ArgBase::ConstSize {
                            return Err(format!(
                                "R{srn} invalid zero-sized read: u64=[{},{}]",
                                s.umin, s.umax
                            ));
                        }
                        if s.umax >= MAX_VAR_SIZ {
                            return Err(format!("R{srn} unbounded memory access, use 'var &= const' or 'if (var < const)'"));
                        }
                        self.check_helper_mem(st, regno, s.umax as u32, write)?;
                        msize_max = s.umax;
                        self.mark_precise(st, srn);
                        i += 1;
                    }
                }
                ArgBase::ConstSize | ArgBase::ConstSizeOrZero => {}
                ArgBase::PtrToCtx => {
                    if arg.may_be_null()
                        && reg.is_scalar()
                        && reg.is_const()
                        && reg.var_off.value == 0
                    {
                    } else if reg.ty != RegType::Ctx {
                        return Err(format!("R{rn} type={} expected=ctx", type_str(&reg)));
                    } else if reg.off != 0 {
                        return Err(format!(
                            "dereference of modified ctx ptr R{rn} off={} disallowed",
                            reg.off
                        ));
                    }
                }
                ArgBase::PtrToStack
                    if reg.ty != RegType::Stack && !(arg.may_be_null() && reg.is_scalar()) =>
                {
                    return Err(format!("R{rn} type={} expected=fp", type_str(&reg)));
                }
                ArgBase::PtrToFunc => {
                    if reg.ty != RegType::Func {
                        return Err(format!("R{rn} type={} expected=func", type_str(&reg)));
                    }
                    callback = Some(reg.subprog);
                }
                ArgBase::PtrToRingbufMem => {
                    if reg.ty != RegType::Mem || !reg.ringbuf || reg.maybe_null {
                        return Err(format!(
                            "R{rn} type={} expected=ringbuf_mem",
                            type_str(&reg)
                        ));
                    }
                    if reg.off != 0 || !reg.var_off.is_const() || reg.var_off.value != 0 {
                        return Err(format!(
                            "R{rn} must have zero offset when passed to release func or trusted arg to kfunc"
                        ));
                    }
                    if reg.ref_obj_id == 0 || !st.refs.iter().any(|r| r.id == reg.ref_obj_id) {
                        return Err(format!(
                            "R{rn} must be referenced when passed to release function"
                        ));
                    }
                    released = Some(reg.ref_obj_id);
                }
                ArgBase::ConstAllocSizeOrZero => {
                    if !reg.is_scalar() || !reg.is_const() {
                        return Err(format!("R{rn} is not a known constant'"));
                    }
                    alloc_size = Some(reg.var_off.value as u32);
                    self.mark_precise(st, rn);
                }
                ArgBase::PtrToConstStr => {
                    if reg.ty != RegType::MapValue {
                        return Err(format!("R{rn} type={} expected=map_value", type_str(&reg)));
                    }
                    let ok = self
                        .opts
                        .maps
                        .get(reg.map as usize)
                        .is_some_and(|m| m.frozen || m.rdonly_prog);
                    if !ok {
                        return Err(format!("R{rn} does not point to a readonly map'"));
                    }
                }
                ArgBase::PtrToSpinLock => {
                    self.process_spin_lock(st, pc, &reg, rn, p.name == "spin_lock")?
                }
                _ => {}
            }
            i += 1;
        }
        if let Some(m) = map {
            let mt = self.opts.maps[m as usize].map_type;
            if !map_func_ok(mt, p.name) {
                return Err(format!(
                    "cannot pass map_type {} into func {}#{id}",
                    mt.id(),
                    name()
                ));
            }
        }
        if let Some(refid) = released {
            // `release_reference`: the reference must still be held.
            if !st
                .refs
                .iter()
                .any(|r| r.id == refid && r.kind == RefKind::Ptr)
            {
                return Err(format!(
                    "func {}#{id} reference has not been acquired before",
                    name()
                ));
            }
            st.refs.retain(|r| r.id != refid || r.kind != RefKind::Ptr);
            st.for_each_reg(|x| {
                if x.ref_obj_id == refid {
                    *x = Reg::unknown();
                }
            });
        }
        if let Some(m) = map {
            let mi = &self.opts.maps[m as usize];
            let r3 = *st.reg(3);
            // A constant tail call index in range is relied on (`record_func_key`).
            if p.name == "tail_call"
                && r3.is_scalar()
                && r3.is_const()
                && r3.var_off.value < mi.max_entries as u64
            {
                self.mark_precise(st, 3);
            }
        }
        if p.name == "tail_call" {
            self.check_resource_leak(st, "tail_call", true)?;
        }
        if p.name == "get_local_storage" {
            let r2 = *st.reg(2);
            if !(r2.is_scalar() && r2.is_const() && r2.var_off.value == 0) {
                return Err("get_local_storage() doesn't support non-zero flags".to_string());
            }
        }
        if p.name == "loop" {
            // A zero flags argument lets the kernel inline the loop (`loop_flag_is_zero`).
            let r4 = *st.reg(4);
            if r4.is_scalar() && r4.is_const() && r4.var_off.value == 0 {
                self.mark_precise(st, 4);
            }
            // The iteration count bounds how often the callback is visited.
            self.mark_precise(st, 1);
        }
        if id == bpfsim_vm::host::MAP_LOOKUP_ELEM {
            // Only a call whose r1 is the same map on every path tells the JIT which lookup to
            // compile; a `None` map (not possible for this prototype) counts as a disagreement.
            if let Some(m) = self.lookup_map.get_mut(pc) {
                *m = match (*m, map) {
                    (NO_MAP, Some(x)) => x,
                    (same, Some(x)) if same == x => same,
                    _ => MANY_MAPS,
                };
            }
        }
        let mut r0 = self.ret_reg(st, p, map, alloc_size, pc);
        refine_retval_range(&mut r0, p.name, msize_max);
        if r0.ty.is_sock() && is_ptr_cast(p.name) {
            // A cast of a socket holds the reference of the socket it casts.
            r0.ref_obj_id = meta_ref.unwrap_or(0);
        }
        if let Some(cb) = callback {
            return self.enter_callback(st, pc, p, cb as usize, map, r0);
        }
        let step = self.finish_call(st, pc, Some(p), map, r0)?;
        if changes_pkt_data(p.name) {
            // The packet may have moved: every pointer into it is stale
            // (`clear_all_pkt_pointers`; privileged programs keep them as scalars).
            st.for_each_reg(|x| {
                if matches!(
                    x.ty,
                    RegType::Packet | RegType::PacketMeta | RegType::PacketEnd
                ) {
                    *x = Reg::unknown();
                }
            });
        }
        Ok(step)
    }

    /// The memory argument types a helper accepts (`mem_types`, `map_key_value_types`).
    fn check_mem_arg_type(&self, reg: &Reg, rn: usize, _or_null: bool) -> Result<(), String> {
        let ok = !reg.maybe_null
            && matches!(
                reg.ty,
                RegType::Stack
                    | RegType::Packet
                    | RegType::PacketMeta
                    | RegType::MapKey
                    | RegType::MapValue
                    | RegType::Mem
            )
            || (reg.ty == RegType::BtfId && super::btf::is_trusted(reg));
        if !ok {
            return Err(format!(
                "R{rn} type={} expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
                type_str(reg)
            ));
        }
        Ok(())
    }

    /// r0 after the call, by the prototype's return type.
    fn ret_reg(
        &mut self,
        st: &mut State,
        p: &HelperProto,
        map: Option<u32>,
        alloc: Option<u32>,
        pc: usize,
    ) -> Reg {
        match p.ret.base {
            RetBase::Integer => Reg::unknown(),
            RetBase::Void => Reg::NOT_INIT,
            RetBase::PtrToMapValue => {
                let mut r = Reg::ptr(RegType::MapValue);
                r.map = map.unwrap_or(0);
                r.maybe_null = p.ret.may_be_null();
                // Array lookups with a constant key in bounds cannot fail (6.14+).
                if let Some(m) = map {
                    let mi = &self.opts.maps[m as usize];
                    if p.name == "map_lookup_elem"
                        && matches!(mi.map_type, MapType::Array | MapType::PercpuArray)
                    {
                        if let Some((k, spilled)) = const_map_key(st, st.reg(2), mi.key_size) {
                            let key = *st.reg(2);
                            let at = key.off as i64 + key.var_off.value as i64;
                            let slot = ((-at - 1) / 8) as usize;
                            // The key's value is relied on.
                            if spilled {
                                self.mark_precise_slot(st, key.frameno as usize, slot);
                            }
                            if k < mi.max_entries as u64 {
                                r.maybe_null = false;
                            }
                        }
                    }
                }
                let lock = map.is_some_and(|m| self.opts.maps[m as usize].spin_lock.is_some());
                if r.maybe_null || lock {
                    // A value that may hold a lock has an id even when it cannot be NULL: it
                    // names the lock.
                    r.id = self.new_id();
                }
                r
            }
            RetBase::PtrToMem => {
                let mut r = Reg::ptr(RegType::Mem);
                r.maybe_null = p.ret.may_be_null();
                r.ringbuf = p.ret.flags.contains(TypeFlags::MEM_RINGBUF);
                r.mem_size = alloc.unwrap_or(0);
                r.id = self.new_id();
                if p.is_acquire(None) {
                    // The reference has an id of its own, after the possibly-NULL pointer's
                    // (`acquire_reference`), which it replaces.
                    r.id = self.new_id();
                    r.ref_obj_id = r.id;
                    st.refs.push(Ref::ptr(r.id, pc));
                }
                r
            }
            RetBase::PtrToSocket | RetBase::PtrToSockCommon | RetBase::PtrToTcpSock => {
                let mut r = Reg::ptr(match p.ret.base {
                    RetBase::PtrToSocket => RegType::Sock,
                    RetBase::PtrToSockCommon => RegType::SockCommon,
                    _ => RegType::TcpSock,
                });
                r.maybe_null = p.ret.may_be_null();
                if r.maybe_null {
                    r.id = self.new_id();
                }
                let mt = map.map(|m| self.opts.maps[m as usize].map_type);
                if p.is_acquire(mt) {
                    // As for a ring buffer reservation: the reference's own id replaces the
                    // pointer's (`acquire_reference`).
                    r.id = self.new_id();
                    r.ref_obj_id = r.id;
                    st.refs.push(Ref::ptr(r.id, pc));
                }
                r
            }
            _ => Reg::unknown(),
        }
    }

    /// After the call: r1-r5 are gone, r0 is the result.
    fn finish_call(
        &mut self,
        st: &mut State,
        pc: usize,
        _p: Option<&HelperProto>,
        _map: Option<u32>,
        r0: Reg,
    ) -> Result<Step, String> {
        for r in 1..=5 {
            *st.reg_mut(r) = Reg::NOT_INIT;
        }
        *st.reg_mut(0) = r0;
        Ok(Step::Next(pc + 1))
    }

    /// `bpf_loop`, `bpf_for_each_map_elem` and friends (`push_callback_call`): one more visit
    /// of the callback, in a frame of its own with the arguments the helper gives it, is left
    /// for later; this path goes on after the call as if the callback had run no more. Each
    /// visit ends back at the call, which pushes the next one, until a visit's state at the
    /// call is one already seen (see `visit`).
    fn enter_callback(
        &mut self,
        st: &mut State,
        pc: usize,
        p: &HelperProto,
        callback: usize,
        map: Option<u32>,
        r0: Reg,
    ) -> Result<Step, String> {
        let caller = st.cur().regs;
        // bpf_loop stops being revisited once it has been entered as often as it may run.
        let visit = p.name != "loop" || (st.cur().callback_depth as u64) < caller[1].umax;
        let mut other = None;
        if visit {
            let mut args = [Reg::NOT_INIT; 5];
            match p.name {
                "loop" => {
                    // The index: a scalar the kernel gives no bounds (`set_loop_callback_state`
                    // only sets the type of a cleared register).
                    args[0] = Reg::unknown();
                    args[1] = caller[3];
                }
                "for_each_map_elem" => {
                    let m = map.unwrap_or(0);
                    args[0] = caller[1];
                    args[1] = Reg::ptr(RegType::MapKey);
                    args[1].map = m;
                    args[2] = Reg::ptr(RegType::MapValue);
                    args[2].map = m;
                    // Each visit's value pointer gets an id of its own, as the kernel's.
                    args[2].id = self.new_id();
                    args[3] = caller[3];
                }
                _ => {
                    args[0] = Reg::unknown();
                    args[1] = Reg::unknown();
                    args[2] = Reg::unknown();
                }
            }
            let mut cb = st.clone();
            cb.cur_mut().callback_depth += 1;
            self.push_frame(&mut cb, pc, callback, Some(args))?;
            other = Some(Box::new(cb));
        }
        st.cur_mut().callback_depth = 0;
        self.finish_call(st, pc, Some(p), map, r0)?;
        Ok(match other {
            Some(other) => Step::Fork {
                fall: pc + 1,
                taken: callback,
                other,
            },
            None => Step::Next(pc + 1),
        })
    }

    /// `BPF_EXIT`: return to the caller, or end the path with the program's checks.
    pub fn check_exit(&mut self, st: &mut State) -> Result<Step, String> {
        self.check_resource_leak(
            st,
            "BPF_EXIT instruction in main prog",
            st.frames.len() == 1,
        )?;
        // A static subprogram returns whatever r0 holds, even nothing: only its use in the
        // caller is checked (`prepare_func_exit`).
        let static_return = st.frames.len() > 1
            && !matches!(
                self.insn_at(st.cur().callsite),
                Some(bpfsim_vm::isa::Insn::Call(CallTarget::Helper(_)))
            );
        if !static_return {
            self.check_reg_read(st, R::R0)?;
        }
        let r0 = *st.reg(0);
        self.record_reach(st);
        if st.frames.len() > 1 {
            let is_callback = matches!(
                self.insn_at(st.cur().callsite),
                Some(bpfsim_vm::isa::Insn::Call(CallTarget::Helper(_)))
            );
            if is_callback && r0.is_scalar() {
                // The callback's return value is checked against its range: relied on.
                self.mark_precise(st, 0);
            }
            let callee = st.frames.pop().expect("a callee frame");
            let callsite = callee.callsite;
            if r0.ty == RegType::Stack && r0.frameno as usize >= st.frames.len() {
                return Err("cannot return stack pointer to the caller".to_string());
            }
            let d = self.subprog_depth.entry(callee.subprog).or_default();
            *d = (*d).max(callee.depth);
            if is_callback {
                if !r0.is_scalar() {
                    return Err(format!(
                        "At callback return the register R0 is not a known value ({})",
                        type_str(&r0)
                    ));
                }
                if r0.smin < 0 || r0.smax > 1 {
                    return Err(invalid_scalar("At callback return", &r0, 0, 1));
                }
                // Back to the call, which schedules the next visit of the callback; the
                // caller's registers are as they were before the call.
                self.widen_imprecise(st, callsite);
                return Ok(Step::Next(callsite));
            }
            for r in 1..=5 {
                *st.reg_mut(r) = Reg::NOT_INIT;
            }
            *st.reg_mut(0) = r0;
            return Ok(Step::Next(callsite + 1));
        }
        let d = self.subprog_depth.entry(st.frames[0].subprog).or_default();
        *d = (*d).max(st.frames[0].depth);
        if st.frames[0].subprog != 0 {
            // The end of a global function: some scalar, whatever the program type.
            if !r0.is_scalar() {
                return Err(format!(
                    "At subprogram exit the register R0 is not a scalar value ({})",
                    type_str(&r0)
                ));
            }
            return Ok(Step::Done);
        }
        let range = match self.opts.prog_type {
            ProgType::CgroupSkb => Some(
                if self.opts.attach == Some(bpfsim_vm::loader::AttachType::CgroupInetEgress) {
                    (0, 3)
                } else {
                    (0, 1)
                },
            ),
            ProgType::CgroupSock
            | ProgType::SockOps
            | ProgType::CgroupDevice
            | ProgType::CgroupSysctl
            | ProgType::CgroupSockopt => Some((0, 1)),
            // An iterator says whether to stop; other tracing attach types are not checked
            // here (fentry/fexit could not be loaded to compare).
            ProgType::Tracing
                if self.opts.attach == Some(bpfsim_vm::loader::AttachType::TraceIter) =>
            {
                Some((0, 1))
            }
            _ => None,
        };
        if let Some((lo, hi)) = range {
            if !r0.is_scalar() {
                return Err(format!(
                    "At program exit the register R0 is not a known value ({})",
                    type_str(&r0)
                ));
            }
            self.mark_precise(st, 0);
            if r0.smin < lo || r0.smax > hi {
                return Err(invalid_scalar("At program exit", &r0, lo, hi));
            }
        }
        Ok(Step::Done)
    }
}

impl Verifier<'_> {
    /// `check_resource_leak`: no lock held (when `check_lock`) and, in the outermost frame, no
    /// reference left, at a program's exit, a tail call or a legacy packet load.
    pub fn check_resource_leak(
        &mut self,
        st: &State,
        prefix: &str,
        check_lock: bool,
    ) -> Result<(), String> {
        if check_lock && st.lock.is_some() {
            return Err(format!(
                "{prefix} cannot be used inside bpf_spin_lock-ed region"
            ));
        }
        if st.frames.len() == 1 {
            let mut leak = false;
            for r in st.refs.iter().filter(|r| r.kind == RefKind::Ptr) {
                self.log.push(format!(
                    "Unreleased reference id={} alloc_insn={}",
                    r.id, r.insn
                ));
                leak = true;
            }
            if leak {
                return Err(format!("{prefix} would lead to reference leak"));
            }
        }
        Ok(())
    }

    /// `process_spin_lock`: the argument points at the `struct bpf_spin_lock` of a map value
    /// (at a constant offset, in a map whose BTF has one); one lock is held at a time and an
    /// unlock releases the lock held.
    fn process_spin_lock(
        &mut self,
        st: &mut State,
        pc: usize,
        reg: &Reg,
        rn: usize,
        is_lock: bool,
    ) -> Result<(), String> {
        if reg.ty != RegType::MapValue || reg.maybe_null {
            return Err(format!(
                "R{rn} type={} expected=map_value, ptr_",
                type_str(reg)
            ));
        }
        if !reg.var_off.is_const() {
            return Err(format!(
                "R{rn} doesn't have constant offset. bpf_spin_lock has to be at the constant offset"
            ));
        }
        let m = &self.opts.maps[reg.map as usize];
        if !m.btf {
            return Err(format!(
                "map '{}' has to have BTF in order to use bpf_spin_lock",
                m.name
            ));
        }
        let Some(lock_off) = m.spin_lock else {
            return Err(format!("map '{}' has no valid bpf_spin_lock", m.name));
        };
        let off = reg.var_off.value as i64 + reg.off as i64;
        if off != lock_off as i64 {
            return Err(format!(
                "off {off} doesn't point to 'struct bpf_spin_lock' that is at {lock_off}"
            ));
        }
        let lock = (reg.id, reg.map);
        if is_lock {
            if st.lock.is_some() {
                return Err("Locking two bpf_spin_locks are not allowed".to_string());
            }
            st.refs.push(Ref {
                id: reg.id,
                insn: pc,
                kind: RefKind::Lock,
                ptr: reg.map,
            });
            st.lock = Some(lock);
        } else {
            if st.lock.is_none() {
                return Err("bpf_spin_unlock without taking a lock".to_string());
            }
            let held = st
                .refs
                .iter()
                .position(|r| r.kind == RefKind::Lock && (r.id, r.ptr) == lock);
            let Some(i) = held.filter(|_| st.lock == Some(lock)) else {
                return Err("bpf_spin_unlock of different lock".to_string());
            };
            st.refs.remove(i);
            st.lock = None;
        }
        Ok(())
    }
}

/// The socket types a socket argument accepts, as the kernel lists them in its error
/// (`compatible_reg_types`); `None` for other arguments.
fn sock_arg_types(base: ArgBase) -> Option<&'static str> {
    match base {
        ArgBase::PtrToSockCommon => Some("sock_common, sock, tcp_sock, xdp_sock"),
        ArgBase::PtrToSocket => Some("sock"),
        ArgBase::PtrToBtfIdSockCommon => {
            Some("sock_common, sock, tcp_sock, xdp_sock, ptr_, trusted_ptr_")
        }
        _ => None,
    }
}

/// `do_refine_retval_range`: what some integer-returning helpers may return.
fn refine_retval_range(r0: &mut Reg, name: &str, msize_max: u64) {
    if !r0.is_scalar() {
        return;
    }
    match name {
        // The length copied, at most the buffer's size, or a negative errno.
        "get_stack"
        | "get_task_stack"
        | "probe_read_str"
        | "probe_read_kernel_str"
        | "probe_read_user_str" => {
            r0.smax = msize_max as i64;
            r0.s32max = msize_max as i32;
            r0.smin = -4095;
            r0.s32min = -4095;
            r0.sync();
        }
        "get_smp_processor_id" => {
            let max = nr_cpu_ids().saturating_sub(1) as u64;
            (r0.umin, r0.umax, r0.smin, r0.smax) = (0, max, 0, max as i64);
            (r0.u32min, r0.u32max, r0.s32min, r0.s32max) = (0, max as u32, 0, max as i32);
            r0.sync();
        }
        _ => {}
    }
}

/// The kernel's `nr_cpu_ids` on this machine (the possible CPUs), which bounds
/// `bpf_get_smp_processor_id`.
fn nr_cpu_ids() -> u32 {
    static N: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
        let max = text
            .trim()
            .split(',')
            .filter_map(|r| r.rsplit('-').next()?.trim().parse::<u32>().ok())
            .max();
        match max {
            Some(m) => m + 1,
            None => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        }
    })
}

/// `is_ptr_cast_function`: helpers returning another view of the socket they are given.
fn is_ptr_cast(name: &str) -> bool {
    matches!(
        name,
        "tcp_sock"
            | "sk_fullsock"
            | "skc_to_tcp_sock"
            | "skc_to_tcp6_sock"
            | "skc_to_udp6_sock"
            | "skc_to_mptcp_sock"
            | "skc_to_tcp_timewait_sock"
            | "skc_to_tcp_request_sock"
    )
}

/// `verbose_invalid_scalar`.
fn invalid_scalar(ctx: &str, r: &Reg, lo: i64, hi: i64) -> String {
    let mut s = format!("{ctx} the register R0 has");
    let mut unknown = true;
    if r.smin > i64::MIN {
        s.push_str(&format!(" smin={}", r.smin));
        unknown = false;
    }
    if r.smax < i64::MAX {
        s.push_str(&format!(" smax={}", r.smax));
        unknown = false;
    }
    if unknown {
        s.push_str(" unknown scalar value");
    }
    s.push_str(&format!(" should have been in [{lo}, {hi}]"));
    s
}
