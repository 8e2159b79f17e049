//! The body a store sink reads: verified frames in order, ending cleanly only after verification.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

use super::budget::Charged;
use super::Verified;

/// Why the sink body stopped before its end: the upload must be aborted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("import aborted before the last byte: {0}")]
pub struct Aborted(pub String);

/// Frames from the pipeline, in order. Its end-of-stream is the commit signal: a sink treats
/// anything but a clean end after exactly `size` bytes as an abort.
pub struct SinkBody {
    rx: mpsc::Receiver<Result<Charged, Aborted>>,
    remaining: u64,
    failed: bool,
    verdict: Arc<OnceLock<Verified>>,
}

impl SinkBody {
    pub(super) fn new(
        rx: mpsc::Receiver<Result<Charged, Aborted>>,
        size: u64,
        verdict: Arc<OnceLock<Verified>>,
    ) -> Self {
        SinkBody {
            rx,
            remaining: size,
            failed: false,
            verdict,
        }
    }

    /// The verified size and digests, once the body has ended cleanly (`None` before, and
    /// always after a failure). Sinks that register the data elsewhere (the `s3` sink's
    /// validation data) take the digests from here instead of hashing again.
    pub fn verified(&self) -> Option<&Verified> {
        if self.failed || self.remaining > 0 {
            return None;
        }
        self.verdict.get()
    }
}

impl http_body::Body for SinkBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match std::task::ready!(self.rx.poll_recv(cx)) {
            Some(Ok(chunk)) => {
                // Taken: the frame leaves the pipeline's byte budget once both hashers have it.
                let chunk = chunk.into_data();
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Some(Err(aborted)) => {
                self.failed = true;
                Poll::Ready(Some(Err(aborted)))
            }
            // The pipeline ended without releasing everything: never a short success.
            None if self.remaining > 0 => {
                self.failed = true;
                Poll::Ready(Some(Err(Aborted("the pipeline stopped early".into()))))
            }
            None => Poll::Ready(None),
        }
    }

    // Never claims its end early: the last frame is only released after verification, so the
    // sink must keep polling until the pipeline closes the channel.
    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
