//! AWS Signature Version 4, header form, as S3 checks it.
//!
//! Written out here rather than pulled from an SDK because the sidecar needs only the header
//! signature of a handful of S3 calls; the known-answer tests in `tests.rs` pin it to AWS's
//! published examples. The same code verifies signatures in the simulated S3, so a signing bug
//! that the vectors miss still fails there only if it is asymmetric: the vectors are the judge.
//!
//! Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html> and
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name in the `Authorization` header and the string to sign.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// `x-amz-content-sha256` for a body that is not hashed into the signature (the pipeline has
/// already hashed every byte with MD5 and the image's `os_hash_algo`).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// SHA-256 of the empty string, the payload hash of bodiless requests.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What is signed: the request as it goes on the wire.
#[derive(Debug, Clone)]
pub struct Canonical<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The path exactly as sent (already percent-encoded, see [`encode_path`]).
    pub path: &'a str,
    /// Decoded query parameters (a valueless one such as `uploads` has an empty value).
    pub query: &'a [(String, String)],
    /// The headers to sign, any case; `host` and `x-amz-date` must be among them.
    pub headers: &'a [(&'a str, &'a str)],
    /// The `x-amz-content-sha256` value: hex SHA-256 of the body or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// Where and when a signature is valid: `date/region/service/aws4_request`.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// `YYYYMMDDTHHMMSSZ`, the request's `x-amz-date`.
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl Scope<'_> {
    fn date(&self) -> &str {
        self.amz_date.get(..8).unwrap_or(self.amz_date)
    }

    /// `20130524/us-east-1/s3/aws4_request`.
    pub fn credential_scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date(),
            self.region,
            self.service
        )
    }
}

/// A computed signature and the header that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Lower-case hex HMAC.
    pub signature: String,
    /// `host;x-amz-content-sha256;x-amz-date`.
    pub signed_headers: String,
    /// The whole `Authorization` header value.
    pub authorization: String,
}

/// Signs `request` with `access_key`/`secret_key` in `scope`.
pub fn sign(
    request: &Canonical<'_>,
    scope: &Scope<'_>,
    access_key: &str,
    secret_key: &str,
) -> Signature {
    let (canonical, signed_headers) = canonical_request(request);
    let to_sign = string_to_sign(scope, &canonical);
    let key = signing_key(secret_key, scope);
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={access_key}/{}, SignedHeaders={signed_headers}, Signature={signature}",
        scope.credential_scope()
    );
    Signature {
        signature,
        signed_headers,
        authorization,
    }
}

/// The canonical request and its signed-headers list.
pub fn canonical_request(request: &Canonical<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), collapse_spaces(v)))
        .collect();
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical_headers = String::new();
    for (k, v) in &headers {
        canonical_headers.push_str(k);
        canonical_headers.push(':');
        canonical_headers.push_str(v);
        canonical_headers.push('\n');
    }
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        path,
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        request.payload_hash
    );
    (canonical, signed_headers)
}

/// `AWS4-HMAC-SHA256\n{date}\n{scope}\n{hex sha256(canonical)}`.
pub fn string_to_sign(scope: &Scope<'_>, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        scope.amz_date,
        scope.credential_scope(),
        hex(&Sha256::digest(canonical.as_bytes()))
    )
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret_key: &str, scope: &Scope<'_>) -> [u8; 32] {
    let k_date = hmac(
        format!("AWS4{secret_key}").as_bytes(),
        scope.date().as_bytes(),
    );
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Query parameters sorted by encoded name then value, each part encoded, joined with `&`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (encode(k, true), encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The query string to send for `query` (the canonical form is also a valid wire form).
pub fn query_string(query: &[(String, String)]) -> String {
    canonical_query(query)
}

/// Percent-encodes an object path: every byte but unreserved ones and `/` (S3 does not
/// normalize paths, so the path is signed exactly as sent).
pub fn encode_path(path: &str) -> String {
    encode(path, false)
}

/// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters kept, everything else
/// `%XX` in upper case; `/` kept unless `slash` is set.
pub fn encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if keep || (b == b'/' && !slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a literal plus, as S3 does in query strings it signs).
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex_pair) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a raw query string into decoded pairs.
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Trims a header value and collapses inner runs of spaces, as the canonical form requires.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Constant-time comparison of two signatures (the simulated S3 compares what clients send).
pub fn same_signature(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The current time as `x-amz-date` wants it: `YYYYMMDDTHHMMSSZ` (UTC).
pub fn amz_date_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
