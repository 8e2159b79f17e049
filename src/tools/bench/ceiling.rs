//! The hash-only ceiling: MD5 and the `os_hash_algo` hash on two threads of their own, fed the same
//! `Bytes` frames through bounded channels, with no HTTP, no tokio and no pipeline around them.
//!
//! This is the rate the pipeline would reach if moving bytes cost nothing: each hasher has a core,
//! and the slower one sets the pace. The pipeline's figures are read as a ratio to this one,
//! measured in the same run.

use std::sync::mpsc::{sync_channel, Receiver};

use bytes::Bytes;

use super::measure::this_thread_cpu;
use crate::hash::{to_hex, HashAlgo};

/// The two digests of one pass: MD5 (`checksum`) and the other algorithm's (`os_hash_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: String,
    pub other: String,
}

/// What one two-thread pass measured: the digests, and the CPU seconds each hasher thread spent
/// (from the kernel's per-thread accounting; `None` where it is not available).
#[derive(Debug, Clone)]
pub struct Ceiling {
    pub digests: Digests,
    pub md5_cpu: Option<f64>,
    pub other_cpu: Option<f64>,
}

impl Ceiling {
    /// The rate, in bytes per second, if each hasher had a core of its own: `bytes` over the
    /// busier hasher's CPU time. Other load on the machine barely moves it.
    pub fn own_core_rate(&self, bytes: u64) -> Option<f64> {
        let busiest = self.md5_cpu?.max(self.other_cpu?);
        (busiest > 0.0).then(|| bytes as f64 / busiest)
    }
}

/// Hashes `frames` with MD5 and `algo` on two threads (named `gds-hash-md5` and `gds-hash-<algo>`),
/// each fed `Bytes` clones (a reference-count increment, no copy) through a channel of `depth`
/// frames, as the pipeline feeds its hashers. The calling thread produces the frames.
///
/// Fails only if a thread cannot be started or panics.
pub fn hash_two_threads<I>(frames: I, algo: HashAlgo, depth: usize) -> std::io::Result<Digests>
where
    I: IntoIterator<Item = Bytes>,
{
    hash_two_threads_measured(frames, algo, depth).map(|ceiling| ceiling.digests)
}

/// [`hash_two_threads`], also returning each hasher thread's CPU time.
pub fn hash_two_threads_measured<I>(
    frames: I,
    algo: HashAlgo,
    depth: usize,
) -> std::io::Result<Ceiling>
where
    I: IntoIterator<Item = Bytes>,
{
    std::thread::scope(|scope| {
        let (md5_tx, md5_rx) = sync_channel::<Bytes>(depth.max(1));
        let (other_tx, other_rx) = sync_channel::<Bytes>(depth.max(1));
        let md5 = std::thread::Builder::new()
            .name("gds-hash-md5".into())
            .spawn_scoped(scope, move || hash_all(HashAlgo::Md5, md5_rx))?;
        let other = std::thread::Builder::new()
            .name(format!("gds-hash-{}", algo.name()))
            .spawn_scoped(scope, move || hash_all(algo, other_rx))?;
        for frame in frames {
            // A send fails only when its hasher is gone (it panicked): stop feeding, report below.
            if md5_tx.send(frame.clone()).is_err() || other_tx.send(frame).is_err() {
                break;
            }
        }
        drop((md5_tx, other_tx));
        let gone = |_| std::io::Error::other("a hasher thread panicked");
        let (md5, md5_cpu) = md5.join().map_err(gone)?;
        let (other, other_cpu) = other.join().map_err(gone)?;
        Ok(Ceiling {
            digests: Digests { md5, other },
            md5_cpu,
            other_cpu,
        })
    })
}

/// Hashes `frames` with MD5 then `algo`, both on the calling thread (the sequential baseline that
/// two threads are compared with).
pub fn hash_one_thread<I>(frames: I, algo: HashAlgo) -> Digests
where
    I: IntoIterator<Item = Bytes>,
{
    let mut md5 = HashAlgo::Md5.hasher();
    let mut other = algo.hasher();
    for frame in frames {
        md5.update(&frame);
        other.update(&frame);
    }
    Digests {
        md5: to_hex(&md5.finalize()),
        other: to_hex(&other.finalize()),
    }
}

/// Hashes every frame received; returns the digest and this thread's CPU seconds.
fn hash_all(algo: HashAlgo, frames: Receiver<Bytes>) -> (String, Option<f64>) {
    let started = this_thread_cpu();
    let mut hasher = algo.hasher();
    for frame in frames {
        hasher.update(&frame);
    }
    let digest = to_hex(&hasher.finalize());
    let cpu = started
        .zip(this_thread_cpu())
        .map(|(start, end)| (end - start).max(0.0));
    (digest, cpu)
}

/// `data` cut into frames of `frame` bytes (the last may be shorter), as slices: no copy.
pub fn slices(data: &Bytes, frame: usize) -> impl Iterator<Item = Bytes> + '_ {
    let frame = frame.max(1);
    (0..data.len())
        .step_by(frame)
        .map(move |start| data.slice(start..(start + frame).min(data.len())))
}

/// `size` bytes of the simulated cloud's generated stream for `seed`, made on demand in frames of
/// `frame` bytes: the same bytes a fake Glance serves for `ImageData::Generated { seed, size }`.
pub fn generated_frames(seed: u64, size: u64, frame: usize) -> impl Iterator<Item = Bytes> {
    let frame = frame.max(1) as u64;
    (0..size.div_ceil(frame)).map(move |i| {
        let offset = i * frame;
        crate::tools::sim::generated_bytes(seed, offset, (size - offset).min(frame) as usize)
    })
}
