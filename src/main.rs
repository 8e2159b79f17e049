//! The `glance-download-sidecar` binary: parses the command line and configuration, sets up
//! logging, and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::config::{Config, Overrides};
use glance_download_sidecar::tools::bench;
use glance_download_sidecar::tools::demo;
use glance_download_sidecar::tools::sync;
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
    /// Measure the hash-only ceiling, the pipeline and imports side by side (simulated or real cloud).
    Bench(BenchArgs),
    /// Copy images from one region to others, skipping those already copied.
    Sync(SyncArgs),
    /// Emulate a cross-region link in front of a TCP service (delay, window, bandwidth), for
    /// benchmarks: the kernel's netem is not needed.
    WanLink(WanLinkArgs),
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
struct WanLinkArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// The service behind the link.
    #[arg(long, value_name = "IP:PORT")]
    upstream: std::net::SocketAddr,
    /// Round-trip time added (half in each direction), in milliseconds.
    #[arg(long, default_value_t = 80)]
    rtt_ms: u64,
    /// Link bandwidth per direction, shared by all connections, in Mbit/s.
    #[arg(long, default_value_t = 1000)]
    mbit_per_sec: u64,
    /// Bytes in flight per connection and direction (a TCP window).
    #[arg(long, default_value = "4MiB", value_parser = demo::parse_size)]
    window: u64,
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
    /// Measure on a simulated cloud in this process.
    #[arg(long)]
    simulated: bool,
    /// Measure under load on a simulated cloud, the sidecar run as a child `serve`: many clients
    /// through the pass-through and straight to Glance, uploads and imports of --size, and a
    /// flood of failing imports, at once.
    #[arg(long, conflicts_with = "simulated")]
    load: bool,
    /// --load: clients sending small calls [default: 64].
    #[arg(long, requires = "load")]
    clients: Option<usize>,
    /// --load: seconds the small calls are measured [default: 60].
    #[arg(long, requires = "load")]
    seconds: Option<u64>,
    /// --load: failing imports (an unknown region) sent by one project [default: 2000].
    #[arg(long, requires = "load")]
    failing_imports: Option<usize>,
    /// Real cloud: the cloud of clouds.yaml to sign in with [default: $OS_CLOUD, else OS_*].
    #[arg(long, value_name = "NAME")]
    os_cloud: Option<String>,
    /// Real cloud: the source region (the bench creates its source image there).
    #[arg(long, value_name = "REGION")]
    from: Option<String>,
    /// Real cloud: the target region (the label; the bench drives --target-glance-url).
    #[arg(long, value_name = "REGION")]
    to: Option<String>,
    /// Real cloud: the target region's Glance itself (not a sidecar in front of it); the bench
    /// runs the sidecar in this process in front of it.
    #[arg(long, value_name = "URL")]
    target_glance_url: Option<String>,
    /// Real cloud: copy this active image of the source region instead of a generated one.
    #[arg(long, value_name = "IMAGE_ID")]
    image: Option<String>,
    /// Size of the generated image (B, KiB, MiB, GiB; KB, MB, GB) [default: 1GiB].
    #[arg(long, value_parser = demo::parse_size)]
    size: Option<u64>,
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

impl BenchArgs {
    /// Whether any flag of the real-cloud mode was given.
    fn names_a_cloud(&self) -> bool {
        self.os_cloud.is_some()
            || self.from.is_some()
            || self.to.is_some()
            || self.target_glance_url.is_some()
            || self.image.is_some()
    }
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

/// Runs an emulated link until SIGINT or SIGTERM.
fn run_wan_link(args: WanLinkArgs) -> ExitCode {
    use glance_download_sidecar::tools::sim::{LinkSpec, WanLink};
    let window = match usize::try_from(args.window) {
        Ok(w) if w > 0 && w <= u32::MAX as usize => w,
        _ => {
            eprintln!("wan-link: --window must be between 1 byte and 4 GiB");
            return ExitCode::from(64);
        }
    };
    if args.mbit_per_sec == 0 {
        eprintln!("wan-link: --mbit-per-sec must be positive");
        return ExitCode::from(64);
    }
    let spec = LinkSpec {
        one_way_delay: std::time::Duration::from_micros(args.rtt_ms * 500),
        bandwidth: args.mbit_per_sec * 125_000,
        window,
        stall: None,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wan-link: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("wan-link: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let link = match WanLink::start_on(listener, args.upstream, spec) {
            Ok(link) => link,
            Err(e) => {
                eprintln!("wan-link: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "wan-link: {} -> {} (rtt {} ms, {} Mbit/s, window {} bytes)",
            link.addr, args.upstream, args.rtt_ms, args.mbit_per_sec, window
        );
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("wan-link: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("wan-link: {} connections carried", link.connections());
        ExitCode::SUCCESS
    })
}

/// Checked options with the caller's credentials (clouds.yaml or `OS_*`, as the openstack client
/// reads them), or the first problem as a message for the command line.
fn with_credentials<T, E: std::fmt::Display>(
    options: Result<T, E>,
    os_cloud: Option<&str>,
) -> Result<(T, sync::Credentials), String> {
    let options = options.map_err(|e| e.to_string())?;
    let env = sync::Environment::from_process();
    let credentials = sync::Credentials::load(os_cloud, &env).map_err(|e| e.to_string())?;
    Ok((options, credentials))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Demo(args) => run_demo(args),
        Command::Bench(args) => run_bench(args),
        Command::Sync(args) => run_sync(args),
        Command::WanLink(args) => run_wan_link(args),
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
    let refuse = |error: &dyn std::fmt::Display| {
        eprintln!("glance-download-sidecar bench: {error}");
        ExitCode::from(EXIT_USAGE)
    };
    let defaults = bench::Options::default();
    let limits = glance_download_sidecar::pipeline::Limits {
        chunk_size: args.chunk_size.map_or(defaults.limits.chunk_size, |c| {
            usize::try_from(c).unwrap_or(usize::MAX)
        }),
        buffer_chunks: args.buffer_chunks.unwrap_or(defaults.limits.buffer_chunks),
    };
    if args.load {
        if args.names_a_cloud() {
            return refuse(
                &"--load runs on a simulated cloud: no --os-cloud, --from, --to, \
                  --target-glance-url or --image",
            );
        }
        return run_bench_load(args);
    }
    match (args.simulated, args.names_a_cloud()) {
        (true, true) => {
            return refuse(
                &"--simulated does not go with --os-cloud, --from, --to, --target-glance-url \
                  or --image",
            )
        }
        (false, false) => {
            return refuse(
                &"give --simulated, or a real cloud: --from REGION --to REGION \
                  --target-glance-url URL [--os-cloud NAME]",
            )
        }
        (false, true) => return run_bench_cloud(args, limits),
        (true, false) => {}
    }
    init_logging("warn");
    let options = bench::Options {
        target: bench::Target::Simulated,
        size: args.size.unwrap_or(defaults.size),
        runs: args.runs,
        limits,
    };
    if let Err(error) = options.validate() {
        return refuse(&error);
    }
    let result = bench::run(&options, &mut |line| eprintln!("{line}"));
    print_report(
        result,
        args.json,
        bench::Report::to_json,
        bench::Report::table,
    )
}

/// `bench --load`; exits 1 if the run could not complete.
fn run_bench_load(args: BenchArgs) -> ExitCode {
    init_logging("warn");
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("bench: cannot find this program to run the sidecar: {error}");
            return ExitCode::FAILURE;
        }
    };
    let defaults = bench::load::LoadOptions::new(exe);
    let options = bench::load::LoadOptions {
        clients: args.clients.unwrap_or(defaults.clients),
        seconds: args.seconds.unwrap_or(defaults.seconds),
        failing_imports: args.failing_imports.unwrap_or(defaults.failing_imports),
        size: args.size.unwrap_or(defaults.size),
        ..defaults
    };
    if let Err(error) = options.validate() {
        eprintln!("glance-download-sidecar bench: {error}");
        return ExitCode::from(EXIT_USAGE);
    }
    let result = bench::load::run_load(&options, &mut |line| eprintln!("{line}"));
    print_report(
        result,
        args.json,
        bench::load::LoadReport::to_json,
        bench::load::LoadReport::table,
    )
}

/// `bench` against a real cloud; exits 1 if a phase fails or an image could not be deleted.
fn run_bench_cloud(args: BenchArgs, limits: glance_download_sidecar::pipeline::Limits) -> ExitCode {
    init_logging("warn");
    let options = bench::cloud::CloudOptions::from_flags(
        args.from.as_deref(),
        args.to.as_deref(),
        args.target_glance_url.as_deref(),
        args.image.as_deref(),
        args.size,
        args.runs,
        limits,
    );
    let (options, credentials) = match with_credentials(options, args.os_cloud.as_deref()) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("glance-download-sidecar bench: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    // Ctrl-C or SIGTERM stops the phase under way; the bench then deletes what it created.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(shutdown_signal());
            on_signal.cancel();
        }
    });
    let report = bench::cloud::run_cloud(
        &options,
        &credentials,
        &mut |line| eprintln!("{line}"),
        cancel,
    );
    match report {
        Ok(report) => {
            if args.json {
                // The table still goes to people, on stderr with the progress lines.
                println!("{:#}", report.to_json());
                eprint!("{}", report.table());
            } else {
                print!("{}", report.table());
            }
            if report.leftovers.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("bench: some images could not be deleted (listed above)");
                ExitCode::FAILURE
            }
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
    let options = sync::Options::new(
        &args.from,
        &args.to,
        &args.images,
        filters,
        args.concurrency,
        args.dry_run,
    );
    let (options, credentials) = match with_credentials(options, args.os_cloud.as_deref()) {
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
                println!("{}", sync::json_text(&summary.to_json(), true));
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
    let env = glance_download_sidecar::tools::sync::Environment::from_process();
    let listed = runtime().map_err(|e| e.to_string()).and_then(|rt| {
        rt.block_on(glance_download_sidecar::tools::task_table::list(
            cloud, &env, region, image,
        ))
        .map_err(|e| e.to_string())
    });
    match listed {
        Ok(tasks) if json => {
            let tasks = serde_json::Value::Array(tasks);
            println!(
                "{}",
                glance_download_sidecar::tools::sync::json_text(&tasks, false)
            );
            ExitCode::SUCCESS
        }
        Ok(tasks) => {
            print!(
                "{}",
                glance_download_sidecar::tools::task_table::render(&tasks)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tasks: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a bench report as a table, or as JSON with `--json`; exit 1 when the run failed.
fn print_report<R, E: std::fmt::Display>(
    result: Result<R, E>,
    json: bool,
    to_json: fn(&R) -> serde_json::Value,
    table: fn(&R) -> String,
) -> ExitCode {
    match result {
        Ok(report) if json => {
            println!("{:#}", to_json(&report));
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", table(&report));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}
