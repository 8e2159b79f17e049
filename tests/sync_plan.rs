//! `sync --plan FILE`, the binary as an operator runs it, against a simulated cloud of plain
//! Glance regions (REGION1 is the source; `sync` streams into REGION2 and REGION3): a plan runs as
//! the same flags do, its dry run is the `--json` summary, and refused plans and flag mixes exit 64.

use std::path::{Path, PathBuf};
use std::process::Output;

use glance_download_sidecar::tools::sim::{Cloud, ImageData, ImageSpec};
use serde_json::{json, Value};
use sync_world::{PASSWORD, PROJECT, USER};

mod sync_world;

struct World {
    cloud: Cloud,
    dir: PathBuf,
}

impl World {
    async fn start() -> World {
        let cloud = sync_world::cloud().await;
        let dir = std::env::temp_dir().join(format!("gds-plan-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        World { cloud, dir }
    }

    fn image(&self, name: &str, seed: u64, tags: &[&str]) -> String {
        let spec = ImageSpec {
            name: Some(name.to_string()),
            disk_format: Some("qcow2".into()),
            container_format: Some("bare".into()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..ImageSpec::active(PROJECT, ImageData::Generated { seed, size: 20_000 })
        };
        self.cloud.region("REGION1").create_image(spec)
    }

    fn plan(&self, text: &str) -> String {
        let path = self
            .dir
            .join(format!("{}.yaml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// `glance-download-sidecar sync ARGS` with the OS_* variables of the test user.
    async fn sync(&self, args: &[&str]) -> Output {
        let mut command = self.command();
        command
            .env("OS_AUTH_URL", self.cloud.auth_url())
            .env("OS_USERNAME", USER)
            .env("OS_PASSWORD", PASSWORD)
            .env("OS_PROJECT_NAME", PROJECT)
            .env("OS_USER_DOMAIN_NAME", "Default")
            .env("OS_PROJECT_DOMAIN_NAME", "Default")
            .arg("sync")
            .args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// The binary with an empty environment but HOME (and `./clouds.yaml` read from `dir`).
    fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"));
        command
            .env_clear()
            .env("HOME", &self.dir)
            .current_dir(&self.dir);
        command
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The JSON summary on stdout, with its timings zeroed (they differ between two runs).
fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let mut doc: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    doc["seconds"] = json!(0);
    doc["totals"]["seconds"] = json!(0);
    for result in doc["results"].as_array_mut().unwrap() {
        result["seconds"] = json!(0);
    }
    doc
}

/// (source id, region, action) of every result, sorted.
fn actions(doc: &Value) -> Vec<(String, String, String)> {
    let mut all: Vec<_> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source_id"].as_str().unwrap().to_string(),
                r["region"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    all.sort();
    all
}

const PLAN: &str = "\
source:
  region: REGION1
  filters:
    name: \"ubuntu-*\"
    tags: [golden]
targets:
  regions: [REGION2, REGION3]
options:
  concurrency: 2
  keep_id: true
";

const FLAGS: [&str; 11] = [
    "--from",
    "REGION1",
    "--to",
    "REGION2,REGION3",
    "--name",
    "ubuntu-*",
    "--tag",
    "golden",
    "--concurrency",
    "2",
    "--keep-id",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_runs_as_its_flags_do_and_its_dry_run_is_the_json_summary() {
    let w = World::start().await;
    let a = w.image("ubuntu-a", 1, &["golden"]);
    let b = w.image("ubuntu-b", 2, &["golden"]);
    w.image("debian", 3, &["golden"]);
    w.image("ubuntu-c", 4, &[]);
    let plan = w.plan(PLAN);

    // The dry run of the plan, without --json, prints what --dry-run --json prints for the flags.
    let out = w.sync(&["--plan", &plan, "--dry-run"]).await;
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let by_plan = summary(&out);
    let mut flags = FLAGS.to_vec();
    flags.extend(["--dry-run", "--json"]);
    let by_flags = summary(&w.sync(&flags).await);
    assert_eq!(by_plan, by_flags);
    let mut expected = Vec::new();
    for id in [&a, &b] {
        for region in ["REGION2", "REGION3"] {
            expected.push((id.clone(), region.to_string(), "would_copy".to_string()));
        }
    }
    expected.sort();
    assert_eq!(actions(&by_plan), expected, "{by_plan}");

    // The plan run copies (with the source ids); the same flags then find every copy.
    let copied = summary(&w.sync(&["--plan", &plan, "--json"]).await);
    assert_eq!(copied["totals"]["copied"], 4, "{copied}");
    for result in copied["results"].as_array().unwrap() {
        assert_eq!(
            result["target_id"], result["source_id"],
            "--keep-id: {result}"
        );
    }
    let mut flags = FLAGS.to_vec();
    flags.push("--json");
    let again = summary(&w.sync(&flags).await);
    let skipped: Vec<_> = expected
        .iter()
        .map(|(id, region, _)| (id.clone(), region.clone(), "skipped".to_string()))
        .collect();
    assert_eq!(actions(&again), skipped, "{again}");

    // Narrowed to ubuntu-a with prune: hide, the plan and the flags list the same hides.
    let narrowed = PLAN.replace("ubuntu-*", "ubuntu-a") + "  prune: hide\n";
    let out = w.sync(&["--plan", &w.plan(&narrowed), "--dry-run"]).await;
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let by_plan = summary(&out);
    let mut flags = FLAGS.to_vec();
    flags[5] = "ubuntu-a";
    flags.extend(["--prune=hide", "--dry-run", "--json"]);
    assert_eq!(by_plan, summary(&w.sync(&flags).await));
    let hides: Vec<_> = actions(&by_plan)
        .into_iter()
        .filter(|(_, _, action)| action == "hide")
        .collect();
    assert_eq!(hides.len(), 2, "ubuntu-b's copy in each region: {by_plan}");
    assert!(actions(&by_plan).contains(&(a.clone(), "REGION2".into(), "skipped".into())));
}

/// Runs `sync ARGS`, expects exit status 64 and returns stderr.
async fn refused(w: &World, args: &[&str]) -> String {
    let out = w.sync(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flags_the_plan_says_are_refused_beside_it() {
    let w = World::start().await;
    let plan = w.plan(PLAN);
    let id = "2b4c8f5e-7d4a-4a57-9a55-1d2e3f4a5b6c";
    for (flag, args) in [
        ("--from", vec!["--from", "REGION1"]),
        ("--to", vec!["--to", "REGION2"]),
        ("IMAGE_ID", vec![id]),
        ("--name", vec!["--name", "x"]),
        ("--tag", vec!["--tag", "x"]),
        ("--visibility", vec!["--visibility", "public"]),
        ("--property", vec!["--property", "a=b"]),
        ("--concurrency", vec!["--concurrency", "2"]),
        ("--keep-id", vec!["--keep-id"]),
        ("--prune", vec!["--prune"]),
    ] {
        let mut all = vec!["--plan", plan.as_str(), "--dry-run"];
        all.extend(args);
        let stderr = refused(&w, &all).await;
        assert!(
            stderr.contains(&format!("{flag} cannot be given with --plan")),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_plans_are_refused_naming_the_line_and_the_key() {
    let w = World::start().await;
    for (text, named) in [
        (
            PLAN.replace("keep_id", "keepid"),
            "options: unknown field `keepid`",
        ),
        (
            PLAN.replace("concurrency: 2", "concurrency: two"),
            "options.concurrency: invalid type",
        ),
        (
            PLAN.replace("  region: REGION1\n", ""),
            "source: missing field `region`",
        ),
        (
            PLAN.replace("tags: [golden]", "visibility: everyone"),
            "source.filters.visibility",
        ),
    ] {
        let plan = w.plan(&text);
        let stderr = refused(&w, &["--plan", &plan, "--dry-run"]).await;
        assert!(
            stderr.contains(named) && stderr.contains(" at line "),
            "{stderr}"
        );
        assert!(stderr.contains(&plan), "the file is named: {stderr}");
    }
    let two = PLAN.replace("targets:\n", "targets:\n  cloud: other\n");
    let stderr = refused(&w, &["--plan", &w.plan(&two)]).await;
    assert!(
        stderr.contains("targets.cloud \"other\" needs source.cloud"),
        "{stderr}"
    );
    let named = PLAN.replace("  region: REGION1", "  cloud: prod\n  region: REGION1");
    let stderr = refused(&w, &["--os-cloud", "lab", "--plan", &w.plan(&named)]).await;
    assert!(stderr.contains("disagree"), "{stderr}");
    let big = format!("{PLAN}#{}\n", "x".repeat(1024 * 1024));
    let stderr = refused(&w, &["--plan", &w.plan(&big)]).await;
    assert!(stderr.contains("larger than 1048576 bytes"), "{stderr}");
    let missing = w.dir.join("missing.yaml");
    refused(&w, &["--plan", Path::new(&missing).to_str().unwrap()]).await;
}

/// The plan's `source.cloud` is the clouds.yaml entry the run signs in with; `targets.cloud` may
/// repeat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_plan_names_the_cloud_to_sign_in_with() {
    let w = World::start().await;
    let a = w.image("ubuntu-a", 1, &["golden"]);
    std::fs::write(
        w.dir.join("clouds.yaml"),
        format!(
            "clouds:\n  sim:\n    auth:\n      auth_url: {}\n      username: {USER}\n      \
             password: \"{PASSWORD}\"\n      project_name: {PROJECT}\n",
            w.cloud.auth_url()
        ),
    )
    .unwrap();
    let text = PLAN
        .replace("  region: REGION1", "  cloud: sim\n  region: REGION1")
        .replace("targets:\n", "targets:\n  cloud: sim\n");
    let plan = w.plan(&text);
    let mut command = w.command();
    command.args(["sync", "--plan", &plan, "--json"]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let doc = summary(&out);
    assert_eq!(doc["totals"]["copied"], 2, "{doc}");
    assert!(actions(&doc).iter().all(|(id, _, _)| id == &a), "{doc}");
}
