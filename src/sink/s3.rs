//! The `s3` sink: the verified bytes go straight into the bucket of an S3-backed Glance
//! (multipart upload, key = image id), past Glance's Python ingest; then the object is registered
//! on the queued image with `POST /v2/images/{id}/locations`, its verified `os_hash` passed as
//! validation data, and Glance's `location_import` task is followed to its end.
//!
//! The location call carries the caller's token and the sidecar's own service token as
//! `X-Service-Token`: Glance lets only callers with the `service` role add non-http locations.
//! With Glance's `do_secure_hash = True` (its default) Glance reads the object back, computes
//! `checksum` and `os_hash_value` and compares them with the validation data before `active`;
//! with `False` it takes the validation data as given and leaves `checksum` unset.
//!
//! An empty image goes through `glance-upload` instead: Glance refuses a location of size 0.
//!
//! The object is deleted only when Glance surely does not use it: after a definite refusal of
//! the location (a 4xx to `POST /locations`, which Glance answers before it starts any task), or
//! when a re-read of the image shows that no location of it can point at the key. Anything else
//! (a timeout, a 5xx, a lost token, a task that cannot be followed) keeps the object, and the
//! task message names it so that an operator can remove it once no image uses it.
//!
//! Glance 33 does not show an image's locations to its owner (`GET /locations` needs the
//! `service` or `admin` role, the `locations` attribute `show_multiple_locations`), so the
//! re-read goes by what Glance's location code does to the image: adding a location sets the
//! image's `size` (`location.py _set_image_size`), only a change to `queued` clears it
//! (`domain Image.status`), and every revert of `location_import` pops the location before or
//! with that change. So a `queued` image without `size` and without `os_glance_import_task`
//! (no task running) has no location; any other state may hold the object.

use std::time::Duration;

use serde_json::json;

use crate::glance::{follow_task, FollowError, Glance, GlanceStatus, Image, Pace, TaskStatus};
use crate::http::HttpClient;
use crate::keystone::{Keystone, ServiceCredentials, Token};
use crate::pipeline::{SinkBody, Verified};
use crate::s3::{self, S3Client, S3Config, UploadError};

use super::{GlanceUpload, SinkError, SinkFuture, StoreSink, Target};

/// How often Glance's `location_import` task is polled, at first and at most.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(2);

/// Writes into Glance's S3 bucket and registers the location.
pub struct S3Sink {
    s3: S3Client,
    glance: Glance,
    glance_url: String,
    service: Option<(Keystone, ServiceCredentials)>,
    timeout: Duration,
    empty: GlanceUpload,
}

impl S3Sink {
    /// The sink for `config`'s bucket in front of the Glance at `glance_url`; `service` is the
    /// sidecar's own Keystone user (role `service`), required by Glance's location API.
    pub fn new(
        http: HttpClient,
        glance: Glance,
        glance_url: &str,
        config: S3Config,
        service: Option<(Keystone, ServiceCredentials)>,
        timeout: Duration,
    ) -> Self {
        S3Sink {
            s3: S3Client::new(http, config, timeout),
            glance: glance.clone(),
            glance_url: glance_url.to_string(),
            service,
            timeout,
            empty: GlanceUpload::new(glance, glance_url),
        }
    }

    /// A fresh token of the sidecar's service user.
    async fn service_token(&self) -> Result<Token, SinkError> {
        let Some((keystone, creds)) = &self.service else {
            return Err(SinkError::NoServiceCredentials);
        };
        keystone
            .service_token(creds)
            .await
            .map_err(SinkError::ServiceCredentials)
    }

    async fn store_object(&self, target: &Target, body: SinkBody) -> Result<(), SinkError> {
        // Fail before the first byte moves if the service user cannot log in.
        self.service_token().await?;
        let key = target.image_id.as_str();
        let verified = match s3::upload(&self.s3, key, target.size, body).await {
            Ok(verified) => verified,
            Err(UploadError::S3(error)) => return Err(SinkError::S3(error)),
            Err(other) => return Err(SinkError::Aborted(other.to_string())),
        };
        let (error, task_failed) = match self.register(target, &verified).await {
            Ok(()) => return Ok(()),
            Err(Registration::Refused(error)) => {
                self.delete(target).await;
                return Err(error);
            }
            Err(Registration::Unsure(error)) => (error, false),
            Err(Registration::TaskFailed(error)) => (error, true),
        };
        let object = self.s3.config().location_uri(key);
        match self.settle(target).await {
            Holding::Active if !task_failed => {
                tracing::warn!(%error, image_id = %target.image_id, "Glance made the image active on the S3 location although following its task failed");
                Ok(())
            }
            Holding::Active => Err(kept(error, &object, "the image is active".into())),
            Holding::Free => {
                self.delete(target).await;
                Err(error)
            }
            Holding::Kept(why) => Err(kept(error, &object, why)),
        }
    }

    /// Deletes the object of a location Glance does not hold.
    async fn delete(&self, target: &Target) {
        if let Err(error) = self.s3.delete_object(target.image_id.as_str()).await {
            tracing::warn!(%error, image_id = %target.image_id, "Failed to delete the S3 object of a refused location");
        }
    }

    /// Re-reads the image after an indefinite answer until it shows whether a location of it
    /// may point at the object (a running task is waited for, up to the request timeout).
    async fn settle(&self, target: &Target) -> Holding {
        let mut delay = POLL_FIRST;
        let until = tokio::time::Instant::now() + self.timeout;
        loop {
            let image = match self.read_image(target).await {
                Ok(image) => image,
                Err(why) => return Holding::Kept(format!("the image could not be read: {why}")),
            };
            let status = image.status().unwrap_or("unknown").to_string();
            let busy = image.0.contains_key("os_glance_import_task");
            match status.as_str() {
                "active" => return Holding::Active,
                "queued" if !busy && image.size().is_none() => return Holding::Free,
                "queued" if !busy => {
                    return Holding::Kept(
                        "the queued image has a size: Glance added a location".into(),
                    )
                }
                "queued" | "importing" if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(POLL_MAX);
                }
                _ if busy => {
                    return Holding::Kept(format!(
                        "the image is {status} and a Glance task still holds it"
                    ))
                }
                _ => return Holding::Kept(format!("the image is {status}")),
            }
        }
    }

    /// The image, read with the caller's token or, when Glance refuses that, the service user's.
    async fn read_image(&self, target: &Target) -> Result<Image, String> {
        let error = match self
            .glance
            .get_image(&self.glance_url, &target.image_id, &target.token)
            .await
        {
            Ok(image) => return Ok(image),
            Err(error) => error,
        };
        // The caller's token may have expired, or lost sight of the image, during the copy.
        if !(error.is_unauthorized() || error.is_forbidden() || error.is_not_found()) {
            return Err(error.to_string());
        }
        let service = self
            .service_token()
            .await
            .map_err(|e| format!("{error}; {e}"))?;
        self.glance
            .get_image(&self.glance_url, &target.image_id, &service)
            .await
            .map_err(|e| format!("{error}; with the service credentials: {e}"))
    }

    /// Adds the location to the queued image and follows Glance's task to its end.
    async fn register(&self, target: &Target, verified: &Verified) -> Result<(), Registration> {
        // A new token: the first one may have aged through a long copy.
        let service = self.service_token().await.map_err(Registration::Refused)?;
        let url = self.s3.config().location_uri(target.image_id.as_str());
        let body = json!({"url": url, "validation_data": {
            "os_hash_algo": verified.os_hash_algo.name(),
            "os_hash_value": verified.os_hash_value}});
        let request_id = self.add_location(target, &service, &body).await?;
        tracing::debug!(image_id = %target.image_id, "Location added; following Glance's task");
        self.follow(target, &request_id).await
    }

    /// `POST /v2/images/{id}/locations`; returns the answer's request id (the task records it).
    async fn add_location(
        &self,
        target: &Target,
        service: &Token,
        body: &serde_json::Value,
    ) -> Result<String, Registration> {
        let tokens = (&target.token, service);
        let url = &self.glance_url;
        match self
            .glance
            .add_location(url, &target.image_id, tokens, body)
            .await
        {
            Ok(request_id) => Ok(request_id),
            // Glance answers every refusal before it starts the task; a 5xx (or a proxy's
            // timeout) may come after the task started.
            Err(error) if error.is_refusal() => Err(Registration::Refused(error.into())),
            Err(error) => Err(Registration::Unsure(error.into())),
        }
    }

    /// Polls the image's tasks until the `location_import` task of `request_id` ends (Glance
    /// reads the whole object back when `do_secure_hash` is on: this takes a while for a big
    /// image; the import's `total_timeout` bounds it).
    async fn follow(&self, target: &Target, request_id: &str) -> Result<(), Registration> {
        let pace = Pace {
            first: POLL_FIRST,
            max: POLL_MAX,
            appear_within: self.timeout,
            end_within: None,
            failed_lists: 0,
        };
        let list = || {
            self.glance
                .tasks(&self.glance_url, &target.image_id, &target.token)
        };
        let unsure = |message: String| Registration::Unsure(SinkError::ImportFailed(message));
        let ended =
            follow_task(request_id, pace, list, |_| {})
                .await
                .map_err(|error| match error {
                    FollowError::List(error) => Registration::Unsure(error.into()),
                    FollowError::Several => unsure(format!(
                        "Glance lists several tasks for the S3 location (request {request_id})"
                    )),
                    FollowError::NoRequestId
                    | FollowError::NotListed
                    | FollowError::TimedOut(_) => unsure(
                        "Glance accepted the S3 location but no location_import task appeared"
                            .into(),
                    ),
                })?;
        match ended.status {
            TaskStatus::Success => Ok(()),
            _ => {
                let message = ended.message.as_deref().unwrap_or("no reason given");
                Err(Registration::TaskFailed(SinkError::ImportFailed(format!(
                    "Glance refused the S3 location: {message}"
                ))))
            }
        }
    }
}

/// How registering the location failed.
enum Registration {
    /// Glance refused the location before taking it: the object is not Glance's.
    Refused(SinkError),
    /// Glance's `location_import` task ended `failure`: it reverts what it added, but the image
    /// is re-read before the object is deleted.
    TaskFailed(SinkError),
    /// No definite answer (timeout, transport, 5xx, a task that cannot be followed): Glance may
    /// hold the location.
    Unsure(SinkError),
}

/// What a re-read of the image says about the object.
enum Holding {
    /// The image is active: Glance took the location.
    Active,
    /// No location of the image can point at the object.
    Free,
    /// A location may point at the object (or the image could not be read): why.
    Kept(String),
}

/// The failure of an import whose object stays, with the object named for the operator.
fn kept(error: SinkError, object: &str, why: String) -> SinkError {
    // The object first: the image's one-line summary keeps only the start of a message.
    SinkError::ImportFailed(format!(
        "the S3 object {object} was kept because {why} (remove it once no image uses it) after: {error}"
    ))
}

impl StoreSink for S3Sink {
    fn name(&self) -> &'static str {
        "s3"
    }

    /// The multipart upload leaves the image `queued`; only the short registration at its end
    /// changes it.
    fn glance_changes_status(&self) -> bool {
        false
    }

    fn store<'a>(&'a self, target: &'a Target, body: SinkBody) -> SinkFuture<'a> {
        if target.size == 0 {
            return self.empty.store(target, body);
        }
        Box::pin(self.store_object(target, body))
    }
}
