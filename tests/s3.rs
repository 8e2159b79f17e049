//! The `s3` store sink against a fake S3 (SigV4 checked on every request) and a fake Glance
//! whose S3 store takes the location: success with both `do_secure_hash` settings, fail-closed
//! on corrupt data, refused credentials, and the start-up checks of `[s3]`.

mod support;

use glance_download_sidecar::config::{Config, ConfigError, Overrides};
use glance_download_sidecar::sim::Fault;
use http::StatusCode;
use serde_json::json;
use support::*;

/// 12 MiB and a bit: three 5 MiB parts, the last one short.
const SIZE: u64 = 12 * 1024 * 1024 + 12_345;

fn source_bytes(h: &Harness, id: &str) -> bytes::Bytes {
    h.source().image_data(id).unwrap()
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
            creds.password = "wrong".into();
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
            creds.username = "not-a-service".into();
        }
    })
    .await;
    s.h.cloud
        .keystone
        .add_user("not-a-service", SERVICE_PASSWORD, "service", &["member"]);
    let source = s.h.source_image(SIZE, 35, json!({}));
    let target = s.h.target_image().await;

    let task = s.import_and_wait(&target, &source).await;

    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap_or_default();
    assert!(message.contains("403"), "{message}");
    assert_eq!(s.h.target_state(&target)["status"], "queued");
    assert_eq!(s.s3.stats().uploads_completed, 1);
    assert!(
        s.s3.keys(S3_BUCKET).is_empty(),
        "the refused object is deleted"
    );
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
    assert!(message.contains("SignatureDoesNotMatch"), "{message}");
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
