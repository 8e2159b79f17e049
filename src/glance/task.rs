//! Glance's tasks as typed records (`GET /v2/images/{id}/tasks`), the one rule telling which of
//! an image's tasks a call started, and [`follow_task`], which polls that task to its end.
//!
//! The rule: Glance records its request context's id in the task a call starts
//! (`request_id`) and answers the call with that id, `req-` prefixed, in
//! `x-openstack-request-id`. A caller's own `x-openstack-request-id` may have set the context's
//! id without the prefix. No other task of the image is ever taken for the call's: a proxy that
//! rewrites request ids makes the task unfindable, not mistaken.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A task's state as Glance reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Processing,
    Success,
    Failure,
    /// Anything else (or nothing): not ended.
    #[default]
    #[serde(other)]
    Unknown,
}

impl TaskStatus {
    /// The status as Glance writes it (`None` for an unknown one).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            TaskStatus::Pending => Some("pending"),
            TaskStatus::Processing => Some("processing"),
            TaskStatus::Success => Some("success"),
            TaskStatus::Failure => Some("failure"),
            TaskStatus::Unknown => None,
        }
    }
}

/// The fields of a Glance task the sidecar and its tools read. Fields of another type than
/// Glance's read as absent; the list they come in is read with a size cap.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GlanceTask {
    #[serde(default, deserialize_with = "lenient")]
    pub id: String,
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    pub kind: String,
    #[serde(default, deserialize_with = "lenient")]
    pub status: TaskStatus,
    #[serde(default, deserialize_with = "lenient")]
    pub request_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub progress: Option<Progress>,
}

/// A task's `progress`, as this sidecar reports it on its own tasks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Progress {
    #[serde(default, deserialize_with = "lenient")]
    pub bytes_done: Option<u64>,
}

/// A field of an unexpected type reads as its default instead of failing the whole list.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

impl GlanceTask {
    /// Whether the task was started by the call answered with `request_id` (see the module
    /// documentation).
    pub fn started_by(&self, request_id: &str) -> bool {
        let Some(recorded) = self.request_id.as_deref().filter(|r| !r.is_empty()) else {
            return false;
        };
        recorded == request_id || request_id.strip_prefix("req-") == Some(recorded)
    }

    /// Whether the task ended (`success` or `failure`).
    pub fn has_ended(&self) -> bool {
        matches!(self.status, TaskStatus::Success | TaskStatus::Failure)
    }

    /// The task's message, when it gave a non-empty one.
    pub fn reason(&self) -> Option<&str> {
        self.message.as_deref().filter(|m| !m.is_empty())
    }

    /// The tasks of a task list document (`{"tasks": [...]}`); entries that are not objects are
    /// left out.
    pub fn list(doc: &Value) -> Vec<GlanceTask> {
        doc.get("tasks")
            .and_then(Value::as_array)
            .map(|tasks| {
                tasks
                    .iter()
                    .filter(|t| t.is_object())
                    .filter_map(|t| GlanceTask::deserialize(t).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Which of an image's tasks a call started.
#[derive(Debug, PartialEq)]
pub enum Ours<'a> {
    /// None of them (yet).
    None,
    One(&'a GlanceTask),
    /// Several tasks carry the call's request id: none can be taken for it.
    Several,
}

/// The task among `tasks` that the call answered with `request_id` started.
pub fn find_ours<'a>(tasks: &'a [GlanceTask], request_id: &str) -> Ours<'a> {
    let mut ours = tasks.iter().filter(|t| t.started_by(request_id));
    match (ours.next(), ours.next()) {
        (None, _) => Ours::None,
        (Some(task), None) => Ours::One(task),
        (Some(_), Some(_)) => Ours::Several,
    }
}

/// How a task is polled.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The first pause between polls; each pause doubles up to `max`.
    pub first: Duration,
    pub max: Duration,
    /// How long the task may be absent from the list before following fails.
    pub appear_within: Duration,
    /// How long the task may run before following fails (`None`: no bound here).
    pub end_within: Option<Duration>,
    /// Consecutive failed listings tolerated (the last one's error is returned).
    pub failed_lists: u32,
}

/// Why a task could not be followed to its end.
#[derive(Debug, thiserror::Error)]
pub enum FollowError<E> {
    /// The call's answer had no request id, so its task cannot be told from the others.
    #[error("the answer carries no x-openstack-request-id")]
    NoRequestId,
    /// No task of the call was listed in time.
    #[error("no task of the call is listed")]
    NotListed,
    /// Several tasks carry the call's request id.
    #[error("several tasks carry the call's request id")]
    Several,
    /// The task did not end in time.
    #[error("the task did not end within {0:?}")]
    TimedOut(Duration),
    /// Listing the tasks failed.
    #[error(transparent)]
    List(E),
}

/// Polls `list` (the image's tasks) until the task the call answered with `request_id` started
/// ends; returns it (`success` or `failure`). `seen` is shown the task at every poll.
pub async fn follow_task<E, F, Fut>(
    request_id: &str,
    pace: Pace,
    mut list: F,
    mut seen: impl FnMut(&GlanceTask),
) -> Result<GlanceTask, FollowError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<GlanceTask>, E>>,
{
    if request_id.is_empty() {
        return Err(FollowError::NoRequestId);
    }
    let started = tokio::time::Instant::now();
    let (mut pause, mut failed) = (pace.first, 0);
    loop {
        match list().await {
            Ok(tasks) => {
                failed = 0;
                match find_ours(&tasks, request_id) {
                    Ours::One(task) if task.has_ended() => return Ok(task.clone()),
                    Ours::One(task) => seen(task),
                    Ours::None if started.elapsed() >= pace.appear_within => {
                        return Err(FollowError::NotListed)
                    }
                    Ours::None => {}
                    Ours::Several => return Err(FollowError::Several),
                }
            }
            Err(error) if failed >= pace.failed_lists => return Err(FollowError::List(error)),
            Err(_) => failed += 1,
        }
        if let Some(limit) = pace.end_within.filter(|l| started.elapsed() >= *l) {
            return Err(FollowError::TimedOut(limit));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(pace.max);
    }
}

#[cfg(test)]
mod tests;
