//! TLS termination over real sockets (spec §5): manifests → translate → publish, an HTTPS and
//! an HTTP listener on the published configuration, echo backends, and a rustls client that
//! reports which certificate it was served. Certificates are generated per test with rcgen.

mod support;

use std::time::Duration;

use portico::translate::Options;
use support::tls::*;
use support::{start_echo, BOUND};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// shop.example (its own certificate) and *.docs.example (a wildcard certificate), each with
/// an echo backend named after it.
struct Site {
    proxy: TlsProxy,
    shop: TestCert,
    docs: TestCert,
    docs_yaml: Vec<String>,
}

async fn site() -> Site {
    let proxy = TlsProxy::start().await;
    let shop = cert(&["shop.example"]);
    let docs = cert(&["*.docs.example"]);
    let shop_backend = start_echo("shop").await;
    let docs_backend = start_echo("docs").await;
    let docs_yaml = vec![
        app_yaml(
            "shop",
            "shop",
            "shop.example",
            &["shop.example"],
            "shop-tls",
            shop_backend,
            &[],
        ),
        tls_secret("shop", "shop-tls", &shop),
        // hosts empty: bound to the rule host the certificate covers (spec §5.2).
        app_yaml(
            "docs",
            "docs",
            "*.docs.example",
            &[],
            "docs-tls",
            docs_backend,
            &[],
        ),
        tls_secret("docs", "docs-tls", &docs),
    ];
    proxy.apply(&docs_yaml);
    Site {
        proxy,
        shop,
        docs,
        docs_yaml,
    }
}

#[tokio::test]
async fn sni_selects_exact_then_one_label_wildcard_then_default() {
    let s = site().await;
    let p = &s.proxy;
    assert_eq!(p.leaf(Some("shop.example")).await, s.shop.der);
    assert_eq!(
        p.leaf(Some("SHOP.example")).await,
        s.shop.der,
        "SNI is case-insensitive"
    );
    assert_eq!(p.leaf(Some("en.docs.example")).await, s.docs.der);
    // The wildcard stands for exactly one label.
    assert_eq!(p.leaf(Some("a.b.docs.example")).await, p.generated);
    assert_eq!(p.leaf(Some("docs.example")).await, p.generated);
    // No SNI (an IP server name sends none) and unknown names get the default.
    assert_eq!(p.leaf(None).await, p.generated);
    assert_eq!(p.leaf(Some("unknown.example")).await, p.generated);
}

#[tokio::test]
async fn default_ssl_certificate_secret_replaces_the_generated_one() {
    let s = site().await;
    let default = cert(&["default.example"]);
    let mut docs = s.docs_yaml.clone();
    docs.push(tls_secret("ops", "fallback", &default));
    s.proxy.apply_with(
        &docs,
        &Options {
            default_ssl_certificate: Some(("ops".into(), "fallback".into())),
            ..options()
        },
    );
    assert_eq!(s.proxy.leaf(None).await, default.der);
    assert_eq!(s.proxy.leaf(Some("unknown.example")).await, default.der);
    assert_eq!(s.proxy.leaf(Some("shop.example")).await, s.shop.der);
}

#[tokio::test]
async fn certificate_by_sni_route_by_host() {
    let s = site().await;
    let stream = connect(s.proxy.https, Some("shop.example"), &[b"http/1.1"]).await;
    assert_eq!(leaf(&stream), s.shop.der);
    let mut client = Client::new(stream).await;
    // SNI shop.example, Host en.docs.example: the docs backend answers (spec §5.3).
    let response = client.get("en.docs.example", "/x").await;
    assert_eq!(response.status(), 200);
    let body = json(&response);
    assert_eq!(body["name"], "docs");
    assert_eq!(body["host"], "en.docs.example");
    assert_eq!(body["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(body["headers"]["x-forwarded-port"][0], "443");
    assert_eq!(body["proto"], "HTTP/1.1");
}

#[tokio::test]
async fn h2_is_negotiated_by_alpn_and_routed_like_http1() {
    let s = site().await;
    let stream = connect(s.proxy.https, Some("shop.example"), &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut client = Client::new(stream).await;
    for (host, name) in [("shop.example", "shop"), ("fr.docs.example", "docs")] {
        let response = client.get(host, "/p?q=1").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = json(&response);
        assert_eq!(body["name"], name);
        assert_eq!(body["path"], "/p?q=1");
        // Upstream stays HTTP/1.1 (spec §6.1).
        assert_eq!(body["proto"], "HTTP/1.1");
        assert_eq!(body["headers"]["x-forwarded-proto"][0], "https");
    }
    // A client offering only http/1.1 gets it.
    let stream = connect(s.proxy.https, Some("shop.example"), &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn without_alpn_the_first_bytes_tell_http2_from_http1() {
    // ALPN decides when the client offers it (no read-ahead then); a client that offers none
    // is served whichever it speaks, HTTP/2 with prior knowledge (RFC 9113 §3.3) or HTTP/1.1.
    let s = site().await;
    for h2 in [true, false] {
        let stream = connect(s.proxy.https, Some("shop.example"), &[]).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), None);
        let mut client = Client::speaking(stream, h2).await;
        for _ in 0..2 {
            let response = client.get("shop.example", "/p").await;
            assert_eq!(response.status(), 200);
            let version = if h2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            };
            assert_eq!(response.version(), version);
            assert_eq!(json(&response)["name"], "shop");
        }
    }
}

#[tokio::test]
async fn tls12_is_served_and_tls11_is_refused() {
    let s = site().await;
    let config = client_config(&[b"http/1.1"], &[&rustls::version::TLS12]);
    let stream = connect_with(s.proxy.https, Some("shop.example"), config)
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(leaf(&stream), s.shop.der);

    // A ClientHello offering at most TLS 1.1 (rustls cannot send one, so it is written by
    // hand): the server answers with a protocol_version alert (70) and closes.
    let mut tcp = tokio::net::TcpStream::connect(s.proxy.https).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(BOUND, tcp.read_to_end(&mut answer))
        .await
        .expect("server closes")
        .ok();
    assert!(answer.len() >= 7, "an alert record, got {answer:?}");
    assert_eq!(answer[0], 0x15, "alert record");
    assert_eq!(answer[5..7], [2, 70], "fatal protocol_version");
}

/// A TLS 1.1 ClientHello as an old client sends it: no supported_versions extension, ECDHE
/// suites rustls knows, the usual groups and signature algorithms, so the version is the only
/// thing wrong with it.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // session id
                  // ECDHE-ECDSA/RSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-SHA
    body.extend_from_slice(&[0x00, 0x06, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x13]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let extensions: [&[u8]; 3] = [
        // supported_groups: x25519, secp256r1
        &[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17],
        // ec_point_formats: uncompressed
        &[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00],
        // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
        &[
            0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
        ],
    ];
    let ext: Vec<u8> = extensions.concat();
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn invalid_secrets_fall_back_to_the_default_while_a_sibling_keeps_its_certificate() {
    let s = site().await;
    let backend = start_echo("bad").await;
    let other = cert(&["other.example"]);
    let good = cert(&["mismatch.example"]);
    let mut docs = s.docs_yaml.clone();
    let variants: [(&str, &str, Option<String>); 6] = [
        (
            "missing-key",
            "missing-key",
            Some(secret_yaml("bad", "missing-key", Some(&other.crt), None)),
        ),
        (
            "garbage",
            "garbage",
            Some(secret_yaml(
                "bad",
                "garbage",
                Some("not PEM at all"),
                Some("nor this"),
            )),
        ),
        (
            "mismatch",
            "mismatch",
            // The right certificate with another certificate's key.
            Some(secret_yaml(
                "bad",
                "mismatch",
                Some(&good.crt),
                Some(&other.key),
            )),
        ),
        ("missing-secret", "nowhere", None),
        // A Secret that exists, but in another namespace: not followed.
        ("cross-namespace", "shop/shop-tls", None),
        (
            "empty-crt",
            "empty-crt",
            Some(secret_yaml("bad", "empty-crt", Some(""), Some(&other.key))),
        ),
    ];
    for (name, secret, yaml) in &variants {
        let host = format!("{name}.example");
        docs.push(app_yaml("bad", name, &host, &[&host], secret, backend, &[]));
        docs.extend(yaml.clone());
    }
    s.proxy.apply(&docs);
    let conditions = s.proxy.shared.load().translation.conditions.clone();
    for (name, _, _) in &variants {
        let host = format!("{name}.example");
        let stream = connect(s.proxy.https, Some(&host), &[b"http/1.1"]).await;
        assert_eq!(leaf(&stream), s.proxy.generated, "{host}");
        // The host still routes over TLS.
        let response = Client::new(stream).await.get(&host, "/").await;
        assert_eq!(response.status(), 200, "{host}");
        assert!(
            conditions
                .iter()
                .any(|c| c.object.name == *name
                    && format!("{:?}", c.reason).starts_with("TlsSecret")),
            "{name} has a condition: {conditions:?}"
        );
    }
    assert_eq!(s.proxy.leaf(Some("shop.example")).await, s.shop.der);
    assert_eq!(s.proxy.leaf(Some("en.docs.example")).await, s.docs.der);
}

#[tokio::test]
async fn a_missing_secret_created_later_is_picked_up() {
    let proxy = TlsProxy::start().await;
    let backend = start_echo("late").await;
    let late = cert(&["late.example"]);
    let ingress = app_yaml(
        "default",
        "late",
        "late.example",
        &["late.example"],
        "late-tls",
        backend,
        &[],
    );
    proxy.apply(std::slice::from_ref(&ingress));
    assert_eq!(proxy.leaf(Some("late.example")).await, proxy.generated);
    proxy.apply(&[ingress, tls_secret("default", "late-tls", &late)]);
    assert_eq!(proxy.leaf(Some("late.example")).await, late.der);
}

#[tokio::test]
async fn rotation_serves_new_handshakes_and_keeps_open_connections() {
    let s = site().await;
    let stream = connect(s.proxy.https, Some("shop.example"), &[b"http/1.1"]).await;
    assert_eq!(leaf(&stream), s.shop.der);
    let mut old = Client::new(stream).await;
    assert_eq!(old.get("shop.example", "/1").await.status(), 200);

    let rotated = cert(&["shop.example"]);
    let mut docs = s.docs_yaml.clone();
    docs[1] = tls_secret("shop", "shop-tls", &rotated);
    s.proxy.apply(&docs);

    assert_eq!(s.proxy.leaf(Some("shop.example")).await, rotated.der);
    // The keep-alive connection made before the rotation goes on serving requests.
    let response = old.get("shop.example", "/2").await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(&response)["path"], "/2");
}

#[tokio::test]
async fn an_unchanged_secret_swaps_nothing() {
    let s = site().await;
    let before = s.proxy.shared.load_full();
    s.proxy.apply(&s.docs_yaml);
    assert!(std::sync::Arc::ptr_eq(&before, &s.proxy.shared.load_full()));
}

#[tokio::test]
async fn an_expired_certificate_is_served_with_a_condition() {
    let proxy = TlsProxy::start().await;
    let backend = start_echo("old").await;
    let expired = expired_cert(&["old.example"]);
    proxy.apply(&[
        app_yaml(
            "default",
            "old",
            "old.example",
            &["old.example"],
            "old-tls",
            backend,
            &[],
        ),
        tls_secret("default", "old-tls", &expired),
    ]);
    assert_eq!(proxy.leaf(Some("old.example")).await, expired.der);
    let published = proxy.shared.load();
    assert!(published
        .translation
        .conditions
        .iter()
        .any(|c| c.reason == portico::translate::Reason::TlsCertificateExpired));
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let proxy = TlsProxy::start_with_timeout(Duration::from_millis(200)).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.https).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("closed by the server well within 5 s");
    assert!(matches!(n, Ok(0) | Err(_)), "closed: {n:?}");
}

/// Plain-HTTP answers for `host` and `path`.
async fn plain_get(proxy: &TlsProxy, host: &str, path: &str) -> support::RawResponse {
    let mut conn = support::Conn::connect(proxy.http).await;
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await;
    conn.response().await
}

#[tokio::test]
async fn plain_http_to_a_tls_host_is_redirected_with_308() {
    let s = site().await;
    let response = plain_get(&s.proxy, "shop.example:8080", "/a/b?x=1&y=%2F").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some("https://shop.example/a/b?x=1&y=%2F")
    );
    // ACME HTTP-01 challenges are proxied, not redirected.
    let response = plain_get(&s.proxy, "shop.example", "/.well-known/acme-challenge/tok").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["name"], "shop");
    // Wildcard-bound hosts redirect too; the HTTPS listener itself never redirects.
    let response = plain_get(&s.proxy, "en.docs.example", "/").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some("https://en.docs.example/")
    );
    let stream = connect(s.proxy.https, Some("shop.example"), &[b"http/1.1"]).await;
    let response = Client::new(stream).await.get("shop.example", "/").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn redirect_opt_outs_per_ingress_and_global() {
    let proxy = TlsProxy::start().await;
    let a = start_echo("a").await;
    let b = start_echo("b").await;
    let c = start_echo("c").await;
    let cert_a = cert(&["a.example", "b.example", "c.example"]);
    let docs = vec![
        app_yaml("default", "a", "a.example", &["a.example"], "t", a, &[]),
        app_yaml(
            "default",
            "b",
            "b.example",
            &["b.example"],
            "t",
            b,
            &[("portico.dev/ssl-redirect", "false")],
        ),
        app_yaml(
            "default",
            "c",
            "c.example",
            &["c.example"],
            "t",
            c,
            &[("nginx.ingress.kubernetes.io/ssl-redirect", "false")],
        ),
        tls_secret("default", "t", &cert_a),
    ];
    proxy.apply(&docs);
    assert_eq!(plain_get(&proxy, "a.example", "/").await.status, 308);
    assert_eq!(plain_get(&proxy, "b.example", "/").await.status, 200);
    assert_eq!(plain_get(&proxy, "c.example", "/").await.status, 200);
    // A host without TLS is never redirected.
    assert_eq!(plain_get(&proxy, "none.example", "/").await.status, 404);

    proxy.apply_with(
        &docs,
        &Options {
            ssl_redirect: false,
            ..options()
        },
    );
    let response = plain_get(&proxy, "a.example", "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["name"], "a");
}

#[tokio::test]
async fn shutdown_lets_in_flight_tls_requests_finish() {
    let mut proxy = TlsProxy::start().await;
    let gated = support::gated_backend().await;
    let c = cert(&["slow.example"]);
    proxy.apply(&[
        app_yaml(
            "default",
            "slow",
            "slow.example",
            &["slow.example"],
            "slow-tls",
            gated.addr,
            &[],
        ),
        tls_secret("default", "slow-tls", &c),
    ]);
    let stream = connect(proxy.https, Some("slow.example"), &[b"h2"]).await;
    let mut client = Client::new(stream).await;
    let in_flight = tokio::spawn(async move { client.get("slow.example", "/drain").await });
    tokio::time::timeout(BOUND, gated.head_seen)
        .await
        .unwrap()
        .unwrap();
    let _ = proxy.stop_https.take().unwrap().send(());
    let task = proxy.https_task.take().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !task.is_finished(),
        "serve_tls returned with a request in flight"
    );
    gated.release.send("done").unwrap();
    let response = tokio::time::timeout(BOUND, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(&response.body()[..], b"done");
    tokio::time::timeout(BOUND, task)
        .await
        .expect("serve_tls returns after draining")
        .unwrap()
        .unwrap();
}
