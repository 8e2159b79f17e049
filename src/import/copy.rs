//! The stores after the first (DESIGN §2 step 7): once the image is `active` and verified in the
//! store the sink wrote, the others are delegated to upstream's own `copy-image` import, with the
//! caller's token and `all_stores_must_succeed` as asked, and followed to their end.
//!
//! Upstream's copy task is followed through the image itself: Glance takes the import lock
//! (`os_glance_import_task`) before it answers 202 and drops it when the task ends, either way;
//! the stores that hold the image are then in its `stores` property and the failed ones in
//! `os_glance_failed_import`. The task's own message is read from `GET /v2/images/{id}/tasks`
//! (by the 202's request id) only to explain a failure.

use std::time::Duration;

use serde_json::json;

use crate::glance::{find_ours, Glance, GlanceError, GlanceStatus, Image, ImageId, Ours};
use crate::keystone::Token;
use crate::stores::StoreOutcome;
use crate::tasks::Task;

/// How often the image is re-read while upstream copies.
const POLL: Duration = Duration::from_millis(500);

/// What became of the stores beyond the first, and why some failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Copied {
    pub outcome: StoreOutcome,
    /// Upstream's explanation when a store failed (refusal or task message).
    pub reason: Option<String>,
}

/// Why following the copy could not finish (the stores' fate is then unknown).
#[derive(Debug, thiserror::Error)]
pub(super) enum CopyError {
    #[error("the caller's token expired or was revoked while copying to the other stores")]
    TokenExpired,
    #[error("copy-image to stores {stores} did not finish within {after:?}")]
    TimedOut { stores: String, after: Duration },
    #[error("following copy-image on the target Glance: {0}")]
    Glance(GlanceError),
}

impl From<GlanceError> for CopyError {
    fn from(error: GlanceError) -> Self {
        if error.is_unauthorized() {
            CopyError::TokenExpired
        } else {
            CopyError::Glance(error)
        }
    }
}

/// The image being copied, in which Glance, on whose behalf.
pub(super) struct CopiedImage<'a> {
    pub glance: &'a Glance,
    pub base: &'a str,
    pub id: &'a ImageId,
    pub token: &'a Token,
}

/// Copies the (active) image into `stores` with upstream's `copy-image`, waiting at most `limit`
/// for the end.
pub(super) async fn copy_image(
    on: CopiedImage<'_>,
    stores: &[String],
    all_must_succeed: bool,
    limit: Duration,
    task: &Task,
) -> Result<Copied, CopyError> {
    let CopiedImage {
        glance,
        base,
        id,
        token,
    } = on;
    task.note(format!("Copying to stores {}", stores.join(",")));
    let body = json!({
        "method": {"name": "copy-image"},
        "stores": stores,
        "all_stores_must_succeed": all_must_succeed,
    });
    let request_id = match glance.import(base, id, token, &body).await {
        Ok(request_id) => request_id,
        Err(e) if e.is_unauthorized() => return Err(e.into()),
        Err(e) => {
            // Refused outright (e.g. Glance's `copy_image` policy, admin-only by default, or
            // copy-image not enabled): no store was touched.
            return Ok(Copied {
                outcome: StoreOutcome {
                    succeeded: Vec::new(),
                    failed: stores.to_vec(),
                },
                reason: Some(refusal(&e)),
            });
        }
    };
    let image = tokio::time::timeout(limit, settle(glance, base, id, token))
        .await
        .map_err(|_| CopyError::TimedOut {
            stores: stores.join(","),
            after: limit,
        })??;
    let outcome = StoreOutcome::of(stores, &image.0);
    let reason = if outcome.failed.is_empty() {
        None
    } else {
        Some(task_message(glance, base, id, token, &request_id).await)
    };
    Ok(Copied { outcome, reason })
}

/// Re-reads the image until upstream's import lock is gone; returns the final image.
async fn settle(
    glance: &Glance,
    base: &str,
    id: &ImageId,
    token: &Token,
) -> Result<Image, CopyError> {
    loop {
        let image = glance
            .get_image(base, id, token)
            .await
            .map_err(CopyError::from)?;
        if !image.0.contains_key("os_glance_import_task") {
            return Ok(image);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The message of upstream's copy task (found by its request id), or a generic explanation.
async fn task_message(
    glance: &Glance,
    base: &str,
    id: &ImageId,
    token: &Token,
    request_id: &str,
) -> String {
    let tasks = glance.tasks(base, id, token).await.unwrap_or_default();
    let said = match find_ours(&tasks, request_id) {
        Ours::One(task) => task.reason().map(|message| {
            format!(
                "upstream's copy-image task ended in {}: {message}",
                task.status.as_str().unwrap_or("an unknown status")
            )
        }),
        Ours::None | Ours::Several => None,
    };
    said.unwrap_or_else(|| {
        "upstream's copy-image did not write it (Glance lists failed stores in \
         os_glance_failed_import)"
            .to_string()
    })
}

fn refusal(error: &GlanceError) -> String {
    let hint = if error.is_forbidden() {
        " (Glance's copy_image policy allows admins only by default; the glance-stage sink \
             writes every store with the caller's own rights)"
    } else {
        ""
    };
    format!("the target Glance refused copy-image: {error}{hint}")
}
