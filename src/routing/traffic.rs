//! Service-scoped traffic policy (issue 14): ingress-nginx's `upstream-hash-by*` and cookie
//! `affinity`, typed at translate time (`translate/affinity.rs`) and applied by the proxy's
//! endpoint choice (`proxy/affinity.rs`). Knows neither kube nor hyper.

use serde::Serialize;

/// How one backend's endpoints are chosen beyond `load-balance`: by a hash of the request
/// (`upstream-hash-by`) or by a session cookie (`affinity: cookie`, which wins, as in
/// ingress-nginx's `balancer.lua` `get_implementation`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_by: Option<HashBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// `upstream-hash-by`: the template as written and its pieces, never evaluated as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HashBy {
    pub text: String,
    #[serde(skip)]
    pub pieces: Vec<HashPiece>,
    /// `upstream-hash-by-subset: "true"`: the key picks a subset of this many endpoints
    /// (`upstream-hash-by-subset-size`, default 3) and a random endpoint of it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<usize>,
}

/// One piece of an `upstream-hash-by` template: literal text or one of a fixed set of nginx
/// variables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashPiece {
    Literal(String),
    /// `$request_uri`: the path and query as the client sent them.
    RequestUri,
    /// `$uri`: the request path as sent (nginx's is decoded and normalised; docs/decisions.md).
    Uri,
    /// `$args` / `$query_string`.
    Args,
    /// `$host`: the request host, lower case, without port.
    Host,
    /// `$remote_addr`: the client address (the PROXY protocol's when one is used).
    RemoteAddr,
    /// `$scheme`.
    Scheme,
    /// `$request_method`.
    Method,
    /// `$http_NAME`: the request header (`_` in NAME is `-`), lower case.
    Header(String),
    /// `$cookie_NAME`: the value of the cookie NAME.
    Cookie(String),
    /// `$arg_NAME`: the value of query parameter NAME.
    Arg(String),
}

/// `affinity: cookie` and its `session-cookie-*` / `affinity-mode` settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    /// `affinity-mode: persistent`: the cookie names an endpoint (by a salted hash), and new
    /// endpoints never take sessions over; `balanced` (default): the cookie holds a random
    /// key, consistently hashed onto the endpoints, so scaling up moves some sessions.
    pub persistent: bool,
    /// `session-cookie-name` (default `INGRESSCOOKIE`).
    pub name: String,
    /// `session-cookie-path`; `None`: the path of the route that issued the cookie
    /// (nginx's `location_path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `session-cookie-samesite`: `None`, `Lax` or `Strict` as written to the cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samesite: Option<SameSite>,
    /// `session-cookie-conditional-samesite-none`: no `SameSite=None` for user agents known to
    /// mishandle it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conditional_samesite_none: bool,
    /// `session-cookie-secure: "true"`: `Secure` on plain HTTP too (HTTPS always has it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secure: bool,
    /// `session-cookie-max-age` in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// `session-cookie-expires` in seconds from the moment the cookie is issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// `session-cookie-change-on-failure`: a failed attempt re-issues the cookie for another
    /// endpoint; without it the session stays on its endpoint.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub change_on_failure: bool,
    /// Whether the routes of this backend issue the cookie: only the paths of Ingresses that
    /// set `affinity: cookie` do (ingress-nginx `sticky.lua` `should_set_cookie`); the others
    /// follow a cookie they are sent but never set one.
    pub issues: bool,
    /// Identifies the backend in the cookie (`KEY|BACKEND`), a hash of its name, never an
    /// address (ingress-nginx's `backend_key`).
    pub backend_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SameSite {
    None,
    Lax,
    Strict,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::None => "None",
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

/// FNV-1a, 64 bits: a hash every replica and every version computes alike (std's hasher is
/// unspecified and randomly keyed), so one key lands on one endpoint whichever replica serves.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// splitmix64's finaliser: spreads FNV's weak low bits over the whole word.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stable hash of some bytes.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::default();
    h.write(bytes);
    h.finish()
}
