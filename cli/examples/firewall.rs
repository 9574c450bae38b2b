//! Load a clang-compiled XDP firewall, block a port and a prefix, replay a capture, and read the
//! verdicts and the program's hit counters back.
//!
//!     cargo run -p bpfsim --example firewall [OBJECT] [PCAP]

use std::path::PathBuf;

use bpfsim::capture::Capture;
use bpfsim::sim::ctx::xdp::action;
use bpfsim::sim::object::LoadedObject;
use bpfsim::sim::run::Input;
use bpfsim::sim::Env;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/progs");
    let mut args = std::env::args().skip(1);
    let object = args
        .next()
        .map(PathBuf::from)
        .unwrap_or(root.join("firewall.bpf.o"));
    let pcap = args
        .next()
        .map(PathBuf::from)
        .unwrap_or(root.join("pcaps/firewall.pcap"));

    let mut obj = LoadedObject::load(&std::fs::read(&object)?, Env::default())?;
    let prog = obj.program("xdp_firewall", None)?;

    // Block TCP/22 and UDP/53 (struct port_key { u8 proto; u8 pad; be16 port; }) and the source
    // prefix 198.51.100.0/24 (struct lpm_v4_key { u32 prefixlen; be32 addr; }).
    let ports = obj.map_id("blocked_ports").ok_or("no blocked_ports map")?;
    obj.runner
        .maps
        .update(ports, &[6, 0, 0, 22], &0u64.to_le_bytes(), 0)?;
    obj.runner
        .maps
        .update(ports, &[17, 0, 0, 53], &0u64.to_le_bytes(), 0)?;
    let prefixes = obj.map_id("blocked_v4").ok_or("no blocked_v4 map")?;
    obj.runner.maps.update(
        prefixes,
        &[24, 0, 0, 0, 198, 51, 100, 0],
        &0u64.to_le_bytes(),
        0,
    )?;

    for (i, packet) in Capture::open(&pcap)?.enumerate() {
        let res = obj.run(&prog, &packet?.data, Input::default())?;
        println!("packet {i:>3}: {}", action::name(res.retval).unwrap_or("?"));
    }
    for (key, hits) in obj.runner.maps.entries(ports)? {
        let port = u16::from_be_bytes([key[2], key[3]]);
        println!(
            "proto {} port {port}: {} hits",
            key[0],
            u64::from_le_bytes(hits.try_into().unwrap_or([0; 8]))
        );
    }
    Ok(())
}
