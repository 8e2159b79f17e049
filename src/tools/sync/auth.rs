//! Signing in: a password authentication (`POST /v3/auth/tokens`, project-scoped) whose answer
//! carries the token (`X-Subject-Token`) and the service catalog, and a token renewed before it
//! expires so a long run keeps working.

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::http::HttpClient;
use crate::keystone::{password_login, Catalog, CatalogError, Keystone, LoginError, Token};

use super::credentials::{Credentials, Domain, Named};

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

    /// A token valid for at least [`RENEW_BEFORE`] (renewed with the password if needed).
    pub async fn token(&self) -> Result<Token, AuthError> {
        let mut current = self.current.lock().await;
        let renew = current.expires_at.is_some_and(|at| {
            at - OffsetDateTime::now_utc()
                < time::Duration::try_from(RENEW_BEFORE).unwrap_or(time::Duration::ZERO)
        });
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

/// The `auth` document of a password authentication scoped to the project.
fn auth_body(credentials: &Credentials) -> Value {
    let domain = |d: &Domain| match d {
        Domain::Id(id) => json!({"id": id}),
        Domain::Name(name) => json!({"name": name}),
    };
    let mut user = match &credentials.user {
        Named::Id(id) => json!({"id": id}),
        Named::Name { name, domain: d } => json!({"name": name, "domain": domain(d)}),
    };
    user["password"] = json!(credentials.password);
    let project = match &credentials.project {
        Named::Id(id) => json!({"id": id}),
        Named::Name { name, domain: d } => json!({"name": name, "domain": domain(d)}),
    };
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": user}},
        "scope": {"project": project}}})
}

fn user_label(credentials: &Credentials) -> String {
    match &credentials.user {
        Named::Id(id) => format!("user id {id}"),
        Named::Name { name, .. } => format!("user {name}"),
    }
}

async fn authenticate(
    client: &HttpClient,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<(Token, crate::keystone::Identity), AuthError> {
    let auth_url = &credentials.auth_url;
    let failed = |error| auth_error(credentials, error);
    let login = password_login(client, auth_url, &auth_body(credentials), true, timeout)
        .await
        .map_err(failed)?;
    let identity = login.identity.map_err(failed)?;
    Ok((login.token, identity))
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
            user: user_label(credentials),
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
