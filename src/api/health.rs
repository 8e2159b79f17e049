//! `GET /healthcheck` (liveness plus upstream reachability) and `GET /metrics`.

use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use serde_json::json;

use crate::http::{empty, full, json_response, BoxBody};

use super::App;

/// How long the upstream probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 when the sidecar is up and the upstream Glance answers; 503 when Glance does not.
pub(super) async fn healthcheck(app: &App) -> Response<BoxBody> {
    let probe = async {
        let request = Request::get(format!("{}/healthcheck", app.config.glance_url))
            .body(empty())
            .ok()?;
        app.client.request(request).await.ok()
    };
    let reachable = matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(_))
    );
    let (status, upstream) = if reachable {
        (StatusCode::OK, "reachable")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unreachable")
    };
    json_response(
        status,
        &json!({"status": if reachable { "OK" } else { "DEGRADED" }, "upstream": upstream}),
    )
}

/// Prometheus text exposition.
pub(super) fn metrics(app: &App) -> Response<BoxBody> {
    let mut response = Response::new(full(app.metrics.render(&app.tasks)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
