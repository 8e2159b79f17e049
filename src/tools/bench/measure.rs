//! What one phase cost: wall time, CPU seconds (the whole process, and per named thread group),
//! and peak resident memory.
//!
//! CPU comes from `/proc/self/stat` (user + system of every thread, live or exited) and
//! `/proc/self/task/*/stat` (per thread, by thread name), in clock ticks of `USER_HZ`. Peak memory
//! is `VmHWM`, reset at the start of each phase by writing `5` to `/proc/self/clear_refs` (Linux
//! ≥ 4.0) so each phase reports its own peak. Where `/proc` is missing the figures are `None`.

use std::collections::HashMap;
use tokio::time::Instant;

use serde::Serialize;

/// Clock ticks per second in `/proc/*/stat`: `USER_HZ`, fixed at 100 in the Linux user ABI on
/// every architecture this crate targets.
const USER_HZ: f64 = 100.0;

/// Thread names this module groups CPU time by start with this prefix; any other thread (the
/// main thread, a criterion thread) counts as `other`.
pub(super) const THREAD_PREFIX: &str = "gds-";

/// The group under which CPU of threads that exited during a phase is reported.
pub(super) const EXITED: &str = "exited threads";

/// The cost of one measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Bytes moved (each byte counted once, however many hashers read it).
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// User + system CPU seconds of the whole process.
    pub cpu_seconds: Option<f64>,
    /// CPU seconds per thread group (thread name), largest first.
    pub cpu_by_thread: Vec<(String, f64)>,
    /// Peak resident set size in bytes during the phase (or since process start, see
    /// `peak_rss_per_phase`).
    pub peak_rss: Option<u64>,
    /// Whether the peak was reset at the phase start (`false`: it is the process's lifetime peak).
    pub peak_rss_per_phase: bool,
    /// CPU seconds other processes used meanwhile (machine busy time from `/proc/stat`, minus
    /// ours): how contended the phase was.
    pub others_cpu_seconds: Option<f64>,
}

impl Sample {
    /// Throughput in MB/s (10^6 bytes per second).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    /// CPU seconds per GiB moved, whole process.
    pub fn cpu_per_gib(&self) -> Option<f64> {
        self.cpu_seconds.map(|cpu| per_gib(cpu, self.bytes))
    }

    /// Names CPU time that threads spent before exiting (measured by those threads themselves),
    /// taking it out of the anonymous `EXITED` group; what remains there stays if significant.
    pub fn attribute_exited(&mut self, named: &[(&str, f64)]) {
        let mut exited = 0.0;
        self.cpu_by_thread.retain(|(name, cpu)| {
            let keep = name != EXITED;
            if !keep {
                exited = *cpu;
            }
            keep
        });
        let mut named_total = 0.0;
        for (name, cpu) in named {
            named_total += cpu;
            self.cpu_by_thread.push((name.to_string(), *cpu));
        }
        let rest = exited - named_total;
        if rest > 0.03_f64.max(0.05 * named_total) {
            self.cpu_by_thread.push((EXITED.to_string(), rest));
        }
        self.cpu_by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
    }

    /// The rate bound when this phase has `cpus` cores to itself: bytes per second if every core
    /// were busy with it (MB/s).
    pub fn cpu_bound_mb_per_s(&self, cpus: usize) -> Option<f64> {
        let cpu = self.cpu_seconds.filter(|c| *c > 0.0)?;
        Some(self.bytes as f64 / 1e6 * cpus as f64 / cpu)
    }

    /// CPU cores other processes kept busy on average during the phase.
    pub fn others_cores(&self) -> Option<f64> {
        self.others_cpu_seconds
            .map(|cpu| cpu / self.seconds.max(1e-9))
    }

    /// CPU seconds per GiB moved, for threads whose name is `group`.
    pub fn group_cpu_per_gib(&self, group: &str) -> Option<f64> {
        self.cpu_by_thread
            .iter()
            .find(|(name, _)| name == group)
            .map(|(_, cpu)| per_gib(*cpu, self.bytes))
    }
}

fn per_gib(seconds: f64, bytes: u64) -> f64 {
    seconds / (bytes.max(1) as f64 / (1u64 << 30) as f64)
}

/// A phase being measured: created at its start, consumed at its end.
pub struct Meter {
    started: Instant,
    cpu: Option<f64>,
    machine: Option<f64>,
    threads: HashMap<u64, (String, f64)>,
    rss_reset: bool,
}

// === impl Meter ===

impl Meter {
    /// Resets the peak-memory mark and records the starting clocks.
    pub fn start() -> Meter {
        let rss_reset = reset_peak_rss();
        Meter {
            threads: thread_cpu(),
            cpu: process_cpu(),
            machine: machine_busy(),
            rss_reset,
            started: Instant::now(),
        }
    }

    /// Ends the phase, which moved `bytes`.
    pub fn stop(self, bytes: u64) -> Sample {
        let seconds = self.started.elapsed().as_secs_f64();
        let cpu_seconds = match (self.cpu, process_cpu()) {
            (Some(before), Some(after)) => Some((after - before).max(0.0)),
            _ => None,
        };
        let others_cpu_seconds = match (self.machine, machine_busy(), cpu_seconds) {
            (Some(before), Some(after), Some(ours)) => Some((after - before - ours).max(0.0)),
            _ => None,
        };
        let mut groups: HashMap<String, f64> = HashMap::new();
        for (tid, (name, after)) in thread_cpu() {
            let before = self.threads.get(&tid).map_or(0.0, |(_, cpu)| *cpu);
            let delta = (after - before).max(0.0);
            if delta > 0.0 {
                *groups.entry(group_of(&name)).or_default() += delta;
            }
        }
        // Threads that ended during the phase (the ceiling's hashers) are gone from the task list
        // but not from the process's total: report the difference under their own name.
        let live: f64 = groups.values().sum();
        if let Some(exited) = cpu_seconds.map(|total| total - live) {
            // Both clocks are read twice and the process's ticks are 10 ms: ignore small gaps.
            if exited > 0.03_f64.max(0.05 * live) {
                groups.insert(EXITED.to_string(), exited);
            }
        }
        let mut cpu_by_thread: Vec<(String, f64)> = groups.into_iter().collect();
        cpu_by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
        Sample {
            bytes,
            seconds,
            cpu_seconds,
            cpu_by_thread,
            peak_rss: crate::tools::demo::peak_rss(),
            peak_rss_per_phase: self.rss_reset,
            others_cpu_seconds,
        }
    }
}

/// The group a thread's CPU is reported under: its name when it is one of ours, else `other`.
fn group_of(name: &str) -> String {
    if name.starts_with(THREAD_PREFIX) {
        name.to_string()
    } else {
        "other".to_string()
    }
}

/// Resets `VmHWM` to the current RSS; `false` where the kernel does not allow it.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// User + system CPU seconds of this process (all threads, including exited ones).
pub(super) fn process_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, user, system) = parse_stat(&stat)?;
    Some((user + system) as f64 / USER_HZ)
}

/// CPU seconds the calling thread has spent on a CPU (`/proc/thread-self/schedstat`, ns).
pub(crate) fn this_thread_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// CPU seconds every CPU of the machine spent busy since boot (`/proc/stat` line `cpu`: all
/// fields but `idle` and `iowait`; `guest` time is already in `user`, so it is left out).
fn machine_busy() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy as f64 / USER_HZ)
}

/// CPU seconds of every live thread of this process, by thread id, with its name. Time on a CPU
/// comes from `schedstat` (nanoseconds) where the kernel keeps it, else from `stat` (ticks).
fn thread_cpu() -> HashMap<u64, (String, f64)> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // the thread exited meanwhile
        };
        let Some((name, user, system)) = parse_stat(&stat) else {
            continue;
        };
        let on_cpu_ns = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        let seconds = match on_cpu_ns {
            Some(ns) => ns as f64 / 1e9,
            None => (user + system) as f64 / USER_HZ,
        };
        out.insert(tid, (name.to_string(), seconds));
    }
    out
}

/// Name, `utime` and `stime` (fields 2, 14 and 15 of `proc(5)` `stat`). The name is in
/// parentheses and may itself contain spaces or parentheses, so fields are counted from the last
/// `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(&str, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    // After the name: field 3 (state) is the first; utime is field 14, stime field 15.
    let user = fields.nth(11)?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((name, user, system))
}

/// One line describing this machine and its load, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs this process may run on.
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// 1-minute load average when the run started and when it ended.
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
}

impl Machine {
    /// Describes this machine now (`load_after` is filled by [`Machine::finish`]).
    pub fn now() -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            }),
            load_before: load_average(),
            load_after: None,
        }
    }

    /// Records the load at the end of the run.
    pub fn finish(&mut self) {
        self.load_after = load_average();
    }
}

/// The 1-minute load average.
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
