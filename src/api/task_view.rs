//! `GET /v2/images/{id}/tasks`: upstream Glance's tasks for the image, with this sidecar's own
//! glance-download tasks merged in.
//!
//! Upstream decides whether the caller may see the image (it answers 404 otherwise, and that
//! answer is passed on). Our tasks are shown to members of the task's project and to admins only.

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use crate::claim;
use crate::glance::ImageId;
use crate::http::{full, read_limited, BoxBody};
use crate::keystone::{KeystoneError, Token};

use super::{error::ApiError, proxy, App};

/// Largest upstream task list merged (upstream keeps tasks 48 h; a few hundred fit easily).
const MAX_TASKS_BODY: usize = 4 * 1024 * 1024;

pub(super) async fn list(
    app: &App,
    request: Request<Incoming>,
    image_id: &str,
) -> Result<Response<BoxBody>, ApiError> {
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| Token::parse(v.as_bytes()));
    let response = proxy::forward(app, request).await?;
    let (Some(image_id), Some(token)) = (ImageId::parse(image_id), token) else {
        return Ok(response);
    };
    if response.status() != StatusCode::OK {
        return Ok(response);
    }
    // Bounded: the newest `max_tasks_per_image` finished tasks and the running one.
    let mut ours: Vec<Value> = app.tasks.records_for_image(&image_id);
    // A task run by another instance is known here only from its summary on the image.
    if let Ok(image) = app
        .glance
        .get_image(&app.config.glance_url, &image_id, &token)
        .await
    {
        if let Some(task) = claim::task_from_image(&image) {
            if !ours.iter().any(|t| t["id"] == task["id"]) {
                // While an import of the image runs here, a claim of another task on the image
                // is the one it is about to replace (its claim is its first step after the
                // `202`) or, rarely, one it lost to in the same moment: listed first, so that
                // the task this instance is running is the last one listed, as the newest is in
                // Glance's own list.
                if app.tasks.is_running(&image_id) {
                    ours.insert(0, task);
                } else {
                    ours.push(task);
                }
            }
        }
    }
    if ours.is_empty() {
        return Ok(response);
    }
    let identity = match app.keystone.validate(&token).await {
        Ok(identity) => identity,
        Err(KeystoneError::InvalidToken) => return Err(ApiError::Unauthorized),
        Err(error) => {
            // Upstream's answer is still right; only our additions cannot be scoped.
            tracing::warn!(%error, "Listing tasks without the sidecar's own: Keystone failed");
            return Ok(response);
        }
    };
    let (mut parts, body) = response.into_parts();
    let bytes = read_limited(body, MAX_TASKS_BODY)
        .await
        .map_err(|e| ApiError::BadGateway(format!("upstream task list: {e}")))?;
    let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, full(bytes)));
    };
    if let Some(list) = doc.get_mut("tasks").and_then(Value::as_array_mut) {
        for task in ours {
            let visible =
                identity.is_admin() || task["owner"].as_str() == Some(identity.project_id.as_str());
            if !visible {
                continue;
            }
            // Another sidecar in the path may already have listed it: ours is at least as new.
            match list.iter_mut().find(|t| t["id"] == task["id"]) {
                Some(listed) => *listed = task,
                None => list.push(task),
            }
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(
        parts,
        full(serde_json::to_vec(&doc).unwrap_or_default()),
    ))
}
