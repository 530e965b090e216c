//! `ssl-passthrough` (issue 15): which hosts the HTTPS listener splices as TCP instead of
//! terminating TLS, decided in the merge from every owned Ingress and the built vhosts.
//!
//! ingress-nginx (`internal/ingress/controller/controller.go`, `createServers` and
//! `getConfiguration`): a host is passthrough when any Ingress with a rule for it sets the
//! annotation; its connections go to the backend of the host's `/` location, and a host
//! without a `/` path is ignored ("Server has no default backend, ignoring SSL
//! Passthrough"); other paths of the host are ignored for the splice. Without
//! `--enable-ssl-passthrough` nothing is spliced (`nginx.go` `setupSSLProxy` only runs with the
//! flag). The SNI is compared with the server name as it is (`pkg/tcpproxy/tcp.go` `Get`), so
//! a wildcard or hostless rule never matches.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::{NGINX, PORTICO};
use super::incremental::Part;
use super::redirects::parse_bool;
use super::{Condition, Reason};
use crate::routing::{Backend, HostMatch, Passthrough, Target, Unavailable, VirtualHost};

/// The annotation name, without prefix.
pub const SSL_PASSTHROUGH: &str = "ssl-passthrough";

/// Annotations that restrict access: they need HTTP, which a spliced connection never shows
/// Portico. An Ingress that sets one is not spliced (fail closed, `ingress-nginx.md` §3):
/// ingress-nginx silently skipped them on the HTTPS port.
const ACCESS_CONTROL: &[&str] = &[
    "auth-type",
    "auth-secret",
    "auth-url",
    "auth-tls-secret",
    "whitelist-source-range",
    "allowlist-source-range",
    "denylist-source-range",
];

/// The annotation's key and value, Portico's spelling first.
fn annotation(ingress: &Ingress) -> Option<(String, &str)> {
    let annotations = ingress.metadata.annotations.as_ref()?;
    [PORTICO, NGINX].iter().find_map(|prefix| {
        let key = format!("{prefix}{SSL_PASSTHROUGH}");
        annotations.get(&key).map(|v| (key, v.as_str()))
    })
}

/// The Ingress's other `portico.dev/` and `nginx.ingress.kubernetes.io/` annotations (full
/// keys, sorted), and the access-control ones among them.
fn others(ingress: &Ingress) -> (Vec<&str>, Vec<&str>) {
    let mut all = Vec::new();
    let mut access = Vec::new();
    for key in ingress
        .metadata
        .annotations
        .iter()
        .flatten()
        .map(|(k, _)| k)
    {
        let Some(name) = key
            .strip_prefix(PORTICO)
            .or_else(|| key.strip_prefix(NGINX))
        else {
            continue;
        };
        if name == SSL_PASSTHROUGH {
            continue;
        }
        all.push(key.as_str());
        if ACCESS_CONTROL.contains(&name) {
            access.push(key.as_str());
        }
    }
    (all, access)
}

/// The passthrough hosts and their backends; problems become conditions on the Ingress.
/// `enabled` is `--enable-ssl-passthrough`. Costs one annotation lookup per Ingress when no
/// Ingress asks for passthrough.
pub(super) fn hosts(
    parts: &[Arc<Part>],
    vhosts: &[Arc<VirtualHost>],
    enabled: bool,
    conditions: &mut Vec<Condition>,
) -> Passthrough {
    // Host → the Ingresses asking for it, oldest first (with the annotation key they used).
    let mut wanted: BTreeMap<&str, Vec<(&Part, String)>> = BTreeMap::new();
    for part in parts.iter().filter(|p| p.serves) {
        let Some((key, value)) = annotation(&part.ingress) else {
            continue;
        };
        let condition = |reason, message| Condition {
            object: part.object.clone(),
            reason,
            message,
        };
        match parse_bool(value) {
            None => {
                conditions.push(condition(
                    Reason::InvalidAnnotation,
                    format!("annotation {key}: {value:?} is not a boolean; TLS is terminated"),
                ));
                continue;
            }
            Some(false) => continue,
            Some(true) => {}
        }
        if !enabled {
            conditions.push(condition(
                Reason::UnsupportedAnnotation,
                format!(
                    "annotation {key}: needs --enable-ssl-passthrough (as in ingress-nginx); \
                     TLS is terminated by Portico"
                ),
            ));
            continue;
        }
        let (others, access) = others(&part.ingress);
        if !access.is_empty() {
            conditions.push(condition(
                Reason::InvalidAnnotation,
                format!(
                    "annotation {key}: not spliced, because {} cannot be enforced on a spliced \
                     connection; TLS is terminated and its paths keep their protection",
                    access.join(", ")
                ),
            ));
            continue;
        }
        if !others.is_empty() {
            conditions.push(condition(
                Reason::UnsupportedAnnotation,
                format!(
                    "annotation {key}: HTTPS connections are spliced as TCP, so {} apply to \
                     plain HTTP only",
                    others.join(", ")
                ),
            ));
        }
        for rule in &part.rules {
            match &rule.host {
                HostMatch::Exact(host) => {
                    let askers = wanted.entry(host.as_str()).or_default();
                    if !askers.iter().any(|(p, _)| std::ptr::eq(*p, part.as_ref())) {
                        askers.push((part.as_ref(), key.clone()));
                    }
                }
                other => conditions.push(condition(
                    Reason::InvalidAnnotation,
                    format!(
                        "annotation {key}: host {other} is not spliced (the ClientHello's SNI \
                         is compared with exact hosts only)"
                    ),
                )),
            }
        }
    }
    if wanted.is_empty() {
        return Passthrough::default();
    }

    let mut pairs = Vec::with_capacity(wanted.len());
    for (host, askers) in wanted {
        let (first, key) = &askers[0];
        let refuse = |conditions: &mut Vec<Condition>, why: String| {
            conditions.push(Condition {
                object: first.object.clone(),
                reason: Reason::InvalidAnnotation,
                message: format!("annotation {key}: host {host} is not spliced: {why}"),
            });
        };
        let vhost = vhosts
            .iter()
            .find(|v| matches!(&v.host, HostMatch::Exact(h) if h == host));
        // The first `/` route in precedence order: the one that answers `/` (spec §3.6).
        let Some(route) = vhost.and_then(|v| v.routes.iter().find(|r| r.path == "/")) else {
            refuse(
                conditions,
                "it has no path / to take the backend from (ingress-nginx ignores such a host too); \
                 TLS is terminated"
                    .to_string(),
            );
            continue;
        };
        // Every Ingress of the host counts: a spliced connection bypasses all their paths, so
        // access control on any of them (not only on `/`) would silently not apply.
        let guarded = parts.iter().filter(|p| p.serves).find_map(|p| {
            let on_host = p
                .rules
                .iter()
                .any(|r| matches!(&r.host, HostMatch::Exact(h) if h == host));
            let (_, access) = others(&p.ingress);
            (on_host && !access.is_empty()).then(|| (p, access.join(", ")))
        });
        if let Some((guarded, access)) = guarded {
            refuse(
                conditions,
                format!(
                    "{} sets {access} on this host, which cannot be enforced on a spliced \
                     connection; TLS is terminated",
                    guarded.object
                ),
            );
            continue;
        }
        match &route.backend.target {
            Target::Unavailable(Unavailable::AccessControlUnsupported)
            | Target::Unavailable(Unavailable::LocationDenied) => {
                refuse(
                    conditions,
                    "its / path is refused (fail closed); TLS is terminated".to_string(),
                );
                continue;
            }
            Target::ExternalName { .. } => refuse(
                conditions,
                "its / backend is an ExternalName Service, which passthrough does not resolve \
                 (ingress-nginx dials the Service's clusterIP, which it has none of); its \
                 connections are closed"
                    .to_string(),
            ),
            _ => {}
        }
        pairs.push((host.to_string(), Arc::<Backend>::clone(&route.backend)));
    }
    Passthrough::new(pairs)
}
