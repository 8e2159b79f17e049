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
    #[allow(clippy::disallowed_methods)] // a test reads the answer of the server it tests whole
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

// --- Per-project import limit ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_over_its_import_limit_gets_429_with_retry_after() {
    let h = Harness::with_config(|c| {
        c.max_concurrent_imports = 8;
        c.max_imports_per_project = 1;
    })
    .await;
    let slow = h.throttled_source(4 << 20, 1);
    let (first, second, refused) = h.import_refused_beside_a_running_one(&slow).await;
    let body = refused.json();
    assert_eq!(body["code"], "429 Too Many Requests", "{body}");
    assert_eq!(body["title"], "Too Many Requests", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("this project"),
        "{body}"
    );
    assert_eq!(h.target_state(&second)["status"], "queued");
    let metrics = h.api.get("/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(text.contains("gds_imports_rejected_total 1\n"), "{text}");
    assert_eq!(
        h.api.wait_for_import(&first, TASK_WAIT).await.unwrap()["status"],
        "success"
    );
    // The project's slot is free again once its import ended.
    for _ in 0..500 {
        if h.sidecar.app.project_slots.running(PROJECT) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again = h.import_and_wait(&second, &slow).await;
    assert_eq!(again["status"], "success", "{again}");
    assert_eq!(h.sidecar.app.project_slots.projects(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_limit_answers_429_in_glances_json_shape() {
    let h = Harness::with_config(|c| c.max_concurrent_imports = 1).await;
    let slow = h.throttled_source(2 << 20, 2);
    let (first, _, refused) = h.import_refused_beside_a_running_one(&slow).await;
    assert_eq!(refused.json()["code"], "429 Too Many Requests");
    h.api.wait_for_import(&first, TASK_WAIT).await.unwrap();
}

// --- Connection cap and keep-alive ---

/// Sends a request on `stream` and reads the first bytes of the answer.
async fn request_on(stream: &mut TcpStream, path: &str) -> String {
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let h = Harness::with_config(|c| c.max_connections = 2).await;
    let mut first = TcpStream::connect(h.sidecar.addr).await.unwrap();
    let mut second = TcpStream::connect(h.sidecar.addr).await.unwrap();
    assert!(request_on(&mut first, "/healthcheck")
        .await
        .starts_with("HTTP/1.1"));
    assert!(request_on(&mut second, "/healthcheck")
        .await
        .starts_with("HTTP/1.1"));
    let open = &h.sidecar.app.metrics.connections_open;
    assert_eq!(open.load(std::sync::atomic::Ordering::Relaxed), 2);

    // The kernel completes the handshake (listen backlog) but the sidecar does not serve it.
    let mut third = TcpStream::connect(h.sidecar.addr).await.unwrap();
    third
        .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(early.is_err(), "a connection beyond the cap was served");

    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
        .await
        .expect("the waiting connection was never served")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 "));
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let h = harness().await;
    let answer = exchange(&h, b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    assert_eq!(
        h.sidecar
            .app
            .metrics
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

// --- Stalls on the pass-through ---

async fn stall_harness() -> Harness {
    Harness::with_config(|c| c.stall_timeout = Duration::from_millis(500)).await
}

/// An active image on the target (REGION2) holding `size` generated bytes.
fn target_active(h: &Harness, size: u64) -> String {
    use glance_download_sidecar::tools::sim::{ImageData, ImageSpec};
    h.target().create_image(ImageSpec {
        disk_format: Some("raw".into()),
        container_format: Some("bare".into()),
        ..ImageSpec::active(PROJECT, ImageData::Generated { seed: 9, size })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_its_upload_is_cut() {
    let h = stall_harness().await;
    let target = h.target_image().await;
    let head = format!(
        "PUT /v2/images/{target}/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         X-Auth-Token: {}\r\nContent-Length: 1000000\r\n\r\n{}",
        h.token,
        "a".repeat(1000)
    );
    let answer = exchange(&h, head.as_bytes()).await;
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    assert_ne!(h.target_state(&target)["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_stalling_its_answer_is_cut() {
    use glance_download_sidecar::tools::sim::Fault;
    let h = stall_harness().await;
    let image = target_active(&h, 1 << 20);
    h.target()
        .set_fault(&image, Fault::StallHeaders(Duration::from_secs(3600)));
    let head = format!(
        "GET /v2/images/{image}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {}\r\nConnection: close\r\n\r\n",
        h.token
    );
    let answer = exchange(&h, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_stalling_its_body_is_cut() {
    use glance_download_sidecar::tools::sim::Fault;
    let h = stall_harness().await;
    let size = 1 << 20;
    let image = target_active(&h, size);
    h.target().set_fault(
        &image,
        Fault::StallAfter {
            bytes: 1000,
            duration: Duration::from_secs(3600),
        },
    );
    let head = format!(
        "GET /v2/images/{image}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {}\r\nConnection: close\r\n\r\n",
        h.token
    );
    // The head and the first bytes came, then the sidecar ended the connection.
    let answer = exchange(&h, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
    assert!(answer.len() < size as usize, "{}", answer.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut() {
    let h = stall_harness().await;
    let image = target_active(&h, 64 << 20);
    let mut stream = TcpStream::connect(h.sidecar.addr).await.unwrap();
    let head = format!(
        "GET /v2/images/{image}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {}\r\n\r\n",
        h.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Never read: the socket buffers fill, the sidecar's writes stop making progress.
    let open = &h.sidecar.app.metrics.connections_open;
    let mut closed = false;
    for _ in 0..1000 {
        if open.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "a client that stopped reading held its connection");
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_upload_that_keeps_flowing_is_never_cut() {
    let h = stall_harness().await;
    let target = h.target_image().await;
    // 12 MiB sent in pieces, each within the stall timeout, for several times the timeout.
    let piece = vec![7u8; 1 << 20];
    let pieces = 12;
    let head = format!(
        "PUT /v2/images/{target}/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         X-Auth-Token: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        h.token,
        pieces * piece.len()
    );
    let mut stream = TcpStream::connect(h.sidecar.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..pieces {
        stream.write_all(&piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = Vec::new();
    #[allow(clippy::disallowed_methods)] // a test reads the answer of the server it tests whole
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    assert_eq!(h.target_state(&target)["status"], "active");
}
