//! Shared HTTP plumbing: the boxed body type, small response builders, bounded body reads, the
//! outbound client, and the accept loop used by the sidecar and by the simulated cloud.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// How long an idle outbound connection is kept for reuse: shorter than the keep-alive timeouts
/// of the servers in front of Glance and Keystone (Apache's default is 5 s), so a connection the
/// server is about to close is not picked for a request that would then fail.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Builds the pooled outbound client trusting the platform's roots.
pub fn client(connect_timeout: Duration) -> HttpClient {
    client_with_tls(connect_timeout, crate::tls::system_roots())
}

/// Builds the pooled outbound client (http and https) with a bounded connect timeout.
pub fn client_with_tls(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> HttpClient {
    builder(connect_timeout, tls, None)
}

/// hyper's read buffer bound (`max_buf_size`) for the connections reading an import's source.
///
/// By default hyper grows a connection's read buffer, and so the frames it reads, to ~500 KiB;
/// with this bound they settle at ~250 KiB (the buffer's capacity doubles as it grows, so a read
/// may fill up to twice the bound). With several `Range` segments read at once, glibc keeps freed
/// buffers of that size in the heap, beyond what the reorder window bounds: an 8-stream copy over
/// the emulated 80 ms link peaked at 52–63 instead of 59–75 MiB, at the same CPU per byte in
/// `bench --simulated` (BENCHMARKS.md §8.2).
pub const SOURCE_READ_BUFFER: usize = 128 * 1024;

/// The client an import reads its source's data with: hyper's read buffer bounded by
/// [`SOURCE_READ_BUFFER`].
pub fn source_client(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> HttpClient {
    builder(connect_timeout, tls, Some(SOURCE_READ_BUFFER))
}

fn builder(
    connect_timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    max_read_buffer: Option<usize>,
) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(16);
    if let Some(max) = max_read_buffer {
        builder.http1_max_buf_size(max);
    }
    builder.build(connector)
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
    serve_with(listener, tls, ServeLimits::default(), service, shutdown).await
}

/// The bounds of an accept loop.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// How long a client may take to send a request head, counted from the end of the previous
    /// exchange on a kept-alive connection too (so it is also the idle keep-alive timeout).
    pub header_timeout: Duration,
    /// How long a write to the client may make no progress (a client that stops reading).
    pub write_stall: Duration,
    /// Connections served at once; beyond it the loop stops accepting, so further clients wait
    /// in the kernel's listen backlog.
    pub max_connections: usize,
    /// Connections open now, kept up to date for `/metrics`.
    pub open: Arc<AtomicU64>,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_timeout: HEADER_READ_TIMEOUT,
            write_stall: WRITE_STALL_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            open: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// [`serve`] within chosen [`ServeLimits`].
pub async fn serve_with<S, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ServeLimits,
    service: S,
    shutdown: CancellationToken,
) where
    S: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A permit first: while every connection slot is taken nothing is accepted.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
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
        let stream = StallIo::new(stream, limits.write_stall);
        let service = service.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        let header_timeout = limits.header_timeout;
        let open = OpenConnection::new(permit, limits.open.clone());
        tokio::spawn(async move {
            let _open = open;
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

/// A served connection: holds its slot and counts itself open while it lives.
struct OpenConnection {
    _permit: OwnedSemaphorePermit,
    open: Arc<AtomicU64>,
}

impl OpenConnection {
    fn new(permit: OwnedSemaphorePermit, open: Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            _permit: permit,
            open,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
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

/// How long a write to a client may make no progress by default.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections served at once by default.
pub const MAX_CONNECTIONS: usize = 1024;

/// A stream whose writes fail with `TimedOut` once they have made no progress for `stall`:
/// a peer that stops reading cannot hold a connection (and what it pins) forever.
pub struct StallIo<I> {
    inner: I,
    timer: StallTimer,
}

/// The stall deadline of one stream: armed `stall` from the first poll that made no progress,
/// disarmed by progress. Its timer is allocated once and reset, never once per stall, since a
/// streaming body stalls briefly between most frames.
struct StallTimer {
    stall: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl StallTimer {
    fn new(stall: Duration) -> Self {
        StallTimer {
            stall,
            sleep: None,
            armed: false,
        }
    }

    /// For a poll that made no progress: arms the deadline if it is not armed yet (registering
    /// `cx` for its wake-up) and says whether it has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.armed {
            let at = tokio::time::Instant::now() + self.stall;
            match self.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = true;
        }
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }

    /// Progress was made: the next stall starts a new deadline.
    fn progress(&mut self) {
        self.armed = false;
    }
}

impl<I> StallIo<I> {
    pub fn new(inner: I, stall: Duration) -> Self {
        StallIo {
            inner,
            timer: StallTimer::new(stall),
        }
    }

    /// Passes a write's outcome on; a pending write arms the stall deadline, progress clears it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Pending => {
                if self.timer.expired(cx) {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the peer stopped reading",
                    )))
                } else {
                    Poll::Pending
                }
            }
            ready => {
                self.timer.progress();
                ready
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for StallIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for StallIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

/// When a body last made progress, shared between the body and whoever watches it.
#[derive(Debug)]
pub struct Progress {
    start: tokio::time::Instant,
    last_micros: AtomicU64,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            start: tokio::time::Instant::now(),
            last_micros: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let micros = self.start.elapsed().as_micros().min(u64::MAX as u128) as u64;
        self.last_micros.fetch_max(micros, Ordering::Relaxed);
    }

    /// The last time progress was made (creation counts as progress).
    pub fn last(&self) -> tokio::time::Instant {
        self.start + Duration::from_micros(self.last_micros.load(Ordering::Relaxed))
    }
}

/// A body stalled: no frame for the allowed time.
#[derive(Debug, thiserror::Error)]
#[error("no data for {0:?}")]
pub struct Stalled(pub Duration);

/// A body that fails with [`Stalled`] when, polled, it yields no frame for `stall`; every frame
/// is recorded in `progress`. A body that keeps flowing is never cut, however long it runs.
pub struct StallBody {
    inner: BoxBody,
    progress: Arc<Progress>,
    timer: StallTimer,
}

impl StallBody {
    pub fn new(inner: BoxBody, stall: Duration, progress: Arc<Progress>) -> Self {
        StallBody {
            inner,
            progress,
            timer: StallTimer::new(stall),
        }
    }
}

impl http_body::Body for StallBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => {
                if self.timer.expired(cx) {
                    let stall = self.timer.stall;
                    Poll::Ready(Some(Err(Box::new(Stalled(stall)))))
                } else {
                    Poll::Pending
                }
            }
            ready => {
                self.timer.progress();
                self.progress.touch();
                ready
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The largest frame a client hands on for a 4 MiB body sent in one write, over loopback.
    async fn largest_frame(client: HttpClient) -> usize {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = vec![7u8; 4 << 20];
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 4096];
            let _ = socket.read(&mut head).await.unwrap();
            let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.write_all(&body).await.unwrap();
        });
        let request = Request::get(format!("http://{addr}/"))
            .body(empty())
            .unwrap();
        let mut body = client.request(request).await.unwrap().into_body();
        let (mut largest, mut total) = (0, 0);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                largest = largest.max(data.len());
                total += data.len();
            }
        }
        assert_eq!(total, 4 << 20);
        largest
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn source_reads_use_a_bounded_read_buffer() {
        let tls = crate::tls::system_roots();
        let source = largest_frame(source_client(Duration::from_secs(5), tls.clone())).await;
        let plain = largest_frame(client_with_tls(Duration::from_secs(5), tls)).await;
        // A read may fill the buffer's whole capacity, which grows by doubling up to the bound.
        assert!(source <= 2 * SOURCE_READ_BUFFER, "{source}");
        assert!(plain > 2 * SOURCE_READ_BUFFER, "{plain}");
    }
}
