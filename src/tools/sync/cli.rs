//! The `sync` command line: its flags, the credentials read, the run interrupted on SIGTERM or
//! Ctrl-C, the summary printed.

use std::process::ExitCode;

use crate::serve::{init_logging, runtime, shutdown_signal, EXIT_USAGE};

use super::{
    Credentials, Environment, Filters, Options, PlanFile, SourceCloud, DEFAULT_CONCURRENCY,
};

/// The flags of `sync`.
#[derive(clap::Args)]
pub struct SyncArgs {
    /// Cloud of clouds.yaml to sign in with [default: $OS_CLOUD, else the OS_* variables].
    #[arg(long, value_name = "NAME")]
    os_cloud: Option<String>,
    /// Cloud of clouds.yaml the images are read from, when the targets are in another cloud
    /// (give --to-cloud too, not --os-cloud). Each cloud is signed in to with its own
    /// credentials and the bytes stream through sync, verified, never on disk.
    #[arg(long, value_name = "NAME")]
    from_cloud: Option<String>,
    /// Cloud of clouds.yaml the --to regions are in, with --from-cloud.
    #[arg(long, value_name = "NAME")]
    to_cloud: Option<String>,
    /// Do not verify the TLS certificates of Keystone and Glance (accepts a cloud's
    /// `verify: false`, refused without this flag). For lab clouds only: use cacert instead.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// Read the source, the targets and the options from this YAML file (see the README); only
    /// --dry-run, --json, --os-cloud and --insecure-skip-tls-verify may be given with it (the
    /// plan's source.cloud and targets.cloud say what --from-cloud and --to-cloud would).
    #[arg(long, value_name = "FILE")]
    plan: Option<std::path::PathBuf>,
    /// Region the images are copied from.
    #[arg(long, value_name = "REGION", required_unless_present = "plan")]
    from: Option<String>,
    /// Regions to copy into (comma-separated, or repeat the flag).
    #[arg(
        long,
        value_name = "REGION[,REGION...]",
        required_unless_present = "plan"
    )]
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
    /// Copies running at once (1 to 64) [default: 4].
    #[arg(long)]
    concurrency: Option<usize>,
    /// List what would be copied or skipped; change nothing. With --plan, as the --json summary.
    #[arg(long)]
    dry_run: bool,
    /// Create each copy with its source image's id. An id taken in a target region by an image
    /// that is not our copy of that source is a failed copy there; nothing is overwritten.
    #[arg(long)]
    keep_id: bool,
    /// Delete our copies (ours: `glance_download_source_image_id`, this project, this source
    /// region) whose source is no longer selected; `--prune=hide` hides them instead. With image
    /// ids, only copies of those ids whose source is gone.
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true,
          default_missing_value = "delete", value_enum)]
    prune: Option<super::Prune>,
    /// Print one JSON summary on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The clouds.yaml entries a run signs in with.
#[derive(Debug, PartialEq)]
enum Clouds {
    /// One cloud for both ends: this entry, else `$OS_CLOUD` or the `OS_*` variables.
    One(Option<String>),
    /// The source's cloud and the targets' cloud.
    Two { from: String, to: String },
}

impl Clouds {
    /// One cloud when both names are the same, else two.
    fn of(from: String, to: String) -> Clouds {
        match from == to {
            true => Clouds::One(Some(from)),
            false => Clouds::Two { from, to },
        }
    }
}

impl SyncArgs {
    /// The clouds of the flags: `--from-cloud` with `--to-cloud`, else `--os-cloud`.
    fn clouds_from_flags(&self) -> Result<Clouds, String> {
        match (&self.from_cloud, &self.to_cloud, &self.os_cloud) {
            (None, None, cloud) => Ok(Clouds::One(cloud.clone())),
            (Some(_), Some(_), Some(_)) => Err("--os-cloud cannot be given with --from-cloud and \
                --to-cloud: they name the cloud of each end"
                .to_string()),
            (Some(from), Some(to), None) => Ok(Clouds::of(from.clone(), to.clone())),
            (Some(_), None, _) => Err("--from-cloud needs --to-cloud (the targets' cloud)".into()),
            (None, Some(_), _) => Err("--to-cloud needs --from-cloud (the source's cloud)".into()),
        }
    }

    /// The checked options and the clouds.yaml entries to sign in with, from the flags or the
    /// plan.
    fn options(&self) -> Result<(Options, Clouds), String> {
        let Some(path) = &self.plan else {
            let clouds = self.clouds_from_flags()?;
            let across = matches!(clouds, Clouds::Two { .. });
            return self.options_from_flags(across).map(|o| (o, clouds));
        };
        if let Some(flag) = self.flag_beside_plan() {
            return Err(format!(
                "{flag} cannot be given with --plan: the plan says it (only --dry-run, --json, \
                 --os-cloud and --insecure-skip-tls-verify can)"
            ));
        }
        let shown = path.display().to_string();
        let plan = PlanFile::read(path).map_err(|e| e.to_string())?;
        let fallback = match &self.os_cloud {
            Some(cloud) => Some(cloud.clone()),
            None => std::env::var("OS_CLOUD").ok().filter(|c| !c.is_empty()),
        };
        if let (Some(flag), Some(file)) = (&self.os_cloud, &plan.source.cloud) {
            if flag != file {
                return Err(format!(
                    "--os-cloud {flag:?} and the plan's source.cloud {file:?} disagree"
                ));
            }
        }
        let clouds = match plan
            .clouds(&shown, fallback.as_deref())
            .map_err(|e| e.to_string())?
        {
            (from, None) => Clouds::One(from),
            (Some(from), Some(to)) => Clouds::of(from, to),
            (None, Some(to)) => Clouds::One(Some(to)),
        };
        let across = matches!(clouds, Clouds::Two { .. });
        let options = plan
            .options(&shown, self.dry_run, across)
            .map_err(|e| e.to_string())?;
        Ok((options, clouds))
    }

    /// `across`: the targets are in another cloud than the source.
    fn options_from_flags(&self, across: bool) -> Result<Options, String> {
        let filters = Filters {
            name: self.name.clone(),
            tags: self.tags.clone(),
            visibility: self.visibility.clone(),
            properties: self.properties.clone(),
        };
        let build = match across {
            true => Options::across_clouds,
            false => Options::new,
        };
        let mut options = build(
            self.from.as_deref().unwrap_or_default(),
            &self.to,
            &self.images,
            filters,
            self.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            self.dry_run,
        )
        .map_err(|e| e.to_string())?;
        options.keep_id = self.keep_id;
        options.prune = self.prune;
        Ok(options)
    }

    /// The first flag given beside `--plan` that the plan says instead.
    fn flag_beside_plan(&self) -> Option<&'static str> {
        [
            (self.from.is_some(), "--from"),
            (!self.to.is_empty(), "--to"),
            (!self.images.is_empty(), "IMAGE_ID"),
            (self.name.is_some(), "--name"),
            (!self.tags.is_empty(), "--tag"),
            (self.visibility.is_some(), "--visibility"),
            (!self.properties.is_empty(), "--property"),
            (self.concurrency.is_some(), "--concurrency"),
            (self.keep_id, "--keep-id"),
            (self.prune.is_some(), "--prune"),
            (self.from_cloud.is_some(), "--from-cloud"),
            (self.to_cloud.is_some(), "--to-cloud"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    super::parse_property(text).map_err(|e| e.to_string())
}

impl SyncArgs {
    /// Runs the sync; exits 64 for a refused command line, 1 if a copy failed or the run was
    /// interrupted.
    pub fn run(self) -> ExitCode {
        init_logging("warn");
        let skip_tls_verify = self.insecure_skip_tls_verify;
        let prepared = self.options().and_then(|(options, clouds)| match clouds {
            Clouds::One(cloud) => {
                with_credentials::<_, String>(Ok(options), cloud.as_deref(), skip_tls_verify)
                    .map(|(options, target)| (options, None, target, None))
            }
            Clouds::Two { from, to } => {
                let source = SourceCloud {
                    credentials: cloud_credentials(&from, skip_tls_verify)?,
                    name: from.clone(),
                };
                let target = cloud_credentials(&to, skip_tls_verify)?;
                Ok((options, Some(source), target, Some((from, to))))
            }
        });
        let (options, source_cloud, credentials, clouds) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                eprintln!("glance-download-sidecar sync: {error}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        // A plan's dry run is its review: the JSON summary, whether or not --json was given.
        let json = self.json || (self.plan.is_some() && self.dry_run);
        let observer = super::for_terminal(json);
        let result = runtime().map_err(|e| e.to_string()).and_then(|rt| {
            rt.block_on(async {
                tokio::select! {
                    result = super::run_with(&options, source_cloud.as_ref(), &credentials, observer) => {
                        result.map_err(|e| e.to_string())
                    }
                    _ = shutdown_signal() => Err("interrupted: streamed copies under way were cut \
                        short and left queued; imports already accepted by a region carry on \
                        there; run again to finish".to_string()),
                }
            })
        });
        match result {
            Ok(mut summary) => {
                summary.clouds = clouds;
                if json {
                    crate::stdout::write(super::json_text(&summary.to_json(), true) + "\n");
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

/// The credentials of one of two clouds: its clouds.yaml (and secure.yaml) entry alone, never
/// completed from `OS_*` variables, which could belong to the other cloud.
fn cloud_credentials(cloud: &str, skip_tls_verify: bool) -> Result<Credentials, String> {
    let mut env = Environment::from_process().without_os_credentials();
    env.skip_tls_verify = skip_tls_verify;
    let credentials = Credentials::load(Some(cloud), &env).map_err(|e| e.to_string())?;
    warn_if_unverified(&credentials);
    Ok(credentials)
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
