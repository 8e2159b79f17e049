//! The `sync` command line: its flags, the credentials read, the run interrupted on SIGTERM or
//! Ctrl-C, the summary printed.

use std::process::ExitCode;

use crate::serve::{init_logging, runtime, shutdown_signal, EXIT_USAGE};

use super::{Credentials, Environment, Filters, Options, DEFAULT_CONCURRENCY};

/// The flags of `sync`.
#[derive(clap::Args)]
pub struct SyncArgs {
    /// Cloud of clouds.yaml to sign in with [default: $OS_CLOUD, else the OS_* variables].
    #[arg(long, value_name = "NAME")]
    os_cloud: Option<String>,
    /// Do not verify the TLS certificates of Keystone and Glance (accepts a cloud's
    /// `verify: false`, refused without this flag). For lab clouds only: use cacert instead.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
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
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// List what would be copied or skipped; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON summary on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    super::parse_property(text).map_err(|e| e.to_string())
}

impl SyncArgs {
    /// Runs the sync; exits 64 for a refused command line, 1 if a copy failed or the run was
    /// interrupted.
    pub fn run(self) -> ExitCode {
        init_logging("warn");
        let filters = Filters {
            name: self.name,
            tags: self.tags,
            visibility: self.visibility,
            properties: self.properties,
        };
        let options = Options::new(
            &self.from,
            &self.to,
            &self.images,
            filters,
            self.concurrency,
            self.dry_run,
        );
        let cloud = self.os_cloud.as_deref();
        let skip_tls_verify = self.insecure_skip_tls_verify;
        let (options, credentials) = match with_credentials(options, cloud, skip_tls_verify) {
            Ok(prepared) => prepared,
            Err(error) => {
                eprintln!("glance-download-sidecar sync: {error}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let observer = super::for_terminal(self.json);
        let result = runtime().map_err(|e| e.to_string()).and_then(|rt| {
            rt.block_on(async {
                tokio::select! {
                    result = super::run(&options, &credentials, observer) => {
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
                if self.json {
                    println!("{}", super::json_text(&summary.to_json(), true));
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
}

/// Checked options with the caller's credentials (clouds.yaml or `OS_*`, as the openstack client
/// reads them), or the first problem as a message for the command line. `skip_tls_verify`:
/// `--insecure-skip-tls-verify` was given (a warning says so).
pub(crate) fn with_credentials<T, E: std::fmt::Display>(
    options: Result<T, E>,
    os_cloud: Option<&str>,
    skip_tls_verify: bool,
) -> Result<(T, Credentials), String> {
    let options = options.map_err(|e| e.to_string())?;
    let mut env = Environment::from_process();
    env.skip_tls_verify = skip_tls_verify;
    let credentials = Credentials::load(os_cloud, &env).map_err(|e| e.to_string())?;
    warn_if_unverified(&credentials);
    Ok((options, credentials))
}

/// Says on stderr that TLS certificates are not verified, if so.
pub(crate) fn warn_if_unverified(credentials: &Credentials) {
    if credentials.skip_tls_verify {
        tracing::warn!(
            "TLS certificates are not verified (--insecure-skip-tls-verify): anyone on the path \
             can read the credentials and the images"
        );
    }
}
