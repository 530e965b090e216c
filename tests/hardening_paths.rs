//! Issue 10 items 4 and 5 over real sockets (spec §3.2, §3.4, §6.1; docs/security.md
//! "Request paths" and "Host"): a proxy and echo backends on 127.0.0.1:0, raw HTTP/1 and
//! HTTP/2 clients, asserting on what the backend saw and what the client got.
//!
//! Layout used throughout: Prefix `/public` → echo `public`, Prefix `/admin` → echo `admin`,
//! on host `a.test`; `b.test` → echo `b`; anything else → the default backend `default`.
//! Every backend here is an echo that answers 200 with JSON, so a 400 with the proxy's
//! `text/plain` body means the request never left the proxy.

mod support;

use bytes::Bytes;
use portico::proxy::ProxyOptions;
use portico::routing::normalize::PathRules;
use portico::routing::{HostMatch, PathType};
use support::*;

async fn layout(options: ProxyOptions) -> Proxy {
    let public = start_echo("public").await;
    let admin = start_echo("admin").await;
    let b = start_echo("b").await;
    let default = start_echo("default").await;
    let proxy = Proxy::start_with(options).await;
    publish(
        &proxy.shared,
        vec![
            vhost(
                HostMatch::Exact("a.test".into()),
                vec![
                    route("/public", PathType::Prefix, endpoints(&[public])),
                    route("/admin", PathType::Prefix, endpoints(&[admin])),
                ],
            ),
            vhost(
                HostMatch::Exact("b.test".into()),
                vec![route("/", PathType::Prefix, endpoints(&[b]))],
            ),
        ],
        Some(endpoints(&[default])),
    );
    proxy
}

async fn strict() -> Proxy {
    layout(ProxyOptions {
        response_timeout: BOUND,
        ..ProxyOptions::default()
    })
    .await
}

/// The proxy's own 400: never forwarded.
fn assert_refused(response: &RawResponse, what: &str) {
    assert_eq!(response.status, 400, "{what}: {}", response.text());
    assert_eq!(response.header("server"), Some("portico"), "{what}");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{what}"
    );
    assert!(response.text().starts_with("400 Bad Request"), "{what}");
}

/// Served by echo `name`, which saw request-target `target`.
fn assert_served(response: &RawResponse, name: &str, target: &str, what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.text());
    let json = response.json();
    assert_eq!(json["name"], name, "{what}");
    assert_eq!(json["path"], target, "{what}");
}

#[tokio::test]
async fn backend_sees_the_path_that_was_matched() {
    let proxy = strict().await;
    for (target, name, seen) in [
        // Dot-segments, encoded or not, are resolved once, here: the backend gets the result.
        ("/public/%2e%2e/admin/x", "admin", "/admin/x"),
        ("/public/%2E%2E/admin/x?q=1", "admin", "/admin/x?q=1"),
        ("/admin/../public/x", "public", "/public/x"),
        ("/public/./x", "public", "/public/x"),
        ("/%70ublic/x", "public", "/public/x"),
        // The query is never touched, even when the path is rewritten.
        (
            "/public/./x?a=/../b&c=%2F&d=%2e%2e",
            "public",
            "/public/x?a=/../b&c=%2F&d=%2e%2e",
        ),
        // Already in normal form: byte-for-byte (spec §6.1).
        ("/public/a//b?q=1", "public", "/public/a//b?q=1"),
        ("/public/caf%c3%a9", "public", "/public/caf%c3%a9"),
        ("/public/a;v=1/b", "public", "/public/a;v=1/b"),
    ] {
        let response = proxy.get("a.test", target).await;
        assert_served(&response, name, seen, target);
    }
}

#[tokio::test]
async fn ambiguous_paths_are_refused_before_routing() {
    let proxy = strict().await;
    for target in [
        // Encoded separators: decoded into `/` or `\` by many backends.
        "/public/..%2fadmin/x",
        "/public/..%2Fadmin/x",
        "/public%2F..%2Fadmin/x",
        "/public/a%5cb",
        // `..` over an empty segment: a slash-merging backend resolves it elsewhere.
        "/public//../admin/x",
        "/public//x/../../admin/x",
        // Servlet path parameters on a dot-segment (`..;` is `..` to Tomcat).
        "/public/..;/admin/x",
        "/public/..;jsessionid=1/admin/x",
        "/public/%2e%2e;/admin/x",
        // Backslashes.
        "/public/..\\admin\\x",
        // Invalid or overlong UTF-8 (the overlong `.` is `%C0%AE`).
        "/public/%c0%ae%c0%ae/admin/x",
        "/public/%e0%80%ae%e0%80%ae/admin/x",
        "/public/%ff/x",
        // Non-ASCII look-alikes of `.` and `/`, raw and encoded.
        "/public/\u{FF0E}\u{FF0E}/admin/x",
        "/public/%EF%BC%8E%EF%BC%8E/admin/x",
        "/public/..\u{FF0F}admin/x",
        // NUL.
        "/public/x%00/../../admin",
        // Malformed escapes: `%2%65` is `%2e` once `%65` is decoded.
        "/public/%2%65%2%65/admin/x",
        "/public/100%",
    ] {
        let response = proxy.get("a.test", target).await;
        assert_refused(&response, target);
    }
    // The connection-level damage is nil: the next request is served.
    assert_served(
        &proxy.get("a.test", "/admin/y").await,
        "admin",
        "/admin/y",
        "after",
    );
}

#[tokio::test]
async fn encoded_slash_is_refused_by_default_and_passed_opaque_when_allowed() {
    let proxy = strict().await;
    assert_refused(&proxy.get("a.test", "/public/a%2Fb").await, "strict");

    let proxy = layout(ProxyOptions {
        response_timeout: BOUND,
        path_rules: PathRules {
            allow_encoded_slashes: true,
        },
        ..ProxyOptions::default()
    })
    .await;
    for target in ["/public/a%2Fb", "/public/a%2fb?x=%2F", "/public/%2F"] {
        assert_served(&proxy.get("a.test", target).await, "public", target, target);
    }
    // `%2F` never becomes a separator (spec §3.4): `/admin%2Fx` is not under `/admin`, and
    // a.test has no fallback (spec §3.7).
    let response = proxy.get("a.test", "/admin%2Fx").await;
    assert_eq!(response.status, 404, "{}", response.text());
    assert_eq!(response.header("server"), Some("portico"));
    // Still refused: an encoded slash that would make a dot-segment once decoded, and the
    // other ambiguous forms.
    for target in [
        "/public/..%2fadmin/x",
        "/public/x%2F..%2F..%2Fadmin",
        "/public/a%5Cb",
        "/public//../admin",
    ] {
        assert_refused(&proxy.get("a.test", target).await, target);
    }
}

#[tokio::test]
async fn hosts_with_userinfo_are_refused() {
    let proxy = strict().await;
    for host in ["x@a.test", "a.test@b.test", "user:pw@a.test:80", "@a.test"] {
        assert_refused(&proxy.get(host, "/public/").await, host);
    }
    // Absolute-form: the authority is what routes, so its userinfo must not reach `Host`.
    let response = proxy
        .raw("GET http://a.test@b.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n")
        .await;
    assert_refused(&response, "absolute-form userinfo");
    assert_served(&proxy.get("b.test", "/").await, "b", "/", "after");
}

#[tokio::test]
async fn malformed_hosts_are_refused() {
    let proxy = strict().await;
    for host in [
        "a.test/evil",
        "a.test evil",
        "a.test:80:80",
        "a.test:65536",
        "a.test:http",
        "[::1",
        "[a.test]",
        "<script>",
        "a.test?x",
        "a.test#x",
        "a%zz.test",
    ] {
        assert_refused(&proxy.get(host, "/").await, host);
    }
}

#[tokio::test]
async fn valid_hosts_still_route() {
    let proxy = strict().await;
    for (host, name) in [
        ("a.test", "public"),
        ("A.Test:8080", "public"),
        ("a.test.", "public"),
        ("a.test:", "public"),
        ("[::1]:8080", "default"),
        ("10.0.0.7", "default"),
        ("other.example", "default"),
        ("a_b.test", "default"),
    ] {
        let response = proxy.get(host, "/public/").await;
        assert_eq!(response.status, 200, "{host}");
        let json = response.json();
        assert_eq!(json["name"], name, "{host}");
        // spec §6.1: Host forwarded unchanged.
        assert_eq!(json["host"], host, "{host}");
    }
    // spec §3.2: HTTP/1.0 without Host still has the empty host.
    let response = proxy.raw("GET /x HTTP/1.0\r\n\r\n").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["name"], "default");
}

#[tokio::test]
async fn absolute_form_needs_a_valid_host_header_and_replaces_it() {
    let proxy = strict().await;
    // RFC 9112 §3.2.2: the target's authority wins over a different (valid) Host.
    let response = proxy
        .raw("GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    assert_served(&response, "b", "/x", "absolute-form");
    assert_eq!(response.json()["host"], "b.test");
    // RFC 9112 §3.2: an invalid Host is 400 even though it would be replaced, and HTTP/1.1
    // needs one at all.
    for request in [
        "GET http://b.test/x HTTP/1.1\r\nHost: a.test/evil\r\n\r\n",
        "GET http://b.test/x HTTP/1.1\r\nHost: x@a.test\r\n\r\n",
        "GET http://b.test/x HTTP/1.1\r\n\r\n",
    ] {
        assert_refused(&proxy.raw(request).await, request);
    }
    // The absolute-form path goes through the same checks as any other.
    let response = proxy
        .raw("GET http://a.test/public/%2e%2e/admin/x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    assert_served(&response, "admin", "/admin/x", "absolute-form path");
    let response = proxy
        .raw("GET http://a.test/public//../admin/x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    assert_refused(&response, "absolute-form //..");
}

/// One HTTP/2 (prior knowledge) request; the status and, on 200, the echo's JSON.
async fn h2_get(proxy: &Proxy, uri: &str, host: Option<&str>) -> (u16, Option<serde_json::Value>) {
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (client, connection) = tokio::time::timeout(BOUND, h2::client::handshake(tcp))
        .await
        .unwrap()
        .unwrap();
    tokio::spawn(connection);
    let mut client = tokio::time::timeout(BOUND, client.ready())
        .await
        .unwrap()
        .unwrap();
    let mut request = http::Request::get(uri);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let (response, _) = client
        .send_request(request.body(()).unwrap(), true)
        .unwrap();
    let response = tokio::time::timeout(BOUND, response)
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = tokio::time::timeout(BOUND, body.data()).await.unwrap() {
        let chunk: Bytes = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let json = (status == 200).then(|| serde_json::from_slice(&bytes).unwrap());
    (status, json)
}

#[tokio::test]
async fn h2_host_must_agree_with_authority() {
    let proxy = strict().await;
    // RFC 9113 §8.3.1: a Host naming another origin than :authority is malformed.
    let (status, _) = h2_get(&proxy, "http://a.test/public/", Some("b.test")).await;
    assert_eq!(status, 400);
    let (status, _) = h2_get(&proxy, "http://a.test/public/", Some("x@a.test")).await;
    assert_eq!(status, 400);
    // The same origin after scheme-based normalisation is fine; :authority is forwarded.
    let (status, json) = h2_get(&proxy, "http://a.test/public/", Some("A.TEST:80")).await;
    assert_eq!(status, 200);
    let json = json.unwrap();
    assert_eq!(json["name"], "public");
    assert_eq!(json["host"], "a.test");
    // The h2 path is checked and forwarded as matched, like HTTP/1's.
    let (status, json) = h2_get(&proxy, "http://a.test/public/%2e%2e/admin/x", None).await;
    assert_eq!(status, 200);
    assert_eq!(json.unwrap()["path"], "/admin/x");
    let (status, _) = h2_get(&proxy, "http://a.test/public/..%2Fadmin/x", None).await;
    assert_eq!(status, 400);
}
