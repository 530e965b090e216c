//! What metrics and the access log add to one request, measured on the proxy's own calls:
//! the routing decision alone; plus the metric series lookup and the per-request counters
//! and histograms; plus building the access log entry and queueing it (no writer runs, so the
//! figure is the request's own cost). The line is formatted and written on the writer thread,
//! not by the request (`format_*` shows that cost, paid once per line on that thread).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Version};
use portico::access_log::{format_entry, AccessLog, Entry, Format};
use portico::metrics::{method_index, Metrics};
use portico::routing::{
    normalize, Backend, BackendRef, HostMatch, Origin, PathType, PortRef, Route, RouteTable,
    Target, VirtualHost,
};

/// 1,000 hosts with three routes each, like the matcher benchmark's host-heavy case.
fn table() -> RouteTable {
    let vhosts = (0..1000)
        .map(|i| {
            let backend = Arc::new(Backend::new(
                BackendRef::Service {
                    namespace: format!("ns{}", i % 20),
                    name: format!("svc{i}"),
                    port: PortRef::Number(80),
                },
                Target::Endpoints(vec![format!("10.0.{}.{}:8080", i / 250, i % 250)
                    .parse()
                    .unwrap()]),
            ));
            let route = |path: &str, path_type| Route {
                path: path.to_string(),
                path_type,
                backend: backend.clone(),
                ssl_redirect: false,
                origin: Origin {
                    namespace: format!("ns{}", i % 20),
                    name: format!("app{i}"),
                    rule: 0,
                    path: 0,
                },
            };
            VirtualHost::new(
                HostMatch::Exact(format!("app{i}.example.com")),
                vec![
                    route("/", PathType::Prefix),
                    route("/api", PathType::Prefix),
                    route("/healthz", PathType::Exact),
                ],
                None,
            )
        })
        .collect();
    RouteTable::new(vhosts, None)
}

fn bench(c: &mut Criterion) {
    let table = table();
    let metrics = Metrics::new();
    let hosts: Vec<String> = (0..1024)
        .map(|i| format!("app{}.example.com", (i * 7) % 1000))
        .collect();
    let target = PathAndQuery::from_static("/api/v1/items?page=2");
    let client = "10.1.2.3:45678".parse().unwrap();
    let decide = |host: &str| {
        let host = normalize::host(host);
        let path = normalize::path(target.path());
        table.decide(&host, &path).backend().is_some()
    };

    let mut group = c.benchmark_group("observe");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("decide_only_per_1024", |b| {
        b.iter(|| hosts.iter().filter(|h| decide(h)).count())
    });
    group.bench_function("decide_and_metrics_per_1024", |b| {
        b.iter(|| {
            for h in &hosts {
                let host = normalize::host(h);
                let path = normalize::path(target.path());
                let decision = table.decide(&host, &path);
                let series = metrics.decision(&decision);
                series.upstream(Duration::from_micros(800));
                series.request(
                    method_index(&Method::GET),
                    200,
                    Duration::from_millis(1),
                    0,
                    512,
                );
            }
        })
    });
    // The queue has room for the whole batch and no writer runs: the cost the request pays.
    group.bench_function("decide_metrics_and_access_log_per_1024", |b| {
        b.iter_batched(
            || AccessLog::channel(hosts.len(), metrics.access_log_dropped()),
            |(log, queue)| {
                for h in &hosts {
                    let host = normalize::host(h);
                    let path = normalize::path(target.path());
                    let decision = table.decide(&host, &path);
                    let series = metrics.decision(&decision);
                    series.upstream(Duration::from_micros(800));
                    series.request(
                        method_index(&Method::GET),
                        200,
                        Duration::from_millis(1),
                        0,
                        512,
                    );
                    log.record(Entry {
                        time: SystemTime::now(),
                        client,
                        method: Method::GET,
                        host: h.clone(),
                        target: Some(target.clone()),
                        version: Version::HTTP_11,
                        status: 200,
                        bytes_in: 0,
                        bytes_out: 512,
                        duration: Duration::from_millis(1),
                        upstream: Some("10.0.0.1:8080".to_string()),
                        upstream_duration: Some(Duration::from_micros(800)),
                        route: Some(series),
                        request_id: Some(HeaderValue::from_static(
                            "0123456789abcdef0123456789abcdef",
                        )),
                        tls: None,
                        custom: None,
                    });
                }
                queue
            },
            BatchSize::SmallInput,
        )
    });
    let entry = Entry {
        time: SystemTime::now(),
        client,
        method: Method::GET,
        host: "app1.example.com".into(),
        target: Some(target.clone()),
        version: Version::HTTP_11,
        status: 200,
        bytes_in: 0,
        bytes_out: 512,
        duration: Duration::from_millis(1),
        upstream: Some("10.0.0.1:8080".to_string()),
        upstream_duration: Some(Duration::from_micros(800)),
        route: Some(metrics.route("ns1", "app1", "svc1")),
        request_id: Some(HeaderValue::from_static("0123456789abcdef0123456789abcdef")),
        tls: None,
        custom: None,
    };
    let mut line = String::new();
    group.bench_function("format_json_line_writer_thread", |b| {
        b.iter(|| {
            line.clear();
            format_entry(Format::Json, &entry, &mut line);
            line.len()
        })
    });
    group.bench_function("format_text_line_writer_thread", |b| {
        b.iter(|| {
            line.clear();
            format_entry(Format::Text, &entry, &mut line);
            line.len()
        })
    });
    group.finish();
    assert_eq!(
        metrics.access_log_dropped().get(),
        0,
        "every line was queued"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
