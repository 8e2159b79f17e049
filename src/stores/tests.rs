use serde_json::{json, Map, Value};

use super::*;

fn known() -> Vec<StoreInfo> {
    parse_info(&json!({"stores": [
        {"id": "local", "default": "true"},
        {"id": "fast", "description": "SSD"},
        {"id": "web", "read-only": "true"},
    ]}))
    .unwrap()
}

fn body(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn info_is_parsed_as_upstream_writes_it() {
    let stores = known();
    assert_eq!(stores.len(), 3);
    assert!(stores[0].default && !stores[0].read_only);
    assert!(!stores[1].default);
    assert!(stores[2].read_only);
    assert_eq!(parse_info(&json!({"stores": []})), None);
    assert_eq!(parse_info(&json!({})), None);
}

#[test]
fn neither_stores_nor_header_means_the_default_store() {
    let plan = resolve(&body(json!({})), None, &known()).unwrap();
    assert_eq!(plan.stores, ["local"]);
    assert!(plan.all_must_succeed, "upstream's default");
    assert_eq!(plan.backend(), json!(["local"]));
    let plan = resolve(&body(json!({"stores": []})), None, &known()).unwrap();
    assert_eq!(plan.stores, ["local"]);
    let plan = resolve(&body(json!({})), Some("fast"), &known()).unwrap();
    assert_eq!(plan.stores, ["fast"]);
}

#[test]
fn explicit_stores_keep_their_order_without_duplicates() {
    let b = body(json!({"stores": ["fast", "local", "fast"], "all_stores_must_succeed": false}));
    let plan = resolve(&b, None, &known()).unwrap();
    assert_eq!(plan.stores, ["fast", "local"]);
    assert_eq!(plan.first(), Some("fast"));
    assert_eq!(plan.rest(), ["local"]);
    assert!(!plan.all_must_succeed);
}

#[test]
fn all_stores_skips_read_only_ones() {
    let plan = resolve(&body(json!({"all_stores": true})), None, &known()).unwrap();
    assert_eq!(plan.stores, ["local", "fast"]);
}

#[test]
fn conflicting_or_unknown_stores_are_refused_with_upstreams_text() {
    let e = resolve(
        &body(json!({"all_stores": true, "stores": ["fast"]})),
        None,
        &known(),
    );
    assert_eq!(e, Err(StoreError::AllStoresWithOthers));
    let e = resolve(&body(json!({"all_stores": true})), Some("fast"), &known()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "All_stores parameter can't be used with x-image-meta-store header or stores parameter"
    );
    let e = resolve(&body(json!({"stores": ["fast"]})), Some("local"), &known()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Stores parameter and x-image-meta-store header can't be both specified"
    );
    assert!(!e.is_conflict());
    let e = resolve(&body(json!({"stores": ["local", "tape"]})), None, &known()).unwrap_err();
    assert_eq!(e.to_string(), "Store for identifier tape not found");
    assert!(e.is_conflict());
    let e = resolve(&body(json!({"stores": ["web"]})), None, &known()).unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly(_)));
    let e = resolve(&body(json!({"stores": "fast"})), None, &known()).unwrap_err();
    assert_eq!(e, StoreError::BadStores);
}

#[test]
fn single_store_plans_record_a_null_backend() {
    let plan = StorePlan::single();
    assert_eq!(plan.backend(), json!([null]));
    assert_eq!(plan.first(), None);
    assert!(plan.rest().is_empty());
}

#[test]
fn outcome_is_read_off_the_images_store_list() {
    let image = body(json!({"stores": "local,fast", "os_glance_failed_import": "slow"}));
    let planned = vec!["fast".to_string(), "slow".to_string()];
    let outcome = StoreOutcome::of(&planned, &image);
    assert_eq!(outcome.succeeded, ["fast"]);
    assert_eq!(outcome.failed, ["slow"]);
    assert_eq!(split_list(Some(&json!(""))), Vec::<String>::new());
}
