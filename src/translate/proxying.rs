//! ingress-nginx's retry, buffering and access-log annotations (issue 14), typed at translate
//! time into the Ingress's policy, and their controller ConfigMap forms into `Global`.
//!
//! Source: ingress-nginx `internal/ingress/annotations/proxy/main.go` (names, validators),
//! `internal/ingress/annotations/log/main.go` (`enable-access-log`),
//! `internal/ingress/controller/template/template.go` (`buildNextUpstream`: the ConfigMap's
//! `retry-non-idempotent` adds `non_idempotent` to every location's list).
//!
//! `proxy-buffering`, `proxy-buffer-size` and `proxy-max-temp-file-size` are validated and
//! accepted without effect: Portico streams responses in bounded memory and writes no
//! temporary files (docs/annotations.md says what each means for Portico).

use std::time::Duration;

use super::annotations::parse_size;
use super::rewrite::{parse_bool, shorten};
use crate::routing::{Global, NextUpstream, Policy};

/// The annotation names, without prefix.
pub const ENABLE_ACCESS_LOG: &str = "enable-access-log";
pub const NEXT_UPSTREAM: &str = "proxy-next-upstream";
pub const NEXT_UPSTREAM_TIMEOUT: &str = "proxy-next-upstream-timeout";
pub const PROXY_BUFFERING: &str = "proxy-buffering";
pub const PROXY_BUFFER_SIZE: &str = "proxy-buffer-size";
pub const PROXY_MAX_TEMP_FILE_SIZE: &str = "proxy-max-temp-file-size";
pub const PROXY_HTTP_VERSION: &str = "proxy-http-version";
pub const PROXY_REQUEST_BUFFERING: &str = "proxy-request-buffering";
pub const CLIENT_BODY_BUFFER_SIZE: &str = "client-body-buffer-size";

const CONDITIONS: &str = "is not a list of error, timeout, invalid_header, http_500, http_502, http_503, http_504, http_403, http_404, http_429, non_idempotent or off";

/// Fills the policy fields of this module from the Ingress's annotations.
pub(super) fn parse<'a>(
    get: &dyn Fn(&str) -> Option<(String, &'a String)>,
    invalid: &mut dyn FnMut(&str, &str, &str),
    policy: &mut Policy,
) {
    let mut invalid = |key: &str, value: &str, why: &str| invalid(key, &shorten(value), why);
    if let Some((key, value)) = get(ENABLE_ACCESS_LOG) {
        match parse_bool(value.trim()) {
            Some(on) => policy.no_access_log = !on,
            None => invalid(&key, value, "is neither \"true\" nor \"false\""),
        }
    }
    if let Some((key, value)) = get(NEXT_UPSTREAM) {
        match NextUpstream::parse(value) {
            Some(n) => policy.next_upstream = Some(n),
            None => invalid(&key, value, CONDITIONS),
        }
    }
    if let Some((key, value)) = get(NEXT_UPSTREAM_TIMEOUT) {
        match value.trim().parse::<u64>() {
            Ok(secs) => policy.next_upstream_timeout = Some(Duration::from_secs(secs)),
            Err(_) => invalid(&key, value, "is not a whole number of seconds"),
        }
    }
    if let Some((key, value)) = get(PROXY_HTTP_VERSION) {
        match http10(value) {
            Some(b) => policy.upstream_http10 = Some(b),
            None => invalid(&key, value, "is neither \"1.0\" nor \"1.1\""),
        }
    }
    if let Some((key, value)) = get(PROXY_REQUEST_BUFFERING) {
        match on(value) {
            Some(b) => policy.request_buffering = Some(b),
            None => invalid(&key, value, "is neither \"on\" nor \"off\""),
        }
    }
    if let Some((key, value)) = get(PROXY_BUFFERING) {
        if !on_off(value) {
            invalid(&key, value, "is neither \"on\" nor \"off\"");
        }
    }
    for name in [
        PROXY_BUFFER_SIZE,
        PROXY_MAX_TEMP_FILE_SIZE,
        CLIENT_BODY_BUFFER_SIZE,
    ] {
        if let Some((key, value)) = get(name) {
            if parse_size(value).is_none() {
                invalid(&key, value, "is not a size (4k, 8k, 1m)");
            }
        }
    }
}

/// `1.0` → true, `1.1` → false (ingress-nginx `ValidateOptions(["1.0", "1.1"])`).
fn http10(value: &str) -> Option<bool> {
    match value.trim() {
        "1.0" => Some(true),
        "1.1" => Some(false),
        _ => None,
    }
}

fn on_off(value: &str) -> bool {
    on(value).is_some()
}

/// `on` → true, `off` → false, any case (ingress-nginx `ValidateOptions(["on", "off"])`).
fn on(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// The ConfigMap keys of this module into `global`; `invalid(key, value, why)` reports one.
pub(super) fn from_configmap(
    data: &std::collections::BTreeMap<String, String>,
    global: &mut Global,
    invalid: &mut dyn FnMut(&str, &str, &str),
) {
    let get = |key: &str| data.get(key).map(String::as_str);
    if let Some(v) = get("proxy-next-upstream") {
        match NextUpstream::parse(v) {
            Some(n) => global.proxy_next_upstream = Some(n),
            None => invalid("proxy-next-upstream", v, CONDITIONS),
        }
    }
    if let Some(v) = get("proxy-next-upstream-timeout") {
        match v.trim().parse::<u64>() {
            Ok(secs) => global.proxy_next_upstream_timeout = Some(Duration::from_secs(secs)),
            Err(_) => invalid(
                "proxy-next-upstream-timeout",
                v,
                "is not a whole number of seconds",
            ),
        }
    }
    if let Some(v) = get("proxy-next-upstream-tries") {
        match v.trim().parse::<u32>() {
            Ok(n) => global.proxy_next_upstream_tries = Some(super::annotations::bounded_tries(n)),
            Err(_) => invalid(
                "proxy-next-upstream-tries",
                v,
                "is not a whole number of tries",
            ),
        }
    }
    if let Some(v) = get("retry-non-idempotent") {
        match parse_bool(v.trim()) {
            Some(b) => global.retry_non_idempotent = b,
            None => invalid("retry-non-idempotent", v, "is not a boolean"),
        }
    }
    if let Some(v) = get("proxy-http-version") {
        match http10(v) {
            Some(b) => global.proxy_http10 = Some(b),
            None => invalid("proxy-http-version", v, "is neither \"1.0\" nor \"1.1\""),
        }
    }
    if let Some(v) = get("proxy-buffering") {
        if !on_off(v) {
            invalid("proxy-buffering", v, "is neither \"on\" nor \"off\"");
        }
    }
    if let Some(v) = get("proxy-request-buffering") {
        match on(v) {
            Some(b) => global.proxy_request_buffering = Some(b),
            None => invalid(
                "proxy-request-buffering",
                v,
                "is neither \"on\" nor \"off\"",
            ),
        }
    }
    for key in [
        "proxy-buffer-size",
        "client-body-buffer-size",
        "proxy-max-temp-file-size",
    ] {
        if let Some(v) = get(key) {
            if parse_size(v).is_none() {
                invalid(key, v, "is not a size (4k, 8k, 1m)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(pairs: &[(&str, &str)]) -> (Policy, Vec<String>) {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), v.to_string()))
            .collect();
        let get = |name: &str| {
            let key = format!("nginx.ingress.kubernetes.io/{name}");
            map.get(&key).map(|v| (key, v))
        };
        let mut errors = Vec::new();
        let mut policy = Policy::default();
        parse(
            &get,
            &mut |k, v, why| errors.push(format!("{k} {v} {why}")),
            &mut policy,
        );
        (policy, errors)
    }

    #[test]
    fn retry_and_log_annotations_are_typed() {
        let (p, errors) = run(&[
            ("enable-access-log", "false"),
            ("proxy-next-upstream", "error http_502"),
            ("proxy-next-upstream-timeout", "7"),
            ("proxy-buffering", "on"),
            ("proxy-buffer-size", "8k"),
            ("proxy-max-temp-file-size", "1024m"),
            ("proxy-http-version", "1.0"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(p.no_access_log);
        assert_eq!(p.upstream_http10, Some(true));
        assert_eq!(p.next_upstream, NextUpstream::parse("error http_502"));
        assert_eq!(p.next_upstream_timeout, Some(Duration::from_secs(7)));
    }

    /// e2e annotations/proxy.go "should build proxy next upstream": the three annotations as
    /// that test writes them are all taken (the tries bounded at 10).
    #[test]
    fn e2e_next_upstream_values_are_taken() {
        let (p, errors) = run(&[
            ("proxy-next-upstream", "error timeout http_502"),
            ("proxy-next-upstream-timeout", "999999"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            p.next_upstream.unwrap().to_string(),
            "error timeout http_502"
        );
        assert_eq!(p.next_upstream_timeout, Some(Duration::from_secs(999_999)));
        assert_eq!(super::super::annotations::bounded_tries(888_888), 10);
        assert_eq!(super::super::annotations::bounded_tries(0), 10);
        assert_eq!(super::super::annotations::bounded_tries(3), 3);
    }

    #[test]
    fn configmap_keys_fill_global() {
        let data: BTreeMap<String, String> = [
            ("proxy-next-upstream", "error http_503 non_idempotent"),
            ("proxy-next-upstream-timeout", "0"),
            ("proxy-next-upstream-tries", "5"),
            ("retry-non-idempotent", "true"),
            ("proxy-buffering", "off"),
            ("proxy-buffer-size", "16k"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut global = Global::default();
        let mut errors = Vec::new();
        from_configmap(&data, &mut global, &mut |k, v, why| {
            errors.push(format!("{k} {v} {why}"))
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert!(global
            .proxy_next_upstream
            .is_some_and(|n| n.retries_status(503) && n.any(NextUpstream::NON_IDEMPOTENT)));
        assert_eq!(global.proxy_next_upstream_timeout, Some(Duration::ZERO));
        assert_eq!(global.proxy_next_upstream_tries, Some(5));
        assert!(global.retry_non_idempotent);
        let data: BTreeMap<String, String> = [("proxy-next-upstream", "sometimes")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_configmap(&data, &mut global, &mut |k, v, why| {
            errors.push(format!("{k} {v} {why}"))
        });
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn invalid_values_are_reported_and_ignored() {
        let (p, errors) = run(&[
            ("enable-access-log", "nope"),
            ("proxy-next-upstream", "error http_501"),
            ("proxy-next-upstream-timeout", "5s"),
            ("proxy-buffering", "maybe"),
            ("proxy-buffer-size", "big"),
            ("proxy-http-version", "2.0"),
        ]);
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(p.is_default());
    }
}
