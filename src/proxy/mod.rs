//! Proxy: the data path. Accepts client connections (`server`), decides per request from the
//! one published `RouteTable` (`service`), picks an endpoint (`balance`), forwards over pooled
//! upstream connections (`upstream`: HTTP/1.1, h2c, or TLS), and turns every failure into a
//! response in one place (`error`). On the HTTPS listener `server` terminates TLS first (after
//! a PROXY protocol header, `proxy_protocol`, when configured); on the HTTP one `redirect`
//! answers the requests that translate marked for HTTPS.
//!
//! Reads the configuration through [`crate::publish::Shared`] only: per request it loads the
//! `ArcSwap`, matches synchronously, keeps the chosen backend's `Arc` and drops the guard before
//! any `.await`, so a table swap never waits for and never disturbs in-flight requests.

pub mod affinity;
mod balance;
pub mod basic_auth;
mod buffering;
mod canary;
mod client_auth;
pub mod compress;
mod cors;
mod custom_headers;
mod error;
mod error_pages;
mod ext_auth;
mod global;
mod h1client;
mod h2pool;
mod headers;
pub mod limits;
mod mirror;
mod observe;
mod passthrough;
mod pool;
mod proxy_protocol;
mod redirect;
mod response_rewrite;
mod rewrite;
mod server;
mod service;
mod tls_hello;
mod upstream;
mod upstream_tls;
pub mod workers;

pub use upstream_tls::NoVerification;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

pub use balance::{Attempt, Balancer, Health};
pub use error::{ClientFault, ProxyError};
pub use passthrough::{
    parse as parse_client_hello, Hello as ClientHello, IDLE_TIMEOUT as PASSTHROUGH_IDLE_TIMEOUT,
};
pub use proxy_protocol::Cidr;
/// The PROXY header parser, public for tests/fuzz.rs.
pub use proxy_protocol::{read_header, ProxyHeaderError};
pub use redirect::{is_acme_challenge, location as redirect_location, RedirectSettings};
pub use server::{serve, serve_tls, TlsListener};

/// The body type of every response the proxy writes to clients.
pub type ProxyBody = BoxBody<Bytes, BodyError>;

/// A response body's error: hyper's, or the own upstream client's (`h1client.rs`). Either
/// way the client's response is aborted.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The scheme clients used to reach this listener; becomes `X-Forwarded-Proto` (spec §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a client dialled when its authority names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Settings of one proxy listener.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// `http` or `https`: sets `X-Forwarded-Proto` and the default `X-Forwarded-Port`.
    pub scheme: Scheme,
    /// Limit on the request line plus header block; larger requests get 431 (spec §4.4).
    /// hyper's own read buffer is configured somewhat above this, so this check is what
    /// clients normally hit; a header block beyond hyper's cap (limit + 16 KiB), or more than
    /// [`MAX_HEADERS`] header lines, is refused by hyper itself with a bare 431 and no body.
    pub max_header_bytes: usize,
    /// Upstream TCP connect timeout; expiry answers 504.
    pub connect_timeout: Duration,
    /// Wait for the upstream's response headers, counted from when the request body has been
    /// sent (at once for bodiless requests); expiry answers 504.
    pub response_timeout: Duration,
    /// While the request body is sent: the longest the upstream may take none of it (nginx
    /// `proxy_send_timeout`); expiry answers 504.
    pub send_timeout: Duration,
    /// Balancing when the Ingress does not say (`--load-balance`).
    pub balance: crate::routing::Balance,
    /// Attempts per request in all when the Ingress does not say
    /// (`--proxy-next-upstream-tries`).
    pub tries: u32,
    /// Largest request body in bytes when the Ingress does not say (`--proxy-body-size`);
    /// 0: no limit.
    pub body_limit: u64,
    /// Idle pooled upstream connections are closed after this.
    pub upstream_idle_timeout: Duration,
    /// A client must send a complete request head within this (slowloris): its first request
    /// counted from accept (after the TLS handshake on HTTPS), on HTTP/1 each next one from
    /// the end of the previous response, on HTTP/2 each header block (HEADERS to END_HEADERS).
    /// Expiry closes the connection.
    pub header_read_timeout: Duration,
    /// A request body that delivers no bytes for this long is cut and answered 408 (nginx's
    /// `client_body_timeout`, between two reads, not for the whole body).
    pub client_body_timeout: Duration,
    /// A client connection with no request in flight for this long is shut down gracefully
    /// (HTTP/2: GOAWAY), and closed if that has not finished `h2_keepalive_timeout` later.
    /// Bytes without a request (pings, window updates) do not count as activity.
    pub client_idle_timeout: Duration,
    /// HTTP/2: a PING is sent when the client has sent nothing for this long...
    pub h2_keepalive_interval: Duration,
    /// ...and the connection closed if its PONG does not arrive within this. Also the grace
    /// after an idle shutdown before the connection is closed regardless.
    pub h2_keepalive_timeout: Duration,
    /// Client connections served at once, per listener; 0: no limit. Beyond it new
    /// connections wait in the kernel's accept backlog (one per worker accepted and held).
    pub max_connections: usize,
    /// The permits behind `max_connections` when several `serve` calls share one listener's
    /// limit (the per-core workers do); `None`: each `serve` call makes its own.
    pub connection_limit: Option<Arc<tokio::sync::Semaphore>>,
    /// HTTP/2 streams a client may open at once on one connection.
    pub h2_max_concurrent_streams: u32,
    /// Expect a PROXY protocol (v1 or v2) header on every connection.
    pub proxy_protocol: bool,
    /// Peers whose `X-Forwarded-For` is kept and extended and whose PROXY header is
    /// accepted; empty: everyone (spec §6.2 appends by default).
    pub trusted_proxies: Arc<Vec<Cidr>>,
    /// How long in-flight requests may finish after the listener stops accepting.
    pub drain_timeout: Duration,
    /// `Upgrade` protocols tunnelled (names, case-insensitive; `--allowed-upgrades`); any
    /// other upgrade request is forwarded as a plain request without its `Upgrade`.
    pub upgrade_protocols: Arc<Vec<String>>,
    /// Per-endpoint balancing and health state, shared by all listeners.
    pub balancer: Arc<Balancer>,
    /// Per-address rate and connection limit state (issue 14), shared by all listeners.
    pub limiter: Arc<limits::Limiter>,
    /// Where requests are counted and logged.
    pub observe: Observe,
    /// What the path checks let through (`--allow-encoded-slashes`, spec §6.1).
    pub path_rules: crate::routing::normalize::PathRules,
    /// `--enable-ssl-passthrough`: the HTTPS listener reads each ClientHello's SNI (when some
    /// host is passthrough) and splices those connections (`passthrough.rs`).
    pub ssl_passthrough: bool,
    /// A spliced connection with no byte either way for this long is closed.
    pub passthrough_idle_timeout: Duration,
}

/// The metrics and access log one listener feeds. The default counts into a private
/// [`Metrics`] nobody reads and writes no access log.
#[derive(Debug, Clone, Default)]
pub struct Observe {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub access_log: Option<crate::access_log::AccessLog>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            scheme: Scheme::Http,
            max_header_bytes: 32 * 1024,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            balance: crate::routing::Balance::RoundRobin,
            tries: 3,
            body_limit: 1 << 20,
            upstream_idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            client_body_timeout: Duration::from_secs(60),
            client_idle_timeout: Duration::from_secs(75),
            h2_keepalive_interval: Duration::from_secs(30),
            h2_keepalive_timeout: Duration::from_secs(20),
            max_connections: 0,
            connection_limit: None,
            h2_max_concurrent_streams: 128,
            proxy_protocol: false,
            trusted_proxies: Arc::default(),
            drain_timeout: DRAIN_TIMEOUT,
            upgrade_protocols: Arc::new(vec!["websocket".to_string()]),
            balancer: Arc::default(),
            limiter: Arc::default(),
            observe: Observe::default(),
            path_rules: Default::default(),
            ssl_passthrough: false,
            passthrough_idle_timeout: passthrough::IDLE_TIMEOUT,
        }
    }
}

/// Most header lines hyper parses in one HTTP/1 request; more is answered 431 by hyper. This
/// is hyper's own default (the server builder does not set it): setting any limit, even this
/// one, makes hyper allocate and fill two vectors of that many entries per request.
pub const MAX_HEADERS: usize = 100;

/// How long `serve` lets in-flight requests finish after shutdown is requested, by default.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The product token in every response's `Server` header (spec §6.3).
pub const SERVER: &str = "portico";
