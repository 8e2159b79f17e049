//! The hash algorithms Glance can record as `os_hash_algo`, by their Python `hashlib` names.
//!
//! Glance's `[DEFAULT] hashing_algorithm` accepts any `hashlib` algorithm with a fixed-size digest;
//! the image records its name in `os_hash_algo` and the hex digest in `os_hash_value`. Every such
//! algorithm is supported here so a source image hashed with any of them can be verified.
//!
//! MD5, SHA-384 and SHA-512 (Glance's default `os_hash_algo`) are computed by the system's
//! libcrypto (OpenSSL) through the `openssl` crate: its assembly ran 1.2-1.4x the RustCrypto
//! crates' rate per CPU-second on AVX2 machines (BENCHMARKS.md §2). Should libcrypto refuse an
//! algorithm (a FIPS-restricted build refuses MD5), the RustCrypto implementation is used. The
//! others are RustCrypto's, as fast as libcrypto's (SHA-256 uses the CPU's SHA extensions in both).

use std::fmt;
use std::str::FromStr;

use digest::{DynDigest, InvalidBufferSize};
use openssl::hash::{Hasher, MessageDigest};

/// A hash algorithm named as Glance names it in `os_hash_algo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha512_224,
    Sha512_256,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
    Blake2b,
    Blake2s,
}

/// Every supported algorithm, for tests and documentation.
pub const ALL: [HashAlgo; 14] = [
    HashAlgo::Md5,
    HashAlgo::Sha1,
    HashAlgo::Sha224,
    HashAlgo::Sha256,
    HashAlgo::Sha384,
    HashAlgo::Sha512,
    HashAlgo::Sha512_224,
    HashAlgo::Sha512_256,
    HashAlgo::Sha3_224,
    HashAlgo::Sha3_256,
    HashAlgo::Sha3_384,
    HashAlgo::Sha3_512,
    HashAlgo::Blake2b,
    HashAlgo::Blake2s,
];

/// An `os_hash_algo` value this build cannot compute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported hash algorithm {0:?}")]
pub struct UnknownAlgo(pub String);

impl HashAlgo {
    /// The `hashlib` name, as stored in `os_hash_algo`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha224 => "sha224",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha384 => "sha384",
            HashAlgo::Sha512 => "sha512",
            HashAlgo::Sha512_224 => "sha512_224",
            HashAlgo::Sha512_256 => "sha512_256",
            HashAlgo::Sha3_224 => "sha3_224",
            HashAlgo::Sha3_256 => "sha3_256",
            HashAlgo::Sha3_384 => "sha3_384",
            HashAlgo::Sha3_512 => "sha3_512",
            HashAlgo::Blake2b => "blake2b",
            HashAlgo::Blake2s => "blake2s",
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            HashAlgo::Md5 => Libcrypto::boxed(MessageDigest::md5())
                .unwrap_or_else(|| Box::new(md5::Md5::default())),
            HashAlgo::Sha1 => Box::new(sha1::Sha1::default()),
            HashAlgo::Sha224 => Box::new(sha2::Sha224::default()),
            HashAlgo::Sha256 => Box::new(sha2::Sha256::default()),
            HashAlgo::Sha384 => Libcrypto::boxed(MessageDigest::sha384())
                .unwrap_or_else(|| Box::new(sha2::Sha384::default())),
            HashAlgo::Sha512 => Libcrypto::boxed(MessageDigest::sha512())
                .unwrap_or_else(|| Box::new(sha2::Sha512::default())),
            HashAlgo::Sha512_224 => Box::new(sha2::Sha512_224::default()),
            HashAlgo::Sha512_256 => Box::new(sha2::Sha512_256::default()),
            HashAlgo::Sha3_224 => Box::new(sha3::Sha3_224::default()),
            HashAlgo::Sha3_256 => Box::new(sha3::Sha3_256::default()),
            HashAlgo::Sha3_384 => Box::new(sha3::Sha3_384::default()),
            HashAlgo::Sha3_512 => Box::new(sha3::Sha3_512::default()),
            HashAlgo::Blake2b => Box::new(blake2::Blake2b512::default()),
            HashAlgo::Blake2s => Box::new(blake2::Blake2s256::default()),
        }
    }

    /// The lowercase hex digest of `data`, computed in one call (tests and the simulated cloud).
    pub fn hex_digest(self, data: &[u8]) -> String {
        let mut hasher = self.hasher();
        hasher.update(data);
        to_hex(&hasher.finalize())
    }
}

impl FromStr for HashAlgo {
    type Err = UnknownAlgo;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgo(s.chars().take(64).collect()))
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A digest computed by libcrypto, behind the same `DynDigest` interface as the RustCrypto ones.
/// libcrypto reports errors that `DynDigest` cannot carry; after one, the digest is empty (and
/// `finalize_into` fails), so it can never match an expected value: verification fails closed.
#[derive(Clone)]
struct Libcrypto {
    kind: MessageDigest,
    hasher: Hasher,
    failed: bool,
}

impl Libcrypto {
    /// A fresh hasher, or `None` if libcrypto will not provide `kind`.
    fn boxed(kind: MessageDigest) -> Option<Box<dyn DynDigest + Send>> {
        let hasher = Hasher::new(kind).ok()?;
        Some(Box::new(Libcrypto {
            kind,
            hasher,
            failed: false,
        }))
    }

    /// The digest so far, resetting the hasher; empty after any libcrypto error.
    fn take(&mut self) -> Box<[u8]> {
        let digest = match (self.failed, self.hasher.finish()) {
            (false, Ok(digest)) => Box::from(&*digest),
            _ => Box::default(),
        };
        self.failed = false;
        digest
    }
}

impl DynDigest for Libcrypto {
    fn update(&mut self, data: &[u8]) {
        if !self.failed && self.hasher.update(data).is_err() {
            tracing::error!(algo = ?self.kind.type_(), "libcrypto failed to hash");
            self.failed = true;
        }
    }

    fn finalize_reset(&mut self) -> Box<[u8]> {
        self.take()
    }

    fn finalize(mut self: Box<Self>) -> Box<[u8]> {
        self.take()
    }

    fn finalize_into(mut self, buf: &mut [u8]) -> Result<(), InvalidBufferSize> {
        self.finalize_into_reset(buf)
    }

    fn finalize_into_reset(&mut self, buf: &mut [u8]) -> Result<(), InvalidBufferSize> {
        let digest = self.take();
        if digest.len() != buf.len() || digest.len() != self.kind.size() {
            return Err(InvalidBufferSize);
        }
        buf.copy_from_slice(&digest);
        Ok(())
    }

    fn reset(&mut self) {
        let _ = self.take();
    }

    fn output_size(&self) -> usize {
        self.kind.size()
    }

    fn box_clone(&self) -> Box<dyn DynDigest> {
        Box::new(self.clone())
    }
}

/// Lowercase hex, as Python's `hexdigest()` writes it.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digests of b"abc" from Python's hashlib, one per algorithm.
    #[test]
    fn digests_match_hashlib() {
        let expect = [
            (HashAlgo::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (HashAlgo::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                HashAlgo::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                HashAlgo::Sha3_256,
                "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
            ),
            (
                HashAlgo::Blake2s,
                "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
            ),
        ];
        for (algo, hex) in expect {
            assert_eq!(algo.hex_digest(b"abc"), hex, "{algo}");
        }
    }

    /// The libcrypto-backed hashers agree with RustCrypto's over many updates of odd sizes, and
    /// reset, finalize-and-reset and clone behave as `DynDigest` says.
    #[test]
    fn libcrypto_digests_match_rustcrypto() {
        use digest::Digest;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        type OneShot = fn(&[u8]) -> Vec<u8>;
        let reference: [(HashAlgo, OneShot); 3] = [
            (HashAlgo::Md5, |d| md5::Md5::digest(d).to_vec()),
            (HashAlgo::Sha384, |d| sha2::Sha384::digest(d).to_vec()),
            (HashAlgo::Sha512, |d| sha2::Sha512::digest(d).to_vec()),
        ];
        for (algo, rustcrypto) in reference {
            let mut hasher = algo.hasher();
            hasher.update(b"discarded");
            hasher.reset();
            for piece in data.chunks(4093) {
                hasher.update(piece);
            }
            let copy = hasher.box_clone();
            assert_eq!(hasher.output_size(), rustcrypto(b"").len(), "{algo}");
            assert_eq!(&*hasher.finalize_reset(), &rustcrypto(&data)[..], "{algo}");
            hasher.update(b"abc");
            let mut out = vec![0; hasher.output_size()];
            hasher.finalize_into_reset(&mut out).unwrap();
            assert_eq!(out, rustcrypto(b"abc"), "{algo}");
            assert_eq!(&*copy.finalize(), &rustcrypto(&data)[..], "{algo}");
            assert!(hasher.finalize_into_reset(&mut [0; 3]).is_err());
        }
    }

    #[test]
    fn names_round_trip() {
        for algo in ALL {
            assert_eq!(algo.name().parse::<HashAlgo>(), Ok(algo));
        }
        assert!("shake_128".parse::<HashAlgo>().is_err());
    }
}
