//! Heap held per retained task, counted by a global allocator: a task records only the known
//! import fields, so a client padding its import body to 60 KiB costs it nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use glance_download_sidecar::glance::ImageId;
use glance_download_sidecar::tasks::{import_request, Limits, NewTask, TaskRecord, Tasks};
use serde_json::{json, Value};

/// Counts live heap bytes. Implementing `GlobalAlloc` is unsafe by definition; this one only
/// forwards to the system allocator.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TASKS: usize = 200;

/// A glance-download body padded to about 60 KiB with an array of zeros.
fn padded_body() -> Vec<u8> {
    let pad = vec![0u8; 30 * 1024];
    serde_json::to_vec(&json!({
        "method": {"name": "glance-download", "glance_region": "REGION1",
                   "glance_image_id": "c4705b36-b281-40f6-a01d-bf98883ead8e"},
        "pad": pad,
    }))
    .unwrap()
}

/// Heap bytes per finished task kept, with `input` made by `input`.
fn per_task(input: impl Fn() -> Value) -> isize {
    let tasks = Arc::new(Tasks::new(Limits {
        per_image: TASKS,
        per_project: TASKS,
        total: TASKS,
    }));
    let before = LIVE.load(Ordering::Relaxed);
    for n in 0..TASKS {
        let image = ImageId::parse(&format!("c4705b36-b281-40f6-a01d-{n:012}")).unwrap();
        let lock = tasks
            .begin(NewTask {
                image_id: image.clone(),
                owner: "0123456789abcdef0123456789abcdef".into(),
                user_id: "0123456789abcdef0123456789abcdef".into(),
                request_id: format!("req-{}", uuid::Uuid::new_v4()),
                input: json!({"image_id": image.as_str(), "import_req": input(), "backend": [null]}),
            })
            .unwrap();
        lock.task.fail("Unknown region NO-SUCH-REGION");
    }
    assert_eq!(tasks.retained(), TASKS);
    (LIVE.load(Ordering::Relaxed) - before) / TASKS as isize
}

#[test]
fn a_padded_import_body_costs_a_task_nothing() {
    let body = padded_body();
    assert!(body.len() > 60 * 1024);
    // As the task recorded it before: the whole body.
    let whole = per_task(|| serde_json::from_slice(&body).unwrap());
    // As it records it now: the known fields only.
    let known = per_task(|| {
        import_request(
            "c4705b36-b281-40f6-a01d-bf98883ead8e",
            "REGION1",
            "public",
            None,
            None,
            None,
        )
    });
    eprintln!(
        "heap per retained task, {} B body: whole body {whole} B, known fields {known} B",
        body.len()
    );
    // Records read back from the journal, as a restart keeps them.
    let tasks = Tasks::new(Limits {
        per_image: TASKS,
        per_project: TASKS,
        total: TASKS,
    });
    let before = LIVE.load(Ordering::Relaxed);
    for n in 0..TASKS {
        let padded: Value = serde_json::from_slice(&body).unwrap();
        let record = TaskRecord::from_json(&json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "image_id": format!("c4705b36-b281-40f6-a01d-{n:012}"),
            "owner": "0123456789abcdef0123456789abcdef",
            "status": "failure",
            "message": "Unknown region NO-SUCH-REGION",
            "input": {"import_req": padded},
        }));
        tasks.restore(record.unwrap());
    }
    let restored = (LIVE.load(Ordering::Relaxed) - before) / TASKS as isize;
    eprintln!("heap per task read back from an older journal with that body: {restored} B");
    assert!(known < 4 * 1024, "{known} bytes per task");
    assert!(restored < 8 * 1024, "{restored} bytes per restored task");
    assert!(whole > 100 * known);
}
