//! `sync --keep-id`, `--prune` and the image signature properties, against a simulated cloud:
//! REGION1 is the source, REGION2 has the sidecar in front of its Glance (glance-download) and
//! REGION3 is a plain Glance (`sync` streams).

use std::sync::Arc;
use std::time::Duration;

use glance_download_sidecar::api::Server;
use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::{Cloud, ImageData, ImageSpec};
use glance_download_sidecar::tools::sync::{
    self, Action, Credentials, Environment, Filters, Lines, Options, Prune, Summary,
    SIGNATURE_PROPERTIES, SOURCE_IMAGE_ID, SOURCE_REGION,
};
use serde_json::{json, Map, Value};
use sync_world::{Captured, PASSWORD, PROJECT, USER};

mod sync_world;

const OTHER: &str = "other-project";

struct World {
    cloud: Cloud,
    _sidecar: Server,
}

/// How one run is asked for.
#[derive(Default)]
struct Run<'a> {
    to: &'a str,
    ids: &'a [&'a str],
    filters: Filters,
    dry_run: bool,
    keep_id: bool,
    prune: Option<Prune>,
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

    fn credentials(&self) -> Credentials {
        let vars = [
            ("OS_AUTH_URL", self.cloud.auth_url()),
            ("OS_USERNAME", USER.to_string()),
            ("OS_PASSWORD", PASSWORD.to_string()),
            ("OS_PROJECT_NAME", PROJECT.to_string()),
            ("OS_USER_DOMAIN_NAME", "Default".to_string()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".to_string()),
        ];
        Credentials::load(None, &Environment::from_vars(vars)).unwrap()
    }

    /// An active source image in REGION1 of the test project.
    fn source(&self, name: &str, seed: u64, properties: &[(&str, &str)]) -> String {
        let spec = ImageSpec {
            name: Some(name.to_string()),
            disk_format: Some("qcow2".into()),
            properties: props(properties),
            ..ImageSpec::active(PROJECT, ImageData::Generated { seed, size: 4096 })
        };
        self.cloud.region("REGION1").create_image(spec)
    }

    /// An image put straight into `region`'s Glance.
    fn put(&self, region: &str, spec: ImageSpec) -> String {
        self.cloud.region(region).create_image(spec)
    }

    async fn run(&self, run: Run<'_>) -> (Summary, String) {
        let ids: Vec<String> = run.ids.iter().map(|s| s.to_string()).collect();
        let to = [run.to.to_string()];
        let mut options = Options::new("REGION1", &to, &ids, run.filters, 2, run.dry_run).unwrap();
        options.keep_id = run.keep_id;
        options.prune = run.prune;
        options.tuning.poll_interval = Duration::from_millis(20);
        let out = Captured::default();
        let observer = Arc::new(Lines::new(Box::new(out.clone())));
        let summary = sync::run(&options, &self.credentials(), observer)
            .await
            .unwrap();
        let text = out.text();
        (summary, text)
    }

    fn admin(&self, region: &str) -> ImageApi {
        let token = self
            .cloud
            .keystone
            .issue_token("admin", "admin", &["admin"]);
        ImageApi::new(&self.cloud.region(region).url(), &token)
    }

    async fn delete(&self, region: &str, id: &str) {
        let path = format!("/v2/images/{id}");
        let answer = self
            .admin(region)
            .call(
                http::Method::DELETE,
                &path,
                None,
                glance_download_sidecar::http::empty(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 204, "deleting {id}");
    }

    fn image(&self, region: &str, id: &str) -> Option<Value> {
        self.cloud.region(region).image(id)
    }

    /// Copies of `source` in `region`, hidden ones included, as an admin lists them.
    async fn copies(&self, region: &str, source: &str) -> Vec<Value> {
        let api = self.admin(region);
        let mut found = Vec::new();
        for path in [
            "/v2/images?limit=1000",
            "/v2/images?limit=1000&os_hidden=true",
        ] {
            let answer = api.get(path).await.unwrap();
            found.extend(
                answer.json()["images"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        found.retain(|i| i[SOURCE_IMAGE_ID] == source);
        found
    }
}

fn props(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect()
}

fn actions(summary: &Summary) -> Vec<(String, String, Action)> {
    summary
        .results
        .iter()
        .map(|r| (r.source_id.clone(), r.region.clone(), r.action))
        .collect()
}

fn named(glob: &str) -> Filters {
    Filters {
        name: Some(glob.into()),
        ..Filters::default()
    }
}

// === --keep-id ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_id_creates_each_copy_under_the_source_id_and_a_second_run_skips_it() {
    let w = World::start().await;
    let a = w.source("keep-a", 1, &[]);
    let ids = [a.as_str()];
    let run = || Run {
        to: "REGION2,REGION3",
        ids: &ids,
        keep_id: true,
        ..Run::default()
    };
    let (first, _) = w.run(run()).await;
    assert!(first.succeeded(), "{:?}", first.results);
    for result in &first.results {
        assert_eq!(result.action, Action::Copied);
        assert_eq!(result.target_id.as_deref(), Some(a.as_str()));
    }
    for region in ["REGION2", "REGION3"] {
        let copy = w.image(region, &a).expect("a copy under the source id");
        assert_eq!(copy[SOURCE_IMAGE_ID], a.as_str());
        assert_eq!(copy["status"], "active");
    }
    let (second, _) = w.run(run()).await;
    assert_eq!(second.count(Action::Skipped), 2, "{:?}", second.results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_id_never_overwrites_an_image_that_is_not_our_copy() {
    let w = World::start().await;
    let a = w.source("taken-a", 2, &[]);
    // REGION3: an image of our own project under that id, not a copy (no property).
    w.put(
        "REGION3",
        ImageSpec {
            id: Some(a.clone()),
            name: Some("someone else's".into()),
            ..ImageSpec::queued(PROJECT)
        },
    );
    // REGION2: another project's private image under that id, which the user cannot see.
    w.put(
        "REGION2",
        ImageSpec {
            id: Some(a.clone()),
            visibility: "private".into(),
            properties: props(&[(SOURCE_IMAGE_ID, &a), (SOURCE_REGION, "REGION1")]),
            ..ImageSpec::queued(OTHER)
        },
    );
    let before = (w.image("REGION2", &a), w.image("REGION3", &a));
    for dry_run in [true, false] {
        let (summary, text) = w
            .run(Run {
                to: "REGION2,REGION3",
                ids: &[a.as_str()],
                keep_id: true,
                dry_run,
                ..Run::default()
            })
            .await;
        let by_region = |region: &str| {
            summary
                .results
                .iter()
                .find(|r| r.region == region)
                .cloned()
                .unwrap()
        };
        let r3 = by_region("REGION3");
        assert_eq!(r3.action, Action::Failed, "dry run {dry_run}");
        let error = r3.error.unwrap();
        assert!(error.contains("id taken"), "{error}");
        assert!(error.contains("not a copy of this source"), "{error}");
        assert!(text.contains("FAILED"), "{text}");
        if !dry_run {
            let r2 = by_region("REGION2");
            assert_eq!(r2.action, Action::Failed);
            let error = r2.error.unwrap();
            assert!(
                error.contains("409") && error.contains("deleted image"),
                "{error}"
            );
            assert_eq!(summary.to_json()["totals"]["failed"], 2);
        }
    }
    assert_eq!((w.image("REGION2", &a), w.image("REGION3", &a)), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_id_reports_the_id_of_a_deleted_image_as_taken() {
    let w = World::start().await;
    let a = w.source("deleted-a", 3, &[]);
    let ids = [a.as_str()];
    let run = || Run {
        to: "REGION3",
        ids: &ids,
        keep_id: true,
        ..Run::default()
    };
    let (first, _) = w.run(run()).await;
    assert_eq!(first.count(Action::Copied), 1, "{:?}", first.results);
    w.delete("REGION3", &a).await;
    let (second, _) = w.run(run()).await;
    assert_eq!(second.results[0].action, Action::Failed);
    let error = second.results[0].error.clone().unwrap();
    assert!(error.contains("deleted image"), "{error}");
    assert!(w.image("REGION3", &a).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_id_does_not_count_a_copy_under_another_id() {
    let w = World::start().await;
    let a = w.source("renamed-a", 4, &[]);
    let (plain, _) = w
        .run(Run {
            to: "REGION3",
            ids: &[a.as_str()],
            ..Run::default()
        })
        .await;
    let old = plain.results[0].target_id.clone().unwrap();
    assert_ne!(old, a);
    let (kept, _) = w
        .run(Run {
            to: "REGION3",
            ids: &[a.as_str()],
            keep_id: true,
            ..Run::default()
        })
        .await;
    assert_eq!(kept.results[0].action, Action::Copied);
    assert_eq!(kept.results[0].target_id.as_deref(), Some(a.as_str()));
    assert!(w.image("REGION3", &old).is_some(), "the older copy stays");
}

// === signatures ===

const SIGNATURE: [(&str, &str); 4] = [
    ("img_signature", "c2lnbmF0dXJl"),
    ("img_signature_hash_method", "SHA-256"),
    ("img_signature_key_type", "RSA-PSS"),
    (
        "img_signature_certificate_uuid",
        "8c3e6c45-3b4f-4b0f-9f38-7a3c2a7e1d11",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_properties_are_carried_onto_every_copy() {
    let w = World::start().await;
    assert_eq!(SIGNATURE.map(|(k, _)| k), SIGNATURE_PROPERTIES);
    // Without the certificate id Glance does not verify, so the data is taken.
    let values = &SIGNATURE[..3];
    let a = w.source("signed", 5, values);
    let (summary, _) = w
        .run(Run {
            to: "REGION2,REGION3",
            ids: &[a.as_str()],
            ..Run::default()
        })
        .await;
    assert_eq!(summary.count(Action::Copied), 2, "{:?}", summary.results);
    for result in &summary.results {
        let copy = w
            .image(&result.region, result.target_id.as_deref().unwrap())
            .unwrap();
        for (key, value) in values {
            assert_eq!(copy[*key], *value, "{key} in {}", result.region);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_signature_properties_are_set_before_the_data_so_glance_verifies_it() {
    let w = World::start().await;
    let a = w.source("signed-4", 6, &SIGNATURE);
    let (summary, _) = w
        .run(Run {
            to: "REGION2,REGION3",
            ids: &[a.as_str()],
            ..Run::default()
        })
        .await;
    // Glance (with no key manager holding the certificate) refuses the data of both copies.
    assert_eq!(summary.count(Action::Failed), 2, "{:?}", summary.results);
    let streamed = summary
        .results
        .iter()
        .find(|r| r.region == "REGION3")
        .unwrap();
    let error = streamed.error.as_deref().unwrap();
    assert!(error.contains("Signature verification failed"), "{error}");
    for result in &summary.results {
        let copy = w
            .image(&result.region, result.target_id.as_deref().unwrap())
            .unwrap();
        assert_eq!(copy["status"], "queued", "{copy}");
        for (key, value) in SIGNATURE {
            assert_eq!(copy[key], value, "{key} in {}", result.region);
        }
    }
}

// === --prune ===

/// Sources `a` (kept), `b` (deleted from the source) and `c` (no longer matching the filter),
/// all copied to REGION3; plus images in REGION3 that prune must never touch.
struct PruneSetup {
    a: String,
    b: String,
    c: String,
    untouchable: Vec<String>,
}

async fn prune_setup(w: &World) -> PruneSetup {
    let a = w.source("p-a", 11, &[]);
    let b = w.source("p-b", 12, &[]);
    let c = w.source("p-c", 13, &[]);
    let (summary, _) = w
        .run(Run {
            to: "REGION3",
            filters: named("p-*"),
            ..Run::default()
        })
        .await;
    assert_eq!(summary.count(Action::Copied), 3, "{:?}", summary.results);
    let untouchable = vec![
        // Ours by project, but no property.
        w.put(
            "REGION3",
            ImageSpec {
                name: Some("p-hand-made".into()),
                ..ImageSpec::queued(PROJECT)
            },
        ),
        // Another project's image claiming to be a copy of b, visible to everyone.
        w.put(
            "REGION3",
            ImageSpec {
                visibility: "public".into(),
                properties: props(&[(SOURCE_IMAGE_ID, &b), (SOURCE_REGION, "REGION1")]),
                ..ImageSpec::queued(OTHER)
            },
        ),
        // Our copy of b, but from another source region.
        w.put(
            "REGION3",
            ImageSpec {
                properties: props(&[(SOURCE_IMAGE_ID, &b), (SOURCE_REGION, "REGION9")]),
                ..ImageSpec::queued(PROJECT)
            },
        ),
    ];
    w.delete("REGION1", &b).await;
    let renamed = json!([{"op": "replace", "path": "/name", "value": "q-c"}]);
    let answer = w.admin("REGION1").patch(&c, &renamed).await.unwrap();
    assert!(answer.status.is_success());
    PruneSetup {
        a,
        b,
        c,
        untouchable,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_only_our_copies_of_sources_no_longer_selected_dry_run_first() {
    let w = World::start().await;
    let s = prune_setup(&w).await;
    let copy_of = |copies: Vec<Value>| copies[0]["id"].as_str().unwrap().to_string();
    let copy_b = copy_of(
        w.copies("REGION3", &s.b)
            .await
            .into_iter()
            .filter(|i| i["owner"] == PROJECT && i[SOURCE_REGION] == "REGION1")
            .collect(),
    );
    let copy_c = copy_of(w.copies("REGION3", &s.c).await);
    let run = |dry_run| Run {
        to: "REGION3",
        filters: named("p-*"),
        prune: Some(Prune::Delete),
        dry_run,
        ..Run::default()
    };

    let (dry, text) = w.run(run(true)).await;
    let mut expected = vec![
        (s.a.clone(), "REGION3".to_string(), Action::Skipped),
        (s.b.clone(), "REGION3".to_string(), Action::WouldPrune),
        (s.c.clone(), "REGION3".to_string(), Action::WouldPrune),
    ];
    let mut got = actions(&dry);
    got.sort_by(|x, y| x.0.cmp(&y.0));
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got, expected);
    assert_eq!(dry.to_json()["totals"]["prune"], 2);
    assert!(text.contains("would prune"), "{text}");
    assert!(w.image("REGION3", &copy_b).is_some() && w.image("REGION3", &copy_c).is_some());

    let (done, text) = w.run(run(false)).await;
    assert!(done.succeeded(), "{:?}", done.results);
    assert_eq!(done.count(Action::Pruned), 2);
    let json = done.to_json();
    assert_eq!(json["totals"]["pruned"], 2);
    let pruned: Vec<&Value> = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "pruned")
        .collect();
    assert!(pruned.iter().any(|r| r["target_id"] == copy_b.as_str()));
    assert!(text.contains("pruned"), "{text}");
    assert!(w.image("REGION3", &copy_b).is_none());
    assert!(w.image("REGION3", &copy_c).is_none());
    assert_eq!(w.copies("REGION3", &s.a).await.len(), 1);
    for id in &s.untouchable {
        assert!(w.image("REGION3", id).is_some(), "{id} was touched");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_hide_hides_instead_of_deleting() {
    let w = World::start().await;
    let s = prune_setup(&w).await;
    let run = |dry_run| Run {
        to: "REGION3",
        filters: named("p-*"),
        prune: Some(Prune::Hide),
        dry_run,
        ..Run::default()
    };
    let (dry, _) = w.run(run(true)).await;
    assert_eq!(dry.count(Action::WouldHide), 2, "{:?}", dry.results);
    assert_eq!(dry.to_json()["results"][1]["action"], "hide");
    let copy_c = w.copies("REGION3", &s.c).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(w.image("REGION3", &copy_c).unwrap()["os_hidden"], false);

    let (done, text) = w.run(run(false)).await;
    assert_eq!(done.count(Action::Hidden), 2, "{:?}", done.results);
    assert_eq!(done.to_json()["totals"]["hidden"], 2);
    assert!(text.contains("hid "), "{text}");
    assert_eq!(w.image("REGION3", &copy_c).unwrap()["os_hidden"], true);
    for id in &s.untouchable {
        assert_eq!(w.image("REGION3", id).unwrap()["os_hidden"], false);
    }
    // Hidden copies are not listed by default, so a third run has nothing left to hide.
    let (again, _) = w.run(run(false)).await;
    assert_eq!(again.count(Action::Hidden), 0, "{:?}", again.results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_with_ids_only_prunes_copies_of_those_ids_whose_source_is_gone() {
    let w = World::start().await;
    let s = prune_setup(&w).await;
    // c is renamed but still there, b is gone; a is not named at all.
    let (summary, _) = w
        .run(Run {
            to: "REGION3",
            ids: &[s.b.as_str(), s.c.as_str()],
            prune: Some(Prune::Delete),
            ..Run::default()
        })
        .await;
    let pruned: Vec<&str> = summary
        .results
        .iter()
        .filter(|r| r.action == Action::Pruned)
        .map(|r| r.source_id.as_str())
        .collect();
    assert_eq!(pruned, vec![s.b.as_str()]);
    assert_eq!(w.copies("REGION3", &s.c).await.len(), 1);
    assert_eq!(w.copies("REGION3", &s.a).await.len(), 1);
    for id in &s.untouchable {
        assert!(w.image("REGION3", id).is_some(), "{id} was touched");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_with_filters_that_select_nothing_prunes_nothing() {
    let w = World::start().await;
    let s = prune_setup(&w).await;
    let (summary, _) = w
        .run(Run {
            to: "REGION3",
            filters: named("no-such-*"),
            prune: Some(Prune::Delete),
            ..Run::default()
        })
        .await;
    assert!(summary.results.is_empty(), "{:?}", summary.results);
    assert_eq!(w.copies("REGION3", &s.a).await.len(), 1);
    assert_eq!(w.copies("REGION3", &s.c).await.len(), 1);
}
