//! TLS policy ConfigMap keys (issue 15): `ssl-protocols`, `ssl-ciphers` and friends over real
//! sockets, with rustls clients on loopback. Reproduces ingress-nginx e2e
//! `test/e2e/settings/tls.go` ("should configure TLS protocol", "should set ciphers"): a
//! client outside the policy fails the handshake, one inside it succeeds.

mod support;

use portico::translate::Options;
use support::tls::*;

fn configmap(pairs: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    serde_json::to_string(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": "ingress", "name": "portico"},
        "data": data,
    }))
    .unwrap()
}

fn with_configmap() -> Options {
    Options {
        configmap: Some(("ingress".to_string(), "portico".to_string())),
        ..options()
    }
}

/// A client for exactly one TLS 1.2 suite.
fn tls12_client(suite: rustls::CipherSuite) -> std::sync::Arc<rustls::ClientConfig> {
    let provider = support::tls::one_suite_provider(suite);
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(portico::proxy::NoVerification(
            provider,
        )))
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

// tls.go "should configure TLS protocol": `ssl-protocols: TLSv1.3` refuses a TLS 1.2 client
// and serves a TLS 1.3 one; removing the key applies to new connections without restart.
#[tokio::test]
async fn tls13_only_refuses_tls12_and_applies_live() {
    let proxy = TlsProxy::start().await;
    let tls12 = client_config(&[b"http/1.1"], &[&rustls::version::TLS12]);
    let tls13 = client_config(&[b"http/1.1"], &[&rustls::version::TLS13]);
    // Before: TLS 1.2 is served.
    assert!(connect_with(proxy.https, Some("a.example"), tls12.clone())
        .await
        .is_ok());
    proxy.apply_with(
        &[configmap(&[("ssl-protocols", "TLSv1.3")])],
        &with_configmap(),
    );
    assert!(connect_with(proxy.https, Some("a.example"), tls12.clone())
        .await
        .is_err());
    assert!(connect_with(proxy.https, None, tls12.clone())
        .await
        .is_err());
    let s = connect_with(proxy.https, Some("a.example"), tls13)
        .await
        .expect("TLS 1.3");
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // Back to the defaults: TLS 1.2 again on a new connection.
    proxy.apply_with(&[configmap(&[])], &with_configmap());
    assert!(connect_with(proxy.https, Some("a.example"), tls12)
        .await
        .is_ok());
}

// tls.go "should set ciphers": only the listed TLS 1.2 suite is negotiated; a client offering
// only another one fails the handshake. (The generated certificate is ECDSA.)
#[tokio::test]
async fn ssl_ciphers_excludes_unlisted_suites() {
    let proxy = TlsProxy::start().await;
    proxy.apply_with(
        &[configmap(&[
            ("ssl-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"),
            ("ssl-protocols", "TLSv1.2"),
        ])],
        &with_configmap(),
    );
    let listed = tls12_client(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
    let s = connect_with(proxy.https, Some("a.example"), listed)
        .await
        .expect("listed suite");
    assert_eq!(
        s.get_ref().1.negotiated_cipher_suite().map(|c| c.suite()),
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    );
    let other = tls12_client(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    assert!(connect_with(proxy.https, Some("a.example"), other)
        .await
        .is_err());
}

// Bad values: conditions, and the secure default stays (TLS 1.2 and 1.3, all AEAD suites).
#[tokio::test]
async fn bad_values_keep_the_secure_default() {
    let proxy = TlsProxy::start().await;
    proxy.apply_with(
        &[configmap(&[
            ("ssl-protocols", "TLSv1 TLSv1.1"),
            ("ssl-ciphers", "AES128-SHA:DES-CBC3-SHA"),
        ])],
        &with_configmap(),
    );
    let published = proxy.shared.load();
    assert!(published.translation.global.tls_policy.is_none());
    let messages: Vec<&str> = published
        .translation
        .conditions
        .iter()
        .map(|c| c.message.as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("ssl-protocols: TLSv1, TLSv1.1 refused")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("ssl-ciphers") && m.contains("secure default")),
        "{messages:?}"
    );
    drop(published);
    let tls12 = tls12_client(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    assert!(connect_with(proxy.https, Some("a.example"), tls12)
        .await
        .is_ok());
}

// Hosts with client certificates (`auth-tls-*`) get the policy's versions too: with
// `ssl-protocols: TLSv1.3`, a TLS 1.2 client is refused for such a host as for the others.
#[tokio::test]
async fn client_certificate_hosts_follow_the_policy() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "policy-ca");
    let ca_pem = params.self_signed(&key).unwrap().pem();
    let ca_secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ca", "namespace": "default"},
        "type": "Opaque",
        "stringData": {"ca.crt": ca_pem},
    })
    .to_string();
    let backend = support::start_echo("mtls").await;
    let proxy = TlsProxy::start().await;
    let server = cert(&["mtls.example"]);
    let docs = |cm: &[(&str, &str)]| {
        vec![
            tls_secret("default", "server", &server),
            ca_secret.clone(),
            app_yaml(
                "default",
                "mtls",
                "mtls.example",
                &["mtls.example"],
                "server",
                backend,
                &[
                    ("nginx.ingress.kubernetes.io/auth-tls-secret", "default/ca"),
                    (
                        "nginx.ingress.kubernetes.io/auth-tls-verify-client",
                        "optional",
                    ),
                ],
            ),
            configmap(cm),
        ]
    };
    let tls12 = client_config(&[b"http/1.1"], &[&rustls::version::TLS12]);
    proxy.apply_with(&docs(&[]), &with_configmap());
    assert!(
        connect_with(proxy.https, Some("mtls.example"), tls12.clone())
            .await
            .is_ok()
    );
    proxy.apply_with(&docs(&[("ssl-protocols", "TLSv1.3")]), &with_configmap());
    assert!(connect_with(proxy.https, Some("mtls.example"), tls12)
        .await
        .is_err());
    let tls13 = client_config(&[b"http/1.1"], &[&rustls::version::TLS13]);
    assert!(connect_with(proxy.https, Some("mtls.example"), tls13)
        .await
        .is_ok());
}
