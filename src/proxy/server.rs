//! Accept loop: one hyper-util auto connection (HTTP/1.1, HTTP/1.0, or HTTP/2 with prior
//! knowledge) per client socket, with upgrades enabled, all watched for graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::service::{self, Context};
use super::{ProxyOptions, DRAIN_TIMEOUT, MAX_HEADERS};
use crate::publish::Shared;

/// hyper's read buffer is this much larger than `max_header_bytes`, so that our own check in
/// the service (which answers a proper 431) is what normally trips.
const HYPER_HEADROOM: usize = 16 * 1024;

/// Serves the proxy on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish for up to [`DRAIN_TIMEOUT`], and returns. Established protocol
/// upgrade tunnels (WebSocket) are not waited for.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    options: Arc<ProxyOptions>,
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

    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().ok();
    tracing::info!(listen.addr = ?local, "proxy listening");
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
        let svc = service_fn(move |req| service::handle(ctx.clone(), client_addr, req));
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
