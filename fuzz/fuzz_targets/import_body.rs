//! The body of `POST /v2/images/{id}/import`, as a client sends it: classified, then checked in
//! upstream Glance's order (flags, then the glance-download fields).
#![no_main]

use glance_download_sidecar::api::{check_fields, check_flags, classify, Classified, METHOD};
use glance_download_sidecar::glance::ImageId;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
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
