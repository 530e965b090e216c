//! The running controller: binds the listeners, loads the source, publishes, serves, and stops
//! on request. `main.rs` and the quickstart example both start Portico through `run`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::config::{Config, LogFormat, SourceConfig};
use crate::metrics::Metrics;
use crate::proxy::{self, Observe, ProxyOptions, Scheme};
use crate::publish;
use crate::source::files;

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
}

/// Installs the global tracing subscriber. `level` is a tracing filter (`info`,
/// `portico=debug`); an invalid one falls back to `info` with a warning. The filter can be
/// replaced later through [`log_level`] (`PUT /log-level`).
pub fn init_tracing(format: LogFormat, level: &str) {
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
    let result = match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
    };
    if result.is_err() {
        return; // already installed (tests, the quickstart)
    }
    let _ = LOG_LEVEL.set(LogLevel {
        handle,
        current: Mutex::new(current),
    });
    if let Some(e) = bad {
        tracing::warn!(error = %e, "invalid --log-level {level:?}; using info");
    }
}

static LOG_LEVEL: OnceLock<LogLevel> = OnceLock::new();

/// The log filter of the subscriber installed by [`init_tracing`], if this process installed
/// one.
pub fn log_level() -> Option<&'static LogLevel> {
    LOG_LEVEL.get()
}

/// Changes the log filter at run time.
pub struct LogLevel {
    handle: tracing_subscriber::reload::Handle<
        tracing_subscriber::EnvFilter,
        tracing_subscriber::Registry,
    >,
    current: Mutex<String>,
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

/// Runs Portico until `shutdown` resolves, then drains and returns.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let http = bind("http", config.http_addr).await?;
    let admin = bind("admin", config.admin_addr).await?;
    let shared = publish::shared();
    let options = Arc::new(config.translate.clone());
    let metrics = Arc::new(Metrics::new());
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

    let admin_state = Arc::new(crate::admin::Admin {
        shared: shared.clone(),
        metrics: metrics.clone(),
    });
    tokio::spawn(crate::admin::serve(admin, admin_state, stopped()));

    let SourceConfig::Manifests(dir) = config.source.clone();
    // The first load is complete before anything is published (publish nothing partial).
    let loaded = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || files::load(&dir))
            .await
            .unwrap_or_default()
    };
    files::log_problems(&loaded);
    files::record_load(&metrics, &loaded, true);
    let initial = Arc::new(loaded.snapshot);
    publish::apply_counted(&shared, &initial, &options, &metrics);
    let (snapshots_tx, snapshots_rx) = watch::channel(initial.clone());
    tokio::spawn(files::watch(
        dir.clone(),
        initial,
        snapshots_tx,
        metrics.clone(),
    ));
    tokio::spawn(publish::run(
        shared.clone(),
        snapshots_rx,
        options,
        metrics.clone(),
    ));

    tracing::info!(
        http.addr = %config.http_addr,
        admin.addr = %config.admin_addr,
        manifests = %dir.display(),
        "portico serving"
    );
    let proxy_options = Arc::new(ProxyOptions {
        scheme: Scheme::Http,
        max_header_bytes: config.max_header_bytes,
        connect_timeout: config.upstream_connect_timeout,
        response_timeout: config.upstream_response_timeout,
        observe: Observe {
            metrics,
            access_log,
        },
    });
    let stop_all = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    proxy::serve(http, shared, proxy_options, stop_all)
        .await
        .map_err(AppError::Proxy)
}
