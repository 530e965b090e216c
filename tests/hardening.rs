//! Issue 10 ("Hardening"), items 1, 2, 3 and 6, over real sockets on 127.0.0.1: only the
//! upgrades we mean are tunnelled, clients cannot get healthy endpoints ejected, every client
//! connection is bounded in time (HTTP/1, TLS, HTTP/2), and message framing follows RFC 9112.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico::metrics::Metrics;
use portico::proxy::{Balancer, Observe, ProxyOptions};
use support::{endpoints, publish_catch_all, seen, start_echo, Proxy, BOUND};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A raw backend: reads each request head and answers every one with `answer`, then echoes
/// whatever else arrives on the connection (what a backend that switched protocols does).
async fn raw_backend(answer: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line.trim_end().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 || reader.get_mut().write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

const H2C_UPGRADE: &str = "GET / HTTP/1.1\r\nHost: x\r\n\
    Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
    HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";

// Item 1: an `Upgrade: h2c` request used to reach the backend with its Upgrade, and a backend
// answering 101 handed the client a raw HTTP/2 connection past routing (h2c smuggling).
#[tokio::test]
async fn h2c_upgrade_is_forwarded_as_a_plain_request() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let response = proxy.raw(H2C_UPGRADE).await;
    assert_eq!(response.status, 200, "{response:?}");
    let json = response.json();
    for hop in ["upgrade", "http2-settings", "connection"] {
        assert!(seen(&json, hop).is_empty(), "{hop} forwarded: {json}");
    }
    // Without `Connection: upgrade` naming it, HTTP2-Settings is still not forwarded.
    let response = proxy
        .raw("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    let json = response.json();
    assert!(seen(&json, "http2-settings").is_empty(), "{json}");
    assert!(seen(&json, "upgrade").is_empty(), "{json}");
}

// Item 1: protocols other than WebSocket are only tunnelled when the operator names them.
#[tokio::test]
async fn other_upgrades_are_tunnelled_only_when_allowed() {
    let echo = start_echo("e").await;
    let request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo-proto\r\n\r\n";
    let plain = Proxy::start().await;
    publish_catch_all(&plain.shared, endpoints(&[echo]));
    let response = plain.raw(request).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(seen(&response.json(), "upgrade").is_empty());

    let allowing = Proxy::start_with(ProxyOptions {
        upgrade_protocols: Arc::new(vec!["websocket".into(), "echo-proto".into()]),
        ..ProxyOptions::default()
    })
    .await;
    publish_catch_all(&allowing.shared, endpoints(&[echo]));
    let mut conn = allowing.connect().await;
    conn.send(request.as_bytes()).await;
    let (_, status, _) = conn.head().await;
    assert_eq!(status, 101);
    // An offer mixing h2c with an allowed protocol reaches the backend without h2c.
    let mut conn = allowing.connect().await;
    conn.send(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, echo-proto\r\n\r\n",
    )
    .await;
    let (_, status, headers) = conn.head().await;
    assert_eq!(status, 101);
    assert!(headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("upgrade") && v == "echo-proto"));
}

// Item 1: a backend that switches to something nobody asked for does not get a tunnel.
#[tokio::test]
async fn a_101_the_proxy_did_not_ask_for_is_502() {
    let rogue = raw_backend(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[rogue]));
    // A plain request, an h2c offer (stripped), and a WebSocket offer answered with h2c.
    for request in [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        H2C_UPGRADE,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ] {
        let mut conn = proxy.connect().await;
        conn.send(request.as_bytes()).await;
        let response = tokio::time::timeout(BOUND, conn.response()).await.unwrap();
        assert_eq!(response.status, 502, "{request}");
    }
}

/// A proxy whose metrics and balancer the test can read.
async fn observed_proxy(options: ProxyOptions) -> (Proxy, Arc<Metrics>, Arc<Balancer>) {
    let metrics = Arc::new(Metrics::new());
    let balancer = Arc::new(Balancer::default());
    let proxy = Proxy::start_with(ProxyOptions {
        balancer: balancer.clone(),
        observe: Observe {
            metrics: metrics.clone(),
            access_log: None,
        },
        ..options
    })
    .await;
    (proxy, metrics, balancer)
}

/// `portico_client_request_errors_total{reason}` (0 when absent).
fn client_errors(metrics: &Metrics, proxy: &Proxy, reason: &str) -> u64 {
    let text = metrics.encode(&proxy.shared.load());
    let want = format!("portico_client_request_errors_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Everything the proxy writes on `conn` until it closes (bounded).
async fn read_all(conn: &mut support::Conn) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, conn.reader.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

// Item 2: a malformed chunked body and an upload cut short were upstream errors that ejected
// the endpoint (three of them took a Service down). Now they are the client's: 400 and 499.
#[tokio::test]
async fn client_body_failures_never_eject_an_endpoint() {
    let a = start_echo("a").await;
    let b = start_echo("b").await;
    let (proxy, metrics, balancer) = observed_proxy(ProxyOptions::default()).await;
    publish_catch_all(&proxy.shared, endpoints(&[a, b]));
    for _ in 0..3 {
        let malformed = proxy
            .raw("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n")
            .await;
        assert_eq!(malformed.status, 400, "{malformed:?}");
        // The client stops sending half-way through its upload.
        let mut cut = proxy.connect().await;
        cut.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
            .await;
        cut.reader.get_mut().shutdown().await.unwrap();
        let answer = read_all(&mut cut).await;
        assert!(!answer.contains(" 502 "), "{answer}");
    }
    assert!(!balancer.is_ejected(a) && !balancer.is_ejected(b));
    assert_eq!(client_errors(&metrics, &proxy, "malformed_body"), 3);
    // The cut uploads are counted once each (answered or dropped, never both).
    for _ in 0..100 {
        if client_errors(&metrics, &proxy, "aborted") >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client_errors(&metrics, &proxy, "aborted"), 3);
    let text = metrics.encode(&proxy.shared.load());
    assert!(
        text.contains("portico_upstream_ejections_total 0"),
        "{text}"
    );
    // Both endpoints still serve.
    let mut names = std::collections::HashSet::new();
    for _ in 0..4 {
        let response = proxy.get("x", "/").await;
        assert_eq!(response.status, 200);
        names.insert(response.json()["name"].as_str().unwrap().to_string());
    }
    assert_eq!(names.len(), 2, "{names:?}");
}

// Item 2: a client that stalls mid-upload is cut after --client-body-timeout with 408, and its
// endpoint is not blamed (before: the upload hung with the upstream connection held).
#[tokio::test(start_paused = true)]
async fn a_stalled_upload_is_408_and_not_the_endpoints_fault() {
    let echo = start_echo("e").await;
    let (proxy, metrics, balancer) = observed_proxy(ProxyOptions {
        client_body_timeout: Duration::from_secs(5),
        ..ProxyOptions::default()
    })
    .await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let mut conn = proxy.connect().await;
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
        .await;
    // The paused clock jumps to the 5 s body timeout once everything waits (the response
    // read is bounded by 20 s; the connection's idle timeout is 75 s).
    let response = conn.response().await;
    assert_eq!(response.status, 408);
    assert!(!balancer.is_ejected(echo));
    assert_eq!(client_errors(&metrics, &proxy, "body_timeout"), 1);
}

// Item 2: a client that leaves before its answer is logged and counted as 499 (it used not
// to be recorded at all), and the endpoint it was waiting for is not blamed.
#[tokio::test]
async fn a_client_leaving_before_its_answer_is_499() {
    let gated = support::gated_backend().await;
    let (proxy, metrics, balancer) = observed_proxy(ProxyOptions::default()).await;
    publish_catch_all(&proxy.shared, endpoints(&[gated.addr]));
    let mut conn = proxy.connect().await;
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    tokio::time::timeout(BOUND, gated.head_seen)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    for _ in 0..250 {
        if client_errors(&metrics, &proxy, "aborted") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client_errors(&metrics, &proxy, "aborted"), 1);
    let text = metrics.encode(&proxy.shared.load());
    assert!(
        text.contains("status_class=\"4xx\"} 1"),
        "499 not counted as a client error: {text}"
    );
    assert!(!balancer.is_ejected(gated.addr));
    drop(gated.release);
}

// Item 6: a backend sending both Content-Length and chunked framing. hyper reads the body by
// the chunked framing; the Content-Length used to be passed on and the body cut at it.
#[tokio::test]
async fn a_backends_content_length_beside_chunked_is_dropped() {
    let backend = raw_backend(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         14\r\n01234567890123456789\r\n0\r\n\r\n",
    )
    .await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[backend]));
    let response = proxy.get("x", "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), None, "{response:?}");
    assert!(response.chunked, "{response:?}");
    assert_eq!(response.text(), "01234567890123456789");
}

// Item 6: request transfer codings other than exactly `chunked` (RFC 9112 §6.1). hyper
// decoded the chunked layer and the gzip coding was silently dropped on the way upstream.
#[tokio::test]
async fn request_transfer_codings_other_than_chunked_are_refused() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let body = "5\r\nhello\r\n0\r\n\r\n";
    for (codings, status) in [
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        (
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            501,
        ),
        ("Transfer-Encoding: chunked, chunked\r\n", 501),
        // Not ending in chunked: hyper refuses it itself (RFC 9112 §6.3: 400).
        ("Transfer-Encoding: chunked, gzip\r\n", 400),
        ("Transfer-Encoding: chunked\r\n", 200),
    ] {
        let response = proxy
            .raw(&format!(
                "POST / HTTP/1.1\r\nHost: x\r\n{codings}\r\n{body}"
            ))
            .await;
        assert_eq!(response.status, status, "{codings}");
        if status == 200 {
            assert_eq!(response.json()["body_bytes"], 5);
        }
    }
}

/// `portico_client_connections{protocol}` now.
fn open_connections(metrics: &Metrics, proxy: &Proxy, protocol: &str) -> u64 {
    let text = metrics.encode(&proxy.shared.load());
    let want = format!("portico_client_connections{{protocol=\"{protocol}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Waits (bounded, on whatever clock the test runs) until the proxy has no open client
/// connection; false if one is still open at the end.
async fn all_closed(metrics: &Metrics, proxy: &Proxy, steps: u32) -> bool {
    for _ in 0..steps {
        if open_connections(metrics, proxy, "http") == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    open_connections(metrics, proxy, "http") == 0
}

/// Reads until the peer closes; true if it did within `limit` (on the test's clock).
async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), limit: Duration) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut sink))
        .await
        .is_ok()
}

// Item 3: the header timeout starts at accept. A connection that sends nothing, or fewer
// bytes than hyper needs to tell HTTP/1 from HTTP/2, lived until the 75 s idle timeout.
#[tokio::test(start_paused = true)]
async fn a_connection_without_a_request_is_closed_after_the_header_timeout() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    for opening in [&b""[..], b"GET / HT"] {
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(opening).await.unwrap();
        // 10 s header timeout against the 75 s idle one, on the paused clock.
        assert!(
            closed_within(&mut stream, Duration::from_secs(30)).await,
            "connection opened with {opening:?} still open"
        );
    }
    assert_eq!(proxy.get("x", "/").await.status, 200);
}

// Item 3: the same over TLS: after the handshake, the first request within the header
// timeout (real clock, short timeout, bounded wait).
#[tokio::test]
async fn a_tls_connection_without_a_request_is_closed_after_the_header_timeout() {
    let generated = portico::tls::generated_default().expect("generate");
    let shared = portico::publish::shared();
    let resolver = portico::tls::Resolver::new(shared.clone(), generated);
    let config = portico::tls::server_config(Arc::new(resolver)).expect("server config");
    let tls = portico::proxy::TlsListener {
        acceptor: config.into(),
        handshake_timeout: Duration::from_secs(10),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(portico::proxy::serve_tls(
        listener,
        shared,
        Arc::new(ProxyOptions {
            scheme: portico::proxy::Scheme::Https,
            header_read_timeout: Duration::from_millis(500),
            client_idle_timeout: Duration::from_secs(3600),
            ..ProxyOptions::default()
        }),
        tls,
        std::future::pending(),
    ));
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut stream = support::tls::connect(addr, Some("a.test"), &[alpn]).await;
        assert!(
            closed_within(&mut stream, BOUND).await,
            "idle TLS connection ({}) still open",
            String::from_utf8_lossy(alpn)
        );
    }
}

/// A client connection the test can freeze: once frozen it neither reads nor writes, like a
/// peer that vanished without closing (its kernel still holds the socket open).
struct Freezable {
    inner: tokio::net::TcpStream,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl Freezable {
    fn is_frozen(&self) -> bool {
        self.frozen.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl tokio::io::AsyncRead for Freezable {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.is_frozen() {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Freezable {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.is_frozen() {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.is_frozen() {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An HTTP/2 client on a freezable connection; returns the request handle and the switch.
async fn h2_client(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let io = Freezable {
        inner: tokio::net::TcpStream::connect(addr).await.unwrap(),
        frozen: frozen.clone(),
    };
    let (client, connection) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(connection);
    (client.ready().await.unwrap(), frozen)
}

// Item 3: after the idle GOAWAY, a client that never answers the PING that goes with it kept
// the connection open for ever. Now it is closed a grace (the keep-alive timeout) later.
#[tokio::test(start_paused = true)]
async fn an_http2_client_ignoring_the_idle_goaway_is_closed() {
    let echo = start_echo("e").await;
    let (proxy, metrics, _) = observed_proxy(ProxyOptions {
        client_idle_timeout: Duration::from_secs(5),
        // Keep-alive pings out of the way: only the idle shutdown can close it.
        h2_keepalive_interval: Duration::from_secs(3600),
        ..ProxyOptions::default()
    })
    .await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let (mut client, frozen) = h2_client(proxy.addr).await;
    let (response, _) = client
        .send_request(http::Request::get("http://x/").body(()).unwrap(), true)
        .unwrap();
    let response = tokio::time::timeout(BOUND, response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.unwrap().len());
    }
    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    // 5 s idle, then GOAWAY + PING never answered, then the 20 s grace (paused clock).
    assert!(
        all_closed(&metrics, &proxy, 120).await,
        "connection open after ignoring the GOAWAY"
    );
    drop(client);
}

// Item 3: a client that vanishes during a long request (its socket still open) used to hold
// the connection for ever; the keep-alive PING goes unanswered and the connection is closed.
#[tokio::test(start_paused = true)]
async fn an_http2_client_not_answering_ping_is_closed() {
    let gated = support::gated_backend().await;
    let (proxy, metrics, _) = observed_proxy(ProxyOptions {
        client_idle_timeout: Duration::from_secs(3600),
        response_timeout: Duration::from_secs(3600),
        ..ProxyOptions::default()
    })
    .await;
    publish_catch_all(&proxy.shared, endpoints(&[gated.addr]));
    let (mut client, frozen) = h2_client(proxy.addr).await;
    let (_response, _) = client
        .send_request(http::Request::get("http://x/").body(()).unwrap(), true)
        .unwrap();
    tokio::time::timeout(BOUND, gated.head_seen)
        .await
        .unwrap()
        .unwrap();
    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    // 30 s to the PING, 20 s for its PONG (paused clock).
    assert!(
        all_closed(&metrics, &proxy, 120).await,
        "connection open with its client gone"
    );
    drop(gated.release);
}

// Item 3: a HEADERS frame sent a byte a second was never cut off (every byte counted as
// activity). Now the header block must complete within the header timeout.
#[tokio::test(start_paused = true)]
async fn an_http2_header_block_dribbled_is_cut_off() {
    let echo = start_echo("e").await;
    let (proxy, metrics, _) = observed_proxy(ProxyOptions::default()).await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The server's SETTINGS and whatever follows, until it closes.
    let closed = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink).await;
    });
    // A valid HPACK block: GET http://x/ (static-table :method, :scheme, :path; literal
    // :authority), then a literal `x-a` of 28 bytes, to make the dribbled one 40 bytes.
    let get = [0x82, 0x86, 0x84, 0x41, 0x01, b'x'];
    let mut dribbled = get.to_vec();
    dribbled.extend_from_slice(&[0x00, 0x03, b'x', b'-', b'a', 28]);
    dribbled.extend_from_slice(&[b'a'; 28]);
    let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    opening.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
                                                               // HEADERS on stream 1, END_STREAM | END_HEADERS: one complete request first.
    opening.extend_from_slice(&[0, 0, 6, 0x1, 0x5, 0, 0, 0, 1]);
    opening.extend_from_slice(&get);
    // HEADERS on stream 3, the same flags, its 40-byte block to follow a byte at a time.
    opening.extend_from_slice(&[0, 0, 40, 0x1, 0x5, 0, 0, 0, 3]);
    writer.write_all(&opening).await.unwrap();
    // 10 s header timeout; the block would take 40 s.
    let mut sent = 0;
    while sent < dribbled.len() && !closed.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if writer.write_all(&dribbled[sent..=sent]).await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent < 40, "the whole dribbled header block was accepted");
    tokio::time::timeout(BOUND, closed).await.unwrap().unwrap();
    assert!(all_closed(&metrics, &proxy, 5).await);
}
