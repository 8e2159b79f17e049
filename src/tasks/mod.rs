//! Import tasks: one record per import in Glance's task shape (`api_image_import`), with progress
//! while it runs, and the per-image lock that keeps two imports of one image apart.
//!
//! Records live in memory, bounded: finished tasks are kept for [`TASK_TTL`] (Glance's default
//! `task_time_to_live`), and only the newest [`Limits::per_image`] of an image,
//! [`Limits::per_project`] of a project and [`Limits::total`] in all — tasks finished here and
//! tasks read back from the journal together. A record holds only the known import fields, each
//! string cut at [`MAX_TEXT`], so memory is at most `total` × a small fixed record size.
//!
//! - `record`: the typed record ([`TaskRecord`]) served and journaled, and its bounds;
//! - `task`: one running task ([`Task`]), its status and progress;
//! - `retention`: which finished records are kept ([`Retained`]);
//! - `store`: every task of this sidecar ([`Tasks`]) and the per-image [`ImportLock`].
//!
//! [`TASK_TTL`]: crate::tasks::TASK_TTL
//! [`Limits::per_image`]: crate::tasks::Limits::per_image
//! [`Limits::per_project`]: crate::tasks::Limits::per_project
//! [`Limits::total`]: crate::tasks::Limits::total
//! [`MAX_TEXT`]: crate::tasks::MAX_TEXT
//! [`TaskRecord`]: crate::tasks::TaskRecord
//! [`Task`]: crate::tasks::Task
//! [`Retained`]: crate::tasks::Retained
//! [`Tasks`]: crate::tasks::Tasks
//! [`ImportLock`]: crate::tasks::ImportLock

mod record;
mod retention;
mod store;
mod task;

#[cfg(test)]
mod tests;

pub(crate) use record::status_or_failure;
pub use record::{
    bounded_text, import_request, ImportMethod, ImportReq, Progress, TaskInput, TaskRecord,
    MAX_MESSAGE, MAX_STORES, MAX_TEXT,
};
pub use retention::{Limits, Retained, MAX_FINISHED, MAX_PER_IMAGE, MAX_PER_PROJECT, TASK_TTL};
pub use store::{Busy, ImportLock, Tasks};
pub use task::{timestamp, NewTask, Status, Task};
