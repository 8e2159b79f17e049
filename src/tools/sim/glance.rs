//! A fake Glance 33 (single store unless `enable_stores` says otherwise) on loopback: the test-facing handle, its shared state, the
//! request router with keystonemiddleware-style token checks, and Glance's error bodies.
//!
//! Handlers live in `routes.rs` (image CRUD and small endpoints), `patch.rs` (JSON patch) and
//! `transfer.rs` (image data up and down), `staging.rs` (glance-direct) and `stores.rs`
//! (multi-store mode, copy-image).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::data::{generated_bytes, ImageData};
use super::faults::{ArmedFault, BodyReading, Fault, UploadFault};
use super::images::{Image, ImageSpec, ImageStatus, Stored};
use super::keystone::{Caller, KeystoneState};
use super::wire::{header, with_request_id, LoggedRequest};
use super::{patch, routes, staging, transfer};
use crate::hash::HashAlgo;
use crate::http::{full, json_response, BoxBody};

/// Glance's default `[DEFAULT] enabled_import_methods`.
pub const DEFAULT_IMPORT_METHODS: [&str; 3] = ["glance-direct", "web-download", "copy-image"];

/// Uploads up to this size keep their bytes by default; larger ones are hashed and discarded.
pub const DEFAULT_KEEP_UPLOADS: u64 = 256 * 1024 * 1024;

/// The mutable part of a fake Glance.
pub(crate) struct Inner {
    pub(crate) images: HashMap<String, Image>,
    pub(crate) seq: u64,
    pub(crate) faults: HashMap<String, ArmedFault>,
    pub(crate) upload_faults: HashMap<String, UploadFault>,
    /// How upload bodies reach Glance (strictly, or as the most lenient server hands them on).
    pub(crate) body_reading: BodyReading,
    /// Image PATCHes still to be answered 500, as Glance does when its database refuses a write
    /// ("database is locked" on SQLite): a transient failure of the API itself.
    pub(crate) failing_patches: u32,
    /// Properties another client writes onto an image right after the next PATCH of it (another
    /// sidecar instance claiming the image at the same moment, whose write lands last).
    pub(crate) overwrite_after_patch: Option<(String, Vec<(String, String)>)>,
    /// `glance-direct` import tasks end `failure` (as when an import plugin fails).
    pub(crate) failing_direct_imports: bool,
    /// Every answer carries a fresh `x-openstack-request-id` (as a proxy in front that sets its
    /// own), so no import answer names the task it started.
    pub(crate) rewrite_request_ids: bool,
    /// When an import task starts, another task for the image with this status is recorded
    /// right after it (one started at the same time through another API node).
    pub(crate) newer_task: Option<String>,
    /// Images whose `GET /v2/images/{id}` answers 200 with a body cut mid-JSON.
    pub(crate) garbled: std::collections::HashSet<String>,
    /// Ids of deleted images: Glance keeps their rows (`deleted`), so an id is never reused.
    pub(crate) deleted: std::collections::HashSet<String>,
    /// Staged data (`PUT /stage`) waiting for a `glance-direct` import, by image id.
    pub(crate) staged: HashMap<String, super::transfer::Received>,
    /// Import tasks run by this fake (`glance-direct`).
    pub(crate) tasks: Vec<Value>,
    /// Properties the `inject_image_metadata` plugin sets on imported images.
    pub(crate) inject: serde_json::Map<String, Value>,
    pub(crate) log: Vec<LoggedRequest>,
    pub(crate) hashing: HashAlgo,
    pub(crate) import_methods: Vec<String>,
    pub(crate) keep_limit: u64,
    /// The S3 store for `POST /locations` (`attach_s3_store`); none by default.
    pub(crate) s3_store: Option<super::s3_locations::S3Store>,
    /// `enabled_backends`: `None` for a single-store Glance (the default).
    pub(crate) stores: Option<super::stores::Stores>,
}

/// A fake Glance's state, shared by its handle and its server.
pub(crate) struct GlanceState {
    pub(crate) region: String,
    pub(crate) addr: SocketAddr,
    pub(crate) keystone: Arc<KeystoneState>,
    inner: Mutex<Inner>,
}

impl GlanceState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// The next creation sequence number.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// A running fake Glance for one region; cheap to clone (clones share state).
#[derive(Clone)]
pub struct FakeGlance {
    pub(crate) state: Arc<GlanceState>,
}

// === impl FakeGlance ===

impl FakeGlance {
    /// Binds 127.0.0.1:0 for `region`, validating tokens against `keystone`, until `shutdown`.
    pub(crate) async fn start(
        region: &str,
        keystone: Arc<KeystoneState>,
        shutdown: CancellationToken,
    ) -> std::io::Result<FakeGlance> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let state = Arc::new(GlanceState {
            region: region.to_owned(),
            addr: listener.local_addr()?,
            keystone,
            inner: Mutex::new(Inner {
                images: HashMap::new(),
                seq: 0,
                faults: HashMap::new(),
                upload_faults: HashMap::new(),
                body_reading: BodyReading::Strict,
                failing_patches: 0,
                overwrite_after_patch: None,
                failing_direct_imports: false,
                rewrite_request_ids: false,
                newer_task: None,
                garbled: Default::default(),
                deleted: Default::default(),
                staged: HashMap::new(),
                tasks: Vec::new(),
                inject: serde_json::Map::new(),
                log: Vec::new(),
                hashing: HashAlgo::Sha512,
                import_methods: DEFAULT_IMPORT_METHODS
                    .iter()
                    .map(|m| (*m).to_owned())
                    .collect(),
                keep_limit: DEFAULT_KEEP_UPLOADS,
                s3_store: None,
                stores: None,
            }),
        });
        let served = state.clone();
        tokio::spawn(crate::http::serve(
            listener,
            None,
            move |req, _peer| handle(served.clone(), req),
            shutdown,
        ));
        Ok(FakeGlance { state })
    }

    /// The API root, `http://127.0.0.1:PORT` (no `/v2`), as catalog endpoints hold it.
    pub fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// The region this Glance serves.
    pub fn region(&self) -> &str {
        &self.state.region
    }

    /// Glance's `[DEFAULT] hashing_algorithm` for uploads and created images (default sha512).
    pub fn set_hashing_algorithm(&self, algo: HashAlgo) {
        self.state.lock().hashing = algo;
    }

    /// Glance's `[DEFAULT] enabled_import_methods` (discovery, create header, import checks).
    pub fn set_import_methods(&self, methods: &[&str]) {
        self.state.lock().import_methods = methods.iter().map(|m| (*m).to_owned()).collect();
    }

    /// Uploads larger than `bytes` are hashed but their bytes discarded (memory stays flat in
    /// Reads upload bodies as `reading` says (uwsgi's strict reading by default).
    pub fn set_body_reading(&self, reading: BodyReading) {
        self.state.lock().body_reading = reading;
    }

    /// demo and benches); default 256 MiB.
    pub fn keep_uploads_up_to(&self, bytes: u64) {
        self.state.lock().keep_limit = bytes;
    }

    /// Creates an image directly in the fake's state (as if uploaded earlier); returns its id.
    ///
    /// Digests of the data are computed now with this Glance's hashing algorithm (generated data
    /// is streamed through the hashers, ~1–2 s per GiB, remembered per process). Panics if
    /// `status` is `Active` without data, or the id is taken: a broken test setup.
    pub fn create_image(&self, spec: ImageSpec) -> String {
        assert!(
            spec.status != ImageStatus::Active || spec.data.is_some(),
            "an active image needs data"
        );
        let algo = self.state.lock().hashing;
        let digests = spec.data.as_ref().map(|d| d.digests(algo));
        let mut inner = self.state.lock();
        let id = spec
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        assert!(!inner.images.contains_key(&id), "image {id} already exists");
        let seq = inner.next_seq();
        let mut image = Image::new(id.clone(), Some(spec.owner), seq);
        image.name = spec.name;
        image.visibility = spec.visibility;
        image.disk_format = spec.disk_format;
        image.container_format = spec.container_format;
        image.properties = spec.properties;
        image.tags = spec.tags;
        if let (Some(data), Some((md5, hash))) = (spec.data, digests) {
            let size = data.len();
            let stored = match data {
                ImageData::Bytes(b) => Stored::Bytes(b),
                ImageData::Generated { seed, .. } => Stored::Generated { seed },
            };
            image.set_data(size, md5, algo.name(), hash, stored);
            if let Some(stores) = &inner.stores {
                image.stores = vec![stores.default.clone()];
            }
        }
        image.status = spec.status;
        inner.images.insert(id.clone(), image);
        id
    }

    /// The image JSON exactly as `GET /v2/images/{id}` returns it.
    pub fn image(&self, id: &str) -> Option<Value> {
        self.state.lock().images.get(id).map(Image::to_json)
    }

    /// The image's stored bytes, if kept (generated data is materialized: mind the size).
    pub fn image_data(&self, id: &str) -> Option<Bytes> {
        let inner = self.state.lock();
        let image = inner.images.get(id)?;
        match (&image.data, image.size) {
            (Some(Stored::Bytes(b)), _) => Some(b.clone()),
            (Some(Stored::Generated { seed }), Some(size)) => {
                Some(generated_bytes(*seed, 0, usize::try_from(size).ok()?))
            }
            _ => None,
        }
    }

    /// Sets an extra property (`Some`) or removes it (`None`) directly, bypassing API rules
    /// (e.g. to plant an `os_glance_import_task` lock).
    pub fn set_property(&self, id: &str, key: &str, value: Option<&str>) {
        if let Some(image) = self.state.lock().images.get_mut(id) {
            match value {
                Some(v) => image
                    .properties
                    .insert(key.to_owned(), Value::String(v.to_owned())),
                None => image.properties.remove(key),
            };
            image.touch();
        }
    }

    /// Sets an image's `os_hash_algo` directly, leaving `os_hash_value` as it is: a source that
    /// names the wrong algorithm, or one no client can compute.
    pub fn set_os_hash_algo(&self, id: &str, algo: &str) {
        if let Some(image) = self.state.lock().images.get_mut(id) {
            image.os_hash_algo = Some(algo.to_owned());
            image.touch();
        }
    }

    /// Makes `GET /v2/images/{id}` answer 200 with a body that is not valid JSON (a truncated
    /// document), until cleared with `false`.
    pub fn garble_image_json(&self, id: &str, garbled: bool) {
        let mut inner = self.state.lock();
        if garbled {
            inner.garbled.insert(id.to_owned());
        } else {
            inner.garbled.remove(id);
        }
    }

    /// Sets an image's status directly (e.g. `Deactivated`, or `Importing` mid-task).
    pub fn set_status(&self, id: &str, status: ImageStatus) {
        if let Some(image) = self.state.lock().images.get_mut(id) {
            image.status = status;
            image.touch();
        }
    }

    /// Applies `fault` to every `GET /v2/images/{id}/file` of that image until cleared.
    pub fn set_fault(&self, image_id: &str, fault: Fault) {
        self.arm(image_id, fault, None);
    }

    /// Applies `fault` to the next `times` downloads of that image only (retry tests).
    pub fn set_fault_times(&self, image_id: &str, fault: Fault, times: u32) {
        self.arm(image_id, fault, Some(times));
    }

    /// Sets the properties Glance's `inject_image_metadata` import plugin adds to every image
    /// imported with `glance-direct` (as `[inject_metadata_properties] inject`).
    pub fn set_inject_properties(&self, properties: &[(&str, &str)]) {
        self.state.lock().inject = properties
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
    }

    /// Answers the next `n` image PATCHes (of any image) with 500, as a Glance whose database is
    /// momentarily locked.
    pub fn fail_next_patches(&self, n: u32) {
        self.state.lock().failing_patches = n;
    }

    /// After the next PATCH of image `id`, another client writes `properties` onto it at once:
    /// a second sidecar instance claiming the image in the same moment, whose write lands last.
    pub fn overwrite_after_next_patch(&self, id: &str, properties: &[(&str, &str)]) {
        let properties = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.state.lock().overwrite_after_patch = Some((id.to_owned(), properties));
    }

    /// Makes `glance-direct` import tasks end `failure`, as when an import plugin fails.
    pub fn fail_direct_imports(&self, fail: bool) {
        self.state.lock().failing_direct_imports = fail;
    }

    /// Gives every answer a fresh `x-openstack-request-id`, as a proxy in front of Glance that
    /// sets its own: an import's answer then names no task of Glance's.
    pub fn rewrite_request_ids(&self, rewrite: bool) {
        self.state.lock().rewrite_request_ids = rewrite;
    }

    /// Records, right after each import task this fake starts, another (newer) task for the same
    /// image with `status` and a request id of its own; `None` stops it.
    pub fn add_newer_task_on_import(&self, status: Option<&str>) {
        self.state.lock().newer_task = status.map(str::to_owned);
    }

    /// Applies `fault` to the next upload into that image (one-shot).
    pub fn set_upload_fault(&self, image_id: &str, fault: UploadFault) {
        self.state
            .lock()
            .upload_faults
            .insert(image_id.to_owned(), fault);
    }

    /// Removes any fault on that image.
    pub fn clear_fault(&self, image_id: &str) {
        self.state.lock().faults.remove(image_id);
    }

    fn arm(&self, image_id: &str, fault: Fault, remaining: Option<u32>) {
        let armed = ArmedFault { fault, remaining };
        self.state.lock().faults.insert(image_id.to_owned(), armed);
    }

    /// Method, path and headers of every request received so far, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.state.lock().log.clone()
    }

    /// How many requests with this method and path were received so far.
    pub fn requests_to(&self, method: &str, path: &str) -> usize {
        let inner = self.state.lock();
        inner
            .log
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// Forgets the requests logged so far.
    pub fn clear_request_log(&self) {
        self.state.lock().log.clear();
    }
}

// === errors ===

/// Glance's error body: webob's JSON rendering (`{"message", "code", "title"}`), where
/// `message` is webob's body template `"{explanation}<br /><br />\n{detail}\n{comment}\n"`, so a
/// message carries the suffix `<br /><br />\n\n\n` exactly as real Glance sends it.
pub(crate) fn glance_error_detail(
    status: StatusCode,
    explanation: &str,
    detail: &str,
) -> Response<BoxBody> {
    let title = match status.as_u16() {
        413 => "Request Entity Too Large",
        416 => "Request Range Not Satisfiable",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    json_response(
        status,
        &json!({
            "message": format!("{explanation}<br /><br />\n{detail}\n\n"),
            "code": format!("{} {title}", status.as_u16()),
            "title": title,
        }),
    )
}

/// A Glance error whose text is webob's `explanation` (the common case).
pub(crate) fn glance_error(status: StatusCode, explanation: &str) -> Response<BoxBody> {
    glance_error_detail(status, explanation, "")
}

/// 404 for an image the caller cannot see, with Glance's message.
pub(crate) fn not_found(id: &str) -> Response<BoxBody> {
    glance_error(
        StatusCode::NOT_FOUND,
        &format!("No image found with ID {id}"),
    )
}

/// keystonemiddleware's 401 (it answers before Glance sees the request).
fn unauthorized(state: &GlanceState) -> Response<BoxBody> {
    let mut resp = json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}),
    );
    let uri = state.keystone_uri();
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{uri}\"")) {
        resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    resp
}

// === access rules ===

/// Whether `caller` may see `image` (owner, public/community, or admin).
pub(crate) fn visible(image: &Image, caller: &Caller) -> bool {
    caller.is_admin()
        || image.owner.is_some() && image.owner == caller.project_id
        || image.visibility == "public"
        || image.visibility == "community"
}

/// Whether `caller` may modify `image` (`ADMIN_OR_PROJECT_MEMBER` on the owner project).
pub(crate) fn can_modify(image: &Image, caller: &Caller) -> bool {
    caller.is_admin()
        || caller.has_role("member") && image.owner.is_some() && image.owner == caller.project_id
}

/// 403 for a failed policy check, with oslo.policy's message via Glance.
pub(crate) fn forbidden(action: &str) -> Response<BoxBody> {
    glance_error(
        StatusCode::FORBIDDEN,
        &format!("You are not authorized to complete {action} action."),
    )
}

// === routing ===

impl GlanceState {
    fn keystone_uri(&self) -> String {
        let v3 = super::FakeKeystone {
            state: self.keystone.clone(),
        }
        .url();
        v3.trim_end_matches("/v3").to_owned()
    }
}

async fn handle(state: Arc<GlanceState>, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let logged = LoggedRequest::new(req.method(), &path, req.headers());
    state.lock().log.push(logged);
    let wants_json = req
        .headers()
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    let response = route(&state, req).await;
    let response = if wants_json {
        response
    } else {
        as_html(response).await
    };
    let mut response = with_request_id(response);
    if state.lock().rewrite_request_ids {
        response
            .headers_mut()
            .insert(crate::http::REQUEST_ID, super::wire::request_id());
    }
    response
}

/// Error answers as webob renders them for clients that do not accept JSON: an HTML page (the
/// JSON shape is what Glance sends only with `Accept: application/json`).
async fn as_html(response: Response<BoxBody>) -> Response<BoxBody> {
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status().as_u16() < 400 || !is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = crate::http::read_limited(body, 64 * 1024).await else {
        return crate::http::html_error(parts.status, "");
    };
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let text = if parts.status == StatusCode::UNAUTHORIZED {
        crate::api::UNAUTHORIZED_HTML.to_string()
    } else {
        let message = doc["message"].as_str().unwrap_or_default();
        crate::http::escape_html(message.trim_end_matches(super::WEBOB_SUFFIX))
    };
    let mut html = crate::http::html_error(parts.status, &text);
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            html.headers_mut().insert(name.clone(), value.clone());
        }
    }
    html
}

async fn route(state: &Arc<GlanceState>, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => return routes::versions(state, &req, StatusCode::MULTIPLE_CHOICES),
        (&Method::GET, ["versions"]) => return routes::versions(state, &req, StatusCode::OK),
        (&Method::GET, ["healthcheck"]) => {
            let mut resp = Response::new(full("OK"));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            return resp;
        }
        (_, ["v2", ..]) => {}
        _ => return glance_error(StatusCode::NOT_FOUND, "The resource could not be found."),
    }
    let Some(caller) = header(req.headers(), "x-auth-token").and_then(|t| state.keystone.caller(t))
    else {
        return unauthorized(state);
    };
    let rest: Vec<String> = segments[1..]
        .iter()
        .map(|s| super::wire::percent_decode(s))
        .collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (method, rest.as_slice()) {
        (Method::GET, ["images"]) => routes::list(state, &caller, &req),
        (Method::POST, ["images"]) => routes::create(state, &caller, req).await,
        (Method::GET, ["images", id]) => routes::show(state, &caller, id),
        (Method::PATCH, ["images", id]) => patch::update(state, &caller, id, req).await,
        (Method::DELETE, ["images", id]) => routes::delete(state, &caller, id),
        (Method::PUT, ["images", id, "file"]) => transfer::upload(state, &caller, id, req).await,
        (Method::POST, ["images", id, "actions", action @ ("deactivate" | "reactivate")]) => {
            routes::activation(state, &caller, id, *action == "deactivate")
        }
        (Method::PUT, ["images", id, "stage"]) => staging::stage(state, &caller, id, req).await,
        (Method::GET, ["images", id, "file"]) => transfer::download(state, &caller, id, &req).await,
        (Method::GET, ["images", id, "tasks"]) => super::s3_locations::tasks(state, &caller, id),
        (Method::POST, ["images", id, "import"]) => routes::import(state, &caller, id, req).await,
        (Method::POST, ["images", id, "locations"]) => {
            super::s3_locations::add_location(state, &caller, id, req).await
        }
        (Method::GET, ["images", id, "members"]) => routes::members(state, &caller, id),
        (m @ (Method::PUT | Method::DELETE), ["images", id, "tags", tag]) => {
            routes::tag(state, &caller, id, tag, m == Method::PUT)
        }
        (Method::GET, ["info", "import"]) => routes::info_import(state),
        (Method::GET, ["info", "stores"]) => super::stores::info(state),
        (Method::GET, ["schemas", "image"]) => {
            json_response(StatusCode::OK, &routes::image_schema())
        }
        (_, ["images"]) => method_not_allowed("GET, POST"),
        (_, ["images", _]) => method_not_allowed("DELETE, GET, PATCH"),
        (_, ["images", _, "file"]) => method_not_allowed("GET, PUT"),
        (_, ["images", _, "import"]) => method_not_allowed("POST"),
        _ => glance_error(StatusCode::NOT_FOUND, "The resource could not be found."),
    }
}

/// Glance's `reject_method_resource`: 405 with `Allow`.
fn method_not_allowed(allow: &'static str) -> Response<BoxBody> {
    let mut resp = glance_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method specified is not allowed for this resource.",
    );
    resp.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    resp
}
