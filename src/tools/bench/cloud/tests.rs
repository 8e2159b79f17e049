use serde_json::json;

use super::super::measure::{Machine, Sample};
use super::*;
use crate::pipeline::Limits;

const GIB: u64 = 1 << 30;

fn limits() -> Limits {
    Limits {
        chunk_size: 1 << 20,
        buffer_bytes: 8 << 20,
    }
}

/// A sample that moved 1 GiB in `seconds`, costing this process `cpu` and others `others`.
fn sample(seconds: f64, cpu: f64, others: f64) -> Sample {
    Sample {
        bytes: GIB,
        seconds,
        cpu_seconds: Some(cpu),
        cpu_by_thread: vec![
            ("gds-sidecar".into(), cpu * 0.75),
            ("other".into(), cpu * 0.25),
        ],
        peak_rss: Some(30 << 20),
        peak_rss_per_phase: true,
        others_cpu_seconds: Some(others),
    }
}

fn measured(seconds: f64, cpu: f64, to_store: Option<f64>) -> Outcome {
    Outcome::Measured(Transfer {
        sample: sample(seconds, cpu, 10.0),
        accepted: Some(0.01),
        to_store,
    })
}

/// A run where (b) takes `put` s, (c) `upload` s, (d) `stage` s and (e) `upstream` s for 1 GiB.
fn run(put: f64, upload: f64, stage: f64, upstream: Option<f64>) -> CloudRun {
    CloudRun {
        ceiling: sample(1.5, 3.0, 0.0),
        transfers: [
            measured(put, 0.5, None),
            measured(upload, 4.0, Some(0.02)),
            measured(stage, 4.2, Some(0.03)),
            match upstream {
                Some(s) => measured(s, 0.1, None),
                None => Outcome::NotOffered {
                    reason: "not listed".into(),
                },
            },
        ],
    }
}

fn setup() -> Setup {
    Setup {
        from: "REGION1".into(),
        to: "REGION2".into(),
        source_url: "http://127.0.0.1:1".into(),
        target_glance_url: "http://127.0.0.1:2".into(),
        size: GIB,
        disk_format: "raw".into(),
        os_hash_algo: "sha512".into(),
        source_created: true,
    }
}

fn report(runs: Vec<CloudRun>) -> CloudReport {
    CloudReport::new(setup(), Machine::now(), (Some(0.0), None), runs, vec![])
}

fn ratio(report: &CloudReport, name: &str) -> Option<f64> {
    report
        .ratios
        .iter()
        .find(|r| r.name == name)
        .and_then(|r| r.median)
}

#[test]
fn ratios_are_medians_of_per_run_ratios() {
    // Per run (c)/(b): 8/10 = 0.8, 8/9 ≈ 0.889, 8/8 = 1.0 → median 0.889 (not the ratio of
    // the medians' rates, which here happens to agree; the next test tells them apart).
    let r = report(vec![
        run(8.0, 10.0, 16.0, Some(16.0)),
        run(8.0, 9.0, 16.0, Some(15.0)),
        run(8.0, 8.0, 16.0, Some(20.0)),
    ]);
    let c_over_b = ratio(&r, "sidecar_upload/glance_put").unwrap();
    assert!((c_over_b - 8.0 / 9.0).abs() < 1e-9, "{c_over_b}");
    // (c)/(e): 16/10 = 1.6, 15/9 ≈ 1.667, 20/8 = 2.5 → 1.667.
    let c_over_e = ratio(&r, "sidecar_upload/upstream").unwrap();
    assert!((c_over_e - 15.0 / 9.0).abs() < 1e-9, "{c_over_e}");
    // (d)/(e): 16/16, 15/16, 20/16 → 1.0.
    assert_eq!(ratio(&r, "sidecar_stage/upstream"), Some(1.0));
    let upload = &r.phases[2];
    assert_eq!(upload.key, "sidecar_upload");
    assert_eq!(upload.seconds, Some(9.0));
    assert_eq!(upload.to_store, Some(0.02));
    assert_eq!(upload.cpu_s_per_gib, Some(4.0));
    assert_eq!(upload.others_cpu_s_per_gib, Some(10.0));
    assert_eq!(
        upload.cpu_s_per_gib_by_thread,
        [("gds-sidecar".to_string(), 3.0), ("other".to_string(), 1.0)]
    );
}

#[test]
fn a_ratio_pairs_phases_of_the_same_run() {
    // Run 1 is fast everywhere, run 2 slow everywhere: each run's (c)/(b) is 0.5, whereas the
    // median rates (c) and (b) come from different runs.
    let r = report(vec![
        run(1.0, 2.0, 4.0, Some(4.0)),
        run(10.0, 20.0, 40.0, Some(40.0)),
    ]);
    assert_eq!(ratio(&r, "sidecar_upload/glance_put"), Some(0.5));
    assert_eq!(ratio(&r, "sidecar_upload/upstream"), Some(2.0));
}

#[test]
fn goals_are_checked_against_the_ratios() {
    let r = report(vec![run(8.0, 10.0, 16.0, Some(16.0))]);
    assert_eq!(r.goals.len(), 2);
    // (c)/(b) = 0.8 < 0.9: missed. (c)/(e) = 1.6 ≥ 1.6: met.
    assert_eq!(r.goals[0].met, Some(false));
    assert_eq!(r.goals[1].met, Some(true));
    let table = r.table();
    assert!(table.contains("MISSED (measured 0.80)"), "{table}");
    assert!(table.contains("(c)/(e) 1.60"), "{table}");
}

#[test]
fn upstream_not_offered_is_reported_not_measured() {
    let r = report(vec![run(8.0, 10.0, 16.0, None), run(8.0, 9.0, 16.0, None)]);
    let upstream = &r.phases[4];
    assert_eq!(upstream.not_offered.as_deref(), Some("not listed"));
    assert_eq!(upstream.mb_per_s, None);
    assert!(upstream.mb_per_s_runs.is_empty());
    assert_eq!(ratio(&r, "sidecar_upload/upstream"), None);
    assert_eq!(ratio(&r, "sidecar_stage/upstream"), None);
    assert_eq!(r.goals[1].met, None);
    assert!(r.table().contains("not offered: not listed"));
    let json = r.to_json();
    assert_eq!(json["samples"][0]["transfers"][3]["outcome"], "not_offered");
    assert_eq!(json["samples"][0]["transfers"][0]["outcome"], "measured");
    assert_eq!(json["phases"][4]["mb_per_s"], serde_json::Value::Null);
}

#[test]
fn rates_are_megabytes_per_second() {
    let r = run(2.0, 4.0, 8.0, Some(8.0));
    let rate = r.rate("glance_put").unwrap();
    assert!((rate - GIB as f64 / 1e6 / 2.0).abs() < 1e-6);
    assert_eq!(r.rate("nonsense"), None);
}

#[test]
fn flags_name_what_is_missing() {
    let err = CloudOptions::from_flags(Some("R1"), None, None, None, None, 3, limits())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--to REGION") && err.contains("--target-glance-url URL"),
        "{err}"
    );
    assert!(!err.contains("--from"), "{err}");
}

#[test]
fn flags_are_checked() {
    let flags = |from, to, url, image: Option<&str>, size: Option<u64>, runs| {
        CloudOptions::from_flags(Some(from), Some(to), Some(url), image, size, runs, limits())
    };
    let uuid = "3f1c2b9e-1d2a-4c3b-9a8f-0e1d2c3b4a59";
    let ok = flags("R1", "R2", "http://127.0.0.1:9292/v2/", None, None, 3).unwrap();
    assert_eq!(ok.target_glance_url, "http://127.0.0.1:9292");
    assert_eq!(ok.size, GIB);
    assert!(ok.image.is_none());
    let with_image = flags("R1", "R2", "https://glance.example", Some(uuid), None, 1).unwrap();
    assert_eq!(
        with_image.image.map(|i| i.as_str().to_string()),
        Some(uuid.to_string())
    );
    for bad in [
        flags("R1", "r1", "http://g", None, None, 3),
        flags("R1", "R2", "ftp://g", None, None, 3),
        flags("R1", "R2", "not a url", None, None, 3),
        flags("R1", "R2", "http://g", Some("not-a-uuid"), None, 3),
        flags("R1", "R2", "http://g", Some(uuid), Some(1 << 20), 3),
        flags("R1", "R2", "http://g", None, Some(0), 3),
        flags("R1", "R2", "http://g", None, None, 0),
        flags(" ", "R2", "http://g", None, None, 3),
    ] {
        assert!(matches!(bad, Err(BenchError::Options(_))), "{bad:?}");
    }
}

#[test]
fn a_copy_is_verified_against_the_source_record() {
    let record = json!({"id": "a", "status": "active", "size": 10, "checksum": "c",
        "os_hash_algo": "sha512", "os_hash_value": "h", "disk_format": "raw",
        "container_format": "bare"});
    let source = SourceImage::from_record(&record).unwrap();
    assert_eq!(source.mismatch(&record), None);
    let with = |key: &str, value: serde_json::Value| {
        let mut copy = record.clone();
        copy[key] = value;
        source.mismatch(&copy)
    };
    assert!(with("status", json!("queued"))
        .unwrap()
        .contains("not active"));
    assert!(with("size", json!(9)).unwrap().starts_with("size"));
    assert!(with("checksum", json!("x"))
        .unwrap()
        .starts_with("checksum"));
    assert!(with("os_hash_value", json!("x"))
        .unwrap()
        .starts_with("os_hash_value"));
    // A target hashing with another algorithm cannot be compared on os_hash_value.
    let mut other_algo = record.clone();
    other_algo["os_hash_algo"] = json!("sha256");
    other_algo["os_hash_value"] = json!("x");
    assert_eq!(source.mismatch(&other_algo), None);
    // Not a usable source: not active, or no checksum.
    assert!(SourceImage::from_record(&json!({"id": "a", "status": "queued"})).is_none());
    let mut no_checksum = record.clone();
    no_checksum["checksum"] = serde_json::Value::Null;
    assert!(SourceImage::from_record(&no_checksum).is_none());
}

#[test]
fn budgets_grow_with_the_image() {
    let options = CloudOptions::from_flags(
        Some("R1"),
        Some("R2"),
        Some("http://g"),
        None,
        None,
        1,
        limits(),
    )
    .unwrap();
    assert_eq!(options.budget(0), std::time::Duration::from_secs(120));
    assert_eq!(
        options.budget(5_000_000_000),
        std::time::Duration::from_secs(1120)
    );
}
