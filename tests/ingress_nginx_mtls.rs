//! ingress-nginx client certificates (`auth-tls-*`, issue 15) through real TLS handshakes on
//! loopback: certificates made with rcgen, a rustls client that presents (or not) a client
//! certificate, and the echo backend showing what the upstream saw.
//!
//! The cases reproduce `test/e2e/annotations/authtls.go` of kubernetes/ingress-nginx (named
//! per test) plus Portico's fail-closed rules (`ingress-nginx.md` §3).

mod support;

use std::sync::Arc;

use http::StatusCode;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ClientConfig;
use support::start_echo;
use support::tls::{app_yaml, client_config, connect_with, json, tls_secret, Client, TlsProxy};

const HOST: &str = "authtls.foo.com";
const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// A CA (rcgen), able to sign client certificates and CRLs.
struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca(cn: &str) -> Ca {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A client certificate chain (leaf first) and its key.
struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

fn client_cert(ca: &Ca, cn: &str, serial: u64) -> ClientCert {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    ClientCert {
        chain: vec![cert.der().clone()],
        key: key.serialize_der(),
    }
}

/// A chain of `depth` intermediates under `ca`, then a client leaf.
fn deep_client_cert(ca: &Ca, depth: usize) -> ClientCert {
    let mut intermediates: Vec<CertificateDer<'static>> = Vec::new();
    let mut issuer_params: Option<(rcgen::CertificateParams, rcgen::KeyPair)> = None;
    for i in 0..depth {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("intermediate {i}"));
        let cert = match &issuer_params {
            None => params.signed_by(&key, &ca.issuer).unwrap(),
            Some((p, k)) => params
                .signed_by(&key, &rcgen::Issuer::from_params(p, k))
                .unwrap(),
        };
        intermediates.insert(0, cert.der().clone());
        issuer_params = Some((params, key));
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "deep-client");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = match &issuer_params {
        None => params.signed_by(&key, &ca.issuer).unwrap(),
        Some((p, k)) => params
            .signed_by(&key, &rcgen::Issuer::from_params(p, k))
            .unwrap(),
    };
    let mut chain = vec![leaf.der().clone()];
    chain.extend(intermediates);
    ClientCert {
        chain,
        key: key.serialize_der(),
    }
}

/// An Opaque Secret with `ca.crt` (and `ca.crl`), as ingress-nginx's e2e framework makes it.
fn ca_secret(name: &str, ca_pem: &str, crl_pem: Option<&str>) -> String {
    let mut data = serde_json::Map::new();
    data.insert("ca.crt".into(), ca_pem.into());
    if let Some(crl) = crl_pem {
        data.insert("ca.crl".into(), crl.into());
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "Opaque",
        "stringData": data,
    })
    .to_string()
}

fn with_client_cert(cert: &ClientCert) -> Arc<ClientConfig> {
    let provider = portico::tls::provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(portico::proxy::NoVerification(provider)))
        .with_client_auth_cert(
            cert.chain.clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn anonymous() -> Arc<ClientConfig> {
    client_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS)
}

/// One GET over a fresh TLS connection with SNI `sni` and `Host: host`.
async fn get(
    proxy: &TlsProxy,
    config: Arc<ClientConfig>,
    sni: &str,
    host: &str,
) -> http::Response<bytes::Bytes> {
    let stream = connect_with(proxy.https, Some(sni), config)
        .await
        .expect("handshake");
    Client::new(stream).await.get(host, "/").await
}

/// The proxy serving `HOST` (TLS) to an echo backend with these annotations, the CA Secret
/// `ca` of `ca_pem`, and `plain.foo.com` (TLS, no client certificates) beside it.
async fn setup(annotations: &[(&str, &str)], ca_pem: &str, crl: Option<&str>) -> TlsProxy {
    let backend = start_echo("mtls").await;
    let proxy = TlsProxy::start().await;
    let server = support::tls::cert(&[HOST, "plain.foo.com"]);
    let annotations: Vec<(String, String)> = annotations
        .iter()
        .map(|(k, v)| (format!("{NGINX}{k}"), v.to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    proxy.apply(&[
        tls_secret("default", "server", &server),
        ca_secret("ca", ca_pem, crl),
        app_yaml("default", "mtls", HOST, &[HOST], "server", backend, &refs),
        app_yaml(
            "default",
            "plain",
            "plain.foo.com",
            &["plain.foo.com"],
            "server",
            backend,
            &[],
        ),
    ]);
    proxy
}

fn header<'a>(seen: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    support::seen(seen, name).first().copied()
}

/// authtls.go "should set sslClientCertificate, sslVerifyClient and sslVerifyDepth with
/// auth-tls-secret": without a certificate 400, with one 200; the upstream gets nginx's
/// `ssl-client-verify` and DNs, and not the certificate (not asked for).
#[tokio::test]
async fn a_certificate_is_required_and_described_to_the_upstream() {
    let ca = ca("authtls.foo.com-ca");
    let proxy = setup(&[("auth-tls-secret", "default/ca")], &ca.pem, None).await;
    let response = get(&proxy, anonymous(), HOST, HOST).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let client = client_cert(&ca, "authtls.foo.com-client", 7);
    let stream = connect_with(proxy.https, Some(HOST), with_client_cert(&client))
        .await
        .unwrap();
    let mut conn = Client::new(stream).await;
    let response = conn.get(HOST, "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = json(&response);
    assert_eq!(header(&seen, "ssl-client-verify"), Some("SUCCESS"));
    assert_eq!(
        header(&seen, "ssl-client-subject-dn"),
        Some("CN=authtls.foo.com-client")
    );
    assert_eq!(
        header(&seen, "ssl-client-issuer-dn"),
        Some("CN=authtls.foo.com-ca")
    );
    assert_eq!(header(&seen, "ssl-client-cert"), None);
    // The same connection keeps its verified certificate for the next request.
    assert_eq!(conn.get(HOST, "/again").await.status(), StatusCode::OK);
}

/// A client cannot forge the headers: what it sends under these names is replaced.
#[tokio::test]
async fn client_sent_ssl_client_headers_are_replaced() {
    let ca = ca("ca");
    let proxy = setup(
        &[
            ("auth-tls-secret", "ca"),
            ("auth-tls-verify-client", "optional"),
        ],
        &ca.pem,
        None,
    )
    .await;
    let stream = connect_with(proxy.https, Some(HOST), anonymous())
        .await
        .unwrap();
    let Client::H1(mut send) = Client::new(stream).await else {
        panic!("http/1.1 was offered");
    };
    let req = http::Request::get("/")
        .header("host", HOST)
        .header("ssl-client-verify", "SUCCESS")
        .header("ssl-client-subject-dn", "CN=admin")
        .header("ssl-client-cert", "forged")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(support::BOUND, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(support::seen(&seen, "ssl-client-verify"), vec!["NONE"]);
    assert!(support::seen(&seen, "ssl-client-subject-dn").is_empty());
    assert!(support::seen(&seen, "ssl-client-cert").is_empty());
}

/// authtls.go "should set valid auth-tls-secret, sslVerify to off, and sslVerifyDepth to 2".
#[tokio::test]
async fn verify_client_off_serves_without_a_certificate() {
    let ca = ca("ca");
    let proxy = setup(
        &[
            ("auth-tls-secret", "default/ca"),
            ("auth-tls-verify-client", "off"),
            ("auth-tls-verify-depth", "2"),
        ],
        &ca.pem,
        None,
    )
    .await;
    let response = get(&proxy, anonymous(), HOST, HOST).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&json(&response), "ssl-client-verify"), Some("NONE"));
}

/// authtls.go "should 302 redirect to error page instead of 400 when auth-tls-error-page is
/// set".
#[tokio::test]
async fn the_error_page_redirects_instead_of_400() {
    let ca = ca("ca");
    let page = "http://errors.foo.com/error";
    let proxy = setup(
        &[
            ("auth-tls-secret", "default/ca"),
            ("auth-tls-error-page", page),
        ],
        &ca.pem,
        None,
    )
    .await;
    let response = get(&proxy, anonymous(), HOST, HOST).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], page);
    let client = client_cert(&ca, "c", 1);
    let response = get(&proxy, with_client_cert(&client), HOST, HOST).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// authtls.go "should pass URL-encoded certificate to upstream".
#[tokio::test]
async fn the_certificate_is_passed_url_encoded() {
    let ca = ca("ca");
    let proxy = setup(
        &[
            ("auth-tls-secret", "default/ca"),
            ("auth-tls-pass-certificate-to-upstream", "true"),
        ],
        &ca.pem,
        None,
    )
    .await;
    assert_eq!(
        get(&proxy, anonymous(), HOST, HOST).await.status(),
        StatusCode::BAD_REQUEST
    );
    let client = client_cert(&ca, "c", 1);
    let response = get(&proxy, with_client_cert(&client), HOST, HOST).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = json(&response);
    let cert = header(&seen, "ssl-client-cert").expect("ssl-client-cert");
    assert!(
        cert.starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
        "{cert}"
    );
    assert!(cert.ends_with("-----END%20CERTIFICATE-----%0A"), "{cert}");
}

/// authtls.go "should validate auth-tls-verify-client" (`on`), and `optional` /
/// `optional_no_ca` with a certificate from another CA.
#[tokio::test]
async fn verify_client_modes() {
    let ours = ca("ours");
    let theirs = ca("theirs");
    let stranger = client_cert(&theirs, "stranger", 9);
    let friend = client_cert(&ours, "friend", 3);

    let proxy = setup(&[("auth-tls-secret", "ca")], &ours.pem, None).await;
    assert_eq!(
        get(&proxy, with_client_cert(&stranger), HOST, HOST)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&proxy, with_client_cert(&friend), HOST, HOST)
            .await
            .status(),
        StatusCode::OK
    );

    let optional = setup(
        &[
            ("auth-tls-secret", "ca"),
            ("auth-tls-verify-client", "optional"),
        ],
        &ours.pem,
        None,
    )
    .await;
    assert_eq!(
        get(&optional, anonymous(), HOST, HOST).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&optional, with_client_cert(&stranger), HOST, HOST)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );

    let no_ca = setup(
        &[
            ("auth-tls-secret", "ca"),
            ("auth-tls-verify-client", "optional_no_ca"),
        ],
        &ours.pem,
        None,
    )
    .await;
    let response = get(&no_ca, with_client_cert(&stranger), HOST, HOST).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&json(&response), "ssl-client-verify"),
        Some("FAILED:unable to get local issuer certificate")
    );
}

/// authtls.go "should return 403 using auth-tls-match-cn with no matching CN from client"
/// and "... where atleast one of the regex options matches CN from client".
#[tokio::test]
async fn match_cn_is_a_regex_on_the_subject() {
    let ca = ca("ca");
    let client = client_cert(&ca, "authtls.foo.com-client", 5);
    let strict = setup(
        &[
            ("auth-tls-secret", "ca"),
            ("auth-tls-match-cn", "CN=notgonnamatch"),
        ],
        &ca.pem,
        None,
    )
    .await;
    assert_eq!(
        get(&strict, with_client_cert(&client), HOST, HOST)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let options = setup(
        &[
            ("auth-tls-secret", "ca"),
            (
                "auth-tls-match-cn",
                "CN=(itwillmatch|withthenextoption|authtls)",
            ),
        ],
        &ca.pem,
        None,
    )
    .await;
    assert_eq!(
        get(&options, with_client_cert(&client), HOST, HOST)
            .await
            .status(),
        StatusCode::OK
    );
}

/// nginx `ngx_http_set_virtual_server`: a request for a host that verifies clients, on a
/// connection whose SNI named another host, is 421 — the handshake never asked for a
/// certificate. The other host itself is unaffected.
#[tokio::test]
async fn sni_of_another_host_is_misdirected() {
    let ca = ca("ca");
    let proxy = setup(&[("auth-tls-secret", "ca")], &ca.pem, None).await;
    let stream = connect_with(proxy.https, Some("plain.foo.com"), anonymous())
        .await
        .unwrap();
    let mut conn = Client::new(stream).await;
    assert_eq!(
        conn.get("plain.foo.com", "/").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        conn.get(HOST, "/").await.status(),
        StatusCode::MISDIRECTED_REQUEST
    );
    // A client with a good certificate, SNI of the plain host: still 421.
    let client = client_cert(&ca, "c", 1);
    let response = get(&proxy, with_client_cert(&client), "plain.foo.com", HOST).await;
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
}

/// `ca.crl`: a revoked client certificate does not verify.
#[tokio::test]
async fn a_revoked_certificate_is_refused() {
    let ca = ca("ca");
    let revoked = client_cert(&ca, "revoked", 66);
    let fine = client_cert(&ca, "fine", 67);
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2020, 1, 1),
        next_update: rcgen::date_time_ymd(4000, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from(66u64),
            revocation_time: rcgen::date_time_ymd(2021, 1, 1),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap();
    let proxy = setup(
        &[
            ("auth-tls-secret", "ca"),
            ("auth-tls-verify-client", "optional_no_ca"),
        ],
        &ca.pem,
        Some(&crl),
    )
    .await;
    let response = get(&proxy, with_client_cert(&revoked), HOST, HOST).await;
    assert_eq!(
        header(&json(&response), "ssl-client-verify"),
        Some("FAILED:certificate revoked")
    );
    let response = get(&proxy, with_client_cert(&fine), HOST, HOST).await;
    assert_eq!(
        header(&json(&response), "ssl-client-verify"),
        Some("SUCCESS")
    );
}

/// `auth-tls-verify-depth` bounds the chain; a 50-deep chain is refused whatever the depth
/// (webpki bounds the path too), and the proxy keeps serving.
#[tokio::test]
async fn chains_deeper_than_the_depth_are_refused() {
    let ca = ca("ca");
    let one_intermediate = deep_client_cert(&ca, 1);
    let shallow = setup(&[("auth-tls-secret", "ca")], &ca.pem, None).await;
    assert_eq!(
        get(&shallow, with_client_cert(&one_intermediate), HOST, HOST)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let deep = setup(
        &[("auth-tls-secret", "ca"), ("auth-tls-verify-depth", "100")],
        &ca.pem,
        None,
    )
    .await;
    assert_eq!(
        get(&deep, with_client_cert(&one_intermediate), HOST, HOST)
            .await
            .status(),
        StatusCode::OK
    );
    let fifty = deep_client_cert(&ca, 50);
    assert_eq!(
        get(&deep, with_client_cert(&fifty), HOST, HOST)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&deep, with_client_cert(&one_intermediate), HOST, HOST)
            .await
            .status(),
        StatusCode::OK
    );
}

/// Fail closed (`ingress-nginx.md` §3): a missing Secret, a bundle with garbage, a
/// look-around in `auth-tls-match-cn`, an error page Portico cannot serve — 503 and a
/// condition naming the annotation; the other host keeps serving.
#[tokio::test]
async fn unusable_settings_fail_closed() {
    let ca = ca("ca");
    let garbage = format!(
        "{}-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        ca.pem
    );
    // (annotations, ca.crt, what the condition names)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            &[("auth-tls-secret", "missing")],
            &ca.pem,
            "names no Secret",
        ),
        (&[("auth-tls-secret", "ca")], &garbage, "ca.crt"),
        (
            &[
                ("auth-tls-secret", "ca"),
                ("auth-tls-match-cn", "CN=(?!admin)"),
            ],
            &ca.pem,
            "look-around",
        ),
        (
            &[("auth-tls-secret", "ca"), ("auth-tls-error-page", "/error")],
            &ca.pem,
            "absolute",
        ),
    ];
    let client = client_cert(&ca, "c", 1);
    for (annotations, bundle, why) in cases {
        let proxy = setup(annotations, bundle, None).await;
        let response = get(&proxy, with_client_cert(&client), HOST, HOST).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{annotations:?}"
        );
        let published = proxy.shared.load();
        let condition = published
            .translation
            .conditions
            .iter()
            .find(|c| c.object.name == "mtls" && c.message.contains("auth-tls"))
            .unwrap_or_else(|| panic!("no condition for {annotations:?}"));
        assert!(condition.message.contains(why), "{}", condition.message);
        assert!(condition.message.contains("503"), "{}", condition.message);
        let plain = get(&proxy, anonymous(), "plain.foo.com", "plain.foo.com").await;
        assert_eq!(plain.status(), StatusCode::OK);
    }
}

/// Plain HTTP to a host with client certificates: redirected to HTTPS as usual (its TLS
/// host redirects by default), and never served without a certificate when it is not.
#[tokio::test]
async fn plain_http_never_skips_the_certificate() {
    let ca = ca("ca");
    let redirecting = setup(&[("auth-tls-secret", "ca")], &ca.pem, None).await;
    let response = plain_get(redirecting.http).await;
    assert_eq!(response.status, 308);
    let serving = setup(
        &[("auth-tls-secret", "ca"), ("ssl-redirect", "false")],
        &ca.pem,
        None,
    )
    .await;
    let response = plain_get(serving.http).await;
    assert_eq!(response.status, 400);
}

async fn plain_get(addr: std::net::SocketAddr) -> support::RawResponse {
    let mut conn = support::Conn::connect(addr).await;
    conn.send(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    conn.response().await
}

/// ingress-nginx puts `auth-tls-*` on the nginx `server`: another Ingress of the same host,
/// without any annotation, is protected too.
#[tokio::test]
async fn the_whole_host_is_protected() {
    let ca = ca("ca");
    let proxy = setup(&[("auth-tls-secret", "ca")], &ca.pem, None).await;
    let backend = start_echo("other").await;
    let server = support::tls::cert(&[HOST, "plain.foo.com"]);
    let other = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "other", "namespace": "default"},
        "spec": {"rules": [{"host": HOST, "http": {"paths": [{"path": "/other",
            "pathType": "Prefix", "backend": {"service": {"name": "mtls-svc",
            "port": {"number": 80}}}}]}}]},
    })
    .to_string();
    proxy.apply(&[
        tls_secret("default", "server", &server),
        ca_secret("ca", &ca.pem, None),
        app_yaml(
            "default",
            "mtls",
            HOST,
            &[HOST],
            "server",
            backend,
            &[("nginx.ingress.kubernetes.io/auth-tls-secret", "ca")],
        ),
        other,
    ]);
    let stream = connect_with(proxy.https, Some(HOST), anonymous())
        .await
        .unwrap();
    let response = Client::new(stream).await.get(HOST, "/other").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let client = client_cert(&ca, "c", 1);
    let stream = connect_with(proxy.https, Some(HOST), with_client_cert(&client))
        .await
        .unwrap();
    let response = Client::new(stream).await.get(HOST, "/other").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&json(&response), "ssl-client-verify"),
        Some("SUCCESS")
    );
}
