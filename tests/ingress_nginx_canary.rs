//! ingress-nginx's canary Ingresses over real sockets (issue 14): Ingresses are translated
//! from YAML, published to a proxy on 127.0.0.1, and requests go to two echo backends on
//! 127.0.0.1, `main` and `canary`. Each test names the ingress-nginx e2e case it reproduces
//! (`test/e2e/annotations/canary.go` in kubernetes/ingress-nginx).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico::proxy::ProxyOptions;
use portico::publish::Published;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options, Reason, Translation};
use support::{start_echo, Proxy};

const N: &str = "nginx.ingress.kubernetes.io/";

fn n(name: &str) -> String {
    format!("{N}{name}")
}

/// An Ingress `name` (created at `created`) routing `host` `path` (Prefix) to `service` port
/// `port`, with `annotations`.
fn ingress_at(
    name: &str,
    created: &str,
    host: &str,
    path: &str,
    service: &str,
    port: u16,
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
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: \"{created}\"
{annotations}spec:
  ingressClassName: portico
  rules:
  - host: {host}
    http:
      paths:
      - path: {path}
        pathType: Prefix
        backend: {{service: {{name: {service}, port: {{number: {port}}}}}}}
"
    )
}

const OLD: &str = "2020-01-01T00:00:00Z";
const NEW: &str = "2021-01-01T00:00:00Z";

/// The main Ingress `foo` for host `foo` path `/info` to Service `main`.
fn main_ingress(annotations: &[(&str, &str)]) -> String {
    ingress_at("foo", OLD, "foo", "/info", "main", 80, annotations)
}

/// The canary Ingress `foo-canary` for host `foo` path `/info` to Service `canary`.
fn canary_ingress(annotations: &[(&str, &str)]) -> String {
    let mut all = vec![(N.to_string() + "canary", "true")];
    all.extend(annotations.iter().map(|(k, v)| (k.to_string(), *v)));
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    ingress_at("foo-canary", NEW, "foo", "/info", "canary", 80, &all)
}

/// Service `name` (port `port`) with one endpoint `addr`.
fn service(name: &str, port: u16, addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{port: {port}, targetPort: {target}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{port: {target}}}]
endpoints:
- addresses: [\"{ip}\"]
",
        target = addr.port(),
        ip = addr.ip()
    )
}

const CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: portico}
spec: {controller: portico.dev/ingress-controller}
";

fn translate_yaml(documents: &[String]) -> Translation {
    support::translate_documents(documents, &Options::default())
}

/// A proxy serving `ingresses` with the Services `main` (port 80) and `canary` (port
/// `canary_port`), each an echo backend answering with its name.
async fn serve_ports(ingresses: &[String], canary_port: u16) -> (Proxy, Translation) {
    let main = start_echo("main").await;
    let canary = start_echo("canary").await;
    let mut documents = vec![
        CLASS.to_string(),
        service("main", 80, main),
        service("canary", canary_port, canary),
    ];
    documents.extend(ingresses.iter().cloned());
    let translation = translate_yaml(&documents);
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

async fn serve(ingresses: &[String]) -> (Proxy, Translation) {
    serve_ports(ingresses, 80).await
}

/// Who answered `GET path` on `host` with extra header lines: `main`, `canary`, or the status.
async fn who(proxy: &Proxy, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let response = proxy
        .raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n"
        ))
        .await;
    if response.status != 200 {
        return response.status.to_string();
    }
    response.json()["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn conditions_of(translation: &Translation, name: &str) -> Vec<(Reason, String)> {
    translation
        .conditions
        .iter()
        .filter(|c| c.object.name == name)
        .map(|c| (c.reason, c.message.clone()))
        .collect()
}

/// canary.go "should response with a 200 status from the mainline upstream when requests are
/// made to the mainline ingress".
#[tokio::test]
async fn mainline_serves_without_a_canary_header() {
    let (proxy, translation) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[(&n("canary-by-header"), "CanaryByHeader")]),
    ])
    .await;
    assert_eq!(who(&proxy, "foo", "/info", &[]).await, "main");
    assert!(
        conditions_of(&translation, "foo-canary").is_empty(),
        "{:?}",
        translation.conditions
    );
}

/// canary.go "should return 404 status for requests to the canary if no matching ingress is
/// found"; "Single canary Ingress": "should not use canary with domain as a server".
#[tokio::test]
async fn a_canary_without_main_serves_nothing() {
    let (proxy, translation) = serve(&[
        canary_ingress(&[(&n("canary-by-header"), "CanaryByHeader")]),
        ingress_at("bar", OLD, "bar", "/info", "main", 80, &[]),
    ])
    .await;
    assert_eq!(
        who(&proxy, "foo", "/info", &[("CanaryByHeader", "always")]).await,
        "404"
    );
    assert_eq!(who(&proxy, "bar", "/info", &[]).await, "main");
    let conditions = conditions_of(&translation, "foo-canary");
    assert!(
        conditions
            .iter()
            .any(|(r, m)| *r == Reason::CanaryWithoutMain && m.contains("/info")),
        "{conditions:?}"
    );
}

/// canary.go "should route requests to the correct upstream if mainline ingress is created
/// after the canary ingress": age does not matter, the canary attaches anyway.
#[tokio::test]
async fn a_canary_older_than_its_main_still_attaches() {
    let (proxy, _) = serve(&[
        ingress_at(
            "foo-canary",
            OLD,
            "foo",
            "/info",
            "canary",
            80,
            &[
                (&n("canary"), "true"),
                (&n("canary-by-header"), "CanaryByHeader"),
            ],
        ),
        ingress_at("foo", NEW, "foo", "/info", "main", 80, &[]),
    ])
    .await;
    assert_eq!(
        who(&proxy, "foo", "/info", &[("CanaryByHeader", "always")]).await,
        "canary"
    );
    assert_eq!(who(&proxy, "foo", "/info", &[]).await, "main");
}

/// canary.go "when canaried by header with no value".
#[tokio::test]
async fn header_always_never_and_anything_else() {
    let (proxy, _) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[(&n("canary-by-header"), "CanaryByHeader")]),
    ])
    .await;
    let by = |v| [("CanaryByHeader", v)];
    assert_eq!(who(&proxy, "foo", "/info", &by("always")).await, "canary");
    assert_eq!(who(&proxy, "foo", "/info", &by("never")).await, "main");
    assert_eq!(
        who(&proxy, "foo", "/info", &by("badheadervalue")).await,
        "main"
    );
    // Below the rule's path too (Prefix).
    assert_eq!(
        who(&proxy, "foo", "/info/deeper", &by("always")).await,
        "canary"
    );
}

/// canary.go "when canaried by header with value".
#[tokio::test]
async fn header_value_replaces_always() {
    let (proxy, _) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[
            (&n("canary-by-header"), "CanaryByHeader"),
            (&n("canary-by-header-value"), "DoCanary"),
        ]),
    ])
    .await;
    let by = |v| [("CanaryByHeader", v)];
    assert_eq!(who(&proxy, "foo", "/info", &by("DoCanary")).await, "canary");
    for other in ["always", "never", "otherheadervalue"] {
        assert_eq!(
            who(&proxy, "foo", "/info", &by(other)).await,
            "main",
            "{other}"
        );
    }
}

/// canary.go "when canaried by header with value and pattern" (both cases).
#[tokio::test]
async fn header_pattern_and_value_wins_over_pattern() {
    let (proxy, _) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[
            (&n("canary-by-header"), "CanaryByHeader"),
            (&n("canary-by-header-pattern"), "^Do[A-Z][a-z]+y$"),
        ]),
    ])
    .await;
    let by = |v| [("CanaryByHeader", v)];
    assert_eq!(who(&proxy, "foo", "/info", &by("DoCanary")).await, "canary");
    assert_eq!(who(&proxy, "foo", "/info", &by("Docanary")).await, "main");

    let (proxy, _) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[
            (&n("canary-by-header"), "CanaryByHeader"),
            (&n("canary-by-header-value"), "DoCanary"),
            (&n("canary-by-header-pattern"), "^Do[A-Z][a-z]+y$"),
        ]),
    ])
    .await;
    assert_eq!(who(&proxy, "foo", "/info", &by("DoCananry")).await, "main");
    assert_eq!(who(&proxy, "foo", "/info", &by("DoCanary")).await, "canary");
}

/// canary.go "should routes to mainline upstream when the given Regex causes error"; and a
/// PCRE-only construct is named in the condition.
#[tokio::test]
async fn an_unusable_pattern_keeps_header_requests_on_main() {
    let (proxy, translation) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[
            (&n("canary-by-header"), "CanaryByHeader"),
            (&n("canary-by-header-pattern"), "[][**da?$&*"),
            (&n("canary-by-cookie"), "CanaryByCookie"),
        ]),
    ])
    .await;
    assert_eq!(
        who(
            &proxy,
            "foo",
            "/info",
            &[
                ("CanaryByHeader", "DoCanary"),
                ("Cookie", "CanaryByCookie=always")
            ]
        )
        .await,
        "main"
    );
    let conditions = conditions_of(&translation, "foo-canary");
    assert!(
        conditions.iter().any(|(r, m)| *r == Reason::InvalidAnnotation
            && m.contains("canary-by-header-pattern")),
        "{conditions:?}"
    );

    let translation = translate_yaml(&[
        CLASS.to_string(),
        main_ingress(&[]),
        canary_ingress(&[
            (&n("canary-by-header"), "X"),
            (&n("canary-by-header-pattern"), "^(?=a)b"),
        ]),
    ]);
    let conditions = conditions_of(&translation, "foo-canary");
    assert!(
        conditions
            .iter()
            .any(|(_, m)| m.contains("look-around") && m.contains("canary-by-header-pattern")),
        "{conditions:?}"
    );
}

/// canary.go "when canaried by header with value and cookie".
#[tokio::test]
async fn a_header_that_does_not_match_falls_through_to_the_cookie() {
    let (proxy, _) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[
            (&n("canary-by-header"), "CanaryByHeader"),
            (&n("canary-by-header-value"), "DoCanary"),
            (&n("canary-by-cookie"), "CanaryByCookie"),
        ]),
    ])
    .await;
    assert_eq!(
        who(
            &proxy,
            "foo",
            "/info",
            &[
                ("CanaryByHeader", "otherheadervalue"),
                ("Cookie", "CanaryByCookie=always")
            ]
        )
        .await,
        "canary"
    );
}

/// canary.go "when canaried by cookie": "respects always and never values".
#[tokio::test]
async fn cookie_always_and_never() {
    let (proxy, _) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[(&n("canary-by-cookie"), "Canary-By-Cookie")]),
    ])
    .await;
    let cookie = |v: &'static str| [("Cookie", v)];
    assert_eq!(
        who(&proxy, "foo", "/info", &cookie("Canary-By-Cookie=always")).await,
        "canary"
    );
    assert_eq!(
        who(&proxy, "foo", "/info", &cookie("Canary-By-Cookie=never")).await,
        "main"
    );
    assert_eq!(
        who(
            &proxy,
            "foo",
            "/info",
            &cookie("Canary-By-Cookie=badcookievalue")
        )
        .await,
        "main"
    );
}

/// canary.go "when canaried by weight": weight 0, 100, and weight equal to the total (1000).
#[tokio::test]
async fn weights_zero_and_full() {
    for (weight, total, expected) in [
        ("0", None, "main"),
        ("100", None, "canary"),
        ("1000", Some("1000"), "canary"),
    ] {
        let mut annotations = vec![(n("canary-weight"), weight)];
        if let Some(total) = total {
            annotations.push((n("canary-weight-total"), total));
        }
        let annotations: Vec<(&str, &str)> =
            annotations.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (proxy, _) = serve(&[main_ingress(&[]), canary_ingress(&annotations)]).await;
        for _ in 0..20 {
            assert_eq!(who(&proxy, "foo", "/info", &[]).await, expected, "{weight}");
        }
    }
}

/// canary.go "should route requests split between mainline and canary if canary weight is
/// 50" and "... weight is 100 and weight total is 200" (`TestMainlineCanaryDistribution`: 200
/// requests, each backend at least 40 % of them).
#[tokio::test]
async fn weight_splits_traffic() {
    for annotations in [
        vec![(n("canary-weight"), "50")],
        vec![
            (n("canary-weight"), "100"),
            (n("canary-weight-total"), "200"),
        ],
    ] {
        let annotations: Vec<(&str, &str)> =
            annotations.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (proxy, _) = serve(&[main_ingress(&[]), canary_ingress(&annotations)]).await;
        let mut canary = 0;
        for _ in 0..200 {
            match who(&proxy, "foo", "/info", &[]).await.as_str() {
                "canary" => canary += 1,
                "main" => {}
                other => panic!("answered {other}"),
            }
        }
        // 200 fair coin flips: the standard deviation is ~7.1, so 65..=135 is ±4.9σ (a false
        // failure about once in a million runs; 80..=120, ±2.8σ, failed about once in a
        // hundred) and still rejects a 30/70 split (60 or 140 expected).
        assert!(
            (65..=135).contains(&canary),
            "{canary} of 200 to the canary"
        );
    }
}

/// canary.go "Single canary Ingress": "should not use canary as a catch-all server": a canary
/// with only a defaultBackend attaches to the main catch-all, it does not replace it.
#[tokio::test]
async fn a_catch_all_canary_attaches_to_the_default_backend() {
    let catch_all = |name: &str, created: &str, service: &str, annotations: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: \"{created}\"
{annotations}spec:
  ingressClassName: portico
  defaultBackend: {{service: {{name: {service}, port: {{number: 80}}}}}}
"
        )
    };
    let (proxy, translation) = serve(&[
        catch_all(
            "foo-canary",
            OLD,
            "canary",
            "  annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-by-header: CanaryByHeader\n",
        ),
        catch_all("foo", NEW, "main", ""),
    ])
    .await;
    assert_eq!(who(&proxy, "anything", "/", &[]).await, "main");
    assert_eq!(
        who(&proxy, "anything", "/x", &[("CanaryByHeader", "always")]).await,
        "canary"
    );
    assert!(
        conditions_of(&translation, "foo-canary").is_empty(),
        "{:?}",
        translation.conditions
    );
}

/// A backend takes one canary, the oldest (ingress-nginx `balancer.lua` reads only
/// `alternative_backends[1]`); the other is reported.
#[tokio::test]
async fn one_canary_per_backend_the_oldest() {
    let second = ingress_at(
        "foo-canary-2",
        "2022-01-01T00:00:00Z",
        "foo",
        "/info",
        "canary",
        80,
        &[(&n("canary"), "true"), (&n("canary-weight"), "100")],
    );
    let (proxy, translation) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[(&n("canary-by-header"), "CanaryByHeader")]),
        second,
    ])
    .await;
    // The second canary (weight 100) would take everything; it is not attached.
    assert_eq!(who(&proxy, "foo", "/info", &[]).await, "main");
    assert_eq!(
        who(&proxy, "foo", "/info", &[("CanaryByHeader", "always")]).await,
        "canary"
    );
    let conditions = conditions_of(&translation, "foo-canary-2");
    assert!(
        conditions
            .iter()
            .any(|(r, m)| *r == Reason::CanaryWithoutMain && m.contains("default/foo-canary")),
        "{conditions:?}"
    );
}

/// A canary Service on another port than the main one (canary.go uses the same port; ingress-
/// nginx's upstreams are per Service and port, so any port works).
#[tokio::test]
async fn a_canary_on_another_port() {
    let (proxy, _) = serve_ports(
        &[
            main_ingress(&[]),
            ingress_at(
                "foo-canary",
                NEW,
                "foo",
                "/info",
                "canary",
                8080,
                &[(&n("canary"), "true"), (&n("canary-weight"), "100")],
            ),
        ],
        8080,
    )
    .await;
    assert_eq!(who(&proxy, "foo", "/info", &[]).await, "canary");
}

/// ingress-nginx attaches the canary to the main *backend* (Service and port): every route
/// using that backend, on any host, consults it (`mergeAlternativeBackend` appends to the
/// upstream's `AlternativeBackends`). Surprising, kept (spec §2), documented.
#[tokio::test]
async fn the_canary_follows_the_main_backend_to_other_hosts() {
    let (proxy, _) = serve(&[
        main_ingress(&[]),
        ingress_at("other", OLD, "other", "/api", "main", 80, &[]),
        canary_ingress(&[(&n("canary-by-header"), "CanaryByHeader")]),
    ])
    .await;
    assert_eq!(
        who(&proxy, "other", "/api", &[("CanaryByHeader", "always")]).await,
        "canary"
    );
}

/// Only the canary annotations of a canary Ingress matter; the main Ingress's settings apply
/// to canary traffic (ingress-nginx creates no location for the canary).
#[tokio::test]
async fn canary_traffic_keeps_the_main_ingress_settings() {
    let (proxy, translation) = serve(&[
        main_ingress(&[(&n("upstream-vhost"), "main.internal")]),
        canary_ingress(&[
            (&n("canary-weight"), "100"),
            (&n("permanent-redirect"), "https://example.com"),
        ]),
    ])
    .await;
    let response = proxy.get("foo", "/info").await;
    assert_eq!(response.status, 200);
    let json = response.json();
    assert_eq!(json["name"], "canary");
    assert_eq!(json["host"], "main.internal");
    let conditions = conditions_of(&translation, "foo-canary");
    assert!(
        conditions
            .iter()
            .any(|(r, m)| *r == Reason::UnsupportedAnnotation && m.contains("permanent-redirect")),
        "{conditions:?}"
    );
}

/// Bad values: a condition naming the Ingress and the key; the main Ingress keeps serving.
#[tokio::test]
async fn invalid_values_are_reported_and_main_keeps_serving() {
    let (proxy, translation) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[
            (&n("canary-weight"), "lots"),
            (&n("canary-by-header-value"), "x"),
        ]),
    ])
    .await;
    assert_eq!(who(&proxy, "foo", "/info", &[]).await, "main");
    let conditions = conditions_of(&translation, "foo-canary");
    for key in ["canary-weight", "canary-by-header-value"] {
        assert!(
            conditions
                .iter()
                .any(|(r, m)| *r == Reason::InvalidAnnotation && m.contains(&n(key))),
            "{key}: {conditions:?}"
        );
    }

    // Above the total: every request to the canary, as ingress-nginx's draw gives.
    let (proxy, translation) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[(&n("canary-weight"), "150")]),
    ])
    .await;
    assert_eq!(who(&proxy, "foo", "/info", &[]).await, "canary");
    assert!(conditions_of(&translation, "foo-canary")
        .iter()
        .any(|(_, m)| m.contains("canary-weight") && m.contains("above the total")));

    // canary-* on an Ingress that is not a canary: reported, the Ingress serves normally.
    let translation = translate_yaml(&[
        CLASS.to_string(),
        main_ingress(&[(&n("canary-weight"), "50")]),
    ]);
    assert!(conditions_of(&translation, "foo")
        .iter()
        .any(|(r, m)| *r == Reason::InvalidAnnotation && m.contains("not a canary")));
}

/// The attachment shows in `/debug/routes` (the table's JSON) under the main backend's policy.
#[tokio::test]
async fn the_attachment_shows_in_the_table() {
    let (_proxy, translation) = serve(&[
        main_ingress(&[]),
        canary_ingress(&[(&n("canary-weight"), "30")]),
    ])
    .await;
    let json = serde_json::to_value(&translation.table).unwrap();
    let text = json.to_string();
    assert!(text.contains("\"canary\""), "{text}");
    assert!(text.contains("default/foo-canary"), "{text}");
    assert!(text.contains("30/100"), "{text}");
}

/// Fail closed stays closed: a main route that answers 503 for access control Portico does not
/// enforce never hands requests to its canary (the canary would serve them unprotected).
#[tokio::test]
async fn a_failing_closed_main_route_never_reaches_the_canary() {
    let (proxy, _) = serve(&[
        main_ingress(&[(&n("auth-type"), "basic"), (&n("auth-secret"), "htpasswd")]),
        canary_ingress(&[
            (&n("canary-by-header"), "CanaryByHeader"),
            (&n("canary-weight"), "100"),
        ]),
    ])
    .await;
    assert_eq!(
        who(&proxy, "foo", "/info", &[("CanaryByHeader", "always")]).await,
        "503"
    );
    assert_eq!(who(&proxy, "foo", "/info", &[]).await, "503");
}

/// Incremental translate (issue 11) gives what a fresh one gives while canaries come, change
/// endpoints and go: the vhost of the main route is rebuilt when its canary changes.
#[test]
fn incremental_translate_follows_canary_changes() {
    let main_addr: SocketAddr = "10.0.0.1:8080".parse().unwrap();
    let canary_a: SocketAddr = "10.0.0.2:8080".parse().unwrap();
    let canary_b: SocketAddr = "10.0.0.3:8080".parse().unwrap();
    let base = vec![
        CLASS.to_string(),
        service("main", 80, main_addr),
        main_ingress(&[]),
    ];
    let with = |addr: SocketAddr, weight: &str| {
        let mut docs = base.clone();
        docs.push(service("canary", 80, addr));
        docs.push(canary_ingress(&[(&n("canary-weight"), weight)]));
        docs
    };
    let steps = [
        base.clone(),
        with(canary_a, "30"),
        with(canary_b, "30"),
        with(canary_b, "60"),
        base.clone(),
    ];
    let mut cache = Cache::default();
    for (i, docs) in steps.iter().enumerate() {
        let mut loaded = Loaded::default();
        parse_documents("test.yaml", &docs.join("---\n"), &mut loaded);
        let incremental = translate(&loaded.snapshot, &Options::default(), &mut cache);
        let fresh = translate(&loaded.snapshot, &Options::default(), &mut Cache::default());
        assert_eq!(incremental, fresh, "step {i}");
    }
}

/// The answer to `GET /info` on `foo` with extra headers: who served and its `Set-Cookie`.
async fn who_and_cookie(proxy: &Proxy, headers: &[(&str, &str)]) -> (String, Option<String>) {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let response = proxy
        .raw(&format!("GET /info HTTP/1.1\r\nHost: foo\r\n{extra}\r\n"))
        .await;
    let name = response.json()["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cookie = response
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_string);
    (name, cookie)
}

/// `affinity-canary-behavior` (balancer.lua `route_to_alternative_balancer`, controller.go
/// `mergeAlternativeBackends`): with cookie affinity on the main backend, a client the canary
/// served once stays on the canary under `sticky` (the default), and a client the main backend
/// served stays there, whatever the weight draws; under `legacy` the canary issues no affinity
/// cookie of its own, so its clients are shaped afresh on every request.
#[tokio::test]
async fn affinity_canary_behavior_sticky_and_legacy() {
    for behavior in ["sticky", "legacy"] {
        let (proxy, translation) = serve(&[
            main_ingress(&[(&n("affinity"), "cookie")]),
            canary_ingress(&[
                (&n("canary-weight"), "50"),
                (&n("affinity-canary-behavior"), behavior),
            ]),
        ])
        .await;
        assert!(
            conditions_of(&translation, "foo").is_empty(),
            "{:?}",
            translation.conditions
        );
        // Fresh clients until each backend has answered once (weight 50: bounded draws).
        let (mut main_cookie, mut canary_seen) = (None, None);
        for _ in 0..200 {
            let (name, cookie) = who_and_cookie(&proxy, &[]).await;
            match name.as_str() {
                "main" if main_cookie.is_none() => main_cookie = cookie,
                "canary" if canary_seen.is_none() => canary_seen = Some(cookie),
                _ => {}
            }
            if main_cookie.is_some() && canary_seen.is_some() {
                break;
            }
        }
        let main_cookie = main_cookie.expect("the main backend issues an affinity cookie");
        let canary_cookie = canary_seen.expect("the canary answered one of 200 draws at 50 %");
        // The main backend's cookie keeps its client on the main backend.
        for _ in 0..20 {
            let (name, _) = who_and_cookie(&proxy, &[("cookie", &main_cookie)]).await;
            assert_eq!(name, "main", "{behavior}: pinned to main");
        }
        match behavior {
            "sticky" => {
                let canary_cookie = canary_cookie.expect("sticky: the canary issues a cookie");
                assert_ne!(canary_cookie, main_cookie);
                for _ in 0..20 {
                    let (name, _) = who_and_cookie(&proxy, &[("cookie", &canary_cookie)]).await;
                    assert_eq!(name, "canary", "sticky: pinned to the canary");
                }
            }
            _ => assert_eq!(canary_cookie, None, "legacy: the canary issues no cookie"),
        }
    }
}
