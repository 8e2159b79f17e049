//! Import tasks: one record per import in Glance's task shape (`api_image_import`), with progress
//! while it runs, and the per-image lock that keeps two imports of one image apart.
//!
//! Records live in memory, bounded: finished tasks are kept for [`TASK_TTL`] (Glance's default
//! `task_time_to_live`), and only the newest [`Limits::per_image`] of an image,
//! [`Limits::per_project`] of a project and [`Limits::total`] in all — tasks finished here and
//! tasks read back from the journal together. A record holds only the known import fields, each
//! string cut at [`MAX_TEXT`], so memory is at most `total` × a small fixed record size.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::glance::ImageId;

/// How long a finished task stays visible (Glance's `[task] task_time_to_live`, 48 h).
pub const TASK_TTL: Duration = Duration::from_secs(48 * 3600);

/// Default of `max_finished_tasks`: most finished tasks kept in memory in all; the oldest are
/// dropped first.
pub const MAX_FINISHED: usize = 10_000;

/// Default of `max_tasks_per_image`: finished tasks kept (and listed) per image.
pub const MAX_PER_IMAGE: usize = 20;

/// Default of `max_tasks_per_project`: finished tasks kept per project (image owner).
pub const MAX_PER_PROJECT: usize = 1_000;

/// Longest string kept in a task record (ids are UUIDs; names and messages are cut here,
/// Glance's own property limit).
pub const MAX_TEXT: usize = 255;

/// Longest task message kept (characters).
pub const MAX_MESSAGE: usize = 1024;

fn bounded_message(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((at, _)) => message[..at].to_string(),
        None => message,
    }
}

/// Most stores named in a recorded import request.
pub const MAX_STORES: usize = 16;

/// Largest `verification` or `result` object kept from a journal record (serialized bytes).
const MAX_OBJECT: usize = 4 * 1024;

/// How many finished tasks are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_image: usize,
    pub per_project: usize,
    pub total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_image: MAX_PER_IMAGE,
            per_project: MAX_PER_PROJECT,
            total: MAX_FINISHED,
        }
    }
}

/// `text` cut at [`MAX_TEXT`] characters.
pub fn bounded_text(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// The import request as a task records it: only the glance-download fields, bounded
/// (`glance_service_interface` defaulted to `public`). Nothing else of the client's body is kept.
pub fn import_request(
    remote_image_id: &str,
    region: &str,
    interface: &str,
    stores: Option<&[String]>,
    all_stores: Option<bool>,
    all_stores_must_succeed: Option<bool>,
) -> Value {
    let mut request = serde_json::Map::new();
    request.insert(
        "method".into(),
        json!({
            "name": "glance-download",
            "glance_image_id": bounded_text(remote_image_id),
            "glance_region": bounded_text(region),
            "glance_service_interface": bounded_text(interface),
        }),
    );
    if let Some(stores) = stores {
        let stores: Vec<String> = stores
            .iter()
            .take(MAX_STORES)
            .map(|s| bounded_text(s))
            .collect();
        request.insert("stores".into(), Value::from(stores));
    }
    if let Some(all) = all_stores {
        request.insert("all_stores".into(), Value::from(all));
    }
    if let Some(all) = all_stores_must_succeed {
        request.insert("all_stores_must_succeed".into(), Value::from(all));
    }
    Value::Object(request)
}

/// A task record read back from the journal, reduced to the known fields of Glance's task shape
/// with every string bounded; `None` without a string `id`. Whatever else the line held (a large
/// import body written by an older version, a forged field) is dropped.
pub fn bounded_record(task: &Value) -> Option<Value> {
    let text = |key: &str| task.get(key).and_then(Value::as_str).map(bounded_text);
    let id = text("id")?;
    let object = |key: &str| {
        task.get(key)
            .filter(|v| v.is_object() && v.to_string().len() <= MAX_OBJECT)
            .cloned()
    };
    let input = &task["input"];
    let req = &input["import_req"];
    let method = &req["method"];
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let stores: Option<Vec<String>> = req["stores"].as_array().map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    });
    let backend: Vec<Value> = input["backend"]
        .as_array()
        .map(|a| {
            a.iter()
                .take(MAX_STORES)
                .map(|b| {
                    b.as_str()
                        .map(|s| Value::from(bounded_text(s)))
                        .unwrap_or(Value::Null)
                })
                .collect()
        })
        .unwrap_or_default();
    let progress = &task["progress"];
    Some(json!({
        "id": id,
        "type": "api_image_import",
        "status": text("status").unwrap_or_else(|| "failure".into()),
        "owner": text("owner"),
        "image_id": text("image_id"),
        "request_id": text("request_id"),
        "user_id": text("user_id"),
        "input": {
            "image_id": input["image_id"].as_str().map(bounded_text),
            "import_req": import_request(
                &str_of(&method["glance_image_id"]),
                &str_of(&method["glance_region"]),
                &str_of(&method["glance_service_interface"]),
                stores.as_deref(),
                req["all_stores"].as_bool(),
                req["all_stores_must_succeed"].as_bool(),
            ),
            "backend": backend,
        },
        "result": object("result"),
        "message": bounded_message(task["message"].as_str().unwrap_or_default().to_string()),
        "created_at": text("created_at"),
        "updated_at": text("updated_at"),
        "expires_at": text("expires_at"),
        "deleted_at": null,
        "deleted": false,
        "progress": {
            "bytes_done": progress["bytes_done"].as_u64().unwrap_or(0),
            "bytes_total": progress["bytes_total"].as_u64().unwrap_or(0),
            "rate_bytes_per_sec": progress["rate_bytes_per_sec"].as_u64().unwrap_or(0),
            "eta_seconds": progress["eta_seconds"].as_u64(),
        },
        "verification": object("verification"),
    }))
}

/// Task status, as Glance names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Processing,
    Success,
    Failure,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Success => "success",
            Status::Failure => "failure",
        }
    }

    /// Whether the task has ended (`success` or `failure`).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Success | Status::Failure)
    }
}

/// Facts fixed when the task is created.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub image_id: ImageId,
    pub owner: String,
    pub user_id: String,
    pub request_id: String,
    /// `{"image_id", "import_req", "backend"}` as upstream stores it (no token, ever).
    pub input: Value,
}

/// One import task.
#[derive(Debug)]
pub struct Task {
    pub id: String,
    pub info: NewTask,
    created_at: OffsetDateTime,
    /// Bytes verified and handed to the store so far.
    pub bytes_done: Arc<AtomicU64>,
    bytes_total: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    status: Status,
    message: String,
    result: Option<Value>,
    verification: Option<Value>,
    updated_at: OffsetDateTime,
    started: Option<Instant>,
    finished: Option<(Instant, OffsetDateTime)>,
}

// === impl Task ===

impl Task {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub fn message(&self) -> String {
        self.lock().message.clone()
    }

    /// Marks the task running; `total` is the source image's size.
    pub fn start(&self, total: u64) {
        self.bytes_total.store(total, Ordering::Relaxed);
        let mut state = self.lock();
        state.status = Status::Processing;
        state.started = Some(Instant::now());
        state.updated_at = OffsetDateTime::now_utc();
    }

    /// Sets the size once the source image has been read.
    pub fn set_total(&self, total: u64) {
        self.bytes_total.store(total, Ordering::Relaxed);
    }

    /// Records a human-readable step in `message` while running.
    pub fn note(&self, message: impl Into<String>) {
        let mut state = self.lock();
        state.message = bounded_message(message.into());
        state.updated_at = OffsetDateTime::now_utc();
    }

    pub fn succeed(&self, verification: Value) {
        let mut state = self.lock();
        state.status = Status::Success;
        state.message = String::new();
        state.result = Some(json!({"image_id": self.info.image_id.as_str()}));
        state.verification = Some(verification);
        finish(&mut state);
    }

    /// Fails the task although its data was verified and stored (e.g. a required extra store
    /// could not be written): the verification stays visible beside the message.
    pub fn fail_verified(&self, message: impl Into<String>, verification: Value) {
        let mut state = self.lock();
        state.status = Status::Failure;
        state.message = bounded_message(message.into());
        state.verification = Some(verification);
        finish(&mut state);
    }

    pub fn fail(&self, message: impl Into<String>) {
        let mut state = self.lock();
        state.status = Status::Failure;
        state.message = bounded_message(message.into());
        finish(&mut state);
    }

    fn expired(&self, now: Instant) -> bool {
        matches!(self.lock().finished, Some((at, _)) if now.duration_since(at) > TASK_TTL)
    }

    /// The task in Glance's JSON shape, plus `progress` and `verification`.
    pub fn to_json(&self) -> Value {
        let state = self.lock();
        let done = self.bytes_done.load(Ordering::Relaxed);
        let total = self.bytes_total.load(Ordering::Relaxed);
        let elapsed = match (state.started, state.finished) {
            (Some(start), Some((end, _))) => end.duration_since(start),
            (Some(start), None) => start.elapsed(),
            _ => Duration::ZERO,
        };
        let rate = if elapsed.as_secs_f64() > 0.0 {
            done as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        };
        let eta = (state.status == Status::Processing && rate > 0.0)
            .then(|| (total.saturating_sub(done) as f64 / rate).ceil() as u64);
        let expires_at = state
            .finished
            .map(|(_, at)| timestamp(at + time::Duration::seconds(TASK_TTL.as_secs() as i64)));
        json!({
            "id": self.id,
            "type": "api_image_import",
            "status": state.status.as_str(),
            "owner": self.info.owner,
            "image_id": self.info.image_id.as_str(),
            "request_id": self.info.request_id,
            "user_id": self.info.user_id,
            "input": self.info.input,
            "result": state.result,
            "message": state.message,
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(state.updated_at),
            "expires_at": expires_at,
            "deleted_at": null,
            "deleted": false,
            "progress": {
                "bytes_done": done,
                "bytes_total": total,
                "rate_bytes_per_sec": rate.round() as u64,
                "eta_seconds": eta,
            },
            "verification": state.verification,
        })
    }
}

fn finish(state: &mut State) {
    let now = OffsetDateTime::now_utc();
    state.updated_at = now;
    state.finished = Some((Instant::now(), now));
}

/// Glance's task timestamp format: `2026-11-25T12:00:00.000000`.
pub fn timestamp(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
    );
    at.format(&format).unwrap_or_default()
}

/// Another import of this image is running.
#[derive(Debug, Clone, thiserror::Error)]
#[error("image {image_id} has an import running (task {task_id})")]
pub struct Busy {
    pub image_id: ImageId,
    pub task_id: String,
}

/// All tasks of this sidecar.
#[derive(Debug, Default)]
pub struct Tasks {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Running tasks, by image.
    running: HashMap<ImageId, Arc<Task>>,
    /// Finished tasks (of this run, and read back from the journal), bounded.
    finished: Retained<Kept>,
}

/// A finished task: one of this run, or the record of one from an earlier run.
#[derive(Debug, Clone)]
enum Kept {
    Live(Arc<Task>),
    Restored(Value),
}

impl Kept {
    fn to_json(&self) -> Value {
        match self {
            Kept::Live(task) => task.to_json(),
            Kept::Restored(record) => record.clone(),
        }
    }
}

/// Finished records, oldest first, within [`Limits`]: adding one drops the oldest of its image,
/// of its project, and of all, as needed. Also used to read the journal back in bounded memory.
#[derive(Debug)]
pub struct Retained<T> {
    limits: Limits,
    next: u64,
    by_seq: BTreeMap<u64, (String, String, String, T)>,
    by_id: HashMap<String, u64>,
    by_image: HashMap<String, VecDeque<u64>>,
    by_project: HashMap<String, VecDeque<u64>>,
}

impl<T> Default for Retained<T> {
    fn default() -> Self {
        Retained::new(Limits::default())
    }
}

impl<T> Retained<T> {
    pub fn new(limits: Limits) -> Self {
        Retained {
            limits: Limits {
                per_image: limits.per_image.max(1),
                per_project: limits.per_project.max(1),
                total: limits.total.max(1),
            },
            next: 0,
            by_seq: BTreeMap::new(),
            by_id: HashMap::new(),
            by_image: HashMap::new(),
            by_project: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Adds (or replaces, by id) a record as the newest, then drops the oldest beyond the limits.
    pub fn insert(&mut self, id: &str, image: &str, project: &str, value: T) {
        self.remove(id);
        let seq = self.next;
        self.next += 1;
        self.by_seq.insert(
            seq,
            (
                id.to_string(),
                image.to_string(),
                project.to_string(),
                value,
            ),
        );
        self.by_id.insert(id.to_string(), seq);
        let image_seqs = self.by_image.entry(image.to_string()).or_default();
        image_seqs.push_back(seq);
        let over_image = (image_seqs.len() > self.limits.per_image).then(|| image_seqs[0]);
        if let Some(old) = over_image {
            self.drop_seq(old);
        }
        let project_seqs = self.by_project.entry(project.to_string()).or_default();
        project_seqs.push_back(seq);
        let over_project = (project_seqs.len() > self.limits.per_project).then(|| project_seqs[0]);
        if let Some(old) = over_project {
            self.drop_seq(old);
        }
        while self.by_seq.len() > self.limits.total {
            match self.by_seq.keys().next().copied() {
                Some(old) => {
                    self.drop_seq(old);
                }
                None => break,
            }
        }
    }

    /// Drops the record `id`, if kept; returns it.
    pub fn remove(&mut self, id: &str) -> Option<T> {
        let seq = *self.by_id.get(id)?;
        self.drop_seq(seq)
    }

    /// Drops the oldest record if `expired` says so; returns whether it did.
    fn drop_oldest_if(&mut self, expired: impl Fn(&T) -> bool) -> bool {
        let oldest = self
            .by_seq
            .iter()
            .next()
            .filter(|(_, (_, _, _, value))| expired(value))
            .map(|(seq, _)| *seq);
        match oldest {
            Some(seq) => self.drop_seq(seq).is_some(),
            None => false,
        }
    }

    fn drop_seq(&mut self, seq: u64) -> Option<T> {
        let (id, image, project, value) = self.by_seq.remove(&seq)?;
        self.by_id.remove(&id);
        for (index, key) in [(&mut self.by_image, image), (&mut self.by_project, project)] {
            if let Some(seqs) = index.get_mut(&key) {
                if let Some(at) = seqs.iter().position(|s| *s == seq) {
                    seqs.remove(at);
                }
                if seqs.is_empty() {
                    index.remove(&key);
                }
            }
        }
        Some(value)
    }

    /// The records of one image, oldest first (at most `per_image`).
    pub fn for_image(&self, image: &str) -> impl Iterator<Item = &T> {
        self.by_image
            .get(image)
            .into_iter()
            .flatten()
            .filter_map(|seq| self.by_seq.get(seq).map(|(_, _, _, value)| value))
    }

    /// Every record, oldest first.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.by_seq.values().map(|(_, _, _, value)| value)
    }

    /// Every record, oldest first, taken out.
    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.by_seq.into_values().map(|(_, _, _, value)| value)
    }
}

/// Holds an image's import lock; dropping it releases the lock and files the task as finished.
#[derive(Debug)]
pub struct ImportLock {
    tasks: Arc<Tasks>,
    pub task: Arc<Task>,
}

impl Drop for ImportLock {
    fn drop(&mut self) {
        if matches!(self.task.status(), Status::Pending | Status::Processing) {
            self.task.fail("The import was interrupted");
        }
        let mut inner = self.tasks.lock();
        inner.running.remove(&self.task.info.image_id);
        let task = &self.task;
        inner.finished.insert(
            &task.id,
            task.info.image_id.as_str(),
            &task.info.owner,
            Kept::Live(task.clone()),
        );
    }
}

// === impl Tasks ===

impl Tasks {
    /// No tasks yet; finished ones are kept within `limits`.
    pub fn new(limits: Limits) -> Tasks {
        Tasks {
            inner: Mutex::new(Inner {
                running: HashMap::new(),
                finished: Retained::new(limits),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates a `pending` task and takes the image's import lock, or says who holds it.
    pub fn begin(self: &Arc<Self>, new: NewTask) -> Result<ImportLock, Busy> {
        let mut inner = self.lock();
        if let Some(task) = inner.running.get(&new.image_id) {
            return Err(Busy {
                image_id: new.image_id.clone(),
                task_id: task.id.clone(),
            });
        }
        let now = OffsetDateTime::now_utc();
        let task = Arc::new(Task {
            id: uuid::Uuid::new_v4().to_string(),
            info: new,
            created_at: now,
            bytes_done: Arc::new(AtomicU64::new(0)),
            bytes_total: AtomicU64::new(0),
            state: Mutex::new(State {
                status: Status::Pending,
                message: String::new(),
                result: None,
                verification: None,
                updated_at: now,
                started: None,
                finished: None,
            }),
        });
        inner
            .running
            .insert(task.info.image_id.clone(), task.clone());
        Ok(ImportLock {
            tasks: self.clone(),
            task,
        })
    }

    /// Drops a task that never started (its claim on the image was lost to another instance):
    /// no record of it remains.
    pub fn forget(&self, lock: ImportLock) {
        let id = lock.task.id.clone();
        drop(lock);
        self.lock().finished.remove(&id);
    }

    /// Whether an import of `image_id` is running here.
    pub fn is_running(&self, image_id: &ImageId) -> bool {
        self.lock().running.contains_key(image_id)
    }

    /// Drops finished tasks of this run older than [`TASK_TTL`] (the oldest come first).
    fn expire(inner: &mut Inner) {
        let now = Instant::now();
        while inner
            .finished
            .drop_oldest_if(|kept| matches!(kept, Kept::Live(task) if task.expired(now)))
        {}
    }

    /// The tasks of this run for one image, oldest first: the finished ones kept, then the
    /// running one.
    pub fn for_image(&self, image_id: &ImageId) -> Vec<Arc<Task>> {
        let mut inner = self.lock();
        Tasks::expire(&mut inner);
        let mut tasks: Vec<Arc<Task>> = inner
            .finished
            .for_image(image_id.as_str())
            .filter_map(|kept| match kept {
                Kept::Live(task) => Some(task.clone()),
                Kept::Restored(_) => None,
            })
            .collect();
        tasks.extend(inner.running.get(image_id).cloned());
        tasks
    }

    /// Every task of one image in Glance's JSON shape, oldest first: at most
    /// [`Limits::per_image`] finished ones (of this run or earlier ones) and the running one.
    pub fn records_for_image(&self, image_id: &ImageId) -> Vec<Value> {
        let mut inner = self.lock();
        Tasks::expire(&mut inner);
        let mut records: Vec<Value> = inner
            .finished
            .for_image(image_id.as_str())
            .map(Kept::to_json)
            .collect();
        records.extend(inner.running.get(image_id).map(|t| t.to_json()));
        records
    }

    /// Keeps (or replaces, by id) the record of a task from an earlier run, reduced to its
    /// known, bounded fields.
    pub fn restore(&self, task: &Value) {
        let Some(record) = bounded_record(task) else {
            return;
        };
        let (Some(id), Some(image)) = (record["id"].as_str(), record["image_id"].as_str()) else {
            return;
        };
        let (id, image) = (id.to_string(), image.to_string());
        let owner = record["owner"].as_str().unwrap_or_default().to_string();
        self.lock()
            .finished
            .insert(&id, &image, &owner, Kept::Restored(record));
    }

    /// Finished tasks held in memory (of this run and earlier ones).
    pub fn retained(&self) -> usize {
        self.lock().finished.len()
    }

    /// Counts of tasks by status (for `/metrics`).
    pub fn counts(&self) -> [(Status, usize); 4] {
        let inner = self.lock();
        let mut counts = [
            (Status::Pending, 0),
            (Status::Processing, 0),
            (Status::Success, 0),
            (Status::Failure, 0),
        ];
        let live = inner
            .running
            .values()
            .chain(inner.finished.values().filter_map(|kept| match kept {
                Kept::Live(task) => Some(task),
                Kept::Restored(_) => None,
            }));
        for task in live {
            let status = task.status();
            if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == status) {
                entry.1 += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_task(image: &str) -> NewTask {
        NewTask {
            image_id: ImageId::parse(image).unwrap(),
            owner: "p".into(),
            user_id: "u".into(),
            request_id: "req-1".into(),
            input: json!({}),
        }
    }

    const IMAGE: &str = "c4705b36-b281-40f6-a01d-bf98883ead8e";

    #[test]
    fn one_import_per_image() {
        let tasks = Arc::new(Tasks::default());
        let lock = tasks.begin(new_task(IMAGE)).unwrap();
        assert!(tasks.begin(new_task(IMAGE)).is_err());
        lock.task.succeed(json!({}));
        drop(lock);
        let again = tasks.begin(new_task(IMAGE)).unwrap();
        drop(again);
        let listed = tasks.for_image(&ImageId::parse(IMAGE).unwrap());
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].status(), Status::Success);
        assert_eq!(
            listed[1].status(),
            Status::Failure,
            "a dropped lock fails its task"
        );
    }

    #[test]
    fn json_shape_and_progress() {
        let tasks = Arc::new(Tasks::default());
        let lock = tasks.begin(new_task(IMAGE)).unwrap();
        lock.task.start(1000);
        lock.task.bytes_done.store(250, Ordering::Relaxed);
        let v = lock.task.to_json();
        assert_eq!(v["type"], "api_image_import");
        assert_eq!(v["status"], "processing");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["progress"]["bytes_done"], 250);
        assert_eq!(v["progress"]["bytes_total"], 1000);
        assert!(v["expires_at"].is_null());
        lock.task.fail("boom");
        let v = lock.task.to_json();
        assert_eq!(v["message"], "boom");
        assert!(v["expires_at"].is_string());
        assert_eq!(
            timestamp(time::macros::datetime!(2020-12-18 05:20:38 UTC)),
            "2020-12-18T05:20:38.000000"
        );
    }

    fn image(n: usize) -> String {
        format!("c4705b36-b281-40f6-a01d-{n:012}")
    }

    fn finish(tasks: &Arc<Tasks>, image: &str, owner: &str) {
        let mut new = new_task(image);
        new.owner = owner.into();
        let lock = tasks.begin(new).unwrap();
        lock.task.fail("unknown region");
    }

    #[test]
    fn finished_tasks_are_bounded_per_image_per_project_and_in_all() {
        let limits = Limits {
            per_image: 3,
            per_project: 10,
            total: 25,
        };
        let tasks = Arc::new(Tasks::new(limits));
        for _ in 0..50 {
            finish(&tasks, &image(1), "p1");
        }
        let one = ImageId::parse(&image(1)).unwrap();
        assert_eq!(tasks.for_image(&one).len(), 3);
        assert_eq!(tasks.records_for_image(&one).len(), 3);
        for n in 0..40 {
            finish(&tasks, &image(100 + n), "p2");
        }
        assert_eq!(tasks.retained(), 13, "3 of p1's image, 10 of p2");
        for n in 0..40 {
            finish(&tasks, &image(200 + n), &format!("p{n}"));
        }
        assert_eq!(tasks.retained(), 25);
        // A running task is listed beside the finished ones, newest last.
        let lock = tasks.begin(new_task(&image(1))).unwrap();
        let records = tasks.records_for_image(&one);
        assert!(records.len() <= 4);
        assert_eq!(records.last().unwrap()["id"], lock.task.id.as_str());
        drop(lock);
        // Restored records share the same bounds.
        for n in 0..30 {
            let mut record = tasks.records_for_image(&one)[0].clone();
            record["id"] = Value::from(format!("restored-{n}"));
            tasks.restore(&record);
        }
        assert_eq!(tasks.records_for_image(&one).len(), 3);
        assert_eq!(tasks.retained(), 25);
    }

    #[test]
    fn a_padded_import_body_is_not_recorded() {
        let padding = Value::from(vec![0; 30_000]);
        let record = json!({
            "id": "t", "image_id": IMAGE, "owner": "p", "status": "failure",
            "message": "m".repeat(100_000),
            "input": {"image_id": IMAGE, "backend": [null], "import_req": {
                "method": {"name": "glance-download", "glance_region": "R".repeat(10_000),
                           "glance_image_id": IMAGE, "pad": padding.clone()},
                "stores": vec!["s".repeat(1000); 200], "pad": padding}},
            "verification": {"pad": vec!["x"; 10_000]},
        });
        let bounded = bounded_record(&record).unwrap();
        let size = bounded.to_string().len();
        assert!(size < 8 * 1024, "{size} bytes");
        assert!(!bounded.to_string().contains("pad"));
        assert_eq!(
            bounded["input"]["import_req"]["stores"]
                .as_array()
                .unwrap()
                .len(),
            MAX_STORES
        );
        assert!(bounded["verification"].is_null());
        assert_eq!(bounded["message"].as_str().unwrap().len(), MAX_MESSAGE);
    }
}
