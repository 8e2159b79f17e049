//! The `glance-download-sidecar` binary: parses the command line and configuration, sets up
//! logging, and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::bench;
use glance_download_sidecar::config::{Config, Overrides};
use glance_download_sidecar::demo;
use glance_download_sidecar::sync;
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
    /// Measure the hash-only ceiling, the pipeline and a full import side by side.
    Bench(BenchArgs),
    /// Copy images from one region to others, skipping those already copied.
    Sync(SyncArgs),
    /// List an image's import tasks (with progress) in a region, as `openstack image task list`.
    Tasks {
        /// Cloud in clouds.yaml (else OS_CLOUD, else OS_* variables).
        #[arg(long)]
        os_cloud: Option<String>,
        /// Region whose image endpoint is asked.
        #[arg(long)]
        region: String,
        /// Print the tasks as JSON.
        #[arg(long)]
        json: bool,
        /// The image.
        image_id: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
    /// Log line format on stderr: `text`, or `json` (one object per line, with the request id
    /// and task id of the span it belongs to).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Size of the generated image (B, KiB, MiB, GiB; KB, MB, GB).
    #[arg(long, default_value = "256MiB", value_parser = demo::parse_size)]
    size: u64,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Measure on a simulated cloud in this process (required: measuring a real cloud is not
    /// built yet).
    #[arg(long)]
    simulated: bool,
    /// Size of the generated image (B, KiB, MiB, GiB; KB, MB, GB).
    #[arg(long, default_value = "1GiB", value_parser = demo::parse_size)]
    size: u64,
    /// Times each phase is measured; the report gives medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Pipeline frame size [default: the sidecar's chunk_size, 1MiB].
    #[arg(long, value_parser = demo::parse_size)]
    chunk_size: Option<u64>,
    /// Frames buffered per pipeline stage [default: the sidecar's buffer_chunks, 8].
    #[arg(long)]
    buffer_chunks: Option<usize>,
}

#[derive(clap::Args)]
struct SyncArgs {
    /// Cloud of clouds.yaml to sign in with [default: $OS_CLOUD, else the OS_* variables].
    #[arg(long, value_name = "NAME")]
    os_cloud: Option<String>,
    /// Region the images are copied from.
    #[arg(long, value_name = "REGION")]
    from: String,
    /// Regions to copy into (comma-separated, or repeat the flag).
    #[arg(long, value_name = "REGION[,REGION...]", required = true)]
    to: Vec<String>,
    /// Images to copy, by id [default: every active image the filters select].
    #[arg(value_name = "IMAGE_ID")]
    images: Vec<String>,
    /// Only images whose name matches this glob (`*`, `?`, `[...]`).
    #[arg(long, value_name = "GLOB")]
    name: Option<String>,
    /// Only images with this tag (repeat for several: all must be present).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only images with this visibility (public, private, shared, community, all).
    #[arg(long, value_name = "VISIBILITY")]
    visibility: Option<String>,
    /// Only images with this property value (repeat for several).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Copies running at once (1 to 64).
    #[arg(long, default_value_t = sync::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// List what would be copied or skipped; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON summary on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    sync::parse_property(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Demo(args) => run_demo(args),
        Command::Bench(args) => run_bench(args),
        Command::Sync(args) => run_sync(args),
        Command::Tasks {
            os_cloud,
            region,
            json,
            image_id,
        } => run_tasks(os_cloud.as_deref(), &region, json, &image_id),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(
                shell,
                &mut command,
                "glance-download-sidecar",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

fn init_logging(default: &str) {
    init_logging_as(default, false);
}

fn init_logging_as(default: &str, json: bool) {
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

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn serve(args: ServeArgs) -> ExitCode {
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
    let report = runtime()
        .map_err(demo::DemoError::from)
        .and_then(|rt| rt.block_on(demo::run(args.size)));
    match report {
        Ok(report) => {
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            println!("glance-download demo: REGION1 -> REGION2 through the sidecar");
            println!(
                "  image size        {} bytes ({:.1} MiB)",
                report.size,
                mib(report.size)
            );
            println!(
                "  import time       {:.2} s (202 to verified active)",
                report.elapsed.as_secs_f64()
            );
            println!("  throughput        {:.1} MB/s", report.mb_per_s());
            println!(
                "  checksum (md5)    {}  verified: source = stream = target",
                report.checksum
            );
            println!(
                "  {:<17} {}  verified: source = stream = target",
                format!("os_hash ({})", report.os_hash_algo),
                report.os_hash_value
            );
            println!("  synced properties {}", report.synced.join(", "));
            println!("  not synced        {}", report.not_synced.join(", "));
            match report.peak_rss {
                Some(rss) => println!(
                    "  peak memory       {:.1} MiB resident (whole process: fake cloud + sidecar)",
                    mib(rss)
                ),
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

fn run_bench(args: BenchArgs) -> ExitCode {
    if !args.simulated {
        eprintln!(
            "glance-download-sidecar bench: only --simulated is implemented; \
             measuring a real cloud (--auth-url/--os-cloud) is not available yet"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    init_logging("warn");
    let defaults = bench::Options::default();
    let options = bench::Options {
        target: bench::Target::Simulated,
        size: args.size,
        runs: args.runs,
        limits: glance_download_sidecar::pipeline::Limits {
            chunk_size: args.chunk_size.map_or(defaults.limits.chunk_size, |c| {
                usize::try_from(c).unwrap_or(usize::MAX)
            }),
            buffer_chunks: args.buffer_chunks.unwrap_or(defaults.limits.buffer_chunks),
        },
    };
    if let Err(error) = options.validate() {
        eprintln!("glance-download-sidecar bench: {error}");
        return ExitCode::from(EXIT_USAGE);
    }
    match bench::run(&options, &mut |line| eprintln!("{line}")) {
        Ok(report) if args.json => {
            println!("{:#}", report.to_json());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", report.table());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_sync(args: SyncArgs) -> ExitCode {
    init_logging("warn");
    let filters = sync::Filters {
        name: args.name,
        tags: args.tags,
        visibility: args.visibility,
        properties: args.properties,
    };
    let prepared = sync::Options::new(
        &args.from,
        &args.to,
        &args.images,
        filters,
        args.concurrency,
        args.dry_run,
    )
    .map_err(|e| e.to_string())
    .and_then(|options| {
        let env = sync::Environment::from_process();
        sync::Credentials::load(args.os_cloud.as_deref(), &env)
            .map(|credentials| (options, credentials))
            .map_err(|e| e.to_string())
    });
    let (options, credentials) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("glance-download-sidecar sync: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let observer = sync::for_terminal(args.json);
    let result = runtime().map_err(|e| e.to_string()).and_then(|rt| {
        rt.block_on(async {
            tokio::select! {
                result = sync::run(&options, &credentials, observer) => {
                    result.map_err(|e| e.to_string())
                }
                _ = shutdown_signal() => Err("interrupted: streamed copies under way were cut \
                    short and left queued; imports already accepted by a region carry on \
                    there; run again to finish".to_string()),
            }
        })
    });
    match result {
        Ok(summary) => {
            if args.json {
                println!("{:#}", summary.to_json());
            }
            if summary.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("glance-download-sidecar sync: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_tasks(cloud: Option<&str>, region: &str, json: bool, image: &str) -> ExitCode {
    init_logging("warn");
    let env = glance_download_sidecar::sync::Environment::from_process();
    let listed = runtime().map_err(|e| e.to_string()).and_then(|rt| {
        rt.block_on(glance_download_sidecar::task_list::list(
            cloud, &env, region, image,
        ))
        .map_err(|e| e.to_string())
    });
    match listed {
        Ok(tasks) if json => {
            println!("{}", serde_json::Value::Array(tasks));
            ExitCode::SUCCESS
        }
        Ok(tasks) => {
            print!("{}", glance_download_sidecar::task_list::render(&tasks));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tasks: {error}");
            ExitCode::FAILURE
        }
    }
}
