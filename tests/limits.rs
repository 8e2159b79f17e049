//! Bounds at the edge, checked with raw bytes over TCP: slow clients are cut off (408), oversized
//! heads refused (431), and nothing waits forever.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn harness() -> Harness {
    Harness::with_config(|c| c.client_timeout = Duration::from_millis(800)).await
}

/// Sends `bytes`, then reads whatever comes back until the server closes (bounded).
async fn exchange(h: &Harness, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(h.sidecar.addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept a stalled connection open");
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_import_body_gets_408() {
    let h = harness().await;
    let target = h.target_image().await;
    let head = format!(
        "POST /v2/images/{target}/import HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Auth-Token: {}\r\nContent-Length: 200\r\n\r\n{{\"method\":",
        h.token
    );
    let answer = exchange(&h, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(h.target_state(&target)["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_cut_off() {
    let h = harness().await;
    let answer = exchange(&h, b"GET /v2/images HTTP/1.1\r\nHost: x\r\n").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_is_refused() {
    let h = harness().await;
    let mut head = String::from("GET /v2/images HTTP/1.1\r\nHost: x\r\n");
    for i in 0..300 {
        head.push_str(&format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)));
    }
    head.push_str("\r\n");
    let answer = exchange(&h, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}
