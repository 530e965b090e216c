//! SSL passthrough hosts (issue 15): the exact host names whose TLS connections the HTTPS
//! listener splices to a backend without terminating them, each with the backend of its `/`
//! path. Built by `translate::passthrough` (only with `--enable-ssl-passthrough`), read by
//! `proxy::passthrough` once per TLS connection, after the ClientHello's SNI is known.

use std::sync::Arc;

use serde::Serialize;

use super::Backend;

/// Passthrough host → backend, sorted by host (lower case), at most one entry per host.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Passthrough {
    hosts: Vec<(String, Arc<Backend>)>,
}

impl Passthrough {
    /// From `(host, backend)` pairs; hosts are lower-cased, and for a host given twice the
    /// first pair wins.
    pub fn new(pairs: Vec<(String, Arc<Backend>)>) -> Self {
        let mut hosts: Vec<(String, Arc<Backend>)> = pairs
            .into_iter()
            .map(|(h, b)| (h.to_ascii_lowercase(), b))
            .collect();
        // Stable: the first pair of a host stays first, and dedup keeps it.
        hosts.sort_by(|a, b| a.0.cmp(&b.0));
        hosts.dedup_by(|later, first| later.0 == first.0);
        Passthrough { hosts }
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The backend for a ClientHello's SNI, compared as DNS names are (ASCII case
    /// insensitive). ingress-nginx compares the names byte for byte; clients send them in
    /// lower case in practice, and Kubernetes only admits lower-case rule hosts.
    pub fn get(&self, sni: &str) -> Option<&Arc<Backend>> {
        self.hosts
            .binary_search_by(|(host, _)| cmp_ignore_case(host, sni))
            .ok()
            .map(|i| &self.hosts[i].1)
    }

    /// The hosts, sorted (for `/debug` and tests).
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &Arc<Backend>)> {
        self.hosts.iter().map(|(h, b)| (h.as_str(), b))
    }
}

/// Compares lower-case `host` with `name` as if `name` were lower-cased too.
fn cmp_ignore_case(host: &str, name: &str) -> std::cmp::Ordering {
    host.bytes()
        .cmp(name.bytes().map(|b| b.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{BackendRef, PortRef, Target};

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::new(
            BackendRef::Service {
                namespace: "ns".into(),
                name: name.into(),
                port: PortRef::Number(443),
            },
            Target::Endpoints(vec!["127.0.0.1:1".parse().unwrap()]),
        ))
    }

    #[test]
    fn lookup_ignores_ascii_case_and_first_pair_wins() {
        let table = Passthrough::new(vec![
            ("b.example".into(), backend("b")),
            ("A.example".into(), backend("a")),
            ("b.example".into(), backend("b2")),
        ]);
        let name = |sni| match &table.get(sni).map(|b| b.reference.clone()) {
            Some(BackendRef::Service { name, .. }) => Some(name.clone()),
            _ => None,
        };
        assert_eq!(name("a.example").as_deref(), Some("a"));
        assert_eq!(name("A.EXAMPLE").as_deref(), Some("a"));
        assert_eq!(name("b.example").as_deref(), Some("b"));
        assert_eq!(name("c.example"), None);
        assert_eq!(name(""), None);
        assert_eq!(table.hosts().count(), 2);
    }
}
