//! After a restart: imports the journal says started and never ended were interrupted (the
//! process was killed). Each becomes a `failure` task, and its image is put back as it was —
//! Glance returns an image whose upload was cut off to `queued` by itself; the metadata the
//! sidecar synced is restored here with the sidecar's own credentials, since the caller's token
//! was never written down.
//!
//! Recovery trusts nothing in the journal it would not have written itself: it talks only to the
//! configured Glance (never to a URL read from the journal), reverts only what a sync can have
//! changed (the formats and synced or injected properties), and touches an image only while the
//! image's claim still names the interrupted task.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracing::{info, warn};

use crate::claim;
use crate::glance::{Glance, ImageId, PatchOp};
use crate::journal::{Entry, Interrupted, Journal, JournalError, Revert};
use crate::keystone::{Keystone, ServiceCredentials, Token};
use crate::tasks::{timestamp, Status, TaskRecord, Tasks};

/// How long recovery waits for an image to leave `saving` after its upload was cut off.
const SETTLE: Duration = Duration::from_secs(60);

/// Loads the journal's finished tasks, compacts it, and marks interrupted tasks `failure`.
/// Returns the interrupted ones, whose images [`restore`] puts back.
pub fn replay(journal: &Journal, tasks: &Tasks) -> Result<Vec<Interrupted>, JournalError> {
    let replay = journal.replay()?;
    if replay.skipped > 0 {
        warn!(skipped = replay.skipped, path = %journal.path().display(), "Unreadable task journal lines were skipped");
    }
    if replay.dropped > 0 {
        info!(
            dropped = replay.dropped,
            "Older finished tasks in the journal were not kept"
        );
    }
    // Already bounded by the journal's limits (the task store's own).
    let keep = replay.finished;
    let mut entries: Vec<Entry> = Vec::with_capacity(keep.len() + replay.interrupted.len());
    for task in keep {
        tasks.restore(task.clone());
        entries.push(Entry::finished(task));
    }
    for interrupted in &replay.interrupted {
        let task = failed(
            &interrupted.task,
            "The sidecar stopped while this import was running; the image is being restored",
        );
        tasks.restore(task.clone());
        entries.push(Entry::finished(task));
    }
    journal.compact(&entries)?;
    Ok(replay.interrupted)
}

/// The task record marked `failure` with `message`.
fn failed(task: &TaskRecord, message: &str) -> TaskRecord {
    let mut task = task.clone();
    task.status = Status::Failure;
    task.message = message.to_string();
    task.updated_at = Some(timestamp(time::OffsetDateTime::now_utc()));
    task
}

/// What recovery may do: the configured Glance, and the properties a sync can have written.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The configured Glance (`glance_url`): the only one the service token is sent to.
    pub glance_url: String,
    /// Synced property-name prefixes (`extra_properties`).
    pub prefixes: Vec<String>,
    /// Names of injected properties (`[inject_metadata_properties] inject`).
    pub injected: Vec<String>,
}

impl Scope {
    /// Whether a sync of this sidecar can have written `name`.
    fn may_revert(&self, name: &str) -> bool {
        matches!(name, "disk_format" | "container_format")
            || crate::metadata::is_synced(name, &self.prefixes)
            || (self.injected.iter().any(|n| n == name)
                && crate::metadata::is_synced(name, &[name.to_string()]))
    }

    /// The ops of `revert` a sync can have produced; the others are dropped with a warning.
    fn allowed(&self, task_id: &str, revert: Vec<PatchOp>) -> Vec<PatchOp> {
        revert
            .into_iter()
            .filter(|op| {
                let name = match op {
                    PatchOp::Add(name, _) | PatchOp::Replace(name, _) | PatchOp::Remove(name) => {
                        name
                    }
                };
                let ok = self.may_revert(name);
                if !ok {
                    warn!(%task_id, property = %name, "Ignoring a journal revert op a sync cannot have produced");
                }
                ok
            })
            .collect()
    }
}

/// Puts the images of interrupted imports back, then records the outcome in the task.
pub async fn restore(
    interrupted: Vec<Interrupted>,
    glance: Glance,
    scope: Scope,
    keystone: Keystone,
    creds: Option<ServiceCredentials>,
    tasks: Arc<Tasks>,
    journal: Journal,
) {
    if interrupted.is_empty() {
        return;
    }
    let token = match &creds {
        Some(creds) => keystone
            .service_token(creds)
            .await
            .map_err(|e| e.to_string()),
        None => Err("no [service_credentials] are configured".to_string()),
    };
    for task in interrupted {
        if task.glance_url != scope.glance_url {
            warn!(task_id = %task.task_id, journal_url = %task.glance_url, "The journal names another Glance; only the configured one is used");
        }
        let outcome = match &token {
            Ok(token) => restore_one(&glance, &scope, token, &task).await,
            Err(reason) => Err(Outcome::Failed(reason.clone())),
        };
        let message = report(&task, &outcome);
        let ours = !matches!(outcome, Err(Outcome::NotOurs(_)));
        if let (true, Ok(token)) = (ours, &token) {
            publish_failure(&glance, &scope, token, &task, &message).await;
        }
        let record = failed(&task.task, &message);
        tasks.restore(record.clone());
        if let Err(error) = journal.append(&Entry::finished(record)).await {
            warn!(%error, "Failed to journal a recovered task");
        }
    }
}

/// Logs what became of an interrupted import's image; returns the task's message saying it.
fn report(task: &Interrupted, outcome: &Result<(), Outcome>) -> String {
    let message = match outcome {
        Ok(()) => "The sidecar stopped while this import was running; the image was restored to queued".to_string(),
        Err(Outcome::NotOurs(reason)) => format!("The sidecar stopped while this import was running; the image was left alone: {reason}"),
        Err(Outcome::Failed(reason)) => format!("The sidecar stopped while this import was running; restoring the image failed: {reason}"),
    };
    match outcome {
        Ok(()) => {
            info!(task_id = %task.task_id, image_id = %task.image_id, "Restored the image of an interrupted import")
        }
        Err(Outcome::NotOurs(reason)) => {
            warn!(task_id = %task.task_id, image_id = %task.image_id, %reason, "Left the image of an interrupted import alone")
        }
        Err(Outcome::Failed(reason)) => {
            let revert = task
                .revert
                .as_ref()
                .map(Revert::to_json)
                .unwrap_or_default();
            warn!(task_id = %task.task_id, image_id = %task.image_id, %reason, %revert, "Could not restore the image of an interrupted import")
        }
    }
    message
}

/// Writes the recovered task's `failure` and `message` in the image's claim (best effort).
async fn publish_failure(
    glance: &Glance,
    scope: &Scope,
    token: &Token,
    task: &Interrupted,
    message: &str,
) {
    let Some(id) = ImageId::parse(&task.image_id) else {
        return;
    };
    let ops = [
        PatchOp::Add(claim::STATUS.into(), Value::from("failure")),
        PatchOp::Add(
            claim::MESSAGE.into(),
            Value::from(message.chars().take(255).collect::<String>()),
        ),
        PatchOp::Add(
            claim::UPDATED.into(),
            Value::from(timestamp(time::OffsetDateTime::now_utc())),
        ),
    ];
    if let Err(error) = glance
        .patch_image(&scope.glance_url, &id, token, &ops)
        .await
    {
        warn!(task_id = %task.task_id, %error, "Could not publish the recovered task's state on the image");
    }
}

/// Why an interrupted import's image was not restored.
#[derive(Debug)]
enum Outcome {
    /// The image is not this task's any more (or never was): it is left alone.
    NotOurs(String),
    /// Restoring was tried and failed.
    Failed(String),
}

async fn restore_one(
    glance: &Glance,
    scope: &Scope,
    token: &Token,
    task: &Interrupted,
) -> Result<(), Outcome> {
    let failed = |e: String| Outcome::Failed(e);
    let id = ImageId::parse(&task.image_id)
        .ok_or_else(|| failed("the journal holds a malformed image id".into()))?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    let image = loop {
        let image = glance
            .get_image(&scope.glance_url, &id, token)
            .await
            .map_err(|e| failed(e.to_string()))?;
        // A new import may own the image now: only the interrupted task's claim is ours.
        let claim = image.0.get(claim::TASK_ID).and_then(Value::as_str);
        if claim != Some(task.task_id.as_str()) {
            return Err(Outcome::NotOurs(format!(
                "its claim names {}, not this task",
                claim
                    .map(crate::tasks::bounded_text)
                    .unwrap_or_else(|| "no task".into())
            )));
        }
        match image.status() {
            Some("queued") => break image,
            Some("saving") if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => {
                return Err(failed(format!(
                    "the image is {}, not queued",
                    other.unwrap_or("unknown")
                )))
            }
        }
    };
    let ops = match &task.revert {
        None => return Ok(()),
        Some(Revert::Ops(ops)) => ops.clone(),
        Some(Revert::Malformed(_)) => {
            return Err(failed("the journal holds a malformed revert patch".into()))
        }
    };
    // The revert is journaled before the sync is applied: ops of a sync that never happened
    // (a property to remove that is not there) are skipped.
    let ops: Vec<PatchOp> = scope
        .allowed(&task.task_id, ops)
        .into_iter()
        .filter(|op| !matches!(op, PatchOp::Remove(name) if !image.0.contains_key(name)))
        .collect();
    if !ops.is_empty() {
        glance
            .patch_image(&scope.glance_url, &id, token, &ops)
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_ops_a_sync_can_produce_are_reverted() {
        let scope = Scope {
            glance_url: "http://glance".into(),
            prefixes: vec!["hw_".into(), "os_distro".into()],
            injected: vec!["site".into(), "visibility".into()],
        };
        let ops = vec![
            PatchOp::Replace("disk_format".into(), json!("raw")),
            PatchOp::Replace("container_format".into(), json!("bare")),
            PatchOp::Remove("hw_disk_bus".into()),
            PatchOp::Add("os_distro".into(), json!("ubuntu")),
            PatchOp::Add("site".into(), json!("a")),
            PatchOp::Replace("visibility".into(), json!("public")),
            PatchOp::Replace("owner".into(), json!("attacker")),
            PatchOp::Remove("glance_download_task_id".into()),
            PatchOp::Add("os_glance_import_task".into(), json!("x")),
            PatchOp::Add("locations".into(), json!([])),
        ];
        let kept = scope.allowed("t", ops.clone());
        assert_eq!(kept, ops[..5].to_vec());
    }
}
