//! Accept loop: one hyper-util auto connection (HTTP/1.1, HTTP/1.0, or HTTP/2 with prior
//! knowledge) per client socket, with upgrades enabled, all watched for graceful shutdown and
//! for idleness; at most `max_connections` at once. With `--proxy-protocol` a PROXY header is
//! read first. On the HTTPS listener each connection first completes a TLS handshake, in its own task and
//! within a timeout, so slow or idle handshakes never hold up the accept loop.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::proxy_protocol::{self, Cidr};
use super::service::{self, Context};
use super::{ProxyOptions, MAX_HEADERS};
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
    let drain_timeout = options.drain_timeout;
    let max_connections = options.max_connections;
    let ctx = Arc::new(Context::new(shared, options));

    let builder = Arc::new(Builders::new(buf_size, list_size, &ctx.options));
    // Connections watch `stop` and shut down gracefully (HTTP/1 `Connection: close` after the
    // in-flight response, HTTP/2 GOAWAY); each holds a clone of `done_tx`, so `done_rx`
    // yields `None` once every connection has ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let limit = match &ctx.options.connection_limit {
        Some(shared) if max_connections > 0 => Some(shared.clone()),
        _ => (max_connections > 0).then(|| Arc::new(Semaphore::new(max_connections))),
    };
    let local = listener.local_addr().ok();
    tracing::info!(listen.addr = ?local, tls = tls.is_some(), "proxy listening");
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
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
        // At the connection limit, stop accepting: this connection waits (unserved) for a
        // slot, the next ones in the kernel's backlog (refused by it once that is full); open
        // ones are unaffected. The slot is taken after `accept`, not before, because the
        // workers of one listener share the limit: a worker holding the last slot while
        // waiting in `accept` would starve a connection the kernel gave to another worker.
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
            stop: stop_rx.clone(),
            _done: done_tx.clone(),
        };
        tokio::spawn(async move {
            conn.run(stream, peer).await;
            drop(permit);
        });
    }

    drop(listener);
    let _ = stop_tx.send(true);
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

/// The HTTP connection settings of one listener, for each way a connection's protocol is
/// known: sniffed (`auto`: plain TCP, where HTTP/2 with prior knowledge is allowed, or TLS
/// without ALPN) or already said by TLS ALPN (`h1`, `h2`), where reading ahead for the HTTP/2
/// preface and replaying it (hyper-util's `Rewind`) would be wasted work on every read.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(buf_size: usize, list_size: u32, options: &ProxyOptions) -> Self {
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .max_buf_size(buf_size)
            .max_headers(MAX_HEADERS)
            // Slowloris: the whole request head within this, counted from the connection's
            // start or the end of the previous response (hyper's one knob also bounds
            // keep-alive idle).
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(true);
        auto.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(list_size)
            .max_concurrent_streams(options.h2_max_concurrent_streams)
            // Rapid reset (CVE-2023-44487) and error floods: h2 sends GOAWAY beyond these.
            .max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
            .max_local_error_reset_streams(Some(H2_MAX_LOCAL_ERROR_RESETS));
        // No server-initiated HTTP/2 pings: they would count as activity and keep idle
        // connections open forever; the idle timeout is what closes dead and idle ones.

        // The same settings for connections whose protocol ALPN fixed.
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(TokioTimer::new())
            .max_buf_size(buf_size)
            .max_headers(MAX_HEADERS)
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(true);
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(list_size)
            .max_concurrent_streams(options.h2_max_concurrent_streams)
            .max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
            .max_local_error_reset_streams(Some(H2_MAX_LOCAL_ERROR_RESETS));
        Builders { auto, h1, h2 }
    }
}

/// What the connection's first bytes will be, when TLS ALPN already said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alpn {
    /// Plain TCP, or TLS without ALPN: sniff.
    Unknown,
    Http1,
    Http2,
}

impl Alpn {
    fn of(protocol: Option<&[u8]>) -> Self {
        match protocol {
            Some(b"h2") => Alpn::Http2,
            Some(b"http/1.1") => Alpn::Http1,
            _ => Alpn::Unknown,
        }
    }
}

/// A served connection that can be told to finish gracefully (HTTP/1 `Connection: close` after
/// the in-flight response, HTTP/2 GOAWAY).
trait Graceful: Future {
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S, E, B> Graceful for auto::UpgradeableConnection<'_, I, S, E>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E, B> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Streams HTTP/2 clients may reset before the server accepts them.
const H2_MAX_PENDING_RESETS: usize = 20;
/// Resets the server may send because of client errors before it closes the connection.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// One client connection's share of the listener.
struct Conn {
    ctx: Arc<Context>,
    builder: Arc<Builders>,
    tls: Option<TlsListener>,
    stop: watch::Receiver<bool>,
    /// Held until the connection ends; the drain waits for every clone to drop.
    _done: mpsc::Sender<()>,
}

impl Conn {
    async fn run(self, mut stream: TcpStream, peer: SocketAddr) {
        let options = &self.ctx.options;
        let mut client_addr = peer;
        if options.proxy_protocol {
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
            trusted: options.trusted_proxies.is_empty()
                || Cidr::any_contains(&options.trusted_proxies, client_addr.ip()),
        };
        let open = options.observe.metrics.connection(options.scheme.as_str());
        let activity = Arc::new(AtomicU64::new(0));
        let stream = Tracked::new(stream, activity.clone());
        match &self.tls {
            None => {
                self.serve(stream, client, None, activity, Alpn::Unknown)
                    .await;
            }
            Some(tls) => {
                let metrics = &options.observe.metrics;
                let Some(stream) = handshake(tls, stream, client_addr, metrics).await else {
                    return;
                };
                // Per connection, for the access log of each of its requests.
                let info = Arc::new(crate::tls::connection_info(stream.get_ref().1));
                let alpn = Alpn::of(stream.get_ref().1.alpn_protocol());
                self.serve(stream, client, Some(info), activity, alpn).await;
            }
        }
        drop(open);
    }

    /// Serves HTTP on `io`; `tls` is the connection's TLS version and SNI on the HTTPS
    /// listener, for the access log; `alpn` what TLS negotiated.
    async fn serve<I>(
        &self,
        io: I,
        client: service::Client,
        tls: Option<Arc<crate::access_log::TlsInfo>>,
        activity: Arc<AtomicU64>,
        alpn: Alpn,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let ctx = self.ctx.clone();
        let svc = service_fn(move |req| service::handle(ctx.clone(), client, tls.clone(), req));
        let io = TokioIo::new(io);
        match alpn {
            Alpn::Unknown => {
                let conn = self.builder.auto.serve_connection_with_upgrades(io, svc);
                self.drive(conn, client, &activity).await;
            }
            Alpn::Http1 => {
                let conn = self.builder.h1.serve_connection(io, svc).with_upgrades();
                self.drive(conn, client, &activity).await;
            }
            Alpn::Http2 => {
                let conn = self.builder.h2.serve_connection(io, svc);
                self.drive(conn, client, &activity).await;
            }
        }
    }

    /// Runs a served connection to its end, closing it gracefully on shutdown or when idle.
    async fn drive<C, E>(&self, conn: C, client: service::Client, activity: &AtomicU64)
    where
        C: Graceful<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        let idle = self.ctx.options.client_idle_timeout;
        let mut stopping = false;
        loop {
            let quiet_since = Tracked::<TcpStream>::last(activity);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(client.addr = %client.addr, error = %e, "connection ended with error");
                    }
                    break;
                }
                _ = stop.wait_for(|stop| *stop), if !stopping => {
                    conn.as_mut().graceful();
                    stopping = true;
                }
                () = tokio::time::sleep_until(quiet_since + idle), if !stopping => {
                    // No byte either way for the idle timeout: close gracefully (an in-flight
                    // request, say a long poll, still gets its response).
                    if Tracked::<TcpStream>::last(activity) + idle <= tokio::time::Instant::now() {
                        conn.as_mut().graceful();
                        stopping = true;
                    }
                }
            }
        }
    }
}

/// A client socket that notes when a byte last moved, for the idle timeout.
struct Tracked<S> {
    inner: S,
    last: Arc<AtomicU64>,
}

fn clock_base() -> tokio::time::Instant {
    static BASE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(tokio::time::Instant::now)
}

impl<S> Tracked<S> {
    fn new(inner: S, last: Arc<AtomicU64>) -> Self {
        Self::touch(&last);
        Tracked { inner, last }
    }

    fn touch(last: &AtomicU64) {
        let ms = tokio::time::Instant::now()
            .saturating_duration_since(clock_base())
            .as_millis();
        last.store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn last(last: &AtomicU64) -> tokio::time::Instant {
        clock_base() + Duration::from_millis(last.load(Ordering::Relaxed))
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            Self::touch(&self.last);
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            Self::touch(&self.last);
        }
        polled
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
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            Self::touch(&self.last);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The server side of a TLS handshake, bounded by the handshake timeout. Failures are the
/// client's business (wrong version, no common cipher, port scan): logged at debug only, and
/// counted by reason class.
async fn handshake(
    tls: &TlsListener,
    stream: Tracked<TcpStream>,
    client_addr: std::net::SocketAddr,
    metrics: &crate::metrics::Metrics,
) -> Option<tokio_rustls::server::TlsStream<Tracked<TcpStream>>> {
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
