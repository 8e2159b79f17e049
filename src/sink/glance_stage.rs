//! The `glance-stage` sink: the data into Glance's staging area (`PUT /v2/images/{id}/stage`),
//! then a `glance-direct` import on the fronted Glance, so the import plugins configured there
//! (`image_conversion`, `image_decompression`, `inject_image_metadata`) apply exactly as with
//! upstream's own glance-download, at the cost of Glance's staging (the image is written twice).
//!
//! On a multi-store Glance the `glance-direct` import names every requested store, so Glance
//! writes them all from staging, with `all_stores_must_succeed` as asked.
//!
//! The staged bytes are verified in-stream like any sink's; what Glance stores after its plugins
//! may differ on purpose (a qcow2 converted to raw), so the target's digests are recorded rather
//! than compared with the source's.

use std::time::Duration;

use serde_json::{json, Value};

use crate::glance::{Glance, GlanceError};
use crate::http::boxed;
use crate::pipeline::SinkBody;

use super::{SinkError, SinkFuture, StoreSink, Target};

/// How often upstream's import task is polled.
const POLL: Duration = Duration::from_millis(250);

/// Polls in which the import's task may be absent from the image's task list before the sink
/// gives up (Glance records the task before it answers, so it is normally there at once).
const MISSING_POLLS: u32 = 20;

/// Stages through the fronted Glance and lets its import flow finish the job.
#[derive(Clone)]
pub struct GlanceStage {
    glance: Glance,
    glance_url: String,
}

impl GlanceStage {
    pub fn new(glance: Glance, glance_url: &str) -> Self {
        GlanceStage {
            glance,
            glance_url: glance_url.to_string(),
        }
    }

    /// Follows upstream's task to its end: the one whose `request_id` is the import answer's
    /// `x-openstack-request-id` (Glance records its request context's id in the task it starts,
    /// and answers with that id, `req-` prefixed), never another task of the image.
    async fn follow(&self, target: &Target, request_id: &str) -> Result<(), SinkError> {
        if request_id.is_empty() {
            return Err(SinkError::ImportFailed(
                "Glance answered the glance-direct import without an x-openstack-request-id, \
                 so its task cannot be told from the image's other tasks"
                    .into(),
            ));
        }
        let mut missing = 0;
        loop {
            let tasks = self
                .glance
                .tasks(&self.glance_url, &target.image_id, &target.token)
                .await?;
            let ours: Vec<&Value> = tasks.iter().filter(|t| is_task_of(t, request_id)).collect();
            match ours.as_slice() {
                [] if missing < MISSING_POLLS => missing += 1,
                [] => {
                    return Err(SinkError::ImportFailed(format!(
                        "Glance lists no task for the glance-direct import (request {request_id})"
                    )))
                }
                [task] => match task["status"].as_str().unwrap_or("") {
                    "success" => return Ok(()),
                    "failure" => {
                        let message = task["message"].as_str().unwrap_or("no reason given");
                        return Err(SinkError::ImportFailed(message.to_string()));
                    }
                    _ => {}
                },
                _ => {
                    return Err(SinkError::ImportFailed(format!(
                        "Glance lists several tasks for the glance-direct import (request \
                         {request_id})"
                    )))
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Whether `task` was started by the request answered with `request_id`: Glance records the
/// context's id, which a caller's own `x-openstack-request-id` may have set without the `req-`
/// prefix its answer always carries.
fn is_task_of(task: &Value, request_id: &str) -> bool {
    let Some(recorded) = task["request_id"].as_str().filter(|r| !r.is_empty()) else {
        return false;
    };
    recorded == request_id || request_id.strip_prefix("req-") == Some(recorded)
}

impl StoreSink for GlanceStage {
    fn name(&self) -> &'static str {
        "glance-stage"
    }

    fn keeps_bytes(&self) -> bool {
        false
    }

    fn writes_every_store(&self) -> bool {
        true
    }

    fn store<'a>(&'a self, target: &'a Target, body: SinkBody) -> SinkFuture<'a> {
        Box::pin(async move {
            self.glance
                .put_stage(
                    &self.glance_url,
                    &target.image_id,
                    &target.token,
                    target.size,
                    boxed(body),
                )
                .await?;
            let mut request = json!({"method": {"name": "glance-direct"}});
            // On a multi-store Glance its own flow writes every store, honouring
            // all_stores_must_succeed exactly as for upstream's glance-download (no copy-image,
            // so no admin-only `copy_image` policy in the way).
            if !target.stores.is_empty() {
                request["stores"] = Value::from(target.stores.clone());
                request["all_stores_must_succeed"] = Value::from(target.all_stores_must_succeed);
            }
            let request_id = self
                .glance
                .import(&self.glance_url, &target.image_id, &target.token, &request)
                .await
                .map_err(|e: GlanceError| SinkError::Glance(e))?;
            self.follow(target, &request_id).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_matched_by_its_request_id_only() {
        let task = |id: &str| json!({"id": "t", "request_id": id});
        assert!(is_task_of(&task("req-1"), "req-1"));
        // A caller-chosen id is recorded as sent; the answer prefixes it.
        assert!(is_task_of(&task("abc"), "req-abc"));
        assert!(!is_task_of(&task("req-2"), "req-1"));
        assert!(!is_task_of(&task(""), "req-"));
        assert!(!is_task_of(&json!({"id": "t"}), "req-1"));
        assert!(!is_task_of(&json!({"request_id": null}), "req-1"));
    }
}
