//! `[s3]`: the bucket of an S3-backed Glance, read and checked at start-up. Every refusal names
//! the key; the secret key's value is never echoed.

use super::{defaults, http_url, invalid, ConfigError};
use crate::s3::{S3Config, MIN_PART_SIZE};

/// The largest `part_size` accepted: an upload holds two parts in memory.
pub(super) const MAX_PART_SIZE: u64 = 1 << 30;

/// `[s3]` as read, before it is known to be complete.
#[derive(Default)]
pub(super) struct S3Parts {
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    access_key: Option<String>,
    secret_key: Option<String>,
    part_size: Option<u64>,
    location_host: Option<String>,
}

impl S3Parts {
    pub(super) fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "endpoint" => self.endpoint = Some(endpoint(value)?),
            "region" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid("[s3] region", value, "expected a region name"));
                }
                self.region = Some(value.to_string());
            }
            "bucket" => {
                if !valid_bucket(value) {
                    return Err(invalid(
                        "[s3] bucket",
                        value,
                        "expected 3 to 63 lower-case letters, digits, '.' or '-'",
                    ));
                }
                self.bucket = Some(value.to_string());
            }
            "access_key" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid(
                        "[s3] access_key",
                        "",
                        "expected printable ASCII without spaces",
                    ));
                }
                self.access_key = Some(value.to_string());
            }
            "secret_key" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid(
                        "[s3] secret_key",
                        "<redacted>",
                        "expected printable ASCII without spaces",
                    ));
                }
                self.secret_key = Some(value.to_string());
            }
            "part_size" => self.part_size = Some(part_size(value)?),
            "location_host" => self.location_host = Some(location_host(value)?),
            _ => {
                return Err(ConfigError::UnknownKey {
                    section: "s3".into(),
                    key: key.to_string(),
                })
            }
        }
        Ok(())
    }

    /// The section, or `None` when it is absent; every required key named when one is missing.
    pub(super) fn finish(self) -> Result<Option<S3Config>, ConfigError> {
        let any = self.endpoint.is_some()
            || self.region.is_some()
            || self.bucket.is_some()
            || self.access_key.is_some()
            || self.secret_key.is_some()
            || self.part_size.is_some()
            || self.location_host.is_some();
        if !any {
            return Ok(None);
        }
        let missing = |key: &'static str| invalid(key, "", "required in [s3]");
        Ok(Some(S3Config {
            endpoint: self.endpoint.ok_or_else(|| missing("[s3] endpoint"))?,
            region: self
                .region
                .unwrap_or_else(|| defaults::S3_REGION.to_string()),
            bucket: self.bucket.ok_or_else(|| missing("[s3] bucket"))?,
            access_key: self.access_key.ok_or_else(|| missing("[s3] access_key"))?,
            secret_key: self.secret_key.ok_or_else(|| missing("[s3] secret_key"))?,
            part_size: self.part_size.unwrap_or(defaults::S3_PART_SIZE),
            location_host: self.location_host,
        }))
    }
}

/// S3's bucket naming rules (the subset that matters for path-style requests).
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// `endpoint`: an http(s) URL without a path (requests are path-style).
fn endpoint(value: &str) -> Result<String, ConfigError> {
    let url = http_url("[s3] endpoint", value)?;
    let path = url.split_once("://").map_or("", |(_, r)| r);
    if path.contains('/') {
        return Err(invalid(
            "[s3] endpoint",
            value,
            "expected http(s)://host[:port] without a path (requests are path-style)",
        ));
    }
    Ok(url)
}

/// `part_size`: bytes, from S3's minimum part to [`MAX_PART_SIZE`].
fn part_size(value: &str) -> Result<u64, ConfigError> {
    let n: u64 = value
        .parse()
        .map_err(|_| invalid("[s3] part_size", value, "expected a whole number"))?;
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&n) {
        return Err(invalid(
            "[s3] part_size",
            value,
            format!("must be from {MIN_PART_SIZE} (S3's minimum) to {MAX_PART_SIZE}"),
        ));
    }
    Ok(n)
}

/// `location_host`: `host[:port]`, as Glance's `s3_store_host` without its scheme.
fn location_host(value: &str) -> Result<String, ConfigError> {
    let ok = !value.is_empty()
        && !value.contains("://")
        && !value.contains('/')
        && format!("http://{value}").parse::<http::Uri>().is_ok();
    if !ok {
        return Err(invalid(
            "[s3] location_host",
            value,
            "expected host[:port], as Glance's s3_store_host without its scheme",
        ));
    }
    Ok(value.to_string())
}
