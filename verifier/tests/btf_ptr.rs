//! `PTR_TO_BTF_ID` against hand-made kernel BTF (no vmlinux needed): a tracing program's
//! pointer argument typed from the target's prototype, and each load through it walked over
//! the struct as `btf_struct_walk` walks it, with the kernel's refusals.

use std::sync::Arc;

use bpfsim_verifier::{verify, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::loader::{
    AttachTarget, AttachType, Btf, BtfKind, BtfMember, BtfParam, BtfType, KernelBtf, TargetBtf,
    TracingArg, TracingArgKind,
};
use bpfsim_vm::spec::ProgType;

fn ty(name: &str, kind: BtfKind) -> BtfType {
    BtfType {
        name: name.into(),
        kind,
    }
}

fn member(name: &str, type_id: u32, bit_offset: u32, bitfield_size: u32) -> BtfMember {
    BtfMember {
        name: name.into(),
        type_id,
        bit_offset,
        bitfield_size,
    }
}

fn int(size: u32) -> BtfKind {
    BtfKind::Int {
        size,
        encoding: 1,
        offset: 0,
        bits: (size * 8) as u8,
    }
}

/// ```c
/// struct inner { int a; int b; };                              // [3]
/// union uu { struct task *p; long x; };                        // [6]
/// struct task {                                                // [5], 60 bytes
///     int pid; int flags:3;                                    // 0, 4
///     struct inner in;                                         // 8
///     struct task *parent;                                     // 16
///     int arr[4];                                              // 24
///     union uu u;                                              // 40
///     int *data;                                               // 48
///     int pad; int tail[];                                     // 56, 60
/// };
/// struct task__safe_rcu { struct task *parent; };              // [12]
/// int do_task(struct task *t, int x);                          // [11]
/// ```
fn kernel_btf() -> Arc<TargetBtf> {
    let types = vec![
        ty("int", int(4)),  // 1
        ty("long", int(8)), // 2
        ty(
            "inner",
            BtfKind::Struct {
                size: 8,
                members: vec![member("a", 1, 0, 0), member("b", 1, 32, 0)],
            },
        ), // 3
        ty("", BtfKind::Ptr { target: 5 }), // 4
        ty(
            "task",
            BtfKind::Struct {
                size: 60,
                members: vec![
                    member("pid", 1, 0, 0),
                    member("flags", 1, 32, 3),
                    member("in", 3, 64, 0),
                    member("parent", 4, 128, 0),
                    member("arr", 8, 192, 0),
                    member("u", 6, 320, 0),
                    member("data", 7, 384, 0),
                    member("pad", 1, 448, 0),
                    member("tail", 9, 480, 0),
                ],
            },
        ), // 5
        ty(
            "uu",
            BtfKind::Union {
                size: 8,
                members: vec![member("p", 4, 0, 0), member("x", 2, 0, 0)],
            },
        ), // 6
        ty("", BtfKind::Ptr { target: 1 }), // 7
        ty(
            "",
            BtfKind::Array {
                elem: 1,
                index: 1,
                nelems: 4,
            },
        ), // 8
        ty(
            "",
            BtfKind::Array {
                elem: 1,
                index: 1,
                nelems: 0,
            },
        ), // 9
        ty(
            "",
            BtfKind::FuncProto {
                ret: 1,
                params: vec![
                    BtfParam {
                        name: "t".into(),
                        type_id: 4,
                    },
                    BtfParam {
                        name: "x".into(),
                        type_id: 1,
                    },
                ],
            },
        ), // 10
        ty(
            "do_task",
            BtfKind::Func {
                proto: 10,
                linkage: 1,
            },
        ), // 11
        ty(
            "task__safe_rcu",
            BtfKind::Struct {
                size: 8,
                members: vec![member("parent", 4, 0, 0)],
            },
        ), // 12
    ];
    Arc::new(TargetBtf::new(Btf::from_types(types), "test BTF"))
}

fn target() -> AttachTarget {
    let arg = |name: &str, type_name: &str, kind| TracingArg {
        name: name.into(),
        type_name: type_name.into(),
        kind,
    };
    AttachTarget {
        btf_name: "do_task".into(),
        btf_id: 11,
        args: vec![
            arg(
                "t",
                "struct task *",
                TracingArgKind::Pointer { to_struct: true },
            ),
            arg("x", "int", TracingArgKind::Scalar),
        ],
        ret: Some(arg("", "int", TracingArgKind::Scalar)),
        kernel: Some(KernelBtf(kernel_btf())),
    }
}

/// Verify `body` after `r1 = ctx[0]` (the `struct task *`) as a program of `attach`.
fn run(prog: ProgType, attach: AttachType, body: &str) -> (Option<String>, String) {
    let mut opts = Options::new(prog);
    opts.attach = Some(attach);
    opts.attach_btf = Some(target());
    opts.gpl = true;
    opts.log_level = 2;
    let src = format!("ldxdw %r1, [%r1+0]\n{body}\nmov %r0, 0\nexit");
    let v = verify(&assemble(&src).unwrap(), &opts);
    (v.error, v.log.join("\n"))
}

fn tp_btf(body: &str) -> (Option<String>, String) {
    run(ProgType::Tracing, AttachType::TraceRawTp, body)
}

#[test]
fn the_argument_is_a_trusted_pointer_to_its_struct() {
    let (err, log) = tp_btf("ldxw %r0, [%r1+0]");
    assert_eq!(err, None, "{log}");
    assert!(
        log.contains("func 'do_task' arg0 has btf_id 5 type STRUCT 'task'"),
        "{log}"
    );
    assert!(log.contains("R1=trusted_ptr_task()"), "{log}");
    // fentry does not trust its arguments: a plain pointer, still readable.
    let (err, log) = run(
        ProgType::Tracing,
        AttachType::TraceFentry,
        "ldxw %r0, [%r1+0]",
    );
    assert_eq!(err, None, "{log}");
    assert!(log.contains("R1=ptr_task()"), "{log}");
}

#[test]
fn scalar_members_give_scalars() {
    for body in [
        "ldxw %r0, [%r1+0]",   // pid
        "ldxb %r0, [%r1+4]",   // the byte holding the bitfield
        "ldxw %r0, [%r1+12]",  // in.b
        "ldxdw %r0, [%r1+24]", // arr[0..1] as one u64: within the array
        "ldxw %r0, [%r1+36]",  // arr[3]
        "ldxw %r0, [%r1+60]",  // tail[0], past the struct's size
        "ldxw %r0, [%r1+68]",  // tail[2]
    ] {
        let (err, log) = tp_btf(body);
        assert_eq!(err, None, "{body}: {log}");
    }
    // A byte load is a byte, whatever the member's width.
    let (_, log) = tp_btf("ldxb %r0, [%r1+0]");
    assert!(
        log.contains("R0=scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))"),
        "{log}"
    );
}

#[test]
fn pointer_members_follow_the_kernel_trust_rules() {
    // task->parent is in task__safe_rcu: an RCU pointer, which may be walked again.
    let (err, log) = tp_btf("ldxdw %r2, [%r1+16]\nldxw %r0, [%r2+0]");
    assert_eq!(err, None, "{log}");
    assert!(log.contains("R2=rcu_ptr_task()"), "{log}");
    // Through a union of several members: untrusted.
    let (err, log) = tp_btf("ldxdw %r2, [%r1+40]\nldxw %r0, [%r2+0]");
    assert_eq!(err, None, "{log}");
    assert!(log.contains("R2=untrusted_ptr_task()"), "{log}");
    // A pointer to an int: read-only untrusted memory, read without bounds.
    let (err, log) = tp_btf("ldxdw %r2, [%r1+48]\nldxw %r0, [%r2+100]");
    assert_eq!(err, None, "{log}");
    assert!(log.contains("R2=rdonly_untrusted_mem(sz=0)"), "{log}");
    let (err, _) = tp_btf("ldxdw %r2, [%r1+48]\nstw [%r2+0], 1");
    assert_eq!(
        err.as_deref(),
        Some("R2 cannot write into rdonly_untrusted_mem")
    );
}

#[test]
fn only_a_trusted_pointer_is_known_non_null() {
    // The trusted argument: the NULL branch is dead, so its invalid load is never reached.
    let (err, log) = tp_btf("jeq %r1, 0, +1\nja +1\nldxw %r0, [%r10+0]");
    assert_eq!(err, None, "{log}");
    // The RCU pointer may be NULL as far as the verifier knows: both branches explored.
    let (err, _) = tp_btf("ldxdw %r1, [%r1+16]\njeq %r1, 0, +1\nja +1\nldxw %r0, [%r10+0]");
    assert_eq!(
        err.as_deref(),
        Some("invalid read from stack R10 off=0 size=4")
    );
}

#[test]
fn refused_accesses_carry_the_kernel_lines() {
    let cases = [
        ("stw [%r1+0], 1", "only read is supported"),
        ("stxw [%r1+0], %r1", "only read is supported"),
        (
            "ldxw %r0, [%r1-8]",
            "R1 is ptr_task invalid negative access: off=-8",
        ),
        (
            "ldxw %r0, [%r1+20]",
            "cannot access ptr member parent with moff 16 in struct task with off 20 size 4",
        ),
        (
            "ldxw %r0, [%r1+18]",
            "cannot access ptr member parent with moff 16 in struct task with off 18 size 4",
        ),
        (
            "ldxdw %r0, [%r1+36]",
            "access beyond the end of member arr (mend:40) in struct task with off 36 size 8",
        ),
        (
            "add %r1, 8\nldxdw %r0, [%r1+4]",
            "access beyond struct inner at off 4 size 8",
        ),
        (
            "mov %r6, %r1\ncall 7\nand %r0, 7\nadd %r6, %r0\nldxb %r0, [%r6+0]",
            "R6 is ptr_task invalid variable offset: off=0, var_off=(0x0; 0x7)",
        ),
    ];
    for (body, want) in cases {
        let (err, log) = tp_btf(body);
        assert_eq!(err.as_deref(), Some(want), "{body}\n{log}");
    }
}

#[test]
fn a_non_gpl_program_may_not_read_kernel_structs() {
    let mut opts = Options::new(ProgType::Tracing);
    opts.attach = Some(AttachType::TraceRawTp);
    opts.attach_btf = Some(target());
    opts.gpl = false;
    let prog = assemble("ldxdw %r1, [%r1+0]\nldxw %r0, [%r1+0]\nexit").unwrap();
    let v = verify(&prog, &opts);
    assert_eq!(
        v.error.as_deref(),
        Some("Cannot access kernel 'struct task' from non-GPL compatible program")
    );
}

#[test]
fn states_with_different_pointer_trust_are_not_equal() {
    // Two paths reach the load at 11 with r2 an RCU pointer on one and untrusted on the other:
    // the second may not be pruned against the first one's checkpoint (the padding makes the
    // load a checkpoint: 2 jumps and 8 instructions since the start).
    let body = "mov %r6, %r1\nmov %r3, 0\nmov %r3, 0\nmov %r3, 0\nmov %r3, 0\ncall 7\n\
                jeq %r0, 0, +2\nldxdw %r2, [%r6+16]\nja +1\nldxdw %r2, [%r6+40]\n\
                ldxw %r0, [%r2+0]";
    let (err, log) = tp_btf(body);
    assert_eq!(err, None, "{log}");
    assert!(log.contains("R2=rcu_ptr_task()"), "{log}");
    assert!(log.contains("R2=untrusted_ptr_task()"), "{log}");
    assert!(!log.contains("11: safe"), "{log}");
    // The same pointer on both paths is pruned.
    let same = body.replace("[%r6+40]", "[%r6+16]");
    let (err, log) = tp_btf(&same);
    assert_eq!(err, None, "{log}");
    assert!(log.contains("11: safe"), "{log}");
}

#[test]
fn an_iterator_returns_zero_or_one() {
    let ret = |attach, r0: u32| {
        let mut opts = Options::new(ProgType::Tracing);
        opts.attach = Some(attach);
        opts.attach_btf = Some(target());
        opts.gpl = true;
        let prog = assemble(&format!("mov %r0, {r0}\nexit")).unwrap();
        verify(&prog, &opts).error
    };
    assert_eq!(ret(AttachType::TraceIter, 1), None);
    let err = ret(AttachType::TraceIter, 2);
    assert!(
        err.as_deref()
            .is_some_and(|e| e.starts_with("At program exit the register R0 has")
                && e.ends_with("should have been in [0, 1]")),
        "{err:?}"
    );
    // A tracepoint's return value is not checked.
    assert_eq!(ret(AttachType::TraceRawTp, 2), None);
}
