//! `bench` in its real-cloud mode, run against the simulated cloud on loopback: a password
//! sign-in at the fake Keystone, a source image made in REGION1, the target Glance of REGION2
//! driven directly with the sidecar's own server in this process. The fake Glance does not serve
//! upstream's glance-download (it does not list it in `GET /v2/info/import`), so phase (e) must
//! come out "not offered". No assertion here depends on timing.

use std::net::TcpListener;
use std::process::Command;

use glance_download_sidecar::pipeline::Limits;
use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::bench::cloud::{
    run_cloud, run_small, CloudOptions, CloudReport, Outcome, TokenUse,
};
use glance_download_sidecar::tools::bench::BenchError;
use glance_download_sidecar::tools::sim::{Cloud, Fault, ImageData, ImageSpec};
use glance_download_sidecar::tools::sync::{Credentials, Environment};
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const PROJECT: &str = "bench-project";
const USER: &str = "bench-user";
const PASSWORD: &str = "bench password 7";
const SIZE: u64 = 3 << 20;

/// The simulated cloud, served by a runtime of its own while the bench (which blocks) runs.
struct World {
    rt: Runtime,
    cloud: Cloud,
}

impl World {
    fn start() -> World {
        let rt = Runtime::new().unwrap();
        let cloud = rt.block_on(Cloud::start(&["REGION1", "REGION2"])).unwrap();
        cloud
            .keystone
            .add_user(USER, PASSWORD, PROJECT, &["member", "reader"]);
        World { rt, cloud }
    }

    fn vars(auth_url: &str) -> Vec<(String, String)> {
        [
            ("OS_AUTH_URL", auth_url),
            ("OS_USERNAME", USER),
            ("OS_PASSWORD", PASSWORD),
            ("OS_PROJECT_NAME", PROJECT),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn credentials(&self) -> Credentials {
        let env = Environment::from_vars(World::vars(&self.cloud.auth_url()));
        Credentials::load(None, &env).unwrap()
    }

    fn options(&self, image: Option<&str>) -> CloudOptions {
        let size = image.is_none().then_some(SIZE);
        let limits = Limits {
            chunk_size: 256 << 10,
            buffer_bytes: 1 << 20,
        };
        let target = self.cloud.region("REGION2").url();
        let mut options = CloudOptions::from_flags(
            Some("REGION1"),
            Some("REGION2"),
            Some(&target),
            image,
            size,
            1,
            limits,
        )
        .unwrap();
        options.background_window = std::time::Duration::from_millis(50);
        options
    }

    fn bench(&self, image: Option<&str>) -> (Result<CloudReport, BenchError>, Vec<String>) {
        let mut lines = Vec::new();
        let report = run_cloud(
            &self.options(image),
            &self.credentials(),
            &mut |line| lines.push(line.to_string()),
            CancellationToken::new(),
        );
        (report, lines)
    }

    /// The ids of the images the bench user sees in `region`.
    fn images(&self, region: &str) -> Vec<String> {
        let token = self
            .cloud
            .keystone
            .issue_token("checker", PROJECT, &["member", "reader"]);
        let api = ImageApi::new(&self.cloud.region(region).url(), &token);
        let listed = self.rt.block_on(api.get("/v2/images")).unwrap();
        assert_eq!(listed.status, 200);
        listed.json()["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// An active image of the bench's project in REGION1, made directly in the fake.
    fn existing_source(&self) -> String {
        self.cloud.region("REGION1").create_image(ImageSpec {
            name: Some("golden".into()),
            disk_format: Some("qcow2".into()),
            container_format: Some("bare".into()),
            ..ImageSpec::active(
                PROJECT,
                ImageData::Generated {
                    seed: 11,
                    size: SIZE,
                },
            )
        })
    }
}

#[test]
fn every_sink_is_measured_and_every_image_deleted() {
    let world = World::start();
    let (report, lines) = world.bench(None);
    let report = report.unwrap();
    assert!(lines.iter().any(|l| l.starts_with("run 1/1")), "{lines:?}");
    assert_eq!(report.runs, 1);
    assert!(report.setup.source_created);
    assert_eq!(report.setup.size, SIZE);
    assert_eq!(report.setup.os_hash_algo, "sha512");
    let keys: Vec<&str> = report.phases.iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        [
            "ceiling",
            "glance_put",
            "sidecar_upload",
            "sidecar_stage",
            "upstream"
        ]
    );
    for phase in &report.phases[..4] {
        assert!(phase.not_offered.is_none(), "{phase:?}");
        assert_eq!(phase.mb_per_s_runs.len(), 1, "{phase:?}");
        assert!(phase.cpu_s_per_gib.is_some(), "{phase:?}");
    }
    // The sidecars' imports went through this process: it accepted them with a 202.
    for phase in &report.phases[2..4] {
        assert!(phase.accepted.is_some(), "{phase:?}");
    }
    // The fake target does not offer upstream's glance-download.
    let upstream = &report.phases[4];
    let reason = upstream.not_offered.as_deref().unwrap();
    assert!(reason.contains("GET /v2/info/import"), "{reason}");
    assert!(upstream.mb_per_s.is_none());
    assert!(matches!(
        report.samples[0].transfers[3],
        Outcome::NotOffered { .. }
    ));
    let ratio = |name: &str| {
        report
            .ratios
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .median
    };
    assert!(ratio("sidecar_upload/glance_put").is_some());
    assert!(ratio("sidecar_upload/upstream").is_none());
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
    let table = report.table();
    assert!(table.contains("(e) upstream glance-download"), "{table}");
    assert!(table.contains("not offered"), "{table}");
    let json = report.to_json();
    assert_eq!(json["target"], "cloud");
    assert_eq!(json["phases"][4]["mb_per_s"], Value::Null);
    // Source and targets alike are gone.
    assert!(world.images("REGION1").is_empty());
    assert!(world.images("REGION2").is_empty());
    // The password never reaches the output.
    assert!(!table.contains(PASSWORD) && !json.to_string().contains(PASSWORD));
    assert!(!lines.iter().any(|l| l.contains(PASSWORD)));
}

#[test]
fn an_existing_source_image_is_copied_and_kept() {
    let world = World::start();
    let source = world.existing_source();
    let (report, _) = world.bench(Some(&source));
    let report = report.unwrap();
    assert!(!report.setup.source_created);
    assert_eq!(report.setup.disk_format, "qcow2");
    assert_eq!(world.images("REGION1"), [source]);
    assert!(world.images("REGION2").is_empty());
}

#[test]
fn a_failing_phase_fails_the_bench_and_still_cleans_up() {
    let world = World::start();
    let source = world.existing_source();
    world
        .cloud
        .region("REGION1")
        .set_fault(&source, Fault::Status(500));
    let (report, _) = world.bench(Some(&source));
    let error = report.unwrap_err();
    assert!(
        matches!(&error, BenchError::Phase { phase, .. } if phase.starts_with("(b)")),
        "{error}"
    );
    assert!(error.to_string().contains("500"), "{error}");
    // The target image made for (b) was deleted; the source was not the bench's to delete.
    assert!(world.images("REGION2").is_empty());
    assert_eq!(world.images("REGION1"), [source]);
}

#[test]
fn an_unreachable_cloud_is_a_clear_error() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let auth_url = format!("http://{}/v3", closed.local_addr().unwrap());
    drop(closed);
    let env = Environment::from_vars(World::vars(&auth_url));
    let credentials = Credentials::load(None, &env).unwrap();
    let options = CloudOptions::from_flags(
        Some("REGION1"),
        Some("REGION2"),
        Some("http://127.0.0.1:9"),
        None,
        Some(SIZE),
        1,
        Limits {
            chunk_size: 1 << 20,
            buffer_bytes: 8 << 20,
        },
    )
    .unwrap();
    let error = run_cloud(
        &options,
        &credentials,
        &mut |_| {},
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(matches!(error, BenchError::Auth(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("could not be reached"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
}

fn bench_cli(args: &[&str], env: &[(String, String)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"))
        .arg("bench")
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_line_chooses_one_mode() {
    let (code, err) = bench_cli(&[], &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("--simulated") && err.contains("--from"),
        "{err}"
    );
    let (code, err) = bench_cli(&["--simulated", "--from", "REGION1"], &[]);
    assert_eq!(code, Some(64), "{err}");
    let (code, err) = bench_cli(&["--from", "REGION1", "--to", "REGION2"], &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--target-glance-url"), "{err}");
    let target = [
        "--from",
        "R1",
        "--to",
        "R2",
        "--target-glance-url",
        "http://127.0.0.1:9",
    ];
    let (code, err) = bench_cli(&target, &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("no credentials"), "{err}");
}

#[test]
fn the_command_fails_plainly_when_keystone_is_down() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let auth_url = format!("http://{}/v3", closed.local_addr().unwrap());
    drop(closed);
    let target = [
        "--from",
        "R1",
        "--to",
        "R2",
        "--target-glance-url",
        "http://127.0.0.1:9",
    ];
    let (code, err) = bench_cli(&target, &World::vars(&auth_url));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bench failed: signing in failed"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

/// `bench --small` on the simulated cloud: the fake Glance offers no glance-download, so the
/// sidecar in this process is the only contender; it is measured with both tokens in every run,
/// every time is in order (202, then verified `active`, then the task's end), and every image the
/// bench made is deleted.
#[test]
fn the_small_image_bench_times_each_import_and_deletes_every_image() {
    let world = World::start();
    let before = world.images("REGION2");
    let mut options = world.options(None);
    options.runs = 2;
    let mut lines = Vec::new();
    let report = run_small(
        &options,
        &world.credentials(),
        None,
        &mut |line| lines.push(line.to_string()),
        CancellationToken::new(),
    )
    .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("does not offer glance-download")),
        "{lines:?}"
    );
    assert_eq!(report.contenders, ["sidecar (this build)"]);
    assert_eq!(report.size, SIZE);
    let uses: Vec<(usize, TokenUse)> = report.samples.iter().map(|s| (s.run, s.token)).collect();
    assert_eq!(
        uses,
        [
            (1, TokenUse::Cached),
            (1, TokenUse::Fresh),
            (2, TokenUse::Cached),
            (2, TokenUse::Fresh)
        ]
    );
    for sample in &report.samples {
        assert!(sample.accepted > 0.0, "{sample:?}");
        assert!(sample.accepted <= sample.active, "{sample:?}");
        assert!(sample.active <= sample.done, "{sample:?}");
    }
    assert!(report.ratios().is_empty());
    let json = report.to_json();
    assert_eq!(json["summary"].as_array().map(Vec::len), Some(2));
    assert!(report.table().contains("sidecar (this build)"));
    assert_eq!(world.images("REGION2"), before);
    assert!(world.images("REGION1").is_empty());
}

/// `bench --passthrough` on the simulated cloud, with the sidecar's own server in front of
/// REGION2's Glance: every call is measured both ways, the sidecar's way did go through the
/// sidecar, and every image the bench made is deleted.
#[test]
fn the_passthrough_bench_measures_both_ways_and_deletes_every_image() {
    use glance_download_sidecar::api::{App, Server};
    use glance_download_sidecar::config::Config;
    use glance_download_sidecar::tools::bench::cloud::{
        run_passthrough, Call, PassOptions, Way, WARM_UPS,
    };
    use std::sync::atomic::Ordering;

    let world = World::start();
    let glance = world.cloud.region("REGION2").url();
    let config = Config {
        bind: ([127, 0, 0, 1], 0).into(),
        glance_url: glance.clone(),
        auth_url: world.cloud.auth_url(),
        task_journal: None,
        ..Config::default()
    };
    let sidecar = world
        .rt
        .block_on(Server::bind(
            App::new(config).unwrap(),
            ([127, 0, 0, 1], 0).into(),
        ))
        .unwrap();
    let options = PassOptions::new(Some(&glance), Some(&sidecar.url()), SIZE, 4, 2).unwrap();
    let mut lines = Vec::new();
    let report = run_passthrough(
        &options,
        &world.credentials(),
        &mut |line| lines.push(line.to_string()),
        CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(report.small.len(), 4);
    for (call, way, values) in &report.small {
        assert_eq!(values.len(), 4, "{call:?} {way:?}");
        assert!(values.iter().all(|s| *s > 0.0), "{call:?} {way:?}");
    }
    assert_eq!(report.data.len(), 8, "2 runs × 2 ways × PUT and GET");
    assert!(report.data.iter().all(|s| s.bytes == SIZE));
    for call in [Call::GetFile, Call::PutFile] {
        assert!(report.rate_ratio(call).is_some(), "{call:?}");
    }
    assert!(report.latency(Call::Show, Way::Sidecar).is_some());
    // The sidecar's way went through it: 2 uploads, 2 downloads, and the small calls.
    let proxied = sidecar.app.metrics.proxied_requests.load(Ordering::Relaxed);
    assert_eq!(proxied as usize, 2 + 2 + 2 * (WARM_UPS + 4));
    assert!(
        lines.iter().any(|l| l.contains("PUT /file Sidecar")),
        "{lines:?}"
    );
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
    assert!(world.images("REGION2").is_empty());
    let json = report.to_json();
    assert_eq!(json["goals"].as_array().unwrap().len(), 4);
    assert!(!json.to_string().contains(PASSWORD));
    world
        .rt
        .block_on(sidecar.shutdown(std::time::Duration::ZERO));
}

#[test]
fn the_passthrough_bench_needs_both_urls() {
    let glance = ["--passthrough", "--target-glance-url", "http://127.0.0.1:9"];
    let (code, err) = bench_cli(&glance, &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--sidecar-url"), "{err}");
    let (code, err) = bench_cli(&["--sidecar-url", "http://127.0.0.1:9"], &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--small or --passthrough"), "{err}");
}
