//! Issue 14: `affinity` (cookie), `affinity-mode`, `session-cookie-*`, `upstream-hash-by*` and
//! the scope of these and `load-balance`: typed here, once per translate, into the
//! [`Traffic`] of each backend's [`Policy`] (applied by `proxy/affinity.rs`).
//!
//! Scope, as ingress-nginx's `controller.go` builds its upstreams (one per Service and port),
//! walking Ingresses oldest first:
//! - `load-balance` and `upstream-hash-by*` come from the first Ingress that routes to the
//!   Service port (`createUpstreams`: the upstream is made once, by that Ingress, whether it
//!   sets them or not);
//! - cookie affinity is on when any Ingress routing to it sets `affinity: cookie`
//!   (`createServers`: `AffinityType` taken once when empty); `affinity-mode` from the first
//!   that sets one; the `session-cookie-*` attributes from the last with `affinity: cookie`
//!   (they are overwritten for each such Ingress);
//! - the cookie is issued only on the paths of Ingresses that set `affinity: cookie`
//!   (`sticky.lua` `should_set_cookie`); the others follow a cookie they are sent.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use super::annotations::{annotation, NGINX, PORTICO};
use crate::routing::traffic::{stable_hash, Affinity, HashBy, HashPiece, SameSite};
use crate::routing::{BackendRef, Balance, Policy, PortRef, Traffic};

pub const AFFINITY: &str = "affinity";
pub const AFFINITY_MODE: &str = "affinity-mode";
pub const COOKIE_NAME: &str = "session-cookie-name";
pub const COOKIE_PATH: &str = "session-cookie-path";
pub const COOKIE_DOMAIN: &str = "session-cookie-domain";
pub const COOKIE_SAMESITE: &str = "session-cookie-samesite";
pub const COOKIE_CONDITIONAL_SAMESITE_NONE: &str = "session-cookie-conditional-samesite-none";
pub const COOKIE_SECURE: &str = "session-cookie-secure";
pub const COOKIE_MAX_AGE: &str = "session-cookie-max-age";
pub const COOKIE_EXPIRES: &str = "session-cookie-expires";
pub const COOKIE_CHANGE_ON_FAILURE: &str = "session-cookie-change-on-failure";
pub const HASH_BY: &str = "upstream-hash-by";
pub const HASH_BY_SUBSET: &str = "upstream-hash-by-subset";
pub const HASH_BY_SUBSET_SIZE: &str = "upstream-hash-by-subset-size";

/// The annotations this module reads (registered in `annotations::IMPLEMENTED`).
pub const NAMES: &[&str] = &[
    AFFINITY,
    AFFINITY_MODE,
    COOKIE_NAME,
    COOKIE_PATH,
    COOKIE_DOMAIN,
    COOKIE_SAMESITE,
    COOKIE_CONDITIONAL_SAMESITE_NONE,
    COOKIE_SECURE,
    COOKIE_MAX_AGE,
    COOKIE_EXPIRES,
    COOKIE_CHANGE_ON_FAILURE,
    HASH_BY,
    HASH_BY_SUBSET,
    HASH_BY_SUBSET_SIZE,
];

/// ingress-nginx's default cookie name (`sessionaffinity/main.go`).
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";
/// ingress-nginx's default `upstream-hash-by-subset-size`.
const DEFAULT_SUBSET_SIZE: usize = 3;
/// Most endpoints a subset may ask for (a bigger one is every endpoint anyway).
const MAX_SUBSET_SIZE: usize = 1024;
/// Longest template or cookie attribute accepted.
const MAX_LEN: usize = 256;

/// Why `load-balance: VALUE` is refused, for the values ingress-nginx has or had that are not
/// `round_robin` / `ewma` (`loadbalancing/main.go` accepts the balancer implementations'
/// names; older releases had nginx's `least_conn` and `ip_hash`).
pub fn refused_balance(value: &str) -> &'static str {
    match value {
        "chash" | "chashsubset" => {
            "is chosen by upstream-hash-by (and -subset), not by load-balance"
        }
        "sticky_balanced" | "sticky_persistent" => {
            "is chosen by affinity: cookie (and affinity-mode), not by load-balance"
        }
        "least_conn" => "is no longer an ingress-nginx balancer; \"ewma\" favours the least loaded",
        "ip_hash" => "is no longer an ingress-nginx balancer; use upstream-hash-by: $remote_addr",
        _ => "is neither \"round_robin\" nor \"ewma\"",
    }
}

/// What one Ingress asks for, parsed from its own annotations.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Own {
    pub hash_by: Option<HashBy>,
    /// `affinity: cookie` with its cookie settings (`issues`/`backend_key` filled per backend).
    pub cookie: Option<Affinity>,
    /// `affinity-mode`: `Some(true)` persistent, `Some(false)` balanced.
    pub persistent: Option<bool>,
}

/// Whether the Ingress sets any annotation of this module or `load-balance` (the scope is
/// only worked out when some Ingress does).
fn sets_any(ingress: &Ingress) -> bool {
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return false;
    };
    annotations.keys().any(|k| {
        k.strip_prefix(PORTICO)
            .or_else(|| k.strip_prefix(NGINX))
            .is_some_and(|n| n == super::annotations::LOAD_BALANCE || NAMES.contains(&n))
    })
}

/// Parses the Ingress's annotations; each unusable value is a message (the default applies).
pub(super) fn parse(ingress: &Ingress, invalid: &mut dyn FnMut(&str, &str, &str)) -> Own {
    let mut own = Own::default();
    if !sets_any(ingress) {
        return own;
    }
    let get = |name: &str| annotation(ingress, name);
    let boolean = |name: &str, invalid: &mut dyn FnMut(&str, &str, &str)| -> bool {
        match get(name) {
            None => false,
            Some((key, v)) => super::configmap::parse_bool(v).unwrap_or_else(|| {
                invalid(&key, v, "is not a boolean");
                false
            }),
        }
    };

    if let Some((key, value)) = get(HASH_BY) {
        match parse_template(value) {
            Ok(pieces) => {
                let subset =
                    boolean(HASH_BY_SUBSET, invalid).then(|| match get(HASH_BY_SUBSET_SIZE) {
                        None => DEFAULT_SUBSET_SIZE,
                        Some((key, v)) => match v.trim().parse::<usize>() {
                            Ok(n) if (1..=MAX_SUBSET_SIZE).contains(&n) => n,
                            _ => {
                                invalid(&key, v, "is not a subset size from 1 to 1024");
                                DEFAULT_SUBSET_SIZE
                            }
                        },
                    });
                own.hash_by = Some(HashBy {
                    text: value.to_string(),
                    pieces,
                    subset,
                });
            }
            Err(why) => invalid(&key, value, &why),
        }
    }

    if let Some((key, value)) = get(AFFINITY_MODE) {
        match value.trim() {
            "balanced" => own.persistent = Some(false),
            "persistent" => own.persistent = Some(true),
            _ => invalid(&key, value, "is neither \"balanced\" nor \"persistent\""),
        }
    }
    let Some((key, value)) = get(AFFINITY) else {
        return own;
    };
    if value.trim() != "cookie" {
        invalid(&key, value, "is not \"cookie\" (the only affinity type)");
        return own;
    }
    let mut cookie = Affinity {
        persistent: false,
        name: DEFAULT_COOKIE_NAME.to_string(),
        path: None,
        domain: None,
        samesite: None,
        conditional_samesite_none: false,
        secure: false,
        max_age: None,
        expires: None,
        change_on_failure: false,
        issues: true,
        backend_key: String::new(),
    };
    if let Some((key, v)) = get(COOKIE_NAME) {
        let v = v.trim();
        if !v.is_empty() && v.len() <= MAX_LEN && v.bytes().all(is_token_byte) {
            cookie.name = v.to_string();
        } else {
            invalid(
                &key,
                v,
                "is not a cookie name (letters, digits, !#$%&'*+-.^_`|~)",
            );
        }
    }
    if let Some((key, v)) = get(COOKIE_PATH) {
        let v = v.trim();
        if v.starts_with('/') && v.len() <= MAX_LEN && v.bytes().all(is_attribute_byte) {
            cookie.path = Some(v.to_string());
        } else {
            invalid(
                &key,
                v,
                "is not a cookie path (starts with /, no ; or spaces)",
            );
        }
    }
    if let Some((key, v)) = get(COOKIE_DOMAIN) {
        let v = v.trim();
        let bare = v.strip_prefix('.').unwrap_or(v);
        if !bare.is_empty()
            && v.len() <= MAX_LEN
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            cookie.domain = Some(v.to_string());
        } else {
            invalid(&key, v, "is not a domain name");
        }
    }
    if let Some((key, v)) = get(COOKIE_SAMESITE) {
        match v.trim().to_ascii_lowercase().as_str() {
            "none" => cookie.samesite = Some(SameSite::None),
            "lax" => cookie.samesite = Some(SameSite::Lax),
            "strict" => cookie.samesite = Some(SameSite::Strict),
            _ => invalid(&key, v, "is not one of None, Lax, Strict"),
        }
    }
    cookie.conditional_samesite_none = boolean(COOKIE_CONDITIONAL_SAMESITE_NONE, invalid);
    cookie.secure = boolean(COOKIE_SECURE, invalid);
    cookie.change_on_failure = boolean(COOKIE_CHANGE_ON_FAILURE, invalid);
    for (name, slot) in [
        (COOKIE_MAX_AGE, &mut cookie.max_age),
        (COOKIE_EXPIRES, &mut cookie.expires),
    ] {
        if let Some((key, v)) = get(name) {
            // ingress-nginx `affinityCookieExpiresRegex`: a whole number of seconds.
            match v.trim().parse::<i64>() {
                Ok(n) if n.unsigned_abs() <= 10 * 365 * 86_400 => *slot = Some(n),
                _ => invalid(&key, v, "is not a whole number of seconds (up to 10 years)"),
            }
        }
    }
    own.cookie = Some(cookie);
    own
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte a cookie attribute value may hold (RFC 6265 `av-octet` without `;`), no space.
fn is_attribute_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && b != b';' && b != b','
}

/// An nginx complex value (`$request_uri`, `${host}-x`, `$http_x_user`, text) into pieces.
/// Only the variables [`HashPiece`] names are known; anything else is refused.
pub fn parse_template(text: &str) -> Result<Vec<HashPiece>, String> {
    if text.trim().is_empty() {
        return Err("is empty".to_string());
    }
    if text.len() > MAX_LEN {
        return Err("is longer than 256 bytes".to_string());
    }
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| "has a ${ without its }".to_string())?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if name.is_empty() {
            return Err("has a $ not followed by a variable name".to_string());
        }
        let piece = variable(name)
            .ok_or_else(|| format!("uses ${name}, which Portico does not hash on"))?;
        if !literal.is_empty() {
            pieces.push(HashPiece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(piece);
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(HashPiece::Literal(literal));
    }
    Ok(pieces)
}

fn variable(name: &str) -> Option<HashPiece> {
    let lower = name.to_ascii_lowercase();
    let named = |prefix: &str| {
        lower
            .strip_prefix(prefix)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    };
    Some(match lower.as_str() {
        "request_uri" => HashPiece::RequestUri,
        "uri" | "document_uri" => HashPiece::Uri,
        "args" | "query_string" => HashPiece::Args,
        "host" => HashPiece::Host,
        "remote_addr" | "binary_remote_addr" => HashPiece::RemoteAddr,
        "scheme" => HashPiece::Scheme,
        "request_method" => HashPiece::Method,
        _ => {
            if let Some(h) = named("http_") {
                HashPiece::Header(h.replace('_', "-"))
            } else if let Some(c) = name.strip_prefix("cookie_").filter(|n| !n.is_empty()) {
                // Cookie and argument names are case-sensitive in nginx.
                HashPiece::Cookie(c.to_string())
            } else if let Some(a) = name.strip_prefix("arg_").filter(|n| !n.is_empty()) {
                HashPiece::Arg(a.to_string())
            } else {
                return None;
            }
        }
    })
}

/// The Service-scoped settings of one backend, for the Ingresses that issue the cookie and
/// for those that do not.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    balance: Option<Balance>,
    traffic: [Option<Arc<Traffic>>; 2],
}

/// Per backend (Service and port), the settings ingress-nginx would give its upstream. Empty
/// (and free) when no owned Ingress sets any of them.
#[derive(Debug, Default)]
pub(super) struct Scope {
    entries: HashMap<BackendRef, Entry>,
}

/// What one Ingress's Part was derived with: its backends' scoped settings, sorted. A Part
/// whose view changed (another Ingress now decides for a Service) is derived again.
pub(super) type View = Vec<(BackendRef, Option<Balance>, Option<Arc<Traffic>>)>;

impl Scope {
    /// Walks the owned Ingresses, oldest first (ingress-nginx `sortIngressSlice`).
    pub fn new(ingresses: &[&Arc<Ingress>]) -> Scope {
        if !ingresses.iter().any(|i| sets_any(i)) {
            return Scope::default();
        }
        #[derive(Default)]
        struct Acc {
            first: Option<(Option<Balance>, Option<HashBy>)>,
            cookie: bool,
            persistent: Option<bool>,
            settings: Option<Affinity>,
        }
        let mut acc: HashMap<BackendRef, Acc> = HashMap::new();
        for ingress in ingresses {
            let own = parse(ingress, &mut |_, _, _| {});
            let balance = balance_of(ingress);
            let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
            let spec = ingress.spec.as_ref();
            let default = spec.and_then(|s| s.default_backend.as_ref());
            let paths = rule_backends(ingress);
            for (reference, on_path) in default
                .into_iter()
                .map(|b| (b, false))
                .chain(paths.into_iter().map(|b| (b, true)))
                .filter_map(|(b, on_path)| Some((reference(namespace, b)?, on_path)))
            {
                let a = acc.entry(reference).or_default();
                a.first
                    .get_or_insert_with(|| (balance, own.hash_by.clone()));
                // `createServers` walks rule paths only.
                if on_path {
                    if a.persistent.is_none() {
                        a.persistent = own.persistent;
                    }
                    if let Some(cookie) = &own.cookie {
                        a.cookie = true;
                        a.settings = Some(cookie.clone());
                    }
                }
            }
        }
        let entries = acc
            .into_iter()
            .filter_map(|(reference, a)| {
                let (balance, hash_by) = a.first.unwrap_or_default();
                let affinity = a.settings.filter(|_| a.cookie).map(|mut c| {
                    c.persistent = a.persistent.unwrap_or(false);
                    c.backend_key = backend_key(&reference);
                    c
                });
                if balance.is_none() && hash_by.is_none() && affinity.is_none() {
                    return None;
                }
                let traffic = |issues: bool| {
                    let affinity = affinity.clone().map(|mut c| {
                        c.issues = issues;
                        c
                    });
                    (hash_by.is_some() || affinity.is_some()).then(|| {
                        Arc::new(Traffic {
                            hash_by: hash_by.clone(),
                            affinity,
                        })
                    })
                };
                let entry = Entry {
                    balance,
                    traffic: [traffic(false), traffic(true)],
                };
                Some((reference, entry))
            })
            .collect();
        Scope { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The settings `ingress` gets for its backend `reference`.
    fn settings(
        &self,
        reference: &BackendRef,
        issues: bool,
    ) -> (Option<Balance>, Option<Arc<Traffic>>) {
        match self.entries.get(reference) {
            Some(e) => (e.balance, e.traffic[usize::from(issues)].clone()),
            None => (None, None),
        }
    }

    /// The policy for one backend of an Ingress whose own policy is `policy`: its
    /// `load-balance` and traffic replaced by the Service's. Unchanged (no allocation) when
    /// they already agree, as always when no Ingress sets any of them.
    pub fn policy_for(
        &self,
        policy: &Option<Arc<Policy>>,
        reference: &BackendRef,
        issues: bool,
    ) -> Option<Arc<Policy>> {
        let (balance, traffic) = if self.is_empty() {
            (None, None)
        } else {
            self.settings(reference, issues)
        };
        let (own_balance, own_traffic) = match policy {
            Some(p) => (p.balance, p.traffic.clone()),
            None => (None, None),
        };
        if own_balance == balance && own_traffic == traffic {
            return policy.clone();
        }
        let mut p = policy.as_deref().cloned().unwrap_or_default();
        p.balance = balance;
        p.traffic = traffic;
        (!p.is_default()).then(|| Arc::new(p))
    }

    /// The scoped settings of every Service port `ingress` routes to (empty when the scope is).
    pub fn view(&self, ingress: &Ingress) -> View {
        if self.is_empty() {
            return Vec::new();
        }
        let issues = issues_cookie(ingress);
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let spec = ingress.spec.as_ref();
        let default = spec.and_then(|s| s.default_backend.as_ref());
        let mut view: View = default
            .into_iter()
            .chain(rule_backends(ingress))
            .filter_map(|b| reference(namespace, b))
            .filter_map(|r| {
                let (balance, traffic) = self.settings(&r, issues);
                (balance.is_some() || traffic.is_some()).then_some((r, balance, traffic))
            })
            .collect();
        view.sort_by_cached_key(|e| e.0.to_string());
        view.dedup_by(|a, b| a.0 == b.0);
        view
    }
}

/// Whether the Ingress's paths issue the affinity cookie (`affinity: cookie`).
pub(super) fn issues_cookie(ingress: &Ingress) -> bool {
    annotation(ingress, AFFINITY).is_some_and(|(_, v)| v.trim() == "cookie")
}

/// The Ingress's valid `load-balance`, silently (derive reports it).
fn balance_of(ingress: &Ingress) -> Option<Balance> {
    let (_, v) = annotation(ingress, super::annotations::LOAD_BALANCE)?;
    match v.trim().to_ascii_lowercase().as_str() {
        "round_robin" | "round-robin" => Some(Balance::RoundRobin),
        "ewma" => Some(Balance::Ewma),
        _ => None,
    }
}

fn rule_backends(ingress: &Ingress) -> Vec<&IngressBackend> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.http.as_ref())
        .flat_map(|h| h.paths.iter().map(|p| &p.backend))
        .collect()
}

/// The reference translate's `Backends::resolve` gives a well-formed Service backend.
fn reference(namespace: &str, backend: &IngressBackend) -> Option<BackendRef> {
    let service = backend.service.as_ref()?;
    let port = service.port.as_ref()?;
    let port = match (port.number, port.name.as_deref().filter(|n| !n.is_empty())) {
        (Some(n), None) => PortRef::Number(u16::try_from(n).ok().filter(|n| *n > 0)?),
        (None, Some(name)) => PortRef::Name(name.to_string()),
        _ => return None,
    };
    Some(BackendRef::Service {
        namespace: namespace.to_string(),
        name: service.name.clone(),
        port,
    })
}

/// ingress-nginx's `backend_key` is an MD5 of the upstream name; a stable hash of Portico's
/// name for it does the same job (tell backends apart in the cookie) without naming it.
pub(super) fn backend_key(reference: &BackendRef) -> String {
    format!("{:016x}", stable_hash(reference.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_takes_variables_braces_and_text() {
        assert_eq!(
            parse_template("$request_uri").unwrap(),
            vec![HashPiece::RequestUri]
        );
        assert_eq!(
            parse_template("${request_uri}-text-value").unwrap(),
            vec![
                HashPiece::RequestUri,
                HashPiece::Literal("-text-value".into())
            ]
        );
        assert_eq!(
            parse_template("$request_uri$host").unwrap(),
            vec![HashPiece::RequestUri, HashPiece::Host]
        );
        assert_eq!(
            parse_template("u:$http_x_user/$cookie_Sess$arg_id").unwrap(),
            vec![
                HashPiece::Literal("u:".into()),
                HashPiece::Header("x-user".into()),
                HashPiece::Literal("/".into()),
                HashPiece::Cookie("Sess".into()),
                HashPiece::Arg("id".into()),
            ]
        );
        assert_eq!(
            parse_template("$remote_addr").unwrap(),
            vec![HashPiece::RemoteAddr]
        );
    }

    #[test]
    fn template_refuses_unknown_variables_and_broken_syntax() {
        assert!(parse_template("$upstream_addr").is_err());
        assert!(parse_template("${host").is_err());
        assert!(parse_template("a$").is_err());
        assert!(parse_template("  ").is_err());
        assert!(parse_template(&"x".repeat(300)).is_err());
    }

    #[test]
    fn refused_balancers_say_what_to_use() {
        assert!(refused_balance("ip_hash").contains("upstream-hash-by"));
        assert!(refused_balance("chash").contains("upstream-hash-by"));
        assert!(refused_balance("sticky_persistent").contains("affinity"));
    }
}
