//! The signed S3 calls, path-style (`{endpoint}/{bucket}/{key}`), each bounded by a timeout.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::sigv4::{self, Canonical, Scope, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use super::{xml, S3Config, S3Error};
use crate::http::{describe, empty, full, read_limited, BoxBody, HttpClient};

/// Largest XML answer read (S3's answers to these calls are a few hundred bytes).
const MAX_XML: usize = 64 * 1024;

/// A client for one bucket.
#[derive(Clone)]
pub struct S3Client {
    http: HttpClient,
    config: Arc<S3Config>,
    timeout: Duration,
}

impl S3Client {
    /// Calls to `config`'s bucket through `http`, each allowed `timeout` (a part upload
    /// included: a part is sent from memory at the link's speed).
    pub fn new(http: HttpClient, config: S3Config, timeout: Duration) -> Self {
        S3Client {
            http,
            config: Arc::new(config),
            timeout,
        }
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// `POST /{bucket}/{key}?uploads`: starts a multipart upload; returns its upload id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, S3Error> {
        let op = "CreateMultipartUpload";
        let query = vec![("uploads".to_string(), String::new())];
        let response = self
            .send(
                op,
                Method::POST,
                key,
                &query,
                &[],
                empty(),
                Some(0),
                EMPTY_SHA256,
            )
            .await?;
        let doc = self.xml(op, response).await?;
        xml::element(&doc, "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| S3Error::BadResponse {
                op,
                detail: "no UploadId".into(),
            })
    }

    /// `PUT /{bucket}/{key}?partNumber=N&uploadId=U` with `chunks` (`len` bytes in all, whose
    /// MD5 is `md5`); returns the part's ETag.
    ///
    /// The MD5 goes out as `Content-MD5` (signed), so S3 refuses a part damaged on the way
    /// (`400 BadDigest`); and the ETag S3 answers, the hex MD5 of what it stored, must be that
    /// MD5 — except for parts S3 encrypts with KMS or a customer key, whose ETag is no MD5.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        chunks: Vec<Bytes>,
        len: u64,
        md5: &[u8; 16],
    ) -> Result<String, S3Error> {
        let op = "UploadPart";
        let query = vec![
            ("partNumber".to_string(), number.to_string()),
            ("uploadId".to_string(), upload_id.to_string()),
        ];
        let body = crate::http::boxed(PartBody::new(chunks, len));
        let content_md5 = base64(md5);
        let response = self
            .send(
                op,
                Method::PUT,
                key,
                &query,
                &[("content-md5", &content_md5)],
                body,
                Some(len),
                UNSIGNED_PAYLOAD,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.error(op, status, response).await);
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| S3Error::BadResponse {
                op,
                detail: "no ETag".into(),
            })?;
        let want = crate::hash::to_hex(md5);
        if !is_md5_etag_exempt(response.headers())
            && !etag.trim_matches('"').eq_ignore_ascii_case(&want)
        {
            return Err(S3Error::BadResponse {
                op,
                detail: format!(
                    "part {number}'s ETag {etag} is not the MD5 of the bytes sent ({want})"
                ),
            });
        }
        Ok(etag)
    }

    /// `POST /{bucket}/{key}?uploadId=U` with the parts in order: the object appears whole.
    /// Sent with `If-None-Match: *`: S3 refuses (`412 PreconditionFailed`) to complete over an
    /// object that appeared at the key meanwhile, instead of overwriting it.
    pub async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), S3Error> {
        let op = "CompleteMultipartUpload";
        let query = vec![("uploadId".to_string(), upload_id.to_string())];
        let body = xml::complete_body(parts);
        let len = body.len() as u64;
        let hash = sigv4::hex(&Sha256::digest(body.as_bytes()));
        let response = self
            .send(
                op,
                Method::POST,
                key,
                &query,
                &[("if-none-match", "*")],
                full(body),
                Some(len),
                &hash,
            )
            .await?;
        // S3 may answer 200 and report the failure in the body.
        let doc = self.xml(op, response).await?;
        if xml::is_error(&doc) {
            return Err(S3Error::Failed {
                op,
                code: xml::element(&doc, "Code").unwrap_or_default(),
                message: xml::element(&doc, "Message").unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// `DELETE /{bucket}/{key}?uploadId=U`: S3 discards the parts.
    pub async fn abort(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let op = "AbortMultipartUpload";
        let query = vec![("uploadId".to_string(), upload_id.to_string())];
        self.expect_success(op, Method::DELETE, key, &query).await
    }

    /// `DELETE /{bucket}/{key}` (succeeds when the object is already gone).
    pub async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        self.expect_success("DeleteObject", Method::DELETE, key, &[])
            .await
    }

    /// `HEAD /{bucket}/{key}`: the object's size, or `None` when there is no such object.
    pub async fn head_object(&self, key: &str) -> Result<Option<u64>, S3Error> {
        let op = "HeadObject";
        let response = self
            .send(op, Method::HEAD, key, &[], &[], empty(), None, EMPTY_SHA256)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            s => Err(match self.error(op, s, response).await {
                // A HEAD answer has no body, so no error code: say what a 403 usually means.
                S3Error::Status { code, message, .. }
                    if s == StatusCode::FORBIDDEN && code.is_empty() =>
                {
                    S3Error::Status {
                        op,
                        status: s,
                        code,
                        message: if message.is_empty() {
                            "access denied (a HEAD answer carries no error code: check the access key, secret key and region)".into()
                        } else {
                            message
                        },
                    }
                }
                other => other,
            }),
        }
    }

    async fn expect_success(
        &self,
        op: &'static str,
        method: Method,
        key: &str,
        query: &[(String, String)],
    ) -> Result<(), S3Error> {
        let response = self
            .send(op, method, key, query, &[], empty(), None, EMPTY_SHA256)
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(self.error(op, status, response).await)
    }

    /// Builds, signs and sends one request; the answer's body is not read. `extra` headers
    /// (lowercase names) are sent and signed. `payload_hash` is the hex SHA-256 of the body, or
    /// `UNSIGNED-PAYLOAD` for part bodies (those carry a signed `Content-MD5` instead).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        key: &str,
        query: &[(String, String)],
        extra: &[(&str, &str)],
        body: BoxBody,
        content_length: Option<u64>,
        payload_hash: &str,
    ) -> Result<Response<Incoming>, S3Error> {
        let path = sigv4::encode_path(&format!("/{}/{key}", self.config.bucket));
        let query_string = sigv4::query_string(query);
        let uri = if query_string.is_empty() {
            format!("{}{path}", self.config.endpoint)
        } else {
            format!("{}{path}?{query_string}", self.config.endpoint)
        };
        let host = self.config.authority();
        let amz_date = sigv4::amz_date_now();
        let mut headers = vec![
            ("host", host),
            ("x-amz-content-sha256", payload_hash),
            ("x-amz-date", amz_date.as_str()),
        ];
        headers.extend_from_slice(extra);
        let signature = sigv4::sign(
            &Canonical {
                method: method.as_str(),
                path: &path,
                query,
                headers: &headers,
                payload_hash,
            },
            &Scope {
                amz_date: &amz_date,
                region: &self.config.region,
                service: "s3",
            },
            &self.config.access_key,
            &self.config.secret_key,
        );
        let mut authorization =
            HeaderValue::from_str(&signature.authorization).map_err(|_| S3Error::Transport {
                op,
                detail: "the access key is not a valid header value".into(),
            })?;
        authorization.set_sensitive(true);
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, host)
            .header("x-amz-content-sha256", payload_hash)
            .header("x-amz-date", amz_date.as_str())
            .header(header::AUTHORIZATION, authorization);
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        if let Some(len) = content_length {
            builder = builder.header(header::CONTENT_LENGTH, len);
        }
        let request = builder.body(body).map_err(|e| S3Error::Transport {
            op,
            detail: e.to_string(),
        })?;
        self.within(op, self.http.request(request)).await
    }

    /// `future` within the client's timeout; its error, with its causes, as a transport failure.
    async fn within<T, E: std::error::Error + 'static>(
        &self,
        op: &'static str,
        future: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, S3Error> {
        tokio::time::timeout(self.timeout, future)
            .await
            .map_err(|_| S3Error::Timeout {
                op,
                after: self.timeout,
            })?
            .map_err(|e| S3Error::Transport {
                op,
                detail: describe(&e),
            })
    }

    /// Reads a successful XML answer, or turns an error status into an [`S3Error`].
    async fn xml(&self, op: &'static str, response: Response<Incoming>) -> Result<String, S3Error> {
        let status = response.status();
        if !status.is_success() {
            return Err(self.error(op, status, response).await);
        }
        let body = self
            .within(op, read_limited(response.into_body(), MAX_XML))
            .await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn error(
        &self,
        op: &'static str,
        status: StatusCode,
        response: Response<Incoming>,
    ) -> S3Error {
        let read = tokio::time::timeout(self.timeout, read_limited(response.into_body(), MAX_XML));
        let doc = match read.await {
            Ok(Ok(body)) => String::from_utf8_lossy(&body).into_owned(),
            _ => String::new(),
        };
        S3Error::Status {
            op,
            status,
            code: xml::element(&doc, "Code").unwrap_or_default(),
            message: xml::element(&doc, "Message")
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect(),
        }
    }
}

/// Whether S3 says it encrypted the object with KMS or a customer key: its ETag is then no MD5.
fn is_md5_etag_exempt(headers: &http::HeaderMap) -> bool {
    let kms = headers
        .get("x-amz-server-side-encryption")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("aws:kms"));
    kms || headers.contains_key("x-amz-server-side-encryption-customer-algorithm")
}

/// Standard base64 with padding (`Content-MD5`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One part's frames, sent as they were received from the pipeline (no copy).
struct PartBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl PartBody {
    fn new(chunks: Vec<Bytes>, len: u64) -> Self {
        PartBody {
            chunks: chunks.into(),
            remaining: len,
        }
    }
}

impl http_body::Body for PartBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(chunk) => {
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
