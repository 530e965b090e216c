//! Workers: how the binary runs the proxy's listeners. One thread per core, each with its own
//! single-threaded tokio runtime and its own `SO_REUSEPORT` socket per listener, so the kernel
//! spreads new connections over the cores and a connection, its requests and its upstream
//! connections stay on one thread from accept to close: no work-stealing scheduler, no
//! cross-thread wake-ups, and an upstream pool per worker (each worker has its own
//! [`super::server`] context). The control plane (sources, publish, status, admin) stays on the
//! main runtime; both read the same [`Shared`] configuration.
//!
//! Sits between `app::run` (which binds through [`bind`] and says when to stop) and
//! [`super::serve`] / [`super::serve_tls`], which each worker runs per listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{oneshot, watch, Semaphore};

use super::{ProxyOptions, TlsListener};
use crate::publish::Shared;

/// The accept backlog of each worker's socket (tokio's default for `TcpListener::bind`).
const BACKLOG: i32 = 1024;

/// How many workers `--worker-threads 0` means: the CPUs this process may run on (affinity and
/// cgroup quota included, so `taskset -c 1` gives one).
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Binds `count` listening sockets to `addr` with `SO_REUSEPORT`, one per worker. Port 0 is
/// resolved by the first bind and the others join that port. Only sockets of the same user
/// can join a `SO_REUSEPORT` group on Linux, so another user's process cannot take a share of
/// the connections (docs/security.md).
pub fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut sockets = Vec::with_capacity(count.max(1));
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // As tokio's own bind does: a restarted process can bind at once despite TIME_WAIT.
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        sockets.push(listener);
    }
    Ok(sockets)
}

/// A worker's share of one listener: its socket, the listener's settings, its TLS.
type WorkerSocket = (
    std::net::TcpListener,
    Arc<ProxyOptions>,
    Option<TlsListener>,
);

/// One listener as the workers serve it: a socket per worker and the listener's settings.
pub struct Listener {
    pub sockets: Vec<std::net::TcpListener>,
    pub options: Arc<ProxyOptions>,
    /// Present on the HTTPS listener.
    pub tls: Option<TlsListener>,
}

/// Runs `listeners` on `count` worker threads until `stop` turns true; resolves when every
/// worker has drained and stopped, with the first error any of them met. Each listener must
/// have `count` sockets (from [`bind`]).
pub fn run(
    count: usize,
    shared: Shared,
    listeners: Vec<Listener>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<impl Future<Output = std::io::Result<()>>> {
    let count = count.max(1);
    // Per worker, its socket of each listener; the connection limit stays per listener (not
    // per worker) by sharing one semaphore among the workers.
    let mut per_worker: Vec<Vec<WorkerSocket>> = (0..count).map(|_| Vec::new()).collect();
    for listener in listeners {
        let mut options = (*listener.options).clone();
        if options.max_connections > 0 && options.connection_limit.is_none() {
            options.connection_limit = Some(Arc::new(Semaphore::new(options.max_connections)));
        }
        let options = Arc::new(options);
        for (worker, socket) in per_worker.iter_mut().zip(listener.sockets) {
            worker.push((socket, options.clone(), listener.tls.clone()));
        }
    }
    // Per-request metrics get one shard per worker (issue 12: no cache line written by two).
    crate::sharded::set_shards(count);
    let mut done = Vec::with_capacity(count);
    for (index, sockets) in per_worker.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = shared.clone();
        let stop = stop.clone();
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("portico-worker-{index}"))
            .spawn(move || {
                crate::sharded::set_thread_shard(index);
                let result = runtime.block_on(serve_all(shared, sockets, stop));
                let _ = tx.send(result);
            })?;
        done.push(rx);
    }
    Ok(async move {
        let mut result = Ok(());
        for rx in done {
            let outcome = rx
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("proxy worker panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    })
}

/// One worker: every listener's socket served on this thread's runtime.
async fn serve_all(
    shared: Shared,
    sockets: Vec<WorkerSocket>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (socket, options, tls) in sockets {
        let listener = tokio::net::TcpListener::from_std(socket)?;
        let shared = shared.clone();
        let mut stop = stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tasks.spawn(async move {
            match tls {
                None => super::serve(listener, shared, options, stopped).await,
                Some(tls) => super::serve_tls(listener, shared, options, tls, stopped).await,
            }
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}
