//! Showing a run as it goes: progress bars with rate and ETA on a terminal ([`Bars`]), one-line
//! messages otherwise ([`Lines`]), or nothing ([`Quiet`]).
//!
//! Jobs publish their byte counts in atomics; the run calls [`Observer::tick`] a few times a second
//! and the observer reads them, so copying never waits on the display.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use super::report::{bytes, eta, printable, rate, Action, JobResult, Method, Summary};

/// How often [`Lines`] prints a progress line while copies run.
pub(super) const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// What a run is about to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub from: String,
    pub to: Vec<String>,
    pub images: usize,
    pub jobs: usize,
    /// Sum of the source sizes over all jobs (an upper bound: skipped jobs move nothing).
    pub bytes: u64,
    pub dry_run: bool,
}

/// One image × region, as shown.
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub index: usize,
    pub jobs: usize,
    pub source_id: String,
    pub name: Option<String>,
    pub region: String,
    pub size: u64,
}

impl JobInfo {
    /// The image as shown: its name and id, as the source region gave them, made printable.
    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{} ({})", printable(name), printable(&self.source_id)),
            None => printable(&self.source_id),
        }
    }

    fn tag(&self) -> String {
        let width = self.jobs.to_string().len();
        format!("[{:>width$}/{}]", self.index, self.jobs)
    }
}

/// Receives a run's events. Every method has a default that does nothing.
pub trait Observer: Send + Sync {
    fn begin(&self, _plan: &Plan) {}
    /// A copy starts moving bytes; `done` counts them.
    fn started(&self, _job: &JobInfo, _method: Method, _done: &Arc<AtomicU64>) {}
    fn finished(&self, _job: &JobInfo, _result: &JobResult) {}
    /// Called a few times a second while jobs run.
    fn tick(&self) {}
    fn end(&self, _summary: &Summary) {}
}

/// Shows nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// The observer for a terminal session: bars when the output stream is a terminal, else lines.
/// With `json`, stdout is kept for the summary and progress goes to stderr.
pub fn for_terminal(json: bool) -> Arc<dyn Observer> {
    if json {
        if std::io::stderr().is_terminal() {
            Arc::new(Bars::new(ProgressDrawTarget::stderr()))
        } else {
            Arc::new(Lines::new(Box::new(std::io::stderr())))
        }
    } else if std::io::stdout().is_terminal() {
        Arc::new(Bars::new(ProgressDrawTarget::stdout()))
    } else {
        Arc::new(Lines::new(Box::new(std::io::stdout())))
    }
}

/// Byte counts of the whole run, shared by both displays.
struct Tally {
    started: Instant,
    /// Bytes the run is expected to move (shrinks as jobs are skipped or fail).
    total: u64,
    /// Bytes moved by finished copies.
    finished_bytes: u64,
    finished: usize,
    jobs: usize,
    running: Vec<(usize, Arc<AtomicU64>)>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            started: Instant::now(),
            total: 0,
            finished_bytes: 0,
            finished: 0,
            jobs: 0,
            running: Vec::new(),
        }
    }

    fn begin(&mut self, plan: &Plan) {
        self.started = Instant::now();
        self.total = if plan.dry_run { 0 } else { plan.bytes };
        self.jobs = plan.jobs;
    }

    fn finish(&mut self, job: &JobInfo, result: &JobResult) {
        self.running.retain(|(i, _)| *i != job.index);
        self.finished += 1;
        self.finished_bytes += result.bytes;
        if result.action != Action::Copied && self.total > 0 {
            // Planned bytes that will not move.
            self.total = self
                .total
                .saturating_sub(job.size.saturating_sub(result.bytes));
        }
    }

    fn done(&self) -> u64 {
        self.finished_bytes
            + self
                .running
                .iter()
                .map(|(_, d)| d.load(Ordering::Relaxed))
                .sum::<u64>()
    }
}

fn result_line(job: &JobInfo, result: &JobResult) -> String {
    let tag = job.tag();
    let label = job.label();
    let target = printable(result.target_id.as_deref().unwrap_or("-"));
    let region = printable(&job.region);
    match result.action {
        Action::Copied => format!(
            "{tag} copied  {label} -> {} as {target}: {} in {:.2} s ({}, {})",
            region,
            bytes(result.bytes),
            result.seconds,
            rate(result.bytes as f64 / result.seconds.max(1e-3)),
            result.method.map_or("-", Method::as_str),
        ),
        Action::Skipped => format!(
            "{tag} skipped {label} -> {}: already copied as {target}",
            region
        ),
        Action::WouldCopy => format!(
            "{tag} would copy {label} -> {} ({}, {}{})",
            region,
            bytes(job.size),
            result.method.map_or("-", Method::as_str),
            match &result.target_id {
                Some(id) => format!(", into queued {}", printable(id)),
                None => String::new(),
            }
        ),
        Action::Failed => format!(
            "{tag} FAILED  {}",
            printable(result.error.as_deref().unwrap_or("unknown error"))
        ),
        Action::Pruned | Action::Hidden | Action::WouldPrune | Action::WouldHide => format!(
            "{tag} {} {target} in {}: copy of {label}, no longer selected",
            match result.action {
                Action::Pruned => "pruned ",
                Action::Hidden => "hid    ",
                Action::WouldPrune => "would prune",
                _ => "would hide",
            },
            region,
        ),
    }
}

fn plan_line(plan: &Plan) -> String {
    format!(
        "sync: {} image(s) from {} to {}: {} copies, {} at most{}",
        plan.images,
        printable(&plan.from),
        printable(&plan.to.join(", ")),
        plan.jobs,
        bytes(plan.bytes),
        if plan.dry_run { " (dry run)" } else { "" }
    )
}

// === impl Lines ===

/// Plain one-line messages: the plan, each copy as it starts and ends, a progress line every
/// `LINE_INTERVAL` while copies run, and the totals.
pub struct Lines {
    out: Mutex<Box<dyn Write + Send>>,
    tally: Mutex<Tally>,
    interval: Duration,
    last: Mutex<Instant>,
}

impl Lines {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Lines::with_interval(out, LINE_INTERVAL)
    }

    /// Prints progress lines every `interval` instead of `LINE_INTERVAL`.
    pub fn with_interval(out: Box<dyn Write + Send>, interval: Duration) -> Self {
        Lines {
            out: Mutex::new(out),
            tally: Mutex::new(Tally::new()),
            interval,
            last: Mutex::new(Instant::now()),
        }
    }

    fn say(&self, line: &str) {
        let mut out = lock(&self.out);
        // A closed stdout must not stop the copies.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

impl Observer for Lines {
    fn begin(&self, plan: &Plan) {
        lock(&self.tally).begin(plan);
        *lock(&self.last) = Instant::now();
        self.say(&plan_line(plan));
    }

    fn started(&self, job: &JobInfo, method: Method, done: &Arc<AtomicU64>) {
        lock(&self.tally).running.push((job.index, done.clone()));
        self.say(&format!(
            "{} copying {} -> {} ({}, {})",
            job.tag(),
            job.label(),
            printable(&job.region),
            bytes(job.size),
            method.as_str()
        ));
    }

    fn finished(&self, job: &JobInfo, result: &JobResult) {
        lock(&self.tally).finish(job, result);
        self.say(&result_line(job, result));
    }

    fn tick(&self) {
        let line = {
            let mut last = lock(&self.last);
            if last.elapsed() < self.interval {
                return;
            }
            *last = Instant::now();
            let tally = lock(&self.tally);
            if tally.running.is_empty() {
                return;
            }
            let done = tally.done();
            let secs = tally.started.elapsed().as_secs_f64().max(1e-3);
            let speed = done as f64 / secs;
            let left = tally.total.saturating_sub(done);
            let eta_text = if speed > 0.0 {
                eta((left as f64 / speed).ceil() as u64)
            } else {
                "unknown".to_string()
            };
            format!(
                "progress: {}/{} done, {} running, {} of {}, {}, ETA {}",
                tally.finished,
                tally.jobs,
                tally.running.len(),
                bytes(done),
                bytes(tally.total),
                rate(speed),
                eta_text
            )
        };
        self.say(&line);
    }

    fn end(&self, summary: &Summary) {
        self.say(&summary.line());
    }
}

// === impl Bars ===

/// A bar per running copy and one for the whole run, each with bytes, rate and ETA; finished
/// copies are printed above the bars.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    bars: Mutex<Vec<(usize, ProgressBar, Arc<AtomicU64>)>>,
    tally: Mutex<Tally>,
}

impl Bars {
    pub fn new(target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(0).with_style(style(
            "{prefix:>12.bold} [{bar:30.green/white}] {bytes}/{total_bytes} \
             {binary_bytes_per_sec} ETA {eta} {msg}",
        )));
        total.set_prefix("total");
        Bars {
            multi,
            total,
            bars: Mutex::new(Vec::new()),
            tally: Mutex::new(Tally::new()),
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Observer for Bars {
    fn begin(&self, plan: &Plan) {
        let mut tally = lock(&self.tally);
        tally.begin(plan);
        self.total.set_length(tally.total);
        self.total
            .set_message(format!("0/{} done", plan.jobs.max(tally.jobs)));
        let _ = self.multi.println(plan_line(plan));
    }

    fn started(&self, job: &JobInfo, method: Method, done: &Arc<AtomicU64>) {
        lock(&self.tally).running.push((job.index, done.clone()));
        let bar = self.multi.insert_before(
            &self.total,
            ProgressBar::new(job.size).with_style(style(
                "{prefix:>12} [{bar:30.cyan/blue}] {bytes}/{total_bytes} \
                 {binary_bytes_per_sec} ETA {eta} {wide_msg}",
            )),
        );
        bar.set_prefix(printable(&job.region));
        bar.set_message(format!("{} ({})", job.label(), method.as_str()));
        lock(&self.bars).push((job.index, bar, done.clone()));
    }

    fn finished(&self, job: &JobInfo, result: &JobResult) {
        let mut tally = lock(&self.tally);
        tally.finish(job, result);
        let mut bars = lock(&self.bars);
        if let Some(at) = bars.iter().position(|(i, _, _)| *i == job.index) {
            let (_, bar, _) = bars.remove(at);
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.total.set_length(tally.total);
        self.total.set_position(tally.done());
        self.total
            .set_message(format!("{}/{} done", tally.finished, tally.jobs));
        let _ = self.multi.println(result_line(job, result));
    }

    fn tick(&self) {
        for (_, bar, done) in lock(&self.bars).iter() {
            bar.set_position(done.load(Ordering::Relaxed));
        }
        self.total.set_position(lock(&self.tally).done());
    }

    fn end(&self, summary: &Summary) {
        self.total.finish_and_clear();
        let _ = self.multi.println(summary.line());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn remote_names_and_errors_are_printed_escaped() {
        let out = Shared::default();
        let lines = Lines::new(Box::new(out.clone()));
        let job = JobInfo {
            index: 1,
            jobs: 1,
            source_id: "id\u{9b}1m".into(),
            name: Some("cirros\u{1b}[2J\u{1b}]0;title\u{7}".into()),
            region: "R2\u{202e}".into(),
            size: 1,
        };
        lines.started(&job, Method::Stream, &Arc::new(AtomicU64::new(0)));
        let failed = JobResult {
            index: 1,
            source_id: job.source_id.clone(),
            name: job.name.clone(),
            region: job.region.clone(),
            target_id: Some("t\u{7f}".into()),
            action: Action::Failed,
            method: None,
            bytes: 0,
            seconds: 0.0,
            error: Some("Glance said \u{1b}[31mno\r\nfake line".into()),
        };
        lines.finished(&job, &failed);
        let text = String::from_utf8(lock(&out.0).clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text:?}");
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && printable(&c.to_string()) != c.to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(r"cirros\u{1b}[2J\u{1b}]0;title\u{7}"),
            "{text}"
        );
        assert!(text.contains(r"no\u{d}\u{a}fake line"), "{text}");
    }
}
