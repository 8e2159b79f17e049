//! The data path: source body → MD5 ‖ `os_hash_algo` hashers (two threads) → store sink, bounded at
//! every stage and fail-closed.
//!
//! A pump task reads the source frame by frame. Each frame goes, as a `Bytes` clone, to both
//! hashers and then to the sink's channel. Every frame holds its share of one byte budget
//! ([`Limits::buffer_bytes`]) until both hashers have hashed it and the sink has taken it, and the
//! pump reads on only while the budget has room: the slowest stage paces the source
//! (backpressure) and memory stays flat whatever the image size and however the source frames it. The pump always
//! holds back the most recent frame: only when the source has ended cleanly, the byte count is the
//! source's size and both digests equal the source's does it release that last frame and close the
//! sink body. On any mismatch or error the sink body fails instead, and the sink aborts its upload.
//!
//! [`Limits::buffer_bytes`]: crate::pipeline::Limits::buffer_bytes

mod body;
mod budget;
mod hasher;
mod ranged;
mod source;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

pub use body::{Aborted, SinkBody};
pub use budget::{Charged, MIN_FRAME_CHARGE};
pub use hasher::{HasherGone, HasherThread};
pub use ranged::{ParallelRanges, RemoteSource, Streams};
pub use source::{BodySource, Remote, Resuming, RetryPolicy, Source, SourceError};

pub use crate::verify::{Expected, Verified};

use crate::hash::HashAlgo;

use budget::Budget;

/// Bounds of the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest frame handed on; larger source frames are split (without copying).
    pub chunk_size: usize,
    /// Bytes held between the source and the slowest of the hashers and the sink (at least two
    /// frames of `chunk_size`; a frame counts as at least [`MIN_FRAME_CHARGE`] bytes).
    pub buffer_bytes: usize,
}

/// Why the data could not be delivered verified.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the source sent more than its size of {expected} bytes")]
    TooLong { expected: u64 },
    #[error("the source sent {got} bytes, its size is {expected}")]
    TooShort { expected: u64, got: u64 },
    #[error("checksum mismatch: the source image says {expected}, its data hashes to {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("{algo} mismatch: the source image says {expected}, its data hashes to {actual}")]
    HashMismatch {
        algo: HashAlgo,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Hasher(#[from] HasherGone),
    #[error("the store stopped reading the data")]
    SinkGone,
}

impl crate::glance::GlanceStatus for PipelineError {
    /// The status the source answered, when the source failed.
    fn glance_status(&self) -> Option<http::StatusCode> {
        match self {
            PipelineError::Source(source) => source.status(),
            _ => None,
        }
    }
}

/// Starts the pipeline over `source`. Returns the body the sink must read and the pump, whose
/// result says whether the data was verified. Poll both (e.g. with `tokio::join!`).
pub fn start<S>(
    source: S,
    expected: Expected,
    limits: Limits,
    progress: Arc<AtomicU64>,
) -> (
    SinkBody,
    impl Future<Output = Result<Verified, PipelineError>>,
)
where
    S: Source + 'static,
{
    let budget = Budget::new(limits.buffer_bytes, limits.chunk_size);
    let (tx, rx) = mpsc::channel(budget.max_frames());
    let verdict = Arc::new(std::sync::OnceLock::new());
    let body = SinkBody::new(rx, expected.size, verdict.clone());
    let pump = pump(source, expected, limits, budget, progress, tx, verdict);
    (body, pump)
}

/// Why a transfer failed: the data was not delivered verified, or the store refused it.
#[derive(Debug)]
pub enum TransferError<E> {
    Pipeline(PipelineError),
    Store(E),
}

/// Runs the pump and the store's upload of its body together and returns the verified data.
/// The pump's verdict decides, except when it only saw the store stop reading
/// ([`PipelineError::SinkGone`]): then the store's own error says why. An empty image has no
/// last frame to hold back, so it is verified before its (empty) upload starts.
pub async fn transfer<T, E>(
    size: u64,
    pump: impl Future<Output = Result<Verified, PipelineError>>,
    store: impl Future<Output = Result<T, E>>,
) -> Result<Verified, TransferError<E>> {
    if size == 0 {
        let verified = pump.await.map_err(TransferError::Pipeline)?;
        store.await.map_err(TransferError::Store)?;
        return Ok(verified);
    }
    let (stored, pumped) = tokio::join!(store, pump);
    match (pumped, stored) {
        (Err(PipelineError::SinkGone), Err(e)) => Err(TransferError::Store(e)),
        (Err(e), _) => Err(TransferError::Pipeline(e)),
        (Ok(_), Err(e)) => Err(TransferError::Store(e)),
        (Ok(verified), Ok(_)) => Ok(verified),
    }
}

async fn pump<S: Source>(
    mut source: S,
    expected: Expected,
    limits: Limits,
    budget: Budget,
    progress: Arc<AtomicU64>,
    tx: mpsc::Sender<Result<Charged, Aborted>>,
    published: Arc<std::sync::OnceLock<Verified>>,
) -> Result<Verified, PipelineError> {
    let algo = expected
        .os_hash
        .as_ref()
        .map(|(a, _)| *a)
        .unwrap_or(HashAlgo::Sha512);
    let md5 = HasherThread::spawn(HashAlgo::Md5, budget.max_frames());
    let other = HasherThread::spawn(algo, budget.max_frames());
    let stages = Stages {
        budget: &budget,
        md5: &md5,
        other: &other,
        tx: &tx,
    };
    let result = run(&mut source, &expected, limits, &progress, stages).await;
    let held = match result {
        Ok(held) => held,
        Err(error) => {
            let _ = tx.send(Err(Aborted(error.to_string()))).await;
            return Err(error);
        }
    };
    let verdict = verify(&expected, md5.finish().await?, algo, other.finish().await?);
    match verdict {
        Ok(verified) => {
            // Published before the last frame and the channel's close, so a sink that sees the
            // clean end also sees the digests.
            let _ = published.set(verified.clone());
            if let Some(last) = held {
                tx.send(Ok(last))
                    .await
                    .map_err(|_| PipelineError::SinkGone)?;
            }
            Ok(verified)
        }
        Err(error) => {
            let _ = tx.send(Err(Aborted(error.to_string()))).await;
            Err(error)
        }
    }
}

/// Where the pump sends each frame, and the budget it charges first.
#[derive(Clone, Copy)]
struct Stages<'a> {
    budget: &'a Budget,
    md5: &'a HasherThread,
    other: &'a HasherThread,
    tx: &'a mpsc::Sender<Result<Charged, Aborted>>,
}

/// Moves every frame but the last through hashers and sink; returns the held-back last frame.
async fn run<S: Source>(
    source: &mut S,
    expected: &Expected,
    limits: Limits,
    progress: &AtomicU64,
    Stages {
        budget,
        md5,
        other,
        tx,
    }: Stages<'_>,
) -> Result<Option<Charged>, PipelineError> {
    let mut held: Option<Charged> = None;
    let mut seen: u64 = 0;
    loop {
        let mut data = match source.next_frame().await {
            None => break,
            Some(frame) => frame?,
        };
        seen += data.len() as u64;
        if seen > expected.size {
            return Err(PipelineError::TooLong {
                expected: expected.size,
            });
        }
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(limits.chunk_size));
            let chunk = budget.charge(chunk).await;
            md5.feed(chunk.clone()).await?;
            other.feed(chunk.clone()).await?;
            if let Some(previous) = held.replace(chunk) {
                tx.send(Ok(previous))
                    .await
                    .map_err(|_| PipelineError::SinkGone)?;
            }
        }
        progress.store(seen, Ordering::Relaxed);
    }
    if seen != expected.size {
        return Err(PipelineError::TooShort {
            expected: expected.size,
            got: seen,
        });
    }
    Ok(held)
}

/// Compares measured digests with the source's (hex, case-insensitive).
fn verify(
    expected: &Expected,
    checksum: String,
    algo: HashAlgo,
    os_hash_value: String,
) -> Result<Verified, PipelineError> {
    if let Some(want) = &expected.checksum {
        if !want.eq_ignore_ascii_case(&checksum) {
            return Err(PipelineError::ChecksumMismatch {
                expected: want.clone(),
                actual: checksum,
            });
        }
    }
    if let Some((_, want)) = &expected.os_hash {
        if !want.eq_ignore_ascii_case(&os_hash_value) {
            return Err(PipelineError::HashMismatch {
                algo,
                expected: want.clone(),
                actual: os_hash_value,
            });
        }
    }
    Ok(Verified {
        size: expected.size,
        checksum,
        os_hash_algo: algo,
        os_hash_value,
    })
}

#[cfg(test)]
mod tests;
