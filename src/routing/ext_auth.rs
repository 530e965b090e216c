//! External authentication (ingress-nginx's `auth-url` family, issue 15), typed at translate
//! time (`translate/ext_auth.rs`) and carried in a backend's [`Policy`](super::Policy); the
//! proxy (`proxy/ext_auth.rs`) asks the auth service per request. Nothing here is evaluated:
//! the sign-in URL's few nginx variables are parsed into [`SigninPiece`]s once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use serde::Serialize;

use super::HeaderList;

/// One Ingress's external authentication.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtAuth {
    /// `auth-url` as written (for `/debug/routes`).
    pub url: String,
    /// The same, parsed: an absolute `http://` or `https://` URI.
    pub uri: Uri,
    /// `Host` sent to the auth service: the URL's host without its port (ingress-nginx
    /// `authURL.Hostname()`).
    pub host: HeaderValue,
    /// `auth-method`: the auth request's method (else the client's).
    pub method: Option<Method>,
    /// `auth-signin` (with `auth-signin-redirect-param`): a 401 becomes a 302 to it.
    pub signin: Option<Signin>,
    /// `auth-response-headers`: copied from the auth service's 2xx answer to the upstream
    /// request, replacing (or, when the answer lacks one, removing) the client's.
    pub response_headers: Vec<HeaderName>,
    /// `auth-request-redirect`: the `X-Auth-Request-Redirect` value (else the request URI).
    pub request_redirect: Option<HeaderValue>,
    /// `auth-always-set-cookie`: the auth answer's `Set-Cookie` goes on every answer, not
    /// only on 2xx/3xx ones (nginx `add_header ... always`).
    pub always_set_cookie: bool,
    /// `auth-proxy-set-headers`: headers (from a ConfigMap) sent to the auth service.
    pub proxy_set_headers: HeaderList,
    /// Where it came from: the Ingress's annotation or the ConfigMap's `global-auth-url`.
    pub global: bool,
    /// `auth-cache-key` with `auth-cache-duration`: auth answers kept per key.
    pub cache: Option<AuthCache>,
}

impl Serialize for ExtAuth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("url", &self.url)?;
        if self.global {
            map.serialize_entry("global", &true)?;
        }
        if let Some(method) = &self.method {
            map.serialize_entry("method", method.as_str())?;
        }
        if let Some(signin) = &self.signin {
            map.serialize_entry("signin", &signin.text)?;
        }
        if !self.response_headers.is_empty() {
            let names: Vec<&str> = self.response_headers.iter().map(|n| n.as_str()).collect();
            map.serialize_entry("responseHeaders", &names)?;
        }
        if self.always_set_cookie {
            map.serialize_entry("alwaysSetCookie", &true)?;
        }
        if let Some(cache) = &self.cache {
            map.serialize_entry("cacheKey", &cache.key_text)?;
        }
        if !self.proxy_set_headers.is_empty() {
            let names: Vec<&str> = self
                .proxy_set_headers
                .iter()
                .map(|(n, _)| n.as_str())
                .collect();
            map.serialize_entry("proxySetHeaders", &names)?;
        }
        map.end()
    }
}

/// The sign-in redirect's `Location`, as ingress-nginx's `buildAuthSignURL` writes it
/// (`auth-signin` plus `?rd=$pass_access_scheme://$http_host$escaped_request_uri`), in pieces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signin {
    /// The annotation as written.
    pub text: String,
    pub pieces: Vec<SigninPiece>,
}

/// Literal text, or one of the nginx variables a sign-in URL may use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SigninPiece {
    Literal(String),
    Var(SigninVar),
}

/// The nginx variables Portico fills in a sign-in URL (each from the request, validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigninVar {
    /// `$host`: the request's host name, lowercase, without port.
    Host,
    /// `$http_host` (and `$best_http_host`): the `Host` header as sent.
    HttpHost,
    /// `$scheme`: `http` or `https`, how the request reached Portico.
    Scheme,
    /// `$pass_access_scheme`: the scheme, or `https` when a trusted balancer says so.
    PassAccessScheme,
    /// `$request_uri`: the request-target as sent.
    RequestUri,
    /// `$escaped_request_uri`: the same, percent-encoded as a query component.
    EscapedRequestUri,
}

impl SigninVar {
    /// The variable named `name` (without `$`).
    pub fn parse(name: &str) -> Option<SigninVar> {
        Some(match name {
            "host" => SigninVar::Host,
            "http_host" | "best_http_host" => SigninVar::HttpHost,
            "scheme" => SigninVar::Scheme,
            "pass_access_scheme" => SigninVar::PassAccessScheme,
            "request_uri" => SigninVar::RequestUri,
            "escaped_request_uri" => SigninVar::EscapedRequestUri,
            _ => return None,
        })
    }
}

/// RFC 3986 unreserved characters: what `$escaped_request_uri` leaves as is, and what a
/// sign-in redirect parameter's name may hold.
pub fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `auth-cache-key` (a template of nginx variables, parsed, filled per request from the
/// request) and `auth-cache-duration` (which statuses are kept how long), with the store of
/// one Ingress's (or the global) auth answers. Compared and hashed by its settings only.
#[derive(Debug, Clone)]
pub struct AuthCache {
    pub key: Vec<KeyPiece>,
    /// The annotation as written.
    pub key_text: String,
    /// nginx `proxy_cache_valid` lines, first match wins.
    pub valid: Vec<CacheValid>,
    pub store: Arc<AuthStore>,
}

impl PartialEq for AuthCache {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.valid == other.valid
    }
}

impl Eq for AuthCache {}

impl std::hash::Hash for AuthCache {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
        self.valid.hash(state);
    }
}

impl AuthCache {
    /// How long an answer with `status` is kept; `None`: not kept.
    pub fn ttl(&self, status: StatusCode) -> Option<Duration> {
        let code = status.as_u16();
        self.valid
            .iter()
            .find(|v| match &v.codes {
                CacheCodes::Any => true,
                CacheCodes::List(codes) => codes.contains(&code),
            })
            .map(|v| v.ttl)
    }
}

/// One piece of a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPiece {
    Literal(String),
    /// `$http_NAME`: the request header (`_` read as `-`), values joined.
    Header(HeaderName),
    /// `$cookie_NAME`: that cookie of the `Cookie` header.
    Cookie(String),
    /// `$arg_NAME`: that query parameter.
    Arg(String),
    /// `$remote_addr`: the client address.
    RemoteAddr,
    /// `$host`: the request's host, lowercase, without port.
    Host,
    /// `$request_uri`: the request-target as sent.
    RequestUri,
    /// `$uri`: its path.
    Uri,
    /// `$remote_user`: read as the whole `Authorization` header (which names the user and
    /// more), so the key is never coarser than nginx's.
    RemoteUser,
}

/// Which statuses a `proxy_cache_valid` line covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheCodes {
    Any,
    List(Vec<u16>),
}

/// `[code ...] time ...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheValid {
    pub codes: CacheCodes,
    pub ttl: Duration,
}

/// A kept auth answer: what deciding again from it needs.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub status: StatusCode,
    /// The `auth-response-headers` values, in their order.
    pub headers: Vec<Vec<HeaderValue>>,
    pub cookies: Vec<HeaderValue>,
    pub www_authenticate: Vec<HeaderValue>,
}

/// Bounded store of auth answers: at most [`AuthStore::MAX_ENTRIES`]; when full, expired
/// entries are dropped, and a new answer that still does not fit is not kept.
#[derive(Debug, Default)]
pub struct AuthStore {
    entries: Mutex<HashMap<Vec<u8>, (Instant, CachedAnswer)>>,
}

impl AuthStore {
    pub const MAX_ENTRIES: usize = 10_000;

    /// The answer kept under `key`, if it has not expired at `now`.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<CachedAnswer> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, answer)| answer.clone())
    }

    /// Keeps `answer` under `key` until `expires`.
    pub fn put(&self, key: Vec<u8>, answer: CachedAnswer, now: Instant, expires: Instant) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= Self::MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (e, _)| *e > now);
            if entries.len() >= Self::MAX_ENTRIES {
                return;
            }
        }
        entries.insert(key, (expires, answer));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
