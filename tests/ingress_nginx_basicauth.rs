//! ingress-nginx's basic authentication (`auth-type: basic`, `auth-secret`,
//! `auth-secret-type`, `auth-realm`; issue 15) over real sockets: Ingresses and Secrets are
//! translated from YAML, published to a proxy on 127.0.0.1, and requests go to an echo
//! backend on 127.0.0.1. Each test names the ingress-nginx e2e case it reproduces
//! (`test/e2e/annotations/auth.go` in kubernetes/ingress-nginx). Hashes are made here, with
//! bcrypt's lowest cost (the e2e's 14 would only slow the test down).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use portico::proxy::ProxyOptions;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options, Reason, Translation};
use support::{start_echo, Proxy, RawResponse};

const N: &str = "nginx.ingress.kubernetes.io/";

fn n(name: &str) -> String {
    format!("{N}{name}")
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// One Ingress `name` for `host`, path `/`, to the Service `echo`, with `annotations`.
fn ingress(name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
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
      - path: /
        pathType: Prefix
        backend: {{service: {{name: echo, port: {{number: 80}}}}}}
"
    )
}

/// An `Opaque` Secret `name` in `default` with `data` (values base64-encoded here).
fn secret(name: &str, data: &[(&str, &str)]) -> String {
    let data: Vec<String> = data
        .iter()
        .map(|(k, v)| format!("  {k}: {}", b64(v)))
        .collect();
    format!(
        "apiVersion: v1
kind: Secret
type: Opaque
metadata: {{name: {name}, namespace: default}}
data:
{}
",
        data.join("\n")
    )
}

/// The IngressClass, the Service `echo` and its one endpoint.
fn echo_service(echo: SocketAddr) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: portico}}
spec: {{controller: portico.dev/ingress-controller}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec:
  ports: [{{port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: default
  labels: {{kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints:
- addresses: [\"{ip}\"]
",
        port = echo.port(),
        ip = echo.ip()
    )
}

fn translate_with(documents: &[String], cache: &mut Cache) -> Translation {
    let mut loaded = Loaded::default();
    parse_documents("test.yaml", &documents.join("---\n"), &mut loaded);
    translate(&loaded.snapshot, &Options::default(), cache)
}

fn publish(proxy: &Proxy, translation: Translation) {
    proxy.publish_translation(translation);
}

/// A proxy serving `documents` after the echo Service; the echo's address for later
/// publications.
async fn serve(documents: &[String]) -> (Proxy, Translation, SocketAddr) {
    let echo = start_echo("echo").await;
    let mut all = vec![echo_service(echo)];
    all.extend(documents.iter().cloned());
    let translation = translate_with(&all, &mut Cache::default());
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        ..ProxyOptions::default()
    })
    .await;
    publish(&proxy, translation.clone());
    (proxy, translation, echo)
}

/// `GET /` for `host`, with `user:password` as basic credentials when given.
async fn get(proxy: &Proxy, host: &str, credentials: Option<&str>) -> RawResponse {
    let auth = credentials
        .map(|c| format!("Authorization: Basic {}\r\n", b64(c)))
        .unwrap_or_default();
    proxy
        .raw(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n"))
        .await
}

fn bcrypt_line(user: &str, password: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap())
}

fn basic(secret: &str, realm: &str) -> Vec<(String, String)> {
    vec![
        (n("auth-type"), "basic".into()),
        (n("auth-secret"), secret.into()),
        (n("auth-realm"), realm.into()),
    ]
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// auth.go "should return status code 200 when no authentication is configured", and an
/// Ingress with basic auth leaves the other hosts alone.
#[tokio::test]
async fn without_authentication_requests_pass() {
    let a = basic("test", "test auth");
    let (proxy, _, _) = serve(&[
        ingress("open", "open", &[]),
        ingress("auth", "auth", &pairs(&a)),
        secret("test", &[("auth", &bcrypt_line("foo", "bar"))]),
    ])
    .await;
    let r = get(&proxy, "open", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["host"], "open");
    assert_eq!(get(&proxy, "auth", None).await.status, 401);
}

/// auth.go "should return status code 503 when authentication is configured with an invalid
/// secret": a Secret that does not exist fails closed, with a condition.
#[tokio::test]
async fn a_missing_secret_answers_503() {
    let a = basic("something", "test auth");
    let (proxy, translation, _) = serve(&[ingress("auth", "auth", &pairs(&a))]).await;
    assert_eq!(get(&proxy, "auth", None).await.status, 503);
    assert_eq!(get(&proxy, "auth", Some("foo:bar")).await.status, 503);
    let condition = translation
        .conditions
        .iter()
        .find(|c| c.object.name == "auth")
        .expect("a condition");
    assert_eq!(condition.reason, Reason::InvalidAnnotation);
    assert!(
        condition.message.contains("names no Secret"),
        "{condition:?}"
    );
}

/// auth.go "should return status code 401 when authentication is configured but
/// Authorization header is not configured" and "... sent with invalid credentials", with the
/// realm in `WWW-Authenticate` (`auth_basic "test auth"`).
#[tokio::test]
async fn no_or_wrong_credentials_answer_401_with_the_realm() {
    let a = basic("test", "test auth");
    let (proxy, _, _) = serve(&[
        ingress("auth", "auth", &pairs(&a)),
        secret("test", &[("auth", &bcrypt_line("foo", "bar"))]),
    ])
    .await;
    for credentials in [None, Some("user:pass"), Some("foo:baz"), Some("foo")] {
        let r = get(&proxy, "auth", credentials).await;
        assert_eq!(r.status, 401, "{credentials:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"test auth\"")
        );
        assert!(
            r.text().contains("401 Authorization Required"),
            "{}",
            r.text()
        );
    }
}

/// auth.go "should return status code 200 when authentication is configured and
/// Authorization header is sent": the upstream is reached, and sees the `Authorization`
/// header (nginx passes it on).
#[tokio::test]
async fn right_credentials_reach_the_upstream() {
    let a = basic("test", "test auth");
    let (proxy, _, _) = serve(&[
        ingress("auth", "auth", &pairs(&a)),
        secret("test", &[("auth", &bcrypt_line("foo", "bar"))]),
    ])
    .await;
    // Twice: the second is answered from the verified-credentials cache.
    for _ in 0..2 {
        let r = get(&proxy, "auth", Some("foo:bar")).await;
        assert_eq!(r.status, 200);
        let json = r.json();
        let seen = support::seen(&json, "authorization");
        assert_eq!(seen, [format!("Basic {}", b64("foo:bar"))]);
    }
}

/// auth.go "should return status code 200 when authentication is configured with a map and
/// Authorization header is sent": `auth-secret-type: auth-map`, each key a user.
#[tokio::test]
async fn an_auth_map_secret_lists_users_by_key() {
    let mut a = basic("test", "test auth");
    a.push((n("auth-secret-type"), "auth-map".into()));
    let hash = bcrypt::hash("bar", 4).unwrap();
    let (proxy, _, _) = serve(&[
        ingress("auth", "auth", &pairs(&a)),
        secret("test", &[("foo", &hash), ("other", "{PLAIN}x")]),
    ])
    .await;
    assert_eq!(get(&proxy, "auth", Some("foo:bar")).await.status, 200);
    assert_eq!(get(&proxy, "auth", Some("other:x")).await.status, 200);
    assert_eq!(get(&proxy, "auth", Some("foo:x")).await.status, 401);
}

/// auth.go "should return status code 401 when authentication is configured with invalid
/// content and Authorization header is sent": `auth: "foo:"` lets nobody in.
#[tokio::test]
async fn invalid_content_lets_nobody_in() {
    let a = basic("test", "test auth");
    let (proxy, translation, _) = serve(&[
        ingress("auth", "auth", &pairs(&a)),
        secret("test", &[("auth", "foo:")]),
    ])
    .await;
    assert_eq!(get(&proxy, "auth", Some("foo:bar")).await.status, 401);
    assert_eq!(get(&proxy, "auth", Some("foo:")).await.status, 401);
    assert!(translation
        .conditions
        .iter()
        .any(|c| c.message.contains("no usable user")));
}

/// The hash forms `htpasswd` writes (`-m` apr1, `-s` SHA, `-B` bcrypt) in one file with
/// garbage lines: the good lines work, the others are reported (never their hashes).
#[tokio::test]
async fn good_lines_work_among_garbage() {
    let a = basic("test", "x");
    // `openssl passwd -apr1 -salt r31tn0Pa secret`; `{SHA}` of "secret".
    let file = format!(
        "apr:$apr1$r31tn0Pa$EIV.F/v7BHPdZw91Lcw8E/\ngarbage line\nsha:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\n\
         des:abJnggxhB/yWI\n{}",
        bcrypt_line("bc", "secret")
    );
    let (proxy, translation, _) = serve(&[
        ingress("auth", "auth", &pairs(&a)),
        secret("test", &[("auth", &file)]),
    ])
    .await;
    for user in ["apr", "sha", "bc"] {
        let ok = get(&proxy, "auth", Some(&format!("{user}:secret"))).await;
        assert_eq!(ok.status, 200, "{user}");
        let bad = get(&proxy, "auth", Some(&format!("{user}:Secret"))).await;
        assert_eq!(bad.status, 401, "{user}");
    }
    assert_eq!(get(&proxy, "auth", Some("des:secret")).await.status, 401);
    let warnings: Vec<&str> = translation
        .conditions
        .iter()
        .filter(|c| c.object.name == "auth")
        .inspect(|c| assert_eq!(c.reason, Reason::BasicAuthUserUnusable))
        .map(|c| c.message.as_str())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| !w.contains("abJngg")));
}

/// Fail closed where ingress-nginx denies the location (auth/main.go `LocationDeniedError`):
/// a Secret in another namespace, one without `auth`, an unknown type; and `digest`, which
/// Portico does not implement.
#[tokio::test]
async fn what_cannot_be_enforced_answers_503() {
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("cross", basic("other/test", "x")),
        ("noauth", basic("noauth", "x")),
        (
            "digest",
            vec![
                (n("auth-type"), "digest".into()),
                (n("auth-secret"), "test".into()),
            ],
        ),
        (
            "type",
            vec![
                (n("auth-type"), "basic".into()),
                (n("auth-secret"), "test".into()),
                (n("auth-secret-type"), "htdigest".into()),
            ],
        ),
    ];
    let mut documents: Vec<String> = cases
        .iter()
        .map(|(host, a)| ingress(host, host, &pairs(a)))
        .collect();
    documents.push(secret("test", &[("auth", "foo:{PLAIN}bar")]));
    documents.push(secret("noauth", &[("users", "foo:{PLAIN}bar")]));
    documents.push(
        secret("test", &[("auth", "foo:{PLAIN}bar")])
            .replace("namespace: default", "namespace: other"),
    );
    let (proxy, translation, _) = serve(&documents).await;
    for (host, _) in &cases {
        assert_eq!(
            get(&proxy, host, Some("foo:bar")).await.status,
            503,
            "{host}"
        );
        assert!(
            translation
                .conditions
                .iter()
                .any(|c| c.object.name == *host && c.message.contains("answers 503")),
            "{host}"
        );
    }
}

/// A changed Secret is read again (incremental translate re-derives the Ingress that names
/// it), and the old password, although verified and cached before, no longer opens.
#[tokio::test]
async fn a_changed_password_replaces_the_old_one() {
    let echo = start_echo("echo").await;
    let a = basic("test", "x");
    let with = |line: String| {
        vec![
            echo_service(echo),
            ingress("auth", "auth", &pairs(&a)),
            secret("test", &[("auth", &line)]),
        ]
    };
    let mut cache = Cache::default();
    let proxy = Proxy::start_with(ProxyOptions::default()).await;
    publish(
        &proxy,
        translate_with(&with(bcrypt_line("foo", "old")), &mut cache),
    );
    assert_eq!(get(&proxy, "auth", Some("foo:old")).await.status, 200);
    publish(
        &proxy,
        translate_with(&with(bcrypt_line("foo", "new")), &mut cache),
    );
    assert_eq!(get(&proxy, "auth", Some("foo:old")).await.status, 401);
    assert_eq!(get(&proxy, "auth", Some("foo:new")).await.status, 200);
}
