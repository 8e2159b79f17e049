//! glance-download-sidecar: the glance-download image import, streamed and verified, in front of
//! an unmodified OpenStack Glance.

pub mod hash;
pub mod http;
