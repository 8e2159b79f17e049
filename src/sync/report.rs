//! What a run did: one [`JobResult`] per image × target region, the [`Summary`] of the run, its
//! JSON form (`--json`) and the human units used in messages.

use serde_json::{json, Value};

/// What happened to one image in one target region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Copied and verified.
    Copied,
    /// A verified copy already existed.
    Skipped,
    /// `--dry-run`: would have been copied.
    WouldCopy,
    /// Not copied; the error says why.
    Failed,
}

impl Action {
    /// The name used in the JSON summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Copied => "copied",
            Action::Skipped => "skipped",
            Action::WouldCopy => "would_copy",
            Action::Failed => "failed",
        }
    }
}

/// How the bytes reach a target region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The target region imports them itself (its endpoint advertises glance-download).
    GlanceDownload,
    /// `sync` streams them: source `/file` → verified pipeline → target `PUT /file`.
    Stream,
}

impl Method {
    /// The name used in messages and the JSON summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::GlanceDownload => "glance-download",
            Method::Stream => "stream",
        }
    }
}

/// The outcome for one image × target region.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    /// Position in the run (1-based, images in selection order, regions in `--to` order).
    pub index: usize,
    pub source_id: String,
    pub name: Option<String>,
    pub region: String,
    /// The copy (existing, created or reused), if one was found or made.
    pub target_id: Option<String>,
    pub action: Action,
    pub method: Option<Method>,
    /// Bytes moved by this run (0 when skipped).
    pub bytes: u64,
    pub seconds: f64,
    /// The error, naming the image and the region, when `action` is `Failed`.
    pub error: Option<String>,
}

impl JobResult {
    /// The JSON object of this result in the summary.
    pub fn to_json(&self) -> Value {
        json!({
            "source_id": self.source_id,
            "name": self.name,
            "region": self.region,
            "target_id": self.target_id,
            "action": self.action.as_str(),
            "method": self.method.map(Method::as_str),
            "bytes": self.bytes,
            "seconds": round3(self.seconds),
            "error": self.error,
        })
    }
}

/// Everything a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub from: String,
    pub to: Vec<String>,
    pub dry_run: bool,
    /// In job order.
    pub results: Vec<JobResult>,
    pub seconds: f64,
}

impl Summary {
    /// How many results have `action`.
    pub fn count(&self, action: Action) -> usize {
        self.results.iter().filter(|r| r.action == action).count()
    }

    /// Whether every image reached every region (or would, in a dry run).
    pub fn succeeded(&self) -> bool {
        self.count(Action::Failed) == 0
    }

    /// Bytes moved by this run.
    pub fn bytes(&self) -> u64 {
        self.results.iter().map(|r| r.bytes).sum()
    }

    /// The `--json` document.
    pub fn to_json(&self) -> Value {
        json!({
            "from": self.from,
            "to": self.to,
            "dry_run": self.dry_run,
            "totals": {
                "copied": self.count(Action::Copied),
                "skipped": self.count(Action::Skipped),
                "would_copy": self.count(Action::WouldCopy),
                "failed": self.count(Action::Failed),
                "bytes": self.bytes(),
                "seconds": round3(self.seconds),
            },
            "results": self.results.iter().map(JobResult::to_json).collect::<Vec<_>>(),
        })
    }

    /// One line for humans: the counts, bytes and time.
    pub fn line(&self) -> String {
        let mut text = if self.dry_run {
            format!(
                "dry run: {} would be copied, {} skipped, {} failed",
                self.count(Action::WouldCopy),
                self.count(Action::Skipped),
                self.count(Action::Failed)
            )
        } else {
            format!(
                "done: {} copied, {} skipped, {} failed",
                self.count(Action::Copied),
                self.count(Action::Skipped),
                self.count(Action::Failed)
            )
        };
        text.push_str(&format!(
            "; {} in {:.2} s",
            bytes(self.bytes()),
            self.seconds
        ));
        text
    }
}

fn round3(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `20.0 MiB`, `3.25 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let decimals = if unit >= 2 { 2 } else { 1 };
    format!("{value:.decimals$} {}", UNITS[unit])
}

/// A rate in binary units per second.
pub fn rate(bytes_per_sec: f64) -> String {
    format!("{}/s", bytes(bytes_per_sec.max(0.0) as u64))
}

/// A duration for an ETA: `42 s`, `3 min 5 s`, `2 h 10 min`.
pub fn eta(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
