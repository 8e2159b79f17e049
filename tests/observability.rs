//! What operators watch: JSON logs carrying the request id and task id on every line of an
//! import, and `/metrics` in Prometheus text format with counters and histograms that add up.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::{Cloud, ImageData, ImageSpec};
use serde_json::Value;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_and_task_ids() {
    let cloud = Cloud::start(&["REGION1", "REGION2"]).await.unwrap();
    let token = cloud
        .keystone
        .issue_token(USER, PROJECT, &["member", "reader"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("gds-logs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("sidecar.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"))
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--glance-url",
            &cloud.region("REGION2").url(),
        ])
        .args(["--auth-url", &cloud.auth_url(), "--log-format", "json"])
        .env("RUST_LOG", "glance_download_sidecar=debug")
        .env("GDS_TEST", "1")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // No journal in this test: point it nowhere by config would need a file; the default path is
    // not writable for everyone, so use a config file.
    let api = ImageApi::new(&format!("http://127.0.0.1:{port}"), &token);
    let mut up = false;
    for _ in 0..200 {
        if api
            .get("/healthcheck")
            .await
            .map(|a| a.status == 200)
            .unwrap_or(false)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !up {
        let _ = child.kill();
        panic!(
            "sidecar did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let src = cloud.region("REGION1").create_image(ImageSpec::active(
        PROJECT,
        ImageData::Generated {
            seed: 1,
            size: 1 << 20,
        },
    ));
    let created = api
        .create_image(
            &serde_json::json!({"name": "x", "disk_format": "raw", "container_format": "bare"}),
        )
        .await
        .unwrap();
    let dst = created.json()["id"].as_str().unwrap().to_string();
    let accepted = api
        .import_glance_download(&dst, "REGION1", &src)
        .await
        .unwrap();
    assert_eq!(accepted.status, 202);
    let request_id = accepted
        .header("x-openstack-request-id")
        .unwrap()
        .to_string();
    let task = api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
    let _ = child.kill();
    let _ = child.wait();

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let import_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["task_id"] == task["id"])
        .collect();
    assert!(
        import_lines.len() >= 2,
        "the import logged under its span:\n{text}"
    );
    for line in &import_lines {
        assert_eq!(line["span"]["request_id"], request_id.as_str(), "{line}");
    }
    assert!(lines
        .iter()
        .any(|l| l["span"]["request_id"] == request_id.as_str() && l["span"]["name"] == "request"));
    assert!(!text.contains(&token));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_add_up() {
    let h = Harness::start().await;
    let src = h.source_image(2 << 20, 1, serde_json::json!({}));
    for _ in 0..2 {
        let dst = h.target_image().await;
        assert_eq!(h.import_and_wait(&dst, &src).await["status"], "success");
    }
    let bad = h.source_image(1 << 20, 2, serde_json::json!({}));
    h.source().set_fault(
        &bad,
        glance_download_sidecar::tools::sim::Fault::Corrupt { offset: 9 },
    );
    let dst = h.target_image().await;
    assert_eq!(h.import_and_wait(&dst, &bad).await["status"], "failure");

    let scrape = h.api.get("/metrics").await.unwrap();
    assert!(scrape
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8_lossy(&scrape.body).to_string();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(name.to_string(), value);
    }
    assert_eq!(samples["gds_imports_started_total"], 3.0);
    assert_eq!(samples["gds_imports_succeeded_total"], 2.0);
    assert_eq!(samples["gds_imports_failed_total"], 1.0);
    assert_eq!(samples["gds_verification_failures_total"], 1.0);
    assert_eq!(samples["gds_imported_bytes_total"], (4 << 20) as f64);
    assert_eq!(samples["gds_import_throughput_mbps_count"], 2.0);
    assert_eq!(
        samples["gds_import_throughput_mbps_bucket{le=\"+Inf\"}"],
        2.0
    );
    assert!(samples["gds_upstream_call_seconds_count"] >= 6.0);
    assert_eq!(samples["gds_imports_in_flight"], 0.0);
}
