//! ingress-nginx's client-certificate annotations (`auth-tls-*`, issue 15), typed once per
//! translate into a [`ClientAuth`] for the Ingress's hosts (ingress-nginx puts them on the
//! nginx `server`: the oldest Ingress of a host that sets them decides for the whole host).
//!
//! Access control fails closed (`ingress-nginx.md` §3): a missing or unusable Secret, CA
//! bundle or CRL, an unsupported error page, an invalid `auth-tls-match-cn` or
//! `auth-tls-pass-certificate-to-upstream` make the Ingress's paths answer 503 (ingress-nginx
//! denies the location for the first ones and rejects the annotation for the others).
//! `auth-tls-verify-client` and `auth-tls-verify-depth` fall back to their defaults (`on`,
//! 1), as in ingress-nginx.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::annotation;
use crate::routing::client_auth::{ClientAuth, ClientAuthSpec, VerifyClient};

pub const AUTH_TLS_SECRET: &str = "auth-tls-secret";
pub const AUTH_TLS_VERIFY_CLIENT: &str = "auth-tls-verify-client";
pub const AUTH_TLS_VERIFY_DEPTH: &str = "auth-tls-verify-depth";
pub const AUTH_TLS_ERROR_PAGE: &str = "auth-tls-error-page";
pub const AUTH_TLS_PASS_CERTIFICATE: &str = "auth-tls-pass-certificate-to-upstream";
pub const AUTH_TLS_MATCH_CN: &str = "auth-tls-match-cn";

/// What the annotations of one Ingress ask for.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub auth: Option<Arc<ClientAuth>>,
    /// Invalid values replaced by their defaults (`InvalidAnnotation`).
    pub invalid: Vec<String>,
    /// Why the Ingress fails closed, if it does.
    pub denied: Option<String>,
}

/// Reads the Ingress's `auth-tls-*` annotations (Portico's spelling wins).
pub(super) fn parse(ingress: &Ingress, secrets: &[Arc<Secret>]) -> Parsed {
    let mut parsed = Parsed::default();
    let get = |name: &str| annotation(ingress, name);
    let Some((secret_key, secret_value)) = get(AUTH_TLS_SECRET) else {
        return parsed;
    };
    let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let deny = |key: &str, value: &str, why: &str| {
        Some(format!(
            "annotation {key}: {value:?} {why}; every path of this Ingress answers 503 rather \
             than serving without the client certificate check"
        ))
    };

    let verify = match get(AUTH_TLS_VERIFY_CLIENT) {
        None => VerifyClient::On,
        Some((key, value)) => VerifyClient::parse(value).unwrap_or_else(|| {
            parsed.invalid.push(format!(
                "annotation {key}: {value:?} is not one of on, off, optional, optional_no_ca; \
                 using \"on\""
            ));
            VerifyClient::On
        }),
    };
    let depth = match get(AUTH_TLS_VERIFY_DEPTH) {
        None => 1,
        Some((key, value)) => match value.trim().parse::<u32>() {
            // ingress-nginx: 0 means the default.
            Ok(0) => 1,
            Ok(n) => n,
            Err(_) => {
                parsed.invalid.push(format!(
                    "annotation {key}: {value:?} is not a number; using 1"
                ));
                1
            }
        },
    };
    let error_page = match get(AUTH_TLS_ERROR_PAGE) {
        None => None,
        Some((key, value)) => match error_page(value) {
            Ok(url) => Some(url),
            Err(why) => {
                parsed.denied = deny(&key, value, why);
                return parsed;
            }
        },
    };
    let pass_certificate = match get(AUTH_TLS_PASS_CERTIFICATE) {
        None => false,
        Some((key, value)) => match value.trim() {
            "true" => true,
            "false" => false,
            _ => {
                parsed.denied = deny(&key, value, "is neither \"true\" nor \"false\"");
                return parsed;
            }
        },
    };
    let match_cn = match get(AUTH_TLS_MATCH_CN) {
        None => None,
        Some((key, value)) => match match_cn(value) {
            Ok(r) => Some(r),
            Err(why) => {
                parsed.denied = deny(&key, value, &why);
                return parsed;
            }
        },
    };
    let (ns, name) = match secret_value.trim().split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace, secret_value.trim()),
    };
    if ns != namespace {
        // ingress-nginx: "cross namespace secrets are not supported".
        parsed.denied = deny(
            &secret_key,
            secret_value,
            "names a Secret in another namespace",
        );
        return parsed;
    }
    let secret = secrets.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
    });
    let Some(secret) = secret else {
        parsed.denied = deny(&secret_key, secret_value, "names no Secret");
        return parsed;
    };
    let Some(ca) = value(secret, "ca.crt") else {
        parsed.denied = deny(&secret_key, secret_value, "names a Secret without ca.crt");
        return parsed;
    };
    let spec = ClientAuthSpec {
        secret: format!("{ns}/{name}"),
        ca_pem: ca,
        crl_pem: value(secret, "ca.crl"),
        verify,
        depth,
        error_page,
        pass_certificate,
        match_cn,
    };
    match ClientAuth::new(spec) {
        Ok(auth) => parsed.auth = Some(Arc::new(auth)),
        Err(why) => {
            parsed.denied = deny(
                &secret_key,
                secret_value,
                &format!("names a Secret whose {why}"),
            )
        }
    }
    parsed
}

/// A Secret's value for `key`: `stringData` over `data`, as the API server merges them.
fn value<'s>(secret: &'s Secret, key: &str) -> Option<&'s [u8]> {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.as_bytes());
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.as_slice())
}

/// `auth-tls-error-page`: nginx's `error_page 495 496 = URL` answers a 302 to an absolute
/// URL; a path or a named location would be an internal redirect, which Portico does not do.
fn error_page(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("is not an absolute http:// or https:// URL (the only form Portico supports)")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || http::HeaderValue::from_str(value).is_err() || value.contains(' ') {
        return Err("is not a usable URL");
    }
    value
        .parse::<http::Uri>()
        .map_err(|_| "is not a usable URL")?;
    Ok(value.to_string())
}

/// `auth-tls-match-cn`: must start with `CN=` (ingress-nginx `CommonNameAnnotationValidator`);
/// the whole value is the regex nginx matches against `$ssl_client_s_dn` (unanchored,
/// case-sensitive), compiled with Rust's `regex` (PCRE-only constructs named and refused).
fn match_cn(value: &str) -> Result<regex::Regex, String> {
    if !value.starts_with("CN=") {
        return Err("does not start with \"CN=\"".to_string());
    }
    crate::routing::compile_regex(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_must_be_absolute_urls() {
        assert_eq!(
            error_page("http://example.com/error").as_deref(),
            Ok("http://example.com/error")
        );
        assert!(error_page("https://example.com:8443/x?y=1").is_ok());
        assert!(error_page("/error").is_err());
        assert!(error_page("@named").is_err());
        assert!(error_page("http:///nohost").is_err());
        assert!(error_page("http://a b").is_err());
    }

    #[test]
    fn match_cn_needs_the_prefix_and_a_rust_regex() {
        assert!(match_cn("CN=(a|b)").unwrap().is_match("O=x,CN=b"));
        assert!(match_cn("(a|b)").is_err());
        let lookaround = match_cn("CN=(?!admin)").unwrap_err();
        assert!(lookaround.contains("look-around"), "{lookaround}");
        assert!(match_cn("CN=(\\w+)\\1")
            .unwrap_err()
            .contains("backreference"));
    }
}
