//! Upstream side, HTTP/2: one multiplexed connection per peer for H2C, GRPC and GRPCS
//! backends, one pool per listener per worker (`service::Context`), as `pool.rs` is for plain
//! HTTP/1.1. `service` sends here every request whose backend speaks HTTP/2, to endpoint IPs
//! and ExternalNames alike.
//!
//! Why not hyper-util's legacy client (used for these backends before): it keys its pool on
//! the request URI's authority, so the URI had to carry the endpoint address, which h2 then
//! sent as `:authority` beside the client's `Host` header (a request nginx 1.22 answers 400,
//! "client sent duplicate host header"). Here the connection is chosen by [`Key`] (the peer and
//! the TLS settings), so the URI carries the host the upstream must see, as nginx's `grpc_pass`
//! sends it, and no `Host` header. It also skips the legacy client's shared locked pool, its
//! SipHash key and checkout future (docs/performance.md, "h2c-upstream").
//!
//! The connection is driven by the `h2` crate directly, not through hyper's HTTP/2 client: a
//! request is sent from the task that proxies it (`SendRequest::send_request`, with end of
//! stream on the HEADERS frame when there is no body) and its response read there, so there is
//! no dispatch channel into a second task, no task spawned per request to await the response,
//! and no ping recorder locked per frame (docs/performance.md, "h2cli"). A request body is
//! piped by its own task (spawned only when the body is not complete at once), as hyper did.
//!
//! Semantics kept from the legacy client: `TCP_NODELAY`; the connect timeout (504,
//! `ProxyError::ConnectTimeout`; here it also bounds the TLS handshake, as nginx's
//! `proxy_connect_timeout` does); connect failures as `ProxyError::Connect` (retried on another
//! endpoint, spec §4.4); ExternalNames resolved at connect time without loopback, link-local
//! or unspecified addresses (spec §4.5); keep-alive pings while streams are open, after 30 s
//! without a frame from the peer (checked every 30 s, so 30 to 60 s after the last one), 20 s
//! to answer, else the connection is closed; hyper's default windows and limits; hyper's
//! request rules (connection-specific headers stripped, `TE` only as `trailers`,
//! `Content-Length` added from an exact body size, a stream reset with `CANCEL` when the
//! response is no longer awaited while the body is still being sent); hyper's response body
//! rules (flow-control capacity released as data is read, trailers after the data, a reset
//! with `NO_ERROR` ends the body early without an error); a request that a closed connection
//! (GOAWAY, reset) could not take goes once more on a new connection; idle connections closed
//! after the idle timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{PingPong, Reason, RecvStream, SendStream};
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, TE};
use http::{HeaderMap, Method, Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use rustls::pki_types::ServerName;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::either::Either;

use super::error::ProxyError;
use super::pool::{lock, millis, UpBody};
use super::upstream::{is_refused, ExternalNameRefused, RetryBody};
use crate::routing::{Protocol, UpstreamKeepalive, UpstreamTls};

/// Keyed by configuration (endpoint addresses, ExternalName hosts, TLS settings), never a
/// client's input: foldhash's fast hasher is safe.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// gRPC streams live long; keep-alive pings notice a dead peer (the legacy client's settings).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// hyper's HTTP/2 client defaults, kept: receive windows of 2 MiB per stream and 5 MiB per
/// connection, 16 KiB frames and header lists, 1 MiB of send buffer per stream, 100 streams
/// before the peer's SETTINGS say otherwise, 1,024 locally reset streams, no server push.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONN_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
const MAX_SEND_BUFFER_SIZE: usize = 1024 * 1024;
const INITIAL_MAX_SEND_STREAMS: usize = 100;
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// Where a connection goes: an endpoint, or an ExternalName resolved when connecting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    Addr(SocketAddr),
    Name { host: String, port: u16 },
}

/// The TLS settings of a GRPCS connection: connections with different ones are not
/// interchangeable (another CA, client certificate, SNI or verified name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TlsId {
    /// Hash of the `proxy-ssl-*` settings (CA bundle, client certificate, versions, suites,
    /// depth, SNI on/off), as `upstream::Clients` keyed them; `None`: none given.
    settings: Option<u64>,
    /// The name the certificate must carry and SNI sends (endpoints are dialled by IP);
    /// `None`: the peer's host (an IP: no SNI, as hyper-rustls did).
    server_name: Option<String>,
}

/// How one request reaches its HTTP/2 upstream: TLS or not, and with which settings.
pub(crate) struct Route<'a> {
    pub protocol: Protocol,
    pub tls: Option<TlsId>,
    pub verify: Option<&'a UpstreamTls>,
}

impl<'a> Route<'a> {
    /// `verify` (`proxy-ssl-*`) and the verified name count only for GRPCS, as before.
    pub fn new(
        protocol: Protocol,
        verify: Option<&'a UpstreamTls>,
        server_name: Option<String>,
    ) -> Self {
        let verify = verify.filter(|_| protocol.is_tls());
        let tls = protocol.is_tls().then(|| TlsId {
            settings: verify.map(|v| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                v.hash(&mut h);
                h.finish()
            }),
            server_name: server_name.filter(|_| verify.is_some()),
        });
        Route {
            protocol,
            tls,
            verify,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    peer: Peer,
    tls: Option<TlsId>,
}

/// Why a connection could not be made; cloneable, since every request that waited for the
/// same connection gets it.
#[derive(Debug, Clone)]
enum ConnectFailure {
    Timeout,
    Refused(ExternalNameRefused),
    Failed(Arc<BoxError>),
}

impl ConnectFailure {
    fn into_error(self) -> ProxyError {
        match self {
            ConnectFailure::Timeout => ProxyError::ConnectTimeout,
            ConnectFailure::Refused(refused) => ProxyError::ExternalNameRefused(refused),
            ConnectFailure::Failed(e) => ProxyError::Connect(Box::new(Shared(e))),
        }
    }

    fn failed(e: impl Into<BoxError>) -> Self {
        ConnectFailure::Failed(Arc::new(e.into()))
    }
}

/// A connect error shared by the requests that waited for the connection.
#[derive(Debug)]
struct Shared(Arc<BoxError>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&**self.0)
    }
}

/// A connection being made (the cell empty) or made; every request to its key shares it, so
/// concurrent first requests open one connection, not one each.
type Slot = Arc<OnceCell<Result<Conn, ConnectFailure>>>;

/// One open HTTP/2 connection: the handle streams are opened with, and what its driver task
/// and its streams share.
struct Conn {
    sender: SendRequest<Bytes>,
    state: Arc<ConnState>,
}

/// Shared by a connection's driver task, the pool and the connection's streams.
#[derive(Default)]
struct ConnState {
    /// The driver has ended, or the connection refused a new stream (GOAWAY received, or a
    /// connection error): no new request goes on it.
    closed: AtomicBool,
    /// Streams in use (a response awaited or its body not yet dropped, a body being sent):
    /// keep-alive pings are sent only while there are some, as hyper's
    /// `keep_alive_while_idle(false)`.
    streams: AtomicUsize,
    /// Bumped on every response head, data frame, trailers and pong: the keep-alive check
    /// pings only when it has not moved for a whole interval (a counter, not a clock read per
    /// frame as hyper's recorder did).
    activity: AtomicU32,
    /// The keep-alive ping went unanswered: the connection was closed for it.
    timed_out: AtomicBool,
}

/// A stream counted in [`ConnState::streams`] while this lives.
struct InUse(Arc<ConnState>);

impl InUse {
    fn new(state: &Arc<ConnState>) -> Self {
        state.streams.fetch_add(1, Ordering::Relaxed);
        InUse(state.clone())
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The keep-alive ping was not answered in time (hyper's error of the same name).
#[derive(Debug, thiserror::Error)]
#[error("HTTP/2 keep-alive timed out")]
struct KeepAliveTimedOut;

struct Entry {
    slot: Slot,
    /// A request went through it since the sweeper last looked.
    used: bool,
    /// When the sweeper last saw it used (or it was made).
    since: Instant,
}

/// HTTP/2 connections by peer and TLS settings.
pub(crate) struct H2Pool {
    /// `--upstream-idle-timeout`.
    flag_timeout: Duration,
    /// The idle timeout in force, in ms (the ConfigMap's `upstream-keepalive-timeout` the
    /// last request carried, else the flag's); the sweeper reads it.
    idle_timeout_ms: AtomicU64,
    conns: Mutex<HashMap<Key, Entry>>,
    /// rustls configurations by TLS settings, kept so reconnections resume sessions.
    tls_configs: Mutex<HashMap<Option<TlsId>, Arc<rustls::ClientConfig>>>,
}

impl H2Pool {
    /// A pool whose idle connections close after `idle_timeout`. Needs a tokio runtime for its
    /// sweeper (without one, connections close only when the peer closes them).
    pub fn new(idle_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(H2Pool {
            flag_timeout: idle_timeout,
            idle_timeout_ms: AtomicU64::new(millis(idle_timeout)),
            conns: Mutex::new(HashMap::default()),
            tls_configs: Mutex::new(HashMap::default()),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed))
    }

    /// The slot for `key`: its open connection or the one being made, else a new empty one
    /// (also when `stale`, the slot that just failed a request, is still there).
    fn slot(&self, key: &Key, stale: Option<&Slot>) -> Slot {
        let mut conns = lock(&self.conns);
        if let Some(entry) = conns.get_mut(key) {
            let usable = match entry.slot.get() {
                None => true,
                Some(Ok(conn)) => !conn.state.closed.load(Ordering::Relaxed),
                Some(Err(_)) => false,
            };
            if usable && !stale.is_some_and(|s| Arc::ptr_eq(s, &entry.slot)) {
                entry.used = true;
                return entry.slot.clone();
            }
        }
        let slot = Slot::default();
        conns.insert(
            key.clone(),
            Entry {
                slot: slot.clone(),
                used: true,
                since: Instant::now(),
            },
        );
        slot
    }

    fn tls_config(&self, route: &Route<'_>) -> Arc<rustls::ClientConfig> {
        let mut configs = lock(&self.tls_configs);
        configs
            .entry(route.tls.clone())
            .or_insert_with(|| {
                let mut config = super::upstream_tls::client_config(route.protocol, route.verify);
                config.alpn_protocols = vec![b"h2".to_vec()];
                Arc::new(config)
            })
            .clone()
    }

    /// Sends `request` (absolute URI: scheme and the `:authority` the upstream must see; no
    /// `Host` header) to `peer` over its shared connection, opened first if there is none.
    pub async fn send(
        self: &Arc<Self>,
        peer: &Peer,
        route: &Route<'_>,
        connect_timeout: Duration,
        keepalive: UpstreamKeepalive,
        request: Request<RetryBody>,
    ) -> Result<Response<UpBody>, ProxyError> {
        let timeout = millis(keepalive.timeout.unwrap_or(self.flag_timeout));
        if self.idle_timeout_ms.load(Ordering::Relaxed) != timeout {
            self.idle_timeout_ms.store(timeout, Ordering::Relaxed);
        }
        let key = Key {
            peer: peer.clone(),
            tls: route.tls.clone(),
        };
        let mut stale: Option<Slot> = None;
        loop {
            let slot = self.slot(&key, stale.as_ref());
            let made = slot
                .get_or_init(|| async {
                    let tls = route
                        .tls
                        .as_ref()
                        .map(|id| (self.tls_config(route), id.server_name.clone()));
                    connect(peer, tls, connect_timeout).await
                })
                .await;
            let conn = match made {
                Ok(conn) => conn,
                Err(failure) => return Err(failure.clone().into_error()),
            };
            let mut sender = conn.sender.clone();
            // A fresh handle has no stream of its own pending, so this is ready at once unless
            // the connection has failed or received GOAWAY: then the request is still whole
            // and goes once more on a new connection.
            match std::future::poll_fn(|cx| sender.poll_ready(cx)).await {
                Ok(()) => return send_on(&mut sender, &conn.state, request).await,
                Err(e) => {
                    conn.state.closed.store(true, Ordering::Relaxed);
                    if stale.is_some() {
                        return Err(ProxyError::Upstream(Box::new(e)));
                    }
                    stale = Some(slot.clone());
                }
            }
        }
    }
}

/// Opens a stream for `request` on a ready connection, pipes its body if it has one, and
/// awaits the response head.
async fn send_on(
    sender: &mut SendRequest<Bytes>,
    state: &Arc<ConnState>,
    request: Request<RetryBody>,
) -> Result<Response<UpBody>, ProxyError> {
    let (parts, body) = request.into_parts();
    let mut head = Request::from_parts(parts, ());
    strip_connection_headers(head.headers_mut());
    // hyper's rule: an exact body size becomes `Content-Length` unless it is 0 on a method
    // without defined payload semantics.
    if let Some(len) = body.size_hint().exact() {
        let payload_method = !matches!(
            *head.method(),
            Method::GET | Method::HEAD | Method::DELETE | Method::CONNECT
        );
        if len != 0 || payload_method {
            head.headers_mut()
                .entry(CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(len));
        }
    }
    let end_of_stream = body.is_end_stream();
    let in_use = InUse::new(state);
    let (response, send) = sender
        .send_request(head, end_of_stream)
        .map_err(|e| ProxyError::Upstream(Box::new(e)))?;
    let cancel = if end_of_stream {
        None
    } else {
        let (cancel, cancelled) = tokio::sync::oneshot::channel();
        let mut pipe = Pipe {
            body,
            send,
            pending: None,
            cancelled: Some(cancelled),
            _in_use: InUse::new(state),
        };
        // As hyper: a body that is complete at once (a small upload already read) needs no
        // task of its own.
        let done =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut pipe).poll(cx).is_ready())).await;
        if !done {
            tokio::spawn(pipe);
        }
        Some(Cancel(Some(cancel)))
    };
    let response = Awaiting {
        response,
        state: state.clone(),
    }
    .await;
    if let Some(mut cancel) = cancel {
        // The response came (or failed): the body goes on being sent.
        cancel.0.take();
    }
    let response = response?;
    state.activity.fetch_add(1, Ordering::Relaxed);
    let (parts, recv) = response.into_parts();
    let length = content_length(&parts.headers).or_else(|| recv.is_end_stream().then_some(0));
    Ok(Response::from_parts(
        parts,
        UpBody::H2(Body {
            recv,
            length,
            data_done: false,
            _in_use: in_use,
        }),
    ))
}

/// The response head's future, its error told as hyper told it (the keep-alive timeout named).
struct Awaiting {
    response: ResponseFuture,
    state: Arc<ConnState>,
}

impl Future for Awaiting {
    type Output = Result<Response<RecvStream>, ProxyError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.response).poll(cx).map_err(|e| {
            if self.state.timed_out.load(Ordering::Relaxed) {
                ProxyError::Upstream(Box::new(KeepAliveTimedOut))
            } else {
                ProxyError::Upstream(Box::new(e))
            }
        })
    }
}

/// Dropped before the response head arrived (the client left, the response timeout fired):
/// tells the body's pipe to reset the stream with `CANCEL`, as hyper does.
struct Cancel(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Cancel {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            let _ = cancel.send(());
        }
    }
}

/// hyper's `strip_connection_headers` for requests: connection-specific headers are not
/// HTTP/2 (h2 refuses to send them), `TE` only as `trailers`, and the names `Connection`
/// lists go with it. One pass over the names first: most requests carry none of them.
fn strip_connection_headers(headers: &mut HeaderMap) {
    let found = headers.keys().any(|name| {
        matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "upgrade"
                | "te"
        )
    });
    if !found {
        return;
    }
    for name in [
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
    if let Some(listed) = headers.remove(CONNECTION) {
        if let Ok(listed) = listed.to_str() {
            for name in listed.split(',') {
                headers.remove(name.trim());
            }
        }
    }
}

/// hyper's reading of a response's `Content-Length`: every value (comma-separated ones too)
/// the same number of ASCII digits that fits a `u64`, else unknown.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.to_str().ok()?.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u64 = part.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

/// A response body from an HTTP/2 upstream, as hyper's `Incoming` read it: flow-control
/// capacity released as each data frame is taken, trailers after the data, a reset with
/// `NO_ERROR` (an early response, RFC 9113 §8.1) the end of the body, not an error.
pub(crate) struct Body {
    recv: RecvStream,
    /// What is left of `Content-Length`, if it was given (the size hint).
    length: Option<u64>,
    data_done: bool,
    _in_use: InUse,
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if !this.data_done {
            match std::task::ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    if let Some(left) = this.length.as_mut() {
                        *left = left.saturating_sub(data.len() as u64);
                    }
                    this._in_use.0.activity.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) if e.reason() == Some(Reason::NO_ERROR) => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.data_done = true,
            }
        }
        match std::task::ready!(this.recv.poll_trailers(cx)) {
            Ok(trailers) => {
                this._in_use.0.activity.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
            }
            Err(e) if e.reason() == Some(Reason::NO_ERROR) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(left) => SizeHint::with_exact(left),
            None => SizeHint::default(),
        }
    }
}

/// Sends a request body on its stream (hyper's `PipeToSendStream`): a frame is read from the
/// client only when the last one has been handed to h2 (no capacity claimed for data not yet
/// read, hyper #4003), each data frame waits for stream capacity, trailers end it, a reset
/// from the peer stops it, a failed client body resets the stream.
struct Pipe {
    body: RetryBody,
    send: SendStream<Bytes>,
    /// A data frame waiting for capacity, and whether it ends the body.
    pending: Option<(Bytes, bool)>,
    /// Fires when the response is no longer awaited; `None` once the response came.
    cancelled: Option<tokio::sync::oneshot::Receiver<()>>,
    _in_use: InUse,
}

impl Future for Pipe {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(cancelled) = this.cancelled.as_mut() {
            match Pin::new(cancelled).poll(cx) {
                Poll::Ready(Ok(())) => {
                    this.send.send_reset(Reason::CANCEL);
                    return Poll::Ready(());
                }
                // Dropped unsent: the response came; keep sending.
                Poll::Ready(Err(_)) => this.cancelled = None,
                Poll::Pending => {}
            }
        }
        match this.pipe(cx) {
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "HTTP/2 upstream request body not sent");
                Poll::Ready(())
            }
            Poll::Ready(Ok(())) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Pipe {
    fn pipe(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            if let Poll::Ready(reason) = self.send.poll_reset(cx) {
                let reason = reason?;
                return Poll::Ready(Err(Box::new(h2::Error::from(reason))));
            }
            if let Some((_, end)) = &self.pending {
                let end = *end;
                while self.send.capacity() == 0 {
                    match std::task::ready!(self.send.poll_capacity(cx)) {
                        Some(Ok(0)) => {}
                        Some(Ok(_)) => break,
                        Some(Err(e)) => return Poll::Ready(Err(Box::new(e))),
                        None => {
                            return Poll::Ready(Err(
                                "send stream capacity unexpectedly closed".into()
                            ))
                        }
                    }
                }
                let (data, _) = self.pending.take().expect("checked above");
                self.send.send_data(data, end)?;
                if end {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            match std::task::ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let end = self.body.is_end_stream();
                        if data.is_empty() {
                            self.send.send_data(data, end)?;
                            if end {
                                return Poll::Ready(Ok(()));
                            }
                            continue;
                        }
                        // A claim of one byte, as hyper: h2 raises it to the data's length.
                        self.send.reserve_capacity(1);
                        self.pending = Some((data, end));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.send.reserve_capacity(0);
                            self.send.send_trailers(trailers)?;
                            return Poll::Ready(Ok(()));
                        }
                    }
                },
                Some(Err(e)) => {
                    // hyper's `h2_reason`: the reason of an h2 error in the chain (a client's
                    // reset stream), else INTERNAL_ERROR.
                    let mut reason = Reason::INTERNAL_ERROR;
                    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
                    while let Some(err) = source {
                        if let Some(h2) = err.downcast_ref::<h2::Error>() {
                            reason = h2.reason().unwrap_or(Reason::INTERNAL_ERROR);
                            break;
                        }
                        source = err.source();
                    }
                    self.send.send_reset(reason);
                    return Poll::Ready(Err(e));
                }
                None => {
                    self.send.send_data(Bytes::new(), true)?;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

/// TCP to the peer (each resolved address of an ExternalName in turn) within the connect
/// timeout.
async fn tcp(peer: &Peer) -> Result<tokio::net::TcpStream, ConnectFailure> {
    match peer {
        Peer::Addr(addr) => tokio::net::TcpStream::connect(addr)
            .await
            .map_err(ConnectFailure::failed),
        Peer::Name { host, port } => {
            let resolved = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(ConnectFailure::failed)?;
            let addrs: Vec<SocketAddr> = resolved.filter(|a| !is_refused(a.ip())).collect();
            if addrs.is_empty() {
                return Err(ConnectFailure::Refused(ExternalNameRefused {
                    host: host.clone(),
                }));
            }
            let mut last = None;
            for addr in addrs {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = Some(e),
                }
            }
            Err(ConnectFailure::failed(last.map_or_else(
                || BoxError::from("no address"),
                |e| Box::new(e) as BoxError,
            )))
        }
    }
}

/// Opens a connection: TCP with `TCP_NODELAY`, TLS for GRPCS (ALPN `h2`; SNI and verification
/// by `server_name`, else the peer's host), both within the connect timeout; then the HTTP/2
/// handshake, its driver task spawned on this worker.
async fn connect(
    peer: &Peer,
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    connect_timeout: Duration,
) -> Result<Conn, ConnectFailure> {
    let opened = tokio::time::timeout(connect_timeout, async {
        let stream = tcp(peer).await?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(backend.addr = ?peer, error = %e, "set_nodelay failed");
        }
        match tls {
            None => Ok(Either::Left(stream)),
            Some((config, server_name)) => {
                let name = match (server_name, peer) {
                    (Some(name), _) => ServerName::try_from(name),
                    (None, Peer::Addr(addr)) => Ok(ServerName::from(addr.ip())),
                    (None, Peer::Name { host, .. }) => ServerName::try_from(host.clone()),
                }
                .map_err(ConnectFailure::failed)?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, stream)
                    .await
                    .map_err(ConnectFailure::failed)?;
                Ok(Either::Right(Box::new(tls)))
            }
        }
    })
    .await;
    let io = match opened {
        Ok(io) => io?,
        Err(_) => return Err(ConnectFailure::Timeout),
    };
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_send_buffer_size(MAX_SEND_BUFFER_SIZE)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(ConnectFailure::failed)?;
    let state = Arc::new(ConnState::default());
    let ping = connection.ping_pong();
    let driver = Driver {
        connection,
        keep_alive: ping.map(|ping| KeepAlive {
            ping,
            sleep: Box::pin(tokio::time::sleep(KEEP_ALIVE_INTERVAL)),
            phase: Phase::Idle,
            seen: 0,
        }),
        state: state.clone(),
    };
    let peer = peer.clone();
    tokio::spawn(async move {
        if let Err(e) = driver.await {
            tracing::debug!(backend.addr = ?peer, error = %e, "upstream HTTP/2 connection ended with error");
        }
    });
    Ok(Conn { sender, state })
}

/// A connection's task: h2's connection future (reading frames, writing the streams'
/// frames) and the keep-alive pings; marks the connection closed when it ends.
struct Driver {
    connection: h2::client::Connection<Io, Bytes>,
    keep_alive: Option<KeepAlive>,
    state: Arc<ConnState>,
}

struct KeepAlive {
    ping: PingPong,
    sleep: Pin<Box<tokio::time::Sleep>>,
    phase: Phase,
    /// [`ConnState::activity`] when the interval running began.
    seen: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No stream open: no timer running.
    Idle,
    /// The interval is running.
    Waiting,
    /// A ping is out; the timer is its timeout.
    Pinged,
}

impl KeepAlive {
    /// `Ready` when a ping went unanswered for the timeout.
    fn poll(&mut self, cx: &mut Context<'_>, state: &ConnState) -> Poll<()> {
        loop {
            match self.phase {
                Phase::Idle => {
                    if state.streams.load(Ordering::Relaxed) == 0 {
                        return Poll::Pending;
                    }
                    self.restart(state, KEEP_ALIVE_INTERVAL);
                    self.phase = Phase::Waiting;
                }
                Phase::Waiting => {
                    std::task::ready!(self.sleep.as_mut().poll(cx));
                    if state.streams.load(Ordering::Relaxed) == 0 {
                        self.phase = Phase::Idle;
                    } else if state.activity.load(Ordering::Relaxed) != self.seen {
                        // A frame came in this interval: wait another one.
                        self.restart(state, KEEP_ALIVE_INTERVAL);
                    } else {
                        match self.ping.send_ping(h2::Ping::opaque()) {
                            Ok(()) => {
                                self.phase = Phase::Pinged;
                                self.restart(state, KEEP_ALIVE_TIMEOUT);
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "HTTP/2 keep-alive ping not sent");
                                self.restart(state, KEEP_ALIVE_INTERVAL);
                            }
                        }
                    }
                }
                Phase::Pinged => match self.ping.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        state.activity.fetch_add(1, Ordering::Relaxed);
                        self.phase = Phase::Idle;
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "HTTP/2 keep-alive pong failed");
                        self.phase = Phase::Idle;
                        return Poll::Pending;
                    }
                    Poll::Pending => {
                        std::task::ready!(self.sleep.as_mut().poll(cx));
                        return Poll::Ready(());
                    }
                },
            }
        }
    }

    fn restart(&mut self, state: &ConnState, after: Duration) {
        self.seen = state.activity.load(Ordering::Relaxed);
        self.sleep.as_mut().reset(Instant::now() + after);
    }
}

impl Future for Driver {
    type Output = Result<(), h2::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(keep_alive) = this.keep_alive.as_mut() {
            if keep_alive.poll(cx, &this.state).is_ready() {
                tracing::debug!("upstream HTTP/2 keep-alive timed out");
                this.state.timed_out.store(true, Ordering::Relaxed);
                this.state.closed.store(true, Ordering::Relaxed);
                this.keep_alive = None;
                // Dropping the connection (when this future is dropped) fails its streams.
                return Poll::Ready(Ok(()));
            }
        }
        let polled = Pin::new(&mut this.connection).poll(cx);
        if polled.is_ready() {
            this.state.closed.store(true, Ordering::Relaxed);
        }
        polled
    }
}

/// Plain TCP or TLS under one type for h2 (tokio-util's `Either` forwards reads and
/// vectored writes to whichever it holds).
type Io =
    Either<tokio::net::TcpStream, Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>;

/// Every half idle timeout (at least 100 ms): drops connections no request used for an idle
/// timeout (between one and one and a half, by this granularity), and closed or failed ones.
/// Dropping the pool's handle closes a connection once its streams in flight have ended
/// (h2 keeps the connection open while a stream uses it, and closes it with GOAWAY when the
/// last handle and stream are gone).
async fn sweep(pool: Weak<H2Pool>) {
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
        let now = Instant::now();
        lock(&pool.conns).retain(|_, entry| {
            match entry.slot.get() {
                // Still connecting: its requests are waiting for it.
                None => return true,
                Some(Ok(conn)) if !conn.state.closed.load(Ordering::Relaxed) => {}
                Some(_) => return false,
            }
            if std::mem::take(&mut entry.used) {
                entry.since = now;
                return true;
            }
            now.saturating_duration_since(entry.since) < timeout
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An h2c server on loopback: answers every request 200, `/slow` after 70 s (the
    /// connection still read, so pings are answered), and on `/hang` stops reading its
    /// connection altogether (pings go unanswered).
    async fn server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut conn = h2::server::handshake(socket).await.expect("handshake");
            while let Some(Ok((request, mut respond))) = conn.accept().await {
                match request.uri().path() {
                    "/hang" => {
                        let _held = (conn, respond);
                        std::future::pending::<()>().await;
                        return;
                    }
                    path => {
                        let slow = path == "/slow";
                        tokio::spawn(async move {
                            if slow {
                                tokio::time::sleep(Duration::from_secs(70)).await;
                            }
                            let _ = respond.send_response(Response::new(()), true);
                        });
                    }
                }
            }
        });
        addr
    }

    async fn get(pool: &Arc<H2Pool>, addr: SocketAddr, path: &str) -> Result<u16, ProxyError> {
        let request = Request::builder()
            .uri(format!("http://upstream.test{path}"))
            .body(RetryBody::none())
            .expect("request");
        let route = Route::new(Protocol::H2c, None, None);
        let response = pool
            .send(
                &Peer::Addr(addr),
                &route,
                Duration::from_secs(5),
                UpstreamKeepalive::default(),
                request,
            )
            .await?;
        Ok(response.status().as_u16())
    }

    #[test]
    fn content_length_as_hyper_reads_it() {
        let of = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(CONTENT_LENGTH, HeaderValue::from_str(v).expect("value"));
            }
            content_length(&headers)
        };
        assert_eq!(of(&[]), None);
        assert_eq!(of(&["3"]), Some(3));
        assert_eq!(of(&[" 42 "]), Some(42));
        assert_eq!(of(&["7, 7", "7"]), Some(7));
        assert_eq!(of(&["7", "8"]), None);
        assert_eq!(of(&["7,"]), None);
        assert_eq!(of(&["+7"]), None);
        assert_eq!(of(&["-1"]), None);
        assert_eq!(of(&["18446744073709551616"]), None);
        assert_eq!(of(&["18446744073709551615"]), Some(u64::MAX));
    }

    #[tokio::test]
    async fn an_unanswered_keep_alive_ping_fails_the_stream_and_closes_the_connection() {
        let addr = server().await;
        let pool = H2Pool::new(Duration::from_secs(3600));
        // The connection is made in real time; the keep-alive timers then run on the paused
        // clock, which advances whenever every task waits.
        assert_eq!(get(&pool, addr, "/").await.expect("first request"), 200);
        tokio::time::pause();
        // Bounded on the paused clock, so a missing timeout fails instead of hanging.
        let hung = tokio::time::timeout(Duration::from_secs(600), get(&pool, addr, "/hang"));
        match hung.await.expect("the keep-alive timeout ends the stream") {
            Err(ProxyError::Upstream(e)) => assert!(
                e.downcast_ref::<KeepAliveTimedOut>().is_some(),
                "not the keep-alive timeout: {e}"
            ),
            other => panic!("expected the keep-alive timeout, got {other:?}"),
        }
        let conns = lock(&pool.conns);
        let Some(Ok(conn)) = conns.values().next().and_then(|entry| entry.slot.get()) else {
            panic!("the connection is still in the pool until the sweeper runs");
        };
        assert!(conn.state.closed.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn an_answered_keep_alive_ping_keeps_a_slow_response() {
        let addr = server().await;
        let pool = H2Pool::new(Duration::from_secs(3600));
        assert_eq!(get(&pool, addr, "/").await.expect("first request"), 200);
        tokio::time::pause();
        // 70 s without a frame from the upstream but its pongs (pings at 30 and 60 s).
        assert_eq!(get(&pool, addr, "/slow").await.expect("slow request"), 200);
        // And the connection is still the one in use.
        assert_eq!(get(&pool, addr, "/").await.expect("third request"), 200);
    }
}
