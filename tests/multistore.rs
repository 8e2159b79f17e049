//! Multi-store targets (DESIGN §2 step 7): the first store written by the sink, the rest by
//! upstream's copy-image, `all_stores_must_succeed` honoured; a single-store Glance ignores the
//! store fields.

mod support;

use glance_download_sidecar::config::SinkKind;
use glance_download_sidecar::tools::apiclient::{Answer, ImageApi};
use serde_json::{json, Value};
use support::*;

/// A harness whose REGION2 Glance has stores `local` (default), `fast` and `slow`; `slow` fails
/// every copy into it.
async fn multi_store(sink: SinkKind) -> Harness {
    let h = Harness::with_config(|c| c.store_sink = sink).await;
    h.target()
        .enable_stores(&["local", "fast", "slow"], "local");
    h.target().fail_store("slow");
    h
}

/// An admin of the demo project: Glance's `copy_image` policy is admin-only by default.
fn admin(h: &Harness) -> ImageApi {
    let token = h
        .cloud
        .keystone
        .issue_token("admin-user", PROJECT, &["admin"]);
    ImageApi::new(&h.sidecar.url(), &token)
}

fn body(source: &str, extra: Value) -> Value {
    let mut body = json!({"method": {"name": "glance-download", "glance_region": "REGION1",
                                     "glance_image_id": source, "glance_service_interface": "public"}});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    body
}

async fn import(api: &ImageApi, target: &str, body: &Value) -> Answer {
    api.post_json(&format!("/v2/images/{target}/import"), body)
        .await
        .unwrap()
}

/// Imports through `api` and waits for the sidecar's task (listed last); returns it.
async fn import_and_wait(api: &ImageApi, target: &str, body: &Value) -> Value {
    let answer = import(api, target, body).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let task = api.wait_for_import(target, TASK_WAIT).await.unwrap();
    assert_eq!(
        task["input"]["import_req"]["method"]["name"], "glance-download",
        "{task}"
    );
    task
}

/// The `X-Image-Meta-Store` of each `PUT /file` REGION2 received.
fn upload_stores(h: &Harness) -> Vec<Option<String>> {
    h.target()
        .request_log()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/file"))
        .map(|r| r.header("x-image-meta-store").map(str::to_string))
        .collect()
}

/// How many `POST /import` REGION2 received: with glance-upload only copy-image goes there
/// (the glance-download request itself is handled by the sidecar).
fn import_posts(h: &Harness) -> usize {
    h.target()
        .request_log()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/import"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_stores_first_by_upload_then_copy_image() {
    let h = multi_store(SinkKind::GlanceUpload).await;
    let api = admin(&h);
    let src = h.source_image(2 << 20, 1, json!({"os_distro": "ubuntu"}));
    let dst = h.target_image().await;
    let task = import_and_wait(
        &api,
        &dst,
        &body(&src, json!({"stores": ["fast", "local"]})),
    )
    .await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["input"]["backend"], json!(["fast", "local"]));
    assert_eq!(
        task["verification"]["stores"],
        json!({"succeeded": ["fast", "local"], "failed": []})
    );
    let copy = h.target_state(&dst);
    assert_same_image(&copy, &h.source_state(&src));
    assert_eq!(copy["stores"], "fast,local");
    assert_eq!(copy["os_glance_failed_import"], "");
    assert!(copy.get("os_glance_import_task").is_none());
    assert_eq!(upload_stores(&h), [Some("fast".to_string())]);
    assert_eq!(import_posts(&h), 1, "one copy-image for the rest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_stores_means_every_listed_store() {
    let h = multi_store(SinkKind::GlanceUpload).await;
    h.target().enable_stores(&["local", "fast"], "local");
    h.target().add_read_only_store("web");
    let api = admin(&h);
    let src = h.source_image(1 << 20, 2, json!({}));
    let dst = h.target_image().await;
    let task = import_and_wait(&api, &dst, &body(&src, json!({"all_stores": true}))).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(
        task["input"]["backend"],
        json!(["local", "fast"]),
        "read-only web left out"
    );
    assert_eq!(h.target_state(&dst)["stores"], "local,fast");
    assert_eq!(upload_stores(&h), [Some("local".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_named_means_the_default_store_and_no_copy() {
    let h = multi_store(SinkKind::GlanceUpload).await;
    // A member suffices: nothing is copied.
    let src = h.source_image(1 << 20, 3, json!({}));
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["input"]["backend"], json!(["local"]));
    assert_eq!(h.target_state(&dst)["stores"], "local");
    assert_eq!(upload_stores(&h), [Some("local".to_string())]);
    assert_eq!(import_posts(&h), 0);
    // The header names the store too.
    let dst = h.target_image().await;
    // the X-Image-Meta-Store header, as `glance image-import --store` sends it
    let bytes = serde_json::to_vec(&body(&src, json!({}))).unwrap();
    let answer = h
        .import_with_header(&dst, bytes, ("x-image-meta-store", "fast"))
        .await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let task = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(h.target_state(&dst)["stores"], "fast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_list_is_read_once_for_several_imports() {
    let h = multi_store(SinkKind::GlanceUpload).await;
    let src = h.source_image(1 << 20, 4, json!({}));
    for _ in 0..3 {
        let dst = h.target_image().await;
        let task = h.import_and_wait(&dst, &src).await;
        assert_eq!(task["status"], "success", "{task}");
        assert_eq!(h.target_state(&dst)["stores"], "local");
    }
    assert_eq!(h.target().requests_to("GET", "/v2/info/stores"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_conflicting_stores_are_refused_before_anything_happens() {
    let h = multi_store(SinkKind::GlanceUpload).await;
    let src = h.source_image(1 << 20, 4, json!({}));
    let dst = h.target_image().await;
    let before = h.target_state(&dst);
    let answer = import(
        &h.api,
        &dst,
        &body(&src, json!({"stores": ["fast", "tape"]})),
    )
    .await;
    assert_eq!(answer.status, 409);
    assert_eq!(
        glance_download_sidecar::glance::error_message(&answer.body),
        "Store for identifier tape not found"
    );
    let answer = import(
        &h.api,
        &dst,
        &body(&src, json!({"all_stores": true, "stores": ["fast"]})),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(String::from_utf8_lossy(&answer.body).contains(
        "All_stores parameter can't be used with x-image-meta-store header or stores parameter"
    ));
    assert_eq!(h.target_state(&dst), before, "the image was not touched");
    assert!(upload_stores(&h).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_required_store_fails_the_task_but_keeps_the_verified_image() {
    let h = multi_store(SinkKind::GlanceUpload).await;
    let api = admin(&h);
    let src = h.source_image(1 << 20, 5, json!({"os_type": "linux"}));
    let dst = h.target_image().await;
    let request = body(
        &src,
        json!({"stores": ["fast", "slow", "local"], "all_stores_must_succeed": true}),
    );
    let task = import_and_wait(&api, &dst, &request).await;
    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap();
    assert!(message.contains("store(s) slow,local failed"), "{message}");
    assert!(
        message.contains("stays active in store(s) fast"),
        "{message}"
    );
    assert!(
        message.contains("Task failed due to Internal Error"),
        "{message}"
    );
    assert_eq!(task["verification"]["verified"], true);
    // As upstream's copy-image: the copy task is undone, the image stays active where it was.
    let copy = h.target_state(&dst);
    assert_same_image(&copy, &h.source_state(&src));
    assert_eq!(copy["stores"], "fast");
    assert_eq!(copy["os_glance_failed_import"], "slow");
    assert_eq!(
        copy["os_type"], "linux",
        "the sync is kept on an active image"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_optional_store_is_reported_and_the_rest_kept() {
    let h = multi_store(SinkKind::GlanceUpload).await;
    let api = admin(&h);
    let src = h.source_image(1 << 20, 6, json!({}));
    let dst = h.target_image().await;
    let request = body(
        &src,
        json!({"stores": ["fast", "slow", "local"], "all_stores_must_succeed": false}),
    );
    let task = import_and_wait(&api, &dst, &request).await;
    assert_eq!(task["status"], "success", "{task}");
    let stores = &task["verification"]["stores"];
    assert_eq!(stores["succeeded"], json!(["fast", "local"]));
    assert_eq!(stores["failed"], json!(["slow"]));
    assert!(
        stores["reason"]
            .as_str()
            .unwrap()
            .contains("os_glance_failed_import"),
        "{stores}"
    );
    let copy = h.target_state(&dst);
    assert_eq!(copy["stores"], "fast,local");
    assert_eq!(copy["os_glance_failed_import"], "slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_copy_names_the_policy() {
    // A member may import but not copy-image (admin-only by default).
    let h = multi_store(SinkKind::GlanceUpload).await;
    let src = h.source_image(1 << 20, 7, json!({}));
    let dst = h.target_image().await;
    let request = body(
        &src,
        json!({"stores": ["local", "fast"], "all_stores_must_succeed": false}),
    );
    let task = import_and_wait(&h.api, &dst, &request).await;
    assert_eq!(task["status"], "success", "{task}");
    let stores = &task["verification"]["stores"];
    assert_eq!(stores["failed"], json!(["fast"]));
    assert!(
        stores["reason"].as_str().unwrap().contains("copy_image"),
        "{stores}"
    );
    assert_eq!(h.target_state(&dst)["stores"], "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glance_stage_lets_glance_write_every_store() {
    let h = multi_store(SinkKind::GlanceStage).await;
    let src = h.source_image(1 << 20, 8, json!({}));
    // A member suffices: Glance's own glance-direct writes the stores.
    let dst = h.target_image().await;
    let request = body(&src, json!({"stores": ["fast", "local"]}));
    let task = import_and_wait(&h.api, &dst, &request).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(h.target_state(&dst)["stores"], "fast,local");
    assert_eq!(
        task["verification"]["stores"],
        json!({"succeeded": ["fast", "local"], "failed": []})
    );
    // A required store failing fails Glance's import: the image goes back to queued, as upstream.
    let dst = h.target_image().await;
    let request = body(
        &src,
        json!({"stores": ["fast", "slow"], "all_stores_must_succeed": true}),
    );
    let task = import_and_wait(&h.api, &dst, &request).await;
    assert_eq!(task["status"], "failure", "{task}");
    let after = h.target_state(&dst);
    assert_eq!(after["status"], "queued");
    assert_eq!(after["os_glance_failed_import"], "slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_store_glance_ignores_the_store_fields() {
    let h = Harness::start().await;
    let src = h.source_image(1 << 20, 9, json!({}));
    for extra in [
        json!({"stores": ["fast", "local"], "all_stores_must_succeed": false}),
        json!({"all_stores": true, "all_stores_must_succeed": false}),
    ] {
        let dst = h.target_image().await;
        let task = import_and_wait(&h.api, &dst, &body(&src, extra)).await;
        assert_eq!(task["status"], "success", "{task}");
        assert_eq!(task["input"]["backend"], json!([null]));
        assert!(task["verification"].get("stores").is_none(), "{task}");
        let copy = h.target_state(&dst);
        assert_same_image(&copy, &h.source_state(&src));
        assert!(copy.get("stores").is_none());
    }
    assert_eq!(
        upload_stores(&h),
        [None, None],
        "no store header on a single-store Glance"
    );
}
