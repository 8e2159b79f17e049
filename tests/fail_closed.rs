//! Fail-closed whatever serves the target Glance: an upload the sidecar aborts is a cut every
//! server sees (chunked transfer coding), and an image a misbehaving server made `active` anyway
//! is deactivated, the task saying so.

mod support;

use std::time::Duration;

use glance_download_sidecar::tools::sim::{BodyReading, Fault, UploadFault};
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SIZE: u64 = 4 << 20;

async fn harness() -> Harness {
    Harness::with_config(|c| {
        c.retry_delay = Duration::from_millis(10);
        c.source_retries = 1;
    })
    .await
}

/// Sends `PUT /v2/images/{id}/file` to `glance` by hand: the headers, then `body` (already
/// framed), then the write side closed; returns the status line (empty when none came).
async fn raw_put(glance: &str, token: &str, id: &str, headers: &str, body: &[u8]) -> String {
    let addr = glance.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v2/images/{id}/file HTTP/1.1\r\nhost: {addr}\r\nx-auth-token: {token}\r\n\
         content-type: application/octet-stream\r\n{headers}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    #[allow(clippy::disallowed_methods)] // a test reads the answer of the server it tests whole
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The fake's lenient reading is the server the sidecar must survive: a cut
/// `Content-Length` body is stored as a complete, shorter image; a cut chunked body is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_reading_stores_a_cut_content_length_body_but_not_a_cut_chunked_one() {
    let h = harness().await;
    h.target().set_body_reading(BodyReading::Lenient);
    let url = h.target().url();

    let cut = h.target_image().await;
    let status = raw_put(
        &url,
        &h.token,
        &cut,
        "content-length: 1000\r\n",
        &[1u8; 600],
    )
    .await;
    assert!(status.contains("204"), "{status}");
    let image = h.target_state(&cut);
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], 600, "{image}");

    let chunked = h.target_image().await;
    let body = [
        b"100\r\n".as_slice(),
        &[1u8; 256],
        b"\r\n100\r\n",
        &[1u8; 10],
    ]
    .concat();
    raw_put(
        &url,
        &h.token,
        &chunked,
        "transfer-encoding: chunked\r\n",
        &body,
    )
    .await;
    let image = h.target_state(&chunked);
    assert_eq!(image["status"], "queued", "{image}");
    assert!(image["size"].is_null(), "{image}");
}

/// A flipped source byte and a dropped source, with the target read leniently: the
/// target is never seen `active`, ends `queued` with its metadata restored, the task failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_source_never_leaves_a_leniently_served_target_active() {
    let h = harness().await;
    h.target().set_body_reading(BodyReading::Lenient);
    let cases = [
        (Fault::Corrupt { offset: SIZE - 3 }, "checksum mismatch"),
        (Fault::DropAfter(SIZE / 8), "gave up after 2 attempts"),
    ];
    for (seed, (fault, message)) in cases.into_iter().enumerate() {
        let src = h.source_image(SIZE, 900 + seed as u64, json!({"hw_a": "1"}));
        h.source().set_fault(&src, fault);
        let dst = h.target_image().await;
        let before = h.target_state(&dst);
        assert_eq!(h.import(&dst, &src).await.status, 202);
        let task = loop {
            assert_ne!(h.target_state(&dst)["status"], "active", "{fault:?}");
            let task = h.last_task(&dst).await;
            if task["status"] == "success" || task["status"] == "failure" {
                break task;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(task["status"], "failure", "{fault:?}: {task}");
        let text = task["message"].as_str().unwrap();
        assert!(text.contains(message), "{fault:?}: {text}");
        assert_reverted(&h.target_state(&dst), &before);
        let puts = h
            .target()
            .request_log()
            .into_iter()
            .filter(|r| r.path == format!("/v2/images/{dst}/file"))
            .collect::<Vec<_>>();
        assert_eq!(puts.len(), 1, "{fault:?}");
        assert_eq!(puts[0].header("transfer-encoding"), Some("chunked"));
        assert_eq!(puts[0].header("content-length"), None);
        assert_eq!(
            puts[0].header("x-openstack-image-size"),
            Some(SIZE.to_string().as_str())
        );
    }
}

/// A server that ends the upload early and stores what it has: the import fails, and the short
/// `active` image is deactivated so that nothing boots from it; the task says what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_made_active_with_short_data_is_deactivated() {
    let h = harness().await;
    let src = h.source_image(SIZE, 950, json!({"hw_a": "1"}));
    let dst = h.target_image().await;
    h.target()
        .set_upload_fault(&dst, UploadFault::StoreFirst(SIZE / 2));
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "failure", "{task}");
    let text = task["message"].as_str().unwrap();
    assert!(
        text.contains(&format!("made the image active ({} bytes", SIZE / 2))
            && text.contains("was deactivated"),
        "{text}"
    );
    let image = h.target_state(&dst);
    assert_eq!(image["status"], "deactivated", "{image}");
    assert_eq!(image["size"], SIZE / 2, "{image}");
}

/// Glance's image PATCH saves the status it read, so a PATCH racing an upload's own status change
/// can leave an aborted upload's image `saving` for good: while Glance holds the image, the task's
/// heartbeat publishes nothing on it (a transfer longer than a heartbeat sees only the claim, the
/// sync and the final summary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_patched_onto_the_image_while_glance_holds_it() {
    let h = harness().await;
    let beat = glance_download_sidecar::claim::HEARTBEAT;
    let rate = 1 << 20;
    let size = rate * (beat.as_secs() + 2);
    let src = h.source_image(size, 960, json!({"hw_a": "1"}));
    h.source().set_fault(
        &src,
        Fault::Throttle {
            bytes_per_sec: rate,
        },
    );
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    let patches = h
        .target()
        .requests_to("PATCH", &format!("/v2/images/{dst}"));
    assert_eq!(patches, 3, "claim, sync and final summary only");
}
