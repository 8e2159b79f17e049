//! `Range` headers as the simulated Glance parses them (webob's rules, which decide what a
//! resumed download receives in every test), and task-journal lines read back after a crash.
#![no_main]

use glance_download_sidecar::journal::replay_lines;
use glance_download_sidecar::tools::sim::parse_range;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(range) = parse_range(text) {
            if let Some(end) = range.end {
                assert!(range.start < i128::from(end), "{text:?}");
            }
        }
    }
    let replay = replay_lines(data);
    // Every interrupted task was started in the journal; nothing is invented.
    for task in &replay.interrupted {
        assert!(data
            .windows(task.task_id.len())
            .any(|w| w == task.task_id.as_bytes()));
    }
});
