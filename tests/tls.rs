//! TLS everywhere: the sidecar serves HTTPS with its configured certificate, and reaches Keystone,
//! the fronted Glance and the source region over HTTPS, trusting a private CA given as `ca_file`.
//! The CA and certificates are generated at test time; TLS is terminated in front of the
//! simulated services by more sidecars (their pass-through is a plain reverse proxy).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::config::Config;
use glance_download_sidecar::http::client_with_tls;
use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::{Cloud, ImageData, ImageSpec};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use support::*;

struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("gds-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gds test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        cert: write("cert.pem", cert.pem()),
        key: write("key.pem", key.serialize_pem()),
        dir,
    }
}

/// A TLS-terminating pass-through in front of `upstream`.
async fn terminator(upstream: &str, pki: &Pki) -> Server {
    let config = Config {
        bind: ([127, 0, 0, 1], 0).into(),
        glance_url: upstream.to_string(),
        tls: Some((pki.cert.clone(), pki.key.clone())),
        task_journal: None,
        ..Config::default()
    };
    Server::bind(App::new(config.clone()).unwrap(), config.bind)
        .await
        .unwrap()
}

fn trusting(ca: &Path) -> glance_download_sidecar::http::HttpClient {
    client_with_tls(
        Duration::from_secs(5),
        glance_download_sidecar::tls::client_config(Some(ca)).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_over_tls_end_to_end() {
    let pki = pki();
    let cloud = Cloud::start(&["REGION1", "REGION2"]).await.unwrap();
    let token = cloud
        .keystone
        .issue_token(USER, PROJECT, &["member", "reader"]);
    let keystone_base = cloud.auth_url().trim_end_matches("/v3").to_string();
    let keystone_tls = terminator(&keystone_base, &pki).await;
    let target_tls = terminator(&cloud.region("REGION2").url(), &pki).await;
    let source_tls = terminator(&cloud.region("REGION1").url(), &pki).await;
    cloud
        .keystone
        .set_endpoint("REGION1", "public", &source_tls.url());
    assert!(source_tls.url().starts_with("https://"));

    let config = Config {
        bind: ([127, 0, 0, 1], 0).into(),
        glance_url: target_tls.url(),
        auth_url: format!("{}/v3", keystone_tls.url()),
        ca_file: Some(pki.ca.clone()),
        tls: Some((pki.cert.clone(), pki.key.clone())),
        task_journal: None,
        ..Config::default()
    };
    let sidecar = Server::bind(App::new(config.clone()).unwrap(), config.bind)
        .await
        .unwrap();
    let api = ImageApi::with_client(&sidecar.url(), &token, trusting(&pki.ca));

    let src = cloud.region("REGION1").create_image(ImageSpec::active(
        PROJECT,
        ImageData::Generated {
            seed: 1,
            size: 3 << 20,
        },
    ));
    let created = api
        .create_image(
            &serde_json::json!({"name": "tls", "disk_format": "raw", "container_format": "bare"}),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let dst = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.import_glance_download(&dst, "REGION1", &src)
            .await
            .unwrap()
            .status,
        202
    );
    let task = api.wait_for_import(&dst, TASK_WAIT).await.unwrap();
    assert_eq!(task["status"], "success", "{task}");
    assert_same_image(
        &cloud.region("REGION2").image(&dst).unwrap(),
        &cloud.region("REGION1").image(&src).unwrap(),
    );

    // A client that does not trust the CA cannot talk to the sidecar.
    let untrusting = ImageApi::new(&sidecar.url(), &token);
    assert!(untrusting.get("/v2/images").await.is_err());

    // A sidecar without the CA cannot validate tokens against the TLS Keystone: 502, no detail.
    let blind = Config {
        ca_file: None,
        tls: None,
        ..config
    };
    let blind = Server::bind(App::new(blind.clone()).unwrap(), blind.bind)
        .await
        .unwrap();
    let refused = ImageApi::new(&blind.url(), &token)
        .import_glance_download(&dst, "REGION1", &src)
        .await
        .unwrap();
    assert_eq!(refused.status, 502, "{:?}", refused.json());
    std::fs::remove_dir_all(&pki.dir).unwrap();
}

#[test]
fn bad_tls_files_are_refused_at_start() {
    let pki = pki();
    let config = Config {
        tls: Some((pki.key.clone(), pki.key.clone())),
        task_journal: None,
        ..Config::default()
    };
    let error = App::new(config).err().expect("a key is not a certificate");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
    let config = Config {
        ca_file: Some(pki.dir.join("missing.pem")),
        task_journal: None,
        ..Config::default()
    };
    assert!(App::new(config).is_err());
    std::fs::remove_dir_all(&pki.dir).unwrap();
}
