//! The sidecar's life: the import-slot limit (429), graceful shutdown (finish or abort and
//! revert), and a SIGKILL in the middle of an import (the journal brings the task back as a
//! failure and the image is restored with the sidecar's own credentials).

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use glance_download_sidecar::glance::ImageId;
use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::Fault;
use serde_json::{json, Value};
use support::*;

const PROPS: &str = r#"{"hw_disk_bus": "scsi", "os_distro": "ubuntu"}"#;

fn props() -> Value {
    serde_json::from_str(PROPS).unwrap()
}

/// Polls until the task of `dst` is running with some bytes done.
async fn wait_until_copying(api: &ImageApi, dst: &str) -> Value {
    for _ in 0..500 {
        let tasks = api
            .get(&format!("/v2/images/{dst}/tasks"))
            .await
            .unwrap()
            .json();
        if let Some(task) = tasks["tasks"].as_array().and_then(|t| t.last()) {
            if task["status"] == "processing" && task["progress"]["bytes_done"].as_u64() > Some(0) {
                return task.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the import never started copying");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_import_slots_answer_429_with_retry_after() {
    let h = Harness::with_config(|c| c.max_concurrent_imports = 1).await;
    let slow = h.throttled_source(4 << 20, 1);
    let (first, second, _) = h.import_refused_beside_a_running_one(&slow).await;
    assert_eq!(h.target_state(&second)["status"], "queued");
    assert_eq!(
        h.api.wait_for_import(&first, TASK_WAIT).await.unwrap()["status"],
        "success"
    );
    // The slot is free again.
    let again = h.import_and_wait(&second, &slow).await;
    assert_eq!(again["status"], "success", "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_aborts_imports_after_the_grace_period_and_reverts_them() {
    let h = Harness::start().await;
    let src = h.source_image(8 << 20, 2, props());
    h.source().set_fault(
        &src,
        Fault::Throttle {
            bytes_per_sec: 2 << 20,
        },
    );
    let dst = h.target_image().await;
    let before = h.target_state(&dst);
    assert_eq!(h.import(&dst, &src).await.status, 202);
    wait_until_copying(&h.api, &dst).await;
    let app = h.sidecar.app.clone();
    let Harness { sidecar, cloud, .. } = h;
    sidecar.shutdown(Duration::ZERO).await;
    let tasks = app.tasks.for_image(&ImageId::parse(&dst).unwrap());
    let task = tasks.last().unwrap().to_json();
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"].as_str().unwrap().contains("shutting down"),
        "{task}"
    );
    assert_reverted(&cloud.region("REGION2").image(&dst).unwrap(), &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_imports_finish_within_the_grace_period() {
    let h = Harness::start().await;
    let src = h.source_image(2 << 20, 3, props());
    h.source().set_fault(
        &src,
        Fault::Throttle {
            bytes_per_sec: 4 << 20,
        },
    );
    let dst = h.target_image().await;
    assert_eq!(h.import(&dst, &src).await.status, 202);
    wait_until_copying(&h.api, &dst).await;
    let app = h.sidecar.app.clone();
    let Harness { sidecar, cloud, .. } = h;
    sidecar.shutdown(Duration::from_secs(60)).await;
    let tasks = app.tasks.for_image(&ImageId::parse(&dst).unwrap());
    assert_eq!(tasks.last().unwrap().to_json()["status"], "success");
    assert_eq!(
        cloud.region("REGION2").image(&dst).unwrap()["status"],
        "active"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_sidecar(config: &std::path::Path, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

async fn wait_healthy(api: &ImageApi) {
    for _ in 0..200 {
        if let Ok(answer) = api.get("/healthcheck").await {
            if answer.status == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the sidecar did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_import_is_recovered_on_restart() {
    let cloud = glance_download_sidecar::tools::sim::Cloud::start(&["REGION1", "REGION2"])
        .await
        .unwrap();
    cloud
        .keystone
        .add_user("gds-service", "s3cret", "service", &["admin", "service"]);
    let token = cloud
        .keystone
        .issue_token(USER, PROJECT, &["member", "reader"]);
    let dir = std::env::temp_dir().join(format!("gds-crash-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("tasks.jsonl");
    let port = free_port();
    let config = dir.join("sidecar.conf");
    std::fs::write(
        &config,
        format!(
            "[DEFAULT]\nbind = 127.0.0.1:{port}\nglance_url = {}\nauth_url = {}\ntask_journal = {}\n\
             [service_credentials]\nusername = gds-service\npassword = s3cret\nproject_name = service\n",
            cloud.region("REGION2").url(),
            cloud.auth_url(),
            journal.display()
        ),
    )
    .unwrap();
    let api = ImageApi::new(&format!("http://127.0.0.1:{port}"), &token);
    let mut child = spawn_sidecar(&config, &dir.join("first.log"));
    wait_healthy(&api).await;

    let src =
        cloud
            .region("REGION1")
            .create_image(glance_download_sidecar::tools::sim::ImageSpec {
                properties: props().as_object().unwrap().clone(),
                disk_format: Some("qcow2".into()),
                ..glance_download_sidecar::tools::sim::ImageSpec::active(
                    PROJECT,
                    glance_download_sidecar::tools::sim::ImageData::Generated {
                        seed: 4,
                        size: 32 << 20,
                    },
                )
            });
    cloud.region("REGION1").set_fault(
        &src,
        Fault::Throttle {
            bytes_per_sec: 4 << 20,
        },
    );
    let created = api
        .create_image(&json!({"name": "t", "disk_format": "raw", "container_format": "bare"}))
        .await
        .unwrap();
    let dst = created.json()["id"].as_str().unwrap().to_string();
    let before = cloud.region("REGION2").image(&dst).unwrap();
    assert_eq!(
        api.import_glance_download(&dst, "REGION1", &src)
            .await
            .unwrap()
            .status,
        202
    );
    let running = wait_until_copying(&api, &dst).await;
    let mid = cloud.region("REGION2").image(&dst).unwrap();
    assert_eq!(
        mid["disk_format"], "qcow2",
        "metadata was synced before the kill"
    );

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut restarted = spawn_sidecar(&config, &dir.join("second.log"));
    wait_healthy(&api).await;
    let mut restored = None;
    for _ in 0..400 {
        let image = cloud.region("REGION2").image(&dst).unwrap();
        let tasks = api
            .get(&format!("/v2/images/{dst}/tasks"))
            .await
            .unwrap()
            .json();
        let task = tasks["tasks"]
            .as_array()
            .and_then(|t| t.last().cloned())
            .unwrap_or(Value::Null);
        if task["message"]
            .as_str()
            .is_some_and(|m| m.contains("restored to queued"))
        {
            restored = Some((image, task));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (image, task) = restored.expect("the interrupted task was not recovered");
    assert_eq!(task["id"], running["id"]);
    assert_eq!(task["status"], "failure");
    assert_eq!(task["request_id"], running["request_id"]);
    assert_reverted(&image, &before);

    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let written = std::fs::read_to_string(&journal).unwrap();
    assert!(written.contains(&dst), "the journal holds the task");
    assert!(
        !written.contains(&token),
        "the journal must never hold a token"
    );
    for log in ["first.log", "second.log"] {
        let text = std::fs::read_to_string(dir.join(log)).unwrap();
        assert!(!text.contains(&token), "{log} holds the token");
        assert!(!text.contains("s3cret"), "{log} holds the service password");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
