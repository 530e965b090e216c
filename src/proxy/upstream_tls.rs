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
///
/// `verify` (`proxy-ssl-*`, issue 15) adds: the CA bundle, the versions, the TLS 1.2 suites,
/// the client certificate, whether SNI is sent and the chain depth.
pub fn client_config(protocol: Protocol, verify: Option<&UpstreamTls>) -> ClientConfig {
    let verify = verify.filter(|_| protocol.is_tls());
    // `proxy-ssl-ciphers`: the named TLS 1.2 suites only.
    let provider = match verify.and_then(|v| v.ciphers.as_deref()) {
        Some(names) => {
            let suites: Vec<_> = names
                .iter()
                .filter_map(|n| crate::routing::tls_policy::suite_named(n))
                .collect();
            crate::routing::tls_policy::provider_with(Some(&suites))
        }
        None => Arc::new(rustls::crypto::ring::default_provider()),
    };
    let versions: &[&'static rustls::SupportedProtocolVersion] =
        match verify.and_then(|v| v.tls13_only) {
            Some(true) => &[&rustls::version::TLS13],
            Some(false) => &[&rustls::version::TLS12],
            None => rustls::DEFAULT_VERSIONS,
        };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("ring supports TLS 1.2 and 1.3");
    let roots = verify.map(|v| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&v.ca_pem).flatten() {
            let cert: CertificateDer<'static> = cert;
            let _ = roots.add(cert);
        }
        roots
    });
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        Some(roots) if !roots.is_empty() => {
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .expect("a non-empty root store builds");
            match verify.and_then(|v| v.verify_depth) {
                Some(depth) => Arc::new(DepthBound {
                    inner: webpki,
                    depth,
                }),
                None => webpki,
            }
        }
        _ => Arc::new(NoVerification(provider)),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client = verify
        .and_then(|v| v.client_pem.as_ref())
        .and_then(|(crt, key)| crate::tls::client_certificate(crt, key).ok());
    let mut config = match client {
        Some((chain, key)) => match builder.clone().with_client_auth_cert(chain, key) {
            Ok(config) => config,
            // Checked at translate time; never expected.
            Err(_) => builder.with_no_client_auth(),
        },
        None => builder.with_no_client_auth(),
    };
    // `proxy-ssl-server-name: off` keeps the name for verification only.
    if verify.and_then(|v| v.server_name) == Some(false) {
        config.enable_sni = false;
    }
    config
}

/// `proxy-ssl-verify-depth` (nginx `proxy_ssl_verify_depth`): the upstream may send at most
/// `depth - 1` certificates above its own (the CA makes `depth`), then webpki verifies.
#[derive(Debug)]
struct DepthBound {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    depth: u32,
}

impl ServerCertVerifier for DepthBound {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if intermediates.len() + 1 > self.depth as usize {
            return Err(rustls::Error::General(
                "upstream certificate chain longer than proxy-ssl-verify-depth".to_string(),
            ));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
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
