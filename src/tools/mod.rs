//! The tools beside the server, built with the `tools` feature (on by default): the simulated
//! cloud they and the tests run against, and the commands an operator runs by hand.
//!
//! Nothing in the server's modules depends on this one; `cargo build --no-default-features`
//! builds `serve` without it.
//!
//! The server's limit on function length does not apply here: a simulated route handler or a
//! report table reads better whole.
#![allow(clippy::too_many_lines)]

/// The Image API as a user calls it (demo, bench, sync, tests): a thin layer over `glance`.
pub mod apiclient;
/// The `bench` command: ceiling, pipeline and imports side by side, simulated or on a real cloud.
pub mod bench;
/// The tools' subcommands beside `serve`.
pub mod cli;
/// The `demo` command: a whole import on an embedded simulated cloud.
pub mod demo;
/// TLS without certificate verification, for `--insecure-skip-tls-verify`.
pub mod insecure_tls;
/// Simulated Keystone, Glance and S3 on loopback (tests, demo, benches), and the `wan-link` shaper.
pub mod sim;
/// The `sync` command: bulk copy of images between regions.
pub mod sync;
/// The `tasks` command: an image's tasks as a table.
pub mod task_table;
/// The `wan-link` command: an emulated cross-region link in front of a TCP service.
pub mod wan_link;
