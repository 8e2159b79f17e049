//! The `glance-download-sidecar` binary: parses the command line and configuration, sets up
//! logging, and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::config::{Config, Overrides};
use glance_download_sidecar::demo;
use tracing_subscriber::EnvFilter;

/// Exit status for a refused configuration or command line (`EX_USAGE`).
const EXIT_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "glance-download-sidecar",
    version,
    about = "The glance-download image import, streamed and verified, in front of an unmodified Glance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Image API in front of an upstream Glance, handling glance-download imports.
    Serve(ServeArgs),
    /// Import a generated image between two simulated regions through the real sidecar code.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// INI configuration file (oslo.config style); flags override its values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9393].
    #[arg(long, value_name = "IP:PORT")]
    bind: Option<String>,
    /// Base URL of the upstream Glance [default: http://127.0.0.1:9292].
    #[arg(long, value_name = "URL")]
    glance_url: Option<String>,
    /// Keystone v3 URL used to validate tokens [default: http://127.0.0.1:5000/v3].
    #[arg(long, value_name = "URL")]
    auth_url: Option<String>,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Size of the generated image (B, KiB, MiB, GiB; KB, MB, GB).
    #[arg(long, default_value = "256MiB", value_parser = demo::parse_size)]
    size: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Demo(args) => run_demo(args),
    }
}

fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logging("info");
    let overrides = Overrides {
        config: args.config,
        bind: args.bind,
        glance_url: args.glance_url,
        auth_url: args.auth_url,
    };
    let config = match Config::load(&overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("glance-download-sidecar: configuration refused: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let bind = config.bind;
            let glance_url = config.glance_url.clone();
            let mut server = Server::bind(App::new(config), bind).await?;
            tracing::info!(addr = %server.addr, upstream = %glance_url, "Listening");
            tokio::select! {
                _ = shutdown_signal() => {
                    tracing::info!("Shutting down");
                    server.shutdown().await;
                }
                _ = server.wait() => {}
            }
            Ok::<_, std::io::Error>(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("glance-download-sidecar: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn run_demo(args: DemoArgs) -> ExitCode {
    init_logging("warn");
    let report = runtime().map_err(demo::DemoError::from).and_then(|rt| rt.block_on(demo::run(args.size)));
    match report {
        Ok(report) => {
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            println!("glance-download demo: REGION1 -> REGION2 through the sidecar");
            println!("  image size        {} bytes ({:.1} MiB)", report.size, mib(report.size));
            println!("  import time       {:.2} s (202 to verified active)", report.elapsed.as_secs_f64());
            println!("  throughput        {:.1} MB/s", report.mb_per_s());
            println!("  checksum (md5)    {}  verified: source = stream = target", report.checksum);
            println!("  {:<17} {}  verified: source = stream = target", format!("os_hash ({})", report.os_hash_algo), report.os_hash_value);
            println!("  synced properties {}", report.synced.join(", "));
            println!("  not synced        {}", report.not_synced.join(", "));
            match report.peak_rss {
                Some(rss) => println!("  peak memory       {:.1} MiB resident (whole process: fake cloud + sidecar)", mib(rss)),
                None => println!("  peak memory       not reported by this platform"),
            }
            println!("result: OK");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}
