//! Shared harness for the integration tests: a simulated two-region cloud on loopback with the
//! real sidecar in front of REGION2, and helpers that act as a user through the Image API.

#![allow(dead_code)]

use std::time::Duration;

use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::apiclient::{Answer, ImageApi};
use glance_download_sidecar::config::Config;
use glance_download_sidecar::hash::HashAlgo;
use glance_download_sidecar::sim::{Cloud, FakeGlance, ImageData, ImageSpec};
use serde_json::{json, Map, Value};

pub const PROJECT: &str = "demo-project";
pub const USER: &str = "demo-user";

/// How long a test waits for an import task to end.
pub const TASK_WAIT: Duration = Duration::from_secs(120);

pub struct Harness {
    pub cloud: Cloud,
    pub sidecar: Server,
    pub token: String,
    pub api: ImageApi,
    pub config: Config,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with_config(|_| {}).await
    }

    /// Starts the cloud and a sidecar whose configuration `adjust` may change.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Harness {
        let cloud = Cloud::start(&["REGION1", "REGION2"]).await.unwrap();
        let token = cloud
            .keystone
            .issue_token(USER, PROJECT, &["member", "reader"]);
        let mut config = Config {
            bind: ([127, 0, 0, 1], 0).into(),
            glance_url: cloud.region("REGION2").url(),
            auth_url: cloud.auth_url(),
            task_journal: None,
            ..Config::default()
        };
        adjust(&mut config);
        let sidecar = Server::bind(App::new(config.clone()).unwrap(), config.bind)
            .await
            .unwrap();
        let api = ImageApi::new(&sidecar.url(), &token);
        Harness {
            cloud,
            sidecar,
            token,
            api,
            config,
        }
    }

    pub fn source(&self) -> &FakeGlance {
        self.cloud.region("REGION1")
    }

    pub fn target(&self) -> &FakeGlance {
        self.cloud.region("REGION2")
    }

    /// An active source image in REGION1 with generated data and the given properties.
    pub fn source_image(&self, size: u64, seed: u64, properties: Value) -> String {
        let properties: Map<String, Value> = properties.as_object().cloned().unwrap_or_default();
        self.source().create_image(ImageSpec {
            disk_format: Some("qcow2".into()),
            container_format: Some("bare".into()),
            properties,
            ..ImageSpec::active(PROJECT, ImageData::Generated { seed, size })
        })
    }

    /// A queued target in REGION2 created through the sidecar (pass-through), `raw`/`bare`.
    pub async fn target_image(&self) -> String {
        let answer = self
            .api
            .create_image(
                &json!({"name": "copy", "disk_format": "raw", "container_format": "bare"}),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.json()["id"].as_str().unwrap().to_string()
    }

    pub async fn import(&self, target: &str, source: &str) -> Answer {
        self.api
            .import_glance_download(target, "REGION1", source)
            .await
            .unwrap()
    }

    /// Imports and waits; returns the final task.
    pub async fn import_and_wait(&self, target: &str, source: &str) -> Value {
        let answer = self.import(target, source).await;
        assert_eq!(
            answer.status,
            202,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        self.api.wait_for_import(target, TASK_WAIT).await.unwrap()
    }

    /// The image as REGION2's Glance has it (read directly, not through the sidecar).
    pub fn target_state(&self, id: &str) -> Value {
        self.target().image(id).unwrap()
    }

    pub fn source_state(&self, id: &str) -> Value {
        self.source().image(id).unwrap()
    }
}

/// Asserts the copy has the source's size, digests and formats and is active.
pub fn assert_same_image(copy: &Value, source: &Value) {
    assert_eq!(copy["status"], "active", "{copy}");
    for key in [
        "size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "disk_format",
        "container_format",
    ] {
        assert_eq!(copy[key], source[key], "{key}");
    }
}

/// Asserts the image is back to queued with no data and exactly the given formats.
pub fn assert_reverted(image: &Value, before: &Value) {
    assert_eq!(image["status"], "queued", "{image}");
    assert!(
        image["checksum"].is_null() && image["size"].is_null(),
        "{image}"
    );
    let strip = |v: &Value| {
        let mut m = v.as_object().unwrap().clone();
        for k in [
            "updated_at",
            "status",
            "size",
            "checksum",
            "os_hash_algo",
            "os_hash_value",
            "virtual_size",
        ] {
            m.remove(k);
        }
        // The sidecar's own namespace records the (failed) task; it is not the image's metadata.
        m.retain(|k, _| !k.starts_with(glance_download_sidecar::shared::PREFIX));
        m
    };
    assert_eq!(strip(image), strip(before), "metadata restored");
}

pub fn algo_of(name: &str) -> HashAlgo {
    name.parse().unwrap()
}
