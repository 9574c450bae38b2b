//! The harness of the JIT's own packet proofs' tests (`bounds.rs`, `bounds_props.rs`): an
//! XDP-like context, a helper that moves `data`, and runs under both engines between guard
//! bytes.
#![allow(dead_code)] // each test file uses its part

pub use bpfsim_jit::{Hints, JitProgram};
pub use bpfsim_vm::asm::assemble;
pub use bpfsim_vm::isa::{Insn, Size};
pub use bpfsim_vm::{Interpreter, Outcome, Program, Vm};

/// An XDP-like context: `data` at offset 0 and `data_end` at 4, 4-byte loads that read the
/// 64-bit guest pointers (as the kernel's rewrite of `xdp_md` does).
pub struct Pkt {
    pub data: u64,
    pub end: u64,
    /// `data_end`'s low 4 bytes are a cell a store may write straight into.
    pub cell: bool,
}

impl bpfsim_vm::memory::Context for Pkt {
    fn load(&self, off: u32, size: Size) -> Option<u64> {
        match (off, size) {
            (0, Size::W) => Some(self.data),
            (4, Size::W) => Some(self.end),
            _ => None,
        }
    }
    fn store(&mut self, off: u32, size: Size, value: u64) -> bool {
        if !self.cell || (off, size) != (4, Size::W) {
            return false;
        }
        self.end = (self.end & !0xffff_ffff) | (value & 0xffff_ffff);
        true
    }
    fn store_cell(&mut self, off: u32, size: Size) -> Option<&mut [u8]> {
        if !self.cell || (off, size) != (4, Size::W) {
            return None;
        }
        // SAFETY: a `u64` is 8 initialised bytes, any of which may hold any value; the low 4
        // come first on a little-endian host.
        Some(unsafe { std::slice::from_raw_parts_mut((&mut self.end as *mut u64).cast::<u8>(), 4) })
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn loads_are_pure(&self) -> bool {
        true
    }
}

/// Helper 7 moves `data` by its first argument, as `bpf_xdp_adjust_head` does.
pub struct MoveData;

impl bpfsim_vm::Host for MoveData {
    fn call_helper(
        &mut self,
        id: u32,
        args: [u64; 5],
        mem: &mut bpfsim_vm::MemoryMap<'_>,
    ) -> Result<u64, bpfsim_vm::HelperStop> {
        if id != 7 {
            return Err(bpfsim_vm::HelperStop::Unknown);
        }
        let p = mem
            .context_mut()
            .and_then(|c| c.downcast_mut::<Pkt>())
            .ok_or(bpfsim_vm::HelperStop::Fault)?;
        p.data = p.data.wrapping_add(args[0]);
        Ok(0)
    }
}

/// The verifier's context hints for every load through `r6` (the programs keep the context
/// there), and nothing else: what the JIT proves of the packet it proves alone.
pub fn ctx_hints(prog: &Program) -> Hints {
    let slots = prog.iter().map(|(pc, _)| pc + 2).max().unwrap_or(0);
    let mut ctx = vec![false; slots];
    for (pc, insn) in prog.iter() {
        if let Insn::Load { src: r, .. } | Insn::Store { dst: r, .. } = insn {
            ctx[pc] = r.index() == 6;
        }
    }
    Hints {
        ctx,
        ..Hints::default()
    }
}

/// How the context is made for a run over `packet` (the primary region) and `other` (a second
/// region): `data` and `data_end` from the two regions' guest addresses.
pub type Make = dyn Fn(u64, u64, usize) -> Pkt;

/// Runs `src` over `packet` (writable or not) under the interpreter and the JIT, three runs on
/// one map each, and returns both engines' outcomes and packets after.
pub fn both(src: &str, packet: &[u8], writable: bool, make: &Make) -> [Runs; 2] {
    let prog = Program::new(assemble(src).unwrap()).unwrap();
    let jit = JitProgram::compile_with(&prog, &ctx_hints(&prog)).unwrap();
    both_compiled(&prog, &jit, src, packet, writable, make)
}

/// Each engine's outcomes of a test's runs, and the packet after them.
pub type Runs = (Vec<Outcome>, Vec<u8>);

/// [`both`] with the program compiled already.
pub fn both_compiled(
    prog: &Program,
    jit: &JitProgram,
    src: &str,
    packet: &[u8],
    writable: bool,
    make: &Make,
) -> [Runs; 2] {
    let interp = Interpreter::new(prog);
    let engines: [&dyn bpfsim_vm::Executable; 2] = [&interp, jit];
    engines.map(|e| {
        let mut vm = Vm::default();
        // The packet between guard bytes of one allocation: a proven access outside it would
        // show there.
        let mut buf = vec![0xeeu8; packet.len() + 8192];
        buf[4096..4096 + packet.len()].copy_from_slice(packet);
        let before = buf.clone();
        let mut other = [0x55u8; 64];
        let mut outs = Vec::new();
        let mut ctx;
        {
            let (head, rest) = buf.split_at_mut(4096);
            let (pkt, tail) = rest.split_at_mut(packet.len());
            let mut mem = vm.memory();
            let p = if writable {
                mem.map_mut(pkt).unwrap()
            } else {
                mem.map_ro(pkt).unwrap()
            };
            let o = mem.map_mut(&mut other).unwrap();
            ctx = make(p, o, packet.len());
            let c = mem.map_context(&mut ctx).unwrap();
            let mut prepared = e.prepare();
            for _ in 0..3 {
                let args = [c, 0, 0, 0, 0];
                outs.push(match &mut prepared {
                    Some(p) => p.execute(&mut mem, &mut MoveData, args, 10_000),
                    None => e.execute(&mut mem, &mut MoveData, args, 10_000),
                });
            }
            let _ = (head, tail);
        }
        assert_eq!(&buf[..4096], &before[..4096], "{src}: guard before");
        assert_eq!(
            &buf[4096 + packet.len()..],
            &before[4096 + packet.len()..],
            "{src}: guard after"
        );
        (outs, buf[4096..4096 + packet.len()].to_vec())
    })
}

pub fn truthful(p: u64, _: u64, len: usize) -> Pkt {
    Pkt {
        data: p,
        end: p + len as u64,
        cell: false,
    }
}
