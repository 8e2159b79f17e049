//! The hash-only ceiling: MD5 and the `os_hash_algo` hash on two threads of their own, fed the same
//! `Bytes` frames through bounded channels, with no HTTP, no tokio and no pipeline around them.
//!
//! This is the rate the pipeline would reach if moving bytes cost nothing: each hasher has a core,
//! and the slower one sets the pace. The pipeline's figures are read as a ratio to this one,
//! measured in the same run.

use std::sync::mpsc::{sync_channel, Receiver};

use bytes::Bytes;

use crate::hash::{to_hex, HashAlgo};

/// The two digests of one pass: MD5 (`checksum`) and the other algorithm's (`os_hash_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: String,
    pub other: String,
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
        Ok(Digests {
            md5: md5.join().map_err(gone)?,
            other: other.join().map_err(gone)?,
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

fn hash_all(algo: HashAlgo, frames: Receiver<Bytes>) -> String {
    let mut hasher = algo.hasher();
    for frame in frames {
        hasher.update(&frame);
    }
    to_hex(&hasher.finalize())
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
        crate::sim::generated_bytes(seed, offset, (size - offset).min(frame) as usize)
    })
}
