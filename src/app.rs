//! The running controller: binds the listeners, loads the source, publishes, serves, and stops
//! on request. `main.rs` and the quickstart example both start Portico through `run`.

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::config::{Config, LogFormat, SourceConfig};
use crate::metrics::Metrics;
use crate::proxy::{self, Observe, ProxyOptions, Scheme};
use crate::publish::Publisher;
use crate::source::{files, Snapshot};
use crate::tls;
use crate::translate::Options;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("proxy stopped: {0}")]
    Proxy(std::io::Error),
    #[error(transparent)]
    Kube(#[from] crate::source::kube::KubeError),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Installs the global tracing subscriber. `level` is a tracing filter (`info`,
/// `portico=debug`); an invalid one falls back to `info` with a warning. Returns the handle
/// that changes the filter later (pass it to [`run`] for `PUT /log-level`); `None` when a
/// subscriber was already installed (tests, the quickstart run twice).
pub fn init_tracing(format: LogFormat, level: &str) -> Option<Arc<LogLevel>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let (filter, current, bad) = match tracing_subscriber::EnvFilter::try_new(level) {
        Ok(f) => (f, level.to_string(), None),
        Err(e) => (
            tracing_subscriber::EnvFilter::new("info"),
            "info".to_string(),
            Some(e),
        ),
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    // Logs go to stdout (as the access log does). Colour codes only help a person at a
    // terminal; in a file, a pipe or `kubectl logs` they are noise that breaks grep and log
    // parsers, and tracing-subscriber colours unconditionally unless told otherwise.
    let ansi = colour_logs(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
    if result.is_err() {
        return None; // already installed (tests, the quickstart)
    }
    if let Some(e) = bad {
        tracing::warn!(error = %e, "invalid --log-level {level:?}; using info");
    }
    Some(Arc::new(LogLevel {
        handle,
        current: Mutex::new(current),
    }))
}

/// Whether log lines carry terminal colour codes: only when they go to a terminal, and not
/// when `NO_COLOR` is set to anything non-empty (<https://no-color.org>, which
/// tracing-subscriber's own default honours too).
fn colour_logs(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Changes the log filter of the subscriber [`init_tracing`] installed, at run time.
pub struct LogLevel {
    handle: tracing_subscriber::reload::Handle<
        tracing_subscriber::EnvFilter,
        tracing_subscriber::Registry,
    >,
    current: Mutex<String>,
}

impl std::fmt::Debug for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLevel")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl crate::admin::LogFilter for LogLevel {
    fn current(&self) -> String {
        LogLevel::current(self)
    }

    fn set(&self, filter: &str) -> Result<(), String> {
        LogLevel::set(self, filter)
    }
}

impl LogLevel {
    /// The filter in force, as it was given.
    pub fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the filter; an invalid one is refused and changes nothing.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let parsed = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
        self.handle.reload(parsed).map_err(|e| e.to_string())?;
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = filter.to_string();
        tracing::info!(filter, "log level changed");
        Ok(())
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { what, addr, source })
}

/// Runs Portico until `shutdown` resolves, then drains and returns. `log_level` is the handle
/// from [`init_tracing`], served on `/log-level` (`None`: that endpoint answers 404).
pub async fn run(
    config: Config,
    log_level: Option<Arc<LogLevel>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    // The proxy's listeners: one SO_REUSEPORT socket per worker thread (proxy::workers).
    let workers = match config.worker_threads {
        0 => proxy::workers::default_count(),
        n => n,
    };
    let http =
        proxy::workers::bind(config.http_addr, workers).map_err(|source| AppError::Bind {
            what: "http",
            addr: config.http_addr,
            source,
        })?;
    let https =
        proxy::workers::bind(config.https_addr, workers).map_err(|source| AppError::Bind {
            what: "https",
            addr: config.https_addr,
            source,
        })?;
    let admin = bind("admin", config.admin_addr).await?;
    let options = Arc::new(config.translate.clone());
    // Per-request metrics get a shard per worker, fixed when a series is made: before any
    // series can be (issue 12, scaling).
    crate::sharded::set_shards(workers);
    let metrics = Arc::new(Metrics::new());
    // The one owner of the published configuration; everything else reads `shared` or
    // subscribes.
    let publisher = Publisher::new(metrics.clone());
    let shared = publisher.shared().clone();
    let published = publisher.subscribe();
    let access_log = config.access_log.map(|format| {
        let (log, _thread) = AccessLog::start(
            format,
            Box::new(std::io::stdout()),
            crate::access_log::CAPACITY,
            metrics.access_log_dropped(),
        );
        log
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin_state = Arc::new(crate::admin::Admin {
        shared: shared.clone(),
        metrics: metrics.clone(),
        draining: draining.clone(),
        path_rules: config.path_rules,
        log_level: log_level.map(|l| l as Arc<dyn crate::admin::LogFilter>),
    });
    // The admin port outlives the proxy's drain, so /readyz keeps saying "shutting down".
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    tokio::spawn(crate::admin::serve(admin, admin_state, async move {
        let mut rx = admin_stop_rx;
        let _ = rx.wait_for(|stop| *stop).await;
    }));

    let status = match config.source.clone() {
        SourceConfig::Manifests(dir) => {
            start_manifests(&dir, config.manifest_limits, publisher, options, &metrics).await;
            tracing::info!(
                http.addr = %config.http_addr,
                https.addr = %config.https_addr,
                admin.addr = %config.admin_addr,
                manifests = %dir.display(),
                "portico serving"
            );
            None
        }
        SourceConfig::Kube(source) => {
            let client = crate::source::kube::client(source.kubeconfig.as_deref()).await?;
            let (snapshots_tx, snapshots_rx) = watch::channel(Arc::new(Snapshot::default()));
            let ns = source.watch_namespace.clone();
            tokio::spawn(crate::source::kube::run(
                client.clone(),
                ns,
                options.configmap.clone(),
                snapshots_tx,
                metrics.clone(),
                stopped(),
            ));
            // Nothing is published (and /readyz stays unready) until the source's first
            // snapshot, which it sends only once every watcher has listed.
            let mut first = snapshots_rx.clone();
            tokio::spawn(async move {
                if first.changed().await.is_ok() {
                    publisher.run(first, options).await;
                }
            });
            tracing::info!(
                http.addr = %config.http_addr,
                https.addr = %config.https_addr,
                admin.addr = %config.admin_addr,
                watch.namespace = source.watch_namespace.as_deref().unwrap_or("(all)"),
                "portico serving from the Kubernetes API"
            );
            Some(tokio::spawn(crate::status::run(
                client,
                config.status.clone(),
                published,
                snapshots_rx,
                stopped(),
            )))
        }
    };

    let observe = Observe {
        metrics,
        access_log,
    };
    // spec §5.3: the resolver reads certificates from the same published value as the routes.
    let resolver = tls::Resolver::new(shared.clone(), tls::generated_default()?);
    let tls_listener = proxy::TlsListener {
        acceptor: tls::server_config(Arc::new(resolver))?.into(),
        handshake_timeout: config.tls_handshake_timeout,
    };
    let balancer = Arc::new(proxy::Balancer::default());
    let limiter = Arc::new(proxy::limits::Limiter::default());
    let trusted_proxies = Arc::new(config.trusted_proxies.clone());
    let upgrade_protocols = Arc::new(config.allowed_upgrades.clone());
    let proxy_options = |scheme| {
        Arc::new(ProxyOptions {
            scheme,
            max_header_bytes: config.max_header_bytes,
            connect_timeout: config.upstream_connect_timeout,
            response_timeout: config.upstream_response_timeout,
            send_timeout: config.upstream_send_timeout,
            balance: config.load_balance,
            tries: config.tries,
            body_limit: config.body_limit,
            upstream_idle_timeout: config.upstream_idle_timeout,
            header_read_timeout: config.client_header_timeout,
            client_body_timeout: config.client_body_timeout,
            client_idle_timeout: config.client_idle_timeout,
            max_connections: config.max_connections,
            connection_limit: None,
            h2_max_concurrent_streams: config.http2_max_concurrent_streams,
            h2_keepalive_interval: config.http2_keepalive_interval,
            h2_keepalive_timeout: config.http2_keepalive_timeout,
            proxy_protocol: config.proxy_protocol,
            trusted_proxies: trusted_proxies.clone(),
            upgrade_protocols: upgrade_protocols.clone(),
            drain_timeout: config.shutdown_timeout,
            balancer: balancer.clone(),
            limiter: limiter.clone(),
            observe: observe.clone(),
            path_rules: config.path_rules,
            ssl_passthrough: config.translate.ssl_passthrough,
            passthrough_idle_timeout: proxy::PASSTHROUGH_IDLE_TIMEOUT,
        })
    };
    // Graceful shutdown: unready at once, keep serving for the delay (balancers notice),
    // then close the listeners and drain (each worker's listeners wait up to
    // --shutdown-timeout).
    let shutdown_delay = config.shutdown_delay;
    let (proxy_stop_tx, proxy_stop_rx) = watch::channel(false);
    tracing::info!(workers, "proxy workers starting");
    let serving = proxy::workers::run(
        workers,
        shared,
        vec![
            proxy::workers::Listener {
                sockets: http,
                options: proxy_options(Scheme::Http),
                tls: None,
            },
            proxy::workers::Listener {
                sockets: https,
                options: proxy_options(Scheme::Https),
                tls: Some(tls_listener),
            },
        ],
        proxy_stop_rx,
    )
    .map_err(AppError::Proxy)?;
    let stop_all = async move {
        shutdown.await;
        draining.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(delay = ?shutdown_delay, "shutting down: unready; still serving for the delay");
        tokio::time::sleep(shutdown_delay).await;
        tracing::info!("closing listeners");
        let _ = proxy_stop_tx.send(true);
        let _ = stop_tx.send(true);
    };
    tokio::spawn(stop_all);
    let proxy_result = serving.await;
    if let Some(status) = status {
        // Let the leader release its Lease so another replica takes over at once.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), status).await;
    }
    let _ = admin_stop_tx.send(true);
    proxy_result.map_err(AppError::Proxy)
}

/// Loads the manifests, publishes them, and keeps watching the directory.
async fn start_manifests(
    dir: &std::path::Path,
    limits: files::Limits,
    mut publisher: Publisher,
    options: Arc<Options>,
    metrics: &Arc<Metrics>,
) {
    // The first load is complete before anything is published (publish nothing partial).
    // The watch starts with this load's parse cache, so its first read parses nothing again.
    let (loaded, cache) = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut cache = files::Cache::default();
            let loaded = files::load_cached(&dir, &limits, &mut cache, &Snapshot::default());
            (loaded, cache)
        })
        .await
        .unwrap_or_default()
    };
    files::log_problems(&loaded);
    files::record_load(metrics, &loaded, true);
    let initial = Arc::new(loaded.snapshot);
    publisher.publish(initial.clone(), &options);
    let (snapshots_tx, snapshots_rx) = watch::channel(initial.clone());
    tokio::spawn(files::watch(
        dir.to_path_buf(),
        limits,
        initial,
        cache,
        snapshots_tx,
        metrics.clone(),
    ));
    tokio::spawn(publisher.run(snapshots_rx, options));
}

#[cfg(test)]
mod tests {
    use super::colour_logs;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(colour_logs(true, Some(OsStr::new(""))));
        assert!(!colour_logs(true, Some(OsStr::new("1"))));
        assert!(!colour_logs(false, None));
        assert!(!colour_logs(false, Some(OsStr::new("1"))));
    }
}
