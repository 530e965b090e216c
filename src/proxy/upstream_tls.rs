//! TLS to HTTPS and GRPCS backends. Like ingress-nginx, certificates are not verified unless
//! the Ingress names a CA (`proxy-ssl-secret`): in-cluster backends mostly serve self-signed
//! certificates for names nobody dials.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::routing::{Protocol, UpstreamTls};

/// The rustls client configuration for one protocol: ALPN `h2` for GRPCS, `http/1.1` for
/// HTTPS (hyper-rustls sets ALPN from the enabled versions).
pub fn client_config(protocol: Protocol, verify: Option<&UpstreamTls>) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let roots = verify.filter(|_| protocol.is_tls()).map(|v| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&v.ca_pem).flatten() {
            let cert: CertificateDer<'static> = cert;
            let _ = roots.add(cert);
        }
        roots
    });
    match roots {
        Some(roots) if !roots.is_empty() => {
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
    }
}

/// Accepts any certificate, but still checks the handshake signatures (so the session is
/// at least bound to the key the server showed). Upstreams use it unless a CA is given
/// (as ingress-nginx does); the tests use it to see which certificate a server sent.
#[derive(Debug)]
pub struct NoVerification(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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
