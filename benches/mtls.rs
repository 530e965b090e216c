//! Cost of a client-certificate handshake (issue 15, `auth-tls-*`) next to a plain TLS
//! handshake, in memory (no sockets): rustls server and client connections exchanging their
//! bytes until both are done. The mTLS side includes the verification of the client's chain
//! that the proxy does once per connection (`PeerCert::new`). `cargo bench --bench mtls`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use portico::routing::client_auth::{ClientAuth, ClientAuthSpec, PeerCert, VerifyClient};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

struct Setup {
    plain: Arc<ServerConfig>,
    mtls: Arc<ServerConfig>,
    auth: Arc<ClientAuth>,
    anonymous: Arc<ClientConfig>,
    with_cert: Arc<ClientConfig>,
}

fn setup() -> Setup {
    let provider = portico::tls::provider();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["bench.example".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    let pem = ca.pem();
    let auth = Arc::new(
        ClientAuth::new(ClientAuthSpec {
            secret: "bench/ca".into(),
            ca_pem: pem.as_bytes(),
            crl_pem: None,
            verify: VerifyClient::On,
            depth: 1,
            error_page: None,
            pass_certificate: true,
            match_cn: None,
        })
        .unwrap(),
    );
    let key =
        |k: &rcgen::KeyPair| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.serialize_der()));
    let chain = vec![server.der().clone()];
    let builder = || {
        ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap()
    };
    let plain = builder()
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key(&server_key))
        .unwrap();
    let mtls = builder()
        .with_client_cert_verifier(auth.handshake_verifier())
        .with_single_cert(chain, key(&server_key))
        .unwrap();
    let client_builder = || {
        ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(portico::proxy::NoVerification(
                provider.clone(),
            )))
    };
    let anonymous = client_builder().with_no_client_auth();
    let with_cert = client_builder()
        .with_client_auth_cert(vec![client.der().clone()], key(&client_key))
        .unwrap();
    Setup {
        plain: Arc::new(plain),
        mtls: Arc::new(mtls),
        auth,
        anonymous: Arc::new(anonymous),
        with_cert: Arc::new(with_cert),
    }
}

/// One full handshake in memory; returns the server side.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> ServerConnection {
    let name = ServerName::try_from("bench.example").unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut buf = Vec::with_capacity(16 * 1024);
    for _ in 0..16 {
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().unwrap();
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().unwrap();
    }
    assert!(!s.is_handshaking(), "handshake finished");
    s
}

fn bench(c: &mut Criterion) {
    let setup = setup();
    let mut group = c.benchmark_group("handshake");
    group.bench_function("plain_tls", |b| {
        b.iter(|| black_box(handshake(&setup.plain, &setup.anonymous)))
    });
    group.bench_function("mtls_with_verification", |b| {
        b.iter(|| {
            let s = handshake(&setup.mtls, &setup.with_cert);
            let chain: Vec<CertificateDer<'static>> = s.peer_certificates().unwrap().to_vec();
            black_box(PeerCert::new(setup.auth.clone(), &chain))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
