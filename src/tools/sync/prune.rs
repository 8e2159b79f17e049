//! `--prune`: our copies whose source is no longer selected are deleted (or hidden).
//!
//! A copy is ours when it carries [`SOURCE_IMAGE_ID`], its [`SOURCE_REGION`] is the run's source
//! region, its [`SOURCE_CLOUD`] is the run's `--from-cloud` (none when both ends are one cloud)
//! and it belongs to the caller's project (in the targets' cloud); nothing else is ever touched.
//! Which of our copies are pruned depends on how the run selects ([`Scope`]):
//!
//! - filters: a copy whose source is not among the selected images (deleted, no longer
//!   `active`, hidden, or no longer passing the filters). A run whose filters select nothing
//!   prunes nothing (a mistyped filter must not empty a region).
//! - image ids: only copies of the ids given whose source the source region no longer has
//!   (`404`); copies of any other image are left alone.
//!
//! With `--dry-run` the copies are listed (`prune`, `hide`) and nothing changes.

use std::collections::HashSet;
use std::sync::Arc;

use http::{Method as HttpMethod, StatusCode};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::glance::{Image, ImageId};
use crate::tools::apiclient::ImageApi;

use super::copy::{api, refused, timed, Ctx, Region};
use super::error::Failure;
use super::progress::{JobInfo, Observer};
use super::report::{Action, JobResult};
use super::select::{encode, next_path, Pick, Selection, SourceProblem, MAX_IMAGES, PAGE_SIZE};
use super::{SOURCE_CLOUD, SOURCE_IMAGE_ID, SOURCE_REGION};

/// What `--prune` does to a copy whose source is no longer selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Prune {
    /// Delete it.
    Delete,
    /// Hide it (`os_hidden: true`): left in place, out of default image lists.
    Hide,
}

/// Which copies of ours a run may prune.
#[derive(Debug)]
pub(super) enum Scope {
    /// Selected by filters: copies of any other source.
    Selected(HashSet<String>),
    /// Selected by ids: copies of these ids, whose sources are gone.
    Gone(HashSet<String>),
}

impl Scope {
    /// The scope of a run that selected `picks` by `selection`.
    pub(super) fn of(selection: &Selection, picks: &[Pick]) -> Scope {
        match selection {
            Selection::Filters(_) => {
                Scope::Selected(picks.iter().map(|p| p.id.to_string()).collect())
            }
            Selection::Ids(_) => Scope::Gone(
                picks
                    .iter()
                    .filter(|p| matches!(p.found, Err(SourceProblem::NotFound)))
                    .map(|p| p.id.to_string())
                    .collect(),
            ),
        }
    }

    /// Whether a copy of `source_id` is pruned.
    fn prunes(&self, source_id: &str) -> bool {
        match self {
            Scope::Selected(kept) => !kept.is_empty() && !kept.contains(source_id),
            Scope::Gone(gone) => gone.contains(source_id),
        }
    }
}

/// One copy to prune in one region, or why a region's copies could not be listed.
struct Candidate {
    region: Arc<Region>,
    found: Result<(String, String, Option<String>), Failure>,
}

/// Prunes in every region; results are numbered after the `first` copy jobs.
pub(super) async fn run(
    ctx: &Ctx,
    regions: &[Arc<Region>],
    scope: &Scope,
    mode: Prune,
    first: usize,
    observer: &dyn Observer,
) -> Vec<JobResult> {
    if matches!(scope, Scope::Selected(kept) if kept.is_empty()) {
        warn!("--prune: the filters select no image, so nothing is pruned");
        return Vec::new();
    }
    let mut candidates = Vec::new();
    for region in regions {
        match copies(ctx, region, mode).await {
            Ok(found) => candidates.extend(
                found
                    .into_iter()
                    .filter(|(_, source, _)| scope.prunes(source))
                    .map(|c| Candidate {
                        region: region.clone(),
                        found: Ok(c),
                    }),
            ),
            Err(failure) => candidates.push(Candidate {
                region: region.clone(),
                found: Err(failure),
            }),
        }
    }
    let jobs = first + candidates.len();
    let mut results = Vec::with_capacity(candidates.len());
    for (n, candidate) in candidates.into_iter().enumerate() {
        let result = act(ctx, candidate, mode, first + n + 1).await;
        let info = JobInfo {
            index: result.index,
            jobs,
            source_id: result.source_id.clone(),
            name: result.name.clone(),
            region: result.region.clone(),
            size: 0,
        };
        observer.finished(&info, &result);
        results.push(result);
    }
    results
}

/// Deletes or hides one copy (or says it would); a refusal is a failed result.
async fn act(ctx: &Ctx, candidate: Candidate, mode: Prune, index: usize) -> JobResult {
    let region = candidate.region;
    let mut result = JobResult {
        index,
        source_id: String::new(),
        name: None,
        region: region.name.clone(),
        target_id: None,
        action: Action::Failed,
        method: None,
        bytes: 0,
        seconds: 0.0,
        error: None,
    };
    let (target, source, name) = match candidate.found {
        Ok(found) => found,
        Err(failure) => {
            result.error = Some(format!(
                "pruning in region {}: listing the copies: {failure}",
                region.name
            ));
            return result;
        }
    };
    result.source_id = source.clone();
    result.name = name;
    result.target_id = Some(target.clone());
    let outcome = match (mode, ctx.dry_run) {
        (Prune::Delete, true) => Ok(Action::WouldPrune),
        (Prune::Hide, true) => Ok(Action::WouldHide),
        (mode, false) => apply(ctx, &region, &target, mode).await,
    };
    match outcome {
        Ok(action) => {
            info!(image_id = %source, region = %region.name, target_id = %target, action = action.as_str(), "Copy pruned");
            result.action = action;
        }
        Err(failure) => {
            result.error = Some(format!(
                "pruning the copy {target} of image {source} in region {}: {failure}",
                region.name
            ));
        }
    }
    result
}

async fn apply(ctx: &Ctx, region: &Region, target: &str, mode: Prune) -> Result<Action, Failure> {
    let api = api(ctx, &region.endpoint).await?;
    match mode {
        Prune::Delete => {
            let path = format!("/v2/images/{target}");
            let call = api.call(HttpMethod::DELETE, &path, None, crate::http::empty());
            let answer = timed(ctx, "image delete", call).await?;
            if answer.status != StatusCode::NO_CONTENT && answer.status != StatusCode::NOT_FOUND {
                return Err(refused("image delete", &answer));
            }
            Ok(Action::Pruned)
        }
        Prune::Hide => {
            let ops = json!([{"op": "replace", "path": "/os_hidden", "value": true}]);
            let answer = timed(ctx, "hiding the copy", api.patch(target, &ops)).await?;
            if !answer.status.is_success() {
                return Err(refused("hiding the copy", &answer));
            }
            Ok(Action::Hidden)
        }
    }
}

/// Our copies from the run's source region in `region`: (copy id, source id, name). Hidden ones
/// too when they are to be deleted.
async fn copies(
    ctx: &Ctx,
    region: &Region,
    mode: Prune,
) -> Result<Vec<(String, String, Option<String>)>, Failure> {
    let api = api(ctx, &region.endpoint).await?;
    let base = format!(
        "/v2/images?owner={}&{SOURCE_REGION}={}&limit={PAGE_SIZE}",
        encode(&ctx.session.project_id),
        encode(&ctx.from)
    );
    let mut found = list_all(ctx, &api, base.clone()).await?;
    if mode == Prune::Delete {
        found.extend(list_all(ctx, &api, format!("{base}&os_hidden=true")).await?);
    }
    let mut seen = HashSet::new();
    Ok(found
        .into_iter()
        .filter(|i| i.owner() == Some(ctx.session.project_id.as_str()))
        .filter(|i| text(i, SOURCE_REGION) == Some(ctx.from.as_str()))
        .filter(|i| text(i, SOURCE_CLOUD) == ctx.source_cloud())
        .filter_map(|i| {
            let id = text(&i, "id").and_then(ImageId::parse)?;
            let source = text(&i, SOURCE_IMAGE_ID).and_then(ImageId::parse)?;
            let name = text(&i, "name").map(str::to_string);
            seen.insert(id.to_string())
                .then(|| (id.to_string(), source.to_string(), name))
        })
        .collect())
}

fn text<'a>(image: &'a Image, key: &str) -> Option<&'a str> {
    image.0.get(key).and_then(Value::as_str)
}

/// Every page of the list at `path`, up to [`MAX_IMAGES`] images.
async fn list_all(ctx: &Ctx, api: &ImageApi, path: String) -> Result<Vec<Image>, Failure> {
    let mut next = Some(path);
    let mut images = Vec::new();
    while let Some(path) = next.take() {
        let answer = timed(ctx, "listing the copies", api.get(&path)).await?;
        if !answer.status.is_success() {
            return Err(refused("listing the copies", &answer));
        }
        let doc = answer.json();
        let page: Vec<Image> = doc
            .get("images")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_object().cloned().map(Image))
                    .collect()
            })
            .unwrap_or_default();
        if page.is_empty() || images.len() + page.len() > MAX_IMAGES {
            images.extend(page);
            break;
        }
        images.extend(page);
        next = doc.get("next").and_then(Value::as_str).and_then(next_path);
    }
    Ok(images)
}
