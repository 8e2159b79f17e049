//! Process-wide counters, rendered in the Prometheus text format at `GET /metrics`.
//!
//! Plain atomics: the data path adds to them once per import, never per chunk.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tasks::Tasks;

/// Counters of the sidecar.
#[derive(Debug, Default)]
pub struct Metrics {
    pub imports_started: AtomicU64,
    pub imports_succeeded: AtomicU64,
    pub imports_failed: AtomicU64,
    pub verification_failures: AtomicU64,
    pub bytes_imported: AtomicU64,
    pub in_flight: AtomicU64,
    pub proxied_requests: AtomicU64,
    pub source_retries: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text (version 0.0.4).
    pub fn render(&self, tasks: &Tasks) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        counter(
            "gds_imports_started_total",
            "glance-download imports accepted (202).",
            "counter",
            get(&self.imports_started),
        );
        counter(
            "gds_imports_succeeded_total",
            "Imports that ended with a verified, active image.",
            "counter",
            get(&self.imports_succeeded),
        );
        counter(
            "gds_imports_failed_total",
            "Imports that ended in failure (image reverted to queued).",
            "counter",
            get(&self.imports_failed),
        );
        counter(
            "gds_verification_failures_total",
            "Imports refused because size or digests differed from the source's.",
            "counter",
            get(&self.verification_failures),
        );
        counter(
            "gds_imported_bytes_total",
            "Verified bytes delivered to the store by successful imports.",
            "counter",
            get(&self.bytes_imported),
        );
        counter(
            "gds_imports_in_flight",
            "Imports currently running.",
            "gauge",
            get(&self.in_flight),
        );
        counter(
            "gds_proxied_requests_total",
            "Requests passed through to the upstream Glance.",
            "counter",
            get(&self.proxied_requests),
        );
        counter(
            "gds_source_retries_total",
            "Reconnections to a source Glance (resumed with Range) after a transient failure.",
            "counter",
            get(&self.source_retries),
        );
        let _ = writeln!(out, "# HELP gds_tasks Tasks held in memory, by status.");
        let _ = writeln!(out, "# TYPE gds_tasks gauge");
        for (status, n) in tasks.counts() {
            let _ = writeln!(out, "gds_tasks{{status=\"{}\"}} {n}", status.as_str());
        }
        out
    }
}
