//! The certificate store: certificates parsed from Secrets and the names bound to them
//! (spec §5.1–5.3). Translate builds a [`TlsTable`]; it is published in the same `Published`
//! value as the routes, and the resolver reads it per handshake.

use std::borrow::Cow;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Serialize, Serializer};

use crate::routing::HostMatch;

/// Hash maps keyed by configuration strings (see `routing::table`).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Why a Secret's contents are not a usable certificate (spec §5.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("tls.crt is missing or empty")]
    MissingCertificate,
    #[error("tls.key is missing or empty")]
    MissingKey,
    #[error("tls.crt is not PEM: {0}")]
    CertificatePem(String),
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    #[error("certificate {index} in tls.crt is not X.509: {reason}")]
    NotX509 { index: usize, reason: String },
    #[error("tls.key holds no PKCS#1, PKCS#8 or SEC1 private key: {0}")]
    KeyPem(String),
    #[error("tls.key is not a usable private key: {0}")]
    Key(String),
    #[error("tls.key does not match the public key of the first certificate in tls.crt")]
    KeyMismatch,
}

/// What the store shows of a certificate: enough to recognise it, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    /// The leaf's subject, e.g. `CN=shop.example`.
    pub subject: String,
    /// The names the leaf is valid for, lowercased: its DNS subjectAltNames in certificate
    /// order, or its subject CN when it has none (spec §5.2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Start and end of the leaf's validity, seconds since the Unix epoch. Translate records
    /// them; whether they hold is decided against a clock outside translate.
    #[serde(serialize_with = "rfc3339")]
    pub not_before: i64,
    #[serde(serialize_with = "rfc3339")]
    pub not_after: i64,
    /// Certificates in the chain, leaf included.
    pub chain_length: usize,
    /// SHA-256 of the leaf's DER, hex.
    pub sha256: String,
}

impl CertificateInfo {
    /// Whether the certificate covers `host` under X.509 wildcard rules: an exact name covers
    /// only itself, `*.S` covers one label before `S`; a wildcard host is covered only by the
    /// same wildcard name.
    pub fn covers(&self, host: &HostMatch) -> bool {
        self.names.iter().any(|name| match host {
            HostMatch::Exact(h) => {
                name == h
                    || name.strip_prefix("*.").is_some_and(|suffix| {
                        h.split_once('.')
                            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
                    })
            }
            HostMatch::Wildcard(s) => name.strip_prefix("*.") == Some(s.as_str()),
            HostMatch::Any => false,
        })
    }
}

fn rfc3339<S: Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_time(*secs))
}

/// Seconds since the Unix epoch as RFC 3339 (`2026-11-21T19:43:45Z`).
pub fn format_time(secs: i64) -> String {
    let time = if secs >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.unsigned_abs())
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A server name as the lookup sees it (spec §5.3 step 1): lowercase, one trailing dot
/// dropped. rustls already lowercases SNI, so this normally borrows.
pub fn normalize_sni(name: &str) -> Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// Which certificate a handshake gets for a server name, and how it was found (spec §5.3).
/// The resolver serves [`Selection::certified_key`]; `explain` describes the same value, so
/// the two cannot disagree.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// The binding the name matched (exact, else one-label wildcard), also when it serves the
    /// default certificate (empty `secretName`, unusable Secret).
    pub binding: Option<&'a Binding>,
    /// What is served: the bound certificate, else the `--default-ssl-certificate` one.
    /// `None`: the certificate generated at start.
    pub certificate: Option<&'a Arc<Certificate>>,
}

impl<'a> Selection<'a> {
    /// Whether the bound certificate is served (not a default).
    pub fn is_bound(&self) -> bool {
        self.binding.is_some_and(|b| b.certificate.is_some())
    }

    /// Whether the name matched a `*.` wildcard binding rather than an exact one.
    pub fn is_wildcard(&self) -> bool {
        self.binding
            .is_some_and(|b| matches!(b.host, HostMatch::Wildcard(_)))
    }

    /// What rustls serves; `None` means the generated default.
    pub fn certified_key(&self) -> Option<&'a Arc<CertifiedKey>> {
        self.certificate.map(|c| c.certified_key())
    }
}

/// A certificate chain and its key, parsed and checked, ready for rustls.
///
/// Equality compares the PEM-decoded bytes (and the Secret it came from), so an unchanged
/// Secret gives an equal store and publish skips the swap.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// `namespace/name` of the Secret.
    pub secret: String,
    #[serde(flatten)]
    pub info: CertificateInfo,
    #[serde(skip)]
    chain: Vec<CertificateDer<'static>>,
    #[serde(skip)]
    key: Vec<u8>,
    #[serde(skip)]
    certified: Arc<CertifiedKey>,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret && self.chain == other.chain && self.key == other.key
    }
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("secret", &self.secret)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parses `tls.crt` (one or more PEM certificates, leaf first, the chain is kept) and
    /// `tls.key` (PKCS#1, PKCS#8 or SEC1), and checks that the key belongs to the leaf
    /// (spec §5.1). Pure: no clock, no I/O.
    pub fn from_pem(secret: String, crt: &[u8], key: &[u8]) -> Result<Self, CertificateError> {
        if crt.iter().all(u8::is_ascii_whitespace) {
            return Err(CertificateError::MissingCertificate);
        }
        if key.iter().all(u8::is_ascii_whitespace) {
            return Err(CertificateError::MissingKey);
        }
        let chain = CertificateDer::pem_slice_iter(crt)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertificateError::CertificatePem(e.to_string()))?;
        if chain.is_empty() {
            return Err(CertificateError::NoCertificate);
        }
        let mut info = None;
        for (index, der) in chain.iter().enumerate() {
            let parsed = match x509_parser::parse_x509_certificate(der) {
                Ok((_, parsed)) => parsed,
                Err(e) => {
                    return Err(CertificateError::NotX509 {
                        index,
                        reason: e.to_string(),
                    })
                }
            };
            if index == 0 {
                info = Some(leaf_info(&parsed, der, chain.len()));
            }
        }
        let info = info.expect("the chain is not empty, so the leaf was parsed");
        let key_der = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| CertificateError::KeyPem(e.to_string()))?;
        let key_bytes = key_der.secret_der().to_vec();
        let provider = super::provider();
        let signing_key = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| CertificateError::Key(e.to_string()))?;
        let certified = CertifiedKey::new(chain.clone(), signing_key);
        // ring's keys always expose their public key, so a mismatch cannot go unnoticed.
        certified
            .keys_match()
            .map_err(|_| CertificateError::KeyMismatch)?;
        Ok(Certificate {
            secret,
            info,
            chain,
            key: key_bytes,
            certified: Arc::new(certified),
        })
    }

    /// What rustls serves for this certificate.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }

    /// The chain as DER, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

fn leaf_info(
    cert: &x509_parser::certificate::X509Certificate<'_>,
    der: &[u8],
    chain_length: usize,
) -> CertificateInfo {
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                names.push(n.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    // spec §5.2: the CN counts only when there are no SANs.
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(text) = cn.as_str() {
                names.push(text.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    CertificateInfo {
        subject: cert.subject().to_string(),
        names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        chain_length,
        sha256,
    }
}

/// One name bound to a certificate (spec §5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// An exact name or a `*.` wildcard; never hostless.
    pub host: HostMatch,
    /// The Ingress that bound it (the oldest one naming it).
    pub namespace: String,
    pub ingress: String,
    /// The Secret as the Ingress named it; `None` for an empty `secretName`.
    pub secret: Option<String>,
    /// What is served: `None` means the default certificate (empty `secretName`, or a Secret
    /// that is missing or unusable).
    pub certificate: Option<Arc<Certificate>>,
}

impl Serialize for Binding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Binding", 4)?;
        st.serialize_field("host", &self.host.to_string())?;
        st.serialize_field("ingress", &format!("{}/{}", self.namespace, self.ingress))?;
        if let Some(secret) = &self.secret {
            st.serialize_field("secret", secret)?;
        }
        let serves = match &self.certificate {
            Some(c) => c.secret.as_str(),
            None => "default",
        };
        st.serialize_field("serves", serves)?;
        st.end()
    }
}

/// Every TLS binding of one configuration, and the default certificate from
/// `--default-ssl-certificate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsTable {
    /// Sorted by host: exact names, then wildcards.
    bindings: Vec<Binding>,
    /// The certificates the bindings serve, by Secret, each once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    certificates: Vec<Arc<Certificate>>,
    /// The `--default-ssl-certificate` Secret, when it is usable. `None`: the certificate
    /// generated at start is the default (the resolver holds it).
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<Arc<Certificate>>,
    #[serde(skip)]
    exact: HashMap<Box<str>, usize>,
    /// Keyed by the suffix after `*.`.
    #[serde(skip)]
    wildcard: HashMap<Box<str>, usize>,
}

impl TlsTable {
    /// Builds the table. Each host should appear once (translate resolves conflicts); if one
    /// repeats, the first wins.
    pub fn new(mut bindings: Vec<Binding>, default: Option<Arc<Certificate>>) -> Self {
        bindings.sort_by(|a, b| a.host.cmp(&b.host));
        bindings.dedup_by(|later, first| later.host == first.host);
        let mut certificates: Vec<Arc<Certificate>> = bindings
            .iter()
            .filter_map(|b| b.certificate.clone())
            .collect();
        certificates.sort_by(|a, b| a.secret.cmp(&b.secret));
        certificates.dedup_by(|a, b| a.secret == b.secret);
        let mut exact = HashMap::default();
        let mut wildcard = HashMap::default();
        for (i, binding) in bindings.iter().enumerate() {
            match &binding.host {
                HostMatch::Exact(h) => {
                    exact.insert(h.as_str().into(), i);
                }
                HostMatch::Wildcard(s) => {
                    wildcard.insert(s.as_str().into(), i);
                }
                HostMatch::Any => {}
            }
        }
        TlsTable {
            bindings,
            certificates,
            default,
            exact,
            wildcard,
        }
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    pub fn default_certificate(&self) -> Option<&Arc<Certificate>> {
        self.default.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty() && self.default.is_none()
    }

    /// The binding for a normalised server name: exact, then one-label wildcard (spec §5.3
    /// steps 2–3).
    pub fn binding(&self, name: &str) -> Option<&Binding> {
        if let Some(&i) = self.exact.get(name) {
            return Some(&self.bindings[i]);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        match name.split_once('.') {
            Some((label, suffix)) if !label.is_empty() => {
                self.wildcard.get(suffix).map(|&i| &self.bindings[i])
            }
            _ => None,
        }
    }

    /// The certificate for a handshake with server name `sni` (spec §5.3): normalise, exact
    /// binding, one-label wildcard binding, else the default (no SNI, an unknown name, or a
    /// binding whose Secret is unusable or not named). The one place this rule lives.
    pub fn selection(&self, sni: Option<&str>) -> Selection<'_> {
        let binding = sni.and_then(|n| self.binding(&normalize_sni(n)));
        let certificate = binding
            .and_then(|b| b.certificate.as_ref())
            .or(self.default.as_ref());
        Selection {
            binding,
            certificate,
        }
    }

    /// What rustls serves for `name` ([`TlsTable::selection`]); `None` means the generated
    /// default.
    pub fn select(&self, name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        self.selection(name).certified_key()
    }

    /// The certificates bound names serve, by Secret, each once.
    pub fn certificates(&self) -> &[Arc<Certificate>] {
        &self.certificates
    }

    /// Whether requests for this vhost host arrive over TLS configured by an Ingress (spec
    /// §5.5): a binding covers it, whatever certificate it serves.
    pub fn has_tls(&self, host: &HostMatch) -> bool {
        match host {
            HostMatch::Exact(h) => self.binding(h).is_some(),
            HostMatch::Wildcard(s) => self.wildcard.contains_key(s.as_str()),
            HostMatch::Any => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn certificate(secret: &str, names: &[&str]) -> Arc<Certificate> {
        let (crt, key) = pem(names);
        Arc::new(Certificate::from_pem(secret.into(), crt.as_bytes(), key.as_bytes()).unwrap())
    }

    fn exact(h: &str) -> HostMatch {
        HostMatch::Exact(h.into())
    }

    fn wildcard(s: &str) -> HostMatch {
        HostMatch::Wildcard(s.into())
    }

    #[test]
    fn sni_is_lowercased_and_loses_one_trailing_dot() {
        assert_eq!(normalize_sni("Shop.Example."), "shop.example");
        assert!(matches!(normalize_sni("shop.example"), Cow::Borrowed(_)));
        assert_eq!(normalize_sni("a.example.."), "a.example.");
    }

    #[test]
    fn wildcard_certificate_covers_one_label() {
        let c = certificate("ns/w", &["*.shop.example", "shop.example"]);
        assert!(c.info.covers(&exact("a.shop.example")));
        assert!(c.info.covers(&exact("shop.example")));
        assert!(!c.info.covers(&exact("a.b.shop.example")));
        assert!(!c.info.covers(&exact("other.example")));
        assert!(c.info.covers(&wildcard("shop.example")));
        assert!(!c.info.covers(&wildcard("b.shop.example")));
        assert!(!c.info.covers(&HostMatch::Any));
    }

    #[test]
    fn unusable_pairs_are_refused_with_the_reason() {
        let (crt, key) = pem(&["a.example"]);
        let (_, other_key) = pem(&["b.example"]);
        let parse =
            |c: &str, k: &str| Certificate::from_pem("ns/x".into(), c.as_bytes(), k.as_bytes());
        assert!(parse(&crt, &key).is_ok());
        assert_eq!(
            parse("", &key).unwrap_err(),
            CertificateError::MissingCertificate
        );
        assert_eq!(
            parse(&crt, " \n").unwrap_err(),
            CertificateError::MissingKey
        );
        assert_eq!(
            parse("garbage", &key).unwrap_err(),
            CertificateError::NoCertificate
        );
        assert!(matches!(
            parse(&crt, "garbage").unwrap_err(),
            CertificateError::KeyPem(_)
        ));
        assert_eq!(
            parse(&crt, &other_key).unwrap_err(),
            CertificateError::KeyMismatch
        );
        // A key where the certificate belongs, and the other way round.
        assert_eq!(
            parse(&key, &crt).unwrap_err(),
            CertificateError::NoCertificate
        );
    }

    #[test]
    fn equal_bytes_are_equal_certificates() {
        let (crt, key) = pem(&["a.example"]);
        let a = Certificate::from_pem("ns/x".into(), crt.as_bytes(), key.as_bytes()).unwrap();
        let b = Certificate::from_pem("ns/x".into(), crt.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert!(!Arc::ptr_eq(a.certified_key(), b.certified_key()));
        let c = Certificate::from_pem("ns/y".into(), crt.as_bytes(), key.as_bytes()).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn selection_is_exact_then_one_label_wildcard_then_default() {
        let shop = certificate("ns/shop", &["shop.example"]);
        let wild = certificate("ns/wild", &["*.shop.example"]);
        let fallback = certificate("ns/default", &["default.example"]);
        let binding = |host: HostMatch, c: Option<&Arc<Certificate>>| Binding {
            host,
            namespace: "ns".into(),
            ingress: "ing".into(),
            secret: c.map(|c| c.secret.clone()),
            certificate: c.cloned(),
        };
        let table = TlsTable::new(
            vec![
                binding(wildcard("shop.example"), Some(&wild)),
                binding(exact("shop.example"), Some(&shop)),
                binding(exact("a.shop.example"), Some(&shop)),
                binding(exact("sni-only.example"), None),
            ],
            Some(fallback.clone()),
        );
        let served = |name: Option<&str>| table.select(name).cloned();
        assert!(Arc::ptr_eq(
            &served(Some("shop.example")).unwrap(),
            shop.certified_key()
        ));
        // exact beats wildcard
        assert!(Arc::ptr_eq(
            &served(Some("a.shop.example")).unwrap(),
            shop.certified_key()
        ));
        assert!(Arc::ptr_eq(
            &served(Some("b.shop.example")).unwrap(),
            wild.certified_key()
        ));
        assert!(Arc::ptr_eq(
            &served(Some("b.shop.example.")).unwrap(),
            wild.certified_key()
        ));
        for name in [
            None,
            Some("x.b.shop.example"),
            Some("sni-only.example"),
            Some("other"),
        ] {
            assert!(
                Arc::ptr_eq(&served(name).unwrap(), fallback.certified_key()),
                "{name:?}"
            );
        }
        // What explain reads: how the name matched and what it serves.
        let exact_sel = table.selection(Some("Shop.Example."));
        assert!(exact_sel.is_bound() && !exact_sel.is_wildcard());
        assert_eq!(exact_sel.certificate.unwrap().secret, "ns/shop");
        let wild_sel = table.selection(Some("b.shop.example"));
        assert!(wild_sel.is_bound() && wild_sel.is_wildcard());
        let sni_only = table.selection(Some("sni-only.example"));
        assert!(sni_only.binding.is_some() && !sni_only.is_bound());
        assert_eq!(sni_only.certificate.unwrap().secret, "ns/default");
        let none = table.selection(None);
        assert!(none.binding.is_none());
        assert_eq!(none.certificate.unwrap().secret, "ns/default");
        // Without a configured default, the generated one (None) is served.
        let bare = TlsTable::new(vec![binding(exact("sni-only.example"), None)], None);
        assert!(bare
            .selection(Some("sni-only.example"))
            .certified_key()
            .is_none());
        assert!(table.has_tls(&exact("b.shop.example")));
        assert!(table.has_tls(&exact("sni-only.example")));
        assert!(table.has_tls(&wildcard("shop.example")));
        assert!(!table.has_tls(&exact("x.b.shop.example")));
        assert!(!table.has_tls(&HostMatch::Any));
    }
}
