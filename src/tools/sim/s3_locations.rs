//! The fake Glance's S3 store and `POST /v2/images/{id}/locations` for `s3://` URLs, as Glance 33
//! does it (`images.py add_location`, `async_/flows/location_import.py`): the checks in
//! upstream's order, then a `location_import` task that reads the object back and verifies it
//! when `do_secure_hash` is on, or takes the validation data as given when it is off (then
//! `checksum` stays unset).
//!
//! [`LocationFault`]s put an unreliable network or proxy between the sidecar and this Glance:
//! an answer that comes too late, a refusal, a task list that fails.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::glance::{
    can_modify, forbidden, glance_error, not_found, visible, FakeGlance, GlanceState,
};
use super::images::{ImageStatus, Stored};
use super::keystone::Caller;
use super::s3::FakeS3;
use super::wire::{glance_time, header, request_id};
use crate::hash::HashAlgo;
use crate::http::{status_response, BoxBody, REQUEST_ID};

/// How long the fake's `location_import` task takes to start (the 202 comes first).
const TASK_DELAY: Duration = Duration::from_millis(20);

/// The S3 store a fake Glance is configured with (`[glance_store] s3_store_*`).
#[derive(Clone)]
pub(crate) struct S3Store {
    s3: FakeS3,
    /// `s3_store_host` without the scheme: the host of the location URIs it owns.
    host: String,
    bucket: String,
    /// `[DEFAULT] do_secure_hash`.
    do_secure_hash: bool,
    fault: Option<LocationFault>,
}

/// How the location API misbehaves, around a Glance that works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocationFault {
    /// `POST /locations` does its work (the task runs) but answers only after this long.
    AnswerAfter(Duration),
    /// `POST /locations` is refused with this status before anything happens.
    Refuse(u16),
    /// `POST /locations` answers this status before anything happens, and from then on the
    /// image's JSON comes cut short (an image that cannot be read back).
    FailThenGarble(u16),
    /// Once a location was posted, `GET /v2/images/{id}/tasks` answers this status.
    TasksFail(u16),
}

impl FakeGlance {
    /// Gives this Glance an S3 store backed by `s3`'s `bucket` (created if missing), with
    /// `[DEFAULT] do_secure_hash` as given (Glance's default is `true`).
    pub fn attach_s3_store(&self, s3: &FakeS3, bucket: &str, do_secure_hash: bool) {
        s3.create_bucket(bucket);
        self.state.lock().s3_store = Some(S3Store {
            s3: s3.clone(),
            host: s3.authority(),
            bucket: bucket.to_string(),
            do_secure_hash,
            fault: None,
        });
    }

    /// Makes the location API misbehave as `fault` says (after [`FakeGlance::attach_s3_store`]).
    pub fn set_location_fault(&self, fault: LocationFault) {
        if let Some(store) = self.state.lock().s3_store.as_mut() {
            store.fault = Some(fault);
        }
    }
}

fn location_fault(state: &GlanceState) -> Option<LocationFault> {
    state.lock().s3_store.as_ref().and_then(|store| store.fault)
}

/// `GET /v2/images/{id}/tasks`, failing as [`LocationFault::TasksFail`] says once the image has
/// a `location_import` task.
pub(crate) fn tasks(state: &GlanceState, caller: &Caller, id: &str) -> Response<BoxBody> {
    if let Some(LocationFault::TasksFail(code)) = location_fault(state) {
        let posted = state
            .lock()
            .tasks
            .iter()
            .any(|t| t["type"] == "location_import" && t["image_id"] == id);
        if posted {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return glance_error(status, "The server has either erred or is incapable of performing the requested operation.");
        }
    }
    super::routes::tasks(state, caller, id)
}

/// `POST /v2/images/{id}/locations`.
pub(crate) async fn add_location(
    state: &Arc<GlanceState>,
    caller: &Caller,
    id: &str,
    req: Request<Incoming>,
) -> Response<BoxBody> {
    // keystonemiddleware: the service token's roles join the caller's (`service_roles`).
    let service_roles = match header(req.headers(), "x-service-token") {
        None => Vec::new(),
        Some(token) => match state.keystone.caller(token) {
            Some(service) => service.roles,
            None => {
                return glance_error(
                    StatusCode::UNAUTHORIZED,
                    "The request you have made requires authentication.",
                )
            }
        },
    };
    let fault = location_fault(state);
    if let Some(LocationFault::Refuse(code) | LocationFault::FailThenGarble(code)) = fault {
        if matches!(fault, Some(LocationFault::FailThenGarble(_))) {
            state.lock().garbled.insert(id.to_string());
        }
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        return glance_error(status, "The location was refused.");
    }
    let body = match super::routes::json_body(req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (url, validation) = match parse_body(&body) {
        Ok(parsed) => parsed,
        Err(message) => return glance_error(StatusCode::BAD_REQUEST, &message),
    };
    let request = request_id();
    let task_id = uuid::Uuid::new_v4().to_string();
    {
        let mut inner = state.lock();
        let hashing = inner.hashing;
        let Some(image) = inner.images.get_mut(id).filter(|i| visible(i, caller)) else {
            return not_found(id);
        };
        if image.status != ImageStatus::Queued {
            return glance_error(
                StatusCode::CONFLICT,
                &format!(
                    "It's not allowed to add locations if image status is {}.",
                    image.status.as_str()
                ),
            );
        }
        if !can_modify(image, caller) {
            return forbidden("add_image_location");
        }
        let is_service = caller.has_role("service") || service_roles.iter().any(|r| r == "service");
        if !is_service {
            return glance_error(
                StatusCode::FORBIDDEN,
                "http store must be enabled to use location API by normal user.",
            );
        }
        if let Err(message) = check_hash(&validation, hashing) {
            return glance_error(StatusCode::BAD_REQUEST, &message);
        }
        if image.properties.contains_key("os_glance_import_task") {
            return glance_error(StatusCode::CONFLICT, "Image has active task");
        }
        image.properties.insert(
            "os_glance_import_task".into(),
            Value::from(task_id.as_str()),
        );
        image.touch();
        let owner = image.owner.clone();
        let now = glance_time(time::OffsetDateTime::now_utc());
        inner.tasks.push(json!({
            "id": task_id, "type": "location_import", "status": "processing",
            "owner": owner, "image_id": id,
            "request_id": request.to_str().unwrap_or_default(),
            "user_id": caller.user_id, "result": null, "message": "",
            "input": {"image_id": id, "loc_url": url, "validation_data": validation},
            "created_at": now, "updated_at": now, "expires_at": null,
            "deleted_at": null, "deleted": false,
        }));
    }
    let state = state.clone();
    let image_id = id.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(TASK_DELAY).await;
        let outcome = run_task(&state, &image_id, &url, &validation);
        finish_task(&state, &image_id, &task_id, outcome);
    });
    if let Some(LocationFault::AnswerAfter(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let mut response = status_response(StatusCode::ACCEPTED);
    response.headers_mut().insert(REQUEST_ID, request);
    response
}

/// The body's schema: `url` (string) and optional `validation_data` with only the two keys.
fn parse_body(body: &Value) -> Result<(String, Value), String> {
    let Some(object) = body.as_object() else {
        return Err("Provided object does not match schema 'add_location'".into());
    };
    let Some(url) = object.get("url").and_then(Value::as_str) else {
        return Err(
            "Provided object does not match schema 'add_location': 'url' is a required property"
                .into(),
        );
    };
    let validation = object
        .get("validation_data")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let allowed = ["os_hash_algo", "os_hash_value"];
    match validation.as_object() {
        Some(v) if v.keys().all(|k| allowed.contains(&k.as_str())) => {}
        _ => return Err("Provided object does not match schema 'add_location': Additional properties are not allowed".into()),
    }
    Ok((url.to_string(), validation))
}

/// `_validate_hashing_data`: a hex value of the algorithm's digest size.
fn check_hash(validation: &Value, hashing: HashAlgo) -> Result<(), String> {
    let Some(value) = validation["os_hash_value"].as_str() else {
        return Ok(());
    };
    let algo = match validation["os_hash_algo"].as_str() {
        Some(name) => name
            .parse::<HashAlgo>()
            .map_err(|_| format!("unsupported hash type {name}"))?,
        None => hashing,
    };
    let hex_ok = value.len() % 2 == 0 && value.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_ok {
        return Err(format!(
            "os_hash_value ({value}) is not a valid hexadecimal value"
        ));
    }
    let want = algo.hex_digest(b"").len();
    if value.len() != want {
        return Err(format!(
            "os_hash_value: ({value}) is not the correct size for ({}) (should be ({}) bytes)",
            algo.name(),
            want / 2
        ));
    }
    Ok(())
}

/// The `location_import` flow; `Err` carries the task's failure message.
fn run_task(state: &GlanceState, id: &str, url: &str, validation: &Value) -> Result<(), String> {
    let (store, hashing) = {
        let inner = state.lock();
        (inner.s3_store.clone(), inner.hashing)
    };
    // _UpdateLocationTask → _check_location_uri: a known store, an object of size > 0.
    let object = store.as_ref().and_then(|store| {
        let rest = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("s3+https://"))
            .or_else(|| url.strip_prefix("s3+http://"))?;
        let key = rest.strip_prefix(&format!("{}/{}/", store.host, store.bucket))?;
        let data = store
            .s3
            .object(&store.bucket, key)
            .filter(|d| !d.is_empty())?;
        Some((store, key.to_string(), data))
    });
    let Some((store, key, data)) = object else {
        return Err("Invalid location".into());
    };
    let algo = match validation["os_hash_algo"].as_str() {
        Some(name) => name
            .parse::<HashAlgo>()
            .map_err(|_| "Invalid location".to_string())?,
        None => hashing,
    };
    let wanted = validation["os_hash_value"].as_str().map(str::to_string);
    let mut inner = state.lock();
    let Some(image) = inner.images.get_mut(id) else {
        return Err("image deleted".into());
    };
    let size = data.len() as u64;
    if !store.do_secure_hash {
        // _SetHashValues + _SetImageToActiveTask: taken as given; checksum stays unset.
        image.size = Some(size);
        image.virtual_size = None;
        image.os_hash_algo = wanted.as_ref().map(|_| algo.name().to_string());
        image.os_hash_value = wanted;
        image.checksum = None;
        image.data = Some(Stored::Bytes(data));
        image.status = ImageStatus::Active;
        image.touch();
        return Ok(());
    }
    // _CalculateHash (status importing) → _VerifyValidationData → _SetImageToActiveTask.
    let md5 = HashAlgo::Md5.hex_digest(&data);
    let actual = algo.hex_digest(&data);
    if let Some(want) = wanted.filter(|w| *w != actual) {
        // The revert pops the location, which deletes the object from the store.
        store.s3.remove_object(&store.bucket, &key);
        image.restore_queued();
        return Err(format!(
            "os_hash_value: ({want}) not matched with actual os_hash_value: ({actual})"
        ));
    }
    image.set_data(size, md5, algo.name(), actual, Stored::Bytes(data));
    Ok(())
}

fn finish_task(state: &GlanceState, id: &str, task_id: &str, outcome: Result<(), String>) {
    let mut inner = state.lock();
    if let Some(image) = inner.images.get_mut(id) {
        image.properties.remove("os_glance_import_task");
        image.touch();
    }
    let now = glance_time(time::OffsetDateTime::now_utc());
    if let Some(task) = inner.tasks.iter_mut().find(|t| t["id"] == task_id) {
        match outcome {
            Ok(()) => {
                task["status"] = Value::from("success");
                task["result"] = json!({"image_id": id});
            }
            Err(message) => {
                task["status"] = Value::from("failure");
                task["message"] = Value::from(message);
            }
        }
        task["updated_at"] = Value::from(now);
    }
}
