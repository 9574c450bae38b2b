//! Running a bpf_conformance program in the kernel.
//!
//! The suite's programs expect `r1` = a raw pointer to the test memory and `r2` = its length,
//! which no kernel program type provides. The wrapper built here is an XDP program whose main
//! part copies nothing: the test memory lives in the value of a one-entry array map, and main
//!
//! 1. looks that value up with `bpf_map_lookup_elem` (helper 1) and null-checks it,
//! 2. sets `r1` = the value pointer, `r2` = the memory's length (both 0 without memory),
//! 3. calls the unmodified test program as a BPF-to-BPF subprogram (`call local`), so the test's
//!    `exit`s return to main and its own `call local`s, relative to their own slots, stay valid
//!    because the test is appended as one contiguous block,
//! 4. stores the returned 64-bit `r0` into a second array map and returns `XDP_PASS`.
//!
//! Map value pointers stay valid in subprograms (packet pointers would not survive the call in
//! every kernel, and the memory would have to share the packet with the headers).

use bpfsim_vm::isa::{
    decode, encode, AluOp, CallTarget, Cond, Imm64, Insn, Reg, Size, Source, Width,
};

use crate::bpf::{xdp, KernelBpf, ProgType};

/// `bpf_map_lookup_elem`.
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
/// Size of the packet given to `BPF_PROG_TEST_RUN` (XDP needs at least ETH_HLEN = 14 bytes).
pub const PACKET_LEN: usize = 64;

/// Why the kernel could not run a conformance program: usually the verifier's last log line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct KernelReject {
    /// One line: the verifier's error, or what else went wrong.
    pub reason: String,
    /// The whole verifier log, when the rejection came from `BPF_PROG_LOAD` (else empty).
    pub log: String,
}

impl KernelReject {
    fn new(reason: impl Into<String>) -> KernelReject {
        KernelReject {
            reason: reason.into(),
            log: String::new(),
        }
    }
}

/// Where the wrapper finds the test memory: the map holding it and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemMap {
    pub fd: i32,
    pub len: u32,
}

fn mov(dst: Reg, src: Source) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src,
    }
}

fn add(dst: Reg, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Add,
        dst,
        src: Source::Imm(imm),
    }
}

/// `r0 = &map[0]` through `bpf_map_lookup_elem`, with the key on the stack at `fp - 4`.
fn lookup_first(out: &mut Vec<Insn>, map_fd: i32) {
    out.extend([
        Insn::Store {
            size: Size::W,
            dst: Reg::FP,
            off: -4,
            src: Source::Imm(0),
        },
        mov(Reg::R2, Source::Reg(Reg::FP)),
        add(Reg::R2, -4),
        Insn::LdImm64 {
            dst: Reg::R1,
            imm: Imm64::MapFd(map_fd),
        },
        Insn::Call(CallTarget::Helper(HELPER_MAP_LOOKUP_ELEM)),
    ]);
}

fn slots(insns: &[Insn]) -> usize {
    insns.iter().map(Insn::slots).sum()
}

/// The wrapper's bytecode: main (see the module documentation) followed by `test` unchanged.
pub fn conformance_wrapper(test: &[u8], mem: Option<MemMap>, result_map_fd: i32) -> Vec<u8> {
    // Jumps to `abort` are patched once its slot is known: (index in `main`, slot after the jump).
    let mut to_abort = Vec::new();
    let mut main = Vec::new();
    let jeq0_abort = |main: &mut Vec<Insn>, to_abort: &mut Vec<(usize, usize)>| {
        main.push(Insn::Jmp {
            width: Width::W64,
            cond: Cond::Eq,
            dst: Reg::R0,
            src: Source::Imm(0),
            off: 0,
        });
        to_abort.push((main.len() - 1, slots(main)));
    };
    match mem {
        Some(m) => {
            lookup_first(&mut main, m.fd);
            jeq0_abort(&mut main, &mut to_abort);
            main.push(mov(Reg::R1, Source::Reg(Reg::R0)));
            main.push(mov(Reg::R2, Source::Imm(m.len as i32)));
        }
        None => {
            main.push(mov(Reg::R1, Source::Imm(0)));
            main.push(mov(Reg::R2, Source::Imm(0)));
        }
    }
    // Patched below to reach the test program.
    let call_at = main.len();
    main.push(Insn::Call(CallTarget::Local(0)));
    let after_call = slots(&main);
    // r6 survives the helper call below.
    main.push(mov(Reg::R6, Source::Reg(Reg::R0)));
    lookup_first(&mut main, result_map_fd);
    jeq0_abort(&mut main, &mut to_abort);
    main.push(Insn::Store {
        size: Size::DW,
        dst: Reg::R0,
        off: 0,
        src: Source::Reg(Reg::R6),
    });
    main.push(mov(Reg::R0, Source::Imm(xdp::PASS as i32)));
    main.push(Insn::Exit);
    let abort = slots(&main);
    main.push(mov(Reg::R0, Source::Imm(xdp::ABORTED as i32)));
    main.push(Insn::Exit);
    let test_start = slots(&main);
    for (i, next) in to_abort {
        if let Insn::Jmp { off, .. } = &mut main[i] {
            *off = (abort - next) as i16;
        }
    }
    main[call_at] = Insn::Call(CallTarget::Local((test_start - after_call) as i32));
    let mut bytes = encode(&main);
    bytes.extend_from_slice(test);
    bytes
}

/// Why a program has no meaningful kernel run even if the verifier accepted it: helper calls
/// (the suite's helper 5 is uBPF's `unwind`; the kernel's helper 5 is `bpf_ktime_get_ns`).
fn unportable(test: &[u8]) -> Option<String> {
    let insns = decode(test).ok()?;
    insns.iter().find_map(|i| match i {
        Insn::Call(CallTarget::Helper(id)) => Some(format!(
            "calls helper {id}: the suite's helpers are uBPF's (5 = unwind), the kernel's helper \
             {id} is a different function{}",
            if *id == 5 { " (bpf_ktime_get_ns)" } else { "" }
        )),
        _ => None,
    })
}

impl KernelBpf {
    /// Run a bpf_conformance program (raw bytecode) in the kernel with `mem` as its memory, and
    /// return its full 64-bit `r0`. See the module documentation for the wrapper. Programs that
    /// call helpers are refused without asking the kernel (its helpers are not the suite's).
    pub fn run_conformance_in_kernel(
        &self,
        program: &[u8],
        mem: &[u8],
    ) -> Result<u64, KernelReject> {
        if let Some(why) = unportable(program) {
            return Err(KernelReject::new(why));
        }
        let len = u32::try_from(mem.len())
            .map_err(|_| KernelReject::new("test memory larger than 4 GiB"))?;
        let mem_map = if mem.is_empty() {
            None
        } else {
            let map = self
                .array_map_create(len, 1)
                .map_err(|e| KernelReject::new(format!("creating the memory map: {e}")))?;
            self.array_map_update(&map, 0, mem)
                .map_err(|e| KernelReject::new(format!("filling the memory map: {e}")))?;
            Some(map)
        };
        let result_map = self
            .array_map_create(8, 1)
            .map_err(|e| KernelReject::new(format!("creating the result map: {e}")))?;
        let wrapper = conformance_wrapper(
            program,
            mem_map.as_ref().map(|m| MemMap {
                fd: m.raw_fd(),
                len,
            }),
            result_map.raw_fd(),
        );
        let prog = self
            .prog_load(ProgType::XDP, &wrapper, "GPL", 1)
            .map_err(|f| KernelReject {
                reason: f
                    .reason()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("BPF_PROG_LOAD failed with {}", f.errno)),
                log: f.log,
            })?;
        let out = self
            .test_run(&prog, &[0u8; PACKET_LEN], 1)
            .map_err(|e| KernelReject::new(format!("BPF_PROG_TEST_RUN failed: {e}")))?;
        if out.retval != xdp::PASS {
            return Err(KernelReject::new(format!(
                "the wrapper returned {} instead of XDP_PASS (a map lookup failed)",
                out.retval
            )));
        }
        let r0 = self
            .array_map_lookup(&result_map, 0)
            .map_err(|e| KernelReject::new(format!("reading the result map: {e}")))?;
        let r0: [u8; 8] = r0
            .try_into()
            .map_err(|_| KernelReject::new("result map value is not 8 bytes"))?;
        Ok(u64::from_le_bytes(r0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfsim_vm::Program;

    fn test_program() -> Vec<u8> {
        encode(&[mov(Reg::R0, Source::Reg(Reg::R2)), Insn::Exit])
    }

    #[test]
    fn wrapper_calls_the_appended_program() {
        for mem in [None, Some(MemMap { fd: 7, len: 5 })] {
            let test = test_program();
            let bytes = conformance_wrapper(&test, mem, 8);
            assert!(bytes.ends_with(&test));
            let prog = Program::from_bytes(&bytes).expect("wrapper is structurally valid");
            let test_slot = (bytes.len() - test.len()) / 8;
            assert_eq!(prog.subprograms(), &[0, test_slot]);
            let insns = prog.insns();
            // Every conditional jump of main lands on `r0 = XDP_ABORTED`.
            let mut slot = 0usize;
            for insn in insns {
                if let Insn::Jmp { off, .. } = insn {
                    let target = (slot as i64 + 1 + *off as i64) as usize;
                    let at = prog.iter().find(|(s, _)| *s == target).unwrap().1;
                    assert_eq!(*at, mov(Reg::R0, Source::Imm(0)));
                }
                slot += insn.slots();
            }
            let map_fds: Vec<i32> = insns
                .iter()
                .filter_map(|i| match i {
                    Insn::LdImm64 {
                        imm: Imm64::MapFd(fd),
                        ..
                    } => Some(*fd),
                    _ => None,
                })
                .collect();
            assert_eq!(map_fds, if mem.is_some() { vec![7, 8] } else { vec![8] });
        }
    }

    #[test]
    fn helper_calls_are_unportable() {
        let call5 = encode(&[Insn::Call(CallTarget::Helper(5)), Insn::Exit]);
        assert!(unportable(&call5).unwrap().contains("bpf_ktime_get_ns"));
        assert_eq!(unportable(&test_program()), None);
    }
}
