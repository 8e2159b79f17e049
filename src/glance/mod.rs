//! A typed client for the Glance v2 calls the sidecar makes on the caller's behalf: read an image,
//! patch its metadata, open its data, upload data.
//!
//! Every call carries the caller's token and nothing else that identifies the caller. JSON bodies
//! are read with a size cap and a timeout; data bodies are streamed.
//!
//! - `call`: how one call is made and its answer read (shared with the tools' Image API client);
//! - `error`: [`GlanceError`] and the one reading of an answer's status ([`GlanceStatus`]);
//! - `images`: the typed Image API calls;
//! - `task`: Glance's tasks, typed, and [`follow_task`].
//!
//! [`GlanceError`]: crate::glance::GlanceError
//! [`GlanceStatus`]: crate::glance::GlanceStatus
//! [`follow_task`]: crate::glance::follow_task

mod call;
mod error;
mod images;
mod task;

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::http::HttpClient;

pub use call::{request, with_token, Answer};
pub use error::{error_message, GlanceError, GlanceStatus};
pub use task::{find_ours, follow_task, FollowError, GlanceTask, Ours, Pace, Progress, TaskStatus};

/// Request header giving an upload's size; Glance 32+ refuses stored data of another size.
pub const IMAGE_SIZE: &str = "x-openstack-image-size";

/// Largest image document accepted from Glance.
pub const MAX_IMAGE_JSON: usize = 1024 * 1024;

/// A validated image id: a UUID, always written in canonical lowercase hyphenated form so it can
/// be placed in a URL path safely.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(String);

impl ImageId {
    /// Accepts any form `uuid` accepts (as Python's `uuid.UUID` does) and normalizes it.
    pub fn parse(text: &str) -> Option<ImageId> {
        if text.len() > 64 {
            return None;
        }
        uuid::Uuid::parse_str(text)
            .ok()
            .map(|u| ImageId(u.hyphenated().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageId({})", self.0)
    }
}

/// An image document as Glance returns it: core attributes and extra properties side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Image(pub Map<String, Value>);

impl Image {
    fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    pub fn status(&self) -> Option<&str> {
        self.str("status")
    }
    pub fn disk_format(&self) -> Option<&str> {
        self.str("disk_format")
    }
    pub fn container_format(&self) -> Option<&str> {
        self.str("container_format")
    }
    pub fn checksum(&self) -> Option<&str> {
        self.str("checksum")
    }
    pub fn os_hash_algo(&self) -> Option<&str> {
        self.str("os_hash_algo")
    }
    pub fn os_hash_value(&self) -> Option<&str> {
        self.str("os_hash_value")
    }
    pub fn owner(&self) -> Option<&str> {
        self.str("owner")
    }

    /// `size` as a number (Glance sends an integer; a numeric string is accepted as upstream does).
    pub fn size(&self) -> Option<u64> {
        match self.0.get("size")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// One operation of a Glance JSON patch (`application/openstack-images-v2.1-json-patch`).
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    /// Sets a property or attribute, replacing any value.
    Add(String, Value),
    /// Sets an existing property or attribute.
    Replace(String, Value),
    /// Removes an extra property.
    Remove(String),
}

impl PatchOp {
    /// The JSON form, with `/` and `~` escaped in the path (RFC 6901).
    pub fn to_json(&self) -> Value {
        let pointer = |name: &str| format!("/{}", name.replace('~', "~0").replace('/', "~1"));
        match self {
            PatchOp::Add(name, value) => {
                serde_json::json!({"op": "add", "path": pointer(name), "value": value})
            }
            PatchOp::Replace(name, value) => {
                serde_json::json!({"op": "replace", "path": pointer(name), "value": value})
            }
            PatchOp::Remove(name) => serde_json::json!({"op": "remove", "path": pointer(name)}),
        }
    }
}

/// Glance v2 calls, against any Glance base URL (the fronted one or a remote region's).
#[derive(Clone)]
pub struct Glance {
    client: HttpClient,
    timeout: Duration,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl Glance {
    pub fn new(client: HttpClient, timeout: Duration) -> Self {
        Glance {
            client,
            timeout,
            metrics: None,
        }
    }

    /// Records the latency of JSON calls into `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// Parses an image document, which must be a JSON object.
pub fn parse_image(body: &[u8]) -> Result<Image, GlanceError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Image(map)),
        Ok(_) => Err(GlanceError::BadResponse("image is not a JSON object")),
        Err(e) => Err(GlanceError::BadJson(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_are_canonical() {
        let id = ImageId::parse("{C4705B36-B281-40F6-A01D-BF98883EAD8E}").unwrap();
        assert_eq!(id.as_str(), "c4705b36-b281-40f6-a01d-bf98883ead8e");
        assert!(ImageId::parse("fake_id").is_none());
        assert!(ImageId::parse("../../etc/passwd").is_none());
    }

    #[test]
    fn patch_paths_are_escaped() {
        let op = PatchOp::Add("trait:CUSTOM/X~1".into(), Value::from("required"));
        assert_eq!(op.to_json()["path"], "/trait:CUSTOM~1X~01");
    }
}
