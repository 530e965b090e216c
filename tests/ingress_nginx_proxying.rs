//! ingress-nginx's retry, upstream-protocol and access-log annotations over real sockets
//! (issue 14): `proxy-next-upstream`, `proxy-next-upstream-timeout`, `proxy-http-version`,
//! `enable-access-log`. Ingresses are
//! translated from YAML and published to a proxy on 127.0.0.1; upstreams are small servers on
//! 127.0.0.1 that answer a fixed status (or never). ingress-nginx has no e2e case for these
//! annotations beyond its template tests; the cases follow nginx's `proxy_next_upstream`
//! documentation, which ingress-nginx passes the value to.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico::access_log::AccessLog;
use portico::metrics::Metrics;
use portico::proxy::{Observe, ProxyOptions};
use portico::translate::{Options, Translation};
use support::{closed_port, start_echo, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One Ingress `name` for `host` and `path` to the Service `echo`, with `annotations`
/// (`key: value` lines), plus whatever `extra` YAML documents say.
fn ingress(name: &str, host: &str, path: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {v:?}"))
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
  name: {name}
  namespace: default
  creationTimestamp: \"2020-01-01T00:00:00Z\"
{annotations}spec:
  ingressClassName: portico
  rules:
  - host: {host}
    http:
      paths:
      - path: {path}
        pathType: Prefix
        backend: {{service: {{name: echo, port: {{number: 80}}}}}}
"
    )
}

/// The IngressClass, the Service `echo` and its endpoints: loopback endpoints differ by port,
/// so each is its own EndpointSlice with its own number for the port named `http`.
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

fn translate_yaml(documents: &[String], options: &Options) -> Translation {
    support::translate_documents(documents, options)
}

fn publish(proxy: &Proxy, translation: Translation) {
    proxy.publish_translation(translation);
}

const N: &str = "nginx.ingress.kubernetes.io/";

fn n(name: &str) -> String {
    format!("{N}{name}")
}

/// An upstream answering every request with `status` and body `name` (one request per
/// connection), counting the requests it saw; `status` 0 never answers.
struct Fixed {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

async fn fixed(status: u16, name: &'static str) -> Fixed {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                if status == 0 {
                    // Hold the connection open without answering, for a bounded time.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let response = format!(
                    "HTTP/1.1 {status} Fixed\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Fixed { addr, hits }
}

/// A proxy routing `retry.example` to `endpoints` with `annotations`.
async fn serve(
    endpoints: &[SocketAddr],
    annotations: &[(&str, &str)],
    options: ProxyOptions,
) -> (Proxy, Translation) {
    let pairs: Vec<(String, String)> = annotations
        .iter()
        .map(|(k, v)| (n(k), v.to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let translation = translate_yaml(
        &[
            service(endpoints),
            ingress("retry", "retry.example", "/", &pairs),
        ],
        &Options::default(),
    );
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        ..options
    })
    .await;
    publish(&proxy, translation.clone());
    (proxy, translation)
}

async fn statuses(proxy: &Proxy, method: &str, count: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..count {
        let request = if method == "POST" {
            "POST / HTTP/1.1\r\nHost: retry.example\r\ncontent-length: 4\r\n\r\nbody".to_string()
        } else {
            format!("{method} / HTTP/1.1\r\nHost: retry.example\r\n\r\n")
        };
        out.push(proxy.raw(&request).await.status);
    }
    out
}

/// e2e annotations/proxy.go "should build proxy next upstream" writes `error timeout
/// http_502` into nginx.conf; here what nginx then does: a 502 from one endpoint goes to the other, so every
/// GET gets the good answer; the failing endpoint was asked (round-robin starts on it at
/// least once in four requests).
#[tokio::test]
async fn http_502_goes_to_the_next_endpoint() {
    let bad = fixed(502, "bad").await;
    let good = fixed(200, "good").await;
    let (proxy, translation) = serve(
        &[bad.addr, good.addr],
        &[("proxy-next-upstream", "error timeout http_502")],
        ProxyOptions::default(),
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    for _ in 0..4 {
        let response = proxy.get("retry.example", "/").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "good");
    }
    assert!(bad.hits.load(Ordering::SeqCst) >= 1);
    // POST is not idempotent (no `non_idempotent`): never replayed, the 502 is the answer.
    assert!(statuses(&proxy, "POST", 4).await.contains(&502));
}

/// ingress-nginx's default `error timeout`: an upstream's 502 is the answer.
#[tokio::test]
async fn by_default_statuses_are_answers() {
    let bad = fixed(502, "bad").await;
    let good = fixed(200, "good").await;
    let (proxy, _) = serve(&[bad.addr, good.addr], &[], ProxyOptions::default()).await;
    let seen = statuses(&proxy, "GET", 4).await;
    assert!(seen.contains(&502) && seen.contains(&200), "{seen:?}");
}

/// `proxy-next-upstream-tries: 1`, or `off`, and a 502 is the answer; `http_503` does not
/// retry a 502.
#[tokio::test]
async fn off_and_other_statuses_do_not_retry() {
    let bad = fixed(502, "bad").await;
    let good = fixed(200, "good").await;
    for annotations in [
        vec![("proxy-next-upstream", "off")],
        vec![("proxy-next-upstream", "http_503")],
        vec![
            ("proxy-next-upstream", "http_502"),
            ("proxy-next-upstream-tries", "1"),
        ],
    ] {
        let (proxy, _) = serve(
            &[bad.addr, good.addr],
            &annotations,
            ProxyOptions::default(),
        )
        .await;
        let seen = statuses(&proxy, "GET", 4).await;
        assert!(seen.contains(&502), "{annotations:?} {seen:?}");
    }
}

/// A refused connection is the `error` condition: retried by default (on any method, nothing
/// was sent), not with `off`.
#[tokio::test]
async fn off_stops_retrying_connect_failures() {
    let closed = closed_port().await;
    let echo = start_echo("echo").await;
    let (proxy, _) = serve(&[closed, echo], &[], ProxyOptions::default()).await;
    let seen = statuses(&proxy, "POST", 4).await;
    assert!(seen.iter().all(|s| *s == 200), "{seen:?}");
    let (proxy, _) = serve(
        &[closed, echo],
        &[("proxy-next-upstream", "off")],
        ProxyOptions::default(),
    )
    .await;
    let seen = statuses(&proxy, "GET", 4).await;
    assert!(seen.contains(&502), "{seen:?}");
}

/// The default's `timeout`: an endpoint that does not answer within `proxy-read-timeout` is
/// left for the next one (idempotent requests without a body); with `error` alone it is a 504.
#[tokio::test]
async fn timeout_goes_to_the_next_endpoint_by_default() {
    let silent = fixed(0, "silent").await;
    let good = fixed(200, "good").await;
    let (proxy, _) = serve(
        &[silent.addr, good.addr],
        &[("proxy-read-timeout", "1")],
        ProxyOptions::default(),
    )
    .await;
    let seen = statuses(&proxy, "GET", 2).await;
    assert_eq!(seen, vec![200, 200]);
    assert!(silent.hits.load(Ordering::SeqCst) >= 1);
    let (proxy, _) = serve(
        &[silent.addr, good.addr],
        &[
            ("proxy-read-timeout", "1"),
            ("proxy-next-upstream", "error"),
        ],
        ProxyOptions::default(),
    )
    .await;
    let seen = statuses(&proxy, "GET", 2).await;
    assert!(seen.contains(&504), "{seen:?}");
}

/// `proxy-next-upstream-timeout`: once it has passed, no new attempt starts (here 1 s, spent
/// waiting on the silent endpoint, so its timeout is the answer).
#[tokio::test]
async fn next_upstream_timeout_bounds_the_attempts() {
    let silent = fixed(0, "silent").await;
    let good = fixed(200, "good").await;
    let (proxy, _) = serve(
        &[silent.addr, good.addr],
        &[
            ("proxy-read-timeout", "1"),
            ("proxy-next-upstream-timeout", "1"),
        ],
        ProxyOptions::default(),
    )
    .await;
    let seen = statuses(&proxy, "GET", 2).await;
    assert!(seen.contains(&504), "{seen:?}");
}

/// Invalid values are conditions naming the Ingress and the key; the default applies.
#[tokio::test]
async fn invalid_values_are_conditions() {
    let good = fixed(200, "good").await;
    let (proxy, translation) = serve(
        &[good.addr],
        &[
            ("proxy-next-upstream", "error http_501"),
            ("proxy-next-upstream-timeout", "soon"),
            ("enable-access-log", "sometimes"),
            ("proxy-buffering", "always"),
        ],
        ProxyOptions::default(),
    )
    .await;
    let invalid: Vec<String> = translation
        .conditions
        .iter()
        .filter(|c| format!("{:?}", c.reason) == "InvalidAnnotation")
        .map(|c| format!("{}: {}", c.object.name, c.message))
        .collect();
    assert_eq!(invalid.len(), 4, "{invalid:?}");
    assert!(invalid
        .iter()
        .all(|m| m.starts_with("retry: annotation nginx.ingress.kubernetes.io/")));
    assert_eq!(proxy.get("retry.example", "/").await.status, 200);
}

/// e2e annotations/log.go "set access_log off" (which checks nginx.conf): `enable-access-log:
/// "false"` drops that Ingress's lines (the request is still served and counted); other
/// Ingresses still log.
#[tokio::test]
async fn enable_access_log_false_drops_the_lines() {
    let echo = start_echo("echo").await;
    let translation = translate_yaml(
        &[
            service(&[echo]),
            ingress(
                "quiet",
                "quiet.example",
                "/",
                &[(&n("enable-access-log"), "false")],
            ),
            ingress(
                "loud",
                "loud.example",
                "/",
                &[(&n("enable-access-log"), "true")],
            ),
        ],
        &Options::default(),
    );
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let metrics = Arc::new(Metrics::new());
    let (log, mut rx) = AccessLog::channel(64, metrics.access_log_dropped());
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        observe: Observe {
            metrics,
            access_log: Some(log),
        },
        ..ProxyOptions::default()
    })
    .await;
    publish(&proxy, translation);
    assert_eq!(proxy.get("quiet.example", "/").await.status, 200);
    assert_eq!(proxy.get("loud.example", "/").await.status, 200);
    let entry = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an access log line")
        .expect("the log is open");
    assert_eq!(entry.host, "loud.example");
    assert!(rx.try_recv().is_err());
}

/// e2e annotations/proxy.go "should change the default proxy HTTP version" (`1.0` in
/// nginx.conf): the upstream is asked in HTTP/1.0, and a body of unknown length, which
/// HTTP/1.0 cannot frame (nginx would have buffered it to count it), is refused with 411.
#[tokio::test]
async fn proxy_http_version_1_0_speaks_http_1_0() {
    let echo = start_echo("echo").await;
    let (proxy, translation) = serve(
        &[echo],
        &[("proxy-http-version", "1.0")],
        ProxyOptions::default(),
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    for _ in 0..2 {
        let response = proxy.get("retry.example", "/").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.json()["proto"], "HTTP/1.0");
    }
    let response = proxy
        .raw("POST / HTTP/1.1\r\nHost: retry.example\r\ncontent-length: 4\r\n\r\nbody")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["body_bytes"], 4);
    // A chunked body is buffered (`proxy-request-buffering` `on`) and sent with its length;
    // streamed (`off`) it cannot be framed for HTTP/1.0: 411 (tests/ingress_nginx_buffering.rs).
    let response = proxy
        .raw("POST / HTTP/1.1\r\nHost: retry.example\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["body_bytes"], 4);
    // `1.1` (and no annotation): HTTP/1.1, chunked bodies stream.
    let (proxy, _) = serve(
        &[echo],
        &[("proxy-http-version", "1.1")],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy
        .raw("POST / HTTP/1.1\r\nHost: retry.example\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["proto"], "HTTP/1.1");
}

/// A mirror target: records each request head it gets (and its body length by
/// `content-length`), answers 200, or never with `answer: false`.
struct Recorder {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn recorder(answer: bool) -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_lowercase());
                if !answer {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 500 Mirror\r\ncontent-length: 6\r\nconnection: close\r\n\r\nmirror")
                    .await;
            });
        }
    });
    Recorder { addr, heads }
}

impl Recorder {
    /// Waits (bounded) until `n` heads have arrived.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..500 {
            let heads = self.heads.lock().unwrap().clone();
            if heads.len() >= n {
                return heads;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} mirrored requests, got {:?}",
            self.heads.lock().unwrap()
        );
    }
}

/// e2e annotations/mirror.go "should set mirror-target to https://test.env.com/$request_uri"
/// (nginx.conf there; here what nginx does with it): a copy of the request goes to the
/// target with `$request_uri` filled in and `Host` the target's host; the client gets the
/// upstream's answer, never the mirror's (which answers 500 here).
#[tokio::test]
async fn mirror_target_gets_a_copy_and_its_answer_is_discarded() {
    let echo = start_echo("echo").await;
    let mirror = recorder(true).await;
    let target = format!("http://{}/$request_uri", mirror.addr);
    let (proxy, translation) = serve(
        &[echo],
        &[("mirror-target", target.as_str())],
        ProxyOptions::default(),
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let response = proxy.get("retry.example", "/a/b?q=1").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["path"], "/a/b?q=1");
    let heads = mirror.wait_for(1).await;
    assert!(
        heads[0].starts_with("get //a/b?q=1 http/1.1\r\n"),
        "{heads:?}"
    );
    assert!(heads[0].contains("\r\nhost: 127.0.0.1\r\n"), "{heads:?}");
}

/// e2e annotations/mirror.go "should set mirror-target to http://localhost/mirror" and
/// "should disable mirror-request-body": a literal path gets the request's query; a request
/// with a body is mirrored only with `mirror-request-body: "off"`, then without the body;
/// `mirror-host` sets the copy's `Host`.
#[tokio::test]
async fn mirror_host_and_request_body() {
    let echo = start_echo("echo").await;
    let mirror = recorder(true).await;
    let target = format!("http://{}/mirror", mirror.addr);
    let (proxy, _) = serve(
        &[echo],
        &[
            ("mirror-target", target.as_str()),
            ("mirror-host", "copy.example"),
            ("mirror-request-body", "off"),
        ],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy
        .raw("POST /p?x=1 HTTP/1.1\r\nHost: retry.example\r\ncontent-length: 4\r\n\r\nbody")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["body_bytes"], 4);
    let heads = mirror.wait_for(1).await;
    assert!(
        heads[0].starts_with("post /mirror?x=1 http/1.1\r\n"),
        "{heads:?}"
    );
    assert!(heads[0].contains("\r\nhost: copy.example\r\n"), "{heads:?}");
    assert!(!heads[0].contains("content-length: 4"), "{heads:?}");

    // Default `mirror-request-body: on`: a buffered body (`proxy-request-buffering` `on`) is
    // copied too (the recorder sees its length); a streamed one (`off`) is not kept, so that
    // request is not mirrored (counted as skipped); one without a body is.
    let copied = recorder(true).await;
    let target = format!("http://{}/mirror", copied.addr);
    let (proxy, _) = serve(
        &[echo],
        &[("mirror-target", target.as_str())],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy
        .raw("POST /p HTTP/1.1\r\nHost: retry.example\r\ncontent-length: 4\r\n\r\nbody")
        .await;
    assert_eq!(response.status, 200);
    let heads = copied.wait_for(1).await;
    assert!(
        heads[0].starts_with("post /mirror http/1.1\r\n"),
        "{heads:?}"
    );
    assert!(heads[0].contains("content-length: 4"), "{heads:?}");
    let mirror = recorder(true).await;
    let target = format!("http://{}/mirror", mirror.addr);
    let (proxy, _) = serve(
        &[echo],
        &[
            ("mirror-target", target.as_str()),
            ("proxy-request-buffering", "off"),
        ],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy
        .raw("POST /p HTTP/1.1\r\nHost: retry.example\r\ncontent-length: 4\r\n\r\nbody")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(proxy.get("retry.example", "/after").await.status, 200);
    let heads = mirror.wait_for(1).await;
    assert!(
        heads[0].starts_with("get /mirror http/1.1\r\n"),
        "{heads:?}"
    );
    assert_eq!(mirror.heads.lock().unwrap().len(), 1);
}

/// A mirror that never answers does not hold up the main requests (each is bounded here at
/// 5 s, against the mirror's 10 s timeout).
#[tokio::test]
async fn a_hanging_mirror_never_slows_the_main_request() {
    let echo = start_echo("echo").await;
    let mirror = recorder(false).await;
    let target = format!("http://{}/", mirror.addr);
    let (proxy, _) = serve(
        &[echo],
        &[("mirror-target", target.as_str())],
        ProxyOptions::default(),
    )
    .await;
    for i in 0..3 {
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            proxy.get("retry.example", &format!("/{i}")),
        )
        .await
        .expect("the main request is answered while the mirror hangs");
        assert_eq!(response.status, 200);
    }
    mirror.wait_for(3).await;
}

/// An unusable target (an unknown variable, a metadata address) is a condition naming the
/// Ingress and the key; the Ingress is served without mirroring.
#[tokio::test]
async fn unusable_mirror_targets_are_conditions() {
    let echo = start_echo("echo").await;
    for target in ["http://m.example/$remote_addr", "http://169.254.169.254/"] {
        let (proxy, translation) = serve(
            &[echo],
            &[("mirror-target", target)],
            ProxyOptions::default(),
        )
        .await;
        let invalid: Vec<String> = translation
            .conditions
            .iter()
            .map(|c| format!("{}: {}", c.object.name, c.message))
            .collect();
        assert_eq!(invalid.len(), 1, "{invalid:?}");
        assert!(
            invalid[0].starts_with("retry: annotation nginx.ingress.kubernetes.io/mirror-target"),
            "{invalid:?}"
        );
        assert_eq!(proxy.get("retry.example", "/").await.status, 200);
    }
}
