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

/// How to verify an HTTPS/GRPCS upstream's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTls {
    /// PEM CA bundle from the `proxy-ssl-secret` Secret (`ca.crt`).
    #[serde(skip)]
    pub ca_pem: Vec<u8>,
    /// The Secret it came from, `namespace/name` (for /debug/routes).
    pub secret: String,
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
    /// Largest request body in bytes; `Some(0)` means no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<u64>,
    /// `backend-protocol`; wins over the Service port's `appProtocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Verify HTTPS/GRPCS upstreams against this CA; `None`: no verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<UpstreamTls>,
    /// ingress-nginx's `default-backend` and `custom-http-errors` (annotations) and the
    /// ConfigMap's `custom-http-errors`: who answers instead of the routed Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_pages: Option<Arc<ErrorPages>>,
    /// ingress-nginx's `custom-headers`: response headers from a ConfigMap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_headers: Option<Arc<CustomHeaders>>,
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

impl Policy {
    pub fn is_default(&self) -> bool {
        *self == Policy::default()
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
