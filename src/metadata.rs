//! Which metadata a glance-download copies, and how to undo it.
//!
//! As upstream: `disk_format` and `container_format` are taken from the source, and every
//! top-level key of the source image whose name starts with a configured prefix is copied,
//! overwriting the target's value. Unlike upstream, names Glance reserves (`os_glance*`) or keeps
//! read-only (`checksum`, `os_hash_value`, ...) are never copied even if a prefix matches them, so a
//! broad prefix such as `os_` cannot make the whole patch fail.

use serde_json::Value;

use crate::glance::{Image, PatchOp};

/// Core attributes of a Glance image that are never copied as properties.
const NOT_COPIED: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "owner",
    "tags",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "locations",
    "direct_url",
    "stores",
];

/// The JSON-patch that syncs the target with the source, and the one that undoes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPatch {
    pub apply: Vec<PatchOp>,
    pub revert: Vec<PatchOp>,
    /// Names of the properties copied (for the task and the demo).
    pub properties: Vec<String>,
}

/// Whether `name` is copied under `prefixes`.
pub fn is_synced(name: &str, prefixes: &[String]) -> bool {
    !name.starts_with("os_glance")
        && !crate::claim::is_ours(name)
        && !NOT_COPIED.contains(&name)
        && prefixes
            .iter()
            .any(|p| !p.is_empty() && name.starts_with(p.as_str()))
}

/// Builds the sync and revert patches from the source and the target as they are now.
pub fn plan(source: &Image, target: &Image, prefixes: &[String]) -> SyncPatch {
    plan_with(source, target, prefixes, &[])
}

/// As [`plan`], then sets `inject` on top (overriding synced values), as Glance's
/// `inject_image_metadata` import plugin does after the metadata copy.
pub fn plan_with(
    source: &Image,
    target: &Image,
    prefixes: &[String],
    inject: &[(String, String)],
) -> SyncPatch {
    let mut apply = Vec::new();
    let mut revert = Vec::new();
    for attr in ["disk_format", "container_format"] {
        let new = source.0.get(attr).cloned().unwrap_or(Value::Null);
        let old = target.0.get(attr).cloned().unwrap_or(Value::Null);
        if new != old {
            apply.push(PatchOp::Replace(attr.to_string(), new));
            revert.push(PatchOp::Replace(attr.to_string(), old));
        }
    }
    let mut properties = Vec::new();
    for (name, value) in &source.0 {
        if !is_synced(name, prefixes) || value.is_null() {
            continue;
        }
        properties.push(name.clone());
        match target.0.get(name) {
            Some(old) if old == value => {}
            Some(old) => {
                apply.push(PatchOp::Add(name.clone(), value.clone()));
                revert.push(PatchOp::Add(name.clone(), old.clone()));
            }
            None => {
                apply.push(PatchOp::Add(name.clone(), value.clone()));
                revert.push(PatchOp::Remove(name.clone()));
            }
        }
    }
    for (name, value) in inject {
        let value = Value::from(value.as_str());
        if name.starts_with("os_glance")
            || crate::claim::is_ours(name)
            || NOT_COPIED.contains(&name.as_str())
        {
            continue;
        }
        apply.retain(|op| !matches!(op, PatchOp::Add(n, _) if n == name));
        revert.retain(|op| !matches!(op, PatchOp::Add(n, _) | PatchOp::Remove(n) if n == name));
        match target.0.get(name) {
            Some(old) if *old == value => continue,
            Some(old) => revert.push(PatchOp::Add(name.clone(), old.clone())),
            None => revert.push(PatchOp::Remove(name.clone())),
        }
        apply.push(PatchOp::Add(name.clone(), value));
    }
    SyncPatch {
        apply,
        revert,
        properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(v: Value) -> Image {
        Image(v.as_object().unwrap().clone())
    }

    fn defaults() -> Vec<String> {
        crate::config::defaults::EXTRA_PROPERTIES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn copies_prefixed_properties_and_formats() {
        let source = image(json!({
            "disk_format": "qcow2", "container_format": "bare", "checksum": "x",
            "hw_disk_bus": "scsi", "trait:CUSTOM_X": "required", "os_distro": "ubuntu",
            "os_type": "linux", "os_secure_boot": "required", "os_glance_import_task": "t",
            "os_admin_user": "root", "foo": "bar", "os_hash_value": "abc"
        }));
        let target = image(json!({
            "disk_format": "raw", "container_format": "bare", "hw_disk_bus": "virtio", "keep": "1"
        }));
        let sync = plan(&source, &target, &defaults());
        let mut names = sync.properties.clone();
        names.sort();
        assert_eq!(
            names,
            [
                "hw_disk_bus",
                "os_distro",
                "os_secure_boot",
                "os_type",
                "trait:CUSTOM_X"
            ]
        );
        assert!(sync
            .apply
            .contains(&PatchOp::Replace("disk_format".into(), json!("qcow2"))));
        assert!(!sync
            .apply
            .iter()
            .any(|op| matches!(op, PatchOp::Replace(n, _) if n == "container_format")));
        assert!(sync
            .revert
            .contains(&PatchOp::Add("hw_disk_bus".into(), json!("virtio"))));
        assert!(sync.revert.contains(&PatchOp::Remove("os_distro".into())));
        assert!(sync
            .revert
            .contains(&PatchOp::Replace("disk_format".into(), json!("raw"))));
    }

    #[test]
    fn injection_overrides_synced_values_and_reverts() {
        let source =
            image(json!({"disk_format": "raw", "container_format": "bare", "hw_a": "src"}));
        let target =
            image(json!({"disk_format": "raw", "container_format": "bare", "owner_x": "1"}));
        let inject = [
            ("hw_a".to_string(), "injected".to_string()),
            ("owner_x".to_string(), "2".to_string()),
            ("os_glance_x".to_string(), "never".to_string()),
        ];
        let sync = plan_with(&source, &target, &defaults(), &inject);
        assert_eq!(
            sync.apply,
            vec![
                PatchOp::Add("hw_a".into(), json!("injected")),
                PatchOp::Add("owner_x".into(), json!("2")),
            ]
        );
        assert_eq!(
            sync.revert,
            vec![
                PatchOp::Remove("hw_a".into()),
                PatchOp::Add("owner_x".into(), json!("1")),
            ]
        );
    }

    #[test]
    fn broad_prefix_never_touches_reserved_or_core_names() {
        let prefixes = vec!["os_".to_string()];
        for name in [
            "os_glance_import_task",
            "os_hash_value",
            "os_hash_algo",
            "os_hidden",
        ] {
            assert!(!is_synced(name, &prefixes), "{name}");
        }
        assert!(is_synced("os_distro", &prefixes));
        assert!(!is_synced("anything", &[String::new()]));
    }
}
