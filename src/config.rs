//! Command line and environment → a validated `Config`. Flag names follow ingress-nginx where
//! it has one, so migrating users recognise them; every flag also reads `PORTICO_<NAME>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::source::files;
use crate::translate;

/// Portico: a Kubernetes Ingress controller that routes HTTP by Ingress rules.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "portico",
    version,
    about,
    long_about = None,
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Without a command, Portico runs the controller.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Serve the Ingress, IngressClass, Service, EndpointSlice and Secret objects found in this
    /// directory (or file) of YAML/JSON manifests instead of a cluster. The directory is
    /// watched: changes apply within a second.
    #[arg(long, env = "PORTICO_MANIFESTS", value_name = "DIR")]
    pub manifests: Option<PathBuf>,

    /// Kubeconfig file to reach the API server with (without --manifests). Default: the
    /// KUBECONFIG variable, then ~/.kube/config, then the in-cluster service account.
    #[arg(
        long,
        env = "PORTICO_KUBECONFIG",
        value_name = "PATH",
        conflicts_with = "manifests"
    )]
    pub kubeconfig: Option<PathBuf>,

    /// Watch Ingresses, Services, EndpointSlices and Secrets in this namespace only
    /// (IngressClasses are cluster-wide). Default: all namespaces.
    #[arg(long, env = "PORTICO_WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Service (NAMESPACE/NAME) fronting Portico: its status.loadBalancer.ingress (else its
    /// spec.externalIPs) is written to the status of every owned Ingress.
    #[arg(long, env = "PORTICO_PUBLISH_SERVICE", value_name = "NAMESPACE/NAME")]
    pub publish_service: Option<String>,

    /// Comma-separated addresses to write to the status of every owned Ingress instead of the
    /// publish Service's (IPs go to `ip`, anything else to `hostname`).
    #[arg(long, env = "PORTICO_PUBLISH_STATUS_ADDRESS", value_name = "ADDRESSES")]
    pub publish_status_address: Option<String>,

    /// Name of the coordination.k8s.io Lease the replicas elect a status writer with.
    #[arg(long, env = "PORTICO_ELECTION_ID", default_value = "portico-leader")]
    pub election_id: String,

    /// Namespace of the election Lease. Default: the POD_NAMESPACE variable, then the
    /// kubeconfig's or service account's namespace.
    #[arg(long, env = "PORTICO_ELECTION_NAMESPACE", value_name = "NAMESPACE")]
    pub election_namespace: Option<String>,

    /// How long a leader's Lease lasts without renewal; another replica takes over after it.
    #[arg(long, env = "PORTICO_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub election_lease_duration: Duration,

    /// Address of the plain HTTP listener (HTTP/1.1 and h2c).
    #[arg(long, env = "PORTICO_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address of the HTTPS listener (TLS 1.2/1.3; HTTP/1.1 and HTTP/2 by ALPN).
    #[arg(long, env = "PORTICO_HTTPS_ADDR", default_value = "0.0.0.0:8443")]
    pub https_addr: SocketAddr,

    /// Time allowed for a client to complete the TLS handshake (e.g. 10s); then the
    /// connection is closed.
    #[arg(long, env = "PORTICO_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// Address of the admin listener: /healthz, /readyz, /metrics, /debug/routes,
    /// /debug/explain, /log-level.
    #[arg(long, env = "PORTICO_ADMIN_ADDR", default_value = "0.0.0.0:10254")]
    pub admin_addr: SocketAddr,

    #[command(flatten)]
    pub translate: TranslateArgs,

    #[command(flatten)]
    pub manifest_limits: ManifestLimitArgs,

    /// Largest request line plus header block accepted, in bytes; larger gets 431.
    #[arg(long, env = "PORTICO_MAX_HEADER_BYTES", default_value = "32768")]
    pub max_header_bytes: usize,

    /// Time allowed to connect to an upstream endpoint (e.g. 5s, 500ms); expiry gives 504.
    #[arg(long, env = "PORTICO_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,

    /// Time allowed for an upstream to send its response headers; expiry gives 504.
    #[arg(long, env = "PORTICO_UPSTREAM_RESPONSE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_response_timeout: Duration,

    /// While the request body is being sent, an upstream that takes nothing more of it for
    /// this long (nginx `proxy_send_timeout`, between two writes, not for the whole body)
    /// gets the request cut; expiry gives 504. A client that is slow to send is
    /// `--client-body-timeout`'s business, not this.
    #[arg(long, env = "PORTICO_UPSTREAM_SEND_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_send_timeout: Duration,

    /// Idle pooled upstream connections are closed after this.
    #[arg(long, env = "PORTICO_UPSTREAM_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_idle_timeout: Duration,

    /// A client must send a whole request head within this (slowloris), or the connection is
    /// closed: its first request counted from accept (from the end of the TLS handshake on
    /// HTTPS), so a connection that sends nothing is closed after it; on HTTP/1 each next
    /// request from the end of the previous response (so it also bounds keep-alive idle); on
    /// HTTP/2 each header block, from its HEADERS frame to END_HEADERS.
    #[arg(long, env = "PORTICO_CLIENT_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub client_header_timeout: Duration,

    /// A request body that delivers no bytes for this long is cut and answered 408
    /// (ingress-nginx's client-body-timeout; between two reads, not for the whole body).
    #[arg(long, env = "PORTICO_CLIENT_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub client_body_timeout: Duration,

    /// A client connection with no request in flight for this long is shut down gracefully
    /// (HTTP/1: closed; HTTP/2: GOAWAY, then closed at the latest
    /// --http2-keepalive-timeout later). Pings and other bytes without a request do not count.
    /// A request in flight (a long poll, a slow download) keeps its connection.
    #[arg(long, env = "PORTICO_CLIENT_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    pub client_idle_timeout: Duration,

    /// Comma-separated `Upgrade` protocols tunnelled to backends (names, case-insensitive).
    /// Any other upgrade request is forwarded as a plain request with `Upgrade` removed, and
    /// a backend's 101 for a protocol not offered is refused (502). `h2c` cannot be allowed:
    /// it would hand clients an HTTP/2 connection to the backend past routing.
    #[arg(
        long,
        env = "PORTICO_ALLOWED_UPGRADES",
        value_name = "PROTOCOLS",
        default_value = "websocket"
    )]
    pub allowed_upgrades: String,

    /// Endpoint choice when the Ingress does not say: round_robin (spec §4.3) or ewma
    /// (peak-EWMA latency with power of two choices).
    #[arg(
        long,
        env = "PORTICO_LOAD_BALANCE",
        value_enum,
        default_value = "round_robin"
    )]
    pub load_balance: LoadBalance,

    /// Attempts per request in all (first included) when the Ingress does not say; retries go
    /// to other endpoints.
    #[arg(long, env = "PORTICO_PROXY_NEXT_UPSTREAM_TRIES", default_value = "3")]
    pub proxy_next_upstream_tries: u32,

    /// Largest request body when the Ingress does not say (nginx syntax: 1m, 512k, 0 = no
    /// limit); larger gets 413.
    #[arg(long, env = "PORTICO_PROXY_BODY_SIZE", default_value = "1m", value_parser = parse_size)]
    pub proxy_body_size: u64,

    /// Client connections served at once per listener; beyond it new connections wait in
    /// the accept backlog. 0: no limit.
    #[arg(long, env = "PORTICO_MAX_CONNECTIONS", default_value = "0")]
    pub max_connections: usize,

    /// Proxy worker threads, each with its own event loop and `SO_REUSEPORT` listening
    /// sockets (nginx's `worker_processes`); 0: one per CPU this process may use.
    #[arg(long, env = "PORTICO_WORKER_THREADS", default_value = "0")]
    pub worker_threads: usize,

    /// HTTP/2: send a PING when the client has sent nothing for this long; see
    /// --http2-keepalive-timeout.
    #[arg(long, env = "PORTICO_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,

    /// HTTP/2: close a connection whose PING is not answered within this (a dead or hostile
    /// peer); also how long an idle connection's GOAWAY may take before it is closed anyway.
    #[arg(long, env = "PORTICO_HTTP2_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,

    /// HTTP/2 streams one client connection may have open at once.
    #[arg(
        long,
        env = "PORTICO_HTTP2_MAX_CONCURRENT_STREAMS",
        default_value = "128"
    )]
    pub http2_max_concurrent_streams: u32,

    /// Expect a PROXY protocol v1 or v2 header on every connection of both listeners (behind
    /// a TCP balancer such as HAProxy or OpenStack Octavia); its source address is the client.
    #[arg(
        long,
        env = "PORTICO_PROXY_PROTOCOL",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub proxy_protocol: bool,

    #[command(flatten)]
    pub request: RequestArgs,

    /// Comma-separated CIDRs of proxies in front of Portico: only their X-Forwarded-For is
    /// kept and extended (others' is replaced), and with --proxy-protocol only they may send
    /// a PROXY header. Empty: every X-Forwarded-For is extended (spec §6.2).
    #[arg(
        long,
        env = "PORTICO_TRUSTED_PROXIES",
        value_name = "CIDRS",
        default_value = ""
    )]
    pub trusted_proxies: String,

    /// On SIGTERM, keep serving this long with /readyz unready, so balancers stop sending
    /// new connections before the listeners close.
    #[arg(long, env = "PORTICO_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// After the listeners close, how long in-flight requests may finish.
    #[arg(long, env = "PORTICO_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log line format.
    #[arg(long, env = "PORTICO_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log level or tracing filter (e.g. `info`, `portico=debug,hyper=info`); can be changed
    /// at run time with `PUT /log-level` on the admin port.
    #[arg(long, env = "PORTICO_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Access log: one line per request, `json`, `text` (logfmt) or `off`. Default: the
    /// format of --log-format.
    #[arg(long, env = "PORTICO_ACCESS_LOG", value_enum)]
    pub access_log: Option<AccessLogMode>,
}

/// The settings that change which requests the proxy refuses before routing (spec §6.1,
/// docs/security.md); shared by the controller and `explain`, so an offline run gives the
/// controller's answer.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RequestArgs {
    /// Pass an encoded slash (%2F) in a request path through as received (it is never a
    /// separator for matching) instead of answering 400. For backends that take %2F as data;
    /// they must not decode it into a separator. %5C and %2F next to a dot-segment stay 400.
    #[arg(
        long,
        env = "PORTICO_ALLOW_ENCODED_SLASHES",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub allow_encoded_slashes: bool,
}

impl RequestArgs {
    pub fn path_rules(&self) -> crate::routing::normalize::PathRules {
        crate::routing::normalize::PathRules {
            allow_encoded_slashes: self.allow_encoded_slashes,
        }
    }
}

/// The settings that change what translate produces; shared by the controller, `check` and
/// `explain`, so an offline run sees the table the controller would build.
#[derive(Debug, Clone, clap::Args)]
pub struct TranslateArgs {
    /// IngressClasses whose spec.controller equals this are ours.
    #[arg(
        long,
        env = "PORTICO_CONTROLLER_NAME",
        default_value = "portico.dev/ingress-controller"
    )]
    pub controller_name: String,

    /// Value of the deprecated kubernetes.io/ingress.class annotation that we own (the names of
    /// our IngressClasses are accepted too).
    #[arg(long, env = "PORTICO_INGRESS_CLASS", default_value = "portico")]
    pub ingress_class: String,

    /// Also own Ingresses that name no class at all (no ingressClassName, no annotation).
    #[arg(
        long,
        env = "PORTICO_WATCH_INGRESS_WITHOUT_CLASS",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub watch_ingress_without_class: bool,

    /// Service (NAMESPACE/NAME, first port) that answers requests no Ingress claims, when no
    /// rule-less Ingress has a defaultBackend. Without it such requests get 404.
    #[arg(
        long,
        env = "PORTICO_DEFAULT_BACKEND_SERVICE",
        value_name = "NAMESPACE/NAME"
    )]
    pub default_backend_service: Option<String>,

    /// Secret (NAMESPACE/NAME, type kubernetes.io/tls) served to TLS clients whose server name
    /// has no certificate of its own. Without it, or while it is unusable, a self-signed
    /// certificate generated at start is served.
    #[arg(
        long,
        env = "PORTICO_DEFAULT_SSL_CERTIFICATE",
        value_name = "NAMESPACE/NAME"
    )]
    pub default_ssl_certificate: Option<String>,

    /// ConfigMap (NAMESPACE/NAME) holding ingress-nginx's global keys (its `--configmap`):
    /// watched in Kubernetes mode, read from the directory with --manifests. Where a key and a
    /// flag overlap, the key wins. Without it, ingress-nginx's defaults apply.
    #[arg(long, env = "PORTICO_CONFIGMAP", value_name = "NAMESPACE/NAME")]
    pub configmap: Option<String>,

    /// Redirect plain-HTTP requests for hosts with TLS to HTTPS (308). `--ssl-redirect=false`
    /// turns it off except for Ingresses annotated `portico.dev/ssl-redirect: "true"`.
    #[arg(
        long,
        env = "PORTICO_SSL_REDIRECT",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "true"
    )]
    pub ssl_redirect: bool,

    /// Route to ExternalName Services (loopback and link-local targets are always refused).
    /// `--enable-external-name=false` answers 503 for every ExternalName backend.
    #[arg(
        long,
        env = "PORTICO_ENABLE_EXTERNAL_NAME",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "true"
    )]
    pub enable_external_name: bool,

    /// Splice TLS connections whose SNI names a host with the `ssl-passthrough` annotation to
    /// its backend without terminating them (ingress-nginx's flag). Off: the annotation does
    /// nothing but raise a condition, and the HTTPS listener never looks at a ClientHello.
    #[arg(
        long,
        env = "PORTICO_ENABLE_SSL_PASSTHROUGH",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub enable_ssl_passthrough: bool,
}

impl TranslateArgs {
    /// The translate options, or the flag that is wrong.
    pub fn options(self) -> Result<translate::Options, ConfigError> {
        let default_backend_service = match self.default_backend_service {
            None => None,
            Some(s) => Some(namespaced(&s).ok_or(ConfigError::DefaultBackendService(s))?),
        };
        let default_ssl_certificate = match self.default_ssl_certificate {
            None => None,
            Some(s) => Some(namespaced(&s).ok_or(ConfigError::DefaultSslCertificate(s))?),
        };
        let configmap = match self.configmap {
            None => None,
            Some(s) => Some(namespaced(&s).ok_or(ConfigError::Configmap(s))?),
        };
        Ok(translate::Options {
            configmap,
            // Only the controller ConfigMap sets it (ingress-nginx has no such flag).
            force_ssl_redirect: false,
            controller_name: self.controller_name,
            annotation_class: self.ingress_class,
            watch_without_class: self.watch_ingress_without_class,
            default_backend_service,
            external_name: self.enable_external_name,
            ipv6: ipv6_available(),
            default_ssl_certificate,
            ssl_redirect: self.ssl_redirect,
            ssl_passthrough: self.enable_ssl_passthrough,
            // Filled from the controller ConfigMap once one is read.
            error_pages: Default::default(),
            custom_headers: Default::default(),
            limits: Default::default(),
            ext_auth: Default::default(),
        })
    }
}

/// Limits on reading manifests; shared by the controller, `check` and `explain`, so an
/// offline run refuses what the controller would.
#[derive(Debug, Clone, clap::Args)]
pub struct ManifestLimitArgs {
    /// Largest manifest file read (nginx sizes: 16m, 512k; 0 = no limit). A larger file is
    /// skipped with an error naming it; the other files still load.
    #[arg(
        long,
        env = "PORTICO_MANIFESTS_MAX_FILE_SIZE",
        default_value = "16m",
        value_parser = parse_size
    )]
    pub manifests_max_file_size: u64,
}

impl ManifestLimitArgs {
    pub fn limits(&self) -> files::Limits {
        files::Limits {
            max_file_bytes: match self.manifests_max_file_size {
                0 => u64::MAX,
                n => n,
            },
        }
    }
}

/// Commands other than running the controller.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Validate manifests offline: print every condition, load error and a summary of the
    /// table; exit 1 when an Ingress has an error. Never contacts a cluster.
    Check(CheckArgs),
    /// Say where a request would go and why: vhost, every candidate route, backend.
    Explain(ExplainArgs),
    /// Before switching from ingress-nginx: a verdict on every ingress-nginx annotation of
    /// every Ingress and every key of the controller ConfigMap; exit 1 when one blocks.
    Migrate(MigrateArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// Directory or file of manifests; `-` reads standard input (`kubectl get
    /// ingress,configmap -A -o yaml`), the default when it is not a terminal.
    #[arg(value_name = "DIR|-")]
    pub input: Option<PathBuf>,
    /// Output format: text for people, json for tools (schema portico.dev/migrate/v1).
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// The ingress-nginx controller ConfigMap to report (NAMESPACE/NAME, the value of its
    /// --configmap flag). Default: the one named ingress-nginx-controller in the input, else
    /// one named RELEASE-ingress-nginx-controller (the Helm chart's). Not in the input: exit 2.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub configmap: Option<String>,
    #[command(flatten)]
    pub manifest_limits: ManifestLimitArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Directory or file of manifests; `-` reads standard input (`kubectl get ... -o yaml`).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Same as --manifests (`portico check -`).
    #[arg(value_name = "DIR|-", conflicts_with = "manifests")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub translate: TranslateArgs,
    #[command(flatten)]
    pub manifest_limits: ManifestLimitArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// Directory or file of manifests; `-` reads standard input.
    #[arg(long, value_name = "DIR")]
    pub manifests: PathBuf,
    /// The request's Host header (or authority).
    #[arg(long, default_value = "")]
    pub host: String,
    /// The request's path (a query is ignored for matching).
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The TLS server name the client sends (reported; TLS is not built yet).
    #[arg(long)]
    pub sni: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub translate: TranslateArgs,
    #[command(flatten)]
    pub manifest_limits: ManifestLimitArgs,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLogMode {
    Json,
    Text,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadBalance {
    #[value(name = "round_robin", alias = "round-robin")]
    RoundRobin,
    Ewma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_size(s: &str) -> Result<u64, String> {
    translate::parse_size(s).ok_or_else(|| format!("{s:?} is not a size (examples: 0, 512k, 1m)"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 5s, 500ms, 1m)"))
}

/// Where objects come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    Manifests(PathBuf),
    /// The Kubernetes API (kube mode).
    Kube(KubeSource),
}

/// Where and what to watch in kube mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSource {
    /// Explicit kubeconfig; `None` infers (KUBECONFIG, ~/.kube/config, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    pub watch_namespace: Option<String>,
}

/// Where the addresses written to Ingress status come from (spec §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addresses {
    /// Nothing configured: status is not written.
    None,
    /// `--publish-status-address`.
    Static(Vec<String>),
    /// `--publish-service` namespace and name.
    Service(String, String),
}

/// Status writing and leader election (kube mode only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    pub addresses: Addresses,
    pub election_id: String,
    /// `None`: POD_NAMESPACE, then the client's default namespace.
    pub election_namespace: Option<String>,
    pub lease_duration: Duration,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceConfig,
    /// What one manifest file may cost (manifests source only).
    pub manifest_limits: files::Limits,
    pub status: StatusConfig,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub tls_handshake_timeout: Duration,
    pub translate: translate::Options,
    pub max_header_bytes: usize,
    pub upstream_connect_timeout: Duration,
    pub upstream_response_timeout: Duration,
    pub upstream_send_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub client_header_timeout: Duration,
    pub client_body_timeout: Duration,
    pub client_idle_timeout: Duration,
    pub load_balance: crate::routing::Balance,
    pub tries: u32,
    pub body_limit: u64,
    pub max_connections: usize,
    /// Proxy worker threads; 0: one per usable CPU.
    pub worker_threads: usize,
    pub http2_max_concurrent_streams: u32,
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    pub allowed_upgrades: Vec<String>,
    pub proxy_protocol: bool,
    /// What the path checks let through (spec §6.1).
    pub path_rules: crate::routing::normalize::PathRules,
    pub trusted_proxies: Vec<crate::proxy::Cidr>,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// `None`: no access log.
    pub access_log: Option<crate::access_log::Format>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--publish-service must be NAMESPACE/NAME, got {0:?}")]
    PublishService(String),
    #[error("--publish-status-address has an empty entry: {0:?}")]
    PublishStatusAddress(String),
    #[error("--election-lease-duration must be at least 2s, got {0:?}")]
    LeaseDuration(Duration),
    #[error("--default-backend-service must be NAMESPACE/NAME, got {0:?}")]
    DefaultBackendService(String),
    #[error("--default-ssl-certificate must be NAMESPACE/NAME, got {0:?}")]
    DefaultSslCertificate(String),
    #[error("--configmap must be NAMESPACE/NAME, got {0:?}")]
    Configmap(String),
    #[error("--max-header-bytes must be between 1024 and 1048576, got {0}")]
    MaxHeaderBytes(usize),
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
    #[error("--proxy-next-upstream-tries must be between 1 and 10, got {0}")]
    Tries(u32),
    #[error("--trusted-proxies: {0}")]
    TrustedProxies(String),
    #[error("--http2-max-concurrent-streams must be at least 1")]
    Http2Streams,
    #[error("--allowed-upgrades: {0}")]
    AllowedUpgrades(String),
}

/// `--allowed-upgrades`: protocol names (RFC 9110 §7.8 tokens, no version), lower-cased.
/// `h2c` is refused: tunnelling it is the h2c smuggling hole (issue 10 item 1).
fn allowed_upgrades(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() || name.contains('/') {
            return Err(ConfigError::AllowedUpgrades(format!(
                "{name:?} is not a protocol name"
            )));
        }
        if name.eq_ignore_ascii_case("h2c") {
            return Err(ConfigError::AllowedUpgrades(
                "h2c cannot be tunnelled: it would bypass routing".to_string(),
            ));
        }
        names.push(name.to_ascii_lowercase());
    }
    Ok(names)
}

impl Args {
    /// Checks the arguments and builds the `Config`.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let source = match self.manifests {
            Some(dir) => SourceConfig::Manifests(dir),
            None => SourceConfig::Kube(KubeSource {
                kubeconfig: self.kubeconfig,
                watch_namespace: self.watch_namespace.filter(|ns| !ns.is_empty()),
            }),
        };
        let translate = self.translate.options()?;
        let addresses = match (self.publish_status_address, self.publish_service) {
            (Some(list), _) => {
                let addresses: Vec<String> =
                    list.split(',').map(|a| a.trim().to_string()).collect();
                if addresses.iter().any(String::is_empty) {
                    return Err(ConfigError::PublishStatusAddress(list));
                }
                Addresses::Static(addresses)
            }
            (None, Some(s)) => {
                let (ns, name) = namespaced(&s).ok_or(ConfigError::PublishService(s))?;
                Addresses::Service(ns, name)
            }
            (None, None) => Addresses::None,
        };
        if self.election_lease_duration < Duration::from_secs(2) {
            return Err(ConfigError::LeaseDuration(self.election_lease_duration));
        }
        if !(1024..=1 << 20).contains(&self.max_header_bytes) {
            return Err(ConfigError::MaxHeaderBytes(self.max_header_bytes));
        }
        if self.upstream_connect_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("--upstream-connect-timeout"));
        }
        if self.upstream_response_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("--upstream-response-timeout"));
        }
        if self.upstream_send_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("--upstream-send-timeout"));
        }
        if self.tls_handshake_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("--tls-handshake-timeout"));
        }
        for (flag, d) in [
            ("--upstream-idle-timeout", self.upstream_idle_timeout),
            ("--client-header-timeout", self.client_header_timeout),
            ("--client-body-timeout", self.client_body_timeout),
            ("--client-idle-timeout", self.client_idle_timeout),
            ("--http2-keepalive-interval", self.http2_keepalive_interval),
            ("--http2-keepalive-timeout", self.http2_keepalive_timeout),
            ("--shutdown-timeout", self.shutdown_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroTimeout(flag));
            }
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(ConfigError::Http2Streams);
        }
        if !(1..=10).contains(&self.proxy_next_upstream_tries) {
            return Err(ConfigError::Tries(self.proxy_next_upstream_tries));
        }
        let trusted_proxies = self
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<crate::proxy::Cidr>, String>>()
            .map_err(ConfigError::TrustedProxies)?;
        let allowed_upgrades = allowed_upgrades(&self.allowed_upgrades)?;
        Ok(Config {
            source,
            manifest_limits: self.manifest_limits.limits(),
            status: StatusConfig {
                addresses,
                election_id: self.election_id,
                election_namespace: self.election_namespace.filter(|ns| !ns.is_empty()),
                lease_duration: self.election_lease_duration,
            },
            http_addr: self.http_addr,
            https_addr: self.https_addr,
            admin_addr: self.admin_addr,
            tls_handshake_timeout: self.tls_handshake_timeout,
            translate,
            max_header_bytes: self.max_header_bytes,
            upstream_connect_timeout: self.upstream_connect_timeout,
            upstream_response_timeout: self.upstream_response_timeout,
            upstream_send_timeout: self.upstream_send_timeout,
            upstream_idle_timeout: self.upstream_idle_timeout,
            client_header_timeout: self.client_header_timeout,
            client_body_timeout: self.client_body_timeout,
            client_idle_timeout: self.client_idle_timeout,
            load_balance: match self.load_balance {
                LoadBalance::RoundRobin => crate::routing::Balance::RoundRobin,
                LoadBalance::Ewma => crate::routing::Balance::Ewma,
            },
            tries: self.proxy_next_upstream_tries,
            body_limit: self.proxy_body_size,
            max_connections: self.max_connections,
            worker_threads: self.worker_threads,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
            http2_keepalive_interval: self.http2_keepalive_interval,
            http2_keepalive_timeout: self.http2_keepalive_timeout,
            allowed_upgrades,
            proxy_protocol: self.proxy_protocol,
            path_rules: self.request.path_rules(),
            trusted_proxies,
            shutdown_delay: self.shutdown_delay,
            shutdown_timeout: self.shutdown_timeout,
            access_log: match self.access_log {
                None => Some(match self.log_format {
                    LogFormat::Text => crate::access_log::Format::Text,
                    LogFormat::Json => crate::access_log::Format::Json,
                }),
                Some(AccessLogMode::Text) => Some(crate::access_log::Format::Text),
                Some(AccessLogMode::Json) => Some(crate::access_log::Format::Json),
                Some(AccessLogMode::Off) => None,
            },
            log_format: self.log_format,
            log_level: self.log_level,
        })
    }
}

/// `NAMESPACE/NAME` split in two, both non-empty.
fn namespaced(s: &str) -> Option<(String, String)> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Some((ns.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// Whether this host has an IPv6 stack (spec §4.2 step 2: IPv6 endpoints only then). Binding
/// the IPv6 loopback is the cheapest check that needs no outside address.
fn ipv6_available() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Args::try_parse_from(std::iter::once("portico").chain(args.iter().copied()))
            .expect("arguments parse")
            .validate()
    }

    #[test]
    fn allowed_upgrades_are_names_and_never_h2c() {
        let c = parse(&["--manifests", "x"]).unwrap();
        assert_eq!(c.allowed_upgrades, ["websocket"]);
        let c = parse(&[
            "--manifests",
            "x",
            "--allowed-upgrades",
            "WebSocket, echo-proto",
        ]);
        assert_eq!(c.unwrap().allowed_upgrades, ["websocket", "echo-proto"]);
        let c = parse(&["--manifests", "x", "--allowed-upgrades", ""]).unwrap();
        assert!(c.allowed_upgrades.is_empty());
        for bad in ["websocket,H2C", "websocket/13", "a b"] {
            let err = parse(&["--manifests", "x", "--allowed-upgrades", bad]);
            assert!(matches!(err, Err(ConfigError::AllowedUpgrades(_))), "{bad}");
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = parse(&["--manifests", "x"]).unwrap();
        assert_eq!(c.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.admin_addr, "0.0.0.0:10254".parse().unwrap());
        assert_eq!(
            c.translate.controller_name,
            "portico.dev/ingress-controller"
        );
        assert!(!c.translate.watch_without_class);
        assert!(c.translate.external_name);
        assert_eq!(c.upstream_connect_timeout, Duration::from_secs(5));
        assert_eq!(c.https_addr, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.tls_handshake_timeout, Duration::from_secs(10));
        assert!(c.translate.ssl_redirect);
        assert_eq!(c.translate.default_ssl_certificate, None);
        assert_eq!(c.upstream_response_timeout, Duration::from_secs(60));
        assert_eq!(c.client_header_timeout, Duration::from_secs(10));
        assert_eq!(c.tries, 3);
        assert_eq!(c.body_limit, 1 << 20);
        assert_eq!(c.load_balance, crate::routing::Balance::RoundRobin);
        assert!(!c.proxy_protocol);
        assert!(c.trusted_proxies.is_empty());
    }

    #[test]
    fn encoded_slashes_are_refused_unless_allowed() {
        let c = parse(&["--manifests", "x"]).unwrap();
        assert!(!c.path_rules.allow_encoded_slashes);
        let c = parse(&["--manifests", "x", "--allow-encoded-slashes"]).unwrap();
        assert!(c.path_rules.allow_encoded_slashes);
        let c = parse(&["--manifests", "x", "--allow-encoded-slashes=false"]).unwrap();
        assert!(!c.path_rules.allow_encoded_slashes);
        let args = Args::try_parse_from([
            "portico",
            "explain",
            "--manifests",
            "x",
            "--allow-encoded-slashes",
        ])
        .unwrap();
        let Some(Command::Explain(explain)) = args.command else {
            panic!("explain")
        };
        assert!(explain.request.path_rules().allow_encoded_slashes);
    }

    #[test]
    fn data_path_flags() {
        let c = parse(&[
            "--manifests",
            "x",
            "--load-balance",
            "ewma",
            "--proxy-body-size",
            "8m",
            "--trusted-proxies",
            "10.0.0.0/8, 192.168.1.1",
            "--proxy-protocol",
        ])
        .unwrap();
        assert_eq!(c.load_balance, crate::routing::Balance::Ewma);
        assert_eq!(c.body_limit, 8 << 20);
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(c.proxy_protocol);
        assert!(matches!(
            parse(&["--manifests", "x", "--trusted-proxies", "10.0.0.0/40"]),
            Err(ConfigError::TrustedProxies(_))
        ));
        assert!(matches!(
            parse(&["--manifests", "x", "--proxy-next-upstream-tries", "0"]),
            Err(ConfigError::Tries(0))
        ));
    }

    #[test]
    fn enable_ssl_passthrough_is_off_by_default() {
        let c = parse(&["--manifests", "x"]).unwrap();
        assert!(!c.translate.ssl_passthrough);
        for on in [
            &["--enable-ssl-passthrough"][..],
            &["--enable-ssl-passthrough=true"],
        ] {
            let args: Vec<&str> = ["--manifests", "x"].iter().chain(on).copied().collect();
            assert!(parse(&args).unwrap().translate.ssl_passthrough, "{on:?}");
        }
    }

    #[test]
    fn tls_flags() {
        let c = parse(&[
            "--manifests",
            "x",
            "--ssl-redirect=false",
            "--default-ssl-certificate",
            "ops/wildcard",
            "--tls-handshake-timeout",
            "3s",
        ])
        .unwrap();
        assert!(!c.translate.ssl_redirect);
        assert_eq!(
            c.translate.default_ssl_certificate,
            Some(("ops".to_string(), "wildcard".to_string()))
        );
        assert_eq!(c.tls_handshake_timeout, Duration::from_secs(3));
        assert!(matches!(
            parse(&["--manifests", "x", "--default-ssl-certificate", "wildcard"]),
            Err(ConfigError::DefaultSslCertificate(_))
        ));
        assert!(matches!(
            parse(&["--manifests", "x", "--tls-handshake-timeout", "0s"]),
            Err(ConfigError::ZeroTimeout(_))
        ));
    }

    #[test]
    fn without_manifests_the_api_is_the_source() {
        let c = parse(&[
            "--watch-namespace",
            "apps",
            "--publish-service",
            "portico/portico",
        ])
        .unwrap();
        assert_eq!(
            c.source,
            SourceConfig::Kube(KubeSource {
                kubeconfig: None,
                watch_namespace: Some("apps".into())
            })
        );
        assert_eq!(
            c.status.addresses,
            Addresses::Service("portico".into(), "portico".into())
        );
        let c = parse(&["--publish-status-address", "10.0.0.1, lb.example.com"]).unwrap();
        assert_eq!(
            c.status.addresses,
            Addresses::Static(vec!["10.0.0.1".into(), "lb.example.com".into()])
        );
        assert_eq!(c.status.election_id, "portico-leader");
    }

    #[test]
    fn boolean_flags_take_bare_and_explicit_forms() {
        let c = parse(&["--manifests", "x", "--watch-ingress-without-class"]).unwrap();
        assert!(c.translate.watch_without_class);
        let c = parse(&["--manifests", "x", "--enable-external-name=false"]).unwrap();
        assert!(!c.translate.external_name);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        assert!(matches!(
            parse(&["--publish-service", "nope"]),
            Err(ConfigError::PublishService(_))
        ));
        assert!(matches!(
            parse(&["--publish-status-address", "1.2.3.4,,x"]),
            Err(ConfigError::PublishStatusAddress(_))
        ));
        assert!(matches!(
            parse(&["--manifests", "x", "--default-backend-service", "nope"]),
            Err(ConfigError::DefaultBackendService(_))
        ));
        assert!(matches!(
            parse(&["--manifests", "x", "--max-header-bytes", "10"]),
            Err(ConfigError::MaxHeaderBytes(10))
        ));
        assert!(Args::try_parse_from(["portico", "--upstream-connect-timeout", "soon"]).is_err());
    }

    #[test]
    fn access_log_follows_log_format_unless_set() {
        use crate::access_log::Format;
        let c = parse(&["--manifests", "x"]).unwrap();
        assert_eq!(c.access_log, Some(Format::Text));
        let c = parse(&["--manifests", "x", "--log-format", "json"]).unwrap();
        assert_eq!(c.access_log, Some(Format::Json));
        let c = parse(&["--manifests", "x", "--access-log", "off"]).unwrap();
        assert_eq!(c.access_log, None);
        let c = parse(&[
            "--manifests",
            "x",
            "--log-format",
            "json",
            "--access-log=text",
        ])
        .unwrap();
        assert_eq!(c.access_log, Some(Format::Text));
    }

    #[test]
    fn subcommands_take_their_own_flags_and_the_controller_needs_none() {
        let args = Args::try_parse_from(["portico", "--manifests", "x"]).unwrap();
        assert!(args.command.is_none());
        let args = Args::try_parse_from(["portico", "check", "-"]).unwrap();
        let Some(Command::Check(check)) = args.command else {
            panic!("check")
        };
        assert_eq!(check.input.as_deref(), Some(std::path::Path::new("-")));
        let args = Args::try_parse_from([
            "portico",
            "explain",
            "--manifests",
            "d",
            "--host",
            "a.example",
            "--sni",
            "a.example",
            "--watch-ingress-without-class",
        ])
        .unwrap();
        let Some(Command::Explain(explain)) = args.command else {
            panic!("explain")
        };
        assert_eq!(explain.path, "/");
        assert!(explain.translate.options().unwrap().watch_without_class);
        assert!(Args::try_parse_from(["portico", "--manifests", "x", "check", "-"]).is_err());
    }
}
