//! Client certificates (ingress-nginx `auth-tls-*`, issue 15): the typed settings translate
//! builds for a host ([`ClientAuth`]), the rustls verifier used during the handshake, and the
//! verification of a finished handshake's client chain ([`PeerCert`]), done once per
//! connection and read by the proxy per request.
//!
//! nginx's model is kept: with `ssl_verify_client on` the handshake asks for a certificate but
//! never fails because of it; the request then gets 400 (nginx's 495/496) when the
//! certificate is missing or does not verify, so `auth-tls-error-page` can redirect. The
//! handshake verifier therefore accepts any chain (it still checks that the client holds the
//! key: the `CertificateVerify` signature), and the chain is verified against the CA bundle
//! (and CRL) right after the handshake.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::Serialize;

/// `auth-tls-verify-client` (nginx `ssl_verify_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyClient {
    /// A verified certificate is required (400 otherwise). ingress-nginx's default.
    On,
    /// No certificate is asked for.
    Off,
    /// A certificate is asked for; none is fine, a bad one is 400.
    Optional,
    /// A certificate is asked for and passed on unverified (the upstream decides).
    OptionalNoCa,
}

impl VerifyClient {
    pub fn parse(value: &str) -> Option<VerifyClient> {
        match value.trim() {
            "on" => Some(VerifyClient::On),
            "off" => Some(VerifyClient::Off),
            "optional" => Some(VerifyClient::Optional),
            "optional_no_ca" => Some(VerifyClient::OptionalNoCa),
            _ => None,
        }
    }

    /// Whether the handshake asks for a certificate (nginx `sscf->verify != 0`).
    pub fn asks(self) -> bool {
        self != VerifyClient::Off
    }
}

/// One host's client-certificate settings, typed at translate time.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAuth {
    /// The `auth-tls-secret`, `namespace/name`.
    pub secret: String,
    pub verify: VerifyClient,
    /// `auth-tls-verify-depth`: the most certificates above the client's, the CA included
    /// (OpenSSL's depth: 1 = signed by a CA of the bundle directly).
    pub depth: u32,
    /// `auth-tls-error-page`: a 302 here instead of the 400.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_page: Option<String>,
    /// `auth-tls-pass-certificate-to-upstream`: send `ssl-client-cert`.
    pub pass_certificate: bool,
    /// `auth-tls-match-cn`: the subject DN (RFC 2253, as nginx's `$ssl_client_s_dn`) must
    /// match, else 403.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "regex_text")]
    pub match_cn: Option<regex::Regex>,
    /// Whether the Secret carries a `ca.crl`.
    pub crl: bool,
    #[serde(skip)]
    ca_der: Vec<CertificateDer<'static>>,
    #[serde(skip)]
    crl_der: Vec<CertificateRevocationListDer<'static>>,
    /// Verifies a client chain against the bundle (and CRL), after the handshake.
    #[serde(skip)]
    verifier: Arc<dyn ClientCertVerifier>,
}

fn regex_text<S: serde::Serializer>(r: &Option<regex::Regex>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_str(r.as_str()),
        None => s.serialize_none(),
    }
}

impl PartialEq for ClientAuth {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
            && self.verify == other.verify
            && self.depth == other.depth
            && self.error_page == other.error_page
            && self.pass_certificate == other.pass_certificate
            && self.match_cn.as_ref().map(regex::Regex::as_str)
                == other.match_cn.as_ref().map(regex::Regex::as_str)
            && self.ca_der == other.ca_der
            && self.crl_der == other.crl_der
    }
}

/// What the Secret of `auth-tls-secret` holds, and the other annotations, before checking.
#[derive(Debug, Clone)]
pub struct ClientAuthSpec<'a> {
    pub secret: String,
    /// `ca.crt`: one or more PEM certificates.
    pub ca_pem: &'a [u8],
    /// `ca.crl`: PEM CRLs, if the Secret has one.
    pub crl_pem: Option<&'a [u8]>,
    pub verify: VerifyClient,
    pub depth: u32,
    pub error_page: Option<String>,
    pub pass_certificate: bool,
    pub match_cn: Option<regex::Regex>,
}

impl ClientAuth {
    /// Checks the bundle and CRL (every PEM block must parse; at least one CA) and builds
    /// the verifier. An error is the reason, for a condition: the caller fails closed.
    pub fn new(spec: ClientAuthSpec<'_>) -> Result<ClientAuth, String> {
        use rustls::pki_types::pem::{PemObject, SectionKind};
        let mut ca_der = Vec::new();
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(spec.ca_pem) {
            match section {
                Ok((SectionKind::Certificate, der)) => ca_der.push(CertificateDer::from(der)),
                Ok(_) => {}
                Err(e) => return Err(format!("ca.crt holds unreadable PEM ({e})")),
            }
        }
        if ca_der.is_empty() {
            return Err("ca.crt holds no PEM certificate".to_string());
        }
        let mut roots = RootCertStore::empty();
        for (i, der) in ca_der.iter().enumerate() {
            roots
                .add(der.clone())
                .map_err(|e| format!("certificate {} of ca.crt is unusable ({e})", i + 1))?;
        }
        let mut crl_der = Vec::new();
        if let Some(pem) = spec.crl_pem {
            for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
                match section {
                    Ok((SectionKind::Crl, der)) => {
                        crl_der.push(CertificateRevocationListDer::from(der))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(format!("ca.crl holds unreadable PEM ({e})")),
                }
            }
            if crl_der.is_empty() {
                return Err("ca.crl holds no PEM CRL".to_string());
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .with_crls(crl_der.iter().cloned())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("the CA bundle or CRL is unusable ({e})"))?;
        Ok(ClientAuth {
            secret: spec.secret,
            verify: spec.verify,
            depth: spec.depth,
            error_page: spec.error_page,
            pass_certificate: spec.pass_certificate,
            match_cn: spec.match_cn,
            crl: spec.crl_pem.is_some(),
            ca_der,
            crl_der,
            verifier,
        })
    }

    /// The verifier of this host's handshakes: asks for a certificate, names the bundle's
    /// CAs, never fails the handshake for the chain itself (see the module doc).
    pub fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(HandshakeVerifier(self.verifier.clone()))
    }

    /// Verifies the chain a client presented (leaf first): nginx's `$ssl_client_verify`.
    pub fn verify_chain(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Verified {
        let Some((leaf, rest)) = chain.split_first() else {
            return Verified::None;
        };
        // OpenSSL's depth counts the certificates above the leaf, the trust anchor included;
        // a CA of the bundle the client sent along is not counted twice.
        let above = rest.iter().filter(|c| !self.ca_der.contains(c)).count() + 1;
        if above > self.depth as usize {
            return Verified::Failed("certificate chain too long");
        }
        match self.verifier.verify_client_cert(leaf, rest, now) {
            Ok(_) => Verified::Success,
            Err(e) => Verified::Failed(failure_reason(&e)),
        }
    }
}

/// The outcome of verifying a client chain (nginx `$ssl_client_verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Success,
    /// OpenSSL's wording of the reason, as nginx puts it after `FAILED:`.
    Failed(&'static str),
    /// No certificate was sent.
    None,
}

/// OpenSSL's `X509_verify_cert_error_string` for the failures webpki reports.
fn failure_reason(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate is not yet valid",
            C::Revoked => "certificate revoked",
            C::UnknownIssuer => "unable to get local issuer certificate",
            C::BadSignature => "certificate signature failure",
            C::UnknownRevocationStatus => "unable to get certificate CRL",
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => "CRL has expired",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "unsupported certificate purpose"
            }
            _ => "unable to verify the first certificate",
        },
        _ => "unable to verify the first certificate",
    }
}

/// A client certificate as a connection presented it, verified once after the handshake
/// against the `ClientAuth` of the host its SNI named.
#[derive(Debug)]
pub struct PeerCert {
    /// The settings it was verified against (a reload may change the host's).
    pub auth: Arc<ClientAuth>,
    pub verified: Verified,
    /// `ssl-client-verify`: `SUCCESS`, `FAILED:reason` or `NONE`.
    pub verify_header: http::HeaderValue,
    /// nginx's `$ssl_client_s_dn` / `$ssl_client_i_dn` (RFC 2253); empty without a
    /// certificate.
    pub subject_dn: String,
    pub issuer_dn: String,
    /// `ssl-client-cert` (nginx `$ssl_client_escaped_cert`), only when the host passes it.
    pub escaped_cert: Option<http::HeaderValue>,
}

impl PartialEq for PeerCert {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.auth, &other.auth)
            && self.verified == other.verified
            && self.subject_dn == other.subject_dn
            && self.issuer_dn == other.issuer_dn
            && self.escaped_cert == other.escaped_cert
    }
}

impl Eq for PeerCert {}

impl PeerCert {
    /// Verifies what a finished handshake's client presented (`chain`: leaf first, empty
    /// when it sent none).
    pub fn new(auth: Arc<ClientAuth>, chain: &[CertificateDer<'_>]) -> PeerCert {
        let verified = auth.verify_chain(chain, UnixTime::now());
        let verify_header = match verified {
            Verified::Success => http::HeaderValue::from_static("SUCCESS"),
            Verified::None => http::HeaderValue::from_static("NONE"),
            Verified::Failed(why) => http::HeaderValue::from_str(&format!("FAILED:{why}"))
                .unwrap_or_else(|_| http::HeaderValue::from_static("FAILED")),
        };
        let (subject_dn, issuer_dn) = chain
            .first()
            .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
            .map(|(_, cert)| (rfc2253(cert.subject()), rfc2253(cert.issuer())))
            .unwrap_or_default();
        let escaped_cert = chain
            .first()
            .filter(|_| auth.pass_certificate)
            .and_then(|leaf| http::HeaderValue::from_str(&escaped_pem(leaf)).ok());
        PeerCert {
            auth,
            verified,
            verify_header,
            subject_dn,
            issuer_dn,
            escaped_cert,
        }
    }
}

/// A distinguished name as OpenSSL prints it with `XN_FLAG_RFC2253` (nginx's
/// `$ssl_client_s_dn`): last RDN first, `,` between RDNs, `+` inside one, special characters
/// and bytes outside printable ASCII escaped.
pub fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut out = String::new();
    for (i, rdn) in name
        .iter()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            out.push_str(short_name(&oid).unwrap_or(&oid));
            out.push('=');
            let value = attr.as_str().map(str::as_bytes).unwrap_or(attr.as_slice());
            escape_value(value, &mut out);
        }
    }
    out
}

/// OpenSSL's short names of the attributes certificates use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

fn escape_value(value: &[u8], out: &mut String) {
    let last = value.len().saturating_sub(1);
    for (i, &b) in value.iter().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
            || (i == 0 && (b == b'#' || b == b' '))
            || (i == last && b == b' ');
        if special {
            out.push('\\');
            out.push(b as char);
        } else if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:02X}"));
        }
    }
}

/// The certificate as PEM (64-column lines, `\n`), URL-encoded as nginx's
/// `$ssl_client_escaped_cert` (`-----BEGIN%20CERTIFICATE-----%0A...`).
pub fn escaped_pem(der: &[u8]) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let pem = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    percent_encoding::utf8_percent_encode(&pem, KEEP).to_string()
}

/// The handshake side: asks for a certificate, accepts any chain, checks the signature that
/// proves the client holds the certificate's key.
#[derive(Debug)]
struct HandshakeVerifier(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for HandshakeVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // nginx answers 400 after the handshake (so the error page can work).
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        ca: rcgen::Certificate,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    fn pki(cn: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(params, ca_key);
        Pki { ca, issuer }
    }

    fn client(pki: &Pki, cn: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.signed_by(&key, &pki.issuer).unwrap().der().clone()
    }

    fn auth(pki: &Pki, depth: u32) -> ClientAuth {
        let pem = pki.ca.pem();
        ClientAuth::new(ClientAuthSpec {
            secret: "default/ca".into(),
            ca_pem: pem.as_bytes(),
            crl_pem: None,
            verify: VerifyClient::On,
            depth,
            error_page: None,
            pass_certificate: true,
            match_cn: None,
        })
        .unwrap()
    }

    #[test]
    fn a_client_of_the_bundle_verifies_and_a_stranger_does_not() {
        let ours = pki("ours");
        let theirs = pki("theirs");
        let auth = Arc::new(auth(&ours, 1));
        let good = PeerCert::new(auth.clone(), &[client(&ours, "alice")]);
        assert_eq!(good.verified, Verified::Success);
        // rcgen writes CN first; RFC 2253 order is the reverse.
        assert_eq!(good.subject_dn, "O=Acme\\, Inc,CN=alice");
        assert_eq!(good.issuer_dn, "CN=ours");
        let escaped = good.escaped_cert.unwrap();
        assert!(escaped
            .to_str()
            .unwrap()
            .starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        let bad = PeerCert::new(auth.clone(), &[client(&theirs, "mallory")]);
        assert_eq!(
            bad.verified,
            Verified::Failed("unable to get local issuer certificate")
        );
        assert_eq!(
            bad.verify_header,
            "FAILED:unable to get local issuer certificate"
        );
        assert_eq!(PeerCert::new(auth, &[]).verified, Verified::None);
    }

    #[test]
    fn a_chain_longer_than_the_depth_fails() {
        let root = pki("root");
        // root -> intermediate -> leaf: depth 2 is needed.
        let int_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "intermediate");
        let int = params.clone().signed_by(&int_key, &root.issuer).unwrap();
        let int_issuer = rcgen::Issuer::new(params, int_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "bob");
        let leaf = leaf.signed_by(&key, &int_issuer).unwrap();
        let chain = [leaf.der().clone(), int.der().clone()];
        let shallow = Arc::new(auth(&root, 1));
        assert_eq!(
            PeerCert::new(shallow, &chain).verified,
            Verified::Failed("certificate chain too long")
        );
        let deep = Arc::new(auth(&root, 2));
        assert_eq!(PeerCert::new(deep, &chain).verified, Verified::Success);
    }

    #[test]
    fn garbage_bundles_are_refused() {
        let spec = |pem: &'static [u8]| ClientAuthSpec {
            secret: "default/ca".into(),
            ca_pem: pem,
            crl_pem: None,
            verify: VerifyClient::On,
            depth: 1,
            error_page: None,
            pass_certificate: false,
            match_cn: None,
        };
        assert!(ClientAuth::new(spec(b"not pem")).is_err());
        assert!(ClientAuth::new(spec(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ))
        .is_err());
    }
}
