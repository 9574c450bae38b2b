//! `--map NAME:KEYHEX=VALUEHEX` and `--map NAME:KEYHEX=@PROG`, the map writes `run`, `compare`
//! and `bench` make before the first packet: parsed once here, applied by each side.

/// A map slot to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapWrite {
    pub map: String,
    pub key: Vec<u8>,
    pub value: SlotBytes,
}

/// What the slot gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotBytes {
    Bytes(Vec<u8>),
    /// A program of the object, by name: its id in the simulator, its descriptor in the kernel.
    Prog(String),
}

impl MapWrite {
    /// Parse one `--map` argument; the error names the argument and what was expected.
    pub fn parse(spec: &str) -> Result<MapWrite, String> {
        let bad = || format!("--map {spec}: expected NAME:KEYHEX=VALUEHEX or NAME:KEYHEX=@PROG");
        let (map, rest) = spec.rsplit_once(':').ok_or_else(bad)?;
        let (key, value) = rest.split_once('=').ok_or_else(bad)?;
        if map.is_empty() {
            return Err(bad());
        }
        let key = crate::plugin::parse_hex(key).map_err(|e| format!("--map {spec}: key: {e}"))?;
        let value = match value.strip_prefix('@') {
            Some("") => return Err(bad()),
            Some(prog) => SlotBytes::Prog(prog.to_string()),
            None => SlotBytes::Bytes(
                crate::plugin::parse_hex(value).map_err(|e| format!("--map {spec}: value: {e}"))?,
            ),
        };
        Ok(MapWrite {
            map: map.to_string(),
            key,
            value,
        })
    }

    /// The value's bytes, a program's as `prog` numbers it (little-endian u32).
    pub fn bytes(
        &self,
        spec: &str,
        prog: impl FnOnce(&str) -> Result<u32, String>,
    ) -> Result<Vec<u8>, String> {
        match &self.value {
            SlotBytes::Bytes(b) => Ok(b.clone()),
            SlotBytes::Prog(p) => prog(p)
                .map(|n| n.to_le_bytes().to_vec())
                .map_err(|e| format!("--map {spec}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_parse_and_bad_ones_say_why() {
        assert_eq!(
            MapWrite::parse("blocked:0a000001=01").unwrap(),
            MapWrite {
                map: "blocked".into(),
                key: vec![10, 0, 0, 1],
                value: SlotBytes::Bytes(vec![1]),
            }
        );
        // The last colon splits: map names never hold one, and keys are hex.
        assert_eq!(
            MapWrite::parse("jmp:00000000=@handle_ipv4").unwrap().value,
            SlotBytes::Prog("handle_ipv4".into())
        );
        for bad in ["nomap", ":00=01", "m:00", "m:00=@", "m:zz=01", "m:00=0"] {
            let e = MapWrite::parse(bad).unwrap_err();
            assert!(e.starts_with(&format!("--map {bad}")), "{bad}: {e}");
        }
    }
}
