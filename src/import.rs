//! One glance-download import, from the accepted request to a verified `active` image or a
//! reverted `queued` one. This is the asynchronous part: the checks that answer the client were
//! done before the 202 (see `api::import`).
//!
//! 1. Find the source region's image endpoint in the caller's catalog (never in the request).
//! 2. Read the source image: it must be `active`, with a size and at least one digest.
//! 3. Sync `disk_format`, `container_format` and the prefixed properties in one JSON patch.
//! 4. Stream the source's data through the hashers into the store sink; the sink commits only
//!    after size, MD5 and `os_hash_value` equal the source's.
//! 5. Re-read the target: `active` with the source's size and digests.
//! 6. On a multi-store Glance, the stores beyond the first: upstream's `copy-image` (see `copy`),
//!    unless the sink wrote them all itself (`glance-stage`).
//!
//! On failure up to step 5 the image is put back as it was: `queued` (Glance does that when the
//! upload is cut short: the upload is chunked, so every server sees the cut), formats and
//! properties restored; an image some server made `active` anyway with other data than the
//! source's is deactivated (see `undo`). A store failing in step 6 leaves the image `active` in
//! the stores that worked, as upstream's `copy-image` does.

mod copy;
mod undo;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::claim;
use crate::config::SinkKind;
use crate::glance::{Glance, GlanceError, GlanceStatus, Image, ImageId, PatchOp};
use crate::hash::HashAlgo;
use crate::journal::{Entry, Journal};
use crate::keystone::{CatalogError, Identity, Keystone, ServiceCredentials, Token};
use crate::metadata;
use crate::metrics::Metrics;
use crate::pipeline::{
    self, Expected, Limits, PipelineError, Remote, RemoteSource, RetryPolicy, SourceError, Streams,
    Verified,
};
use crate::sink::{SinkError, Sinks, Target};
use crate::stores::{StoreOutcome, StorePlan};
use crate::tasks::{ImportLock, Task};

use undo::Undo;

/// What the client asked for, after the synchronous checks.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub image_id: ImageId,
    pub remote_image_id: ImageId,
    pub region: String,
    pub interface: String,
    /// The stores to write (empty on a single-store Glance), resolved before the 202.
    pub stores: StorePlan,
    /// The sink asked for by the request, if any (else the configured one).
    pub sink: Option<SinkKind>,
    pub token: Token,
    pub identity: Identity,
}

/// Why an import failed; the text becomes the task's `message`.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Endpoint(#[from] CatalogError),
    #[error("source image {id} was not found in region {region}")]
    SourceNotFound { id: ImageId, region: String },
    #[error("Source image status should be active instead of {0}")]
    SourceNotActive(String),
    #[error("Size attribute of remote image {0} could not be determined.")]
    SourceNoSize(ImageId),
    #[error(
        "source image {0} has neither checksum nor os_hash_value: its data cannot be verified"
    )]
    SourceUnverifiable(ImageId),
    #[error("source image uses os_hash_algo {0:?}, which this sidecar cannot compute")]
    UnsupportedAlgo(String),
    #[error("the data copy did not finish within {0:?}")]
    TimedOut(Duration),
    #[error("the caller's token expired or was revoked during the import")]
    TokenExpired,
    #[error("source Glance in region {region}: {error}")]
    Source { region: String, error: GlanceError },
    #[error("target Glance: {0}")]
    Target(GlanceError),
    /// The caller's token expired and the sidecar's own Keystone user could not log in either.
    #[error("target Glance: glance could not be reached: the caller's token expired and the service credentials failed: {0}")]
    ServiceCredentials(#[source] crate::keystone::KeystoneError),
    #[error("the target image is {0}, not queued, so it can no longer be imported into")]
    TargetNotQueued(String),
    #[error("data verification failed: {0}")]
    Pipeline(#[from] PipelineError),
    #[error("{0}")]
    Sink(SinkError),
    #[error("the sidecar is shutting down; the import was stopped before it finished")]
    ShuttingDown,
    #[error("after upload the target image {0}")]
    PostCheck(String),
}

/// A verified import, and what became of each requested store.
#[derive(Debug)]
pub struct Imported {
    pub verified: Verified,
    /// Every planned store's fate (multi-store Glance only).
    pub stores: Option<StoreOutcome>,
    /// Why some stores failed, when some did.
    pub store_failure: Option<String>,
}

impl ImportError {
    /// Whether the data itself was refused (size or digest mismatch).
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            ImportError::Pipeline(
                PipelineError::ChecksumMismatch { .. }
                    | PipelineError::HashMismatch { .. }
                    | PipelineError::TooLong { .. }
                    | PipelineError::TooShort { .. }
                    | PipelineError::Source(SourceError::BadRange(_))
            ) | ImportError::PostCheck(_)
        )
    }
}

/// Runs imports against the fronted Glance with one store sink.
pub struct Importer {
    pub glance: Glance,
    pub glance_url: String,
    /// The store sinks, and which one serves requests that do not choose.
    pub sinks: Sinks,
    /// Properties injected after the sync (glance-upload), and the roles that skip it.
    pub inject: Vec<(String, String)>,
    pub inject_ignore_roles: Vec<String>,
    pub limits: Limits,
    pub retry: RetryPolicy,
    /// How the source is read (one stream or parallel ranges).
    pub streams: Streams,
    pub total_timeout: Duration,
    pub prefixes: Vec<String>,
    pub metrics: Arc<Metrics>,
    /// One permit per running import (`max_concurrent_imports`).
    pub slots: Arc<Semaphore>,
    pub journal: Option<Journal>,
    /// Fires when running imports must stop (after the shutdown grace period).
    pub abort: CancellationToken,
    /// Every running import, so shutdown can wait for them.
    pub running: TaskTracker,
    /// The sidecar's own Keystone user, to restore an image when the caller's token expired.
    pub service: Option<(Keystone, ServiceCredentials)>,
}

// === impl Importer ===

impl Importer {
    /// Drives the task held by `lock` to `success` or `failure`, holding `slot` meanwhile.
    pub async fn run(
        self: Arc<Self>,
        lock: ImportLock,
        request: ImportRequest,
        slot: OwnedSemaphorePermit,
    ) {
        let task = lock.task.clone();
        let started = Entry::Started {
            task_id: task.id.clone(),
            image_id: request.image_id.to_string(),
            glance_url: self.glance_url.clone(),
            task: task.to_json(),
        };
        if let Err(error) = self.journal(&started).await {
            task.fail(format!("The import was not started: {error}"));
            return;
        }
        task.start(0);
        let started_at = std::time::Instant::now();
        Metrics::inc(&self.metrics.in_flight);
        info!(task_id = %task.id, image_id = %request.image_id, remote_image_id = %request.remote_image_id, region = %request.region, "Import started");
        let mut undo = Undo::default();
        let beating = CancellationToken::new();
        let quiet = Arc::new(AtomicBool::new(false));
        let heart = tokio::spawn(self.clone().heartbeat(
            task.clone(),
            request.clone(),
            quiet.clone(),
            beating.clone(),
        ));
        let result = tokio::select! {
            result = self.import(&request, &task, &mut undo, &quiet) => result,
            _ = self.abort.cancelled() => Err(ImportError::ShuttingDown),
        };
        beating.cancel();
        let _ = heart.await;
        match result {
            Ok(imported) => {
                let verified = &imported.verified;
                self.metrics
                    .bytes_imported
                    .fetch_add(verified.size, Ordering::Relaxed);
                let seconds = started_at.elapsed().as_secs_f64().max(1e-6);
                self.metrics
                    .throughput
                    .observe(verified.size as f64 / 1e6 / seconds);
                info!(task_id = %task.id, image_id = %request.image_id, bytes = verified.size, "Import verified and active");
                let mut verification = json!({
                    "size": verified.size,
                    "checksum": verified.checksum,
                    "os_hash_algo": verified.os_hash_algo.name(),
                    "os_hash_value": verified.os_hash_value,
                    "verified": true,
                });
                if let Some(outcome) = &imported.stores {
                    verification["stores"] = outcome.to_json();
                    if let Some(reason) = &imported.store_failure {
                        verification["stores"]["reason"] = reason.as_str().into();
                    }
                }
                match imported.stores.as_ref().filter(|o| !o.failed.is_empty()) {
                    Some(outcome) if request.stores.all_must_succeed => {
                        Metrics::inc(&self.metrics.imports_failed);
                        let message = required_store_failed(outcome, imported.store_failure);
                        warn!(task_id = %task.id, image_id = %request.image_id, %message, "Import failed in a required store");
                        task.fail_verified(message, verification);
                    }
                    outcome => {
                        if let Some(outcome) = outcome {
                            warn!(task_id = %task.id, image_id = %request.image_id, failed = %outcome.failed.join(","), "Some stores failed; all_stores_must_succeed is false");
                        }
                        Metrics::inc(&self.metrics.imports_succeeded);
                        task.succeed(verification);
                    }
                }
            }
            Err(error) => {
                Metrics::inc(&self.metrics.imports_failed);
                if error.is_verification_failure() {
                    Metrics::inc(&self.metrics.verification_failures);
                }
                let mut message = error.to_string();
                match self.undo(&request, &undo).await {
                    Ok(None) => {}
                    Ok(Some(aftermath)) => message.push_str(&format!("; {aftermath}")),
                    Err(revert) => {
                        message.push_str(&format!("; restoring the target image failed: {revert}"))
                    }
                }
                warn!(task_id = %task.id, image_id = %request.image_id, %message, "Import failed");
                task.fail(message);
            }
        }
        self.publish(&task, &request).await;
        let finished = Entry::Finished {
            task_id: task.id.clone(),
            status: task.status().as_str().to_string(),
            message: task.message(),
            task: task.to_json(),
        };
        if let Err(error) = self.journal(&finished).await {
            warn!(task_id = %task.id, %error, "Failed to journal the end of a task");
        }
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        drop(lock);
        drop(slot);
    }

    /// Refreshes the task's summary on the image every [`claim::HEARTBEAT`] until `stop`.
    /// Skips its beat while `quiet` (the target Glance is changing the image's status, see
    /// `StoreSink::glance_changes_status`); that status keeps other imports out meanwhile.
    async fn heartbeat(
        self: Arc<Self>,
        task: Arc<Task>,
        request: ImportRequest,
        quiet: Arc<AtomicBool>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(claim::HEARTBEAT) => {
                    if !quiet.load(Ordering::Acquire) {
                        self.publish(&task, &request).await;
                    }
                }
            }
        }
    }

    /// Writes the task's summary on the image (best effort: the import does not depend on it),
    /// with the sidecar's own credentials when the caller's token no longer works.
    async fn publish(&self, task: &Task, request: &ImportRequest) {
        let ops = claim::summary_ops(task);
        let url = &self.glance_url;
        let mut result = self
            .glance
            .patch_image(url, &request.image_id, &request.token, &ops)
            .await;
        // One retry for a transient Glance failure (e.g. its database briefly locked).
        if matches!(&result, Err(e) if e.status().is_none_or(|s| s.is_server_error())) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            result = self
                .glance
                .patch_image(url, &request.image_id, &request.token, &ops)
                .await;
        }
        if matches!(&result, Err(e) if e.is_unauthorized()) {
            if let Some((keystone, creds)) = &self.service {
                if let Ok(token) = keystone.password_token(creds).await {
                    result = self
                        .glance
                        .patch_image(url, &request.image_id, &token, &ops)
                        .await;
                    if matches!(&result, Err(e) if e.is_unauthorized()) {
                        keystone.forget_service_token(&token).await;
                    }
                }
            }
        }
        if let Err(error) = result {
            warn!(task_id = %task.id, image_id = %request.image_id, %error, "Failed to publish the task's state on the image");
        }
    }

    async fn journal(&self, entry: &Entry) -> Result<(), crate::journal::JournalError> {
        match &self.journal {
            Some(journal) => journal.append(entry).await,
            None => Ok(()),
        }
    }

    async fn import(
        &self,
        request: &ImportRequest,
        task: &Task,
        undo: &mut Undo,
        quiet: &AtomicBool,
    ) -> Result<Imported, ImportError> {
        let token = &request.token;
        let remote = request
            .identity
            .catalog
            .image_endpoint(&request.region, &request.interface)?;
        let source_error = |error: GlanceError| {
            source_failure(error, request, |error| ImportError::Source {
                region: request.region.clone(),
                error,
            })
        };

        task.note("Reading the source image");
        let source = self
            .glance
            .get_image(&remote, &request.remote_image_id, token)
            .await
            .map_err(source_error)?;
        let expected = expected_of(&source, &request.remote_image_id)?;
        task.set_total(expected.size);

        let target = self.target_image(request).await?;
        if target.status() != Some("queued") {
            return Err(ImportError::TargetNotQueued(
                target.status().unwrap_or("unknown").to_string(),
            ));
        }
        let sink = self.sinks.pick(request.sink);
        // With glance-stage the target's own plugins run (injection included); otherwise the
        // configured injection is mirrored here, skipped for callers with an ignored role.
        let ignored = request
            .identity
            .roles
            .iter()
            .any(|r| self.inject_ignore_roles.contains(r));
        let inject: &[(String, String)] = if sink.keeps_bytes() && !ignored {
            &self.inject
        } else {
            &[]
        };
        let sync = metadata::plan_with(&source, &target, &self.prefixes, inject);
        if !sync.apply.is_empty() {
            task.note("Syncing metadata");
            // Journaled before the patch, so a crash between the two can still be reverted.
            let revert =
                serde_json::Value::Array(sync.revert.iter().map(PatchOp::to_json).collect());
            let entry = Entry::Synced {
                task_id: task.id.clone(),
                revert,
            };
            if let Err(error) = self.journal(&entry).await {
                warn!(task_id = %task.id, %error, "Failed to journal the metadata sync");
            }
            self.glance
                .patch_image(&self.glance_url, &request.image_id, token, &sync.apply)
                .await
                .map_err(target_error)?;
            undo.synced = Some(sync.revert.clone());
        }

        task.note("Copying data");
        let remote = Remote {
            glance: self.glance.clone(),
            base: remote.clone(),
            id: request.remote_image_id.clone(),
            token: token.clone(),
            size: expected.size,
        };
        let mut source = RemoteSource::new(remote, self.retry, self.streams);
        let retries = source.retries();
        if let Err(error) = source.connect().await {
            return Err(self.pipeline_error(error.into(), request));
        }
        if sink.keeps_bytes() {
            undo.sent = Some(expected.clone());
        }
        // From here until the import ends, Glance may be changing the image's status.
        quiet.store(sink.glance_changes_status(), Ordering::Release);
        let (body, pump) = pipeline::start(
            source,
            expected.clone(),
            self.limits,
            task.bytes_done.clone(),
        );
        let sink_target = Target {
            image_id: request.image_id.clone(),
            size: expected.size,
            stores: request.stores.stores.clone(),
            all_stores_must_succeed: request.stores.all_must_succeed,
            token: token.clone(),
        };
        let transfer = async {
            if expected.size == 0 {
                // Nothing to hold back: verify before the (empty) upload starts.
                let verified = pump.await?;
                sink.store(&sink_target, body)
                    .await
                    .map_err(|e| self.sink_error(e))?;
                return Ok(verified);
            }
            let (stored, pumped) = tokio::join!(sink.store(&sink_target, body), pump);
            match (pumped, stored) {
                (Err(PipelineError::SinkGone), Err(e)) => Err(self.sink_error(e)),
                (Err(e), _) => Err(self.pipeline_error(e, request)),
                (Ok(_), Err(e)) => Err(self.sink_error(e)),
                (Ok(verified), Ok(())) => Ok(verified),
            }
        };
        let outcome = tokio::time::timeout(self.total_timeout, transfer).await;
        self.metrics
            .source_retries
            .fetch_add(retries.load(Ordering::Relaxed), Ordering::Relaxed);
        let verified = outcome.map_err(|_| ImportError::TimedOut(self.total_timeout))??;
        task.note("Verifying the stored image");
        let image = self
            .post_check(request, &verified, sink.keeps_bytes())
            .await?;
        let (stores, store_failure) = self
            .other_stores(request, &image, sink.writes_every_store(), task)
            .await;
        Ok(Imported {
            verified,
            stores,
            store_failure,
        })
    }

    /// What became of every planned store once the image is active and verified: read off the
    /// image when the sink wrote them all, else after copying to the stores beyond the first.
    async fn other_stores(
        &self,
        request: &ImportRequest,
        image: &Image,
        sink_wrote_all: bool,
        task: &Task,
    ) -> (Option<StoreOutcome>, Option<String>) {
        let plan = &request.stores;
        if plan.stores.is_empty() {
            return (None, None);
        }
        if sink_wrote_all {
            let outcome = StoreOutcome::of(&plan.stores, &image.0);
            let reason = (!outcome.failed.is_empty()).then(|| {
                "the target Glance's import did not write them (see os_glance_failed_import)"
                    .to_string()
            });
            return (Some(outcome), reason);
        }
        let mut outcome = StoreOutcome {
            succeeded: plan.first().map(str::to_string).into_iter().collect(),
            failed: Vec::new(),
        };
        if plan.rest().is_empty() {
            return (Some(outcome), None);
        }
        let on = copy::CopiedImage {
            glance: &self.glance,
            base: &self.glance_url,
            id: &request.image_id,
            token: &request.token,
        };
        let copied = copy::copy_image(
            on,
            plan.rest(),
            plan.all_must_succeed,
            self.total_timeout,
            task,
        )
        .await;
        let reason = match copied {
            Ok(copied) => {
                outcome.succeeded.extend(copied.outcome.succeeded);
                outcome.failed.extend(copied.outcome.failed);
                copied.reason
            }
            Err(error) => {
                // The copy's end was not seen: none of these stores is confirmed.
                outcome.failed.extend(plan.rest().iter().cloned());
                Some(error.to_string())
            }
        };
        (Some(outcome), reason)
    }

    fn pipeline_error(&self, error: PipelineError, request: &ImportRequest) -> ImportError {
        source_failure(error, request, ImportError::Pipeline)
    }

    fn sink_error(&self, error: SinkError) -> ImportError {
        with_caller_token(error, ImportError::Sink)
    }

    async fn target_image(&self, request: &ImportRequest) -> Result<Image, ImportError> {
        self.glance
            .get_image(&self.glance_url, &request.image_id, &request.token)
            .await
            .map_err(target_error)
    }

    /// The stored image must be `active` with the source's size and digests.
    async fn post_check(
        &self,
        request: &ImportRequest,
        verified: &Verified,
        keeps_bytes: bool,
    ) -> Result<Image, ImportError> {
        let image = self.target_image(request).await?;
        if image.status() != Some("active") {
            return Err(ImportError::PostCheck(format!(
                "is {}, not active",
                image.status().unwrap_or("unknown")
            )));
        }
        if !keeps_bytes {
            // The target's import plugins may have transformed the verified bytes on purpose.
            return Ok(image);
        }
        if image.size() != Some(verified.size) {
            return Err(ImportError::PostCheck(format!(
                "has size {:?}, the source has {}",
                image.size(),
                verified.size
            )));
        }
        if let Some(checksum) = image.checksum() {
            if !checksum.eq_ignore_ascii_case(&verified.checksum) {
                return Err(ImportError::PostCheck(format!(
                    "has checksum {checksum}, the source has {}",
                    verified.checksum
                )));
            }
        }
        if image.os_hash_algo() == Some(verified.os_hash_algo.name()) {
            let value = image.os_hash_value().unwrap_or_default();
            if !value.eq_ignore_ascii_case(&verified.os_hash_value) {
                return Err(ImportError::PostCheck(format!(
                    "has os_hash_value {value}, the source has {}",
                    verified.os_hash_value
                )));
            }
        }
        Ok(image)
    }
}

/// The task message when a store failed and `all_stores_must_succeed` is true.
fn required_store_failed(outcome: &StoreOutcome, reason: Option<String>) -> String {
    let mut message = format!(
        "store(s) {} failed and all_stores_must_succeed is true",
        outcome.failed.join(",")
    );
    if let Some(reason) = reason {
        message.push_str(&format!(": {reason}"));
    }
    if !outcome.succeeded.is_empty() {
        message.push_str(&format!(
            "; the verified image stays active in store(s) {}",
            outcome.succeeded.join(",")
        ));
    }
    message
}

fn target_error(error: GlanceError) -> ImportError {
    with_caller_token(error, ImportError::Target)
}

/// The import's error for a call made with the caller's token: `TokenExpired` when Glance
/// refused the token (401), else `other(error)`.
fn with_caller_token<E: GlanceStatus>(
    error: E,
    other: impl FnOnce(E) -> ImportError,
) -> ImportError {
    if error.is_unauthorized() {
        ImportError::TokenExpired
    } else {
        other(error)
    }
}

/// The same for a call to the source region, where a 404 means the source image is not there.
fn source_failure<E: GlanceStatus>(
    error: E,
    request: &ImportRequest,
    other: impl FnOnce(E) -> ImportError,
) -> ImportError {
    if error.is_not_found() {
        return ImportError::SourceNotFound {
            id: request.remote_image_id.clone(),
            region: request.region.clone(),
        };
    }
    with_caller_token(error, other)
}

/// What the source image promises: status, size and digests.
fn expected_of(source: &Image, id: &ImageId) -> Result<Expected, ImportError> {
    let status = source.status().unwrap_or("unknown");
    if status != "active" {
        return Err(ImportError::SourceNotActive(status.to_string()));
    }
    let size = source
        .size()
        .ok_or_else(|| ImportError::SourceNoSize(id.clone()))?;
    let os_hash = match (source.os_hash_algo(), source.os_hash_value()) {
        (Some(algo), Some(value)) => Some((
            algo.parse::<HashAlgo>()
                .map_err(|e| ImportError::UnsupportedAlgo(e.0))?,
            value.to_string(),
        )),
        _ => None,
    };
    let checksum = source.checksum().map(str::to_string);
    if checksum.is_none() && os_hash.is_none() {
        return Err(ImportError::SourceUnverifiable(id.clone()));
    }
    Ok(Expected {
        size,
        checksum,
        os_hash,
    })
}
