//! `bench` against a real cloud: the sinks' costs measured side by side on one source image.
//!
//! `glance-download-sidecar bench --os-cloud NAME --from REGION1 --to REGION2
//! --target-glance-url URL` signs in as `sync` does (clouds.yaml or `OS_*`), makes or picks the
//! source image in the source region, starts the sidecar's own server twice in this process in
//! front of the target Glance (one per sink), then measures, `--runs` times, interleaved:
//!
//! - (a) the hash-only ceiling of this machine ([`super::hash_two_threads_measured`]);
//! - (b) Glance's own `PUT /file` of the same bytes (the target's ingest ceiling);
//! - (c) the sidecar with the `glance-upload` sink; (d) with `glance-stage`;
//! - (e) upstream's own glance-download, asked of the target Glance directly.
//!
//! With `--small` it measures instead how quickly one small image is imported, through the
//! sidecar and by upstream (see `small`); with `--passthrough`, what a sidecar in front of a
//! Glance adds to Image API calls (see `passthrough`).
//!
//! Because the sidecar runs in this process (threads `gds-sidecar`), its CPU seconds and peak
//! memory are this process's. Every image the bench creates is deleted at the end, whatever
//! happened; one it could not delete is named in the report.
//!
//! [`super::hash_two_threads_measured`]: crate::tools::bench::hash_two_threads_measured

mod images;
mod passthrough;
mod phases;
mod report;
mod small;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

pub use report::{
    CloudPhase, CloudReport, CloudRun, Goal, Outcome, Ratio, Setup, Transfer, GOAL_UPLOAD_OVER_PUT,
    GOAL_UPLOAD_OVER_UPSTREAM, PHASES, RATIOS,
};

use super::measure::{Machine, Meter, Sample};
use super::sim::runtime;
use super::BenchError;
use crate::api::{App, Server};
use crate::config::{Config, SinkKind};
use crate::glance::ImageId;
use crate::hash::HashAlgo;
use crate::http::client_with_tls;
use crate::pipeline::Limits;
use crate::tools::apiclient::ImageApi;
use crate::tools::sync::{Credentials, Session};
pub use passthrough::{
    run_passthrough, Call, DataSample, Latency, PassOptions, PassReport, Way, DEFAULT_CALLS,
    GOAL_ADDED_P99_MS, GOAL_RATE_RATIO, WARM_UPS,
};
use phases::{Ctx, Sink, SourceImage};
pub use small::{run_small, SmallReport, SmallSample, TokenUse};

/// How long the bench idles before and after the runs to measure the machine's background load.
pub const BACKGROUND_WINDOW: Duration = Duration::from_secs(2);

/// What to measure on a real cloud.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// The source region (holds the source image).
    pub from: String,
    /// The target region's name (the label; its catalog endpoint is compared with the URL).
    pub to: String,
    /// The target Glance itself, not a sidecar in front of it.
    pub target_glance_url: String,
    /// An existing active image of the source region to copy, instead of a generated one.
    pub image: Option<ImageId>,
    /// Bytes of the generated source image (ignored with `image`).
    pub size: u64,
    /// Times each phase is measured (interleaved: a, b, c, d, e, a, …).
    pub runs: usize,
    /// The sidecar's pipeline bounds.
    pub limits: Limits,
    /// Longest one JSON call may take.
    pub request_timeout: Duration,
    /// Longest a TCP connect may take.
    pub connect_timeout: Duration,
    /// How long the background load is sampled before and after the runs.
    pub background_window: Duration,
}

impl CloudOptions {
    /// Checks a real-cloud command line as given: `--from`, `--to` and `--target-glance-url`
    /// are required, and `--size` does not go with `--image` (the size is the image's).
    pub fn from_flags(
        from: Option<&str>,
        to: Option<&str>,
        target_glance_url: Option<&str>,
        image: Option<&str>,
        size: Option<u64>,
        runs: usize,
        limits: Limits,
    ) -> Result<CloudOptions, BenchError> {
        let missing: Vec<&str> = [
            ("--from REGION", from),
            ("--to REGION", to),
            ("--target-glance-url URL", target_glance_url),
        ]
        .iter()
        .filter(|(_, given)| given.is_none())
        .map(|(flag, _)| *flag)
        .collect();
        if !missing.is_empty() {
            return Err(BenchError::Options(format!(
                "a real-cloud bench needs {}",
                missing.join(", ")
            )));
        }
        if image.is_some() && size.is_some() {
            return Err(BenchError::Options(
                "--size does not go with --image (the image's own size is used)".into(),
            ));
        }
        CloudOptions::new(
            from.unwrap_or_default(),
            to.unwrap_or_default(),
            target_glance_url.unwrap_or_default(),
            image,
            size.unwrap_or(super::Options::default().size),
            runs,
            limits,
        )
    }

    /// Checks and normalizes a real-cloud command line.
    pub fn new(
        from: &str,
        to: &str,
        target_glance_url: &str,
        image: Option<&str>,
        size: u64,
        runs: usize,
        limits: Limits,
    ) -> Result<CloudOptions, BenchError> {
        let refuse = |what: String| Err(BenchError::Options(what));
        let (from, to) = (from.trim(), to.trim());
        if from.is_empty() || to.is_empty() {
            return refuse("--from and --to must name regions".into());
        }
        if from.eq_ignore_ascii_case(to) {
            return refuse(format!("--from and --to are the same region ({from})"));
        }
        let Some(target_glance_url) = normalize_glance_url(target_glance_url) else {
            return refuse(format!(
                "--target-glance-url {target_glance_url:?} is not an http(s) URL"
            ));
        };
        let image = match image {
            Some(text) => match ImageId::parse(text) {
                Some(id) => Some(id),
                None => return refuse(format!("--image {text:?} is not an image id (a UUID)")),
            },
            None => None,
        };
        let options = CloudOptions {
            from: from.to_string(),
            to: to.to_string(),
            target_glance_url,
            image,
            size,
            runs,
            limits,
            request_timeout: Duration::from_secs(crate::config::defaults::REQUEST_TIMEOUT_SECS),
            connect_timeout: Duration::from_secs(crate::config::defaults::CONNECT_TIMEOUT_SECS),
            background_window: BACKGROUND_WINDOW,
        };
        let shared = super::Options {
            size,
            runs,
            limits,
            ..super::Options::default()
        };
        shared.validate()?;
        Ok(options)
    }

    /// Longest one phase's transfer may take: two minutes plus 5 MB/s for the image.
    pub fn budget(&self, size: u64) -> Duration {
        Duration::from_secs(120 + size / 5_000_000)
    }
}

/// `http(s)://host[:port][/path]` without a trailing `/` or `/v2`; `None` otherwise.
pub fn normalize_glance_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/v2").unwrap_or(url);
    let uri = url.parse::<http::Uri>().ok()?;
    let web = matches!(uri.scheme_str(), Some("http" | "https"));
    (web && uri.authority().is_some()).then(|| url.to_string())
}

/// Two in-process sidecars in front of the target Glance, one per sink.
struct Sidecars {
    upload: Server,
    stage: Server,
}

/// Runs the bench against a real cloud; `progress` receives one line per step (for stderr).
/// Cancelling `cancel` stops the current phase; the cleanup runs in every case.
pub fn run_cloud(
    options: &CloudOptions,
    credentials: &Credentials,
    progress: &mut dyn FnMut(&str),
    cancel: CancellationToken,
) -> Result<CloudReport, BenchError> {
    let bench_rt = runtime("gds-bench")?;
    let sidecar_rt = runtime("gds-sidecar")?;
    let mut machine = Machine::now();
    progress(&format!(
        "Signing in at {} ({})",
        credentials.auth_url, credentials.origin
    ));
    let (ctx, notes, created_source) =
        bench_rt.block_on(prepare(options, credentials, progress, cancel.clone()))?;
    let ctx = Arc::new(ctx);
    let background_before = background(&bench_rt, options.background_window, &cancel);
    let generated = created_source.is_some();
    let outcome = measure(
        options,
        credentials,
        &ctx,
        generated,
        &bench_rt,
        &sidecar_rt,
        progress,
    );
    let leftovers = bench_rt.block_on(images::cleanup(&ctx, created_source.as_deref()));
    for leftover in &leftovers {
        progress(&format!("Could not delete {leftover}"));
    }
    let runs = outcome?;
    let background_after = background(&bench_rt, options.background_window, &cancel);
    machine.finish();
    let setup = Setup {
        from: options.from.clone(),
        to: options.to.clone(),
        source_url: ctx.source_url.clone(),
        target_glance_url: ctx.target_url.clone(),
        size: ctx.source.size,
        disk_format: ctx.source.disk_format.clone(),
        os_hash_algo: ctx.source.os_hash_algo.clone().unwrap_or_default(),
        source_created: created_source.is_some(),
    };
    let mut report = CloudReport::new(
        setup,
        machine,
        (background_before, background_after),
        runs,
        notes,
    );
    report.leftovers = leftovers;
    Ok(report)
}

/// Signs in, finds both Glances, and makes (or reads) the source image.
async fn prepare(
    options: &CloudOptions,
    credentials: &Credentials,
    progress: &mut dyn FnMut(&str),
    cancel: CancellationToken,
) -> Result<(Ctx, Vec<String>, Option<String>), BenchError> {
    let trust = credentials.tls()?;
    let client = client_with_tls(options.connect_timeout, trust);
    let session =
        Session::open(client.clone(), credentials.clone(), options.request_timeout).await?;
    let source_url = session.image_endpoint(&options.from)?;
    let target_url = options.target_glance_url.clone();
    let mut notes = report::standard_notes("the source's os_hash_algo");
    match session.image_endpoint(&options.to) {
        Ok(url) if url != target_url => notes.push(format!(
            "the catalog's {} image endpoint is {url}; the bench drove the Glance at {target_url} \
             directly (its sidecars run in this process)",
            options.to
        )),
        Ok(_) => {}
        Err(error) => notes.push(format!("{error}; the bench used {target_url}")),
    }
    let token = session.token().await?;
    let source = ImageApi::with_client(&source_url, token.expose(), client.clone());
    let probe = ImageApi::with_client(&target_url, token.expose(), client.clone());
    let budget = options.budget(options.size);
    let mut ctx = Ctx {
        session,
        client,
        from: options.from.clone(),
        source_url: source_url.clone(),
        target_url: target_url.clone(),
        source: SourceImage {
            id: String::new(),
            size: options.size,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            disk_format: "raw".into(),
            container_format: "bare".into(),
        },
        budget,
        request_timeout: options.request_timeout,
        created: Mutex::new(Vec::new()),
        cancel,
    };
    // The target must answer before anything is created anywhere.
    phases::import_methods(&ctx, &probe, "checking the target Glance").await?;
    let (record, created) = match &options.image {
        Some(id) => {
            let what = format!("reading source image {id} in {}", options.from);
            let record = phases::timed(&ctx, "setup", &what, source.image(id.as_str())).await?;
            (record, None)
        }
        None => {
            progress(&format!(
                "Creating a {} raw source image of generated bytes in {}",
                super::report::bytes(options.size),
                options.from
            ));
            let id = images::create_source(&ctx, &source, options.size).await?;
            let record =
                phases::timed(&ctx, "setup", "reading the source image", source.image(&id))
                    .await
                    .unwrap_or_default();
            (record, Some(id))
        }
    };
    match SourceImage::from_record(&record) {
        Some(found) => {
            ctx.budget = options.budget(found.size);
            ctx.source = found;
        }
        None => {
            // Leave nothing behind: the caller's cleanup only knows about what `prepare` returned.
            if let Some(id) = &created {
                images::delete(&source, id, options.request_timeout).await;
            }
            return Err(BenchError::Check(format!(
                "the source image is not active with a size and a checksum (status {})",
                record["status"]
            )));
        }
    }
    Ok((ctx, notes, created))
}

/// Starts the sidecars and runs every phase `options.runs` times.
fn measure(
    options: &CloudOptions,
    credentials: &Credentials,
    ctx: &Arc<Ctx>,
    generated: bool,
    bench_rt: &Runtime,
    sidecar_rt: &Runtime,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<CloudRun>, BenchError> {
    let sidecars = sidecar_rt.block_on(start_sidecars(options, credentials, &ctx.target_url))?;
    let result = (|| {
        let algo = ctx
            .source
            .os_hash_algo
            .as_deref()
            .and_then(|a| a.parse::<HashAlgo>().ok())
            .unwrap_or(HashAlgo::Sha512);
        let mut runs = Vec::with_capacity(options.runs);
        for index in 1..=options.runs {
            let ceiling = ceiling(ctx, algo, options.limits, generated)?;
            let upload = (sidecars.upload.url(), sidecars.upload.app.clone());
            let stage = (sidecars.stage.url(), sidecars.stage.app.clone());
            let b = on(bench_rt, ctx, phases::glance_put(ctx.clone()))?;
            let c = on(
                bench_rt,
                ctx,
                phases::sidecar(ctx.clone(), upload.0, upload.1, Sink::Upload),
            )?;
            let d = on(
                bench_rt,
                ctx,
                phases::sidecar(ctx.clone(), stage.0, stage.1, Sink::Stage),
            )?;
            let e = on(bench_rt, ctx, phases::upstream(ctx.clone()))?;
            let run = CloudRun {
                ceiling,
                transfers: [b, c, d, e],
            };
            let rate = |key| run.rate(key).map_or("—".into(), |r| format!("{r:.0}"));
            progress(&format!(
                "run {index}/{}: MB/s (a) {} (b) {} (c) {} (d) {} (e) {}",
                options.runs,
                rate("ceiling"),
                rate("glance_put"),
                rate("sidecar_upload"),
                rate("sidecar_stage"),
                rate("upstream"),
            ));
            runs.push(run);
        }
        Ok(runs)
    })();
    sidecar_rt.block_on(async {
        sidecars.upload.shutdown(Duration::ZERO).await;
        sidecars.stage.shutdown(Duration::ZERO).await;
    });
    result
}

/// The sidecar's own server, twice: `glance-upload` and `glance-stage`, no journal.
async fn start_sidecars(
    options: &CloudOptions,
    credentials: &Credentials,
    target_url: &str,
) -> Result<Sidecars, BenchError> {
    let config = |sink| Config {
        bind: ([127, 0, 0, 1], 0).into(),
        glance_url: target_url.to_string(),
        auth_url: credentials.auth_url.clone(),
        ca_file: credentials.cacert.clone(),
        store_sink: sink,
        chunk_size: options.limits.chunk_size,
        buffer_bytes: options.limits.buffer_bytes,
        task_journal: None,
        ..Config::default()
    };
    let start = |config: Config| async move {
        let app = App::new(config.clone()).map_err(|e| BenchError::Check(e.to_string()))?;
        Ok::<_, BenchError>(Server::bind(app, config.bind).await?)
    };
    Ok(Sidecars {
        upload: start(config(SinkKind::GlanceUpload)).await?,
        stage: start(config(SinkKind::GlanceStage)).await?,
    })
}

/// (a) MD5 ‖ `algo` over generated bytes of the source's size; checked against the source's
/// digests when the bench `generated` it (they are the same bytes).
fn ceiling(
    ctx: &Ctx,
    algo: HashAlgo,
    limits: Limits,
    generated: bool,
) -> Result<Sample, BenchError> {
    let (sample, measured) = super::metered_ceiling(algo, ctx.source.size, limits)?;
    let digests = &measured.digests;
    let same_algo = ctx.source.os_hash_algo.as_deref() == Some(algo.name());
    let os_hash_differs =
        same_algo && ctx.source.os_hash_value.as_deref() != Some(digests.other.as_str());
    if generated
        && (ctx.source.checksum.as_deref() != Some(digests.md5.as_str()) || os_hash_differs)
    {
        return Err(BenchError::Check(
            "the ceiling's digests differ from the generated source image's".into(),
        ));
    }
    Ok(sample)
}

/// Runs a phase on the bench runtime's workers (threads `gds-bench`), stopped by `ctx.cancel`.
fn on<F>(rt: &Runtime, ctx: &Ctx, phase: F) -> Result<Outcome, BenchError>
where
    F: std::future::Future<Output = Result<Outcome, BenchError>> + Send + 'static,
{
    let task = rt.spawn(phase);
    let abort = task.abort_handle();
    let cancel = ctx.cancel.clone();
    rt.block_on(async move {
        tokio::select! {
            joined = task => joined.map_err(|_| BenchError::Panicked)?,
            _ = cancel.cancelled() => {
                abort.abort();
                Err(BenchError::Interrupted)
            }
        }
    })
}

/// CPU cores other processes kept busy while the bench idled for `window`.
fn background(rt: &Runtime, window: Duration, cancel: &CancellationToken) -> Option<f64> {
    let meter = Meter::start();
    rt.block_on(async {
        tokio::select! {
            _ = tokio::time::sleep(window) => {}
            _ = cancel.cancelled() => {}
        }
    });
    meter.stop(0).others_cores()
}
