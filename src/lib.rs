//! glance-download-sidecar: the glance-download image import, streamed and verified, in front of
//! an unmodified OpenStack Glance.
//!
//! # Where things are
//!
//! The server is every module below except `tools`; it never depends on the tools, and
//! `cargo build --no-default-features` builds it alone. A request enters at [`api`]
//! ([`api::Server`], routing like Glance's in `api::glance_route`); an accepted import is run
//! by [`import`] over the data path in [`pipeline`] into a store sink from [`sink`].
//!
//! | To find | Look in |
//! | --- | --- |
//! | the import action's checks, in order, and their codes | `api::import_request` (`handle`) |
//! | the steps of one import, from source read to verified image | [`import`] (`Importer::import`) |
//! | the fail-closed hold-back of the last frame | [`pipeline`] (`pump`; `transfer` joins it with the sink) |
//! | what a copy must equal, and whether a stored image is it | [`verify`] |
//! | putting the target back after a failure (revert, deactivate) | `import::undo` |
//! | `Range` resume of a broken source stream | `pipeline::source` (`Resuming`); parallel ranges in `pipeline::ranged` |
//! | the bytes an import may hold: its pipeline buffer, its parallel ranges' reorder window | `pipeline::budget` (`buffer_bytes`); `pipeline::ranged` (`reorder_buffer`) |
//! | the compact coding between sidecars (zero runs, zstd) | [`compact`] |
//! | the bounded token cache | `keystone::cache` (`TokenCache`) |
//! | the one Keystone login (service user and tools) | `keystone::login` |
//! | the property prefix filter and the metadata patches | [`metadata`] (`is_synced`, `plan`) |
//! | the journal and its replay | [`journal`] (`Journal::replay`); restart in [`recovery`] |
//! | the S3 multipart upload and its abort | [`s3`] (`multipart`); the sink's delete rule in `sink::s3` |
//! | the hop-by-hop header strip of the pass-through | [`api::strip_hop_by_hop`] (`api::proxy`) |
//! | every retry's pacing | [`backoff`] |
//! | the one Glance client and Glance's tasks (`follow_task`) | [`glance`] |
//! | the cross-instance claim on the target image | [`claim`] |
//! | the per-project import slots (429) | `api::slots` |
//! | the metrics exposition (`/metrics`) | [`metrics`] (`Metrics::render`) |
//! | every config option and its default | [`config`] |
//! | the sync tool's skip rule (an earlier verified copy) | `tools::sync::copy` (`earlier_copies`) |
//! | the simulated Keystone, Glance and S3 used by tests, `demo` and benches | `tools::sim` |
//!
//! One concept per module:

// `pub` only where the crate's API needs it; no function of the server longer than a screen
// (clippy.toml sets 80 lines; `tools` opts out).
#![warn(unreachable_pub, clippy::too_many_lines)]

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
/// The one Glance client: typed calls, their errors and status predicates, Glance's tasks and
/// `follow_task` (the tools' Image API client calls through it).
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
/// The `serve` command: configuration checked, logging, the server run until a signal.
pub mod serve;
/// Store sinks: where verified bytes go (`glance-upload`, `glance-stage`, `s3`).
pub mod sink;
/// A command's output on stdout, quiet when its reader stops early (`| head`).
pub mod stdout;
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
