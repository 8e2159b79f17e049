//! Import state every sidecar instance can see: a summary of the running (or last) task, kept as
//! properties of our own namespace on the target image in Glance itself.
//!
//! Operators run one sidecar per Glance API node behind a load balancer, so the per-image
//! "one import at a time" rule and the task's progress must be visible from every instance.
//! Every instance already reads the image, so that is where the state lives — no new service.
//!
//! Limits (documented in the README): Glance has no compare-and-set on properties, so a claim is
//! a write followed by a read-back; two instances claiming within the same few milliseconds can
//! both win. A claim whose heartbeat is older than [`STALE_AFTER`] is dead (its instance
//! stopped) and may be taken over, as is one dated more than [`STALE_AFTER`] in the future. Property values are at most 255 characters (Glance's limit).
//!
//! [`STALE_AFTER`]: crate::claim::STALE_AFTER

use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::glance::{Image, PatchOp};
use crate::tasks::{timestamp, Task};

/// The namespace of the sidecar's properties on an image.
pub const PREFIX: &str = "glance_download_";

pub const TASK_ID: &str = "glance_download_task_id";
pub const STATUS: &str = "glance_download_task_status";
pub const REQUEST_ID: &str = "glance_download_request_id";
pub const PROGRESS: &str = "glance_download_progress";
pub const UPDATED: &str = "glance_download_updated_at";
pub const MESSAGE: &str = "glance_download_message";
pub const USER: &str = "glance_download_user_id";

/// How often a running import refreshes its summary (its heartbeat).
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// A running claim not refreshed for this long belongs to an instance that stopped.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// Glance's limit on a property value.
const MAX_VALUE: usize = 255;

fn text(value: &str) -> Value {
    Value::from(value.chars().take(MAX_VALUE).collect::<String>())
}

fn now() -> String {
    timestamp(OffsetDateTime::now_utc())
}

/// The id of an import another instance is running on `image`, if its claim is alive.
pub fn live_task(image: &Image) -> Option<String> {
    let status = image.0.get(STATUS)?.as_str()?;
    if !matches!(status, "pending" | "processing") {
        return None;
    }
    let updated = image.0.get(UPDATED)?.as_str()?;
    let at = parse_timestamp(updated)?;
    let age = OffsetDateTime::now_utc() - at;
    let stale = time::Duration::try_from(STALE_AFTER).ok()?;
    // A heartbeat from further ahead than that is a skewed clock or a forged value: stale too,
    // or it would block imports of the image until that time.
    if age > stale || age < -stale {
        return None;
    }
    image.0.get(TASK_ID)?.as_str().map(str::to_string)
}

fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
    );
    time::PrimitiveDateTime::parse(text, &format)
        .ok()
        .map(|t| t.assume_utc())
}

/// Writes every key of the summary (so none is added later, while Glance holds an upload).
pub fn claim_ops(task: &Task) -> Vec<PatchOp> {
    let mut ops = summary_ops(task);
    ops.push(PatchOp::Add(TASK_ID.into(), text(&task.id)));
    ops.push(PatchOp::Add(REQUEST_ID.into(), text(&task.info.request_id)));
    ops.push(PatchOp::Add(USER.into(), text(&task.info.user_id)));
    ops
}

/// The current status, progress, message and heartbeat.
pub fn summary_ops(task: &Task) -> Vec<PatchOp> {
    let view = task.to_json();
    let progress = format!(
        "{}/{}",
        view["progress"]["bytes_done"], view["progress"]["bytes_total"]
    );
    vec![
        PatchOp::Add(
            STATUS.into(),
            text(view["status"].as_str().unwrap_or("pending")),
        ),
        PatchOp::Add(PROGRESS.into(), text(&progress)),
        PatchOp::Add(MESSAGE.into(), text(view["message"].as_str().unwrap_or(""))),
        PatchOp::Add(UPDATED.into(), text(&now())),
    ]
}

/// A task record in Glance's shape, rebuilt from an image's summary (for instances that did
/// not run the import).
pub fn task_from_image(image: &Image) -> Option<Value> {
    let get = |key: &str| image.0.get(key).and_then(Value::as_str);
    let id = get(TASK_ID)?;
    let (done, total) = get(PROGRESS)
        .and_then(|p| p.split_once('/'))
        .map(|(d, t)| (d.parse::<u64>().unwrap_or(0), t.parse::<u64>().unwrap_or(0)))
        .unwrap_or((0, 0));
    let status = match live_task(image) {
        Some(_) => get(STATUS).unwrap_or("processing"),
        None => match get(STATUS) {
            Some("pending" | "processing") => "failure",
            Some(other) => other,
            None => "failure",
        },
    };
    let message = match (get(STATUS), status) {
        (Some("pending" | "processing"), "failure") => {
            "The sidecar running this import stopped answering".to_string()
        }
        _ => get(MESSAGE).unwrap_or("").to_string(),
    };
    Some(json!({
        "id": id,
        "type": "api_image_import",
        "status": status,
        "owner": image.owner(),
        "image_id": image.0.get("id"),
        "request_id": get(REQUEST_ID),
        "user_id": get(USER),
        "message": message,
        "result": (status == "success").then(|| json!({"image_id": image.0.get("id")})),
        "updated_at": get(UPDATED),
        "progress": {"bytes_done": done, "bytes_total": total},
    }))
}

/// Whether a property belongs to this namespace (never synced, never reverted).
pub fn is_ours(name: &str) -> bool {
    name.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(updated: OffsetDateTime) -> Image {
        let map = json!({
            STATUS: "processing",
            TASK_ID: "7c5a4f6e-1d2b-4c3a-9e8f-0a1b2c3d4e5f",
            UPDATED: timestamp(updated),
        });
        Image(map.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn a_claim_dated_in_the_future_does_not_block_imports() {
        let now = OffsetDateTime::now_utc();
        assert!(live_task(&claimed(now)).is_some());
        assert!(live_task(&claimed(now - time::Duration::hours(1))).is_none());
        // A skewed or forged heartbeat a year ahead would hold the image for a year.
        assert!(live_task(&claimed(now + time::Duration::days(365))).is_none());
        assert!(live_task(&claimed(now + time::Duration::hours(1))).is_none());
        // Small skew between instances is tolerated.
        assert!(live_task(&claimed(now + time::Duration::seconds(30))).is_some());
    }
}
