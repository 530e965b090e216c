//! ingress-nginx's redirect and upstream-request annotations over real sockets (issue 13):
//! Ingresses are translated from YAML, published to a proxy on 127.0.0.1, and requests go
//! to an echo backend on 127.0.0.1. Each test names the ingress-nginx e2e case it reproduces
//! (`test/e2e/annotations/*.go` in kubernetes/ingress-nginx).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use portico::proxy::{Cidr, ProxyOptions};
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options};
use support::nginx::{echo_service, ingress, n, publish, serve, translate_yaml};
use support::{start_echo, Proxy};

/// redirect.go "should respond with a standard redirect code": `permanent-redirect` alone
/// answers 301 with the URL as written, whatever the path below the rule's path.
#[tokio::test]
async fn permanent_redirect_answers_301_with_the_url() {
    let (proxy, _) = serve(
        &[ingress(
            "redirect",
            "redirect",
            "/something",
            &[(&n("permanent-redirect"), "http://redirect.example.com")],
        )],
        ProxyOptions::default(),
    )
    .await;
    for path in ["/something", "/something/deeper?q=1"] {
        let response = proxy.get("redirect", path).await;
        assert_eq!(response.status, 301, "{path}");
        assert_eq!(
            response.header("location"),
            Some("http://redirect.example.com")
        );
    }
    // Paths outside the Ingress are not redirected (404: nothing else routes them).
    assert_eq!(proxy.get("redirect", "/other").await.status, 404);
}

/// redirect.go "should respond with a custom redirect code": `permanent-redirect-code: 302`.
#[tokio::test]
async fn permanent_redirect_code_sets_the_status() {
    let (proxy, _) = serve(
        &[ingress(
            "redirect",
            "redirect",
            "/something",
            &[
                (&n("permanent-redirect"), "http://redirect.example.com"),
                (&n("permanent-redirect-code"), "302"),
            ],
        )],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy.get("redirect", "/something").await;
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("http://redirect.example.com")
    );
}

/// annotations.md "Temporal Redirect" and redirect.go `Parse`: `temporal-redirect` answers
/// 302 by default, its code annotation changes it, and it wins over `permanent-redirect`.
#[tokio::test]
async fn temporal_redirect_wins_over_permanent() {
    let (proxy, _) = serve(
        &[
            ingress(
                "temporal",
                "t.example",
                "/",
                &[
                    (&n("temporal-redirect"), "https://www.example.com/t?x=1"),
                    (&n("permanent-redirect"), "https://www.example.com/p"),
                ],
            ),
            ingress(
                "temporal-307",
                "t307.example",
                "/",
                &[
                    (&n("temporal-redirect"), "https://www.example.com/"),
                    (&n("temporal-redirect-code"), "307"),
                ],
            ),
        ],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy.get("t.example", "/anything").await;
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("https://www.example.com/t?x=1")
    );
    let response = proxy.get("t307.example", "/").await;
    assert_eq!(response.status, 307);
}

/// Bad input (issue 13): a redirect code outside the accepted set is reported and the
/// default code applies; a URL that is not absolute http(s) is reported and the route keeps
/// serving its backend; other Ingresses are untouched.
#[tokio::test]
async fn invalid_redirects_are_reported_and_the_rest_serves() {
    let (proxy, translation) = serve(
        &[
            ingress(
                "bad-code",
                "code.example",
                "/",
                &[
                    (&n("permanent-redirect"), "http://redirect.example.com"),
                    (&n("permanent-redirect-code"), "999"),
                ],
            ),
            ingress(
                "bad-url",
                "url.example",
                "/",
                &[(&n("permanent-redirect"), "/relative$host")],
            ),
            ingress("fine", "fine.example", "/", &[]),
        ],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy.get("code.example", "/").await;
    assert_eq!(response.status, 301);
    let response = proxy.get("url.example", "/x").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["path"], "/x");
    assert_eq!(proxy.get("fine.example", "/").await.status, 200);
    let invalid: Vec<String> = translation
        .conditions
        .iter()
        .filter(|c| format!("{:?}", c.reason) == "InvalidAnnotation")
        .map(|c| format!("{}: {}", c.object.name, c.message))
        .collect();
    assert_eq!(invalid.len(), 2, "{invalid:?}");
    assert!(
        invalid[0].starts_with(
            "bad-code: annotation nginx.ingress.kubernetes.io/permanent-redirect-code: \"999\""
        ),
        "{invalid:?}"
    );
    assert!(invalid[1].starts_with("bad-url: annotation nginx.ingress.kubernetes.io/permanent-redirect: \"/relative$host\""), "{invalid:?}");
}

/// forcesslredirect.go "should redirect to https": an Ingress without TLS redirects all the
/// same, with 308 and no trailing slash for `/`.
#[tokio::test]
async fn force_ssl_redirect_redirects_without_tls() {
    let host = "forcesslredirect.bar.com";
    let (proxy, _) = serve(
        &[
            ingress("force", host, "/", &[(&n("force-ssl-redirect"), "true")]),
            ingress("plain", "plain.example", "/", &[]),
        ],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy.get(host, "/").await;
    assert_eq!(response.status, 308);
    // forcesslredirect.go expects `https://forcesslredirect.bar.com`: ingress-nginx strips
    // one trailing slash unless `preserve-trailing-slash` is "true"; Portico keeps the
    // request-target (spec §5.5) unless it is "false" (docs/decisions.md).
    assert_eq!(
        response.header("location"),
        Some("https://forcesslredirect.bar.com/")
    );
    let response = proxy.get(&format!("{host}:8080"), "/a/?b=c").await;
    assert_eq!(
        response.header("location"),
        Some("https://forcesslredirect.bar.com/a/?b=c")
    );
    // ACME HTTP-01 challenges are never redirected (ingress-nginx
    // `no-tls-redirect-locations`).
    let response = proxy.get(host, "/.well-known/acme-challenge/token").await;
    assert_eq!(response.status, 200);
    // Without TLS and without the annotation: proxied.
    assert_eq!(proxy.get("plain.example", "/").await.status, 200);
}

/// lua_ingress.lua `redirect_to_https`: behind a TLS-terminating balancer that is trusted
/// (`--trusted-proxies`, ingress-nginx `use-forwarded-headers`), `X-Forwarded-Proto: https`
/// means the client already used HTTPS: no redirect. From an untrusted peer it is ignored.
#[tokio::test]
async fn forwarded_proto_from_a_trusted_balancer_skips_the_redirect() {
    let host = "force.example";
    let ingresses = [ingress(
        "force",
        host,
        "/",
        &[(&n("force-ssl-redirect"), "true")],
    )];
    let request = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Proto: https\r\n\r\n");
    let trusted = ProxyOptions {
        trusted_proxies: Arc::new(vec!["127.0.0.0/8".parse::<Cidr>().expect("cidr")]),
        ..ProxyOptions::default()
    };
    let (proxy, _) = serve(&ingresses, trusted).await;
    assert_eq!(proxy.raw(&request).await.status, 200);
    let plain = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Proto: http\r\n\r\n");
    assert_eq!(proxy.raw(&plain).await.status, 308);

    let elsewhere = ProxyOptions {
        trusted_proxies: Arc::new(vec!["10.0.0.0/8".parse::<Cidr>().expect("cidr")]),
        ..ProxyOptions::default()
    };
    let (proxy, _) = serve(&ingresses, elsewhere).await;
    assert_eq!(proxy.raw(&request).await.status, 308);
    // An empty list trusts every peer's X-Forwarded-For, but not its X-Forwarded-Proto.
    let (proxy, _) = serve(&ingresses, ProxyOptions::default()).await;
    assert_eq!(proxy.raw(&request).await.status, 308);
}

/// upstreamvhost.go "set host to upstreamvhost.bar.com": the upstream sees that Host; the
/// client's stays in X-Forwarded-Host.
#[tokio::test]
async fn upstream_vhost_sets_the_upstream_host() {
    let (proxy, _) = serve(
        &[ingress(
            "vhost",
            "upstreamvhost.foo.com",
            "/",
            &[(&n("upstream-vhost"), "upstreamvhost.bar.com")],
        )],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy.get("upstreamvhost.foo.com", "/").await;
    assert_eq!(response.status, 200);
    let json = response.json();
    assert_eq!(json["host"], "upstreamvhost.bar.com");
    assert_eq!(
        support::seen(&json, "x-forwarded-host"),
        ["upstreamvhost.foo.com"]
    );
}

/// proxy.go "should set proxy_redirect to hello.com goodbye.com" (and nginx's
/// `proxy_redirect` semantics: a prefix of `Location` and of `Refresh`'s URL).
#[tokio::test]
async fn proxy_redirect_rewrites_location_and_refresh() {
    let (proxy, _) = serve(
        &[
            ingress(
                "pair",
                "pair.example",
                "/",
                &[
                    (&n("proxy-redirect-from"), "hello.com"),
                    (&n("proxy-redirect-to"), "goodbye.com"),
                ],
            ),
            ingress(
                "redirect-off",
                "off.example",
                "/",
                &[
                    (&n("proxy-redirect-from"), "off"),
                    (&n("proxy-redirect-to"), "goodbye.com"),
                ],
            ),
        ],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy
        .get(
            "pair.example",
            "/?set=Location:hello.com/a&set=Refresh:5;url=hello.com/b",
        )
        .await;
    assert_eq!(response.header("location"), Some("goodbye.com/a"));
    assert_eq!(response.header("refresh"), Some("5;url=goodbye.com/b"));
    let response = proxy
        .get("pair.example", "/?set=Location:http://hello.com/a")
        .await;
    assert_eq!(
        response.header("location"),
        Some("http://hello.com/a"),
        "a prefix only"
    );
    // proxy.go "should set proxy_redirect to off": nothing rewritten.
    let response = proxy.get("off.example", "/?set=Location:hello.com/a").await;
    assert_eq!(response.header("location"), Some("hello.com/a"));
}

/// proxy.go "should setup proxy cookies": `proxy-cookie-domain: localhost example.org`,
/// `proxy-cookie-path: /one/ /`, as nginx's `proxy_cookie_domain` / `proxy_cookie_path`.
#[tokio::test]
async fn proxy_cookie_domain_and_path_rewrite_set_cookie() {
    let (proxy, _) = serve(
        &[ingress(
            "cookies",
            "cookies.example",
            "/",
            &[
                (&n("proxy-cookie-domain"), "localhost example.org"),
                (&n("proxy-cookie-path"), "/one/ /"),
            ],
        )],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy
        .get(
            "cookies.example",
            "/?set=Set-Cookie:a=1;Domain=localhost;Path=/one/two&set=Set-Cookie:b=2;Domain=other.example;Path=/three",
        )
        .await;
    assert_eq!(
        response.header_all("set-cookie"),
        [
            "a=1;Domain=example.org;Path=/two",
            "b=2;Domain=other.example;Path=/three"
        ]
    );
}

/// serviceupstream.go "when using the default value (false) and enabling in the
/// annotations" / "should use the Service Cluster IP and Port": with `service-upstream:
/// "true"` the one upstream is the ClusterIP and the Service's port, not the endpoints. Here the ClusterIP is the echo backend on 127.0.0.1 and the only
/// endpoint is a closed port, so a 200 proves which one was dialled; without the annotation
/// the same Service answers 502.
#[tokio::test]
async fn service_upstream_dials_the_cluster_ip() {
    let echo = start_echo("cluster-ip").await;
    let closed = support::closed_port().await;
    let service = format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: portico}}
spec: {{controller: portico.dev/ingress-controller}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec:
  clusterIP: 127.0.0.1
  ports: [{{name: http, port: {port}, targetPort: {closed}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: default
  labels: {{kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{{name: http, port: {closed}}}]
endpoints:
- addresses: [\"127.0.0.1\"]
",
        port = echo.port(),
        closed = closed.port()
    );
    let with = ingress(
        "with",
        "with.example",
        "/",
        &[(&n("service-upstream"), "true")],
    )
    .replace("number: 80", &format!("number: {}", echo.port()));
    let without = ingress("without", "without.example", "/", &[])
        .replace("number: 80", &format!("number: {}", echo.port()));
    let translation = translate_yaml(&[service, with, without]);
    let proxy = Proxy::start().await;
    publish(&proxy, translation);
    let response = proxy.get("with.example", "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["name"], "cluster-ip");
    assert_eq!(proxy.get("without.example", "/").await.status, 502);
}

/// alias.go "should return status code 200 for host 'foo' and 404 for 'bar'" and "... for
/// host 'foo' and 'bar'": an alias answers as its host does; the upstream sees the Host the
/// client sent.
#[tokio::test]
async fn server_alias_answers_like_its_host() {
    let (proxy, _) = serve(&[ingress("foo", "foo", "/", &[])], ProxyOptions::default()).await;
    assert_eq!(proxy.get("foo", "/").await.status, 200);
    assert_eq!(proxy.get("bar", "/").await.status, 404);

    let (proxy, _) = serve(
        &[ingress("foo", "foo", "/", &[(&n("server-alias"), "bar")])],
        ProxyOptions::default(),
    )
    .await;
    for host in ["foo", "bar"] {
        let response = proxy.get(host, "/").await;
        assert_eq!(response.status, 200, "{host}");
        assert_eq!(response.json()["host"], host);
    }
}

/// alias.go "should return status code 200 for hosts defined in two ingresses, different
/// path with one alias": the alias of the younger Ingress names the whole host, so the older
/// Ingress's path answers under it too. And (controller.go `createServers`) an alias that is
/// itself a rule host is dropped: the real host keeps its own routes.
#[tokio::test]
async fn server_alias_covers_every_ingress_of_the_host() {
    let older = ingress("app-a", "foo", "/app-a", &[]);
    let younger = ingress(
        "app-b",
        "foo",
        "/app-b",
        &[(&n("server-alias"), "bar, real.example, *.wild.example")],
    )
    .replace("2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z");
    let real = ingress("real", "real.example", "/real", &[]);
    let (proxy, translation) = serve(&[older, younger, real], ProxyOptions::default()).await;
    for host in ["foo", "bar", "x.wild.example"] {
        let response = proxy.get(host, "/app-a").await;
        assert_eq!(response.status, 200, "{host}");
        assert_eq!(response.json()["host"], host);
    }
    assert_eq!(proxy.get("real.example", "/app-a").await.status, 404);
    assert_eq!(proxy.get("real.example", "/real").await.status, 200);
    assert_eq!(translation.table.aliases().len(), 2);
}

/// fromtowwwredirect.go "should redirect from www HTTP to HTTP": `www.HOST` answers 308
/// with `http://HOST:80/foo`; the rule host itself serves.
#[tokio::test]
async fn from_to_www_redirect_redirects_the_other_spelling() {
    let host = "fromtowwwredirect.bar.com";
    let (proxy, translation) = serve(
        &[
            ingress("www", host, "/", &[(&n("from-to-www-redirect"), "true")]),
            // `www.` rule host: the bare name redirects to it; and a name that is a rule
            // host itself never redirects (BuildRedirects skips it).
            ingress(
                "www-first",
                "www.other.example",
                "/",
                &[(&n("from-to-www-redirect"), "true")],
            ),
            ingress(
                "both",
                "both.example",
                "/",
                &[(&n("from-to-www-redirect"), "true")],
            ),
            ingress("both-www", "www.both.example", "/", &[]),
        ],
        ProxyOptions::default(),
    )
    .await;
    let response = proxy.get(&format!("www.{host}"), "/foo").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some("http://fromtowwwredirect.bar.com:80/foo")
    );
    assert_eq!(proxy.get(host, "/foo").await.status, 200);
    let response = proxy.get("other.example:8080", "/").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some("http://www.other.example:8080")
    );
    assert_eq!(proxy.get("www.both.example", "/").await.status, 200);
    let explained =
        portico::explain::explain(&translation, None, &format!("www.{host}"), "/foo", None);
    assert_eq!(
        explained.redirect.location.as_deref(),
        Some("http://fromtowwwredirect.bar.com:80/foo")
    );
}

/// fromtowwwredirect.go "should redirect from www HTTPS to HTTPS" (the scheme part): behind
/// a trusted TLS-terminating balancer the redirect keeps HTTPS and its port.
#[tokio::test]
async fn from_to_www_redirect_keeps_a_trusted_https_scheme() {
    let host = "www-tls.example";
    let trusted = ProxyOptions {
        trusted_proxies: Arc::new(vec!["127.0.0.0/8".parse::<Cidr>().expect("cidr")]),
        ..ProxyOptions::default()
    };
    let (proxy, _) = serve(
        &[ingress(
            "www",
            host,
            "/",
            &[(&n("from-to-www-redirect"), "true")],
        )],
        trusted,
    )
    .await;
    let response = proxy
        .raw(&format!(
            "GET / HTTP/1.1\r\nHost: www.{host}\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n\r\n"
        ))
        .await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some("https://www-tls.example:443")
    );
}

/// configmap.md `force-ssl-redirect` (global) is the annotation's default: every route
/// redirects without TLS, and `force-ssl-redirect: "false"` on an Ingress opts out.
#[test]
fn the_global_force_ssl_redirect_is_the_annotations_default() {
    let echo: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let mut loaded = Loaded::default();
    let documents = [
        echo_service(echo),
        ingress("forced", "on.example", "/", &[]),
        ingress(
            "off",
            "off.example",
            "/",
            &[(&n("force-ssl-redirect"), "false")],
        )
        .replace("name: off", "name: opt-out"),
    ];
    parse_documents("test.yaml", &documents.join("---\n"), &mut loaded);
    let options = Options {
        force_ssl_redirect: true,
        ..Options::default()
    };
    let translation = translate(&loaded.snapshot, &options, &mut Cache::default());
    assert!(translation.table.decide("on.example", "/").ssl_redirect());
    assert!(!translation.table.decide("off.example", "/").ssl_redirect());
}
