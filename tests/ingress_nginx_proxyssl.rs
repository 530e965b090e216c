//! ingress-nginx backend TLS (`proxy-ssl-*`, issue 15) end to end: manifests translated and
//! published, a plain-HTTP request to the proxy, and an HTTPS upstream on loopback (rustls)
//! that may require a client certificate and reports what it saw (SNI, client certificate,
//! TLS version).
//!
//! Reproduces `test/e2e/annotations/proxyssl.go` of kubernetes/ingress-nginx (named per
//! test; ingress-nginx only checks its nginx.conf there, these check the connection itself).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::tls::{app_yaml, TlsProxy};
use tokio::net::TcpListener;

const NGINX: &str = "nginx.ingress.kubernetes.io/";

struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn pki(cn: &str) -> Pki {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    Pki {
        ca_pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A certificate for `names` (CN `cn`) signed by `pki`: (PEM, DER, key PEM).
fn leaf(pki: &Pki, cn: &str, names: &[&str]) -> (String, CertificateDer<'static>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    (cert.pem(), cert.der().clone(), key.serialize_pem())
}

/// An HTTPS upstream with `cert`; with `client_ca` it requires a client certificate from it.
/// Answers `sni=..;client=..;version=..`.
async fn upstream(
    cert: CertificateDer<'static>,
    key_pem: &str,
    client_ca: Option<&str>,
) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(portico::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    portico::tls::provider(),
                )
                .build()
                .unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(vec![cert], key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let conn = tls.get_ref().1;
                let sni = conn.server_name().unwrap_or("-").to_string();
                let client = conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| x509_parser::parse_x509_certificate(c).ok())
                    .map(|(_, c)| c.subject().to_string())
                    .unwrap_or_else(|| "-".to_string());
                let version = portico::tls::version_name(conn.protocol_version());
                let text = format!("sni={sni};client={client};version={version}");
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let text = text.clone();
                    async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text)))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

/// A Secret with `ca.crt` and optionally `tls.crt`/`tls.key` (ingress-nginx's e2e
/// `CreateIngressMASecret` holds all three).
fn proxy_secret(ca_pem: &str, client: Option<(&str, &str)>) -> String {
    let mut data = serde_json::Map::new();
    data.insert("ca.crt".into(), ca_pem.into());
    if let Some((crt, key)) = client {
        data.insert("tls.crt".into(), crt.into());
        data.insert("tls.key".into(), key.into());
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "proxyssl", "namespace": "default"},
        "type": "kubernetes.io/tls",
        "stringData": data,
    })
    .to_string()
}

async fn setup(backend: SocketAddr, annotations: &[(&str, &str)], secret: String) -> TlsProxy {
    let proxy = TlsProxy::start().await;
    // Plain HTTP to the proxy, HTTPS to the upstream.
    let mut pairs: Vec<(String, String)> = vec![
        (format!("{NGINX}backend-protocol"), "HTTPS".to_string()),
        (format!("{NGINX}ssl-redirect"), "false".to_string()),
    ];
    pairs.extend(
        annotations
            .iter()
            .map(|(k, v)| (format!("{NGINX}{k}"), v.to_string())),
    );
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    proxy.apply(&[
        secret,
        app_yaml("default", "app", "app.example", &[], "none", backend, &refs),
    ]);
    proxy
}

async fn get(proxy: &TlsProxy) -> (u16, String) {
    let mut conn = support::Conn::connect(proxy.http).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
        .await;
    let response = conn.response().await;
    (response.status, response.text())
}

/// proxyssl.go "should set valid proxy-ssl-secret": the Secret's `tls.crt`/`tls.key` are
/// shown to an upstream that requires a client certificate; without `proxy-ssl-verify` the
/// upstream's own certificate is not verified and no SNI is sent (nginx's defaults).
#[tokio::test]
async fn the_secret_s_certificate_is_shown_to_the_upstream() {
    let ours = pki("proxy-ca");
    let (_, server_der, server_key) = leaf(&ours, "backend", &["backend.internal"]);
    let (client_pem, _, client_key) = leaf(&ours, "portico-client", &[]);
    let backend = upstream(server_der, &server_key, Some(&ours.ca_pem)).await;
    let with_cert = setup(
        backend,
        &[("proxy-ssl-secret", "default/proxyssl")],
        proxy_secret(&ours.ca_pem, Some((&client_pem, &client_key))),
    )
    .await;
    let (status, body) = get(&with_cert).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "sni=-;client=CN=portico-client;version=TLSv1.3");
    // The same upstream without a client certificate in the Secret: its handshake fails.
    let without = setup(
        backend,
        &[("proxy-ssl-secret", "default/proxyssl")],
        proxy_secret(&ours.ca_pem, None),
    )
    .await;
    assert_eq!(get(&without).await.0, 502);
}

/// proxyssl.go "should set valid proxy-ssl-secret, proxy-ssl-verify to on,
/// proxy-ssl-verify-depth to 2, and proxy-ssl-server-name to on", with `proxy-ssl-name`:
/// the upstream is verified against that name and gets it as SNI.
#[tokio::test]
async fn verify_name_sni_and_depth() {
    let ours = pki("proxy-ca");
    let (_, server_der, server_key) = leaf(&ours, "backend", &["backend.internal"]);
    let backend = upstream(server_der, &server_key, None).await;
    let annotations = [
        ("proxy-ssl-secret", "default/proxyssl"),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-verify-depth", "2"),
        ("proxy-ssl-server-name", "on"),
        ("proxy-ssl-name", "backend.internal"),
    ];
    let proxy = setup(backend, &annotations, proxy_secret(&ours.ca_pem, None)).await;
    let (status, body) = get(&proxy).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("sni=backend.internal;"), "{body}");
    // `proxy-ssl-server-name: off`: verified against the name, but no SNI.
    let mut quiet = annotations;
    quiet[3] = ("proxy-ssl-server-name", "off");
    let proxy = setup(backend, &quiet, proxy_secret(&ours.ca_pem, None)).await;
    let (status, body) = get(&proxy).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("sni=-;"), "{body}");
    // Another name than the certificate's: the verification fails, 502.
    let mut wrong = annotations;
    wrong[4] = ("proxy-ssl-name", "other.internal");
    let proxy = setup(backend, &wrong, proxy_secret(&ours.ca_pem, None)).await;
    assert_eq!(get(&proxy).await.0, 502);
}

/// proxyssl.go "should set valid proxy-ssl-secret, proxy-ssl-protocols": one version only is
/// what the upstream negotiates.
#[tokio::test]
async fn protocols_choose_the_version() {
    let ours = pki("proxy-ca");
    let (_, server_der, server_key) = leaf(&ours, "backend", &["backend.internal"]);
    let backend = upstream(server_der, &server_key, None).await;
    for (protocols, expected) in [
        ("TLSv1.2", "TLSv1.2"),
        ("TLSv1.3", "TLSv1.3"),
        ("TLSv1.2 TLSv1.3", "TLSv1.3"),
    ] {
        let proxy = setup(
            backend,
            &[
                ("proxy-ssl-secret", "default/proxyssl"),
                ("proxy-ssl-protocols", protocols),
            ],
            proxy_secret(&ours.ca_pem, None),
        )
        .await;
        let (status, body) = get(&proxy).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.ends_with(&format!("version={expected}")),
            "{protocols}: {body}"
        );
    }
    let proxy = setup(
        backend,
        &[("proxy-ssl-protocols", "TLSv1 TLSv1.1")],
        proxy_secret(&ours.ca_pem, None),
    )
    .await;
    assert_eq!(get(&proxy).await.0, 200);
    assert!(proxy
        .conditions_of("app")
        .iter()
        .any(|m| m.contains("proxy-ssl-protocols")));
}

/// proxyssl.go "should set valid proxy-ssl-secret, proxy-ssl-ciphers to HIGH:!AES": an
/// OpenSSL alias (`HIGH`) is not mapped; the condition says so and the request is served with
/// rustls's default suites (never weaker).
#[tokio::test]
async fn unmapped_cipher_names_keep_the_default_suites() {
    let ours = pki("proxy-ca");
    let (_, server_der, server_key) = leaf(&ours, "backend", &["backend.internal"]);
    let backend = upstream(server_der, &server_key, None).await;
    let proxy = setup(
        backend,
        &[
            ("proxy-ssl-secret", "default/proxyssl"),
            ("proxy-ssl-ciphers", "HIGH:!AES"),
        ],
        proxy_secret(&ours.ca_pem, None),
    )
    .await;
    assert_eq!(get(&proxy).await.0, 200);
    assert!(proxy
        .conditions_of("app")
        .iter()
        .any(|m| m.contains("proxy-ssl-ciphers")));
}

/// `proxy-ssl-verify-depth: 1` with an upstream sending an intermediate: refused (502).
#[tokio::test]
async fn a_deeper_upstream_chain_than_the_depth_is_refused() {
    let root = pki("root");
    let int_key = rcgen::KeyPair::generate().unwrap();
    let mut int_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    int_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    int_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "intermediate");
    let int_cert = int_params.signed_by(&int_key, &root.issuer).unwrap();
    let intermediate = Pki {
        ca_pem: int_cert.pem(),
        issuer: rcgen::Issuer::new(int_params, int_key),
    };
    let (_, server_der, server_key) = leaf(&intermediate, "backend", &["backend.internal"]);
    // The upstream sends its certificate and the intermediate.
    let backend = {
        use rustls::pki_types::pem::PemObject;
        let key = PrivateKeyDer::from_pem_slice(server_key.as_bytes()).unwrap();
        upstream_chain(vec![server_der, int_cert.der().clone()], key).await
    };
    let annotations = |depth: &'static str| {
        [
            ("proxy-ssl-secret", "default/proxyssl"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-name", "backend.internal"),
            ("proxy-ssl-verify-depth", depth),
        ]
    };
    let shallow = setup(backend, &annotations("1"), proxy_secret(&root.ca_pem, None)).await;
    assert_eq!(get(&shallow).await.0, 502);
    let deep = setup(backend, &annotations("2"), proxy_secret(&root.ca_pem, None)).await;
    assert_eq!(get(&deep).await.0, 200);
}

async fn upstream_chain(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(portico::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    serve_tls(config).await
}

/// An HTTPS upstream speaking TLS 1.2 with `suite` only; answers `suite=<name>`.
async fn upstream_with_suite(
    cert: CertificateDer<'static>,
    key_pem: &str,
    suite: rustls::CipherSuite,
) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(support::tls::one_suite_provider(suite))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
    serve_tls(config).await
}

/// An HTTPS upstream on 127.0.0.1 with `config`; answers `suite=<negotiated suite>`.
async fn serve_tls(config: rustls::ServerConfig) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let text = format!(
                    "suite={:?}",
                    tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite())
                );
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let text = text.clone();
                    async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text)))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

/// `proxy-ssl-ciphers` (nginx `proxy_ssl_ciphers`, mapped like `ssl-ciphers`): the backend
/// handshake offers only the named TLS 1.2 suites. A backend that only speaks another one
/// fails the handshake (502); one that speaks a named one is served. A list with a name
/// rustls does not implement falls back to the default suites, with a condition.
#[tokio::test]
async fn ciphers_restrict_the_backend_handshake() {
    let ours = pki("proxy-ca");
    let (_, server_der, server_key) = leaf(&ours, "backend", &["backend.internal"]);
    let backend = upstream_with_suite(
        server_der,
        &server_key,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    )
    .await;
    let secret = || proxy_secret(&ours.ca_pem, None);
    let refused = setup(
        backend,
        &[("proxy-ssl-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384")],
        secret(),
    )
    .await;
    assert_eq!(get(&refused).await.0, 502);
    assert!(
        !refused
            .conditions_of("app")
            .iter()
            .any(|m| m.contains("proxy-ssl")),
        "{:?}",
        refused.conditions_of("app")
    );
    let matching = setup(
        backend,
        &[(
            "proxy-ssl-ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
        )],
        secret(),
    )
    .await;
    let (status, body) = get(&matching).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "suite=Some(TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)");
    let unmapped = setup(
        backend,
        &[(
            "proxy-ssl-ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384:AES128-SHA",
        )],
        secret(),
    )
    .await;
    assert_eq!(get(&unmapped).await.0, 200);
    assert!(unmapped
        .conditions_of("app")
        .iter()
        .any(|m| m.contains("proxy-ssl-ciphers") && m.contains("AES128-SHA")));
}

/// ingress-nginx `annotations/proxyssl/main.go`: a `proxy-ssl-secret` the store cannot load
/// (missing, in another namespace, with neither a key pair nor a CA, or an unusable key
/// pair) is `LocationDenied`, and a denied location answers 503. Portico fails closed the
/// same way, with a condition, rather than reach the backend without the certificate.
#[tokio::test]
async fn an_unusable_proxy_ssl_secret_fails_closed() {
    let ours = pki("proxy-ca");
    let (_, server_der, server_key) = leaf(&ours, "backend", &["backend.internal"]);
    let backend = upstream(server_der, &server_key, None).await;
    let opaque = |data: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "proxyssl", "namespace": "default"},
            "type": "Opaque",
            "stringData": data,
        })
        .to_string()
    };
    let cases = [
        (
            "default/missing",
            proxy_secret(&ours.ca_pem, None),
            "names no Secret",
        ),
        (
            "other/proxyssl",
            proxy_secret(&ours.ca_pem, None),
            "another namespace",
        ),
        (
            "default/proxyssl",
            opaque(serde_json::json!({"auth": "user:hash"})),
            "neither ca.crt nor tls.crt",
        ),
        (
            "default/proxyssl",
            opaque(serde_json::json!({"tls.crt": "garbage", "tls.key": "garbage"})),
            "tls.crt/tls.key are unusable",
        ),
    ];
    for (value, secret, why) in cases {
        let proxy = setup(backend, &[("proxy-ssl-secret", value)], secret).await;
        assert_eq!(get(&proxy).await.0, 503, "{value}");
        let messages = proxy.conditions_of("app");
        assert!(
            messages
                .iter()
                .any(|m| m.contains(why) && m.contains("503")),
            "{value}: {messages:?}"
        );
    }
    // Portico's spelling (verification against the Secret's CA) fails closed too.
    let proxy = TlsProxy::start().await;
    proxy.apply(&[app_yaml(
        "default",
        "app",
        "app.example",
        &[],
        "none",
        backend,
        &[
            ("portico.dev/proxy-ssl-secret", "missing"),
            (&format!("{NGINX}backend-protocol"), "HTTPS"),
            (&format!("{NGINX}ssl-redirect"), "false"),
        ],
    )]);
    assert_eq!(get(&proxy).await.0, 503);
    // The control: the same Ingress with a usable Secret is served.
    let fine = setup(
        backend,
        &[("proxy-ssl-secret", "default/proxyssl")],
        proxy_secret(&ours.ca_pem, None),
    )
    .await;
    assert_eq!(get(&fine).await.0, 200);
}
