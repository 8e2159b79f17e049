//! Credentials as the openstack client finds them: a cloud of `clouds.yaml` (its password possibly
//! in `secure.yaml`), or the `OS_*` variables of an openrc file.
//!
//! - A cloud is named by `--os-cloud`, else by `OS_CLOUD`. It is read from the first `clouds.yaml`
//!   found in: `OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`, `$XDG_CONFIG_HOME/openstack/clouds.yaml`
//!   (default `~/.config/openstack`), `/etc/openstack/clouds.yaml`. `secure.yaml` is looked for the
//!   same way (`OS_CLIENT_SECURE_FILE`) and its `auth` keys are merged in. Keys the cloud leaves
//!   out are taken from the `OS_*` variables (never the other way round, so a stale openrc cannot
//!   redirect a named cloud).
//! - Without a cloud name, the `OS_*` variables alone: `OS_AUTH_URL`, `OS_AUTH_TYPE`,
//!   `OS_USERNAME` or `OS_USER_ID`, `OS_PASSWORD`, `OS_PROJECT_NAME` (or `OS_TENANT_NAME`) or
//!   `OS_PROJECT_ID`, `OS_USER_DOMAIN_NAME`/`_ID`, `OS_PROJECT_DOMAIN_NAME`/`_ID`,
//!   `OS_APPLICATION_CREDENTIAL_ID`/`_NAME`/`_SECRET`, `OS_TOKEN`, `OS_INTERFACE`, `OS_CACERT`.
//!
//! Three `auth_type`s, as keystoneauth names them: `password` (also `v3password`),
//! `v3applicationcredential` (`application_credential_id`, or `application_credential_name` with
//! the user, and `application_credential_secret`) and `token` (also `v3token`; `token`, and a
//! project to scope it to, else the user's default project). Without `auth_type`, a token or an
//! application credential secret given without a password selects that method. A cloud that turns
//! TLS verification off (`verify: false`, `insecure: true`, `OS_INSECURE`) is refused unless the
//! command line says so too (`--insecure-skip-tls-verify`); the CA bundle goes in `cacert`
//! (`OS_CACERT`). The environment is read through [`Environment`], which tests build from a map
//! (no `set_var`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// Largest `clouds.yaml` / `secure.yaml` read.
const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// The Keystone domain assumed when a user or project name comes without one.
pub(super) const DEFAULT_DOMAIN_ID: &str = "default";

/// The catalog interface used when none is configured.
pub(super) const DEFAULT_INTERFACE: &str = "public";

/// The process environment as `sync` reads it: variables, and where configuration files live.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Environment variables (`OS_*`, `HOME`, `XDG_CONFIG_HOME`).
    pub vars: HashMap<String, String>,
    /// The working directory (for `./clouds.yaml`); `None` skips it.
    pub cwd: Option<PathBuf>,
    /// The system configuration directory (`/etc/openstack`); `None` skips it.
    pub system_dir: Option<PathBuf>,
    /// `--insecure-skip-tls-verify`: server certificates are not verified, and a cloud's
    /// `verify: false` is accepted (refused otherwise).
    pub skip_tls_verify: bool,
}

impl Environment {
    /// The real process environment.
    pub fn from_process() -> Self {
        Environment {
            vars: std::env::vars().collect(),
            cwd: std::env::current_dir().ok(),
            system_dir: Some(PathBuf::from("/etc/openstack")),
            skip_tls_verify: false,
        }
    }

    /// Only these variables: no working directory and no system directory (for tests).
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            cwd: None,
            system_dir: None,
            skip_tls_verify: false,
        }
    }

    /// This environment without the `OS_*` variables that say who signs in where (only
    /// `OS_CLIENT_CONFIG_FILE` and `OS_CLIENT_SECURE_FILE` are kept): for a named cloud that
    /// must not be completed with another cloud's settings.
    pub fn without_os_credentials(mut self) -> Self {
        self.vars.retain(|name, _| {
            !name.starts_with("OS_")
                || name == "OS_CLIENT_CONFIG_FILE"
                || name == "OS_CLIENT_SECURE_FILE"
        });
        self
    }

    /// A variable's value, if set and not empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The candidate paths of `file` (`clouds.yaml`, `secure.yaml`), first match wins.
    fn candidates(&self, file: &str, override_var: &str) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        if let Some(path) = self.var(override_var) {
            paths.push(PathBuf::from(path));
        }
        if let Some(cwd) = &self.cwd {
            paths.push(cwd.join(file));
        }
        let user_dir = match (self.var("XDG_CONFIG_HOME"), self.var("HOME")) {
            (Some(xdg), _) => Some(PathBuf::from(xdg)),
            (None, Some(home)) => Some(Path::new(home).join(".config")),
            (None, None) => None,
        };
        if let Some(dir) = user_dir {
            paths.push(dir.join("openstack").join(file));
        }
        if let Some(dir) = &self.system_dir {
            paths.push(dir.join(file));
        }
        paths
    }
}

pub use crate::keystone::{AppCredential, AuthMethod, Domain, Named};
use crate::keystone::{Secret, Token};

/// What `sync` authenticates with. `Debug` never shows a password, secret or token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Keystone's v3 URL (`/v3` appended when missing), no trailing slash.
    pub auth_url: String,
    /// How to log in (the scope included: a catalog needs one).
    pub method: AuthMethod,
    /// The catalog interface of the image endpoints (`public` by default).
    pub interface: String,
    /// Extra CA bundle trusted for outbound TLS.
    pub cacert: Option<PathBuf>,
    /// Server certificates are not verified (`--insecure-skip-tls-verify`).
    pub skip_tls_verify: bool,
    /// Where these came from, for messages ("cloud prod in /x/clouds.yaml", "OS_* variables").
    pub origin: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_url", &self.auth_url)
            .field("method", &self.method)
            .field("interface", &self.interface)
            .field("skip_tls_verify", &self.skip_tls_verify)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why no usable credentials were found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no credentials: give --os-cloud or set OS_CLOUD (clouds.yaml), \
         or set OS_AUTH_URL and the other OS_* variables"
    )]
    Nothing,
    #[error("cloud {cloud:?} was asked for, but no clouds.yaml exists (looked in {searched})")]
    NoCloudsFile { cloud: String, searched: String },
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}: not valid YAML: {reason}")]
    BadYaml { path: String, reason: String },
    #[error("cloud {cloud:?} is not defined in {path}")]
    UnknownCloud { cloud: String, path: String },
    #[error("{origin}: {key} is missing")]
    Missing { origin: String, key: &'static str },
    #[error(
        "{origin}: auth_type {auth_type:?} is not supported \
         (password, v3applicationcredential or token)"
    )]
    UnsupportedAuthType { origin: String, auth_type: String },
    #[error(
        "{origin}: turns TLS verification off (verify: false, insecure, OS_INSECURE): give the \
         CA bundle as cacert (OS_CACERT), or pass --insecure-skip-tls-verify to accept it"
    )]
    Insecure { origin: String },
    #[error("{origin}: the token is not a valid token (printable ASCII, at most 8 KiB)")]
    BadToken { origin: String },
    #[error("{origin}: auth_url {url:?} is not an http(s) URL")]
    BadAuthUrl { origin: String, url: String },
}

/// The `OS_*` variable standing for each `auth` key of clouds.yaml.
const ENV_KEYS: [(&str, &str); 16] = [
    ("auth_url", "OS_AUTH_URL"),
    ("username", "OS_USERNAME"),
    ("user_id", "OS_USER_ID"),
    ("password", "OS_PASSWORD"),
    ("project_name", "OS_PROJECT_NAME"),
    ("project_id", "OS_PROJECT_ID"),
    ("user_domain_name", "OS_USER_DOMAIN_NAME"),
    ("user_domain_id", "OS_USER_DOMAIN_ID"),
    ("project_domain_name", "OS_PROJECT_DOMAIN_NAME"),
    ("project_domain_id", "OS_PROJECT_DOMAIN_ID"),
    ("domain_name", "OS_DOMAIN_NAME"),
    ("domain_id", "OS_DOMAIN_ID"),
    ("application_credential_id", "OS_APPLICATION_CREDENTIAL_ID"),
    (
        "application_credential_name",
        "OS_APPLICATION_CREDENTIAL_NAME",
    ),
    (
        "application_credential_secret",
        "OS_APPLICATION_CREDENTIAL_SECRET",
    ),
    ("token", "OS_TOKEN"),
];

/// The `OS_*` variable standing for each setting outside `auth`.
const ENV_SETTINGS: [(&str, &str); 5] = [
    ("auth_type", "OS_AUTH_TYPE"),
    ("interface", "OS_INTERFACE"),
    ("cacert", "OS_CACERT"),
    ("insecure", "OS_INSECURE"),
    ("verify", "OS_VERIFY"),
];

// === impl Credentials ===

impl Credentials {
    /// Finds the credentials: the cloud `cloud` (or `OS_CLOUD`) of clouds.yaml, else `OS_*`.
    pub fn load(cloud: Option<&str>, env: &Environment) -> Result<Credentials, CredentialsError> {
        let cloud = cloud.filter(|c| !c.is_empty()).or(env.var("OS_CLOUD"));
        match cloud {
            Some(name) => from_cloud(name, env),
            None if env.var("OS_AUTH_URL").is_some() => from_vars(env),
            None => Err(CredentialsError::Nothing),
        }
    }

    /// The TLS client configuration: the platform's roots and `cacert`, or, with
    /// `--insecure-skip-tls-verify`, no certificate verification at all.
    pub fn tls(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, crate::tls::TlsError> {
        match self.skip_tls_verify {
            true => crate::tools::insecure_tls::skip_verify_config(),
            false => crate::tls::client_config(self.cacert.as_deref()),
        }
    }
}

/// The settings of one cloud, as flat strings (`auth.` keys without the prefix).
#[derive(Default)]
struct Settings {
    auth: HashMap<String, String>,
    other: HashMap<String, String>,
}

fn from_vars(env: &Environment) -> Result<Credentials, CredentialsError> {
    let mut settings = Settings::default();
    fill_from_env(&mut settings, env);
    build(
        settings,
        "the OS_* variables".to_string(),
        env.skip_tls_verify,
    )
}

fn fill_from_env(settings: &mut Settings, env: &Environment) {
    for (key, var) in ENV_KEYS {
        if let Some(value) = env.var(var) {
            settings
                .auth
                .entry(key.to_string())
                .or_insert_with(|| value.to_string());
        }
    }
    if let Some(tenant) = env.var("OS_TENANT_NAME") {
        settings
            .auth
            .entry("project_name".into())
            .or_insert_with(|| tenant.to_string());
    }
    for (key, var) in ENV_SETTINGS {
        if let Some(value) = env.var(var) {
            settings
                .other
                .entry(key.to_string())
                .or_insert_with(|| value.to_string());
        }
    }
}

fn from_cloud(name: &str, env: &Environment) -> Result<Credentials, CredentialsError> {
    let candidates = env.candidates("clouds.yaml", "OS_CLIENT_CONFIG_FILE");
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        let searched = candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CredentialsError::NoCloudsFile {
            cloud: name.to_string(),
            searched,
        });
    };
    let doc = read_yaml(path)?;
    let cloud = doc.get("clouds").and_then(|c| c.get(name)).ok_or_else(|| {
        CredentialsError::UnknownCloud {
            cloud: name.to_string(),
            path: path.display().to_string(),
        }
    })?;
    let mut settings = Settings::default();
    merge(&mut settings, cloud);
    let secure = env.candidates("secure.yaml", "OS_CLIENT_SECURE_FILE");
    if let Some(secure_path) = secure.iter().find(|p| p.is_file()) {
        let secure_doc = read_yaml(secure_path)?;
        if let Some(extra) = secure_doc.get("clouds").and_then(|c| c.get(name)) {
            merge(&mut settings, extra);
        }
    }
    fill_from_env(&mut settings, env);
    let origin = format!("cloud {name} in {}", path.display());
    build(settings, origin, env.skip_tls_verify)
}

fn read_yaml(path: &Path) -> Result<Value, CredentialsError> {
    let unreadable = |reason: String| CredentialsError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if meta.len() > MAX_CONFIG_FILE {
        return Err(unreadable(format!("larger than {MAX_CONFIG_FILE} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| CredentialsError::BadYaml {
        path: path.display().to_string(),
        // The location only: a message quoting the document could quote a password.
        reason: match e.location() {
            Some(at) => format!("syntax error at line {}, column {}", at.line(), at.column()),
            None => "syntax error".to_string(),
        },
    })
}

/// Merges a cloud's mapping into `settings`; later merges override earlier ones.
fn merge(settings: &mut Settings, cloud: &Value) {
    let Some(map) = cloud.as_mapping() else {
        return;
    };
    for (key, value) in map {
        let Some(key) = key.as_str() else { continue };
        if key == "auth" {
            for (k, v) in value.as_mapping().into_iter().flatten() {
                if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                    settings.auth.insert(k.to_string(), v);
                }
            }
        } else if let Some(v) = scalar(value) {
            settings.other.insert(key.to_string(), v);
        }
    }
}

/// A YAML scalar as text (numbers and booleans too, as the openstack client accepts them).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads one setting of a cloud: `auth` keys and the others, empty values counting as absent.
struct Reader<'a> {
    settings: &'a Settings,
    origin: &'a str,
}

impl Reader<'_> {
    fn auth(&self, key: &str) -> Option<String> {
        self.settings
            .auth
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
    }

    fn other(&self, key: &str) -> Option<String> {
        self.settings
            .other
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
    }

    fn missing(&self, key: &'static str) -> CredentialsError {
        CredentialsError::Missing {
            origin: self.origin.to_string(),
            key,
        }
    }

    fn domain(&self, kind: &str) -> Domain {
        self.auth(&format!("{kind}_domain_id"))
            .map(Domain::Id)
            .or_else(|| self.auth(&format!("{kind}_domain_name")).map(Domain::Name))
            .or_else(|| self.auth("domain_id").map(Domain::Id))
            .or_else(|| self.auth("domain_name").map(Domain::Name))
            .unwrap_or_else(|| Domain::Id(DEFAULT_DOMAIN_ID.to_string()))
    }

    fn user(&self) -> Option<Named> {
        match (self.auth("user_id"), self.auth("username")) {
            (Some(id), _) => Some(Named::Id(id)),
            (None, Some(name)) => Some(Named::Name {
                name,
                domain: self.domain("user"),
            }),
            (None, None) => None,
        }
    }

    fn project(&self) -> Option<Named> {
        match (
            self.auth("project_id").or_else(|| self.auth("tenant_id")),
            self.auth("project_name")
                .or_else(|| self.auth("tenant_name")),
        ) {
            (Some(id), _) => Some(Named::Id(id)),
            (None, Some(name)) => Some(Named::Name {
                name,
                domain: self.domain("project"),
            }),
            (None, None) => None,
        }
    }

    /// `auth_type` as given, else guessed: a token or an application credential secret
    /// without a password.
    fn auth_type(&self) -> String {
        if let Some(kind) = self.other("auth_type") {
            return kind;
        }
        let no_password = self.auth("password").is_none();
        if no_password && self.auth("token").is_some() {
            "token".to_string()
        } else if no_password && self.auth("application_credential_secret").is_some() {
            "v3applicationcredential".to_string()
        } else {
            "password".to_string()
        }
    }

    fn method(&self) -> Result<AuthMethod, CredentialsError> {
        match self.auth_type().as_str() {
            "password" | "v3password" => Ok(AuthMethod::Password {
                user: self.user().ok_or_else(|| self.missing("username"))?,
                password: Secret::new(
                    self.auth("password")
                        .ok_or_else(|| self.missing("password"))?,
                ),
                project: self.project().ok_or_else(|| self.missing("project_name"))?,
            }),
            "v3applicationcredential" => {
                let credential = match self.auth("application_credential_id") {
                    Some(id) => AppCredential::Id(id),
                    None => AppCredential::Name {
                        name: self
                            .auth("application_credential_name")
                            .ok_or_else(|| self.missing("application_credential_id"))?,
                        user: self.user().ok_or_else(|| self.missing("username"))?,
                    },
                };
                let secret = self
                    .auth("application_credential_secret")
                    .ok_or_else(|| self.missing("application_credential_secret"))?;
                Ok(AuthMethod::ApplicationCredential {
                    credential,
                    secret: Secret::new(secret),
                })
            }
            "token" | "v3token" => {
                let token = self.auth("token").ok_or_else(|| self.missing("token"))?;
                let token = Token::parse(token.trim().as_bytes()).ok_or_else(|| {
                    CredentialsError::BadToken {
                        origin: self.origin.to_string(),
                    }
                })?;
                Ok(AuthMethod::Token {
                    token,
                    project: self.project(),
                })
            }
            other => Err(CredentialsError::UnsupportedAuthType {
                origin: self.origin.to_string(),
                auth_type: other.to_string(),
            }),
        }
    }

    /// Whether TLS verification is turned off (`verify: false`, `insecure: true`).
    fn insecure(&self) -> bool {
        let is = |key: &str, value: &str| {
            self.other(key)
                .is_some_and(|v| v.eq_ignore_ascii_case(value) || v == "1" && value == "true")
        };
        is("verify", "false") || is("insecure", "true")
    }
}

fn build(
    settings: Settings,
    origin: String,
    skip_tls_verify: bool,
) -> Result<Credentials, CredentialsError> {
    let read = Reader {
        settings: &settings,
        origin: &origin,
    };
    if read.insecure() && !skip_tls_verify {
        return Err(CredentialsError::Insecure { origin });
    }
    let url = read
        .auth("auth_url")
        .ok_or_else(|| read.missing("auth_url"))?;
    let auth_url = normalize_auth_url(&url).ok_or_else(|| CredentialsError::BadAuthUrl {
        origin: origin.clone(),
        url,
    })?;
    let method = read.method()?;
    Ok(Credentials {
        auth_url,
        method,
        interface: read
            .other("interface")
            .map(|i| i.trim_end_matches("URL").to_ascii_lowercase())
            .unwrap_or_else(|| DEFAULT_INTERFACE.to_string()),
        cacert: read.other("cacert").map(PathBuf::from),
        skip_tls_verify,
        origin,
    })
}

/// `http(s)://host[:port][/path]` with `/v3` at the end; `None` if it is not such a URL.
pub(super) fn normalize_auth_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let uri = url.parse::<http::Uri>().ok()?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return None;
    }
    let root = url
        .strip_suffix("/v3")
        .or_else(|| url.strip_suffix("/v2.0"));
    Some(format!("{}/v3", root.unwrap_or(url)))
}
