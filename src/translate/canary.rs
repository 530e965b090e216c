//! Canary Ingresses (issue 14): `canary: "true"` and the `canary-*` annotations, typed once
//! per translate into a [`Shaping`], and the merge step that attaches each canary to the main
//! backend it shadows.
//!
//! Where it sits: `incremental::derive` calls [`derive`] for a canary Ingress instead of
//! building routes (a canary creates none: `ingress-nginx.md` §2); `translate` calls
//! [`attach`] after the Parts are merged, and the vhost builder asks the [`Attachments`] for
//! each backend. ingress-nginx's model is followed (`internal/ingress/controller/controller.go`
//! `mergeAlternativeBackends`): a canary path attaches to the *backend* (Service and port) of
//! the route with the same host, path and pathType, and from then on every route using that
//! backend consults the canary; a backend takes one canary, the oldest (`balancer.lua` only
//! reads `alternative_backends[1]`).

use std::collections::HashMap;
use std::sync::Arc;

use http::header::HeaderName;
use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::{annotation, NGINX, PORTICO};
use super::backends::Backends;
use super::incremental::{Part, PartRule, Slot};
use super::{paths, Condition, ObjectRef, Reason};
use crate::routing::canary::{AffinityBehavior, Canary, HeaderRule, Shaping};
use crate::routing::{Backend, BackendRef, HostMatch, PathType, Policy, Target};

pub const CANARY: &str = "canary";
pub const BY_HEADER: &str = "canary-by-header";
pub const BY_HEADER_VALUE: &str = "canary-by-header-value";
pub const BY_HEADER_PATTERN: &str = "canary-by-header-pattern";
pub const BY_COOKIE: &str = "canary-by-cookie";
pub const WEIGHT: &str = "canary-weight";
pub const WEIGHT_TOTAL: &str = "canary-weight-total";
pub const AFFINITY_CANARY_BEHAVIOR: &str = "affinity-canary-behavior";

/// The annotations this module reads; `canary` itself decides whether the others apply.
pub const NAMES: [&str; 8] = [
    CANARY,
    BY_HEADER,
    BY_HEADER_VALUE,
    BY_HEADER_PATTERN,
    BY_COOKIE,
    WEIGHT,
    WEIGHT_TOTAL,
    AFFINITY_CANARY_BEHAVIOR,
];

/// The total ingress-nginx's Lua draws from unless `canary-weight-total` is larger.
const LUA_TOTAL: u32 = 100;

/// Go's `strconv.ParseBool`, which ingress-nginx's `GetBoolAnnotation` uses.
fn go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether the Ingress is a canary, and a message when `canary` has a value that is no
/// boolean (ingress-nginx then treats it as `false`: a normal Ingress).
pub(super) fn is_canary(ingress: &Ingress) -> (bool, Option<String>) {
    let Some((key, value)) = annotation(ingress, CANARY) else {
        return (false, None);
    };
    match go_bool(value.trim()) {
        Some(on) => (on, None),
        None => (
            false,
            Some(format!(
                "annotation {key}: {value:?} is not a boolean; the Ingress is not a canary"
            )),
        ),
    }
}

/// The messages for the `canary-*` annotations of an Ingress that is not a canary: ingress-nginx
/// refuses them ("configured but not enabled") and the Ingress serves normally.
pub(super) fn unused(ingress: &Ingress) -> Vec<String> {
    NAMES[1..]
        .iter()
        .filter_map(|name| annotation(ingress, name))
        .map(|(key, _)| {
            format!(
                "annotation {key}: ignored, the Ingress is not a canary (canary is not \"true\")"
            )
        })
        .collect()
}

/// The traffic shaping of a canary Ingress and one message per unusable annotation (the
/// default applies to it, as in ingress-nginx, which parses each annotation on its own).
pub(super) fn shaping(ingress: &Ingress) -> (Shaping, Vec<String>) {
    let mut shaping = Shaping::default();
    let mut invalid = Vec::new();
    let mut bad = |key: &str, value: &str, why: &str| {
        invalid.push(format!("annotation {key}: {value:?} {why}"));
    };
    if let Some((key, value)) = annotation(ingress, BY_HEADER) {
        // nginx's `$http_NAME` compares `-` and `_` alike: `ngx.var["http_" .. name]`.
        let name = value.trim().replace('_', "-");
        if !name.is_empty() {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => shaping.header = Some(name),
                Err(_) => bad(
                    &key,
                    value,
                    "is not a header name; no header selects the canary",
                ),
            }
        }
    }
    let header_value = annotation(ingress, BY_HEADER_VALUE).filter(|(_, v)| !v.is_empty());
    let pattern = annotation(ingress, BY_HEADER_PATTERN).filter(|(_, v)| !v.is_empty());
    if let Some((key, value)) = &header_value {
        if http::HeaderValue::from_str(value).is_ok() {
            shaping.rule = HeaderRule::Value(value.as_bytes().into());
        } else {
            bad(key, value, "is not a header value; ignored");
        }
    } else if let Some((key, value)) = &pattern {
        // ingress-nginx ignores the pattern when a value is set (`balancer.lua`).
        match crate::routing::compile_regex(value) {
            Ok(re) => shaping.rule = HeaderRule::Pattern(re),
            Err(why) => {
                shaping.rule = HeaderRule::Unusable;
                bad(
                    key,
                    value,
                    &format!(
                        "{why}; requests carrying the header go to the main backend (as ingress-nginx, whose Lua gets a regex error)"
                    ),
                );
            }
        }
    }
    if shaping.header.is_none() {
        for (key, value) in header_value.iter().chain(pattern.iter()) {
            bad(key, value, "has no effect without canary-by-header");
        }
    }
    if let Some((key, value)) = annotation(ingress, BY_COOKIE) {
        let name = value.trim();
        if !name.is_empty() {
            if name.bytes().all(is_cookie_name_byte) {
                shaping.cookie = Some(name.into());
            } else {
                bad(
                    &key,
                    value,
                    "is not a cookie name; no cookie selects the canary",
                );
            }
        }
    }
    let mut declared_total = None;
    if let Some((key, value)) = annotation(ingress, WEIGHT_TOTAL) {
        match value.trim().parse::<i64>() {
            Ok(total) if total > i64::from(LUA_TOTAL) => {
                shaping.total = u32::try_from(total).unwrap_or(u32::MAX);
                declared_total = Some(shaping.total);
            }
            Ok(total) if total == i64::from(LUA_TOTAL) => declared_total = Some(LUA_TOTAL),
            Ok(_) => bad(
                &key,
                value,
                "is below 100; ingress-nginx's Lua then draws from 100, and so does Portico",
            ),
            Err(_) => bad(&key, value, "is not an integer; the total is 100"),
        }
    }
    if let Some((key, value)) = annotation(ingress, WEIGHT) {
        match value.trim().parse::<i64>() {
            Ok(w) if w < 0 => bad(&key, value, "is negative; the weight is 0"),
            Ok(w) if w > i64::from(shaping.total) => {
                shaping.weight = shaping.total;
                bad(
                    &key,
                    value,
                    &format!(
                        "is above the total ({}); every request goes to the canary, as in ingress-nginx",
                        declared_total.unwrap_or(shaping.total)
                    ),
                );
            }
            Ok(w) => shaping.weight = u32::try_from(w).unwrap_or(0),
            Err(_) => bad(&key, value, "is not an integer; the weight is 0"),
        }
    }
    if let Some((key, value)) = annotation(ingress, AFFINITY_CANARY_BEHAVIOR) {
        match value.trim() {
            "sticky" => shaping.affinity = AffinityBehavior::Sticky,
            "legacy" => shaping.affinity = AffinityBehavior::Legacy,
            _ => bad(
                &key,
                value,
                "is neither \"sticky\" nor \"legacy\"; using sticky",
            ),
        }
    }
    (shaping, invalid)
}

/// RFC 6265 cookie-name: a token.
fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The ingress-nginx annotations of a canary Ingress other than the canary ones: ingress-nginx
/// creates no location for a canary, so they have no effect (the main Ingress's apply).
pub(super) fn ignored_on_canary(ingress: &Ingress) -> Vec<String> {
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    annotations
        .keys()
        .filter(|key| {
            key.strip_prefix(PORTICO)
                .or_else(|| key.strip_prefix(NGINX))
                .is_some_and(|name| !NAMES.contains(&name))
        })
        .map(|key| {
            format!(
                "annotation {key}: ignored on a canary Ingress (the main Ingress's settings apply to canary traffic, as in ingress-nginx)"
            )
        })
        .collect()
}

/// A canary Ingress's contribution: its shaping and its resolved backends, by host and path.
#[derive(Clone)]
pub(super) struct CanaryPart {
    pub shaping: Arc<Shaping>,
    pub default: Option<Slot>,
    pub paths: Vec<CanaryPath>,
}

#[derive(Clone)]
pub(super) struct CanaryPath {
    pub host: HostMatch,
    pub path: String,
    pub path_type: PathType,
    pub rule: usize,
    pub index: usize,
    pub slot: Slot,
}

/// Derives a canary Ingress's Part contents: no routes, only what [`attach`] needs. Problems
/// with its hosts, paths and Services are reported as for any Ingress.
pub(super) fn derive(
    ingress: &Ingress,
    namespace: &str,
    backends: &mut Backends<'_>,
    condition: &mut dyn FnMut(Reason, String),
) -> CanaryPart {
    let (shaping, invalid) = shaping(ingress);
    for message in invalid {
        condition(Reason::InvalidAnnotation, message);
    }
    for message in ignored_on_canary(ingress) {
        condition(Reason::UnsupportedAnnotation, message);
    }
    let mut resolve = |backend| {
        let resolved = backends.resolve(namespace, backend);
        let problem = resolved.1.clone();
        let reference = super::incremental::slot(&resolved);
        (
            Slot {
                backend: resolved.0,
                reference,
            },
            problem,
        )
    };
    let spec = ingress.spec.as_ref();
    let default = spec.and_then(|s| s.default_backend.as_ref()).map(|b| {
        let (slot, problem) = resolve(b);
        if let Some(p) = problem {
            condition(p.reason, format!("defaultBackend: {}", p.message));
        }
        slot
    });
    let mut paths_out = Vec::new();
    let rules = spec.and_then(|s| s.rules.as_deref()).unwrap_or_default();
    for (rule_index, rule) in rules.iter().enumerate() {
        let host = match paths::host_match(rule.host.as_deref()) {
            Ok(host) => host,
            Err(e) => {
                condition(Reason::InvalidHost, format!("rule {rule_index}: {e}"));
                continue;
            }
        };
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
            let (slot, problem) = resolve(&path.backend);
            if let Some(p) = problem {
                condition(
                    p.reason,
                    format!("rule {rule_index} path {path_index}: {}", p.message),
                );
            }
            paths_out.push(CanaryPath {
                host: host.clone(),
                path: normalised,
                path_type,
                rule: rule_index,
                index: path_index,
                slot,
            });
        }
    }
    CanaryPart {
        shaping: Arc::new(shaping),
        default,
        paths: paths_out,
    }
}

/// The canary part with its backends looked up again (their endpoints changed).
pub(super) fn rebind(part: &CanaryPart, backends: &mut Backends<'_>) -> CanaryPart {
    let mut part = part.clone();
    let slots = part
        .default
        .iter_mut()
        .chain(part.paths.iter_mut().map(|p| &mut p.slot));
    for slot in slots {
        if let Some(reference) = &slot.reference {
            slot.backend = backends.again(reference);
        }
    }
    part
}

/// What a main backend's canary is made of, before it is specialised to each route's policy.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Source {
    pub ingress: ObjectRef,
    pub backend: Arc<Backend>,
    pub shaping: Arc<Shaping>,
}

/// The canary of each main backend reference (the oldest canary that asked for it).
#[derive(Default)]
pub(super) struct Attachments {
    by_primary: HashMap<BackendRef, Arc<Source>>,
}

/// Attaches every canary Part to the main backends it names (ingress-nginx
/// `mergeAlternativeBackends`), oldest canary first. `contributors`: the serving rules of each
/// host in age order; `global`: the global default backend (spec §3.7).
pub(super) fn attach(
    parts: &[Arc<Part>],
    contributors: &super::incremental::Contributors<'_>,
    global: Option<&Arc<Backend>>,
    conditions: &mut Vec<Condition>,
) -> Attachments {
    let mut attachments = Attachments::default();
    for part in parts {
        let Some(canary) = &part.canary else {
            continue;
        };
        let mut say = |reason: Reason, message: String| {
            conditions.push(Condition {
                object: part.object.clone(),
                reason,
                message,
            });
        };
        if let Some(slot) = &canary.default {
            // ingress-nginx merges a catch-all canary into the default server's locations:
            // the hostless rules' routes and the global default backend.
            let mut primaries: Vec<&Arc<Backend>> = global.into_iter().collect();
            if let Some(rules) = contributors.get(&HostMatch::Any) {
                primaries.extend(
                    rules
                        .iter()
                        .flat_map(|(_, r)| r.routes.iter().map(|x| &x.0.backend)),
                );
            }
            let mut any = false;
            for primary in primaries {
                any |= attachments.add(part, canary, primary, slot, &mut say);
            }
            if !any {
                say(
                    Reason::CanaryWithoutMain,
                    "defaultBackend: no main Ingress serves the default server; this canary takes no traffic".to_string(),
                );
            }
        }
        for path in &canary.paths {
            // The route ingress-nginx would have as the location: same host, path and
            // pathType, the oldest Ingress's (spec §3.6 step 4).
            let main = contributors.get(&path.host).and_then(|rules| {
                rules.iter().find_map(|(_, rule)| {
                    rule.routes
                        .iter()
                        .map(|(r, _)| r)
                        .find(|r| r.path == path.path && r.path_type == path.path_type)
                })
            });
            let what = format!(
                "rule {} path {} ({:?} {} on host {})",
                path.rule, path.index, path.path_type, path.path, path.host
            );
            match main {
                None => say(
                    Reason::CanaryWithoutMain,
                    format!("{what}: no main Ingress serves this host and path; this canary path takes no traffic"),
                ),
                Some(route) => {
                    attachments.add(part, canary, &route.backend, &path.slot, &mut say);
                }
            }
        }
    }
    attachments
}

impl Attachments {
    pub fn is_empty(&self) -> bool {
        self.by_primary.is_empty()
    }

    /// Records `slot` as the canary of `primary`'s backend unless it has one; `false` when
    /// nothing was attached.
    fn add(
        &mut self,
        part: &Part,
        canary: &CanaryPart,
        primary: &Arc<Backend>,
        slot: &Slot,
        say: &mut dyn FnMut(Reason, String),
    ) -> bool {
        if primary.reference == slot.backend.reference {
            say(
                Reason::CanaryWithoutMain,
                format!(
                    "backend {}: the canary names the main route's own Service and port; no canary",
                    primary.reference
                ),
            );
            return false;
        }
        match self.by_primary.get(&primary.reference) {
            Some(existing) if existing.ingress != part.object => {
                say(
                    Reason::CanaryWithoutMain,
                    format!(
                        "backend {} already has the canary of older {}; ingress-nginx uses one canary per backend, this one takes no traffic there",
                        primary.reference, existing.ingress
                    ),
                );
                false
            }
            Some(_) => true,
            None => {
                self.by_primary.insert(
                    primary.reference.clone(),
                    Arc::new(Source {
                        ingress: part.object.clone(),
                        backend: slot.backend.clone(),
                        shaping: canary.shaping.clone(),
                    }),
                );
                true
            }
        }
    }

    /// The canaries the backends of these rules (and fallbacks) would get: the vhost is
    /// rebuilt when they change. Empty, without allocating, when there are no canaries.
    pub fn relevant(&self, rules: &[(&Part, &PartRule)]) -> Vec<Arc<Source>> {
        if self.by_primary.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<Arc<Source>> = Vec::new();
        let backends = rules.iter().flat_map(|(part, rule)| {
            part.default
                .iter()
                .map(|s| &s.backend)
                .chain(rule.routes.iter().map(|(r, _)| &r.backend))
        });
        for backend in backends {
            if let Some(source) = self.by_primary.get(&backend.reference) {
                if !found.iter().any(|f| Arc::ptr_eq(f, source)) {
                    found.push(source.clone());
                }
            }
        }
        found
    }

    /// `backend` with its canary attached, when it has one and can take traffic. ingress-nginx
    /// consults the canary only through a working main balancer: a main backend without
    /// endpoints (or one failing closed) answers as it would without a canary; a canary
    /// without endpoints is never chosen (`balancer.lua`: no alternative balancer).
    pub fn apply(&self, backend: &Arc<Backend>) -> Arc<Backend> {
        if self.by_primary.is_empty() {
            return backend.clone();
        }
        let Some(source) = self.by_primary.get(&backend.reference) else {
            return backend.clone();
        };
        if matches!(backend.target, Target::Unavailable(_))
            || matches!(source.backend.target, Target::Unavailable(_))
        {
            return backend.clone();
        }
        let canary = Canary {
            ingress: source.ingress.to_string_short(),
            backend: Arc::new(source.backend.with_policy(canary_policy(
                &backend.policy,
                &source.backend.reference,
                source.shaping.affinity,
            ))),
            shaping: source.shaping.clone(),
        };
        Arc::new(backend.with_policy(Arc::new(Policy {
            canary: Some(Arc::new(canary)),
            ..Policy::clone(&backend.policy)
        })))
    }
}

/// The canary backend's policy: the main route's (every location setting stays the main
/// Ingress's), with its cookie affinity as `affinity-canary-behavior` says. ingress-nginx
/// (`controller.go` `mergeAlternativeBackends`): `sticky` gives the canary the main backend's
/// affinity settings, so a client the canary served carries a cookie naming the canary and
/// stays there (`balancer.lua` `route_to_alternative_balancer`); `legacy` keeps the canary's
/// own, and a canary Ingress's other annotations are not read (docs/decisions.md), so none.
fn canary_policy(
    main: &Arc<Policy>,
    canary: &BackendRef,
    behavior: AffinityBehavior,
) -> Arc<Policy> {
    let Some(traffic) = main.traffic.as_deref().filter(|t| t.affinity.is_some()) else {
        return main.clone();
    };
    let mut traffic = traffic.clone();
    match behavior {
        AffinityBehavior::Sticky => {
            if let Some(affinity) = traffic.affinity.as_mut() {
                affinity.backend_key = super::affinity::backend_key(canary);
            }
        }
        AffinityBehavior::Legacy => traffic.affinity = None,
    }
    let traffic =
        (traffic.affinity.is_some() || traffic.hash_by.is_some()).then(|| Arc::new(traffic));
    Arc::new(Policy {
        traffic,
        ..Policy::clone(main)
    })
}

impl ObjectRef {
    /// `namespace/name`.
    fn to_string_short(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(pairs: &[(&str, &str)]) -> Ingress {
        let mut ing = Ingress::default();
        ing.metadata.namespace = Some("default".into());
        ing.metadata.annotations = Some(
            pairs
                .iter()
                .map(|(k, v)| (format!("{NGINX}{k}"), v.to_string()))
                .collect(),
        );
        ing
    }

    #[test]
    fn canary_takes_go_booleans() {
        assert!(is_canary(&ingress(&[("canary", "True")])).0);
        assert!(is_canary(&ingress(&[("canary", "1")])).0);
        assert!(!is_canary(&ingress(&[("canary", "false")])).0);
        let (on, why) = is_canary(&ingress(&[("canary", "yes")]));
        assert!(!on);
        assert!(why.unwrap().contains("not a boolean"));
        assert_eq!(is_canary(&ingress(&[])), (false, None));
    }

    #[test]
    fn weights_are_clamped_and_small_totals_count_as_100() {
        let (s, errors) = shaping(&ingress(&[("canary-weight", "150")]));
        assert_eq!((s.weight, s.total), (100, 100));
        assert_eq!(errors.len(), 1);
        let (s, errors) = shaping(&ingress(&[("canary-weight", "-3")]));
        assert_eq!(s.weight, 0);
        assert_eq!(errors.len(), 1);
        let (s, errors) = shaping(&ingress(&[
            ("canary-weight", "5"),
            ("canary-weight-total", "10"),
        ]));
        assert_eq!((s.weight, s.total), (5, 100));
        assert!(errors[0].contains("below 100"), "{errors:?}");
        let (s, errors) = shaping(&ingress(&[
            ("canary-weight", "100"),
            ("canary-weight-total", "200"),
        ]));
        assert_eq!((s.weight, s.total), (100, 200));
        assert!(errors.is_empty());
    }

    #[test]
    fn header_names_read_underscores_as_dashes() {
        let (s, errors) = shaping(&ingress(&[("canary-by-header", "X_Canary")]));
        assert_eq!(s.header.unwrap().as_str(), "x-canary");
        assert!(errors.is_empty());
        let (s, errors) = shaping(&ingress(&[("canary-by-header", "bad header")]));
        assert!(s.header.is_none());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn value_wins_over_pattern_and_bad_patterns_are_unusable() {
        let (s, _) = shaping(&ingress(&[
            ("canary-by-header", "h"),
            ("canary-by-header-value", "v"),
            ("canary-by-header-pattern", "(?=x)"),
        ]));
        assert_eq!(s.rule, HeaderRule::Value(Box::from(&b"v"[..])));
        let (s, errors) = shaping(&ingress(&[
            ("canary-by-header", "h"),
            ("canary-by-header-pattern", "a(?<=b)"),
        ]));
        assert_eq!(s.rule, HeaderRule::Unusable);
        assert!(errors[0].contains("look-around"), "{errors:?}");
        let (_, errors) = shaping(&ingress(&[("canary-by-header-value", "v")]));
        assert!(errors[0].contains("without canary-by-header"), "{errors:?}");
    }

    #[test]
    fn cookie_names_are_tokens_and_behaviour_is_checked() {
        let (s, errors) = shaping(&ingress(&[
            ("canary-by-cookie", "a;b"),
            ("affinity-canary-behavior", "legacy"),
        ]));
        assert!(s.cookie.is_none());
        assert_eq!(s.affinity, AffinityBehavior::Legacy);
        assert_eq!(errors.len(), 1);
        let (s, errors) = shaping(&ingress(&[("affinity-canary-behavior", "glue")]));
        assert_eq!(s.affinity, AffinityBehavior::Sticky);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn other_annotations_of_a_canary_are_named() {
        let ignored = ignored_on_canary(&ingress(&[
            ("canary", "true"),
            ("canary-weight", "3"),
            ("rewrite-target", "/"),
        ]));
        assert_eq!(ignored.len(), 1);
        assert!(ignored[0].contains("rewrite-target"));
    }
}
