//! The `sync` command against a simulated three-region cloud on loopback: REGION1 is the source,
//! REGION2 has the real sidecar in front of its Glance (so it imports with glance-download), and
//! REGION3 is a plain Glance without glance-download (so `sync` streams the bytes itself).

use std::sync::Arc;
use std::time::Duration;

use glance_download_sidecar::api::Server;
use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::{generated_bytes, Cloud, Fault, ImageData, ImageSpec};
use glance_download_sidecar::tools::sync::{
    self, Action, Credentials, Environment, Filters, Lines, Method, Options, Summary,
    SOURCE_IMAGE_ID,
};
use serde_json::{json, Value};
use sync_world::{assert_same_data, Captured, PASSWORD, PROJECT, USER};

mod sync_world;

struct World {
    cloud: Cloud,
    _sidecar: Server,
}

impl World {
    async fn start() -> World {
        let cloud = sync_world::cloud().await;
        let sidecar = sync_world::sidecar_in_front_of(&cloud, "REGION2").await;
        World {
            cloud,
            _sidecar: sidecar,
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        [
            ("OS_AUTH_URL", self.cloud.auth_url()),
            ("OS_USERNAME", USER.to_string()),
            ("OS_PASSWORD", PASSWORD.to_string()),
            ("OS_PROJECT_NAME", PROJECT.to_string()),
            ("OS_USER_DOMAIN_NAME", "Default".to_string()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn credentials(&self) -> Credentials {
        Credentials::load(None, &Environment::from_vars(self.vars())).unwrap()
    }

    /// An active source image in REGION1.
    fn image(
        &self,
        name: &str,
        size: u64,
        seed: u64,
        customize: impl FnOnce(&mut ImageSpec),
    ) -> String {
        let mut spec = ImageSpec {
            name: Some(name.to_string()),
            disk_format: Some("qcow2".into()),
            container_format: Some("bare".into()),
            ..ImageSpec::active(PROJECT, ImageData::Generated { seed, size })
        };
        customize(&mut spec);
        self.cloud.region("REGION1").create_image(spec)
    }

    /// Runs a sync to REGION2 and REGION3 with small test timings; returns the summary and the
    /// plain progress output.
    async fn sync(&self, ids: &[&str], filters: Filters, dry_run: bool) -> (Summary, String) {
        self.sync_to("REGION2,REGION3", ids, filters, dry_run).await
    }

    async fn sync_to(
        &self,
        to: &str,
        ids: &[&str],
        filters: Filters,
        dry_run: bool,
    ) -> (Summary, String) {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let mut options =
            Options::new("REGION1", &[to.to_string()], &ids, filters, 4, dry_run).unwrap();
        options.tuning.poll_interval = Duration::from_millis(20);
        let out = Captured::default();
        let observer = Arc::new(Lines::with_interval(
            Box::new(out.clone()),
            Duration::from_millis(100),
        ));
        let summary = sync::run(&options, &self.credentials(), observer)
            .await
            .unwrap();
        (summary, out.text())
    }

    /// Copies of `source` in `region`, read directly from that region's Glance.
    async fn copies(&self, region: &str, source: &str) -> Vec<Value> {
        self.images(region)
            .await
            .into_iter()
            .filter(|i| i[SOURCE_IMAGE_ID] == source)
            .collect()
    }

    /// Every image of `region`, listed by an admin straight from its Glance (not the sidecar).
    async fn images(&self, region: &str) -> Vec<Value> {
        let token = self
            .cloud
            .keystone
            .issue_token("admin", "admin", &["admin"]);
        let api = ImageApi::new(&self.cloud.region(region).url(), &token);
        let answer = api.get("/v2/images?limit=1000").await.unwrap();
        answer.json()["images"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn selected(summary: &Summary) -> Vec<String> {
    let mut ids: Vec<String> = summary
        .results
        .iter()
        .map(|r| r.source_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_five_images_to_two_regions_then_skips_them() {
    let w = World::start().await;
    let sizes = [0u64, 1, 65_536, (1 << 20) + 7, 300_000];
    let sources: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            w.image(&format!("golden-{i}"), *size, 100 + i as u64, |spec| {
                spec.properties.insert("hw_disk_bus".into(), json!("scsi"));
            })
        })
        .collect();

    let (summary, output) = w.sync(&[], Filters::default(), false).await;
    println!("{output}");
    assert_eq!(summary.count(Action::Copied), 10, "{output}");
    assert!(summary.succeeded());
    assert_eq!(summary.bytes(), 2 * sizes.iter().sum::<u64>());
    for result in &summary.results {
        let expected = if result.region == "REGION2" {
            Method::GlanceDownload
        } else {
            Method::Stream
        };
        assert_eq!(result.method, Some(expected), "{result:?}");
    }
    for (i, src) in sources.iter().enumerate() {
        let source = w.cloud.region("REGION1").image(src).unwrap();
        for region in ["REGION2", "REGION3"] {
            let copies = w.copies(region, src).await;
            assert_eq!(copies.len(), 1, "{region}: {copies:?}");
            let copy = &copies[0];
            assert_same_data(copy, &source);
            assert_eq!(copy["visibility"], source["visibility"]);
            assert_eq!(copy["glance_download_source_region"], "REGION1");
            assert_eq!(copy["hw_disk_bus"], "scsi", "{region}");
            let data = w
                .cloud
                .region(region)
                .image_data(copy["id"].as_str().unwrap())
                .unwrap_or_default();
            assert!(
                data == generated_bytes(100 + i as u64, 0, sizes[i] as usize),
                "{region}: data of {src} differs"
            );
        }
    }

    let (again, output) = w.sync(&[], Filters::default(), false).await;
    println!("{output}");
    assert_eq!(again.count(Action::Skipped), 10, "{output}");
    assert_eq!(again.bytes(), 0);
    for (first, second) in summary.results.iter().zip(&again.results) {
        assert_eq!(first.target_id, second.target_id, "the same copy is found");
    }
    for region in ["REGION2", "REGION3"] {
        assert_eq!(w.images(region).await.len(), 5, "{region}: no new images");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_select_by_name_tag_property_visibility_and_ids() {
    let w = World::start().await;
    let web1 = w.image("web-1", 1000, 1, |s| s.tags = vec!["gold".into()]);
    let web2 = w.image("web-2", 1000, 2, |s| {
        s.properties.insert("os_distro".into(), json!("ubuntu"));
    });
    let db = w.image("db-1", 1000, 3, |s| {
        s.tags = vec!["gold".into(), "db".into()];
        s.properties.insert("os_distro".into(), json!("debian"));
    });
    let public = w.image("public-base", 1000, 4, |s| s.visibility = "public".into());
    let queued = w.cloud.region("REGION1").create_image(ImageSpec {
        name: Some("web-queued".into()),
        ..ImageSpec::queued(PROJECT)
    });

    let filters = |f: fn(&mut Filters)| {
        let mut filters = Filters::default();
        f(&mut filters);
        filters
    };
    let cases: Vec<(Filters, Vec<String>)> = vec![
        (
            filters(|f| f.name = Some("web-*".into())),
            sorted(&[&web1, &web2]),
        ),
        (filters(|f| f.name = Some("db-1".into())), sorted(&[&db])),
        (
            filters(|f| f.tags = vec!["gold".into()]),
            sorted(&[&web1, &db]),
        ),
        (
            filters(|f| f.tags = vec!["gold".into(), "db".into()]),
            sorted(&[&db]),
        ),
        (
            filters(|f| f.properties = vec![("os_distro".into(), "ubuntu".into())]),
            sorted(&[&web2]),
        ),
        (
            filters(|f| f.visibility = Some("public".into())),
            sorted(&[&public]),
        ),
        (Filters::default(), sorted(&[&web1, &web2, &db, &public])),
    ];
    for (filter, want) in cases {
        let (summary, output) = w.sync(&[], filter.clone(), true).await;
        assert_eq!(selected(&summary), want, "{filter:?}\n{output}");
        assert!(
            !output.contains("web-queued"),
            "queued images are never selected"
        );
    }

    let (summary, _) = w.sync(&[&db, &web1], Filters::default(), true).await;
    assert_eq!(selected(&summary), sorted(&[&web1, &db]));
    assert_eq!(summary.results[0].source_id, db, "ids keep their order");

    // An explicit id that cannot be copied fails, naming the image and the region.
    let missing = "5f1d3c9e-8a1b-4c2d-9e3f-000000000000";
    let (summary, _) = w.sync(&[&queued, missing], Filters::default(), true).await;
    assert_eq!(summary.count(Action::Failed), 4);
    let errors: Vec<&str> = summary
        .results
        .iter()
        .filter_map(|r| r.error.as_deref())
        .collect();
    assert!(
        errors[0].contains(&queued) && errors[0].contains("REGION2"),
        "{errors:?}"
    );
    assert!(errors[0].contains("queued, not active"), "{errors:?}");
    assert!(
        errors[3].contains(missing) && errors[3].contains("REGION3"),
        "{errors:?}"
    );
    assert!(errors[3].contains("no such image"), "{errors:?}");

    // A real run with a filter copies only the selection.
    let (summary, output) = w
        .sync(&[], filters(|f| f.name = Some("web-?".into())), false)
        .await;
    assert_eq!(summary.count(Action::Copied), 4, "{output}");
    for region in ["REGION2", "REGION3"] {
        assert_eq!(w.copies(region, &web1).await.len(), 1);
        assert_eq!(w.copies(region, &web2).await.len(), 1);
        assert!(w.copies(region, &db).await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_changes_nothing() {
    let w = World::start().await;
    let a = w.image("a", 5000, 1, |_| {});
    let b = w.image("b", 5000, 2, |_| {});
    // b is already in both regions.
    let (done, _) = w.sync(&[&b], Filters::default(), false).await;
    assert_eq!(done.count(Action::Copied), 2);
    for region in ["REGION2", "REGION3"] {
        w.cloud.region(region).clear_request_log();
    }

    let (summary, output) = w.sync(&[], Filters::default(), true).await;
    println!("{output}");
    assert!(summary.dry_run);
    assert_eq!(summary.count(Action::WouldCopy), 2, "{output}");
    assert_eq!(summary.count(Action::Skipped), 2, "{output}");
    assert_eq!(summary.bytes(), 0);
    for result in &summary.results {
        let want = if result.source_id == a {
            Action::WouldCopy
        } else {
            Action::Skipped
        };
        assert_eq!(result.action, want);
    }
    for region in ["REGION2", "REGION3"] {
        let log = w.cloud.region(region).request_log();
        let writes: Vec<_> = log.iter().filter(|r| r.method != "GET").collect();
        assert!(writes.is_empty(), "{region}: {writes:?}");
        assert!(w.copies(region, &a).await.is_empty());
    }
    assert!(output.contains("would copy a ("), "{output}");
    assert!(
        output.contains("dry run: 2 would be copied, 2 skipped, 0 failed"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_source_fails_its_copies_only_and_a_rerun_finishes_them() {
    let w = World::start().await;
    let good1 = w.image("good-1", 200_000, 1, |_| {});
    let bad = w.image("bad", 200_000, 2, |_| {});
    let good2 = w.image("good-2", 200_000, 3, |_| {});
    w.cloud
        .region("REGION1")
        .set_fault(&bad, Fault::Corrupt { offset: 1234 });

    let (summary, output) = w.sync(&[], Filters::default(), false).await;
    println!("{output}");
    assert!(!summary.succeeded());
    assert_eq!(summary.count(Action::Copied), 4, "{output}");
    assert_eq!(summary.count(Action::Failed), 2, "{output}");
    let mut failed_targets = Vec::new();
    for result in &summary.results {
        if result.source_id == bad {
            assert_eq!(result.action, Action::Failed);
            let error = result.error.as_deref().unwrap();
            assert!(error.contains(&bad), "{error}");
            assert!(error.contains(&result.region), "{error}");
            assert!(error.contains("mismatch"), "{error}");
            let target = result.target_id.clone().expect("the copy was created");
            let copy = w.cloud.region(&result.region).image(&target).unwrap();
            assert_ne!(copy["status"], "active", "{copy}");
            failed_targets.push((result.region.clone(), target));
        } else {
            assert_eq!(result.action, Action::Copied, "{result:?}");
        }
    }
    assert!(output.contains("FAILED"), "{output}");

    w.cloud.region("REGION1").clear_fault(&bad);
    let (again, output) = w.sync(&[], Filters::default(), false).await;
    println!("{output}");
    assert!(again.succeeded(), "{output}");
    assert_eq!(again.count(Action::Copied), 2);
    assert_eq!(again.count(Action::Skipped), 4);
    for (region, target) in failed_targets {
        let result = again
            .results
            .iter()
            .find(|r| r.source_id == bad && r.region == region)
            .unwrap();
        assert_eq!(result.target_id.as_deref(), Some(target.as_str()), "reused");
        let source = w.cloud.region("REGION1").image(&bad).unwrap();
        assert_same_data(&w.cloud.region(&region).image(&target).unwrap(), &source);
    }
    for src in [&good1, &good2, &bad] {
        for region in ["REGION2", "REGION3"] {
            assert_eq!(w.copies(region, src).await.len(), 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_summary_has_one_entry_per_image_and_region() {
    let w = World::start().await;
    let id = w.image("solo", 4096, 9, |_| {});
    let (summary, _) = w.sync(&[], Filters::default(), false).await;
    let doc = summary.to_json();
    assert_eq!(doc["from"], "REGION1");
    assert_eq!(doc["to"], json!(["REGION2", "REGION3"]));
    assert_eq!(doc["dry_run"], false);
    let totals = doc["totals"].as_object().unwrap();
    for key in [
        "copied",
        "skipped",
        "would_copy",
        "failed",
        "bytes",
        "seconds",
    ] {
        assert!(totals.contains_key(key), "{key}");
    }
    assert_eq!(doc["totals"]["copied"], 2);
    assert_eq!(doc["totals"]["bytes"], 8192);
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (entry, region) in results.iter().zip(["REGION2", "REGION3"]) {
        let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "action",
                "bytes",
                "error",
                "method",
                "name",
                "region",
                "seconds",
                "source_id",
                "target_id"
            ]
        );
        assert_eq!(entry["source_id"], id.as_str());
        assert_eq!(entry["region"], region);
        assert_eq!(entry["action"], "copied");
        assert_eq!(entry["bytes"], 4096);
        assert!(entry["seconds"].as_f64().unwrap() >= 0.0);
        assert!(entry["error"].is_null());
        assert!(entry["target_id"].as_str().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn setup_errors_name_the_cause_and_never_the_password() {
    let w = World::start().await;
    let options = Options::new(
        "REGION1",
        &["REGION9".to_string()],
        &[],
        Filters::default(),
        2,
        false,
    )
    .unwrap();
    let error = sync::run(&options, &w.credentials(), Arc::new(sync::Quiet))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("REGION9"), "{error}");

    let mut vars = w.vars();
    vars.retain(|(k, _)| k != "OS_PASSWORD");
    vars.push(("OS_PASSWORD".into(), "wrong-secret-123".into()));
    let creds = Credentials::load(None, &Environment::from_vars(vars)).unwrap();
    assert!(!format!("{creds:?}").contains("wrong-secret-123"));
    let error = sync::run(&options, &creds, Arc::new(sync::Quiet))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("401") && text.contains(USER), "{text}");
    assert!(!text.contains("wrong-secret-123"), "{text}");
}

/// The binary, as an operator runs it: credentials from clouds.yaml, `--json` on stdout, and a
/// non-zero exit status when a copy failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_reads_clouds_yaml_prints_json_and_exits_non_zero_on_failure() {
    let w = World::start().await;
    let good = w.image("good", 10_000, 1, |_| {});
    let bad = w.image("bad", 10_000, 2, |_| {});
    w.cloud
        .region("REGION1")
        .set_fault(&bad, Fault::Corrupt { offset: 5 });
    let dir = std::env::temp_dir().join(format!("gds-sync-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let clouds = dir.join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  sim:\n    auth:\n      auth_url: {}\n      username: {USER}\n      \
             project_name: {PROJECT}\n      user_domain_name: Default\n      \
             project_domain_name: Default\n    region_name: REGION1\n    interface: public\n",
            w.cloud.auth_url()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("secure.yaml"),
        format!("clouds:\n  sim:\n    auth:\n      password: \"{PASSWORD}\"\n"),
    )
    .unwrap();

    let run = |args: Vec<String>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"))
                .env_clear()
                .env("HOME", &dir)
                .env("OS_CLIENT_CONFIG_FILE", dir.join("clouds.yaml"))
                .env("OS_CLIENT_SECURE_FILE", dir.join("secure.yaml"))
                .current_dir(&dir)
                .args(args)
                .output()
                .unwrap()
        })
    };
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = ["sync", "--os-cloud", "sim", "--from", "REGION1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    let out = run(args(&["--to", "REGION3", "--json", &good, &bad]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(doc["totals"]["copied"], 1, "{doc}");
    assert_eq!(doc["totals"]["failed"], 1, "{doc}");
    let failed = &doc["results"][1];
    assert_eq!(failed["source_id"], bad.as_str());
    assert!(failed["error"].as_str().unwrap().contains("REGION3"));
    assert!(
        stderr.contains("FAILED"),
        "progress lines go to stderr: {stderr}"
    );
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));

    w.cloud.region("REGION1").clear_fault(&bad);
    let out = run(args(&["--to", "REGION3", &good, &bad])).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("done: 1 copied, 1 skipped, 0 failed"),
        "{stdout}"
    );

    let out = run(args(&["--to", "REGION1", &good])).await.unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = run(vec![
        "sync".into(),
        "--from".into(),
        "REGION1".into(),
        "--to".into(),
        "REGION2".into(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(64), "no credentials at all");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no credentials"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_progress_shows_bytes_rate_and_eta_and_bars_run_headless() {
    let w = World::start().await;
    let slow = w.image("slow", 400_000, 1, |_| {});
    w.cloud.region("REGION1").set_fault(
        &slow,
        Fault::Throttle {
            bytes_per_sec: 1_000_000,
        },
    );
    let mut options = Options::new(
        "REGION1",
        &["REGION2".to_string(), "REGION3".to_string()],
        &[],
        Filters::default(),
        4,
        false,
    )
    .unwrap();
    options.tuning.poll_interval = Duration::from_millis(20);
    let out = Captured::default();
    let lines = Arc::new(Lines::with_interval(
        Box::new(out.clone()),
        Duration::from_millis(50),
    ));
    let summary = sync::run(&options, &w.credentials(), lines).await.unwrap();
    let text = out.text();
    println!("{text}");
    assert!(summary.succeeded(), "{text}");
    let progress: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("progress:"))
        .collect();
    assert!(!progress.is_empty(), "{text}");
    assert!(
        progress
            .iter()
            .all(|l| l.contains("/s") && l.contains("ETA")),
        "{progress:?}"
    );

    // The terminal display, drawn nowhere: the same run with bars must work too.
    let other = w.image("other", 50_000, 2, |_| {});
    let bars = Arc::new(sync::Bars::new(indicatif::ProgressDrawTarget::hidden()));
    let summary = sync::run(&options, &w.credentials(), bars).await.unwrap();
    assert_eq!(summary.count(Action::Copied), 2);
    assert_eq!(summary.count(Action::Skipped), 2);
    assert!(summary.results.iter().any(|r| r.source_id == other));
}

#[test]
fn help_lists_the_contract_flags() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"))
        .args(["sync", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--os-cloud",
        "--from",
        "--to",
        "IMAGE_ID",
        "--name",
        "--tag",
        "--visibility",
        "--property",
        "--concurrency",
        "--dry-run",
        "--json",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

/// Tokens that live one second: every call of a copy that lasts longer needs a renewed one. (A
/// streamed copy: a glance-download import holds the token it was started with, on the target
/// region's side.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_lived_tokens_are_renewed_during_a_run() {
    let w = World::start().await;
    w.cloud.keystone.set_token_ttl(Duration::from_secs(1));
    let slow = w.image("slow", 300_000, 1, |_| {});
    w.cloud.region("REGION1").set_fault(
        &slow,
        Fault::Throttle {
            bytes_per_sec: 200_000,
        },
    );
    let (summary, output) = w.sync_to("REGION3", &[], Filters::default(), false).await;
    assert!(summary.succeeded(), "{output}");
    assert_eq!(summary.count(Action::Copied), 1, "{output}");
    assert!(summary.results[0].seconds > 1.0, "{output}");
    let copy = &w.copies("REGION3", &slow).await[0];
    assert_same_data(copy, &w.cloud.region("REGION1").image(&slow).unwrap());
}

/// REGION2's Glance refuses writes for a moment (500, as Glance on a locked database): the
/// sidecar answers the import with 502, and `sync` takes the copy again instead of failing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_momentarily_failing_target_is_retried() {
    let w = World::start().await;
    let src = w.image("busy", 100_000, 7, |_| {});
    w.cloud.region("REGION2").fail_next_patches(1);
    let (summary, output) = w.sync_to("REGION2", &[], Filters::default(), false).await;
    assert!(summary.succeeded(), "{output}");
    assert_eq!(summary.count(Action::Copied), 1, "{output}");
    let copies = w.copies("REGION2", &src).await;
    assert_eq!(
        copies.len(),
        1,
        "the retry reused the first attempt's image: {copies:?}"
    );
    assert_same_data(&copies[0], &w.cloud.region("REGION1").image(&src).unwrap());
}
