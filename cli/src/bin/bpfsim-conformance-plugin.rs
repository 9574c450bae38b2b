//! The bpf_conformance plugin as its own executable, for `bpf_conformance_runner --plugin_path`:
//! the runner puts the memory hex in `argv[1]`, where `bpfsim conformance-plugin` cannot take it.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    bpfsim::plugin::main_with(&args)
}
