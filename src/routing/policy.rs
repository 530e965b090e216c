//! Per-Ingress proxy settings parsed from annotations at translate time (typed, never per
//! request). `None` fields mean "the controller's flag applies".

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{Backend, Target};

/// How a backend's endpoints are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// spec §4.3: round-robin with a random start per process.
    #[default]
    RoundRobin,
    /// Peak-EWMA latency with power-of-two-choices (linkerd2-proxy's balancer).
    Ewma,
}

/// What an upstream connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// HTTP/1.1 over TCP (spec §6.1).
    #[default]
    Http,
    /// HTTP/1.1 over TLS.
    Https,
    /// HTTP/2 with prior knowledge over TCP.
    H2c,
    /// gRPC: HTTP/2 with prior knowledge over TCP.
    Grpc,
    /// gRPC over TLS (HTTP/2 by ALPN).
    Grpcs,
}

impl Protocol {
    /// Whether the upstream connection is TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Grpcs)
    }

    /// Whether the upstream connection is HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::H2c | Protocol::Grpc | Protocol::Grpcs)
    }

    /// The annotation value (`HTTP`, `H2C`, ...), case-insensitive.
    pub fn parse(value: &str) -> Option<Protocol> {
        match value.trim().to_ascii_uppercase().as_str() {
            "HTTP" => Some(Protocol::Http),
            "HTTPS" => Some(Protocol::Https),
            "H2C" => Some(Protocol::H2c),
            "GRPC" => Some(Protocol::Grpc),
            "GRPCS" => Some(Protocol::Grpcs),
            _ => None,
        }
    }

    /// A Service port's `appProtocol` (KEP-3726 standard names, and the common `grpc`).
    pub fn from_app_protocol(value: &str) -> Option<Protocol> {
        match value {
            "kubernetes.io/h2c" | "h2c" => Some(Protocol::H2c),
            "grpc" => Some(Protocol::Grpc),
            "kubernetes.io/wss" | "https" => Some(Protocol::Https),
            "kubernetes.io/ws" | "http" => Some(Protocol::Http),
            _ => None,
        }
    }
}

/// TLS to an HTTPS/GRPCS upstream (`proxy-ssl-*`): how to verify its certificate, which
/// certificate to show it, which name and versions to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTls {
    /// PEM CA bundle from the `proxy-ssl-secret` Secret (`ca.crt`); empty: the upstream's
    /// certificate is not verified (issue 15: the client certificate alone may be asked).
    #[serde(skip)]
    pub ca_pem: Vec<u8>,
    /// The Secret it came from, `namespace/name` (for /debug/routes).
    pub secret: String,
    /// `tls.crt` and `tls.key` of that Secret: the client certificate shown to the upstream.
    #[serde(skip)]
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// `proxy-ssl-name`: the name verified (and sent as SNI) instead of
    /// `SERVICE.NAMESPACE.svc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `proxy-ssl-server-name`: send the name as SNI (`None`: when verifying, as before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<bool>,
    /// `proxy-ssl-protocols`: `Some(true)` TLS 1.3 only, `Some(false)` TLS 1.2 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls13_only: Option<bool>,
    /// `proxy-ssl-verify-depth`: most certificates above the upstream's, the CA included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_depth: Option<u32>,
    /// `proxy-ssl-ciphers`: the TLS 1.2 suites offered, by OpenSSL name (`None`: all of
    /// rustls's; TLS 1.3 suites are never restricted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphers: Option<Vec<&'static str>>,
}

impl UpstreamTls {
    /// Whether the upstream's certificate is verified (a CA bundle was given).
    pub fn verifies(&self) -> bool {
        !self.ca_pem.is_empty()
    }
}

/// Settings an Ingress sets for its own routes through annotations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<Balance>,
    /// Attempts in all, first one included (`proxy-next-upstream-tries`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub connect_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub response_timeout: Option<Duration>,
    /// `proxy-send-timeout`: while the body is sent, the longest the upstream may take none.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub send_timeout: Option<Duration>,
    /// Largest request body in bytes; `Some(0)` means no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<u64>,
    /// `backend-protocol`; wins over the Service port's `appProtocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Verify HTTPS/GRPCS upstreams against this CA; `None`: no verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<UpstreamTls>,
    /// `use-regex`, `rewrite-target`, `app-root`, `x-forwarded-prefix`,
    /// `preserve-trailing-slash` (issue 13); `None` when the Ingress sets none of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Box<Rewrite>>,
    /// `permanent-redirect` / `temporal-redirect`: answer every request with this redirect
    /// instead of proxying (ingress-nginx's `return CODE URL;`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// `upstream-vhost`: the `Host` header the upstream sees, made a header value once here
    /// rather than per request.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_header_value"
    )]
    pub upstream_vhost: Option<http::HeaderValue>,
    /// `proxy-redirect-*`, `proxy-cookie-*`: response header rewriting (`proxy/response_rewrite`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite_response: Option<ResponseRewrite>,
    /// `service-upstream`: with `Some(true)` the backend's one endpoint is the Service's
    /// ClusterIP and port (translate replaces the target; kept here so the shared backend
    /// differs). `Some(false)` is an explicit "no", for when the ConfigMap's global
    /// `service-upstream` arrives (`None` will then mean "the global setting").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_upstream: Option<bool>,
    /// ingress-nginx's `default-backend` and `custom-http-errors` (annotations) and the
    /// ConfigMap's `custom-http-errors`: who answers instead of the routed Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_pages: Option<Arc<ErrorPages>>,
    /// ingress-nginx's `custom-headers`: response headers from a ConfigMap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_headers: Option<Arc<CustomHeaders>>,
    /// Source ranges, rate and connection limits (issue 14, `routing/limits.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<Arc<super::limits::Access>>,
    /// A canary Ingress attached to this backend (issue 14, `routing::canary`); set by
    /// translate's merge, never by the backend's own Ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<Arc<super::canary::Canary>>,
    /// `enable-cors` and `cors-*` (issue 14, `translate/cors.rs`); `None` when CORS is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Arc<super::Cors>>,
    /// `proxy-next-upstream` (issue 14): when a failed attempt goes to another endpoint;
    /// `None`: the ConfigMap's, else ingress-nginx's default `error timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_upstream: Option<super::NextUpstream>,
    /// `proxy-next-upstream-timeout`: no new attempt once this long has passed since the
    /// first began; `Some(ZERO)`: no limit.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub next_upstream_timeout: Option<Duration>,
    /// `proxy-http-version`: `Some(true)` for `1.0`, `Some(false)` for `1.1`; HTTP/1.x
    /// upstreams only (`backend-protocol` HTTP/2 ones keep HTTP/2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_http10: Option<bool>,
    /// `proxy-request-buffering`: `Some(false)` for `off` (stream the request body);
    /// `None`: the ConfigMap's, else `on` (proxy/buffering.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_buffering: Option<bool>,
    /// `mirror-target`, `mirror-host`, `mirror-request-body` (issue 14, `translate/mirror.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Arc<super::Mirror>>,
    /// `enable-access-log: "false"`: this Ingress's requests write no access log line.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_access_log: bool,
    /// issue 14: `upstream-hash-by*` and cookie `affinity` of the backend's Service, from the
    /// Ingresses ingress-nginx takes them from (`translate/affinity.rs`); `None`: neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Arc<super::Traffic>>,
    /// ingress-nginx's `auth-type: basic` with `auth-secret` (`translate/basic_auth.rs`,
    /// checked by `proxy/basic_auth.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<Arc<super::basic_auth::BasicAuth>>,
    /// ingress-nginx's `auth-url` family (or the ConfigMap's `global-auth-*`): ask this
    /// auth service before proxying (`proxy/ext_auth.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_auth: Option<Arc<super::ExtAuth>>,
}

/// The regex and rewrite annotations of one Ingress, typed at translate time
/// (`translate::rewrite`). How the proxy applies them is in `proxy::rewrite`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    /// `use-regex: "true"`: this Ingress's paths are regexes, and so are all paths of its
    /// hosts (ingress-nginx `enforceRegexModifier`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub use_regex: bool,
    /// `rewrite-target`, parsed into literal text and `$n` capture references.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<RewriteTarget>,
    /// `x-forwarded-prefix`: sent upstream as `X-Forwarded-Prefix` on rewritten requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_forwarded_prefix: Option<String>,
    /// `app-root`: a request for `/` of the host gets a 302 to this path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_root: Option<String>,
    /// `preserve-trailing-slash: "false"`: the HTTPS redirect drops one trailing `/` of the
    /// request-target, as ingress-nginx's default does.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strip_trailing_slash: bool,
}

impl Rewrite {
    /// Whether this Ingress turns every path of its hosts into a regex: `use-regex` or any
    /// `rewrite-target` (ingress-nginx `enforceRegexModifier` checks `Target != ""`).
    pub fn enforces_regex(&self) -> bool {
        self.use_regex || self.target.is_some()
    }
}

/// A `rewrite-target` value: the text as written and its pieces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RewriteTarget {
    pub text: String,
    #[serde(skip)]
    pub pieces: Vec<Piece>,
}

impl RewriteTarget {
    /// The highest capture group referenced (`0` when none).
    pub fn max_group(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Group(n) => *n,
                Piece::Literal(_) => 0,
            })
            .max()
            .unwrap_or(0)
    }
}

/// One piece of a rewrite target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    Literal(String),
    /// `$n`: the text of capture group `n` (`$0`: the whole match), empty when it did not
    /// take part in the match (as nginx's `rewrite`).
    Group(usize),
}

/// A fixed redirect: `Location: url` with `code` (301, 302, 303, 307 or 308).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Redirect {
    pub code: u16,
    pub url: String,
}

/// One `from → to` replacement (nginx `proxy_redirect FROM TO`, `proxy_cookie_domain`,
/// `proxy_cookie_path`); both literal strings, never patterns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Replace {
    pub from: String,
    pub to: String,
}

/// How upstream response headers are rewritten; each `None` leaves its headers alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResponseRewrite {
    /// `Location` and `Refresh` (`proxy_redirect`): a prefix, case-sensitive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Replace>,
    /// The `Domain` attribute of `Set-Cookie` (`proxy_cookie_domain`): the whole domain,
    /// case-insensitive, a leading dot ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<Replace>,
    /// The `Path` attribute of `Set-Cookie` (`proxy_cookie_path`): a prefix, case-sensitive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_path: Option<Replace>,
}

/// Header fields, validated at translate time, in the order they are applied.
pub type HeaderList = Vec<(http::HeaderName, http::HeaderValue)>;

/// The response headers of one Ingress's `custom-headers` (`translate/custom_headers.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomHeaders {
    /// Set on every answer of the Ingress's paths, replacing the upstream's (nginx's
    /// `more_set_headers`).
    pub headers: HeaderList,
    /// ingress-nginx would deny the location (ConfigMap missing, header not allowed): 503.
    pub denied: bool,
}

impl Serialize for CustomHeaders {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.denied {
            return s.serialize_str("denied");
        }
        let mut map = s.serialize_map(Some(self.headers.len()))?;
        for (name, value) in &self.headers {
            map.serialize_entry(name.as_str(), &String::from_utf8_lossy(value.as_bytes()))?;
        }
        map.end()
    }
}

/// Error pages of one Ingress (ingress-nginx's `error_page ... = @custom_...` locations,
/// `rootfs/etc/nginx/template/nginx.tmpl` "CUSTOM_ERRORS"), typed by translate
/// (`translate/error_pages.rs`) and read by `proxy/error_pages.rs` per request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorPages {
    /// Statuses (sorted, 300–599) answered by [`ErrorPages::error_backend`]: the Ingress's
    /// `custom-http-errors`, else the ConfigMap's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    /// Whether `codes` came from the annotation: then the `default-backend` annotation's
    /// Service answers them when it has endpoints (ingress-nginx's `DefaultBackendUpstreamName`),
    /// else the global one. The ConfigMap's list always goes to the global default backend
    /// (its `error_page` sits at nginx's `http` level and names `upstream-default-backend`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub codes_from_annotation: bool,
    /// `disable-proxy-intercept-errors: "true"`: upstream answers with a listed status pass
    /// unchanged; Portico's own errors (502, 503, 504) are still answered by the error backend,
    /// as nginx's `error_page` applies to its own errors whatever `proxy_intercept_errors` says.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub upstream_passes: bool,
    /// The `default-backend` annotation's Service (first port, the Ingress's namespace): it
    /// answers for a routed Service without endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<ErrorBackend>,
    /// `--default-backend-service`, ingress-nginx's `upstream-default-backend`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<ErrorBackend>,
    /// `X-Namespace` and `X-Ingress-Name` sent to the error backend.
    #[serde(skip)]
    pub namespace: String,
    #[serde(skip)]
    pub ingress: String,
}

impl ErrorPages {
    /// Whether `status` is one of `codes`.
    pub fn lists(&self, status: u16) -> bool {
        self.codes.binary_search(&status).is_ok()
    }

    /// The backend that answers listed statuses, if one can take traffic.
    pub fn error_backend(&self) -> Option<&Arc<Backend>> {
        let custom = self
            .custom
            .as_ref()
            .filter(|_| self.codes_from_annotation)
            .filter(|b| b.serves());
        custom
            .or(self.global.as_ref().filter(|b| b.serves()))
            .map(|b| &b.0)
    }

    /// The `default-backend` annotation's Service, when it can take traffic.
    pub fn fallback(&self) -> Option<&Arc<Backend>> {
        self.custom.as_ref().filter(|b| b.serves()).map(|b| &b.0)
    }
}

/// A backend inside a [`Policy`]: compared by value, hashed by reference (equal values have
/// equal references, so the two agree), shown as its reference.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorBackend(pub Arc<Backend>);

// `Backend` holds no floating point: its equality is total.
impl Eq for ErrorBackend {}

impl std::hash::Hash for ErrorBackend {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.reference.hash(state);
    }
}

impl Serialize for ErrorBackend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.reference)
    }
}

impl ErrorBackend {
    /// Whether it has endpoints: ingress-nginx uses a custom default backend only "if [it]
    /// contains at least one endpoint" (`internal/ingress/controller/controller.go`). An
    /// ExternalName Service is not used as an error backend.
    pub fn serves(&self) -> bool {
        matches!(self.0.target, Target::Endpoints(_))
    }
}

/// The one default policy every backend without annotations shares (see [`Policy::shared_default`]).
static DEFAULT: std::sync::LazyLock<Arc<Policy>> = std::sync::LazyLock::new(Arc::default);

impl Policy {
    pub fn is_default(&self) -> bool {
        std::ptr::eq(self, &**DEFAULT) || *self == Policy::default()
    }

    /// The default policy, one allocation for the whole process. A `Policy` is about 560 bytes
    /// inline, and every `Backend::new` used to allocate its own default one: 0.6 KB per backend,
    /// the largest single allocation per Ingress in translate's state (issue 11, docs/performance.md
    /// "Memory"). Immutable, so sharing it changes nothing but the bytes.
    pub fn shared_default() -> Arc<Policy> {
        DEFAULT.clone()
    }
}

fn opt_header_value<S: serde::Serializer>(
    v: &Option<http::HeaderValue>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&String::from_utf8_lossy(v.as_bytes())),
        None => s.serialize_none(),
    }
}

mod opt_duration {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}
