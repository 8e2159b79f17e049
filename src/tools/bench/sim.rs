//! The benchmark rig on the simulated cloud: a fake Keystone and two fake Glance regions on one
//! runtime (threads `gds-sim`), the real sidecar fronting REGION2 on another (threads
//! `gds-sidecar`), so the CPU each side spends can be told apart per thread.
//!
//! Two measured operations run on it: the pipeline alone (REGION1's `GET /file` over loopback →
//! pipeline → null sink, on the sidecar's runtime) and a full import through the sidecar (create,
//! `POST /import`, poll the task), with the store side watched in-process to time the first byte.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use super::bodies::{drain, Drained};
use super::BenchError;
use crate::api::{App, Server};
use crate::config::Config;
use crate::glance::{Glance, Image, ImageId};
use crate::keystone::Token;
use crate::pipeline::{self, Expected, Limits, Remote, Resuming, RetryPolicy};
use crate::tools::apiclient::ImageApi;
use crate::tools::sim::{Cloud, FakeGlance, ImageData, ImageSpec};
use crate::verify;

/// The source region (holds the generated image).
const SOURCE_REGION: &str = "REGION1";
/// The target region (fronted by the sidecar; hashes uploads and discards their bytes).
const TARGET_REGION: &str = "REGION2";
/// How often the store side is looked at for the first byte.
const WATCH_EVERY: Duration = Duration::from_millis(1);
/// How often the import task is polled through the sidecar.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Timings of one import, from the client's and the store's side.
#[derive(Debug, Clone, Serialize)]
pub struct ImportTimes {
    /// `POST /import` sent → `202` received, seconds.
    pub accepted: f64,
    /// `202` → the target Glance began the `PUT /file` (image `saving`), seconds.
    pub to_store: Option<f64>,
    /// Target `saving` → `active` (the bytes flowing into the store), seconds.
    pub storing: Option<f64>,
    /// `POST /import` sent → task `success` seen, seconds.
    pub total: f64,
}

/// A simulated cloud, a sidecar in front of its target region, and one generated source image.
pub struct SimRig {
    sim: Runtime,
    sidecar_rt: Runtime,
    cloud: Cloud,
    sidecar: Option<Server>,
    source: FakeGlance,
    target: FakeGlance,
    token: String,
    source_id: String,
    expected: Expected,
    limits: Limits,
}

// === impl SimRig ===

impl SimRig {
    /// Starts the cloud and the sidecar and creates a `size`-byte generated image from `seed`
    /// (its digests are computed now, once per process).
    pub fn start(size: u64, seed: u64, limits: Limits) -> Result<SimRig, BenchError> {
        let sim = runtime("gds-sim")?;
        let sidecar_rt = runtime("gds-sidecar")?;
        let cloud = sim.block_on(Cloud::start(&[SOURCE_REGION, TARGET_REGION]))?;
        let token =
            cloud
                .keystone
                .issue_token("bench-user", "bench-project", &["member", "reader"]);
        let source = cloud.region(SOURCE_REGION).clone();
        let target = cloud.region(TARGET_REGION).clone();
        target.keep_uploads_up_to(0);
        let source_id = source.create_image(ImageSpec {
            name: Some("bench-source".into()),
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            ..ImageSpec::active("bench-project", ImageData::Generated { seed, size })
        });
        let image = source
            .image(&source_id)
            .ok_or_else(|| BenchError::Check("the source image vanished".into()))?;
        let expected =
            Expected::from_source(&record(image)).map_err(|e| BenchError::Check(e.to_string()))?;
        let config = Config {
            bind: ([127, 0, 0, 1], 0).into(),
            glance_url: target.url(),
            auth_url: cloud.auth_url(),
            chunk_size: limits.chunk_size,
            buffer_bytes: limits.buffer_bytes,
            ..Config::default()
        };
        let app = App::new(config.clone()).map_err(|e| BenchError::Check(e.to_string()))?;
        let sidecar = sidecar_rt.block_on(Server::bind(app, config.bind))?;
        Ok(SimRig {
            sim,
            sidecar_rt,
            cloud,
            sidecar: Some(sidecar),
            source,
            target,
            token,
            source_id,
            expected,
            limits,
        })
    }

    /// What the source image's record says (size and both digests).
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// (b) The pipeline alone: the source image over loopback HTTP (read as the import reads it,
    /// with [`Resuming`]), through the pipeline, into a null sink; on the sidecar's runtime.
    /// Returns what the null sink read (every byte, verified).
    pub fn pipeline_once(&self) -> Result<Drained, BenchError> {
        let glance = Glance::new(
            crate::http::client(Duration::from_secs(10)),
            Duration::from_secs(60),
        );
        let id = ImageId::parse(&self.source_id)
            .ok_or_else(|| BenchError::Check("the source image id is not a UUID".into()))?;
        let token = Token::parse(self.token.as_bytes())
            .ok_or_else(|| BenchError::Check("the token is not a header value".into()))?;
        let policy = RetryPolicy {
            max_retries: 0,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            read_timeout: Duration::from_secs(60),
        };
        let remote = Remote {
            glance,
            base: self.source.url(),
            id,
            token,
            size: self.expected.size,
            compact: crate::config::defaults::COMPACT_TRANSFER,
        };
        let source = Resuming::new(remote, policy);
        let (expected, limits) = (self.expected.clone(), self.limits);
        let drained = run_on(&self.sidecar_rt, async move {
            let progress = Arc::new(AtomicU64::new(0));
            let (body, pump) = pipeline::start(source, expected, limits, progress);
            let (drained, verified) = tokio::join!(drain(body, None), pump);
            verified?;
            drained.map_err(|aborted| BenchError::Check(aborted.to_string()))
        })?;
        if drained.bytes != self.expected.size {
            return Err(BenchError::Check(format!(
                "the null sink read {} bytes of {}",
                drained.bytes, self.expected.size
            )));
        }
        Ok(drained)
    }

    /// (c) A full import through the sidecar into the target region, as a client drives it;
    /// checks the stored digests equal the source's.
    pub fn import_once(&self) -> Result<ImportTimes, BenchError> {
        let url = self
            .sidecar
            .as_ref()
            .map(Server::url)
            .ok_or_else(|| BenchError::Check("the sidecar is stopped".into()))?;
        let api = ImageApi::new(&url, &self.token);
        let (target, source_id) = (self.target.clone(), self.source_id.clone());
        let budget = Duration::from_secs(60 + self.expected.size / (5 << 20));
        let (id, times) = run_on(&self.sim, async move {
            let created = api
                .create_image(&json!({"name": "bench-copy", "disk_format": "raw",
                                      "container_format": "bare"}))
                .await?;
            let id = created.json()["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if created.status.as_u16() != 201 || id.is_empty() {
                return Err(BenchError::Check(format!(
                    "image create answered {}",
                    created.status
                )));
            }
            let watcher = tokio::spawn(watch_store(target, id.clone(), budget));
            let started = Instant::now();
            let accepted = api
                .import_glance_download(&id, SOURCE_REGION, &source_id)
                .await?;
            let accepted_at = Instant::now();
            if accepted.status.as_u16() != 202 {
                watcher.abort();
                return Err(BenchError::Check(format!(
                    "import answered {}: {}",
                    accepted.status,
                    String::from_utf8_lossy(&accepted.body)
                )));
            }
            let task = api.wait_for_import_every(&id, budget, POLL_EVERY).await?;
            let done = Instant::now();
            let (saving, active) = watcher.await.unwrap_or((None, None));
            if task["status"] != "success" {
                return Err(BenchError::Check(format!(
                    "import task ended {}: {}",
                    task["status"], task["message"]
                )));
            }
            let since =
                |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64();
            let times = ImportTimes {
                accepted: since(started, accepted_at),
                to_store: saving.map(|s| since(accepted_at, s)),
                storing: saving.zip(active).map(|(s, a)| since(s, a)),
                total: since(started, done),
            };
            Ok((id, times))
        })?;
        let copy = self
            .target
            .image(&id)
            .ok_or_else(|| BenchError::Check("the imported image vanished".into()))?;
        let source = self
            .source
            .image(&self.source_id)
            .ok_or_else(|| BenchError::Check("the source image vanished".into()))?;
        let expected =
            Expected::from_source(&record(source)).map_err(|e| BenchError::Check(e.to_string()))?;
        verify::check_stored(&expected, &record(copy))
            .map_err(|mismatch| BenchError::Check(format!("the copy {mismatch}")))?;
        Ok(times)
    }

    /// Stops the sidecar and the cloud.
    pub fn shutdown(mut self) {
        if let Some(server) = self.sidecar.take() {
            self.sidecar_rt.block_on(server.shutdown(Duration::ZERO));
        }
        self.cloud.shutdown();
    }
}

/// A multi-thread runtime with one worker per CPU (as the sidecar's own), whose threads, workers
/// and blocking pool alike, are named `name` and kept alive so their CPU time stays countable.
pub(super) fn runtime(name: &str) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
}

/// Runs `work` as a task on `rt`'s workers (not on the calling thread) and waits for it.
fn run_on<T, F>(rt: &Runtime, work: F) -> Result<T, BenchError>
where
    F: Future<Output = Result<T, BenchError>> + Send + 'static,
    T: Send + 'static,
{
    rt.block_on(rt.spawn(work))
        .map_err(|_| BenchError::Panicked)?
}

/// A fake Glance's image record as an [`Image`].
fn record(image: Value) -> Image {
    match image {
        Value::Object(map) => Image(map),
        _ => Image(Default::default()),
    }
}

/// Watches the target image in-process: when it turns `saving` (the `PUT /file` reached the
/// store) and when `active` (every byte stored and hashed). Gives up after `budget`.
async fn watch_store(
    target: FakeGlance,
    id: String,
    budget: Duration,
) -> (Option<Instant>, Option<Instant>) {
    let deadline = Instant::now() + budget;
    let mut saving = None;
    while Instant::now() < deadline {
        let status = target
            .image(&id)
            .and_then(|image| image["status"].as_str().map(str::to_string));
        match status.as_deref() {
            Some("saving") if saving.is_none() => saving = Some(Instant::now()),
            Some("active") => return (saving, Some(Instant::now())),
            _ => {}
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
    (saving, None)
}
