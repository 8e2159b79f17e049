//! Configuration: an oslo.config-style INI file and command-line flags meet here, once, and become
//! one typed [`Config`]. Every option has its default in the `defaults` module and a doc line on its
//! field; a bad value is reported as a [`ConfigError`] naming the key and the reason.
//!
//! [`Config`]: crate::config::Config
//! [`ConfigError`]: crate::config::ConfigError

pub mod ini;
mod s3;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::keystone::{AppCredential, AuthMethod, Domain, Named, Secret, ServiceCredentials};

/// Default values, in one place. The README's configuration table mirrors this module.
pub mod defaults {
    /// Where the sidecar listens (where clients reach "Glance").
    pub const BIND: &str = "127.0.0.1:9393";
    /// The upstream Glance the sidecar fronts.
    pub const GLANCE_URL: &str = "http://127.0.0.1:9292";
    /// Keystone's v3 endpoint, used to validate callers' tokens.
    pub const AUTH_URL: &str = "http://127.0.0.1:5000/v3";
    /// The store sink that receives the image bytes.
    pub const STORE_SINK: &str = "glance-upload";
    /// Imports running at once; further imports wait as `pending`.
    pub const MAX_CONCURRENT_IMPORTS: usize = 8;
    /// Imports one project may run at once; more get `429` with `Retry-After`.
    pub const MAX_IMPORTS_PER_PROJECT: usize = 4;
    /// Client connections served at once; further ones wait in the listen backlog.
    pub const MAX_CONNECTIONS: usize = 1024;
    /// Largest frame handed through the pipeline (larger ones are split without copying).
    pub const CHUNK_SIZE: usize = 1024 * 1024;
    /// Bytes an import's pipeline holds between the source and the slowest of its two hashers
    /// and its store (frames read and not yet both hashed and taken by the store).
    pub const BUFFER_BYTES: usize = 8 * 1024 * 1024;
    /// Seconds allowed to open a TCP connection to Keystone or Glance.
    pub const CONNECT_TIMEOUT_SECS: u64 = 10;
    /// Seconds allowed for a JSON call to Keystone or Glance, headers and body.
    pub const REQUEST_TIMEOUT_SECS: u64 = 60;
    /// Seconds the source image stream may stay silent before the import fails.
    pub const READ_TIMEOUT_SECS: u64 = 120;
    /// Seconds a client may take to send its request head, or an import body (then 408).
    pub const CLIENT_TIMEOUT_SECS: u64 = 30;
    /// Seconds a pass-through exchange may make no progress (a body stalled in either direction,
    /// the upstream's answer after the request body, a client not reading) before it is cut.
    pub const STALL_TIMEOUT_SECS: u64 = 60;
    /// Reconnections allowed to a source Glance during one import (resumed with `Range`).
    pub const SOURCE_RETRIES: u32 = 5;
    /// Milliseconds before the first reconnection; doubled each time (with jitter), at most 10 s.
    pub const RETRY_DELAY_MS: u64 = 250;
    /// Concurrent `Range` requests per image (1: one plain stream, fastest on a LAN).
    pub const SOURCE_STREAMS: usize = 1;
    /// Compact transfer between sidecars (zero runs as lengths, data raw or zstd): asked for
    /// on source reads, answered on `GET /v2/images/{id}/file` pass-through.
    pub const COMPACT_TRANSFER: bool = true;
    /// Bytes per `Range` request when `source_streams` > 1.
    pub const SEGMENT_SIZE: u64 = 8 * 1024 * 1024;
    /// Bytes the `Range` segments behind the one being handed on may hold, per import.
    pub const REORDER_BUFFER: u64 = 32 * 1024 * 1024;
    /// Seconds one import's data copy may take in all.
    pub const TOTAL_TIMEOUT_SECS: u64 = 86_400;
    /// The task journal (JSON lines); an empty value disables it.
    pub const TASK_JOURNAL: &str = "/var/lib/glance-download-sidecar/tasks.jsonl";
    /// Seconds running imports may take to finish after SIGTERM before they are aborted.
    pub const SHUTDOWN_GRACE_SECS: u64 = 30;
    /// Seconds a validated token is remembered (never longer than the token lives).
    pub const TOKEN_CACHE_TTL_SECS: u64 = 60;
    /// `[s3] region`: the SigV4 signing region (S3-compatible servers mostly accept any).
    pub const S3_REGION: &str = "us-east-1";
    /// `[s3] part_size`: bytes per multipart part; an upload holds at most two in memory.
    pub const S3_PART_SIZE: u64 = 16 * 1024 * 1024;
    /// Finished tasks kept in memory (and in the journal) in all.
    pub const MAX_FINISHED_TASKS: usize = crate::tasks::MAX_FINISHED;
    /// Finished tasks kept, and listed, per image.
    pub const MAX_TASKS_PER_IMAGE: usize = crate::tasks::MAX_PER_IMAGE;
    /// Finished tasks kept per project.
    pub const MAX_TASKS_PER_PROJECT: usize = crate::tasks::MAX_PER_PROJECT;
    /// Bytes past which a running sidecar compacts its task journal.
    pub const TASK_JOURNAL_MAX_BYTES: u64 = crate::journal::MAX_BYTES;
    /// Property-name prefixes copied from the source image (Glance's own defaults).
    pub const EXTRA_PROPERTIES: [&str; 5] =
        ["hw_", "trait:", "os_distro", "os_secure_boot", "os_type"];
}

/// The store sinks this build can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// `PUT /v2/images/{id}/file` on the fronted Glance.
    GlanceUpload,
    /// `PUT /v2/images/{id}/stage` then a `glance-direct` import (the target's plugins run).
    GlanceStage,
    /// Multipart upload into the S3 bucket of an S3-backed Glance, then the location API.
    S3,
}

impl SinkKind {
    /// The sink named `name` (`glance-upload`, `glance-stage`).
    pub fn parse(name: &str) -> Option<SinkKind> {
        match name {
            "glance-upload" => Some(SinkKind::GlanceUpload),
            "glance-stage" => Some(SinkKind::GlanceStage),
            "s3" => Some(SinkKind::S3),
            _ => None,
        }
    }
}

/// The sidecar's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[DEFAULT] bind`: the listening address.
    pub bind: SocketAddr,
    /// `[DEFAULT] glance_url`: base URL of the fronted Glance, without a trailing slash.
    pub glance_url: String,
    /// `[DEFAULT] auth_url`: Keystone v3 base URL, without a trailing slash.
    pub auth_url: String,
    /// `[DEFAULT] store_sink`: where image bytes go.
    pub store_sink: SinkKind,
    /// `[DEFAULT] max_concurrent_imports`: 1 to 1024.
    pub max_concurrent_imports: usize,
    /// `[DEFAULT] max_imports_per_project`: 1 to 1024.
    pub max_imports_per_project: usize,
    /// `[DEFAULT] max_connections`: 1 to 65536.
    pub max_connections: usize,
    /// `[DEFAULT] chunk_size`: bytes, 4 KiB to 64 MiB.
    pub chunk_size: usize,
    /// `[DEFAULT] buffer_bytes`: bytes, 64 KiB to 1 GiB (at least two chunks are always allowed).
    pub buffer_bytes: usize,
    /// `[DEFAULT] connect_timeout`: seconds, 1 to 3600.
    pub connect_timeout: Duration,
    /// `[DEFAULT] request_timeout`: seconds, 1 to 3600.
    pub request_timeout: Duration,
    /// `[DEFAULT] client_timeout`: seconds, 1 to 3600.
    pub client_timeout: Duration,
    /// `[DEFAULT] stall_timeout`: seconds, 1 to 3600.
    pub stall_timeout: Duration,
    /// `[DEFAULT] read_timeout`: seconds, 1 to 3600.
    pub read_timeout: Duration,
    /// `[DEFAULT] source_streams`: 1 to 16.
    pub source_streams: usize,
    /// `[DEFAULT] segment_size`: bytes, 1 MiB to 256 MiB.
    pub segment_size: u64,
    /// `[DEFAULT] reorder_buffer`: bytes, 1 MiB to 1 GiB.
    pub reorder_buffer: u64,
    /// `[DEFAULT] compact_transfer`: `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`).
    pub compact_transfer: bool,
    /// `[DEFAULT] source_retries`: 0 to 100.
    pub source_retries: u32,
    /// `[DEFAULT] retry_delay_ms`: 1 to 60000.
    pub retry_delay: Duration,
    /// `[DEFAULT] total_timeout`: seconds, 1 to 604800.
    pub total_timeout: Duration,
    /// `[DEFAULT] ca_file`: extra CA certificates (PEM) trusted for outbound TLS.
    pub ca_file: Option<PathBuf>,
    /// `[DEFAULT] tls_cert_file` and `tls_key_file`: serve HTTPS with this PEM chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `[DEFAULT] task_journal`: path of the journal, or `None` (empty value) for none.
    pub task_journal: Option<PathBuf>,
    /// `[DEFAULT] shutdown_grace`: seconds, 0 to 86400.
    pub shutdown_grace: Duration,
    /// `[DEFAULT] token_cache_ttl`: seconds, 0 (no cache) to 3600.
    pub token_cache_ttl: Duration,
    /// `[service_credentials]`: the sidecar's own Keystone user, for recovery after a restart.
    pub service_credentials: Option<ServiceCredentials>,
    /// `[inject_metadata_properties] inject`: properties set on every imported image (after the
    /// sync, overriding it), as Glance's `inject_image_metadata` plugin; `key:value,...`.
    pub inject: Vec<(String, String)>,
    /// `[inject_metadata_properties] ignore_user_roles`: callers with any of these roles get no
    /// injection (default `admin`, as Glance).
    pub inject_ignore_roles: Vec<String>,
    /// `[glance_download_properties] extra_properties`: synced property-name prefixes.
    pub extra_properties: Vec<String>,
    /// `[s3]`: the bucket of an S3-backed Glance, for the `s3` sink (needs
    /// `[service_credentials]`); `None` when the section is absent.
    pub s3: Option<crate::s3::S3Config>,
    /// `[DEFAULT] max_finished_tasks`: 1 to 100000.
    pub max_finished_tasks: usize,
    /// `[DEFAULT] max_tasks_per_image`: 1 to 1000.
    pub max_tasks_per_image: usize,
    /// `[DEFAULT] max_tasks_per_project`: 1 to 100000.
    pub max_tasks_per_project: usize,
    /// `[DEFAULT] task_journal_max_bytes`: 64 KiB to 1 GiB.
    pub task_journal_max_bytes: u64,
}

/// Values given on the command line; each one, when present, wins over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub glance_url: Option<String>,
    pub auth_url: Option<String>,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file is larger than {} bytes", ini::MAX_FILE_BYTES)]
    FileTooLarge,
    #[error("config line {line}: {reason}")]
    Syntax { line: usize, reason: &'static str },
    #[error("[{section}] {key}: unknown option")]
    UnknownKey { section: String, key: String },
    #[error("[{section}] {key} is missing")]
    Missing {
        section: &'static str,
        key: &'static str,
    },
    #[error("{key}: {reason} (got {value:?})")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 9393)),
            glance_url: defaults::GLANCE_URL.to_string(),
            auth_url: defaults::AUTH_URL.to_string(),
            store_sink: SinkKind::GlanceUpload,
            max_concurrent_imports: defaults::MAX_CONCURRENT_IMPORTS,
            max_imports_per_project: defaults::MAX_IMPORTS_PER_PROJECT,
            max_connections: defaults::MAX_CONNECTIONS,
            chunk_size: defaults::CHUNK_SIZE,
            buffer_bytes: defaults::BUFFER_BYTES,
            connect_timeout: Duration::from_secs(defaults::CONNECT_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(defaults::REQUEST_TIMEOUT_SECS),
            client_timeout: Duration::from_secs(defaults::CLIENT_TIMEOUT_SECS),
            stall_timeout: Duration::from_secs(defaults::STALL_TIMEOUT_SECS),
            read_timeout: Duration::from_secs(defaults::READ_TIMEOUT_SECS),
            source_streams: defaults::SOURCE_STREAMS,
            segment_size: defaults::SEGMENT_SIZE,
            reorder_buffer: defaults::REORDER_BUFFER,
            compact_transfer: defaults::COMPACT_TRANSFER,
            source_retries: defaults::SOURCE_RETRIES,
            retry_delay: Duration::from_millis(defaults::RETRY_DELAY_MS),
            total_timeout: Duration::from_secs(defaults::TOTAL_TIMEOUT_SECS),
            ca_file: None,
            tls: None,
            task_journal: Some(PathBuf::from(defaults::TASK_JOURNAL)),
            shutdown_grace: Duration::from_secs(defaults::SHUTDOWN_GRACE_SECS),
            token_cache_ttl: Duration::from_secs(defaults::TOKEN_CACHE_TTL_SECS),
            service_credentials: None,
            inject: Vec::new(),
            inject_ignore_roles: vec!["admin".to_string()],
            extra_properties: defaults::EXTRA_PROPERTIES
                .iter()
                .map(|p| p.to_string())
                .collect(),
            s3: None,
            max_finished_tasks: defaults::MAX_FINISHED_TASKS,
            max_tasks_per_image: defaults::MAX_TASKS_PER_IMAGE,
            max_tasks_per_project: defaults::MAX_TASKS_PER_PROJECT,
            task_journal_max_bytes: defaults::TASK_JOURNAL_MAX_BYTES,
        }
    }
}

// === impl Config ===

impl Config {
    /// Reads the file named by `--config` (if any) and applies the flags over it.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = match &overrides.config {
            Some(path) => read_file(path)?,
            None => String::new(),
        };
        Config::from_ini(&text, overrides)
    }

    /// Builds the configuration from INI text and flags (no file system access).
    pub fn from_ini(text: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut creds = CredentialParts::default();
        let mut s3 = s3::S3Parts::default();
        let (mut tls_cert, mut tls_key) = (None, None);
        let (mut buffer_chunks, mut buffer_bytes_set) = (None, false);
        for entry in ini::parse(text)? {
            let path = || (!entry.value.is_empty()).then(|| PathBuf::from(&entry.value));
            if entry.section == "service_credentials" {
                creds.set(&entry.key, &entry.value)?;
            } else if entry.section == "s3" {
                s3.set(&entry.key, &entry.value)?;
            } else if entry.section == "DEFAULT" && entry.key == "tls_cert_file" {
                tls_cert = path();
            } else if entry.section == "DEFAULT" && entry.key == "tls_key_file" {
                tls_key = path();
            } else if entry.section == "DEFAULT" && entry.key == BUFFER_CHUNKS {
                buffer_chunks = Some(int(BUFFER_CHUNKS, &entry.value, 1, 1024)?);
            } else {
                buffer_bytes_set |= entry.section == "DEFAULT" && entry.key == "buffer_bytes";
                config.set(&entry.section, &entry.key, &entry.value)?;
            }
        }
        if let (Some(chunks), false) = (buffer_chunks, buffer_bytes_set) {
            config.buffer_bytes = buffer_of_chunks(chunks, config.chunk_size);
        }
        config.service_credentials = creds.finish()?;
        config.s3 = s3.finish()?;
        config.tls = match (tls_cert, tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => {
                return Err(invalid(
                    "tls_cert_file",
                    "",
                    "tls_cert_file and tls_key_file go together",
                ))
            }
        };
        if let Some(v) = &overrides.bind {
            config.set("DEFAULT", "bind", v)?;
        }
        if let Some(v) = &overrides.glance_url {
            config.set("DEFAULT", "glance_url", v)?;
        }
        if let Some(v) = &overrides.auth_url {
            config.set("DEFAULT", "auth_url", v)?;
        }
        config.check_s3()?;
        Ok(config)
    }

    /// `store_sink = s3` needs `[s3]`, and `[s3]` needs `[service_credentials]` (Glance's
    /// location API takes non-http locations only with a `service` token).
    fn check_s3(&self) -> Result<(), ConfigError> {
        if self.store_sink == SinkKind::S3 && self.s3.is_none() {
            return Err(invalid(
                "store_sink",
                "s3",
                "store_sink = s3 needs an [s3] section (endpoint, bucket, access_key, secret_key)",
            ));
        }
        if self.s3.is_some() && self.service_credentials.is_none() {
            return Err(invalid(
                "service_credentials",
                "",
                "[s3] needs [service_credentials]: a user with the service role for Glance's location API",
            ));
        }
        Ok(())
    }

    /// Sets one key read from the file or a flag; a key this service does not know is refused.
    fn set(&mut self, section: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        let known = match section {
            "DEFAULT" => {
                self.set_service(key, value)?
                    || self.set_bound(key, value)?
                    || self.set_timing(key, value)?
            }
            "inject_metadata_properties" => self.set_injection(key, value)?,
            "glance_download_properties" => {
                let known = matches!(key, "extra_properties" | "extra_properties_prefixes");
                if known {
                    self.extra_properties = ini::list(value);
                }
                known
            }
            _ => false,
        };
        if !known {
            return Err(ConfigError::UnknownKey {
                section: section.to_string(),
                key: key.to_string(),
            });
        }
        Ok(())
    }

    /// `[DEFAULT]`: where the service listens, what it fronts and trusts, where it writes;
    /// `false` for another key.
    fn set_service(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "bind" => {
                self.bind = value
                    .parse()
                    .map_err(|_| invalid("bind", value, "expected IP:PORT"))?
            }
            "glance_url" => self.glance_url = http_url("glance_url", value)?,
            "auth_url" => self.auth_url = http_url("auth_url", value)?,
            "store_sink" => {
                self.store_sink = SinkKind::parse(value).ok_or_else(|| {
                    invalid(
                        "store_sink",
                        value,
                        "supported: glance-upload, glance-stage, s3",
                    )
                })?
            }
            "ca_file" => self.ca_file = (!value.is_empty()).then(|| PathBuf::from(value)),
            "task_journal" => self.task_journal = (!value.is_empty()).then(|| PathBuf::from(value)),
            "compact_transfer" => self.compact_transfer = boolean("compact_transfer", value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `[DEFAULT]`: the bounds on imports, connections, buffers, streams and kept tasks; `false`
    /// for another key.
    fn set_bound(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "max_concurrent_imports" => {
                self.max_concurrent_imports = int("max_concurrent_imports", value, 1, 1024)?
            }
            "max_imports_per_project" => {
                self.max_imports_per_project = int("max_imports_per_project", value, 1, 1024)?
            }
            "max_connections" => self.max_connections = int("max_connections", value, 1, 65_536)?,
            "chunk_size" => self.chunk_size = int("chunk_size", value, 4096, 64 * 1024 * 1024)?,
            "buffer_bytes" => self.buffer_bytes = int("buffer_bytes", value, 64 << 10, 1 << 30)?,
            "source_streams" => self.source_streams = int("source_streams", value, 1, 16)?,
            "segment_size" => {
                self.segment_size = int("segment_size", value, 1 << 20, 256 << 20)? as u64
            }
            "reorder_buffer" => {
                self.reorder_buffer = int("reorder_buffer", value, 1 << 20, 1 << 30)? as u64
            }
            "max_finished_tasks" => {
                self.max_finished_tasks = int("max_finished_tasks", value, 1, 100_000)?
            }
            "max_tasks_per_image" => {
                self.max_tasks_per_image = int("max_tasks_per_image", value, 1, 1000)?
            }
            "max_tasks_per_project" => {
                self.max_tasks_per_project = int("max_tasks_per_project", value, 1, 100_000)?
            }
            "task_journal_max_bytes" => {
                self.task_journal_max_bytes =
                    int("task_journal_max_bytes", value, 64 << 10, 1 << 30)? as u64
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `[DEFAULT]`: timeouts, retries and cache lifetimes; `false` for another key.
    fn set_timing(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "connect_timeout" => self.connect_timeout = seconds("connect_timeout", value)?,
            "request_timeout" => self.request_timeout = seconds("request_timeout", value)?,
            "read_timeout" => self.read_timeout = seconds("read_timeout", value)?,
            "client_timeout" => self.client_timeout = seconds("client_timeout", value)?,
            "stall_timeout" => self.stall_timeout = seconds("stall_timeout", value)?,
            "source_retries" => self.source_retries = int("source_retries", value, 0, 100)? as u32,
            "retry_delay_ms" => {
                self.retry_delay =
                    Duration::from_millis(int("retry_delay_ms", value, 1, 60_000)? as u64)
            }
            "total_timeout" => {
                self.total_timeout =
                    Duration::from_secs(int("total_timeout", value, 1, 604_800)? as u64)
            }
            "shutdown_grace" => {
                self.shutdown_grace =
                    Duration::from_secs(int("shutdown_grace", value, 0, 86_400)? as u64)
            }
            "token_cache_ttl" => {
                self.token_cache_ttl =
                    Duration::from_secs(int("token_cache_ttl", value, 0, 3600)? as u64)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `[inject_metadata_properties]`; `false` for another key.
    fn set_injection(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "inject" => {
                self.inject = ini::list(value)
                    .into_iter()
                    .map(|pair| match pair.split_once(':') {
                        Some((k, v)) if !k.trim().is_empty() => {
                            Ok((k.trim().to_string(), v.trim().to_string()))
                        }
                        _ => Err(invalid("inject", value, "expected key:value,key:value")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "ignore_user_roles" => self.inject_ignore_roles = ini::list(value),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `[service_credentials]` as read, before it is known to be complete.
#[derive(Default)]
struct CredentialParts {
    values: std::collections::HashMap<&'static str, String>,
}

/// The keys of `[service_credentials]` (clouds.yaml's `auth` keys, and `auth_type`).
const CREDENTIAL_KEYS: [&str; 13] = [
    "auth_type",
    "username",
    "user_id",
    "password",
    "project_name",
    "project_id",
    "user_domain_name",
    "user_domain_id",
    "project_domain_name",
    "project_domain_id",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
];

impl CredentialParts {
    fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let Some(known) = CREDENTIAL_KEYS.iter().find(|k| **k == key) else {
            return Err(ConfigError::UnknownKey {
                section: "service_credentials".into(),
                key: key.to_string(),
            });
        };
        if !value.is_empty() {
            self.values.insert(known, value.to_string());
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn require(&self, key: &'static str) -> Result<&str, ConfigError> {
        self.get(key).ok_or(ConfigError::Missing {
            section: "service_credentials",
            key,
        })
    }

    /// A user or project: `{kind}_id`, else `{kind}_name` (`username` for the user) within
    /// `{kind}_domain_id` or `{kind}_domain_name` (default `Default`).
    fn named(&self, kind: &str, name_key: &'static str) -> Option<Named> {
        if let Some(id) = self.get(&format!("{kind}_id")) {
            return Some(Named::Id(id.to_string()));
        }
        let domain = match self.get(&format!("{kind}_domain_id")) {
            Some(id) => Domain::Id(id.to_string()),
            None => Domain::Name(
                self.get(&format!("{kind}_domain_name"))
                    .unwrap_or("Default")
                    .to_string(),
            ),
        };
        self.get(name_key).map(|name| Named::Name {
            name: name.to_string(),
            domain,
        })
    }

    fn finish(self) -> Result<Option<ServiceCredentials>, ConfigError> {
        if self.values.is_empty() {
            return Ok(None);
        }
        let missing = |key| ConfigError::Missing {
            section: "service_credentials",
            key,
        };
        let method = match self.get("auth_type").unwrap_or("password") {
            "password" | "v3password" => AuthMethod::Password {
                user: self.named("user", "username").ok_or(missing("username"))?,
                password: Secret::new(self.require("password")?),
                project: self
                    .named("project", "project_name")
                    .ok_or(missing("project_name"))?,
            },
            "v3applicationcredential" => AuthMethod::ApplicationCredential {
                credential: match self.get("application_credential_id") {
                    Some(id) => AppCredential::Id(id.to_string()),
                    None => AppCredential::Name {
                        name: self.require("application_credential_name")?.to_string(),
                        user: self.named("user", "username").ok_or(missing("username"))?,
                    },
                },
                secret: Secret::new(self.require("application_credential_secret")?),
            },
            other => {
                return Err(invalid(
                    "auth_type",
                    other,
                    "[service_credentials] takes password or v3applicationcredential \
                     (a bare token would expire while the sidecar runs)",
                ))
            }
        };
        Ok(Some(ServiceCredentials { method }))
    }
}

/// The option `buffer_bytes` replaced: a number of frames, still read from existing files.
const BUFFER_CHUNKS: &str = "buffer_chunks";

/// `buffer_chunks` frames of `chunk_size` as a `buffer_bytes` budget, within its range.
fn buffer_of_chunks(chunks: usize, chunk_size: usize) -> usize {
    chunks.saturating_mul(chunk_size).clamp(64 << 10, 1 << 30)
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    let read = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.len() > ini::MAX_FILE_BYTES as u64 {
        return Err(ConfigError::FileTooLarge);
    }
    std::fs::read_to_string(path).map_err(read)
}

fn invalid(key: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.chars().take(200).collect(),
        reason: reason.into(),
    }
}

fn int(key: &'static str, value: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
    let n: usize = value
        .parse()
        .map_err(|_| invalid(key, value, "expected a whole number"))?;
    if !(min..=max).contains(&n) {
        return Err(invalid(key, value, format!("must be from {min} to {max}")));
    }
    Ok(n)
}

/// A boolean as oslo.config reads one.
fn boolean(key: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn seconds(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    int(key, value, 1, 3600).map(|s| Duration::from_secs(s as u64))
}

/// Accepts `http(s)://host[:port][/path]`; returns it without a trailing slash.
fn http_url(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| invalid(key, value, "not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid(key, value, "expected an http:// or https:// URL"));
    }
    if !crate::http::port_is_valid(&uri) {
        return Err(invalid(
            key,
            value,
            "the port must be a number from 1 to 65535",
        ));
    }
    if uri.authority().is_none() || uri.query().is_some() {
        return Err(invalid(key, value, "expected http(s)://host[:port][/path]"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests;
