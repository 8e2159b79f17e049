//! A TLS client that does not verify the server's certificate, for `--insecure-skip-tls-verify`
//! (a lab cloud whose clouds.yaml says `verify: false`). The handshake's signatures are still
//! checked, so the connection is encrypted to whoever holds the presented key — but who that is,
//! nothing checks. The server never uses this.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::tls::TlsError;

/// Accepts any certificate; checks the handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration that trusts any server certificate.
pub fn skip_verify_config() -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Request, StatusCode};
    use tokio::net::TcpListener;

    use super::*;
    use crate::http::{client_with_tls, empty, status_response};

    /// An HTTPS server with a self-signed certificate no root store trusts.
    async fn self_signed_server(shutdown: tokio_util::sync::CancellationToken) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("gds-insecure-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        let config =
            crate::tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        tokio::spawn(crate::http::serve(
            listener,
            Some(tokio_rustls::TlsAcceptor::from(config)),
            |_req, _peer| async { status_response(StatusCode::NO_CONTENT) },
            shutdown,
        ));
        url
    }

    #[tokio::test]
    async fn only_the_skip_verify_client_reaches_a_self_signed_server() {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let url = self_signed_server(shutdown.clone()).await;
        let get = |tls| {
            let client = client_with_tls(Duration::from_secs(5), tls);
            let request = Request::get(url.as_str()).body(empty()).unwrap();
            async move { client.request(request).await }
        };
        assert!(get(crate::tls::client_config(None).unwrap()).await.is_err());
        let answer = get(skip_verify_config().unwrap()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        shutdown.cancel();
    }
}
