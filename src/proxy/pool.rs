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
//! No task per connection: the task of the request using a connection drives it (hyper's
//! `Connection` future, kept beside its `SendRequest` in the pool, see [`Link`]), while the
//! response head is awaited and then from the response body ([`Returning`]). Only upgrade
//! requests (WebSocket) get a connection with a task of its own, which the tunnel needs.
//!
//! Semantics kept from the legacy client: `TCP_NODELAY`, the connect timeout (answered 504 as
//! `ProxyError::ConnectTimeout`), connect failures as `ProxyError::Connect` (retried on another
//! endpoint, spec §4.4), a request that finds its pooled connection closed before anything was
//! written resent once on a new connection, upgrades (`with_upgrades`, for WebSocket tunnels),
//! and idle connections closed after `--upstream-idle-timeout`. The controller ConfigMap's
//! `upstream-keepalive-timeout`, `-connections` and `-requests` (passed with each request, from
//! the published `Global`) override the timeout, cap the idle connections per endpoint and the
//! requests per connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::error::ProxyError;
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
}

struct Idle {
    link: Link,
    since: Instant,
    /// Requests this connection has carried.
    served: u32,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Pool {
    /// A pool whose idle connections close after `idle_timeout`. Needs a tokio runtime: a
    /// sweeper task on it closes idle connections even when no request comes.
    pub fn new(idle_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Pool {
            flag_timeout: idle_timeout,
            idle_timeout_ms: AtomicU64::new(millis(idle_timeout)),
            idle: Mutex::new(HashMap::default()),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        // Poisoning would only mean a panic while moving senders around; the map stays usable.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed))
    }

    /// The most recently used idle connection to `addr` that is still open and not expired,
    /// with the number of requests it has carried.
    fn checkout(&self, addr: SocketAddr) -> Option<(Link, u32)> {
        let timeout = self.idle_timeout();
        let mut idle = self.lock();
        let list = idle.get_mut(&addr)?;
        while let Some(entry) = list.pop() {
            if !entry.link.sender.is_closed() && entry.since.elapsed() < timeout {
                return Some((entry.link, entry.served));
            }
        }
        None
    }

    /// Back into the pool, unless it is closed, has carried `keepalive.requests`, or the
    /// endpoint already has `keepalive.connections` idle ones (then it is dropped: closed).
    fn checkin(&self, addr: SocketAddr, link: Link, served: u32, keepalive: UpstreamKeepalive) {
        if link.sender.is_closed() || keepalive.requests.is_some_and(|n| served >= n) {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(addr).or_default();
        if keepalive.connections.is_some_and(|n| list.len() >= n) {
            return;
        }
        list.push(Idle {
            link,
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
    ) -> Result<(Response<Incoming>, Checkin), ProxyError> {
        let timeout = millis(keepalive.timeout.unwrap_or(self.flag_timeout));
        if self.idle_timeout_ms.load(Ordering::Relaxed) != timeout {
            self.idle_timeout_ms.store(timeout, Ordering::Relaxed);
        }
        // A pooled connection can turn out closed only when the request goes out; then it was
        // not sent at all and goes once more, on a fresh connection.
        let upgrade = request.headers().contains_key(http::header::UPGRADE);
        let mut fresh = false;
        loop {
            let (mut link, served) = match self.pooled(addr, upgrade).await {
                Some(pooled) if !fresh => pooled,
                _ => {
                    fresh = true;
                    (connect(addr, connect_timeout, upgrade).await?, 0)
                }
            };
            let sending = link.sender.try_send_request(request);
            match link.driving(sending).await {
                Ok(response) => {
                    let checkin = Checkin {
                        pool: Arc::downgrade(self),
                        addr,
                        link: Some(link),
                        served: served.saturating_add(1),
                        keepalive,
                    };
                    return Ok((response, checkin));
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

    /// A pooled connection ready for a request, waiting briefly for one that is still
    /// finishing its previous exchange. An upgrade request takes only a connection with its
    /// own task (see [`Link::conn`]).
    async fn pooled(&self, addr: SocketAddr, upgrade: bool) -> Option<(Link, u32)> {
        while let Some((mut link, served)) = self.checkout(addr) {
            if upgrade && link.conn.is_some() {
                continue;
            }
            // This task drives it now: one poll reads an end of file the upstream sent while
            // the connection sat idle, and settles one whose last response was not polled to
            // its end.
            let alive = std::future::poll_fn(|cx| Poll::Ready(link.drive(cx))).await;
            if !alive || link.sender.is_closed() {
                continue;
            }
            if link.sender.is_ready() {
                return Some((link, served));
            }
            let ready = std::future::poll_fn(|cx| {
                let sender = &mut link.sender;
                poll_with(&mut link.conn, cx, |cx| sender.poll_ready(cx))
            });
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, ready).await {
                return Some((link, served));
            }
        }
        None
    }
}

/// hyper's HTTP/1 client connection over TCP: the half that reads and writes the socket.
type Conn = http1::Connection<TokioIo<TcpStream>, RetryBody>;

/// One upstream connection: hyper's request handle and, unless it runs in a task of its own,
/// the connection itself, which the task of the request using it drives.
///
/// Why in the request's task: a spawned connection task costs a wake-up and a scheduler pass
/// each way (request in, response head and every body frame out) on top of hyper's
/// channels; polled by the request's own task (while the response head is awaited, then by
/// the response body, [`Returning`]) the socket's readiness wakes the one task that needs it.
/// Upgrade requests still get a spawned task (`with_upgrades`): the tunnel outlives the
/// request's body.
struct Link {
    sender: SendRequest<RetryBody>,
    /// `None`: driven by its own task (or ended). Boxed: hyper's connection is large, and the
    /// link moves between the pool, the request's futures and the response body.
    conn: Option<Box<Driven>>,
}

/// A connection the request's task drives, with the waker it and hyper's channels on it see.
struct Driven {
    conn: Conn,
    relay: Arc<Relay>,
    /// `relay` as a `Waker`, made once per connection.
    waker: Waker,
}

/// The waker of a driven connection. hyper's connection wakes the request's side (the
/// response's oneshot, the body channel) and itself (its request channel, `want`) from
/// inside the very poll that drives it; passed on, each such wake would have the scheduler
/// poll the whole client connection task again for nothing. While the request's task is
/// inside [`poll_with`] (`busy`), a wake is only noted and `poll_with` polls again itself;
/// otherwise (the socket became ready) it wakes the task.
#[derive(Default)]
struct Relay {
    task: AtomicWaker,
    busy: AtomicBool,
    woken: AtomicBool,
}

impl std::task::Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.busy.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

/// How many rounds [`poll_with`] makes for wakes from inside its own poll before it leaves
/// the rest to the scheduler (hyper's connection yields after a burst of work by waking
/// itself).
const ROUNDS: usize = 8;

/// Polls `f` (something fed by the connection: hyper's answer to a request, the response
/// body, the sender's readiness) and the connection, when this task drives it, until `f` is
/// ready or neither has more to do without waiting. A connection that ends is dropped
/// (hyper then fails or hands back whatever was in flight on it) and `f` polled once more.
fn poll_with<T>(
    driven: &mut Option<Box<Driven>>,
    cx: &mut Context<'_>,
    mut f: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    let Some(boxed) = driven.as_mut() else {
        return f(cx);
    };
    let Driven { conn, relay, waker } = &mut **boxed;
    relay.task.register(cx.waker());
    relay.busy.store(true, Ordering::SeqCst);
    let mut inner = Context::from_waker(waker);
    let mut ended = false;
    let mut out = Poll::Pending;
    for _ in 0..ROUNDS {
        relay.woken.store(false, Ordering::SeqCst);
        out = f(&mut inner);
        if out.is_ready() {
            break;
        }
        if let Poll::Ready(result) = Pin::new(&mut *conn).poll(&mut inner) {
            if let Err(e) = result {
                tracing::debug!(error = %e, "upstream connection ended with error");
            }
            ended = true;
            break;
        }
        if !relay.woken.load(Ordering::SeqCst) {
            break;
        }
    }
    relay.busy.store(false, Ordering::SeqCst);
    if ended {
        *driven = None;
        return f(cx);
    }
    // A wake noted after the last round (rounds used up, or from another thread) is passed on.
    if out.is_pending() && relay.woken.load(Ordering::SeqCst) {
        cx.waker().wake_by_ref();
    }
    out
}

impl Link {
    fn new(sender: SendRequest<RetryBody>, conn: Conn) -> Link {
        let relay = Arc::new(Relay::default());
        let waker = Waker::from(relay.clone());
        Link {
            sender,
            conn: Some(Box::new(Driven { conn, relay, waker })),
        }
    }

    /// Polls the connection when this task drives it; `false` once it has ended (closed by
    /// either side, or failed).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if self.conn.is_none() {
            return true;
        }
        let _ = poll_with(&mut self.conn, cx, |_| Poll::<()>::Pending);
        self.conn.is_some()
    }

    /// Awaits `fut` (hyper's answer to a request on this connection) while driving the
    /// connection.
    async fn driving<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| poll_with(&mut self.conn, cx, |cx| fut.as_mut().poll(cx))).await
    }
}

/// Opens a new connection: TCP with `TCP_NODELAY` within the connect timeout, then the HTTP/1
/// handshake. For an upgrade request the connection gets a task of its own (`with_upgrades`);
/// otherwise the request's task drives it ([`Link`]).
async fn connect(
    addr: SocketAddr,
    connect_timeout: Duration,
    upgrade: bool,
) -> Result<Link, ProxyError> {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(ProxyError::Connect(Box::new(e))),
        Err(_) => return Err(ProxyError::ConnectTimeout),
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend.addr = %addr, error = %e, "set_nodelay failed");
    }
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Connect(Box::new(e)))?;
    if !upgrade {
        return Ok(Link::new(sender, conn));
    }
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(backend.addr = %addr, error = %e, "upstream connection ended with error");
        }
    });
    Ok(Link { sender, conn: None })
}

/// Closes idle connections past the idle timeout or closed by the upstream, every half timeout (the one in force when
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
        // One poll of each connection no task drives reads a close the upstream sent while
        // it sat idle, so its socket is released now rather than at the next checkout.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        pool.lock().retain(|_, list| {
            list.retain_mut(|e| {
                e.since.elapsed() < timeout && e.link.drive(&mut cx) && !e.link.sender.is_closed()
            });
            !list.is_empty()
        });
    }
}

/// The right to put a connection back into its pool, taken by the response body.
pub(crate) struct Checkin {
    pool: Weak<Pool>,
    addr: SocketAddr,
    /// `None` once the connection cannot be reused.
    link: Option<Link>,
    /// Requests the connection has carried, this one included.
    served: u32,
    keepalive: UpstreamKeepalive,
}

impl Checkin {
    /// Wraps the response body so the connection returns to the pool when it has ended.
    pub fn wrap(self, body: Incoming) -> Returning {
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
    inner: Incoming,
    ended: bool,
    checkin: Checkin,
}

impl Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        // The body's frames come from the connection: drive it (when this task does).
        let polled = match this.checkin.link.as_mut() {
            Some(link) => poll_with(&mut link.conn, cx, |cx| {
                Pin::new(&mut *inner).poll_frame(cx)
            }),
            None => Pin::new(inner).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Err(_))) => this.checkin.link = None,
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
        if let (Some(pool), Some(mut link)) =
            (self.checkin.pool.upgrade(), self.checkin.link.take())
        {
            // Settle the connection now (it reads the response's end and turns idle), so the
            // next request finds it ready; no task waits on this poll, and the next one to
            // drive the connection registers its own waker.
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if !link.drive(&mut cx) {
                return;
            }
            pool.checkin(
                self.checkin.addr,
                link,
                self.checkin.served,
                self.checkin.keepalive,
            );
        }
    }
}
