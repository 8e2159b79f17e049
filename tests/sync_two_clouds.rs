//! `sync` between two independent simulated clouds, each with its own Keystone, users and
//! Glance: cloud A (the `sync_world` cloud, source REGION1) and cloud B, whose REGION1 is a
//! target that even advertises glance-download. The bytes must stream through `sync`, verified;
//! each cloud's token must only ever reach that cloud; the copies carry the source cloud's name,
//! so skips and prunes never mix copies of the two clouds; and the binary reads both clouds from
//! clouds.yaml, refusing a missing entry with exit 64.

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::{generated_bytes, Cloud, ImageData, ImageSpec};
use glance_download_sidecar::tools::sync::{
    self, Action, Credentials, Environment, Filters, Lines, Method, Options, Prune, SourceCloud,
    Summary, SOURCE_CLOUD, SOURCE_IMAGE_ID,
};
use serde_json::{json, Value};
use sync_world::{assert_same_data, Captured, PASSWORD, PROJECT, USER};

mod sync_world;

const B_USER: &str = "b-user";
const B_PASSWORD: &str = "a different secret for cloud b";
const B_PROJECT: &str = "b-project";

/// The name cloud A has in clouds.yaml.
const A_NAME: &str = "cloud-a";

struct Two {
    a: Cloud,
    b: Cloud,
}

impl Two {
    async fn start() -> Two {
        let a = sync_world::cloud().await;
        let b = Cloud::start(&["REGION1"]).await.unwrap();
        b.keystone
            .add_user(B_USER, B_PASSWORD, B_PROJECT, &["member"]);
        // Were the two clouds one, `sync` would ask this region to import with glance-download.
        b.region("REGION1")
            .set_import_methods(&["glance-direct", "glance-download"]);
        Two { a, b }
    }

    fn credentials(cloud: &Cloud, user: &str, password: &str, project: &str) -> Credentials {
        let vars = [
            ("OS_AUTH_URL", cloud.auth_url()),
            ("OS_USERNAME", user.to_string()),
            ("OS_PASSWORD", password.to_string()),
            ("OS_PROJECT_NAME", project.to_string()),
            ("OS_USER_DOMAIN_NAME", "Default".to_string()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".to_string()),
        ];
        Credentials::load(None, &Environment::from_vars(vars)).unwrap()
    }

    /// An active image in cloud A's REGION1.
    fn image(&self, name: &str, size: u64, seed: u64) -> String {
        let mut spec = ImageSpec {
            name: Some(name.to_string()),
            disk_format: Some("qcow2".into()),
            container_format: Some("bare".into()),
            ..ImageSpec::active(PROJECT, ImageData::Generated { seed, size })
        };
        spec.properties.insert("hw_disk_bus".into(), json!("scsi"));
        spec.properties.insert("os_distro".into(), json!("ubuntu"));
        self.a.region("REGION1").create_image(spec)
    }

    /// A sync from A's REGION1 into B's REGION1.
    async fn sync(&self, ids: &[&str], filters: Filters, keep_id: bool) -> Summary {
        self.sync_with(ids, filters, |o| o.keep_id = keep_id).await
    }

    async fn sync_with(
        &self,
        ids: &[&str],
        filters: Filters,
        adjust: impl FnOnce(&mut Options),
    ) -> Summary {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let to = ["REGION1".to_string()];
        let mut options = Options::across_clouds("REGION1", &to, &ids, filters, 4, false).unwrap();
        options.tuning.poll_interval = Duration::from_millis(20);
        adjust(&mut options);
        let source = SourceCloud {
            name: A_NAME.to_string(),
            credentials: Two::credentials(&self.a, USER, PASSWORD, PROJECT),
        };
        let target = Two::credentials(&self.b, B_USER, B_PASSWORD, B_PROJECT);
        let out = Captured::default();
        let observer = Arc::new(Lines::with_interval(
            Box::new(out.clone()),
            Duration::from_millis(100),
        ));
        let summary = sync::run_across(&options, &source, &target, observer)
            .await
            .unwrap();
        println!("{}", out.text());
        summary
    }

    /// Every image of cloud B's REGION1, listed by B's admin.
    async fn b_images(&self) -> Vec<Value> {
        let token = self.b.keystone.issue_token("admin", "admin", &["admin"]);
        let api = ImageApi::new(&self.b.region("REGION1").url(), &token);
        let answer = api.get("/v2/images?limit=1000").await.unwrap();
        answer.json()["images"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn b_copies(&self, source: &str) -> Vec<Value> {
        self.b_images()
            .await
            .into_iter()
            .filter(|i| i[SOURCE_IMAGE_ID] == source)
            .collect()
    }
}

/// Every token `cloud`'s Glance received; each must be one of `own`'s and none of `other`'s.
fn assert_tokens_stay_home(cloud: &str, received: &Cloud, other: &Cloud) -> usize {
    let mut seen = 0;
    for glance in received.regions() {
        for request in glance.request_log() {
            let Some(token) = request.header("x-auth-token") else {
                continue;
            };
            seen += 1;
            assert!(
                other.keystone.caller(token).is_none(),
                "{cloud} received the other cloud's token: {} {}",
                request.method,
                request.path
            );
            assert!(
                received.keystone.caller(token).is_some(),
                "{cloud} received a token it did not issue: {} {}",
                request.method,
                request.path
            );
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_stream_between_two_clouds_verified_with_their_metadata() {
    let w = Two::start().await;
    let sizes = [0u64, 300_000, (1 << 20) + 7];
    let sources: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| w.image(&format!("golden-{i}"), *size, 40 + i as u64))
        .collect();

    let summary = w.sync(&[], Filters::default(), false).await;
    assert!(summary.succeeded(), "{summary:?}");
    assert_eq!(summary.count(Action::Copied), 3);
    assert_eq!(summary.bytes(), sizes.iter().sum::<u64>());
    for result in &summary.results {
        assert_eq!(result.method, Some(Method::Stream), "{result:?}");
    }
    for (i, src) in sources.iter().enumerate() {
        let source = w.a.region("REGION1").image(src).unwrap();
        let copies = w.b_copies(src).await;
        assert_eq!(copies.len(), 1, "{copies:?}");
        let copy = &copies[0];
        assert_same_data(copy, &source);
        for key in ["visibility", "hw_disk_bus", "os_distro"] {
            assert_eq!(copy[key], source[key], "{key}");
        }
        assert_eq!(
            copy["owner"], B_PROJECT,
            "owned by cloud B's user's project"
        );
        assert_eq!(copy[SOURCE_CLOUD], A_NAME);
        assert_eq!(copy["glance_download_source_region"], "REGION1");
        assert_ne!(copy["id"], source["id"], "a new id without --keep-id");
        let data =
            w.b.region("REGION1")
                .image_data(copy["id"].as_str().unwrap())
                .unwrap_or_default();
        assert!(data == generated_bytes(40 + i as u64, 0, sizes[i] as usize));
    }

    let again = w.sync(&[], Filters::default(), false).await;
    assert_eq!(again.count(Action::Skipped), 3, "{again:?}");
    assert_eq!(w.b_images().await.len(), 3, "no new images");
    let log = w.b.region("REGION1").request_log();
    assert!(
        !log.iter().any(|r| r.path.contains("/import")),
        "no import call was sent to cloud B: {:?}",
        log.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(
        log.iter()
            .any(|r| r.method == "PUT" && r.path.ends_with("/file")),
        "the bytes were uploaded by sync"
    );
}

/// A security property: cloud A's tokens never leave cloud A, cloud B's never leave cloud B,
/// though both are in hand while a copy streams from one into the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_of_one_cloud_is_never_sent_to_the_other() {
    let w = Two::start().await;
    let src = w.image("secret-carrier", 200_000, 9);
    let kept = w.image("kept-id", 1_000, 10);
    for glance in w.a.regions().iter().chain(w.b.regions()) {
        glance.clear_request_log();
    }
    let logins = (w.a.keystone.logins(), w.b.keystone.logins());
    let summary = w.sync(&[&src, &kept], Filters::default(), true).await;
    assert!(summary.succeeded(), "{summary:?}");
    assert_eq!(summary.count(Action::Copied), 2);
    let summary = w
        .sync_with(&[&src], Filters::default(), |o| o.dry_run = true)
        .await;
    assert_eq!(summary.count(Action::Skipped), 1);

    let to_a = assert_tokens_stay_home("cloud A", &w.a, &w.b);
    let to_b = assert_tokens_stay_home("cloud B", &w.b, &w.a);
    assert!(to_a > 0 && to_b > 0, "both clouds were called with tokens");
    assert!(w.a.keystone.logins() > logins.0, "signed in to cloud A");
    assert!(w.b.keystone.logins() > logins.1, "signed in to cloud B");
    // --keep-id holds across clouds too.
    let copies = w.b_copies(&kept).await;
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["id"], kept.as_str());
}

/// `--prune` from another cloud only ever touches copies of that cloud: a copy made inside
/// cloud B from its own REGION1 looks like one (same source region, same project) but carries no
/// source cloud, and stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_from_another_cloud_leaves_the_targets_own_copies_alone() {
    let w = Two::start().await;
    let x = w.image("x-old", 1_000, 1);
    let y = w.image("y-new", 1_000, 2);
    let local = w.b.region("REGION1").create_image(ImageSpec {
        name: Some("copy made inside cloud b".into()),
        properties: [
            (SOURCE_IMAGE_ID, json!(uuid::Uuid::new_v4().to_string())),
            ("glance_download_source_region", json!("REGION1")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        ..ImageSpec::active(B_PROJECT, ImageData::Generated { seed: 3, size: 100 })
    });
    let summary = w.sync(&[], Filters::default(), false).await;
    assert_eq!(summary.count(Action::Copied), 2, "{summary:?}");

    let only_y = Filters {
        name: Some("y-*".into()),
        ..Filters::default()
    };
    let summary = w
        .sync_with(&[], only_y, |o| o.prune = Some(Prune::Delete))
        .await;
    assert!(summary.succeeded(), "{summary:?}");
    assert_eq!(summary.count(Action::Skipped), 1, "{summary:?}");
    assert_eq!(summary.count(Action::Pruned), 1, "{summary:?}");
    assert!(w.b_copies(&x).await.is_empty(), "the copy of x is pruned");
    assert_eq!(w.b_copies(&y).await.len(), 1);
    assert!(
        w.b.region("REGION1").image(&local).is_some(),
        "cloud B's own copy is not touched"
    );
}

/// The binary, as an operator runs it: both clouds from one clouds.yaml.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(w: &Two) -> Files {
        let dir = std::env::temp_dir().join(format!("gds-2c-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let entry = |name: &str, url: String, user: &str, password: Option<&str>, project: &str| {
            let password = password
                .map(|p| format!("      password: \"{p}\"\n"))
                .unwrap_or_default();
            format!(
                "  {name}:\n    auth:\n      auth_url: {url}\n      username: {user}\n{password}      \
                 project_name: {project}\n      user_domain_name: Default\n      \
                 project_domain_name: Default\n"
            )
        };
        let text = format!(
            "clouds:\n{}{}{}",
            entry(A_NAME, w.a.auth_url(), USER, Some(PASSWORD), PROJECT),
            entry(
                "cloud-b",
                w.b.auth_url(),
                B_USER,
                Some(B_PASSWORD),
                B_PROJECT
            ),
            entry("cloud-b-nopass", w.b.auth_url(), B_USER, None, B_PROJECT),
        );
        std::fs::write(dir.join("clouds.yaml"), text).unwrap();
        Files { dir }
    }

    /// `glance-download-sidecar sync ARGS` with only clouds.yaml and `extra` variables.
    async fn sync(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"));
        command
            .env_clear()
            .env("HOME", &self.dir)
            .env("OS_CLIENT_CONFIG_FILE", self.dir.join("clouds.yaml"))
            .current_dir(&self.dir)
            .envs(extra.iter().copied())
            .arg("sync")
            .args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn refused(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(!stderr.contains(PASSWORD) && !stderr.contains(B_PASSWORD));
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_syncs_between_two_clouds_yaml_entries() {
    let w = Two::start().await;
    let files = Files::new(&w);
    let src = w.image("cli-copy", 50_000, 5);
    let two = ["--from-cloud", A_NAME, "--to-cloud", "cloud-b"];
    let regions = ["--from", "REGION1", "--to", "REGION1"];
    let args = |extra: &[&'static str]| -> Vec<String> {
        two.iter()
            .chain(regions.iter())
            .chain(extra)
            .map(|s| s.to_string())
            .chain([src.clone()])
            .collect()
    };
    let run = |args: Vec<String>| {
        let files = &files;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            files.sync(&args, &[]).await
        }
    };

    let out = run(args(&["--json"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{:?}", out.stderr);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["totals"]["copied"], 1, "{doc}");
    assert_eq!(doc["results"][0]["method"], "stream", "{doc}");
    assert_eq!(
        (&doc["from_cloud"], &doc["to_cloud"]),
        (&json!(A_NAME), &json!("cloud-b"))
    );
    assert_eq!(w.b_copies(&src).await[0][SOURCE_CLOUD], A_NAME);

    let out = run(args(&["--dry-run"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 skipped"), "{stdout}");

    // A plan names the two clouds as the flags do.
    let plan = files.dir.join("plan.yaml");
    let text = format!(
        "source:\n  cloud: {A_NAME}\n  region: REGION1\n  images: [{src}]\n\
         targets:\n  cloud: cloud-b\n  regions: [REGION1]\n"
    );
    std::fs::write(&plan, text).unwrap();
    let out = files
        .sync(&["--plan", plan.to_str().unwrap(), "--dry-run"], &[])
        .await;
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["totals"]["skipped"], 1, "{doc}");
    assert_eq!(
        (&doc["from_cloud"], &doc["to_cloud"]),
        (&json!(A_NAME), &json!("cloud-b"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_or_incomplete_cloud_entry_exits_64_naming_it() {
    let w = Two::start().await;
    let files = Files::new(&w);
    let regions = ["--from", "REGION1", "--to", "REGION1"];
    let with = |clouds: &[&'static str]| -> Vec<&'static str> {
        clouds.iter().chain(regions.iter()).copied().collect()
    };

    let stderr = refused(
        &files
            .sync(
                &with(&["--from-cloud", A_NAME, "--to-cloud", "nowhere"]),
                &[],
            )
            .await,
    );
    assert!(stderr.contains("\"nowhere\" is not defined"), "{stderr}");
    let stderr = refused(&files.sync(&with(&["--from-cloud", A_NAME]), &[]).await);
    assert!(stderr.contains("--from-cloud needs --to-cloud"), "{stderr}");
    let stderr = refused(&files.sync(&with(&["--to-cloud", "cloud-b"]), &[]).await);
    assert!(stderr.contains("--to-cloud needs --from-cloud"), "{stderr}");
    let both = [
        "--os-cloud",
        A_NAME,
        "--from-cloud",
        A_NAME,
        "--to-cloud",
        "cloud-b",
    ];
    let stderr = refused(&files.sync(&with(&both), &[]).await);
    assert!(stderr.contains("--os-cloud cannot be given"), "{stderr}");

    // An entry without its password is not completed from OS_PASSWORD (it may be the other
    // cloud's): refused before anything is sent to either Keystone.
    let logins = (w.a.keystone.logins(), w.b.keystone.logins());
    let args = with(&["--from-cloud", A_NAME, "--to-cloud", "cloud-b-nopass"]);
    let stderr = refused(&files.sync(&args, &[("OS_PASSWORD", PASSWORD)]).await);
    assert!(
        stderr.contains("cloud cloud-b-nopass") && stderr.contains("password"),
        "{stderr}"
    );
    assert_eq!((w.a.keystone.logins(), w.b.keystone.logins()), logins);
}
