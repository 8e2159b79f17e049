//! After a restart: imports the journal says started and never ended were interrupted (the
//! process was killed). Each becomes a `failure` task, and its image is put back as it was —
//! Glance returns an image whose upload was cut off to `queued` by itself; the metadata the
//! sidecar synced is restored here with the sidecar's own credentials, since the caller's token
//! was never written down.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracing::{info, warn};

use crate::glance::{Glance, ImageId, PatchOp};
use crate::journal::{Entry, Interrupted, Journal, JournalError};
use crate::keystone::{Keystone, ServiceCredentials, Token};
use crate::shared;
use crate::tasks::{timestamp, Tasks, MAX_FINISHED};

/// How long recovery waits for an image to leave `saving` after its upload was cut off.
const SETTLE: Duration = Duration::from_secs(60);

/// Loads the journal's finished tasks, compacts it, and marks interrupted tasks `failure`.
/// Returns the interrupted ones, whose images [`restore`] puts back.
pub fn replay(journal: &Journal, tasks: &Tasks) -> Result<Vec<Interrupted>, JournalError> {
    let replay = journal.replay()?;
    if replay.skipped > 0 {
        warn!(skipped = replay.skipped, path = %journal.path().display(), "Unreadable task journal lines were skipped");
    }
    let keep: Vec<Value> = replay
        .finished
        .into_iter()
        .rev()
        .take(MAX_FINISHED)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut entries: Vec<Entry> = keep.iter().map(finished_entry).collect();
    for task in &keep {
        tasks.restore(task.clone());
    }
    for interrupted in &replay.interrupted {
        let task = failed(
            &interrupted.task,
            "The sidecar stopped while this import was running; the image is being restored",
        );
        tasks.restore(task.clone());
        entries.push(finished_entry(&task));
    }
    journal.compact(&entries)?;
    Ok(replay.interrupted)
}

fn finished_entry(task: &Value) -> Entry {
    Entry::Finished {
        task_id: task["id"].as_str().unwrap_or_default().to_string(),
        status: task["status"].as_str().unwrap_or("failure").to_string(),
        message: task["message"].as_str().unwrap_or_default().to_string(),
        task: task.clone(),
    }
}

/// The task record marked `failure` with `message`.
fn failed(task: &Value, message: &str) -> Value {
    let mut task = task.clone();
    let now = timestamp(time::OffsetDateTime::now_utc());
    task["status"] = Value::from("failure");
    task["message"] = Value::from(message);
    task["updated_at"] = Value::from(now);
    task
}

/// Puts the images of interrupted imports back, then records the outcome in the task.
pub async fn restore(
    interrupted: Vec<Interrupted>,
    glance: Glance,
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
            .password_token(creds)
            .await
            .map_err(|e| e.to_string()),
        None => Err("no [service_credentials] are configured".to_string()),
    };
    for task in interrupted {
        let outcome = match &token {
            Ok(token) => restore_one(&glance, token, &task).await,
            Err(reason) => Err(reason.clone()),
        };
        let message = match &outcome {
            Ok(()) => "The sidecar stopped while this import was running; the image was restored to queued".to_string(),
            Err(reason) => format!("The sidecar stopped while this import was running; restoring the image failed: {reason}"),
        };
        match &outcome {
            Ok(()) => {
                info!(task_id = %task.task_id, image_id = %task.image_id, "Restored the image of an interrupted import")
            }
            Err(reason) => {
                warn!(task_id = %task.task_id, image_id = %task.image_id, %reason, revert = %task.revert.clone().unwrap_or_default(), "Could not restore the image of an interrupted import")
            }
        }
        if let (Ok(token), Some(id)) = (&token, ImageId::parse(&task.image_id)) {
            let ops = [
                PatchOp::Add(shared::STATUS.into(), Value::from("failure")),
                PatchOp::Add(
                    shared::MESSAGE.into(),
                    Value::from(message.chars().take(255).collect::<String>()),
                ),
                PatchOp::Add(
                    shared::UPDATED.into(),
                    Value::from(timestamp(time::OffsetDateTime::now_utc())),
                ),
            ];
            if let Err(error) = glance.patch_image(&task.glance_url, &id, token, &ops).await {
                warn!(task_id = %task.task_id, %error, "Could not publish the recovered task's state on the image");
            }
        }
        let record = failed(&task.task, &message);
        tasks.restore(record.clone());
        if let Err(error) = journal.append(&finished_entry(&record)).await {
            warn!(%error, "Failed to journal a recovered task");
        }
    }
}

async fn restore_one(glance: &Glance, token: &Token, task: &Interrupted) -> Result<(), String> {
    let id = ImageId::parse(&task.image_id).ok_or("the journal holds a malformed image id")?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let image = glance
            .get_image(&task.glance_url, &id, token)
            .await
            .map_err(|e| e.to_string())?;
        match image.status() {
            Some("queued") => break,
            Some("saving") if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => {
                return Err(format!(
                    "the image is {}, not queued",
                    other.unwrap_or("unknown")
                ))
            }
        }
    }
    let Some(revert) = &task.revert else {
        return Ok(());
    };
    let ops = parse_ops(revert).ok_or("the journal holds a malformed revert patch")?;
    if !ops.is_empty() {
        glance
            .patch_image(&task.glance_url, &id, token, &ops)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Reads back a JSON patch written by the journal.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_round_trip_through_the_journal() {
        let ops = vec![
            PatchOp::Add("trait:CUSTOM/X~1".into(), json!("required")),
            PatchOp::Replace("disk_format".into(), json!("raw")),
            PatchOp::Remove("hw_x".into()),
        ];
        let json = Value::Array(ops.iter().map(PatchOp::to_json).collect());
        assert_eq!(parse_ops(&json), Some(ops));
        assert_eq!(parse_ops(&json!([{"op": "move", "path": "/a"}])), None);
    }
}
