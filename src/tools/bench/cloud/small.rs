//! `bench --small` against a real cloud: how quickly one small image is imported, through the
//! sidecar and by upstream's own glance-download, side by side.
//!
//! Each run imports the source image once per contender and token: the caller's token already
//! seen (`cached`: used before by the contender, so in its token cache), and a token just issued
//! by Keystone (`fresh`: the import request is its first use anywhere). Every import goes into a
//! fresh target image created on the target Glance itself, and is timed from the `POST` to:
//!
//! - the `202`;
//! - the target image `active` with the source's size, checksum and `os_hash_value` (read from
//!   the target Glance itself every [`POLL`]);
//! - for a sidecar, also its task `success` (read through the sidecar's task view): the import
//!   verified end to end, post-check included. For upstream the end is the verified `active`.
//!
//! The contenders: upstream (the target Glance), the sidecar in this process (with a task journal,
//! as deployed), and optionally a sidecar already running in front of the same Glance
//! (`--sidecar-url`, e.g. another build).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use super::super::BenchError;
use super::phases::{create_target, delete_target, Ctx};
use super::CloudOptions;
use crate::api::{App, Server};
use crate::config::{Config, SinkKind};
use crate::keystone::Token;
use crate::tools::apiclient::ImageApi;
use crate::tools::sync::{Credentials, Session};

/// The name of upstream's contender (the ratios' denominator).
pub(super) const UPSTREAM: &str = "upstream glance-download";

/// How often the target image (and a sidecar's task) is read while an import runs.
pub(super) const POLL: Duration = Duration::from_millis(10);

/// Untimed imports per contender before the runs (connections, workers and caches warm).
const WARM_UPS: usize = 1;

/// Which token an import is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    /// A token the contender has already validated.
    Cached,
    /// A token Keystone issued just before, used first by this import.
    Fresh,
}

impl TokenUse {
    fn name(self) -> &'static str {
        match self {
            TokenUse::Cached => "cached",
            TokenUse::Fresh => "fresh",
        }
    }
}

/// One import, timed from its `POST` (seconds).
#[derive(Debug, Clone, Serialize)]
pub struct SmallSample {
    pub contender: String,
    pub token: TokenUse,
    pub run: usize,
    /// `POST` → `202`.
    pub accepted: f64,
    /// `POST` → the target image seen `active` and verified against the source.
    pub active: f64,
    /// `POST` → the import's end: for a sidecar its task `success` (and the image verified
    /// `active`); for upstream the verified `active`.
    pub done: f64,
}

/// Every sample of a `--small` bench, and what it ran on.
#[derive(Debug, Clone, Serialize)]
pub struct SmallReport {
    pub from: String,
    pub to: String,
    pub target_glance_url: String,
    pub size: u64,
    pub runs: usize,
    pub poll_ms: u64,
    pub contenders: Vec<String>,
    pub samples: Vec<SmallSample>,
}

/// A contender: where its import requests go, and whether it has a task view to follow.
struct Contender {
    name: String,
    url: String,
    sidecar: bool,
}

/// Runs the small-image bench; `sidecar_url` adds a sidecar already running in front of the
/// target Glance.
pub fn run_small(
    options: &CloudOptions,
    credentials: &Credentials,
    sidecar_url: Option<&str>,
    progress: &mut dyn FnMut(&str),
    cancel: tokio_util::sync::CancellationToken,
) -> Result<SmallReport, BenchError> {
    let bench_rt = super::runtime("gds-bench")?;
    let sidecar_rt = super::runtime("gds-sidecar")?;
    let (ctx, _notes, created_source) =
        bench_rt.block_on(super::prepare(options, credentials, progress, cancel))?;
    let ctx = Arc::new(ctx);
    let journal =
        std::env::temp_dir().join(format!("gds-bench-small-{}.jsonl", std::process::id()));
    let server = sidecar_rt.block_on(start_sidecar(options, credentials, &ctx, &journal));
    let offered = bench_rt.block_on(upstream_offered(&ctx));
    let outcome = server.and_then(|server| {
        let mut contenders = Vec::new();
        match offered {
            Ok(true) => contenders.push(Contender {
                name: UPSTREAM.into(),
                url: ctx.target_url.clone(),
                sidecar: false,
            }),
            Ok(false) => {
                progress("The target Glance does not offer glance-download: upstream is left out")
            }
            Err(error) => progress(&format!("Upstream is left out: {error}")),
        }
        contenders.push(Contender {
            name: "sidecar (this build)".into(),
            url: server.url(),
            sidecar: true,
        });
        if let Some(url) = sidecar_url {
            contenders.push(Contender {
                name: format!("sidecar at {url}"),
                url: url.trim_end_matches('/').to_string(),
                sidecar: true,
            });
        }
        let measured = measure(options, credentials, &ctx, &contenders, &bench_rt, progress);
        sidecar_rt.block_on(server.shutdown(Duration::from_secs(5)));
        measured.map(|samples| (contenders, samples))
    });
    let _ = std::fs::remove_file(&journal);
    let leftovers = bench_rt.block_on(super::images::cleanup(&ctx, created_source.as_deref()));
    for leftover in &leftovers {
        progress(&format!("Could not delete {leftover}"));
    }
    let (contenders, samples) = outcome?;
    Ok(SmallReport {
        from: options.from.clone(),
        to: options.to.clone(),
        target_glance_url: ctx.target_url.clone(),
        size: ctx.source.size,
        runs: options.runs,
        poll_ms: POLL.as_millis() as u64,
        contenders: contenders.into_iter().map(|c| c.name).collect(),
        samples,
    })
}

/// Whether the target Glance lists glance-download in `GET /v2/info/import`.
async fn upstream_offered(ctx: &Ctx) -> Result<bool, BenchError> {
    let token = ctx.session.token().await?;
    let api = ImageApi::with_client(&ctx.target_url, token.expose(), ctx.client.clone());
    let methods = super::phases::import_methods(ctx, &api, "small image").await?;
    Ok(methods.iter().any(|m| m == "glance-download"))
}

/// The sidecar's own server in front of the target Glance: `glance-upload`, journal on.
async fn start_sidecar(
    options: &CloudOptions,
    credentials: &Credentials,
    ctx: &Ctx,
    journal: &std::path::Path,
) -> Result<Server, BenchError> {
    let config = Config {
        bind: ([127, 0, 0, 1], 0).into(),
        glance_url: ctx.target_url.clone(),
        auth_url: credentials.auth_url.clone(),
        ca_file: credentials.cacert.clone(),
        store_sink: SinkKind::GlanceUpload,
        chunk_size: options.limits.chunk_size,
        buffer_bytes: options.limits.buffer_bytes,
        task_journal: Some(journal.to_path_buf()),
        ..Config::default()
    };
    let app = App::new(config.clone()).map_err(|e| BenchError::Check(e.to_string()))?;
    Ok(Server::bind(app, config.bind).await?)
}

/// The warm-ups, then `options.runs` runs: every contender with each token, interleaved.
fn measure(
    options: &CloudOptions,
    credentials: &Credentials,
    ctx: &Arc<Ctx>,
    contenders: &[Contender],
    rt: &tokio::runtime::Runtime,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<SmallSample>, BenchError> {
    let cached = rt.block_on(ctx.session.token())?;
    for contender in contenders {
        for _ in 0..WARM_UPS {
            rt.block_on(import_once(ctx, contender, &cached))?;
        }
    }
    let mut samples = Vec::new();
    for run in 1..=options.runs {
        for contender in contenders {
            for token_use in [TokenUse::Cached, TokenUse::Fresh] {
                if ctx.cancel.is_cancelled() {
                    return Err(BenchError::Interrupted);
                }
                let token = match token_use {
                    TokenUse::Cached => cached.clone(),
                    TokenUse::Fresh => rt.block_on(fresh_token(ctx, credentials))?,
                };
                let (accepted, active, done) = rt.block_on(import_once(ctx, contender, &token))?;
                progress(&format!(
                    "run {run}/{}: {} ({} token): 202 {:.0} ms, active {:.0} ms, done {:.0} ms",
                    options.runs,
                    contender.name,
                    token_use.name(),
                    accepted * 1e3,
                    active * 1e3,
                    done * 1e3
                ));
                samples.push(SmallSample {
                    contender: contender.name.clone(),
                    token: token_use,
                    run,
                    accepted,
                    active,
                    done,
                });
            }
        }
    }
    Ok(samples)
}

/// A token Keystone has just issued (a new sign-in), seen by no Glance or sidecar yet.
async fn fresh_token(ctx: &Ctx, credentials: &Credentials) -> Result<Token, BenchError> {
    let session =
        Session::open(ctx.client.clone(), credentials.clone(), ctx.request_timeout).await?;
    Ok(session.token().await?)
}

/// One import of the source image by `contender` with `token`: seconds from the `POST` to the
/// `202`, to the verified `active` image, and to the import's end.
async fn import_once(
    ctx: &Ctx,
    contender: &Contender,
    token: &Token,
) -> Result<(f64, f64, f64), BenchError> {
    const PHASE: &str = "small image";
    let own = ctx.session.token().await?;
    let target = ImageApi::with_client(&ctx.target_url, own.expose(), ctx.client.clone());
    let through = ImageApi::with_client(&contender.url, token.expose(), ctx.client.clone());
    let id = create_target(ctx, &target, PHASE, "small").await?;
    let sent = Instant::now();
    let answer = through
        .import_glance_download(&id, &ctx.from, &ctx.source.id)
        .await
        .map_err(|e| failed(format!("POST /import: {e}")))?;
    let accepted = sent.elapsed().as_secs_f64();
    if answer.status.as_u16() != 202 {
        return Err(failed(format!(
            "{} answered the import {}: {}",
            contender.name,
            answer.status,
            crate::glance::error_message(&answer.body)
        )));
    }
    let tasks = ImageApi::with_client(&contender.url, own.expose(), ctx.client.clone());
    let ended = follow(ctx, &target, contender.sidecar.then_some(&tasks), &id, sent).await;
    if ended.is_ok() && contender.sidecar {
        // The sidecar writes the task's end on the image after its task says success; let it,
        // untimed, before the image is deleted under it.
        settle(ctx, &target, &id).await;
    }
    delete_target(ctx, &target, &id).await;
    let (active, done) = ended?;
    Ok((accepted, active, done))
}

/// Polls until the target image is `active` and verified and, with `tasks`, the sidecar's task
/// ended `success`; seconds from `sent` to each.
async fn follow(
    ctx: &Ctx,
    target: &ImageApi,
    tasks: Option<&ImageApi>,
    id: &str,
    sent: Instant,
) -> Result<(f64, f64), BenchError> {
    let deadline = sent + ctx.budget;
    let (mut active, mut succeeded) = (None, tasks.is_none().then_some(0.0));
    loop {
        // Both reads at once, so following a sidecar's task costs no extra delay.
        let (image, task) = tokio::join!(
            async {
                match active {
                    None => target.image(id).await.unwrap_or(Value::Null),
                    Some(_) => Value::Null,
                }
            },
            async {
                match (tasks, succeeded) {
                    (Some(view), None) => last_task_status(view, id).await,
                    _ => None,
                }
            }
        );
        if active.is_none() {
            match image["status"].as_str() {
                Some("active") => match ctx.source.mismatch(&image) {
                    None => active = Some(sent.elapsed().as_secs_f64()),
                    Some(reason) => return Err(failed(format!("not verified: {reason}"))),
                },
                Some("killed" | "deleted" | "pending_delete") => {
                    return Err(failed(format!("the image ended {}", image["status"])))
                }
                _ => {}
            }
        }
        match task.as_deref() {
            Some("success") => succeeded = Some(sent.elapsed().as_secs_f64()),
            Some("failure") => return Err(failed("the sidecar's task failed".into())),
            _ => {}
        }
        if let (Some(active), Some(succeeded)) = (active, succeeded) {
            return Ok((active, active.max(succeeded)));
        }
        if Instant::now() >= deadline || ctx.cancel.is_cancelled() {
            return Err(failed(format!("no verified end within {:?}", ctx.budget)));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The status of the newest task the contender lists for the image.
async fn last_task_status(view: &ImageApi, id: &str) -> Option<String> {
    let answer = view.get(&format!("/v2/images/{id}/tasks")).await.ok()?;
    let tasks = answer.json()["tasks"].as_array()?.clone();
    let newest = tasks
        .iter()
        .max_by_key(|t| t["created_at"].as_str().unwrap_or_default().to_string())?;
    newest["status"].as_str().map(str::to_string)
}

/// Waits (bounded) until the sidecar's end of task is written on the image.
async fn settle(ctx: &Ctx, target: &ImageApi, id: &str) {
    let deadline = Instant::now() + ctx.request_timeout;
    while Instant::now() < deadline {
        let image = target.image(id).await.unwrap_or(Value::Null);
        if image[crate::claim::STATUS].as_str() == Some("success") {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn failed(reason: String) -> BenchError {
    BenchError::Phase {
        phase: "small image",
        reason,
    }
}

// === the report ===

/// Nearest-rank quantile `q` (0–1) of `values`, `None` when empty.
pub(super) fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

impl SmallReport {
    fn values(&self, contender: &str, token: TokenUse, pick: Pick) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|s| s.contender == contender && s.token == token)
            .map(pick)
            .collect()
    }

    /// Median and p90 of one measure, milliseconds.
    fn stats(&self, contender: &str, token: TokenUse, pick: Pick) -> (Option<f64>, Option<f64>) {
        let values = self.values(contender, token, pick);
        (
            quantile(&values, 0.5).map(|v| v * 1e3),
            quantile(&values, 0.9).map(|v| v * 1e3),
        )
    }

    /// Every contender's median over upstream's, per token use and measure.
    pub fn ratios(&self) -> Vec<(String, TokenUse, &'static str, Option<f64>)> {
        let mut ratios = Vec::new();
        if !self.contenders.iter().any(|c| c == UPSTREAM) {
            return ratios;
        }
        for contender in self.contenders.iter().filter(|c| *c != UPSTREAM) {
            for token in [TokenUse::Cached, TokenUse::Fresh] {
                for (name, pick) in MEASURES {
                    let ours = self.stats(contender, token, pick).0;
                    let theirs = self.stats(UPSTREAM, token, pick).0;
                    let ratio = ours.zip(theirs).map(|(a, b)| a / b.max(1e-9));
                    ratios.push((contender.clone(), token, name, ratio));
                }
            }
        }
        ratios
    }

    /// One JSON document: the samples, the medians and p90s, the ratios.
    pub fn to_json(&self) -> Value {
        let mut summary = Vec::new();
        for contender in &self.contenders {
            for token in [TokenUse::Cached, TokenUse::Fresh] {
                let mut row = json!({"contender": contender, "token": token});
                for (name, pick) in MEASURES {
                    let (median, p90) = self.stats(contender, token, pick);
                    row[name] = json!({"median_ms": median, "p90_ms": p90});
                }
                summary.push(row);
            }
        }
        let ratios: Vec<Value> = self
            .ratios()
            .into_iter()
            .map(|(contender, token, measure, ratio)| {
                json!({"contender": contender, "token": token, "measure": measure,
                       "median_over_upstream": ratio})
            })
            .collect();
        json!({"setup": self, "summary": summary, "ratios": ratios})
    }

    /// The table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "bench --small: {} → {} (target Glance {}), {} image, {} run(s), polled every {} ms\n\n",
            self.from,
            self.to,
            self.target_glance_url,
            super::super::report::bytes(self.size),
            self.runs,
            self.poll_ms
        );
        let _ = writeln!(
            out,
            "{:<34} {:<7} {:>17} {:>17} {:>17}",
            "contender", "token", "→202 ms p50/p90", "→active p50/p90", "→done p50/p90"
        );
        let ms = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.0}"));
        for contender in &self.contenders {
            for token in [TokenUse::Cached, TokenUse::Fresh] {
                let cells: Vec<String> = MEASURES
                    .iter()
                    .map(|(_, pick)| {
                        let (median, p90) = self.stats(contender, token, *pick);
                        format!("{} / {}", ms(median), ms(p90))
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<34} {:<7} {:>17} {:>17} {:>17}",
                    contender,
                    token.name(),
                    cells[0],
                    cells[1],
                    cells[2]
                );
            }
        }
        out.push_str(
            "\nmedian over upstream's (same run, same token use; ≤ 1.00 meets the goal):\n",
        );
        for (contender, token, measure, ratio) in self.ratios() {
            let shown = ratio.map_or("—".into(), |r| format!("{r:.2}"));
            let _ = writeln!(
                out,
                "  {contender} ({} token) {measure}: {shown}",
                token.name()
            );
        }
        out
    }
}

/// Reads one measure off a sample.
type Pick = fn(&SmallSample) -> f64;

/// The measures reported, by name.
const MEASURES: [(&str, Pick); 3] = [
    ("accepted", |s| s.accepted),
    ("active", |s| s.active),
    ("done", |s| s.done),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(contender: &str, token: TokenUse, accepted: f64, done: f64) -> SmallSample {
        SmallSample {
            contender: contender.into(),
            token,
            run: 1,
            accepted,
            active: done,
            done,
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(5.0));
        assert_eq!(quantile(&values, 0.9), Some(9.0));
        assert_eq!(quantile(&values, 1.0), Some(10.0));
        assert_eq!(quantile(&[3.0], 0.9), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[f64::NAN, 2.0], 0.5), Some(2.0));
    }

    #[test]
    fn ratios_compare_medians_with_upstream_per_token_use() {
        let report = SmallReport {
            from: "R1".into(),
            to: "R2".into(),
            target_glance_url: "http://g".into(),
            size: 1 << 20,
            runs: 2,
            poll_ms: 10,
            contenders: vec![UPSTREAM.into(), "side".into()],
            samples: vec![
                sample(UPSTREAM, TokenUse::Cached, 0.020, 0.400),
                sample(UPSTREAM, TokenUse::Fresh, 0.100, 0.500),
                sample("side", TokenUse::Cached, 0.040, 0.200),
                sample("side", TokenUse::Fresh, 0.050, 0.250),
            ],
        };
        let ratio = |token, measure| {
            report
                .ratios()
                .into_iter()
                .find(|(c, t, m, _)| c == "side" && *t == token && *m == measure)
                .and_then(|(_, _, _, r)| r)
                .unwrap()
        };
        assert!((ratio(TokenUse::Cached, "accepted") - 2.0).abs() < 1e-9);
        assert!((ratio(TokenUse::Fresh, "accepted") - 0.5).abs() < 1e-9);
        assert!((ratio(TokenUse::Cached, "done") - 0.5).abs() < 1e-9);
        let table = report.table();
        assert!(
            table.contains("side (cached token) accepted: 2.00"),
            "{table}"
        );
        let json = report.to_json();
        assert_eq!(json["summary"][2]["accepted"]["median_ms"], 40.0);
    }
}
