//! Several `Range` requests at once, delivered in order: for long fat links, where one TCP
//! connection is held to about window / RTT and N connections get about N times that.
//!
//! The image is cut into segments of `segment_size` bytes. Up to `streams` segments are fetched
//! at the same time, each by its own [`Resuming`] reader (so a dropped segment resumes on its
//! own; its connection goes back to the client's pool for the next segment when its answer was
//! read to the end); frames are handed on strictly in image order. The segment at the head
//! streams straight through; the ones behind it wait in their channels, holding together at most
//! `reorder_bytes` (plus the one frame each has read and waits to place): the bounded reorder
//! window. A segment that has used the window stops reading (its connection's window fills and
//! the source waits) until the head has been handed on or it becomes the head itself.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
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
    /// Bytes the segments behind the head may hold in all (the reorder window).
    pub reorder_bytes: u64,
}

/// A frame in a segment's channel, with its share of the reorder window while it waits there.
struct Held {
    frame: Result<Bytes, SourceError>,
    /// The window's bytes it holds (none for a frame fetched while its segment was the head).
    _permit: Option<OwnedSemaphorePermit>,
    /// Bytes it counts in [`Window::held`] (0 for a frame fetched at the head).
    counted: u64,
}

/// The reorder window shared by one image's fetchers.
struct Window {
    /// One permit per byte that segments behind the head may hold.
    budget: Arc<Semaphore>,
    /// Bytes now held by frames fetched behind the head, and the most ever held.
    held: AtomicU64,
    peak: AtomicU64,
}

/// The image read as ordered, concurrently fetched segments.
pub struct ParallelRanges {
    remote: Remote,
    policy: RetryPolicy,
    shape: Streams,
    next_start: u64,
    queue: VecDeque<mpsc::Receiver<Held>>,
    fetchers: Vec<AbortHandle>,
    window: Arc<Window>,
    /// The index of the segment at the head (segments are numbered from 0 as they start).
    head: watch::Sender<u64>,
    started: u64,
    peeked: Option<Result<Bytes, SourceError>>,
    /// Reconnections made by all segments.
    pub retries: Arc<AtomicU64>,
}

impl ParallelRanges {
    pub fn new(remote: Remote, policy: RetryPolicy, shape: Streams) -> Self {
        let reorder_bytes = shape.reorder_bytes.clamp(1, u64::from(u32::MAX));
        ParallelRanges {
            remote,
            policy,
            shape: Streams {
                streams: shape.streams.max(1),
                segment_size: shape.segment_size.max(1),
                reorder_bytes,
            },
            next_start: 0,
            queue: VecDeque::new(),
            fetchers: Vec::new(),
            window: Arc::new(Window {
                budget: Arc::new(Semaphore::new(reorder_bytes as usize)),
                held: AtomicU64::new(0),
                peak: AtomicU64::new(0),
            }),
            head: watch::Sender::new(0),
            started: 0,
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
            let place = Place {
                index: self.started,
                head: self.head.subscribe(),
                window: self.window.clone(),
                limit: self.shape.reorder_bytes,
            };
            let handle = tokio::spawn(fetch(reader, tx, place));
            self.fetchers.push(handle.abort_handle());
            self.queue.push_back(rx);
            self.next_start = end;
            self.started += 1;
        }
        self.fetchers.retain(|h| !h.is_finished());
    }

    async fn pull(&mut self) -> Option<Result<Bytes, SourceError>> {
        loop {
            self.fill();
            let head = self.queue.front_mut()?;
            match head.recv().await {
                Some(held) => {
                    self.window.held.fetch_sub(held.counted, Ordering::Relaxed);
                    return Some(held.frame);
                }
                None => {
                    self.queue.pop_front();
                    self.head.send_modify(|head| *head += 1);
                }
            }
        }
    }

    /// The most bytes that frames fetched behind the head have held at once.
    pub fn peak_held(&self) -> u64 {
        self.window.peak.load(Ordering::Relaxed)
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

/// Where a fetcher's segment stands in the image, and the window it shares.
struct Place {
    index: u64,
    head: watch::Receiver<u64>,
    window: Arc<Window>,
    limit: u64,
}

impl Place {
    /// Wraps `frame` for the channel: at the head as it is; behind it, once the window has room
    /// for it (or the segment has become the head meanwhile).
    async fn hold(&mut self, frame: Result<Bytes, SourceError>) -> Held {
        let len = frame.as_ref().map_or(0, |b| b.len() as u64);
        let index = self.index;
        if len == 0 || *self.head.borrow() >= index {
            return Held {
                frame,
                _permit: None,
                counted: 0,
            };
        }
        // A frame larger than the whole window takes all of it.
        let need = len.min(self.limit) as u32;
        let permit = tokio::select! {
            permit = self.window.budget.clone().acquire_many_owned(need) => permit.ok(),
            _ = self.head.wait_for(|head| *head >= index) => None,
        };
        // None: the segment became the head while it waited (the budget is never closed).
        let Some(permit) = permit else {
            return Held {
                frame,
                _permit: None,
                counted: 0,
            };
        };
        let held = self.window.held.fetch_add(len, Ordering::Relaxed) + len;
        self.window.peak.fetch_max(held, Ordering::Relaxed);
        Held {
            frame,
            _permit: Some(permit),
            counted: len,
        }
    }
}

/// Reads one segment into its channel; stops at the first error or when nobody listens.
async fn fetch(mut reader: Resuming, tx: mpsc::Sender<Held>, mut place: Place) {
    while let Some(frame) = reader.next_frame().await {
        let failed = frame.is_err();
        let held = place.hold(frame).await;
        if tx.send(held).await.is_err() || failed {
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
