//! Image data in and out of the fake Glance: `PUT /v2/images/{id}/file` (hashed as it streams,
//! image back to `queued` on any failure) and `GET /v2/images/{id}/file` (single Range, faults).

use std::sync::Arc;

use bytes::BytesMut;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::data::{DataBody, Source};
use super::faults::{BodyReading, Fault, UploadFault};
use super::glance::{
    can_modify, glance_error, glance_error_detail, not_found, visible, GlanceState,
};
use super::images::{ImageStatus, Stored};
use super::keystone::Caller;
use super::wire::header;
use crate::hash::{to_hex, HashAlgo};
use crate::http::{boxed, status_response, BoxBody};

type Reply = Response<BoxBody>;

/// webob's explanation for a 500.
const INTERNAL: &str =
    "The server has either erred or is incapable of performing the requested operation.";

// === upload ===

/// `PUT /v2/images/{id}/file`: 204 once every declared byte arrived and was hashed; otherwise
/// the image goes back to `queued` (size and hashes null) as Glance's `_restore` does.
pub(crate) async fn upload(
    state: &Arc<GlanceState>,
    caller: &Caller,
    id: &str,
    req: Request<Incoming>,
) -> Reply {
    let content_type = media_type(&req);
    if content_type != "application/octet-stream" {
        return glance_error_detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("The request media type {content_type} is not supported by this server."),
            &format!("Invalid content type {content_type}"),
        );
    }
    let (expected, cut_is_end) = match framing(state, &req, true) {
        Ok(framing) => framing,
        Err(message) => return glance_error(StatusCode::BAD_REQUEST, message),
    };
    let store =
        match super::stores::upload_store(state, header(req.headers(), "x-image-meta-store")) {
            Ok(store) => store,
            Err(message) => return super::stores::plain_refusal(&message),
        };
    let (seq, algo, keep_limit, fault) = {
        let mut inner = state.lock();
        let (algo, keep_limit) = (inner.hashing, inner.keep_limit);
        let fault = inner.upload_faults.remove(id);
        if let Some(UploadFault::Refuse(code)) = fault {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return glance_error(
                status,
                &format!("Upload refused ({code}) by fault injection"),
            );
        }
        let Some(image) = inner.images.get_mut(id).filter(|i| visible(i, caller)) else {
            return not_found(id);
        };
        if let Some(refused) = refuse_write(image, caller, id, "saving") {
            return refused;
        }
        let missing: Vec<&str> = [
            ("disk_format", &image.disk_format),
            ("container_format", &image.container_format),
        ]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            let noun = if missing.len() == 1 {
                "Property"
            } else {
                "Properties"
            };
            let message = format!(
                "{noun} {} must be set prior to saving data.",
                missing.join(", ")
            );
            return glance_error(StatusCode::BAD_REQUEST, &message);
        }
        if let Some(message) = super::images::signature_refusal(image) {
            return glance_error(StatusCode::BAD_REQUEST, &message);
        }
        image.status = ImageStatus::Saving;
        image.touch();
        (image.seq, algo, keep_limit, fault)
    };

    let received = receive(
        req.into_body(),
        expected,
        keep_limit,
        algo,
        fault,
        cut_is_end,
        id,
    )
    .await;

    let mut inner = state.lock();
    let current = inner
        .images
        .get_mut(id)
        .filter(|i| i.seq == seq && i.status == ImageStatus::Saving);
    let Some(image) = current else {
        let message = format!(
            "Image {id} could not be found after upload. The image may have been deleted during the upload, \
             cleaning up the chunks uploaded."
        );
        return glance_error(StatusCode::GONE, &message);
    };
    let received = match received {
        Ok(received) => received,
        Err(resp) => {
            image.restore_queued();
            return resp;
        }
    };
    image.set_data(
        received.total,
        received.md5,
        algo.name(),
        received.hash,
        received.stored,
    );
    image.stores = store.into_iter().collect();
    status_response(StatusCode::NO_CONTENT)
}

/// How an upload's body is framed: the size Glance will hold it to (`x-openstack-image-size`
/// when `size_header`, as `PUT /file` reads it on Glance 32+, else `Content-Length`), and
/// whether a cut in it reads as its end (the lenient reading of a `Content-Length` body); the
/// 400 message for a size that is not a number.
pub(crate) fn framing(
    state: &GlanceState,
    req: &Request<Incoming>,
    size_header: bool,
) -> Result<(Option<u64>, bool), &'static str> {
    let reading = state.lock().body_reading;
    let chunked = header(req.headers(), "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let declared = match reading {
        BodyReading::Strict => size_header
            .then(|| header(req.headers(), "x-openstack-image-size"))
            .flatten()
            .or_else(|| header(req.headers(), "content-length")),
        // Glance before 32 knows no x-openstack-image-size, and what a lenient server passes on
        // as the body is all the data there is.
        BodyReading::Lenient => None,
    };
    let expected = match declared.map(|v| v.trim().parse::<u64>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return Err("Invalid or missing image size in request headers."),
    };
    Ok((expected, reading == BodyReading::Lenient && !chunked))
}

/// The request's media type, lowercased, without parameters.
pub(crate) fn media_type(req: &Request<Incoming>) -> String {
    header(req.headers(), "content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The refusal, if the caller may not write data into the image now (it must be `queued`, and
/// the caller allowed to modify it); `to` names the status the write would move it to.
pub(crate) fn refuse_write(
    image: &super::images::Image,
    caller: &Caller,
    id: &str,
    to: &str,
) -> Option<Reply> {
    if !can_modify(image, caller) {
        return Some(glance_error(
            StatusCode::FORBIDDEN,
            &format!("Not allowed to upload image data for image {id}"),
        ));
    }
    if image.status != ImageStatus::Queued {
        let cur = image.status.as_str();
        return Some(glance_error(
            StatusCode::CONFLICT,
            &format!("Image status transition from {cur} to {to} is not allowed"),
        ));
    }
    None
}

/// What a finished upload (or staging) delivered.
#[derive(Clone)]
pub(crate) struct Received {
    pub(crate) total: u64,
    pub(crate) md5: String,
    pub(crate) hash: String,
    pub(crate) stored: Stored,
}

/// Reads an upload body, hashing it with MD5 and `algo` as it arrives, keeping the bytes when
/// they fit `keep_limit`; refuses a body longer or shorter than `expected`, a broken one (unless
/// `cut_is_end`: then a broken body ends there, as a lenient server reads a cut `Content-Length` body),
/// and fails or stops early when an upload `fault` says so.
pub(crate) async fn receive(
    mut body: Incoming,
    expected: Option<u64>,
    keep_limit: u64,
    algo: HashAlgo,
    fault: Option<UploadFault>,
    cut_is_end: bool,
    id: &str,
) -> Result<Received, Reply> {
    let mut md5 = HashAlgo::Md5.hasher();
    let mut other = algo.hasher();
    let mut total: u64 = 0;
    let mut kept = match expected {
        Some(n) if n > keep_limit => None,
        Some(n) => Some(BytesMut::with_capacity(n as usize)),
        None => Some(BytesMut::new()),
    };
    let fail_after = match fault {
        Some(UploadFault::FailAfter { bytes, status }) => Some((bytes, status)),
        _ => None,
    };
    let store_first = match fault {
        Some(UploadFault::StoreFirst(bytes)) => Some(bytes),
        _ => None,
    };
    let failure = loop {
        if store_first.is_some_and(|n| total >= n) {
            break None;
        }
        match body.frame().await {
            None => break None,
            Some(Err(error)) if cut_is_end => {
                tracing::debug!(%error, image_id = %id, total, "Simulated Glance took a cut upload as complete");
                break None;
            }
            Some(Err(error)) => {
                tracing::debug!(%error, image_id = %id, total, "Simulated Glance upload broke");
                break Some(glance_error(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL));
            }
            Some(Ok(frame)) => {
                let Ok(mut data) = frame.into_data() else {
                    continue;
                };
                if let Some(n) = store_first {
                    data.truncate(n.saturating_sub(total).min(data.len() as u64) as usize);
                }
                total += data.len() as u64;
                if let Some((bytes, code)) = fail_after.filter(|(bytes, _)| total >= *bytes) {
                    let status =
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let message = match status {
                        StatusCode::PAYLOAD_TOO_LARGE => format!(
                            "Image exceeds the storage quota: {bytes} bytes stored, the quota is exhausted"
                        ),
                        _ => format!("Error in store after {bytes} bytes ({code}) by fault injection"),
                    };
                    break Some(glance_error(status, &message));
                }
                if let Some(n) = expected.filter(|n| total > *n) {
                    let message = format!("Size exceeds: expected {n} bytes, got {total} bytes");
                    break Some(glance_error(StatusCode::BAD_REQUEST, &message));
                }
                md5.update(&data);
                other.update(&data);
                if kept
                    .as_ref()
                    .is_some_and(|k| k.len() as u64 + data.len() as u64 > keep_limit)
                {
                    kept = None;
                }
                if let Some(k) = kept.as_mut() {
                    k.extend_from_slice(&data);
                }
            }
        }
    };
    let failure = failure.or_else(|| match expected {
        Some(n) if n != total && store_first.is_none() => Some(glance_error(
            StatusCode::BAD_REQUEST,
            &format!("Size mismatch: expected {n} bytes, got {total} bytes"),
        )),
        _ => None,
    });

    if let Some(resp) = failure {
        return Err(resp);
    }
    let stored = match kept {
        Some(k) => Stored::Bytes(k.freeze()),
        None => Stored::Discarded,
    };
    Ok(Received {
        total,
        md5: to_hex(&md5.finalize()),
        hash: to_hex(&other.finalize()),
        stored,
    })
}

// === download ===

/// A parsed `Range` header as webob's `Range.parse` returns it: `start` negative for a suffix
/// range, `end` exclusive.
#[derive(Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: i128,
    pub end: Option<u64>,
}

/// webob's `Range.parse`: `bytes *= *(\d*) *- *(\d*)` matched at the start, case-insensitive,
/// trailing text ignored; `None` when unparseable or `start >= end`.
pub fn parse_range(value: &str) -> Option<ByteRange> {
    let rest = value.get(..5).filter(|p| p.eq_ignore_ascii_case("bytes"))?;
    let rest = value[rest.len()..]
        .trim_start_matches(' ')
        .strip_prefix('=')?
        .trim_start_matches(' ');
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let n1 = digits(rest);
    let (first, rest) = rest.split_at(n1);
    let rest = rest
        .trim_start_matches(' ')
        .strip_prefix('-')?
        .trim_start_matches(' ');
    let second = &rest[..digits(rest)];
    let num = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    if first.is_empty() {
        if second.is_empty() {
            return None; // webob raises ValueError here (a 500 upstream): refuse it as unparseable
        }
        return Some(ByteRange {
            start: -i128::from(num(second)),
            end: None,
        });
    }
    let start = num(first);
    if second.is_empty() {
        return Some(ByteRange {
            start: i128::from(start),
            end: None,
        });
    }
    let end = num(second).saturating_add(1);
    (start < end).then_some(ByteRange {
        start: i128::from(start),
        end: Some(end),
    })
}

/// webob's default explanation for a status used by [`Fault::Status`].
fn explanation(status: StatusCode) -> &'static str {
    match status.as_u16() {
        403 => "Access was denied to this resource.",
        404 => "The resource could not be found.",
        500 => INTERNAL,
        502 => "Bad gateway.",
        503 => "The server is currently unavailable. Please try again at a later time.",
        504 => "The gateway has timed out.",
        _ => "Simulated fault.",
    }
}

/// `GET /v2/images/{id}/file`: 200 (or 206 for a single Range) streaming the data with
/// `Content-Length` and `Content-MD5`; 204 when the image has no data; faults applied.
pub(crate) async fn download(
    state: &GlanceState,
    caller: &Caller,
    id: &str,
    req: &Request<Incoming>,
) -> Reply {
    let (source, size, checksum, fault) = {
        let mut inner = state.lock();
        let Some(image) = inner.images.get(id).filter(|i| visible(i, caller)) else {
            return not_found(id);
        };
        if image.status == ImageStatus::Deactivated && !caller.is_admin() {
            return glance_error(
                StatusCode::FORBIDDEN,
                "The requested image has been deactivated. Image data download is forbidden.",
            );
        }
        let source = match (&image.data, image.size) {
            (Some(Stored::Bytes(b)), Some(_)) => Source::Bytes(b.clone()),
            (Some(Stored::Generated { seed }), Some(_)) => Source::Generated { seed: *seed },
            _ => return status_response(StatusCode::NO_CONTENT),
        };
        let (size, checksum) = (image.size.unwrap_or(0), image.checksum.clone());
        let fault = match inner.faults.get_mut(id) {
            Some(armed) => {
                let (fault, spent) = armed.take();
                if spent {
                    inner.faults.remove(id);
                }
                Some(fault)
            }
            None => None,
        };
        (source, size, checksum, fault)
    };
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return glance_error(status, explanation(status));
        }
        Some(Fault::StallHeaders(pause)) => tokio::time::sleep(pause).await,
        _ => {}
    }

    let (mut offset, mut len, mut content_range) = (0u64, size, None);
    if let Some(value) = req.headers().get(http::header::RANGE) {
        let value = String::from_utf8_lossy(value.as_bytes());
        if value.contains(',') {
            return glance_error(
                StatusCode::BAD_REQUEST,
                "Requests with multiple ranges are not supported in Glance. You may make multiple \
                 single-range requests instead.",
            );
        }
        let not_satisfiable = |detail: &str| {
            glance_error_detail(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The Range requested is not available.",
                detail,
            )
        };
        let Some(range) = parse_range(&value) else {
            return not_satisfiable("Invalid Range header.");
        };
        if range.start >= i128::from(size) {
            return not_satisfiable(&format!(
                "Invalid start position in Range header. Start position MUST be in the inclusive range [0, {}].",
                i128::from(size) - 1
            ));
        }
        if range.start >= 0 {
            offset = range.start as u64;
        } else if range.start.unsigned_abs() < u128::from(size) {
            offset = (i128::from(size) + range.start) as u64;
        }
        let mut last = size.saturating_sub(1);
        match range.end {
            Some(end) if end < size => {
                len = end - offset;
                last = end - 1;
            }
            _ => len = size - offset,
        }
        content_range = Some(format!("bytes {offset}-{last}/{size}"));
    }

    let body = DataBody::new(source, offset, offset + len, fault);
    let declared = body.declared_len();
    let mut resp = Response::new(boxed(body));
    if content_range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(declared));
    if let Some(v) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        headers.insert(http::header::CONTENT_RANGE, v);
    }
    if let Some(v) = checksum.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert("content-md5", v);
    }
    resp
}
