//! Unit tests of the task store, its records and their bounds.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::glance::ImageId;

fn new_task(image: &str) -> NewTask {
    NewTask {
        image_id: ImageId::parse(image).unwrap(),
        owner: "p".into(),
        user_id: "u".into(),
        request_id: "req-1".into(),
        input: json!({}),
    }
}

const IMAGE: &str = "c4705b36-b281-40f6-a01d-bf98883ead8e";

#[test]
fn one_import_per_image() {
    let tasks = Arc::new(Tasks::default());
    let lock = tasks.begin(new_task(IMAGE)).unwrap();
    assert!(tasks.begin(new_task(IMAGE)).is_err());
    lock.task.succeed(json!({}));
    drop(lock);
    let again = tasks.begin(new_task(IMAGE)).unwrap();
    drop(again);
    let listed = tasks.for_image(&ImageId::parse(IMAGE).unwrap());
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].status(), Status::Success);
    assert_eq!(
        listed[1].status(),
        Status::Failure,
        "a dropped lock fails its task"
    );
}

#[test]
fn json_shape_and_progress() {
    let tasks = Arc::new(Tasks::default());
    let lock = tasks.begin(new_task(IMAGE)).unwrap();
    lock.task.start(1000);
    lock.task.bytes_done.store(250, Ordering::Relaxed);
    let v = lock.task.to_json();
    assert_eq!(v["type"], "api_image_import");
    assert_eq!(v["status"], "processing");
    assert_eq!(v["request_id"], "req-1");
    assert_eq!(v["progress"]["bytes_done"], 250);
    assert_eq!(v["progress"]["bytes_total"], 1000);
    assert!(v["expires_at"].is_null());
    lock.task.fail("boom");
    let v = lock.task.to_json();
    assert_eq!(v["message"], "boom");
    assert!(v["expires_at"].is_string());
    assert_eq!(
        timestamp(time::macros::datetime!(2020-12-18 05:20:38 UTC)),
        "2020-12-18T05:20:38.000000"
    );
}

fn image(n: usize) -> String {
    format!("c4705b36-b281-40f6-a01d-{n:012}")
}

fn finish(tasks: &Arc<Tasks>, image: &str, owner: &str) {
    let mut new = new_task(image);
    new.owner = owner.into();
    let lock = tasks.begin(new).unwrap();
    lock.task.fail("unknown region");
}

#[test]
fn finished_tasks_are_bounded_per_image_per_project_and_in_all() {
    let limits = Limits {
        per_image: 3,
        per_project: 10,
        total: 25,
    };
    let tasks = Arc::new(Tasks::new(limits));
    for _ in 0..50 {
        finish(&tasks, &image(1), "p1");
    }
    let one = ImageId::parse(&image(1)).unwrap();
    assert_eq!(tasks.for_image(&one).len(), 3);
    assert_eq!(tasks.records_for_image(&one).len(), 3);
    for n in 0..40 {
        finish(&tasks, &image(100 + n), "p2");
    }
    assert_eq!(tasks.retained(), 13, "3 of p1's image, 10 of p2");
    for n in 0..40 {
        finish(&tasks, &image(200 + n), &format!("p{n}"));
    }
    assert_eq!(tasks.retained(), 25);
    // A running task is listed beside the finished ones, newest last.
    let lock = tasks.begin(new_task(&image(1))).unwrap();
    let records = tasks.records_for_image(&one);
    assert!(records.len() <= 4);
    assert_eq!(records.last().unwrap()["id"], lock.task.id.as_str());
    drop(lock);
    // Restored records share the same bounds.
    for n in 0..30 {
        let mut record = tasks.records_for_image(&one)[0].clone();
        record["id"] = Value::from(format!("restored-{n}"));
        tasks.restore(TaskRecord::from_json(&record).unwrap());
    }
    assert_eq!(tasks.records_for_image(&one).len(), 3);
    assert_eq!(tasks.retained(), 25);
}

#[test]
fn a_padded_import_body_is_not_recorded() {
    let padding = Value::from(vec![0; 30_000]);
    let record = json!({
        "id": "t", "image_id": IMAGE, "owner": "p", "status": "failure",
        "message": "m".repeat(100_000),
        "input": {"image_id": IMAGE, "backend": [null], "import_req": {
            "method": {"name": "glance-download", "glance_region": "R".repeat(10_000),
                       "glance_image_id": IMAGE, "pad": padding.clone()},
            "stores": vec!["s".repeat(1000); 200], "pad": padding}},
        "verification": {"pad": vec!["x"; 10_000]},
    });
    let bounded = TaskRecord::from_json(&record).unwrap().to_json();
    let size = bounded.to_string().len();
    assert!(size < 8 * 1024, "{size} bytes");
    assert!(!bounded.to_string().contains("pad"));
    assert_eq!(
        bounded["input"]["import_req"]["stores"]
            .as_array()
            .unwrap()
            .len(),
        MAX_STORES
    );
    assert!(bounded["verification"].is_null());
    assert_eq!(bounded["message"].as_str().unwrap().len(), MAX_MESSAGE);
}

#[test]
fn a_running_task_is_served_in_glances_shape() {
    let tasks = Arc::new(Tasks::default());
    let input = json!({
        "image_id": IMAGE,
        "import_req": import_request(IMAGE, "REGION1", "public", Some(&["fast".into()]), None, Some(true)),
        "backend": ["fast"],
    });
    let lock = tasks
        .begin(NewTask {
            input: input.clone(),
            ..new_task(IMAGE)
        })
        .unwrap();
    lock.task.start(1000);
    lock.task.note("Copying data");
    let v = lock.task.to_json();
    // Every field as Glance names it, with the recorded input served as it was given.
    let expected = json!({
        "id": lock.task.id,
        "type": "api_image_import",
        "status": "processing",
        "owner": "p",
        "image_id": IMAGE,
        "request_id": "req-1",
        "user_id": "u",
        "input": input,
        "result": null,
        "message": "Copying data",
        "created_at": v["created_at"],
        "updated_at": v["updated_at"],
        "expires_at": null,
        "deleted_at": null,
        "deleted": false,
        "progress": {
            "bytes_done": 0,
            "bytes_total": 1000,
            "rate_bytes_per_sec": 0,
            "eta_seconds": null,
        },
        "verification": null,
    });
    assert_eq!(v, expected);
    assert!(v["created_at"].is_string());
    assert_eq!(
        input["import_req"],
        json!({"method": {"name": "glance-download", "glance_image_id": IMAGE,
                          "glance_region": "REGION1", "glance_service_interface": "public"},
               "stores": ["fast"], "all_stores_must_succeed": true})
    );
}

#[test]
fn a_record_is_read_field_by_field() {
    let record = TaskRecord::from_json(&json!({
        "id": "t", "status": "weird", "owner": 5, "image_id": IMAGE,
        "input": {"backend": ["fast", 3, null], "import_req": {
            "method": {"glance_region": "R", "glance_image_id": IMAGE},
            "stores": ["fast", 3, "local"], "all_stores": "yes"}},
        "progress": {"bytes_done": 10, "bytes_total": "many"},
    }))
    .unwrap();
    assert_eq!(record.status, Status::Failure);
    assert_eq!(record.owner, None);
    assert_eq!(record.image_id.as_deref(), Some(IMAGE));
    assert_eq!(record.input.backend, [Some("fast".into()), None, None]);
    let request = &record.input.import_req;
    assert_eq!(request.stores, Some(vec!["fast".into(), "local".into()]));
    assert_eq!(request.all_stores, None);
    assert_eq!(request.method.glance_region, "R");
    assert_eq!(request.method.glance_service_interface, "");
    assert_eq!(record.progress.bytes_done, 10);
    assert_eq!(record.progress.bytes_total, 0);
    let v = record.to_json();
    assert_eq!(v["type"], "api_image_import");
    assert_eq!(
        v["input"]["import_req"]["method"]["name"],
        "glance-download"
    );
    assert!(TaskRecord::from_json(&json!({"status": "success"})).is_none());
}
