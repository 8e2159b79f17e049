//! Shared HTTP plumbing: the boxed body type, small response builders, bounded body reads, the
//! outbound client, and the accept loop used by the sidecar and by the simulated cloud.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The error type carried by every boxed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type used for requests we send and responses we serve.
pub type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

/// Outbound HTTP/1.1 client (plain or TLS) with connection pooling.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, BoxBody>;

/// Content type of Glance's image PATCH body (JSON patch, API v2.1 flavour).
pub const JSON_PATCH: &str = "application/openstack-images-v2.1-json-patch";

/// Request-id header Glance and Keystone send back on every response.
pub const REQUEST_ID: &str = "x-openstack-request-id";

/// Builds the pooled outbound client trusting the platform's roots.
pub fn client(connect_timeout: Duration) -> HttpClient {
    client_with_tls(connect_timeout, crate::tls::system_roots())
}

/// Builds the pooled outbound client (http and https) with a bounded connect timeout.
pub fn client_with_tls(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(16)
        .build(connector)
}

/// An empty body.
pub fn empty() -> BoxBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body holding `data` in one frame.
pub fn full(data: impl Into<Bytes>) -> BoxBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes a streaming body, keeping its frames as they come.
pub fn boxed<B>(body: B) -> BoxBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A JSON response with a fixed `Content-Length`.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<BoxBody> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The error page webob renders for clients that do not ask for JSON (what Glance sends by
/// default, and what python-glanceclient parses); `body_html` is already escaped.
pub fn html_error(status: StatusCode, body_html: &str) -> Response<BoxBody> {
    let title = status.canonical_reason().unwrap_or("Error");
    let code = format!("{} {title}", status.as_u16());
    let page = format!(
        "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {body_html}<br /><br />\n\n\n\n </body>\n</html>"
    );
    let mut response = Response::new(full(page));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    response
}

/// HTML-escapes text, as webob does (`'` as `&#x27;`).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A response with no body.
pub fn status_response(status: StatusCode) -> Response<BoxBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

/// Whether a URI's authority, if it names a port, names a valid one (1–65535).
///
/// The `http` crate accepts `host:92920` or `host:FAULT` as an authority but reports no port, and
/// clients then fall back to port 80 or 443: such URLs must be refused, not silently rerouted.
pub fn port_is_valid(uri: &http::Uri) -> bool {
    let Some(authority) = uri.authority() else {
        return true;
    };
    let text = authority.as_str();
    let host_port = text.rsplit_once('@').map_or(text, |(_, h)| h);
    let after_host = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => &host_port[end + 1..],
            None => return false,
        }
    } else {
        host_port
    };
    match after_host.rsplit_once(':') {
        None => true,
        Some((_, port)) => port.parse::<u16>().is_ok_and(|p| p > 0),
    }
}

/// An error and its causes on one line (hyper's errors keep the useful part in `source()`).
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why a bounded read of a body failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is longer than the caller allows.
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The connection failed while the body was being read.
    #[error("body read failed: {0}")]
    Io(#[source] BoxError),
}

/// Reads a whole body, refusing more than `limit` bytes (checked on the declared size first).
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Io(e.into()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(ReadError::TooLarge { limit });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `service` on `listener` until `shutdown` fires, one task per connection, over TLS when
/// `tls` is given.
///
/// Connections in progress are asked to finish gracefully when `shutdown` fires.
pub async fn serve<S, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    shutdown: CancellationToken,
) where
    S: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<BoxBody>> + Send + 'static,
{
    serve_with(listener, tls, HEADER_READ_TIMEOUT, service, shutdown).await
}

/// [`serve`] with a chosen limit on how long a client may take to send its request head.
pub async fn serve_with<S, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    service: S,
    shutdown: CancellationToken,
) where
    S: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<BoxBody>> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "Failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, header_timeout, service, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, peer, header_timeout, service, shutdown).await
                        }
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<I, S, F>(
    io: I,
    peer: SocketAddr,
    header_timeout: Duration,
    service: S,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let fut = service(req, peer);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BUF)
        .serve_connection(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "Connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// How long a client may take to send its request headers by default (slow clients are cut off).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request head (line and headers) accepted; larger ones are refused by hyper.
pub const MAX_HEADER_BUF: usize = 256 * 1024;
