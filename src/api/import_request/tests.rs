use serde_json::json;

use super::*;

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

const ID: &str = "c4705b36-b281-40f6-a01d-bf98883ead8e";

#[test]
fn classifies_by_method_name() {
    let ours = json!({"method": {"name": "glance-download"}});
    assert!(matches!(
        classify(&serde_json::to_vec(&ours).unwrap()),
        Classified::GlanceDownload(_)
    ));
    for other in [
        &b"{\"method\": {\"name\": \"web-download\", \"uri\": \"http://x\"}}"[..],
        b"not json",
        b"[1, 2]",
        b"{\"method\": \"glance-download\"}",
        b"",
    ] {
        assert_eq!(classify(other), Classified::NotOurs);
    }
}

#[test]
fn flags_must_be_booleans() {
    assert!(check_flags(&map(
        json!({"all_stores": false, "all_stores_must_succeed": false})
    ))
    .is_ok());
    let e = check_flags(&map(json!({"all_stores_must_succeed": "no"}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "'all_stores_must_succeed' must be boolean value only"
    );
    let e = check_flags(&map(json!({"all_stores": 1}))).unwrap_err();
    assert_eq!(e.to_string(), "'all_stores' must be boolean value only");
}

#[test]
fn fields_in_upstream_order_with_upstream_messages() {
    let e = check_fields(&map(
        json!({"method": {"name": "glance-download", "glance_image_id": ID}}),
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "'glance_region' needs to be set for glance-download import method"
    );
    let e = check_fields(&map(
        json!({"method": {"name": "glance-download", "glance_region": "R"}}),
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "'glance_image_id' needs to be set for glance-download import method"
    );
    let e = check_fields(&map(json!({"method": {"name": "glance-download", "glance_region": "R", "glance_image_id": "fake_id"}}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Remote image id does not look like a UUID: fake_id"
    );
    // Upstream answers 500 to these; we answer 400.
    for bad in [json!(null), json!(123)] {
        let body = map(
            json!({"method": {"name": "glance-download", "glance_region": "R", "glance_image_id": bad}}),
        );
        assert_eq!(
            check_fields(&body).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
    let body = map(
        json!({"method": {"name": "glance-download", "glance_region": null, "glance_image_id": ID}}),
    );
    assert_eq!(
        check_fields(&body).unwrap_err().status(),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn interface_defaults_to_public_in_the_recorded_body() {
    let body = map(
        json!({"method": {"name": "glance-download", "glance_region": "REGION1", "glance_image_id": ID.to_uppercase()},
                          "all_stores_must_succeed": false, "stores": ["local"]}),
    );
    let fields = check_fields(&body).unwrap();
    assert_eq!(fields.interface, "public");
    assert_eq!(fields.remote_image_id.as_str(), ID);
    assert_eq!(fields.stores, vec!["local"]);
    assert_eq!(
        fields.recorded["method"]["glance_service_interface"],
        "public"
    );
    assert_eq!(fields.recorded["all_stores_must_succeed"], false);
}

#[test]
fn target_checks_match_upstream() {
    let image = |v: Value| Image(map(v));
    let cases = [
        (
            json!({"status": "active", "disk_format": "raw", "container_format": "bare"}),
            "Image with status active cannot be target for import",
        ),
        (
            json!({"status": "saving", "disk_format": "raw", "container_format": "bare"}),
            "Image needs to be in 'queued' state to use 'glance-download' method",
        ),
        (
            json!({"status": "queued", "disk_format": "raw", "container_format": null}),
            "'container_format' needs to be set before import",
        ),
        (
            json!({"status": "queued", "disk_format": null, "container_format": "bare"}),
            "'disk_format' needs to be set before import",
        ),
    ];
    for (target, message) in cases {
        let e = check_target(&image(target)).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (StatusCode::CONFLICT, message)
        );
    }
    assert!(check_target(&image(
        json!({"status": "queued", "disk_format": "raw", "container_format": "bare"})
    ))
    .is_ok());
}

#[test]
fn only_the_known_fields_of_a_padded_body_are_recorded() {
    let body = map(json!({
        "method": {"name": "glance-download", "glance_region": "REGION1", "glance_image_id": ID,
                   "pad": "x".repeat(30_000)},
        "stores": ["local"], "all_stores": false,
        "pad": vec![0; 15_000],
    }));
    let fields = check_fields(&body).unwrap();
    let recorded = fields.recorded.to_string();
    assert!(recorded.len() < 512, "{recorded}");
    assert!(!recorded.contains("pad"));
    assert_eq!(
        fields.recorded,
        json!({"method": {"name": "glance-download", "glance_image_id": ID,
                          "glance_region": "REGION1", "glance_service_interface": "public"},
               "stores": ["local"], "all_stores": false})
    );
}

#[test]
fn duplicate_keys_classify_as_in_python_the_last_wins() {
    let last = br#"{"method": {"name": "web-download", "name": "glance-download"}}"#;
    assert!(matches!(classify(last), Classified::GlanceDownload(_)));
    let first = br#"{"method": {"name": "glance-download", "name": "web-download"}}"#;
    assert_eq!(classify(first), Classified::NotOurs);
    let methods = br#"{"method": {"name": "glance-download"}, "method": {"name": "x"}}"#;
    assert_eq!(classify(methods), Classified::NotOurs);
}

#[test]
fn glance_download_bodies_serde_cannot_read_are_refused_not_passed_on() {
    let gd = r#""method": {"name": "glance-download"}"#;
    for extra in [
        "NaN".to_string(),
        "Infinity".to_string(),
        "-Infinity".to_string(),
        "1e400".to_string(),
        "9".repeat(400),
        r#""\udc00""#.to_string(),
        format!("{}{}", "[".repeat(129), "]".repeat(129)),
    ] {
        let body = format!("{{{gd}, \"x\": {extra}}}");
        assert_eq!(
            classify(body.as_bytes()),
            Classified::Unreadable,
            "{extra:.20}"
        );
    }
    // The same oddities in a body for another method are not ours.
    let other = br#"{"method": {"name": "web-download"}, "x": NaN}"#;
    assert_eq!(classify(other), Classified::NotOurs);
    // What Python refuses too is passed on (Glance answers 400 itself).
    for refused in [
        &b"\xef\xbb\xbf{\"method\": {\"name\": \"glance-download\"}}"[..],
        b"{\"method\": {\"name\": \"glance-download\"},}",
        b"{\"method\": {\"name\": \"Glance-Download\"}}",
    ] {
        assert_eq!(classify(refused), Classified::NotOurs);
    }
}
