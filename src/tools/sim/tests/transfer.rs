//! Image data through the fake Glance: uploads (hashing, failures back to queued) and downloads
//! (Range answers).

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{active_image, call, cloud, get};
use crate::hash::{HashAlgo, ALL};
use crate::tools::sim::{generated_bytes, ImageData, ImageSpec};

const OCTET: (&str, &str) = ("content-type", "application/octet-stream");

async fn put_file(url: &str, token: &str, id: &str, data: Bytes) -> super::Reply {
    call(
        Method::PUT,
        &format!("{url}/v2/images/{id}/file"),
        Some(token),
        &[OCTET],
        data,
    )
    .await
}

#[tokio::test]
async fn upload_makes_image_active_with_every_hash_algorithm() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    let data = generated_bytes(3, 0, 300_000);
    for algo in ALL {
        glance.set_hashing_algorithm(algo);
        let id = glance.create_image(ImageSpec::queued("demo"));
        let r = put_file(&glance.url(), &token, &id, data.clone()).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{algo}: {:?}", r.body);
        let image = glance.image(&id).unwrap();
        assert_eq!(image["status"], "active");
        assert_eq!(image["size"], 300_000);
        assert_eq!(image["virtual_size"], 300_000, "raw: virtual size = size");
        assert_eq!(image["checksum"], HashAlgo::Md5.hex_digest(&data));
        assert_eq!(image["os_hash_algo"], algo.name());
        assert_eq!(image["os_hash_value"], algo.hex_digest(&data), "{algo}");
        assert_eq!(glance.image_data(&id).unwrap(), data);
    }
}

#[tokio::test]
async fn upload_refusals_keep_glance_messages() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    let url = glance.url();
    let bare = glance.create_image(ImageSpec {
        owner: "demo".into(),
        ..ImageSpec::default()
    });
    let r = put_file(&url, &token, &bare, Bytes::from_static(b"abc")).await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::BAD_REQUEST,
            "Properties disk_format, container_format must be set prior to saving data.".into()
        )
    );
    assert_eq!(glance.image(&bare).unwrap()["status"], "queued");

    let active = active_image(&cloud, ImageData::Bytes(Bytes::from_static(b"x")));
    let r = put_file(
        &cloud.region("REGION1").url(),
        &token,
        &active,
        Bytes::from_static(b"abc"),
    )
    .await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::CONFLICT,
            "Image status transition from active to saving is not allowed".into()
        )
    );

    let queued = glance.create_image(ImageSpec::queued("demo"));
    let r = call(
        Method::PUT,
        &format!("{url}/v2/images/{queued}/file"),
        Some(&token),
        &[("content-type", "text/plain")],
        "abc",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Declared size larger than the (cleanly ended) body: 400, back to queued.
    let r = call(
        Method::PUT,
        &format!("{url}/v2/images/{queued}/file"),
        Some(&token),
        &[OCTET, ("x-openstack-image-size", "10")],
        "abc",
    )
    .await;
    assert_eq!(
        (r.status, r.glance_message()),
        (
            StatusCode::BAD_REQUEST,
            "Size mismatch: expected 10 bytes, got 3 bytes".into()
        )
    );
    let image = glance.image(&queued).unwrap();
    assert_eq!(
        (image["status"].as_str(), &image["size"], &image["checksum"]),
        (Some("queued"), &Value::Null, &Value::Null)
    );
}

#[tokio::test]
async fn upload_cut_short_returns_image_to_queued() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    let id = glance.create_image(ImageSpec::queued("demo"));
    let addr = glance.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[7u8; 400]).await.unwrap();
    stream.flush().await.unwrap();
    // Wait until the fake has started saving, then break the upload.
    for _ in 0..200 {
        if glance.image(&id).unwrap()["status"] == "saving" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(glance.image(&id).unwrap()["status"], "saving");
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    #[allow(clippy::disallowed_methods)] // a test reads the answer of the server it tests whole
    let _ = stream.read_to_end(&mut rest).await;
    for _ in 0..200 {
        if glance.image(&id).unwrap()["status"] == "queued" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let image = glance.image(&id).unwrap();
    assert_eq!(
        (
            image["status"].as_str(),
            &image["size"],
            &image["os_hash_value"]
        ),
        (Some("queued"), &Value::Null, &Value::Null)
    );
    assert!(glance.image_data(&id).is_none());
}

#[tokio::test]
async fn large_uploads_are_hashed_but_not_kept() {
    let (cloud, token) = cloud().await;
    let glance = cloud.region("REGION2");
    glance.keep_uploads_up_to(1000);
    let id = glance.create_image(ImageSpec::queued("demo"));
    let data = generated_bytes(9, 0, 5000);
    assert_eq!(
        put_file(&glance.url(), &token, &id, data.clone())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let image = glance.image(&id).unwrap();
    assert_eq!(image["os_hash_value"], HashAlgo::Sha512.hex_digest(&data));
    assert!(glance.image_data(&id).is_none());
    let r = get(&format!("{}/v2/images/{id}/file", glance.url()), &token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn download_serves_data_and_single_ranges() {
    let (cloud, token) = cloud().await;
    let data = Bytes::from_static(b"0123456789");
    let id = active_image(&cloud, ImageData::Bytes(data.clone()));
    let url = format!("{}/v2/images/{id}/file", cloud.region("REGION1").url());
    let r = get(&url, &token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(
        r.header("content-md5"),
        Some(HashAlgo::Md5.hex_digest(&data).as_str())
    );

    let range = |spec: &'static str| {
        let (url, token) = (url.clone(), token.clone());
        async move { call(Method::GET, &url, Some(&token), &[("range", spec)], "").await }
    };
    for (spec, body, content_range) in [
        ("bytes=2-5", "2345", "bytes 2-5/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
        ("bytes=-50", "0123456789", "bytes 0-9/10"),
    ] {
        let r = range(spec).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{spec}");
        assert_eq!(
            (&r.body[..], r.header("content-range")),
            (body.as_bytes(), Some(content_range)),
            "{spec}"
        );
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str())
        );
    }
    let r = range("bytes=0-1,4-5").await;
    assert_eq!(
        (r.status, r.glance_message()),
        (StatusCode::BAD_REQUEST, "Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.".into())
    );
    let r = range("pages=1-2").await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("Invalid Range header."));
    assert_eq!(r.json()["title"], "Request Range Not Satisfiable");
    let r = range("bytes=10-").await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(r.json()["message"].as_str().unwrap().contains(
        "Invalid start position in Range header. Start position MUST be in the inclusive range [0, 9]."
    ));
    assert_eq!(
        range("bytes=5-2").await.status,
        StatusCode::RANGE_NOT_SATISFIABLE
    );

    let queued = cloud
        .region("REGION1")
        .create_image(ImageSpec::queued("demo"));
    let r = get(
        &format!("{}/v2/images/{queued}/file", cloud.region("REGION1").url()),
        &token,
    )
    .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NO_CONTENT, 0));
}
