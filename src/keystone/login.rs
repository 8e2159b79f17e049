//! The one Keystone login, `POST /v3/auth/tokens`, for every authentication method the sidecar's
//! service credentials and the tools accept: a password (project-scoped), an application
//! credential (scoped by Keystone to the credential's project), or an existing token (a new token
//! with the original's expiry, optionally scoped to a project).

use std::fmt;
use std::time::Duration;

use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use super::{parse_token, Identity, KeystoneError, Token, MAX_TOKEN_BODY};
use crate::glance::error_message;
use crate::http::{full, read_limited, HttpClient, ReadError};

/// A Keystone domain, by name or id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    Name(String),
    Id(String),
}

/// A user or project, by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Id(String),
    Name { name: String, domain: Domain },
}

/// A password or an application credential's secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret, for building the authentication request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An application credential, by id, or by name with the user who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppCredential {
    Id(String),
    Name { name: String, user: Named },
}

/// How to authenticate to Keystone. `Debug` shows who, never a password, secret or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// `password`: a user and password, scoped to `project`.
    Password {
        user: Named,
        password: Secret,
        project: Named,
    },
    /// `v3applicationcredential`: Keystone scopes the token to the credential's project (a scope
    /// cannot be asked for).
    ApplicationCredential {
        credential: AppCredential,
        secret: Secret,
    },
    /// `token`: an existing token, exchanged for one scoped to `project` (or, without one, to the
    /// user's default project); the new token expires when the original does.
    Token {
        token: Token,
        project: Option<Named>,
    },
}

fn named(who: &Named) -> Value {
    match who {
        Named::Id(id) => json!({"id": id}),
        Named::Name { name, domain } => json!({"name": name, "domain": match domain {
            Domain::Id(id) => json!({"id": id}),
            Domain::Name(name) => json!({"name": name}),
        }}),
    }
}

fn label(who: &Named) -> String {
    match who {
        Named::Id(id) => format!("id {id}"),
        Named::Name { name, .. } => name.clone(),
    }
}

impl AuthMethod {
    /// A password login with the user and project named within `domain` (by name).
    pub fn password(user: &str, password: &str, project: &str, domain: &str) -> AuthMethod {
        let name = |name: &str| Named::Name {
            name: name.to_string(),
            domain: Domain::Name(domain.to_string()),
        };
        AuthMethod::Password {
            user: name(user),
            password: Secret::new(password),
            project: name(project),
        }
    }

    /// The `{"auth": ...}` document of `POST /v3/auth/tokens`.
    pub fn body(&self) -> Value {
        let (identity, scope) = match self {
            AuthMethod::Password {
                user,
                password,
                project,
            } => {
                let mut user = named(user);
                user["password"] = json!(password.expose());
                let identity = json!({"methods": ["password"], "password": {"user": user}});
                (identity, Some(named(project)))
            }
            AuthMethod::ApplicationCredential { credential, secret } => {
                let mut credential = match credential {
                    AppCredential::Id(id) => json!({"id": id}),
                    AppCredential::Name { name, user } => {
                        json!({"name": name, "user": named(user)})
                    }
                };
                credential["secret"] = json!(secret.expose());
                let identity = json!({"methods": ["application_credential"],
                                      "application_credential": credential});
                (identity, None)
            }
            AuthMethod::Token { token, project } => {
                let identity = json!({"methods": ["token"], "token": {"id": token.expose()}});
                (identity, project.as_ref().map(named))
            }
        };
        match scope {
            Some(project) => json!({"auth": {"identity": identity, "scope": {"project": project}}}),
            None => json!({"auth": {"identity": identity}}),
        }
    }

    /// Who authenticates, for messages: `user alice`, `application credential id 42`, `a token`.
    pub fn who(&self) -> String {
        match self {
            AuthMethod::Password { user, .. } => format!("user {}", label(user)),
            AuthMethod::ApplicationCredential { credential, .. } => match credential {
                AppCredential::Id(id) => format!("application credential id {id}"),
                AppCredential::Name { name, user } => {
                    format!("application credential {name} of user {}", label(user))
                }
            },
            AuthMethod::Token { .. } => "the given token".to_string(),
        }
    }

    /// Whether a new login gives a token that lives longer (not so for a token: it keeps the
    /// original's expiry).
    pub fn renews(&self) -> bool {
        !matches!(self, AuthMethod::Token { .. })
    }
}

/// A login Keystone accepted.
#[derive(Debug)]
pub struct Login {
    /// The new token (`X-Subject-Token`).
    pub token: Token,
    /// The token document of the answer (user, project, roles, expiry, catalog), or why it
    /// could not be read.
    pub identity: Result<Identity, LoginError>,
}

/// Why a login failed. Never carries a password, secret or token.
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
    /// The answer's body could not be read (within `MAX_TOKEN_BODY`).
    #[error(transparent)]
    Body(ReadError),
    /// The answer's body is not a token document.
    #[error(transparent)]
    Document(KeystoneError),
}

/// Logs in at `auth_url` (Keystone's v3 base) with `method`; `with_catalog: false` asks Keystone
/// to leave the catalog out (`?nocatalog`). The whole call, body included, is bounded by
/// `timeout`.
pub async fn login(
    client: &HttpClient,
    auth_url: &str,
    method: &AuthMethod,
    with_catalog: bool,
    timeout: Duration,
) -> Result<Login, LoginError> {
    let query = if with_catalog { "" } else { "?nocatalog" };
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{auth_url}/auth/tokens{query}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(full(serde_json::to_vec(&method.body()).unwrap_or_default()))
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
    fn auth(password: &str) -> AuthMethod {
        AuthMethod::password("gds-service", password, "service", "Default")
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
        let full = login(&client, &url, &auth("pw"), true, timeout)
            .await
            .unwrap();
        let identity = full.identity.unwrap();
        assert!(!identity.catalog.0.is_empty());
        assert!(identity.expires_at.is_some());
        let bare = login(&client, &url, &auth("pw"), false, timeout)
            .await
            .unwrap();
        assert!(bare.identity.unwrap().catalog.0.is_empty());
        assert_ne!(full.token, bare.token);

        // A refusal carries Keystone's status and message, never the password.
        let refused = login(&client, &url, &auth("not-pw"), true, timeout)
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

#[cfg(all(test, feature = "tools"))]
mod methods {
    use super::*;

    async fn sim() -> (crate::tools::sim::Cloud, HttpClient, String) {
        let cloud = crate::tools::sim::Cloud::start(&["REGION1"]).await.unwrap();
        cloud
            .keystone
            .add_user("alice", "alice-pw", "images", &["member"]);
        let url = cloud.auth_url();
        (cloud, crate::http::client(Duration::from_secs(5)), url)
    }

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn an_application_credential_is_scoped_to_its_project_and_cannot_ask_for_a_scope() {
        let (cloud, client, url) = sim().await;
        let id = cloud
            .keystone
            .add_application_credential("alice", "sync", "ac-s3cret");
        let by_id = AuthMethod::ApplicationCredential {
            credential: AppCredential::Id(id.clone()),
            secret: Secret::new("ac-s3cret"),
        };
        let by_name = AuthMethod::ApplicationCredential {
            credential: AppCredential::Name {
                name: "sync".into(),
                user: Named::Name {
                    name: "alice".into(),
                    domain: Domain::Name("Default".into()),
                },
            },
            secret: Secret::new("ac-s3cret"),
        };
        for method in [&by_id, &by_name] {
            let login = login(&client, &url, method, true, T).await.unwrap();
            let identity = login.identity.unwrap();
            assert_eq!(identity.project_id, "images");
            assert!(identity.roles.iter().any(|r| r == "member"));
            assert!(!identity.catalog.0.is_empty());
        }
        // Keystone: "Application credentials cannot request a scope."
        let mut scoped = by_id.body();
        scoped["auth"]["scope"] = serde_json::json!({"project": {"id": "images"}});
        assert_eq!(
            raw_login(&client, &url, &scoped).await,
            StatusCode::UNAUTHORIZED
        );

        // A wrong secret is refused; neither the error nor Debug shows a secret.
        let wrong = AuthMethod::ApplicationCredential {
            credential: AppCredential::Id(id),
            secret: Secret::new("not-the-s3cret"),
        };
        let error = login(&client, &url, &wrong, true, T).await.unwrap_err();
        assert!(matches!(
            error,
            LoginError::Refused {
                status: StatusCode::UNAUTHORIZED,
                ..
            }
        ));
        let shown = format!("{error} {error:?} {wrong:?} {by_id:?} {by_name:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[tokio::test]
    async fn a_token_login_keeps_the_original_expiry_and_an_app_credential_token_its_scope() {
        let (cloud, client, url) = sim().await;
        let password = AuthMethod::password("alice", "alice-pw", "images", "Default");
        let first = login(&client, &url, &password, false, T).await.unwrap();
        let expires = first.identity.unwrap().expires_at;
        let exchange = |project: Option<&str>, token: &Token| AuthMethod::Token {
            token: token.clone(),
            project: project.map(|p| Named::Id(p.to_string())),
        };
        for project in [Some("images"), None] {
            let again = login(&client, &url, &exchange(project, &first.token), true, T)
                .await
                .unwrap();
            assert_ne!(again.token, first.token);
            let identity = again.identity.unwrap();
            assert_eq!(identity.expires_at, expires, "a token login never extends");
            assert_eq!(
                identity.project_id, "images",
                "the default project without a scope"
            );
        }
        let shown = format!("{:?}", exchange(None, &first.token));
        assert!(!shown.contains(first.token.expose()), "{shown}");

        let id = cloud
            .keystone
            .add_application_credential("alice", "sync", "ac-s3cret");
        let app = AuthMethod::ApplicationCredential {
            credential: AppCredential::Id(id),
            secret: Secret::new("ac-s3cret"),
        };
        let app_token = login(&client, &url, &app, false, T).await.unwrap().token;
        let other = login(
            &client,
            &url,
            &exchange(Some("elsewhere"), &app_token),
            false,
            T,
        )
        .await
        .unwrap_err();
        assert!(matches!(
            other,
            LoginError::Refused {
                status: StatusCode::UNAUTHORIZED,
                ..
            }
        ));
    }

    async fn raw_login(client: &HttpClient, url: &str, body: &Value) -> StatusCode {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{url}/auth/tokens"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(serde_json::to_vec(body).unwrap()))
            .unwrap();
        client.request(request).await.unwrap().status()
    }
}
