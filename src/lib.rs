//! glance-download-sidecar: the glance-download image import, streamed and verified, in front of
//! an unmodified OpenStack Glance.
//!
//! The crate's map, one concept per module:

/// The HTTP edge: routing, the import action's checks, pass-through, discovery, tasks, errors.
pub mod api;
/// Retry pacing: attempts and exponential, capped, jittered pauses, for every retry loop.
pub mod backoff;
/// Upload bodies in chunked transfer coding, so an aborted upload is a cut on every server.
pub mod chunked;
/// The cross-instance import claim, kept as properties on the target image itself.
pub mod claim;
/// Compact transfer between sidecars: zero runs as lengths, data raw or zstd, on `GET /file`.
pub mod compact;
/// INI file + flags → one typed `Config`, every default in one place.
pub mod config;
/// Typed client for the Glance calls the sidecar makes.
pub mod glance;
/// The hash algorithms Glance may record as `os_hash_algo`.
pub mod hash;
/// HTTP plumbing shared by server and clients: body types, bounded reads, accept loop.
pub mod http;
/// One import from accepted request to verified image (or reverted one): the story.
pub mod import;
/// The fsynced JSON-lines task journal.
pub mod journal;
/// Token validation, the bounded token cache, catalog lookup, service credentials.
pub mod keystone;
/// Which properties are synced, and the JSON patches that apply and undo the sync.
pub mod metadata;
/// Counters and histograms for `/metrics`.
pub mod metrics;
/// The data path: source → MD5 ‖ os_hash hashers → sink, bounded and fail-closed.
pub mod pipeline;
/// Restart after a crash: interrupted tasks marked failed, their images restored.
pub mod recovery;
/// S3: SigV4 signing and the multipart calls of the `s3` store sink.
pub mod s3;
/// Store sinks: where verified bytes go (`glance-upload`, `glance-stage`, `s3`).
pub mod sink;
/// Multi-store targets: which stores an import writes, and what became of each.
pub mod stores;
/// Task records, progress, and the per-image import lock.
pub mod tasks;
/// rustls server and client configuration.
pub mod tls;
/// The tools beside the server: simulated cloud, `demo`, `bench`, `sync`, `tasks`, `wan-link`.
#[cfg(feature = "tools")]
pub mod tools;
/// The verification contract: what a copy must equal, and whether a stored image is the source's.
pub mod verify;
