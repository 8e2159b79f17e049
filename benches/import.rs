//! A full glance-download import through the real sidecar on the simulated cloud (as the `demo`
//! command does): create the target image, `POST /import`, poll the task to `success`. The fake
//! target Glance hashes every byte it receives on the same cores, then discards it.
//!
//! `cargo bench --bench import` (BENCHMARKS.md has the figures).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use glance_download_sidecar::tools::bench::{Options, SimRig, SEED};

/// Bytes per import.
const SIZE: u64 = 64 << 20;

fn import(c: &mut Criterion) {
    let rig = SimRig::start(SIZE, SEED, Options::default().limits).unwrap();
    let mut group = c.benchmark_group("import");
    group
        .throughput(Throughput::Bytes(SIZE))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("sidecar/64MiB", |b| b.iter(|| rig.import_once().unwrap()));
    group.bench_function("pipeline-only/64MiB", |b| {
        b.iter(|| rig.pipeline_once().unwrap())
    });
    group.finish();
    rig.shutdown();
}

criterion_group!(benches, import);
criterion_main!(benches);
