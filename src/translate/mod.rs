//! Translate: a pure function from a `Snapshot` to a routing table plus per-object conditions.
//!
//! No I/O, no clock, no randomness; the output does not depend on the order of objects in the
//! snapshot. Problems with an object are conditions in the output, never a failed build.

mod annotations;
mod backends;
mod class;
mod paths;
mod tls;

pub use annotations::{parse_size, parse_timeout};
pub use paths::is_dns1123_subdomain;
pub use tls::{certificate_validity, NGINX_SSL_REDIRECT, SSL_REDIRECT};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use crate::routing::{
    Backend, BackendRef, HostMatch, Origin, Policy, Route, RouteTable, VirtualHost,
};
use crate::source::Snapshot;
use crate::tls::TlsTable;

use backends::Backends;
use class::Classes;
use tls::TlsBuilder;

/// Controller settings that change what translate produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Matched against `IngressClass.spec.controller` (spec §2).
    pub controller_name: String,
    /// Accepted value of the deprecated `kubernetes.io/ingress.class` annotation (spec §2).
    pub annotation_class: String,
    /// Own Ingresses that carry no class information (spec §2 step 3).
    pub watch_without_class: bool,
    /// Controller-configured default Service `namespace/name` (spec §3.7 step 2).
    pub default_backend_service: Option<(String, String)>,
    /// Route to ExternalName Services (spec §4.5); off refuses them all.
    pub external_name: bool,
    /// Use IPv6 endpoints (spec §4.2 step 2).
    pub ipv6: bool,
    /// `--default-ssl-certificate`: the Secret `namespace/name` served when no binding applies
    /// (spec §5.1); without it (or when it is unusable) the generated certificate serves.
    pub default_ssl_certificate: Option<(String, String)>,
    /// Redirect plain HTTP to HTTPS for hosts with TLS unless an Ingress says otherwise
    /// (spec §5.5).
    pub ssl_redirect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_name: "portico.dev/ingress-controller".to_string(),
            annotation_class: "portico".to_string(),
            watch_without_class: false,
            default_backend_service: None,
            external_name: true,
            ipv6: true,
            default_ssl_certificate: None,
            ssl_redirect: true,
        }
    }
}

/// A reference to the object a condition is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Why an object is only partly (or not) programmed. Each becomes a Warning Event (spec §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Reason {
    /// The Ingress has neither rules nor a default backend, or nothing usable in them.
    InvalidIngress,
    /// A rule host is not a valid DNS-1123 subdomain or `*.` wildcard of one (spec §1.1).
    InvalidHost,
    /// A path violates the syntax for its pathType (spec §1.1); the path is skipped.
    InvalidPath,
    /// A backend reference is malformed (neither or both of service/resource, bad port).
    InvalidBackend,
    ServiceNotFound,
    ServicePortNotFound,
    /// The Service port's protocol is not TCP (spec §4.1 step 2).
    ServicePortNotTcp,
    ResourceBackendUnsupported,
    ExternalNameRejected,
    ExternalNameDisabled,
    /// Another route with the same match set outranks this one (spec §3.6).
    PathShadowed,
    /// Another, older rule-less Ingress provides the global default backend (spec §3.7).
    DefaultBackendShadowed,
    /// A `tls[].secretName` names no Secret in the Ingress's namespace (spec §5.1).
    TlsSecretNotFound,
    /// The Secret holds no usable certificate: wrong type, missing key, garbage PEM, key not
    /// matching the leaf (spec §5.1).
    TlsSecretInvalid,
    /// A `secretName` of the form `namespace/name`: not followed (spec §5.1).
    TlsSecretCrossNamespace,
    /// A `tls[].hosts` entry is not a DNS-1123 subdomain or `*.` wildcard of one.
    TlsHostInvalid,
    /// A listed host the certificate does not cover (bound anyway), or `hosts` empty and the
    /// certificate covers no rule host (spec §5.2).
    TlsHostNotCovered,
    /// An older Ingress (or an earlier entry) already bound this name (spec §5.2).
    TlsHostConflict,
    /// An annotation's value is unusable (`ssl-redirect` neither `true` nor `false`, a
    /// timeout that is no duration, ...); the default applies.
    InvalidAnnotation,
    /// The certificate has expired; it is still served (spec §5.1). Set outside translate.
    TlsCertificateExpired,
    /// The certificate is not valid yet; it is still served (spec §5.1). Set outside translate.
    TlsCertificateNotYetValid,
}

/// One problem with one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Condition {
    pub object: ObjectRef,
    pub reason: Reason,
    pub message: String,
}

/// What translate produces.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Translation {
    pub table: RouteTable,
    /// The names bound to certificates (spec §5.2), read by the TLS resolver per handshake.
    pub tls: TlsTable,
    /// Sorted by object, then reason, then message.
    pub conditions: Vec<Condition>,
    /// The Ingresses this controller owns (spec §2), sorted.
    pub owned: Vec<ObjectRef>,
    /// Each owned Ingress's HTTPS-redirect setting and where it came from (spec §5.5), sorted
    /// by Ingress; `explain` reads it to say why a request is or is not redirected.
    pub ssl_redirects: Vec<SslRedirect>,
}

/// Whether plain HTTP to an Ingress's TLS hosts is redirected, and what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SslRedirect {
    pub ingress: ObjectRef,
    pub redirect: bool,
    /// `annotation portico.dev/ssl-redirect`, `annotation nginx.ingress.kubernetes.io/ssl-redirect`
    /// or `--ssl-redirect` (no annotation, or an invalid one).
    pub set_by: String,
}

/// What translate keeps from one call to the next so that the next costs less: today the
/// parsed certificates of TLS Secrets. It never changes the result: translating with any
/// `Cache` gives what a fresh one gives (`tests/properties.rs`), so translate stays a
/// function of the snapshot and options. Owned by whoever publishes; no statics, so parallel
/// tests and benchmarks do not share hidden state.
#[derive(Default)]
pub struct Cache {
    certs: tls::CertMemo,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the memo: it holds private keys.
        f.debug_struct("Cache")
            .field("certs", &self.certs.len())
            .finish()
    }
}

/// Turns a snapshot into a routing table and conditions (spec §2–§4).
pub fn translate(snapshot: &Snapshot, options: &Options, cache: &mut Cache) -> Translation {
    let classes = Classes::new(&snapshot.ingress_classes, options);
    let ingresses = owned_in_age_order(&snapshot.ingresses, &classes, options);
    let mut backends = Backends::new(&snapshot.services, &snapshot.endpoint_slices, options);
    let mut tls = TlsBuilder::new(&snapshot.secrets, std::mem::take(&mut cache.certs));
    let mut conditions = Vec::new();
    let mut vhosts: BTreeMap<HostMatch, PendingHost> = BTreeMap::new();
    // The oldest rule-less Ingress with a defaultBackend (spec §3.7).
    let mut global: Option<(ObjectRef, Arc<Backend>)> = None;
    let mut with_policies: HashMap<(BackendRef, Arc<Policy>), Arc<Backend>> = HashMap::new();

    let mut ssl_redirects = Vec::with_capacity(ingresses.len());
    for ingress in &ingresses {
        let object = ingress_ref(ingress);
        let namespace = object.namespace.as_str();
        let mut condition = |reason: Reason, message: String| {
            conditions.push(Condition {
                object: object.clone(),
                reason,
                message,
            });
        };
        // spec §5.5: whether this Ingress's routes on TLS hosts redirect plain HTTP.
        let (redirect, set_by) = match tls::ssl_redirect(ingress, options) {
            Ok(r) => r,
            Err(message) => {
                condition(Reason::InvalidAnnotation, message);
                (options.ssl_redirect, tls::GLOBAL_SSL_REDIRECT)
            }
        };
        ssl_redirects.push(SslRedirect {
            ingress: object.clone(),
            redirect,
            set_by: set_by.to_string(),
        });
        // Proxy annotations, typed once here; a backend under non-default ones gets its own
        // copy carrying them.
        let (policy, invalid) = annotations::policy(ingress, &snapshot.secrets);
        for message in invalid {
            condition(Reason::InvalidAnnotation, message);
        }
        let policy = (!policy.is_default()).then(|| Arc::new(policy));
        // One Arc per (backend, policy), like one per backend without annotations.
        let mut with_policy = |backend: Arc<Backend>| match &policy {
            Some(p) => with_policies
                .entry((backend.reference.clone(), p.clone()))
                .or_insert_with(|| Arc::new(backend.with_policy(p.clone())))
                .clone(),
            None => backend,
        };
        let spec = ingress.spec.as_ref();
        let rules = spec.and_then(|s| s.rules.as_deref()).unwrap_or_default();
        let default = spec.and_then(|s| s.default_backend.as_ref()).map(|b| {
            let (backend, problem) = backends.resolve(namespace, b);
            if let Some(p) = problem {
                condition(p.reason, format!("defaultBackend: {}", p.message));
            }
            with_policy(backend)
        });

        if rules.is_empty() {
            // spec §1.1: at least one of rules or defaultBackend; spec §3.7: only rule-less
            // Ingresses provide the global default, the oldest one wins.
            match (default, &global) {
                (None, _) => condition(
                    Reason::InvalidIngress,
                    "ingress has neither rules nor a defaultBackend".to_string(),
                ),
                (Some(backend), None) => global = Some((object.clone(), backend)),
                (Some(_), Some((winner, _))) => condition(
                    Reason::DefaultBackendShadowed,
                    format!("defaultBackend is shadowed by older {winner}"),
                ),
            }
            // A rule-less Ingress has no rule hosts, but its listed tls hosts still bind.
            tls.add(ingress, &object, &[], &mut conditions);
            continue;
        }

        let mut usable = false;
        let mut rule_hosts: Vec<HostMatch> = Vec::new();
        for (rule_index, rule) in rules.iter().enumerate() {
            let host = match paths::host_match(rule.host.as_deref()) {
                Ok(host) => host,
                Err(e) => {
                    condition(Reason::InvalidHost, format!("rule {rule_index}: {e}"));
                    continue;
                }
            };
            usable = true;
            if host != HostMatch::Any && !rule_hosts.contains(&host) {
                rule_hosts.push(host.clone());
            }
            // spec §3.8: rules with the same host merge into one vhost, whatever Ingress or
            // namespace they come from. A rule without `http` still creates it (spec §3.7), and
            // so does a rule whose paths are all invalid: the host stays claimed (fallback or
            // 404) instead of leaking to the hostless vhost, since only the paths were wrong.
            let vhost = vhosts.entry(host).or_default();
            // spec §3.7: the per-vhost fallback is the defaultBackend of the oldest
            // contributing Ingress that has one; Ingresses arrive oldest first.
            if vhost.fallback.is_none() {
                vhost.fallback.clone_from(&default);
                if default.is_some() {
                    vhost.fallback_redirect = Some(redirect);
                }
            }
            vhost.first_redirect.get_or_insert(redirect);
            let http_paths = rule.http.as_ref().map(|h| h.paths.as_slice());
            for (path_index, path) in http_paths.unwrap_or_default().iter().enumerate() {
                let (path_type, normalised) =
                    match paths::rule_path(path.path.as_deref(), &path.path_type) {
                        Ok(p) => p,
                        Err(e) => {
                            condition(
                                Reason::InvalidPath,
                                format!("rule {rule_index} path {path_index}: {e}"),
                            );
                            continue;
                        }
                    };
                let (backend, problem) = backends.resolve(namespace, &path.backend);
                match problem {
                    // A malformed reference is about this path; the others are about the
                    // Service, and read the same from every path that uses it.
                    Some(p) if p.reason == Reason::InvalidBackend => condition(
                        p.reason,
                        format!("rule {rule_index} path {path_index}: {}", p.message),
                    ),
                    Some(p) => condition(p.reason, p.message),
                    None => {}
                }
                let backend = with_policy(backend);
                // Pushed in age order, then rule index, then path index (spec §3.6 step 4).
                vhost.routes.push(Route {
                    path: normalised,
                    path_type,
                    backend,
                    origin: Origin {
                        namespace: object.namespace.clone(),
                        name: object.name.clone(),
                        rule: rule_index,
                        path: path_index,
                    },
                    ssl_redirect: redirect,
                });
            }
        }
        if !usable {
            condition(
                Reason::InvalidIngress,
                "no rule has a valid host; nothing is routed".to_string(),
            );
        }
        tls.add(ingress, &object, &rule_hosts, &mut conditions);
    }
    let (tls, certs) = tls.finish(options, &mut conditions);
    cache.certs = certs;

    let mut built = Vec::with_capacity(vhosts.len());
    for (host, mut pending) in vhosts {
        // spec §5.5: only vhosts whose host is bound to a certificate redirect; each route
        // keeps its own Ingress's choice (set above), the misses follow the Ingress of the
        // fallback, else the oldest contributing one.
        let has_tls = tls.has_tls(&host);
        for route in &mut pending.routes {
            route.ssl_redirect &= has_tls;
        }
        let miss_redirect = pending
            .fallback_redirect
            .or(pending.first_redirect)
            .unwrap_or(false);
        let mut vhost = VirtualHost::new(host, pending.routes, pending.fallback);
        vhost.ssl_redirect = has_tls && miss_redirect;
        // spec §3.6: identical match sets are decided by precedence; the losers are reported.
        for (loser, winner) in vhost.shadowed() {
            conditions.push(Condition {
                object: ObjectRef {
                    kind: "Ingress".to_string(),
                    namespace: loser.origin.namespace.clone(),
                    name: loser.origin.name.clone(),
                },
                reason: Reason::PathShadowed,
                message: format!(
                    "{:?} {} on host {} is shadowed by {:?} {} of Ingress {}/{}",
                    loser.path_type,
                    loser.path,
                    vhost.host,
                    winner.path_type,
                    winner.path,
                    winner.origin.namespace,
                    winner.origin.name
                ),
            });
        }
        built.push(vhost);
    }

    // spec §3.7 step 2: the controller-configured default Service.
    let default_backend = global.map(|(_, b)| b).or_else(|| {
        options
            .default_backend_service
            .as_ref()
            .map(|(ns, name)| backends.default_service(ns, name))
    });

    conditions.sort();
    conditions.dedup();
    let mut owned: Vec<ObjectRef> = ingresses.iter().map(|i| ingress_ref(i)).collect();
    owned.sort();
    ssl_redirects.sort_by(|a, b| a.ingress.cmp(&b.ingress));
    Translation {
        table: RouteTable::new(built, default_backend),
        tls,
        conditions,
        owned,
        ssl_redirects,
    }
}

/// Routes and fallback collected for one rule host before the vhost is built.
#[derive(Default)]
struct PendingHost {
    routes: Vec<Route>,
    fallback: Option<Arc<Backend>>,
    /// spec §5.5: the redirect choice of the Ingress that provides the fallback, and of the
    /// oldest contributing Ingress.
    fallback_redirect: Option<bool>,
    first_redirect: Option<bool>,
}

fn ingress_ref(ingress: &Ingress) -> ObjectRef {
    ObjectRef {
        kind: "Ingress".to_string(),
        namespace: ingress.metadata.namespace.clone().unwrap_or_default(),
        name: ingress.metadata.name.clone().unwrap_or_default(),
    }
}

/// Age-order key (spec §0): creation time, then `namespace/name` ascending.
///
/// Portico decision: a missing `creationTimestamp` (manifests read from files usually have
/// none) sorts as the oldest, before any timestamp; `Option`'s order gives exactly that.
fn age_key(ingress: &Ingress) -> (Option<&Time>, &str, &str) {
    (
        ingress.metadata.creation_timestamp.as_ref(),
        ingress.metadata.namespace.as_deref().unwrap_or_default(),
        ingress.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The owned Ingresses (spec §2), one per `namespace/name`, oldest first.
fn owned_in_age_order<'a>(
    ingresses: &'a [std::sync::Arc<Ingress>],
    classes: &Classes,
    options: &Options,
) -> Vec<&'a Ingress> {
    let mut owned: Vec<&Ingress> = ingresses
        .iter()
        .map(|i| &**i)
        .filter(|i| i.metadata.name.as_deref().is_some_and(|n| !n.is_empty()))
        .filter(|i| classes.owns(i, options))
        .collect();
    // A source should never deliver one name twice; if it does, keep one chosen by content so
    // the result does not depend on input order.
    owned.sort_by(|a, b| {
        let key = |i: &'a Ingress| (i.metadata.namespace.as_deref(), i.metadata.name.as_deref());
        key(a)
            .cmp(&key(b))
            .then_with(|| backends::canonical(a).cmp(&backends::canonical(b)))
    });
    owned.dedup_by(|later, first| {
        later.metadata.namespace == first.metadata.namespace
            && later.metadata.name == first.metadata.name
    });
    owned.sort_by(|a, b| age_key(a).cmp(&age_key(b)));
    owned
}
