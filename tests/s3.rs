//! The `s3` store sink against a fake S3 (SigV4 and `Content-MD5` checked on every request) and
//! a fake Glance whose S3 store takes the location: success with both `do_secure_hash`
//! settings, fail-closed on corrupt data, refused credentials, per-part integrity, no
//! overwrite of an existing key, an object Glance may hold never deleted, and the start-up
//! checks of `[s3]`.

mod support;

use std::time::Duration;

use glance_download_sidecar::config::{Config, ConfigError, Overrides};
use glance_download_sidecar::keystone::ServiceCredentials;
use glance_download_sidecar::tools::sim::{Fault, LocationFault, PartFault};
use http::StatusCode;
use serde_json::{json, Value};
use support::*;

/// 12 MiB and a bit: three 5 MiB parts, the last one short.
const SIZE: u64 = 12 * 1024 * 1024 + 12_345;

fn source_bytes(h: &Harness, id: &str) -> bytes::Bytes {
    h.source().image_data(id).unwrap()
}

/// Asserts the import failed naming Glance's `status` refusal of the completed object's
/// location, the target is still queued, and the object is deleted.
fn assert_refused_by_glance_and_deleted(s: &S3Harness, target: &str, task: &Value, status: &str) {
    assert_failed_with(task, status);
    assert_eq!(s.h.target_state(target)["status"], "queued");
    assert_eq!(s.s3.stats().uploads_completed, 1);
    assert!(
        s.s3.keys(S3_BUCKET).is_empty(),
        "the refused object is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_through_s3_ends_active_with_the_source_digests() {
    let s = S3Harness::start(true, |_| {}).await;
    let source = s.h.source_image(SIZE, 31, json!({"hw_disk_bus": "scsi"}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "success", "{task}");
    let copy = s.h.target_state(&target);
    assert_same_image(&copy, &s.h.source_state(&source));
    assert_eq!(copy["hw_disk_bus"], "scsi");
    let object =
        s.s3.object(S3_BUCKET, &target)
            .expect("the object is in Glance's bucket");
    assert!(
        object == source_bytes(&s.h, &source),
        "the object holds the source's bytes"
    );
    let stats = s.s3.stats();
    assert_eq!(stats.uploads_completed, 1, "{stats:?}");
    assert_eq!(stats.parts_received, 3, "{stats:?}");
    assert_eq!(
        stats.largest_part,
        glance_download_sidecar::s3::MIN_PART_SIZE
    );
    assert_eq!(stats.bad_signatures, 0, "{stats:?}");
    assert_eq!(
        stats.parts_with_md5, 3,
        "every part carries its Content-MD5: {stats:?}"
    );
    assert_eq!(stats.bad_digests, 0, "{stats:?}");
    assert_eq!(stats.heads, 1, "the key was checked free first: {stats:?}");
    assert_eq!(s.s3.open_uploads(), 0);
    // Glance's own task registered the location with the verified hash.
    let tasks = s.h.target().request_log();
    let posted = tasks
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/locations"))
        .count();
    assert_eq!(posted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_secure_hash_glance_keeps_the_validation_data_and_no_checksum() {
    let s = S3Harness::start(false, |_| {}).await;
    let source = s.h.source_image(SIZE, 32, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "success", "{task}");
    let copy = s.h.target_state(&target);
    let original = s.h.source_state(&source);
    assert_eq!(copy["status"], "active");
    assert_eq!(copy["size"], original["size"]);
    assert_eq!(copy["os_hash_algo"], original["os_hash_algo"]);
    assert_eq!(copy["os_hash_value"], original["os_hash_value"]);
    assert!(copy["checksum"].is_null(), "{copy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_aborts_the_upload_and_leaves_no_object() {
    let s = S3Harness::start(true, |_| {}).await;
    let source = s.h.source_image(SIZE, 33, json!({}));
    let target = s.h.target_image().await;
    let before = s.h.target_state(&target);
    s.h.source()
        .set_fault(&source, Fault::Corrupt { offset: SIZE - 100 });

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "failure", "{task}");
    assert_reverted(&s.h.target_state(&target), &before);
    let stats = s.s3.stats();
    assert_eq!(stats.uploads_aborted, 1, "{stats:?}");
    assert_eq!(stats.uploads_completed, 0, "{stats:?}");
    assert_eq!(s.s3.open_uploads(), 0, "no parts left behind");
    assert!(s.s3.keys(S3_BUCKET).is_empty(), "no object left");
    let posted =
        s.h.target()
            .request_log()
            .iter()
            .any(|r| r.path.ends_with("/locations"));
    assert!(!posted, "nothing was registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_service_credentials_fail_before_any_byte_moves() {
    let s = S3Harness::start(true, |c| {
        if let Some(creds) = c.service_credentials.as_mut() {
            *creds = ServiceCredentials::password(
                SERVICE_USER,
                "wrong",
                "service",
                "Default",
                "Default",
            );
        }
    })
    .await;
    let source = s.h.source_image(SIZE, 34, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap_or_default();
    assert!(message.contains("service credentials"), "{message}");
    assert!(
        !message.contains("wrong"),
        "the password never appears: {message}"
    );
    assert_eq!(s.h.target_state(&target)["status"], "queued");
    assert_eq!(s.s3.stats().uploads_created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_user_without_the_service_role_is_refused_by_glance_and_the_object_removed() {
    let s = S3Harness::start(true, |c| {
        if let Some(creds) = c.service_credentials.as_mut() {
            *creds = ServiceCredentials::password(
                "not-a-service",
                SERVICE_PASSWORD,
                "service",
                "Default",
                "Default",
            );
        }
    })
    .await;
    s.h.cloud
        .keystone
        .add_user("not-a-service", SERVICE_PASSWORD, "service", &["member"]);
    let source = s.h.source_image(SIZE, 35, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_refused_by_glance_and_deleted(&s, &target, &task, "403");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_is_refused_by_the_signature_check() {
    let s = S3Harness::start(true, |c| {
        if let Some(s3) = c.s3.as_mut() {
            s3.secret_key = "not-the-secret".into();
        }
    })
    .await;
    let source = s.h.source_image(SIZE, 36, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap_or_default();
    // The first call, HEAD, gets S3's 403 without a body (so without SignatureDoesNotMatch).
    assert!(
        message.contains("403") && message.contains("secret key"),
        "{message}"
    );
    assert!(!message.contains("not-the-secret"), "{message}");
    assert!(s.s3.stats().bad_signatures >= 1);
    assert_eq!(s.h.target_state(&target)["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_part_failure_is_retried() {
    let s = S3Harness::start(true, |_| {}).await;
    s.s3.fail_parts(StatusCode::SERVICE_UNAVAILABLE, 1);
    let source = s.h.source_image(SIZE, 37, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "success", "{task}");
    assert_same_image(&s.h.target_state(&target), &s.h.source_state(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_image_goes_through_glance_upload() {
    let s = S3Harness::start(true, |_| {}).await;
    let source = s.h.source_image(0, 38, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(s.h.target_state(&target)["size"], 0);
    assert_eq!(s.s3.stats().uploads_created, 0);
}

// === per-part integrity and no overwrite ===

/// Imports through a fake S3 that damages one part with `fault`; asserts the import failed
/// naming `reason`, the upload was aborted, none completed, no object is left and the target is
/// still queued. Returns the harness.
async fn import_with_a_damaged_part(fault: PartFault, seed: u64, reason: &str) -> S3Harness {
    let s = S3Harness::start(true, |_| {}).await;
    s.s3.damage_parts(fault, 1);
    let source = s.h.source_image(SIZE, seed, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap_or_default();
    assert!(message.contains(reason), "{message}");
    let stats = s.s3.stats();
    assert_eq!(stats.uploads_aborted, 1, "{stats:?}");
    assert_eq!(stats.uploads_completed, 0, "{stats:?}");
    assert!(s.s3.keys(S3_BUCKET).is_empty(), "no object left");
    assert_eq!(s.h.target_state(&target)["status"], "queued");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_damaged_on_the_way_is_refused_by_its_content_md5_and_the_upload_aborted() {
    let s = import_with_a_damaged_part(PartFault::CorruptInTransit, 39, "BadDigest").await;

    let stats = s.s3.stats();
    assert_eq!(stats.bad_digests, 1, "{stats:?}");
    assert_eq!(s.s3.open_uploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_etag_that_is_not_its_md5_fails_the_upload() {
    import_with_a_damaged_part(PartFault::WrongEtag, 40, "ETag").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_already_at_the_key_is_never_overwritten() {
    let s = S3Harness::start(true, |_| {}).await;
    let source = s.h.source_image(SIZE, 41, json!({}));
    let target = s.h.target_image().await;
    let precious = bytes::Bytes::from_static(b"an object someone else put here");
    s.s3.put_object(S3_BUCKET, &target, precious.clone());

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap_or_default();
    assert!(message.contains("already exists"), "{message}");
    assert!(
        message.contains(&format!("/{S3_BUCKET}/{target}")),
        "{message}"
    );
    assert_eq!(s.s3.object(S3_BUCKET, &target), Some(precious));
    assert_eq!(s.s3.stats().uploads_created, 0);
    assert_eq!(s.h.target_state(&target)["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_over_an_object_that_appeared_meanwhile_is_refused() {
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let s3 =
        glance_download_sidecar::tools::sim::FakeS3::start("us-east-1", S3_ACCESS, S3_SECRET, stop)
            .await
            .unwrap();
    s3.create_bucket(S3_BUCKET);
    let config = s3_config(s3.endpoint());
    let timeout = Duration::from_secs(10);
    let client = glance_download_sidecar::s3::S3Client::new(
        glance_download_sidecar::http::client(timeout),
        config,
        timeout,
    );
    let part = bytes::Bytes::from_static(b"part bytes");
    let md5: [u8; 16] = {
        use md5::Digest;
        md5::Md5::digest(&part).into()
    };
    let upload = |key: &'static str| {
        let client = client.clone();
        let part = part.clone();
        async move {
            let id = client.create_multipart(key).await.unwrap();
            let etag = client
                .upload_part(key, &id, 1, vec![part.clone()], part.len() as u64, &md5)
                .await
                .unwrap();
            (id, etag)
        }
    };

    let (id, etag) = upload("taken").await;
    s3.put_object(S3_BUCKET, "taken", bytes::Bytes::from_static(b"first"));
    let refused = client.complete("taken", &id, &[(1, etag)]).await;
    let (free_id, free_etag) = upload("free").await;
    let completed = client.complete("free", &free_id, &[(1, free_etag)]).await;

    let error = refused.expect_err("completing over an existing object is refused");
    assert_eq!(error.code(), Some("PreconditionFailed"), "{error}");
    assert_eq!(
        s3.object(S3_BUCKET, "taken").as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(s3.stats().precondition_failures, 1);
    completed.unwrap();
    assert_eq!(s3.object(S3_BUCKET, "free"), Some(part));
}

// === the object of a location Glance may hold is never deleted ===

/// Waits for the import's end as the sidecar records it on the target image (the sidecar's
/// task listing goes through Glance's, which some faults break); returns the image.
async fn wait_for_summary(s: &S3Harness, target: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let image = s.h.target_state(target);
        if matches!(
            image["glance_download_task_status"].as_str(),
            Some("success" | "failure")
        ) {
            return image;
        }
        assert!(tokio::time::Instant::now() < deadline, "no end: {image}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_on_post_locations_keeps_the_object_glance_made_active() {
    let s = S3Harness::start(false, |c| c.request_timeout = Duration::from_secs(2)).await;
    s.h.target()
        .set_location_fault(LocationFault::AnswerAfter(Duration::from_secs(8)));
    let source = s.h.source_image(SIZE, 42, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "success", "{task}");
    let copy = s.h.target_state(&target);
    assert_eq!(copy["status"], "active", "{copy}");
    assert_eq!(
        copy["os_hash_value"],
        s.h.source_state(&source)["os_hash_value"]
    );
    let object = s.s3.object(S3_BUCKET, &target);
    assert!(
        object == Some(source_bytes(&s.h, &source)),
        "the object of the active image is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_while_following_location_import_keeps_the_object_of_the_active_image() {
    let s = S3Harness::start(true, |_| {}).await;
    s.h.target()
        .set_location_fault(LocationFault::TasksFail(500));
    let source = s.h.source_image(SIZE, 43, json!({}));
    let target = s.h.target_image().await;
    let answer = s.h.import(&target, &source).await;
    assert_eq!(answer.status, 202);

    let copy = wait_for_summary(&s, &target).await;

    assert_eq!(copy["glance_download_task_status"], "success", "{copy}");
    assert_eq!(copy["status"], "active", "{copy}");
    assert_same_image(&copy, &s.h.source_state(&source));
    let object = s.s3.object(S3_BUCKET, &target);
    assert!(
        object == Some(source_bytes(&s.h, &source)),
        "the object of the active image is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definite_400_to_post_locations_deletes_the_object() {
    let s = S3Harness::start(true, |_| {}).await;
    s.h.target().set_location_fault(LocationFault::Refuse(400));
    let source = s.h.source_image(SIZE, 44, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_refused_by_glance_and_deleted(&s, &target, &task, "400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_image_after_a_5xx_keeps_the_object_and_names_it() {
    let s = S3Harness::start(true, |_| {}).await;
    s.h.target()
        .set_location_fault(LocationFault::FailThenGarble(503));
    let source = s.h.source_image(SIZE, 45, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap_or_default();
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("was kept"), "{message}");
    assert!(
        message.contains(&format!("/{S3_BUCKET}/{target}")),
        "{message}"
    );
    assert!(
        s.s3.object(S3_BUCKET, &target).is_some(),
        "the object is kept"
    );
}

// === configuration ===

const SERVICE: &str = "[service_credentials]\nusername = u\npassword = p\nproject_name = service\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_ini(text, &Overrides::default())
}

fn refused_key(text: &str) -> String {
    match parse(text) {
        Err(ConfigError::Invalid { key, value, .. }) => format!("{key}|{value}"),
        other => panic!("expected a refusal of {text:?}, got {other:?}"),
    }
}

#[test]
fn s3_section_parses_with_documented_defaults() {
    let config = parse(&format!(
        "[DEFAULT]\nstore_sink = s3\n[s3]\nendpoint = http://127.0.0.1:9000/\nbucket = images\n\
         access_key = AK\nsecret_key = SK/x+y\n{SERVICE}"
    ))
    .unwrap();
    let s3 = config.s3.unwrap();
    assert_eq!(s3.endpoint, "http://127.0.0.1:9000");
    assert_eq!(
        s3.region,
        glance_download_sidecar::config::defaults::S3_REGION
    );
    assert_eq!(
        s3.part_size,
        glance_download_sidecar::config::defaults::S3_PART_SIZE
    );
    assert_eq!(s3.location_uri("id"), "s3://127.0.0.1:9000/images/id");
}

#[test]
fn bad_s3_options_are_named_and_secrets_not_echoed() {
    let base = "[DEFAULT]\nstore_sink = s3\n[s3]\nendpoint = http://h:9000\naccess_key = AK\nsecret_key = SK\n";
    assert!(refused_key(&format!("{base}{SERVICE}")).starts_with("[s3] bucket|"));
    assert!(refused_key(&format!("{base}bucket = B\n{SERVICE}")).starts_with("[s3] bucket|"));
    let part = refused_key(&format!("{base}bucket = b01\npart_size = 1024\n{SERVICE}"));
    assert!(part.starts_with("[s3] part_size|"), "{part}");
    assert!(refused_key(&format!("{base}bucket = b01\n")).starts_with("service_credentials|"));
    assert!(refused_key("[DEFAULT]\nstore_sink = s3\n").starts_with("store_sink|"));
    let secret = refused_key("[s3]\nsecret_key = has space\n");
    assert!(secret.starts_with("[s3] secret_key|"), "{secret}");
    assert!(!secret.contains("has space"), "{secret}");
    let endpoint = refused_key("[s3]\nendpoint = http://h:9000/path\n");
    assert!(endpoint.starts_with("[s3] endpoint|"), "{endpoint}");
}
