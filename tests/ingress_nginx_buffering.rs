//! ingress-nginx's `proxy-request-buffering` and `client-body-buffer-size` over real sockets
//! (issue 14). Ingresses are translated from YAML and published to a proxy on 127.0.0.1;
//! upstreams are small servers on 127.0.0.1.
//!
//! ingress-nginx's e2e cases only check the generated nginx.conf:
//! `test/e2e/annotations/proxy.go` "should turn off proxy-request-buffering" (the annotation
//! `off` gives `proxy_request_buffering off;`) and `test/e2e/annotations/clientbodybuffersize.go`
//! ("should set client_body_buffer_size to 1000 / 1K / 1k / 1m / 1M", "should not set
//! client_body_buffer_size to invalid 1b"). They are reproduced here by behaviour: with the
//! default `on` the upstream sees the request only once the client has sent all of it, with
//! `off` it sees the head while the body is still coming; the sizes are accepted and `1b` is
//! a condition.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portico::proxy::ProxyOptions;
use portico::publish::Published;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options, Translation};
use support::{start_echo, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const N: &str = "nginx.ingress.kubernetes.io/";

fn ingress(annotations: &[(&str, &str)]) -> String {
    let annotations: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("    {N}{k}: {v:?}"))
        .collect();
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{}\n", annotations.join("\n"))
    };
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: buffering
  namespace: default
  creationTimestamp: \"2020-01-01T00:00:00Z\"
{annotations}spec:
  ingressClassName: portico
  rules:
  - host: buf.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: echo, port: {{number: 80}}}}}}
"
    )
}

fn service(endpoints: &[SocketAddr]) -> String {
    let mut out = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: portico}
spec: {controller: portico.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  ports: [{port: 80, name: http}]
"
    .to_string();
    for (i, addr) in endpoints.iter().enumerate() {
        out.push_str(&format!(
            "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-{i}
  namespace: default
  labels: {{kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{{port: {port}, name: http}}]
endpoints:
- addresses: [\"{ip}\"]
",
            port = addr.port(),
            ip = addr.ip()
        ));
    }
    out
}

fn translate_yaml(documents: &[String]) -> Translation {
    let mut loaded = Loaded::default();
    parse_documents("test.yaml", &documents.join("---\n"), &mut loaded);
    translate(&loaded.snapshot, &Options::default(), &mut Cache::default())
}

async fn serve(endpoints: &[SocketAddr], annotations: &[(&str, &str)]) -> (Proxy, Translation) {
    let translation = translate_yaml(&[service(endpoints), ingress(annotations)]);
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        ..ProxyOptions::default()
    })
    .await;
    proxy.shared.store(Arc::new(Published {
        version: proxy.shared.load().version + 1,
        translation: Arc::new(translation.clone()),
        snapshot: Default::default(),
    }));
    (proxy, translation)
}

/// An upstream counting the request heads it has received (whole heads, body or not); it
/// answers 200 once it has read `content-length` bytes of body.
async fn counting() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let counter = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let end = loop {
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while data.len() - end < length {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!("got {}", data.len() - end);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, heads)
}

/// Waits (bounded: 5 s) until `heads` reaches `n`; whether it did.
async fn reaches(heads: &AtomicUsize, n: usize) -> bool {
    for _ in 0..100 {
        if heads.load(Ordering::SeqCst) >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

const HEAD: &str = "POST / HTTP/1.1\r\nHost: buf.example\r\ncontent-length: 8\r\n\r\n";

/// The default (`on`, ingress-nginx's): the upstream sees nothing while the client is still
/// sending; then the whole request at once.
#[tokio::test]
async fn by_default_the_body_is_read_before_the_upstream_sees_the_request() {
    let (upstream, heads) = counting().await;
    let (proxy, translation) = serve(&[upstream], &[]).await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let mut conn = proxy.connect().await;
    conn.send(HEAD.as_bytes()).await;
    conn.send(b"half").await;
    // Had the proxy streamed, the upstream would have the head by now (see `off` below,
    // which waits the same way for it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(heads.load(Ordering::SeqCst), 0, "upstream saw a head early");
    conn.send(b"rest").await;
    let response = conn.response().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "got 8");
    assert_eq!(heads.load(Ordering::SeqCst), 1);
}

/// `proxy.go` "should turn off proxy-request-buffering": with `off` the upstream gets the
/// head while the body is still on its way.
#[tokio::test]
async fn off_streams_the_body() {
    for value in ["off", "OFF"] {
        let (upstream, heads) = counting().await;
        let (proxy, translation) = serve(&[upstream], &[("proxy-request-buffering", value)]).await;
        assert!(
            translation.conditions.is_empty(),
            "{:?}",
            translation.conditions
        );
        let mut conn = proxy.connect().await;
        conn.send(HEAD.as_bytes()).await;
        conn.send(b"half").await;
        assert!(
            reaches(&heads, 1).await,
            "{value}: the upstream never saw the head"
        );
        conn.send(b"rest").await;
        let response = conn.response().await;
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "got 8");
    }
}

/// A chunked body (no `Content-Length`) over `proxy-body-size` is 413 and never reaches the
/// upstream; under it, it goes out with a `Content-Length`.
#[tokio::test]
async fn chunked_bodies_are_counted_and_limited() {
    let (upstream, heads) = counting().await;
    let (proxy, _) = serve(&[upstream], &[("proxy-body-size", "1k")]).await;
    let chunk = "x".repeat(600);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: buf.example\r\ntransfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let response = proxy.raw(&request).await;
    assert_eq!(response.status, 413);
    assert_eq!(heads.load(Ordering::SeqCst), 0);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: buf.example\r\ntransfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let response = proxy.raw(&request).await;
    assert_eq!(response.status, 200);
    // `counting` reads exactly `content-length` bytes: the body was sent with one.
    assert_eq!(response.text(), "got 600");
}

/// An upstream answering 502 to everything, after reading the head.
async fn bad_gateway() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 502 Bad\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbad",
                    )
                    .await;
            });
        }
    });
    (addr, hits)
}

/// A buffered body is replayed: `proxy-next-upstream http_502` sends an idempotent PUT (and a
/// POST with `non_idempotent`) with its body to the next endpoint.
#[tokio::test]
async fn a_buffered_body_is_replayed_on_retry() {
    let (bad, bad_hits) = bad_gateway().await;
    let echo = start_echo("echo").await;
    for (method, conditions) in [
        ("PUT", "error timeout http_502"),
        ("POST", "error timeout http_502 non_idempotent"),
    ] {
        let (proxy, translation) =
            serve(&[bad, echo], &[("proxy-next-upstream", conditions)]).await;
        assert!(
            translation.conditions.is_empty(),
            "{:?}",
            translation.conditions
        );
        for _ in 0..4 {
            let response = proxy
                .raw(&format!(
                    "{method} / HTTP/1.1\r\nHost: buf.example\r\ncontent-length: 4\r\n\r\nbody"
                ))
                .await;
            assert_eq!(response.status, 200, "{method}");
            assert_eq!(response.json()["body_bytes"], 4, "{method}");
        }
    }
    assert!(bad_hits.load(Ordering::SeqCst) >= 1);
    // Streamed (`off`): the body was not kept, the 502 is the answer.
    let (proxy, _) = serve(
        &[bad, echo],
        &[
            ("proxy-next-upstream", "error timeout http_502"),
            ("proxy-request-buffering", "off"),
        ],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = proxy
            .raw("PUT / HTTP/1.1\r\nHost: buf.example\r\ncontent-length: 4\r\n\r\nbody")
            .await;
        statuses.push(response.status);
    }
    assert!(statuses.contains(&502), "{statuses:?}");
}

/// `proxy-http-version: "1.0"`: a buffered chunked body is counted and sent with its length
/// (no more 411); streamed (`off`) it still is 411.
#[tokio::test]
async fn http_1_0_upstreams_get_a_buffered_body_with_its_length() {
    let echo = start_echo("echo").await;
    let chunked =
        "POST / HTTP/1.1\r\nHost: buf.example\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n";
    let (proxy, _) = serve(&[echo], &[("proxy-http-version", "1.0")]).await;
    let response = proxy.raw(chunked).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["proto"], "HTTP/1.0");
    assert_eq!(response.json()["body_bytes"], 4);
    let (proxy, _) = serve(
        &[echo],
        &[
            ("proxy-http-version", "1.0"),
            ("proxy-request-buffering", "off"),
        ],
    )
    .await;
    assert_eq!(proxy.raw(chunked).await.status, 411);
}

/// `clientbodybuffersize.go`: `1000`, `1K`, `1k`, `1m`, `1M` are accepted; `1b` is not (a
/// condition naming the Ingress and key). `proxy-request-buffering` takes `on`/`off` only.
#[tokio::test]
async fn values_are_validated() {
    let echo = start_echo("echo").await;
    for size in ["1000", "1K", "1k", "1m", "1M"] {
        let t = translate_yaml(&[
            service(&[echo]),
            ingress(&[("client-body-buffer-size", size)]),
        ]);
        assert!(t.conditions.is_empty(), "{size}: {:?}", t.conditions);
    }
    for (key, value) in [
        ("client-body-buffer-size", "1b"),
        ("proxy-request-buffering", "maybe"),
    ] {
        let t = translate_yaml(&[service(&[echo]), ingress(&[(key, value)])]);
        let text = format!("{:?}", t.conditions);
        assert!(
            text.contains(key) && text.contains("buffering"),
            "{key}: {text}"
        );
    }
    // An invalid value leaves the default (`on`): the body is still buffered and served.
    let (proxy, _) = serve(&[echo], &[("proxy-request-buffering", "maybe")]).await;
    let response = proxy
        .raw("POST / HTTP/1.1\r\nHost: buf.example\r\ncontent-length: 4\r\n\r\nbody")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["body_bytes"], 4);
}

/// `proxy-send-timeout` still watches a buffered body: an upstream that takes none of it is
/// cut off (504), as with a streamed one (tests/proxy.rs has the streamed case).
#[tokio::test]
async fn a_buffered_body_the_upstream_does_not_take_is_504() {
    let gated = support::gated_backend().await;
    let (proxy, _) = serve(
        &[gated.addr],
        &[("proxy-send-timeout", "1"), ("proxy-body-size", "0")],
    )
    .await;
    const LEN: usize = 16 << 20;
    let mut conn = proxy.connect().await;
    let head = format!("POST / HTTP/1.1\r\nHost: buf.example\r\ncontent-length: {LEN}\r\n\r\n");
    conn.send(head.as_bytes()).await;
    conn.send(&vec![b'x'; LEN]).await;
    let (_, status, _) = conn.head().await;
    assert_eq!(status, 504);
    drop(gated.release);
}
