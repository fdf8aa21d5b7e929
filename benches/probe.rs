//! How long the probe takes, without GPU enumeration, on each captured tree and on this machine.
//! Whole-command wall time with and without GPU enumeration: scripts/bench-probe.sh.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use odai::SysRoot;
use odai::probe;

fn bench_probe(c: &mut Criterion) {
    let opts = probe::Options::quick();
    let mut group = c.benchmark_group("probe_no_gpu");
    group.bench_function("live", |b| {
        let root = SysRoot::live();
        b.iter(|| black_box(probe::run(&root, &opts)))
    });
    for tree in ["intel-laptop", "android-phone", "hostile"] {
        let dir = Path::new(
            &std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/fixtures")
        .join(tree);
        let root = SysRoot::at(&dir).unwrap();
        group.bench_function(tree, |b| b.iter(|| black_box(probe::run(&root, &opts))));
    }
    group.finish();
}

criterion_group!(benches, bench_probe);
criterion_main!(benches);
