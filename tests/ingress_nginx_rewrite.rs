//! Regex paths and rewrites (issue 13) over real sockets: ingress-nginx's e2e cases for
//! `rewrite-target`, `use-regex`, `app-root`, `x-forwarded-prefix` and
//! `preserve-trailing-slash`, each reproduced with manifests → translate → proxy on 127.0.0.1
//! → echo upstream, asserting on what the upstream saw and what the client got.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use portico::publish::Published;
use portico::translate::{translate, Cache, Condition, Reason, Translation};
use support::{start_echo, tls, Proxy};

const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// The Service `echo` with one endpoint, the upstream echo server.
fn echo_service(echo: SocketAddr) -> String {
    let svc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "echo", "namespace": "default"},
        "spec": {"ports": [{"port": 80}]},
    });
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "echo-1", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": echo.port()}],
        "endpoints": [{"addresses": [echo.ip().to_string()]}],
    });
    format!("{svc}\n---\n{slice}")
}

/// ingress-nginx's e2e `framework.NewSingleIngress(name, path, host, ns, service, 80,
/// annotations)`: one rule, one Prefix path. `age` orders creation (e2e creates them one after
/// the other).
fn ingress(name: &str, path: &str, host: &str, age: u32, annotations: &[(&str, &str)]) -> String {
    ingress_typed(name, path, "Prefix", host, age, annotations)
}

fn ingress_typed(
    name: &str,
    path: &str,
    path_type: &str,
    host: &str,
    age: u32,
    annotations: &[(&str, &str)],
) -> String {
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (format!("{NGINX}{k}"), serde_json::Value::from(*v)))
        .collect();
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations,
            "creationTimestamp": format!("2026-01-01T00:{:02}:00Z", age)},
        "spec": {"rules": [{"host": host, "http": {"paths": [{"path": path,
            "pathType": path_type,
            "backend": {"service": {"name": "echo", "port": {"number": 80}}}}]}}]},
    })
    .to_string()
}

/// Translates the documents and publishes the result on the proxy.
fn publish(proxy: &Proxy, docs: &[String]) -> Arc<Translation> {
    let snapshot = tls::snapshot(docs);
    let translation = Arc::new(translate(&snapshot, &tls::options(), &mut Cache::default()));
    let version = proxy.shared.load().version + 1;
    proxy.shared.store(Arc::new(Published {
        version,
        translation: translation.clone(),
        snapshot: Default::default(),
    }));
    translation
}

/// The request-target the upstream saw for `GET path` on `host` (asserting a 200).
async fn upstream_path(proxy: &Proxy, host: &str, path: &str) -> String {
    let response = proxy.get(host, path).await;
    assert_eq!(response.status, 200, "{host}{path}: {}", response.text());
    response.json()["path"]
        .as_str()
        .expect("echo reports the path")
        .to_string()
}

async fn setup() -> (Proxy, String) {
    let echo = start_echo("echo").await;
    (Proxy::start().await, echo_service(echo))
}

// test/e2e/annotations/rewrite.go "should write rewrite logs" (`rewrite "(?i)/something" /`,
// rewritten data "/") and, in older releases, "should rewrite request URL" (mixed case).
#[tokio::test]
async fn rewrite_target_replaces_the_whole_path_case_insensitively() {
    let (proxy, svc) = setup().await;
    let host = "rewrite.bar.com";
    publish(
        &proxy,
        &[
            svc,
            ingress(host, "/something", host, 0, &[("rewrite-target", "/")]),
        ],
    );
    assert_eq!(upstream_path(&proxy, host, "/something").await, "/");
    assert_eq!(upstream_path(&proxy, host, "/SomeThing").await, "/");
    // nginx's rewrite replaces the whole URI: the rest of the path is gone, the query stays.
    assert_eq!(
        upstream_path(&proxy, host, "/something/a?b=1").await,
        "/?b=1"
    );
    // `^/something` is a prefix regex: `/somethingelse` matches too.
    assert_eq!(upstream_path(&proxy, host, "/somethingelse").await, "/");
    assert_eq!(proxy.get(host, "/other").await.status, 404);
}

// test/e2e/annotations/rewrite.go "should use correct longest path match".
#[tokio::test]
async fn longest_location_wins_once_a_rewrite_makes_the_host_regex() {
    let (proxy, svc) = setup().await;
    let host = "rewrite.bar.com";
    let acme = ingress("kube-lego", "/.well-known/acme/challenge", host, 0, &[]);
    publish(&proxy, &[svc.clone(), acme.clone()]);
    let path = "/.well-known/acme/challenge";
    assert_eq!(upstream_path(&proxy, host, path).await, path);
    let index = ingress(
        "rewrite-index",
        "/",
        host,
        1,
        &[("rewrite-target", "/new/backend")],
    );
    let translation = publish(&proxy, &[svc, acme, index]);
    let vhost = &translation.table.vhosts()[0];
    let locations: Vec<&str> = vhost
        .regex()
        .expect("regex mode")
        .locations
        .iter()
        .map(|l| l.path.as_str())
        .collect();
    assert_eq!(
        locations,
        [
            "/.well-known/acme/challenge/",
            "/.well-known/acme/challenge",
            "/"
        ]
    );
    assert_eq!(upstream_path(&proxy, host, path).await, path);
    assert_eq!(upstream_path(&proxy, host, "/x").await, "/new/backend");
}

// test/e2e/annotations/rewrite.go "should use ~* location modifier if regex annotation is
// present".
#[tokio::test]
async fn every_path_of_the_host_becomes_a_regex() {
    let (proxy, svc) = setup().await;
    let host = "rewrite.bar.com";
    publish(
        &proxy,
        &[
            svc,
            ingress("foo", "/foo", host, 0, &[]),
            ingress(
                "regex",
                "/foo.+",
                host,
                1,
                &[("use-regex", "true"), ("rewrite-target", "/new/backend")],
            ),
        ],
    );
    assert_eq!(upstream_path(&proxy, host, "/foo").await, "/foo");
    assert_eq!(
        upstream_path(&proxy, host, "/foo/bar").await,
        "/new/backend"
    );
}

// test/e2e/annotations/rewrite.go "should fail to use longest match for documented warning".
#[tokio::test]
async fn a_longer_regex_beats_a_literal_path() {
    let (proxy, svc) = setup().await;
    let host = "rewrite.bar.com";
    publish(
        &proxy,
        &[
            svc,
            ingress("foo", "/foo/bar/bar", host, 0, &[]),
            ingress(
                "regex",
                "/foo/bar/[a-z]{3}",
                host,
                1,
                &[("use-regex", "true"), ("rewrite-target", "/new/backend")],
            ),
        ],
    );
    assert_eq!(
        upstream_path(&proxy, host, "/foo/bar/bar").await,
        "/new/backend"
    );
}

// test/e2e/annotations/rewrite.go "should allow for custom rewrite parameters", and
// docs/examples/rewrite/README.md (`/something(/|$)(.*)` → `/$2`).
#[tokio::test]
async fn capture_groups_fill_the_target() {
    let (proxy, svc) = setup().await;
    let host = "rewrite.bar.com";
    let other = "rewrite.example.com";
    publish(
        &proxy,
        &[
            svc,
            ingress(
                "regex",
                "/foo/bar/(.+)",
                host,
                0,
                &[("use-regex", "true"), ("rewrite-target", "/new/backend/$1")],
            ),
            ingress_typed(
                "example",
                "/something(/|$)(.*)",
                "ImplementationSpecific",
                other,
                1,
                &[("use-regex", "true"), ("rewrite-target", "/$2")],
            ),
        ],
    );
    assert_eq!(
        upstream_path(&proxy, host, "/foo/bar/bar").await,
        "/new/backend/bar"
    );
    assert_eq!(
        upstream_path(&proxy, host, "/foo/bar/bar?x=1").await,
        "/new/backend/bar?x=1"
    );
    // The README's table.
    assert_eq!(upstream_path(&proxy, other, "/something").await, "/");
    assert_eq!(upstream_path(&proxy, other, "/something/").await, "/");
    assert_eq!(upstream_path(&proxy, other, "/something/new").await, "/new");
    // Escapes in the request stay escapes upstream.
    assert_eq!(
        upstream_path(&proxy, other, "/something/a%20b").await,
        "/a%20b"
    );
}

// test/e2e/annotations/approot.go "should redirect to /foo".
#[tokio::test]
async fn app_root_redirects_the_root_with_302() {
    let (proxy, svc) = setup().await;
    let host = "approot.bar.com";
    publish(
        &proxy,
        &[svc, ingress(host, "/", host, 0, &[("app-root", "/foo")])],
    );
    let response = proxy.get(host, "/").await;
    assert_eq!(response.status, 302);
    assert_eq!(
        response.header("location"),
        Some("http://approot.bar.com/foo")
    );
    // Only `/` redirects; `/foo` itself is proxied.
    assert_eq!(upstream_path(&proxy, host, "/foo").await, "/foo");
}

// test/e2e/annotations/xforwardedprefix.go "should set the X-Forwarded-Prefix to the
// annotation value" and "should not add X-Forwarded-Prefix if the annotation value is empty".
#[tokio::test]
async fn x_forwarded_prefix_goes_with_the_rewrite() {
    let (proxy, svc) = setup().await;
    publish(
        &proxy,
        &[
            svc,
            ingress(
                "xfp",
                "/",
                "xfp.baz.com",
                0,
                &[
                    ("x-forwarded-prefix", "/test/value"),
                    ("rewrite-target", "/foo"),
                ],
            ),
            ingress(
                "noxfp",
                "/",
                "noxfp.baz.com",
                1,
                &[("x-forwarded-prefix", ""), ("rewrite-target", "/foo")],
            ),
        ],
    );
    let response = proxy.get("xfp.baz.com", "/").await;
    assert_eq!(response.status, 200);
    let json = response.json();
    assert_eq!(json["path"], "/foo");
    assert_eq!(
        support::seen(&json, "x-forwarded-prefix"),
        vec!["/test/value"]
    );
    let response = proxy.get("noxfp.baz.com", "/").await;
    assert_eq!(response.status, 200);
    assert!(support::seen(&response.json(), "x-forwarded-prefix").is_empty());
}

// test/e2e/annotations/preservetrailingslash.go "should allow preservation of trailing
// slashes" (`true` keeps `/`), and lua_ingress.lua's default that drops it (here: `false`).
#[tokio::test]
async fn preserve_trailing_slash_decides_the_https_redirect() {
    let echo = start_echo("echo").await;
    let proxy = Proxy::start().await;
    let keep = "forcesslredirect.bar.com";
    let strip = "strip.bar.com";
    let cert = tls::cert(&[keep, strip]);
    publish(
        &proxy,
        &[
            tls::tls_secret("default", "cert", &cert),
            tls::app_yaml(
                "default",
                "keep",
                keep,
                &[keep],
                "cert",
                echo,
                &[
                    ("nginx.ingress.kubernetes.io/ssl-redirect", "true"),
                    (
                        "nginx.ingress.kubernetes.io/preserve-trailing-slash",
                        "true",
                    ),
                ],
            ),
            tls::app_yaml(
                "default",
                "strip",
                strip,
                &[strip],
                "cert",
                echo,
                &[(
                    "nginx.ingress.kubernetes.io/preserve-trailing-slash",
                    "false",
                )],
            ),
        ],
    );
    let response = proxy.get(keep, "/").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some("https://forcesslredirect.bar.com/")
    );
    assert_eq!(
        proxy.get(keep, "/dir/").await.header("location"),
        Some("https://forcesslredirect.bar.com/dir/")
    );
    assert_eq!(
        proxy.get(strip, "/dir/").await.header("location"),
        Some("https://strip.bar.com/dir")
    );
    assert_eq!(
        proxy.get(strip, "/dir/?a=b").await.header("location"),
        Some("https://strip.bar.com/dir/?a=b")
    );
}

fn conditions_of<'a>(translation: &'a Translation, name: &str) -> Vec<&'a Condition> {
    translation
        .conditions
        .iter()
        .filter(|c| c.object.name == name)
        .collect()
}

/// issue 13 "Bad input": each problem is a condition naming the Ingress, the annotation or
/// path and the reason; everything else on the host keeps serving; nothing panics or stalls.
#[tokio::test]
async fn bad_regexes_and_targets_are_conditions_and_the_rest_serves() {
    let (proxy, svc) = setup().await;
    let host = "bad.example.com";
    let regex = |name: &str, path: &str, age: u32, target: &str| {
        ingress_typed(
            name,
            path,
            "ImplementationSpecific",
            host,
            age,
            &[("use-regex", "true"), ("rewrite-target", target)],
        )
    };
    let huge_value = format!("/{}", "a".repeat(1 << 20));
    let translation = publish(
        &proxy,
        &[
            svc,
            ingress("good", "/good", host, 0, &[]),
            regex("unparsable", "/broken(", 1, "/x"),
            regex("lookahead", "/(?=secret)", 2, "/x"),
            regex("backref", "/(a)\\1", 3, "/x"),
            regex("possessive", "/a++", 4, "/x"),
            regex("missing-group", "/api/(.*)", 5, "/v2/$2"),
            regex("huge-regex", "/h\\w{1000}\\w{1000}", 6, "/x"),
            regex("huge-annotation", "/ha", 7, &huge_value),
            regex("variable", "/var", 8, "/$host"),
        ],
    );
    let expect = |name: &str, reason: Reason, words: &[&str]| {
        let found = conditions_of(&translation, name);
        assert!(
            found.iter().any(|c| c.reason == reason
                && words.iter().all(|w| c.message.contains(w))
                && c.message.len() < 600),
            "{name}: {found:?}"
        );
    };
    expect(
        "unparsable",
        Reason::InvalidPath,
        &["/broken(", "invalid regex"],
    );
    expect("lookahead", Reason::InvalidPath, &["look-around"]);
    expect("backref", Reason::InvalidPath, &["backreference"]);
    expect("possessive", Reason::InvalidPath, &["possessive"]);
    expect(
        "missing-group",
        Reason::InvalidAnnotation,
        &["rewrite-target", "$2", "1 capture group"],
    );
    expect("huge-regex", Reason::InvalidPath, &["KiB"]);
    expect(
        "huge-annotation",
        Reason::InvalidAnnotation,
        &["rewrite-target", "bytes long"],
    );
    expect("variable", Reason::InvalidAnnotation, &["never evaluated"]);

    // The rest serves: the literal path (now a regex), the path whose target was refused
    // (served unrewritten: the default), the path whose group does not exist (unrewritten).
    assert_eq!(upstream_path(&proxy, host, "/good").await, "/good");
    assert_eq!(upstream_path(&proxy, host, "/ha").await, "/ha");
    assert_eq!(upstream_path(&proxy, host, "/api/x").await, "/api/x");
    // A refused regex never matches.
    assert_eq!(proxy.get(host, "/broken(").await.status, 404);
}

/// `portico explain` names the regex that matched, in nginx's order, and the rewritten path.
#[tokio::test]
async fn explain_names_the_matching_regex_and_the_rewrite() {
    let (proxy, svc) = setup().await;
    let host = "rewrite.bar.com";
    let translation = publish(
        &proxy,
        &[
            svc,
            ingress("foo", "/foo", host, 0, &[]),
            ingress(
                "regex",
                "/foo/(.+)",
                host,
                1,
                &[("use-regex", "true"), ("rewrite-target", "/new/$1")],
            ),
        ],
    );
    let e = portico::explain::explain(&translation, None, host, "/foo/bar?q=1", None);
    let chosen: Vec<&str> = e
        .routes
        .iter()
        .filter(|c| c.chosen)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(chosen, ["~* ^/foo/(.+)"]);
    assert!(
        e.outcome.why.contains("(?i)^/foo/(.+)"),
        "{}",
        e.outcome.why
    );
    assert_eq!(e.request.forwarded_path.as_deref(), Some("/new/bar?q=1"));
    // What explain says is what the proxy does.
    assert_eq!(
        upstream_path(&proxy, host, "/foo/bar?q=1").await,
        "/new/bar?q=1"
    );
    let e = portico::explain::explain(&translation, None, host, "/foo", None);
    let chosen: Vec<&str> = e
        .routes
        .iter()
        .filter(|c| c.chosen)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(chosen, ["~* ^/foo"]);
}

// test/e2e/ingress/pathtype_mixed.go "should choose the correct location" (Exact `/foo` and
// Prefix `/foo` → `location = /foo` and `location /foo/`), on a host another Ingress turns
// regex: both become `~* ^/foo` and `~* ^/foo/` (template.go `buildLocation` with
// enforceRegex), so the longer `/foo/` comes first and `^/foo` also takes `/foobar`.
#[test]
fn exact_and_prefix_under_regex_follow_nginx_locations() {
    let host = "mixed.path";
    let docs = [
        echo_service("127.0.0.1:9".parse().expect("addr")),
        ingress_typed("exact-foo", "/foo", "Exact", host, 0, &[]),
        ingress("prefix-foo", "/foo", host, 1, &[]),
        ingress_typed(
            "regex",
            "/zzz.*",
            "ImplementationSpecific",
            host,
            2,
            &[("use-regex", "true")],
        ),
    ];
    let snapshot = tls::snapshot(&docs);
    let translation = translate(&snapshot, &tls::options(), &mut Cache::default());
    let served_by = |path: &str| {
        translation
            .table
            .decide(host, path)
            .route()
            .map(|r| r.origin.name.clone())
    };
    assert_eq!(served_by("/foo/bar").as_deref(), Some("prefix-foo"));
    assert_eq!(served_by("/foo").as_deref(), Some("exact-foo"));
    assert_eq!(served_by("/foobar").as_deref(), Some("exact-foo"));
    assert_eq!(served_by("/FOO").as_deref(), Some("exact-foo"));
    assert_eq!(served_by("/zzz").as_deref(), Some("regex"));
    assert_eq!(served_by("/other"), None);
}
