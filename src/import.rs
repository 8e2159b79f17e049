//! One glance-download import, from the accepted request to a verified `active` image or a
//! reverted `queued` one. This is the asynchronous part: the checks that answer the client were
//! done before the 202 (see `api::import_request`).
//!
//! 1. Find the source region's image endpoint in the caller's catalog (never in the request).
//! 2. Read the source image: it must be `active`, with a size and at least one digest; then open
//!    its data (the first bytes answered, nothing taken further). Meanwhile (from step 1 on)
//!    claim the target where every instance looks (`claim`) and read it back: the claim must name
//!    this task (else another instance won the image in the same moment and this task ends
//!    there, leaving the image alone) and the image must still be `queued`.
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

use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::claim;
use crate::config::Config;
use crate::config::SinkKind;
use crate::glance::{Glance, GlanceError, GlanceStatus, Image, ImageId, PatchOp};
use crate::http::HttpClient;
use crate::journal::{Entry, Journal, Revert};
use crate::keystone::{CatalogError, Identity, Keystone, ServiceCredentials, Token};
use crate::metadata;
use crate::metrics::Metrics;
use crate::pipeline::{
    self, Expected, Limits, PipelineError, Remote, RemoteSource, RetryPolicy, SourceError, Streams,
    TransferError, Verified,
};
use crate::sink::{S3Sink, SinkError, Sinks, StoreSink, Target};
use crate::stores::{StoreOutcome, StorePlan};
use crate::tasks::{ImportLock, Task};
use crate::verify::{self, Unverifiable};

use undo::Undo;

/// Writing the task's claim or summary on the image: one retry after a transient Glance failure
/// (e.g. its database briefly locked).
const PUBLISH_BACKOFF: Backoff = Backoff::new(2, Duration::from_millis(250));

/// Longest pause between two attempts to reach the source.
const MAX_SOURCE_RETRY_DELAY: Duration = Duration::from_secs(10);

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
    /// Another instance claimed the image at the same moment and won (its task id).
    #[error("Image has active task: import {0} claimed the image at the same moment (on another sidecar instance); this one did not start")]
    ClaimedElsewhere(String),
    #[error("data verification failed: {0}")]
    Pipeline(#[from] PipelineError),
    #[error("{0}")]
    Sink(SinkError),
    #[error("the sidecar is shutting down; the import was stopped before it finished")]
    ShuttingDown,
    #[error("after upload the target image {0}")]
    PostCheck(String),
}

/// What a running import holds on its image, read by its heartbeat and by its end.
#[derive(Default)]
struct Hold {
    /// The target Glance is changing the image's status: nothing is patched onto it meanwhile.
    quiet: AtomicBool,
    /// The image's claim names this task: its summary may be written there.
    claimed: AtomicBool,
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
                    | PipelineError::Source(SourceError::Compact(_))
            ) | ImportError::PostCheck(_)
        )
    }
}

/// Runs imports against the fronted Glance with one store sink.
pub struct Importer {
    pub glance: Glance,
    /// The client of the source's data reads (smaller reads: `http::SOURCE_READ_BUFFER`).
    pub sources: Glance,
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
    /// Whether source reads ask for the compact coding (`compact_transfer`).
    pub compact_transfer: bool,
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
    /// The importer `config` describes, reading source data through `sources`, writing through
    /// `glance` (and S3 when configured), counting into `metrics` and journaling into `journal`
    /// when there is one.
    pub fn new(
        config: &Config,
        client: &HttpClient,
        glance: &Glance,
        sources: &Glance,
        keystone: &Keystone,
        metrics: Arc<Metrics>,
        journal: Option<Journal>,
    ) -> Importer {
        let service = config
            .service_credentials
            .clone()
            .map(|creds| (keystone.clone(), creds));
        let s3 = config.s3.clone().map(|s3| {
            S3Sink::new(
                client.clone(),
                glance.clone(),
                &config.glance_url,
                s3,
                service.clone(),
                config.request_timeout,
            )
        });
        Importer {
            glance: glance.clone(),
            sources: sources.clone(),
            glance_url: config.glance_url.clone(),
            sinks: Sinks::new(glance.clone(), &config.glance_url, config.store_sink).with_s3(s3),
            inject: config.inject.clone(),
            inject_ignore_roles: config.inject_ignore_roles.clone(),
            limits: Limits {
                chunk_size: config.chunk_size,
                buffer_bytes: config.buffer_bytes,
            },
            retry: RetryPolicy {
                max_retries: config.source_retries,
                base_delay: config.retry_delay,
                max_delay: MAX_SOURCE_RETRY_DELAY,
                read_timeout: config.read_timeout,
            },
            streams: Streams {
                streams: config.source_streams,
                segment_size: config.segment_size,
                reorder_bytes: config.reorder_buffer,
            },
            compact_transfer: config.compact_transfer,
            total_timeout: config.total_timeout,
            prefixes: config.extra_properties.clone(),
            metrics,
            slots: Arc::new(Semaphore::new(config.max_concurrent_imports)),
            journal,
            abort: CancellationToken::new(),
            running: TaskTracker::new(),
            service,
        }
    }

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
            task: task.to_record(),
        };
        if let Err(error) = self.journal(&started).await {
            task.fail(format!("The import was not started: {error}"));
            return;
        }
        task.start(0);
        let started_at = tokio::time::Instant::now();
        let in_flight = Metrics::hold(&self.metrics.in_flight);
        info!(task_id = %task.id, image_id = %request.image_id, remote_image_id = %request.remote_image_id, region = %request.region, "Import started");
        let mut undo = Undo::default();
        let hold = Arc::new(Hold::default());
        match self
            .clone()
            .import_beating(&request, &task, &mut undo, &hold)
            .await
        {
            Ok(imported) => self.succeeded(&task, &request, imported, started_at),
            Err(error) => self.failed(&task, &request, error, &undo).await,
        }
        // An image this task did not claim is another import's: its summary is left alone.
        if hold.claimed.load(Ordering::Acquire) {
            self.publish(&task, &request).await;
        }
        let finished = Entry::finished(task.to_record());
        if let Err(error) = self.journal(&finished).await {
            warn!(task_id = %task.id, %error, "Failed to journal the end of a task");
        }
        drop(in_flight);
        drop(lock);
        drop(slot);
    }

    /// The import, with its summary refreshed on the image meanwhile, stopped at shutdown.
    async fn import_beating(
        self: Arc<Self>,
        request: &ImportRequest,
        task: &Arc<Task>,
        undo: &mut Undo,
        hold: &Arc<Hold>,
    ) -> Result<Imported, ImportError> {
        let beating = CancellationToken::new();
        let heart = tokio::spawn(self.clone().heartbeat(
            task.clone(),
            request.clone(),
            hold.clone(),
            beating.clone(),
        ));
        let result = tokio::select! {
            result = self.import(request, task, undo, hold) => result,
            _ = self.abort.cancelled() => Err(ImportError::ShuttingDown),
        };
        beating.cancel();
        let _ = heart.await;
        result
    }

    /// Counts a verified import and ends its task: `success`, or `failure` when a required
    /// store failed.
    fn succeeded(
        &self,
        task: &Task,
        request: &ImportRequest,
        imported: Imported,
        started_at: tokio::time::Instant,
    ) {
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

    /// Counts a failed import, puts the target back (see `undo`) and ends the task `failure`.
    async fn failed(&self, task: &Task, request: &ImportRequest, error: ImportError, undo: &Undo) {
        Metrics::inc(&self.metrics.imports_failed);
        if error.is_verification_failure() {
            Metrics::inc(&self.metrics.verification_failures);
        }
        let mut message = error.to_string();
        match self.undo(request, undo).await {
            Ok(None) => {}
            Ok(Some(aftermath)) => message.push_str(&format!("; {aftermath}")),
            Err(revert) => {
                message.push_str(&format!("; restoring the target image failed: {revert}"))
            }
        }
        warn!(task_id = %task.id, image_id = %request.image_id, %message, "Import failed");
        task.fail(message);
    }

    /// Refreshes the task's summary on the image every [`claim::HEARTBEAT`] until `stop`,
    /// once the image is claimed. Skips its beat while `quiet` (the target Glance is changing
    /// the image's status, see `StoreSink::glance_changes_status`); that status keeps other
    /// imports out meanwhile.
    async fn heartbeat(
        self: Arc<Self>,
        task: Arc<Task>,
        request: ImportRequest,
        hold: Arc<Hold>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(claim::HEARTBEAT) => {
                    if hold.claimed.load(Ordering::Acquire) && !hold.quiet.load(Ordering::Acquire) {
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
        let mut result = self.patch_summary(request, &ops).await;
        if matches!(&result, Err(e) if e.is_unauthorized()) {
            if let Some((keystone, creds)) = &self.service {
                if let Ok(token) = keystone.service_token(creds).await {
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

    /// Writes `ops` of the claim's namespace on the image with the caller's token, once more
    /// after a transient Glance failure (e.g. its database briefly locked).
    async fn patch_summary(
        &self,
        request: &ImportRequest,
        ops: &[PatchOp],
    ) -> Result<Image, GlanceError> {
        let mut attempts = PUBLISH_BACKOFF.start();
        loop {
            let result = self
                .glance
                .patch_image(&self.glance_url, &request.image_id, &request.token, ops)
                .await;
            let transient =
                matches!(&result, Err(e) if e.status().is_none_or(|s| s.is_server_error()));
            match attempts.failed() {
                Some(pause) if transient => tokio::time::sleep(pause).await,
                _ => return result,
            }
        }
    }

    async fn journal(&self, entry: &Entry) -> Result<(), crate::journal::JournalError> {
        match &self.journal {
            Some(journal) => journal.append(entry).await,
            None => Ok(()),
        }
    }

    /// Steps 1–6 of the module docs, in order.
    async fn import(
        &self,
        request: &ImportRequest,
        task: &Task,
        undo: &mut Undo,
        hold: &Hold,
    ) -> Result<Imported, ImportError> {
        // The source is found, read and its data opened while the target is claimed (each is a
        // round trip or two away, over a long link too), so that even an import that fails at
        // once has claimed the image and ends there as every instance sees. A claim that fails
        // (lost to another import, or refused) ends the import at once, the source dropped
        // unread, however long it is still retrying; a source that fails first waits for the
        // claim, then a lost claim is reported first, then the source's failure. Nothing reaches
        // the target before both are done.
        let source = async {
            let remote = request
                .identity
                .catalog
                .image_endpoint(&request.region, &request.interface)?;
            let (image, expected) = self.read_source(request, &remote, task).await?;
            let data = self.open_source(request, remote, &expected).await?;
            Ok::<_, ImportError>((image, expected, data))
        };
        let claim = self.claimed_target(request, task, &hold.claimed);
        tokio::pin!(source, claim);
        let (source, target) = tokio::select! {
            target = &mut claim => {
                let target = target?;
                (source.await, Ok(target))
            }
            source = &mut source => (source, claim.await),
        };
        if let Err(lost @ ImportError::ClaimedElsewhere(_)) = target {
            return Err(lost);
        }
        let (source_image, expected, source) = source?;
        let target = target?;
        let sink = self.sinks.pick(request.sink);
        self.sync_metadata(
            request,
            task,
            undo,
            &source_image,
            &target,
            sink.keeps_bytes(),
        )
        .await?;
        task.note("Copying data");
        if sink.keeps_bytes() {
            undo.sent = Some(expected.clone());
        }
        // From here until the import ends, Glance may be changing the image's status.
        hold.quiet
            .store(sink.glance_changes_status(), Ordering::Release);
        let verified = self
            .stream_data(request, task, source, &expected, sink)
            .await?;

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

    /// Step 2: the source image, which must be `active` with a size and a digest.
    async fn read_source(
        &self,
        request: &ImportRequest,
        remote: &str,
        task: &Task,
    ) -> Result<(Image, Expected), ImportError> {
        let source_error = |error: GlanceError| {
            source_failure(error, request, |error| ImportError::Source {
                region: request.region.clone(),
                error,
            })
        };
        task.note("Reading the source image");
        let source = self
            .glance
            .get_image(remote, &request.remote_image_id, &request.token)
            .await
            .map_err(source_error)?;
        let expected = expected_of(&source, &request.remote_image_id)?;
        task.set_total(expected.size);
        Ok((source, expected))
    }

    /// Step 2: the target claimed for this task where every instance looks, then read back. It
    /// must name this task (an instance that claimed it at the same moment and wrote last has
    /// won, and the image is left to it) and still be `queued`.
    ///
    /// This runs after the `202`: a claim already on the image answered 409 then; only two
    /// instances accepting an import of one image within the same moment end here, one as a
    /// failed task.
    async fn claimed_target(
        &self,
        request: &ImportRequest,
        task: &Task,
        claimed: &AtomicBool,
    ) -> Result<Image, ImportError> {
        self.patch_summary(request, &claim::claim_ops(task))
            .await
            .map_err(target_error)?;
        let target = self.target_image(request).await?;
        match target.0.get(claim::TASK_ID).and_then(Value::as_str) {
            Some(id) if id == task.id => claimed.store(true, Ordering::Release),
            other => {
                let other = other.map_or_else(|| "(none)".into(), crate::tasks::bounded_text);
                return Err(ImportError::ClaimedElsewhere(other));
            }
        }
        match target.status() {
            Some("queued") => Ok(target),
            other => Err(ImportError::TargetNotQueued(
                other.unwrap_or("unknown").to_string(),
            )),
        }
    }

    /// Step 3: formats and prefixed properties (and the configured injection) in one patch,
    /// journaled first so that a crash between the two can still be reverted.
    async fn sync_metadata(
        &self,
        request: &ImportRequest,
        task: &Task,
        undo: &mut Undo,
        source: &Image,
        target: &Image,
        keeps_bytes: bool,
    ) -> Result<(), ImportError> {
        // With glance-stage the target's own plugins run (injection included); otherwise the
        // configured injection is mirrored here, skipped for callers with an ignored role.
        let ignored = request
            .identity
            .roles
            .iter()
            .any(|r| self.inject_ignore_roles.contains(r));
        let inject: &[(String, String)] = if keeps_bytes && !ignored {
            &self.inject
        } else {
            &[]
        };
        let sync = metadata::plan_with(source, target, &self.prefixes, inject);
        if sync.apply.is_empty() {
            return Ok(());
        }
        task.note("Syncing metadata");
        let entry = Entry::Synced {
            task_id: task.id.clone(),
            revert: Revert::Ops(sync.revert.clone()),
        };
        if let Err(error) = self.journal(&entry).await {
            warn!(task_id = %task.id, %error, "Failed to journal the metadata sync");
        }
        self.glance
            .patch_image(
                &self.glance_url,
                &request.image_id,
                &request.token,
                &sync.apply,
            )
            .await
            .map_err(target_error)?;
        undo.synced = Some(sync.revert);
        Ok(())
    }

    /// Step 2, before anything reaches the target: the source's data, opened (retrying transient
    /// failures).
    async fn open_source(
        &self,
        request: &ImportRequest,
        base: String,
        expected: &Expected,
    ) -> Result<RemoteSource, ImportError> {
        let remote = Remote {
            glance: self.sources.clone(),
            base,
            id: request.remote_image_id.clone(),
            token: request.token.clone(),
            size: expected.size,
            compact: self.compact_transfer,
        };
        let mut source = RemoteSource::new(remote, self.retry, self.streams);
        match source.connect().await {
            Ok(()) => Ok(source),
            Err(error) => Err(self.pipeline_error(error.into(), request)),
        }
    }

    /// Step 4: the source's data through the hashers into the store sink, within
    /// `total_timeout`; the sink commits only once size and digests equal the source's.
    async fn stream_data(
        &self,
        request: &ImportRequest,
        task: &Task,
        source: RemoteSource,
        expected: &Expected,
        sink: &dyn StoreSink,
    ) -> Result<Verified, ImportError> {
        let retries = source.retries();
        let (body, pump) = pipeline::start(
            source,
            expected.clone(),
            self.limits,
            task.bytes_done.clone(),
        );
        let target = Target {
            image_id: request.image_id.clone(),
            size: expected.size,
            stores: request.stores.stores.clone(),
            all_stores_must_succeed: request.stores.all_must_succeed,
            token: request.token.clone(),
        };
        let transfer = async {
            pipeline::transfer(expected.size, pump, sink.store(&target, body))
                .await
                .map_err(|error| match error {
                    TransferError::Pipeline(e) => self.pipeline_error(e, request),
                    TransferError::Store(e) => self.sink_error(e),
                })
        };
        let outcome = tokio::time::timeout(self.total_timeout, transfer).await;
        self.metrics
            .source_retries
            .fetch_add(retries.load(Ordering::Relaxed), Ordering::Relaxed);
        outcome.map_err(|_| ImportError::TimedOut(self.total_timeout))?
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
        let checked = if keeps_bytes {
            verify::check_stored(&Expected::from(verified), &image)
        } else {
            // The target's import plugins may have transformed the verified bytes on purpose.
            verify::check_active(&image)
        };
        checked.map_err(|mismatch| ImportError::PostCheck(mismatch.to_string()))?;
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

/// The source's promises, or why it cannot be imported verifiably.
fn expected_of(source: &Image, id: &ImageId) -> Result<Expected, ImportError> {
    Expected::from_source(source).map_err(|problem| match problem {
        Unverifiable::NotActive(status) => ImportError::SourceNotActive(status),
        Unverifiable::NoSize => ImportError::SourceNoSize(id.clone()),
        Unverifiable::NoDigest => ImportError::SourceUnverifiable(id.clone()),
        Unverifiable::UnsupportedAlgo(algo) => ImportError::UnsupportedAlgo(algo.0),
    })
}
