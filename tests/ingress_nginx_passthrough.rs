//! ingress-nginx's SSL passthrough over real sockets (issue 15): `--enable-ssl-passthrough`
//! and the `ssl-passthrough` annotation. Ingresses are translated from YAML and published to
//! an HTTPS listener on 127.0.0.1; passthrough backends are TLS (or raw TCP) servers on
//! 127.0.0.1. The ingress-nginx case reproduced is named on each test
//! (`test/e2e/settings/ssl_passthrough.go` in kubernetes/ingress-nginx).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico::proxy::{self, ProxyOptions, Scheme, TlsListener};
use portico::publish::{Publisher, Shared};
use portico::translate::{Options, Reason, Translation};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use support::tls::{app_yaml, cert, snapshot, tls_secret, TestCert};
use support::{start_echo, BOUND};

const ANNOTATION: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";

fn options(enabled: bool) -> Options {
    Options {
        watch_without_class: true,
        ssl_passthrough: enabled,
        ..Options::default()
    }
}

/// An HTTPS listener with `--enable-ssl-passthrough` (unless `enabled` is false), as `app`
/// runs it, on one published configuration.
struct Portico {
    https: SocketAddr,
    publisher: std::sync::Mutex<Publisher>,
    shared: Shared,
    metrics: Arc<portico::metrics::Metrics>,
}

impl Portico {
    async fn start(tune: impl FnOnce(&mut ProxyOptions)) -> Portico {
        Portico::start_with(Duration::from_secs(10), tune).await
    }

    async fn start_with(
        handshake_timeout: Duration,
        tune: impl FnOnce(&mut ProxyOptions),
    ) -> Portico {
        let metrics = Arc::new(portico::metrics::Metrics::new());
        let publisher = Publisher::new(metrics.clone());
        let shared = publisher.shared().clone();
        let resolver = portico::tls::Resolver::new(
            shared.clone(),
            portico::tls::generated_default().expect("generate"),
        );
        let config = portico::tls::server_config(Arc::new(resolver)).expect("server config");
        let tls = TlsListener {
            acceptor: config.into(),
            handshake_timeout,
        };
        let mut options = ProxyOptions {
            scheme: Scheme::Https,
            ssl_passthrough: true,
            observe: proxy::Observe {
                metrics: metrics.clone(),
                access_log: None,
            },
            ..ProxyOptions::default()
        };
        tune(&mut options);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = listener.local_addr().unwrap();
        tokio::spawn(proxy::serve_tls(
            listener,
            shared.clone(),
            Arc::new(options),
            tls,
            std::future::pending(),
        ));
        Portico {
            https,
            publisher: std::sync::Mutex::new(publisher),
            shared,
            metrics,
        }
    }

    fn apply(&self, docs: &[String], options: &Options) -> Arc<Translation> {
        self.publisher
            .lock()
            .expect("publisher")
            .publish(snapshot(docs), options);
        self.shared.load().translation.clone()
    }
}

/// A TLS server for `host` on 127.0.0.1 answering every request with `body`, with its own
/// certificate (returned: the client trusts exactly that one).
async fn tls_backend(host: &str, body: &'static str) -> (SocketAddr, TestCert) {
    let made = cert(&[host]);
    let key = PrivateKeyDer::from_pem_slice(made.key.as_bytes()).expect("key PEM");
    let config = rustls::ServerConfig::builder_with_provider(portico::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![made.der.clone()], key)
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, made)
}

/// A raw TCP server that records everything each connection sends (never answering), and
/// reports each connection's bytes when it ends (or after `report_after` bytes).
async fn silent_backend(
    report_after: usize,
) -> (SocketAddr, tokio::sync::mpsc::Receiver<(Vec<u8>, bool)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                let mut reported = false;
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    if !reported && seen.len() >= report_after {
                        reported = true;
                        let _ = tx.send((seen.clone(), false)).await;
                    }
                }
                // `true`: the connection was closed (or half-closed) by Portico.
                let _ = tx.send((seen, true)).await;
            });
        }
    });
    (addr, rx)
}

/// A rustls client that trusts only `trusted` (the backend's own certificate).
fn verifying_client(trusted: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(portico::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// `GET /` over a TLS connection to `addr` for `host`, verified with `config`; the body.
async fn get(addr: SocketAddr, host: &str, config: Arc<rustls::ClientConfig>) -> String {
    let fut = async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from(host.to_string()).expect("name");
        let mut tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .expect("TLS handshake with the expected certificate");
        let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(BOUND, fut)
        .await
        .expect("within bound")
}

/// The first bytes a rustls client sends for `host`: its ClientHello.
fn client_hello(host: &str) -> Vec<u8> {
    let provider = portico::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(proxy::NoVerification(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write");
    }
    out
}

/// Reads until the peer closes; `true` when it did within the bound.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let fut = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(BOUND, fut).await.is_ok()
}

fn has_condition(t: &Translation, reason: Reason, needle: &str) -> bool {
    t.conditions
        .iter()
        .any(|c| c.reason == reason && c.message.contains(needle))
}

/// ingress-nginx `settings/ssl_passthrough.go` "should pass unknown traffic to default
/// backend and handle known traffic": the annotated host's TLS reaches its backend untouched
/// (the client verifies the BACKEND's certificate, which Portico does not have), a host
/// without the annotation on the same port is terminated by Portico, and an unknown name gets
/// Portico's default certificate and a 404.
#[tokio::test]
async fn passthrough_host_is_spliced_and_others_are_terminated() {
    let (backend, backend_cert) = tls_backend("pass.example", "from the TLS backend").await;
    let echo = start_echo("echo").await;
    let other_cert = cert(&["other.example"]);
    let portico = Portico::start(|_| {}).await;
    let t = portico.apply(
        &[
            app_yaml(
                "default",
                "pass",
                "pass.example",
                &["pass.example"],
                "pass-tls",
                backend,
                &[(ANNOTATION, "true")],
            ),
            // The passthrough host's own Secret is not needed; another Ingress has one.
            app_yaml(
                "default",
                "other",
                "other.example",
                &["other.example"],
                "other-tls",
                echo,
                &[],
            ),
            tls_secret("default", "other-tls", &other_cert),
        ],
        &options(true),
    );
    assert_eq!(
        t.passthrough.hosts().map(|(h, _)| h).collect::<Vec<_>>(),
        ["pass.example"]
    );

    let body = get(
        portico.https,
        "pass.example",
        verifying_client(&backend_cert.der),
    )
    .await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("from the TLS backend"), "{body}");

    // Same port, another SNI: Portico terminates with the other Ingress's certificate.
    let body = get(
        portico.https,
        "other.example",
        verifying_client(&other_cert.der),
    )
    .await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"echo\"") || body.contains("echo"), "{body}");

    // A name nobody routes: Portico's handshake (its generated certificate), then 404.
    let unknown =
        support::tls::connect(portico.https, Some("unknown.example"), &[b"http/1.1"]).await;
    assert_ne!(support::tls::leaf(&unknown), backend_cert.der);
    let mut client = support::tls::Client::new(unknown).await;
    assert_eq!(client.get("unknown.example", "/").await.status(), 404);

    let metrics = portico.metrics.encode();
    assert!(
        metrics.contains("portico_ssl_passthrough_connections_total{outcome=\"spliced\"} 1"),
        "{metrics}"
    );
}

/// Without `--enable-ssl-passthrough` ingress-nginx does not start its TLS proxy
/// (`nginx.go` `setupSSLProxy`), so the annotation does nothing; Portico says so in a
/// condition and terminates TLS.
#[tokio::test]
async fn without_the_flag_the_annotation_is_reported_and_tls_is_terminated() {
    let (backend, backend_cert) = tls_backend("pass.example", "backend").await;
    let portico = Portico::start(|o| o.ssl_passthrough = false).await;
    let t = portico.apply(
        &[app_yaml(
            "default",
            "pass",
            "pass.example",
            &["pass.example"],
            "pass-tls",
            backend,
            &[(ANNOTATION, "true")],
        )],
        &options(false),
    );
    assert!(t.passthrough.is_empty());
    assert!(has_condition(
        &t,
        Reason::UnsupportedAnnotation,
        "needs --enable-ssl-passthrough"
    ));
    let leaf = support::tls::connect(portico.https, Some("pass.example"), &[b"http/1.1"]).await;
    assert_ne!(support::tls::leaf(&leaf), backend_cert.der);
}

/// A ClientHello without SNI cannot name a passthrough host: Portico's own handshake.
#[tokio::test]
async fn client_hello_without_sni_is_terminated() {
    let (backend, backend_cert) = tls_backend("pass.example", "backend").await;
    let portico = Portico::start(|_| {}).await;
    portico.apply(
        &[app_yaml(
            "default",
            "pass",
            "pass.example",
            &["pass.example"],
            "pass-tls",
            backend,
            &[(ANNOTATION, "true")],
        )],
        &options(true),
    );
    let stream = support::tls::connect(portico.https, None, &[b"http/1.1"]).await;
    assert_ne!(support::tls::leaf(&stream), backend_cert.der);
}

/// A ClientHello arriving in several TCP segments is waited for, then spliced: the backend
/// receives exactly the bytes the client sent, none consumed by the peek.
#[tokio::test]
async fn client_hello_split_over_segments_reaches_the_backend_whole() {
    let hello = client_hello("pass.example");
    let (backend, mut seen) = silent_backend(hello.len()).await;
    let portico = Portico::start(|_| {}).await;
    portico.apply(
        &[app_yaml(
            "default",
            "pass",
            "pass.example",
            &["pass.example"],
            "pass-tls",
            backend,
            &[(ANNOTATION, "true")],
        )],
        &options(true),
    );
    let mut client = TcpStream::connect(portico.https).await.unwrap();
    client.set_nodelay(true).unwrap();
    for piece in hello.chunks(hello.len() / 4 + 1) {
        client.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (bytes, _) = tokio::time::timeout(BOUND, seen.recv())
        .await
        .expect("backend saw the ClientHello within the bound")
        .expect("report");
    assert_eq!(bytes, hello);
    // Half-close: the client is done sending; the backend sees the end, the
    // connection stays open the other way until the backend closes.
    client.shutdown().await.unwrap();
    let (bytes, ended) = tokio::time::timeout(BOUND, seen.recv())
        .await
        .expect("backend saw the end within the bound")
        .expect("report");
    assert!(ended);
    assert_eq!(bytes, hello);
}

/// `hello` with a `padding` extension (RFC 7685) of `n` bytes added: a ClientHello larger than
/// the first peek's buffer, as post-quantum key shares make them.
fn padded(hello: &[u8], n: usize) -> Vec<u8> {
    let be16 = |b: &[u8], at: usize| usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
    let mut out = hello.to_vec();
    // record header (5), handshake header (4), version (2), random (32)
    let mut at = 5 + 4 + 2 + 32;
    at += 1 + usize::from(out[at]); // session id
    at += 2 + be16(&out, at); // cipher suites
    at += 1 + usize::from(out[at]); // compression methods
    let extensions_len = at;
    let grow = 4 + n;
    let new_ext = u16::try_from(be16(&out, extensions_len) + grow).unwrap();
    out[extensions_len..extensions_len + 2].copy_from_slice(&new_ext.to_be_bytes());
    let new_record = u16::try_from(be16(&out, 3) + grow).unwrap();
    out[3..5].copy_from_slice(&new_record.to_be_bytes());
    let hs = (usize::from(out[6]) << 16 | usize::from(out[7]) << 8 | usize::from(out[8])) + grow;
    out[6..9].copy_from_slice(&u32::try_from(hs).unwrap().to_be_bytes()[1..]);
    out.extend_from_slice(&[0, 21]);
    out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
    out.extend(std::iter::repeat_n(0u8, n));
    out
}

/// A 6 KiB ClientHello (more than the peek's first buffer), in segments: still spliced whole.
#[tokio::test]
async fn large_client_hello_is_peeked_whole() {
    let hello = padded(&client_hello("pass.example"), 6000);
    assert!(hello.len() > 6000);
    let (backend, mut seen) = silent_backend(hello.len()).await;
    let portico = Portico::start(|_| {}).await;
    portico.apply(
        &[app_yaml(
            "default",
            "pass",
            "pass.example",
            &["pass.example"],
            "pass-tls",
            backend,
            &[(ANNOTATION, "true")],
        )],
        &options(true),
    );
    let mut client = TcpStream::connect(portico.https).await.unwrap();
    client.set_nodelay(true).unwrap();
    for piece in hello.chunks(1500) {
        client.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (bytes, _) = tokio::time::timeout(BOUND, seen.recv())
        .await
        .expect("within bound")
        .expect("report");
    assert_eq!(bytes, hello);
}

/// The PROXY protocol from a balancer is read before the peek and not passed on: ingress-nginx
/// sends no PROXY header to passthrough backends (`nginx.go`: `ProxyProtocol: false`).
#[tokio::test]
async fn proxy_protocol_is_read_before_the_peek_and_not_forwarded() {
    let hello = client_hello("pass.example");
    let (backend, mut seen) = silent_backend(hello.len()).await;
    let portico = Portico::start(|o| o.proxy_protocol = true).await;
    portico.apply(
        &[app_yaml(
            "default",
            "pass",
            "pass.example",
            &["pass.example"],
            "pass-tls",
            backend,
            &[(ANNOTATION, "true")],
        )],
        &options(true),
    );
    let mut client = TcpStream::connect(portico.https).await.unwrap();
    client
        .write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 443\r\n")
        .await
        .unwrap();
    client.write_all(&hello).await.unwrap();
    let (bytes, _) = tokio::time::timeout(BOUND, seen.recv())
        .await
        .expect("within bound")
        .expect("report");
    assert_eq!(bytes, hello);
}

/// Slowloris: a client that starts a ClientHello and stops is closed when the handshake
/// timeout (here 300ms) runs out, not held open by the peek.
#[tokio::test]
async fn incomplete_client_hello_is_closed_at_the_handshake_timeout() {
    let portico = Portico::start_with(Duration::from_millis(300), |_| {}).await;
    let (backend, _seen) = silent_backend(1).await;
    portico.apply(
        &[app_yaml(
            "default",
            "pass",
            "pass.example",
            &["pass.example"],
            "pass-tls",
            backend,
            &[(ANNOTATION, "true")],
        )],
        &options(true),
    );
    let hello = client_hello("pass.example");
    let mut client = TcpStream::connect(portico.https).await.unwrap();
    client.write_all(&hello[..20]).await.unwrap();
    assert!(closed(&mut client).await, "not closed within the bound");
    let metrics = portico.metrics.encode();
    assert!(
        metrics.contains("portico_tls_handshake_failures_total{reason=\"timeout\"} 1"),
        "{metrics}"
    );
    // Nothing at all: closed too.
    let mut idle = TcpStream::connect(portico.https).await.unwrap();
    assert!(closed(&mut idle).await, "not closed within the bound");
}

/// A huge record (length beyond 2^14) or garbage is not waited for: Portico's handshake
/// refuses it and the connection is closed.
#[tokio::test]
async fn huge_record_or_garbage_is_closed() {
    let portico = Portico::start(|_| {}).await;
    let (backend, _seen) = silent_backend(1).await;
    portico.apply(
        &[app_yaml(
            "default",
            "pass",
            "pass.example",
            &["pass.example"],
            "pass-tls",
            backend,
            &[(ANNOTATION, "true")],
        )],
        &options(true),
    );
    for bytes in [
        &[22u8, 3, 1, 0xff, 0xff, 1, 0, 0][..],
        b"\x00\x01garbage garbage\r\n\r\n",
    ] {
        let mut client = TcpStream::connect(portico.https).await.unwrap();
        client.write_all(bytes).await.unwrap();
        assert!(
            closed(&mut client).await,
            "not closed within the bound: {bytes:?}"
        );
    }
}

/// A passthrough backend that accepts and never answers keeps only its own connection: the
/// splice is closed by the idle timeout (here 300ms), and other hosts are served meanwhile.
#[tokio::test]
async fn silent_backend_is_closed_by_the_idle_timeout() {
    let hello = client_hello("pass.example");
    let (backend, mut seen) = silent_backend(hello.len()).await;
    let echo = start_echo("echo").await;
    let portico = Portico::start(|o| o.passthrough_idle_timeout = Duration::from_millis(300)).await;
    portico.apply(
        &[
            app_yaml(
                "default",
                "pass",
                "pass.example",
                &["pass.example"],
                "pass-tls",
                backend,
                &[(ANNOTATION, "true")],
            ),
            app_yaml(
                "default",
                "other",
                "other.example",
                &["other.example"],
                "other-tls",
                echo,
                &[],
            ),
        ],
        &options(true),
    );
    let mut client = TcpStream::connect(portico.https).await.unwrap();
    client.write_all(&hello).await.unwrap();
    let (bytes, _) = tokio::time::timeout(BOUND, seen.recv())
        .await
        .expect("within bound")
        .expect("report");
    assert_eq!(bytes, hello);
    let other = support::tls::connect(portico.https, Some("other.example"), &[b"http/1.1"]).await;
    let mut other = support::tls::Client::new(other).await;
    assert_eq!(other.get("other.example", "/").await.status(), 200);
    assert!(
        closed(&mut client).await,
        "splice not closed within the bound"
    );
}

/// No endpoint answers (connection refused): the client's connection is closed and counted.
#[tokio::test]
async fn unreachable_backend_closes_the_connection() {
    let dead = support::closed_port().await;
    let portico = Portico::start(|_| {}).await;
    portico.apply(
        &[app_yaml(
            "default",
            "pass",
            "pass.example",
            &["pass.example"],
            "pass-tls",
            dead,
            &[(ANNOTATION, "true")],
        )],
        &options(true),
    );
    let mut client = TcpStream::connect(portico.https).await.unwrap();
    client
        .write_all(&client_hello("pass.example"))
        .await
        .unwrap();
    assert!(closed(&mut client).await);
    let metrics = portico.metrics.encode();
    assert!(
        metrics.contains("portico_ssl_passthrough_connections_total{outcome=\"connect_failed\"} 1"),
        "{metrics}"
    );
}

/// An Ingress with a path other than `/`, a wildcard host, or another annotation: what
/// ingress-nginx does (`controller.go`: only the `/` location is passed through, "Ignoring SSL
/// Passthrough for location"), with conditions.
#[tokio::test]
async fn translation_rules_and_conditions() {
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let with_path = |name: &str, host: &str, path: &str, annotations: &[(&str, &str)]| {
        app_yaml("default", name, host, &[host], "x", backend, annotations).replacen(
            "\"path\":\"/\"",
            &format!("\"path\":\"{path}\""),
            1,
        )
    };
    let portico = Portico::start(|_| {}).await;
    let t = portico.apply(
        &[
            with_path("nopath", "nopath.example", "/api", &[(ANNOTATION, "true")]),
            with_path("wild", "*.wild.example", "/", &[(ANNOTATION, "true")]),
            with_path(
                "more",
                "more.example",
                "/",
                &[
                    (ANNOTATION, "true"),
                    ("nginx.ingress.kubernetes.io/proxy-body-size", "1m"),
                ],
            ),
            with_path(
                "auth",
                "auth.example",
                "/",
                &[
                    (ANNOTATION, "true"),
                    (
                        "nginx.ingress.kubernetes.io/whitelist-source-range",
                        "10.0.0.0/8",
                    ),
                ],
            ),
            with_path("bad", "bad.example", "/", &[(ANNOTATION, "yes")]),
            // Access control on another path of a passthrough host: the splice would bypass it.
            with_path("open", "guarded.example", "/", &[(ANNOTATION, "true")]),
            with_path(
                "guard",
                "guarded.example",
                "/admin",
                &[(
                    "nginx.ingress.kubernetes.io/auth-url",
                    "http://auth.example/check",
                )],
            ),
            with_path("off", "off.example", "/", &[(ANNOTATION, "false")]),
            // Portico's spelling wins over ingress-nginx's.
            with_path(
                "spelled",
                "spelled.example",
                "/",
                &[
                    (ANNOTATION, "true"),
                    ("portico.dev/ssl-passthrough", "false"),
                ],
            ),
        ],
        &options(true),
    );
    assert_eq!(
        t.passthrough.hosts().map(|(h, _)| h).collect::<Vec<_>>(),
        ["more.example"]
    );
    assert!(has_condition(
        &t,
        Reason::InvalidAnnotation,
        "host nopath.example is not spliced"
    ));
    assert!(has_condition(
        &t,
        Reason::InvalidAnnotation,
        "host *.wild.example is not spliced"
    ));
    assert!(has_condition(
        &t,
        Reason::UnsupportedAnnotation,
        "proxy-body-size apply to plain HTTP only"
    ));
    assert!(has_condition(
        &t,
        Reason::InvalidAnnotation,
        "whitelist-source-range cannot be enforced"
    ));
    assert!(has_condition(
        &t,
        Reason::InvalidAnnotation,
        "\"yes\" is not a boolean"
    ));
    assert!(has_condition(
        &t,
        Reason::InvalidAnnotation,
        "Ingress default/guard sets nginx.ingress.kubernetes.io/auth-url on this host"
    ));
    // The host without passthrough keeps being terminated, its routes served over HTTP.
    assert!(t
        .conditions
        .iter()
        .all(|c| !c.message.contains("off.example")));
}
