//! Accept loop: one hyper connection (HTTP/1.1 and HTTP/1.0 with upgrades enabled, or HTTP/2)
//! per client socket, all watched for graceful shutdown and for idleness; at most
//! `max_connections` at once. The protocol is the one TLS ALPN agreed on; without ALPN (plain
//! HTTP, or a TLS client that offered none) the client's first bytes tell HTTP/2 prior
//! knowledge from HTTP/1. With `--proxy-protocol` a PROXY header is
//! read first. On the HTTPS listener each connection first completes a TLS handshake, in its own task and
//! within a timeout, so slow or idle handshakes never hold up the accept loop.
//!
//! Every connection is bounded in time (issue 10 item 3): its first request must arrive within
//! the header timeout; on HTTP/2 each header block must complete within it too, and a peer
//! that stops answering keep-alive pings is dropped; an idle connection is shut down
//! gracefully and then closed for good after a grace, whatever the peer does.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::PoisonError;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::passthrough;
use super::proxy_protocol::{self, Cidr};
use super::service::{self, Context};
use super::workers::{Handed, Spread};
use super::ProxyOptions;
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
/// in-flight requests finish for up to `options.drain_timeout`, and returns. Established protocol
/// upgrade tunnels (WebSocket) are not waited for.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    options: Arc<ProxyOptions>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_inner(listener, shared, options, None, None, shutdown).await
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
    serve_inner(listener, shared, options, Some(tls), None, shutdown).await
}

/// [`serve`] or [`serve_tls`] as one of several workers of a listener (`workers.rs`): each
/// connection accepted here is placed by `spread` (kept, or handed to a worker holding fewer),
/// and those handed here by the others are served as if accepted here.
pub(super) async fn serve_worker(
    listener: TcpListener,
    shared: Shared,
    options: Arc<ProxyOptions>,
    tls: Option<TlsListener>,
    spread: Spread,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_inner(listener, shared, options, tls, Some(spread), shutdown).await
}

async fn serve_inner(
    listener: TcpListener,
    shared: Shared,
    options: Arc<ProxyOptions>,
    tls: Option<TlsListener>,
    mut spread: Option<Spread>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let buf_size = options
        .max_header_bytes
        .saturating_add(HYPER_HEADROOM)
        .max(8192);
    let list_size = u32::try_from(buf_size).unwrap_or(u32::MAX);
    let drain_timeout = options.drain_timeout;
    let max_connections = options.max_connections;
    let ctx = Arc::new(Context::new(shared, options));

    let mut http1 = http1::Builder::new();
    http1
        .max_buf_size(buf_size)
        // No `.max_headers(..)`: hyper's default, `MAX_HEADERS` (100) header lines, parses into
        // arrays on the stack; any explicit limit makes hyper build two heap vectors of that
        // many entries per request (~3,300 instructions per request at 256; docs/decisions.md).
        // Slowloris: the whole request head within the header timeout, counted from the
        // connection's start or the end of the previous response, is bounded by the
        // connection loop's one timer (`Conn::drive`), not by hyper's, which boxes and
        // registers a timer per request; hyper's default of 30 s is turned off with it.
        .header_read_timeout(None)
        .keep_alive(true);
    let mut http2 = http2::Builder::new(BoxedExecutor);
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(list_size)
        .max_concurrent_streams(ctx.options.h2_max_concurrent_streams)
        // Rapid reset (CVE-2023-44487) and error floods: h2 sends GOAWAY beyond these.
        .max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
        .max_local_error_reset_streams(Some(H2_MAX_LOCAL_ERROR_RESETS))
        // A peer that does not answer a PING within the timeout is gone: the connection is
        // closed (a dead client on a long stream would otherwise hold it for ever). Pings do
        // not keep a connection open: idleness counts requests, not bytes (see `Activity`).
        .keep_alive_interval(Some(ctx.options.h2_keepalive_interval))
        .keep_alive_timeout(ctx.options.h2_keepalive_timeout);

    let connections = ctx
        .options
        .observe
        .metrics
        .connection_gauge(ctx.options.scheme.as_str());
    let builder = Arc::new(Protocols {
        http1,
        http2,
        connections,
    });
    // Connections watch `stop` and shut down gracefully (HTTP/1 `Connection: close` after the
    // in-flight response, HTTP/2 GOAWAY); each holds a clone of `done_tx`, so `done_rx`
    // yields `None` once every connection has ended. Stopped when this future ends too (also
    // if it is dropped), as the closing of a channel would.
    let stop = StopOnDrop(Arc::new(Stop::default()));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let limit = match &ctx.options.connection_limit {
        Some(shared) if max_connections > 0 => Some(shared.clone()),
        _ => (max_connections > 0).then(|| Arc::new(Semaphore::new(max_connections))),
    };
    let local = listener.local_addr().ok();
    tracing::info!(listen.addr = ?local, tls = tls.is_some(), "proxy listening");
    let mut inbox = spread.as_mut().and_then(|spread| spread.inbox.take());
    tokio::pin!(shutdown);
    // Connections accepted since the stop and the inbox were last looked at.
    let mut streak = 0;
    loop {
        // Accepting comes first: the listener's stop and the inbox are looked at when
        // `accept` would wait, and at least every `ACCEPT_STREAK` connections. Looking at
        // both after every accept (what a `select!` did, in a random order) cost ~300
        // instructions per connection. Neither is missed: each keeps the waker of its last
        // look, so a stop or a handed connection during a burst wakes the loop and is seen
        // within the streak (tokio's cooperative budget also makes `accept` wait after 128).
        let next = std::future::poll_fn(|cx| {
            let accept_polled = streak < ACCEPT_STREAK;
            if accept_polled {
                if let Poll::Ready(accepted) = listener.poll_accept(cx) {
                    streak += 1;
                    return Poll::Ready(Next::Accepted(accepted));
                }
            }
            streak = 0;
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Next::Stop);
            }
            let mut closed = false;
            if let Some(inbox) = inbox.as_mut() {
                match inbox.poll_recv(cx) {
                    Poll::Ready(Some(handed)) => return Poll::Ready(Next::Handed(handed)),
                    Poll::Ready(None) => closed = true,
                    Poll::Pending => {}
                }
            }
            if closed {
                inbox = None;
            }
            if !accept_polled {
                if let Poll::Ready(accepted) = listener.poll_accept(cx) {
                    streak = 1;
                    return Poll::Ready(Next::Accepted(accepted));
                }
            }
            Poll::Pending
        })
        .await;
        // `held` keeps the connection counted on this worker until it ends (workers only).
        let (stream, peer, held) = match next {
            Next::Accepted(accepted) => match accepted {
                Ok((stream, peer)) => match &spread {
                    None => (stream, peer, None),
                    Some(spread) => match spread.place(stream, peer) {
                        Some((stream, held)) => (stream, peer, Some(held)),
                        // Handed to another worker.
                        None => continue,
                    },
                },
                Err(e) => {
                    // Usually transient (EMFILE, ECONNABORTED): back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Next::Handed(handed) => match TcpStream::from_std(handed.stream) {
                Ok(stream) => (stream, handed.peer, Some(handed.held)),
                Err(e) => {
                    tracing::debug!(client.addr = %handed.peer, error = %e, "handed connection lost");
                    continue;
                }
            },
            Next::Stop => break,
        };
        // At the connection limit, stop accepting: this connection waits (unserved, its
        // header timeout not yet running) for a slot, the next ones in the kernel's backlog
        // (refused by it once that is full); open ones are unaffected. The slot is taken after
        // `accept`, not before, because the workers of one listener share the limit: a worker
        // holding the last slot while waiting in `accept` would starve a connection the kernel
        // gave to another worker.
        let permit = match &limit {
            None => None,
            Some(sem) => tokio::select! {
                permit = sem.clone().acquire_owned() => permit.ok(),
                () = &mut shutdown => break,
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(client.addr = %peer, error = %e, "set_nodelay failed");
        }
        let conn = Conn {
            ctx: ctx.clone(),
            builder: builder.clone(),
            tls: tls.clone(),
            stop: stop.0.clone(),
            _done: done_tx.clone(),
        };
        // The connection's future (PROXY header, handshake, hyper's connection) is large:
        // boxed once here and spawned as the box itself, so that tokio moves a pointer into
        // its task (not a wrapping future holding the box, the permit and the count, which
        // it copied several times), and the task's end does not copy it again. The permit and
        // the worker's count are held by `run` until the connection ends.
        tokio::spawn(Box::pin(conn.run(stream, peer, (permit, held))));
    }

    drop(listener);
    // Connections handed here after the loop stopped are closed with the listener, as those
    // still in its backlog are; a worker handing one from now on serves it itself.
    drop(inbox);
    stop.0.stop();
    drop(done_tx);
    tracing::info!("proxy stopped accepting; draining");
    if tokio::time::timeout(drain_timeout, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
    Ok(())
}

/// How many connections the accept loop takes in a row before it looks at the listener's stop
/// and its inbox even though `accept` has more.
const ACCEPT_STREAK: u32 = 32;

/// What the accept loop does next.
enum Next {
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    /// A connection another worker accepted and handed here.
    Handed(Handed),
    /// The listener is stopping.
    Stop,
}

/// A listener's stop as its connections watch it (issue 12): a flag each connection reads when
/// it is polled (one atomic load), and the wakers of the connections waiting, woken once when it
/// is set. It replaces a `watch` channel, whose `wait_for` took the channel's locks to register
/// on every poll of every connection and again to deregister (~450 instructions per
/// connection and per keep-alive request; docs/performance.md, branch `conn`).
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    waiters: std::sync::Mutex<Waiters>,
}

/// The wakers of the connections waiting for a [`Stop`], by slot; freed slots are reused.
#[derive(Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Stop {
    /// Sets the flag and wakes every connection waiting for it.
    fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        for waker in waiters.slots.iter().flatten() {
            waker.wake_by_ref();
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// Stops the listener's connections when the accept loop's future ends or is dropped.
struct StopOnDrop(Arc<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// One connection's watch of its listener's [`Stop`]: registered on the first poll that finds
/// it unset (again only if the task's waker changed), deregistered when dropped.
struct StopWatch {
    stop: Arc<Stop>,
    /// The connection's slot among the waiters, and the waker put there.
    slot: Option<(usize, Waker)>,
}

impl StopWatch {
    fn new(stop: Arc<Stop>) -> Self {
        StopWatch { stop, slot: None }
    }

    /// Ready once the listener is stopping; otherwise the task is woken when it does.
    fn poll_stopped(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.stop.is_stopped() {
            return Poll::Ready(());
        }
        if let Some((_, waker)) = &self.slot {
            if waker.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        {
            let mut waiters = self
                .stop
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let waker = cx.waker().clone();
            match &mut self.slot {
                Some((key, mine)) => {
                    waiters.slots[*key] = Some(waker.clone());
                    *mine = waker;
                }
                None => {
                    let key = match waiters.free.pop() {
                        Some(key) => {
                            waiters.slots[key] = Some(waker.clone());
                            key
                        }
                        None => {
                            waiters.slots.push(Some(waker.clone()));
                            waiters.slots.len() - 1
                        }
                    };
                    self.slot = Some((key, waker));
                }
            }
        }
        // Set between the first look and the registration: `stop` may have missed this waker.
        if self.stop.is_stopped() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        if let Some((key, _)) = self.slot.take() {
            let mut waiters = self
                .stop
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            waiters.slots[key] = None;
            waiters.free.push(key);
        }
    }
}

/// Streams HTTP/2 clients may reset before the server accepts them.
const H2_MAX_PENDING_RESETS: usize = 20;
/// Resets the server may send because of client errors before it closes the connection.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// hyper's two servers, configured once per listener, and the listener's connection gauge.
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<BoxedExecutor>,
    connections: crate::metrics::ConnectionGauge,
}

/// Runs hyper's HTTP/2 stream tasks (one per request) boxed: spawning then moves a pointer
/// instead of copying the stream future into the task several times, and the task's end does
/// not copy it again (what `TokioExecutor` does). Since the request's future is boxed by the
/// service (`Conn::serve`) the stream future is small, and spawning it unboxed measured the
/// same (docs/performance.md, `h2srv`).
#[derive(Debug, Clone, Copy)]
struct BoxedExecutor;

impl<F> hyper::rt::Executor<F> for BoxedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(Box::pin(future));
    }
}

/// What a client speaks, when known before its first byte: TLS ALPN said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Http1,
    Http2,
    /// Plain HTTP, or TLS without ALPN: its first bytes tell.
    Unknown,
}

impl Speaks {
    fn from_alpn(alpn: Option<&[u8]>) -> Speaks {
        match alpn {
            Some(b"h2") => Speaks::Http2,
            Some(b"http/1.1") => Speaks::Http1,
            _ => Speaks::Unknown,
        }
    }
}

/// A hyper connection the loop in [`Conn::serve`] drives: HTTP/1 (with upgrades) or HTTP/2.
trait Graceful: Future<Output = hyper::Result<()>> {
    /// HTTP/1: `Connection: close` after the response in flight; HTTP/2: GOAWAY.
    fn shut_down(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Graceful for http2::Connection<I, S, BoxedExecutor>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    BoxedExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// One client connection's share of the listener.
struct Conn {
    ctx: Arc<Context>,
    builder: Arc<Protocols>,
    tls: Option<TlsListener>,
    stop: Arc<Stop>,
    /// Held until the connection ends; the drain waits for every clone to drop.
    _done: mpsc::Sender<()>,
}

impl Conn {
    /// Serves one accepted connection to its end; `_held` (the listener's connection-limit
    /// permit and the worker's connection count) is released when it ends.
    async fn run(
        self,
        mut stream: TcpStream,
        peer: SocketAddr,
        _held: (
            Option<tokio::sync::OwnedSemaphorePermit>,
            Option<crate::metrics::ConnectionGuard>,
        ),
    ) {
        let options = &self.ctx.options;
        // The header timeout starts here, not at the first byte: a connection that never
        // sends one is closed after it (issue 10 item 3).
        let accepted = tokio::time::Instant::now();
        let mut client_addr = peer;
        // `use-proxy-protocol` (controller ConfigMap) wins over `--proxy-protocol`, read per
        // connection so a change applies to the next connection (docs/decisions.md).
        // One load of the published configuration for both ConfigMap keys read per connection.
        let (proxy_protocol, idle) = {
            let published = self.ctx.shared.load();
            let global = &published.translation.global;
            // The controller ConfigMap's `keep-alive` wins over `--client-idle-timeout`, for
            // the connections accepted after it changed (`0`, keep-alive off, is applied per
            // response).
            let idle = match global.keep_alive {
                Some(keep_alive) if !keep_alive.is_zero() => keep_alive,
                _ => options.client_idle_timeout,
            };
            (
                global.use_proxy_protocol.unwrap_or(options.proxy_protocol),
                idle,
            )
        };
        if proxy_protocol {
            if !options.trusted_proxies.is_empty()
                && !Cidr::any_contains(&options.trusted_proxies, peer.ip())
            {
                tracing::debug!(client.addr = %peer, "PROXY header from an untrusted peer; closing");
                return;
            }
            let read = proxy_protocol::read_header(&mut stream);
            match tokio::time::timeout(options.header_read_timeout, read).await {
                Ok(Ok(Some(addr))) => client_addr = addr,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(client.addr = %peer, error = %e, "bad PROXY header; closing");
                    return;
                }
                Err(_) => {
                    tracing::debug!(client.addr = %peer, "no PROXY header in time; closing");
                    return;
                }
            }
        }
        let client = service::Client {
            addr: client_addr,
            // Nobody is trusted by default (`ingress-nginx.md` §5): an empty list trusts none.
            trusted: Cidr::any_contains(&options.trusted_proxies, client_addr.ip()),
        };
        let open = self.builder.connections.open();
        // Idle since accept (one clock read for both).
        let activity = Arc::new(Activity::since(accepted));
        match &self.tls {
            None => {
                let first_by = accepted + options.header_read_timeout;
                self.serve(
                    stream,
                    client,
                    None,
                    activity,
                    (first_by, idle),
                    Speaks::Unknown,
                )
                .await;
            }
            Some(tls) => {
                let metrics = &options.observe.metrics;
                // One deadline for the ClientHello peek (passthrough) and the handshake.
                let deadline = tokio::time::Instant::now() + tls.handshake_timeout;
                let shared = &self.ctx.shared;
                // The TLS-only steps are boxed (as are hyper's connections in `serve`), so that
                // this future, which every connection's task moves into its box once, stays as
                // small as the plain HTTP path needs (docs/performance.md).
                let stream = if options.ssl_passthrough {
                    let diverted = Box::pin(passthrough::divert(
                        stream,
                        client_addr,
                        shared,
                        options,
                        deadline,
                    ));
                    let Some(stream) = diverted.await else {
                        return;
                    };
                    stream
                } else {
                    stream
                };
                let handshake = handshake(tls, shared, stream, client_addr, metrics, deadline);
                let Some((stream, auth)) = Box::pin(handshake).await else {
                    return;
                };
                // The handshake has its own timeout; the first request's starts after it.
                let first_by = tokio::time::Instant::now() + options.header_read_timeout;
                // Per connection, for the access log of each of its requests (and, on a host
                // with `auth-tls-*`, the client certificate verified once).
                let mut info = crate::tls::connection_info(stream.get_ref().1);
                if let Some(auth) = auth {
                    info.client_cert = Some(super::client_auth::peer(auth, stream.get_ref().1));
                }
                let info = Arc::new(info);
                // ALPN said which protocol follows: no read-ahead to find out.
                let speaks = Speaks::from_alpn(stream.get_ref().1.alpn_protocol());
                self.serve(
                    stream,
                    client,
                    Some(info),
                    activity,
                    (first_by, idle),
                    speaks,
                )
                .await;
            }
        }
        drop(open);
    }

    /// Serves HTTP on `io`; `tls` is the connection's TLS version and SNI on the HTTPS
    /// listener, for the access log; `speaks` what ALPN agreed on, if anything.
    async fn serve<T>(
        &self,
        io: T,
        client: service::Client,
        tls: Option<Arc<crate::access_log::TlsInfo>>,
        activity: Arc<Activity>,
        (first_by, idle): (tokio::time::Instant, Duration),
        speaks: Speaks,
    ) where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut io = Watched::new(io, activity.clone(), speaks);
        // The connection's one timer and its watch of the listener's stop, made once here and
        // handed on to `drive`: the protocol sniff shares them (it was a second timer and a
        // second stop watch per plain connection; docs/performance.md, branch `newconn`).
        let mut stop = StopWatch::new(self.stop.clone());
        let timer = tokio::time::sleep_until(first_by);
        tokio::pin!(timer);
        let speaks = match speaks {
            Speaks::Unknown => {
                // Bounded like the first request: the header timeout from accept (or from the
                // handshake's end), and the listener's stop. The bytes are looked at first: a
                // client that sent its request with the connection (most do) is then sniffed
                // without the timer or the stop watch being registered at all.
                let sniffed = tokio::select! {
                    biased;
                    sniffed = io.sniff() => sniffed,
                    () = std::future::poll_fn(|cx| stop.poll_stopped(cx)) => return,
                    () = timer.as_mut() => {
                        tracing::debug!(client.addr = %client.addr, reason = "no request within the header timeout", "connection closed");
                        return;
                    }
                };
                match sniffed {
                    Ok(speaks) => speaks,
                    Err(e) => {
                        tracing::debug!(client.addr = %client.addr, error = %e, "connection closed");
                        return;
                    }
                }
            }
            known => known,
        };
        let ctx = self.ctx.clone();
        let requests = activity.clone();
        let io = TokioIo::new(io);
        if speaks == Speaks::Http2 {
            // Each HTTP/2 request's future is boxed where it is made: hyper moves it into its
            // stream future (`H2Stream`) and that into the stream's task, each move a copy of
            // its whole size; boxed, they move a pointer (docs/performance.md, `h2srv`).
            let svc = service_fn(move |req| {
                Box::pin(service::handle(
                    ctx.clone(),
                    client,
                    tls.clone(),
                    requests.begin(),
                    req,
                ))
            });
            // hyper's connections are boxed: the future of `run` then holds a pointer, not
            // the larger of the two (see `serve_inner`'s spawn).
            let conn = Box::pin(self.builder.http2.serve_connection(io, svc));
            let bounds = Bounds {
                stop: &mut stop,
                timer: timer.as_mut(),
                first_by,
                idle,
            };
            self.drive(conn, client, activity, bounds, false).await;
        } else {
            let svc = service_fn(move |req| {
                service::handle(ctx.clone(), client, tls.clone(), requests.begin(), req)
            });
            let conn = Box::pin(self.builder.http1.serve_connection(io, svc).with_upgrades());
            let bounds = Bounds {
                stop: &mut stop,
                timer: timer.as_mut(),
                first_by,
                idle,
            };
            self.drive(conn, client, activity, bounds, true).await;
        }
    }

    /// Drives one hyper connection to its end.
    ///
    /// The connection ends when hyper is done with it, or is dropped (closed at once) when:
    /// no request has started by `first_by`; an HTTP/1 request head has not arrived within the
    /// header timeout of the previous response's end; an HTTP/2 header block has been arriving
    /// for longer than the header timeout; a graceful shutdown (idle or listener stop) has not
    /// finished after its grace. `client.addr` is logged for each.
    ///
    /// All of these bounds share one timer, armed at the nearest deadline after each poll of
    /// the connection: the deadlines move with the requests (`Activity`), which hyper's
    /// connection updates while it is polled here (HTTP/1 requests and responses, and the
    /// frame watch of HTTP/2), so no wake-up is needed to re-arm it. Extending a tokio timer is
    /// an atomic store, not a trip to the timer wheel. This replaces hyper's own header timer
    /// on HTTP/1 (a boxed timer per request) and the loop's three (docs/performance.md).
    async fn drive<C: Graceful>(
        &self,
        mut conn: Pin<Box<C>>,
        client: service::Client,
        activity: Arc<Activity>,
        bounds: Bounds<'_>,
        http1: bool,
    ) {
        let Bounds {
            stop,
            mut timer,
            first_by,
            idle,
        } = bounds;
        let options = &self.ctx.options;
        let header_timeout = options.header_read_timeout;
        let mut stopping = false;
        // The listener is stopping (not just this connection idle).
        let mut draining = false;
        let mut idle_at = activity.last() + idle;
        // When a graceful shutdown must have finished; then the connection is dropped.
        let mut force_at: Option<tokio::time::Instant> = None;
        // `serve` made the timer for `first_by` (registered with tokio when first polled).
        let mut armed = first_by;
        let ended = std::future::poll_fn(|cx| loop {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(result.err().map(|e| e.to_string()));
            }
            if !stopping && stop.poll_stopped(cx).is_ready() {
                conn.as_mut().shut_down();
                stopping = true;
                draining = true;
                force_at = Some(tokio::time::Instant::now() + options.drain_timeout);
                continue;
            }
            // The nearest bound that applies now.
            let started = activity.started.load(Ordering::Relaxed);
            let head_by = if started == 0 {
                // spec of `--client-header-timeout`: counted from accept, so a connection
                // that never sends a byte does not live until the idle timeout.
                Some(first_by)
            } else if http1 && activity.in_flight.load(Ordering::Relaxed) == 0 {
                // The next head, from the end of the previous response (slowloris).
                Some(activity.last() + header_timeout)
            } else {
                None
            };
            // HTTP/2 has no deadline of its own for a HEADERS frame arriving a byte at a
            // time; `--client-header-timeout` bounds it as it does an HTTP/1 head.
            let block_by = activity.header_block_since().map(|t| t + header_timeout);
            // HTTP/1 runs its request inside `conn`'s poll, and the request's `Active` is
            // dropped with its response body there: while one is in flight the idle bound
            // cannot end the connection (it would only look again later), and this loop is
            // polled again when the request ends, so it is left out until then. This keeps
            // a connection served before its header timeout from registering a timer at all.
            // (HTTP/2 streams run in their own tasks: its idle bound applies throughout.)
            let http1_in_flight = http1 && activity.in_flight.load(Ordering::Relaxed) > 0;
            let idle_by = if stopping || http1_in_flight {
                None
            } else {
                Some(idle_at)
            };
            let Some(next) = [head_by, block_by, idle_by, force_at]
                .into_iter()
                .flatten()
                .min()
            else {
                // No bound applies now: the timer is not armed (one armed earlier may still
                // wake this loop, which then finds nothing due).
                return Poll::Pending;
            };
            if next != armed {
                timer.as_mut().reset(next);
                armed = next;
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = tokio::time::Instant::now();
            if head_by.is_some_and(|at| at <= now) {
                return Poll::Ready(Some("no request within the header timeout".to_string()));
            }
            if block_by.is_some_and(|at| at <= now) {
                return Poll::Ready(Some(
                    "HTTP/2 header block not completed within the header timeout".to_string(),
                ));
            }
            if !stopping && idle_at <= now {
                // No request in flight for the idle timeout: shut down gracefully (HTTP/1
                // closes, HTTP/2 sends GOAWAY). Bytes do not count, so neither keep-alive
                // pings nor a client's own frames keep an idle connection open.
                let in_flight = activity.in_flight.load(Ordering::Relaxed);
                if in_flight == 0 && activity.last() + idle <= now {
                    conn.as_mut().shut_down();
                    stopping = true;
                    force_at = Some(now + options.h2_keepalive_timeout);
                } else if in_flight > 0 {
                    // Look again an idle period from now: a request ending before then
                    // moves `last`, and the next look waits for `last + idle`.
                    idle_at = now + idle;
                } else {
                    idle_at = activity.last() + idle;
                }
            }
            if let Some(at) = force_at.filter(|at| *at <= now) {
                // A graceful shutdown waits for the peer (HTTP/2: the PING after GOAWAY);
                // one that never answers must not keep the connection. A request that
                // raced the idle GOAWAY may still finish; a listener stop may not wait.
                if draining || activity.in_flight.load(Ordering::Relaxed) == 0 {
                    return Poll::Ready(Some(
                        "graceful shutdown not finished within its grace".to_string(),
                    ));
                }
                force_at = Some(at.max(now) + options.h2_keepalive_timeout);
            }
            // A bound moved (or the connection was told to shut down): poll again.
        })
        .await;
        if let Some(reason) = ended {
            tracing::debug!(client.addr = %client.addr, reason = %reason, "connection closed");
        }
    }
}

/// The bounds [`Conn::drive`] keeps on a connection: the listener's stop, the connection's one
/// timer (made for `first_by`), the first request's deadline and the idle timeout. Made by
/// [`Conn::serve`], whose protocol sniff shares them.
struct Bounds<'a> {
    stop: &'a mut StopWatch,
    timer: Pin<&'a mut tokio::time::Sleep>,
    first_by: tokio::time::Instant,
    idle: Duration,
}

/// What the idle and header bounds of one client connection watch (issue 10 item 3).
/// Idleness counts requests, not bytes: an HTTP/2 connection carries pings and window updates
/// that say nothing about whether anybody still uses it.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// Requests whose response has not ended (or been dropped) yet.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    started: AtomicU64,
    /// When a request last started or ended, in ms since `clock_base()`.
    last: AtomicU64,
    /// HTTP/2: when the header block now arriving began, ms since `clock_base()` plus one;
    /// 0 when none is.
    header_block: AtomicU64,
}

fn clock_ms() -> u64 {
    to_clock_ms(tokio::time::Instant::now())
}

fn to_clock_ms(at: tokio::time::Instant) -> u64 {
    let ms = at.saturating_duration_since(clock_base()).as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn from_clock_ms(ms: u64) -> tokio::time::Instant {
    clock_base() + Duration::from_millis(ms)
}

impl Activity {
    /// A connection's activity from now: idle since it was set up.
    #[cfg(test)]
    fn new() -> Self {
        Activity::since(tokio::time::Instant::now())
    }

    /// A connection's activity, idle since `at`.
    fn since(at: tokio::time::Instant) -> Self {
        let activity = Activity::default();
        activity.last.store(to_clock_ms(at), Ordering::Relaxed);
        activity
    }

    /// A request started; it counts as in flight until the guard is dropped (with its
    /// response body, or with the request if the client went away).
    pub(crate) fn begin(self: &Arc<Self>) -> Active {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Active(self.clone())
    }

    fn touch(&self) {
        self.last.store(clock_ms(), Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        from_clock_ms(self.last.load(Ordering::Relaxed))
    }

    fn header_block_since(&self) -> Option<tokio::time::Instant> {
        match self.header_block.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(from_clock_ms(ms - 1)),
        }
    }

    fn header_block_started(&self) {
        if self.header_block.load(Ordering::Relaxed) == 0 {
            self.header_block.store(clock_ms() + 1, Ordering::Relaxed);
        }
    }

    fn header_block_ended(&self) {
        self.header_block.store(0, Ordering::Relaxed);
    }
}

/// One request's share of its connection's [`Activity`].
pub(crate) struct Active(Arc<Activity>);

impl Active {
    /// How many requests its connection has started, this one included (`keep-alive-requests`).
    pub(crate) fn nth(&self) -> u64 {
        self.0.started.load(Ordering::Relaxed)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The client connection as hyper reads it (after TLS), with an eye on the HTTP/2 frames the
/// client sends: only far enough to see when a header block (HEADERS, then CONTINUATION up to
/// END_HEADERS) is arriving, so the connection loop can bound it. Not a parser: h2 still
/// checks every frame. HTTP/1 connections (ALPN said so, or the first bytes are not the
/// preface) are not looked at.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    frames: FrameWatch,
    /// What [`Watched::sniff`] read, handed to hyper before anything more is read.
    prefix: Bytes,
}

/// How much the protocol sniff reads at most: a whole request head, usually, so that hyper
/// reads the socket once for it, not once for the 24 bytes of a preface and again for the rest.
const SNIFF_BYTES: usize = 4096;

/// Where the client's byte stream is, frame-wise (RFC 9113 §3.4, §4.1).
#[derive(Debug)]
enum FrameWatch {
    /// Matching the client connection preface; this many bytes matched so far.
    Preface(usize),
    /// Reading a frame's 9-byte header; this many bytes read so far.
    Head([u8; 9], usize),
    /// Skipping a frame's payload; at its end a header block ends if `ends_block`.
    Payload { left: usize, ends_block: bool },
    /// Not HTTP/2.
    Off,
}

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_HEADERS: u8 = 0x4;

impl FrameWatch {
    /// Follows `data`, the next bytes the client sent.
    fn feed(&mut self, mut data: &[u8], activity: &Activity) {
        loop {
            match self {
                FrameWatch::Off => return,
                FrameWatch::Preface(matched) => {
                    let take = (H2_PREFACE.len() - *matched).min(data.len());
                    if data[..take] != H2_PREFACE[*matched..*matched + take] {
                        *self = FrameWatch::Off;
                        return;
                    }
                    *matched += take;
                    data = &data[take..];
                    if *matched < H2_PREFACE.len() {
                        return;
                    }
                    *self = FrameWatch::Head([0; 9], 0);
                }
                FrameWatch::Head(head, have) => {
                    if data.is_empty() {
                        return;
                    }
                    let take = (9 - *have).min(data.len());
                    head[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    if *have < 9 {
                        return;
                    }
                    let left = usize::from(head[0]) << 16
                        | usize::from(head[1]) << 8
                        | usize::from(head[2]);
                    let kind = head[3];
                    if kind == FRAME_HEADERS {
                        activity.header_block_started();
                    }
                    let ends_block = (kind == FRAME_HEADERS || kind == FRAME_CONTINUATION)
                        && head[4] & FLAG_END_HEADERS != 0;
                    *self = FrameWatch::Payload { left, ends_block };
                }
                FrameWatch::Payload { left, ends_block } => {
                    let take = (*left).min(data.len());
                    *left -= take;
                    data = &data[take..];
                    if *left > 0 {
                        return;
                    }
                    if *ends_block {
                        activity.header_block_ended();
                    }
                    *self = FrameWatch::Head([0; 9], 0);
                }
            }
        }
    }
}

impl<S> Watched<S> {
    fn new(inner: S, activity: Arc<Activity>, speaks: Speaks) -> Self {
        Watched {
            inner,
            activity,
            // A connection known to be HTTP/1 is never looked at.
            frames: match speaks {
                Speaks::Http1 => FrameWatch::Off,
                Speaks::Http2 | Speaks::Unknown => FrameWatch::Preface(0),
            },
            prefix: Bytes::new(),
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> Watched<S> {
    /// Reads the client's first bytes, until they are the HTTP/2 connection preface (prior
    /// knowledge, RFC 9113 §3.3) or cannot be; keeps them for hyper. End of stream is HTTP/1
    /// (hyper then sees the bytes and the end).
    ///
    /// Each read lands in a buffer on the stack of the poll (not in the connection's future),
    /// and what it brought is kept in an allocation of its size: a request head of a hundred
    /// bytes costs a small allocation, not a 4 KiB one per connection (docs/performance.md,
    /// branch `conn`).
    async fn sniff(&mut self) -> std::io::Result<Speaks> {
        let mut seen: Vec<u8> = Vec::new();
        let speaks = std::future::poll_fn(|cx| loop {
            let mut space = [std::mem::MaybeUninit::<u8>::uninit(); SNIFF_BYTES];
            let mut buf = tokio::io::ReadBuf::uninit(&mut space);
            std::task::ready!(tokio::io::AsyncRead::poll_read(
                Pin::new(&mut *self),
                cx,
                &mut buf
            ))?;
            let read = buf.filled();
            seen.extend_from_slice(read);
            let have = seen.len().min(H2_PREFACE.len());
            if read.is_empty() || seen[..have] != H2_PREFACE[..have] {
                return Poll::Ready(Ok::<_, std::io::Error>(Speaks::Http1));
            }
            if have == H2_PREFACE.len() {
                return Poll::Ready(Ok(Speaks::Http2));
            }
        })
        .await?;
        self.prefix = Bytes::from(seen);
        Ok(speaks)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            // Already seen by the frame watch when the sniff read it.
            let take = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..take]);
            if take == self.prefix.len() {
                self.prefix = Bytes::new();
            } else {
                self.prefix.advance(take);
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !matches!(self.frames, FrameWatch::Off) && buf.filled().len() > before {
            let this = &mut *self;
            this.frames.feed(&buf.filled()[before..], &this.activity);
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn clock_base() -> tokio::time::Instant {
    static BASE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(tokio::time::Instant::now)
}

/// The server side of a TLS handshake, bounded by `deadline`. Failures are the
/// client's business (wrong version, no common cipher, port scan): logged at debug only, and
/// counted by reason class.
///
/// The ClientHello is read first: its SNI picks the configuration (a host with `auth-tls-*`
/// asks for a client certificate, `client_auth::handshake_config`); the settings to verify
/// the client's chain against come back with the stream.
async fn handshake(
    tls: &TlsListener,
    shared: &Shared,
    stream: TcpStream,
    client_addr: std::net::SocketAddr,
    metrics: &crate::metrics::Metrics,
    deadline: tokio::time::Instant,
) -> Option<(
    Box<tokio_rustls::server::TlsStream<TcpStream>>,
    Option<Arc<crate::routing::client_auth::ClientAuth>>,
)> {
    let accept = async {
        let (start, resuming) = super::tls_hello::read(stream).await?;
        let (config, auth) = super::client_auth::handshake_config(
            shared,
            tls.acceptor.config(),
            &start.client_hello(),
        )
        .ok_or_else(|| std::io::Error::other("no configuration for the host"))?;
        // One TLS 1.3 ticket back for the one a resuming client spends (tls_hello.rs).
        let config = if resuming {
            super::tls_hello::for_resumption(config)
        } else {
            config
        };
        let stream = start.into_stream(config).await?;
        Ok::<_, std::io::Error>((stream, auth))
    };
    match tokio::time::timeout_at(deadline, accept).await {
        Ok(Ok((stream, auth))) => {
            let conn = stream.get_ref().1;
            metrics.tls_handshake(
                crate::tls::version_name(conn.protocol_version()),
                conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            );
            // Boxed: rustls's connection state is large, and every future that holds the
            // stream would otherwise carry it inline.
            Some((Box::new(stream), auth))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sniffs what `chunks` (written one at a time, then the end) say; returns the verdict and
    /// every byte hyper would then read.
    async fn sniffed(chunks: &[&[u8]]) -> (Speaks, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                client.write_all(&chunk).await.expect("write");
                tokio::task::yield_now().await;
            }
            drop(client);
        });
        let activity = Arc::new(Activity::new());
        let mut io = Watched::new(server, activity, Speaks::Unknown);
        let speaks = io.sniff().await.expect("sniff");
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.expect("read");
        writer.await.expect("writer");
        (speaks, all)
    }

    #[tokio::test]
    async fn a_request_line_is_http1_after_one_read_and_kept_whole() {
        let request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(sniffed(&[request]).await, (Speaks::Http1, request.to_vec()));
    }

    #[tokio::test]
    async fn the_preface_dribbled_byte_by_byte_is_http2() {
        let mut stream = H2_PREFACE.to_vec();
        stream.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(sniffed(&chunks).await, (Speaks::Http2, stream.clone()));
    }

    #[tokio::test]
    async fn a_near_preface_is_http1() {
        let near = b"PRI * HTTP/1.1\r\n\r\n";
        assert_eq!(
            sniffed(&[&near[..5], &near[5..]]).await,
            (Speaks::Http1, near.to_vec())
        );
    }

    #[tokio::test]
    async fn an_immediate_end_is_http1_with_nothing_to_read() {
        assert_eq!(sniffed(&[]).await, (Speaks::Http1, Vec::new()));
    }

    #[tokio::test]
    async fn more_than_the_sniff_reads_is_all_handed_on() {
        let big = vec![b'G'; SNIFF_BYTES * 3];
        assert_eq!(sniffed(&[&big]).await, (Speaks::Http1, big.clone()));
    }

    /// Every connection's task moves the future of `Conn::run` into a box once (a `memcpy` of
    /// its whole size, ~10.9 KiB and ~10,900 instructions per connection when hyper's
    /// connections and the TLS steps were inline): it must stay small.
    #[tokio::test]
    async fn the_connection_future_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let options = Arc::new(ProxyOptions::default());
        let ctx = Arc::new(Context::new(crate::publish::shared(), options.clone()));
        let stop = Arc::new(Stop::default());
        let (done, _done_rx) = mpsc::channel(1);
        let conn = Conn {
            builder: Arc::new(Protocols {
                http1: http1::Builder::new(),
                http2: http2::Builder::new(BoxedExecutor),
                connections: options.observe.metrics.connection_gauge("http"),
            }),
            ctx,
            tls: None,
            stop,
            _done: done,
        };
        let run = conn.run(stream, peer, (None, None));
        let size = std::mem::size_of_val(&run);
        // 1,456 bytes in a debug build at branch `dpconn2` (the timer and the stop watch of
        // the sniff and of `drive` were most of it).
        assert!(size <= 2048, "Conn::run's future is {size} bytes");
        drop((run, client));
    }

    #[test]
    fn alpn_names_the_protocol() {
        assert_eq!(Speaks::from_alpn(Some(b"h2")), Speaks::Http2);
        assert_eq!(Speaks::from_alpn(Some(b"http/1.1")), Speaks::Http1);
        assert_eq!(Speaks::from_alpn(Some(b"http/1.0")), Speaks::Unknown);
        assert_eq!(Speaks::from_alpn(None), Speaks::Unknown);
    }
}
