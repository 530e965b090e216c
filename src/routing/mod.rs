//! The immutable routing table that translate builds and the proxy reads per request.
//!
//! Knows neither kube nor hyper: hosts and paths come in as strings already normalised by
//! [`normalize`], backends go out as addresses.

pub mod basic_auth;
pub mod canary;
pub mod client_auth;
pub mod compression;
mod cors;
mod ext_auth;
mod global;
pub mod limits;
pub mod log_format;
mod mirror;
pub mod normalize;
pub mod passthrough;
mod policy;
mod regex_mode;
mod retry;
mod table;
pub mod tls_policy;
pub mod tls_session;
pub mod traffic;

pub use cors::{AllowOrigin, Cors, OriginPattern};
pub use ext_auth::{
    unreserved, AuthCache, AuthStore, CacheCodes, CacheValid, CachedAnswer, ExtAuth, KeyPiece,
    Signin, SigninPiece, SigninVar,
};
pub use global::{
    hsts_value, Cidr, ForwardedHeaders, Global, HeaderBuffers, UpstreamKeepalive, HSTS_MAX_AGE,
};
pub use mirror::{Mirror, MirrorPart};
pub use passthrough::Passthrough;
pub use policy::{
    Balance, CustomHeaders, ErrorBackend, ErrorPages, HeaderList, Piece, Policy, Protocol,
    Redirect, Replace, ResponseRewrite, Rewrite, RewriteTarget, UpstreamTls,
};
pub(crate) use regex_mode::compile as compile_regex;
pub use regex_mode::{is_target_byte, rewrite_target, RegexLocation, RegexMode, RegexProblem};
pub use retry::NextUpstream;
pub use table::{Decision, HostIndex, RouteTable, VirtualHost};
pub use traffic::Traffic;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

/// How a rule path is compared with the request path (spec §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

impl PathType {
    /// ImplementationSpecific is treated exactly like Prefix (spec §3.5).
    pub fn is_prefix(self) -> bool {
        !matches!(self, PathType::Exact)
    }
}

/// The rule host a virtual host answers for (spec §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HostMatch {
    /// `foo.bar.com`
    Exact(String),
    /// `*.bar.com`, stored as the suffix `bar.com`.
    Wildcard(String),
    /// Rules without a host.
    Any,
}

impl std::fmt::Display for HostMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(s) => write!(f, "*.{s}"),
            HostMatch::Any => f.write_str("*"),
        }
    }
}

/// Where a route came from: the Ingress, and the rule and path index within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Origin {
    pub namespace: String,
    pub name: String,
    pub rule: usize,
    pub path: usize,
}

/// One `(path, pathType, backend, origin)` entry of a virtual host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// The rule path after spec §3.4 step 5 normalisation (`""` for an empty
    /// ImplementationSpecific path is stored as `/`).
    pub path: String,
    pub path_type: PathType,
    pub backend: Arc<Backend>,
    pub origin: Origin,
    /// Plain-HTTP requests get a 308 to HTTPS instead of being proxied (spec §5.5): decided by
    /// translate from the vhost's TLS bindings and the route's Ingress.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ssl_redirect: bool,
}

impl Route {
    /// For Prefix routes, the path with one trailing `/` removed; `""` for `/` (spec §3.5).
    pub fn prefix_key(&self) -> &str {
        self.path.strip_suffix('/').unwrap_or(&self.path)
    }

    /// Effective length (spec §3.6 step 1).
    pub fn effective_len(&self) -> usize {
        if self.path_type.is_prefix() {
            self.prefix_key().len()
        } else {
            self.path.len()
        }
    }

    /// Whether this route matches the (normalised) request path (spec §3.5).
    pub fn matches(&self, path: &str) -> bool {
        if !self.path_type.is_prefix() {
            return path == self.path;
        }
        let q = self.prefix_key();
        q.is_empty()
            || path == q
            || (path.len() > q.len() && path.starts_with(q) && path.as_bytes()[q.len()] == b'/')
    }
}

/// The port of a Service backend as the Ingress wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

/// What an Ingress backend reference names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendRef {
    Service {
        namespace: String,
        name: String,
        port: PortRef,
    },
    /// A typed `resource` backend (spec §4.6): never served.
    Resource {
        namespace: String,
        kind: String,
        name: String,
    },
}

impl std::fmt::Display for BackendRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendRef::Service {
                namespace,
                name,
                port,
            } => write!(f, "{namespace}/{name}:{port}"),
            BackendRef::Resource {
                namespace,
                kind,
                name,
            } => write!(f, "{namespace}/{kind}/{name}"),
        }
    }
}

/// Why a backend cannot take traffic; the proxy answers 503 (spec §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Unavailable {
    ServiceNotFound,
    ServicePortNotFound,
    NoEndpoints,
    ResourceBackendUnsupported,
    ExternalNameRejected,
    ExternalNameDisabled,
    /// The routing Ingress asks for access control Portico does not implement: fail closed.
    AccessControlUnsupported,
    /// ingress-nginx would deny the routing Ingress's locations (a `custom-headers` ConfigMap
    /// that is missing or sets a header `global-allowed-response-headers` does not allow).
    LocationDenied,
}

/// Where a backend's traffic goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// Endpoint addresses, sorted and de-duplicated (spec §4.2); never empty.
    Endpoints(Vec<SocketAddr>),
    /// An ExternalName Service (spec §4.5): resolved when connecting.
    ExternalName {
        host: String,
        port: u16,
    },
    Unavailable(Unavailable),
}

/// A resolved backend: what it was called and where its traffic goes. Immutable data only:
/// the round-robin position and endpoint health live in `proxy::balance`, keyed by
/// [`BackendRef`] and endpoint address, so a table swap resets neither.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    #[serde(rename = "ref")]
    pub reference: BackendRef,
    pub target: Target,
    /// The Service port's `appProtocol`, when it names one Portico speaks.
    #[serde(rename = "appProtocol", skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<Protocol>,
    /// The routing Ingress's annotations (translate gives a backend its own copy when they
    /// differ from the defaults).
    #[serde(skip_serializing_if = "policy_is_default")]
    pub policy: Arc<Policy>,
}

fn policy_is_default(policy: &Arc<Policy>) -> bool {
    policy.is_default()
}

impl Backend {
    pub fn new(reference: BackendRef, target: Target) -> Self {
        Backend {
            reference,
            target,
            app_protocol: None,
            policy: Policy::shared_default(),
        }
    }

    /// This backend under another Ingress's annotations.
    pub fn with_policy(&self, policy: Arc<Policy>) -> Self {
        Backend {
            policy,
            ..self.clone()
        }
    }

    /// This backend refusing traffic for `why` (the proxy answers 503).
    pub fn unavailable(&self, why: Unavailable) -> Self {
        Backend {
            target: Target::Unavailable(why),
            ..self.clone()
        }
    }

    /// The protocol upstream connections speak: the annotation, else `appProtocol`, else
    /// HTTP/1.1.
    pub fn protocol(&self) -> Protocol {
        self.policy
            .protocol
            .or(self.app_protocol)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
