//! The `bench` command line: its flags, which of the three modes they select (simulated,
//! `--load`, a real cloud), and the report printed.

use std::process::ExitCode;

use crate::pipeline::Limits;
use crate::serve::{init_logging, shutdown_signal, EXIT_USAGE};
use crate::tools::demo::parse_size;
use crate::tools::sync::with_credentials;

use super::{cloud, load, Options, Report, Target};

/// The image size `bench --small` copies unless `--size` says otherwise.
const SMALL_SIZE: u64 = 1 << 20;

/// The flags of `bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
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
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Times each phase is measured; the report gives medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Real cloud: measure how quickly one small image is imported instead (time to the 202,
    /// with a cached and a fresh token, and to the verified end), through the sidecar and by
    /// upstream's glance-download, --runs times each [default --size: 1MiB].
    #[arg(long, conflicts_with_all = ["load", "simulated"])]
    small: bool,
    /// Real cloud, --small: also measure the sidecar already running at this URL in front of
    /// the target Glance (e.g. another build). --passthrough: the sidecar measured.
    #[arg(long, value_name = "URL")]
    sidecar_url: Option<String>,
    /// Real cloud: measure what the sidecar at --sidecar-url adds to Image API calls, against
    /// the Glance at --target-glance-url called directly, alternating: small calls (p50, p99,
    /// mean) and --size GET/PUT /file (MB/s), --runs times each way.
    #[arg(long, conflicts_with_all = ["load", "simulated", "small", "from", "to", "image"])]
    passthrough: bool,
    /// --passthrough: rounds of small calls measured each way [default: 500].
    #[arg(long, requires = "passthrough")]
    calls: Option<usize>,
    /// Pipeline frame size [default: the sidecar's chunk_size, 1MiB].
    #[arg(long, value_parser = parse_size)]
    chunk_size: Option<u64>,
    /// Bytes the pipeline holds between source and hashers/sink [default: the sidecar's
    /// buffer_bytes, 8MiB].
    #[arg(long, value_parser = parse_size)]
    buffer_bytes: Option<u64>,
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

    /// Runs the mode the flags select; exits 64 for a refused command line, 1 if a run failed.
    pub fn run(self) -> ExitCode {
        let refuse = |error: &dyn std::fmt::Display| {
            eprintln!("glance-download-sidecar bench: {error}");
            ExitCode::from(EXIT_USAGE)
        };
        let defaults = Options::default();
        let limits = Limits {
            chunk_size: self.chunk_size.map_or(defaults.limits.chunk_size, |c| {
                usize::try_from(c).unwrap_or(usize::MAX)
            }),
            buffer_bytes: self.buffer_bytes.map_or(defaults.limits.buffer_bytes, |b| {
                usize::try_from(b).unwrap_or(usize::MAX)
            }),
        };
        if self.sidecar_url.is_some() && !(self.small || self.passthrough) {
            return refuse(&"--sidecar-url goes with --small or --passthrough");
        }
        if self.passthrough {
            return self.run_passthrough();
        }
        if self.load {
            if self.names_a_cloud() {
                return refuse(
                    &"--load runs on a simulated cloud: no --os-cloud, --from, --to, \
                      --target-glance-url or --image",
                );
            }
            return self.run_load();
        }
        match (self.simulated, self.names_a_cloud()) {
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
            (false, true) => return self.run_cloud(limits),
            (true, false) => {}
        }
        init_logging("warn");
        let options = Options {
            target: Target::Simulated,
            size: self.size.unwrap_or(defaults.size),
            runs: self.runs,
            limits,
        };
        if let Err(error) = options.validate() {
            return refuse(&error);
        }
        let result = super::run(&options, &mut |line| eprintln!("{line}"));
        print_report(result, self.json, Report::to_json, Report::table)
    }

    /// `bench --load`; exits 1 if the run could not complete.
    fn run_load(self) -> ExitCode {
        init_logging("warn");
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(error) => {
                eprintln!("bench: cannot find this program to run the sidecar: {error}");
                return ExitCode::FAILURE;
            }
        };
        let defaults = load::LoadOptions::new(exe);
        let options = load::LoadOptions {
            clients: self.clients.unwrap_or(defaults.clients),
            seconds: self.seconds.unwrap_or(defaults.seconds),
            failing_imports: self.failing_imports.unwrap_or(defaults.failing_imports),
            size: self.size.unwrap_or(defaults.size),
            ..defaults
        };
        if let Err(error) = options.validate() {
            eprintln!("glance-download-sidecar bench: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
        let result = load::run_load(&options, &mut |line| eprintln!("{line}"));
        print_report(
            result,
            self.json,
            load::LoadReport::to_json,
            load::LoadReport::table,
        )
    }

    /// `bench --passthrough`; exits 1 if a call failed or an image could not be deleted.
    fn run_passthrough(self) -> ExitCode {
        init_logging("warn");
        let options = cloud::PassOptions::new(
            self.target_glance_url.as_deref(),
            self.sidecar_url.as_deref(),
            self.size.unwrap_or(Options::default().size),
            self.calls.unwrap_or(cloud::DEFAULT_CALLS),
            self.runs,
        );
        let (options, credentials) = match prepared(options, self.os_cloud.as_deref()) {
            Ok(prepared) => prepared,
            Err(code) => return code,
        };
        let report = cloud::run_passthrough(
            &options,
            &credentials,
            &mut |line| eprintln!("{line}"),
            cancel_on_signal(),
        );
        if let (Ok(report), true) = (&report, self.json) {
            // The table still goes to people, on stderr with the progress lines.
            eprint!("{}", report.table());
        }
        let leftovers = report.as_ref().is_ok_and(|r| !r.leftovers.is_empty());
        let code = print_report(
            report,
            self.json,
            cloud::PassReport::to_json,
            cloud::PassReport::table,
        );
        if leftovers {
            eprintln!("bench: some images could not be deleted (listed above)");
            return ExitCode::FAILURE;
        }
        code
    }

    /// `bench` against a real cloud; exits 1 if a phase fails or an image could not be deleted.
    fn run_cloud(self, limits: Limits) -> ExitCode {
        init_logging("warn");
        let size = match self.small {
            true => Some(self.size.unwrap_or(SMALL_SIZE)),
            false => self.size,
        };
        let options = cloud::CloudOptions::from_flags(
            self.from.as_deref(),
            self.to.as_deref(),
            self.target_glance_url.as_deref(),
            self.image.as_deref(),
            size.filter(|_| self.image.is_none()),
            self.runs,
            limits,
        );
        let (options, credentials) = match prepared(options, self.os_cloud.as_deref()) {
            Ok(prepared) => prepared,
            Err(code) => return code,
        };
        let cancel = cancel_on_signal();
        if self.small {
            let report = cloud::run_small(
                &options,
                &credentials,
                self.sidecar_url.as_deref(),
                &mut |line| eprintln!("{line}"),
                cancel,
            );
            if let (Ok(report), true) = (&report, self.json) {
                // The table still goes to people, on stderr with the progress lines.
                eprint!("{}", report.table());
            }
            return print_report(
                report,
                self.json,
                cloud::SmallReport::to_json,
                cloud::SmallReport::table,
            );
        }
        let report = cloud::run_cloud(
            &options,
            &credentials,
            &mut |line| eprintln!("{line}"),
            cancel,
        );
        match report {
            Ok(report) => {
                if self.json {
                    // The table still goes to people, on stderr with the progress lines.
                    crate::stdout::write(format!("{:#}\n", report.to_json()));
                    eprint!("{}", report.table());
                } else {
                    crate::stdout::write(report.table());
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
}

/// A token cancelled by Ctrl-C or SIGTERM: the phase under way stops, and the bench then
/// deletes what it created.
fn cancel_on_signal() -> tokio_util::sync::CancellationToken {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(shutdown_signal());
            on_signal.cancel();
        }
    });
    cancel
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
            crate::stdout::write(format!("{:#}\n", to_json(&report)));
            ExitCode::SUCCESS
        }
        Ok(report) => {
            crate::stdout::write(table(&report));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Checked options with the caller's credentials, or the usage exit with the problem said. The
/// bench starts sidecars that always verify TLS: no `--insecure-skip-tls-verify`.
fn prepared<T, E: std::fmt::Display>(
    options: Result<T, E>,
    os_cloud: Option<&str>,
) -> Result<(T, crate::tools::sync::Credentials), ExitCode> {
    with_credentials(options, os_cloud, false).map_err(|error| {
        eprintln!("glance-download-sidecar bench: {error}");
        ExitCode::from(EXIT_USAGE)
    })
}
