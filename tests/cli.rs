//! The binary as an operator meets it: help lists the contract flags, bad configuration is
//! refused with exit status 64 before any port is bound, naming the key.

use std::net::TcpListener;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_glance-download-sidecar"))
}

#[test]
fn serve_help_lists_the_flags() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--config", "--bind", "--glance-url", "--auth-url"] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

/// A port that is free now, and a bad option next to it: the port must stay unbound.
fn refused(args: &[&str], needle: &str) {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let bind = format!("127.0.0.1:{port}");
    let mut command = bin();
    command.args(["serve", "--bind", &bind]).args(args);
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(
        TcpListener::bind(&bind).is_ok(),
        "port {port} was bound by a refused config"
    );
}

#[test]
fn bad_flags_and_config_are_refused_before_binding() {
    refused(&["--glance-url", "ftp://glance"], "glance_url");
    refused(&["--auth-url", "not a url"], "auth_url");
    let dir = std::env::temp_dir().join(format!("gds-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.conf");
    std::fs::write(&file, "[DEFAULT]\nbuffer_chunks = 0\n").unwrap();
    refused(&["--config", file.to_str().unwrap()], "buffer_chunks");
    std::fs::write(&file, "[DEFAULT]\nno_such_option = 1\n").unwrap();
    refused(&["--config", file.to_str().unwrap()], "no_such_option");
    refused(
        &["--config", dir.join("missing.conf").to_str().unwrap()],
        "missing.conf",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_bind_flag_names_the_key() {
    let out = bin()
        .args(["serve", "--bind", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bind"));
}

#[test]
fn the_shipped_example_config_is_accepted() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/sidecar.conf"))
            .unwrap();
    let config =
        glance_download_sidecar::config::Config::from_ini(&text, &Default::default()).unwrap();
    assert_eq!(
        config,
        glance_download_sidecar::config::Config::default(),
        "the example shows the defaults"
    );
}

#[test]
fn version_is_printed() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn shell_completions_cover_the_subcommands() {
    let out = bin().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "demo", "sync", "--glance-url"] {
        assert!(script.contains(word), "{word} missing");
    }
}
