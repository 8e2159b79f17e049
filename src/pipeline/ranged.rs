//! Several `Range` requests at once, delivered in order: for long fat links, where one TCP
//! connection is held to about window / RTT and N connections get about N times that.
//!
//! The image is cut into segments of `segment_size` bytes. Up to `streams` segments are fetched
//! at the same time, each by its own [`Resuming`] reader (so a dropped segment resumes on its
//! own); frames are handed on strictly in image order. The segment at the head streams straight
//! through; the ones behind it wait in their channels, so at most `streams × segment_size` bytes
//! are held — the bounded reorder window.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::source::{Remote, Resuming, RetryPolicy, Source, SourceError};

/// Frames a segment may buffer ahead of being read (the segment's size bounds the bytes).
const SEGMENT_FRAMES: usize = 256;

/// How the source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    /// Concurrent range requests (1 = one plain stream).
    pub streams: usize,
    /// Bytes per range request.
    pub segment_size: u64,
}

/// The image read as ordered, concurrently fetched segments.
pub struct ParallelRanges {
    remote: Remote,
    policy: RetryPolicy,
    shape: Streams,
    next_start: u64,
    queue: VecDeque<mpsc::Receiver<Result<Bytes, SourceError>>>,
    fetchers: Vec<AbortHandle>,
    peeked: Option<Result<Bytes, SourceError>>,
    /// Reconnections made by all segments.
    pub retries: Arc<AtomicU64>,
}

impl ParallelRanges {
    pub fn new(remote: Remote, policy: RetryPolicy, shape: Streams) -> Self {
        ParallelRanges {
            remote,
            policy,
            shape: Streams {
                streams: shape.streams.max(1),
                segment_size: shape.segment_size.max(1),
            },
            next_start: 0,
            queue: VecDeque::new(),
            fetchers: Vec::new(),
            peeked: None,
            retries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts fetchers until `streams` segments are under way or the image is covered.
    fn fill(&mut self) {
        while self.queue.len() < self.shape.streams && self.next_start < self.remote.size {
            let start = self.next_start;
            let end = (start + self.shape.segment_size).min(self.remote.size);
            let (tx, rx) = mpsc::channel(SEGMENT_FRAMES);
            let reader = Resuming::range(
                self.remote.clone(),
                start..end,
                self.policy,
                self.retries.clone(),
            );
            let handle = tokio::spawn(fetch(reader, tx));
            self.fetchers.push(handle.abort_handle());
            self.queue.push_back(rx);
            self.next_start = end;
        }
        self.fetchers.retain(|h| !h.is_finished());
    }

    async fn pull(&mut self) -> Option<Result<Bytes, SourceError>> {
        loop {
            self.fill();
            let head = self.queue.front_mut()?;
            match head.recv().await {
                Some(frame) => return Some(frame),
                None => {
                    self.queue.pop_front();
                }
            }
        }
    }

    /// Waits for the first bytes (or the first error) before the store is touched.
    pub async fn connect(&mut self) -> Result<(), SourceError> {
        if self.peeked.is_none() {
            self.peeked = self.pull().await;
        }
        match &self.peeked {
            Some(Err(_)) => match self.peeked.take() {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

impl Drop for ParallelRanges {
    fn drop(&mut self) {
        for fetcher in &self.fetchers {
            fetcher.abort();
        }
    }
}

impl Source for ParallelRanges {
    async fn next_frame(&mut self) -> Option<Result<Bytes, SourceError>> {
        if let Some(frame) = self.peeked.take() {
            return Some(frame);
        }
        self.pull().await
    }
}

/// Reads one segment into its channel; stops at the first error or when nobody listens.
async fn fetch(mut reader: Resuming, tx: mpsc::Sender<Result<Bytes, SourceError>>) {
    while let Some(frame) = reader.next_frame().await {
        let failed = frame.is_err();
        if tx.send(frame).await.is_err() || failed {
            return;
        }
    }
}

/// The source image read either as one resumable stream or as parallel ranges.
pub enum RemoteSource {
    One(Resuming),
    Many(ParallelRanges),
}

impl RemoteSource {
    /// One stream when `shape.streams` is 1 (or the image fits one segment), else parallel.
    pub fn new(remote: Remote, policy: RetryPolicy, shape: Streams) -> Self {
        if shape.streams <= 1 || remote.size <= shape.segment_size {
            RemoteSource::One(Resuming::new(remote, policy))
        } else {
            RemoteSource::Many(ParallelRanges::new(remote, policy, shape))
        }
    }

    /// Reconnections made so far.
    pub fn retries(&self) -> Arc<AtomicU64> {
        match self {
            RemoteSource::One(r) => r.retries.clone(),
            RemoteSource::Many(p) => p.retries.clone(),
        }
    }

    /// Waits until the source has answered, before anything is written to the store.
    pub async fn connect(&mut self) -> Result<(), SourceError> {
        match self {
            RemoteSource::One(r) => r.connect().await,
            RemoteSource::Many(p) => p.connect().await,
        }
    }
}

impl Source for RemoteSource {
    async fn next_frame(&mut self) -> Option<Result<Bytes, SourceError>> {
        match self {
            RemoteSource::One(r) => r.next_frame().await,
            RemoteSource::Many(p) => p.next_frame().await,
        }
    }
}
