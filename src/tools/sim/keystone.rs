//! A fake Keystone (identity v3) on loopback: token issue, validation and revocation with
//! Keystone 30's status codes, messages and token body, plus a service catalog the tests edit.
//!
//! The fake Glance validates tokens against the same in-process state, as keystonemiddleware
//! would against the real Keystone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::wire::keystone_time;

/// Lifetime of issued tokens unless changed with [`FakeKeystone::set_token_ttl`] (Keystone's
/// `[token] expiration` default).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The role implications Keystone's bootstrap creates: admin implies member implies reader.
const IMPLIED: [(&str, &str); 2] = [("admin", "member"), ("member", "reader")];

/// Who a valid token belongs to, as keystonemiddleware tells the service behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user's id.
    pub user_id: String,
    /// The scoped project's id (`None` for an unscoped token).
    pub project_id: Option<String>,
    /// Effective role names (implied roles included, as in the token body).
    pub roles: Vec<String>,
}

impl Caller {
    /// Whether the token carries role `name`.
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r == name)
    }

    /// Whether the caller is a cloud admin (Glance's `context_is_admin`).
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }
}

/// Why a token is not valid; each maps to Keystone's own 404 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenError {
    Unknown,
    Expired,
    Revoked,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) user_id: String,
    pub(super) user_name: String,
    pub(super) project_id: Option<String>,
    pub(super) roles: Vec<String>,
    pub(super) methods: Vec<&'static str>,
    pub(super) audit_id: String,
    pub(super) issued_at: OffsetDateTime,
    pub(super) expires_at: OffsetDateTime,
    pub(super) revoked: bool,
    /// The application credential the token was issued for (its scope cannot change).
    pub(super) app_cred: Option<(String, String)>,
}

#[derive(Clone, Debug)]
pub(super) struct User {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) password: String,
    pub(super) project: String,
    pub(super) roles: Vec<String>,
}

/// An application credential: Keystone scopes its tokens to `project` with `roles`.
#[derive(Clone, Debug)]
pub(super) struct AppCred {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) secret: String,
    pub(super) user_id: String,
}

#[derive(Clone, Debug)]
struct Endpoint {
    id: String,
    interface: String,
    region: String,
    url: String,
}

#[derive(Clone, Debug)]
struct Service {
    id: String,
    kind: String,
    name: String,
    endpoints: Vec<Endpoint>,
}

pub(super) struct Inner {
    pub(super) tokens: HashMap<String, Token>,
    pub(super) users: Vec<User>,
    pub(super) app_creds: Vec<AppCred>,
    services: Vec<Service>,
    role_ids: HashMap<String, String>,
    token_ttl: Duration,
}

/// The fake Keystone's state, shared with every fake Glance of the cloud.
pub(crate) struct KeystoneState {
    pub(super) addr: SocketAddr,
    inner: Mutex<Inner>,
    /// `POST /v3/auth/tokens` requests received (logins).
    pub(super) logins: std::sync::atomic::AtomicU64,
    /// Token validations (`GET`/`HEAD /v3/auth/tokens`) answer only while no one holds this
    /// for writing (see [`FakeKeystone::hold_validations`]).
    pub(super) validations: Arc<tokio::sync::RwLock<()>>,
}

/// A running fake Keystone; cheap to clone (all clones share state).
#[derive(Clone)]
pub struct FakeKeystone {
    pub(crate) state: Arc<KeystoneState>,
}

fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn effective_roles(roles: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    let mut i = 0;
    while i < out.len() {
        for (prior, implied) in IMPLIED {
            if out[i] == prior && !out.iter().any(|r| r == implied) {
                out.push(implied.to_owned());
            }
        }
        i += 1;
    }
    out
}

// === impl FakeKeystone ===

impl FakeKeystone {
    /// Binds 127.0.0.1:0 and serves until `shutdown` fires; the catalog starts empty.
    pub async fn start(shutdown: CancellationToken) -> std::io::Result<FakeKeystone> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let state = Arc::new(KeystoneState {
            addr: listener.local_addr()?,
            logins: std::sync::atomic::AtomicU64::new(0),
            validations: Arc::new(tokio::sync::RwLock::new(())),
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                users: Vec::new(),
                app_creds: Vec::new(),
                services: Vec::new(),
                role_ids: HashMap::new(),
                token_ttl: DEFAULT_TOKEN_TTL,
            }),
        });
        let served = state.clone();
        tokio::spawn(crate::http::serve(
            listener,
            None,
            move |req, _peer| super::keystone_api::handle(served.clone(), req),
            shutdown,
        ));
        Ok(FakeKeystone { state })
    }

    /// The identity v3 URL, `http://127.0.0.1:PORT/v3`, as clients put in `auth_url`.
    pub fn url(&self) -> String {
        format!("http://{}/v3", self.state.addr)
    }

    /// Issues a project-scoped token for `user_id` (also used as the user name) in `project_id`
    /// (also the project name) with `roles` (implied roles added, as Keystone does).
    pub fn issue_token(&self, user_id: &str, project_id: &str, roles: &[&str]) -> String {
        self.state.mint(
            user_id,
            user_id,
            Some(project_id),
            effective_roles(roles),
            "password",
        )
    }

    /// Revokes `token`: validation then fails as Keystone's does for a revoked token.
    pub fn revoke_token(&self, token: &str) {
        if let Some(t) = self.state.lock().tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Makes `token` expired now (for "token expired mid-import" tests).
    pub fn expire_token(&self, token: &str) {
        if let Some(t) = self.state.lock().tokens.get_mut(token) {
            t.expires_at = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        }
    }

    /// Sets the lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.state.lock().token_ttl = ttl;
    }

    /// Adds a user who can authenticate with `POST /v3/auth/tokens` (password method) and holds
    /// `roles` on `project` (its default project); returns the user id.
    pub fn add_user(&self, name: &str, password: &str, project: &str, roles: &[&str]) -> String {
        let id = hex_id();
        self.state.lock().users.push(User {
            id: id.clone(),
            name: name.to_owned(),
            password: password.to_owned(),
            project: project.to_owned(),
            roles: effective_roles(roles),
        });
        id
    }

    /// Adds an application credential of user `user_name` (it takes the user's project and roles,
    /// as `openstack application credential create` does by default); returns its id.
    pub fn add_application_credential(&self, user_name: &str, name: &str, secret: &str) -> String {
        let id = hex_id();
        let mut inner = self.state.lock();
        let user_id = inner
            .users
            .iter()
            .find(|u| u.name == user_name)
            .map(|u| u.id.clone())
            .unwrap_or_default();
        inner.app_creds.push(AppCred {
            id: id.clone(),
            name: name.to_owned(),
            secret: secret.to_owned(),
            user_id,
        });
        id
    }

    /// How many `POST /v3/auth/tokens` (logins) this Keystone has received.
    pub fn logins(&self) -> u64 {
        self.state.logins.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Holds every token validation (`GET`/`HEAD /v3/auth/tokens`) unanswered until the
    /// returned guard is dropped, as a slow Keystone would; the fake Glances, which check
    /// tokens without HTTP, are not held.
    pub async fn hold_validations(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.state.validations.clone().write_owned().await
    }

    /// Adds or replaces the `image` endpoint of `region` for `interface` in the catalog.
    pub fn set_endpoint(&self, region: &str, interface: &str, url: &str) {
        self.state
            .set_service_endpoint("image", "glance", region, interface, url);
    }

    /// Removes the `image` endpoint of `region` for `interface` from the catalog.
    pub fn remove_endpoint(&self, region: &str, interface: &str) {
        let mut inner = self.state.lock();
        for service in inner.services.iter_mut().filter(|s| s.kind == "image") {
            service
                .endpoints
                .retain(|e| !(e.region == region && e.interface == interface));
        }
    }

    /// Adds or replaces an endpoint of any service type (e.g. `identity`) in the catalog.
    pub fn set_service_endpoint(
        &self,
        kind: &str,
        name: &str,
        region: &str,
        interface: &str,
        url: &str,
    ) {
        self.state
            .set_service_endpoint(kind, name, region, interface, url);
    }

    /// The v3 catalog exactly as token bodies carry it.
    pub fn catalog(&self) -> Value {
        self.state.catalog_json()
    }

    /// Who `token` belongs to, if it is valid now (what keystonemiddleware would conclude).
    pub fn caller(&self, token: &str) -> Option<Caller> {
        self.state.caller(token)
    }
}

// === impl KeystoneState ===

impl KeystoneState {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn mint(
        &self,
        user_id: &str,
        user_name: &str,
        project: Option<&str>,
        roles: Vec<String>,
        method: &'static str,
    ) -> String {
        self.mint_with(user_id, user_name, project, roles, method, None, None)
    }

    /// As [`KeystoneState::mint`], with a given expiry (a token-method login keeps the
    /// original's) and the application credential it is issued for.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mint_with(
        &self,
        user_id: &str,
        user_name: &str,
        project: Option<&str>,
        roles: Vec<String>,
        method: &'static str,
        expires_at: Option<OffsetDateTime>,
        app_cred: Option<(String, String)>,
    ) -> String {
        let id = format!("gAAAAAB{}{}", hex_id(), hex_id());
        let mut inner = self.lock();
        let now = OffsetDateTime::now_utc();
        let ttl = time::Duration::try_from(inner.token_ttl).unwrap_or(time::Duration::HOUR);
        for role in &roles {
            inner.role_ids.entry(role.clone()).or_insert_with(hex_id);
        }
        let token = Token {
            user_id: user_id.to_owned(),
            user_name: user_name.to_owned(),
            project_id: project.map(str::to_owned),
            roles,
            methods: vec![method],
            audit_id: uuid::Uuid::new_v4().simple().to_string()[..22].to_owned(),
            issued_at: now,
            expires_at: expires_at.unwrap_or(now + ttl),
            revoked: false,
            app_cred,
        };
        inner.tokens.insert(id.clone(), token);
        id
    }

    pub(super) fn check(&self, token: &str) -> Result<Token, TokenError> {
        let inner = self.lock();
        let t = inner.tokens.get(token).ok_or(TokenError::Unknown)?;
        if t.expires_at <= OffsetDateTime::now_utc() {
            Err(TokenError::Expired)
        } else if t.revoked {
            Err(TokenError::Revoked)
        } else {
            Ok(t.clone())
        }
    }

    /// Who `token` belongs to, if valid now.
    pub(crate) fn caller(&self, token: &str) -> Option<Caller> {
        self.check(token).ok().map(|t| Caller {
            user_id: t.user_id,
            project_id: t.project_id,
            roles: t.roles,
        })
    }

    pub(crate) fn set_service_endpoint(
        &self,
        kind: &str,
        name: &str,
        region: &str,
        interface: &str,
        url: &str,
    ) {
        let mut inner = self.lock();
        let idx = match inner.services.iter().position(|s| s.kind == kind) {
            Some(i) => i,
            None => {
                inner.services.push(Service {
                    id: hex_id(),
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    endpoints: Vec::new(),
                });
                inner.services.len() - 1
            }
        };
        let endpoints = &mut inner.services[idx].endpoints;
        match endpoints
            .iter_mut()
            .find(|e| e.region == region && e.interface == interface)
        {
            Some(e) => e.url = url.to_owned(),
            None => endpoints.push(Endpoint {
                id: hex_id(),
                interface: interface.to_owned(),
                region: region.to_owned(),
                url: url.to_owned(),
            }),
        }
    }

    pub(super) fn catalog_json(&self) -> Value {
        let inner = self.lock();
        Value::Array(
            inner
                .services
                .iter()
                .map(|s| {
                    let endpoints: Vec<Value> = s
                        .endpoints
                        .iter()
                        .map(|e| {
                            json!({"id": e.id, "interface": e.interface, "region_id": e.region,
                                   "url": e.url, "region": e.region})
                        })
                        .collect();
                    json!({"endpoints": endpoints, "id": s.id, "type": s.kind, "name": s.name})
                })
                .collect(),
        )
    }

    /// The token body Keystone renders (`render_token_response_from_model`).
    pub(super) fn token_body(&self, t: &Token, include_catalog: bool) -> Value {
        let domain = json!({"id": "default", "name": "Default"});
        let mut body = json!({
            "methods": t.methods,
            "user": {"domain": domain, "id": t.user_id, "name": t.user_name, "password_expires_at": null},
            "audit_ids": [t.audit_id],
            "expires_at": keystone_time(t.expires_at),
            "issued_at": keystone_time(t.issued_at),
        });
        if let Some(project) = &t.project_id {
            let role_ids = self.lock().role_ids.clone();
            let roles: Vec<Value> = t
                .roles
                .iter()
                .map(|r| json!({"id": role_ids.get(r).cloned().unwrap_or_default(), "name": r}))
                .collect();
            body["project"] = json!({"domain": domain, "id": project, "name": project});
            body["is_domain"] = json!(false);
            body["roles"] = Value::Array(roles);
            if include_catalog {
                body["catalog"] = self.catalog_json();
            }
        }
        if let Some((id, name)) = &t.app_cred {
            body["application_credential"] = json!({"id": id, "name": name, "restricted": true});
        }
        json!({ "token": body })
    }

    pub(super) fn version_doc(&self) -> Value {
        json!({"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
               "links": [{"rel": "self", "href": format!("http://{}/v3/", self.addr)}],
               "media-types": [{"base": "application/json",
                                "type": "application/vnd.openstack.identity-v3+json"}]})
    }
}
