//! Putting the target back after a failed import, and never leaving a bad copy usable.
//!
//! The target is re-read once it has settled (Glance finishes an aborted upload in its own
//! time). A `queued` image gets its synced metadata restored, as upstream's revert does. An image
//! that is `active` although the import failed means some server stored data the sidecar cut
//! short or never verified: unless its size and digests are the source's, it is deactivated (the
//! strongest step Glance's API offers short of deleting the caller's image), first with the
//! caller's token, then with the sidecar's service credentials, and the task says so.

use std::time::Duration;

use crate::glance::{GlanceError, GlanceStatus, Image, PatchOp};
use crate::keystone::Token;
use crate::pipeline::Expected;
use crate::verify;

use super::{target_error, ImportError, ImportRequest, Importer};

/// How long to wait for Glance to finish putting an aborted upload back to `queued`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the target is re-read while it settles.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// What a failed import has to undo, filled in as the import goes.
#[derive(Debug, Default)]
pub(super) struct Undo {
    /// The patch restoring the synced metadata, once the sync was sent.
    pub synced: Option<Vec<PatchOp>>,
    /// What the source promised, once data bytes were sent to a sink that stores them as they
    /// are: the target must then be re-read for an image some server made `active` anyway.
    pub sent: Option<Expected>,
}

impl Undo {
    fn is_empty(&self) -> bool {
        self.synced.is_none() && self.sent.is_none()
    }
}

/// How a failed import left the target, when that needs saying in the task.
#[derive(Debug)]
pub(super) enum Aftermath {
    /// An `active` image holding other data than the source's was deactivated.
    Deactivated { stored: String },
    /// An `active` image holding other data than the source's could not be deactivated.
    NotDeactivated { stored: String, error: GlanceError },
    /// The image is `active` with the source's size and digests: the data is the source's
    /// although a later step failed.
    ActiveVerified,
}

impl std::fmt::Display for Aftermath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Aftermath::Deactivated { stored } => write!(
                f,
                "the target Glance stored the data it was sent anyway and made the image active \
                 ({stored}), which is not the source's data: the image was deactivated so that it \
                 cannot be used; delete it and import again"
            ),
            Aftermath::NotDeactivated { stored, error } => write!(
                f,
                "the target Glance stored the data it was sent anyway and made the image active \
                 ({stored}), which is not the source's data, and deactivating it failed ({error}): \
                 the image is NOT a copy of the source; delete it"
            ),
            Aftermath::ActiveVerified => write!(
                f,
                "the target image is active with the source's size and checksums"
            ),
        }
    }
}

impl Importer {
    /// Brings the target back after a failed import (see the module docs). `Ok(Some(_))` is what
    /// the task's message must add.
    pub(super) async fn undo(
        &self,
        request: &ImportRequest,
        undo: &Undo,
    ) -> Result<Option<Aftermath>, ImportError> {
        if undo.is_empty() {
            return Ok(None);
        }
        match self.undo_with(&request.token, request, undo).await {
            // The caller's token ran out: the sidecar's own credentials can still put it back.
            Err(ImportError::TokenExpired) => {
                let token = self.service_token().await?;
                let result = self.undo_with(&token, request, undo).await;
                if matches!(result, Err(ImportError::TokenExpired)) {
                    self.forget_service_token(&token).await;
                }
                result
            }
            other => other,
        }
    }

    async fn undo_with(
        &self,
        token: &Token,
        request: &ImportRequest,
        undo: &Undo,
    ) -> Result<Option<Aftermath>, ImportError> {
        let image = self.settled(token, request).await?;
        match (image.status(), &undo.sent) {
            (Some("queued"), _) => {
                if let Some(ops) = undo.synced.as_deref().filter(|ops| !ops.is_empty()) {
                    self.glance
                        .patch_image(&self.glance_url, &request.image_id, token, ops)
                        .await
                        .map_err(target_error)?;
                }
                Ok(None)
            }
            (Some("active"), Some(expected)) if verify::check_stored(expected, &image).is_ok() => {
                Ok(Some(Aftermath::ActiveVerified))
            }
            (Some("active"), Some(_)) => Ok(Some(self.deactivate(request, &image).await)),
            (other, _) => Err(ImportError::TargetNotQueued(
                other.unwrap_or("unknown").to_string(),
            )),
        }
    }

    /// The target once it has left the states of an upload in progress (or the last reading
    /// when it has not within [`SETTLE_TIMEOUT`]).
    async fn settled(&self, token: &Token, request: &ImportRequest) -> Result<Image, ImportError> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let image = self
                .glance
                .get_image(&self.glance_url, &request.image_id, token)
                .await
                .map_err(target_error)?;
            let moving = matches!(image.status(), Some("saving" | "importing" | "uploading"));
            if !moving || tokio::time::Instant::now() >= deadline {
                return Ok(image);
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// Deactivates an image that must not be used: with the caller's token, else (refused or
    /// expired) with the service credentials.
    async fn deactivate(&self, request: &ImportRequest, image: &Image) -> Aftermath {
        let stored = match (image.size(), image.checksum()) {
            (Some(size), Some(checksum)) => format!("{size} bytes, checksum {checksum}"),
            (Some(size), None) => format!("{size} bytes"),
            _ => "size unknown".to_string(),
        };
        let (url, id) = (&self.glance_url, &request.image_id);
        let mut result = self.glance.deactivate(url, id, &request.token).await;
        let refused = |e: &GlanceError| e.is_unauthorized() || e.is_forbidden();
        if matches!(&result, Err(e) if refused(e)) && self.service.is_some() {
            result = match self.service_token().await {
                Ok(token) => {
                    let answer = self.glance.deactivate(url, id, &token).await;
                    if matches!(&answer, Err(e) if e.is_unauthorized()) {
                        self.forget_service_token(&token).await;
                    }
                    answer
                }
                Err(_) => result,
            };
        }
        match result {
            Ok(()) => Aftermath::Deactivated { stored },
            Err(error) => Aftermath::NotDeactivated { stored, error },
        }
    }

    /// Drops the reused service token after Glance refused it (401), so the next use logs in.
    async fn forget_service_token(&self, token: &Token) {
        if let Some((keystone, _)) = &self.service {
            keystone.forget_service_token(token).await;
        }
    }

    /// A token of the sidecar's own Keystone user (`[service_credentials]`).
    async fn service_token(&self) -> Result<Token, ImportError> {
        let Some((keystone, creds)) = &self.service else {
            return Err(ImportError::TokenExpired);
        };
        keystone
            .service_token(creds)
            .await
            .map_err(ImportError::ServiceCredentials)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hash::HashAlgo;

    /// Whether a failed import's `active` image is kept as the source's data.
    fn holds(image: &Image, expected: &Expected) -> bool {
        verify::check_stored(expected, image).is_ok()
    }

    fn image(size: u64, checksum: &str) -> Image {
        let doc = json!({"status": "active", "size": size, "checksum": checksum,
                         "os_hash_algo": "sha512", "os_hash_value": "aa"});
        Image(doc.as_object().cloned().unwrap())
    }

    fn expected(size: u64, checksum: &str) -> Expected {
        Expected {
            size,
            checksum: Some(checksum.into()),
            os_hash: Some((HashAlgo::Sha512, "AA".into())),
        }
    }

    #[test]
    fn a_stored_image_holds_the_source_only_with_its_size_and_digests() {
        assert!(holds(&image(10, "ab"), &expected(10, "AB")));
        assert!(!holds(&image(9, "ab"), &expected(10, "ab")));
        assert!(!holds(&image(10, "ac"), &expected(10, "ab")));
        let mut other_hash = expected(10, "ab");
        other_hash.os_hash = Some((HashAlgo::Sha512, "bb".into()));
        assert!(!holds(&image(10, "ab"), &other_hash));
    }

    #[test]
    fn nothing_comparable_is_not_holding() {
        let bare = Image(
            json!({"status": "active", "size": 10})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert!(!holds(&bare, &expected(10, "ab")));
    }
}
