//! Where the pipeline's frames come from: any HTTP body, or the source Glance with resume.
//!
//! [`Resuming`] reads `GET /v2/images/{id}/file` and, when the connection drops, stalls longer
//! than the read timeout, or the server answers 5xx, reconnects with `Range: bytes=N-` (Glance
//! answers 206) and carries on from byte N, so the hashers see one continuous stream. Retries are
//! bounded and spaced by exponential backoff with jitter; 4xx answers are not retried.
//!
//! With [`Remote::compact`] it asks for the compact coding of a source sidecar
//! ([`crate::compact`]); a coded answer is decoded here, so offsets, `Range` and everything after
//! count the image's own bytes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::backoff::{Attempts, Backoff};
use crate::compact::{Decoded, CODING};
use crate::glance::{Glance, GlanceError, ImageId};
use crate::http::{describe, BoxError};
use crate::keystone::Token;

/// Why the source could not deliver the next frame.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source answered an error status (not retried when 4xx).
    #[error("the source answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    /// The connection failed (before or during the body).
    #[error("the source connection failed after {after} bytes: {reason}")]
    Broken { after: u64, reason: String },
    /// Nothing arrived for the read timeout.
    #[error("the source sent nothing for {0:?}")]
    Stalled(Duration),
    /// A resumed read did not start where asked.
    #[error("the source answered a range request with {0}")]
    BadRange(String),
    /// The source answered in a content coding this sidecar does not know.
    #[error("the source answered in the unknown content coding {0:?}")]
    Encoding(String),
    /// The source's compact coding is broken or hostile (never retried).
    #[error("the source's compact coding is invalid: {0}")]
    Compact(#[from] crate::compact::DecodeError),
    /// Retries ran out; the last error says why.
    #[error("{last} (gave up after {attempts} attempts)")]
    Exhausted {
        attempts: u32,
        #[source]
        last: Box<SourceError>,
    },
}

impl SourceError {
    /// Whether another attempt may succeed.
    fn is_transient(&self) -> bool {
        match self {
            SourceError::Status { status, .. } => status.is_server_error(),
            SourceError::Broken { .. } | SourceError::Stalled(_) => true,
            SourceError::BadRange(_)
            | SourceError::Encoding(_)
            | SourceError::Compact(_)
            | SourceError::Exhausted { .. } => false,
        }
    }

    /// The HTTP status behind this error, if the source answered one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            SourceError::Status { status, .. } => Some(*status),
            SourceError::Exhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

impl crate::glance::GlanceStatus for SourceError {
    fn glance_status(&self) -> Option<StatusCode> {
        self.status()
    }
}

/// A stream of data frames.
pub trait Source: Send {
    /// The next frame, `None` at a clean end.
    fn next_frame(&mut self) -> impl Future<Output = Option<Result<Bytes, SourceError>>> + Send;
}

/// Any HTTP body as a source, with a read timeout and no resume.
pub struct BodySource<B> {
    body: B,
    read_timeout: Duration,
    seen: u64,
}

impl<B> BodySource<B> {
    pub fn new(body: B, read_timeout: Duration) -> Self {
        BodySource {
            body,
            read_timeout,
            seen: 0,
        }
    }
}

impl<B> Source for BodySource<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin,
    B::Error: Into<BoxError>,
{
    async fn next_frame(&mut self) -> Option<Result<Bytes, SourceError>> {
        loop {
            let frame = match tokio::time::timeout(self.read_timeout, self.body.frame()).await {
                Err(_) => return Some(Err(SourceError::Stalled(self.read_timeout))),
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    return Some(Err(SourceError::Broken {
                        after: self.seen,
                        reason: describe(e.into().as_ref()),
                    }))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.seen += data.len() as u64;
                return Some(Ok(data));
            }
        }
    }
}

/// How often and how patiently to retry the source.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub max_retries: u32,
    /// Delay before the first retry; doubled each time, with jitter.
    pub base_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Longest silence before a read counts as stalled.
    pub read_timeout: Duration,
}

impl RetryPolicy {
    /// The pacing of reconnections: `max_retries` after the first attempt, exponential from
    /// `base_delay` up to `max_delay`, with "equal jitter" (half fixed, half random) so many
    /// imports do not reconnect in lockstep.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.max_retries.saturating_add(1), self.base_delay)
            .capped(self.max_delay)
            .jittered()
    }
}

/// Where a source image lives and how to ask for it.
#[derive(Clone)]
pub struct Remote {
    pub glance: Glance,
    pub base: String,
    pub id: ImageId,
    pub token: Token,
    /// The image's size.
    pub size: u64,
    /// Whether to ask for the compact coding ([`crate::compact`]) between sidecars.
    pub compact: bool,
}

/// An open answer's body: the image's bytes as sent, or decoded from the compact coding.
enum OpenBody {
    Plain(BodySource<Incoming>),
    Compact(Decoded<BodySource<Incoming>>),
}

impl Source for OpenBody {
    async fn next_frame(&mut self) -> Option<Result<Bytes, SourceError>> {
        match self {
            OpenBody::Plain(body) => body.next_frame().await,
            OpenBody::Compact(body) => body.next_frame().await,
        }
    }
}

/// Bytes `start..end` of the source image's data from its Glance, resumed with `Range` after
/// transient failures.
pub struct Resuming {
    remote: Remote,
    end: u64,
    policy: RetryPolicy,
    body: Option<OpenBody>,
    offset: u64,
    attempts: Attempts,
    /// Reconnections made (shared with metrics and the task).
    pub retries: Arc<AtomicU64>,
}

impl Resuming {
    /// The whole image.
    pub fn new(remote: Remote, policy: RetryPolicy) -> Self {
        let size = remote.size;
        Resuming::range(remote, 0..size, policy, Arc::new(AtomicU64::new(0)))
    }

    /// Bytes `range` of the image, counting reconnections into `retries`.
    pub fn range(
        remote: Remote,
        range: std::ops::Range<u64>,
        policy: RetryPolicy,
        retries: Arc<AtomicU64>,
    ) -> Self {
        Resuming {
            remote,
            end: range.end,
            policy,
            body: None,
            offset: range.start,
            attempts: policy.backoff().start(),
            retries,
        }
    }

    /// Opens (or reopens at the current offset) and checks what the server promises.
    pub async fn open(&mut self) -> Result<(), SourceError> {
        let size = self.remote.size;
        let whole = self.offset == 0 && self.end == size;
        let range = (!whole).then(|| {
            let last = (self.end < size).then(|| self.end - 1);
            (self.offset, last)
        });
        let response = self
            .remote
            .glance
            .open_file(
                &self.remote.base,
                &self.remote.id,
                &self.remote.token,
                range,
                self.remote.compact.then_some(CODING),
            )
            .await
            .map_err(|e| match e {
                GlanceError::Status { status, message } => SourceError::Status { status, message },
                GlanceError::Timeout(d) => SourceError::Stalled(d),
                other => SourceError::Broken {
                    after: self.offset,
                    reason: other.to_string(),
                },
            })?;
        let headers = response.headers();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let remaining = self.end.saturating_sub(self.offset);
        let coded = match headers.get(header::CONTENT_ENCODING) {
            None => false,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"identity") => false,
            // Only ever asked for: a source that codes unasked is not trusted to be read.
            Some(v)
                if self.remote.compact && v.as_bytes().eq_ignore_ascii_case(CODING.as_bytes()) =>
            {
                true
            }
            Some(v) => {
                return Err(SourceError::Encoding(
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                ))
            }
        };
        if !whole {
            let range = headers
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let expected = format!(
                "bytes {}-{}/{size}",
                self.offset,
                self.end.saturating_sub(1)
            );
            if response.status() != StatusCode::PARTIAL_CONTENT || range != expected {
                return Err(SourceError::BadRange(format!(
                    "{} and Content-Range {range:?}, expected 206 and {expected:?}",
                    response.status()
                )));
            }
        }
        // A coded answer's length is the coding's (when sent at all), not the image's.
        if let Some(length) = length.filter(|_| !coded) {
            if length != remaining {
                return Err(SourceError::BadRange(format!(
                    "Content-Length {length} where {remaining} bytes remain of a {size}-byte image"
                )));
            }
        }
        let body = BodySource::new(response.into_body(), self.policy.read_timeout);
        self.body = Some(if coded {
            OpenBody::Compact(Decoded::new(body, remaining))
        } else {
            OpenBody::Plain(body)
        });
        Ok(())
    }

    /// Opens the source (retrying transient failures) before any byte is needed, so the store is
    /// not touched until the source has answered.
    pub async fn connect(&mut self) -> Result<(), SourceError> {
        while self.body.is_none() {
            if let Err(error) = self.open().await {
                self.retry_after(error).await?;
            }
        }
        Ok(())
    }

    /// Decides whether to retry `error`; waits the backoff if so.
    async fn retry_after(&mut self, error: SourceError) -> Result<(), SourceError> {
        self.body = None;
        if !error.is_transient() {
            return Err(error);
        }
        let Some(pause) = self.attempts.failed() else {
            return Err(SourceError::Exhausted {
                attempts: self.attempts.failures(),
                last: Box::new(error),
            });
        };
        self.retries.fetch_add(1, Ordering::Relaxed);
        tracing::info!(image_id = %self.remote.id, offset = self.offset, attempt = self.attempts.failures(), %error, "Resuming the source download");
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

impl Source for Resuming {
    async fn next_frame(&mut self) -> Option<Result<Bytes, SourceError>> {
        loop {
            if self.offset >= self.end && self.body.is_none() {
                return None;
            }
            if self.body.is_none() {
                if let Err(error) = self.open().await {
                    if let Err(fatal) = self.retry_after(error).await {
                        return Some(Err(fatal));
                    }
                    continue;
                }
            }
            let body = self.body.as_mut()?;
            match body.next_frame().await {
                Some(Ok(data)) => {
                    self.offset += data.len() as u64;
                    return Some(Ok(data));
                }
                // A clean end before the size is a short body: resume too.
                None if self.offset < self.end => {
                    let error = SourceError::Broken {
                        after: self.offset,
                        reason: "the body ended early".into(),
                    };
                    if let Err(fatal) = self.retry_after(error).await {
                        return Some(Err(fatal));
                    }
                }
                None => {
                    self.body = None;
                    return None;
                }
                Some(Err(error)) => {
                    let error = match error {
                        SourceError::Broken { reason, .. } => SourceError::Broken {
                            after: self.offset,
                            reason,
                        },
                        other => other,
                    };
                    if let Err(fatal) = self.retry_after(error).await {
                        return Some(Err(fatal));
                    }
                }
            }
        }
    }
}
