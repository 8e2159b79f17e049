//! The `sync` command: copy a set of images from one region to others, idempotently.
//!
//! 1. Sign in with a password ([`Credentials`]: clouds.yaml or `OS_*`) and read the catalog: the
//!    image endpoints of the source and target regions.
//! 2. Ask each target region how bytes can reach it: if its `GET /v2/info/import` lists
//!    glance-download (the sidecar, or an upstream Glance with it enabled), it imports them
//!    itself; otherwise `sync` streams them.
//! 3. Select the source images: explicit ids, or the active images passing the filters.
//! 4. Copy every image into every target region, [`Options::concurrency`] at a time (see
//!    `copy.rs` for one copy from skip check to verification), showing progress through an
//!    [`Observer`].
//! 5. Return a [`Summary`]: one result per image × region (copied, skipped, failed).
//!
//! Copies are marked with [`SOURCE_IMAGE_ID`], so a second run finds them and skips them.
//!
//! Between two clouds ([`run_across`], `--from-cloud`/`--to-cloud`) each cloud is signed in to
//! with its own credentials and HTTP client; the source endpoint comes from the source cloud's
//! catalog, the targets from the targets' cloud's, and the bytes are always streamed (step 2
//! is skipped): a region of one cloud cannot fetch from the other with its token.
//!
//! [`Credentials`]: crate::tools::sync::Credentials
//! [`Options::concurrency`]: crate::tools::sync::Options::concurrency
//! [`Observer`]: crate::tools::sync::Observer
//! [`Summary`]: crate::tools::sync::Summary
//! [`SOURCE_IMAGE_ID`]: crate::tools::sync::SOURCE_IMAGE_ID
//! [`run_across`]: crate::tools::sync::run_across

mod auth;
mod cli;
mod copy;
mod credentials;
mod error;
mod plan;
mod progress;
mod prune;
mod report;
mod select;
mod transfer;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

pub use auth::{AuthError, Session};
pub use cli::SyncArgs;
pub(crate) use cli::{warn_if_unverified, with_credentials};
pub use copy::SIGNATURE_PROPERTIES;
pub use credentials::{
    AppCredential, AuthMethod, Credentials, CredentialsError, Domain, Environment, Named,
};
pub use error::{CopyError, Failure, IdHolder, OptionsError, SyncError};
pub use plan::{PlanError, PlanFile, MAX_PLAN_BYTES, MAX_PLAN_ENTRIES, MAX_PLAN_IMAGES};
pub use progress::{for_terminal, Bars, JobInfo, Lines, Observer, Plan, Quiet};
pub use prune::Prune;
pub use report::{json_text, printable, Action, JobResult, Method, Summary};
pub use select::{parse_property, Filters, Pick, Selection, SourceProblem};

use crate::glance::{Glance, ImageId};
use crate::http::client_with_tls;
use crate::pipeline::{Limits, RetryPolicy};
use crate::tools::apiclient::ImageApi;

use copy::{Ctx, Job, Origin, Region};

/// The namespace of the properties `sync` puts on its copies.
pub const PROPERTY_PREFIX: &str = crate::claim::PREFIX;

/// On a copy: the id of the image it was copied from. How a later run recognizes it.
pub const SOURCE_IMAGE_ID: &str = "glance_download_source_image_id";

/// On a copy: the region it was copied from.
pub const SOURCE_REGION: &str = "glance_download_source_region";

/// On a copy made from another cloud (`--from-cloud`): that cloud's clouds.yaml entry. Later
/// runs from that cloud recognize (skip, reuse, prune) only copies carrying its name, and runs
/// inside one cloud only copies carrying none.
pub const SOURCE_CLOUD: &str = "glance_download_source_cloud";

/// Copies running at once unless `--concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Most copies running at once.
pub const MAX_CONCURRENCY: usize = 64;

/// How often the display is refreshed while copies run.
const TICK: Duration = Duration::from_millis(200);

/// Timeouts, polling and pipeline bounds of a run, with production defaults.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Seconds allowed for TCP connect.
    pub connect_timeout: Duration,
    /// Time allowed for one JSON call (Keystone or Glance).
    pub request_timeout: Duration,
    /// Time allowed for one image's data to reach a region (import or stream).
    pub transfer_timeout: Duration,
    /// Pause between two polls of an import task.
    pub poll_interval: Duration,
    /// Images asked for per list page.
    pub page_size: usize,
    /// Pipeline frame size and buffering when streaming.
    pub limits: Limits,
    /// Reconnection policy for the source when streaming.
    pub retry: RetryPolicy,
}

impl Default for Tuning {
    fn default() -> Self {
        use crate::config::defaults;
        Tuning {
            connect_timeout: Duration::from_secs(defaults::CONNECT_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(defaults::REQUEST_TIMEOUT_SECS),
            transfer_timeout: Duration::from_secs(defaults::TOTAL_TIMEOUT_SECS),
            poll_interval: Duration::from_secs(2),
            page_size: select::PAGE_SIZE,
            limits: Limits {
                chunk_size: defaults::CHUNK_SIZE,
                buffer_bytes: defaults::BUFFER_BYTES,
            },
            retry: RetryPolicy {
                max_retries: defaults::SOURCE_RETRIES,
                base_delay: Duration::from_millis(defaults::RETRY_DELAY_MS),
                max_delay: Duration::from_secs(10),
                read_timeout: Duration::from_secs(defaults::READ_TIMEOUT_SECS),
            },
        }
    }
}

/// A validated `sync` command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The source region.
    pub from: String,
    /// The target regions, without duplicates, in the order given.
    pub to: Vec<String>,
    pub selection: Selection,
    /// Copies running at once, 1 to [`MAX_CONCURRENCY`].
    pub concurrency: usize,
    /// List what would be copied or skipped; change nothing.
    pub dry_run: bool,
    /// Create each copy with its source image's id (`--keep-id`).
    pub keep_id: bool,
    /// Delete or hide our copies whose source is no longer selected (`--prune`); see `prune.rs`.
    pub prune: Option<Prune>,
    pub tuning: Tuning,
}

impl Options {
    /// Checks a command line: regions, ids or filters (not both), concurrency bounds.
    pub fn new(
        from: &str,
        to: &[String],
        ids: &[String],
        filters: Filters,
        concurrency: usize,
        dry_run: bool,
    ) -> Result<Options, OptionsError> {
        Options::checked(from, to, ids, filters, concurrency, dry_run, true)
    }

    /// As [`Options::new`], for targets in another cloud than the source (`--to-cloud`): a
    /// target region may have the source region's name.
    pub fn across_clouds(
        from: &str,
        to: &[String],
        ids: &[String],
        filters: Filters,
        concurrency: usize,
        dry_run: bool,
    ) -> Result<Options, OptionsError> {
        Options::checked(from, to, ids, filters, concurrency, dry_run, false)
    }

    fn checked(
        from: &str,
        to: &[String],
        ids: &[String],
        filters: Filters,
        concurrency: usize,
        dry_run: bool,
        one_cloud: bool,
    ) -> Result<Options, OptionsError> {
        let from = from.trim();
        if from.is_empty() {
            return Err(OptionsError::NoSource);
        }
        let mut targets: Vec<String> = Vec::new();
        for region in to.iter().flat_map(|t| t.split(',')).map(str::trim) {
            if region.is_empty() || targets.iter().any(|t| t.eq_ignore_ascii_case(region)) {
                continue;
            }
            if one_cloud && region.eq_ignore_ascii_case(from) {
                return Err(OptionsError::TargetIsSource(region.to_string()));
            }
            targets.push(region.to_string());
        }
        if targets.is_empty() {
            return Err(OptionsError::NoTargets);
        }
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(OptionsError::Concurrency {
                got: concurrency,
                max: MAX_CONCURRENCY,
            });
        }
        filters.validate()?;
        let selection = if ids.is_empty() {
            Selection::Filters(filters)
        } else {
            if !filters.is_empty() {
                return Err(OptionsError::IdsAndFilters);
            }
            let mut parsed: Vec<ImageId> = Vec::new();
            for text in ids {
                let id =
                    ImageId::parse(text).ok_or_else(|| OptionsError::BadImageId(text.clone()))?;
                if !parsed.contains(&id) {
                    parsed.push(id);
                }
            }
            Selection::Ids(parsed)
        };
        Ok(Options {
            from: from.to_string(),
            to: targets,
            selection,
            concurrency,
            dry_run,
            keep_id: false,
            prune: None,
            tuning: Tuning::default(),
        })
    }
}

/// The cloud the images are read from when it is another than the targets' (`--from-cloud`).
#[derive(Debug, Clone)]
pub struct SourceCloud {
    /// Its clouds.yaml entry (recorded on the copies as [`SOURCE_CLOUD`]).
    pub name: String,
    pub credentials: Credentials,
}

/// Runs a sync inside one cloud; per-image failures are in the summary, setup failures are
/// errors.
///
/// The steps of the module's description: sign in and find the regions, select the images,
/// plan one job per image × region, copy, sum up.
pub async fn run(
    options: &Options,
    credentials: &Credentials,
    observer: Arc<dyn Observer>,
) -> Result<Summary, SyncError> {
    run_with(options, None, credentials, observer).await
}

/// Runs a sync from `source`'s region `options.from` into `target`'s regions `options.to`: each
/// cloud signed in to separately, each token sent only to its own cloud, the bytes always
/// streamed through `sync` (one Keystone cannot vouch for the other's tokens, so no region can
/// fetch them itself).
pub async fn run_across(
    options: &Options,
    source: &SourceCloud,
    target: &Credentials,
    observer: Arc<dyn Observer>,
) -> Result<Summary, SyncError> {
    run_with(options, Some(source), target, observer).await
}

/// Signs in to `credentials`' cloud: its session and the Glance client of its services.
async fn sign_in(
    credentials: &Credentials,
    tuning: &Tuning,
) -> Result<(Session, Glance), SyncError> {
    let client = client_with_tls(tuning.connect_timeout, credentials.tls()?);
    let session =
        Session::open(client.clone(), credentials.clone(), tuning.request_timeout).await?;
    Ok((session, Glance::new(client, tuning.request_timeout)))
}

/// Signs in to the source cloud if it is another one.
async fn origin(
    source: Option<&SourceCloud>,
    tuning: &Tuning,
) -> Result<Option<Origin>, SyncError> {
    let Some(cloud) = source else {
        return Ok(None);
    };
    let (session, glance) = sign_in(&cloud.credentials, tuning).await?;
    Ok(Some(Origin {
        name: cloud.name.clone(),
        session,
        glance,
    }))
}

pub(super) async fn run_with(
    options: &Options,
    source_cloud: Option<&SourceCloud>,
    credentials: &Credentials,
    observer: Arc<dyn Observer>,
) -> Result<Summary, SyncError> {
    let started = Instant::now();
    let tuning = options.tuning;
    let (session, glance) = sign_in(credentials, &tuning).await?;
    let origin = origin(source_cloud, &tuning).await?;
    let from = origin.as_ref().map_or(&session, |o| &o.session);
    let source = from
        .image_endpoint(&options.from)
        .map_err(|e| in_cloud(source_cloud, e))?;
    let regions = target_regions(&session, options, origin.is_some()).await?;

    let token = from.token().await?;
    let api = ImageApi::with_client(&source, token.expose(), from.client().clone());
    let picks = select_images(&api, options).await?;
    let scope = prune::Scope::of(&options.selection, &picks);

    let jobs = plan(picks, &regions);
    observer.begin(&Plan {
        from: options.from.clone(),
        to: options.to.clone(),
        images: jobs.len() / regions.len().max(1),
        jobs: jobs.len(),
        bytes: jobs.iter().map(|j| j.info.size).sum(),
        dry_run: options.dry_run,
    });

    let ctx = Arc::new(Ctx {
        glance,
        session,
        origin,
        from: options.from.clone(),
        source,
        tuning,
        dry_run: options.dry_run,
        keep_id: options.keep_id,
        prefixes: crate::config::defaults::EXTRA_PROPERTIES
            .iter()
            .map(|p| p.to_string())
            .collect(),
    });
    let planned = jobs.len();
    let mut results = schedule(ctx.clone(), jobs, options.concurrency, observer.clone()).await;
    results.sort_by_key(|r| r.index);
    if let Some(mode) = options.prune {
        let pruned = prune::run(&ctx, &regions, &scope, mode, planned, observer.as_ref()).await;
        results.extend(pruned);
    }
    let summary = Summary {
        from: options.from.clone(),
        to: options.to.clone(),
        clouds: None,
        dry_run: options.dry_run,
        results,
        seconds: started.elapsed().as_secs_f64(),
    };
    observer.end(&summary);
    Ok(summary)
}

/// A catalog error, naming the source cloud when it is another one.
fn in_cloud(cloud: Option<&SourceCloud>, error: crate::keystone::CatalogError) -> SyncError {
    match cloud {
        Some(cloud) => SyncError::CloudEndpoint {
            cloud: cloud.name.clone(),
            error,
        },
        None => SyncError::Endpoint(error),
    }
}

/// The target regions: each one's image endpoint, and how bytes reach it ([`discover`]; always
/// streamed when the source is in another cloud).
async fn target_regions(
    session: &Session,
    options: &Options,
    across: bool,
) -> Result<Vec<Arc<Region>>, SyncError> {
    let tuning = options.tuning;
    let mut regions = Vec::with_capacity(options.to.len());
    for name in &options.to {
        let endpoint = session.image_endpoint(name)?;
        let method = match across {
            true => Method::Stream,
            false => discover(session, &endpoint, tuning.request_timeout).await,
        };
        tracing::debug!(region = %name, %endpoint, method = method.as_str(), "Target region");
        regions.push(Arc::new(Region {
            name: name.clone(),
            endpoint,
            method,
        }));
    }
    Ok(regions)
}

/// The source images: the ids given, or the active images passing the filters.
async fn select_images(api: &ImageApi, options: &Options) -> Result<Vec<Pick>, SyncError> {
    let tuning = options.tuning;
    let picks = match &options.selection {
        Selection::Ids(ids) => select::by_ids(api, ids, tuning.request_timeout).await,
        Selection::Filters(filters) => {
            let glob = filters.validate().ok().flatten();
            select::list(
                api,
                filters,
                glob.as_ref(),
                tuning.page_size,
                tuning.request_timeout,
            )
            .await
            .map_err(|e| match e {
                select::ListError::Failed(reason) => SyncError::List {
                    region: options.from.clone(),
                    reason,
                },
                select::ListError::TooMany => SyncError::TooManyImages {
                    region: options.from.clone(),
                    limit: select::MAX_IMAGES,
                },
            })?
        }
    };
    Ok(picks)
}

/// One job per image and target region, numbered in that order.
fn plan(picks: Vec<Pick>, regions: &[Arc<Region>]) -> Vec<Job> {
    let count = picks.len() * regions.len();
    let mut jobs = Vec::with_capacity(count);
    for pick in picks.into_iter().map(Arc::new) {
        for region in regions {
            jobs.push(Job {
                info: JobInfo {
                    index: jobs.len() + 1,
                    jobs: count,
                    source_id: pick.id.to_string(),
                    name: pick.name(),
                    region: region.name.clone(),
                    size: pick.size(),
                },
                pick: pick.clone(),
                region: region.clone(),
            });
        }
    }
    jobs
}

/// Runs `jobs` with at most `concurrency` at once, ticking the observer meanwhile.
async fn schedule(
    ctx: Arc<Ctx>,
    jobs: Vec<Job>,
    concurrency: usize,
    observer: Arc<dyn Observer>,
) -> Vec<JobResult> {
    let mut results = Vec::with_capacity(jobs.len());
    let mut pending = jobs.into_iter();
    let mut running = JoinSet::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        while running.len() < concurrency {
            match pending.next() {
                Some(job) => {
                    running.spawn(copy::run(ctx.clone(), job, observer.clone()));
                }
                None => break,
            }
        }
        if running.is_empty() {
            return results;
        }
        tokio::select! {
            joined = running.join_next() => match joined {
                Some(Ok(result)) => results.push(result),
                Some(Err(error)) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Some(Err(_)) | None => {}
            },
            _ = ticker.tick() => observer.tick(),
        }
    }
}

/// How bytes reach the region at `endpoint`: glance-download if it advertises it, else stream.
async fn discover(session: &Session, endpoint: &str, timeout: Duration) -> Method {
    let Ok(token) = session.token().await else {
        return Method::Stream;
    };
    let api = ImageApi::with_client(endpoint, token.expose(), session.client().clone());
    let answer = match tokio::time::timeout(timeout, api.get("/v2/info/import")).await {
        Ok(Ok(answer)) if answer.status.is_success() => answer,
        _ => return Method::Stream,
    };
    let offers = answer.json()["import-methods"]["value"]
        .as_array()
        .is_some_and(|methods| {
            methods
                .iter()
                .any(|m| m.as_str() == Some(crate::api::METHOD))
        });
    if offers {
        Method::GlanceDownload
    } else {
        Method::Stream
    }
}
