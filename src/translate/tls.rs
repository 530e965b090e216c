//! TLS bindings (spec §5.1–5.2): which names each owned Ingress binds to which Secret, oldest
//! Ingress first, and the certificates parsed from those Secrets. Also the per-Ingress
//! `ssl-redirect` annotation (spec §5.5) and the validity pass that runs outside translate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;

use super::{paths, Condition, ObjectRef, Options, Reason, Translation};
use crate::routing::HostMatch;
use crate::tls::{Binding, Certificate, TlsTable};

/// Per-Ingress redirect opt-out, Portico's spelling (spec §5.5).
pub const SSL_REDIRECT: &str = "portico.dev/ssl-redirect";
/// The ingress-nginx spelling, honoured too; Portico's wins when both are set.
pub const NGINX_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";

/// Secret types that may hold a certificate (spec §5.1): `kubernetes.io/tls`, and `Opaque`
/// (also the type of a Secret that names none) with the same keys.
const TLS_TYPES: [&str; 2] = ["kubernetes.io/tls", "Opaque"];

/// Whether plain-HTTP requests to this Ingress's TLS hosts are redirected (spec §5.5): the
/// annotation when it says `true` or `false` (either case), else the global setting. Like
/// ingress-nginx, the annotation overrides the global default in both directions.
/// Also says what decided: the annotation, or [`GLOBAL_SSL_REDIRECT`].
pub(super) fn ssl_redirect(
    ingress: &Ingress,
    options: &Options,
) -> Result<(bool, &'static str), String> {
    let annotations = ingress.metadata.annotations.as_ref();
    for (key, set_by) in [
        (SSL_REDIRECT, "annotation portico.dev/ssl-redirect"),
        (
            NGINX_SSL_REDIRECT,
            "annotation nginx.ingress.kubernetes.io/ssl-redirect",
        ),
    ] {
        if let Some(value) = annotations.and_then(|a| a.get(key)) {
            return match value.trim().to_ascii_lowercase().as_str() {
                "true" => Ok((true, set_by)),
                "false" => Ok((false, set_by)),
                _ => Err(format!(
                    "annotation {key}: {value:?} is neither \"true\" nor \"false\"; using the global setting"
                )),
            };
        }
    }
    Ok((options.ssl_redirect, GLOBAL_SSL_REDIRECT))
}

/// What decided an Ingress's redirect when no valid annotation did.
pub(super) const GLOBAL_SSL_REDIRECT: &str = "--ssl-redirect";

/// A Secret parsed once per translate, shared by every binding that names it.
type Parsed = Result<Arc<Certificate>, (Reason, String)>;

/// What a Secret's parse depends on, and its result.
pub(super) struct Memo {
    kind: String,
    crt: Vec<u8>,
    key: Vec<u8>,
    parsed: Parsed,
}

type MemoKey = (String, String);

/// Parses of the previous translate, by Secret `namespace/name`, held by
/// [`Cache`](super::Cache). Loading a key into ring and parsing X.509 costs tens of
/// microseconds per Secret (more for RSA), which for thousands of Secrets would dominate every
/// rebuild; a Secret whose type and bytes are unchanged reuses its parse. The result is the
/// same as parsing again (parsing is deterministic), so the output does not depend on what the
/// memo holds; entries not used by the latest translate are dropped.
pub(super) type CertMemo = HashMap<MemoKey, Arc<Memo>>;

/// Collects bindings Ingress by Ingress, in age order.
pub(super) struct TlsBuilder<'a> {
    secrets: HashMap<(&'a str, &'a str), &'a Secret>,
    parsed: HashMap<MemoKey, Parsed>,
    /// The previous translate's parses.
    previous: CertMemo,
    /// The memo entries this translate used, to become the next memo.
    used: CertMemo,
    bindings: BTreeMap<HostMatch, Binding>,
}

impl<'a> TlsBuilder<'a> {
    pub fn new(secrets: &'a [std::sync::Arc<Secret>], previous: CertMemo) -> Self {
        let mut by_name: HashMap<(&str, &str), &Secret> = HashMap::new();
        for secret in secrets {
            let key = (
                secret.metadata.namespace.as_deref().unwrap_or_default(),
                secret.metadata.name.as_deref().unwrap_or_default(),
            );
            // A source should never deliver one name twice; keep one chosen by content so the
            // result does not depend on input order.
            match by_name.get(&key) {
                Some(kept) if canonical(kept) <= canonical(secret) => {}
                _ => {
                    by_name.insert(key, secret);
                }
            }
        }
        TlsBuilder {
            secrets: by_name,
            parsed: HashMap::new(),
            previous,
            used: HashMap::new(),
            bindings: BTreeMap::new(),
        }
    }

    /// The certificate of Secret `namespace/name`, or why there is none.
    fn certificate(&mut self, namespace: &str, name: &str) -> Parsed {
        let key = (namespace.to_string(), name.to_string());
        if let Some(parsed) = self.parsed.get(&key) {
            return parsed.clone();
        }
        let parsed = match self.secrets.get(&(namespace, name)) {
            None => Err((
                Reason::TlsSecretNotFound,
                format!("Secret {namespace}/{name} not found"),
            )),
            Some(secret) => self.parse_memoised(secret, &key),
        };
        self.parsed.insert(key, parsed.clone());
        parsed
    }

    /// Binds the names of one Ingress's `tls` entries (spec §5.2). Called oldest Ingress
    /// first; `rule_hosts` are the Ingress's valid rule hosts. The first binding of a name
    /// wins; later different ones get `TlsHostConflict`.
    pub fn add(
        &mut self,
        ingress: &Ingress,
        object: &ObjectRef,
        rule_hosts: &[HostMatch],
        conditions: &mut Vec<Condition>,
    ) {
        let namespace = object.namespace.as_str();
        let entries = ingress
            .spec
            .as_ref()
            .and_then(|s| s.tls.as_deref())
            .unwrap_or_default();
        let mut condition = |reason: Reason, message: String| {
            conditions.push(Condition {
                object: object.clone(),
                reason,
                message,
            });
        };
        for (index, entry) in entries.iter().enumerate() {
            let secret_name = entry.secret_name.as_deref().unwrap_or_default();
            // `None`: the default certificate serves these names.
            let certificate = if secret_name.is_empty() {
                None
            } else if secret_name.contains('/') {
                // spec §5.1: the Secret lives in the Ingress's namespace; a
                // `namespace/name` reference is not followed.
                condition(
                    Reason::TlsSecretCrossNamespace,
                    format!(
                        "tls[{index}]: secretName {secret_name:?} names another namespace; \
                         only Secrets in {namespace} are used; serving the default certificate"
                    ),
                );
                None
            } else {
                match self.certificate(namespace, secret_name) {
                    Ok(c) => Some(c),
                    Err((reason, message)) => {
                        condition(
                            reason,
                            format!("tls[{index}]: {message}; serving the default certificate"),
                        );
                        None
                    }
                }
            };

            let listed = entry.hosts.as_deref().unwrap_or_default();
            let mut hosts: Vec<HostMatch> = Vec::new();
            if listed.is_empty() {
                // spec §5.2: bind to the rule hosts the certificate covers. Without a usable
                // certificate nothing can be checked, so every rule host falls back to the
                // default certificate, as listed names would.
                hosts.extend(
                    rule_hosts
                        .iter()
                        .filter(|h| certificate.as_ref().is_none_or(|c| c.info.covers(h)))
                        .cloned(),
                );
                if hosts.is_empty() {
                    if let Some(c) = &certificate {
                        condition(
                            Reason::TlsHostNotCovered,
                            format!(
                                "tls[{index}]: hosts is empty and the certificate of Secret {} \
                                 covers none of the rule hosts; nothing is bound",
                                c.secret
                            ),
                        );
                    }
                }
            } else {
                for host in listed {
                    match paths::host_match(Some(&host.to_ascii_lowercase())) {
                        Ok(HostMatch::Any) => condition(
                            Reason::TlsHostInvalid,
                            format!("tls[{index}]: an empty host is not a name; skipped"),
                        ),
                        Ok(h) => {
                            if let Some(c) = &certificate {
                                if !c.info.covers(&h) {
                                    // spec §5.2: bound anyway; clients will not verify it.
                                    condition(
                                        Reason::TlsHostNotCovered,
                                        format!(
                                            "tls[{index}]: the certificate of Secret {} does not \
                                             cover {h} (names: {}); bound anyway",
                                            c.secret,
                                            c.info.names.join(", ")
                                        ),
                                    );
                                }
                            }
                            hosts.push(h);
                        }
                        Err(e) => condition(
                            Reason::TlsHostInvalid,
                            format!("tls[{index}]: {e}; skipped"),
                        ),
                    }
                }
            }

            let secret_ref = (!secret_name.is_empty()).then(|| secret_name.to_string());
            for host in hosts {
                match self.bindings.get(&host) {
                    Some(existing) => {
                        // The same Secret bound twice (two Ingresses sharing a certificate,
                        // or one listing a name twice) is no conflict.
                        let same = existing.namespace == namespace
                            && existing.secret == secret_ref
                            && existing.certificate == certificate;
                        if !same {
                            let by = if existing.namespace == namespace
                                && existing.ingress == object.name
                            {
                                "an earlier tls entry of this Ingress".to_string()
                            } else {
                                format!("older Ingress {}/{}", existing.namespace, existing.ingress)
                            };
                            condition(
                                Reason::TlsHostConflict,
                                format!("tls[{index}]: {host} is already bound by {by}; ignored"),
                            );
                        }
                    }
                    None => {
                        self.bindings.insert(
                            host.clone(),
                            Binding {
                                host,
                                namespace: namespace.to_string(),
                                ingress: object.name.clone(),
                                secret: secret_ref.clone(),
                                certificate: certificate.clone(),
                            },
                        );
                    }
                }
            }
        }
    }

    /// `parse_secret`, or the previous translate's result for identical contents.
    fn parse_memoised(&mut self, secret: &Secret, key: &MemoKey) -> Parsed {
        let kind = secret.type_.as_deref().unwrap_or("Opaque");
        let crt = secret_value(secret, "tls.crt");
        let tls_key = secret_value(secret, "tls.key");
        let memo = match self.previous.get(key).cloned() {
            Some(m) if m.kind == kind && m.crt == crt && m.key == tls_key => m,
            _ => Arc::new(Memo {
                kind: kind.to_string(),
                crt: crt.to_vec(),
                key: tls_key.to_vec(),
                parsed: parse_secret(secret, &key.0, &key.1),
            }),
        };
        let parsed = memo.parsed.clone();
        self.used.insert(key.clone(), memo);
        parsed
    }

    /// The table, with the `--default-ssl-certificate` Secret when it is usable (spec §5.1);
    /// when it is not, a condition on the Secret, and the generated certificate serves. Also
    /// the memo entries this translate used, for the next one.
    pub fn finish(
        mut self,
        options: &Options,
        conditions: &mut Vec<Condition>,
    ) -> (TlsTable, CertMemo) {
        let default = options
            .default_ssl_certificate
            .as_ref()
            .and_then(|(namespace, name)| match self.certificate(namespace, name) {
                Ok(c) => Some(c),
                Err((reason, message)) => {
                    conditions.push(Condition {
                        object: ObjectRef {
                            kind: "Secret".to_string(),
                            namespace: namespace.clone(),
                            name: name.clone(),
                        },
                        reason,
                        message: format!(
                            "--default-ssl-certificate: {message}; serving the generated certificate"
                        ),
                    });
                    None
                }
            });
        (
            TlsTable::new(self.bindings.into_values().collect(), default),
            self.used,
        )
    }
}

/// Parses one Secret (spec §5.1): type `kubernetes.io/tls` or `Opaque`, keys `tls.crt` and
/// `tls.key`. `stringData` is merged over `data` as the API server does on write (manifests
/// read from files may use it).
fn parse_secret(secret: &Secret, namespace: &str, name: &str) -> Parsed {
    let invalid = |message: String| {
        Err((
            Reason::TlsSecretInvalid,
            format!("Secret {namespace}/{name}: {message}"),
        ))
    };
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    if !TLS_TYPES.contains(&kind) {
        return invalid(format!(
            "type {kind:?} cannot hold a certificate (kubernetes.io/tls or Opaque)"
        ));
    }
    match Certificate::from_pem(
        format!("{namespace}/{name}"),
        secret_value(secret, "tls.crt"),
        secret_value(secret, "tls.key"),
    ) {
        Ok(c) => Ok(Arc::new(c)),
        Err(e) => invalid(e.to_string()),
    }
}

/// A Secret's value for `key`: `stringData` over `data`, as the API server merges them.
fn secret_value<'s>(secret: &'s Secret, key: &str) -> &'s [u8] {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return v.as_bytes();
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.as_slice())
        .unwrap_or_default()
}

/// A content key for choosing between two Secrets of one name.
fn canonical(secret: &Secret) -> String {
    serde_json::to_string(secret).unwrap_or_default()
}

/// The validity pass (spec §5.1): expired and not-yet-valid certificates are still served,
/// with a condition on each Ingress that binds them (or on the Secret, for the default).
///
/// Not part of `translate`, which reads no clock: the publisher runs it with the current time
/// before comparing with the published configuration.
pub fn certificate_validity(translation: &mut Translation, now: SystemTime) {
    let now = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let check = |c: &Certificate| -> Option<(Reason, String)> {
        if now > c.info.not_after {
            Some((
                Reason::TlsCertificateExpired,
                format!(
                    "the certificate of Secret {} has expired; still served",
                    c.secret
                ),
            ))
        } else if now < c.info.not_before {
            Some((
                Reason::TlsCertificateNotYetValid,
                format!(
                    "the certificate of Secret {} is not valid yet; still served",
                    c.secret
                ),
            ))
        } else {
            None
        }
    };
    let tls = &translation.tls;
    let mut added = Vec::new();
    for binding in tls.bindings() {
        if let Some((reason, message)) = binding.certificate.as_deref().and_then(check) {
            added.push(Condition {
                object: ObjectRef {
                    kind: "Ingress".to_string(),
                    namespace: binding.namespace.clone(),
                    name: binding.ingress.clone(),
                },
                reason,
                message,
            });
        }
    }
    if let Some(c) = tls.default_certificate() {
        if let Some((reason, message)) = check(c) {
            let (namespace, name) = c.secret.split_once('/').unwrap_or(("", &c.secret));
            added.push(Condition {
                object: ObjectRef {
                    kind: "Secret".to_string(),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                },
                reason,
                message: format!("--default-ssl-certificate: {message}"),
            });
        }
    }
    if added.is_empty() {
        return;
    }
    translation.conditions.extend(added);
    translation.conditions.sort();
    translation.conditions.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::files::{parse_documents, Loaded};

    fn translation_at(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Translation {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let crt = params.self_signed(&key).unwrap().pem();
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t", "namespace": "ns"},
            "stringData": {"tls.crt": crt, "tls.key": key.serialize_pem()},
        });
        let ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a, namespace: ns}\nspec:\n  tls: [{hosts: [a.example], secretName: t}]\n  rules: [{host: a.example}]\n";
        let mut loaded = Loaded::default();
        parse_documents("t.yaml", &format!("{ingress}---\n{secret}\n"), &mut loaded);
        let options = Options {
            watch_without_class: true,
            ..Options::default()
        };
        super::super::translate(
            &loaded.snapshot,
            &options,
            &mut super::super::Cache::default(),
        )
    }

    #[test]
    fn data_is_read_and_string_data_wins() {
        use k8s_openapi::ByteString;
        let key = rcgen::KeyPair::generate().unwrap();
        let crt = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let mut secret = Secret {
            data: Some(
                [
                    ("tls.crt".to_string(), ByteString(crt.into_bytes())),
                    ("tls.key".to_string(), ByteString(b"garbage".to_vec())),
                ]
                .into(),
            ),
            ..Secret::default()
        };
        // `data` round-trips through YAML as base64, as manifests carry it.
        let yaml = serde_saphyr::to_string(&secret).unwrap();
        assert!(yaml.contains("LS0tLS1CRUdJTi"), "base64 in YAML: {yaml}");
        secret = serde_saphyr::from_str(&yaml).unwrap();
        let invalid = parse_secret(&secret, "ns", "s").unwrap_err();
        assert_eq!(invalid.0, Reason::TlsSecretInvalid);
        secret.string_data = Some([("tls.key".to_string(), key.serialize_pem())].into());
        let parsed = parse_secret(&secret, "ns", "s").unwrap();
        assert_eq!(parsed.info.names, ["a.example"]);
    }

    fn at(year: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs((year - 1970) * 365 * 86_400)
    }

    #[test]
    fn validity_is_judged_against_the_given_time() {
        let reasons = |mut t: Translation, now| {
            certificate_validity(&mut t, now);
            t.conditions.iter().map(|c| c.reason).collect::<Vec<_>>()
        };
        let valid = translation_at((2000, 1, 1), (2100, 1, 1));
        assert!(valid.conditions.is_empty(), "{:?}", valid.conditions);
        assert_eq!(reasons(valid.clone(), at(2050)), vec![]);
        assert_eq!(
            reasons(valid.clone(), at(2101)),
            vec![Reason::TlsCertificateExpired]
        );
        assert_eq!(
            reasons(valid, at(1999)),
            vec![Reason::TlsCertificateNotYetValid]
        );
    }
}
