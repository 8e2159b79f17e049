//! Image documents from a Glance (`GET /v2/images/{id}`, local or remote), Glance error bodies,
//! image ids, the target checks and the metadata sync plan built from two images.
//!
//! Input: a source image document, optionally followed by `\n---\n` and a target image document.
//! Without the separator the image is both source and target.
#![no_main]

use std::collections::BTreeSet;

use bytes::Bytes;
use glance_download_sidecar::api::check_target;
use glance_download_sidecar::glance::{error_message, parse_image, Image, ImageId, PatchOp};
use glance_download_sidecar::hash::HashAlgo;
use glance_download_sidecar::metadata::{is_synced, plan};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const SEPARATOR: &[u8] = b"\n---\n";

fuzz_target!(|data: &[u8]| {
    let message = error_message(&Bytes::copy_from_slice(data));
    assert!(message.chars().count() <= 512);
    if let Ok(text) = std::str::from_utf8(data) {
        image_id(text);
    }

    let (source, target) = match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(at) => (&data[..at], &data[at + SEPARATOR.len()..]),
        None => (data, data),
    };
    let Ok(source) = parse_image(source) else {
        return;
    };
    accessors(&source);
    let Ok(target) = parse_image(target) else {
        return;
    };
    accessors(&target);
    let _ = check_target(&target);
    sync(&source, &target);
});

fn accessors(image: &Image) {
    let _ = (
        image.status(),
        image.disk_format(),
        image.container_format(),
        image.owner(),
    );
    let _ = (image.checksum(), image.os_hash_value(), image.size());
    if let Some(name) = image.os_hash_algo() {
        if let Ok(algo) = name.parse::<HashAlgo>() {
            assert_eq!(algo.name(), name);
        }
    }
    if let Some(id) = image.0.get("id").and_then(Value::as_str) {
        image_id(id);
    }
}

/// `ImageId::parse` output is always a canonical UUID, and parsing it again changes nothing.
fn image_id(text: &str) {
    let Some(id) = ImageId::parse(text) else {
        return;
    };
    let s = id.as_str();
    let canonical = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    assert!(canonical, "{text:?} -> {s:?}");
    assert_eq!(ImageId::parse(s), Some(id.clone()));
}

/// Applying the plan makes the target carry the source's synced values; applying the revert
/// afterwards gives the target back (a missing key and a `null` are the same to Glance).
fn sync(source: &Image, target: &Image) {
    let prefixes: Vec<String> = [
        "hw_",
        "trait:",
        "os_distro",
        "os_secure_boot",
        "os_type",
        "os_",
        "",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let sync = plan(source, target, &prefixes);
    assert_eq!(sync.apply.len(), sync.revert.len());
    for name in &sync.properties {
        assert!(is_synced(name, &prefixes), "{name}");
        assert!(source.0.contains_key(name));
    }
    for op in sync.apply.iter().chain(&sync.revert) {
        pointer_round_trip(op);
    }

    let mut patched = target.0.clone();
    apply(&mut patched, &sync.apply);
    for attr in ["disk_format", "container_format"] {
        assert_eq!(get(&patched, attr), get(&source.0, attr), "{attr}");
    }
    for name in &sync.properties {
        assert_eq!(get(&patched, name), get(&source.0, name), "{name}");
    }
    apply(&mut patched, &sync.revert);
    let keys: BTreeSet<&String> = patched.keys().chain(target.0.keys()).collect();
    for key in keys {
        assert_eq!(get(&patched, key), get(&target.0, key), "revert of {key}");
    }

    if source == target {
        assert!(
            sync.apply.is_empty(),
            "an image is already in sync with itself"
        );
    }
}

fn apply(image: &mut Map<String, Value>, ops: &[PatchOp]) {
    for op in ops {
        match op {
            PatchOp::Add(name, value) | PatchOp::Replace(name, value) => {
                image.insert(name.clone(), value.clone());
            }
            PatchOp::Remove(name) => {
                image.remove(name);
            }
        }
    }
}

fn get<'a>(image: &'a Map<String, Value>, key: &str) -> &'a Value {
    image.get(key).unwrap_or(&Value::Null)
}

/// The JSON-patch path names exactly one top-level key (RFC 6901 escaping).
fn pointer_round_trip(op: &PatchOp) {
    let name = match op {
        PatchOp::Add(name, _) | PatchOp::Replace(name, _) | PatchOp::Remove(name) => name,
    };
    let json = op.to_json();
    let path = json["path"].as_str().expect("path is a string");
    let token = path.strip_prefix('/').expect("path starts with /");
    assert!(!token.contains('/'), "{path}");
    assert_eq!(token.replace("~1", "/").replace("~0", "~"), *name);
}
