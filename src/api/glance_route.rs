//! Which requests upstream Glance routes to its import action (`import_image`), read the way its
//! WSGI stack reads them, so that none that Glance would treat as an import passes the sidecar
//! unseen. Glance 33 behind uwsgi or eventlet (both measured):
//!
//! - The server percent-decodes the path into `PATH_INFO` (`%69mport` is `import`, `%2F` is `/`).
//!   uwsgi first removes dot segments from the raw path (RFC 3986 §5.2.4: `/v2/x/../images` is
//!   `/v2/images`); eventlet does not. An encoded dot (`%2e`) is never a dot segment.
//! - Paste's `urlmap` collapses runs of `/` (`//v2//images` is `/v2/images`); a trailing `/` stays
//!   and matches no route.
//! - Version negotiation takes the API version from an `Accept` header starting with
//!   `application/vnd.openstack.images-` (the path then carries none), else from the first path
//!   segment: `v2` and `v2.N` all lead to the v2 router.
//! - The router (Routes) honours a `_method` query parameter over the request method:
//!   `PUT …/import?_method=POST` is an import.
//!
//! The match here is a superset of Glance's: every version `v2.N` (Glance's list depends on its
//! configuration), both server flavours, both versioning modes where an `Accept` header could
//! select either. A request matched here that Glance would not import is handled (and so
//! refused) by the sidecar instead of reaching Glance; what Glance would import never slips by.

use http::header::ACCEPT;
use http::{HeaderMap, Method, Uri};

/// The `Accept` prefix of Glance's media-type versioning.
const VND_PREFIX: &str = "application/vnd.openstack.images-";

/// The image id of a request Glance would route to `import_image`, percent-decoded, or `None`.
pub fn import_target(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if !posts(method, uri.query()) {
        return None;
    }
    let raw = uri.path().as_bytes();
    let media_type_versioning = headers
        .get_all(ACCEPT)
        .iter()
        .any(|v| contains_ignore_case(v.as_bytes(), VND_PREFIX.as_bytes()));
    [raw.to_vec(), remove_dot_segments(raw)]
        .iter()
        .find_map(|path| match_import(&percent_decode(path), media_type_versioning))
}

/// Whether Glance's router sees a `POST`: the method itself or a `_method` query parameter
/// (Routes upper-cases it, with Python's full Unicode mapping).
fn posts(method: &Method, query: Option<&str>) -> bool {
    if method == Method::POST {
        return true;
    }
    query.is_some_and(|query| {
        query
            .split(['&', ';'])
            .filter_map(|pair| pair.split_once('='))
            .any(|(key, value)| {
                form_decode(key) == "_method" && form_decode(value).to_uppercase() == "POST"
            })
    })
}

/// Whether the decoded path names `images/{id}/import` under the v2 API.
fn match_import(path: &[u8], media_type_versioning: bool) -> Option<String> {
    // A trailing `/` is part of the path Routes matches (and then matches nothing).
    if path.last() == Some(&b'/') {
        return None;
    }
    let segments: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .collect();
    let tail = match segments.as_slice() {
        [version, rest @ ..] if is_v2(version) => Some(rest),
        _ => None,
    };
    let candidates = tail
        .into_iter()
        .chain(media_type_versioning.then_some(segments.as_slice()));
    for candidate in candidates {
        if let [b"images", id, b"import"] = candidate {
            return Some(String::from_utf8_lossy(id).into_owned());
        }
    }
    None
}

/// `v2` or `v2.` followed by digits.
fn is_v2(segment: &[u8]) -> bool {
    match segment.strip_prefix(b"v2") {
        Some([]) => true,
        Some([b'.', minor @ ..]) => !minor.is_empty() && minor.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Decodes every valid `%XX`; anything else is kept as it is (as eventlet and uwsgi do).
pub(super) fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A query-string component: `+` is a space, then percent-decoding.
fn form_decode(text: &str) -> String {
    let spaced: Vec<u8> = text
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    String::from_utf8_lossy(&percent_decode(&spaced)).into_owned()
}

/// RFC 3986 §5.2.4 on an absolute path, as uwsgi applies it before decoding.
pub(super) fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut output: Vec<&[u8]> = Vec::new();
    let mut segments = path.split(|&b| b == b'/').skip(1).peekable();
    let mut trailing = false;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            b"." => trailing = last,
            b".." => {
                output.pop();
                trailing = last;
            }
            other => {
                output.push(other);
                trailing = false;
            }
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for segment in &output {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if trailing || out.is_empty() {
        out.push(b'/');
    }
    out
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b3a6a3e-1111-4111-8111-111111111111";

    fn target(method: &str, uri: &str, accept: Option<&str>) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(ACCEPT, accept.parse().unwrap());
        }
        import_target(&method.parse().unwrap(), &uri.parse().unwrap(), &headers)
    }

    /// Each case as Glance 33 routed it behind uwsgi 2.0.31 and eventlet 0.41.3.
    #[test]
    fn routes_as_glance_does() {
        let id = Some(ID.to_string());
        for (method, path, accept) in [
            ("POST", format!("/v2/images/{ID}/import"), None),
            ("POST", format!("/v2/images/{ID}/%69mport"), None),
            ("POST", format!("/v2/images/{ID}/impor%74"), None),
            ("POST", format!("//v2//images//{ID}//import"), None),
            ("POST", format!("/v2/images/{ID}%2Fimport"), None),
            ("POST", format!("/v2%2Fimages%2F{ID}%2Fimport"), None),
            ("POST", format!("/v2/images/{ID}/import?x=1"), None),
            ("POST", format!("/v2.0/images/{ID}/import"), None),
            ("POST", format!("/v2.9/images/{ID}/%69mport"), None),
            ("POST", format!("/v2.17/images/{ID}/import"), None),
            // uwsgi removes dot segments before decoding.
            ("POST", format!("/v2/./images/{ID}/import"), None),
            ("POST", format!("/v2/x/../images/{ID}/import"), None),
            ("POST", format!("/../v2/images/{ID}/import"), None),
            ("POST", format!("/./v2/images/{ID}/import"), None),
            // Media-type versioning: the version comes from `Accept`, the path has none.
            (
                "POST",
                format!("/images/{ID}/import"),
                Some("application/vnd.openstack.images-v2"),
            ),
            // Routes' `_method` override.
            ("PUT", format!("/v2/images/{ID}/import?_method=POST"), None),
            ("GET", format!("/v2/images/{ID}/import?_method=post"), None),
            (
                "PATCH",
                format!("/v2/images/{ID}/import?a=1&_method=P%4FST"),
                None,
            ),
        ] {
            assert_eq!(target(method, &path, accept), id, "{method} {path}");
        }
    }

    #[test]
    fn what_glance_does_not_import_is_not_matched() {
        for (method, path) in [
            ("POST", format!("/v2/images/{ID}/IMPORT")),
            ("POST", format!("/v2/images/{ID}/import/")),
            ("POST", format!("/v2/images/{ID}/import//")),
            ("POST", format!("/v2/images/{ID}/import%2F")),
            ("POST", format!("/v2/images/{ID}/import/.")),
            ("POST", format!("/v2/images/{ID}/import;x=1")),
            ("POST", format!("/v2/images/{ID}/import.json")),
            ("POST", format!("/v2/images/{ID}/import%20")),
            ("POST", format!("/v2/images/{ID}/import%3Fa")),
            ("POST", format!("/v2/images/{ID}/%2e/import")),
            ("POST", format!("/V2/images/{ID}/import")),
            ("POST", format!("/v2/Images/{ID}/import")),
            ("POST", format!("/v3/images/{ID}/import")),
            ("POST", format!("/images/{ID}/import")),
            ("GET", format!("/v2/images/{ID}/import")),
            ("PUT", format!("/v2/images/{ID}/import?_method=GET")),
            ("PUT", format!("/v2/images/{ID}/import?x_method=POST")),
            ("post", format!("/v2/images/{ID}/import")),
            ("POST", format!("/v2/images/{ID}/tasks")),
            ("POST", "/v2/images".to_string()),
        ] {
            assert_eq!(target(method, &path, None), None, "{method} {path}");
        }
    }

    #[test]
    fn the_id_is_decoded_and_kept_as_sent() {
        assert_eq!(
            target("POST", "/v2/images/%41b;x=1/import", None).as_deref(),
            Some("Ab;x=1")
        );
        assert_eq!(
            target("POST", "/v2/images/%FF/import", None).as_deref(),
            Some("\u{fffd}")
        );
    }

    #[test]
    fn python_upper_cases_to_post() {
        // "poﬆ".upper() == "POST" in Python, as in Rust.
        assert!(posts(&Method::PUT, Some("_method=po%EF%AC%86")));
        assert!(posts(&Method::PUT, Some("_method=po%C5%BFt")));
        assert!(!posts(&Method::PUT, Some("_method=")));
    }

    #[test]
    fn dot_segments_are_removed_as_rfc_3986_says() {
        for (input, output) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("/../a", "/a"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a//..//b", "/a//b"),
            ("/a/%2e/b", "/a/%2e/b"),
            ("/", "/"),
        ] {
            assert_eq!(
                remove_dot_segments(input.as_bytes()),
                output.as_bytes(),
                "{input}"
            );
        }
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode(b"%69%2f%"), b"i/%");
        assert_eq!(percent_decode(b"%6"), b"%6");
        assert_eq!(percent_decode(b"%zz%41"), b"%zzA");
    }
}
