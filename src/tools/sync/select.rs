//! Which source images a run copies: explicit ids, or every active image of the source region
//! that passes the filters.
//!
//! Filters are sent to Glance where it can apply them (`visibility`, `tag`, `KEY=VALUE`, and
//! `name` when the pattern has no glob characters) and checked again here, with the name glob, so a
//! Glance that ignores a filter cannot widen the selection. The list is read page by page
//! (`limit` + the `next` link), with a bound on pages and images.

use std::collections::HashSet;
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use serde_json::Value;

use crate::glance::{Image, ImageId};
use crate::tools::apiclient::ImageApi;

use super::error::OptionsError;

/// Images asked for per page (Glance caps it at its `api_limit_max`, 1000 by default).
pub(super) const PAGE_SIZE: usize = 200;

/// Most images one run selects.
pub(super) const MAX_IMAGES: usize = 100_000;

/// Visibility values Glance's list understands.
const VISIBILITIES: [&str; 5] = ["public", "private", "shared", "community", "all"];

/// List parameters that are not properties, refused as `--property` keys.
const LIST_PARAMS: [&str; 10] = [
    "limit",
    "marker",
    "sort",
    "sort_key",
    "sort_dir",
    "member_status",
    "tag",
    "visibility",
    "status",
    "os_hidden",
];

/// The filters of a run; an image must pass all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// A glob over the image name (`*`, `?`, `[...]`); an image without a name never matches.
    pub name: Option<String>,
    /// Tags the image must all carry.
    pub tags: Vec<String>,
    /// `public`, `private`, `shared`, `community` or `all`.
    pub visibility: Option<String>,
    /// Properties the image must have, with exactly these values.
    pub properties: Vec<(String, String)>,
}

impl Filters {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.tags.is_empty()
            && self.visibility.is_none()
            && self.properties.is_empty()
    }

    /// Checks every filter; returns the compiled name glob.
    pub fn validate(&self) -> Result<Option<GlobMatcher>, OptionsError> {
        if let Some(v) = &self.visibility {
            if !VISIBILITIES.contains(&v.as_str()) {
                return Err(OptionsError::BadVisibility(v.clone()));
            }
        }
        if self.tags.iter().any(String::is_empty) {
            return Err(OptionsError::EmptyTag);
        }
        for (key, _) in &self.properties {
            if LIST_PARAMS.contains(&key.as_str()) {
                return Err(OptionsError::ReservedProperty(key.clone()));
            }
        }
        self.name
            .as_deref()
            .map(|pattern| {
                Glob::new(pattern)
                    .map(|g| g.compile_matcher())
                    .map_err(|e| OptionsError::BadGlob {
                        pattern: pattern.to_string(),
                        reason: e.kind().to_string(),
                    })
            })
            .transpose()
    }

    /// The query string of the first page (`status=active` always).
    pub fn query(&self, page_size: usize) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![("status", "active")];
        let limit = page_size.to_string();
        if let Some(v) = self.visibility.as_deref().filter(|v| *v != "all") {
            pairs.push(("visibility", v));
        }
        for tag in &self.tags {
            pairs.push(("tag", tag));
        }
        if let Some(name) = self.name.as_deref().filter(|n| !is_glob(n)) {
            pairs.push(("name", name));
        }
        for (k, v) in &self.properties {
            pairs.push((k, v));
        }
        let mut query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        query.push(format!("limit={limit}"));
        query.join("&")
    }

    /// Whether `image` passes every filter (checked here even when Glance filtered already).
    pub fn matches(&self, image: &Image, glob: Option<&GlobMatcher>) -> bool {
        let text = |key: &str| image.0.get(key).and_then(value_text);
        if let Some(glob) = glob {
            if !text("name").is_some_and(|name| glob.is_match(name.as_str())) {
                return false;
            }
        }
        if let Some(v) = self.visibility.as_deref().filter(|v| *v != "all") {
            if text("visibility").as_deref() != Some(v) {
                return false;
            }
        }
        let tags: Vec<&str> = image
            .0
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !self.tags.iter().all(|t| tags.contains(&t.as_str())) {
            return false;
        }
        self.properties
            .iter()
            .all(|(k, v)| text(k).as_deref() == Some(v.as_str()))
    }
}

/// Parses a `--property` argument, `KEY=VALUE` (the value may be empty or contain `=`).
pub fn parse_property(text: &str) -> Result<(String, String), OptionsError> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(OptionsError::BadProperty(text.to_string())),
    }
}

/// What the run copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These images, in this order.
    Ids(Vec<ImageId>),
    /// Every active image passing the filters, newest first.
    Filters(Filters),
}

/// Why a source image asked for by id cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceProblem {
    /// The source region has no such image (or the user cannot see it).
    NotFound,
    /// Reading it failed; the text says how.
    Unreadable(String),
}

/// One selected source image: its document, or why it cannot be copied.
#[derive(Debug)]
pub struct Pick {
    pub id: ImageId,
    pub found: Result<Image, SourceProblem>,
}

impl Pick {
    /// The image name, if it has one.
    pub fn name(&self) -> Option<String> {
        self.found
            .as_ref()
            .ok()
            .and_then(|i| i.0.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The image size, if known.
    pub fn size(&self) -> u64 {
        self.found.as_ref().ok().and_then(Image::size).unwrap_or(0)
    }
}

/// Why the list could not be read.
#[derive(Debug)]
pub(super) enum ListError {
    Failed(String),
    TooMany,
}

/// Reads each image asked for by id (a missing or unreadable one becomes a failed copy later).
pub(super) async fn by_ids(api: &ImageApi, ids: &[ImageId], timeout: Duration) -> Vec<Pick> {
    let mut picks = Vec::with_capacity(ids.len());
    for id in ids {
        let answer = tokio::time::timeout(timeout, api.get(&format!("/v2/images/{id}"))).await;
        let found = match answer {
            Err(_) => Err(SourceProblem::Unreadable(format!(
                "GET /v2/images/{id} got no answer within {timeout:?}"
            ))),
            Ok(Err(error)) => Err(SourceProblem::Unreadable(error.to_string())),
            Ok(Ok(answer)) if answer.status == http::StatusCode::NOT_FOUND => {
                Err(SourceProblem::NotFound)
            }
            Ok(Ok(answer)) if !answer.status.is_success() => {
                Err(SourceProblem::Unreadable(format!(
                    "GET /v2/images/{id} answered {}: {}",
                    answer.status,
                    crate::glance::error_message(&answer.body)
                )))
            }
            Ok(Ok(answer)) => match answer.json() {
                Value::Object(map) => Ok(Image(map)),
                _ => Err(SourceProblem::Unreadable(format!(
                    "GET /v2/images/{id} answered something that is not an image"
                ))),
            },
        };
        picks.push(Pick {
            id: id.clone(),
            found,
        });
    }
    picks
}

/// Reads every page of the filtered list; keeps the images passing [`Filters::matches`].
pub(super) async fn list(
    api: &ImageApi,
    filters: &Filters,
    glob: Option<&GlobMatcher>,
    page_size: usize,
    timeout: Duration,
) -> Result<Vec<Pick>, ListError> {
    let mut next = Some(format!("/v2/images?{}", filters.query(page_size)));
    let mut seen = HashSet::new();
    let mut picks = Vec::new();
    let max_pages = MAX_IMAGES / page_size.max(1) + 2;
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        if pages > max_pages {
            return Err(ListError::TooMany);
        }
        let answer = tokio::time::timeout(timeout, api.get(&path))
            .await
            .map_err(|_| ListError::Failed(format!("no answer within {timeout:?}")))?
            .map_err(|e| ListError::Failed(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(ListError::Failed(format!(
                "GET /v2/images answered {}: {}",
                answer.status,
                crate::glance::error_message(&answer.body)
            )));
        }
        let doc = answer.json();
        let Some(images) = doc.get("images").and_then(Value::as_array) else {
            return Err(ListError::Failed("the answer has no image list".into()));
        };
        let mut fresh = 0;
        for item in images {
            let Some(map) = item.as_object() else {
                continue;
            };
            let image = Image(map.clone());
            let Some(id) = image.0.get("id").and_then(Value::as_str) else {
                continue;
            };
            let Some(id) = ImageId::parse(id) else {
                continue;
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            fresh += 1;
            if filters.matches(&image, glob) && image.status() == Some("active") {
                if picks.len() >= MAX_IMAGES {
                    return Err(ListError::TooMany);
                }
                picks.push(Pick {
                    id,
                    found: Ok(image),
                });
            }
        }
        // A page with nothing new means the server is looping: stop rather than spin.
        next = doc
            .get("next")
            .and_then(Value::as_str)
            .filter(|_| fresh > 0)
            .and_then(next_path);
    }
    Ok(picks)
}

/// The path of a `next` link, which must stay on `/v2/images` (a full URL is cut to its path,
/// so the link cannot send the token elsewhere).
fn next_path(link: &str) -> Option<String> {
    let start = link.find("/v2/images")?;
    let path = &link[start..];
    path.starts_with("/v2/images?").then(|| path.to_string())
}

/// Whether `pattern` uses glob syntax.
fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// A JSON scalar as text, as Glance compares filter values.
fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
