//! Certificate selection per handshake (spec §5.3): loads the published configuration, picks
//! exact name → one-label wildcard → default. No I/O, no lock: one `ArcSwap` load.
//!
//! The published configuration is reached through [`PublishedTls`], which `publish`
//! implements: `tls` sits below `translate` and `publish` in the flow and must not import them.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsTable;

/// The certificate store of the configuration currently published (one per `Published`, so a
/// handshake and the requests on its connection see the same version).
pub trait PublishedTls: std::fmt::Debug + Send + Sync {
    /// Calls `f` with the published store; one `ArcSwap` load.
    fn with_tls(&self, f: &mut dyn FnMut(&TlsTable));
}

/// The rustls certificate resolver of the HTTPS listener.
#[derive(Debug)]
pub struct Resolver {
    shared: Arc<dyn PublishedTls>,
    /// Served when the published store has no certificate for the name and no usable
    /// `--default-ssl-certificate`: the certificate generated at start.
    generated: Arc<CertifiedKey>,
}

impl Resolver {
    pub fn new(shared: Arc<dyn PublishedTls>, generated: Arc<CertifiedKey>) -> Self {
        Resolver { shared, generated }
    }

    /// The certificate for a server name (spec §5.3). `None` (no SNI, an IP literal) gets
    /// the default. Never fails: the handshake must not fail only because no specific
    /// certificate exists.
    pub fn certificate_for(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let mut chosen = None;
        // spec §5.3, in the one function `explain` also reads.
        self.shared.with_tls(&mut |tls| {
            chosen = tls.selection(server_name).certified_key().cloned();
        });
        chosen.unwrap_or_else(|| self.generated.clone())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certificate_for(hello.server_name()))
    }
}
