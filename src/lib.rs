//! glance-download-sidecar: the glance-download image import, streamed and verified, in front of
//! an unmodified OpenStack Glance.

pub mod api;
pub mod apiclient;
pub mod config;
pub mod demo;
pub mod hash;
pub mod glance;
pub mod http;
pub mod keystone;
pub mod import;
pub mod metadata;
pub mod metrics;
pub mod pipeline;
pub mod sim;
pub mod sink;
pub mod tasks;
