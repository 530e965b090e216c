//! The controller ConfigMap (`--configmap`, `ingress-nginx.md` §4): its `data` parsed into a
//! typed [`Global`] at translate time, published with the table. Each invalid value is a
//! condition on the ConfigMap and the default applies; keys Portico does not implement are
//! listed in one warning. Keys behave as ingress-nginx's
//! `docs/user-guide/nginx-configuration/configmap.md` says.

use std::collections::BTreeMap;

use std::time::Duration;

use crate::routing::{hsts_value, Cidr, Global, HeaderBuffers, HSTS_MAX_AGE};
use crate::source::Snapshot;

use super::{Condition, ObjectRef, Options, Reason};

/// The keys Portico implements, sorted. Keys other modules parse from [`Global::data`] are
/// added here by those modules' owners when they wire their `from_configmap`.
pub const IMPLEMENTED: &[&str] = &[
    "add-headers",
    "allow-snippet-annotations",
    "block-cidrs",
    "block-referers",
    "block-user-agents",
    "brotli-level",
    "brotli-min-length",
    "brotli-types",
    "client-body-buffer-size",
    "compute-full-forwarded-for",
    "custom-http-errors",
    "default-ssl-certificate",
    "denylist-source-range",
    "enable-brotli",
    "enable-real-ip",
    "force-ssl-redirect",
    "forwarded-for-header",
    "generate-request-id",
    "global-allowed-response-headers",
    "global-auth-always-set-cookie",
    "global-auth-cache-duration",
    "global-auth-cache-key",
    "global-auth-method",
    "global-auth-request-redirect",
    "global-auth-response-headers",
    "global-auth-signin",
    "global-auth-signin-redirect-param",
    "global-auth-url",
    "gzip-level",
    "gzip-min-length",
    "gzip-types",
    "hsts",
    "hsts-include-subdomains",
    "hsts-max-age",
    "hsts-preload",
    "http-redirect-code",
    "keep-alive",
    "keep-alive-requests",
    "large-client-header-buffers",
    "limit-conn-status-code",
    "limit-rate",
    "limit-rate-after",
    "limit-req-status-code",
    "load-balance",
    "log-format-escape-json",
    "log-format-escape-none",
    "log-format-upstream",
    "no-auth-locations",
    "proxy-body-size",
    "proxy-buffer-size",
    "proxy-buffering",
    "proxy-connect-timeout",
    "proxy-http-version",
    "proxy-max-temp-file-size",
    "proxy-request-buffering",
    "proxy-next-upstream",
    "proxy-next-upstream-timeout",
    "proxy-next-upstream-tries",
    "proxy-read-timeout",
    "proxy-real-ip-cidr",
    "proxy-send-timeout",
    "proxy-set-headers",
    "retry-non-idempotent",
    "server-tokens",
    "ssl-ciphers",
    "ssl-prefer-server-ciphers",
    "ssl-protocols",
    "ssl-redirect",
    "ssl-session-cache",
    "ssl-session-cache-size",
    "ssl-session-ticket-key",
    "ssl-session-tickets",
    "ssl-session-timeout",
    "upstream-keepalive-connections",
    "upstream-keepalive-requests",
    "upstream-keepalive-timeout",
    "use-forwarded-headers",
    "use-gzip",
    "use-port-in-redirects",
    "use-proxy-protocol",
    "whitelist-source-range",
];

/// How much of an invalid value a condition quotes.
const MAX_SHOWN: usize = 64;

/// Parses the controller ConfigMap `options.configmap` names, if any. Returns ingress-nginx's
/// defaults (and a condition when a ConfigMap is named but absent) otherwise.
pub fn parse(snapshot: &Snapshot, options: &Options) -> (Global, Vec<Condition>) {
    let mut conditions = Vec::new();
    let Some((namespace, name)) = &options.configmap else {
        return (Global::default(), conditions);
    };
    let object = ObjectRef {
        kind: "ConfigMap".to_string(),
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let Some(config_map) = snapshot.config_map(namespace, name) else {
        conditions.push(Condition {
            object,
            reason: Reason::ConfigMapNotFound,
            message: format!(
                "--configmap names {namespace}/{name}, which does not exist; ingress-nginx's defaults apply"
            ),
        });
        return (Global::default(), conditions);
    };
    let data = config_map.data.clone().unwrap_or_default();
    let global = from_data(data, &object, &mut conditions);
    (global, conditions)
}

/// The typed settings of `data`; problems are pushed onto `conditions` about `object`.
pub fn from_data(
    data: BTreeMap<String, String>,
    object: &ObjectRef,
    conditions: &mut Vec<Condition>,
) -> Global {
    let mut global = Global::with_data(data.clone());
    let mut invalid = |key: &str, value: &str, why: &str| {
        // A megabyte of garbage is named, not copied into every log line and Event.
        let shown: String = value.chars().take(MAX_SHOWN).collect();
        let more = if shown.len() < value.len() { "..." } else { "" };
        conditions.push(Condition {
            object: object.clone(),
            reason: Reason::InvalidConfigMapKey,
            message: format!("{key}: {shown:?}{more} {why}; the default applies"),
        });
    };
    let get = |key: &str| data.get(key).map(String::as_str);

    let boolean = |key: &str, into: &mut bool, invalid: &mut dyn FnMut(&str, &str, &str)| {
        if let Some(v) = get(key) {
            match parse_bool(v) {
                Some(b) => *into = b,
                None => invalid(key, v, "is not a boolean"),
            }
        }
    };
    let fwd = &mut global.forwarded;
    boolean(
        "use-forwarded-headers",
        &mut fwd.use_forwarded_headers,
        &mut invalid,
    );
    boolean(
        "compute-full-forwarded-for",
        &mut fwd.compute_full_forwarded_for,
        &mut invalid,
    );
    boolean("enable-real-ip", &mut fwd.enable_real_ip, &mut invalid);
    boolean(
        "generate-request-id",
        &mut global.generate_request_id,
        &mut invalid,
    );
    boolean("server-tokens", &mut global.server_tokens, &mut invalid);
    let optional = |key: &str, invalid: &mut dyn FnMut(&str, &str, &str)| {
        let v = get(key)?;
        let parsed = parse_bool(v);
        if parsed.is_none() {
            invalid(key, v, "is not a boolean");
        }
        parsed
    };
    global.ssl_redirect = optional("ssl-redirect", &mut invalid);
    boolean(
        "force-ssl-redirect",
        &mut global.force_ssl_redirect,
        &mut invalid,
    );
    global.use_proxy_protocol = optional("use-proxy-protocol", &mut invalid);
    boolean(
        "use-port-in-redirects",
        &mut global.use_port_in_redirects,
        &mut invalid,
    );
    if let Some(v) = get("http-redirect-code") {
        // configmap.md: "Supported codes are 301, 302, 307 and 308".
        match v.trim().parse::<u16>() {
            Ok(code @ (301 | 302 | 307 | 308)) => global.http_redirect_code = code,
            _ => invalid("http-redirect-code", v, "is not 301, 302, 307 or 308"),
        }
    }

    let fwd = &mut global.forwarded;
    if let Some(v) = get("forwarded-for-header") {
        match http_token(v) {
            Some(name) => fwd.forwarded_for_header = name,
            None => invalid("forwarded-for-header", v, "is not a header name"),
        }
    }
    if let Some(v) = get("proxy-real-ip-cidr") {
        let parsed: Result<Vec<Cidr>, String> = v
            .split(',')
            .filter(|c| !c.trim().is_empty())
            .map(str::parse)
            .collect();
        match parsed {
            Ok(list) if !list.is_empty() => fwd.real_ip_from = list,
            Ok(_) => invalid("proxy-real-ip-cidr", v, "lists no network"),
            Err(why) => invalid("proxy-real-ip-cidr", v, &why),
        }
    }

    // HSTS: nginx.tmpl / lua_ingress builds `max-age=N[; includeSubDomains][; preload]`.
    let mut hsts = true;
    let mut include_subdomains = true;
    let mut preload = false;
    boolean("hsts", &mut hsts, &mut invalid);
    boolean(
        "hsts-include-subdomains",
        &mut include_subdomains,
        &mut invalid,
    );
    boolean("hsts-preload", &mut preload, &mut invalid);
    let mut max_age = HSTS_MAX_AGE;
    if let Some(v) = get("hsts-max-age") {
        match v.trim().parse::<u64>() {
            Ok(n) => max_age = n,
            Err(_) => invalid("hsts-max-age", v, "is not a whole number of seconds"),
        }
    }
    global.hsts = hsts.then(|| hsts_value(max_age, include_subdomains, preload));

    if let Some(v) = get("proxy-body-size") {
        match super::parse_size(v) {
            Some(n) => global.proxy_body_size = Some(n),
            None => invalid("proxy-body-size", v, "is not an nginx size (1m, 512k, 0)"),
        }
    }
    global.proxy_connect_timeout = seconds("proxy-connect-timeout", get, &mut invalid);
    global.proxy_read_timeout = seconds("proxy-read-timeout", get, &mut invalid);
    global.proxy_send_timeout = seconds("proxy-send-timeout", get, &mut invalid);
    // Retries and buffering (issue 14, `proxying.rs`).
    super::proxying::from_configmap(&data, &mut global, &mut invalid);
    // issue 14: the default balancer (annotations and hashing/affinity win).
    if let Some(v) = get("load-balance") {
        match v.trim() {
            "round_robin" => global.load_balance = Some(crate::routing::Balance::RoundRobin),
            "ewma" => global.load_balance = Some(crate::routing::Balance::Ewma),
            other => invalid("load-balance", v, super::affinity::refused_balance(other)),
        }
    }
    // nginx `keepalive_timeout`: whole seconds, `0` turns keep-alive off.
    if let Some(v) = get("keep-alive") {
        match v.trim().parse::<u64>() {
            Ok(n) => global.keep_alive = Some(Duration::from_secs(n)),
            Err(_) => invalid("keep-alive", v, "is not a whole number of seconds"),
        }
    }
    if let Some(v) = get("keep-alive-requests") {
        match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => global.keep_alive_requests = Some(n),
            _ => invalid("keep-alive-requests", v, "is not a positive whole number"),
        }
    }
    let upstream = &mut global.upstream_keepalive;
    if let Some(v) = get("upstream-keepalive-connections") {
        match v.trim().parse::<usize>() {
            Ok(n) => upstream.connections = Some(n),
            Err(_) => invalid("upstream-keepalive-connections", v, "is not a whole number"),
        }
    }
    upstream.timeout = seconds("upstream-keepalive-timeout", get, &mut invalid);
    if let Some(v) = get("upstream-keepalive-requests") {
        match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => upstream.requests = Some(n),
            _ => invalid(
                "upstream-keepalive-requests",
                v,
                "is not a positive whole number",
            ),
        }
    }
    if let Some(v) = get("large-client-header-buffers") {
        match header_buffers(v) {
            Some(b) => global.large_client_header_buffers = Some(b),
            None => invalid(
                "large-client-header-buffers",
                v,
                "is not \"NUMBER SIZE\" (e.g. \"4 8k\")",
            ),
        }
    }
    if let Some(v) = get("default-ssl-certificate") {
        match namespaced(v) {
            Some(pair) => global.default_ssl_certificate = Some(pair),
            None => invalid("default-ssl-certificate", v, "is not NAMESPACE/NAME"),
        }
    }
    if let Some(v) = get("allow-snippet-annotations") {
        match parse_bool(v) {
            // Snippets are never interpreted (`ingress-nginx.md` §3): `true` cannot be honoured.
            Some(true) => conditions.push(Condition {
                object: object.clone(),
                reason: Reason::UnsupportedConfigMapKey,
                message: "allow-snippet-annotations: \"true\" is treated as \"false\": Portico never interprets snippets".to_string(),
            }),
            Some(false) => {}
            None => invalid("allow-snippet-annotations", v, "is not a boolean"),
        }
    }

    // Response compression (routing/compression.rs; issue 13).
    let (compression, problems) = crate::routing::compression::from_configmap(&data);
    global.compression = compression
        .enabled()
        .then(|| std::sync::Arc::new(compression));
    // The access log's template (routing/log_format.rs; issue 13).
    let (log_format, log_problems) = crate::routing::log_format::from_configmap(&data);
    global.log_format = log_format;
    for message in problems.into_iter().chain(log_problems) {
        conditions.push(Condition {
            object: object.clone(),
            reason: Reason::InvalidConfigMapKey,
            message,
        });
    }
    // Keys other modules own: each parser's messages start with its key.
    let (_, mut problems) = super::error_pages::from_configmap(&data);
    problems.extend(super::custom_headers::from_configmap(&data).1);
    // Issue 14 (limits.rs): status codes, default source ranges, block lists.
    problems.extend(super::limits::from_configmap(&data).1);
    let (block, block_problems) = super::limits::blocklist(&data);
    global.block = block;
    problems.extend(block_problems);
    problems.extend(super::ext_auth::from_configmap(&data).1);
    let (tls_policy, tls_problems) = crate::routing::tls_policy::from_configmap(&data);
    global.tls_policy = tls_policy;
    problems.extend(tls_problems);
    conditions.extend(problems.into_iter().map(|message| Condition {
        object: object.clone(),
        reason: Reason::InvalidConfigMapKey,
        message,
    }));

    let unsupported: Vec<&str> = data
        .keys()
        .map(String::as_str)
        .filter(|k| !IMPLEMENTED.contains(k))
        .collect();
    if !unsupported.is_empty() {
        conditions.push(Condition {
            object: object.clone(),
            reason: Reason::UnsupportedConfigMapKey,
            message: format!(
                "keys Portico does not implement, ignored: {}",
                unsupported.join(", ")
            ),
        });
    }
    global
}

/// Go's `strconv.ParseBool`, which ingress-nginx's ConfigMap decoding uses.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A timeout key: whole seconds, as ingress-nginx's (Go `int`) keys; nginx's own units (`5s`,
/// `1m`) are accepted too, since nginx would read them in the annotation form. Zero is refused
/// (nginx would time out at once).
fn seconds<'a>(
    key: &str,
    get: impl Fn(&str) -> Option<&'a str>,
    invalid: &mut dyn FnMut(&str, &str, &str),
) -> Option<Duration> {
    let v = get(key)?;
    let parsed = super::parse_timeout(v);
    if parsed.is_none() {
        invalid(key, v, "is not a positive number of seconds");
    }
    parsed
}

/// nginx `large_client_header_buffers number size`: both positive.
fn header_buffers(value: &str) -> Option<HeaderBuffers> {
    let mut parts = value.split_whitespace();
    let number: u32 = parts.next()?.parse().ok()?;
    let size = super::parse_size(parts.next()?)?;
    if parts.next().is_some() || number == 0 || size == 0 {
        return None;
    }
    Some(HeaderBuffers { number, size })
}

/// A header name (an RFC 9110 token), lowercase as `http` stores names.
fn http_token(value: &str) -> Option<String> {
    let value = value.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    (!value.is_empty() && value.len() <= 256 && value.bytes().all(token))
        .then(|| value.to_ascii_lowercase())
}

/// `NAMESPACE/NAME`, both non-empty.
fn namespaced(value: &str) -> Option<(String, String)> {
    match value.trim().split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Some((ns.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// `options` with what the ConfigMap overrides among the flags translate reads
/// (`ingress-nginx.md` §4: the ConfigMap wins).
pub fn effective_options(options: &Options, global: &Global) -> Option<Options> {
    if global.ssl_redirect.is_none()
        && global.default_ssl_certificate.is_none()
        && !global.force_ssl_redirect
    {
        return None;
    }
    let mut effective = options.clone();
    effective.force_ssl_redirect = global.force_ssl_redirect;
    if let Some(b) = global.ssl_redirect {
        effective.ssl_redirect = b;
    }
    if let Some(pair) = &global.default_ssl_certificate {
        effective.default_ssl_certificate = Some(pair.clone());
    }
    Some(effective)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::sync::Arc;

    fn snapshot(data: serde_json::Value) -> Snapshot {
        let map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "portico", "namespace": "portico"},
            "data": data
        }))
        .unwrap();
        Snapshot {
            config_maps: vec![Arc::new(map)],
            ..Snapshot::default()
        }
    }

    fn options() -> Options {
        Options {
            configmap: Some(("portico".into(), "portico".into())),
            ..Options::default()
        }
    }

    #[test]
    fn no_flag_means_defaults_and_no_condition() {
        let (global, conditions) = parse(&snapshot(serde_json::json!({})), &Options::default());
        assert_eq!(global, Global::default());
        assert!(conditions.is_empty());
    }

    #[test]
    fn a_missing_configmap_is_a_condition_and_defaults_apply() {
        let (global, conditions) = parse(&Snapshot::default(), &options());
        assert_eq!(global, Global::default());
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, Reason::ConfigMapNotFound);
        assert_eq!(conditions[0].object.kind, "ConfigMap");
        assert_eq!(
            conditions[0].object.to_string(),
            "ConfigMap portico/portico"
        );
    }

    #[test]
    fn unimplemented_keys_are_listed_in_one_warning() {
        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"zz-unknown": "1", "aa-unknown": "2"})),
            &options(),
        );
        assert_eq!(global.data().len(), 2, "data stays readable");
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, Reason::UnsupportedConfigMapKey);
        assert!(conditions[0].message.ends_with("aa-unknown, zz-unknown"));
    }

    #[test]
    fn ssl_redirect_overrides_the_flag_and_garbage_keeps_it() {
        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"ssl-redirect": "false"})),
            &options(),
        );
        assert!(conditions.is_empty());
        assert_eq!(global.ssl_redirect, Some(false));
        let effective = effective_options(&options(), &global).unwrap();
        assert!(!effective.ssl_redirect);

        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"ssl-redirect": "maybe"})),
            &options(),
        );
        assert_eq!(global.ssl_redirect, None);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, Reason::InvalidConfigMapKey);
        assert!(conditions[0].message.starts_with("ssl-redirect: \"maybe\""));
        assert!(effective_options(&options(), &global).is_none());
    }

    #[test]
    fn default_ssl_certificate_overrides_the_flag() {
        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"default-ssl-certificate": "certs/wild"})),
            &options(),
        );
        assert!(conditions.is_empty());
        let effective = effective_options(&options(), &global).unwrap();
        assert_eq!(
            effective.default_ssl_certificate,
            Some(("certs".into(), "wild".into()))
        );
        let (_, conditions) = parse(
            &snapshot(serde_json::json!({"default-ssl-certificate": "wild"})),
            &options(),
        );
        assert_eq!(conditions[0].reason, Reason::InvalidConfigMapKey);
    }

    #[test]
    fn allow_snippet_annotations_true_is_treated_as_false_with_a_warning() {
        let (_, conditions) = parse(
            &snapshot(serde_json::json!({"allow-snippet-annotations": "true"})),
            &options(),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, Reason::UnsupportedConfigMapKey);
        let (_, conditions) = parse(
            &snapshot(serde_json::json!({"allow-snippet-annotations": "false"})),
            &options(),
        );
        assert!(conditions.is_empty());
    }

    #[test]
    fn a_huge_invalid_value_is_quoted_short() {
        let huge = "x".repeat(1 << 20);
        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"hsts-max-age": huge})),
            &options(),
        );
        assert_eq!(global.hsts, Global::default().hsts);
        assert_eq!(conditions.len(), 1);
        assert!(
            conditions[0].message.len() < 200,
            "{}",
            conditions[0].message.len()
        );
    }

    #[test]
    fn booleans_follow_go_parse_bool() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "on", "", "tRUE"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }
}

/// Each key: a valid value lands in `Global`, an invalid one is one condition naming the key
/// and leaves the default.
#[cfg(test)]
mod keys {
    use super::*;
    use std::time::Duration;

    fn object() -> ObjectRef {
        ObjectRef {
            kind: "ConfigMap".into(),
            namespace: "portico".into(),
            name: "portico".into(),
        }
    }

    fn with(pairs: &[(&str, &str)]) -> (Global, Vec<Condition>) {
        let data = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut conditions = Vec::new();
        let global = from_data(data, &object(), &mut conditions);
        (global, conditions)
    }

    /// `key: bad` leaves `Global` at its defaults (but for `data`) with one condition.
    fn rejects(key: &str, bad: &str) {
        let (global, conditions) = with(&[(key, bad)]);
        assert_eq!(conditions.len(), 1, "{key}: {conditions:?}");
        assert_eq!(conditions[0].reason, Reason::InvalidConfigMapKey, "{key}");
        assert!(conditions[0].message.starts_with(key), "{key}");
        let defaults = Global::with_data(global.data().clone());
        assert_eq!(global, defaults, "{key}: the default applies");
    }

    #[test]
    fn every_implemented_key_is_parsed_or_reported() {
        for key in IMPLEMENTED {
            let (_, conditions) = with(&[(key, "\u{0}garbage")]);
            let named = conditions
                .iter()
                .any(|c| c.reason == Reason::InvalidConfigMapKey && c.message.starts_with(key));
            assert!(named, "{key}: garbage is not reported");
        }
    }

    #[test]
    fn forwarded_keys() {
        let (g, c) = with(&[
            ("use-forwarded-headers", "true"),
            ("compute-full-forwarded-for", "true"),
            ("enable-real-ip", "1"),
            ("forwarded-for-header", "X-Client-IP"),
            ("proxy-real-ip-cidr", "10.0.0.0/8, 2001:db8::/32"),
        ]);
        assert!(c.is_empty(), "{c:?}");
        assert!(g.forwarded.use_forwarded_headers && g.forwarded.compute_full_forwarded_for);
        assert!(g.forwarded.enable_real_ip);
        assert_eq!(g.forwarded.forwarded_for_header, "x-client-ip");
        assert_eq!(g.forwarded.real_ip_from.len(), 2);
        rejects("use-forwarded-headers", "yes");
        rejects("compute-full-forwarded-for", "on");
        rejects("enable-real-ip", "");
        rejects("forwarded-for-header", "X Client");
        rejects("proxy-real-ip-cidr", "10.0.0.0/33");
        rejects("proxy-real-ip-cidr", " , ");
    }

    #[test]
    fn hsts_keys() {
        let (g, _) = with(&[]);
        assert_eq!(
            g.hsts.as_deref(),
            Some(b"max-age=31536000; includeSubDomains".as_slice())
        );
        let (g, c) = with(&[
            ("hsts-max-age", "60"),
            ("hsts-include-subdomains", "false"),
            ("hsts-preload", "true"),
        ]);
        assert!(c.is_empty());
        assert_eq!(g.hsts.as_deref(), Some(b"max-age=60; preload".as_slice()));
        let (g, _) = with(&[("hsts", "false")]);
        assert_eq!(g.hsts, None);
        rejects("hsts", "maybe");
        rejects("hsts-max-age", "-1");
        rejects("hsts-include-subdomains", "no");
        rejects("hsts-preload", "yes");
    }

    #[test]
    fn redirect_keys() {
        let (g, c) = with(&[
            ("use-port-in-redirects", "true"),
            ("http-redirect-code", "301"),
        ]);
        assert!(c.is_empty(), "{c:?}");
        assert!(g.use_port_in_redirects);
        assert_eq!(g.http_redirect_code, 301);
        rejects("use-port-in-redirects", "sometimes");
        // 303 is no code ingress-nginx accepts for this key.
        rejects("http-redirect-code", "303");
        rejects("http-redirect-code", "permanent");
    }

    #[test]
    fn request_id_and_server_tokens() {
        let (g, _) = with(&[("generate-request-id", "false"), ("server-tokens", "true")]);
        assert!(!g.generate_request_id && g.server_tokens);
        rejects("generate-request-id", "nope");
        rejects("server-tokens", "nginx");
    }

    #[test]
    fn flag_overriding_keys() {
        let (g, c) = with(&[
            ("proxy-body-size", "8m"),
            ("proxy-connect-timeout", "7"),
            ("proxy-read-timeout", "120s"),
            ("proxy-send-timeout", "30"),
            ("large-client-header-buffers", "4 16k"),
            ("use-proxy-protocol", "true"),
            ("ssl-redirect", "false"),
            ("keep-alive", "0"),
            ("keep-alive-requests", "100"),
            ("upstream-keepalive-connections", "0"),
            ("upstream-keepalive-timeout", "30"),
            ("upstream-keepalive-requests", "5"),
        ]);
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(g.keep_alive, Some(Duration::ZERO));
        assert_eq!(g.keep_alive_requests, Some(100));
        assert_eq!(g.upstream_keepalive.connections, Some(0));
        assert_eq!(g.upstream_keepalive.timeout, Some(Duration::from_secs(30)));
        assert_eq!(g.upstream_keepalive.requests, Some(5));
        assert_eq!(g.proxy_body_size, Some(8 << 20));
        assert_eq!(g.proxy_connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(g.proxy_read_timeout, Some(Duration::from_secs(120)));
        assert_eq!(g.proxy_send_timeout, Some(Duration::from_secs(30)));
        assert_eq!(
            g.large_client_header_buffers.map(|b| b.total()),
            Some(64 << 10)
        );
        assert_eq!(g.use_proxy_protocol, Some(true));
        assert_eq!(g.ssl_redirect, Some(false));
        let (g, _) = with(&[("proxy-body-size", "0")]);
        assert_eq!(g.proxy_body_size, Some(0), "0 is no limit");
        rejects("proxy-body-size", "1 megabyte");
        rejects("proxy-connect-timeout", "0");
        rejects("proxy-read-timeout", "soon");
        rejects("large-client-header-buffers", "4");
        rejects("large-client-header-buffers", "0 8k");
        rejects("large-client-header-buffers", "4 8k 2");
        rejects("use-proxy-protocol", "proxy");
        rejects("keep-alive", "75s");
        rejects("upstream-keepalive-connections", "-1");
        rejects("upstream-keepalive-timeout", "0");
        rejects("upstream-keepalive-requests", "0");
        rejects("keep-alive-requests", "0");
        rejects("ssl-redirect", "sometimes");
        rejects("force-ssl-redirect", "always");
        rejects("default-ssl-certificate", "no-namespace");
    }
}
