//! S3: the few calls the `s3` store sink makes (head, multipart create / upload part / complete /
//! abort, and delete), path-style and signed with AWS Signature Version 4.
//!
//! The objects are written where Glance's own s3 store (glance_store `_drivers/s3.py`) puts and
//! reads them: key = the image id in the configured bucket, location URI
//! `s3://HOST[:PORT]/BUCKET/IMAGE_ID` (`s3+https://` for an https endpoint), which glance_store
//! 5.x writes without credentials and reads with its own `s3_store_access_key`/`secret_key`.

mod client;
mod multipart;
pub mod sigv4;
pub(crate) mod xml;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use http::StatusCode;

#[cfg(any(test, feature = "tools"))]
pub(crate) use client::base64;
pub use client::S3Client;
pub use multipart::{effective_part_size, upload, UploadError};

/// The smallest part S3 accepts, except for the last part of an upload.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The most parts one multipart upload may have.
pub const MAX_PARTS: u64 = 10_000;

/// `[s3]`: the bucket Glance's s3 store uses, and how the sidecar reaches it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `endpoint`: `http(s)://host[:port]`, no path; the same S3 as Glance's `s3_store_host`.
    pub endpoint: String,
    /// `region`: the SigV4 signing region (Glance's `s3_store_region_name`).
    pub region: String,
    /// `bucket`: Glance's `s3_store_bucket`; it must exist.
    pub bucket: String,
    /// `access_key`: an S3 access key allowed to write, read and delete in the bucket.
    pub access_key: String,
    /// `secret_key`: its secret; never printed (`Debug` redacts it) nor logged.
    pub secret_key: String,
    /// `part_size`: bytes per multipart part (5 MiB to 1 GiB); raised automatically when an
    /// image would need more than 10 000 parts.
    pub part_size: u64,
    /// `location_host`: `host[:port]` written into the location URI, when Glance reaches the
    /// same S3 under another name than `endpoint` (its `s3_store_host` without the scheme).
    pub location_host: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("part_size", &self.part_size)
            .field("location_host", &self.location_host)
            .finish()
    }
}

impl S3Config {
    /// The `host[:port]` of `endpoint` (what is signed as `host`).
    pub fn authority(&self) -> &str {
        let rest = self
            .endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, rest)| rest);
        rest.split('/').next().unwrap_or(rest)
    }

    /// The location URI of `key` as glance_store writes it: `s3://host/bucket/key`, or
    /// `s3+https://...` when the endpoint is https.
    pub fn location_uri(&self, key: &str) -> String {
        let scheme = if self.endpoint.starts_with("https://") {
            "s3+https"
        } else {
            "s3"
        };
        let host = self.location_host.as_deref().unwrap_or(self.authority());
        format!("{scheme}://{host}/{}/{key}", self.bucket)
    }
}

/// Why an S3 call failed. Never carries a secret: messages come from S3's error document.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// S3 answered with an error status (`code` is its `<Code>`, e.g. `SignatureDoesNotMatch`).
    #[error("S3 {op} answered {status} {code}: {message}")]
    Status {
        op: &'static str,
        status: StatusCode,
        code: String,
        message: String,
    },
    /// S3 answered 200 with an error document (possible for CompleteMultipartUpload).
    #[error("S3 {op} failed: {code}: {message}")]
    Failed {
        op: &'static str,
        code: String,
        message: String,
    },
    /// The call could not be made or its answer not read.
    #[error("S3 {op} could not be made: {detail}")]
    Transport { op: &'static str, detail: String },
    /// No answer in time.
    #[error("S3 {op} did not answer within {after:?}")]
    Timeout { op: &'static str, after: Duration },
    /// The answer was not what the S3 API specifies.
    #[error("S3 {op} sent an unexpected answer: {detail}")]
    BadResponse { op: &'static str, detail: String },
}

impl S3Error {
    /// Whether retrying the same call may succeed (transport trouble, timeouts, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        match self {
            S3Error::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            S3Error::Transport { .. } | S3Error::Timeout { .. } => true,
            S3Error::Failed { code, .. } => code == "InternalError" || code == "SlowDown",
            S3Error::BadResponse { .. } => false,
        }
    }

    /// S3's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Status { code, .. } | S3Error::Failed { code, .. } => Some(code),
            _ => None,
        }
    }
}
