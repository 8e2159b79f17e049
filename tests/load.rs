//! The sidecar under load: many clients through the pass-through and straight to Glance, large
//! uploads, real imports and a flood of failing imports at once (`bench --load`, small and
//! bounded). Checks what must hold under load, never how fast it went.

use std::path::PathBuf;

use glance_download_sidecar::config::defaults;
use glance_download_sidecar::tools::bench::load::{
    run_load, LoadOptions, LoadReport, Statuses, FLOOD_PER_IMAGE,
};

const CLIENTS: usize = 16;
const FAILING: usize = 200;
const SIZE: u64 = 64 << 20;
// The flood sends more failing imports into one image than the sidecar keeps per image.
const _: () = assert!(FLOOD_PER_IMAGE > defaults::MAX_TASKS_PER_IMAGE);

/// The sidecar's journal bound (its smallest): the flood journals several times this much.
const JOURNAL_MAX: u64 = 64 << 10;

fn run() -> LoadReport {
    let options = LoadOptions {
        clients: CLIENTS,
        seconds: 3,
        failing_imports: FAILING,
        size: SIZE,
        sidecar: PathBuf::from(env!("CARGO_BIN_EXE_glance-download-sidecar")),
        journal_max_bytes: Some(JOURNAL_MAX),
    };
    let report = run_load(&options, &mut |line| eprintln!("{line}")).unwrap();
    eprintln!("{}", report.table());
    report
}

/// Answers that must not occur through the sidecar: 5xx, other 4xx, no answer.
fn assert_clean(what: &str, statuses: &Statuses) {
    assert_eq!(
        (statuses.server_5xx, statuses.other_4xx, statuses.no_answer),
        (0, 0, 0),
        "{what}: {statuses:?}"
    );
}

#[test]
fn under_load_every_call_is_answered_and_every_task_accounted_for() {
    let report = run();

    // Every small call answered 2xx (or 429 where a limit applies), through the sidecar and
    // direct alike; both paths were exercised for every call.
    for class in &report.calls {
        assert!(
            class.sidecar.requests > 0 && class.direct.requests > 0,
            "{class:?}"
        );
        assert_clean(class.call, &class.sidecar.statuses);
        assert_clean(class.call, &class.direct.statuses);
        assert_eq!(class.sidecar.statuses.conflict_409, 0, "{class:?}");
        assert_eq!(class.direct.statuses.too_many_429, 0, "{class:?}");
    }

    // Every upload through the pass-through completed, with the right size at the target.
    let uploads = &report.uploads;
    assert!(uploads.started > 0, "{uploads:?}");
    assert_eq!(uploads.completed, uploads.started, "{uploads:?}");
    assert_eq!(uploads.bytes, uploads.completed * SIZE);
    assert_clean("uploads", &uploads.statuses);

    // Every accepted real import succeeded with the source's bytes.
    let imports = &report.imports;
    assert!(imports.accepted > 0, "{imports:?}");
    assert_eq!(imports.succeeded, imports.accepted, "{imports:?}");
    assert!(imports.problems.is_empty(), "{imports:?}");
    assert_clean("imports", &imports.statuses);

    // Every failing import was accepted in the end (the flood runs more clients than the
    // project's import limit: refusals are 429 and retried) and each one ended `failure`.
    let flood = &report.flood;
    assert_eq!(flood.sent, FAILING as u64, "{flood:?}");
    assert_eq!(flood.accepted, flood.sent, "{flood:?}");
    assert_eq!(flood.accepted, flood.statuses.ok_2xx, "{flood:?}");
    assert_eq!(flood.ended_failure, flood.accepted, "{flood:?}");
    assert_clean("failing imports", &flood.statuses);

    // One project's flood does not take the import slots from another: the real imports were
    // never refused.
    assert_eq!(
        (imports.statuses.too_many_429, imports.statuses.conflict_409),
        (0, 0),
        "{imports:?}"
    );

    // The sidecar holds no task it was never given, and keeps finished tasks within its bounds:
    // the flood sent more failing imports into each of its images than one image keeps.
    let sidecar = &report.sidecar;
    let started = flood.accepted + imports.accepted;
    let retained = sidecar.tasks_total();
    assert!(
        retained > 0 && retained <= started,
        "{sidecar:?}, {started} started"
    );
    let failures = sidecar
        .tasks_retained
        .iter()
        .find(|(status, _)| status == "failure")
        .map_or(0, |(_, n)| *n);
    assert!(failures > 0, "{sidecar:?}");
    let bound = (defaults::MAX_TASKS_PER_PROJECT as u64).min(defaults::MAX_FINISHED_TASKS as u64);
    assert!(
        failures <= bound,
        "{failures} failed tasks kept, bound {bound}"
    );
    assert!(
        flood.most_imports_into_one_image > defaults::MAX_TASKS_PER_IMAGE as u64,
        "{flood:?}"
    );
    assert!(
        flood.most_tasks_listed_for_one_image <= defaults::MAX_TASKS_PER_IMAGE as u64,
        "{flood:?}"
    );

    // The journal is compacted while running: every import journals its start and its end, so
    // without compaction it would hold two lines per import.
    assert!(sidecar.journal_bytes > 0, "{sidecar:?}");
    assert!(
        sidecar.journal_lines < 2 * started,
        "{} journal lines for {started} imports",
        sidecar.journal_lines
    );
    assert_eq!(sidecar.log_errors, 0, "{:?}", sidecar.errors);

    // Uploads stream: the sidecar's peak memory stays well under one upload's size.
    let (start, peak) = (sidecar.rss_start.unwrap(), sidecar.peak_rss.unwrap());
    assert!(
        peak.saturating_sub(start) < SIZE,
        "peak RSS grew by {} MiB with {} MiB uploads",
        (peak - start) >> 20,
        SIZE >> 20
    );
}
