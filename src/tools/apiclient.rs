//! A small Image API v2 client that acts as a user: the `demo` command, the benchmarks and the
//! integration tests drive the sidecar through it exactly as `openstack image ...` would.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use serde_json::Value;

use crate::http::{client, full, read_limited, BoxBody, HttpClient, JSON_PATCH};

/// Largest JSON answer read by this client.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// One answer: status, headers and the body (parsed as JSON when it is JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a call could not be completed (as opposed to answered with an error status).
#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: {reason}")]
pub struct CallError {
    pub method: Method,
    pub url: String,
    pub reason: String,
}

/// An Image API client bound to one base URL and one token (none when empty).
#[derive(Clone)]
pub struct ImageApi {
    client: HttpClient,
    base: String,
    token: String,
}

impl ImageApi {
    pub fn new(base: &str, token: &str) -> Self {
        ImageApi::with_client(base, token, client(Duration::from_secs(10)))
    }

    /// A client using `client` (e.g. one trusting a private CA).
    pub fn with_client(base: &str, token: &str, client: HttpClient) -> Self {
        ImageApi {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// Sends a request with the token; `body` is JSON unless `content_type` says otherwise.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: BoxBody,
    ) -> Result<Answer, CallError> {
        let url = format!("{}{path}", self.base);
        let fail = |reason: String| CallError {
            method: method.clone(),
            url: url.clone(),
            reason,
        };
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::ACCEPT, "application/json");
        if !self.token.is_empty() {
            builder = builder.header("x-auth-token", &self.token);
        }
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let request = builder.body(body).map_err(|e| fail(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = read_limited(body, MAX_ANSWER)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer, CallError> {
        self.call(Method::GET, path, None, crate::http::empty())
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Answer, CallError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.call(Method::POST, path, Some("application/json"), full(bytes))
            .await
    }

    /// `PATCH /v2/images/{id}` with JSON-patch operations.
    pub async fn patch(&self, id: &str, ops: &Value) -> Result<Answer, CallError> {
        let bytes = serde_json::to_vec(ops).unwrap_or_default();
        self.call(
            Method::PATCH,
            &format!("/v2/images/{id}"),
            Some(JSON_PATCH),
            full(bytes),
        )
        .await
    }

    /// Creates an image record; returns the answer (201 with the image on success).
    pub async fn create_image(&self, body: &Value) -> Result<Answer, CallError> {
        self.post_json("/v2/images", body).await
    }

    /// Starts a glance-download import of `remote_id` in `region` into `id`.
    pub async fn import_glance_download(
        &self,
        id: &str,
        region: &str,
        remote_id: &str,
    ) -> Result<Answer, CallError> {
        let body = serde_json::json!({"method": {
            "name": "glance-download", "glance_region": region,
            "glance_image_id": remote_id, "glance_service_interface": "public"}});
        self.post_json(&format!("/v2/images/{id}/import"), &body)
            .await
    }

    /// The image document.
    pub async fn image(&self, id: &str) -> Result<Value, CallError> {
        Ok(self.get(&format!("/v2/images/{id}")).await?.json())
    }

    /// Waits until the newest task of type `api_image_import` for `id` has ended; returns it.
    /// Gives up after `timeout` and returns the last task seen (or `Null`).
    pub async fn wait_for_import(&self, id: &str, timeout: Duration) -> Result<Value, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answer = self.get(&format!("/v2/images/{id}/tasks")).await?;
            let task = answer.json()["tasks"]
                .as_array()
                .and_then(|tasks| tasks.last().cloned())
                .unwrap_or(Value::Null);
            let ended = matches!(task["status"].as_str(), Some("success" | "failure"));
            if ended || tokio::time::Instant::now() >= deadline {
                return Ok(task);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
