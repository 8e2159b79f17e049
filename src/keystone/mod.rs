//! Keystone: validating the caller's token and finding the source region's image endpoint in the
//! catalog that comes with it.
//!
//! The token is validated with `GET /v3/auth/tokens`, the caller's token sent as both
//! `X-Auth-Token` and `X-Subject-Token` (Keystone lets a token validate itself). The response
//! carries the user, project, roles, expiry and the v3 catalog; the catalog is the only place the
//! remote Glance endpoint is ever taken from.

mod cache;
mod login;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use cache::TokenCache;
pub use login::{login, AppCredential, AuthMethod, Domain, Login, LoginError, Named, Secret};

use http::{header, Method, Request, StatusCode};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::http::{empty, read_limited, HttpClient};

/// Largest token document accepted (a big catalog is a few tens of KiB).
const MAX_TOKEN_BODY: usize = 4 * 1024 * 1024;

/// A caller's Keystone token. Its value is never printed: `Debug` shows only a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Accepts a header value as a token if it is non-empty, printable ASCII and at most 8 KiB.
    pub fn parse(value: &[u8]) -> Option<Token> {
        let ok =
            !value.is_empty() && value.len() <= 8192 && value.iter().all(|b| b.is_ascii_graphic());
        ok.then(|| Token(String::from_utf8_lossy(value).into_owned()))
    }

    /// The secret, for building the `X-Auth-Token` header of an outbound call.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Who the token belongs to, and what it may reach.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub project_id: String,
    pub roles: Vec<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub catalog: Catalog,
}

impl Identity {
    /// Whether the token carries the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// The v3 service catalog of a token.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Catalog(pub Vec<CatalogService>);

/// One service of the catalog.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// One endpoint of a catalog service.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

/// Why no image endpoint was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("no image service endpoint for region {region} in the caller's catalog")]
    UnknownRegion { region: String },
    #[error("no {interface} image service endpoint for region {region} in the caller's catalog")]
    NoInterface { region: String, interface: String },
    #[error("the {interface} image endpoint for region {region} is not an http(s) URL")]
    BadUrl { region: String, interface: String },
}

impl Catalog {
    /// The base URL of the `image` endpoint in `region` (case-insensitive) with `interface`.
    ///
    /// A trailing `/` and a trailing `/v2` are removed, so `{url}/v2/images/...` is well formed.
    pub fn image_endpoint(&self, region: &str, interface: &str) -> Result<String, CatalogError> {
        let in_region: Vec<&CatalogEndpoint> = self
            .0
            .iter()
            .filter(|s| s.kind == "image")
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| {
                let name = e.region_id.as_deref().or(e.region.as_deref());
                name.is_some_and(|n| n.eq_ignore_ascii_case(region))
            })
            .collect();
        if in_region.is_empty() {
            return Err(CatalogError::UnknownRegion {
                region: region.to_string(),
            });
        }
        let endpoint = in_region
            .iter()
            .find(|e| e.interface.eq_ignore_ascii_case(interface))
            .ok_or_else(|| CatalogError::NoInterface {
                region: region.to_string(),
                interface: interface.to_string(),
            })?;
        let url = endpoint.url.trim_end_matches('/');
        let url = url.strip_suffix("/v2").unwrap_or(url);
        let valid = url.parse::<http::Uri>().ok().filter(|u| {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some()
                && crate::http::port_is_valid(u)
        });
        match valid {
            Some(_) => Ok(url.to_string()),
            None => Err(CatalogError::BadUrl {
                region: region.to_string(),
                interface: interface.to_string(),
            }),
        }
    }
}

/// Why a token could not be validated.
#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    /// Keystone says the token is not valid (expired, revoked, unknown).
    #[error("the token is not valid")]
    InvalidToken,
    /// Keystone could not be reached or answered with an error.
    #[error("keystone is unavailable: {0}")]
    Unavailable(String),
    /// Keystone answered something that is not a token document.
    #[error("keystone sent an unexpected token document: {0}")]
    BadResponse(String),
}

/// A client for the Keystone calls the sidecar makes.
#[derive(Clone)]
pub struct Keystone {
    client: HttpClient,
    auth_url: String,
    timeout: Duration,
    cache: Arc<TokenCache>,
    /// The last service-credential token, reused until shortly before it expires.
    service_token: Arc<tokio::sync::Mutex<Option<ServiceToken>>>,
}

/// A service-credential token and until when it is reused.
struct ServiceToken {
    /// SHA-256 of the credentials it was issued for.
    creds: [u8; 32],
    token: Token,
    reuse_until: tokio::time::Instant,
}

/// How long before its expiry a service-credential token is replaced by a fresh one.
pub const SERVICE_TOKEN_MARGIN: Duration = Duration::from_secs(300);

impl Keystone {
    /// A client for Keystone at `auth_url`, remembering validated tokens for `cache_ttl`.
    pub fn new(client: HttpClient, auth_url: &str, timeout: Duration, cache_ttl: Duration) -> Self {
        Keystone {
            client,
            auth_url: auth_url.trim_end_matches('/').to_string(),
            timeout,
            cache: Arc::new(TokenCache::new(cache_ttl)),
            service_token: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Validates `token` (or finds it validated recently) and returns its identity and catalog.
    pub async fn validate(&self, token: &Token) -> Result<Identity, KeystoneError> {
        if let Some(identity) = self.cache.get(token) {
            return Ok(identity);
        }
        let started = tokio::time::Instant::now();
        let identity = self.validate_remote(token).await?;
        self.cache.insert(token, &identity);
        let ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(user_id = %identity.user_id, project_id = %identity.project_id, ms, "Token validated");
        Ok(identity)
    }

    async fn validate_remote(&self, token: &Token) -> Result<Identity, KeystoneError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("{}/auth/tokens", self.auth_url))
            .header("x-auth-token", token.expose())
            .header("x-subject-token", token.expose())
            .header(header::ACCEPT, "application/json")
            .body(empty())
            .map_err(|e| KeystoneError::Unavailable(e.to_string()))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| KeystoneError::Unavailable(e.to_string()))?;
            let status = response.status();
            let body = read_limited(response.into_body(), MAX_TOKEN_BODY)
                .await
                .map_err(|e| KeystoneError::Unavailable(e.to_string()))?;
            Ok::<_, KeystoneError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| KeystoneError::Unavailable("timed out".into()))??;
        match status {
            StatusCode::OK => parse_token(&body),
            StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => {
                Err(KeystoneError::InvalidToken)
            }
            other => Err(KeystoneError::Unavailable(format!("status {other}"))),
        }
    }
}

/// The sidecar's own Keystone user (`[service_credentials]`), used where no caller token is at
/// hand: reverting images of imports interrupted by a restart. A password or an application
/// credential (a bare token would expire while the sidecar runs). `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCredentials {
    pub method: AuthMethod,
}

impl ServiceCredentials {
    /// A password login; the user and project are named within their domains (by name).
    pub fn password(
        username: &str,
        password: &str,
        project_name: &str,
        user_domain_name: &str,
        project_domain_name: &str,
    ) -> Self {
        let named = |name: &str, domain: &str| Named::Name {
            name: name.to_string(),
            domain: Domain::Name(domain.to_string()),
        };
        ServiceCredentials {
            method: AuthMethod::Password {
                user: named(username, user_domain_name),
                password: Secret::new(password),
                project: named(project_name, project_domain_name),
            },
        }
    }

    /// A digest naming these credentials (the secret included) without holding them.
    fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let body = serde_json::to_vec(&self.method.body()).unwrap_or_default();
        Sha256::digest(body).into()
    }
}

impl Keystone {
    /// A project-scoped token for `creds` (password or application credential): the one issued
    /// last while it has more than [`SERVICE_TOKEN_MARGIN`] to live, else a new login (one at a
    /// time: concurrent callers wait for it and share its token).
    pub async fn service_token(&self, creds: &ServiceCredentials) -> Result<Token, KeystoneError> {
        let key = creds.fingerprint();
        let mut cached = self.service_token.lock().await;
        if let Some(entry) = cached.as_ref() {
            if entry.creds == key && entry.reuse_until > tokio::time::Instant::now() {
                return Ok(entry.token.clone());
            }
        }
        *cached = None;
        let (token, expires_at) = self.service_login(creds).await?;
        let left = expires_at
            .map(|at| at - OffsetDateTime::now_utc())
            .and_then(|left| Duration::try_from(left).ok())
            .unwrap_or(Duration::ZERO);
        if let Some(reuse) = left
            .checked_sub(SERVICE_TOKEN_MARGIN)
            .filter(|d| !d.is_zero())
        {
            *cached = Some(ServiceToken {
                creds: key,
                token: token.clone(),
                reuse_until: tokio::time::Instant::now() + reuse,
            });
        }
        Ok(token)
    }

    /// Forgets the reused service-credential token once a service refused it (Keystone revoked
    /// it early): the next [`Keystone::service_token`] logs in again. A token other than the
    /// one reused now (a newer login) is kept.
    pub async fn forget_service_token(&self, rejected: &Token) {
        let mut cached = self.service_token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|entry| &entry.token == rejected)
        {
            *cached = None;
        }
    }

    /// Authenticates (`POST /v3/auth/tokens`, project-scoped); returns the token and, when the
    /// answer names it, its expiry.
    async fn service_login(
        &self,
        creds: &ServiceCredentials,
    ) -> Result<(Token, Option<OffsetDateTime>), KeystoneError> {
        let login = login(
            &self.client,
            &self.auth_url,
            &creds.method,
            false,
            self.timeout,
        )
        .await
        .map_err(|error| match error {
            LoginError::Refused {
                status: StatusCode::UNAUTHORIZED,
                ..
            } => KeystoneError::InvalidToken,
            LoginError::Refused { status, .. } => {
                KeystoneError::Unavailable(format!("status {status}"))
            }
            LoginError::Timeout(_) => KeystoneError::Unavailable("timed out".into()),
            LoginError::NoToken => KeystoneError::BadResponse("no X-Subject-Token".into()),
            other => KeystoneError::Unavailable(other.to_string()),
        })?;
        // The expiry decides how long the token is reused; without it, it is not.
        let expires_at = login.identity.ok().and_then(|identity| identity.expires_at);
        Ok((login.token, expires_at))
    }
}

#[derive(Deserialize)]
struct TokenDoc {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    user: WithId,
    #[serde(default)]
    project: Option<WithId>,
    #[serde(default)]
    roles: Vec<NamedRole>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    catalog: Catalog,
}

#[derive(Deserialize)]
struct WithId {
    id: String,
}

#[derive(Deserialize)]
struct NamedRole {
    name: String,
}

/// Parses a Keystone v3 token document (the body of `GET /v3/auth/tokens`).
pub fn parse_token(body: &[u8]) -> Result<Identity, KeystoneError> {
    let doc: TokenDoc =
        serde_json::from_slice(body).map_err(|e| KeystoneError::BadResponse(e.to_string()))?;
    let expires_at = match doc.token.expires_at {
        Some(text) => Some(parse_time(&text).ok_or_else(|| {
            KeystoneError::BadResponse("expires_at is not an ISO 8601 time".into())
        })?),
        None => None,
    };
    Ok(Identity {
        user_id: doc.token.user.id,
        project_id: doc.token.project.map(|p| p.id).unwrap_or_default(),
        roles: doc.token.roles.into_iter().map(|r| r.name).collect(),
        expires_at,
        catalog: doc.token.catalog,
    })
}

/// Parses Keystone's `2026-11-25T13:00:00.000000Z` (fraction and zone optional).
fn parse_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!([
            {"type": "identity", "endpoints": [
                {"interface": "public", "region": "REGION1", "region_id": "REGION1", "url": "http://k/v3"}]},
            {"type": "image", "endpoints": [
                {"interface": "public", "region": "REGION1", "region_id": "REGION1", "url": "http://g1:9292/"},
                {"interface": "internal", "region": "REGION1", "region_id": "REGION1", "url": "http://g1i:9292/v2"},
                {"interface": "public", "region": "REGION2", "region_id": "REGION2", "url": "http://g2:9292"}]}
        ]))
        .unwrap()
    }

    /// Heartbeats and reverts of imports whose caller's token expired each ask for a service
    /// token: Keystone sees one login while that token has time left, and a new one after.
    #[cfg(feature = "tools")]
    #[tokio::test]
    async fn the_service_login_is_reused_until_shortly_before_expiry() {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let fake = crate::tools::sim::FakeKeystone::start(shutdown.clone())
            .await
            .unwrap();
        fake.add_user("gds-service", "pw", "service", &["admin"]);
        let keystone = Keystone::new(
            crate::http::client(Duration::from_secs(5)),
            &fake.url(),
            Duration::from_secs(10),
            Duration::from_secs(60),
        );
        let creds =
            ServiceCredentials::password("gds-service", "pw", "service", "Default", "Default");
        let mut tokens = Vec::new();
        for _ in 0..10 {
            tokens.push(keystone.service_token(&creds).await.unwrap());
        }
        let together = futures_join(&keystone, &creds).await;
        assert_eq!(fake.logins(), 1);
        assert!(tokens.iter().chain(&together).all(|t| t == &tokens[0]));

        // A token a service refused is forgotten; another one is not.
        let stranger = Token::parse(b"gAAAAAB-not-the-reused-one").unwrap();
        keystone.forget_service_token(&stranger).await;
        assert_eq!(keystone.service_token(&creds).await.unwrap(), tokens[0]);
        assert_eq!(fake.logins(), 1);
        keystone.forget_service_token(&tokens[0]).await;
        keystone.service_token(&creds).await.unwrap();
        assert_eq!(fake.logins(), 2);

        // Other credentials get their own login.
        let wrong =
            ServiceCredentials::password("gds-service", "not-pw", "service", "Default", "Default");
        assert!(keystone.service_token(&wrong).await.is_err());
        assert_eq!(fake.logins(), 3);

        // A token with less than the margin to live is not reused.
        fake.set_token_ttl(SERVICE_TOKEN_MARGIN / 2);
        keystone.service_token(&creds).await.unwrap();
        keystone.service_token(&creds).await.unwrap();
        assert_eq!(fake.logins(), 5);
        shutdown.cancel();
    }

    /// `[service_credentials]` with an application credential: a token of the credential's
    /// project, reused like a password's, renewed by logging in again once near its expiry.
    #[cfg(feature = "tools")]
    #[tokio::test]
    async fn service_credentials_may_be_an_application_credential() {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let fake = crate::tools::sim::FakeKeystone::start(shutdown.clone())
            .await
            .unwrap();
        fake.add_user("gds-service", "pw", "service", &["admin", "service"]);
        let id = fake.add_application_credential("gds-service", "sidecar", "ac-s3cret");
        let keystone = Keystone::new(
            crate::http::client(Duration::from_secs(5)),
            &fake.url(),
            Duration::from_secs(10),
            Duration::from_secs(60),
        );
        let creds = ServiceCredentials {
            method: AuthMethod::ApplicationCredential {
                credential: AppCredential::Id(id.clone()),
                secret: Secret::new("ac-s3cret"),
            },
        };
        let token = keystone.service_token(&creds).await.unwrap();
        let caller = fake.caller(token.expose()).unwrap();
        assert_eq!(caller.project_id.as_deref(), Some("service"));
        assert!(caller.is_admin());
        assert_eq!(keystone.service_token(&creds).await.unwrap(), token);
        assert_eq!(fake.logins(), 1);
        fake.set_token_ttl(SERVICE_TOKEN_MARGIN / 2);
        keystone.forget_service_token(&token).await;
        let renewed = keystone.service_token(&creds).await.unwrap();
        assert_ne!(renewed, token);
        assert_eq!(fake.logins(), 2);

        let wrong = ServiceCredentials {
            method: AuthMethod::ApplicationCredential {
                credential: AppCredential::Id(id),
                secret: Secret::new("not-the-s3cret"),
            },
        };
        let error = keystone.service_token(&wrong).await.unwrap_err();
        assert!(matches!(error, KeystoneError::InvalidToken), "{error}");
        assert!(!format!("{error} {error:?} {wrong:?}").contains("s3cret"));
        shutdown.cancel();
    }

    #[cfg(feature = "tools")]
    async fn futures_join(keystone: &Keystone, creds: &ServiceCredentials) -> Vec<Token> {
        let calls: Vec<_> = (0..5)
            .map(|_| {
                let (keystone, creds) = (keystone.clone(), creds.clone());
                tokio::spawn(async move { keystone.service_token(&creds).await.unwrap() })
            })
            .collect();
        let mut out = Vec::new();
        for call in calls {
            out.push(call.await.unwrap());
        }
        out
    }

    #[test]
    fn finds_endpoint_case_insensitively() {
        let c = catalog();
        assert_eq!(
            c.image_endpoint("region1", "public").unwrap(),
            "http://g1:9292"
        );
        assert_eq!(
            c.image_endpoint("REGION1", "internal").unwrap(),
            "http://g1i:9292"
        );
        assert_eq!(
            c.image_endpoint("REGION3", "public"),
            Err(CatalogError::UnknownRegion {
                region: "REGION3".into()
            })
        );
        assert!(matches!(
            c.image_endpoint("REGION2", "admin"),
            Err(CatalogError::NoInterface { .. })
        ));
    }

    #[test]
    fn endpoints_with_bad_ports_are_refused() {
        let c: Catalog =
            serde_json::from_value(serde_json::json!([{"type": "image", "endpoints": [
            {"interface": "public", "region_id": "R", "url": "http://10.0.1.1:929200/"},
            {"interface": "internal", "region_id": "R", "url": "http://[::1]:9292"}]}]))
            .unwrap();
        assert!(matches!(
            c.image_endpoint("R", "public"),
            Err(CatalogError::BadUrl { .. })
        ));
        assert_eq!(
            c.image_endpoint("R", "internal").unwrap(),
            "http://[::1]:9292"
        );
    }

    #[test]
    fn token_debug_is_redacted() {
        let token = Token::parse(b"gAAAAsecret").unwrap();
        assert!(!format!("{token:?}").contains("secret"));
        assert!(Token::parse(b"").is_none());
        assert!(Token::parse(b"a b").is_none());
    }

    #[test]
    fn parses_keystone_times() {
        assert!(parse_time("2026-11-25T13:00:00.000000Z").is_some());
        assert!(parse_time("2026-11-25T13:00:00").is_some());
        assert!(parse_time("tomorrow").is_none());
    }
}
