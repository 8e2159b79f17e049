//! The verification contract, written once: what a copy must equal ([`Expected::from_source`]),
//! what the pipeline measured ([`Verified`]), and whether a stored image is the source's
//! ([`check_stored`]). The import, `sync`, `bench` and `demo` all ask these same questions here.
//!
//! The order an import checks in: the source promises a size and a digest
//! ([`Expected::from_source`]); the pipeline releases the last byte only when size, MD5 and
//! `os_hash_value` match (`pipeline`); the stored image is then re-read and must be `active` with
//! the source's size and digests ([`check_stored`]).
//!
//! [`Expected::from_source`]: crate::verify::Expected::from_source
//! [`Verified`]: crate::verify::Verified
//! [`check_stored`]: crate::verify::check_stored

use crate::glance::Image;
use crate::hash::{HashAlgo, UnknownAlgo};

/// What the source says its data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    /// The source's `checksum` (MD5, hex).
    pub checksum: Option<String>,
    /// The source's `os_hash_algo` and `os_hash_value`.
    pub os_hash: Option<(HashAlgo, String)>,
}

/// What the pipeline measured; equal to [`Expected`] whenever it is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub size: u64,
    pub checksum: String,
    pub os_hash_algo: HashAlgo,
    pub os_hash_value: String,
}

/// Why a source image cannot be copied verifiably.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverifiable {
    #[error("the source image is {0}, not active")]
    NotActive(String),
    #[error("the source image has no size")]
    NoSize,
    #[error("the source image has neither checksum nor os_hash_value")]
    NoDigest,
    #[error("the source image's os_hash_algo: {0}")]
    UnsupportedAlgo(#[from] UnknownAlgo),
}

/// Why a stored image is not the source's. The text reads after "the image …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("is {0}, not active")]
    NotActive(String),
    #[error("has size {}, the source has {want}", got.map_or("none".into(), |s| s.to_string()))]
    Size { got: Option<u64>, want: u64 },
    #[error("has checksum {got}, the source has {want}")]
    Checksum { got: String, want: String },
    #[error("has {algo} {got}, the source has {want}")]
    OsHash {
        algo: HashAlgo,
        got: String,
        want: String,
    },
    #[error("cannot be compared with the source: no common digest")]
    NoCommonDigest,
}

// === impl Mismatch ===

impl Mismatch {
    /// The image field that differs (`digests` when none could be compared).
    pub fn field(&self) -> &'static str {
        match self {
            Mismatch::NotActive(_) => "status",
            Mismatch::Size { .. } => "size",
            Mismatch::Checksum { .. } => "checksum",
            Mismatch::OsHash { .. } => "os_hash_value",
            Mismatch::NoCommonDigest => "digests",
        }
    }
}

// === impl Expected ===

impl Expected {
    /// What the source image promises: it must be `active`, with a size and at least one digest
    /// (`checksum`, or `os_hash_algo` + `os_hash_value` with an algorithm this build computes).
    pub fn from_source(source: &Image) -> Result<Expected, Unverifiable> {
        let status = source.status().unwrap_or("unknown");
        if status != "active" {
            return Err(Unverifiable::NotActive(status.to_string()));
        }
        let size = source.size().ok_or(Unverifiable::NoSize)?;
        let os_hash = match (source.os_hash_algo(), source.os_hash_value()) {
            (Some(algo), Some(value)) => Some((algo.parse::<HashAlgo>()?, value.to_string())),
            _ => None,
        };
        let checksum = source.checksum().map(str::to_string);
        if checksum.is_none() && os_hash.is_none() {
            return Err(Unverifiable::NoDigest);
        }
        Ok(Expected {
            size,
            checksum,
            os_hash,
        })
    }
}

impl From<&Verified> for Expected {
    /// Everything the pipeline measured, as what the stored image must equal.
    fn from(verified: &Verified) -> Expected {
        Expected {
            size: verified.size,
            checksum: Some(verified.checksum.clone()),
            os_hash: Some((verified.os_hash_algo, verified.os_hash_value.clone())),
        }
    }
}

// === checks ===

/// The stored image must be `active`.
pub fn check_active(image: &Image) -> Result<(), Mismatch> {
    match image.status() {
        Some("active") => Ok(()),
        other => Err(Mismatch::NotActive(other.unwrap_or("unknown").to_string())),
    }
}

/// The stored image must be `active` with the source's size, and every digest both record must
/// be equal (hex, case-insensitive): `checksum` when the image has one (Glance leaves it unset
/// for a location added without secure hashing), `os_hash_value` when the image was hashed with
/// the source's algorithm. At least one digest must have been compared.
pub fn check_stored(expected: &Expected, image: &Image) -> Result<(), Mismatch> {
    check_active(image)?;
    if image.size() != Some(expected.size) {
        return Err(Mismatch::Size {
            got: image.size(),
            want: expected.size,
        });
    }
    let mut compared = false;
    if let (Some(want), Some(got)) = (&expected.checksum, image.checksum()) {
        if !got.eq_ignore_ascii_case(want) {
            return Err(Mismatch::Checksum {
                got: got.to_string(),
                want: want.clone(),
            });
        }
        compared = true;
    }
    if let Some((algo, want)) = &expected.os_hash {
        if image.os_hash_algo() == Some(algo.name()) {
            let got = image.os_hash_value().unwrap_or("none");
            if !got.eq_ignore_ascii_case(want) {
                return Err(Mismatch::OsHash {
                    algo: *algo,
                    got: got.to_string(),
                    want: want.clone(),
                });
            }
            compared = true;
        }
    }
    if compared {
        Ok(())
    } else {
        Err(Mismatch::NoCommonDigest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(v: serde_json::Value) -> Image {
        Image(v.as_object().cloned().unwrap_or_default())
    }

    fn source() -> Image {
        image(json!({"status": "active", "size": 10, "checksum": "ABC",
            "os_hash_algo": "sha512", "os_hash_value": "def"}))
    }

    fn expected() -> Expected {
        Expected {
            size: 10,
            checksum: Some("ABC".into()),
            os_hash: Some((HashAlgo::Sha512, "def".into())),
        }
    }

    #[test]
    fn a_source_promises_its_size_and_digests() {
        assert_eq!(Expected::from_source(&source()), Ok(expected()));
        let only_md5 = image(json!({"status": "active", "size": "10", "checksum": "ABC"}));
        assert_eq!(
            Expected::from_source(&only_md5),
            Ok(Expected {
                os_hash: None,
                ..expected()
            }),
            "a numeric string size is accepted, as upstream does"
        );
        let only_hash = image(json!({"status": "active", "size": 10,
            "os_hash_algo": "sha512", "os_hash_value": "def"}));
        assert_eq!(
            Expected::from_source(&only_hash).map(|e| e.checksum),
            Ok(None)
        );
    }

    #[test]
    fn a_source_must_be_active() {
        let mut queued = source();
        queued.0.insert("status".into(), json!("queued"));
        assert_eq!(
            Expected::from_source(&queued),
            Err(Unverifiable::NotActive("queued".into()))
        );
        queued.0.remove("status");
        assert_eq!(
            Expected::from_source(&queued),
            Err(Unverifiable::NotActive("unknown".into()))
        );
    }

    #[test]
    fn a_source_must_have_a_size() {
        let mut no_size = source();
        no_size.0.insert("size".into(), json!(null));
        assert_eq!(Expected::from_source(&no_size), Err(Unverifiable::NoSize));
    }

    #[test]
    fn a_source_must_have_a_digest() {
        let bare = image(json!({"status": "active", "size": 10, "os_hash_algo": "sha512"}));
        assert_eq!(Expected::from_source(&bare), Err(Unverifiable::NoDigest));
    }

    #[test]
    fn a_source_hashed_with_an_unknown_algorithm_is_refused() {
        let mut odd = source();
        odd.0.insert("os_hash_algo".into(), json!("whirlpool"));
        assert_eq!(
            Expected::from_source(&odd),
            Err(Unverifiable::UnsupportedAlgo(UnknownAlgo(
                "whirlpool".into()
            )))
        );
    }

    #[test]
    fn what_was_measured_is_what_the_store_must_hold() {
        let verified = Verified {
            size: 10,
            checksum: "abc".into(),
            os_hash_algo: HashAlgo::Sha512,
            os_hash_value: "def".into(),
        };
        assert!(check_stored(&Expected::from(&verified), &source()).is_ok());
    }

    #[test]
    fn a_stored_image_must_be_active() {
        let mut saving = source();
        saving.0.insert("status".into(), json!("saving"));
        let err = check_stored(&expected(), &saving).unwrap_err();
        assert_eq!(err, Mismatch::NotActive("saving".into()));
        assert_eq!(err.to_string(), "is saving, not active");
        assert!(check_active(&source()).is_ok());
    }

    #[test]
    fn a_stored_image_must_have_the_source_size() {
        let mut short = source();
        short.0.insert("size".into(), json!(9));
        let err = check_stored(&expected(), &short).unwrap_err();
        assert_eq!(err.to_string(), "has size 9, the source has 10");
        assert_eq!(err.field(), "size");
        short.0.remove("size");
        let err = check_stored(&expected(), &short).unwrap_err();
        assert_eq!(err.to_string(), "has size none, the source has 10");
    }

    #[test]
    fn a_stored_checksum_must_equal_the_source_one() {
        let mut other = source();
        other.0.insert("checksum".into(), json!("abd"));
        let err = check_stored(&expected(), &other).unwrap_err();
        assert_eq!(err.to_string(), "has checksum abd, the source has ABC");
        // Without a checksum (a location added without secure hashing) os_hash_value decides.
        other.0.remove("checksum");
        assert!(check_stored(&expected(), &other).is_ok());
    }

    #[test]
    fn a_stored_os_hash_must_equal_the_source_one_under_the_same_algorithm() {
        let mut other = source();
        other.0.insert("os_hash_value".into(), json!("x"));
        let err = check_stored(&expected(), &other).unwrap_err();
        assert_eq!(err.to_string(), "has sha512 x, the source has def");
        // Another algorithm cannot be compared; the checksum still is.
        other.0.insert("os_hash_algo".into(), json!("sha256"));
        assert!(check_stored(&expected(), &other).is_ok());
    }

    #[test]
    fn at_least_one_digest_must_be_compared() {
        let stored = image(json!({"status": "active", "size": 10,
            "os_hash_algo": "sha256", "os_hash_value": "x"}));
        assert_eq!(
            check_stored(&expected(), &stored),
            Err(Mismatch::NoCommonDigest)
        );
    }

    #[test]
    fn digests_compare_case_insensitively() {
        let upper = image(json!({"status": "active", "size": 10, "checksum": "abc",
            "os_hash_algo": "sha512", "os_hash_value": "DEF"}));
        assert!(check_stored(&expected(), &upper).is_ok());
    }
}
