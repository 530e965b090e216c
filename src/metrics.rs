//! Metrics: the Prometheus families that the proxy, publish and the sources feed, encoded as
//! OpenMetrics text on the admin port's `/metrics`.
//!
//! The configuration gauges are pushed by `publish` on every new version
//! ([`Metrics::configuration`]), which also drops the series of routes that version no longer
//! has; a scrape only reads (and the clock, for sync ages). This module knows the routing
//! table and the certificate store but not `publish` or `translate`, which sit above it.
//!
//! One [`Metrics`] per process (`app::run` makes it and hands it to each part); tests make their
//! own. The per-request path never formats a label set nor takes the families' lock after the
//! first request of a route: [`Metrics::route`] interns one [`RouteSeries`] per
//! (namespace, ingress, service) in a copy-on-write map read through an `ArcSwap`, and the
//! series keeps the counter handles it has used. The per-route counters and latency histograms
//! are [`crate::sharded`]'s: one cache line per proxy worker, summed at scrape, so two workers
//! never write the same line per request and no request takes a lock (issue 12, scaling).
//!
//! Label values are bounded: Ingress and Service names come from the configuration, methods
//! outside the standard set are `OTHER`, statuses are classes (`2xx`). Request hosts and paths
//! are never labels.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::routing::{Backend, BackendRef, Decision, RouteTable, Target};
use crate::sharded::{Counter as Sharded, LatencyHistogram};
use crate::tls::TlsTable;

/// Rebuild (translate) duration buckets, seconds: 100 µs … ~3 s.
fn rebuild_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 16,
    ))
}

/// Which Ingress and Service a request was routed to. Empty strings when there was no route
/// (404, or refused before routing); `ingress` is empty for a vhost fallback or the default
/// backend, which the table does not attribute to one Ingress.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub namespace: String,
    pub ingress: String,
    pub service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    ingress: String,
    service: String,
    method: &'static str,
    status_class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: u32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchErrorLabels {
    source: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// A bound host (from the configuration, so bounded; empty for the `--default-ssl-certificate`)
/// and the Secret its certificate comes from.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    host: String,
    secret: String,
}

/// The reason class of a failed TLS handshake: `closed` (the client went away before
/// finishing: TCP health checks, port scans) or `error` (anything rustls refused: no common
/// version or cipher, bad messages). Timeouts are `timeout`, counted by the caller.
pub fn handshake_failure_reason(error: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => "closed",
        _ => "error",
    }
}

/// The bounded method label set; anything else is `OTHER`.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "OTHER",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index into [`METHODS`].
pub fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// The counters and histograms of one (namespace, ingress, service), kept so a request
/// increments atomics instead of looking up a family.
pub struct RouteSeries {
    pub labels: RouteLabels,
    requests_family: Family<RequestLabels, Sharded>,
    requests: [[OnceLock<Sharded>; 5]; 10],
    duration: LatencyHistogram,
    upstream_duration: LatencyHistogram,
    bytes_in: Sharded,
    bytes_out: Sharded,
    connect_errors: Sharded,
    retries: Sharded,
}

impl std::fmt::Debug for RouteSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSeries")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl RouteSeries {
    /// One finished request: its method, final status, total duration and body bytes.
    pub fn request(
        &self,
        method: usize,
        status: u16,
        duration: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let method = method.min(METHODS.len() - 1);
        let class = class_index(status);
        // The request counter last: a scrape that sees the request sees its other numbers.
        self.duration.observe(duration.as_secs_f64());
        self.bytes_in.inc_by(bytes_in);
        self.bytes_out.inc_by(bytes_out);
        self.requests[method][class]
            .get_or_init(|| {
                self.requests_family
                    .get_or_create(&RequestLabels {
                        namespace: self.labels.namespace.clone(),
                        ingress: self.labels.ingress.clone(),
                        service: self.labels.service.clone(),
                        method: METHODS[method],
                        status_class: STATUS_CLASSES[class],
                    })
                    .clone()
            })
            .inc();
    }

    /// Time from sending the request upstream to receiving its response headers.
    pub fn upstream(&self, duration: Duration) {
        self.upstream_duration.observe(duration.as_secs_f64());
    }

    pub fn connect_error(&self) {
        self.connect_errors.inc();
    }

    pub fn retry(&self) {
        self.retries.inc();
    }
}

/// namespace → ingress → service → series. Keys are configuration names, never a client's
/// input, so foldhash's fast hasher is safe; with SipHash the three lookups per request cost
/// ~700 instructions.
type SeriesMap = FastMap<Box<str>, FastMap<Box<str>, FastMap<Box<str>, Arc<RouteSeries>>>>;
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Every metric family of the process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Sharded>,
    request_duration: Family<RouteLabels, LatencyHistogram>,
    upstream_duration: Family<RouteLabels, LatencyHistogram>,
    request_bytes: Family<RouteLabels, Sharded>,
    response_bytes: Family<RouteLabels, Sharded>,
    connect_errors: Family<RouteLabels, Sharded>,
    retries: Family<RouteLabels, Sharded>,
    connections: Family<ProtocolLabels, Gauge>,
    worker_connections: Family<WorkerLabels, Gauge>,
    handoffs: Counter,
    rebuilds: Family<OutcomeLabels, Counter>,
    rebuild_duration: Histogram,
    version: Gauge,
    vhosts: Gauge,
    routes: Gauge,
    endpoints: Gauge,
    conditions: Family<ReasonLabels, Gauge>,
    sync_age: Family<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    last_sync: Mutex<HashMap<String, Instant>>,
    watch_errors: Family<WatchErrorLabels, Counter>,
    source_loads: Family<SourceLabels, Counter>,
    access_log_dropped: Counter,
    tls_handshakes: Family<VersionLabels, Counter>,
    tls_resumed_handshakes: Family<VersionLabels, Counter>,
    tls_handshake_failures: Family<FailureLabels, Counter>,
    passthrough_connections: Family<OutcomeLabels, Counter>,
    passthrough_bytes: Family<DirectionLabels, Counter>,
    certificate_not_after: Family<CertificateLabels, Gauge>,
    ejections: Counter,
    client_errors: Family<FailureLabels, Counter>,
    mirror: Family<FailureLabels, Counter>,
    series: ArcSwap<SeriesMap>,
    /// Serialises inserts into `series` (copy-on-write); never taken by a request whose series
    /// already exists.
    series_insert: Mutex<()>,
    /// What the configuration gauges and the pruning last counted (issue 11: a new table is
    /// counted by the vhosts that differ from the previous one, not route by route).
    counted: Mutex<Counted>,
}

/// The last configuration's vhosts, and over them the uses of each endpoint address and of
/// each (namespace, ingress, service) label set requests can have.
#[derive(Default)]
struct Counted {
    vhosts: Vec<Arc<crate::routing::VirtualHost>>,
    default: Option<Arc<Backend>>,
    endpoints: HashMap<std::net::SocketAddr, usize>,
    live: LabelUses,
}

/// namespace → ingress → service → uses.
type LabelUses = HashMap<Box<str>, HashMap<Box<str>, HashMap<Box<str>, usize>>>;

impl Counted {
    fn backend(&mut self, backend: &Backend, labels: Option<(&str, &str)>, add: bool) {
        if let Target::Endpoints(addrs) = &backend.target {
            for addr in addrs {
                count(&mut self.endpoints, *addr, add);
            }
        }
        let (namespace, ingress) = labels.unwrap_or_else(|| {
            let namespace = match &backend.reference {
                BackendRef::Service { namespace, .. } | BackendRef::Resource { namespace, .. } => {
                    namespace.as_str()
                }
            };
            (namespace, "")
        });
        let by_ingress = self.live.entry(namespace.into()).or_default();
        let by_service = by_ingress.entry(ingress.into()).or_default();
        count(by_service, service_label(backend).into(), add);
        if by_service.is_empty() {
            by_ingress.remove(ingress);
            if by_ingress.is_empty() {
                self.live.remove(namespace);
            }
        }
    }

    fn vhost(&mut self, vhost: &crate::routing::VirtualHost, add: bool) {
        for route in &vhost.routes {
            let labels = (route.origin.namespace.as_str(), route.origin.name.as_str());
            self.backend(&route.backend, Some(labels), add);
        }
        if let Some(b) = &vhost.fallback {
            self.backend(b, None, add);
        }
    }

    /// Counts `table` instead of the last one: only the vhosts that are not the same `Arc`.
    fn update(&mut self, table: &RouteTable) {
        let previous = std::mem::take(&mut self.vhosts);
        let (mut old, mut new) = (previous.iter().peekable(), table.vhosts().iter().peekable());
        // Both sorted by host, each host once.
        loop {
            match (old.peek(), new.peek()) {
                (Some(a), Some(b)) if Arc::ptr_eq(a, b) => {
                    old.next();
                    new.next();
                }
                (Some(a), Some(b)) if a.host == b.host => {
                    self.vhost(a, false);
                    self.vhost(b, true);
                    old.next();
                    new.next();
                }
                (Some(a), Some(b)) if a.host < b.host => {
                    self.vhost(a, false);
                    old.next();
                }
                (_, Some(b)) => {
                    self.vhost(b, true);
                    new.next();
                }
                (Some(a), None) => {
                    self.vhost(a, false);
                    old.next();
                }
                (None, None) => break,
            }
        }
        if let Some(b) = self.default.take() {
            self.backend(&b, None, false);
        }
        if let Some(b) = table.default_backend() {
            self.backend(b, None, true);
            self.default = Some(b.clone());
        }
        self.vhosts = table.vhosts().to_vec();
    }

    fn is_live(&self, namespace: &str, ingress: &str, service: &str) -> bool {
        self.live
            .get(namespace)
            .and_then(|m| m.get(ingress))
            .is_some_and(|m| m.contains_key(service))
    }
}

/// Adds or removes one use of `key`; a key without uses leaves the map.
fn count<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K, add: bool) {
    if add {
        *map.entry(key).or_default() += 1;
    } else if let std::collections::hash_map::Entry::Occupied(mut e) = map.entry(key) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portico");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests answered, by Ingress, Service, method and status class",
            requests.clone(),
        );
        let request_duration: Family<RouteLabels, LatencyHistogram> = Family::default();
        registry.register_with_unit(
            "request_duration",
            "Time from request headers received to the last response byte handed to the client",
            Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_duration: Family<RouteLabels, LatencyHistogram> = Family::default();
        registry.register_with_unit(
            "upstream_duration",
            "Time from sending a request upstream to its response headers (all attempts)",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let request_bytes = Family::default();
        registry.register_with_unit(
            "request",
            "Request body bytes received from clients",
            Unit::Bytes,
            request_bytes.clone(),
        );
        let response_bytes = Family::default();
        registry.register_with_unit(
            "response",
            "Response body bytes sent to clients",
            Unit::Bytes,
            response_bytes.clone(),
        );
        let connect_errors = Family::default();
        registry.register(
            "upstream_connect_errors",
            "Upstream connect attempts that failed (refused, reset, timed out)",
            connect_errors.clone(),
        );
        let retries = Family::default();
        registry.register(
            "upstream_retries",
            "Requests retried on another endpoint (connect failure, or a reset of an idempotent bodiless request)",
            retries.clone(),
        );
        let connections = Family::default();
        registry.register(
            "client_connections",
            "Open client connections, by listener protocol",
            connections.clone(),
        );
        let worker_connections = Family::default();
        registry.register(
            "worker_connections",
            "Open client connections held by each proxy worker (--worker-threads), all listeners together",
            worker_connections.clone(),
        );
        let handoffs = Counter::default();
        registry.register(
            "worker_handoffs",
            "Client connections a worker accepted and handed to a worker holding fewer connections",
            handoffs.clone(),
        );
        let rebuilds = Family::default();
        registry.register(
            "config_rebuilds",
            "Configuration rebuilds (translate runs), by outcome: published or unchanged",
            rebuilds.clone(),
        );
        let rebuild_duration = rebuild_histogram();
        registry.register_with_unit(
            "config_rebuild_duration",
            "Time to translate a snapshot and publish it",
            Unit::Seconds,
            rebuild_duration.clone(),
        );
        let version = Gauge::default();
        registry.register(
            "config_version",
            "Version of the published configuration (0: none yet)",
            version.clone(),
        );
        let vhosts = Gauge::default();
        registry.register(
            "config_vhosts",
            "Virtual hosts in the published table",
            vhosts.clone(),
        );
        let routes = Gauge::default();
        registry.register(
            "config_routes",
            "Routes in the published table",
            routes.clone(),
        );
        let endpoints = Gauge::default();
        registry.register(
            "config_endpoints",
            "Distinct endpoint addresses in the published table",
            endpoints.clone(),
        );
        let conditions = Family::default();
        registry.register(
            "config_conditions",
            "Conditions (problems with objects) in the published configuration, by reason",
            conditions.clone(),
        );
        let sync_age = Family::default();
        registry.register_with_unit(
            "source_last_sync_age",
            "Seconds since each source last read all its objects successfully",
            Unit::Seconds,
            sync_age.clone(),
        );
        let watch_errors = Family::default();
        registry.register(
            "source_watch_errors",
            "Errors while watching or reading a source, by source and kind",
            watch_errors.clone(),
        );
        let source_loads = Family::default();
        registry.register(
            "source_loads",
            "Whole reads of a source's objects, changed or not (the manifests directory: source=files)",
            source_loads.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        let tls_handshakes = Family::default();
        registry.register(
            "tls_handshakes",
            "Completed TLS handshakes on the HTTPS listener, by negotiated version",
            tls_handshakes.clone(),
        );
        let tls_resumed_handshakes = Family::default();
        registry.register(
            "tls_resumed_handshakes",
            "Completed TLS handshakes that resumed a session (ticket or session cache), by version; also counted in tls_handshakes",
            tls_resumed_handshakes.clone(),
        );
        let tls_handshake_failures = Family::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that did not complete, by reason: timeout, closed (client went away), error",
            tls_handshake_failures.clone(),
        );
        let passthrough_connections = Family::default();
        registry.register(
            "ssl_passthrough_connections",
            "TLS connections spliced to a backend (--enable-ssl-passthrough), by outcome: spliced, no_endpoint, connect_failed",
            passthrough_connections.clone(),
        );
        let passthrough_bytes = Family::default();
        registry.register(
            "ssl_passthrough_bytes",
            "Bytes copied on spliced TLS connections, by direction: upstream (client to backend), downstream",
            passthrough_bytes.clone(),
        );
        let certificate_not_after = Family::default();
        registry.register_with_unit(
            "tls_certificate_not_after_timestamp",
            "When each served certificate expires (notAfter, Unix time), by bound host (empty: the --default-ssl-certificate) and Secret",
            Unit::Seconds,
            certificate_not_after.clone(),
        );
        let ejections = Counter::default();
        registry.register(
            "upstream_ejections",
            "Endpoints ejected by passive health checking (connect failure or reset before a response)",
            ejections.clone(),
        );
        let client_errors = Family::default();
        registry.register(
            "client_request_errors",
            "Requests that failed on the client's side, by reason: malformed_body (400), aborted (499: the client went away), body_timeout (408); never counted against an endpoint",
            client_errors.clone(),
        );
        let mirror = Family::default();
        registry.register(
            "mirror_requests",
            "Copies of requests for mirror-target, by result: sent, failed (error or timeout), dropped (too many in flight), skipped (a body Portico does not copy)",
            mirror.clone(),
        );
        Metrics {
            client_errors,
            mirror,
            registry,
            tls_handshakes,
            tls_resumed_handshakes,
            tls_handshake_failures,
            passthrough_connections,
            passthrough_bytes,
            certificate_not_after,
            requests,
            request_duration,
            upstream_duration,
            request_bytes,
            response_bytes,
            connect_errors,
            retries,
            connections,
            worker_connections,
            handoffs,
            rebuilds,
            rebuild_duration,
            version,
            vhosts,
            routes,
            endpoints,
            conditions,
            sync_age,
            last_sync: Mutex::new(HashMap::new()),
            watch_errors,
            source_loads,
            access_log_dropped,
            ejections,
            series: ArcSwap::from_pointee(SeriesMap::default()),
            series_insert: Mutex::new(()),
            counted: Mutex::default(),
        }
    }

    /// The series of one (namespace, ingress, service). Lock-free once it exists.
    pub fn route(&self, namespace: &str, ingress: &str, service: &str) -> Arc<RouteSeries> {
        let find = |map: &SeriesMap| {
            map.get(namespace)
                .and_then(|m| m.get(ingress))
                .and_then(|m| m.get(service))
                .cloned()
        };
        if let Some(series) = find(&self.series.load()) {
            return series;
        }
        let _guard = self
            .series_insert
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.series.load_full();
        if let Some(series) = find(&current) {
            return series;
        }
        let labels = RouteLabels {
            namespace: namespace.to_string(),
            ingress: ingress.to_string(),
            service: service.to_string(),
        };
        let series = Arc::new(RouteSeries {
            requests_family: self.requests.clone(),
            requests: Default::default(),
            duration: self.request_duration.get_or_create(&labels).clone(),
            upstream_duration: self.upstream_duration.get_or_create(&labels).clone(),
            bytes_in: self.request_bytes.get_or_create(&labels).clone(),
            bytes_out: self.response_bytes.get_or_create(&labels).clone(),
            connect_errors: self.connect_errors.get_or_create(&labels).clone(),
            retries: self.retries.get_or_create(&labels).clone(),
            labels,
        });
        let mut next = (*current).clone();
        next.entry(namespace.into())
            .or_default()
            .entry(ingress.into())
            .or_default()
            .insert(service.into(), series.clone());
        self.series.store(Arc::new(next));
        series
    }

    /// The series for a routing decision (see [`RouteLabels`] for what each label holds).
    pub fn decision(&self, decision: &Decision<'_>) -> Arc<RouteSeries> {
        match decision {
            Decision::Route { route, .. } => self.route(
                &route.origin.namespace,
                &route.origin.name,
                service_label(&route.backend),
            ),
            Decision::Fallback { backend, .. } | Decision::Default { backend, .. } => {
                let namespace = match &backend.reference {
                    BackendRef::Service { namespace, .. }
                    | BackendRef::Resource { namespace, .. } => namespace.as_str(),
                };
                self.route(namespace, "", service_label(backend))
            }
            Decision::NotFound { .. } => self.unrouted(),
        }
    }

    /// The series of requests that matched no route or were refused before routing.
    pub fn unrouted(&self) -> Arc<RouteSeries> {
        self.route("", "", "")
    }

    /// A client connection opened on a listener of `protocol` (`http`, `https`); the gauge
    /// goes down when the returned guard is dropped.
    pub fn connection(&self, protocol: &'static str) -> ConnectionGuard {
        self.connection_gauge(protocol).open()
    }

    /// The gauge [`Metrics::connection`] counts in, found once (by a listener) so that each
    /// connection does not look its series up by label (a hash and a lock).
    pub fn connection_gauge(&self, protocol: &'static str) -> ConnectionGauge {
        ConnectionGauge(
            self.connections
                .get_or_create(&ProtocolLabels { protocol })
                .clone(),
        )
    }

    /// Proxy worker `worker`'s series of `portico_worker_connections`: the connections it holds,
    /// which `proxy::workers` also reads to place new connections (issue 12).
    pub fn worker_connections(&self, worker: usize) -> ConnectionGauge {
        let worker = u32::try_from(worker).unwrap_or(u32::MAX);
        ConnectionGauge(
            self.worker_connections
                .get_or_create(&WorkerLabels { worker })
                .clone(),
        )
    }

    /// A worker handed a connection it accepted to another (`portico_worker_handoffs_total`).
    pub fn handoff(&self) {
        self.handoffs.inc();
    }

    /// One translate-and-publish run; `published` is false when the result equalled the
    /// published configuration.
    pub fn rebuild(&self, published: bool, elapsed: Duration) {
        let outcome = if published { "published" } else { "unchanged" };
        self.rebuilds
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.rebuild_duration.observe(elapsed.as_secs_f64());
    }

    /// `source` (e.g. `files`, `kube`) has just read all its objects successfully.
    pub fn source_synced(&self, source: &str) {
        let mut last = self
            .last_sync
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        last.insert(source.to_string(), Instant::now());
    }

    /// `source` read all its objects (whether or not that succeeded or changed anything): a
    /// source that re-reads itself without cause shows here (issue 10 item 7).
    pub fn source_loaded(&self, source: &str) {
        self.source_loads
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .inc();
    }

    /// How many times `source` has read all its objects so far.
    pub fn source_loads(&self, source: &str) -> u64 {
        self.source_loads
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .get()
    }

    /// A watch or read error of `source`; `kind` is a bounded word (an object kind such as
    /// `Ingress`, or `read`, `parse`, `watch`).
    pub fn watch_error(&self, source: &str, kind: &str) {
        self.watch_errors
            .get_or_create(&WatchErrorLabels {
                source: source.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// A completed TLS handshake; `version` from [`crate::tls::version_name`]; `resumed`
    /// when it resumed a session (TLS 1.3 PSK, TLS 1.2 ticket or session id).
    pub fn tls_handshake(&self, version: &'static str, resumed: bool) {
        let labels = VersionLabels { version };
        self.tls_handshakes.get_or_create(&labels).inc();
        if resumed {
            self.tls_resumed_handshakes.get_or_create(&labels).inc();
        }
    }

    /// A TLS handshake that did not complete: `timeout`, or [`handshake_failure_reason`].
    pub fn tls_handshake_failed(&self, reason: &'static str) {
        self.tls_handshake_failures
            .get_or_create(&FailureLabels { reason })
            .inc();
    }

    /// A TLS connection for a passthrough host: `spliced`, `no_endpoint` or `connect_failed`.
    pub fn passthrough_connection(&self, outcome: &'static str) {
        self.passthrough_connections
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Bytes a spliced connection copied, when it ends.
    pub fn passthrough_bytes(&self, upstream: u64, downstream: u64) {
        for (direction, n) in [("upstream", upstream), ("downstream", downstream)] {
            self.passthrough_bytes
                .get_or_create(&DirectionLabels { direction })
                .inc_by(n);
        }
    }

    /// A request failed on the client's side; `reason` from [`crate::proxy::ClientFault`].
    pub fn client_error(&self, reason: &'static str) {
        self.client_errors
            .get_or_create(&FailureLabels { reason })
            .inc();
    }

    /// A mirror copy's fate (`proxy/mirror.rs`): `sent`, `failed`, `dropped`, `skipped`.
    pub fn mirror(&self, result: &'static str) {
        self.mirror
            .get_or_create(&FailureLabels { reason: result })
            .inc();
    }

    /// An endpoint was ejected by passive health checking.
    pub fn ejection(&self) {
        self.ejections.inc();
    }

    /// The counter the access log increments when it drops a line.
    pub fn access_log_dropped(&self) -> Counter {
        self.access_log_dropped.clone()
    }

    /// A configuration was published: set the configuration gauges from it, and drop the series
    /// of (namespace, ingress, service) label sets its table no longer has, so deleted
    /// Ingresses do not stay in `/metrics` for ever. Counts of such a series made since the
    /// last scrape are lost, as is a request still in flight on it (it counts into a detached
    /// counter). `conditions` is the number of conditions by reason name.
    pub fn configuration(
        &self,
        version: u64,
        table: &RouteTable,
        tls: &TlsTable,
        conditions: HashMap<String, i64>,
    ) {
        self.version.set(i64::try_from(version).unwrap_or(i64::MAX));
        self.vhosts.set(to_i64(table.vhosts().len()));
        self.routes.set(to_i64(table.route_count()));
        let mut counted = self
            .counted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counted.update(table);
        self.endpoints.set(to_i64(counted.endpoints.len()));
        // Reasons that went away read 0 rather than keeping their last count.
        self.conditions.clear();
        for (reason, n) in conditions {
            self.conditions
                .get_or_create(&ReasonLabels { reason })
                .set(n);
        }
        // Certificates come and go with the configuration.
        self.certificate_not_after.clear();
        for binding in tls.bindings() {
            if let Some(c) = &binding.certificate {
                self.certificate_not_after
                    .get_or_create(&CertificateLabels {
                        host: binding.host.to_string(),
                        secret: c.secret.clone(),
                    })
                    .set(c.info.not_after);
            }
        }
        if let Some(c) = tls.default_certificate() {
            self.certificate_not_after
                .get_or_create(&CertificateLabels {
                    host: String::new(),
                    secret: c.secret.clone(),
                })
                .set(c.info.not_after);
        }
        self.prune(&counted);
    }

    /// OpenMetrics text for `/metrics`. Reads only: the sync ages from the clock at scrape
    /// time, everything else as pushed.
    pub fn encode(&self) -> String {
        {
            let last = self
                .last_sync
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (source, at) in last.iter() {
                self.sync_age
                    .get_or_create(&SourceLabels {
                        source: source.clone(),
                    })
                    .set(at.elapsed().as_secs_f64());
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Metrics {
    /// Drops the series of (namespace, ingress, service) label sets the counted table does
    /// not have. Walks the series that exist (those requests created), not the table.
    fn prune(&self, live: &Counted) {
        let current = self.series.load_full();
        let stale: Vec<Arc<RouteSeries>> = current
            .values()
            .flat_map(|m| m.values())
            .flat_map(|m| m.values())
            .filter(|s| {
                let l = &s.labels;
                let key = (l.namespace.as_str(), l.ingress.as_str(), l.service.as_str());
                key != ("", "", "") && !live.is_live(key.0, key.1, key.2)
            })
            .cloned()
            .collect();
        if stale.is_empty() {
            return;
        }
        let _guard = self
            .series_insert
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = (*self.series.load_full()).clone();
        for series in &stale {
            let l = &series.labels;
            if let Some(by_ingress) = next.get_mut(l.namespace.as_str()) {
                if let Some(by_service) = by_ingress.get_mut(l.ingress.as_str()) {
                    by_service.remove(l.service.as_str());
                    if by_service.is_empty() {
                        by_ingress.remove(l.ingress.as_str());
                    }
                }
                if by_ingress.is_empty() {
                    next.remove(l.namespace.as_str());
                }
            }
            self.request_duration.remove(l);
            self.upstream_duration.remove(l);
            self.request_bytes.remove(l);
            self.response_bytes.remove(l);
            self.connect_errors.remove(l);
            self.retries.remove(l);
            for method in METHODS {
                for status_class in STATUS_CLASSES {
                    self.requests.remove(&RequestLabels {
                        namespace: l.namespace.clone(),
                        ingress: l.ingress.clone(),
                        service: l.service.clone(),
                        method,
                        status_class,
                    });
                }
            }
        }
        self.series.store(Arc::new(next));
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `service` label of a backend: the Service name, or `Kind/name` for a resource backend.
fn service_label(backend: &Backend) -> &str {
    match &backend.reference {
        BackendRef::Service { name, .. } => name,
        BackendRef::Resource { name, .. } => name,
    }
}

/// Distinct endpoint addresses over every backend of `table`.
pub fn endpoint_count(table: &RouteTable) -> usize {
    let mut seen = HashSet::new();
    let mut add = |backend: &Backend| {
        if let Target::Endpoints(addrs) = &backend.target {
            seen.extend(addrs.iter().copied());
        }
    };
    for vhost in table.vhosts() {
        for route in &vhost.routes {
            add(&route.backend);
        }
        if let Some(b) = &vhost.fallback {
            add(b);
        }
    }
    if let Some(b) = table.default_backend() {
        add(b);
    }
    seen.len()
}

/// One listener's series of `portico_client_connections`.
#[derive(Debug, Clone)]
pub struct ConnectionGauge(Gauge);

impl ConnectionGauge {
    /// A client connection opened; the gauge goes down when the returned guard is dropped.
    pub fn open(&self) -> ConnectionGuard {
        self.0.inc();
        ConnectionGuard(self.0.clone())
    }

    /// The connections open now.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// Keeps one client connection counted in `portico_client_connections`.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_statuses_are_bounded() {
        assert_eq!(METHODS[method_index(&Method::GET)], "GET");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(METHODS[method_index(&odd)], "OTHER");
        assert_eq!(STATUS_CLASSES[class_index(204)], "2xx");
        assert_eq!(STATUS_CLASSES[class_index(599)], "5xx");
        assert_eq!(STATUS_CLASSES[class_index(999)], "5xx");
    }

    #[test]
    fn a_series_is_interned_once() {
        let m = Metrics::new();
        let a = m.route("ns", "ing", "svc");
        let b = m.route("ns", "ing", "svc");
        assert!(Arc::ptr_eq(&a, &b));
        a.request(0, 200, Duration::from_millis(3), 5, 7);
        let text = m.encode();
        assert!(text.contains(
            "portico_requests_total{namespace=\"ns\",ingress=\"ing\",service=\"svc\",method=\"GET\",status_class=\"2xx\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "portico_response_bytes_total{namespace=\"ns\",ingress=\"ing\",service=\"svc\"} 7"
            ),
            "{text}"
        );
    }

    /// Issue 12: two workers writing one route's series each write their own shard; a scrape
    /// shows the sum, as one shared counter did.
    #[test]
    fn workers_requests_sum_at_scrape() {
        crate::sharded::set_shards(2);
        let m = Metrics::new();
        let series = m.route("ns", "ing", "svc");
        std::thread::scope(|scope| {
            for worker in 0..2 {
                let series = &series;
                scope.spawn(move || {
                    crate::sharded::set_thread_shard(worker);
                    for _ in 0..500 {
                        series.request(0, 200, Duration::from_millis(3), 1, 2);
                        series.upstream(Duration::from_millis(2));
                    }
                });
            }
        });
        let text = m.encode();
        for line in [
            "portico_requests_total{namespace=\"ns\",ingress=\"ing\",service=\"svc\",method=\"GET\",status_class=\"2xx\"} 1000",
            "portico_request_bytes_total{namespace=\"ns\",ingress=\"ing\",service=\"svc\"} 1000",
            "portico_response_bytes_total{namespace=\"ns\",ingress=\"ing\",service=\"svc\"} 2000",
            "portico_request_duration_seconds_count{namespace=\"ns\",ingress=\"ing\",service=\"svc\"} 1000",
            "portico_request_duration_seconds_bucket{le=\"0.004\",namespace=\"ns\",ingress=\"ing\",service=\"svc\"} 1000",
            "portico_upstream_duration_seconds_bucket{le=\"0.002\",namespace=\"ns\",ingress=\"ing\",service=\"svc\"} 1000",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
    }

    /// The endpoint gauge and pruning count only the vhosts that differ from the last table
    /// (issue 11): after tables that share, replace, add and drop vhosts, both are what
    /// counting the table from scratch gives.
    #[test]
    fn counts_follow_the_vhosts_that_changed() {
        use crate::routing::{
            BackendRef, HostMatch, Origin, PathType, PortRef, Route, VirtualHost,
        };
        let backend = |service: &str, ips: &[&str]| {
            Arc::new(Backend::new(
                BackendRef::Service {
                    namespace: "default".into(),
                    name: service.into(),
                    port: PortRef::Number(80),
                },
                Target::Endpoints(
                    ips.iter()
                        .map(|ip| format!("{ip}:80").parse().unwrap())
                        .collect(),
                ),
            ))
        };
        let vhost = |host: &str, ingress: &str, backend: Arc<Backend>| {
            Arc::new(VirtualHost::new(
                HostMatch::Exact(host.into()),
                vec![Route {
                    path: "/".into(),
                    path_type: PathType::Prefix,
                    backend,
                    origin: Origin {
                        namespace: "default".into(),
                        name: ingress.into(),
                        rule: 0,
                        path: 0,
                    },
                    ssl_redirect: false,
                }],
                None,
            ))
        };
        let a = vhost("a.test", "a", backend("s", &["10.0.0.1", "10.0.0.2"]));
        let b = vhost("b.test", "b", backend("s", &["10.0.0.2"]));
        let c = vhost("c.test", "c", backend("t", &["10.0.0.3"]));
        let c2 = vhost("c.test", "c2", backend("t", &["10.0.0.4"]));
        let tables = [
            vec![a.clone(), b.clone(), c.clone()],
            vec![a.clone(), c2.clone()],
            vec![b.clone(), c2.clone()],
            vec![],
            vec![a.clone(), b.clone(), c.clone()],
        ];
        let m = Metrics::new();
        for (version, vhosts) in tables.into_iter().enumerate() {
            for ingress in ["a", "b", "c", "c2"] {
                let service = if ingress.starts_with('c') { "t" } else { "s" };
                m.route("default", ingress, service)
                    .request(0, 200, Duration::ZERO, 0, 0);
            }
            let table = RouteTable::from_shared(vhosts.clone(), None);
            m.configuration(
                version as u64 + 1,
                &table,
                &TlsTable::default(),
                HashMap::new(),
            );
            let text = m.encode();
            let gauge = format!("portico_config_endpoints {}\n", endpoint_count(&table));
            assert!(
                text.contains(&gauge),
                "version {version}: {gauge} in {text}"
            );
            for ingress in ["a", "b", "c", "c2"] {
                let live = vhosts.iter().any(|v| v.routes[0].origin.name == ingress);
                let label = format!("ingress=\"{ingress}\"");
                assert_eq!(text.contains(&label), live, "version {version}: {label}");
            }
        }
    }

    #[test]
    fn series_of_deleted_ingresses_are_pruned_when_a_version_is_published() {
        use crate::routing::{BackendRef, Origin, PathType, PortRef, Route, VirtualHost};
        let m = Metrics::new();
        let backend = Arc::new(Backend::new(
            BackendRef::Service {
                namespace: "default".into(),
                name: "svc".into(),
                port: PortRef::Number(80),
            },
            Target::Endpoints(vec!["127.0.0.1:80".parse().unwrap()]),
        ));
        let route = Route {
            path: "/".into(),
            path_type: PathType::Prefix,
            backend,
            origin: Origin {
                namespace: "default".into(),
                name: "keep".into(),
                rule: 0,
                path: 0,
            },
            ssl_redirect: false,
        };
        let table = RouteTable::new(
            vec![VirtualHost::new(
                crate::routing::HostMatch::Any,
                vec![route],
                None,
            )],
            None,
        );
        m.route("default", "keep", "svc")
            .request(0, 200, Duration::ZERO, 0, 0);
        m.route("default", "gone", "svc")
            .request(0, 200, Duration::ZERO, 0, 0);
        m.unrouted().request(0, 404, Duration::ZERO, 0, 0);
        // A scrape does not prune: it only reads.
        let text = m.encode();
        assert!(text.contains("ingress=\"gone\""), "{text}");
        let text = m.encode();
        assert!(text.contains("ingress=\"gone\""), "{text}");
        m.configuration(2, &table, &TlsTable::default(), HashMap::new());
        let text = m.encode();
        assert!(text.contains("ingress=\"keep\""), "{text}");
        assert!(!text.contains("ingress=\"gone\""), "{text}");
        assert!(text.contains("status_class=\"4xx\""), "{text}");
        assert!(text.contains("portico_config_version 2"), "{text}");
        let again = m.route("default", "gone", "svc");
        assert!(
            again.requests[0][1].get().is_none(),
            "a fresh series after pruning"
        );
    }
}
