//! Upstream side: pooled keep-alive clients (hyper-util's legacy `Client` over an
//! `HttpConnector`, wrapped by hyper-rustls for HTTPS backends) for HTTPS and HTTP/1.1
//! ExternalName backends, external auth and mirrors, one per protocol and connect timeout
//! (HTTP/2 backends use `h2pool`, plain HTTP/1.1 endpoints `pool`); a resolver for ExternalName hosts that refuses local addresses (spec §4.5),
//! and a request body that can be handed to another attempt after a connect failure (spec §4.4).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::error::ClientFault;
use crate::routing::{Protocol, UpstreamTls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The upstream client type: plain TCP for `http://` URIs, TLS for `https://` ones.
pub type Upstream = Client<HttpsConnector<HttpConnector<SafeResolver>>, RetryBody>;

/// What distinguishes one upstream client (and its connection pool) from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    protocol: Protocol,
    connect_timeout: Duration,
    /// Hash of the upstream TLS settings (CA bundle, client certificate, name, versions);
    /// `None`: none.
    ca: Option<u64>,
    /// The name the certificate must carry when verified (endpoints are dialled by IP).
    server_name: Option<String>,
}

/// The upstream clients of one listener, created on first use. A client per protocol is
/// needed anyway (TLS or not); a per-Ingress connect
/// timeout gets its own pool too, since hyper-util applies it in the connector. Read without
/// locks; copied when a new combination appears, which configuration, not traffic, causes.
pub struct Clients {
    idle_timeout: Duration,
    clients: ArcSwap<HashMap<Key, Upstream>>,
}

impl Clients {
    pub fn new(idle_timeout: Duration) -> Self {
        Clients {
            idle_timeout,
            clients: ArcSwap::default(),
        }
    }

    /// The client for this protocol, connect timeout and verification. A verified
    /// certificate must name `server_name` when given, else the URI's host.
    pub fn get(
        &self,
        protocol: Protocol,
        connect_timeout: Duration,
        verify: Option<&UpstreamTls>,
        server_name: Option<String>,
    ) -> Upstream {
        let verify = verify.filter(|_| protocol.is_tls());
        let ca = verify.map(|v| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        });
        let key = Key {
            protocol,
            connect_timeout,
            ca,
            server_name: server_name.filter(|_| verify.is_some()),
        };
        if let Some(client) = self.clients.load().get(&key) {
            return client.clone();
        }
        let client = build(&key, self.idle_timeout, verify);
        self.clients.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.entry(key.clone()).or_insert_with(|| client.clone());
            map
        });
        client
    }
}

/// Builds one client: keep-alive pool with an idle timeout, `TCP_NODELAY`, connect timeout.
/// The proxy sets `Host` itself, so the client must not invent one from the endpoint address.
/// hyper-util's legacy client creates its HTTP/1 connections `with_upgrades()`, which the
/// WebSocket tunnel relies on.
fn build(key: &Key, idle_timeout: Duration, verify: Option<&UpstreamTls>) -> Upstream {
    let mut connector = HttpConnector::new_with_resolver(SafeResolver);
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(key.connect_timeout));
    connector.enforce_http(false);
    let tls = super::upstream_tls::client_config(key.protocol, verify);
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = key
        .server_name
        .as_deref()
        .and_then(|n| rustls::pki_types::ServerName::try_from(n.to_string()).ok())
    {
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    // HTTP/2 backends (H2C, GRPC, GRPCS) never come here: they go through `h2pool`.
    let https = https.enable_http1().wrap_connector(connector);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .set_host(false);
    builder.build(https)
}

/// The addresses an ExternalName must never reach: loopback, link-local and unspecified
/// (spec §4.5). IPv4-mapped IPv6 addresses are judged by their IPv4 form.
pub fn is_refused(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// An ExternalName resolved to nothing but refused addresses. Answered with 503 like the other
/// ExternalName rejections of spec §4.5 (the backend is unusable, not failing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{host} resolves only to loopback, link-local or unspecified addresses")]
pub struct ExternalNameRefused {
    pub host: String,
}

/// Resolves with tokio's resolver (the system resolver on the blocking pool, so TTLs are the
/// system's) at connect time, dropping refused addresses. Endpoint IPs never reach it: the
/// connector uses IP literals directly.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeResolver;

type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;

impl tower_service::Service<Name> for SafeResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs: Vec<SocketAddr> = resolved.filter(|a| !is_refused(a.ip())).collect();
            if addrs.is_empty() {
                return Err(Box::new(ExternalNameRefused { host }) as BoxError);
            }
            Ok(addrs.into_iter())
        })
    }
}

/// The client's request body, parked where a failed attempt can give it back.
///
/// The upstream client only polls a body after its connection is established, so after a
/// connect failure the `Incoming` is still in the slot and [`RetryBody::again`] hands it to the
/// next attempt (spec §4.4: retry once, any method, when no request bytes were sent).
pub struct RetryBody {
    state: State,
    /// Signalled once the client's body has been read to its end (or failed), so the
    /// response timeout can start only then: a long upload is not a slow upstream.
    sent: Arc<Progress>,
    /// Largest body in bytes; 0: no limit.
    limit: u64,
    /// Longest wait for the next piece of the client's body; `None`: none.
    timeout: Option<Duration>,
    /// The running wait, created the first time the body makes the proxy wait.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `idle` was set for the current wait.
    armed: bool,
}

/// How far the client's request body has got: one allocation shared by all attempts.
#[derive(Debug, Default)]
pub struct Progress {
    /// Notified once the whole body has been handed to the upstream connection.
    pub sent: tokio::sync::Notify,
    /// Body bytes read from the client so far (for metrics and the access log).
    pub received: std::sync::atomic::AtomicU64,
    /// The body went over the size limit while streaming; the answer is 413.
    pub too_large: std::sync::atomic::AtomicBool,
    /// Body frames handed to the upstream connection so far.
    pub handed: std::sync::atomic::AtomicU64,
    /// Whether it is the upstream's turn: the last frame was handed over and the connection
    /// has not asked for the next one yet (it is writing, or the upstream is not reading).
    /// `false` while the proxy waits for the client. `proxy-send-timeout` watches this.
    pub upstream_turn: std::sync::atomic::AtomicBool,
    /// The client's side of the body failed: `ClientFault` index + 1; 0 while it has not.
    /// Set before the error reaches the upstream connection, so whatever error the upstream
    /// client then reports, the attempt is blamed on the client (issue 10 item 2).
    client_fault: std::sync::atomic::AtomicU8,
}

impl Progress {
    fn set_client_fault(&self, fault: ClientFault) {
        let code = match fault {
            ClientFault::MalformedBody => 1,
            ClientFault::Aborted => 2,
            ClientFault::BodyTimeout => 3,
        };
        self.client_fault
            .store(code, std::sync::atomic::Ordering::Release);
    }

    /// Whether (and how) the client's side of the body failed.
    pub fn client_fault(&self) -> Option<ClientFault> {
        match self.client_fault.load(std::sync::atomic::Ordering::Acquire) {
            1 => Some(ClientFault::MalformedBody),
            2 => Some(ClientFault::Aborted),
            3 => Some(ClientFault::BodyTimeout),
            _ => None,
        }
    }
}

/// The client's request body failed; wraps hyper's error so the upstream client's error chain
/// says whose fault it was.
#[derive(Debug, thiserror::Error)]
#[error("client request body failed: {}", .fault.reason())]
pub struct ClientBodyError {
    pub fault: ClientFault,
    #[source]
    source: Option<hyper::Error>,
}

/// Whose failure a client body error is: a framing or protocol error is a malformed body
/// (400); a closed or reset connection or stream is the client going away (499).
fn classify(err: &hyper::Error) -> ClientFault {
    use std::error::Error as _;
    if err.is_parse() {
        return ClientFault::MalformedBody;
    }
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // hyper's HTTP/1 body decoder: InvalidInput/InvalidData for bad chunk framing,
            // UnexpectedEof for a body cut short.
            return match io.kind() {
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                    ClientFault::MalformedBody
                }
                _ => ClientFault::Aborted,
            };
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            // A stream error h2 detected itself is the client breaking the protocol (e.g.
            // DATA beyond its content-length); a reset from the client is it leaving.
            let local_protocol_error =
                !h2.is_remote() && h2.reason() == Some(h2::Reason::PROTOCOL_ERROR);
            return if local_protocol_error {
                ClientFault::MalformedBody
            } else {
                ClientFault::Aborted
            };
        }
        source = e.source();
    }
    ClientFault::Aborted
}

/// A request body over `proxy-body-size`, noticed while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// Largest piece of a buffered body handed to the upstream connection at once.
const BUFFERED_FRAME: usize = 64 * 1024;

enum State {
    Parked(Arc<Mutex<Option<Incoming>>>),
    Streaming(Incoming),
    /// `proxy-request-buffering: on` (proxy/buffering.rs): the whole body, read before the
    /// first attempt; every attempt gets the same bytes.
    Buffered(Bytes),
    Done,
}

fn lock(slot: &Mutex<Option<Incoming>>) -> MutexGuard<'_, Option<Incoming>> {
    // A poisoned slot only means another attempt panicked; the body inside is still intact.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RetryBody {
    pub fn new(body: Incoming, limit: u64, timeout: Duration) -> Self {
        let sent = Arc::new(Progress::default());
        let state = if body.is_end_stream() {
            // No body: hyper never polls it, so it counts as sent from the start. Nothing is
            // left to read, so no attempt needs the slot: a request without a body asks each
            // attempt for `empty()`. (Over HTTP/2 every `is_end_stream` of `Incoming` locks
            // the connection's stream state: the parked body was asked four times per request.)
            sent.sent.notify_one();
            State::Done
        } else {
            State::Parked(Arc::new(Mutex::new(Some(body))))
        };
        RetryBody {
            state,
            sent,
            limit,
            timeout: (!timeout.is_zero()).then_some(timeout),
            idle: None,
            armed: false,
        }
    }

    /// An empty body for another attempt of a request that had none.
    pub fn empty(&self) -> RetryBody {
        RetryBody {
            state: State::Done,
            sent: self.sent.clone(),
            limit: 0,
            timeout: None,
            idle: None,
            armed: false,
        }
    }

    /// No body at all, for a request Portico makes itself (an error page's request,
    /// `error_pages.rs`).
    pub fn none() -> RetryBody {
        let sent = Arc::new(Progress::default());
        sent.sent.notify_one();
        RetryBody {
            state: State::Done,
            sent,
            limit: 0,
            timeout: None,
            idle: None,
            armed: false,
        }
    }

    /// The body read completely (`proxy-request-buffering: on`, proxy/buffering.rs), with the
    /// same progress record, so the access log and the 413/client-fault checks still see it.
    pub fn buffered(bytes: Bytes, sent: Arc<Progress>) -> RetryBody {
        RetryBody {
            state: State::Buffered(bytes),
            sent,
            limit: 0,
            timeout: None,
            idle: None,
            armed: false,
        }
    }

    /// A buffered body's bytes for another request (a mirror copy), with its own progress
    /// record; `None` unless the body is buffered.
    pub fn copy(&self) -> Option<RetryBody> {
        match &self.state {
            State::Buffered(bytes) => Some(RetryBody::buffered(
                bytes.clone(),
                Arc::new(Progress::default()),
            )),
            _ => None,
        }
    }

    /// Resolves once the whole request body has been handed to the upstream connection.
    pub fn sent(&self) -> Arc<Progress> {
        self.sent.clone()
    }

    /// A body for another attempt, if this one never started streaming.
    pub fn again(&self) -> Option<RetryBody> {
        match &self.state {
            State::Parked(slot) if lock(slot).is_some() => Some(RetryBody {
                state: State::Parked(slot.clone()),
                sent: self.sent.clone(),
                limit: self.limit,
                timeout: self.timeout,
                idle: None,
                armed: false,
            }),
            State::Buffered(bytes) => Some(RetryBody::buffered(bytes.clone(), self.sent.clone())),
            _ => None,
        }
    }
}

impl RetryBody {
    fn finish(&mut self) {
        self.state = State::Done;
        self.sent.sent.notify_one();
    }

    /// The client's side failed: noted in `Progress` first, then handed to the upstream
    /// connection as the body's error.
    fn client_failed(
        &mut self,
        fault: ClientFault,
        source: Option<hyper::Error>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.sent.set_client_fault(fault);
        self.finish();
        Poll::Ready(Some(Err(Box::new(ClientBodyError { fault, source }))))
    }

    /// nginx's `client_body_timeout`: the body waited on the client; `Ready` once it has
    /// waited for `timeout` since the last piece arrived.
    fn wait_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let armed = self.armed;
        let idle = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !armed {
            idle.as_mut().reset(deadline);
            self.armed = true;
        }
        idle.as_mut().poll(cx).is_ready()
    }
}

impl Body for RetryBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // The connection asks for more: whatever comes next, it is not the upstream's turn.
        self.sent
            .upstream_turn
            .store(false, std::sync::atomic::Ordering::Relaxed);
        loop {
            match &mut self.state {
                State::Parked(slot) => {
                    let taken = lock(slot).take();
                    self.state = match taken {
                        Some(body) => State::Streaming(body),
                        None => State::Done,
                    };
                }
                State::Streaming(body) => {
                    let polled = Pin::new(&mut *body).poll_frame(cx);
                    let finished = body.is_end_stream();
                    return match polled {
                        Poll::Ready(Some(Err(e))) => {
                            let fault = classify(&e);
                            self.client_failed(fault, Some(e))
                        }
                        Poll::Ready(Some(Ok(frame))) => {
                            self.armed = false;
                            if let Some(data) = frame.data_ref() {
                                let n = u64::try_from(data.len()).unwrap_or(u64::MAX);
                                let before = self
                                    .sent
                                    .received
                                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                                if self.limit > 0 && before.saturating_add(n) > self.limit {
                                    self.sent
                                        .too_large
                                        .store(true, std::sync::atomic::Ordering::Relaxed);
                                    let limit = self.limit;
                                    self.finish();
                                    return Poll::Ready(Some(Err(Box::new(BodyTooLarge(limit)))));
                                }
                            }
                            if finished {
                                self.finish();
                            } else {
                                self.sent
                                    .handed
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                self.sent
                                    .upstream_turn
                                    .store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            Poll::Ready(Some(Ok(frame)))
                        }
                        Poll::Ready(None) => {
                            self.finish();
                            Poll::Ready(None)
                        }
                        Poll::Pending => {
                            if self.wait_expired(cx) {
                                self.client_failed(ClientFault::BodyTimeout, None)
                            } else {
                                Poll::Pending
                            }
                        }
                    };
                }
                State::Buffered(bytes) => {
                    // Handed over in pieces (no copy), as a streamed body would be, so
                    // `proxy-send-timeout` sees an upstream that stops taking them.
                    if bytes.len() > BUFFERED_FRAME {
                        let piece = bytes.split_to(BUFFERED_FRAME);
                        self.sent
                            .handed
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.sent
                            .upstream_turn
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        return Poll::Ready(Some(Ok(Frame::data(piece))));
                    }
                    let bytes = std::mem::take(bytes);
                    self.finish();
                    return if bytes.is_empty() {
                        Poll::Ready(None)
                    } else {
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    };
                }
                State::Done => {
                    self.sent.sent.notify_one();
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Parked(slot) => lock(slot).as_ref().is_none_or(|b| b.is_end_stream()),
            State::Streaming(body) => body.is_end_stream(),
            State::Buffered(bytes) => bytes.is_empty(),
            State::Done => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Parked(slot) => lock(slot)
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint()),
            State::Streaming(body) => body.size_hint(),
            State::Buffered(bytes) => {
                SizeHint::with_exact(u64::try_from(bytes.len()).unwrap_or(u64::MAX))
            }
            State::Done => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "::1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_refused(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "93.184.216.34", "2001:db8::1"] {
            assert!(!is_refused(ip.parse().unwrap()), "{ip}");
        }
    }
}
