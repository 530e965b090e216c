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
//! Semantics kept from the legacy client: `TCP_NODELAY`; the connect timeout (504,
//! `ProxyError::ConnectTimeout`; here it also bounds the TLS handshake, as nginx's
//! `proxy_connect_timeout` does); connect failures as `ProxyError::Connect` (retried on another
//! endpoint, spec §4.4); ExternalNames resolved at connect time without loopback, link-local
//! or unspecified addresses (spec §4.5); keep-alive pings every 30 s, 20 s to answer; hyper's
//! default windows and limits; a request given back unsent by a connection that closed (GOAWAY,
//! reset) goes once more on a new connection; idle connections closed after the idle timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::error::ProxyError;
use super::pool::{lock, millis};
use super::upstream::{is_refused, ExternalNameRefused, RetryBody};
use crate::routing::{Protocol, UpstreamKeepalive, UpstreamTls};

/// Keyed by configuration (endpoint addresses, ExternalName hosts, TLS settings), never a
/// client's input: foldhash's fast hasher is safe.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// gRPC streams live long; keep-alive pings notice a dead peer (the legacy client's settings).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

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
type Slot = Arc<OnceCell<Result<SendRequest<RetryBody>, ConnectFailure>>>;

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
                Some(Ok(sender)) => sender.is_ready(),
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
        mut request: Request<RetryBody>,
    ) -> Result<Response<Incoming>, ProxyError> {
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
            let mut sender = match made {
                Ok(sender) => sender.clone(),
                Err(failure) => return Err(failure.clone().into_error()),
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response),
                // The connection closed before the request went out (GOAWAY, reset): once
                // more on a new connection.
                Err(mut err) => match err.take_message() {
                    Some(unsent) if stale.is_none() => {
                        request = unsent;
                        stale = Some(slot);
                    }
                    _ => return Err(ProxyError::Upstream(Box::new(err.into_error()))),
                },
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
/// handshake, its connection task spawned on this worker.
async fn connect(
    peer: &Peer,
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    connect_timeout: Duration,
) -> Result<SendRequest<RetryBody>, ConnectFailure> {
    let opened = tokio::time::timeout(connect_timeout, async {
        let stream = tcp(peer).await?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(backend.addr = ?peer, error = %e, "set_nodelay failed");
        }
        match tls {
            None => Ok(Io::Plain(stream)),
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
                Ok(Io::Tls(Box::new(tls)))
            }
        }
    })
    .await;
    let io = match opened {
        Ok(io) => io?,
        Err(_) => return Err(ConnectFailure::Timeout),
    };
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .handshake(TokioIo::new(io))
        .await
        .map_err(ConnectFailure::failed)?;
    let peer = peer.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(backend.addr = ?peer, error = %e, "upstream HTTP/2 connection ended with error");
        }
    });
    Ok(sender)
}

/// Plain TCP or TLS under one type for hyper.
enum Io {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => std::pin::Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Io::Tls(s) => std::pin::Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => std::pin::Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Every half idle timeout (at least 100 ms): drops connections no request used for an idle
/// timeout (between one and one and a half, by this granularity), and closed or failed ones.
/// Dropping the pool's handle closes a connection once its streams in flight have ended
/// (hyper keeps the connection task alive while a stream uses it).
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
                Some(Ok(sender)) if !sender.is_closed() => {}
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
