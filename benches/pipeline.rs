//! The pipeline between an in-memory source and a null sink, next to the hash-only ceiling (the
//! same frames through two hasher threads, nothing around them), so `pipeline / ceiling` reads
//! off one run. Sweeps the chunk size and the bytes buffered (`buffer_bytes`), and runs the pipeline
//! with slow ends (seeded pauses at the source and at the sink).
//!
//! `pipeline_cpu/*` repeats the pipeline and the ceiling in process CPU time (see `support`):
//! wall-clock rates on this shared VM move with other load, CPU seconds per byte much less.
//!
//! `cargo bench --bench pipeline` (BENCHMARKS.md has the figures).

mod support;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use glance_download_sidecar::hash::HashAlgo;
use glance_download_sidecar::pipeline::{self, BodySource, Expected, Limits};
use glance_download_sidecar::tools::bench::{drain, hash_two_threads, slices, FramesBody, Jitter};
use glance_download_sidecar::tools::sim::generated_bytes;
use tokio::runtime::Runtime;

/// Bytes per iteration.
const SIZE: usize = 64 << 20;
/// Frames the fake source serves; the pipeline splits them into `chunk_size` pieces (no copy).
const SOURCE_FRAME: usize = 4 << 20;
/// The sidecar's defaults.
const CHUNK: usize = 1 << 20;
const BUFFER: usize = 8 << 20;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// One image in memory, its digests, and the runtime the pipeline runs on (built once).
struct Fixture {
    data: Bytes,
    expected: Expected,
    rt: Runtime,
}

/// The two ends of one pipeline run.
#[derive(Clone, Copy)]
struct Ends {
    source_frame: usize,
    /// Pause 1 ms before about one frame in this many, at the source and at the sink (0: never).
    jitter_one_in: u64,
}

const SMOOTH: Ends = Ends {
    source_frame: SOURCE_FRAME,
    jitter_one_in: 0,
};

impl Fixture {
    fn new() -> Fixture {
        let data = generated_bytes(21, 0, SIZE);
        let digests = hash_two_threads(slices(&data, CHUNK), HashAlgo::Sha512, 8).unwrap();
        let expected = Expected {
            size: SIZE as u64,
            checksum: Some(digests.md5),
            os_hash: Some((HashAlgo::Sha512, digests.other)),
        };
        // As the sidecar runs: a multi-thread runtime with one worker per CPU.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        Fixture { data, expected, rt }
    }

    /// Source → pipeline → null sink, on the runtime's workers, joined as the import joins them.
    fn pipeline(&self, limits: Limits, ends: Ends) {
        let (data, expected) = (self.data.clone(), self.expected.clone());
        let jitter = move |seed| {
            (ends.jitter_one_in > 0)
                .then(|| Jitter::new(seed, ends.jitter_one_in, Duration::from_millis(1)))
        };
        let run = self.rt.spawn(async move {
            let body = FramesBody::new(data, ends.source_frame, jitter(1));
            let source = BodySource::new(body, Duration::from_secs(60));
            let progress = Arc::new(AtomicU64::new(0));
            let (body, pump) = pipeline::start(source, expected, limits, progress);
            let (drained, verified) = tokio::join!(drain(body, jitter(2)), pump);
            assert_eq!(drained.unwrap().bytes, SIZE as u64);
            verified.unwrap();
        });
        self.rt.block_on(run).unwrap();
    }

    /// The same frames, cut to `chunk`, through two hasher threads and nothing else.
    fn ceiling(&self, chunk: usize, depth: usize) {
        let digests = hash_two_threads(slices(&self.data, chunk), HashAlgo::Sha512, depth).unwrap();
        assert_eq!(
            Some(digests.md5.as_str()),
            self.expected.checksum.as_deref()
        );
    }
}

fn configure<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    support::flat_group(group, SIZE as u64, 4);
}

fn size_label(bytes: usize) -> String {
    if bytes >= MIB {
        format!("{}MiB", bytes / MIB)
    } else {
        format!("{}KiB", bytes / KIB)
    }
}

fn pipeline_vs_ceiling(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut group = c.benchmark_group("pipeline");
    configure(&mut group);
    for chunk in [64 * KIB, 256 * KIB, MIB, 4 * MIB] {
        let label = format!("chunk={}", size_label(chunk));
        group.bench_function(BenchmarkId::new("ceiling", &label), |b| {
            b.iter(|| fx.ceiling(chunk, BUFFER / chunk))
        });
        let limits = Limits {
            chunk_size: chunk,
            buffer_bytes: BUFFER,
        };
        group.bench_function(BenchmarkId::new("pipeline", &label), |b| {
            b.iter(|| fx.pipeline(limits, SMOOTH))
        });
    }
    // buffer=8MiB at 1 MiB is `pipeline/chunk=1MiB` above.
    for buffer in [2 * MIB, 4 * MIB, 32 * MIB] {
        let limits = Limits {
            chunk_size: CHUNK,
            buffer_bytes: buffer,
        };
        let id = BenchmarkId::new("pipeline", format!("buffer={}", size_label(buffer)));
        group.bench_function(id, |b| b.iter(|| fx.pipeline(limits, SMOOTH)));
    }
    group.finish();

    // Slow ends: 256 KiB source frames (hyper-sized), 1 ms pauses before ~1 frame in 8 at both
    // the source and the sink. Does buffering absorb them?
    let mut group = c.benchmark_group("pipeline_slow_ends");
    configure(&mut group);
    let frame = 256 * KIB;
    let smooth = Ends {
        source_frame: frame,
        jitter_one_in: 0,
    };
    let jittery = Ends {
        source_frame: frame,
        jitter_one_in: 8,
    };
    for (name, ends, buffer) in [
        ("smooth", smooth, BUFFER),
        ("jitter", jittery, 2 * MIB),
        ("jitter", jittery, 4 * MIB),
        ("jitter", jittery, BUFFER),
        ("jitter", jittery, 32 * MIB),
    ] {
        let limits = Limits {
            chunk_size: CHUNK,
            buffer_bytes: buffer,
        };
        let id = BenchmarkId::new(name, format!("buffer={}", size_label(buffer)));
        group.bench_function(id, |b| b.iter(|| fx.pipeline(limits, ends)));
    }
    group.finish();
}

/// The default settings and the smallest chunk, in CPU time of the whole process.
fn pipeline_cpu(c: &mut Criterion<support::ProcessCpu>) {
    let fx = Fixture::new();
    let mut group = c.benchmark_group("pipeline_cpu");
    configure(&mut group);
    for chunk in [64 * KIB, MIB] {
        let label = format!("chunk={}", size_label(chunk));
        group.bench_function(BenchmarkId::new("ceiling", &label), |b| {
            b.iter(|| fx.ceiling(chunk, BUFFER / chunk))
        });
        let limits = Limits {
            chunk_size: chunk,
            buffer_bytes: BUFFER,
        };
        group.bench_function(BenchmarkId::new("pipeline", &label), |b| {
            b.iter(|| fx.pipeline(limits, SMOOTH))
        });
    }
    group.finish();
}

criterion_group!(wall, pipeline_vs_ceiling);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(support::ProcessCpu::new());
    targets = pipeline_cpu
}
criterion_main!(wall, cpu);
