//! External authentication (issue 15): the round trip of one request through an in-process
//! proxy to an echo upstream, all on 127.0.0.1, on one keep-alive client connection, for a
//! route without external auth, with `auth-url` (an auth service on 127.0.0.1 answering 200
//! with an empty body, so its connection is pooled), and with `auth-url` plus
//! `auth-cache-key` (every request after the first answered from the cache). The ratios are
//! the cost of asking the auth service, and what the cache saves of it; the absolute numbers
//! are loopback numbers.
//!
//! `cargo bench --bench ext_auth`

#[path = "../examples/support/echo.rs"]
#[allow(unused_imports)]
mod echo;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portico::proxy::{self, ProxyOptions};
use portico::publish::{self, Published};
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// An auth service that grants everything: 200, no body.
async fn start_auth() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn documents(echo: SocketAddr, auth: SocketAddr) -> String {
    let ingress = |name: &str, annotations: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
{annotations}spec:
  ingressClassName: portico
  rules:
  - host: {name}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: echo, port: {{number: 80}}}}}}
"
        )
    };
    [
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
            "auth",
            &format!(
                "  annotations:\n    nginx.ingress.kubernetes.io/auth-url: http://{auth}/check\n"
            ),
        ),
        ingress(
            "cached",
            &format!(
                "  annotations:\n    nginx.ingress.kubernetes.io/auth-url: http://{auth}/check\n    nginx.ingress.kubernetes.io/auth-cache-key: $http_authorization\n"
            ),
        ),
    ]
    .join("---\n")
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let proxy_addr = rt.block_on(async {
        let echo_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo = echo_listener.local_addr().unwrap();
        tokio::spawn(echo::serve(echo_listener, "echo".to_string()));
        let auth = start_auth().await;
        let mut loaded = Loaded::default();
        parse_documents("bench.yaml", &documents(echo, auth), &mut loaded);
        let translation = translate(&loaded.snapshot, &Options::default(), &mut Cache::default());
        let shared = publish::shared();
        shared.store(Arc::new(Published {
            version: 1,
            translation: Arc::new(translation),
            snapshot: Default::default(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(proxy::serve(
            listener,
            shared,
            Arc::new(ProxyOptions {
                response_timeout: Duration::from_secs(10),
                ..ProxyOptions::default()
            }),
            std::future::pending::<()>(),
        ));
        addr
    });
    let mut group = c.benchmark_group("ext_auth_round_trip");
    for host in ["plain", "auth", "cached"] {
        let mut sender = rt.block_on(async {
            let stream = TcpStream::connect(proxy_addr).await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            sender
        });
        group.bench_function(host, |b| {
            b.iter(|| {
                rt.block_on(async {
                    sender.ready().await.unwrap();
                    let request = Request::get("/")
                        .header("host", host)
                        .header("authorization", "Bearer bench")
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let response = sender.send_request(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
