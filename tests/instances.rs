//! Several sidecars in front of one Glance act as one: a task started on one instance is seen on
//! the others, and the one-import-per-image rule holds across them — through the state each
//! import keeps on the target image.

mod support;

use std::time::Duration;

use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::claim;
use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::Fault;
use serde_json::json;
use support::*;

/// The task `api` shows for `image` with this request id once `done` holds for it (within 10 s).
async fn task_with_request_id(
    api: &ImageApi,
    image: &str,
    request_id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = api
            .get(&format!("/v2/images/{image}/tasks"))
            .await
            .unwrap()
            .json();
        let task = seen["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["request_id"] == request_id)
            .cloned();
        match task {
            Some(task) if done(&task) => return task,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "no such task within 10 s: {other:?} in {seen}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn second_instance(h: &Harness) -> (Server, ImageApi) {
    let server = Server::bind(App::new(h.config.clone()).unwrap(), h.config.bind)
        .await
        .unwrap();
    let api = ImageApi::new(&server.url(), &h.token);
    (server, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_one_instance_is_seen_and_respected_by_another() {
    let h = Harness::start().await;
    let (_b, b) = second_instance(&h).await;
    let src = h.source_image(4 << 20, 1, json!({"hw_a": "1"}));
    // The source answers slowly: the import holds its claim while the target is still queued.
    h.source()
        .set_fault_times(&src, Fault::StallHeaders(Duration::from_millis(1500)), 1);
    let dst = h.target_image().await;
    let accepted = h.import(&dst, &src).await;
    assert_eq!(accepted.status, 202);
    let request_id = accepted.header("x-openstack-request-id").unwrap();

    // The task claims the image as its first step, right after the 202: the other instance
    // sees it from then on.
    let task = task_with_request_id(&b, &dst, request_id, |_| true).await;
    assert!(
        matches!(task["status"].as_str(), Some("pending" | "processing")),
        "{task}"
    );

    let collide = b
        .import_glance_download(&dst, "REGION1", &src)
        .await
        .unwrap();
    assert_eq!(collide.status, 409);
    assert_eq!(collide.json()["message"], "Image has active task");

    let done = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(done["status"], "success", "{done}");
    let seen = b
        .get(&format!("/v2/images/{dst}/tasks"))
        .await
        .unwrap()
        .json();
    let task = seen["tasks"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(task["id"], done["id"]);
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["progress"]["bytes_done"], 4 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instances_claim_can_be_taken_over() {
    let h = Harness::start().await;
    let src = h.source_image(100_000, 2, json!({}));
    let dst = h.target_image().await;
    for (key, value) in [
        (claim::TASK_ID, "0a0a0a0a-0000-4000-8000-000000000000"),
        (claim::STATUS, "processing"),
        (claim::UPDATED, "2020-01-01T00:00:00.000000"),
    ] {
        h.target().set_property(&dst, key, Some(value));
    }
    let stale = h.last_task(&dst).await;
    assert_eq!(
        stale["status"], "failure",
        "a silent claim is reported as failed: {stale}"
    );

    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(h.target_state(&dst)[claim::TASK_ID], task["id"]);

    // A fresh claim by another instance is respected.
    let dst2 = h.target_image().await;
    h.target().set_property(
        &dst2,
        claim::TASK_ID,
        Some("0b0b0b0b-0000-4000-8000-000000000000"),
    );
    h.target()
        .set_property(&dst2, claim::STATUS, Some("processing"));
    let now = glance_download_sidecar::tasks::timestamp(time::OffsetDateTime::now_utc());
    h.target().set_property(&dst2, claim::UPDATED, Some(&now));
    let refused = h.import(&dst2, &src).await;
    assert_eq!(refused.status, 409);
}

/// Two instances accept imports of one image in the same moment (neither saw the other's claim):
/// the claim written last wins. The other import fails as a task naming the winner, and touches
/// the image no further: no sync, no summary over the winner's claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_overwritten_in_the_same_moment_fails_the_task_and_leaves_the_image_alone() {
    let h = Harness::start().await;
    let src = h.source_image(1 << 20, 3, json!({"hw_a": "1"}));
    let dst = h.target_image().await;
    let before = h.target_state(&dst);
    let winner = "0c0c0c0c-0000-4000-8000-000000000000";
    let now = glance_download_sidecar::tasks::timestamp(time::OffsetDateTime::now_utc());
    h.target().overwrite_after_next_patch(
        &dst,
        &[
            (claim::TASK_ID, winner),
            (claim::STATUS, "processing"),
            (claim::UPDATED, &now),
        ],
    );
    let accepted = h.import(&dst, &src).await;
    assert_eq!(accepted.status, 202);
    let request_id = accepted.header("x-openstack-request-id").unwrap();

    let ended = |t: &serde_json::Value| matches!(t["status"].as_str(), Some("success" | "failure"));
    let task = task_with_request_id(&h.api, &dst, request_id, ended).await;
    assert_failed_with(&task, "Image has active task");
    assert_failed_with(&task, winner);
    // A stray summary write would come right after the task's end: give it time to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let image = h.target_state(&dst);
    assert_eq!(image[claim::TASK_ID], winner, "{image}");
    assert_eq!(image[claim::STATUS], "processing", "{image}");
    assert_eq!(image["status"], "queued", "{image}");
    assert!(image.get("hw_a").is_none(), "nothing was synced: {image}");
    assert_eq!(image["disk_format"], before["disk_format"], "{image}");
    let patches = h
        .target()
        .requests_to("PATCH", &format!("/v2/images/{dst}"));
    assert_eq!(patches, 1, "the claim only");
}

/// Right after the `202`, before the import's claim has replaced an older one on the image, the
/// instance running it lists its task last (the newest), after the older claim's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_task_is_listed_last_before_its_claim_lands() {
    let h = Harness::start().await;
    let src = h.source_image(100_000, 4, json!({}));
    let dst = h.target_image().await;
    let older = "0d0d0d0d-0000-4000-8000-000000000000";
    for (key, value) in [
        (claim::TASK_ID, older),
        (claim::STATUS, "failure"),
        (claim::UPDATED, "2020-01-01T00:00:00.000000"),
    ] {
        h.target().set_property(&dst, key, Some(value));
    }
    // The claim's PATCH is answered 500 and retried 250 ms later: the older claim stays meanwhile.
    h.target().fail_next_patches(1);
    let accepted = h.import(&dst, &src).await;
    assert_eq!(accepted.status, 202);
    let request_id = accepted.header("x-openstack-request-id").unwrap();

    let seen = h.tasks(&dst).await;
    let tasks = seen["tasks"].as_array().unwrap();
    assert!(tasks.iter().any(|t| t["id"] == older), "{seen}");
    assert_eq!(tasks.last().unwrap()["request_id"], request_id, "{seen}");

    let done = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(h.target_state(&dst)[claim::TASK_ID], done["id"]);
}

/// An import that fails at once (its source region is not in the caller's catalog) has still
/// claimed the image first, so another instance lists it as failed, with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_that_fails_at_once_is_seen_failed_by_another_instance() {
    let h = Harness::start().await;
    let (_b, b) = second_instance(&h).await;
    let src = h.source_image(100_000, 5, json!({}));
    let dst = h.target_image().await;
    let accepted = h
        .api
        .import_glance_download(&dst, "NOWHERE", &src)
        .await
        .unwrap();
    assert_eq!(accepted.status, 202);
    let request_id = accepted.header("x-openstack-request-id").unwrap();
    let ended = |t: &serde_json::Value| matches!(t["status"].as_str(), Some("success" | "failure"));
    let task = task_with_request_id(&b, &dst, request_id, ended).await;
    assert_failed_with(&task, "NOWHERE");
}

/// The source's data is opened while the target is claimed (a round trip saved per import, one
/// RTT of the region link): with the claim's `PATCH` answered 500 and retried 250 ms later, the
/// source's `GET /file` arrives while the claim is not yet on the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_is_opened_while_the_target_is_claimed() {
    let h = Harness::start().await;
    let src = h.source_image(1 << 20, 8, json!({}));
    let dst = h.target_image().await;
    h.target().fail_next_patches(1);
    let accepted = h.import(&dst, &src).await;
    assert_eq!(accepted.status, 202);
    let file = format!("/v2/images/{src}/file");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.source().requests_to("GET", &file) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the source never opened"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        h.target_state(&dst).get(claim::TASK_ID).is_none(),
        "the source was opened only after the claim: {}",
        h.target_state(&dst)
    );
    let done = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(h.target_state(&dst)[claim::TASK_ID], done["id"]);
}

/// A claim that fails ends the import at once, whatever the source is doing: here the source's
/// data request hangs (its answer would come after 30 s at the earliest), and the task still
/// ends within seconds with the target's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_claim_ends_the_import_without_waiting_for_the_source() {
    let h = Harness::with_config(|c| c.request_timeout = Duration::from_secs(30)).await;
    let src = h.source_image(1 << 20, 9, json!({}));
    h.source()
        .set_fault(&src, Fault::StallHeaders(Duration::from_secs(60)));
    let dst = h.target_image().await;
    // Both of the claim's attempts are answered 500.
    h.target().fail_next_patches(2);
    let accepted = h.import(&dst, &src).await;
    assert_eq!(accepted.status, 202);
    let task = h
        .api
        .wait_for_import(&dst, Duration::from_secs(20))
        .await
        .expect("the import waited for the source");
    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap();
    assert!(message.contains("target Glance"), "{task}");
}
