//! The pass-through: every request the sidecar does not handle goes to the upstream Glance
//! unchanged, and its answer comes back unchanged — except an image data download that asks for
//! the compact coding, whose answer comes back coded ([`crate::compact`]).
//!
//! Bodies stream both ways (hyper's own backpressure: nothing is buffered whole), status codes,
//! error bodies and `x-openstack-request-id` are passed verbatim. Hop-by-hop headers (RFC 9110
//! §7.6.1: `Connection` and the headers it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`) are dropped in each direction, as a proxy must.
//!
//! An exchange that stops making progress for `stall_timeout` is cut: a body stalled in either
//! direction, or no answer from the upstream once it stopped taking the request body (`504`).

use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Response, Uri};

use crate::http::{boxed, BoxBody, Progress, StallBody};
use crate::metrics::Metrics;

use super::{error::ApiError, App};

/// Hop-by-hop headers (RFC 9110 §7.6.1, RFC 2616 §13.5.1): they describe one connection, so
/// they are never forwarded in either direction.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including those listed in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The upstream URI for a request path: the Glance base URL joined with path and query.
pub fn upstream_uri(glance_url: &str, uri: &Uri) -> Result<Uri, ApiError> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    // `*` (asterisk-form) would be glued onto the host and change the port: refuse it.
    if !path.starts_with('/') {
        return Err(ApiError::BadRequest("The request URI is not valid.".into()));
    }
    format!("{glance_url}{path}")
        .parse()
        .map_err(|_| ApiError::BadRequest("The request URI is not valid.".into()))
}

/// Sends `request` (any body) to the upstream Glance and returns its answer as it came.
pub(super) async fn send(
    app: &App,
    request: Request<BoxBody>,
) -> Result<Response<BoxBody>, ApiError> {
    let (mut parts, body) = request.into_parts();
    parts.uri = upstream_uri(&app.config.glance_url, &parts.uri)?;
    strip_hop_by_hop(&mut parts.headers);
    Metrics::inc(&app.metrics.proxied_requests);
    let stall = app.config.stall_timeout;
    let progress = Progress::new();
    let body = boxed(StallBody::new(body, stall, progress.clone()));
    let response = until_stalled(
        app.client.request(Request::from_parts(parts, body)),
        &progress,
        stall,
    )
    .await
    .ok_or(ApiError::GatewayTimeout)?
    .map_err(|e| ApiError::BadGateway(format!("upstream Glance: {e}")))?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = StallBody::new(boxed(body), stall, Progress::new());
    Ok(Response::from_parts(parts, boxed(body)))
}

/// Awaits the upstream's answer while the exchange makes progress: `None` once neither a request
/// body frame went out nor the answer came for `stall` (the upstream stopped reading, or does
/// not answer once it has the whole request). An upload that keeps flowing is never cut.
async fn until_stalled<F: std::future::Future>(
    answer: F,
    progress: &Progress,
    stall: std::time::Duration,
) -> Option<F::Output> {
    let mut answer = std::pin::pin!(answer);
    loop {
        let deadline = progress.last() + stall;
        tokio::select! {
            output = answer.as_mut() => return Some(output),
            _ = tokio::time::sleep_until(deadline) => {
                if progress.last() + stall <= tokio::time::Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// Forwards a request whose body has not been touched. An image data download that asks for
/// the compact coding (and `compact_transfer` is on) is forwarded without `Accept-Encoding` and
/// its answer coded ([`crate::compact`]).
pub(super) async fn forward(
    app: &App,
    mut request: Request<hyper::body::Incoming>,
) -> Result<Response<BoxBody>, ApiError> {
    let compact = app.config.compact_transfer
        && crate::compact::wanted(request.method(), request.uri().path(), request.headers());
    if compact {
        request.headers_mut().remove(header::ACCEPT_ENCODING);
    }
    let response = send(app, request.map(boxed)).await?;
    Ok(if compact {
        crate::compact::coded_response(response)
    } else {
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
        headers.insert("x-secret-hop", "1".parse().unwrap());
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        headers.insert("x-openstack-request-id", "req-1".parse().unwrap());
        headers.insert("x-auth-token", "t".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"x-openstack-request-id") && names.contains(&"x-auth-token"));
    }

    #[test]
    fn only_origin_form_targets_are_forwarded() {
        let star: Uri = "*".parse().unwrap();
        assert!(upstream_uri("http://127.0.0.1:9292", &star).is_err());
        // An absolute-form target keeps only its path: the upstream is always the configured one.
        let absolute: Uri = "http://evil.example/x?y".parse().unwrap();
        let up = upstream_uri("http://127.0.0.1:9292", &absolute).unwrap();
        assert_eq!(up.to_string(), "http://127.0.0.1:9292/x?y");
    }

    #[test]
    fn upstream_uri_keeps_path_and_query() {
        let uri: Uri = "/v2/images?limit=2&marker=x".parse().unwrap();
        let up = upstream_uri("http://127.0.0.1:9292/image", &uri).unwrap();
        assert_eq!(
            up.to_string(),
            "http://127.0.0.1:9292/image/v2/images?limit=2&marker=x"
        );
    }
}
