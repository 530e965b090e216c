//! `RouteTable` and `VirtualHost`: host selection (spec §3.3), path precedence (spec §3.6) and
//! defaults (spec §3.7), precomputed so a lookup is a few hash probes.

use std::cmp::Reverse;
use std::sync::Arc;

use serde::Serialize;

/// Hash maps keyed by configuration strings. foldhash is several times faster than SipHash on
/// short strings; lookups with request-chosen keys cannot grow the map, so flooding does not apply.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use super::regex_mode::{self, RegexLocation, RegexMode, RegexProblem};
use super::{Backend, HostMatch, Route};

/// All routes for one rule host, merged across Ingresses (spec §3.8).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VirtualHost {
    pub host: HostMatch,
    /// Every route in precedence order (spec §3.6); shadowed ones included.
    pub routes: Vec<Route>,
    /// Per-vhost fallback (spec §3.7): used when no path matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Arc<Backend>>,
    /// Plain-HTTP requests that match no route (fallback or 404) get a 308 to HTTPS (spec
    /// §5.5). Set by translate after `new`; routes carry their own flag.
    #[serde(rename = "sslRedirect", skip_serializing_if = "std::ops::Not::not")]
    pub ssl_redirect: bool,
    /// Exact path → index of the winning route.
    #[serde(skip)]
    exact: HashMap<Box<str>, usize>,
    /// `exact_lengths[n]` is true when some exact path is `n` bytes long.
    #[serde(skip)]
    exact_lengths: Vec<bool>,
    /// Prefix key (path without one trailing `/`) → index of the winning route.
    #[serde(skip)]
    prefix: HashMap<Box<str>, usize>,
    /// `prefix_lengths[n]` is true when some prefix key is `n` bytes long: probes of other
    /// lengths cannot hit and are skipped.
    #[serde(skip)]
    prefix_lengths: Vec<bool>,
    /// Regex mode (issue 13): set when any route's Ingress has `use-regex` or
    /// `rewrite-target`; then every path of the host is a case-insensitive regex anchored at
    /// the start and the first one in ingress-nginx's location order wins. `None`: spec
    /// §3.5/§3.6 matching above.
    #[serde(rename = "regexLocations", skip_serializing_if = "Option::is_none")]
    regex: Option<Arc<RegexMode>>,
    /// `app-root` of the host: a request for `/` is redirected there (ingress-nginx writes
    /// the redirect at server level, so it applies whichever location would match).
    #[serde(rename = "appRoot", skip_serializing_if = "Option::is_none")]
    pub app_root: Option<Box<str>>,
    /// `auth-tls-*` (issue 15): client certificates for the whole host, from its oldest
    /// Ingress that sets them. Set by translate after `new`.
    #[serde(rename = "clientAuth", skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<Arc<super::client_auth::ClientAuth>>,
    /// What the host changes in its handshake (client certificates, `ssl-ciphers`,
    /// `ssl-prefer-server-ciphers`; issue 15): `None` keeps the shared configuration. Set by
    /// translate after `new`.
    #[serde(
        rename = "tls",
        skip_serializing_if = "super::tls_policy::HostTls::unshown"
    )]
    pub tls: Option<Arc<super::tls_policy::HostTls>>,
    /// Paths and rewrite targets regex mode could not use; translate reports them.
    #[serde(skip)]
    regex_problems: Vec<RegexProblem>,
}

impl VirtualHost {
    /// Builds a vhost from routes given in age order (spec §0: oldest Ingress first, then rule
    /// index, then path index). The sort is stable, so age order decides ties (spec §3.6 step 4).
    pub fn new(host: HostMatch, mut routes: Vec<Route>, fallback: Option<Arc<Backend>>) -> Self {
        let precedence = |r: &Route| {
            (
                Reverse(r.effective_len()),
                r.path_type.is_prefix(),
                Reverse(r.path.len()),
            )
        };
        let rewriting = routes.iter().any(|r| r.backend.policy.rewrite.is_some());
        let mut regex = None;
        let mut app_root = None;
        let mut regex_problems = Vec::new();
        if rewriting {
            // issue 13: ingress-nginx's locations are computed from the routes in age order.
            let specs = regex_mode::nginx_locations(&routes);
            let mut order: Vec<usize> = (0..routes.len()).collect();
            order.sort_by_key(|&i| precedence(&routes[i]));
            let mut position = vec![0; routes.len()];
            for (sorted, &age) in order.iter().enumerate() {
                position[age] = sorted;
            }
            // ingress-nginx writes one `if ($uri = /) { return 302 ... }` per location with
            // an app root, in location order: the first one answers.
            app_root = specs.iter().find_map(|spec| {
                let rewrite = routes[spec.route].backend.policy.rewrite.as_deref()?;
                rewrite.app_root.as_deref().map(Box::from)
            });
            let enforce = routes.iter().any(|r| {
                r.backend
                    .policy
                    .rewrite
                    .as_deref()
                    .is_some_and(|rw| rw.enforces_regex())
            });
            if enforce {
                let by_age: Vec<&Route> = routes.iter().collect();
                regex = Some(Arc::new(RegexMode::build(
                    specs,
                    &by_age,
                    &position,
                    &mut regex_problems,
                )));
            }
            let mut slots: Vec<Option<Route>> = routes.into_iter().map(Some).collect();
            routes = order
                .iter()
                .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
                .collect();
        } else {
            routes.sort_by_key(precedence);
        }
        let mut exact = HashMap::default();
        let mut prefix = HashMap::default();
        let mut prefix_lengths = Vec::new();
        let mut exact_lengths = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            if route.path_type.is_prefix() {
                let key = route.prefix_key();
                mark_length(&mut prefix_lengths, key.len());
                prefix.entry(key.into()).or_insert(i);
            } else {
                mark_length(&mut exact_lengths, route.path.len());
                exact.entry(route.path.as_str().into()).or_insert(i);
            }
        }
        VirtualHost {
            host,
            routes,
            fallback,
            ssl_redirect: false,
            exact,
            exact_lengths,
            prefix,
            prefix_lengths,
            regex,
            app_root,
            client_auth: None,
            tls: None,
            regex_problems,
        }
    }

    /// The host's regex mode, when it has one (issue 13).
    pub fn regex(&self) -> Option<&RegexMode> {
        self.regex.as_deref()
    }

    /// Paths and rewrite targets regex mode could not use (route index, message).
    pub fn regex_problems(&self) -> &[RegexProblem] {
        &self.regex_problems
    }

    /// The winning route and, on a regex-mode host, the location that matched.
    pub fn lookup_location(&self, path: &str) -> Option<(&Route, Option<&RegexLocation>)> {
        if let Some(regex) = &self.regex {
            let location = &regex.locations[regex.lookup(path)?];
            return Some((&self.routes[location.route], Some(location)));
        }
        self.lookup_index(path).map(|i| (&self.routes[i], None))
    }

    /// The route that wins for a normalised request path, if any (spec §3.5, §3.6).
    pub fn lookup(&self, path: &str) -> Option<&Route> {
        self.lookup_location(path).map(|(route, _)| route)
    }

    fn lookup_index(&self, path: &str) -> Option<usize> {
        if self.routes.len() <= LINEAR_SCAN_MAX {
            return self.scan(path);
        }
        self.probe(path)
    }

    /// The definition of spec §3.6: the first route in precedence order that matches.
    fn scan(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.matches(path))
    }

    /// The same answer as `scan`, in a few hash probes however many routes there are.
    fn probe(&self, path: &str) -> Option<usize> {
        // An Exact match has effective length len(path); no Prefix can be longer, and at equal
        // length Exact wins (spec §3.6 steps 1–2).
        if has_length(&self.exact_lengths, path.len()) {
            if let Some(&i) = self.exact.get(path) {
                return Some(i);
            }
        }
        if self.prefix.is_empty() {
            return None;
        }
        // Candidate prefix keys are the path itself and every part of it that is followed by a
        // `/`, longest first: the first hit has the greatest effective length.
        let may_hit = |len: usize| has_length(&self.prefix_lengths, len);
        if may_hit(path.len()) {
            if let Some(&i) = self.prefix.get(path) {
                return Some(i);
            }
        }
        // `memrchr`: `rmatch_indices('/')` compiled to a char searcher that cost a quarter more
        // per lookup once this function was inlined differently (issue 13's benchmark).
        for slash in memchr::memrchr_iter(b'/', path.as_bytes()) {
            if !may_hit(slash) {
                continue;
            }
            if let Some(&i) = self.prefix.get(&path[..slash]) {
                return Some(i);
            }
        }
        // Prefix `/` matches every path, even one not starting with `/` (`OPTIONS *`).
        if !path.starts_with('/') {
            return self.prefix.get("").copied();
        }
        None
    }

    /// Both lookup strategies, for tests that pin them to each other.
    #[cfg(test)]
    pub(crate) fn lookup_both(&self, path: &str) -> (Option<usize>, Option<usize>) {
        (self.scan(path), self.probe(path))
    }

    /// Routes that can never be chosen: another route with the same match set outranks them.
    /// On a regex-mode host, a route is shadowed by an older one with the same path and
    /// pathType (ingress-nginx keeps the first such location); the sort keeps age order among
    /// them.
    pub fn shadowed(&self) -> impl Iterator<Item = (&Route, &Route)> {
        let regex = self.regex.is_some();
        self.routes.iter().enumerate().filter_map(move |(i, r)| {
            if regex {
                let w = self
                    .routes
                    .iter()
                    .position(|o| o.path == r.path && o.path_type == r.path_type)?;
                return (w != i).then(|| (r, &self.routes[w]));
            }
            let winner = if r.path_type.is_prefix() {
                self.prefix.get(r.prefix_key())
            } else {
                self.exact.get(r.path.as_str())
            };
            match winner {
                Some(&w) if w != i => Some((r, &self.routes[w])),
                _ => None,
            }
        })
    }
}

/// Up to this many routes, scanning them in order beats hashing (fewer cache misses):
/// `cargo bench --bench matcher`.
const LINEAR_SCAN_MAX: usize = 8;

fn mark_length(lengths: &mut Vec<bool>, len: usize) {
    if lengths.len() <= len {
        lengths.resize(len + 1, false);
    }
    lengths[len] = true;
}

fn has_length(lengths: &[bool], len: usize) -> bool {
    lengths.get(len).copied().unwrap_or(false)
}

/// What the table decided for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision<'a> {
    /// A path of the selected vhost matched.
    Route {
        vhost: &'a VirtualHost,
        route: &'a Route,
        /// On a regex-mode host, the location that matched (issue 13): the proxy rewrites
        /// from it, `explain` names it.
        location: Option<&'a RegexLocation>,
    },
    /// The vhost was selected but no path matched; its fallback backend serves (spec §3.7).
    Fallback {
        vhost: &'a VirtualHost,
        backend: &'a Arc<Backend>,
    },
    /// No vhost (or a hostless miss): the global default backend serves (spec §3.7).
    Default {
        vhost: Option<&'a VirtualHost>,
        backend: &'a Arc<Backend>,
    },
    /// Nothing serves: 404.
    NotFound { vhost: Option<&'a VirtualHost> },
}

impl<'a> Decision<'a> {
    pub fn backend(&self) -> Option<&'a Arc<Backend>> {
        match *self {
            Decision::Route { route, .. } => Some(&route.backend),
            Decision::Fallback { backend, .. } | Decision::Default { backend, .. } => Some(backend),
            Decision::NotFound { .. } => None,
        }
    }

    pub fn vhost(&self) -> Option<&'a VirtualHost> {
        match *self {
            Decision::Route { vhost, .. } | Decision::Fallback { vhost, .. } => Some(vhost),
            Decision::Default { vhost, .. } | Decision::NotFound { vhost } => vhost,
        }
    }

    /// Whether a plain-HTTP request with this decision is redirected to HTTPS (spec §5.5).
    pub fn ssl_redirect(&self) -> bool {
        match *self {
            Decision::Route { route, .. } => route.ssl_redirect,
            Decision::Fallback { vhost, .. } | Decision::NotFound { vhost: Some(vhost) } => {
                vhost.ssl_redirect
            }
            // The global default serves requests of no vhost, or of the hostless one, which
            // never has TLS.
            Decision::Default { .. } | Decision::NotFound { vhost: None } => false,
        }
    }

    pub fn route(&self) -> Option<&'a Route> {
        match *self {
            Decision::Route { route, .. } => Some(route),
            _ => None,
        }
    }
}

/// The whole routing table: virtual hosts plus the global default backend.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// Sorted: exact hosts, then wildcards, then the hostless vhost. Behind `Arc` so that an
    /// incremental translate reuses the vhosts a change did not touch.
    vhosts: Vec<Arc<VirtualHost>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_backend: Option<Arc<Backend>>,
    #[serde(skip)]
    hosts: Arc<HostIndex>,
    /// `server-alias`: `(alias, rule host)`; the alias selects the rule host's vhost.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<(HostMatch, HostMatch)>,
    /// `from-to-www-redirect`: request host → the rule host it redirects to.
    #[serde(
        rename = "wwwRedirects",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    www: std::collections::BTreeMap<Box<str>, Box<str>>,
}

/// Host name → index of its vhost: what `select_vhost` probes per request. Behind an `Arc` so
/// that a table with the same hosts as an earlier one shares it: a change to one Ingress does
/// not rebuild a map of every host (issue 11).
#[derive(Debug, Clone, Default)]
pub struct HostIndex {
    exact: HashMap<Box<str>, usize>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<Box<str>, usize>,
    hostless: Option<usize>,
}

impl HostIndex {
    fn new(vhosts: &[Arc<VirtualHost>]) -> Self {
        let mut index = HostIndex::default();
        for (i, vhost) in vhosts.iter().enumerate() {
            match &vhost.host {
                HostMatch::Exact(h) => {
                    index.exact.insert(h.as_str().into(), i);
                }
                HostMatch::Wildcard(s) => {
                    index.wildcard.insert(s.as_str().into(), i);
                }
                HostMatch::Any => index.hostless = Some(i),
            }
        }
        index
    }

    /// Whether this is exactly the index of `vhosts` (a probe per host, no allocation).
    fn indexes(&self, vhosts: &[Arc<VirtualHost>]) -> bool {
        let len = self.exact.len() + self.wildcard.len() + usize::from(self.hostless.is_some());
        len == vhosts.len()
            && vhosts
                .iter()
                .enumerate()
                .all(|(i, vhost)| match &vhost.host {
                    HostMatch::Exact(h) => self.exact.get(h.as_str()) == Some(&i),
                    HostMatch::Wildcard(s) => self.wildcard.get(s.as_str()) == Some(&i),
                    HostMatch::Any => self.hostless == Some(i),
                })
    }
}

/// Equal routing: the same vhosts, default backend, aliases and www redirects. The host maps
/// are functions of those and are not compared. A vhost (or backend) shared with the other
/// table is equal by pointer: an incremental translate reuses every vhost a change did not
/// touch, so comparing a new table with the published one costs pointers, not routes (issue 11).
impl PartialEq for RouteTable {
    fn eq(&self, other: &Self) -> bool {
        self.vhosts.len() == other.vhosts.len()
            && self
                .vhosts
                .iter()
                .zip(&other.vhosts)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
            && match (&self.default_backend, &other.default_backend) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (None, None) => true,
                _ => false,
            }
            && self.aliases == other.aliases
            && self.www == other.www
    }
}

impl RouteTable {
    /// Builds the table. Each host should appear once (translate merges); if one repeats, the
    /// first wins.
    pub fn new(vhosts: Vec<VirtualHost>, default_backend: Option<Arc<Backend>>) -> Self {
        RouteTable::from_shared(vhosts.into_iter().map(Arc::new).collect(), default_backend)
    }

    /// [`RouteTable::new`] from vhosts that may be shared with an earlier table.
    pub fn from_shared(
        vhosts: Vec<Arc<VirtualHost>>,
        default_backend: Option<Arc<Backend>>,
    ) -> Self {
        RouteTable::from_shared_with(vhosts, default_backend, None)
    }

    /// [`RouteTable::from_shared`], sharing `index` (an earlier table's [`RouteTable::host_index`])
    /// when it is exactly the index of these vhosts, which is checked.
    pub fn from_shared_with(
        mut vhosts: Vec<Arc<VirtualHost>>,
        default_backend: Option<Arc<Backend>>,
        index: Option<Arc<HostIndex>>,
    ) -> Self {
        vhosts.sort_by(|a, b| a.host.cmp(&b.host));
        vhosts.dedup_by(|later, first| later.host == first.host);
        let hosts = match index {
            Some(index) if index.indexes(&vhosts) => index,
            _ => Arc::new(HostIndex::new(&vhosts)),
        };
        RouteTable {
            vhosts,
            default_backend,
            hosts,
            aliases: Vec::new(),
            www: Default::default(),
        }
    }

    /// The host index, for [`RouteTable::from_shared_with`]; take it before
    /// [`RouteTable::with_aliases`], which adds the aliases to it.
    pub fn host_index(&self) -> Arc<HostIndex> {
        self.hosts.clone()
    }

    /// Adds `(alias, rule host)` names: an alias selects its rule host's vhost, exactly as
    /// that host does (`server-alias`). An alias that is a rule host, or names a host with no
    /// vhost, is left out.
    pub fn with_aliases(mut self, aliases: Vec<(HostMatch, HostMatch)>) -> Self {
        if aliases.is_empty() {
            return self;
        }
        let mut kept = Vec::with_capacity(aliases.len());
        let index = Arc::make_mut(&mut self.hosts);
        for (alias, host) in aliases {
            let Ok(i) = self.vhosts.binary_search_by(|v| v.host.cmp(&host)) else {
                continue;
            };
            let added = match &alias {
                HostMatch::Exact(h) if !index.exact.contains_key(h.as_str()) => {
                    index.exact.insert(h.as_str().into(), i);
                    true
                }
                HostMatch::Wildcard(s) if !index.wildcard.contains_key(s.as_str()) => {
                    index.wildcard.insert(s.as_str().into(), i);
                    true
                }
                _ => false,
            };
            if added {
                kept.push((alias, host));
            }
        }
        self.aliases = kept;
        self
    }

    /// Adds `from-to-www-redirect` names: `(from, to)`, both normalised exact hosts.
    pub fn with_www_redirects(mut self, pairs: Vec<(String, String)>) -> Self {
        self.www = pairs
            .into_iter()
            .map(|(from, to)| (from.into_boxed_str(), to.into_boxed_str()))
            .collect();
        self
    }

    /// The rule host a request for `host` (normalised) is redirected to by
    /// `from-to-www-redirect`; one emptiness check when no Ingress asks for it.
    pub fn www_redirect(&self, host: &str) -> Option<&str> {
        if self.www.is_empty() {
            return None;
        }
        self.www.get(host).map(|to| &**to)
    }

    /// `(alias, rule host)` pairs (`server-alias`).
    pub fn aliases(&self) -> &[(HostMatch, HostMatch)] {
        &self.aliases
    }

    pub fn vhosts(&self) -> &[Arc<VirtualHost>] {
        &self.vhosts
    }

    pub fn default_backend(&self) -> Option<&Arc<Backend>> {
        self.default_backend.as_ref()
    }

    /// Number of routes over all vhosts.
    pub fn route_count(&self) -> usize {
        self.vhosts.iter().map(|v| v.routes.len()).sum()
    }

    /// The vhost for a normalised match host: exact, then one-label wildcard, then hostless
    /// (spec §3.3).
    pub fn select_vhost(&self, host: &str) -> Option<&VirtualHost> {
        let index = &*self.hosts;
        if let Some(&i) = index.exact.get(host) {
            return Some(&self.vhosts[i]);
        }
        if !index.wildcard.is_empty() {
            if let Some(dot) = host.find('.') {
                if dot > 0 {
                    if let Some(&i) = index.wildcard.get(&host[dot + 1..]) {
                        return Some(&self.vhosts[i]);
                    }
                }
            }
        }
        index.hostless.map(|i| &*self.vhosts[i])
    }

    /// The decision for a normalised match host and path (spec §3.3–3.7).
    pub fn decide(&self, host: &str, path: &str) -> Decision<'_> {
        let vhost = self.select_vhost(host);
        if let Some(vhost) = vhost {
            if let Some((route, location)) = vhost.lookup_location(path) {
                return Decision::Route {
                    vhost,
                    route,
                    location,
                };
            }
            if let Some(backend) = &vhost.fallback {
                return Decision::Fallback { vhost, backend };
            }
            // No fall-through from an exact or wildcard vhost to a less specific one (spec §3.3).
            if vhost.host != HostMatch::Any {
                return Decision::NotFound { vhost: Some(vhost) };
            }
        }
        match &self.default_backend {
            Some(backend) => Decision::Default { vhost, backend },
            None => Decision::NotFound { vhost },
        }
    }
}
