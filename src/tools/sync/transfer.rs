//! The two ways an image's bytes reach a target region.
//!
//! - [`import`]: the region imports them itself. `sync` sends a glance-download import request
//!   (resent a few times if the region answers 429 or 503), finds the task it started among the
//!   image's tasks (by request id, see [`follow_task`]), and polls it until `success` or
//!   `failure`, publishing the task's `progress.bytes_done` when it reports one.
//! - [`stream`]: `sync` moves them. The source's `GET /file` (resumed with `Range` after drops)
//!   feeds the pipeline's hashers and the target's `PUT /file`; the last frame is only released
//!   once size, MD5 and `os_hash_value` match, so a bad copy is cut short and Glance puts the image
//!   back to `queued`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

use crate::backoff::Backoff;
use crate::glance::{follow_task, FollowError, GlanceTask, ImageId, Pace, TaskStatus};
use crate::http::boxed;
use crate::pipeline::{self, Expected, Remote, Resuming, TransferError};
use crate::tools::apiclient::ImageApi;

use super::copy::{api, refused, timed, Ctx, Region};
use super::error::Failure;

/// An import request refused with 429 or 503 is sent five times in all; the wait before
/// resending is its `Retry-After`, else doubles from two seconds, and is never over 30 s.
const IMPORT_BACKOFF: Backoff =
    Backoff::new(5, Duration::from_secs(2)).capped(Duration::from_secs(30));

/// Consecutive failed task polls tolerated before the copy counts as failed.
const MAX_POLL_ERRORS: u32 = 5;

/// The target image's tasks, as listed now.
async fn tasks_of(ctx: &Ctx, api: &ImageApi, target: &ImageId) -> Result<Vec<GlanceTask>, Failure> {
    let answer = timed(
        ctx,
        "listing import tasks",
        api.get(&format!("/v2/images/{target}/tasks")),
    )
    .await?;
    if !answer.status.is_success() {
        return Err(refused("listing import tasks", &answer));
    }
    Ok(GlanceTask::list(&answer.json()))
}

/// Asks the target region to import the source with glance-download, then polls its task.
pub(super) async fn import(
    ctx: &Ctx,
    region: &Region,
    target: &ImageId,
    source_id: &ImageId,
    done: &AtomicU64,
) -> Result<(), Failure> {
    let client = api(ctx, &region.endpoint).await?;
    let mut attempts = IMPORT_BACKOFF.start();
    let answer = loop {
        let answer = timed(
            ctx,
            "glance-download import",
            client.import_glance_download(target.as_str(), &ctx.from, source_id.as_str()),
        )
        .await?;
        let busy = matches!(answer.status.as_u16(), 429 | 503);
        let pause = match attempts.failed() {
            Some(pause) if busy => pause,
            _ => break answer,
        };
        let wait = answer
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(pause)
            .min(IMPORT_BACKOFF.max);
        debug!(target_id = %target, region = %region.name, status = %answer.status, ?wait, "Import refused for now; retrying");
        tokio::time::sleep(wait).await;
    };
    if answer.status.as_u16() != 202 {
        return Err(refused("glance-download import", &answer));
    }
    follow(ctx, region, target, &answer.request_id(), done).await
}

/// Polls the task the import answered with `request_id` started until it ends, publishing its
/// `progress.bytes_done`.
async fn follow(
    ctx: &Ctx,
    region: &Region,
    target: &ImageId,
    request_id: &str,
    done: &AtomicU64,
) -> Result<(), Failure> {
    let limit = ctx.tuning.transfer_timeout;
    // Small images finish in well under a poll interval: the first polls come sooner, then
    // double up to the interval.
    let pace = Pace {
        first: (ctx.tuning.poll_interval / 8).max(Duration::from_millis(50)),
        max: ctx.tuning.poll_interval,
        // The region records the task before it answers: one missing for a request's time
        // will not appear (a proxy rewrote the request id, say).
        appear_within: ctx.tuning.request_timeout,
        end_within: Some(limit),
        failed_lists: MAX_POLL_ERRORS,
    };
    let list = move || async move {
        // A fresh token for every poll: an import may outlast one.
        let fresh = api(ctx, &region.endpoint).await?;
        let listed = tasks_of(ctx, &fresh, target).await;
        if let Err(failure) = &listed {
            debug!(target_id = %target, %failure, "Polling the import task failed");
        }
        listed
    };
    let progress = |task: &GlanceTask| {
        if let Some(bytes) = task.progress.as_ref().and_then(|p| p.bytes_done) {
            done.store(bytes, Ordering::Relaxed);
        }
    };
    let ended = follow_task(request_id, pace, list, progress)
        .await
        .map_err(|error| match error {
            FollowError::List(failure) => failure,
            FollowError::TimedOut(_) => Failure::ImportTimedOut(limit),
            FollowError::NoRequestId | FollowError::NotListed | FollowError::Several => {
                Failure::ImportFailed(format!(
                    "its task cannot be told from the image's other tasks: {error}"
                ))
            }
        })?;
    progress(&ended);
    match ended.status {
        TaskStatus::Success => Ok(()),
        _ => Err(Failure::ImportFailed(
            ended
                .reason()
                .unwrap_or("the task gave no reason")
                .to_string(),
        )),
    }
}

/// Streams the source's data into the target: source `/file` → hashers → target `PUT /file`.
/// The upload is cut before its last byte unless size and digests match (fail-closed).
pub(super) async fn stream(
    ctx: &Ctx,
    region: &Region,
    target: &ImageId,
    source_id: &ImageId,
    expected: &Expected,
    done: &Arc<AtomicU64>,
) -> Result<(), Failure> {
    // Each cloud's token goes to its own services only.
    let token = ctx.token().await?;
    let remote = Remote {
        glance: ctx.source_glance().clone(),
        base: ctx.source.clone(),
        id: source_id.clone(),
        token: ctx.source_token().await?,
        size: expected.size,
        compact: crate::config::defaults::COMPACT_TRANSFER,
    };
    let mut source = Resuming::new(remote, ctx.tuning.retry);
    if expected.size > 0 {
        // Open the source before touching the target.
        source
            .connect()
            .await
            .map_err(|e| Failure::Transfer(e.into()))?;
    }
    let (body, pump) = pipeline::start(source, expected.clone(), ctx.tuning.limits, done.clone());
    let upload = ctx.glance.put_file(
        &region.endpoint,
        target,
        &token,
        expected.size,
        None,
        boxed(body),
    );
    let transfer = async {
        pipeline::transfer(expected.size, pump, upload)
            .await
            .map(|_| ())
            .map_err(|error| match error {
                TransferError::Pipeline(e) => Failure::Transfer(e),
                TransferError::Store(e) => Failure::Upload(e),
            })
    };
    tokio::time::timeout(ctx.tuning.transfer_timeout, transfer)
        .await
        .map_err(|_| Failure::TransferTimedOut(ctx.tuning.transfer_timeout))?
}
