//! What can go wrong in a `sync`: before anything is copied ([`SyncError`], [`OptionsError`]), and
//! for one image in one target region ([`CopyError`], which always names both).
//!
//! No error here carries the password or a token: Keystone's and Glance's answers are reduced to
//! their status and `message`, and URLs never hold credentials.

use std::time::Duration;

use http::StatusCode;

use crate::glance::GlanceError;
use crate::hash::UnknownAlgo;
use crate::keystone::CatalogError;
use crate::pipeline::PipelineError;
use crate::tools::apiclient::CallError;

use super::auth::AuthError;
use super::credentials::CredentialsError;

/// A command line `sync` refuses before contacting anything (exit status 64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("--from: a source region is required")]
    NoSource,
    #[error("--to: at least one target region is required")]
    NoTargets,
    #[error("--to: {0} is the source region")]
    TargetIsSource(String),
    #[error("--concurrency must be between 1 and {max}, not {got}")]
    Concurrency { got: usize, max: usize },
    #[error("{0:?} is not an image id (a UUID)")]
    BadImageId(String),
    #[error("give image ids or filters (--name, --tag, --visibility, --property), not both")]
    IdsAndFilters,
    #[error("--visibility must be one of public, private, shared, community, all; not {0:?}")]
    BadVisibility(String),
    #[error("--name {pattern:?} is not a valid glob: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error("--property {0:?} is not KEY=VALUE with a non-empty KEY")]
    BadProperty(String),
    #[error("--property {0}=... is a listing parameter, not a property; use its own option")]
    ReservedProperty(String),
    #[error("--tag must not be empty")]
    EmptyTag,
}

/// Why `sync` stopped before copying anything.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A region given on the command line has no image endpoint in the catalog.
    #[error(transparent)]
    Endpoint(#[from] CatalogError),
    /// The source region has no image endpoint in the source cloud's catalog (`--from-cloud`).
    #[error("cloud {cloud}: {error}")]
    CloudEndpoint { cloud: String, error: CatalogError },
    #[error("outbound TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The source region's image list could not be read.
    #[error("listing images in region {region}: {reason}")]
    List { region: String, reason: String },
    /// The filters select more images than one run handles.
    #[error("the filters select more than {limit} images in region {region}; narrow them")]
    TooManyImages { region: String, limit: usize },
}

/// Why one image could not be copied into one region.
#[derive(Debug, thiserror::Error)]
#[error("image {image} to region {region}: {failure}")]
pub struct CopyError {
    /// The source image id.
    pub image: String,
    /// The target region.
    pub region: String,
    /// What went wrong.
    pub failure: Failure,
}

/// Who holds an id `--keep-id` wanted in a target region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdHolder {
    /// An image that is not our copy of this source (no or another source property, or
    /// another project's).
    #[error("an image that is not a copy of this source has this id")]
    Other,
    /// Our own earlier copy, in a state that can be neither skipped nor reused.
    #[error("an earlier copy of this source has this id and is {0}, neither verified nor reusable (delete it to copy again)")]
    StaleCopy(String),
    /// Glance refused the id (409) though no image with it can be seen: it belongs to an image
    /// of another project, or to a deleted image (Glance keeps deleted rows and never reuses
    /// their ids).
    #[error("Glance refused it (409): it belongs to an image not visible to this project or to a deleted image, whose id Glance never gives out again")]
    Unseen,
}

/// What went wrong with one image × region, classified by where it happened.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The source region has no image with this id visible to the user.
    #[error("no such image in the source region {0}")]
    SourceNotFound(String),
    /// The source image could not be read.
    #[error("reading the source image: {0}")]
    SourceUnreadable(String),
    #[error("the source image is {0}, not active")]
    SourceNotActive(String),
    #[error("the source image has no size")]
    SourceNoSize,
    #[error(
        "the source image has neither checksum nor os_hash_value, so a copy cannot be verified"
    )]
    SourceUnverifiable,
    #[error("the source image's os_hash_algo: {0}")]
    UnsupportedAlgo(UnknownAlgo),
    /// A Glance answered an error status to one of our calls.
    #[error("{call} answered {status}: {message}")]
    Status {
        call: &'static str,
        status: StatusCode,
        message: String,
    },
    /// A call could not be made or its answer not read.
    #[error("{0}")]
    Call(#[from] CallError),
    /// A call got no answer in time.
    #[error("{call} got no answer within {after:?}")]
    Timeout { call: &'static str, after: Duration },
    /// A Glance call through the typed client failed.
    #[error("{call}: {error}")]
    Glance {
        call: &'static str,
        #[source]
        error: GlanceError,
    },
    /// The target region's glance-download task ended in failure.
    #[error("the glance-download import failed: {0}")]
    ImportFailed(String),
    /// The target region's import did not end in time.
    #[error("the import did not finish within {0:?}")]
    ImportTimedOut(Duration),
    /// The streamed copy failed: source read, size or digest mismatch (fail-closed).
    #[error("the data transfer failed: {0}")]
    Transfer(#[source] PipelineError),
    /// The target Glance refused or broke off the upload.
    #[error("the upload failed: {0}")]
    Upload(#[source] GlanceError),
    /// The streamed copy did not end in time.
    #[error("the data transfer did not finish within {0:?}")]
    TransferTimedOut(Duration),
    /// The copy exists but is not what the source is.
    #[error("the copy {target} {problem}")]
    Verify { target: String, problem: String },
    /// `--keep-id`: the source's id is taken in the target region; nothing was overwritten.
    #[error("id taken: {holder}; nothing there was overwritten")]
    IdTaken { id: String, holder: IdHolder },
    /// Keystone refused to renew the token mid-run, or a bare token would not outlive a copy.
    #[error("{0}")]
    Auth(String),
}

impl Failure {
    /// Whether the data itself was found wrong (a digest or size mismatch, before or after
    /// storing), as opposed to an unavailable or refusing service.
    pub fn is_verification_failure(&self) -> bool {
        match self {
            Failure::Verify { .. } => true,
            Failure::Transfer(error) => matches!(
                error,
                PipelineError::ChecksumMismatch { .. }
                    | PipelineError::HashMismatch { .. }
                    | PipelineError::TooLong { .. }
                    | PipelineError::TooShort { .. }
            ),
            _ => false,
        }
    }

    /// Whether taking the same step again may well succeed: a 5xx answer (a busy API node, a
    /// database lock in Glance, a load balancer without a backend), a broken connection, or no
    /// answer in time. Refusals (4xx), failed imports and wrong data are final.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Status { status, .. } => status.is_server_error(),
            Failure::Call(_) | Failure::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status behind this failure, if a service answered one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            Failure::Glance { error, .. } | Failure::Upload(error) => error.status(),
            Failure::Transfer(PipelineError::Source(source)) => source.status(),
            _ => None,
        }
    }
}
