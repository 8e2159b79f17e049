//! Everything the sidecar does not handle reaches the upstream Glance unchanged and comes back
//! unchanged; discovery advertises glance-download; tasks, health and metrics are served.

mod support;

use bytes::Bytes;
use glance_download_sidecar::http::full;
use glance_download_sidecar::tools::apiclient::ImageApi;
use http::Method;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_api_calls_behave_as_against_glance_directly() {
    let h = Harness::start().await;
    let direct = ImageApi::new(&h.target().url(), &h.token);
    let id = h.target_image().await;

    // show, update, tags, list, members: same status and same document as straight to Glance.
    let patched = h
        .api
        .patch(
            &id,
            &json!([{"op": "add", "path": "/color", "value": "blue"}]),
        )
        .await
        .unwrap();
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["color"], "blue");
    let tag = h
        .api
        .call(
            Method::PUT,
            &format!("/v2/images/{id}/tags/golden"),
            None,
            glance_download_sidecar::http::empty(),
        )
        .await
        .unwrap();
    assert_eq!(tag.status, 204);
    for path in [
        format!("/v2/images/{id}"),
        "/v2/images".to_string(),
        format!("/v2/images/{id}/members"),
    ] {
        let via = h.api.get(&path).await.unwrap();
        let straight = direct.get(&path).await.unwrap();
        assert_eq!(via.status, straight.status, "{path}");
        assert_eq!(via.json(), straight.json(), "{path}");
        assert!(
            via.header("x-openstack-request-id").is_some(),
            "{path}: request id passed through"
        );
    }

    // upload and download through the sidecar.
    let data = Bytes::from(
        (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let put = h
        .api
        .call(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            Some("application/octet-stream"),
            full(data.clone()),
        )
        .await
        .unwrap();
    assert_eq!(put.status, 204, "{put:?}");
    let got = h.api.get(&format!("/v2/images/{id}/file")).await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, data);

    // upstream error codes and bodies verbatim.
    let missing = "7a2b0d7e-0000-4000-8000-00000000abcd";
    let via = h.api.get(&format!("/v2/images/{missing}")).await.unwrap();
    let straight = direct.get(&format!("/v2/images/{missing}")).await.unwrap();
    assert_eq!((via.status, &via.body), (straight.status, &straight.body));
    let reserved = h
        .api
        .patch(
            &id,
            &json!([{"op": "add", "path": "/os_glance_x", "value": "1"}]),
        )
        .await
        .unwrap();
    assert_eq!(reserved.status, 403);

    // delete.
    let deleted = h
        .api
        .call(
            Method::DELETE,
            &format!("/v2/images/{id}"),
            None,
            glance_download_sidecar::http::empty(),
        )
        .await
        .unwrap();
    assert_eq!(deleted.status, 204);
    assert_eq!(
        direct
            .get(&format!("/v2/images/{id}"))
            .await
            .unwrap()
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_glance_download() {
    let h = Harness::start().await;
    let info = h.api.get("/v2/info/import").await.unwrap();
    assert_eq!(info.status, 200);
    let methods = info.json()["import-methods"]["value"].clone();
    assert!(
        methods
            .as_array()
            .unwrap()
            .contains(&json!("glance-download")),
        "{methods}"
    );
    assert!(
        methods
            .as_array()
            .unwrap()
            .contains(&json!("glance-direct")),
        "upstream's methods kept"
    );
    let straight = ImageApi::new(&h.target().url(), &h.token)
        .get("/v2/info/import")
        .await
        .unwrap();
    assert!(!straight.json()["import-methods"]["value"]
        .as_array()
        .unwrap()
        .contains(&json!("glance-download")));

    let created = h
        .api
        .create_image(&json!({"name": "x", "disk_format": "raw", "container_format": "bare"}))
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let header = created.header("openstack-image-import-methods").unwrap();
    assert!(
        header.split(',').any(|m| m == "glance-download"),
        "{header}"
    );
    assert!(header.split(',').any(|m| m == "glance-direct"), "{header}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_merged_and_scoped_to_the_project() {
    let h = Harness::start().await;
    let src = h.source_image(1000, 3, json!({}));
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "success");
    // Another project's admin sees it; another project's member cannot see the image at all.
    let admin =
        h.cloud
            .keystone
            .issue_token("admin", "admin-project", &["admin", "member", "reader"]);
    let listed = ImageApi::new(&h.sidecar.url(), &admin)
        .get(&format!("/v2/images/{dst}/tasks"))
        .await
        .unwrap();
    assert_eq!(
        listed.json()["tasks"].as_array().unwrap().len(),
        1,
        "{:?}",
        listed.json()
    );
    let stranger = h
        .cloud
        .keystone
        .issue_token("eve", "other-project", &["member", "reader"]);
    let hidden = ImageApi::new(&h.sidecar.url(), &stranger)
        .get(&format!("/v2/images/{dst}/tasks"))
        .await
        .unwrap();
    assert_eq!(hidden.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let h = Harness::start().await;
    let health = h.api.get("/healthcheck").await.unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["upstream"], "reachable");
    let src = h.source_image(5000, 4, json!({}));
    let dst = h.target_image().await;
    assert_eq!(h.import_and_wait(&dst, &src).await["status"], "success");
    let metrics = h.api.get("/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(text.contains("gds_imports_succeeded_total 1"), "{text}");
    assert!(text.contains("gds_imported_bytes_total 5000"), "{text}");

    // With the upstream Glance gone, the sidecar says so.
    let lonely = glance_download_sidecar::api::Server::bind(
        glance_download_sidecar::api::App::new(glance_download_sidecar::config::Config {
            bind: ([127, 0, 0, 1], 0).into(),
            glance_url: "http://127.0.0.1:9".into(),
            ..h.config.clone()
        })
        .unwrap(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let down = ImageApi::new(&lonely.url(), "")
        .get("/healthcheck")
        .await
        .unwrap();
    assert_eq!(down.status, 503);
    let proxied = ImageApi::new(&lonely.url(), &h.token)
        .get("/v2/images")
        .await
        .unwrap();
    assert_eq!(proxied.status, 502);
}

/// An upstream that keeps connections alive and records the peer of every request: one peer
/// address per TCP connection the sidecar opened to it.
async fn counting_upstream() -> (
    String,
    std::sync::Arc<std::sync::Mutex<std::collections::HashSet<std::net::SocketAddr>>>,
) {
    use glance_download_sidecar::http::{read_limited, serve, status_response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let peers = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let seen = peers.clone();
    let service = move |request: http::Request<hyper::body::Incoming>, peer| {
        seen.lock().unwrap().insert(peer);
        async move {
            match (request.method().as_str(), request.uri().path()) {
                ("GET", "/big") => http::Response::new(full(vec![7u8; 3 << 20])),
                ("PUT", "/big") => {
                    let body = read_limited(request.into_body(), 4 << 20).await.unwrap();
                    assert_eq!(body.len(), 3 << 20);
                    status_response(http::StatusCode::NO_CONTENT)
                }
                _ => http::Response::new(full(r#"{"images": []}"#)),
            }
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(serve(listener, None, service, shutdown));
    (url, peers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_calls_reuse_one_upstream_connection() {
    let (upstream, peers) = counting_upstream().await;
    let config = glance_download_sidecar::config::Config {
        bind: ([127, 0, 0, 1], 0).into(),
        glance_url: upstream,
        auth_url: "http://127.0.0.1:9/v3".into(),
        task_journal: None,
        ..glance_download_sidecar::config::Config::default()
    };
    let sidecar = glance_download_sidecar::api::Server::bind(
        glance_download_sidecar::api::App::new(config).unwrap(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let api = ImageApi::new(&sidecar.url(), "a-token");
    for _ in 0..10 {
        assert_eq!(api.get("/v2/images").await.unwrap().status, 200);
    }
    // Large bodies both ways end their exchange too: the connection goes back to the pool.
    for _ in 0..2 {
        let down = api.get("/big").await.unwrap();
        assert_eq!((down.status.as_u16(), down.body.len()), (200, 3 << 20));
        let body = full(vec![1u8; 3 << 20]);
        let up = api.call(Method::PUT, "/big", None, body).await.unwrap();
        assert_eq!(up.status, 204);
        assert_eq!(api.get("/v2/images").await.unwrap().status, 200);
    }
    assert_eq!(
        peers.lock().unwrap().len(),
        1,
        "one connection to the upstream"
    );
}
