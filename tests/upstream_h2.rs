//! HTTP/2 upstreams (H2C, GRPC, GRPCS) through Portico's own per-endpoint pool
//! (`src/proxy/h2pool.rs`): what the upstream sees (`:authority`, `:scheme`, no `Host`), which
//! connections carry which requests, and recovery when the upstream closes a connection.
//!
//! The `:authority` cases reproduce ingress-nginx's generated gRPC location
//! (`rootfs/etc/nginx/template/nginx.tmpl`: `{{ $proxySetHeader }} Host ...` with
//! `$proxySetHeader` = `grpc_set_header` for GRPC/GRPCS, the value the quoted `upstream-vhost`
//! or else `$best_http_host`; nginx's grpc module sends it as `:authority`, not as a header
//! field) with `backend-protocol: GRPC`/`GRPCS` (`test/e2e/annotations/grpc.go`);
//! docs/migrating-from-ingress-nginx.md (`backend-protocol`) says the same.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Response};
use portico::routing::{Backend, Policy, Protocol, Target};
use support::{closed_port, endpoints, publish_catch_all, Conn, Proxy, RawResponse, BOUND};
use tokio::net::TcpListener;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Record {
    /// Which accepted connection (0, 1, ...) carried it.
    conn: usize,
    scheme: Option<String>,
    authority: Option<String>,
    /// Every `Host` header field (there must be none).
    hosts: Vec<String>,
}

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: Mutex<Vec<Record>>,
    /// The SNI of each TLS connection, in accept order.
    snis: Mutex<Vec<Option<String>>>,
}

impl Seen {
    fn records(&self) -> Vec<Record> {
        self.requests.lock().unwrap().clone()
    }
}

/// How the test upstream behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// Serve this many requests per connection, then GOAWAY and close.
    per_connection: Option<usize>,
    /// Hold every answer until this many requests are in flight at once (bounded by `BOUND`).
    gate: Option<Arc<tokio::sync::Barrier>>,
    /// TLS with ALPN `h2` (a GRPCS server).
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// A strict h2 server (the `h2` crate, no HTTP/1 fallback) that records each request and
/// answers `name`.
async fn h2_upstream(name: &'static str, behaviour: Behaviour) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let conn_id = state.connections.fetch_add(1, Ordering::SeqCst);
            let state = state.clone();
            let behaviour = behaviour.clone();
            tokio::spawn(async move {
                match behaviour.tls.clone() {
                    Some(config) => {
                        let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                        else {
                            return;
                        };
                        let sni = tls.get_ref().1.server_name().map(str::to_owned);
                        state.snis.lock().unwrap().push(sni);
                        serve(tls, conn_id, name, state, behaviour).await;
                    }
                    None => serve(stream, conn_id, name, state, behaviour).await,
                }
            });
        }
    });
    (addr, seen)
}

async fn serve<T>(io: T, conn_id: usize, name: &'static str, seen: Arc<Seen>, b: Behaviour)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    let mut served = 0;
    while let Some(Ok((request, mut respond))) = conn.accept().await {
        seen.requests.lock().unwrap().push(Record {
            conn: conn_id,
            scheme: request.uri().scheme_str().map(str::to_owned),
            authority: request.uri().authority().map(|a| a.to_string()),
            hosts: request
                .headers()
                .get_all(http::header::HOST)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect(),
        });
        let gate = b.gate.clone();
        tokio::spawn(async move {
            if let Some(gate) = gate {
                let _ = tokio::time::timeout(BOUND, gate.wait()).await;
            }
            if let Ok(mut send) = respond.send_response(Response::new(()), false) {
                let _ = send.send_data(Bytes::from_static(name.as_bytes()), true);
            }
        });
        served += 1;
        if b.per_connection.is_some_and(|n| served >= n) {
            conn.graceful_shutdown();
        }
    }
}

fn http2_backend(
    addrs: &[SocketAddr],
    protocol: Protocol,
    vhost: Option<&'static str>,
) -> Arc<Backend> {
    let backend = endpoints(addrs);
    Arc::new(backend.with_policy(Arc::new(Policy {
        protocol: Some(protocol),
        upstream_vhost: vhost.map(HeaderValue::from_static),
        ..Policy::default()
    })))
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> RawResponse {
    let mut conn = Conn::connect(addr).await;
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await;
    tokio::time::timeout(BOUND, conn.response())
        .await
        .expect("answer within bound")
}

/// Asserts the upstream got exactly one host, as `:authority`, and the right `:scheme`.
fn assert_host(record: &Record, authority: &str, scheme: &str) {
    assert_eq!(record.authority.as_deref(), Some(authority), "{record:?}");
    assert!(
        record.hosts.is_empty(),
        "Host header sent beside :authority: {record:?}"
    );
    assert_eq!(record.scheme.as_deref(), Some(scheme), "{record:?}");
}

#[tokio::test]
async fn h2c_and_grpc_upstreams_get_the_routed_host_as_authority_and_no_host_header() {
    let (addr, seen) = h2_upstream("h2", Behaviour::default()).await;
    let proxy = Proxy::start().await;
    for protocol in [Protocol::H2c, Protocol::Grpc] {
        publish_catch_all(&proxy.shared, http2_backend(&[addr], protocol, None));
        let response = get(proxy.addr, "app.example", "/a").await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.text(), "h2");
        let response = get(proxy.addr, "app.example:8080", "/b").await;
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let records = seen.records();
    assert_eq!(records.len(), 4);
    for pair in records.chunks(2) {
        assert_host(&pair[0], "app.example", "http");
        assert_host(&pair[1], "app.example:8080", "http");
    }
    // `upstream-vhost` replaces the host, as it does `Host` for HTTP/1.1 upstreams.
    publish_catch_all(
        &proxy.shared,
        http2_backend(&[addr], Protocol::H2c, Some("internal.svc")),
    );
    assert_eq!(get(proxy.addr, "app.example", "/c").await.status, 200);
    assert_host(seen.records().last().unwrap(), "internal.svc", "http");
}

/// A GRPCS server: TLS 1.2/1.3 with ALPN `h2` and a certificate for `backend.internal`.
fn grpcs_server() -> Arc<rustls::ServerConfig> {
    let cert = support::tls::cert(&["backend.internal"]);
    grpcs_server_with(cert.der.clone(), &cert.key)
}

fn grpcs_server_with(
    leaf: rustls_pki_types::CertificateDer<'static>,
    key_pem: &str,
) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(portico::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A CA and a leaf it signed for `name`: (CA PEM, leaf DER, leaf key PEM).
fn ca_and_leaf(name: &str) -> (String, rustls_pki_types::CertificateDer<'static>, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (ca.pem(), leaf.der().clone(), leaf_key.serialize_pem())
}

#[tokio::test]
async fn grpcs_verification_and_sni_by_service_name() {
    // The support backends are Service default/svc.
    let (ca_pem, leaf, key) = ca_and_leaf("svc.default.svc");
    let (addr, seen) = h2_upstream(
        "verified",
        Behaviour {
            tls: Some(grpcs_server_with(leaf, &key)),
            ..Behaviour::default()
        },
    )
    .await;
    let proxy = Proxy::start().await;
    let verified = |ca: &str| {
        Arc::new(endpoints(&[addr]).with_policy(Arc::new(Policy {
            protocol: Some(Protocol::Grpcs),
            upstream_tls: Some(portico::routing::UpstreamTls {
                ca_pem: ca.as_bytes().to_vec(),
                secret: "default/ca".into(),
                ..Default::default()
            }),
            ..Policy::default()
        })))
    };
    publish_catch_all(&proxy.shared, verified(&ca_pem));
    let response = get(proxy.addr, "grpc.example", "/v").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_host(&seen.records()[0], "grpc.example", "https");
    // Another CA: the handshake fails (502), and the verified connection is not reused for
    // it: TLS settings are part of the pool key.
    let (other_ca, _, _) = ca_and_leaf("svc.default.svc");
    publish_catch_all(&proxy.shared, verified(&other_ca));
    assert_eq!(get(proxy.addr, "grpc.example", "/v").await.status, 502);
    assert_eq!(seen.records().len(), 1);
    // Without verification the endpoint is dialled by IP: no SNI (as hyper-rustls did).
    publish_catch_all(&proxy.shared, http2_backend(&[addr], Protocol::Grpcs, None));
    assert_eq!(get(proxy.addr, "grpc.example", "/n").await.status, 200);
    let snis = seen.snis.lock().unwrap().clone();
    assert_eq!(
        snis.first(),
        Some(&Some("svc.default.svc".to_string())),
        "{snis:?}"
    );
    assert_eq!(snis.last(), Some(&None), "{snis:?}");
}

#[tokio::test]
async fn grpcs_upstream_gets_the_routed_host_as_authority_over_tls() {
    let (addr, seen) = h2_upstream(
        "tls",
        Behaviour {
            tls: Some(grpcs_server()),
            ..Behaviour::default()
        },
    )
    .await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, http2_backend(&[addr], Protocol::Grpcs, None));
    let response = get(proxy.addr, "grpc.example", "/pkg.Svc/Call").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "tls");
    assert_host(&seen.records()[0], "grpc.example", "https");
    publish_catch_all(
        &proxy.shared,
        http2_backend(&[addr], Protocol::Grpcs, Some("vhost.internal")),
    );
    assert_eq!(get(proxy.addr, "grpc.example", "/again").await.status, 200);
    assert_host(seen.records().last().unwrap(), "vhost.internal", "https");
    // Both requests on one TLS connection: the pool kept it.
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn two_endpoints_of_one_backend_never_share_a_connection() {
    let (a, seen_a) = h2_upstream("a", Behaviour::default()).await;
    let (b, seen_b) = h2_upstream("b", Behaviour::default()).await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, http2_backend(&[a, b], Protocol::H2c, None));
    let mut answers = Vec::new();
    for i in 0..8 {
        let response = get(proxy.addr, "same.example", &format!("/{i}")).await;
        assert_eq!(response.status, 200);
        answers.push(response.text());
    }
    // Round-robin: each endpoint answered half, over one connection of its own (a shared
    // connection would have sent all of them to whichever endpoint it was opened to).
    assert_eq!(
        answers.iter().filter(|t| *t == "a").count(),
        4,
        "{answers:?}"
    );
    assert_eq!(seen_a.records().len(), 4);
    assert_eq!(seen_b.records().len(), 4);
    assert_eq!(seen_a.connections.load(Ordering::SeqCst), 1);
    assert_eq!(seen_b.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_requests_multiplex_over_one_connection() {
    const CONCURRENT: usize = 16;
    let (addr, seen) = h2_upstream(
        "mux",
        Behaviour {
            gate: Some(Arc::new(tokio::sync::Barrier::new(CONCURRENT))),
            ..Behaviour::default()
        },
    )
    .await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, http2_backend(&[addr], Protocol::Grpc, None));
    let mut clients = Vec::new();
    for i in 0..CONCURRENT {
        let addr = proxy.addr;
        clients.push(tokio::spawn(async move {
            get(addr, "mux.example", &format!("/{i}")).await.status
        }));
    }
    for client in clients {
        assert_eq!(client.await.unwrap(), 200);
    }
    // The upstream held every answer until all were in flight: they were concurrent streams,
    // and all of them on the first connection (made once, shared by the waiting requests).
    assert_eq!(seen.records().len(), CONCURRENT);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert!(seen.records().iter().all(|r| r.conn == 0));
}

#[tokio::test]
async fn an_upstream_goaway_moves_the_next_request_to_a_new_connection() {
    let (addr, seen) = h2_upstream(
        "once",
        Behaviour {
            per_connection: Some(1),
            ..Behaviour::default()
        },
    )
    .await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, http2_backend(&[addr], Protocol::H2c, None));
    for i in 0..4 {
        let response = get(proxy.addr, "goaway.example", &format!("/{i}")).await;
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
    }
    let conns: Vec<usize> = seen.records().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 1, 2, 3]);
}

#[tokio::test]
async fn a_refused_endpoint_is_retried_and_externalnames_to_local_addresses_refused() {
    let (addr, seen) = h2_upstream("alive", Behaviour::default()).await;
    let proxy = Proxy::start().await;
    publish_catch_all(
        &proxy.shared,
        http2_backend(&[closed_port().await, addr], Protocol::H2c, None),
    );
    for i in 0..4 {
        let response = get(proxy.addr, "x", &format!("/{i}")).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.text(), "alive");
    }
    assert_eq!(seen.records().len(), 4);
    // Every endpoint refused: 502.
    publish_catch_all(
        &proxy.shared,
        http2_backend(&[closed_port().await], Protocol::H2c, None),
    );
    assert_eq!(get(proxy.addr, "x", "/").await.status, 502);
    // spec §4.5: an ExternalName that resolves only to loopback is 503, over HTTP/2 too.
    let external = Backend::new(
        endpoints(&[addr]).reference.clone(),
        Target::ExternalName {
            host: "localhost".into(),
            port: addr.port(),
        },
    );
    let external = Arc::new(external.with_policy(Arc::new(Policy {
        protocol: Some(Protocol::H2c),
        ..Policy::default()
    })));
    publish_catch_all(&proxy.shared, external);
    assert_eq!(get(proxy.addr, "x", "/").await.status, 503);
    assert_eq!(seen.records().len(), 4);
}

/// `custom-http-errors` answered by an HTTP/2 error backend (`default-backend` to a Service
/// whose port says `appProtocol: kubernetes.io/h2c`): the same `:authority` rule.
#[tokio::test]
async fn an_http2_error_backend_gets_the_host_as_authority() {
    let (errors, seen) = h2_upstream("error page", Behaviour::default()).await;
    let down = closed_port().await;
    let service = |name: &str, addr: SocketAddr, app_protocol: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: web}}\n\
             spec: {{ports: [{{name: p, port: 80{app_protocol}}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: {name}-1, namespace: web, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: p, port: {}}}]\n\
             endpoints: [{{addresses: [\"{}\"]}}]\n---\n",
            addr.port(),
            addr.ip()
        )
    };
    let yaml = service("down", down, "")
        + &service("errs", errors, ", appProtocol: kubernetes.io/h2c")
        + "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: down\n  namespace: web\n  annotations:\n    kubernetes.io/ingress.class: portico\n    nginx.ingress.kubernetes.io/custom-http-errors: \"502\"\n    nginx.ingress.kubernetes.io/default-backend: errs\nspec:\n  rules:\n  - host: down.example\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: down, port: {number: 80}}}}\n";
    let translation = support::translate_documents(
        &[yaml],
        &portico::translate::Options {
            annotation_class: "portico".into(),
            ..portico::translate::Options::default()
        },
    );
    let proxy = Proxy::start().await;
    proxy.publish_translation(translation);
    let response = get(proxy.addr, "down.example", "/x").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "error page");
    assert_host(&seen.records()[0], "down.example", "http");
}
