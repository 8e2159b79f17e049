//! A small Image API v2 client that acts as a user: the `demo` command, the benchmarks and the
//! integration tests drive the sidecar through it exactly as `openstack image ...` would.
//!
//! It is a thin layer over [`crate::glance`]: the request, its time limit, the bounded read and
//! the errors are the Glance client's; only here is any status an answer for the caller to read.

use std::time::Duration;

use http::{header, Method};
use serde::Deserialize;
use serde_json::Value;

use crate::glance::{request, Glance, GlanceError, GlanceTask};
use crate::http::{client, full, BoxBody, HttpClient, JSON_PATCH};
use crate::keystone::Token;

pub use crate::glance::Answer;

/// Largest answer read by this client.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Longest a call may take, upload included (callers bound their calls more tightly).
const CALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why a call could not be completed (as opposed to answered with an error status).
#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: {error}")]
pub struct CallError {
    pub method: Method,
    pub url: String,
    #[source]
    pub error: GlanceError,
}

/// An Image API client bound to one base URL and one token (none when empty), making its calls
/// through the sidecar's own Glance client.
#[derive(Clone)]
pub struct ImageApi {
    glance: Glance,
    base: String,
    token: Option<Token>,
}

impl ImageApi {
    pub fn new(base: &str, token: &str) -> Self {
        ImageApi::with_client(base, token, client(Duration::from_secs(10)))
    }

    /// A client using `client` (e.g. one trusting a private CA).
    pub fn with_client(base: &str, token: &str, client: HttpClient) -> Self {
        ImageApi {
            glance: Glance::new(client, CALL_TIMEOUT),
            base: base.trim_end_matches('/').to_string(),
            token: Token::parse(token.as_bytes()),
        }
    }

    /// Sends a request with the token; `body` is JSON unless `content_type` says otherwise.
    /// Any status is an answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: BoxBody,
    ) -> Result<Answer, CallError> {
        let url = format!("{}{path}", self.base);
        let mut built = request(method.clone(), url.clone(), self.token.as_ref());
        if let Some(ct) = content_type {
            built = built.header(header::CONTENT_TYPE, ct);
        }
        self.glance
            .exchange(built.body(body), MAX_ANSWER)
            .await
            .map_err(|error| CallError { method, url, error })
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

    /// Waits until the newest task for `id` has ended; returns it. Gives up after `timeout`
    /// and returns the last task seen (or `Null`).
    pub async fn wait_for_import(&self, id: &str, timeout: Duration) -> Result<Value, CallError> {
        self.wait_for_import_every(id, timeout, Duration::from_millis(50))
            .await
    }

    /// [`ImageApi::wait_for_import`], looking every `poll`.
    pub async fn wait_for_import_every(
        &self,
        id: &str,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Value, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answer = self.get(&format!("/v2/images/{id}/tasks")).await?;
            let task = answer.json()["tasks"]
                .as_array()
                .and_then(|tasks| tasks.last().cloned())
                .unwrap_or(Value::Null);
            let ended = GlanceTask::deserialize(&task).is_ok_and(|t| t.has_ended());
            if ended || tokio::time::Instant::now() >= deadline {
                return Ok(task);
            }
            tokio::time::sleep(poll).await;
        }
    }
}
