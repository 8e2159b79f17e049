//! One import task while it runs: its status, message and progress, and its record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::record::{bounded_message, Progress, TaskInput, TaskRecord, TaskType};
use super::TASK_TTL;
use crate::glance::ImageId;

/// Task status, as Glance names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// `{"image_id", "import_req", "backend"}` as upstream stores it (no token, ever); served
    /// as its known fields ([`TaskInput`]).
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
    /// A `pending` task with a new id.
    pub(super) fn new(info: NewTask) -> Task {
        let now = OffsetDateTime::now_utc();
        Task {
            id: uuid::Uuid::new_v4().to_string(),
            info,
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
        }
    }

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

    pub(super) fn expired(&self, now: Instant) -> bool {
        matches!(self.lock().finished, Some((at, _)) if now.duration_since(at) > TASK_TTL)
    }

    /// The task's record, with its progress as of now.
    pub fn to_record(&self) -> TaskRecord {
        let state = self.lock();
        let expires_at = state
            .finished
            .map(|(_, at)| timestamp(at + time::Duration::seconds(TASK_TTL.as_secs() as i64)));
        TaskRecord {
            id: self.id.clone(),
            kind: TaskType::ApiImageImport,
            status: state.status,
            owner: Some(self.info.owner.clone()),
            image_id: Some(self.info.image_id.to_string()),
            request_id: Some(self.info.request_id.clone()),
            user_id: Some(self.info.user_id.clone()),
            input: TaskInput::from_json(&self.info.input),
            result: state.result.clone(),
            message: state.message.clone(),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(state.updated_at)),
            expires_at,
            deleted_at: None,
            deleted: false,
            progress: self.progress(&state),
            verification: state.verification.clone(),
        }
    }

    /// Bytes done and total, the mean rate since the start, and the time left at that rate.
    fn progress(&self, state: &State) -> Progress {
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
        Progress {
            bytes_done: done,
            bytes_total: total,
            rate_bytes_per_sec: rate.round() as u64,
            eta_seconds: eta,
        }
    }

    /// The task in Glance's JSON shape, plus `progress` and `verification`.
    pub fn to_json(&self) -> Value {
        self.to_record().to_json()
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
