//! The fake Keystone's HTTP surface: routing, Keystone's error body, and the token endpoints
//! (`GET`/`HEAD`/`DELETE`/`POST /v3/auth/tokens`, `GET /v3/auth/catalog`, version documents).

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::keystone::{KeystoneState, Token, TokenError};
use super::wire::{header, query_pairs, with_request_id};
use crate::http::{json_response, read_limited, status_response, BoxBody};

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

pub(super) async fn handle(state: Arc<KeystoneState>, req: Request<Incoming>) -> Response<BoxBody> {
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
        (Method::GET, "/v3") => {
            json_response(StatusCode::OK, &json!({"version": state.version_doc()}))
        }
        (Method::GET | Method::HEAD, "/v3/auth/tokens") => {
            let _answering = state.validations.read().await;
            validate(state, &req)
        }
        (Method::DELETE, "/v3/auth/tokens") => revoke(state, &req),
        (Method::POST, "/v3/auth/tokens") => issue(state, req).await,
        (Method::GET, "/v3/auth/catalog") => {
            match header(req.headers(), "x-auth-token").map(|t| state.check(t)) {
                Some(Ok(_)) => json_response(
                    StatusCode::OK,
                    &json!({"catalog": state.catalog_json(),
                        "links": {"self": format!("http://{}/v3/auth/catalog", state.addr)}}),
                ),
                _ => ks_error(state, StatusCode::UNAUTHORIZED, UNAUTHORIZED),
            }
        }
        _ => ks_error(
            state,
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        ),
    }
}

/// Checks `X-Auth-Token`, then `X-Subject-Token`: Keystone's 401, its three 404 messages, and
/// the `identity:validate_token` policy (admin, service, or the token's own user).
fn subject(
    state: &KeystoneState,
    req: &Request<Incoming>,
) -> Result<(String, Token), (StatusCode, &'static str)> {
    let auth = header(req.headers(), "x-auth-token")
        .and_then(|t| state.check(t).ok())
        .ok_or((StatusCode::UNAUTHORIZED, UNAUTHORIZED))?;
    let Some(id) = header(req.headers(), "x-subject-token").filter(|t| !t.is_empty()) else {
        return Err((StatusCode::NOT_FOUND, "No token in the request"));
    };
    let token = state.check(id).map_err(|e| match e {
        TokenError::Unknown => (StatusCode::NOT_FOUND, "Could not recognize Fernet token"),
        TokenError::Expired | TokenError::Revoked => {
            (StatusCode::NOT_FOUND, "Failed to validate token")
        }
    })?;
    let allowed =
        auth.roles.iter().any(|r| r == "admin" || r == "service") || auth.user_id == token.user_id;
    if !allowed {
        return Err((
            StatusCode::FORBIDDEN,
            "You are not authorized to perform the requested action: identity:validate_token.",
        ));
    }
    Ok((id.to_owned(), token))
}

fn validate(state: &KeystoneState, req: &Request<Incoming>) -> Response<BoxBody> {
    let (id, token) = match subject(state, req) {
        Ok(pair) => pair,
        Err((status, message)) => return ks_error(state, status, message),
    };
    let include_catalog = !query_pairs(req.uri().query())
        .iter()
        .any(|(k, _)| k == "nocatalog");
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
        Err((status, message)) => ks_error(state, status, message),
    }
}

/// The project a scope names (`{"project": {"id"}}` or `{"project": {"name"}}`).
fn scope_project(scope: &Value) -> Option<&str> {
    let project = &scope["project"];
    project["id"].as_str().or_else(|| project["name"].as_str())
}

/// The `password` method: a user by id or name, scoped to its project (the default one when the
/// request names none).
fn password_login(state: &KeystoneState, user: &Value, scope: Option<&str>) -> Option<String> {
    let found = state
        .lock()
        .users
        .iter()
        .find(|u| {
            (user["id"].as_str() == Some(u.id.as_str())
                || user["name"].as_str() == Some(u.name.as_str()))
                && user["password"].as_str() == Some(u.password.as_str())
        })
        .cloned()?;
    if scope.is_some_and(|p| p != found.project) {
        return None;
    }
    Some(state.mint(
        &found.id,
        &found.name,
        Some(&found.project),
        found.roles.clone(),
        "password",
    ))
}

/// The `application_credential` method: by id, or by name with its user (id, or name and
/// domain); the token is scoped to the credential's project with the credential's roles.
fn app_cred_login(state: &KeystoneState, given: &Value) -> Option<String> {
    let (cred, user) = {
        let inner = state.lock();
        let cred = inner
            .app_creds
            .iter()
            .find(|c| {
                let owner = inner.users.iter().find(|u| u.id == c.user_id);
                let by_user = owner.is_some_and(|u| {
                    given["user"]["id"].as_str() == Some(u.id.as_str())
                        || (given["user"]["name"].as_str() == Some(u.name.as_str())
                            && given["user"]["domain"].is_object())
                });
                let named = given["id"].as_str() == Some(c.id.as_str())
                    || (given["name"].as_str() == Some(c.name.as_str()) && by_user);
                named && given["secret"].as_str() == Some(c.secret.as_str())
            })
            .cloned()?;
        let user = inner.users.iter().find(|u| u.id == cred.user_id).cloned()?;
        (cred, user)
    };
    Some(state.mint_with(
        &user.id,
        &user.name,
        Some(&user.project),
        user.roles.clone(),
        "application_credential",
        None,
        Some((cred.id, cred.name)),
    ))
}

/// The `token` method: a new token for the same user, expiring when the original does, scoped
/// to the requested project, else the user's default project. A token of an application
/// credential cannot be rescoped.
fn token_login(state: &KeystoneState, given: &Value, scope: Option<&str>) -> Option<String> {
    let original = given["id"].as_str().and_then(|t| state.check(t).ok())?;
    let default_project = state
        .lock()
        .users
        .iter()
        .find(|u| u.id == original.user_id)
        .map(|u| u.project.clone())
        .or_else(|| original.project_id.clone());
    let project = match scope {
        Some(p) if original.project_id.as_deref() == Some(p) => Some(p.to_owned()),
        Some(_) => return None,
        None if original.app_cred.is_some() => original.project_id.clone(),
        None => default_project,
    };
    let roles = match &project {
        Some(_) => original.roles.clone(),
        None => Vec::new(),
    };
    Some(state.mint_with(
        &original.user_id,
        &original.user_name,
        project.as_deref(),
        roles,
        "token",
        Some(original.expires_at),
        original.app_cred.clone(),
    ))
}

/// `POST /v3/auth/tokens` with the `password`, `application_credential` or `token` method and an
/// optional project scope.
async fn issue(state: &KeystoneState, req: Request<Incoming>) -> Response<BoxBody> {
    state
        .logins
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let include_catalog = !query_pairs(req.uri().query())
        .iter()
        .any(|(k, _)| k == "nocatalog");
    let body = match read_limited(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return ks_error(
                state,
                StatusCode::BAD_REQUEST,
                "Request body too large or unreadable.",
            )
        }
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return ks_error(
            state,
            StatusCode::BAD_REQUEST,
            "Malformed JSON in request body.",
        );
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
    let methods = identity["methods"].as_array().cloned().unwrap_or_default();
    let has = |name: &str| methods.iter().any(|m| m == name);
    let scope = &doc["auth"]["scope"];
    let minted = if has("application_credential") {
        // Keystone: "Application credentials cannot request a scope." (a 401).
        match scope.is_null() {
            true => app_cred_login(state, &identity["application_credential"]),
            false => None,
        }
    } else if has("password") {
        password_login(state, &identity["password"]["user"], scope_project(scope))
    } else if has("token") {
        token_login(state, &identity["token"], scope_project(scope))
    } else {
        None
    };
    let Some(id) = minted else {
        return ks_error(state, StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    };
    let Ok(token) = state.check(&id) else {
        return ks_error(state, StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    };
    let mut resp = json_response(
        StatusCode::CREATED,
        &state.token_body(&token, include_catalog),
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}
