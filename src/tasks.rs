//! Import tasks: one record per import in Glance's task shape (`api_image_import`), with progress
//! while it runs, and the per-image lock that keeps two imports of one image apart.
//!
//! Records live in memory, bounded: finished tasks are kept for [`TASK_TTL`] (Glance's default
//! `task_time_to_live`) and at most [`MAX_FINISHED`] of them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::glance::ImageId;

/// How long a finished task stays visible (Glance's `[task] task_time_to_live`, 48 h).
pub const TASK_TTL: Duration = Duration::from_secs(48 * 3600);

/// Most finished tasks kept in memory; the oldest are dropped first.
pub const MAX_FINISHED: usize = 10_000;

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
        state.message = message.into();
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
        state.message = message.into();
        state.verification = Some(verification);
        finish(&mut state);
    }

    pub fn fail(&self, message: impl Into<String>) {
        let mut state = self.lock();
        state.status = Status::Failure;
        state.message = message.into();
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
    by_id: HashMap<String, Arc<Task>>,
    finished: VecDeque<String>,
    running: HashMap<ImageId, String>,
    /// Tasks of earlier runs of this sidecar, read back from the journal, by task id.
    restored: HashMap<String, Value>,
    restored_order: VecDeque<String>,
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
        inner.finished.push_back(self.task.id.clone());
        while inner.finished.len() > MAX_FINISHED {
            if let Some(old) = inner.finished.pop_front() {
                inner.by_id.remove(&old);
            }
        }
    }
}

// === impl Tasks ===

impl Tasks {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates a `pending` task and takes the image's import lock, or says who holds it.
    pub fn begin(self: &Arc<Self>, new: NewTask) -> Result<ImportLock, Busy> {
        let mut inner = self.lock();
        if let Some(task_id) = inner.running.get(&new.image_id) {
            return Err(Busy {
                image_id: new.image_id.clone(),
                task_id: task_id.clone(),
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
            .insert(task.info.image_id.clone(), task.id.clone());
        inner.by_id.insert(task.id.clone(), task.clone());
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
        let mut inner = self.lock();
        inner.by_id.remove(&id);
        inner.finished.retain(|t| *t != id);
    }

    /// Whether an import of `image_id` is running here.
    pub fn is_running(&self, image_id: &ImageId) -> bool {
        self.lock().running.contains_key(image_id)
    }

    /// The tasks of one image, oldest first, dropping expired ones.
    pub fn for_image(&self, image_id: &ImageId) -> Vec<Arc<Task>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .by_id
            .values()
            .filter(|t| t.expired(now))
            .map(|t| t.id.clone())
            .collect();
        for id in &expired {
            inner.by_id.remove(id);
        }
        inner.finished.retain(|id| !expired.contains(id));
        let mut tasks: Vec<Arc<Task>> = inner
            .by_id
            .values()
            .filter(|t| &t.info.image_id == image_id)
            .cloned()
            .collect();
        tasks.sort_by_key(|t| t.created_at);
        tasks
    }

    /// Keeps (or replaces, by id) the record of a task from an earlier run.
    pub fn restore(&self, task: Value) {
        let Some(id) = task["id"].as_str().map(str::to_string) else {
            return;
        };
        let mut inner = self.lock();
        if inner.restored.insert(id.clone(), task).is_none() {
            inner.restored_order.push_back(id);
        }
        while inner.restored_order.len() > MAX_FINISHED {
            if let Some(old) = inner.restored_order.pop_front() {
                inner.restored.remove(&old);
            }
        }
    }

    /// Records from earlier runs for one image.
    pub fn restored_for_image(&self, image_id: &ImageId) -> Vec<Value> {
        let inner = self.lock();
        inner
            .restored_order
            .iter()
            .filter_map(|id| inner.restored.get(id))
            .filter(|t| t["image_id"].as_str() == Some(image_id.as_str()))
            .cloned()
            .collect()
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
        for task in inner.by_id.values() {
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
}
