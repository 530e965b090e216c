//! Upstream side, fast path: the keep-alive pool of plain HTTP/1.1 connections to endpoint
//! addresses, one pool per listener per worker (`service::Context`). It sits where `service`
//! forwards a request whose backend speaks HTTP/1.1 over TCP to an endpoint IP (the common
//! case); TLS, HTTP/2 and ExternalName backends go through `upstream::Clients` (hyper-util's
//! legacy client) instead.
//!
//! Why not the legacy client for this case too: its pool is shared by all threads behind a
//! lock, keys connections by scheme and authority (an absolute URI to build and hash per
//! request), and adds a checkout future, a "when ready" task and a connector service call per
//! request. Here a worker's connections stay on its thread, so the lock is never contended,
//! the key is the endpoint's `SocketAddr`, and a connection goes back to the pool when the
//! response body has been handed on completely (see [`Checkin`]).
//!
//! Semantics kept from the legacy client: `TCP_NODELAY`, the connect timeout (answered 504 as
//! `ProxyError::ConnectTimeout`), connect failures as `ProxyError::Connect` (retried on another
//! endpoint, spec §4.4), a request that finds its pooled connection closed before anything was
//! written resent once on a new connection, upgrades (`with_upgrades`, for WebSocket tunnels),
//! and idle connections closed after `--upstream-idle-timeout`. The controller ConfigMap's
//! `upstream-keepalive-timeout`, `-connections` and `-requests` (passed with each request, from
//! the published `Global`) override the timeout, cap the idle connections per endpoint and the
//! requests per connection.
//!
//! A request without a body (the common case: GET, HEAD) that asks for no upgrade goes
//! through Portico's own HTTP/1.1 client instead (`h1client.rs`): its idle connections are
//! bare `TcpStream`s in a second map, and its response body reads the socket from the
//! request's task and puts the connection back itself ([`Home`]). Requests with a body and
//! upgrades keep hyper's client connections (a connection task each, `SendRequest`s here).
//! The ConfigMap's per-endpoint idle limit applies to each map.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::error::ProxyError;
use super::h1client::{self, Conn};
use super::upstream::RetryBody;
use crate::routing::UpstreamKeepalive;

/// Keyed by endpoint addresses from the configuration, never a client's input: foldhash's
/// fast hasher is safe (SipHash was ~400 instructions per request, checkout and checkin).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// How long a request waits for a pooled connection to finish with its previous response
/// before a new connection is opened instead.
const READY_WAIT: Duration = Duration::from_millis(50);

/// Idle keep-alive connections to plain HTTP/1.1 endpoints, by endpoint address.
pub(crate) struct Pool {
    /// `--upstream-idle-timeout`.
    flag_timeout: Duration,
    /// The idle timeout in force, in ms: the flag's, or the ConfigMap's
    /// `upstream-keepalive-timeout` the last request carried (the sweeper reads it).
    idle_timeout_ms: AtomicU64,
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    /// Idle connections of the own client (`h1client.rs`).
    own: Mutex<HashMap<SocketAddr, Vec<OwnIdle>>>,
}

struct OwnIdle {
    conn: Conn,
    since: Instant,
    served: u32,
}

struct Idle {
    sender: SendRequest<RetryBody>,
    since: Instant,
    /// Requests this connection has carried.
    served: u32,
}

/// A duration in whole milliseconds, saturating (the idle timeouts kept in atomics).
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Locks a pool's map. Poisoning would only mean a panic while moving connections around; the
/// map stays usable.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pool {
    /// A pool whose idle connections close after `idle_timeout`. Needs a tokio runtime: a
    /// sweeper task on it closes idle connections even when no request comes.
    pub fn new(idle_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Pool {
            flag_timeout: idle_timeout,
            idle_timeout_ms: AtomicU64::new(millis(idle_timeout)),
            idle: Mutex::new(HashMap::default()),
            own: Mutex::new(HashMap::default()),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        lock(&self.idle)
    }

    fn lock_own(&self) -> MutexGuard<'_, HashMap<SocketAddr, Vec<OwnIdle>>> {
        lock(&self.own)
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed))
    }

    /// The most recently used idle connection to `addr` that is still open and not expired,
    /// with the number of requests it has carried.
    fn checkout(&self, addr: SocketAddr) -> Option<(SendRequest<RetryBody>, u32)> {
        let timeout = self.idle_timeout();
        let mut idle = self.lock();
        let list = idle.get_mut(&addr)?;
        while let Some(entry) = list.pop() {
            if !entry.sender.is_closed() && entry.since.elapsed() < timeout {
                return Some((entry.sender, entry.served));
            }
        }
        None
    }

    /// Back into the pool, unless it is closed, has carried `keepalive.requests`, or the
    /// endpoint already has `keepalive.connections` idle ones (then it is dropped: closed).
    fn checkin(
        &self,
        addr: SocketAddr,
        sender: SendRequest<RetryBody>,
        served: u32,
        keepalive: UpstreamKeepalive,
    ) {
        if sender.is_closed() || keepalive.requests.is_some_and(|n| served >= n) {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(addr).or_default();
        if keepalive.connections.is_some_and(|n| list.len() >= n) {
            return;
        }
        list.push(Idle {
            sender,
            since: Instant::now(),
            served,
        });
    }

    /// Sends `request` (origin-form URI, headers as they go upstream) to `addr` over a pooled
    /// connection or a new one. The returned [`Checkin`] puts the connection back into the
    /// pool once the response body has been read to its end (see [`Returning`]).
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        connect_timeout: Duration,
        keepalive: UpstreamKeepalive,
        mut request: Request<RetryBody>,
    ) -> Result<(Response<UpBody>, Option<Checkin>), ProxyError> {
        let timeout = millis(keepalive.timeout.unwrap_or(self.flag_timeout));
        if self.idle_timeout_ms.load(Ordering::Relaxed) != timeout {
            self.idle_timeout_ms.store(timeout, Ordering::Relaxed);
        }
        if own_client_fits(&request) {
            // The body (ended) lives as long as the exchange, as on hyper's path.
            let (mut parts, _body) = request.into_parts();
            return self
                .send_own(addr, connect_timeout, keepalive, &mut parts)
                .await
                .map(|response| (response, None));
        }
        // A pooled connection can turn out closed only when the request goes out; then it was
        // not sent at all and goes once more, on a fresh connection.
        let mut fresh = false;
        loop {
            let (mut sender, served) = match self.pooled(addr).await {
                Some(pooled) if !fresh => pooled,
                _ => {
                    fresh = true;
                    (connect(addr, connect_timeout).await?, 0)
                }
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let checkin = Checkin {
                        pool: Arc::downgrade(self),
                        addr,
                        sender: Some(sender),
                        served: served.saturating_add(1),
                        keepalive,
                    };
                    return Ok((response.map(UpBody::Hyper), Some(checkin)));
                }
                Err(mut err) => match err.take_message() {
                    Some(unsent) if !fresh => {
                        request = unsent;
                        fresh = true;
                    }
                    _ => return Err(ProxyError::Upstream(Box::new(err.into_error()))),
                },
            }
        }
    }

    /// [`Pool::send`] with the own client: a pooled connection, or a new one; a pooled one
    /// that turns out closed before anything came back (the upstream closed it while idle)
    /// is replaced once by a new one when the request could not have been seen (the write
    /// failed) or can be repeated (an idempotent method).
    async fn send_own(
        self: &Arc<Self>,
        addr: SocketAddr,
        connect_timeout: Duration,
        keepalive: UpstreamKeepalive,
        request: &mut http::request::Parts,
    ) -> Result<Response<UpBody>, ProxyError> {
        let mut fresh = false;
        loop {
            let (conn, served) = match self.checkout_own(addr).filter(|_| !fresh) {
                Some(pooled) => pooled,
                None => {
                    fresh = true;
                    (Conn::new(connect_tcp(addr, connect_timeout).await?), 0)
                }
            };
            // On success the request's header map becomes the response's (emptied first).
            match h1client::send(conn, &request.method, &request.uri, &mut request.headers).await {
                Ok((parts, mut body)) => {
                    body.on_done(Home {
                        pool: Arc::downgrade(self),
                        addr,
                        served: served.saturating_add(1),
                        keepalive,
                    });
                    return Ok(Response::from_parts(parts, UpBody::Own(body)));
                }
                Err(failed) => {
                    let stale = failed.nothing_received
                        && (!failed.written || request.method.is_idempotent());
                    if stale && !fresh {
                        fresh = true;
                        continue;
                    }
                    return Err(ProxyError::Upstream(Box::new(failed.error)));
                }
            }
        }
    }

    /// The most recently used idle own-client connection to `addr` that is not expired and
    /// not closed by the upstream.
    fn checkout_own(&self, addr: SocketAddr) -> Option<(Conn, u32)> {
        let timeout = self.idle_timeout();
        loop {
            let entry = self.lock_own().get_mut(&addr)?.pop()?;
            if entry.since.elapsed() < timeout && entry.conn.idle_and_open() {
                return Some((entry.conn, entry.served));
            }
        }
    }

    /// [`Pool::checkin`] for the own client's connections.
    fn checkin_own(&self, addr: SocketAddr, conn: Conn, served: u32, keepalive: UpstreamKeepalive) {
        if keepalive.requests.is_some_and(|n| served >= n) {
            return;
        }
        let mut idle = self.lock_own();
        let list = idle.entry(addr).or_default();
        if keepalive.connections.is_some_and(|n| list.len() >= n) {
            return;
        }
        list.push(OwnIdle {
            conn,
            since: Instant::now(),
            served,
        });
    }

    /// A pooled connection ready for a request, waiting briefly for one that is still
    /// finishing its previous exchange.
    async fn pooled(&self, addr: SocketAddr) -> Option<(SendRequest<RetryBody>, u32)> {
        while let Some((mut sender, served)) = self.checkout(addr) {
            if sender.is_ready() {
                return Some((sender, served));
            }
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                return Some((sender, served));
            }
        }
        None
    }
}

/// Whether the own client takes this request: no body, no upgrade, HTTP/1.1.
fn own_client_fits(request: &Request<RetryBody>) -> bool {
    request.version() == http::Version::HTTP_11
        && request.method() != http::Method::CONNECT
        && request.body().is_end_stream()
        && !request.headers().contains_key(http::header::UPGRADE)
}

/// A TCP connection with `TCP_NODELAY`, within the connect timeout.
async fn connect_tcp(
    addr: SocketAddr,
    connect_timeout: Duration,
) -> Result<tokio::net::TcpStream, ProxyError> {
    let stream =
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(ProxyError::Connect(Box::new(e))),
            Err(_) => return Err(ProxyError::ConnectTimeout),
        };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend.addr = %addr, error = %e, "set_nodelay failed");
    }
    Ok(stream)
}

/// Opens a new connection: TCP (see [`connect_tcp`]), then the HTTP/1 handshake, its
/// connection task spawned on this worker.
async fn connect(
    addr: SocketAddr,
    connect_timeout: Duration,
) -> Result<SendRequest<RetryBody>, ProxyError> {
    let stream = connect_tcp(addr, connect_timeout).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Connect(Box::new(e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(backend.addr = %addr, error = %e, "upstream connection ended with error");
        }
    });
    Ok(sender)
}

/// Closes idle connections past the idle timeout, every half timeout (the one in force when
/// it last looked), for as long as the pool lives.
async fn sweep(pool: Weak<Pool>) {
    loop {
        let period = match pool.upgrade() {
            Some(pool) => (pool.idle_timeout() / 2).max(Duration::from_millis(100)),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let timeout = pool.idle_timeout();
        pool.lock().retain(|_, list| {
            list.retain(|e| !e.sender.is_closed() && e.since.elapsed() < timeout);
            !list.is_empty()
        });
        pool.lock_own().retain(|_, list| {
            list.retain(|e| e.since.elapsed() < timeout);
            !list.is_empty()
        });
    }
}

/// Where an own-client connection goes back when its response body has ended cleanly.
pub(crate) struct Home {
    pool: Weak<Pool>,
    addr: SocketAddr,
    /// Requests the connection has carried, this one included.
    served: u32,
    keepalive: UpstreamKeepalive,
}

impl Home {
    pub fn put(self, conn: Conn) {
        if let Some(pool) = self.pool.upgrade() {
            pool.checkin_own(self.addr, conn, self.served, self.keepalive);
        }
    }
}

/// A response body from an upstream: hyper's, the own client's (`h1client.rs`), or an HTTP/2
/// upstream's (`h2pool.rs`).
pub(crate) enum UpBody {
    Hyper(Incoming),
    Own(h1client::Body),
    H2(super::h2pool::Body),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = super::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        match self.get_mut() {
            UpBody::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            UpBody::Own(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            UpBody::H2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Hyper(body) => body.is_end_stream(),
            UpBody::Own(body) => body.is_end_stream(),
            UpBody::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Hyper(body) => body.size_hint(),
            UpBody::Own(body) => body.size_hint(),
            UpBody::H2(body) => body.size_hint(),
        }
    }
}

/// The right to put a connection back into its pool, taken by the response body.
pub(crate) struct Checkin {
    pool: Weak<Pool>,
    addr: SocketAddr,
    sender: Option<SendRequest<RetryBody>>,
    /// Requests the connection has carried, this one included.
    served: u32,
    keepalive: UpstreamKeepalive,
}

impl Checkin {
    /// Wraps the response body so the connection returns to the pool when it has ended.
    pub fn wrap(self, body: UpBody) -> Returning {
        Returning {
            inner: body,
            ended: false,
            checkin: self,
        }
    }
}

/// A response body from a pooled connection. When it is dropped having been read to its end,
/// the connection is reusable and goes back to the pool; dropped early (client gone, error),
/// the connection is dropped with it, since the rest of the response would still be on it.
pub(crate) struct Returning {
    inner: UpBody,
    ended: bool,
    checkin: Checkin,
}

impl Body for Returning {
    type Data = Bytes;
    type Error = super::BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.ended = true,
            Poll::Ready(Some(Err(_))) => self.checkin.sender = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if !(self.ended || self.inner.is_end_stream()) {
            return;
        }
        if let (Some(pool), Some(sender)) =
            (self.checkin.pool.upgrade(), self.checkin.sender.take())
        {
            pool.checkin(
                self.checkin.addr,
                sender,
                self.checkin.served,
                self.checkin.keepalive,
            );
        }
    }
}
