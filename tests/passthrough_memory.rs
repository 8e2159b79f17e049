//! A large upload through the pass-through proxy streams: the sidecar's memory does not grow
//! with the body. Alone in its own test binary so no other test's allocations blur the reading.

mod support;

use glance_download_sidecar::http::boxed;
use glance_download_sidecar::tools::demo::peak_rss;
use glance_download_sidecar::tools::sim::generated_body;
use http::Method;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_keeps_memory_flat() {
    const SIZE: u64 = 1 << 30;
    let h = Harness::start().await;
    h.target().keep_uploads_up_to(0);
    let id = h.target_image().await;
    let before = peak_rss().expect("this test needs /proc/self/status");
    let body = boxed(generated_body(42, 0, SIZE));
    let put = h
        .api
        .call(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            Some("application/octet-stream"),
            body,
        )
        .await
        .unwrap();
    assert_eq!(put.status, 204, "{put:?}");
    let image = h.target_state(&id);
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], SIZE);
    let growth = peak_rss().unwrap().saturating_sub(before);
    // Client, sidecar and fake Glance share this process: a buffered body would add 1 GiB.
    assert!(
        growth < 128 << 20,
        "peak RSS grew by {} MiB for a 1 GiB upload",
        growth >> 20
    );
}
