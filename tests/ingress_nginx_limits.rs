//! ingress-nginx's source ranges, block lists, rate and connection limits over real sockets
//! (issue 14): Ingresses (and the controller ConfigMap) are translated from YAML, published to
//! a proxy on 127.0.0.1, and requests go to a backend on 127.0.0.1. The client address comes
//! from `X-Forwarded-For` only when the peer is a trusted proxy (`--trusted-proxies`); each
//! test names the ingress-nginx e2e case it reproduces (kubernetes/ingress-nginx
//! `test/e2e/annotations/*.go`, `test/e2e/settings/*.go`).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico::proxy::{Cidr, ProxyOptions};
use portico::publish::Published;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options, Reason, Translation};
use support::{start_echo, Proxy};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const N: &str = "nginx.ingress.kubernetes.io/";

fn n(name: &str) -> String {
    format!("{N}{name}")
}

/// One Ingress `name` for `host`, path `/`, to the Service `echo`, with `annotations`.
fn ingress(name: &str, host: &str, annotations: &[(String, &str)]) -> String {
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
  uid: {name}-uid
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
        + "\n"
}

/// A proxy that trusts 127.0.0.1's `X-Forwarded-For`, serving the `echo` Service at `backend`
/// with `ingresses` and the ConfigMap `data`.
async fn serve_at(
    backend: SocketAddr,
    ingresses: &[String],
    data: &[(&str, &str)],
) -> (Proxy, Translation) {
    let mut documents = vec![echo_service(backend), config_map(data)];
    documents.extend(ingresses.iter().cloned());
    let mut loaded = Loaded::default();
    parse_documents("test.yaml", &documents.join("---\n"), &mut loaded);
    let options = Options {
        configmap: Some(("portico".into(), "portico".into())),
        ..Options::default()
    };
    let translation = translate(&loaded.snapshot, &options, &mut Cache::default());
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        trusted_proxies: Arc::new(vec!["127.0.0.1/32".parse::<Cidr>().unwrap()]),
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

async fn serve(ingresses: &[String], data: &[(&str, &str)]) -> (Proxy, Translation) {
    serve_at(start_echo("echo").await, ingresses, data).await
}

/// `GET /` for `host` from `client` (as a trusted proxy's `X-Forwarded-For` says), with extra
/// header lines.
async fn get_from(proxy: &Proxy, host: &str, client: &str, extra: &str) -> u16 {
    proxy
        .raw(&format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: {client}\r\n{extra}Connection: close\r\n\r\n"
        ))
        .await
        .status
}

/// ipallowlist.go "should set valid ip allowlist range" (`allow 18.0.0.0/8; allow
/// 56.0.0.0/8; deny all;`): 403 outside the list; the old name `whitelist-source-range`
/// (ipwhitelist.go) is the same annotation.
#[tokio::test]
async fn allowlist_source_range_answers_403_outside_the_list() {
    let (proxy, translation) = serve(
        &[
            ingress(
                "allow",
                "allow.example",
                &[(n("allowlist-source-range"), "18.0.0.0/8, 56.0.0.0/8")],
            ),
            ingress(
                "white",
                "white.example",
                &[(n("whitelist-source-range"), "18.0.0.0/8")],
            ),
        ],
        &[],
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    assert_eq!(get_from(&proxy, "allow.example", "18.1.2.3", "").await, 200);
    assert_eq!(get_from(&proxy, "allow.example", "56.0.0.1", "").await, 200);
    assert_eq!(get_from(&proxy, "allow.example", "10.0.0.1", "").await, 403);
    // An IPv4-mapped IPv6 client matches the IPv4 range.
    assert_eq!(
        get_from(&proxy, "allow.example", "::ffff:18.0.0.9", "").await,
        200
    );
    assert_eq!(get_from(&proxy, "white.example", "18.1.2.3", "").await, 200);
    assert_eq!(get_from(&proxy, "white.example", "56.0.0.1", "").await, 403);
}

/// The client address is never taken from an untrusted peer's header (spec page §5): without
/// `--trusted-proxies`, 127.0.0.1 is the client whatever `X-Forwarded-For` claims.
#[tokio::test]
async fn an_untrusted_forwarded_for_is_not_the_client() {
    let echo = start_echo("echo").await;
    let mut loaded = Loaded::default();
    let docs = [
        echo_service(echo),
        ingress(
            "allow",
            "allow.example",
            &[(n("allowlist-source-range"), "18.0.0.0/8")],
        ),
    ];
    parse_documents("test.yaml", &docs.join("---\n"), &mut loaded);
    let translation = translate(&loaded.snapshot, &Options::default(), &mut Cache::default());
    let proxy = Proxy::start().await;
    proxy.shared.store(Arc::new(Published {
        version: 2,
        translation: Arc::new(translation),
        snapshot: Default::default(),
    }));
    assert_eq!(get_from(&proxy, "allow.example", "18.1.2.3", "").await, 403);
}

/// The ConfigMap's `use-forwarded-headers` with `proxy-real-ip-cidr` (spec page §5): a peer
/// in the CIDR is believed about `X-Forwarded-For`, one outside it is not (its own address is
/// the client), without any `--trusted-proxies`.
#[tokio::test]
async fn use_forwarded_headers_decides_whose_address_counts() {
    for (cidr, expected) in [("127.0.0.1/32", 200), ("10.0.0.0/8", 403)] {
        let echo = start_echo("echo").await;
        let docs = [
            echo_service(echo),
            config_map(&[
                ("use-forwarded-headers", "true"),
                ("proxy-real-ip-cidr", cidr),
            ]),
            ingress(
                "allow",
                "allow.example",
                &[(n("allowlist-source-range"), "18.0.0.0/8")],
            ),
        ];
        let mut loaded = Loaded::default();
        parse_documents("test.yaml", &docs.join("---\n"), &mut loaded);
        let options = Options {
            configmap: Some(("portico".into(), "portico".into())),
            ..Options::default()
        };
        let translation = translate(&loaded.snapshot, &options, &mut Cache::default());
        let proxy = Proxy::start().await;
        proxy.shared.store(Arc::new(Published {
            version: 2,
            translation: Arc::new(translation),
            snapshot: Default::default(),
        }));
        assert_eq!(
            get_from(&proxy, "allow.example", "18.1.2.3", "").await,
            expected,
            "proxy-real-ip-cidr {cidr}"
        );
    }
}

/// ipdenylist.go "should set valid ip denylist range when whitelist is set": `deny` first,
/// then `allow` and `deny all`.
#[tokio::test]
async fn denylist_is_checked_before_the_allowlist() {
    let (proxy, _) = serve(
        &[ingress(
            "deny",
            "deny.example",
            &[
                (n("denylist-source-range"), "18.0.0.0/8, 56.0.0.0/8"),
                (n("whitelist-source-range"), "17.0.0.0/8, 18.0.0.0/8"),
            ],
        )],
        &[],
    )
    .await;
    assert_eq!(get_from(&proxy, "deny.example", "17.0.0.1", "").await, 200);
    assert_eq!(get_from(&proxy, "deny.example", "18.0.0.1", "").await, 403);
    assert_eq!(get_from(&proxy, "deny.example", "56.0.0.1", "").await, 403);
    assert_eq!(get_from(&proxy, "deny.example", "19.0.0.1", "").await, 403);
}

/// A source range with an entry that is no address fails closed (spec page §3; ingress-nginx
/// denies the location): 503 with a condition; other Ingresses are not affected.
#[tokio::test]
async fn an_invalid_source_range_fails_closed() {
    let (proxy, translation) = serve(
        &[
            ingress(
                "broken",
                "broken.example",
                &[(n("allowlist-source-range"), "18.0.0.0/8, 18.0.0.0/40")],
            ),
            ingress("fine", "fine.example", &[]),
        ],
        &[],
    )
    .await;
    let conditions: Vec<_> = translation
        .conditions
        .iter()
        .filter(|c| c.reason == Reason::InvalidAnnotation)
        .collect();
    assert_eq!(conditions.len(), 1, "{:?}", translation.conditions);
    assert!(conditions[0].message.contains("allowlist-source-range"));
    assert_eq!(
        get_from(&proxy, "broken.example", "18.0.0.1", "").await,
        503
    );
    assert_eq!(get_from(&proxy, "fine.example", "18.0.0.1", "").await, 200);
}

/// The ConfigMap's `whitelist-source-range` is the list of every Ingress without its own
/// (ingress-nginx `ipallowlist.Parse` falls back to the default backend's list).
#[tokio::test]
async fn configmap_source_range_applies_where_no_annotation_does() {
    let (proxy, _) = serve(
        &[
            ingress("plain", "plain.example", &[]),
            ingress(
                "own",
                "own.example",
                &[(n("whitelist-source-range"), "10.0.0.0/8")],
            ),
        ],
        &[("whitelist-source-range", "18.0.0.0/8")],
    )
    .await;
    assert_eq!(get_from(&proxy, "plain.example", "18.0.0.1", "").await, 200);
    assert_eq!(get_from(&proxy, "plain.example", "10.0.0.1", "").await, 403);
    assert_eq!(get_from(&proxy, "own.example", "10.0.0.1", "").await, 200);
    assert_eq!(get_from(&proxy, "own.example", "18.0.0.1", "").await, 403);
}

/// settings/global_access_block.go "should block CIDRs / User-Agents / Referers defined in the
/// ConfigMap": 403, on every host.
#[tokio::test]
async fn configmap_block_lists_answer_403() {
    let (proxy, _) = serve(
        &[ingress("plain", "plain.example", &[])],
        &[
            ("block-cidrs", "172.16.0.0/12,192.168.0.0/16,10.0.0.0/8"),
            (
                "block-user-agents",
                r"~*chrome\/68\.0\.3440\.106\ safari\/537\.36,AlphaBot",
            ),
            ("block-referers", r"~*example\.com,qwerty"),
        ],
    )
    .await;
    let ok = "18.0.0.1";
    assert_eq!(get_from(&proxy, "plain.example", ok, "").await, 200);
    assert_eq!(get_from(&proxy, "plain.example", "10.1.1.1", "").await, 403);
    assert_eq!(
        get_from(&proxy, "plain.example", "192.168.1.1", "").await,
        403
    );
    let chrome = "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/68.0.3440.106 Safari/537.36\r\n";
    assert_eq!(get_from(&proxy, "plain.example", ok, chrome).await, 403);
    assert_eq!(
        get_from(&proxy, "plain.example", ok, "User-Agent: AlphaBot\r\n").await,
        403
    );
    let iphone = "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 11_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/11.0 Mobile/15E148 Safari/604.1\r\n";
    assert_eq!(get_from(&proxy, "plain.example", ok, iphone).await, 200);
    for (referer, status) in [("example.com", 403), ("qwerty", 403), ("qwerty123", 200)] {
        let line = format!("Referer: {referer}\r\n");
        assert_eq!(
            get_from(&proxy, "plain.example", ok, &line).await,
            status,
            "{referer}"
        );
    }
    // Unknown hosts too (ingress-nginx's default server has the same `if`).
    assert_eq!(
        get_from(&proxy, "nowhere.example", "10.1.1.1", "").await,
        403
    );
}

/// ingress-nginx `limit-rpm` (`limit_req zone=... burst=limit*multiplier nodelay`): 1 + burst
/// requests at once, then the ConfigMap's `limit-req-status-code` (default 503). Per client
/// address, and not for `limit-allowlist` addresses. One per minute keeps the test free of
/// timing: nothing drains while it runs.
#[tokio::test]
async fn limit_rpm_refuses_beyond_the_burst_per_address() {
    let (proxy, _) = serve(
        &[
            ingress(
                "limited",
                "limited.example",
                &[
                    (n("limit-rpm"), "1"),
                    (n("limit-burst-multiplier"), "2"),
                    (n("limit-allowlist"), "20.0.0.0/8"),
                ],
            ),
            ingress(
                "coded",
                "coded.example",
                &[(n("limit-rpm"), "1"), (n("limit-burst-multiplier"), "0")],
            ),
        ],
        &[("limit-req-status-code", "429")],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get_from(&proxy, "limited.example", "18.0.0.1", "").await);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Another address has its own budget; an allowlisted one none.
    assert_eq!(
        get_from(&proxy, "limited.example", "18.0.0.2", "").await,
        200
    );
    for _ in 0..5 {
        assert_eq!(
            get_from(&proxy, "limited.example", "20.0.0.1", "").await,
            200
        );
    }
    // burst 0: one request, then refused.
    assert_eq!(get_from(&proxy, "coded.example", "18.0.0.1", "").await, 200);
    assert_eq!(get_from(&proxy, "coded.example", "18.0.0.1", "").await, 429);
}

/// A backend that holds every request until `release` is notified, then answers 200.
async fn held_backend() -> (SocketAddr, Arc<tokio::sync::Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let gate = gate.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                gate.notified().await;
                let _ = reader
                    .get_mut()
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (addr, release)
}

/// limitconnections.go "should limit-connections": 20 slow requests at once against
/// `limit-connections: 8` give 8 × 200 and 12 × 503; the count ends with the responses.
#[tokio::test]
async fn limit_connections_counts_requests_in_progress() {
    let (backend, release) = held_backend().await;
    let (proxy, _) = serve_at(
        backend,
        &[ingress(
            "conn",
            "conn.example",
            &[(n("limit-connections"), "8")],
        )],
        &[],
    )
    .await;
    let proxy = Arc::new(proxy);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..20 {
        let proxy = proxy.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(get_from(&proxy, "conn.example", "18.0.0.1", "").await);
        });
    }
    // The 12 beyond the limit are answered at once; the 8 wait at the backend.
    for _ in 0..12 {
        let status = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a response in time");
        assert_eq!(status, Some(503));
    }
    release.notify_waiters();
    let mut ok = 0;
    for _ in 0..8 {
        // Held requests that had not reached the backend yet when it was released wait for
        // the next release.
        let status = loop {
            match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
                Ok(Some(status)) => break status,
                Ok(None) => panic!("sender gone"),
                Err(_) => release.notify_waiters(),
            }
        };
        assert_eq!(status, 200);
        ok += 1;
    }
    assert_eq!(ok, 8);
    // Their slots are free again (the count ended with the responses).
    let again = tokio::spawn({
        let proxy = proxy.clone();
        async move { get_from(&proxy, "conn.example", "18.0.0.1", "").await }
    });
    for _ in 0..1_000 {
        if again.is_finished() {
            break;
        }
        release.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_finished(), "no answer in time");
    assert_eq!(again.await.unwrap(), 200);
}

/// limitrate.go "Check limit-rate annotation" (`limit_rate 90k;`): a response under the limit
/// arrives whole and unchanged through the throttle (the pacing itself is tested on tokio's
/// paused clock in `proxy/limits.rs`).
#[tokio::test]
async fn limit_rate_passes_the_response_through() {
    let (proxy, translation) = serve(
        &[ingress(
            "rate",
            "rate.example",
            &[(n("limit-rate"), "90"), (n("limit-rate-after"), "1")],
        )],
        &[],
    )
    .await;
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let plain = proxy.get("rate.example", "/a/path").await;
    assert_eq!(plain.status, 200);
    let json = plain.json();
    assert_eq!(json["path"], "/a/path", "{json}");
}

/// A ConfigMap block list or default source range that does not parse fails closed (spec
/// page §3, docs/decisions.md): a bad `block-*` entry makes every request 503, a bad default
/// source range the Ingresses that would use it; both are `InvalidConfigMapKey` conditions.
#[tokio::test]
async fn bad_configmap_lists_fail_closed() {
    let (proxy, translation) = serve(
        &[ingress("plain", "plain.example", &[])],
        &[("block-user-agents", "~bot(?=x)")],
    )
    .await;
    assert!(translation
        .conditions
        .iter()
        .any(|c| c.reason == Reason::InvalidConfigMapKey && c.message.contains("look-around")));
    assert_eq!(get_from(&proxy, "plain.example", "18.0.0.1", "").await, 503);

    let (proxy, _) = serve(
        &[
            ingress("plain", "plain.example", &[]),
            ingress(
                "own",
                "own.example",
                &[(n("denylist-source-range"), "10.0.0.0/8")],
            ),
        ],
        &[("denylist-source-range", "10.0.0.0/8, 300.0.0.0/8")],
    )
    .await;
    assert_eq!(get_from(&proxy, "plain.example", "18.0.0.1", "").await, 503);
    assert_eq!(get_from(&proxy, "own.example", "18.0.0.1", "").await, 200);
    assert_eq!(get_from(&proxy, "own.example", "10.0.0.1", "").await, 403);
}
