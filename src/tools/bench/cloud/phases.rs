//! The four transfer phases of the real-cloud bench, each on a fresh target image created on the
//! target Glance itself (never through a sidecar), verified against the source image, then
//! deleted:
//!
//! - (b) [`glance_put`]: the source's `GET /file` body handed straight to the target's
//!   `PUT /file`, nothing hashed here: what the target Glance ingests at best;
//! - (c)/(d) [`sidecar`]: a glance-download import through the sidecar running in this process
//!   with the `glance-upload` or `glance-stage` sink, followed in-process;
//! - (e) [`upstream`]: the same import request sent to the target Glance itself, when its
//!   `GET /v2/info/import` offers glance-download.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use http::{Method, Request};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::super::measure::Meter;
use super::super::BenchError;
use super::report::{Outcome, Transfer};
use crate::api::App;
use crate::glance::{Image, ImageId};
use crate::hash::HashAlgo;
use crate::http::{boxed, empty, HttpClient};
use crate::keystone::Token;
use crate::tasks::Status;
use crate::tools::apiclient::{Answer, ImageApi};
use crate::tools::sync::Session;
use crate::verify::{self, Expected};

/// How often the target image is read while waiting for the first byte at its store.
const STORE_POLL: Duration = Duration::from_millis(20);
/// How often the sidecar's task is looked at (in-process, no HTTP).
const TASK_POLL: Duration = Duration::from_millis(5);
/// How often upstream's import is polled (each poll costs the target Glance a request).
const UPSTREAM_POLL: Duration = Duration::from_millis(100);
/// How long upstream's import may leave the image `queued` without its import lock before that
/// counts as a failed import (the lock may be taken just after the `202`).
const UPSTREAM_GRACE: Duration = Duration::from_secs(5);

/// The source image every phase copies, as its record says.
#[derive(Debug, Clone)]
pub(super) struct SourceImage {
    pub id: String,
    pub size: u64,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub disk_format: String,
    pub container_format: String,
}

impl SourceImage {
    /// Reads what a copy must match from an image record; `None` unless it is `active` with a
    /// size and a checksum.
    pub(super) fn from_record(image: &Value) -> Option<SourceImage> {
        let text = |key: &str| image[key].as_str().map(str::to_string);
        if image["status"] != "active" {
            return None;
        }
        Some(SourceImage {
            id: text("id")?,
            size: image["size"].as_u64()?,
            checksum: Some(text("checksum")?),
            os_hash_algo: text("os_hash_algo"),
            os_hash_value: text("os_hash_value"),
            disk_format: text("disk_format").unwrap_or_else(|| "raw".into()),
            container_format: text("container_format").unwrap_or_else(|| "bare".into()),
        })
    }

    /// What a copy must equal, as the verification contract states it.
    fn expected(&self) -> Expected {
        let os_hash = self
            .os_hash_algo
            .as_deref()
            .and_then(|algo| algo.parse::<HashAlgo>().ok())
            .zip(self.os_hash_value.clone());
        Expected {
            size: self.size,
            checksum: self.checksum.clone(),
            os_hash,
        }
    }

    /// Why `copy` is not a verified copy of this image (`None`: it is), led by the field that
    /// differs.
    pub(super) fn mismatch(&self, copy: &Value) -> Option<String> {
        let copy = Image(copy.as_object().cloned().unwrap_or_default());
        verify::check_stored(&self.expected(), &copy)
            .err()
            .map(|mismatch| format!("{}: the copy {mismatch}", mismatch.field()))
    }
}

/// What every phase shares.
pub(super) struct Ctx {
    pub session: Session,
    pub client: HttpClient,
    /// The source region's name (the import requests name it).
    pub from: String,
    /// The source region's image endpoint, from the catalog.
    pub source_url: String,
    /// The target Glance itself.
    pub target_url: String,
    pub source: SourceImage,
    /// Longest one phase's transfer may take.
    pub budget: Duration,
    /// Longest one JSON call may take.
    pub request_timeout: Duration,
    /// Target images created and not deleted yet (the final sweep deletes what is left).
    pub created: Mutex<Vec<String>>,
    pub cancel: CancellationToken,
}

impl Ctx {
    async fn token(&self) -> Result<Token, BenchError> {
        Ok(self.session.token().await?)
    }

    fn api(&self, base: &str, token: &Token) -> ImageApi {
        ImageApi::with_client(base, token.expose(), self.client.clone())
    }

    fn remember(&self, id: &str) {
        if let Ok(mut created) = self.created.lock() {
            created.push(id.to_string());
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut created) = self.created.lock() {
            created.retain(|c| c != id);
        }
    }
}

fn failed(phase: &'static str, reason: impl Into<String>) -> BenchError {
    BenchError::Phase {
        phase,
        reason: reason.into(),
    }
}

/// An answer's status and Glance's message, for an error.
fn answered(what: &str, answer: &Answer) -> String {
    format!(
        "{what} answered {}: {}",
        answer.status,
        crate::glance::error_message(&answer.body)
    )
}

/// Runs one JSON call with the request timeout.
pub(super) async fn timed<T>(
    ctx: &Ctx,
    phase: &'static str,
    what: &str,
    call: impl Future<Output = Result<T, crate::tools::apiclient::CallError>>,
) -> Result<T, BenchError> {
    match tokio::time::timeout(ctx.request_timeout, call).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(failed(phase, format!("{what}: {error}"))),
        Err(_) => Err(failed(
            phase,
            format!("{what}: no answer within {:?}", ctx.request_timeout),
        )),
    }
}

/// Creates an empty target image with the source's formats; remembers it for the cleanup.
pub(super) async fn create_target(
    ctx: &Ctx,
    target: &ImageApi,
    phase: &'static str,
    name: &str,
) -> Result<String, BenchError> {
    let body = json!({"name": format!("gds-bench-{name}"),
        "disk_format": ctx.source.disk_format, "container_format": ctx.source.container_format});
    let created = timed(
        ctx,
        phase,
        "creating the target image",
        target.create_image(&body),
    )
    .await?;
    let id = created.json()["id"].as_str().map(str::to_string);
    match id {
        Some(id) if created.status.as_u16() == 201 => {
            ctx.remember(&id);
            Ok(id)
        }
        _ => Err(failed(
            phase,
            answered("creating the target image", &created),
        )),
    }
}

/// Deletes a target image once measured; a failure leaves it to the final sweep.
pub(super) async fn delete_target(ctx: &Ctx, target: &ImageApi, id: &str) {
    let deleted = tokio::time::timeout(
        ctx.request_timeout,
        target.call(Method::DELETE, &format!("/v2/images/{id}"), None, empty()),
    )
    .await;
    if let Ok(Ok(answer)) = deleted {
        if answer.status.is_success() || answer.status.as_u16() == 404 {
            ctx.forget(id);
        }
    }
}

/// Reads the target image and checks it against the source.
async fn verified(
    ctx: &Ctx,
    target: &ImageApi,
    phase: &'static str,
    id: &str,
) -> Result<(), BenchError> {
    let image = timed(ctx, phase, "reading the copy", target.image(id)).await?;
    match ctx.source.mismatch(&image) {
        None => Ok(()),
        Some(reason) => Err(failed(phase, format!("the copy is not verified: {reason}"))),
    }
}

// === (b) ===

/// (b) Glance's own `PUT /file`: the source's `GET /file` body streamed straight into it.
pub(super) async fn glance_put(ctx: Arc<Ctx>) -> Result<Outcome, BenchError> {
    const PHASE: &str = "(b) Glance's own PUT /file";
    let token = ctx.token().await?;
    let target = ctx.api(&ctx.target_url, &token);
    let id = create_target(&ctx, &target, PHASE, "glance-put").await?;
    let url = format!("{}/v2/images/{}/file", ctx.source_url, ctx.source.id);
    let request = Request::get(&url)
        .header("x-auth-token", token.expose())
        .body(empty())
        .map_err(|e| failed(PHASE, format!("GET {url}: {e}")))?;
    let response = tokio::time::timeout(ctx.request_timeout, ctx.client.request(request))
        .await
        .map_err(|_| failed(PHASE, format!("GET {url}: no answer in time")))?
        .map_err(|e| failed(PHASE, format!("GET {url}: {}", crate::http::describe(&e))))?;
    if !response.status().is_success() {
        return Err(failed(
            PHASE,
            format!("GET {url} answered {}", response.status()),
        ));
    }
    let meter = Meter::start();
    let started = Instant::now();
    let path = format!("/v2/images/{id}/file");
    let put = target.call(
        Method::PUT,
        &path,
        Some("application/octet-stream"),
        boxed(response.into_body()),
    );
    let answer = tokio::time::timeout(ctx.budget, put)
        .await
        .map_err(|_| failed(PHASE, format!("PUT /file took over {:?}", ctx.budget)))?
        .map_err(|e| failed(PHASE, e.to_string()))?;
    if answer.status.as_u16() != 204 {
        return Err(failed(PHASE, answered("PUT /file", &answer)));
    }
    verified(&ctx, &target, PHASE, &id).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut sample = meter.stop(ctx.source.size);
    sample.seconds = seconds;
    delete_target(&ctx, &target, &id).await;
    Ok(Outcome::Measured(Transfer {
        sample,
        accepted: None,
        to_store: None,
    }))
}

// === (c), (d) ===

/// Which sink a sidecar phase runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sink {
    Upload,
    Stage,
}

impl Sink {
    fn phase(self) -> &'static str {
        match self {
            Sink::Upload => "(c) sidecar glance-upload",
            Sink::Stage => "(d) sidecar glance-stage",
        }
    }

    /// The target image's status once the sink's first request reached the Glance.
    fn receiving(self) -> &'static str {
        match self {
            Sink::Upload => "saving",
            Sink::Stage => "uploading",
        }
    }
}

/// Sends the glance-download import of the source image into `id` through `api`: the instants
/// it was sent and accepted (`202`), or the phase's failure.
async fn send_import(
    ctx: &Ctx,
    phase: &'static str,
    api: &ImageApi,
    id: &str,
) -> Result<(Instant, Instant), BenchError> {
    let sent = Instant::now();
    let import = api.import_glance_download(id, &ctx.from, &ctx.source.id);
    let accepted = timed(ctx, phase, "POST /import", import).await?;
    let accepted_at = Instant::now();
    if accepted.status.as_u16() != 202 {
        return Err(failed(phase, answered("POST /import", &accepted)));
    }
    Ok((sent, accepted_at))
}

/// (c)/(d) A glance-download import through the in-process sidecar at `url` (its `app`).
pub(super) async fn sidecar(
    ctx: Arc<Ctx>,
    url: String,
    app: Arc<App>,
    sink: Sink,
) -> Result<Outcome, BenchError> {
    let phase = sink.phase();
    let token = ctx.token().await?;
    let target = ctx.api(&ctx.target_url, &token);
    let through = ctx.api(&url, &token);
    let name = match sink {
        Sink::Upload => "sidecar-upload",
        Sink::Stage => "sidecar-stage",
    };
    let id = create_target(&ctx, &target, phase, name).await?;
    let image_id = ImageId::parse(&id)
        .ok_or_else(|| failed(phase, format!("the target image id {id:?} is not a UUID")))?;
    let meter = Meter::start();
    let (sent, accepted_at) = send_import(&ctx, phase, &through, &id).await?;
    let stop_watch = CancellationToken::new();
    let watcher = tokio::spawn(first_byte(
        target.clone(),
        id.clone(),
        sink.receiving(),
        (ctx.budget, ctx.request_timeout),
        stop_watch.clone(),
    ));
    let deadline = accepted_at + ctx.budget;
    let ended = loop {
        let task = app.tasks.for_image(&image_id).into_iter().last();
        match task.as_ref().map(|t| t.status()) {
            Some(Status::Success) => break Ok(()),
            Some(Status::Failure) => {
                let message = task.map(|t| t.message()).unwrap_or_default();
                break Err(failed(phase, format!("the import task failed: {message}")));
            }
            _ if Instant::now() >= deadline => {
                break Err(failed(phase, format!("no result within {:?}", ctx.budget)));
            }
            _ => tokio::time::sleep(TASK_POLL).await,
        }
    };
    stop_watch.cancel();
    let saw = watcher.await.ok().flatten();
    ended?;
    verified(&ctx, &target, phase, &id).await?;
    let seconds = accepted_at.elapsed().as_secs_f64();
    // The import still records its end on the image after the task says success: let it finish
    // (its CPU counts) before the image is deleted under it.
    let drained = tokio::time::timeout(ctx.request_timeout, async {
        while !app.importer.running.is_empty() {
            tokio::time::sleep(TASK_POLL).await;
        }
    });
    let _ = drained.await;
    let mut sample = meter.stop(ctx.source.size);
    sample.seconds = seconds;
    delete_target(&ctx, &target, &id).await;
    Ok(Outcome::Measured(Transfer {
        sample,
        accepted: Some(accepted_at.duration_since(sent).as_secs_f64()),
        to_store: saw.map(|at| at.saturating_duration_since(accepted_at).as_secs_f64()),
    }))
}

/// When the target image first shows `status` (or `active`): the store's first byte. Stops
/// polling as soon as it is seen, so the Glance is asked only a handful of times.
async fn first_byte(
    target: ImageApi,
    id: String,
    status: &'static str,
    (budget, per_call): (Duration, Duration),
    stop: CancellationToken,
) -> Option<Instant> {
    let deadline = Instant::now() + budget;
    while Instant::now() < deadline && !stop.is_cancelled() {
        let seen = tokio::time::timeout(per_call, target.image(&id)).await;
        if let Ok(Ok(image)) = seen {
            let now = image["status"].as_str();
            if now == Some(status) || now == Some("active") {
                return Some(Instant::now());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(STORE_POLL) => {}
            _ = stop.cancelled() => return None,
        }
    }
    None
}

// === (e) ===

/// The import methods the target Glance lists in `GET /v2/info/import`.
pub(super) async fn import_methods(
    ctx: &Ctx,
    api: &ImageApi,
    phase: &'static str,
) -> Result<Vec<String>, BenchError> {
    let info = timed(
        ctx,
        phase,
        "GET /v2/info/import",
        api.get("/v2/info/import"),
    )
    .await?;
    if !info.status.is_success() {
        return Err(failed(phase, answered("GET /v2/info/import", &info)));
    }
    Ok(info.json()["import-methods"]["value"]
        .as_array()
        .map(|methods| {
            methods
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// (e) Upstream's own glance-download, asked of the target Glance itself.
pub(super) async fn upstream(ctx: Arc<Ctx>) -> Result<Outcome, BenchError> {
    const PHASE: &str = "(e) upstream glance-download";
    let token = ctx.token().await?;
    let target = ctx.api(&ctx.target_url, &token);
    let methods = import_methods(&ctx, &target, PHASE).await?;
    if !methods.iter().any(|m| m == "glance-download") {
        return Ok(Outcome::NotOffered {
            reason: format!(
                "the target Glance does not list glance-download in GET /v2/info/import \
                 (it lists: {})",
                methods.join(", ")
            ),
        });
    }
    let id = create_target(&ctx, &target, PHASE, "upstream").await?;
    let meter = Meter::start();
    let (sent, accepted_at) = send_import(&ctx, PHASE, &target, &id).await?;
    let deadline = accepted_at + ctx.budget;
    loop {
        tokio::time::sleep(UPSTREAM_POLL).await;
        let image = timed(&ctx, PHASE, "reading the copy", target.image(&id)).await?;
        let status = image["status"].as_str().unwrap_or_default();
        let locked = image.get("os_glance_import_task").is_some();
        if status == "active" {
            if let Some(reason) = ctx.source.mismatch(&image) {
                return Err(failed(PHASE, format!("the copy is not verified: {reason}")));
            }
            break;
        }
        let gave_up = status == "queued" && !locked && accepted_at.elapsed() > UPSTREAM_GRACE;
        if gave_up || matches!(status, "killed" | "deleted" | "pending_delete") {
            let why = last_task_message(&ctx, &target, &id).await;
            return Err(failed(
                PHASE,
                format!("the import ended with the image {status}: {why}"),
            ));
        }
        if Instant::now() >= deadline {
            return Err(failed(PHASE, format!("no result within {:?}", ctx.budget)));
        }
    }
    let seconds = accepted_at.elapsed().as_secs_f64();
    let mut sample = meter.stop(ctx.source.size);
    sample.seconds = seconds;
    delete_target(&ctx, &target, &id).await;
    Ok(Outcome::Measured(Transfer {
        sample,
        accepted: Some(accepted_at.duration_since(sent).as_secs_f64()),
        to_store: None,
    }))
}

/// The newest task's message for `id` (Glance's words for a failed import).
async fn last_task_message(ctx: &Ctx, target: &ImageApi, id: &str) -> String {
    let path = format!("/v2/images/{id}/tasks");
    match tokio::time::timeout(ctx.request_timeout, target.get(&path)).await {
        Ok(Ok(answer)) => answer.json()["tasks"]
            .as_array()
            .and_then(|tasks| tasks.last())
            .and_then(|task| task["message"].as_str())
            .filter(|m| !m.is_empty())
            .unwrap_or("Glance gave no reason")
            .to_string(),
        _ => "its tasks could not be read".to_string(),
    }
}
