//! The set of defined opcodes and a short name for each, used in error messages.

use super::opcode::*;

const ALU_NAMES: [[Option<&str>; 16]; 4] = {
    const fn row(
        prefix: [&'static str; 16],
        neg: &'static str,
        end: Option<&'static str>,
    ) -> [Option<&'static str>; 16] {
        let mut out = [None; 16];
        let mut i = 0;
        while i < 16 {
            if !prefix[i].is_empty() {
                out[i] = Some(prefix[i]);
            }
            i += 1;
        }
        out[8] = if neg.is_empty() { None } else { Some(neg) };
        out[13] = end;
        out
    }
    [
        row(
            [
                "add32 imm",
                "sub32 imm",
                "mul32 imm",
                "div32 imm",
                "or32 imm",
                "and32 imm",
                "lsh32 imm",
                "rsh32 imm",
                "",
                "mod32 imm",
                "xor32 imm",
                "mov32 imm",
                "arsh32 imm",
                "",
                "",
                "",
            ],
            "neg32",
            Some("le"),
        ),
        row(
            [
                "add32 reg",
                "sub32 reg",
                "mul32 reg",
                "div32 reg",
                "or32 reg",
                "and32 reg",
                "lsh32 reg",
                "rsh32 reg",
                "",
                "mod32 reg",
                "xor32 reg",
                "mov32 reg",
                "arsh32 reg",
                "",
                "",
                "",
            ],
            "",
            Some("be"),
        ),
        row(
            [
                "add64 imm",
                "sub64 imm",
                "mul64 imm",
                "div64 imm",
                "or64 imm",
                "and64 imm",
                "lsh64 imm",
                "rsh64 imm",
                "",
                "mod64 imm",
                "xor64 imm",
                "mov64 imm",
                "arsh64 imm",
                "",
                "",
                "",
            ],
            "neg64",
            Some("bswap"),
        ),
        row(
            [
                "add64 reg",
                "sub64 reg",
                "mul64 reg",
                "div64 reg",
                "or64 reg",
                "and64 reg",
                "lsh64 reg",
                "rsh64 reg",
                "",
                "mod64 reg",
                "xor64 reg",
                "mov64 reg",
                "arsh64 reg",
                "",
                "",
                "",
            ],
            "",
            None,
        ),
    ]
};

const JMP_NAMES: [[Option<&str>; 16]; 4] = [
    [
        Some("ja"),
        Some("jeq imm"),
        Some("jgt imm"),
        Some("jge imm"),
        Some("jset imm"),
        Some("jne imm"),
        Some("jsgt imm"),
        Some("jsge imm"),
        Some("call"),
        Some("exit"),
        Some("jlt imm"),
        Some("jle imm"),
        Some("jslt imm"),
        Some("jsle imm"),
        None,
        None,
    ],
    [
        None,
        Some("jeq reg"),
        Some("jgt reg"),
        Some("jge reg"),
        Some("jset reg"),
        Some("jne reg"),
        Some("jsgt reg"),
        Some("jsge reg"),
        Some("callx"),
        None,
        Some("jlt reg"),
        Some("jle reg"),
        Some("jslt reg"),
        Some("jsle reg"),
        None,
        None,
    ],
    [
        Some("ja32"),
        Some("jeq32 imm"),
        Some("jgt32 imm"),
        Some("jge32 imm"),
        Some("jset32 imm"),
        Some("jne32 imm"),
        Some("jsgt32 imm"),
        Some("jsge32 imm"),
        None,
        None,
        Some("jlt32 imm"),
        Some("jle32 imm"),
        Some("jslt32 imm"),
        Some("jsle32 imm"),
        None,
        None,
    ],
    [
        None,
        Some("jeq32 reg"),
        Some("jgt32 reg"),
        Some("jge32 reg"),
        Some("jset32 reg"),
        Some("jne32 reg"),
        Some("jsgt32 reg"),
        Some("jsge32 reg"),
        None,
        None,
        Some("jlt32 reg"),
        Some("jle32 reg"),
        Some("jslt32 reg"),
        Some("jsle32 reg"),
        None,
        None,
    ],
];

/// Short name of a defined opcode, `None` for an opcode neither RFC 9669 nor Linux defines.
pub fn opcode_name(code: u8) -> Option<&'static str> {
    let size = (code & SIZE_MASK) as usize >> 3; // W, H, B, DW
    let by_size = |names: [&'static str; 4]| Some(names[size]);
    let op = (code >> 4) as usize;
    let x = (code & SRC_X != 0) as usize;
    match code & CLASS_MASK {
        ALU => ALU_NAMES[x][op],
        ALU64 => ALU_NAMES[2 + x][op],
        JMP => JMP_NAMES[x][op],
        JMP32 => JMP_NAMES[2 + x][op],
        LDX => match code & MODE_MASK {
            MODE_MEM => by_size(["ldxw", "ldxh", "ldxb", "ldxdw"]),
            MODE_MEMSX if code & SIZE_MASK != SIZE_DW => by_size(["ldxsw", "ldxsh", "ldxsb", ""]),
            _ => None,
        },
        ST => match code & MODE_MASK {
            MODE_MEM => by_size(["stw", "sth", "stb", "stdw"]),
            _ => None,
        },
        STX => match code & MODE_MASK {
            MODE_MEM => by_size(["stxw", "stxh", "stxb", "stxdw"]),
            MODE_ATOMIC => by_size(["atomic32", "atomic16", "atomic8", "atomic64"]),
            _ => None,
        },
        _ => match (code & MODE_MASK, code & SIZE_MASK) {
            (MODE_IMM, SIZE_DW) => Some("lddw"),
            (MODE_ABS, s) if s != SIZE_DW => by_size(["ldabsw", "ldabsh", "ldabsb", ""]),
            (MODE_IND, s) if s != SIZE_DW => by_size(["ldindw", "ldindh", "ldindb", ""]),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defined_opcode_count() {
        // 12 ALU ops x 2 sources x 2 widths, neg x 2, le, be, bswap = 53; jumps: 11 conds x 2 x 2 + ja,
        // call, callx, exit, ja32 = 49; ldx 4 + 3, st 4, stx 4 + atomics 4, lddw 1, abs 3, ind 3.
        let n = (0..=255u8).filter(|c| opcode_name(*c).is_some()).count();
        assert_eq!(n, 53 + 49 + 7 + 4 + 8 + 7);
    }
}
