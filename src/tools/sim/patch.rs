//! `PATCH /v2/images/{id}`: Glance's JSON-patch dialects (v2.1 = draft 10, v2.0 = draft 4), with
//! the deserializer's checks on every operation first, then the controller's, applied to a copy
//! that replaces the image only if every operation succeeded (Glance saves once at the end).

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use super::glance::{
    can_modify, forbidden, glance_error, glance_error_detail, not_found, visible, GlanceState,
};
use super::images::{is_core, set_core, validate_value, ImageStatus};
use super::keystone::Caller;
use super::routes::json_body;
use crate::http::{json_response, BoxBody};

const V20: &str = "application/openstack-images-v2.0-json-patch";
const V21: &str = "application/openstack-images-v2.1-json-patch";

/// Attributes PATCH refuses as read-only (`RequestDeserializer._readonly_properties`).
const READONLY: [&str; 13] = [
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
];
/// Attributes PATCH refuses as reserved (plus the `os_glance` namespace).
const RESERVED: [&str; 3] = ["location", "deleted", "deleted_at"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
}

struct Change {
    op: Op,
    path: String,
    value: Value,
}

type Reply = Response<BoxBody>;

/// A refused operation: the status and Glance's message (rendered by [`glance_error`]).
type Refusal = (StatusCode, String);

fn bad(message: &str) -> Refusal {
    (StatusCode::BAD_REQUEST, message.to_owned())
}

fn refuse(status: StatusCode, message: &str) -> Refusal {
    (status, message.to_owned())
}

/// Decodes a JSON pointer as Glance accepts it (`_decode_json_pointer`): the pointer checks, then
/// `~1`/`~0` unescaping; depth is checked by the caller.
fn decode_pointer(pointer: &str) -> Result<Vec<String>, Refusal> {
    if !pointer.starts_with('/') {
        return Err(bad(&format!(
            "Pointer `{pointer}` does not start with \"/\"."
        )));
    }
    let parts: Vec<&str> = pointer[1..].split('/').collect();
    if parts.len() > 1 && parts.iter().any(|p| p.trim().is_empty()) {
        let why = if pointer.ends_with('/') {
            "end with \"/\""
        } else {
            "contains adjacent \"/\""
        };
        return Err(bad(&format!("Pointer `{pointer}` {why}.")));
    }
    let bad_tilde = pointer.ends_with('~')
        || pointer
            .match_indices('~')
            .any(|(i, _)| !matches!(pointer.as_bytes().get(i + 1), Some(b'0' | b'1')));
    if bad_tilde {
        return Err(bad(&format!(
            "Pointer `{pointer}` contains \"~\" not part of a recognized escape sequence."
        )));
    }
    Ok(parts
        .iter()
        .map(|p| p.replace("~1", "/").replace("~0", "~").trim().to_owned())
        .collect())
}

/// One raw operation → a checked [`Change`] (`_parse_json_schema_change`, `_validate_path`,
/// `_get_change_value`, `_validate_change`).
fn parse_change(raw: &Value, draft4: bool) -> Result<Change, Refusal> {
    let Some(obj) = raw.as_object() else {
        return Err(bad("Operations must be JSON objects."));
    };
    let names = ["add", "remove", "replace"];
    let (op_name, pointer) = if draft4 {
        let present: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| obj.contains_key(*n))
            .collect();
        match present.as_slice() {
            [one] => (*one, obj[*one].clone()),
            [] => return Err(bad("Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".")),
            _ => return Err(bad("Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".")),
        }
    } else {
        let op = match obj.get("op") {
            None => return Err(bad("Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.")),
            Some(op) => op.as_str().unwrap_or_default(),
        };
        if !names.contains(&op) {
            return Err(bad(&format!(
                "Invalid operation: `{op}`. It must be one of the following: add, remove, replace."
            )));
        }
        let Some(path) = obj.get("path") else {
            return Err(bad("Unable to find 'path' in JSON Schema change"));
        };
        (op, path.clone())
    };
    let pointer = pointer.as_str().unwrap_or_default().to_owned();
    let path = decode_pointer(&pointer)?;
    let op = match op_name {
        "add" => Op::Add,
        "remove" => Op::Remove,
        _ => Op::Replace,
    };
    let depth = if path[0] == "locations" && op != Op::Replace {
        2
    } else {
        1
    };
    if path.len() != depth {
        return Err(bad(&format!(
            "Invalid JSON pointer for this resource: '/{}'",
            path.join("/")
        )));
    }
    let value = if op == Op::Remove {
        Value::Null
    } else {
        match obj.get("value") {
            Some(v) => v.clone(),
            None => {
                return Err(bad(&format!(
                    "Operation \"{op_name}\" requires a member named \"value\"."
                )))
            }
        }
    };
    let root = path[0].clone();
    if READONLY.contains(&root.as_str()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            &format!("Attribute '{root}' is read-only."),
        ));
    }
    if RESERVED.contains(&root.as_str()) || root.starts_with("os_glance") {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            &format!("Attribute '{root}' is reserved."),
        ));
    }
    if op != Op::Remove && root != "locations" {
        validate_value(&root, &value).map_err(|m| bad(&m))?;
    }
    Ok(Change {
        op,
        path: root,
        value,
    })
}

/// Applies one change to the image copy (`_do_add`, `_do_replace`, `_do_remove` and the domain
/// setters), with the controller's 403/409 answers.
fn apply(
    image: &mut super::images::Image,
    caller: &Caller,
    change: &Change,
    draft4: bool,
) -> Result<(), Refusal> {
    let key = change.path.as_str();
    if key == "locations" {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "It's not allowed to update locations if locations are invisible.",
        ));
    }
    if change.op == Op::Remove {
        if is_core(key) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                &format!("Property {key} may not be removed."),
            ));
        }
        return match image.properties.remove(key) {
            Some(_) => Ok(()),
            None => Err(refuse(
                StatusCode::CONFLICT,
                &format!("Property {key} does not exist."),
            )),
        };
    }
    let exists = is_core(key) || image.properties.contains_key(key);
    if change.op == Op::Replace && !exists {
        return Err(refuse(
            StatusCode::CONFLICT,
            &format!("Property {key} does not exist."),
        ));
    }
    if change.op == Op::Add && draft4 && exists {
        return Err(refuse(
            StatusCode::CONFLICT,
            &format!("Property {key} already present."),
        ));
    }
    match key {
        "owner" if !caller.is_admin() => {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "Owner can't be updated by non admin.",
            ))
        }
        "visibility" if change.value == "public" && !caller.is_admin() => {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "You are not authorized to complete publicize_image action.",
            ))
        }
        "disk_format" | "container_format"
            if !matches!(image.status, ImageStatus::Queued | ImageStatus::Importing) =>
        {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                &format!("Attribute {key} can be only replaced for a queued image."),
            ));
        }
        _ => {}
    }
    if !set_core(image, key, &change.value) {
        image
            .properties
            .insert(key.to_owned(), change.value.clone());
    }
    Ok(())
}

/// `PATCH /v2/images/{id}`: 200 with the updated image, or the first failing check's answer with
/// nothing changed.
pub(crate) async fn update(
    state: &Arc<GlanceState>,
    caller: &Caller,
    id: &str,
    req: Request<Incoming>,
) -> Reply {
    {
        let mut inner = state.lock();
        if inner.failing_patches > 0 {
            inner.failing_patches -= 1;
            return glance_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server has either erred or is incapable of performing the requested operation.",
            );
        }
    }
    let content_type = super::transfer::media_type(&req);
    let draft4 = match content_type.as_str() {
        V21 => false,
        V20 => true,
        other => {
            let mut resp = glance_error_detail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("The request media type {other} is not supported by this server."),
                &format!("Image PATCH expects Content-Type one of: {V20}, {V21}"),
            );
            resp.headers_mut().insert("accept-patch", HeaderValue::from_static(
                "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch",
            ));
            return resp;
        }
    };
    let body = match json_body(req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(ops) = body.as_array() else {
        let message = "Request body must be a JSON array of operation objects.";
        return glance_error(StatusCode::BAD_REQUEST, message);
    };
    let mut changes = Vec::with_capacity(ops.len());
    for raw in ops {
        match parse_change(raw, draft4) {
            Ok(c) => changes.push(c),
            Err((status, message)) => return glance_error(status, &message),
        }
    }
    let mut inner = state.lock();
    let Some(current) = inner.images.get(id).filter(|i| visible(i, caller)) else {
        return not_found(id);
    };
    if !changes.is_empty() && !can_modify(current, caller) {
        return forbidden("modify_image");
    }
    let mut image = current.clone();
    for change in &changes {
        if let Err((status, message)) = apply(&mut image, caller, change, draft4) {
            return glance_error(status, &message);
        }
    }
    if !changes.is_empty() {
        image.touch();
    }
    let view = image.to_json();
    if inner
        .overwrite_after_patch
        .as_ref()
        .is_some_and(|(i, _)| i == id)
    {
        if let Some((_, properties)) = inner.overwrite_after_patch.take() {
            for (key, value) in properties {
                image.properties.insert(key, Value::String(value));
            }
        }
    }
    inner.images.insert(id.to_owned(), image);
    json_response(StatusCode::OK, &view)
}
