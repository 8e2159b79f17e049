//! The fake Glance's multi-store mode: discovery, `X-Image-Meta-Store` on upload, the import
//! body's stores, `copy-image` and `glance-direct` into several stores, store failures.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{call, cloud, get};
use crate::tools::sim::{FakeGlance, ImageData, ImageSpec};

async fn put_file(glance: &FakeGlance, token: &str, id: &str, store: Option<&str>) -> super::Reply {
    let url = format!("{}/v2/images/{id}/file", glance.url());
    let mut headers = vec![("content-type", "application/octet-stream")];
    if let Some(store) = store {
        headers.push(("x-image-meta-store", store));
    }
    call(
        Method::PUT,
        &url,
        Some(token),
        &headers,
        Bytes::from_static(b"0123456789"),
    )
    .await
}

async fn import(glance: &FakeGlance, token: &str, id: &str, body: Value) -> super::Reply {
    let url = format!("{}/v2/images/{id}/import", glance.url());
    let headers = [("content-type", "application/json")];
    call(Method::POST, &url, Some(token), &headers, body.to_string()).await
}

/// Waits until the image's import lock is gone; returns the image.
async fn settled(glance: &FakeGlance, id: &str) -> Value {
    for _ in 0..200 {
        let image = glance.image(id).unwrap();
        if image.get("os_glance_import_task").is_none() {
            return image;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the import task of {id} never ended");
}

fn last_task(
    glance: &FakeGlance,
    token: &str,
    id: &str,
) -> impl std::future::Future<Output = Value> {
    let url = format!("{}/v2/images/{id}/tasks", glance.url());
    let token = token.to_owned();
    async move {
        let tasks = get(&url, &token).await.json();
        tasks["tasks"].as_array().unwrap().last().cloned().unwrap()
    }
}

#[tokio::test]
async fn single_store_is_the_default_and_has_no_store_list() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    let r = get(&format!("{}/v2/info/stores", glance.url()), &token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.glance_message(),
        "Multi backend is not supported at this site."
    );
    let id = glance.create_image(ImageSpec::queued("demo"));
    // The header is ignored without enabled_backends, as upstream.
    assert_eq!(
        put_file(glance, &token, &id, Some("fast")).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(glance.image(&id).unwrap().get("stores").is_none());
}

#[tokio::test]
async fn info_stores_lists_them_as_upstream() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    glance.enable_stores(&["local", "fast"], "local");
    glance.add_read_only_store("web");
    let r = get(&format!("{}/v2/info/stores", glance.url()), &token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"stores": [{"id": "local", "default": "true"}, {"id": "fast"},
                          {"id": "web", "read-only": "true"}]})
    );
}

#[tokio::test]
async fn uploads_go_to_the_named_or_default_store() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    glance.enable_stores(&["local", "fast"], "local");
    let a = glance.create_image(ImageSpec::queued("demo"));
    assert_eq!(
        put_file(glance, &token, &a, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(glance.image(&a).unwrap()["stores"], "local");
    let b = glance.create_image(ImageSpec::queued("demo"));
    assert_eq!(
        put_file(glance, &token, &b, Some("fast")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(glance.image(&b).unwrap()["stores"], "fast");
    let c = glance.create_image(ImageSpec::queued("demo"));
    let r = put_file(glance, &token, &c, Some("tape")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(String::from_utf8_lossy(&r.body).contains("Store for identifier tape not found"));
    assert_eq!(glance.image(&c).unwrap()["status"], "queued");
}

#[tokio::test]
async fn copy_image_needs_admin_and_an_active_image() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    glance.enable_stores(&["local", "fast"], "local");
    let id = glance.create_image(ImageSpec::active(
        "demo",
        ImageData::Bytes(Bytes::from_static(b"x")),
    ));
    let body = json!({"method": {"name": "copy-image"}, "stores": ["fast"]});
    let r = import(glance, &token, &id, body.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.glance_message(),
        "You are not authorized to complete copy_image action."
    );
    let admin = cloud.keystone.issue_token("admin", "admin", &["admin"]);
    let queued = glance.create_image(ImageSpec::queued("demo"));
    let r = import(glance, &admin, &queued, body.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.glance_message(),
        "Only images with status active can be targeted for copying"
    );
    let r = import(
        glance,
        &admin,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": ["local"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.glance_message(),
        "Image is already present at store 'local'"
    );
    let r = import(
        glance,
        &admin,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": ["tape"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.glance_message(), "Store for identifier tape not found");
}

#[tokio::test]
async fn copy_image_adds_stores_and_records_failures() {
    let (cloud, _) = cloud().await;
    let admin = cloud.keystone.issue_token("admin", "admin", &["admin"]);
    let glance = cloud.region("REGION2");
    glance.enable_stores(&["local", "fast", "slow"], "local");
    glance.fail_store("slow");
    let data = ImageData::Bytes(Bytes::from_static(b"data"));

    // all_stores_must_succeed false: the good store is kept, the bad one recorded.
    let id = glance.create_image(ImageSpec::active("demo", data.clone()));
    let body = json!({"method": {"name": "copy-image"}, "all_stores": true,
                      "all_stores_must_succeed": false});
    let r = import(glance, &admin, &id, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(
        glance.image(&id).unwrap()["os_glance_import_task"].is_string(),
        "lock taken before 202"
    );
    let image = settled(glance, &id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["stores"], "local,fast");
    assert_eq!(image["os_glance_failed_import"], "slow");
    assert_eq!(image["os_glance_importing_to_stores"], "");
    let task = last_task(glance, &admin, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(
        task["input"]["backend"],
        json!(["fast", "slow"]),
        "all_stores pruned of local"
    );

    // all_stores_must_succeed true: the whole copy is undone, the image stays active where it was.
    let id = glance.create_image(ImageSpec::active("demo", data));
    let body = json!({"method": {"name": "copy-image"}, "stores": ["fast", "slow"]});
    assert_eq!(
        import(glance, &admin, &id, body).await.status,
        StatusCode::ACCEPTED
    );
    let image = settled(glance, &id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["stores"], "local");
    assert_eq!(image["os_glance_failed_import"], "slow");
    let task = last_task(glance, &admin, &id).await;
    assert_eq!(task["status"], "failure");
    assert_eq!(task["message"], "Task failed due to Internal Error");
}

#[tokio::test]
async fn import_bodies_follow_get_stores_from_request() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    glance.enable_stores(&["local", "fast"], "local");
    glance.set_import_methods(&["glance-direct", "copy-image", "glance-download"]);
    let id = glance.create_image(ImageSpec::queued("demo"));
    let method = json!({"name": "glance-download", "glance_region": "REGION1",
                        "glance_image_id": uuid::Uuid::new_v4().to_string()});
    let r = import(
        glance,
        &token,
        &id,
        json!({"method": method, "all_stores": true, "stores": ["fast"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.glance_message(),
        "All_stores parameter can't be used with x-image-meta-store header or stores parameter"
    );
    let r = import(
        glance,
        &token,
        &id,
        json!({"method": method, "stores": ["nope"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // all_stores_must_succeed false is fine with enabled_backends.
    let r = import(
        glance,
        &token,
        &id,
        json!({"method": method, "all_stores_must_succeed": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn glance_direct_writes_every_store_or_reverts() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    glance.enable_stores(&["local", "fast", "slow"], "local");
    glance.fail_store("slow");
    for (must, status, stores) in [
        (false, "active", Some("fast,local")),
        (true, "queued", None),
    ] {
        let id = glance.create_image(ImageSpec::queued("demo"));
        let url = format!("{}/v2/images/{id}/stage", glance.url());
        let headers = [("content-type", "application/octet-stream")];
        let r = call(
            Method::PUT,
            &url,
            Some(&token),
            &headers,
            Bytes::from_static(b"abc"),
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let body = json!({"method": {"name": "glance-direct"}, "stores": ["fast", "slow", "local"],
                          "all_stores_must_succeed": must});
        assert_eq!(
            import(glance, &token, &id, body).await.status,
            StatusCode::ACCEPTED
        );
        let image = settled(glance, &id).await;
        assert_eq!(image["status"], status, "{image}");
        assert_eq!(image["stores"].as_str(), stores, "{image}");
        assert_eq!(image["os_glance_failed_import"], "slow");
        let task = last_task(glance, &token, &id).await;
        assert_eq!(task["status"], if must { "failure" } else { "success" });
    }
}
