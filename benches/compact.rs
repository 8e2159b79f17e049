//! The compact coding (`gds-compact-1`) alone, over 8 MiB in memory: encoding as a source sidecar
//! does it and decoding as the target does, for random data (sent raw), a sparse image (10 % data,
//! the rest zeros) and log-like text (zstd). Wall-clock time on one thread; "thrpt" is decoded
//! bytes per second.
//!
//! `cargo bench --bench compact` (BENCHMARKS.md §12 has the figures).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use glance_download_sidecar::compact::{Decoder, Encoder, Piece};
use glance_download_sidecar::tools::sim::generated_bytes;

/// Bytes coded per iteration.
const SIZE: usize = 8 << 20;

fn random() -> Vec<u8> {
    generated_bytes(7, 0, SIZE).to_vec()
}

/// A sparse image: 10 % data in 64 KiB pieces, the rest zeros.
fn sparse() -> Vec<u8> {
    let data = generated_bytes(11, 0, SIZE).to_vec();
    let mut out = vec![0u8; SIZE];
    for (i, piece) in out.chunks_mut(640 * 1024).enumerate() {
        let n = piece.len().min(64 * 1024);
        piece[..n].copy_from_slice(&data[i * n..(i + 1) * n]);
    }
    out
}

fn text() -> Vec<u8> {
    let mut out = Vec::with_capacity(SIZE);
    let mut i = 0u64;
    while out.len() < SIZE {
        let line = format!(
            "2026-12-04T22:{:02}:{:02}.{:06} INFO glance_download_sidecar::import task {:08x} copied {} bytes\n",
            (i / 60) % 60,
            i % 60,
            i * 7919 % 1_000_000,
            i * 2_654_435_761 % (1 << 32),
            i * 4096
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(SIZE);
    out
}

fn encode(data: &[u8]) -> Bytes {
    let mut encoder = Encoder::new();
    let mut out = BytesMut::with_capacity(data.len() + 4096);
    encoder.encode(data, &mut out);
    encoder.finish(&mut out);
    out.freeze()
}

fn decode(coded: &Bytes, size: u64) -> u64 {
    let mut decoder = Decoder::new(size);
    let mut context = zstd::bulk::Decompressor::new().expect("a zstd context");
    decoder.feed(coded.clone());
    let mut decoded = 0;
    while let Some(piece) = decoder.next_piece().expect("a valid coding") {
        decoded += match piece {
            Piece::Data(data) => black_box(data).len() as u64,
            Piece::Compressed(frame) => {
                black_box(frame.inflate(&mut context).expect("inflates")).len() as u64
            }
        };
    }
    decoded
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("compact");
    group
        .throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, data) in [("random", random()), ("sparse", sparse()), ("text", text())] {
        let coded = encode(&data);
        assert_eq!(decode(&coded, SIZE as u64), SIZE as u64);
        println!(
            "compact/{name}: {} bytes coded as {} ({:.1} %)",
            data.len(),
            coded.len(),
            coded.len() as f64 * 100.0 / data.len() as f64
        );
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode(black_box(&data)))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode(black_box(&coded), SIZE as u64))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
