//! Why a Glance call failed, and the one place where an answer's status is read as a kind of
//! failure ("the token was refused", "no such image", "try again").

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use crate::http::{describe, ReadError};

/// Why a Glance call failed. The causes are kept (`source()`), never flattened into text; no
/// variant holds a token.
#[derive(Debug, thiserror::Error)]
pub enum GlanceError {
    /// Glance answered with an error status; `message` is its error text, if any.
    #[error("glance answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    /// The request could not be built (an invalid URL).
    #[error("glance could not be reached: {0}")]
    Request(#[source] http::Error),
    /// The call could not be made (connection refused, reset, TLS).
    #[error("glance could not be reached: {}", describe(.0))]
    Transport(#[source] hyper_util::client::legacy::Error),
    /// The answer's body could not be read, or is larger than allowed.
    #[error("glance could not be reached: {0}")]
    Read(#[source] ReadError),
    /// No answer within the configured time.
    #[error("glance did not answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not JSON.
    #[error("glance sent an unexpected answer: {0}")]
    BadJson(#[source] serde_json::Error),
    /// The answer is JSON of another shape than expected.
    #[error("glance sent an unexpected answer: {0}")]
    BadResponse(&'static str),
}

impl GlanceError {
    /// The HTTP status, when Glance answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            GlanceError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Glance's own error text, when it answered with an error.
    pub fn message(&self) -> Option<&str> {
        match self {
            GlanceError::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether no answer came in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, GlanceError::Timeout(_))
    }

    /// Whether Glance refused the call outright (a 4xx other than 408): it answers every such
    /// refusal before it changes anything, so the call had no effect.
    pub fn is_refusal(&self) -> bool {
        self.status()
            .is_some_and(|s| s.is_client_error() && s != StatusCode::REQUEST_TIMEOUT)
    }

    /// Whether the same call may well succeed if made again: a 5xx, a broken connection, or no
    /// answer in time.
    pub fn is_transient(&self) -> bool {
        match self {
            GlanceError::Status { status, .. } => status.is_server_error(),
            GlanceError::Transport(_) | GlanceError::Read(_) | GlanceError::Timeout(_) => true,
            GlanceError::Request(_) | GlanceError::BadJson(_) | GlanceError::BadResponse(_) => {
                false
            }
        }
    }
}

/// An error that may stand for a status a Glance answered, directly or through its cause: the
/// one place where a status is read as "the token was refused" or "no such image".
pub trait GlanceStatus {
    /// The status Glance answered, if this error is (or was caused by) such an answer.
    fn glance_status(&self) -> Option<StatusCode>;

    /// Whether Glance refused the token (401: expired or revoked).
    fn is_unauthorized(&self) -> bool {
        self.glance_status() == Some(StatusCode::UNAUTHORIZED)
    }

    /// Whether Glance refused the caller this call (403).
    fn is_forbidden(&self) -> bool {
        self.glance_status() == Some(StatusCode::FORBIDDEN)
    }

    /// Whether Glance knows no such image, or hides it from the caller (404).
    fn is_not_found(&self) -> bool {
        self.glance_status() == Some(StatusCode::NOT_FOUND)
    }
}

impl GlanceStatus for GlanceError {
    fn glance_status(&self) -> Option<StatusCode> {
        self.status()
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

    #[test]
    fn statuses_are_read_in_one_place() {
        let answered = |status| GlanceError::Status {
            status,
            message: String::new(),
        };
        assert!(answered(StatusCode::UNAUTHORIZED).is_unauthorized());
        assert!(answered(StatusCode::NOT_FOUND).is_not_found());
        assert!(answered(StatusCode::FORBIDDEN).is_refusal());
        assert!(!answered(StatusCode::REQUEST_TIMEOUT).is_refusal());
        assert!(answered(StatusCode::SERVICE_UNAVAILABLE).is_transient());
        assert!(!answered(StatusCode::CONFLICT).is_transient());
        let late = GlanceError::Timeout(Duration::from_secs(1));
        assert!(late.is_timeout() && late.is_transient() && !late.is_refusal());
    }
}
