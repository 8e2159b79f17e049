//! The glance-download import through the real sidecar, against the simulated cloud on loopback:
//! successful copies, metadata sync, and every asynchronous failure with its revert.

mod support;

use glance_download_sidecar::hash::{HashAlgo, ALL};
use glance_download_sidecar::tools::sim::{generated_bytes, Fault, ImageSpec, ImageStatus};
use serde_json::json;
use support::*;

const PROPS: &str = r#"{"hw_disk_bus": "scsi", "hw_cpu_policy": "dedicated", "trait:CUSTOM_GOLD": "required",
    "os_distro": "ubuntu", "os_secure_boot": "required", "os_type": "linux",
    "os_admin_user": "root", "foo_bar": "x", "os_glance_importing_to_stores": ""}"#;

fn props() -> serde_json::Value {
    serde_json::from_str(PROPS).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_images_of_edge_sizes_byte_for_byte() {
    let h = Harness::start().await;
    for (size, seed) in [(0u64, 1u64), (1, 2), ((1 << 20) + 1, 3), (64 << 20, 4)] {
        let src = h.source_image(size, seed, json!({}));
        let dst = h.target_image().await;
        let task = h.import_and_wait(&dst, &src).await;
        assert_eq!(task["status"], "success", "size {size}: {task}");
        assert_same_image(&h.target_state(&dst), &h.source_state(&src));
        let stored = h.target().image_data(&dst).unwrap_or_default();
        assert_eq!(stored.len() as u64, size);
        assert!(
            stored == generated_bytes(seed, 0, size as usize),
            "size {size}: data differs"
        );
        assert_eq!(task["progress"]["bytes_done"], size);
        assert_eq!(
            task["verification"]["checksum"],
            h.source_state(&src)["checksum"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_every_glance_hash_algorithm() {
    let h = Harness::start().await;
    for algo in ALL {
        h.source().set_hashing_algorithm(algo);
        let src = h.source_image(300_000, 11, json!({}));
        let source = h.source_state(&src);
        assert_eq!(source["os_hash_algo"], algo.name());
        let dst = h.target_image().await;
        let task = h.import_and_wait(&dst, &src).await;
        assert_eq!(task["status"], "success", "{algo}: {task}");
        assert_eq!(task["verification"]["os_hash_algo"], algo.name());
        assert_eq!(
            task["verification"]["os_hash_value"],
            source["os_hash_value"]
        );
        let copy = h.target_state(&dst);
        assert_eq!(copy["checksum"], source["checksum"]);
        assert_eq!(copy["status"], "active");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_formats_and_prefixed_properties_only() {
    let h = Harness::start().await;
    let src = h.source_image(4096, 5, props());
    let dst = h.target_image().await;
    let pre = h
        .api
        .patch(
            &dst,
            &json!([{"op": "add", "path": "/hw_cpu_policy", "value": "shared"},
                               {"op": "add", "path": "/keep_me", "value": "yes"}]),
        )
        .await
        .unwrap();
    assert_eq!(pre.status, 200);
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    let copy = h.target_state(&dst);
    for (key, value) in [
        ("hw_disk_bus", "scsi"),
        ("hw_cpu_policy", "dedicated"),
        ("trait:CUSTOM_GOLD", "required"),
        ("os_distro", "ubuntu"),
        ("os_secure_boot", "required"),
        ("os_type", "linux"),
        ("keep_me", "yes"),
        ("disk_format", "qcow2"),
        ("container_format", "bare"),
    ] {
        assert_eq!(copy[key], value, "{key}");
    }
    for key in ["os_admin_user", "foo_bar", "os_glance_importing_to_stores"] {
        assert!(copy.get(key).is_none(), "{key} must not be synced: {copy}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_prefixes_replace_the_defaults() {
    let h = Harness::with_config(|c| c.extra_properties = vec!["foo_".into()]).await;
    let src = h.source_image(1000, 6, props());
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    let copy = h.target_state(&dst);
    assert_eq!(copy["foo_bar"], "x");
    assert!(copy.get("hw_disk_bus").is_none() && copy.get("os_distro").is_none());
}

/// Runs an import expected to fail; checks the message and that the target is exactly as before.
async fn expect_failure(h: &Harness, dst: &str, body: serde_json::Value, message: &str) {
    let before = h.target_state(dst);
    let answer = h
        .api
        .post_json(&format!("/v2/images/{dst}/import"), &body)
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let task = h.api.wait_for_import(dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "failure", "{task}");
    let text = task["message"].as_str().unwrap();
    assert!(text.contains(message), "message {text:?} lacks {message:?}");
    assert_reverted(&h.target_state(dst), &before);
}

fn body(region: &str, image: &str, interface: &str) -> serde_json::Value {
    json!({"method": {"name": "glance-download", "glance_region": region,
                      "glance_image_id": image, "glance_service_interface": interface}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_lookup_failures_fail_the_task_precisely() {
    let h = Harness::start().await;
    let src = h.source_image(1000, 7, props());
    let dst = h.target_image().await;
    expect_failure(
        &h,
        &dst,
        body("REGION9", &src, "public"),
        "no image service endpoint for region REGION9",
    )
    .await;
    expect_failure(
        &h,
        &dst,
        body("REGION1", &src, "private"),
        "no private image service endpoint for region REGION1",
    )
    .await;
    let missing = "0b4f2d3c-0000-4000-8000-000000000000";
    expect_failure(
        &h,
        &dst,
        body("REGION1", missing, "public"),
        &format!("source image {missing} was not found in region REGION1"),
    )
    .await;
    let queued = h.source().create_image(ImageSpec::queued(PROJECT));
    expect_failure(
        &h,
        &dst,
        body("REGION1", &queued, "public"),
        "Source image status should be active instead of queued",
    )
    .await;
    // Region names match case-insensitively, as upstream.
    let task = {
        let answer = h
            .api
            .post_json(
                &format!("/v2/images/{dst}/import"),
                &body("region1", &src, "public"),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 202);
        h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap()
    };
    assert_eq!(task["status"], "success", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_dropped_data_never_becomes_active() {
    let h = Harness::start().await;
    let size = 3 << 20;
    for (fault, message) in [
        (Fault::Corrupt { offset: size / 2 }, "checksum mismatch"),
        (Fault::Corrupt { offset: size - 1 }, "checksum mismatch"),
    ] {
        let src = h.source_image(size, 8, props());
        h.source().set_fault(&src, fault);
        let dst = h.target_image().await;
        let before = h.target_state(&dst);
        let task = h.import_and_wait(&dst, &src).await;
        assert_eq!(task["status"], "failure", "{fault:?}: {task}");
        assert!(
            task["message"].as_str().unwrap().contains(message),
            "{fault:?}: {task}"
        );
        assert_reverted(&h.target_state(&dst), &before);
        assert!(
            h.target().image_data(&dst).is_none(),
            "no data kept for a failed upload"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_import_while_one_runs_is_refused() {
    let h = Harness::start().await;
    let src = h.source_image(1 << 20, 12, json!({}));
    // The source answers slowly: the import holds its lock while the target is still queued.
    h.source().set_fault(
        &src,
        Fault::StallHeaders(std::time::Duration::from_millis(1500)),
    );
    let dst = h.target_image().await;
    assert_eq!(h.import(&dst, &src).await.status, 202);
    let second = h.import(&dst, &src).await;
    assert_eq!(second.status, 409);
    assert_eq!(second.json()["message"], "Image has active task");
    let task = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_imports_run_concurrently() {
    let h = Harness::start().await;
    let mut pairs = Vec::new();
    for seed in 0..4 {
        pairs.push((
            h.source_image(4 << 20, 100 + seed, props()),
            h.target_image().await,
        ));
    }
    let runs = pairs.iter().map(|(src, dst)| h.import_and_wait(dst, src));
    let tasks = futures_join_all(runs).await;
    for ((src, dst), task) in pairs.iter().zip(tasks) {
        assert_eq!(task["status"], "success", "{task}");
        assert_same_image(&h.target_state(dst), &h.source_state(src));
    }
}

/// Polls futures together without an extra dependency.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_token_is_the_callers() {
    let h = Harness::start().await;
    let src = h.source_image(10_000, 13, json!({}));
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success");
    let log = h.source().request_log();
    let file_get = log
        .iter()
        .find(|r| r.path.ends_with("/file"))
        .expect("source data was read");
    assert_eq!(file_get.header("x-auth-token"), Some(h.token.as_str()));
    let _ = (HashAlgo::Sha512, ImageStatus::Active);
}

/// The sidecar reads the target image (and the stores) while Keystone is still validating the
/// caller's token, instead of after: the two wait on different services. The token's answer
/// still decides first: the request is answered only once it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_target_while_keystone_validates_the_token() {
    let h = Harness::start().await;
    let src = h.source_image(4096, 31, json!({}));
    let dst = h.target_image().await;
    h.target().clear_request_log();
    let held = h.cloud.keystone.hold_validations().await;
    let api = h.api.clone();
    let (target, source) = (dst.clone(), src.clone());
    let import = tokio::spawn(async move {
        api.import_glance_download(&target, "REGION1", &source)
            .await
    });
    let read = format!("/v2/images/{dst}");
    let mut seen = false;
    for _ in 0..1000 {
        seen = h
            .target()
            .request_log()
            .iter()
            .any(|r| r.method == "GET" && r.path == read);
        if seen {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        seen,
        "the target was not read while the token was being validated"
    );
    assert!(
        !import.is_finished(),
        "answered before the token was validated"
    );
    drop(held);
    let answer = import.await.unwrap().unwrap();
    assert_eq!(answer.status, 202, "{answer:?}");
    let task = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
}
