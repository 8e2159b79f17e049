//! Small wire helpers shared by the fake Keystone and the fake Glance: request ids, timestamps in
//! the formats each service writes, query strings, and the request log.

use http::{HeaderMap, HeaderValue, Response};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::http::{BoxBody, REQUEST_ID};

/// One request as a fake received it, for assertions (the token sent, the Range asked for, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// Path and query as sent, e.g. `/v2/images/ID/file`.
    pub path: String,
    /// Every header, names lowercase, values lossily decoded, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl LoggedRequest {
    /// Records `method`, `path` and `headers` of a request.
    pub(crate) fn new(method: &http::Method, path: &str, headers: &HeaderMap) -> Self {
        LoggedRequest {
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }
    }

    /// The first value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Glance's and Keystone's request id: `req-<uuid4>`.
pub(crate) fn request_id() -> HeaderValue {
    HeaderValue::from_str(&format!("req-{}", uuid::Uuid::new_v4()))
        .unwrap_or_else(|_| HeaderValue::from_static("req-00000000-0000-0000-0000-000000000000"))
}

/// Adds `x-openstack-request-id` to a response, as both services do on every answer.
pub(crate) fn with_request_id(mut response: Response<BoxBody>) -> Response<BoxBody> {
    if !response.headers().contains_key(REQUEST_ID) {
        response.headers_mut().insert(REQUEST_ID, request_id());
    }
    response
}

/// Glance's timestamp format (`oslo_utils.timeutils.isotime`): `2026-11-25T12:00:00Z`.
const GLANCE_TIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Keystone's token timestamp format (subsecond isotime): `2026-11-25T13:00:00.000000Z`.
const KEYSTONE_TIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// `at` as Glance writes `created_at`/`updated_at`.
pub(crate) fn glance_time(at: OffsetDateTime) -> String {
    at.format(GLANCE_TIME).unwrap_or_default()
}

/// `at` as Keystone writes `issued_at`/`expires_at`.
pub(crate) fn keystone_time(at: OffsetDateTime) -> String {
    at.format(KEYSTONE_TIME).unwrap_or_default()
}

/// The query string's pairs, percent- and `+`-decoded, in order.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(pair), String::new()),
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (form encoding), leaving malformed escapes as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A header's value as text, if present and visible ASCII.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
