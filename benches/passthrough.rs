//! SSL passthrough (issue 15): what a spliced connection costs against a direct TCP
//! connection to the same backend (bulk throughput, 4 MiB per iteration, through a real
//! Portico HTTPS listener on 127.0.0.1), what the ClientHello peek adds to a connection that
//! is terminated as before (TLS handshake with `--enable-ssl-passthrough` on vs off), and the
//! ClientHello parser alone. Run: `cargo bench --bench passthrough`. The machine's noise is
//! large; compare the pairs as ratios.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portico::proxy::{self, ProxyOptions, Scheme, TlsListener};
use portico::publish::Publisher;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::Options;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const PAYLOAD: usize = 4 << 20;

fn client_config() -> Arc<rustls::ClientConfig> {
    let provider = portico::tls::provider();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(proxy::NoVerification(provider)))
            .with_no_client_auth(),
    )
}

fn client_hello(host: &str) -> Vec<u8> {
    let name = ServerName::try_from(host.to_string()).expect("name");
    let mut conn = rustls::ClientConnection::new(client_config(), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write");
    }
    out
}

/// Reads everything until the client's half-close, then answers one byte.
async fn sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = tcp.write_all(b"k").await;
            });
        }
    });
    addr
}

fn manifests(sink: SocketAddr) -> String {
    format!(
        r#"{{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{{"name":"pass","namespace":"b","annotations":{{"nginx.ingress.kubernetes.io/ssl-passthrough":"true"}}}},"spec":{{"rules":[{{"host":"pass.example","http":{{"paths":[{{"path":"/","pathType":"Prefix","backend":{{"service":{{"name":"sink","port":{{"number":443}}}}}}}}]}}}}]}}}}
---
{{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{{"name":"term","namespace":"b"}},"spec":{{"rules":[{{"host":"term.example","http":{{"paths":[{{"path":"/","pathType":"Prefix","backend":{{"service":{{"name":"sink","port":{{"number":443}}}}}}}}]}}}}]}}}}
---
{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"sink","namespace":"b"}},"spec":{{"ports":[{{"port":443}}]}}}}
---
{{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{{"name":"sink-1","namespace":"b","labels":{{"kubernetes.io/service-name":"sink"}}}},"addressType":"IPv4","ports":[{{"name":"","port":{}}}],"endpoints":[{{"addresses":["127.0.0.1"]}}]}}
"#,
        sink.port()
    )
}

/// A Portico HTTPS listener; `enabled` is `--enable-ssl-passthrough`.
async fn portico(sink: SocketAddr, enabled: bool) -> (SocketAddr, Publisher) {
    let mut publisher = Publisher::new(Arc::default());
    let shared = publisher.shared().clone();
    let mut loaded = Loaded::default();
    parse_documents("bench.yaml", &manifests(sink), &mut loaded);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let options = Options {
        watch_without_class: true,
        ssl_passthrough: enabled,
        ..Options::default()
    };
    publisher.publish(loaded.snapshot, &options);
    assert_eq!(shared.load().translation.passthrough.is_empty(), !enabled);
    let resolver =
        portico::tls::Resolver::new(shared.clone(), portico::tls::generated_default().unwrap());
    let tls = TlsListener {
        acceptor: portico::tls::server_config(Arc::new(resolver))
            .unwrap()
            .into(),
        handshake_timeout: Duration::from_secs(10),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ProxyOptions {
        scheme: Scheme::Https,
        ssl_passthrough: enabled,
        ..ProxyOptions::default()
    };
    tokio::spawn(proxy::serve_tls(
        listener,
        shared,
        Arc::new(options),
        tls,
        std::future::pending(),
    ));
    (addr, publisher)
}

/// Sends `first` then PAYLOAD bytes, half-closes, waits for the answer.
async fn push(addr: SocketAddr, first: &[u8], payload: &[u8]) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(first).await.unwrap();
    tcp.write_all(payload).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"k");
}

async fn handshake(addr: SocketAddr, config: Arc<rustls::ClientConfig>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("term.example").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("handshake");
    drop(tls);
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let (sink, on, off) = rt.block_on(async {
        let sink = sink().await;
        (sink, portico(sink, true).await, portico(sink, false).await)
    });
    let hello = client_hello("pass.example");
    let payload = vec![0x5au8; PAYLOAD];

    let mut group = c.benchmark_group("passthrough_throughput");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    group.sample_size(20);
    group.bench_function("direct_tcp", |b| {
        b.iter(|| rt.block_on(push(sink, &hello, &payload)))
    });
    group.bench_function("spliced", |b| {
        b.iter(|| rt.block_on(push(on.0, &hello, &payload)))
    });
    group.finish();

    let config = client_config();
    let mut group = c.benchmark_group("terminated_handshake");
    group.sample_size(30);
    group.bench_function("passthrough_off", |b| {
        b.iter(|| rt.block_on(handshake(off.0, config.clone())))
    });
    group.bench_function("passthrough_on_other_host", |b| {
        b.iter(|| rt.block_on(handshake(on.0, config.clone())))
    });
    group.finish();

    c.bench_function("parse_client_hello", |b| {
        b.iter(|| proxy::parse_client_hello(std::hint::black_box(&hello)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
