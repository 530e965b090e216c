//! Issue 10 ("Hardening"), items 1, 2, 3 and 6, over real sockets on 127.0.0.1: only the
//! upgrades we mean are tunnelled, clients cannot get healthy endpoints ejected, every client
//! connection is bounded in time (HTTP/1, TLS, HTTP/2), and message framing follows RFC 9112.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use portico::proxy::ProxyOptions;
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
