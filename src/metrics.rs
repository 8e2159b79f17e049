//! Process-wide counters and histograms, rendered in the Prometheus text format at `GET /metrics`.
//!
//! Plain atomics: the data path adds to them once per import, never per chunk.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::tasks::Tasks;

/// Counters of the sidecar.
#[derive(Debug)]
pub struct Metrics {
    pub imports_started: AtomicU64,
    pub imports_succeeded: AtomicU64,
    pub imports_failed: AtomicU64,
    pub verification_failures: AtomicU64,
    pub bytes_imported: AtomicU64,
    pub in_flight: AtomicU64,
    pub proxied_requests: AtomicU64,
    pub source_retries: AtomicU64,
    /// Imports refused with `429` (global or per-project limit).
    pub imports_rejected: AtomicU64,
    /// Client connections open now (shared with the accept loop).
    pub connections_open: Arc<AtomicU64>,
    /// Throughput of successful imports, MB/s (10^6 bytes), from start to verified.
    pub throughput: Histogram,
    /// Seconds per call to Keystone or an upstream Glance (JSON calls, not data streams).
    pub upstream_latency: Histogram,
}

/// A Prometheus histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Buckets for import throughput, MB/s.
pub const THROUGHPUT_BUCKETS: &[f64] = &[10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0];

/// Buckets for upstream call latency, seconds.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if value <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = (value.max(0.0) * 1e6).round() as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            imports_started: AtomicU64::new(0),
            imports_succeeded: AtomicU64::new(0),
            imports_failed: AtomicU64::new(0),
            verification_failures: AtomicU64::new(0),
            bytes_imported: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            proxied_requests: AtomicU64::new(0),
            source_retries: AtomicU64::new(0),
            imports_rejected: AtomicU64::new(0),
            connections_open: Arc::new(AtomicU64::new(0)),
            throughput: Histogram::new(THROUGHPUT_BUCKETS),
            upstream_latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

/// One unit counted on a gauge (e.g. `in_flight`) while it lives; see [`Metrics::hold`].
#[derive(Debug)]
#[must_use = "the gauge goes back down when the guard is dropped"]
pub struct GaugeGuard<'a>(&'a AtomicU64);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one on `gauge` until the returned guard is dropped, however the holder ends.
    pub fn hold(gauge: &AtomicU64) -> GaugeGuard<'_> {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }

    /// The exposition text (version 0.0.4).
    pub fn render(&self, tasks: &Tasks) -> String {
        let mut out = String::new();
        for (name, help, kind, value) in self.counters() {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        self.throughput.render(
            &mut out,
            "gds_import_throughput_mbps",
            "Throughput of successful imports in MB/s, from start to verified.",
        );
        self.upstream_latency.render(
            &mut out,
            "gds_upstream_call_seconds",
            "Duration of JSON calls to Keystone and Glance.",
        );
        let _ = writeln!(out, "# HELP gds_tasks Tasks held in memory, by status.");
        let _ = writeln!(out, "# TYPE gds_tasks gauge");
        for (status, n) in tasks.counts() {
            let _ = writeln!(out, "gds_tasks{{status=\"{}\"}} {n}", status.as_str());
        }
        out
    }

    /// Every counter and gauge: name, help, type and value.
    fn counters(&self) -> [(&'static str, &'static str, &'static str, u64); 10] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "gds_imports_started_total",
                "glance-download imports accepted (202).",
                "counter",
                get(&self.imports_started),
            ),
            (
                "gds_imports_succeeded_total",
                "Imports that ended with a verified, active image.",
                "counter",
                get(&self.imports_succeeded),
            ),
            (
                "gds_imports_failed_total",
                "Imports that ended in failure (image reverted to queued).",
                "counter",
                get(&self.imports_failed),
            ),
            (
                "gds_verification_failures_total",
                "Imports refused because size or digests differed from the source's.",
                "counter",
                get(&self.verification_failures),
            ),
            (
                "gds_imported_bytes_total",
                "Verified bytes delivered to the store by successful imports.",
                "counter",
                get(&self.bytes_imported),
            ),
            (
                "gds_imports_in_flight",
                "Imports currently running.",
                "gauge",
                get(&self.in_flight),
            ),
            (
                "gds_proxied_requests_total",
                "Requests passed through to the upstream Glance.",
                "counter",
                get(&self.proxied_requests),
            ),
            (
                "gds_source_retries_total",
                "Reconnections to a source Glance (resumed with Range) after a transient failure.",
                "counter",
                get(&self.source_retries),
            ),
            (
                "gds_imports_rejected_total",
                "Imports refused with 429 (max_concurrent_imports or max_imports_per_project reached).",
                "counter",
                get(&self.imports_rejected),
            ),
            (
                "gds_connections_open",
                "Client connections open now (at most max_connections).",
                "gauge",
                get(&self.connections_open),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::new(&[1.0, 10.0]);
        h.observe(0.5);
        h.observe(5.0);
        h.observe(50.0);
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(
            out.contains("x_sum 55.5\n") && out.contains("x_count 3\n"),
            "{out}"
        );
    }

    #[test]
    fn a_held_gauge_goes_back_down_when_its_holder_ends() {
        let metrics = Metrics::default();
        let first = Metrics::hold(&metrics.in_flight);
        {
            let _second = Metrics::hold(&metrics.in_flight);
            assert_eq!(metrics.in_flight.load(Ordering::Relaxed), 2);
        }
        assert_eq!(metrics.in_flight.load(Ordering::Relaxed), 1);
        drop(first);
        assert_eq!(metrics.in_flight.load(Ordering::Relaxed), 0);
    }
}
