use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::measure::parse_stat;
use super::report::median;
use super::*;
use crate::hash::HashAlgo;
use crate::pipeline::{self, BodySource, Expected};

#[test]
fn stat_fields_are_counted_from_the_last_parenthesis() {
    let line = "42 (gds-sim (x) 1) S 1 42 42 0 -1 4194560 10 0 0 0 250 75 0 0 20 0 4 0 99 0 0";
    assert_eq!(parse_stat(line), Some(("gds-sim (x) 1", 250, 75)));
    assert_eq!(parse_stat("42 (short) S 1"), None);
}

#[test]
fn medians() {
    assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(median([]), 0.0);
}

#[test]
fn frames_cover_the_data_without_gaps() {
    let data = crate::tools::sim::generated_bytes(9, 0, 1000);
    let cut: Vec<Bytes> = slices(&data, 300).collect();
    assert_eq!(
        cut.iter().map(Bytes::len).collect::<Vec<_>>(),
        [300, 300, 300, 100]
    );
    assert_eq!(cut.concat(), data.to_vec());
    let made: Vec<u8> = generated_frames(9, 1000, 64)
        .flat_map(|f| f.to_vec())
        .collect();
    assert_eq!(made, data.to_vec());
}

#[test]
fn both_hashers_agree_with_one_shot_digests() {
    let data = crate::tools::sim::generated_bytes(3, 0, 3 << 20);
    let want = Digests {
        md5: HashAlgo::Md5.hex_digest(&data),
        other: HashAlgo::Sha512.hex_digest(&data),
    };
    let two = hash_two_threads(slices(&data, 64 << 10), HashAlgo::Sha512, 2).unwrap();
    assert_eq!(two, want);
    assert_eq!(
        hash_one_thread(slices(&data, 1 << 20), HashAlgo::Sha512),
        want
    );
}

#[test]
fn jitter_is_seeded_and_sparse() {
    let pauses = |seed| {
        let mut j = Jitter::new(seed, 4, Duration::from_millis(1));
        (0..1000).filter(|_| j.next_pause().is_some()).count()
    };
    assert_eq!(pauses(7), pauses(7));
    assert!((150..350).contains(&pauses(7)), "{}", pauses(7));
    let mut never = Jitter::new(7, 0, Duration::from_millis(1));
    assert!((0..100).all(|_| never.next_pause().is_none()));
}

#[tokio::test]
async fn jittery_ends_still_deliver_verified_bytes() {
    let data = crate::tools::sim::generated_bytes(5, 0, 2 << 20);
    let expected = Expected {
        size: data.len() as u64,
        checksum: Some(HashAlgo::Md5.hex_digest(&data)),
        os_hash: Some((HashAlgo::Sha512, HashAlgo::Sha512.hex_digest(&data))),
    };
    let jitter = |seed| Some(Jitter::new(seed, 3, Duration::from_millis(1)));
    let source = BodySource::new(
        FramesBody::new(data, 100_000, jitter(1)),
        Duration::from_secs(5),
    );
    let limits = pipeline::Limits {
        chunk_size: 64 << 10,
        buffer_bytes: 128 << 10,
    };
    let (body, pump) = pipeline::start(source, expected, limits, Arc::new(AtomicU64::new(0)));
    let (drained, verified) = tokio::join!(drain(body, jitter(2)), pump);
    let drained = drained.unwrap();
    assert_eq!(drained.bytes, 2 << 20);
    // 21 source frames of up to 100 000 bytes, each cut in two at 64 KiB.
    assert_eq!(drained.frames, 42);
    assert_eq!(verified.unwrap().size, 2 << 20);
}

#[test]
fn options_are_checked() {
    assert!(Options::default().validate().is_ok());
    let bad = [
        Options {
            size: 0,
            ..Options::default()
        },
        Options {
            runs: 0,
            ..Options::default()
        },
        Options {
            limits: pipeline::Limits {
                chunk_size: 100,
                buffer_bytes: 8 << 20,
            },
            ..Options::default()
        },
    ];
    for options in bad {
        assert!(matches!(options.validate(), Err(BenchError::Options(_))));
    }
}

/// The whole command on a small image: every phase runs, verifies and is reported.
#[test]
fn a_small_simulated_run_reports_every_phase() {
    let options = Options {
        size: 3 << 20,
        runs: 1,
        ..Options::default()
    };
    let mut lines = Vec::new();
    let report = run(&options, &mut |line| lines.push(line.to_string())).unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let keys: Vec<&str> = report.phases.iter().map(|p| p.key).collect();
    assert_eq!(keys, ["generator", "ceiling", "pipeline", "import"]);
    assert!(report.phases.iter().all(|p| p.mb_per_s > 0.0));
    assert!(report.pipeline_over_ceiling > 0.0 && report.import_over_ceiling > 0.0);
    let json = report.to_json();
    assert_eq!(json["size"], 3 << 20);
    assert_eq!(json["phases"][3]["key"], "import");
    assert!(report.table().contains("(b)/(a)"));
}
