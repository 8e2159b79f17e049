//! Every request upstream Glance would treat as a glance-download import is taken by the sidecar,
//! however its path, method or body is spelt (the spellings measured against Glance 33 behind
//! uwsgi and eventlet); the upstream never sees one. Requests Glance would not import still pass
//! through unchanged.

mod support;

use serde_json::json;
use support::{Harness, TASK_WAIT};

/// A header name and value.
type Header<'a> = (&'a str, &'a str);

fn body(source: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"method": {
        "name": "glance-download", "glance_image_id": source, "glance_region": "REGION1"}}))
    .unwrap()
}

/// The import requests the upstream received.
fn upstream_imports(h: &Harness) -> Vec<String> {
    h.target()
        .request_log()
        .into_iter()
        .filter(|r| r.path.contains("mport") || r.path.contains("%"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_glance_imports_is_taken_by_the_sidecar() {
    let h = Harness::start().await;
    let source = h.source_image(4096, 7, json!({}));
    let vnd = [("accept", "application/vnd.openstack.images-v2")];
    let cases: Vec<(&str, String, &[Header<'_>])> = vec![
        ("POST", "/v2/images/{}/%69mport".into(), &[]),
        ("POST", "/v2/images/{}/impor%74?x=1".into(), &[]),
        ("POST", "//v2//images//{}//import".into(), &[]),
        ("POST", "/v2/images/{}%2Fimport".into(), &[]),
        ("POST", "/v2.9/images/{}/import".into(), &[]),
        ("POST", "/v2/x/../images/{}/import".into(), &[]),
        ("POST", "/images/{}/import".into(), &vnd),
        ("PUT", "/v2/images/{}/import?_method=POST".into(), &[]),
        ("GET", "/v2/images/{}/import?_method=post".into(), &[]),
    ];
    let mut targets = Vec::new();
    for (method, path, headers) in &cases {
        let target = h.target_image().await;
        let path = path.replace("{}", &target);
        let answer = h.send(method, &path, headers, body(&source)).await;
        assert_eq!(answer.status, 202, "{method} {path}: {answer:?}");
        targets.push(target);
    }
    for target in &targets {
        let task = h.api.wait_for_import(target, TASK_WAIT).await.unwrap();
        assert_eq!(task["status"], "success", "{task}");
        assert_eq!(task["type"], "api_image_import");
    }
    assert_eq!(upstream_imports(&h), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_python_reads_as_glance_download_never_pass() {
    let h = Harness::start().await;
    let source = h.source_image(4096, 7, json!({}));
    let target = h.target_image().await;
    let gd = format!(
        r#""method": {{"name": "glance-download", "glance_image_id": "{source}",
            "glance_region": "REGION1"}}"#
    );
    // Python's json reads each of these (Glance would import); serde_json reads none.
    for extra in [
        "NaN".to_string(),
        "-Infinity".to_string(),
        "1e400".to_string(),
        "9".repeat(400),
        r#""\ud800""#.to_string(),
        format!("{}{}", "[".repeat(200), "]".repeat(200)),
    ] {
        let text = format!(r#"{{{gd}, "x": {extra}}}"#);
        let path = format!("/v2/images/{target}/import");
        let answer = h.send("POST", &path, &[], text.into_bytes()).await;
        assert_eq!(answer.status, 400, "{extra:.40}: {answer:?}");
        assert!(
            String::from_utf8_lossy(&answer.body).contains("JSON this service does not accept"),
            "{answer:?}"
        );
    }
    assert_eq!(upstream_imports(&h), Vec::<String>::new());
    assert_eq!(h.target_state(&target)["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_are_read_as_python_reads_them() {
    let h = Harness::start().await;
    let source = h.source_image(4096, 7, json!({}));
    let target = h.target_image().await;
    let path = format!("/v2/images/{target}/import");
    // The last `name` wins: glance-download, for Glance and so for the sidecar.
    let last = format!(
        r#"{{"method": {{"name": "web-download", "glance_image_id": "{source}",
            "glance_region": "REGION1", "name": "glance-download"}}}}"#
    );
    let answer = h.send("POST", &path, &[], last.into_bytes()).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let task = h.api.wait_for_import(&target, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(upstream_imports(&h), Vec::<String>::new());

    // The first `name` is glance-download, the last web-download: Glance's, passed on.
    let other = h.target_image().await;
    let first = br#"{"method": {"name": "glance-download", "name": "web-download",
        "uri": "http://127.0.0.1:9/x"}}"#;
    let path = format!("/v2/images/{other}/import");
    let answer = h.send("POST", &path, &[], first.to_vec()).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(upstream_imports(&h), vec![format!("POST {path}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_glance_does_not_import_passes_through_unchanged() {
    let h = Harness::start().await;
    let source = h.source_image(4096, 7, json!({}));
    let target = h.target_image().await;
    for (method, path) in [
        ("POST", format!("/v2/images/{target}/import/")),
        ("POST", format!("/v2/images/{target}/IMPORT")),
        ("POST", format!("/v2/images/{target}/import;x=1")),
        ("PUT", format!("/v2/images/{target}/import")),
        ("POST", format!("/v3/images/{target}/import")),
    ] {
        h.target().clear_request_log();
        let answer = h.send(method, &path, &[], body(&source)).await;
        assert_ne!(answer.status, 202, "{method} {path}");
        let seen: Vec<String> = h
            .target()
            .request_log()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(seen, vec![format!("{method} {path}")]);
    }
    assert_eq!(h.target_state(&target)["status"], "queued");
}
