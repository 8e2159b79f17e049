//! Store sinks: where verified image bytes go.
//!
//! The contract is begin → write → commit | abort, expressed through the [`SinkBody`] a sink
//! reads: it begins the upload for `size` bytes, writes the frames as they come, and commits only
//! when the body ends cleanly (which the pipeline allows only after verification). When the body
//! fails, the sink aborts so that the store never holds the image as complete.

mod glance_stage;
mod glance_upload;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use glance_stage::GlanceStage;
pub use glance_upload::GlanceUpload;

use crate::config::SinkKind;
use crate::glance::{Glance, GlanceError, ImageId};
use crate::keystone::Token;
use crate::pipeline::SinkBody;

/// The image a sink writes, and on whose behalf.
#[derive(Debug, Clone)]
pub struct Target {
    pub image_id: ImageId,
    pub size: u64,
    /// The first requested store (`X-Image-Meta-Store`), if any.
    pub store: Option<String>,
    pub token: Token,
}

/// Why a sink did not commit.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store refused or failed the upload.
    #[error("the target Glance refused the upload: {0}")]
    Glance(#[from] GlanceError),
    /// The target Glance's own import task failed (glance-stage).
    #[error("the target Glance's import task failed: {0}")]
    ImportFailed(String),
}

/// The sinks of this sidecar, one of them the default.
#[derive(Clone)]
pub struct Sinks {
    pub default: SinkKind,
    upload: Arc<GlanceUpload>,
    stage: Arc<GlanceStage>,
}

impl Sinks {
    /// The Glance-backed sinks for the fronted Glance at `glance_url`.
    pub fn new(glance: Glance, glance_url: &str, default: SinkKind) -> Self {
        Sinks {
            default,
            upload: Arc::new(GlanceUpload::new(glance.clone(), glance_url)),
            stage: Arc::new(GlanceStage::new(glance, glance_url)),
        }
    }

    /// The sink `kind`, or the default.
    pub fn pick(&self, kind: Option<SinkKind>) -> &dyn StoreSink {
        match kind.unwrap_or(self.default) {
            SinkKind::GlanceUpload => self.upload.as_ref(),
            SinkKind::GlanceStage => self.stage.as_ref(),
        }
    }
}

/// A boxed sink future, so sinks can be chosen at run time.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A writer of image data into a store.
pub trait StoreSink: Send + Sync {
    /// A short name for logs and task messages.
    fn name(&self) -> &'static str;

    /// Whether the store keeps the verified bytes as they are, so the stored image's digests
    /// must equal the source's (false when the target may transform them, e.g. convert formats).
    fn keeps_bytes(&self) -> bool {
        true
    }

    /// Writes `body` as the data of `target`; resolves once the store has committed or aborted.
    fn store<'a>(&'a self, target: &'a Target, body: SinkBody) -> SinkFuture<'a>;
}
