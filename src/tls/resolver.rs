//! Certificate selection per handshake (spec §5.3): loads the published configuration, picks
//! exact name → one-label wildcard → default. No I/O, no lock: one `ArcSwap` load.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::publish::Shared;

/// The rustls certificate resolver of the HTTPS listener.
#[derive(Debug)]
pub struct Resolver {
    shared: Shared,
    /// Served when the published store has no certificate for the name and no usable
    /// `--default-ssl-certificate`: the certificate generated at start.
    generated: Arc<CertifiedKey>,
}

impl Resolver {
    pub fn new(shared: Shared, generated: Arc<CertifiedKey>) -> Self {
        Resolver { shared, generated }
    }

    /// The certificate for a server name (spec §5.3). `None` (no SNI, an IP literal) gets
    /// the default. Never fails: the handshake must not fail only because no specific
    /// certificate exists.
    pub fn certificate_for(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let published = self.shared.load();
        // spec §5.3, in the one function `explain` also reads.
        published
            .translation
            .tls
            .selection(server_name)
            .certified_key()
            .cloned()
            .unwrap_or_else(|| self.generated.clone())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certificate_for(hello.server_name()))
    }
}
