//! ingress-nginx's error pages over real sockets: `default-backend`, `custom-http-errors`
//! (annotation and ConfigMap key), `disable-proxy-intercept-errors`. Manifests are translated
//! as the controller would, published to a proxy on 127.0.0.1, and the answers compared with
//! what ingress-nginx's e2e tests expect (each test names the case it reproduces).

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portico::publish::Published;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{error_pages, translate, Cache, Options, Reason, Translation};
use serde_json::Value;
use support::{start_echo, Proxy, RawResponse, BOUND};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

/// The application: `/status/NNN` answers NNN with the body `app NNN` (httpbun's
/// `/status/{code}`, which the e2e tests use); `?endless=1` makes that body never end.
/// Anything else is `200 app`. Counts the requests it answers.
async fn start_app() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, Infallible>(app(req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

fn app(req: Request<Incoming>) -> Response<Body> {
    let code = req
        .uri()
        .path()
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let endless = req.uri().query().is_some_and(|q| q.contains("endless=1"));
    let body = if endless {
        // Never ends: only a proxy that drops it unread can answer.
        let chunks = futures_util::stream::repeat_with(|| {
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[b'x'; 16 * 1024])))
        });
        StreamBody::new(chunks).boxed()
    } else {
        Full::new(Bytes::from(format!("app {}", code.as_u16()))).boxed()
    };
    let mut response = Response::new(body);
    *response.status_mut() = code;
    response
}

/// A Service `name` (port 80, named `http`) with one endpoint at `addr` (none when `None`).
fn service(name: &str, addr: Option<SocketAddr>) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: web}}\n\
         spec: {{ports: [{{name: http, port: 80}}]}}\n---\n"
    );
    if let Some(addr) = addr {
        text.push_str(&format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-1, namespace: web, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: {}}}]\n\
             endpoints: [{{addresses: [\"{}\"]}}]\n---\n",
            addr.port(),
            addr.ip()
        ));
    }
    text
}

/// An Ingress `name` for host `host`, path `/` to `backend:80`, with annotations.
fn ingress(name: &str, host: &str, backend: &str, annotations: &[(&str, &str)]) -> String {
    let mut text = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: web\n  annotations:\n    kubernetes.io/ingress.class: portico\n"
    );
    for (k, v) in annotations {
        text.push_str(&format!("    {k}: {v:?}\n"));
    }
    text.push_str(&format!(
        "spec:\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {backend}, port: {{number: 80}}}}}}}}\n---\n"
    ));
    text
}

fn load(yaml: &str, options: &Options) -> Translation {
    let mut loaded = Loaded::default();
    parse_documents("test.yaml", yaml, &mut loaded);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    translate(&loaded.snapshot, options, &mut Cache::default())
}

fn publish(proxy: &Proxy, translation: Translation) {
    let version = proxy.shared.load().version + 1;
    proxy.shared.store(Arc::new(Published {
        version,
        translation: Arc::new(translation),
        snapshot: Default::default(),
    }));
}

/// `GET`-like request with extra header lines, on a fresh connection, bounded in time.
async fn request(proxy: &Proxy, method: &str, host: &str, path: &str, extra: &str) -> RawResponse {
    let text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
    tokio::time::timeout(BOUND, proxy.raw(&text))
        .await
        .expect("answered in time")
}

/// What the echo backend saw, from its JSON answer.
fn seen(response: &RawResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "not echo JSON ({e}): {} {:?}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
    })
}

fn header<'a>(seen: &'a Value, name: &str) -> Option<&'a str> {
    seen["headers"][name][0].as_str()
}

fn options() -> Options {
    Options {
        annotation_class: "portico".into(),
        ..Options::default()
    }
}

const NGINX: &str = "nginx.ingress.kubernetes.io/";

fn ann(name: &str) -> String {
    format!("{NGINX}{name}")
}

/// ingress-nginx `test/e2e/annotations/disableproxyintercepterrors.go`, "configures Nginx
/// correctly", second half ("with intercept enabled"): `custom-http-errors: 404` with
/// `default-backend: echo`; the upstream's 404 is answered by the echo Service: status 200
/// (its own), `x-code=404`, `x-ingress-name`, `x-service-name` of the routed Service,
/// `x-request-id` passed on. Also `test/e2e/annotations/customhttperrors.go` ("using the
/// custom default-backend from annotation for upstream"): the annotation's backend answers.
#[tokio::test]
async fn listed_upstream_status_is_answered_by_the_default_backend_annotation() {
    let (app_addr, _) = start_app().await;
    let errors = start_echo("errors").await;
    let codes = ann("custom-http-errors");
    let default_backend = ann("default-backend");
    let yaml = service("httpbun", Some(app_addr))
        + &service("echo", Some(errors))
        + &ingress(
            "pie.foo.com",
            "pie.foo.com",
            "httpbun",
            &[(&codes, "404"), (&default_backend, "echo")],
        );
    let translation = load(&yaml, &options());
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let proxy = Proxy::start().await;
    publish(&proxy, translation);

    let r = request(
        &proxy,
        "GET",
        "pie.foo.com",
        "/status/404?a=1",
        "x-request-id: proxy_intercept_errors\r\naccept: text/html\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let s = seen(&r);
    assert_eq!(s["name"], "errors");
    assert_eq!(s["method"], "GET");
    // nginx: `rewrite (.*) / break;` keeps the arguments.
    assert_eq!(s["path"], "/?a=1");
    assert_eq!(header(&s, "x-code"), Some("404"));
    assert_eq!(header(&s, "x-ingress-name"), Some("pie.foo.com"));
    assert_eq!(header(&s, "x-namespace"), Some("web"));
    assert_eq!(header(&s, "x-service-name"), Some("httpbun"));
    assert_eq!(header(&s, "x-service-port"), Some("80"));
    assert_eq!(header(&s, "x-request-id"), Some("proxy_intercept_errors"));
    assert_eq!(header(&s, "x-original-uri"), Some("/status/404?a=1"));
    assert_eq!(header(&s, "x-format"), Some("text/html"));
    assert_eq!(header(&s, "host"), Some("pie.foo.com"));
    assert_eq!(header(&s, "x-forwarded-for"), Some("127.0.0.1"));

    // Not listed: the upstream's own answer.
    let r = request(&proxy, "GET", "pie.foo.com", "/status/500", "").await;
    assert_eq!((r.status, r.body.as_slice()), (500, b"app 500".as_slice()));
    let r = request(&proxy, "GET", "pie.foo.com", "/", "").await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"app 200".as_slice()));
}

/// Without a client `X-Request-ID`, the upstream and the error backend see the same
/// generated one (`$req_id`), and no `X-Format` is sent without an `Accept`.
#[tokio::test]
async fn generated_request_id_is_shared_and_empty_headers_are_not_sent() {
    let (app_addr, _) = start_app().await;
    let errors = start_echo("errors").await;
    let codes = ann("custom-http-errors");
    let default_backend = ann("default-backend");
    // The routed Service is the echo too, so its request id can be read: `/status/...` is
    // not special to it, so make the error backend the one that answers via a 503 from
    // httpbun and compare with a direct request's id shape.
    let yaml = service("httpbun", Some(app_addr))
        + &service("echo", Some(errors))
        + &ingress(
            "ids",
            "ids.example",
            "httpbun",
            &[(&codes, "503"), (&default_backend, "echo")],
        );
    let proxy = Proxy::start().await;
    publish(&proxy, load(&yaml, &options()));
    let r = request(&proxy, "GET", "ids.example", "/status/503", "").await;
    let s = seen(&r);
    let id = header(&s, "x-request-id").expect("a request id");
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(header(&s, "x-format"), None);
}

/// ingress-nginx `test/e2e/annotations/disableproxyintercepterrors.go`, first half ("with
/// intercept disabled"): `disable-proxy-intercept-errors: "true"` lets the upstream's 404
/// through unchanged.
#[tokio::test]
async fn disable_proxy_intercept_errors_lets_the_upstream_status_through() {
    let (app_addr, _) = start_app().await;
    let errors = start_echo("errors").await;
    let codes = ann("custom-http-errors");
    let default_backend = ann("default-backend");
    let disable = ann("disable-proxy-intercept-errors");
    let yaml = service("httpbun", Some(app_addr))
        + &service("echo", Some(errors))
        + &ingress(
            "pie.foo.com",
            "pie.foo.com",
            "httpbun",
            &[
                (&codes, "404"),
                (&default_backend, "echo"),
                (&disable, "true"),
            ],
        );
    let translation = load(&yaml, &options());
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let proxy = Proxy::start().await;
    publish(&proxy, translation);
    let r = request(&proxy, "GET", "pie.foo.com", "/status/404", "").await;
    assert_eq!((r.status, r.body.as_slice()), (404, b"app 404".as_slice()));
}

/// ingress-nginx `test/e2e/annotations/default_backend.go`, "should use a custom default
/// backend as upstream": the routed Service `invalid` does not exist, so the
/// `default-backend` Service answers the request as it came (same path), with `x-code=503`,
/// `x-ingress-name`, `x-service-name=invalid` and the client's `x-request-id`; its own status
/// (200) reaches the client.
#[tokio::test]
async fn default_backend_answers_for_a_service_without_endpoints() {
    let errors = start_echo("errors").await;
    let default_backend = ann("default-backend");
    let yaml = service("echo", Some(errors))
        + &service("empty", None)
        + &ingress(
            "default-backend",
            "default-backend",
            "invalid",
            &[(&default_backend, "echo")],
        )
        + &ingress(
            "no-endpoints",
            "no-endpoints.example",
            "empty",
            &[(&default_backend, "echo")],
        );
    let proxy = Proxy::start().await;
    publish(&proxy, load(&yaml, &options()));

    let r = request(
        &proxy,
        "GET",
        "default-backend",
        "/alma/armud",
        "x-request-id: something-unique\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let s = seen(&r);
    assert_eq!(s["name"], "errors");
    assert_eq!(s["path"], "/alma/armud");
    assert_eq!(header(&s, "x-code"), Some("503"));
    assert_eq!(header(&s, "x-ingress-name"), Some("default-backend"));
    assert_eq!(header(&s, "x-service-name"), Some("invalid"));
    assert_eq!(header(&s, "x-request-id"), Some("something-unique"));

    // A Service that exists but has no endpoints: the same.
    let r = request(
        &proxy,
        "POST",
        "no-endpoints.example",
        "/x",
        "content-length: 0\r\n",
    )
    .await;
    let s = seen(&r);
    assert_eq!(
        (s["name"].as_str(), s["method"].as_str()),
        (Some("errors"), Some("POST"))
    );
    assert_eq!(header(&s, "x-service-name"), Some("empty"));
}

/// A `default-backend` Service without endpoints is not used (ingress-nginx: "custom backend
/// is valid only if contains at least one endpoint"): the request gets Portico's 503.
#[tokio::test]
async fn default_backend_without_endpoints_is_not_used() {
    let default_backend = ann("default-backend");
    let yaml = service("echo", None)
        + &ingress("a", "a.example", "invalid", &[(&default_backend, "echo")]);
    let translation = load(&yaml, &options());
    let proxy = Proxy::start().await;
    publish(&proxy, translation);
    let r = request(&proxy, "GET", "a.example", "/", "").await;
    assert_eq!(r.status, 503);
}

/// ingress-nginx `test/e2e/annotations/customhttperrors.go`, "configures Nginx correctly when
/// enabled": without a `default-backend` annotation the listed errors go to the global
/// default backend (`upstream-default-backend`, here `--default-backend-service`), and
/// `test/e2e/defaultbackend/custom_default_backend.go`: that Service's 200 reaches the client.
/// The ConfigMap's `custom-http-errors` does the same for Ingresses without the annotation
/// (nginx.tmpl's `http`-level `error_page`), even when they set `default-backend`; an
/// Ingress's own list replaces the ConfigMap's.
#[tokio::test]
async fn global_default_backend_answers_the_annotation_and_configmap_lists() {
    let (app_addr, _) = start_app().await;
    let global = start_echo("global").await;
    let custom = start_echo("custom").await;
    let codes = ann("custom-http-errors");
    let default_backend = ann("default-backend");
    let yaml = service("app", Some(app_addr))
        + &service("custom", Some(custom))
        + "apiVersion: v1\nkind: Service\nmetadata: {name: fallback, namespace: infra}\nspec: {ports: [{port: 80}]}\n---\n"
        + &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: fallback-1, namespace: infra, labels: {{kubernetes.io/service-name: fallback}}}}\naddressType: IPv4\nports: [{{name: \"\", port: {}}}]\nendpoints: [{{addresses: [\"127.0.0.1\"]}}]\n---\n",
            global.port()
        )
        + &ingress("annotated", "annotated.example", "app", &[(&codes, "404,500")])
        + &ingress("plain", "plain.example", "app", &[])
        + &ingress(
            "custom-only",
            "custom-only.example",
            "app",
            &[(&default_backend, "custom")],
        );
    // The controller ConfigMap (`--configmap`), with one entry ingress-nginx would skip.
    let yaml = yaml
        + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: portico, namespace: infra}\n\
           data: {custom-http-errors: \"503, 502,abc\"}\n---\n";
    let options = Options {
        default_backend_service: Some(("infra".into(), "fallback".into())),
        configmap: Some(("infra".into(), "portico".into())),
        ..options()
    };
    let translation = load(&yaml, &options);
    let conditions: Vec<String> = translation
        .conditions
        .iter()
        .map(|c| format!("{} {:?} {}", c.object, c.reason, c.message))
        .collect();
    assert_eq!(conditions.len(), 1, "{conditions:#?}");
    assert!(
        conditions[0].starts_with("ConfigMap infra/portico InvalidConfigMapKey")
            && conditions[0].contains("\"abc\""),
        "{conditions:#?}"
    );
    let proxy = Proxy::start().await;
    publish(&proxy, translation);

    let r = request(&proxy, "GET", "annotated.example", "/status/500", "").await;
    let s = seen(&r);
    assert_eq!((r.status, s["name"].as_str()), (200, Some("global")));
    assert_eq!(header(&s, "x-code"), Some("500"));
    // The annotation's list replaces the ConfigMap's for this Ingress.
    let r = request(&proxy, "GET", "annotated.example", "/status/503", "").await;
    assert_eq!((r.status, r.body.as_slice()), (503, b"app 503".as_slice()));

    let r = request(&proxy, "GET", "plain.example", "/status/503", "").await;
    let s = seen(&r);
    assert_eq!(
        (s["name"].as_str(), header(&s, "x-code")),
        (Some("global"), Some("503"))
    );
    assert_eq!(header(&s, "x-ingress-name"), Some("plain"));
    let r = request(&proxy, "GET", "plain.example", "/status/404", "").await;
    assert_eq!(r.status, 404);

    // `default-backend` alone does not send the ConfigMap's statuses to its Service.
    let r = request(&proxy, "GET", "custom-only.example", "/status/503", "").await;
    assert_eq!(seen(&r)["name"], "global");

    // A request no Ingress routes goes to the global default backend (spec §3.7) as before.
    let r = request(&proxy, "GET", "nobody.example", "/x", "").await;
    assert_eq!((r.status, seen(&r)["name"].as_str()), (200, Some("global")));
}

/// nginx's `error_page` also covers the answers nginx makes itself: an upstream that cannot
/// be reached (502) is answered by the error backend when 502 is listed.
#[tokio::test]
async fn portico_own_error_is_answered_by_the_error_backend() {
    let errors = start_echo("errors").await;
    let down = support::closed_port().await;
    let codes = ann("custom-http-errors");
    let default_backend = ann("default-backend");
    let yaml = service("down", Some(down))
        + &service("echo", Some(errors))
        + &ingress(
            "down",
            "down.example",
            "down",
            &[(&codes, "502"), (&default_backend, "echo")],
        );
    let proxy = Proxy::start().await;
    publish(&proxy, load(&yaml, &options()));
    let r = request(&proxy, "GET", "down.example", "/x", "").await;
    let s = seen(&r);
    assert_eq!((r.status, header(&s, "x-code")), (200, Some("502")));
    assert_eq!(header(&s, "x-original-uri"), Some("/x"));
}

/// `custom-http-errors` in the ConfigMap as ingress-nginx's `configmap.go` reads it: entries
/// trimmed, non-numbers and statuses outside 300–599 (`filterErrors`) skipped with a warning.
#[test]
fn configmap_list_keeps_the_valid_entries() {
    let (settings, problems) = error_pages::from_configmap(&BTreeMap::from([(
        "custom-http-errors".to_string(),
        " 503,302 , 200,600,x".to_string(),
    )]));
    assert_eq!(settings.custom_http_errors, vec![302, 503]);
    assert_eq!(problems.len(), 3, "{problems:?}");
}

/// When the error backend itself fails, the client gets Portico's answer for that failure
/// (nginx: no `error_page` inside the error location, `recursive_error_pages off`), not a hang
/// and not the original answer's body.
#[tokio::test]
async fn failing_error_backend_gives_its_own_failure() {
    let (app_addr, _) = start_app().await;
    let down = support::closed_port().await;
    let codes = ann("custom-http-errors");
    let default_backend = ann("default-backend");
    let yaml = service("app", Some(app_addr))
        + &service("broken", Some(down))
        + &ingress(
            "a",
            "a.example",
            "app",
            &[(&codes, "404"), (&default_backend, "broken")],
        );
    let proxy = Proxy::start().await;
    publish(&proxy, load(&yaml, &options()));
    let r = request(&proxy, "GET", "a.example", "/status/404", "").await;
    assert_eq!(r.status, 502);
}

/// HEAD keeps its method (a named location keeps it) and gets no body; the original answer's
/// body is dropped without being read to its end: an endless one still gets the error page.
#[tokio::test]
async fn head_and_endless_original_bodies() {
    let (app_addr, _) = start_app().await;
    let errors = start_echo("errors").await;
    let codes = ann("custom-http-errors");
    let default_backend = ann("default-backend");
    let yaml = service("app", Some(app_addr))
        + &service("echo", Some(errors))
        + &ingress(
            "a",
            "a.example",
            "app",
            &[(&codes, "404"), (&default_backend, "echo")],
        );
    let proxy = Proxy::start().await;
    publish(&proxy, load(&yaml, &options()));

    let r = request(&proxy, "GET", "a.example", "/status/404?endless=1", "").await;
    assert_eq!((r.status, seen(&r)["name"].as_str()), (200, Some("errors")));
    assert_eq!(header(&seen(&r), "x-code"), Some("404"));

    // The echo sets response headers named in the query (`set=`), which the error request
    // keeps: that shows who answered the HEAD.
    let mut conn = proxy.connect().await;
    conn.send(b"HEAD /status/404?set=x-answered-by:errors HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    let (_, status, headers) = tokio::time::timeout(BOUND, conn.head())
        .await
        .expect("head");
    assert_eq!(status, 200);
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("x-answered-by"), Some("errors"));
    // No body followed: the next answer on the connection parses.
    conn.send(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    let r = tokio::time::timeout(BOUND, conn.response())
        .await
        .expect("second answer");
    assert_eq!((r.status, r.body.as_slice()), (200, b"app 200".as_slice()));
}

/// Bad input: each invalid value is an `InvalidAnnotation` condition naming the Ingress, the
/// annotation and the reason; the default applies and the routes still serve; none of these
/// annotations is reported as unsupported. ingress-nginx accepts 400–599 in the annotation
/// (`customhttperrors/main.go`: `^(?:[4,5]\d{2},?)*$`).
#[tokio::test]
async fn invalid_values_are_conditions_and_the_rest_serves() {
    let (app_addr, _) = start_app().await;
    let huge = "4".repeat(1 << 20);
    let yaml = service("app", Some(app_addr))
        + &ingress(
            "garbage",
            "garbage.example",
            "app",
            &[
                (&ann("custom-http-errors"), "404,abc"),
                (&ann("default-backend"), "other/echo"),
                (&ann("disable-proxy-intercept-errors"), "maybe"),
            ],
        )
        + &ingress(
            "range",
            "range.example",
            "app",
            &[
                (&ann("custom-http-errors"), "302,404"),
                (&ann("default-backend"), "missing"),
            ],
        )
        + &ingress(
            "huge",
            "huge.example",
            "app",
            &[("portico.dev/custom-http-errors", huge.as_str())],
        );
    let translation = load(&yaml, &options());
    let messages: Vec<String> = translation
        .conditions
        .iter()
        .map(|c| {
            assert_eq!(c.reason, Reason::InvalidAnnotation, "{c:?}");
            format!("{}: {}", c.object, c.message)
        })
        .collect();
    let has = |needle: &[&str]| {
        messages
            .iter()
            .any(|m| needle.iter().all(|n| m.contains(n)))
    };
    assert!(
        has(&["web/garbage", "custom-http-errors", "\"abc\""]),
        "{messages:#?}"
    );
    assert!(
        has(&[
            "web/garbage",
            "default-backend",
            "not the name of a Service"
        ]),
        "{messages:#?}"
    );
    assert!(
        has(&["web/garbage", "disable-proxy-intercept-errors"]),
        "{messages:#?}"
    );
    assert!(
        has(&["web/range", "custom-http-errors", "\"302\""]),
        "{messages:#?}"
    );
    assert!(
        has(&["web/range", "default-backend", "names no Service"]),
        "{messages:#?}"
    );
    assert!(
        has(&["web/huge", "portico.dev/custom-http-errors"]),
        "{messages:#?}"
    );
    assert_eq!(messages.len(), 6, "{messages:#?}");
    assert!(messages.iter().all(|m| m.len() < 400), "{messages:#?}");

    let proxy = Proxy::start().await;
    publish(&proxy, translation);
    for host in ["garbage.example", "range.example", "huge.example"] {
        let r = request(&proxy, "GET", host, "/status/404", "").await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (404, b"app 404".as_slice()),
            "{host}"
        );
    }
}

/// The incremental cache rebinds the error backends when only their endpoints change: the
/// result equals a fresh translate, and the new endpoint is the one used.
#[tokio::test]
async fn error_backend_endpoints_follow_their_slices() {
    let (app_addr, _) = start_app().await;
    let first = start_echo("first").await;
    let second = start_echo("second").await;
    let codes = ann("custom-http-errors");
    let default_backend = ann("default-backend");
    let base = service("app", Some(app_addr))
        + &ingress(
            "a",
            "a.example",
            "app",
            &[(&codes, "404"), (&default_backend, "echo")],
        );
    let snapshot = |addr: SocketAddr| {
        let mut loaded = Loaded::default();
        parse_documents(
            "t.yaml",
            &(base.clone() + &service("echo", Some(addr))),
            &mut loaded,
        );
        loaded.snapshot
    };
    let options = options();
    let mut cache = Cache::default();
    let _ = translate(&snapshot(first), &options, &mut cache);
    let incremental = translate(&snapshot(second), &options, &mut cache);
    let fresh = translate(&snapshot(second), &options, &mut Cache::default());
    assert_eq!(incremental, fresh);

    let proxy = Proxy::start().await;
    publish(&proxy, incremental);
    let r = request(&proxy, "GET", "a.example", "/status/404", "").await;
    assert_eq!(seen(&r)["name"], "second");
}

// ---- Header ConfigMaps: `custom-headers`, `add-headers`, `proxy-set-headers` ----

/// A ConfigMap `namespace/name` with `data`.
fn config_map(namespace: &str, name: &str, data: &[(&str, &str)]) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}\ndata:\n"
    );
    for (k, v) in data {
        text.push_str(&format!("  {k}: {v:?}\n"));
    }
    if data.is_empty() {
        text.push_str("  {}\n");
    }
    text.push_str("---\n");
    text
}

fn with_configmap() -> Options {
    Options {
        configmap: Some(("infra".into(), "portico".into())),
        ..options()
    }
}

/// ingress-nginx `test/e2e/annotations/customheaders.go`: "should set \"more_set_headers
/// 'My-Custom-Header' '42';\" when custom-headers are set" (values are literal, `$remote_addr`
/// included), "should return status code 200 when no custom-headers is configured", and
/// "should return status code 503 when custom-headers is configured with an invalid secret"
/// (the ConfigMap does not exist). A header outside `global-allowed-response-headers` is
/// denied the same way (`customheaders/main.go`: `NewLocationDenied`).
#[tokio::test]
async fn custom_headers_are_gated_and_literal() {
    let app = start_echo("app").await;
    let custom = ann("custom-headers");
    let yaml = service("echo", Some(app))
        + &config_map(
            "web",
            "custom-headers",
            &[
                ("My-Custom-Header", "42"),
                ("My-Custom-Header-Dollar", "$remote_addr"),
            ],
        )
        + &config_map(
            "web",
            "too-much",
            &[("My-Custom-Header", "1"), ("Set-Cookie", "a=b")],
        )
        + &config_map(
            "infra",
            "portico",
            &[(
                "global-allowed-response-headers",
                "My-Custom-Header,My-Custom-Header-Dollar",
            )],
        )
        + &ingress(
            "set",
            "set.example",
            "echo",
            &[(&custom, "web/custom-headers")],
        )
        + &ingress("plain", "plain.example", "echo", &[])
        + &ingress(
            "missing",
            "missing.example",
            "echo",
            &[(&custom, "web/custom-headers-x")],
        )
        + &ingress(
            "denied",
            "denied.example",
            "echo",
            &[(&custom, "web/too-much")],
        )
        + &ingress(
            "elsewhere",
            "elsewhere.example",
            "echo",
            &[(&custom, "infra/portico")],
        );
    let translation = load(&yaml, &with_configmap());
    let conditions: Vec<String> = translation
        .conditions
        .iter()
        .map(|c| format!("{} {:?} {}", c.object, c.reason, c.message))
        .collect();
    assert_eq!(conditions.len(), 3, "{conditions:#?}");
    for (ingress, why) in [
        ("web/missing", "does not exist"),
        ("web/denied", "Set-Cookie is not in"),
        ("web/elsewhere", "another namespace"),
    ] {
        assert!(
            conditions
                .iter()
                .any(|c| c.contains(ingress) && c.contains("InvalidAnnotation") && c.contains(why)),
            "{ingress}: {conditions:#?}"
        );
    }
    let proxy = Proxy::start().await;
    publish(&proxy, translation);

    let r = request(&proxy, "GET", "set.example", "/", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("my-custom-header"), Some("42"));
    assert_eq!(r.header("my-custom-header-dollar"), Some("$remote_addr"));
    let r = request(&proxy, "GET", "plain.example", "/", "").await;
    assert_eq!((r.status, r.header("my-custom-header")), (200, None));
    for host in ["missing.example", "denied.example", "elsewhere.example"] {
        let r = request(&proxy, "GET", host, "/", "").await;
        assert_eq!(r.status, 503, "{host}");
    }
}

/// ingress-nginx `test/e2e/settings/custom_header.go` ("add-headers"): "Add a custom header"
/// and "Add multiple custom headers" on every answer; `proxy-set-headers` on every upstream
/// request (the setting's documentation; nginx.tmpl's `proxy_set_header` lines). Invalid
/// names, values and nginx variables are skipped with a condition; the rest applies.
#[tokio::test]
async fn add_headers_and_proxy_set_headers() {
    let app = start_echo("app").await;
    let yaml = service("echo", Some(app))
        + &config_map(
            "infra",
            "add",
            &[
                ("X-First", "Prepare for trouble!"),
                ("X-Second", "And make it double!"),
                ("X Bad", "skipped"),
            ],
        )
        + &config_map(
            "infra",
            "set",
            &[
                ("X-Team", "blue"),
                ("X-Host", "$host"),
                ("X-Newline", "a\nb"),
            ],
        )
        + &config_map(
            "infra",
            "portico",
            &[
                ("add-headers", "infra/add"),
                ("proxy-set-headers", "infra/set"),
            ],
        )
        + &ingress("plain", "plain.example", "echo", &[]);
    let translation = load(&yaml, &with_configmap());
    let conditions: Vec<String> = translation
        .conditions
        .iter()
        .map(|c| format!("{} {:?} {}", c.object, c.reason, c.message))
        .collect();
    assert_eq!(conditions.len(), 3, "{conditions:#?}");
    assert!(conditions
        .iter()
        .all(|c| c.starts_with("ConfigMap infra/portico InvalidConfigMapKey")));
    assert!(
        conditions.iter().any(|c| c.contains("$host")),
        "{conditions:#?}"
    );
    let proxy = Proxy::start().await;
    publish(&proxy, translation);

    let r = request(&proxy, "GET", "plain.example", "/", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-first"), Some("Prepare for trouble!"));
    assert_eq!(r.header("x-second"), Some("And make it double!"));
    let s = seen(&r);
    assert_eq!(header(&s, "x-team"), Some("blue"));
    assert_eq!(header(&s, "x-host"), None);
    assert_eq!(header(&s, "x-newline"), None);
    // Answers Portico makes itself carry `add-headers` too (nginx's `http`-level directive).
    let r = request(&proxy, "GET", "nobody.example", "/", "").await;
    assert_eq!(
        (r.status, r.header("x-first")),
        (404, Some("Prepare for trouble!"))
    );
}

/// Editing the ConfigMap a `custom-headers` annotation names changes the Ingress's headers
/// through the incremental cache exactly as a fresh translate does.
#[test]
fn custom_headers_follow_their_config_map() {
    let custom = ann("custom-headers");
    let base = config_map(
        "infra",
        "portico",
        &[("global-allowed-response-headers", "X-A,X-B")],
    ) + &ingress("set", "set.example", "echo", &[(&custom, "custom")])
        + &service("echo", None);
    let snapshot = |data: &[(&str, &str)]| {
        let mut loaded = Loaded::default();
        parse_documents(
            "t.yaml",
            &(base.clone() + &config_map("web", "custom", data)),
            &mut loaded,
        );
        loaded.snapshot
    };
    let options = with_configmap();
    let mut cache = Cache::default();
    let first = translate(&snapshot(&[("X-A", "1")]), &options, &mut cache);
    let second = translate(&snapshot(&[("X-B", "2")]), &options, &mut cache);
    assert_ne!(first.table, second.table);
    assert_eq!(
        second,
        translate(&snapshot(&[("X-B", "2")]), &options, &mut Cache::default())
    );
    let third = translate(&snapshot(&[("X-C", "3")]), &options, &mut cache);
    assert_eq!(
        third,
        translate(&snapshot(&[("X-C", "3")]), &options, &mut Cache::default())
    );
    assert_eq!(third.conditions.len(), 1, "{:?}", third.conditions);
}
