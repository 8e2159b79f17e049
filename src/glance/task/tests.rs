use std::sync::Mutex;

use serde_json::json;

use super::*;

fn task(id: &str, request_id: &str, status: &str) -> Value {
    json!({"id": id, "type": "api_image_import", "request_id": request_id, "status": status})
}

fn pace() -> Pace {
    Pace {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
        appear_within: Duration::from_secs(60),
        end_within: None,
        failed_lists: 0,
    }
}

/// A listing that answers `lists` in turn, then the last one again.
fn scripted(
    lists: Vec<Result<Value, &'static str>>,
) -> impl FnMut() -> std::future::Ready<Result<Vec<GlanceTask>, &'static str>> {
    let lists = Mutex::new(lists);
    move || {
        let mut lists = lists.lock().unwrap();
        let next = if lists.len() > 1 {
            lists.remove(0)
        } else {
            lists[0].clone()
        };
        std::future::ready(next.map(|tasks| GlanceTask::list(&json!({ "tasks": tasks }))))
    }
}

#[test]
fn a_task_is_matched_by_its_request_id_only() {
    let of = |doc: Value| GlanceTask::list(&json!({ "tasks": [doc] })).remove(0);
    assert!(of(task("t", "req-1", "processing")).started_by("req-1"));
    // A caller-chosen id is recorded as sent; the answer prefixes it.
    assert!(of(task("t", "abc", "processing")).started_by("req-abc"));
    assert!(!of(task("t", "req-2", "processing")).started_by("req-1"));
    assert!(!of(task("t", "", "processing")).started_by("req-"));
    assert!(!of(json!({"id": "t"})).started_by("req-1"));
    assert!(!of(json!({"request_id": null})).started_by("req-1"));
}

#[test]
fn fields_of_another_type_read_as_absent() {
    let tasks = GlanceTask::list(&json!({"tasks": [
        {"id": 5, "status": null, "request_id": ["x"], "message": {}, "progress": {"bytes_done": "7"}},
        "not a task",
        {"id": "b", "status": "success", "message": "done", "progress": {"bytes_done": 7}},
    ]}));
    assert_eq!(tasks.len(), 2);
    assert_eq!(
        tasks[0],
        GlanceTask {
            progress: Some(Progress::default()),
            ..Default::default()
        }
    );
    assert!(!tasks[0].has_ended());
    assert_eq!(tasks[1].status, TaskStatus::Success);
    assert_eq!(tasks[1].reason(), Some("done"));
    assert_eq!(
        tasks[1].progress.as_ref().and_then(|p| p.bytes_done),
        Some(7)
    );
    assert!(GlanceTask::list(&json!({"tasks": "none"})).is_empty());
}

#[tokio::test]
async fn a_task_is_followed_to_its_end_past_other_tasks() {
    let lists = vec![
        Ok(json!([])),
        Ok(json!([
            task("other", "req-2", "success"),
            task("ours", "req-1", "processing")
        ])),
        Ok(json!([
            task("other", "req-2", "success"),
            task("ours", "req-1", "failure")
        ])),
    ];
    let mut seen = Vec::new();
    let ended = follow_task("req-1", pace(), scripted(lists), |t| seen.push(t.status))
        .await
        .unwrap();
    assert_eq!(
        (ended.id.as_str(), ended.status),
        ("ours", TaskStatus::Failure)
    );
    assert_eq!(seen, [TaskStatus::Processing]);
}

#[tokio::test]
async fn following_fails_rather_than_guess() {
    let none = follow_task("", pace(), scripted(vec![Ok(json!([]))]), |_| {}).await;
    assert!(matches!(none, Err(FollowError::NoRequestId)));
    let twice = json!([
        task("a", "req-1", "processing"),
        task("b", "req-1", "processing")
    ]);
    let several = follow_task("req-1", pace(), scripted(vec![Ok(twice)]), |_| {}).await;
    assert!(matches!(several, Err(FollowError::Several)));
    let quick = Pace {
        appear_within: Duration::ZERO,
        ..pace()
    };
    let other = json!([task("other", "req-2", "processing")]);
    let missing = follow_task("req-1", quick, scripted(vec![Ok(other)]), |_| {}).await;
    assert!(matches!(missing, Err(FollowError::NotListed)));
    let bounded = Pace {
        end_within: Some(Duration::ZERO),
        ..pace()
    };
    let running = json!([task("ours", "req-1", "processing")]);
    let late = follow_task("req-1", bounded, scripted(vec![Ok(running)]), |_| {}).await;
    assert!(matches!(late, Err(FollowError::TimedOut(_))));
}

#[tokio::test]
async fn failed_listings_are_tolerated_up_to_the_pace() {
    let ended = json!([task("ours", "req-1", "success")]);
    let lists = vec![Err("down"), Err("down"), Ok(ended)];
    let tolerant = Pace {
        failed_lists: 2,
        ..pace()
    };
    assert!(
        follow_task("req-1", tolerant, scripted(lists.clone()), |_| {})
            .await
            .is_ok()
    );
    let strict = Pace {
        failed_lists: 1,
        ..pace()
    };
    let failed = follow_task("req-1", strict, scripted(lists), |_| {}).await;
    assert!(matches!(failed, Err(FollowError::List("down"))));
}
