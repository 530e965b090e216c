//! The first step of Portico's own TLS handshake on the HTTPS listener (after the passthrough
//! peek, before the configuration is chosen by SNI in `server::handshake`): the ClientHello is
//! read into rustls's [`Acceptor`], and its bytes are kept on the way so that one thing rustls's
//! `ClientHello` does not tell can be read from them: whether the client offers a TLS 1.3
//! pre-shared key, i.e. tries to resume.
//!
//! It decides how many TLS 1.3 session tickets the handshake sends: two after a full handshake,
//! one when the client resumes (OpenSSL's defaults, what nginx and so ingress-nginx send). A
//! resuming client used one ticket and gets one back; rustls alone would send
//! `send_tls13_tickets` (two) on every handshake, each a sealed ticket, three `getrandom(2)`
//! calls and a record (docs/performance.md, "TLS with resumption").

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::server::{Acceptor, ServerConfig};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::StartHandshake;

use super::passthrough::{self, Reader};

/// TLS 1.3 `pre_shared_key` (RFC 8446 §4.2.11).
const EXTENSION_PRE_SHARED_KEY: u16 = 41;

/// The ClientHello read, ready for [`StartHandshake::into_stream`], and whether it offers a
/// pre-shared key. Errors are those of `tokio_rustls::LazyConfigAcceptor` (which this
/// replaces): `UnexpectedEof` when the client goes away, `InvalidData` for what rustls
/// refuses (after its alert is sent, as there).
pub(super) async fn read(mut stream: TcpStream) -> io::Result<(StartHandshake<TcpStream>, bool)> {
    let mut acceptor = Acceptor::default();
    // What the client sent so far: the ClientHello's records (rarely more).
    let mut seen = Vec::new();
    // Reads through `poll_read`, as tokio-rustls does: a read that leaves room in the buffer
    // clears the socket's readiness, so the handshake's next read waits for epoll instead of
    // trying `recvfrom` first (`try_read` would cost an EAGAIN per connection).
    let hello = std::future::poll_fn(|cx| loop {
        let read = acceptor.read_tls(&mut Noted {
            stream: &mut stream,
            cx,
            seen: &mut seen,
        });
        match read {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Poll::Ready(Ok(Ok(accepted))),
            Ok(None) => {}
            Err(refused) => return Poll::Ready(Ok(Err(refused))),
        }
    })
    .await?;
    match hello {
        Ok(accepted) => {
            let resuming = offers_psk(&seen);
            Ok((StartHandshake::from_parts(accepted, stream), resuming))
        }
        Err((error, mut alert)) => {
            let mut out = Vec::new();
            if alert.write_all(&mut out).is_ok() {
                // Best effort, as rustls's own connection: the error is what counts.
                let _ = stream.write_all(&out).await;
            }
            Err(io::Error::new(io::ErrorKind::InvalidData, error))
        }
    }
}

/// `config` for a handshake whose client offers a pre-shared key: one ticket instead of two.
/// Unchanged when it sends one or none already (sessions off, client certificates). The
/// one-ticket copy is made once per configuration and worker thread, not per handshake: the
/// thread keeps the last one with a weak handle on its source (which also keeps that
/// allocation's address from being reused while the copy is cached).
pub(super) fn for_resumption(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
    type Cached = Option<(std::sync::Weak<ServerConfig>, Arc<ServerConfig>)>;
    thread_local! {
        static LAST: std::cell::RefCell<Cached> = const { std::cell::RefCell::new(None) };
    }
    if config.send_tls13_tickets <= 1 {
        return config;
    }
    LAST.with_borrow_mut(|last| {
        if let Some((source, one)) = last {
            if std::ptr::eq(source.as_ptr(), Arc::as_ptr(&config)) {
                return one.clone();
            }
        }
        let mut one = (*config).clone();
        one.send_tls13_tickets = 1;
        let one = Arc::new(one);
        *last = Some((Arc::downgrade(&config), one.clone()));
        one
    })
}

/// The socket as `std::io::Read` for [`Acceptor::read_tls`] (`WouldBlock` when nothing is
/// there, the waker registered), noting each byte read until a ClientHello's worth
/// ([`passthrough::MAX_PEEK`]).
struct Noted<'a, 'b> {
    stream: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
    seen: &'a mut Vec<u8>,
}

impl io::Read for Noted<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut read = ReadBuf::new(buf);
        match Pin::new(&mut *self.stream).poll_read(self.cx, &mut read) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
        }
        let got = read.filled();
        let room = passthrough::MAX_PEEK.saturating_sub(self.seen.len());
        self.seen.extend_from_slice(&got[..got.len().min(room)]);
        Ok(got.len())
    }
}

/// Whether the ClientHello in `bytes` (its records, as the client sent them) offers a TLS 1.3
/// pre-shared key. `false` for anything malformed or incomplete: rustls decides about those,
/// and the handshake keeps the listener's ticket count.
pub fn offers_psk(bytes: &[u8]) -> bool {
    let Ok(body) = passthrough::hello_body(bytes) else {
        return false;
    };
    let mut r = Reader::new(&body);
    let skipped = r.take(2 + 32).is_some() // legacy_version, random
        && r.vec8().is_some() // legacy_session_id
        && r.vec16().is_some() // cipher_suites
        && r.vec8().is_some(); // legacy_compression_methods
    let Some(extensions) = skipped.then(|| r.vec16()).flatten() else {
        return false;
    };
    let mut extensions = Reader::new(extensions);
    while !extensions.is_empty() {
        let (Some(kind), Some(_)) = (extensions.u16(), extensions.vec16()) else {
            return false;
        };
        if kind == EXTENSION_PRE_SHARED_KEY {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use rustls::{ClientConfig, ClientConnection, Connection, ServerConnection};

    #[derive(Debug)]
    struct One(Arc<CertifiedKey>);

    impl ResolvesServerCert for One {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    fn server() -> Arc<ServerConfig> {
        let key = crate::tls::generated_default().expect("certificate");
        let mut config = ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(One(key)));
        config.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
        Arc::new(config)
    }

    /// A client that keeps its sessions (rustls's default in-memory store).
    fn client() -> Arc<ClientConfig> {
        let provider = crate::tls::provider();
        Arc::new(
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::proxy::NoVerification(provider)))
                .with_no_client_auth(),
        )
    }

    fn new_client(config: &Arc<ClientConfig>) -> ClientConnection {
        let name = ServerName::try_from("portico.invalid").expect("name");
        ClientConnection::new(config.clone(), name).expect("client")
    }

    fn transfer(from: &mut Connection, to: &mut Connection) {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).expect("write");
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).expect("read");
            to.process_new_packets().expect("process");
        }
    }

    /// The first bytes of a new connection of `client`: its ClientHello.
    fn hello(client: &Arc<ClientConfig>) -> Vec<u8> {
        let mut conn = new_client(client);
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).expect("write");
        }
        out
    }

    /// A complete in-memory handshake of `client` with `server`, tickets delivered; whether
    /// it resumed.
    fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> bool {
        let mut c = Connection::from(new_client(client));
        let mut s = Connection::from(ServerConnection::new(server.clone()).expect("server"));
        for _ in 0..10 {
            transfer(&mut c, &mut s);
            transfer(&mut s, &mut c);
        }
        assert!(!c.is_handshaking() && !s.is_handshaking());
        s.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    #[test]
    fn a_resuming_client_hello_offers_a_psk_and_a_first_one_does_not() {
        let (client, server) = (client(), server());
        assert!(!offers_psk(&hello(&client)));
        assert!(!handshake(&client, &server));
        let resuming = hello(&client);
        assert!(offers_psk(&resuming));
        assert!(handshake(&client, &server));
        // Cut anywhere it is incomplete, and says nothing.
        for end in 0..resuming.len() {
            assert!(!offers_psk(&resuming[..end]), "prefix of {end} bytes");
        }
    }

    #[test]
    fn garbage_offers_no_psk_and_never_panics() {
        let resuming = {
            let (client, server) = (client(), server());
            handshake(&client, &server);
            hello(&client)
        };
        assert!(!offers_psk(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!offers_psk(&[]));
        // Every byte flipped in turn: whatever it decides, it decides without panicking.
        for i in 0..resuming.len() {
            let mut bytes = resuming.clone();
            bytes[i] ^= 0xff;
            let _ = offers_psk(&bytes);
        }
    }

    #[test]
    fn resumption_keeps_one_ticket_and_leaves_fewer_alone() {
        let two = server();
        assert_eq!(two.send_tls13_tickets, 2);
        assert_eq!(for_resumption(two.clone()).send_tls13_tickets, 1);
        // Made once per configuration (and thread), not per handshake.
        assert!(Arc::ptr_eq(
            &for_resumption(two.clone()),
            &for_resumption(two.clone())
        ));
        let other = Arc::new((*two).clone());
        let for_other = for_resumption(other.clone());
        assert_eq!(for_other.send_tls13_tickets, 1);
        assert!(!Arc::ptr_eq(&for_other, &for_resumption(two.clone())));
        let mut none = (*two).clone();
        none.send_tls13_tickets = 0;
        let none = Arc::new(none);
        assert!(Arc::ptr_eq(&for_resumption(none.clone()), &none));
    }
}
