//! ingress-nginx's external authentication (`auth-url` & co, issue 15) over real sockets:
//! Ingresses are translated from YAML and published to a proxy on 127.0.0.1; the upstream is
//! an echo backend and the auth service a small server, both on 127.0.0.1. Each test names the
//! ingress-nginx e2e case it reproduces (`test/e2e/annotations/auth.go` in
//! kubernetes/ingress-nginx) or the template lines it follows (`nginx.tmpl`).

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portico::proxy::ProxyOptions;
use portico::publish::Published;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options, Reason, Translation};
use support::{closed_port, seen, start_echo, Proxy};
use tokio::net::TcpListener;

const N: &str = "nginx.ingress.kubernetes.io/";

fn n(name: &str) -> String {
    format!("{N}{name}")
}

/// What the auth service saw: method, path and headers of each request, in order.
type Seen = Arc<Mutex<Vec<(String, String, HeaderMap)>>>;

/// The auth service (and an upstream answering `/error` with 503), by path:
/// `/basic-auth`: 200 with `Authorization: Basic user:password`, else 401 with
/// `WWW-Authenticate` (httpbun's `/basic-auth/user/password`); `/user`: 200 with
/// `X-User: alice`; `/cookies`: 200 with `Set-Cookie: alma=armud`; `/cookie-401`: 401 with a
/// cookie; `/forbidden`: 403; `/teapot`: 418; `/hang`: never answers; `/error`: 503.
async fn start_auth() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        log.lock().unwrap().push((
                            req.method().to_string(),
                            path.clone(),
                            req.headers().clone(),
                        ));
                        let mut response = Response::new(Full::new(Bytes::new()));
                        let status =
                            match path.as_str() {
                                "/basic-auth" => {
                                    // "user:password"
                                    let ok = req.headers().get("authorization").is_some_and(|v| {
                                        v.as_bytes() == b"Basic dXNlcjpwYXNzd29yZA=="
                                    });
                                    if !ok {
                                        response.headers_mut().insert(
                                            "www-authenticate",
                                            "Basic realm=\"Fake Realm\"".parse().unwrap(),
                                        );
                                    }
                                    if ok {
                                        200
                                    } else {
                                        401
                                    }
                                }
                                "/user" => {
                                    response
                                        .headers_mut()
                                        .insert("x-user", "alice".parse().unwrap());
                                    200
                                }
                                "/cookies" => {
                                    response
                                        .headers_mut()
                                        .insert("set-cookie", "alma=armud".parse().unwrap());
                                    200
                                }
                                "/cookie-401" => {
                                    response
                                        .headers_mut()
                                        .insert("set-cookie", "session=gone".parse().unwrap());
                                    401
                                }
                                // Up for its first request only ("auth backend is deleted").
                                "/once" => {
                                    let asked = log
                                        .lock()
                                        .unwrap()
                                        .iter()
                                        .filter(|r| r.1 == "/once")
                                        .count();
                                    let ok = req.headers().get("authorization").is_some_and(|v| {
                                        v.as_bytes() == b"Basic dXNlcjpwYXNzd29yZA=="
                                    });
                                    match (asked, ok) {
                                        (1, true) => 200,
                                        (1, false) => 401,
                                        _ => 502,
                                    }
                                }
                                "/forbidden" => 403,
                                "/teapot" => 418,
                                "/error" => 503,
                                "/hang" => {
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                    200
                                }
                                _ => 404,
                            };
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// One Ingress `name` for `host` and `path` to Service `service`, with `annotations`.
fn ingress(
    name: &str,
    host: &str,
    path: &str,
    service: &str,
    annotations: &[(&str, &str)],
) -> String {
    let annotations: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {v:?}"))
        .collect();
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{}\n", annotations.join("\n"))
    };
    let host = if host.is_empty() {
        String::new()
    } else {
        format!("host: {host}\n    ")
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
  - {host}http:
      paths:
      - path: {path}
        pathType: Prefix
        backend: {{service: {{name: {service}, port: {{number: 80}}}}}}
"
    )
}

/// The IngressClass and a Service `name` with one endpoint at `addr`.
fn service(name: &str, addr: SocketAddr) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: portico}}
spec: {{controller: portico.dev/ingress-controller}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints:
- addresses: [\"{ip}\"]
",
        port = addr.port(),
        ip = addr.ip()
    )
}

struct World {
    proxy: Proxy,
    auth: SocketAddr,
    seen: Seen,
    translation: Translation,
}

impl World {
    /// Publishes `documents` (plus the `echo` and `errors` Services) translated with `options`.
    fn apply(&mut self, documents: &[String], options: &Options, echo: SocketAddr) {
        let mut all = vec![service("echo", echo), service("errors", self.auth)];
        all.extend(documents.iter().cloned());
        let mut loaded = Loaded::default();
        parse_documents("test.yaml", &all.join("---\n"), &mut loaded);
        let translation = translate(&loaded.snapshot, options, &mut Cache::default());
        self.proxy.shared.store(Arc::new(Published {
            version: self.proxy.shared.load().version + 1,
            translation: Arc::new(translation.clone()),
            snapshot: Default::default(),
        }));
        self.translation = translation;
    }
}

/// A proxy, an echo upstream and the auth service; `ingresses(&auth_url_prefix)` is published.
async fn serve(ingresses: impl Fn(&str) -> Vec<String>) -> World {
    serve_with(ingresses, &Options::default(), &[]).await
}

async fn serve_with(
    ingresses: impl Fn(&str) -> Vec<String>,
    options: &Options,
    extra: &[String],
) -> World {
    let echo = start_echo("echo").await;
    let (auth, seen) = start_auth().await;
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        ..ProxyOptions::default()
    })
    .await;
    let mut world = World {
        proxy,
        auth,
        seen,
        translation: Translation::default(),
    };
    let mut documents = ingresses(&format!("http://{auth}"));
    documents.extend(extra.iter().cloned());
    world.apply(&documents, options, echo);
    world
}

fn get(host: &str, path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n")
}

/// auth.go "when external authentication is configured": "should return status code 200 when
/// signed in" and "should redirect to signin url when not signed in" (`rd` is
/// `http://auth` + `url.QueryEscape("/?a=b&c=d")`).
#[tokio::test]
async fn signed_in_passes_and_signed_out_is_redirected_to_signin() {
    let w = serve(|auth| {
        vec![ingress(
            "auth",
            "auth",
            "/",
            "echo",
            &[
                (&n("auth-url"), &format!("{auth}/basic-auth")),
                (&n("auth-signin"), "http://$host/auth/start"),
            ],
        )]
    })
    .await;
    let ok = w
        .proxy
        .raw(&get(
            "auth",
            "/",
            "Authorization: Basic dXNlcjpwYXNzd29yZA==\r\n",
        ))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["name"], "echo");
    let out = w.proxy.get("auth", "/?a=b&c=d").await;
    assert_eq!(out.status, 302);
    assert_eq!(
        out.header("location"),
        Some("http://auth/auth/start?rd=http://auth%2F%3Fa%3Db%26c%3Dd")
    );
}

/// auth.go "when external authentication is configured with a custom redirect param":
/// "should redirect to signin url when not signed in" (`orig=` instead of `rd=`).
#[tokio::test]
async fn signin_redirect_param_names_the_parameter() {
    let w = serve(|auth| {
        vec![ingress(
            "auth",
            "auth",
            "/",
            "echo",
            &[
                (&n("auth-url"), &format!("{auth}/basic-auth")),
                (&n("auth-signin"), "http://$host/auth/start"),
                (&n("auth-signin-redirect-param"), "orig"),
            ],
        )]
    })
    .await;
    let out = w.proxy.get("auth", "/?a=b&c=d").await;
    assert_eq!(out.status, 302);
    assert_eq!(
        out.header("location"),
        Some("http://auth/auth/start?orig=http://auth%2F%3Fa%3Db%26c%3Dd")
    );
}

/// nginx.tmpl `location = /_external-auth-...`: what the auth service gets (the client's
/// headers without the body, its own Host, `X-Original-URL`, `X-Original-Method`,
/// `X-Sent-From`, `X-Real-IP`, `X-Forwarded-For`, `X-Auth-Request-Redirect`, `X-Request-ID`,
/// no `X-Forwarded-Proto`), and a 401 without `auth-signin` passes `WWW-Authenticate`.
#[tokio::test]
async fn the_auth_request_carries_what_ingress_nginx_sends() {
    let w = serve(|auth| {
        vec![ingress(
            "auth",
            "app.example",
            "/",
            "echo",
            &[(&n("auth-url"), &format!("{auth}/basic-auth"))],
        )]
    })
    .await;
    let body = "hello";
    let request = format!(
        "POST /upload?x=1 HTTP/1.1\r\nHost: app.example\r\nContent-Length: {}\r\n\
         X-Forwarded-Proto: https\r\nX-Custom: kept\r\n\r\n{body}",
        body.len()
    );
    let denied = w.proxy.raw(&request).await;
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Basic realm=\"Fake Realm\"")
    );
    let seen = w.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (method, path, headers) = &seen[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/basic-auth"));
    let h = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(h("host"), Some("127.0.0.1".to_string()));
    assert_eq!(
        h("x-original-url"),
        Some("http://app.example/upload?x=1".to_string())
    );
    assert_eq!(h("x-original-method"), Some("POST".to_string()));
    assert_eq!(
        h("x-sent-from"),
        Some("nginx-ingress-controller".to_string())
    );
    assert_eq!(h("x-real-ip"), Some("127.0.0.1".to_string()));
    assert_eq!(h("x-forwarded-for"), Some("127.0.0.1".to_string()));
    assert_eq!(
        h("x-auth-request-redirect"),
        Some("/upload?x=1".to_string())
    );
    assert!(h("x-request-id").is_some_and(|id| !id.is_empty()));
    assert_eq!(h("x-custom"), Some("kept".to_string()));
    assert_eq!(h("x-forwarded-proto"), None);
    assert_eq!(h("content-length"), None);
    assert_eq!(h("x-original-uri"), None, "only with auth-method");
}

/// auth.go "should overwrite Foo header with auth response": a header named in
/// `auth-response-headers` comes from the auth answer (or not at all), never from the client.
#[tokio::test]
async fn auth_response_headers_replace_the_clients() {
    let w = serve(|auth| {
        vec![ingress(
            "auth",
            "auth",
            "/",
            "echo",
            &[
                (&n("auth-url"), &format!("{auth}/user")),
                (&n("auth-response-headers"), "X-User, Foo"),
            ],
        )]
    })
    .await;
    let ok = w
        .proxy
        .raw(&get("auth", "/", "Foo: bar\r\nX-User: mallory\r\n"))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let json = ok.json();
    assert_eq!(seen(&json, "x-user"), vec!["alice"]);
    assert!(seen(&json, "foo").is_empty(), "{json}");
}

/// auth.go "cookie set by external authentication server": "user retains cookie by default",
/// "user does not retain cookie if upstream returns error status code", "user with annotated
/// ingress retains cookie if upstream returns error status code".
#[tokio::test]
async fn auth_cookies_follow_add_header_rules_unless_always_set() {
    let annotations = |auth: &str, always: bool| {
        let mut a = vec![(n("auth-url"), format!("{auth}/cookies"))];
        if always {
            a.push((n("auth-always-set-cookie"), "true".to_string()));
        }
        a
    };
    let pairs = |a: &[(String, String)]| -> Vec<(String, String)> { a.to_vec() };
    let build = move |auth: &str, always: bool| {
        let a = pairs(&annotations(auth, always));
        let refs: Vec<(&str, &str)> = a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vec![
            ingress("app", "cookies", "/", "echo", &refs),
            ingress("app-error", "cookies", "/error", "errors", &refs),
        ]
    };
    let w = serve(move |auth| build(auth, false)).await;
    let ok = w.proxy.get("cookies", "/?a=b&c=d").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header_all("set-cookie"), vec!["alma=armud"]);
    let error = w.proxy.get("cookies", "/error?a=b&c=d").await;
    assert_eq!(error.status, 503);
    assert!(error.header_all("set-cookie").is_empty());

    let w = serve(move |auth| build(auth, true)).await;
    let error = w.proxy.get("cookies", "/error?a=b&c=d").await;
    assert_eq!(error.status, 503);
    assert_eq!(error.header_all("set-cookie"), vec!["alma=armud"]);
}

/// ngx_http_auth_request: 403 is passed on; any other status, an auth service that is down
/// or one that does not answer within the read timeout is an error (500). Never proxied.
#[tokio::test]
async fn refusals_and_failures_never_reach_the_upstream() {
    let down = closed_port().await;
    let w = serve(|auth| {
        vec![
            ingress(
                "forbidden",
                "forbidden",
                "/",
                "echo",
                &[(&n("auth-url"), &format!("{auth}/forbidden"))],
            ),
            ingress(
                "teapot",
                "teapot",
                "/",
                "echo",
                &[(&n("auth-url"), &format!("{auth}/teapot"))],
            ),
            ingress(
                "down",
                "down",
                "/",
                "echo",
                &[(&n("auth-url"), &format!("http://{down}/"))],
            ),
            ingress(
                "hang",
                "hang",
                "/",
                "echo",
                &[
                    (&n("auth-url"), &format!("{auth}/hang")),
                    (&n("proxy-read-timeout"), "1"),
                    (&n("proxy-connect-timeout"), "1"),
                ],
            ),
            ingress(
                "cookie-401",
                "cookie-401",
                "/",
                "echo",
                &[
                    (&n("auth-url"), &format!("{auth}/cookie-401")),
                    (&n("auth-signin"), "https://login.example/start"),
                ],
            ),
        ]
    })
    .await;
    for (host, status) in [
        ("forbidden", 403),
        ("teapot", 500),
        ("down", 500),
        ("hang", 500),
    ] {
        let r = tokio::time::timeout(support::BOUND, w.proxy.get(host, "/"))
            .await
            .expect("bounded");
        assert_eq!(r.status, status, "{host}: {}", r.text());
        assert!(
            !r.text().contains("\"name\""),
            "{host} reached the upstream"
        );
    }
    // The sign-in location adds the auth answer's cookies to its 302.
    let r = w.proxy.get("cookie-401", "/x").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://login.example/start?rd=http://cookie-401%2Fx")
    );
    assert_eq!(r.header_all("set-cookie"), vec!["session=gone"]);
}

/// auth.go "with invalid auth-url should deny whole location": 503 and a condition; other
/// Ingresses keep serving ("keeps processing new ingresses even if one ... is misconfigured").
#[tokio::test]
async fn an_unusable_auth_url_fails_closed() {
    let w = serve(|_| {
        vec![
            ingress(
                "bad",
                "bad",
                "/",
                "echo",
                &[(&n("auth-url"), "https://invalid..auth.url")],
            ),
            ingress(
                "var",
                "var",
                "/",
                "echo",
                &[(&n("auth-url"), "http://$host/oauth2/auth")],
            ),
            ingress("fine", "fine", "/", "echo", &[]),
        ]
    })
    .await;
    assert_eq!(w.proxy.get("bad", "/").await.status, 503);
    assert_eq!(w.proxy.get("var", "/").await.status, 503);
    assert_eq!(w.proxy.get("fine", "/").await.status, 200);
    let denied: Vec<_> = w
        .translation
        .conditions
        .iter()
        .filter(|c| c.reason == Reason::InvalidAnnotation && c.message.contains("auth-url"))
        .collect();
    assert_eq!(denied.len(), 2, "{:?}", w.translation.conditions);
}

/// An auth URL that leads back into Portico onto a route that asks for auth again: the hop
/// header stops it after one round (the inner request gets 503, so the client gets 500).
#[tokio::test]
async fn an_auth_loop_through_portico_is_cut() {
    let echo = start_echo("echo").await;
    let (auth, seen) = start_auth().await;
    let proxy = Proxy::start().await;
    let url = format!("http://{}/check", proxy.addr);
    let mut w = World {
        proxy,
        auth,
        seen,
        translation: Translation::default(),
    };
    w.apply(
        &[ingress("loop", "", "/", "echo", &[(&n("auth-url"), &url)])],
        &Options::default(),
        echo,
    );
    let r = tokio::time::timeout(support::BOUND, w.proxy.get("anything", "/"))
        .await
        .expect("bounded");
    assert_eq!(r.status, 500);
}

/// `auth-method`, `auth-proxy-set-headers` (auth.go `should set "proxy_set_header
/// "My-Custom-Header" "42";" when auth-headers are set`) and `auth-request-redirect`.
#[tokio::test]
async fn auth_method_and_proxy_set_headers_shape_the_auth_request() {
    let headers = "apiVersion: v1
kind: ConfigMap
metadata: {name: auth-headers, namespace: default}
data: {My-Custom-Header: \"42\"}
"
    .to_string();
    let w = serve_with(
        |auth| {
            vec![ingress(
                "auth",
                "auth",
                "/",
                "echo",
                &[
                    (&n("auth-url"), &format!("{auth}/user")),
                    (&n("auth-method"), "GET"),
                    (&n("auth-proxy-set-headers"), "default/auth-headers"),
                    (&n("auth-request-redirect"), "https://app.example/back"),
                ],
            )]
        },
        &Options::default(),
        &[headers],
    )
    .await;
    let r = w
        .proxy
        .raw("DELETE /thing HTTP/1.1\r\nHost: auth\r\n\r\n")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = w.seen.lock().unwrap().clone();
    let (method, _, h) = &seen[0];
    assert_eq!(method, "GET");
    assert_eq!(h.get("x-original-method").unwrap(), "DELETE");
    assert_eq!(h.get("x-original-uri").unwrap(), "/thing");
    assert_eq!(h.get("x-scheme").unwrap(), "http");
    assert_eq!(h.get("my-custom-header").unwrap(), "42");
    assert_eq!(
        h.get("x-auth-request-redirect").unwrap(),
        "https://app.example/back"
    );
}

/// configmap.md `global-auth-url`, `enable-global-auth: "false"` and `no-auth-locations`
/// (default `/.well-known/acme-challenge`): every Ingress is authenticated by the global
/// service unless it opts out or the path is exempt.
#[tokio::test]
async fn global_auth_covers_ingresses_without_their_own() {
    let (probe, _) = start_auth().await;
    // The global URL must be known before translate: a second auth server, same behaviour.
    let configmap = format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: portico, namespace: portico}}
data:
  global-auth-url: http://{probe}/forbidden
"
    );
    let options = Options {
        configmap: Some(("portico".into(), "portico".into())),
        ..Options::default()
    };
    let w = serve_with(
        |_| {
            vec![
                ingress("covered", "covered", "/", "echo", &[]),
                ingress(
                    "acme",
                    "covered",
                    "/.well-known/acme-challenge",
                    "echo",
                    &[],
                ),
                ingress(
                    "out",
                    "out",
                    "/",
                    "echo",
                    &[(&n("enable-global-auth"), "false")],
                ),
            ]
        },
        &options,
        &[configmap],
    )
    .await;
    assert_eq!(w.proxy.get("covered", "/").await.status, 403);
    assert_eq!(
        w.proxy
            .get("covered", "/.well-known/acme-challenge/token")
            .await
            .status,
        200
    );
    assert_eq!(w.proxy.get("out", "/").await.status, 200);
    let unsupported: BTreeMap<_, _> = w
        .translation
        .conditions
        .iter()
        .filter(|c| c.reason == Reason::UnsupportedConfigMapKey)
        .map(|c| (c.object.name.clone(), c.message.clone()))
        .collect();
    assert!(unsupported.is_empty(), "{unsupported:?}");
}

const USER_PASSWORD: &str = "Authorization: Basic dXNlcjpwYXNzd29yZA==\r\n";

/// auth.go "when external authentication with caching is configured" (`auth-cache-key:
/// fixed`, `auth-cache-duration: 200 201 401 30m`, Ingresses for /foo and /bar on two hosts):
/// "should return status code 200 when signed in after auth backend is deleted", "should deny
/// login for different location on same server", "should deny login for different servers".
#[tokio::test]
async fn cached_auth_answers_are_kept_per_host_and_path() {
    let w = serve(|auth| {
        let a = [
            (n("auth-url"), format!("{auth}/once")),
            (n("auth-signin"), "http://$host/auth/start".to_string()),
            (n("auth-cache-key"), "fixed".to_string()),
            (n("auth-cache-duration"), "200 201 401 30m".to_string()),
        ];
        let refs: Vec<(&str, &str)> = a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut all = Vec::new();
        for host in ["auth", "different"] {
            all.push(ingress(&format!("foo-{host}"), host, "/foo", "echo", &refs));
            all.push(ingress(&format!("bar-{host}"), host, "/bar", "echo", &refs));
        }
        all
    })
    .await;
    let r = w.proxy.raw(&get("auth", "/foo", USER_PASSWORD)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The auth service is gone now; the kept answer still signs in /foo on this host.
    let r = w.proxy.raw(&get("auth", "/foo", USER_PASSWORD)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = w.proxy.raw(&get("auth", "/bar", USER_PASSWORD)).await;
    assert_eq!(r.status, 500, "another location is not signed in");
    let r = w.proxy.raw(&get("different", "/foo", USER_PASSWORD)).await;
    assert_eq!(r.status, 500, "another server is not signed in");
    let asked = w.seen.lock().unwrap().len();
    assert_eq!(asked, 3);
}

/// A key with `$http_authorization` keeps one answer per credential: another user is asked
/// about, never served the first one's answer.
#[tokio::test]
async fn the_cache_key_separates_credentials() {
    let w = serve(|auth| {
        vec![ingress(
            "auth",
            "auth",
            "/",
            "echo",
            &[
                (&n("auth-url"), &format!("{auth}/basic-auth")),
                (&n("auth-cache-key"), "$remote_user$http_authorization"),
            ],
        )]
    })
    .await;
    for _ in 0..3 {
        let r = w.proxy.raw(&get("auth", "/", USER_PASSWORD)).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(w.seen.lock().unwrap().len(), 1, "answered from the cache");
    let r = w
        .proxy
        .raw(&get("auth", "/", "Authorization: Basic bWFsbG9yeTp4\r\n"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(w.seen.lock().unwrap().len(), 2);
    // 401 is kept too (the default durations: 200 202 401 5m).
    let r = w.proxy.get("auth", "/").await;
    assert_eq!(r.status, 401);
    let r = w.proxy.get("auth", "/").await;
    assert_eq!(r.status, 401);
    assert_eq!(w.seen.lock().unwrap().len(), 3);
}
