//! TLS helpers for the socket tests: certificates made with rcgen, Secrets as manifests, a
//! proxy serving HTTPS (and plain HTTP) from one published configuration, and a rustls client
//! that accepts any certificate but shows which one it got.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico::proxy::{self, ProxyOptions, Scheme, TlsListener};
use portico::publish::{Publisher, Shared};
use portico::source::files::{parse_documents, Loaded};
use portico::source::Snapshot;
use portico::translate::Options;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::BOUND;

/// A self-signed certificate and its PKCS#8 key, as PEM.
#[derive(Clone)]
pub struct TestCert {
    pub crt: String,
    pub key: String,
    pub der: CertificateDer<'static>,
}

/// A certificate for `names`, valid from 1975 to 4096 (rcgen's defaults).
pub fn cert(names: &[&str]) -> TestCert {
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("valid names");
    make(params)
}

/// A certificate for `names` that expired in 2000.
pub fn expired_cert(names: &[&str]) -> TestCert {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("valid names");
    params.not_before = rcgen::date_time_ymd(1999, 1, 1);
    params.not_after = rcgen::date_time_ymd(2000, 1, 1);
    make(params)
}

fn make(params: rcgen::CertificateParams) -> TestCert {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    TestCert {
        crt: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// A Secret manifest (JSON is YAML) with `stringData` as given; `None` leaves a key out.
pub fn secret_yaml(namespace: &str, name: &str, crt: Option<&str>, key: Option<&str>) -> String {
    let mut data = serde_json::Map::new();
    if let Some(crt) = crt {
        data.insert("tls.crt".into(), crt.into());
    }
    if let Some(key) = key {
        data.insert("tls.key".into(), key.into());
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "stringData": data,
    })
    .to_string()
}

pub fn tls_secret(namespace: &str, name: &str, cert: &TestCert) -> String {
    secret_yaml(namespace, name, Some(&cert.crt), Some(&cert.key))
}

/// An Ingress routing `host` (Prefix `/`) to Service `service` in `namespace`, with one tls
/// entry `{hosts, secretName}`, plus that Service and an EndpointSlice pointing at `backend`.
pub fn app_yaml(
    namespace: &str,
    name: &str,
    host: &str,
    tls_hosts: &[&str],
    secret_name: &str,
    backend: SocketAddr,
    annotations: &[(&str, &str)],
) -> String {
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let service = format!("{name}-svc");
    let ingress = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "tls": [{"hosts": tls_hosts, "secretName": secret_name}],
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}],
        },
    });
    let svc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {"ports": [{"port": 80}]},
    });
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": backend.port()}],
        "endpoints": [{"addresses": [backend.ip().to_string()]}],
    });
    format!("{ingress}\n---\n{svc}\n---\n{slice}\n")
}

/// Parses manifests into a snapshot; panics on a parse error (the tests write valid YAML).
pub fn snapshot(docs: &[String]) -> Snapshot {
    let mut loaded = Loaded::default();
    parse_documents("test.yaml", &docs.join("\n---\n"), &mut loaded);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded.snapshot
}

pub fn options() -> Options {
    Options {
        watch_without_class: true,
        ..Options::default()
    }
}

/// An HTTPS listener and an HTTP listener on one published configuration, as `app` runs them.
pub struct TlsProxy {
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub shared: Shared,
    /// Owns `shared`: every configuration goes through it, as in `app`.
    pub publisher: std::sync::Mutex<Publisher>,
    /// The certificate generated at start (served when nothing else applies).
    pub generated: CertificateDer<'static>,
    /// Stops the HTTPS listener.
    pub stop_https: Option<tokio::sync::oneshot::Sender<()>>,
    pub https_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TlsProxy {
    /// The messages of the published conditions about objects named `name`.
    pub fn conditions_of(&self, name: &str) -> Vec<String> {
        self.shared
            .load()
            .translation
            .conditions
            .iter()
            .filter(|c| c.object.name == name)
            .map(|c| c.message.clone())
            .collect()
    }

    pub async fn start() -> TlsProxy {
        TlsProxy::start_with_timeout(Duration::from_secs(10)).await
    }

    pub async fn start_with_timeout(handshake_timeout: Duration) -> TlsProxy {
        TlsProxy::start_observed(handshake_timeout, proxy::Observe::default()).await
    }

    /// Both listeners counting into and logging to `observe`.
    pub async fn start_observed(handshake_timeout: Duration, observe: proxy::Observe) -> TlsProxy {
        let clock = Arc::new(rustls::time_provider::DefaultTimeProvider);
        TlsProxy::start_full(handshake_timeout, observe, clock).await
    }

    /// With `clock` dating TLS sessions and tickets (a test clock that moves on demand).
    pub async fn start_with_clock(clock: Arc<dyn rustls::time_provider::TimeProvider>) -> TlsProxy {
        TlsProxy::start_full(Duration::from_secs(10), proxy::Observe::default(), clock).await
    }

    async fn start_full(
        handshake_timeout: Duration,
        observe: proxy::Observe,
        clock: Arc<dyn rustls::time_provider::TimeProvider>,
    ) -> TlsProxy {
        let publisher = Publisher::new(observe.metrics.clone());
        let shared = publisher.shared().clone();
        let generated = portico::tls::generated_default().expect("generate");
        let generated_der = generated.cert[0].clone();
        let resolver = portico::tls::Resolver::new(shared.clone(), generated);
        let config = portico::tls::server_config_with_clock(Arc::new(resolver), clock)
            .expect("server config");
        let tls = TlsListener {
            acceptor: config.into(),
            handshake_timeout,
        };
        let https_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = https_listener.local_addr().unwrap();
        let http = http_listener.local_addr().unwrap();
        let base = ProxyOptions {
            response_timeout: Duration::from_secs(10),
            observe,
            ..ProxyOptions::default()
        };
        let (stop_https, stopped) = tokio::sync::oneshot::channel::<()>();
        let https_task = tokio::spawn(proxy::serve_tls(
            https_listener,
            shared.clone(),
            Arc::new(ProxyOptions {
                scheme: Scheme::Https,
                ..base.clone()
            }),
            tls,
            async move {
                let _ = stopped.await;
            },
        ));
        tokio::spawn(proxy::serve(
            http_listener,
            shared.clone(),
            Arc::new(base),
            std::future::pending(),
        ));
        TlsProxy {
            https,
            http,
            shared,
            publisher: std::sync::Mutex::new(publisher),
            generated: generated_der,
            stop_https: Some(stop_https),
            https_task: Some(https_task),
        }
    }

    /// Translates and publishes manifests.
    pub fn apply(&self, docs: &[String]) {
        self.apply_with(docs, &options());
    }

    pub fn apply_with(&self, docs: &[String], options: &Options) {
        self.publisher
            .lock()
            .expect("publisher lock")
            .publish(snapshot(docs), options);
    }

    /// The leaf certificate served for `sni` (`None`: no SNI sent).
    pub async fn leaf(&self, sni: Option<&str>) -> CertificateDer<'static> {
        let stream = connect(self.https, sni, &[b"http/1.1"]).await;
        leaf(&stream)
    }
}

/// ring's crypto provider with exactly one cipher suite.
pub fn one_suite_provider(suite: rustls::CipherSuite) -> Arc<rustls::crypto::CryptoProvider> {
    let base = rustls::crypto::ring::default_provider();
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: base
            .cipher_suites
            .iter()
            .filter(|s| s.suite() == suite)
            .copied()
            .collect(),
        ..base
    })
}

/// A client configuration offering `alpn`, for the given protocol versions.
pub fn client_config(
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = portico::tls::provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(proxy::NoVerification(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` with SNI `sni` (`None`: an IP server name, so no SNI is sent).
pub async fn connect(addr: SocketAddr, sni: Option<&str>, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    connect_with(addr, sni, client_config(alpn, rustls::DEFAULT_VERSIONS))
        .await
        .expect("TLS handshake")
}

pub async fn connect_with(
    addr: SocketAddr,
    sni: Option<&str>,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_string()).expect("server name"),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = TcpStream::connect(addr).await?;
    tokio::time::timeout(BOUND, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("handshake within bound")
}

pub fn leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")[0]
        .clone()
}

/// An HTTP/1.1 (or, with `h2`, HTTP/2) client over an established TLS stream.
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    pub async fn new(stream: TlsStream<TcpStream>) -> Client {
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Client::speaking(stream, h2).await
    }

    /// HTTP/2 (`h2`) or HTTP/1.1 whatever ALPN said (or did not say).
    pub async fn speaking(stream: TlsStream<TcpStream>, h2: bool) -> Client {
        let io = TokioIo::new(stream);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("h2 handshake");
            tokio::spawn(conn);
            Client::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("h1 handshake");
            tokio::spawn(conn);
            Client::H1(send)
        }
    }

    /// `GET https://host/path` (Host header for HTTP/1.1, `:authority` for HTTP/2).
    pub async fn get(&mut self, host: &str, path: &str) -> Response<Bytes> {
        let fut = async {
            let response = match self {
                Client::H1(send) => {
                    let req = Request::get(path)
                        .header("host", host)
                        .body(Empty::new())
                        .unwrap();
                    send.ready().await.expect("ready");
                    send.send_request(req).await.expect("response")
                }
                Client::H2(send) => {
                    let req = Request::get(format!("https://{host}{path}"))
                        .body(Empty::new())
                        .unwrap();
                    send.ready().await.expect("ready");
                    send.send_request(req).await.expect("response")
                }
            };
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            Response::from_parts(parts, body)
        };
        tokio::time::timeout(BOUND, fut)
            .await
            .expect("response within bound")
    }
}

pub fn json(response: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(response.body()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): status {} body {:?}",
            response.status(),
            String::from_utf8_lossy(response.body())
        )
    })
}
