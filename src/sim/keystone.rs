//! A fake Keystone (identity v3) on loopback: token issue, validation and revocation with
//! Keystone 30's status codes, messages and token body, plus a service catalog the tests edit.
//!
//! The fake Glance validates tokens against the same in-process state, as keystonemiddleware
//! would against the real Keystone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::wire::{header, keystone_time, query_pairs, with_request_id};
use crate::http::{json_response, read_limited, status_response, BoxBody};

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
struct Token {
    user_id: String,
    user_name: String,
    project_id: Option<String>,
    roles: Vec<String>,
    methods: Vec<&'static str>,
    audit_id: String,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked: bool,
}

#[derive(Clone, Debug)]
struct User {
    id: String,
    name: String,
    password: String,
    project: String,
    roles: Vec<String>,
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

struct Inner {
    tokens: HashMap<String, Token>,
    users: Vec<User>,
    services: Vec<Service>,
    role_ids: HashMap<String, String>,
    token_ttl: Duration,
}

/// The fake Keystone's state, shared with every fake Glance of the cloud.
pub(crate) struct KeystoneState {
    addr: SocketAddr,
    inner: Mutex<Inner>,
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
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                users: Vec::new(),
                services: Vec::new(),
                role_ids: HashMap::new(),
                token_ttl: DEFAULT_TOKEN_TTL,
            }),
        });
        let served = state.clone();
        tokio::spawn(crate::http::serve(
            listener,
            move |req, _peer| handle(served.clone(), req),
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
        self.state.mint(user_id, user_id, Some(project_id), effective_roles(roles), "password")
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

    /// Adds or replaces the `image` endpoint of `region` for `interface` in the catalog.
    pub fn set_endpoint(&self, region: &str, interface: &str, url: &str) {
        self.state.set_service_endpoint("image", "glance", region, interface, url);
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
    pub fn set_service_endpoint(&self, kind: &str, name: &str, region: &str, interface: &str, url: &str) {
        self.state.set_service_endpoint(kind, name, region, interface, url);
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
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mint(&self, user_id: &str, user_name: &str, project: Option<&str>, roles: Vec<String>, method: &'static str) -> String {
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
            expires_at: now + ttl,
            revoked: false,
        };
        inner.tokens.insert(id.clone(), token);
        id
    }

    fn check(&self, token: &str) -> Result<Token, TokenError> {
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

    pub(crate) fn set_service_endpoint(&self, kind: &str, name: &str, region: &str, interface: &str, url: &str) {
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
        match endpoints.iter_mut().find(|e| e.region == region && e.interface == interface) {
            Some(e) => e.url = url.to_owned(),
            None => endpoints.push(Endpoint {
                id: hex_id(),
                interface: interface.to_owned(),
                region: region.to_owned(),
                url: url.to_owned(),
            }),
        }
    }

    fn catalog_json(&self) -> Value {
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
    fn token_body(&self, t: &Token, include_catalog: bool) -> Value {
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
        json!({ "token": body })
    }

    fn version_doc(&self) -> Value {
        json!({"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
               "links": [{"rel": "self", "href": format!("http://{}/v3/", self.addr)}],
               "media-types": [{"base": "application/json",
                                "type": "application/vnd.openstack.identity-v3+json"}]})
    }
}

// === HTTP ===

/// Keystone's error body: `{"error": {"code", "message", "title"}}`.
fn ks_error(state: &KeystoneState, status: StatusCode, message: &str) -> Response<BoxBody> {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut resp = json_response(
        status,
        &json!({"error": {"code": status.as_u16(), "message": message, "title": title}}),
    );
    if status == StatusCode::UNAUTHORIZED {
        if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"http://{}\"", state.addr)) {
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
        }
    }
    resp
}

const UNAUTHORIZED: &str = "The request you have made requires authentication.";

async fn handle(state: Arc<KeystoneState>, req: Request<Incoming>) -> Response<BoxBody> {
    with_request_id(route(&state, req).await)
}

async fn route(state: &KeystoneState, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "") => json_response(
            StatusCode::MULTIPLE_CHOICES,
            &json!({"versions": {"values": [state.version_doc()]}}),
        ),
        (Method::GET, "/v3") => json_response(StatusCode::OK, &json!({"version": state.version_doc()})),
        (Method::GET | Method::HEAD, "/v3/auth/tokens") => validate(state, &req),
        (Method::DELETE, "/v3/auth/tokens") => revoke(state, &req),
        (Method::POST, "/v3/auth/tokens") => issue(state, req).await,
        (Method::GET, "/v3/auth/catalog") => match header(req.headers(), "x-auth-token").map(|t| state.check(t)) {
            Some(Ok(_)) => json_response(
                StatusCode::OK,
                &json!({"catalog": state.catalog_json(),
                        "links": {"self": format!("http://{}/v3/auth/catalog", state.addr)}}),
            ),
            _ => ks_error(state, StatusCode::UNAUTHORIZED, UNAUTHORIZED),
        },
        _ => ks_error(state, StatusCode::NOT_FOUND, "The resource could not be found."),
    }
}

/// Checks `X-Auth-Token`, then `X-Subject-Token`: Keystone's 401, its three 404 messages, and
/// the `identity:validate_token` policy (admin, service, or the token's own user).
fn subject(state: &KeystoneState, req: &Request<Incoming>) -> Result<(String, Token), Response<BoxBody>> {
    let auth = header(req.headers(), "x-auth-token")
        .and_then(|t| state.check(t).ok())
        .ok_or_else(|| ks_error(state, StatusCode::UNAUTHORIZED, UNAUTHORIZED))?;
    let Some(id) = header(req.headers(), "x-subject-token").filter(|t| !t.is_empty()) else {
        return Err(ks_error(state, StatusCode::NOT_FOUND, "No token in the request"));
    };
    let token = state.check(id).map_err(|e| {
        let message = match e {
            TokenError::Unknown => "Could not recognize Fernet token",
            TokenError::Expired | TokenError::Revoked => "Failed to validate token",
        };
        ks_error(state, StatusCode::NOT_FOUND, message)
    })?;
    let allowed = auth.roles.iter().any(|r| r == "admin" || r == "service") || auth.user_id == token.user_id;
    if !allowed {
        return Err(ks_error(
            state,
            StatusCode::FORBIDDEN,
            "You are not authorized to perform the requested action: identity:validate_token.",
        ));
    }
    Ok((id.to_owned(), token))
}

fn validate(state: &KeystoneState, req: &Request<Incoming>) -> Response<BoxBody> {
    let (id, token) = match subject(state, req) {
        Ok(pair) => pair,
        Err(resp) => return resp,
    };
    let include_catalog = !query_pairs(req.uri().query()).iter().any(|(k, _)| k == "nocatalog");
    let mut resp = if req.method() == Method::HEAD {
        status_response(StatusCode::OK)
    } else {
        json_response(StatusCode::OK, &state.token_body(&token, include_catalog))
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}

fn revoke(state: &KeystoneState, req: &Request<Incoming>) -> Response<BoxBody> {
    match subject(state, req) {
        Ok((id, _)) => {
            if let Some(t) = state.lock().tokens.get_mut(&id) {
                t.revoked = true;
            }
            status_response(StatusCode::NO_CONTENT)
        }
        Err(resp) => resp,
    }
}

/// `POST /v3/auth/tokens` with the `password` or `token` method and an optional project scope.
async fn issue(state: &KeystoneState, req: Request<Incoming>) -> Response<BoxBody> {
    let include_catalog = !query_pairs(req.uri().query()).iter().any(|(k, _)| k == "nocatalog");
    let body = match read_limited(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return ks_error(state, StatusCode::BAD_REQUEST, "Request body too large or unreadable."),
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return ks_error(state, StatusCode::BAD_REQUEST, "Malformed JSON in request body.");
    };
    let identity = &doc["auth"]["identity"];
    if !identity.is_object() {
        return ks_error(
            state,
            StatusCode::BAD_REQUEST,
            "Expecting to find identity in auth. The server could not comply with the request since \
             it is either malformed or otherwise incorrect. The client is assumed to be in error.",
        );
    }
    let scope = &doc["auth"]["scope"]["project"];
    let scope_project = scope["id"].as_str().or_else(|| scope["name"].as_str());
    let methods = identity["methods"].as_array().cloned().unwrap_or_default();
    let minted = if methods.iter().any(|m| m == "password") {
        let user = &identity["password"]["user"];
        let found = state.lock().users.iter().find(|u| {
            (user["id"].as_str() == Some(u.id.as_str()) || user["name"].as_str() == Some(u.name.as_str()))
                && user["password"].as_str() == Some(u.password.as_str())
        }).cloned();
        found.filter(|u| match scope_project {
            Some(p) => p == u.project,
            None => true,
        }).map(|u| {
            state.mint(&u.id, &u.name, Some(&u.project), u.roles.clone(), "password")
        })
    } else if methods.iter().any(|m| m == "token") {
        identity["token"]["id"]
            .as_str()
            .and_then(|t| state.check(t).ok())
            .and_then(|t| match scope_project {
                None => Some(state.mint(&t.user_id, &t.user_name, None, Vec::new(), "token")),
                Some(p) if t.project_id.as_deref() == Some(p) => {
                    Some(state.mint(&t.user_id, &t.user_name, Some(p), t.roles.clone(), "token"))
                }
                Some(_) => None,
            })
    } else {
        None
    };
    let Some(id) = minted else {
        return ks_error(state, StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    };
    let Ok(token) = state.check(&id) else {
        return ks_error(state, StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    };
    let mut resp = json_response(StatusCode::CREATED, &state.token_body(&token, include_catalog));
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}
