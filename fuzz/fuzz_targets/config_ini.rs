//! The configuration file (`--config`, oslo.config-style INI) and the typed configuration made
//! from it.
#![no_main]

mod oracle;

use glance_download_sidecar::api::upstream_uri;
use glance_download_sidecar::config::{ini, Config, Overrides};
use libfuzzer_sys::fuzz_target;
use oracle::port_is_kept;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entries) = ini::parse(text) {
        for entry in &entries {
            assert!(!entry.key.is_empty() && !entry.section.is_empty());
            let _ = ini::list(&entry.value);
        }
    }
    let Ok(config) = Config::from_ini(text, &Overrides::default()) else {
        return;
    };
    assert!((1..=1024).contains(&config.max_concurrent_imports));
    assert!((4096..=64 * 1024 * 1024).contains(&config.chunk_size));
    assert!((64 << 10..=1 << 30).contains(&config.buffer_bytes));
    for timeout in [
        config.connect_timeout,
        config.request_timeout,
        config.read_timeout,
    ] {
        assert!((1..=3600).contains(&timeout.as_secs()));
    }
    // Both URLs are used as prefixes of request URIs: an accepted URL must build valid ones.
    let path: http::Uri = "/v2/images?limit=1".parse().unwrap();
    for url in [&config.glance_url, &config.auth_url] {
        assert!(!url.ends_with('/'), "{url:?}");
        let uri = upstream_uri(url, &path).unwrap_or_else(|_| panic!("{url:?} + /v2/images"));
        assert!(
            matches!(uri.scheme_str(), Some("http" | "https")),
            "{url:?}"
        );
        assert!(uri.authority().is_some(), "{url:?}");
        assert!(port_is_kept(&uri), "{url:?}: the port is dropped");
    }
});
