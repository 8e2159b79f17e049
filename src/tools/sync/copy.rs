//! One source image into one target region, from the skip check to a verified `active` copy.
//!
//! 1. Read what the source promises: `active`, a size, and a checksum or `os_hash_value`.
//! 2. Look for earlier copies in the target region: images of the user's project whose
//!    [`SOURCE_IMAGE_ID`] is the source id. An `active` one with the source's size and digests
//!    means there is nothing to do (skipped). A `queued` one with the source's formats (left by
//!    an earlier failed run) is reused; otherwise a new image is created with the source's name,
//!    visibility, formats, the properties glance-download copies, and our own properties.
//! 3. Move the bytes (`transfer.rs`): where the target region advertises glance-download, ask it
//!    to import and poll the task; elsewhere stream them ourselves through the crate's verified
//!    pipeline, never touching the disk.
//! 4. Re-read the copy: `active`, with the source's size, checksum and (same algorithm)
//!    `os_hash_value`.
//!
//! A failed copy is left `queued` (Glance puts it back), never `active`, and the next run reuses it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::backoff::Backoff;
use crate::glance::{error_message, Glance, Image, ImageId};
use crate::keystone::Token;
use crate::metadata;
use crate::tools::apiclient::{Answer, CallError, ImageApi};
use crate::verify::{self, Expected, Unverifiable};

use super::auth::Session;
use super::error::{CopyError, Failure, IdHolder};
use super::progress::{JobInfo, Observer};
use super::report::{Action, JobResult, Method};
use super::select::{encode, Pick, SourceProblem};
use super::{transfer, Tuning, SOURCE_CLOUD, SOURCE_IMAGE_ID, SOURCE_REGION};

/// The image signature properties (Glance's `signature_utils`): they sign the image data, so they
/// hold for a copy of the same bytes and are set on the copy when it is created.
pub const SIGNATURE_PROPERTIES: [&str; 4] = [
    "img_signature",
    "img_signature_hash_method",
    "img_signature_key_type",
    "img_signature_certificate_uuid",
];

/// Earlier copies looked at per image and region.
const MAX_COPIES_LISTED: usize = 100;

/// Attempts per job (three), the pause doubling from one second. A transient failure
/// ([`Failure::is_transient`]) is worth another go, and every step of a copy can be taken again:
/// a finished copy is found and skipped, a `queued` one left by the failed attempt is reused.
const JOB_BACKOFF: Backoff = Backoff::new(3, Duration::from_secs(1));

/// A target region and how bytes reach it.
#[derive(Debug)]
pub(super) struct Region {
    pub name: String,
    pub endpoint: String,
    pub method: Method,
}

/// The cloud the images are read from when it is not the targets' (`--from-cloud`): its own
/// sign-in and its own HTTP client, so its token only ever goes to its own services.
pub(super) struct Origin {
    /// The clouds.yaml entry, recorded on each copy as [`SOURCE_CLOUD`].
    pub name: String,
    pub session: Session,
    pub glance: Glance,
}

/// What every job of a run shares.
pub(super) struct Ctx {
    /// The targets' cloud (also the source's, unless `origin` says otherwise).
    pub session: Session,
    pub glance: Glance,
    /// Another cloud to read the source images from; never sent a target's token, and targets
    /// are never sent its token (bytes are always streamed through `sync`).
    pub origin: Option<Origin>,
    /// The source region's name and image endpoint.
    pub from: String,
    pub source: String,
    pub tuning: Tuning,
    pub dry_run: bool,
    /// Copies are created with their source's id.
    pub keep_id: bool,
    /// Property prefixes glance-download copies (Glance's defaults), copied on creation too.
    pub prefixes: Vec<String>,
}

impl Ctx {
    /// A valid token for the run's user, renewed when it is about to expire.
    pub(super) async fn token(&self) -> Result<Token, Failure> {
        self.session
            .token()
            .await
            .map_err(|e| Failure::Auth(e.to_string()))
    }

    /// The session of the source cloud: the origin's, else the run's.
    pub(super) fn source_session(&self) -> &Session {
        self.origin.as_ref().map_or(&self.session, |o| &o.session)
    }

    /// The Glance client of the source cloud.
    pub(super) fn source_glance(&self) -> &Glance {
        self.origin.as_ref().map_or(&self.glance, |o| &o.glance)
    }

    /// A valid token for the source cloud's user, renewed when it is about to expire.
    pub(super) async fn source_token(&self) -> Result<Token, Failure> {
        self.source_session()
            .token()
            .await
            .map_err(|e| Failure::Auth(e.to_string()))
    }

    /// The [`SOURCE_CLOUD`] our copies of this run carry: the origin's name, or none.
    pub(super) fn source_cloud(&self) -> Option<&str> {
        self.origin.as_ref().map(|o| o.name.as_str())
    }
}

/// One image × region.
pub(super) struct Job {
    pub info: JobInfo,
    pub pick: Arc<Pick>,
    pub region: Arc<Region>,
}

/// What a job learned on its way, reported even when it fails.
#[derive(Default)]
struct Trace {
    target_id: Option<String>,
    method: Option<Method>,
    /// Whether the observer was told the copy started (once, whatever the attempts).
    announced: bool,
}

/// Runs one job to its result; never fails (a failure is a result).
pub(super) async fn run(ctx: Arc<Ctx>, job: Job, observer: Arc<dyn Observer>) -> JobResult {
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut trace = Trace::default();
    let mut attempts = JOB_BACKOFF.start();
    let outcome = loop {
        done.store(0, Ordering::Relaxed);
        let failure = match copy(&ctx, &job, observer.as_ref(), &done, &mut trace).await {
            Err(failure) if failure.is_transient() => failure,
            outcome => break outcome,
        };
        let Some(pause) = attempts.failed() else {
            break Err(failure);
        };
        let attempt = attempts.failures();
        info!(image_id = %job.pick.id, region = %job.region.name, %failure, attempt, ?pause, "Copy attempt failed; trying again");
        tokio::time::sleep(pause).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let (action, error) = match outcome {
        Ok(action) => (action, None),
        Err(failure) => {
            let error = CopyError {
                image: job.pick.id.to_string(),
                region: job.region.name.clone(),
                failure,
            };
            // Reported through the observer and the summary; logged for RUST_LOG=info runs.
            info!(image_id = %job.pick.id, region = %job.region.name, %error, "Copy failed");
            (Action::Failed, Some(error.to_string()))
        }
    };
    let bytes = match action {
        Action::Copied => job.info.size,
        Action::Failed => done.load(Ordering::Relaxed),
        _ => 0,
    };
    let result = JobResult {
        index: job.info.index,
        source_id: job.pick.id.to_string(),
        name: job.info.name.clone(),
        region: job.region.name.clone(),
        target_id: trace.target_id,
        action,
        method: trace.method,
        bytes,
        seconds,
        error,
    };
    observer.finished(&job.info, &result);
    result
}

async fn copy(
    ctx: &Ctx,
    job: &Job,
    observer: &dyn Observer,
    done: &Arc<AtomicU64>,
    trace: &mut Trace,
) -> Result<Action, Failure> {
    let source = match &job.pick.found {
        Ok(image) => image,
        Err(SourceProblem::NotFound) => return Err(Failure::SourceNotFound(ctx.from.clone())),
        Err(SourceProblem::Unreadable(reason)) => {
            return Err(Failure::SourceUnreadable(reason.clone()))
        }
    };
    let expected = expected_of(source)?;
    let region = &job.region;
    let api = api(ctx, &region.endpoint).await?;

    let mut copies = earlier_copies(ctx, &api, &job.pick.id).await?;
    if ctx.keep_id {
        // Only a copy under the source's id is one: the id is what --keep-id promises.
        copies.retain(|c| c.0.get("id").and_then(Value::as_str) == Some(job.pick.id.as_str()));
    }
    if let Some(copy) = copies
        .iter()
        .find(|c| verify::check_stored(&expected, c).is_ok())
    {
        trace.target_id = id_of(copy);
        debug!(image_id = %job.pick.id, region = %region.name, target_id = ?trace.target_id, "Already copied");
        return Ok(Action::Skipped);
    }
    let reusable = copies
        .iter()
        .find(|c| reusable(c, source, &ctx.session.project_id))
        .and_then(id_of);
    trace.method = Some(region.method);
    if ctx.keep_id && reusable.is_none() {
        id_free(ctx, &api, &job.pick.id, &region.name).await?;
    }
    if ctx.dry_run {
        trace.target_id = reusable;
        return Ok(Action::WouldCopy);
    }
    // A bare token cannot be renewed: refuse a copy it would not outlive, naming its expiry.
    for session in [&ctx.session, ctx.source_session()] {
        session
            .token_for(copy_time(expected.size))
            .await
            .map_err(|e| Failure::Auth(e.to_string()))?;
    }
    let target = match reusable.as_deref().and_then(ImageId::parse) {
        Some(id) => id,
        None => create(ctx, &api, source, &job.pick.id).await?,
    };
    trace.target_id = Some(target.to_string());
    info!(image_id = %job.pick.id, region = %region.name, target_id = %target, method = region.method.as_str(), bytes = expected.size, "Copy started");
    if !trace.announced {
        observer.started(&job.info, region.method, done);
        trace.announced = true;
    }
    match region.method {
        Method::GlanceDownload => {
            transfer::import(ctx, region, &target, &job.pick.id, done).await?
        }
        Method::Stream => {
            transfer::stream(ctx, region, &target, &job.pick.id, &expected, done).await?
        }
    }
    verify(ctx, region, &target, &expected).await?;
    info!(image_id = %job.pick.id, region = %region.name, target_id = %target, "Copy verified and active");
    Ok(Action::Copied)
}

/// The rate a copy is assumed to reach at least, bytes per second, to tell whether a token that
/// cannot be renewed would outlive it.
pub(super) const ASSUMED_COPY_RATE: u64 = 10 * 1000 * 1000;

/// How long a copy of `size` bytes may take at [`ASSUMED_COPY_RATE`].
fn copy_time(size: u64) -> Duration {
    Duration::from_secs(size / ASSUMED_COPY_RATE)
}

/// An Image API client for `endpoint` with a fresh token.
pub(super) async fn api(ctx: &Ctx, endpoint: &str) -> Result<ImageApi, Failure> {
    let token = ctx.token().await?;
    Ok(ImageApi::with_client(
        endpoint,
        token.expose(),
        ctx.session.client().clone(),
    ))
}

/// `call` with the run's request timeout.
pub(super) async fn timed(
    ctx: &Ctx,
    call: &'static str,
    future: impl std::future::Future<Output = Result<Answer, CallError>>,
) -> Result<Answer, Failure> {
    let after = ctx.tuning.request_timeout;
    tokio::time::timeout(after, future)
        .await
        .map_err(|_| Failure::Timeout { call, after })?
        .map_err(Failure::Call)
}

pub(super) fn refused(call: &'static str, answer: &Answer) -> Failure {
    Failure::Status {
        call,
        status: answer.status,
        message: error_message(&answer.body),
    }
}

fn id_of(image: &Image) -> Option<String> {
    image
        .0
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// What the source promises about its data.
fn expected_of(source: &Image) -> Result<Expected, Failure> {
    Expected::from_source(source).map_err(|problem| match problem {
        Unverifiable::NotActive(status) => Failure::SourceNotActive(status),
        Unverifiable::NoSize => Failure::SourceNoSize,
        Unverifiable::NoDigest => Failure::SourceUnverifiable,
        Unverifiable::UnsupportedAlgo(algo) => Failure::UnsupportedAlgo(algo),
    })
}

/// A queued image of ours with the source's formats: an earlier run's copy to finish.
fn reusable(copy: &Image, source: &Image, project_id: &str) -> bool {
    copy.status() == Some("queued")
        && copy.owner() == Some(project_id)
        && copy.disk_format() == source.disk_format()
        && copy.container_format() == source.container_format()
}

/// The images of the user's project in the target region that are copies of `source_id`.
async fn earlier_copies(
    ctx: &Ctx,
    api: &ImageApi,
    source_id: &ImageId,
) -> Result<Vec<Image>, Failure> {
    let path = format!(
        "/v2/images?{SOURCE_IMAGE_ID}={}&owner={}&limit={MAX_COPIES_LISTED}",
        source_id,
        encode(&ctx.session.project_id)
    );
    let answer = timed(ctx, "listing earlier copies", api.get(&path)).await?;
    if !answer.status.is_success() {
        return Err(refused("listing earlier copies", &answer));
    }
    let doc = answer.json();
    let images = doc
        .get("images")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Checked here too: a Glance that ignored the filters must not make us skip wrongly.
    Ok(images
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(map) => Some(Image(map)),
            _ => None,
        })
        .filter(|i| {
            i.0.get(SOURCE_IMAGE_ID).and_then(Value::as_str) == Some(source_id.as_str())
                && i.owner() == Some(ctx.session.project_id.as_str())
                && i.0.get(SOURCE_CLOUD).and_then(Value::as_str) == ctx.source_cloud()
        })
        .collect())
}

/// Creates the copy's image record; returns its id.
async fn create(
    ctx: &Ctx,
    api: &ImageApi,
    source: &Image,
    source_id: &ImageId,
) -> Result<ImageId, Failure> {
    let mut body = Map::new();
    for key in ["name", "visibility", "disk_format", "container_format"] {
        if let Some(value) = source.0.get(key).filter(|v| !v.is_null()) {
            body.insert(key.to_string(), value.clone());
        }
    }
    for (key, value) in &source.0 {
        if metadata::is_synced(key, &ctx.prefixes) && value.is_string() {
            body.insert(key.clone(), value.clone());
        }
    }
    for key in SIGNATURE_PROPERTIES {
        if let Some(value) = source.0.get(key).filter(|v| v.is_string()) {
            body.insert(key.to_string(), value.clone());
        }
    }
    if ctx.keep_id {
        body.insert("id".into(), Value::from(source_id.as_str()));
    }
    body.insert(SOURCE_IMAGE_ID.into(), Value::from(source_id.as_str()));
    body.insert(SOURCE_REGION.into(), Value::from(ctx.from.as_str()));
    if let Some(cloud) = ctx.source_cloud() {
        body.insert(SOURCE_CLOUD.into(), Value::from(cloud));
    }
    let answer = timed(ctx, "image create", api.create_image(&Value::Object(body))).await?;
    if ctx.keep_id && answer.status == http::StatusCode::CONFLICT {
        return Err(Failure::IdTaken {
            id: source_id.to_string(),
            holder: IdHolder::Unseen,
        });
    }
    if answer.status.as_u16() != 201 {
        return Err(refused("image create", &answer));
    }
    answer
        .json()
        .get("id")
        .and_then(Value::as_str)
        .and_then(ImageId::parse)
        .ok_or_else(|| Failure::Status {
            call: "image create",
            status: answer.status,
            message: "the answer has no image id".into(),
        })
}

/// `--keep-id`: whether the source's id is free in the target region. An image there under that
/// id that is not a copy to skip or reuse is never overwritten: the copy fails, naming it.
async fn id_free(ctx: &Ctx, api: &ImageApi, id: &ImageId, region: &str) -> Result<(), Failure> {
    let answer = timed(
        ctx,
        "reading the target id",
        api.get(&format!("/v2/images/{id}")),
    )
    .await?;
    if answer.status == http::StatusCode::NOT_FOUND {
        return Ok(());
    }
    if !answer.status.is_success() {
        return Err(refused("reading the target id", &answer));
    }
    let image = match answer.json() {
        Value::Object(map) => Image(map),
        _ => Image(Map::new()),
    };
    let ours = image.owner() == Some(ctx.session.project_id.as_str())
        && image.0.get(SOURCE_IMAGE_ID).and_then(Value::as_str) == Some(id.as_str());
    debug!(image_id = %id, %region, ours, "Target id taken");
    Err(Failure::IdTaken {
        id: id.to_string(),
        holder: if ours {
            IdHolder::StaleCopy(image.status().unwrap_or("unknown").to_string())
        } else {
            IdHolder::Other
        },
    })
}

/// The copy must be `active` with the source's size and digests.
async fn verify(
    ctx: &Ctx,
    region: &Region,
    target: &ImageId,
    expected: &Expected,
) -> Result<(), Failure> {
    let token = ctx.token().await?;
    let image = ctx
        .glance
        .get_image(&region.endpoint, target, &token)
        .await
        .map_err(|error| Failure::Glance {
            call: "reading the copy",
            error,
        })?;
    verify::check_stored(expected, &image).map_err(|mismatch| Failure::Verify {
        target: target.to_string(),
        problem: mismatch.to_string(),
    })
}
