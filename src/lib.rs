//! glance-download-sidecar: the glance-download image import, streamed and verified, in front of
//! an unmodified OpenStack Glance.

pub mod api;
pub mod apiclient;
pub mod bench;
pub mod config;
pub mod demo;
pub mod glance;
pub mod hash;
pub mod http;
pub mod import;
pub mod journal;
pub mod keystone;
pub mod metadata;
pub mod metrics;
pub mod pipeline;
pub mod recovery;
pub mod shared;
pub mod sim;
pub mod sink;
pub mod sync;
pub mod tasks;
pub mod tls;
