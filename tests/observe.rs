//! Metrics and access log after known traffic over real sockets: exact counter and histogram
//! counts, every family present and parseable by a Prometheus text parser, one access log line
//! per request with its fields, in both formats.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico::access_log::{AccessLog, Format};
use portico::metrics::Metrics;
use portico::proxy::{Observe, ProxyOptions};
use portico::routing::{HostMatch, PathType, Target, Unavailable};
use support::{backend, closed_port, endpoints, publish, route, start_echo, vhost, Proxy};

/// An access log writer the test can read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) until `n` lines have been written.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..400 {
            let lines = self.lines();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} access log lines, got {:?}", self.lines());
    }
}

async fn start(format: Format) -> (Proxy, Arc<Metrics>, Lines) {
    let metrics = Arc::new(Metrics::new());
    let lines = Lines::default();
    let (log, _thread) = AccessLog::start(
        format,
        Box::new(lines.clone()),
        1024,
        metrics.access_log_dropped(),
    );
    let proxy = Proxy::start_with(ProxyOptions {
        response_timeout: Duration::from_secs(10),
        observe: Observe {
            metrics: metrics.clone(),
            access_log: Some(log),
        },
        ..ProxyOptions::default()
    })
    .await;
    (proxy, metrics, lines)
}

/// `shop.example`: `/` to a live echo, `/down` to two closed endpoints, `/gone` to a missing
/// Service. Nothing else is routed.
async fn table(proxy: &Proxy) {
    let live = endpoints(&[start_echo("a").await]);
    let down = endpoints(&[closed_port().await, closed_port().await]);
    let gone = backend(Target::Unavailable(Unavailable::ServiceNotFound));
    publish(
        &proxy.shared,
        vec![vhost(
            HostMatch::Exact("shop.example".into()),
            vec![
                route("/", PathType::Prefix, live),
                route("/down", PathType::Prefix, down),
                route("/gone", PathType::Prefix, gone),
            ],
        )],
        None,
    );
}

/// What the publisher does on every version, for tables built by hand and stored directly.
fn push_configuration(metrics: &Metrics, proxy: &Proxy) {
    let published = proxy.shared.load();
    metrics.configuration(
        published.version,
        &published.translation.table,
        &published.translation.tls,
        Default::default(),
    );
}

/// The value of the sample `name` whose labels include all of `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain value"),
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} {labels:?} sample, got {found:?}"
    );
    found[0]
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    // Every line is a comment or a sample the parser understands.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let one =
            prometheus_parse::Scrape::parse(std::iter::once(Ok(line.to_string()))).expect("parse");
        assert_eq!(one.samples.len(), 1, "unparseable line {line:?}");
    }
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse")
}

/// Waits (bounded) until the metrics show `n` finished requests: the count is taken when the
/// response body ends, which can be just after the client has read it.
async fn scrape_after(metrics: &Metrics, n: f64) -> prometheus_parse::Scrape {
    for _ in 0..400 {
        let scrape = parse(&metrics.encode());
        let total: f64 = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "portico_requests_total")
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum();
        if total >= n {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("requests never reached {n}");
}

#[tokio::test]
async fn metrics_count_known_traffic_exactly() {
    let (proxy, metrics, _lines) = start(Format::Json).await;
    table(&proxy).await;
    push_configuration(&metrics, &proxy);

    let mut out_bytes = 0;
    for _ in 0..3 {
        let r = proxy.get("shop.example", "/cart").await;
        assert_eq!(r.status, 200);
        out_bytes += r.body.len();
    }
    let r = proxy
        .raw("POST /cart HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    assert_eq!(r.status, 200);
    out_bytes += r.body.len();
    let r = proxy
        .raw("BREW /pot HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .await;
    assert_eq!(r.status, 200);
    out_bytes += r.body.len();
    assert_eq!(proxy.get("shop.example", "/down").await.status, 502);
    assert_eq!(proxy.get("shop.example", "/gone").await.status, 503);
    assert_eq!(proxy.get("other.example", "/").await.status, 404);

    let s = scrape_after(&metrics, 8.0).await;
    let shop = [
        ("namespace", "default"),
        ("ingress", "ing"),
        ("service", "svc"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        shop.iter().chain(extra.iter()).copied().collect()
    };
    let req = "portico_requests_total";
    assert_eq!(
        value(
            &s,
            req,
            &with(&[("method", "GET"), ("status_class", "2xx")])
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            req,
            &with(&[("method", "POST"), ("status_class", "2xx")])
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            req,
            &with(&[("method", "OTHER"), ("status_class", "2xx")])
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            req,
            &with(&[("method", "GET"), ("status_class", "5xx")])
        ),
        2.0
    );
    let unrouted = [("namespace", ""), ("ingress", ""), ("service", "")];
    let mut nf: Vec<_> = unrouted.to_vec();
    nf.extend([("method", "GET"), ("status_class", "4xx")]);
    assert_eq!(value(&s, req, &nf), 1.0);

    // Histograms: every request of the route has a duration; five reached the upstream.
    assert_eq!(
        value(&s, "portico_request_duration_seconds_count", &shop),
        7.0
    );
    assert_eq!(
        value(&s, "portico_upstream_duration_seconds_count", &shop),
        5.0
    );
    assert_eq!(value(&s, "portico_request_bytes_total", &shop), 5.0);
    let sent = value(&s, "portico_response_bytes_total", &shop)
        + value(&s, "portico_response_bytes_total", &unrouted);
    // 502 and 503 and 404 bodies are the proxy's own short texts.
    let own =
        "502 Bad Gateway\n".len() + "503 Service Unavailable\n".len() + "404 Not Found\n".len();
    assert_eq!(sent, (out_bytes + own) as f64);
    // Two closed endpoints: the first fails, the retry fails too.
    assert_eq!(
        value(&s, "portico_upstream_connect_errors_total", &shop),
        2.0
    );
    assert_eq!(value(&s, "portico_upstream_retries_total", &shop), 1.0);
    assert_eq!(value(&s, "portico_config_version", &[]), 1.0);
    assert_eq!(value(&s, "portico_config_vhosts", &[]), 1.0);
    assert_eq!(value(&s, "portico_config_routes", &[]), 3.0);
    assert_eq!(value(&s, "portico_config_endpoints", &[]), 3.0);
    assert_eq!(value(&s, "portico_access_log_dropped_total", &[]), 0.0);
}

#[tokio::test]
async fn every_family_is_present() {
    let metrics = Metrics::new();
    // What the publisher pushes; before the requests, since it prunes series of routes the
    // (here empty) table does not have.
    metrics.configuration(
        3,
        &Default::default(),
        &Default::default(),
        [("ServiceNotFound".to_string(), 1)].into(),
    );
    metrics.source_synced("files");
    metrics.watch_error("files", "read");
    metrics.rebuild(true, Duration::from_millis(2));
    let _open = metrics.connection("http");
    let series = metrics.route("ns", "ing", "svc");
    series.request(0, 200, Duration::from_millis(1), 1, 2);
    series.upstream(Duration::from_millis(1));
    series.connect_error();
    series.retry();
    // Families without any series are not printed; a condition gives config_conditions one.
    let s = parse(&metrics.encode());
    assert_eq!(
        value(
            &s,
            "portico_config_conditions",
            &[("reason", "ServiceNotFound")]
        ),
        1.0
    );
    assert_eq!(value(&s, "portico_config_version", &[]), 3.0);
    for family in [
        "portico_requests",
        "portico_request_duration_seconds",
        "portico_upstream_duration_seconds",
        "portico_request_bytes",
        "portico_response_bytes",
        "portico_upstream_connect_errors",
        "portico_upstream_retries",
        "portico_client_connections",
        "portico_config_rebuilds",
        "portico_config_rebuild_duration_seconds",
        "portico_config_version",
        "portico_config_vhosts",
        "portico_config_routes",
        "portico_config_endpoints",
        "portico_config_conditions",
        "portico_source_last_sync_age_seconds",
        "portico_source_watch_errors",
        "portico_access_log_dropped",
    ] {
        assert!(
            s.docs.contains_key(family),
            "{family} missing in {:?}",
            s.docs.keys()
        );
    }
    assert_eq!(
        value(&s, "portico_client_connections", &[("protocol", "http")]),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "portico_config_rebuilds_total",
            &[("outcome", "published")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, "portico_config_rebuild_duration_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "portico_source_watch_errors_total",
            &[("source", "files"), ("kind", "read")]
        ),
        1.0
    );
    let age = value(
        &s,
        "portico_source_last_sync_age_seconds",
        &[("source", "files")],
    );
    assert!((0.0..60.0).contains(&age), "{age}");
}

#[tokio::test]
async fn open_connections_are_counted_until_closed() {
    let (proxy, metrics, _lines) = start(Format::Text).await;
    table(&proxy).await;
    let gauge = |m: &Metrics| {
        value(
            &parse(&m.encode()),
            "portico_client_connections",
            &[("protocol", "http")],
        )
    };
    let mut conn = proxy.connect().await;
    conn.send(b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.status, 200);
    assert_eq!(gauge(&metrics), 1.0);
    drop(conn);
    for _ in 0..400 {
        if gauge(&metrics) == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the connection gauge did not go back to 0");
}

#[tokio::test]
async fn json_access_log_has_one_line_per_request_with_every_field() {
    let (proxy, _metrics, lines) = start(Format::Json).await;
    table(&proxy).await;
    let r = proxy
        .raw("POST /cart?item=1 HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: req-1\r\nContent-Length: 3\r\n\r\nabc")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(proxy.get("other.example", "/x").await.status, 404);
    let lines = lines.wait_for(2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["http.method"], "POST");
    assert_eq!(first["http.host"], "shop.example");
    assert_eq!(first["http.target"], "/cart?item=1");
    assert_eq!(first["http.version"], "HTTP/1.1");
    assert_eq!(first["http.status"], 200);
    assert_eq!(first["http.request_id"], "req-1");
    assert_eq!(first["bytes.in"], 3);
    assert_eq!(first["bytes.out"], r.body.len());
    assert_eq!(first["ingress.namespace"], "default");
    assert_eq!(first["ingress.name"], "ing");
    assert_eq!(first["service.name"], "svc");
    assert!(first["client.addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(first["backend.addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(first["duration"].as_f64().unwrap() >= first["backend.duration"].as_f64().unwrap());
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert!(first["tls.version"].is_null() && first["tls.sni"].is_null());
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["http.status"], 404);
    assert!(second["backend.addr"].is_null());
    assert!(second["ingress.name"].is_null());
    // Not routed, so nothing was forwarded and no id generated.
    assert!(second["http.request_id"].is_null());
}

#[tokio::test]
async fn text_access_log_has_one_logfmt_line_per_request() {
    let (proxy, _metrics, lines) = start(Format::Text).await;
    table(&proxy).await;
    assert_eq!(proxy.get("shop.example", "/a b").await.status, 400);
    assert_eq!(proxy.get("shop.example", "/gone").await.status, 503);
    let lines = lines.wait_for(1).await;
    // hyper refuses `/a b` itself (no request reaches the service), so one line only.
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    for field in [
        "time=",
        "client.addr=127.0.0.1:",
        "http.method=GET",
        "http.host=shop.example",
        "http.target=/gone",
        "http.version=HTTP/1.1",
        "http.status=503",
        "bytes.in=0",
        "bytes.out=24",
        "duration=",
        "backend.addr=-",
        "backend.duration=-",
        "ingress.namespace=default",
        "ingress.name=ing",
        "service.name=svc",
        "http.request_id=",
        "tls.version=-",
        "tls.sni=-",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

/// An HTTPS proxy (and its HTTP sibling) counting into fresh metrics and logging in `format`,
/// serving `shop.example` with its own certificate to a live echo backend.
async fn start_tls(
    format: Format,
    handshake_timeout: Duration,
) -> (support::tls::TlsProxy, Arc<Metrics>, Lines) {
    use support::tls;
    let metrics = Arc::new(Metrics::new());
    let lines = Lines::default();
    let (log, _thread) = AccessLog::start(
        format,
        Box::new(lines.clone()),
        1024,
        metrics.access_log_dropped(),
    );
    let proxy = tls::TlsProxy::start_observed(
        handshake_timeout,
        Observe {
            metrics: metrics.clone(),
            access_log: Some(log),
        },
    )
    .await;
    let backend = start_echo("a").await;
    proxy.apply(&[
        tls::app_yaml(
            "shop",
            "shop",
            "shop.example",
            &["shop.example"],
            "shop-tls",
            backend,
            &[],
        ),
        tls::tls_secret("shop", "shop-tls", &tls::cert(&["shop.example"])),
    ]);
    (proxy, metrics, lines)
}

/// One GET over a fresh TLS connection with `sni` and protocol `version`.
async fn https_get(
    proxy: &support::tls::TlsProxy,
    sni: Option<&str>,
    version: &'static rustls::SupportedProtocolVersion,
) -> u16 {
    use support::tls;
    let config = tls::client_config(&[b"http/1.1"], &[version]);
    let stream = tls::connect_with(proxy.https, sni, config)
        .await
        .expect("handshake");
    let mut client = tls::Client::new(stream).await;
    client.get("shop.example", "/").await.status().as_u16()
}

#[tokio::test]
async fn access_log_has_tls_version_and_sni_for_https_requests_in_both_formats() {
    for format in [Format::Json, Format::Text] {
        let (proxy, _metrics, lines) = start_tls(format, Duration::from_secs(10)).await;
        assert_eq!(
            https_get(&proxy, Some("shop.example"), &rustls::version::TLS13).await,
            200
        );
        // No SNI (an IP literal as server name), TLS 1.2.
        assert_eq!(https_get(&proxy, None, &rustls::version::TLS12).await, 200);
        let lines = lines.wait_for(2).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        match format {
            Format::Json => {
                let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
                assert_eq!(first["tls.version"], "TLSv1.3", "{first}");
                assert_eq!(first["tls.sni"], "shop.example", "{first}");
                assert_eq!(first["http.status"], 200);
                assert_eq!(first["ingress.name"], "shop");
                let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
                assert_eq!(second["tls.version"], "TLSv1.2", "{second}");
                assert!(second["tls.sni"].is_null(), "{second}");
            }
            Format::Text => {
                assert!(
                    lines[0].contains("tls.version=TLSv1.3 tls.sni=shop.example"),
                    "{}",
                    lines[0]
                );
                assert!(
                    lines[1].contains("tls.version=TLSv1.2 tls.sni=-"),
                    "{}",
                    lines[1]
                );
            }
        }
    }
}

/// Waits (bounded) until `check` holds for a scrape.
async fn scrape_until(
    metrics: &Metrics,
    what: &str,
    check: impl Fn(&prometheus_parse::Scrape) -> bool,
) -> prometheus_parse::Scrape {
    for _ in 0..400 {
        let scrape = parse(&metrics.encode());
        if check(&scrape) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never reached; last scrape:\n{}", metrics.encode());
}

fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn tls_handshakes_and_failures_are_counted_exactly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (proxy, metrics, _lines) = start_tls(Format::Text, Duration::from_millis(300)).await;
    assert_eq!(
        https_get(&proxy, Some("shop.example"), &rustls::version::TLS13).await,
        200
    );
    assert_eq!(
        https_get(&proxy, Some("shop.example"), &rustls::version::TLS13).await,
        200
    );
    assert_eq!(https_get(&proxy, None, &rustls::version::TLS12).await, 200);
    // Not a ClientHello: rustls refuses it.
    let mut garbage = tokio::net::TcpStream::connect(proxy.https).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(support::BOUND, garbage.read_to_end(&mut sink)).await;
    // Connects and goes away (a TCP health check).
    drop(tokio::net::TcpStream::connect(proxy.https).await.unwrap());
    // Connects and says nothing: dropped after the 300 ms handshake timeout.
    let mut idle = tokio::net::TcpStream::connect(proxy.https).await.unwrap();
    let _ = tokio::time::timeout(support::BOUND, idle.read_to_end(&mut sink)).await;

    let failures = "portico_tls_handshake_failures_total";
    let handshakes = "portico_tls_handshakes_total";
    let s = scrape_until(&metrics, "three failures", |s| {
        sample(s, failures, &[]) >= 3.0 && sample(s, handshakes, &[]) >= 3.0
    })
    .await;
    assert_eq!(value(&s, handshakes, &[("version", "TLSv1.3")]), 2.0);
    assert_eq!(value(&s, handshakes, &[("version", "TLSv1.2")]), 1.0);
    assert_eq!(value(&s, failures, &[("reason", "error")]), 1.0);
    assert_eq!(value(&s, failures, &[("reason", "closed")]), 1.0);
    assert_eq!(value(&s, failures, &[("reason", "timeout")]), 1.0);
    assert_eq!(sample(&s, handshakes, &[]), 3.0);
    assert_eq!(sample(&s, failures, &[]), 3.0);
    assert_eq!(
        value(&s, "portico_client_connections", &[("protocol", "https")]),
        0.0
    );
}

#[tokio::test]
async fn certificate_expiry_is_a_timestamp_per_bound_host() {
    use support::tls;
    let metrics = Arc::new(Metrics::new());
    let mut publisher = portico::publish::Publisher::new(metrics.clone());
    let backend = start_echo("a").await;
    // Expires 2000-01-01T00:00:00Z; served regardless (spec §5.1).
    let old = tls::expired_cert(&["old.example", "www.old.example"]);
    let docs = [
        tls::app_yaml(
            "ns",
            "old",
            "old.example",
            &["old.example", "www.old.example"],
            "old-tls",
            backend,
            &[],
        ),
        tls::tls_secret("ns", "old-tls", &old),
        // Bound to a Secret that does not exist: the default certificate, no series.
        tls::app_yaml(
            "ns",
            "broken",
            "broken.example",
            &["broken.example"],
            "nope",
            backend,
            &[],
        ),
        tls::tls_secret(
            "ops",
            "default-cert",
            &tls::expired_cert(&["default.example"]),
        ),
    ];
    let options = portico::translate::Options {
        default_ssl_certificate: Some(("ops".to_string(), "default-cert".to_string())),
        ..tls::options()
    };
    publisher.publish(tls::snapshot(&docs), &options);
    let s = parse(&metrics.encode());
    let name = "portico_tls_certificate_not_after_timestamp_seconds";
    for host in ["old.example", "www.old.example"] {
        assert_eq!(
            value(&s, name, &[("host", host), ("secret", "ns/old-tls")]),
            946_684_800.0
        );
    }
    assert_eq!(
        value(&s, name, &[("host", ""), ("secret", "ops/default-cert")]),
        946_684_800.0
    );
    assert_eq!(
        s.samples.iter().filter(|x| x.metric == name).count(),
        3,
        "broken.example serves the default: no series of its own"
    );
    // A later configuration without the Ingress drops its series.
    publisher.publish(tls::snapshot(&docs[2..]), &options);
    let s = parse(&metrics.encode());
    assert_eq!(s.samples.iter().filter(|x| x.metric == name).count(), 1);
}

#[tokio::test]
async fn debug_routes_shows_certificate_bindings_and_never_key_material() {
    use http_body_util::BodyExt;
    use support::tls;
    let mut publisher = portico::publish::Publisher::new(Arc::default());
    let shared = publisher.shared().clone();
    let cert = tls::cert(&["shop.example"]);
    let docs = [
        tls::app_yaml(
            "shop",
            "shop",
            "shop.example",
            &["shop.example"],
            "shop-tls",
            "127.0.0.1:9".parse().unwrap(),
            &[],
        ),
        tls::tls_secret("shop", "shop-tls", &cert),
    ];
    publisher.publish(tls::snapshot(&docs), &tls::options());
    let admin = portico::admin::Admin {
        shared: shared.clone(),
        metrics: Arc::new(Metrics::new()),
        draining: Arc::default(),
        path_rules: Default::default(),
        log_level: None,
    };
    let uri: http::Uri = "/debug/routes".parse().unwrap();
    let response = portico::admin::respond(&admin, &http::Method::GET, &uri, b"");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(!text.contains("BEGIN"), "no PEM at all: {text}");
    // The key's base64: every line of its PEM body, and the body in one piece.
    let key_lines: Vec<&str> = cert
        .key
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    assert!(!key_lines.is_empty());
    for line in &key_lines {
        assert!(!text.contains(line), "key material {line:?} in {text}");
    }
    assert!(!text.contains(&key_lines.concat()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let binding = &json["tls"]["bindings"][0];
    assert_eq!(binding["host"], "shop.example");
    assert_eq!(binding["ingress"], "shop/shop");
    assert_eq!(binding["secret"], "shop-tls");
    assert_eq!(binding["serves"], "shop/shop-tls");
    let certificate = &json["tls"]["certificates"][0];
    assert_eq!(certificate["secret"], "shop/shop-tls");
    assert_eq!(certificate["names"], serde_json::json!(["shop.example"]));
    assert_eq!(certificate["notAfter"], "4096-01-01T00:00:00Z");
    assert_eq!(json["sslRedirects"][0]["setBy"], "--ssl-redirect");
}

/// A client's TLS session store that counts the TLS 1.3 tickets the server sent it.
#[derive(Debug)]
struct CountedTickets {
    inner: rustls::client::ClientSessionMemoryCache,
    tickets: std::sync::atomic::AtomicUsize,
}

impl CountedTickets {
    fn count(&self) -> usize {
        self.tickets.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl rustls::client::ClientSessionStore for CountedTickets {
    fn set_kx_hint(&self, name: rustls::pki_types::ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(name, value)
    }
    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
        self.inner.remove_tls12_session(name)
    }
    fn insert_tls13_ticket(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tickets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.insert_tls13_ticket(name, value)
    }
    fn take_tls13_ticket(
        &self,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

/// A TLS 1.3 client (ALPN http/1.1) whose session store counts the tickets it is given.
fn counted_tickets_client() -> (Arc<CountedTickets>, rustls::ClientConfig) {
    let store = Arc::new(CountedTickets {
        inner: rustls::client::ClientSessionMemoryCache::new(8),
        tickets: Default::default(),
    });
    let mut config =
        (*support::tls::client_config(&[b"http/1.1"], &[&rustls::version::TLS13])).clone();
    config.resumption = rustls::client::Resumption::store(store.clone());
    (store, config)
}

// OpenSSL's ticket counts, so nginx's: two TLS 1.3 tickets after a full handshake (a client
// may open two connections at once), one after a resumed one (it spent one). Resumed
// handshakes are counted beside all completed ones.
#[tokio::test]
async fn tls13_tickets_two_after_a_full_handshake_one_after_a_resumed_one() {
    use rustls::HandshakeKind::{Full, Resumed};
    let (proxy, metrics, _lines) = start_tls(Format::Text, Duration::from_secs(10)).await;
    let (store, config) = counted_tickets_client();
    let config = Arc::new(config);
    for (i, (kind, tickets)) in [(Full, 2), (Resumed, 1), (Resumed, 1)]
        .into_iter()
        .enumerate()
    {
        let before = store.count();
        let stream = support::tls::connect_with(proxy.https, Some("shop.example"), config.clone())
            .await
            .expect("handshake");
        assert_eq!(
            stream.get_ref().1.handshake_kind(),
            Some(kind),
            "connection {i}"
        );
        // The tickets come right after the handshake, before the response: read when it is.
        let mut client = support::tls::Client::new(stream).await;
        assert_eq!(client.get("shop.example", "/").await.status(), 200);
        assert_eq!(store.count() - before, tickets, "connection {i}");
    }
    let s = scrape_until(&metrics, "three handshakes", |s| {
        sample(s, "portico_tls_handshakes_total", &[]) >= 3.0
    })
    .await;
    assert_eq!(
        value(
            &s,
            "portico_tls_handshakes_total",
            &[("version", "TLSv1.3")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "portico_tls_resumed_handshakes_total",
            &[("version", "TLSv1.3")]
        ),
        2.0
    );
}

/// A client socket that sends at most 16 bytes per write, each after a pause (no Nagle): a
/// ClientHello arrives in many segments.
struct Trickle {
    inner: tokio::net::TcpStream,
    pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl tokio::io::AsyncRead for Trickle {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Trickle {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::future::Future;
        if let Some(pause) = self.pause.as_mut() {
            std::task::ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        let n = buf.len().min(16);
        let written =
            std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..n]));
        self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(1))));
        std::task::Poll::Ready(written)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// The ClientHello is read by Portico's own loop (to see a PSK offer): one split over many
// segments is read whole, a full handshake then a resumed one, each answering a request, the
// resumed one getting one ticket as when the ClientHello comes in one piece.
#[tokio::test]
async fn a_client_hello_in_many_segments_is_read_whole_and_resumes() {
    use rustls::HandshakeKind::{Full, Resumed};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (proxy, _metrics, _lines) = start_tls(Format::Text, Duration::from_secs(10)).await;
    let (store, config) = counted_tickets_client();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    for (i, (kind, tickets)) in [(Full, 2), (Resumed, 1)].into_iter().enumerate() {
        let before = store.count();
        let tcp = tokio::net::TcpStream::connect(proxy.https).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from("shop.example").unwrap();
        let handshake = connector.connect(
            name,
            Trickle {
                inner: tcp,
                pause: None,
            },
        );
        let mut tls = tokio::time::timeout(support::BOUND, handshake)
            .await
            .expect("handshake within bound")
            .expect("handshake");
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(kind),
            "connection {i}"
        );
        let request = b"GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n";
        tls.write_all(request).await.unwrap();
        // What rustls still holds (the socket took 16 bytes at a time) goes out on flush.
        tls.flush().await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(support::BOUND, tls.read_to_end(&mut response)).await;
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "connection {i}: {}",
            String::from_utf8_lossy(&response)
        );
        assert_eq!(store.count() - before, tickets, "connection {i}");
    }
}
