//! A typed client for the Glance v2 calls the sidecar makes on the caller's behalf: read an image,
//! patch its metadata, open its data, upload data.
//!
//! Every call carries the caller's token and nothing else that identifies the caller. JSON bodies
//! are read with a size cap and a timeout; data bodies are streamed.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::chunked::Chunked;
use crate::http::{boxed, describe, empty, full, read_limited, BoxBody, HttpClient, JSON_PATCH};
use crate::keystone::Token;

/// Request header giving an upload's size; Glance 32+ refuses stored data of another size.
pub const IMAGE_SIZE: &str = "x-openstack-image-size";

/// Largest image document accepted from Glance.
pub const MAX_IMAGE_JSON: usize = 1024 * 1024;

/// A validated image id: a UUID, always written in canonical lowercase hyphenated form so it can
/// be placed in a URL path safely.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(String);

impl ImageId {
    /// Accepts any form `uuid` accepts (as Python's `uuid.UUID` does) and normalizes it.
    pub fn parse(text: &str) -> Option<ImageId> {
        if text.len() > 64 {
            return None;
        }
        uuid::Uuid::parse_str(text)
            .ok()
            .map(|u| ImageId(u.hyphenated().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageId({})", self.0)
    }
}

/// An image document as Glance returns it: core attributes and extra properties side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Image(pub Map<String, Value>);

impl Image {
    fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    pub fn status(&self) -> Option<&str> {
        self.str("status")
    }
    pub fn disk_format(&self) -> Option<&str> {
        self.str("disk_format")
    }
    pub fn container_format(&self) -> Option<&str> {
        self.str("container_format")
    }
    pub fn checksum(&self) -> Option<&str> {
        self.str("checksum")
    }
    pub fn os_hash_algo(&self) -> Option<&str> {
        self.str("os_hash_algo")
    }
    pub fn os_hash_value(&self) -> Option<&str> {
        self.str("os_hash_value")
    }
    pub fn owner(&self) -> Option<&str> {
        self.str("owner")
    }

    /// `size` as a number (Glance sends an integer; a numeric string is accepted as upstream does).
    pub fn size(&self) -> Option<u64> {
        match self.0.get("size")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// One operation of a Glance JSON patch (`application/openstack-images-v2.1-json-patch`).
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    /// Sets a property or attribute, replacing any value.
    Add(String, Value),
    /// Sets an existing property or attribute.
    Replace(String, Value),
    /// Removes an extra property.
    Remove(String),
}

impl PatchOp {
    /// The JSON form, with `/` and `~` escaped in the path (RFC 6901).
    pub fn to_json(&self) -> Value {
        let pointer = |name: &str| format!("/{}", name.replace('~', "~0").replace('/', "~1"));
        match self {
            PatchOp::Add(name, value) => {
                serde_json::json!({"op": "add", "path": pointer(name), "value": value})
            }
            PatchOp::Replace(name, value) => {
                serde_json::json!({"op": "replace", "path": pointer(name), "value": value})
            }
            PatchOp::Remove(name) => serde_json::json!({"op": "remove", "path": pointer(name)}),
        }
    }
}

/// Why a Glance call failed.
#[derive(Debug, thiserror::Error)]
pub enum GlanceError {
    /// Glance answered with an error status; `message` is its error text, if any.
    #[error("glance answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    /// The call could not be made or its answer not read.
    #[error("glance could not be reached: {0}")]
    Transport(String),
    /// No answer within the configured time.
    #[error("glance did not answer within {0:?}")]
    Timeout(Duration),
    /// The answer was not the expected JSON.
    #[error("glance sent an unexpected answer: {0}")]
    BadResponse(String),
}

impl GlanceError {
    /// The HTTP status, when Glance answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            GlanceError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Glance v2 calls, against any Glance base URL (the fronted one or a remote region's).
#[derive(Clone)]
pub struct Glance {
    client: HttpClient,
    timeout: Duration,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl Glance {
    pub fn new(client: HttpClient, timeout: Duration) -> Self {
        Glance {
            client,
            timeout,
            metrics: None,
        }
    }

    /// Records the latency of JSON calls into `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// `GET {base}/v2/images/{id}`.
    pub async fn get_image(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
    ) -> Result<Image, GlanceError> {
        let request = builder(Method::GET, format!("{base}/v2/images/{id}"), token)
            .body(empty())
            .map_err(|e| GlanceError::Transport(e.to_string()))?;
        self.json_call(request).await
    }

    /// `PATCH {base}/v2/images/{id}` with all `ops` in one request (Glance applies them together).
    pub async fn patch_image(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        ops: &[PatchOp],
    ) -> Result<Image, GlanceError> {
        let body = Value::Array(ops.iter().map(PatchOp::to_json).collect());
        let request = builder(Method::PATCH, format!("{base}/v2/images/{id}"), token)
            .header(header::CONTENT_TYPE, JSON_PATCH)
            .body(full(serde_json::to_vec(&body).unwrap_or_default()))
            .map_err(|e| GlanceError::Transport(e.to_string()))?;
        self.json_call(request).await
    }

    /// `GET {base}/v2/images/{id}/file`, optionally only bytes `first..=last` (`last` `None`:
    /// to the end) and asking for a content coding (`Accept-Encoding`); the body is not read.
    pub async fn open_file(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        range: Option<(u64, Option<u64>)>,
        accept_encoding: Option<&'static str>,
    ) -> Result<Response<Incoming>, GlanceError> {
        let mut b = builder(Method::GET, format!("{base}/v2/images/{id}/file"), token);
        if let Some(coding) = accept_encoding {
            b = b.header(header::ACCEPT_ENCODING, coding);
        }
        match range {
            None => {}
            Some((first, None)) => b = b.header(header::RANGE, format!("bytes={first}-")),
            Some((first, Some(last))) => {
                b = b.header(header::RANGE, format!("bytes={first}-{last}"))
            }
        }
        let request = b
            .body(empty())
            .map_err(|e| GlanceError::Transport(e.to_string()))?;
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => Ok(response),
            StatusCode::NO_CONTENT => Err(GlanceError::Status {
                status: StatusCode::NO_CONTENT,
                message: "the image has no data".into(),
            }),
            status => Err(self.error_from(status, response.into_body()).await),
        }
    }

    /// `PUT {base}/v2/images/{id}/file` with exactly `size` bytes streamed from `body`.
    ///
    /// The body is sent in chunked transfer coding; if `body` fails before its end, the request
    /// is cut before its last chunk, which every server reports to Glance as an error, and
    /// Glance returns the image to `queued`: this is how an upload is aborted.
    pub async fn put_file(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        size: u64,
        store: Option<&str>,
        body: BoxBody,
    ) -> Result<(), GlanceError> {
        self.put_data(
            format!("{base}/v2/images/{id}/file"),
            token,
            size,
            store,
            body,
        )
        .await
    }

    /// `PUT {base}/v2/images/{id}/stage`: the data into Glance's staging area, aborted the same
    /// way (Glance then deletes the partial file and returns the image to `queued`).
    pub async fn put_stage(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        size: u64,
        body: BoxBody,
    ) -> Result<(), GlanceError> {
        self.put_data(
            format!("{base}/v2/images/{id}/stage"),
            token,
            size,
            None,
            body,
        )
        .await
    }

    async fn put_data(
        &self,
        uri: String,
        token: &Token,
        size: u64,
        store: Option<&str>,
        body: BoxBody,
    ) -> Result<(), GlanceError> {
        // Chunked, never `Content-Length`: a cut chunked body is an error at every server, a cut
        // `Content-Length` one a clean end of data to some (see `chunked`). The size
        // goes in `x-openstack-image-size`, which Glance 32+ checks the stored bytes against.
        let mut b = builder(Method::PUT, uri, token)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(IMAGE_SIZE, size);
        if let Some(store) = store {
            b = b.header("x-image-meta-store", store);
        }
        let request = b
            .body(boxed(Chunked::new(body)))
            .map_err(|e| GlanceError::Transport(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| GlanceError::Transport(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(self.error_from(status, response.into_body()).await)
    }

    /// `POST {base}/v2/images/{id}/actions/deactivate`: the image's data can no longer be
    /// downloaded or booted (204; a deactivated image stays so).
    pub async fn deactivate(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
    ) -> Result<(), GlanceError> {
        let uri = format!("{base}/v2/images/{id}/actions/deactivate");
        let request = builder(Method::POST, uri, token)
            .body(empty())
            .map_err(|e| GlanceError::Transport(e.to_string()))?;
        let response = self.send(request).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(self.error_from(status, response.into_body()).await)
    }

    /// `POST {base}/v2/images/{id}/import` with `body`; returns the answer's request id, which
    /// the import task records.
    pub async fn import(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        body: &Value,
    ) -> Result<String, GlanceError> {
        let request = builder(Method::POST, format!("{base}/v2/images/{id}/import"), token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(serde_json::to_vec(body).unwrap_or_default()))
            .map_err(|e| GlanceError::Transport(e.to_string()))?;
        let response = self.send(request).await?;
        let status = response.status();
        if status != StatusCode::ACCEPTED {
            return Err(self.error_from(status, response.into_body()).await);
        }
        Ok(response
            .headers()
            .get(crate::http::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string())
    }

    /// `GET {base}/v2/images/{id}/tasks`: the image's tasks as Glance lists them.
    pub async fn tasks(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
    ) -> Result<Vec<Value>, GlanceError> {
        let request = builder(Method::GET, format!("{base}/v2/images/{id}/tasks"), token)
            .body(empty())
            .map_err(|e| GlanceError::Transport(e.to_string()))?;
        let doc = self.json_call(request).await?;
        Ok(doc
            .0
            .get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `GET {base}/v2/info/stores`: the stores of a multi-store Glance, or `None` for a
    /// single-store one (upstream answers 404 "Multi backend is not supported at this site.").
    pub async fn stores(
        &self,
        base: &str,
        token: &Token,
    ) -> Result<Option<Vec<crate::stores::StoreInfo>>, GlanceError> {
        let request = builder(Method::GET, format!("{base}/v2/info/stores"), token)
            .body(empty())
            .map_err(|e| GlanceError::Transport(e.to_string()))?;
        match self.json_call(request).await {
            Ok(doc) => Ok(crate::stores::parse_info(&Value::Object(doc.0))),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn send(&self, request: Request<BoxBody>) -> Result<Response<Incoming>, GlanceError> {
        tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| GlanceError::Timeout(self.timeout))?
            .map_err(|e| GlanceError::Transport(describe(&e)))
    }

    async fn json_call(&self, request: Request<BoxBody>) -> Result<Image, GlanceError> {
        let started = std::time::Instant::now();
        let result = self.json_call_inner(request).await;
        if let Some(metrics) = &self.metrics {
            metrics
                .upstream_latency
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn json_call_inner(&self, request: Request<BoxBody>) -> Result<Image, GlanceError> {
        let timeout = self.timeout;
        let call = async {
            let response = self.send(request).await?;
            let status = response.status();
            if !status.is_success() {
                return Err(self.error_from(status, response.into_body()).await);
            }
            let body = read_limited(response.into_body(), MAX_IMAGE_JSON)
                .await
                .map_err(|e| GlanceError::Transport(e.to_string()))?;
            parse_image(&body)
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| GlanceError::Timeout(timeout))?
    }

    async fn error_from(&self, status: StatusCode, body: Incoming) -> GlanceError {
        let text = match tokio::time::timeout(self.timeout, read_limited(body, 64 * 1024)).await {
            Ok(Ok(bytes)) => error_message(&bytes),
            _ => String::new(),
        };
        GlanceError::Status {
            status,
            message: text,
        }
    }
}

fn builder(method: Method, uri: String, token: &Token) -> http::request::Builder {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ACCEPT, "application/json");
    if let Ok(mut value) = HeaderValue::from_str(token.expose()) {
        value.set_sensitive(true);
        b = b.header("x-auth-token", value);
    }
    b
}

/// Parses an image document, which must be a JSON object.
pub fn parse_image(body: &[u8]) -> Result<Image, GlanceError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Image(map)),
        Ok(_) => Err(GlanceError::BadResponse(
            "image is not a JSON object".into(),
        )),
        Err(e) => Err(GlanceError::BadResponse(e.to_string())),
    }
}

/// The human part of a Glance error body: JSON `message`, or the text with markup removed.
pub fn error_message(body: &Bytes) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        let inner = map.get("error").and_then(Value::as_object).unwrap_or(&map);
        if let Some(message) = inner.get("message").and_then(Value::as_str) {
            return strip_markup(message);
        }
    }
    strip_markup(&String::from_utf8_lossy(body))
}

/// Text without HTML tags and with whitespace folded (webob decorates messages with `<br />`).
fn strip_markup(text: &str) -> String {
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    plain
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_are_canonical() {
        let id = ImageId::parse("{C4705B36-B281-40F6-A01D-BF98883EAD8E}").unwrap();
        assert_eq!(id.as_str(), "c4705b36-b281-40f6-a01d-bf98883ead8e");
        assert!(ImageId::parse("fake_id").is_none());
        assert!(ImageId::parse("../../etc/passwd").is_none());
    }

    #[test]
    fn patch_paths_are_escaped() {
        let op = PatchOp::Add("trait:CUSTOM/X~1".into(), Value::from("required"));
        assert_eq!(op.to_json()["path"], "/trait:CUSTOM~1X~01");
    }

    #[test]
    fn error_messages_from_json_and_html() {
        let json = Bytes::from_static(
            br#"{"code": "409 Conflict", "message": "Busy", "title": "Conflict"}"#,
        );
        assert_eq!(error_message(&json), "Busy");
        let html = Bytes::from_static(
            b"<html><body><h1>404 Not Found</h1>\n No image found</body></html>",
        );
        assert_eq!(error_message(&html), "404 Not Found No image found");
    }
}
