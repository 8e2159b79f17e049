//! Each hasher alone over an in-memory buffer, then MD5 ‖ SHA-512 as the pipeline runs them (two
//! threads fed `Bytes` slices through bounded channels) and one after the other on one thread.
//!
//! Each case runs twice: `hashers/*` in wall-clock time, `hashers_cpu/*` in the bench thread's
//! CPU time (see `support`), which other load on this shared VM barely moves; "thrpt" of the
//! latter is bytes per CPU-second.
//!
//! `cargo bench --bench hashers` (BENCHMARKS.md has the figures and the md-5 `asm` comparison).

mod support;

use bytes::Bytes;
use criterion::measurement::Measurement;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use glance_download_sidecar::hash::{to_hex, HashAlgo};
use glance_download_sidecar::tools::bench::{hash_one_thread, hash_two_threads, slices};
use glance_download_sidecar::tools::sim::generated_bytes;

/// Bytes hashed per iteration.
const SIZE: usize = 64 << 20;
/// Bytes per `update()` call (the pipeline's default chunk size).
const UPDATE: usize = 1 << 20;
/// Frames buffered per hasher in the two-thread case (the pipeline's default).
const DEPTH: usize = 8;

fn hash(algo: HashAlgo, data: &[u8]) -> String {
    let mut hasher = algo.hasher();
    for piece in data.chunks(UPDATE) {
        hasher.update(piece);
    }
    to_hex(&hasher.finalize())
}

fn configure<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    support::flat_group(group, SIZE as u64, 3);
}

/// MD5, SHA-512 and SHA-256, each alone on the bench thread.
fn single<M: Measurement>(group: &mut BenchmarkGroup<'_, M>, data: &Bytes) {
    for algo in [HashAlgo::Md5, HashAlgo::Sha512, HashAlgo::Sha256] {
        group.bench_function(algo.name(), |b| b.iter(|| hash(algo, black_box(data))));
    }
}

fn hashers(c: &mut Criterion) {
    let data: Bytes = generated_bytes(11, 0, SIZE);
    let mut group = c.benchmark_group("hashers");
    configure(&mut group);
    single(&mut group, &data);
    group.bench_function("md5+sha512/two-threads", |b| {
        b.iter(|| hash_two_threads(slices(&data, UPDATE), HashAlgo::Sha512, DEPTH).unwrap())
    });
    group.bench_function("md5+sha512/one-thread", |b| {
        b.iter(|| hash_one_thread(slices(&data, UPDATE), HashAlgo::Sha512))
    });
    group.finish();
}

fn hashers_cpu(c: &mut Criterion<support::ThreadCpu>) {
    let data: Bytes = generated_bytes(11, 0, SIZE);
    let mut group = c.benchmark_group("hashers_cpu");
    configure(&mut group);
    single(&mut group, &data);
    group.bench_function("md5+sha512/one-thread", |b| {
        b.iter(|| hash_one_thread(slices(&data, UPDATE), HashAlgo::Sha512))
    });
    group.finish();
}

criterion_group!(wall, hashers);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(support::ThreadCpu::new());
    targets = hashers_cpu
}
criterion_main!(wall, cpu);
