//! Translate: a pure function from a `Snapshot` to a routing table plus per-object conditions.
//!
//! No I/O, no clock, no randomness; the output does not depend on the order of objects in the
//! snapshot. Problems with an object are conditions in the output, never a failed build.

mod affinity;
mod annotations;
mod backends;
mod basic_auth;
mod canary;
mod class;
pub mod client_auth;
pub mod configmap;
mod cors;
pub mod custom_headers;
pub mod error_pages;
pub mod ext_auth;
mod incremental;
pub mod limits;
mod mirror;
mod passthrough;
mod paths;
mod proxy_ssl;
mod proxying;
mod redirects;
mod rewrite;
mod ssl_ciphers;
mod tls;

pub use annotations::{parse_size, parse_timeout};
pub use passthrough::SSL_PASSTHROUGH;
pub use paths::is_dns1123_subdomain;
pub use tls::{certificate_validity, NGINX_SSL_REDIRECT, SSL_REDIRECT};
// `portico migrate` judges names the way translate does (and its catalogue is tested against them).
pub(crate) use annotations::{ACCESS_CONTROL, IMPLEMENTED};

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use crate::routing::{Backend, Global, HostMatch, RouteTable};
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
    /// The controller ConfigMap's keys for error pages (`custom-http-errors`).
    pub error_pages: error_pages::Settings,
    /// The controller ConfigMap's gate for `custom-headers` (`global-allowed-response-headers`).
    pub custom_headers: custom_headers::Settings,
    /// The controller ConfigMap's limit status codes and default source ranges (issue 14).
    pub limits: limits::Settings,
    /// `--configmap`: the controller ConfigMap `namespace/name` (`ingress-nginx.md` §4).
    pub configmap: Option<(String, String)>,
    /// The controller ConfigMap's `force-ssl-redirect`: the default of the annotation
    /// (redirect even without TLS). `false`, as ingress-nginx, unless the
    /// controller ConfigMap (`--configmap`) sets it.
    pub force_ssl_redirect: bool,
    /// `--enable-ssl-passthrough`: hosts with `ssl-passthrough` are spliced, not terminated.
    pub ssl_passthrough: bool,
    /// The controller ConfigMap's `global-auth-*` and `no-auth-locations` (issue 15).
    pub ext_auth: ext_auth::Settings,
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
            error_pages: error_pages::Settings::default(),
            custom_headers: custom_headers::Settings::default(),
            limits: limits::Settings::default(),
            configmap: None,
            force_ssl_redirect: false,
            ssl_passthrough: false,
            ext_auth: ext_auth::Settings::default(),
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
    /// An annotation switches on access control Portico does not implement yet
    /// (authentication, client certificates, source ranges): every path of the Ingress
    /// answers 503 instead of serving unprotected (`ingress-nginx.md` §3, fail closed).
    AccessControlUnsupported,
    /// A user of a basic-auth Secret whose line or hash Portico cannot use (DES crypt, a cost
    /// over the limit, garbage), or a Secret without any usable user: that user (everyone)
    /// gets 401; the other users still log in (issue 15).
    BasicAuthUserUnusable,
    /// `--configmap` names a ConfigMap that does not exist: ingress-nginx's defaults apply.
    ConfigMapNotFound,
    /// A controller ConfigMap key's value is unusable; the default applies.
    InvalidConfigMapKey,
    /// Controller ConfigMap keys Portico does not implement (listed in one condition), or a
    /// value it cannot honour (`allow-snippet-annotations: "true"`); ignored.
    UnsupportedConfigMapKey,
    /// A `*-snippet` annotation: nginx configuration text, never interpreted; dropped.
    SnippetDropped,
    /// An ingress-nginx (or `portico.dev/`) annotation Portico does not implement; ignored.
    UnsupportedAnnotation,
    /// A canary Ingress path (or defaultBackend) with no main Ingress to attach to, or whose
    /// main backend already has an older canary: that part of the canary takes no traffic.
    CanaryWithoutMain,
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
    /// The Ingresses this controller owns (spec §2), sorted. Shared from one translation to
    /// the next while the set of names stays the same (issue 11: a change to one Ingress
    /// copies no list of every Ingress).
    pub owned: Arc<[ObjectRef]>,
    /// Each owned Ingress's HTTPS-redirect setting and where it came from (spec §5.5), sorted
    /// by Ingress; `explain` reads it to say why a request is or is not redirected. Shared
    /// like `owned`.
    pub ssl_redirects: Arc<[SslRedirect]>,
    /// The controller ConfigMap's settings (`--configmap`), read by the proxy per request or
    /// connection from the same `Published` as the table.
    #[serde(skip)]
    pub global: Arc<Global>,
    /// `ssl-passthrough` hosts (with `--enable-ssl-passthrough`), read by the HTTPS listener
    /// once per connection.
    #[serde(skip_serializing_if = "crate::routing::Passthrough::is_empty")]
    pub passthrough: crate::routing::Passthrough,
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

/// What translate keeps from one call to the next so that the next costs less: the parsed
/// certificates of TLS Secrets, and the incremental state (each Ingress's contribution, the
/// resolved backends, the built vhosts, and copies of the objects they came from). It never
/// changes the result: translating with any `Cache` gives what a fresh one gives
/// (`tests/incremental.rs`), so translate stays a function of the snapshot and options. Owned
/// by whoever publishes; no statics, so parallel tests and benchmarks share no hidden state.
#[derive(Default)]
pub struct Cache {
    certs: tls::CertMemo,
    state: incremental::State,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the memo: it holds private keys.
        f.debug_struct("Cache")
            .field("certs", &self.certs.len())
            .field("ingresses", &self.state.parts.len())
            .field("vhosts", &self.state.vhosts.len())
            .finish()
    }
}

/// Turns a snapshot into a routing table and conditions (spec §2–§4).
///
/// Incremental (issue 11): only the Ingresses whose object, Services or Secrets changed are
/// derived again, those whose EndpointSlices changed only get their backends looked up again,
/// and only the vhosts with a changed contribution are rebuilt; the merge itself walks every
/// owned Ingress in age order, as spec §3.6 and §3.8 define it.
pub fn translate(snapshot: &Snapshot, options: &Options, cache: &mut Cache) -> Translation {
    let (mut settings, mut conditions) = configmap::parse(snapshot, options);
    let mut effective = configmap::effective_options(options, &settings);
    // `custom-http-errors` (error_pages.rs; `configmap::from_data` reported its problems): a
    // key that is set replaces the options' list.
    let (pages, _) = error_pages::from_configmap(settings.data());
    if settings
        .data()
        .contains_key(error_pages::CONFIGMAP_CUSTOM_HTTP_ERRORS)
        && pages != options.error_pages
    {
        let mut with_pages = effective.unwrap_or_else(|| options.clone());
        with_pages.error_pages = pages;
        effective = Some(with_pages);
    }
    // `global-allowed-response-headers` (custom_headers.rs) likewise.
    let (gate, _) = custom_headers::from_configmap(settings.data());
    if settings
        .data()
        .contains_key(custom_headers::ALLOWED_RESPONSE_HEADERS)
        && gate != options.custom_headers
    {
        let mut with_gate = effective.unwrap_or_else(|| options.clone());
        with_gate.custom_headers = gate;
        effective = Some(with_gate);
    }
    // Limit status codes and default source ranges (limits.rs) likewise.
    let (limit_settings, _) = limits::from_configmap(settings.data());
    if limit_settings != options.limits {
        let mut with_limits = effective.unwrap_or_else(|| options.clone());
        with_limits.limits = limit_settings;
        effective = Some(with_limits);
    }
    // `global-auth-*`, `no-auth-locations` (ext_auth.rs) likewise.
    let (auth, _) = ext_auth::from_configmap(settings.data());
    if auth != options.ext_auth {
        let mut with_auth = effective.unwrap_or_else(|| options.clone());
        with_auth.ext_auth = auth;
        effective = Some(with_auth);
    }
    // `add-headers`, `proxy-set-headers`: the ConfigMaps they name, read now.
    let (add, set, problems) =
        custom_headers::global_headers(settings.data(), &snapshot.config_maps);
    settings.add_headers = add;
    settings.proxy_set_headers = set;
    if let Some((namespace, name)) = &options.configmap {
        conditions.extend(problems.into_iter().map(|message| Condition {
            object: ObjectRef {
                kind: "ConfigMap".to_string(),
                namespace: namespace.clone(),
                name: name.clone(),
            },
            reason: Reason::InvalidConfigMapKey,
            message,
        }));
    }
    let options = effective.as_ref().unwrap_or(options);
    let state = &mut cache.state;
    let changes = state.changes(
        options,
        &snapshot.services,
        &snapshot.endpoint_slices,
        &snapshot.secrets,
        &snapshot.config_maps,
    );
    let classes = Classes::new(&snapshot.ingress_classes, options);
    let owned = state.owned(
        &snapshot.ingresses,
        &snapshot.ingress_classes,
        &classes,
        options,
    );
    let ingresses: Vec<&Arc<Ingress>> = owned.entries.iter().map(|(i, _)| i).collect();
    // issue 14: `load-balance`, `upstream-hash-by*`, `affinity` are the Service's.
    let scope = affinity::Scope::new(&ingresses);
    // The Services and slices by name, as `changes` keeps them: borrowed by the resolver
    // while the state is updated, then put back.
    let (services, slices) = state.take_indexes();
    let mut backends = Backends::new(
        &services,
        &slices,
        options,
        std::mem::take(&mut state.backends),
    );
    let mut tls = TlsBuilder::new(&snapshot.secrets, std::mem::take(&mut cache.certs));

    // Each owned Ingress's contribution, oldest first: reused, rebound or derived again.
    let mut parts: Vec<Arc<incremental::Part>> = Vec::with_capacity(ingresses.len());
    // The Parts that are not the previous translate's Part of the same Ingress object.
    let mut replaced: Vec<Arc<incremental::Part>> = Vec::new();
    for (ingress, previous) in &owned.entries {
        let view = scope.view(ingress);
        let found = match previous {
            Some(part) => incremental::reuse_part(part, &changes),
            None => {
                let key = (
                    ingress.metadata.namespace.clone().unwrap_or_default(),
                    ingress.metadata.name.clone().unwrap_or_default(),
                );
                incremental::reuse(&state.parts, &key, ingress, &changes)
            }
        };
        let part = match found {
            Some(incremental::Reuse::Same(part)) if part.scoped == view => {
                if Arc::ptr_eq(&part.ingress, ingress) {
                    part
                } else {
                    // An equal object: the Part holds the snapshot's own (see `State::owned`).
                    Arc::new(incremental::Part {
                        ingress: Arc::clone(ingress),
                        ..incremental::Part::clone(&part)
                    })
                }
            }
            Some(incremental::Reuse::Rebind(part)) if part.scoped.is_empty() && view.is_empty() => {
                let rev = state.next_rev();
                let mut rebound = incremental::rebind(
                    &part,
                    rev,
                    &mut backends,
                    &mut state.with_policies,
                    &mut state.blocked,
                );
                // The snapshot's own object, as for `Same` (an equal object re-read from a
                // file): `State::owned` finds the Parts of changed Ingresses by this pointer.
                // Keeping the older one made every later change of this Ingress look like a
                // name held twice, which selects every Ingress again (issue 11: an endpoint
                // edit in a manifest file cost 3× a path edit at 20,000 Ingresses).
                rebound.ingress = Arc::clone(ingress);
                Arc::new(rebound)
            }
            _ => {
                let rev = state.next_rev();
                Arc::new(incremental::derive(
                    ingress,
                    rev,
                    options,
                    snapshot,
                    (&scope, view),
                    &mut backends,
                    &mut state.with_policies,
                    &mut state.blocked,
                ))
            }
        };
        if previous.as_ref().is_none_or(|p| !Arc::ptr_eq(p, &part)) {
            replaced.push(part.clone());
        }
        parts.push(part);
    }
    let key = |part: &incremental::Part| (part.object.namespace.clone(), part.object.name.clone());
    // Whether `owned` and `ssl_redirects` differ from the previous translation's.
    let mut names_changed = false;
    let mut redirects_changed = false;
    match &owned.removed {
        // Selected again: the Parts by name are exactly these.
        None => {
            names_changed = true;
            state.parts = parts.iter().map(|p| (key(p), p.clone())).collect();
            state.by_name.clone_from(&parts);
            state.by_name.sort_by(|a, b| a.object.cmp(&b.object));
        }
        // The new Parts replace those of their names, then the Parts of Ingresses that went
        // away (and whose names nobody took) leave.
        Some(removed) => {
            let at = |by_name: &[Arc<incremental::Part>], part: &incremental::Part| {
                by_name.binary_search_by(|p| p.object.cmp(&part.object))
            };
            for part in &replaced {
                state.parts.insert(key(part), part.clone());
                match at(&state.by_name, part) {
                    Ok(i) => {
                        let before = ssl_redirect(&state.by_name[i], options, &settings);
                        redirects_changed |= before != ssl_redirect(part, options, &settings);
                        state.by_name[i] = part.clone();
                    }
                    Err(i) => {
                        names_changed = true;
                        state.by_name.insert(i, part.clone());
                    }
                }
            }
            for part in removed {
                let k = key(part);
                if state.parts.get(&k).is_some_and(|p| Arc::ptr_eq(p, part)) {
                    state.parts.remove(&k);
                }
                if let Ok(i) = at(&state.by_name, part) {
                    if Arc::ptr_eq(&state.by_name[i], part) {
                        names_changed = true;
                        state.by_name.remove(i);
                    }
                }
            }
        }
    }
    drop(replaced);
    state.order.clone_from(&parts);

    // The merge, oldest Ingress first (spec §0): the global default (spec §3.7), the TLS
    // bindings (spec §5.2) and which rules contribute to which vhost (spec §3.8).
    let mut global: Option<(&ObjectRef, Arc<Backend>)> = None;
    let mut contributors =
        incremental::Contributors::with_capacity_and_hasher(state.hosts.len(), Default::default());
    for part in &parts {
        conditions.extend_from_slice(&part.conditions);
        if part.rule_less {
            // spec §3.7: only rule-less Ingresses provide the global default, the oldest wins.
            match (&part.default, &global) {
                (None, _) => {}
                (Some(slot), None) => global = Some((&part.object, slot.backend.clone())),
                (Some(_), Some((winner, _))) => conditions.push(Condition {
                    object: part.object.clone(),
                    reason: Reason::DefaultBackendShadowed,
                    message: format!("defaultBackend is shadowed by older {winner}"),
                }),
            }
        }
        for rule in &part.rules {
            match contributors.entry(&rule.host) {
                std::collections::hash_map::Entry::Occupied(mut rules) => {
                    rules.get_mut().push((part.as_ref(), rule))
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(incremental::Rules::One([(part.as_ref(), rule)]));
                }
            }
        }
        // A rule-less Ingress has no rule hosts, but its listed tls hosts still bind. A canary
        // Ingress binds nothing: it only attaches to its main Ingress (`canary.rs`).
        if !part.serves {
            continue;
        }
        tls.add(
            &part.ingress,
            &part.object,
            &part.rule_hosts,
            &mut conditions,
        );
    }
    let (tls, certs) = tls.finish(options, &mut conditions);
    cache.certs = certs;

    // The hosts in order: the previous translate's, less those that went, with new ones merged
    // in (no sort of every host per change).
    let order = state.host_order(&contributors);
    // `server-alias` and `from-to-www-redirect` need the host list; nothing else does.
    let contributors_hosts: Vec<HostMatch> =
        if parts.iter().any(|p| !p.aliases.is_empty() || p.from_to_www) {
            order.iter().map(|(h, _)| (*h).clone()).collect()
        } else {
            Vec::new()
        };
    // issue 14: each canary Ingress attaches to the main backends of its hosts and paths.
    let canaries = if parts.iter().any(|p| p.canary.is_some()) {
        canary::attach(
            &parts,
            &contributors,
            global.as_ref().map(|(_, b)| b),
            &mut conditions,
        )
    } else {
        canary::Attachments::default()
    };
    // Each vhost, rebuilt only when its contributions or its TLS binding changed.
    let mut built = Vec::with_capacity(order.len());
    for (host, rules) in &order {
        let host: &HostMatch = host;
        let has_tls = tls.has_tls(host);
        let relevant = canaries.relevant(rules);
        let reusable = state.vhosts.get(host).is_some_and(|b| {
            b.has_tls == has_tls
                && b.canaries == relevant
                && b.revs.len() == rules.len()
                && b.revs
                    .iter()
                    .zip(rules.iter())
                    .all(|(rev, (part, _))| *rev == part.rev)
        });
        if !reusable {
            let entry = incremental::build_vhost(
                host,
                rules,
                has_tls,
                options.force_ssl_redirect,
                (&canaries, relevant),
            );
            state.vhosts.insert(host.clone(), entry);
        }
        let entry = &state.vhosts[host];
        conditions.extend_from_slice(&entry.shadowed);
        built.push(entry.vhost.clone());
    }
    if state.vhosts.len() > order.len() {
        state
            .vhosts
            .retain(|host, _| contributors.contains_key(host));
    }

    let passthrough = passthrough::hosts(&parts, &built, options.ssl_passthrough, &mut conditions);
    let aliases = server_aliases(&contributors_hosts, &parts, &mut conditions);
    let www = www_redirects(&contributors_hosts, &parts);

    // spec §3.7 step 2: the controller-configured default Service.
    let default_backend = global.map(|(_, b)| canaries.apply(&b)).or_else(|| {
        options
            .default_backend_service
            .as_ref()
            .map(|(ns, name)| backends.default_service(ns, name))
            .map(|b| {
                // The ConfigMap's `custom-http-errors` covers it too (nginx's `http` level).
                let codes = &options.error_pages.custom_http_errors;
                match error_pages::global_default(&b, codes) {
                    Some(pages) => Arc::new(b.with_policy(Arc::new(crate::routing::Policy {
                        error_pages: Some(Arc::new(pages)),
                        ..crate::routing::Policy::clone(&b.policy)
                    }))),
                    None => b,
                }
            })
    });
    state.backends = backends.into_cache();
    state.put_indexes(services, slices);
    state.forget_unused();

    conditions.sort();
    conditions.dedup();
    // Both sorted by Ingress: the Parts in name order, kept from one translate to the next;
    // the lists themselves are the previous translation's while nothing in them changed.
    let global_redirect = settings.ssl_redirect.is_some();
    let owned = match &state.owned {
        Some(owned) if !names_changed => owned.clone(),
        _ => state.by_name.iter().map(|p| p.object.clone()).collect(),
    };
    let ssl_redirects = match &state.ssl_redirects {
        Some((global, list))
            if !names_changed && !redirects_changed && *global == global_redirect =>
        {
            list.clone()
        }
        _ => state
            .by_name
            .iter()
            .map(|p| ssl_redirect(p, options, &settings))
            .collect(),
    };
    state.owned = Some(Arc::clone(&owned));
    state.ssl_redirects = Some((global_redirect, Arc::clone(&ssl_redirects)));
    // The host index is the previous table's while the hosts are the same (checked).
    let table = RouteTable::from_shared_with(built, default_backend, state.host_index.take());
    state.host_index = Some(table.host_index());
    Translation {
        table: table.with_aliases(aliases).with_www_redirects(www),
        tls,
        conditions,
        owned,
        ssl_redirects,
        global: Arc::new(settings),
        passthrough,
    }
}

/// What decides an Ingress's HTTPS redirect, naming the controller ConfigMap's key when it is
/// what replaced `--ssl-redirect`.
fn ssl_redirect(part: &incremental::Part, options: &Options, settings: &Global) -> SslRedirect {
    // `force-ssl-redirect`: the annotation, else the ConfigMap key (its default); an Ingress
    // saying "false" opts out of the global one.
    let (redirect, set_by) = if part.force_ssl && options.force_ssl_redirect {
        (true, "ConfigMap force-ssl-redirect")
    } else if part.force_ssl {
        (true, "annotation force-ssl-redirect")
    } else if part.set_by == tls::GLOBAL_SSL_REDIRECT && settings.ssl_redirect.is_some() {
        (part.redirect, "ConfigMap ssl-redirect")
    } else {
        (part.redirect, part.set_by)
    };
    SslRedirect {
        ingress: part.object.clone(),
        redirect,
        set_by: set_by.to_string(),
    }
}

/// `server-alias` (ingress-nginx `controller.go` `createServers`): for each rule host, the
/// aliases of the oldest Ingress with that host that sets any (later ones are ignored, as
/// ingress-nginx logs "Aliases already configured for server"); an alias that is a rule host
/// itself is dropped (the real host wins); an alias two hosts claim goes to the first host in
/// host order (ingress-nginx sorts its servers by name and nginx keeps the first
/// `server_name`). Recomputed from the Parts on every translate, so it is always what a fresh
/// translate gives.
fn server_aliases(
    hosts: &[HostMatch],
    parts: &[Arc<incremental::Part>],
    conditions: &mut Vec<Condition>,
) -> Vec<(HostMatch, HostMatch)> {
    if parts.iter().all(|p| p.aliases.is_empty()) {
        return Vec::new();
    }
    let mut chosen: BTreeMap<&HostMatch, &incremental::Part> = BTreeMap::new();
    for part in parts.iter().filter(|p| !p.aliases.is_empty() && p.serves) {
        for rule in &part.rules {
            if rule.host != HostMatch::Any {
                chosen.entry(&rule.host).or_insert(part.as_ref());
            }
        }
    }
    let mut claimed: BTreeMap<&HostMatch, &HostMatch> = BTreeMap::new();
    for (host, part) in chosen {
        for alias in &part.aliases {
            if alias == host || hosts.contains(alias) {
                continue;
            }
            match claimed.get(alias) {
                None => {
                    claimed.insert(alias, host);
                }
                Some(winner) if *winner != host => conditions.push(Condition {
                    object: part.object.clone(),
                    reason: Reason::InvalidAnnotation,
                    message: format!(
                        "annotation server-alias: alias {alias} of host {host} is already an alias of host {winner}; ignored"
                    ),
                }),
                Some(_) => {}
            }
        }
    }
    claimed
        .into_iter()
        .map(|(alias, host)| (alias.clone(), host.clone()))
        .collect()
}

/// `from-to-www-redirect` (ingress-nginx `pkg/util/ingress` `BuildRedirects`): a rule host
/// any of whose Ingresses sets it gets a redirect from `www.HOST` (or, for `www.HOST`, from
/// `HOST`), unless that name is a rule host itself. Exact hosts only: a wildcard has no
/// `www.` form. Returns `(from, to)` pairs.
fn www_redirects(hosts: &[HostMatch], parts: &[Arc<incremental::Part>]) -> Vec<(String, String)> {
    if parts.iter().all(|p| !p.from_to_www) {
        return Vec::new();
    }
    let mut pairs = Vec::new();
    for part in parts.iter().filter(|p| p.from_to_www && p.serves) {
        for rule in &part.rules {
            let HostMatch::Exact(to) = &rule.host else {
                continue;
            };
            let from = match to.strip_prefix("www.") {
                Some(bare) => bare.to_string(),
                None => format!("www.{to}"),
            };
            if hosts.contains(&HostMatch::Exact(from.clone())) {
                continue;
            }
            pairs.push((from, to.clone()));
        }
    }
    pairs.sort();
    pairs.dedup_by(|later, first| later.0 == first.0);
    pairs
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
    ingresses: &'a [Arc<Ingress>],
    classes: &Classes,
    options: &Options,
) -> Vec<&'a Arc<Ingress>> {
    let mut owned: Vec<&Arc<Ingress>> = ingresses
        .iter()
        .filter(|i| i.metadata.name.as_deref().is_some_and(|n| !n.is_empty()))
        .filter(|i| classes.owns(i, options))
        .collect();
    // A source should never deliver one name twice; if it does, keep one chosen by content so
    // the result does not depend on input order.
    owned.sort_by(|a, b| {
        let key =
            |i: &'a Arc<Ingress>| (i.metadata.namespace.as_deref(), i.metadata.name.as_deref());
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
