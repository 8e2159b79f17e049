//! Unit tests of `sync`'s pure parts: credentials, options, filters, comparison and reporting.
//! The end-to-end behaviour is in `tests/sync.rs`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::credentials::normalize_auth_url;
use super::*;
use crate::glance::Image;
use crate::hash::HashAlgo;
use crate::pipeline::Expected;
use crate::verify::check_stored;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "gds-sync-unit-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env_in(dir: &Path, vars: &[(&str, &str)]) -> Environment {
    let mut env = Environment::from_vars(vars.iter().map(|(k, v)| (*k, *v)));
    env.vars
        .insert("HOME".into(), dir.join("home").display().to_string());
    env.cwd = Some(dir.join("cwd"));
    env.system_dir = Some(dir.join("etc"));
    env
}

const CLOUDS: &str = "
clouds:
  prod:
    auth:
      auth_url: https://keystone.example.com:5000
      username: alice
      project_name: images
      user_domain_name: Users
      project_domain_id: abc123
    region_name: R1
    interface: internal
    cacert: /etc/ssl/private-ca.pem
  other:
    auth:
      auth_url: https://other.example.com/identity/v3/
      user_id: 12345
      password: from-clouds-yaml
      project_id: p-1
";

// === credentials ===

/// The user, password and project of password credentials.
fn password_parts(creds: &Credentials) -> (Named, String, Named) {
    match &creds.method {
        AuthMethod::Password {
            user,
            password,
            project,
        } => (user.clone(), password.expose().to_string(), project.clone()),
        other => panic!("not a password login: {other:?}"),
    }
}

fn user(creds: &Credentials) -> Named {
    password_parts(creds).0
}

fn password(creds: &Credentials) -> String {
    password_parts(creds).1
}

fn project(creds: &Credentials) -> Named {
    password_parts(creds).2
}

#[test]
fn os_variables_make_credentials() {
    let env = Environment::from_vars([
        ("OS_AUTH_URL", "http://127.0.0.1:5000/v3/"),
        ("OS_USERNAME", "bob"),
        ("OS_PASSWORD", "s3cret"),
        ("OS_PROJECT_NAME", "demo"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
    ]);
    let creds = Credentials::load(None, &env).unwrap();
    assert_eq!(creds.auth_url, "http://127.0.0.1:5000/v3");
    assert_eq!(
        user(&creds),
        Named::Name {
            name: "bob".into(),
            domain: Domain::Name("Default".into())
        }
    );
    assert_eq!(password(&creds), "s3cret");
    assert_eq!(
        project(&creds),
        Named::Name {
            name: "demo".into(),
            domain: Domain::Name("Default".into())
        }
    );
    assert_eq!(creds.interface, "public");
    assert!(!format!("{creds:?}").contains("s3cret"));
}

#[test]
fn missing_pieces_are_named() {
    let env = Environment::from_vars([("OS_AUTH_URL", "http://k:5000"), ("OS_USERNAME", "bob")]);
    let error = Credentials::load(None, &env).unwrap_err();
    assert!(matches!(
        error,
        CredentialsError::Missing {
            key: "password",
            ..
        }
    ));
    assert!(error.to_string().contains("OS_* variables"));
    assert_eq!(
        Credentials::load(None, &Environment::default()).unwrap_err(),
        CredentialsError::Nothing
    );
    let env = Environment::from_vars([
        ("OS_AUTH_URL", "ftp://k"),
        ("OS_USERNAME", "bob"),
        ("OS_PASSWORD", "x"),
        ("OS_PROJECT_NAME", "p"),
    ]);
    assert!(matches!(
        Credentials::load(None, &env),
        Err(CredentialsError::BadAuthUrl { .. })
    ));
}

#[test]
fn clouds_yaml_is_found_in_order_and_env_fills_gaps_only() {
    let dir = TempDir::new("order");
    // The user's file wins over the system one; ./clouds.yaml would win over both.
    dir.write(
        "etc/clouds.yaml",
        "clouds: {prod: {auth: {auth_url: http://wrong}}}",
    );
    dir.write("home/.config/openstack/clouds.yaml", CLOUDS);
    let env = env_in(
        &dir.0,
        &[
            ("OS_CLOUD", "prod"),
            ("OS_PASSWORD", "from-env"),
            ("OS_USERNAME", "not-used"),
        ],
    );
    let creds = Credentials::load(None, &env).unwrap();
    assert_eq!(creds.auth_url, "https://keystone.example.com:5000/v3");
    assert_eq!(
        user(&creds),
        Named::Name {
            name: "alice".into(),
            domain: Domain::Name("Users".into())
        }
    );
    assert_eq!(
        password(&creds),
        "from-env",
        "a gap filled from OS_PASSWORD"
    );
    assert_eq!(
        project(&creds),
        Named::Name {
            name: "images".into(),
            domain: Domain::Id("abc123".into())
        }
    );
    assert_eq!(creds.interface, "internal");
    assert_eq!(creds.cacert, Some(PathBuf::from("/etc/ssl/private-ca.pem")));
    assert!(creds.origin.contains("cloud prod in"), "{}", creds.origin);

    dir.write("cwd/clouds.yaml", CLOUDS.replace("alice", "carol").as_str());
    let creds = Credentials::load(Some("prod"), &env).unwrap();
    assert!(matches!(user(&creds), Named::Name { ref name, .. } if name == "carol"));

    let explicit = dir.write("elsewhere.yaml", CLOUDS.replace("alice", "dave").as_str());
    let mut env = env;
    env.vars.insert(
        "OS_CLIENT_CONFIG_FILE".into(),
        explicit.display().to_string(),
    );
    let creds = Credentials::load(Some("prod"), &env).unwrap();
    assert!(matches!(user(&creds), Named::Name { ref name, .. } if name == "dave"));
}

#[test]
fn secure_yaml_supplies_the_password_and_ids_are_kept() {
    let dir = TempDir::new("secure");
    dir.write("cwd/clouds.yaml", CLOUDS);
    dir.write(
        "cwd/secure.yaml",
        "clouds:\n  prod:\n    auth:\n      password: from-secure\n",
    );
    let env = env_in(&dir.0, &[("OS_PASSWORD", "from-env")]);
    let creds = Credentials::load(Some("prod"), &env).unwrap();
    assert_eq!(password(&creds), "from-secure", "files before variables");

    let creds = Credentials::load(Some("other"), &env).unwrap();
    assert_eq!(creds.auth_url, "https://other.example.com/identity/v3");
    assert_eq!(
        user(&creds),
        Named::Id("12345".into()),
        "YAML numbers are text"
    );
    assert_eq!(project(&creds), Named::Id("p-1".into()));
    assert_eq!(password(&creds), "from-clouds-yaml");
}

#[test]
fn clouds_yaml_errors_are_specific() {
    let dir = TempDir::new("errors");
    let env = env_in(&dir.0, &[]);
    assert!(matches!(
        Credentials::load(Some("prod"), &env),
        Err(CredentialsError::NoCloudsFile { .. })
    ));
    dir.write("cwd/clouds.yaml", CLOUDS);
    assert!(matches!(
        Credentials::load(Some("nope"), &env),
        Err(CredentialsError::UnknownCloud { .. })
    ));
    dir.write(
        "cwd/clouds.yaml",
        "clouds:\n  x:\n    auth_type: v3oidcpassword\n    auth: {auth_url: http://k}\n",
    );
    assert!(matches!(
        Credentials::load(Some("x"), &env),
        Err(CredentialsError::UnsupportedAuthType { .. })
    ));
    dir.write(
        "cwd/clouds.yaml",
        "clouds:\n  x:\n    verify: false\n    auth: {auth_url: http://k}\n",
    );
    assert!(matches!(
        Credentials::load(Some("x"), &env),
        Err(CredentialsError::Insecure { .. })
    ));
    dir.write(
        "cwd/clouds.yaml",
        "clouds:\n  x:\n    auth:\n      password: [hunter2\n",
    );
    let error = Credentials::load(Some("x"), &env).unwrap_err();
    assert!(matches!(error, CredentialsError::BadYaml { .. }), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn auth_urls_end_in_v3() {
    for (given, want) in [
        ("http://k:5000", "http://k:5000/v3"),
        ("http://k:5000/", "http://k:5000/v3"),
        ("http://k:5000/v3/", "http://k:5000/v3"),
        ("https://k/identity", "https://k/identity/v3"),
        ("http://k:5000/v2.0", "http://k:5000/v3"),
    ] {
        assert_eq!(normalize_auth_url(given).as_deref(), Some(want), "{given}");
    }
    assert_eq!(normalize_auth_url("keystone:5000"), None);
    assert_eq!(normalize_auth_url("file:///etc/passwd"), None);
}

// === options and filters ===

const ID: &str = "c4705b36-b281-40f6-a01d-bf98883ead8e";

fn options(to: &[&str], ids: &[&str], filters: Filters) -> Result<Options, OptionsError> {
    let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    Options::new("R1", &to, &ids, filters, DEFAULT_CONCURRENCY, false)
}

#[test]
fn options_are_checked() {
    let o = options(&["R2,R3", "r2", " R4 "], &[], Filters::default()).unwrap();
    assert_eq!(o.to, ["R2", "R3", "R4"]);
    assert!(matches!(o.selection, Selection::Filters(_)));
    assert_eq!(
        options(&["R2,r1"], &[], Filters::default()).unwrap_err(),
        OptionsError::TargetIsSource("r1".into())
    );
    assert_eq!(
        options(&[","], &[], Filters::default()).unwrap_err(),
        OptionsError::NoTargets
    );
    assert_eq!(
        options(&["R2"], &["nope"], Filters::default()).unwrap_err(),
        OptionsError::BadImageId("nope".into())
    );
    let name = Filters {
        name: Some("web-*".into()),
        ..Filters::default()
    };
    assert_eq!(
        options(&["R2"], &[ID], name).unwrap_err(),
        OptionsError::IdsAndFilters
    );
    let o = options(&["R2"], &[ID, &ID.to_uppercase()], Filters::default()).unwrap();
    assert!(matches!(o.selection, Selection::Ids(ref ids) if ids.len() == 1));
    for concurrency in [0, MAX_CONCURRENCY + 1] {
        let error = Options::new(
            "R1",
            &["R2".into()],
            &[],
            Filters::default(),
            concurrency,
            false,
        )
        .unwrap_err();
        assert!(matches!(error, OptionsError::Concurrency { .. }));
    }
}

#[test]
fn filters_are_checked_and_sent_to_glance() {
    let bad = |f: Filters| f.validate().unwrap_err();
    assert!(matches!(
        bad(Filters {
            visibility: Some("secret".into()),
            ..Filters::default()
        }),
        OptionsError::BadVisibility(_)
    ));
    assert!(matches!(
        bad(Filters {
            name: Some("[oops".into()),
            ..Filters::default()
        }),
        OptionsError::BadGlob { .. }
    ));
    assert!(matches!(
        bad(Filters {
            properties: vec![("limit".into(), "1".into())],
            ..Filters::default()
        }),
        OptionsError::ReservedProperty(_)
    ));
    assert_eq!(
        parse_property("os_distro=ubuntu=22").unwrap(),
        ("os_distro".into(), "ubuntu=22".into())
    );
    assert!(parse_property("=x").is_err());
    assert!(parse_property("novalue").is_err());

    let filters = Filters {
        name: Some("web 1".into()),
        tags: vec!["gold".into(), "a&b".into()],
        visibility: Some("private".into()),
        properties: vec![("os_distro".into(), "ubuntu".into())],
    };
    assert_eq!(
        filters.query(200),
        "status=active&visibility=private&tag=gold&tag=a%26b&name=web%201&os_distro=ubuntu&limit=200"
    );
    let glob = Filters {
        name: Some("web-*".into()),
        visibility: Some("all".into()),
        ..Filters::default()
    };
    assert_eq!(
        glob.query(10),
        "status=active&limit=10",
        "globs are matched here"
    );
}

#[test]
fn filters_match_locally() {
    let image = Image(
        json!({"name": "web-1", "visibility": "shared", "tags": ["gold", "x"],
               "os_distro": "ubuntu", "min_ram": 512})
        .as_object()
        .unwrap()
        .clone(),
    );
    let check = |f: Filters| {
        let glob = f.validate().unwrap();
        f.matches(&image, glob.as_ref())
    };
    assert!(check(Filters::default()));
    assert!(check(Filters {
        name: Some("web-?".into()),
        tags: vec!["gold".into()],
        visibility: Some("shared".into()),
        properties: vec![("os_distro".into(), "ubuntu".into())],
    }));
    assert!(check(Filters {
        properties: vec![("min_ram".into(), "512".into())],
        ..Filters::default()
    }));
    assert!(!check(Filters {
        name: Some("db-*".into()),
        ..Filters::default()
    }));
    assert!(!check(Filters {
        tags: vec!["gold".into(), "silver".into()],
        ..Filters::default()
    }));
    assert!(!check(Filters {
        visibility: Some("public".into()),
        ..Filters::default()
    }));
    assert!(!check(Filters {
        properties: vec![("os_distro".into(), "debian".into())],
        ..Filters::default()
    }));
}

// === comparison and reporting ===

#[test]
fn copies_compare_by_size_and_digests() {
    let expected = Expected {
        size: 10,
        checksum: Some("ABC".into()),
        os_hash: Some((HashAlgo::Sha512, "def".into())),
    };
    // Copies found `active`, compared the way the skip check and the final check compare them.
    let image = |v: serde_json::Value| {
        let mut record = v.as_object().unwrap().clone();
        record.insert("status".into(), json!("active"));
        Image(record)
    };
    let compare = |e: &Expected, i: &Image| check_stored(e, i).map_err(|m| m.to_string());
    assert!(compare(
        &expected,
        &image(
            json!({"size": 10, "checksum": "abc", "os_hash_algo": "sha512", "os_hash_value": "DEF"})
        )
    )
    .is_ok());
    assert!(compare(
        &expected,
        &image(json!({"size": 10, "checksum": "abc", "os_hash_algo": "sha256", "os_hash_value": "x"}))
    )
    .is_ok(), "another algorithm cannot be compared, the checksum still is");
    let err = compare(&expected, &image(json!({"size": 11, "checksum": "abc"}))).unwrap_err();
    assert!(err.contains("size 11"), "{err}");
    let err = compare(&expected, &image(json!({"size": 10, "checksum": "abd"}))).unwrap_err();
    assert!(err.contains("checksum abd"), "{err}");
    let err = compare(
        &expected,
        &image(
            json!({"size": 10, "checksum": "abc", "os_hash_algo": "sha512", "os_hash_value": "x"}),
        ),
    )
    .unwrap_err();
    assert!(err.contains("sha512 x"), "{err}");
    let only_hash = Expected {
        checksum: None,
        ..expected
    };
    assert!(compare(
        &only_hash,
        &image(json!({"size": 10, "os_hash_algo": "sha256", "os_hash_value": "x"}))
    )
    .is_err());
}

#[test]
fn our_properties_share_one_prefix() {
    assert!(SOURCE_IMAGE_ID.starts_with(PROPERTY_PREFIX));
    assert!(SOURCE_REGION.starts_with(PROPERTY_PREFIX));
    assert!(!crate::metadata::is_synced(
        SOURCE_IMAGE_ID,
        &crate::config::defaults::EXTRA_PROPERTIES.map(String::from)
    ));
}

#[test]
fn units_read_well() {
    use super::report::{bytes, eta};
    assert_eq!(bytes(0), "0 B");
    assert_eq!(bytes(1023), "1023 B");
    assert_eq!(bytes(1536), "1.5 KiB");
    assert_eq!(bytes(5 << 20), "5.0 MiB");
    assert_eq!(bytes(3 << 30), "3.00 GiB");
    assert_eq!(eta(42), "42 s");
    assert_eq!(eta(185), "3 min 5 s");
    assert_eq!(eta(7800), "2 h 10 min");
}

#[test]
fn summary_counts_and_line() {
    let result = |index, action, bytes| JobResult {
        index,
        source_id: ID.into(),
        name: Some("web".into()),
        region: "R2".into(),
        target_id: None,
        action,
        method: Some(Method::Stream),
        bytes,
        seconds: 0.5,
        error: None,
    };
    let summary = Summary {
        from: "R1".into(),
        to: vec!["R2".into()],
        clouds: None,
        dry_run: false,
        results: vec![
            result(1, Action::Copied, 2048),
            result(2, Action::Skipped, 0),
            result(3, Action::Failed, 100),
        ],
        seconds: 1.25,
    };
    assert!(!summary.succeeded());
    assert_eq!(summary.bytes(), 2148);
    assert_eq!(
        summary.line(),
        "done: 1 copied, 1 skipped, 1 failed; 2.1 KiB in 1.25 s"
    );
    let doc = summary.to_json();
    assert_eq!(doc["totals"]["failed"], 1);
    assert_eq!(doc["results"][0]["method"], "stream");
    assert_eq!(doc["results"][1]["action"], "skipped");
    assert!(
        doc.get("from_cloud").is_none() && doc.get("to_cloud").is_none(),
        "{doc}"
    );
    let across = Summary {
        clouds: Some(("prod".into(), "dr".into())),
        ..summary
    };
    let doc = across.to_json();
    assert_eq!(
        (&doc["from_cloud"], &doc["to_cloud"]),
        (&json!("prod"), &json!("dr"))
    );
}

#[test]
fn failures_are_classified() {
    use crate::pipeline::{PipelineError, SourceError};
    let mismatch = Failure::Transfer(PipelineError::ChecksumMismatch {
        expected: "a".into(),
        actual: "b".into(),
    });
    assert!(mismatch.is_verification_failure());
    assert_eq!(mismatch.status(), None);
    let verify = Failure::Verify {
        target: ID.into(),
        problem: "has size 1, the source has 2".into(),
    };
    assert!(verify.is_verification_failure());
    let source = Failure::Transfer(PipelineError::Source(SourceError::Status {
        status: http::StatusCode::FORBIDDEN,
        message: "no".into(),
    }));
    assert!(!source.is_verification_failure());
    assert_eq!(source.status(), Some(http::StatusCode::FORBIDDEN));
    assert!(
        !source.is_transient(),
        "a failed transfer is not taken again"
    );
    let busy = |status| Failure::Status {
        call: "glance-download import",
        status,
        message: "The upstream service failed.".into(),
    };
    assert!(busy(http::StatusCode::BAD_GATEWAY).is_transient());
    assert!(busy(http::StatusCode::INTERNAL_SERVER_ERROR).is_transient());
    assert!(!busy(http::StatusCode::CONFLICT).is_transient());
    assert!(Failure::Timeout {
        call: "create image",
        after: std::time::Duration::from_secs(1)
    }
    .is_transient());
    assert!(!verify.is_transient() && !mismatch.is_transient());
    assert!(!Failure::ImportFailed("boom".into()).is_transient());
    let error = CopyError {
        image: ID.into(),
        region: "R2".into(),
        failure: Failure::ImportFailed("boom".into()),
    };
    assert_eq!(
        error.to_string(),
        format!("image {ID} to region R2: the glance-download import failed: boom")
    );
}

// === credentials: application credentials, tokens, TLS ===

const APP_CLOUDS: &str = "
clouds:
  by-id:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example.com
      application_credential_id: ac-42
      application_credential_secret: ac-s3cret-yaml
  by-name:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example.com
      application_credential_name: sync
      username: alice
      user_domain_name: Users
  guessed:
    auth:
      auth_url: https://keystone.example.com
      application_credential_id: ac-43
      application_credential_secret: ac-s3cret-yaml
  token:
    auth_type: token
    auth:
      auth_url: https://keystone.example.com
      token: gAAAAAB-tok3n-yaml
      project_name: images
";

#[test]
fn application_credentials_come_from_clouds_yaml_secure_yaml_and_os_variables() {
    let dir = TempDir::new("appcred");
    dir.write("cwd/clouds.yaml", APP_CLOUDS);
    dir.write(
        "cwd/secure.yaml",
        "clouds:\n  by-name:\n    auth:\n      application_credential_secret: ac-s3cret-secure\n",
    );
    let env = env_in(&dir.0, &[]);
    let app = |creds: &Credentials| match &creds.method {
        AuthMethod::ApplicationCredential { credential, secret } => {
            (credential.clone(), secret.expose().to_string())
        }
        other => panic!("{other:?}"),
    };
    let creds = Credentials::load(Some("by-id"), &env).unwrap();
    assert_eq!(
        app(&creds),
        (AppCredential::Id("ac-42".into()), "ac-s3cret-yaml".into())
    );
    assert!(!format!("{creds:?}").contains("s3cret"), "{creds:?}");
    let creds = Credentials::load(Some("by-name"), &env).unwrap();
    assert_eq!(
        app(&creds),
        (
            AppCredential::Name {
                name: "sync".into(),
                user: Named::Name {
                    name: "alice".into(),
                    domain: Domain::Name("Users".into())
                }
            },
            "ac-s3cret-secure".into()
        )
    );
    let creds = Credentials::load(Some("guessed"), &env).unwrap();
    assert_eq!(app(&creds).0, AppCredential::Id("ac-43".into()));

    let env = Environment::from_vars([
        ("OS_AUTH_URL", "http://k:5000"),
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_APPLICATION_CREDENTIAL_ID", "ac-44"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "ac-s3cret-env"),
    ]);
    let creds = Credentials::load(None, &env).unwrap();
    assert_eq!(
        app(&creds),
        (AppCredential::Id("ac-44".into()), "ac-s3cret-env".into())
    );
    assert!(!format!("{creds:?}").contains("s3cret"), "{creds:?}");
}

#[test]
fn a_token_comes_from_clouds_yaml_or_os_token() {
    let dir = TempDir::new("token");
    dir.write("cwd/clouds.yaml", APP_CLOUDS);
    let creds = Credentials::load(Some("token"), &env_in(&dir.0, &[])).unwrap();
    let AuthMethod::Token { token, project } = &creds.method else {
        panic!("{creds:?}");
    };
    assert_eq!(token.expose(), "gAAAAAB-tok3n-yaml");
    assert!(matches!(project, Some(Named::Name { name, .. }) if name == "images"));
    assert!(!format!("{creds:?}").contains("tok3n"), "{creds:?}");

    // OS_TOKEN alone selects the token method; no project leaves the scope to Keystone.
    let env = Environment::from_vars([("OS_AUTH_URL", "http://k"), ("OS_TOKEN", "gAAAAAB-env")]);
    let creds = Credentials::load(None, &env).unwrap();
    assert!(matches!(
        &creds.method,
        AuthMethod::Token { token, project: None } if token.expose() == "gAAAAAB-env"
    ));
    let env = Environment::from_vars([
        ("OS_AUTH_URL", "http://k"),
        ("OS_AUTH_TYPE", "v3token"),
        ("OS_TOKEN", "not a token"),
    ]);
    let error = Credentials::load(None, &env).unwrap_err();
    assert!(
        matches!(error, CredentialsError::BadToken { .. }),
        "{error}"
    );
    assert!(!error.to_string().contains("not a token"), "{error}");
}

#[test]
fn what_each_method_lacks_is_named_and_no_secret_is_shown() {
    for (vars, key) in [
        (
            vec![
                ("OS_AUTH_TYPE", "v3applicationcredential"),
                ("OS_APPLICATION_CREDENTIAL_ID", "ac-1"),
            ],
            "application_credential_secret",
        ),
        (
            vec![
                ("OS_AUTH_TYPE", "v3applicationcredential"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "ac-s3cret"),
            ],
            "application_credential_id",
        ),
        (
            vec![
                ("OS_APPLICATION_CREDENTIAL_NAME", "sync"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "ac-s3cret"),
            ],
            "username",
        ),
        (vec![("OS_AUTH_TYPE", "token")], "token"),
        (
            vec![("OS_USERNAME", "bob"), ("OS_PASSWORD", "ac-s3cret")],
            "project_name",
        ),
    ] {
        let mut vars = vars;
        vars.push(("OS_AUTH_URL", "http://k:5000"));
        let error = Credentials::load(None, &Environment::from_vars(vars.clone())).unwrap_err();
        assert!(
            matches!(&error, CredentialsError::Missing { key: k, .. } if *k == key),
            "{vars:?}: {error}"
        );
        assert!(error.to_string().contains(key), "{error}");
        assert!(!format!("{error} {error:?}").contains("s3cret"), "{error}");
    }
}

#[test]
fn turning_tls_verification_off_is_refused_in_every_spelling() {
    let dir = TempDir::new("insecure");
    let env = env_in(&dir.0, &[]);
    for setting in ["verify: false", "insecure: true", "verify: False"] {
        dir.write(
            "cwd/clouds.yaml",
            &format!("clouds:\n  x:\n    {setting}\n    auth: {{auth_url: http://k}}\n"),
        );
        let error = Credentials::load(Some("x"), &env).unwrap_err();
        assert!(
            matches!(error, CredentialsError::Insecure { .. }),
            "{setting}: {error}"
        );
        assert!(error.to_string().contains("cacert"), "{error}");
    }
    let env = Environment::from_vars([
        ("OS_AUTH_URL", "http://k"),
        ("OS_TOKEN", "gAAAAAB-env"),
        ("OS_INSECURE", "true"),
    ]);
    assert!(matches!(
        Credentials::load(None, &env),
        Err(CredentialsError::Insecure { .. })
    ));
    // With --insecure-skip-tls-verify the cloud's setting is accepted, and verification is off.
    dir.write(
        "cwd/clouds.yaml",
        "clouds:\n  x:\n    verify: false\n    auth: {auth_url: https://k, token: t}\n",
    );
    let mut skipping = env_in(&dir.0, &[]);
    skipping.skip_tls_verify = true;
    let creds = Credentials::load(Some("x"), &skipping).unwrap();
    assert!(creds.skip_tls_verify);
    assert!(creds.tls().is_ok());
    // verify: true and a CA bundle are fine.
    dir.write(
        "cwd/clouds.yaml",
        "clouds:\n  x:\n    verify: true\n    cacert: /ca.pem\n    auth: {auth_url: http://k, token: t}\n",
    );
    let creds = Credentials::load(Some("x"), &env_in(&dir.0, &[])).unwrap();
    assert_eq!(creds.cacert, Some(PathBuf::from("/ca.pem")));
}
