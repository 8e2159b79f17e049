//! The bench's result: every run's samples, medians per phase, the ratios to the ceiling, and its
//! two renderings (a table for people, one JSON document for scripts).

use std::fmt::Write as _;

use serde::Serialize;

use super::measure::{Machine, Sample};
use super::sim::ImportTimes;
use super::Options;
use crate::hash::HashAlgo;

/// One run: each phase once, measured back to back.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub generator: Sample,
    pub ceiling: Sample,
    /// The ceiling's rate if each hasher had a core to itself (from their CPU time), MB/s.
    pub ceiling_own_core_mb_per_s: Option<f64>,
    pub pipeline: Sample,
    /// Frames the null sink received in (b): the source's frames as hyper read them, cut at the
    /// chunk size.
    pub pipeline_frames: u64,
    /// Its `seconds` are `POST /import` → task `success`.
    pub import: Sample,
    pub import_times: ImportTimes,
}

/// One phase over all runs.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    /// `generator`, `ceiling`, `pipeline` or `import`.
    pub key: &'static str,
    pub label: &'static str,
    /// Median MB/s (10^6 bytes per second).
    pub mb_per_s: f64,
    /// Every run's MB/s, in run order.
    pub mb_per_s_runs: Vec<f64>,
    /// Median CPU seconds per GiB, whole process.
    pub cpu_s_per_gib: Option<f64>,
    /// Median CPU seconds per GiB per thread group, largest first.
    pub cpu_s_per_gib_by_thread: Vec<(String, f64)>,
    /// Largest peak RSS over the runs, bytes.
    pub peak_rss: Option<u64>,
    /// Median CPU cores other processes kept busy during this phase.
    pub others_cores: Option<f64>,
    /// Median of the rate bound if this phase had every CPU of the machine to itself: CPUs over
    /// CPU-seconds per byte (MB/s). Other load barely moves it.
    pub cpu_bound_mb_per_s: Option<f64>,
}

/// Medians of the import's timings, seconds.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub accepted: f64,
    pub to_store: Option<f64>,
    pub storing: Option<f64>,
    pub total: f64,
}

/// Everything one `bench` invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: &'static str,
    pub size: u64,
    pub runs: usize,
    pub chunk_size: usize,
    pub buffer_bytes: usize,
    pub os_hash_algo: &'static str,
    pub machine: Machine,
    pub phases: Vec<PhaseSummary>,
    /// Median over runs of (b)/(a), each run's phases side by side.
    pub pipeline_over_ceiling: f64,
    /// Median over runs of (c)/(a).
    pub import_over_ceiling: f64,
    /// Median over runs of (a)'s CPU-s/GiB over (b)'s: how much more CPU each byte costs in the
    /// pipeline than in the bare hashers (1.0 = nothing more). Other load barely moves it.
    pub ceiling_cpu_over_pipeline_cpu: Option<f64>,
    /// Median over runs of (a)'s CPU-s/GiB over (c)'s.
    pub ceiling_cpu_over_import_cpu: Option<f64>,
    /// Median of the ceiling's rate if each hasher had a core to itself, MB/s.
    pub ceiling_own_core_mb_per_s: Option<f64>,
    /// Mean frame size through the pipeline in (b), bytes (median over runs).
    pub pipeline_mean_frame: f64,
    pub import: ImportSummary,
    /// Whether each peak RSS is the phase's own (reset at its start) or the process's lifetime.
    pub peak_rss_per_phase: bool,
    pub notes: Vec<String>,
    pub samples: Vec<Run>,
}

// === impl Report ===

impl Report {
    pub(super) fn new(options: &Options, algo: HashAlgo, machine: Machine, runs: Vec<Run>) -> Self {
        let cpus = machine.cpus;
        let phase =
            |key, label, pick: fn(&Run) -> &Sample| summarize(key, label, &runs, pick, cpus);
        let phases = vec![
            phase("generator", "generator alone", |r| &r.generator),
            phase("ceiling", "(a) hash-only ceiling", |r| &r.ceiling),
            phase("pipeline", "(b) pipeline alone", |r| &r.pipeline),
            phase("import", "(c) full import", |r| &r.import),
        ];
        let ratio = |pick: fn(&Run) -> &Sample| {
            median(
                runs.iter()
                    .map(|r| pick(r).mb_per_s() / r.ceiling.mb_per_s().max(1e-9)),
            )
        };
        let cpu_ratio = |pick: fn(&Run) -> &Sample| {
            let ratios: Vec<f64> = runs
                .iter()
                .filter_map(|r| Some(r.ceiling.cpu_per_gib()? / pick(r).cpu_per_gib()?))
                .collect();
            (!ratios.is_empty()).then(|| median(ratios))
        };
        let own_core: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.ceiling_own_core_mb_per_s)
            .collect();
        let times = |pick: fn(&ImportTimes) -> Option<f64>| {
            let values: Vec<f64> = runs.iter().filter_map(|r| pick(&r.import_times)).collect();
            (!values.is_empty()).then(|| median(values))
        };
        let per_phase = runs.iter().all(|r| {
            [&r.generator, &r.ceiling, &r.pipeline, &r.import]
                .iter()
                .all(|s| s.peak_rss_per_phase)
        });
        Report {
            target: "simulated",
            size: options.size,
            runs: runs.len(),
            chunk_size: options.limits.chunk_size,
            buffer_bytes: options.limits.buffer_bytes,
            os_hash_algo: algo.name(),
            machine,
            phases,
            pipeline_over_ceiling: ratio(|r| &r.pipeline),
            import_over_ceiling: ratio(|r| &r.import),
            ceiling_cpu_over_pipeline_cpu: cpu_ratio(|r| &r.pipeline),
            ceiling_cpu_over_import_cpu: cpu_ratio(|r| &r.import),
            ceiling_own_core_mb_per_s: (!own_core.is_empty()).then(|| median(own_core)),
            pipeline_mean_frame: median(
                runs.iter()
                    .map(|r| r.pipeline.bytes as f64 / r.pipeline_frames.max(1) as f64),
            ),
            import: ImportSummary {
                accepted: times(|t| Some(t.accepted)).unwrap_or(0.0),
                to_store: times(|t| t.to_store),
                storing: times(|t| t.storing),
                total: times(|t| Some(t.total)).unwrap_or(0.0),
            },
            peak_rss_per_phase: per_phase,
            notes: notes(algo, per_phase),
            samples: runs,
        }
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The report as a table for a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "bench --simulated: {} image, {} run(s), chunk {}, buffer {}, os_hash {}",
            bytes(self.size),
            self.runs,
            bytes(self.chunk_size as u64),
            bytes(self.buffer_bytes as u64),
            self.os_hash_algo
        );
        let m = &self.machine;
        let load = |l: Option<f64>| l.map_or("?".to_string(), |l| format!("{l:.1}"));
        let _ = writeln!(
            out,
            "machine: {} CPU(s), {}, load average {} at start, {} at end\n",
            m.cpus,
            m.cpu_model.as_deref().unwrap_or("unknown CPU"),
            load(m.load_before),
            load(m.load_after)
        );
        let _ = writeln!(
            out,
            "{:<24} {:>7}  {:<22} {:>9}  {:<44} {:>9}  {:>6}",
            "phase",
            "MB/s",
            "runs (MB/s)",
            "CPU-s/GiB",
            "by thread (CPU-s/GiB)",
            "peak RSS",
            "others"
        );
        for p in &self.phases {
            let (runs, threads) = runs_and_threads(&p.mb_per_s_runs, &p.cpu_s_per_gib_by_thread);
            let _ = writeln!(
                out,
                "{:<24} {:>7.0}  {:<22} {:>9}  {:<44} {:>9}  {:>6}",
                p.label,
                p.mb_per_s,
                runs,
                p.cpu_s_per_gib.map_or("?".into(), |c| format!("{c:.2}")),
                threads,
                p.peak_rss
                    .map_or("?".into(), |b| format!("{:.1} MiB", mib(b))),
                p.others_cores.map_or("?".into(), |c| format!("{c:.2}"))
            );
        }
        let _ = writeln!(
            out,
            "\nratios (median of per-run ratios): (b)/(a) {:.2}   (c)/(a) {:.2}",
            self.pipeline_over_ceiling, self.import_over_ceiling
        );
        let opt = |v: Option<f64>, digits: usize| v.map_or("?".into(), |v| format!("{v:.digits$}"));
        let bound = |key: &str| {
            let phase = self.phases.iter().find(|p| p.key == key);
            opt(phase.and_then(|p| p.cpu_bound_mb_per_s), 0)
        };
        let _ = writeln!(
            out,
            "CPU-time view (other load barely moves it): (a)/(b) CPU-s per GiB {}   (a)/(c) {}",
            opt(self.ceiling_cpu_over_pipeline_cpu, 2),
            opt(self.ceiling_cpu_over_import_cpu, 2)
        );
        let _ = writeln!(
            out,
            "  rate bounds with the {} CPU(s) to itself: (a) {} MB/s (each hasher on its own core: {}), (b) {} MB/s, (c) {} MB/s",
            self.machine.cpus,
            bound("ceiling"),
            opt(self.ceiling_own_core_mb_per_s, 0),
            bound("pipeline"),
            bound("import")
        );
        let _ = writeln!(
            out,
            "(b) mean frame through the pipeline: {:.0} KiB (as hyper read the source; chunk size {})",
            self.pipeline_mean_frame / 1024.0,
            bytes(self.chunk_size as u64)
        );
        let secs =
            |s: Option<f64>| s.map_or("not seen".to_string(), |s| format!("{:.0} ms", s * 1e3));
        let _ = writeln!(
            out,
            "(c) medians: POST /import → 202 {}; 202 → PUT /file at the store {}; store saving → active {:.2} s; POST /import → task success {:.2} s",
            secs(Some(self.import.accepted)),
            secs(self.import.to_store),
            self.import.storing.unwrap_or(f64::NAN),
            self.import.total
        );
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

fn summarize(
    key: &'static str,
    label: &'static str,
    runs: &[Run],
    pick: fn(&Run) -> &Sample,
    cpus: usize,
) -> PhaseSummary {
    let samples: Vec<&Sample> = runs.iter().map(pick).collect();
    let mb_per_s_runs: Vec<f64> = samples.iter().map(|s| s.mb_per_s()).collect();
    let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_per_gib()).collect();
    let by_thread = median_cpu_by_thread(&samples);
    PhaseSummary {
        key,
        label,
        mb_per_s: median(mb_per_s_runs.iter().copied()),
        mb_per_s_runs,
        cpu_s_per_gib: (!cpu.is_empty()).then(|| median(cpu)),
        cpu_s_per_gib_by_thread: by_thread,
        peak_rss: samples.iter().filter_map(|s| s.peak_rss).max(),
        cpu_bound_mb_per_s: {
            let bounds: Vec<f64> = samples
                .iter()
                .filter_map(|s| s.cpu_bound_mb_per_s(cpus))
                .collect();
            (!bounds.is_empty()).then(|| median(bounds))
        },
        others_cores: {
            let others: Vec<f64> = samples.iter().filter_map(|s| s.others_cores()).collect();
            (!others.is_empty()).then(|| median(others))
        },
    }
}

fn notes(algo: HashAlgo, per_phase: bool) -> Vec<String> {
    let mut notes = vec![
        "MB = 10^6 bytes; CPU-s/GiB = user+system CPU seconds of this whole process per GiB moved; \
         all phases share the same cores, so compare figures from the same run only"
            .to_string(),
        "others = CPU cores other processes on this machine kept busy during the phase (median): \
         above ~0.1 the rates are depressed by contention, the CPU-s/GiB much less"
            .to_string(),
        "CPU-time view: (a)/(b) is how much more CPU a byte costs in (b) than in the bare hashers \
         (1.00 = nothing more); a rate bound is the CPUs over CPU-s per byte, the most the phase \
         could move with the machine to itself (for (a) also capped by the busier hasher)"
            .to_string(),
        "every phase includes generating the source bytes (see 'generator alone'); in (b) and (c) \
         the fake source Glance generates them (threads 'sim')"
            .to_string(),
        format!(
            "(c) includes the fake target Glance hashing every byte again (md5 + {algo}, threads \
             'sim') on the same cores, as a real Glance would"
        ),
    ];
    if !per_phase {
        notes.push(
            "peak RSS could not be reset per phase here: it is the process's lifetime peak".into(),
        );
    }
    notes
}

/// The median (the mean of the middle two for an even count); 0 when empty.
/// The median CPU seconds per GiB of each thread group over the runs (groups below 0.005
/// left out), busiest first.
pub(crate) fn median_cpu_by_thread(samples: &[&Sample]) -> Vec<(String, f64)> {
    let mut groups: Vec<String> = samples
        .iter()
        .flat_map(|s| s.cpu_by_thread.iter().map(|(name, _)| name.clone()))
        .collect();
    groups.sort();
    groups.dedup();
    let mut by_thread: Vec<(String, f64)> = groups
        .into_iter()
        .map(|group| {
            let per_run = samples
                .iter()
                .map(|s| s.group_cpu_per_gib(&group).unwrap_or(0.0));
            let cpu = median(per_run);
            (group, cpu)
        })
        .filter(|(_, cpu)| *cpu >= 0.005)
        .collect();
    by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
    by_thread
}

/// A phase's per-run rates ("697 685 695") and its CPU by thread ("sidecar 3.61, bench 0.03"), as
/// both report tables print them.
pub(crate) fn runs_and_threads(runs: &[f64], by_thread: &[(String, f64)]) -> (String, String) {
    let runs: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
    let threads: Vec<String> = by_thread
        .iter()
        .map(|(name, cpu)| format!("{} {cpu:.2}", name.trim_start_matches("gds-")))
        .collect();
    (runs.join(" "), threads.join(", "))
}

pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

pub(crate) fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// A byte count in the largest binary unit that divides it evenly (else MiB with decimals).
pub(crate) fn bytes(b: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{} {unit}", b >> shift);
        }
    }
    if b >= 1 << 20 {
        format!("{:.2} MiB", mib(b))
    } else {
        format!("{b} B")
    }
}
