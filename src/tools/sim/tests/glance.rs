//! The fake Glance's metadata API: auth, create, list, visibility, PATCH rules, discovery, import
//! checks, small endpoints.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{call, cloud, get};
use crate::http::JSON_PATCH;
use crate::tools::sim::{ImageSpec, ImageStatus};

async fn create(url: &str, token: &str, body: Value) -> super::Reply {
    let url = format!("{url}/v2/images");
    call(
        Method::POST,
        &url,
        Some(token),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

async fn patch(url: &str, token: &str, id: &str, ops: Value) -> super::Reply {
    let url = format!("{url}/v2/images/{id}");
    call(
        Method::PATCH,
        &url,
        Some(token),
        &[("content-type", JSON_PATCH)],
        ops.to_string(),
    )
    .await
}

#[tokio::test]
async fn requests_without_a_valid_token_get_keystonemiddleware_401() {
    let (cloud, token) = cloud().await;
    let url = format!("{}/v2/images", cloud.region("REGION1").url());
    for t in [None, Some("bogus")] {
        let r = call(Method::GET, &url, t, &[], "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.json(),
            json!({"error": {"code": 401, "title": "Unauthorized",
                             "message": "The request you have made requires authentication."}})
        );
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .starts_with("Keystone uri="));
        assert!(r
            .header("x-openstack-request-id")
            .unwrap()
            .starts_with("req-"));
    }
    cloud.keystone.revoke_token(&token);
    assert_eq!(get(&url, &token).await.status, StatusCode::UNAUTHORIZED);
    let log = cloud.region("REGION1").request_log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].header("X-Auth-Token"), Some(token.as_str()));
    assert_eq!(log[2].path, "/v2/images");
}

#[tokio::test]
async fn create_returns_glance_image_json_and_headers() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION1");
    let r = create(
        &glance.url(),
        &token,
        json!({"name": "cirros", "disk_format": "qcow2",
        "container_format": "bare", "hw_disk_bus": "scsi", "tags": ["a", "a", "b"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.header("openstack-image-import-methods"),
        Some("glance-direct,web-download,copy-image")
    );
    let image = r.json();
    let id = image["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location").unwrap(),
        format!("{}/v2/images/{id}", glance.url())
    );
    for (k, v) in [
        ("status", json!("queued")),
        ("visibility", json!("shared")),
        ("owner", json!("demo")),
        ("size", Value::Null),
        ("checksum", Value::Null),
        ("os_hash_algo", Value::Null),
        ("protected", json!(false)),
        ("os_hidden", json!(false)),
        ("min_disk", json!(0)),
        ("hw_disk_bus", json!("scsi")),
        ("tags", json!(["a", "b"])),
        ("self", json!(format!("/v2/images/{id}"))),
        ("file", json!(format!("/v2/images/{id}/file"))),
        ("schema", json!("/v2/schemas/image")),
    ] {
        assert_eq!(image[k], v, "{k}");
    }
    let created = image["created_at"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == "2026-11-25T12:00:00Z".len(),
        "{created}"
    );
    assert_eq!(glance.image(&id).unwrap(), image);
    assert_eq!(
        get(&format!("{}/v2/images/{id}", glance.url()), &token)
            .await
            .json(),
        image
    );

    let r = create(&glance.url(), &token, json!({"os_glance_import_task": "x"})).await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::FORBIDDEN,
            "Attribute 'os_glance_import_task' is reserved.".into()
        )
    );
    let r = create(&glance.url(), &token, json!({"status": "active"})).await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::FORBIDDEN,
            "Attribute 'status' is read-only.".into()
        )
    );
    let r = create(&glance.url(), &token, json!({"disk_format": "floppy"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.glance_message().contains("'floppy' is not one of"),
        "{}",
        r.glance_message()
    );
    let r = create(&glance.url(), &token, json!({"id": id})).await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::CONFLICT,
            format!("Image with identifier {id} already exists!")
        )
    );
    let r = create(&glance.url(), &token, json!({"visibility": "public"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let body = r.json();
    assert_eq!(body["code"], "403 Forbidden");
    assert_eq!(body["title"], "Forbidden");
}

#[tokio::test]
async fn visibility_limits_what_a_project_sees() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION1");
    let mine = glance.create_image(ImageSpec::queued("demo"));
    let theirs = glance.create_image(ImageSpec::queued("other"));
    let public = glance.create_image(ImageSpec {
        visibility: "public".into(),
        ..ImageSpec::queued("other")
    });
    let url = glance.url();
    let r = get(&format!("{url}/v2/images/{theirs}"), &token).await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::NOT_FOUND,
            format!("No image found with ID {theirs}")
        )
    );
    assert_eq!(
        get(&format!("{url}/v2/images/{public}"), &token)
            .await
            .status,
        StatusCode::OK
    );
    let listed = get(&format!("{url}/v2/images"), &token).await.json();
    let ids: Vec<&str> = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [public.as_str(), mine.as_str()],
        "newest first, own and public only"
    );
    assert_eq!(listed["first"], "/v2/images");
    assert_eq!(listed["schema"], "/v2/schemas/images");
    let r = patch(
        &url,
        &token,
        &public,
        json!([{"op": "add", "path": "/x", "value": "1"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let page = get(&format!("{url}/v2/images?limit=1"), &token)
        .await
        .json();
    assert_eq!(page["images"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], format!("/v2/images?limit=1&marker={public}"));
    let page = get(&format!("{url}{}", page["next"].as_str().unwrap()), &token)
        .await
        .json();
    assert_eq!(page["images"][0]["id"], mine.as_str());
    let filtered = get(&format!("{url}/v2/images?owner=other"), &token)
        .await
        .json();
    assert_eq!(filtered["images"].as_array().unwrap().len(), 1);

    let admin = cloud.keystone.issue_token("root", "admin", &["admin"]);
    assert_eq!(
        get(&format!("{url}/v2/images/{theirs}"), &admin)
            .await
            .status,
        StatusCode::OK
    );
    let r = call(
        Method::DELETE,
        &format!("{url}/v2/images/{mine}"),
        Some(&token),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(glance.image(&mine).is_none());
}

#[tokio::test]
async fn patch_follows_glance_rules() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION1");
    let url = glance.url();
    let mut spec = ImageSpec::queued("demo");
    spec.properties.insert("hw_x".into(), json!("old"));
    let id = glance.create_image(spec);

    let r = patch(
        &url,
        &token,
        &id,
        json!([
            {"op": "add", "path": "/hw_x", "value": "new"},
            {"op": "add", "path": "/os_distro", "value": "ubuntu"},
            {"op": "replace", "path": "/disk_format", "value": "qcow2"},
            {"op": "replace", "path": "/name", "value": "n"},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let image = r.json();
    assert_eq!(
        (image["hw_x"].as_str(), image["os_distro"].as_str()),
        (Some("new"), Some("ubuntu")),
        "add replaces"
    );
    assert_eq!(
        (image["disk_format"].as_str(), image["name"].as_str()),
        (Some("qcow2"), Some("n"))
    );

    let cases = [
        (
            json!([{"op": "add", "path": "/os_glance_import_task", "value": "t"}]),
            403,
            "Attribute 'os_glance_import_task' is reserved.",
        ),
        (
            json!([{"op": "replace", "path": "/checksum", "value": "x"}]),
            403,
            "Attribute 'checksum' is read-only.",
        ),
        (
            json!([{"op": "replace", "path": "/nope", "value": "x"}]),
            409,
            "Property nope does not exist.",
        ),
        (
            json!([{"op": "remove", "path": "/nope"}]),
            409,
            "Property nope does not exist.",
        ),
        (
            json!([{"op": "remove", "path": "/name"}]),
            403,
            "Property name may not be removed.",
        ),
        (
            json!([{"op": "replace", "path": "/owner", "value": "x"}]),
            403,
            "Owner can't be updated by non admin.",
        ),
        (
            json!([{"op": "add", "path": "/n", "value": 5}]),
            400,
            "Provided object does not match schema 'image': 5 is not of type 'string'",
        ),
        (
            json!([{"op": "move", "path": "/n"}]),
            400,
            "Invalid operation: `move`. It must be one of the following: add, remove, replace.",
        ),
        (
            json!([{"op": "add", "path": "/a/b", "value": "x"}]),
            400,
            "Invalid JSON pointer for this resource: '/a/b'",
        ),
        (
            json!({"op": "add"}),
            400,
            "Request body must be a JSON array of operation objects.",
        ),
        // Atomic: the first op is valid, the second fails, nothing is applied.
        (
            json!([{"op": "add", "path": "/hw_y", "value": "1"}, {"op": "remove", "path": "/nope"}]),
            409,
            "Property nope does not exist.",
        ),
    ];
    for (ops, status, message) in cases {
        let r = patch(&url, &token, &id, ops.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.glance_message()),
            (status, message.to_owned()),
            "{ops}"
        );
    }
    assert!(glance.image(&id).unwrap().get("hw_y").is_none());

    let r = call(
        Method::PATCH,
        &format!("{url}/v2/images/{id}"),
        Some(&token),
        &[("content-type", "application/json")],
        "[]",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r
        .header("accept-patch")
        .unwrap()
        .contains("v2.1-json-patch"));

    let r = patch(
        &url,
        &token,
        &id,
        json!([{"op": "remove", "path": "/hw_x"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json().get("hw_x").is_none());

    glance.set_status(&id, ImageStatus::Active);
    let r = patch(
        &url,
        &token,
        &id,
        json!([{"op": "replace", "path": "/container_format", "value": "ovf"}]),
    )
    .await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::FORBIDDEN,
            "Attribute container_format can be only replaced for a queued image.".into()
        )
    );
}

#[tokio::test]
async fn discovery_and_import_checks() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    let url = glance.url();
    let info = get(&format!("{url}/v2/info/import"), &token).await.json();
    assert_eq!(
        info,
        json!({"import-methods": {"description": "Import methods available.", "type": "array",
                                               "value": ["glance-direct", "web-download", "copy-image"]}})
    );
    let id = glance.create_image(ImageSpec::queued("demo"));
    let import = |body: Value| {
        let url = format!("{url}/v2/images/{id}/import");
        let token = token.clone();
        async move {
            call(
                Method::POST,
                &url,
                Some(&token),
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await
        }
    };
    let gd = json!({"method": {"name": "glance-download", "glance_region": "REGION1",
                               "glance_image_id": "c4705b36-b281-40f6-a01d-bf98883ead8e"}});
    let r = import(gd.clone()).await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::BAD_REQUEST,
            "Unknown import method name 'glance-download'.".into()
        )
    );

    glance.set_import_methods(&["glance-direct", "glance-download"]);
    let info = get(&format!("{url}/v2/info/import"), &token).await.json();
    assert_eq!(
        info["import-methods"]["value"],
        json!(["glance-direct", "glance-download"])
    );
    let r = import(json!({"method": {"name": "glance-download", "glance_region": "R"}})).await;
    assert_eq!(
        r.glance_message(),
        "'glance_image_id' needs to be set for glance-download import method"
    );
    let mut osc = gd.clone();
    osc["all_stores_must_succeed"] = json!(false);
    let r = import(osc).await;
    assert_eq!(
        r.glance_message(),
        "All_stores_must_succeed can only be set with enabled_backends None"
    );
    let r = import(gd.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.body.is_empty());

    glance.set_property(&id, "os_glance_import_task", Some("t1"));
    assert_eq!(
        import(gd.clone()).await.glance_message(),
        "Image has active task"
    );
    glance.set_status(&id, ImageStatus::Active);
    assert_eq!(
        import(gd).await.glance_message(),
        "Image with status active cannot be target for import"
    );

    let tasks = get(&format!("{url}/v2/images/{id}/tasks"), &token).await;
    assert_eq!(
        (tasks.status, tasks.json()),
        (StatusCode::OK, json!({"tasks": []}))
    );
    let members = get(&format!("{url}/v2/images/{id}/members"), &token)
        .await
        .json();
    assert_eq!(members["members"], json!([]));
    let stores = get(&format!("{url}/v2/info/stores"), &token).await;
    assert_eq!(
        stores.glance_message(),
        "Multi backend is not supported at this site."
    );
    let r = call(
        Method::PUT,
        &format!("{url}/v2/images/{id}/tags/blue"),
        Some(&token),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(glance.image(&id).unwrap()["tags"], json!(["blue"]));
    assert_eq!(
        get(&format!("{url}/v2/nothing"), &token).await.status,
        StatusCode::NOT_FOUND
    );

    let r = call(Method::GET, &format!("{url}/healthcheck"), None, &[], "").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"OK"[..]));
    let r = call(Method::GET, &url, None, &[], "").await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(r.json()["versions"][2]["id"], "v2.17");
    assert_eq!(
        call(Method::GET, &format!("{url}/versions"), None, &[], "")
            .await
            .status,
        StatusCode::OK
    );
}

/// Without `Accept: application/json`, errors are webob's HTML page (what glanceclient parses),
/// as the interop suite recorded from Glance 33.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_html_unless_json_is_accepted() {
    let (cloud, token) = cloud().await;
    let url = format!(
        "{}/v2/images/0b4f2d3c-0000-4000-8000-000000000000",
        cloud.region("REGION1").url()
    );
    let page = call(
        Method::GET,
        &url,
        Some(&token),
        &[("accept", "*/*")],
        Bytes::new(),
    )
    .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    let text = String::from_utf8_lossy(&page.body);
    assert!(
        text.starts_with("<html>") && text.contains("<h1>404 Not Found</h1>"),
        "{text}"
    );
    let denied = call(Method::GET, &url, None, &[("accept", "*/*")], Bytes::new()).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert!(
        String::from_utf8_lossy(&denied.body).contains("could not verify that you are authorized")
    );
    assert!(denied.header("www-authenticate").is_some());
}
