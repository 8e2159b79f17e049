//! Staging and the `glance-direct` import, as Glance 33 runs them (single store): `PUT /stage`
//! takes the data while the image is `uploading`; `POST /import` with `glance-direct` then runs
//! an `api_image_import` task that moves the staged data into the store (`importing` → `active`),
//! applying the configured metadata injection as the `inject_image_metadata` plugin does. On a
//! multi-store Glance it writes each requested store, honouring `all_stores_must_succeed`.
//! What the fake leaves out: format conversion and decompression plugins.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::glance::{glance_error, not_found, visible, GlanceState};
use super::images::ImageStatus;
use super::keystone::Caller;
use super::stores::{end_task, lock_for_task, run_task, write_stores, NewTask};
use super::transfer::{framing, media_type, receive, refuse_write, Received};
use crate::http::{status_response, BoxBody};

type Reply = Response<BoxBody>;

/// `PUT /v2/images/{id}/stage`.
pub(crate) async fn stage(
    state: &Arc<GlanceState>,
    caller: &Caller,
    id: &str,
    req: Request<Incoming>,
) -> Reply {
    let content_type = media_type(&req);
    if content_type != "application/octet-stream" {
        return glance_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("The request media type {content_type} is not supported by this server."),
        );
    }
    let (expected, cut_is_end) = match framing(state, &req, false) {
        Ok(framing) => framing,
        Err(message) => return glance_error(StatusCode::BAD_REQUEST, message),
    };
    let (seq, algo, keep_limit) = {
        let mut inner = state.lock();
        if !inner.import_methods.iter().any(|m| m == "glance-direct") {
            return glance_error(
                StatusCode::NOT_FOUND,
                "'glance-direct' method is not available at this site.",
            );
        }
        let (algo, keep_limit) = (inner.hashing, inner.keep_limit);
        let has_staged = inner.staged.contains_key(id);
        let Some(image) = inner.images.get_mut(id).filter(|i| visible(i, caller)) else {
            return not_found(id);
        };
        if has_staged {
            return glance_error(
                StatusCode::CONFLICT,
                &format!("The image {id} has data on staging"),
            );
        }
        if let Some(refused) = refuse_write(image, caller, id, "uploading") {
            return refused;
        }
        image.status = ImageStatus::Uploading;
        image.touch();
        (image.seq, algo, keep_limit)
    };
    let received = receive(
        req.into_body(),
        expected,
        keep_limit,
        algo,
        None,
        cut_is_end,
        id,
    )
    .await;
    let mut inner = state.lock();
    let Some(image) = inner
        .images
        .get_mut(id)
        .filter(|i| i.seq == seq && i.status == ImageStatus::Uploading)
    else {
        return glance_error(StatusCode::GONE, &format!("Image {id} could not be found"));
    };
    match received {
        Ok(received) => {
            image.size = Some(received.total);
            image.touch();
            inner.staged.insert(id.to_owned(), received);
            status_response(StatusCode::NO_CONTENT)
        }
        Err(resp) => {
            // `_unstage`: the partial file is deleted and the image goes back to queued.
            image.status = ImageStatus::Queued;
            image.size = None;
            image.touch();
            resp
        }
    }
}

/// Starts the `glance-direct` import task of a staged image into `stores` (empty on a
/// single-store Glance); answers 202 with the request id the task records.
pub(crate) fn start_direct_import(
    state: &Arc<GlanceState>,
    caller: &Caller,
    id: &str,
    body: Value,
    stores: Vec<String>,
    caller_id: Option<&str>,
) -> Reply {
    let task = NewTask::new(caller_id);
    {
        let mut inner = state.lock();
        let Some(image) = inner.images.get_mut(id) else {
            return not_found(id);
        };
        image.status = ImageStatus::Importing;
        lock_for_task(&mut inner, id, &task, caller, &body, &stores);
    }
    run_task(state, id, task, stores, &body, finish_direct_import)
}

/// The task's end: staged data into each store (a failing store as `write_stores` says),
/// injection applied, image active; or, when no store took it or a required one failed, back to
/// `queued` with the task failed.
fn finish_direct_import(
    state: &GlanceState,
    id: &str,
    task_id: &str,
    stores: &[String],
    must: bool,
) {
    let mut inner = state.lock();
    let staged: Option<Received> = inner.staged.remove(id);
    let inject: Map<String, Value> = inner.inject.clone();
    let algo = inner.hashing;
    let plugin_fails = inner.failing_direct_imports;
    let failing = inner
        .stores
        .as_ref()
        .map(|s| s.failing.clone())
        .unwrap_or_default();
    let ok = match (inner.images.get_mut(id), staged) {
        (Some(image), Some(staged))
            if image.status == ImageStatus::Importing
                && !plugin_fails
                && super::images::signature_refusal(image).is_none() =>
        {
            let written = stores.is_empty() || write_stores(image, stores, &failing, must);
            image.properties.remove("os_glance_import_task");
            if written && (stores.is_empty() || !image.stores.is_empty()) {
                let held = std::mem::take(&mut image.stores);
                image.set_data(
                    staged.total,
                    staged.md5,
                    algo.name(),
                    staged.hash,
                    staged.stored,
                );
                image.stores = held;
                for (k, v) in inject {
                    image.properties.insert(k, v);
                }
                image.status = ImageStatus::Active;
                image.touch();
                true
            } else {
                image.restore_queued();
                false
            }
        }
        (Some(image), _) => {
            image.properties.remove("os_glance_import_task");
            image.restore_queued();
            false
        }
        (None, _) => false,
    };
    end_task(&mut inner.tasks, task_id, id, ok);
}
