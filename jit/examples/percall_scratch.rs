use bpfsim_jit::JitProgram;
use bpfsim_vm::{asm::assemble, NoHelpers, Program};
fn main() {
    let n: u64 = std::env::args().nth(1).unwrap().parse().unwrap();
    let len: usize = std::env::args().nth(2).map_or(0, |s| s.parse().unwrap());
    let prog = Program::new(assemble("mov %r0, 0\nexit").unwrap()).unwrap();
    let jit = JitProgram::compile(&prog).unwrap();
    let mut s = jit.session();
    let mut mem = vec![0u8; len];
    let mut acc = 0u64;
    for round in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..n {
            acc = acc.wrapping_add(
                s.run_with_memory(&mut NoHelpers, std::hint::black_box(&mut mem))
                    .result
                    .unwrap(),
            );
        }
        if round > 0 {
            println!("{:.2} ns/run", t.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    println!("{acc}");
}
