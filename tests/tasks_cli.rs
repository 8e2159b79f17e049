//! The `tasks` command lists an image's import tasks, with progress, through the region's image
//! endpoint (here the sidecar), with credentials read as the openstack client reads them.

mod support;

use std::process::Command;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_an_images_tasks_as_a_table_and_as_json() {
    let h = Harness::start().await;
    h.cloud
        .keystone
        .add_user("operator", "op-pass", PROJECT, &["member", "reader"]);
    for interface in ["public", "internal", "admin"] {
        h.cloud
            .keystone
            .set_endpoint("REGION2", interface, &h.sidecar.url());
    }
    let src = h.source_image(1 << 20, 1, json!({}));
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success");

    let run = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"));
        command
            .args(["tasks", "--region", "REGION2"])
            .args(extra)
            .arg(&dst)
            .env_clear()
            .env("OS_AUTH_URL", h.cloud.auth_url())
            .env("OS_USERNAME", "operator")
            .env("OS_PASSWORD", "op-pass")
            .env("OS_PROJECT_NAME", PROJECT)
            .env("OS_USER_DOMAIN_NAME", "Default")
            .env("OS_PROJECT_DOMAIN_NAME", "Default");
        command.output().unwrap()
    };
    let table = run(&[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(text.contains(task["id"].as_str().unwrap()), "{text}");
    assert!(
        text.contains("success") && text.contains("100% of 1.0 MiB"),
        "{text}"
    );

    let listed = run(&["--json"]);
    let tasks: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(tasks.as_array().unwrap().last().unwrap()["id"], task["id"]);
    assert!(!String::from_utf8_lossy(&listed.stderr).contains("op-pass"));
}
