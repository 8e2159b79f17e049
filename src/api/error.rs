//! Errors of the HTTP edge, mapped to Glance-style JSON responses in exactly one place.

use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::glance::{GlanceError, GlanceStatus};
use crate::http::{escape_html, html_error, json_response, BoxBody};

/// Seconds a client is asked to wait when all import slots (or its project's) are taken.
const RETRY_AFTER_SECS: &str = "10";

/// What the sidecar answers a client when it does not answer `202` or pass through.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the text is upstream Glance's for the same fault.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or Keystone says it is not valid.
    #[error("The request you have made requires authentication.")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// `max_concurrent_imports` imports are running.
    #[error("Too many imports are running on this node; retry later.")]
    TooManyImports,
    /// `max_imports_per_project` imports of the image's project are running.
    #[error("Too many imports are running for this project; retry later.")]
    TooManyProjectImports,
    /// The client was too slow to send its request.
    #[error("The request was not received in time.")]
    RequestTimeout,
    #[error("The request body is larger than {0} bytes.")]
    PayloadTooLarge(usize),
    /// Keystone or the upstream Glance could not be reached or failed; detail is logged, not sent.
    #[error("{0}")]
    BadGateway(String),
    #[error("The upstream service did not answer in time.")]
    GatewayTimeout,
    /// A fault of the sidecar itself; detail is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyImports | ApiError::TooManyProjectImports => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: `{"code": "409 Conflict", "title": "Conflict", "message": "..."}` as
    /// Glance's webob errors, except 401 which has keystonemiddleware's shape and header.
    pub fn into_response(self, auth_url: &str, json: bool) -> Response<BoxBody> {
        let status = self.status();
        let message = match &self {
            ApiError::BadGateway(detail) | ApiError::Internal(detail) => {
                tracing::warn!(status = status.as_u16(), %detail, "Request failed");
                match self {
                    ApiError::BadGateway(_) => "The upstream service failed.".to_string(),
                    _ => "The server has either erred or is incapable of performing the requested operation.".to_string(),
                }
            }
            other => other.to_string(),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let mut response = match (status == StatusCode::UNAUTHORIZED, json) {
            (true, true) => json_response(
                status,
                &json!({"error": {"code": 401, "title": "Unauthorized", "message": message}}),
            ),
            (true, false) => html_error(status, UNAUTHORIZED_HTML),
            (false, true) => json_response(
                status,
                &json!({"code": format!("{} {title}", status.as_u16()), "title": title, "message": message}),
            ),
            (false, false) => html_error(status, &escape_html(&message)),
        };
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            if let Ok(value) = HeaderValue::from_str(&format!("Keystone uri=\"{auth_url}\"")) {
                headers.insert(http::header::WWW_AUTHENTICATE, value);
            }
        }
        if matches!(
            self,
            ApiError::TooManyImports | ApiError::TooManyProjectImports
        ) {
            headers.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<GlanceError> for ApiError {
    /// A Glance call made with the client's token failed: Glance's refusal of the token or of
    /// the caller is the client's answer (401, 403 with Glance's message); anything else is a
    /// fault of the upstream service (504 when it did not answer in time, else 502). A 404 is
    /// for the caller to say what was not found.
    fn from(error: GlanceError) -> Self {
        if error.is_unauthorized() {
            ApiError::Unauthorized
        } else if error.is_forbidden() {
            ApiError::Forbidden(error.message().unwrap_or_default().to_string())
        } else if error.is_timeout() {
            ApiError::GatewayTimeout
        } else {
            ApiError::BadGateway(error.to_string())
        }
    }
}

/// keystonemiddleware's 401 text (webob's default for 401), as upstream sends it to HTML clients.
pub const UNAUTHORIZED_HTML: &str = "This server could not verify that you are authorized to access the document you requested. Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand how to supply the credentials required.";

/// Whether the client asked for JSON error bodies (`Accept: application/json`), as webob decides.
pub fn wants_json(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glance_failures_map_to_one_answer_each() {
        let answered = |status: u16, message: &str| GlanceError::Status {
            status: StatusCode::from_u16(status).unwrap(),
            message: message.into(),
        };
        assert!(matches!(
            ApiError::from(answered(401, "no")),
            ApiError::Unauthorized
        ));
        assert!(
            matches!(ApiError::from(answered(403, "Not allowed")), ApiError::Forbidden(m) if m == "Not allowed")
        );
        let late = GlanceError::Timeout(std::time::Duration::from_secs(1));
        assert!(matches!(ApiError::from(late), ApiError::GatewayTimeout));
        let failed = ApiError::from(answered(500, "db locked"));
        assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    }
}
