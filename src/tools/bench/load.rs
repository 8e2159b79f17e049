//! `bench --load`: the sidecar under many clients at once, and under a flood of failing imports.
//!
//! A fake Keystone and two fake Glance regions run in this process on loopback; the sidecar runs
//! as a child process (`serve`, with a task journal in a temporary directory) in front of the
//! target region, so its memory is its own. At the same time, for a bounded number of seconds:
//!
//! - `clients` clients send small calls (`GET /v2/images`, `GET /v2/images/{id}`,
//!   `GET /v2/schemas/image`), alternately through the sidecar and straight to the target Glance,
//!   so both see the same load and the added latency is the difference of the two in one run;
//! - [`UPLOAD_STREAMS`] clients each upload generated images of `size` bytes with
//!   `PUT /v2/images/{id}/file` through the pass-through (streamed, never buffered);
//! - [`IMPORT_STREAMS`] clients each run glance-download imports of a `size`-byte source image;
//! - one project sends `failing_imports` glance-download imports naming an unknown region, from
//!   [`FLOOD_STREAMS`] clients, each following its task to the end and taking a new image every
//!   [`FLOOD_PER_IMAGE`] imports (so both the per-image and the per-project task bounds apply).
//!
//! Reported: requests/s, p50/p99 per call class through the sidecar and direct, the added
//! latency, answers by status, the sidecar's peak RSS, its journal's size and the tasks it
//! retains. Every call is loopback only; every wait is bounded.
//!
//! [`UPLOAD_STREAMS`]: crate::tools::bench::load::UPLOAD_STREAMS
//! [`IMPORT_STREAMS`]: crate::tools::bench::load::IMPORT_STREAMS
//! [`FLOOD_STREAMS`]: crate::tools::bench::load::FLOOD_STREAMS
//! [`FLOOD_PER_IMAGE`]: crate::tools::bench::load::FLOOD_PER_IMAGE

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use http::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::BenchError;
use crate::tools::apiclient::{Answer, CallError, ImageApi};
use crate::tools::sim::{generated_body, Cloud, FakeGlance, ImageData, ImageSpec};

/// The source region of the real imports.
const SOURCE_REGION: &str = "REGION1";
/// The target region, fronted by the sidecar.
const TARGET_REGION: &str = "REGION2";
/// A region no catalog names: every import from it fails.
const UNKNOWN_REGION: &str = "REGION-NOWHERE";
/// Clients uploading through the pass-through at once.
pub const UPLOAD_STREAMS: usize = 2;
/// Clients running glance-download imports at once.
pub const IMPORT_STREAMS: usize = 2;
/// Clients sending the failing imports, each into an image of its own: more than the sidecar's
/// default per-project import limit, so the flood meets it.
pub const FLOOD_STREAMS: usize = 8;
/// Failing imports sent into one image before a flooding client takes a new one.
pub const FLOOD_PER_IMAGE: usize = 25;
/// Longest wait for one small call's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long uploads, imports and the flood may run on after the measured window.
const GRACE: Duration = Duration::from_secs(300);
/// Longest wait for one failing import's task to end.
const TASK_WAIT: Duration = Duration::from_secs(60);
/// How often a task is polled.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// How long a client waits after a refusal (409, 429) before trying again.
const BACKOFF: Duration = Duration::from_millis(50);
/// How often the sidecar's memory is read and the fakes' request logs emptied.
const MONITOR_EVERY: Duration = Duration::from_millis(250);
/// Longest wait for the sidecar to start listening.
const START_WAIT: Duration = Duration::from_secs(30);
/// Error lines of the sidecar's log kept for the report.
const KEPT_LOG_LINES: usize = 5;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Clients sending small calls (1 to 1024).
    pub clients: usize,
    /// The measured window, seconds (1 to 600).
    pub seconds: u64,
    /// Failing imports sent by the flooding project (0 to 100,000).
    pub failing_imports: usize,
    /// Bytes of each uploaded image and of the imported source image (0: no uploads or imports).
    pub size: u64,
    /// The sidecar binary, run as `serve`.
    pub sidecar: PathBuf,
    /// The sidecar's `task_journal_max_bytes` (`None`: its default).
    pub journal_max_bytes: Option<u64>,
}

impl LoadOptions {
    /// Defaults of `bench --load`, with `sidecar` as the binary.
    pub fn new(sidecar: PathBuf) -> LoadOptions {
        LoadOptions {
            clients: 64,
            seconds: 60,
            failing_imports: 2000,
            size: 256 << 20,
            sidecar,
            journal_max_bytes: None,
        }
    }

    /// Refuses values outside the bounds above.
    pub fn validate(&self) -> Result<(), BenchError> {
        let refuse = |what: &str| Err(BenchError::Options(what.into()));
        if !(1..=1024).contains(&self.clients) {
            return refuse("--clients must be 1 to 1024");
        }
        if !(1..=600).contains(&self.seconds) {
            return refuse("--seconds must be 1 to 600");
        }
        if self.failing_imports > 100_000 {
            return refuse("--failing-imports must be at most 100000");
        }
        if self.size > 64 << 30 {
            return refuse("--size must be at most 64GiB with --load");
        }
        Ok(())
    }
}

// === latency histogram ===

/// Sub-buckets per power of two (1.6 % resolution).
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;

/// Latencies in microseconds, in log-linear buckets: bounded memory whatever the count.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 1) * SUB],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(micros: u64) -> usize {
        if micros < SUB as u64 {
            return micros as usize;
        }
        let shift = 63 - micros.leading_zeros() - SUB_BITS;
        (shift as usize + 1) * SUB + ((micros >> shift) as usize - SUB)
    }

    /// The middle of bucket `index`, microseconds.
    fn value(index: usize) -> f64 {
        if index < SUB {
            return index as f64;
        }
        let shift = (index / SUB - 1) as u32;
        let low = ((index % SUB + SUB) as u64) << shift;
        low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 to 1) in milliseconds; `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return Some(self.max as f64 / 1000.0);
        }
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Self::value(index).min(self.max as f64) / 1000.0);
            }
        }
        Some(self.max as f64 / 1000.0)
    }
}

// === answers by status ===

/// Answers counted by status class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Statuses {
    pub ok_2xx: u64,
    pub conflict_409: u64,
    pub too_many_429: u64,
    pub other_4xx: u64,
    pub server_5xx: u64,
    /// No answer: connection refused or reset, or no answer within the call's time limit.
    pub no_answer: u64,
    /// The first few statuses or errors that were neither 2xx nor 409/429, for the report.
    pub unexpected: Vec<String>,
}

impl Statuses {
    fn count(&mut self, answer: &Result<Answer, CallError>) {
        match answer {
            Ok(answer) => {
                let status = answer.status.as_u16();
                match status {
                    200..=299 => self.ok_2xx += 1,
                    409 => self.conflict_409 += 1,
                    429 => self.too_many_429 += 1,
                    400..=499 => self.other_4xx += 1,
                    _ => self.server_5xx += 1,
                }
                if !matches!(status, 200..=299 | 409 | 429) {
                    let body = String::from_utf8_lossy(&answer.body);
                    self.note(format!(
                        "{status}: {}",
                        body.chars().take(160).collect::<String>()
                    ));
                }
            }
            Err(error) => {
                self.no_answer += 1;
                self.note(error.error.to_string().chars().take(160).collect());
            }
        }
    }

    fn note(&mut self, what: String) {
        if self.unexpected.len() < KEPT_LOG_LINES {
            self.unexpected.push(what);
        }
    }

    fn merge(&mut self, other: &Statuses) {
        self.ok_2xx += other.ok_2xx;
        self.conflict_409 += other.conflict_409;
        self.too_many_429 += other.too_many_429;
        self.other_4xx += other.other_4xx;
        self.server_5xx += other.server_5xx;
        self.no_answer += other.no_answer;
        for what in &other.unexpected {
            self.note(what.clone());
        }
    }

    /// Every answer counted.
    pub fn total(&self) -> u64 {
        self.ok_2xx
            + self.conflict_409
            + self.too_many_429
            + self.other_4xx
            + self.server_5xx
            + self.no_answer
    }
}

// === the report ===

/// One small call, through one path.
#[derive(Debug, Clone, Serialize)]
pub struct PathStats {
    pub requests: u64,
    pub per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub statuses: Statuses,
}

/// One small call, through the sidecar and direct.
#[derive(Debug, Clone, Serialize)]
pub struct CallClass {
    pub call: &'static str,
    pub sidecar: PathStats,
    pub direct: PathStats,
    /// Sidecar p50 minus direct p50, ms.
    pub added_p50_ms: Option<f64>,
    /// Sidecar p99 minus direct p99, ms.
    pub added_p99_ms: Option<f64>,
}

/// The uploads through the pass-through.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Uploads {
    pub started: u64,
    /// Answered 204 with the target `active` and holding exactly `size` bytes.
    pub completed: u64,
    pub bytes: u64,
    pub mb_per_s: f64,
    pub statuses: Statuses,
    /// What went wrong with the others.
    pub problems: Vec<String>,
}

/// The glance-download imports that should succeed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Imports {
    /// Answered 202.
    pub accepted: u64,
    /// Task `success`, the copy `active` with the source's size and digests.
    pub succeeded: u64,
    pub statuses: Statuses,
    pub problems: Vec<String>,
}

/// The failing imports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Flood {
    pub sent: u64,
    /// Images the failing imports went into.
    pub images: u64,
    /// Most failing imports accepted into one image.
    pub most_imports_into_one_image: u64,
    /// Most tasks the sidecar lists for one of those images at the end.
    pub most_tasks_listed_for_one_image: u64,
    /// Each image and the failing imports accepted into it.
    #[serde(skip)]
    pub into: Vec<(String, u64)>,
    /// Answered 202.
    pub accepted: u64,
    /// Of those, tasks seen ending `failure`.
    pub ended_failure: u64,
    /// Tasks seen ending `success` (must not happen).
    pub ended_success: u64,
    /// Tasks not seen ending within the wait.
    pub not_ended: u64,
    pub seconds: f64,
    pub per_s: f64,
    pub statuses: Statuses,
}

/// The sidecar process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SidecarProcess {
    /// Resident set after start-up, before any load, bytes.
    pub rss_start: Option<u64>,
    /// Peak resident set (`VmHWM`) at the end, bytes.
    pub peak_rss: Option<u64>,
    /// Resident set at the end, bytes.
    pub rss_end: Option<u64>,
    /// Journal size at the end, bytes, and its lines.
    pub journal_bytes: u64,
    pub journal_lines: u64,
    /// Tasks held in memory at the end (`gds_tasks` of `/metrics`), by status.
    pub tasks_retained: Vec<(String, u64)>,
    /// Lines logged at WARN and ERROR.
    pub log_warnings: u64,
    pub log_errors: u64,
    /// The first few ERROR lines.
    pub errors: Vec<String>,
}

impl SidecarProcess {
    /// Every task retained, whatever its status.
    pub fn tasks_total(&self) -> u64 {
        self.tasks_retained.iter().map(|(_, n)| n).sum()
    }
}

/// What `bench --load` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub seconds: u64,
    pub size: u64,
    pub upload_streams: usize,
    pub import_streams: usize,
    pub flood_streams: usize,
    pub failing_imports: usize,
    /// The measured window, seconds.
    pub window: f64,
    pub calls: Vec<CallClass>,
    /// All small calls together.
    pub all_calls: CallClass,
    pub uploads: Uploads,
    pub imports: Imports,
    pub flood: Flood,
    pub sidecar: SidecarProcess,
    /// Peak RSS of this process (fake cloud and clients), bytes.
    pub bench_peak_rss: Option<u64>,
    pub cpus: usize,
}

impl LoadReport {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The report as a table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let mib = |v: Option<u64>| {
            v.map_or("-".to_string(), |v| {
                format!("{:.1} MiB", v as f64 / 1048576.0)
            })
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "bench --load: {} clients for {} s, {} failing imports, {} uploads and {} imports at a time of {} MiB, {} CPUs",
            self.clients,
            self.seconds,
            self.failing_imports,
            self.upload_streams,
            self.import_streams,
            self.size >> 20,
            self.cpus
        );
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}  errors (sidecar)",
            "small call",
            "req/s sc",
            "req/s dir",
            "p50 sc",
            "p50 dir",
            "p99 sc",
            "p99 dir",
            "+p50 ms",
            "+p99 ms"
        );
        for class in self.calls.iter().chain(std::iter::once(&self.all_calls)) {
            let s = &class.sidecar.statuses;
            let _ = writeln!(
                out,
                "{:<24} {:>9.0} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}  409:{} 429:{} 4xx:{} 5xx:{} none:{}",
                class.call,
                class.sidecar.per_s,
                class.direct.per_s,
                ms(class.sidecar.p50_ms),
                ms(class.direct.p50_ms),
                ms(class.sidecar.p99_ms),
                ms(class.direct.p99_ms),
                ms(class.added_p50_ms),
                ms(class.added_p99_ms),
                s.conflict_409,
                s.too_many_429,
                s.other_4xx,
                s.server_5xx,
                s.no_answer
            );
        }
        let u = &self.uploads;
        let _ = writeln!(
            out,
            "uploads (PUT /file)      {} of {} complete, {:.0} MB/s in all, 5xx:{} none:{}",
            u.completed, u.started, u.mb_per_s, u.statuses.server_5xx, u.statuses.no_answer
        );
        let i = &self.imports;
        let _ = writeln!(
            out,
            "imports (glance-download) {} of {} accepted succeeded; refused 409:{} 429:{}",
            i.succeeded, i.accepted, i.statuses.conflict_409, i.statuses.too_many_429
        );
        let f = &self.flood;
        let _ = writeln!(
            out,
            "failing imports          {} sent into {} images (at most {} into one; at most {} tasks listed for one) in {:.1} s ({:.0}/s): {} accepted, {} ended failure, {} success, {} not ended; refused 409:{} 429:{} 5xx:{}",
            f.sent, f.images, f.most_imports_into_one_image, f.most_tasks_listed_for_one_image, f.seconds, f.per_s, f.accepted, f.ended_failure, f.ended_success, f.not_ended,
            f.statuses.conflict_409, f.statuses.too_many_429, f.statuses.server_5xx
        );
        let p = &self.sidecar;
        let tasks: Vec<String> = p
            .tasks_retained
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "sidecar process          RSS {} at start, peak {}, {} at end; journal {} bytes ({} lines); tasks retained {} ({})",
            mib(p.rss_start),
            mib(p.peak_rss),
            mib(p.rss_end),
            p.journal_bytes,
            p.journal_lines,
            p.tasks_total(),
            tasks.join(", ")
        );
        let _ = writeln!(
            out,
            "sidecar log              {} warnings, {} errors{}",
            p.log_warnings,
            p.log_errors,
            p.errors
                .first()
                .map(|e| format!("; first: {e}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "bench process            peak RSS {} (fake Keystone, fake Glance regions, clients)",
            mib(self.bench_peak_rss)
        );
        out
    }
}

// === the run ===

/// The small calls, by name.
const CALLS: [&str; 3] = [
    "GET /v2/images",
    "GET /v2/images/{id}",
    "GET /v2/schemas/image",
];

/// What one small-call client measured: per call, (sidecar, direct).
type Measured = Vec<[(Histogram, Statuses); 2]>;

/// Runs the load; `progress` receives one line per step.
pub fn run_load(
    options: &LoadOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<LoadReport, BenchError> {
    options.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("gds-load")
        .enable_all()
        .build()?;
    let options = options.clone();
    progress("Starting the simulated cloud and the sidecar (serve, as a child process)");
    rt.block_on(async move { run_async(options).await })
}

async fn run_async(options: LoadOptions) -> Result<LoadReport, BenchError> {
    let cloud = Cloud::start(&[SOURCE_REGION, TARGET_REGION]).await?;
    let source = cloud.region(SOURCE_REGION).clone();
    let target = cloud.region(TARGET_REGION).clone();
    target.keep_uploads_up_to(0);
    let keystone = &cloud.keystone;
    let reader = keystone.issue_token("load-user", "load-project", &["member", "reader"]);
    let flooder = keystone.issue_token("flood-user", "flood-project", &["member", "reader"]);
    let importer = keystone.issue_token("import-user", "import-project", &["member", "reader"]);

    let dir = std::env::temp_dir().join(format!("gds-load-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let journal = dir.join("tasks.jsonl");
    let sidecar = Sidecar::start(&options, &cloud, &journal, &dir)?;
    let result = measure(
        &options,
        &cloud,
        &source,
        &target,
        &sidecar,
        [reader, flooder, importer],
    )
    .await;
    let mut report = result?;
    report.sidecar.rss_end = vm_status(sidecar.pid, "VmRSS:");
    if let Some(peak) = vm_status(sidecar.pid, "VmHWM:") {
        report.sidecar.peak_rss = Some(peak);
    }
    let metrics = ImageApi::new(&sidecar.url, "").get("/metrics").await?;
    report.sidecar.tasks_retained = retained_tasks(&String::from_utf8_lossy(&metrics.body));
    let text = std::fs::read(&journal).unwrap_or_default();
    report.sidecar.journal_bytes = text.len() as u64;
    report.sidecar.journal_lines = text.iter().filter(|b| **b == b'\n').count() as u64;
    let log = sidecar.stop();
    report.sidecar.log_warnings = log.warnings;
    report.sidecar.log_errors = log.errors;
    report.sidecar.errors = log.kept;
    report.bench_peak_rss = crate::tools::demo::peak_rss();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// Starts every client, waits for all, and adds up what they saw.
async fn measure(
    options: &LoadOptions,
    cloud: &Cloud,
    source: &FakeGlance,
    target: &FakeGlance,
    sidecar: &Sidecar,
    [reader, flooder, importer]: [String; 3],
) -> Result<LoadReport, BenchError> {
    let through = |token: &str| ImageApi::new(&sidecar.url, token);
    // A target image every reader may see, to `GET` by id.
    let shown = through(&reader)
        .create_image(
            &json!({"name": "load-shown", "disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
    let shown = created_id(&shown)?;
    let source_id = (options.size > 0).then(|| {
        source.create_image(ImageSpec {
            name: Some("load-source".into()),
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            ..ImageSpec::active(
                "import-project",
                ImageData::Generated {
                    seed: super::SEED,
                    size: options.size,
                },
            )
        })
    });
    let rss_start = vm_status(sidecar.pid, "VmRSS:");

    let start = Instant::now();
    let stop = start + Duration::from_secs(options.seconds);
    let deadline = stop + GRACE;
    let rss_seen = Arc::new(AtomicU64::new(0));
    let monitor = tokio::spawn(monitor(
        cloud.regions().to_vec(),
        sidecar.pid,
        rss_seen.clone(),
        deadline,
    ));

    let mut readers = Vec::with_capacity(options.clients);
    for index in 0..options.clients {
        let (via, direct) = (through(&reader), ImageApi::new(&target.url(), &reader));
        readers.push(tokio::spawn(small_calls(
            index,
            via,
            direct,
            shown.clone(),
            stop,
        )));
    }
    let mut uploads = Vec::new();
    let mut imports = Vec::new();
    if options.size > 0 {
        for index in 0..UPLOAD_STREAMS {
            let api = through(&reader);
            let seed = super::SEED + index as u64;
            uploads.push(tokio::spawn(upload(
                api,
                target.clone(),
                seed,
                options.size,
                stop,
                deadline,
            )));
        }
        if let Some(source_id) = &source_id {
            let image = source.image(source_id).unwrap_or(Value::Null);
            for _ in 0..IMPORT_STREAMS {
                let api = through(&importer);
                imports.push(tokio::spawn(import(
                    api,
                    target.clone(),
                    source_id.clone(),
                    image.clone(),
                    stop,
                    deadline,
                )));
            }
        }
    }
    let tickets = Arc::new(AtomicUsize::new(options.failing_imports));
    let flood_started = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..FLOOD_STREAMS.min(options.failing_imports) {
        flood.push(tokio::spawn(fail_imports(
            through(&flooder),
            tickets.clone(),
            deadline,
        )));
    }

    let mut measured: Measured = vec![Default::default(); CALLS.len()];
    for handle in readers {
        let theirs = handle.await.map_err(|_| BenchError::Panicked)??;
        for (mine, theirs) in measured.iter_mut().zip(&theirs) {
            for path in 0..2 {
                mine[path].0.merge(&theirs[path].0);
                mine[path].1.merge(&theirs[path].1);
            }
        }
    }
    let window = start.elapsed().as_secs_f64();
    let mut flood_total = Flood::default();
    for handle in flood {
        let theirs = handle.await.map_err(|_| BenchError::Panicked)?;
        flood_total.sent += theirs.sent;
        flood_total.images += theirs.images;
        flood_total.into.extend(theirs.into);
        flood_total.accepted += theirs.accepted;
        flood_total.ended_failure += theirs.ended_failure;
        flood_total.ended_success += theirs.ended_success;
        flood_total.not_ended += theirs.not_ended;
        flood_total.statuses.merge(&theirs.statuses);
    }
    flood_total.seconds = flood_started.elapsed().as_secs_f64();
    flood_total.per_s = flood_total.sent as f64 / flood_total.seconds.max(1e-9);
    let lister = through(&flooder);
    for (id, accepted) in &flood_total.into {
        let listed = lister.get(&format!("/v2/images/{id}/tasks")).await?;
        let tasks = listed.json()["tasks"].as_array().map_or(0, Vec::len) as u64;
        flood_total.most_tasks_listed_for_one_image =
            flood_total.most_tasks_listed_for_one_image.max(tasks);
        flood_total.most_imports_into_one_image =
            flood_total.most_imports_into_one_image.max(*accepted);
    }
    let mut upload_total = Uploads::default();
    for handle in uploads {
        let theirs = handle.await.map_err(|_| BenchError::Panicked)?;
        upload_total.started += theirs.started;
        upload_total.completed += theirs.completed;
        upload_total.bytes += theirs.bytes;
        upload_total.mb_per_s += theirs.mb_per_s;
        upload_total.statuses.merge(&theirs.statuses);
        upload_total.problems.extend(theirs.problems);
    }
    let mut import_total = Imports::default();
    for handle in imports {
        let theirs = handle.await.map_err(|_| BenchError::Panicked)?;
        import_total.accepted += theirs.accepted;
        import_total.succeeded += theirs.succeeded;
        import_total.statuses.merge(&theirs.statuses);
        import_total.problems.extend(theirs.problems);
    }
    monitor.abort();

    let stats = |(histogram, statuses): &(Histogram, Statuses)| PathStats {
        requests: histogram.count(),
        per_s: histogram.count() as f64 / window.max(1e-9),
        p50_ms: histogram.quantile_ms(0.50),
        p99_ms: histogram.quantile_ms(0.99),
        max_ms: histogram.quantile_ms(1.0),
        statuses: statuses.clone(),
    };
    let class = |call: &'static str, paths: &[(Histogram, Statuses); 2]| {
        let (sidecar, direct) = (stats(&paths[0]), stats(&paths[1]));
        let minus = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        CallClass {
            call,
            added_p50_ms: minus(sidecar.p50_ms, direct.p50_ms),
            added_p99_ms: minus(sidecar.p99_ms, direct.p99_ms),
            sidecar,
            direct,
        }
    };
    let mut all: [(Histogram, Statuses); 2] = Default::default();
    for paths in &measured {
        for path in 0..2 {
            all[path].0.merge(&paths[path].0);
            all[path].1.merge(&paths[path].1);
        }
    }
    Ok(LoadReport {
        clients: options.clients,
        seconds: options.seconds,
        size: options.size,
        upload_streams: if options.size > 0 { UPLOAD_STREAMS } else { 0 },
        import_streams: if options.size > 0 { IMPORT_STREAMS } else { 0 },
        flood_streams: FLOOD_STREAMS.min(options.failing_imports),
        failing_imports: options.failing_imports,
        window,
        calls: CALLS
            .iter()
            .zip(&measured)
            .map(|(call, paths)| class(call, paths))
            .collect(),
        all_calls: class("all small calls", &all),
        uploads: upload_total,
        imports: import_total,
        flood: flood_total,
        sidecar: SidecarProcess {
            rss_start,
            peak_rss: Some(rss_seen.load(Ordering::Relaxed)).filter(|rss| *rss > 0),
            ..SidecarProcess::default()
        },
        bench_peak_rss: None,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// One small-call client: the calls in turn, each through the sidecar and direct (which first
/// alternates), until `stop`.
async fn small_calls(
    index: usize,
    via: ImageApi,
    direct: ImageApi,
    shown: String,
    stop: Instant,
) -> Result<Measured, BenchError> {
    let mut measured: Measured = vec![Default::default(); CALLS.len()];
    let paths = [
        "/v2/images?limit=20".to_string(),
        format!("/v2/images/{shown}"),
        "/v2/schemas/image".to_string(),
    ];
    let mut turn = index;
    while Instant::now() < stop {
        let call = turn % CALLS.len();
        let first = (turn / CALLS.len()) % 2;
        for side in [first, 1 - first] {
            let api = if side == 0 { &via } else { &direct };
            let started = Instant::now();
            let answer = match tokio::time::timeout(CALL_TIMEOUT, api.get(&paths[call])).await {
                Ok(answer) => answer,
                Err(_) => Err(CallError {
                    method: Method::GET,
                    url: paths[call].clone(),
                    error: crate::glance::GlanceError::Timeout(CALL_TIMEOUT),
                }),
            };
            let (histogram, statuses) = &mut measured[call][side];
            if matches!(&answer, Ok(a) if a.status.is_success()) {
                histogram.record(started.elapsed());
            }
            statuses.count(&answer);
        }
        turn += 1;
    }
    Ok(measured)
}

/// One upload stream: create an image through the sidecar, `PUT /file` `size` generated bytes,
/// check what the target stored; again until `stop`.
async fn upload(
    api: ImageApi,
    target: FakeGlance,
    seed: u64,
    size: u64,
    stop: Instant,
    deadline: Instant,
) -> Uploads {
    let mut done = Uploads::default();
    let mut busy = Duration::ZERO;
    while Instant::now() < stop {
        let Some(id) = new_image(&api, "load-upload", &mut done.statuses).await else {
            continue;
        };
        done.started += 1;
        let started = Instant::now();
        let path = format!("/v2/images/{id}/file");
        let put = api.call(
            Method::PUT,
            &path,
            Some("application/octet-stream"),
            generated_body(seed, 0, size),
        );
        let answer = match tokio::time::timeout_at(deadline, put).await {
            Ok(answer) => answer,
            Err(_) => {
                done.problems
                    .push(format!("upload {id}: no answer before the deadline"));
                break;
            }
        };
        busy += started.elapsed();
        done.statuses.count(&answer);
        let stored = target.image(&id).unwrap_or(Value::Null);
        match answer {
            Ok(a)
                if a.status.as_u16() == 204
                    && stored["status"] == "active"
                    && stored["size"] == size =>
            {
                done.completed += 1;
                done.bytes += size;
            }
            Ok(a) => done.problems.push(format!(
                "upload {id}: {}, target {} with {} bytes",
                a.status, stored["status"], stored["size"]
            )),
            Err(e) => done.problems.push(format!("upload {id}: {}", e.error)),
        }
    }
    done.mb_per_s = done.bytes as f64 / 1e6 / busy.as_secs_f64().max(1e-9);
    done
}

/// One import stream: create a target through the sidecar, import the source into it with
/// glance-download, wait for the task, compare the copy with the source; again until `stop`.
async fn import(
    api: ImageApi,
    target: FakeGlance,
    source_id: String,
    source: Value,
    stop: Instant,
    deadline: Instant,
) -> Imports {
    let mut done = Imports::default();
    while Instant::now() < stop {
        let Some(id) = new_image(&api, "load-import", &mut done.statuses).await else {
            continue;
        };
        // Refusals (a full slot table) are retried on the same image until the deadline.
        let accepted = loop {
            let answer = api
                .import_glance_download(&id, SOURCE_REGION, &source_id)
                .await;
            done.statuses.count(&answer);
            match &answer {
                Ok(a) if a.status.as_u16() == 202 => break true,
                Ok(a) if matches!(a.status.as_u16(), 409 | 429) && Instant::now() < deadline => {
                    tokio::time::sleep(BACKOFF).await;
                }
                _ => break false,
            }
        };
        if !accepted {
            done.problems
                .push(format!("import into {id} was not accepted"));
            continue;
        }
        done.accepted += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let task = match api.wait_for_import(&id, left).await {
            Ok(task) => task,
            Err(e) => {
                done.problems.push(format!("import into {id}: {}", e.error));
                continue;
            }
        };
        let copy = target.image(&id).unwrap_or(Value::Null);
        let same = ["size", "checksum", "os_hash_value"]
            .iter()
            .all(|key| copy[key] == source[key]);
        if task["status"] == "success" && copy["status"] == "active" && same {
            done.succeeded += 1;
        } else {
            done.problems.push(format!(
                "import into {id}: task {} ({}), copy {}",
                task["status"], task["message"], copy["status"]
            ));
        }
    }
    done
}

/// One flooding client: failing imports one after another (each followed to its end), into an
/// image of its own that it replaces every [`FLOOD_PER_IMAGE`] imports, while tickets last and
/// the deadline has not passed.
async fn fail_imports(api: ImageApi, tickets: Arc<AtomicUsize>, deadline: Instant) -> Flood {
    let mut done = Flood::default();
    let mut image: Option<(String, usize)> = None;
    while Instant::now() < deadline
        && tickets
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    {
        let (id, used) = match image.take() {
            Some((id, used)) if used < FLOOD_PER_IMAGE => (id, used),
            _ => {
                let created = api
                    .create_image(&json!({"name": "load-flood", "disk_format": "raw", "container_format": "bare"}))
                    .await;
                match created.as_ref().map(created_id) {
                    Ok(Ok(id)) => {
                        done.images += 1;
                        done.into.push((id.clone(), 0));
                        (id, 0)
                    }
                    _ => {
                        done.statuses.count(&created);
                        tokio::time::sleep(BACKOFF).await;
                        continue;
                    }
                }
            }
        };
        image = Some((id.clone(), used + 1));
        done.sent += 1;
        // A refusal (the project's import limit, a claim not yet released) is retried.
        let request_id = loop {
            let remote = uuid::Uuid::new_v4().to_string();
            let answer = api
                .import_glance_download(&id, UNKNOWN_REGION, &remote)
                .await;
            done.statuses.count(&answer);
            match &answer {
                Ok(a) if a.status.as_u16() == 202 => {
                    break Some(a.header("x-openstack-request-id").map(str::to_string))
                }
                Ok(a) if matches!(a.status.as_u16(), 409 | 429) && Instant::now() < deadline => {
                    tokio::time::sleep(BACKOFF).await;
                }
                _ => break None,
            }
        };
        let Some(request_id) = request_id else {
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        done.accepted += 1;
        if let Some((_, accepted)) = done.into.last_mut() {
            *accepted += 1;
        }
        match task_end(&api, &id, request_id.as_deref(), deadline).await {
            Some(status) if status == "failure" => done.ended_failure += 1,
            Some(_) => done.ended_success += 1,
            None => done.not_ended += 1,
        }
    }
    done
}

/// The final status of the task `request_id` started on image `id`, or `None` if it was not
/// seen ending within [`TASK_WAIT`] (or before `deadline`).
async fn task_end(
    api: &ImageApi,
    id: &str,
    request_id: Option<&str>,
    deadline: Instant,
) -> Option<String> {
    let until = (Instant::now() + TASK_WAIT).min(deadline);
    while Instant::now() < until {
        if let Ok(answer) = api.get(&format!("/v2/images/{id}/tasks")).await {
            let tasks = answer.json()["tasks"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mine = tasks.iter().rev().find(|task| match request_id {
                Some(rid) => task["request_id"] == rid,
                None => true,
            });
            if let Some(status) = mine.and_then(|t| t["status"].as_str()) {
                if status == "success" || status == "failure" {
                    return Some(status.to_string());
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    None
}

/// Empties the fakes' request logs now and then (they would grow with every call), and reads the
/// sidecar's memory into `peak` so a reading exists even if the process is gone at the end.
async fn monitor(regions: Vec<FakeGlance>, pid: u32, peak: Arc<AtomicU64>, deadline: Instant) {
    while Instant::now() < deadline {
        for region in &regions {
            region.clear_request_log();
        }
        if let Some(rss) = vm_status(pid, "VmRSS:") {
            peak.fetch_max(rss, Ordering::Relaxed);
        }
        tokio::time::sleep(MONITOR_EVERY).await;
    }
}

/// Creates a raw image named `name`; a refusal is counted in `statuses` and backed off from.
async fn new_image(api: &ImageApi, name: &str, statuses: &mut Statuses) -> Option<String> {
    let created = api
        .create_image(&json!({"name": name, "disk_format": "raw", "container_format": "bare"}))
        .await;
    match created.as_ref().map(created_id) {
        Ok(Ok(id)) => Some(id),
        _ => {
            statuses.count(&created);
            tokio::time::sleep(BACKOFF).await;
            None
        }
    }
}

fn created_id(answer: &Answer) -> Result<String, BenchError> {
    match answer.json()["id"].as_str() {
        Some(id) if answer.status.as_u16() == 201 => Ok(id.to_string()),
        _ => Err(BenchError::Check(format!(
            "creating an image answered {}",
            answer.status
        ))),
    }
}

/// A `Vm*:` line of `/proc/<pid>/status`, bytes.
fn vm_status(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `gds_tasks{status="..."} n` lines of `/metrics`.
fn retained_tasks(metrics: &str) -> Vec<(String, u64)> {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("gds_tasks{status=\"")?;
            let (status, count) = rest.split_once("\"} ")?;
            Some((status.to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

// === the sidecar as a child process ===

/// What the sidecar logged.
#[derive(Debug, Default)]
struct LogCounts {
    warnings: u64,
    errors: u64,
    kept: Vec<String>,
}

/// `serve` running in front of the target region; killed when dropped.
struct Sidecar {
    child: Child,
    pid: u32,
    url: String,
    log: Option<std::thread::JoinHandle<LogCounts>>,
}

impl Sidecar {
    fn start(
        options: &LoadOptions,
        cloud: &Cloud,
        journal: &std::path::Path,
        dir: &std::path::Path,
    ) -> Result<Sidecar, BenchError> {
        let config = dir.join("sidecar.conf");
        let mut text = format!(
            "[DEFAULT]\nbind = 127.0.0.1:0\nglance_url = {}\nauth_url = {}\ntask_journal = {}\n",
            cloud.region(TARGET_REGION).url(),
            cloud.auth_url(),
            journal.display()
        );
        if let Some(bytes) = options.journal_max_bytes {
            text.push_str(&format!("task_journal_max_bytes = {bytes}\n"));
        }
        std::fs::write(&config, text)?;
        let mut child = Command::new(&options.sidecar)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            return Err(BenchError::Check(
                "the sidecar's stderr was not piped".into(),
            ));
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::thread::Builder::new()
            .name("gds-load-log".into())
            .spawn(move || read_log(stderr, tx))?;
        let mut sidecar = Sidecar {
            child,
            pid,
            url: String::new(),
            log: Some(log),
        };
        match rx.recv_timeout(START_WAIT) {
            Ok(addr) => sidecar.url = format!("http://{addr}"),
            Err(_) => {
                let log = sidecar.stop();
                return Err(BenchError::Check(format!(
                    "the sidecar did not start listening: {}",
                    log.kept.join(" | ")
                )));
            }
        }
        Ok(sidecar)
    }

    /// Kills the process and returns what it logged.
    fn stop(mut self) -> LogCounts {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log
            .take()
            .and_then(|log| log.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the sidecar's JSON log lines until it exits: sends the listening address once, counts
/// warnings and errors, keeps the first error lines.
fn read_log(stderr: std::process::ChildStderr, tx: std::sync::mpsc::Sender<String>) -> LogCounts {
    let mut counts = LogCounts::default();
    for line in std::io::BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            if counts.kept.len() < KEPT_LOG_LINES {
                counts.kept.push(line.chars().take(200).collect());
            }
            continue;
        };
        if entry["fields"]["message"] == "Listening" {
            if let Some(addr) = entry["fields"]["addr"].as_str() {
                let _ = tx.send(addr.to_string());
            }
        }
        match entry["level"].as_str() {
            Some("WARN") => counts.warnings += 1,
            Some("ERROR") => {
                counts.errors += 1;
                if counts.kept.len() < KEPT_LOG_LINES {
                    counts.kept.push(line.chars().take(300).collect());
                }
            }
            _ => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for micros in 1..=100_000u64 {
            h.record(Duration::from_micros(micros));
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((p50 - 50.0).abs() / 50.0 < 0.02, "{p50}");
        assert!((p99 - 99.0).abs() / 99.0 < 0.02, "{p99}");
        assert_eq!(h.quantile_ms(1.0), Some(100.0));
        assert_eq!(h.count(), 100_000);
        let mut other = Histogram::default();
        other.record(Duration::from_secs(3600));
        h.merge(&other);
        assert_eq!(h.quantile_ms(1.0), Some(3_600_000.0));
        assert_eq!(Histogram::default().quantile_ms(0.5), None);
    }

    #[test]
    fn small_values_are_exact() {
        for micros in [0u64, 1, 63, 64, 65, 127, 128] {
            let index = Histogram::index(micros);
            let low = Histogram::value(index);
            assert!((low - micros as f64).abs() <= 0.5, "{micros} -> {low}");
        }
    }

    #[test]
    fn retained_tasks_are_read_from_metrics() {
        let text = "# HELP gds_tasks x\ngds_tasks{status=\"failure\"} 12\ngds_tasks{status=\"success\"} 3\ngds_other 9\n";
        assert_eq!(
            retained_tasks(text),
            vec![("failure".to_string(), 12), ("success".to_string(), 3)]
        );
    }
}
