//! Security properties of the import path: the remote endpoint comes only from the catalog, odd
//! property names travel as JSON values, the token appears in no answer and no task record, and
//! one project cannot see another's tasks.

mod support;

use glance_download_sidecar::tools::apiclient::ImageApi;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_endpoint_comes_only_from_the_catalog() {
    let h = Harness::start().await;
    let src = h.source_image(10_000, 1, json!({}));
    let dst = h.target_image().await;
    // Endpoint-looking fields in the request are ignored (a listener that must stay silent).
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}", trap.local_addr().unwrap());
    let body = json!({"method": {"name": "glance-download", "glance_region": "REGION1",
        "glance_image_id": src, "glance_service_interface": "public",
        "glance_endpoint": trap_url, "uri": trap_url, "url": trap_url}});
    let answer = h
        .api
        .post_json(&format!("/v2/images/{dst}/import"), &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    let task = h.api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
    let knocked = tokio::time::timeout(std::time::Duration::from_millis(100), trap.accept()).await;
    assert!(
        knocked.is_err(),
        "the sidecar contacted a URL from the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_property_names_and_values_are_copied_as_data() {
    let h = Harness::start().await;
    let weird = json!({"hw_a/b~c": "x\"}],[{\"op\":\"remove\",\"path\":\"/name\"}", "hw_unicode_ü": "ü ✓", "os_type": " "});
    let src = h.source_image(1000, 2, weird.clone());
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success", "{task}");
    let copy = h.target_state(&dst);
    for (k, v) in weird.as_object().unwrap() {
        assert_eq!(&copy[k], v, "{k}");
    }
    assert_eq!(
        copy["name"], "copy",
        "an injected patch op must not take effect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_in_no_answer_and_no_task() {
    let h = Harness::start().await;
    let src = h.source_image(1000, 3, json!({}));
    let dst = h.target_image().await;
    let ok = h.import_and_wait(&dst, &src).await;
    let failed_dst = h.target_image().await;
    let answer = h
        .api
        .import_glance_download(&failed_dst, "NOWHERE", &src)
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    let failed = h.api.wait_for_import(&failed_dst, TASK_WAIT).await.unwrap();
    let mut seen = vec![ok.to_string(), failed.to_string()];
    for (path, body) in [
        (
            format!("/v2/images/{dst}/import"),
            json!({"method": {"name": "glance-download"}}),
        ),
        (
            format!("/v2/images/{dst}/import"),
            json!({"method": {"name": "glance-download", "glance_region": "R", "glance_image_id": h.token}}),
        ),
        (
            "/v2/images/not-a-uuid/import".to_string(),
            json!({"method": {"name": "glance-download"}}),
        ),
    ] {
        let answer = h.api.post_json(&path, &body).await.unwrap();
        assert!(answer.status.is_client_error(), "{path}");
        seen.push(String::from_utf8_lossy(&answer.body).to_string());
        seen.push(format!("{:?}", answer.headers));
    }
    for text in seen {
        assert!(!text.contains(&h.token), "the token leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_projects_member_cannot_see_or_start_imports() {
    let h = Harness::start().await;
    let src = h.source_image(1000, 4, json!({}));
    let dst = h.target_image().await;
    assert_eq!(h.import_and_wait(&dst, &src).await["status"], "success");
    let eve = h
        .cloud
        .keystone
        .issue_token("eve", "other-project", &["member", "reader"]);
    let eve = ImageApi::new(&h.sidecar.url(), &eve);
    assert_eq!(
        eve.get(&format!("/v2/images/{dst}/tasks"))
            .await
            .unwrap()
            .status,
        404
    );
    let other = h.target_image().await;
    let answer = eve
        .import_glance_download(&other, "REGION1", &src)
        .await
        .unwrap();
    assert_eq!(answer.status, 404, "another project's image is not found");
}
