//! Per-Ingress proxy annotations (load balancing, retries, timeouts, body size, backend
//! protocol, upstream TLS verification), parsed once per translate into a typed
//! [`Policy`]. Portico's `portico.dev/` spelling wins over ingress-nginx's when both are set.
//! An invalid value is an `InvalidAnnotation` condition and the controller's default applies.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;

use crate::routing::{Balance, Policy, Protocol};

pub(super) const NGINX: &str = "nginx.ingress.kubernetes.io/";
pub(super) const PORTICO: &str = "portico.dev/";

/// An Ingress in namespace `default` with these annotations (full keys): the unit tests'.
#[cfg(test)]
pub(super) fn annotated(pairs: &[(&str, &str)]) -> Ingress {
    let mut ing = Ingress::default();
    ing.metadata.namespace = Some("default".into());
    ing.metadata.annotations = Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    ing
}

/// Annotation `name`'s full key and value, Portico's spelling first (`portico.dev/NAME` wins
/// over `nginx.ingress.kubernetes.io/NAME`).
pub(super) fn annotation<'a>(ingress: &'a Ingress, name: &str) -> Option<(String, &'a str)> {
    let annotations = ingress.metadata.annotations.as_ref()?;
    [PORTICO, NGINX].into_iter().find_map(|prefix| {
        let key = format!("{prefix}{name}");
        annotations.get(&key).map(|v| (key, v.as_str()))
    })
}

/// The annotation names, without prefix; each is read as `portico.dev/NAME`, then
/// `nginx.ingress.kubernetes.io/NAME`.
pub const LOAD_BALANCE: &str = "load-balance";
pub const NEXT_UPSTREAM_TRIES: &str = "proxy-next-upstream-tries";
pub const CONNECT_TIMEOUT: &str = "proxy-connect-timeout";
pub const READ_TIMEOUT: &str = "proxy-read-timeout";
pub const SEND_TIMEOUT: &str = "proxy-send-timeout";
pub const BODY_SIZE: &str = "proxy-body-size";
pub const BACKEND_PROTOCOL: &str = "backend-protocol";
pub const PROXY_SSL_SECRET: &str = "proxy-ssl-secret";
pub const PROXY_SSL_VERIFY: &str = "proxy-ssl-verify";

/// Every annotation name Portico reads under both prefixes (`ssl-redirect` is read by
/// `tls.rs`, the error pages by `error_pages.rs`). Anything else under either prefix is
/// reported, never silently ignored.
pub(crate) const IMPLEMENTED: &[&str] = &[
    "ssl-redirect",
    super::error_pages::DEFAULT_BACKEND,
    super::error_pages::CUSTOM_HTTP_ERRORS,
    super::error_pages::DISABLE_INTERCEPT,
    super::custom_headers::CUSTOM_HEADERS,
    LOAD_BALANCE,
    NEXT_UPSTREAM_TRIES,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    SEND_TIMEOUT,
    BODY_SIZE,
    BACKEND_PROTOCOL,
    PROXY_SSL_SECRET,
    PROXY_SSL_VERIFY,
    super::rewrite::USE_REGEX,
    super::rewrite::REWRITE_TARGET,
    super::rewrite::APP_ROOT,
    super::rewrite::X_FORWARDED_PREFIX,
    super::rewrite::PRESERVE_TRAILING_SLASH,
    // Read by `redirects.rs` (issue 13: redirects, upstream Host, response rewriting).
    super::redirects::PERMANENT_REDIRECT,
    super::redirects::PERMANENT_REDIRECT_CODE,
    super::redirects::TEMPORAL_REDIRECT,
    super::redirects::TEMPORAL_REDIRECT_CODE,
    super::redirects::FORCE_SSL_REDIRECT,
    super::redirects::UPSTREAM_VHOST,
    super::redirects::PROXY_REDIRECT_FROM,
    super::redirects::PROXY_REDIRECT_TO,
    super::redirects::PROXY_COOKIE_DOMAIN,
    super::redirects::PROXY_COOKIE_PATH,
    super::redirects::SERVICE_UPSTREAM,
    super::redirects::SERVER_ALIAS,
    super::redirects::FROM_TO_WWW_REDIRECT,
    // Read by `passthrough.rs` (issue 15).
    super::passthrough::SSL_PASSTHROUGH,
    // Read by `limits.rs` (issue 14: source ranges, rate and connection limits).
    super::limits::ALLOWLIST_SOURCE_RANGE,
    super::limits::WHITELIST_SOURCE_RANGE,
    super::limits::DENYLIST_SOURCE_RANGE,
    super::limits::LIMIT_RPS,
    super::limits::LIMIT_RPM,
    super::limits::LIMIT_BURST_MULTIPLIER,
    super::limits::LIMIT_CONNECTIONS,
    super::limits::LIMIT_ALLOWLIST,
    super::limits::LIMIT_WHITELIST,
    super::limits::LIMIT_RATE,
    super::limits::LIMIT_RATE_AFTER,
    // Read by `canary.rs` (issue 14: canary Ingresses).
    super::canary::CANARY,
    super::canary::BY_HEADER,
    super::canary::BY_HEADER_VALUE,
    super::canary::BY_HEADER_PATTERN,
    super::canary::BY_COOKIE,
    super::canary::WEIGHT,
    super::canary::WEIGHT_TOTAL,
    super::canary::AFFINITY_CANARY_BEHAVIOR,
    // Read by `proxying.rs` (issue 14).
    super::proxying::ENABLE_ACCESS_LOG,
    super::proxying::NEXT_UPSTREAM,
    super::proxying::NEXT_UPSTREAM_TIMEOUT,
    super::proxying::PROXY_BUFFERING,
    super::proxying::PROXY_BUFFER_SIZE,
    super::proxying::PROXY_MAX_TEMP_FILE_SIZE,
    super::proxying::PROXY_HTTP_VERSION,
    super::proxying::PROXY_REQUEST_BUFFERING,
    super::proxying::CLIENT_BODY_BUFFER_SIZE,
    // Read by `mirror.rs` (issue 14).
    super::mirror::MIRROR_TARGET,
    super::mirror::MIRROR_HOST,
    super::mirror::MIRROR_REQUEST_BODY,
    // Read by `cors.rs` (issue 14).
    super::cors::ENABLE_CORS,
    super::cors::CORS_ALLOW_ORIGIN,
    super::cors::CORS_ALLOW_METHODS,
    super::cors::CORS_ALLOW_HEADERS,
    super::cors::CORS_EXPOSE_HEADERS,
    super::cors::CORS_ALLOW_CREDENTIALS,
    super::cors::CORS_MAX_AGE,
    // Read by `affinity.rs` (issue 14: session affinity, consistent hashing).
    super::affinity::AFFINITY,
    super::affinity::AFFINITY_MODE,
    super::affinity::COOKIE_NAME,
    super::affinity::COOKIE_PATH,
    super::affinity::COOKIE_DOMAIN,
    super::affinity::COOKIE_SAMESITE,
    super::affinity::COOKIE_CONDITIONAL_SAMESITE_NONE,
    super::affinity::COOKIE_SECURE,
    super::affinity::COOKIE_MAX_AGE,
    super::affinity::COOKIE_EXPIRES,
    super::affinity::COOKIE_CHANGE_ON_FAILURE,
    super::affinity::HASH_BY,
    super::affinity::HASH_BY_SUBSET,
    super::affinity::HASH_BY_SUBSET_SIZE,
    // Read by `basic_auth.rs` (issue 15: basic authentication).
    super::basic_auth::AUTH_TYPE,
    super::basic_auth::AUTH_SECRET,
    super::basic_auth::AUTH_SECRET_TYPE,
    super::basic_auth::AUTH_REALM,
    // Read by `client_auth.rs` (issue 15: client certificates).
    super::client_auth::AUTH_TLS_SECRET,
    super::client_auth::AUTH_TLS_VERIFY_CLIENT,
    super::client_auth::AUTH_TLS_VERIFY_DEPTH,
    super::client_auth::AUTH_TLS_ERROR_PAGE,
    super::client_auth::AUTH_TLS_PASS_CERTIFICATE,
    super::client_auth::AUTH_TLS_MATCH_CN,
    // Read by `proxy_ssl.rs` (issue 15: backend TLS).
    super::proxy_ssl::PROXY_SSL_NAME,
    super::proxy_ssl::PROXY_SSL_SERVER_NAME,
    super::proxy_ssl::PROXY_SSL_PROTOCOLS,
    super::proxy_ssl::PROXY_SSL_VERIFY_DEPTH,
    super::proxy_ssl::PROXY_SSL_CIPHERS,
    // Read by `ssl_ciphers.rs` (issue 15: per-host TLS policy).
    super::ssl_ciphers::SSL_CIPHERS,
    super::ssl_ciphers::SSL_PREFER_SERVER_CIPHERS,
    // Read by `ext_auth.rs` (issue 15: external authentication).
    super::ext_auth::AUTH_URL,
    super::ext_auth::AUTH_METHOD,
    super::ext_auth::AUTH_SIGNIN,
    super::ext_auth::AUTH_SIGNIN_REDIRECT_PARAM,
    super::ext_auth::AUTH_RESPONSE_HEADERS,
    super::ext_auth::AUTH_REQUEST_REDIRECT,
    super::ext_auth::AUTH_ALWAYS_SET_COOKIE,
    super::ext_auth::AUTH_PROXY_SET_HEADERS,
    super::ext_auth::AUTH_KEEPALIVE,
    super::ext_auth::AUTH_KEEPALIVE_REQUESTS,
    super::ext_auth::AUTH_KEEPALIVE_TIMEOUT,
    super::ext_auth::AUTH_KEEPALIVE_SHARE_VARS,
    super::ext_auth::ENABLE_GLOBAL_AUTH,
    super::ext_auth::AUTH_CACHE_KEY,
    super::ext_auth::AUTH_CACHE_DURATION,
];

/// ingress-nginx annotations that switch on access control Portico does not enforce. Since
/// issues 14 and 15 every one is enforced (basic and external authentication, client
/// certificates, source ranges: each module fails closed on what it cannot use), so the list is
/// empty; an access-control annotation ingress-nginx adds later belongs here until it is
/// enforced: an Ingress carrying one fails closed, its paths answering 503 rather than serving
/// without the protection its author asked for (`shared/spec/ingress-nginx.md` §3).
pub(crate) const ACCESS_CONTROL: &[&str] = &[];

/// The annotations of one Ingress that Portico does not implement, by what happens to them.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Unimplemented {
    /// Access control: the Ingress's paths answer 503 (fail closed).
    pub blocking: Vec<String>,
    /// `*-snippet`: nginx configuration text, never interpreted.
    pub snippets: Vec<String>,
    /// Everything else under either prefix: ignored, with a warning.
    pub ignored: Vec<String>,
}

impl Unimplemented {
    pub fn blocks(&self) -> bool {
        !self.blocking.is_empty()
    }
}

/// Sorts the Ingress's `portico.dev/` and `nginx.ingress.kubernetes.io/` annotations that no
/// part of translate reads (full keys, in key order, so conditions are deterministic).
pub(super) fn unimplemented(ingress: &Ingress) -> Unimplemented {
    let mut found = Unimplemented::default();
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return found;
    };
    for key in annotations.keys() {
        let Some(name) = key
            .strip_prefix(PORTICO)
            .or_else(|| key.strip_prefix(NGINX))
        else {
            continue;
        };
        if IMPLEMENTED.contains(&name) {
            continue;
        }
        if ACCESS_CONTROL.contains(&name) {
            found.blocking.push(key.clone());
        } else if name.ends_with("-snippet") {
            found.snippets.push(key.clone());
        } else {
            found.ignored.push(key.clone());
        }
    }
    found
}

/// Whether annotation `key` names a Secret that [`policy`] reads.
pub(super) fn reads_secret(key: &str) -> bool {
    key.strip_prefix(PORTICO)
        .or_else(|| key.strip_prefix(NGINX))
        .is_some_and(|name| {
            name == PROXY_SSL_SECRET
                || name == super::basic_auth::AUTH_SECRET
                || name == super::client_auth::AUTH_TLS_SECRET
        })
}

/// Most attempts an annotation may ask for.
const MAX_TRIES: u32 = 10;

/// ingress-nginx: 0 tries means "no limit"; Portico bounds it, and any number, at 10.
pub(super) fn bounded_tries(n: u32) -> u32 {
    if n == 0 {
        MAX_TRIES
    } else {
        n.min(MAX_TRIES)
    }
}

/// The Ingress's policy and one message per invalid annotation.
pub(super) fn policy(
    ingress: &Ingress,
    secrets: &[std::sync::Arc<Secret>],
) -> (Policy, Vec<String>) {
    let mut policy = Policy::default();
    let mut errors = Vec::new();
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return (policy, errors);
    };
    if !annotations
        .keys()
        .any(|k| k.starts_with(PORTICO) || k.starts_with(NGINX))
    {
        return (policy, errors);
    }
    let get = |name: &str| -> Option<(String, &String)> {
        for prefix in [PORTICO, NGINX] {
            let key = format!("{prefix}{name}");
            if let Some(v) = annotations.get(&key) {
                return Some((key, v));
            }
        }
        None
    };
    let mut invalid = |key: &str, value: &str, why: &str| {
        errors.push(format!(
            "annotation {key}: {value:?} {why}; using the default"
        ));
    };

    if let Some((key, value)) = get(LOAD_BALANCE) {
        match value.trim().to_ascii_lowercase().as_str() {
            "round_robin" | "round-robin" => policy.balance = Some(Balance::RoundRobin),
            "ewma" => policy.balance = Some(Balance::Ewma),
            other => invalid(&key, value, super::affinity::refused_balance(other)),
        }
    }
    if let Some((key, value)) = get(NEXT_UPSTREAM_TRIES) {
        // ingress-nginx takes any number (e2e annotations/proxy.go "should build proxy next
        // upstream" sets 888888); Portico bounds it at 10.
        match value.trim().parse::<u32>() {
            Ok(n) => policy.tries = Some(bounded_tries(n)),
            _ => invalid(&key, value, "is not a whole number of tries"),
        }
    }
    for (name, slot) in [
        (CONNECT_TIMEOUT, &mut policy.connect_timeout),
        (READ_TIMEOUT, &mut policy.response_timeout),
        (SEND_TIMEOUT, &mut policy.send_timeout),
    ] {
        if let Some((key, value)) = get(name) {
            match parse_timeout(value) {
                Some(d) => *slot = Some(d),
                None => invalid(&key, value, "is not a duration (60, 60s, 500ms, 2m)"),
            }
        }
    }
    if let Some((key, value)) = get(BODY_SIZE) {
        match parse_size(value) {
            Some(n) => policy.body_limit = Some(n),
            None => invalid(&key, value, "is not a size (0, 512k, 1m, 8m, 1g)"),
        }
    }
    if let Some((key, value)) = get(BACKEND_PROTOCOL) {
        match Protocol::parse(value) {
            Some(p) => policy.protocol = Some(p),
            None => invalid(&key, value, "is not one of HTTP, HTTPS, H2C, GRPC, GRPCS"),
        }
    }
    // `proxy-ssl-*` (issue 15: backend TLS).
    policy.upstream_tls = super::proxy_ssl::parse(&get, &mut invalid, ingress, secrets);
    // issue 13: regex paths and rewrites.
    policy.rewrite = super::rewrite::parse(&get, &mut invalid);
    // issue 14: CORS.
    policy.cors = super::cors::parse(&get, &mut invalid);
    super::proxying::parse(&get, &mut invalid, &mut policy);
    policy.mirror = super::mirror::parse(&get, &mut invalid);
    // issue 14: affinity and hashing are the Service's (`affinity::Scope`); reported here.
    super::affinity::parse(ingress, &mut invalid);
    (policy, errors)
}

/// nginx time syntax: a bare number is seconds; otherwise humantime (`5s`, `500ms`, `1m`).
/// Zero is refused (it would fail every request).
pub fn parse_timeout(value: &str) -> Option<Duration> {
    let value = value.trim();
    let d = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(value).ok()?,
    };
    (!d.is_zero()).then_some(d)
}

/// nginx size syntax: bytes, or a number with `k`, `m` or `g` (powers of 1024); `0` is no
/// limit.
pub fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim().to_ascii_lowercase();
    let (digits, unit) = match value.as_bytes().last()? {
        b'k' => (&value[..value.len() - 1], 1u64 << 10),
        b'm' => (&value[..value.len() - 1], 1 << 20),
        b'g' => (&value[..value.len() - 1], 1 << 30),
        _ => (value.as_str(), 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_nginx() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("8k"), Some(8192));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_size("1.5m"), None);
    }

    #[test]
    fn timeouts_take_bare_seconds_or_units() {
        assert_eq!(parse_timeout("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_timeout("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout("0"), None);
        assert_eq!(parse_timeout("soon"), None);
    }

    fn ingress(pairs: &[(&str, &str)]) -> Ingress {
        annotated(pairs)
    }

    #[test]
    fn portico_spelling_wins_and_invalid_values_are_reported() {
        let (p, errors) = policy(
            &ingress(&[
                ("portico.dev/load-balance", "ewma"),
                ("nginx.ingress.kubernetes.io/load-balance", "round_robin"),
                ("nginx.ingress.kubernetes.io/proxy-next-upstream-tries", "2"),
                ("portico.dev/proxy-body-size", "lots"),
                ("nginx.ingress.kubernetes.io/backend-protocol", "grpc"),
            ]),
            &[],
        );
        assert_eq!(p.balance, Some(Balance::Ewma));
        assert_eq!(p.tries, Some(2));
        assert_eq!(p.body_limit, None);
        assert_eq!(p.protocol, Some(Protocol::Grpc));
        assert_eq!(errors.len(), 1, "{errors:?}");
    }
}
