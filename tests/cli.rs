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
    std::fs::write(&file, "[DEFAULT]\nbuffer_bytes = 0\n").unwrap();
    refused(&["--config", file.to_str().unwrap()], "buffer_bytes");
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

/// `man-pages` writes the roff pages the Debian package ships: the top page and one per subcommand,
/// the serve page naming its flags; a directory that does not exist is an error, not a panic.
#[test]
fn man_pages_cover_the_subcommands() {
    let dir = std::env::temp_dir().join(format!("gds-cli-man-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = bin().arg("man-pages").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "glance-download-sidecar.1",
        "glance-download-sidecar-serve.1",
        "glance-download-sidecar-sync.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains("\n.TH "), "{page} is not roff");
    }
    let serve = std::fs::read_to_string(dir.join("glance-download-sidecar-serve.1")).unwrap();
    for flag in ["config", "bind", "glance\\-url", "auth\\-url"] {
        assert!(serve.contains(flag), "{flag} missing from the serve page");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let out = bin()
        .args(["man-pages", "/nonexistent/gds-man"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(74));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gds-man"));
}

/// `wan-link` carries bytes both ways to the service behind it (here a one-shot echo server),
/// prints where it listens, and ends on SIGTERM.
#[test]
fn wan_link_carries_bytes_through_the_emulated_link() {
    use std::io::{BufRead, BufReader, Read, Write};
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = echo.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = echo.accept().unwrap();
        let mut buf = vec![0u8; 100_000];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(&buf).unwrap();
    });
    let mut child = bin()
        .args(["wan-link", "--rtt-ms", "20", "--window", "64KiB"])
        .args(["--upstream", &upstream.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .strip_prefix("wan-link: ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"));
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let sent: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    conn.write_all(&sent).unwrap();
    let mut back = vec![0u8; sent.len()];
    conn.read_exact(&mut back).unwrap();
    assert!(back == sent, "the link changed the bytes");
    server.join().unwrap();
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// `sync`, `tasks` and `bench` (real-cloud mode) without usable credentials: exit 64, the
/// missing key named, no secret printed (the process environment is replaced entirely).
#[test]
fn tools_without_usable_credentials_exit_64_naming_the_key() {
    let home = std::env::temp_dir().join(format!("gds-cli-creds-{}", std::process::id()));
    let commands: [&[&str]; 3] = [
        &["sync", "--from", "R1", "--to", "R2"],
        &[
            "tasks",
            "--region",
            "R1",
            "11111111-2222-3333-4444-555555555555",
        ],
        &[
            "bench",
            "--from",
            "R1",
            "--to",
            "R2",
            "--target-glance-url",
            "http://127.0.0.1:9",
        ],
    ];
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("OS_AUTH_TYPE", "v3applicationcredential"),
                ("OS_APPLICATION_CREDENTIAL_ID", "ac-1"),
            ],
            "application_credential_secret is missing",
        ),
        (&[("OS_AUTH_TYPE", "token")], "token is missing"),
        (
            &[("OS_USERNAME", "u"), ("OS_PASSWORD", "pa55-s3cret")],
            "project_name is missing",
        ),
        (
            &[
                ("OS_APPLICATION_CREDENTIAL_ID", "ac-1"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "ac-s3cret"),
                ("OS_INSECURE", "true"),
            ],
            "cacert",
        ),
    ];
    for args in commands {
        for (vars, needle) in cases {
            let out = bin()
                .args(args)
                .env_clear()
                .env("HOME", &home)
                .env("OS_AUTH_URL", "http://127.0.0.1:9/v3")
                .envs(vars.iter().copied())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{args:?} {vars:?}: {err}");
            assert!(err.contains(needle), "{args:?} {vars:?}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}

/// `--insecure-skip-tls-verify` accepts a cloud that turns TLS verification off, and says so.
#[test]
fn skipping_tls_verification_takes_the_flag_that_says_it() {
    for args in [
        &["sync", "--from", "R1", "--to", "R2"][..],
        &[
            "tasks",
            "--region",
            "R1",
            "11111111-2222-3333-4444-555555555555",
        ][..],
    ] {
        let out = bin()
            .args(args)
            .arg("--insecure-skip-tls-verify")
            .env_clear()
            .env("OS_AUTH_URL", "https://127.0.0.1:9/v3")
            .env("OS_TOKEN", "gAAAAAB-token")
            .env("OS_PROJECT_NAME", "p")
            .env("OS_INSECURE", "true")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Past the credentials (Keystone on port 9 cannot be reached): exit 1, not 64.
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("TLS certificates are not verified"), "{err}");
        assert!(!err.contains("gAAAAAB-token"), "{err}");
    }
}

/// A reader that stops early (`completions bash | head`, `tasks … | head`) ends the output
/// quietly: no panic, success.
#[test]
fn output_into_a_closed_pipe_is_not_a_panic() {
    let mut child = bin()
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes before anything is written: every write fails with EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
