//! The kernel BTF that CO-RE relocations and tracing attach targets need:
//!
//! - `btf/vmlinux/parse`: `/sys/kernel/btf/vmlinux` (5-6 MB) through bpfsim's BTF parser;
//! - `btf/vmlinux/parse_and_index`: the same plus the name index candidate lookups use (what a
//!   process pays once, on its first object with a CO-RE relocation);
//! - `btf/core_object/load`: `test-vectors/loader/core.bpf.o` (four programs, 19 CO-RE
//!   relocations, five BTF attach targets) loaded against the already parsed BTF: the per-object
//!   cost once the BTF is cached.
//!
//! Skipped, with a printed reason, where the kernel publishes no BTF.

use std::hint::black_box;
use std::sync::Arc;

use bpfsim_vm::loader::{load_object_with, KernelBtfSource, LoadOptions, TargetBtf};
use criterion::{criterion_group, criterion_main};

mod common;
use common::Clock;

type Criterion = criterion::Criterion<Clock>;

fn btf(c: &mut Criterion) {
    let path = bpfsim_vm::loader::SYSTEM_VMLINUX_BTF;
    let Ok(data) = std::fs::read(path) else {
        eprintln!("btf/* skipped: cannot read {path}");
        return;
    };
    let mut group = c.benchmark_group("btf");
    group.sample_size(20);
    group.bench_function("vmlinux/parse", |b| {
        b.iter(|| TargetBtf::from_bytes(black_box(&data), path).unwrap())
    });
    group.bench_function("vmlinux/parse_and_index", |b| {
        b.iter(|| {
            let t = TargetBtf::from_bytes(black_box(&data), path).unwrap();
            assert!(!t.ids_by_essential_name("task_struct").is_empty());
            t
        })
    });
    let target = Arc::new(TargetBtf::from_bytes(&data, path).unwrap());
    target.ids_by_essential_name("task_struct");
    let opts = LoadOptions {
        kernel_btf: KernelBtfSource::Parsed(target),
    };
    let elf = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../test-vectors/loader/core.bpf.o"
    ))
    .expect("test-vectors/loader/core.bpf.o");
    let obj = load_object_with(&elf, &opts).unwrap();
    assert!(obj.find_program("read_pid").is_ok());
    group.bench_function("core_object/load", |b| {
        b.iter(|| load_object_with(black_box(&elf), &opts).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = btf
}
criterion_main!(benches);
