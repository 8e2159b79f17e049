//! The ends the benchmarks put around the pipeline: an in-memory source body of pre-built frames,
//! a null sink that drains a [`SinkBody`], and seeded jitter that makes either end slow at times.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::Sleep;

use crate::pipeline::{Aborted, SinkBody};

/// Seeded pauses: before a frame, with probability `1 / one_in`, wait `pause`.
///
/// A deterministic xorshift64* stream, so a run pauses at the same frames every time.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
    one_in: u64,
    pause: Duration,
}

impl Jitter {
    /// Pauses for `pause` before about one frame in `one_in` (never when `one_in` is 0).
    pub fn new(seed: u64, one_in: u64, pause: Duration) -> Jitter {
        Jitter {
            state: seed | 1,
            one_in,
            pause,
        }
    }

    /// The pause before the next frame, if any.
    pub fn next_pause(&mut self) -> Option<Duration> {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let draw = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (self.one_in > 0 && draw.is_multiple_of(self.one_in)).then_some(self.pause)
    }
}

// === impl FramesBody ===

/// A source body that serves `data` as frames of `frame` bytes, each a slice of `data` (no copy),
/// optionally pausing per a [`Jitter`] (a slow producer).
pub struct FramesBody {
    data: Bytes,
    pos: usize,
    frame: usize,
    jitter: Option<Jitter>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl FramesBody {
    pub fn new(data: Bytes, frame: usize, jitter: Option<Jitter>) -> FramesBody {
        FramesBody {
            data,
            pos: 0,
            frame: frame.max(1),
            jitter,
            sleep: None,
        }
    }
}

impl Body for FramesBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            std::task::ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        } else if this.pos < this.data.len() {
            if let Some(pause) = this.jitter.as_mut().and_then(Jitter::next_pause) {
                let mut sleep = Box::pin(tokio::time::sleep(pause));
                if sleep.as_mut().poll(cx).is_pending() {
                    this.sleep = Some(sleep);
                    return Poll::Pending;
                }
            }
        }
        if this.pos >= this.data.len() {
            return Poll::Ready(None);
        }
        let end = (this.pos + this.frame).min(this.data.len());
        let chunk = this.data.slice(this.pos..end);
        this.pos = end;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.data.len() - self.pos) as u64)
    }
}

// === null sink ===

/// What the null sink read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    pub bytes: u64,
    pub frames: u64,
}

/// Reads `body` to its end and drops every frame (a store that costs nothing), pausing per
/// `jitter` before reading each frame (a slow consumer). Fails if the pipeline aborted the body.
pub async fn drain(mut body: SinkBody, mut jitter: Option<Jitter>) -> Result<Drained, Aborted> {
    let mut read = Drained::default();
    loop {
        if let Some(pause) = jitter.as_mut().and_then(Jitter::next_pause) {
            tokio::time::sleep(pause).await;
        }
        match body.frame().await {
            None => return Ok(read),
            Some(Err(aborted)) => return Err(aborted),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.bytes += data.len() as u64;
                    read.frames += 1;
                }
            }
        }
    }
}
