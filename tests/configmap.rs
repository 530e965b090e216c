//! The controller ConfigMap (`--configmap`, `ingress-nginx.md` §4, §5) end to end over real
//! sockets: manifests holding the ConfigMap → translate → publish → an HTTPS and an HTTP
//! listener → echo backends. Each test cites the ingress-nginx e2e case it reproduces.

mod support;

use portico::translate::{Options, Reason};
use support::tls::*;
use support::{seen, start_echo, Conn};

/// The controller ConfigMap `portico/portico` with `data`.
fn config_map(data: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "portico", "namespace": "portico"},
        "data": data,
    })
    .to_string()
}

fn with_configmap() -> Options {
    Options {
        configmap: Some(("portico".into(), "portico".into())),
        ..options()
    }
}

/// shop.example with its own certificate; plain HTTP is not redirected, so both listeners
/// proxy to the echo backend.
struct Shop {
    proxy: TlsProxy,
    docs: Vec<String>,
}

async fn shop() -> Shop {
    let proxy = TlsProxy::start().await;
    let backend = start_echo("shop").await;
    let cert = cert(&["shop.example"]);
    let docs = vec![
        app_yaml(
            "shop",
            "shop",
            "shop.example",
            &["shop.example"],
            "shop-tls",
            backend,
            &[("nginx.ingress.kubernetes.io/ssl-redirect", "false")],
        ),
        tls_secret("shop", "shop-tls", &cert),
    ];
    Shop { proxy, docs }
}

impl Shop {
    fn configure(&self, data: &[(&str, &str)]) {
        let mut docs = self.docs.clone();
        docs.push(config_map(data));
        self.proxy.apply_with(&docs, &with_configmap());
    }

    async fn https(&self, path: &str) -> http::Response<bytes::Bytes> {
        let stream = connect(self.proxy.https, Some("shop.example"), &[b"http/1.1"]).await;
        Client::new(stream).await.get("shop.example", path).await
    }

    async fn http(&self, request: &str) -> support::RawResponse {
        let mut conn = Conn::connect(self.proxy.http).await;
        conn.send(request.as_bytes()).await;
        conn.response().await
    }
}

fn sts(response: &http::Response<bytes::Bytes>) -> Vec<&str> {
    response
        .headers()
        .get_all("strict-transport-security")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// ingress-nginx `configmap.md` `hsts` (default true, max-age 31536000, includeSubDomains)
/// and e2e `test/e2e/settings/tls.go` "should configure HSTS policy header": HTTPS answers
/// carry it without any ConfigMap; plain HTTP never does (spec page §5).
#[tokio::test]
async fn hsts_is_on_by_default_on_https_and_never_on_http() {
    let s = shop().await;
    s.proxy.apply(&s.docs);
    let response = s.https("/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(sts(&response), ["max-age=31536000; includeSubDomains"]);
    let plain = s
        .http("GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.header("strict-transport-security"), None);
}

/// ingress-nginx e2e `test/e2e/settings/tls.go`: "setting max-age parameter", "setting
/// includeSubDomains parameter", "setting preload parameter", "overriding what's set from the
/// upstream" (exactly one header, ours), and `hsts: "false"`.
#[tokio::test]
async fn hsts_keys_shape_the_header_and_replace_the_upstreams() {
    let s = shop().await;
    s.configure(&[("hsts-max-age", "86400")]);
    assert_eq!(
        sts(&s.https("/").await),
        ["max-age=86400; includeSubDomains"]
    );
    s.configure(&[
        ("hsts-max-age", "86400"),
        ("hsts-include-subdomains", "false"),
    ]);
    assert_eq!(sts(&s.https("/").await), ["max-age=86400"]);
    s.configure(&[
        ("hsts-max-age", "86400"),
        ("hsts-preload", "true"),
        ("hsts-include-subdomains", "false"),
    ]);
    assert_eq!(sts(&s.https("/").await), ["max-age=86400; preload"]);
    let response = s.https("/?set=strict-transport-security:max-age=1").await;
    assert_eq!(sts(&response), ["max-age=86400; preload"]);
    // Off: nothing added, the upstream's own passes through.
    s.configure(&[("hsts", "false")]);
    assert!(sts(&s.https("/").await).is_empty());
    let response = s.https("/?set=strict-transport-security:max-age=1").await;
    assert_eq!(sts(&response), ["max-age=1"]);
}

/// An invalid value is a condition on the ConfigMap and the default applies (spec page §4);
/// the Ingress keeps serving.
#[tokio::test]
async fn an_invalid_value_is_a_condition_and_the_default_applies() {
    let s = shop().await;
    s.configure(&[("hsts-max-age", "a year"), ("server-tokens", "yes please")]);
    let response = s.https("/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(sts(&response), ["max-age=31536000; includeSubDomains"]);
    assert_eq!(response.headers()["server"], "portico");
    let published = s.proxy.shared.load();
    let invalid: Vec<_> = published
        .translation
        .conditions
        .iter()
        .filter(|c| c.reason == Reason::InvalidConfigMapKey)
        .collect();
    assert_eq!(invalid.len(), 2, "{invalid:?}");
    assert!(invalid
        .iter()
        .all(|c| c.object.to_string() == "ConfigMap portico/portico"));
}

/// ingress-nginx e2e `test/e2e/settings/server_tokens.go` expects no `Server` by default
/// ("should not exists Server header in the response"); Portico deliberately differs: the
/// Ingress conformance suite (spec §7, default_backend.feature) expects a `Server` header, and
/// `Server: portico` carries no version to hide (docs/decisions.md). Either way the upstream's
/// own `Server` (which may carry one) is replaced.
#[tokio::test]
async fn server_tokens_leaves_one_versionless_server_header() {
    let s = shop().await;
    s.configure(&[]);
    let response = s.https("/?set=server:upstream/1.0").await;
    assert_eq!(response.headers()["server"], "portico");
    s.configure(&[("server-tokens", "true")]);
    let response = s.https("/?set=server:upstream/1.0").await;
    assert_eq!(response.headers()["server"], "portico");
}

const FORWARDED: &str = "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\
     X-Forwarded-Port: 1234\r\nX-Forwarded-Proto: myproto\r\nX-Forwarded-For: 1.2.3.4\r\n\
     X-Forwarded-Host: myhost\r\n\r\n";

/// ingress-nginx e2e `test/e2e/settings/forwarded_headers.go`, "should not trust X-Forwarded
/// headers when setting is false".
#[tokio::test]
async fn forwarded_headers_are_not_trusted_by_default() {
    let s = shop().await;
    s.configure(&[("use-forwarded-headers", "false")]);
    let json = s.http(FORWARDED).await.json();
    assert_eq!(json["host"], "shop.example");
    assert_eq!(seen(&json, "x-forwarded-port"), ["80"]);
    assert_eq!(seen(&json, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&json, "x-forwarded-host"), ["shop.example"]);
    assert_eq!(seen(&json, "x-original-forwarded-for"), ["1.2.3.4"]);
    assert_eq!(seen(&json, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&json, "x-real-ip"), ["127.0.0.1"]);
}

/// ingress-nginx e2e `test/e2e/settings/forwarded_headers.go`, "should trust X-Forwarded
/// headers when setting is true" (both steps), then a `proxy-real-ip-cidr` that leaves the
/// peer out.
#[tokio::test]
async fn use_forwarded_headers_trusts_peers_in_proxy_real_ip_cidr() {
    let s = shop().await;
    s.configure(&[("use-forwarded-headers", "true")]);
    let json = s.http(FORWARDED).await.json();
    assert_eq!(json["host"], "myhost");
    assert_eq!(seen(&json, "x-forwarded-host"), ["myhost"]);
    assert_eq!(seen(&json, "x-forwarded-proto"), ["myproto"]);
    assert_eq!(seen(&json, "x-forwarded-port"), ["1234"]);
    assert_eq!(seen(&json, "x-forwarded-for"), ["1.2.3.4"]);
    let json = s
        .http(
            "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\
             X-Forwarded-Host: myhost.com, another.host,example.net\r\n\r\n",
        )
        .await
        .json();
    assert_eq!(json["host"], "myhost.com");
    assert_eq!(seen(&json, "x-forwarded-host"), ["myhost.com"]);

    s.configure(&[
        ("use-forwarded-headers", "true"),
        ("proxy-real-ip-cidr", "10.0.0.0/8, 192.168.0.0/16"),
    ]);
    let json = s.http(FORWARDED).await.json();
    assert_eq!(json["host"], "shop.example");
    assert_eq!(seen(&json, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&json, "x-forwarded-proto"), ["http"]);
}

/// ingress-nginx `configmap.md` `generate-request-id` (default true): generated when absent,
/// passed through when present; `"false"` generates none.
#[tokio::test]
async fn generate_request_id() {
    let s = shop().await;
    s.configure(&[]);
    let get = "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n";
    let json = s.http(get).await.json();
    assert_eq!(seen(&json, "x-request-id")[0].len(), 32);
    let json = s
        .http("GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\nX-Request-ID: mine\r\n\r\n")
        .await
        .json();
    assert_eq!(seen(&json, "x-request-id"), ["mine"]);
    s.configure(&[("generate-request-id", "false")]);
    let json = s.http(get).await.json();
    assert!(seen(&json, "x-request-id").is_empty());
}

/// ingress-nginx `configmap.md` `proxy-body-size` (global `client_max_body_size`; e2e
/// `test/e2e/annotations/proxy.go` checks the same directive per Ingress): a larger declared
/// body is 413, the key winning over `--proxy-body-size`.
#[tokio::test]
async fn proxy_body_size_limits_request_bodies() {
    let s = shop().await;
    s.configure(&[("proxy-body-size", "1k")]);
    let body = "x".repeat(2048);
    let post = |len: usize| {
        format!(
            "POST / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n{}",
            &body[..len]
        )
    };
    assert_eq!(s.http(&post(2048)).await.status, 413);
    assert_eq!(s.http(&post(512)).await.status, 200);
}

/// ingress-nginx `configmap.md` `large-client-header-buffers` (`4 8k`): a request head larger
/// than number × size is refused with 431 (nginx answers 400 or 414 by which line overflows).
#[tokio::test]
async fn large_client_header_buffers_bound_the_request_head() {
    let s = shop().await;
    s.configure(&[("large-client-header-buffers", "2 1k")]);
    let big = "a".repeat(3000);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\nX-Big: {big}\r\n\r\n"
    );
    assert_eq!(s.http(&request).await.status, 431);
    let small = "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n";
    assert_eq!(s.http(small).await.status, 200);
}

/// ingress-nginx e2e `test/e2e/settings/enable_real_ip.go`, "trusts X-Forwarded-For header
/// only when setting is true" and "should not trust X-Forwarded-For header when setting is
/// false".
#[tokio::test]
async fn enable_real_ip_trusts_x_forwarded_for_only() {
    let s = shop().await;
    s.configure(&[("enable-real-ip", "true")]);
    let json = s.http(FORWARDED).await.json();
    assert_eq!(json["host"], "shop.example");
    assert_eq!(seen(&json, "x-forwarded-host"), ["shop.example"]);
    assert_eq!(seen(&json, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&json, "x-forwarded-port"), ["80"]);
    assert_eq!(seen(&json, "x-forwarded-for"), ["1.2.3.4"]);
    s.configure(&[("enable-real-ip", "false")]);
    let json = s.http(FORWARDED).await.json();
    assert_eq!(seen(&json, "x-original-forwarded-for"), ["1.2.3.4"]);
    assert_eq!(seen(&json, "x-forwarded-for"), ["127.0.0.1"]);
}

/// An Ingress for `plain.example` without any TLS section, to the echo backend at `backend`.
fn plain_yaml(backend: std::net::SocketAddr) -> String {
    let ingress = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "plain", "namespace": "plain"},
        "spec": {"rules": [{"host": "plain.example", "http": {"paths": [{"path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "plain-svc", "port": {"number": 80}}}}]}}]},
    });
    let svc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "plain-svc", "namespace": "plain"},
        "spec": {"ports": [{"port": 80}]},
    });
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "plain-svc-1", "namespace": "plain",
            "labels": {"kubernetes.io/service-name": "plain-svc"}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": backend.port()}],
        "endpoints": [{"addresses": [backend.ip().to_string()]}],
    });
    format!("{ingress}\n---\n{svc}\n---\n{slice}\n")
}

/// ingress-nginx `configmap.md` `force-ssl-redirect` ("redirects (308) to HTTPS" even without
/// a TLS section; nginx.tmpl redirects when `ForceSSLRedirect` or the host has a certificate
/// and `SSLRedirect`), which also overrides an Ingress's `ssl-redirect: "false"`; ACME
/// challenges stay exempt. `ssl-redirect: "false"` turns the TLS hosts' redirect off.
#[tokio::test]
async fn force_ssl_redirect_and_ssl_redirect_keys() {
    let proxy = TlsProxy::start().await;
    let backend = start_echo("plain").await;
    let tls_backend = start_echo("secure").await;
    let cert = cert(&["secure.example"]);
    let mut docs = vec![
        plain_yaml(backend),
        app_yaml(
            "secure",
            "secure",
            "secure.example",
            &["secure.example"],
            "secure-tls",
            tls_backend,
            &[],
        ),
        tls_secret("secure", "secure-tls", &cert),
    ];
    let get = |host: &str, path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let addr = proxy.http;
        async move {
            let mut conn = Conn::connect(addr).await;
            conn.send(request.as_bytes()).await;
            conn.response().await
        }
    };
    docs.push(config_map(&[]));
    proxy.apply_with(&docs, &with_configmap());
    assert_eq!(get("plain.example", "/").await.status, 200);
    assert_eq!(get("secure.example", "/").await.status, 308);

    docs.pop();
    docs.push(config_map(&[("ssl-redirect", "false")]));
    proxy.apply_with(&docs, &with_configmap());
    assert_eq!(get("secure.example", "/").await.status, 200);

    docs.pop();
    docs.push(config_map(&[
        ("force-ssl-redirect", "true"),
        ("ssl-redirect", "false"),
    ]));
    proxy.apply_with(&docs, &with_configmap());
    let response = get("plain.example", "/a?b=c").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some("https://plain.example/a?b=c")
    );
    assert_eq!(get("secure.example", "/").await.status, 308);
    let acme = get("plain.example", "/.well-known/acme-challenge/token").await;
    assert_eq!(acme.status, 200, "ACME challenges are never redirected");
    let published = proxy.shared.load();
    assert!(published
        .translation
        .ssl_redirects
        .iter()
        .all(|r| r.redirect && r.set_by == "ConfigMap force-ssl-redirect"));
}

/// ingress-nginx `configmap.md` `keep-alive-requests` (nginx `keepalive_requests`) and
/// `keep-alive: "0"` (`keepalive_timeout 0`); e2e `test/e2e/settings/keep-alive.go` checks the
/// same directives in nginx.conf. The answer that reaches the limit says `Connection: close`
/// and the connection ends after it.
#[tokio::test]
async fn keep_alive_requests_and_keep_alive_zero_close_http1_connections() {
    use tokio::io::AsyncReadExt;
    let s = shop().await;
    s.configure(&[("keep-alive-requests", "2")]);
    let get = b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n";
    let mut conn = Conn::connect(s.proxy.http).await;
    conn.send(get).await;
    let first = conn.response().await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("connection"), None);
    conn.send(get).await;
    let second = conn.response().await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("connection"), Some("close"));
    let mut rest = Vec::new();
    let read = tokio::time::timeout(support::BOUND, conn.reader.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "closed after the limit: {read:?}"
    );

    s.configure(&[("keep-alive", "0")]);
    let mut conn = Conn::connect(s.proxy.http).await;
    conn.send(get).await;
    assert_eq!(conn.response().await.header("connection"), Some("close"));
}

/// An HTTP/1.1 backend that counts the connections it accepted, answering 200 with keep-alive.
async fn counting_backend() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// ingress-nginx `configmap.md` `upstream-keepalive-requests` and
/// `upstream-keepalive-connections` (nginx `keepalive_requests`, `keepalive` in the upstream
/// block; e2e `test/e2e/settings/` has no case that observes them, so the backend counts its
/// connections): by default sequential requests share one upstream connection; with
/// `upstream-keepalive-requests: "2"` every connection carries two; with
/// `upstream-keepalive-connections: "0"` none is kept.
#[tokio::test]
async fn upstream_keepalive_keys_shape_the_upstream_pool() {
    use std::sync::atomic::Ordering;
    let proxy = TlsProxy::start().await;
    let (backend, accepted) = counting_backend().await;
    let docs = vec![plain_yaml(backend)];
    let requests = |n: usize| {
        let addr = proxy.http;
        async move {
            for _ in 0..n {
                let mut conn = Conn::connect(addr).await;
                conn.send(b"GET / HTTP/1.1\r\nHost: plain.example\r\nConnection: close\r\n\r\n")
                    .await;
                assert_eq!(conn.response().await.status, 200);
            }
        }
    };
    let configure = |data: &[(&str, &str)]| {
        let mut docs = docs.clone();
        docs.push(config_map(data));
        proxy.apply_with(&docs, &with_configmap());
    };
    configure(&[]);
    requests(4).await;
    assert_eq!(
        accepted.swap(0, Ordering::SeqCst),
        1,
        "one pooled connection"
    );

    configure(&[("upstream-keepalive-requests", "2")]);
    requests(4).await;
    // The connection from before has carried 4 already: it is closed after its next request.
    assert_eq!(accepted.swap(0, Ordering::SeqCst), 2);

    configure(&[("upstream-keepalive-connections", "0")]);
    requests(3).await;
    // The idle connection left from before carries the first request and is then not kept;
    // each of the other two opens its own.
    assert_eq!(accepted.swap(0, Ordering::SeqCst), 2, "nothing kept");
    requests(3).await;
    assert_eq!(accepted.swap(0, Ordering::SeqCst), 3, "nothing kept");
}

/// `keep-alive: "0"` closes HTTP/1 connections after each answer, but never a 101: that
/// connection becomes the WebSocket tunnel and keeps `Connection: upgrade`.
#[tokio::test]
async fn keep_alive_zero_leaves_an_upgrade_alone() {
    let s = shop().await;
    s.configure(&[("keep-alive", "0")]);
    let mut conn = Conn::connect(s.proxy.http).await;
    conn.send(
        b"GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    let (_, status, headers) = conn.head().await;
    assert_eq!(status, 101);
    let connection: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .collect();
    assert_eq!(connection, ["upgrade"]);
}

/// ingress-nginx e2e `settings/tls.go`, "should not use ports during the HTTP to HTTPS
/// redirection" and "should not use ports or X-Forwarded-Host during the HTTP to HTTPS
/// redirection": with `use-forwarded-headers`, the redirect goes to the trusted
/// `X-Forwarded-Host` without its port; without it, the header is ignored. (ingress-nginx
/// writes `https://example.com`: Portico keeps the `/` of the request-target, spec §5.5.)
#[tokio::test]
async fn the_https_redirect_follows_a_trusted_x_forwarded_host() {
    let proxy = TlsProxy::start().await;
    let backend = start_echo("secure").await;
    let cert = cert(&["secure.example"]);
    let mut docs = vec![
        app_yaml(
            "secure",
            "secure",
            "secure.example",
            &["secure.example"],
            "secure-tls",
            backend,
            &[],
        ),
        tls_secret("secure", "secure-tls", &cert),
    ];
    let get = || {
        let addr = proxy.http;
        async move {
            let mut conn = Conn::connect(addr).await;
            conn.send(
                b"GET / HTTP/1.1\r\nHost: secure.example:8080\r\nX-Forwarded-Host: example.com:80\r\n\
                  Connection: close\r\n\r\n",
            )
            .await;
            conn.response().await
        }
    };
    docs.push(config_map(&[]));
    proxy.apply_with(&docs, &with_configmap());
    let response = get().await;
    assert_eq!(response.status, 308);
    assert_eq!(response.header("location"), Some("https://secure.example/"));
    docs.pop();
    docs.push(config_map(&[("use-forwarded-headers", "true")]));
    proxy.apply_with(&docs, &with_configmap());
    let response = get().await;
    assert_eq!(response.status, 308);
    assert_eq!(response.header("location"), Some("https://example.com/"));
}
