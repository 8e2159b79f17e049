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

    /// Follows upstream's task (found by the import's request id) to its end.
    async fn follow(&self, target: &Target, request_id: &str) -> Result<(), SinkError> {
        loop {
            let tasks = self
                .glance
                .tasks(&self.glance_url, &target.image_id, &target.token)
                .await?;
            let task = tasks
                .iter()
                .find(|t| t["request_id"] == request_id)
                .or_else(|| tasks.last());
            match task.map(|t| (t["status"].as_str().unwrap_or(""), t)) {
                Some(("success", _)) => return Ok(()),
                Some(("failure", task)) => {
                    let message = task["message"].as_str().unwrap_or("no reason given");
                    return Err(SinkError::ImportFailed(message.to_string()));
                }
                _ => tokio::time::sleep(POLL).await,
            }
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
