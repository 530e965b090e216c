//! TLS termination (spec §5): the certificate store that translate builds and publishes with
//! the routes (`store`), the rustls resolver that picks a certificate per handshake from the
//! published store (`resolver`), and the server configuration (TLS 1.2 and 1.3, ALPN `h2` and
//! `http/1.1`).

mod resolver;
mod store;

pub use resolver::{PublishedTls, Resolver};
pub use store::{
    format_time, normalize_sni, Binding, Certificate, CertificateError, CertificateInfo, Selection,
    TlsTable,
};

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::server::ServerConfig;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Errors setting up TLS at start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The one crypto provider: ring (no C toolchain beyond what ring builds itself, no OpenSSL).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// ALPN protocols offered, in server preference order (spec §5.4).
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Subject CN of the certificate generated at start (ingress-nginx calls its version the
/// "Kubernetes Ingress Controller Fake Certificate").
pub const GENERATED_CN: &str = "Portico Default Certificate";
/// Its only DNS name: `.invalid` is reserved (RFC 2606), so it can never verify for a real host.
pub const GENERATED_NAME: &str = "portico.invalid";

/// The self-signed default certificate generated at start when no `--default-ssl-certificate`
/// is usable (spec §5.1). A fresh ECDSA P-256 key every start.
pub fn generated_default() -> Result<Arc<CertifiedKey>, TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![GENERATED_NAME.to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, GENERATED_CN);
    let cert = params.self_signed(&key)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let certified = CertifiedKey::from_der(vec![cert.der().clone()], key_der, &provider())?;
    Ok(Arc::new(certified))
}

/// A client certificate chain and its key from PEM (`tls.crt`, `tls.key`): what Portico shows
/// an upstream that asks (`proxy-ssl-secret`, issue 15). The error is the reason.
pub fn client_certificate(
    crt: &[u8],
    key: &[u8],
) -> Result<
    (
        Vec<rustls_pki_types::CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    ),
    String,
> {
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no PEM certificate".to_string());
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("tls.key: {e}"))?;
    // The key must match the leaf, or every handshake would fail.
    CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider())
        .map_err(|e| format!("the key does not fit the certificate ({e})"))?;
    Ok((chain, key))
}

/// The negotiated protocol as the access log and metrics name it: `TLSv1.3`, `TLSv1.2`, else
/// `other` (never: only 1.2 and 1.3 are enabled). A bounded label.
pub fn version_name(version: Option<rustls::ProtocolVersion>) -> &'static str {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "other",
    }
}

/// The TLS side of a connection: a finished handshake's version and SNI, kept per connection
/// for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: &'static str,
    pub sni: Option<String>,
    /// Only on a handshake for a host with `auth-tls-*` that asks for a certificate: what the
    /// client presented, verified once (issue 15).
    pub client_cert: Option<Arc<crate::routing::client_auth::PeerCert>>,
}

/// A finished handshake's version and SNI, kept per connection for the access log.
pub fn connection_info(conn: &rustls::ServerConnection) -> TlsInfo {
    TlsInfo {
        version: version_name(conn.protocol_version()),
        sni: conn.server_name().map(str::to_string),
        client_cert: None,
    }
}

/// The rustls server configuration for the HTTPS listener (spec §5.4): TLS 1.3 and 1.2 with
/// the provider's AEAD suites in the server's order (ingress-nginx's default
/// `ssl-prefer-server-ciphers: true`), ALPN `h2` then `http/1.1`, no client certificates,
/// session resumption by tickets and by a session cache, both for 10 minutes
/// (ingress-nginx's default `ssl-session-timeout`), certificates from `resolver`.
pub fn server_config(resolver: Arc<Resolver>) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_clock(
        resolver,
        Arc::new(rustls::time_provider::DefaultTimeProvider),
    )
}

/// [`server_config`] with the clock that dates sessions and tickets (and verifies client
/// certificates); every configuration derived from it (TLS policy, per host) keeps it.
pub fn server_config_with_clock(
    resolver: Arc<Resolver>,
    time: Arc<dyn rustls::time_provider::TimeProvider>,
) -> Result<Arc<ServerConfig>, TlsError> {
    use crate::routing::tls_session::{TimedSessions, TimedTickets, DEFAULT_TIMEOUT};
    let mut config = ServerConfig::builder_with_details(provider(), time.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ignore_client_order = true;
    config.ticketer = Arc::new(TimedTickets::new(
        rustls::crypto::ring::Ticketer::new()?,
        DEFAULT_TIMEOUT,
        time.clone(),
    ));
    config.session_storage = Arc::new(TimedSessions::new(
        rustls::server::ServerSessionMemoryCache::new(4096),
        DEFAULT_TIMEOUT,
        time,
    ));
    Ok(Arc::new(config))
}
