//! In-memory TLS handshakes against the HTTPS listener's rustls configuration, for instruction
//! counts under callgrind (no sockets, no clock in the loop): what a full and a resumed
//! handshake cost with Portico's configuration, against the same configuration built the way
//! the listener was before issue 15's session work (rustls's ticketer and cache unwrapped).
//!
//! ```sh
//! cargo build --release --example tls_handshake
//! valgrind --tool=callgrind target/release/examples/tls_handshake VARIANT KIND N
//! ```
//! VARIANT: `plain` (rustls's own ticketer and cache), `listener` (`tls::server_config`: the
//! timed ticketer and cache), `keyed` (a ConfigMap `ssl-session-ticket-key` policy);
//! KIND: `full` or `resumed` (TLS 1.3, one ticket per handshake); N handshakes. Run with two
//! values of N and divide the difference by theirs.

use std::sync::Arc;

use portico::tls::{PublishedTls, TlsTable};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

#[derive(Debug)]
struct Empty;

impl PublishedTls for Empty {
    fn with_tls(&self, _: &mut dyn FnMut(&TlsTable)) {}
}

fn listener() -> Arc<ServerConfig> {
    let generated = portico::tls::generated_default().expect("certificate");
    let resolver = Arc::new(portico::tls::Resolver::new(Arc::new(Empty), generated));
    portico::tls::server_config(resolver).expect("server config")
}

/// The listener's configuration with rustls's ticketer and cache as they were before.
fn plain() -> Arc<ServerConfig> {
    let mut config = (*listener()).clone();
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Arc::new(config)
}

fn keyed() -> Arc<ServerConfig> {
    let data = [(
        "ssl-session-ticket-key".to_string(),
        "WW9gcPHgfcrw6DNqY5VE2NjM6gtgUhJ4Vn6ZwRGi/7+A9TNFa4Fvfe1cmlPec9bxDoenN70aMBeZBlcrKshnKT4WJxFNLCuTHhfn4loTOEo="
            .to_string(),
    )]
    .into_iter()
    .collect();
    let (policy, problems) = portico::routing::tls_policy::from_configmap(&data);
    assert!(problems.is_empty(), "{problems:?}");
    policy
        .expect("a policy")
        .server_config(&listener())
        .expect("policy config")
}

fn client(resume: bool) -> Arc<ClientConfig> {
    let provider = portico::tls::provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(portico::proxy::NoVerification(provider)))
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

/// Moves every pending TLS record from `from` to `to` and lets `to` process them.
fn transfer(from: &mut rustls::Connection, to: &mut rustls::Connection) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).expect("write");
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read");
        to.process_new_packets().expect("handshake");
    }
}

/// One handshake, and the tickets the server sends after it; whether it resumed.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> bool {
    let name = rustls::pki_types::ServerName::try_from("bench.example").expect("name");
    let mut c =
        rustls::Connection::Client(ClientConnection::new(client.clone(), name).expect("client"));
    let mut s = rustls::Connection::Server(ServerConnection::new(server.clone()).expect("server"));
    while c.is_handshaking() || s.is_handshaking() {
        transfer(&mut c, &mut s);
        transfer(&mut s, &mut c);
    }
    transfer(&mut s, &mut c);
    c.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: tls_handshake plain|listener|keyed full|resumed N";
    let server = match args.get(1).map(String::as_str) {
        Some("plain") => plain(),
        Some("listener") => listener(),
        Some("keyed") => keyed(),
        _ => panic!("{usage}"),
    };
    let resume = match args.get(2).map(String::as_str) {
        Some("full") => false,
        Some("resumed") => true,
        _ => panic!("{usage}"),
    };
    let n: usize = args.get(3).and_then(|n| n.parse().ok()).expect(usage);
    let client = client(resume);
    // The first handshake is full either way (and gives the client its tickets).
    handshake(&client, &server);
    let mut resumed = 0;
    for _ in 0..n {
        resumed += usize::from(handshake(&client, &server));
    }
    assert_eq!(
        resumed,
        if resume { n } else { 0 },
        "every handshake as asked"
    );
    println!("{n} handshakes, {resumed} resumed");
}
