//! Store sinks: where verified image bytes go.
//!
//! The contract is begin → write → commit | abort, expressed through the [`SinkBody`] a sink
//! reads: it begins the upload for `size` bytes, writes the frames as they come, and commits only
//! when the body ends cleanly (which the pipeline allows only after verification). When the body
//! fails, the sink aborts so that the store never holds the image as complete.
//!
//! [`SinkBody`]: crate::pipeline::SinkBody

mod glance_stage;
mod glance_upload;
mod s3;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use glance_stage::GlanceStage;
pub use glance_upload::GlanceUpload;
pub use s3::S3Sink;

use crate::config::SinkKind;
use crate::glance::{Glance, GlanceError, ImageId};
use crate::keystone::Token;
use crate::pipeline::SinkBody;

/// The image a sink writes, and on whose behalf.
#[derive(Debug, Clone)]
pub struct Target {
    pub image_id: ImageId,
    pub size: u64,
    /// Every store requested (empty on a single-store Glance); the first is the one a sink
    /// writes (`X-Image-Meta-Store`), and only sinks that [`StoreSink::writes_every_store`] look
    /// past it.
    pub stores: Vec<String>,
    /// `all_stores_must_succeed`, for sinks that write every store.
    pub all_stores_must_succeed: bool,
    pub token: Token,
}

/// Why a sink did not commit.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store refused or failed the upload.
    #[error("the target Glance refused the upload: {0}")]
    Glance(#[from] GlanceError),
    /// The target Glance's own import task failed (glance-stage), or its `location_import`
    /// task refused the S3 location (s3).
    #[error("the target Glance's import task failed: {0}")]
    ImportFailed(String),
    /// The S3 store refused or failed a call (s3).
    #[error("the S3 store failed: {0}")]
    S3(#[from] crate::s3::S3Error),
    /// The sidecar's own Keystone user could not get a token (s3: the location API needs it).
    #[error("the sidecar's service credentials were refused: {0}")]
    ServiceCredentials(#[source] crate::keystone::KeystoneError),
    /// The sink needs the sidecar's own Keystone user, and none is configured (s3).
    #[error(
        "the sidecar's service credentials were refused: no [service_credentials] are configured"
    )]
    NoServiceCredentials,
    /// The data was stopped before it was complete and verified; nothing was stored.
    #[error("the upload was aborted: {0}")]
    Aborted(String),
    /// The request chose a sink this sidecar has no configuration for.
    #[error("the {0} store sink is not configured on this sidecar")]
    NotConfigured(&'static str),
}

impl crate::glance::GlanceStatus for SinkError {
    /// The status the target Glance answered, when it refused or failed a call.
    fn glance_status(&self) -> Option<http::StatusCode> {
        match self {
            SinkError::Glance(error) => error.status(),
            _ => None,
        }
    }
}

/// The sinks of this sidecar, one of them the default.
#[derive(Clone)]
pub struct Sinks {
    pub default: SinkKind,
    upload: Arc<GlanceUpload>,
    stage: Arc<GlanceStage>,
    s3: Option<Arc<S3Sink>>,
}

impl Sinks {
    /// The Glance-backed sinks for the fronted Glance at `glance_url`.
    pub fn new(glance: Glance, glance_url: &str, default: SinkKind) -> Self {
        Sinks {
            default,
            upload: Arc::new(GlanceUpload::new(glance.clone(), glance_url)),
            stage: Arc::new(GlanceStage::new(glance, glance_url)),
            s3: None,
        }
    }

    /// Adds the `s3` sink (when `[s3]` is configured).
    pub fn with_s3(mut self, sink: Option<S3Sink>) -> Self {
        self.s3 = sink.map(Arc::new);
        self
    }

    /// Whether the sink `kind` can be used (`s3` needs its configuration).
    pub fn offers(&self, kind: SinkKind) -> bool {
        kind != SinkKind::S3 || self.s3.is_some()
    }

    /// The names of the sinks this sidecar can use, for messages.
    pub fn offered(&self) -> String {
        let mut names = vec!["glance-upload", "glance-stage"];
        if self.s3.is_some() {
            names.push("s3");
        }
        names.join(", ")
    }

    /// The sink `kind`, or the default.
    pub fn pick(&self, kind: Option<SinkKind>) -> &dyn StoreSink {
        match kind.unwrap_or(self.default) {
            SinkKind::GlanceUpload => self.upload.as_ref(),
            SinkKind::GlanceStage => self.stage.as_ref(),
            SinkKind::S3 => match &self.s3 {
                Some(s3) => s3.as_ref(),
                None => &Unconfigured("s3"),
            },
        }
    }
}

/// A sink chosen by a request but not configured: fails the import before any byte moves.
struct Unconfigured(&'static str);

impl StoreSink for Unconfigured {
    fn name(&self) -> &'static str {
        self.0
    }

    fn store<'a>(&'a self, _target: &'a Target, _body: SinkBody) -> SinkFuture<'a> {
        Box::pin(async move { Err(SinkError::NotConfigured(self.0)) })
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

    /// Whether the target Glance changes the image's status while the sink writes (`saving`,
    /// `uploading`, `importing`). Glance's image PATCH saves every attribute it read, status
    /// included, so a PATCH racing such a change can undo it (an aborted upload's image then
    /// stays `saving` for good): the import publishes nothing on the image meanwhile.
    fn glance_changes_status(&self) -> bool {
        true
    }

    /// Whether the sink writes every store of `Target::stores` itself (through Glance's own
    /// import flow); otherwise it writes the first and the rest are copied afterwards.
    fn writes_every_store(&self) -> bool {
        false
    }

    /// Writes `body` as the data of `target`; resolves once the store has committed or aborted.
    fn store<'a>(&'a self, target: &'a Target, body: SinkBody) -> SinkFuture<'a>;
}
