//! Accept loop: one hyper-util auto connection (HTTP/1.1, HTTP/1.0, or HTTP/2 with prior
//! knowledge) per client socket, with upgrades enabled, all watched for graceful shutdown.
//! On the HTTPS listener each connection first completes a TLS handshake, in its own task and
//! within a timeout, so slow or idle handshakes never hold up the accept loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::service::{self, Context};
use super::{ProxyOptions, DRAIN_TIMEOUT, MAX_HEADERS};
use crate::publish::Shared;

/// hyper's read buffer is this much larger than `max_header_bytes`, so that our own check in
/// the service (which answers a proper 431) is what normally trips.
const HYPER_HEADROOM: usize = 16 * 1024;

/// TLS settings of an HTTPS listener.
#[derive(Clone)]
pub struct TlsListener {
    /// Built from [`crate::tls::server_config`]: the resolver reads the same `Shared`.
    pub acceptor: TlsAcceptor,
    /// A handshake not finished by then is dropped (spec §5.4 asks that idle TLS connections
    /// cannot pile up).
    pub handshake_timeout: Duration,
}

/// Serves the proxy on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish for up to [`DRAIN_TIMEOUT`], and returns. Established protocol
/// upgrade tunnels (WebSocket) are not waited for.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    options: Arc<ProxyOptions>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_inner(listener, shared, options, None, shutdown).await
}

/// [`serve`] for an HTTPS listener: every connection is a TLS handshake first (spec §5).
/// `options.scheme` should be `Https`.
pub async fn serve_tls(
    listener: TcpListener,
    shared: Shared,
    options: Arc<ProxyOptions>,
    tls: TlsListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_inner(listener, shared, options, Some(tls), shutdown).await
}

async fn serve_inner(
    listener: TcpListener,
    shared: Shared,
    options: Arc<ProxyOptions>,
    tls: Option<TlsListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let buf_size = options
        .max_header_bytes
        .saturating_add(HYPER_HEADROOM)
        .max(8192);
    let list_size = u32::try_from(buf_size).unwrap_or(u32::MAX);
    let ctx = Arc::new(Context::new(shared, options));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(buf_size)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(list_size);

    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().ok();
    tracing::info!(listen.addr = ?local, tls = tls.is_some(), "proxy listening");
    tokio::pin!(shutdown);
    loop {
        let (stream, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually transient (EMFILE, ECONNABORTED): back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(client.addr = %client_addr, error = %e, "set_nodelay failed");
        }
        let open = ctx
            .options
            .observe
            .metrics
            .connection(ctx.options.scheme.as_str());
        let ctx = ctx.clone();
        let Some(tls) = &tls else {
            let svc = service_fn(move |req| service::handle(ctx.clone(), client_addr, None, req));
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(client.addr = %client_addr, error = %e, "connection ended with error");
                }
                drop(open);
            });
            continue;
        };
        // The watcher is taken now, so shutdown also waits for handshakes in progress (each
        // bounded by the handshake timeout).
        let watcher = graceful.watcher();
        let (tls, builder) = (tls.clone(), builder.clone());
        tokio::spawn(async move {
            let metrics = &ctx.options.observe.metrics;
            let Some(stream) = handshake(&tls, stream, client_addr, metrics).await else {
                return;
            };
            // Per connection, for the access log of each of its requests.
            let info = Arc::new(crate::tls::connection_info(stream.get_ref().1));
            let svc = service_fn(move |req| {
                service::handle(ctx.clone(), client_addr, Some(info.clone()), req)
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(client.addr = %client_addr, error = %e, "connection ended with error");
            }
            drop(open);
        });
    }

    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "proxy shutting down; draining"
    );
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
    Ok(())
}

/// The server side of a TLS handshake, bounded by the handshake timeout. Failures are the
/// client's business (wrong version, no common cipher, port scan): logged at debug only, and
/// counted by reason class.
async fn handshake(
    tls: &TlsListener,
    stream: TcpStream,
    client_addr: std::net::SocketAddr,
    metrics: &crate::metrics::Metrics,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            metrics.tls_handshake(crate::tls::version_name(
                stream.get_ref().1.protocol_version(),
            ));
            Some(stream)
        }
        Ok(Err(e)) => {
            tracing::debug!(client.addr = %client_addr, error = %e, "TLS handshake failed");
            metrics.tls_handshake_failed(crate::metrics::handshake_failure_reason(&e));
            None
        }
        Err(_) => {
            tracing::debug!(client.addr = %client_addr, "TLS handshake timed out");
            metrics.tls_handshake_failed("timeout");
            None
        }
    }
}
