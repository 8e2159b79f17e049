//! The glance-stage sink (staging + the target's own glance-direct import, so its plugins run)
//! and mirrored metadata injection for glance-upload.

mod support;

use glance_download_sidecar::config::SinkKind;
use glance_download_sidecar::tools::sim::{generated_bytes, Fault};
use serde_json::json;
use support::*;

/// The per-request sink header.
const SINK: &str = "x-glance-download-sink";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_imports_run_the_targets_import_flow() {
    let h = Harness::with_config(|c| c.store_sink = SinkKind::GlanceStage).await;
    h.target()
        .set_inject_properties(&[("injected_by", "target-plugin"), ("hw_disk_bus", "virtio")]);
    let src = h.source_image(
        3 << 20,
        1,
        json!({"hw_disk_bus": "scsi", "os_distro": "ubuntu"}),
    );
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    let copy = h.target_state(&dst);
    assert_same_image(&copy, &h.source_state(&src));
    assert!(h.target().image_data(&dst).unwrap() == generated_bytes(1, 0, 3 << 20));
    // The target's plugin ran after the sync and overrides it, as with upstream's glance-download.
    assert_eq!(copy["injected_by"], "target-plugin");
    assert_eq!(copy["hw_disk_bus"], "virtio");
    assert_eq!(copy["os_distro"], "ubuntu");
    let log = h.target().request_log();
    assert!(log
        .iter()
        .any(|r| r.method == "PUT" && r.path.ends_with("/stage")));
    assert!(
        !log.iter()
            .any(|r| r.method == "PUT" && r.path.ends_with("/file")),
        "no direct upload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_may_choose_its_sink() {
    let h = Harness::start().await;
    let src = h.source_image(100_000, 2, json!({}));
    let dst = h.target_image().await;
    let body = json!({"method": {"name": "glance-download", "glance_region": "REGION1", "glance_image_id": src}});
    let bytes = serde_json::to_vec(&body).unwrap();
    let bad = h
        .import_with_header(&dst, bytes.clone(), (SINK, "tape"))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["message"]
        .as_str()
        .unwrap()
        .contains("Unknown store sink 'tape'"));
    // s3 exists, but only where [s3] is configured: refused up front, not failed later
    let unconfigured = h
        .import_with_header(&dst, bytes.clone(), (SINK, "s3"))
        .await;
    assert_eq!(unconfigured.status, 400);
    let message = unconfigured.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("'s3'") && message.ends_with("offers glance-upload, glance-stage"),
        "{message}"
    );
    let ok = h
        .import_with_header(&dst, bytes, (SINK, "glance-stage"))
        .await;
    assert_eq!(ok.status, 202, "{:?}", ok.json());
    let task = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
    assert!(h
        .target()
        .request_log()
        .iter()
        .any(|r| r.path.ends_with("/stage")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_stream_never_reaches_the_targets_import() {
    let h = Harness::with_config(|c| c.store_sink = SinkKind::GlanceStage).await;
    let src = h.source_image(2 << 20, 3, json!({"os_type": "linux"}));
    h.source()
        .set_fault_times(&src, Fault::Corrupt { offset: 1000 }, 1);
    let dst = h.target_image().await;
    let before = h.target_state(&dst);
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "failure", "{task}");
    assert_reverted(&h.target_state(&dst), &before);
    assert!(
        !h.target()
            .request_log()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/import")),
        "a stream that failed verification is never imported"
    );
    // Nothing was left on staging: the next import succeeds.
    let again = h.import_and_wait(&dst, &src).await;
    assert_eq!(again["status"], "success", "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sink_mirrors_metadata_injection() {
    let h = Harness::with_config(|c| {
        c.inject = vec![
            ("cloud_region".into(), "r2".into()),
            ("hw_disk_bus".into(), "virtio".into()),
        ];
    })
    .await;
    let src = h.source_image(10_000, 4, json!({"hw_disk_bus": "scsi"}));
    let dst = h.target_image().await;
    assert_eq!(h.import_and_wait(&dst, &src).await["status"], "success");
    let copy = h.target_state(&dst);
    assert_eq!(copy["cloud_region"], "r2");
    assert_eq!(
        copy["hw_disk_bus"], "virtio",
        "injection overrides the synced value"
    );

    // Admins are not injected (ignore_user_roles = admin).
    let admin = h.cloud.keystone.issue_token("root", PROJECT, &["admin"]);
    let admin_api =
        glance_download_sidecar::tools::apiclient::ImageApi::new(&h.sidecar.url(), &admin);
    let dst2 = h.target_image().await;
    assert_eq!(
        admin_api
            .import_glance_download(&dst2, "REGION1", &src)
            .await
            .unwrap()
            .status,
        202
    );
    assert_eq!(
        h.api.wait_for_import(&dst2, TASK_WAIT).await.unwrap()["status"],
        "success"
    );
    assert!(h.target_state(&dst2).get("cloud_region").is_none());
    assert_eq!(h.target_state(&dst2)["hw_disk_bus"], "scsi");

    // A failed import takes injected properties back off.
    let bad = h.source_image(10_000, 5, json!({}));
    h.source().set_fault(&bad, Fault::Corrupt { offset: 10 });
    let dst3 = h.target_image().await;
    let before = h.target_state(&dst3);
    assert_eq!(h.import_and_wait(&dst3, &bad).await["status"], "failure");
    assert_reverted(&h.target_state(&dst3), &before);
}
