//! The fake Glance's image records: what an image holds, the JSON Glance 33 renders for it, how
//! tests describe images to create, and the image schema checks the API applies to user input.

use bytes::Bytes;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::data::ImageData;
use super::wire::glance_time;

/// Glance's default `[image_format] disk_formats`.
pub const DISK_FORMATS: [&str; 11] = [
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];

/// Glance's default `[image_format] container_formats`.
pub const CONTAINER_FORMATS: [&str; 8] = [
    "bare",
    "ovf",
    "ami",
    "ari",
    "aki",
    "ova",
    "docker",
    "compressed",
];

/// An image status, as Glance names it (`glance/domain/__init__.py`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageStatus {
    /// Created, no data yet: the only status data can be uploaded or imported into.
    #[default]
    Queued,
    /// Data is being uploaded through `PUT /file`.
    Saving,
    /// Data is staged (`PUT /stage`).
    Uploading,
    /// An import task is running.
    Importing,
    /// Data present and verified.
    Active,
    /// Deactivated by an admin: data downloads are refused to non-admins.
    Deactivated,
    /// Legacy failure status.
    Killed,
}

impl ImageStatus {
    /// The status string in the image JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::Active => "active",
            ImageStatus::Deactivated => "deactivated",
            ImageStatus::Killed => "killed",
        }
    }
}

/// An image for [`super::FakeGlance::create_image`] to put straight into the fake's state, as if
/// it had been created and uploaded earlier.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// A fixed id (uuid), or `None` for a fresh one.
    pub id: Option<String>,
    /// The owning project id.
    pub owner: String,
    /// The image name.
    pub name: Option<String>,
    /// `shared` by default, as Glance.
    pub visibility: String,
    /// `Queued` (no data) or `Active` (requires `data`); other statuses for edge-case tests.
    pub status: ImageStatus,
    /// e.g. `raw`.
    pub disk_format: Option<String>,
    /// e.g. `bare`.
    pub container_format: Option<String>,
    /// Extra properties: top-level keys in the image JSON.
    pub properties: Map<String, Value>,
    /// Image tags.
    pub tags: Vec<String>,
    /// The image's bytes (checksums are computed from them at creation).
    pub data: Option<ImageData>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            id: None,
            owner: String::new(),
            name: None,
            visibility: "shared".to_owned(),
            status: ImageStatus::Queued,
            disk_format: None,
            container_format: None,
            properties: Map::new(),
            tags: Vec::new(),
            data: None,
        }
    }
}

impl ImageSpec {
    /// A queued `raw`/`bare` image of `owner`: a typical import target.
    pub fn queued(owner: &str) -> Self {
        ImageSpec {
            owner: owner.to_owned(),
            disk_format: Some("raw".to_owned()),
            container_format: Some("bare".to_owned()),
            ..ImageSpec::default()
        }
    }

    /// An active `raw`/`bare` image of `owner` holding `data`: a typical import source.
    pub fn active(owner: &str, data: ImageData) -> Self {
        ImageSpec {
            status: ImageStatus::Active,
            data: Some(data),
            ..ImageSpec::queued(owner)
        }
    }
}

/// Why Glance refuses data for `image`, if it carries all four image signature properties:
/// Glance then verifies the signature as the data arrives, against the certificate its key
/// manager holds under `img_signature_certificate_uuid`; this fake has no key manager, so it
/// answers as Glance without one does.
pub(crate) fn signature_refusal(image: &Image) -> Option<String> {
    let keys = [
        "img_signature",
        "img_signature_hash_method",
        "img_signature_key_type",
        "img_signature_certificate_uuid",
    ];
    if !keys.iter().all(|k| image.properties.contains_key(*k)) {
        return None;
    }
    let certificate = image
        .properties
        .get("img_signature_certificate_uuid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(format!(
        "Signature verification failed for image {}: Signature verification for the image \
         failed: Unable to retrieve certificate with ID: {certificate}.",
        image.id
    ))
}

/// Where an image's data lives in the fake's store.
#[derive(Clone, Debug)]
pub(crate) enum Stored {
    /// Kept bytes (uploads up to the keep limit, or literal test data).
    Bytes(Bytes),
    /// Generated on demand.
    Generated { seed: u64 },
    /// Uploaded, hashed, then dropped to keep memory flat; downloads answer 204 as for a lost
    /// store object.
    Discarded,
}

/// One image record.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) status: ImageStatus,
    pub(crate) visibility: String,
    pub(crate) protected: bool,
    pub(crate) os_hidden: bool,
    pub(crate) checksum: Option<String>,
    pub(crate) os_hash_algo: Option<String>,
    pub(crate) os_hash_value: Option<String>,
    pub(crate) size: Option<u64>,
    pub(crate) virtual_size: Option<u64>,
    pub(crate) disk_format: Option<String>,
    pub(crate) container_format: Option<String>,
    pub(crate) min_disk: u64,
    pub(crate) min_ram: u64,
    pub(crate) owner: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
    pub(crate) properties: Map<String, Value>,
    pub(crate) data: Option<Stored>,
    /// The stores holding the data, in the order written (multi-store Glance only).
    pub(crate) stores: Vec<String>,
    /// Creation order, for Glance's default `created_at desc` listing.
    pub(crate) seq: u64,
}

// === impl Image ===

impl Image {
    /// A new queued image with Glance's defaults.
    pub(crate) fn new(id: String, owner: Option<String>, seq: u64) -> Image {
        let now = OffsetDateTime::now_utc();
        Image {
            id,
            name: None,
            status: ImageStatus::Queued,
            visibility: "shared".to_owned(),
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            size: None,
            virtual_size: None,
            disk_format: None,
            container_format: None,
            min_disk: 0,
            min_ram: 0,
            owner,
            tags: Vec::new(),
            created_at: now,
            updated_at: now,
            properties: Map::new(),
            data: None,
            stores: Vec::new(),
            seq,
        }
    }

    /// The image JSON as `GET /v2/images/{id}` renders it (`ResponseSerializer._format_image`):
    /// extra properties first, then the core attributes, which win on a name clash.
    pub(crate) fn to_json(&self) -> Value {
        let mut view: Map<String, Value> = self
            .properties
            .iter()
            .filter(|(k, _)| *k != "os_glance_stage_host" && *k != "os_glance_hash_op_host")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let core = json!({
            "name": self.name, "disk_format": self.disk_format,
            "container_format": self.container_format, "visibility": self.visibility,
            "size": self.size, "virtual_size": self.virtual_size, "status": self.status.as_str(),
            "checksum": self.checksum, "protected": self.protected, "min_ram": self.min_ram,
            "min_disk": self.min_disk, "owner": self.owner, "os_hidden": self.os_hidden,
            "os_hash_algo": self.os_hash_algo, "os_hash_value": self.os_hash_value,
            "id": self.id, "created_at": glance_time(self.created_at),
            "updated_at": glance_time(self.updated_at), "tags": self.tags,
            "self": format!("/v2/images/{}", self.id),
            "file": format!("/v2/images/{}/file", self.id),
            "schema": "/v2/schemas/image",
        });
        if let Value::Object(core) = core {
            view.extend(core);
        }
        super::stores::render(self, &mut view);
        Value::Object(view)
    }

    /// Records a finished upload: size, digests, `active`; and `virtual_size` as Glance's format
    /// inspector reports it for raw data (other formats are not inspected by the fake).
    pub(crate) fn set_data(
        &mut self,
        size: u64,
        md5: String,
        algo: &str,
        hash: String,
        data: Stored,
    ) {
        self.size = Some(size);
        self.virtual_size = (self.disk_format.as_deref() == Some("raw")).then_some(size);
        self.checksum = Some(md5);
        self.os_hash_algo = Some(algo.to_owned());
        self.os_hash_value = Some(hash);
        self.data = Some(data);
        self.status = ImageStatus::Active;
        self.touch();
    }

    /// Back to `queued` with no data, as Glance's `_restore` after a failed upload (setting
    /// `queued` clears `size` and `virtual_size`; the hashes were never set).
    pub(crate) fn restore_queued(&mut self) {
        self.status = ImageStatus::Queued;
        self.size = None;
        self.virtual_size = None;
        self.checksum = None;
        self.os_hash_algo = None;
        self.os_hash_value = None;
        self.data = None;
        self.stores.clear();
        self.touch();
    }

    /// Bumps `updated_at`.
    pub(crate) fn touch(&mut self) {
        self.updated_at = OffsetDateTime::now_utc();
    }
}

// === schema checks ===

/// Python's `repr` of a JSON value, as jsonschema messages quote it.
pub(crate) fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn schema_error(reason: String) -> String {
    format!("Provided object does not match schema 'image': {reason}")
}

fn check_enum(v: &Value, allowed: &[&str], nullable: bool) -> Result<(), String> {
    let ok = match v {
        Value::Null => nullable,
        Value::String(s) => allowed.contains(&s.as_str()),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let mut options: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    if nullable {
        options.insert(0, "None".to_owned());
    }
    Err(schema_error(format!(
        "{} is not one of [{}]",
        py_repr(v),
        options.join(", ")
    )))
}

fn type_error(v: &Value, kind: &str) -> String {
    schema_error(format!("{} is not of type '{kind}'", py_repr(v)))
}

/// Validates one top-level key of user input against Glance's image schema (with
/// `additionalProperties: {"type": "string"}`); the error is the 400 message. Messages follow
/// jsonschema's first line only.
pub(crate) fn validate_value(key: &str, v: &Value) -> Result<(), String> {
    match key {
        "name" | "owner" => match v {
            Value::Null => Ok(()),
            Value::String(s) if s.chars().count() <= 255 => Ok(()),
            Value::String(_) => Err(schema_error(format!("{} is too long", py_repr(v)))),
            _ => Err(type_error(v, "string")),
        },
        "visibility" => check_enum(v, &["community", "public", "private", "shared"], false),
        "disk_format" => check_enum(v, &DISK_FORMATS, true),
        "container_format" => check_enum(v, &CONTAINER_FORMATS, true),
        "protected" | "os_hidden" => v
            .is_boolean()
            .then_some(())
            .ok_or_else(|| type_error(v, "boolean")),
        "min_disk" | "min_ram" => match v.as_u64() {
            Some(_) => Ok(()),
            None if v.is_i64() => Err(schema_error(format!("{} is less than the minimum of 0", v))),
            None => Err(type_error(v, "integer")),
        },
        "tags" => match v.as_array() {
            Some(items) => match items.iter().find(|t| !t.is_string()) {
                Some(bad) => Err(type_error(bad, "string")),
                None => Ok(()),
            },
            None => Err(type_error(v, "array")),
        },
        "id" => {
            let ok = v
                .as_str()
                .is_some_and(|s| uuid::Uuid::try_parse(s).is_ok() && s.len() == 36);
            ok.then_some(()).ok_or_else(|| {
                schema_error(format!(
                    "{} does not match '^([0-9a-fA-F]){{8}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{12}}$'",
                    py_repr(v)
                ))
            })
        }
        _ => v
            .is_string()
            .then_some(())
            .ok_or_else(|| type_error(v, "string")),
    }
}

/// Sets core attribute `key` from an already validated value; `false` if `key` is not a core
/// attribute (then it is an extra property).
pub(crate) fn set_core(image: &mut Image, key: &str, v: &Value) -> bool {
    let text = || v.as_str().map(str::to_owned);
    match key {
        "name" => image.name = text(),
        "disk_format" => image.disk_format = text(),
        "container_format" => image.container_format = text(),
        "visibility" => image.visibility = text().unwrap_or_else(|| "shared".to_owned()),
        "protected" => image.protected = v.as_bool().unwrap_or(false),
        "os_hidden" => image.os_hidden = v.as_bool().unwrap_or(false),
        "min_disk" => image.min_disk = v.as_u64().unwrap_or(0),
        "min_ram" => image.min_ram = v.as_u64().unwrap_or(0),
        "owner" => image.owner = text(),
        "tags" => {
            let mut tags: Vec<String> = Vec::new();
            for t in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.to_owned());
                }
            }
            image.tags = tags;
        }
        _ => return false,
    }
    true
}

/// Whether `key` is an attribute of Glance's domain image (so PATCH `remove` is refused and
/// `replace` never reports "does not exist").
pub(crate) fn is_core(key: &str) -> bool {
    matches!(
        key,
        "name"
            | "disk_format"
            | "container_format"
            | "visibility"
            | "protected"
            | "os_hidden"
            | "min_disk"
            | "min_ram"
            | "owner"
            | "tags"
            | "status"
            | "size"
            | "virtual_size"
            | "checksum"
            | "os_hash_algo"
            | "os_hash_value"
            | "created_at"
            | "updated_at"
            | "locations"
    )
}
