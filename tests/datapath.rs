//! The production data path over real sockets: passive health and retries, limits, timeouts,
//! connection limit, PROXY protocol, h2c / gRPC / HTTPS backends, and configuration churn.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico::proxy::ProxyOptions;
use portico::routing::{Backend, Policy, Protocol, Target};
use support::{
    closed_port, endpoints, gated_backend, publish_catch_all, seen, start_echo, Conn, Proxy, BOUND,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// `backend` under an Ingress policy.
fn with_policy(backend: Arc<Backend>, policy: Policy) -> Arc<Backend> {
    Arc::new(backend.with_policy(Arc::new(policy)))
}

/// A backend that accepts connections, reads a little, and closes them without answering
/// (a crashing pod); counts the connections it saw.
async fn resetting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf).await;
            drop(stream);
        }
    });
    (addr, count)
}

#[tokio::test]
async fn a_reset_endpoint_is_ejected_and_idempotent_requests_are_retried() {
    let (bad, hits) = resetting_backend().await;
    let good = start_echo("good").await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[bad, good]));
    for _ in 0..10 {
        let response = proxy.get("x", "/").await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.json()["name"], "good");
    }
    // Ejected after its first failure: the others did not go there (bounded by how long
    // the loop took compared with the 1 s first ejection, hence not exactly 1).
    assert!(
        hits.load(Ordering::SeqCst) < 5,
        "reset endpoint kept getting traffic"
    );
}

#[tokio::test]
async fn a_post_with_a_body_is_not_replayed_after_bytes_were_sent() {
    let (bad, hits) = resetting_backend().await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[bad]));
    let response = proxy
        .raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    assert_eq!(response.status, 502);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refused_endpoints_are_retried_and_502_when_none_is_good() {
    let good = start_echo("good").await;
    let proxy = Proxy::start().await;
    let dead = [closed_port().await, closed_port().await];
    publish_catch_all(&proxy.shared, endpoints(&[dead[0], dead[1], good]));
    for _ in 0..6 {
        let response = proxy.get("x", "/").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.json()["name"], "good");
    }
    // Every endpoint dead: 502 after the bounded tries (and no 503 though all are ejected).
    publish_catch_all(&proxy.shared, endpoints(&dead));
    assert_eq!(proxy.get("x", "/").await.status, 502);
    assert_eq!(proxy.get("x", "/").await.status, 502);
    // One try only, by annotation: the dead endpoint is not left for the good one.
    let one_try = with_policy(
        endpoints(&[dead[0], dead[1]]),
        Policy {
            tries: Some(1),
            ..Policy::default()
        },
    );
    publish_catch_all(&proxy.shared, one_try);
    assert_eq!(proxy.get("x", "/").await.status, 502);
}

#[tokio::test]
async fn ewma_by_annotation_serves_every_request_around_a_dead_endpoint() {
    let a = start_echo("a").await;
    let b = start_echo("b").await;
    let proxy = Proxy::start().await;
    publish_catch_all(
        &proxy.shared,
        with_policy(
            endpoints(&[closed_port().await, a, b]),
            Policy {
                balance: Some(portico::routing::Balance::Ewma),
                ..Policy::default()
            },
        ),
    );
    let mut names = std::collections::HashSet::new();
    let mut conn = proxy.connect().await;
    for _ in 0..30 {
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let response = conn.response().await;
        assert_eq!(response.status, 200);
        names.insert(response.json()["name"].as_str().unwrap().to_string());
    }
    // Both live endpoints get traffic (equal latency, so P2C spreads it).
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_upstream_is_504_by_the_ingress_timeout() {
    let gated = gated_backend().await;
    let proxy = Proxy::start().await;
    publish_catch_all(
        &proxy.shared,
        with_policy(
            endpoints(&[gated.addr]),
            Policy {
                response_timeout: Some(Duration::from_secs(2)),
                ..Policy::default()
            },
        ),
    );
    // The paused clock jumps to the 2 s deadline once everything is idle.
    let response = proxy.get("x", "/").await;
    assert_eq!(response.status, 504);
    drop(gated.release);
}

#[tokio::test(start_paused = true)]
async fn slowloris_client_is_cut_off() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    // Never finishes the head: the header-read timeout (10 s, on the paused clock) closes it,
    // well before hyper's own 30 s default or the 75 s idle timeout would.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf)).await;
    let closed = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
    assert!(closed, "connection still open");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // Other clients are served.
    assert_eq!(proxy.get("x", "/").await.status, 200);
}

// The header timeout also bounds the next head on a kept-alive connection, counted from the end
// of the previous response (the connection loop's timer does this; hyper's own is off).
#[tokio::test(start_paused = true)]
async fn slowloris_on_a_kept_alive_connection_is_cut_off() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let mut conn = proxy.connect().await;
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 200);
    // The next head, a line every 2 s for 24 s: past the 10 s header timeout, well within the
    // 75 s idle timeout. Writes after the close may fail; only the close matters.
    let _ = conn
        .reader
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await;
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = conn.reader.get_mut().write_all(b"X-Slow: 1\r\n").await;
    }
    let mut buf = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), conn.reader.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "connection still open"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_by_length_and_while_streaming() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start().await;
    publish_catch_all(
        &proxy.shared,
        with_policy(
            endpoints(&[echo]),
            Policy {
                body_limit: Some(1000),
                ..Policy::default()
            },
        ),
    );
    let ok = proxy
        .raw(&format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{}",
            "a".repeat(1000)
        ))
        .await;
    assert_eq!(ok.status, 200);
    let big = proxy
        .raw(&format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n{}",
            "a".repeat(1001)
        ))
        .await;
    assert_eq!(big.status, 413);
    assert_eq!(big.text(), "413 Payload Too Large\n");
    // Chunked: nobody knows the size up front; the proxy notices while streaming.
    let chunk = "b".repeat(600);
    let chunked = proxy
        .raw(&format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
        ))
        .await;
    assert_eq!(chunked.status, 413);
    // The default limit (1 MiB, like ingress-nginx) applies without the annotation.
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let over = proxy
        .raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
        .await;
    assert_eq!(over.status, 413);
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_and_open_ones_are_unaffected() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start_with(ProxyOptions {
        max_connections: 1,
        ..ProxyOptions::default()
    })
    .await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let mut first = proxy.connect().await;
    first.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(first.response().await.status, 200);
    // The second connection sits in the backlog: no answer while the first is open.
    let mut second = proxy.connect().await;
    second.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let waiting = tokio::time::timeout(Duration::from_millis(300), second.head()).await;
    assert!(
        waiting.is_err(),
        "second connection was served beyond the limit"
    );
    // The open connection keeps working.
    first.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(first.response().await.status, 200);
    drop(first);
    let (_, status, _) = tokio::time::timeout(BOUND, second.head()).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_reach_x_forwarded_for() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start_with(ProxyOptions {
        proxy_protocol: true,
        ..ProxyOptions::default()
    })
    .await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    // v1, with an incoming X-Forwarded-For: replaced by the client the header names and passed
    // on as X-Original-Forwarded-For (no --trusted-proxies: ingress-nginx.md §5; this asserted
    // "kept and extended" before the controller ConfigMap's defaults arrived).
    let v1 = proxy
        .raw("PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\nGET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n")
        .await;
    assert_eq!(v1.status, 200, "{}", v1.text());
    let json = v1.json();
    assert_eq!(seen(&json, "x-forwarded-for"), ["203.0.113.7"]);
    assert_eq!(seen(&json, "x-original-forwarded-for"), ["198.51.100.1"]);
    assert_eq!(seen(&json, "x-real-ip"), ["203.0.113.7"]);
    // v2, IPv4.
    let mut bytes = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0, 12,
    ];
    bytes.extend_from_slice(&[192, 0, 2, 9, 10, 0, 0, 1, 0xC3, 0x50, 0, 80]);
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut conn = proxy.connect().await;
    conn.send(&bytes).await;
    let v2 = conn.response().await;
    assert_eq!(seen(&v2.json(), "x-forwarded-for"), ["192.0.2.9"]);
    // Without a header the connection is closed.
    let mut conn = proxy.connect().await;
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(BOUND, conn.reader.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
}

#[tokio::test]
async fn untrusted_clients_x_forwarded_for_is_replaced() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start_with(ProxyOptions {
        proxy_protocol: true,
        trusted_proxies: Arc::new(vec!["127.0.0.1/32".parse().unwrap()]),
        ..ProxyOptions::default()
    })
    .await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    // The balancer (127.0.0.1) is trusted to send PROXY; the client it names is not trusted
    // with X-Forwarded-For, so a forged one is dropped.
    let response = proxy
        .raw("PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\nGET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
        .await;
    assert_eq!(seen(&response.json(), "x-forwarded-for"), ["203.0.113.7"]);
}

/// An HTTP/2-only (h2c) backend answering with the version and path it saw.
async fn h2c_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let text = format!("{:?} {}", req.version(), req.uri().path());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn with_protocol(backend: Arc<Backend>, protocol: Protocol) -> Arc<Backend> {
    with_policy(
        backend,
        Policy {
            protocol: Some(protocol),
            ..Policy::default()
        },
    )
}

#[tokio::test]
async fn h2c_backend_gets_http2() {
    let backend = h2c_backend().await;
    let proxy = Proxy::start().await;
    // By appProtocol (kubernetes.io/h2c), as translate sets it.
    let mut by_app = Backend::new(
        endpoints(&[backend]).reference.clone(),
        Target::Endpoints(vec![backend]),
    );
    by_app.app_protocol = Protocol::from_app_protocol("kubernetes.io/h2c");
    publish_catch_all(&proxy.shared, Arc::new(by_app));
    let response = proxy.get("x", "/h2c").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "HTTP/2.0 /h2c");
    // By annotation.
    publish_catch_all(
        &proxy.shared,
        with_protocol(endpoints(&[backend]), Protocol::H2c),
    );
    assert_eq!(proxy.get("x", "/again").await.text(), "HTTP/2.0 /again");
}

/// A raw h2 gRPC-style server: echoes every DATA frame as it arrives, then trailers.
async fn grpc_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        let te = request
                            .headers()
                            .get("te")
                            .map(|v| v.to_str().unwrap_or("").to_string())
                            .unwrap_or_default();
                        let mut body = request.into_body();
                        let response = Response::builder()
                            .header("content-type", "application/grpc")
                            .header("x-te-seen", te)
                            .body(())
                            .unwrap();
                        let mut send = respond.send_response(response, false).unwrap();
                        while let Some(Ok(data)) = body.data().await {
                            let _ = body.flow_control().release_capacity(data.len());
                            if send.send_data(data, false).is_err() {
                                return;
                            }
                        }
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        trailers.insert("grpc-message", "done".parse().unwrap());
                        let _ = send.send_trailers(trailers);
                    });
                }
            });
        }
    });
    addr
}

/// Reads DATA until `want` bytes have arrived.
async fn read_exactly(body: &mut h2::RecvStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let data = tokio::time::timeout(BOUND, body.data())
            .await
            .expect("data within bound")
            .expect("stream open")
            .unwrap();
        let _ = body.flow_control().release_capacity(data.len());
        got.extend_from_slice(&data);
    }
    got
}

#[tokio::test]
async fn grpc_unary_and_bidi_streaming_with_trailers() {
    let backend = grpc_backend().await;
    let proxy = Proxy::start().await;
    let mut by_app = Backend::new(
        endpoints(&[backend]).reference.clone(),
        Target::Endpoints(vec![backend]),
    );
    by_app.app_protocol = Protocol::from_app_protocol("grpc");
    publish_catch_all(&proxy.shared, Arc::new(by_app));

    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = || {
        Request::builder()
            .method("POST")
            .uri("http://grpc.example/echo.Echo/Call")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap()
    };

    // Unary: one message, end of stream, one answer and trailers.
    let mut client = client.ready().await.unwrap();
    let (response, mut send) = client.send_request(request(), false).unwrap();
    send.send_data(Bytes::from_static(b"\0\0\0\0\x05hello"), true)
        .unwrap();
    let response = tokio::time::timeout(BOUND, response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-te-seen"], "trailers");
    let mut body = response.into_body();
    assert_eq!(read_exactly(&mut body, 10).await, b"\0\0\0\0\x05hello");
    let trailers = body.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "done");

    // Bidirectional: each message is answered before the next is sent.
    let mut client = client.ready().await.unwrap();
    let (response, mut send) = client.send_request(request(), false).unwrap();
    send.send_data(Bytes::from_static(b"one"), false).unwrap();
    let response = tokio::time::timeout(BOUND, response)
        .await
        .unwrap()
        .unwrap();
    let mut body = response.into_body();
    assert_eq!(read_exactly(&mut body, 3).await, b"one");
    send.send_data(Bytes::from_static(b"two"), false).unwrap();
    assert_eq!(read_exactly(&mut body, 3).await, b"two");
    send.send_data(Bytes::from_static(b"three"), true).unwrap();
    assert_eq!(read_exactly(&mut body, 5).await, b"three");
    let trailers = tokio::time::timeout(BOUND, body.trailers())
        .await
        .unwrap()
        .unwrap()
        .expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
}

/// An HTTPS (HTTP/1.1 over TLS) backend serving `chain` with `key_pem`.
async fn tls_backend(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key_pem: &str,
) -> SocketAddr {
    tls_backend_with(chain, key_pem, false).await
}

/// A TLS backend speaking HTTP/1.1, or HTTP/2 only (ALPN `h2`, as a GRPCS server) with `h2`.
async fn tls_backend_with(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key_pem: &str,
    h2: bool,
) -> SocketAddr {
    use rustls_pki_types::pem::PemObject;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let mut config = rustls::ServerConfig::builder_with_provider(portico::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    if h2 {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let text = format!("tls {:?} {}", req.version(), req.uri().path());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_backend_without_verification() {
    let cert = support::tls::cert(&["backend.internal"]);
    let addr = tls_backend(vec![cert.der.clone()], &cert.key).await;
    let proxy = Proxy::start().await;
    publish_catch_all(
        &proxy.shared,
        with_protocol(endpoints(&[addr]), Protocol::Https),
    );
    let response = proxy.get("x", "/secure").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "tls HTTP/1.1 /secure");
    // Plain HTTP to the TLS port fails: the protocol really changed.
    publish_catch_all(&proxy.shared, endpoints(&[addr]));
    assert_eq!(proxy.get("x", "/secure").await.status, 502);
}

/// A CA and a leaf it signed for `name`: (CA PEM, leaf DER, leaf key PEM).
fn ca_and_leaf(name: &str) -> (String, rustls_pki_types::CertificateDer<'static>, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (ca.pem(), leaf.der().clone(), leaf_key.serialize_pem())
}

#[tokio::test]
async fn grpcs_backend_gets_http2_over_tls() {
    let cert = support::tls::cert(&["backend.internal"]);
    let addr = tls_backend_with(vec![cert.der.clone()], &cert.key, true).await;
    let proxy = Proxy::start().await;
    publish_catch_all(
        &proxy.shared,
        with_protocol(endpoints(&[addr]), Protocol::Grpcs),
    );
    let response = proxy.get("x", "/pkg.Svc/Call").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "tls HTTP/2.0 /pkg.Svc/Call");
}

#[tokio::test]
async fn https_backend_verified_against_a_ca_for_the_service_name() {
    // The support backends are Service default/svc.
    let (ca_pem, leaf, key) = ca_and_leaf("svc.default.svc");
    let addr = tls_backend(vec![leaf], &key).await;
    let proxy = Proxy::start().await;
    let verified = |ca: &str| Policy {
        protocol: Some(Protocol::Https),
        upstream_tls: Some(portico::routing::UpstreamTls {
            ca_pem: ca.as_bytes().to_vec(),
            secret: "default/ca".into(),
            ..Default::default()
        }),
        ..Policy::default()
    };
    publish_catch_all(
        &proxy.shared,
        with_policy(endpoints(&[addr]), verified(&ca_pem)),
    );
    let response = proxy.get("x", "/v").await;
    assert_eq!(response.status, 200, "{}", response.text());
    // Another CA: the handshake fails, 502.
    let (other_ca, _, _) = ca_and_leaf("svc.default.svc");
    publish_catch_all(
        &proxy.shared,
        with_policy(endpoints(&[addr]), verified(&other_ca)),
    );
    assert_eq!(proxy.get("x", "/v").await.status, 502);
}

/// Several clients, a bounded number of requests, hundreds of table swaps with endpoints
/// coming and going around ones that stay (and dead ones listed now and then): no request
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_never_fails_a_routable_request() {
    const CLIENTS: usize = 4;
    const REQUESTS: usize = 500;
    const SWAPS: usize = 400;
    let stay = [start_echo("stay-a").await, start_echo("stay-b").await];
    let mut come_and_go = Vec::new();
    for i in 0..6 {
        come_and_go.push(start_echo(&format!("cg-{i}")).await);
    }
    let dead = [closed_port().await, closed_port().await];
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&stay));

    let shared = proxy.shared.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swap_count = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let done = done.clone();
        let swap_count = swap_count.clone();
        tokio::spawn(async move {
            let mut swaps = 0;
            while swaps < SWAPS || !done.load(Ordering::SeqCst) {
                let mut addrs = stay.to_vec();
                for (i, a) in come_and_go.iter().enumerate() {
                    if (swaps + i) % 3 != 0 {
                        addrs.push(*a);
                    }
                }
                // A dead endpoint (a pod gone, its EndpointSlice not yet updated) is
                // listed in every fifth table: retries and ejection must hide it.
                if swaps % 5 == 0 {
                    addrs.push(dead[swaps % 2]);
                }
                publish_catch_all(&shared, endpoints(&addrs));
                swaps += 1;
                swap_count.store(swaps, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(200)).await;
                if swaps > SWAPS * 50 {
                    break;
                }
            }
            swaps
        })
    };
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let addr = proxy.addr;
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut conn = Conn::connect(addr).await;
            for i in 0..REQUESTS {
                // Every tenth request on a fresh connection, the rest keep-alive.
                if i % 10 == 0 {
                    conn = Conn::connect(addr).await;
                }
                conn.send(format!("GET /c{c}/{i} HTTP/1.1\r\nHost: churn\r\n\r\n").as_bytes())
                    .await;
                let response = conn.response().await;
                if response.status != 200 {
                    failures.push((i, response.status));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    let during = swap_count.load(Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    let swaps = swapper.await.unwrap();
    println!(
        "churn: {} requests from {CLIENTS} clients, {during} table swaps while they ran \
         ({swaps} in all), {} failed",
        CLIENTS * REQUESTS,
        failures.len()
    );
    assert!(
        during >= SWAPS / 2,
        "only {during} swaps while requests ran"
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
}

/// Certificate replacement under load: HTTPS clients handshake for every request while the
/// Ingress switches between two Secrets, one Secret's certificate is replaced, and the
/// endpoint changes. Every request succeeds with one of the expected certificates, never the
/// generated fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_churn_never_fails_a_handshake_or_request() {
    use support::tls::{app_yaml, cert, tls_secret, Client, TlsProxy};
    const CLIENTS: usize = 2;
    const REQUESTS: usize = 150;
    const SWAPS: usize = 150;
    let host = "churn.example";
    let certs = [cert(&[host]), cert(&[host]), cert(&[host])];
    let backends = [start_echo("one").await, start_echo("two").await];
    let proxy = Arc::new(TlsProxy::start().await);
    let expected: Vec<_> = certs.iter().map(|c| c.der.clone()).collect();
    let docs = move |i: usize| {
        let secret = if i.is_multiple_of(2) {
            "cert-a"
        } else {
            "cert-b"
        };
        vec![
            app_yaml(
                "default",
                "app",
                host,
                &[host],
                secret,
                backends[i % 2],
                &[],
            ),
            tls_secret("default", "cert-a", &certs[0]),
            // cert-b's certificate is replaced every third swap.
            tls_secret("default", "cert-b", &certs[1 + (i / 3) % 2]),
        ]
    };
    proxy.apply(&docs(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swap_count = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (proxy, done, swap_count) = (proxy.clone(), done.clone(), swap_count.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while i < SWAPS || !done.load(Ordering::SeqCst) {
                i += 1;
                proxy.apply(&docs(i));
                swap_count.store(i, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                if i > SWAPS * 50 {
                    break;
                }
            }
            i
        })
    };
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (addr, expected) = (proxy.https, expected.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..REQUESTS {
                let stream = support::tls::connect(addr, Some(host), &[b"http/1.1"]).await;
                let leaf = support::tls::leaf(&stream);
                if !expected.contains(&leaf) {
                    failures.push(format!("request {i}: unexpected certificate"));
                }
                let response = Client::new(stream).await.get(host, "/").await;
                if response.status() != 200 {
                    failures.push(format!("request {i}: {}", response.status()));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    let during = swap_count.load(Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    let swaps = swapper.await.unwrap();
    println!(
        "certificate churn: {} HTTPS requests, {during} configuration swaps while they ran \
         ({swaps} in all), {} failed",
        CLIENTS * REQUESTS,
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_http2_client_connection_is_closed() {
    let echo = start_echo("e").await;
    let proxy = Proxy::start_with(ProxyOptions {
        client_idle_timeout: Duration::from_secs(5),
        ..ProxyOptions::default()
    })
    .await;
    publish_catch_all(&proxy.shared, endpoints(&[echo]));
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = Request::get("http://x/").body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.unwrap().len());
    }
    // The client keeps its handle but sends nothing: GOAWAY and close after the idle time
    // (the paused clock jumps there once everything waits).
    let ended = tokio::time::timeout(Duration::from_secs(60), connection).await;
    assert!(ended.is_ok(), "idle HTTP/2 connection still open");
    drop(client);
}

/// An upstream on raw sockets that answers every request with a keep-alive `200` and counts
/// the connections it accepted.
async fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    support::scripted::scripted(|_| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            support::scripted::Then::KeepOpen,
        )
    })
    .await
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_reused() {
    let (upstream, accepted) = counting_upstream().await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[upstream]));
    // Sequential requests, on one client connection and on new ones: one upstream connection.
    let mut conn = proxy.connect().await;
    for _ in 0..5 {
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let response = conn.response().await;
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "ok");
    }
    for _ in 0..5 {
        assert_eq!(proxy.get("x", "/").await.status, 200);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// `portico_worker_connections{worker}` for each of `count` workers.
/// `count` workers on one port routing everything to `backend`, with `options` and metrics: the
/// address, the metrics, the stop switch and the running workers.
fn start_workers(
    count: usize,
    backend: SocketAddr,
    options: ProxyOptions,
) -> (
    SocketAddr,
    Arc<portico::metrics::Metrics>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    use portico::proxy::{workers, Observe};
    let shared = portico::publish::shared();
    publish_catch_all(&shared, endpoints(&[backend]));
    let metrics = Arc::new(portico::metrics::Metrics::new());
    let sockets = workers::bind("127.0.0.1:0".parse().unwrap(), count).unwrap();
    let addr = sockets[0].local_addr().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let serving = workers::run(
        count,
        shared,
        vec![workers::Listener {
            sockets,
            options: Arc::new(ProxyOptions {
                observe: Observe {
                    metrics: metrics.clone(),
                    access_log: None,
                },
                ..options
            }),
            tls: None,
        }],
        stopped,
    )
    .unwrap();
    (addr, metrics, stop, tokio::spawn(serving))
}

fn worker_connections(metrics: &portico::metrics::Metrics, count: usize) -> Vec<i64> {
    let text = metrics.encode();
    (0..count)
        .map(|worker| {
            let want = format!("portico_worker_connections{{worker=\"{worker}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&want))
                .map_or(0, |v| v.trim().parse().unwrap())
        })
        .collect()
}

// Issue 12: the kernel's SO_REUSEPORT hash put 32 keep-alive connections 65/35 on two workers.
// A worker holding more than another hands the connection it accepted over, so 16 connections
// opened one after another end up 8 and 8 (the hash alone gives an even split one time in five)
// and every one of them is served, by whichever worker holds it.
#[tokio::test]
async fn connections_spread_evenly_over_workers() {
    const WORKERS: usize = 2;
    const CONNS: usize = 16;
    let echo = start_echo("e").await;
    let (addr, metrics, stop, serving) = start_workers(WORKERS, echo, ProxyOptions::default());
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        // Answered: accepted and placed before the next one connects.
        let mut conn = Conn::connect(addr).await;
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(conn.response().await.status, 200);
        conns.push(conn);
    }
    assert_eq!(
        worker_connections(&metrics, WORKERS),
        vec![(CONNS / WORKERS) as i64; WORKERS]
    );
    // Each connection, wherever it was handed, keeps being served.
    for conn in &mut conns {
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(conn.response().await.status, 200);
    }
    drop(conns);
    // Closed connections leave their worker's count (the workers notice within the bound).
    let deadline = tokio::time::Instant::now() + BOUND;
    while worker_connections(&metrics, WORKERS) != vec![0; WORKERS] {
        assert!(tokio::time::Instant::now() < deadline, "counts stayed up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(BOUND, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// Graceful drain with two workers: once stopped, neither worker accepts (the port refuses), a
// request in flight on the second worker's connection (there by the hash or handed over) still
// gets its response, and the workers finish.
#[tokio::test]
async fn every_worker_stops_accepting_and_drains_its_requests() {
    let gated = gated_backend().await;
    let (addr, metrics, stop, serving) = start_workers(2, gated.addr, ProxyOptions::default());
    let idle = Conn::connect(addr).await;
    let deadline = tokio::time::Instant::now() + BOUND;
    while worker_connections(&metrics, 2).iter().sum::<i64>() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "first connection not counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut busy = Conn::connect(addr).await;
    busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await;
    tokio::time::timeout(BOUND, gated.head_seen)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(worker_connections(&metrics, 2), vec![1, 1]);
    stop.send(true).unwrap();
    let deadline = tokio::time::Instant::now() + BOUND;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gated.release.send("done").unwrap();
    let response = busy.response().await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"done"[..])
    );
    drop(idle);
    tokio::time::timeout(BOUND, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_connection_limit_holds_per_listener_across_workers() {
    use portico::proxy::workers;
    let echo = start_echo("e").await;
    let shared = portico::publish::shared();
    publish_catch_all(&shared, endpoints(&[echo]));
    let sockets = workers::bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let addr = sockets[0].local_addr().unwrap();
    assert_eq!(sockets[1].local_addr().unwrap(), addr, "one port for both");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let serving = workers::run(
        2,
        shared,
        vec![workers::Listener {
            sockets,
            options: Arc::new(ProxyOptions {
                max_connections: 1,
                ..ProxyOptions::default()
            }),
            tls: None,
        }],
        stopped,
    )
    .unwrap();
    let serving = tokio::spawn(serving);
    let mut first = Conn::connect(addr).await;
    first.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(first.response().await.status, 200);
    // The kernel spreads new connections over both workers' sockets (by address hash; six
    // leave all of them on the first worker's once in 64 runs): none may be served while the
    // first is open, whichever worker holds it.
    let mut others = Vec::new();
    for _ in 0..6 {
        let mut conn = Conn::connect(addr).await;
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        others.push(conn);
    }
    for conn in &mut others {
        let waiting = tokio::time::timeout(Duration::from_millis(100), conn.head()).await;
        assert!(waiting.is_err(), "served beyond the listener's limit");
    }
    drop(first);
    // Each of the others is answered (and closed, freeing the one slot) in turn.
    for conn in &mut others {
        let (_, status, _) = tokio::time::timeout(BOUND, conn.head()).await.unwrap();
        assert_eq!(status, 200);
    }
    stop.send(true).unwrap();
    tokio::time::timeout(BOUND, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// Branch `newconn`: the protocol sniff of a plain connection and the connection loop share one
// timer and one watch of the listener's stop. A connection still silent (nothing read, or
// fewer bytes than tell HTTP/1 from HTTP/2) when the listener stops is closed by the drain at
// once, not after its header timeout or the drain timeout (an hour each here), and a request served before still works.
#[tokio::test]
async fn connections_still_being_sniffed_do_not_hold_up_the_drain() {
    let echo = start_echo("e").await;
    let (addr, metrics, stop, serving) = start_workers(
        1,
        echo,
        ProxyOptions {
            header_read_timeout: Duration::from_secs(3600),
            drain_timeout: Duration::from_secs(3600),
            ..ProxyOptions::default()
        },
    );
    let mut served = Conn::connect(addr).await;
    served
        .send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(served.response().await.status, 200);
    let silent = Conn::connect(addr).await;
    let mut partial = Conn::connect(addr).await;
    partial.send(b"PRI * HT").await;
    let deadline = tokio::time::Instant::now() + BOUND;
    while worker_connections(&metrics, 1)[0] < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the two connections not counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(BOUND, serving)
        .await
        .expect("the drain waited for connections that sent no request")
        .unwrap()
        .unwrap();
    drop((silent, partial));
}
