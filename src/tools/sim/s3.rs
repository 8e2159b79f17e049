//! A fake S3 on loopback: path-style buckets and objects, multipart uploads (create, upload
//! part, complete, abort), GetObject/HeadObject/DeleteObject, with every request's SigV4
//! signature checked so a signing bug fails the tests that use it.
//!
//! As S3 does, it checks a request's `Content-MD5` (`400 BadDigest` when the body differs),
//! answers a part's ETag as the quoted hex MD5 of the bytes stored, and honours
//! `If-None-Match: *` on CompleteMultipartUpload (`412 PreconditionFailed` over an existing
//! object). [`PartFault`]s damage a part in transit or answer a wrong ETag.
//!
//! Objects are kept in memory (tests move tens of MiB). Where it knowingly differs from S3: no
//! listing calls, no virtual-host style, no `x-amz-checksum-*`, and no expiry of the
//! `x-amz-date` (tests do not run for 15 minutes).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::hash::HashAlgo;
use crate::http::{full, read_limited, status_response, BoxBody};
use crate::s3::sigv4::{self, Canonical, Scope, UNSIGNED_PAYLOAD};
use crate::s3::MIN_PART_SIZE;

/// Largest request body the fake reads (a part, or a small object).
const MAX_BODY: usize = 1 << 30;

/// What the fake has seen, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Stats {
    pub uploads_created: u32,
    pub parts_received: u32,
    pub uploads_completed: u32,
    pub uploads_aborted: u32,
    /// Requests refused for a bad or missing signature.
    pub bad_signatures: u32,
    /// The largest part received, bytes.
    pub largest_part: u64,
    /// Part uploads that carried a `Content-MD5` header.
    pub parts_with_md5: u32,
    /// Requests refused because the body did not match its `Content-MD5`.
    pub bad_digests: u32,
    /// `HEAD` requests on objects.
    pub heads: u32,
    /// Completions refused by `If-None-Match: *` (the key was taken).
    pub precondition_failures: u32,
}

/// How the fake mishandles a part upload (integrity tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartFault {
    /// A byte of the part flips on the way in, before S3 reads it: a `Content-MD5` makes S3
    /// refuse it (`BadDigest`); without one the damaged bytes are stored and their MD5 answered.
    CorruptInTransit,
    /// The part is stored intact but the answered ETag is not its MD5.
    WrongEtag,
}

struct Upload {
    bucket: String,
    key: String,
    parts: BTreeMap<u32, (String, Bytes)>,
}

struct Inner {
    buckets: HashMap<String, BTreeMap<String, Bytes>>,
    uploads: HashMap<String, Upload>,
    stats: S3Stats,
    /// Status answered to the next `n` part uploads (transient-failure tests).
    part_failures: Option<(StatusCode, u32)>,
    /// Damage done to the next `n` part uploads.
    part_faults: Option<(PartFault, u32)>,
}

pub(crate) struct S3State {
    addr: SocketAddr,
    region: String,
    access_key: String,
    secret_key: String,
    inner: Mutex<Inner>,
}

impl S3State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake S3; cheap to clone (clones share state).
#[derive(Clone)]
pub struct FakeS3 {
    pub(crate) state: Arc<S3State>,
}

// === impl FakeS3 ===

impl FakeS3 {
    /// Binds 127.0.0.1:0; accepts requests signed with `access_key`/`secret_key` for `region`,
    /// until `shutdown`.
    pub async fn start(
        region: &str,
        access_key: &str,
        secret_key: &str,
        shutdown: CancellationToken,
    ) -> std::io::Result<FakeS3> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let state = Arc::new(S3State {
            addr: listener.local_addr()?,
            region: region.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                uploads: HashMap::new(),
                stats: S3Stats::default(),
                part_failures: None,
                part_faults: None,
            }),
        });
        let served = state.clone();
        tokio::spawn(crate::http::serve(
            listener,
            None,
            move |req, _peer| handle(served.clone(), req),
            shutdown,
        ));
        Ok(FakeS3 { state })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// `127.0.0.1:PORT`, what Glance's location URIs hold.
    pub fn authority(&self) -> String {
        self.state.addr.to_string()
    }

    pub fn create_bucket(&self, name: &str) {
        self.state
            .lock()
            .buckets
            .entry(name.to_string())
            .or_default();
    }

    /// An object's bytes.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Bytes> {
        self.state.lock().buckets.get(bucket)?.get(key).cloned()
    }

    /// Puts an object directly (test setup).
    pub fn put_object(&self, bucket: &str, key: &str, data: Bytes) {
        self.state
            .lock()
            .buckets
            .entry(bucket.to_string())
            .or_default()
            .insert(key.to_string(), data);
    }

    /// Removes an object directly (what Glance does when it drops a location).
    pub fn remove_object(&self, bucket: &str, key: &str) {
        if let Some(objects) = self.state.lock().buckets.get_mut(bucket) {
            objects.remove(key);
        }
    }

    /// The keys of a bucket, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.state
            .lock()
            .buckets
            .get(bucket)
            .map(|b| b.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Multipart uploads neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.state.lock().uploads.len()
    }

    pub fn stats(&self) -> S3Stats {
        self.state.lock().stats.clone()
    }

    /// Answers `status` to the next `times` part uploads.
    pub fn fail_parts(&self, status: StatusCode, times: u32) {
        self.state.lock().part_failures = Some((status, times));
    }

    /// Applies `fault` to the next `times` part uploads.
    pub fn damage_parts(&self, fault: PartFault, times: u32) {
        self.state.lock().part_faults = Some((fault, times));
    }
}

// === requests ===

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<BoxBody> {
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>",
        crate::s3::xml::escape(message)
    );
    xml_response(status, doc)
}

fn xml_response(status: StatusCode, doc: String) -> Response<BoxBody> {
    let mut response = Response::new(full(doc));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

async fn handle(state: Arc<S3State>, req: Request<Incoming>) -> Response<BoxBody> {
    if let Err(refusal) = verify(&state, &req) {
        state.lock().stats.bad_signatures += 1;
        return *refusal;
    }
    let payload_hash = req
        .headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = req.uri().path().to_string();
    let query = sigv4::parse_query(req.uri().query());
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (bucket, key) = match path.trim_start_matches('/').split_once('/') {
        Some((b, k)) => (sigv4::decode(b), sigv4::decode(k)),
        None => (sigv4::decode(path.trim_start_matches('/')), String::new()),
    };
    let method = req.method().clone();
    let content_md5 = req
        .headers()
        .get("content-md5")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let needs_length = method == Method::PUT && req.headers().get(header::CONTENT_LENGTH).is_none();
    if needs_length {
        return s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        );
    }
    let is_part = method == Method::PUT && param("partNumber").is_some();
    let body = match read_limited(req.into_body(), MAX_BODY).await {
        Ok(body) if is_part => damage_in_transit(&state, body),
        Ok(body) => body,
        Err(_) => {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The request body could not be read.",
            )
        }
    };
    if payload_hash != UNSIGNED_PAYLOAD && HashAlgo::Sha256.hex_digest(&body) != payload_hash {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
    }
    if let Some(claimed) = &content_md5 {
        if is_part {
            state.lock().stats.parts_with_md5 += 1;
        }
        if let Some(refusal) = check_content_md5(claimed, &body) {
            state.lock().stats.bad_digests += 1;
            return refusal;
        }
    }
    if key.is_empty() {
        return match method {
            Method::PUT => {
                state.lock().buckets.entry(bucket).or_default();
                status_response(StatusCode::OK)
            }
            _ => s3_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented", "bucket call"),
        };
    }
    if !state.lock().buckets.contains_key(&bucket) {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    }
    let upload_id = param("uploadId");
    match (method, upload_id, param("partNumber")) {
        (Method::POST, None, _) if param("uploads").is_some() => create(&state, bucket, key),
        (Method::PUT, Some(id), Some(number)) => part(&state, &id, &number, body),
        (Method::POST, Some(id), None) => {
            complete(&state, &id, &body, if_none_match.as_deref() == Some("*"))
        }
        (Method::DELETE, Some(id), None) => abort(&state, &id),
        (Method::PUT, None, None) => {
            let mut inner = state.lock();
            if let Some(objects) = inner.buckets.get_mut(&bucket) {
                objects.insert(key, body);
            }
            status_response(StatusCode::OK)
        }
        (m @ (Method::GET | Method::HEAD), None, None) => get(&state, &bucket, &key, m),
        (Method::DELETE, None, None) => {
            if let Some(objects) = state.lock().buckets.get_mut(&bucket) {
                objects.remove(&key);
            }
            status_response(StatusCode::NO_CONTENT)
        }
        _ => s3_error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "not offered by this fake",
        ),
    }
}

/// The part as S3 reads it: with a byte flipped under [`PartFault::CorruptInTransit`].
fn damage_in_transit(state: &S3State, body: Bytes) -> Bytes {
    let mut inner = state.lock();
    let Some((PartFault::CorruptInTransit, times)) = inner.part_faults else {
        return body;
    };
    inner.part_faults = (times > 1).then_some((PartFault::CorruptInTransit, times - 1));
    let mut damaged = BytesMut::from(&body[..]);
    if let Some(byte) = damaged.last_mut() {
        *byte ^= 0xff;
    }
    damaged.freeze()
}

/// S3's `Content-MD5` check: `InvalidDigest` for a value that is no base64 MD5, `BadDigest` for
/// one that differs from the body's.
fn check_content_md5(claimed: &str, body: &[u8]) -> Option<Response<BoxBody>> {
    let actual = crate::s3::base64(&md5_of(body));
    if claimed == actual {
        return None;
    }
    let well_formed = claimed.len() == 24
        && claimed.ends_with("==")
        && claimed[..22]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    Some(if well_formed {
        s3_error(
            StatusCode::BAD_REQUEST,
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        )
    } else {
        s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "The Content-MD5 you specified was invalid.",
        )
    })
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

fn create(state: &S3State, bucket: String, key: String) -> Response<BoxBody> {
    let id = format!("{}.{}", uuid::Uuid::new_v4().simple(), "x+y/z=");
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId></InitiateMultipartUploadResult>",
        crate::s3::xml::escape(&bucket),
        crate::s3::xml::escape(&key),
        crate::s3::xml::escape(&id)
    );
    let mut inner = state.lock();
    inner.stats.uploads_created += 1;
    inner.uploads.insert(
        id,
        Upload {
            bucket,
            key,
            parts: BTreeMap::new(),
        },
    );
    xml_response(StatusCode::OK, doc)
}

fn no_such_upload() -> Response<BoxBody> {
    s3_error(
        StatusCode::NOT_FOUND,
        "NoSuchUpload",
        "The specified upload does not exist.",
    )
}

fn part(state: &S3State, id: &str, number: &str, body: Bytes) -> Response<BoxBody> {
    let Some(number) = number
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
    else {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
        );
    };
    let mut inner = state.lock();
    if let Some((status, times)) = inner.part_failures {
        inner.part_failures = (times > 1).then_some((status, times - 1));
        return s3_error(
            status,
            "InternalError",
            "We encountered an internal error. Please try again.",
        );
    }
    let mut etag = format!("\"{}\"", HashAlgo::Md5.hex_digest(&body));
    if let Some((PartFault::WrongEtag, times)) = inner.part_faults {
        inner.part_faults = (times > 1).then_some((PartFault::WrongEtag, times - 1));
        etag = format!("\"{}\"", HashAlgo::Md5.hex_digest(b"not the part"));
    }
    let len = body.len() as u64;
    let Some(upload) = inner.uploads.get_mut(id) else {
        return no_such_upload();
    };
    upload.parts.insert(number, (etag.clone(), body));
    inner.stats.parts_received += 1;
    inner.stats.largest_part = inner.stats.largest_part.max(len);
    let mut response = status_response(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

fn complete(state: &S3State, id: &str, body: &[u8], if_none_match: bool) -> Response<BoxBody> {
    let doc = String::from_utf8_lossy(body);
    let numbers = crate::s3::xml::elements(&doc, "PartNumber");
    let etags = crate::s3::xml::elements(&doc, "ETag");
    let mut inner = state.lock();
    let Some(upload) = inner.uploads.get(id) else {
        return no_such_upload();
    };
    let taken = inner
        .buckets
        .get(&upload.bucket)
        .is_some_and(|objects| objects.contains_key(&upload.key));
    if if_none_match && taken {
        inner.stats.precondition_failures += 1;
        return s3_error(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        );
    }
    if numbers.is_empty() || numbers.len() != etags.len() {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "The XML you provided was not well-formed",
        );
    }
    let mut data = BytesMut::new();
    let mut previous = 0u32;
    for (i, (number, etag)) in numbers.iter().zip(&etags).enumerate() {
        let number: u32 = number.parse().unwrap_or(0);
        if number <= previous {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidPartOrder",
                "The list of parts was not in ascending order.",
            );
        }
        previous = number;
        let Some((stored_etag, bytes)) = upload.parts.get(&number) else {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidPart",
                "One or more of the specified parts could not be found.",
            );
        };
        if stored_etag != etag {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidPart",
                "One or more of the specified parts could not be found.",
            );
        }
        if i + 1 < numbers.len() && (bytes.len() as u64) < MIN_PART_SIZE {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed object size.",
            );
        }
        data.extend_from_slice(bytes);
    }
    let Some(upload) = inner.uploads.remove(id) else {
        return no_such_upload();
    };
    let etag = format!("\"{}-{}\"", HashAlgo::Md5.hex_digest(&data), numbers.len());
    inner
        .buckets
        .entry(upload.bucket.clone())
        .or_default()
        .insert(upload.key.clone(), data.freeze());
    inner.stats.uploads_completed += 1;
    xml_response(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
            crate::s3::xml::escape(&upload.bucket),
            crate::s3::xml::escape(&upload.key),
            crate::s3::xml::escape(&etag)
        ),
    )
}

fn abort(state: &S3State, id: &str) -> Response<BoxBody> {
    let mut inner = state.lock();
    if inner.uploads.remove(id).is_none() {
        return no_such_upload();
    }
    inner.stats.uploads_aborted += 1;
    status_response(StatusCode::NO_CONTENT)
}

fn get(state: &S3State, bucket: &str, key: &str, method: Method) -> Response<BoxBody> {
    let mut inner = state.lock();
    if method == Method::HEAD {
        inner.stats.heads += 1;
    }
    let object = inner.buckets.get(bucket).and_then(|b| b.get(key).cloned());
    drop(inner);
    let Some(data) = object else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let len = data.len();
    let mut response = if method == Method::HEAD {
        status_response(StatusCode::OK)
    } else {
        Response::new(full(data))
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

// === signatures ===

/// Checks the request's SigV4 `Authorization` header as S3 does.
fn verify(state: &S3State, req: &Request<Incoming>) -> Result<(), Box<Response<BoxBody>>> {
    let denied =
        |code: &str, message: &str| Box::new(s3_error(StatusCode::FORBIDDEN, code, message));
    let text = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let auth = text("authorization")
        .ok_or_else(|| denied("AccessDenied", "Anonymous access is not allowed"))?;
    let fields = parse_authorization(&auth).ok_or_else(|| {
        denied(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed",
        )
    })?;
    let (access_key, date, region, service) = fields.credential;
    if access_key != state.access_key {
        return Err(denied(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    }
    let amz_date = text("x-amz-date").unwrap_or_default();
    let payload_hash = text("x-amz-content-sha256").ok_or_else(|| {
        Box::new(s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Missing required header for this request: x-amz-content-sha256",
        ))
    })?;
    if region != state.region || service != "s3" || !amz_date.starts_with(&date) {
        return Err(denied(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed; the region, service or date is wrong",
        ));
    }
    let signed: Vec<&str> = fields.signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return Err(denied("AccessDenied", "host and x-amz-date must be signed"));
    }
    let mut values = Vec::with_capacity(signed.len());
    for name in &signed {
        let value =
            text(name).ok_or_else(|| denied("AccessDenied", "a signed header is missing"))?;
        values.push((name.to_string(), value));
    }
    let headers: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let query = sigv4::parse_query(req.uri().query());
    let computed = sigv4::sign(
        &Canonical {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: &query,
            headers: &headers,
            payload_hash: &payload_hash,
        },
        &Scope {
            amz_date: &amz_date,
            region: &region,
            service: "s3",
        },
        &state.access_key,
        &state.secret_key,
    );
    if !sigv4::same_signature(&computed.signature, &fields.signature) {
        return Err(denied(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(())
}

struct AuthFields {
    /// Access key, date, region, service.
    credential: (String, String, String, String),
    signed_headers: String,
    signature: String,
}

/// `AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request, SignedHeaders=..., Signature=...`
fn parse_authorization(value: &str) -> Option<AuthFields> {
    let rest = value.strip_prefix(sigv4::ALGORITHM)?.trim();
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        match part.trim().split_once('=')? {
            ("Credential", v) => credential = Some(v.to_string()),
            ("SignedHeaders", v) => signed_headers = Some(v.to_string()),
            ("Signature", v) => signature = Some(v.to_string()),
            _ => return None,
        }
    }
    let credential = credential?;
    let mut pieces = credential.split('/');
    let fields = (
        pieces.next()?.to_string(),
        pieces.next()?.to_string(),
        pieces.next()?.to_string(),
        pieces.next()?.to_string(),
    );
    (pieces.next()? == "aws4_request").then_some(())?;
    Some(AuthFields {
        credential: fields,
        signed_headers: signed_headers?,
        signature: signature?,
    })
}
