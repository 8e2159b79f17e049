//! The fake Keystone: token validation answers, password auth, catalog contents.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{call, cloud};

#[tokio::test]
async fn validate_returns_token_body_with_catalog() {
    let (cloud, token) = cloud().await;
    let url = format!("{}/auth/tokens", cloud.auth_url());
    let r = call(
        Method::GET,
        &url,
        Some(&token),
        &[("x-subject-token", &token)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-subject-token"), Some(token.as_str()));
    assert!(r
        .header("x-openstack-request-id")
        .unwrap()
        .starts_with("req-"));
    let t = &r.json()["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["user"]["id"], "demo");
    assert_eq!(
        t["user"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert_eq!(t["user"]["password_expires_at"], Value::Null);
    assert_eq!(t["project"]["id"], "demo");
    assert_eq!(t["is_domain"], false);
    let roles: Vec<&str> = t["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["member", "reader"],
        "implied roles are expanded as Keystone does"
    );
    assert!(t["roles"][0]["id"].as_str().unwrap().len() == 32);
    let expires = t["expires_at"].as_str().unwrap();
    assert!(
        expires.ends_with('Z') && expires.len() == "2026-11-25T13:00:00.000000Z".len(),
        "{expires}"
    );
    assert_eq!(t["audit_ids"].as_array().unwrap().len(), 1);

    let catalog = t["catalog"].as_array().unwrap();
    let image = catalog.iter().find(|s| s["type"] == "image").unwrap();
    assert_eq!(image["name"], "glance");
    let endpoints = image["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 6);
    for region in ["REGION1", "REGION2"] {
        for interface in ["public", "internal", "admin"] {
            let e = endpoints
                .iter()
                .find(|e| e["region"] == region && e["interface"] == interface)
                .unwrap_or_else(|| panic!("{region} {interface}"));
            assert_eq!(e["region_id"], region);
            assert_eq!(e["url"], cloud.region(region).url());
            assert!(e["id"].is_string());
        }
    }
    let identity = catalog.iter().find(|s| s["type"] == "identity").unwrap();
    assert_eq!(identity["endpoints"][0]["url"], cloud.auth_url());

    let r = call(
        Method::GET,
        &format!("{url}?nocatalog"),
        Some(&token),
        &[("x-subject-token", &token)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["token"].get("catalog").is_none());

    let r = call(
        Method::HEAD,
        &url,
        Some(&token),
        &[("x-subject-token", &token)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn validate_error_answers_match_keystone() {
    let (cloud, token) = cloud().await;
    let url = format!("{}/auth/tokens", cloud.auth_url());
    let error = |code: u16, message: &str, title: &str| json!({"error": {"code": code, "message": message, "title": title}});

    let r = call(Method::GET, &url, None, &[("x-subject-token", &token)], "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        error(
            401,
            "The request you have made requires authentication.",
            "Unauthorized"
        )
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Keystone uri="));
    assert!(r
        .header("x-openstack-request-id")
        .unwrap()
        .starts_with("req-"));

    let r = call(
        Method::GET,
        &url,
        Some("bogus"),
        &[("x-subject-token", &token)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = call(
        Method::GET,
        &url,
        Some(&token),
        &[("x-subject-token", "bogus")],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json(),
        error(404, "Could not recognize Fernet token", "Not Found")
    );

    let r = call(Method::GET, &url, Some(&token), &[], "").await;
    assert_eq!(r.json(), error(404, "No token in the request", "Not Found"));

    let revoked = cloud.keystone.issue_token("demo", "demo", &["member"]);
    cloud.keystone.revoke_token(&revoked);
    let r = call(
        Method::GET,
        &url,
        Some(&token),
        &[("x-subject-token", &revoked)],
        "",
    )
    .await;
    assert_eq!(
        r.json(),
        error(404, "Failed to validate token", "Not Found")
    );

    let expired = cloud.keystone.issue_token("demo", "demo", &["member"]);
    cloud.keystone.expire_token(&expired);
    let r = call(
        Method::GET,
        &url,
        Some(&token),
        &[("x-subject-token", &expired)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(cloud.keystone.caller(&expired).is_none());

    // Another user's token needs admin or service to validate.
    let other = cloud.keystone.issue_token("alice", "alice", &["member"]);
    let r = call(
        Method::GET,
        &url,
        Some(&token),
        &[("x-subject-token", &other)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let service = cloud
        .keystone
        .issue_token("glance", "service", &["service"]);
    let r = call(
        Method::GET,
        &url,
        Some(&service),
        &[("x-subject-token", &other)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["token"]["user"]["id"], "alice");
}

#[tokio::test]
async fn password_auth_issues_usable_tokens() {
    let (cloud, _) = cloud().await;
    let user_id = cloud
        .keystone
        .add_user("bob", "secret", "proj", &["member"]);
    let url = format!("{}/auth/tokens", cloud.auth_url());
    let body = |password: &str| {
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "bob", "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": "proj", "domain": {"name": "Default"}}}}})
        .to_string()
    };
    let r = call(
        Method::POST,
        &url,
        None,
        &[("content-type", "application/json")],
        body("secret"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.header("x-subject-token").unwrap().to_owned();
    let t = &r.json()["token"];
    assert_eq!(t["user"]["id"], user_id.as_str());
    assert_eq!(t["user"]["name"], "bob");
    assert_eq!(t["project"]["id"], "proj");
    assert!(t["catalog"].is_array());
    let caller = cloud.keystone.caller(&token).unwrap();
    assert_eq!(caller.project_id.as_deref(), Some("proj"));
    assert!(caller.has_role("member"));

    let glance = format!("{}/v2/images", cloud.region("REGION2").url());
    assert_eq!(super::get(&glance, &token).await.status, StatusCode::OK);

    let r = call(Method::POST, &url, None, &[], body("wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = call(
        Method::DELETE,
        &url,
        Some(&token),
        &[("x-subject-token", &token)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(cloud.keystone.caller(&token).is_none());
}

#[tokio::test]
async fn catalog_endpoints_can_be_replaced_and_removed() {
    let (cloud, _) = cloud().await;
    cloud
        .keystone
        .set_endpoint("REGION1", "public", "http://example.invalid:9292");
    cloud.keystone.remove_endpoint("REGION2", "internal");
    cloud
        .keystone
        .set_endpoint("REGION3", "public", "http://r3.invalid");
    let catalog = cloud.keystone.catalog();
    let image = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "image")
        .unwrap();
    let endpoints = image["endpoints"].as_array().unwrap();
    let url = |region: &str, interface: &str| {
        endpoints
            .iter()
            .find(|e| e["region"] == region && e["interface"] == interface)
            .map(|e| e["url"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        url("REGION1", "public").as_deref(),
        Some("http://example.invalid:9292")
    );
    assert_eq!(url("REGION1", "admin"), Some(cloud.region("REGION1").url()));
    assert_eq!(url("REGION2", "internal"), None);
    assert_eq!(
        url("REGION3", "public").as_deref(),
        Some("http://r3.invalid")
    );
    assert_eq!(endpoints.len(), 6);
}

#[tokio::test]
async fn version_documents() {
    let (cloud, _) = cloud().await;
    let r = call(Method::GET, &cloud.auth_url(), None, &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["version"]["id"], "v3.14");
    let root = cloud.auth_url().trim_end_matches("/v3").to_owned();
    let r = call(Method::GET, &root, None, &[], "").await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
}
