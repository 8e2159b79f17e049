//! Compact transfer between sidecars: the source region's catalog endpoint is a second sidecar in
//! front of REGION1's Glance, reached through a counting TCP proxy. Sparse and text-like images
//! cross with far fewer bytes, random ones as they are, every copy verified; a dropped coded
//! stream resumes at its decoded offset; either side's switch off means plain bytes.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::compact::{Decoder, Piece, CODING};
use glance_download_sidecar::config::Config;
use glance_download_sidecar::tools::sim::{Fault, ImageData, ImageSpec};
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SIZE: usize = 8 << 20;

/// A TCP proxy that counts the bytes its upstream sends back (the source side of the link).
struct Counting {
    url: String,
    down: Arc<AtomicU64>,
}

impl Counting {
    async fn start(upstream: SocketAddr) -> Counting {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicU64::new(0));
        let counter = down.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                        let _ = sw.shutdown().await;
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = sr.read(&mut buf).await {
                            if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            counter.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Counting { url, down }
    }

    fn bytes(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

/// The harness's cloud with a second sidecar in front of REGION1, registered (through the
/// counting proxy) as REGION1's image endpoint.
struct Linked {
    h: Harness,
    source_sidecar: Server,
    link: Counting,
}

impl Linked {
    async fn start(target_compact: bool, source_compact: bool) -> Linked {
        let h = Harness::with_config(|c| {
            c.compact_transfer = target_compact;
            c.retry_delay = Duration::from_millis(10);
            c.source_retries = 4;
        })
        .await;
        Linked::around(h, source_compact).await
    }

    /// A sidecar in front of `h`'s source Glance (coding when `source_compact`), reached through a
    /// counting link that the catalog names as REGION1's image endpoint.
    async fn around(h: Harness, source_compact: bool) -> Linked {
        let config = Config {
            bind: ([127, 0, 0, 1], 0).into(),
            glance_url: h.source().url(),
            auth_url: h.cloud.auth_url(),
            task_journal: None,
            compact_transfer: source_compact,
            ..Config::default()
        };
        let source_sidecar = Server::bind(App::new(config.clone()).unwrap(), config.bind)
            .await
            .unwrap();
        let link = Counting::start(source_sidecar.addr).await;
        for interface in ["public", "internal", "admin"] {
            h.cloud
                .keystone
                .set_endpoint("REGION1", interface, &link.url);
        }
        Linked {
            h,
            source_sidecar,
            link,
        }
    }

    fn source_image(&self, data: ImageData) -> String {
        self.h.source().create_image(ImageSpec {
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            ..ImageSpec::active(PROJECT, data)
        })
    }

    /// Imports `source` into a new target; returns the final task and the bytes the link carried
    /// back during the import.
    async fn copy(&self, source: &str) -> (Value, u64) {
        let target = self.h.target_image().await;
        let before = self.link.bytes();
        let task = self.h.import_and_wait(&target, source).await;
        let carried = self.link.bytes() - before;
        assert_eq!(task["status"], "success", "{task}");
        assert_same_image(&self.h.target_state(&target), &self.h.source_state(source));
        (task, carried)
    }

    /// The `GET /file` requests REGION1's Glance received.
    fn file_reads(&self) -> Vec<glance_download_sidecar::tools::sim::LoggedRequest> {
        self.h
            .source()
            .request_log()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/file"))
            .collect()
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// Bytes of data in [`sparse`]: four 256 KiB islands (12.5 %).
const SPARSE_DATA: u64 = 4 * 256 * 1024;

/// Within this of its data a sparse image crosses: frame headers and HTTP.
const OVERHEAD: u64 = 16 * 1024;

/// Four islands of 256 KiB of random data, the rest zeros.
fn sparse() -> Bytes {
    let mut data = vec![0u8; SIZE];
    for (i, island) in data.chunks_mut(2560 * 1024).enumerate() {
        island[..256 * 1024].copy_from_slice(&random(256 * 1024, i as u64));
    }
    Bytes::from(data)
}

/// Log-like text: compresses well, has no zero runs.
fn text() -> Bytes {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut data = Vec::with_capacity(SIZE + 64);
    while data.len() < SIZE {
        let line = format!(
            "2026-12-04 23:{:02}:{:02} INFO glance.api image {:08x} status {}\n",
            rng.u8(..60),
            rng.u8(..60),
            rng.u32(..),
            ["active", "queued", "saving"][rng.usize(..3)]
        );
        data.extend_from_slice(line.as_bytes());
    }
    data.truncate(SIZE);
    Bytes::from(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_and_text_images_cross_in_far_fewer_bytes() {
    let l = Linked::start(true, true).await;
    let size = SIZE as u64;

    let sparse = l.source_image(ImageData::Bytes(sparse()));
    let (_, carried) = l.copy(&sparse).await;
    assert!(
        carried < SPARSE_DATA + OVERHEAD,
        "sparse: {carried} bytes for {size}"
    );

    let text = l.source_image(ImageData::Bytes(text()));
    let (_, carried) = l.copy(&text).await;
    assert!(carried < size / 3, "text: {carried} bytes for {size}");

    let random = l.source_image(ImageData::Generated { seed: 11, size });
    let (_, carried) = l.copy(&random).await;
    assert!(
        carried >= size && carried < size + size / 50,
        "random: {carried} bytes for {size}"
    );

    // The source sidecar asked its Glance plainly, with the caller's token.
    let reads = l.file_reads();
    assert_eq!(reads.len(), 3);
    for read in reads {
        assert_eq!(read.header("accept-encoding"), None);
        assert_eq!(read.header("x-auth-token"), Some(l.h.token.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_coded_stream_resumes_at_its_decoded_offset() {
    let l = Linked::start(true, true).await;
    let sparse = l.source_image(ImageData::Bytes(sparse()));
    l.h.source()
        .set_fault_times(&sparse, Fault::DropAfter(SIZE as u64 / 2 + 12345), 1);
    let (_, carried) = l.copy(&sparse).await;
    assert!(carried < SIZE as u64 / 4, "{carried}");
    let reads = l.file_reads();
    assert_eq!(reads.len(), 2, "{reads:?}");
    let resumed = reads[1]
        .header("range")
        .expect("the second read is a Range");
    let from: u64 = resumed
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{resumed}"));
    assert!(from > 0 && from <= SIZE as u64 / 2 + 12345, "{resumed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_ranges_are_coded_each() {
    let h = Harness::with_config(|c| {
        c.source_streams = 3;
        c.segment_size = 1 << 20;
    })
    .await;
    let l = Linked::around(h, true).await;
    let sparse = l.source_image(ImageData::Bytes(sparse()));
    let (_, carried) = l.copy(&sparse).await;
    assert!(carried < SPARSE_DATA + 8 * OVERHEAD, "{carried}");
    assert_eq!(l.file_reads().len(), SIZE >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_switch_off_means_plain_bytes() {
    for (target, source) in [(false, true), (true, false)] {
        let l = Linked::start(target, source).await;
        let sparse = l.source_image(ImageData::Bytes(sparse()));
        let (_, carried) = l.copy(&sparse).await;
        assert!(
            carried >= SIZE as u64,
            "target {target} source {source}: {carried}"
        );
        let asked = l.file_reads()[0]
            .header("accept-encoding")
            .map(String::from);
        // A source sidecar that does not code passes the request on as it came.
        let expected = (target && !source).then(|| CODING.to_string());
        assert_eq!(asked, expected);
    }
}

/// Reads a coded answer whole and decodes it (`size` decoded bytes).
fn decode(coded: &[u8], size: u64) -> Vec<u8> {
    let mut decoder = Decoder::new(size);
    let mut context = zstd::bulk::Decompressor::new().unwrap();
    decoder.feed(Bytes::copy_from_slice(coded));
    let mut out = Vec::new();
    while let Some(piece) = decoder.next_piece().unwrap() {
        match piece {
            Piece::Data(data) => out.extend_from_slice(&data),
            Piece::Compressed(frame) => {
                out.extend_from_slice(&frame.inflate(&mut context).unwrap())
            }
        }
    }
    assert!(decoder.at_boundary());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coded_answer_names_its_coding_and_ranges_count_decoded_bytes() {
    let l = Linked::start(true, true).await;
    let data = sparse();
    let id = l.source_image(ImageData::Bytes(data.clone()));
    let client = glance_download_sidecar::http::client(Duration::from_secs(5));
    let get = |range: Option<&str>| {
        let mut request = http::Request::builder()
            .uri(format!("{}/v2/images/{id}/file", l.source_sidecar.url()))
            .header("x-auth-token", &l.h.token)
            .header("accept-encoding", CODING);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        client.request(
            request
                .body(glance_download_sidecar::http::empty())
                .unwrap(),
        )
    };
    let answer = get(None).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-encoding"], CODING);
    assert_eq!(answer.headers()["vary"], "Accept-Encoding");
    assert!(answer.headers().get("content-length").is_none());
    // The fake Glance sends the image checksum as `Content-MD5`, as Glance does; it names the
    // decoded bytes, not the coded body.
    assert!(answer.headers().get("content-md5").is_none());
    let coded = glance_download_sidecar::http::read_limited(answer.into_body(), 4 << 20)
        .await
        .unwrap();
    assert!((coded.len() as u64) < SPARSE_DATA + OVERHEAD);
    assert_eq!(decode(&coded, SIZE as u64), data);

    let answer = get(Some("bytes=1000000-")).await.unwrap();
    assert_eq!(answer.status(), 206);
    assert_eq!(
        answer.headers()["content-range"],
        format!("bytes 1000000-{}/{SIZE}", SIZE - 1).as_str()
    );
    let coded = glance_download_sidecar::http::read_limited(answer.into_body(), 4 << 20)
        .await
        .unwrap();
    assert_eq!(decode(&coded, (SIZE - 1_000_000) as u64), data[1_000_000..]);

    // Errors pass through uncoded, and Glance still decides who may read.
    let answer = client
        .request(
            http::Request::builder()
                .uri(format!("{}/v2/images/{id}/file", l.source_sidecar.url()))
                .header("x-auth-token", "not-a-token")
                .header("accept-encoding", CODING)
                .body(glance_download_sidecar::http::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().get("content-encoding").is_none());
}

/// A source endpoint that answers `GET /file` with `coded` in the compact coding (whatever was
/// asked) and forwards every other request to `upstream`.
async fn hostile_source(upstream: String, coded: Bytes) -> String {
    use hyper::service::service_fn;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let client = glance_download_sidecar::http::client(Duration::from_secs(5));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (upstream, coded, client) = (upstream.clone(), coded.clone(), client.clone());
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let (upstream, coded, client) = (upstream.clone(), coded.clone(), client.clone());
                async move {
                    if request.uri().path().ends_with("/file") {
                        let response = http::Response::builder()
                            .header("content-encoding", CODING)
                            .body(glance_download_sidecar::http::full(coded))
                            .unwrap();
                        return Ok::<_, std::convert::Infallible>(response);
                    }
                    let (mut parts, body) = request.into_parts();
                    parts.uri = format!("{upstream}{}", parts.uri).parse().unwrap();
                    parts.headers.remove("host");
                    let request = http::Request::from_parts(
                        parts,
                        glance_download_sidecar::http::boxed(body),
                    );
                    let response = client.request(request).await.unwrap();
                    Ok(response.map(glance_download_sidecar::http::boxed))
                }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_coding_from_the_source_fails_the_import_with_its_reason() {
    // No token cache: each case's catalog (a new source endpoint) is read afresh.
    let h = Harness::with_config(|c| c.token_cache_ttl = Duration::ZERO).await;
    let size = 1 << 20;
    let source = h.source_image(size, 3, serde_json::json!({}));
    let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 1).unwrap();
    let mut zstd_frame = vec![0x02];
    zstd_frame.extend_from_slice(&1000u32.to_le_bytes());
    zstd_frame.extend_from_slice(&(bomb.len() as u32).to_le_bytes());
    zstd_frame.extend_from_slice(&bomb);
    let mut past_end = vec![0x00];
    past_end.extend_from_slice(&(size + 1).to_le_bytes());
    let mut oversized = vec![0x01];
    oversized.extend_from_slice(&(2u32 << 20).to_le_bytes());
    let cases = [
        (zstd_frame, "zstd frame at decoded byte 0 decompresses to more than its declared 1000 bytes"),
        (past_end, "zero-run frame of 1048577 bytes at decoded byte 0 runs past the declared size (1048576 bytes remain)"),
        (oversized, "raw frame of 2097152 bytes at decoded byte 0 exceeds the 1048576-byte frame bound"),
        (vec![0x09, 1, 2], "unknown frame kind 0x09 at decoded byte 0"),
    ];
    let refused = cases.len() as u64;
    for (coded, reason) in cases {
        let url = hostile_source(h.source().url(), Bytes::from(coded)).await;
        for interface in ["public", "internal", "admin"] {
            h.cloud.keystone.set_endpoint("REGION1", interface, &url);
        }
        let target = h.target_image().await;
        let before = h.target_state(&target);
        let task = h.import_and_wait(&target, &source).await;
        assert_failed_with(
            &task,
            &format!("the source's compact coding is invalid: {reason}"),
        );
        assert_reverted(&h.target_state(&target), &before);
    }
    // A coding that cannot be the source's bytes is a failed verification, as a bad Range is.
    let counted = h
        .sidecar
        .app
        .metrics
        .verification_failures
        .load(Ordering::Relaxed);
    assert_eq!(counted, refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coding_the_target_did_not_ask_for_is_never_read_as_data() {
    let h = Harness::with_config(|c| c.compact_transfer = false).await;
    let source = h.source_image(1 << 20, 3, serde_json::json!({}));
    let mut coded = vec![0x00];
    coded.extend_from_slice(&(1u64 << 20).to_le_bytes());
    let url = hostile_source(h.source().url(), Bytes::from(coded)).await;
    for interface in ["public", "internal", "admin"] {
        h.cloud.keystone.set_endpoint("REGION1", interface, &url);
    }
    let target = h.target_image().await;
    let task = h.import_and_wait(&target, &source).await;
    assert_failed_with(
        &task,
        "the source answered in the unknown content coding \"gds-compact-1\"",
    );
}
