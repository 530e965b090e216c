//! The ClientHello parser against real ClientHellos (made by rustls' client), split over
//! segments and records, and against garbage: it must decide like this and never panic.

use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::{parse, Hello, MAX_PEEK};

/// The bytes a rustls client sends first for `name` (`None`: an IP address, so no SNI).
fn client_hello(name: Option<&str>) -> Vec<u8> {
    let provider = crate::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::proxy::NoVerification(provider)))
        .with_no_client_auth();
    let server = match name {
        Some(n) => ServerName::try_from(n.to_string()).expect("name"),
        None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write");
    }
    out
}

/// The same handshake bytes re-cut into records of at most `size` bytes of payload.
fn refragment(hello: &[u8], size: usize) -> Vec<u8> {
    let payload = &hello[5..];
    let mut out = Vec::new();
    for chunk in payload.chunks(size) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[test]
fn real_client_hello_names_its_host() {
    let hello = client_hello(Some("Pass.Example"));
    assert_eq!(parse(&hello), Hello::Sni("pass.example".to_string()));
}

#[test]
fn client_hello_without_sni_is_terminated_normally() {
    assert_eq!(parse(&client_hello(None)), Hello::NoSni);
}

#[test]
fn every_prefix_is_incomplete_and_asks_for_more() {
    // A ClientHello split over TCP segments at any point.
    let hello = client_hello(Some("pass.example"));
    for cut in 0..hello.len() {
        match parse(&hello[..cut]) {
            Hello::Incomplete(need) => assert!(need > cut && need <= hello.len(), "cut {cut}"),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn client_hello_split_over_records_is_reassembled() {
    let hello = client_hello(Some("pass.example"));
    for size in [1, 7, 100, 512] {
        let split = refragment(&hello, size);
        assert_eq!(
            parse(&split),
            Hello::Sni("pass.example".to_string()),
            "size {size}"
        );
    }
    // Fragmented into 1-byte records the ClientHello needs more than MAX_PEEK bytes: given
    // to Portico's handshake rather than waited for.
    let tiny = refragment(&hello, 1);
    if tiny.len() > MAX_PEEK {
        assert_eq!(parse(&tiny[..MAX_PEEK]), Hello::Other);
    }
}

#[test]
fn garbage_and_plain_http_are_not_client_hellos() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Hello::Other);
    assert_eq!(parse(&[0; 64]), Hello::Other);
    // A handshake record that is no ClientHello (a ServerHello).
    assert_eq!(parse(&[22, 3, 3, 0, 4, 2, 0, 0, 0]), Hello::Other);
    // An alert record.
    assert_eq!(parse(&[21, 3, 3, 0, 2, 2, 40]), Hello::Other);
}

#[test]
fn oversized_or_empty_records_are_refused_at_once() {
    // Length 0xffff > 2^14: not waited for.
    assert_eq!(parse(&[22, 3, 1, 0xff, 0xff]), Hello::Other);
    assert_eq!(parse(&[22, 3, 1, 0, 0]), Hello::Other);
    // A ClientHello announcing 16 MiB.
    assert_eq!(parse(&[22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]), Hello::Other);
}

#[test]
fn malformed_extensions_are_other() {
    let mut hello = client_hello(Some("pass.example"));
    // Claim a longer extensions block than there is: the message length no longer matches.
    let n = hello.len();
    hello.truncate(n - 3);
    let len = u16::try_from(hello.len() - 5).unwrap();
    hello[3..5].copy_from_slice(&len.to_be_bytes());
    let body_len = u32::try_from(hello.len() - 9).unwrap().to_be_bytes();
    hello[6..9].copy_from_slice(&body_len[1..]);
    assert_eq!(parse(&hello), Hello::Other);
}

#[test]
fn mutated_client_hellos_never_panic() {
    let hello = client_hello(Some("pass.example"));
    let mut rng = fastrand::Rng::with_seed(15);
    for _ in 0..5000 {
        let mut bytes = hello.clone();
        for _ in 0..rng.usize(1..8) {
            let i = rng.usize(..bytes.len());
            bytes[i] = rng.u8(..);
        }
        let cut = rng.usize(..=bytes.len());
        let _ = parse(&bytes[..cut]);
    }
    for _ in 0..2000 {
        let len = rng.usize(..600);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let _ = parse(&bytes);
    }
}
