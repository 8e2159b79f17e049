//! What a run did: one [`JobResult`] per image × target region, the [`Summary`] of the run, its
//! JSON form (`--json`) and the human units used in messages, and the one rule for remote text
//! shown on a terminal ([`printable`]).

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
    /// Not copied (or, for a copy to prune, not deleted or hidden); the error says why.
    Failed,
    /// `--prune`: a copy whose source is no longer selected was deleted.
    Pruned,
    /// `--prune=hide`: such a copy was hidden (`os_hidden: true`).
    Hidden,
    /// `--prune --dry-run`: would be deleted.
    WouldPrune,
    /// `--prune=hide --dry-run`: would be hidden.
    WouldHide,
}

impl Action {
    /// The name used in the JSON summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Copied => "copied",
            Action::Skipped => "skipped",
            Action::WouldCopy => "would_copy",
            Action::Failed => "failed",
            Action::Pruned => "pruned",
            Action::Hidden => "hidden",
            Action::WouldPrune => "prune",
            Action::WouldHide => "hide",
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
    /// The source and target clouds' clouds.yaml entries, when copying between two
    /// (`--from-cloud`, `--to-cloud`, or a plan's two clouds).
    pub clouds: Option<(String, String)>,
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
        let mut document = json!({
            "from": self.from,
            "to": self.to,
            "dry_run": self.dry_run,
            "totals": {
                "copied": self.count(Action::Copied),
                "skipped": self.count(Action::Skipped),
                "would_copy": self.count(Action::WouldCopy),
                "failed": self.count(Action::Failed),
                "pruned": self.count(Action::Pruned),
                "hidden": self.count(Action::Hidden),
                "prune": self.count(Action::WouldPrune),
                "hide": self.count(Action::WouldHide),
                "bytes": self.bytes(),
                "seconds": round3(self.seconds),
            },
            "results": self.results.iter().map(JobResult::to_json).collect::<Vec<_>>(),
        });
        if let (Some((from, to)), Some(fields)) = (&self.clouds, document.as_object_mut()) {
            fields.insert("from_cloud".into(), json!(from));
            fields.insert("to_cloud".into(), json!(to));
        }
        document
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
        let pruning = [
            (Action::Pruned, "pruned"),
            (Action::Hidden, "hidden"),
            (Action::WouldPrune, "would be pruned"),
            (Action::WouldHide, "would be hidden"),
        ];
        for (action, word) in pruning {
            let n = self.count(action);
            if n > 0 {
                text.push_str(&format!(", {n} {word}"));
            }
        }
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
pub(super) fn bytes(n: u64) -> String {
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
pub(super) fn rate(bytes_per_sec: f64) -> String {
    format!("{}/s", bytes(bytes_per_sec.max(0.0) as u64))
}

/// A duration for an ETA: `42 s`, `3 min 5 s`, `2 h 10 min`.
pub(super) fn eta(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// Whether `c` must not reach a terminal as it is: a control character (C0, DEL, C1: ANSI escape
/// sequences start with ESC or CSI), a bidirectional-text control (which reorders what is shown
/// around it), or a line or paragraph separator.
fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Text from a remote service (image names, ids, task messages) made safe to print on a
/// terminal: every character `unsafe_on_terminal` becomes its `\u{..}` escape, so an image
/// named `"\u{1b}[2J"` shows as `\u{1b}[2J` instead of clearing the screen.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_on_terminal(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` as JSON text (`pretty`: indented) that is also safe on a terminal: the same JSON value,
/// with DEL, C1 and the other characters `unsafe_on_terminal` written as `\uXXXX` escapes
/// (`serde_json` escapes only C0).
pub fn json_text(value: &Value, pretty: bool) -> String {
    let text = if pretty {
        format!("{value:#}")
    } else {
        value.to_string()
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // Outside strings JSON has only ASCII punctuation, digits, letters and whitespace, so
        // any such character is inside a string, where an escape means the same character.
        if unsafe_on_terminal(c) && !matches!(c, '\n' | ' ') {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(
            printable("plain name-1.qcow2 é ✓"),
            "plain name-1.qcow2 é ✓"
        );
        assert_eq!(printable("\u{1b}[2Jx"), "\\u{1b}[2Jx");
        assert_eq!(printable("a\nb\rc\td\0"), "a\\u{a}b\\u{d}c\\u{9}d\\u{0}");
        assert_eq!(
            printable("\u{7f}\u{9b}31m\u{85}"),
            "\\u{7f}\\u{9b}31m\\u{85}"
        );
        assert_eq!(printable("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(printable("a\u{2028}b"), "a\\u{2028}b");
        // Nothing printed contains a control character any more.
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!printable(&all).chars().any(unsafe_on_terminal));
    }

    #[test]
    fn json_stays_the_same_value() {
        let value = json!({"name": "a\u{1b}[31m\u{7f}\u{9b}\u{202e}\nz", "n": [1, 2]});
        for pretty in [false, true] {
            let text = json_text(&value, pretty);
            assert!(
                !text.chars().any(|c| unsafe_on_terminal(c) && c != '\n'),
                "{text}"
            );
            assert!(text.contains(r"\u007f\u009b\u202e"), "{text}");
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value);
        }
    }
}
