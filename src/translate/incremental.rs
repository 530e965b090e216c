//! Incremental translate: the state [`Cache`](super::Cache) keeps between two translates so
//! that a change costs work in proportion to what it touches (issue 11 item 3).
//!
//! Sits inside `translate`: the snapshot is first compared with the previous one kind by kind
//! (Services, EndpointSlices grouped by Service, Secrets), then each owned Ingress's
//! contribution (its [`Part`]) is reused, rebound or derived again, and finally the vhosts are
//! merged in age order (spec §3.6, §3.8), reusing every vhost whose contributions are the
//! same. What is cached is always keyed by what it was computed from, so the result equals a
//! translate from scratch (`tests/incremental.rs` drives random edit sequences to check it).

// A `Policy` holds the external-auth answer store (`routing::AuthStore`, a `Mutex`), which its
// `Eq` and `Hash` leave out: it is a sound key of `with_policies` (issue 15).
#![allow(clippy::mutable_key_type)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use super::backends::{Backends, Index, Resolved, SERVICE_NAME_LABEL};
use super::{
    affinity, annotations, basic_auth, client_auth, custom_headers, error_pages, ext_auth, paths,
    redirects, ssl_ciphers, tls, Condition, ObjectRef, Options, Reason,
};
use crate::routing::{
    Backend, BackendRef, HostMatch, Origin, Policy, Route, Target, Unavailable, VirtualHost,
};

/// `(namespace, name)` of a namespaced object.
pub(super) type Key = (String, String);

/// Whether an object is unchanged since the previous translate.
///
/// The snapshot holds its objects behind `Arc` and the sources hand on the same `Arc` for an
/// object they did not touch, so a pointer comparison answers for nearly every object; content
/// equality covers a source that rebuilt an equal object.
fn same<T: PartialEq>(previous: &Arc<T>, current: &Arc<T>) -> bool {
    Arc::ptr_eq(previous, current) || **previous == **current
}

/// What the previous translate left behind; empty at first and after an options change.
#[derive(Default)]
pub(super) struct State {
    /// The options everything below was computed under.
    options: Option<Options>,
    /// The previous snapshot's objects, in its order and by key, to tell what changed.
    services: Seen<Service>,
    slices: Seen<EndpointSlice>,
    secrets: Seen<Secret>,
    config_maps: Seen<ConfigMap>,
    /// Resolved backends by reference, still valid for unchanged Services and slices.
    pub backends: HashMap<BackendRef, Resolved>,
    /// One `Arc` per backend and non-default policy (see `translate`).
    pub with_policies: HashMap<(BackendRef, Arc<Policy>), Arc<Backend>>,
    /// One unavailable backend per reference for Ingresses that fail closed (it depends on
    /// the reference alone, so it never goes stale).
    pub blocked: HashMap<BackendRef, Arc<Backend>>,
    /// Each owned Ingress's contribution, by `namespace/name`.
    pub parts: HashMap<Key, Arc<Part>>,
    /// The same Parts in age order (spec §0), as the last translate merged them; each holds
    /// the very `Arc<Ingress>` of the snapshot it was merged from.
    pub order: Vec<Arc<Part>>,
    /// The same Parts sorted by Ingress `namespace/name` (the order of `owned` and
    /// `ssl_redirects` in the translation), kept rather than sorted again.
    pub by_name: Vec<Arc<Part>>,
    /// The previous translation's `owned`, and its `ssl_redirects` with the controller
    /// ConfigMap's `ssl-redirect` presence they were made with.
    pub owned: Option<Arc<[ObjectRef]>>,
    pub ssl_redirects: Option<(bool, Arc<[super::SslRedirect]>)>,
    /// The snapshot's Ingresses in its order, to find by pointer which ones changed.
    ingresses: Vec<Arc<Ingress>>,
    /// The IngressClasses `order` was selected with (`None`: select again).
    classes: Option<Vec<Arc<IngressClass>>>,
    /// Each vhost as last built, by host.
    pub vhosts: HashMap<HostMatch, Built, foldhash::fast::RandomState>,
    /// The same hosts, sorted: the order the table keeps its vhosts in.
    pub hosts: Vec<HostMatch>,
    /// The last table's host index (before aliases), shared by the next table if it fits.
    pub host_index: Option<Arc<crate::routing::HostIndex>>,
    /// Source of [`Part::rev`].
    next_rev: u64,
}

/// Each host's contributing rules, oldest Ingress first (spec §3.8).
pub(super) type Contributors<'a> = HashMap<&'a HostMatch, Rules<'a>, foldhash::fast::RandomState>;

/// One host's contributing rules, oldest Ingress first. Most hosts have one, kept inline: a
/// `Vec` per host was an allocation per host per translate.
pub(super) enum Rules<'a> {
    One([(&'a Part, &'a PartRule); 1]),
    Many(Vec<(&'a Part, &'a PartRule)>),
}

impl<'a> Rules<'a> {
    pub fn push(&mut self, rule: (&'a Part, &'a PartRule)) {
        match self {
            Rules::One([first]) => *self = Rules::Many(vec![*first, rule]),
            Rules::Many(rules) => rules.push(rule),
        }
    }
}

impl<'a> std::ops::Deref for Rules<'a> {
    type Target = [(&'a Part, &'a PartRule)];
    fn deref(&self) -> &Self::Target {
        match self {
            Rules::One(one) => one,
            Rules::Many(rules) => rules,
        }
    }
}

/// Object addresses (see [`address`]), probed once per Ingress per translate.
type AddrSet = HashSet<usize, foldhash::fast::RandomState>;

/// The owned Ingresses of a translate, from [`State::owned`].
pub(super) struct Owned {
    /// Oldest first, each with its previous Part when it is the same Ingress object.
    pub entries: Vec<(Arc<Ingress>, Option<Arc<Part>>)>,
    /// The previous Parts whose Ingress went away; `None` when every owned Ingress was
    /// selected again (then the Parts by name are rebuilt too).
    pub removed: Option<Vec<Arc<Part>>>,
}

/// Keys probed once per owned Ingress (foldhash: SipHash was most of that probe).
type KeySet = HashSet<Key, foldhash::fast::RandomState>;

/// The keys whose objects changed since the previous translate.
#[derive(Default)]
pub(super) struct Changes {
    /// Service objects (the backend's port, type, `appProtocol` and problems depend on them).
    services: KeySet,
    /// EndpointSlices, by `namespace` and the Service named by their label (spec §4.2 step 1):
    /// only endpoint sets depend on them.
    slices: KeySet,
    secrets: KeySet,
    /// ConfigMaps (`custom-headers` reads them).
    config_maps: KeySet,
}

impl State {
    /// Forgets everything computed under other options, then finds what changed in the
    /// snapshot and drops the resolved backends that depend on it.
    pub fn changes(
        &mut self,
        options: &Options,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        secrets: &[Arc<Secret>],
        config_maps: &[Arc<ConfigMap>],
    ) -> Changes {
        if self.options.as_ref() != Some(options) {
            *self = State {
                options: Some(options.clone()),
                next_rev: self.next_rev,
                ..State::default()
            };
        }
        let changes = Changes {
            services: diff(&mut self.services, services, |s| {
                let m = &s.metadata;
                Some((m.namespace.as_deref()?, m.name.as_deref()?))
            }),
            slices: diff(&mut self.slices, slices, |s| {
                let ns = s.metadata.namespace.as_deref().unwrap_or_default();
                let service = s.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
                Some((ns, service.as_str()))
            }),
            secrets: diff(&mut self.secrets, secrets, |s| {
                let m = &s.metadata;
                Some((
                    m.namespace.as_deref().unwrap_or_default(),
                    m.name.as_deref().unwrap_or_default(),
                ))
            }),
            config_maps: diff(&mut self.config_maps, config_maps, |c| {
                let m = &c.metadata;
                Some((
                    m.namespace.as_deref().unwrap_or_default(),
                    m.name.as_deref().unwrap_or_default(),
                ))
            }),
        };
        if !changes.services.is_empty() || !changes.slices.is_empty() {
            // Looked up without allocating, hashed with foldhash: this runs over every
            // resolved backend.
            let changed: HashSet<(&str, &str), foldhash::fast::RandomState> = changes
                .services
                .iter()
                .chain(&changes.slices)
                .map(|(ns, name)| (ns.as_str(), name.as_str()))
                .collect();
            let stale = |reference: &BackendRef| match reference {
                BackendRef::Service {
                    namespace, name, ..
                } => changed.contains(&(namespace.as_str(), name.as_str())),
                BackendRef::Resource { .. } => false,
            };
            self.backends.retain(|reference, _| !stale(reference));
            // A policy's error pages hold backends too (`error_pages.rs`).
            let stale_pages = |policy: &Policy| {
                policy.error_pages.as_ref().is_some_and(|pages| {
                    [&pages.custom, &pages.global]
                        .into_iter()
                        .flatten()
                        .any(|b| stale(&b.0.reference))
                })
            };
            self.with_policies
                .retain(|(reference, policy), _| !stale(reference) && !stale_pages(policy));
        }
        changes
    }

    /// The owned Ingresses (spec §2), one per `namespace/name`, oldest first, each with its
    /// previous Part when the Ingress object is the very one that Part was derived from.
    ///
    /// When the IngressClasses are the same objects as last time, the previous order is kept:
    /// Ingresses that went away leave it, new ones are selected and merged in by age, so one
    /// change costs pointers and a merge, not a selection and a sort of every Ingress. A new
    /// Ingress whose `namespace/name` another still holds (a source delivering one name twice)
    /// sends everything through the full selection, which decides between them by content.
    pub fn owned(
        &mut self,
        ingresses: &[Arc<Ingress>],
        classes: &[Arc<IngressClass>],
        selected: &super::class::Classes,
        options: &Options,
    ) -> Owned {
        let (gone, arrived) = window(&mut self.ingresses, ingresses);
        let same_classes = self.classes.as_ref().is_some_and(|previous| {
            previous.len() == classes.len()
                && previous.iter().zip(classes).all(|(a, b)| Arc::ptr_eq(a, b))
        });
        if same_classes {
            if let Some(entries) = self.merged(&gone, arrived, selected, options) {
                return entries;
            }
        }
        self.classes = Some(classes.to_vec());
        Owned {
            entries: super::owned_in_age_order(ingresses, selected, options)
                .into_iter()
                .map(|ingress| (ingress.clone(), None))
                .collect(),
            removed: None,
        }
    }

    /// The previous order without the `gone` Ingresses and with the owned `arrived` ones merged
    /// in by age; `None` when a name would be held twice.
    fn merged(
        &mut self,
        gone: &[Arc<Ingress>],
        arrived: Vec<Arc<Ingress>>,
        selected: &super::class::Classes,
        options: &Options,
    ) -> Option<Owned> {
        let gone: AddrSet = gone.iter().map(address).collect();
        let mut fresh: Vec<Arc<Ingress>> = arrived
            .into_iter()
            .filter(|i| i.metadata.name.as_deref().is_some_and(|n| !n.is_empty()))
            .filter(|i| selected.owns(i, options))
            .collect();
        fresh.sort_by(|a, b| {
            let key = |i: &Arc<Ingress>| {
                (
                    i.metadata.namespace.clone().unwrap_or_default(),
                    i.metadata.name.clone().unwrap_or_default(),
                )
            };
            key(a).cmp(&key(b))
        });
        for (i, ingress) in fresh.iter().enumerate() {
            let key = (
                ingress.metadata.namespace.clone().unwrap_or_default(),
                ingress.metadata.name.clone().unwrap_or_default(),
            );
            let twice = fresh.get(i + 1).is_some_and(|next| {
                next.metadata.namespace == ingress.metadata.namespace
                    && next.metadata.name == ingress.metadata.name
            });
            let held = self
                .parts
                .get(&key)
                .is_some_and(|p| !gone.contains(&address(&p.ingress)));
            if twice || held {
                return None;
            }
        }
        fresh.sort_by(|a, b| super::age_key(a).cmp(&super::age_key(b)));
        let mut entries = Vec::with_capacity(self.order.len() + fresh.len());
        let mut removed = Vec::new();
        let mut fresh = fresh.into_iter().peekable();
        for part in &self.order {
            if gone.contains(&address(&part.ingress)) {
                removed.push(part.clone());
                continue;
            }
            while let Some(next) =
                fresh.next_if(|f| super::age_key(f) < super::age_key(&part.ingress))
            {
                entries.push((next, None));
            }
            entries.push((part.ingress.clone(), Some(part.clone())));
        }
        entries.extend(fresh.map(|f| (f, None)));
        Some(Owned {
            entries,
            removed: Some(removed),
        })
    }

    /// The Services and EndpointSlices by name, lent to the backend resolver; give them back
    /// with [`State::put_indexes`].
    pub fn take_indexes(&mut self) -> (Index<Service>, Index<EndpointSlice>) {
        (
            std::mem::take(&mut self.services.groups),
            std::mem::take(&mut self.slices.groups),
        )
    }

    pub fn put_indexes(&mut self, services: Index<Service>, slices: Index<EndpointSlice>) {
        self.services.groups = services;
        self.slices.groups = slices;
    }

    /// The hosts of `contributors` with their rules, sorted: the previous order less the hosts
    /// that went, with the new ones (those `vhosts` does not know) sorted and merged in.
    pub fn host_order<'c, 'a>(
        &mut self,
        contributors: &'c Contributors<'a>,
    ) -> Vec<(&'a HostMatch, &'c Rules<'a>)> {
        let mut order: Vec<(&'a HostMatch, &'c Rules<'a>)> = self
            .hosts
            .iter()
            .filter_map(|h| contributors.get_key_value(h).map(|(k, v)| (*k, v)))
            .collect();
        let gone = order.len() < self.hosts.len();
        let mut added: Vec<&'a HostMatch> = Vec::new();
        if order.len() < contributors.len() {
            let mut new: Vec<(&'a HostMatch, &'c Rules<'a>)> = contributors
                .iter()
                .filter(|(h, _)| !self.vhosts.contains_key(**h))
                .map(|(k, v)| (*k, v))
                .collect();
            new.sort_by(|a, b| a.0.cmp(b.0));
            added = new.iter().map(|(h, _)| *h).collect();
            let mut merged = Vec::with_capacity(order.len() + new.len());
            let mut new = new.into_iter().peekable();
            for entry in order {
                while let Some(next) = new.next_if(|n| n.0 < entry.0) {
                    merged.push(next);
                }
                merged.push(entry);
            }
            merged.extend(new);
            order = merged;
        } else if !gone {
            return order;
        }
        // The stored hosts follow without cloning every host (issue 11: a new Ingress copied
        // 20,000 host names here): those that went leave, the few new ones are put in place.
        if added.len() > 64 || self.hosts.is_empty() {
            self.hosts = order.iter().map(|(h, _)| (*h).clone()).collect();
        } else {
            if gone {
                self.hosts.retain(|h| contributors.contains_key(h));
            }
            for host in added {
                if let Err(at) = self.hosts.binary_search(host) {
                    self.hosts.insert(at, host.clone());
                }
            }
        }
        debug_assert!(self.hosts.iter().eq(order.iter().map(|(h, _)| *h)));
        order
    }

    /// Drops the shared backends no Part (and no published table) holds any more: those of
    /// deleted Ingresses, of Ingresses whose annotations changed, of references no Ingress
    /// makes now. Without this they stayed until their Service changed, so every annotation
    /// edit left one entry behind for good (issue 11: flat under changes). Any entry may go:
    /// each is keyed by what it was computed from, so a miss only costs a recomputation.
    pub fn forget_unused(&mut self) {
        let used = |backend: &Arc<Backend>| Arc::strong_count(backend) > 1;
        self.backends.retain(|_, resolved| used(&resolved.0));
        self.with_policies.retain(|_, backend| used(backend));
        self.blocked.retain(|_, backend| used(backend));
    }

    pub fn next_rev(&mut self) -> u64 {
        self.next_rev += 1;
        self.next_rev
    }
}

/// The Part of `ingress` to use now, from the previous translate's `parts`: the same one when
/// neither the Ingress nor anything it reads changed; rebound to the new backends when only
/// endpoints changed; else `None` (derive it again).
pub(super) fn reuse(
    parts: &HashMap<Key, Arc<Part>>,
    key: &Key,
    ingress: &Arc<Ingress>,
    changes: &Changes,
) -> Option<Reuse> {
    let part = parts.get(key)?;
    if !same(&part.ingress, ingress) {
        return None;
    }
    reuse_part(part, changes)
}

/// [`reuse`] for a Part derived from the very Ingress object translated now.
pub(super) fn reuse_part(part: &Arc<Part>, changes: &Changes) -> Option<Reuse> {
    if part.services.iter().any(|k| changes.services.contains(k))
        || part.secrets.iter().any(|k| changes.secrets.contains(k))
        || part
            .config_maps
            .iter()
            .any(|k| changes.config_maps.contains(k))
    {
        return None;
    }
    if part.services.iter().any(|k| changes.slices.contains(k)) {
        Some(Reuse::Rebind(part.clone()))
    } else {
        Some(Reuse::Same(part.clone()))
    }
}

pub(super) enum Reuse {
    Same(Arc<Part>),
    /// Its routes stay; their backends are looked up again (an EndpointSlice changed).
    Rebind(Arc<Part>),
}

/// The objects of one kind as the previous translate saw them: in the snapshot's order (to
/// find what changed by pointer) and grouped by key (to tell whether a key's objects changed).
pub(super) struct Seen<T> {
    order: Vec<Arc<T>>,
    groups: HashMap<Key, Vec<Arc<T>>>,
}

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Seen {
            order: Vec::new(),
            groups: HashMap::new(),
        }
    }
}

/// The address of an object, as an identity: `Seen` holds every `Arc` it compares with, so an
/// address cannot be reused while it is compared.
fn address<T>(object: &Arc<T>) -> usize {
    Arc::as_ptr(object) as usize
}

/// Compares `current` with what `seen` holds, stores it and returns the keys whose objects
/// changed, appeared or went away (order within a key does not matter).
///
/// Cost in proportion to the change, not to the cluster: the sources hand on the same `Arc`
/// for an object they did not touch, so [`window`] finds the objects that went and came by
/// pointer, and only their keys are compared. A source that reorders everything costs one pass
/// of address hashing, never a wrong answer. An object a source rebuilt equal to the stored one
/// (content equality) is no change. A key held by two objects at once (no real cluster has one)
/// is compared as a multiset: at worst that costs work, never correctness.
fn diff<T: PartialEq>(
    seen: &mut Seen<T>,
    current: &[Arc<T>],
    key: impl Fn(&T) -> Option<(&str, &str)>,
) -> KeySet {
    let mut changed = KeySet::default();
    let (gone, new) = window(&mut seen.order, current);
    if gone.is_empty() && new.is_empty() {
        return changed;
    }
    let gone_set: AddrSet = gone.iter().map(address).collect();
    let mut arrived: HashMap<Key, Vec<Arc<T>>> = HashMap::new();
    for object in new {
        if let Some((ns, name)) = key(object.as_ref()) {
            arrived
                .entry((ns.to_string(), name.to_string()))
                .or_default()
                .push(object.clone());
        }
    }
    let mut touched: HashSet<Key> = arrived.keys().cloned().collect();
    for object in &gone {
        if let Some((ns, name)) = key(object.as_ref()) {
            touched.insert((ns.to_string(), name.to_string()));
        }
    }
    for k in touched {
        let before = seen.groups.get(&k);
        let mut group: Vec<Arc<T>> = before
            .into_iter()
            .flatten()
            .filter(|o| !gone_set.contains(&address(o)))
            .cloned()
            .collect();
        group.extend(arrived.remove(&k).unwrap_or_default());
        let unchanged = match before {
            Some(previous) if previous.len() == group.len() => {
                // Several EndpointSlices per Service are normal: equal as multisets.
                let mut unmatched: Vec<&Arc<T>> = previous.iter().collect();
                group.iter().all(
                    |object| match unmatched.iter().position(|p| same(p, object)) {
                        Some(i) => {
                            unmatched.swap_remove(i);
                            true
                        }
                        None => false,
                    },
                )
            }
            None => group.is_empty(),
            Some(_) => false,
        };
        if group.is_empty() {
            seen.groups.remove(&k);
        } else {
            seen.groups.insert(k.clone(), group);
        }
        if !unchanged {
            changed.insert(k);
        }
    }
    changed
}

/// What differs between `order` (the previous snapshot's objects of one kind) and `current`,
/// by pointer: the objects that went away and those that arrived. Stores `current` in `order`.
///
/// Compared from both ends first: the sources keep their order (files in path order, a
/// reflector store its map's), so after one change only the objects between the first and the
/// last difference are hashed by address; objects that only moved are neither gone nor new.
fn window<T>(order: &mut Vec<Arc<T>>, current: &[Arc<T>]) -> (Vec<Arc<T>>, Vec<Arc<T>>) {
    let prefix = order
        .iter()
        .zip(current)
        .take_while(|(a, b)| Arc::ptr_eq(a, b))
        .count();
    let suffix = order[prefix..]
        .iter()
        .rev()
        .zip(current[prefix..].iter().rev())
        .take_while(|(a, b)| Arc::ptr_eq(a, b))
        .count();
    let old = &order[prefix..order.len() - suffix];
    let new = &current[prefix..current.len() - suffix];
    if old.is_empty() && new.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let old_set: AddrSet = old.iter().map(address).collect();
    let new_set: AddrSet = new.iter().map(address).collect();
    let gone = old
        .iter()
        .filter(|o| !new_set.contains(&address(o)))
        .cloned()
        .collect();
    let arrived = new
        .iter()
        .filter(|o| !old_set.contains(&address(o)))
        .cloned()
        .collect();
    // Only the window changed: the ends are the same pointers already.
    order.splice(prefix..order.len() - suffix, new.iter().cloned());
    (gone, arrived)
}

/// One owned Ingress's contribution to the table, derived from the Ingress and the objects it
/// reads (never from other Ingresses: merging is done afterwards, in age order).
#[derive(Clone)]
pub(super) struct Part {
    /// Unique among all Parts ever made by one `State`: equal revisions, equal contents.
    pub rev: u64,
    /// The Ingress it was derived from.
    pub ingress: Arc<Ingress>,
    /// The Services (with their EndpointSlices) and Secrets it reads.
    pub services: Vec<Key>,
    pub secrets: Vec<Key>,
    pub config_maps: Vec<Key>,
    pub object: ObjectRef,
    /// spec §5.5: its redirect choice and what decided it.
    pub redirect: bool,
    pub set_by: &'static str,
    /// `force-ssl-redirect`: its routes redirect plain HTTP even on hosts without TLS.
    pub force_ssl: bool,
    /// `server-alias`: extra names for its rule hosts (decided in the merge).
    pub aliases: Vec<HostMatch>,
    /// `from-to-www-redirect` (decided per host in the merge).
    pub from_to_www: bool,
    /// The conditions that depend on this Ingress alone.
    pub conditions: Vec<Condition>,
    pub policy: Option<Arc<Policy>>,
    pub default: Option<Slot>,
    /// No rules at all: a candidate for the global default backend (spec §3.7).
    pub rule_less: bool,
    /// Its valid rule hosts other than the hostless one, for the TLS bindings (spec §5.2).
    pub rule_hosts: Vec<HostMatch>,
    /// Its rules with a valid host, in rule order.
    pub rules: Vec<PartRule>,
    /// An access-control annotation Portico cannot enforce: every backend is unavailable.
    pub blocked: bool,
    /// `false` for a canary Ingress: it contributes no routes, not even TLS bindings.
    pub serves: bool,
    /// A canary Ingress's shaping and backends, attached in the merge (`canary.rs`).
    pub canary: Option<Arc<super::canary::CanaryPart>>,
    /// issue 14: the Service-scoped settings its backends were given (`affinity::Scope`).
    pub scoped: affinity::View,
    /// `auth-tls-*`: client certificates for its hosts (the oldest Ingress of a host decides).
    pub client_auth: Option<Arc<crate::routing::client_auth::ClientAuth>>,
    /// `ssl-ciphers`: TLS 1.2 suites for its hosts (the oldest Ingress of a host that sets it
    /// decides).
    pub ssl_ciphers: Option<Vec<rustls::CipherSuite>>,
    /// `ssl-prefer-server-ciphers` (likewise, separately).
    pub prefer_server_ciphers: Option<bool>,
}

#[derive(Clone)]
pub(super) struct PartRule {
    pub host: HostMatch,
    /// Each route, and whether its backend came from the shared resolution (then it is looked
    /// up again by `route.backend.reference` when endpoints change; `false` for malformed
    /// references, built per use). A flag, not a second `BackendRef`: every backend keeps the
    /// reference it was resolved from, and the copy was ~100 bytes per route (issue 11).
    pub routes: Vec<(Route, bool)>,
}

/// A backend as used by a Part, with the reference to look it up again when endpoints
/// change (`None` for malformed references, which are built per use).
#[derive(Clone)]
pub(super) struct Slot {
    pub backend: Arc<Backend>,
    pub reference: Option<BackendRef>,
}

/// Shares one `Arc` per (backend, policy), like one per backend without annotations. An
/// Ingress that fails closed (`blocked` is its map) gets one unavailable backend per reference
/// instead (`ingress-nginx.md` §3).
fn with_policy(
    with_policies: &mut HashMap<(BackendRef, Arc<Policy>), Arc<Backend>>,
    blocked: Option<&mut HashMap<BackendRef, Arc<Backend>>>,
    policy: &Option<Arc<Policy>>,
    backend: Arc<Backend>,
) -> Arc<Backend> {
    if let Some(blocked) = blocked {
        return blocked
            .entry(backend.reference.clone())
            .or_insert_with(|| {
                Arc::new(Backend::new(
                    backend.reference.clone(),
                    Target::Unavailable(Unavailable::AccessControlUnsupported),
                ))
            })
            .clone();
    }
    match policy {
        Some(p) => with_policies
            .entry((backend.reference.clone(), p.clone()))
            .or_insert_with(|| Arc::new(backend.with_policy(p.clone())))
            .clone(),
        None => backend,
    }
}

/// `service-upstream` (ingress-nginx `controller.go`): a Service backend's one endpoint
/// becomes the Service's ClusterIP and port, endpoints or not; without a ClusterIP the
/// endpoints stay, as in ingress-nginx, and the reason is returned.
fn service_upstream(
    backends: &Backends<'_>,
    policy: &Option<Arc<Policy>>,
    backend: Arc<Backend>,
) -> (Arc<Backend>, Option<String>) {
    if policy
        .as_ref()
        .is_none_or(|p| p.service_upstream != Some(true))
    {
        return (backend, None);
    }
    if !matches!(
        backend.target,
        Target::Endpoints(_) | Target::Unavailable(Unavailable::NoEndpoints)
    ) {
        return (backend, None);
    }
    match backends.cluster_endpoint(&backend.reference) {
        Ok(addr) => (
            Arc::new(Backend {
                target: Target::Endpoints(vec![addr]),
                ..(*backend).clone()
            }),
            None,
        ),
        Err(why) => (backend, Some(why)),
    }
}

/// A resolved backend and, when it came from the shared resolution, its reference.
pub(super) fn slot(resolved: &Resolved) -> Option<BackendRef> {
    let malformed = resolved
        .1
        .as_ref()
        .is_some_and(|p| p.reason == Reason::InvalidBackend);
    (!malformed).then(|| resolved.0.reference.clone())
}

/// The same Part with every shared backend looked up again (only endpoints changed, so
/// routes, conditions and everything else stand).
pub(super) fn rebind(
    part: &Part,
    rev: u64,
    backends: &mut Backends<'_>,
    with_policies: &mut HashMap<(BackendRef, Arc<Policy>), Arc<Backend>>,
    blocked: &mut HashMap<BackendRef, Arc<Backend>>,
) -> Part {
    let mut part = part.clone();
    part.rev = rev;
    if let Some(canary) = &part.canary {
        part.canary = Some(Arc::new(super::canary::rebind(canary, backends)));
        return part;
    }
    // The error pages' backends may be among those whose endpoints changed: then the policy
    // changes, and every backend of the Part carries the new one, malformed ones included.
    let mut new_policy = false;
    if let Some(p) = &part.policy {
        if let Some(pages) = &p.error_pages {
            part.policy = Some(Arc::new(Policy {
                error_pages: Some(Arc::new(error_pages::rebind(pages, backends))),
                ..Policy::clone(p)
            }));
            new_policy = true;
        }
    }
    let policy = part.policy.clone();
    let exempt = ext_auth::exempt_policy(&policy);
    let fails_closed = part.blocked;
    // `None` when the backend stays as it is.
    let mut again = |reference: Option<&BackendRef>, current: &Arc<Backend>| {
        // A path `no-auth-locations` exempts keeps its policy without external auth.
        let policy = match &exempt {
            Some(without) if current.policy.ext_auth.is_none() => without,
            _ => &policy,
        };
        let backend = match reference {
            Some(reference) => {
                let backend = backends.again(reference);
                service_upstream(backends, policy, backend).0
            }
            None if new_policy => current.clone(),
            None => return None,
        };
        Some(with_policy(
            with_policies,
            fails_closed.then_some(&mut *blocked),
            policy,
            backend,
        ))
    };
    if let Some(Slot { backend, reference }) = &mut part.default {
        if let Some(b) = again(reference.as_ref(), backend) {
            *backend = b;
        }
    }
    for rule in &mut part.rules {
        for (route, shared) in &mut rule.routes {
            let reference = shared.then(|| route.backend.reference.clone());
            if let Some(b) = again(reference.as_ref(), &route.backend) {
                route.backend = b;
            }
        }
    }
    part
}

/// Derives one owned Ingress's Part (spec §1.1, §3.4–3.7, §4, §5.5): everything translate
/// does for an Ingress except what depends on other Ingresses.
// issue 14 added the Service scope to the inputs: one more than clippy's default.
#[allow(clippy::too_many_arguments)]
pub(super) fn derive(
    ingress: &Arc<Ingress>,
    rev: u64,
    options: &Options,
    // Its Secrets and ConfigMaps (annotations name them).
    snapshot: &crate::source::Snapshot,
    (scope, scoped): (&affinity::Scope, affinity::View),
    backends: &mut Backends<'_>,
    with_policies: &mut HashMap<(BackendRef, Arc<Policy>), Arc<Backend>>,
    blocked: &mut HashMap<BackendRef, Arc<Backend>>,
) -> Part {
    let object = super::ingress_ref(ingress);
    let namespace = object.namespace.clone();
    let mut conditions = Vec::new();
    let mut condition = |reason: Reason, message: String| {
        conditions.push(Condition {
            object: object.clone(),
            reason,
            message,
        });
    };
    // issue 14: a canary Ingress creates no routes; `canary.rs` keeps its shaping and
    // backends for the merge, which attaches them to the main Ingress's backends.
    let (is_canary, not_boolean) = super::canary::is_canary(ingress);
    if let Some(message) = not_boolean {
        condition(Reason::InvalidAnnotation, message);
    }
    if is_canary {
        let canary = super::canary::derive(ingress, &namespace, backends, &mut condition);
        return Part {
            rev,
            ingress: Arc::clone(ingress),
            services: services_read(ingress, &namespace),
            secrets: Vec::new(),
            config_maps: Vec::new(),
            object,
            redirect: options.ssl_redirect,
            set_by: tls::GLOBAL_SSL_REDIRECT,
            force_ssl: false,
            aliases: Vec::new(),
            from_to_www: false,
            conditions,
            policy: None,
            default: None,
            rule_less: false,
            rule_hosts: Vec::new(),
            rules: Vec::new(),
            blocked: false,
            serves: false,
            canary: Some(Arc::new(canary)),
            scoped,
            client_auth: None,
            ssl_ciphers: None,
            prefer_server_ciphers: None,
        };
    }
    // ingress-nginx.md §3: what Portico does not implement is said, never silently ignored;
    // access control it cannot enforce fails closed.
    let unimplemented = annotations::unimplemented(ingress);
    for key in &unimplemented.blocking {
        condition(
            Reason::AccessControlUnsupported,
            format!(
                "annotation {key}: access control Portico does not implement yet; every path \
                 of this Ingress answers 503 rather than serving without it"
            ),
        );
    }
    for key in &unimplemented.snippets {
        condition(
            Reason::SnippetDropped,
            format!("annotation {key}: snippets are never interpreted; dropped"),
        );
    }
    for key in &unimplemented.ignored {
        condition(
            Reason::UnsupportedAnnotation,
            format!("annotation {key}: not implemented by Portico; ignored"),
        );
    }
    for message in super::canary::unused(ingress) {
        condition(Reason::InvalidAnnotation, message);
    }
    // Source ranges and limits (issue 14, limits.rs): an unusable source range fails closed.
    let access = super::limits::access(ingress, &options.limits);
    for message in access.invalid {
        condition(Reason::InvalidAnnotation, message);
    }
    // Basic authentication (issue 15): what it cannot enforce fails closed like the above.
    let auth = basic_auth::parse(ingress, &namespace, &snapshot.secrets);
    for message in &auth.warnings {
        condition(Reason::BasicAuthUserUnusable, message.clone());
    }
    if let Some(message) = &auth.denied {
        condition(Reason::InvalidAnnotation, message.clone());
    }
    // issue 15: client certificates; unusable ones fail closed.
    let client_auth = client_auth::parse(ingress, &snapshot.secrets);
    for message in &client_auth.invalid {
        condition(Reason::InvalidAnnotation, message.clone());
    }
    if let Some(message) = &client_auth.denied {
        condition(Reason::InvalidAnnotation, message.clone());
    }
    // issue 15: a `proxy-ssl-secret` naming no usable Secret fails closed.
    let upstream_denied = super::proxy_ssl::denied(ingress, &snapshot.secrets);
    if let Some(message) = &upstream_denied {
        condition(Reason::InvalidAnnotation, message.clone());
    }
    // issue 15: the host's TLS 1.2 suites and their order.
    let ciphers = ssl_ciphers::parse(ingress);
    for message in &ciphers.invalid {
        condition(Reason::InvalidAnnotation, message.clone());
    }
    // External authentication (issue 15): what Portico cannot use fails closed.
    let ext = ext_auth::parse(
        ingress,
        &namespace,
        &options.ext_auth,
        &snapshot.config_maps,
    );
    for why in &ext.denied {
        condition(
            Reason::InvalidAnnotation,
            format!(
                "{why}; every path of this Ingress answers 503 rather than serving unauthenticated"
            ),
        );
    }
    for message in &ext.invalid {
        condition(Reason::InvalidAnnotation, message.clone());
    }
    let fails_closed = unimplemented.blocks()
        || access.fails_closed
        || auth.denied.is_some()
        || client_auth.denied.is_some()
        || upstream_denied.is_some()
        || !ext.denied.is_empty();
    let mut blocked = fails_closed.then_some(blocked);
    // spec §5.5: whether this Ingress's routes on TLS hosts redirect plain HTTP.
    let (redirect, set_by) = match tls::ssl_redirect(ingress, options) {
        Ok(r) => r,
        Err(message) => {
            condition(Reason::InvalidAnnotation, message);
            (options.ssl_redirect, tls::GLOBAL_SSL_REDIRECT)
        }
    };
    // Proxy annotations, typed once here; a backend under non-default ones gets its own copy
    // carrying them.
    let (mut policy, mut invalid) = annotations::policy(ingress, &snapshot.secrets);
    // issue 14: `load-balance` is the Service's, from the scope (`policy_for` below).
    policy.balance = None;
    let issues = affinity::issues_cookie(ingress);
    // Redirects, the upstream Host and response rewriting (issue 13).
    let asked = redirects::apply(ingress, &mut policy, &mut invalid);
    let force_ssl = asked.force_ssl.unwrap_or(options.force_ssl_redirect);
    let from_to_www = asked.from_to_www;
    let aliases = redirects::server_aliases(ingress, &mut invalid);
    for message in invalid {
        condition(Reason::InvalidAnnotation, message);
    }
    // `default-backend` / `custom-http-errors`: error pages travel with the policy too.
    let (pages, invalid) = error_pages::error_pages(
        ingress,
        &namespace,
        &object.name,
        options,
        &options.error_pages.custom_http_errors,
        backends,
    );
    for message in invalid {
        condition(Reason::InvalidAnnotation, message);
    }
    policy.error_pages = pages.map(Arc::new);
    // `custom-headers`: a ConfigMap ingress-nginx would deny the paths for makes them 503.
    if let Some((headers, denied)) = custom_headers::custom_headers(
        ingress,
        &namespace,
        &options.custom_headers,
        &snapshot.config_maps,
    ) {
        if let Some(message) = denied {
            condition(Reason::InvalidAnnotation, message);
        }
        policy.custom_headers = Some(Arc::new(headers));
    }
    policy.access = access.access.map(Arc::new);
    policy.basic_auth = auth.auth;
    policy.ext_auth = ext.auth;
    let policy = (!policy.is_default()).then(|| Arc::new(policy));
    // `no-auth-locations`: the paths it exempts get the policy without external auth.
    let exempt = ext_auth::exempt_policy(&policy);
    let spec = ingress.spec.as_ref();
    let rules = spec.and_then(|s| s.rules.as_deref()).unwrap_or_default();
    // `service-upstream` problems, once per Service (reported after the rules).
    let mut upstream_notes: Vec<String> = Vec::new();
    let default = spec.and_then(|s| s.default_backend.as_ref()).map(|b| {
        let resolved = backends.resolve(&namespace, b);
        if let Some(p) = &resolved.1 {
            condition(p.reason, format!("defaultBackend: {}", p.message));
        }
        let reference = slot(&resolved);
        let (backend, why) = service_upstream(backends, &policy, resolved.0);
        upstream_notes.extend(why);
        let scoped = scope.policy_for(&policy, &backend.reference, issues);
        Slot {
            reference,
            backend: with_policy(with_policies, blocked.as_deref_mut(), &scoped, backend),
        }
    });
    if rules.is_empty() && default.is_none() {
        // spec §1.1: at least one of rules or defaultBackend.
        condition(
            Reason::InvalidIngress,
            "ingress has neither rules nor a defaultBackend".to_string(),
        );
    }

    let mut usable = false;
    // Sized for what they hold: an empty `Vec` grows to 4 on its first push, and a Part lives
    // as long as its Ingress (issue 11).
    let mut rule_hosts: Vec<HostMatch> = Vec::with_capacity(rules.len());
    let mut part_rules = Vec::with_capacity(rules.len());
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
        let http_paths = rule.http.as_ref().map(|h| h.paths.as_slice());
        let mut routes = Vec::with_capacity(http_paths.map_or(0, <[_]>::len));
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
            let resolved = backends.resolve(&namespace, &path.backend);
            match &resolved.1 {
                // A malformed reference is about this path; the others are about the
                // Service, and read the same from every path that uses it.
                Some(p) if p.reason == Reason::InvalidBackend => condition(
                    p.reason,
                    format!("rule {rule_index} path {path_index}: {}", p.message),
                ),
                Some(p) => condition(p.reason, p.message.clone()),
                None => {}
            }
            let reference = slot(&resolved);
            let (backend, why) = service_upstream(backends, &policy, resolved.0);
            upstream_notes.extend(why);
            let route_policy = match &exempt {
                Some(without)
                    if ext_auth::exempt(path.path.as_deref().unwrap_or("/"), &options.ext_auth) =>
                {
                    without
                }
                _ => &policy,
            };
            let scoped = scope.policy_for(route_policy, &backend.reference, issues);
            let backend = with_policy(with_policies, blocked.as_deref_mut(), &scoped, backend);
            routes.push((
                Route {
                    path: normalised,
                    path_type,
                    backend,
                    origin: Origin {
                        namespace: object.namespace.clone(),
                        name: object.name.clone(),
                        rule: rule_index,
                        path: path_index,
                    },
                    ssl_redirect: redirect || force_ssl,
                },
                reference.is_some(),
            ));
        }
        part_rules.push(PartRule { host, routes });
    }
    upstream_notes.sort();
    upstream_notes.dedup();
    for why in upstream_notes {
        condition(Reason::InvalidAnnotation, service_upstream_message(&why));
    }
    if !rules.is_empty() && !usable {
        condition(
            Reason::InvalidIngress,
            "no rule has a valid host; nothing is routed".to_string(),
        );
    }

    Part {
        rev,
        ingress: Arc::clone(ingress),
        services: {
            let mut keys = services_read(ingress, &namespace);
            keys.extend(error_pages::services_read(ingress, &namespace, options));
            keys.sort();
            keys.dedup();
            keys
        },
        secrets: secrets_read(ingress, &namespace),
        config_maps: {
            let mut keys = custom_headers::config_maps_read(ingress, &namespace);
            keys.extend(ext_auth::config_maps_read(ingress, &namespace));
            keys
        },
        object,
        redirect,
        set_by,
        force_ssl,
        aliases,
        from_to_www,
        conditions,
        policy,
        default,
        rule_less: rules.is_empty(),
        rule_hosts,
        rules: part_rules,
        blocked: fails_closed,
        serves: true,
        canary: None,
        scoped,
        client_auth: client_auth.auth,
        ssl_ciphers: ciphers.suites,
        prefer_server_ciphers: ciphers.prefer_server_ciphers,
    }
}

fn service_upstream_message(why: &str) -> String {
    format!("annotation service-upstream: {why}; its endpoints are used instead")
}

/// Every Service an Ingress's backends name, in its own namespace (spec §4.1).
fn services_read(ingress: &Ingress, namespace: &str) -> Vec<Key> {
    let spec = ingress.spec.as_ref();
    let default = spec.and_then(|s| s.default_backend.as_ref());
    let paths = spec
        .and_then(|s| s.rules.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.http.as_ref())
        .flat_map(|h| h.paths.iter().map(|p| &p.backend));
    let mut keys: Vec<Key> = default
        .into_iter()
        .chain(paths)
        .filter_map(|b| b.service.as_ref())
        .map(|s| (namespace.to_string(), s.name.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The Secrets the annotations read (the upstream CA, `annotations::policy`): the value as
/// `namespace/name`, or a name in the Ingress's namespace.
fn secrets_read(ingress: &Ingress, namespace: &str) -> Vec<Key> {
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    let mut keys: Vec<Key> = annotations
        .iter()
        .filter(|(k, _)| annotations::reads_secret(k))
        .map(|(_, value)| match value.trim().split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => (namespace.to_string(), value.trim().to_string()),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// One vhost as last built, and what it was built from.
pub(super) struct Built {
    /// The revisions of its contributing Parts, one per contributing rule, in age order.
    pub revs: Vec<u64>,
    /// Whether its host had a TLS binding (spec §5.5).
    pub has_tls: bool,
    pub vhost: Arc<VirtualHost>,
    /// `PathShadowed` conditions of its routes (spec §3.6), and the regex-mode problems of
    /// its paths (issue 13).
    pub shadowed: Vec<Condition>,
    /// The canaries attached to its backends (issue 14): it is rebuilt when they change.
    pub canaries: Vec<Arc<super::canary::Source>>,
}

/// Builds one vhost from its contributing rules, given oldest Ingress first (spec §3.6 step 4,
/// §3.7, §3.8, §5.5).
pub(super) fn build_vhost(
    host: &HostMatch,
    contributors: &[(&Part, &PartRule)],
    has_tls: bool,
    force_ssl_redirect: bool,
    (canaries, relevant): (&super::canary::Attachments, Vec<Arc<super::canary::Source>>),
) -> Built {
    // Exactly sized: the vhost keeps it for as long as its host exists.
    let mut routes = Vec::with_capacity(contributors.iter().map(|(_, r)| r.routes.len()).sum());
    let mut fallback = None;
    let mut fallback_redirect = None;
    let mut first_redirect = None;
    for (part, rule) in contributors {
        // spec §3.7: the per-vhost fallback is the defaultBackend of the oldest contributing
        // Ingress that has one.
        if fallback.is_none() {
            if let Some(slot) = &part.default {
                fallback = Some(canaries.apply(&slot.backend));
                fallback_redirect = Some(part.redirect);
            }
        }
        first_redirect.get_or_insert(part.redirect);
        for (route, _) in &rule.routes {
            let mut route = route.clone();
            if !canaries.is_empty() {
                route.backend = canaries.apply(&route.backend);
            }
            // spec §5.5: only vhosts whose host is bound to a certificate redirect; each
            // route keeps its own Ingress's choice.
            // `force-ssl-redirect` (the annotation, else the ConfigMap key) redirects without
            // TLS too (ingress-nginx `lua_ingress.lua` `redirect_to_https`; `rewrite/main.go`
            // makes the global value the annotation's default).
            route.ssl_redirect = part.force_ssl || (route.ssl_redirect && has_tls);
            routes.push(route);
        }
    }
    // The misses follow the Ingress of the fallback, else the oldest contributing one.
    let miss_redirect = fallback_redirect.or(first_redirect).unwrap_or(false);
    let mut vhost = VirtualHost::new(host.clone(), routes, fallback);
    // ingress-nginx `createServers`: the first Ingress of the host with `auth-tls-secret`.
    vhost.client_auth = contributors
        .iter()
        .find_map(|(part, _)| part.client_auth.clone());
    // `createServers` again: `ssl-ciphers` and `ssl-prefer-server-ciphers` each from the first
    // Ingress of the host that sets it.
    vhost.tls = crate::routing::tls_policy::HostTls::new(
        vhost.client_auth.clone(),
        contributors
            .iter()
            .find_map(|(part, _)| part.ssl_ciphers.clone()),
        contributors
            .iter()
            .find_map(|(part, _)| part.prefer_server_ciphers),
    );
    vhost.ssl_redirect = force_ssl_redirect || (has_tls && miss_redirect);
    // spec §3.6: identical match sets are decided by precedence; the losers are reported.
    let mut shadowed: Vec<Condition> = vhost
        .shadowed()
        .map(|(loser, winner)| Condition {
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
        })
        .collect();
    // issue 13: paths a regex-mode host cannot use, rewrite targets naming missing groups.
    shadowed.extend(vhost.regex_problems().iter().map(|problem| {
        let route = &vhost.routes[problem.route];
        let (reason, what) = if problem.rewrite_target {
            (Reason::InvalidAnnotation, "annotation rewrite-target, ")
        } else {
            (Reason::InvalidPath, "")
        };
        Condition {
            object: ObjectRef {
                kind: "Ingress".to_string(),
                namespace: route.origin.namespace.clone(),
                name: route.origin.name.clone(),
            },
            reason,
            message: format!(
                "{what}rule {} path {} on host {}: {}",
                route.origin.rule, route.origin.path, vhost.host, problem.message
            ),
        }
    }));
    Built {
        revs: contributors.iter().map(|(p, _)| p.rev).collect(),
        has_tls,
        vhost: Arc::new(vhost),
        shadowed,
        canaries: relevant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Snapshot;
    use crate::translate::{translate, Cache};

    fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(value).expect("a valid object"))
    }

    fn ingress(name: &str, timeout: &str) -> Arc<Ingress> {
        object(serde_json::json!({
            "metadata": {"name": name, "namespace": "n", "annotations": {
                "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout}},
            "spec": {"rules": [{"host": format!("{name}.example"), "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}
        }))
    }

    /// issue 11: shared backends of Ingresses that went away, or whose annotations changed,
    /// do not stay in the cache for good (they did until their Service changed).
    #[test]
    fn backends_nobody_uses_are_forgotten() {
        let service = object::<Service>(serde_json::json!({
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}]}
        }));
        let slice = object::<EndpointSlice>(serde_json::json!({
            "metadata": {"name": "s-1", "namespace": "n",
                         "labels": {"kubernetes.io/service-name": "s"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"port": 8080}]
        }));
        let snapshot = |ingresses: Vec<Arc<Ingress>>| Snapshot {
            ingresses,
            services: vec![service.clone()],
            endpoint_slices: vec![slice.clone()],
            ..Snapshot::default()
        };
        let options = crate::translate::Options {
            watch_without_class: true,
            ..Default::default()
        };
        let mut cache = Cache::default();
        let mut keep = Vec::new();
        for timeout in 1..=20 {
            let translation = translate(
                &snapshot(vec![ingress("a", &timeout.to_string()), ingress("b", "99")]),
                &options,
                &mut cache,
            );
            assert_eq!(translation.table.route_count(), 2);
            keep.push(translation);
        }
        // Every earlier table is still held: nothing it uses may be forgotten yet.
        assert_eq!(cache.state.with_policies.len(), 21);
        keep.clear();
        translate(&snapshot(vec![ingress("b", "99")]), &options, &mut cache);
        // At most "b"'s entry and "a"'s last one (held by the state's previous vhosts until the
        // next change) remain, not the 21 every edit left behind.
        assert!(cache.state.with_policies.len() <= 2);
        // Everything gone: forgotten by the translate after the one that dropped the last
        // Ingress (the state holds the previous vhosts until then).
        translate(&snapshot(vec![]), &options, &mut cache);
        translate(&Snapshot::default(), &options, &mut cache);
        assert!(cache.state.with_policies.is_empty());
        assert!(cache.state.backends.is_empty());
        assert!(cache.state.blocked.is_empty());
    }
}
