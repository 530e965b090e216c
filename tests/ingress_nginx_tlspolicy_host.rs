//! The rest of issue 15's TLS policy over real sockets, with rustls clients on loopback:
//! the per-host `ssl-ciphers` and `ssl-prefer-server-ciphers` annotations (ingress-nginx e2e
//! `test/e2e/annotations/sslciphers.go`), `ssl-session-timeout` (sessions and tickets older
//! than it are not resumed; a test clock moves instead of the test waiting) and
//! `ssl-session-ticket-key` (`test/e2e/settings/ssl_session_tickets.go` "should set
//! ssl_session_tickets and ssl_session_ticket_key values": ingress-nginx checks its nginx.conf;
//! these check that two replicas with the key resume each other's sessions).

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico::translate::Options;
use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;
use rustls::{CipherSuite, HandshakeKind};
use support::tls::*;

const NGINX: &str = "nginx.ingress.kubernetes.io/";

// The value of ingress-nginx's e2e test (`openssl rand 80 | openssl enc -A -base64`).
const KEY: &str = "WW9gcPHgfcrw6DNqY5VE2NjM6gtgUhJ4Vn6ZwRGi/7+A9TNFa4Fvfe1cmlPec9bxDoenN70aMBeZBlcrKshnKT4WJxFNLCuTHhfn4loTOEo=";

fn configmap(pairs: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": "ingress", "name": "portico"},
        "data": data,
    })
    .to_string()
}

fn with_configmap() -> Options {
    Options {
        configmap: Some(("ingress".to_string(), "portico".to_string())),
        ..options()
    }
}

/// A TLS 1.2 client offering exactly `suites`, in this order.
fn tls12_client(suites: &[CipherSuite]) -> Arc<rustls::ClientConfig> {
    let base = rustls::crypto::ring::default_provider();
    let cipher_suites = suites
        .iter()
        .flat_map(|want| {
            base.cipher_suites
                .iter()
                .filter(move |s| s.suite() == *want)
        })
        .copied()
        .collect();
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites,
        ..base
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(portico::proxy::NoVerification(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

const AES128: CipherSuite = CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
const AES256: CipherSuite = CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384;
const CHACHA: CipherSuite = CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256;

/// The TLS 1.2 suite a handshake with `sni` negotiates; `None` when it fails.
async fn suite(
    proxy: &TlsProxy,
    sni: &str,
    client: Arc<rustls::ClientConfig>,
) -> Option<CipherSuite> {
    let stream = connect_with(proxy.https, Some(sni), client).await.ok()?;
    stream
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map(|s| s.suite())
}

/// Host `host` (Ingress `name`) with its own certificate, routed to `backend`.
fn site(
    name: &str,
    host: &str,
    backend: std::net::SocketAddr,
    annotations: &[(&str, &str)],
) -> Vec<String> {
    let cert = cert(&[host]);
    let secret = format!("{name}-tls");
    let annotations: Vec<(String, String)> = annotations
        .iter()
        .map(|(k, v)| (format!("{NGINX}{k}"), v.to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vec![
        tls_secret("default", &secret, &cert),
        app_yaml("default", name, host, &[host], &secret, backend, &refs),
    ]
}

// The annotation restricts the TLS 1.2 suites of its host only (nginx's `ssl_ciphers` in the
// host's `server`): a client offering only a suite the host leaves out fails the handshake
// there, and succeeds on another host of the same listener. TLS 1.3 is not restricted.
#[tokio::test]
async fn a_host_cipher_list_refuses_other_suites_on_that_host_only() {
    let backend = support::start_echo("b").await;
    let proxy = TlsProxy::start().await;
    let mut docs = site(
        "strict",
        "strict.example",
        backend,
        &[("ssl-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384")],
    );
    docs.extend(site("open", "open.example", backend, &[]));
    proxy.apply(&docs);
    assert!(
        proxy.conditions_of("strict").is_empty(),
        "{:?}",
        proxy.conditions_of("strict")
    );
    assert_eq!(
        suite(&proxy, "strict.example", tls12_client(&[AES128])).await,
        None
    );
    assert_eq!(
        suite(&proxy, "open.example", tls12_client(&[AES128])).await,
        Some(AES128)
    );
    assert_eq!(
        suite(&proxy, "strict.example", tls12_client(&[AES256])).await,
        Some(AES256)
    );
    let tls13 = client_config(&[b"http/1.1"], &[&rustls::version::TLS13]);
    let stream = connect_with(proxy.https, Some("strict.example"), tls13)
        .await
        .expect("TLS 1.3 is not restricted");
    let mut client = Client::new(stream).await;
    assert_eq!(client.get("strict.example", "/").await.status(), 200);
    // Under a ConfigMap policy too (its versions apply; the host keeps its suites).
    docs.push(configmap(&[("ssl-protocols", "TLSv1.2")]));
    proxy.apply_with(&docs, &with_configmap());
    assert_eq!(
        suite(&proxy, "strict.example", tls12_client(&[AES128])).await,
        None
    );
    assert_eq!(
        suite(&proxy, "open.example", tls12_client(&[AES128])).await,
        Some(AES128)
    );
    assert_eq!(
        suite(&proxy, "strict.example", tls12_client(&[AES256])).await,
        Some(AES256)
    );
}

// sslciphers.go "should change ssl ciphers": an OpenSSL expression with aliases and
// operators (`ALL:!aNULL:...`) and `ssl-prefer-server-ciphers: false`. Portico maps none of
// those names: they are refused with a condition and the host keeps the listener's suites
// (never weaker); HTTPS is served (the e2e test's 200), in the client's order.
#[tokio::test]
async fn openssl_expressions_are_refused_and_the_host_still_serves() {
    let backend = support::start_echo("b").await;
    let proxy = TlsProxy::start().await;
    proxy.apply(&site(
        "ciphers",
        "ciphers.foo.com",
        backend,
        &[
            (
                "ssl-ciphers",
                "ALL:!aNULL:!EXPORT56:RC4+RSA:+HIGH:+MEDIUM:+LOW:+SSLv2:+EXP",
            ),
            ("ssl-prefer-server-ciphers", "false"),
        ],
    ));
    let messages = proxy.conditions_of("ciphers");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("ssl-ciphers") && m.contains("ALL, RC4+RSA")),
        "{messages:?}"
    );
    let stream = connect(proxy.https, Some("ciphers.foo.com"), &[b"http/1.1"]).await;
    let mut client = Client::new(stream).await;
    assert_eq!(
        client.get("ciphers.foo.com", "/something").await.status(),
        200
    );
    // The client's order: it asks CHACHA first and gets it.
    assert_eq!(
        suite(&proxy, "ciphers.foo.com", tls12_client(&[CHACHA, AES256])).await,
        Some(CHACHA)
    );
}

// sslciphers.go "should keep ssl ciphers" (`ssl-prefer-server-ciphers: true`): the host's
// list order wins over the client's; with `false` the client's order wins.
#[tokio::test]
async fn prefer_server_ciphers_follows_the_host_list_order() {
    let backend = support::start_echo("b").await;
    let proxy = TlsProxy::start().await;
    let list = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305";
    for (prefer, expected) in [("true", AES256), ("false", CHACHA)] {
        proxy.apply(&site(
            "order",
            "order.example",
            backend,
            &[("ssl-ciphers", list), ("ssl-prefer-server-ciphers", prefer)],
        ));
        assert_eq!(
            suite(&proxy, "order.example", tls12_client(&[CHACHA, AES256])).await,
            Some(expected),
            "ssl-prefer-server-ciphers: {prefer}"
        );
    }
    // Without the annotations the listener prefers its own order (ingress-nginx's default
    // `ssl-prefer-server-ciphers: true`): AES-GCM before CHACHA20.
    proxy.apply(&site("order", "order.example", backend, &[]));
    assert_eq!(
        suite(&proxy, "order.example", tls12_client(&[CHACHA, AES128])).await,
        Some(AES128)
    );
}

/// An Ingress document (first of `app_yaml`'s) with a creation time.
fn created(mut docs: Vec<String>, at: &str) -> Vec<String> {
    let mut parts: Vec<String> = docs[1].split("\n---\n").map(str::to_string).collect();
    let mut ingress: serde_json::Value = serde_json::from_str(&parts[0]).unwrap();
    ingress["metadata"]["creationTimestamp"] = at.into();
    parts[0] = ingress.to_string();
    docs[1] = parts.join("\n---\n");
    docs
}

// Two Ingresses of one host disagree: as ingress-nginx's `createServers` (Ingresses oldest
// first, "only add SSL ciphers if the server does not have them previously configured"),
// each setting comes from the oldest Ingress that sets it, whatever the names' order.
#[tokio::test]
async fn the_oldest_ingress_of_a_host_decides_each_setting() {
    let backend = support::start_echo("b").await;
    let proxy = TlsProxy::start().await;
    let mut docs = created(
        site(
            "zz-old",
            "shared.example",
            backend,
            &[("ssl-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384")],
        ),
        "2020-01-01T00:00:00Z",
    );
    docs.extend(created(
        site(
            "aa-young",
            "shared.example",
            backend,
            &[
                ("ssl-ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"),
                ("ssl-prefer-server-ciphers", "false"),
            ],
        ),
        "2024-01-01T00:00:00Z",
    ));
    proxy.apply(&docs);
    let published = proxy.shared.load();
    let tls = published
        .translation
        .table
        .select_vhost("shared.example")
        .and_then(|v| v.tls.clone())
        .expect("host TLS settings");
    assert_eq!(tls.tls12_suites, Some(vec![AES256]));
    assert_eq!(tls.prefer_server_ciphers, Some(false));
    drop(published);
    assert_eq!(
        suite(&proxy, "shared.example", tls12_client(&[AES128])).await,
        None
    );
    assert_eq!(
        suite(&proxy, "shared.example", tls12_client(&[AES256])).await,
        Some(AES256)
    );
}

/// Real time plus an offset the test moves.
#[derive(Debug, Default)]
struct TestClock(AtomicU64);

impl TestClock {
    fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl TimeProvider for TestClock {
    fn current_time(&self) -> Option<UnixTime> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        Some(UnixTime::since_unix_epoch(
            now + Duration::from_secs(self.0.load(Ordering::SeqCst)),
        ))
    }
}

/// Connects with `client` (whose session store remembers earlier connections), makes one
/// request (which also reads the TLS 1.3 tickets the server sends after the handshake), and
/// says whether the handshake resumed a session.
async fn handshake(
    proxy: &TlsProxy,
    sni: &str,
    client: &Arc<rustls::ClientConfig>,
) -> HandshakeKind {
    let stream = connect_with(proxy.https, Some(sni), client.clone())
        .await
        .expect("handshake");
    let kind = stream.get_ref().1.handshake_kind().expect("handshake done");
    let mut http = Client::new(stream).await;
    assert_eq!(http.get(sni, "/").await.status(), 200);
    kind
}

/// With a fresh `client`: the first handshake is full, one `timeout` seconds later resumes,
/// and one `timeout + 1` seconds after that is full again.
async fn session_lasts(
    proxy: &TlsProxy,
    clock: &TestClock,
    client: &Arc<rustls::ClientConfig>,
    timeout: u64,
    what: &str,
) {
    assert_eq!(
        handshake(proxy, "s.example", client).await,
        HandshakeKind::Full,
        "{what}"
    );
    clock.advance(timeout);
    assert_eq!(
        handshake(proxy, "s.example", client).await,
        HandshakeKind::Resumed,
        "{what}"
    );
    clock.advance(timeout + 1);
    assert_eq!(
        handshake(proxy, "s.example", client).await,
        HandshakeKind::Full,
        "{what}"
    );
}

// `ssl-session-timeout`: a session older than the timeout is not resumed (full handshake),
// one at exactly the timeout still is (OpenSSL's rule). The listener's default is
// ingress-nginx's 10m (TLS 1.3 tickets here); the key applies to the session cache (TLS 1.2
// session ids, `ssl-session-tickets: false`) and to TLS 1.2 tickets.
#[tokio::test]
async fn sessions_older_than_ssl_session_timeout_are_not_resumed() {
    let clock = Arc::new(TestClock::default());
    let backend = support::start_echo("b").await;
    let proxy = TlsProxy::start_with_clock(clock.clone()).await;
    let docs = |cm: &[(&str, &str)]| {
        let mut docs = site("s", "s.example", backend, &[]);
        docs.push(configmap(cm));
        docs
    };
    proxy.apply_with(&docs(&[]), &with_configmap());
    let tls13 = client_config(&[b"http/1.1"], &[&rustls::version::TLS13]);
    session_lasts(&proxy, &clock, &tls13, 600, "TLS 1.3, default").await;

    for tickets in ["false", "true"] {
        proxy.apply_with(
            &docs(&[
                ("ssl-session-timeout", "2m"),
                ("ssl-session-tickets", tickets),
            ]),
            &with_configmap(),
        );
        let tls12 = client_config(&[b"http/1.1"], &[&rustls::version::TLS12]);
        session_lasts(&proxy, &clock, &tls12, 120, &format!("tickets {tickets}")).await;
    }
    // A bad value: a condition, and the default 10m.
    proxy.apply_with(&docs(&[("ssl-session-timeout", "soon")]), &with_configmap());
    let published = proxy.shared.load();
    assert!(published
        .translation
        .conditions
        .iter()
        .any(|c| c.message.starts_with("ssl-session-timeout: \"soon\"")));
}

// `ssl-session-ticket-key`: two replicas (two in-process listeners) with the same key resume
// each other's sessions, with TLS 1.3 and TLS 1.2 tickets; a replica with another key, or
// two without the key (random keys), do not.
#[tokio::test]
async fn replicas_sharing_a_ticket_key_resume_each_other_s_sessions() {
    let backend = support::start_echo("b").await;
    let docs = |cm: &[(&str, &str)]| {
        let mut docs = site("s", "s.example", backend, &[]);
        docs.push(configmap(cm));
        docs
    };
    let start = |cm: Vec<String>| async move {
        let proxy = TlsProxy::start().await;
        proxy.apply_with(&cm, &with_configmap());
        proxy
    };
    let a = start(docs(&[("ssl-session-ticket-key", KEY)])).await;
    let b = start(docs(&[("ssl-session-ticket-key", KEY)])).await;
    let other_key = KEY.replace('W', "X");
    let c = start(docs(&[("ssl-session-ticket-key", &other_key)])).await;
    for versions in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = client_config(&[b"http/1.1"], &[versions]);
        assert_eq!(
            handshake(&a, "s.example", &client).await,
            HandshakeKind::Full
        );
        assert_eq!(
            handshake(&b, "s.example", &client).await,
            HandshakeKind::Resumed,
            "{versions:?}"
        );
        assert_eq!(
            handshake(&c, "s.example", &client).await,
            HandshakeKind::Full
        );
    }
    // Without the key: each replica has its own random keys.
    let p = start(docs(&[])).await;
    let q = start(docs(&[])).await;
    let client = client_config(&[b"http/1.1"], &[&rustls::version::TLS13]);
    assert_eq!(
        handshake(&p, "s.example", &client).await,
        HandshakeKind::Full
    );
    assert_eq!(
        handshake(&q, "s.example", &client).await,
        HandshakeKind::Full
    );
    assert_eq!(
        handshake(&q, "s.example", &client).await,
        HandshakeKind::Resumed
    );
}

// A bad key: an `InvalidConfigMapKey` condition that does not echo the value, and random
// keys (resumption on the same replica still works).
#[tokio::test]
async fn a_bad_ticket_key_is_reported_and_random_keys_are_used() {
    let backend = support::start_echo("b").await;
    let proxy = TlsProxy::start().await;
    let mut docs = site("s", "s.example", backend, &[]);
    docs.push(configmap(&[("ssl-session-ticket-key", "c2hvcnQ=")]));
    proxy.apply_with(&docs, &with_configmap());
    let published = proxy.shared.load();
    let condition = published
        .translation
        .conditions
        .iter()
        .find(|c| c.message.starts_with("ssl-session-ticket-key"))
        .expect("a condition");
    assert_eq!(
        condition.reason,
        portico::translate::Reason::InvalidConfigMapKey
    );
    assert!(
        !condition.message.contains("c2hvcnQ"),
        "{}",
        condition.message
    );
    assert!(
        condition.message.contains("5 bytes"),
        "{}",
        condition.message
    );
    drop(published);
    let client = client_config(&[b"http/1.1"], &[&rustls::version::TLS13]);
    assert_eq!(
        handshake(&proxy, "s.example", &client).await,
        HandshakeKind::Full
    );
    assert_eq!(
        handshake(&proxy, "s.example", &client).await,
        HandshakeKind::Resumed
    );
}
