//! TLS with rustls: the server side (`tls_cert_file` + `tls_key_file`) and the trust used for
//! outbound calls to Keystone and Glance (the system's roots plus `ca_file`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no PEM certificate found")]
    NoCertificate(PathBuf),
    #[error("{0}: no PEM private key found")]
    NoKey(PathBuf),
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads every PEM certificate in `path`.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// The platform's root certificates (a malformed one is skipped, as curl does).
fn native_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

fn with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Client trust: the platform's root certificates, plus those in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = native_roots();
    if let Some(path) = ca_file {
        for cert in read_certs(path)? {
            roots.add(cert)?;
        }
    }
    with_roots(roots)
}

/// Client trust in the platform's roots only (for tools and tests acting as clients).
pub fn system_roots() -> Arc<ClientConfig> {
    with_roots(native_roots()).unwrap_or_else(|_| {
        // The ring provider supports rustls' default protocol versions; this path is for a
        // provider that would not, and yields a client that trusts nothing rather than a panic.
        Arc::new(
            ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        )
    })
}

/// Server identity from a PEM certificate chain and its PEM private key.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(cert_file)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut open(key_file)?)
        .map_err(|source| TlsError::Read {
            path: key_file.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey(key_file.to_path_buf()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
