//! Store sinks: where verified image bytes go.
//!
//! The contract is begin → write → commit | abort, expressed through the [`SinkBody`] a sink
//! reads: it begins the upload for `size` bytes, writes the frames as they come, and commits only
//! when the body ends cleanly (which the pipeline allows only after verification). When the body
//! fails, the sink aborts so that the store never holds the image as complete.

mod glance_upload;

use std::future::Future;
use std::pin::Pin;

pub use glance_upload::GlanceUpload;

use crate::glance::{GlanceError, ImageId};
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
}

/// A boxed sink future, so sinks can be chosen at run time.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A writer of image data into a store.
pub trait StoreSink: Send + Sync {
    /// A short name for logs and task messages.
    fn name(&self) -> &'static str;

    /// Writes `body` as the data of `target`; resolves once the store has committed or aborted.
    fn store<'a>(&'a self, target: &'a Target, body: SinkBody) -> SinkFuture<'a>;
}
