//! The password login, `POST /v3/auth/tokens` scoped to a project: one request for the
//! sidecar's service credentials and for the `sync` tool's user.

use std::time::Duration;

use http::{header, Method, Request, StatusCode};
use serde_json::Value;

use super::{parse_token, Identity, KeystoneError, Token, MAX_TOKEN_BODY};
use crate::glance::error_message;
use crate::http::{full, read_limited, HttpClient, ReadError};

/// A login Keystone accepted.
#[derive(Debug)]
pub struct Login {
    /// The new token (`X-Subject-Token`).
    pub token: Token,
    /// The token document of the answer (user, project, roles, expiry, catalog), or why it
    /// could not be read.
    pub identity: Result<Identity, LoginError>,
}

/// Why a password login failed. Never carries the password or a token.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The request could not be built (a malformed `auth_url`).
    #[error(transparent)]
    Request(http::Error),
    /// Keystone could not be reached.
    #[error(transparent)]
    Transport(hyper_util::client::legacy::Error),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Keystone answered with an error status; `message` is its error text, if any.
    #[error("refused ({status}): {message}")]
    Refused { status: StatusCode, message: String },
    /// A success without `X-Subject-Token`.
    #[error("no X-Subject-Token header")]
    NoToken,
    /// The answer's body could not be read (within [`MAX_TOKEN_BODY`]).
    #[error(transparent)]
    Body(ReadError),
    /// The answer's body is not a token document.
    #[error(transparent)]
    Document(KeystoneError),
}

/// Logs in at `auth_url` (Keystone's v3 base) with `auth`, the `{"auth": ...}` document of a
/// password authentication; `with_catalog: false` asks Keystone to leave the catalog out
/// (`?nocatalog`). The whole call, body included, is bounded by `timeout`.
pub async fn password_login(
    client: &HttpClient,
    auth_url: &str,
    auth: &Value,
    with_catalog: bool,
    timeout: Duration,
) -> Result<Login, LoginError> {
    let query = if with_catalog { "" } else { "?nocatalog" };
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{auth_url}/auth/tokens{query}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(full(serde_json::to_vec(auth).unwrap_or_default()))
        .map_err(LoginError::Request)?;
    let call = async {
        let response = client
            .request(request)
            .await
            .map_err(LoginError::Transport)?;
        let (parts, body) = response.into_parts();
        let body = read_limited(body, MAX_TOKEN_BODY).await;
        if !parts.status.is_success() {
            return Err(LoginError::Refused {
                status: parts.status,
                message: body.as_ref().map(error_message).unwrap_or_default(),
            });
        }
        let token = parts
            .headers
            .get("x-subject-token")
            .and_then(|v| Token::parse(v.as_bytes()))
            .ok_or(LoginError::NoToken)?;
        let identity = body
            .map_err(LoginError::Body)
            .and_then(|body| parse_token(&body).map_err(LoginError::Document));
        Ok(Login { token, identity })
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| LoginError::Timeout(timeout))?
}

#[cfg(all(test, feature = "tools"))]
mod tests {
    use super::*;
    use serde_json::json;

    fn auth(password: &str) -> Value {
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "gds-service", "password": password, "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": "service", "domain": {"name": "Default"}}}}})
    }

    #[tokio::test]
    async fn one_login_for_the_service_and_the_tools() {
        let cloud = crate::tools::sim::Cloud::start(&["REGION1"]).await.unwrap();
        cloud
            .keystone
            .add_user("gds-service", "pw", "service", &["admin"]);
        let url = cloud.auth_url();
        let client = crate::http::client(Duration::from_secs(5));
        let timeout = Duration::from_secs(10);

        // With the catalog (the tools), and without it (the service credentials).
        let full = password_login(&client, &url, &auth("pw"), true, timeout)
            .await
            .unwrap();
        let identity = full.identity.unwrap();
        assert!(!identity.catalog.0.is_empty());
        assert!(identity.expires_at.is_some());
        let bare = password_login(&client, &url, &auth("pw"), false, timeout)
            .await
            .unwrap();
        assert!(bare.identity.unwrap().catalog.0.is_empty());
        assert_ne!(full.token, bare.token);

        // A refusal carries Keystone's status and message, never the password.
        let refused = password_login(&client, &url, &auth("not-pw"), true, timeout)
            .await
            .unwrap_err();
        let LoginError::Refused { status, message } = &refused else {
            panic!("{refused:?}");
        };
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        assert!(message.contains("requires authentication"), "{message}");
        assert!(!format!("{refused} {refused:?}").contains("not-pw"));
    }
}
