//! How one Glance call is made: the request with its token, the time limit, the bounded read of
//! the answer, and an error status turned into a [`GlanceError`]. Every Glance call of the
//! sidecar and of the tools goes through here.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use crate::http::{read_limited, BoxBody};
use crate::keystone::Token;

use super::error::{error_message, GlanceError};
use super::Glance;

/// Largest error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One answer read whole: status, headers and body, whatever the status.
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

    /// The answer's `x-openstack-request-id` (empty when it has none): the id Glance records in
    /// the tasks the call started.
    pub fn request_id(&self) -> String {
        self.header(crate::http::REQUEST_ID)
            .unwrap_or_default()
            .to_string()
    }

    /// The answer as an error: its status and Glance's message.
    pub fn error(&self) -> GlanceError {
        GlanceError::Status {
            status: self.status,
            message: error_message(&self.body),
        }
    }

    /// The answer itself when its status is `expected` (any success when `None`), else the
    /// error it stands for.
    pub fn require(self, expected: Option<StatusCode>) -> Result<Answer, GlanceError> {
        let ok = match expected {
            Some(status) => self.status == status,
            None => self.status.is_success(),
        };
        if ok {
            Ok(self)
        } else {
            Err(self.error())
        }
    }
}

/// A request to Glance carrying `token` as `X-Auth-Token` (marked sensitive, so it stays out of
/// debug output) and asking for JSON answers.
pub fn request(method: Method, uri: String, token: Option<&Token>) -> http::request::Builder {
    let b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ACCEPT, "application/json");
    match token {
        Some(token) => with_token(b, "x-auth-token", token),
        None => b,
    }
}

/// Adds `token` as header `name`, marked sensitive.
pub fn with_token(
    b: http::request::Builder,
    name: &'static str,
    token: &Token,
) -> http::request::Builder {
    // A `Token` is printable ASCII by construction, so this always holds.
    match HeaderValue::from_str(token.expose()) {
        Ok(mut value) => {
            value.set_sensitive(true);
            b.header(name, value)
        }
        Err(_) => b,
    }
}

impl Glance {
    /// Sends `request` and reads its whole answer, at most `limit` bytes, all within the
    /// client's timeout. Any status is an answer: the caller reads it (see [`Answer::require`]).
    pub async fn exchange(
        &self,
        request: Result<Request<BoxBody>, http::Error>,
        limit: usize,
    ) -> Result<Answer, GlanceError> {
        let request = request.map_err(GlanceError::Request)?;
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let started = tokio::time::Instant::now();
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(GlanceError::Transport)?;
            let (parts, body) = response.into_parts();
            let body = match read_limited(body, limit).await {
                Ok(body) => body,
                // An error status stays the answer, without its message.
                Err(_) if !parts.status.is_success() => Bytes::new(),
                Err(error) => return Err(GlanceError::Read(error)),
            };
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let answer = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| GlanceError::Timeout(self.timeout))?;
        if let Ok(answer) = &answer {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            tracing::debug!(%method, %path, status = answer.status.as_u16(), ms, "Glance answered");
        }
        answer
    }

    /// Sends `request` and returns the answer once its head arrived (within the timeout); the
    /// body is not read.
    pub(super) async fn send(
        &self,
        request: Result<Request<BoxBody>, http::Error>,
    ) -> Result<Response<Incoming>, GlanceError> {
        let request = request.map_err(GlanceError::Request)?;
        tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| GlanceError::Timeout(self.timeout))?
            .map_err(GlanceError::Transport)
    }

    /// The error an answer with a streamed body stands for (its message read within the
    /// timeout, or left empty).
    pub(super) async fn error_from(&self, response: Response<Incoming>) -> GlanceError {
        let status = response.status();
        let read = read_limited(response.into_body(), MAX_ERROR_BODY);
        let message = match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(bytes)) => error_message(&bytes),
            _ => String::new(),
        };
        GlanceError::Status { status, message }
    }
}
