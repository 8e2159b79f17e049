//! Shared harness for the integration tests: a simulated two-region cloud on loopback with the
//! real sidecar in front of REGION2, and helpers that act as a user through the Image API.

#![allow(dead_code)]

use std::time::Duration;

use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::config::Config;
use glance_download_sidecar::hash::HashAlgo;
use glance_download_sidecar::tools::apiclient::{Answer, ImageApi};
use glance_download_sidecar::tools::sim::{Cloud, FakeGlance, Fault, ImageData, ImageSpec};
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
    /// Sends one request to the sidecar with the caller's token and `headers`; the answer read
    /// whole.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let client = glance_download_sidecar::http::client(Duration::from_secs(5));
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.sidecar.url()))
            .header("x-auth-token", &self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(glance_download_sidecar::http::full(body))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = glance_download_sidecar::http::read_limited(body, 1 << 20)
            .await
            .unwrap();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `POST /v2/images/{target}/import` with `body` and one extra header (a per-request sink,
    /// a store), as a client holding the caller's token; the answer read whole.
    pub async fn import_with_header(
        &self,
        target: &str,
        body: Vec<u8>,
        header: (&str, &str),
    ) -> Answer {
        let headers = [
            ("content-type", "application/json"),
            ("accept", "application/json"),
            header,
        ];
        self.send(
            "POST",
            &format!("/v2/images/{target}/import"),
            &headers,
            body,
        )
        .await
    }

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

    /// A source image like [`Harness::source_image`] (no properties) whose data REGION1 serves
    /// at 8 MiB/s, so an import of it stays running a while.
    pub fn throttled_source(&self, size: u64, seed: u64) -> String {
        let id = self.source_image(size, seed, json!({}));
        self.source().set_fault(
            &id,
            Fault::Throttle {
                bytes_per_sec: 8 << 20,
            },
        );
        id
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

    /// Starts an import of `source` into a new target (answered 202), then asks for a second one
    /// into another new target while the first runs; asserts the second is refused with 429 and
    /// `Retry-After: 10`. Returns both targets and the refusal.
    pub async fn import_refused_beside_a_running_one(
        &self,
        source: &str,
    ) -> (String, String, Answer) {
        let first = self.target_image().await;
        assert_eq!(self.import(&first, source).await.status, 202);
        let second = self.target_image().await;
        let refused = self.import(&second, source).await;
        assert_eq!(refused.status, 429);
        assert_eq!(refused.header("retry-after"), Some("10"));
        (first, second, refused)
    }

    /// The sidecar's answer to `GET /v2/images/{id}/tasks`.
    pub async fn tasks(&self, id: &str) -> Value {
        self.api
            .get(&format!("/v2/images/{id}/tasks"))
            .await
            .unwrap()
            .json()
    }

    /// The newest task the sidecar lists for image `id`.
    pub async fn last_task(&self, id: &str) -> Value {
        let tasks = self.tasks(id).await;
        tasks["tasks"].as_array().unwrap().last().unwrap().clone()
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

/// Asserts the task failed with a message containing `text`.
pub fn assert_failed_with(task: &Value, text: &str) {
    assert_eq!(task["status"], "failure", "{task}");
    assert!(task["message"].as_str().unwrap().contains(text), "{task}");
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
        m.retain(|k, _| !k.starts_with(glance_download_sidecar::claim::PREFIX));
        m
    };
    assert_eq!(strip(image), strip(before), "metadata restored");
}

pub fn algo_of(name: &str) -> HashAlgo {
    name.parse().unwrap()
}

/// S3 credentials the fake S3 accepts and the `s3` sink signs with.
pub const S3_ACCESS: &str = "gds-access";
pub const S3_SECRET: &str = "gds-secret/with+chars";
pub const S3_BUCKET: &str = "glance-images";
/// The sidecar's service user (role `service`) in the fake Keystone.
pub const SERVICE_USER: &str = "gds-service";
pub const SERVICE_PASSWORD: &str = "service-pw";

/// The `[s3]` settings for the fake S3 at `endpoint`: region `us-east-1`, [`S3_BUCKET`], the
/// credentials it accepts, 5 MiB parts.
pub fn s3_config(endpoint: String) -> glance_download_sidecar::s3::S3Config {
    glance_download_sidecar::s3::S3Config {
        endpoint,
        region: "us-east-1".into(),
        bucket: S3_BUCKET.into(),
        access_key: S3_ACCESS.into(),
        secret_key: S3_SECRET.into(),
        part_size: glance_download_sidecar::s3::MIN_PART_SIZE,
        location_host: None,
    }
}

/// A harness whose REGION2 Glance has an S3 store (a fake S3 on loopback), with the sidecar
/// configured for `store_sink = s3` (5 MiB parts) and `[service_credentials]`.
pub struct S3Harness {
    pub h: Harness,
    pub s3: glance_download_sidecar::tools::sim::FakeS3,
    _stop: tokio_util::sync::DropGuard,
}

impl S3Harness {
    /// `do_secure_hash` is REGION2 Glance's option; `adjust` may change the sidecar's config.
    pub async fn start(do_secure_hash: bool, adjust: impl FnOnce(&mut Config)) -> S3Harness {
        let stop = tokio_util::sync::CancellationToken::new();
        let s3 = glance_download_sidecar::tools::sim::FakeS3::start(
            "us-east-1",
            S3_ACCESS,
            S3_SECRET,
            stop.clone(),
        )
        .await
        .unwrap();
        let endpoint = s3.endpoint();
        let h = Harness::with_config(|c| {
            c.store_sink = glance_download_sidecar::config::SinkKind::S3;
            c.s3 = Some(s3_config(endpoint));
            c.service_credentials = Some(
                glance_download_sidecar::keystone::ServiceCredentials::password(
                    SERVICE_USER,
                    SERVICE_PASSWORD,
                    "service",
                    "Default",
                    "Default",
                ),
            );
            adjust(c);
        })
        .await;
        h.cloud
            .keystone
            .add_user(SERVICE_USER, SERVICE_PASSWORD, "service", &["service"]);
        h.target().attach_s3_store(&s3, S3_BUCKET, do_secure_hash);
        S3Harness {
            h,
            s3,
            _stop: stop.drop_guard(),
        }
    }

    /// Imports and waits for the sidecar's own task (Glance's `location_import` task is listed
    /// beside it); returns that task.
    pub async fn import_and_wait(&self, target: &str, source: &str) -> Value {
        let answer = self.h.import(target, source).await;
        assert_eq!(
            answer.status,
            202,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self
                .h
                .api
                .get(&format!("/v2/images/{target}/tasks"))
                .await
                .unwrap();
            let task = answer.json()["tasks"]
                .as_array()
                .and_then(|tasks| {
                    tasks
                        .iter()
                        .find(|t| t["input"]["import_req"]["method"]["name"] == "glance-download")
                        .cloned()
                })
                .unwrap_or(Value::Null);
            let ended = matches!(task["status"].as_str(), Some("success" | "failure"));
            if ended {
                return task;
            }
            assert!(tokio::time::Instant::now() < deadline, "no end: {task}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
