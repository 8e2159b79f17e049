//! The caller's token never appears in log output, at any level and from any crate, whether the
//! import succeeds or fails. Alone in its own binary: it installs the global log subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use glance_download_sidecar::tools::sim::Fault;
use serde_json::json;
use support::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_never_logged_even_at_trace() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let h = Harness::start().await;
    let src = h.source_image(2 << 20, 1, json!({"hw_x": "1"}));
    let dst = h.target_image().await;
    assert_eq!(h.import_and_wait(&dst, &src).await["status"], "success");
    let bad = h.source_image(2 << 20, 2, json!({}));
    h.source().set_fault(&bad, Fault::Corrupt { offset: 100 });
    let dst2 = h.target_image().await;
    assert_eq!(h.import_and_wait(&dst2, &bad).await["status"], "failure");
    let unknown = h.target_image().await;
    let answer = h
        .api
        .import_glance_download(&unknown, "REGION9", &src)
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    h.api.wait_for_import(&unknown, TASK_WAIT).await.unwrap();

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("Import"),
        "the capture must have seen the sidecar's logs:\n{logs}"
    );
    assert!(
        logs.lines().count() > 20,
        "trace output from the HTTP stack is captured too"
    );
    assert!(!logs.contains(&h.token), "the token leaked into the logs");
}
