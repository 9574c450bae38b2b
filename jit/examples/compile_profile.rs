//! Compiles a synthetic 1,000-instruction program (the `jit_compile` bench's) in a loop, for
//! profiling the compiler with `perf record`: `cargo run --release -p bpfsim-jit --example
//! compile_profile [iterations]`.

use bpfsim_jit::JitProgram;
use bpfsim_vm::Program;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    // A second argument `small` compiles a two-instruction program: the fixed cost.
    let small = std::env::args().nth(2).is_some_and(|a| a == "small");
    let mut src = String::from("mov %r0, 0\nmov %r1, 1\n");
    for i in 0..if small { 0 } else { 332 } {
        src.push_str(&format!(
            "add %r0, %r1\nxor %r0, {i}\njgt %r0, {}, +0\n",
            i * 7
        ));
    }
    src.push_str("exit\n");
    let prog = Program::new(bpfsim_vm::asm::assemble(&src).expect("assembles")).expect("valid");
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(JitProgram::compile(&prog).expect("compiles"));
    }
    println!(
        "{} insns: {:.3} ms per compile",
        prog.insns().len(),
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    );
}
