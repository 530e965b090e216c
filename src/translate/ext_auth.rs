//! ingress-nginx's external authentication (issue 15), typed at translate time: the
//! annotations `auth-url`, `auth-method`, `auth-signin`, `auth-signin-redirect-param`,
//! `auth-response-headers`, `auth-request-redirect`, `auth-always-set-cookie`,
//! `auth-proxy-set-headers`, `auth-keepalive*`, `enable-global-auth`, and the controller
//! ConfigMap's `global-auth-*` keys and `no-auth-locations`. `incremental::derive` puts the
//! result into the Ingress's policy; `proxy/ext_auth.rs` asks the auth service per request.
//!
//! Sources: ingress-nginx `internal/ingress/annotations/authreq/main.go` (parsing, which values
//! deny the location), `internal/ingress/controller/template/configmap.go` (`global-auth-*`),
//! `internal/ingress/controller/template/template.go` (`buildAuthSignURL`,
//! `shouldApplyGlobalAuth`, `isLocationInLocationList`) and `rootfs/etc/nginx/template/nginx.tmpl`
//! (the `location = /_external-auth-...` block).
//!
//! Access control fails closed (`ingress-nginx.md` §3): an `auth-url` (or a value
//! ingress-nginx would deny the location for) that Portico cannot use makes every path of the
//! Ingress answer 503; so does an unusable `global-auth-url` for the Ingresses it would cover.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::{NGINX, PORTICO};
use super::custom_headers::{find, managed, namespaced, nginx_header_name, nginx_variable};
use super::incremental::Key;
use crate::routing::{
    unreserved, AuthCache, CacheCodes, CacheValid, ExtAuth, KeyPiece, Signin, SigninPiece,
    SigninVar,
};

/// The annotation names, without prefix.
pub const AUTH_URL: &str = "auth-url";
pub const AUTH_METHOD: &str = "auth-method";
pub const AUTH_SIGNIN: &str = "auth-signin";
pub const AUTH_SIGNIN_REDIRECT_PARAM: &str = "auth-signin-redirect-param";
pub const AUTH_RESPONSE_HEADERS: &str = "auth-response-headers";
pub const AUTH_REQUEST_REDIRECT: &str = "auth-request-redirect";
pub const AUTH_ALWAYS_SET_COOKIE: &str = "auth-always-set-cookie";
pub const AUTH_PROXY_SET_HEADERS: &str = "auth-proxy-set-headers";
pub const AUTH_KEEPALIVE: &str = "auth-keepalive";
pub const AUTH_KEEPALIVE_REQUESTS: &str = "auth-keepalive-requests";
pub const AUTH_KEEPALIVE_TIMEOUT: &str = "auth-keepalive-timeout";
pub const AUTH_KEEPALIVE_SHARE_VARS: &str = "auth-keepalive-share-vars";
pub const ENABLE_GLOBAL_AUTH: &str = "enable-global-auth";
pub const AUTH_CACHE_KEY: &str = "auth-cache-key";
pub const AUTH_CACHE_DURATION: &str = "auth-cache-duration";

/// ingress-nginx's `DefaultCacheDuration`.
const DEFAULT_CACHE_DURATION: &str = "200 202 401 5m";

/// The annotations this module reads (`annotations::IMPLEMENTED` lists them).
pub const ANNOTATIONS: &[&str] = &[
    AUTH_URL,
    AUTH_METHOD,
    AUTH_SIGNIN,
    AUTH_SIGNIN_REDIRECT_PARAM,
    AUTH_RESPONSE_HEADERS,
    AUTH_REQUEST_REDIRECT,
    AUTH_ALWAYS_SET_COOKIE,
    AUTH_PROXY_SET_HEADERS,
    AUTH_KEEPALIVE,
    AUTH_KEEPALIVE_REQUESTS,
    AUTH_KEEPALIVE_TIMEOUT,
    AUTH_KEEPALIVE_SHARE_VARS,
    ENABLE_GLOBAL_AUTH,
    AUTH_CACHE_KEY,
    AUTH_CACHE_DURATION,
];

/// The controller ConfigMap's keys this module reads: `global-` and an annotation's name.
pub const GLOBAL_PREFIX: &str = "global-";
pub const NO_AUTH_LOCATIONS: &str = "no-auth-locations";

/// ingress-nginx's `no-auth-locations` default (`configmap.md`).
const DEFAULT_NO_AUTH_LOCATIONS: &str = "/.well-known/acme-challenge";

/// The methods `auth-method` may name (ingress-nginx `authreq.ValidMethod`, exact case).
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

/// What the controller ConfigMap says about external authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `global-auth-url` and its companions: `None` when unset; `Err(why)` when set but
    /// unusable, which fails closed every Ingress it would cover.
    pub global: Option<Result<Arc<ExtAuth>, String>>,
    /// `no-auth-locations`: Ingress paths starting with one of these are never authenticated
    /// (ingress-nginx `isLocationInLocationList`: a plain string prefix of the path).
    pub no_auth_locations: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            global: None,
            no_auth_locations: vec![DEFAULT_NO_AUTH_LOCATIONS.to_string()],
        }
    }
}

/// The ConfigMap keys this module reads, for `configmap::IMPLEMENTED` (sorted there).
pub const CONFIGMAP_KEYS: &[&str] = &[
    "global-auth-always-set-cookie",
    "global-auth-cache-duration",
    "global-auth-cache-key",
    "global-auth-method",
    "global-auth-request-redirect",
    "global-auth-response-headers",
    "global-auth-signin",
    "global-auth-signin-redirect-param",
    "global-auth-url",
    NO_AUTH_LOCATIONS,
];

/// The ConfigMap's settings and one message per problem, each starting with its key.
pub fn from_configmap(data: &BTreeMap<String, String>) -> (Settings, Vec<String>) {
    let mut settings = Settings::default();
    let mut problems = Vec::new();
    if let Some(v) = data.get(NO_AUTH_LOCATIONS) {
        let paths: Vec<String> = v
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if paths
            .iter()
            .all(|p| p.starts_with('/') && !p.chars().any(char::is_control))
        {
            settings.no_auth_locations = paths;
        } else {
            problems.push(format!(
                "{NO_AUTH_LOCATIONS}: {:?} is not a comma-separated list of paths; the default \
                 applies",
                clip(v)
            ));
        }
    }
    let get = |name: &str| {
        let key = format!("{GLOBAL_PREFIX}{name}");
        data.get(&key).map(|v| (key, v.clone()))
    };
    if get(AUTH_URL).is_none() {
        // The companions alone do nothing (as in ingress-nginx), but a bad value is still said.
        let with_url = |name: &str| match name {
            AUTH_URL => Some((String::new(), "http://unset/".to_string())),
            _ => get(name),
        };
        let mut denied = Vec::new();
        build(&with_url, true, None, &mut denied, &mut problems);
        problems.extend(denied);
        return (settings, problems);
    }
    let mut denied = Vec::new();
    let auth = build(&get, true, None, &mut denied, &mut problems);
    settings.global = Some(match auth {
        Some(auth) if denied.is_empty() => Ok(Arc::new(auth)),
        _ => Err(denied.join("; ")),
    });
    problems.extend(
        denied
            .into_iter()
            .map(|why| format!("{why}; every path global authentication would cover answers 503")),
    );
    (settings, problems)
}

/// What one Ingress asks for.
#[derive(Debug, Default)]
pub(super) struct Asked {
    pub auth: Option<Arc<ExtAuth>>,
    /// Why its paths answer 503 (fail closed); empty when they do not.
    pub denied: Vec<String>,
    /// Invalid values whose default applies.
    pub invalid: Vec<String>,
}

/// The Ingress's external authentication: its `auth-url`, else the ConfigMap's
/// `global-auth-url` unless `enable-global-auth: "false"` (ingress-nginx
/// `shouldApplyGlobalAuth`).
pub(super) fn parse(
    ingress: &Ingress,
    namespace: &str,
    settings: &Settings,
    config_maps: &[Arc<ConfigMap>],
) -> Asked {
    let mut asked = Asked::default();
    let annotations = ingress.metadata.annotations.as_ref();
    let get = |name: &str| -> Option<(String, String)> {
        let annotations = annotations?;
        for prefix in [PORTICO, NGINX] {
            let key = format!("{prefix}{name}");
            if let Some(v) = annotations.get(&key) {
                return Some((key, v.clone()));
            }
        }
        None
    };
    let auth = if get(AUTH_URL).is_some() {
        build(
            &get,
            false,
            Some((namespace, config_maps)),
            &mut asked.denied,
            &mut asked.invalid,
        )
        .map(Arc::new)
    } else {
        let enabled = match get(ENABLE_GLOBAL_AUTH) {
            None => true,
            Some((key, v)) => super::configmap::parse_bool(&v).unwrap_or_else(|| {
                asked.invalid.push(format!(
                    "annotation {key}: {v:?} is not a boolean; using true"
                ));
                true
            }),
        };
        match (&settings.global, enabled) {
            (Some(Ok(global)), true) => Some(global.clone()),
            (Some(Err(why)), true) => {
                asked.denied.push(format!(
                    "the controller ConfigMap's global authentication is unusable ({why})"
                ));
                None
            }
            _ => None,
        }
    };
    if let Some(auth) = &auth {
        if let Some(path) = loops_back(ingress, &auth.uri) {
            asked.denied.push(format!(
                "auth-url {} is served by this Ingress's own path {path:?}, which it protects \
                 (a loop)",
                auth.url
            ));
        }
    }
    if asked.denied.is_empty() {
        asked.auth = auth;
    }
    asked
}

/// The ConfigMap `auth-proxy-set-headers` names, for incremental translate.
pub(super) fn config_maps_read(ingress: &Ingress, namespace: &str) -> Vec<Key> {
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    [PORTICO, NGINX]
        .iter()
        .find_map(|p| annotations.get(&format!("{p}{AUTH_PROXY_SET_HEADERS}")))
        .map(|v| config_map_ref(v, namespace))
        .into_iter()
        .collect()
}

/// Whether the Ingress path `path` is exempt from authentication (`no-auth-locations`).
pub(super) fn exempt(path: &str, settings: &Settings) -> bool {
    settings
        .no_auth_locations
        .iter()
        .any(|p| path.starts_with(p.as_str()))
}

/// The policy of an Ingress path that `no-auth-locations` exempts: the Ingress's policy
/// without its external authentication; `None` when the policy has none.
pub(super) fn exempt_policy(
    policy: &Option<Arc<crate::routing::Policy>>,
) -> Option<Option<Arc<crate::routing::Policy>>> {
    let p = policy.as_ref().filter(|p| p.ext_auth.is_some())?;
    let without = crate::routing::Policy {
        ext_auth: None,
        ..crate::routing::Policy::clone(p)
    };
    Some((!without.is_default()).then(|| Arc::new(without)))
}

/// `namespace/name`, or a bare name in the Ingress's namespace.
fn config_map_ref(value: &str, namespace: &str) -> Key {
    namespaced(value).unwrap_or_else(|| (namespace.to_string(), value.trim().to_string()))
}

/// Builds one [`ExtAuth`] from `get` (annotation or ConfigMap key, by annotation name).
/// Problems that deny the location in ingress-nginx go to `denied`; the rest to `invalid`.
fn build(
    get: &dyn Fn(&str) -> Option<(String, String)>,
    global: bool,
    proxy_set_headers: Option<(&str, &[Arc<ConfigMap>])>,
    denied: &mut Vec<String>,
    invalid: &mut Vec<String>,
) -> Option<ExtAuth> {
    let what = |key: &str| {
        if global {
            key.to_string()
        } else {
            format!("annotation {key}")
        }
    };
    let (key, value) = get(AUTH_URL)?;
    let (uri, host) = match auth_uri(&value) {
        Ok(parsed) => parsed,
        Err(why) => {
            denied.push(format!("{}: {:?} {why}", what(&key), clip(&value)));
            return None;
        }
    };
    let mut auth = ExtAuth {
        url: value.trim().to_string(),
        uri,
        host,
        method: None,
        signin: None,
        response_headers: Vec::new(),
        request_redirect: None,
        always_set_cookie: false,
        proxy_set_headers: Vec::new(),
        global,
        cache: None,
    };
    if let Some((key, v)) = get(AUTH_METHOD) {
        let v = v.trim();
        match METHODS
            .contains(&v)
            .then(|| Method::from_bytes(v.as_bytes()))
        {
            Some(Ok(method)) => auth.method = Some(method),
            _ => denied.push(format!("{}: {v:?} is not an HTTP method", what(&key))),
        }
    }
    if let Some((key, v)) = get(AUTH_RESPONSE_HEADERS) {
        for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) if nginx_header_name(name) => auth.response_headers.push(header),
                _ => denied.push(format!(
                    "{}: {:?} is not a header name",
                    what(&key),
                    clip(name)
                )),
            }
        }
    }
    if let Some((key, v)) = get(AUTH_REQUEST_REDIRECT) {
        match request_redirect(&v) {
            Ok(value) => auth.request_redirect = value,
            Err(why) => invalid.push(format!(
                "{}: {:?} {why}; the request URI is sent",
                what(&key),
                clip(&v)
            )),
        }
    }
    if let Some((key, v)) = get(AUTH_ALWAYS_SET_COOKIE) {
        match super::configmap::parse_bool(&v) {
            Some(b) => auth.always_set_cookie = b,
            None => invalid.push(format!(
                "{}: {:?} is not a boolean; using false",
                what(&key),
                clip(&v)
            )),
        }
    }
    let param = match get(AUTH_SIGNIN_REDIRECT_PARAM) {
        None => "rd".to_string(),
        Some((key, v)) => {
            let v = v.trim();
            if !v.is_empty() && v.bytes().all(unreserved) {
                v.to_string()
            } else {
                invalid.push(format!(
                    "{}: {:?} is not a query parameter name; using \"rd\"",
                    what(&key),
                    clip(v)
                ));
                "rd".to_string()
            }
        }
    };
    if let Some((key, v)) = get(AUTH_SIGNIN) {
        match signin(v.trim(), &param) {
            Ok(s) => auth.signin = Some(s),
            Err(why) => invalid.push(format!(
                "{}: {:?} {why}; unauthenticated requests get the 401",
                what(&key),
                clip(&v)
            )),
        }
    }
    // ingress-nginx only tunes its nginx `upstream` block with these; Portico always keeps
    // connections to the auth service alive. The values are checked, never used.
    for name in [
        AUTH_KEEPALIVE,
        AUTH_KEEPALIVE_REQUESTS,
        AUTH_KEEPALIVE_TIMEOUT,
    ] {
        if let Some((key, v)) = get(name) {
            if v.trim().parse::<i64>().is_err() {
                invalid.push(format!("{}: {:?} is not a number", what(&key), clip(&v)));
            }
        }
    }
    if let Some((key, v)) = get(AUTH_KEEPALIVE_SHARE_VARS) {
        if super::configmap::parse_bool(&v).is_none() {
            invalid.push(format!("{}: {:?} is not a boolean", what(&key), clip(&v)));
        }
    }
    if let (Some((key, v)), Some((namespace, config_maps))) =
        (get(AUTH_PROXY_SET_HEADERS), proxy_set_headers)
    {
        match auth_proxy_set_headers(&v, namespace, config_maps) {
            Ok(headers) => auth.proxy_set_headers = headers,
            Err(why) => denied.push(format!("{}: {:?} {why}", what(&key), clip(&v))),
        }
    }
    // ingress-nginx denies the location for an invalid duration, cache key or not.
    let durations = match get(AUTH_CACHE_DURATION) {
        None => cache_durations(DEFAULT_CACHE_DURATION).map_err(|_| ()),
        Some((key, v)) => cache_durations(&v).map_err(|why| {
            denied.push(format!("{}: {:?} {why}", what(&key), clip(&v)));
        }),
    };
    if let (Some((key, v)), Ok(valid)) = (get(AUTH_CACHE_KEY), durations) {
        if !v.trim().is_empty() {
            match cache_key(v.trim()) {
                Ok(pieces) => {
                    auth.cache = Some(AuthCache {
                        key: pieces,
                        key_text: v.trim().to_string(),
                        valid,
                        store: Arc::default(),
                    })
                }
                Err(why) => invalid.push(format!(
                    "{}: {:?} {why}; auth answers are not cached",
                    what(&key),
                    clip(&v)
                )),
            }
        }
    }
    Some(auth)
}

/// `auth-cache-key`: literal text and the nginx variables Portico fills from the request.
fn cache_key(value: &str) -> Result<Vec<KeyPiece>, String> {
    if value.chars().any(char::is_control) {
        return Err("holds control characters".to_string());
    }
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => return Err("has an unterminated ${".to_string()),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if name.is_empty() {
            literal.push('$');
            rest = after;
            continue;
        }
        let piece = if let Some(header) = name.strip_prefix("http_") {
            let header = header.replace('_', "-").to_ascii_lowercase();
            KeyPiece::Header(
                HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("names the header ${name}, which is not a header name"))?,
            )
        } else if let Some(cookie) = name.strip_prefix("cookie_") {
            KeyPiece::Cookie(cookie.to_string())
        } else if let Some(arg) = name.strip_prefix("arg_") {
            KeyPiece::Arg(arg.to_string())
        } else {
            match name {
                "remote_addr" => KeyPiece::RemoteAddr,
                "host" => KeyPiece::Host,
                "request_uri" => KeyPiece::RequestUri,
                "uri" => KeyPiece::Uri,
                "remote_user" => KeyPiece::RemoteUser,
                _ => {
                    return Err(format!(
                        "uses the nginx variable ${name}, which Portico does not fill"
                    ))
                }
            }
        };
        if !literal.is_empty() {
            pieces.push(KeyPiece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(piece);
        rest = &after[consumed..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(KeyPiece::Literal(literal));
    }
    Ok(pieces)
}

/// `auth-cache-duration`: comma-separated nginx `proxy_cache_valid` lines, `[code ...] time
/// ...` (ingress-nginx `ValidCacheDuration`: three-digit codes, then times such as `5m` or
/// `1h 30m`; `any` for every code). Without codes, nginx's 200, 301 and 302.
fn cache_durations(value: &str) -> Result<Vec<CacheValid>, String> {
    let mut lines = Vec::new();
    for line in value.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        let mut codes = Vec::new();
        let mut any = false;
        let mut ttl = std::time::Duration::ZERO;
        let mut seen_time = false;
        for token in line.split(' ').filter(|t| !t.is_empty()) {
            if token.len() == 3 && token.bytes().all(|b| b.is_ascii_digit()) && !seen_time {
                codes.push(
                    token
                        .parse::<u16>()
                        .map_err(|_| "is not a cache duration")?,
                );
            } else if token == "any" && !seen_time {
                any = true;
            } else if let Some(d) = nginx_time(token) {
                ttl += d;
                seen_time = true;
            } else {
                return Err(format!("is not a cache duration ({token:?})"));
            }
        }
        if !seen_time {
            return Err("is not a cache duration (no time)".to_string());
        }
        let codes = if any {
            CacheCodes::Any
        } else if codes.is_empty() {
            CacheCodes::List(vec![200, 301, 302])
        } else {
            CacheCodes::List(codes)
        };
        lines.push(CacheValid { codes, ttl });
    }
    if lines.is_empty() {
        return cache_durations(DEFAULT_CACHE_DURATION);
    }
    Ok(lines)
}

/// One nginx time (`500ms`, `30s`, `5m`, `1h`, `2d`, `1w`, `1M`, `1y`).
fn nginx_time(token: &str) -> Option<std::time::Duration> {
    let split = token.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = token.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(std::time::Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(secs)?))
}

/// `auth-url`: an absolute `http`/`https` URL naming a host (ingress-nginx `StringToURL`,
/// plus Portico's refusal of other schemes, user information and nginx variables). Returns
/// the URI (path `/` when it has none) and the `Host` to send.
fn auth_uri(value: &str) -> Result<(Uri, HeaderValue), String> {
    let value = value.trim();
    if let Some(var) = nginx_variable(value) {
        return Err(format!(
            "uses the nginx variable {var}, which Portico never evaluates; name the auth \
             service directly"
        ));
    }
    let uri: Uri = value.parse().map_err(|_| "is not a URL".to_string())?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(_) => return Err("is neither an http:// nor an https:// URL".to_string()),
        None => return Err("is not an absolute URL".to_string()),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| "names no host".to_string())?
        .clone();
    if authority.as_str().contains('@') {
        return Err("carries user information".to_string());
    }
    let host = authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_err() && !super::is_dns1123_subdomain(&bare.to_ascii_lowercase()) {
        return Err("has an invalid host".to_string());
    }
    let host_value = HeaderValue::from_str(host).map_err(|_| "has an invalid host".to_string())?;
    let uri = if uri.path_and_query().is_none() || uri.path().is_empty() {
        Uri::builder()
            .scheme(uri.scheme_str().unwrap_or("http"))
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|_| "is not a URL".to_string())?
    } else {
        uri
    };
    Ok((uri, host_value))
}

/// `auth-request-redirect`: a literal header value (nginx variables are not evaluated).
fn request_redirect(value: &str) -> Result<Option<HeaderValue>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if let Some(var) = nginx_variable(value) {
        return Err(format!(
            "uses the nginx variable {var}, which Portico never evaluates"
        ));
    }
    HeaderValue::from_str(value)
        .map(Some)
        .map_err(|_| "is not a header value".to_string())
}

/// `auth-signin` with the redirect parameter appended as ingress-nginx's `buildAuthSignURL`
/// does, parsed into literal text and the nginx variables Portico fills per request.
fn signin(value: &str, param: &str) -> Result<Signin, String> {
    if value.is_empty() {
        return Err("is empty".to_string());
    }
    let query = value
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .unwrap_or_default();
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    let rd = "$pass_access_scheme://$http_host$escaped_request_uri";
    let text = if pairs.is_empty() {
        let value = value.strip_suffix('?').unwrap_or(value);
        format!("{value}?{param}={rd}")
    } else if pairs
        .iter()
        .find(|(k, _)| *k == param)
        .is_some_and(|(_, v)| !v.is_empty())
    {
        value.to_string()
    } else {
        format!("{value}&{param}={rd}")
    };
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => return Err("has an unterminated ${".to_string()),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if name.is_empty() {
            literal.push('$');
            rest = after;
            continue;
        }
        let var = SigninVar::parse(name).ok_or_else(|| {
            format!("uses the nginx variable ${name}, which Portico does not fill")
        })?;
        if !literal.is_empty() {
            pieces.push(SigninPiece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(SigninPiece::Var(var));
        rest = &after[consumed..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(SigninPiece::Literal(literal));
    }
    for piece in &pieces {
        if let SigninPiece::Literal(text) = piece {
            if HeaderValue::from_str(text).is_err() {
                return Err("is not a header value".to_string());
            }
        }
    }
    Ok(Signin {
        text: value.to_string(),
        pieces,
    })
}

/// `auth-proxy-set-headers`: the ConfigMap's entries as headers for the auth service. A
/// missing ConfigMap or an invalid name denies the location (ingress-nginx); so does a value
/// nginx would have evaluated (Portico never does: the auth service would see other headers
/// than it did) or a header that frames the message.
fn auth_proxy_set_headers(
    value: &str,
    namespace: &str,
    config_maps: &[Arc<ConfigMap>],
) -> Result<crate::routing::HeaderList, String> {
    let (ns, name) = config_map_ref(value, namespace);
    let map = find(config_maps, &ns, &name).ok_or_else(|| "names no ConfigMap".to_string())?;
    let mut headers = Vec::new();
    for (key, v) in map.data.iter().flatten() {
        if !nginx_header_name(key) || managed(key) {
            return Err(format!(
                "sets {:?}, which is not a header it may set",
                clip(key)
            ));
        }
        if let Some(var) = nginx_variable(v) {
            return Err(format!(
                "sets {key} to a value with the nginx variable {var}, which Portico never \
                 evaluates"
            ));
        }
        let header = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| format!("sets {:?}, which is not a header name", clip(key)))?;
        let v = HeaderValue::from_str(v)
            .map_err(|_| format!("sets {key} to something that is not a header value"))?;
        headers.push((header, v));
    }
    Ok(headers)
}

/// The path of this Ingress that serves `uri` itself, if any: then every request would ask
/// the auth service through a route that asks it again. Only this Ingress's own rules are
/// looked at (translate derives each Ingress alone); the proxy's hop header catches the rest.
fn loops_back(ingress: &Ingress, uri: &Uri) -> Option<String> {
    let host = uri.host()?.to_ascii_lowercase();
    let path = uri.path();
    let rules = ingress.spec.as_ref()?.rules.as_deref()?;
    for rule in rules {
        if rule.host.as_deref().map(str::to_ascii_lowercase) != Some(host.clone()) {
            continue;
        }
        for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let own = p.path.as_deref().unwrap_or("/");
            let covers = if p.path_type == "Exact" {
                own == path
            } else {
                let base = own.trim_end_matches('/');
                path == own || path == base || path.starts_with(&format!("{base}/"))
            };
            if covers {
                return Some(own.to_string());
            }
        }
    }
    None
}

/// At most 64 characters of a value, for messages.
fn clip(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(pairs: &[(&str, &str)]) -> Ingress {
        let mut ing: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {"rules": [{"host": "app.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "app", "port": {"number": 80}}}}
            ]}}]}
        }))
        .unwrap();
        ing.metadata.annotations = Some(
            pairs
                .iter()
                .map(|(k, v)| (format!("{NGINX}{k}"), v.to_string()))
                .collect(),
        );
        ing
    }

    fn asked(pairs: &[(&str, &str)]) -> Asked {
        parse(&ingress(pairs), "default", &Settings::default(), &[])
    }

    #[test]
    fn auth_url_is_typed_with_the_host_header_without_port() {
        let a = asked(&[(AUTH_URL, "http://auth.svc.cluster.local:8080/oauth2/auth")]);
        assert!(a.denied.is_empty(), "{:?}", a.denied);
        let auth = a.auth.unwrap();
        assert_eq!(auth.host, "auth.svc.cluster.local");
        assert_eq!(auth.uri.path(), "/oauth2/auth");
        let bare = asked(&[(AUTH_URL, "https://10.0.0.1")]).auth.unwrap();
        assert_eq!(bare.uri.to_string(), "https://10.0.0.1/");
    }

    /// auth.go "with invalid auth-url should deny whole location" (`https://invalid..auth.url`),
    /// plus what Portico refuses besides: other schemes, variables, user information.
    #[test]
    fn unusable_auth_urls_deny_the_ingress() {
        for url in [
            "https://invalid..auth.url",
            "ftp://auth.example/x",
            "/relative",
            "http://$host/oauth2/auth",
            "http://user:pw@auth.example/",
            "not a url",
        ] {
            let a = asked(&[(AUTH_URL, url)]);
            assert!(a.auth.is_none() && !a.denied.is_empty(), "{url}");
        }
    }

    #[test]
    fn invalid_method_and_response_headers_deny_but_other_values_only_warn() {
        let a = asked(&[(AUTH_URL, "http://auth/"), (AUTH_METHOD, "get")]);
        assert!(a.auth.is_none() && a.denied.len() == 1);
        let a = asked(&[
            (AUTH_URL, "http://auth/"),
            (AUTH_RESPONSE_HEADERS, "X-User, bad header"),
        ]);
        assert!(a.auth.is_none() && a.denied.len() == 1);
        let a = asked(&[
            (AUTH_URL, "http://auth/"),
            (AUTH_ALWAYS_SET_COOKIE, "maybe"),
            (AUTH_KEEPALIVE, "many"),
            (AUTH_SIGNIN, "https://$remote_addr/start"),
        ]);
        assert!(a.denied.is_empty());
        assert_eq!(a.invalid.len(), 3, "{:?}", a.invalid);
        let auth = a.auth.unwrap();
        assert!(!auth.always_set_cookie && auth.signin.is_none());
    }

    /// template.go `buildAuthSignURL`: `?rd=...` appended, `&rd=...` when the URL has a query,
    /// nothing when it already names the parameter.
    #[test]
    fn signin_gets_the_redirect_parameter_as_ingress_nginx_builds_it() {
        let text = |s: &Signin| {
            s.pieces
                .iter()
                .map(|p| match p {
                    SigninPiece::Literal(t) => t.clone(),
                    SigninPiece::Var(v) => format!("<{v:?}>"),
                })
                .collect::<String>()
        };
        let s = signin("http://$host/auth/start", "rd").unwrap();
        assert_eq!(
            text(&s),
            "http://<Host>/auth/start?rd=<PassAccessScheme>://<HttpHost><EscapedRequestUri>"
        );
        let s = signin("https://login/start?x=1", "orig").unwrap();
        assert_eq!(
            text(&s),
            "https://login/start?x=1&orig=<PassAccessScheme>://<HttpHost><EscapedRequestUri>"
        );
        let s = signin("https://login/start?rd=${request_uri}", "rd").unwrap();
        assert_eq!(text(&s), "https://login/start?rd=<RequestUri>");
        assert!(signin("https://login/$remote_addr", "rd").is_err());
    }

    #[test]
    fn global_auth_applies_unless_the_ingress_opts_out_or_has_its_own() {
        let data: BTreeMap<String, String> = [
            ("global-auth-url", "http://global-auth/check"),
            ("global-auth-response-headers", "X-User"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (settings, problems) = from_configmap(&data);
        assert!(problems.is_empty(), "{problems:?}");
        let on = parse(&ingress(&[]), "default", &settings, &[]);
        assert!(on.auth.as_ref().is_some_and(|a| a.global));
        let off = parse(
            &ingress(&[(ENABLE_GLOBAL_AUTH, "false")]),
            "default",
            &settings,
            &[],
        );
        assert!(off.auth.is_none() && off.denied.is_empty());
        let own = parse(
            &ingress(&[(AUTH_URL, "http://own-auth/")]),
            "default",
            &settings,
            &[],
        );
        assert!(own.auth.is_some_and(|a| !a.global));
    }

    #[test]
    fn unusable_global_auth_url_fails_closed_where_it_applies() {
        let data: BTreeMap<String, String> =
            [("global-auth-url".to_string(), "ftp://nope".to_string())].into();
        let (settings, problems) = from_configmap(&data);
        assert_eq!(problems.len(), 1);
        let a = parse(&ingress(&[]), "default", &settings, &[]);
        assert!(a.auth.is_none() && a.denied.len() == 1);
        let off = parse(
            &ingress(&[(ENABLE_GLOBAL_AUTH, "false")]),
            "default",
            &settings,
            &[],
        );
        assert!(off.denied.is_empty());
    }

    #[test]
    fn an_auth_url_served_by_the_ingress_itself_is_a_loop() {
        let a = asked(&[(AUTH_URL, "http://app.example/oauth2/auth")]);
        assert!(a.auth.is_none() && a.denied.len() == 1, "{:?}", a.denied);
        let a = asked(&[(AUTH_URL, "http://other.example/oauth2/auth")]);
        assert!(a.auth.is_some());
    }

    /// auth.go `should set cache_key when external auth cache is configured` and the caching
    /// context's `200 201 401 30m`.
    #[test]
    fn cache_key_and_durations_are_parsed() {
        let a = asked(&[
            (AUTH_URL, "http://auth/"),
            (AUTH_CACHE_KEY, "$remote_user$http_authorization"),
            (AUTH_CACHE_DURATION, "200 201 401 30m, 500 1h 30s"),
        ]);
        let cache = a.auth.unwrap().cache.clone().unwrap();
        assert_eq!(
            cache.key,
            vec![
                KeyPiece::RemoteUser,
                KeyPiece::Header(HeaderName::from_static("authorization"))
            ]
        );
        let ttl = |c: u16| cache.ttl(http::StatusCode::from_u16(c).unwrap());
        assert_eq!(ttl(201), Some(std::time::Duration::from_secs(1800)));
        assert_eq!(ttl(500), Some(std::time::Duration::from_secs(3630)));
        assert_eq!(ttl(202), None);
        // The default durations: 200 202 401 for 5m.
        let a = asked(&[(AUTH_URL, "http://auth/"), (AUTH_CACHE_KEY, "fixed")]);
        let cache = a.auth.unwrap().cache.clone().unwrap();
        assert_eq!(
            cache.ttl(http::StatusCode::ACCEPTED),
            Some(std::time::Duration::from_secs(300))
        );
        // An invalid duration denies (ingress-nginx), an unknown variable only disables caching.
        let a = asked(&[(AUTH_URL, "http://auth/"), (AUTH_CACHE_DURATION, "200 5x")]);
        assert!(a.auth.is_none() && a.denied.len() == 1);
        let a = asked(&[
            (AUTH_URL, "http://auth/"),
            (AUTH_CACHE_KEY, "$ssl_client_s_dn"),
        ]);
        assert!(a.auth.unwrap().cache.is_none() && a.invalid.len() == 1);
    }

    #[test]
    fn no_auth_locations_are_string_prefixes_of_the_path() {
        let s = Settings::default();
        assert!(exempt("/.well-known/acme-challenge", &s));
        assert!(exempt("/.well-known/acme-challenge/x", &s));
        assert!(!exempt("/", &s));
    }
}
