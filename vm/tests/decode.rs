//! Decoding rejects every malformed encoding with its position and the offending field.

use bpfsim_vm::isa::{decode, DecodeErrorKind, Field, RawInsn};

fn bytes(slots: &[RawInsn]) -> Vec<u8> {
    slots.iter().flat_map(|r| r.to_bytes()).collect()
}

const EXIT: RawInsn = RawInsn::new(0x95, 0, 0, 0, 0);

fn err_at(slots: &[RawInsn]) -> (usize, DecodeErrorKind) {
    let e = decode(&bytes(slots)).expect_err("must be rejected");
    (e.pc, e.kind)
}

#[test]
fn length_must_be_a_multiple_of_eight() {
    let mut b = bytes(&[EXIT]);
    b.push(0);
    let e = decode(&b).unwrap_err();
    assert_eq!(
        (e.pc, e.kind.clone()),
        (1, DecodeErrorKind::Length { len: 9 })
    );
    assert!(e.to_string().contains("not a multiple of 8"));
}

#[test]
fn truncated_and_malformed_lddw() {
    let lddw = RawInsn::new(0x18, 0, 0, 0, 1);
    assert_eq!(
        err_at(&[EXIT, lddw]),
        (1, DecodeErrorKind::TruncatedLdImm64)
    );
    let (pc, kind) = err_at(&[lddw, RawInsn::new(0x95, 0, 0, 0, 0), EXIT]);
    assert_eq!(pc, 0);
    assert!(matches!(
        kind,
        DecodeErrorKind::BadLdImm64Tail { code: 0x95, .. }
    ));
    let (_, kind) = err_at(&[RawInsn::new(0x18, 0, 7, 0, 0), RawInsn::default(), EXIT]);
    assert_eq!(kind, DecodeErrorKind::UnknownPseudo(7));
    // A map fd reference carries nothing in the second slot.
    let (_, kind) = err_at(&[
        RawInsn::new(0x18, 1, 1, 0, 3),
        RawInsn::new(0, 0, 0, 0, 4),
        EXIT,
    ]);
    assert!(matches!(
        kind,
        DecodeErrorKind::Reserved {
            field: Field::Imm,
            found: 4,
            ..
        }
    ));
    // A map value reference carries its offset there.
    assert!(decode(&bytes(&[
        RawInsn::new(0x18, 1, 2, 0, 3),
        RawInsn::new(0, 0, 0, 0, 4),
        EXIT
    ]))
    .is_ok());
}

#[test]
fn unknown_opcodes() {
    // 0x00 (LD|IMM|W), 0x38 (LD|ABS|DW), 0x8f (neg with register source), 0xdf (ALU64|END|X),
    // 0x0d (JMP|JA|X), 0x96 (JMP32 exit), 0x99 (LDX|MEMSX|DW), 0xe7 and 0xf4 (no ALU op).
    for code in [
        0x00u8, 0x38, 0x8f, 0xdf, 0x0d, 0x96, 0x86, 0x99, 0xe7, 0xf4, 0x42, 0xa3,
    ] {
        let (pc, kind) = err_at(&[EXIT, RawInsn::new(code, 0, 0, 0, 0)]);
        assert_eq!(
            (pc, kind),
            (1, DecodeErrorKind::UnknownOpcode),
            "opcode {code:#04x}"
        );
    }
    let e = decode(&bytes(&[RawInsn::new(0xe7, 0, 0, 0, 0)])).unwrap_err();
    assert_eq!(e.to_string(), "instruction 0 (opcode 0xe7): unknown opcode");
}

#[test]
fn registers_above_r10_are_rejected() {
    let (_, kind) = err_at(&[RawInsn::new(0xbf, 11, 1, 0, 0), EXIT]);
    assert_eq!(
        kind,
        DecodeErrorKind::BadRegister {
            what: "mov64 reg",
            field: Field::Dst,
            reg: 11
        }
    );
    let (_, kind) = err_at(&[RawInsn::new(0x61, 0, 15, 0, 0), EXIT]);
    assert!(matches!(
        kind,
        DecodeErrorKind::BadRegister {
            field: Field::Src,
            reg: 15,
            ..
        }
    ));
}

#[test]
fn v4_and_atomic_field_rules() {
    // movsx32 cannot take 32 bits; movsx64 can.
    assert!(decode(&bytes(&[RawInsn::new(0xbf, 1, 2, 32, 0), EXIT])).is_ok());
    let (_, kind) = err_at(&[RawInsn::new(0xbc, 1, 2, 32, 0), EXIT]);
    assert!(matches!(
        kind,
        DecodeErrorKind::Reserved {
            field: Field::Off,
            found: 32,
            ..
        }
    ));
    // sdiv is off=1; any other offset is reserved.
    assert!(decode(&bytes(&[RawInsn::new(0x37, 1, 0, 1, 3), EXIT])).is_ok());
    let (_, kind) = err_at(&[RawInsn::new(0x37, 1, 0, 2, 3), EXIT]);
    assert!(matches!(
        kind,
        DecodeErrorKind::Reserved {
            field: Field::Off,
            found: 2,
            ..
        }
    ));
    // Byte swaps take 16, 32 or 64.
    let (_, kind) = err_at(&[RawInsn::new(0xdc, 1, 0, 0, 8), EXIT]);
    assert_eq!(kind, DecodeErrorKind::EndianWidth { what: "be", imm: 8 });
    // Atomic operations: unknown imm, and read-modify-write on bytes.
    let (_, kind) = err_at(&[RawInsn::new(0xdb, 10, 1, -8, 0x10), EXIT]);
    assert_eq!(kind, DecodeErrorKind::AtomicOp { imm: 0x10 });
    let (_, kind) = err_at(&[RawInsn::new(0xd3, 10, 1, -8, 0x00), EXIT]);
    assert!(matches!(kind, DecodeErrorKind::AtomicSize { .. }));
    // ... but load-acquire of a byte is defined.
    assert!(decode(&bytes(&[RawInsn::new(0xd3, 0, 10, -8, 0x100), EXIT])).is_ok());
    // gotol keeps its offset in imm; off is reserved.
    let (_, kind) = err_at(&[RawInsn::new(0x06, 0, 0, 1, 0), EXIT]);
    assert!(matches!(
        kind,
        DecodeErrorKind::Reserved {
            field: Field::Off,
            ..
        }
    ));
    // Calls: src 3 is nothing; kfunc calls carry a module index in off.
    let (_, kind) = err_at(&[RawInsn::new(0x85, 0, 3, 0, 1), EXIT]);
    assert!(matches!(
        kind,
        DecodeErrorKind::Reserved {
            field: Field::Src,
            found: 3,
            ..
        }
    ));
    assert!(decode(&bytes(&[RawInsn::new(0x85, 0, 2, 1, 99), EXIT])).is_ok());
}

#[test]
fn error_names_instruction_index_opcode_and_field() {
    let e = decode(&bytes(&[EXIT, EXIT, RawInsn::new(0x07, 0, 0, 1, 1)])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "instruction 2 (opcode 0x07): add64 imm: reserved field off must be 0, found 1"
    );
}
