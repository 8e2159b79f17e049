use super::*;

#[test]
fn defaults_without_file() {
    let config = Config::from_ini("", &Overrides::default()).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.bind.to_string(), defaults::BIND);
    assert_eq!(config.glance_url, defaults::GLANCE_URL);
    assert_eq!(config.auth_url, defaults::AUTH_URL);
}

#[test]
fn file_values_and_flag_overrides() {
    let text = "\
# comment
[DEFAULT]
bind = 0.0.0.0:9494
glance_url = http://10.0.0.5:9292/   ; the upstream Glance
max_concurrent_imports = 3
chunk_size = 65536
[glance_download_properties]
extra_properties_prefixes = [hw_, \"os_\"]
";
    let flags = Overrides {
        glance_url: Some("http://127.0.0.1:9999".into()),
        ..Overrides::default()
    };
    let config = Config::from_ini(text, &flags).unwrap();
    assert_eq!(config.bind.to_string(), "0.0.0.0:9494");
    assert_eq!(config.glance_url, "http://127.0.0.1:9999");
    assert_eq!(config.max_concurrent_imports, 3);
    assert_eq!(config.chunk_size, 65536);
    assert_eq!(config.extra_properties, vec!["hw_", "os_"]);
}

#[test]
fn errors_name_the_key() {
    let cases = [
        ("max_concurrent_imports = 0", "max_concurrent_imports"),
        ("bind = nowhere", "bind"),
        ("glance_url = ftp://x", "glance_url"),
        ("glance_url = http://10.0.0.5:92920", "glance_url"),
        ("auth_url = http://[::1]:FAULT/v3", "auth_url"),
        ("glance_url = http://10[a,b:c]", "glance_url"),
        ("store_sink = tape", "store_sink"),
        ("frobnicate = 1", "frobnicate"),
        ("[DEFAULT\nbind = 1", "line 1"),
    ];
    for (text, needle) in cases {
        let error = Config::from_ini(text, &Overrides::default()).unwrap_err();
        assert!(error.to_string().contains(needle), "{text}: {error}");
    }
}

#[test]
fn bad_flag_is_refused() {
    let flags = Overrides {
        bind: Some("127.0.0.1".into()),
        ..Overrides::default()
    };
    let error = Config::from_ini("", &flags).unwrap_err();
    assert!(error.to_string().starts_with("bind:"), "{error}");
}

#[test]
fn list_values() {
    assert_eq!(ini::list("a, b,,c"), vec!["a", "b", "c"]);
    assert_eq!(ini::list("['trait:', 'hw_']"), vec!["trait:", "hw_"]);
    assert!(ini::list("[]").is_empty());
}

#[test]
fn tls_and_journal_options() {
    let text = "ca_file = /etc/ssl/ca.pem\ntls_cert_file = /c.pem\ntls_key_file = /k.pem\ntask_journal =\n";
    let config = Config::from_ini(text, &Overrides::default()).unwrap();
    assert_eq!(
        config.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ssl/ca.pem"))
    );
    assert!(config.tls.is_some());
    assert!(
        config.task_journal.is_none(),
        "an empty value disables the journal"
    );
    let error = Config::from_ini("tls_cert_file = /c.pem\n", &Overrides::default()).unwrap_err();
    assert!(error.to_string().contains("tls_key_file"), "{error}");
    let flags = Overrides {
        auth_url: Some("https://keystone.example/v3/".into()),
        ..Overrides::default()
    };
    assert_eq!(
        Config::from_ini("", &flags).unwrap().auth_url,
        "https://keystone.example/v3"
    );
}

#[test]
fn service_credentials_must_be_complete() {
    let text = "[service_credentials]\nusername = gds\npassword = pw\nproject_name = service\n";
    let creds = Config::from_ini(text, &Overrides::default())
        .unwrap()
        .service_credentials
        .unwrap();
    assert_eq!(
        creds,
        crate::keystone::ServiceCredentials::password("gds", "pw", "service", "Default", "Default")
    );
    assert!(
        !format!("{creds:?}").contains("pw"),
        "Debug must not show the password"
    );
    let error = Config::from_ini(
        "[service_credentials]\nusername = gds\n",
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("service_credentials"), "{error}");
}

#[test]
fn compact_transfer_is_on_by_default_and_a_boolean() {
    let config = Config::from_ini("", &Overrides::default()).unwrap();
    assert!(config.compact_transfer);
    for (value, on) in [
        ("false", false),
        ("No", false),
        ("0", false),
        ("off", false),
        ("TRUE", true),
        ("yes", true),
    ] {
        let text = format!("[DEFAULT]\ncompact_transfer = {value}\n");
        let config = Config::from_ini(&text, &Overrides::default()).unwrap();
        assert_eq!(config.compact_transfer, on, "{value}");
    }
    let error = Config::from_ini("compact_transfer = maybe\n", &Overrides::default()).unwrap_err();
    assert!(error.to_string().contains("compact_transfer"), "{error}");
}

#[test]
fn service_credentials_take_an_application_credential_and_name_what_is_missing() {
    use crate::keystone::{AppCredential, AuthMethod, Domain, Named};
    let load = |text: &str| Config::from_ini(text, &Overrides::default());
    let by_id = load(
        "[service_credentials]\nauth_type = v3applicationcredential\n\
         application_credential_id = ac-1\napplication_credential_secret = s3cr3t-ac\n",
    )
    .unwrap()
    .service_credentials
    .unwrap();
    let AuthMethod::ApplicationCredential { credential, secret } = &by_id.method else {
        panic!("{by_id:?}");
    };
    assert_eq!(credential, &AppCredential::Id("ac-1".into()));
    assert_eq!(secret.expose(), "s3cr3t-ac");
    assert!(!format!("{by_id:?}").contains("s3cr3t-ac"), "{by_id:?}");

    let by_name = load(
        "[service_credentials]\nauth_type = v3applicationcredential\n\
         application_credential_name = gds\nusername = svc\nuser_domain_id = d1\n\
         application_credential_secret = s3cr3t-ac\n",
    )
    .unwrap()
    .service_credentials
    .unwrap();
    let AuthMethod::ApplicationCredential { credential, .. } = &by_name.method else {
        panic!("{by_name:?}");
    };
    assert_eq!(
        credential,
        &AppCredential::Name {
            name: "gds".into(),
            user: Named::Name {
                name: "svc".into(),
                domain: Domain::Id("d1".into())
            }
        }
    );

    // What is missing is named; the secret given is never quoted; a bare token is refused.
    for (text, key) in [
        (
            "auth_type = v3applicationcredential\napplication_credential_id = ac-1\n",
            "application_credential_secret",
        ),
        (
            "auth_type = v3applicationcredential\napplication_credential_secret = s3cr3t-ac\n",
            "application_credential_name",
        ),
        (
            "auth_type = v3applicationcredential\napplication_credential_name = gds\n\
             application_credential_secret = s3cr3t-ac\n",
            "username",
        ),
        ("username = gds\nproject_name = p\n", "password"),
        ("password = s3cr3t-ac\nproject_name = p\n", "username"),
    ] {
        let error = load(&format!("[service_credentials]\n{text}")).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert_eq!(
            error.to_string(),
            format!("[service_credentials] {key} is missing")
        );
        assert!(!shown.contains("s3cr3t-ac"), "{shown}");
    }
    let error = load("[service_credentials]\nauth_type = token\n").unwrap_err();
    assert!(error.to_string().contains("bare token"), "{error}");
}

#[test]
fn buffer_chunks_of_earlier_files_is_read_as_bytes_unless_buffer_bytes_is_set() {
    let parse = |text: &str| Config::from_ini(text, &Overrides::default());
    // Frames of chunk_size, whichever line comes first.
    let config = parse("[DEFAULT]\nbuffer_chunks = 8\nchunk_size = 65536\n").unwrap();
    assert_eq!(config.buffer_bytes, 8 * 65536);
    // Within buffer_bytes' own range.
    let config = parse("[DEFAULT]\nbuffer_chunks = 1\nchunk_size = 4096\n").unwrap();
    assert_eq!(config.buffer_bytes, 64 << 10);
    let config = parse("[DEFAULT]\nbuffer_chunks = 1024\nchunk_size = 67108864\n").unwrap();
    assert_eq!(config.buffer_bytes, 1 << 30);
    // buffer_bytes wins wherever it stands.
    let config = parse("[DEFAULT]\nbuffer_bytes = 2097152\nbuffer_chunks = 8\n").unwrap();
    assert_eq!(config.buffer_bytes, 2 << 20);
    // Its old range still applies.
    let error = parse("[DEFAULT]\nbuffer_chunks = 0\n").unwrap_err();
    assert!(error.to_string().contains("buffer_chunks"), "{error}");
}
