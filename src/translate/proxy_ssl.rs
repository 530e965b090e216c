//! ingress-nginx's backend TLS annotations (`proxy-ssl-*`, issue 15), typed once per
//! translate into the [`UpstreamTls`] of the Ingress's policy; `proxy::upstream_tls` builds
//! the rustls client from it.
//!
//! - `proxy-ssl-secret`: `ca.crt` verifies the upstream (with `proxy-ssl-verify: on`, or
//!   always under Portico's own spelling, as before); `tls.crt` + `tls.key`, when the Secret
//!   has both, are the client certificate shown to the upstream (nginx
//!   `proxy_ssl_certificate`), verified or not.
//! - `proxy-ssl-name`, `proxy-ssl-server-name`, `proxy-ssl-protocols`,
//!   `proxy-ssl-verify-depth`, `proxy-ssl-ciphers`: see `docs/annotations.md`.
//!
//! Invalid values are `InvalidAnnotation` conditions and the default applies, except a
//! `proxy-ssl-secret` that names no usable Secret: the Ingress fails closed (`denied`), as
//! ingress-nginx denies its locations.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::{PORTICO, PROXY_SSL_SECRET, PROXY_SSL_VERIFY};
use crate::routing::UpstreamTls;

pub const PROXY_SSL_NAME: &str = "proxy-ssl-name";
pub const PROXY_SSL_SERVER_NAME: &str = "proxy-ssl-server-name";
pub const PROXY_SSL_PROTOCOLS: &str = "proxy-ssl-protocols";
pub const PROXY_SSL_VERIFY_DEPTH: &str = "proxy-ssl-verify-depth";
pub const PROXY_SSL_CIPHERS: &str = "proxy-ssl-ciphers";

/// The Ingress's upstream TLS settings; `None` when it sets none (or none usable).
pub(super) fn parse<'a>(
    get: &dyn Fn(&str) -> Option<(String, &'a String)>,
    invalid: &mut dyn FnMut(&str, &str, &str),
    ingress: &Ingress,
    secrets: &[Arc<Secret>],
) -> Option<UpstreamTls> {
    let mut tls = UpstreamTls::default();
    let verify = match get(PROXY_SSL_VERIFY) {
        None => None,
        Some((key, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "on" | "true" => Some(true),
            "off" | "false" => Some(false),
            _ => {
                invalid(&key, value, "is neither \"on\" nor \"off\"");
                None
            }
        },
    };
    if let Some((key, value)) = get(PROXY_SSL_SECRET) {
        // Portico's own annotation verifies by itself; ingress-nginx's needs verify=on.
        let wanted = verify.unwrap_or(key.starts_with(PORTICO));
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        // A Secret that is missing or unusable is reported by `denied` (the Ingress fails
        // closed).
        if let Ok(found) = from_secret(value, namespace, secrets) {
            tls.secret = found.secret;
            tls.client_pem = found.client_pem;
            if wanted {
                match found.ca_pem {
                    Some(ca) => tls.ca_pem = ca,
                    None => invalid(&key, value, "names a Secret without ca.crt"),
                }
            }
        }
    }
    if let Some((key, value)) = get(PROXY_SSL_NAME) {
        let name = value.trim();
        match rustls::pki_types::ServerName::try_from(name.to_string()) {
            Ok(_) if !name.is_empty() => tls.name = Some(name.to_string()),
            _ => invalid(&key, value, "is not a DNS name or IP address"),
        }
    }
    if let Some((key, value)) = get(PROXY_SSL_SERVER_NAME) {
        match value.trim() {
            "on" => tls.server_name = Some(true),
            "off" => tls.server_name = Some(false),
            _ => invalid(&key, value, "is neither \"on\" nor \"off\""),
        }
    }
    if let Some((key, value)) = get(PROXY_SSL_PROTOCOLS) {
        // ingress-nginx accepts `TLSv1.2` and `TLSv1.3`, space separated; older versions are
        // not offered by rustls at all.
        let mut v12 = false;
        let mut v13 = false;
        let mut bad = false;
        for word in value.split_whitespace() {
            match word {
                "TLSv1.2" => v12 = true,
                "TLSv1.3" => v13 = true,
                _ => bad = true,
            }
        }
        if bad || !(v12 || v13) {
            invalid(
                &key,
                value,
                "lists something other than TLSv1.2 and TLSv1.3 (the only versions rustls speaks)",
            );
        } else if v12 != v13 {
            tls.tls13_only = Some(v13);
        }
    }
    if let Some((key, value)) = get(PROXY_SSL_VERIFY_DEPTH) {
        match value.trim().parse::<u32>() {
            Ok(0) => tls.verify_depth = Some(1),
            Ok(n) => tls.verify_depth = Some(n),
            Err(_) => invalid(&key, value, "is not a number"),
        }
    }
    if let Some((key, value)) = get(PROXY_SSL_CIPHERS) {
        // nginx's default `DEFAULT` is rustls's own suites. Otherwise the TLS 1.2 suites
        // named, by the `ssl-ciphers` mapping; a name rustls does not implement makes the whole
        // list fall back to the default suites (all AEAD with forward secrecy: never weaker).
        // TLS 1.3 suites are not restricted (nginx's `proxy_ssl_ciphers` does not either).
        let value_trimmed = value.trim();
        if value_trimmed != "DEFAULT" {
            let (suites, refused) = crate::routing::tls_policy::ciphers(value_trimmed);
            if !refused.is_empty() {
                invalid(
                    &key,
                    value,
                    &format!(
                        "lists {} (not implemented by rustls: only ECDHE with AES-GCM or \
                         CHACHA20-POLY1305)",
                        refused.join(", ")
                    ),
                );
            } else if suites.is_empty() {
                invalid(&key, value, "names no cipher suite");
            } else {
                tls.ciphers = Some(
                    suites
                        .into_iter()
                        .filter_map(crate::routing::tls_policy::openssl_name)
                        .collect(),
                );
            }
        }
    }
    (tls != UpstreamTls::default()).then_some(tls)
}

/// Why the Ingress fails closed, if its `proxy-ssl-secret` names a Secret that is missing, in
/// another namespace, or holds neither a usable `ca.crt` nor a usable `tls.crt`/`tls.key` pair.
/// ingress-nginx `proxyssl/main.go` answers these with `NewLocationDenied` /
/// `LocationDeniedError` (the store's `GetAuthCertificate` fails), and nginx answers 503 for a
/// denied location; Portico does the same rather than talk to the backend without the
/// certificate (or the verification) its author asked for.
pub(super) fn denied(ingress: &Ingress, secrets: &[Arc<Secret>]) -> Option<String> {
    let annotations = ingress.metadata.annotations.as_ref()?;
    let (key, value) = [PORTICO, super::annotations::NGINX]
        .into_iter()
        .find_map(|prefix| {
            let key = format!("{prefix}{PROXY_SSL_SECRET}");
            annotations.get(&key).map(|v| (key, v))
        })?;
    let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let why = match from_secret(value, namespace, secrets) {
        Err(why) => why,
        Ok(found) => match found.client_problem {
            Some(problem) => problem,
            None if found.ca_pem.is_none() && found.client_pem.is_none() => {
                "names a Secret with neither ca.crt nor tls.crt and tls.key".to_string()
            }
            None => return None,
        },
    };
    Some(format!(
        "annotation {key}: {value:?} {why}; every path of this Ingress answers 503 (ingress-nginx \
         denies the location) rather than proxying without it"
    ))
}

/// What a `proxy-ssl-secret` Secret holds.
struct Found {
    secret: String,
    ca_pem: Option<Vec<u8>>,
    client_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// `tls.crt`/`tls.key` present but unusable.
    client_problem: Option<String>,
}

/// `namespace/name` (or `name` in the Ingress's namespace). Only the Ingress's own namespace
/// is allowed, like TLS Secrets (spec §5.1).
fn from_secret(value: &str, namespace: &str, secrets: &[Arc<Secret>]) -> Result<Found, String> {
    let (ns, name) = match value.trim().split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace, value.trim()),
    };
    if ns != namespace {
        return Err("names a Secret in another namespace".to_string());
    }
    let secret = secrets
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })
        .ok_or_else(|| "names no Secret".to_string())?;
    let ca_pem = match entry(secret, "ca.crt") {
        None => None,
        Some(ca) if has_pem_certificate(ca) => Some(ca.to_vec()),
        Some(_) => return Err("names a Secret whose ca.crt holds no PEM certificate".to_string()),
    };
    let mut client_pem = None;
    let mut client_problem = None;
    if let (Some(crt), Some(key)) = (entry(secret, "tls.crt"), entry(secret, "tls.key")) {
        match crate::tls::client_certificate(crt, key) {
            Ok(_) => client_pem = Some((crt.to_vec(), key.to_vec())),
            Err(why) => {
                client_problem = Some(format!(
                    "names a Secret whose tls.crt/tls.key are unusable ({why})"
                ))
            }
        }
    }
    Ok(Found {
        secret: format!("{ns}/{name}"),
        ca_pem,
        client_pem,
        client_problem,
    })
}

fn has_pem_certificate(pem: &[u8]) -> bool {
    pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----")
}

/// A Secret's value for `key`: `stringData` over `data`, as the API server merges them.
fn entry<'s>(secret: &'s Secret, key: &str) -> Option<&'s [u8]> {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.as_bytes());
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.as_slice())
}
