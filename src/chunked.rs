//! Upload bodies whose abort every HTTP server can see.
//!
//! An upload aborted by cutting a `Content-Length` body short leaves the server to notice that
//! bytes are missing: uwsgi raises, eventlet's WSGI server hands the bytes that arrived on as a
//! clean end of data (Glance then still counts them through WebOb, but a stack that does not
//! would store a short image as complete). A body in chunked transfer coding (RFC 9112 §7.1) that
//! stops before its last chunk is an error in the server's own parser, eventlet's and uwsgi's
//! alike, whatever the application does. [`Chunked`] makes hyper send a body
//! that way: it never reports an exact length, so hyper frames it as chunks and, when the body
//! fails, closes the connection without the terminating zero-length chunk.
//!
//! [`Chunked`]: crate::chunked::Chunked

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;

/// Largest chunk sent. uwsgi's `chunked_read`, which Glance uses for chunked uploads, holds one
/// whole chunk in a buffer of `--chunked-input-limit` bytes (1 MB by default) and fails a larger
/// one; larger frames are split (without copying) below that.
pub const MAX_CHUNK: usize = 256 * 1024;

/// A body sent in chunked transfer coding, its frames at most [`MAX_CHUNK`] bytes.
#[pin_project]
pub struct Chunked<B> {
    #[pin]
    inner: B,
    /// The rest of a frame larger than [`MAX_CHUNK`], sent before the next frame is polled.
    rest: Bytes,
}

impl<B> Chunked<B> {
    pub fn new(inner: B) -> Self {
        Chunked {
            inner,
            rest: Bytes::new(),
        }
    }
}

/// Takes at most [`MAX_CHUNK`] bytes off the front of `data`.
fn take_chunk(data: &mut Bytes) -> Bytes {
    if data.len() > MAX_CHUNK {
        data.split_to(MAX_CHUNK)
    } else {
        std::mem::take(data)
    }
}

impl<B> Body for Chunked<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if !this.rest.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(take_chunk(this.rest)))));
        }
        match std::task::ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    let chunk = take_chunk(&mut data);
                    *this.rest = data;
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    /// Never exact: an exact length makes hyper send `Content-Length`, whose cut some servers
    /// take for a complete body.
    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn frames_are_split_below_the_chunk_limit_and_the_length_is_never_exact() {
        let data = Bytes::from(vec![7u8; MAX_CHUNK * 2 + 10]);
        let body = Chunked::new(Full::new(data.clone()));
        assert_eq!(body.size_hint().exact(), None);
        let mut body = std::pin::pin!(body);
        let mut lens = Vec::new();
        let mut joined = Vec::new();
        while let Some(frame) = body.frame().await {
            let chunk = frame.unwrap().into_data().unwrap();
            lens.push(chunk.len());
            joined.extend_from_slice(&chunk);
        }
        assert_eq!(lens, vec![MAX_CHUNK, MAX_CHUNK, 10]);
        assert_eq!(joined, data);
    }

    /// Frames handed out in order.
    struct Script(std::collections::VecDeque<Result<Bytes, &'static str>>);

    impl Body for Script {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            Poll::Ready(self.0.pop_front().map(|r| r.map(Frame::data)))
        }
    }

    #[tokio::test]
    async fn an_error_is_passed_on() {
        let frames = [Ok(Bytes::from_static(b"abc")), Err("cut")];
        let mut body = std::pin::pin!(Chunked::new(Script(frames.into_iter().collect())));
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "abc"
        );
        assert_eq!(body.frame().await.unwrap().unwrap_err(), "cut");
    }
}
