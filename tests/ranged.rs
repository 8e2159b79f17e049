//! Parallel `Range` requests: the image arrives in order, byte for byte, with faults in any
//! segment resumed on their own and corruption still refused.

mod support;

use std::time::Duration;

use glance_download_sidecar::tools::sim::{generated_bytes, Fault};
use serde_json::json;
use support::*;

const SIZE: u64 = (10 << 20) + 3;

async fn harness() -> Harness {
    Harness::with_config(|c| {
        c.source_streams = 4;
        c.segment_size = 1 << 20;
        c.retry_delay = Duration::from_millis(10);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_arrive_in_order_byte_for_byte() {
    let h = harness().await;
    let src = h.source_image(SIZE, 1, json!({"hw_a": "1"}));
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_same_image(&h.target_state(&dst), &h.source_state(&src));
    assert!(h.target().image_data(&dst).unwrap() == generated_bytes(1, 0, SIZE as usize));
    let mut ranges: Vec<String> = h
        .source()
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with("/file"))
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    ranges.sort();
    ranges.dedup();
    assert_eq!(
        ranges.len(),
        11,
        "one request per 1 MiB segment: {ranges:?}"
    );
    assert!(
        ranges.contains(&"bytes=10485760-".to_string()),
        "the last one to the end: {ranges:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_segment_resumes_on_its_own() {
    let h = harness().await;
    let src = h.source_image(SIZE, 2, json!({}));
    h.source()
        .set_fault_times(&src, Fault::DropAfter(300 << 10), 3);
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_same_image(&h.target_state(&dst), &h.source_state(&src));
    assert_eq!(
        h.sidecar
            .app
            .metrics
            .source_retries
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_in_any_segment_is_refused() {
    let h = harness().await;
    let src = h.source_image(SIZE, 3, json!({"os_distro": "x"}));
    h.source()
        .set_fault(&src, Fault::Corrupt { offset: 5 << 20 });
    let dst = h.target_image().await;
    let before = h.target_state(&dst);
    let task = h.import_and_wait(&dst, &src).await;
    assert_failed_with(&task, "checksum mismatch");
    assert_reverted(&h.target_state(&dst), &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_cross_an_emulated_wan_link_with_stalls() {
    use glance_download_sidecar::tools::sim::LinkSpec;
    let h = harness().await;
    let link = link_before_the_source(
        &h,
        LinkSpec {
            one_way_delay: Duration::from_millis(5),
            bandwidth: 200_000_000,
            window: 256 << 10,
            stall: Some((3 << 20, Duration::from_millis(50))),
        },
    )
    .await;
    let src = h.source_image(SIZE, 4, json!({"hw_a": "1"}));
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_same_image(&h.target_state(&dst), &h.source_state(&src));
    assert!(h.target().image_data(&dst).unwrap() == generated_bytes(4, 0, SIZE as usize));
    assert!(
        link.connections() >= 4,
        "the source was read across the link, in parallel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_reuse_kept_alive_connections() {
    use glance_download_sidecar::tools::sim::LinkSpec;
    let h = harness().await;
    let link = link_before_the_source(
        &h,
        LinkSpec {
            one_way_delay: Duration::from_millis(2),
            bandwidth: 400_000_000,
            window: 256 << 10,
            stall: None,
        },
    )
    .await;
    let src = h.source_image(SIZE, 5, json!({}));
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    assert!(h.target().image_data(&dst).unwrap() == generated_bytes(5, 0, SIZE as usize));
    let segments = h
        .source()
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with("/file") && r.header("range").is_some())
        .count();
    assert_eq!(segments, 11, "one request per 1 MiB segment");
    // 4 streams, each kept alive from segment to segment: never a connection per segment. The
    // image record's GET connection may not be back in the pool when the first segments start
    // (they start as soon as it is answered), nor a segment's when the next one starts.
    assert!(
        link.connections() <= 6,
        "{} connections for {segments} segments over 4 streams",
        link.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_behind_the_head_hold_at_most_the_reorder_buffer() {
    use glance_download_sidecar::glance::{Glance, ImageId};
    use glance_download_sidecar::keystone::Token;
    use glance_download_sidecar::pipeline::{ParallelRanges, Remote, RetryPolicy, Source, Streams};
    const WINDOW: u64 = 1 << 20;
    let h = harness().await;
    let src = h.source_image(SIZE, 6, json!({}));
    let remote = Remote {
        glance: Glance::new(
            glance_download_sidecar::http::client(Duration::from_secs(10)),
            Duration::from_secs(60),
        ),
        base: h.source().url(),
        id: ImageId::parse(&src).unwrap(),
        token: Token::parse(h.token.as_bytes()).unwrap(),
        size: SIZE,
        compact: false,
    };
    let policy = RetryPolicy {
        max_retries: 0,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        read_timeout: Duration::from_secs(30),
    };
    // 4 streams of 1 MiB segments: unbounded, the 3 behind the head would hold 3 MiB
    let shape = Streams {
        streams: 4,
        segment_size: 1 << 20,
        reorder_bytes: WINDOW,
    };
    let mut ranges = ParallelRanges::new(remote, policy, shape);
    ranges.connect().await.unwrap();
    // the head is not read on: the segments behind it fill the window and stop there
    for _ in 0..200 {
        if ranges.peak_held() >= WINDOW / 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = ranges.peak_held();
    assert!(
        peak > 0 && peak <= WINDOW,
        "{peak} bytes held behind the head"
    );
    let mut data = Vec::new();
    while let Some(frame) = ranges.next_frame().await {
        data.extend_from_slice(&frame.unwrap());
    }
    assert!(
        data == generated_bytes(6, 0, SIZE as usize),
        "in order, byte for byte"
    );
    assert!(ranges.peak_held() <= WINDOW, "{}", ranges.peak_held());
}

/// An emulated link in front of the source Glance, which the catalog then names in every interface.
async fn link_before_the_source(
    h: &Harness,
    spec: glance_download_sidecar::tools::sim::LinkSpec,
) -> glance_download_sidecar::tools::sim::WanLink {
    let upstream: std::net::SocketAddr = h
        .source()
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let link = glance_download_sidecar::tools::sim::WanLink::start(upstream, spec)
        .await
        .unwrap();
    for interface in ["public", "internal", "admin"] {
        h.cloud
            .keystone
            .set_endpoint("REGION1", interface, &link.url());
    }
    link
}
