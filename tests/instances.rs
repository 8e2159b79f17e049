//! Several sidecars in front of one Glance act as one: a task started on one instance is seen on
//! the others, and the one-import-per-image rule holds across them — through the state each
//! import keeps on the target image.

mod support;

use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::claim;
use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::Fault;
use serde_json::json;
use support::*;

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
    h.source().set_fault_times(
        &src,
        Fault::StallHeaders(std::time::Duration::from_millis(1500)),
        1,
    );
    let dst = h.target_image().await;
    let accepted = h.import(&dst, &src).await;
    assert_eq!(accepted.status, 202);

    let seen = b
        .get(&format!("/v2/images/{dst}/tasks"))
        .await
        .unwrap()
        .json();
    let task = seen["tasks"].as_array().unwrap().last().unwrap().clone();
    assert!(
        matches!(task["status"].as_str(), Some("pending" | "processing")),
        "{task}"
    );
    assert_eq!(
        task["request_id"],
        accepted.header("x-openstack-request-id").unwrap()
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
    let seen = h
        .api
        .get(&format!("/v2/images/{dst}/tasks"))
        .await
        .unwrap()
        .json();
    let stale = seen["tasks"].as_array().unwrap().last().unwrap().clone();
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
