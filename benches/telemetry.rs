//! The telemetry sampler's cost per sample, on this machine and on captured trees with many
//! sensors. At a 1 s interval the sampler's share of one core is this time ÷ 1 s; the issue's
//! budget is 0.5 % of decode throughput. End to end: scripts/sampler-overhead.sh.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use odai::SysRoot;
use odai::bench::telemetry::sample_once;

fn bench_sample(c: &mut Criterion) {
    let mut group = c.benchmark_group("telemetry_sample");
    group.bench_function("live", |b| {
        let root = SysRoot::live();
        b.iter(|| black_box(sample_once(&root)))
    });
    for tree in ["intel-laptop", "jetson-orin", "android-phone"] {
        let dir = Path::new(
            &std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/fixtures")
        .join(tree);
        let root = SysRoot::at(&dir).unwrap();
        group.bench_function(tree, |b| b.iter(|| black_box(sample_once(&root))));
    }
    group.finish();
}

criterion_group!(benches, bench_sample);
criterion_main!(benches);
