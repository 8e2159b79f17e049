//! One hash algorithm on its own thread, fed through a bounded channel.
//!
//! MD5 and the `os_hash_algo` hash each cost about 2 CPU-seconds per GB on this class of machine:
//! run one after the other on one core they halve the throughput. Each runs on a blocking thread of
//! its own, fed `Bytes` clones (a reference-count increment, never a copy) through a channel of a
//! few frames, so the slower hasher paces the source.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::hash::{to_hex, HashAlgo};

/// The feeding end of a hasher thread.
pub struct HasherThread {
    algo: HashAlgo,
    tx: mpsc::Sender<Bytes>,
    done: oneshot::Receiver<String>,
}

/// The hasher thread is gone (it panicked or was cancelled).
#[derive(Debug, thiserror::Error)]
#[error("the {0} hasher stopped unexpectedly")]
pub struct HasherGone(pub HashAlgo);

impl HasherThread {
    /// Starts a hasher for `algo` that buffers at most `depth` frames.
    pub fn spawn(algo: HashAlgo, depth: usize) -> HasherThread {
        let (tx, mut rx) = mpsc::channel::<Bytes>(depth.max(1));
        let (done_tx, done) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let mut hasher = algo.hasher();
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
            }
            let _ = done_tx.send(to_hex(&hasher.finalize()));
        });
        HasherThread { algo, tx, done }
    }

    /// Queues `chunk`, waiting while the hasher is `depth` frames behind.
    pub async fn feed(&self, chunk: Bytes) -> Result<(), HasherGone> {
        self.tx.send(chunk).await.map_err(|_| HasherGone(self.algo))
    }

    /// Ends the input and waits for the lowercase hex digest.
    pub async fn finish(self) -> Result<String, HasherGone> {
        drop(self.tx);
        self.done.await.map_err(|_| HasherGone(self.algo))
    }
}
