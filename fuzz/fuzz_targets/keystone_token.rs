//! A Keystone v3 token document (`GET /v3/auth/tokens`) and the image-endpoint lookup in its
//! catalog.
//!
//! Input: an optional first line `REGION INTERFACE` (the `glance_region` and
//! `glance_service_interface` of an import request), then the token document. Without that line
//! the whole input is the document. Every region/interface pair found in the catalog is looked up
//! as well.
#![no_main]

mod oracle;

use glance_download_sidecar::keystone::{parse_token, Catalog};
use libfuzzer_sys::fuzz_target;
use oracle::port_is_kept;

fuzz_target!(|data: &[u8]| {
    let (query, doc) = split_query(data);
    let Ok(identity) = parse_token(doc) else {
        return;
    };
    let _ = identity.is_admin();
    lookup(&identity.catalog, query.0, query.1);
    let pairs: Vec<(String, String)> = identity
        .catalog
        .0
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .take(16)
        .flat_map(|e| {
            let region = e
                .region_id
                .clone()
                .or_else(|| e.region.clone())
                .unwrap_or_default();
            [
                (region.clone(), e.interface.clone()),
                (region.to_ascii_lowercase(), "public".into()),
            ]
        })
        .collect();
    for (region, interface) in &pairs {
        lookup(&identity.catalog, region, interface);
    }
});

fn lookup(catalog: &Catalog, region: &str, interface: &str) {
    let Ok(url) = catalog.image_endpoint(region, interface) else {
        return;
    };
    // The URL is used as `{url}/v2/images/...`: it must be an http(s) URL with a host, and it
    // must come from an image endpoint of that region.
    let uri: http::Uri = url.parse().expect("endpoint parses as a URI");
    assert!(matches!(uri.scheme_str(), Some("http" | "https")), "{url}");
    assert!(uri.authority().is_some(), "{url}");
    assert!(port_is_kept(&uri), "{url}: the port is dropped");
    let from_catalog = catalog
        .0
        .iter()
        .filter(|s| s.kind == "image")
        .flat_map(|s| s.endpoints.iter())
        .any(|e| {
            let name = e
                .region_id
                .as_deref()
                .or(e.region.as_deref())
                .unwrap_or_default();
            name.eq_ignore_ascii_case(region) && e.url.starts_with(url.as_str())
        });
    assert!(from_catalog, "{url} is not an image endpoint of {region}");
}

/// Splits `REGION INTERFACE\n` off the front; defaults when there is no such line.
fn split_query(data: &[u8]) -> ((&str, &str), &[u8]) {
    const DEFAULT: (&str, &str) = ("RegionOne", "public");
    if data.first() == Some(&b'{') {
        return (DEFAULT, data);
    }
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return (DEFAULT, data);
    };
    let Ok(line) = std::str::from_utf8(&data[..nl]) else {
        return (DEFAULT, data);
    };
    let (region, interface) = line.split_once(' ').unwrap_or((line, "public"));
    ((region, interface), &data[nl + 1..])
}
