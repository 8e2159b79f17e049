//! Checks shared by the fuzz targets, written apart from the crate's own code so that they can
//! catch it out (the crate's version is `http::port_is_valid`).

/// A port written in the URL is one the client will use: `http::Uri` accepts any text after the
/// colon (`:99999`, `:9292*`) and then reports no port, so the connection would silently go to
/// the scheme's default port instead. An empty port (`host:`) means the default anyway.
pub fn port_is_kept(uri: &http::Uri) -> bool {
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let after_host = match host_port.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .map(|(_, after)| after)
            .unwrap_or_default(),
        None => host_port,
    };
    match after_host.split_once(':') {
        None => true,
        Some((_, port)) => port.is_empty() || uri.port_u16().is_some(),
    }
}
