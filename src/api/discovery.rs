//! Discovery: clients learn that glance-download is available from `GET /v2/info/import` and from
//! the `OpenStack-image-import-methods` header of an image-create answer. Both come from the
//! upstream Glance, with `glance-download` added when it is missing.

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use crate::http::{boxed, full, read_limited, BoxBody};

use super::{error::ApiError, proxy, App};

/// The import method this sidecar adds.
pub const METHOD: &str = "glance-download";

/// Header listing import methods on `POST /v2/images` answers.
const METHODS_HEADER: &str = "openstack-image-import-methods";

/// Largest discovery document rewritten.
const MAX_INFO_BODY: usize = 64 * 1024;

/// `GET /v2/info/import`, with glance-download in `import-methods.value`.
pub(super) async fn info_import(
    app: &App,
    request: Request<Incoming>,
) -> Result<Response<BoxBody>, ApiError> {
    let response = proxy::forward(app, request).await?;
    if response.status() != StatusCode::OK {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let bytes = read_limited(body, MAX_INFO_BODY)
        .await
        .map_err(|e| ApiError::BadGateway(format!("upstream discovery document: {e}")))?;
    let rewritten = add_method(&bytes).unwrap_or_else(|| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, full(rewritten)))
}

/// Adds glance-download to a discovery document; `None` when it is not one (left unchanged).
pub fn add_method(body: &[u8]) -> Option<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(body).ok()?;
    let list = doc
        .get_mut("import-methods")?
        .get_mut("value")?
        .as_array_mut()?;
    if !list.iter().any(|m| m == METHOD) {
        list.push(Value::from(METHOD));
    }
    serde_json::to_vec(&doc).ok()
}

/// `POST /v2/images`, with glance-download in the import-methods header of the answer.
pub(super) async fn create_image(
    app: &App,
    request: Request<Incoming>,
) -> Result<Response<BoxBody>, ApiError> {
    let mut response = proxy::send(app, request.map(boxed)).await?;
    if response.status() == StatusCode::CREATED {
        let current = response
            .headers()
            .get(METHODS_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(value) = with_method(current) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(METHODS_HEADER, value);
            }
        }
    }
    Ok(response)
}

/// The header value with glance-download appended, or `None` if it is already listed.
pub fn with_method(current: &str) -> Option<String> {
    let methods: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if methods.contains(&METHOD) {
        return None;
    }
    let mut all = methods;
    all.push(METHOD);
    Some(all.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_method_once() {
        let doc = br#"{"import-methods": {"description": "Import methods available.", "type": "array", "value": ["glance-direct"]}}"#;
        let out: Value = serde_json::from_slice(&add_method(doc).unwrap()).unwrap();
        assert_eq!(
            out["import-methods"]["value"],
            serde_json::json!(["glance-direct", METHOD])
        );
        let again = add_method(&serde_json::to_vec(&out).unwrap()).unwrap();
        let again: Value = serde_json::from_slice(&again).unwrap();
        assert_eq!(again, out);
        assert!(add_method(b"not json").is_none());
    }

    #[test]
    fn header_gets_the_method() {
        assert_eq!(
            with_method("glance-direct,web-download").unwrap(),
            "glance-direct,web-download,glance-download"
        );
        assert_eq!(with_method("").unwrap(), "glance-download");
        assert!(with_method("glance-direct, glance-download").is_none());
    }
}
