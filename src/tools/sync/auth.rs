//! Signing in: a login (`POST /v3/auth/tokens`: password, application credential or token) whose
//! answer carries the token (`X-Subject-Token`), its project and the service catalog, and a token
//! renewed before it expires so a long run keeps working. A bare token cannot be renewed (a new
//! one expires with it): work that would outlive it is refused beforehand, naming the expiry.

use std::time::Duration;

use http::StatusCode;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::http::HttpClient;
use crate::keystone::{login, Catalog, CatalogError, Keystone, LoginError, Token};

use super::credentials::Credentials;

/// A token with less than this left is renewed before the next use.
pub(super) const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Why signing in failed. Never carries the password or a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Keystone at {auth_url} refused the credentials of {user} ({status}): {message}")]
    Refused {
        auth_url: String,
        user: String,
        status: StatusCode,
        message: String,
    },
    #[error("Keystone at {auth_url} could not be reached: {reason}")]
    Unreachable { auth_url: String, reason: String },
    #[error("Keystone at {auth_url} did not answer within {after:?}")]
    Timeout { auth_url: String, after: Duration },
    #[error("Keystone at {auth_url} sent an unexpected answer: {reason}")]
    BadResponse { auth_url: String, reason: String },
    #[error(
        "the token from Keystone at {auth_url} is not scoped to a project: \
         give project_name or project_id (OS_PROJECT_NAME, OS_PROJECT_ID)"
    )]
    Unscoped { auth_url: String },
    #[error(
        "the token expires at {expires_at} UTC, in less than the {margin:?} the next step may \
         take: a token cannot be renewed, so it is not started; issue a new token \
         (openstack token issue) or use a password or an application credential"
    )]
    TokenExpiring {
        expires_at: String,
        margin: Duration,
    },
}

struct Current {
    token: Token,
    expires_at: Option<OffsetDateTime>,
}

/// A signed-in user: the token (renewed as needed), the project and the catalog.
pub struct Session {
    client: HttpClient,
    credentials: Credentials,
    timeout: Duration,
    current: Mutex<Current>,
    /// The project the token is scoped to (owner of the images `sync` creates).
    pub project_id: String,
    /// The service catalog of the first token.
    pub catalog: Catalog,
}

// === impl Session ===

impl Session {
    /// Authenticates and reads the catalog.
    pub async fn open(
        client: HttpClient,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Session, AuthError> {
        let (token, identity) = authenticate(&client, &credentials, timeout).await?;
        let mut catalog = identity.catalog;
        if catalog.0.is_empty() {
            // Some deployments leave the catalog out of the POST answer: ask for it.
            let keystone = Keystone::new(
                client.clone(),
                &credentials.auth_url,
                timeout,
                Duration::ZERO,
            );
            catalog = keystone
                .validate(&token)
                .await
                .map_err(|e| AuthError::BadResponse {
                    auth_url: credentials.auth_url.clone(),
                    reason: format!("reading the catalog: {e}"),
                })?
                .catalog;
        }
        if identity.project_id.is_empty() {
            return Err(AuthError::Unscoped {
                auth_url: credentials.auth_url.clone(),
            });
        }
        Ok(Session {
            client,
            timeout,
            current: Mutex::new(Current {
                token,
                expires_at: identity.expires_at,
            }),
            project_id: identity.project_id,
            catalog,
            credentials,
        })
    }

    /// A token valid for at least `RENEW_BEFORE`: renewed with the password or application
    /// credential if needed; with a bare token, an error naming its expiry instead.
    pub async fn token(&self) -> Result<Token, AuthError> {
        self.token_for(RENEW_BEFORE).await
    }

    /// A token for work that cannot survive the token expiring mid-way and may take `needed`: a
    /// password or application credential renews it whenever needed ([`Session::token`]); a
    /// bare token must still be valid for `needed` (and at least `RENEW_BEFORE`), else the
    /// work is refused before it starts, naming the expiry.
    pub async fn token_for(&self, needed: Duration) -> Result<Token, AuthError> {
        let renews = self.credentials.method.renews();
        let margin = match renews {
            true => RENEW_BEFORE,
            false => needed.max(RENEW_BEFORE),
        };
        let mut current = self.current.lock().await;
        let renew = current.expires_at.is_some_and(|at| {
            at - OffsetDateTime::now_utc()
                < time::Duration::try_from(margin).unwrap_or(time::Duration::MAX)
        });
        if renew && !renews {
            return Err(AuthError::TokenExpiring {
                expires_at: current.expires_at.map(utc).unwrap_or_default(),
                margin,
            });
        }
        if renew {
            let (token, identity) =
                authenticate(&self.client, &self.credentials, self.timeout).await?;
            tracing::debug!("Token renewed");
            *current = Current {
                token,
                expires_at: identity.expires_at,
            };
        }
        Ok(current.token.clone())
    }

    /// The image endpoint of `region` for the configured interface.
    pub fn image_endpoint(&self, region: &str) -> Result<String, CatalogError> {
        self.catalog
            .image_endpoint(region, &self.credentials.interface)
    }

    /// The HTTP client every call of this run uses.
    pub fn client(&self) -> &HttpClient {
        &self.client
    }
}

async fn authenticate(
    client: &HttpClient,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<(Token, crate::keystone::Identity), AuthError> {
    let auth_url = &credentials.auth_url;
    let failed = |error| auth_error(credentials, error);
    let login = login(client, auth_url, &credentials.method, true, timeout)
        .await
        .map_err(failed)?;
    let identity = login.identity.map_err(failed)?;
    Ok((login.token, identity))
}

/// `2026-12-04 23:10:00` (UTC).
fn utc(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Why signing in failed, naming Keystone and the user.
fn auth_error(credentials: &Credentials, error: LoginError) -> AuthError {
    let auth_url = credentials.auth_url.clone();
    let bad = |reason: String| AuthError::BadResponse {
        auth_url: auth_url.clone(),
        reason,
    };
    match error {
        LoginError::Timeout(after) => AuthError::Timeout {
            auth_url: auth_url.clone(),
            after,
        },
        LoginError::Refused { status, message } => AuthError::Refused {
            auth_url: auth_url.clone(),
            user: credentials.method.who(),
            status,
            message,
        },
        LoginError::NoToken => bad("no X-Subject-Token header".into()),
        LoginError::Document(error) => bad(error.to_string()),
        LoginError::Transport(error) => AuthError::Unreachable {
            auth_url: auth_url.clone(),
            reason: crate::http::describe(&error),
        },
        other @ (LoginError::Request(_) | LoginError::Body(_)) => AuthError::Unreachable {
            auth_url: auth_url.clone(),
            reason: other.to_string(),
        },
    }
}
