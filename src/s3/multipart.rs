//! One multipart upload fed by a [`SinkBody`]: parts of a fixed size, one being filled while
//! the previous one is sent, completed only after the body's clean (verified) end and aborted
//! otherwise.
//!
//! Memory: a part holds the pipeline's own frames (`Bytes`, no copy) until it is sent, so an
//! upload holds at most two parts (`2 × part_size`) whatever the image size. Each part's MD5 is
//! computed frame by frame as the part fills (no copy either), sent as `Content-MD5` and checked
//! against the ETag S3 answers.
//!
//! Never overwrites: the key must be free before the upload starts (`HEAD` answers 404), and the
//! completion is conditional (`If-None-Match: *`) for an object that appears meanwhile. Parts are sent
//! from memory, so a stalled source never leaves an S3 request idle, and a part that fails for
//! a transient reason is sent again.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use md5::{Digest, Md5};

use super::{S3Client, S3Error, MAX_PARTS};
use crate::backoff::Backoff;
use crate::pipeline::{Aborted, SinkBody, Verified};

/// Attempts per part for transient failures: three in all, the pause doubling from 200 ms.
const PART_BACKOFF: Backoff = Backoff::new(3, Duration::from_millis(200));

/// Why the upload did not complete.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The pipeline stopped the data (mismatch, source failure): the upload was aborted.
    #[error(transparent)]
    Aborted(#[from] Aborted),
    /// The body ended without the pipeline's verdict (never completed: fail closed).
    #[error("the data ended without being verified")]
    Unverified,
    /// The body carried more bytes than the image's size.
    #[error("the data is longer than the image's size")]
    TooLong,
    /// An object already exists at the key: it is never overwritten.
    #[error("an object already exists at {0}; it is left as it is (remove it if no image uses it, then import again)")]
    Exists(String),
    /// S3 refused or failed a call.
    #[error(transparent)]
    S3(#[from] S3Error),
}

/// The part size used for an image of `size` bytes: `part_size`, or larger when the image would
/// otherwise need more than S3's 10 000 parts.
pub fn effective_part_size(size: u64, part_size: u64) -> u64 {
    part_size.max(size.div_ceil(MAX_PARTS)).max(1)
}

/// Uploads `body` (`size` bytes, more than zero) as object `key`; returns the pipeline's
/// verified digests once S3 has completed the object. On any failure the multipart upload is
/// aborted, so no parts remain and no object is written; an object already at the key is
/// refused ([`UploadError::Exists`]), never replaced.
pub async fn upload(
    client: &S3Client,
    key: &str,
    size: u64,
    body: SinkBody,
) -> Result<Verified, UploadError> {
    let part_size = effective_part_size(size, client.config().part_size);
    if client.head_object(key).await?.is_some() {
        return Err(UploadError::Exists(client.config().location_uri(key)));
    }
    let upload_id = client.create_multipart(key).await?;
    let mut guard = AbortOnDrop {
        client: client.clone(),
        key: key.to_string(),
        upload_id: Some(upload_id.clone()),
    };
    let mut body = body;
    let result = async {
        let parts = send_parts(client, key, &upload_id, size, part_size, &mut body).await?;
        let verified = body.verified().cloned().ok_or(UploadError::Unverified)?;
        client
            .complete(key, &upload_id, &parts)
            .await
            .map_err(|error| match error.code() {
                Some("PreconditionFailed") => {
                    UploadError::Exists(client.config().location_uri(key))
                }
                _ => UploadError::S3(error),
            })?;
        Ok(verified)
    }
    .await;
    match result {
        Ok(verified) => {
            guard.upload_id = None;
            tracing::debug!(key, bytes = size, "Multipart upload completed");
            Ok(verified)
        }
        Err(error) => {
            guard.abort_now().await;
            Err(error)
        }
    }
}

type PartFuture<'a> = Pin<Box<dyn Future<Output = Result<(u32, String), UploadError>> + Send + 'a>>;

/// Reads the body part by part, sending each while the next fills; returns `(number, ETag)`s
/// after the body's clean end.
async fn send_parts(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    size: u64,
    part_size: u64,
    body: &mut SinkBody,
) -> Result<Vec<(u32, String)>, UploadError> {
    let mut parts = Vec::new();
    let mut carry: Option<Bytes> = None;
    let mut inflight: Option<PartFuture<'_>> = None;
    let mut filled: u64 = 0;
    let mut number: u32 = 0;
    while filled < size {
        let want = part_size.min(size - filled);
        let fill = fill_part(body, &mut carry, want);
        let (chunks, md5) = match inflight.take() {
            Some(sending) => {
                let (filled, done) = tokio::try_join!(fill, sending)?;
                parts.push(done);
                filled
            }
            None => fill.await?,
        };
        filled += want;
        number += 1;
        inflight = Some(Box::pin(send_part(
            client, key, upload_id, number, chunks, want, md5,
        )));
    }
    // The last frame comes only after verification, and the body's end only after that: wait
    // for the end while the last part is on its way.
    let end = async {
        match carry {
            Some(_) => Err(UploadError::TooLong),
            None => expect_end(body).await,
        }
    };
    match inflight.take() {
        Some(sending) => {
            let ((), done) = tokio::try_join!(end, sending)?;
            parts.push(done);
        }
        None => end.await?,
    }
    Ok(parts)
}

/// Takes exactly `want` bytes from `carry` and then the body, splitting a frame that crosses
/// the part boundary (the rest is carried into the next part); returns the frames and their MD5.
async fn fill_part(
    body: &mut SinkBody,
    carry: &mut Option<Bytes>,
    want: u64,
) -> Result<(Vec<Bytes>, [u8; 16]), UploadError> {
    let mut chunks = Vec::new();
    let mut md5 = Md5::new();
    let mut have: u64 = 0;
    while have < want {
        let mut chunk = match carry.take() {
            Some(chunk) => chunk,
            None => match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Some(Err(aborted)) => return Err(UploadError::Aborted(aborted)),
                None => return Err(UploadError::Unverified),
            },
        };
        let room = (want - have) as usize;
        if chunk.len() > room {
            *carry = Some(chunk.split_off(room));
        }
        have += chunk.len() as u64;
        if !chunk.is_empty() {
            md5.update(&chunk);
            chunks.push(chunk);
        }
    }
    Ok((chunks, md5.finalize().into()))
}

/// Waits for the body's clean end after all its bytes were taken.
async fn expect_end(body: &mut SinkBody) -> Result<(), UploadError> {
    loop {
        match body.frame().await {
            None => return Ok(()),
            Some(Err(aborted)) => return Err(UploadError::Aborted(aborted)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => return Err(UploadError::TooLong),
                _ => continue,
            },
        }
    }
}

/// Sends one part, again after a transient failure (the frames are kept until it succeeds).
async fn send_part(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    number: u32,
    chunks: Vec<Bytes>,
    len: u64,
    md5: [u8; 16],
) -> Result<(u32, String), UploadError> {
    let mut attempts = PART_BACKOFF.start();
    loop {
        let error = match client
            .upload_part(key, upload_id, number, chunks.clone(), len, &md5)
            .await
        {
            Ok(etag) => return Ok((number, etag)),
            Err(error) => error,
        };
        match attempts.failed() {
            Some(pause) if error.is_transient() => {
                let attempt = attempts.failures();
                tracing::warn!(%error, part = number, attempt, "Retrying an S3 part upload");
                tokio::time::sleep(pause).await;
            }
            _ => return Err(error.into()),
        }
    }
}

/// Aborts the multipart upload unless it completed: now on a failure, or in the background when
/// the upload is dropped mid-way (import timeout, shutdown), so no parts are left behind.
struct AbortOnDrop {
    client: S3Client,
    key: String,
    upload_id: Option<String>,
}

impl AbortOnDrop {
    async fn abort_now(&mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            abort(&self.client, &self.key, &upload_id).await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let key = std::mem::take(&mut self.key);
            runtime.spawn(async move { abort(&client, &key, &upload_id).await });
        }
    }
}

async fn abort(client: &S3Client, key: &str, upload_id: &str) {
    match client.abort(key, upload_id).await {
        Ok(()) => tracing::debug!(key, "Multipart upload aborted"),
        Err(error) => tracing::warn!(%error, key, "Failed to abort a multipart upload"),
    }
}
