//! The tools' subcommands, flattened into the binary's command line beside `serve`; each
//! command's flags and body live next to its tool.

use std::process::ExitCode;

use clap::Subcommand;

use super::bench::BenchArgs;
use super::demo::DemoArgs;
use super::sync::SyncArgs;
use super::task_table::TasksArgs;
use super::wan_link::WanLinkArgs;

/// The commands beside `serve`.
#[derive(Subcommand)]
pub enum ToolCommand {
    /// Import a generated image between two simulated regions through the real sidecar code.
    Demo(DemoArgs),
    /// Measure the hash-only ceiling, the pipeline and imports side by side (simulated or real cloud).
    Bench(BenchArgs),
    /// Copy images from one region to others, skipping those already copied.
    Sync(SyncArgs),
    /// Emulate a cross-region link in front of a TCP service (delay, window, bandwidth), for
    /// benchmarks: the kernel's netem is not needed.
    WanLink(WanLinkArgs),
    /// List an image's import tasks (with progress) in a region, as `openstack image task list`.
    Tasks(TasksArgs),
}

impl ToolCommand {
    /// Runs the command; its exit status: 0, 1 when it failed, 64 for a refused command line.
    pub fn run(self) -> ExitCode {
        match self {
            ToolCommand::Demo(args) => args.run(),
            ToolCommand::Bench(args) => args.run(),
            ToolCommand::Sync(args) => args.run(),
            ToolCommand::WanLink(args) => args.run(),
            ToolCommand::Tasks(args) => args.run(),
        }
    }
}
