//! The fake Glance's optional multi-store mode (`enabled_backends` + `default_backend`), as
//! Glance 33 behaves with it: `GET /v2/info/stores`, `X-Image-Meta-Store` on upload, the import
//! body's `stores`/`all_stores`, the image's `stores` list, and the `copy-image` import method.
//!
//! Stores hold no bytes of their own here: an image's data is kept once and `stores` says where
//! Glance would have it. A store can be made to fail every import task writing into it
//! ([`FakeGlance::fail_store`]) so that the failure bookkeeping (`os_glance_failed_import`,
//! `all_stores_must_succeed`) can be tested.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::glance::{glance_error, FakeGlance, GlanceState, Inner};
use super::images::{Image, ImageStatus};
use super::keystone::Caller;
use super::wire::{glance_time, request_id};
use crate::http::{full, json_response, status_response, BoxBody, REQUEST_ID};

type Reply = Response<BoxBody>;

/// How long the fake's import tasks (glance-direct, copy-image) wait before they move data.
const TASK_DELAY: Duration = Duration::from_millis(20);

/// Upstream's generic task failure message (`taskflow_executor._run`).
pub(crate) const TASK_FAILED: &str = "Task failed due to Internal Error";

/// The image properties Glance keeps its per-store progress in.
pub(crate) const IMPORTING: &str = "os_glance_importing_to_stores";
pub(crate) const FAILED: &str = "os_glance_failed_import";

/// The stores of a multi-store fake Glance.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stores {
    /// Store ids in `enabled_backends` order.
    pub(crate) ids: Vec<String>,
    pub(crate) default: String,
    /// `http` stores: listed as read-only, never written.
    pub(crate) read_only: HashSet<String>,
    /// Stores every import task fails to write (fault injection).
    pub(crate) failing: HashSet<String>,
}

impl Stores {
    /// `glance_store.get_store_from_store_identifier`: `UnknownScheme` for an unknown store.
    pub(crate) fn check(&self, store: &str) -> Result<(), String> {
        if self.ids.iter().any(|s| s == store) {
            Ok(())
        } else {
            Err(format!("Store for identifier {store} not found"))
        }
    }

    /// `_get_available_stores`: every store but the read-only ones.
    fn available(&self) -> Vec<String> {
        self.ids
            .iter()
            .filter(|s| !self.read_only.contains(*s))
            .cloned()
            .collect()
    }

    /// `get_stores_from_request`; a refusal is upstream's status and explanation (400; 409 for
    /// an unknown store).
    pub(crate) fn requested(
        &self,
        body: &Value,
        header: Option<&str>,
    ) -> Result<Vec<String>, (StatusCode, String)> {
        let bad = |m: &str| (StatusCode::BAD_REQUEST, m.to_owned());
        let stores: Vec<String> = if body.get("all_stores").and_then(Value::as_bool) == Some(true) {
            if body.get("stores").is_some() || header.is_some() {
                return Err(bad("All_stores parameter can't be used with x-image-meta-store header or stores parameter"));
            }
            self.available()
        } else {
            match body.get("stores") {
                Some(list) => {
                    if header.is_some() {
                        return Err(bad(
                            "Stores parameter and x-image-meta-store header can't be both specified",
                        ));
                    }
                    list.as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| s.as_str().unwrap_or_default().to_owned())
                        .collect()
                }
                None => vec![header.unwrap_or(&self.default).to_owned()],
            }
        };
        for store in &stores {
            self.check(store).map_err(|m| (StatusCode::CONFLICT, m))?;
        }
        Ok(stores)
    }
}

// === impl FakeGlance ===

impl FakeGlance {
    /// Turns this Glance multi-store (`enabled_backends` = `stores`, all `file`, with
    /// `default_backend` = `default`); without it the fake is single-store, as by default.
    pub fn enable_stores(&self, stores: &[&str], default: &str) {
        assert!(
            stores.contains(&default),
            "the default store must be enabled"
        );
        self.state.lock().stores = Some(Stores {
            ids: stores.iter().map(|s| (*s).to_owned()).collect(),
            default: default.to_owned(),
            ..Stores::default()
        });
    }

    /// Adds a read-only (`http`) store to a multi-store Glance.
    pub fn add_read_only_store(&self, store: &str) {
        if let Some(stores) = self.state.lock().stores.as_mut() {
            stores.ids.push(store.to_owned());
            stores.read_only.insert(store.to_owned());
        }
    }

    /// Makes every import task (`copy-image`, `glance-direct`) fail to write into `store`.
    pub fn fail_store(&self, store: &str) {
        if let Some(stores) = self.state.lock().stores.as_mut() {
            stores.failing.insert(store.to_owned());
        }
    }
}

// === handlers ===

/// `GET /v2/info/stores`: the store list, or 404 on a single-store Glance.
pub(crate) fn info(state: &GlanceState) -> Reply {
    let Some(stores) = state.lock().stores.clone() else {
        return glance_error(
            StatusCode::NOT_FOUND,
            "Multi backend is not supported at this site.",
        );
    };
    let list: Vec<Value> = stores
        .ids
        .iter()
        .map(|id| {
            let mut store = json!({"id": id});
            if *id == stores.default {
                store["default"] = json!("true");
            }
            if stores.read_only.contains(id) {
                store["read-only"] = json!("true");
            }
            store
        })
        .collect();
    json_response(StatusCode::OK, &json!({"stores": list}))
}

/// The store an upload writes (`X-Image-Meta-Store` or the default); `Ok(None)` when
/// single-store; `Err` with upstream's message for an unknown store (see [`plain_refusal`]).
pub(crate) fn upload_store(
    state: &GlanceState,
    header: Option<&str>,
) -> Result<Option<String>, String> {
    let Some(stores) = state.lock().stores.clone() else {
        return Ok(None);
    };
    let store = header.unwrap_or(&stores.default).to_owned();
    stores.check(&store).map(|()| Some(store))
}

/// Upstream's refusal of an upload into an unknown store: 400 rendered as text/plain.
pub(crate) fn plain_refusal(message: &str) -> Reply {
    let mut resp = Response::new(full(format!("400 Bad Request\n\n{message}\n\n   ")));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    resp
}

/// Upstream's `merge_store_list`: the comma-sorted union (or difference) of a store property.
pub(crate) fn merge(image: &mut Image, key: &str, stores: &[String], subtract: bool) {
    let existing = image.properties.get(key).and_then(Value::as_str);
    let mut set: std::collections::BTreeSet<String> = existing
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for store in stores {
        if subtract {
            set.remove(store);
        } else {
            set.insert(store.clone());
        }
    }
    let joined = set.into_iter().collect::<Vec<_>>().join(",");
    image.properties.insert(key.to_owned(), Value::from(joined));
}

/// `POST /import` with `copy-image` on a multi-store Glance, after the common checks: prunes or
/// refuses stores already holding the image, takes the import lock and runs the copy task.
pub(crate) fn start_copy(
    state: &Arc<GlanceState>,
    caller: &Caller,
    id: &str,
    body: Value,
    mut stores: Vec<String>,
    caller_id: Option<&str>,
) -> Reply {
    let task = NewTask::new(caller_id);
    let all_stores = body.get("all_stores").and_then(Value::as_bool) == Some(true);
    {
        let mut inner = state.lock();
        let Some(image) = inner.images.get_mut(id) else {
            return super::glance::not_found(id);
        };
        if all_stores {
            stores.retain(|s| !image.stores.contains(s));
            if stores.is_empty() {
                return status_response(StatusCode::ACCEPTED);
            }
        } else if let Some(present) = stores.iter().find(|s| image.stores.contains(s)) {
            return glance_error(
                StatusCode::BAD_REQUEST,
                &format!("Image is already present at store '{present}'"),
            );
        }
        lock_for_task(&mut inner, id, &task, caller, &body, &stores);
    }
    run_task(state, id, task, stores, &body, finish_copy)
}

/// A new import task's ids and start time.
pub(crate) struct NewTask {
    /// The `x-openstack-request-id` of the `202`.
    request: HeaderValue,
    /// The request id the task records, when it differs from the answer's (no `req-` prefix).
    recorded: Option<String>,
    id: String,
    now: String,
}

impl NewTask {
    /// A task for a request that sent `caller_id` as its `x-openstack-request-id`: Glance's
    /// context takes the caller's id when given (recorded as sent, answered `req-` prefixed),
    /// else makes one.
    pub(crate) fn new(caller_id: Option<&str>) -> Self {
        let request = caller_id
            .map(|id| {
                if id.starts_with("req-") {
                    id.to_owned()
                } else {
                    format!("req-{id}")
                }
            })
            .and_then(|id| HeaderValue::from_str(&id).ok());
        NewTask {
            recorded: caller_id.map(str::to_owned),
            request: request.unwrap_or_else(request_id),
            id: uuid::Uuid::new_v4().to_string(),
            now: glance_time(time::OffsetDateTime::now_utc()),
        }
    }
}

/// Takes image `id`'s import lock for `task` (`os_glance_import_task`), marks `stores` importing
/// and no longer failed, and records the task `processing`, as Glance's import flow starts.
pub(crate) fn lock_for_task(
    inner: &mut Inner,
    id: &str,
    task: &NewTask,
    caller: &Caller,
    body: &Value,
    stores: &[String],
) {
    let Some(image) = inner.images.get_mut(id) else {
        return;
    };
    image.properties.insert(
        "os_glance_import_task".into(),
        Value::from(task.id.as_str()),
    );
    if !stores.is_empty() {
        merge(image, IMPORTING, stores, false);
        merge(image, FAILED, stores, true);
    }
    image.touch();
    let owner = image.owner.clone();
    let request = match &task.recorded {
        Some(recorded) => recorded.as_str(),
        None => task.request.to_str().unwrap_or_default(),
    };
    let record = task_record(
        &task.id,
        owner.clone(),
        id,
        request,
        caller,
        body,
        stores,
        &task.now,
    );
    inner.tasks.push(record);
    if let Some(status) = inner.newer_task.clone() {
        let other = NewTask::new(None);
        let mut record = task_record(
            &other.id,
            owner,
            id,
            other.request.to_str().unwrap_or_default(),
            caller,
            body,
            stores,
            &other.now,
        );
        record["status"] = Value::from(status);
        inner.tasks.push(record);
    }
}

/// The function that ends a task: state, image id, task id, stores, all stores must succeed.
pub(crate) type FinishTask = fn(&GlanceState, &str, &str, &[String], bool);

/// Runs `finish` a moment later, as Glance's task executor, and answers `202` with the task's
/// request id.
pub(crate) fn run_task(
    state: &Arc<GlanceState>,
    id: &str,
    task: NewTask,
    stores: Vec<String>,
    body: &Value,
    finish: FinishTask,
) -> Reply {
    let must = body
        .get("all_stores_must_succeed")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let state = state.clone();
    let image_id = id.to_owned();
    let task_id = task.id;
    tokio::spawn(async move {
        tokio::time::sleep(TASK_DELAY).await;
        finish(&state, &image_id, &task_id, &stores, must);
    });
    let mut response = status_response(StatusCode::ACCEPTED);
    response.headers_mut().insert(REQUEST_ID, task.request);
    response
}

/// An `api_image_import` task record in Glance's shape, `processing`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn task_record(
    task_id: &str,
    owner: Option<String>,
    image_id: &str,
    request_id: &str,
    caller: &Caller,
    body: &Value,
    stores: &[String],
    now: &str,
) -> Value {
    let backend: Vec<Value> = if stores.is_empty() {
        vec![Value::Null]
    } else {
        stores.iter().map(|s| Value::from(s.as_str())).collect()
    };
    json!({
        "id": task_id, "type": "api_image_import", "status": "processing",
        "owner": owner, "image_id": image_id, "request_id": request_id,
        "user_id": caller.user_id, "result": null, "message": "",
        "input": {"image_id": image_id, "import_req": body, "backend": backend},
        "created_at": now, "updated_at": now, "expires_at": null,
        "deleted_at": null, "deleted": false,
    })
}

/// Writes `stores` of an image one by one, as the `_ImportToStore` tasks do: a failing store is
/// recorded in `os_glance_failed_import` and, when every store must succeed, undoes the stores
/// written by this task (taskflow's revert). Returns whether the task as a whole succeeded.
pub(crate) fn write_stores(
    image: &mut Image,
    stores: &[String],
    failing: &HashSet<String>,
    must: bool,
) -> bool {
    let mut written: Vec<String> = Vec::new();
    for store in stores {
        if failing.contains(store) {
            merge(image, FAILED, std::slice::from_ref(store), false);
            if must {
                image.stores.retain(|s| !written.contains(s));
                merge(image, IMPORTING, stores, true);
                return false;
            }
        } else {
            if !image.stores.contains(store) {
                image.stores.push(store.clone());
            }
            written.push(store.clone());
        }
        merge(image, IMPORTING, std::slice::from_ref(store), true);
    }
    true
}

/// The copy task's end: each store written or failed, the lock dropped, the task recorded.
fn finish_copy(state: &GlanceState, id: &str, task_id: &str, stores: &[String], must: bool) {
    let mut inner = state.lock();
    let failing = inner
        .stores
        .as_ref()
        .map(|s| s.failing.clone())
        .unwrap_or_default();
    let ok = match inner.images.get_mut(id) {
        Some(image) if image.status == ImageStatus::Active => {
            let ok = write_stores(image, stores, &failing, must);
            image.properties.remove("os_glance_import_task");
            image.touch();
            ok
        }
        Some(image) => {
            image.properties.remove("os_glance_import_task");
            false
        }
        None => false,
    };
    end_task(&mut inner.tasks, task_id, id, ok);
}

/// Marks task `task_id` `success` (with `result`) or `failure` (upstream's generic message).
pub(crate) fn end_task(tasks: &mut [Value], task_id: &str, image_id: &str, ok: bool) {
    let now = glance_time(time::OffsetDateTime::now_utc());
    if let Some(task) = tasks.iter_mut().find(|t| t["id"] == task_id) {
        if ok {
            task["status"] = Value::from("success");
            task["result"] = json!({"image_id": image_id});
        } else {
            task["status"] = Value::from("failure");
            task["message"] = Value::from(TASK_FAILED);
        }
        task["updated_at"] = Value::from(now);
    }
}

/// The `stores` field of the image JSON (only when the image is in some store).
pub(crate) fn render(image: &Image, view: &mut Map<String, Value>) {
    if !image.stores.is_empty() {
        view.insert("stores".into(), Value::from(image.stores.join(",")));
    }
}
