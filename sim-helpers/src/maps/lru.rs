//! The LRU lists of `BPF_MAP_TYPE_LRU_HASH` and `LRU_PERCPU_HASH`, following the algorithm of
//! kernel/bpf/bpf_lru_list.c step for step, so that the same operations evict the same keys.
//!
//! The kernel does not keep a strict LRU order. Elements sit on an active or an inactive list
//! and carry a "ref" bit that a lookup from a program sets. Two flavours:
//!
//! - common LRU (the default): one global active/inactive/free list, plus per CPU a local free
//!   list and a "pending" list of the elements that CPU inserted recently. When a CPU has no local
//!   free element it flushes its pending list into the global lists, rotates them, and grabs up to
//!   `target_free` free elements at once, evicting that many from the tail of the inactive list if
//!   there are not enough free ones (`target_free = clamp(max_entries / ncpus / 2, 1, 128)`, as
//!   since Linux 6.16). So an insert into a full map can evict several elements, and free
//!   elements parked on one CPU's local list are invisible to the others, which then steal them
//!   (or the oldest pending element of another CPU) round-robin.
//! - `BPF_F_NO_COMMON_LRU`: a separate active/inactive/free list per CPU, each with
//!   `max_entries / ncpus` elements; a CPU evicts only from its own list, up to 4 at a time.
//!
//! Everything here is deterministic: "the current CPU" is the simulated CPU the caller names.
//! Which slot (arena offset) an element gets differs from the kernel's element address, but which
//! keys survive does not; the kernel test in `tests/maps_kernel.rs` replays random operation
//! sequences against the real kernel and compares the surviving keys after every step.
//!
//! Lists are intrusive doubly linked lists over node indices (node = slot), with one sentinel
//! index per list head after the nodes, exactly like `struct list_head`. Free lists are stacks:
//! only their size and membership matter.

/// Node states (`enum bpf_lru_list_type`); `FREE` is 0 so that fresh nodes need no setup.
const FREE: u8 = 0;
const ACTIVE: u8 = 1;
const INACTIVE: u8 = 2;
const LOCAL_FREE: u8 = 3;
const LOCAL_PENDING: u8 = 4;

/// `LOCAL_FREE_TARGET` and `LOCAL_NR_SCANS` of the common LRU.
const LOCAL_FREE_TARGET: u32 = 128;
/// `PERCPU_FREE_TARGET` and `PERCPU_NR_SCANS` of the per-CPU LRU.
const PERCPU_FREE_TARGET: u32 = 4;

/// `struct list_head` links by index: nodes first, then list-head sentinels.
struct Links {
    prev: Box<[u32]>,
    next: Box<[u32]>,
}

impl Links {
    fn init_head(&mut self, h: u32) {
        self.prev[h as usize] = h;
        self.next[h as usize] = h;
    }
    fn prev(&self, n: u32) -> u32 {
        self.prev[n as usize]
    }
    fn next(&self, n: u32) -> u32 {
        self.next[n as usize]
    }
    fn is_empty(&self, h: u32) -> bool {
        self.next(h) == h
    }
    /// `list_add`: insert `n` right after the head `h` (at the front).
    fn add(&mut self, n: u32, h: u32) {
        let first = self.next(h);
        self.next[h as usize] = n;
        self.prev[n as usize] = h;
        self.next[n as usize] = first;
        self.prev[first as usize] = n;
    }
    /// `list_del`.
    fn del(&mut self, n: u32) {
        let (p, x) = (self.prev(n), self.next(n));
        self.next[p as usize] = x;
        self.prev[x as usize] = p;
    }
}

/// A free list: recycled nodes, then never-used ones.
struct FreeList {
    stack: Vec<u32>,
    fresh: std::ops::Range<u32>,
}

impl FreeList {
    fn pop(&mut self) -> Option<u32> {
        self.stack.pop().or_else(|| self.fresh.next())
    }
    fn is_empty(&self) -> bool {
        self.stack.is_empty() && self.fresh.is_empty()
    }
}

/// `struct bpf_lru_list`.
struct LruList {
    active: u32,
    inactive: u32,
    free: FreeList,
    /// Nodes on the active and inactive lists.
    active_count: u32,
    inactive_count: u32,
    next_inactive_rotation: u32,
}

/// `struct bpf_lru_locallist`.
struct LocalList {
    free: Vec<u32>,
    pending: u32,
    next_steal: u32,
}

pub(crate) struct Lru {
    percpu: bool,
    ncpus: u32,
    nr_scans: u32,
    target_free: u32,
    /// Nodes per CPU list (per-CPU flavour only).
    per_cpu_nodes: u32,
    links: Links,
    ty: Box<[u8]>,
    referenced: Box<[bool]>,
    /// The CPU whose pending list a node was put on (common flavour).
    cpu: Box<[u32]>,
    lists: Vec<LruList>,
    locals: Vec<LocalList>,
}

/// Where `move_to_free` puts a node: its list's free list or a CPU's local free list.
#[derive(Clone, Copy)]
enum FreeTo {
    Global,
    Local(usize),
}

impl Lru {
    /// Lists for `nodes` elements over `ncpus` CPUs; `percpu` is `BPF_F_NO_COMMON_LRU`, for which
    /// `nodes` must be a multiple of `ncpus` (the caller rounds `max_entries` as the kernel does).
    pub(crate) fn new(nodes: u32, ncpus: u32, percpu: bool) -> Lru {
        let ncpus = ncpus.max(1);
        let heads = if percpu { 2 * ncpus } else { 2 + ncpus };
        let total = nodes as usize + heads as usize;
        let mut links = Links {
            prev: vec![0; total].into_boxed_slice(),
            next: vec![0; total].into_boxed_slice(),
        };
        let mut lists = Vec::new();
        let mut locals = Vec::new();
        let per_cpu_nodes = if percpu { nodes / ncpus } else { 0 };
        let make_list = |links: &mut Links, base: u32, fresh| {
            let (active, inactive) = (nodes + base, nodes + base + 1);
            links.init_head(active);
            links.init_head(inactive);
            LruList {
                active,
                inactive,
                free: FreeList {
                    stack: Vec::new(),
                    fresh,
                },
                active_count: 0,
                inactive_count: 0,
                next_inactive_rotation: inactive,
            }
        };
        if percpu {
            for c in 0..ncpus {
                let fresh = c * per_cpu_nodes..(c + 1) * per_cpu_nodes;
                lists.push(make_list(&mut links, 2 * c, fresh));
            }
        } else {
            lists.push(make_list(&mut links, 0, 0..nodes));
            for c in 0..ncpus {
                let pending = nodes + 2 + c;
                links.init_head(pending);
                locals.push(LocalList {
                    free: Vec::new(),
                    pending,
                    next_steal: c,
                });
            }
        }
        Lru {
            percpu,
            ncpus,
            nr_scans: if percpu {
                PERCPU_FREE_TARGET
            } else {
                LOCAL_FREE_TARGET
            },
            target_free: (nodes / ncpus / 2).clamp(1, LOCAL_FREE_TARGET),
            per_cpu_nodes,
            links,
            ty: vec![FREE; nodes as usize].into_boxed_slice(),
            referenced: vec![false; nodes as usize].into_boxed_slice(),
            cpu: vec![0; nodes as usize].into_boxed_slice(),
            lists,
            locals,
        }
    }

    /// A program looked the element up (`bpf_lru_node_set_ref`).
    #[inline]
    pub(crate) fn set_ref(&mut self, node: u32) {
        self.referenced[node as usize] = true;
    }

    fn node_list(&self, node: u32) -> usize {
        if self.percpu {
            (node / self.per_cpu_nodes.max(1)) as usize
        } else {
            0
        }
    }

    fn head(&self, l: usize, ty: u8) -> u32 {
        if ty == ACTIVE {
            self.lists[l].active
        } else {
            self.lists[l].inactive
        }
    }

    fn count(&mut self, l: usize, ty: u8, up: bool) {
        let c = match ty {
            ACTIVE => &mut self.lists[l].active_count,
            INACTIVE => &mut self.lists[l].inactive_count,
            _ => return,
        };
        if up {
            *c += 1;
        } else {
            *c -= 1;
        }
    }

    /// `__bpf_lru_node_move`: between or within the active and inactive lists, or to the free
    /// list; clears the ref bit. A node coming from the free list is not linked anywhere.
    fn move_node(&mut self, l: usize, node: u32, tgt: u8) {
        let old = self.ty[node as usize];
        if old != tgt {
            self.count(l, old, false);
            self.count(l, tgt, true);
            self.ty[node as usize] = tgt;
        }
        self.referenced[node as usize] = false;
        if node == self.lists[l].next_inactive_rotation {
            self.lists[l].next_inactive_rotation = self.links.prev(node);
        }
        if old == ACTIVE || old == INACTIVE {
            self.links.del(node);
        }
        if tgt == FREE {
            self.lists[l].free.stack.push(node);
        } else {
            self.links.add(node, self.head(l, tgt));
        }
    }

    /// `__bpf_lru_node_move_to_free`, for a node on the active or inactive list. Unlike a move,
    /// this keeps the ref bit.
    fn move_to_free(&mut self, l: usize, node: u32, to: FreeTo) {
        if node == self.lists[l].next_inactive_rotation {
            self.lists[l].next_inactive_rotation = self.links.prev(node);
        }
        self.count(l, self.ty[node as usize], false);
        self.links.del(node);
        match to {
            FreeTo::Global => {
                self.ty[node as usize] = FREE;
                self.lists[l].free.stack.push(node);
            }
            FreeTo::Local(c) => {
                self.ty[node as usize] = LOCAL_FREE;
                self.locals[c].free.push(node);
            }
        }
    }

    /// `__bpf_lru_node_move_in`: from a local pending list into the global lists.
    fn move_in(&mut self, node: u32, tgt: u8) {
        self.count(0, tgt, true);
        self.ty[node as usize] = tgt;
        self.referenced[node as usize] = false;
        self.links.del(node);
        self.links.add(node, self.head(0, tgt));
    }

    /// `__bpf_lru_list_rotate_active`: from the tail, referenced nodes go back to the head of
    /// the active list, the others to the inactive list; at most `nr_scans` nodes.
    fn rotate_active(&mut self, l: usize) {
        let head = self.lists[l].active;
        let first = self.links.next(head);
        let mut cur = self.links.prev(head);
        let mut scanned = 0;
        while cur != head {
            let prev = self.links.prev(cur);
            let tgt = if self.referenced[cur as usize] {
                ACTIVE
            } else {
                INACTIVE
            };
            self.move_node(l, cur, tgt);
            scanned += 1;
            if scanned == self.nr_scans || cur == first {
                break;
            }
            cur = prev;
        }
    }

    /// `__bpf_lru_list_rotate_inactive`: from `next_inactive_rotation` towards the head,
    /// referenced nodes move to the active list; the scan position is remembered.
    fn rotate_inactive(&mut self, l: usize) {
        let head = self.lists[l].inactive;
        if self.links.is_empty(head) {
            return;
        }
        let start = self.lists[l].next_inactive_rotation;
        let mut last = self.links.next(start);
        if last == head {
            last = self.links.next(last);
        }
        let mut cur = start;
        let mut next = head;
        let mut scanned = 0;
        while scanned < self.nr_scans {
            if cur == head {
                cur = self.links.prev(cur);
                continue;
            }
            next = self.links.prev(cur);
            if self.referenced[cur as usize] {
                self.move_node(l, cur, ACTIVE);
            }
            if cur == last {
                break;
            }
            cur = next;
            scanned += 1;
        }
        self.lists[l].next_inactive_rotation = next;
    }

    /// `__bpf_lru_list_rotate`.
    fn rotate(&mut self, l: usize) {
        if self.lists[l].inactive_count < self.lists[l].active_count {
            self.rotate_active(l);
        }
        self.rotate_inactive(l);
    }

    /// `__bpf_lru_list_shrink_inactive`: evict unreferenced nodes from the inactive tail.
    fn shrink_inactive(
        &mut self,
        l: usize,
        want: u32,
        to: FreeTo,
        evict: &mut dyn FnMut(u32),
    ) -> u32 {
        let head = self.lists[l].inactive;
        let mut cur = self.links.prev(head);
        let (mut freed, mut scanned) = (0, 0);
        while cur != head {
            let prev = self.links.prev(cur);
            if self.referenced[cur as usize] {
                self.move_node(l, cur, ACTIVE);
            } else {
                evict(cur);
                self.move_to_free(l, cur, to);
                freed += 1;
                if freed == want {
                    break;
                }
            }
            scanned += 1;
            if scanned == self.nr_scans {
                break;
            }
            cur = prev;
        }
        freed
    }

    /// `__bpf_lru_list_shrink`: as above, or else force out the oldest node whatever its ref bit
    /// (from the inactive list if it has any, else from the active list).
    fn shrink(&mut self, l: usize, want: u32, to: FreeTo, evict: &mut dyn FnMut(u32)) {
        if self.shrink_inactive(l, want, to, evict) > 0 {
            return;
        }
        let list = &self.lists[l];
        let head = if self.links.is_empty(list.inactive) {
            list.active
        } else {
            list.inactive
        };
        let tail = self.links.prev(head);
        if tail != head {
            evict(tail);
            self.move_to_free(l, tail, to);
        }
    }

    /// `__local_list_flush`: the pending list, oldest first, into the global lists.
    fn flush_pending(&mut self, cpu: usize) {
        let head = self.locals[cpu].pending;
        let mut cur = self.links.prev(head);
        while cur != head {
            let prev = self.links.prev(cur);
            let tgt = if self.referenced[cur as usize] {
                ACTIVE
            } else {
                INACTIVE
            };
            self.move_in(cur, tgt);
            cur = prev;
        }
    }

    /// `bpf_lru_list_pop_free_to_local`.
    fn refill_local(&mut self, cpu: usize, evict: &mut dyn FnMut(u32)) {
        self.flush_pending(cpu);
        self.rotate(0);
        let mut got = 0;
        while got < self.target_free {
            let Some(node) = self.lists[0].free.pop() else {
                break;
            };
            self.ty[node as usize] = LOCAL_FREE;
            self.locals[cpu].free.push(node);
            got += 1;
        }
        if got < self.target_free {
            self.shrink(0, self.target_free - got, FreeTo::Local(cpu), evict);
        }
    }

    /// `__local_list_add_pending`.
    fn add_pending(&mut self, cpu: usize, node: u32) {
        self.cpu[node as usize] = cpu as u32;
        self.ty[node as usize] = LOCAL_PENDING;
        self.referenced[node as usize] = false;
        self.links.add(node, self.locals[cpu].pending);
    }

    /// `__local_list_pop_pending`: the oldest unreferenced pending node, else the oldest one.
    fn steal_pending(&mut self, cpu: usize, evict: &mut dyn FnMut(u32)) -> Option<u32> {
        let head = self.locals[cpu].pending;
        for force in [false, true] {
            let mut cur = self.links.prev(head);
            while cur != head {
                if force || !self.referenced[cur as usize] {
                    evict(cur);
                    self.links.del(cur);
                    return Some(cur);
                }
                cur = self.links.prev(cur);
            }
        }
        None
    }

    /// `bpf_lru_pop_free`: a free node for a new element inserted on `cpu`, evicting elements
    /// (through `evict`, which must remove the node's key from the table) when needed. `None`
    /// is the kernel's `-ENOMEM`.
    pub(crate) fn pop_free(&mut self, cpu: u32, evict: &mut dyn FnMut(u32)) -> Option<u32> {
        let cpu = (cpu % self.ncpus) as usize;
        if self.percpu {
            self.rotate(cpu);
            if self.lists[cpu].free.is_empty() {
                self.shrink(cpu, PERCPU_FREE_TARGET, FreeTo::Global, evict);
            }
            // Straight onto this CPU's inactive list: the per-CPU flavour has no pending list.
            let node = self.lists[cpu].free.pop()?;
            self.move_node(cpu, node, INACTIVE);
            return Some(node);
        }
        let mut node = self.locals[cpu].free.pop();
        if node.is_none() {
            self.refill_local(cpu, evict);
            node = self.locals[cpu].free.pop();
        }
        if let Some(n) = node {
            self.add_pending(cpu, n);
            return Some(n);
        }
        // Nothing free here or globally: steal from the CPUs' local lists, round-robin.
        let first = self.locals[cpu].next_steal;
        let mut steal = first;
        loop {
            let s = steal as usize;
            node = match self.locals[s].free.pop() {
                Some(n) => Some(n),
                None => self.steal_pending(s, evict),
            };
            steal = (steal + 1) % self.ncpus;
            if node.is_some() || steal == first {
                break;
            }
        }
        self.locals[cpu].next_steal = steal;
        let n = node?;
        self.add_pending(cpu, n);
        Some(n)
    }

    /// `bpf_lru_push_free`: an element was deleted (or a new one was not used).
    pub(crate) fn push_free(&mut self, node: u32) {
        if self.percpu {
            self.move_node(self.node_list(node), node, FREE);
        } else if self.ty[node as usize] == LOCAL_PENDING {
            self.ty[node as usize] = LOCAL_FREE;
            self.referenced[node as usize] = false;
            self.links.del(node);
            self.locals[self.cpu[node as usize] as usize]
                .free
                .push(node);
        } else {
            self.move_node(0, node, FREE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Insert keys 0.. into an LRU of `nodes` elements on CPU 0; return the live set after each.
    fn fill(lru: &mut Lru, inserts: u32) -> Vec<BTreeSet<u32>> {
        let mut live = BTreeSet::new();
        let mut by_node = vec![u32::MAX; 64];
        let mut out = Vec::new();
        for key in 0..inserts {
            let mut evicted = Vec::new();
            let node = lru.pop_free(0, &mut |n| evicted.push(n)).unwrap();
            for n in evicted {
                live.remove(&by_node[n as usize]);
            }
            by_node[node as usize] = key;
            live.insert(key);
            out.push(live.clone());
        }
        out
    }

    #[test]
    fn common_lru_evicts_oldest_one_at_a_time_when_target_is_one() {
        // 4 elements over 2 CPUs: target_free = clamp(4 / 2 / 2, 1, 128) = 1.
        let mut lru = Lru::new(4, 2, false);
        let sets = fill(&mut lru, 7);
        assert_eq!(sets[3], BTreeSet::from([0, 1, 2, 3]));
        assert_eq!(sets[4], BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(sets[6], BTreeSet::from([3, 4, 5, 6]));
    }

    #[test]
    fn common_lru_evicts_target_free_at_once() {
        // 8 elements over 2 CPUs: target_free = 2, so the 9th insert evicts two.
        let mut lru = Lru::new(8, 2, false);
        let sets = fill(&mut lru, 10);
        assert_eq!(sets[8], (2..9).collect::<BTreeSet<_>>());
        assert_eq!(sets[9], (2..10).collect::<BTreeSet<_>>());
    }

    #[test]
    fn per_cpu_lru_uses_only_its_share_and_shrinks_by_four() {
        // 6 elements over 2 CPUs: CPU 0 owns 3 and evicts all 3 at once when out of room.
        let mut lru = Lru::new(6, 2, true);
        let sets = fill(&mut lru, 5);
        assert_eq!(sets[2], BTreeSet::from([0, 1, 2]));
        assert_eq!(sets[3], BTreeSet::from([3]));
        assert_eq!(sets[4], BTreeSet::from([3, 4]));
    }
}
