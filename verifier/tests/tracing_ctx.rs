//! The context of BTF-attached programs (`fentry`, `fexit`, `fmod_ret`, `tp_btf`, `lsm`): one
//! `u64` per argument of the attach target, then the return value where the attach type has
//! one, with the lines `btf_ctx_access` logs when a read is refused.

use bpfsim_verifier::{verify, Options};
use bpfsim_vm::asm::assemble;
use bpfsim_vm::loader::{AttachTarget, AttachType, TracingArg, TracingArgKind};
use bpfsim_vm::spec::ProgType;

fn arg(name: &str, type_name: &str, kind: TracingArgKind) -> TracingArg {
    TracingArg {
        name: name.into(),
        type_name: type_name.into(),
        kind,
    }
}

/// `int do_nanosleep(struct hrtimer_sleeper *t, enum hrtimer_mode mode)`, and a struct passed by
/// value as a third argument to show the refusal of non-scalar, non-pointer arguments.
fn target(with_struct: bool) -> AttachTarget {
    let mut args = vec![
        arg(
            "t",
            "struct hrtimer_sleeper *",
            TracingArgKind::Pointer { to_struct: true },
        ),
        arg("mode", "enum hrtimer_mode", TracingArgKind::Scalar),
    ];
    if with_struct {
        args.push(arg("ts", "float", TracingArgKind::Other));
    }
    AttachTarget {
        btf_name: "do_nanosleep".into(),
        btf_id: 1234,
        args,
        ret: Some(arg("", "int", TracingArgKind::Scalar)),
        kernel: None,
    }
}

/// A verdict with its log as one string.
struct V {
    accepted: bool,
    error: Option<String>,
    log: String,
}

fn run(attach: AttachType, t: AttachTarget, src: &str) -> V {
    let mut opts = Options::new(ProgType::Tracing);
    opts.attach = Some(attach);
    opts.attach_btf = Some(t);
    opts.log_level = 1;
    let v = verify(&assemble(src).unwrap(), &opts);
    V {
        accepted: v.accepted,
        error: v.error,
        log: v.log.join("\n"),
    }
}

#[test]
fn arguments_are_u64_slots() {
    for off in [0, 8] {
        let v = run(
            AttachType::TraceFentry,
            target(false),
            &format!("ldxdw %r0, [%r1+{off}]\nexit"),
        );
        assert!(v.accepted, "off {off}: {:?}\n{}", v.error, v.log);
    }
    // A narrower read of a scalar argument is fine; of a pointer it is not.
    let v = run(
        AttachType::TraceFentry,
        target(false),
        "ldxw %r0, [%r1+8]\nexit",
    );
    assert!(v.accepted, "{:?}", v.error);
    let v = run(
        AttachType::TraceFentry,
        target(false),
        "ldxw %r0, [%r1+0]\nexit",
    );
    assert_eq!(
        v.error.as_deref(),
        Some("invalid bpf_context access off=0 size=4")
    );
    assert!(
        v.log.contains("func 'do_nanosleep' size 4 must be 8"),
        "{}",
        v.log
    );
}

#[test]
fn reads_past_the_arguments_name_the_missing_one() {
    let v = run(
        AttachType::TraceFentry,
        target(false),
        "ldxdw %r0, [%r1+16]\nexit",
    );
    assert_eq!(
        v.error.as_deref(),
        Some("invalid bpf_context access off=16 size=8")
    );
    assert!(
        v.log
            .contains("func 'do_nanosleep' doesn't have 3-th argument"),
        "{}",
        v.log
    );
    let v = run(
        AttachType::TraceFentry,
        target(false),
        "ldxdw %r0, [%r1+24]\nexit",
    );
    assert!(v.log.contains("doesn't have 4-th argument"), "{}", v.log);
    // Misaligned reads and writes are refused without a line of their own.
    let v = run(
        AttachType::TraceFentry,
        target(false),
        "ldxw %r0, [%r1+12]\nexit",
    );
    assert!(
        v.log.contains("offset 12 is not multiple of 8"),
        "{}",
        v.log
    );
    let v = run(
        AttachType::TraceFentry,
        target(false),
        "stdw [%r1+0], 1\nmov %r0, 0\nexit",
    );
    assert!(!v.accepted);
    assert!(!v.log.contains("func 'do_nanosleep'"), "{}", v.log);
}

#[test]
fn fexit_and_fmod_ret_read_the_return_value() {
    for attach in [AttachType::TraceFexit, AttachType::ModifyReturn] {
        let v = run(attach, target(false), "ldxdw %r0, [%r1+16]\nexit");
        assert!(v.accepted, "{attach:?}: {:?}", v.error);
    }
    // A void function has no return value to read.
    let mut void = target(false);
    void.ret = None;
    let v = run(
        AttachType::TraceFexit,
        void.clone(),
        "ldxdw %r0, [%r1+16]\nexit",
    );
    assert!(!v.accepted);
    assert!(
        v.log
            .contains("has type UNKNOWN. Only pointer access is allowed"),
        "{}",
        v.log
    );
    let v = run(AttachType::ModifyReturn, void, "ldxdw %r0, [%r1+16]\nexit");
    assert!(
        v.log.contains("ret type UNKNOWN not allowed for fmod_ret"),
        "{}",
        v.log
    );
}

#[test]
fn tracepoints_and_other_arguments() {
    // A tp_btf target's name is the tracepoint's, without btf_trace_.
    let mut tp = target(false);
    tp.btf_name = "btf_trace_sched_switch".into();
    let v = run(AttachType::TraceRawTp, tp, "ldxdw %r0, [%r1+16]\nexit");
    assert!(
        v.log
            .contains("func 'sched_switch' doesn't have 3-th argument"),
        "{}",
        v.log
    );
    let v = run(
        AttachType::TraceFentry,
        target(true),
        "ldxdw %r0, [%r1+16]\nexit",
    );
    assert!(
        v.log.contains(
            "func 'do_nanosleep' arg2 'ts' has type float. Only pointer access is allowed"
        ),
        "{}",
        v.log
    );
}

/// `bpf_get_func_arg`, `bpf_get_func_ret` and `bpf_get_func_arg_cnt` have prototypes: their
/// arguments are checked (the kernel's `bpf_get_func_arg_proto` and friends), not accepted
/// blindly. (This machine's kernel refuses fentry/fexit loads, so the live corpus cannot hold
/// these.)
#[test]
fn trampoline_helpers_check_their_arguments() {
    let ok = "mov %r6, %r1\ncall 185\nmov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\n\
              call 183\nmov %r1, %r6\nmov %r2, %r10\nadd %r2, -16\ncall 184\nmov %r0, 0\nexit";
    let mut opts = Options::new(ProgType::Tracing);
    opts.attach = Some(AttachType::TraceFexit);
    opts.attach_btf = Some(target(false));
    let v = verify(&assemble(ok).unwrap(), &opts);
    assert!(v.accepted, "{:?}", v.error);
    assert!(v.unchecked_helpers.is_empty(), "{:?}", v.unchecked_helpers);
    let bad = run(
        AttachType::TraceFexit,
        target(false),
        "mov %r2, 0\nmov %r3, 8\ncall 183\nmov %r0, 0\nexit",
    );
    assert_eq!(
        bad.error.as_deref(),
        Some("R3 type=scalar expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_")
    );
    let bad = run(
        AttachType::TraceFexit,
        target(false),
        "mov %r1, 0\nmov %r2, %r10\nadd %r2, -8\ncall 184\nmov %r0, 0\nexit",
    );
    assert_eq!(bad.error.as_deref(), Some("R1 type=scalar expected=ctx"));
    // tp_btf has no trampoline: the helpers are not available to it at all.
    let tp = run(
        AttachType::TraceRawTp,
        target(false),
        "call 185\nmov %r0, 0\nexit",
    );
    assert_eq!(
        tp.error.as_deref(),
        Some("program of this type cannot use helper bpf_get_func_arg_cnt#185")
    );
}
