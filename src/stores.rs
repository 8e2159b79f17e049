//! Multi-store targets: which stores of the fronted Glance an import writes, and what became of
//! each.
//!
//! A Glance with `enabled_backends` lists its stores at `GET /v2/info/stores`; a single-store one
//! answers 404 there. Only on a multi-store Glance do `stores`, `all_stores` and the
//! `X-Image-Meta-Store` header mean anything (upstream ignores them otherwise, and so do we, even
//! where upstream answers 400: see DESIGN §2). The rules below are upstream's
//! `glance.common.utils.get_stores_from_request`, with its messages.

use serde_json::{Map, Value};

pub mod cache;

pub use cache::StoresCache;

/// One store as `GET /v2/info/stores` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    pub id: String,
    /// `"default": "true"`: the store written when the request names none.
    pub default: bool,
    /// `"read-only": "true"` (the `http` store): never written, so never part of `all_stores`.
    pub read_only: bool,
}

/// Parses the `{"stores": [...]}` document; an absent or empty list means a single-store Glance.
pub fn parse_info(doc: &Value) -> Option<Vec<StoreInfo>> {
    let flag = |v: Option<&Value>| match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let stores: Vec<StoreInfo> = doc
        .get("stores")?
        .as_array()?
        .iter()
        .filter_map(|s| {
            Some(StoreInfo {
                id: s.get("id")?.as_str()?.to_string(),
                default: flag(s.get("default")),
                read_only: flag(s.get("read-only")),
            })
        })
        .collect();
    (!stores.is_empty()).then_some(stores)
}

/// The stores one import writes, first to last; empty on a single-store Glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorePlan {
    /// Resolved store ids. The first is written by the sink; the rest by upstream's
    /// `copy-image` (or, with `glance-stage`, by Glance's own `glance-direct` import).
    pub stores: Vec<String>,
    /// `all_stores_must_succeed` (upstream's default: true).
    pub all_must_succeed: bool,
}

impl StorePlan {
    /// The plan on a single-store Glance: no store named anywhere.
    pub fn single() -> Self {
        StorePlan {
            stores: Vec::new(),
            all_must_succeed: true,
        }
    }

    /// The store the sink writes (`X-Image-Meta-Store`), if any.
    pub fn first(&self) -> Option<&str> {
        self.stores.first().map(String::as_str)
    }

    /// The stores written after the first.
    pub fn rest(&self) -> &[String] {
        self.stores.get(1..).unwrap_or_default()
    }

    /// The task's `input.backend`, as upstream records it: `[null]` on a single-store Glance.
    pub fn backend(&self) -> Value {
        if self.stores.is_empty() {
            Value::Array(vec![Value::Null])
        } else {
            Value::from(self.stores.clone())
        }
    }
}

/// Why a request's stores cannot be honoured; the text is upstream's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// 400.
    #[error(
        "All_stores parameter can't be used with x-image-meta-store header or stores parameter"
    )]
    AllStoresWithOthers,
    /// 400.
    #[error("Stores parameter and x-image-meta-store header can't be both specified")]
    StoresWithHeader,
    /// 400: `stores` is not a list of strings.
    #[error("'stores' must be a list of store identifiers")]
    BadStores,
    /// 409, upstream's `UnknownScheme` text.
    #[error("Store for identifier {0} not found")]
    Unknown(String),
    /// 409: the store only serves reads (upstream would fail the task later).
    #[error("Store {0} is read-only and cannot be written")]
    ReadOnly(String),
}

impl StoreError {
    /// Whether upstream answers 409 (an unknown store) rather than 400.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Unknown(_) | StoreError::ReadOnly(_))
    }
}

/// Resolves the stores of an import `body` (and `header`, `X-Image-Meta-Store`) against the
/// Glance's `known` stores.
pub fn resolve(
    body: &Map<String, Value>,
    header: Option<&str>,
    known: &[StoreInfo],
) -> Result<StorePlan, StoreError> {
    let all_must_succeed = body
        .get("all_stores_must_succeed")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let all_stores = body
        .get("all_stores")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let named: Vec<String> = if all_stores {
        if body.contains_key("stores") || header.is_some() {
            return Err(StoreError::AllStoresWithOthers);
        }
        known
            .iter()
            .filter(|s| !s.read_only)
            .map(|s| s.id.clone())
            .collect()
    } else {
        match body.get("stores") {
            Some(list) => {
                if header.is_some() {
                    return Err(StoreError::StoresWithHeader);
                }
                let list = list
                    .as_array()
                    .ok_or(StoreError::BadStores)?
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(StoreError::BadStores)?;
                // An empty list names nothing: the default store, as when it is absent.
                if list.is_empty() {
                    default_store(known)
                } else {
                    list
                }
            }
            None => match header {
                Some(store) => vec![store.to_string()],
                None => default_store(known),
            },
        }
    };
    let mut stores: Vec<String> = Vec::with_capacity(named.len());
    for store in named {
        let info = known
            .iter()
            .find(|s| s.id == store)
            .ok_or_else(|| StoreError::Unknown(store.clone()))?;
        if info.read_only {
            return Err(StoreError::ReadOnly(store));
        }
        if !stores.contains(&store) {
            stores.push(store);
        }
    }
    Ok(StorePlan {
        stores,
        all_must_succeed,
    })
}

fn default_store(known: &[StoreInfo]) -> Vec<String> {
    known
        .iter()
        .find(|s| s.default)
        .map(|s| vec![s.id.clone()])
        .unwrap_or_default()
}

/// The comma-separated store list Glance keeps in an image property (`stores`,
/// `os_glance_failed_import`, `os_glance_importing_to_stores`).
pub fn split_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Which of the planned stores hold the image at the end of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    pub succeeded: Vec<String>,
    pub failed: Vec<String>,
}

impl StoreOutcome {
    /// Reads the outcome of `planned` off the final image: a store holds the image when it is in
    /// the image's `stores`; every other planned store failed.
    pub fn of(planned: &[String], image: &Map<String, Value>) -> Self {
        let held = split_list(image.get("stores"));
        let (succeeded, failed) = planned.iter().cloned().partition(|s| held.contains(s));
        StoreOutcome { succeeded, failed }
    }

    /// The report kept in the task: `{"succeeded": [...], "failed": [...]}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"succeeded": self.succeeded, "failed": self.failed})
    }
}

#[cfg(test)]
mod tests;
