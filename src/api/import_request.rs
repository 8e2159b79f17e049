//! `POST /v2/images/{id}/import`: glance-download requests are checked here, in upstream Glance's
//! order and with its codes and messages, then answered `202` while the import runs as a task.
//! Requests for any other method are passed through with their body bytes as received.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use crate::claim;
use crate::config::SinkKind;
use crate::glance::{GlanceError, GlanceStatus, Image, ImageId};
use crate::http::{full, read_limited, status_response, BoxBody, ReadError, REQUEST_ID};
use crate::import::ImportRequest;
use crate::keystone::{Identity, KeystoneError, Token};
use crate::metrics::Metrics;
use crate::stores::{self, StorePlan};
use crate::tasks::{ImportLock, NewTask};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::{error::ApiError, proxy, App, ProjectSlot};

/// Request header choosing the store sink for one import (`glance-upload`, `glance-stage`, `s3`).
///
/// `glance-upload` and `glance-stage` write through the fronted Glance with the caller's own
/// rights. `s3` does not: it writes the bucket with the sidecar's S3 credentials and registers the
/// location with the caller's token plus the sidecar's service token (`X-Service-Token`), which
/// Glance needs for a non-http location. So `s3` is offered only when an operator configured
/// `[s3]`, and the caller must still be allowed to import into the image with their own token
/// (the checks in [`handle`] and the import lock run with it before any byte moves).
pub(super) const SINK_HEADER: &str = "x-glance-download-sink";

/// Largest import request body accepted (DESIGN §2).
pub const MAX_IMPORT_BODY: usize = 64 * 1024;

/// An import body, classified.
#[derive(Debug, PartialEq)]
pub enum Classified {
    /// Not a glance-download request (any other method, or not JSON at all): pass it on.
    NotOurs,
    /// A glance-download request; its fields are checked later, in upstream's order.
    GlanceDownload(Map<String, Value>),
    /// A glance-download request to Glance's JSON reader (Python's `json`) that this service
    /// cannot represent: `NaN`/`Infinity`, numbers out of range, lone surrogates, or nesting
    /// deeper than 128. Refused (400), never passed on.
    Unreadable,
}

/// Decides whether the body is a glance-download import request, as upstream Glance decides:
/// the body read by Python's `json` (the last of duplicate keys wins), then
/// `body['method']['name']`, case-sensitive.
pub fn classify(body: &[u8]) -> Classified {
    match serde_json::from_slice::<Value>(body) {
        // `serde_json` keeps the last of duplicate keys, as a Python `dict` does.
        Ok(Value::Object(map)) => {
            let name = map.get("method").and_then(|m| m.get("name"));
            if name.and_then(Value::as_str) == Some(super::discovery::METHOD) {
                Classified::GlanceDownload(map)
            } else {
                Classified::NotOurs
            }
        }
        Ok(_) => Classified::NotOurs,
        Err(_) => match super::pyjson::method_name(body) {
            super::pyjson::MethodName::Text(name)
                if name == super::discovery::METHOD.as_bytes() =>
            {
                Classified::Unreadable
            }
            _ => Classified::NotOurs,
        },
    }
}

/// The answer to an [`Classified::Unreadable`] body.
pub(super) const UNREADABLE_BODY: &str = "The glance-download request body uses JSON this service \
     does not accept (NaN, Infinity, a number out of range, a lone surrogate, or nesting deeper \
     than 128 levels).";

/// The fields of a glance-download body, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    pub remote_image_id: ImageId,
    pub region: String,
    pub interface: String,
    pub stores: Vec<String>,
    /// The body as the task records it: only the glance-download fields, bounded, with
    /// `glance_service_interface` defaulted to `public`.
    pub recorded: Value,
}

/// Checks the body's flags (upstream's deserializer checks, 400).
pub fn check_flags(body: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, message) in [
        (
            "all_stores_must_succeed",
            "'all_stores_must_succeed' must be boolean value only",
        ),
        ("all_stores", "'all_stores' must be boolean value only"),
    ] {
        if body.get(key).is_some_and(|v| !v.is_boolean()) {
            return Err(ApiError::BadRequest(message.into()));
        }
    }
    Ok(())
}

/// Checks the glance-download keys (upstream's controller checks, 400), after the image checks.
pub fn check_fields(body: &Map<String, Value>) -> Result<Fields, ApiError> {
    let bad = |m: &str| ApiError::BadRequest(m.to_string());
    let method = body
        .get("method")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("Import request requires a 'method' field."))?;
    let region = method
        .get("glance_region")
        .ok_or_else(|| bad("'glance_region' needs to be set for glance-download import method"))?;
    let remote = method.get("glance_image_id").ok_or_else(|| {
        bad("'glance_image_id' needs to be set for glance-download import method")
    })?;
    let remote_text = remote.as_str().unwrap_or_default();
    let remote_image_id = ImageId::parse(remote_text).ok_or_else(|| {
        let shown: String = match remote {
            Value::String(s) => s.chars().take(64).collect(),
            other => other.to_string().chars().take(64).collect(),
        };
        bad(&format!(
            "Remote image id does not look like a UUID: {shown}"
        ))
    })?;
    let region = region
        .as_str()
        .filter(|r| !r.is_empty() && r.len() <= 255)
        .ok_or_else(|| bad("'glance_region' must be a non-empty string"))?
        .to_string();
    let interface = match method.get("glance_service_interface") {
        None => "public".to_string(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
        Some(_) => return Err(bad("'glance_service_interface' must be a non-empty string")),
    };
    let stores = match body.get("stores") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("'stores' must be a list of store identifiers"))?,
        Some(_) => return Err(bad("'stores' must be a list of store identifiers")),
    };
    // Only the known fields, bounded: the rest of a body of up to 64 KiB is never kept.
    let recorded = crate::tasks::import_request(
        remote_text,
        &region,
        &interface,
        body.get("stores")
            .is_some_and(Value::is_array)
            .then_some(&stores[..]),
        body.get("all_stores").and_then(Value::as_bool),
        body.get("all_stores_must_succeed").and_then(Value::as_bool),
    );
    Ok(Fields {
        remote_image_id,
        region,
        interface,
        stores,
        recorded,
    })
}

/// Handles the import action; returns the response to send.
///
/// The checks run in upstream Glance's order, with its codes (DESIGN §2); the first that fails
/// answers:
/// 1. the body, read within the client timeout (408) and [`MAX_IMPORT_BODY`] (413, 400), then
///    classified: a request for another method is passed through, unreadable JSON is 400;
/// 2. the token: present (401), then valid (401);
/// 3. the body's flags (400), then the [`SINK_HEADER`] (400);
/// 4. the target image: exists for this caller (404), once an import of it that has just ended
///    here has let go; `queued` (409); `container_format`, then `disk_format` set (409);
/// 5. the glance-download fields (400);
/// 6. the caller may modify the image (403);
/// 7. no import running for this image (409);
/// 8. the stores to write (400, 409);
/// 9. the project's bound on running imports, then the node's (429);
/// 10. the task recorded here (409 if one is running here);
///
/// then `202 Accepted` while the import runs as a task. The target image and its stores (for
/// checks 4 and 8; the stores list as read within `stores::cache::TTL`, since it is the same for
/// every caller) are read while Keystone validates the token (check 2). Nothing else remote is
/// awaited (DESIGN §2): the task claims the image where every instance looks as its first step
/// (`Importer::claimed_target`), so a claim another instance already holds answers 409 here
/// (check 7), and one made at the same moment fails this task instead.
pub(super) async fn handle(
    app: &Arc<App>,
    request: Request<Incoming>,
    image_id: &str,
) -> Result<Response<BoxBody>, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(app, body).await?;
    let body = match classify(&bytes) {
        Classified::NotOurs => {
            return proxy::send(app, Request::from_parts(parts, full(bytes))).await;
        }
        Classified::GlanceDownload(body) => body,
        Classified::Unreadable => return Err(ApiError::BadRequest(UNREADABLE_BODY.into())),
    };

    let token = caller_token(&parts.headers)?;
    // The token's validation and the two reads of the target Glance the checks need run at
    // once (Glance checks the token itself); a refused token answers as soon as Keystone has
    // (the reads are dropped), and the reads' answers are looked at in the order below.
    let reads = async {
        Ok(tokio::join!(
            target_image(app, image_id, &token),
            app.stores
                .get_or_read(app.glance.stores(&app.config.glance_url, &token)),
        ))
    };
    let (identity, (target, known_stores)) = tokio::try_join!(validate(app, &token), reads)?;
    check_flags(&body)?;
    let sink = chosen_sink(app, &parts.headers)?;

    let (image_id, target) = target?;
    check_target(&target)?;
    let fields = check_fields(&body)?;
    check_policy(&target, &identity)?;
    check_no_active_task(&target)?;

    let header_store = parts
        .headers
        .get("x-image-meta-store")
        .and_then(|v| v.to_str().ok());
    let stores = resolve_stores(known_stores?, &body, header_store)?;
    // The project's own bound first, then the node's: both answer 429 with Retry-After.
    let owner = target.owner().unwrap_or(&identity.project_id).to_string();
    let (project_slot, slot) = admit(app, &owner)?;
    let request_id = parts
        .extensions
        .get::<super::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
    let new_task = NewTask {
        image_id: image_id.clone(),
        owner,
        user_id: identity.user_id.clone(),
        request_id: request_id.clone(),
        input: json!({
            "image_id": image_id.as_str(),
            "import_req": fields.recorded,
            "backend": stores.backend(),
        }),
    };
    let lock = app
        .tasks
        .begin(new_task)
        .map_err(|_| ApiError::Conflict("Image has active task".into()))?;
    Metrics::inc(&app.metrics.imports_started);
    let import = ImportRequest {
        sink,
        image_id,
        remote_image_id: fields.remote_image_id,
        region: fields.region,
        interface: fields.interface,
        stores,
        token,
        identity,
    };
    spawn_import(app, lock, import, project_slot, slot, &request_id);
    Ok(accepted(&request_id))
}

/// Step 1: the request body, within the client timeout and [`MAX_IMPORT_BODY`].
async fn read_body(app: &App, body: Incoming) -> Result<bytes::Bytes, ApiError> {
    let bytes = tokio::time::timeout(
        app.config.client_timeout,
        read_limited(body, MAX_IMPORT_BODY),
    )
    .await
    .map_err(|_| ApiError::RequestTimeout)?
    .map_err(|e| match e {
        ReadError::TooLarge { limit } => ApiError::PayloadTooLarge(limit),
        ReadError::Io(e) => {
            ApiError::BadRequest(format!("The request body could not be read: {e}"))
        }
    })?;
    Ok(bytes)
}

/// Step 2, first half: the caller's token is present (401).
fn caller_token(headers: &HeaderMap) -> Result<Token, ApiError> {
    headers
        .get("x-auth-token")
        .and_then(|v| Token::parse(v.as_bytes()))
        .ok_or(ApiError::Unauthorized)
}

/// Step 2, second half: the token is valid (401), and who it says the caller is.
async fn validate(app: &App, token: &Token) -> Result<Identity, ApiError> {
    app.keystone.validate(token).await.map_err(|e| match e {
        KeystoneError::InvalidToken => ApiError::Unauthorized,
        other => ApiError::BadGateway(other.to_string()),
    })
}

/// Step 3: the sink named by [`SINK_HEADER`], if any; one this sidecar does not offer is 400.
fn chosen_sink(app: &App, headers: &HeaderMap) -> Result<Option<SinkKind>, ApiError> {
    let sink = match headers.get(SINK_HEADER) {
        None => None,
        Some(value) => {
            let name = value.to_str().unwrap_or_default();
            let sinks = &app.importer.sinks;
            match SinkKind::parse(name).filter(|kind| sinks.offers(*kind)) {
                Some(kind) => Some(kind),
                None => {
                    return Err(ApiError::BadRequest(format!(
                        "Unknown store sink '{}': this sidecar offers {}",
                        name.chars().take(64).collect::<String>(),
                        sinks.offered()
                    )))
                }
            }
        }
    };
    Ok(sink)
}

/// Step 4: the target image as this caller sees it (404 if it cannot), read once an import of
/// it that has just ended here has let go.
async fn target_image(
    app: &App,
    image_id: &str,
    token: &Token,
) -> Result<(ImageId, Image), ApiError> {
    let not_found = || ApiError::NotFound(format!("No image found with ID {}", truncate(image_id)));
    let image_id = ImageId::parse(image_id).ok_or_else(not_found)?;
    await_ending(app, &image_id).await;
    let target = app
        .glance
        .get_image(&app.config.glance_url, &image_id, token)
        .await
        .map_err(|e| target_error(e, not_found))?;
    Ok((image_id, target))
}

/// Step 7: no import running for the image, by Glance's own task or by a live claim (409).
fn check_no_active_task(target: &Image) -> Result<(), ApiError> {
    if target.0.contains_key("os_glance_import_task") || claim::live_task(target).is_some() {
        return Err(ApiError::Conflict("Image has active task".into()));
    }
    Ok(())
}

/// Step 9: a slot under the project's bound, then one under the node's (429 for either).
fn admit(app: &App, owner: &str) -> Result<(ProjectSlot, OwnedSemaphorePermit), ApiError> {
    let Some(project_slot) = app.project_slots.try_acquire(owner) else {
        Metrics::inc(&app.metrics.imports_rejected);
        return Err(ApiError::TooManyProjectImports);
    };
    let Ok(slot) = app.importer.slots.clone().try_acquire_owned() else {
        Metrics::inc(&app.metrics.imports_rejected);
        return Err(ApiError::TooManyImports);
    };
    Ok((project_slot, slot))
}

/// Runs the import as a task in its own span; the slots are released when it ends.
fn spawn_import(
    app: &App,
    lock: ImportLock,
    import: ImportRequest,
    project_slot: ProjectSlot,
    slot: OwnedSemaphorePermit,
    request_id: &str,
) {
    let span = tracing::info_span!(
        "import",
        task_id = %lock.task.id,
        image_id = %import.image_id,
        request_id = %request_id,
    );
    let run = app.importer.clone().run(lock, import, slot);
    app.importer.running.spawn(
        async move {
            run.await;
            drop(project_slot);
        }
        .instrument(span),
    );
}

/// `202 Accepted`, with the request id the task records.
fn accepted(request_id: &str) -> Response<BoxBody> {
    let mut response = status_response(StatusCode::ACCEPTED);
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// How long a new import waits for an import of the same image that has just ended here.
const ENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits (at most [`ENDING_WAIT`]) while an import of `image_id` that has already ended here
/// still holds the image: its task reads `success` or `failure` a moment before its end is
/// written onto the image and its lock released, and a client that saw the end may already be
/// importing again.
async fn await_ending(app: &App, image_id: &ImageId) {
    let deadline = tokio::time::Instant::now() + ENDING_WAIT;
    while app.tasks.is_running(image_id) && tokio::time::Instant::now() < deadline {
        let tasks = app.tasks.for_image(image_id);
        if tasks.iter().any(|t| !t.status().is_final()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The stores this import writes, given what the target Glance lists at `/v2/info/stores`
/// (`known`, `None` when it lists none). On a multi-store Glance upstream's rules and messages
/// apply; on a single-store one `stores`, `all_stores` and `X-Image-Meta-Store` are accepted
/// and ignored, as upstream ignores them.
fn resolve_stores(
    known: Option<Vec<stores::StoreInfo>>,
    body: &Map<String, Value>,
    header: Option<&str>,
) -> Result<StorePlan, ApiError> {
    let Some(known) = known else {
        return Ok(StorePlan::single());
    };
    stores::resolve(body, header, &known).map_err(|e| {
        if e.is_conflict() {
            ApiError::Conflict(e.to_string())
        } else {
            ApiError::BadRequest(e.to_string())
        }
    })
}

/// Status and formats of the target, as upstream checks them (409).
pub fn check_target(target: &Image) -> Result<(), ApiError> {
    match target.status() {
        Some("queued") => {}
        Some("active") => {
            return Err(ApiError::Conflict(
                "Image with status active cannot be target for import".into(),
            ))
        }
        _ => {
            return Err(ApiError::Conflict(
                "Image needs to be in 'queued' state to use 'glance-download' method".into(),
            ))
        }
    }
    if target.container_format().is_none() {
        return Err(ApiError::Conflict(
            "'container_format' needs to be set before import".into(),
        ));
    }
    if target.disk_format().is_none() {
        return Err(ApiError::Conflict(
            "'disk_format' needs to be set before import".into(),
        ));
    }
    Ok(())
}

/// Glance's default `modify_image` rule: admin, or a member of the image's project.
pub(super) fn check_policy(target: &Image, identity: &Identity) -> Result<(), ApiError> {
    let member = identity.roles.iter().any(|r| r == "member")
        && target.owner() == Some(identity.project_id.as_str());
    if identity.is_admin() || member {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "You are not authorized to complete modify_image action.".into(),
        ))
    }
}

/// A failed call on the target image: `not_found` when Glance has no such image for the caller.
fn target_error(error: GlanceError, not_found: impl Fn() -> ApiError) -> ApiError {
    if error.is_not_found() {
        not_found()
    } else {
        error.into()
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
