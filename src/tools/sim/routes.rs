//! The fake Glance's image CRUD and small endpoints: versions, list, create, show, delete, tasks,
//! import (checks only), members, tags and import discovery, each with Glance 33's checks in its
//! order and its messages.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::glance::{can_modify, forbidden, glance_error, not_found, visible, GlanceState};
use super::images::{set_core, validate_value, Image, ImageStatus};
use super::keystone::Caller;
use super::wire::{header, query_pairs};
use crate::http::{full, json_response, read_limited, status_response, BoxBody};

/// Largest JSON body the fake reads.
const MAX_JSON: usize = 1024 * 1024;

/// Glance's `limit_param_default` and `api_limit_max`.
const LIMIT_DEFAULT: usize = 25;
const LIMIT_MAX: usize = 1000;

/// Parses a JSON request body with Glance's 400 messages (`_get_request_body`, `from_json`).
pub(crate) async fn json_body(req: Request<Incoming>) -> Result<Value, Response<BoxBody>> {
    let bytes = read_limited(req.into_body(), MAX_JSON)
        .await
        .map_err(|_| glance_error(StatusCode::BAD_REQUEST, "Malformed JSON in request body."))?;
    if bytes.is_empty() {
        return Err(glance_error(
            StatusCode::BAD_REQUEST,
            "Body expected in request.",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|_| glance_error(StatusCode::BAD_REQUEST, "Malformed JSON in request body."))
}

/// `GET /` (300) and `GET /versions` (200): Glance 33's version list without an image cache.
pub(crate) fn versions(
    state: &GlanceState,
    req: &Request<Incoming>,
    status: StatusCode,
) -> Response<BoxBody> {
    let host = header(req.headers(), "host")
        .map(str::to_owned)
        .unwrap_or_else(|| state.addr.to_string());
    let href = format!("http://{host}/v2/");
    let mut list = vec![
        ("2.15", "SUPPORTED"),
        ("2.9", "SUPPORTED"),
        ("2.17", "CURRENT"),
    ];
    list.extend(["2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0"].map(|v| (v, "SUPPORTED")));
    let versions: Vec<Value> = list
        .into_iter()
        .map(|(v, s)| json!({"id": format!("v{v}"), "status": s, "links": [{"rel": "self", "href": href}]}))
        .collect();
    json_response(status, &json!({ "versions": versions }))
}

/// `GET /v2/images`: what the caller may list, newest first, with Glance's filters and paging.
pub(crate) fn list(
    state: &GlanceState,
    caller: &Caller,
    req: &Request<Incoming>,
) -> Response<BoxBody> {
    let params = query_pairs(req.uri().query());
    let mut limit = LIMIT_DEFAULT;
    let mut marker = None;
    let mut visibility = None;
    let mut filters: Vec<(&str, &str)> = Vec::new();
    let mut tags: Vec<&str> = Vec::new();
    for (k, v) in &params {
        match k.as_str() {
            "limit" => match v.parse::<i64>() {
                Ok(n) if n < 0 => {
                    return glance_error(StatusCode::BAD_REQUEST, "limit param must be positive")
                }
                Ok(n) => limit = (n as usize).min(LIMIT_MAX),
                Err(_) => {
                    return glance_error(StatusCode::BAD_REQUEST, "limit param must be an integer")
                }
            },
            "marker" => marker = Some(v.as_str()),
            "visibility" => visibility = Some(v.as_str()),
            "tag" => tags.push(v),
            "sort_key" | "sort_dir" | "sort" | "member_status" => {}
            _ => filters.push((k, v)),
        }
    }
    let inner = state.lock();
    let mut images: Vec<&Image> = inner
        .images
        .values()
        .filter(|i| listable(i, caller, visibility))
        .filter(|i| tags.iter().all(|t| i.tags.iter().any(|x| x == t)))
        .filter(|i| filters.iter().all(|(k, v)| matches_filter(i, k, v)))
        .filter(|i| filters.iter().any(|(k, _)| *k == "os_hidden") || !i.os_hidden)
        .collect();
    images.sort_by_key(|i| std::cmp::Reverse(i.seq));
    if let Some(m) = marker {
        match images.iter().position(|i| i.id == m) {
            Some(p) => images.drain(..=p).for_each(drop),
            None => {
                return glance_error(
                    StatusCode::BAD_REQUEST,
                    &format!("No image found with ID {m}"),
                )
            }
        }
    }
    images.truncate(limit);
    let others: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut body = json!({
        "images": images.iter().map(|i| i.to_json()).collect::<Vec<_>>(),
        "first": if others.is_empty() { "/v2/images".to_owned() } else { format!("/v2/images?{}", others.join("&")) },
        "schema": "/v2/schemas/images",
    });
    if let (Some(last), true) = (images.last(), !images.is_empty() && images.len() == limit) {
        let mut next = others.clone();
        next.push(format!("marker={}", last.id));
        body["next"] = json!(format!("/v2/images?{}", next.join("&")));
    }
    json_response(StatusCode::OK, &body)
}

/// Glance's list visibility: without a filter, own images and public ones (community ones only
/// when asked for); admins see everything.
fn listable(image: &Image, caller: &Caller, visibility: Option<&str>) -> bool {
    let own = image.owner.is_some() && image.owner == caller.project_id;
    match visibility {
        None | Some("all") => caller.is_admin() || own || image.visibility == "public",
        Some(v @ ("public" | "community")) => image.visibility == v,
        Some(v) => image.visibility == v && (own || caller.is_admin()),
    }
}

fn matches_filter(image: &Image, key: &str, want: &str) -> bool {
    let json = image.to_json();
    match json.get(key) {
        Some(Value::String(s)) => s == want,
        Some(Value::Bool(b)) => want == if *b { "true" } else { "false" },
        Some(Value::Number(n)) => n.to_string() == want,
        Some(Value::Null) | None => false,
        Some(_) => false,
    }
}

/// Keys `POST /v2/images` refuses as read-only before anything else (`_check_allowed`).
const DISALLOWED: [&str; 5] = ["direct_url", "self", "file", "schema", "stores"];
/// Core attributes `ImageFactory` refuses as read-only.
const READONLY: [&str; 8] = [
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "os_hash_algo",
    "os_hash_value",
];
/// Keys refused as reserved.
const RESERVED: [&str; 4] = ["location", "locations", "deleted", "deleted_at"];

/// `POST /v2/images`: 201 with the image, `Location` and `OpenStack-image-import-methods`.
pub(crate) async fn create(
    state: &Arc<GlanceState>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    let host = header(req.headers(), "host")
        .map(str::to_owned)
        .unwrap_or_else(|| state.addr.to_string());
    let body = match json_body(req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Value::Object(body) = body else {
        return glance_error(
            StatusCode::BAD_REQUEST,
            "Unexpected body type. Expected list/dict.",
        );
    };
    if let Some(key) = DISALLOWED.iter().find(|k| body.contains_key(**k)) {
        return glance_error(
            StatusCode::FORBIDDEN,
            &format!("Attribute '{key}' is read-only."),
        );
    }
    for (k, v) in &body {
        if READONLY.contains(&k.as_str()) || RESERVED.contains(&k.as_str()) {
            continue;
        }
        if let Err(message) = validate_value(k, v) {
            return glance_error(StatusCode::BAD_REQUEST, &message);
        }
    }
    for k in body.keys() {
        if k.chars().count() > 255 {
            return glance_error(
                StatusCode::BAD_REQUEST,
                "Custom property should not be greater than 255 characters.",
            );
        }
        if RESERVED.contains(&k.as_str()) || k.starts_with("os_glance") {
            return glance_error(
                StatusCode::FORBIDDEN,
                &format!("Attribute '{k}' is reserved."),
            );
        }
    }
    let owner = match body.get("owner") {
        Some(v) => v.as_str().map(str::to_owned),
        None => caller.project_id.clone(),
    };
    let own_project = owner.is_some() && owner == caller.project_id;
    let may_create = caller.is_admin() || caller.has_role("member") && own_project;
    if !may_create {
        return forbidden("add_image");
    }
    if body.get("visibility").and_then(Value::as_str) == Some("public") && !caller.is_admin() {
        return forbidden("publicize_image");
    }
    if let Some(key) = READONLY.iter().find(|k| body.contains_key(**k)) {
        return glance_error(
            StatusCode::FORBIDDEN,
            &format!("Attribute '{key}' is read-only."),
        );
    }
    let mut inner = state.lock();
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // A deleted image's row stays in Glance's database, so its id is taken too.
    if inner.images.contains_key(&id) || inner.deleted.contains(&id) {
        return glance_error(
            StatusCode::CONFLICT,
            &format!("Image with identifier {id} already exists!"),
        );
    }
    let seq = inner.next_seq();
    let mut image = Image::new(id.clone(), owner, seq);
    let mut extra = Map::new();
    for (k, v) in body {
        if k != "id" && k != "owner" && !set_core(&mut image, &k, &v) {
            extra.insert(k, v);
        }
    }
    image.properties = extra;
    let view = image.to_json();
    inner.images.insert(id.clone(), image);
    let methods = inner.import_methods.join(",");
    drop(inner);
    let mut resp = json_response(StatusCode::CREATED, &view);
    if let Ok(v) = HeaderValue::from_str(&format!("http://{host}/v2/images/{id}")) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    if !methods.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&methods) {
            resp.headers_mut()
                .insert("openstack-image-import-methods", v);
        }
    }
    resp
}

/// `GET /v2/images/{id}`.
pub(crate) fn show(state: &GlanceState, caller: &Caller, id: &str) -> Response<BoxBody> {
    let inner = state.lock();
    match inner.images.get(id).filter(|i| visible(i, caller)) {
        Some(image) if inner.garbled.contains(id) => {
            let text = image.to_json().to_string();
            let mut response = Response::new(full(text[..text.len() / 2].to_owned()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Some(image) => json_response(StatusCode::OK, &image.to_json()),
        None => not_found(id),
    }
}

/// `DELETE /v2/images/{id}`: 204; an upload in flight then ends with 410.
pub(crate) fn delete(state: &GlanceState, caller: &Caller, id: &str) -> Response<BoxBody> {
    let mut inner = state.lock();
    let Some(image) = inner.images.get(id).filter(|i| visible(i, caller)) else {
        return not_found(id);
    };
    if !can_modify(image, caller) {
        return forbidden("delete_image");
    }
    if image.protected {
        return glance_error(
            StatusCode::FORBIDDEN,
            &format!("Image {id} is protected and cannot be deleted."),
        );
    }
    inner.images.remove(id);
    inner.faults.remove(id);
    inner.deleted.insert(id.to_string());
    status_response(StatusCode::NO_CONTENT)
}

/// `POST /v2/images/{id}/actions/deactivate` (or `reactivate`): 204 for an `active` or
/// `deactivated` image the caller may modify, else 403 as Glance's domain model answers.
pub(crate) fn activation(
    state: &GlanceState,
    caller: &Caller,
    id: &str,
    deactivate: bool,
) -> Response<BoxBody> {
    let mut inner = state.lock();
    let Some(image) = inner.images.get_mut(id).filter(|i| visible(i, caller)) else {
        return not_found(id);
    };
    let action = if deactivate {
        "deactivate"
    } else {
        "reactivate"
    };
    if !can_modify(image, caller) {
        return forbidden(action);
    }
    if !matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated) {
        return glance_error(
            StatusCode::FORBIDDEN,
            &format!(
                "Not allowed to {action} image in status '{}'",
                image.status.as_str()
            ),
        );
    }
    image.status = if deactivate {
        ImageStatus::Deactivated
    } else {
        ImageStatus::Active
    };
    image.touch();
    status_response(StatusCode::NO_CONTENT)
}

/// `GET /v2/images/{id}/tasks`: the import tasks this fake ran for the image (`glance-direct`).
pub(crate) fn tasks(state: &GlanceState, caller: &Caller, id: &str) -> Response<BoxBody> {
    let inner = state.lock();
    match inner.images.get(id).filter(|i| visible(i, caller)) {
        Some(_) => {
            let tasks: Vec<Value> = inner
                .tasks
                .iter()
                .filter(|t| t["image_id"] == id)
                .cloned()
                .collect();
            json_response(StatusCode::OK, &json!({"tasks": tasks}))
        }
        None => glance_error(StatusCode::NOT_FOUND, "The resource could not be found."),
    }
}

/// `POST /v2/images/{id}/import`: Glance's synchronous checks in its order; when they pass, a
/// `glance-direct` import runs as a task (see `staging`), and so does `copy-image` on a
/// multi-store Glance (see `stores`); other methods answer 202 and run nothing (no task, no
/// status change): enough for discovery and pass-through tests, honest about not importing.
pub(crate) async fn import(
    state: &Arc<GlanceState>,
    caller: &Caller,
    id: &str,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    let store_header = header(req.headers(), "x-image-meta-store").map(str::to_owned);
    let caller_id = header(req.headers(), "x-openstack-request-id").map(str::to_owned);
    let caller_id = caller_id.as_deref();
    let body = match json_body(req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let bad = |m: &str| glance_error(StatusCode::BAD_REQUEST, m);
    let Some(method) = body.get("method") else {
        return bad("Import request requires a 'method' field.");
    };
    let Some(name) = method.get("name") else {
        return bad("Import request requires a 'name' field.");
    };
    let name = name.as_str().unwrap_or_default().to_owned();
    let inner = state.lock();
    if !inner.import_methods.contains(&name) {
        return bad(&format!("Unknown import method name '{name}'."));
    }
    for key in ["all_stores_must_succeed", "all_stores"] {
        if body.get(key).is_some_and(|v| !v.is_boolean()) {
            return bad(&format!("'{key}' must be boolean value only"));
        }
    }
    let Some(image) = inner.images.get(id).filter(|i| visible(i, caller)) else {
        return not_found(id);
    };
    let conflict = |m: &str| glance_error(StatusCode::CONFLICT, m);
    let status = image.status.as_str();
    if status == "active" && name != "copy-image" {
        return conflict("Image with status active cannot be target for import");
    }
    if status != "active" && name == "copy-image" {
        return conflict("Only images with status active can be targeted for copying");
    }
    if status != "queued" && (name == "web-download" || name == "glance-download") {
        return conflict(&format!(
            "Image needs to be in 'queued' state to use '{name}' method"
        ));
    }
    if status != "uploading" && name == "glance-direct" {
        return conflict("Image needs to be staged before 'glance-direct' method can be used");
    }
    if image.container_format.is_none() {
        return conflict("'container_format' needs to be set before import");
    }
    if image.disk_format.is_none() {
        return conflict("'disk_format' needs to be set before import");
    }
    if name == "glance-download" {
        for key in ["glance_region", "glance_image_id"] {
            if method.get(key).is_none() {
                return bad(&format!(
                    "'{key}' needs to be set for glance-download import method"
                ));
            }
        }
        if let Some(remote) = method["glance_image_id"].as_str() {
            if uuid::Uuid::try_parse(remote).is_err() {
                return bad(&format!(
                    "Remote image id does not look like a UUID: {remote}"
                ));
            }
        }
    }
    if name == "copy-image" && !caller.is_admin() {
        return forbidden("copy_image");
    }
    if name != "copy-image" && !can_modify(image, caller) {
        return forbidden("modify_image");
    }
    if image.properties.contains_key("os_glance_import_task") {
        return conflict("Image has active task");
    }
    let stores = match &inner.stores {
        Some(known) => match known.requested(&body, store_header.as_deref()) {
            Ok(stores) => stores,
            Err((status, message)) => return glance_error(status, &message),
        },
        None => Vec::new(),
    };
    if inner.stores.is_some() {
        drop(inner);
        return match name.as_str() {
            "glance-direct" => {
                super::staging::start_direct_import(state, caller, id, body, stores, caller_id)
            }
            "copy-image" => super::stores::start_copy(state, caller, id, body, stores, caller_id),
            _ => status_response(StatusCode::ACCEPTED),
        };
    }
    if body.get("all_stores_must_succeed") == Some(&Value::Bool(false)) {
        let uri = method.get("uri").and_then(Value::as_str).unwrap_or("None");
        return bad(&format!(
            "All_stores_must_succeed can only be set with enabled_backends {uri}"
        ));
    }
    if name == "glance-direct" {
        drop(inner);
        return super::staging::start_direct_import(state, caller, id, body, Vec::new(), caller_id);
    }
    status_response(StatusCode::ACCEPTED)
}

/// `GET /v2/images/{id}/members`: the fake has no members.
pub(crate) fn members(state: &GlanceState, caller: &Caller, id: &str) -> Response<BoxBody> {
    match state.lock().images.get(id).filter(|i| visible(i, caller)) {
        Some(_) => json_response(
            StatusCode::OK,
            &json!({"members": [], "schema": "/v2/schemas/members"}),
        ),
        None => not_found(id),
    }
}

/// `PUT`/`DELETE /v2/images/{id}/tags/{tag}`: 204.
pub(crate) fn tag(
    state: &GlanceState,
    caller: &Caller,
    id: &str,
    tag: &str,
    add: bool,
) -> Response<BoxBody> {
    let mut inner = state.lock();
    let Some(image) = inner.images.get_mut(id).filter(|i| visible(i, caller)) else {
        return glance_error(StatusCode::NOT_FOUND, &format!("Image {id} not found."));
    };
    if !can_modify(image, caller) {
        let verb = if add { "update" } else { "delete" };
        return glance_error(
            StatusCode::FORBIDDEN,
            &format!("Not allowed to {verb} tags for image {id}."),
        );
    }
    if add {
        if tag.chars().count() > 255 {
            return glance_error(
                StatusCode::BAD_REQUEST,
                &format!("Provided object does not match schema 'image': '{tag}' is too long"),
            );
        }
        if !image.tags.iter().any(|t| t == tag) {
            image.tags.push(tag.to_owned());
        }
    } else {
        let before = image.tags.len();
        image.tags.retain(|t| t != tag);
        if image.tags.len() == before {
            return glance_error(StatusCode::NOT_FOUND, "The resource could not be found.");
        }
    }
    image.touch();
    status_response(StatusCode::NO_CONTENT)
}

/// `GET /v2/info/import`.
pub(crate) fn info_import(state: &GlanceState) -> Response<BoxBody> {
    let methods = state.lock().import_methods.clone();
    json_response(
        StatusCode::OK,
        &json!({"import-methods": {"description": "Import methods available.", "type": "array", "value": methods}}),
    )
}

/// `GET /v2/schemas/image`, abridged: the core properties clients look at.
pub(crate) fn image_schema() -> Value {
    use super::images::{CONTAINER_FORMATS, DISK_FORMATS};
    let mut disk: Vec<Value> = vec![Value::Null];
    disk.extend(DISK_FORMATS.iter().map(|f| json!(f)));
    let mut container: Vec<Value> = vec![Value::Null];
    container.extend(CONTAINER_FORMATS.iter().map(|f| json!(f)));
    json!({
        "name": "image",
        "additionalProperties": {"type": "string"},
        "properties": {
            "id": {"type": "string"}, "name": {"type": ["null", "string"], "maxLength": 255},
            "status": {"type": "string", "readOnly": true},
            "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"]},
            "disk_format": {"type": ["null", "string"], "enum": disk},
            "container_format": {"type": ["null", "string"], "enum": container},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
        },
        "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                  {"rel": "describedby", "href": "{schema}"}],
    })
}
