//! One hash algorithm on its own thread, fed through a bounded channel.
//!
//! MD5 and the `os_hash_algo` hash each cost about 2 CPU-seconds per GB on this class of machine:
//! run one after the other on one core they halve the throughput. Each runs on an OS thread of its
//! own (outside tokio's blocking pool), fed clones of the pipeline's frames (a reference-count
//! increment, never a copy) through a channel; a frame keeps its share of the pipeline's byte
//! budget until it is hashed, so the slower hasher paces the source.

use tokio::sync::{mpsc, oneshot};

use super::budget::Charged;

use crate::hash::{to_hex, HashAlgo};

/// Stack of a hasher thread: hashing needs little, and `max_concurrent_imports` × 2 may run.
const HASHER_STACK: usize = 256 * 1024;

/// The feeding end of a hasher thread.
pub struct HasherThread {
    algo: HashAlgo,
    tx: mpsc::Sender<Charged>,
    done: oneshot::Receiver<String>,
}

/// The hasher thread is gone (it panicked or was cancelled).
#[derive(Debug, thiserror::Error)]
#[error("the {0} hasher stopped unexpectedly")]
pub struct HasherGone(pub HashAlgo);

impl HasherThread {
    /// Starts a hasher for `algo` that buffers at most `depth` frames.
    pub fn spawn(algo: HashAlgo, depth: usize) -> HasherThread {
        let (tx, mut rx) = mpsc::channel::<Charged>(depth.max(1));
        let (done_tx, done) = oneshot::channel();
        // A thread of its own, not tokio's blocking pool: hashers live as long as their import,
        // and `max_concurrent_imports` × 2 of them must never keep the pool's short jobs (the
        // journal's fsync, DNS lookups) waiting. If no thread can be had, the channel's receiver
        // is dropped and the import fails with `HasherGone`.
        let spawned = std::thread::Builder::new()
            .name(format!("hash-{}", algo.name()))
            .stack_size(HASHER_STACK)
            .spawn(move || {
                let mut hasher = algo.hasher();
                while let Some(chunk) = rx.blocking_recv() {
                    hasher.update(chunk.data());
                }
                let _ = done_tx.send(to_hex(&hasher.finalize()));
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "Could not start a hasher thread");
        }
        HasherThread { algo, tx, done }
    }

    /// Queues `chunk`, waiting while the hasher is `depth` frames behind.
    pub async fn feed(&self, chunk: Charged) -> Result<(), HasherGone> {
        self.tx.send(chunk).await.map_err(|_| HasherGone(self.algo))
    }

    /// Ends the input and waits for the lowercase hex digest.
    pub async fn finish(self) -> Result<String, HasherGone> {
        drop(self.tx);
        self.done.await.map_err(|_| HasherGone(self.algo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashers held open by more imports than the blocking pool has threads must not keep a
    /// short blocking job (the journal's fsync) from running.
    #[test]
    fn hashers_leave_the_blocking_pool_free() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let hashers: Vec<_> = (0..6)
                .map(|_| HasherThread::spawn(HashAlgo::Md5, 1))
                .collect();
            let budget = super::super::budget::Budget::new(1 << 20, 4096);
            for hasher in &hashers {
                let abc = budget.charge(bytes::Bytes::from_static(b"abc")).await;
                hasher.feed(abc).await.unwrap();
            }
            // A hang guard, not a timing check: with hashers on the pool this never completes.
            let fsync = tokio::task::spawn_blocking(|| 7);
            let ran = tokio::time::timeout(std::time::Duration::from_secs(30), fsync).await;
            assert_eq!(ran.expect("the blocking pool is starved").unwrap(), 7);
            for hasher in hashers {
                assert_eq!(
                    hasher.finish().await.unwrap(),
                    "900150983cd24fb0d6963f7d28e17f72"
                );
            }
        });
    }
}
