//! Workers: how the binary runs the proxy's listeners. One thread per core, each with its own
//! single-threaded tokio runtime and its own `SO_REUSEPORT` socket per listener, so the kernel
//! spreads new connections over the cores and a connection, its requests and its upstream
//! connections stay on one thread from accept to close: no work-stealing scheduler, no
//! cross-thread wake-ups per request, and an upstream pool per worker (each worker has its own
//! [`super::server`] context). The control plane (sources, publish, status, admin) stays on the
//! main runtime; both read the same [`Shared`] configuration.
//!
//! The kernel's `SO_REUSEPORT` choice is a hash of each connection's addresses, so a few
//! long-lived connections can land unevenly (65/35 of 32 keep-alive connections was common).
//! [`Spread`] evens that out at accept: a worker holding more connections than another hands
//! the one it just accepted to the worker holding fewest (one cross-thread wake per connection
//! moved, nothing per request; docs/decisions.md, "Spreading connections between workers").
//!
//! Sits between `app::run` (which binds through [`bind`] and says when to stop) and
//! [`super::server`]'s accept loop, which each worker runs per listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use super::{ProxyOptions, TlsListener};
use crate::metrics::{ConnectionGauge, ConnectionGuard, Metrics};
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

/// A worker's share of one listener: its socket, the listener's settings, its TLS, and its
/// place among the listener's workers.
type WorkerSocket = (
    std::net::TcpListener,
    Arc<ProxyOptions>,
    Option<TlsListener>,
    Spread,
);

/// A worker may hold this many connections more than the least loaded one before it hands new
/// ones over. 0: connections stay within one of each other (16/16 of 32, 4/4 of 8); see
/// docs/performance.md for what a larger slack saves on short connections and costs on long ones.
const SLACK: i64 = 0;

/// One worker's place among the workers of one listener (issue 12): where the connections it
/// accepts go, and its inbox for those the others hand it.
pub(super) struct Spread {
    me: usize,
    /// Connections held per worker, all listeners together (`portico_worker_connections`).
    held: Arc<[ConnectionGauge]>,
    /// This listener's inbox of each worker (its own included, never used).
    peers: Arc<[mpsc::UnboundedSender<Handed>]>,
    metrics: Arc<Metrics>,
    /// Connections handed to this worker on this listener; taken by the accept loop.
    pub(super) inbox: Option<mpsc::UnboundedReceiver<Handed>>,
}

/// A connection another worker accepted, on its way to this one's accept loop.
pub(super) struct Handed {
    pub(super) stream: std::net::TcpStream,
    pub(super) peer: SocketAddr,
    /// Already counted on the worker it is handed to.
    pub(super) held: ConnectionGuard,
}

impl Spread {
    /// Places a connection this worker just accepted: `Some` to serve it here (counted on this
    /// worker), `None` when another worker took it (or, if it could not be moved, it was
    /// closed). Per connection: a read of each worker's count; per request: nothing.
    pub(super) fn place(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Option<(tokio::net::TcpStream, ConnectionGuard)> {
        let target = pick(self.me, self.held.iter().map(ConnectionGauge::get));
        if target == self.me {
            return Some((stream, self.held[self.me].open()));
        }
        // Counted on the target at once, so that the next connections, here or on another
        // worker, see it there before the target has even woken up.
        let held = self.held[target].open();
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                // Deregistering from this worker's reactor failed: the socket is closed.
                tracing::debug!(client.addr = %peer, error = %e, "connection hand-off failed");
                return None;
            }
        };
        match self.peers[target].send(Handed { stream, peer, held }) {
            Ok(()) => {
                self.metrics.handoff();
                None
            }
            // The target stopped accepting (shutting down): serve it here after all.
            Err(mpsc::error::SendError(handed)) => {
                drop(handed.held);
                match tokio::net::TcpStream::from_std(handed.stream) {
                    Ok(stream) => Some((stream, self.held[self.me].open())),
                    Err(e) => {
                        tracing::debug!(client.addr = %peer, error = %e, "connection hand-off failed");
                        None
                    }
                }
            }
        }
    }
}

/// The worker a connection accepted by worker `me` goes to, given each worker's count: `me`
/// unless some worker holds more than [`SLACK`] fewer; then the one holding fewest (ties: the
/// first after `me`, so that ties do not all fall on worker 0).
fn pick(me: usize, held: impl ExactSizeIterator<Item = i64> + Clone) -> usize {
    let count = held.len();
    let Some(mine) = held.clone().nth(me) else {
        return me;
    };
    let mut best = (mine, me);
    for (index, load) in held
        .enumerate()
        .cycle()
        .skip(me + 1)
        .take(count.saturating_sub(1))
    {
        if load < best.0 {
            best = (load, index);
        }
    }
    if mine > best.0 + SLACK {
        best.1
    } else {
        me
    }
}

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
    // Each worker's connection count, shared by its listeners and read by every worker's
    // accept loop (in the metrics of the first listener: all of `app`'s share one).
    let metrics = listeners
        .first()
        .map(|listener| listener.options.observe.metrics.clone())
        .unwrap_or_default();
    let held: Arc<[ConnectionGauge]> = (0..count)
        .map(|worker| metrics.worker_connections(worker))
        .collect();
    // Per worker, its socket of each listener; the connection limit stays per listener (not
    // per worker) by sharing one semaphore among the workers.
    let mut per_worker: Vec<Vec<WorkerSocket>> = (0..count).map(|_| Vec::new()).collect();
    for listener in listeners {
        let mut options = (*listener.options).clone();
        if options.max_connections > 0 && options.connection_limit.is_none() {
            options.connection_limit = Some(Arc::new(Semaphore::new(options.max_connections)));
        }
        let options = Arc::new(options);
        let (peers, inboxes): (Vec<_>, Vec<_>) =
            (0..count).map(|_| mpsc::unbounded_channel()).unzip();
        let peers: Arc<[_]> = peers.into();
        let workers = per_worker.iter_mut().zip(listener.sockets).zip(inboxes);
        for (me, ((worker, socket), inbox)) in workers.enumerate() {
            let spread = Spread {
                me,
                held: held.clone(),
                peers: peers.clone(),
                metrics: metrics.clone(),
                inbox: Some(inbox),
            };
            worker.push((socket, options.clone(), listener.tls.clone(), spread));
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
    for (socket, options, tls, spread) in sockets {
        let listener = tokio::net::TcpListener::from_std(socket)?;
        let shared = shared.clone();
        let mut stop = stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tasks.spawn(super::server::serve_worker(
            listener, shared, options, tls, spread, stopped,
        ));
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

#[cfg(test)]
mod tests {
    use super::pick;

    fn picked(me: usize, held: &[i64]) -> usize {
        pick(me, held.iter().copied())
    }

    #[test]
    fn an_even_split_keeps_the_connection() {
        assert_eq!(picked(0, &[3, 3]), 0);
        assert_eq!(picked(1, &[3, 3]), 1);
        assert_eq!(picked(0, &[0]), 0);
    }

    #[test]
    fn the_busier_worker_hands_to_the_least_loaded() {
        assert_eq!(picked(0, &[4, 3]), 1);
        assert_eq!(picked(1, &[0, 1]), 0);
        assert_eq!(picked(2, &[5, 2, 6, 4]), 1);
    }

    #[test]
    fn the_less_loaded_worker_keeps_the_connection() {
        assert_eq!(picked(0, &[2, 9]), 0);
        assert_eq!(picked(1, &[5, 2, 6, 4]), 1);
    }

    #[test]
    fn ties_go_to_the_next_worker_not_always_the_first() {
        assert_eq!(picked(2, &[1, 1, 3, 1]), 3);
        assert_eq!(picked(3, &[1, 1, 1, 3]), 0);
    }

    #[test]
    fn a_worker_without_a_count_keeps_the_connection() {
        assert_eq!(picked(5, &[1, 0]), 5);
    }
}
