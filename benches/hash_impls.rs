//! MD5, SHA-256 and SHA-512 from every implementation available as a crate, side by side on one
//! buffer, in the bench thread's CPU time (`impls_cpu/*`; "thrpt" is bytes per CPU-second) and in
//! wall-clock time (`impls/*`):
//! - `rustcrypto`: `md-5` (built with `asm`) and `sha2`, what `hash.rs` used before;
//! - `crate`: `HashAlgo::hasher()`, whatever `hash.rs` uses now;
//! - `ring`: ring's `digest` (OpenSSL-derived assembly; in the tree through rustls);
//! - `openssl`: the system libcrypto through the `openssl` crate.
//!
//! Every contender is checked against the others' digest before it is measured.
//!
//! `cargo bench --bench hash_impls` (BENCHMARKS.md §2 has the figures).

mod support;

use criterion::measurement::Measurement;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use digest::Digest;
use glance_download_sidecar::hash::{to_hex, HashAlgo};

/// Bytes hashed per iteration.
const SIZE: usize = 64 << 20;
/// Bytes per `update()` call (the pipeline's default chunk size).
const UPDATE: usize = 1 << 20;

type Contender = fn(&[u8]) -> String;

fn rustcrypto<D: Digest>(data: &[u8]) -> String {
    let mut hasher = D::new();
    for piece in data.chunks(UPDATE) {
        hasher.update(piece);
    }
    to_hex(&hasher.finalize())
}

fn this_crate(algo: HashAlgo, data: &[u8]) -> String {
    let mut hasher = algo.hasher();
    for piece in data.chunks(UPDATE) {
        hasher.update(piece);
    }
    to_hex(&hasher.finalize())
}

fn ring(algorithm: &'static ring::digest::Algorithm, data: &[u8]) -> String {
    let mut context = ring::digest::Context::new(algorithm);
    for piece in data.chunks(UPDATE) {
        context.update(piece);
    }
    to_hex(context.finish().as_ref())
}

fn openssl(kind: openssl::hash::MessageDigest, data: &[u8]) -> String {
    let mut hasher = openssl::hash::Hasher::new(kind).expect("libcrypto has the digest");
    for piece in data.chunks(UPDATE) {
        hasher.update(piece).expect("libcrypto hashes");
    }
    to_hex(&hasher.finish().expect("libcrypto finishes"))
}

/// Every contender, by algorithm.
fn contenders() -> Vec<(&'static str, Vec<(&'static str, Contender)>)> {
    use openssl::hash::MessageDigest;
    vec![
        (
            "md5",
            vec![
                ("rustcrypto", rustcrypto::<md5::Md5> as Contender),
                ("crate", |d| this_crate(HashAlgo::Md5, d)),
                ("openssl", |d| openssl(MessageDigest::md5(), d)),
            ],
        ),
        (
            "sha256",
            vec![
                ("rustcrypto", rustcrypto::<sha2::Sha256> as Contender),
                ("crate", |d| this_crate(HashAlgo::Sha256, d)),
                ("ring", |d| ring(&ring::digest::SHA256, d)),
                ("openssl", |d| openssl(MessageDigest::sha256(), d)),
            ],
        ),
        (
            "sha512",
            vec![
                ("rustcrypto", rustcrypto::<sha2::Sha512> as Contender),
                ("crate", |d| this_crate(HashAlgo::Sha512, d)),
                ("ring", |d| ring(&ring::digest::SHA512, d)),
                ("openssl", |d| openssl(MessageDigest::sha512(), d)),
            ],
        ),
    ]
}

fn run<M: Measurement>(group: &mut BenchmarkGroup<'_, M>, data: &[u8]) {
    support::flat_group(group, SIZE as u64, 3);
    for (algo, list) in contenders() {
        let want = list[0].1(data);
        for (name, hash) in list {
            assert_eq!(hash(data), want, "{algo} by {name}");
            group.bench_function(format!("{algo}/{name}"), |b| {
                b.iter(|| hash(black_box(data)))
            });
        }
    }
}

fn data() -> Vec<u8> {
    // Any bytes will do for a hash; these are not all alike, so nothing is special-cased.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn impls(c: &mut Criterion) {
    run(&mut c.benchmark_group("impls"), &data());
}

fn impls_cpu(c: &mut Criterion<support::ThreadCpu>) {
    run(&mut c.benchmark_group("impls_cpu"), &data());
}

criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(support::ThreadCpu::new());
    targets = impls_cpu
}
criterion_group!(wall, impls);
criterion_main!(cpu, wall);
