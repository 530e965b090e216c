//! What issue 14's per-Ingress features add to one proxied request, end to end over loopback:
//! a keep-alive HTTP/1.1 client, an in-process proxy (`proxy::serve`) and an echo upstream,
//! all on one Tokio runtime. Three Ingresses differ only in their annotations: none
//! (`plain`), `enable-cors` with an origin list and a matching `Origin` (`cors`), and
//! `mirror-target` to a second echo server (`mirror`). Criterion times the round trip; then
//! each case's p50 and p99 over 2,000 requests are printed, which is how the mirror's effect
//! on the main request's tail is read (the copy runs on its own task, so p99 shows whether it
//! competes with the main request).
//!
//! `cargo bench --bench proxying` (numbers on a shared machine are noisy: compare ratios).

#[path = "../examples/support/echo.rs"]
mod echo;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portico::proxy::ProxyOptions;
use portico::publish::{self, Published};
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options};
use tokio::net::TcpListener;

async fn start_echo(name: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo::serve(listener, name.to_string()));
    addr
}

fn ingress(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  annotations: {{{annotations}}}
spec:
  ingressClassName: portico
  rules:
  - host: {name}.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: echo, port: {{number: 80}}}}}}
"
    )
}

/// The proxy address, with the three Ingresses published.
async fn setup() -> SocketAddr {
    let echo = start_echo("echo").await;
    let mirror = start_echo("mirror").await;
    let documents = [
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
- addresses: [\"127.0.0.1\"]
",
            port = echo.port()
        ),
        ingress("plain", ""),
        ingress(
            "cors",
            "nginx.ingress.kubernetes.io/enable-cors: \"true\", nginx.ingress.kubernetes.io/cors-allow-origin: \"https://a.example, https://*.b.example\"",
        ),
        ingress(
            "mirror",
            &format!("nginx.ingress.kubernetes.io/mirror-target: \"http://{mirror}/$request_uri\""),
        ),
    ];
    let mut loaded = Loaded::default();
    parse_documents("bench.yaml", &documents.join("---\n"), &mut loaded);
    let translation = translate(&loaded.snapshot, &Options::default(), &mut Cache::default());
    assert!(
        translation.conditions.is_empty(),
        "{:?}",
        translation.conditions
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = publish::shared();
    shared.store(Arc::new(Published {
        version: 1,
        translation: Arc::new(translation),
        snapshot: Default::default(),
    }));
    let options = ProxyOptions {
        response_timeout: Duration::from_secs(10),
        ..ProxyOptions::default()
    };
    tokio::spawn(portico::proxy::serve(
        listener,
        shared,
        Arc::new(options),
        std::future::pending(),
    ));
    addr
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

async fn one(client: &Http, proxy: SocketAddr, host: &str) {
    let request = http::Request::get(format!("http://{proxy}/some/path?q=1"))
        .header("host", host)
        .header("origin", "https://x.b.example")
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let proxy = rt.block_on(setup());
    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    let cases = ["plain", "cors", "mirror"];
    let mut group = c.benchmark_group("request");
    for case in cases {
        let host = format!("{case}.example");
        group.bench_function(case, |b| {
            b.iter(|| rt.block_on(one(&client, proxy, &host)));
        });
    }
    group.finish();
    for case in cases {
        let host = format!("{case}.example");
        let mut times: Vec<Duration> = rt.block_on(async {
            let mut times = Vec::with_capacity(2000);
            for _ in 0..2000 {
                let start = Instant::now();
                one(&client, proxy, &host).await;
                times.push(start.elapsed());
            }
            times
        });
        times.sort();
        eprintln!(
            "{case}: p50 {:?} p99 {:?} (2000 requests)",
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
