//! glance-download-sidecar: the glance-download image import, streamed and verified, in front of
//! an unmodified OpenStack Glance.

pub mod config;
pub mod hash;
pub mod glance;
pub mod http;
pub mod keystone;
pub mod metadata;
pub mod pipeline;
pub mod sink;
pub mod tasks;
