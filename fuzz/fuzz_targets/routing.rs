//! What the proxy takes from a client request and from Glance's answers: the request target
//! joined to the Glance URL, hop-by-hop header removal, the caller's token header, and the
//! discovery rewriting (`GET /v2/info/import` body, `OpenStack-image-import-methods` header).
//!
//! Input, shaped like an HTTP/1 message: the request target on the first line, `name: value`
//! header lines, an empty line, then a body (a discovery document).
#![no_main]

use glance_download_sidecar::api::{
    add_method, import_target, strip_hop_by_hop, upstream_uri, with_method, HOP_BY_HOP, METHOD,
};
use glance_download_sidecar::keystone::Token;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};
use http::Uri;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const BASES: [&str; 3] = [
    "http://127.0.0.1:9292",
    "http://glance.example:9292/image",
    "http://[::1]:80",
];

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let headers = header_map(lines);

    if let Ok(uri) = Uri::try_from(target) {
        for base in BASES {
            route(base, &uri);
        }
        import_route(&uri, &headers);
    }
    hop_by_hop(headers.clone());
    for value in headers.values() {
        if let Ok(text) = value.to_str() {
            methods_header(text);
        }
    }
    if let Some(value) = headers.get("x-auth-token") {
        if let Some(token) = Token::parse(value.as_bytes()) {
            assert_eq!(token.expose().as_bytes(), value.as_bytes());
            // `Debug` never depends on the secret.
            let other = Token::parse(b"x").expect("a valid token");
            assert_eq!(format!("{token:?}"), format!("{other:?}"));
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        methods_header(text);
    }
    discovery(body);
});

fn header_map<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines.take(64) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    headers
}

/// Whatever the client puts in the request target, the request goes to the configured Glance.
fn route(base: &str, uri: &Uri) {
    let Ok(upstream) = upstream_uri(base, uri) else {
        return;
    };
    let base: Uri = base.parse().unwrap();
    assert_eq!(upstream.scheme(), base.scheme(), "{uri} -> {upstream}");
    assert_eq!(
        upstream.authority(),
        base.authority(),
        "{uri} -> {upstream}"
    );
    assert!(
        upstream
            .path()
            .starts_with(base.path().trim_end_matches('/')),
        "{uri} -> {upstream}"
    );
}

/// No hop-by-hop header survives, nor any header `Connection` names; every other one does.
fn hop_by_hop(mut headers: HeaderMap) {
    let before = headers.clone();
    let named: Vec<String> = before
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    strip_hop_by_hop(&mut headers);
    for name in HOP_BY_HOP {
        assert!(!headers.contains_key(name), "{name} kept");
    }
    for name in &named {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            assert!(
                !headers.contains_key(&name),
                "{name} named in Connection but kept"
            );
        }
    }
    for name in before.keys() {
        let dropped =
            HOP_BY_HOP.contains(&name.as_str()) || named.iter().any(|n| n == name.as_str());
        if !dropped {
            let kept: Vec<_> = headers.get_all(name).iter().collect();
            let had: Vec<_> = before.get_all(name).iter().collect();
            assert_eq!(kept, had, "{name} changed");
        }
    }
}

/// `with_method` lists glance-download exactly once, and a valid header value stays valid.
fn methods_header(current: &str) {
    let listed = current.split(',').any(|m| m.trim() == METHOD);
    match with_method(current) {
        None => assert!(listed, "{current:?}"),
        Some(out) => {
            assert!(!listed, "{current:?}");
            assert_eq!(
                out.split(',').filter(|m| m.trim() == METHOD).count(),
                1,
                "{out:?}"
            );
            if HeaderValue::from_str(current).is_ok() {
                assert!(
                    HeaderValue::from_str(&out).is_ok(),
                    "{current:?} -> {out:?}"
                );
            }
        }
    }
}

/// The rewritten discovery document is JSON listing glance-download (once, unless it already
/// was listed more often).
fn discovery(body: &[u8]) {
    let Some(out) = add_method(body) else {
        return;
    };
    let count = |doc: &Value| {
        doc["import-methods"]["value"]
            .as_array()
            .expect("import-methods.value is a list")
            .iter()
            .filter(|m| *m == METHOD)
            .count()
    };
    let before: Value = serde_json::from_slice(body).expect("add_method accepted non-JSON");
    let after: Value = serde_json::from_slice(&out).expect("add_method output is JSON");
    assert_eq!(count(&after), count(&before).max(1));
    let again: Value =
        serde_json::from_slice(&add_method(&out).expect("still a discovery document"))
            .expect("JSON");
    assert_eq!(count(&again), count(&after));
}

/// A path Glance reads as `/v2/images/{id}/import` (decoded, `//` collapsed, the version `v2` or
/// `v2.N`) is always taken as an import, whatever else the request carries; a `POST` to it stays
/// one whatever its `Accept` header, and the id is the decoded segment.
fn import_route(uri: &Uri, headers: &HeaderMap) {
    let post = http::Method::POST;
    let found = import_target(&post, uri, headers);
    let decoded = decode(uri.path().as_bytes());
    if decoded.last() == Some(&b'/') {
        return;
    }
    let segments: Vec<&[u8]> = decoded
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .collect();
    if let [version, b"images", id, b"import"] = segments.as_slice() {
        let v2 = *version == b"v2"
            || version.strip_prefix(b"v2.").is_some_and(|minor| {
                !minor.is_empty() && minor.iter().all(u8::is_ascii_digit)
            });
        if v2 {
            assert_eq!(
                found.as_deref(),
                Some(String::from_utf8_lossy(id).as_ref()),
                "{uri}"
            );
            assert_eq!(import_target(&post, uri, &HeaderMap::new()), found, "{uri}");
        }
    }
    // Whatever the method, `?_method=POST` makes it a POST to Glance's router.
    if found.is_some() {
        let query = match uri.query() {
            Some(q) => format!("{q}&_method=POST"),
            None => "_method=POST".to_string(),
        };
        if let Ok(put) = format!("{}?{query}", uri.path()).parse::<Uri>() {
            assert!(import_target(&http::Method::PUT, &put, headers).is_some(), "{put}");
        }
    }
}

/// Percent-decoding written apart from the crate's own.
fn decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}
