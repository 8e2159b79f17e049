//! The glance-stage sink follows the Glance task its own `glance-direct` import started (matched
//! by the import answer's request id), never whichever task of the image is newest.

mod support;

use glance_download_sidecar::config::SinkKind;
use serde_json::{json, Value};
use support::*;

/// Imports a new source into a new target while the target's Glance fails the sidecar's glance-direct
/// task (an import plugin refuses) and lists, last, a newer task started at the same time by
/// someone else that succeeds. Returns the target and the sidecar's final task.
async fn import_beside_a_newer_successful_task(h: &Harness) -> (String, Value) {
    h.target().fail_direct_imports(true);
    h.target().add_newer_task_on_import(Some("success"));
    let src = h.source_image(1 << 20, 3, json!({}));
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    (dst, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_task_of_the_image_is_not_followed() {
    let h = Harness::with_config(|c| c.store_sink = SinkKind::GlanceStage).await;
    let (dst, task) = import_beside_a_newer_successful_task(&h).await;
    assert_failed_with(&task, "Task failed due to Internal Error");
    assert_eq!(h.target_state(&dst)["status"], "queued");
    // The fake's list really had the newer, successful task last.
    let listed = h.target().request_log();
    assert!(listed.iter().any(|r| r.path.ends_with("/tasks")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_whose_task_cannot_be_identified_fails_closed() {
    let h = Harness::with_config(|c| c.store_sink = SinkKind::GlanceStage).await;
    // A proxy in front of Glance replaces every request id: no task carries the one answered.
    h.target().rewrite_request_ids(true);
    let (dst, task) = import_beside_a_newer_successful_task(&h).await;
    assert_failed_with(&task, "Glance lists no task for the glance-direct import");
    assert_ne!(h.target_state(&dst)["status"], "active");
}
