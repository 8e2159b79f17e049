//! The synchronous part of the import action: every check answers with upstream Glance's code
//! and message before any task starts, and a good request gets `202`, an empty body and a
//! request id that the task records.

mod support;

use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::{ImageSpec, ImageStatus};
use serde_json::{json, Value};
use support::*;

fn gd(region: Option<&str>, image: Option<Value>) -> Value {
    let mut method = json!({"name": "glance-download"});
    if let Some(r) = region {
        method["glance_region"] = json!(r);
    }
    if let Some(i) = image {
        method["glance_image_id"] = i;
    }
    json!({"method": method})
}

async fn expect(
    h: &Harness,
    api: &ImageApi,
    target: &str,
    body: &Value,
    status: u16,
    message: &str,
) {
    let answer = api
        .post_json(&format!("/v2/images/{target}/import"), body)
        .await
        .unwrap();
    assert_eq!(
        answer.status.as_u16(),
        status,
        "{body}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let json = answer.json();
    let text = json["message"]
        .as_str()
        .or(json["error"]["message"].as_str())
        .unwrap_or("");
    assert_eq!(text, message, "{body}");
    if let Some(id) = glance_download_sidecar::glance::ImageId::parse(target) {
        assert!(
            h.sidecar.app.tasks.for_image(&id).is_empty(),
            "no task for a refused import"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_synchronous_check_has_upstreams_code_and_message() {
    let h = Harness::start().await;
    let src = h.source_image(1000, 1, json!({}));
    let ok = gd(Some("REGION1"), Some(json!(src)));
    let queued = h.target_image().await;

    let anonymous = ImageApi::new(&h.sidecar.url(), "");
    expect(
        &h,
        &anonymous,
        &queued,
        &ok,
        401,
        "The request you have made requires authentication.",
    )
    .await;
    let forged = ImageApi::new(&h.sidecar.url(), "gAAAAAforged");
    expect(
        &h,
        &forged,
        &queued,
        &ok,
        401,
        "The request you have made requires authentication.",
    )
    .await;
    let revoked = h.cloud.keystone.issue_token(USER, PROJECT, &["member"]);
    h.cloud.keystone.revoke_token(&revoked);
    expect(
        &h,
        &ImageApi::new(&h.sidecar.url(), &revoked),
        &queued,
        &ok,
        401,
        "The request you have made requires authentication.",
    )
    .await;

    let mut flags = ok.clone();
    flags["all_stores_must_succeed"] = json!("false");
    expect(
        &h,
        &h.api,
        &queued,
        &flags,
        400,
        "'all_stores_must_succeed' must be boolean value only",
    )
    .await;
    flags = ok.clone();
    flags["all_stores"] = json!(1);
    expect(
        &h,
        &h.api,
        &queued,
        &flags,
        400,
        "'all_stores' must be boolean value only",
    )
    .await;

    let missing = "5d1e6a4e-0000-4000-8000-000000000001";
    expect(
        &h,
        &h.api,
        missing,
        &ok,
        404,
        &format!("No image found with ID {missing}"),
    )
    .await;
    expect(
        &h,
        &h.api,
        "not-a-uuid",
        &ok,
        404,
        "No image found with ID not-a-uuid",
    )
    .await;
    let foreign = h.target().create_image(ImageSpec::queued("other-project"));
    expect(
        &h,
        &h.api,
        &foreign,
        &ok,
        404,
        &format!("No image found with ID {foreign}"),
    )
    .await;

    let active = h.target().create_image(ImageSpec::active(
        PROJECT,
        glance_download_sidecar::tools::sim::ImageData::Generated { seed: 1, size: 10 },
    ));
    expect(
        &h,
        &h.api,
        &active,
        &ok,
        409,
        "Image with status active cannot be target for import",
    )
    .await;
    let saving = h.target().create_image(ImageSpec {
        status: ImageStatus::Saving,
        ..ImageSpec::queued(PROJECT)
    });
    expect(
        &h,
        &h.api,
        &saving,
        &ok,
        409,
        "Image needs to be in 'queued' state to use 'glance-download' method",
    )
    .await;
    let no_container = h.target().create_image(ImageSpec {
        container_format: None,
        ..ImageSpec::queued(PROJECT)
    });
    expect(
        &h,
        &h.api,
        &no_container,
        &ok,
        409,
        "'container_format' needs to be set before import",
    )
    .await;
    let no_disk = h.target().create_image(ImageSpec {
        disk_format: None,
        ..ImageSpec::queued(PROJECT)
    });
    expect(
        &h,
        &h.api,
        &no_disk,
        &ok,
        409,
        "'disk_format' needs to be set before import",
    )
    .await;

    expect(
        &h,
        &h.api,
        &queued,
        &gd(None, Some(json!(src))),
        400,
        "'glance_region' needs to be set for glance-download import method",
    )
    .await;
    expect(
        &h,
        &h.api,
        &queued,
        &gd(Some("REGION1"), None),
        400,
        "'glance_image_id' needs to be set for glance-download import method",
    )
    .await;
    expect(
        &h,
        &h.api,
        &queued,
        &gd(Some("REGION1"), Some(json!("fake_id"))),
        400,
        "Remote image id does not look like a UUID: fake_id",
    )
    .await;

    let reader = h.cloud.keystone.issue_token(USER, PROJECT, &["reader"]);
    expect(
        &h,
        &ImageApi::new(&h.sidecar.url(), &reader),
        &queued,
        &ok,
        403,
        "You are not authorized to complete modify_image action.",
    )
    .await;

    let locked = h.target().create_image(ImageSpec {
        properties: json!({"os_glance_import_task": "a-running-upstream-task"})
            .as_object()
            .unwrap()
            .clone(),
        ..ImageSpec::queued(PROJECT)
    });
    expect(&h, &h.api, &locked, &ok, 409, "Image has active task").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_refused() {
    let h = Harness::start().await;
    let target = h.target_image().await;
    let big = json!({"method": {"name": "glance-download"}, "pad": "x".repeat(70 * 1024)});
    let answer = h
        .api
        .post_json(&format!("/v2/images/{target}/import"), &big)
        .await
        .unwrap();
    assert_eq!(answer.status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_import_answers_202_with_a_request_id_the_task_records() {
    let h = Harness::start().await;
    let src = h.source_image(1000, 2, json!({}));
    let target = h.target_image().await;
    // What openstacksdk/OSC send: all_stores_must_succeed false, no interface default needed.
    let body = json!({"method": {"name": "glance-download", "glance_region": "REGION1", "glance_image_id": src,
                                 "glance_service_interface": "public"},
                      "all_stores": false, "all_stores_must_succeed": false});
    let answer = h
        .api
        .post_json(&format!("/v2/images/{target}/import"), &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    assert!(answer.body.is_empty());
    let request_id = answer.header("x-openstack-request-id").unwrap().to_string();
    assert!(request_id.starts_with("req-"));
    let task = h.api.wait_for_import(&target, TASK_WAIT).await.unwrap();
    assert_eq!(task["request_id"], request_id.as_str());
    assert_eq!(task["type"], "api_image_import");
    assert_eq!(task["user_id"], USER);
    assert_eq!(task["owner"], PROJECT);
    assert_eq!(task["input"]["import_req"], body);
    assert!(task.get("id").is_some() && task["created_at"].is_string());

    // The interface defaults to public and is recorded that way, as upstream does.
    let target2 = h.target_image().await;
    let answer = h
        .api
        .post_json(
            &format!("/v2/images/{target2}/import"),
            &gd(Some("REGION1"), Some(json!(src))),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
    let task = h.api.wait_for_import(&target2, TASK_WAIT).await.unwrap();
    assert_eq!(
        task["input"]["import_req"]["method"]["glance_service_interface"],
        "public"
    );
    assert_eq!(task["status"], "success", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_import_methods_pass_through_untouched() {
    let h = Harness::start().await;
    let target = h.target_image().await;
    let direct = ImageApi::new(&h.target().url(), &h.token);
    for body in [
        json!({"method": {"name": "web-download", "uri": "http://example.invalid/x.img"}}),
        json!({"method": {"name": "no-such-method"}}),
    ] {
        let via = h
            .api
            .post_json(&format!("/v2/images/{target}/import"), &body)
            .await
            .unwrap();
        let straight = direct
            .post_json(&format!("/v2/images/{target}/import"), &body)
            .await
            .unwrap();
        assert_eq!(via.status, straight.status, "{body}");
        assert_eq!(via.json()["message"], straight.json()["message"]);
    }
    let log = h.target().request_log();
    assert!(
        log.iter().filter(|r| r.path.ends_with("/import")).count() >= 4,
        "sidecar forwarded them"
    );
}

/// Upstream answers errors as webob's HTML page unless the client accepts JSON (glanceclient
/// parses the HTML; it cannot parse the JSON shape), so the sidecar does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_html_unless_json_is_accepted() {
    let h = Harness::start().await;
    let target = h.target_image().await;
    let client = glance_download_sidecar::http::client(std::time::Duration::from_secs(5));
    for (token, status, text) in [
        (
            Some(h.token.clone()),
            400,
            "Remote image id does not look like a UUID: &lt;x&gt;",
        ),
        (
            None,
            401,
            "This server could not verify that you are authorized",
        ),
    ] {
        let body = json!({"method": {"name": "glance-download", "glance_region": "R", "glance_image_id": "<x>"}});
        let mut request =
            http::Request::post(format!("{}/v2/images/{target}/import", h.sidecar.url()))
                .header("content-type", "application/json");
        if let Some(token) = &token {
            request = request.header("x-auth-token", token);
        }
        let request = request
            .body(glance_download_sidecar::http::full(
                serde_json::to_vec(&body).unwrap(),
            ))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=UTF-8"
        );
        let page = glance_download_sidecar::http::read_limited(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let page = String::from_utf8_lossy(&page);
        assert!(page.starts_with("<html>") && page.contains(text), "{page}");
    }
}
