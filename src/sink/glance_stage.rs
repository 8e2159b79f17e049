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

use crate::glance::{follow_task, FollowError, Glance, GlanceError, Pace, TaskStatus};
use crate::http::boxed;
use crate::pipeline::SinkBody;

use super::{SinkError, SinkFuture, StoreSink, Target};

/// How upstream's import task is polled: 25 ms after the import, each pause doubling to 250 ms
/// (a small image's task ends within the first few polls), and for at most 5 s absent from the
/// image's task list (Glance records the task before it answers, so it is normally there at
/// once); its end is bounded by the import's `total_timeout`.
const PACE: Pace = Pace {
    first: Duration::from_millis(25),
    max: Duration::from_millis(250),
    appear_within: Duration::from_secs(5),
    end_within: None,
    failed_lists: 0,
};

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

    /// Follows upstream's task to its end: the one the import answered with `request_id`
    /// started (see [`follow_task`]), never another task of the image.
    async fn follow(&self, target: &Target, request_id: &str) -> Result<(), SinkError> {
        let list = || {
            self.glance
                .tasks(&self.glance_url, &target.image_id, &target.token)
        };
        let ended =
            follow_task(request_id, PACE, list, |_| {})
                .await
                .map_err(|error| {
                    match error {
                FollowError::List(error) => SinkError::Glance(error),
                FollowError::NoRequestId => SinkError::ImportFailed(
                    "Glance answered the glance-direct import without an x-openstack-request-id, \
                     so its task cannot be told from the image's other tasks"
                        .into(),
                ),
                FollowError::NotListed | FollowError::TimedOut(_) => {
                    SinkError::ImportFailed(format!(
                        "Glance lists no task for the glance-direct import (request {request_id})"
                    ))
                }
                FollowError::Several => SinkError::ImportFailed(format!(
                    "Glance lists several tasks for the glance-direct import (request \
                     {request_id})"
                )),
            }
                })?;
        match ended.status {
            TaskStatus::Success => Ok(()),
            _ => Err(SinkError::ImportFailed(
                ended
                    .message
                    .as_deref()
                    .unwrap_or("no reason given")
                    .to_string(),
            )),
        }
    }
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
