//! The `serve` command: configuration loaded and checked before any port is bound, logging set
//! up, the server run until SIGTERM or Ctrl-C, then shut down gracefully.
//!
//! Also the process plumbing the other commands share: logging on stderr, the runtime, the
//! shutdown signal, and the exit status of a refused command line.

use std::path::PathBuf;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::api::{App, Server};
use crate::config::{Config, Overrides};

/// Exit status for a refused configuration or command line (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// The flags of `serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
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
    /// Log line format on stderr: `text`, or `json` (one object per line, with the request id
    /// and task id of the span it belongs to).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Runs `serve`: exits 64 if the configuration is refused, 1 if the server cannot start.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logging_as("info", args.log_format == "json");
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
    let app = match App::new(config.clone()) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("glance-download-sidecar: configuration refused: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let glance_url = config.glance_url.clone();
            app.start_recovery().map_err(std::io::Error::other)?;
            let mut server = Server::bind(app, config.bind).await?;
            tracing::info!(addr = %server.addr, upstream = %glance_url, "Listening");
            tokio::select! {
                _ = shutdown_signal() => {
                    tracing::info!("Shutting down");
                    server.shutdown(config.shutdown_grace).await;
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

/// Text log lines on stderr, filtered by `RUST_LOG`, else at `default`.
pub fn init_logging(default: &str) {
    init_logging_as(default, false);
}

/// Log lines on stderr, filtered by `RUST_LOG`, else at `default`; one JSON object per line if
/// `json`.
pub fn init_logging_as(default: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}

/// The multi-threaded runtime a command runs on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
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
