//! The task journal: one JSON line per task state change, fsynced, so that a sidecar killed in the
//! middle of an import can, when it starts again, mark the task `failure` and put the image back.
//!
//! A line never holds a token. It holds what recovery needs: the task's Glance record, the fronted
//! Glance URL, and (before the metadata is synced) the JSON patch that undoes the sync.
//!
//! Bounded: a running sidecar rewrites the journal once it passes `max_bytes`, keeping only the
//! unfinished tasks and the newest finished ones; replay streams the file, reads lines of at most
//! 256 KiB and keeps no more finished tasks than memory holds, whatever the file's size.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::glance::PatchOp;
use crate::tasks::{bounded_text, Limits as TaskLimits, Retained, Status, TaskRecord};

/// Largest journal line read back (a task record with a large import body stays well below).
const MAX_LINE: usize = 256 * 1024;

/// One journal line: `{"event": "started" | "synced" | "finished", "task_id": ..., ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    /// The task was accepted (202).
    Started {
        task_id: String,
        image_id: String,
        glance_url: String,
        /// The task's record at that moment (no token in it).
        task: TaskRecord,
    },
    /// The target's metadata is about to be changed; `revert` undoes it.
    Synced { task_id: String, revert: Revert },
    /// The task ended.
    Finished {
        task_id: String,
        #[serde(deserialize_with = "crate::tasks::status_or_failure")]
        status: Status,
        message: String,
        task: TaskRecord,
    },
}

impl Entry {
    /// The line saying `task` ended (its id, status and message repeated beside it).
    pub fn finished(task: TaskRecord) -> Entry {
        Entry::Finished {
            task_id: task.id.clone(),
            status: task.status,
            message: task.message.clone(),
            task,
        }
    }
}

/// The JSON patch that undoes a metadata sync, journaled before the sync is applied.
///
/// On disk it is the patch itself (`[{"op": "replace", "path": "/disk_format", "value": "raw"}]`).
/// A patch that cannot be read back is kept as it was, so recovery reports it instead of
/// skipping the revert.
#[derive(Debug, Clone, PartialEq)]
pub enum Revert {
    /// The operations that put the metadata back.
    Ops(Vec<PatchOp>),
    /// A patch with an operation other than `add`, `replace` or `remove` on a `/name` path.
    Malformed(Value),
}

// === impl Revert ===

impl Revert {
    /// Reads a journaled patch.
    pub fn from_json(value: Value) -> Revert {
        match parse_ops(&value) {
            Some(ops) => Revert::Ops(ops),
            None => Revert::Malformed(value),
        }
    }

    /// The patch as journaled.
    pub fn to_json(&self) -> Value {
        match self {
            Revert::Ops(ops) => Value::Array(ops.iter().map(PatchOp::to_json).collect()),
            Revert::Malformed(value) => value.clone(),
        }
    }
}

impl Serialize for Revert {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Revert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Revert::from_json)
    }
}

/// Reads back a JSON patch written by [`PatchOp::to_json`] (paths unescaped, RFC 6901).
fn parse_ops(value: &Value) -> Option<Vec<PatchOp>> {
    value
        .as_array()?
        .iter()
        .map(|op| {
            let name = op["path"].as_str()?.strip_prefix('/')?;
            let name = name.replace("~1", "/").replace("~0", "~");
            match op["op"].as_str()? {
                "add" => Some(PatchOp::Add(name, op["value"].clone())),
                "replace" => Some(PatchOp::Replace(name, op["value"].clone())),
                "remove" => Some(PatchOp::Remove(name)),
                _ => None,
            }
        })
        .collect()
}

/// An interrupted task found in the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupted {
    pub task_id: String,
    pub image_id: String,
    pub glance_url: String,
    pub task: TaskRecord,
    pub revert: Option<Revert>,
}

/// What the journal says after a restart.
#[derive(Debug, Default)]
pub struct Replay {
    /// Tasks that ended, oldest first, as their final records: only the newest within the
    /// journal's [`Limits`] (per image, per project, in all).
    pub finished: Vec<TaskRecord>,
    /// Tasks that started and never ended (at most [`MAX_INTERRUPTED`]).
    pub interrupted: Vec<Interrupted>,
    /// Lines that could not be read (a torn last line after a crash, most likely).
    pub skipped: usize,
    /// Finished tasks read but not kept (older than the newest within the limits).
    pub dropped: usize,
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
    #[error("task journal {path} is locked by another process (one journal per sidecar)")]
    Locked { path: PathBuf },
}

/// Default of `task_journal_max_bytes`: a running sidecar compacts its journal past this size.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Most unfinished tasks read back (a sidecar runs at most 1,024 imports at once).
pub const MAX_INTERRUPTED: usize = 4 * 1024;

/// How large the journal may grow, and which finished tasks a compaction keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Past this size the journal is rewritten with only what is still needed.
    pub max_bytes: u64,
    /// Finished tasks kept by replay and compaction (the task store's own bounds).
    pub finished: TaskLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: MAX_BYTES,
            finished: TaskLimits::default(),
        }
    }
}

/// An append-only, fsynced JSON-lines file, created `0600` and held under an exclusive advisory
/// lock (`flock`) while open, so two sidecars never share one.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    limits: Limits,
    file: Arc<Mutex<Open>>,
}

#[derive(Debug)]
struct Open {
    file: File,
    /// Bytes in the file.
    size: u64,
    /// Size past which the next append compacts (at least `max_bytes`; twice what the last
    /// compaction kept, so a journal that stays large is not rewritten on every line).
    compact_at: u64,
}

impl Journal {
    /// Opens (creating it and its directory if needed) the journal at `path` with the default
    /// limits.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        Journal::open_with(path, Limits::default())
    }

    /// Opens (creating it `0600`, and its directory, if needed) and locks the journal at `path`.
    pub fn open_with(path: &Path, limits: Limits) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // The file may be replaced by a compaction between open and lock: lock the one the path
        // names.
        let mut tries = 0;
        let file = loop {
            let file = open_locked(path, false)?;
            let same = match (std::fs::metadata(path), file.metadata()) {
                (Ok(named), Ok(held)) => named.ino() == held.ino() && named.dev() == held.dev(),
                _ => false,
            };
            tries += 1;
            if same {
                break file;
            }
            if tries >= 3 {
                return Err(JournalError::Locked {
                    path: path.to_path_buf(),
                });
            }
        };
        let meta = file.metadata().map_err(io)?;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            limits,
            file: Arc::new(Mutex::new(Open {
                file,
                size: meta.len(),
                compact_at: limits.max_bytes,
            })),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal's size in bytes as last written.
    pub fn size(&self) -> u64 {
        self.file.lock().unwrap_or_else(|p| p.into_inner()).size
    }

    /// Appends `entry` and waits until it is on disk; past `max_bytes` the journal is then
    /// compacted (unfinished tasks and the newest finished ones kept).
    pub async fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        let journal = self.clone();
        let write = move || {
            let mut open = journal.file.lock().unwrap_or_else(|p| p.into_inner());
            open.file.write_all(&line).map_err(|e| journal.io(e))?;
            open.file.sync_data().map_err(|e| journal.io(e))?;
            open.size += line.len() as u64;
            if open.size > open.compact_at {
                // The entry is on disk whatever happens here; a failed compaction is retried
                // once the journal has doubled.
                if let Err(error) = journal.compact_locked(&mut open) {
                    tracing::warn!(%error, "Could not compact the task journal");
                    open.compact_at = open.size.saturating_mul(2);
                }
            }
            Ok(())
        };
        tokio::task::spawn_blocking(write)
            .await
            .unwrap_or_else(|e| Err(self.io(std::io::Error::other(e))))
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads the journal back, streaming, into bounded memory.
    pub fn replay(&self) -> Result<Replay, JournalError> {
        let file = File::open(&self.path).map_err(|e| self.io(e))?;
        Ok(replay_bounded(BufReader::new(file), self.limits.finished))
    }

    /// Rewrites the journal with only `keep`, atomically.
    pub fn compact(&self, keep: &[Entry]) -> Result<(), JournalError> {
        let mut open = self.file.lock().unwrap_or_else(|p| p.into_inner());
        self.rewrite(&mut open, keep)
    }

    /// Rewrites the journal, while running, with the tasks still unfinished (and what undoes
    /// their sync) and the newest finished ones.
    fn compact_locked(&self, open: &mut Open) -> Result<(), JournalError> {
        let file = File::open(&self.path).map_err(|e| self.io(e))?;
        let replay = replay_bounded(BufReader::new(file), self.limits.finished);
        let mut keep: Vec<Entry> = replay.finished.into_iter().map(Entry::finished).collect();
        for t in replay.interrupted {
            keep.push(Entry::Started {
                task_id: t.task_id.clone(),
                image_id: t.image_id,
                glance_url: t.glance_url,
                task: t.task,
            });
            if let Some(revert) = t.revert {
                keep.push(Entry::Synced {
                    task_id: t.task_id,
                    revert,
                });
            }
        }
        let before = open.size;
        self.rewrite(open, &keep)?;
        open.compact_at = self.limits.max_bytes.max(open.size.saturating_mul(2));
        tracing::info!(path = %self.path.display(), before, after = open.size, "Compacted the task journal");
        Ok(())
    }

    /// Writes `keep` to a new file (locked, `0600`, fsynced), renames it over the journal and
    /// fsyncs the directory; the new file then takes the old one's place (and lock).
    fn rewrite(&self, open: &mut Open, keep: &[Entry]) -> Result<(), JournalError> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut out = open_locked(&tmp, true)?;
        let mut size = 0u64;
        for entry in keep {
            let mut line = serde_json::to_vec(entry).unwrap_or_default();
            line.push(b'\n');
            out.write_all(&line).map_err(|e| self.io(e))?;
            size += line.len() as u64;
        }
        out.sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir.to_path_buf(),
            None => PathBuf::from("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))?;
        open.file = out;
        open.size = size;
        Ok(())
    }
}

/// Opens `path` for appending (created `0600`) and takes its exclusive lock without waiting.
fn open_locked(path: &Path, fresh: bool) -> Result<File, JournalError> {
    let io = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(true).mode(0o600);
    if fresh {
        options.create_new(true);
    }
    let file = options.open(path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(JournalError::Locked {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}

/// Replays journal lines from any reader (the parser of the file; fuzzed), with the default
/// limits.
pub fn replay_lines(reader: impl BufRead) -> Replay {
    replay_bounded(reader, TaskLimits::default())
}

/// Replays journal lines, streaming: memory stays within `limits` finished tasks (each reduced
/// to its bounded record) and [`MAX_INTERRUPTED`] unfinished ones, whatever the file's size.
pub fn replay_bounded(reader: impl BufRead, limits: TaskLimits) -> Replay {
    let mut replayer = Replayer::new(limits);
    for line in LimitedLines::new(reader) {
        match line {
            Some(Ok(line)) => replayer.line(&line),
            // Longer than a line can be.
            None => replayer.replay.skipped += 1,
            Some(Err(_)) => {
                replayer.replay.skipped += 1;
                break;
            }
        }
    }
    replayer.finish()
}

/// The state of a replay: unfinished tasks by id (in the order they started) and the finished
/// ones kept.
struct Replayer {
    started: HashMap<String, Interrupted>,
    order: VecDeque<String>,
    finished: Retained<TaskRecord>,
    /// Finished tasks read.
    read: usize,
    replay: Replay,
}

// === impl Replayer ===

impl Replayer {
    fn new(limits: TaskLimits) -> Self {
        Replayer {
            started: HashMap::new(),
            order: VecDeque::new(),
            finished: Retained::new(limits),
            read: 0,
            replay: Replay::default(),
        }
    }

    /// Applies one line.
    fn line(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        match serde_json::from_slice::<Entry>(line) {
            Err(_) => self.replay.skipped += 1,
            Ok(Entry::Started {
                task_id,
                image_id,
                glance_url,
                task,
            }) => self.started(task_id, image_id, glance_url, task),
            Ok(Entry::Synced { task_id, revert }) => {
                if let Some(t) = self.started.get_mut(&task_id) {
                    t.revert = Some(revert);
                }
            }
            Ok(Entry::Finished { task_id, task, .. }) => self.finished(&task_id, task),
        }
        // Keep the order of unfinished ids from growing with finished ones.
        if self.order.len() > 2 * MAX_INTERRUPTED {
            let started = &self.started;
            self.order.retain(|id| started.contains_key(id));
        }
    }

    fn started(&mut self, task_id: String, image_id: String, glance_url: String, task: TaskRecord) {
        // Task ids are UUIDs the sidecar made: anything else was not written by it.
        if uuid::Uuid::parse_str(&task_id).is_err() {
            self.replay.skipped += 1;
            return;
        }
        if !self.started.contains_key(&task_id) {
            self.order.push_back(task_id.clone());
        }
        self.started.insert(
            task_id.clone(),
            Interrupted {
                task_id,
                image_id: bounded_text(&image_id),
                glance_url: bounded_text(&glance_url),
                task: task.bounded(),
                revert: None,
            },
        );
        // Never more unfinished tasks than a sidecar can run: the oldest are dropped.
        while self.started.len() > MAX_INTERRUPTED {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if self.started.remove(&old).is_some() {
                self.replay.skipped += 1;
            }
        }
    }

    fn finished(&mut self, task_id: &str, task: TaskRecord) {
        self.started.remove(task_id);
        self.read += 1;
        let task = task.bounded();
        let image = task.image_id.clone().unwrap_or_default();
        let owner = task.owner.clone().unwrap_or_default();
        let id = task.id.clone();
        self.finished.insert(&id, &image, &owner, task);
    }

    fn finish(mut self) -> Replay {
        let mut replay = self.replay;
        replay.dropped = self.read.saturating_sub(self.finished.len());
        replay.finished = self.finished.into_values().collect();
        replay.interrupted = self
            .order
            .into_iter()
            .filter_map(|id| self.started.remove(&id))
            .collect();
        replay
    }
}

/// Lines of at most [`MAX_LINE`] bytes, read without holding a longer one: a longer line is
/// skipped to its end and yields `None`.
struct LimitedLines<R> {
    reader: R,
    done: bool,
}

impl<R: BufRead> LimitedLines<R> {
    fn new(reader: R) -> Self {
        LimitedLines {
            reader,
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for LimitedLines<R> {
    type Item = Option<std::io::Result<Vec<u8>>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Some(Err(e)));
                }
            };
            if buf.is_empty() {
                self.done = true;
                if line.is_empty() && !too_long {
                    return None;
                }
                break;
            }
            let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
                Some(at) => (&buf[..at], Some(at + 1)),
                None => (buf, None),
            };
            if !too_long {
                if line.len() + chunk.len() > MAX_LINE {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(chunk);
                }
            }
            let used = found.unwrap_or(buf.len());
            self.reader.consume(used);
            if found.is_some() {
                break;
            }
        }
        Some((!too_long).then_some(Ok(line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(task: Value) -> TaskRecord {
        TaskRecord::from_json(&task).unwrap()
    }

    #[tokio::test]
    async fn interrupted_tasks_are_found_after_a_torn_write() {
        let dir = std::env::temp_dir().join(format!("gds-journal-{}", uuid::Uuid::new_v4()));
        let journal = Journal::open(&dir.join("tasks.jsonl")).unwrap();
        let started = |id: &str| Entry::Started {
            task_id: id.into(),
            image_id: format!("img-{id}"),
            glance_url: "http://g".into(),
            task: record(json!({"id": id, "status": "pending"})),
        };
        let [a, b, c] = [0; 3].map(|_| uuid::Uuid::new_v4().to_string());
        journal.append(&started(&a)).await.unwrap();
        journal.append(&started(&b)).await.unwrap();
        // Not a task id the sidecar makes: never replayed (the fuzzer found an empty one).
        journal.append(&started("")).await.unwrap();
        let revert = Revert::from_json(json!([{"op": "remove", "path": "/hw_x"}]));
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
                status: Status::Success,
                message: String::new(),
                task: record(json!({"id": a, "status": "success"})),
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
        assert_eq!(replay.finished.len(), 1);
        assert_eq!(replay.finished[0].id, a.as_str());
        assert_eq!(replay.finished[0].status, Status::Success);
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

    fn temp_journal() -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("gds-journal-{}", uuid::Uuid::new_v4()));
        let path = dir.join("tasks.jsonl");
        (dir, path)
    }

    fn finished(id: &str, image: &str, owner: &str) -> Entry {
        Entry::Finished {
            task_id: id.into(),
            status: Status::Failure,
            message: "unknown region".into(),
            task: record(
                json!({"id": id, "image_id": image, "owner": owner, "status": "failure",
                         "message": "unknown region"}),
            ),
        }
    }

    #[test]
    fn the_journal_is_private_and_locked_against_a_second_sidecar() {
        let (dir, path) = temp_journal();
        let journal = Journal::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = Journal::open(&path).unwrap_err();
        assert!(matches!(second, JournalError::Locked { .. }));
        assert!(
            second.to_string().contains(&path.display().to_string()),
            "{second}"
        );
        // The lock follows the journal through a compaction, and ends with it.
        journal.compact(&[]).unwrap();
        assert!(matches!(
            Journal::open(&path).unwrap_err(),
            JournalError::Locked { .. }
        ));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(journal);
        Journal::open(&path).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_existing_world_readable_journal_is_made_private() {
        let (dir, path) = temp_journal();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _journal = Journal::open(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_running_journal_is_compacted_keeping_unfinished_tasks() {
        let (dir, path) = temp_journal();
        let limits = Limits {
            max_bytes: 64 * 1024,
            finished: TaskLimits {
                per_image: 5,
                per_project: 50,
                total: 100,
            },
        };
        let journal = Journal::open_with(&path, limits).unwrap();
        let running = uuid::Uuid::new_v4().to_string();
        journal
            .append(&Entry::Started {
                task_id: running.clone(),
                image_id: "img-running".into(),
                glance_url: "http://g".into(),
                task: record(
                    json!({"id": running, "image_id": "img-running", "status": "processing"}),
                ),
            })
            .await
            .unwrap();
        let revert = Revert::from_json(json!([{"op": "remove", "path": "/hw_x"}]));
        journal
            .append(&Entry::Synced {
                task_id: running.clone(),
                revert: revert.clone(),
            })
            .await
            .unwrap();
        let mut peak = 0;
        for n in 0..3000 {
            let id = uuid::Uuid::new_v4().to_string();
            let image = format!("img-{}", n % 40);
            journal.append(&finished(&id, &image, "p")).await.unwrap();
            peak = peak.max(std::fs::metadata(&path).unwrap().len());
        }
        // Without compaction 3,000 lines would be over 500 KiB.
        assert!(peak <= 2 * limits.max_bytes, "peak {peak}");
        assert_eq!(journal.size(), std::fs::metadata(&path).unwrap().len());
        let replay = journal.replay().unwrap();
        assert_eq!(replay.finished.len(), 50, "per project");
        assert_eq!(replay.interrupted.len(), 1);
        assert_eq!(replay.interrupted[0].task_id, running);
        assert_eq!(replay.interrupted[0].revert, Some(revert));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A journal of `lines` generated lines, never held whole in memory.
    struct Generated {
        lines: usize,
        at: usize,
        pending: Vec<u8>,
    }

    impl std::io::Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                if self.at >= self.lines {
                    return Ok(0);
                }
                self.at += 1;
                self.pending = if self.at.is_multiple_of(1000) {
                    // An overlong line (an older version's padded body, or garbage).
                    let mut line = vec![b'x'; 2 * MAX_LINE];
                    line.push(b'\n');
                    line
                } else {
                    let id = format!("00000000-0000-4000-8000-{:012}", self.at);
                    let mut line = serde_json::to_vec(&finished(
                        &id,
                        &format!("img-{}", self.at % 5000),
                        &format!("p-{}", self.at % 50),
                    ))
                    .unwrap();
                    line.push(b'\n');
                    line
                };
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_big_journal_replays_into_bounded_memory() {
        let limits = TaskLimits {
            per_image: 20,
            per_project: 1000,
            total: 10_000,
        };
        let source = Generated {
            lines: 100_000,
            at: 0,
            pending: Vec::new(),
        };
        let replay = replay_bounded(BufReader::new(source), limits);
        assert_eq!(replay.skipped, 100, "the overlong lines");
        assert_eq!(replay.finished.len(), 10_000);
        assert_eq!(replay.dropped, 99_900 - 10_000);
        // The newest are kept.
        assert_eq!(
            replay.finished.last().unwrap().id,
            "00000000-0000-4000-8000-000000099999"
        );
    }

    /// Lines exactly as the previous version wrote them (copied from its journal): an import
    /// interrupted after its sync was journaled, one that succeeded, and one that failed.
    const PREVIOUS_INTERRUPTED: [&str; 2] = [
        r#"{"event":"started","task_id":"09076e16-a10e-4929-8da2-b044b5b68f7e","image_id":"2441e3d0-b80d-41aa-8188-22b83ec09928","glance_url":"http://127.0.0.1:40483","task":{"created_at":"2026-12-04T22:35:02.366051","deleted":false,"deleted_at":null,"expires_at":null,"id":"09076e16-a10e-4929-8da2-b044b5b68f7e","image_id":"2441e3d0-b80d-41aa-8188-22b83ec09928","input":{"backend":[null],"image_id":"2441e3d0-b80d-41aa-8188-22b83ec09928","import_req":{"method":{"glance_image_id":"273065ff-e0b6-4072-9040-b8dddd578cc0","glance_region":"REGION1","glance_service_interface":"public","name":"glance-download"}}},"message":"","owner":"demo-project","progress":{"bytes_done":0,"bytes_total":0,"eta_seconds":null,"rate_bytes_per_sec":0},"request_id":"req-57e71435-84d7-4c46-bb38-c55e9f9115b4","result":null,"status":"pending","type":"api_image_import","updated_at":"2026-12-04T22:35:02.366051","user_id":"demo-user","verification":null}}"#,
        r#"{"event":"synced","task_id":"09076e16-a10e-4929-8da2-b044b5b68f7e","revert":[{"op":"replace","path":"/disk_format","value":"raw"}]}"#,
    ];
    const PREVIOUS_SUCCEEDED: [&str; 2] = [
        r#"{"event":"started","task_id":"048750b5-b316-4359-92cc-094aae122771","image_id":"25647ecf-4860-4458-a4ea-2217008e347e","glance_url":"http://127.0.0.1:39949","task":{"created_at":"2026-12-04T22:35:08.007669","deleted":false,"deleted_at":null,"expires_at":null,"id":"048750b5-b316-4359-92cc-094aae122771","image_id":"25647ecf-4860-4458-a4ea-2217008e347e","input":{"backend":[null],"image_id":"25647ecf-4860-4458-a4ea-2217008e347e","import_req":{"method":{"glance_image_id":"e57010af-bd91-48b5-8af6-63dc390346e0","glance_region":"REGION1","glance_service_interface":"public","name":"glance-download"}}},"message":"","owner":"demo-project","progress":{"bytes_done":0,"bytes_total":0,"eta_seconds":null,"rate_bytes_per_sec":0},"request_id":"req-057f207f-e1a1-4dc1-b0d7-b59a600b6690","result":null,"status":"pending","type":"api_image_import","updated_at":"2026-12-04T22:35:08.007669","user_id":"demo-user","verification":null}}"#,
        r#"{"event":"finished","task_id":"048750b5-b316-4359-92cc-094aae122771","status":"success","message":"","task":{"created_at":"2026-12-04T22:35:08.007669","deleted":false,"deleted_at":null,"expires_at":"2026-12-06T22:35:08.011063","id":"048750b5-b316-4359-92cc-094aae122771","image_id":"25647ecf-4860-4458-a4ea-2217008e347e","input":{"backend":[null],"image_id":"25647ecf-4860-4458-a4ea-2217008e347e","import_req":{"method":{"glance_image_id":"e57010af-bd91-48b5-8af6-63dc390346e0","glance_region":"REGION1","glance_service_interface":"public","name":"glance-download"}}},"message":"","owner":"demo-project","progress":{"bytes_done":1024,"bytes_total":1024,"eta_seconds":null,"rate_bytes_per_sec":490427},"request_id":"req-057f207f-e1a1-4dc1-b0d7-b59a600b6690","result":{"image_id":"25647ecf-4860-4458-a4ea-2217008e347e"},"status":"success","type":"api_image_import","updated_at":"2026-12-04T22:35:08.011063","user_id":"demo-user","verification":{"checksum":"b1091ea5cd60f64d4863f2d31047ffaf","os_hash_algo":"sha512","os_hash_value":"fc4a7d464965e5b8b32821161e2e49eae08e081c51f2264b941911660fd64049ce26b0378857e4d95cbe59ac15813c5d908ea6ced8957fe2ad354339a6eb3aa1","size":1024,"verified":true}}}"#,
    ];
    const PREVIOUS_FAILED: &str = r#"{"event":"finished","task_id":"09076e16-a10e-4929-8da2-b044b5b68f7e","status":"failure","message":"target Glance: glance answered 400 Bad Request: Provided object does not match schema 'image': 'no-such-format' is not one of [None, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']","task":{"created_at":"2026-12-04T22:35:02.366051","deleted":false,"deleted_at":null,"expires_at":"2026-12-06T22:35:02.368897","id":"09076e16-a10e-4929-8da2-b044b5b68f7e","image_id":"2441e3d0-b80d-41aa-8188-22b83ec09928","input":{"backend":[null],"image_id":"2441e3d0-b80d-41aa-8188-22b83ec09928","import_req":{"method":{"glance_image_id":"273065ff-e0b6-4072-9040-b8dddd578cc0","glance_region":"REGION1","glance_service_interface":"public","name":"glance-download"}}},"message":"target Glance: glance answered 400 Bad Request: Provided object does not match schema 'image': 'no-such-format' is not one of [None, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']","owner":"demo-project","progress":{"bytes_done":0,"bytes_total":1024,"eta_seconds":null,"rate_bytes_per_sec":0},"request_id":"req-57e71435-84d7-4c46-bb38-c55e9f9115b4","result":null,"status":"failure","type":"api_image_import","updated_at":"2026-12-04T22:35:02.368897","user_id":"demo-user","verification":null}}"#;

    #[test]
    fn a_journal_of_the_previous_version_replays() {
        let text: String = PREVIOUS_INTERRUPTED
            .iter()
            .chain(&PREVIOUS_SUCCEEDED)
            .map(|line| format!("{line}\n"))
            .collect();
        let replay = replay_lines(text.as_bytes());
        assert_eq!(replay.skipped, 0);
        let line = |text: &str| serde_json::from_str::<Value>(text).unwrap();

        assert_eq!(replay.finished.len(), 1);
        let done = &replay.finished[0];
        assert_eq!(done.id, "048750b5-b316-4359-92cc-094aae122771");
        assert_eq!(done.status, Status::Success);
        assert_eq!(done.progress.bytes_done, 1024);
        // Served exactly as it was written.
        assert_eq!(done.to_json(), line(PREVIOUS_SUCCEEDED[1])["task"]);

        assert_eq!(replay.interrupted.len(), 1);
        let cut = &replay.interrupted[0];
        assert_eq!(cut.task_id, "09076e16-a10e-4929-8da2-b044b5b68f7e");
        assert_eq!(cut.image_id, "2441e3d0-b80d-41aa-8188-22b83ec09928");
        assert_eq!(cut.glance_url, "http://127.0.0.1:40483");
        assert_eq!(cut.task.status, Status::Pending);
        assert_eq!(cut.task.to_json(), line(PREVIOUS_INTERRUPTED[0])["task"]);
        assert_eq!(
            cut.revert,
            Some(Revert::Ops(vec![PatchOp::Replace(
                "disk_format".into(),
                json!("raw")
            )]))
        );
    }

    #[test]
    fn lines_are_written_as_the_previous_version_wrote_them() {
        let lines = PREVIOUS_INTERRUPTED
            .iter()
            .chain(&PREVIOUS_SUCCEEDED)
            .chain([&PREVIOUS_FAILED]);
        for text in lines {
            let entry: Entry = serde_json::from_str(text).unwrap();
            let written = serde_json::to_value(&entry).unwrap();
            assert_eq!(
                written,
                serde_json::from_str::<Value>(text).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn an_unreadable_revert_is_kept_for_recovery_to_report() {
        let ops = vec![
            PatchOp::Add("trait:CUSTOM/X~1".into(), json!("required")),
            PatchOp::Replace("disk_format".into(), json!("raw")),
            PatchOp::Remove("hw_x".into()),
        ];
        let json = Revert::Ops(ops.clone()).to_json();
        assert_eq!(Revert::from_json(json), Revert::Ops(ops));
        let moved = json!([{"op": "move", "path": "/a"}]);
        assert_eq!(
            Revert::from_json(moved.clone()),
            Revert::Malformed(moved.clone())
        );
        let line = format!(
            r#"{{"event":"started","task_id":"{id}","image_id":"i","glance_url":"g","task":{{"id":"{id}"}}}}
{{"event":"synced","task_id":"{id}","revert":{moved}}}
"#,
            id = "09076e16-a10e-4929-8da2-b044b5b68f7e"
        );
        let replay = replay_lines(line.as_bytes());
        assert_eq!(replay.interrupted[0].revert, Some(Revert::Malformed(moved)));
    }
}
