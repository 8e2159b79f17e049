//! The body of `POST /v2/images/{id}/import`, as a client sends it: classified, then checked in
//! upstream Glance's order (flags, then the glance-download fields).
//!
//! Classification agrees with Glance's reading (Python's `json`, the last duplicate key wins):
//! a body is the sidecar's (handled or refused) exactly when that reading names glance-download.
#![no_main]

use glance_download_sidecar::api::{
    check_fields, check_flags, classify, method_name, Classified, MethodName, METHOD,
};
use glance_download_sidecar::glance::ImageId;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    agrees_with_python(data);
    duplicate_names(data);
    let Classified::GlanceDownload(map) = classify(data) else {
        return;
    };
    assert_eq!(map["method"]["name"], METHOD);
    let _ = check_flags(&map);
    let Ok(fields) = check_fields(&map) else {
        return;
    };
    // The remote id goes into a URL path: it must be canonical.
    let id = fields.remote_image_id.as_str();
    assert!(is_canonical_uuid(id), "remote image id {id:?}");
    assert_eq!(ImageId::parse(id).as_ref().map(ImageId::as_str), Some(id));
    assert!(!fields.region.is_empty() && fields.region.len() <= 255);
    assert!(!fields.interface.is_empty() && fields.interface.len() <= 64);
    // The recorded body carries the interface that is used, defaulted to `public`.
    assert_eq!(
        fields.recorded["method"]["glance_service_interface"],
        Value::from(fields.interface.as_str())
    );
    assert_eq!(fields.recorded["method"]["name"], METHOD);
});

fn is_canonical_uuid(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The sidecar takes a body (to handle or refuse) exactly when Python's reading names
/// glance-download; a body it handles is one `serde_json` read the same way.
fn agrees_with_python(data: &[u8]) {
    let python = method_name(data) == MethodName::Text(METHOD.as_bytes().to_vec());
    match classify(data) {
        Classified::NotOurs => assert!(!python, "passed on: {:?}", String::from_utf8_lossy(data)),
        Classified::GlanceDownload(_) | Classified::Unreadable => {
            assert!(python, "taken: {:?}", String::from_utf8_lossy(data))
        }
    }
}

/// `{"method": {"name": A, ..., "name": B}}` built from the input: only the last name counts.
fn duplicate_names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{0}');
    let (Some(first), Some(last)) = (parts.next(), parts.next()) else {
        return;
    };
    let middle = parts.next().unwrap_or_default();
    let middle = serde_json::to_string(middle).unwrap();
    for (a, b) in [(first, last), (last, first)] {
        let body = format!(
            r#"{{"method": {{"name": {}, "x": {middle}, "name": {}}}}}"#,
            serde_json::to_string(a).unwrap(),
            serde_json::to_string(b).unwrap()
        );
        let ours = matches!(classify(body.as_bytes()), Classified::GlanceDownload(_));
        assert_eq!(ours, b == METHOD, "{body}");
    }
}
