//! Generated data and source-side faults.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use super::{active_image, call, cloud, get, raw};
use crate::hash::HashAlgo;
use crate::tools::sim::{
    generated_body, generated_bytes, generated_digests, Fault, ImageData, CHUNK,
};

#[test]
fn generated_bytes_are_deterministic_at_any_offset() {
    let full = generated_bytes(42, 0, 3 * CHUNK + 11);
    assert_eq!(full, generated_bytes(42, 0, 3 * CHUNK + 11));
    assert_ne!(full, generated_bytes(43, 0, 3 * CHUNK + 11));
    for (offset, len) in [
        (0, 1),
        (1, 7),
        (3, 8),
        (7, 9),
        (CHUNK - 5, 10),
        (2 * CHUNK + 3, CHUNK + 8),
        (100, 0),
    ] {
        assert_eq!(
            generated_bytes(42, offset as u64, len),
            full.slice(offset..offset + len),
            "{offset}+{len}"
        );
    }
    let distinct = full.iter().collect::<std::collections::HashSet<_>>().len();
    assert!(
        distinct > 250,
        "looks random: {distinct} distinct byte values"
    );
}

#[test]
fn generated_digests_match_hashing_the_bytes() {
    let size = 2 * CHUNK + 1234;
    let bytes = generated_bytes(5, 0, size);
    let (md5, sha3) = generated_digests(5, size as u64, HashAlgo::Sha3_256);
    assert_eq!(md5, HashAlgo::Md5.hex_digest(&bytes));
    assert_eq!(sha3, HashAlgo::Sha3_256.hex_digest(&bytes));
    assert_eq!(
        generated_digests(5, 0, HashAlgo::Sha512).1,
        HashAlgo::Sha512.hex_digest(b"")
    );
}

#[tokio::test]
async fn generated_body_streams_the_same_bytes() {
    let body = generated_body(8, 13, 5 * CHUNK as u64 / 2);
    #[allow(clippy::disallowed_methods)] // a test reads the answer of the server it tests whole
    let got = body.collect().await.unwrap().to_bytes();
    assert_eq!(got, generated_bytes(8, 13, 5 * CHUNK / 2));
}

#[tokio::test]
async fn generated_image_reads_agree_with_ranges_and_checksums() {
    let (cloud, token) = cloud().await;
    let size = 3 * CHUNK + 777;
    let id = active_image(
        &cloud,
        ImageData::Generated {
            seed: 11,
            size: size as u64,
        },
    );
    let glance = cloud.region("REGION1");
    let image = glance.image(&id).unwrap();
    let url = format!("{}/v2/images/{id}/file", glance.url());
    let full = get(&url, &token).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.body, generated_bytes(11, 0, size));
    assert_eq!(image["checksum"], HashAlgo::Md5.hex_digest(&full.body));
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(
        image["os_hash_value"],
        HashAlgo::Sha512.hex_digest(&full.body)
    );
    assert_eq!(glance.image_data(&id).unwrap(), full.body);
    let mut stitched = BytesMut::new();
    let cuts = [0, 1, CHUNK - 1, CHUNK + 5, 2 * CHUNK + 9, size];
    for w in cuts.windows(2) {
        let spec = format!("bytes={}-{}", w[0], w[1] - 1);
        let r = call(Method::GET, &url, Some(&token), &[("range", &spec)], "").await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
        stitched.extend_from_slice(&r.body);
    }
    assert_eq!(stitched.freeze(), full.body);
}

/// Reads a body until it ends or fails; returns the bytes and whether it failed.
async fn drain(resp: http::Response<hyper::body::Incoming>) -> (Bytes, bool) {
    let mut body = resp.into_body();
    let mut got = BytesMut::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => got.extend_from_slice(f.data_ref().map(|d| &d[..]).unwrap_or_default()),
            Err(_) => return (got.freeze(), true),
        }
    }
    (got.freeze(), false)
}

#[tokio::test]
async fn drop_after_gives_an_incomplete_body() {
    let (cloud, token) = cloud().await;
    let id = active_image(
        &cloud,
        ImageData::Generated {
            seed: 1,
            size: 4 * CHUNK as u64,
        },
    );
    let glance = cloud.region("REGION1");
    glance.set_fault(&id, Fault::DropAfter(CHUNK as u64 + 100));
    let url = format!("{}/v2/images/{id}/file", glance.url());
    let resp = raw(Method::GET, &url, Some(&token), &[], Bytes::new()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-length"],
        (4 * CHUNK).to_string().as_str()
    );
    let (got, failed) = drain(resp).await;
    assert!(failed, "the client must see an error, not a short success");
    assert!(got.len() <= CHUNK + 100);
    assert_eq!(got, generated_bytes(1, 0, got.len()));

    for fault in [Fault::ShortBody(10)] {
        glance.set_fault(&id, fault);
        let (got, failed) =
            drain(raw(Method::GET, &url, Some(&token), &[], Bytes::new()).await).await;
        assert!(failed && got.len() <= 10, "{fault:?}");
    }
}

#[tokio::test]
async fn corrupt_flips_one_byte_with_true_headers() {
    let (cloud, token) = cloud().await;
    let id = active_image(
        &cloud,
        ImageData::Generated {
            seed: 2,
            size: 2 * CHUNK as u64,
        },
    );
    let glance = cloud.region("REGION1");
    let url = format!("{}/v2/images/{id}/file", glance.url());
    let clean = get(&url, &token).await;
    let offset = CHUNK + 3;
    glance.set_fault(
        &id,
        Fault::Corrupt {
            offset: offset as u64,
        },
    );
    let bad = get(&url, &token).await;
    assert_eq!(bad.status, StatusCode::OK);
    assert_eq!(bad.header("content-length"), clean.header("content-length"));
    assert_eq!(bad.header("content-md5"), clean.header("content-md5"));
    let diffs: Vec<usize> = (0..clean.body.len())
        .filter(|&i| clean.body[i] != bad.body[i])
        .collect();
    assert_eq!(diffs, [offset]);
    let r = call(
        Method::GET,
        &url,
        Some(&token),
        &[("range", &format!("bytes={}-", offset - 1))],
        "",
    )
    .await;
    assert_eq!(
        (r.body[0], r.body[1]),
        (clean.body[offset - 1], clean.body[offset] ^ 0xff)
    );
}

#[tokio::test]
async fn status_faults_can_be_one_shot() {
    let (cloud, token) = cloud().await;
    let id = active_image(&cloud, ImageData::Bytes(Bytes::from_static(b"hello")));
    let glance = cloud.region("REGION1");
    glance.set_fault_times(&id, Fault::Status(503), 1);
    let url = format!("{}/v2/images/{id}/file", glance.url());
    let r = get(&url, &token).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["code"], "503 Service Unavailable");
    assert!(r.header("x-openstack-request-id").is_some());
    let r = get(&url, &token).await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"hello"[..]));

    glance.set_fault(&id, Fault::WrongContentLength(3));
    let r = get(&url, &token).await;
    assert_eq!(
        (r.header("content-length"), &r.body[..]),
        (Some("3"), &b"hel"[..])
    );
    glance.set_fault(&id, Fault::WrongContentLength(7));
    assert_eq!(&get(&url, &token).await.body[..], b"hello\0\0");
    glance.set_fault(
        &id,
        Fault::Throttle {
            bytes_per_sec: 1_000_000,
        },
    );
    assert_eq!(&get(&url, &token).await.body[..], b"hello");
    glance.clear_fault(&id);
    assert_eq!(get(&url, &token).await.status, StatusCode::OK);
    let log = glance.request_log();
    assert!(log
        .iter()
        .all(|r| r.header("x-auth-token") == Some(token.as_str())));
}

#[tokio::test]
async fn stall_delays_the_body_after_the_headers() {
    let (cloud, token) = cloud().await;
    let id = active_image(&cloud, ImageData::Bytes(Bytes::from_static(b"slow")));
    let glance = cloud.region("REGION1");
    glance.set_fault(&id, Fault::Stall(Duration::from_millis(300)));
    let url = format!("{}/v2/images/{id}/file", glance.url());
    let resp = raw(Method::GET, &url, Some(&token), &[], Bytes::new()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), body.frame())
            .await
            .is_err(),
        "stalled"
    );
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"slow"));

    glance.set_fault(&id, Fault::StallHeaders(Duration::from_millis(300)));
    let pending = raw(Method::GET, &url, Some(&token), &[], Bytes::new());
    assert!(
        tokio::time::timeout(Duration::from_millis(50), pending)
            .await
            .is_err(),
        "no headers yet"
    );
    assert_eq!(get(&url, &token).await.body, Bytes::from_static(b"slow"));
}
