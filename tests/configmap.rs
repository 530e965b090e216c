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
    assert!(response.headers().get("server").is_none());
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

/// ingress-nginx e2e `test/e2e/settings/server_tokens.go`: "should not exists Server header
/// in the response" (the default, `more_clear_headers Server`) and "should exists Server
/// header in the response when is enabled".
#[tokio::test]
async fn server_tokens_decides_the_server_header() {
    let s = shop().await;
    s.configure(&[]);
    let response = s.https("/?set=server:upstream/1.0").await;
    assert!(response.headers().get("server").is_none());
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
