//! Faults on the source side: transient ones are survived by resuming with `Range` and end with
//! identical hashes; permanent ones fail the task cleanly, the image back to `queued` with its
//! metadata restored. Never `active` with wrong data.

mod support;

use std::time::Duration;

use glance_download_sidecar::tools::sim::Fault;
use serde_json::json;
use support::*;

const SIZE: u64 = 4 << 20;

async fn harness() -> Harness {
    Harness::with_config(|c| {
        c.retry_delay = Duration::from_millis(10);
        c.read_timeout = Duration::from_millis(700);
        c.source_retries = 4;
    })
    .await
}

fn retries(h: &Harness) -> u64 {
    h.sidecar
        .app
        .metrics
        .source_retries
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_resumed_with_identical_hashes() {
    let h = harness().await;
    let cases = [
        (Fault::DropAfter(SIZE / 3), 1),
        (Fault::DropAfter(1), 3),
        (Fault::ShortBody(SIZE / 2), 1),
        (Fault::Stall(Duration::from_secs(3)), 1),
        (
            Fault::StallAfter {
                bytes: SIZE / 4,
                duration: Duration::from_secs(3),
            },
            1,
        ),
        (Fault::Status(503), 2),
        (Fault::Status(500), 1),
    ];
    for (seed, (fault, times)) in cases.into_iter().enumerate() {
        let before = retries(&h);
        let src = h.source_image(SIZE, 500 + seed as u64, json!({"hw_a": "1"}));
        h.source().set_fault_times(&src, fault, times);
        let dst = h.target_image().await;
        let task = h.import_and_wait(&dst, &src).await;
        assert_eq!(task["status"], "success", "{fault:?} x{times}: {task}");
        assert_same_image(&h.target_state(&dst), &h.source_state(&src));
        assert_eq!(
            retries(&h) - before,
            times as u64,
            "{fault:?}: one reconnection per fault"
        );
        // Every reconnection after the first byte asked for the rest only.
        let ranges: Vec<String> = h
            .source()
            .request_log()
            .iter()
            .filter(|r| r.path == format!("/v2/images/{src}/file"))
            .filter_map(|r| r.header("range").map(str::to_string))
            .collect();
        assert!(
            ranges
                .iter()
                .all(|r| r.starts_with("bytes=") && r.ends_with('-')),
            "{ranges:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_faults_fail_cleanly() {
    let h = harness().await;
    let cases = [
        (Fault::DropAfter(SIZE / 8), "gave up after 5 attempts"),
        (Fault::Status(503), "gave up after 5 attempts"),
        (Fault::Status(403), "the source answered 403"),
        (Fault::WrongContentLength(SIZE - 10), "Content-Length"),
        (Fault::Corrupt { offset: 7 }, "checksum mismatch"),
    ];
    for (seed, (fault, message)) in cases.into_iter().enumerate() {
        let src = h.source_image(
            SIZE,
            600 + seed as u64,
            json!({"hw_a": "1", "os_distro": "x"}),
        );
        h.source().set_fault(&src, fault);
        let dst = h.target_image().await;
        let before = h.target_state(&dst);
        let task = h.import_and_wait(&dst, &src).await;
        assert_eq!(task["status"], "failure", "{fault:?}: {task}");
        let text = task["message"].as_str().unwrap();
        assert!(text.contains(message), "{fault:?}: {text}");
        assert_reverted(&h.target_state(&dst), &before);
    }
}

/// The source's metadata is what is wrong: garbled JSON, an `os_hash_algo` that does not match
/// its `os_hash_value`, one nobody can compute. Each fails cleanly; nothing is synced or stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_source_metadata_fails_cleanly() {
    let h = harness().await;
    type Spoil = fn(&glance_download_sidecar::tools::sim::FakeGlance, &str);
    let cases: [(&str, Spoil, &str); 3] = [
        (
            "garbled JSON",
            |g, id| g.garble_image_json(id, true),
            "unexpected answer",
        ),
        (
            "wrong algorithm",
            |g, id| g.set_os_hash_algo(id, "sha256"),
            "sha256 mismatch",
        ),
        (
            "unknown algorithm",
            |g, id| g.set_os_hash_algo(id, "whirlpool"),
            "cannot compute",
        ),
    ];
    for (seed, (name, spoil, message)) in cases.into_iter().enumerate() {
        let src = h.source_image(SIZE, 700 + seed as u64, json!({"hw_a": "1"}));
        spoil(h.source(), &src);
        let dst = h.target_image().await;
        let before = h.target_state(&dst);
        let task = h.import_and_wait(&dst, &src).await;
        assert_eq!(task["status"], "failure", "{name}: {task}");
        let text = task["message"].as_str().unwrap();
        assert!(text.contains(message), "{name}: {text}");
        assert_reverted(&h.target_state(&dst), &before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_visible_while_running() {
    let h = harness().await;
    let src = h.source_image(SIZE, 700, json!({}));
    h.source().set_fault(
        &src,
        Fault::Throttle {
            bytes_per_sec: 4 << 20,
        },
    );
    let dst = h.target_image().await;
    assert_eq!(h.import(&dst, &src).await.status, 202);
    let mut seen_midway = false;
    for _ in 0..200 {
        let task = h.last_task(&dst).await;
        let done = task["progress"]["bytes_done"].as_u64().unwrap();
        if task["status"] == "processing" && done > 0 && done < SIZE {
            assert_eq!(task["progress"]["bytes_total"], SIZE);
            assert!(task["progress"]["rate_bytes_per_sec"].as_u64().unwrap() > 0);
            assert!(task["progress"]["eta_seconds"].is_u64());
            seen_midway = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen_midway,
        "progress was never seen between 0 and the size"
    );
    let task = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_named_and_the_image_restored_with_service_credentials() {
    let h = Harness::with_config(|c| {
        c.retry_delay = Duration::from_millis(600);
        c.service_credentials = Some(
            glance_download_sidecar::keystone::ServiceCredentials::password(
                "gds-service",
                "pw",
                "service",
                "Default",
                "Default",
            ),
        );
    })
    .await;
    h.cloud
        .keystone
        .add_user("gds-service", "pw", "service", &["admin"]);
    let short = h
        .cloud
        .keystone
        .issue_token(USER, PROJECT, &["member", "reader"]);
    let caller = glance_download_sidecar::tools::apiclient::ImageApi::new(&h.sidecar.url(), &short);
    let src = h.source_image(SIZE, 800, json!({"hw_a": "1", "os_type": "linux"}));
    h.source().set_fault_times(&src, Fault::Status(503), 1);
    let dst = h.target_image().await;
    let before = h.target_state(&dst);
    assert_eq!(
        caller
            .import_glance_download(&dst, "REGION1", &src)
            .await
            .unwrap()
            .status,
        202
    );
    // Revoke once the first data request has been answered 503 (the retry waits 600 ms).
    let file = format!("/v2/images/{src}/file");
    for _ in 0..200 {
        if h.source().request_log().iter().any(|r| r.path == file) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.cloud.keystone.revoke_token(&short);
    let task = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("token expired or was revoked"),
        "{message}"
    );
    assert!(
        !message.contains("restoring the target image failed"),
        "{message}"
    );
    assert_reverted(&h.target_state(&dst), &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_side_faults_fail_cleanly() {
    use glance_download_sidecar::tools::sim::UploadFault;
    let h = harness().await;
    let cases = [
        (
            UploadFault::Refuse(403),
            "the target Glance refused the upload: glance answered 403",
        ),
        (UploadFault::Refuse(503), "glance answered 503"),
        (
            UploadFault::FailAfter {
                bytes: SIZE / 2,
                status: 413,
            },
            "Image exceeds the storage quota",
        ),
        (
            UploadFault::FailAfter {
                bytes: 1,
                status: 500,
            },
            "glance answered 500",
        ),
    ];
    for (seed, (fault, message)) in cases.into_iter().enumerate() {
        let src = h.source_image(
            SIZE,
            900 + seed as u64,
            json!({"hw_a": "1", "os_distro": "x"}),
        );
        let dst = h.target_image().await;
        h.target().set_upload_fault(&dst, fault);
        let before = h.target_state(&dst);
        let task = h.import_and_wait(&dst, &src).await;
        assert_eq!(task["status"], "failure", "{fault:?}: {task}");
        let text = task["message"].as_str().unwrap();
        // Glance may answer before it has read the body and close the connection: the sidecar
        // then sees either that answer or the broken pipe, depending on timing. Both are a
        // refused upload; when the answer was read, it is reported as such.
        assert!(
            text.contains("the target Glance refused the upload"),
            "{fault:?}: {text}"
        );
        if text.contains("glance answered") {
            assert!(text.contains(message), "{fault:?}: {text}");
        }
        assert_reverted(&h.target_state(&dst), &before);
        // The image can be imported again once the fault is gone.
        let again = h.import_and_wait(&dst, &src).await;
        assert_eq!(again["status"], "success", "{fault:?}: {again}");
        assert_same_image(&h.target_state(&dst), &h.source_state(&src));
    }
}
