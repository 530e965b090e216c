//! SSL passthrough on the HTTPS listener (issue 15, `--enable-ssl-passthrough`): before the
//! TLS handshake, the connection's ClientHello is *peeked* (`MSG_PEEK`, nothing is consumed)
//! and its SNI looked up in the published passthrough hosts; a match is spliced as TCP to an
//! endpoint of the host's `/` backend, with the ClientHello still in the socket, so the backend
//! terminates TLS with its own certificate. Anything else (another name, no SNI, not a
//! ClientHello) goes on to Portico's own handshake with the socket untouched.
//!
//! Bounds: the peek shares the handshake's deadline (a client that never completes its
//! ClientHello is closed when the handshake would have been), reads at most [`MAX_PEEK`]
//! bytes, and a spliced connection is closed after [`IDLE_TIMEOUT`] without a byte either way.
//! Spliced connections hold their listener's connection slot (`--max-connections`).
//!
//! ingress-nginx (`pkg/tcpproxy/tcp.go`) reads the first record and sends it on; it dials the
//! Service's clusterIP, never sends a PROXY header to a passthrough backend (`nginx.go`:
//! `ProxyProtocol: false`, "TODO: Allow PassthroughBackends to specify they support
//! proxy-protocol"), and has neither a read deadline nor an idle timeout.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ProxyOptions;
use crate::publish::Shared;
use crate::routing::Backend;

/// How long a spliced connection may go without a byte either way: ingress-nginx's
/// `proxy-stream-timeout` default (600s), which bounds its other TCP proxying.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Most bytes looked at for a ClientHello. A record carries at most 2^14 bytes (RFC 8446
/// §5.1); this leaves room for a ClientHello split over a few records (post-quantum key
/// shares make them a few KiB). A longer one is handed to Portico's own handshake.
pub const MAX_PEEK: usize = 32 * 1024;

/// The longest handshake message accepted as a ClientHello.
const MAX_HELLO: usize = MAX_PEEK - 5;
const MAX_RECORD: usize = 1 << 14;
const RECORD_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXTENSION_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;

/// What the bytes a client has sent so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// Not enough bytes yet: at least this many are needed in all.
    Incomplete(usize),
    /// A complete ClientHello naming this host (lower-cased).
    Sni(String),
    /// A complete ClientHello without a host name.
    NoSni,
    /// Not a TLS ClientHello (or a malformed or oversized one): Portico's handshake answers it.
    Other,
}

/// Reads a ClientHello's SNI from the first bytes of a connection: TLS records of type
/// handshake, reassembled until the ClientHello message is complete. Never panics; looks at
/// no more than [`MAX_PEEK`] bytes.
pub fn parse(bytes: &[u8]) -> Hello {
    match hello_body(bytes) {
        Ok(body) => server_name(&body).unwrap_or(Hello::Other),
        Err(decided) => decided,
    }
}

/// The body of the ClientHello message in the first bytes of a connection (its handshake
/// records reassembled; borrowed when one record holds it, as it nearly always does), or what
/// [`parse`] says of bytes that hold none: [`Hello::Incomplete`] or [`Hello::Other`]. Never
/// panics; looks at no more than [`MAX_PEEK`] bytes.
pub(super) fn hello_body(bytes: &[u8]) -> Result<Cow<'_, [u8]>, Hello> {
    let mut message: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut pos = 0;
    loop {
        let Some(header) = bytes.get(pos..pos + 5) else {
            return Err(Hello::Incomplete(pos + 5));
        };
        if header[0] != RECORD_HANDSHAKE || header[1] != 3 {
            return Err(Hello::Other);
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Err(Hello::Other);
        }
        let end = pos + 5 + len;
        if end > MAX_PEEK {
            return Err(Hello::Other);
        }
        let Some(fragment) = bytes.get(pos + 5..end) else {
            return Err(Hello::Incomplete(end));
        };
        if message.is_empty() {
            message = Cow::Borrowed(fragment);
        } else {
            message.to_mut().extend_from_slice(fragment);
        }
        pos = end;
        if message.len() < 4 {
            continue;
        }
        if message[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(Hello::Other);
        }
        let hello_len =
            usize::from(message[1]) << 16 | usize::from(message[2]) << 8 | usize::from(message[3]);
        if hello_len > MAX_HELLO {
            return Err(Hello::Other);
        }
        if message.len() >= 4 + hello_len {
            return Ok(match message {
                Cow::Borrowed(m) => Cow::Borrowed(&m[4..4 + hello_len]),
                Cow::Owned(mut m) => {
                    m.truncate(4 + hello_len);
                    m.drain(..4);
                    Cow::Owned(m)
                }
            });
        }
    }
}

/// A bounds-checked reader over a byte slice.
pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader(bytes)
    }

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(super) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    pub(super) fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `server_name` extension of a ClientHello body (RFC 8446 §4.1.2, RFC 6066 §3).
/// `None`: malformed.
fn server_name(body: &[u8]) -> Option<Hello> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    if r.is_empty() {
        return Some(Hello::NoSni);
    }
    let mut extensions = Reader(r.vec16()?);
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind != EXTENSION_SERVER_NAME {
            continue;
        }
        let mut data = Reader(data);
        let mut names = Reader(data.vec16()?);
        while !names.is_empty() {
            let name_type = names.u8()?;
            let name = names.vec16()?;
            if name_type != NAME_TYPE_HOST {
                continue;
            }
            // RFC 6066: a DNS host name, ASCII, no trailing dot; anything else names no host
            // Portico could have a passthrough entry for.
            let name = std::str::from_utf8(name).ok()?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return None;
            }
            return Some(Hello::Sni(name.to_ascii_lowercase()));
        }
        return Some(Hello::NoSni);
    }
    Some(Hello::NoSni)
}

/// Peeks at the connection until [`parse`] decides. Bytes arriving in several segments are
/// waited for (briefly sleeping between peeks: a peek does not consume, so the socket stays
/// readable); the caller bounds the whole wait.
async fn peek_hello(stream: &TcpStream) -> std::io::Result<Hello> {
    let mut buf = vec![0u8; 2048];
    let mut seen = 0;
    let mut pause = Duration::from_millis(1);
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        match parse(&buf[..n]) {
            Hello::Incomplete(need) if need > MAX_PEEK => return Ok(Hello::Other),
            Hello::Incomplete(need) => {
                if need > buf.len() && n == buf.len() {
                    // More may be waiting already: look again with room for it.
                    buf.resize(need.max(buf.len() * 2).min(MAX_PEEK), 0);
                    continue;
                }
                if n > seen {
                    pause = Duration::from_millis(1);
                } else {
                    pause = (pause * 2).min(Duration::from_millis(32));
                }
                seen = n;
                tokio::time::sleep(pause).await;
            }
            decided => return Ok(decided),
        }
    }
}

/// The HTTPS listener's one call: returns the connection untouched for Portico's own TLS
/// handshake, or `None` when it was spliced (and has ended) or closed. `deadline` is the
/// handshake's: the ClientHello must be complete by then.
pub(super) async fn divert(
    stream: TcpStream,
    client: SocketAddr,
    shared: &Shared,
    options: &ProxyOptions,
    deadline: Instant,
) -> Option<TcpStream> {
    if shared.load().translation.passthrough.is_empty() {
        return Some(stream);
    }
    let metrics = &options.observe.metrics;
    let hello = match tokio::time::timeout_at(deadline, peek_hello(&stream)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            tracing::debug!(client.addr = %client, error = %e, "no ClientHello; closing");
            metrics.tls_handshake_failed(crate::metrics::handshake_failure_reason(&e));
            return None;
        }
        Err(_) => {
            tracing::debug!(client.addr = %client, "ClientHello not complete in time; closing");
            metrics.tls_handshake_failed("timeout");
            return None;
        }
    };
    let Hello::Sni(name) = hello else {
        return Some(stream);
    };
    let (backend, connect_timeout) = {
        let published = shared.load();
        let translation = &published.translation;
        let backend = translation.passthrough.get(&name).cloned();
        // As for a request: the annotation, else the ConfigMap's, else the flag.
        let global = translation.global.proxy_connect_timeout;
        let connect_timeout = backend.as_ref().and_then(|b| b.policy.connect_timeout);
        (
            backend,
            connect_timeout
                .or(global)
                .unwrap_or(options.connect_timeout),
        )
    };
    let Some(backend) = backend else {
        return Some(stream);
    };
    splice(stream, client, &name, &backend, connect_timeout, options).await;
    None
}

/// Connects to an endpoint of `backend` (its balancer, passive health and tries, as for a
/// request) and copies bytes both ways until both sides have closed, an error, or the idle
/// timeout. Half-closes are passed on.
async fn splice(
    client: TcpStream,
    client_addr: SocketAddr,
    sni: &str,
    backend: &Backend,
    connect_timeout: Duration,
    options: &ProxyOptions,
) {
    let metrics = &options.observe.metrics;
    let policy = &backend.policy;
    let balance = policy.balance.unwrap_or(options.balance);
    let tries = policy.tries.unwrap_or(options.tries).max(1);
    let mut tried: Vec<SocketAddr> = Vec::new();
    let (mut upstream, addr) = loop {
        let Some(attempt) = options.balancer.pick(backend, balance, 0, &tried) else {
            let outcome = if tried.is_empty() {
                "no_endpoint"
            } else {
                "connect_failed"
            };
            tracing::debug!(client.addr = %client_addr, tls.sni = sni, outcome, "passthrough: no endpoint to splice to; closing");
            metrics.passthrough_connection(outcome);
            return;
        };
        let addr = attempt.addr;
        match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                attempt.succeeded();
                break (stream, addr);
            }
            failed => {
                let backoff = attempt.failed();
                metrics.ejection();
                tracing::debug!(client.addr = %client_addr, backend.addr = %addr, backoff = ?backoff,
                    error = ?failed.map(|r| r.err()), "passthrough: connect failed; endpoint ejected");
                tried.push(addr);
                if tried.len() >= usize::try_from(tries).unwrap_or(usize::MAX) {
                    metrics.passthrough_connection("connect_failed");
                    return;
                }
            }
        }
    };
    metrics.passthrough_connection("spliced");
    if let Err(e) = upstream.set_nodelay(true) {
        tracing::debug!(backend.addr = %addr, error = %e, "set_nodelay failed");
    }
    let started = Instant::now();
    let mut client = Counted::new(client, started);
    let last = client.last.clone();
    let last_at = || started + Duration::from_millis(last.load(Ordering::Relaxed));
    let idle = options.passthrough_idle_timeout;
    let ended = {
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(copy);
        loop {
            let idle_at = last_at() + idle;
            tokio::select! {
                result = &mut copy => break result.err().map(|e| e.to_string()),
                () = tokio::time::sleep_until(idle_at) => {
                    // Re-read: the copy may have moved bytes since the sleep was armed.
                    if last_at() + idle <= Instant::now() {
                        break Some("idle timeout".to_string());
                    }
                }
            }
        }
    };
    metrics.passthrough_bytes(client.read, client.written);
    if options.observe.access_log.is_some() {
        tracing::info!(
            client.addr = %client_addr,
            tls.sni = sni,
            backend.addr = %addr,
            bytes.upstream = client.read,
            bytes.downstream = client.written,
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ended = ended.as_deref().unwrap_or("closed"),
            "ssl passthrough connection"
        );
    }
}

/// The client side of a splice, counting bytes each way and when the last one moved (the
/// idle timeout reads it). Polled by `copy_bidirectional` from the connection's own task.
struct Counted {
    inner: TcpStream,
    start: Instant,
    /// Milliseconds after `start` of the last byte either way (read by the idle check while
    /// `copy_bidirectional` holds this).
    last: Arc<AtomicU64>,
    read: u64,
    written: u64,
}

impl Counted {
    fn new(inner: TcpStream, start: Instant) -> Self {
        Counted {
            inner,
            start,
            last: Arc::default(),
            read: 0,
            written: 0,
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis();
        self.last
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read += n as u64;
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.written += n as u64;
                self.touch();
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
