//! The task journal: one JSON line per task state change, fsynced, so that a sidecar killed in the
//! middle of an import can, when it starts again, mark the task `failure` and put the image back.
//!
//! A line never holds a token. It holds what recovery needs: the task's Glance record, the fronted
//! Glance URL, and (once the metadata was synced) the JSON patch that undoes the sync.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest journal line read back (a task record with a large import body stays well below).
const MAX_LINE: usize = 256 * 1024;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    /// The task was accepted (202).
    Started {
        task_id: String,
        image_id: String,
        glance_url: String,
        /// The task as Glance's JSON shape at that moment (no token in it).
        task: Value,
    },
    /// The target's metadata was changed; `revert` undoes it.
    Synced { task_id: String, revert: Value },
    /// The task ended.
    Finished {
        task_id: String,
        status: String,
        message: String,
        task: Value,
    },
}

/// An interrupted task found in the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupted {
    pub task_id: String,
    pub image_id: String,
    pub glance_url: String,
    pub task: Value,
    pub revert: Option<Value>,
}

/// What the journal says after a restart.
#[derive(Debug, Default)]
pub struct Replay {
    /// Tasks that ended, newest last, as their final JSON.
    pub finished: Vec<Value>,
    /// Tasks that started and never ended.
    pub interrupted: Vec<Interrupted>,
    /// Lines that could not be read (a torn last line after a crash, most likely).
    pub skipped: usize,
}

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("task journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An append-only, fsynced JSON-lines file.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl Journal {
    /// Opens (creating it and its directory if needed) the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` and waits until it is on disk.
    pub async fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        let file = self.file.clone();
        let path = self.path.clone();
        let write = move || {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            file.write_all(&line)?;
            file.sync_data()
        };
        tokio::task::spawn_blocking(write)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|source| JournalError::Io { path, source })
    }

    /// Reads the journal back.
    pub fn replay(&self) -> Result<Replay, JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let file = File::open(&self.path).map_err(io)?;
        Ok(replay_lines(BufReader::new(file)))
    }

    /// Rewrites the journal with only `keep` (finished tasks worth keeping), atomically.
    pub fn compact(&self, keep: &[Entry]) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("jsonl.tmp");
        {
            let mut out = File::create(&tmp).map_err(io)?;
            for entry in keep {
                let mut line = serde_json::to_vec(entry).unwrap_or_default();
                line.push(b'\n');
                out.write_all(&line).map_err(io)?;
            }
            out.sync_all().map_err(io)?;
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        *file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(io)?;
        Ok(())
    }
}

/// Replays journal lines from any reader (the parser of the file; fuzzed).
pub fn replay_lines(reader: impl BufRead) -> Replay {
    let mut started: HashMap<String, Interrupted> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut replay = Replay::default();
    for line in reader.split(b'\n') {
        let Ok(line) = line else {
            replay.skipped += 1;
            break;
        };
        if line.is_empty() {
            continue;
        }
        let entry = (line.len() <= MAX_LINE)
            .then(|| serde_json::from_slice::<Entry>(&line).ok())
            .flatten();
        match entry {
            None => replay.skipped += 1,
            // Task ids are UUIDs the sidecar made: anything else was not written by it.
            Some(Entry::Started { ref task_id, .. }) if uuid::Uuid::parse_str(task_id).is_err() => {
                replay.skipped += 1
            }
            Some(Entry::Started {
                task_id,
                image_id,
                glance_url,
                task,
            }) => {
                order.push(task_id.clone());
                started.insert(
                    task_id.clone(),
                    Interrupted {
                        task_id,
                        image_id,
                        glance_url,
                        task,
                        revert: None,
                    },
                );
            }
            Some(Entry::Synced { task_id, revert }) => {
                if let Some(t) = started.get_mut(&task_id) {
                    t.revert = Some(revert);
                }
            }
            Some(Entry::Finished { task_id, task, .. }) => {
                started.remove(&task_id);
                replay.finished.push(task);
            }
        }
    }
    replay.interrupted = order
        .into_iter()
        .filter_map(|id| started.remove(&id))
        .collect();
    replay
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn interrupted_tasks_are_found_after_a_torn_write() {
        let dir = std::env::temp_dir().join(format!("gds-journal-{}", uuid::Uuid::new_v4()));
        let journal = Journal::open(&dir.join("tasks.jsonl")).unwrap();
        let started = |id: &str| Entry::Started {
            task_id: id.into(),
            image_id: format!("img-{id}"),
            glance_url: "http://g".into(),
            task: json!({"id": id, "status": "pending"}),
        };
        let [a, b, c] = [0; 3].map(|_| uuid::Uuid::new_v4().to_string());
        journal.append(&started(&a)).await.unwrap();
        journal.append(&started(&b)).await.unwrap();
        // Not a task id the sidecar makes: never replayed (the fuzzer found an empty one).
        journal.append(&started("")).await.unwrap();
        let revert = json!([{"op": "remove", "path": "/hw_x"}]);
        journal
            .append(&Entry::Synced {
                task_id: b.clone(),
                revert: revert.clone(),
            })
            .await
            .unwrap();
        journal
            .append(&Entry::Finished {
                task_id: a.clone(),
                status: "success".into(),
                message: String::new(),
                task: json!({"id": a, "status": "success"}),
            })
            .await
            .unwrap();
        // A crash mid-write leaves half a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap()
            .write_all(b"{\"event\":\"fin")
            .unwrap();
        let replay = journal.replay().unwrap();
        assert_eq!(replay.finished, vec![json!({"id": a, "status": "success"})]);
        assert_eq!(replay.interrupted.len(), 1);
        assert_eq!(replay.interrupted[0].task_id, b);
        assert_eq!(replay.interrupted[0].revert, Some(revert));
        assert_eq!(replay.skipped, 2, "the torn line and the empty task id");

        journal.compact(&[]).unwrap();
        assert!(journal.replay().unwrap().finished.is_empty());
        journal.append(&started(&c)).await.unwrap();
        assert_eq!(journal.replay().unwrap().interrupted.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
