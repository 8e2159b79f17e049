//! A task record in Glance's task shape (`api_image_import`): what `GET /v2/tasks/{id}` serves and
//! what the journal holds, typed, with the bounds a record read back from disk is cut to.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::task::Status;

/// Longest string kept in a task record (ids are UUIDs; names and messages are cut here,
/// Glance's own property limit).
pub const MAX_TEXT: usize = 255;

/// Longest task message kept (characters).
pub const MAX_MESSAGE: usize = 1024;

/// Most stores named in a recorded import request.
pub const MAX_STORES: usize = 16;

/// Largest `verification` or `result` object kept from a journal record (serialized bytes).
const MAX_OBJECT: usize = 4 * 1024;

/// `text` cut at [`MAX_TEXT`] characters.
pub fn bounded_text(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// `message` cut at [`MAX_MESSAGE`] characters.
pub(super) fn bounded_message(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((at, _)) => message[..at].to_string(),
        None => message,
    }
}

/// The import request as a task records it (see [`ImportReq::new`]), as JSON.
pub fn import_request(
    remote_image_id: &str,
    region: &str,
    interface: &str,
    stores: Option<&[String]>,
    all_stores: Option<bool>,
    all_stores_must_succeed: Option<bool>,
) -> Value {
    let request = ImportReq::new(
        remote_image_id,
        region,
        interface,
        stores,
        all_stores,
        all_stores_must_succeed,
    );
    serde_json::to_value(request).unwrap_or(Value::Null)
}

/// One import task in Glance's JSON shape, plus `progress` and `verification`.
///
/// Read leniently: a field of the wrong type reads as absent (as Glance's own task records
/// tolerate), unknown fields are dropped, and only `id` is required. [`TaskRecord::bounded`]
/// then cuts every string, list and object to a small fixed size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    /// Always `api_image_import`.
    #[serde(rename = "type", skip_deserializing)]
    pub kind: TaskType,
    #[serde(default = "failure", deserialize_with = "status_or_failure")]
    pub status: Status,
    #[serde(default, deserialize_with = "or_default")]
    pub owner: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub image_id: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub request_id: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub input: TaskInput,
    /// `{"image_id": ...}` once the task succeeded.
    #[serde(default, deserialize_with = "or_default")]
    pub result: Option<Value>,
    #[serde(default, deserialize_with = "or_default")]
    pub message: String,
    #[serde(default, deserialize_with = "or_default")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub updated_at: Option<String>,
    /// When a finished task stops being listed ([`super::TASK_TTL`] after it ended).
    #[serde(default, deserialize_with = "or_default")]
    pub expires_at: Option<String>,
    /// Always `null`: a task here is never deleted, it expires.
    #[serde(skip_deserializing)]
    pub deleted_at: Option<String>,
    /// Always `false`.
    #[serde(skip_deserializing)]
    pub deleted: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub progress: Progress,
    /// Size and digests verified (and the stores' outcome), once the data was verified.
    #[serde(default, deserialize_with = "or_default")]
    pub verification: Option<Value>,
}

/// The task type: this sidecar runs only image imports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum TaskType {
    #[default]
    #[serde(rename = "api_image_import")]
    ApiImageImport,
}

/// `input`: the image, the import request and the stores, as upstream stores them (no token,
/// ever).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskInput {
    #[serde(default, deserialize_with = "or_default")]
    pub image_id: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub import_req: ImportReq,
    /// The stores written, or `[null]` for the default store.
    #[serde(default, deserialize_with = "strings_or_nulls")]
    pub backend: Vec<Option<String>>,
}

/// The import request: only the glance-download fields. Nothing else of the client's body is
/// kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReq {
    #[serde(default, deserialize_with = "or_default")]
    pub method: ImportMethod,
    #[serde(
        default,
        deserialize_with = "strings",
        skip_serializing_if = "Option::is_none"
    )]
    pub stores: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub all_stores: Option<bool>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub all_stores_must_succeed: Option<bool>,
}

/// The `glance-download` method and where it reads from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportMethod {
    /// Always `glance-download`.
    #[serde(skip_deserializing)]
    pub name: MethodName,
    #[serde(default, deserialize_with = "or_default")]
    pub glance_image_id: String,
    #[serde(default, deserialize_with = "or_default")]
    pub glance_region: String,
    #[serde(default, deserialize_with = "or_default")]
    pub glance_service_interface: String,
}

/// The one import method this sidecar runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum MethodName {
    #[default]
    #[serde(rename = "glance-download")]
    GlanceDownload,
}

/// Bytes verified and handed to the store so far, and the rate and time left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default, deserialize_with = "or_default")]
    pub bytes_done: u64,
    #[serde(default, deserialize_with = "or_default")]
    pub bytes_total: u64,
    #[serde(default, deserialize_with = "or_default")]
    pub rate_bytes_per_sec: u64,
    #[serde(default, deserialize_with = "or_default")]
    pub eta_seconds: Option<u64>,
}

// === impl TaskRecord ===

impl TaskRecord {
    /// A record read from JSON (a journal line's task), reduced to the known fields and
    /// bounded; `None` without a string `id`.
    pub fn from_json(task: &Value) -> Option<TaskRecord> {
        TaskRecord::deserialize(task).ok().map(TaskRecord::bounded)
    }

    /// The record in Glance's JSON shape.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The record with every string cut at [`MAX_TEXT`] (the message at [`MAX_MESSAGE`]), at
    /// most [`MAX_STORES`] stores, and `result` and `verification` kept only as small objects:
    /// whatever a journal line held, a record costs a small fixed size.
    pub fn bounded(self) -> TaskRecord {
        let text = |s: Option<String>| s.as_deref().map(bounded_text);
        TaskRecord {
            id: bounded_text(&self.id),
            kind: TaskType::ApiImageImport,
            status: self.status,
            owner: text(self.owner),
            image_id: text(self.image_id),
            request_id: text(self.request_id),
            user_id: text(self.user_id),
            input: self.input.bounded(),
            result: small_object(self.result),
            message: bounded_message(self.message),
            created_at: text(self.created_at),
            updated_at: text(self.updated_at),
            expires_at: text(self.expires_at),
            deleted_at: None,
            deleted: false,
            progress: self.progress,
            verification: small_object(self.verification),
        }
    }
}

/// `value` if it is an object of at most [`MAX_OBJECT`] bytes serialized.
fn small_object(value: Option<Value>) -> Option<Value> {
    value.filter(|v| v.is_object() && v.to_string().len() <= MAX_OBJECT)
}

// === impl TaskInput ===

impl TaskInput {
    /// The known fields of an `input` object (lenient, not bounded).
    pub fn from_json(input: &Value) -> TaskInput {
        TaskInput::deserialize(input).unwrap_or_default()
    }

    fn bounded(self) -> TaskInput {
        let method = &self.import_req.method;
        TaskInput {
            image_id: self.image_id.as_deref().map(bounded_text),
            import_req: ImportReq::new(
                &method.glance_image_id,
                &method.glance_region,
                &method.glance_service_interface,
                self.import_req.stores.as_deref(),
                self.import_req.all_stores,
                self.import_req.all_stores_must_succeed,
            ),
            backend: self
                .backend
                .into_iter()
                .take(MAX_STORES)
                .map(|b| b.as_deref().map(bounded_text))
                .collect(),
        }
    }
}

// === impl ImportReq ===

impl ImportReq {
    /// The import request as a task records it: only the glance-download fields, every string
    /// cut at [`MAX_TEXT`] and at most [`MAX_STORES`] stores.
    pub fn new(
        remote_image_id: &str,
        region: &str,
        interface: &str,
        stores: Option<&[String]>,
        all_stores: Option<bool>,
        all_stores_must_succeed: Option<bool>,
    ) -> ImportReq {
        ImportReq {
            method: ImportMethod {
                name: MethodName::GlanceDownload,
                glance_image_id: bounded_text(remote_image_id),
                glance_region: bounded_text(region),
                glance_service_interface: bounded_text(interface),
            },
            stores: stores.map(|s| s.iter().take(MAX_STORES).map(|s| bounded_text(s)).collect()),
            all_stores,
            all_stores_must_succeed,
        }
    }
}

// === lenient reading ===

/// The field as `T`, or `T::default()` when it has another type.
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// The strings of a list (other items dropped); `None` when it is not a list.
fn strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(value.as_array().map(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    }))
}

/// A list's items as strings, any other item as `null`; empty when it is not a list.
fn strings_or_nulls<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Option<String>>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(items
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect())
}

/// The status, or `failure` when it is not one Glance names.
pub(crate) fn status_or_failure<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Status, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(Status::deserialize(value).unwrap_or(Status::Failure))
}

fn failure() -> Status {
    Status::Failure
}
