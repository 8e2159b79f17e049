//! All tasks of this sidecar: the running ones, each holding its image's import lock, and the
//! finished ones kept (of this run, and read back from the journal).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;

use serde_json::Value;

use super::record::TaskRecord;
use super::retention::{Limits, Retained};
use super::task::{Status, Task};
use super::NewTask;
use crate::glance::ImageId;

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
    /// Boxed: most kept tasks are live ones, and the record is large beside an `Arc`.
    Restored(Box<TaskRecord>),
}

impl Kept {
    fn to_json(&self) -> Value {
        match self {
            Kept::Live(task) => task.to_json(),
            Kept::Restored(record) => record.to_json(),
        }
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
        let task = Arc::new(Task::new(new));
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
    /// bounded fields; a record naming no image is not kept.
    pub fn restore(&self, task: TaskRecord) {
        let record = task.bounded();
        let Some(image) = record.image_id.clone() else {
            return;
        };
        let id = record.id.clone();
        let owner = record.owner.clone().unwrap_or_default();
        self.lock()
            .finished
            .insert(&id, &image, &owner, Kept::Restored(Box::new(record)));
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
