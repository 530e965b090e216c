//! ingress-nginx's CORS annotations over real sockets (issue 14): Ingresses are translated
//! from YAML, published to a proxy on 127.0.0.1, and requests go to an echo backend on
//! 127.0.0.1. Each test names the ingress-nginx e2e case it reproduces
//! (`test/e2e/annotations/cors.go` in kubernetes/ingress-nginx).

mod support;

use portico::proxy::ProxyOptions;
use portico::translate::Translation;
use support::nginx::{ingress, n, serve};
use support::Proxy;

/// A proxy with one Ingress on `cors.foo.com` carrying `enable-cors: "true"` and `annotations`.
async fn cors(annotations: &[(&str, &str)]) -> (Proxy, Translation) {
    let mut all = vec![(n("enable-cors"), "true".to_string())];
    all.extend(annotations.iter().map(|(k, v)| (n(k), v.to_string())));
    let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    serve(
        &[ingress("cors", "cors.foo.com", "/", &pairs)],
        ProxyOptions::default(),
    )
    .await
}

async fn get_with_origin(proxy: &Proxy, origin: &str) -> support::RawResponse {
    proxy
        .raw(&format!(
            "GET / HTTP/1.1\r\nHost: cors.foo.com\r\nOrigin: {origin}\r\n\r\n"
        ))
        .await
}

async fn preflight(proxy: &Proxy, origin: Option<&str>) -> support::RawResponse {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    proxy
        .raw(&format!(
            "OPTIONS / HTTP/1.1\r\nHost: cors.foo.com\r\n{origin}Access-Control-Request-Method: POST\r\n\r\n"
        ))
        .await
}

fn allow_origin(response: &support::RawResponse) -> Option<&str> {
    response.header("access-control-allow-origin")
}

/// cors.go "should enable cors" and "should not break functionality - without `*`": the
/// defaults on every answer, a preflight answered 204 by the proxy (not the upstream).
#[tokio::test]
async fn enable_cors_sets_the_defaults_and_answers_preflights() {
    let (proxy, _) = cors(&[]).await;
    let response = proxy.get("cors.foo.com", "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["name"], "echo");
    assert_eq!(allow_origin(&response), Some("*"));
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
    );
    assert_eq!(
        response.header("access-control-allow-headers"),
        Some("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(response.header("access-control-max-age"), Some("1728000"));
    assert_eq!(response.header("access-control-expose-headers"), None);

    let response = preflight(&proxy, Some("https://anything.example")).await;
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
    assert_eq!(allow_origin(&response), Some("*"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain charset=UTF-8")
    );
    assert_eq!(response.header("access-control-max-age"), Some("1728000"));
}

/// cors.go "should set cors methods to only allow POST, GET", "should set cors max-age",
/// "should disable cors allow credentials", "should allow headers for cors", "should expose
/// headers for cors".
#[tokio::test]
async fn cors_values_are_sent_as_written() {
    let (proxy, translation) = cors(&[
        ("cors-allow-methods", "POST, GET"),
        ("cors-max-age", "200"),
        ("cors-allow-credentials", "false"),
        ("cors-allow-headers", "DNT, User-Agent"),
        (
            "cors-expose-headers",
            "X-CustomResponseHeader, X-CustomSecondHeader",
        ),
    ])
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    for response in [
        proxy.get("cors.foo.com", "/").await,
        preflight(&proxy, None).await,
    ] {
        assert_eq!(
            response.header("access-control-allow-methods"),
            Some("POST, GET")
        );
        assert_eq!(response.header("access-control-max-age"), Some("200"));
        assert_eq!(response.header("access-control-allow-credentials"), None);
        assert_eq!(
            response.header("access-control-allow-headers"),
            Some("DNT, User-Agent")
        );
        assert_eq!(
            response.header("access-control-expose-headers"),
            Some("X-CustomResponseHeader, X-CustomSecondHeader")
        );
    }
}

/// cors.go "should allow origin for cors", "should allow - single origin for multiple cors
/// values", "should not allow - single origin for multiple cors values", "should allow correct
/// origins - single origin for multiple cors values", "should not match".
#[tokio::test]
async fn a_listed_origin_is_echoed_and_others_get_no_cors_headers() {
    let (proxy, translation) = cors(&[(
        "cors-allow-origin",
        "origin.cors.com:8080, https://origin.cors.com:8080, https://origin2.cors.com, https://foo.bar.com",
    )])
    .await;
    // `origin.cors.com:8080` has no scheme: skipped, with a condition (ingress-nginx skips it
    // with a log line).
    assert_eq!(
        translation.conditions.len(),
        1,
        "{:?}",
        translation.conditions
    );
    for origin in ["https://origin.cors.com:8080", "https://origin2.cors.com"] {
        let response = get_with_origin(&proxy, origin).await;
        assert_eq!(response.status, 200);
        assert_eq!(allow_origin(&response), Some(origin));
    }
    for origin in [
        "origin.cors.com:8080",
        "http://no.origin.com",
        "https://fooxbar.com",
        "https://origin.cors.com",
    ] {
        let response = get_with_origin(&proxy, origin).await;
        assert_eq!(response.status, 200, "{origin}");
        assert_eq!(allow_origin(&response), None, "{origin}");
        assert_eq!(response.header("access-control-allow-methods"), None);
    }
    // No Origin at all: no CORS headers either.
    assert_eq!(allow_origin(&proxy.get("cors.foo.com", "/").await), None);
    // A preflight from an origin not listed is not answered by the proxy: the upstream is.
    let response = preflight(&proxy, Some("https://evil.example")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["method"], "OPTIONS");
    assert_eq!(allow_origin(&response), None);
    let response = preflight(&proxy, Some("https://origin2.cors.com")).await;
    assert_eq!(response.status, 204);
    assert_eq!(allow_origin(&response), Some("https://origin2.cors.com"));
}

/// cors.go "should allow - single origin with required port", "should not allow - single
/// origin with port and origin without port", "should not allow - single origin without port
/// and origin with required port".
#[tokio::test]
async fn ports_must_match() {
    let (proxy, _) = cors(&[(
        "cors-allow-origin",
        "http://origin.cors.com:8080, http://origin.com:8080",
    )])
    .await;
    let response = get_with_origin(&proxy, "http://origin.cors.com:8080").await;
    assert_eq!(allow_origin(&response), Some("http://origin.cors.com:8080"));
    let response = get_with_origin(&proxy, "http://origin.com").await;
    assert_eq!(allow_origin(&response), None);

    let (proxy, _) = cors(&[(
        "cors-allow-origin",
        "https://origin2.cors.com, http://origin.com",
    )])
    .await;
    let response = get_with_origin(&proxy, "http://origin.cors.com:8080").await;
    assert_eq!(allow_origin(&response), None);
}

/// cors.go "should allow - matching origin with wildcard origin (2 subdomains)", "should not
/// allow - unmatching origin with wildcard origin (2 subdomains)", "should allow - matching
/// origin+port with wildcard origin", "should not allow - portless origin with wildcard
/// origin", "should allow correct origins - missing subdomain + origin with wildcard origin
/// and correct origin".
#[tokio::test]
async fn wildcards_match_one_label() {
    let (proxy, _) = cors(&[(
        "cors-allow-origin",
        "http://*.origin.cors.com, http://*.origin.com:8080",
    )])
    .await;
    for origin in [
        "http://foo.origin.cors.com",
        "http://bar-foo.origin.cors.com",
        "http://abc.origin.com:8080",
    ] {
        let response = get_with_origin(&proxy, origin).await;
        assert_eq!(allow_origin(&response), Some(origin), "{origin}");
    }
    for origin in [
        "http://bar.foo.origin.cors.com",
        "http://abc.origin.com",
        "http://origin.cors.com:8080",
        "http://origin.com:8080",
    ] {
        let response = get_with_origin(&proxy, origin).await;
        assert_eq!(allow_origin(&response), None, "{origin}");
    }
}

/// cors.go "should not break functionality", "should not break functionality with extra
/// domain", "should allow - missing origins (should allow all origins)": `*` anywhere, or only
/// blanks, is `*`.
#[tokio::test]
async fn star_or_blank_allows_every_origin() {
    for value in ["*", "*, foo.bar.com", "      "] {
        let (proxy, _) = cors(&[("cors-allow-origin", value)]).await;
        assert_eq!(
            allow_origin(&proxy.get("cors.foo.com", "/").await),
            Some("*"),
            "{value:?}"
        );
        for origin in [
            "http://origin.com",
            "http://book.origin.com",
            "test.origin.com",
        ] {
            let response = get_with_origin(&proxy, origin).await;
            assert_eq!(allow_origin(&response), Some("*"), "{value:?} {origin}");
        }
    }
}

/// cors.go "should allow correct origin but not others - cors allow origin annotations
/// contain trailing comma", "should allow - origins with non-http[s] protocols".
#[tokio::test]
async fn blank_entries_and_other_schemes() {
    let (proxy, translation) = cors(&[(
        "cors-allow-origin",
        "https://origin-123.cors.com:8080,   ,https://origin-321.cors.com:8080,, test://localhost, tauri://localhost:3000",
    )])
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    for origin in [
        "https://origin-123.cors.com:8080",
        "https://origin-321.cors.com:8080",
        "test://localhost",
        "tauri://localhost:3000",
    ] {
        let response = get_with_origin(&proxy, origin).await;
        assert_eq!(allow_origin(&response), Some(origin), "{origin}");
    }
    let response = get_with_origin(&proxy, "https://unknown.cors.com:8080").await;
    assert_eq!(allow_origin(&response), None);
}

/// Portico's difference (docs/decisions.md): an origin with a path is a condition naming the
/// Ingress and the key, and is skipped; the others stay, nothing is widened to `*`.
#[tokio::test]
async fn an_origin_with_a_path_is_a_condition() {
    let (proxy, translation) = cors(&[(
        "cors-allow-origin",
        "https://app.example/path, https://ok.example",
    )])
    .await;
    let invalid: Vec<String> = translation
        .conditions
        .iter()
        .filter(|c| format!("{:?}", c.reason) == "InvalidAnnotation")
        .map(|c| format!("{}: {}", c.object.name, c.message))
        .collect();
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert!(
        invalid[0].starts_with("cors: annotation nginx.ingress.kubernetes.io/cors-allow-origin"),
        "{invalid:?}"
    );
    assert!(
        invalid[0].contains("https://app.example/path"),
        "{invalid:?}"
    );
    let response = get_with_origin(&proxy, "https://app.example").await;
    assert_eq!(allow_origin(&response), None);
    let response = get_with_origin(&proxy, "https://ok.example").await;
    assert_eq!(allow_origin(&response), Some("https://ok.example"));
}

/// An Ingress without CORS sends no CORS headers, and an upstream's own are untouched; with
/// CORS the proxy's replace the upstream's (nginx's `more_set_headers`). `portico.dev/` wins.
#[tokio::test]
async fn without_cors_nothing_changes_and_portico_spelling_wins() {
    let (proxy, translation) = serve(
        &[
            ingress("plain", "plain.example", "/", &[]),
            ingress(
                "cors-off",
                "off.example",
                "/",
                &[
                    (&n("enable-cors"), "true"),
                    ("portico.dev/enable-cors", "false"),
                ],
            ),
        ],
        ProxyOptions::default(),
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    for host in ["plain.example", "off.example"] {
        let response = proxy
            .raw(&format!(
                "OPTIONS / HTTP/1.1\r\nHost: {host}\r\nOrigin: https://a.example\r\n\r\n"
            ))
            .await;
        assert_eq!(response.status, 200, "{host}");
        assert_eq!(allow_origin(&response), None, "{host}");
    }
}

/// A browser's preflight carries no credentials: ingress-nginx answers it in nginx's rewrite
/// phase (`if ($request_method = 'OPTIONS') { ... return 204; }` in the location), before the
/// access phase where `auth_basic` / `auth_request` run, so a CORS API behind authentication
/// still works. Portico answers it before limits and authentication too; the request itself
/// still needs the credentials.
#[tokio::test]
async fn a_preflight_is_answered_before_authentication() {
    let secret = "apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
type: Opaque
data: {auth: dXNlcjp7UExBSU59cGFzcw==}
"
    .to_string();
    let annotations = [
        (n("enable-cors"), "true"),
        (n("auth-type"), "basic"),
        (n("auth-secret"), "users"),
    ];
    let pairs: Vec<(&str, &str)> = annotations.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let (proxy, translation) = serve(
        &[secret, ingress("cors", "cors.foo.com", "/", &pairs)],
        ProxyOptions::default(),
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let response = preflight(&proxy, Some("https://app.example")).await;
    assert_eq!(response.status, 204);
    assert_eq!(allow_origin(&response), Some("*"));
    let response = get_with_origin(&proxy, "https://app.example").await;
    assert_eq!(response.status, 401);
    let response = proxy
        .raw(
            "GET / HTTP/1.1\r\nHost: cors.foo.com\r\nOrigin: https://app.example\r\n\
             Authorization: Basic dXNlcjpwYXNz\r\n\r\n",
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["name"], "echo");
}
