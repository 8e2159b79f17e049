//! Bounded under a hostile tenant: a flood of failing imports keeps the retained tasks and the
//! task journal within their bounds, a restart replays the journal within them, and recovery
//! trusts nothing in the journal it would not have written itself.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::glance::{Glance, ImageId};
use glance_download_sidecar::journal::{Entry, Journal, Revert};
use glance_download_sidecar::keystone::{Keystone, ServiceCredentials};
use glance_download_sidecar::recovery::{self, Scope};
use glance_download_sidecar::tasks::{TaskRecord, Tasks};
use glance_download_sidecar::tools::sim::{Cloud, ImageSpec};
use serde_json::{json, Value};
use support::*;
use tokio::net::TcpListener;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gds-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until no import of `image` runs on the sidecar (bounded).
async fn wait_idle(h: &Harness, image: &str) {
    let id = ImageId::parse(image).unwrap();
    for _ in 0..10_000 {
        if !h.sidecar.app.tasks.is_running(&id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the import of {image} never ended");
}

const IMAGES: usize = 8;
const ROUNDS: usize = 250;
const JOURNAL_MAX: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failing_imports_stays_within_the_bounds_and_a_restart_replays_within_them() {
    let dir = temp_dir("flood");
    let journal = dir.join("tasks.jsonl");
    let h = Harness::with_config(|c| {
        c.task_journal = Some(journal.clone());
        c.max_tasks_per_image = 5;
        c.max_tasks_per_project = 30;
        c.max_finished_tasks = 100;
        c.task_journal_max_bytes = JOURNAL_MAX;
        // A slot is released just after the image lock: room for both.
        c.max_concurrent_imports = 2 * IMAGES;
        c.max_imports_per_project = 2 * IMAGES;
    })
    .await;
    let src = h.source_image(1024, 1, json!({}));
    let mut targets = Vec::new();
    for _ in 0..IMAGES {
        targets.push(h.target_image().await);
    }
    let peak = Arc::new(AtomicUsize::new(0));
    let flood = targets.iter().map(|target| {
        let (h, src, journal, peak) = (&h, &src, &journal, peak.clone());
        async move {
            for _ in 0..ROUNDS {
                let answer = h
                    .api
                    .import_glance_download(target, "NO-SUCH-REGION", src)
                    .await
                    .unwrap();
                assert_eq!(answer.status, 202, "{answer:?}");
                wait_idle(h, target).await;
                let size = std::fs::metadata(journal).unwrap().len() as usize;
                peak.fetch_max(size, Ordering::Relaxed);
            }
        }
    });
    futures_join_all(flood).await;

    let imports = IMAGES * ROUNDS;
    let tasks = &h.sidecar.app.tasks;
    assert!(tasks.retained() <= 30, "{} retained", tasks.retained());
    let listed = h
        .api
        .get(&format!("/v2/images/{}/tasks", targets[0]))
        .await
        .unwrap()
        .json();
    let ours = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "api_image_import")
        .count();
    assert!(ours <= 6, "{ours} tasks listed for one image");
    let peak = peak.load(Ordering::Relaxed) as u64;
    assert!(peak <= 2 * JOURNAL_MAX, "journal peaked at {peak} bytes");
    let size = std::fs::metadata(&journal).unwrap().len();
    eprintln!(
        "{imports} failing imports: {} tasks retained, journal {size} bytes (peak {peak})",
        tasks.retained()
    );

    // A restart replays the journal within the same bounds.
    let config = h.config.clone();
    let Harness { sidecar, cloud, .. } = h;
    sidecar.shutdown(Duration::from_secs(5)).await;
    let app = reopen(config).await;
    app.start_recovery().unwrap();
    assert!(app.tasks.retained() <= 30);
    assert!(app.tasks.retained() > 0, "the newest tasks are back");
    let one = ImageId::parse(&targets[0]).unwrap();
    assert!(app.tasks.records_for_image(&one).len() <= 5);
    drop(app);
    drop(cloud);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs the futures to completion together.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut busy = false;
        for slot in pending.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    busy = true;
                }
            }
        }
        if busy {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_revert_is_journaled_before_the_patch() {
    let dir = temp_dir("synced");
    let journal = dir.join("tasks.jsonl");
    let h = Harness::with_config(|c| c.task_journal = Some(journal.clone())).await;
    // A source whose disk format the target refuses: the sync patch fails (400).
    let src = h.source().create_image(ImageSpec {
        disk_format: Some("no-such-format".into()),
        ..ImageSpec::active(
            PROJECT,
            glance_download_sidecar::tools::sim::ImageData::Generated {
                seed: 2,
                size: 1024,
            },
        )
    });
    let dst = h.target_image().await;
    let task = h.import_and_wait(&dst, &src).await;
    assert_eq!(task["status"], "failure", "{task}");
    let id = task["id"].as_str().unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["task_id"] == id)
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["started", "synced", "finished"]);
    assert_eq!(h.target_state(&dst)["disk_format"], "raw");
    std::fs::remove_dir_all(dir).unwrap();
}

const SERVICE: (&str, &str) = ("gds-service", "s3cret");

/// A journal holding one interrupted import of `image`, whose revert patch also holds ops no
/// sync produces, and which names `glance_url` as its Glance.
async fn interrupted_journal(path: &std::path::Path, task_id: &str, image: &str, glance_url: &str) {
    let journal = Journal::open(path).unwrap();
    journal
        .append(&Entry::Started {
            task_id: task_id.into(),
            image_id: image.into(),
            glance_url: glance_url.into(),
            task: TaskRecord::from_json(
                &json!({"id": task_id, "image_id": image, "owner": PROJECT, "status": "processing"}),
            )
            .unwrap(),
        })
        .await
        .unwrap();
    journal
        .append(&Entry::Synced {
            task_id: task_id.into(),
            revert: Revert::from_json(json!([
                {"op": "replace", "path": "/disk_format", "value": "raw"},
                {"op": "remove", "path": "/hw_disk_bus"},
                {"op": "remove", "path": "/hw_never_synced"},
                {"op": "replace", "path": "/visibility", "value": "public"},
                {"op": "add", "path": "/evil", "value": "x"},
            ])),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_trusts_only_what_the_sidecar_would_have_written() {
    let cloud = Cloud::start(&["REGION1", "REGION2"]).await.unwrap();
    cloud
        .keystone
        .add_user(SERVICE.0, SERVICE.1, "service", &["admin", "service"]);
    let target = cloud.region("REGION2");
    // A "Glance" named by the journal: it must never be contacted (it would get the token).
    let trap = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}", trap.local_addr().unwrap());
    let contacted = Arc::new(AtomicUsize::new(0));
    let counter = contacted.clone();
    tokio::spawn(async move {
        while trap.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });

    let synced = |task_id: &str| {
        let mut spec = ImageSpec::queued(PROJECT);
        spec.visibility = "private".into();
        spec.disk_format = Some("qcow2".into());
        spec.properties = json!({
            "hw_disk_bus": "scsi",
            "glance_download_task_id": task_id,
            "glance_download_task_status": "processing",
        })
        .as_object()
        .unwrap()
        .clone();
        spec
    };
    let ours = uuid::Uuid::new_v4().to_string();
    let mine = target.create_image(synced(&ours));
    // The second image's claim names a newer import: recovery must leave it alone.
    let newer = uuid::Uuid::new_v4().to_string();
    let stale = uuid::Uuid::new_v4().to_string();
    let taken = target.create_image(synced(&newer));

    let dir = temp_dir("recovery");
    let path = dir.join("tasks.jsonl");
    interrupted_journal(&path, &ours, &mine, &trap_url).await;
    interrupted_journal(&path, &stale, &taken, &trap_url).await;

    let journal = Journal::open(&path).unwrap();
    let tasks = Arc::new(Tasks::default());
    let interrupted = recovery::replay(&journal, &tasks).unwrap();
    assert_eq!(interrupted.len(), 2);
    let client = glance_download_sidecar::http::client(Duration::from_secs(5));
    let glance = Glance::new(client.clone(), Duration::from_secs(10));
    let keystone = Keystone::new(
        client,
        &cloud.auth_url(),
        Duration::from_secs(10),
        Duration::ZERO,
    );
    let creds = ServiceCredentials::password(SERVICE.0, SERVICE.1, "service", "Default", "Default");
    let scope = Scope {
        glance_url: target.url(),
        prefixes: vec!["hw_".into()],
        injected: Vec::new(),
    };
    recovery::restore(
        interrupted,
        glance,
        scope,
        keystone,
        Some(creds),
        tasks.clone(),
        journal,
    )
    .await;

    let restored = target.image(&mine).unwrap();
    assert_eq!(restored["disk_format"], "raw");
    assert!(restored.get("hw_disk_bus").is_none());
    assert_eq!(restored["visibility"], "private", "not a sync op");
    assert!(restored.get("evil").is_none(), "not a sync op");
    assert_eq!(restored["glance_download_task_status"], "failure");

    let untouched = target.image(&taken).unwrap();
    assert_eq!(untouched["disk_format"], "qcow2");
    assert_eq!(untouched["hw_disk_bus"], "scsi");
    assert_eq!(untouched["glance_download_task_status"], "processing");

    let image = ImageId::parse(&taken).unwrap();
    let record = &tasks.records_for_image(&image)[0];
    assert!(
        record["message"].as_str().unwrap().contains("left alone"),
        "{record}"
    );
    assert_eq!(
        contacted.load(Ordering::Relaxed),
        0,
        "the journal's URL was used"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sidecar_on_the_same_journal_refuses_to_start() {
    let dir = temp_dir("lock");
    let journal = dir.join("tasks.jsonl");
    let h = Harness::with_config(|c| c.task_journal = Some(journal.clone())).await;
    let error = match App::new(h.config.clone()) {
        Ok(_) => panic!("a second sidecar opened a journal in use"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains(&journal.display().to_string()), "{error}");
    assert!(error.contains("locked"), "{error}");
    let Harness { sidecar, .. } = h;
    let _: Server = sidecar;
    std::fs::remove_dir_all(dir).unwrap();
}

/// The sidecar restarted on the same journal. The old instance's connections close in the
/// background after its shutdown has returned, and hold its journal until they have (a restarted
/// process starts after the old one has exited): wait up to 5 s for that.
async fn reopen(config: glance_download_sidecar::config::Config) -> Arc<App> {
    use glance_download_sidecar::api::StartError;
    use glance_download_sidecar::journal::JournalError;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match App::new(config.clone()) {
            Err(StartError::Journal(JournalError::Locked { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.unwrap(),
        }
    }
}
