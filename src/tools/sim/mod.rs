//! A simulated cloud on loopback: a fake Keystone and one fake Glance per region, speaking real
//! HTTP over real sockets on `127.0.0.1:0`, faithful on the wire to Keystone 30 and Glance 33
//! (single store by default, multi-store on request). Shared by the integration tests, the `demo`
//! command and the benchmarks, so data is streamed (generated or sliced, never copied per chunk)
//! and memory stays flat.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use glance_download_sidecar::tools::sim::{Cloud, ImageData, ImageSpec};
//! let cloud = Cloud::start(&["REGION1", "REGION2"]).await?;
//! let token = cloud.keystone.issue_token("demo", "demo", &["member"]);
//! let src = cloud.region("REGION1").create_image(ImageSpec::active(
//!     "demo",
//!     ImageData::Generated { seed: 7, size: 64 << 20 },
//! ));
//! # let _ = (token, src);
//! # Ok(()) }
//! ```
//!
//! A fake Glance is single-store unless [`FakeGlance::enable_stores`] makes it multi-store
//! (`/v2/info/stores`, `X-Image-Meta-Store`, the image's `stores`, `copy-image`).
//!
//! Where the fakes knowingly differ from upstream: the fake Glance runs only the `glance-direct`
//! and (multi-store) `copy-image` import tasks (other methods validate, answer 202 and do
//! nothing), has no members,
//! does not inspect disk formats, and answers errors as webob does: an HTML page, or its JSON shape when the client
//! accepts JSON.
//!
//! [`FakeGlance::enable_stores`]: crate::tools::sim::FakeGlance::enable_stores

mod data;
mod faults;
mod glance;
mod images;
mod keystone;
mod keystone_api;
mod patch;
mod routes;
mod s3;
mod s3_locations;
mod staging;
mod stores;
mod transfer;
mod wan;
mod wire;

#[cfg(test)]
mod tests;

use tokio_util::sync::CancellationToken;

pub use data::{generated_body, generated_bytes, generated_digests, Dropped, ImageData, CHUNK};
pub use faults::{BodyReading, Fault, UploadFault};
pub use glance::{FakeGlance, DEFAULT_IMPORT_METHODS, DEFAULT_KEEP_UPLOADS};
pub use images::{ImageSpec, ImageStatus, CONTAINER_FORMATS, DISK_FORMATS};
pub use keystone::{Caller, FakeKeystone, DEFAULT_TOKEN_TTL};
pub use s3::{FakeS3, PartFault, S3Stats};
pub use s3_locations::LocationFault;
pub use transfer::{parse_range, ByteRange};
pub use wan::{LinkSpec, WanLink};
pub use wire::LoggedRequest;

/// The suffix webob appends to every Glance error `message` (its body template), kept so clients
/// are tested against what real Glance sends.
pub const WEBOB_SUFFIX: &str = "<br /><br />\n\n\n";

/// The catalog interfaces registered for every service.
const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

/// A fake Keystone plus one fake Glance per region, all stopped when dropped.
pub struct Cloud {
    /// The identity service every Glance of this cloud trusts.
    pub keystone: FakeKeystone,
    regions: Vec<FakeGlance>,
    shutdown: CancellationToken,
}

// === impl Cloud ===

impl Cloud {
    /// Starts Keystone and one Glance per region name; registers each region's `image` endpoints
    /// (public, internal, admin → that Glance's URL) and `identity` endpoints in the catalog.
    pub async fn start(regions: &[&str]) -> std::io::Result<Cloud> {
        let shutdown = CancellationToken::new();
        let keystone = FakeKeystone::start(shutdown.clone()).await?;
        let mut glances = Vec::with_capacity(regions.len());
        for region in regions {
            let glance =
                FakeGlance::start(region, keystone.state.clone(), shutdown.clone()).await?;
            for interface in INTERFACES {
                keystone.set_endpoint(region, interface, &glance.url());
                keystone.set_service_endpoint(
                    "identity",
                    "keystone",
                    region,
                    interface,
                    &keystone.url(),
                );
            }
            glances.push(glance);
        }
        Ok(Cloud {
            keystone,
            regions: glances,
            shutdown,
        })
    }

    /// The Glance of region `name`; panics on an unknown name (a broken test).
    pub fn region(&self, name: &str) -> &FakeGlance {
        match self.regions.iter().find(|g| g.region() == name) {
            Some(glance) => glance,
            None => panic!("no region {name} in this simulated cloud"),
        }
    }

    /// Every region's Glance, in start order.
    pub fn regions(&self) -> &[FakeGlance] {
        &self.regions
    }

    /// Keystone's v3 URL, `http://127.0.0.1:PORT/v3`.
    pub fn auth_url(&self) -> String {
        self.keystone.url()
    }

    /// Stops every server of this cloud now (also done on drop).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
