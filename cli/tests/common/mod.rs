//! The test vectors of test-vectors/progs as data: one scenario per expected/*.json (an object,
//! an entry program, its packets, the map setup and context, and the kernel's recorded results).
#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};

use bpfsim::capture::Capture;
use bpfsim_helpers::ctx::skb::SkbMd;
use bpfsim_helpers::run::Input;
use bpfsim_vm::spec::ProgType;
use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/progs")
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex with `??` wildcards against bytes.
pub fn matches(expected: &str, got: &[u8]) -> bool {
    expected.len() == got.len() * 2
        && got.iter().enumerate().all(|(i, b)| {
            let e = &expected[2 * i..2 * i + 2];
            e == "??" || u8::from_str_radix(e, 16) == Ok(*b)
        })
}

/// What a setup entry writes into a map slot.
pub enum SetupValue {
    Bytes(Vec<u8>),
    /// The descriptor (kernel) or id (simulator) of a program of the object.
    Prog(String),
    /// An AF_XDP socket bound to this interface and queue.
    Xsk {
        ifindex: u32,
        queue: u32,
    },
}

pub struct Setup {
    pub map: String,
    pub key: Vec<u8>,
    pub value: SetupValue,
}

pub struct Scenario {
    pub name: String,
    pub json: Value,
    pub object: Vec<u8>,
    pub program: String,
    pub prog_type: Option<ProgType>,
    pub packets: Vec<Vec<u8>>,
    pub setup: Vec<Setup>,
    /// The context every run gets: the recorder always hands the kernel one (zeros unless the
    /// scenario's ctx_in says otherwise).
    pub input: Input,
    /// (map, value byte range) that hold times or random numbers.
    pub nondeterministic: Vec<(String, std::ops::Range<usize>)>,
}

/// Every scenario file, sorted.
pub fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

pub fn load(path: &Path) -> Scenario {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dir = root();
    let object = std::fs::read(dir.join(json["object"].as_str().unwrap())).unwrap();
    let setup = json["setup"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let value = if let Some(v) = u["value"].as_str() {
                SetupValue::Bytes(unhex(v))
            } else if let Some(p) = u["value_prog"].as_str() {
                SetupValue::Prog(p.to_string())
            } else if u["value_xsk"].is_object() {
                SetupValue::Xsk {
                    ifindex: u["value_xsk"]["ifindex"].as_u64().unwrap_or(1) as u32,
                    queue: u["value_xsk"]["queue"].as_u64().unwrap_or(0) as u32,
                }
            } else {
                panic!(
                    "{}: a setup value kind the runner does not know: {u}",
                    path.display()
                )
            };
            Setup {
                map: u["map"].as_str().unwrap().to_string(),
                key: unhex(u["key"].as_str().unwrap()),
                value,
            }
        })
        .collect();
    let mut skb = SkbMd::default();
    let c = &json["ctx_in"];
    if !c.is_null() {
        let field = |k: &str| c[k].as_u64();
        for (k, slot) in [
            ("mark", &mut skb.mark),
            ("priority", &mut skb.priority),
            ("ifindex", &mut skb.ifindex),
            ("ingress_ifindex", &mut skb.ingress_ifindex),
        ] {
            if let Some(v) = field(k) {
                *slot = v as u32;
            }
        }
        if let Some(t) = field("tstamp") {
            skb.tstamp = t;
        }
        if let Some(cb) = c["cb"].as_array() {
            for (i, v) in cb.iter().enumerate().take(5) {
                skb.cb[i] = v.as_u64().unwrap_or(0) as u32;
            }
        }
    }
    let packets = Capture::open(&dir.join(json["pcap"].as_str().unwrap()))
        .unwrap()
        .map(|p| p.unwrap().data)
        .collect();
    let nondeterministic = json["nondeterministic"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let r = &n["value_bytes"];
            let (a, b) = (
                r[0].as_u64().unwrap() as usize,
                r[1].as_u64().unwrap() as usize,
            );
            (n["map"].as_str().unwrap().to_string(), a..b)
        })
        .collect();
    Scenario {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        object,
        program: json["program"].as_str().unwrap().to_string(),
        prog_type: ProgType::from_name(json["prog_type"].as_str().unwrap()),
        packets,
        setup,
        input: Input {
            skb: Some(skb),
            ..Input::default()
        },
        nondeterministic,
        json,
    }
}
