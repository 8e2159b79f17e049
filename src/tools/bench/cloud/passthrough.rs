//! `bench --passthrough` against a real cloud: what the sidecar's pass-through adds to Image API
//! calls, against the same Glance called directly, measured side by side in one run.
//!
//! With one token and one pooled client (connections kept alive wherever the server allows it),
//! the bench alternates every call between the Glance itself (`direct`) and a sidecar in front
//! of it (`sidecar`), the order swapped on every round:
//!
//! - `PUT /v2/images/{id}/file` of `--size` bytes into a fresh image, `--runs` times each way
//!   (the body is one 4 MiB block sent again and again: no CPU spent making it);
//! - `GET /v2/images/{id}/file` of the first of those images, `--runs` times each way (the
//!   bytes are counted, then dropped);
//! - after [`WARM_UPS`] untimed rounds, `--calls` rounds of the small calls `GET /v2/images` and
//!   `GET /v2/images/{id}`, each timed from the request to the answer's last byte.
//!
//! Small calls are reported as p50, p99 and mean per path and what the sidecar adds; data calls
//! as MB/s per path and the sidecar's rate over the direct one. Every image the bench creates
//! is deleted at the end, whatever happened.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::measure::Machine;
use super::super::BenchError;
use super::small::quantile;
use crate::glance::request;
use crate::http::{boxed, client_with_tls, empty, read_limited, HttpClient};
use crate::keystone::Token;
use crate::tools::sync::{Credentials, Session};

/// Rounds of small calls measured unless `--calls` says otherwise.
pub const DEFAULT_CALLS: usize = 500;

/// Untimed rounds of small calls before the measured ones (connections and caches warm).
pub const WARM_UPS: usize = 20;

/// Goal: what the sidecar may add to a small call's p99, in milliseconds.
pub const GOAL_ADDED_P99_MS: f64 = 1.0;

/// Goal: the sidecar's data rate over the direct one, at least.
pub const GOAL_RATE_RATIO: f64 = 0.97;

/// The block an upload body repeats.
const BLOCK: usize = 4 << 20;

/// Frames of an upload body.
const FRAME: usize = 1 << 20;

/// Largest small-call answer read.
const MAX_ANSWER: usize = 16 << 20;

/// Which way a call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Way {
    /// Straight to the Glance.
    Direct,
    /// Through the sidecar in front of it.
    Sidecar,
}

/// The calls measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Call {
    #[serde(rename = "GET /v2/images")]
    List,
    #[serde(rename = "GET /v2/images/{id}")]
    Show,
    #[serde(rename = "GET /v2/images/{id}/file")]
    GetFile,
    #[serde(rename = "PUT /v2/images/{id}/file")]
    PutFile,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::List => "GET /v2/images",
            Call::Show => "GET /v2/images/{id}",
            Call::GetFile => "GET /file",
            Call::PutFile => "PUT /file",
        }
    }
}

/// The two ways in the order of round `round`: swapped every round.
fn ways(round: usize) -> [Way; 2] {
    match round % 2 {
        0 => [Way::Direct, Way::Sidecar],
        _ => [Way::Sidecar, Way::Direct],
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// The Glance itself.
    pub glance_url: String,
    /// A sidecar in front of that Glance.
    pub sidecar_url: String,
    /// Bytes of each data call.
    pub size: u64,
    /// Measured rounds of small calls.
    pub calls: usize,
    /// Data calls each way and direction.
    pub runs: usize,
    /// Longest one small call may take.
    pub request_timeout: Duration,
    /// Longest a TCP connect may take.
    pub connect_timeout: Duration,
}

impl PassOptions {
    /// Checks a `--passthrough` command line.
    pub fn new(
        glance_url: Option<&str>,
        sidecar_url: Option<&str>,
        size: u64,
        calls: usize,
        runs: usize,
    ) -> Result<PassOptions, BenchError> {
        let refuse = |what: String| Err(BenchError::Options(what));
        let url = |flag: &str, given: Option<&str>| match given {
            Some(text) => super::normalize_glance_url(text)
                .ok_or_else(|| format!("{flag} {text:?} is not an http(s) URL")),
            None => Err(format!("--passthrough needs {flag} URL")),
        };
        let glance_url = match url("--target-glance-url", glance_url) {
            Ok(url) => url,
            Err(what) => return refuse(what),
        };
        let sidecar_url = match url("--sidecar-url", sidecar_url) {
            Ok(url) => url,
            Err(what) => return refuse(what),
        };
        if glance_url == sidecar_url {
            return refuse("--sidecar-url and --target-glance-url are the same URL".into());
        }
        if !(1..=100_000).contains(&calls) {
            return refuse(format!("--calls must be 1 to 100000 (got {calls})"));
        }
        if size == 0 || !(1..=100).contains(&runs) {
            return refuse("--size must be at least 1 byte and --runs 1 to 100".into());
        }
        Ok(PassOptions {
            glance_url,
            sidecar_url,
            size,
            calls,
            runs,
            request_timeout: Duration::from_secs(crate::config::defaults::REQUEST_TIMEOUT_SECS),
            connect_timeout: Duration::from_secs(crate::config::defaults::CONNECT_TIMEOUT_SECS),
        })
    }

    /// Longest one data call may take: two minutes plus 5 MB/s.
    fn budget(&self) -> Duration {
        Duration::from_secs(120 + self.size / 5_000_000)
    }
}

/// One data call.
#[derive(Debug, Clone, Serialize)]
pub struct DataSample {
    pub call: Call,
    pub way: Way,
    pub run: usize,
    pub bytes: u64,
    pub seconds: f64,
}

impl DataSample {
    /// MB/s (10^6 B/s).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9) / 1e6
    }
}

/// Every sample of a `--passthrough` bench, and what it ran on.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub glance_url: String,
    pub sidecar_url: String,
    pub size: u64,
    pub calls: usize,
    pub runs: usize,
    pub machine: Machine,
    /// Small calls: seconds per call, in the order measured, per call and way.
    pub small: Vec<(Call, Way, Vec<f64>)>,
    pub data: Vec<DataSample>,
    /// Images that could not be deleted.
    pub leftovers: Vec<String>,
}

/// Where the calls go, and with what.
struct Ends {
    client: HttpClient,
    token: Token,
    direct: String,
    sidecar: String,
    options: PassOptions,
    cancel: CancellationToken,
}

impl Ends {
    fn base(&self, way: Way) -> &str {
        match way {
            Way::Direct => &self.direct,
            Way::Sidecar => &self.sidecar,
        }
    }

    fn check(&self) -> Result<(), BenchError> {
        match self.cancel.is_cancelled() {
            true => Err(BenchError::Interrupted),
            false => Ok(()),
        }
    }
}

/// Runs the pass-through bench; `progress` receives one line per step (for stderr).
pub fn run_passthrough(
    options: &PassOptions,
    credentials: &Credentials,
    progress: &mut dyn FnMut(&str),
    cancel: CancellationToken,
) -> Result<PassReport, BenchError> {
    let rt = super::runtime("gds-bench")?;
    let mut machine = Machine::now();
    progress(&format!(
        "Signing in at {} ({})",
        credentials.auth_url, credentials.origin
    ));
    let ends = rt.block_on(async {
        let client = client_with_tls(options.connect_timeout, credentials.tls()?);
        let session =
            Session::open(client.clone(), credentials.clone(), options.request_timeout).await?;
        let token = session.token().await?;
        Ok::<_, BenchError>(Ends {
            client,
            token,
            direct: options.glance_url.clone(),
            sidecar: options.sidecar_url.clone(),
            options: options.clone(),
            cancel,
        })
    })?;
    let mut created = Vec::new();
    let measured = rt.block_on(measure(&ends, &mut created, progress));
    let mut leftovers = Vec::new();
    for id in &created {
        if let Err(error) = rt.block_on(delete(&ends, id)) {
            progress(&format!("Could not delete image {id}: {error}"));
            leftovers.push(format!("image {id} at {}: {error}", ends.direct));
        }
    }
    let (small, data) = measured?;
    machine.finish();
    Ok(PassReport {
        glance_url: options.glance_url.clone(),
        sidecar_url: options.sidecar_url.clone(),
        size: options.size,
        calls: options.calls,
        runs: options.runs,
        machine,
        small,
        data,
        leftovers,
    })
}

type Measured = (Vec<(Call, Way, Vec<f64>)>, Vec<DataSample>);

/// The uploads, the downloads, then the small calls; every image made is pushed on `created`.
async fn measure(
    ends: &Ends,
    created: &mut Vec<String>,
    progress: &mut dyn FnMut(&str),
) -> Result<Measured, BenchError> {
    let options = &ends.options;
    let mut data = Vec::new();
    for run in 1..=options.runs {
        for way in ways(run) {
            ends.check()?;
            let id = create(ends).await?;
            created.push(id.clone());
            let sample = put_file(ends, way, &id, run).await?;
            progress(&format!(
                "run {run}/{}: PUT /file {way:?}: {:.0} MB/s",
                options.runs,
                sample.mb_per_s()
            ));
            data.push(sample);
        }
    }
    let id = created
        .first()
        .cloned()
        .ok_or_else(|| BenchError::Check("no image was uploaded".into()))?;
    for run in 1..=options.runs {
        for way in ways(run) {
            ends.check()?;
            let sample = get_file(ends, way, &id, run).await?;
            progress(&format!(
                "run {run}/{}: GET /file {way:?}: {:.0} MB/s",
                options.runs,
                sample.mb_per_s()
            ));
            data.push(sample);
        }
    }
    progress(&format!(
        "{} rounds of GET /v2/images and GET /v2/images/{{id}} each way ({WARM_UPS} untimed first)",
        options.calls
    ));
    let small = small_calls(ends, &id).await?;
    Ok((small, data))
}

/// The small calls: warm-ups, then `calls` rounds, both ways in alternating order.
async fn small_calls(ends: &Ends, id: &str) -> Result<Vec<(Call, Way, Vec<f64>)>, BenchError> {
    let show = format!("/v2/images/{id}");
    let mut series: Vec<(Call, Way, Vec<f64>)> = [Call::List, Call::Show]
        .iter()
        .flat_map(|call| {
            [Way::Direct, Way::Sidecar]
                .map(|way| (*call, way, Vec::with_capacity(ends.options.calls)))
        })
        .collect();
    for round in 0..WARM_UPS + ends.options.calls {
        ends.check()?;
        for (call, path) in [(Call::List, "/v2/images"), (Call::Show, show.as_str())] {
            for way in ways(round) {
                let seconds = small_call(ends, way, path).await?;
                if round >= WARM_UPS {
                    if let Some((_, _, values)) =
                        series.iter_mut().find(|(c, w, _)| *c == call && *w == way)
                    {
                        values.push(seconds);
                    }
                }
            }
        }
    }
    Ok(series)
}

fn failed(call: Call, way: Way, reason: String) -> BenchError {
    BenchError::Check(format!("{} {way:?}: {reason}", call.name()))
}

/// One small `GET`: seconds from the request to the answer's last byte.
async fn small_call(ends: &Ends, way: Way, path: &str) -> Result<f64, BenchError> {
    let call = if path == "/v2/images" {
        Call::List
    } else {
        Call::Show
    };
    let url = format!("{}{path}", ends.base(way));
    let built = request(Method::GET, url, Some(&ends.token))
        .body(empty())
        .map_err(|e| failed(call, way, e.to_string()))?;
    let started = Instant::now();
    let exchange = async {
        let response = ends.client.request(built).await?;
        let status = response.status();
        let body = read_limited(response.into_body(), MAX_ANSWER).await?;
        Ok::<_, crate::http::BoxError>((status, body.len()))
    };
    let (status, _) = tokio::time::timeout(ends.options.request_timeout, exchange)
        .await
        .map_err(|_| failed(call, way, "no answer in time".into()))?
        .map_err(|e| failed(call, way, crate::http::describe(e.as_ref())))?;
    let seconds = started.elapsed().as_secs_f64();
    if status != http::StatusCode::OK {
        return Err(failed(call, way, format!("answered {status}")));
    }
    Ok(seconds)
}

/// A fresh raw image on the Glance itself (untimed); its id.
async fn create(ends: &Ends) -> Result<String, BenchError> {
    let body = json!({"name": "gds-bench-passthrough", "disk_format": "raw",
                      "container_format": "bare"});
    let url = format!("{}/v2/images", ends.direct);
    let built = request(Method::POST, url, Some(&ends.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(crate::http::full(body.to_string()))
        .map_err(|e| BenchError::Check(e.to_string()))?;
    let answer = tokio::time::timeout(ends.options.request_timeout, async {
        let response = ends.client.request(built).await?;
        let status = response.status();
        let body = read_limited(response.into_body(), MAX_ANSWER).await?;
        Ok::<_, crate::http::BoxError>((status, body))
    })
    .await
    .map_err(|_| BenchError::Check("POST /v2/images: no answer in time".into()))?
    .map_err(|e| BenchError::Check(format!("POST /v2/images: {e}")))?;
    let record: Value = serde_json::from_slice(&answer.1).unwrap_or_default();
    match record["id"].as_str() {
        Some(id) if answer.0 == http::StatusCode::CREATED => Ok(id.to_string()),
        _ => Err(BenchError::Check(format!(
            "POST /v2/images answered {}",
            answer.0
        ))),
    }
}

/// `PUT /file` of `size` bytes into image `id`, timed from the request to the answer.
async fn put_file(ends: &Ends, way: Way, id: &str, run: usize) -> Result<DataSample, BenchError> {
    let size = ends.options.size;
    let url = format!("{}/v2/images/{id}/file", ends.base(way));
    let built = request(Method::PUT, url, Some(&ends.token))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, size)
        .body(boxed(Repeated::new(size)))
        .map_err(|e| failed(Call::PutFile, way, e.to_string()))?;
    let started = Instant::now();
    let exchange = async {
        let response = ends.client.request(built).await?;
        let status = response.status();
        read_limited(response.into_body(), MAX_ANSWER).await?;
        Ok::<_, crate::http::BoxError>(status)
    };
    let status = tokio::time::timeout(ends.options.budget(), exchange)
        .await
        .map_err(|_| failed(Call::PutFile, way, "no answer in time".into()))?
        .map_err(|e| failed(Call::PutFile, way, crate::http::describe(e.as_ref())))?;
    let seconds = started.elapsed().as_secs_f64();
    if status != http::StatusCode::NO_CONTENT {
        return Err(failed(Call::PutFile, way, format!("answered {status}")));
    }
    Ok(DataSample {
        call: Call::PutFile,
        way,
        run,
        bytes: size,
        seconds,
    })
}

/// `GET /file` of image `id`, timed from the request to the last byte; every byte is counted.
async fn get_file(ends: &Ends, way: Way, id: &str, run: usize) -> Result<DataSample, BenchError> {
    let url = format!("{}/v2/images/{id}/file", ends.base(way));
    let built = request(Method::GET, url, Some(&ends.token))
        .body(empty())
        .map_err(|e| failed(Call::GetFile, way, e.to_string()))?;
    let started = Instant::now();
    let exchange = async {
        let response = ends.client.request(built).await?;
        let status = response.status();
        let mut body = std::pin::pin!(response.into_body());
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                bytes += data.len() as u64;
            }
        }
        Ok::<_, crate::http::BoxError>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(ends.options.budget(), exchange)
        .await
        .map_err(|_| failed(Call::GetFile, way, "no answer in time".into()))?
        .map_err(|e| failed(Call::GetFile, way, crate::http::describe(e.as_ref())))?;
    let seconds = started.elapsed().as_secs_f64();
    if status != http::StatusCode::OK || bytes != ends.options.size {
        return Err(failed(
            Call::GetFile,
            way,
            format!(
                "answered {status} with {bytes} of {} bytes",
                ends.options.size
            ),
        ));
    }
    Ok(DataSample {
        call: Call::GetFile,
        way,
        run,
        bytes,
        seconds,
    })
}

/// Deletes one image on the Glance itself (a 404 counts as deleted).
async fn delete(ends: &Ends, id: &str) -> Result<(), String> {
    let url = format!("{}/v2/images/{id}", ends.direct);
    let built = request(Method::DELETE, url, Some(&ends.token))
        .body(empty())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(ends.options.request_timeout, ends.client.request(built))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| crate::http::describe(&e))?;
    let status = response.status();
    match status.is_success() || status == http::StatusCode::NOT_FOUND {
        true => Ok(()),
        false => Err(format!("DELETE answered {status}")),
    }
}

/// An upload body of `left` bytes: one [`BLOCK`] of fixed bytes served again and again as
/// [`FRAME`]-sized slices (no copy, no CPU spent making data).
struct Repeated {
    block: Bytes,
    pos: usize,
    left: u64,
}

impl Repeated {
    fn new(len: u64) -> Repeated {
        let block: Vec<u8> = (0..BLOCK).map(|i| (i % 251) as u8).collect();
        Repeated {
            block: Bytes::from(block),
            pos: 0,
            left: len,
        }
    }
}

impl Body for Repeated {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let take = (FRAME as u64).min(self.left) as usize;
        let take = take.min(BLOCK - self.pos);
        let frame = self.block.slice(self.pos..self.pos + take);
        self.pos = (self.pos + take) % BLOCK;
        self.left -= take as u64;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

// === the report ===

/// p50, p99 and mean of a series, milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(values: &[f64]) -> Option<Latency> {
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        Some(Latency {
            p50_ms: quantile(values, 0.5)? * 1e3,
            p99_ms: quantile(values, 0.99)? * 1e3,
            mean_ms: mean * 1e3,
        })
    }
}

impl PassReport {
    /// The latency of a small call one way.
    pub fn latency(&self, call: Call, way: Way) -> Option<Latency> {
        let (_, _, values) = self
            .small
            .iter()
            .find(|(c, w, _)| *c == call && *w == way)?;
        Latency::of(values)
    }

    /// What the sidecar adds to a small call: (p50, p99, mean) in milliseconds.
    pub fn added(&self, call: Call) -> Option<Latency> {
        let (d, s) = (
            self.latency(call, Way::Direct)?,
            self.latency(call, Way::Sidecar)?,
        );
        Some(Latency {
            p50_ms: s.p50_ms - d.p50_ms,
            p99_ms: s.p99_ms - d.p99_ms,
            mean_ms: s.mean_ms - d.mean_ms,
        })
    }

    fn rates(&self, call: Call, way: Way) -> Vec<f64> {
        self.data
            .iter()
            .filter(|s| s.call == call && s.way == way)
            .map(DataSample::mb_per_s)
            .collect()
    }

    /// Median MB/s of a data call one way.
    pub fn rate(&self, call: Call, way: Way) -> Option<f64> {
        quantile(&self.rates(call, way), 0.5)
    }

    /// The sidecar's rate over the direct one: the median of the runs' ratios (each run sends
    /// the call both ways, one after the other).
    pub fn rate_ratio(&self, call: Call) -> Option<f64> {
        let ratios: Vec<f64> = (1..=self.runs)
            .filter_map(|run| {
                let rate = |way| {
                    self.data
                        .iter()
                        .find(|s| s.call == call && s.way == way && s.run == run)
                        .map(DataSample::mb_per_s)
                };
                Some(rate(Way::Sidecar)? / rate(Way::Direct)?.max(1e-9))
            })
            .collect();
        quantile(&ratios, 0.5)
    }

    /// Each goal: its name, the figure, whether it is met.
    pub fn goals(&self) -> Vec<(String, Option<f64>, bool)> {
        let mut goals = Vec::new();
        for call in [Call::List, Call::Show] {
            let added = self.added(call).map(|a| a.p99_ms);
            goals.push((
                format!("{}: added at p99 <= {GOAL_ADDED_P99_MS} ms", call.name()),
                added,
                added.is_some_and(|a| a <= GOAL_ADDED_P99_MS),
            ));
        }
        for call in [Call::GetFile, Call::PutFile] {
            let ratio = self.rate_ratio(call);
            goals.push((
                format!("{}: sidecar/direct rate >= {GOAL_RATE_RATIO}", call.name()),
                ratio,
                ratio.is_some_and(|r| r >= GOAL_RATE_RATIO),
            ));
        }
        goals
    }

    /// One JSON document: the setup, the samples, the summary and the goals.
    pub fn to_json(&self) -> Value {
        let mut small = Vec::new();
        for call in [Call::List, Call::Show] {
            small.push(json!({
                "call": call,
                "direct": self.latency(call, Way::Direct),
                "sidecar": self.latency(call, Way::Sidecar),
                "added": self.added(call),
            }));
        }
        let mut data = Vec::new();
        for call in [Call::GetFile, Call::PutFile] {
            data.push(json!({
                "call": call,
                "direct_mb_per_s": self.rate(call, Way::Direct),
                "sidecar_mb_per_s": self.rate(call, Way::Sidecar),
                "sidecar_over_direct": self.rate_ratio(call),
            }));
        }
        let goals: Vec<Value> = self
            .goals()
            .into_iter()
            .map(|(goal, figure, met)| json!({"goal": goal, "figure": figure, "met": met}))
            .collect();
        json!({"setup": self, "small": small, "data": data, "goals": goals})
    }

    /// The table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let load = |l: Option<f64>| l.map_or("?".into(), |l| format!("{l:.2}"));
        let mut out = format!(
            "bench --passthrough: Glance {} direct and through the sidecar {}; {} rounds of small \
             calls, {} × {} each way per data call; load average {} → {}\n\n",
            self.glance_url,
            self.sidecar_url,
            self.calls,
            self.runs,
            super::super::report::bytes(self.size),
            load(self.machine.load_before),
            load(self.machine.load_after),
        );
        let _ = writeln!(
            out,
            "{:<22} {:>26} {:>26} {:>26}",
            "small call, ms", "direct p50/p99/mean", "sidecar p50/p99/mean", "added p50/p99/mean"
        );
        let cell = |l: Option<Latency>| {
            l.map_or("—".into(), |l| {
                format!("{:.2} / {:.2} / {:.2}", l.p50_ms, l.p99_ms, l.mean_ms)
            })
        };
        for call in [Call::List, Call::Show] {
            let _ = writeln!(
                out,
                "{:<22} {:>26} {:>26} {:>26}",
                call.name(),
                cell(self.latency(call, Way::Direct)),
                cell(self.latency(call, Way::Sidecar)),
                cell(self.added(call)),
            );
        }
        let _ = writeln!(
            out,
            "\n{:<22} {:>12} {:>12} {:>16}",
            "data call, MB/s", "direct", "sidecar", "sidecar/direct"
        );
        let num =
            |v: Option<f64>, places: usize| v.map_or("—".into(), |v| format!("{v:.places$}"));
        for call in [Call::GetFile, Call::PutFile] {
            let _ = writeln!(
                out,
                "{:<22} {:>12} {:>12} {:>16}",
                call.name(),
                num(self.rate(call, Way::Direct), 0),
                num(self.rate(call, Way::Sidecar), 0),
                num(self.rate_ratio(call), 3),
            );
        }
        out.push_str("\ngoals:\n");
        for (goal, figure, met) in self.goals() {
            let met = if met { "met" } else { "NOT met" };
            let _ = writeln!(out, "  {goal}: {} ({met})", num(figure, 3));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(small: Vec<(Call, Way, Vec<f64>)>, data: Vec<DataSample>) -> PassReport {
        PassReport {
            glance_url: "http://g".into(),
            sidecar_url: "http://s".into(),
            size: 1 << 30,
            calls: 100,
            runs: 2,
            machine: Machine::now(),
            small,
            data,
            leftovers: Vec::new(),
        }
    }

    fn data(call: Call, way: Way, run: usize, seconds: f64) -> DataSample {
        DataSample {
            call,
            way,
            run,
            bytes: 1_000_000_000,
            seconds,
        }
    }

    #[test]
    fn rounds_alternate_which_way_goes_first() {
        assert_eq!(ways(0), [Way::Direct, Way::Sidecar]);
        assert_eq!(ways(1), [Way::Sidecar, Way::Direct]);
        assert_eq!(ways(2), ways(0));
    }

    #[test]
    fn the_added_latency_is_the_difference_of_quantiles() {
        // 100 calls each way: 1..=100 ms direct, 0.5 ms more through the sidecar.
        let direct: Vec<f64> = (1..=100).map(|ms| f64::from(ms) / 1e3).collect();
        let sidecar: Vec<f64> = direct.iter().map(|s| s + 0.0005).collect();
        let r = report(
            vec![
                (Call::List, Way::Direct, direct),
                (Call::List, Way::Sidecar, sidecar),
            ],
            Vec::new(),
        );
        let added = r.added(Call::List).unwrap();
        assert!((added.p50_ms - 0.5).abs() < 1e-6, "{added:?}");
        assert!((added.p99_ms - 0.5).abs() < 1e-6, "{added:?}");
        assert!((r.latency(Call::List, Way::Direct).unwrap().p99_ms - 99.0).abs() < 1e-6);
        let goals = r.goals();
        assert!(goals[0].2, "0.5 ms added meets the goal");
        assert!(!goals[1].2, "an unmeasured call does not");
    }

    #[test]
    fn rate_ratios_pair_the_ways_of_one_run() {
        let r = report(
            Vec::new(),
            vec![
                // run 1: 1000 vs 900 MB/s (0.90); run 2: 500 vs 495 MB/s (0.99).
                data(Call::GetFile, Way::Direct, 1, 1.0),
                data(Call::GetFile, Way::Sidecar, 1, 1.0 / 0.9),
                data(Call::GetFile, Way::Direct, 2, 2.0),
                data(Call::GetFile, Way::Sidecar, 2, 2.0 / 0.99),
            ],
        );
        // Nearest-rank median of two ratios is the lower one.
        let ratio = r.rate_ratio(Call::GetFile).unwrap();
        assert!((ratio - 0.9).abs() < 1e-9, "{ratio}");
        assert_eq!(r.rate(Call::GetFile, Way::Direct), Some(500.0));
        assert_eq!(r.rate_ratio(Call::PutFile), None);
        let json = r.to_json();
        assert_eq!(json["data"][0]["call"], "GET /v2/images/{id}/file");
        assert_eq!(json["goals"][2]["met"], false);
        assert!(r.table().contains("GET /file"));
    }

    #[test]
    fn upload_bodies_have_the_exact_length() {
        let body = Repeated::new(9 << 20 | 7);
        assert_eq!(body.size_hint().exact(), Some(9 << 20 | 7));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (frames, bytes) = rt.block_on(async {
            let mut body = std::pin::pin!(body);
            let (mut frames, mut bytes) = (0, 0u64);
            while let Some(Ok(frame)) = body.frame().await {
                let data = frame.into_data().unwrap();
                assert!(data.len() <= FRAME);
                bytes += data.len() as u64;
                frames += 1;
            }
            (frames, bytes)
        });
        assert_eq!((frames, bytes), (10, 9 << 20 | 7));
    }

    #[test]
    fn options_need_both_urls() {
        let ok = PassOptions::new(Some("http://g:1/v2/"), Some("http://s:2"), 1 << 20, 10, 1);
        assert_eq!(ok.unwrap().glance_url, "http://g:1");
        for (glance, sidecar) in [(None, Some("http://s")), (Some("http://g"), None)] {
            assert!(PassOptions::new(glance, sidecar, 1, 1, 1).is_err());
        }
        assert!(PassOptions::new(Some("http://g"), Some("http://g/"), 1, 1, 1).is_err());
        assert!(PassOptions::new(Some("http://g"), Some("http://s"), 1, 0, 1).is_err());
    }
}
